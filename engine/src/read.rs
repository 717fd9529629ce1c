//! One read-source abstraction over the memtable and sealed segments (as Qdrant's
//! `SegmentEntry`), so that get, scroll and search gather and merge rows once.
//!
//! ```text
//! Sources (memtable read-locked + segment list of that instant)
//!   ├─ memtable: ReadSource ─┐  lookup / top_k / scan → Found { id, version, dist, held }
//!   └─ segment:  ReadSource ─┴▶ newest(): per id keep the highest version (a delete hides)
//! ```
//! A segment view carries the segment's body when the read needs it (vectors, payloads, the
//! graph): for a cold segment, the read gets the body or the sections it needs streamed
//! (`Inner::body_for`), and a result row's own bytes by ranged reads (`Inner::load_rows`); a
//! view or body without what a read needs refuses it with an error, never answers from holes.

use std::sync::Arc;

use crate::columns::ColumnCache;
use crate::error::Result;
use crate::filter::Filter;
use crate::memtable::{Memtable, Slot};
use crate::scan::Hit;
use crate::segment::format::{PAYLOAD_SECTIONS, vector_sections};
use crate::segment::{SearchQuery, Segment, SegmentData, not_resident, parse_payload};
use crate::sparse::SparseVector;
use crate::types::{CollectionConfig, Lsn, Payload, PointId, Record, SparseVectors, Vectors};

/// A row's vectors by space (the index of the name in the collection's sorted names).
pub(crate) type SpaceVectors = Vec<(u16, Vec<f32>)>;

/// A row's dense and sparse vectors by space.
#[derive(Clone, Debug, Default)]
pub(crate) struct RowVectors {
    pub(crate) dense: SpaceVectors,
    /// By sparse space (the index of the name in the collection's sorted sparse names).
    pub(crate) sparse: Vec<(u16, SparseVector)>,
}

/// `v` by name.
pub(crate) fn named(config: &CollectionConfig, v: RowVectors) -> (Vectors, SparseVectors) {
    let dense = v
        .dense
        .into_iter()
        .filter_map(|(s, v)| Some((config.vectors.get(s as usize)?.0.clone(), v)))
        .collect();
    let sparse = v
        .sparse
        .into_iter()
        .filter_map(|(s, v)| Some((config.sparse.get(s as usize)?.0.clone(), v)))
        .collect();
    (dense, sparse)
}

/// Materialised vectors by name: dense (`None` when not asked for) and sparse (empty then).
pub(crate) fn split_named(
    config: &CollectionConfig,
    v: Option<RowVectors>,
) -> (Option<Vectors>, SparseVectors) {
    match v.map(|v| named(config, v)) {
        Some((d, s)) => (Some(d), s),
        None => (None, SparseVectors::new()),
    }
}

/// A result row's data until it is materialised: copied out of the memtable (which changes
/// under its lock), or a reference into an immutable segment.
#[derive(Debug)]
pub(crate) enum Held {
    Copied {
        payload: Option<Vec<u8>>,
        vectors: Option<RowVectors>,
    },
    Segment(Arc<SegmentData>, u32),
    /// A row of a segment whose body the read did not load: `Inner::load_rows` reads it (or
    /// its promoted segment) before the row is materialised (only returned rows are read).
    Cold(Arc<Segment>, u32),
}

impl Held {
    /// The payload and vectors, when asked for. A row whose body was not loaded is refused.
    pub(crate) fn materialize(
        &self,
        payload: bool,
        vector: bool,
    ) -> Result<(Option<Payload>, Option<RowVectors>)> {
        match self {
            Held::Copied {
                payload: p,
                vectors: v,
            } => Ok((
                payload.then(|| p.as_deref().map(parse_payload).unwrap_or_default()),
                vector.then(|| v.clone().unwrap_or_default()),
            )),
            Held::Segment(s, r) => {
                let refused = || not_resident(s.segment_id());
                let p = match (payload, s.payload(*r)) {
                    (false, _) => None,
                    (true, Some(p)) => Some(parse_payload(p)),
                    (true, None) if s.has_all(PAYLOAD_SECTIONS) => {
                        return Err(crate::error::Error::corruption(format!(
                            "segment {}: the payload offsets of row {r} are out of range",
                            s.segment_id()
                        )));
                    }
                    (true, None) => return Err(refused()),
                };
                let v = match vector {
                    true => {
                        let mut out = RowVectors::default();
                        for space in 0..s.space_count() {
                            if !s.has_all(vector_sections(space)) {
                                return Err(refused());
                            }
                            if s.has_vector(space, *r) {
                                out.dense.push((space as u16, s.vector(space, *r).to_vec()));
                            }
                        }
                        for j in 0..s.sparse_count() {
                            let view = s.sparse_view(j).ok_or_else(refused)?;
                            if let Some(v) = view.row(*r) {
                                out.sparse.push((j as u16, v));
                            }
                        }
                        Some(out)
                    }
                    false => None,
                };
                Ok((p, v))
            }
            Held::Cold(s, _) => Err(not_resident(s.id())),
        }
    }
}

/// A row a read found in some source.
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) id: PointId,
    pub(crate) version: Lsn,
    /// Internal distance for searches (lower is closer); 0 otherwise.
    pub(crate) dist: f32,
    /// `None` when the source holds a delete of `id` at `version`.
    pub(crate) held: Option<Held>,
}

impl Found {
    /// Payload and vectors as asked (none for a delete).
    pub(crate) fn materialize(
        &self,
        payload: bool,
        vector: bool,
    ) -> Result<(Option<Payload>, Option<RowVectors>)> {
        match &self.held {
            Some(h) => h.materialize(payload, vector),
            None => Ok((None, None)),
        }
    }

    /// The row as a [`Record`] of a collection configured as `config`.
    pub(crate) fn record(
        &self,
        payload: bool,
        vector: bool,
        config: &CollectionConfig,
    ) -> Result<Record> {
        let (payload, vectors) = self.materialize(payload, vector)?;
        let (vectors, sparse) = split_named(config, vectors);
        Ok(Record {
            id: self.id,
            version: self.version,
            payload,
            vectors,
            sparse,
        })
    }
}

/// What every kind of source answers.
pub(crate) trait ReadSource {
    /// The newest state of `id` here: `Some((version, Some(row)))` live, `Some((version,
    /// None))` deleted, `None` when this source says nothing of it.
    fn lookup(&self, id: PointId) -> Option<(Lsn, Option<u32>)>;
    /// The `q.k` closest live rows matching `filter`.
    fn top_k(
        &self,
        q: &SearchQuery<'_>,
        filter: Option<&Filter>,
        cache: &ColumnCache,
    ) -> Result<Vec<Hit>>;
    /// Live rows matching `filter` with id `>= from`, in id order, at most `limit`.
    fn scan(
        &self,
        from: Option<PointId>,
        limit: usize,
        filter: Option<&Filter>,
        cache: &ColumnCache,
    ) -> Result<Vec<u32>>;
    /// Id of `row`.
    fn id(&self, row: u32) -> PointId;
    /// Version of `row`.
    fn version(&self, row: u32) -> Lsn;
    /// Keeps what a result needs of `row`.
    fn hold(&self, row: u32, payload: bool, vector: bool) -> Result<Held>;

    /// `row` as a found row.
    fn found(&self, row: u32, dist: f32, payload: bool, vector: bool) -> Result<Found> {
        Ok(Found {
            id: self.id(row),
            version: self.version(row),
            dist,
            held: Some(self.hold(row, payload, vector)?),
        })
    }
}

impl ReadSource for Memtable {
    fn lookup(&self, id: PointId) -> Option<(Lsn, Option<u32>)> {
        Memtable::lookup(self, id).map(|(slot, v)| match slot {
            Slot::Row(r) => (v, Some(r)),
            Slot::Deleted(_) => (v, None),
        })
    }
    fn top_k(
        &self,
        q: &SearchQuery<'_>,
        filter: Option<&Filter>,
        _: &ColumnCache,
    ) -> Result<Vec<Hit>> {
        Ok(self.search(q.space, q.metric, q.vector, q.k, filter))
    }
    fn scan(
        &self,
        from: Option<PointId>,
        limit: usize,
        filter: Option<&Filter>,
        _: &ColumnCache,
    ) -> Result<Vec<u32>> {
        Ok(self.range(from, limit, filter))
    }
    fn id(&self, row: u32) -> PointId {
        Memtable::id(self, row)
    }
    fn version(&self, row: u32) -> Lsn {
        Memtable::version(self, row)
    }
    fn hold(&self, row: u32, payload: bool, vector: bool) -> Result<Held> {
        Ok(Held::Copied {
            payload: payload.then(|| self.payload(row).to_vec()),
            vectors: vector.then(|| RowVectors {
                dense: self.vectors_of(row),
                sparse: self.sparse_of(row),
            }),
        })
    }
}

/// A segment as one read sees it: its dead bits copied at the instant the read took its view
/// (under the memtable lock), so that a write landing during the read — which marks the old row
/// dead and puts the new one in the memtable the read has already passed — hides nothing from
/// it. Lookups need no copy (see [`Segment::lookup`]): `dead` is `None` for them. `body` is the
/// segment's body when the read needs it (loaded by the reader if the segment was cold).
#[derive(Debug)]
pub(crate) struct SegmentView {
    pub(crate) seg: Arc<Segment>,
    pub(crate) dead: Option<Vec<u64>>,
    pub(crate) body: Option<Arc<SegmentData>>,
}

impl SegmentView {
    fn body(&self) -> Result<&Arc<SegmentData>> {
        self.body
            .as_ref()
            .ok_or_else(|| not_resident(self.seg.id()))
    }
}

impl ReadSource for SegmentView {
    fn lookup(&self, id: PointId) -> Option<(Lsn, Option<u32>)> {
        self.seg.lookup(id)
    }
    fn top_k(
        &self,
        q: &SearchQuery<'_>,
        filter: Option<&Filter>,
        cache: &ColumnCache,
    ) -> Result<Vec<Hit>> {
        self.seg
            .search(self.body()?, q, filter, cache, self.dead.as_deref())
    }
    fn scan(
        &self,
        from: Option<PointId>,
        limit: usize,
        filter: Option<&Filter>,
        cache: &ColumnCache,
    ) -> Result<Vec<u32>> {
        let seg = &self.seg;
        let prepared = seg.prepare(self.body.as_deref(), filter, cache, self.dead.as_deref())?;
        let mut r = from.map_or(0, |o| seg.meta.lower_bound(o));
        let mut out = Vec::new();
        while r < seg.meta.rows() && out.len() < limit {
            if prepared.allows(r) {
                out.push(r);
            }
            r += 1;
        }
        Ok(out)
    }
    fn id(&self, row: u32) -> PointId {
        self.seg.meta.id(row)
    }
    fn version(&self, row: u32) -> Lsn {
        self.seg.meta.version(row)
    }
    fn hold(&self, row: u32, payload: bool, vector: bool) -> Result<Held> {
        Ok(match &self.body {
            _ if !payload && !vector => Held::Copied {
                payload: None,
                vectors: None,
            },
            Some(b) => Held::Segment(Arc::clone(b), row),
            None => Held::Cold(Arc::clone(&self.seg), row),
        })
    }
}

/// Keeps, for each id, only its newest version (the merge every read shares), dropping ids
/// whose newest state is a delete. Output is sorted by id.
pub(crate) fn newest(mut found: Vec<Found>) -> Vec<Found> {
    found.sort_by(|a, b| a.id.cmp(&b.id).then(b.version.cmp(&a.version)));
    found.dedup_by_key(|f| f.id);
    found.retain(|f| f.held.is_some());
    found
}
