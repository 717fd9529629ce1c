//! [`CollectionHandle`]: the read and write paths of one collection.
//!
//! ```text
//! upsert ─validate─▶ encode batch ─▶ gate(shared) ─▶ checks (dropped, writable, deadline)
//!        ─▶ WAL append ─▶ WAL sync (group commit) ─▶ apply: shadow older rows, memtable ─▶ ack
//!
//! get / scroll / search ─▶ Sources (memtable read-locked + segment list of that instant)
//!        ─▶ each source (ReadSource) ─▶ newest version per id wins ─▶ materialise
//! ```

mod edit;
#[cfg(test)]
mod norm_tests;
mod sparse_search;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::collection::Collection;
use crate::deadline::Deadline;
use crate::distance;
use crate::engine::{Inner, ManifestChange};
use crate::error::{Error, ErrorKind, Result};
use crate::filter::Filter;
use crate::index::{self, FieldType, PayloadIndexes};
use crate::mmr::{self, Mmr};
use crate::read::{Found, ReadSource, SegmentView, newest, split_named};
use crate::record::{StoredPoint, WalOp};
use crate::segment::format::{Sec, SectionSet, common};
use crate::segment::{SearchQuery, search_sections};
use crate::tiers::in_parallel;
use crate::types::*;
pub use edit::PointEdit;
use strata_tiering::policy::Tier;

/// A handle on one collection. Cheap to clone; every operation is thread-safe.
#[derive(Clone)]
pub struct CollectionHandle {
    inner: Arc<Inner>,
    coll: Arc<Collection>,
    deadline: Deadline,
}

impl std::fmt::Debug for CollectionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectionHandle")
            .field("tenant", &self.coll.tenant())
            .field("name", &self.coll.name())
            .finish()
    }
}

fn too_many(what: &str, n: usize, max: usize) -> Error {
    Error::new(
        ErrorKind::ResourceExhausted,
        format!("{what}: {n} exceed the limit of {max}"),
    )
}

impl CollectionHandle {
    pub(crate) fn new(inner: Arc<Inner>, coll: Arc<Collection>) -> CollectionHandle {
        CollectionHandle {
            inner,
            coll,
            deadline: Deadline::none(),
        }
    }

    /// The same handle, whose operations give up at `deadline` (see [`Deadline`]: a write that
    /// gives up was not applied).
    pub fn with_deadline(&self, deadline: Deadline) -> CollectionHandle {
        CollectionHandle {
            deadline,
            ..self.clone()
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        self.coll.name()
    }

    /// Its tenant.
    pub fn tenant(&self) -> &str {
        self.coll.tenant()
    }

    /// Its configuration.
    pub fn config(&self) -> CollectionConfig {
        self.coll.config().as_ref().clone()
    }

    fn check_live(&self) -> Result<()> {
        if self.coll.is_dropped() {
            return Err(Error::not_found(format!(
                "collection {:?} does not exist",
                self.coll.name()
            )));
        }
        Ok(())
    }

    /// Checks a vector given for space `space` (dimension, finite components); errors name
    /// `field`.
    pub(crate) fn check_vector(&self, space: usize, v: &[f32], field: &str) -> Result<()> {
        self.check_query(space, v, field)
    }

    fn check_query(&self, space: usize, v: &[f32], field: &str) -> Result<()> {
        self.check_vector_of(space, v, field, None)
    }

    /// [`Self::check_query`], and errors also name `point` when given. Beyond dimension and
    /// finite components, the squared norm must be at most [`crate::MAX_SQUARED_NORM`], so
    /// that no distance between two accepted vectors (or a query) overflows `f32`.
    pub(crate) fn check_vector_of(
        &self,
        space: usize,
        v: &[f32],
        field: &str,
        point: Option<PointId>,
    ) -> Result<()> {
        let of = || point.map(|p| format!(" (point {p})")).unwrap_or_default();
        let dim = self.coll.config().params(space).dim as usize;
        if v.len() != dim {
            return Err(Error::invalid(format!(
                "{field}: expected {dim} dimensions, got {}",
                v.len()
            )));
        }
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(Error::invalid(format!(
                "{field}[{i}] is {}{}: components must be finite",
                v[i],
                of()
            )));
        }
        // In f32: a sum that overflows is infinite, and refused as well.
        if let Some(squared) = distance::norm_past_bound(v) {
            return Err(Error::invalid(format!(
                "{field}{}: squared norm {squared:e} is above {:e}: distances to this vector \
                 would overflow",
                of(),
                crate::MAX_SQUARED_NORM
            )));
        }
        Ok(())
    }

    /// Refuses a filter whose evaluation would cost too much (keys read, conditions).
    fn check_filter(&self, f: Option<&Filter>) -> Result<()> {
        let Some(f) = f else { return Ok(()) };
        let o = self.inner.opts();
        let keys = f.top_level_keys().len();
        if keys > o.max_filter_keys {
            return Err(Error::invalid(format!(
                "filter: reads {keys} distinct payload keys, over the limit of {}",
                o.max_filter_keys
            )));
        }
        let size = f.size();
        if size > o.max_filter_conditions {
            return Err(Error::invalid(format!(
                "filter: holds {size} conditions, over the limit of {}",
                o.max_filter_conditions
            )));
        }
        Ok(())
    }

    /// Logs `op`, waits until durable, applies it. Returns the LSN (the new version).
    fn commit(&self, op: WalOp) -> Result<Lsn> {
        let lsn = self.coll.writer(|| self.commit_gated(op))?;
        self.after_commit();
        Ok(lsn)
    }

    /// The body of [`Self::commit`]; the caller holds the gate (shared or exclusive). The
    /// checks happen under the gate, right before the append: the commit point.
    fn commit_gated(&self, op: WalOp) -> Result<Lsn> {
        self.check_live()?;
        self.inner.check_writable()?;
        self.deadline.check("write")?;
        let bytes = op.encode();
        let wal = self.inner.wal();
        let lsn = wal.append(self.coll.id(), &bytes)?;
        wal.sync(lsn)?;
        self.coll
            .apply(lsn, op, self.inner.opts().clock.now_millis());
        Ok(lsn)
    }

    fn after_commit(&self) {
        if self.coll.memtable_stats().1 >= self.inner.opts().memtable_max_bytes as u64 {
            self.inner.wake_maintenance();
        }
    }

    /// The one gathering every read shares: `each` runs on the memtable under its read lock, then
    /// on every segment of that instant (`frozen`: with its dead bits copied under the lock, for
    /// scans and searches; lookups need no copy; with the sections `filter` reads — payload
    /// index sections, payloads — streamed from the cold tier if needed), with the deadline
    /// checked between sources. Returns the newest
    /// version of each id found, sorted by id, deletes dropped.
    fn collect(
        &self,
        what: &str,
        frozen: bool,
        filter: Option<&Filter>,
        each: impl Fn(&dyn ReadSource, &mut Vec<Found>) -> Result<()>,
    ) -> Result<Vec<Found>> {
        self.deadline.check(what)?;
        let mut found = Vec::new();
        let segments = {
            let s = self.coll.sources();
            each(&*s.mem, &mut found)?;
            s.views(frozen)
        };
        for mut seg in segments {
            self.deadline.check(what)?;
            let need = seg.seg.filter_sections(filter);
            if need != SectionSet::EMPTY {
                let hint = self.coll.hint();
                seg.body = Some(self.inner.body_for(&seg.seg, hint, need)?);
            }
            each(&seg, &mut found)?;
        }
        Ok(newest(found))
    }

    /// Ids of every live point matching `filter`, in id order.
    pub fn matching_ids(&self, filter: &Filter) -> Result<Vec<PointId>> {
        let mut ids = Vec::new();
        let mut offset = None;
        loop {
            let page = self.scroll(&ScrollRequest {
                offset,
                limit: self.inner.opts().max_result_window,
                filter: Some(filter.clone()),
                with_payload: false,
                with_vector: false,
            })?;
            ids.extend(page.points.iter().map(|p| p.id));
            match page.next_offset {
                Some(o) => offset = Some(o),
                None => return Ok(ids),
            }
        }
    }

    /// Runs `batch` on each chunk of `ids` (of the batch limit); a failure after some chunks
    /// committed says how many did.
    fn in_batches(
        &self,
        ids: &[PointId],
        what: &str,
        mut batch: impl FnMut(&[PointId]) -> Result<Lsn>,
    ) -> Result<Lsn> {
        let mut lsn = self.inner.wal().last_lsn();
        let size = self.inner.opts().max_batch_points.max(1);
        let chunks: Vec<&[PointId]> = ids.chunks(size).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            match batch(chunk) {
                Ok(l) => lsn = l,
                Err(e) if i > 0 => {
                    return Err(Error::new(
                        e.kind(),
                        format!(
                            "{what}: {} of {} batches ({} of {} points) were applied before: {}",
                            i,
                            chunks.len(),
                            i * size,
                            ids.len(),
                            e.message()
                        ),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(lsn)
    }

    /// Deletes every point matching `filter` (in batches of the batch limit). Returns the LSN of
    /// the last delete and how many points matched. Points inserted concurrently may or may not
    /// be included.
    pub fn delete_matching(&self, filter: &Filter) -> Result<(Lsn, usize)> {
        let ids = self.matching_ids(filter)?;
        let lsn = self.in_batches(&ids, "delete by filter", |chunk| self.delete(chunk))?;
        Ok((lsn, ids.len()))
    }

    /// Merges `payload`'s keys into the payload of the given points (absent ids are skipped),
    /// in batches of the batch limit. Returns the LSN of the last batch.
    pub fn set_payload(&self, ids: &[PointId], payload: &Payload) -> Result<Lsn> {
        self.edit(ids, &PointEdit::SetPayload(payload.clone()))
    }

    /// [`Self::set_payload`] on every point matching `filter`. Points inserted concurrently may
    /// or may not be included.
    pub fn set_payload_matching(&self, filter: &Filter, payload: &Payload) -> Result<Lsn> {
        self.edit_matching(filter, &PointEdit::SetPayload(payload.clone()))
    }

    /// Inserts or replaces points, all or nothing. Returns the LSN (version) of the batch.
    /// Within a batch, a repeated id keeps its last occurrence.
    pub fn upsert(&self, points: Vec<PointInput>) -> Result<Lsn> {
        self.check_live()?;
        let o = self.inner.opts();
        if points.len() > o.max_batch_points {
            return Err(Error::new(
                ErrorKind::ResourceExhausted,
                format!(
                    "points: batch of {} exceeds the limit of {} points",
                    points.len(),
                    o.max_batch_points
                ),
            ));
        }
        if points.is_empty() {
            return Ok(self.inner.wal().last_lsn());
        }
        let config = self.coll.config();
        let mut last: HashMap<PointId, usize> = HashMap::with_capacity(points.len());
        for (i, p) in points.iter().enumerate() {
            last.insert(p.id, i);
        }
        let mut stored = Vec::with_capacity(last.len());
        for (i, p) in points.into_iter().enumerate() {
            let mut vectors = Vec::with_capacity(p.vectors.len());
            for (name, mut v) in p.vectors {
                let field = match config.named {
                    true => format!("points[{i}].vector.{name}"),
                    false => format!("points[{i}].vector"),
                };
                let space = config.space_or_err(&name, &field)?;
                self.check_vector_of(space, &v, &field, Some(p.id))?;
                if config.params(space).distance == Distance::Cosine {
                    distance::normalize(&mut v);
                }
                vectors.push((space as u16, v));
            }
            vectors.sort_by_key(|v| v.0);
            let mut sparse = Vec::with_capacity(p.sparse.len());
            for (name, v) in p.sparse {
                let field = format!("points[{i}].vector.{name}");
                let space = config.sparse_space_or_err(&name, &field)?;
                sparse.push((space as u16, v));
            }
            sparse.sort_by_key(|v| v.0);
            if last[&p.id] != i {
                continue;
            }
            let payload = match &p.payload {
                Some(m) if !m.is_empty() => serde_json::to_vec(m)
                    .map_err(|e| Error::invalid(format!("points[{i}].payload: {e}")))?,
                _ => Vec::new(),
            };
            if payload.len() > o.max_payload_bytes {
                return Err(Error::new(
                    ErrorKind::ResourceExhausted,
                    format!(
                        "points[{i}].payload is {} bytes, over the limit of {}",
                        payload.len(),
                        o.max_payload_bytes
                    ),
                ));
            }
            stored.push(StoredPoint {
                id: p.id,
                vectors,
                sparse,
                payload,
            });
        }
        self.commit(WalOp::Upsert(stored))
    }

    /// Deletes points by id (absent ids are fine). Returns the LSN of the delete.
    pub fn delete(&self, ids: &[PointId]) -> Result<Lsn> {
        self.check_live()?;
        let max = self.inner.opts().max_batch_points;
        if ids.len() > max {
            return Err(too_many("points: ids", ids.len(), max));
        }
        if ids.is_empty() {
            return Ok(self.inner.wal().last_lsn());
        }
        self.commit(WalOp::Delete(ids.to_vec()))
    }

    /// The newest live version of each id that exists, in the order asked.
    pub fn get(
        &self,
        ids: &[PointId],
        with_payload: bool,
        with_vector: bool,
    ) -> Result<Vec<Record>> {
        self.check_live()?;
        let mut unique = Vec::with_capacity(ids.len());
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        unique.extend(ids.iter().filter(|id| seen.insert(**id)).copied());
        let mut found = self.collect("retrieve", false, None, |src, found| {
            for id in &unique {
                if let Some((version, row)) = src.lookup(*id) {
                    found.push(Found {
                        id: *id,
                        version,
                        dist: 0.0,
                        held: row
                            .map(|r| src.hold(r, with_payload, with_vector))
                            .transpose()?,
                    });
                }
            }
            Ok(())
        })?;
        // Only the returned rows of cold segments are read (or their segments promoted).
        self.inner
            .load_rows(&mut found, self.coll.hint(), with_payload, with_vector)?;
        let by_id: HashMap<PointId, Found> = found.into_iter().map(|f| (f.id, f)).collect();
        unique
            .iter()
            .filter_map(|id| by_id.get(id))
            .map(|f| f.record(with_payload, with_vector, &self.coll.config()))
            .collect()
    }

    /// One page of points in id order.
    pub fn scroll(&self, req: &ScrollRequest) -> Result<ScrollPage> {
        self.check_live()?;
        let limit = req.limit;
        let max = self.inner.opts().max_result_window;
        if limit == 0 || limit > max {
            return Err(Error::invalid(format!(
                "limit must be in 1..={max}, got {limit}"
            )));
        }
        let filter = req.filter.as_ref();
        self.check_filter(filter)?;
        let want = limit + 1;
        let cache = self.inner.columns();
        let (wp, wv) = (req.with_payload, req.with_vector);
        let mut rows = self.collect("scroll", true, filter, |src, found| {
            for r in src.scan(req.offset, want, filter, cache)? {
                found.push(src.found(r, 0.0, wp, wv)?);
            }
            Ok(())
        })?;
        let next_offset = rows.get(limit).map(|f| f.id);
        rows.truncate(limit);
        // Only the rows of this page are read from cold segments (or their segments promoted).
        self.inner.load_rows(&mut rows, self.coll.hint(), wp, wv)?;
        let points = rows
            .iter()
            .map(|f| f.record(wp, wv, &self.coll.config()))
            .collect::<Result<_>>()?;
        Ok(ScrollPage {
            points,
            next_offset,
        })
    }

    /// Live points matching `filter` (all when `None`), exact at one instant: the memtable and
    /// the segments' shadow bits are read together, so neither a concurrent flush nor a
    /// concurrent write makes a point count twice or not at all.
    pub fn count(&self, filter: Option<&Filter>) -> Result<u64> {
        self.check_live()?;
        self.check_filter(filter)?;
        self.deadline.check("count")?;
        let (mut n, frozen) = {
            let s = self.coll.sources();
            let n = s.mem.count(filter);
            match filter {
                None => {
                    return Ok(n + s.segments.iter().map(|seg| seg.live_rows()).sum::<u64>());
                }
                Some(_) => (n, s.views(true)),
            }
        };
        let cache = self.inner.columns();
        for v in &frozen {
            self.deadline.check("count")?;
            let need = v.seg.filter_sections(filter);
            let body = match need != SectionSet::EMPTY {
                true => Some(self.inner.body_for(&v.seg, self.coll.hint(), need)?),
                false => None,
            };
            n += v
                .seg
                .prepare(body.as_deref(), filter, cache, v.dead.as_deref())?
                .count();
        }
        Ok(n)
    }

    /// The most frequent values of an indexed payload field among the live points matching
    /// the filter, exact at one instant (as [`Self::count`]). The field needs a keyword,
    /// integer, bool or uuid index; segments written before it existed are read through their
    /// payloads until the background reindex has rewritten them.
    pub fn facet(&self, req: &FacetRequest) -> Result<Vec<FacetHit>> {
        self.check_live()?;
        if req.limit == 0 {
            return Err(Error::invalid("limit: must be at least 1"));
        }
        let filter = req.filter.as_ref();
        self.check_filter(filter)?;
        self.deadline.check("facet")?;
        let path = crate::filter::key_path(&req.key);
        let indexes = self.coll.indexes();
        let Some((key, ty)) = indexes.iter().find(|(k, t)| {
            crate::filter::key_path(k) == path && crate::segment::pindex::facetable(*t)
        }) else {
            return Err(Error::invalid(format!(
                "key: index required but not found for {:?} of one of the following types: \
                 [keyword, integer, bool, uuid]",
                req.key
            )));
        };
        let mut counts = crate::segment::pindex::FacetCounts::default();
        let frozen = {
            let s = self.coll.sources();
            s.mem.facet(*ty, &path, filter, &mut counts);
            s.views(true)
        };
        let cache = self.inner.columns();
        for v in &frozen {
            self.deadline.check("facet")?;
            let need = v.seg.facet_sections(key, *ty, filter);
            let body = self.inner.body_for(&v.seg, self.coll.hint(), need)?;
            let rf = v
                .seg
                .prepare(Some(&body), filter, cache, v.dead.as_deref())?;
            v.seg.facet(&body, &rf, key, *ty, &mut counts)?;
        }
        Ok(counts
            .top(req.limit)
            .into_iter()
            .map(|(value, count)| FacetHit { value, count })
            .collect())
    }

    /// Similarity search over every point of the collection.
    pub fn search(&self, req: &SearchRequest) -> Result<Vec<ScoredPoint>> {
        self.search_report(req).map(|r| r.points)
    }

    /// A search re-ranked by maximal marginal relevance ([`Mmr`]): the `candidates_limit`
    /// nearest points (filter, `score_threshold`, `ef`, `exact` and cold reads as in `req`) are
    /// picked from one by one, relevant yet unlike those already picked; then `offset` and
    /// `limit` apply. Each hit keeps its similarity score.
    pub fn search_mmr(&self, req: &SearchRequest, mmr: Mmr) -> Result<SearchReport> {
        if !(0.0..=1.0).contains(&mmr.diversity) {
            return Err(Error::invalid(format!(
                "mmr.diversity must be in [0, 1], got {}",
                mmr.diversity
            )));
        }
        if mmr.candidates_limit == 0 || mmr.candidates_limit > Mmr::MAX_CANDIDATES {
            return Err(Error::invalid(format!(
                "mmr.candidates_limit must be in 1..={}, got {}",
                Mmr::MAX_CANDIDATES,
                mmr.candidates_limit
            )));
        }
        let config = self.coll.config();
        let space = config.space_or_err(&req.using, "using")?;
        let mut candidates = req.clone();
        candidates.limit = mmr.candidates_limit;
        candidates.offset = 0;
        candidates.with_vector = true;
        let mut report = self.search_report(&candidates)?;
        let metric = self.coll.metric(space);
        let mut q = req.vector.clone();
        if metric == Distance::Cosine {
            distance::normalize(&mut q);
        }
        let picked = {
            let name = &config.vectors[space].0;
            let vectors: Vec<&[f32]> = report
                .points
                .iter()
                .map(|p| p.vectors.as_ref().and_then(|v| v.get(name)))
                .map(|v| v.map_or(&[][..], Vec::as_slice))
                .collect();
            let window = req.limit.saturating_add(req.offset);
            mmr::select(metric, &q, &vectors, mmr.diversity, window)
        };
        let mut slots: Vec<Option<ScoredPoint>> = report.points.drain(..).map(Some).collect();
        report.points = picked
            .into_iter()
            .skip(req.offset)
            .filter_map(|i| slots[i].take())
            .map(|mut p| {
                if !req.with_vector {
                    p.vectors = None;
                }
                p
            })
            .collect();
        Ok(report)
    }

    /// [`CollectionHandle::search`], also saying which cold segments it read, skipped (their
    /// summaries proved they could not change the results) or left out (`cold: skip`).
    ///
    /// Order: the memtable, then every segment whose body is resident, then cold segments by
    /// the lower bound of their summaries, best first; a cold segment is read only if its bound
    /// could still beat the current k-th best hit. Every hit found so far is a distinct live
    /// point (the dead bits were copied at one instant), so skipping cannot change the answer.
    pub fn search_report(&self, req: &SearchRequest) -> Result<SearchReport> {
        self.check_live()?;
        let config = self.coll.config();
        let space = config.space_or_err(&req.using, "using")?;
        self.check_query(space, &req.vector, "vector")?;
        let window = req.limit.saturating_add(req.offset);
        let max = self.inner.opts().max_result_window;
        if window > max {
            return Err(Error::invalid(format!(
                "limit + offset must be at most {max}, got {window}"
            )));
        }
        if req.limit == 0 {
            return Ok(SearchReport::default());
        }
        if let Some(ef) = req.ef
            && (ef == 0 || ef > 100_000)
        {
            return Err(Error::invalid(format!(
                "hnsw_ef must be in 1..=100000, got {ef}"
            )));
        }
        if let Some(o) = req.oversampling
            && !(1.0..=1000.0).contains(&o)
        {
            return Err(Error::invalid(format!(
                "quantization.oversampling must be in 1..=1000, got {o}"
            )));
        }
        let filter = req.filter.as_ref();
        self.check_filter(filter)?;
        let metric = self.coll.metric(space);
        let mut q = req.vector.clone();
        if metric == Distance::Cosine {
            distance::normalize(&mut q);
        }
        let query = SearchQuery {
            space,
            metric,
            vector: &q,
            k: window,
            ef: req
                .ef
                .unwrap_or(config.params(space).hnsw.ef_construct as usize)
                .max(window)
                // Oversampling raises ef no further than hnsw_ef itself may go.
                .max(
                    req.oversampling
                        .map_or(0, |o| (o * window as f64).ceil() as usize)
                        .min(100_000.max(window)),
                ),
            exact: req.exact,
            codes: !req.ignore_quantization,
            // 0: no re-score (the walk's code distances are the answer).
            rescore: match req.rescore {
                false => 0,
                true => req
                    .oversampling
                    .map_or(crate::segment::graph::RESCORE * window, |o| {
                        (o * window as f64).ceil() as usize
                    }),
            },
            paths: Some(&self.inner.search_paths),
            graphs_in_ram: self.inner.opts().graphs_in_ram,
            payload_links: self.inner.opts().payload_links,
            // Warm segments are local files: read them from the local store (with a cold tier,
            // an evicted name then answers NotFound and the re-score uses the mapping, rather
            // than ranged GETs from the object store).
            rescore_reads: {
                let local: &dyn strata_tiering::BlobStore = match self.inner.tiered() {
                    Some(t) => t.local().as_ref(),
                    None => self.inner.blobs(),
                };
                match self.inner.opts().rescore_reads {
                    crate::RescoreReads::Mapping => None,
                    crate::RescoreReads::Batched => Some((local, false)),
                    crate::RescoreReads::Auto => Some((local, true)),
                }
            },
            full_scan_bytes: self
                .inner
                .opts()
                .full_scan_threshold_kb
                .map(|kb| kb.saturating_mul(1024)),
        };
        let cache = self.inner.columns();
        let (wp, wv) = (req.with_payload, req.with_vector);
        let each = |src: &dyn ReadSource, found: &mut Vec<Found>| -> Result<()> {
            for h in src.top_k(&query, filter, cache)? {
                found.push(src.found(h.row, h.dist, wp, wv)?);
            }
            Ok(())
        };
        self.deadline.check("search")?;
        let mut found = Vec::with_capacity(4 * window);
        let views = {
            let s = self.coll.sources();
            each(&*s.mem, &mut found)?;
            s.views(true)
        };
        let (resident, cold): (Vec<SegmentView>, Vec<SegmentView>) =
            views.into_iter().partition(|v| v.seg.tier() != Tier::Cold);
        let hint = self.coll.hint();
        let inline = self.inner.opts().tiers.stream_payloads_up_to;
        // A streamed segment: vectors, the graph unless exact, payloads for a filter or when
        // small (else the payload offsets, and then the results' payloads by row).
        let need = |v: &SegmentView| {
            let small = wp && v.seg.meta.section_len(common(Sec::PayloadData)) <= inline;
            let graph = v.seg.meta.has_graph(space) && !req.exact;
            let mut s = search_sections(space, graph, small).union(v.seg.filter_sections(filter));
            // Sparse vectors are not read row by row: a search returning vectors streams them.
            if wv && !v.seg.meta.layout.sparse.is_empty() {
                s = s.union(crate::segment::compaction_sections(&v.seg.meta.layout));
            }
            match wp {
                true => s.with(common(Sec::PayloadOffsets)),
                false => s,
            }
        };
        let mut resident = resident;
        for v in resident.iter_mut() {
            self.deadline.check("search")?;
            v.body = Some(self.inner.body_for(&v.seg, hint, need(v))?);
        }
        // Two or more large indexed segments, and cores idle: search them on several threads
        // (one search's latency; with every core busy, one thread does more searches a second).
        let min_rows = self.inner.opts().parallel_search_min_rows;
        let large = |v: &SegmentView| {
            !req.exact && v.seg.meta.has_graph(space) && v.seg.meta.rows() as usize >= min_rows
        };
        let paths = &self.inner.search_paths;
        let _running = Running::start(&paths.running, 1);
        let threads = match resident.iter().filter(|v| large(v)).count() {
            0 | 1 => 1,
            n => n.min(Running::idle_cores(&paths.running) + 1),
        };
        if threads > 1 {
            // The helper threads count as running searches while they walk.
            let _helpers = Running::start(&paths.running, threads - 1);
            self.inner
                .search_paths
                .parallel
                .fetch_add(1, Ordering::Relaxed);
            // Large segments dealt round-robin to `threads` groups; the small ones go with the
            // first group (this thread's).
            let mut groups: Vec<Vec<&SegmentView>> = vec![Vec::new(); threads];
            let mut next = 0;
            for v in &resident {
                match large(v) {
                    true => {
                        groups[next % threads].push(v);
                        next += 1;
                    }
                    false => groups[0].push(v),
                }
            }
            let run = |g: &[&SegmentView]| -> Result<Vec<Found>> {
                let mut part = Vec::new();
                for v in g {
                    self.deadline.check("search")?;
                    each(*v, &mut part)?;
                }
                Ok(part)
            };
            // This thread walks the first group; rayon's pool (threads kept, not spawned per
            // search: a spawn cost more than a 100 µs walk) takes the others.
            let mut parts: Vec<Option<Result<Vec<Found>>>> = (0..threads).map(|_| None).collect();
            rayon::in_place_scope(|s| {
                let (first, rest) = parts.split_at_mut(1);
                for (slot, g) in rest.iter_mut().zip(&groups[1..]) {
                    s.spawn(|_| *slot = Some(run(g)));
                }
                first[0] = Some(run(&groups[0]));
            });
            for part in parts.into_iter().flatten() {
                found.extend(part?);
            }
        } else {
            for v in &resident {
                self.deadline.check("search")?;
                each(v, &mut found)?;
            }
        }
        let mut report = SearchReport::default();
        // A guess of the k-th best distance from the summaries alone (balls' upper bounds, row
        // counts): it only decides which cold segments to read first, never which to skip.
        // Summaries describe the first vector space only: other spaces never skip.
        let summarised = space == 0;
        let guess = {
            let mut ubs: Vec<(f64, u32)> = cold
                .iter()
                .filter(|_| summarised)
                .flat_map(|v| v.seg.meta.summary.upper_bounds(metric, &q))
                .collect();
            ubs.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut seen = 0u64;
            ubs.into_iter()
                .find(|(_, n)| {
                    seen += u64::from(*n);
                    seen >= window as u64
                })
                .map(|(ub, _)| ub)
        };
        let mut cold: Vec<(f64, SegmentView)> = cold
            .into_iter()
            .map(|v| {
                let lb = match summarised {
                    true => v.seg.meta.summary.lower_bound(metric, &q),
                    false => None,
                }
                .map_or(f64::NEG_INFINITY, |b| b.0);
                (lb, v)
            })
            .collect();
        cold.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.seg.id().cmp(&b.1.seg.id())));
        // Cold segments in waves of up to COLD_WAVE, loaded at once (a first touch pays one
        // object-store round trip per wave, not per segment), best bound first; each segment
        // is checked against the k-th hit known when its wave starts (exact either way; a
        // sequential pass could skip a little more, at a round trip per segment).
        let started = std::time::Instant::now();
        let mut queue: std::collections::VecDeque<(f64, SegmentView)> = cold.into_iter().collect();
        while !queue.is_empty() {
            let kth = kth_best(&found, window);
            // Before k hits are known, a wave takes the segments whose bound is within the
            // guess (at least one): with well-separated data, just the nearest.
            let within = |lb: f64| match (kth, guess) {
                (None, Some(g)) => lb <= g,
                _ => true,
            };
            let mut wave = Vec::with_capacity(COLD_WAVE);
            while wave.len() < COLD_WAVE
                && queue
                    .front()
                    .is_some_and(|(lb, _)| wave.is_empty() || within(*lb))
                && let Some((_, v)) = queue.pop_front()
            {
                if req.cold == ColdReads::Skip
                    || req.cold_deadline.is_some_and(|d| started.elapsed() >= d)
                {
                    report.cold_left_out += 1;
                } else if summarised
                    && kth.is_some_and(|k| !v.seg.meta.summary.can_beat(metric, &q, k))
                {
                    report.cold_skipped += 1;
                } else {
                    wave.push(v);
                }
            }
            if wave.is_empty() {
                continue;
            }
            self.deadline.check("search")?;
            let bodies = in_parallel(&wave, |v| self.inner.body_for(&v.seg, hint, need(v)));
            for (mut v, body) in wave.into_iter().zip(bodies) {
                v.body = Some(body?);
                report.cold_searched += 1;
                each(&v, &mut found)?;
            }
        }
        self.inner.note_cold_search(&report);
        let mut hits = newest(found);
        hits.sort_by(|a, b| a.dist.total_cmp(&b.dist).then(a.id.cmp(&b.id)));
        let page = req.limit.min(hits.len().saturating_sub(req.offset));
        let (mut scores, mut rows) = (Vec::with_capacity(page), Vec::with_capacity(page));
        // A distance that is not finite (`distance::distance` makes it `+inf`; only vectors
        // stored before `MAX_SQUARED_NORM` was enforced have one) ranks last and is never
        // returned: a score is always a number.
        for f in hits
            .into_iter()
            .skip(req.offset)
            .take(req.limit)
            .filter(|f| f.dist.is_finite())
        {
            let score = distance::score(metric, f.dist);
            let kept = match req.score_threshold {
                None => true,
                Some(t) if metric.higher_is_better() => score >= t,
                Some(t) => score <= t,
            };
            if kept {
                scores.push(score);
                rows.push(f);
            }
        }
        // Rows of streamed cold segments carry no payload bytes yet: only the results' are read.
        self.inner.load_rows(&mut rows, hint, wp, wv)?;
        // A loop into a sized vector: collecting through `Result` moved every point twice.
        report.points = Vec::with_capacity(rows.len());
        for (score, f) in scores.into_iter().zip(rows) {
            let (payload, vectors) = f.materialize(wp, wv)?;
            let (vectors, sparse) = split_named(&config, vectors);
            report.points.push(ScoredPoint {
                id: f.id,
                version: f.version,
                score,
                payload,
                vectors,
                sparse,
            });
        }
        Ok(report)
    }

    /// The most hits (limit + offset) one search may ask for.
    pub fn max_result_window(&self) -> usize {
        self.inner.opts().max_result_window
    }

    /// The payload indexes, sorted by key.
    pub fn payload_indexes(&self) -> Vec<(String, FieldType)> {
        self.coll.indexes().as_ref().clone()
    }

    /// Indexes payload field `key` (a path as filters write it: `a.b`, `a[].b`) as `ty`,
    /// replacing the type it had. The index list is persisted in the manifest before this
    /// returns.
    pub fn create_payload_index(&self, key: &str, ty: FieldType) -> Result<()> {
        self.change_indexes(|now| index::with_index(now, key, ty))
    }

    /// Stops indexing `key`; `false` if it was not indexed.
    pub fn drop_payload_index(&self, key: &str) -> Result<bool> {
        let mut found = false;
        self.change_indexes(|now| {
            let mut next = now.clone();
            next.retain(|(k, _)| k != key);
            found = next.len() != now.len();
            Ok(next)
        })?;
        Ok(found)
    }

    /// Changes HNSW build parameters (Qdrant's collection update): each update applies to one
    /// named vector, or to all when `vector` is `None`, in order; all or nothing, persisted in
    /// the manifest before this returns. Graphs built from then on (compaction) use them;
    /// existing graphs keep theirs until their segments are compacted again, and `ef_construct`
    /// is the default search `ef` at once.
    pub fn update_hnsw(&self, updates: &[HnswUpdate]) -> Result<()> {
        self.inner.check_writable()?;
        let m = self.inner.lock_manifest();
        self.check_live()?;
        let old = self.coll.config();
        let mut next = old.as_ref().clone();
        for u in updates {
            // Errors name the field as the request gave it (collection-wide or per vector).
            let at = match &u.vector {
                None => "hnsw_config".to_string(),
                Some(name) => format!("vectors.{name}.hnsw_config"),
            };
            if let Some(m) = u.m {
                crate::types::check_hnsw_m(m, &at)?;
            }
            if let Some(ef) = u.ef_construct {
                crate::types::check_hnsw_ef(ef, &at)?;
            }
            let targets: Vec<usize> = match &u.vector {
                None => (0..next.vectors.len()).collect(),
                Some(name) => vec![next.space_or_err(name, &format!("vectors.{name}"))?],
            };
            for i in targets {
                let h = &mut next.vectors[i].1.hnsw;
                if let Some(x) = u.m {
                    h.m = x;
                }
                if let Some(x) = u.ef_construct {
                    h.ef_construct = x;
                }
            }
        }
        next.validate()?;
        if next == *old {
            return Ok(());
        }
        let mut m = m;
        self.coll.set_config(&m, next);
        if let Err(e) = m.publish(ManifestChange::None) {
            self.coll.set_config(&m, old.as_ref().clone());
            return Err(e);
        }
        Ok(())
    }

    fn change_indexes(
        &self,
        f: impl FnOnce(&PayloadIndexes) -> Result<PayloadIndexes>,
    ) -> Result<()> {
        self.inner.check_writable()?;
        let mut m = self.inner.lock_manifest();
        self.check_live()?;
        let old = self.coll.indexes();
        let next = f(&old)?;
        if next == *old {
            return Ok(());
        }
        self.coll.set_indexes(&m, next);
        if let Err(e) = m.publish(ManifestChange::None) {
            self.coll.set_indexes(&m, old.as_ref().clone());
            return Err(e);
        }
        Ok(())
    }

    /// Each payload index with the number of points it indexes (Qdrant's `payload_schema`):
    /// rows holding a value of its type at its key, in the memtable and in every segment that
    /// carries the index (a segment written before the index was created counts once the
    /// background reindex has rewritten it; a row deleted or overwritten since its segment was
    /// written counts until that segment is compacted).
    pub fn payload_schema(&self) -> Result<Vec<(String, FieldType, u64)>> {
        self.check_live()?;
        let indexes = self.coll.indexes();
        let s = self.coll.sources();
        Ok(indexes
            .iter()
            .map(|(key, ty)| {
                let segs: u64 = s
                    .segments
                    .iter()
                    .filter_map(|seg| {
                        seg.meta
                            .layout
                            .indexes
                            .iter()
                            .find(|x| x.key == *key && x.ty == *ty)
                            .map(|x| u64::from(x.points))
                    })
                    .sum();
                (key.clone(), *ty, segs + s.mem.index_points(key, *ty))
            })
            .collect())
    }

    /// Statistics.
    pub fn info(&self) -> Result<CollectionInfo> {
        self.check_live()?;
        let segs = self.coll.segments();
        let (mem_points, mem_bytes, _) = self.coll.memtable_stats();
        Ok(CollectionInfo {
            name: self.coll.name().to_string(),
            config: self.coll.config().as_ref().clone(),
            points: self.count(None)?,
            segments: segs.len() as u64,
            indexed_segments: segs.iter().filter(|s| s.meta.indexed()).count() as u64,
            bytes: mem_bytes + segs.iter().map(|s| s.meta.file_len()).sum::<u64>(),
            memtable_points: mem_points,
            tier_hint: crate::tiers::hint_name(self.coll.hint()).to_string(),
            tier_segments: {
                let mut t = [0u64; 3];
                for s in segs.iter() {
                    t[crate::tiers::tier_index(s.tier())] += 1;
                }
                t
            },
        })
    }

    /// Seals the memtable into a segment and persists it (and any sealed segment an earlier
    /// flush could not write). False if there was nothing to flush.
    pub fn flush(&self) -> Result<bool> {
        crate::maintenance::flush(&self.inner, &self.coll)
    }

    /// Merges every segment into one (dropping dead rows, building the graph). False if there
    /// was nothing to do.
    pub fn compact(&self) -> Result<bool> {
        crate::maintenance::compact(&self.inner, &self.coll, true)
    }

    /// Runs one round of the background compaction policy now (indexing unindexed segments,
    /// merging small ones, rewriting ones with many dead rows). False if it found no work.
    pub fn maintain(&self) -> Result<bool> {
        crate::maintenance::compact(&self.inner, &self.coll, false)
    }
}

/// Cold segments a search loads at once.
const COLD_WAVE: usize = 4;

/// The `k`-th best (smallest) distance among `found`, once there are `k`.
fn kth_best(found: &[Found], k: usize) -> Option<f32> {
    if k == 0 || found.len() < k {
        return None;
    }
    let mut d: Vec<f32> = found.iter().map(|f| f.dist).collect();
    let (_, kth, _) = d.select_nth_unstable_by(k - 1, f32::total_cmp);
    Some(*kth)
}

/// Counts `n` threads as running searches (in [`crate::segment::SearchPaths::running`]) for
/// its lifetime: an estimate of this engine's busy cores, for
/// [`crate::EngineOptions::parallel_search_min_rows`].
struct Running<'a>(&'a AtomicUsize, usize);

impl Running<'_> {
    fn start(count: &AtomicUsize, n: usize) -> Running<'_> {
        count.fetch_add(n, Ordering::Relaxed);
        Running(count, n)
    }

    /// Cores no running search thread uses (the caller's own counted as running).
    fn idle_cores(count: &AtomicUsize) -> usize {
        static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let cores =
            *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        cores.saturating_sub(count.load(Ordering::Relaxed))
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::Relaxed);
    }
}
