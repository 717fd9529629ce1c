//! The HNSW builder: inserts in parallel straight into the flat layout search reads.
//!
//! The algorithm is the HNSW paper's (Malkov & Yashunin, algorithms 1, 2 and 4), with
//! hnswlib's choices where the paper leaves room: a new node keeps the `m` neighbours the
//! heuristic selects on every layer; a neighbour list that overflows (`2m` on layer 0, `m` above)
//! is cut back by the same heuristic; the next layer down starts from the closest node found.
//!
//! Concurrency: every neighbour list is a fixed slot of atomics (`count`, then ids) in one
//! array per layer kind, written under its node's mutex (ids first, then the count with
//! release ordering) and read without a lock. A read that races a rewrite may see a mix of the
//! old and the new list; every id it can see is a node of the graph, so the walk stays valid
//! and only its path differs, exactly as a build in another insertion order would. Levels are
//! drawn up front from a seeded hash of the row number, so with one thread a build is
//! deterministic, and with several only the interleaving of inserts differs.
//!
//! Per thread the builder reuses one visited set (a generation number per node, no clearing)
//! and its heaps across inserts.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use super::graph::FlatGraph;
use crate::distance;
use crate::scan::Hit;
use crate::types::{Distance, HnswConfig};

/// Highest level a node can get (the expected top level of 10⁹ nodes at m = 4 is 15).
const MAX_LEVEL: u8 = 24;

/// No neighbour in this slot.
const NONE: u32 = u32::MAX;

/// Builds the graph of `vectors` (row-major, `dim` each) on `threads` threads. Only rows for
/// which `present` holds are nodes (the others keep empty lists and are never reached); at
/// least one row must be present. `seed` draws the levels.
pub(crate) fn build(
    vectors: &[f32],
    dim: usize,
    metric: Distance,
    cfg: HnswConfig,
    threads: usize,
    seed: u64,
    present: &dyn Fn(usize) -> bool,
) -> FlatGraph {
    let n = vectors.len() / dim;
    let order: Vec<u32> = (0..n).filter(|&i| present(i)).map(|i| i as u32).collect();
    assert!(!order.is_empty(), "no graph without rows");
    let m = cfg.m.max(2) as usize;
    let g = Graph::new(
        vectors,
        dim,
        metric,
        m,
        cfg.ef_construct as usize,
        seed,
        &order,
    );
    let first = order[0];
    *g.top.lock().expect("top") = (first, g.levels[first as usize] as u32);
    let next = AtomicUsize::new(1);
    let work = |g: &Graph<'_>| {
        let mut ctx = Ctx::new(n);
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&row) = order.get(i) else { break };
            g.insert(row, &mut ctx);
        }
    };
    let threads = threads.clamp(1, order.len());
    if threads == 1 {
        work(&g);
    } else {
        std::thread::scope(|s| {
            for t in 0..threads {
                let (g, work) = (&g, &work);
                std::thread::Builder::new()
                    .name(format!("strata-hnsw-{t}"))
                    .spawn_scoped(s, move || work(g))
                    .expect("spawn a graph build thread");
            }
        });
    }
    g.reconnect(&order, &mut Ctx::new(n));
    g.flatten()
}

/// The level of `row`: ⌊-ln(u) / ln(m)⌋ for a uniform `u` in (0, 1] hashed from `seed` and `row`.
fn level(seed: u64, row: u32, m: usize) -> u8 {
    // splitmix64
    let mut z = seed ^ (row as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let u = ((z >> 11) + 1) as f64 / (1u64 << 53) as f64;
    let l = -u.ln() / (m as f64).ln();
    (l.floor() as u64).min(MAX_LEVEL as u64) as u8
}

/// Per-thread scratch, reused across inserts.
struct Ctx {
    /// `seen[i] == epoch`: node `i` was visited in the current search.
    seen: Vec<u32>,
    epoch: u32,
    candidates: BinaryHeap<Reverse<Hit>>,
    results: BinaryHeap<Hit>,
    ids: Vec<u32>,
}

impl Ctx {
    fn new(n: usize) -> Ctx {
        Ctx {
            seen: vec![0; n],
            epoch: 0,
            candidates: BinaryHeap::new(),
            results: BinaryHeap::new(),
            ids: Vec::new(),
        }
    }

    fn next_epoch(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.seen.fill(0);
            self.epoch = 1;
        }
    }
}

struct Graph<'a> {
    vectors: &'a [f32],
    dim: usize,
    metric: Distance,
    m: usize,
    ef: usize,
    levels: Vec<u8>,
    /// Layer 0: `1 + 2m` slots per row.
    l0: Vec<AtomicU32>,
    /// Per row, the index of its level-1 list in `up` (levels 1..=level follow), or `NONE`.
    up_first: Vec<u32>,
    /// Upper layers: `1 + m` slots per list.
    up: Vec<AtomicU32>,
    locks: Vec<Mutex<()>>,
    /// The entry point and its level.
    top: Mutex<(u32, u32)>,
    /// Held for the whole insert of a node above the top level (rare: about log_m(n) of them),
    /// so such a node links into the layers it reaches with the entry it will replace, never
    /// beside another one racing it to the top (as hnswlib does).
    promote: Mutex<()>,
}

impl<'a> Graph<'a> {
    fn new(
        vectors: &'a [f32],
        dim: usize,
        metric: Distance,
        m: usize,
        ef: usize,
        seed: u64,
        order: &[u32],
    ) -> Graph<'a> {
        let n = vectors.len() / dim;
        let mut levels = vec![0u8; n];
        let mut up_first = vec![NONE; n];
        let mut lists = 0u32;
        for &r in order {
            let l = level(seed, r, m);
            levels[r as usize] = l;
            if l > 0 {
                up_first[r as usize] = lists;
                lists += l as u32;
            }
        }
        let slots = |count: usize, width: usize| {
            let mut v = Vec::with_capacity(count * (1 + width));
            for _ in 0..count {
                v.push(AtomicU32::new(0));
                v.extend((0..width).map(|_| AtomicU32::new(NONE)));
            }
            v
        };
        Graph {
            vectors,
            dim,
            metric,
            m,
            ef: ef.max(m),
            levels,
            l0: slots(n, 2 * m),
            up_first,
            up: slots(lists as usize, m),
            locks: (0..n).map(|_| Mutex::new(())).collect(),
            top: Mutex::new((0, 0)),
            promote: Mutex::new(()),
        }
    }

    #[inline]
    fn vector(&self, row: u32) -> &[f32] {
        let at = row as usize * self.dim;
        &self.vectors[at..at + self.dim]
    }

    #[inline]
    fn dist(&self, a: &[f32], row: u32) -> f32 {
        let d = distance::distance(self.metric, a, self.vector(row));
        if d.is_nan() { f32::INFINITY } else { d }
    }

    fn width(&self, level: u32) -> usize {
        if level == 0 { 2 * self.m } else { self.m }
    }

    /// The slots (count, then ids) of `row`'s list on `level`.
    #[inline]
    fn slots(&self, row: u32, level: u32) -> &[AtomicU32] {
        if level == 0 {
            let w = 1 + 2 * self.m;
            &self.l0[row as usize * w..(row as usize + 1) * w]
        } else {
            let w = 1 + self.m;
            let list = (self.up_first[row as usize] + level - 1) as usize;
            &self.up[list * w..(list + 1) * w]
        }
    }

    /// Copies `row`'s neighbours on `level` into `out` (without a lock: see the module docs).
    #[inline]
    fn read(&self, row: u32, level: u32, out: &mut Vec<u32>) {
        out.clear();
        let s = self.slots(row, level);
        let count = (s[0].load(Ordering::Acquire) as usize).min(s.len() - 1);
        let n = self.levels.len() as u32;
        out.extend(
            s[1..=count]
                .iter()
                .map(|a| a.load(Ordering::Relaxed))
                .filter(|&id| id < n),
        );
    }

    /// Overwrites `row`'s list on `level` (the caller holds `row`'s lock).
    fn write(&self, row: u32, level: u32, ids: impl ExactSizeIterator<Item = u32>) {
        let s = self.slots(row, level);
        let count = ids.len().min(s.len() - 1);
        for (slot, id) in s[1..].iter().zip(ids) {
            slot.store(id, Ordering::Relaxed);
        }
        s[0].store(count as u32, Ordering::Release);
    }

    fn insert(&self, row: u32, ctx: &mut Ctx) {
        let level = self.levels[row as usize] as u32;
        let mut promoting = None;
        let mut snapshot = *self.top.lock().expect("top");
        if level > snapshot.1 {
            promoting = Some(self.promote.lock().expect("promote"));
            snapshot = *self.top.lock().expect("top");
        }
        let (entry, top) = snapshot;
        let q = self.vector(row);
        let mut cur = self.descend(q, entry, top, level, ctx);
        for l in (0..=level.min(top)).rev() {
            let found = self.search_layer(q, cur, row, l, ctx);
            cur = found[0];
            let chosen = self.select(&found, self.m);
            self.set_own(row, l, &chosen, ctx);
            for h in &chosen {
                self.link(h.row, row, h.dist, l, ctx);
            }
        }
        if level > top {
            let mut t = self.top.lock().expect("top");
            if level > t.1 {
                *t = (row, level);
            }
        }
        drop(promoting);
    }

    /// Greedy descent from `entry` (on `top`) to the node closest to `q` on layer `level + 1`
    /// (the entry itself when `level >= top`).
    fn descend(&self, q: &[f32], entry: u32, top: u32, level: u32, ctx: &mut Ctx) -> Hit {
        let mut cur = Hit {
            dist: self.dist(q, entry),
            row: entry,
        };
        for l in (level + 1..=top).rev() {
            loop {
                let mut moved = false;
                self.read(cur.row, l, &mut ctx.ids);
                for &nb in &ctx.ids {
                    let d = self.dist(q, nb);
                    if d < cur.dist {
                        cur = Hit { dist: d, row: nb };
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        cur
    }

    /// Links every node layer 0 cannot reach from the entry (left so when the lists that held
    /// its links were cut back, or when neighbours inserted at the same time missed each other)
    /// from the closest reachable node with room in its list. Returns how many it linked.
    fn reconnect(&self, order: &[u32], ctx: &mut Ctx) -> usize {
        let (entry, top) = *self.top.lock().expect("top");
        let width = self.width(0);
        let mut ids = Vec::new();
        let mut walk = |stack: &mut Vec<u32>, reached: &mut Vec<bool>| {
            while let Some(x) = stack.pop() {
                self.read(x, 0, &mut ids);
                for &nb in &ids {
                    if !reached[nb as usize] {
                        reached[nb as usize] = true;
                        stack.push(nb);
                    }
                }
            }
        };
        let mut linked = 0;
        // A pass that had to overwrite a link (every candidate's list full: never seen in
        // practice) may have cut off a node it had counted as reached: walk again, at most
        // three times.
        for _ in 0..3 {
            let mut reached = vec![false; self.levels.len()];
            let mut stack = vec![entry];
            reached[entry as usize] = true;
            walk(&mut stack, &mut reached);
            let (mut overwrote, mut lost) = (false, 0usize);
            for &u in order {
                if reached[u as usize] {
                    continue;
                }
                let q = self.vector(u);
                let start = self.descend(q, entry, top, 0, ctx);
                let found = self.search_layer(q, start, u, 0, ctx);
                let room = |h: &&Hit| {
                    reached[h.row as usize]
                        && (self.slots(h.row, 0)[0].load(Ordering::Relaxed) as usize) < width
                };
                let target = found
                    .iter()
                    .find(room)
                    .or_else(|| found.iter().find(|h| reached[h.row as usize]));
                let Some(t) = target else {
                    lost += 1;
                    continue;
                };
                let s = self.slots(t.row, 0);
                let count = (s[0].load(Ordering::Relaxed) as usize).min(width);
                // Full everywhere: the last link of the closest gives way.
                overwrote |= count == width;
                let at = count.min(width - 1);
                s[1 + at].store(u, Ordering::Relaxed);
                s[0].store(at as u32 + 1, Ordering::Release);
                reached[u as usize] = true;
                stack.push(u);
                walk(&mut stack, &mut reached);
                linked += 1;
            }
            if lost > 0 {
                tracing::debug!(
                    nodes = lost,
                    "HNSW build: nodes left unreachable on layer 0"
                );
            }
            if !overwrote {
                break;
            }
        }
        linked
    }

    /// Gives the new node `row` its neighbours on `level`. Another insert may have linked to it
    /// already (it found `row` through a layer above): those links are kept, and the union cut
    /// back by the heuristic if it overflows.
    fn set_own(&self, row: u32, level: u32, chosen: &[Hit], ctx: &mut Ctx) {
        let _g = self.locks[row as usize].lock().expect("node lock");
        self.read(row, level, &mut ctx.ids);
        if ctx.ids.is_empty() {
            self.write(row, level, chosen.iter().map(|h| h.row));
            return;
        }
        let q = self.vector(row);
        let mut all: Vec<Hit> = chosen.to_vec();
        for &id in &ctx.ids {
            if id != row && !chosen.iter().any(|h| h.row == id) {
                all.push(Hit {
                    dist: self.dist(q, id),
                    row: id,
                });
            }
        }
        all.sort_unstable();
        let kept = self.select(&all, self.width(level));
        self.write(row, level, kept.iter().map(|h| h.row));
    }

    /// Adds `new` (at distance `d`) to `row`'s list on `level`, cutting the list back with the
    /// heuristic when it is full.
    fn link(&self, row: u32, new: u32, d: f32, level: u32, ctx: &mut Ctx) {
        let _g = self.locks[row as usize].lock().expect("node lock");
        self.read(row, level, &mut ctx.ids);
        if row == new || ctx.ids.contains(&new) {
            return;
        }
        let width = self.width(level);
        if ctx.ids.len() < width {
            let s = self.slots(row, level);
            s[1 + ctx.ids.len()].store(new, Ordering::Relaxed);
            s[0].store(ctx.ids.len() as u32 + 1, Ordering::Release);
            return;
        }
        let base = self.vector(row);
        let mut all: Vec<Hit> = ctx
            .ids
            .iter()
            .map(|&id| Hit {
                dist: self.dist(base, id),
                row: id,
            })
            .collect();
        all.push(Hit { dist: d, row: new });
        all.sort_unstable();
        let kept = self.select(&all, width);
        self.write(row, level, kept.iter().map(|h| h.row));
    }

    /// The `ef` nodes closest to `q` on `level` reachable from `start`, closest first; `me`
    /// (the node being inserted) is never one of them.
    fn search_layer(&self, q: &[f32], start: Hit, me: u32, level: u32, ctx: &mut Ctx) -> Vec<Hit> {
        ctx.next_epoch();
        let epoch = ctx.epoch;
        ctx.seen[start.row as usize] = epoch;
        ctx.seen[me as usize] = epoch;
        ctx.candidates.clear();
        ctx.results.clear();
        ctx.candidates.push(Reverse(start));
        ctx.results.push(start);
        let mut ids = std::mem::take(&mut ctx.ids);
        while let Some(Reverse(c)) = ctx.candidates.pop() {
            let bound = ctx.results.peek().map_or(f32::INFINITY, |h| h.dist);
            if c.dist > bound && ctx.results.len() >= self.ef {
                break;
            }
            self.read(c.row, level, &mut ids);
            for &nb in &ids {
                if ctx.seen[nb as usize] != epoch {
                    distance::prefetch(self.vector(nb));
                }
            }
            for &nb in &ids {
                let seen = &mut ctx.seen[nb as usize];
                if *seen == epoch {
                    continue;
                }
                *seen = epoch;
                let d = self.dist(q, nb);
                let full = ctx.results.len() >= self.ef;
                if !full || d < ctx.results.peek().map_or(f32::INFINITY, |h| h.dist) {
                    let h = Hit { dist: d, row: nb };
                    ctx.candidates.push(Reverse(h));
                    ctx.results.push(h);
                    if ctx.results.len() > self.ef {
                        ctx.results.pop();
                    }
                }
            }
            if let Some(Reverse(next)) = ctx.candidates.peek() {
                distance::prefetch(self.slots(next.row, level));
            }
        }
        ctx.ids = ids;
        let mut out: Vec<Hit> = ctx.results.drain().collect();
        out.sort_unstable();
        out
    }

    /// The heuristic of the paper's algorithm 4: walking `sorted` (closest to the base node
    /// first), a candidate is kept unless a node already kept is closer to it than the base is.
    fn select(&self, sorted: &[Hit], m: usize) -> Vec<Hit> {
        let mut kept: Vec<Hit> = Vec::with_capacity(m);
        for c in sorted {
            if kept.len() >= m {
                break;
            }
            let v = self.vector(c.row);
            if kept.iter().all(|k| self.dist(v, k.row) >= c.dist) {
                kept.push(*c);
            }
        }
        // Inner product is not a metric: the rule above cuts a node's links to the large-norm
        // "hubs" most queries end at, and recall falls below hnsw_rs's (which keeps the
        // closest). For Dot the list is filled up with the closest of those cut.
        if self.metric == Distance::Dot && kept.len() < m {
            for c in sorted {
                if kept.len() >= m {
                    break;
                }
                if !kept.iter().any(|k| k.row == c.row) {
                    kept.push(*c);
                }
            }
        }
        kept
    }

    fn flatten(self) -> FlatGraph {
        let (entry, max_level) = *self.top.lock().expect("top");
        let m = self.m;
        let copy = |slots: &[AtomicU32], width: usize| {
            let mut out = Vec::with_capacity(slots.len());
            for list in slots.chunks_exact(1 + width) {
                let count = (list[0].load(Ordering::Relaxed) as usize).min(width);
                out.push(count as u32);
                out.extend(list[1..=count].iter().map(|a| a.load(Ordering::Relaxed)));
                out.resize(out.len() + width - count, NONE);
            }
            out
        };
        let upper = copy(&self.up, m);
        FlatGraph {
            entry,
            max_level,
            l0_width: 2 * m as u32,
            up_width: m as u32,
            upper_lists: (self.up.len() / (1 + m)) as u32,
            l0: copy(&self.l0, 2 * m),
            upper_offsets: self.up_first,
            upper,
            levels: self.levels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SplitMix64;
    use crate::segment::graph::{self, GraphView};

    /// `n` points of `dim` coordinates around 32 random centres (as embeddings cluster), then
    /// normalised for Cosine.
    fn clustered(n: usize, dim: usize, seed: u64, metric: Distance) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        let centres: Vec<f32> = (0..32 * dim).map(|_| rng.next_f32() * 4.0 - 2.0).collect();
        let mut out = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let c = rng.below(32) as usize;
            let noise = |rng: &mut SplitMix64| (0..3).map(|_| rng.next_f32()).sum::<f32>() - 1.5;
            let start = out.len();
            for j in 0..dim {
                out.push(centres[c * dim + j] + noise(&mut rng));
            }
            if metric == Distance::Cosine {
                distance::normalize(&mut out[start..]);
            }
        }
        out
    }

    /// recall@10 of `g` at `ef` over `queries`, against an exact scan of `v`.
    fn recall(
        g: &FlatGraph,
        v: &[f32],
        queries: &[f32],
        dim: usize,
        metric: Distance,
        ef: usize,
    ) -> f64 {
        recall_with(g, v, None, queries, dim, metric, ef)
    }

    /// As [`recall`], walking over `codes` if given; also checks that every hit's distance is
    /// the exact one.
    fn recall_with(
        g: &FlatGraph,
        v: &[f32],
        codes: Option<crate::quant::Codes<'_>>,
        queries: &[f32],
        dim: usize,
        metric: Distance,
        ef: usize,
    ) -> f64 {
        let mut view = g.arrays(v, dim);
        view.codes = codes;
        let mut found = 0;
        let mut total = 0;
        for q in queries.chunks_exact(dim) {
            let mut exact: Vec<Hit> = v
                .chunks_exact(dim)
                .enumerate()
                .map(|(i, x)| Hit {
                    dist: distance::distance(metric, q, x),
                    row: i as u32,
                })
                .collect();
            exact.sort_unstable();
            exact.truncate(10);
            let got = graph::search(&view, metric, q, 10, ef, 20, &mut |_| true, None);
            for h in &got {
                let x = &v[h.row as usize * dim..][..dim];
                assert_eq!(
                    h.dist,
                    distance::distance(metric, q, x),
                    "an exact distance"
                );
            }
            assert!(got.is_sorted(), "nearest first");
            found += got
                .iter()
                .filter(|h| exact.iter().any(|e| e.row == h.row))
                .count();
            total += 10;
        }
        found as f64 / total as f64
    }

    const CFG: HnswConfig = HnswConfig {
        m: 8,
        ef_construct: 64,
    };

    #[test]
    fn recall_matches_hnsw_rs_at_equal_ef_on_one_thread_and_two() {
        let (n, dim) = (4_000, 24);
        for metric in [Distance::Euclid, Distance::Cosine, Distance::Dot] {
            let v = clustered(n, dim, 1, metric);
            let queries = clustered(200, dim, 2, metric);
            let reference = graph::build_reference(&v, dim, metric, CFG, &|_| true);
            for ef in [16, 48] {
                let want = recall(&reference, &v, &queries, dim, metric, ef);
                for threads in [1, 2] {
                    let g = build(&v, dim, metric, CFG, threads, 7, &|_| true);
                    let got = recall(&g, &v, &queries, dim, metric, ef);
                    assert!(
                        got >= want - 0.01,
                        "{metric:?} ef {ef}, {threads} thread(s): recall {got:.3}, hnsw_rs {want:.3}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_walk_over_byte_codes_keeps_the_recall_of_one_over_vectors() {
        let (n, dim) = (4_000, 24);
        for metric in [Distance::Euclid, Distance::Cosine, Distance::Dot] {
            let v = clustered(n, dim, 1, metric);
            let queries = clustered(200, dim, 2, metric);
            let g = build(&v, dim, metric, CFG, 2, 7, &|_| true);
            let quant = crate::quant::Quantizer::train(&v, dim);
            let buf = quant.encode_all(&v);
            let norms = quant.norms(buf.as_bytes());
            let codes = crate::quant::Codes {
                quant: &quant,
                bytes: buf.as_bytes(),
                norms: if metric == Distance::Euclid {
                    &norms
                } else {
                    &[]
                },
            };
            for ef in [16, 48] {
                let exact = recall(&g, &v, &queries, dim, metric, ef);
                let coded = recall_with(&g, &v, Some(codes), &queries, dim, metric, ef);
                assert!(
                    coded >= exact - 0.01,
                    "{metric:?} ef {ef}: recall over codes {coded:.3}, over vectors {exact:.3}"
                );
            }
        }
    }

    #[test]
    fn lists_are_well_formed_and_every_node_is_reachable() {
        let (n, dim) = (3_000, 16);
        let v = clustered(n, dim, 3, Distance::Euclid);
        // Every 10th row is absent: no node, empty lists.
        let present = |i: usize| i % 10 != 3;
        for threads in [1, 2] {
            let g = build(&v, dim, Distance::Euclid, CFG, threads, 11, &present);
            let view = g.arrays(&v, dim);
            assert!(present(g.entry as usize));
            assert_eq!(g.levels[g.entry as usize] as u32, g.max_level);
            for node in 0..n as u32 {
                for level in 0..=g.levels[node as usize] as u32 {
                    let list = view.neighbours(node, level);
                    let width = if level == 0 { g.l0_width } else { g.up_width };
                    assert!(list.len() <= width as usize);
                    if !present(node as usize) {
                        assert!(list.is_empty() && g.levels[node as usize] == 0);
                    }
                    for (i, &nb) in list.iter().enumerate() {
                        assert!(nb != node, "self loop at {node}");
                        assert!(present(nb as usize), "link to an absent row {nb}");
                        assert!(
                            g.levels[nb as usize] as u32 >= level,
                            "{nb} is not on level {level}"
                        );
                        assert!(!list[..i].contains(&nb), "duplicate {nb} in {node}'s list");
                    }
                }
            }
            // Layer 0 from the entry reaches every node.
            let mut seen = vec![false; n];
            let mut stack = vec![g.entry];
            seen[g.entry as usize] = true;
            while let Some(x) = stack.pop() {
                for &nb in view.neighbours(x, 0) {
                    if !seen[nb as usize] {
                        seen[nb as usize] = true;
                        stack.push(nb);
                    }
                }
            }
            let unreached = (0..n).filter(|&i| present(i) && !seen[i]).count();
            assert_eq!(unreached, 0, "{threads} thread(s)");
        }
    }

    #[test]
    fn one_thread_builds_the_same_graph_every_time_and_levels_follow_the_seed() {
        let dim = 8;
        let v = clustered(1_500, dim, 5, Distance::Dot);
        let a = build(&v, dim, Distance::Dot, CFG, 1, 9, &|_| true);
        let b = build(&v, dim, Distance::Dot, CFG, 1, 9, &|_| true);
        assert_eq!(a, b);
        let c = build(&v, dim, Distance::Dot, CFG, 1, 10, &|_| true);
        assert_ne!(a.levels, c.levels);
        // About 1/m of the nodes reach level 1 and above.
        let upper = a.levels.iter().filter(|l| **l > 0).count() as f64 / 1_500.0;
        assert!((0.08..0.17).contains(&upper), "{upper}");
    }

    #[test]
    fn a_single_row_and_duplicates_build() {
        let g = build(&[1.0, 2.0], 2, Distance::Euclid, CFG, 2, 1, &|_| true);
        assert_eq!((g.entry, g.l0[0]), (0, 0));
        // 200 copies of one point: every distance ties.
        let v: Vec<f32> = std::iter::repeat_n([0.5f32, 0.5], 200).flatten().collect();
        let g = build(&v, 2, Distance::Euclid, CFG, 2, 1, &|_| true);
        let view = g.arrays(&v, 2);
        assert_eq!(
            graph::search(
                &view,
                Distance::Euclid,
                &[0.5, 0.5],
                5,
                16,
                10,
                &mut |_| true,
                None
            )
            .len(),
            5
        );
    }
}
