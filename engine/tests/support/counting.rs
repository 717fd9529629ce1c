//! A blob store decorator for tests that counts reads (whole-blob opens and ranged reads) per
//! object and makes each take `delay`.

use std::sync::Arc;
use std::time::Duration;

use strata_engine::storage::{Blob, BlobMeta, BlobStore, ETag, PutMode, StoreResult};

/// A cold store that counts ranged reads per object and makes each take `delay` (so that
/// concurrent readers overlap).
#[derive(Debug)]
pub(crate) struct CountingStore {
    pub(crate) inner: Arc<dyn BlobStore>,
    pub(crate) reads: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    pub(crate) delay: Duration,
}

impl CountingStore {
    /// Counts one read of `name` and takes `delay` over it.
    fn count(&self, name: &str) {
        *self
            .reads
            .lock()
            .expect("lock")
            .entry(name.into())
            .or_default() += 1;
        std::thread::sleep(self.delay);
    }

    /// Reads of every object so far.
    #[allow(dead_code)]
    pub(crate) fn total(&self) -> u64 {
        self.reads.lock().expect("lock").values().sum()
    }

    #[allow(dead_code)]
    pub(crate) fn reads_of(&self, name: &str) -> u64 {
        self.reads
            .lock()
            .expect("lock")
            .get(name)
            .copied()
            .unwrap_or(0)
    }
}

impl BlobStore for CountingStore {
    fn location(&self, name: &str) -> String {
        self.inner.location(name)
    }
    fn put(&self, name: &str, bytes: &[u8], mode: PutMode) -> StoreResult<ETag> {
        self.inner.put(name, bytes, mode)
    }
    fn open(&self, name: &str) -> StoreResult<Blob> {
        self.count(name);
        self.inner.open(name)
    }
    fn read_ranges(
        &self,
        name: &str,
        ranges: &[std::ops::Range<u64>],
    ) -> StoreResult<Vec<Vec<u8>>> {
        self.count(name);
        self.inner.read_ranges(name, ranges)
    }
    fn head(&self, name: &str) -> StoreResult<BlobMeta> {
        self.inner.head(name)
    }
    fn list(&self, prefix: &str) -> StoreResult<Vec<BlobMeta>> {
        self.inner.list(prefix)
    }
    fn delete(&self, name: &str) -> StoreResult<()> {
        self.inner.delete(name)
    }
}
