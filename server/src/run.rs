//! What each command does.

use anyhow::{Context, bail};
use strata_engine::{AckMode, Engine, EngineOptions, RecoveryReport, Verify};

use crate::cli::{Common, LogFormat};

/// Installs the global logger.
pub fn init_logging(c: &Common) {
    let filter = tracing_subscriber::EnvFilter::try_new(&c.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match c.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn report_json(engine: &Engine, r: &RecoveryReport) -> serde_json::Value {
    let collections: Vec<serde_json::Value> = engine
        .all_collections()
        .iter()
        .filter_map(|c| c.info().ok().map(|i| (c.tenant().to_string(), i)))
        .map(|(tenant, i)| {
            serde_json::json!({
                "tenant": tenant, "name": i.name, "points": i.points, "segments": i.segments,
                "indexed_segments": i.indexed_segments, "bytes": i.bytes,
                "dim": i.config.dim, "distance": i.config.distance,
            })
        })
        .collect();
    serde_json::json!({
        "data_dir": engine.data_dir().display().to_string(),
        "recovery": {
            "collections": r.collections, "segments": r.segments,
            "wal_records_replayed": r.wal_records_replayed,
            "wal_records_skipped": r.wal_records_skipped,
            "wal_torn_bytes": r.wal_torn_bytes, "orphans_removed": r.orphans_removed,
            "last_lsn": r.last_lsn, "millis": r.millis,
        },
        "collections": collections,
    })
}

/// `strata check`: open with full verification, print the report, exit.
pub fn check(common: &Common) -> anyhow::Result<()> {
    let mut opts = EngineOptions::new(&common.data_dir);
    opts.background = false;
    opts.verify_on_open = Verify::Full;
    let engine =
        Engine::open(opts).with_context(|| format!("checking {}", common.data_dir.display()))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&report_json(&engine, engine.recovery_report()))?
    );
    Ok(())
}

/// `strata serve`: open, recover, report, run background maintenance until a signal, then
/// flush and exit.
pub fn serve(common: &Common, wal_ack: &str) -> anyhow::Result<()> {
    let ack = match wal_ack {
        "fsync" => AckMode::Fsync,
        "none" => AckMode::None,
        other => bail!("STRATA_WAL_ACK / --wal-ack must be fsync or none, got {other:?}"),
    };
    let mut opts = EngineOptions::new(&common.data_dir);
    opts.wal_ack = ack;
    let engine = Engine::open(opts)
        .with_context(|| format!("opening data directory {}", common.data_dir.display()))?;
    println!(
        "{}",
        serde_json::to_string(&report_json(&engine, engine.recovery_report()))?
    );
    tracing::info!(data_dir = %common.data_dir.display(), "strata is up; stop with SIGTERM or Ctrl-C");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(shutdown_signal())?;
    tracing::info!("shutting down: flushing memtables");
    engine.close().context("flushing on shutdown")?;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}
