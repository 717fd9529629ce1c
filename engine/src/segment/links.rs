//! Payload links: extra layer-0 neighbours that keep a filtered walk inside the rows of one
//! payload-index value (a *block*), as Qdrant's payload-aware links (`payload_m`) do.
//!
//! At 10 % selectivity, nine in ten of a node's graph neighbours are refused; a walk that must
//! still measure them (to stay connected) costs about 2–2.4× an unfiltered one at the same
//! recall. For each value of a match-answering payload index (keyword, integer, bool, uuid)
//! held by between [`MIN_FRACTION`] and [`MAX_FRACTION`] of a space's rows (and at least
//! [`MIN_ROWS`]), compaction builds a graph over that value's rows alone and keeps its layer-0
//! lists, minus the links the main graph already has. A search whose filter requires one of
//! those values (a top-level `must` match; several values: one block each) then walks only
//! the block's rows, through the main lists and these, starting from the block's entry point
//! and from the rows near where the main graph's upper layers lead: the walk of a graph
//! over a tenth of the rows, not a tenth of a walk over all of them.
//!
//! Section layout (kind 14, one per space in version 5; empty when the space has none): see
//! `docs/format.md`.

use super::graph::{self, FlatGraph};
use crate::codec::{Writer, cast_slice};
use crate::types::{Distance, HnswConfig};

/// Bytes before the block table.
const HEAD: usize = 16;
/// u32 fields per block record.
const BLOCK_WORDS: usize = 4;
/// Smallest block that gets links, in rows: a smaller one is scanned exactly anyway.
pub(crate) const MIN_ROWS: usize = 1024;
/// Smallest share of the space's rows a block needs (below it, an exact scan of the block's
/// rows is cheap and gives recall 1).
pub(crate) const MIN_FRACTION: f64 = 1.0 / 64.0;
/// Largest share: above it a filtered walk over the main graph alone costs less than ~3.3×
/// an unfiltered one, and the extra build (a graph over the block) would approach a second
/// full build per value.
pub(crate) const MAX_FRACTION: f64 = 0.25;
/// Rows of all blocks of a space together, at most, as a multiple of its rows: the build costs
/// about that many more full builds, and the links about that many times `2m` ids a row (a
/// single-valued field's values partition its rows, so this is about two such fields; a field
/// of arrays — tags — can hold a row in many blocks). Blocks are taken in index and value
/// order, skipping any that would pass it.
pub(crate) const MAX_LINKED_ROWS: f64 = 2.0;

/// One block: the rows of value number `value` of payload index `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Block {
    pub(crate) index: u32,
    pub(crate) value: u32,
    /// Where a walk of the block starts (the entry point of the block's own graph).
    pub(crate) entry: u32,
    /// Rows the block's graph was built over.
    pub(crate) rows: u32,
}

/// A space's payload links, to write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PayloadLinks {
    /// Sorted by (index, value), unique.
    pub(crate) blocks: Vec<Block>,
    /// `rows + 1` offsets into `ids`: row r's links are `ids[offsets[r]..offsets[r + 1]]`.
    pub(crate) offsets: Vec<u32>,
    pub(crate) ids: Vec<u32>,
}

impl PayloadLinks {
    pub(crate) fn byte_len(&self) -> usize {
        HEAD + 4 * (BLOCK_WORDS * self.blocks.len() + self.offsets.len() + self.ids.len())
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.u32(self.blocks.len() as u32);
        w.u32(self.ids.len() as u32);
        w.u64(0);
        for b in &self.blocks {
            [b.index, b.value, b.entry, b.rows]
                .into_iter()
                .for_each(|x| w.u32(x));
        }
        self.offsets.iter().for_each(|x| w.u32(*x));
        self.ids.iter().for_each(|x| w.u32(*x));
    }
}

/// A space's payload links section, viewed in place. Accessors never panic on bad contents
/// (a malformed list reads as empty).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LinksView<'a> {
    blocks: &'a [u32],
    offsets: &'a [u32],
    ids: &'a [u32],
}

impl<'a> LinksView<'a> {
    /// Views `b` (a non-empty section) over a segment of `rows` rows, checking its sizes
    /// only (O(1)).
    pub(crate) fn view(b: &'a [u8], rows: u32) -> Result<LinksView<'a>, String> {
        let head: &[u32] = b
            .get(..HEAD)
            .and_then(cast_slice)
            .ok_or("shorter than its header")?;
        let (nb, nl) = (head[0] as usize, head[1] as usize);
        if head[2] != 0 || head[3] != 0 {
            return Err("non-zero reserved bytes".into());
        }
        let want =
            HEAD as u64 + 4 * (BLOCK_WORDS as u64 * nb as u64 + u64::from(rows) + 1 + nl as u64);
        if b.len() as u64 != want {
            return Err(format!("{} bytes, its counts say {want}", b.len()));
        }
        let all: &[u32] = cast_slice(&b[HEAD..]).ok_or("misaligned")?;
        let (blocks, rest) = all.split_at(BLOCK_WORDS * nb);
        let (offsets, ids) = rest.split_at(rows as usize + 1);
        Ok(LinksView {
            blocks,
            offsets,
            ids,
        })
    }

    /// Checks every value (O(size)): blocks sorted and unique, naming an index and a value
    /// that exist (`values(j)`: index j's value count, `None` if there is no index j), with an
    /// entry row in range; offsets from 0 ascending to the id count; ids in range and not the
    /// node itself.
    pub(crate) fn check(
        &self,
        rows: u32,
        values: &dyn Fn(u32) -> Option<usize>,
    ) -> Result<(), String> {
        let mut last: Option<(u32, u32)> = None;
        for (i, b) in self.blocks().enumerate() {
            if last.is_some_and(|l| l >= (b.index, b.value)) {
                return Err(format!("block {i} not sorted or repeated"));
            }
            last = Some((b.index, b.value));
            if values(b.index).is_none_or(|n| b.value as usize >= n) {
                return Err(format!("block {i} names no index value"));
            }
            if b.entry >= rows || b.rows > rows {
                return Err(format!("block {i}: entry or rows out of range"));
            }
        }
        let o = self.offsets;
        if o.first() != Some(&0)
            || o.windows(2).any(|w| w[0] > w[1])
            || o.last().map(|x| *x as usize) != Some(self.ids.len())
        {
            return Err("offsets not ascending from 0 to the link count".into());
        }
        for r in 0..rows {
            if self.of(r).iter().any(|x| *x >= rows || *x == r) {
                return Err(format!("links of node {r} out of range"));
            }
        }
        Ok(())
    }

    pub(crate) fn blocks(&self) -> impl Iterator<Item = Block> + '_ {
        self.blocks.chunks_exact(BLOCK_WORDS).map(|c| Block {
            index: c[0],
            value: c[1],
            entry: c[2],
            rows: c[3],
        })
    }

    /// The block of value number `value` of index `index`, if it has links.
    pub(crate) fn block(&self, index: u32, value: u32) -> Option<Block> {
        let n = self.blocks.len() / BLOCK_WORDS;
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let c = &self.blocks[mid * BLOCK_WORDS..(mid + 1) * BLOCK_WORDS];
            match (c[0], c[1]).cmp(&(index, value)) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    return Some(Block {
                        index,
                        value,
                        entry: c[2],
                        rows: c[3],
                    });
                }
            }
        }
        None
    }

    /// Node `node`'s payload links.
    #[inline]
    pub(crate) fn of(&self, node: u32) -> &'a [u32] {
        let (a, b) = (
            self.offsets.get(node as usize),
            self.offsets.get(node as usize + 1),
        );
        match (a, b) {
            (Some(a), Some(b)) => self.ids.get(*a as usize..*b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }
}

/// One candidate block: value number `value` of payload index `index`, held by `rows`
/// (ascending).
pub(crate) struct Candidate<'a> {
    pub(crate) index: u32,
    pub(crate) value: u32,
    pub(crate) rows: &'a [u32],
}

/// Builds the payload links of a space whose main graph is `main` (over `vectors`, `dim`
/// each; `has(r)`: row r has a vector here), for the `candidates` whose size is within
/// bounds. `None` when no block qualifies.
#[allow(clippy::too_many_arguments)]
pub(crate) fn build<'a>(
    vectors: &[f32],
    dim: usize,
    metric: Distance,
    cfg: HnswConfig,
    threads: usize,
    has: &dyn Fn(usize) -> bool,
    main: &FlatGraph,
    candidates: impl Iterator<Item = Candidate<'a>>,
) -> Option<PayloadLinks> {
    let n = main.levels.len();
    let present = (0..n).filter(|r| has(*r)).count();
    let (lo, hi) = (
        (present as f64 * MIN_FRACTION).max(MIN_ROWS as f64),
        present as f64 * MAX_FRACTION,
    );
    let w0 = 1 + main.l0_width as usize;
    let mut extra: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut blocks = Vec::new();
    // Links kept at most (ids are u32 offsets), and block rows at most.
    let (mut linked, budget) = (0usize, present as f64 * MAX_LINKED_ROWS);
    let max_ids = u32::MAX as usize / 2;
    for c in candidates {
        if (c.rows.len() as f64) < lo {
            continue;
        }
        let rows: Vec<u32> = c
            .rows
            .iter()
            .copied()
            .filter(|r| (*r as usize) < n && has(*r as usize))
            .collect();
        if (rows.len() as f64) < lo || rows.len() as f64 > hi {
            continue;
        }
        if (linked + rows.len()) as f64 > budget || (linked + rows.len()) * w0 > max_ids {
            continue;
        }
        linked += rows.len();
        let mut sub = Vec::with_capacity(rows.len() * dim);
        for r in &rows {
            sub.extend_from_slice(&vectors[*r as usize * dim..(*r as usize + 1) * dim]);
        }
        let g = graph::build(&sub, dim, metric, cfg, threads, &|_| true);
        let gw0 = 1 + g.l0_width as usize;
        for (i, r) in rows.iter().enumerate() {
            let mine = graph::list_at(&g.l0, i, gw0).unwrap_or(&[]);
            extra[*r as usize].extend(mine.iter().filter_map(|nb| rows.get(*nb as usize)));
        }
        blocks.push(Block {
            index: c.index,
            value: c.value,
            entry: rows[g.entry as usize],
            rows: rows.len() as u32,
        });
    }
    if blocks.is_empty() {
        return None;
    }
    blocks.sort_by_key(|b| (b.index, b.value));
    let mut offsets = Vec::with_capacity(n + 1);
    let mut ids = Vec::with_capacity(extra.iter().map(Vec::len).sum());
    offsets.push(0);
    for (r, mut l) in extra.into_iter().enumerate() {
        // Each link once, none to the node itself or already in its main list.
        let own = graph::list_at(&main.l0, r, w0).unwrap_or(&[]);
        l.sort_unstable();
        l.dedup();
        l.retain(|to| *to as usize != r && !own.contains(to));
        ids.extend_from_slice(&l);
        offsets.push(ids.len() as u32);
    }
    Some(PayloadLinks {
        blocks,
        offsets,
        ids,
    })
}

/// What a walk confined to blocks reads: the rows it may pass through (`within`: the blocks'
/// rows), the links, and where it starts.
pub(crate) struct Confined<'a> {
    pub(crate) within: &'a crate::filter::Bits,
    pub(crate) links: LinksView<'a>,
    pub(crate) entries: &'a [u32],
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PayloadLinks {
        PayloadLinks {
            blocks: vec![
                Block {
                    index: 0,
                    value: 1,
                    entry: 2,
                    rows: 3,
                },
                Block {
                    index: 1,
                    value: 0,
                    entry: 0,
                    rows: 2,
                },
            ],
            offsets: vec![0, 2, 3, 3, 4],
            ids: vec![1, 2, 0, 1],
        }
    }

    fn bytes(l: &PayloadLinks) -> Vec<u32> {
        let mut w = Writer::with_capacity(l.byte_len());
        l.write(&mut w);
        assert_eq!(w.len(), l.byte_len());
        w.buf
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4")))
            .collect()
    }

    /// `n` pseudo-random points of `dim` in [0, 1) (xorshift), row-major.
    fn random(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut x = seed;
        (0..n * dim)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect()
    }

    /// Recall@10 of searches of `arrays` (over `vectors`, `dim` each) at `ef` for `queries`,
    /// allowing only `rows`, against the exact top 10 of those rows.
    fn recall(
        arrays: &graph::Arrays<'_>,
        (vectors, dim): (&[f32], usize),
        rows: &[u32],
        queries: &[Vec<f32>],
        ef: usize,
        conf: Option<&Confined<'_>>,
    ) -> f64 {
        let mut allowed = crate::filter::Bits::none(graph::GraphView::node_count(arrays));
        rows.iter().for_each(|r| allowed.set(*r));
        let mut hit = 0;
        for q in queries {
            let mut exact: Vec<(f32, u32)> = rows
                .iter()
                .map(|r| {
                    let v = &vectors[*r as usize * dim..(*r as usize + 1) * dim];
                    (crate::distance::distance(Distance::Euclid, q, v), *r)
                })
                .collect();
            exact.sort_by(|a, b| a.0.total_cmp(&b.0));
            let got = graph::search(
                arrays,
                Distance::Euclid,
                q,
                10,
                ef,
                20,
                &mut |r| allowed.has(r),
                conf,
            );
            assert!(got.iter().all(|h| allowed.has(h.row)), "a refused row");
            hit += got
                .iter()
                .filter(|h| exact[..10].iter().any(|e| e.1 == h.row))
                .count();
        }
        hit as f64 / (10 * queries.len()) as f64
    }

    /// The links of one block of `rows` over `main`, and the block's rows as a bitmap.
    fn one_block(
        vectors: &[f32],
        dim: usize,
        main: &FlatGraph,
        rows: &[u32],
    ) -> (PayloadLinks, crate::filter::Bits) {
        let built = build(
            vectors,
            dim,
            Distance::Euclid,
            HnswConfig::default(),
            2,
            &|_| true,
            main,
            std::iter::once(Candidate {
                index: 0,
                value: 0,
                rows,
            }),
        )
        .expect("the block gets links");
        assert_eq!(built.blocks.len(), 1);
        let mut within = crate::filter::Bits::none(main.levels.len() as u32);
        rows.iter().for_each(|r| within.set(*r));
        (built, within)
    }

    /// A block whose rows the main graph does not link to each other: a walk confined to it
    /// moves only through the payload links, so it finds the block's nearest rows with them
    /// and is stuck near its seeds without them.
    #[test]
    fn a_confined_walk_moves_through_the_links() {
        let (n, dim) = (20_000usize, 8usize);
        let vectors = random(n, dim, 0x2545_f491_4f6c_dd1d);
        let queries: Vec<Vec<f32>> = random(30, dim, 99)
            .chunks(dim)
            .map(<[f32]>::to_vec)
            .collect();
        let in_block = |r: usize| r.is_multiple_of(7);
        let mut main = graph::build(
            &vectors,
            dim,
            Distance::Euclid,
            HnswConfig::default(),
            2,
            &|_| true,
        );
        // Cut every main link between two block rows.
        let w0 = 1 + main.l0_width as usize;
        for r in (0..n).filter(|r| in_block(*r)) {
            let list = &mut main.l0[r * w0..(r + 1) * w0];
            let kept: Vec<u32> = list[1..1 + list[0] as usize]
                .iter()
                .copied()
                .filter(|nb| !in_block(*nb as usize))
                .collect();
            list.fill(u32::MAX);
            list[0] = kept.len() as u32;
            list[1..1 + kept.len()].copy_from_slice(&kept);
        }
        let rows: Vec<u32> = (0..n as u32).filter(|r| in_block(*r as usize)).collect();
        let (built, within) = one_block(&vectors, dim, &main, &rows);
        let none = PayloadLinks {
            blocks: built.blocks.clone(),
            offsets: vec![0; n + 1],
            ids: Vec::new(),
        };
        let arrays = main.arrays(&vectors, dim);
        let walk = |links: &PayloadLinks| {
            let words = bytes(links);
            let view = LinksView::view(bytemuck::cast_slice(&words), n as u32).expect("view");
            let confined = Confined {
                within: &within,
                links: view,
                entries: &[built.blocks[0].entry],
            };
            recall(
                &arrays,
                (&vectors, dim),
                &rows,
                &queries,
                64,
                Some(&confined),
            )
        };
        let (with, without) = (walk(&built), walk(&none));
        eprintln!("confined walk recall: {with} with links, {without} without");
        assert!(with >= 0.9, "with links: recall {with}");
        assert!(without <= 0.5, "without links: recall {without}");
    }

    /// A small block (1/50 of the rows, above the 1/64 bound): where the upper layers lead
    /// rarely has block rows among its neighbours, so the walk starts mostly from the block's
    /// entry. At each `ef` its recall is within 0.03 of an index built over the block's rows
    /// alone. (A walk passing over every refused row has a higher recall at equal `ef` —
    /// 0.997 at 10 — because it measures many times more rows; the planner weighs that.)
    #[test]
    fn a_small_block_is_walked_from_good_starts() {
        let (n, dim) = (65_536usize, 16usize);
        let vectors = random(n, dim, 0x9e37_79b9_7f4a_7c15);
        let queries: Vec<Vec<f32>> = random(200, dim, 7)
            .chunks(dim)
            .map(<[f32]>::to_vec)
            .collect();
        let main = graph::build(
            &vectors,
            dim,
            Distance::Euclid,
            HnswConfig::default(),
            2,
            &|_| true,
        );
        let rows: Vec<u32> = (0..n as u32).filter(|r| r % 50 == 7).collect();
        let (built, within) = one_block(&vectors, dim, &main, &rows);
        let words = bytes(&built);
        let confined = Confined {
            within: &within,
            links: LinksView::view(bytemuck::cast_slice(&words), n as u32).expect("view"),
            entries: &[built.blocks[0].entry],
        };
        let arrays = main.arrays(&vectors, dim);
        // The reference: an index over the block's rows alone (upper layers included).
        let sub: Vec<f32> = rows
            .iter()
            .flat_map(|r| vectors[*r as usize * dim..(*r as usize + 1) * dim].to_vec())
            .collect();
        let own = graph::build(
            &sub,
            dim,
            Distance::Euclid,
            HnswConfig::default(),
            2,
            &|_| true,
        );
        let all: Vec<u32> = (0..rows.len() as u32).collect();
        for ef in [10, 16, 32] {
            let c = recall(
                &arrays,
                (&vectors, dim),
                &rows,
                &queries,
                ef,
                Some(&confined),
            );
            let u = recall(&arrays, (&vectors, dim), &rows, &queries, ef, None);
            let o = recall(
                &own.arrays(&sub, dim),
                (&sub, dim),
                &all,
                &queries,
                ef,
                None,
            );
            eprintln!("small block, ef {ef}: confined {c}, unconfined {u}, own index {o}");
            assert!(c >= o - 0.03, "ef {ef}: confined {c}, own index {o}");
        }
    }

    #[test]
    fn round_trips_and_finds_blocks() {
        let words = bytes(&sample());
        let b: &[u8] = bytemuck::cast_slice(&words);
        let v = LinksView::view(b, 4).expect("view");
        v.check(4, &|j| (j < 2).then_some(2)).expect("check");
        assert_eq!(v.of(0), &[1, 2]);
        assert_eq!(v.of(2), &[] as &[u32]);
        assert_eq!(v.of(3), &[1]);
        assert_eq!(v.of(9), &[] as &[u32]);
        assert_eq!(v.block(1, 0).map(|b| b.entry), Some(0));
        assert_eq!(v.block(0, 1).map(|b| b.rows), Some(3));
        assert!(v.block(0, 0).is_none() && v.block(2, 0).is_none());
        assert_eq!(v.blocks().count(), 2);
    }

    #[test]
    fn refuses_bad_sizes_and_values() {
        let words = bytes(&sample());
        let b: &[u8] = bytemuck::cast_slice(&words);
        assert!(LinksView::view(&b[..b.len() - 4], 4).is_err());
        assert!(LinksView::view(b, 5).is_err());
        let values = |j: u32| (j < 2).then_some(2);
        let bad = |edit: &dyn Fn(&mut PayloadLinks)| {
            let mut l = sample();
            edit(&mut l);
            let words = bytes(&l);
            let b: &[u8] = bytemuck::cast_slice(&words);
            LinksView::view(b, 4).and_then(|v| v.check(4, &values))
        };
        assert!(bad(&|_| {}).is_ok());
        assert!(bad(&|l| l.ids[0] = 4).is_err(), "id out of range");
        assert!(bad(&|l| l.ids[0] = 0).is_err(), "a link to itself");
        assert!(bad(&|l| l.offsets[1] = 4).is_err(), "offsets descend");
        assert!(bad(&|l| l.blocks[1].index = 2).is_err(), "no such index");
        assert!(bad(&|l| l.blocks[0].value = 2).is_err(), "no such value");
        assert!(bad(&|l| l.blocks.swap(0, 1)).is_err(), "unsorted");
        assert!(
            bad(&|l| l.blocks[0].entry = 4).is_err(),
            "entry out of range"
        );
        assert!(
            bad(&|l| l.blocks[0].rows = 5).is_err(),
            "more rows than the segment"
        );
        assert!(bad(&|l| l.offsets[0] = 1).is_err(), "offsets not from 0");
        assert!(
            bad(&|l| l.offsets[4] = 3).is_err(),
            "offsets not to the link count"
        );
        let mut reserved = bytes(&sample());
        reserved[2] = 1;
        assert!(
            LinksView::view(bytemuck::cast_slice(&reserved), 4).is_err(),
            "reserved"
        );
    }
}
