//! The memtable: the newest writes of one collection, always in RAM, searched exactly.
//!
//! Rows live in one contiguous `f32` buffer; an ordered map from id to slot gives lookups and
//! id-ordered scrolls. A write applies only if its LSN is newer than what the map holds, so
//! replaying the WAL is idempotent and the newest version always wins. Deletes leave a
//! tombstone (they must shadow older segments until those are compacted).

use std::collections::BTreeMap;

use crate::filter::Filter;
use crate::record::StoredPoint;
use crate::scan::{self, Hit};
use crate::segment::parse_payload;
use crate::segment::writer::{RowRef, SegmentInput};
use crate::types::{Distance, Lsn, Payload, PointId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Live at this row.
    Row(u32),
    /// Deleted at this LSN.
    Deleted(Lsn),
}

#[derive(Debug)]
struct RowMeta {
    id: PointId,
    version: Lsn,
    payload: Box<[u8]>,
    /// The payload parsed once at apply time, for filters (which otherwise parsed it for every
    /// check: 1.8 ms per filtered query over 10k rows, docs/benchmarks.md).
    parsed: Payload,
    live: bool,
}

/// Rough RAM of a parsed payload: its JSON size again plus map overhead.
fn parsed_cost(json_len: usize) -> usize {
    if json_len == 0 { 0 } else { json_len + 64 }
}

/// Mutable in-RAM table of one collection.
#[derive(Debug)]
pub(crate) struct Memtable {
    dim: usize,
    vectors: Vec<f32>,
    rows: Vec<RowMeta>,
    index: BTreeMap<PointId, Slot>,
    live: usize,
    bytes: usize,
    pub(crate) first_write_ms: Option<u64>,
}

/// Per-entry bookkeeping estimate (map node, metadata) used for the size trigger.
const ENTRY_OVERHEAD: usize = 96;

impl Memtable {
    pub(crate) fn new(dim: usize) -> Memtable {
        Memtable {
            dim,
            vectors: Vec::new(),
            rows: Vec::new(),
            index: BTreeMap::new(),
            live: 0,
            bytes: 0,
            first_write_ms: None,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
    pub(crate) fn live(&self) -> usize {
        self.live
    }
    /// Approximate RAM use.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The newest state of `id` here, with its version.
    pub(crate) fn lookup(&self, id: PointId) -> Option<(Slot, Lsn)> {
        self.index.get(&id).map(|s| match *s {
            Slot::Row(r) => (*s, self.rows[r as usize].version),
            Slot::Deleted(l) => (*s, l),
        })
    }

    fn current_version(&self, id: PointId) -> Option<Lsn> {
        self.lookup(id).map(|(_, v)| v)
    }

    fn kill_row(&mut self, id: PointId) {
        if let Some(Slot::Row(r)) = self.index.get(&id) {
            self.rows[*r as usize].live = false;
            self.live -= 1;
        }
    }

    fn touch(&mut self, now_ms: u64) {
        self.first_write_ms.get_or_insert(now_ms);
    }

    /// Applies an upsert at `lsn`. False if a newer version is already here.
    pub(crate) fn upsert(&mut self, lsn: Lsn, p: StoredPoint, now_ms: u64) -> bool {
        if self.current_version(p.id).is_some_and(|v| v >= lsn) {
            return false;
        }
        self.touch(now_ms);
        match self.index.get(&p.id) {
            Some(Slot::Row(r)) => {
                // Overwrite in place: the old row is superseded.
                let r = *r as usize;
                self.vectors[r * self.dim..(r + 1) * self.dim].copy_from_slice(&p.vector);
                let old = self.rows[r].payload.len();
                self.bytes = self.bytes + p.payload.len() + parsed_cost(p.payload.len())
                    - old
                    - parsed_cost(old);
                self.rows[r].version = lsn;
                self.rows[r].parsed = parse_payload(&p.payload);
                self.rows[r].payload = p.payload.into_boxed_slice();
            }
            _ => {
                let row = self.rows.len() as u32;
                self.vectors.extend_from_slice(&p.vector);
                self.bytes +=
                    self.dim * 4 + p.payload.len() + parsed_cost(p.payload.len()) + ENTRY_OVERHEAD;
                self.rows.push(RowMeta {
                    id: p.id,
                    version: lsn,
                    parsed: parse_payload(&p.payload),
                    payload: p.payload.into_boxed_slice(),
                    live: true,
                });
                self.index.insert(p.id, Slot::Row(row));
                self.live += 1;
            }
        }
        true
    }

    /// Applies a delete at `lsn`. False if a newer version is already here.
    pub(crate) fn delete(&mut self, lsn: Lsn, id: PointId, now_ms: u64) -> bool {
        if self.current_version(id).is_some_and(|v| v >= lsn) {
            return false;
        }
        self.touch(now_ms);
        self.kill_row(id);
        if self.index.insert(id, Slot::Deleted(lsn)).is_none() {
            self.bytes += ENTRY_OVERHEAD;
        }
        true
    }

    pub(crate) fn vector(&self, row: u32) -> &[f32] {
        &self.vectors[row as usize * self.dim..(row as usize + 1) * self.dim]
    }
    pub(crate) fn payload(&self, row: u32) -> &[u8] {
        &self.rows[row as usize].payload
    }
    pub(crate) fn id(&self, row: u32) -> PointId {
        self.rows[row as usize].id
    }
    pub(crate) fn version(&self, row: u32) -> Lsn {
        self.rows[row as usize].version
    }

    fn row_matches(&self, row: u32, filter: Option<&Filter>) -> bool {
        let m = &self.rows[row as usize];
        m.live && filter.is_none_or(|f| f.matches(m.id, &m.parsed))
    }

    /// Exact top-`k` over live rows matching `filter`.
    pub(crate) fn search(
        &self,
        metric: Distance,
        q: &[f32],
        k: usize,
        filter: Option<&Filter>,
    ) -> Vec<Hit> {
        scan::top_k(metric, q, &self.vectors, self.dim, k, |r| {
            self.row_matches(r, filter)
        })
    }

    /// Live rows with id >= `from`, in id order, matching `filter`; at most `limit`.
    pub(crate) fn range(
        &self,
        from: Option<PointId>,
        limit: usize,
        filter: Option<&Filter>,
    ) -> Vec<u32> {
        let iter: Box<dyn Iterator<Item = (&PointId, &Slot)>> = match from {
            Some(f) => Box::new(self.index.range(f..)),
            None => Box::new(self.index.iter()),
        };
        iter.filter_map(|(_, s)| match s {
            Slot::Row(r) if self.row_matches(*r, filter) => Some(*r),
            _ => None,
        })
        .take(limit)
        .collect()
    }

    /// Live rows matching `filter`.
    pub(crate) fn count(&self, filter: Option<&Filter>) -> u64 {
        match filter {
            None => self.live as u64,
            Some(_) => (0..self.rows.len() as u32)
                .filter(|r| self.row_matches(*r, filter))
                .count() as u64,
        }
    }

    /// The segment contents of this memtable: live rows and tombstones, sorted by id.
    pub(crate) fn segment_input(
        &self,
        segment_id: u64,
        collection_id: u64,
        distance: Distance,
    ) -> SegmentInput<'_> {
        let mut rows = Vec::with_capacity(self.live);
        let mut tombstones = Vec::new();
        for (id, s) in &self.index {
            match s {
                Slot::Row(r) => {
                    let m = &self.rows[*r as usize];
                    rows.push(RowRef {
                        id: *id,
                        version: m.version,
                        vector: self.vector(*r),
                        payload: &m.payload,
                    });
                }
                Slot::Deleted(l) => tombstones.push((*id, *l)),
            }
        }
        SegmentInput {
            segment_id,
            collection_id,
            dim: self.dim as u32,
            distance,
            rows,
            tombstones,
            graph: None,
        }
    }
}
