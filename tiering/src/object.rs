//! The cold tier's backend: a [`BlobStore`] over `Arc<dyn ObjectStore>` (S3, GCS, Azure, a
//! local directory or RAM), chosen by URL.
//!
//! ```text
//!   engine thread ── put / open / read_ranges ──▶ ObjectBlobStore ──spawn──▶ own tokio runtime
//!        ▲                                             │                     (2 threads)
//!        └────────────── std channel ◀─────────────────┘◀── object_store future (retries, timeouts)
//! ```
//!
//! The engine is synchronous; each call runs its future on a runtime this store owns and waits
//! on a plain channel, so it works from any thread — a tokio worker included (no nested
//! `block_on`). Every put is **verified**: the object is read back and its size and CRC32C
//! compared with what was sent, so nothing depends on an upload that did not arrive intact.
//! Large blobs go up as multipart uploads (not conditional — only unconditional puts use them;
//! segment ids are never reused, so there is nothing to race with).
//!
//! Credentials never leave this module: [`ColdConfig`]'s `Debug` hides them, [`location`]s
//! carry no user info or query, and error messages are scrubbed of every configured secret.
//!
//! [`location`]: BlobStore::location

use std::fmt;
use std::future::Future;
use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};

use crate::blob::Blob;
use crate::error::{StoreError, StoreResult};
use crate::layout::TMP_SUFFIX;
use crate::store::{BlobMeta, BlobStore, ETag, PutMode, check_name, check_prefix, check_ranges};

/// Ranges of one object closer than this are fetched by one GET, the rest in parallel (up to
/// ten at a time). `object_store`'s own `get_ranges` merges gaps up to 1 MiB on S3, GCS and
/// Azure, which would download (and bill) up to 1 MiB of unwanted bytes per gap: a streamed
/// read wants its sections and rows, not what lies between them.
const COALESCE_GAP: u64 = 64 << 10;

/// Fetches `ranges` of `key`, merging those closer than [`COALESCE_GAP`].
async fn get_ranges(
    store: &Arc<dyn ObjectStore>,
    key: &ObjPath,
    ranges: &[Range<u64>],
) -> object_store::Result<Vec<bytes::Bytes>> {
    object_store::coalesce_ranges(ranges, |r| store.get_range(key, r), COALESCE_GAP).await
}

/// Where the cold tier lives and how to reach it. `Debug` never shows a credential.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct ColdConfig {
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`,
    /// `file:///absolute/path` or `memory://` (this process only: tests).
    pub url: String,
    /// S3-compatible endpoint (MinIO, moto, R2, …); default: AWS.
    pub s3_endpoint: Option<String>,
    /// S3 region; default `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub s3_region: Option<String>,
    /// S3 access key id; default `AWS_ACCESS_KEY_ID` (or the instance's credentials).
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key; default `AWS_SECRET_ACCESS_KEY`.
    pub s3_secret_access_key: Option<String>,
    /// Allow `http://` endpoints (local test servers). Default false.
    pub s3_allow_http: bool,
    /// TCP connect timeout of every request. Default 5 s.
    pub connect_timeout: Duration,
    /// Timeout of one request, body included. Default 60 s.
    pub request_timeout: Duration,
    /// Retries of a failed request (5xx, timeouts, resets) with exponential backoff. Default 3.
    pub retry_count: usize,
    /// Blobs above this size are uploaded in parts. Default 16 MiB.
    pub multipart_threshold: usize,
    /// Part size of a multipart upload (S3 needs ≥ 5 MiB). Default 8 MiB.
    pub part_size: usize,
}

impl fmt::Debug for ColdConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |o: &Option<String>| o.as_ref().map(|_| "***");
        f.debug_struct("ColdConfig")
            .field("url", &display_url(&self.url))
            .field("s3_endpoint", &self.s3_endpoint.as_deref().map(display_url))
            .field("s3_region", &self.s3_region)
            .field("s3_access_key_id", &hidden(&self.s3_access_key_id))
            .field("s3_secret_access_key", &hidden(&self.s3_secret_access_key))
            .field("s3_allow_http", &self.s3_allow_http)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retry_count", &self.retry_count)
            .finish_non_exhaustive()
    }
}

/// A setting of [`ColdConfig`] that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {why}")]
pub struct ColdConfigError {
    /// The field (`url`, `s3_endpoint`, …).
    pub field: &'static str,
    /// What is wrong, without the value when it could be a secret.
    pub why: String,
}

fn bad(field: &'static str, why: impl Into<String>) -> ColdConfigError {
    ColdConfigError {
        field,
        why: why.into(),
    }
}

impl ColdConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> ColdConfig {
        ColdConfig {
            url: url.into(),
            s3_endpoint: None,
            s3_region: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_allow_http: false,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
            retry_count: 3,
            multipart_threshold: 16 << 20,
            part_size: 8 << 20,
        }
    }

    /// Checks every field without connecting; the error names the field.
    pub fn validate(&self) -> Result<(), ColdConfigError> {
        self.scheme().map(|_| ())
    }

    fn scheme(&self) -> Result<Scheme, ColdConfigError> {
        let url = url::Url::parse(&self.url).map_err(|e| {
            bad(
                "url",
                format!("{:?} is not a URL ({e})", display_url(&self.url)),
            )
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "url",
                "credentials do not belong in the URL: use the access key settings",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("url", "a query or fragment is not allowed"));
        }
        let scheme = match url.scheme() {
            "s3" | "s3a" => Scheme::S3,
            "gs" => Scheme::Gcs,
            "az" | "azure" | "abfs" | "abfss" | "adl" => Scheme::Azure,
            "file" => Scheme::File,
            "memory" => Scheme::Memory,
            other => {
                return Err(bad(
                    "url",
                    format!("scheme {other:?} is not one of s3, gs, az, file, memory"),
                ));
            }
        };
        let cloud = matches!(scheme, Scheme::S3 | Scheme::Gcs | Scheme::Azure);
        if cloud && url.host_str().is_none_or(str::is_empty) {
            return Err(bad("url", "the bucket (or container) is missing"));
        }
        if scheme == Scheme::File && (url.host_str().is_some_and(|h| !h.is_empty())) {
            return Err(bad(
                "url",
                "a file URL is file:///absolute/path (three slashes)",
            ));
        }
        if scheme != Scheme::S3 {
            for (field, set) in [
                ("s3_endpoint", self.s3_endpoint.is_some()),
                ("s3_region", self.s3_region.is_some()),
                ("s3_access_key_id", self.s3_access_key_id.is_some()),
                ("s3_secret_access_key", self.s3_secret_access_key.is_some()),
                ("s3_allow_http", self.s3_allow_http),
            ] {
                if set {
                    return Err(bad(
                        field,
                        format!("set, but the cold store is not s3:// ({})", url.scheme()),
                    ));
                }
            }
        }
        if self.s3_access_key_id.is_some() != self.s3_secret_access_key.is_some() {
            let missing = if self.s3_access_key_id.is_some() {
                "s3_secret_access_key"
            } else {
                "s3_access_key_id"
            };
            return Err(bad(
                missing,
                "the access key id and the secret access key go together",
            ));
        }
        if let Some(e) = &self.s3_endpoint {
            let u = url::Url::parse(e).map_err(|err| {
                bad(
                    "s3_endpoint",
                    format!("{:?} is not a URL ({err})", display_url(e)),
                )
            })?;
            if !u.username().is_empty() || u.password().is_some() || u.query().is_some() {
                return Err(bad(
                    "s3_endpoint",
                    "credentials or a query do not belong in the endpoint",
                ));
            }
            match u.scheme() {
                "https" => {}
                "http" if self.s3_allow_http => {}
                "http" => {
                    return Err(bad(
                        "s3_endpoint",
                        "an http:// endpoint needs s3_allow_http = true",
                    ));
                }
                other => {
                    return Err(bad(
                        "s3_endpoint",
                        format!("scheme {other:?} is not http or https"),
                    ));
                }
            }
        }
        if let Some(r) = &self.s3_region
            && (r.is_empty() || !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err(bad("s3_region", format!("{r:?} is not a region name")));
        }
        if self.connect_timeout.is_zero() {
            return Err(bad("connect_timeout", "must be greater than 0"));
        }
        if self.request_timeout.is_zero() {
            return Err(bad("request_timeout", "must be greater than 0"));
        }
        if self.retry_count > 100 {
            return Err(bad("retry_count", "at most 100"));
        }
        if self.part_size < 5 << 20 {
            return Err(bad("part_size", "S3 needs parts of at least 5 MiB"));
        }
        Ok(scheme)
    }

    /// The secrets to scrub from messages: the configured keys and the credentials the
    /// builders read from the environment.
    fn secrets(&self) -> Vec<String> {
        let env = [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AZURE_STORAGE_ACCOUNT_KEY",
            "AZURE_STORAGE_ACCESS_KEY",
            "AZURE_STORAGE_SAS_KEY",
            "GOOGLE_SERVICE_ACCOUNT_KEY",
        ]
        .into_iter()
        .filter_map(|k| std::env::var(k).ok());
        [&self.s3_secret_access_key, &self.s3_access_key_id]
            .into_iter()
            .flatten()
            .cloned()
            .chain(env)
            .filter(|s| s.len() >= 4)
            .collect()
    }
}

/// An object-store error as Strata shows it: no response body (an S3 error document can quote
/// the access key id and the signed request), only its `<Code>`; every secret scrubbed.
fn sanitize(msg: &str, secrets: &[String]) -> String {
    let mut out = match msg.find('<') {
        Some(i) => {
            let code = msg
                .split("<Code>")
                .nth(1)
                .and_then(|r| r.split("</Code>").next())
                .filter(|c| c.len() < 64 && c.bytes().all(|b| b.is_ascii_alphanumeric()));
            let head = msg[..i].trim_end().trim_end_matches(':');
            match code {
                Some(c) => format!("{head} (error code {c})"),
                None => format!("{head} (response body withheld)"),
            }
        }
        None => msg.to_string(),
    };
    for s in secrets {
        out = out.replace(s.as_str(), "***");
    }
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    S3,
    Gcs,
    Azure,
    File,
    Memory,
}

/// `url` without user info, query or fragment (for messages).
fn display_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string().trim_end_matches('/').to_string()
        }
        Err(_) => "(unparsable URL)".to_string(),
    }
}

/// A [`BlobStore`] over an object store.
pub struct ObjectBlobStore {
    store: Arc<dyn ObjectStore>,
    /// Key prefix inside the bucket (no leading or trailing `/`; may be empty).
    prefix: String,
    /// Display form of the URL (no credentials).
    url: String,
    secrets: Vec<String>,
    multipart_threshold: usize,
    part_size: usize,
    /// Longest wait for one call (one request with its retries; a multipart upload gets it
    /// per part): a stalled connection fails the call instead of hanging its caller.
    op_timeout: Duration,
    rt: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for ObjectBlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectBlobStore")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Drop for ObjectBlobStore {
    fn drop(&mut self) {
        // `shutdown_background` may run inside an async context; dropping a runtime may not.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn io_err(kind: io::ErrorKind, msg: impl Into<String>) -> io::Error {
    io::Error::new(kind, msg.into())
}

impl ObjectBlobStore {
    /// Builds the store `cfg` names (honouring the usual `AWS_*`, `GOOGLE_*`, `AZURE_*`
    /// variables for what `cfg` leaves unset). Does not connect: the first request does.
    pub fn open(cfg: &ColdConfig) -> Result<ObjectBlobStore, ColdConfigError> {
        let scheme = cfg.scheme()?;
        let url = url::Url::parse(&cfg.url).map_err(|e| bad("url", e.to_string()))?;
        let client = ClientOptions::new()
            .with_connect_timeout(cfg.connect_timeout)
            .with_timeout(cfg.request_timeout)
            .with_allow_http(cfg.s3_allow_http);
        let retry = RetryConfig {
            max_retries: cfg.retry_count,
            retry_timeout: cfg.request_timeout.saturating_mul(
                u32::try_from(cfg.retry_count)
                    .unwrap_or(u32::MAX)
                    .saturating_add(1),
            ),
            ..RetryConfig::default()
        };
        let secrets = cfg.secrets();
        let scrub = |e: object_store::Error| bad("url", sanitize(&e.to_string(), &secrets));
        let key_prefix = |u: &url::Url| u.path().trim_matches('/').to_string();
        let (store, prefix): (Arc<dyn ObjectStore>, String) = match scheme {
            Scheme::S3 => {
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_url(cfg.url.clone())
                    .with_client_options(client)
                    .with_retry(retry)
                    .with_allow_http(cfg.s3_allow_http);
                if let Some(e) = &cfg.s3_endpoint {
                    b = b.with_endpoint(e.trim_end_matches('/'));
                }
                if let Some(r) = &cfg.s3_region {
                    b = b.with_region(r);
                }
                if let (Some(k), Some(s)) = (&cfg.s3_access_key_id, &cfg.s3_secret_access_key) {
                    b = b.with_access_key_id(k).with_secret_access_key(s);
                }
                (Arc::new(b.build().map_err(scrub)?), key_prefix(&url))
            }
            Scheme::Gcs => {
                let b = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(cfg.url.clone())
                    .with_client_options(client)
                    .with_retry(retry);
                (Arc::new(b.build().map_err(scrub)?), key_prefix(&url))
            }
            Scheme::Azure => {
                let b = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(cfg.url.clone())
                    .with_client_options(client)
                    .with_retry(retry);
                (Arc::new(b.build().map_err(scrub)?), key_prefix(&url))
            }
            Scheme::File => {
                let path = url
                    .to_file_path()
                    .map_err(|()| bad("url", "not an absolute file path"))?;
                std::fs::create_dir_all(&path)
                    .map_err(|e| bad("url", format!("cannot create {}: {e}", path.display())))?;
                let fs =
                    object_store::local::LocalFileSystem::new_with_prefix(&path).map_err(scrub)?;
                (Arc::new(fs), String::new())
            }
            Scheme::Memory => (
                Arc::new(object_store::memory::InMemory::new()),
                key_prefix(&url),
            ),
        };
        let mut o = ObjectBlobStore::new(store, &prefix, &display_url(&cfg.url))
            .map_err(|e| bad("url", e.to_string()))?;
        o.secrets = secrets;
        o.multipart_threshold = cfg.multipart_threshold;
        o.part_size = cfg.part_size;
        // Every attempt's connect and request time, plus the retries' backoff (bounded by the
        // client's own retry timeout, which is the same sum).
        o.op_timeout = (cfg.connect_timeout + cfg.request_timeout)
            .saturating_mul(
                u32::try_from(cfg.retry_count)
                    .unwrap_or(u32::MAX)
                    .saturating_add(1),
            )
            .saturating_add(Duration::from_secs(5));
        Ok(o)
    }

    /// Wraps an existing object store (tests, decorators), keys under `prefix`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, url: &str) -> io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("strata-object-io")
            .enable_all()
            .build()?;
        Ok(ObjectBlobStore {
            store,
            prefix: prefix.trim_matches('/').to_string(),
            url: url.trim_end_matches('/').to_string(),
            secrets: Vec::new(),
            multipart_threshold: 16 << 20,
            part_size: 8 << 20,
            op_timeout: Duration::from_secs(300),
            rt: Some(rt),
        })
    }

    /// Sets the longest wait for one call (default 5 min; from the configuration when opened
    /// with [`ObjectBlobStore::open`]).
    pub fn with_op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// Sets the size above which puts are multipart uploads, and the part size (defaults
    /// 16 MiB and 8 MiB; S3 needs parts of at least 5 MiB but the last).
    pub fn with_multipart(mut self, threshold: usize, part_size: usize) -> Self {
        self.multipart_threshold = threshold;
        self.part_size = part_size.max(1);
        self
    }

    /// The store's URL, without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The underlying object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn key(&self, name: &str) -> ObjPath {
        if self.prefix.is_empty() {
            ObjPath::from(name)
        } else {
            ObjPath::from(format!("{}/{name}", self.prefix))
        }
    }

    /// Runs `fut` on the store's runtime and waits for it from any thread.
    fn run<T, F>(&self, op: &'static str, name: &str, fut: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, object_store::Error>> + Send + 'static,
    {
        self.run_within(op, name, self.op_timeout, fut)
    }

    /// [`ObjectBlobStore::run`] with its own time limit.
    fn run_within<T, F>(
        &self,
        op: &'static str,
        name: &str,
        timeout: Duration,
        fut: F,
    ) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, object_store::Error>> + Send + 'static,
    {
        let fut = async move {
            match tokio::time::timeout(timeout, fut).await {
                Ok(r) => r,
                Err(_) => Err(object_store::Error::Generic {
                    store: "strata",
                    source: Box::new(io_err(
                        io::ErrorKind::TimedOut,
                        format!("no answer within {timeout:?}"),
                    )),
                }),
            }
        };
        let started = Instant::now();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let rt = self.rt.as_ref().ok_or_else(|| StoreError::Io {
            op,
            location: self.location(name),
            source: io_err(io::ErrorKind::Other, "the object store is shut down"),
        })?;
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        let res = rx.recv().unwrap_or_else(|_| {
            Err(object_store::Error::Generic {
                store: "strata",
                source: "the object store runtime stopped".into(),
            })
        });
        let label = match op {
            "uploading" => "put",
            "verifying" => "verify",
            "downloading" => "get",
            "reading ranges of" => "get_ranges",
            "reading metadata of" => "head",
            "listing" => "list",
            "deleting" => "delete",
            _ => "other",
        };
        metrics::counter!("strata_object_store_requests_total", "op" => label).increment(1);
        metrics::histogram!("strata_object_store_seconds", "op" => label)
            .record(started.elapsed().as_secs_f64());
        res.map_err(|e| {
            if !matches!(
                e,
                object_store::Error::NotFound { .. }
                    | object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. }
            ) {
                metrics::counter!("strata_object_store_errors_total", "op" => label).increment(1);
            }
            self.error(op, name, e)
        })
    }

    fn error(&self, op: &'static str, name: &str, e: object_store::Error) -> StoreError {
        let location = self.location(name);
        match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound { location },
            object_store::Error::AlreadyExists { .. } => StoreError::AlreadyExists { location },
            object_store::Error::Precondition { .. } => StoreError::Precondition {
                location,
                expected: "(the given version)".into(),
                found: "another version".into(),
            },
            other => {
                let kind = match &other {
                    object_store::Error::NotImplemented { .. }
                    | object_store::Error::NotSupported { .. } => io::ErrorKind::Unsupported,
                    object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. } => {
                        io::ErrorKind::PermissionDenied
                    }
                    object_store::Error::Generic { source, .. } => source
                        .downcast_ref::<io::Error>()
                        .map_or(io::ErrorKind::Other, io::Error::kind),
                    _ => io::ErrorKind::Other,
                };
                StoreError::Io {
                    op,
                    location,
                    source: io_err(kind, sanitize(&other.to_string(), &self.secrets)),
                }
            }
        }
    }

    /// Reads `name` back and checks it is `len` bytes with CRC32C `crc`.
    fn verify(&self, name: &str, len: u64, crc: u32) -> StoreResult<()> {
        let store = Arc::clone(&self.store);
        let key = self.key(name);
        let (got_len, got_crc) = self.run("verifying", name, async move {
            let mut stream = store.get(&key).await?.into_stream();
            let (mut n, mut c) = (0u64, 0u32);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                n += chunk.len() as u64;
                c = crc32c::crc32c_append(c, &chunk);
            }
            Ok((n, c))
        })?;
        if (got_len, got_crc) != (len, crc) {
            metrics::counter!("strata_object_store_verify_failures_total").increment(1);
            return Err(StoreError::Io {
                op: "verifying",
                location: self.location(name),
                source: io_err(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the stored object is {got_len} bytes with CRC32C {got_crc:#010x}; {len} bytes with {crc:#010x} were sent"
                    ),
                ),
            });
        }
        Ok(())
    }
}

impl BlobStore for ObjectBlobStore {
    fn location(&self, name: &str) -> String {
        format!("{}/{name}", self.url)
    }

    fn put(&self, name: &str, bytes: &[u8], mode: PutMode) -> StoreResult<ETag> {
        check_name(name)?;
        let store = Arc::clone(&self.store);
        let key = self.key(name);
        let crc = crc32c::crc32c(bytes);
        let large = bytes.len() > self.multipart_threshold;
        let create = mode == PutMode::Create;
        if large && create {
            // A multipart upload cannot be conditional: check first. (A writer racing between
            // this check and the upload's completion is not caught; Strata's segment names are
            // never reused, and manifests — the fencing point — are small, conditional puts.)
            match self.head(name) {
                Ok(_) => {
                    return Err(StoreError::AlreadyExists {
                        location: self.location(name),
                    });
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        let result = if large && matches!(mode, PutMode::Update(_)) {
            return Err(StoreError::Io {
                op: "uploading",
                location: self.location(name),
                source: io_err(
                    io::ErrorKind::Unsupported,
                    "an if-match put above the multipart threshold",
                ),
            });
        } else if large {
            let data = bytes::Bytes::copy_from_slice(bytes);
            let part = self.part_size;
            let parts = u32::try_from(data.len().div_ceil(part.max(1))).unwrap_or(u32::MAX);
            let timeout = self.op_timeout.saturating_mul(parts.max(1));
            self.run_within("uploading", name, timeout, async move {
                let upload = store.put_multipart(&key).await?;
                let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, part);
                let mut off = 0;
                while off < data.len() {
                    if let Err(e) = w.wait_for_capacity(4).await {
                        // Leave no incomplete upload behind (billed, and invisible to list).
                        let _ = w.abort().await;
                        return Err(e);
                    }
                    let end = (off + part).min(data.len());
                    w.put(data.slice(off..end));
                    off = end;
                }
                // Surface a failed part (a reset mid-upload) while the upload can still be
                // aborted; `finish` consumes it.
                if let Err(e) = w.wait_for_capacity(0).await {
                    let _ = w.abort().await;
                    return Err(e);
                }
                w.finish().await
            })?
        } else {
            let mode = match mode {
                PutMode::Overwrite => object_store::PutMode::Overwrite,
                PutMode::Create => object_store::PutMode::Create,
                PutMode::Update(t) => object_store::PutMode::Update(object_store::UpdateVersion {
                    e_tag: Some(t.0),
                    version: None,
                }),
            };
            let payload = object_store::PutPayload::from(bytes.to_vec());
            self.run("uploading", name, async move {
                store
                    .put_opts(
                        &key,
                        payload,
                        object_store::PutOptions {
                            mode,
                            ..Default::default()
                        },
                    )
                    .await
            })?
        };
        if let Err(e) = self.verify(name, bytes.len() as u64, crc) {
            // A create-only put that landed damaged would hold its name for good: every retry
            // would find it taken by "other bytes". It is this writer's own object (the name
            // was free a moment ago), so it is removed, and the retry starts clean.
            if create && let Err(d) = self.delete(name) {
                tracing::warn!(object = %self.location(name), error = %d, "could not remove a damaged upload");
            }
            return Err(e);
        }
        match result.e_tag {
            Some(t) => Ok(ETag(t)),
            None => Ok(self.head(name)?.e_tag),
        }
    }

    fn open(&self, name: &str) -> StoreResult<Blob> {
        check_name(name)?;
        let store = Arc::clone(&self.store);
        let key = self.key(name);
        let bytes = self.run("downloading", name, async move {
            store.get(&key).await?.bytes().await
        })?;
        Ok(Blob::from_bytes(&bytes))
    }

    fn read_ranges(&self, name: &str, ranges: &[Range<u64>]) -> StoreResult<Vec<Vec<u8>>> {
        check_name(name)?;
        let wanted: Vec<Range<u64>> = ranges.iter().filter(|r| r.start < r.end).cloned().collect();
        let covered = wanted.iter().map(|r| r.end).max().unwrap_or(0);
        // One round trip when the answer proves the ranges valid: every non-empty range came
        // back whole, and every empty one lies within them. Otherwise (an error, a short
        // answer, ranges that are only empty) the size decides which error it is.
        let fast =
            !wanted.is_empty() && ranges.iter().all(|r| r.start <= r.end && r.end <= covered);
        let got = if fast {
            let store = Arc::clone(&self.store);
            let key = self.key(name);
            let w = wanted.clone();
            self.run("reading ranges of", name, async move {
                get_ranges(&store, &key, &w).await
            })
            .ok()
            .filter(|got| {
                got.len() == wanted.len()
                    && got
                        .iter()
                        .zip(&wanted)
                        .all(|(b, r)| b.len() as u64 == r.end - r.start)
            })
        } else {
            None
        };
        let got = match got {
            Some(got) => got,
            None => {
                let len = self.head(name)?.size;
                check_ranges(&self.location(name), len, ranges)?;
                if wanted.is_empty() {
                    Vec::new()
                } else {
                    let store = Arc::clone(&self.store);
                    let key = self.key(name);
                    let w = wanted.clone();
                    self.run("reading ranges of", name, async move {
                        get_ranges(&store, &key, &w).await
                    })?
                }
            }
        };
        let mut got = got.into_iter();
        let mut out = Vec::with_capacity(ranges.len());
        for r in ranges {
            if r.start == r.end {
                out.push(Vec::new());
                continue;
            }
            let b = got.next().unwrap_or_default();
            if b.len() as u64 != r.end - r.start {
                return Err(StoreError::Io {
                    op: "reading",
                    location: self.location(name),
                    source: io_err(
                        io::ErrorKind::UnexpectedEof,
                        format!("range {}..{} returned {} bytes", r.start, r.end, b.len()),
                    ),
                });
            }
            out.push(b.to_vec());
        }
        Ok(out)
    }

    fn head(&self, name: &str) -> StoreResult<BlobMeta> {
        check_name(name)?;
        let store = Arc::clone(&self.store);
        let key = self.key(name);
        let m = self.run("reading metadata of", name, async move {
            store.head(&key).await
        })?;
        Ok(BlobMeta {
            name: name.to_string(),
            size: m.size,
            e_tag: ETag(m.e_tag.unwrap_or_default()),
        })
    }

    fn list(&self, prefix: &str) -> StoreResult<Vec<BlobMeta>> {
        check_prefix(prefix)?;
        let store = Arc::clone(&self.store);
        let dir = match (self.prefix.is_empty(), prefix.trim_end_matches('/')) {
            (true, "") => None,
            (true, p) => Some(ObjPath::from(p)),
            (false, "") => Some(ObjPath::from(self.prefix.as_str())),
            (false, p) => Some(ObjPath::from(format!("{}/{p}", self.prefix))),
        };
        let listed = self.run("listing", prefix, async move {
            store.list_with_delimiter(dir.as_ref()).await
        })?;
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut out: Vec<BlobMeta> = listed
            .objects
            .into_iter()
            .filter_map(|m| {
                let full = m.location.to_string();
                let name = full.strip_prefix(&strip)?.to_string();
                if name.ends_with(TMP_SUFFIX) || check_name(&name).is_err() {
                    return None;
                }
                Some(BlobMeta {
                    name,
                    size: m.size,
                    e_tag: ETag(m.e_tag.unwrap_or_default()),
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn delete(&self, name: &str) -> StoreResult<()> {
        check_name(name)?;
        let store = Arc::clone(&self.store);
        let key = self.key(name);
        match self.run("deleting", name, async move { store.delete(&key).await }) {
            Err(StoreError::NotFound { .. }) => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_upload_is_refused_removed_and_the_retry_lands() {
        let faulty = Arc::new(crate::object_fault::FaultyObjectStore::new(
            Arc::new(object_store::memory::InMemory::new()),
            1,
        ));
        let s = ObjectBlobStore::new(faulty.clone(), "t", "memory://").expect("store");
        faulty.set(crate::object_fault::ObjectFaults {
            corrupt_put: Some(1),
            ..Default::default()
        });
        let e = s
            .put("segments/a", b"segment bytes", PutMode::Create)
            .expect_err("damaged");
        assert!(e.to_string().contains("CRC32C"), "{e}");
        assert!(s.head("segments/a").is_err(), "the damaged object is gone");
        s.put("segments/a", b"segment bytes", PutMode::Create)
            .expect("the retry lands");
        assert_eq!(
            s.open("segments/a").expect("open").as_bytes(),
            b"segment bytes"
        );
    }

    #[test]
    fn ranged_reads_fetch_only_what_was_asked_and_merge_only_near_ranges() {
        // Behind a store that answers ranged reads as S3 does (object_store's default
        // `get_ranges`: one GET per merged range), the bytes served are what was asked for,
        // plus gaps under 64 KiB -- not gaps up to 1 MiB.
        let faulty = Arc::new(crate::object_fault::FaultyObjectStore::new(
            Arc::new(object_store::memory::InMemory::new()),
            1,
        ));
        let s = ObjectBlobStore::new(faulty.clone(), "t", "memory://").expect("store");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        s.put("segments/a", &data, PutMode::Create).expect("put");
        let served = |ranges: &[Range<u64>]| {
            let before = faulty.served_bytes();
            let got = s.read_ranges("segments/a", ranges).expect("read");
            for (r, b) in ranges.iter().zip(&got) {
                assert_eq!(&b[..], &data[r.start as usize..r.end as usize]);
            }
            faulty.served_bytes() - before
        };
        assert_eq!(served(&[0..10, 200_000..200_010, 299_990..300_000]), 30);
        assert_eq!(
            served(&[0..10, 30_000..30_010]),
            30_010,
            "a near gap is merged"
        );
        assert_eq!(served(&[250_000..250_100, 100..200]), 200, "any order");
    }

    #[test]
    fn config_errors_name_the_field_and_hide_secrets() {
        let mut c = ColdConfig::new("s3://bucket/pre/fix");
        assert!(c.validate().is_ok());
        c.s3_access_key_id = Some("AKIAEXAMPLEKEY".into());
        assert_eq!(
            c.validate().expect_err("half a key pair").field,
            "s3_secret_access_key"
        );
        c.s3_secret_access_key = Some("very-secret-value".into());
        c.s3_endpoint = Some("http://127.0.0.1:9000".into());
        assert_eq!(c.validate().expect_err("http").field, "s3_endpoint");
        c.s3_allow_http = true;
        assert!(c.validate().is_ok());
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("very-secret-value") && !shown.contains("AKIAEXAMPLEKEY"),
            "{shown}"
        );
        for (url, field) in [
            ("ftp://x/y", "url"),
            ("s3://", "url"),
            ("s3://user:pw@bucket/x", "url"),
            ("file://host/x", "url"),
            ("not a url", "url"),
        ] {
            let e = ColdConfig::new(url).validate().expect_err(url);
            assert_eq!(e.field, field, "{url}");
            assert!(!e.to_string().contains("pw@"), "{e}");
        }
        let mut g = ColdConfig::new("gs://bucket");
        g.s3_region = Some("eu-west-1".into());
        assert_eq!(g.validate().expect_err("s3 on gs").field, "s3_region");
        let mut r = ColdConfig::new("s3://b");
        r.s3_region = Some("eu west".into());
        assert_eq!(r.validate().expect_err("region").field, "s3_region");
        assert_eq!(
            display_url("s3://k:secret@bucket/p?x=1"),
            "s3://bucket/p",
            "no credentials in locations"
        );
    }

    #[test]
    fn error_bodies_are_withheld_and_secrets_scrubbed() {
        let body = "Client error with status 403 Forbidden: <?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><AWSAccessKeyId>AKIAEXAMPLE</AWSAccessKeyId><CanonicalRequest>x-amz-security-token:TOKEN</CanonicalRequest></Error>";
        let m = sanitize(body, &["TOKEN".to_string()]);
        assert_eq!(
            m,
            "Client error with status 403 Forbidden (error code SignatureDoesNotMatch)"
        );
        assert_eq!(
            sanitize(
                "connect to host failed: key SECRET1 rejected",
                &["SECRET1".into()]
            ),
            "connect to host failed: key *** rejected"
        );
        let mut c = ColdConfig::new("s3://b/p");
        c.s3_endpoint = Some("https://user:pw@s3.example.com".into());
        assert_eq!(c.validate().expect_err("userinfo").field, "s3_endpoint");
        c.s3_endpoint = Some("https://s3.example.com/?X-Amz-Signature=1".into());
        assert_eq!(c.validate().expect_err("query").field, "s3_endpoint");
        c.s3_endpoint = None;
        c.request_timeout = Duration::from_secs(u64::MAX / 2);
        c.retry_count = 100;
        assert!(
            ObjectBlobStore::open(&c).is_ok(),
            "huge timeouts saturate, never panic"
        );
    }

    #[test]
    fn builds_local_schemes_and_s3_without_connecting() {
        let d = tempfile::tempdir().expect("tempdir");
        let file = format!("file://{}/cold", d.path().display());
        for url in ["s3://bucket/prefix", "memory://", file.as_str()] {
            let s = ObjectBlobStore::open(&ColdConfig::new(url))
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(
                s.location("MANIFEST"),
                format!("{}/MANIFEST", display_url(url))
            );
        }
        assert!(
            d.path().join("cold").is_dir(),
            "file:// creates its directory"
        );
        // GCS and Azure need credentials to build; their URLs are still validated.
        for url in ["gs://bucket/p", "az://container/p"] {
            assert!(ColdConfig::new(url).validate().is_ok(), "{url}");
        }
    }
}
