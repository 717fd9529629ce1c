//! Immutable segments: sealed memtables and compaction outputs.
//!
//! A [`Segment`] is its always-resident meta file ([`SegmentMeta`]: ids, versions, tombstones),
//! a body ([`SegmentData`], the whole validated file) that is hot (heap), warm (mapped) or cold
//! (absent: only the object store has it), and in-memory state: a bitmap of rows that a newer
//! version (in the memtable or another segment) has shadowed, and access statistics for the
//! tiering policy. The file never changes; the bitmap is rebuilt at start-up from versions and
//! tombstones (the meta file holds both, so a cold segment needs no download for it).
//!
//! ```text
//! Segment ─ meta: SegmentMeta (always)        lookups, shadowing, counts, scroll order
//!         └ body: Hot(Arc<SegmentData>) | Warm(Arc<SegmentData>) | Cold
//!                 vectors, payloads, graph: a read takes the Arc (swapped atomically by a
//!                 move; readers of the old body finish on it) or loads a cold body first
//! ```

mod builder;
mod cost;
pub(crate) mod format;
pub(crate) mod graph;
pub(crate) mod links;
pub(crate) mod meta;
pub(crate) mod pindex;
mod reader;
pub(crate) mod summary;
pub(crate) mod writer;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde_json::Value;

pub(crate) use meta::SegmentMeta;
pub use reader::Verify;
pub(crate) use reader::{SegmentData, VerifyError};
use strata_tiering::policy::{Access, Tier};

use crate::columns::{Column, ColumnCache};
use crate::filter::{Bits, Fields, Filter, IndexQuery, Plan, PlanNode, RowSets};
use crate::scan::{self, Hit};
use crate::types::{Distance, Lsn, Payload, PointId};
use format::{COMMON_COUNT, PAYLOAD_SECTIONS, SectionSet, graph_sections, vector_sections};

/// Sections a compaction reads of its inputs (a segment laid out as `layout`): everything
/// but the graphs (it builds its own) and the payload indexes (it builds them again).
pub(crate) fn compaction_sections(layout: &format::Layout) -> SectionSet {
    (0..layout.spaces.len())
        .fold(SectionSet::first(COMMON_COUNT), |s, i| {
            s.union(vector_sections(i))
        })
        .union(layout.sparse_sections())
}

/// Sections a search of `space` reads: its vectors (and presence), its graph when it walks
/// one (`graph`), and the payload sections when `payloads` (a filter reads them).
pub(crate) fn search_sections(space: usize, graph: bool, payloads: bool) -> SectionSet {
    let mut s = vector_sections(space);
    if graph {
        s = s.union(graph_sections(space));
    }
    if payloads {
        s = s.union(PAYLOAD_SECTIONS);
    }
    s
}

/// Rows sampled to estimate a filter's selectivity.
const SELECTIVITY_SAMPLE: u32 = 256;

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
    /// Every condition answered by indexes and ids: the matching rows, dead ones removed.
    rows: Option<Bits>,
    /// Else the conditions left to evaluate per row (`None`: no filter).
    node: Option<PlanNode<'a>>,
    keys: Vec<String>,
    cols: Vec<Arc<Column>>,
    /// Dead bits as of a snapshot (exact counts); the live bitmap when `None`.
    frozen: Option<&'a [u64]>,
}

/// What a segment answers without payloads: its payload index sections and its ids.
struct SegmentSets<'a> {
    seg: &'a Segment,
    body: Option<&'a SegmentData>,
}

impl SegmentSets<'_> {
    /// The rows where `q` holds, shared with the body's kept answers (see [`RowSets::index`]).
    fn index_shared(&self, q: IndexQuery<'_>) -> Option<Arc<Bits>> {
        let j = self.seg.meta.layout.index_for(q)?;
        let body = self.body?;
        let view = body.payload_index(j)?;
        metrics::counter!("strata_payload_index_queries_total").increment(1);
        Some(
            body.row_sets
                .shared(format!("{j}:{q:?}"), || view.query(q, self.rows())),
        )
    }
}

impl RowSets for SegmentSets<'_> {
    fn rows(&self) -> u32 {
        self.seg.meta.rows()
    }
    fn index(&self, q: IndexQuery<'_>) -> Option<Bits> {
        let shared = self.index_shared(q)?;
        Some(Arc::try_unwrap(shared).unwrap_or_else(|kept| (*kept).clone()))
    }
    fn ids(&self, ids: &[PointId]) -> Bits {
        let mut b = Bits::none(self.rows());
        let m = &self.seg.meta;
        for id in ids {
            if let Some(r) = m.find(*id) {
                b.set(r);
            }
        }
        b
    }
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
        if let Some(b) = &self.rows {
            return b.has(row);
        }
        let dead = match self.frozen {
            Some(bits) => bits
                .get((row / 64) as usize)
                .is_some_and(|w| w & (1u64 << (row % 64)) != 0),
            None => self.seg.is_dead(row),
        };
        if dead {
            return false;
        }
        match &self.node {
            None => true,
            Some(n) => n.matches(
                row,
                self.seg.meta.id(row),
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
        match &self.rows {
            Some(b) => b.count(),
            None => (0..self.seg.meta.rows())
                .filter(|r| self.allows(*r))
                .count() as u64,
        }
    }

    /// The matching live rows when the indexes answered the whole filter.
    pub(crate) fn rows(&self) -> Option<&Bits> {
        self.rows.as_ref()
    }
}

/// Where a segment's body is.
#[derive(Clone, Debug)]
pub(crate) enum Body {
    /// Bytes in process RAM (a heap copy; an unwritten sealed memtable is hot too).
    Hot(Arc<SegmentData>),
    /// The whole file local, mapped.
    Warm(Arc<SegmentData>),
    /// Only in the cold store: reads load it first (stream or promote).
    Cold,
}

impl Body {
    pub(crate) fn tier(&self) -> Tier {
        match self {
            Body::Hot(_) => Tier::Hot,
            Body::Warm(_) => Tier::Warm,
            Body::Cold => Tier::Cold,
        }
    }
    fn data(&self) -> Option<&Arc<SegmentData>> {
        match self {
            Body::Hot(d) | Body::Warm(d) => Some(d),
            Body::Cold => None,
        }
    }
}

/// The error every read of a body that is not resident gets (the caller loads it first).
pub(crate) fn not_resident(id: u64) -> crate::error::Error {
    crate::error::Error::new(
        crate::error::ErrorKind::Internal,
        format!("segment {id} is cold: its body must be loaded before this read"),
    )
}

/// A sealed segment: meta (always resident), body (hot, warm or cold) and shadow bitmap.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) meta: SegmentMeta,
    body: RwLock<Body>,
    /// When the body entered its tier (ms, engine clock).
    since: AtomicU64,
    access: Mutex<Access>,
    /// Held by every tier move and load of this segment (single flight).
    moving: Mutex<()>,
    dead: Vec<AtomicU64>,
    dead_count: AtomicU64,
    /// True once the file is durable and may be named in the manifest.
    persisted: AtomicBool,
    /// Set when a compaction replaced this segment: reads still running on it finish, but a
    /// cold body is streamed, never promoted (its files are being deleted).
    retired: AtomicBool,
}

impl Segment {
    pub(crate) fn new(meta: SegmentMeta, body: Body, persisted: bool, now_ms: u64) -> Segment {
        let words = (meta.rows() as usize).div_ceil(64);
        Segment {
            meta,
            body: RwLock::new(body),
            since: AtomicU64::new(now_ms),
            access: Mutex::new(Access::new()),
            moving: Mutex::new(()),
            dead: (0..words).map(|_| AtomicU64::new(0)).collect(),
            dead_count: AtomicU64::new(0),
            persisted: AtomicBool::new(persisted),
            retired: AtomicBool::new(false),
        }
    }

    /// Marks this segment replaced (see the field).
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// A segment whose body is `data` (in RAM: hot), meta derived from it.
    pub(crate) fn in_ram(data: SegmentData, now_ms: u64) -> crate::error::Result<Segment> {
        let meta = SegmentMeta::open(strata_tiering::Blob::from_bytes(&data.meta_bytes(false)))
            .map_err(|e| {
                crate::error::Error::corruption(format!("meta of a fresh segment rejected: {e}"))
            })?;
        Ok(Segment::new(meta, Body::Hot(Arc::new(data)), false, now_ms))
    }

    pub(crate) fn id(&self) -> u64 {
        self.meta.segment_id()
    }

    /// The body, if resident (hot or warm).
    pub(crate) fn body(&self) -> Option<Arc<SegmentData>> {
        self.body
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .data()
            .cloned()
    }

    /// The current tier.
    pub(crate) fn tier(&self) -> Tier {
        self.body
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .tier()
    }

    /// When the body entered its current tier.
    pub(crate) fn since(&self) -> u64 {
        self.since.load(Ordering::Acquire)
    }

    /// Swaps the body (a tier move); readers holding the old one finish on it.
    pub(crate) fn set_body(&self, body: Body, now_ms: u64) {
        *self
            .body
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = body;
        self.since.store(now_ms, Ordering::Release);
    }

    /// Serialises tier moves and loads of this segment.
    pub(crate) fn move_lock(&self) -> MutexGuard<'_, ()> {
        self.moving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// True while a move or load holds [`Segment::move_lock`].
    pub(crate) fn is_moving(&self) -> bool {
        matches!(
            self.moving.try_lock(),
            Err(std::sync::TryLockError::WouldBlock)
        )
    }

    /// Records a read of the body at `now_ms`.
    pub(crate) fn touch(&self, now_ms: u64, half_life_ms: u64) {
        self.access
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .touch(now_ms, half_life_ms);
    }

    /// Access statistics.
    pub(crate) fn access(&self) -> Access {
        *self
            .access
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
        self.meta.rows() as u64 - self.dead_count.load(Ordering::Acquire)
    }

    pub(crate) fn dead_fraction(&self) -> f64 {
        if self.meta.rows() == 0 {
            return 0.0;
        }
        self.dead_count.load(Ordering::Acquire) as f64 / self.meta.rows() as f64
    }

    /// What this segment holds of `id`: `Some((version, Some(row)))` for a row — shadowed or
    /// not: whatever shadows it has a higher version elsewhere, and a reader picks the highest
    /// version among the sources it saw, which keeps a lookup consistent while a concurrent
    /// write moves `id` on — `Some((version, None))` for a tombstone, `None` otherwise.
    pub(crate) fn lookup(&self, id: PointId) -> Option<(Lsn, Option<u32>)> {
        let ids = self.meta.ids();
        match ids.find(id) {
            Some(r) => Some((ids.version(r), Some(r))),
            None => ids.find_tombstone(id).map(|l| (l, None)),
        }
    }

    /// Marks `id`'s row dead if a write at `lsn` supersedes it. Equal versions count: after a
    /// crash between persisting a segment and advancing the flushed LSN, replay re-applies the
    /// same write to the memtable, and exactly one copy must stay live.
    pub(crate) fn shadow(&self, id: PointId, lsn: Lsn) {
        let ids = self.meta.ids();
        if let Some(row) = ids.find(id)
            && ids.version(row) <= lsn
        {
            self.mark_dead(row);
        }
    }

    /// `filter` prepared for this segment: decides for each row whether it is live and
    /// matches. Payload columns come from (and go to) the engine's bounded `cache`; a filter
    /// that reads payloads needs the `body` (refused without it).
    pub(crate) fn prepare<'a>(
        &'a self,
        body: Option<&'a SegmentData>,
        filter: Option<&'a Filter>,
        cache: &ColumnCache,
        frozen: Option<&'a [u64]>,
    ) -> crate::error::Result<RowFilter<'a>> {
        let mut out = RowFilter {
            seg: self,
            rows: None,
            node: None,
            keys: Vec::new(),
            cols: Vec::new(),
            frozen,
        };
        let Some(f) = filter else {
            return Ok(out);
        };
        match f.plan(&SegmentSets { seg: self, body }) {
            Plan::Rows(mut b) => {
                match frozen {
                    Some(d) => b.remove_words(d.iter().copied()),
                    None => b.remove_words(self.dead.iter().map(|w| w.load(Ordering::Acquire))),
                }
                out.rows = Some(b);
            }
            Plan::Mixed(node) => {
                let keys = node.eval_keys();
                if !keys.is_empty() {
                    let Some(body) = body.filter(|b| b.has_all(PAYLOAD_SECTIONS)) else {
                        return Err(not_resident(self.id()));
                    };
                    out.cols = cache.get(self.id(), &keys, |missing| build_columns(body, missing));
                }
                out.keys = keys;
                out.node = Some(node);
            }
        }
        Ok(out)
    }

    /// This segment's index section over (`key`, `ty`), if it was written with one.
    pub(crate) fn index_of(&self, key: &str, ty: crate::index::FieldType) -> Option<usize> {
        self.meta
            .layout
            .indexes
            .iter()
            .position(|x| x.key == key && x.ty == ty)
    }

    /// The sections a facet over (`key`, `ty`) under `filter` reads: the filter's, and the
    /// index section (or the payloads when the segment has none).
    pub(crate) fn facet_sections(
        &self,
        key: &str,
        ty: crate::index::FieldType,
        filter: Option<&Filter>,
    ) -> SectionSet {
        let s = self.filter_sections(filter);
        match self.index_of(key, ty) {
            Some(j) => s.with(format::index_sec(self.meta.layout.spaces.len(), j)),
            None => s.union(PAYLOAD_SECTIONS),
        }
    }

    /// Adds the facet values (index (`key`, `ty`)) of the rows `rf` allows: from the index
    /// section's postings when the segment has one, else from the stored payloads.
    pub(crate) fn facet(
        &self,
        body: &SegmentData,
        rf: &RowFilter<'_>,
        key: &str,
        ty: crate::index::FieldType,
        out: &mut pindex::FacetCounts,
    ) -> crate::error::Result<()> {
        if let Some(view) = self.index_of(key, ty).and_then(|j| body.payload_index(j)) {
            for (v, n) in view.facet(|r| rf.allows(r)) {
                out.add(v, n);
            }
            return Ok(());
        }
        if !body.has_all(PAYLOAD_SECTIONS) {
            return Err(not_resident(self.id()));
        }
        let path = crate::filter::key_path(key);
        for row in (0..self.meta.rows()).filter(|r| rf.allows(*r)) {
            let payload = parse_payload(body.payload(row).unwrap_or(&[]));
            for v in pindex::facet_values(ty, &path, &payload) {
                out.add(v, 1);
            }
        }
        Ok(())
    }

    /// True when the collection's `indexes` include one this segment was written without.
    pub(crate) fn lacks_payload_index(&self, indexes: &crate::index::PayloadIndexes) -> bool {
        let have = &self.meta.layout.indexes;
        indexes
            .iter()
            .any(|(k, t)| !have.iter().any(|x| x.key == *k && x.ty == *t))
    }

    /// The sections a read of this segment under `filter` needs: the payload index sections
    /// that answer its conditions, and the payloads unless those answer all of them.
    pub(crate) fn filter_sections(&self, filter: Option<&Filter>) -> SectionSet {
        let Some(f) = filter else {
            return SectionSet::EMPTY;
        };
        let layout = &self.meta.layout;
        let spaces = layout.spaces.len();
        let mut s = f
            .index_questions()
            .into_iter()
            .filter_map(|q| layout.index_for(q))
            .fold(SectionSet::EMPTY, |s, j| {
                s.with(format::index_sec(spaces, j))
            });
        if !f.answered_by(&|q| layout.index_for(q).is_some()) {
            s = s.union(PAYLOAD_SECTIONS);
        }
        s
    }

    /// Top-`k` live rows of `body` (this segment's) matching `filter` (live by `frozen` dead
    /// bits when given).
    pub(crate) fn search(
        &self,
        body: &SegmentData,
        q: &SearchQuery<'_>,
        filter: Option<&Filter>,
        cache: &ColumnCache,
        frozen: Option<&[u64]>,
    ) -> crate::error::Result<Vec<Hit>> {
        let n = body.rows();
        if n == 0 || q.k == 0 || (frozen.is_none() && self.live_rows() == 0) {
            return Ok(Vec::new());
        }
        let space = q.space;
        if space >= body.space_count() {
            return Ok(Vec::new());
        }
        let graph = body.has_graph(space);
        let need = vector_sections(space).union(self.filter_sections(filter));
        if !body.has_all(need) || (graph && !q.exact && !body.has_all(graph_sections(space))) {
            return Err(not_resident(self.id()));
        }
        let prepared = self.prepare(Some(body), filter, cache, frozen)?;
        let all_have = body.all_have(space);
        let mut allow =
            |row: u32| (all_have || body.has_vector(space, row)) && prepared.allows(row);
        let dim = body.dim(space);
        // Rows the filter allows: exact when the indexes answered it, else sampled. The cost
        // model (or, when set, Qdrant's byte threshold) picks an exact scan of the allowed rows
        // or a walk that must pass over the refused ones.
        let cardinality = |allow: &mut dyn FnMut(u32) -> bool| match prepared.rows() {
            Some(b) if all_have => b.count() as f64,
            Some(b) => b.iter().filter(|r| body.has_vector(space, *r)).count() as f64,
            None => {
                let sample = n.min(SELECTIVITY_SAMPLE);
                let hits = (0..sample)
                    .filter(|i| allow((*i as u64 * n as u64 / sample as u64) as u32))
                    .count();
                hits as f64 / sample as f64 * n as f64
            }
        };
        // A filter requiring values whose rows have payload links confines the walk to them.
        let confine = match (filter, q.exact || !graph || !q.payload_links) {
            (Some(f), false) => self.confinement(body, f, space),
            _ => None,
        };
        let use_graph = !q.exact
            && graph
            && match filter {
                None => true,
                Some(_) => {
                    let allowed = cardinality(&mut allow);
                    allowed > q.ef.max(q.k) as f64
                        && match q.full_scan_bytes {
                            Some(b) => allowed * (dim * 4) as f64 >= b as f64,
                            None => cost::FilteredSearch {
                                rows: n as f64,
                                allowed,
                                runs: prepared.rows().map(|b| b.runs() as f64),
                                dim,
                                ef: q.ef.max(q.k),
                                codes: q.codes,
                                within: confine.as_ref().map(|c| c.2),
                            }
                            .walk_is_cheaper(),
                        }
                }
            };
        // The blocks' rows (the index's kept answer, read in place), made only for a walk.
        let within = match (&confine, use_graph) {
            (Some((q, _, _)), true) => SegmentSets {
                seg: self,
                body: Some(body),
            }
            .index_shared(*q),
            _ => None,
        };
        let confined = match (&confine, &within, body.links(space)) {
            (Some((_, entries, _)), Some(within), Some(links)) => Some(graph::Confined {
                within,
                links,
                entries,
            }),
            _ => None,
        };
        let vectors = body.vectors(space);
        if let Some(p) = q.paths {
            if confined.is_some() {
                p.confined.fetch_add(1, Ordering::Relaxed);
            }
            let counter = match (use_graph, prepared.rows()) {
                (true, _) => &p.graph,
                (false, Some(_)) => &p.index_rows,
                (false, None) => &p.scan,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Ok(match (use_graph, prepared.rows()) {
            // `use_graph` implies the space has a graph, so its arrays are there.
            (true, _) => match match q.graphs_in_ram {
                true => body.graph_arrays_in_ram(space),
                false => body.graph_arrays(space),
            } {
                None => Vec::new(),
                Some(mut arrays) => {
                    if q.codes {
                        arrays.codes = body.codes(space);
                    }
                    match q.rescore_reads {
                        // A warm segment's vectors are read for the re-score in one batch
                        // (io_uring where it works), not faulted in one by one.
                        Some((store, only_missing))
                            if arrays.codes.is_some()
                                && body.vector_file_range(space, 0).is_some() =>
                        {
                            graph::search_rescored(
                                &arrays,
                                q.metric,
                                q.vector,
                                q.k,
                                q.ef,
                                q.rescore,
                                &mut allow,
                                confined.as_ref(),
                                |hits| self.rescore_from(store, only_missing, body, q, hits),
                            )?
                        }
                        _ => graph::search(
                            &arrays,
                            q.metric,
                            q.vector,
                            q.k,
                            q.ef,
                            q.rescore,
                            &mut allow,
                            confined.as_ref(),
                        ),
                    }
                }
            },
            (false, Some(rows)) => scan::top_k_rows(
                q.metric,
                q.vector,
                vectors,
                dim,
                q.k,
                rows.iter()
                    .filter(|r| all_have || body.has_vector(space, *r)),
            ),
            (false, None) => {
                // Every row in order (no-op unless mapped and not cached).
                body.prefetch_vectors(space);
                scan::top_k(q.metric, q.vector, vectors, dim, q.k, allow)
            }
        })
    }
}

impl Segment {
    /// Where a walk of `space` under `filter` may be confined by payload links: the smallest
    /// block set among the filter's top-level `must` matches whose every value (present in
    /// this segment) has links. Returns that match (its rows, dead ones included, are the
    /// blocks'), the blocks' entry points and their rows in the space.
    fn confinement<'f>(
        &self,
        body: &SegmentData,
        filter: &'f Filter,
        space: usize,
    ) -> Option<(IndexQuery<'f>, Vec<u32>, f64)> {
        let links = body.links(space)?;
        let mut best: Option<(IndexQuery<'_>, Vec<u32>, f64)> = None;
        for q in filter.must_matches() {
            let IndexQuery::Match { values, .. } = q else {
                continue;
            };
            let Some(j) = self.meta.layout.index_for(q) else {
                continue;
            };
            let Some(view) = body.payload_index(j) else {
                continue;
            };
            let (mut entries, mut rows) = (Vec::new(), 0.0);
            // A value the segment does not hold allows none of its rows.
            let covered = values.iter().filter_map(|v| view.value_number(v)).all(|i| {
                match links.block(j as u32, i as u32) {
                    Some(b) => {
                        entries.push(b.entry);
                        rows += f64::from(b.rows);
                        true
                    }
                    None => false,
                }
            });
            if covered && !entries.is_empty() && best.as_ref().is_none_or(|b| rows < b.2) {
                best = Some((q, entries, rows));
            }
        }
        best
    }

    /// Sets each hit's exact distance in `q.space` from its `f32` vector: through `body`'s
    /// mapping when it is in the page cache (every hit, unless `only_missing`, counts as
    /// missing; a segment whose re-scores keep finding every vector cached is asked only now
    /// and then, see [`reader::ResidencyProbe`]), the others by one batched read of this
    /// segment's file from `store`. A file
    /// retired since `body` was taken is read through the mapping, which still holds it; any
    /// other failed or short read is an error naming the file.
    fn rescore_from(
        &self,
        store: &dyn strata_tiering::BlobStore,
        only_missing: bool,
        body: &SegmentData,
        q: &SearchQuery<'_>,
        all: &mut [Hit],
    ) -> crate::error::Result<()> {
        let (space, dim) = (q.space, body.dim(q.space));
        let mapped = |h: &mut Hit| {
            h.dist = crate::distance::distance(q.metric, q.vector, body.vector(space, h.row));
        };
        if only_missing {
            use reader::{Ask, ResidencyProbe};
            let cached = |h: &Hit| body.vector_resident(space, h.row);
            let trusted = match body.residency.ask() {
                Ask::No => true,
                // All of a few cached: the others are taken to be; else every one is asked.
                Ask::Sample => all.iter().take(ResidencyProbe::SAMPLE_ROWS).all(cached),
                Ask::Every => false,
            };
            if trusted {
                all.iter_mut().for_each(mapped);
                return Ok(());
            }
        }
        let mut missing: Vec<&mut Hit> = Vec::with_capacity(all.len());
        for h in all.iter_mut() {
            match only_missing && body.vector_resident(space, h.row) {
                true => mapped(h),
                false => missing.push(h),
            }
        }
        if only_missing {
            body.residency.found(missing.is_empty());
        }
        if missing.is_empty() {
            return Ok(());
        }
        let ranges: Vec<std::ops::Range<u64>> = missing
            .iter()
            .filter_map(|h| body.vector_file_range(space, h.row))
            .collect();
        if ranges.len() != missing.len() {
            return Err(crate::error::Error::corruption(format!(
                "segment {}: a graph node outside its vectors",
                self.id()
            )));
        }
        let name = strata_tiering::layout::segment(self.id());
        let got = match store.read_ranges(&name, &ranges) {
            Ok(got) => got,
            Err(e) if e.is_not_found() || e.io_kind() == Some(std::io::ErrorKind::NotFound) => {
                missing.into_iter().for_each(mapped);
                return Ok(());
            }
            Err(e) => return Err(crate::error::Error::store("re-scoring from", e)),
        };
        if got.len() != missing.len() || got.iter().any(|b| b.len() != dim * 4) {
            return Err(crate::error::Error::new(
                crate::error::ErrorKind::Internal,
                format!(
                    "re-scoring from {name}: a read returned other than the {} bytes of a vector",
                    dim * 4
                ),
            ));
        }
        let mut v = vec![0f32; dim];
        for (h, bytes) in missing.into_iter().zip(&got) {
            for (x, b) in v.iter_mut().zip(bytes.chunks_exact(4)) {
                *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
            h.dist = crate::distance::distance(q.metric, q.vector, &v);
        }
        Ok(())
    }
}

/// Parses every payload of `data` once and extracts the `keys` columns.
fn build_columns(data: &SegmentData, keys: &[&String]) -> Vec<Column> {
    let mut cols: Vec<Column> = vec![Vec::with_capacity(data.rows() as usize); keys.len()];
    for row in 0..data.rows() {
        let mut p = parse_payload(data.payload(row).unwrap_or_default());
        for (col, key) in cols.iter_mut().zip(keys) {
            col.push(p.remove(key.as_str()));
        }
    }
    cols
}

/// How segment searches ran (engine statistics): graph walks, exact scans of the rows an
/// index answered, other exact scans (evaluating the filter per row, or no graph / `exact`).
#[derive(Debug, Default)]
pub(crate) struct SearchPaths {
    pub(crate) graph: AtomicU64,
    pub(crate) index_rows: AtomicU64,
    pub(crate) scan: AtomicU64,
    /// Graph walks confined by payload links (counted among `graph`).
    pub(crate) confined: AtomicU64,
    /// Searches whose segments ran on more than one thread.
    pub(crate) parallel: AtomicU64,
    /// Threads running a search now (a search and the helpers walking its segments).
    pub(crate) running: std::sync::atomic::AtomicUsize,
}

/// A similarity query as every source sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SearchQuery<'a> {
    /// The vector space (index in the collection's sorted vector names).
    pub(crate) space: usize,
    pub(crate) metric: Distance,
    /// Normalised for Cosine.
    pub(crate) vector: &'a [f32],
    pub(crate) k: usize,
    pub(crate) ef: usize,
    pub(crate) exact: bool,
    /// Walk over the segment's one-byte codes (then re-rank exactly) rather than its vectors.
    pub(crate) codes: bool,
    /// After a walk over codes, how many of its best candidates are re-scored exactly (0:
    /// none; the hits keep their code distances).
    pub(crate) rescore: usize,
    /// Where to count the path each segment search takes (none in unit tests).
    pub(crate) paths: Option<&'a SearchPaths>,
    /// Re-score a walk over codes in a warm (mapped) segment from vectors read through this
    /// store's batched reads, not through the mapping: all of them, or (`true`) only those
    /// not in the page cache ([`crate::RescoreReads`]).
    pub(crate) rescore_reads: Option<(&'a dyn strata_tiering::BlobStore, bool)>,
    /// Walk a mapped segment's graph from a copy in process RAM
    /// ([`crate::EngineOptions::graphs_in_ram`]).
    pub(crate) graphs_in_ram: bool,
    /// Confine a filtered walk to the rows of the filter's values when the segment has payload
    /// links for them ([`crate::EngineOptions::payload_links`]).
    pub(crate) payload_links: bool,
    /// A filtered search allowing fewer vector bytes than this scans them exactly; `None`:
    /// the cost model ([`cost::FilteredSearch`]) decides.
    pub(crate) full_scan_bytes: Option<usize>,
}

#[cfg(test)]
mod tests;
