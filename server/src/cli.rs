//! Command-line interface.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::config::{LogFormat, WalAck};

/// Strata: vectors and actor state over RAM, local SSD and object storage.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Every setting as a flag (environment and TOML mirror them; see the README table). Flags win
/// over the environment, which wins over the file.
#[derive(Debug, Clone, Default, clap::Args, Serialize)]
pub struct SettingsArgs {
    /// TOML configuration file.
    #[arg(long, short = 'c', env = "STRATA_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Data directory.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Address to bind.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<IpAddr>,
    /// HTTP port.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_port: Option<u16>,
    /// gRPC port.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_port: Option<u16>,
    /// Metrics port.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_port: Option<u16>,
    /// WAL acknowledgement.
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal_ack: Option<WalAck>,
    /// HS256 secret (prefer the file or the environment: flags are visible in `ps`).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_secret: Option<String>,
    /// File holding the HS256 secret.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_secret_file: Option<PathBuf>,
    /// PEM or JWKS file of public keys.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_public_keys: Option<PathBuf>,
    /// Longest accepted token lifetime.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_max_ttl: Option<String>,
    /// Clock skew tolerated.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_leeway: Option<String>,
    /// Runtime worker threads (0 = one per core).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_threads: Option<usize>,
    /// Threads one HNSW graph build uses (0 = one per core).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_threads: Option<usize>,
    /// Log level or filter.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// Log format.
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Largest request body in bytes.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
    /// Largest upsert batch in points.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_batch_points: Option<usize>,
    /// Most searches in one batch request.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_batch_searches: Option<usize>,
    /// Largest limit + offset.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_limit: Option<usize>,
    /// Request timeout.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<String>,
    /// Cold tier URL.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cold_store_url: Option<String>,
    /// S3-compatible endpoint.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_endpoint: Option<String>,
    /// S3 region.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_region: Option<String>,
    /// S3 access key id.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key (prefer the environment: flags are visible in `ps`).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_secret_access_key: Option<String>,
    /// Allow an http:// S3 endpoint.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_allow_http: Option<bool>,
    /// Object-store connect timeout.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_connection_timeout: Option<String>,
    /// Object-store request timeout.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_request_timeout: Option<String>,
    /// Object-store request retries.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_retry_count: Option<usize>,
    /// Manifest generations kept in the cold store.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cold_retain_manifests: Option<usize>,
    /// Grace period of unreferenced cold objects.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cold_gc_grace: Option<String>,
    /// Bytes of segment files held in RAM (hot tier), e.g. 4GiB.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hot_bytes: Option<String>,
    /// Bytes of segment files kept on local disk (needs a cold store), e.g. 100GiB.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_bytes: Option<String>,
    /// Least time in a tier before the policy moves a segment again.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier_min_residence: Option<String>,
    /// Tier moves the mover applies at once.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier_mover_concurrency: Option<usize>,
    /// Download bandwidth of the mover's promotions, bytes per second, e.g. 50MiB.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier_mover_bandwidth: Option<String>,
    /// Age of the oldest unflushed write that triggers a flush.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memtable_max_age: Option<String>,
    /// Backend of batched reads: auto, io_uring or pread.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_mode: Option<String>,
    /// Reads in flight per batch with io_uring.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_depth: Option<u32>,
}

impl SettingsArgs {
    /// The flags that were given, as a JSON object for the config layering.
    pub fn flags(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        }
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (HTTP, gRPC, metrics) until SIGTERM or SIGINT.
    Serve {
        #[command(flatten)]
        settings: SettingsArgs,
        /// Check the configuration, print it (secrets hidden) and exit.
        #[arg(long)]
        validate: bool,
    },
    /// Mint an HS256 token with the configured secret.
    Token {
        #[command(flatten)]
        settings: SettingsArgs,
        /// Tenant the token speaks for.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Access: r, rw or m (manage). With --collection: r or rw on those collections only.
        #[arg(long, default_value = "r")]
        access: String,
        /// Restrict to these collections (repeatable).
        #[arg(long = "collection")]
        collections: Vec<String>,
        /// Lifetime, e.g. 15m, 24h, 7d.
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// Subject (`sub` claim).
        #[arg(long)]
        sub: Option<String>,
    },
    /// Open the data directory, verify every file, print a JSON report and exit.
    Check {
        #[command(flatten)]
        settings: SettingsArgs,
    },
}
