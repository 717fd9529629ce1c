//! [`TieredStore`]: a local blob store (the warm tier) in front of a cold one (an object store)
//! that holds the complete durable copy of every sealed blob.
//!
//! ```text
//!  put segment ─▶ local put (temp, fsync, rename) ─▶ cold put + read-back verify ─▶ Ok
//!  put MANIFEST ─▶ cold create-only `manifests/{generation}` ─▶ local MANIFEST ─▶ Ok
//!  open ─▶ local? ─yes─▶ mapped blob
//!           └─no──▶ single-flight fetch from cold ─▶ local put ─▶ mapped blob
//!  delete ─▶ local only; the cold copy stays until garbage collection (below)
//!  evict ─▶ (cold copy known) ─▶ local delete          the warm → cold move
//!  promote ─▶ parallel ranged GETs ─▶ written into a local temp file ─▶ fsync
//!            ─▶ verify (caller, on its mapping) ─▶ rename ─▶ fsync dir (put_assembled)
//!  read_cold ─▶ ranged GETs, nothing kept locally     streaming a cold blob
//! ```
//!
//! - **A manifest names only uploaded blobs**: a segment put returns only once the cold copy
//!   is verified, and the engine publishes a manifest only after its segments' puts returned.
//! - **Manifest generations are create-only** objects: a second writer on the same cold store
//!   (two nodes given one URL) fails its next manifest write with `AlreadyExists` instead of
//!   overwriting the other's history — the engine then refuses writes (fencing).
//! - **Restore**: opened over an empty local directory, the store copies the newest cold
//!   generation to the local `MANIFEST`; segments are fetched as the engine opens them.
//! - **Garbage collection** ([`TieredStore::collect_garbage`]) keeps the newest
//!   `retain_manifests` generations and every blob they name (read with the engine's
//!   [`ManifestRefs`]); any other object under `segments/` or `manifests/` is deleted once it has
//!   been seen unreferenced for `gc_grace` (so an upload whose manifest is still being written
//!   is never collected). A manifest that cannot be read stops the collection: nothing is
//!   deleted when in doubt.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::blob::Blob;
use crate::error::{StoreError, StoreResult};
use crate::layout;
use crate::lock;
use crate::store::{BlobMeta, BlobStore, ETag, PartSink, PutMode};

/// Reads the blob names a manifest refers to; `None` when the bytes are not a manifest. The
/// engine provides it: the storage layer does not know the manifest's format.
pub type ManifestRefs = Arc<dyn Fn(&[u8]) -> Option<Vec<String>> + Send + Sync>;

/// How the tiered store keeps its cold history.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TieredOptions {
    /// Newest manifest generations kept in the cold store (and every blob they name). Default 10.
    pub retain_manifests: usize,
    /// How long an unreferenced cold object must stay unreferenced before it is deleted.
    /// Default 1 h.
    pub gc_grace: Duration,
}

impl Default for TieredOptions {
    fn default() -> Self {
        TieredOptions {
            retain_manifests: 10,
            gc_grace: Duration::from_secs(3600),
        }
    }
}

/// What a garbage collection did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Manifest generations kept.
    pub manifests_retained: usize,
    /// Objects found that no retained manifest names.
    pub unreferenced: usize,
    /// Of these, deleted (unreferenced for the grace period).
    pub deleted: usize,
    /// Bytes deleted.
    pub deleted_bytes: u64,
}

#[derive(Debug, Default)]
struct State {
    /// Generation of the next manifest put.
    next_generation: u64,
    /// Set when another writer created a manifest generation in this cold store: every later
    /// write and collection is refused until restart (fencing).
    fenced: Option<String>,
    /// Segments put through this store and not yet named by a published generation (or
    /// deleted): never collected, whatever the grace period.
    pending: BTreeSet<String>,
    /// Segment blobs known to be in the cold store (listed at open, or uploaded and verified).
    in_cold: BTreeSet<String>,
    /// Names deleted through this store: hidden, their cold copy awaiting collection.
    deleted: BTreeSet<String>,
    /// Cold objects seen unreferenced, and since when (ms).
    unreferenced_since: BTreeMap<String, u64>,
}

/// A warm local store in front of a cold store (see the module docs).
pub struct TieredStore {
    local: Arc<dyn BlobStore>,
    cold: Arc<dyn BlobStore>,
    refs: ManifestRefs,
    opts: TieredOptions,
    state: Mutex<State>,
    /// One lock per name being fetched (single flight).
    fetching: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    restored_generation: Option<u64>,
    is_fenced: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for TieredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TieredStore")
            .field("local", &self.local)
            .field("cold", &self.cold)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// Part size of a promotion's ranged GETs.
pub(crate) const PROMOTE_PART_BYTES: u64 = 8 << 20;
/// Ranged GETs of one promotion in flight at once.
pub(crate) const PROMOTE_PARALLELISM: usize = 4;

fn note_fetch(name: &str, bytes: usize, started: std::time::Instant) {
    metrics::counter!("strata_tier_fetches_total").increment(1);
    metrics::counter!("strata_tier_fetched_bytes_total").increment(bytes as u64);
    metrics::histogram!("strata_tier_fetch_seconds").record(started.elapsed().as_secs_f64());
    tracing::debug!(blob = name, bytes, "fetched from the cold store");
}

fn newest_generation(cold: &dyn BlobStore) -> StoreResult<Option<u64>> {
    Ok(cold
        .list(layout::MANIFESTS)?
        .iter()
        .filter_map(|m| layout::manifest_generation_of(&m.name))
        .max())
}

impl TieredStore {
    /// Puts `local` in front of `cold`. If `local` has no `MANIFEST` and `cold` has
    /// generations, the newest is restored into `local` (a new node, or a lost disk).
    pub fn open(
        local: Arc<dyn BlobStore>,
        cold: Arc<dyn BlobStore>,
        refs: ManifestRefs,
        opts: TieredOptions,
    ) -> StoreResult<TieredStore> {
        let newest = newest_generation(&*cold)?;
        let mut restored_generation = None;
        if let Some(g) = newest {
            match local.head(layout::MANIFEST) {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {
                    let name = layout::manifest_generation(g);
                    let blob = cold.open(&name)?;
                    if refs(blob.as_bytes()).is_none() {
                        return Err(StoreError::Io {
                            op: "restoring",
                            location: cold.location(&name),
                            source: std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                "the newest manifest generation is not a readable manifest",
                            ),
                        });
                    }
                    local.put(layout::MANIFEST, blob.as_bytes(), PutMode::Overwrite)?;
                    tracing::info!(
                        from = %cold.location(&name),
                        "empty data directory: restored the manifest from the cold store"
                    );
                    restored_generation = Some(g);
                }
                Err(e) => return Err(e),
            }
        }
        let in_cold = cold
            .list(layout::SEGMENTS)?
            .into_iter()
            .map(|m| m.name)
            .collect();
        Ok(TieredStore {
            local,
            cold,
            refs,
            opts,
            state: Mutex::new(State {
                next_generation: newest.map_or(1, |g| g + 1),
                in_cold,
                ..State::default()
            }),
            fetching: Mutex::new(HashMap::new()),
            restored_generation,
            is_fenced: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The cold generation restored at open, if the local directory had no manifest.
    pub fn restored_generation(&self) -> Option<u64> {
        self.restored_generation
    }

    /// The cold store.
    pub fn cold(&self) -> &Arc<dyn BlobStore> {
        &self.cold
    }

    /// The local (warm) store.
    pub fn local(&self) -> &Arc<dyn BlobStore> {
        &self.local
    }

    /// Why this store is fenced, if it is (another writer shares its cold store). Cheap: the
    /// engine asks on every write.
    pub fn fenced(&self) -> Option<String> {
        if !self.is_fenced.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        lock(&self.state).fenced.clone()
    }

    fn check_fence(&self, name: &str) -> StoreResult<()> {
        match &lock(&self.state).fenced {
            None => Ok(()),
            Some(why) => Err(StoreError::Io {
                op: "writing",
                location: self.cold.location(name),
                source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, why.clone()),
            }),
        }
    }

    /// Uploads (verified) every segment `names` lists that the cold store lacks — segments
    /// written before the cold tier was configured, or into another bucket — so that no
    /// manifest generation names a segment the cold store does not hold.
    fn ensure_in_cold(&self, names: &[String]) -> StoreResult<()> {
        let missing: Vec<&String> = {
            let s = lock(&self.state);
            names
                .iter()
                .filter(|n| layout::segment_blob_id(n).is_some() && !s.in_cold.contains(*n))
                .collect()
        };
        for name in missing {
            match self.cold.head(name) {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {
                    let blob = self.local.open(name)?;
                    self.cold.put(name, blob.as_bytes(), PutMode::Overwrite)?;
                    tracing::info!(blob = %name, "uploaded a segment the cold store lacked");
                }
                Err(e) => return Err(e),
            }
            lock(&self.state).in_cold.insert(name.clone());
        }
        Ok(())
    }

    /// Checks a conditional MANIFEST put against the local copy before anything is written.
    fn check_manifest_mode(&self, mode: &PutMode) -> StoreResult<()> {
        let current = match self.local.head(layout::MANIFEST) {
            Ok(m) => Some(m.e_tag),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        match (mode, current) {
            (PutMode::Create, Some(_)) => Err(StoreError::AlreadyExists {
                location: self.location(layout::MANIFEST),
            }),
            (PutMode::Update(want), found) if found.as_ref() != Some(want) => {
                Err(StoreError::Precondition {
                    location: self.location(layout::MANIFEST),
                    expected: want.0.clone(),
                    found: found.map_or_else(|| "none".into(), |t| t.0),
                })
            }
            _ => Ok(()),
        }
    }

    fn put_manifest(&self, bytes: &[u8], mode: PutMode) -> StoreResult<ETag> {
        self.check_fence(layout::MANIFEST)?;
        self.check_manifest_mode(&mode)?;
        let names = (self.refs)(bytes).unwrap_or_default();
        self.ensure_in_cold(&names)?;
        let generation = {
            let mut s = lock(&self.state);
            let g = s.next_generation;
            // Taken even if the put fails: the failed attempt may have landed.
            s.next_generation += 1;
            g
        };
        let gname = layout::manifest_generation(generation);
        match self.cold.put(&gname, bytes, PutMode::Create) {
            Ok(_) => {}
            // Our own earlier attempt (a retried request that had landed) reads back equal; a
            // failing read-back is an error to retry, not proof of another writer.
            Err(StoreError::AlreadyExists { location }) => {
                if self.cold.open(&gname)?.as_bytes() != bytes {
                    return Err(self.fence(format!(
                        "fenced: another writer created manifest generation {generation} ({location}); two nodes share this cold store, so this one refuses to write until restarted"
                    ), location));
                }
            }
            Err(e) => return Err(e),
        }
        let tag = self.local.put(layout::MANIFEST, bytes, mode)?;
        let mut s = lock(&self.state);
        for n in &names {
            s.pending.remove(n);
        }
        Ok(tag)
    }

    /// Fences this store for good (until restart) and returns the error that says why.
    fn fence(&self, why: String, location: String) -> StoreError {
        tracing::error!("{why}");
        lock(&self.state).fenced = Some(why.clone());
        self.is_fenced
            .store(true, std::sync::atomic::Ordering::Release);
        StoreError::Io {
            op: "writing",
            location,
            source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, why),
        }
    }

    fn hidden(&self, name: &str) -> bool {
        lock(&self.state).deleted.contains(name)
    }

    fn not_found(&self, name: &str) -> StoreError {
        StoreError::NotFound {
            location: self.location(name),
        }
    }

    /// Copies `name` from cold to local unless another thread did it meanwhile.
    fn fetch(&self, name: &str) -> StoreResult<()> {
        self.single_flight(name, || {
            if self.is_local(name)? {
                return Ok(());
            }
            let started = std::time::Instant::now();
            let blob = self.cold.open(name)?;
            self.local.put(name, blob.as_bytes(), PutMode::Overwrite)?;
            note_fetch(name, blob.len(), started);
            Ok(())
        })
    }

    /// True when `name` has a local copy (warm or hot), false when only the cold store has it.
    pub fn is_local(&self, name: &str) -> StoreResult<bool> {
        match self.local.head(name) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes the local copy of `name`, which stays readable from the cold store (the move to
    /// the cold tier). Refused unless the cold store holds `name` with `len` bytes right now (a
    /// HEAD, not a cached belief: a lifecycle rule or an operator may have removed it), so a
    /// blob is never left in no tier.
    pub fn evict(&self, name: &str, len: u64) -> StoreResult<()> {
        self.check_fence(name)?;
        let meta = self.cold.head(name)?;
        if meta.size != len {
            return Err(StoreError::Io {
                op: "evicting",
                location: self.cold.location(name),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "the cold copy is {} bytes, the local file {len}: the local copy is kept",
                        meta.size
                    ),
                ),
            });
        }
        lock(&self.state).in_cold.insert(name.to_string());
        self.single_flight(name, || self.local.delete(name))?;
        metrics::counter!("strata_tier_evictions_total").increment(1);
        Ok(())
    }

    /// Writes blob `name` — data derived from another blob (a segment's meta file), which may
    /// legitimately differ from an earlier copy (rebuilt after damage, another encoder
    /// version) — locally and over the cold copy.
    pub fn replace_derived(&self, name: &str, bytes: &[u8]) -> StoreResult<()> {
        self.check_fence(name)?;
        self.local.put(name, bytes, PutMode::Overwrite)?;
        self.cold.put(name, bytes, PutMode::Overwrite)?;
        lock(&self.state).in_cold.insert(name.to_string());
        Ok(())
    }

    /// Copies `name` (`len` bytes) from the cold store to local (the move to the warm tier):
    /// parts of 8 MiB are fetched by up to 4 ranged GETs at once and written straight into a
    /// local temporary file (so a segment never has to fit in RAM), which is fsynced; `verify`
    /// checks the complete file (the caller knows the format), and only then is it renamed
    /// into place ([`BlobStore::put_assembled`]). Single flight: concurrent calls for one name
    /// share the download; a name already local is left alone.
    pub fn promote(
        &self,
        name: &str,
        len: u64,
        verify: &dyn Fn(Blob) -> Result<(), String>,
    ) -> StoreResult<()> {
        self.single_flight(name, || {
            if self.is_local(name)? {
                return Ok(());
            }
            let started = std::time::Instant::now();
            let deleted = std::sync::atomic::AtomicBool::new(false);
            let refused: Mutex<Option<String>> = Mutex::new(None);
            let out = self.local.put_assembled(
                name,
                len,
                &|sink| self.download_into(name, len, sink),
                &|blob| {
                    verify(blob).inspect_err(|why| *lock(&refused) = Some(why.clone()))?;
                    // Deleted meanwhile (a compaction replaced it): writing it back would
                    // leave an orphan. Deletes go through the same flight, so this check
                    // cannot go stale before the rename.
                    if self.hidden(name) {
                        deleted.store(true, std::sync::atomic::Ordering::Relaxed);
                        return Err("deleted while it was promoted".to_string());
                    }
                    Ok(())
                },
            );
            if deleted.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(self.not_found(name));
            }
            // The bad bytes came from the cold object: name it, not the local file that was
            // never written.
            if let Some(why) = lock(&refused).take() {
                return Err(StoreError::Io {
                    op: "verifying",
                    location: self.cold.location(name),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidData, why),
                });
            }
            out?;
            note_fetch(name, len as usize, started);
            Ok(())
        })
    }

    /// Writes the whole of `name` (`len` bytes) into `sink` by parallel ranged GETs.
    fn download_into(&self, name: &str, len: u64, sink: &dyn PartSink) -> StoreResult<()> {
        let parts: Vec<Range<u64>> = (0..len.div_ceil(PROMOTE_PART_BYTES))
            .map(|i| i * PROMOTE_PART_BYTES..((i + 1) * PROMOTE_PART_BYTES).min(len))
            .collect();
        let fetch = |part: &Range<u64>| -> StoreResult<()> {
            let got = self.cold.read_ranges(name, std::slice::from_ref(part))?;
            match got.first() {
                Some(b) if got.len() == 1 && b.len() as u64 == part.end - part.start => {
                    sink.write_part(part.start, b)
                }
                _ => Err(StoreError::Io {
                    op: "downloading",
                    location: self.cold.location(name),
                    source: std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("part {}..{} missing or short", part.start, part.end),
                    ),
                }),
            }
        };
        if parts.len() <= 1 {
            return parts.iter().try_for_each(fetch);
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failure: Mutex<Option<StoreError>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..PROMOTE_PARALLELISM.min(parts.len()) {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(part) = parts.get(i) else { return };
                        if let Err(e) = fetch(part) {
                            lock(&failure).get_or_insert(e);
                            // The others stop at their next part.
                            next.store(parts.len(), std::sync::atomic::Ordering::Relaxed);
                            return;
                        }
                    }
                });
            }
        });
        match failure
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Reads `ranges` of `name` from the cold store without keeping anything locally (a read
    /// the policy streams instead of promoting). A name deleted through this store is still
    /// read while its cold copy exists (garbage collection waits `gc_grace`): a read that
    /// started before a compaction replaced a segment finishes on it.
    pub fn read_cold(&self, name: &str, ranges: &[Range<u64>]) -> StoreResult<Vec<Vec<u8>>> {
        let started = std::time::Instant::now();
        let out = self.cold.read_ranges(name, ranges)?;
        metrics::counter!("strata_tier_streamed_bytes_total")
            .increment(out.iter().map(|b| b.len() as u64).sum());
        metrics::histogram!("strata_tier_fetch_seconds").record(started.elapsed().as_secs_f64());
        Ok(out)
    }

    /// Runs `f` for `name` with no other single-flight call for `name` running.
    fn single_flight<T>(&self, name: &str, f: impl FnOnce() -> StoreResult<T>) -> StoreResult<T> {
        let flight = Arc::clone(
            lock(&self.fetching)
                .entry(name.to_string())
                .or_insert_with(|| Arc::new(Mutex::new(()))),
        );
        let one = lock(&flight);
        let res = f();
        drop(one);
        let mut all = lock(&self.fetching);
        if all.get(name).is_some_and(|a| Arc::strong_count(a) <= 2) {
            all.remove(name);
        }
        res
    }

    /// Deletes cold objects no retained manifest names once they have been unreferenced for
    /// the grace period, and manifest generations beyond the retained ones likewise. `now_ms`
    /// is the caller's clock (injected in tests).
    pub fn collect_garbage(&self, now_ms: u64) -> StoreResult<GcReport> {
        self.check_fence(layout::MANIFESTS)?;
        let mut gens: Vec<(u64, String)> = self
            .cold
            .list(layout::MANIFESTS)?
            .into_iter()
            .filter_map(|m| layout::manifest_generation_of(&m.name).map(|g| (g, m.name)))
            .collect();
        gens.sort();
        let keep = gens.len().saturating_sub(self.opts.retain_manifests.max(1));
        let (old, retained) = gens.split_at(keep);
        let mut live: BTreeSet<String> = BTreeSet::new();
        for (_, name) in retained {
            let blob = self.cold.open(name)?;
            let names = (self.refs)(blob.as_bytes()).ok_or_else(|| StoreError::Io {
                op: "collecting garbage in",
                location: self.cold.location(name),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "a retained manifest generation is not readable: nothing is deleted",
                ),
            })?;
            live.extend(names);
        }
        let cold_segments = self.cold.list(layout::SEGMENTS)?;
        {
            // Names deleted here whose cold copy is gone need no hiding any more.
            let names: BTreeSet<&str> = cold_segments.iter().map(|m| m.name.as_str()).collect();
            lock(&self.state)
                .deleted
                .retain(|n| names.contains(n.as_str()));
        }
        let mut candidates: Vec<BlobMeta> = {
            let s = lock(&self.state);
            cold_segments
                .into_iter()
                .filter(|m| !live.contains(&m.name) && !s.pending.contains(&m.name))
                .collect()
        };
        let old_names: BTreeSet<&str> = old.iter().map(|(_, n)| n.as_str()).collect();
        candidates.extend(
            self.cold
                .list(layout::MANIFESTS)?
                .into_iter()
                .filter(|m| old_names.contains(m.name.as_str())),
        );
        let grace = u64::try_from(self.opts.gc_grace.as_millis()).unwrap_or(u64::MAX);
        let mut report = GcReport {
            manifests_retained: retained.len(),
            unreferenced: candidates.len(),
            ..GcReport::default()
        };
        let due: Vec<BlobMeta> = {
            let mut s = lock(&self.state);
            let names: BTreeSet<&str> = candidates.iter().map(|m| m.name.as_str()).collect();
            s.unreferenced_since
                .retain(|n, _| names.contains(n.as_str()));
            for m in &candidates {
                s.unreferenced_since.entry(m.name.clone()).or_insert(now_ms);
            }
            candidates
                .into_iter()
                .filter(|m| now_ms.saturating_sub(s.unreferenced_since[&m.name]) >= grace)
                .collect()
        };
        for m in due {
            // Under the state lock: a put of this name (which marks it pending first) cannot
            // start between the check and the delete.
            let mut s = lock(&self.state);
            if s.pending.contains(&m.name) || s.fenced.is_some() {
                continue;
            }
            self.cold.delete(&m.name)?;
            s.unreferenced_since.remove(&m.name);
            s.deleted.remove(&m.name);
            s.in_cold.remove(&m.name);
            report.deleted += 1;
            report.deleted_bytes += m.size;
        }
        if report.deleted > 0 {
            tracing::info!(
                objects = report.deleted,
                bytes = report.deleted_bytes,
                "cold store: collected unreferenced objects"
            );
        }
        metrics::counter!("strata_cold_gc_deleted_total").increment(report.deleted as u64);
        Ok(report)
    }
}

impl BlobStore for TieredStore {
    fn location(&self, name: &str) -> String {
        self.local.location(name)
    }

    fn put(&self, name: &str, bytes: &[u8], mode: PutMode) -> StoreResult<ETag> {
        if name == layout::MANIFEST {
            return self.put_manifest(bytes, mode);
        }
        self.check_fence(name)?;
        lock(&self.state).pending.insert(name.to_string());
        // Segments are create-only in cold: ids are never reused, so a taken name is either our
        // own earlier attempt (same bytes: fine) or another writer's segment, which must never
        // be overwritten. Other blobs follow the caller's mode.
        let cold_mode = if layout::segment_blob_id(name).is_some() || mode == PutMode::Create {
            PutMode::Create
        } else {
            PutMode::Overwrite
        };
        let tag = self.local.put(name, bytes, mode)?;
        match self.cold.put(name, bytes, cold_mode) {
            Ok(_) => {}
            Err(StoreError::AlreadyExists { location }) => {
                // Reading the taken object back may fail like any call: that is an error to
                // retry, not proof of another writer (fencing on it would stop this node's
                // writes until a restart over one failed GET).
                // Same bytes: our own earlier attempt landed.
                if self.cold.open(name)?.as_bytes() != bytes {
                    return Err(self.fence(format!(
                    "fenced: {location} already holds other bytes; two nodes share this cold store, so this one refuses to write until restarted"
                ), location));
                }
            }
            Err(e) => return Err(e),
        }
        let mut s = lock(&self.state);
        s.in_cold.insert(name.to_string());
        s.deleted.remove(name);
        s.unreferenced_since.remove(name);
        Ok(tag)
    }

    fn open(&self, name: &str) -> StoreResult<Blob> {
        if self.hidden(name) {
            return Err(self.not_found(name));
        }
        match self.local.open(name) {
            Err(e) if e.is_not_found() && name != layout::MANIFEST => {
                self.fetch(name)?;
                self.local.open(name)
            }
            other => other,
        }
    }

    fn read_ranges(&self, name: &str, ranges: &[Range<u64>]) -> StoreResult<Vec<Vec<u8>>> {
        if self.hidden(name) {
            return Err(self.not_found(name));
        }
        match self.local.read_ranges(name, ranges) {
            Err(e) if e.is_not_found() && name != layout::MANIFEST => {
                self.cold.read_ranges(name, ranges)
            }
            other => other,
        }
    }

    fn head(&self, name: &str) -> StoreResult<BlobMeta> {
        if self.hidden(name) {
            return Err(self.not_found(name));
        }
        match self.local.head(name) {
            Err(e) if e.is_not_found() && name != layout::MANIFEST => self.cold.head(name),
            other => other,
        }
    }

    fn list(&self, prefix: &str) -> StoreResult<Vec<BlobMeta>> {
        let mut all: BTreeMap<String, BlobMeta> = BTreeMap::new();
        if prefix != layout::MANIFESTS {
            for m in self.cold.list(prefix)? {
                all.insert(m.name.clone(), m);
            }
        }
        for m in self.local.list(prefix)? {
            all.insert(m.name.clone(), m);
        }
        let s = lock(&self.state);
        Ok(all
            .into_values()
            .filter(|m| !s.deleted.contains(&m.name))
            .collect())
    }

    fn delete(&self, name: &str) -> StoreResult<()> {
        if name == layout::MANIFEST {
            return self.local.delete(name);
        }
        // In the name's flight: a promotion of it either finished before or sees it deleted.
        self.single_flight(name, || {
            {
                let mut s = lock(&self.state);
                s.pending.remove(name);
                s.deleted.insert(name.to_string());
            }
            self.local.delete(name)
        })
    }
}
