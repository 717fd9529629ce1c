//! [`Storage`]: the pair of stores an engine persists through, and how to get one.

use std::path::Path;
use std::sync::Arc;

use crate::error::StoreResult;
use crate::fault::{Faults, FaultyLog, FaultyStore};
use crate::local;
use crate::memory::{MemLog, MemStore};
use crate::store::{BlobStore, LogStore};

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
}

impl Storage {
    /// Pairs two stores.
    pub fn new(blobs: Arc<dyn BlobStore>, log: Arc<dyn LogStore>) -> Storage {
        Storage {
            blobs,
            log,
            swept_temp_files: 0,
        }
    }

    /// The local data directory `root` (created if missing), locked for this process.
    pub fn open_local(root: &Path) -> StoreResult<Storage> {
        Self::local(root, false)
    }

    /// The existing local data directory `root`, locked, refusing every write (for checks).
    pub fn open_local_read_only(root: &Path) -> StoreResult<Storage> {
        Self::local(root, true)
    }

    fn local(root: &Path, read_only: bool) -> StoreResult<Storage> {
        let d = local::open_dir(root, read_only)?;
        Ok(Storage {
            blobs: Arc::new(d.blobs),
            log: Arc::new(d.log),
            swept_temp_files: d.temp_files,
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
        }
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
