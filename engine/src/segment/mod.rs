//! Immutable segments: sealed memtables and compaction outputs.
//!
//! A [`Segment`] is a validated file view ([`SegmentData`]) plus in-memory state: a bitmap of
//! rows that a newer version (in the memtable or another segment) has shadowed. The file never
//! changes; the bitmap is rebuilt at start-up from versions and tombstones.

pub(crate) mod format;
pub(crate) mod graph;
mod reader;
pub(crate) mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::Value;

pub(crate) use reader::SegmentData;
pub use reader::Verify;

use crate::columns::{Column, ColumnCache};
use crate::filter::{Fields, Filter};
use crate::scan::{self, Hit};
use crate::types::{Distance, Lsn, Payload, PointId};

/// Below this estimated fraction of allowed rows, a filtered search scans exactly instead of
/// walking the graph (a walk would visit most of the graph to find enough matches anyway).
pub(crate) const EXACT_FILTER_FRACTION: f64 = 0.05;
/// Rows sampled to estimate a filter's selectivity.
const SELECTIVITY_SAMPLE: u32 = 256;

impl graph::GraphView for SegmentData {
    fn node_count(&self) -> u32 {
        self.rows()
    }
    fn entry(&self) -> u32 {
        self.header.graph_entry
    }
    fn max_level(&self) -> u32 {
        self.header.graph_max_level
    }
    fn neighbours(&self, node: u32, level: u32) -> &[u32] {
        self.raw_neighbours(node, level).unwrap_or(&[])
    }
    fn vector(&self, node: u32) -> &[f32] {
        SegmentData::vector(self, node)
    }
}

/// Parses a stored payload (empty bytes = empty object).
pub(crate) fn parse_payload(bytes: &[u8]) -> Payload {
    if bytes.is_empty() {
        return Payload::new();
    }
    serde_json::from_slice(bytes).unwrap_or_default()
}

/// A filter prepared for one segment (see [`Segment::prepare`]).
pub(crate) struct RowFilter<'a> {
    seg: &'a Segment,
    filter: Option<&'a Filter>,
    keys: Vec<String>,
    cols: Vec<Arc<Column>>,
    /// Dead bits as of a snapshot (exact counts); the live bitmap when `None`.
    frozen: Option<&'a [u64]>,
}

/// One row's top-level fields, read from the cached columns.
struct RowFields<'a> {
    keys: &'a [String],
    cols: &'a [Arc<Column>],
    row: usize,
}

impl Fields for RowFields<'_> {
    fn field(&self, key: &str) -> Option<&Value> {
        self.keys
            .iter()
            .position(|k| k == key)
            .and_then(|i| self.cols[i].get(self.row).and_then(Option::as_ref))
    }
}

impl RowFilter<'_> {
    /// True when `row` is live and matches the filter.
    #[inline]
    pub(crate) fn allows(&self, row: u32) -> bool {
        let dead = match self.frozen {
            Some(bits) => bits
                .get((row / 64) as usize)
                .is_some_and(|w| w & (1u64 << (row % 64)) != 0),
            None => self.seg.is_dead(row),
        };
        if dead {
            return false;
        }
        match self.filter {
            None => true,
            Some(f) => f.matches_fields(
                self.seg.data.id(row),
                &RowFields {
                    keys: &self.keys,
                    cols: &self.cols,
                    row: row as usize,
                },
            ),
        }
    }

    /// Matching live rows.
    pub(crate) fn count(&self) -> u64 {
        (0..self.seg.data.rows())
            .filter(|r| self.allows(*r))
            .count() as u64
    }
}

/// A sealed segment with its shadow bitmap.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) data: SegmentData,
    dead: Vec<AtomicU64>,
    dead_count: AtomicU64,
    /// True once the file is durable and may be named in the manifest.
    persisted: AtomicBool,
}

impl Segment {
    pub(crate) fn new(data: SegmentData, persisted: bool) -> Segment {
        let words = (data.rows() as usize).div_ceil(64);
        Segment {
            data,
            dead: (0..words).map(|_| AtomicU64::new(0)).collect(),
            dead_count: AtomicU64::new(0),
            persisted: AtomicBool::new(persisted),
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.data.segment_id()
    }

    /// True once the file is durable (it may be named in the manifest and compacted).
    pub(crate) fn is_persisted(&self) -> bool {
        self.persisted.load(Ordering::Acquire)
    }

    /// Marks `row` shadowed. True if it was live.
    pub(crate) fn mark_dead(&self, row: u32) -> bool {
        let bit = 1u64 << (row % 64);
        let prev = self.dead[(row / 64) as usize].fetch_or(bit, Ordering::AcqRel);
        let fresh = prev & bit == 0;
        if fresh {
            self.dead_count.fetch_add(1, Ordering::AcqRel);
        }
        fresh
    }

    #[inline]
    pub(crate) fn is_dead(&self, row: u32) -> bool {
        self.dead[(row / 64) as usize].load(Ordering::Acquire) & (1u64 << (row % 64)) != 0
    }

    /// A copy of the dead bits, for reads that must see one instant. Taken under the memtable
    /// lock, which every change of dead bits holds; with none dead it is empty (no copy), and an
    /// empty copy reads as "none dead".
    pub(crate) fn dead_snapshot(&self) -> Vec<u64> {
        if self.dead_count.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        self.dead
            .iter()
            .map(|w| w.load(Ordering::Acquire))
            .collect()
    }

    pub(crate) fn live_rows(&self) -> u64 {
        self.data.rows() as u64 - self.dead_count.load(Ordering::Acquire)
    }

    pub(crate) fn dead_fraction(&self) -> f64 {
        if self.data.rows() == 0 {
            return 0.0;
        }
        self.dead_count.load(Ordering::Acquire) as f64 / self.data.rows() as f64
    }

    /// What this segment holds of `id`: `Some((version, Some(row)))` for a row — shadowed or
    /// not: whatever shadows it has a higher version elsewhere, and a reader picks the highest
    /// version among the sources it saw, which keeps a lookup consistent while a concurrent
    /// write moves `id` on — `Some((version, None))` for a tombstone, `None` otherwise.
    pub(crate) fn lookup(&self, id: PointId) -> Option<(Lsn, Option<u32>)> {
        match self.data.find(id) {
            Some(r) => Some((self.data.version(r), Some(r))),
            None => self.data.find_tombstone(id).map(|l| (l, None)),
        }
    }

    /// Marks `id`'s row dead if a write at `lsn` supersedes it. Equal versions count: after a
    /// crash between persisting a segment and advancing the flushed LSN, replay re-applies the
    /// same write to the memtable, and exactly one copy must stay live.
    pub(crate) fn shadow(&self, id: PointId, lsn: Lsn) {
        if let Some(row) = self.data.find(id)
            && self.data.version(row) <= lsn
        {
            self.mark_dead(row);
        }
    }

    /// `filter` prepared for this segment: decides for each row whether it is live and
    /// matches. Payload columns come from (and go to) the engine's bounded `cache`.
    pub(crate) fn prepare<'a>(
        &'a self,
        filter: Option<&'a Filter>,
        cache: &ColumnCache,
        frozen: Option<&'a [u64]>,
    ) -> RowFilter<'a> {
        let (keys, cols) = match filter {
            Some(f) if f.needs_payload() => {
                let keys = f.top_level_keys();
                let cols = cache.get(self.id(), &keys, |missing| self.build_columns(missing));
                (keys, cols)
            }
            _ => (Vec::new(), Vec::new()),
        };
        RowFilter {
            seg: self,
            filter,
            keys,
            cols,
            frozen,
        }
    }

    /// Parses every payload once and extracts the `keys` columns.
    fn build_columns(&self, keys: &[&String]) -> Vec<Column> {
        let mut cols: Vec<Column> = vec![Vec::with_capacity(self.data.rows() as usize); keys.len()];
        for row in 0..self.data.rows() {
            let mut p = parse_payload(self.data.payload(row));
            for (col, key) in cols.iter_mut().zip(keys) {
                col.push(p.remove(key.as_str()));
            }
        }
        cols
    }

    /// Top-`k` live rows matching `filter` (live by `frozen` dead bits when given).
    pub(crate) fn search(
        &self,
        q: &SearchQuery<'_>,
        filter: Option<&Filter>,
        cache: &ColumnCache,
        frozen: Option<&[u64]>,
    ) -> Vec<Hit> {
        let n = self.data.rows();
        if n == 0 || q.k == 0 || (frozen.is_none() && self.live_rows() == 0) {
            return Vec::new();
        }
        let prepared = self.prepare(filter, cache, frozen);
        let mut allow = |row: u32| prepared.allows(row);
        let use_graph = !q.exact
            && self.data.has_graph()
            && match filter {
                None => true,
                Some(_) => {
                    let sample = n.min(SELECTIVITY_SAMPLE);
                    let hits = (0..sample)
                        .filter(|i| allow((*i as u64 * n as u64 / sample as u64) as u32))
                        .count();
                    let frac = hits as f64 / sample as f64;
                    frac >= EXACT_FILTER_FRACTION && frac * n as f64 > q.ef as f64
                }
            };
        if use_graph {
            graph::search(&self.data, q.metric, q.vector, q.k, q.ef, &mut allow)
        } else {
            scan::top_k(
                q.metric,
                q.vector,
                self.data.vectors(),
                self.data.dim(),
                q.k,
                allow,
            )
        }
    }
}

/// A similarity query as every source sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SearchQuery<'a> {
    pub(crate) metric: Distance,
    /// Normalised for Cosine.
    pub(crate) vector: &'a [f32],
    pub(crate) k: usize,
    pub(crate) ef: usize,
    pub(crate) exact: bool,
}

#[cfg(test)]
mod tests;
