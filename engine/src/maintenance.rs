//! Flush and compaction, and the background threads that run them.
//!
//! **Flush** (fast, never builds a graph):
//! ```text
//! gate(write) → encode memtable as a segment in RAM → add to the list → empty memtable
//!   → write file (temp, fsync, rename, fsync dir) → swap RAM copy for the mmap
//!   → manifest { segment, flushed_lsn = seal LSN } → release WAL files it covered
//! ```
//! **Compaction** (slow, off the write path; also how segments get their HNSW graph):
//! ```text
//! pick persisted inputs → gather live rows (newest per id) → hnsw_rs build → write file
//!   → [manifest lock, mem lock] carry dead bits over, swap inputs for output → manifest
//!   → delete input files
//! ```
//! A crash at any point leaves a manifest naming either the inputs or the output, never
//! neither; files it does not name are removed at the next start.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use strata_tiering::{Blob, fs as tfs};

use crate::collection::Collection;
use crate::engine::{Inner, ManifestChange, lock, read, write};
use crate::error::{Error, Result};
use crate::manifest::segment_file_name;
use crate::memtable::Memtable;
use crate::options::EngineOptions;
use crate::segment::writer::{RowRef, SegmentInput, encode};
use crate::segment::{Segment, SegmentData, Verify, graph};
use crate::types::{Lsn, PointId};
use crate::wal::Wal;

fn open_in_ram(bytes: &[u8]) -> Result<SegmentData> {
    SegmentData::open(Blob::from_bytes(bytes), Verify::HeaderOnly)
        .map_err(|e| Error::corruption(format!("freshly encoded segment rejected: {e}")))
}

fn write_and_map(inner: &Inner, id: u64, bytes: &[u8]) -> Result<SegmentData> {
    let name = segment_file_name(id);
    tfs::write_atomic(&inner.seg_dir, &name, bytes)
        .map_err(|e| Error::io(format!("writing segment {name}"), e))?;
    let path = inner.seg_dir.join(&name);
    let blob = Blob::map(&path).map_err(|e| Error::io(format!("mapping {}", path.display()), e))?;
    SegmentData::open(blob, Verify::HeaderOnly).map_err(|e| {
        Error::corruption(format!(
            "segment {} rejected after write: {e}",
            path.display()
        ))
    })
}

/// Swaps `old` for `new` in the list, carrying over dead bits: `origin[r]` is the (index in
/// `old`, row) that new row `r` came from. Caller holds the manifest lock.
fn install(coll: &Collection, old: &[Arc<Segment>], new: Arc<Segment>, origin: &[(u16, u32)]) {
    let _mem = write(&coll.mem); // no apply() marks rows while bits are copied
    let mut list = write(&coll.segments);
    for (r, (i, orow)) in origin.iter().enumerate() {
        if old[*i as usize].is_dead(*orow) {
            new.mark_dead(r as u32);
        }
    }
    let mut next: Vec<Arc<Segment>> = list
        .iter()
        .filter(|s| !old.iter().any(|o| Arc::ptr_eq(o, s)))
        .cloned()
        .collect();
    next.push(new);
    *list = Arc::new(next);
}

/// Seals and persists the memtable of `coll`. False if it was empty.
pub(crate) fn flush(inner: &Inner, coll: &Collection) -> Result<bool> {
    let _flush = lock(&coll.flush_lock);
    let (seg, bytes, seal_lsn) = {
        let _gate = write(&coll.gate);
        if coll.dropped.load(Ordering::Acquire) {
            return Ok(false);
        }
        let mut mem = write(&coll.mem);
        if mem.is_empty() {
            return Ok(false);
        }
        let seal_lsn = inner.wal.last_lsn();
        let id = inner.next_segment_id.fetch_add(1, Ordering::AcqRel);
        let bytes = encode(&mem.segment_input(id, coll.id, coll.metric()));
        let seg = Arc::new(Segment::new(open_in_ram(&bytes)?, false));
        let mut list = write(&coll.segments);
        let mut next = (**list).clone();
        next.push(Arc::clone(&seg));
        *list = Arc::new(next);
        *mem = Memtable::new(coll.config.dim as usize);
        (seg, bytes, seal_lsn)
    };
    let mapped = Arc::new(Segment::new(write_and_map(inner, seg.id(), &bytes)?, true));
    drop(bytes);
    {
        let mut m = lock(&inner.manifest);
        if coll.dropped.load(Ordering::Acquire) {
            let _ = tfs::remove_durable(&inner.seg_dir, &segment_file_name(seg.id()));
            return Ok(false);
        }
        let identity: Vec<(u16, u32)> = (0..seg.data.rows()).map(|r| (0, r)).collect();
        install(coll, std::slice::from_ref(&seg), mapped, &identity);
        inner.write_manifest(&mut m, ManifestChange::Flushed(coll.id, seal_lsn))?;
        coll.flushed_lsn.store(seal_lsn, Ordering::Release);
    }
    inner.flushes.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("strata_flushes_total").increment(1);
    let released = inner.release_wal()?;
    tracing::debug!(collection = coll.name, seal_lsn, released, "flushed");
    Ok(true)
}

/// Which persisted segments the background policy would merge now (empty: none).
pub(crate) fn plan(segs: &[Arc<Segment>], o: &EngineOptions) -> Vec<Arc<Segment>> {
    let threshold = o.index_threshold_rows as u64;
    let small = |s: &Segment| s.live_rows() < threshold;
    let needs_index = |s: &Segment| !s.data.has_graph() && s.live_rows() >= threshold;
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
    let _c = lock(&coll.compact_lock);
    let all = coll.segments();
    let persisted: Vec<Arc<Segment>> = all
        .iter()
        .filter(|s| s.persisted.load(Ordering::Acquire))
        .cloned()
        .collect();
    let inputs = if full {
        let single_clean = persisted.len() == 1 && {
            let s = &persisted[0];
            s.dead_fraction() == 0.0
                && (s.data.has_graph() || s.live_rows() < inner.opts.index_threshold_rows as u64)
                && s.data.tombstone_count() == 0
        };
        if single_clean { Vec::new() } else { persisted }
    } else {
        plan(&persisted, &inner.opts)
    };
    if inputs.is_empty() {
        return Ok(false);
    }
    let others: Vec<&Arc<Segment>> = all
        .iter()
        .filter(|s| !inputs.iter().any(|i| Arc::ptr_eq(i, s)))
        .collect();
    // Live rows, newest version per id.
    let mut rows: Vec<(PointId, Lsn, u16, u32)> = Vec::new();
    for (i, s) in inputs.iter().enumerate() {
        for r in 0..s.data.rows() {
            if !s.is_dead(r) {
                rows.push((s.data.id(r), s.data.version(r), i as u16, r));
            }
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    rows.dedup_by_key(|r| r.0);
    // Tombstones still needed: those shadowing a row in a segment outside this merge.
    let mut tombs: Vec<(PointId, Lsn)> = inputs
        .iter()
        .flat_map(|s| (0..s.data.tombstone_count()).filter_map(|t| s.data.tombstone(t)))
        .collect();
    tombs.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    tombs.dedup_by_key(|t| t.0);
    tombs.retain(|(id, lsn)| {
        rows.binary_search_by_key(id, |r| r.0).is_err()
            && others
                .iter()
                .any(|s| s.data.find(*id).is_some_and(|r| s.data.version(r) < *lsn))
    });
    let dim = coll.config.dim as usize;
    let mut vectors = Vec::with_capacity(rows.len() * dim);
    for (_, _, i, r) in &rows {
        vectors.extend_from_slice(inputs[*i as usize].data.vector(*r));
    }
    let graph = (rows.len() as u64 >= inner.opts.index_threshold_rows as u64 && !rows.is_empty())
        .then(|| graph::build(&vectors, dim, coll.metric(), coll.config.hnsw));
    let id = inner.next_segment_id.fetch_add(1, Ordering::AcqRel);
    let input = SegmentInput {
        segment_id: id,
        collection_id: coll.id,
        dim: coll.config.dim,
        distance: coll.metric(),
        rows: rows
            .iter()
            .enumerate()
            .map(|(n, (pid, version, i, r))| RowRef {
                id: *pid,
                version: *version,
                vector: &vectors[n * dim..(n + 1) * dim],
                payload: inputs[*i as usize].data.payload(*r),
            })
            .collect(),
        tombstones: tombs,
        graph,
    };
    let bytes = encode(&input);
    drop(input);
    let new = Arc::new(Segment::new(write_and_map(inner, id, &bytes)?, true));
    drop(bytes);
    let origin: Vec<(u16, u32)> = rows.iter().map(|(_, _, i, r)| (*i, *r)).collect();
    {
        let mut m = lock(&inner.manifest);
        if coll.dropped.load(Ordering::Acquire) {
            let _ = tfs::remove_durable(&inner.seg_dir, &segment_file_name(id));
            return Ok(false);
        }
        install(coll, &inputs, new, &origin);
        inner.write_manifest(&mut m, ManifestChange::None)?;
    }
    for s in &inputs {
        let name = segment_file_name(s.id());
        if let Err(e) = tfs::remove_durable(&inner.seg_dir, &name) {
            tracing::warn!(file = name, error = %e, "could not remove a compacted segment; it will be removed at the next start");
        }
    }
    inner.compactions.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("strata_compactions_total").increment(1);
    tracing::debug!(
        collection = coll.name,
        inputs = inputs.len(),
        rows = rows.len(),
        "compacted"
    );
    Ok(true)
}

fn needs_flush(inner: &Inner, coll: &Collection) -> bool {
    let mem = read(&coll.mem);
    !mem.is_empty()
        && (mem.bytes() >= inner.opts.memtable_max_bytes
            || mem.first_write_ms.is_some_and(|t| {
                inner.opts.clock.now_millis().saturating_sub(t)
                    >= inner.opts.memtable_max_age.as_millis() as u64
            }))
}

/// Waits for `interval` or a wake-up; false once shut down.
fn wait(inner: &Inner, interval: Duration) -> bool {
    let guard = lock(&inner.shutdown);
    if *guard {
        return false;
    }
    let (guard, _) = inner
        .wake
        .wait_timeout(guard, interval)
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    !*guard
}

fn worker(weak: Weak<Inner>, name: &'static str, job: fn(&Inner, &Collection) -> Result<bool>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let interval = inner.opts.maintenance_interval;
        if !wait(&inner, interval) {
            return;
        }
        let colls: Vec<Arc<Collection>> = read(&inner.catalog).values().cloned().collect();
        for c in colls {
            if *lock(&inner.shutdown) {
                return;
            }
            if let Err(e) = job(&inner, &c) {
                tracing::error!(collection = c.name, error = %e, "{name} failed; will retry");
            }
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
    [("flush", flusher), ("compaction", compactor)]
        .into_iter()
        .map(|(name, job)| {
            let weak = Arc::downgrade(inner);
            std::thread::Builder::new()
                .name(format!("strata-{name}"))
                .spawn(move || worker(weak, name, job))
                .expect("spawning a maintenance thread")
        })
        .collect()
}
