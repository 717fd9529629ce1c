//! The memtable: the newest writes of one collection, always in RAM, searched exactly.
//!
//! Rows live in one contiguous `f32` buffer per vector space (with a flag per row saying
//! whether the row has a vector there); an ordered map from id to slot gives lookups and
//! id-ordered scrolls. A write applies only if its LSN is newer than what the map holds, so
//! replaying the WAL is idempotent and the newest version always wins. Deletes leave a
//! tombstone (they must shadow older segments until those are compacted).

use std::collections::BTreeMap;

use crate::filter::Filter;
use crate::record::StoredPoint;
use crate::scan::{self, Hit};
use crate::segment::parse_payload;
use crate::segment::writer::{RowRef, SegmentInput, SpaceInput, SparseInput};
use crate::sparse::{self, SparseVector};
use crate::types::{CollectionConfig, Distance, Lsn, Payload, PointId};

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

/// One vector space's rows: contiguous vectors (zeros where a row has none) and flags.
#[derive(Debug)]
struct SpaceCol {
    dim: usize,
    vectors: Vec<f32>,
    has: Vec<bool>,
}

impl SpaceCol {
    fn set(&mut self, row: usize, v: Option<&[f32]>) {
        let at = row * self.dim..(row + 1) * self.dim;
        if self.has.len() <= row {
            self.vectors.resize((row + 1) * self.dim, 0.0);
            self.has.resize(row + 1, false);
        }
        match v {
            Some(v) => self.vectors[at].copy_from_slice(v),
            None => self.vectors[at].fill(0.0),
        }
        self.has[row] = v.is_some();
    }
}

/// Mutable in-RAM table of one collection.
#[derive(Debug)]
pub(crate) struct Memtable {
    spaces: Vec<SpaceCol>,
    /// Per sparse space, each row's sparse vector there, if any.
    sparse: Vec<Vec<Option<SparseVector>>>,
    rows: Vec<RowMeta>,
    index: BTreeMap<PointId, Slot>,
    live: usize,
    bytes: usize,
    pub(crate) first_write_ms: Option<u64>,
    pub(crate) last_write_ms: Option<u64>,
}

/// Per-entry bookkeeping estimate (map node, metadata) used for the size trigger.
const ENTRY_OVERHEAD: usize = 96;

impl Memtable {
    /// A memtable for vectors of these dimensions (one per space) and `sparse` sparse spaces.
    pub(crate) fn new(dims: &[usize], sparse: usize) -> Memtable {
        Memtable {
            spaces: dims
                .iter()
                .map(|d| SpaceCol {
                    dim: *d,
                    vectors: Vec::new(),
                    has: Vec::new(),
                })
                .collect(),
            sparse: vec![Vec::new(); sparse],
            rows: Vec::new(),
            index: BTreeMap::new(),
            live: 0,
            bytes: 0,
            first_write_ms: None,
            last_write_ms: None,
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
        self.last_write_ms = Some(now_ms);
    }

    fn set_vectors(&mut self, row: usize, p: &StoredPoint) {
        for (i, col) in self.spaces.iter_mut().enumerate() {
            let v = p
                .vectors
                .iter()
                .find(|(s, v)| *s as usize == i && v.len() == col.dim)
                .map(|(_, v)| v.as_slice());
            col.set(row, v);
        }
        for (i, col) in self.sparse.iter_mut().enumerate() {
            if col.len() <= row {
                col.resize(row + 1, None);
            }
            let old = col[row].take().map_or(0, |v| v.len() * 8);
            col[row] = p
                .sparse
                .iter()
                .find(|(s, _)| *s as usize == i)
                .map(|(_, v)| v.clone());
            let new = col[row].as_ref().map_or(0, |v| v.len() * 8);
            self.bytes = (self.bytes + new).saturating_sub(old);
        }
    }

    fn row_bytes(&self) -> usize {
        self.spaces.iter().map(|s| s.dim * 4 + 1).sum()
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
                self.set_vectors(r, &p);
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
                self.set_vectors(row as usize, &p);
                self.bytes += self.row_bytes()
                    + p.payload.len()
                    + parsed_cost(p.payload.len())
                    + ENTRY_OVERHEAD;
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

    /// Row `row`'s vector in `space`, if it has one.
    pub(crate) fn vector(&self, space: usize, row: u32) -> Option<&[f32]> {
        let col = self.spaces.get(space)?;
        let r = row as usize;
        col.has
            .get(r)
            .copied()
            .unwrap_or(false)
            .then(|| &col.vectors[r * col.dim..(r + 1) * col.dim])
    }

    /// Every vector of row `row`, by space.
    pub(crate) fn vectors_of(&self, row: u32) -> Vec<(u16, Vec<f32>)> {
        (0..self.spaces.len())
            .filter_map(|s| self.vector(s, row).map(|v| (s as u16, v.to_vec())))
            .collect()
    }

    /// Row `row`'s sparse vector in sparse space `space`, if it has one.
    pub(crate) fn sparse_vector(&self, space: usize, row: u32) -> Option<&SparseVector> {
        self.sparse.get(space)?.get(row as usize)?.as_ref()
    }

    /// Every sparse vector of row `row`, by sparse space.
    pub(crate) fn sparse_of(&self, row: u32) -> Vec<(u16, SparseVector)> {
        (0..self.sparse.len())
            .filter_map(|s| self.sparse_vector(s, row).map(|v| (s as u16, v.clone())))
            .collect()
    }

    /// Live rows with a vector in sparse space `space`, and per dimension of `dims` those
    /// holding it (for the idf modifier).
    pub(crate) fn sparse_stats(&self, space: usize, dims: &[u32]) -> (u64, Vec<u64>) {
        let mut df = vec![0u64; dims.len()];
        let mut n = 0;
        for (r, m) in self.rows.iter().enumerate() {
            if let Some(v) = m
                .live
                .then(|| self.sparse_vector(space, r as u32))
                .flatten()
            {
                n += 1;
                for (k, d) in dims.iter().enumerate() {
                    if v.indices.binary_search(d).is_ok() {
                        df[k] += 1;
                    }
                }
            }
        }
        (n, df)
    }

    /// Exact sparse top-`k` (dot product with `indices`/`weights`) over live rows that share a
    /// dimension with the query and match `filter`: (row, score), best first.
    pub(crate) fn sparse_search(
        &self,
        space: usize,
        indices: &[u32],
        weights: &[f32],
        k: usize,
        filter: Option<&Filter>,
    ) -> Vec<(u32, f32)> {
        let mut hits: Vec<(u32, f32)> = (0..self.rows.len() as u32)
            .filter_map(|r| {
                let v = self.sparse_vector(space, r)?;
                let (s, any) = sparse::dot(indices, weights, &v.indices, &v.values);
                (any && self.row_matches(r, filter)).then_some((r, s))
            })
            .collect();
        sparse::best_first(&mut hits, k);
        hits
    }
    /// Live rows holding a value an index of type `ty` on `key` would hold.
    pub(crate) fn index_points(&self, key: &str, ty: crate::index::FieldType) -> u64 {
        let mut b = crate::segment::pindex::Builder::new(ty, key);
        for s in self.index.values() {
            if let Slot::Row(r) = s {
                b.add(*r, &self.rows[*r as usize].parsed);
            }
        }
        u64::from(b.points())
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

    /// Adds the facet values (index type `ty` at `path`) of live rows matching `filter`.
    pub(crate) fn facet(
        &self,
        ty: crate::index::FieldType,
        path: &[String],
        filter: Option<&Filter>,
        out: &mut crate::segment::pindex::FacetCounts,
    ) {
        for (r, m) in self.rows.iter().enumerate() {
            if self.row_matches(r as u32, filter) {
                for v in crate::segment::pindex::facet_values(ty, path, &m.parsed) {
                    out.add(v, 1);
                }
            }
        }
    }

    fn row_matches(&self, row: u32, filter: Option<&Filter>) -> bool {
        let m = &self.rows[row as usize];
        m.live && filter.is_none_or(|f| f.matches(m.id, &m.parsed))
    }

    /// Exact top-`k` in `space` over live rows that have a vector there and match `filter`.
    pub(crate) fn search(
        &self,
        space: usize,
        metric: Distance,
        q: &[f32],
        k: usize,
        filter: Option<&Filter>,
    ) -> Vec<Hit> {
        let Some(col) = self.spaces.get(space) else {
            return Vec::new();
        };
        scan::top_k(metric, q, &col.vectors, col.dim, k, |r| {
            col.has.get(r as usize).copied().unwrap_or(false) && self.row_matches(r, filter)
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
        config: &CollectionConfig,
        payload_indexes: crate::index::PayloadIndexes,
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
                        vectors: (0..self.spaces.len()).map(|s| self.vector(s, *r)).collect(),
                        sparse: (0..self.sparse.len())
                            .map(|s| self.sparse_vector(s, *r))
                            .collect(),
                        payload: &m.payload,
                    });
                }
                Slot::Deleted(l) => tombstones.push((*id, *l)),
            }
        }
        SegmentInput {
            segment_id,
            collection_id,
            spaces: config
                .vectors
                .iter()
                .map(|(name, p)| SpaceInput {
                    name: name.clone(),
                    dim: p.dim,
                    distance: p.distance,
                    graph: None,
                    links: None,
                    codes: None,
                })
                .collect(),
            sparse: SparseInput::of(config),
            rows,
            tombstones,
            indexed: false,
            payload_indexes,
            built_indexes: None,
        }
    }
}
