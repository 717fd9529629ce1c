//! Flush and compaction, and the background threads that run them.
//!
//! **Flush** (fast, never builds a graph):
//! ```text
//! flush queue lock → seal: gate(write) → encode memtable as a segment in RAM → add to the list
//!   → empty memtable → queue it   (readers see it at once; the WAL still holds its records)
//! for each queued segment, oldest first:
//!   write file (temp, fsync, rename, fsync dir) → [manifest lock] swap RAM copy for the map,
//!   flushed LSN = its seal LSN → publish manifest → dequeue
//! release WAL files the *published* flushed LSNs cover
//! ```
//! A failed write leaves the segment queued (in RAM, readable) and the WAL unreleased: nothing
//! acknowledged is lost, and the next flush writes it first, so flushed LSNs only advance in
//! order.
//!
//! **Compaction** (slow, off the write path; also how segments get their HNSW graph):
//! ```text
//! pick persisted inputs → gather live rows (newest per id) → HNSW build (all cores) → write file
//!   → [manifest lock, mem lock] carry dead bits over, swap inputs for output → publish
//!   → delete input files (only after a publish that no longer names them succeeded)
//! ```
//! A crash at any point leaves a manifest naming either the inputs or the output, never
//! neither; files it does not name are removed at the next start.
//!
//! Actor stores flush and compact by the same triggers in the same workers
//! (`actors/flush.rs`).
//!
//! **Workers** run each job per collection and actor store with `catch_unwind`: a failure or a panic is
//! logged, counted (`strata_maintenance_failures_total`, `strata_maintenance_panics_total`),
//! shown by [`crate::Engine::health`] and retried with exponential backoff; it never kills the
//! worker. The flush worker also rewrites the manifest after a failed manifest write.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;

use crate::actors::flush as actor_flush;
use crate::actors::store::ActorStore;
use crate::collection::Collection;
use crate::engine::{Inner, ManifestChange, lock};
use crate::error::{Error, ErrorKind, Result};
use crate::index::PayloadIndexes;
use crate::options::EngineOptions;
use crate::segment::writer::{RowRef, SegmentInput, SpaceInput, SparseInput, encode};
use crate::segment::{Segment, compaction_sections, graph, not_resident};
use crate::types::{Lsn, PointId};

pub(crate) fn refuse_read_only(inner: &Inner) -> Result<()> {
    if inner.opts().read_only {
        return Err(Error::new(
            ErrorKind::Unavailable,
            "the engine was opened read-only",
        ));
    }
    Ok(())
}

/// Seals and persists the memtable of `coll` (and any segment an earlier flush sealed but
/// could not write). False if there was nothing to do.
pub(crate) fn flush(inner: &Inner, coll: &Collection) -> Result<bool> {
    refuse_read_only(inner)?;
    let mut queue = coll.flush_queue();
    // A flush makes things durable: first the manifest, if its last write failed.
    inner.republish_if_failed()?;
    if let Some(sealed) = coll.seal(inner)? {
        queue.unwritten.push_back(sealed);
    }
    if queue.unwritten.is_empty() {
        return Ok(false);
    }
    while let Some((seg, seal_lsn)) = queue.unwritten.front().cloned() {
        // Whether the collection is dropped is only known under the manifest lock (a drop whose
        // manifest write fails is undone), so it is checked there, below.
        let ram = seg.body().ok_or_else(|| not_resident(seg.id()))?;
        let mapped = Arc::new(inner.write_segment(seg.id(), ram.bytes_all())?);
        drop(ram);
        let published = {
            let mut m = inner.lock_manifest();
            if coll.is_dropped() {
                drop(m);
                inner.discard_segment(seg.id());
                queue.unwritten.clear();
                return Ok(false);
            }
            let identity: Vec<(u16, u32)> = (0..seg.meta.rows()).map(|r| (0, r)).collect();
            coll.install(&m, std::slice::from_ref(&seg), mapped, &identity);
            coll.set_flushed(&m, seal_lsn);
            queue.unwritten.pop_front();
            // On failure the segment is installed and persisted: the retried publish names
            // it together with the flushed LSN.
            m.publish(ManifestChange::None)
        };
        inner.note_flush();
        published?;
        tracing::debug!(collection = coll.name(), seal_lsn, "flushed");
    }
    drop(queue);
    inner.release_wal_logged();
    Ok(true)
}

/// Which persisted segments the background policy would merge now (empty: none): segments
/// to index (a graph, or a payload index of `indexes` they lack), too dead, or too many.
pub(crate) fn plan(
    segs: &[Arc<Segment>],
    o: &EngineOptions,
    indexes: &PayloadIndexes,
) -> Vec<Arc<Segment>> {
    let threshold = o.index_threshold_rows as u64;
    let small = |s: &Segment| s.live_rows() < threshold;
    let needs_index = |s: &Segment| {
        (!s.meta.indexed() && s.live_rows() >= threshold) || s.lacks_payload_index(indexes)
    };
    let too_dead = |s: &Segment| s.dead_fraction() >= o.compact_dead_fraction;
    let small_count = segs.iter().filter(|s| small(s)).count();
    let mut picked: Vec<Arc<Segment>> = segs
        .iter()
        .filter(|s| needs_index(s) || too_dead(s) || (small(s) && small_count >= 2))
        .cloned()
        .collect();
    if segs.len() > o.max_segments {
        let mut by_size: Vec<&Arc<Segment>> = segs.iter().collect();
        by_size.sort_by_key(|s| s.live_rows());
        let excess = segs.len() - o.max_segments + 1;
        for s in by_size.into_iter().take(excess) {
            if !picked.iter().any(|p| Arc::ptr_eq(p, s)) {
                picked.push(Arc::clone(s));
            }
        }
    }
    picked.sort_by_key(|s| s.live_rows());
    let mut total = 0u64;
    picked.retain(|s| {
        total += s.live_rows();
        total <= o.max_segment_rows as u64
    });
    if picked.len() == 1 {
        let s = &picked[0];
        if !needs_index(s) && !too_dead(s) {
            picked.clear();
        }
    }
    picked
}

/// Merges segments of `coll`: all of them (`full`) or what [`plan`] picks. False if no work.
pub(crate) fn compact(inner: &Inner, coll: &Collection, full: bool) -> Result<bool> {
    refuse_read_only(inner)?;
    let _c = coll.compaction_lock();
    let all = coll.segments();
    let persisted: Vec<Arc<Segment>> = all.iter().filter(|s| s.is_persisted()).cloned().collect();
    // Background compaction leaves cold segments alone (rewriting them would download them);
    // an explicit full compaction takes every segment, streaming the cold ones.
    let resident: Vec<Arc<Segment>> = persisted
        .iter()
        .filter(|s| s.tier() != strata_tiering::policy::Tier::Cold)
        .cloned()
        .collect();
    let inputs = if full {
        let single_clean = persisted.len() == 1 && {
            let s = &persisted[0];
            s.dead_fraction() == 0.0
                && (s.meta.indexed() || s.live_rows() < inner.opts().index_threshold_rows as u64)
                && s.meta.tombstone_count() == 0
                && !s.lacks_payload_index(&coll.indexes())
        };
        if single_clean { Vec::new() } else { persisted }
    } else {
        plan(&resident, inner.opts(), &coll.indexes())
    };
    if inputs.is_empty() {
        return Ok(false);
    }
    let others: Vec<&Arc<Segment>> = all
        .iter()
        .filter(|s| !inputs.iter().any(|i| Arc::ptr_eq(i, s)))
        .collect();
    // The inputs' bodies: cold ones are streamed, not promoted (compaction is no sign of use).
    let bodies = inputs
        .iter()
        .map(|s| inner.body_for_compaction(s))
        .collect::<Result<Vec<_>>>()?;
    if let Some(b) = bodies
        .iter()
        .find(|b| !b.has_all(compaction_sections(&b.layout)))
    {
        return Err(not_resident(b.segment_id()));
    }
    // Live rows, newest version per id.
    let mut rows: Vec<(PointId, Lsn, u16, u32)> = Vec::new();
    for (i, s) in inputs.iter().enumerate() {
        let ids = s.meta.ids();
        for r in 0..ids.rows() {
            if !s.is_dead(r) {
                rows.push((ids.id(r), ids.version(r), i as u16, r));
            }
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    rows.dedup_by_key(|r| r.0);
    // Tombstones still needed: those shadowing a row in a segment outside this merge.
    let mut tombs: Vec<(PointId, Lsn)> = inputs
        .iter()
        .flat_map(|s| {
            let ids = s.meta.ids();
            (0..ids.tombstone_count()).filter_map(move |t| ids.tombstone(t))
        })
        .collect();
    tombs.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    tombs.dedup_by_key(|t| t.0);
    tombs.retain(|(id, lsn)| {
        rows.binary_search_by_key(id, |r| r.0).is_err()
            && others
                .iter()
                .any(|s| s.meta.find(*id).is_some_and(|r| s.meta.version(r) < *lsn))
    });
    let config = coll.config();
    let index = rows.len() as u64 >= inner.opts().index_threshold_rows as u64 && !rows.is_empty();
    // The payload indexes, built once here: the payload links need their postings, and the
    // encoder writes them.
    let payload_indexes = (*coll.indexes()).clone();
    let built_indexes = crate::segment::pindex::build(
        &payload_indexes,
        rows.iter()
            .map(|(_, _, i, r)| bodies[*i as usize].payload(*r).unwrap_or_default()),
    );
    let n_rows = rows.len() as u32;
    let index_views: Vec<Option<crate::segment::pindex::IndexView<'_>>> = payload_indexes
        .iter()
        .zip(&built_indexes)
        .map(|((_, ty), (_, _, bytes))| {
            crate::segment::pindex::IndexView::view(*ty, bytes, n_rows).ok()
        })
        .collect();
    // Blocks a filter can confine a walk to: every value of an index that answers `match`.
    let candidates = || {
        payload_indexes
            .iter()
            .zip(&index_views)
            .enumerate()
            .filter(|(_, ((_, ty), _))| {
                use crate::index::FieldType as T;
                matches!(ty, T::Keyword | T::Integer | T::Bool | T::Uuid)
            })
            .filter_map(|(j, (_, v))| v.map(|v| (j, v)))
            .flat_map(|(j, v)| {
                (0..v.value_count()).map(move |value| crate::segment::links::Candidate {
                    index: j as u32,
                    value: value as u32,
                    rows: v.value_rows(value),
                })
            })
    };
    // Per vector space: every row's vector (zeros where it has none), which rows have one, and
    // a graph over those when the segment is indexed.
    let mut spaces: Vec<(Vec<f32>, Vec<bool>)> = Vec::with_capacity(config.vectors.len());
    let mut space_inputs = Vec::with_capacity(config.vectors.len());
    for (space, (name, params)) in config.vectors.iter().enumerate() {
        let dim = params.dim as usize;
        let mut vectors = Vec::with_capacity(rows.len() * dim);
        let mut has = Vec::with_capacity(rows.len());
        for (_, _, i, r) in &rows {
            let b = &bodies[*i as usize];
            let present = b.has_vector(space, *r);
            match present {
                true => vectors.extend_from_slice(b.vector(space, *r)),
                false => vectors.resize(vectors.len() + dim, 0.0),
            }
            has.push(present);
        }
        // A segment rewritten whole (a reindex for payload indexes: same rows, same order)
        // keeps its graph rather than building it again.
        // `m` = 0: no graph for this vector (its searches scan).
        let index_space = index && params.hnsw.m > 0;
        let kept = match (&inputs[..], &bodies[..]) {
            ([only], [body]) if rows.len() == only.meta.rows() as usize && index_space => {
                body.graph_copy(space)
            }
            _ => None,
        };
        let graph = kept.or_else(|| {
            (index_space && has.iter().any(|h| *h)).then(|| {
                let threads = inner.opts().index_threads;
                graph::build(&vectors, dim, params.distance, params.hnsw, threads, &|r| {
                    has[r]
                })
            })
        });
        let links = match &graph {
            Some(g) if inner.opts().payload_links && !index_views.is_empty() => {
                crate::segment::links::build(
                    &vectors,
                    dim,
                    params.distance,
                    params.hnsw,
                    inner.opts().index_threads,
                    &|r| has[r],
                    g,
                    candidates(),
                )
            }
            _ => None,
        };
        // The codes a walk of this graph reads, stored so that a search after a restart or a
        // move reads a quarter of the vector bytes instead of quantizing them all again.
        let codes = graph.as_ref().map(|_| {
            let q = crate::quant::Quantizer::train_where(&vectors, dim, |r| has[r as usize]);
            let buf = q.encode_all(&vectors);
            (q, buf)
        });
        space_inputs.push(SpaceInput {
            name: name.clone(),
            dim: params.dim,
            distance: params.distance,
            graph,
            links,
            codes,
        });
        spaces.push((vectors, has));
    }
    // Per sparse space: every row's sparse vector there (matched by name: an input written
    // before the space existed has none).
    let sparse: Vec<Vec<Option<crate::sparse::SparseVector>>> = config
        .sparse
        .iter()
        .map(|(name, _)| {
            rows.iter()
                .map(|(_, _, i, r)| {
                    let b = &bodies[*i as usize];
                    let j = b.layout.sparse_index(name)?;
                    b.sparse_view(j)?.row(*r)
                })
                .collect()
        })
        .collect();
    let id = inner.new_segment_id();
    let input = SegmentInput {
        segment_id: id,
        collection_id: coll.id(),
        spaces: space_inputs,
        sparse: SparseInput::of(&config),
        rows: rows
            .iter()
            .enumerate()
            .map(|(n, (pid, version, i, r))| RowRef {
                id: *pid,
                version: *version,
                vectors: spaces
                    .iter()
                    .zip(&config.vectors)
                    .map(|((v, has), (_, p))| {
                        let dim = p.dim as usize;
                        has[n].then(|| &v[n * dim..(n + 1) * dim])
                    })
                    .collect(),
                sparse: sparse.iter().map(|s| s[n].as_ref()).collect(),
                payload: bodies[*i as usize].payload(*r).unwrap_or_default(),
            })
            .collect(),
        tombstones: tombs,
        indexed: index,
        payload_indexes,
        built_indexes: Some(built_indexes),
    };
    let bytes = encode(&input);
    drop(input);
    let new = match inner.write_segment(id, &bytes) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            // The inputs are untouched; a partial or unverified output is abandoned.
            inner.discard_segment(id);
            return Err(e);
        }
    };
    drop(bytes);
    drop(bodies);
    let origin: Vec<(u16, u32)> = rows.iter().map(|(_, _, i, r)| (*i, *r)).collect();
    {
        let mut m = inner.lock_manifest();
        if coll.is_dropped() {
            drop(m);
            inner.discard_segment(id);
            return Ok(false);
        }
        coll.install(&m, &inputs, new, &origin);
        m.retire(inputs.iter().map(|s| s.id()));
        m.publish(ManifestChange::None)?;
    }
    inner.note_compaction();
    tracing::debug!(
        collection = coll.name(),
        inputs = inputs.len(),
        rows = rows.len(),
        "compacted"
    );
    Ok(true)
}

fn needs_flush(inner: &Inner, coll: &Collection) -> bool {
    let (_, bytes, first_write) = coll.memtable_stats();
    let o = inner.opts();
    let now = o.clock.now_millis();
    let older = |t: Option<u64>, d: std::time::Duration| {
        t.is_some_and(|t| now.saturating_sub(t) >= d.as_millis() as u64)
    };
    coll.has_unwritten()
        || (bytes > 0
            && (bytes >= o.memtable_max_bytes as u64
                || older(first_write, o.memtable_max_age)
                || o.memtable_idle_flush.is_some_and(|idle| {
                    // Writes have paused with enough rows for a graph: flush now, so
                    // compaction indexes them instead of searches scanning them until the age
                    // bound (the tail of a bulk load).
                    let (live, last_write) = coll.memtable_last_write();
                    live >= u64::from(o.index_threshold_rows) && older(last_write, idle)
                })))
}

/// A background job that is failing.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobFailure {
    /// `flush`, `compaction` or `manifest`.
    pub job: String,
    /// Tenant of the collection (empty for engine-wide jobs).
    pub tenant: String,
    /// The collection (empty for engine-wide jobs).
    pub collection: String,
    /// Failures in a row.
    pub failures: u32,
    /// The last error or panic message.
    pub last_error: String,
    /// True when the last failure was a panic.
    pub panicked: bool,
    /// Milliseconds (injected clock) until the next try.
    pub retry_in_ms: u64,
}

#[derive(Debug)]
struct JobState {
    failure: JobFailure,
    retry_at_ms: u64,
}

/// Failure and backoff state of every (job, collection).
#[derive(Debug, Default)]
pub(crate) struct Jobs {
    state: Mutex<HashMap<(&'static str, u64), JobState>>,
}

impl Jobs {
    fn due(&self, job: &'static str, id: u64, now_ms: u64) -> bool {
        lock(&self.state)
            .get(&(job, id))
            .is_none_or(|s| now_ms >= s.retry_at_ms)
    }

    fn succeeded(&self, job: &'static str, id: u64) {
        if lock(&self.state).remove(&(job, id)).is_some() {
            tracing::info!(job, "background job recovered");
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn failed(
        &self,
        job: &'static str,
        id: u64,
        who: (&str, &str),
        error: String,
        panicked: bool,
        now_ms: u64,
        o: &EngineOptions,
    ) {
        let mut st = lock(&self.state);
        let failures = st.get(&(job, id)).map_or(0, |s| s.failure.failures) + 1;
        let base = o.maintenance_interval.as_millis().max(1) as u64;
        let delay = base
            .saturating_mul(1u64 << failures.min(20))
            .min(o.maintenance_backoff_max.as_millis() as u64);
        st.insert(
            (job, id),
            JobState {
                failure: JobFailure {
                    job: job.to_string(),
                    tenant: who.0.to_string(),
                    collection: who.1.to_string(),
                    failures,
                    last_error: error,
                    panicked,
                    retry_in_ms: delay,
                },
                retry_at_ms: now_ms + delay,
            },
        );
    }

    /// Jobs failing now.
    pub(crate) fn failing(&self) -> Vec<JobFailure> {
        let mut v: Vec<JobFailure> = lock(&self.state)
            .values()
            .map(|s| s.failure.clone())
            .collect();
        v.sort_by(|a, b| {
            (&a.job, &a.tenant, &a.collection).cmp(&(&b.job, &b.tenant, &b.collection))
        });
        v
    }

    fn forget_missing(&self, live: &[u64]) {
        lock(&self.state).retain(|(_, id), _| *id == 0 || live.contains(id));
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-text payload".into())
}

/// Runs one job under `catch_unwind`, with backoff after failures.
fn run_guarded(
    inner: &Inner,
    job: &'static str,
    id: u64,
    who: (&str, &str),
    f: impl FnOnce() -> Result<bool>,
) {
    let now = inner.opts().clock.now_millis();
    if !inner.jobs().due(job, id, now) {
        return;
    }
    let (error, panicked) = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(_)) => {
            inner.jobs().succeeded(job, id);
            return;
        }
        Ok(Err(e)) => (e.to_string(), false),
        Err(p) => (panic_message(&*p), true),
    };
    if panicked {
        metrics::counter!("strata_maintenance_panics_total", "job" => job).increment(1);
    } else {
        metrics::counter!("strata_maintenance_failures_total", "job" => job).increment(1);
    }
    tracing::error!(job, tenant = who.0, collection = who.1, panicked, error = %error, "background job failed; will retry with backoff");
    inner
        .jobs()
        .failed(job, id, who, error, panicked, now, inner.opts());
}

/// A job of one actor store.
type ActorJob = fn(&Inner, &ActorStore) -> Result<bool>;

fn worker(
    weak: Weak<Inner>,
    name: &'static str,
    job: fn(&Inner, &Collection) -> Result<bool>,
    actor_job: ActorJob,
) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let interval = inner.opts().maintenance_interval;
        if !inner.wait(interval) {
            return;
        }
        if name == "flush" {
            run_guarded(&inner, "manifest", 0, ("", ""), || {
                inner.republish_if_failed()
            });
            run_guarded(&inner, "cold_gc", 0, ("", ""), || {
                inner.collect_cold_garbage()
            });
        }
        let colls = inner.collections();
        let actors = inner.actor_stores();
        inner.jobs().forget_missing(
            &colls
                .iter()
                .map(|c| c.id())
                .chain(actors.iter().map(|a| a.id))
                .collect::<Vec<_>>(),
        );
        for c in colls {
            if inner.is_shut_down() {
                return;
            }
            run_guarded(&inner, name, c.id(), (c.tenant(), c.name()), || {
                job(&inner, &c)
            });
        }
        for a in actors {
            if inner.is_shut_down() {
                return;
            }
            run_guarded(&inner, name, a.id, (&a.tenant, &a.actor_type), || {
                actor_job(&inner, &a)
            });
        }
    }
}

pub(crate) fn spawn_workers(inner: &Arc<Inner>) -> Vec<JoinHandle<()>> {
    let flusher: fn(&Inner, &Collection) -> Result<bool> = |inner, c| {
        if needs_flush(inner, c) {
            flush(inner, c)
        } else {
            Ok(false)
        }
    };
    let compactor: fn(&Inner, &Collection) -> Result<bool> = |inner, c| compact(inner, c, false);
    let actor_flusher: ActorJob = |inner, a| {
        if actor_flush::needs_flush(inner, a) {
            actor_flush::flush(inner, a)
        } else {
            Ok(false)
        }
    };
    let actor_compactor: ActorJob = |inner, a| actor_flush::compact(inner, a, false);
    let mut threads: Vec<JoinHandle<()>> = [
        ("flush", flusher, actor_flusher),
        ("compaction", compactor, actor_compactor),
    ]
    .into_iter()
    .map(|(name, job, actor_job)| {
        let weak = Arc::downgrade(inner);
        std::thread::Builder::new()
            .name(format!("strata-{name}"))
            .spawn(move || worker(weak, name, job, actor_job))
            .expect("spawning a maintenance thread")
    })
    .collect();
    let weak = Arc::downgrade(inner);
    threads.push(
        std::thread::Builder::new()
            .name("strata-mover".into())
            .spawn(move || mover(weak))
            .expect("spawning the mover thread"),
    );
    threads
}

/// The mover's thread: one guarded pass (see `tiers`) every `mover_interval`.
fn mover(weak: Weak<Inner>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        if !inner.wait(inner.opts().tiers.mover_interval) {
            return;
        }
        inner.probe_cold_if_due();
        run_guarded(&inner, "mover", 0, ("", ""), || inner.run_mover());
    }
}
