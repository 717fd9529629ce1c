//! The state of one collection and the only code that changes it.
//!
//! Fields are private; the write path ([`Collection::apply`]), flush ([`Collection::seal`]),
//! flush and compaction ([`Collection::install`]) and reads ([`Collection::sources`]) go
//! through methods that take the locks in the engine's order:
//!
//! ```text
//! flush queue / compaction lock → manifest → catalog → gate → mem → segments
//! ```
//! `install` demands the manifest lock as an argument ([`ManifestLock`]), so a segment swap
//! can only happen together with a manifest publish.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use strata_tiering::Blob;

use crate::engine::{Inner, ManifestLock, lock, read, write};
use crate::error::{Error, Result};
use crate::index::PayloadIndexes;
use crate::manifest::{CollectionEntry, SegmentEntry};
use crate::memtable::Memtable;
use crate::read::SegmentView;
use crate::record::WalOp;
use crate::segment::writer::encode;
use crate::segment::{Segment, SegmentData, Verify};
use crate::types::{CollectionConfig, Distance, Lsn};

/// The dimension of each vector space of `config`.
fn dims(config: &CollectionConfig) -> Vec<usize> {
    config.vectors.iter().map(|(_, p)| p.dim as usize).collect()
}

/// A sealed memtable whose file is not written yet, and the LSN its contents reach.
pub(crate) type Sealed = (Arc<Segment>, Lsn);

/// Sealed segments waiting to be written, oldest first. Holding it serialises flushes.
#[derive(Debug, Default)]
pub(crate) struct FlushQueue {
    pub(crate) unwritten: VecDeque<Sealed>,
}

/// State of one collection.
#[derive(Debug)]
pub(crate) struct Collection {
    id: u64,
    tenant: String,
    name: String,
    /// Changed only under the manifest lock, and only in what a change may touch (HNSW
    /// parameters): dimensions and distances never change.
    config: RwLock<Arc<CollectionConfig>>,
    created_lsn: Lsn,
    /// Writers hold it shared from WAL append to memtable apply; sealing holds it exclusively,
    /// so a sealed memtable holds every record up to the LSN read at the seal.
    gate: RwLock<()>,
    mem: RwLock<Memtable>,
    segments: RwLock<Arc<Vec<Arc<Segment>>>>,
    /// Every record of this collection with LSN <= this is in a persisted segment (published
    /// with the next manifest; the WAL is released by the *published* value).
    flushed_lsn: AtomicU64,
    /// The tier hint (`manifest::hint_tag`); changed only under the manifest lock.
    hint: std::sync::atomic::AtomicU8,
    /// Payload indexes; changed only under the manifest lock.
    indexes: RwLock<Arc<PayloadIndexes>>,
    dropped: AtomicBool,
    flush: Mutex<FlushQueue>,
    compaction: Mutex<()>,
}

/// What a reader sees of a collection at one instant: the memtable (read-locked) and the
/// segment list as it was when the lock was taken. A seal or a compaction swaps both under
/// the memtable's write lock, and every write changes the memtable and the segments' dead bits
/// under it too; a read that copies the dead bits while it holds the lock
/// ([`Sources::views`] with `frozen`) sees every row exactly once, as of that instant.
pub(crate) struct Sources<'a> {
    pub(crate) mem: RwLockReadGuard<'a, Memtable>,
    pub(crate) segments: Arc<Vec<Arc<Segment>>>,
}

impl Sources<'_> {
    /// The segments as this read sees them; `frozen` copies their dead bits now (for scans and
    /// searches; lookups need no copy).
    pub(crate) fn views(&self, frozen: bool) -> Vec<SegmentView> {
        self.segments
            .iter()
            .map(|s| SegmentView {
                seg: Arc::clone(s),
                dead: frozen.then(|| s.dead_snapshot()),
                body: None,
            })
            .collect()
    }
}

impl Collection {
    pub(crate) fn new(e: &CollectionEntry, segments: Vec<Arc<Segment>>) -> Collection {
        Collection {
            id: e.id,
            tenant: e.tenant.clone(),
            name: e.name.clone(),
            config: RwLock::new(Arc::new(e.config.clone())),
            created_lsn: e.created_lsn,
            gate: RwLock::new(()),
            mem: RwLock::new(Memtable::new(&dims(&e.config), e.config.sparse.len())),
            segments: RwLock::new(Arc::new(segments)),
            flushed_lsn: AtomicU64::new(e.flushed_lsn),
            hint: std::sync::atomic::AtomicU8::new(crate::manifest::hint_tag(e.hint)),
            indexes: RwLock::new(Arc::new(e.indexes.clone())),
            dropped: AtomicBool::new(false),
            flush: Mutex::new(FlushQueue::default()),
            compaction: Mutex::new(()),
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }
    pub(crate) fn tenant(&self) -> &str {
        &self.tenant
    }
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
    pub(crate) fn config(&self) -> Arc<CollectionConfig> {
        Arc::clone(&read(&self.config))
    }

    /// Replaces the configuration (the next publish carries it, hence the manifest lock).
    pub(crate) fn set_config(&self, _proof: &ManifestLock<'_>, next: CollectionConfig) {
        *write(&self.config) = Arc::new(next);
    }
    /// The distance of vector space `space`.
    pub(crate) fn metric(&self, space: usize) -> Distance {
        self.config().params(space).distance
    }
    pub(crate) fn flushed_lsn(&self) -> Lsn {
        self.flushed_lsn.load(Ordering::Acquire)
    }
    /// Where the tiering policy should keep this collection's segments.
    pub(crate) fn hint(&self) -> strata_tiering::policy::Hint {
        crate::manifest::hint_of(self.hint.load(Ordering::Acquire))
            .unwrap_or(strata_tiering::policy::Hint::Auto)
    }

    /// Sets the hint; the next publish carries it (hence the manifest lock).
    pub(crate) fn set_hint(&self, _proof: &ManifestLock<'_>, h: strata_tiering::policy::Hint) {
        self.hint
            .store(crate::manifest::hint_tag(h), Ordering::Release);
    }

    /// The payload indexes now.
    pub(crate) fn indexes(&self) -> Arc<PayloadIndexes> {
        Arc::clone(&read(&self.indexes))
    }

    /// Replaces the payload indexes; the next publish carries them (hence the manifest lock).
    pub(crate) fn set_indexes(&self, _proof: &ManifestLock<'_>, next: PayloadIndexes) {
        *write(&self.indexes) = Arc::new(next);
    }

    pub(crate) fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    /// Runs `f` with writes to this collection excluded (the gate held exclusively).
    pub(crate) fn exclusive<T>(&self, f: impl FnOnce() -> T) -> T {
        let _gate = write(&self.gate);
        f()
    }

    /// Runs `f` as one writer (the gate held shared: a seal waits for it).
    pub(crate) fn writer<T>(&self, f: impl FnOnce() -> T) -> T {
        let _gate = read(&self.gate);
        f()
    }

    /// Marks the collection dropped (or, after a failed drop, not) with writes excluded.
    pub(crate) fn set_dropped(&self, dropped: bool) {
        self.exclusive(|| self.dropped.store(dropped, Ordering::Release));
    }

    /// The segment list now.
    pub(crate) fn segments(&self) -> Arc<Vec<Arc<Segment>>> {
        Arc::clone(&read(&self.segments))
    }

    /// A consistent view for one read (see [`Sources`]).
    pub(crate) fn sources(&self) -> Sources<'_> {
        let mem = read(&self.mem);
        let segments = self.segments();
        Sources { mem, segments }
    }

    /// `(live points, last write in ms)` of the memtable.
    pub(crate) fn memtable_last_write(&self) -> (u64, Option<u64>) {
        let m = read(&self.mem);
        (m.live() as u64, m.last_write_ms)
    }

    /// `(live points, approximate bytes, first unflushed write in ms)` of the memtable.
    pub(crate) fn memtable_stats(&self) -> (u64, u64, Option<u64>) {
        let m = read(&self.mem);
        (m.live() as u64, m.bytes() as u64, m.first_write_ms)
    }

    /// The flush queue (holding it serialises flushes of this collection).
    pub(crate) fn flush_queue(&self) -> MutexGuard<'_, FlushQueue> {
        lock(&self.flush)
    }

    /// The compaction lock.
    pub(crate) fn compaction_lock(&self) -> MutexGuard<'_, ()> {
        lock(&self.compaction)
    }

    /// True when sealed segments wait to be written (a flush failed and must be retried).
    pub(crate) fn has_unwritten(&self) -> bool {
        !lock(&self.flush).unwritten.is_empty()
    }

    pub(crate) fn manifest_entry(&self) -> CollectionEntry {
        CollectionEntry {
            id: self.id,
            tenant: self.tenant.clone(),
            name: self.name.clone(),
            config: self.config().as_ref().clone(),
            created_lsn: self.created_lsn,
            flushed_lsn: self.flushed_lsn(),
            hint: self.hint(),
            indexes: self.indexes().as_ref().clone(),
            segments: read(&self.segments)
                .iter()
                .filter(|s| s.is_persisted())
                .map(|s| SegmentEntry {
                    id: s.id(),
                    rows: s.meta.rows(),
                    tombstones: s.meta.tombstone_count() as u32,
                    min_lsn: s.meta.min_lsn(),
                    max_lsn: s.meta.max_lsn(),
                    file_len: s.meta.file_len(),
                    has_graph: s.meta.indexed(),
                })
                .collect(),
        }
    }

    /// Checks a replayed or logged op against this collection's configuration: data read back
    /// from disk is not trusted to fit.
    pub(crate) fn check_op(&self, op: &WalOp) -> Result<()> {
        if let WalOp::Upsert(points) = op {
            let config = self.config();
            for p in points {
                for (space, v) in &p.vectors {
                    let Some((name, params)) = config.vectors.get(*space as usize) else {
                        return Err(Error::corruption(format!(
                            "record for collection {:?} holds point {} with a vector in space {space}; the collection has {}",
                            self.name,
                            p.id,
                            config.vectors.len()
                        )));
                    };
                    let dim = params.dim as usize;
                    if v.len() != dim {
                        return Err(Error::corruption(format!(
                            "record for collection {:?} holds point {} with {} dimensions in vector {name:?}; it has {dim}",
                            self.name,
                            p.id,
                            v.len()
                        )));
                    }
                    if v.iter().any(|x| !x.is_finite()) {
                        return Err(Error::corruption(format!(
                            "record for collection {:?} holds point {} with a non-finite component",
                            self.name, p.id
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies a logged op at `lsn` (write path and WAL replay). The op fits the collection
    /// (validated before logging, or by [`Collection::check_op`] on replay).
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

    /// Seals the memtable into an in-RAM segment with id `id()`, appends it to the list
    /// (readers see it at once) and starts an empty memtable. Excludes writers, so the segment
    /// holds every record of this collection up to the returned LSN. `None`: nothing to seal.
    pub(crate) fn seal(&self, inner: &Inner) -> Result<Option<Sealed>> {
        self.exclusive(|| {
            if self.is_dropped() {
                return Ok(None);
            }
            let mut mem = write(&self.mem);
            if mem.is_empty() {
                return Ok(None);
            }
            let seal_lsn = inner.wal().last_lsn();
            let id = inner.new_segment_id();
            let bytes =
                encode(&mem.segment_input(id, self.id, &self.config(), (*self.indexes()).clone()));
            let data = SegmentData::open(Blob::from_bytes(&bytes), Verify::HeaderOnly)
                .map_err(|e| Error::corruption(format!("freshly encoded segment rejected: {e}")))?;
            drop(bytes);
            let seg = Arc::new(Segment::in_ram(data, inner.opts().clock.now_millis())?);
            let mut list = write(&self.segments);
            let mut next = (**list).clone();
            next.push(Arc::clone(&seg));
            *list = Arc::new(next);
            let config = self.config();
            *mem = Memtable::new(&dims(&config), config.sparse.len());
            Ok(Some((seg, seal_lsn)))
        })
    }

    /// Swaps `old` for `new` in the list, carrying over dead bits: `origin[r]` is the (index in
    /// `old`, row) that new row `r` came from. Needs the manifest lock: a swap is always
    /// published.
    pub(crate) fn install(
        &self,
        _proof: &ManifestLock<'_>,
        old: &[Arc<Segment>],
        new: Arc<Segment>,
        origin: &[(u16, u32)],
    ) {
        let _mem = write(&self.mem); // no apply() marks rows while bits are copied
        let mut list = write(&self.segments);
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
        for o in old {
            o.retire();
        }
        next.push(new);
        *list = Arc::new(next);
    }

    /// Records that every record up to `lsn` is in persisted segments. Needs the manifest
    /// lock: the next publish carries it.
    pub(crate) fn set_flushed(&self, _proof: &ManifestLock<'_>, lsn: Lsn) {
        self.flushed_lsn.fetch_max(lsn, Ordering::AcqRel);
    }
}
