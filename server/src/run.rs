//! What each command does.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use strata_engine::storage::Io;
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
pub const SECRET_FILE: &str = strata_engine::storage::layout::JWT_SECRET;

/// Shortest HS256 secret accepted, from any source (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_BYTES: usize = 32;

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

fn engine_options(cfg: &Config) -> anyhow::Result<EngineOptions> {
    let mut o = EngineOptions::new(&cfg.data_dir);
    if let Some(cold) = cfg.cold_config().map_err(|e| {
        anyhow::anyhow!(
            "invalid setting STRATA_{}: {}",
            e.field.to_uppercase(),
            e.why
        )
    })? {
        let store = strata_engine::storage::ObjectBlobStore::open(&cold).map_err(|e| {
            anyhow::anyhow!(
                "invalid setting STRATA_{}: {}",
                e.field.to_uppercase(),
                e.why
            )
        })?;
        tracing::info!(url = store.url(), "cold tier");
        o.cold = Some(Arc::new(store));
        o.tiered.retain_manifests = cfg.cold_retain_manifests;
        o.tiered.gc_grace = cfg.gc_grace();
    }
    o.wal_ack = match cfg.wal_ack {
        WalAck::Fsync => AckMode::Fsync,
        WalAck::None => AckMode::None,
    };
    o.max_batch_points = cfg.max_batch_points;
    o.index_threads = cfg.index_threads;
    o.max_result_window = cfg.max_limit;
    (o.tiers.hot_bytes, o.tiers.warm_bytes) = cfg.tier_budgets();
    o.tiers.min_residence = cfg.min_residence();
    o.tiers.mover_concurrency = cfg.tier_mover_concurrency;
    o.tiers.mover_bytes_per_sec = cfg.mover_bandwidth();
    o.memtable_max_age = cfg.memtable_age();
    let io = io_engine(cfg)?;
    io.log(&cfg.io_mode);
    o.io = Some(Arc::new(io));
    Ok(o)
}

/// The batched-read engine the settings ask for (probes io_uring once).
fn io_engine(cfg: &Config) -> anyhow::Result<Io> {
    Io::new(cfg.io_mode(), cfg.io_depth)
        .map_err(|why| anyhow::anyhow!("invalid setting STRATA_IO_MODE (io_mode): {why}"))
}

fn random_hex(n: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .context("reading /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Reads a secret file: warns when its mode lets anyone but the owner read it, refuses a
/// secret under [`MIN_SECRET_BYTES`] (an empty file must never become an empty key).
fn read_secret(path: &Path, what: &str, hint: &str) -> anyhow::Result<Vec<u8>> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).with_context(|| format!("reading {what} {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            file = %path.display(),
            mode = format!("{mode:o}"),
            "the JWT secret file is readable by others (mode wider than 0600): chmod 600 it"
        );
    }
    let bytes =
        std::fs::read(path).with_context(|| format!("reading {what} {}", path.display()))?;
    let secret = bytes
        .strip_suffix(b"\n")
        .map(|b| b.strip_suffix(b"\r").unwrap_or(b))
        .unwrap_or(&bytes);
    if secret.len() < MIN_SECRET_BYTES {
        bail!(
            "{what}: the secret in {} is {} bytes, shorter than {MIN_SECRET_BYTES}; {hint}",
            path.display(),
            secret.len()
        );
    }
    Ok(secret.to_vec())
}

/// The HS256 secret: configured, or (`generate`) the one in the data directory, created with
/// mode 0600 at first start — atomically (temp file, fsync, link into place, fsync directory),
/// so a crash at first start never leaves a partial or empty secret behind. Returns the secret
/// and whether it was just created.
pub fn resolve_secret(cfg: &Config, generate: bool) -> anyhow::Result<(Option<Vec<u8>>, bool)> {
    if let Some(s) = &cfg.jwt_secret {
        return Ok((Some(s.as_bytes().to_vec()), false));
    }
    if let Some(p) = &cfg.jwt_secret_file {
        let secret = read_secret(
            p,
            "invalid setting STRATA_JWT_SECRET_FILE (jwt_secret_file)",
            "generate one with e.g. `head -c 32 /dev/urandom | xxd -p -c 64`",
        )?;
        return Ok((Some(secret), false));
    }
    let path = cfg.data_dir.join(SECRET_FILE);
    let hint = "delete it to have a new one generated at the next start (tokens signed with the old one stop working), or set STRATA_JWT_SECRET_FILE";
    if path.exists() {
        return Ok((
            Some(read_secret(&path, "the generated JWT secret", hint)?),
            false,
        ));
    }
    if cfg.jwt_public_keys.is_some() || !generate {
        return Ok((None, false));
    }
    let secret = random_hex(32)?;
    use strata_engine::storage::{Replace, StoreError, write_file_atomic};
    match write_file_atomic(&path, secret.as_bytes(), 0o600, Replace::CreateOnly) {
        Ok(()) => Ok((Some(secret.into_bytes()), true)),
        // Another process created it first: use that one.
        Err(StoreError::AlreadyExists { .. }) => Ok((
            Some(read_secret(&path, "the generated JWT secret", hint)?),
            false,
        )),
        Err(e) => Err(anyhow::anyhow!("creating {}: {e}", path.display())),
    }
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
                "vectors": i.config.vectors.iter().map(|(name, p)| serde_json::json!({"name": name, "dim": p.dim, "distance": p.distance})).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "data_dir": engine.data_dir().display().to_string(),
        "recovery": {
            "collections": r.collections, "segments": r.segments,
            "wal_records_replayed": r.wal_records_replayed,
            "wal_records_skipped": r.wal_records_skipped,
            "wal_torn_bytes": r.wal_torn_bytes, "orphans_found": r.orphans_found,
            "orphans_removed": r.orphans_removed,
            "restored_from_cold_generation": r.restored_generation,
            "last_lsn": r.last_lsn, "millis": r.millis,
        },
        "collections": collections,
    })
}

/// `strata check`.
pub fn check(settings: &SettingsArgs) -> anyhow::Result<()> {
    let cfg = load(settings)?;
    init_logging(&cfg);
    let mut opts = engine_options(&cfg)?;
    opts.background = false;
    opts.verify_on_open = Verify::Full;
    // Inspect only: no torn tail cut, no orphan removed, no WAL file created.
    opts.read_only = true;
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
    for (key, set) in [
        ("jwt_secret", cfg.jwt_secret.is_some()),
        ("s3_access_key_id", cfg.s3_access_key_id.is_some()),
        ("s3_secret_access_key", cfg.s3_secret_access_key.is_some()),
    ] {
        if set {
            v[key] = "(set, hidden)".into();
        }
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
        // And the io mode, so `io_uring` on a host without it fails here too.
        io_engine(&cfg)?;
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
        Engine::open(engine_options(&cfg)?)
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
        // Signal handlers first: a SIGTERM sent as soon as the ports are announced must stop
        // the server cleanly, not kill it (found by the CLI test once its sleep was removed).
        let shutdown = shutdown_signal()?;
        let listeners = Listeners::bind(&cfg).await?;
        // One machine-readable line, so tools and tests using port 0 find the ports.
        say(&serde_json::json!({"listening": {
            "http": listeners.http.local_addr()?.to_string(),
            "grpc": listeners.grpc.local_addr()?.to_string(),
            "metrics": listeners.metrics.local_addr()?.to_string(),
        }})
        .to_string());
        serve_listeners(&cfg, Arc::clone(&engine), auth, listeners, shutdown).await
    })?;
    tracing::info!("flushing memtables");
    match Arc::try_unwrap(engine) {
        Ok(engine) => engine.close().context("flushing on shutdown")?,
        Err(engine) => engine.flush_all().context("flushing on shutdown")?,
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Installs the SIGTERM and SIGINT handlers now; the future resolves at the first signal.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// The data directory of `cfg` (for messages).
pub fn data_dir(cfg: &Config) -> &Path {
    &cfg.data_dir
}
