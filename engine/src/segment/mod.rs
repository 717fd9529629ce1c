//! Immutable segments: sealed memtables and compaction outputs.
//!
//! A [`Segment`] is a validated file view ([`SegmentData`]) plus in-memory state: a bitmap of
//! rows that a newer version (in the memtable or another segment) has shadowed. The file never
//! changes; the bitmap is rebuilt at start-up from versions and tombstones.

pub(crate) mod format;
pub(crate) mod graph;
mod reader;
pub(crate) mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::Value;

pub(crate) use reader::SegmentData;
pub use reader::Verify;

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
    cols: Vec<(String, Arc<Vec<Option<Value>>>)>,
}

/// One row's top-level fields, read from the cached columns.
struct RowFields<'a> {
    cols: &'a [(String, Arc<Vec<Option<Value>>>)],
    row: usize,
}

impl Fields for RowFields<'_> {
    fn field(&self, key: &str) -> Option<&Value> {
        self.cols
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, c)| c.get(self.row).and_then(Option::as_ref))
    }
}

impl RowFilter<'_> {
    /// True when `row` is live and matches the filter.
    #[inline]
    pub(crate) fn allows(&self, row: u32) -> bool {
        if self.seg.is_dead(row) {
            return false;
        }
        match self.filter {
            None => true,
            Some(f) => f.matches_fields(
                self.seg.data.id(row),
                &RowFields {
                    cols: &self.cols,
                    row: row as usize,
                },
            ),
        }
    }
}

/// A sealed segment with its shadow bitmap.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) data: SegmentData,
    dead: Vec<AtomicU64>,
    dead_count: AtomicU64,
    /// True once the file is durable and may be named in the manifest.
    pub(crate) persisted: AtomicBool,
    /// Parsed payload columns by top-level key, built lazily for filters. Memory: one
    /// `Option<Value>` (32 bytes + any string) per row per key a filter has used.
    columns: RwLock<HashMap<String, Arc<Vec<Option<Value>>>>>,
}

impl Segment {
    pub(crate) fn new(data: SegmentData, persisted: bool) -> Segment {
        let words = (data.rows() as usize).div_ceil(64);
        Segment {
            data,
            dead: (0..words).map(|_| AtomicU64::new(0)).collect(),
            dead_count: AtomicU64::new(0),
            persisted: AtomicBool::new(persisted),
            columns: RwLock::new(HashMap::new()),
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.data.segment_id()
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

    pub(crate) fn live_rows(&self) -> u64 {
        self.data.rows() as u64 - self.dead_count.load(Ordering::Acquire)
    }

    pub(crate) fn dead_fraction(&self) -> f64 {
        if self.data.rows() == 0 {
            return 0.0;
        }
        self.dead_count.load(Ordering::Acquire) as f64 / self.data.rows() as f64
    }

    /// The live row holding `id`.
    pub(crate) fn find_live(&self, id: PointId) -> Option<u32> {
        self.data.find(id).filter(|r| !self.is_dead(*r))
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

    /// Parsed columns of the given top-level payload keys, built on first use: every payload of
    /// the (immutable) segment is parsed once per key instead of once per candidate per query.
    fn columns(&self, keys: &[String]) -> Vec<(String, Arc<Vec<Option<Value>>>)> {
        {
            let cache = self
                .columns
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if keys.iter().all(|k| cache.contains_key(k)) {
                return keys
                    .iter()
                    .map(|k| (k.clone(), Arc::clone(&cache[k])))
                    .collect();
            }
        }
        let mut cache = self
            .columns
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let missing: Vec<&String> = keys.iter().filter(|k| !cache.contains_key(*k)).collect();
        if !missing.is_empty() {
            let mut cols: Vec<Vec<Option<Value>>> =
                vec![Vec::with_capacity(self.data.rows() as usize); missing.len()];
            for row in 0..self.data.rows() {
                let mut p = parse_payload(self.data.payload(row));
                for (col, key) in cols.iter_mut().zip(&missing) {
                    col.push(p.remove(key.as_str()));
                }
            }
            for (key, col) in missing.into_iter().zip(cols) {
                cache.insert(key.clone(), Arc::new(col));
            }
        }
        keys.iter()
            .map(|k| (k.clone(), Arc::clone(&cache[k])))
            .collect()
    }

    /// `filter` prepared for this segment: decides for each row whether it is live and matches.
    pub(crate) fn prepare<'a>(&'a self, filter: Option<&'a Filter>) -> RowFilter<'a> {
        let cols = match filter {
            Some(f) if f.needs_payload() => self.columns(&f.top_level_keys()),
            _ => Vec::new(),
        };
        RowFilter {
            seg: self,
            filter,
            cols,
        }
    }

    /// Top-`k` live rows matching `filter`.
    pub(crate) fn search(
        &self,
        metric: Distance,
        q: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&Filter>,
        exact: bool,
    ) -> Vec<Hit> {
        let n = self.data.rows();
        if n == 0 || k == 0 || self.live_rows() == 0 {
            return Vec::new();
        }
        let prepared = self.prepare(filter);
        let mut allow = |row: u32| prepared.allows(row);
        let use_graph = !exact
            && self.data.has_graph()
            && match filter {
                None => true,
                Some(_) => {
                    let sample = n.min(SELECTIVITY_SAMPLE);
                    let hits = (0..sample)
                        .filter(|i| allow((*i as u64 * n as u64 / sample as u64) as u32))
                        .count();
                    let frac = hits as f64 / sample as f64;
                    frac >= EXACT_FILTER_FRACTION && frac * n as f64 > ef as f64
                }
            };
        if use_graph {
            graph::search(&self.data, metric, q, k, ef, &mut allow)
        } else {
            scan::top_k(metric, q, self.data.vectors(), self.data.dim(), k, allow)
        }
    }
}

#[cfg(test)]
mod tests;
