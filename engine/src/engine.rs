//! The engine: open and recover a data directory, manage collections, write manifests.
//!
//! ```text
//! data_dir/
//!   LOCK                 flock: one process per directory
//!   MANIFEST             collections + live segments + flushed LSNs (atomic replace)
//!   wal/{lsn:020}.wal    the write-ahead log
//!   segments/{id:020}.seg immutable segment files
//! ```
//!
//! Recovery: read `MANIFEST` → delete files it does not name (crash leftovers) → open (and by
//! default verify) every segment → rebuild shadow bitmaps from versions and tombstones → replay
//! WAL records newer than each collection's flushed LSN into its memtable.
//!
//! Lock order (outer first): `manifest` → `catalog` → collection `gate` → `mem` → `segments`.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use strata_tiering::{Blob, fs as tfs};

use crate::collection::{Collection, CollectionHandle};
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::{self, CollectionEntry, Manifest, SegmentEntry};
use crate::options::EngineOptions;
use crate::record::WalOp;
use crate::segment::{Segment, SegmentData};
use crate::types::{CollectionConfig, Lsn, PointId, validate_name};
use crate::wal::{LocalWal, Wal};

/// What start-up found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Collections in the manifest.
    pub collections: usize,
    /// Segment files opened.
    pub segments: usize,
    /// WAL records applied to memtables.
    pub wal_records_replayed: u64,
    /// WAL records already covered by segments (or of dropped collections).
    pub wal_records_skipped: u64,
    /// Bytes of a torn WAL tail that were truncated.
    pub wal_torn_bytes: u64,
    /// Leftover files (unreferenced segments, temp files) removed.
    pub orphans_removed: usize,
    /// Highest LSN in use.
    pub last_lsn: Lsn,
    /// Wall time of recovery.
    pub millis: u64,
}

/// Engine-wide counters and sizes (for metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineStats {
    /// Collections of every tenant.
    pub collections: u64,
    /// Live points in memtables.
    pub memtable_points: u64,
    /// Approximate memtable bytes.
    pub memtable_bytes: u64,
    /// Live points in segments.
    pub segment_points: u64,
    /// Sealed segments.
    pub segments: u64,
    /// Segments with an HNSW graph.
    pub indexed_segments: u64,
    /// Bytes of segment files.
    pub segment_bytes: u64,
    /// Fsyncs of the WAL since open.
    pub wal_fsyncs: u64,
    /// Flushes since open.
    pub flushes: u64,
    /// Compactions since open.
    pub compactions: u64,
}

pub(crate) enum ManifestChange<'a> {
    None,
    Add(&'a Arc<Collection>),
    Remove(u64),
    Flushed(u64, Lsn),
}

pub(crate) struct Inner {
    pub(crate) opts: EngineOptions,
    pub(crate) seg_dir: PathBuf,
    pub(crate) wal: LocalWal,
    pub(crate) manifest: Mutex<Manifest>,
    pub(crate) catalog: RwLock<BTreeMap<(String, String), Arc<Collection>>>,
    pub(crate) next_segment_id: AtomicU64,
    pub(crate) report: RecoveryReport,
    pub(crate) shutdown: Mutex<bool>,
    pub(crate) wake: Condvar,
    pub(crate) closed: AtomicBool,
    pub(crate) flushes: AtomicU64,
    pub(crate) compactions: AtomicU64,
    _lock: File,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.opts.data_dir)
            .finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
pub(crate) fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}
pub(crate) fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A Strata storage engine over one data directory.
///
/// Thread-safe: share it behind an `Arc`. Dropping it stops the background threads; every
/// acknowledged write is already durable in the WAL.
#[derive(Debug)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
    workers: Vec<JoinHandle<()>>,
}

impl Engine {
    /// Opens (creating if needed) the data directory and recovers it.
    pub fn open(opts: EngineOptions) -> Result<Engine> {
        let started = Instant::now();
        let dir = opts.data_dir.clone();
        let seg_dir = dir.join("segments");
        let wal_dir = dir.join("wal");
        for d in [&dir, &seg_dir] {
            tfs::create_dir_durable(d)
                .map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
        }
        let lock_path = dir.join("LOCK");
        let lock_file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(format!("opening {}", lock_path.display()), e))?;
        if let Err(e) = lock_file.try_lock() {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "data directory {} is in use by another Strata process ({e})",
                    dir.display()
                ),
            ));
        }
        let mut report = RecoveryReport::default();
        let manifest = read_manifest(&dir)?;
        report.orphans_removed = remove_orphans(&dir, &seg_dir, &manifest)?;

        let mut catalog = BTreeMap::new();
        let mut by_id: HashMap<u64, Arc<Collection>> = HashMap::new();
        let mut max_seg_id = 0;
        for entry in &manifest.collections {
            let mut segs = Vec::new();
            for s in &entry.segments {
                segs.push(Arc::new(open_segment(
                    &seg_dir,
                    s,
                    entry,
                    opts.verify_on_open,
                )?));
                max_seg_id = max_seg_id.max(s.id);
            }
            rebuild_shadows(&segs);
            report.segments += segs.len();
            let coll = Arc::new(Collection::new(entry, segs));
            by_id.insert(entry.id, Arc::clone(&coll));
            catalog.insert((entry.tenant.clone(), entry.name.clone()), coll);
        }
        report.collections = catalog.len();

        let now = opts.clock.now_millis();
        let (mut replayed, mut skipped) = (0u64, 0u64);
        let (wal, stats) = LocalWal::open(
            &wal_dir,
            opts.wal_ack,
            opts.wal_file_bytes,
            manifest.last_lsn,
            &mut |lsn, stream, payload| {
                let Some(coll) = by_id.get(&stream) else {
                    skipped += 1;
                    return Ok(());
                };
                if lsn <= coll.flushed_lsn.load(Ordering::Acquire) {
                    skipped += 1;
                    return Ok(());
                }
                let op = WalOp::decode(payload)
                    .map_err(|e| Error::corruption(format!("undecodable record: {e}")))?;
                coll.apply(lsn, op, now);
                replayed += 1;
                Ok(())
            },
        )?;
        report.wal_records_replayed = replayed;
        report.wal_records_skipped = skipped;
        report.wal_torn_bytes = stats.torn_bytes;
        report.last_lsn = wal.last_lsn();
        report.millis = started.elapsed().as_millis() as u64;
        let background = opts.background;
        let inner = Arc::new(Inner {
            next_segment_id: AtomicU64::new(manifest.next_segment_id.max(max_seg_id + 1)),
            opts,
            seg_dir,
            wal,
            manifest: Mutex::new(manifest),
            catalog: RwLock::new(catalog),
            report: report.clone(),
            shutdown: Mutex::new(false),
            wake: Condvar::new(),
            closed: AtomicBool::new(false),
            flushes: AtomicU64::new(0),
            compactions: AtomicU64::new(0),
            _lock: lock_file,
        });
        tracing::info!(
            dir = %dir.display(),
            collections = report.collections,
            segments = report.segments,
            replayed = report.wal_records_replayed,
            torn_bytes = report.wal_torn_bytes,
            ms = report.millis,
            "recovered"
        );
        let workers = if background {
            crate::maintenance::spawn_workers(&inner)
        } else {
            Vec::new()
        };
        Ok(Engine { inner, workers })
    }

    /// What recovery found.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.inner.opts.data_dir
    }

    /// True when writes can be accepted: not shutting down and the WAL is not poisoned by a
    /// failed fsync. (Readiness probes report this.)
    pub fn is_writable(&self) -> bool {
        !self.inner.closed.load(Ordering::Acquire) && self.inner.wal.is_healthy()
    }

    /// Counters and sizes for metrics.
    pub fn stats(&self) -> EngineStats {
        let mut st = EngineStats {
            wal_fsyncs: self.inner.wal.fsync_count(),
            flushes: self.inner.flushes.load(Ordering::Relaxed),
            compactions: self.inner.compactions.load(Ordering::Relaxed),
            ..EngineStats::default()
        };
        for c in read(&self.inner.catalog).values() {
            st.collections += 1;
            {
                let mem = read(&c.mem);
                st.memtable_points += mem.live() as u64;
                st.memtable_bytes += mem.bytes() as u64;
            }
            for s in c.segments().iter() {
                st.segments += 1;
                st.segment_points += s.live_rows();
                st.segment_bytes += s.data.file_len();
                st.indexed_segments += u64::from(s.data.has_graph());
            }
        }
        st
    }

    /// The last LSN assigned.
    pub fn last_lsn(&self) -> Lsn {
        self.inner.wal.last_lsn()
    }

    /// Creates collection `name` of `tenant`.
    pub fn create_collection(
        &self,
        tenant: &str,
        name: &str,
        config: CollectionConfig,
    ) -> Result<CollectionHandle> {
        validate_name("tenant", tenant)?;
        validate_name("collection name", name)?;
        config.validate()?;
        let inner = &self.inner;
        let mut m = lock(&inner.manifest);
        let key = (tenant.to_string(), name.to_string());
        if read(&inner.catalog).contains_key(&key) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("collection {name:?} already exists"),
            ));
        }
        let lsn = inner.wal.last_lsn();
        let entry = CollectionEntry {
            id: m.next_collection_id.max(1),
            tenant: key.0.clone(),
            name: key.1.clone(),
            config,
            created_lsn: lsn,
            flushed_lsn: lsn,
            segments: Vec::new(),
        };
        let coll = Arc::new(Collection::new(&entry, Vec::new()));
        m.next_collection_id = entry.id + 1;
        inner.write_manifest(&mut m, ManifestChange::Add(&coll))?;
        write(&inner.catalog).insert(key, Arc::clone(&coll));
        Ok(CollectionHandle::new(Arc::clone(inner), coll))
    }

    /// Deletes a collection and all its data.
    pub fn delete_collection(&self, tenant: &str, name: &str) -> Result<()> {
        let inner = &self.inner;
        let mut m = lock(&inner.manifest);
        let coll = inner.lookup(tenant, name)?;
        {
            let _gate = write(&coll.gate);
            coll.dropped.store(true, Ordering::Release);
            if let Err(e) = inner.write_manifest(&mut m, ManifestChange::Remove(coll.id)) {
                coll.dropped.store(false, Ordering::Release);
                return Err(e);
            }
        }
        write(&inner.catalog).remove(&(tenant.to_string(), name.to_string()));
        drop(m);
        for s in read(&coll.segments).iter() {
            let name = manifest::segment_file_name(s.id());
            if let Err(e) = tfs::remove_durable(&inner.seg_dir, &name) {
                tracing::warn!(file = name, error = %e, "could not remove segment of a dropped collection");
            }
        }
        inner.release_wal()?;
        Ok(())
    }

    /// A handle on an existing collection.
    pub fn collection(&self, tenant: &str, name: &str) -> Result<CollectionHandle> {
        let coll = self.inner.lookup(tenant, name)?;
        Ok(CollectionHandle::new(Arc::clone(&self.inner), coll))
    }

    /// Names of `tenant`'s collections, sorted.
    pub fn list_collections(&self, tenant: &str) -> Vec<String> {
        read(&self.inner.catalog)
            .keys()
            .filter(|(t, _)| t == tenant)
            .map(|(_, n)| n.clone())
            .collect()
    }

    /// Handles on every collection of every tenant.
    pub fn all_collections(&self) -> Vec<CollectionHandle> {
        read(&self.inner.catalog)
            .values()
            .map(|c| CollectionHandle::new(Arc::clone(&self.inner), Arc::clone(c)))
            .collect()
    }

    /// Flushes every memtable to segments (and releases the WAL they covered).
    pub fn flush_all(&self) -> Result<()> {
        for c in self.all_collections() {
            c.flush()?;
        }
        Ok(())
    }

    /// Flushes everything and stops the background threads.
    pub fn close(mut self) -> Result<()> {
        self.stop_workers();
        self.flush_all()
    }

    fn stop_workers(&mut self) {
        *lock(&self.inner.shutdown) = true;
        self.inner.closed.store(true, Ordering::Release);
        self.inner.wake.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

impl Inner {
    pub(crate) fn lookup(&self, tenant: &str, name: &str) -> Result<Arc<Collection>> {
        read(&self.catalog)
            .get(&(tenant.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| Error::not_found(format!("collection {name:?} does not exist")))
    }

    /// Writes a new manifest from the catalog plus `change`. Caller holds `self.manifest`.
    pub(crate) fn write_manifest(
        &self,
        m: &mut Manifest,
        change: ManifestChange<'_>,
    ) -> Result<()> {
        let mut colls: Vec<Arc<Collection>> = read(&self.catalog).values().cloned().collect();
        match change {
            ManifestChange::Add(c) => colls.push(Arc::clone(c)),
            ManifestChange::Remove(id) => colls.retain(|c| c.id != id),
            ManifestChange::None | ManifestChange::Flushed(..) => {}
        }
        let flushed_override = match change {
            ManifestChange::Flushed(id, lsn) => Some((id, lsn)),
            _ => None,
        };
        let next = Manifest {
            generation: m.generation + 1,
            last_lsn: m.last_lsn.max(self.wal.last_lsn()),
            next_collection_id: m.next_collection_id,
            next_segment_id: self.next_segment_id.load(Ordering::Acquire),
            collections: colls
                .iter()
                .map(|c| c.manifest_entry(flushed_override))
                .collect(),
        };
        tfs::write_atomic(&self.opts.data_dir, manifest::FILE_NAME, &next.encode()).map_err(
            |e| {
                Error::io(
                    format!(
                        "writing {}",
                        self.opts.data_dir.join(manifest::FILE_NAME).display()
                    ),
                    e,
                )
            },
        )?;
        *m = next;
        Ok(())
    }

    /// Deletes WAL files whose records are all in segments (or belong to dropped collections).
    pub(crate) fn release_wal(&self) -> Result<usize> {
        let flushed: HashMap<u64, Lsn> = read(&self.catalog)
            .values()
            .map(|c| (c.id, c.flushed_lsn.load(Ordering::Acquire)))
            .collect();
        self.wal
            .release(&|stream, max| flushed.get(&stream).is_some_and(|f| max > *f))
    }
}

fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(manifest::FILE_NAME);
    match fs::read(&path) {
        Ok(bytes) => Manifest::decode(&bytes).map_err(|e| {
            Error::corruption(format!(
                "manifest {} is corrupt at byte offset {}: {}",
                path.display(),
                e.offset,
                e.what
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest {
            next_collection_id: 1,
            next_segment_id: 1,
            ..Manifest::default()
        }),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// Removes temp files and segment files the manifest does not name (a crash between writing a
/// file and recording it leaves these).
fn remove_orphans(dir: &Path, seg_dir: &Path, m: &Manifest) -> Result<usize> {
    let live: std::collections::HashSet<String> = m
        .collections
        .iter()
        .flat_map(|c| c.segments.iter().map(|s| manifest::segment_file_name(s.id)))
        .collect();
    let mut removed = 0;
    for d in [dir, seg_dir] {
        for entry in
            fs::read_dir(d).map_err(|e| Error::io(format!("listing {}", d.display()), e))?
        {
            let entry = entry.map_err(|e| Error::io(format!("listing {}", d.display()), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let orphan = name.ends_with(tfs::TMP_SUFFIX)
                || (d == seg_dir && name.ends_with(".seg") && !live.contains(&name));
            if orphan {
                tracing::info!(file = %entry.path().display(), "removing leftover file");
                fs::remove_file(entry.path())
                    .map_err(|e| Error::io(format!("removing {}", entry.path().display()), e))?;
                removed += 1;
            }
        }
    }
    if removed > 0 {
        tfs::sync_dir(seg_dir).map_err(|e| Error::io("syncing segments dir", e))?;
    }
    Ok(removed)
}

fn open_segment(
    seg_dir: &Path,
    s: &SegmentEntry,
    c: &CollectionEntry,
    verify: crate::segment::Verify,
) -> Result<Segment> {
    let path = seg_dir.join(manifest::segment_file_name(s.id));
    let blob = Blob::map(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::corruption(format!(
                "segment file {} named in MANIFEST is missing",
                path.display()
            ))
        } else {
            Error::io(format!("mapping {}", path.display()), e)
        }
    })?;
    if blob.len() as u64 != s.file_len {
        return Err(Error::corruption(format!(
            "segment file {} is {} bytes, MANIFEST records {}",
            path.display(),
            blob.len(),
            s.file_len
        )));
    }
    let data = SegmentData::open(blob, verify).map_err(|e| {
        Error::corruption(format!(
            "segment file {} is corrupt at byte offset {}: {}",
            path.display(),
            e.offset,
            e.what
        ))
    })?;
    if data.header.collection_id != c.id
        || data.segment_id() != s.id
        || data.header.dim != c.config.dim
        || data.distance != c.config.distance
    {
        return Err(Error::corruption(format!(
            "segment file {} belongs to another collection, or its dimension or distance differs",
            path.display()
        )));
    }
    Ok(Segment::new(data, true))
}

/// Marks every row that a newer version (row or tombstone) in another segment shadows.
pub(crate) fn rebuild_shadows(segs: &[Arc<Segment>]) {
    if segs.len() < 2 {
        return;
    }
    let mut newest: HashMap<PointId, Lsn> = HashMap::new();
    for s in segs {
        for r in 0..s.data.rows() {
            let v = newest.entry(s.data.id(r)).or_insert(0);
            *v = (*v).max(s.data.version(r));
        }
        for t in 0..s.data.tombstone_count() {
            if let Some((id, lsn)) = s.data.tombstone(t) {
                let v = newest.entry(id).or_insert(0);
                *v = (*v).max(lsn);
            }
        }
    }
    for s in segs {
        for r in 0..s.data.rows() {
            if s.data.version(r) < newest[&s.data.id(r)] {
                s.mark_dead(r);
            }
        }
    }
}
