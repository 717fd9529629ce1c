//! The HTTP API: a Qdrant-compatible REST subset, health probes and the OpenAPI document.
//!
//! ```text
//! request ─▶ metrics middleware ─▶ body timeout ─▶ body limit ─▶ route
//!         ─▶ Caller extractor (JWT: Bearer or api-key) ─▶ ReqDeadline (arrival + timeout,
//!            cancelled when the handler is dropped) ─▶ handler: parse, authorize,
//!            engine call on the blocking pool with the deadline, envelope
//! ```
//!
//! There is no outer timeout that answers while the engine still works: the deadline travels
//! into the engine, which refuses a write it could not commit in time (nothing applied) and
//! stops a read between sources; the handler always waits for the engine's own answer. A
//! write that reached the WAL before the deadline completes and answers 200.

pub(crate) mod actors;
pub(crate) mod aggregate;
pub(crate) mod aliases;
pub(crate) mod handlers;
pub(crate) mod parse;
pub(crate) mod snapshots;
pub(crate) mod updates;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use strata_engine::{Deadline, Engine};

use crate::auth::{Authenticator, Principal};
use crate::error::{ApiError, Kind};

/// Shared by every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    pub(crate) engine: Arc<Engine>,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) max_batch_points: usize,
    pub(crate) max_batch_searches: usize,
    pub(crate) max_limit: usize,
    pub(crate) max_segment_rows: u64,
    pub(crate) timeout: Duration,
    /// The local data directory (`file://` snapshot locations must lie in its `snapshots/`).
    pub(crate) data_dir: std::path::PathBuf,
}

impl AppState {
    /// State over an open engine and an authenticator, with the limits of `cfg`.
    pub fn new(
        engine: Arc<Engine>,
        auth: Arc<Authenticator>,
        cfg: &crate::config::Config,
    ) -> AppState {
        AppState {
            engine,
            auth,
            max_batch_points: cfg.max_batch_points,
            max_batch_searches: cfg.max_batch_searches,
            max_limit: cfg.max_limit,
            max_segment_rows: 1_000_000,
            timeout: cfg.timeout(),
            data_dir: cfg.data_dir.clone(),
        }
    }
}

/// The deadline of one request: its arrival plus the request timeout (for gRPC, the client's
/// `grpc-timeout` when shorter), and a cancel flag raised when this value is dropped — that
/// is, when the handler finishes or is dropped because the client went away.
#[derive(Debug)]
pub struct ReqDeadline {
    deadline: Deadline,
    flag: Arc<AtomicBool>,
}

impl ReqDeadline {
    /// Expires `timeout` (or `client`, if shorter) from now.
    pub fn new(timeout: Duration, client: Option<Duration>) -> ReqDeadline {
        let flag = Arc::new(AtomicBool::new(false));
        let d = client.map_or(timeout, |c| c.min(timeout));
        // A timeout too large for the clock is no timeout.
        let deadline = match Instant::now().checked_add(d) {
            Some(at) => Deadline::at(at),
            None => Deadline::none(),
        };
        ReqDeadline {
            deadline: deadline.cancelled_by(Arc::clone(&flag)),
            flag,
        }
    }

    /// The engine's view of it.
    pub fn get(&self) -> Deadline {
        self.deadline.clone()
    }
}

impl Drop for ReqDeadline {
    fn drop(&mut self) {
        self.flag.store(true, Ordering::Release);
    }
}

impl FromRequestParts<AppState> for ReqDeadline {
    type Rejection = ApiError;
    async fn from_request_parts(_: &mut Parts, st: &AppState) -> Result<ReqDeadline, ApiError> {
        Ok(ReqDeadline::new(st.timeout, None))
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

/// The token of a request: the `api-key` header, else `Authorization: Bearer …`
/// ([`crate::auth::pick_token`]); `Err`: the 401's message.
pub(crate) fn token_of(headers: &axum::http::HeaderMap) -> Result<&str, String> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    crate::auth::pick_token(
        text("api-key"),
        text(axum::http::header::AUTHORIZATION.as_str()),
    )
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Caller, ApiError> {
        let token =
            token_of(&parts.headers).map_err(|m| ApiError::new(Kind::Unauthenticated, m))?;
        st.auth
            .verify(token)
            .map(Caller)
            .map_err(|e| ApiError::new(Kind::Unauthenticated, e.0))
    }
}

/// A metric label for `s` without an allocation for the codes this server answers.
fn status_label(s: StatusCode) -> metrics::SharedString {
    const CODES: [&str; 20] = [
        "200", "201", "202", "204", "206", "304", "400", "401", "403", "404", "405", "409", "412",
        "413", "415", "422", "429", "500", "501", "503",
    ];
    let code = s.as_str();
    match CODES.iter().find(|c| **c == code) {
        Some(c) => metrics::SharedString::const_str(c),
        None => metrics::SharedString::from(code.to_string()),
    }
}

/// A metric label for `m`, static for the methods routes use.
fn method_label(m: &axum::http::Method) -> metrics::SharedString {
    const METHODS: [&str; 7] = ["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS"];
    match METHODS.iter().find(|x| **x == m.as_str()) {
        Some(x) => metrics::SharedString::const_str(x),
        None => metrics::SharedString::from(m.as_str().to_string()),
    }
}

/// Metrics and refusal logs per request. Labels are built once per request and shared by the
/// metrics (an `Arc`), the path is only read when a refusal is logged.
async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(metrics::SharedString::const_str("unmatched"), |m| {
            metrics::SharedString::from(std::sync::Arc::<str>::from(m.as_str()))
        });
    let method = method_label(req.method());
    let uri = req.uri().clone();
    let started = Instant::now();
    let mut resp = match bad_wait(uri.query()) {
        // Writes are durable before they answer, so `wait` changes nothing; typed all the same.
        Some(v) => {
            ApiError::invalid(format!("wait: expected true or false, got {v:?}")).into_response()
        }
        None => next.run(req).await,
    };
    let status = resp.status();
    if status == StatusCode::METHOD_NOT_ALLOWED {
        // axum answers a known path with another method with an empty body: give the client
        // the JSON envelope every other error has, naming what the path accepts.
        // (axum adds its Allow header outside this layer: the methods come from the tables.)
        let allow = ROUTES
            .iter()
            .map(|(m, p)| (*m, *p))
            .chain(UNSUPPORTED_ROUTES.iter().map(|(m, p, _)| (*m, *p)))
            .filter(|(_, p)| *p == &*route)
            .map(|(m, _)| m)
            .collect::<Vec<_>>()
            .join(", ");
        let mut fixed = ApiError::method_not_allowed(format!(
            "method {method} is not allowed on {route} (allowed: {allow})"
        ))
        .into_response();
        if let Some(v) = resp.headers().get(axum::http::header::ALLOW).cloned() {
            fixed.headers_mut().insert(axum::http::header::ALLOW, v);
        }
        resp = fixed;
    } else if status.is_client_error()
        && resp
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain"))
    {
        // An extractor's rejection (e.g. a path segment that is not UTF-8) answers plain text:
        // give the client the JSON envelope with the same status and message.
        let bytes = axum::body::to_bytes(std::mem::take(resp.body_mut()), 64 << 10)
            .await
            .unwrap_or_default();
        let msg = String::from_utf8_lossy(&bytes).into_owned();
        let body = json!({"status": {"error": msg}, "time": started.elapsed().as_secs_f64()});
        resp = (status, axum::Json(body)).into_response();
    }
    if matches!(status.as_u16(), 400 | 404 | 405 | 501)
        && let Some(left_out) = REFUSED_LOG.take(std::time::Instant::now())
    {
        tracing::warn!(
            status = status.as_u16(),
            method = %method,
            route = %route,
            path = %uri.path(),
            left_out,
            "request refused"
        );
    }
    let code = status_label(status);
    metrics::counter!("strata_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => code.clone()).increment(1);
    if status.is_client_error() || status.is_server_error() {
        metrics::counter!("strata_http_errors_total", "route" => route.clone(), "method" => method.clone(), "status" => code).increment(1);
    }
    metrics::histogram!("strata_http_request_duration_seconds", "route" => route, "method" => method).record(started.elapsed().as_secs_f64());
    resp
}

/// A `wait` query parameter that is not `true` or `false` (the first such value).
fn bad_wait(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .find(|(k, v)| *k == "wait" && !matches!(*v, "true" | "false"))
        .map(|(_, v)| v.to_string())
}

/// Refused requests (client mistakes) are logged at `warn`, at most [`LogBudget::PER_SECOND`]
/// lines a second: a client looping on a bad request, or a fuzzer, must not flood the log.
/// Each line's `left_out` counts the refusals not logged since the previous line (the
/// `strata_http_errors_total` metric counts every one).
static REFUSED_LOG: LogBudget = LogBudget::new();

/// A per-second budget of log lines.
pub(crate) struct LogBudget(std::sync::Mutex<Option<(std::time::Instant, u32, u64)>>);

impl LogBudget {
    pub(crate) const PER_SECOND: u32 = 10;

    pub(crate) const fn new() -> LogBudget {
        LogBudget(std::sync::Mutex::new(None))
    }

    /// `Some(left out before)` if a line may be logged at `now`, else `None` (counted).
    pub(crate) fn take(&self, now: std::time::Instant) -> Option<u64> {
        let mut s = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (start, used, left_out) = s.get_or_insert((now, 0, 0));
        if now.duration_since(*start) >= std::time::Duration::from_secs(1) {
            (*start, *used) = (now, 0);
        }
        if *used < Self::PER_SECOND {
            *used += 1;
            Some(std::mem::take(left_out))
        } else {
            *left_out += 1;
            None
        }
    }
}

async fn live() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// Readiness: 200 while writes are accepted, 503 (with the reason) when they are refused —
/// a failed WAL fsync, a failed manifest write, shutting down. Failing background jobs are
/// listed either way: they degrade the node without making it refuse traffic.
async fn ready(State(st): State<AppState>) -> Response {
    let h = st.engine.health();
    // The last probe of the cold store (the mover thread probes it; the first call may probe).
    let engine = st.engine.clone();
    let cold = tokio::task::spawn_blocking(move || engine.cold_store_status())
        .await
        .unwrap_or(None);
    let cold_store = crate::tiers::cold_store_json(&cold);
    let io = crate::tiers::io_json(&crate::tiers::io_status(&st.engine));
    let failing: Vec<serde_json::Value> = h
        .failing
        .iter()
        .map(|f| {
            json!({"job": f.job, "tenant": f.tenant, "collection": f.collection,
                   "failures": f.failures, "panicked": f.panicked, "error": f.last_error,
                   "retry_in_ms": f.retry_in_ms})
        })
        .collect();
    let maintenance = if failing.is_empty() && !matches!(cold, Some(Err(_))) {
        "ok"
    } else {
        "degraded"
    };
    if h.writable {
        axum::Json(json!({"status": "ok", "recovered": true, "writable": true,
                          "maintenance": maintenance, "failing_jobs": failing,
                          "cold_store": cold_store, "io": io}))
        .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                json!({"status": "unavailable", "recovered": true, "writable": false,
                              "reason": h.reason, "maintenance": maintenance,
                              "failing_jobs": failing, "cold_store": cold_store,
                              "io": io}),
            ),
        )
            .into_response()
    }
}

/// `r` answering each of [`UNSUPPORTED_ROUTES`] with its 501.
fn with_unsupported_routes(mut r: Router<AppState>) -> Router<AppState> {
    let mut by_path: Vec<(&str, Vec<(&str, &str)>)> = Vec::new();
    for (m, p, what) in UNSUPPORTED_ROUTES {
        match by_path.iter_mut().find(|(q, _)| q == p) {
            Some((_, ms)) => ms.push((m, what)),
            None => by_path.push((p, vec![(m, what)])),
        }
    }
    for (path, methods) in by_path {
        let mut mr = axum::routing::MethodRouter::new();
        for (m, what) in methods {
            let filter = match m {
                "GET" => axum::routing::MethodFilter::GET,
                "POST" => axum::routing::MethodFilter::POST,
                "PUT" => axum::routing::MethodFilter::PUT,
                "PATCH" => axum::routing::MethodFilter::PATCH,
                _ => axum::routing::MethodFilter::DELETE,
            };
            let msg = format!("{what} ({m} {path})");
            mr = mr.on(filter, move || {
                let msg = msg.clone();
                async move { ApiError::unsupported(&msg) }
            });
        }
        r = r.route(path, mr);
    }
    r
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    ))
}

/// Every route, with its method and path, as `(method, path)`: the OpenAPI document is checked
/// against this list.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/health"),
    ("GET", "/health/ready"),
    ("GET", "/healthz"),
    ("GET", "/livez"),
    ("GET", "/readyz"),
    ("GET", "/openapi.json"),
    ("GET", "/collections"),
    ("POST", "/collections/aliases"),
    ("GET", "/aliases"),
    ("GET", "/collections/{collection_name}/aliases"),
    ("PUT", "/collections/{collection_name}"),
    ("GET", "/collections/{collection_name}"),
    ("DELETE", "/collections/{collection_name}"),
    ("PATCH", "/collections/{collection_name}"),
    ("GET", "/collections/{collection_name}/exists"),
    ("PUT", "/collections/{collection_name}/index"),
    (
        "DELETE",
        "/collections/{collection_name}/index/{field_name}",
    ),
    ("PUT", "/collections/{collection_name}/points"),
    ("POST", "/collections/{collection_name}/points"),
    ("GET", "/collections/{collection_name}/points/{id}"),
    ("POST", "/collections/{collection_name}/points/delete"),
    ("POST", "/collections/{collection_name}/points/payload"),
    ("PUT", "/collections/{collection_name}/points/payload"),
    (
        "POST",
        "/collections/{collection_name}/points/payload/delete",
    ),
    (
        "POST",
        "/collections/{collection_name}/points/payload/clear",
    ),
    ("PUT", "/collections/{collection_name}/points/vectors"),
    (
        "POST",
        "/collections/{collection_name}/points/vectors/delete",
    ),
    ("POST", "/collections/{collection_name}/points/batch"),
    ("POST", "/collections/{collection_name}/points/query"),
    ("POST", "/collections/{collection_name}/points/query/batch"),
    ("POST", "/collections/{collection_name}/points/query/groups"),
    (
        "POST",
        "/collections/{collection_name}/points/search/groups",
    ),
    ("POST", "/collections/{collection_name}/facet"),
    ("POST", "/collections/{collection_name}/points/search"),
    ("POST", "/collections/{collection_name}/points/search/batch"),
    ("POST", "/collections/{collection_name}/points/scroll"),
    ("POST", "/collections/{collection_name}/points/count"),
    ("POST", "/collections/{collection_name}/snapshots"),
    ("GET", "/collections/{collection_name}/snapshots"),
    ("PUT", "/collections/{collection_name}/snapshots/recover"),
    (
        "GET",
        "/collections/{collection_name}/snapshots/{snapshot_name}",
    ),
    (
        "DELETE",
        "/collections/{collection_name}/snapshots/{snapshot_name}",
    ),
    ("GET", "/v1/tiers"),
    ("PUT", "/v1/actor_types/{actor_type}/tier"),
    ("GET", "/v1/actors/{actor_type}"),
    ("GET", "/v1/actors/{actor_type}/{actor_id}"),
    ("PUT", "/v1/actors/{actor_type}/{actor_id}"),
    ("DELETE", "/v1/actors/{actor_type}/{actor_id}"),
    ("POST", "/v1/actors/{actor_type}/{actor_id}/transaction"),
    ("GET", "/v1/actors/{actor_type}/{actor_id}/{state}"),
    ("PUT", "/v1/actors/{actor_type}/{actor_id}/{state}"),
    ("DELETE", "/v1/actors/{actor_type}/{actor_id}/{state}"),
    ("PUT", "/v1/collections/{collection_name}/tier"),
];

/// Routes of Qdrant's REST API that Strata does not serve, with the feature each belongs to:
/// they answer a JSON 501 naming the feature and the route (an unknown path is a 404). Listed in
/// `docs/api.md`.
pub const UNSUPPORTED_ROUTES: &[(&str, &str, &str)] = &[
    (
        "GET",
        "/telemetry",
        "telemetry (see /metrics on the metrics port and /readyz)",
    ),
    (
        "GET",
        "/metrics",
        "metrics on the API port (they are on the metrics port, --metrics-port)",
    ),
    ("GET", "/issues", "issues"),
    ("DELETE", "/issues", "issues"),
    ("GET", "/cluster", "cluster mode"),
    ("GET", "/cluster/telemetry", "cluster mode"),
    ("POST", "/cluster/recover", "cluster mode"),
    ("DELETE", "/cluster/peer/{peer_id}", "cluster mode"),
    ("GET", "/quotas", "quotas"),
    ("PUT", "/quotas", "quotas"),
    (
        "GET",
        "/collections/{collection_name}/cluster",
        "cluster mode",
    ),
    (
        "POST",
        "/collections/{collection_name}/cluster",
        "cluster mode",
    ),
    (
        "PUT",
        "/collections/{collection_name}/shards",
        "custom sharding",
    ),
    (
        "GET",
        "/collections/{collection_name}/shards",
        "custom sharding",
    ),
    (
        "POST",
        "/collections/{collection_name}/shards/delete",
        "custom sharding",
    ),
    (
        "PUT",
        "/collections/{collection_name}/vectors/{vector_name}",
        "adding a named vector to an existing collection",
    ),
    (
        "DELETE",
        "/collections/{collection_name}/vectors/{vector_name}",
        "removing a named vector from a collection",
    ),
    (
        "GET",
        "/collections/{collection_name}/optimizations",
        "optimization progress",
    ),
    (
        "POST",
        "/collections/{collection_name}/snapshots/upload",
        "snapshot upload (multipart; use PUT .../snapshots/recover with a location)",
    ),
    (
        "GET",
        "/snapshots",
        "full-storage snapshots (collection snapshots are served)",
    ),
    (
        "POST",
        "/snapshots",
        "full-storage snapshots (collection snapshots are served)",
    ),
    (
        "GET",
        "/snapshots/{snapshot_name}",
        "full-storage snapshots (collection snapshots are served)",
    ),
    (
        "DELETE",
        "/snapshots/{snapshot_name}",
        "full-storage snapshots (collection snapshots are served)",
    ),
    (
        "GET",
        "/collections/{collection_name}/shards/{shard_id}/snapshot",
        "shard snapshots",
    ),
    (
        "GET",
        "/collections/{collection_name}/shards/{shard_id}/snapshots",
        "shard snapshots",
    ),
    (
        "POST",
        "/collections/{collection_name}/shards/{shard_id}/snapshots",
        "shard snapshots",
    ),
    (
        "POST",
        "/collections/{collection_name}/shards/{shard_id}/snapshots/upload",
        "shard snapshots",
    ),
    (
        "PUT",
        "/collections/{collection_name}/shards/{shard_id}/snapshots/recover",
        "shard snapshots",
    ),
    (
        "GET",
        "/collections/{collection_name}/shards/{shard_id}/snapshots/{snapshot_name}",
        "shard snapshots",
    ),
    (
        "DELETE",
        "/collections/{collection_name}/shards/{shard_id}/snapshots/{snapshot_name}",
        "shard snapshots",
    ),
    (
        "POST",
        "/collections/{collection_name}/points/search/matrix/pairs",
        "the distance matrix API",
    ),
    (
        "POST",
        "/collections/{collection_name}/points/search/matrix/offsets",
        "the distance matrix API",
    ),
];

/// The HTTP router. Request bodies must arrive within the request timeout; the engine work of
/// a request is bounded by its [`ReqDeadline`].
pub fn router(st: AppState, max_body_bytes: usize) -> Router {
    let body_timeout = st.timeout;
    use handlers as h;
    let c = "/collections/{collection_name}";
    let routes = Router::new()
        .route("/", get(h::root))
        .route("/health", get(live))
        .route("/healthz", get(live))
        .route("/livez", get(live))
        .route("/health/ready", get(ready))
        .route("/readyz", get(ready))
        .route("/openapi.json", get(crate::openapi::serve))
        .route("/collections", get(h::list_collections))
        .route("/collections/aliases", post(aliases::update_aliases))
        .route("/aliases", get(aliases::list_aliases))
        .route(&format!("{c}/aliases"), get(aliases::collection_aliases))
        .route(
            c,
            get(h::get_collection)
                .put(h::create_collection)
                .patch(h::update_collection)
                .delete(h::delete_collection),
        )
        .route(&format!("{c}/exists"), get(h::collection_exists))
        .route(&format!("{c}/index"), axum::routing::put(h::create_index))
        .route(
            &format!("{c}/index/{{field_name}}"),
            axum::routing::delete(h::delete_index),
        )
        .route(
            &format!("{c}/points"),
            axum::routing::put(h::upsert_points).post(h::retrieve_points),
        )
        .route(&format!("{c}/points/{{id}}"), get(h::get_point))
        .route(&format!("{c}/points/delete"), post(updates::delete_points))
        .route(
            &format!("{c}/points/payload"),
            post(updates::set_payload).put(updates::overwrite_payload),
        )
        .route(
            &format!("{c}/points/payload/delete"),
            post(updates::delete_payload),
        )
        .route(
            &format!("{c}/points/payload/clear"),
            post(updates::clear_payload),
        )
        .route(
            &format!("{c}/points/vectors"),
            axum::routing::put(updates::update_vectors),
        )
        .route(
            &format!("{c}/points/vectors/delete"),
            post(updates::delete_vectors),
        )
        .route(&format!("{c}/points/batch"), post(updates::batch))
        .route(&format!("{c}/points/query"), post(h::query_points))
        .route(&format!("{c}/points/query/batch"), post(h::query_batch))
        .route(
            &format!("{c}/points/query/groups"),
            post(aggregate::query_groups),
        )
        .route(
            &format!("{c}/points/search/groups"),
            post(aggregate::search_groups),
        )
        .route(&format!("{c}/facet"), post(aggregate::facet))
        .route(&format!("{c}/points/search"), post(h::search_points))
        .route(&format!("{c}/points/search/batch"), post(h::search_batch))
        .route(&format!("{c}/points/scroll"), post(h::scroll_points))
        .route(&format!("{c}/points/count"), post(h::count_points))
        .route(
            &format!("{c}/snapshots"),
            post(snapshots::create).get(snapshots::list),
        )
        .route(
            &format!("{c}/snapshots/recover"),
            axum::routing::put(snapshots::recover),
        )
        .route(
            &format!("{c}/snapshots/{{snapshot_name}}"),
            get(snapshots::download).delete(snapshots::delete),
        )
        .route("/v1/tiers", get(h::get_tiers))
        .route("/v1/actors/{actor_type}", get(actors::list))
        .route(
            "/v1/actors/{actor_type}/{actor_id}",
            get(actors::get_default)
                .put(actors::put_default)
                .delete(actors::delete_default),
        )
        .route(
            "/v1/actors/{actor_type}/{actor_id}/transaction",
            post(actors::transaction),
        )
        .route(
            "/v1/actors/{actor_type}/{actor_id}/{state}",
            get(actors::get_state)
                .put(actors::put_state)
                .delete(actors::delete_state),
        )
        .route(
            "/v1/collections/{collection_name}/tier",
            axum::routing::put(h::set_tier),
        )
        .route(
            "/v1/actor_types/{actor_type}/tier",
            axum::routing::put(h::set_actor_tier),
        );
    with_unsupported_routes(routes)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            body_timeout,
        ))
        .layer(axum::middleware::from_fn(track))
        .with_state(st)
}

#[cfg(test)]
mod tests {
    use super::LogBudget;
    use std::time::{Duration, Instant};

    #[test]
    fn wait_is_true_or_false() {
        use super::bad_wait;
        for ok in [
            None,
            Some(""),
            Some("wait=true"),
            Some("a=1&wait=false"),
            Some("waiting=x"),
        ] {
            assert_eq!(bad_wait(ok), None, "{ok:?}");
        }
        assert_eq!(bad_wait(Some("wait=null&wait=null")), Some("null".into()));
        assert_eq!(bad_wait(Some("x=1&wait")), Some(String::new()));
        assert_eq!(bad_wait(Some("wait=1")), Some("1".into()));
    }

    #[test]
    fn refused_requests_log_at_most_a_budget_a_second_and_count_the_rest() {
        let b = LogBudget::new();
        let t0 = Instant::now();
        for _ in 0..LogBudget::PER_SECOND {
            assert_eq!(b.take(t0), Some(0));
        }
        for i in 0..25 {
            assert_eq!(b.take(t0 + Duration::from_millis(10 * i)), None);
        }
        // A second later: logged again, saying how many were left out.
        assert_eq!(b.take(t0 + Duration::from_secs(1)), Some(25));
        assert_eq!(b.take(t0 + Duration::from_secs(1)), Some(0));
    }
}
