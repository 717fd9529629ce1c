//! [`FaultyObjectStore`]: an `object_store::ObjectStore` decorator that fails the way a network
//! and a remote store do — errors on a fraction of calls, calls that stall (past any timeout
//! the caller sets), and a multipart upload reset in the middle (a part fails after others were
//! sent). Seeded, so a failing run replays. For tests and benches of the cold tier.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};

use crate::lock;
use crate::rng::SplitMix64;

/// What a [`FaultyObjectStore`] does to calls. All off by default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectFaults {
    /// Fraction of calls (put, get, head, list, delete, copy, multipart start) that fail with a
    /// connection reset before reaching the store.
    pub error_chance: f64,
    /// Fraction of calls that first wait `stall` (then proceed, if the caller still waits).
    pub stall_chance: f64,
    /// How long a stalled call waits.
    pub stall: Duration,
    /// Fail the Nth multipart part sent from now on (1-based), once: a reset mid-upload.
    pub reset_part: Option<u64>,
    /// Store the Nth single-request put from now on (1-based) with one byte flipped, once,
    /// and answer success: an upload damaged on its way.
    pub corrupt_put: Option<u64>,
}

/// The decorator (see the module docs).
pub struct FaultyObjectStore {
    inner: Arc<dyn ObjectStore>,
    faults: Arc<Mutex<ObjectFaults>>,
    rng: Arc<Mutex<SplitMix64>>,
    parts: Arc<AtomicU64>,
    /// Calls that failed or stalled because of a rule.
    injected: Arc<AtomicU64>,
    /// Bytes the store answered GETs with (what a cloud store would bill and transfer).
    served: Arc<AtomicU64>,
    /// Single-request puts since the rules were set (for `corrupt_put`).
    puts: Arc<AtomicU64>,
}

impl fmt::Debug for FaultyObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyObjectStore")
            .field("inner", &self.inner)
            .field("faults", &*lock(&self.faults))
            .finish()
    }
}

impl fmt::Display for FaultyObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

fn reset(what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "faulty",
        source: Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            format!("injected: connection reset during {what}"),
        )),
    }
}

impl FaultyObjectStore {
    /// Wraps `inner`; no faults until [`FaultyObjectStore::set`].
    pub fn new(inner: Arc<dyn ObjectStore>, seed: u64) -> FaultyObjectStore {
        FaultyObjectStore {
            inner,
            faults: Arc::new(Mutex::new(ObjectFaults::default())),
            rng: Arc::new(Mutex::new(SplitMix64::new(seed))),
            parts: Arc::new(AtomicU64::new(0)),
            injected: Arc::new(AtomicU64::new(0)),
            served: Arc::new(AtomicU64::new(0)),
            puts: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Bytes GETs returned so far (ranged or whole). Ranged reads of several ranges go
    /// through `object_store`'s default `get_ranges`, as on S3, GCS and Azure: one GET per
    /// merged range.
    pub fn served_bytes(&self) -> u64 {
        self.served.load(Ordering::Acquire)
    }

    /// Replaces the rules (and restarts the part count of `reset_part`).
    pub fn set(&self, faults: ObjectFaults) {
        *lock(&self.faults) = faults;
        self.parts.store(0, Ordering::Release);
        self.puts.store(0, Ordering::Release);
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.set(ObjectFaults::default());
    }

    /// Calls a rule failed or stalled so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Acquire)
    }

    fn draw(&self) -> f64 {
        (lock(&self.rng).next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Applies the rules before a call named `what`.
    async fn before(&self, what: &str) -> Result<()> {
        let f = lock(&self.faults).clone();
        if f.error_chance > 0.0 && self.draw() < f.error_chance {
            self.injected.fetch_add(1, Ordering::AcqRel);
            return Err(reset(what));
        }
        if f.stall_chance > 0.0 && self.draw() < f.stall_chance {
            self.injected.fetch_add(1, Ordering::AcqRel);
            tokio::time::sleep(f.stall).await;
        }
        Ok(())
    }
}

/// A multipart upload whose Nth part can be reset.
#[derive(Debug)]
struct FaultyUpload {
    inner: Box<dyn MultipartUpload>,
    faults: Arc<Mutex<ObjectFaults>>,
    parts: Arc<AtomicU64>,
    injected: Arc<AtomicU64>,
}

#[async_trait]
impl MultipartUpload for FaultyUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let n = self.parts.fetch_add(1, Ordering::AcqRel) + 1;
        if lock(&self.faults).reset_part == Some(n) {
            self.injected.fetch_add(1, Ordering::AcqRel);
            return Box::pin(async move { Err(reset("a multipart part upload")) });
        }
        self.inner.put_part(data)
    }
    async fn complete(&mut self) -> Result<PutResult> {
        self.inner.complete().await
    }
    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

#[async_trait]
impl ObjectStore for FaultyObjectStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.before("put").await?;
        let n = self.puts.fetch_add(1, Ordering::AcqRel) + 1;
        let payload = match lock(&self.faults).corrupt_put == Some(n) {
            true => {
                self.injected.fetch_add(1, Ordering::AcqRel);
                let mut bytes: Vec<u8> = payload.iter().flat_map(|b| b.iter().copied()).collect();
                if let Some(b) = bytes.first_mut() {
                    *b ^= 0x01;
                }
                PutPayload::from(bytes)
            }
            false => payload,
        };
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.before("multipart start").await?;
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(FaultyUpload {
            inner,
            faults: Arc::clone(&self.faults),
            parts: Arc::clone(&self.parts),
            injected: Arc::clone(&self.injected),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.before("get").await?;
        let head = options.head;
        let r = self.inner.get_opts(location, options).await?;
        if !head {
            self.served
                .fetch_add(r.range.end - r.range.start, Ordering::AcqRel);
        }
        Ok(r)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let f = lock(&self.faults).clone();
        if f.error_chance > 0.0 && self.draw() < f.error_chance {
            self.injected.fetch_add(1, Ordering::AcqRel);
            return Box::pin(futures::stream::once(async { Err(reset("delete")) }));
        }
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let f = lock(&self.faults).clone();
        if f.error_chance > 0.0 && self.draw() < f.error_chance {
            self.injected.fetch_add(1, Ordering::AcqRel);
            return Box::pin(futures::stream::once(async { Err(reset("list")) }));
        }
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.before("list").await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.before("copy").await?;
        self.inner.copy_opts(from, to, options).await
    }
}
