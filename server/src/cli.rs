//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Strata: vectors and actor state over RAM, local SSD and object storage.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Options every command shares.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Data directory.
    #[arg(long, env = "STRATA_DATA_DIR", default_value = "./strata-data")]
    pub data_dir: PathBuf,
    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(long, env = "STRATA_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format.
    #[arg(long, env = "STRATA_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the data directory, recover it, and serve until SIGTERM or SIGINT.
    Serve {
        #[command(flatten)]
        common: Common,
        /// WAL acknowledgement: fsync (durable, default) or none (benchmarks only).
        #[arg(long, env = "STRATA_WAL_ACK", default_value = "fsync")]
        wal_ack: String,
    },
    /// Open the data directory, verify every segment and the WAL, print a report and exit
    /// (non-zero on corruption).
    Check {
        #[command(flatten)]
        common: Common,
    },
}
