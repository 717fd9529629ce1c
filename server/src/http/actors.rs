//! Actor state over HTTP (`docs/actors.md`, `docs/api.md`):
//!
//! ```text
//! GET/PUT/DELETE /v1/actors/{type}/{id}[/{state}]   ETag = "<version>"; If-Match, If-None-Match: *
//! POST /v1/actors/{type}/{id}/transaction          several states of one actor, all or nothing
//! GET  /v1/actors/{type}?after=&limit=             actor ids with a live state, in order
//! ```
//! A failed condition answers 412 with the state's current `ETag` (none when it is absent).

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use strata_engine::{ActorCondition, ActorHandle, ActorWrite};

use super::handlers::{blocking, ok};
use super::parse;
use super::{AppState, Caller, ReqDeadline};
use crate::error::ApiError;

/// The default state name (`/v1/actors/{type}/{id}` without a state).
const DEFAULT_STATE: &str = "state";
/// Longest TTL: ten years.
const MAX_TTL_SECONDS: u64 = 10 * 365 * 86_400;

/// The store for a read: `None` when the type has never been written (reads create nothing).
fn existing(st: &AppState, caller: &Caller, ty: &str) -> Result<Option<ActorHandle>, ApiError> {
    if !caller.0.can_read_actors(ty) {
        return Err(ApiError::forbidden(format!(
            "the token has no r access to actor type {ty:?} (claim `actors`)"
        )));
    }
    Ok(st.engine.actors_existing(&caller.0.tenant, ty)?)
}

fn store(st: &AppState, caller: &Caller, ty: &str, write: bool) -> Result<ActorHandle, ApiError> {
    let p = &caller.0;
    let allowed = match write {
        true => p.can_write_actors(ty),
        false => p.can_read_actors(ty),
    };
    if !allowed {
        return Err(ApiError::forbidden(format!(
            "the token has no {} access to actor type {ty:?} (claim `actors`)",
            if write { "rw" } else { "r" }
        )));
    }
    Ok(st.engine.actors(&p.tenant, ty)?)
}

fn etag(v: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{v}\"")).expect("digits are a valid header")
}

/// The version a transaction's `if_match` string names (`"12"` or `12`).
fn parse_etag(v: &str, at: &str) -> Result<u64, ApiError> {
    let t = v.trim().trim_matches('"');
    t.parse::<u64>().map_err(|_| {
        ApiError::invalid(format!(
            "{at}: {v:?} is not an ETag of this server (a quoted version, e.g. \"12\")"
        ))
    })
}

/// One entity tag of an `If-Match` / `If-None-Match` list (RFC 9110 §8.8.3).
#[derive(Debug, PartialEq, Eq)]
enum Tag {
    /// `*`.
    Any,
    /// `"…"` or `W/"…"`: the version when it is one of this server's (digits), and whether weak.
    Tag { version: Option<u64>, weak: bool },
}

/// Parses an entity-tag list (`*`, or `"a", W/"b"`); malformed → 400 naming `at`.
fn tags(v: &str, at: &str) -> Result<Vec<Tag>, ApiError> {
    let bad = || {
        ApiError::invalid(format!(
            "{at}: {v:?} is not * or a list of entity tags (e.g. \"12\")"
        ))
    };
    if v.trim() == "*" {
        return Ok(vec![Tag::Any]);
    }
    let mut out = Vec::new();
    let mut rest = v.trim();
    while !rest.is_empty() {
        let weak = rest.starts_with("W/");
        let t = rest.strip_prefix("W/").unwrap_or(rest);
        let body = t.strip_prefix('"').ok_or_else(bad)?;
        let end = body.find('"').ok_or_else(bad)?;
        let opaque = &body[..end];
        if !opaque
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b))
        {
            return Err(bad());
        }
        let version = (!opaque.is_empty() && opaque.bytes().all(|b| b.is_ascii_digit()))
            .then(|| opaque.parse::<u64>().ok())
            .flatten();
        out.push(Tag::Tag { version, weak });
        rest = body[end + 1..].trim_start();
        match rest.strip_prefix(',') {
            Some(r) => rest = r.trim_start(),
            None if rest.is_empty() => {}
            None => return Err(bad()),
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// The write condition an `If-Match` list stands for: `*` → the state exists; else strong
/// comparison — weak tags and tags of no version of this server never match (version 0, which
/// no write has: LSNs start at 1, so the engine answers 412 with the current ETag).
fn if_match(v: &str) -> Result<ActorCondition, ApiError> {
    let t = tags(v, "If-Match")?;
    if t.contains(&Tag::Any) {
        return Ok(ActorCondition::IfExists);
    }
    let mut versions: Vec<u64> = t
        .iter()
        .filter_map(|t| match t {
            Tag::Tag {
                version: Some(v),
                weak: false,
            } => Some(*v),
            _ => None,
        })
        .collect();
    versions.dedup();
    match versions.as_slice() {
        [] => Ok(ActorCondition::IfMatch(0)),
        [one] => Ok(ActorCondition::IfMatch(*one)),
        _ => Err(ApiError::invalid(format!(
            "If-Match: {v:?} names several versions; a write can be conditioned on one"
        ))),
    }
}

fn condition(h: &HeaderMap) -> Result<ActorCondition, ApiError> {
    let get = |name: header::HeaderName| -> Result<Option<&str>, ApiError> {
        h.get(&name)
            .map(|v| {
                v.to_str()
                    .map_err(|_| ApiError::invalid(format!("{name}: not visible ASCII")))
            })
            .transpose()
    };
    match (get(header::IF_MATCH)?, get(header::IF_NONE_MATCH)?) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "If-Match and If-None-Match: give one of them",
        )),
        (Some(m), None) => if_match(m),
        (None, Some(v)) if v.trim() == "*" => Ok(ActorCondition::IfNoneMatch),
        (None, Some(v)) => Err(ApiError::invalid(format!(
            "If-None-Match: only * is supported on writes (create only), got {v:?}"
        ))),
        (None, None) => Ok(ActorCondition::None),
    }
}

/// TTL in seconds from the `ttl` query parameter or the `strata-ttl` header, as milliseconds.
fn ttl(q: &HashMap<String, String>, h: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let raw = match (q.get("ttl"), h.get("strata-ttl")) {
        (Some(v), _) => Some(v.clone()),
        (None, Some(v)) => Some(
            v.to_str()
                .map_err(|_| ApiError::invalid("strata-ttl: not visible ASCII"))?
                .to_string(),
        ),
        (None, None) => None,
    };
    raw.map(|v| match v.trim().parse::<u64>() {
        Ok(s) if (1..=MAX_TTL_SECONDS).contains(&s) => Ok(s * 1000),
        _ => Err(ApiError::invalid(format!(
            "ttl: {v:?} is not a number of seconds in 1..={MAX_TTL_SECONDS}"
        ))),
    })
    .transpose()
}

/// A failed condition → 412 with the current ETag; anything else as usual.
fn answer(e: strata_engine::Error) -> Response {
    let current = e.conflict_version();
    let mut r = ApiError::from(e).into_response();
    if let Some(Some(v)) = current {
        r.headers_mut().insert(header::ETAG, etag(v));
    }
    r
}

/// Writes at most this many value bytes take the async path (it keeps a copy of the writes
/// for the blocking fallback).
const ASYNC_MAX_BYTES: usize = 64 << 10;

/// Commits `writes` to actor `actor`: without holding a thread when the engine can
/// (`ActorHandle::commit_async`: conditions answered from RAM, one fsync shared by every write
/// waiting), else on the blocking pool. The outer error is the pool's, the inner the engine's.
pub(crate) async fn commit(
    a: ActorHandle,
    actor: String,
    writes: Vec<ActorWrite>,
    report: bool,
) -> Result<strata_engine::Result<strata_engine::ActorCommit>, ApiError> {
    let bytes: usize = writes
        .iter()
        .map(|w| match w {
            ActorWrite::Put { value, .. } => value.len(),
            ActorWrite::Delete { .. } => 0,
        })
        .sum();
    if bytes <= ASYNC_MAX_BYTES
        && let Some(f) = a.commit_async(&actor, writes.clone(), report)
    {
        return Ok(f.await);
    }
    blocking(move || Ok(a.commit(&actor, writes, report))).await
}

fn written(started: Instant, version: Option<u64>, status: StatusCode) -> Response {
    let mut r = (status, ok(started, json!({ "version": version }))).into_response();
    if let Some(v) = version {
        r.headers_mut().insert(header::ETAG, etag(v));
    }
    r
}

/// `s` percent-encoded for a path segment (unreserved characters kept).
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

async fn get_one(
    st: AppState,
    caller: Caller,
    ty: String,
    id: String,
    state: String,
    h: HeaderMap,
) -> Response {
    let run = async move {
        // Read first: a malformed header is a 400 whether or not the state exists.
        let not_modified = match h.get(header::IF_NONE_MATCH) {
            None => None,
            Some(v) => Some(tags(
                v.to_str()
                    .map_err(|_| ApiError::invalid("If-None-Match: not visible ASCII"))?,
                "If-None-Match",
            )?),
        };
        let (i, s) = (id.clone(), state.clone());
        let found = match existing(&st, &caller, &ty)? {
            // In RAM (or ruled out by bloom filters): answered here; else a block read on
            // the blocking pool.
            Some(a) => match a.get_resident(&i, &s) {
                Some(found) => found?,
                None => blocking(move || a.get(&i, &s).map_err(ApiError::from)).await?,
            },
            None => None,
        };
        let s = found.ok_or_else(|| {
            ApiError::not_found(format!(
                "actor {id:?} of type {ty:?} has no state {state:?}"
            ))
        })?;
        // If-None-Match on a read: weak comparison; a match (or `*`) → 304 with the ETag.
        if let Some(t) = not_modified
            && t.iter().any(|t| match t {
                Tag::Any => true,
                Tag::Tag { version, .. } => *version == Some(s.version),
            })
        {
            let mut r = StatusCode::NOT_MODIFIED.into_response();
            r.headers_mut().insert(header::ETAG, etag(s.version));
            return Ok(r);
        }
        let mut r = (StatusCode::OK, s.value).into_response();
        let ct = HeaderValue::from_str(&s.content_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
        r.headers_mut().insert(header::CONTENT_TYPE, ct);
        r.headers_mut().insert(header::ETAG, etag(s.version));
        if let Some(at) = s.expires_at_ms {
            r.headers_mut().insert(
                "strata-expires-at-ms",
                HeaderValue::from_str(&at.to_string()).expect("digits"),
            );
        }
        Ok::<Response, ApiError>(r)
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

#[allow(clippy::too_many_arguments)]
async fn put_one(
    st: AppState,
    caller: Caller,
    ty: String,
    id: String,
    state: String,
    q: HashMap<String, String>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let prep = || -> Result<_, ApiError> {
        let a = store(&st, &caller, &ty, true)?;
        let ct = match h.get(header::CONTENT_TYPE) {
            None => "application/octet-stream".to_string(),
            Some(v) => v
                .to_str()
                .map_err(|_| ApiError::invalid("Content-Type: not visible ASCII"))?
                .to_string(),
        };
        Ok((a, ct, ttl(&q, &h)?, condition(&h)?))
    };
    let (a, ct, ttl_ms, cond) = match prep() {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let location = match state.as_str() {
        DEFAULT_STATE => format!("/v1/actors/{}/{}", path_segment(&ty), path_segment(&id)),
        s => format!(
            "/v1/actors/{}/{}/{}",
            path_segment(&ty),
            path_segment(&id),
            path_segment(s)
        ),
    };
    let put = ActorWrite::Put {
        state,
        value: body.to_vec(),
        content_type: ct,
        ttl_ms,
        condition: cond,
    };
    // `report`: whether the state existed decides 201 (created) or 200 (RFC 9110 §9.3.4).
    match commit(a, id, vec![put], true).await {
        Ok(Ok(c)) => {
            let created = c.existed.first() == Some(&Some(false));
            let mut r = written(
                started,
                c.version,
                match created {
                    true => StatusCode::CREATED,
                    false => StatusCode::OK,
                },
            );
            if created && let Ok(l) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(header::LOCATION, l);
            }
            r
        }
        Ok(Err(e)) => answer(e),
        Err(e) => e.into_response(),
    }
}

async fn delete_one(
    st: AppState,
    caller: Caller,
    ty: String,
    id: String,
    state: String,
    h: HeaderMap,
) -> Response {
    let started = Instant::now();
    let prep = || -> Result<_, ApiError> { Ok((store(&st, &caller, &ty, true)?, condition(&h)?)) };
    let (a, cond) = match prep() {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let del = ActorWrite::Delete {
        state: state.clone(),
        condition: cond,
    };
    match commit(a, id.clone(), vec![del], false)
        .await
        .map(|r| r.map(|c| c.version))
    {
        Ok(Ok(Some(v))) => written(started, Some(v), StatusCode::OK),
        // Nothing to delete: nothing was written.
        Ok(Ok(None)) => ApiError::not_found(format!(
            "actor {id:?} of type {ty:?} has no state {state:?}"
        ))
        .into_response(),
        Ok(Err(e)) => answer(e),
        Err(e) => e.into_response(),
    }
}

/// `GET /v1/actors/{type}/{id}`: the default state.
pub(crate) async fn get_default(
    State(st): State<AppState>,
    caller: Caller,
    _dl: ReqDeadline,
    Path((ty, id)): Path<(String, String)>,
    h: HeaderMap,
) -> Response {
    get_one(st, caller, ty, id, DEFAULT_STATE.into(), h).await
}

/// `GET /v1/actors/{type}/{id}/{state}`.
pub(crate) async fn get_state(
    State(st): State<AppState>,
    caller: Caller,
    _dl: ReqDeadline,
    Path((ty, id, state)): Path<(String, String, String)>,
    h: HeaderMap,
) -> Response {
    get_one(st, caller, ty, id, state, h).await
}

/// `PUT /v1/actors/{type}/{id}`.
pub(crate) async fn put_default(
    State(st): State<AppState>,
    caller: Caller,
    Path((ty, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    put_one(st, caller, ty, id, DEFAULT_STATE.into(), q, h, body).await
}

/// `PUT /v1/actors/{type}/{id}/{state}`.
pub(crate) async fn put_state(
    State(st): State<AppState>,
    caller: Caller,
    Path((ty, id, state)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    put_one(st, caller, ty, id, state, q, h, body).await
}

/// `DELETE /v1/actors/{type}/{id}`.
pub(crate) async fn delete_default(
    State(st): State<AppState>,
    caller: Caller,
    Path((ty, id)): Path<(String, String)>,
    h: HeaderMap,
) -> Response {
    delete_one(st, caller, ty, id, DEFAULT_STATE.into(), h).await
}

/// `DELETE /v1/actors/{type}/{id}/{state}`.
pub(crate) async fn delete_state(
    State(st): State<AppState>,
    caller: Caller,
    Path((ty, id, state)): Path<(String, String, String)>,
    h: HeaderMap,
) -> Response {
    delete_one(st, caller, ty, id, state, h).await
}

/// One operation of a transaction body at `at`.
fn parse_op(v: &Value, at: &str) -> Result<ActorWrite, ApiError> {
    let o = v
        .as_object()
        .ok_or_else(|| ApiError::invalid(format!("{at}: expected an object")))?;
    let here = format!("{at}.");
    parse::check_fields(
        o,
        &here,
        &[
            "op",
            "state",
            "value",
            "value_base64",
            "content_type",
            "ttl",
            "if_match",
            "if_none_match",
        ],
        &[],
    )?;
    let state = match parse::get(o, "state") {
        None => DEFAULT_STATE.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "{here}state: expected a string, got {other}"
            )));
        }
    };
    let if_match = match parse::get(o, "if_match") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(ActorCondition::IfMatch(n.as_u64().ok_or_else(|| {
            ApiError::invalid(format!("{here}if_match: expected a version, got {n}"))
        })?)),
        Some(Value::String(s)) if s.trim() == "*" => Some(ActorCondition::IfExists),
        Some(Value::String(s)) => Some(ActorCondition::IfMatch(parse_etag(
            s,
            &format!("{here}if_match"),
        )?)),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "{here}if_match: expected a version or \"*\", got {other}"
            )));
        }
    };
    let if_none = parse::bool_field(o, "if_none_match", &here)?.unwrap_or(false);
    let condition = match (if_match, if_none) {
        (Some(_), true) => {
            return Err(ApiError::invalid(format!(
                "{here}if_match and if_none_match: give one of them"
            )));
        }
        (Some(c), false) => c,
        (None, true) => ActorCondition::IfNoneMatch,
        (None, false) => ActorCondition::None,
    };
    match parse::get(o, "op").and_then(Value::as_str) {
        Some("put") => {
            let (value, default_ct) = match (parse::get(o, "value"), parse::get(o, "value_base64"))
            {
                (Some(v), None) => (
                    serde_json::to_vec(v)
                        .map_err(|e| ApiError::invalid(format!("{here}value: {e}")))?,
                    "application/json",
                ),
                (None, Some(Value::String(b))) => (
                    base64::engine::general_purpose::STANDARD
                        .decode(b)
                        .map_err(|e| ApiError::invalid(format!("{here}value_base64: {e}")))?,
                    "application/octet-stream",
                ),
                (None, Some(other)) => {
                    return Err(ApiError::invalid(format!(
                        "{here}value_base64: expected a base64 string, got {other}"
                    )));
                }
                (Some(_), Some(_)) => {
                    return Err(ApiError::invalid(format!(
                        "{here}value and value_base64: give one of them"
                    )));
                }
                (None, None) => {
                    return Err(ApiError::invalid(format!(
                        "{here}value: missing (or value_base64)"
                    )));
                }
            };
            let content_type = match parse::get(o, "content_type") {
                None => default_ct.to_string(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => {
                    return Err(ApiError::invalid(format!(
                        "{here}content_type: expected a string, got {other}"
                    )));
                }
            };
            let ttl_ms = match parse::usize_field(o, "ttl", &here)? {
                None => None,
                Some(s) if (1..=MAX_TTL_SECONDS).contains(&(s as u64)) => Some(s as u64 * 1000),
                Some(s) => {
                    return Err(ApiError::invalid(format!(
                        "{here}ttl: {s} is not a number of seconds in 1..={MAX_TTL_SECONDS}"
                    )));
                }
            };
            Ok(ActorWrite::Put {
                state,
                value,
                content_type,
                ttl_ms,
                condition,
            })
        }
        Some("delete") => {
            // A delete carries no value: a field of a put is a mistake, not ignored.
            if let Some(k) = ["value", "value_base64", "content_type", "ttl"]
                .into_iter()
                .find(|k| parse::get(o, k).is_some())
            {
                return Err(ApiError::invalid(format!(
                    "{here}{k}: not allowed with \"op\": \"delete\""
                )));
            }
            Ok(ActorWrite::Delete { state, condition })
        }
        _ => Err(ApiError::invalid(format!(
            "{here}op: expected \"put\" or \"delete\""
        ))),
    }
}

/// `POST /v1/actors/{type}/{id}/transaction`: `{"operations": [{"op": "put" | "delete",
/// "state", "value" | "value_base64", "content_type", "ttl", "if_match", "if_none_match"}]}`.
pub(crate) async fn transaction(
    State(st): State<AppState>,
    caller: Caller,
    Path((ty, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let prep = || -> Result<_, ApiError> {
        let a = store(&st, &caller, &ty, true)?;
        let b = parse::body(&body)?;
        parse::check_fields(&b, "", &["operations"], &[])?;
        let ops = match parse::get(&b, "operations") {
            Some(Value::Array(ops)) => ops
                .iter()
                .enumerate()
                .map(|(i, v)| parse_op(v, &format!("operations[{i}]")))
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(ApiError::invalid("operations: expected a list")),
        };
        Ok((a, ops))
    };
    let (a, ops) = match prep() {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    match commit(a, id, ops, false).await {
        Ok(Ok(c)) => written(started, c.version, StatusCode::OK),
        Ok(Err(e)) => answer(e),
        Err(e) => e.into_response(),
    }
}

/// `GET /v1/actors/{type}?after=&limit=` → `{"actors": [ids], "next": id | null}`.
pub(crate) async fn list(
    State(st): State<AppState>,
    caller: Caller,
    Path(ty): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<axum::Json<Value>, ApiError> {
    let started = Instant::now();
    let Some(a) = existing(&st, &caller, &ty)? else {
        return ok(started, json!({"actors": [], "next": null}));
    };
    let limit = match q.get("limit") {
        None => 100,
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::invalid(format!("limit: {l:?} is not a number")))?,
    };
    let after = q.get("after").cloned();
    let ids = blocking(move || a.list(after.as_deref(), limit).map_err(ApiError::from)).await?;
    // A full page: the next one starts after its last id (and may be empty).
    let next = (ids.len() == limit).then(|| ids[limit - 1].clone());
    ok(started, json!({"actors": ids, "next": next}))
}
