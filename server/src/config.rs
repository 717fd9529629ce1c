//! The one typed configuration: defaults < TOML file (`--config`) < environment `STRATA_*` <
//! command-line flags. A bad value fails fast with a message naming the setting.
//!
//! [`SETTINGS`] lists every setting with its environment name, default and meaning; the README
//! table is checked against it and it is checked against [`Config`]'s fields (tests below).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use strata_engine::storage::IoMode;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// WAL acknowledgement mode (see `strata_engine::AckMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WalAck {
    /// After fdatasync (group commit).
    Fsync,
    /// After the OS has the bytes (benchmarks only).
    None,
}

/// A text setting that the environment may spell as a number (`STRATA_WARM_BYTES=1`,
/// `STRATA_REQUEST_TIMEOUT=90`): figment types `1` as an integer.
#[derive(Deserialize)]
#[serde(untagged)]
enum Text {
    S(String),
    U(u64),
    I(i64),
}

impl From<Text> for String {
    fn from(t: Text) -> String {
        match t {
            Text::S(s) => s,
            Text::U(n) => n.to_string(),
            Text::I(n) => n.to_string(),
        }
    }
}

fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Text::deserialize(d).map(String::from)
}

fn text_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<Text>::deserialize(d).map(|t| t.map(String::from))
}

/// Everything `strata serve` can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Address the listeners bind to.
    pub bind: IpAddr,
    /// HTTP (Qdrant-compatible REST) port.
    pub http_port: u16,
    /// gRPC port.
    pub grpc_port: u16,
    /// Prometheus metrics port.
    pub metrics_port: u16,
    /// WAL acknowledgement.
    pub wal_ack: WalAck,
    /// HS256 secret (at least 32 bytes).
    pub jwt_secret: Option<String>,
    /// File holding the HS256 secret.
    pub jwt_secret_file: Option<PathBuf>,
    /// PEM file (RSA or EC public keys) or JWKS file for RS256/ES256 tokens.
    pub jwt_public_keys: Option<PathBuf>,
    /// Longest token lifetime accepted (`exp - iat`), e.g. `30d`.
    #[serde(deserialize_with = "text")]
    pub jwt_max_ttl: String,
    /// Clock skew allowed on `exp`, `nbf`, `iat`.
    #[serde(deserialize_with = "text")]
    pub jwt_leeway: String,
    /// Tokio worker threads (0 = one per core).
    pub worker_threads: usize,
    /// Threads one HNSW graph build uses (0 = one per core).
    pub index_threads: usize,
    /// Log level or `tracing` filter.
    pub log_level: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Largest upsert batch in points.
    pub max_batch_points: usize,
    /// Most searches in one batch request.
    pub max_batch_searches: usize,
    /// Largest `limit + offset` of a search, query or scroll.
    pub max_limit: usize,
    /// Deadline of a request (a write not logged by then is refused, not applied).
    #[serde(deserialize_with = "text")]
    pub request_timeout: String,
    /// Cold tier URL (`s3://bucket/prefix`, `gs://…`, `az://…`, `file:///path`); none = one
    /// local tier.
    pub cold_store_url: Option<String>,
    /// S3-compatible endpoint.
    pub s3_endpoint: Option<String>,
    /// S3 region.
    pub s3_region: Option<String>,
    /// S3 access key id.
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key.
    pub s3_secret_access_key: Option<String>,
    /// Allow an `http://` S3 endpoint.
    pub s3_allow_http: bool,
    /// Connect timeout of an object-store request.
    #[serde(deserialize_with = "text")]
    pub s3_connection_timeout: String,
    /// Timeout of one object-store request.
    #[serde(deserialize_with = "text")]
    pub s3_request_timeout: String,
    /// Retries of a failed object-store request.
    pub s3_retry_count: usize,
    /// Newest manifest generations kept in the cold store.
    pub cold_retain_manifests: usize,
    /// How long an unreferenced cold object waits before it is deleted.
    #[serde(deserialize_with = "text")]
    pub cold_gc_grace: String,
    /// Bytes of segment files held in RAM (hot tier).
    #[serde(deserialize_with = "text")]
    pub hot_bytes: String,
    /// Bytes of segment files kept on local disk (hot + warm) with a cold tier; unlimited
    /// when unset.
    #[serde(deserialize_with = "text_opt")]
    pub warm_bytes: Option<String>,
    /// Least time a segment stays in a tier before the policy moves it again.
    #[serde(deserialize_with = "text")]
    pub tier_min_residence: String,
    /// Tier moves the mover applies at once.
    pub tier_mover_concurrency: usize,
    /// Download bandwidth of the mover's promotions, bytes per second; uncapped when unset.
    #[serde(deserialize_with = "text_opt")]
    pub tier_mover_bandwidth: Option<String>,
    /// Age of the oldest unflushed write that triggers a flush.
    #[serde(deserialize_with = "text")]
    pub memtable_max_age: String,
    /// Backend of batched reads: `auto`, `io_uring` or `pread`.
    pub io_mode: String,
    /// Reads in flight per batch with io_uring.
    pub io_depth: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            data_dir: PathBuf::from("./strata-data"),
            bind: IpAddr::from([0, 0, 0, 0]),
            http_port: 8080,
            grpc_port: 50051,
            metrics_port: 9090,
            wal_ack: WalAck::Fsync,
            jwt_secret: None,
            jwt_secret_file: None,
            jwt_public_keys: None,
            jwt_max_ttl: "30d".into(),
            jwt_leeway: "30s".into(),
            worker_threads: 0,
            index_threads: 0,
            log_level: "info".into(),
            log_format: LogFormat::Text,
            max_body_bytes: 32 << 20,
            max_batch_points: 10_000,
            max_batch_searches: 256,
            max_limit: 10_000,
            request_timeout: "60s".into(),
            cold_store_url: None,
            s3_endpoint: None,
            s3_region: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_allow_http: false,
            s3_connection_timeout: "5s".into(),
            s3_request_timeout: "60s".into(),
            s3_retry_count: 3,
            cold_retain_manifests: 10,
            cold_gc_grace: "1h".into(),
            hot_bytes: "0".into(),
            warm_bytes: None,
            tier_min_residence: "30s".into(),
            tier_mover_concurrency: 2,
            tier_mover_bandwidth: None,
            memtable_max_age: "60s".into(),
            io_mode: "auto".into(),
            io_depth: strata_engine::storage::io::DEFAULT_DEPTH,
        }
    }
}

/// One row of the settings table.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// TOML key (and `Config` field).
    pub key: &'static str,
    /// Default, as written in TOML/env.
    pub default: &'static str,
    /// What it does.
    pub help: &'static str,
}

impl Setting {
    /// The environment variable.
    pub fn env(&self) -> String {
        format!("STRATA_{}", self.key.to_uppercase())
    }
    /// The command-line flag.
    pub fn flag(&self) -> String {
        format!("--{}", self.key.replace('_', "-"))
    }
}

/// Every setting, in README order.
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "data_dir",
        default: "./strata-data",
        help: "where everything is stored",
    },
    Setting {
        key: "bind",
        default: "0.0.0.0",
        help: "address the HTTP, gRPC and metrics listeners bind to",
    },
    Setting {
        key: "http_port",
        default: "8080",
        help: "HTTP port (Qdrant-compatible REST, health, OpenAPI)",
    },
    Setting {
        key: "grpc_port",
        default: "50051",
        help: "gRPC port (`strata.v1`, Qdrant's `qdrant.*` services, health, reflection)",
    },
    Setting {
        key: "metrics_port",
        default: "9090",
        help: "Prometheus `/metrics` port (no auth)",
    },
    Setting {
        key: "wal_ack",
        default: "fsync",
        help: "`fsync`: acknowledge writes after fdatasync (group commit); `none`: before (benchmarks only)",
    },
    Setting {
        key: "jwt_secret",
        default: "(generated)",
        help: "HS256 secret, ≥ 32 bytes. If no secret and no public keys are set, one is generated into `DATA_DIR/jwt-secret` (mode 0600) at first start and an admin token is printed",
    },
    Setting {
        key: "jwt_secret_file",
        default: "(none)",
        help: "file holding the HS256 secret",
    },
    Setting {
        key: "jwt_public_keys",
        default: "(none)",
        help: "PEM file (RSA/EC public keys) or JWKS file: accept RS256/ES256 tokens",
    },
    Setting {
        key: "jwt_max_ttl",
        default: "30d",
        help: "longest token lifetime accepted (`exp - iat`); `s`, `m`, `h`, `d` suffixes",
    },
    Setting {
        key: "jwt_leeway",
        default: "30s",
        help: "clock skew tolerated on `exp`, `nbf`, `iat`",
    },
    Setting {
        key: "worker_threads",
        default: "0",
        help: "runtime worker threads; 0 = one per core",
    },
    Setting {
        key: "index_threads",
        default: "0",
        help: "threads one HNSW graph build uses (compaction builds one graph at a time), at most one per core; 0 = one per core. Builds scale with cores: 400,000 50-d vectors at m 16, ef_construct 200 take ≈ 110 s on one thread, ≈ 55 s on two",
    },
    Setting {
        key: "log_level",
        default: "info",
        help: "`error`…`trace`, or a `tracing` filter",
    },
    Setting {
        key: "log_format",
        default: "text",
        help: "`text` or `json`",
    },
    Setting {
        key: "max_body_bytes",
        default: "33554432",
        help: "largest request body (413 above)",
    },
    Setting {
        key: "max_batch_points",
        default: "10000",
        help: "largest upsert batch in points",
    },
    Setting {
        key: "max_batch_searches",
        default: "256",
        help: "most searches in one `search/batch` or `query/batch` request (gRPC `SearchBatch` too)",
    },
    Setting {
        key: "max_limit",
        default: "10000",
        help: "largest `limit + offset` of a search, query or scroll",
    },
    Setting {
        key: "request_timeout",
        default: "60s",
        help: "deadline of a request (gRPC: or the client's `grpc-timeout`, if shorter). A write not logged by then answers 503 and is not applied; one logged in time completes. Reads stop between segments",
    },
    Setting {
        key: "cold_store_url",
        default: "(none)",
        help: "cold tier: `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix` or `file:///path`. Every sealed segment and manifest is uploaded and verified; an empty data directory restores from it. None: one local tier",
    },
    Setting {
        key: "s3_endpoint",
        default: "(AWS)",
        help: "S3-compatible endpoint URL (MinIO, R2, …)",
    },
    Setting {
        key: "s3_region",
        default: "(AWS_REGION, else us-east-1)",
        help: "S3 region",
    },
    Setting {
        key: "s3_access_key_id",
        default: "(AWS_ACCESS_KEY_ID)",
        help: "S3 access key id; with the secret below, or neither (then `AWS_*` variables, web identity or the instance's role)",
    },
    Setting {
        key: "s3_secret_access_key",
        default: "(AWS_SECRET_ACCESS_KEY)",
        help: "S3 secret access key (never logged or shown)",
    },
    Setting {
        key: "s3_allow_http",
        default: "false",
        help: "allow an `http://` endpoint (local test servers)",
    },
    Setting {
        key: "s3_connection_timeout",
        default: "5s",
        help: "connect timeout of an object-store request",
    },
    Setting {
        key: "s3_request_timeout",
        default: "60s",
        help: "timeout of one object-store request, body included",
    },
    Setting {
        key: "s3_retry_count",
        default: "3",
        help: "retries of a failed object-store request (5xx, timeouts, resets), with exponential backoff",
    },
    Setting {
        key: "cold_retain_manifests",
        default: "10",
        help: "newest manifest generations kept in the cold store, with every segment they name",
    },
    Setting {
        key: "cold_gc_grace",
        default: "1h",
        help: "how long a cold object must be unreferenced by every retained manifest before it is deleted (at least 1m)",
    },
    Setting {
        key: "hot_bytes",
        default: "0",
        help: "bytes of segment files copied into RAM (hot tier) for the most read segments, e.g. `4GiB`; 0: none (warm files are mapped and the page cache keeps what is read)",
    },
    Setting {
        key: "warm_bytes",
        default: "(unlimited)",
        help: "bytes of segment files kept on local disk, hot ones included, e.g. `100GiB`; the least read of the rest are evicted to the cold store (only their small meta files stay local). Needs `STRATA_COLD_STORE_URL`",
    },
    Setting {
        key: "tier_min_residence",
        default: "30s",
        help: "least time a segment stays in a tier before the policy moves it again (no flapping)",
    },
    Setting {
        key: "tier_mover_concurrency",
        default: "2",
        help: "tier moves (promotions, demotions, evictions) the mover applies at once (1–64)",
    },
    Setting {
        key: "tier_mover_bandwidth",
        default: "(uncapped)",
        help: "download bandwidth of the mover's promotions from the cold store, bytes per second, e.g. `50MiB`; a read that promotes a segment itself is not held back by it",
    },
    Setting {
        key: "memtable_max_age",
        default: "60s",
        help: "age of the oldest unflushed write that triggers a flush: bounds WAL replay and, with a cold store, what a restore from it alone can miss",
    },
    Setting {
        key: "io_mode",
        default: "auto",
        help: "batched reads and writes of segment files (the checksum scan of warm segments at start-up, a promotion's writes into its temp file, and a search's re-score of candidates whose vectors are not in the page cache): `io_uring` (up to `io_depth` reads in flight; refuses to start without it), `pread` (one at a time), or `auto` (io_uring if it works here — container seccomp profiles often refuse it — else pread, logged). Graph walks, and re-scores of cached vectors, read through the mapping either way. Shown in `/readyz`, `/v1/tiers` and `strata_io_mode`",
    },
    Setting {
        key: "io_depth",
        default: "32",
        help: "reads in flight per batch with io_uring (1–4096)",
    },
];

/// `STRATA_*` variables that are not settings (test knobs), never warned about.
const NOT_SETTINGS: &[&str] = &[
    "STRATA_CRASH_ROUNDS",
    "STRATA_FAULT_SEEDS",
    "STRATA_FAULT_SEED",
    "STRATA_TEST_VENV",
    "STRATA_BIN",
    "STRATA_TEST_PYTHON",
    "STRATA_TEST_SKIP_IO_URING",
];

/// Parses `30s`, `15m`, `24h`, `7d` or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mul) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86_400),
        _ => (s, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is not a duration (use e.g. 30s, 15m, 24h, 7d)"))
}

/// Parses a byte size: a number with an optional unit `K`, `M`, `G`, `T` (powers of 1024;
/// `KiB`, `KB`, `k` … accepted alike) or `B`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let shift = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(format!("{s:?} is not a size (use e.g. 512MiB, 4GiB, 1T)")),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| format!("{s:?} is not a size (use e.g. 512MiB, 4GiB, 1T)"))
}

fn named(key: &str) -> String {
    format!("STRATA_{} ({key})", key.to_uppercase())
}

fn bail_named(key: &str, why: &str) -> anyhow::Result<()> {
    anyhow::bail!("invalid setting {}: {why}", named(key))
}

impl Config {
    /// Layers defaults < `file` < environment < `flags` (a JSON object of the flags given).
    pub fn load(
        file: Option<&Path>,
        flags: serde_json::Map<String, serde_json::Value>,
    ) -> anyhow::Result<Config> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            if !f.is_file() {
                anyhow::bail!("--config: file {} does not exist", f.display());
            }
            fig = fig.merge(Toml::file(f));
        }
        let keys: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        for (name, _) in std::env::vars() {
            if let Some(k) = name.strip_prefix("STRATA_")
                && !keys.contains(&k.to_lowercase().as_str())
                && !NOT_SETTINGS.contains(&name.as_str())
            {
                tracing::warn!(
                    variable = name,
                    "unknown STRATA_ environment variable ignored"
                );
            }
        }
        fig = fig
            .merge(Env::prefixed("STRATA_").only(&keys))
            .merge(Serialized::globals(flags));
        let cfg: Config = fig.extract().map_err(|e| {
            let key = e.path.join(".");
            let msg = e.to_string();
            if key.is_empty() {
                anyhow::anyhow!("invalid configuration: {msg}")
            } else {
                anyhow::anyhow!("invalid setting {}: {msg}", named(&key))
            }
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values beyond their types.
    pub fn validate(&self) -> anyhow::Result<()> {
        let ports = [
            ("http_port", self.http_port),
            ("grpc_port", self.grpc_port),
            ("metrics_port", self.metrics_port),
        ];
        for (i, (k, p)) in ports.iter().enumerate() {
            if let Some((k2, _)) = ports[i + 1..].iter().find(|(_, q)| q == p && *p != 0) {
                anyhow::bail!(
                    "invalid setting {}: port {p} is also {}",
                    named(k),
                    named(k2)
                );
            }
        }
        for key in [
            "jwt_max_ttl",
            "jwt_leeway",
            "request_timeout",
            "s3_connection_timeout",
            "s3_request_timeout",
            "cold_gc_grace",
            "tier_min_residence",
            "memtable_max_age",
        ] {
            let v = match key {
                "jwt_max_ttl" => &self.jwt_max_ttl,
                "jwt_leeway" => &self.jwt_leeway,
                "s3_connection_timeout" => &self.s3_connection_timeout,
                "s3_request_timeout" => &self.s3_request_timeout,
                "cold_gc_grace" => &self.cold_gc_grace,
                "tier_min_residence" => &self.tier_min_residence,
                "memtable_max_age" => &self.memtable_max_age,
                _ => &self.request_timeout,
            };
            let d = parse_duration(v)
                .map_err(|e| anyhow::anyhow!("invalid setting {}: {e}", named(key)))?;
            if key == "cold_gc_grace" && d < Duration::from_secs(60) {
                anyhow::bail!(
                    "invalid setting {}: at least 1m (an upload must be published before its grace ends)",
                    named(key)
                );
            }
            if (key.ends_with("timeout") || key == "memtable_max_age") && d.is_zero() {
                anyhow::bail!("invalid setting {}: must be at least 1s", named(key));
            }
        }
        if let Some(s) = &self.jwt_secret
            && s.len() < 32
        {
            anyhow::bail!(
                "invalid setting {}: the secret must be at least 32 bytes",
                named("jwt_secret")
            );
        }
        if self.jwt_secret.is_some() && self.jwt_secret_file.is_some() {
            anyhow::bail!(
                "invalid setting {}: set the secret or the secret file, not both",
                named("jwt_secret_file")
            );
        }
        for (key, path) in [
            ("jwt_secret_file", &self.jwt_secret_file),
            ("jwt_public_keys", &self.jwt_public_keys),
        ] {
            if let Some(p) = path
                && !p.is_file()
            {
                anyhow::bail!(
                    "invalid setting {}: file {} does not exist",
                    named(key),
                    p.display()
                );
            }
        }
        for (key, v) in [
            ("max_body_bytes", self.max_body_bytes),
            ("max_batch_points", self.max_batch_points),
            ("max_batch_searches", self.max_batch_searches),
            ("max_limit", self.max_limit),
        ] {
            if v == 0 {
                anyhow::bail!("invalid setting {}: must be greater than 0", named(key));
            }
        }
        self.io_mode
            .parse::<IoMode>()
            .or_else(|e| bail_named("io_mode", &e).map(|_| IoMode::Auto))?;
        if !(1..=4096).contains(&self.io_depth) {
            bail_named("io_depth", "must be between 1 and 4096")?;
        }
        if self.cold_retain_manifests == 0 {
            bail_named("cold_retain_manifests", "must be at least 1")?;
        }
        if self.index_threads > 1024 {
            bail_named("index_threads", "must be at most 1024 (0 = one per core)")?;
        }
        if !(1..=64).contains(&self.tier_mover_concurrency) {
            bail_named("tier_mover_concurrency", "must be between 1 and 64")?;
        }
        if let Some(b) = &self.tier_mover_bandwidth {
            let rate =
                parse_bytes(b).or_else(|e| bail_named("tier_mover_bandwidth", &e).map(|_| 0))?;
            if rate == 0 {
                bail_named(
                    "tier_mover_bandwidth",
                    "must be more than 0 bytes per second (unset it for no cap)",
                )?;
            }
        }
        let hot =
            parse_bytes(&self.hot_bytes).or_else(|e| bail_named("hot_bytes", &e).map(|_| 0))?;
        if let Some(w) = &self.warm_bytes {
            let warm = parse_bytes(w).or_else(|e| bail_named("warm_bytes", &e).map(|_| 0))?;
            if self.cold_store_url.is_none() {
                bail_named(
                    "warm_bytes",
                    "set, but no cold store is configured (cold_store_url): nothing could be evicted",
                )?;
            }
            if warm < hot {
                bail_named(
                    "warm_bytes",
                    &format!(
                        "{warm} bytes is less than hot_bytes ({hot}); hot segments also count as local"
                    ),
                )?;
            }
        }
        match self.cold_config() {
            Ok(_) => {}
            Err(e) => bail_named(e.field, &e.why)?,
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err() {
            anyhow::bail!(
                "invalid setting {}: {:?} is not a level or filter",
                named("log_level"),
                self.log_level
            );
        }
        Ok(())
    }

    /// The cold tier's configuration, `None` without `cold_store_url`. Errors name the
    /// setting (as `Config` keys: `cold_store_url`, `s3_…`).
    pub fn cold_config(
        &self,
    ) -> Result<Option<strata_engine::storage::ColdConfig>, strata_engine::storage::ColdConfigError>
    {
        let s3_set = [
            ("s3_endpoint", self.s3_endpoint.is_some()),
            ("s3_region", self.s3_region.is_some()),
            ("s3_access_key_id", self.s3_access_key_id.is_some()),
            ("s3_secret_access_key", self.s3_secret_access_key.is_some()),
            ("s3_allow_http", self.s3_allow_http),
        ];
        let Some(url) = &self.cold_store_url else {
            if let Some((key, _)) = s3_set.iter().find(|(_, set)| *set) {
                return Err(strata_engine::storage::ColdConfigError {
                    field: key,
                    why: "set, but no cold store is configured (cold_store_url)".into(),
                });
            }
            return Ok(None);
        };
        let mut c = strata_engine::storage::ColdConfig::new(url.clone());
        c.s3_endpoint = self.s3_endpoint.clone();
        c.s3_region = self.s3_region.clone();
        c.s3_access_key_id = self.s3_access_key_id.clone();
        c.s3_secret_access_key = self.s3_secret_access_key.clone();
        c.s3_allow_http = self.s3_allow_http;
        c.connect_timeout =
            parse_duration(&self.s3_connection_timeout).unwrap_or(c.connect_timeout);
        c.request_timeout = parse_duration(&self.s3_request_timeout).unwrap_or(c.request_timeout);
        c.retry_count = self.s3_retry_count;
        c.validate().map_err(|mut e| {
            e.field = match e.field {
                "url" => "cold_store_url",
                "connect_timeout" => "s3_connection_timeout",
                "request_timeout" => "s3_request_timeout",
                "retry_count" => "s3_retry_count",
                other => other,
            };
            e
        })?;
        Ok(Some(c))
    }

    /// Parsed `hot_bytes` and `warm_bytes` (validated by [`Config::validate`]).
    pub fn tier_budgets(&self) -> (u64, Option<u64>) {
        (
            parse_bytes(&self.hot_bytes).unwrap_or(0),
            self.warm_bytes.as_deref().and_then(|w| parse_bytes(w).ok()),
        )
    }

    /// Parsed `tier_mover_bandwidth` (validated by [`Config::validate`]).
    pub fn mover_bandwidth(&self) -> Option<u64> {
        self.tier_mover_bandwidth
            .as_deref()
            .and_then(|b| parse_bytes(b).ok())
    }

    /// Parsed `tier_min_residence`.
    pub fn min_residence(&self) -> Duration {
        parse_duration(&self.tier_min_residence).unwrap_or(Duration::from_secs(30))
    }

    /// Parsed `io_mode` (validated by `validate`).
    pub fn io_mode(&self) -> IoMode {
        self.io_mode.parse().unwrap_or_default()
    }

    /// Parsed `memtable_max_age`.
    pub fn memtable_age(&self) -> Duration {
        parse_duration(&self.memtable_max_age).unwrap_or(Duration::from_secs(60))
    }

    /// Parsed `cold_gc_grace`.
    pub fn gc_grace(&self) -> Duration {
        parse_duration(&self.cold_gc_grace).unwrap_or(Duration::from_secs(3600))
    }

    /// Parsed `jwt_max_ttl`.
    pub fn max_ttl(&self) -> Duration {
        parse_duration(&self.jwt_max_ttl).unwrap_or(Duration::from_secs(30 * 86_400))
    }
    /// Parsed `jwt_leeway`.
    pub fn leeway(&self) -> Duration {
        parse_duration(&self.jwt_leeway).unwrap_or(Duration::from_secs(30))
    }
    /// Parsed `request_timeout`.
    pub fn timeout(&self) -> Duration {
        parse_duration(&self.request_timeout).unwrap_or(Duration::from_secs(60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_table_matches_the_struct_and_defaults() {
        let defaults = serde_json::to_value(Config::default()).expect("serialise");
        let fields: Vec<&String> = defaults.as_object().expect("object").keys().collect();
        let keys: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        assert_eq!(
            fields.len(),
            keys.len(),
            "every field has a row and no more: {fields:?} vs {keys:?}"
        );
        for s in SETTINGS {
            let v = &defaults[s.key];
            let shown = match v {
                serde_json::Value::Null => None,
                serde_json::Value::String(x) => Some(x.clone()),
                other => Some(other.to_string()),
            };
            if let Some(shown) = shown {
                assert_eq!(shown, s.default, "default of {}", s.key);
            }
        }
    }

    #[test]
    fn readme_config_table_is_the_settings_table() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
            .expect("README");
        for s in SETTINGS {
            let row = format!(
                "| `{}` | `{}` | `{}` | {} |",
                s.env(),
                s.flag(),
                s.default,
                s.help
            );
            assert!(readme.contains(&row), "README lacks the row:\n{row}");
        }
    }

    #[test]
    fn layers_and_names_bad_settings() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = d.path().join("strata.toml");
        std::fs::write(&f, "http_port = 1234\nlog_level = \"debug\"\n").expect("write");
        let mut flags = serde_json::Map::new();
        flags.insert("log_level".into(), "warn".into());
        let c = Config::load(Some(&f), flags).expect("load");
        assert_eq!((c.http_port, c.log_level.as_str()), (1234, "warn"));
        std::fs::write(&f, "http_port = \"eighty\"\n").expect("write");
        let e = Config::load(Some(&f), Default::default())
            .expect_err("bad port")
            .to_string();
        assert!(e.contains("STRATA_HTTP_PORT (http_port)"), "{e}");
        std::fs::write(&f, "htp_port = 1\n").expect("write");
        let e = Config::load(Some(&f), Default::default())
            .expect_err("unknown key")
            .to_string();
        assert!(e.contains("htp_port"), "{e}");
        std::fs::write(&f, "grpc_port = 8080\n").expect("write");
        let e = Config::load(Some(&f), Default::default())
            .expect_err("clash")
            .to_string();
        assert!(
            e.contains("STRATA_HTTP_PORT") && e.contains("STRATA_GRPC_PORT"),
            "{e}"
        );
        std::fs::write(&f, "jwt_max_ttl = \"forever\"\n").expect("write");
        let e = Config::load(Some(&f), Default::default())
            .expect_err("ttl")
            .to_string();
        assert!(e.contains("STRATA_JWT_MAX_TTL"), "{e}");
        assert_eq!(
            parse_duration("24h").expect("24h"),
            Duration::from_secs(86_400)
        );
        assert_eq!(parse_duration("90").expect("90"), Duration::from_secs(90));
    }
    #[test]
    fn io_mode_and_depth_are_checked_and_named() {
        let load = |toml: &str| {
            let d = tempfile::tempdir().expect("tempdir");
            let f = d.path().join("strata.toml");
            std::fs::write(&f, toml).expect("write");
            Config::load(Some(&f), Default::default()).map_err(|e| e.to_string())
        };
        assert_eq!(load("").expect("default").io_mode(), IoMode::Auto);
        for (toml, mode) in [
            ("io_mode = \"pread\"\n", IoMode::Pread),
            ("io_mode = \"io_uring\"\n", IoMode::IoUring),
        ] {
            assert_eq!(load(toml).expect(toml).io_mode(), mode);
        }
        let e = load("io_mode = \"uring\"\n").expect_err("bad mode");
        assert!(
            e.contains("STRATA_IO_MODE (io_mode)") && e.contains("'uring'"),
            "{e}"
        );
        for depth in [0, 5000] {
            let e = load(&format!("io_depth = {depth}\n")).expect_err("bad depth");
            assert!(e.contains("STRATA_IO_DEPTH (io_depth)"), "{e}");
        }
    }

    #[test]
    fn tier_budgets_parse_sizes_and_name_bad_ones() {
        assert_eq!(parse_bytes("0"), Ok(0));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("4G"), Ok(4 << 30));
        assert_eq!(parse_bytes(" 2 kb "), Ok(2048));
        assert_eq!(parse_bytes("1T"), Ok(1 << 40));
        for bad in ["", "x", "1.5G", "-1", "4 parsecs", "99999999999999999999T"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        let load = |toml: &str| {
            let d = tempfile::tempdir().expect("tempdir");
            let f = d.path().join("strata.toml");
            std::fs::write(&f, toml).expect("write");
            Config::load(Some(&f), Default::default()).map_err(|e| e.to_string())
        };
        let c = load("hot_bytes = \"1GiB\"\n").expect("hot alone is fine");
        assert_eq!(c.tier_budgets(), (1 << 30, None));
        let e = load("hot_bytes = \"lots\"\n").expect_err("bad size");
        assert!(e.contains("STRATA_HOT_BYTES (hot_bytes)"), "{e}");
        let c = load("hot_bytes = 4096\nmemtable_max_age = 90\n").expect("numbers as text");
        assert_eq!(c.tier_budgets(), (4096, None));
        assert_eq!(c.memtable_age(), Duration::from_secs(90));
        let e = load("warm_bytes = \"10GiB\"\n").expect_err("no cold store");
        assert!(
            e.contains("STRATA_WARM_BYTES") && e.contains("cold_store_url"),
            "{e}"
        );
        let cold = "cold_store_url = \"memory://\"\n";
        let e = load(&format!("{cold}hot_bytes = \"2G\"\nwarm_bytes = \"1G\"\n"))
            .expect_err("warm below hot");
        assert!(
            e.contains("STRATA_WARM_BYTES") && e.contains("hot_bytes"),
            "{e}"
        );
        let c = load(&format!("{cold}hot_bytes = \"1G\"\nwarm_bytes = \"10G\"\n"))
            .expect("valid budgets");
        assert_eq!(c.tier_budgets(), (1 << 30, Some(10 << 30)));
        // The mover's concurrency and bandwidth cap.
        let c = load("tier_mover_concurrency = 4\ntier_mover_bandwidth = \"50MiB\"\n")
            .expect("mover settings");
        assert_eq!(
            (c.tier_mover_concurrency, c.mover_bandwidth()),
            (4, Some(50 << 20))
        );
        assert_eq!(load("").expect("defaults").mover_bandwidth(), None);
        assert_eq!(load("").expect("defaults").index_threads, 0);
        assert_eq!(load("index_threads = 2\n").expect("two").index_threads, 2);
        for (bad, name) in [
            (
                "tier_mover_concurrency = 0\n",
                "STRATA_TIER_MOVER_CONCURRENCY",
            ),
            (
                "tier_mover_bandwidth = \"fast\"\n",
                "STRATA_TIER_MOVER_BANDWIDTH",
            ),
            (
                "tier_mover_bandwidth = \"0\"\n",
                "STRATA_TIER_MOVER_BANDWIDTH",
            ),
            ("index_threads = 5000\n", "STRATA_INDEX_THREADS"),
        ] {
            let e = load(bad).expect_err(bad);
            assert!(e.contains(name), "{e}");
        }
    }
}
