//! The HTTP API: a Qdrant-compatible REST subset, health probes and the OpenAPI document.
//!
//! ```text
//! request ─▶ metrics middleware ─▶ timeout ─▶ body limit ─▶ route
//!         ─▶ Caller extractor (JWT: Bearer or api-key) ─▶ handler: parse, authorize,
//!            engine call on the blocking pool, envelope
//! ```

pub(crate) mod handlers;
pub(crate) mod parse;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use strata_engine::Engine;

use crate::auth::{Authenticator, Principal};
use crate::error::{ApiError, Kind};

/// Shared by every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    pub(crate) engine: Arc<Engine>,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) max_batch_points: usize,
    pub(crate) max_limit: usize,
    pub(crate) max_segment_rows: u64,
}

impl AppState {
    /// State over an open engine and an authenticator.
    pub fn new(
        engine: Arc<Engine>,
        auth: Arc<Authenticator>,
        max_batch_points: usize,
        max_limit: usize,
    ) -> AppState {
        AppState {
            engine,
            auth,
            max_batch_points,
            max_limit,
            max_segment_rows: 1_000_000,
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

/// The token of a request: `Authorization: Bearer …` or Qdrant's `api-key` header.
pub(crate) fn token_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            return Some(v[7..].trim());
        }
    }
    headers
        .get("api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Caller, ApiError> {
        let token = token_of(&parts.headers).ok_or_else(|| {
            ApiError::new(
                Kind::Unauthenticated,
                "missing token: send Authorization: Bearer <JWT> (or the api-key header)",
            )
        })?;
        st.auth
            .verify(token)
            .map(Caller)
            .map_err(|e| ApiError::new(Kind::Unauthenticated, e.0))
    }
}

async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().as_str().to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status();
    let code = status.as_u16().to_string();
    metrics::counter!("strata_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => code.clone()).increment(1);
    if status.is_client_error() || status.is_server_error() {
        metrics::counter!("strata_http_errors_total", "route" => route.clone(), "method" => method.clone(), "status" => code).increment(1);
    }
    metrics::histogram!("strata_http_request_duration_seconds", "route" => route, "method" => method).record(started.elapsed().as_secs_f64());
    resp
}

async fn live() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

async fn ready(State(st): State<AppState>) -> Response {
    if st.engine.is_writable() {
        axum::Json(json!({"status": "ok", "recovered": true, "wal_writable": true})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "unavailable", "wal_writable": false})),
        )
            .into_response()
    }
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
    ("PUT", "/collections/{collection_name}"),
    ("GET", "/collections/{collection_name}"),
    ("DELETE", "/collections/{collection_name}"),
    ("GET", "/collections/{collection_name}/exists"),
    ("PUT", "/collections/{collection_name}/points"),
    ("POST", "/collections/{collection_name}/points"),
    ("GET", "/collections/{collection_name}/points/{id}"),
    ("POST", "/collections/{collection_name}/points/delete"),
    ("POST", "/collections/{collection_name}/points/payload"),
    ("POST", "/collections/{collection_name}/points/query"),
    ("POST", "/collections/{collection_name}/points/query/batch"),
    ("POST", "/collections/{collection_name}/points/search"),
    ("POST", "/collections/{collection_name}/points/search/batch"),
    ("POST", "/collections/{collection_name}/points/scroll"),
    ("POST", "/collections/{collection_name}/points/count"),
];

/// The HTTP router.
pub fn router(st: AppState, max_body_bytes: usize, timeout: std::time::Duration) -> Router {
    use handlers as h;
    let c = "/collections/{collection_name}";
    Router::new()
        .route("/", get(h::root))
        .route("/health", get(live))
        .route("/healthz", get(live))
        .route("/livez", get(live))
        .route("/health/ready", get(ready))
        .route("/readyz", get(ready))
        .route("/openapi.json", get(crate::openapi::serve))
        .route("/collections", get(h::list_collections))
        .route(
            c,
            get(h::get_collection)
                .put(h::create_collection)
                .delete(h::delete_collection),
        )
        .route(&format!("{c}/exists"), get(h::collection_exists))
        .route(
            &format!("{c}/points"),
            axum::routing::put(h::upsert_points).post(h::retrieve_points),
        )
        .route(&format!("{c}/points/{{id}}"), get(h::get_point))
        .route(&format!("{c}/points/delete"), post(h::delete_points))
        .route(&format!("{c}/points/payload"), post(h::set_payload))
        .route(&format!("{c}/points/query"), post(h::query_points))
        .route(&format!("{c}/points/query/batch"), post(h::query_batch))
        .route(&format!("{c}/points/search"), post(h::search_points))
        .route(&format!("{c}/points/search/batch"), post(h::search_batch))
        .route(&format!("{c}/points/scroll"), post(h::scroll_points))
        .route(&format!("{c}/points/count"), post(h::count_points))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(axum::middleware::from_fn(track))
        .with_state(st)
}
