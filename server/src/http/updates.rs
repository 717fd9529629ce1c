//! Point updates beyond upsert: delete, payload set / overwrite / delete keys / clear, vector
//! update / delete, and `POST /points/batch` running several of them in order. Each parses its
//! body into an [`Update`] (errors name the field, prefixed `operations[i].kind.` in a batch)
//! and runs it through the engine's point edits (`CollectionHandle::edit`).

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde_json::Value;
use strata_engine::{CollectionHandle, Filter, PointEdit, PointId, PointInput, Vectors};

use super::handlers::{ApiResult, blocking, ok, points_from_body, update_result};
use super::parse::{self, Obj};
use super::{AppState, Caller, ReqDeadline};
use crate::error::ApiError;

/// Most operations in one `points/batch` request.
pub(crate) const MAX_OPERATIONS: usize = 1_000;

/// Which points an update applies to.
pub(crate) enum Selector {
    Ids(Vec<PointId>),
    Filter(Filter),
}

/// One parsed update.
pub(crate) enum Update {
    Upsert(Vec<PointInput>),
    Delete(Selector),
    Edit(Selector, PointEdit),
    SetVectors(Vec<(PointId, Vectors, strata_engine::SparseVectors)>),
}

/// `points` (ids) or `filter`, exactly one.
fn selector(b: &Obj) -> Result<Selector, ApiError> {
    match (
        parse::get(b, "points"),
        parse::filter_field(b, "filter", "")?,
    ) {
        (Some(ids), None) => Ok(Selector::Ids(parse::ids(ids, "points")?)),
        (None, Some(f)) => Ok(Selector::Filter(f)),
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "points: give points (a list of ids) or filter, not both",
        )),
        (None, None) => Err(ApiError::invalid(
            "points: missing (give points, a list of ids, or filter)",
        )),
    }
}

fn payload_of(b: &Obj) -> Result<strata_engine::Payload, ApiError> {
    Ok(parse::obj_field(b, "payload", "")?
        .ok_or_else(|| ApiError::invalid("payload: missing (expected a JSON object)"))?
        .clone())
}

fn strings(b: &Obj, key: &str) -> Result<Vec<String>, ApiError> {
    match parse::get(b, key) {
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) if !s.is_empty() => Ok(s.clone()),
                other => Err(ApiError::invalid(format!(
                    "{key}[{i}]: expected a non-empty string, got {other}"
                ))),
            })
            .collect(),
        Some(other) => Err(ApiError::invalid(format!(
            "{key}: expected a list of strings, got {other}"
        ))),
        None => Err(ApiError::invalid(format!("{key}: missing"))),
    }
}

pub(crate) fn parse_delete(b: &Obj) -> Result<Update, ApiError> {
    parse::check_fields(b, "", &["points", "filter"], &["shard_key"])?;
    Ok(Update::Delete(selector(b)?))
}

/// Set (merge) or overwrite.
pub(crate) fn parse_payload(b: &Obj, overwrite: bool) -> Result<Update, ApiError> {
    parse::check_fields(
        b,
        "",
        &["payload", "points", "filter"],
        &["key", "shard_key"],
    )?;
    let payload = payload_of(b)?;
    let edit = match overwrite {
        true => PointEdit::OverwritePayload(payload),
        false => PointEdit::SetPayload(payload),
    };
    Ok(Update::Edit(selector(b)?, edit))
}

fn parse_delete_payload(b: &Obj) -> Result<Update, ApiError> {
    parse::check_fields(b, "", &["keys", "points", "filter"], &["shard_key"])?;
    let keys = strings(b, "keys")?;
    Ok(Update::Edit(selector(b)?, PointEdit::DeletePayload(keys)))
}

fn parse_clear_payload(b: &Obj) -> Result<Update, ApiError> {
    parse::check_fields(b, "", &["points", "filter"], &["shard_key"])?;
    Ok(Update::Edit(selector(b)?, PointEdit::ClearPayload))
}

fn parse_delete_vectors(b: &Obj) -> Result<Update, ApiError> {
    parse::check_fields(b, "", &["points", "filter", "vector"], &["shard_key"])?;
    let names = strings(b, "vector")?;
    Ok(Update::Edit(selector(b)?, PointEdit::DeleteVectors(names)))
}

fn parse_update_vectors(b: &Obj, max: usize) -> Result<Update, ApiError> {
    parse::check_fields(b, "", &["points"], &["shard_key", "update_filter"])?;
    let points = match parse::get(b, "points") {
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "points: expected a list, got {other}"
            )));
        }
        None => return Err(ApiError::invalid("points: missing")),
    };
    if points.len() > max {
        return Err(ApiError::new(
            crate::error::Kind::Engine(strata_engine::ErrorKind::ResourceExhausted),
            format!(
                "points: batch of {} exceeds the limit of {max} points (STRATA_MAX_BATCH_POINTS)",
                points.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(points.len());
    for (i, p) in points.iter().enumerate() {
        let at = format!("points[{i}]");
        let o = p
            .as_object()
            .ok_or_else(|| ApiError::invalid(format!("{at}: expected an object")))?;
        parse::check_fields(o, &format!("{at}."), &["id", "vector"], &[])?;
        let id = PointId::from_json(
            parse::get(o, "id").ok_or_else(|| ApiError::invalid(format!("{at}.id: missing")))?,
        )
        .map_err(|e| ApiError::invalid(format!("{at}.id: {}", e.message())))?;
        let (vectors, sparse) = match parse::get(o, "vector") {
            Some(Value::Object(m)) => {
                strata_engine::parse_named_vectors(m, &format!("{at}.vector"))?
            }
            Some(v) => (
                Vectors::from([(String::new(), parse::vector(v, &format!("{at}.vector"))?)]),
                Default::default(),
            ),
            None => return Err(ApiError::invalid(format!("{at}.vector: missing"))),
        };
        out.push((id, vectors, sparse));
    }
    Ok(Update::SetVectors(out))
}

/// Runs one update on the blocking pool's thread; returns its LSN.
pub(crate) fn run(h: &CollectionHandle, u: Update) -> Result<u64, ApiError> {
    Ok(match u {
        Update::Upsert(points) => h.upsert(points)?,
        Update::Delete(Selector::Ids(ids)) => h.delete(&ids)?,
        Update::Delete(Selector::Filter(f)) => h.delete_matching(&f)?.0,
        Update::Edit(Selector::Ids(ids), e) => h.edit(&ids, &e)?,
        Update::Edit(Selector::Filter(f), e) => h.edit_matching(&f, &e)?,
        Update::SetVectors(points) => h.update_vectors_with_sparse(points)?,
    })
}

/// Parses `body` with `parse` and runs it.
async fn update(
    st: AppState,
    caller: Caller,
    dl: ReqDeadline,
    c: String,
    body: Bytes,
    parse: impl FnOnce(&Obj, usize) -> Result<Update, ApiError>,
) -> ApiResult {
    let started = Instant::now();
    let h = st.writable(&caller, &c, &dl)?;
    let u = parse(&parse::body(&body)?, st.max_batch_points)?;
    let lsn = blocking(move || run(&h, u)).await?;
    ok(started, update_result(lsn))
}

macro_rules! route {
    ($(#[$doc:meta])* $name:ident, $parse:expr) => {
        $(#[$doc])*
        pub(crate) async fn $name(
            State(st): State<AppState>,
            caller: Caller,
            dl: ReqDeadline,
            Path(c): Path<String>,
            _q: Query<HashMap<String, String>>,
            body: Bytes,
        ) -> ApiResult {
            update(st, caller, dl, c, body, $parse).await
        }
    };
}

route!(
    /// `POST /collections/{c}/points/delete`.
    delete_points,
    |b, _| parse_delete(b)
);
route!(
    /// `POST /collections/{c}/points/payload`: merge keys.
    set_payload,
    |b, _| parse_payload(b, false)
);
route!(
    /// `PUT /collections/{c}/points/payload`: replace the payload.
    overwrite_payload,
    |b, _| parse_payload(b, true)
);
route!(
    /// `POST /collections/{c}/points/payload/delete`: remove keys.
    delete_payload,
    |b, _| parse_delete_payload(b)
);
route!(
    /// `POST /collections/{c}/points/payload/clear`.
    clear_payload,
    |b, _| parse_clear_payload(b)
);
route!(
    /// `PUT /collections/{c}/points/vectors`.
    update_vectors,
    parse_update_vectors
);
route!(
    /// `POST /collections/{c}/points/vectors/delete`.
    delete_vectors,
    |b, _| parse_delete_vectors(b)
);

/// One operation of a batch: `{"<kind>": {...}}`.
fn parse_operation(v: &Value, i: usize, max: usize) -> Result<Update, ApiError> {
    let at = format!("operations[{i}]");
    let o = match v {
        Value::Object(o) if o.len() == 1 => o,
        _ => {
            return Err(ApiError::invalid(format!(
                "{at}: expected an object with one operation (upsert, delete, set_payload, \
                 overwrite_payload, delete_payload, clear_payload, update_vectors, delete_vectors)"
            )));
        }
    };
    let (kind, body) = o.iter().next().expect("one entry");
    let inner = format!("{at}.{kind}.");
    let b = body
        .as_object()
        .ok_or_else(|| ApiError::invalid(format!("{inner}: expected an object")))?;
    let parsed = match kind.as_str() {
        "upsert" => points_from_body(b, max).map(Update::Upsert),
        "delete" => parse_delete(b),
        "set_payload" => parse_payload(b, false),
        "overwrite_payload" => parse_payload(b, true),
        "delete_payload" => parse_delete_payload(b),
        "clear_payload" => parse_clear_payload(b),
        "update_vectors" => parse_update_vectors(b, max),
        "delete_vectors" => parse_delete_vectors(b),
        other => {
            return Err(ApiError::invalid(format!(
                "{at}.{other}: unknown operation"
            )));
        }
    };
    parsed.map_err(|e| e.within(&inner))
}

/// `POST /collections/{c}/points/batch`: `{"operations": [...]}` run in order, each durable
/// before the next; the result lists each one's update result. All are parsed before any
/// runs; a failing operation stops the batch and the error says how many were applied.
pub(crate) async fn batch(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    Path(c): Path<String>,
    _q: Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult {
    let started = Instant::now();
    let h = st.writable(&caller, &c, &dl)?;
    let b = parse::body(&body)?;
    parse::check_fields(&b, "", &["operations"], &[])?;
    let ops = match parse::get(&b, "operations") {
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "operations: expected a list, got {other}"
            )));
        }
        None => return Err(ApiError::invalid("operations: missing")),
    };
    if ops.len() > MAX_OPERATIONS {
        return Err(ApiError::new(
            crate::error::Kind::Engine(strata_engine::ErrorKind::ResourceExhausted),
            format!(
                "operations: {} exceed the limit of {MAX_OPERATIONS}",
                ops.len()
            ),
        ));
    }
    let parsed = ops
        .iter()
        .enumerate()
        .map(|(i, v)| parse_operation(v, i, st.max_batch_points))
        .collect::<Result<Vec<_>, _>>()?;
    let n = parsed.len();
    let results = blocking(move || {
        let mut out = Vec::with_capacity(n);
        for (i, u) in parsed.into_iter().enumerate() {
            match run(&h, u) {
                Ok(lsn) => out.push(update_result(lsn)),
                Err(e) => {
                    let msg = format!(
                        "operations[{i}]: {} (operations 0..{i} of {n} were applied)",
                        e.message
                    );
                    return Err(ApiError::new(e.kind, msg));
                }
            }
        }
        Ok(out)
    })
    .await?;
    ok(started, Value::Array(results))
}
