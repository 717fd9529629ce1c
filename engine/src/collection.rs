//! A collection and its public handle: the read and write paths.
//!
//! ```text
//! upsert ─validate─▶ encode batch ─▶ gate(read) ─▶ WAL append ─▶ WAL sync (group commit)
//!        ─▶ mem(write): shadow older rows in segments, insert into memtable ─▶ ack
//!
//! search ─▶ memtable (exact) ─┐
//!        ─▶ each segment (HNSW or exact; dead + filter as allow-list) ─┴▶ merge, newest id wins
//! ```
//! Sources are read memtable first, then segments: a concurrent seal moves rows from the
//! memtable into a new segment, and this order sees them at least once (duplicates are merged).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::distance;
use crate::engine::{Inner, read, write};
use crate::error::{Error, ErrorKind, Result};
use crate::filter::Filter;
use crate::manifest::{CollectionEntry, SegmentEntry};
use crate::memtable::{Memtable, Slot};
use crate::record::{StoredPoint, WalOp};
use crate::segment::{Segment, parse_payload};
use crate::types::*;
use crate::wal::Wal;

/// State of one collection.
#[derive(Debug)]
pub(crate) struct Collection {
    pub(crate) id: u64,
    pub(crate) tenant: String,
    pub(crate) name: String,
    pub(crate) config: CollectionConfig,
    pub(crate) created_lsn: Lsn,
    /// Writers hold it shared from WAL append to memtable apply; sealing holds it exclusively,
    /// so a sealed memtable holds every record up to the LSN read at the seal.
    pub(crate) gate: RwLock<()>,
    pub(crate) mem: RwLock<Memtable>,
    pub(crate) segments: RwLock<Arc<Vec<Arc<Segment>>>>,
    pub(crate) flushed_lsn: AtomicU64,
    pub(crate) dropped: AtomicBool,
    pub(crate) flush_lock: Mutex<()>,
    pub(crate) compact_lock: Mutex<()>,
}

impl Collection {
    pub(crate) fn new(e: &CollectionEntry, segments: Vec<Arc<Segment>>) -> Collection {
        Collection {
            id: e.id,
            tenant: e.tenant.clone(),
            name: e.name.clone(),
            config: e.config,
            created_lsn: e.created_lsn,
            gate: RwLock::new(()),
            mem: RwLock::new(Memtable::new(e.config.dim as usize)),
            segments: RwLock::new(Arc::new(segments)),
            flushed_lsn: AtomicU64::new(e.flushed_lsn),
            dropped: AtomicBool::new(false),
            flush_lock: Mutex::new(()),
            compact_lock: Mutex::new(()),
        }
    }

    pub(crate) fn metric(&self) -> Distance {
        self.config.distance
    }

    pub(crate) fn manifest_entry(&self, flushed: Option<(u64, Lsn)>) -> CollectionEntry {
        let flushed_lsn = match flushed {
            Some((id, lsn)) if id == self.id => lsn,
            _ => self.flushed_lsn.load(Ordering::Acquire),
        };
        CollectionEntry {
            id: self.id,
            tenant: self.tenant.clone(),
            name: self.name.clone(),
            config: self.config,
            created_lsn: self.created_lsn,
            flushed_lsn,
            segments: read(&self.segments)
                .iter()
                .filter(|s| s.persisted.load(Ordering::Acquire))
                .map(|s| SegmentEntry {
                    id: s.id(),
                    rows: s.data.rows(),
                    tombstones: s.data.tombstone_count() as u32,
                    min_lsn: s.data.min_lsn(),
                    max_lsn: s.data.max_lsn(),
                    file_len: s.data.file_len(),
                    has_graph: s.data.has_graph(),
                })
                .collect(),
        }
    }

    /// Applies a logged op at `lsn` (write path and WAL replay).
    pub(crate) fn apply(&self, lsn: Lsn, op: WalOp, now_ms: u64) {
        let mut mem = write(&self.mem);
        let segs = Arc::clone(&read(&self.segments));
        match op {
            WalOp::Upsert(points) => {
                for p in points {
                    segs.iter().for_each(|s| s.shadow(p.id, lsn));
                    mem.upsert(lsn, p, now_ms);
                }
            }
            WalOp::Delete(ids) => {
                for id in ids {
                    segs.iter().for_each(|s| s.shadow(id, lsn));
                    mem.delete(lsn, id, now_ms);
                }
            }
        }
    }

    pub(crate) fn segments(&self) -> Arc<Vec<Arc<Segment>>> {
        Arc::clone(&read(&self.segments))
    }
}

/// Where a result row lives.
enum Src {
    Mem { payload: Vec<u8>, vector: Vec<f32> },
    Seg(Arc<Segment>, u32),
}

struct Candidate {
    dist: f32,
    id: PointId,
    version: Lsn,
    src: Src,
}

/// A handle on one collection. Cheap to clone; every operation is thread-safe.
#[derive(Clone)]
pub struct CollectionHandle {
    inner: Arc<Inner>,
    coll: Arc<Collection>,
}

impl std::fmt::Debug for CollectionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectionHandle")
            .field("tenant", &self.coll.tenant)
            .field("name", &self.coll.name)
            .finish()
    }
}

fn materialize(
    src: &Src,
    with_payload: bool,
    with_vector: bool,
) -> (Option<Payload>, Option<Vec<f32>>) {
    match src {
        Src::Mem { payload, vector } => (
            with_payload.then(|| parse_payload(payload)),
            with_vector.then(|| vector.clone()),
        ),
        Src::Seg(s, r) => (
            with_payload.then(|| parse_payload(s.data.payload(*r))),
            with_vector.then(|| s.data.vector(*r).to_vec()),
        ),
    }
}

impl CollectionHandle {
    pub(crate) fn new(inner: Arc<Inner>, coll: Arc<Collection>) -> CollectionHandle {
        CollectionHandle { inner, coll }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.coll.name
    }

    /// Its tenant.
    pub fn tenant(&self) -> &str {
        &self.coll.tenant
    }

    /// Its configuration.
    pub fn config(&self) -> CollectionConfig {
        self.coll.config
    }

    fn check_live(&self) -> Result<()> {
        if self.coll.dropped.load(Ordering::Acquire) {
            return Err(Error::not_found(format!(
                "collection {:?} does not exist",
                self.coll.name
            )));
        }
        Ok(())
    }

    fn check_query(&self, v: &[f32], field: &str) -> Result<()> {
        let dim = self.coll.config.dim as usize;
        if v.len() != dim {
            return Err(Error::invalid(format!(
                "{field}: expected {dim} dimensions, got {}",
                v.len()
            )));
        }
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(Error::invalid(format!(
                "{field}[{i}] is {}: components must be finite",
                v[i]
            )));
        }
        Ok(())
    }

    /// Logs `op`, waits until durable, applies it. Returns the LSN (the new version).
    fn commit(&self, op: WalOp) -> Result<Lsn> {
        let lsn = {
            let _gate = read(&self.coll.gate);
            self.commit_gated(op)?
        };
        self.after_commit();
        Ok(lsn)
    }

    /// The body of [`Self::commit`]; the caller holds the gate (shared or exclusive).
    fn commit_gated(&self, op: WalOp) -> Result<Lsn> {
        self.check_live()?;
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::new(
                ErrorKind::Unavailable,
                "the engine is shutting down",
            ));
        }
        let bytes = op.encode();
        let lsn = self.inner.wal.append(self.coll.id, &bytes)?;
        self.inner.wal.sync(lsn)?;
        self.coll.apply(lsn, op, self.inner.opts.clock.now_millis());
        Ok(lsn)
    }

    fn after_commit(&self) {
        if read(&self.coll.mem).bytes() >= self.inner.opts.memtable_max_bytes {
            self.inner.wake.notify_all();
        }
    }

    /// Ids of every live point matching `filter`, in id order.
    pub fn matching_ids(&self, filter: &Filter) -> Result<Vec<PointId>> {
        let mut ids = Vec::new();
        let mut offset = None;
        loop {
            let page = self.scroll(&ScrollRequest {
                offset,
                limit: self.inner.opts.max_result_window,
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

    /// Deletes every point matching `filter` (in batches of the batch limit). Returns the LSN of
    /// the last delete and how many points matched. Points inserted concurrently may or may not
    /// be included.
    pub fn delete_matching(&self, filter: &Filter) -> Result<(Lsn, usize)> {
        let ids = self.matching_ids(filter)?;
        let mut lsn = self.inner.wal.last_lsn();
        for chunk in ids.chunks(self.inner.opts.max_batch_points.max(1)) {
            lsn = self.delete(chunk)?;
        }
        Ok((lsn, ids.len()))
    }

    /// Merges `payload`'s keys into the payload of the given points (absent ids are skipped),
    /// in batches of the batch limit. Returns the LSN of the last batch.
    pub fn set_payload(&self, ids: &[PointId], payload: &Payload) -> Result<Lsn> {
        let mut lsn = self.inner.wal.last_lsn();
        for chunk in ids.chunks(self.inner.opts.max_batch_points.max(1)) {
            lsn = self.set_payload_batch(chunk, payload)?;
        }
        Ok(lsn)
    }

    /// [`Self::set_payload`] on every point matching `filter`. Points inserted concurrently may
    /// or may not be included.
    pub fn set_payload_matching(&self, filter: &Filter, payload: &Payload) -> Result<Lsn> {
        let ids = self.matching_ids(filter)?;
        self.set_payload(&ids, payload)
    }

    /// One batch of [`Self::set_payload`]. Atomic with respect to other writes of this
    /// collection: it holds the collection's write gate exclusively from reading the current
    /// payloads to applying the new ones.
    fn set_payload_batch(&self, ids: &[PointId], payload: &Payload) -> Result<Lsn> {
        self.check_live()?;
        let lsn = {
            let _gate = write(&self.coll.gate);
            let current = self.get(ids, true, true)?;
            if current.is_empty() {
                return Ok(self.inner.wal.last_lsn());
            }
            let mut points = Vec::with_capacity(current.len());
            for r in current {
                let mut merged = r.payload.unwrap_or_default();
                for (k, v) in payload {
                    merged.insert(k.clone(), v.clone());
                }
                let bytes = serde_json::to_vec(&merged)
                    .map_err(|e| Error::invalid(format!("payload: {e}")))?;
                if bytes.len() > self.inner.opts.max_payload_bytes {
                    return Err(Error::new(
                        ErrorKind::ResourceExhausted,
                        format!(
                            "payload of point {} would be {} bytes, over the limit of {}",
                            r.id,
                            bytes.len(),
                            self.inner.opts.max_payload_bytes
                        ),
                    ));
                }
                points.push(StoredPoint {
                    id: r.id,
                    vector: r.vector.unwrap_or_default(),
                    payload: bytes,
                });
            }
            self.commit_gated(WalOp::Upsert(points))?
        };
        self.after_commit();
        Ok(lsn)
    }

    /// Inserts or replaces points, all or nothing. Returns the LSN (version) of the batch.
    /// Within a batch, a repeated id keeps its last occurrence.
    pub fn upsert(&self, points: Vec<PointInput>) -> Result<Lsn> {
        self.check_live()?;
        let o = &self.inner.opts;
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
            return Ok(self.inner.wal.last_lsn());
        }
        let cosine = self.coll.config.distance == Distance::Cosine;
        let mut last: HashMap<PointId, usize> = HashMap::with_capacity(points.len());
        for (i, p) in points.iter().enumerate() {
            last.insert(p.id, i);
        }
        let mut stored = Vec::with_capacity(last.len());
        for (i, p) in points.into_iter().enumerate() {
            self.check_query(&p.vector, &format!("points[{i}].vector"))?;
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
            let mut vector = p.vector;
            if cosine {
                distance::normalize(&mut vector);
            }
            stored.push(StoredPoint {
                id: p.id,
                vector,
                payload,
            });
        }
        self.commit(WalOp::Upsert(stored))
    }

    /// Deletes points by id (absent ids are fine). Returns the LSN of the delete.
    pub fn delete(&self, ids: &[PointId]) -> Result<Lsn> {
        self.check_live()?;
        if ids.len() > self.inner.opts.max_batch_points {
            return Err(Error::new(
                ErrorKind::ResourceExhausted,
                format!(
                    "points: {} ids exceed the limit of {}",
                    ids.len(),
                    self.inner.opts.max_batch_points
                ),
            ));
        }
        if ids.is_empty() {
            return Ok(self.inner.wal.last_lsn());
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
        let mut out = Vec::with_capacity(ids.len());
        let mut seen = std::collections::HashSet::new();
        for id in ids {
            if !seen.insert(*id) {
                continue;
            }
            let in_mem = {
                let mem = read(&self.coll.mem);
                mem.lookup(*id).map(|(slot, version)| match slot {
                    Slot::Row(r) => Some((
                        version,
                        Src::Mem {
                            payload: mem.payload(r).to_vec(),
                            vector: mem.vector(r).to_vec(),
                        },
                    )),
                    Slot::Deleted(_) => None,
                })
            };
            let found = match in_mem {
                Some(x) => x,
                None => self
                    .coll
                    .segments()
                    .iter()
                    .filter_map(|s| {
                        s.find_live(*id)
                            .map(|r| (s.data.version(r), Src::Seg(Arc::clone(s), r)))
                    })
                    .max_by_key(|(v, _)| *v),
            };
            if let Some((version, src)) = found {
                let (payload, vector) = materialize(&src, with_payload, with_vector);
                out.push(Record {
                    id: *id,
                    version,
                    payload,
                    vector,
                });
            }
        }
        Ok(out)
    }

    /// One page of points in id order.
    pub fn scroll(&self, req: &ScrollRequest) -> Result<ScrollPage> {
        self.check_live()?;
        let limit = req.limit;
        if limit == 0 || limit > self.inner.opts.max_result_window {
            return Err(Error::invalid(format!(
                "limit must be in 1..={}, got {limit}",
                self.inner.opts.max_result_window
            )));
        }
        let want = limit + 1;
        let filter = req.filter.as_ref();
        let mut cands: Vec<(PointId, Lsn, Src)> = Vec::new();
        {
            let mem = read(&self.coll.mem);
            for r in mem.range(req.offset, want, filter) {
                cands.push((
                    mem.id(r),
                    mem.version(r),
                    Src::Mem {
                        payload: mem.payload(r).to_vec(),
                        vector: mem.vector(r).to_vec(),
                    },
                ));
            }
        }
        for s in self.coll.segments().iter() {
            let mut r = req.offset.map_or(0, |o| s.data.lower_bound(o));
            let mut taken = 0;
            let prepared = s.prepare(filter);
            while r < s.data.rows() && taken < want {
                if prepared.allows(r) {
                    cands.push((s.data.id(r), s.data.version(r), Src::Seg(Arc::clone(s), r)));
                    taken += 1;
                }
                r += 1;
            }
        }
        cands.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        cands.dedup_by_key(|c| c.0);
        let next_offset = cands.get(limit).map(|c| c.0);
        cands.truncate(limit);
        let points = cands
            .into_iter()
            .map(|(id, version, src)| {
                let (payload, vector) = materialize(&src, req.with_payload, req.with_vector);
                Record {
                    id,
                    version,
                    payload,
                    vector,
                }
            })
            .collect();
        Ok(ScrollPage {
            points,
            next_offset,
        })
    }

    /// Live points matching `filter` (all when `None`). Exact.
    pub fn count(&self, filter: Option<&Filter>) -> Result<u64> {
        self.check_live()?;
        let mut n = read(&self.coll.mem).count(filter);
        for s in self.coll.segments().iter() {
            n += match filter {
                None => s.live_rows(),
                Some(_) => {
                    let prepared = s.prepare(filter);
                    (0..s.data.rows()).filter(|r| prepared.allows(*r)).count() as u64
                }
            };
        }
        Ok(n)
    }

    /// Similarity search over every point of the collection.
    pub fn search(&self, req: &SearchRequest) -> Result<Vec<ScoredPoint>> {
        self.check_live()?;
        self.check_query(&req.vector, "vector")?;
        let window = req.limit.saturating_add(req.offset);
        if window > self.inner.opts.max_result_window {
            return Err(Error::invalid(format!(
                "limit + offset must be at most {}, got {window}",
                self.inner.opts.max_result_window
            )));
        }
        if req.limit == 0 {
            return Ok(Vec::new());
        }
        if let Some(ef) = req.ef
            && (ef == 0 || ef > 100_000)
        {
            return Err(Error::invalid(format!(
                "hnsw_ef must be in 1..=100000, got {ef}"
            )));
        }
        let metric = self.coll.metric();
        let mut q = req.vector.clone();
        if metric == Distance::Cosine {
            distance::normalize(&mut q);
        }
        let k = window;
        let ef = req
            .ef
            .unwrap_or(self.coll.config.hnsw.ef_construct as usize)
            .max(k);
        let filter = req.filter.as_ref();
        let mut cands = Vec::new();
        {
            let mem = read(&self.coll.mem);
            for h in mem.search(metric, &q, k, filter) {
                cands.push(Candidate {
                    dist: h.dist,
                    id: mem.id(h.row),
                    version: mem.version(h.row),
                    src: Src::Mem {
                        payload: if req.with_payload {
                            mem.payload(h.row).to_vec()
                        } else {
                            Vec::new()
                        },
                        vector: if req.with_vector {
                            mem.vector(h.row).to_vec()
                        } else {
                            Vec::new()
                        },
                    },
                });
            }
        }
        for s in self.coll.segments().iter() {
            for h in s.search(metric, &q, k, ef, filter, req.exact) {
                cands.push(Candidate {
                    dist: h.dist,
                    id: s.data.id(h.row),
                    version: s.data.version(h.row),
                    src: Src::Seg(Arc::clone(s), h.row),
                });
            }
        }
        // Newest version of an id wins (a concurrent seal or write can briefly show two).
        cands.sort_by(|a, b| a.id.cmp(&b.id).then(b.version.cmp(&a.version)));
        cands.dedup_by_key(|c| c.id);
        cands.sort_by(|a, b| a.dist.total_cmp(&b.dist).then(a.id.cmp(&b.id)));
        let out = cands
            .into_iter()
            .skip(req.offset)
            .take(req.limit)
            .map(|c| {
                let score = distance::score(metric, c.dist);
                (c, score)
            })
            .filter(|(_, score)| match req.score_threshold {
                None => true,
                Some(t) if metric.higher_is_better() => *score >= t,
                Some(t) => *score <= t,
            })
            .map(|(c, score)| {
                let (payload, vector) = materialize(&c.src, req.with_payload, req.with_vector);
                ScoredPoint {
                    id: c.id,
                    version: c.version,
                    score,
                    payload,
                    vector,
                }
            })
            .collect();
        Ok(out)
    }

    /// Statistics.
    pub fn info(&self) -> Result<CollectionInfo> {
        self.check_live()?;
        let segs = self.coll.segments();
        let (mem_points, mem_bytes) = {
            let m = read(&self.coll.mem);
            (m.live() as u64, m.bytes() as u64)
        };
        Ok(CollectionInfo {
            name: self.coll.name.clone(),
            config: self.coll.config,
            points: self.count(None)?,
            segments: segs.len() as u64,
            indexed_segments: segs.iter().filter(|s| s.data.has_graph()).count() as u64,
            bytes: mem_bytes + segs.iter().map(|s| s.data.file_len()).sum::<u64>(),
            memtable_points: mem_points,
        })
    }

    /// Seals the memtable into a segment and persists it. False if there was nothing to flush.
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
