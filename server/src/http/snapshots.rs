//! Collection snapshots (Qdrant's routes): create, list, download, delete, and recover from a
//! location — `file://` inside the data directory's `snapshots/{tenant}/` (as Qdrant confines it
//! to its snapshots directory) or `http://` (another node's download URL; no credentials are
//! sent; the transfer is bounded by the request timeout and 4 GiB).
//! Storage and restore are the engine's (`Engine::create_snapshot`, `recover_snapshot`).

use std::collections::HashMap;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use strata_engine::SnapshotInfo;

use super::handlers::{ApiResult, blocking, ok};
use super::parse;
use super::{AppState, Caller, ReqDeadline};
use crate::error::{ApiError, Kind};

/// Largest snapshot read from a location (the archive is held in memory while it is checked).
const MAX_FETCH_BYTES: usize = 4 << 30;

fn description(s: &SnapshotInfo) -> Value {
    let at = chrono::DateTime::from_timestamp_millis(s.created_ms as i64)
        .unwrap_or_default()
        .naive_utc()
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    json!({"name": s.name, "creation_time": at, "size": s.size, "checksum": s.checksum})
}

/// `POST /collections/{c}/snapshots` (access m).
pub(crate) async fn create(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    Path(c): Path<String>,
    _q: Query<HashMap<String, String>>,
) -> ApiResult {
    let started = Instant::now();
    st.manager(&caller)?;
    st.readable(&caller, &c, &dl)?;
    let (engine, tenant) = (st.engine.clone(), caller.0.tenant.clone());
    let info =
        blocking(move || engine.create_snapshot(&tenant, &c).map_err(ApiError::from)).await?;
    ok(started, description(&info))
}

/// `GET /collections/{c}/snapshots`.
pub(crate) async fn list(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    Path(c): Path<String>,
) -> ApiResult {
    let started = Instant::now();
    st.readable(&caller, &c, &dl)?;
    let (engine, tenant) = (st.engine.clone(), caller.0.tenant.clone());
    let all = blocking(move || engine.list_snapshots(&tenant, &c).map_err(ApiError::from)).await?;
    ok(started, Value::Array(all.iter().map(description).collect()))
}

/// `GET /collections/{c}/snapshots/{name}`: the archive.
pub(crate) async fn download(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    Path((c, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    st.readable(&caller, &c, &dl)?;
    let (engine, tenant) = (st.engine.clone(), caller.0.tenant.clone());
    let file = name.clone();
    let blob = blocking(move || {
        engine
            .snapshot_bytes(&tenant, &c, &file)
            .map_err(ApiError::from)
    })
    .await?;
    let bytes = Bytes::copy_from_slice(blob.as_bytes());
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from(bytes),
    )
        .into_response())
}

/// `DELETE /collections/{c}/snapshots/{name}` (access m): 404 when absent.
pub(crate) async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    Path((c, name)): Path<(String, String)>,
    _q: Query<HashMap<String, String>>,
) -> ApiResult {
    let started = Instant::now();
    st.manager(&caller)?;
    st.readable(&caller, &c, &dl)?;
    let (engine, tenant) = (st.engine.clone(), caller.0.tenant.clone());
    let file = name.clone();
    let found = blocking(move || {
        engine
            .delete_snapshot(&tenant, &c, &file)
            .map_err(ApiError::from)
    })
    .await?;
    match found {
        true => ok(started, json!(true)),
        false => Err(ApiError::not_found(format!("Snapshot {name} not found"))),
    }
}

/// The bytes at a recover `location`. A `file://` location must lie in the caller's tenant's
/// part of the snapshots directory (`snapshots/{tenant}/`): one tenant cannot restore another's
/// snapshot, nor any other file of the server.
async fn fetch(st: &AppState, tenant: &str, location: &str) -> Result<Vec<u8>, ApiError> {
    if let Some(path) = location.strip_prefix("file://") {
        let root = st.data_dir.join("snapshots").join(tenant);
        let (root, path) = (
            root.canonicalize(),
            std::path::Path::new(path).canonicalize(),
        );
        let path = match (root, path) {
            (Ok(r), Ok(p)) if p.starts_with(&r) => p,
            (_, Err(e)) => {
                return Err(ApiError::not_found(format!("location: {location}: {e}")));
            }
            _ => {
                return Err(ApiError::new(
                    Kind::PermissionDenied,
                    format!(
                        "location: a file:// snapshot must lie in {}",
                        st.data_dir.join("snapshots").join(tenant).display()
                    ),
                ));
            }
        };
        let len = tokio::fs::metadata(&path)
            .await
            .map_err(|e| ApiError::invalid(format!("location: reading {}: {e}", path.display())))?
            .len();
        if len > MAX_FETCH_BYTES as u64 {
            return Err(ApiError::invalid(format!(
                "location: the snapshot is {len} bytes, more than the {MAX_FETCH_BYTES} accepted"
            )));
        }
        return tokio::fs::read(&path)
            .await
            .map_err(|e| ApiError::invalid(format!("location: reading {}: {e}", path.display())));
    }
    if location.starts_with("https://") {
        return Err(ApiError::unsupported(
            "location: https:// (use http:// or file://)",
        ));
    }
    if !location.starts_with("http://") {
        return Err(ApiError::invalid(format!(
            "location: expected a file:// or http:// URL, got {location:?}"
        )));
    }
    let uri: hyper::Uri = location
        .parse()
        .map_err(|e| ApiError::invalid(format!("location: {e}")))?;
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let unavailable = |what: String| {
        ApiError::new(
            Kind::Engine(strata_engine::ErrorKind::Unavailable),
            format!("location: {what}"),
        )
    };
    // The whole transfer counts against the request's timeout.
    let timed_out = || unavailable(format!("fetching {location}: timed out"));
    let resp = tokio::time::timeout(st.timeout, client.get(uri))
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| match e.is_connect() {
            // No such host, or nothing listening: the location names nothing fetchable, as a
            // 404 there would.
            true => ApiError::invalid(format!("location: cannot connect to {location}: {e}")),
            false => unavailable(format!("fetching {location}: {e}")),
        })?;
    if resp.status().is_client_error() {
        // The location names nothing fetchable (404, 403, ...): the request is at fault.
        return Err(ApiError::invalid(format!(
            "location: fetching {location}: HTTP {}",
            resp.status()
        )));
    }
    if !resp.status().is_success() {
        return Err(unavailable(format!(
            "fetching {location}: HTTP {}",
            resp.status()
        )));
    }
    use http_body_util::BodyExt;
    let body = http_body_util::Limited::new(resp.into_body(), MAX_FETCH_BYTES).collect();
    let body = tokio::time::timeout(st.timeout, body)
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| unavailable(format!("fetching {location}: {e}")))?;
    Ok(body.to_bytes().to_vec())
}

/// `PUT /collections/{c}/snapshots/recover` (access m): `{"location", "checksum"?,
/// "priority"?, "api_key"?}` → the collection is created from the snapshot, or replaced by it.
pub(crate) async fn recover(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    Path(c): Path<String>,
    _q: Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult {
    let started = Instant::now();
    st.manager(&caller)?;
    // The name first (as every route checks it): a bad one is a 400 whatever the body says.
    strata_engine::validate_name("collection name", &c).map_err(ApiError::from)?;
    let target = st.target(&caller, &c);
    if !caller.0.can_write(&target) {
        return Err(ApiError::forbidden(format!(
            "the token does not grant write access to collection {target:?}"
        )));
    }
    let b = parse::body(&body)?;
    parse::check_fields(
        &b,
        "",
        &["location", "checksum", "priority", "api_key"],
        &[],
    )?;
    let location = match parse::get(&b, "location") {
        Some(Value::String(l)) => l.clone(),
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "location: expected a URL, got {v}"
            )));
        }
        None => return Err(ApiError::invalid("location: missing")),
    };
    let checksum = match parse::get(&b, "checksum") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "checksum: expected a SHA-256 hex string, got {v}"
            )));
        }
        None => None,
    };
    // Qdrant's replica priorities (one node: no effect) and a key for the remote location
    // (not sent: Strata fetches without credentials), typed all the same.
    match parse::get(&b, "priority") {
        None => {}
        Some(Value::String(p)) if ["replica", "snapshot", "no_sync"].contains(&p.as_str()) => {}
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "priority: expected \"replica\", \"snapshot\" or \"no_sync\", got {v}"
            )));
        }
    }
    match parse::get(&b, "api_key") {
        None | Some(Value::String(_)) => {}
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "api_key: expected a string, got {v}"
            )));
        }
    }
    let archive = fetch(&st, &caller.0.tenant, &location).await?;
    let (engine, tenant, deadline) = (st.engine.clone(), caller.0.tenant.clone(), dl.get());
    blocking(move || {
        deadline.check("recover snapshot")?;
        engine
            .recover_snapshot(&tenant, &target, &archive, checksum.as_deref())
            .map_err(ApiError::from)
    })
    .await?;
    ok(started, json!(true))
}
