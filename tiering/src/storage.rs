//! [`Storage`]: the pair of stores an engine persists through, and how to get one.

use std::path::Path;
use std::sync::Arc;

use crate::error::StoreResult;
use crate::fault::{Faults, FaultyLog, FaultyStore};
use crate::io::Io;
use crate::local;
use crate::memory::{MemLog, MemStore};
use crate::store::{BlobStore, LogStore};
use crate::tiered::{ManifestRefs, TieredOptions, TieredStore};

/// A blob store (segments, manifest) and a log store (the WAL) that belong together.
#[derive(Clone, Debug)]
pub struct Storage {
    /// Immutable blobs and the manifest.
    pub blobs: Arc<dyn BlobStore>,
    /// The write-ahead log.
    pub log: Arc<dyn LogStore>,
    /// Temporary files a crash had left, found when the storage was opened (removed, unless
    /// read-only).
    pub swept_temp_files: usize,
    /// The tiered store behind `blobs`, when a cold store is configured (for garbage
    /// collection and statistics).
    pub tiered: Option<Arc<TieredStore>>,
    /// The batched-read engine of the local directory (`None` for in-memory storage).
    pub io: Option<Arc<Io>>,
}

impl Storage {
    /// Pairs two stores.
    pub fn new(blobs: Arc<dyn BlobStore>, log: Arc<dyn LogStore>) -> Storage {
        Storage {
            blobs,
            log,
            swept_temp_files: 0,
            tiered: None,
            io: None,
        }
    }

    /// The local data directory `root` (created if missing), locked for this process; batched
    /// reads through the process default [`Io`] (`auto`).
    pub fn open_local(root: &Path) -> StoreResult<Storage> {
        Self::open_local_with(root, false, Io::shared_default())
    }

    /// The existing local data directory `root`, locked, refusing every write (for checks).
    pub fn open_local_read_only(root: &Path) -> StoreResult<Storage> {
        Self::open_local_with(root, true, Io::shared_default())
    }

    /// The local data directory `root` (read-only: must exist, every write refused), batched
    /// reads through `io`.
    pub fn open_local_with(root: &Path, read_only: bool, io: Arc<Io>) -> StoreResult<Storage> {
        let d = local::open_dir(root, read_only, Arc::clone(&io))?;
        Ok(Storage {
            blobs: Arc::new(d.blobs),
            log: Arc::new(d.log),
            swept_temp_files: d.temp_files,
            tiered: None,
            io: Some(io),
        })
    }

    /// The same stores behind fault-injecting decorators driven by `faults`.
    pub fn with_faults(&self, faults: &Arc<Faults>) -> Storage {
        Storage {
            blobs: Arc::new(FaultyStore::new(
                Arc::clone(&self.blobs),
                Arc::clone(faults),
            )),
            log: Arc::new(FaultyLog::new(Arc::clone(&self.log), Arc::clone(faults))),
            swept_temp_files: self.swept_temp_files,
            tiered: self.tiered.clone(),
            io: self.io.clone(),
        }
    }

    /// These stores with `cold` behind the blob store: every blob put is also uploaded and
    /// verified, manifests become create-only generations in `cold`, and blobs missing locally
    /// are fetched from `cold` (see [`TieredStore`]). An empty local store is restored from
    /// the newest cold manifest.
    pub fn with_cold(
        self,
        cold: Arc<dyn BlobStore>,
        refs: ManifestRefs,
        opts: TieredOptions,
    ) -> StoreResult<Storage> {
        let tiered = Arc::new(TieredStore::open(self.blobs, cold, refs, opts)?);
        Ok(Storage {
            blobs: Arc::clone(&tiered) as Arc<dyn BlobStore>,
            log: self.log,
            swept_temp_files: self.swept_temp_files,
            tiered: Some(tiered),
            io: self.io,
        })
    }
}

/// In-memory storage, with a handle on its log for crash simulation.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    /// The blobs.
    pub blobs: Arc<MemStore>,
    /// The log.
    pub log: Arc<MemLog>,
}

impl MemStorage {
    /// Empty stores.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// Both stores as a [`Storage`].
    pub fn storage(&self) -> Storage {
        Storage::new(
            Arc::clone(&self.blobs) as Arc<dyn BlobStore>,
            Arc::clone(&self.log) as Arc<dyn LogStore>,
        )
    }

    /// Simulates a machine crash (see [`MemLog::crash`]).
    pub fn crash(&self, torn_seed: Option<u64>) {
        self.log.crash(torn_seed);
    }
}
