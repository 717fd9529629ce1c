//! Running the listeners: HTTP and metrics (gRPC joins them), with graceful shutdown.
//!
//! `serve` is a library function over already-bound listeners, so tests run it on
//! `127.0.0.1:0`. On shutdown it stops accepting, lets in-flight requests finish, then returns;
//! the caller flushes the engine.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::http::{self, AppState};
use strata_engine::Engine;

/// Bound listeners.
#[derive(Debug)]
pub struct Listeners {
    /// HTTP.
    pub http: TcpListener,
    /// gRPC.
    pub grpc: TcpListener,
    /// Metrics.
    pub metrics: TcpListener,
}

impl Listeners {
    /// Binds every port of `cfg`.
    pub async fn bind(cfg: &Config) -> anyhow::Result<Listeners> {
        let bind = |port: u16, what: &'static str| {
            let addr = std::net::SocketAddr::new(cfg.bind, port);
            async move {
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("binding the {what} port {addr}: {e}"))
            }
        };
        Ok(Listeners {
            http: bind(cfg.http_port, "HTTP (STRATA_HTTP_PORT)").await?,
            grpc: bind(cfg.grpc_port, "gRPC (STRATA_GRPC_PORT)").await?,
            metrics: bind(cfg.metrics_port, "metrics (STRATA_METRICS_PORT)").await?,
        })
    }
}

/// Serves until `shutdown` resolves, then drains in-flight requests and returns.
pub async fn serve(
    cfg: &Config,
    engine: Arc<Engine>,
    auth: Arc<Authenticator>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let handle = crate::metrics::install();
    let (tx, rx) = watch::channel(false);
    let wait = move |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let state = AppState::new(Arc::clone(&engine), auth, cfg);
    let app = http::router(state.clone(), cfg.max_body_bytes);
    let grpc = crate::grpc::router(state, cfg.max_body_bytes).await?;
    tracing::info!(
        http = %listeners.http.local_addr()?,
        grpc = %listeners.grpc.local_addr()?,
        metrics = %listeners.metrics.local_addr()?,
        "listening"
    );
    let grpc = tokio::spawn(grpc.serve_with_incoming_shutdown(
        tonic::transport::server::TcpIncoming::from(listeners.grpc).with_nodelay(Some(true)),
        wait(rx.clone()),
    ));
    // TCP_NODELAY on every accepted socket: small responses must not wait for Nagle's
    // algorithm (measured: a 40 ms p99 on gRPC without it, docs/benchmarks.md).
    let http_listener = axum::serve::ListenerExt::tap_io(listeners.http, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY");
        }
    });
    let http = tokio::spawn(
        axum::serve(http_listener, app)
            .with_graceful_shutdown(wait(rx.clone()))
            .into_future(),
    );
    let metrics = tokio::spawn(
        axum::serve(listeners.metrics, crate::metrics::router(engine, handle))
            .with_graceful_shutdown(wait(rx))
            .into_future(),
    );
    shutdown.await;
    tracing::info!("shutdown requested: draining in-flight requests");
    let _ = tx.send(true);
    http.await??;
    grpc.await??;
    metrics.await??;
    Ok(())
}
