//! The engine: open and recover storage, manage collections, publish manifests.
//!
//! Every persisted byte goes through the storage layer (`strata-tiering`): segments and the
//! manifest through a [`BlobStore`], the WAL through a [`Wal`] (by default [`LocalWal`] on a
//! log store). Names come from `strata_tiering::layout`. Locally:
//!
//! ```text
//! data_dir/
//!   LOCK                  flock: one process per directory
//!   MANIFEST              collections + live segments + flushed LSNs (atomic replace)
//!   wal/{lsn:020}.wal     the write-ahead log
//!   segments/{id:020}.seg immutable segment files
//! ```
//!
//! Recovery: read `MANIFEST` (every value checked) → delete segments it does not name (crash
//! leftovers) → open (and by default verify) every segment → rebuild shadow bitmaps from
//! versions and tombstones → replay WAL records newer than each collection's flushed LSN
//! into its memtable (each checked against the collection's configuration).
//!
//! **Failures**, decided one by one (`docs/operations.md` has the table):
//! - a failed **manifest write** leaves the manifest on disk old or new — unknown which — so
//!   the engine refuses writes (readiness false) until a later write of the whole manifest
//!   succeeds; the in-memory state it writes is consistent with both, because nothing the old
//!   one names is deleted and no WAL is released until a write succeeds. Maintenance retries
//!   it with backoff;
//! - a failed **segment write** keeps the sealed segment in RAM (readable) and the WAL that
//!   covers it; the next flush writes it first;
//! - WAL failures: see `wal.rs` (rollback, or poisoned until restart).
//!
//! Lock order (outer first): flush queue / compaction lock → `manifest` → `catalog` →
//! collection gate → `mem` → `segments`. The catalog is only changed with the manifest lock
//! held; segment swaps need the manifest lock as an argument ([`ManifestLock`]). Actor stores:
//! maintenance lock → `manifest` → tables; key stripes → store gate → `mem` → pending writes /
//! tables (`actors/store.rs`).

mod aliases;
mod snapshots;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use strata_tiering::{Blob, BlobStore, Io, PutMode, Storage, StoreError, TieredStore, layout};

use crate::collection::Collection;
use crate::columns::ColumnCache;
use crate::error::{Error, ErrorKind, Result};
use crate::handle::CollectionHandle;
use crate::maintenance::{JobFailure, Jobs};
use crate::manifest::{Aliases, CollectionEntry, Manifest, SegmentEntry};
use crate::options::EngineOptions;
use crate::record::WalOp;
use crate::segment::{Body, Segment, SegmentData, SegmentMeta, Verify, VerifyError};
use crate::types::{CollectionConfig, Lsn, PointId, validate_name};
use crate::wal::{LocalWal, LocalWalOptions, Wal};
pub use aliases::AliasAction;
pub use snapshots::SnapshotInfo;

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
    /// Bytes of a torn WAL tail (truncated; read-only: found and left).
    pub wal_torn_bytes: u64,
    /// Leftover files (unreferenced segments, temp files) found.
    pub orphans_found: usize,
    /// Leftover files removed (read-only: none).
    pub orphans_removed: usize,
    /// Highest LSN in use.
    pub last_lsn: Lsn,
    /// Wall time of recovery.
    pub millis: u64,
    /// The cold manifest generation restored into an empty data directory, if that happened.
    pub restored_generation: Option<u64>,
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
    /// Sealed segments whose file is not written yet (a flush failed; retried).
    pub unwritten_segments: u64,
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
    /// Bytes of parsed payload columns cached for filters.
    pub filter_cache_bytes: u64,
    /// Segment searches since open by how they ran: a graph walk, an exact scan of the rows
    /// payload indexes (and ids) answered, another exact scan (the filter evaluated per row,
    /// no graph, or `exact`).
    pub segment_search_paths: [u64; 3],
    /// Searches since open whose indexed segments were searched on more than one thread
    /// (`EngineOptions::parallel_search_min_rows`).
    pub parallel_searches: u64,
    /// Segment graph walks since open confined by payload links to the rows of the filter's
    /// values (counted among the graph walks of `segment_search_paths`).
    pub confined_searches: u64,
    /// Actor stores (one per tenant and actor type).
    pub actor_stores: u64,
    /// Actor states per tier: hot, warm, cold — live states in RAM tables are hot; a segment
    /// counts its records in its tier (versions shadowed since are counted until compaction).
    pub actor_states: [u64; 3],
    /// Actor bytes per tier: value bytes of live states in RAM tables (hot), and segment file
    /// bytes in each segment's tier.
    pub actor_bytes: [u64; 3],
    /// Actor segments per tier: hot, warm, cold.
    pub actor_segments: [u64; 3],
    /// Block reads of actor segments since open, by the tier that served them (a cold one is
    /// one ranged GET).
    pub actor_segment_reads: [u64; 3],
    /// Actor commits that wrote since open, by path: async (awaited the syncer thread's
    /// shared fsync), blocking (a thread waited in the WAL's group commit).
    pub actor_commits: [u64; 2],
    /// Persisted segments per tier: hot, warm, cold.
    pub tier_segments: [u64; 3],
    /// Bytes of those segments' files per tier: hot, warm, cold.
    pub tier_bytes: [u64; 3],
    /// Reads that found a segment body resident: hot, warm.
    pub tier_hits: [u64; 2],
    /// Reads that found a segment cold.
    pub tier_misses: u64,
    /// Cold reads streamed (nothing kept) and promoted (made warm).
    pub cold_reads_streamed: u64,
    /// Cold reads that promoted the segment.
    pub cold_reads_promoted: u64,
    /// Bytes fetched from the cold store without being kept: streamed reads (the sections and
    /// rows they need) and compactions of cold segments.
    pub cold_streamed_bytes: u64,
    /// Tier moves applied, by target tier: hot, warm, cold.
    pub tier_moves: [u64; 3],
    /// Tier moves that failed (retried with backoff).
    pub tier_move_failures: u64,
    /// Cold segments searches read, skipped (their summaries could not beat the results), and
    /// left out (`cold: skip`).
    pub search_cold_segments: [u64; 3],
}

/// Whether the engine accepts writes, and what is failing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// True when writes are accepted.
    pub writable: bool,
    /// Why they are not, when they are not.
    pub reason: Option<String>,
    /// Background jobs failing now (retried with backoff).
    pub failing: Vec<JobFailure>,
}

/// A change to the catalog that a manifest publish carries.
pub(crate) enum ManifestChange<'a> {
    None,
    Add(&'a Arc<Collection>),
    Remove(u64),
    /// A new alias map (aliases of collections not in the catalog are dropped at every publish).
    Aliases(&'a Aliases),
    /// Collection `0` (an id; absent is fine) is replaced by a new one (a restored snapshot).
    Replace(u64, &'a Arc<Collection>),
    /// A new actor store (added to the catalog only once this manifest is written).
    AddActor(&'a crate::manifest::ActorStoreEntry),
}

pub(crate) struct Inner {
    opts: EngineOptions,
    blobs: Arc<dyn BlobStore>,
    /// The tiered store behind `blobs`, when a cold tier is configured.
    tiered: Option<Arc<TieredStore>>,
    /// Batched reads of the local data directory, when it has one.
    io: Option<Arc<Io>>,
    /// When the cold tier was last garbage-collected (ms).
    last_gc_ms: AtomicU64,
    wal: Arc<dyn Wal>,
    /// The last manifest written successfully.
    manifest: Mutex<Manifest>,
    catalog: RwLock<BTreeMap<(String, String), Arc<Collection>>>,
    /// Actor stores by (tenant, actor type); created on first use, under the manifest lock.
    actor_stores: RwLock<BTreeMap<(String, String), Arc<crate::actors::store::ActorStore>>>,
    /// Collection aliases as last published; changed only under the manifest lock.
    aliases: RwLock<Aliases>,
    next_segment_id: AtomicU64,
    report: RecoveryReport,
    shutdown: Mutex<bool>,
    wake: Condvar,
    closed: AtomicBool,
    /// Set while the manifest on disk is unknown (a write of it failed).
    manifest_failure: Mutex<Option<String>>,
    /// `manifest_failure.is_some()`, readable without a lock on the write path.
    manifest_failed: AtomicBool,
    /// Segments no manifest in memory names any more, deleted after the next successful
    /// manifest write (an older manifest on disk may still name them until then).
    retired: Mutex<Vec<u64>>,
    flushes: AtomicU64,
    /// How segment searches ran (see `EngineStats::segment_search_paths`).
    pub(crate) search_paths: crate::segment::SearchPaths,
    compactions: AtomicU64,
    columns: ColumnCache,
    jobs: Jobs,
    mover: crate::tiers::Mover,
    actor_counters: crate::actors::ActorCounters,
    /// Async durability waits (`durable.rs`); its thread runs unless read-only.
    syncer: Arc<crate::durable::Syncer>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("data_dir", &self.opts.data_dir)
            .finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
pub(crate) fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}
pub(crate) fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A Strata storage engine over one storage (by default a local data directory).
///
/// Thread-safe: share it behind an `Arc`. Dropping it stops the background threads; every
/// acknowledged write is already durable in the WAL.
#[derive(Debug)]
pub struct Engine {
    inner: Arc<Inner>,
    workers: Vec<JoinHandle<()>>,
}

fn open_storage(opts: &EngineOptions) -> Result<Storage> {
    let base = open_base_storage(opts)?;
    match &opts.cold {
        // `strata check` inspects the local copy only.
        Some(cold) if !opts.read_only => base
            .with_cold(
                Arc::clone(cold),
                Arc::new(crate::manifest::referenced_blobs),
                opts.tiered.clone(),
            )
            .map_err(|e| Error::store("opening the cold tier", e)),
        _ => Ok(base),
    }
}

fn open_base_storage(opts: &EngineOptions) -> Result<Storage> {
    if let Some(s) = &opts.storage {
        return Ok(s.clone());
    }
    let dir = &opts.data_dir;
    let io = opts.io.clone().unwrap_or_else(Io::shared_default);
    let res = Storage::open_local_with(dir, opts.read_only, io);
    res.map_err(|e| match &e {
        StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::WouldBlock => {
            Error::new(
                ErrorKind::Unavailable,
                format!(
                    "data directory {} is in use by another Strata process",
                    dir.display()
                ),
            )
        }
        _ => Error::store(&format!("opening data directory {}", dir.display()), e),
    })
}

impl Engine {
    /// Opens (creating if needed) the storage and recovers it.
    pub fn open(opts: EngineOptions) -> Result<Engine> {
        let started = Instant::now();
        crate::tiers::validate(&opts)?;
        let storage = open_storage(&opts)?;
        let blobs = Arc::clone(&storage.blobs);
        let mut report = RecoveryReport {
            restored_generation: storage
                .tiered
                .as_ref()
                .and_then(|t| t.restored_generation()),
            ..RecoveryReport::default()
        };
        let manifest = read_manifest(&*blobs)?;
        let (found, removed, max_listed) = remove_orphans(&*blobs, &manifest, opts.read_only)?;
        report.orphans_found = found + storage.swept_temp_files;
        report.orphans_removed = removed
            + if opts.read_only {
                0
            } else {
                storage.swept_temp_files
            };

        if let Some(t) = &storage.tiered {
            prefetch_meta_files(t, &manifest);
        }
        let mut catalog = BTreeMap::new();
        let mut by_id: HashMap<u64, Arc<Collection>> = HashMap::new();
        let mut actor_stores = BTreeMap::new();
        let mut actors_by_id: HashMap<u64, Arc<crate::actors::store::ActorStore>> = HashMap::new();
        let mut max_seg_id = max_listed;
        for a in &manifest.actors {
            let mut segs = Vec::with_capacity(a.segments.len());
            for s in &a.segments {
                segs.push(Arc::new(crate::actors::sealed::open(
                    &*blobs,
                    storage.tiered.as_deref(),
                    s,
                    a.id,
                    opts.verify_on_open,
                    opts.read_only,
                )?));
                max_seg_id = max_seg_id.max(s.id);
            }
            report.segments += segs.len();
            let store = Arc::new(crate::actors::store::ActorStore::new(a, segs));
            actors_by_id.insert(a.id, Arc::clone(&store));
            actor_stores.insert((a.tenant.clone(), a.actor_type.clone()), store);
        }
        for entry in &manifest.collections {
            let mut segs = Vec::new();
            for s in &entry.segments {
                segs.push(Arc::new(open_segment(
                    &*blobs,
                    storage.tiered.as_deref(),
                    s,
                    entry,
                    &opts,
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

        let wal: Arc<dyn Wal> = match &opts.wal {
            Some(w) => Arc::clone(w),
            None => {
                let mut o = LocalWalOptions::new(opts.wal_ack);
                o.max_file_bytes = opts.wal_file_bytes;
                o.read_only = opts.read_only;
                Arc::new(LocalWal::new(Arc::clone(&storage.log), o))
            }
        };
        let now = opts.clock.now_millis();
        let (mut replayed, mut skipped) = (0u64, 0u64);
        let stats = wal.open(manifest.last_lsn, &mut |lsn, stream, payload| {
            if let Some(store) = actors_by_id.get(&stream) {
                if lsn <= store.flushed_lsn() {
                    skipped += 1;
                    return Ok(());
                }
                let txn = crate::actors::txn::ActorTxn::decode(payload).map_err(|e| {
                    Error::corruption(format!("undecodable actor record at LSN {lsn}: {e}"))
                })?;
                store.apply(lsn, txn, now);
                replayed += 1;
                return Ok(());
            }
            let Some(coll) = by_id.get(&stream) else {
                skipped += 1;
                return Ok(());
            };
            if lsn <= coll.flushed_lsn() {
                skipped += 1;
                return Ok(());
            }
            let op = WalOp::decode(payload)
                .map_err(|e| Error::corruption(format!("undecodable record: {e}")))?;
            coll.check_op(&op)?;
            coll.apply(lsn, op, now);
            replayed += 1;
            Ok(())
        })?;
        report.wal_records_replayed = replayed;
        report.wal_records_skipped = skipped;
        report.wal_torn_bytes = stats.torn_bytes;
        report.last_lsn = wal.last_lsn();
        report.millis = started.elapsed().as_millis() as u64;
        let background = opts.background && !opts.read_only;
        let inner = Arc::new(Inner {
            next_segment_id: AtomicU64::new(manifest.next_segment_id.max(max_seg_id + 1)),
            blobs,
            tiered: storage.tiered.clone(),
            io: storage.io.clone(),
            last_gc_ms: AtomicU64::new(0),
            wal,
            aliases: RwLock::new(manifest.aliases.clone()),
            manifest: Mutex::new(manifest),
            catalog: RwLock::new(catalog),
            actor_stores: RwLock::new(actor_stores),
            report: report.clone(),
            shutdown: Mutex::new(false),
            wake: Condvar::new(),
            closed: AtomicBool::new(false),
            manifest_failure: Mutex::new(None),
            manifest_failed: AtomicBool::new(false),
            retired: Mutex::new(Vec::new()),
            flushes: AtomicU64::new(0),
            search_paths: Default::default(),
            compactions: AtomicU64::new(0),
            columns: ColumnCache::new(opts.filter_cache_bytes),
            jobs: Jobs::default(),
            mover: crate::tiers::Mover::default(),
            actor_counters: crate::actors::ActorCounters::default(),
            syncer: Arc::default(),
            opts,
        });
        tracing::info!(
            dir = %inner.opts.data_dir.display(),
            collections = report.collections,
            segments = report.segments,
            replayed = report.wal_records_replayed,
            torn_bytes = report.wal_torn_bytes,
            ms = report.millis,
            "recovered"
        );
        if inner.tiered.is_some() && !inner.opts.read_only {
            // The cold store gets the state recovered here at once (and every segment it
            // names, uploaded if missing: a data directory that ran without a cold tier).
            let mut m = inner.lock_manifest();
            if let Err(e) = m.publish(ManifestChange::None) {
                tracing::warn!(error = %e, "could not write the manifest to the cold store at start; retried in the background");
            }
        }
        let mut workers = if background {
            crate::maintenance::spawn_workers(&inner)
        } else {
            Vec::new()
        };
        if !inner.opts.read_only {
            let (syncer, wal) = (Arc::clone(&inner.syncer), Arc::clone(&inner.wal));
            workers.push(
                std::thread::Builder::new()
                    .name("strata-syncer".into())
                    .spawn(move || syncer.run(&*wal))
                    .map_err(|e| {
                        Error::new(ErrorKind::Internal, format!("spawning the syncer: {e}"))
                    })?,
            );
        }
        Ok(Engine { inner, workers })
    }

    /// Runs one pass of the tier mover now (it also runs every `tiers.mover_interval` in the
    /// background): plans with the current access statistics and budgets and applies the
    /// moves. True when a move was applied.
    pub fn run_mover(&self) -> Result<bool> {
        if self.inner.opts.read_only {
            return Ok(false);
        }
        self.inner.run_mover()
    }

    /// What recovery found.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// The data directory (a label when the storage was given).
    pub fn data_dir(&self) -> &Path {
        &self.inner.opts.data_dir
    }

    /// True when writes can be accepted: not shutting down, not read-only, the WAL is not
    /// poisoned by a failed fsync, and the last manifest write did not fail. (Readiness probes
    /// report this.)
    pub fn is_writable(&self) -> bool {
        self.inner.check_writable().is_ok()
    }

    /// Writability, its reason, and failing background jobs.
    pub fn health(&self) -> Health {
        let reason = self
            .inner
            .check_writable()
            .err()
            .map(|e| e.message().to_string());
        Health {
            writable: reason.is_none(),
            reason,
            failing: self.inner.jobs.failing(),
        }
    }

    /// Counters and sizes for metrics.
    pub fn stats(&self) -> EngineStats {
        let mut st = EngineStats {
            wal_fsyncs: self.inner.wal.fsync_count(),
            flushes: self.inner.flushes.load(Ordering::Relaxed),
            compactions: self.inner.compactions.load(Ordering::Relaxed),
            filter_cache_bytes: self.inner.columns.bytes() as u64,
            ..EngineStats::default()
        };
        let now = self.inner.opts.clock.now_millis();
        for s in read(&self.inner.actor_stores).values() {
            let a = s.stats(now);
            st.actor_stores += 1;
            for i in 0..3 {
                st.actor_states[i] += a.states[i];
                st.actor_bytes[i] += a.bytes[i];
                st.actor_segments[i] += a.segments[i];
            }
        }
        for (i, c) in self.inner.actor_counters.reads.iter().enumerate() {
            st.actor_segment_reads[i] = c.load(Ordering::Relaxed);
        }
        for (i, c) in self.inner.actor_counters.commits.iter().enumerate() {
            st.actor_commits[i] = c.load(Ordering::Relaxed);
        }
        let p = &self.inner.search_paths;
        st.segment_search_paths = [
            p.graph.load(Ordering::Relaxed),
            p.index_rows.load(Ordering::Relaxed),
            p.scan.load(Ordering::Relaxed),
        ];
        st.parallel_searches = p.parallel.load(Ordering::Relaxed);
        st.confined_searches = p.confined.load(Ordering::Relaxed);
        let usage = self.inner.tier_usage();
        st.tier_segments = usage.segments;
        st.tier_bytes = usage.bytes;
        let c = &self.inner.mover.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        st.tier_hits = [get(&c.hits[0]), get(&c.hits[1])];
        st.tier_misses = get(&c.misses);
        st.cold_reads_streamed = get(&c.streamed);
        st.cold_reads_promoted = get(&c.promoted);
        st.cold_streamed_bytes = get(&c.streamed_bytes);
        st.tier_moves = [get(&c.moves[0]), get(&c.moves[1]), get(&c.moves[2])];
        st.tier_move_failures = get(&c.move_failures);
        st.search_cold_segments = [
            get(&c.cold_searched),
            get(&c.cold_skipped),
            get(&c.cold_left_out),
        ];
        for c in read(&self.inner.catalog).values() {
            st.collections += 1;
            let (points, bytes, _) = c.memtable_stats();
            st.memtable_points += points;
            st.memtable_bytes += bytes;
            for s in c.segments().iter() {
                st.segments += 1;
                st.unwritten_segments += u64::from(!s.is_persisted());
                st.segment_points += s.live_rows();
                st.segment_bytes += s.meta.file_len();
                st.indexed_segments += u64::from(s.meta.indexed());
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
        inner.check_writable()?;
        let mut m = inner.lock_manifest();
        let key = (tenant.to_string(), name.to_string());
        if read(&inner.catalog).contains_key(&key) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("collection {name:?} already exists"),
            ));
        }
        if read(&inner.aliases).contains_key(&key) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("{name:?} is already an alias of a collection"),
            ));
        }
        let lsn = inner.wal.last_lsn();
        let entry = CollectionEntry {
            id: m.take_collection_id(),
            tenant: key.0.clone(),
            name: key.1.clone(),
            config,
            created_lsn: lsn,
            flushed_lsn: lsn,
            hint: strata_tiering::policy::Hint::Auto,
            indexes: Vec::new(),
            segments: Vec::new(),
        };
        let coll = Arc::new(Collection::new(&entry, Vec::new()));
        m.publish(ManifestChange::Add(&coll))?;
        write(&inner.catalog).insert(key, Arc::clone(&coll));
        Ok(CollectionHandle::new(Arc::clone(inner), coll))
    }

    /// The actor store of `actor_type` for `tenant`, created (and recorded in the manifest)
    /// on first use: actor runtimes never declare their types.
    pub fn actors(&self, tenant: &str, actor_type: &str) -> Result<crate::actors::ActorHandle> {
        validate_name("tenant", tenant)?;
        validate_name("actor type", actor_type)?;
        let inner = &self.inner;
        let key = (tenant.to_string(), actor_type.to_string());
        if let Some(s) = read(&inner.actor_stores).get(&key) {
            return Ok(crate::actors::ActorHandle::new(
                Arc::clone(inner),
                Arc::clone(s),
            ));
        }
        inner.check_writable()?;
        let mut m = inner.lock_manifest();
        if let Some(s) = read(&inner.actor_stores).get(&key) {
            return Ok(crate::actors::ActorHandle::new(
                Arc::clone(inner),
                Arc::clone(s),
            ));
        }
        let lsn = inner.wal.last_lsn();
        let entry = crate::manifest::ActorStoreEntry {
            id: m.take_collection_id(),
            tenant: key.0.clone(),
            actor_type: key.1.clone(),
            created_lsn: lsn,
            flushed_lsn: lsn,
            hint: crate::TierHint::Auto,
            segments: Vec::new(),
        };
        // Recorded in the manifest before any write can reach it: a WAL record of a store no
        // manifest names would be skipped at replay.
        m.publish(ManifestChange::AddActor(&entry))?;
        let store = Arc::new(crate::actors::store::ActorStore::new(&entry, Vec::new()));
        write(&inner.actor_stores).insert(key, Arc::clone(&store));
        Ok(crate::actors::ActorHandle::new(Arc::clone(inner), store))
    }

    /// The actor types `tenant` has written, in order.
    pub fn list_actor_types(&self, tenant: &str) -> Vec<String> {
        read(&self.inner.actor_stores)
            .keys()
            .filter(|(t, _)| t == tenant)
            .map(|(_, ty)| ty.clone())
            .collect()
    }

    /// The actor store of `actor_type` for `tenant` if it exists (reads never create one).
    pub fn actors_existing(
        &self,
        tenant: &str,
        actor_type: &str,
    ) -> Result<Option<crate::actors::ActorHandle>> {
        validate_name("tenant", tenant)?;
        validate_name("actor type", actor_type)?;
        let key = (tenant.to_string(), actor_type.to_string());
        Ok(read(&self.inner.actor_stores)
            .get(&key)
            .map(|s| crate::actors::ActorHandle::new(Arc::clone(&self.inner), Arc::clone(s))))
    }

    /// Deletes a collection and all its data. If the manifest write fails the collection stays
    /// (and writes are refused until a manifest write succeeds).
    pub fn delete_collection(&self, tenant: &str, name: &str) -> Result<()> {
        validate_name("collection name", name)?;
        let inner = &self.inner;
        inner.check_writable()?;
        let mut m = inner.lock_manifest();
        let coll = inner.lookup(tenant, name)?;
        coll.set_dropped(true);
        if let Err(e) = m.publish(ManifestChange::Remove(coll.id())) {
            coll.set_dropped(false);
            return Err(e);
        }
        write(&inner.catalog).remove(&(tenant.to_string(), name.to_string()));
        for s in coll.segments().iter() {
            s.retire();
        }
        m.retire(coll.segments().iter().map(|s| s.id()));
        m.delete_retired();
        drop(m);
        inner.release_wal_logged();
        Ok(())
    }

    /// Sets where the tiering policy keeps a collection's segments (persisted in the manifest;
    /// the mover applies it at its next pass): `auto`, `pin_hot` (hot as far as the hot budget
    /// allows, never demoted), `warm` (kept local, pre-warmed now) or `offload` (cold only;
    /// reads stream without caching).
    pub fn set_tier_hint(&self, tenant: &str, name: &str, hint: crate::TierHint) -> Result<()> {
        let inner = &self.inner;
        inner.check_writable()?;
        let mut m = inner.lock_manifest();
        let coll = inner.lookup(tenant, name)?;
        let old = coll.hint();
        coll.set_hint(&m, hint);
        if let Err(e) = m.publish(ManifestChange::None) {
            coll.set_hint(&m, old);
            return Err(e);
        }
        drop(m);
        inner.wake_maintenance();
        Ok(())
    }

    /// The tier budgets in force: hot bytes, and local (hot + warm) bytes (`None`: unlimited).
    pub fn tier_budgets(&self) -> (u64, Option<u64>) {
        let b = self.inner.budgets();
        (
            b.hot_bytes,
            (b.warm_bytes != u64::MAX).then_some(b.warm_bytes),
        )
    }

    /// The batched-read engine of the local data directory (`None` over custom storage
    /// without one): its backend (`io_uring` / `pread`), depth and why `auto` fell back.
    pub fn io(&self) -> Option<&Arc<Io>> {
        self.inner.io.as_ref()
    }

    /// Whether a cold tier is configured, and if so whether its last probe (at most
    /// `tiers.mover_interval` × 10 old; refreshed by the mover thread) reached it.
    pub fn cold_store_status(&self) -> Option<std::result::Result<(), String>> {
        self.inner.tiered()?;
        Some(self.inner.cold_probe())
    }

    /// A handle on an existing collection, by its name or one of its aliases. A name no
    /// collection could have ([`validate_name`]) is refused as invalid, as by
    /// [`Self::create_collection`], rather than not found: one name check for every route.
    pub fn collection(&self, tenant: &str, name: &str) -> Result<CollectionHandle> {
        validate_name("collection name", name)?;
        let coll = match self.inner.lookup(tenant, name) {
            Err(e) if e.kind() == ErrorKind::NotFound => match self.resolve_alias(tenant, name) {
                Some(target) => self.inner.lookup(tenant, &target)?,
                None => return Err(e),
            },
            other => other?,
        };
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
        self.inner
            .collections()
            .into_iter()
            .map(|c| CollectionHandle::new(Arc::clone(&self.inner), c))
            .collect()
    }

    /// Flushes every memtable to segments (and releases the WAL they covered).
    /// Flushes every collection; one failing does not stop the others (the first error is
    /// returned after all were tried).
    pub fn flush_all(&self) -> Result<()> {
        let mut first = None;
        for c in self.all_collections() {
            if let Err(e) = c.flush() {
                tracing::error!(tenant = c.tenant(), collection = c.name(), error = %e, "flush failed");
                first.get_or_insert(e);
            }
        }
        for a in self.inner.actor_stores() {
            if let Err(e) = crate::actors::flush::flush(&self.inner, &a) {
                tracing::error!(tenant = a.tenant, actor_type = a.actor_type, error = %e, "actor flush failed");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
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
        self.inner.syncer.stop();
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

/// The manifest lock, held. Publishing and segment swaps require it.
pub(crate) struct ManifestLock<'a> {
    inner: &'a Inner,
    m: MutexGuard<'a, Manifest>,
}

impl ManifestLock<'_> {
    /// A fresh collection id (never reused: the counter is kept even if the publish fails).
    fn take_collection_id(&mut self) -> u64 {
        let id = self.m.next_collection_id.max(1);
        self.m.next_collection_id = id + 1;
        id
    }

    /// Writes a complete new manifest: the catalog plus `change`. On failure the engine
    /// refuses writes until a later publish succeeds; on success it deletes retired segments.
    pub(crate) fn publish(&mut self, change: ManifestChange<'_>) -> Result<()> {
        let inner = self.inner;
        let mut colls = inner.collections();
        let mut aliases = match change {
            ManifestChange::Aliases(a) => a.clone(),
            _ => read(&inner.aliases).clone(),
        };
        match change {
            ManifestChange::Add(c) => colls.push(Arc::clone(c)),
            ManifestChange::Remove(id) => colls.retain(|c| c.id() != id),
            ManifestChange::Replace(id, c) => {
                colls.retain(|x| x.id() != id);
                colls.push(Arc::clone(c));
            }
            ManifestChange::None | ManifestChange::Aliases(_) | ManifestChange::AddActor(_) => {}
        }
        // A dropped collection's aliases go with it.
        let names: HashSet<(&str, &str)> = colls.iter().map(|c| (c.tenant(), c.name())).collect();
        aliases.retain(|(t, _), target| names.contains(&(t.as_str(), target.as_str())));
        // A name is a collection or an alias, never both (callers check; this is the last guard).
        if let Some((_, name)) = aliases
            .keys()
            .find(|(t, a)| names.contains(&(t.as_str(), a.as_str())))
        {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("{name:?} would be both a collection and an alias"),
            ));
        }
        let next = Manifest {
            generation: self.m.generation + 1,
            last_lsn: self.m.last_lsn.max(inner.wal.last_lsn()),
            next_collection_id: self.m.next_collection_id,
            next_segment_id: inner.next_segment_id.load(Ordering::Acquire),
            collections: colls.iter().map(|c| c.manifest_entry()).collect(),
            aliases,
            actors: {
                let mut a: Vec<crate::manifest::ActorStoreEntry> = read(&inner.actor_stores)
                    .values()
                    .map(|a| a.manifest_entry())
                    .collect();
                if let ManifestChange::AddActor(e) = change {
                    a.push(e.clone());
                    a.sort_by(|x, y| (&x.tenant, &x.actor_type).cmp(&(&y.tenant, &y.actor_type)));
                }
                a
            },
        };
        if let Err(e) = inner
            .blobs
            .put(layout::MANIFEST, &next.encode(), PutMode::Overwrite)
        {
            // Generations stay unique across attempts: the failed one may be on disk.
            self.m.generation = next.generation;
            let err = Error::store("writing the manifest", e);
            tracing::error!(error = %err, "manifest write failed: refusing writes until it is written again");
            metrics::counter!("strata_manifest_write_failures_total").increment(1);
            *lock(&inner.manifest_failure) = Some(err.message().to_string());
            inner.manifest_failed.store(true, Ordering::Release);
            return Err(err);
        }
        *write(&inner.aliases) = next.aliases.clone();
        *self.m = next;
        inner.manifest_failed.store(false, Ordering::Release);
        if lock(&inner.manifest_failure).take().is_some() {
            tracing::info!("manifest written again: writes are accepted");
        }
        self.delete_retired();
        Ok(())
    }

    /// Queues segments for deletion after the next successful publish.
    pub(crate) fn retire(&mut self, ids: impl IntoIterator<Item = u64>) {
        lock(&self.inner.retired).extend(ids);
    }

    /// Deletes retired segments (if the last publish succeeded). Failures stay queued; the
    /// files are also removed at the next start, as no manifest names them.
    pub(crate) fn delete_retired(&mut self) {
        if self.inner.manifest_failed() {
            return;
        }
        let ids = std::mem::take(&mut *lock(&self.inner.retired));
        let mut failed = Vec::new();
        for id in ids {
            self.inner.columns.forget(id);
            if let Err(e) = self.inner.delete_segment_files(id) {
                tracing::warn!(segment = id, error = %e, "could not remove a retired segment; will retry");
                failed.push(id);
            }
        }
        lock(&self.inner.retired).extend(failed);
    }

    /// Flushed LSN of each collection in the last manifest written.
    fn published_flushed(&self) -> HashMap<u64, Lsn> {
        self.m
            .collections
            .iter()
            .map(|c| (c.id, c.flushed_lsn))
            .chain(self.m.actors.iter().map(|a| (a.id, a.flushed_lsn)))
            .collect()
    }
}

impl Inner {
    pub(crate) fn opts(&self) -> &EngineOptions {
        &self.opts
    }

    pub(crate) fn wal(&self) -> &dyn Wal {
        &*self.wal
    }

    pub(crate) fn columns(&self) -> &ColumnCache {
        &self.columns
    }

    pub(crate) fn mover(&self) -> &crate::tiers::Mover {
        &self.mover
    }

    pub(crate) fn tiered(&self) -> Option<&Arc<TieredStore>> {
        self.tiered.as_ref()
    }

    pub(crate) fn blobs(&self) -> &dyn BlobStore {
        &*self.blobs
    }

    pub(crate) fn jobs(&self) -> &Jobs {
        &self.jobs
    }

    pub(crate) fn new_segment_id(&self) -> u64 {
        self.next_segment_id.fetch_add(1, Ordering::AcqRel)
    }

    pub(crate) fn lock_manifest(&self) -> ManifestLock<'_> {
        ManifestLock {
            inner: self,
            m: lock(&self.manifest),
        }
    }

    pub(crate) fn lookup(&self, tenant: &str, name: &str) -> Result<Arc<Collection>> {
        read(&self.catalog)
            .get(&(tenant.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| Error::not_found(format!("collection {name:?} does not exist")))
    }

    pub(crate) fn collections(&self) -> Vec<Arc<Collection>> {
        read(&self.catalog).values().cloned().collect()
    }

    pub(crate) fn actor_stores(&self) -> Vec<Arc<crate::actors::store::ActorStore>> {
        read(&self.actor_stores).values().cloned().collect()
    }

    pub(crate) fn actor_counters(&self) -> &crate::actors::ActorCounters {
        &self.actor_counters
    }

    pub(crate) fn syncer(&self) -> &crate::durable::Syncer {
        &self.syncer
    }

    /// `Ok` when writes are accepted; otherwise `Unavailable` saying why.
    pub(crate) fn check_writable(&self) -> Result<()> {
        let refuse = |why: String| Err(Error::new(ErrorKind::Unavailable, why));
        if self.opts.read_only {
            return refuse("the engine was opened read-only".into());
        }
        if self.closed.load(Ordering::Acquire) {
            return refuse("the engine is shutting down".into());
        }
        if !self.wal.is_healthy() {
            return refuse(
                "the WAL is unavailable after a failed fsync or rollback; restart the server to recover"
                    .into(),
            );
        }
        if let Some(why) = self.tiered.as_ref().and_then(|t| t.fenced()) {
            return refuse(why);
        }
        if self.manifest_failed()
            && let Some(why) = &*lock(&self.manifest_failure)
        {
            return refuse(format!(
                "the last manifest write failed ({why}); writes are refused until it is written again (retried in the background)"
            ));
        }
        Ok(())
    }

    /// True while a manifest write failed and none has succeeded since.
    pub(crate) fn manifest_failed(&self) -> bool {
        self.manifest_failed.load(Ordering::Acquire)
    }

    /// Writes a segment file and its meta file and maps the segment back, checked: the result
    /// is a persisted, warm segment. Segment ids are never reused, so an overwrite can only
    /// replace this segment's own earlier, failed attempt.
    pub(crate) fn write_segment(&self, id: u64, bytes: &[u8]) -> Result<Segment> {
        let name = layout::segment(id);
        self.blobs
            .put(&name, bytes, PutMode::Overwrite)
            .map_err(|e| Error::store("writing a segment", e))?;
        let blob = self
            .blobs
            .open(&name)
            .map_err(|e| Error::store("opening a segment just written", e))?;
        if blob.len() != bytes.len() {
            return Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "segment {} reads back as {} bytes, {} were written",
                    self.blobs.location(&name),
                    blob.len(),
                    bytes.len()
                ),
            ));
        }
        let data = SegmentData::open(blob, Verify::HeaderOnly).map_err(|e| {
            Error::corruption(format!(
                "segment {} rejected after write: {e}",
                self.blobs.location(&name)
            ))
        })?;
        let meta_bytes = data.meta_bytes(true);
        self.blobs
            .put(&layout::segment_meta(id), &meta_bytes, PutMode::Overwrite)
            .map_err(|e| Error::store("writing a segment meta file", e))?;
        let meta = SegmentMeta::open(Blob::from_bytes(&meta_bytes))
            .map_err(|e| Error::corruption(format!("meta of segment {id} rejected: {e}")))?;
        Ok(Segment::new(
            meta,
            Body::Warm(Arc::new(data)),
            true,
            self.opts.clock.now_millis(),
        ))
    }

    /// Deletes a segment's file and meta file (locally; a cold copy waits for collection).
    pub(crate) fn delete_segment_files(&self, id: u64) -> std::result::Result<(), StoreError> {
        self.blobs.delete(&layout::segment(id))?;
        self.blobs.delete(&layout::segment_meta(id))
    }

    /// Best-effort removal of a segment file no manifest names (an abandoned write).
    pub(crate) fn discard_segment(&self, id: u64) {
        if let Err(e) = self.delete_segment_files(id) {
            tracing::warn!(segment = id, error = %e, "could not remove an abandoned segment; it is removed at the next start");
        }
    }

    /// Collects unreferenced cold objects when `cold_gc_interval` has passed since the last
    /// collection. False when nothing was due.
    pub(crate) fn collect_cold_garbage(&self) -> Result<bool> {
        let Some(t) = &self.tiered else {
            return Ok(false);
        };
        let now = self.opts.clock.now_millis();
        let last = self.last_gc_ms.load(Ordering::Acquire);
        let interval = u64::try_from(self.opts.cold_gc_interval.as_millis()).unwrap_or(u64::MAX);
        if last != 0 && now.saturating_sub(last) < interval {
            return Ok(false);
        }
        self.last_gc_ms.store(now.max(1), Ordering::Release);
        t.collect_garbage(now)
            .map_err(|e| Error::store("collecting cold-tier garbage", e))?;
        Ok(true)
    }

    pub(crate) fn note_flush(&self) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("strata_flushes_total").increment(1);
    }

    pub(crate) fn note_compaction(&self) {
        self.compactions.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("strata_compactions_total").increment(1);
    }

    pub(crate) fn wake_maintenance(&self) {
        self.wake.notify_all();
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        *lock(&self.shutdown)
    }

    /// Waits for `interval` or a wake-up; false once shut down.
    pub(crate) fn wait(&self, interval: std::time::Duration) -> bool {
        let guard = lock(&self.shutdown);
        if *guard {
            return false;
        }
        let (guard, _) = self
            .wake
            .wait_timeout(guard, interval)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        !*guard
    }

    /// Deletes WAL files whose records are all in segments that a *written* manifest names (or
    /// belong to collections it no longer has). Holds the manifest lock throughout, so no
    /// collection created (and written to) meanwhile can be mistaken for a dropped one.
    pub(crate) fn release_wal(&self) -> Result<usize> {
        let m = self.lock_manifest();
        let flushed = m.published_flushed();
        self.wal
            .release(&|stream, max| flushed.get(&stream).is_some_and(|f| max > *f))
    }

    /// [`Inner::release_wal`] after an operation that already succeeded: a failure only delays
    /// the deletion to the next release, so it is logged, not returned.
    pub(crate) fn release_wal_logged(&self) {
        if let Err(e) = self.release_wal() {
            tracing::warn!(error = %e, "could not release WAL files; will retry at the next flush");
        }
    }

    /// Writes the manifest again if the last write failed. True if it did (successfully).
    pub(crate) fn republish_if_failed(&self) -> Result<bool> {
        if !self.manifest_failed() {
            return Ok(false);
        }
        let mut m = self.lock_manifest();
        if !self.manifest_failed() {
            return Ok(false);
        }
        m.publish(ManifestChange::None)?;
        drop(m);
        self.release_wal_logged();
        Ok(true)
    }
}

fn read_manifest(blobs: &dyn BlobStore) -> Result<Manifest> {
    match blobs.open(layout::MANIFEST) {
        Ok(blob) => Manifest::decode(blob.as_bytes()).map_err(|e| {
            Error::corruption(format!(
                "manifest {} is corrupt at byte offset {}: {}",
                blobs.location(layout::MANIFEST),
                e.offset,
                e.what
            ))
        }),
        Err(e) if e.is_not_found() => Ok(Manifest {
            next_collection_id: 1,
            next_segment_id: 1,
            ..Manifest::default()
        }),
        Err(e) => Err(Error::store("reading the manifest", e)),
    }
}

/// Finds (and unless read-only removes) segment files the manifest does not name: a crash
/// between writing a file and recording it leaves these. Returns (found, removed, the highest segment id listed).
fn remove_orphans(
    blobs: &dyn BlobStore,
    m: &Manifest,
    read_only: bool,
) -> Result<(usize, usize, u64)> {
    let live: HashSet<u64> = m.segment_ids().collect();
    let (mut found, mut removed, mut max_id) = (0, 0, 0);
    for meta in blobs
        .list(layout::SEGMENTS)
        .map_err(|e| Error::store("listing segments", e))?
    {
        let Some(id) = layout::segment_blob_id(&meta.name) else {
            continue;
        };
        // Ids are never reused, not even those of orphans (a cold copy may still exist).
        max_id = max_id.max(id);
        if live.contains(&id) {
            continue;
        }
        found += 1;
        if read_only {
            tracing::warn!(file = %blobs.location(&meta.name), "segment not named by the manifest (left in place: read-only)");
            continue;
        }
        tracing::info!(file = %blobs.location(&meta.name), "removing leftover segment");
        blobs
            .delete(&meta.name)
            .map_err(|e| Error::store("removing a leftover segment", e))?;
        removed += 1;
    }
    Ok((found, removed, max_id))
}

/// Fetches the meta files the manifest needs and the local directory lacks (a restore), eight
/// at a time: one object-store round trip each, so a restore of many segments would otherwise
/// wait for them one after the other. Failures are left to the open that follows (which
/// reports them).
fn prefetch_meta_files(t: &TieredStore, m: &Manifest) {
    let missing: Vec<String> = m
        .segment_ids()
        .map(layout::segment_meta)
        .filter(|name| matches!(t.is_local(name), Ok(false)))
        .collect();
    if missing.len() < 2 {
        return;
    }
    let next = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..missing.len().min(8) {
            s.spawn(|| {
                while let Some(name) = missing.get(next.fetch_add(1, Ordering::Relaxed) as usize) {
                    let _ = t.open(name);
                }
            });
        }
    });
}

/// Opens segment `s` of collection `c`: its meta file (fetched from the cold store if only
/// there; rebuilt from the segment if missing or damaged — it is derived data) and, if the
/// segment file is local, its body (checked per `verify`); a segment only the cold store has
/// opens cold, with nothing downloaded but its meta file.
fn open_segment(
    blobs: &dyn BlobStore,
    tiered: Option<&TieredStore>,
    s: &SegmentEntry,
    c: &CollectionEntry,
    opts: &EngineOptions,
) -> Result<Segment> {
    let meta_name = layout::segment_meta(s.id);
    // Residency is what is local: warm if the segment file is, cold otherwise (also without a
    // cold tier configured — `strata check`, or a node restarted without its cold store — in
    // which case reading that segment's vectors fails with an error that says so).
    let local =
        is_local(blobs, tiered, s.id).map_err(|e| Error::store("looking for a segment", e))?;
    let mut body = match local {
        true => Some(open_body(blobs, s, c, opts.verify_on_open)?),
        false => None,
    };
    let meta = match blobs.open(&meta_name) {
        Ok(b) => match SegmentMeta::open(b) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(file = %blobs.location(&meta_name), error = %e, "damaged segment meta file; rebuilding it from the segment");
                None
            }
        },
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(Error::store("opening a segment meta file", e)),
    };
    let meta = match meta {
        Some(m) => m,
        None => {
            if body.is_none() {
                body = Some(open_body(blobs, s, c, opts.verify_on_open)?);
            }
            let bytes = body
                .as_ref()
                .map(|b| b.meta_bytes(true))
                .unwrap_or_default();
            // Derived data: a copy in the cold store that differs (damaged, or written by
            // another version of the encoder) is replaced, not treated as another writer's.
            let written = match (opts.read_only, tiered) {
                (true, _) => Ok(()),
                (false, Some(t)) => t.replace_derived(&meta_name, &bytes),
                (false, None) => blobs
                    .put(&meta_name, &bytes, PutMode::Overwrite)
                    .map(|_| ()),
            };
            written.map_err(|e| Error::store("writing a segment meta file", e))?;
            SegmentMeta::open(Blob::from_bytes(&bytes))
                .map_err(|e| Error::corruption(format!("meta of segment {} rejected: {e}", s.id)))?
        }
    };
    let path = blobs.location(&meta_name);
    if meta.file_len() != s.file_len
        || meta.layout.header.collection_id != c.id
        || meta.segment_id() != s.id
        || !spaces_match(&meta.layout, &c.config)
        || body.as_ref().is_some_and(|b| b.layout != meta.layout)
    {
        return Err(Error::corruption(format!(
            "segment meta file {path} does not match its segment or MANIFEST (length, collection, id, dimension or distance)"
        )));
    }
    let body = match body {
        Some(d) => Body::Warm(Arc::new(d)),
        None => Body::Cold,
    };
    // Not moved by this process yet: no minimum residence applies.
    Ok(Segment::new(meta, body, true, 0))
}

/// Whether segment `id`'s file is local (residency: warm if it is, else cold — also without a
/// cold tier configured, when only its meta file is here). Neither file here reads as local, so
/// the open that follows reports the missing file.
pub(crate) fn is_local(
    blobs: &dyn BlobStore,
    tiered: Option<&TieredStore>,
    id: u64,
) -> std::result::Result<bool, StoreError> {
    let name = layout::segment(id);
    match tiered {
        Some(t) => t.is_local(&name),
        None => match blobs.head(&name) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => match blobs.head(&layout::segment_meta(id)) {
                Ok(_) => Ok(false),
                Err(e) if e.is_not_found() => Ok(true),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
    }
}

/// Opens and checks the file of segment `s` (fetching it if only the cold store has it).
fn open_body(
    blobs: &dyn BlobStore,
    s: &SegmentEntry,
    c: &CollectionEntry,
    verify: Verify,
) -> Result<SegmentData> {
    let name = layout::segment(s.id);
    let path = blobs.location(&name);
    let blob = blobs.open(&name).map_err(|e| {
        if e.is_not_found() {
            Error::corruption(format!("segment file {path} named in MANIFEST is missing"))
        } else {
            Error::store("opening a segment", e)
        }
    })?;
    if blob.len() as u64 != s.file_len {
        return Err(Error::corruption(format!(
            "segment file {path} is {} bytes, MANIFEST records {}",
            blob.len(),
            s.file_len
        )));
    }
    let corrupt = |e: crate::codec::DecodeError| {
        Error::corruption(format!(
            "segment file {path} is corrupt at byte offset {}: {}",
            e.offset, e.what
        ))
    };
    // A mapped file's checksums are summed through batched reads (io_uring or pread) rather
    // than by faulting every page into the process, and the pages the structural checks
    // touched are released after: opening costs no resident memory beyond what queries touch.
    let mapped = blob.is_mapped() && verify == Verify::Full;
    let data = match mapped {
        true => SegmentData::open_structure(blob),
        false => SegmentData::open(blob, verify),
    }
    .map_err(corrupt)?;
    if mapped {
        data.verify_checksums(&mut |ranges| {
            let got = blobs.read_ranges(&name, ranges)?;
            // A store that returns other than the bytes asked for breaks its contract; that is
            // a read failure, not a corrupt file.
            let short = |what: String| StoreError::Io {
                op: "reading",
                location: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, what),
            };
            if got.len() != ranges.len() {
                return Err(short(format!("{} of {} ranges", got.len(), ranges.len())));
            }
            match ranges
                .iter()
                .zip(&got)
                .find(|(r, b)| b.len() as u64 != r.end - r.start)
            {
                None => Ok(got),
                Some((r, b)) => Err(short(format!(
                    "{} of {} bytes at {}",
                    b.len(),
                    r.end - r.start,
                    r.start
                ))),
            }
        })
        .map_err(|e| match e {
            VerifyError::Corrupt(e) => corrupt(e),
            VerifyError::Read(e) => Error::store("reading a segment to verify it", e),
        })?;
    }
    // Even reading the header maps a whole large folio of the page cache (2 MiB here).
    data.release_pages();
    if data.layout.header.collection_id != c.id
        || data.segment_id() != s.id
        || !spaces_match(&data.layout, &c.config)
    {
        return Err(Error::corruption(format!(
            "segment file {path} belongs to another collection, or its vectors' names, dimensions or distances differ"
        )));
    }
    Ok(data)
}

/// True when a segment's vector spaces are the collection's: same names, dimensions and
/// distances, in the same order.
pub(crate) fn spaces_match(
    layout: &crate::segment::format::Layout,
    config: &CollectionConfig,
) -> bool {
    layout.spaces.len() == config.vectors.len()
        && layout
            .spaces
            .iter()
            .zip(&config.vectors)
            .all(|(s, (name, p))| s.name == *name && s.dim == p.dim && s.distance == p.distance)
}

/// Marks every row that a newer version (row or tombstone) in another segment shadows.
pub(crate) fn rebuild_shadows(segs: &[Arc<Segment>]) {
    if segs.len() < 2 {
        return;
    }
    let mut newest: HashMap<PointId, Lsn> = HashMap::new();
    for s in segs {
        let ids = s.meta.ids();
        for r in 0..ids.rows() {
            let v = newest.entry(ids.id(r)).or_insert(0);
            *v = (*v).max(ids.version(r));
        }
        for t in 0..ids.tombstone_count() {
            if let Some((id, lsn)) = ids.tombstone(t) {
                let v = newest.entry(id).or_insert(0);
                *v = (*v).max(lsn);
            }
        }
    }
    for s in segs {
        let ids = s.meta.ids();
        for r in 0..ids.rows() {
            if ids.version(r) < newest[&ids.id(r)] {
                s.mark_dead(r);
            }
        }
    }
}
