//! HNSW: built by [`super::builder`], served from a flat layout this crate controls.
//!
//! The builder inserts (in parallel, off the write path: flush writes segments without a graph
//! and compaction adds it) straight into fixed-width neighbour lists: layer 0 is one
//! `u32[1 + w0]` array per node (count, then ids), upper layers are `u32[1 + w]` lists
//! addressed through a per-node offset. Search walks those arrays in place — in a mapped file,
//! without decoding or rebuilding anything.
//!
//! The search takes an allow-list callback: filtered-out and deleted nodes are still traversed
//! (so the graph stays connected) but never enter the result set.
//!
//! Tests keep `hnsw_rs` (the builder this crate used first) as the reference the builder's
//! recall is held to.

use crate::distance;
use crate::quant::{CodeBuf, Codes, Quantizer};
use crate::scan::{Hit, TopK};
use crate::types::{Distance, HnswConfig};

pub(crate) use super::links::Confined;

/// Seed of the levels drawn for a graph's nodes: fixed, so a build on one thread is
/// reproducible.
pub(crate) const LEVEL_SEED: u64 = 0x5354_5241_5441_4831;

/// A graph flattened for storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FlatGraph {
    pub(crate) entry: u32,
    pub(crate) max_level: u32,
    pub(crate) l0_width: u32,
    pub(crate) up_width: u32,
    pub(crate) upper_lists: u32,
    pub(crate) levels: Vec<u8>,
    pub(crate) l0: Vec<u32>,
    pub(crate) upper_offsets: Vec<u32>,
    pub(crate) upper: Vec<u32>,
}

impl FlatGraph {
    pub(crate) fn byte_len(&self) -> usize {
        self.levels.len() + 4 * (self.l0.len() + self.upper_offsets.len() + self.upper.len())
    }

    /// This graph over `vectors` (row-major, `dim` each), as the search walks it.
    pub(crate) fn arrays<'a>(&'a self, vectors: &'a [f32], dim: usize) -> Arrays<'a> {
        Arrays {
            entry: self.entry,
            max_level: self.max_level,
            l0: &self.l0,
            w0: 1 + self.l0_width as usize,
            levels: &self.levels,
            upper_offsets: &self.upper_offsets,
            upper: &self.upper,
            wu: 1 + self.up_width as usize,
            vectors,
            dim,
            codes: None,
        }
    }
}

/// A graph's arrays and vectors, borrowed in place (from a mapped segment file or a
/// [`FlatGraph`]) and resolved once per search, so the walk indexes plain slices. Every read is
/// bounds-checked: a malformed list reads as empty, never as a panic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrays<'a> {
    pub(crate) entry: u32,
    pub(crate) max_level: u32,
    /// Layer 0: `w0` slots per node (count, then ids).
    pub(crate) l0: &'a [u32],
    pub(crate) w0: usize,
    pub(crate) levels: &'a [u8],
    pub(crate) upper_offsets: &'a [u32],
    /// Upper layers: `wu` slots per list.
    pub(crate) upper: &'a [u32],
    pub(crate) wu: usize,
    pub(crate) vectors: &'a [f32],
    pub(crate) dim: usize,
    /// Byte codes of `vectors` for the walk.
    pub(crate) codes: Option<Codes<'a>>,
}

/// List `index` of `all` (`w` slots each: count, then ids), or `None` if out of range or its
/// count overflows it.
pub(crate) fn list_at(all: &[u32], index: usize, w: usize) -> Option<&[u32]> {
    let l = all.get(index.checked_mul(w)?..index.checked_add(1)?.checked_mul(w)?)?;
    let n = *l.first()? as usize;
    l.get(1..1 + n)
}

impl GraphView for Arrays<'_> {
    fn node_count(&self) -> u32 {
        (self.vectors.len() / self.dim.max(1)) as u32
    }
    fn entry(&self) -> u32 {
        self.entry
    }
    fn max_level(&self) -> u32 {
        self.max_level
    }
    #[inline]
    fn neighbours(&self, node: u32, level: u32) -> &[u32] {
        let list = if level == 0 {
            list_at(self.l0, node as usize, self.w0)
        } else if level > self.levels.get(node as usize).map_or(0, |l| *l as u32) {
            None
        } else {
            self.upper_offsets.get(node as usize).and_then(|first| {
                list_at(self.upper, *first as usize + level as usize - 1, self.wu)
            })
        };
        list.unwrap_or(&[])
    }
    #[inline]
    fn vector(&self, node: u32) -> &[f32] {
        let at = node as usize * self.dim;
        self.vectors.get(at..at + self.dim).unwrap_or(&[])
    }
    fn codes(&self) -> Option<Codes<'_>> {
        self.codes
    }
    #[inline]
    fn prefetch_l0(&self, node: u32) {
        let at = node as usize * self.w0;
        if let Some(list) = self.l0.get(at..at + self.w0) {
            distance::prefetch(list);
        }
    }
}

/// Builds the graph of `vectors` (row-major, `dim` each) on `threads` threads (0: one per
/// core; never more than the cores). Only rows for which `present` holds are nodes (the
/// others keep empty lists and are never reached); at least one row must be present.
pub(crate) fn build(
    vectors: &[f32],
    dim: usize,
    metric: Distance,
    cfg: HnswConfig,
    threads: usize,
    present: &dyn Fn(usize) -> bool,
) -> FlatGraph {
    // More threads than cores only adds a visited set (4 bytes a row) per thread.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = match threads {
        0 => cores,
        t => t.min(cores),
    };
    super::builder::build(vectors, dim, metric, cfg, threads, LEVEL_SEED, present)
}

#[cfg(test)]
pub(crate) use reference::build_reference;

/// `hnsw_rs`, the reference builder of the tests.
#[cfg(test)]
mod reference {
    use super::*;
    use hnsw_rs::anndists::dist::distances::Distance as HnswDistance;
    use hnsw_rs::hnsw::Hnsw;

    /// The distance `hnsw_rs` builds with. It asserts distances are non-negative, so Dot uses
    /// `bound - dot` where `bound >= max |v|²` over the segment (Cauchy–Schwarz keeps it >= 0 and
    /// the order is that of `-dot`). Cosine vectors are normalised: `1 - dot` clamped at 0.
    struct BuildDistance {
        metric: Distance,
        dot_bound: f32,
    }

    impl HnswDistance<f32> for BuildDistance {
        fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
            let d = match self.metric {
                Distance::Euclid => distance::l2sq(a, b),
                Distance::Cosine => (1.0 - distance::dot(a, b)).max(0.0),
                Distance::Dot => (self.dot_bound - distance::dot(a, b)).max(0.0),
            };
            // hnsw_rs panics on a NaN distance. Finite inputs can overflow (components near
            // f32::MAX) to inf, and `max(0.0)` already turns Dot's `inf - inf` into 0; this keeps
            // any NaN out whatever the kernel returns.
            if d.is_nan() { f32::MAX } else { d }
        }
    }

    /// Builds the graph of `vectors` (row-major, `dim` each) with `hnsw_rs`, then flattens it.
    /// Only rows for which `present` holds are nodes (the others keep empty lists and are never
    /// reached); at least one row must be present.
    pub(crate) fn build_reference(
        vectors: &[f32],
        dim: usize,
        metric: Distance,
        cfg: HnswConfig,
        present: &dyn Fn(usize) -> bool,
    ) -> FlatGraph {
        let n = vectors.len() / dim;
        let rows = || {
            vectors
                .chunks_exact(dim)
                .enumerate()
                .filter(|(i, _)| present(*i))
        };
        let nodes = rows().count();
        assert!(nodes > 0, "no graph without rows");
        let dot_bound = if metric == Distance::Dot {
            rows()
                .map(|(_, v)| distance::dot(v, v))
                .fold(0.0f32, f32::max)
                * 1.001
                + 1.0
        } else {
            0.0
        };
        let dist = BuildDistance { metric, dot_bound };
        let hnsw: Hnsw<'_, f32, BuildDistance> =
            Hnsw::new(cfg.m as usize, nodes, 16, cfg.ef_construct as usize, dist);
        for (i, v) in rows() {
            hnsw.insert_slice((v, i));
        }
        flatten(&hnsw, n)
    }

    fn flatten(hnsw: &Hnsw<'_, f32, BuildDistance>, n: usize) -> FlatGraph {
        let pi = hnsw.get_point_indexation();
        let mut levels = vec![0u8; n];
        let mut lists: Vec<Vec<Vec<u32>>> = vec![Vec::new(); n];
        for p in pi {
            let row = p.get_origin_id();
            let level = p.get_point_id().0;
            levels[row] = level;
            let hood = p.get_neighborhood_id();
            lists[row] = (0..=level as usize)
                .map(|l| {
                    hood.get(l)
                        .map(|v| v.iter().map(|nb| nb.d_id as u32).collect())
                        .unwrap_or_default()
                })
                .collect();
        }
        let max_level = pi.get_max_level_observed() as u32;
        let entry = pi
            .get_layer_iterator(max_level as usize)
            .next()
            .map_or(0, |p| p.get_origin_id() as u32);
        let l0_width = lists
            .iter()
            .map(|l| l.first().map_or(0, Vec::len))
            .max()
            .unwrap_or(0) as u32;
        let up_width = lists
            .iter()
            .flat_map(|l| l.iter().skip(1).map(Vec::len))
            .max()
            .unwrap_or(0) as u32;
        let mut l0 = Vec::with_capacity(n * (1 + l0_width as usize));
        let mut upper_offsets = Vec::with_capacity(n);
        let mut upper = Vec::new();
        let mut upper_lists = 0u32;
        let push_list = |out: &mut Vec<u32>, list: &[u32], width: u32| {
            out.push(list.len() as u32);
            out.extend_from_slice(list);
            out.resize(out.len() + width as usize - list.len(), u32::MAX);
        };
        for node in &lists {
            push_list(
                &mut l0,
                node.first().map_or(&[][..], Vec::as_slice),
                l0_width,
            );
            if node.len() > 1 {
                upper_offsets.push(upper_lists);
                for l in &node[1..] {
                    push_list(&mut upper, l, up_width);
                    upper_lists += 1;
                }
            } else {
                upper_offsets.push(u32::MAX);
            }
        }
        FlatGraph {
            entry,
            max_level,
            l0_width,
            up_width,
            upper_lists,
            levels,
            l0,
            upper_offsets,
            upper,
        }
    }
}

/// An HNSW graph and its vectors in RAM, without a segment around them: the in-process index
/// the benches build and search beside other engines. Collections never use it (their graphs
/// live in segment files); the build and the search are the ones segments use.
#[derive(Debug)]
pub struct HnswIndex {
    graph: FlatGraph,
    vectors: Vec<f32>,
    /// The quantizer, the codes and (Euclid) their norms.
    codes: Option<(Quantizer, CodeBuf, Vec<f32>)>,
    dim: usize,
    metric: Distance,
}

impl HnswIndex {
    /// Builds the graph of `vectors` (row-major, `dim` each; normalised here for Cosine) on
    /// `threads` threads (0: one per core).
    ///
    /// # Panics
    /// If `dim` is 0, `vectors` is empty or not a whole number of rows.
    pub fn build(
        mut vectors: Vec<f32>,
        dim: usize,
        metric: Distance,
        cfg: HnswConfig,
        threads: usize,
    ) -> HnswIndex {
        assert!(dim > 0 && !vectors.is_empty() && vectors.len().is_multiple_of(dim));
        if metric == Distance::Cosine {
            vectors.chunks_exact_mut(dim).for_each(distance::normalize);
        }
        let graph = build(&vectors, dim, metric, cfg, threads, &|_| true);
        HnswIndex {
            graph,
            vectors,
            codes: None,
            dim,
            metric,
        }
    }

    /// The `k` rows nearest `q` with candidate list `ef`, nearest first (internal distances:
    /// see [`crate::distance`]).
    ///
    /// # Panics
    /// If `q` is not of the index's dimension.
    pub fn search(&self, q: &[f32], k: usize, ef: usize) -> Vec<Hit> {
        assert_eq!(q.len(), self.dim, "query dimension");
        let mut q = q.to_vec();
        if self.metric == Distance::Cosine {
            distance::normalize(&mut q);
        }
        let mut arrays = self.graph.arrays(&self.vectors, self.dim);
        arrays.codes = self.codes.as_ref().map(|(quant, c, norms)| Codes {
            quant,
            bytes: c.as_bytes(),
            norms,
        });
        search(
            &arrays,
            self.metric,
            &q,
            k,
            ef,
            RESCORE * k,
            &mut |_| true,
            None,
        )
    }

    /// From now on, walks the graph over one-byte codes of the vectors (scalar quantization,
    /// see [`crate::quant`]) and re-ranks the walk's `ef` candidates by their exact distance.
    pub fn quantize(&mut self) {
        let quant = Quantizer::train(&self.vectors, self.dim);
        let codes = quant.encode_all(&self.vectors);
        let norms = if self.metric == Distance::Euclid {
            quant.norms(codes.as_bytes())
        } else {
            Vec::new()
        };
        self.codes = Some((quant, codes, norms));
    }

    /// Bytes of the one-byte codes ([`HnswIndex::quantize`]), 0 without them.
    pub fn code_bytes(&self) -> usize {
        self.codes.as_ref().map_or(0, |(q, c, n)| {
            c.as_bytes().len() + 8 * q.dim() + 4 * n.len()
        })
    }

    /// Rows indexed.
    pub fn len(&self) -> usize {
        self.vectors.len() / self.dim
    }

    /// True if no row is indexed (never: a build needs one).
    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    /// Bytes of the graph (levels and neighbour lists, as stored in a segment), vectors not
    /// included.
    pub fn graph_bytes(&self) -> usize {
        self.graph.byte_len()
    }
}

/// Candidates re-scored with full vectors per hit asked for, by default, after a walk over
/// codes (Qdrant re-scores `limit × oversampling`, oversampling 1 by default). On GloVe-50,
/// re-scoring 2·k of ef = 96 candidates kept recall@10 at 0.9514, as re-scoring all 96, for
/// 1.09× the QPS (the re-score's reads are cache misses).
pub(crate) const RESCORE: usize = 2;

/// What the search needs from a stored graph.
pub(crate) trait GraphView {
    fn node_count(&self) -> u32;
    fn entry(&self) -> u32;
    fn max_level(&self) -> u32;
    fn neighbours(&self, node: u32, level: u32) -> &[u32];
    fn vector(&self, node: u32) -> &[f32];
    /// Hints that `node`'s layer-0 list is read next (default: no hint).
    fn prefetch_l0(&self, _node: u32) {}
    /// Byte codes of the vectors and their quantizer, if the walk should use them.
    fn codes(&self) -> Option<Codes<'_>> {
        None
    }
}

/// A visited set over `0..n` (a bitset: 1 bit per node).
struct Visited(Vec<u64>);

impl Visited {
    fn new(n: u32) -> Visited {
        Visited(vec![0; (n as usize).div_ceil(64)])
    }
    #[inline]
    fn contains(&self, i: u32) -> bool {
        self.0[(i / 64) as usize] & (1u64 << (i % 64)) != 0
    }
    /// Marks `i`; true if it was not marked before.
    #[inline]
    fn insert(&mut self, i: u32) -> bool {
        let (w, b) = ((i / 64) as usize, 1u64 << (i % 64));
        let fresh = self.0[w] & b == 0;
        self.0[w] |= b;
        fresh
    }
}

/// Top-`k` search with candidate list `ef`; only nodes for which `allow` holds are returned.
///
/// With byte codes (`Arrays::codes`) the walk measures distances over the codes, and the
/// `rescore` best of the `ef` nodes it ends with (at least `k`) are re-ranked by their exact
/// `f32` distance, so the hits' distances are exact; `rescore` 0 keeps the code distances
/// (approximate, no vector read). `confined`: see [`walk`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn search<G: GraphView + ?Sized>(
    g: &G,
    metric: Distance,
    q: &[f32],
    k: usize,
    ef: usize,
    rescore: usize,
    allow: &mut dyn FnMut(u32) -> bool,
    confined: Option<&Confined<'_>>,
) -> Vec<Hit> {
    let exact = |hits: &mut [Hit]| -> Result<(), std::convert::Infallible> {
        hits.iter()
            .for_each(|h| distance::prefetch(g.vector(h.row)));
        hits.iter_mut()
            .for_each(|h| h.dist = distance::distance(metric, q, g.vector(h.row)));
        Ok(())
    };
    match search_rescored(g, metric, q, k, ef, rescore, allow, confined, exact) {
        Ok(hits) => hits,
        Err(never) => match never {},
    }
}

/// [`search`], with the re-score of a walk over codes done by `exact` (which sets each hit's
/// exact distance, e.g. from vectors fetched by one batched read) rather than through the
/// graph's vectors.
#[allow(clippy::too_many_arguments)]
pub(crate) fn search_rescored<G: GraphView + ?Sized, E>(
    g: &G,
    metric: Distance,
    q: &[f32],
    k: usize,
    ef: usize,
    rescore: usize,
    allow: &mut dyn FnMut(u32) -> bool,
    confined: Option<&Confined<'_>>,
    exact: impl FnOnce(&mut [Hit]) -> Result<(), E>,
) -> Result<Vec<Hit>, E> {
    let mut out = match g.codes() {
        Some(codes) => {
            let qc = codes.quant.prepare(metric, q);
            let mut hits = walk(
                g,
                k,
                ef,
                |node| qc.distance(&codes, node),
                |node| codes.prefetch(node),
                allow,
                confined,
            );
            if rescore > 0 {
                hits.truncate(rescore.max(k));
                exact(&mut hits)?;
                hits.sort_unstable();
            }
            hits
        }
        None => walk(
            g,
            k,
            ef,
            |node| distance::distance(metric, q, g.vector(node)),
            |node| distance::prefetch(g.vector(node)),
            allow,
            confined,
        ),
    };
    out.truncate(k);
    Ok(out)
}

/// The HNSW walk: the (up to) `ef.max(k)` nearest nodes by `dist` for which `allow` holds,
/// nearest first. `prefetch` hints that a node's distance is measured next.
///
/// `confined`: layer 0 is walked only through the rows `within` holds (which must include
/// every row `allow` accepts), following each node's payload links as well as its graph
/// neighbours, and starting from the blocks' entry points as well as from where the upper
/// layers lead.
#[allow(clippy::too_many_arguments)]
fn walk<G: GraphView + ?Sized>(
    g: &G,
    k: usize,
    ef: usize,
    d: impl Fn(u32) -> f32,
    prefetch: impl Fn(u32),
    allow: &mut dyn FnMut(u32) -> bool,
    confined: Option<&Confined<'_>>,
) -> Vec<Hit> {
    let n = g.node_count();
    if n == 0 || k == 0 {
        return Vec::new();
    }
    let ef = ef.max(k);
    let mut cur = g.entry();
    let mut cur_d = d(cur);
    for level in (1..=g.max_level()).rev() {
        loop {
            let mut moved = false;
            for &nb in g.neighbours(cur, level) {
                if nb >= n {
                    continue;
                }
                let nd = d(nb);
                if nd < cur_d {
                    cur = nb;
                    cur_d = nd;
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
    }
    let mut visited = Visited::new(n);
    // Min-heap of candidates (Reverse on Hit ordering).
    let mut candidates = std::collections::BinaryHeap::new();
    let mut results = TopK::new(ef);
    let mut seed = |row: u32, dist: f32, results: &mut TopK| {
        candidates.push(std::cmp::Reverse(Hit { dist, row }));
        if allow(row) {
            results.push(Hit { dist, row });
        }
    };
    match confined {
        None => {
            visited.insert(cur);
            seed(cur, cur_d, &mut results);
        }
        Some(c) => {
            // The blocks' entry points, and the block rows among the rows nearest to where the
            // upper layers led. (Looking two hops away when one finds none did not change
            // recall: a walk from the entry converges as fast; `links.rs` tests.)
            let near = g.neighbours(cur, 0);
            let starts = c
                .entries
                .iter()
                .chain(std::iter::once(&cur))
                .chain(near)
                .copied();
            for row in starts {
                if row < n && c.within.has(row) && visited.insert(row) {
                    let dist = if row == cur { cur_d } else { d(row) };
                    seed(row, dist, &mut results);
                }
            }
        }
    }
    while let Some(std::cmp::Reverse(c)) = candidates.pop() {
        if c.dist > results.bound() {
            break;
        }
        match confined {
            None => {
                let list = g.neighbours(c.row, 0);
                // Ask for every unvisited neighbour's vector before computing the first
                // distance, so the cache misses overlap instead of queueing (see
                // `distance::prefetch`).
                for &nb in list {
                    if nb < n && !visited.contains(nb) {
                        prefetch(nb);
                    }
                }
                for &nb in list {
                    if nb >= n || !visited.insert(nb) {
                        continue;
                    }
                    let nd = d(nb);
                    if nd < results.bound() {
                        candidates.push(std::cmp::Reverse(Hit { dist: nd, row: nb }));
                        if allow(nb) {
                            results.push(Hit { dist: nd, row: nb });
                        }
                    }
                }
            }
            Some(conf) => {
                let (main, links) = (g.neighbours(c.row, 0), conf.links.of(c.row));
                let next = |nb: &&u32| **nb < n && conf.within.has(**nb);
                for &nb in main.iter().chain(links).filter(next) {
                    if !visited.contains(nb) {
                        prefetch(nb);
                    }
                }
                for &nb in main.iter().chain(links).filter(next) {
                    if !visited.insert(nb) {
                        continue;
                    }
                    let nd = d(nb);
                    if nd < results.bound() {
                        candidates.push(std::cmp::Reverse(Hit { dist: nd, row: nb }));
                        if allow(nb) {
                            results.push(Hit { dist: nd, row: nb });
                        }
                    }
                }
            }
        }
        if let Some(std::cmp::Reverse(next)) = candidates.peek() {
            g.prefetch_l0(next.row);
        }
    }
    results.into_sorted()
}
