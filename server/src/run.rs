//! What each command does.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use strata_engine::{AckMode, DEFAULT_TENANT, Engine, EngineOptions, RecoveryReport, Verify};

use crate::auth::{Access, Authenticator, CollectionAccess, Level};
use crate::cli::SettingsArgs;
use crate::config::{Config, LogFormat, WalAck, parse_duration};
use crate::server::{Listeners, serve as serve_listeners};

/// Writes a line to stdout, ignoring errors: a server must not die because whoever started it
/// closed its stdout (`println!` panics on a broken pipe).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Name of the generated secret in the data directory.
pub const SECRET_FILE: &str = "jwt-secret";

/// Loads the layered configuration.
pub fn load(settings: &SettingsArgs) -> anyhow::Result<Config> {
    Config::load(settings.config.as_deref(), settings.flags())
}

/// Installs the global logger.
pub fn init_logging(c: &Config) {
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

fn engine_options(cfg: &Config) -> EngineOptions {
    let mut o = EngineOptions::new(&cfg.data_dir);
    o.wal_ack = match cfg.wal_ack {
        WalAck::Fsync => AckMode::Fsync,
        WalAck::None => AckMode::None,
    };
    o.max_batch_points = cfg.max_batch_points;
    o.max_result_window = cfg.max_limit;
    o
}

fn random_hex(n: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .context("reading /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The HS256 secret: configured, or (`generate`) the one in the data directory, created with
/// mode 0600 at first start. Returns the secret and whether it was just created.
pub fn resolve_secret(cfg: &Config, generate: bool) -> anyhow::Result<(Option<Vec<u8>>, bool)> {
    if let Some(s) = &cfg.jwt_secret {
        return Ok((Some(s.as_bytes().to_vec()), false));
    }
    if let Some(p) = &cfg.jwt_secret_file {
        let s = std::fs::read_to_string(p)
            .with_context(|| format!("reading STRATA_JWT_SECRET_FILE {}", p.display()))?;
        let s = s.trim_end_matches(['\n', '\r']);
        if s.len() < 32 {
            bail!(
                "invalid setting STRATA_JWT_SECRET_FILE (jwt_secret_file): the secret in {} is shorter than 32 bytes",
                p.display()
            );
        }
        return Ok((Some(s.as_bytes().to_vec()), false));
    }
    let path = cfg.data_dir.join(SECRET_FILE);
    if path.is_file() {
        return Ok((
            Some(std::fs::read_to_string(&path)?.trim().as_bytes().to_vec()),
            false,
        ));
    }
    if cfg.jwt_public_keys.is_some() || !generate {
        return Ok((None, false));
    }
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let secret = random_hex(32)?;
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
    }
    .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(secret.as_bytes())?;
    f.sync_all()?;
    Ok((Some(secret.into_bytes()), true))
}

fn authenticator(cfg: &Config, secret: Option<&[u8]>) -> anyhow::Result<Authenticator> {
    let public = cfg
        .jwt_public_keys
        .as_ref()
        .map(|p| {
            std::fs::read(p)
                .with_context(|| format!("reading STRATA_JWT_PUBLIC_KEYS {}", p.display()))
        })
        .transpose()?;
    Authenticator::new(secret, public.as_deref(), cfg.leeway(), cfg.max_ttl())
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

/// `strata check`.
pub fn check(settings: &SettingsArgs) -> anyhow::Result<()> {
    let cfg = load(settings)?;
    init_logging(&cfg);
    let mut opts = engine_options(&cfg);
    opts.background = false;
    opts.verify_on_open = Verify::Full;
    let engine =
        Engine::open(opts).with_context(|| format!("checking {}", cfg.data_dir.display()))?;
    say(&serde_json::to_string_pretty(&report_json(
        &engine,
        engine.recovery_report(),
    ))?);
    Ok(())
}

/// `strata token`.
pub fn token(
    settings: &SettingsArgs,
    tenant: &str,
    access: &str,
    collections: &[String],
    ttl: &str,
    sub: Option<&str>,
) -> anyhow::Result<()> {
    let cfg = load(settings)?;
    let ttl = parse_duration(ttl).map_err(|e| anyhow::anyhow!("--ttl: {e}"))?;
    if ttl > cfg.max_ttl() {
        bail!(
            "--ttl {}s exceeds STRATA_JWT_MAX_TTL ({}s): the server would refuse the token",
            ttl.as_secs(),
            cfg.max_ttl().as_secs()
        );
    }
    let level: Level = access
        .parse()
        .map_err(|e| anyhow::anyhow!("--access: {e}"))?;
    let access = if collections.is_empty() {
        Access::Global(level)
    } else {
        if level == Level::Manage {
            bail!("--access m cannot be limited to collections (managing is global)");
        }
        for c in collections {
            strata_engine::validate_name("--collection", c)
                .map_err(|e| anyhow::anyhow!(e.message().to_string()))?;
        }
        Access::Collections(
            collections
                .iter()
                .map(|c| CollectionAccess {
                    collection: c.clone(),
                    access: level,
                })
                .collect(),
        )
    };
    let (secret, _) = resolve_secret(&cfg, false)?;
    let secret = secret.ok_or_else(|| {
        anyhow::anyhow!("no HS256 secret: set STRATA_JWT_SECRET or STRATA_JWT_SECRET_FILE, or start `strata serve` once to generate {}", cfg.data_dir.join(SECRET_FILE).display())
    })?;
    let auth = authenticator(&cfg, Some(&secret))?;
    say(&auth.mint(tenant, access, sub, ttl)?);
    Ok(())
}

fn redacted(cfg: &Config) -> serde_json::Value {
    let mut v = serde_json::to_value(cfg).unwrap_or_default();
    if cfg.jwt_secret.is_some() {
        v["jwt_secret"] = "(set, hidden)".into();
    }
    v
}

/// `strata serve [--validate]`.
pub fn serve(settings: &SettingsArgs, validate: bool) -> anyhow::Result<()> {
    let cfg = load(settings)?;
    init_logging(&cfg);
    if validate {
        // Also load keys, so a bad PEM/JWKS file fails here.
        let (secret, _) = resolve_secret(&cfg, false)?;
        if secret.is_some() || cfg.jwt_public_keys.is_some() {
            authenticator(&cfg, secret.as_deref())?;
        }
        say(&serde_json::to_string_pretty(&redacted(&cfg))?);
        eprintln!("configuration OK");
        return Ok(());
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if cfg.worker_threads > 0 {
        rt.worker_threads(cfg.worker_threads);
    }
    let rt = rt.enable_all().build().context("starting the runtime")?;
    let engine = Arc::new(
        Engine::open(engine_options(&cfg))
            .with_context(|| format!("opening data directory {}", cfg.data_dir.display()))?,
    );
    say(&serde_json::to_string(&report_json(
        &engine,
        engine.recovery_report(),
    ))?);
    let (secret, generated) = resolve_secret(&cfg, true)?;
    let auth = Arc::new(authenticator(&cfg, secret.as_deref())?);
    if generated {
        let ttl = cfg.max_ttl().min(Duration::from_secs(86_400));
        let token = auth.mint(
            DEFAULT_TENANT,
            Access::Global(Level::Manage),
            Some("admin"),
            ttl,
        )?;
        say(&format!(
            "first start: generated the JWT secret {} (mode 0600).\nadmin token (tenant \"default\", access m, valid {}h; mint more with `strata token`):\n{token}",
            cfg.data_dir.join(SECRET_FILE).display(),
            ttl.as_secs() / 3600
        ));
    }
    rt.block_on(async {
        let listeners = Listeners::bind(&cfg).await?;
        // One machine-readable line, so tools and tests using port 0 find the ports.
        say(&serde_json::json!({"listening": {
            "http": listeners.http.local_addr()?.to_string(),
            "grpc": listeners.grpc.local_addr()?.to_string(),
            "metrics": listeners.metrics.local_addr()?.to_string(),
        }})
        .to_string());
        serve_listeners(
            &cfg,
            Arc::clone(&engine),
            auth,
            listeners,
            shutdown_signal(),
        )
        .await
    })?;
    tracing::info!("flushing memtables");
    match Arc::try_unwrap(engine) {
        Ok(engine) => engine.close().context("flushing on shutdown")?,
        Err(engine) => engine.flush_all().context("flushing on shutdown")?,
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot install the SIGTERM handler");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// The data directory of `cfg` (for messages).
pub fn data_dir(cfg: &Config) -> &Path {
    &cfg.data_dir
}
