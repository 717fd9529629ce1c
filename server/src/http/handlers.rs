//! Qdrant-compatible REST handlers. Each parses the request (errors name the field), checks the
//! caller's rights, calls the engine on the blocking pool, and wraps the result in Qdrant's
//! envelope `{"result", "status": "ok", "time"}`.

use std::collections::HashMap;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use strata_engine::{
    CollectionConfig, CollectionHandle, CollectionInfo, DEFAULT_RRF_K, Distance, FieldType, Filter,
    Fusion, HnswConfig, HnswUpdate, Mmr, Modifier, PointId, PointInput, Ranked, Recommend,
    RecommendStrategy, Record, ScoredPoint, ScrollRequest, SearchReport, SearchRequest,
    SparseParams, SparseVector, SparseVectors, VectorParams, Vectors, fuse,
};

use super::parse::{self, Obj, PayloadSelector};
use super::{AppState, Caller, ReqDeadline};
use crate::error::ApiError;

pub(super) type ApiResult = Result<Json<Value>, ApiError>;

pub(super) fn ok(started: Instant, result: Value) -> ApiResult {
    Ok(Json(
        json!({"result": result, "status": "ok", "time": started.elapsed().as_secs_f64()}),
    ))
}

/// Runs engine work on the blocking pool (the engine is synchronous: fsync, SIMD scans).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            crate::error::Kind::Engine(strata_engine::ErrorKind::Internal),
            format!("worker failed: {e}"),
        )
    })?
}

pub(super) fn update_result(lsn: u64) -> Value {
    json!({"operation_id": lsn, "status": "completed"})
}

impl AppState {
    /// A handle for reading `c`, bound to the request's deadline.
    pub(crate) fn readable(
        &self,
        caller: &Caller,
        c: &str,
        dl: &ReqDeadline,
    ) -> Result<CollectionHandle, ApiError> {
        let target = self.target(caller, c);
        if !caller.0.can_read(&target) {
            return Err(ApiError::forbidden(format!(
                "the token does not grant read access to collection {target:?}"
            )));
        }
        Ok(self.lookup(caller, c)?.with_deadline(dl.get()))
    }
    /// A handle for writing `c`, bound to the request's deadline.
    pub(crate) fn writable(
        &self,
        caller: &Caller,
        c: &str,
        dl: &ReqDeadline,
    ) -> Result<CollectionHandle, ApiError> {
        let target = self.target(caller, c);
        if !caller.0.can_write(&target) {
            return Err(ApiError::forbidden(format!(
                "the token does not grant write access to collection {target:?}"
            )));
        }
        Ok(self.lookup(caller, c)?.with_deadline(dl.get()))
    }
    /// The collection `c` names: itself, or the collection it is an alias of (rights are
    /// checked on the collection, never on an alias).
    pub(crate) fn target(&self, caller: &Caller, c: &str) -> String {
        self.engine
            .resolve_alias(&caller.0.tenant, c)
            .unwrap_or_else(|| c.to_string())
    }
    pub(crate) fn lookup(&self, caller: &Caller, c: &str) -> Result<CollectionHandle, ApiError> {
        self.engine
            .collection(&caller.0.tenant, c)
            .map_err(|e| match e.kind() {
                strata_engine::ErrorKind::NotFound => {
                    ApiError::not_found(format!("Collection `{c}` doesn't exist!"))
                }
                _ => e.into(),
            })
    }
    pub(crate) fn manager(&self, caller: &Caller) -> Result<(), ApiError> {
        if caller.0.can_manage() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "creating or deleting collections needs a token with access \"m\"",
            ))
        }
    }
}

// ---------------------------------------------------------------- JSON shapes

/// A point's vectors in Qdrant's shape: only the unnamed one → a list; else an object of
/// named lists and sparse `{indices, values}` (restricted to the names asked for).
fn vectors_json(v: Vectors, sparse: SparseVectors, sel: &parse::VectorSelector) -> Value {
    let v: Vectors = v.into_iter().filter(|(n, _)| sel.keeps(n)).collect();
    if v.len() == 1
        && sparse.is_empty()
        && let Some(unnamed) = v.get("")
    {
        return json!(unnamed);
    }
    let mut o: serde_json::Map<String, Value> = v.into_iter().map(|(n, x)| (n, json!(x))).collect();
    for (n, x) in sparse {
        if sel.keeps(&n) {
            o.insert(n, x.to_json());
        }
    }
    Value::Object(o)
}

pub(super) fn record_json(r: Record, sel: &PayloadSelector, vsel: &parse::VectorSelector) -> Value {
    let mut o = serde_json::Map::new();
    o.insert("id".into(), r.id.to_json());
    if let Some(p) = r.payload {
        o.insert("payload".into(), Value::Object(sel.apply(p)));
    }
    if let Some(v) = r.vectors {
        o.insert("vector".into(), vectors_json(v, r.sparse, vsel));
    }
    Value::Object(o)
}

pub(super) fn scored_json(
    p: ScoredPoint,
    sel: &PayloadSelector,
    vsel: &parse::VectorSelector,
) -> Value {
    let mut o = serde_json::Map::new();
    o.insert("id".into(), p.id.to_json());
    o.insert("version".into(), json!(p.version));
    o.insert("score".into(), json!(p.score));
    if let Some(pl) = p.payload {
        o.insert("payload".into(), Value::Object(sel.apply(pl)));
    }
    if let Some(v) = p.vectors {
        o.insert("vector".into(), vectors_json(v, p.sparse, vsel));
    }
    Value::Object(o)
}

/// One vector's parameters in Qdrant's shape.
fn params_json(p: &VectorParams) -> Value {
    json!({"size": p.dim, "distance": p.distance,
        "hnsw_config": {"m": p.hnsw.m, "ef_construct": p.hnsw.ef_construct}})
}

/// The `sparse_vectors` config in Qdrant's shape.
fn sparse_config_json(c: &CollectionConfig) -> Value {
    Value::Object(
        c.sparse
            .iter()
            .map(|(n, p)| {
                let mut o = json!({"index": {"on_disk": true}});
                if p.modifier != Modifier::None {
                    o["modifier"] = json!(p.modifier.name());
                }
                (n.clone(), o)
            })
            .collect(),
    )
}

/// The `vectors` config as it was given: one unnamed vector, or an object of named ones.
fn vectors_config_json(c: &CollectionConfig) -> Value {
    match (c.named, c.vectors.first()) {
        (false, Some((_, p))) => json!({"size": p.dim, "distance": p.distance}),
        (false, None) => json!({}),
        (true, _) => Value::Object(
            c.vectors
                .iter()
                .map(|(n, p)| (n.clone(), params_json(p)))
                .collect(),
        ),
    }
}

/// Qdrant's `payload_schema`: per indexed key its type and the points that have a value there.
fn payload_schema_json(schema: &[(String, FieldType, u64)]) -> Value {
    Value::Object(
        schema
            .iter()
            .map(|(k, t, n)| (k.clone(), json!({"data_type": t.name(), "points": n})))
            .collect(),
    )
}

fn info_json(
    i: &CollectionInfo,
    schema: &[(String, FieldType, u64)],
    max_segment_rows: u64,
) -> Value {
    let hnsw = i
        .config
        .vectors
        .first()
        .map(|v| v.1.hnsw)
        .unwrap_or_default();
    json!({
        "status": "green",
        "optimizer_status": "ok",
        "points_count": i.points,
        "indexed_vectors_count": i.points.saturating_sub(i.memtable_points),
        "segments_count": i.segments,
        "config": {
            "params": {
                "vectors": vectors_config_json(&i.config),
                "sparse_vectors": sparse_config_json(&i.config),
                "shard_number": 1,
                "replication_factor": 1,
                "write_consistency_factor": 1,
                "on_disk_payload": true
            },
            "hnsw_config": {"m": hnsw.m, "ef_construct": hnsw.ef_construct, "full_scan_threshold": 2000, "on_disk": true},
            "optimizer_config": {
                "deleted_threshold": 0.2, "vacuum_min_vector_number": 1000, "default_segment_number": 0,
                "max_segment_size": max_segment_rows, "indexing_threshold": 2000, "flush_interval_sec": 60
            },
            "wal_config": {"wal_capacity_mb": 64, "wal_segments_ahead": 0}
        },
        "payload_schema": payload_schema_json(schema)
    })
}

// ---------------------------------------------------------------- service

pub(crate) async fn root(_caller: Caller) -> Json<Value> {
    // Qdrant clients check the major version of `version`; Strata reports the Qdrant API
    // version it follows, and its own in `strata_version`.
    Json(
        json!({"title": "strata", "version": "1.20.0", "strata_version": env!("CARGO_PKG_VERSION")}),
    )
}

// ---------------------------------------------------------------- collections

pub(crate) async fn list_collections(State(st): State<AppState>, caller: Caller) -> ApiResult {
    let started = Instant::now();
    let names: Vec<Value> = st
        .engine
        .list_collections(&caller.0.tenant)
        .into_iter()
        .filter(|n| caller.0.can_read(n))
        .map(|n| json!({"name": n}))
        .collect();
    ok(started, json!({"collections": names}))
}

pub(crate) async fn create_collection(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    Path(c): Path<String>,
    body: Bytes,
) -> ApiResult {
    let started = Instant::now();
    st.manager(&caller)?;
    let b = parse::body(&body)?;
    parse::check_fields(
        &b,
        "",
        &[
            "vectors",
            "hnsw_config",
            "shard_number",
            "replication_factor",
            "write_consistency_factor",
            "on_disk_payload",
            "optimizers_config",
            "wal_config",
            "strict_mode_config",
            "metadata",
            "sparse_vectors",
        ],
        &["quantization_config", "init_from", "sharding_method"],
    )?;
    let sparse = match parse::obj_field(&b, "sparse_vectors", "")? {
        Some(sv) => sparse_params(sv)?,
        None => Vec::new(),
    };
    let empty = Obj::new();
    let v = match parse::obj_field(&b, "vectors", "")? {
        Some(v) => v,
        None if !sparse.is_empty() => &empty,
        None => {
            return Err(ApiError::invalid(
                "vectors: missing (expected {\"size\", \"distance\"} or sparse_vectors)",
            ));
        }
    };
    // Qdrant's options Strata accepts without effect (one node, its own WAL and optimizer),
    // typed all the same.
    for k in [
        "shard_number",
        "replication_factor",
        "write_consistency_factor",
    ] {
        parse::usize_field(&b, k, "")?;
    }
    parse::bool_field(&b, "on_disk_payload", "")?;
    for k in [
        "optimizers_config",
        "wal_config",
        "strict_mode_config",
        "metadata",
    ] {
        parse::obj_field(&b, k, "")?;
    }
    let top_hnsw = parse::obj_field(&b, "hnsw_config", "")?;
    if let Some(h) = top_hnsw {
        hnsw_update(h, "hnsw_config.", None)?;
    }
    let config = if v.contains_key("size") {
        CollectionConfig::single(vector_params(v, "vectors.", top_hnsw)?)
    } else {
        // Named vectors: {"name": {"size", "distance", ...}, ...} (the name may be "").
        let mut named = Vec::with_capacity(v.len());
        for (name, p) in v {
            let at = format!("vectors.{name}.");
            let p = p.as_object().ok_or_else(|| {
                ApiError::invalid(format!(
                    "{at}: expected {{\"size\", \"distance\"}}, got {p}"
                ))
            })?;
            named.push((name.clone(), vector_params(p, &at, top_hnsw)?));
        }
        CollectionConfig::named(named)
    }
    .with_sparse(sparse);
    let tenant = caller.0.tenant.clone();
    let deadline = dl.get();
    blocking(move || {
        deadline.check("create collection")?;
        st.engine
            .create_collection(&tenant, &c, config)
            .map(|_| ())
            .map_err(ApiError::from)
    })
    .await?;
    ok(started, json!(true))
}

/// Sparse vectors from `{"name": {"index"?: {...}, "modifier"?: "idf" | "none"}, ...}`.
fn sparse_params(sv: &Obj) -> Result<Vec<(String, SparseParams)>, ApiError> {
    let mut out = Vec::with_capacity(sv.len());
    let empty = Obj::new();
    for (name, p) in sv {
        let at = format!("sparse_vectors.{name}.");
        let p = match p {
            Value::Object(p) => p,
            Value::Null => &empty,
            other => {
                return Err(ApiError::invalid(format!(
                    "{at}: expected {{\"index\"?, \"modifier\"?}}, got {other}"
                )));
            }
        };
        parse::check_fields(p, &at, &["index", "modifier"], &[])?;
        if let Some(i) = parse::obj_field(p, "index", &at)? {
            let here = format!("{at}index.");
            parse::check_fields(
                i,
                &here,
                &["on_disk", "full_scan_threshold", "datatype"],
                &[],
            )?;
            parse::bool_field(i, "on_disk", &here)?;
            parse::usize_field(i, "full_scan_threshold", &here)?;
            datatype(i, &here)?;
        }
        let modifier = match parse::get(p, "modifier") {
            None | Some(Value::Null) => Modifier::None,
            Some(Value::String(m)) => {
                Modifier::parse(m, &format!("{at}modifier")).map_err(ApiError::from)?
            }
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "{at}modifier: expected \"idf\" or \"none\", got {other}"
                )));
            }
        };
        out.push((name.clone(), SparseParams { modifier }));
    }
    Ok(out)
}

/// `datatype` at `at`: absent or `float32` (what Strata stores); Qdrant's other datatypes
/// (`float16`, `uint8`) are a well-formed request for a feature Strata lacks (501); anything
/// else is a bad request (400).
fn datatype(o: &Obj, at: &str) -> Result<(), ApiError> {
    match parse::get(o, "datatype") {
        None => Ok(()),
        Some(Value::String(d)) if d == "float32" => Ok(()),
        Some(Value::String(d)) if ["float16", "uint8"].contains(&d.as_str()) => {
            Err(ApiError::unsupported(&format!("{at}datatype {d:?}")))
        }
        Some(other) => Err(ApiError::invalid(format!(
            "{at}datatype: expected \"float32\", \"float16\" or \"uint8\", got {other}"
        ))),
    }
}

/// One vector's parameters from `{"size", "distance", "hnsw_config"?, ...}` at `at`; the
/// collection-level `hnsw_config` applies first, the vector's own over it.
fn vector_params(v: &Obj, at: &str, top_hnsw: Option<&Obj>) -> Result<VectorParams, ApiError> {
    parse::check_fields(
        v,
        at,
        &["size", "distance", "on_disk", "hnsw_config", "datatype"],
        &["multivector_config", "quantization_config"],
    )?;
    datatype(v, at)?;
    let dim = parse::usize_field(v, "size", at)?
        .ok_or_else(|| ApiError::invalid(format!("{at}size: missing")))?;
    let distance: Distance = match parse::get(v, "distance") {
        // One of Qdrant's distances Strata lacks: a well-formed request (501), as over gRPC.
        Some(Value::String(d)) if d == "Manhattan" => {
            return Err(ApiError::unsupported(&format!("{at}distance Manhattan")));
        }
        Some(Value::String(d)) => d.as_str(),
        None => {
            return Err(ApiError::invalid(format!(
                "{at}distance: missing (Cosine, Euclid or Dot)"
            )));
        }
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "{at}distance: expected \"Cosine\", \"Euclid\" or \"Dot\", got {other}"
            )));
        }
    }
    .parse()
    .map_err(|e: strata_engine::Error| {
        ApiError::invalid(format!("{at}distance: {}", e.message()))
    })?;
    parse::bool_field(v, "on_disk", at)?;
    let mut hnsw = HnswConfig::default();
    let own = format!("{at}hnsw_config.");
    for (at, cfg) in [
        ("hnsw_config.", top_hnsw),
        (own.as_str(), parse::obj_field(v, "hnsw_config", at)?),
    ] {
        if let Some(h) = cfg {
            let u = hnsw_update(h, at, None)?;
            hnsw.m = u.m.unwrap_or(hnsw.m);
            hnsw.ef_construct = u.ef_construct.unwrap_or(hnsw.ef_construct);
        }
    }
    Ok(VectorParams {
        dim: dim.min(u32::MAX as usize) as u32,
        distance,
        hnsw,
    })
}

/// The HNSW fields a `hnsw_config` object at `at` changes; the others Qdrant has are accepted
/// without effect, their types checked.
fn hnsw_update(h: &Obj, at: &str, vector: Option<String>) -> Result<HnswUpdate, ApiError> {
    parse::check_fields(
        h,
        at,
        &[
            "m",
            "ef_construct",
            "full_scan_threshold",
            "max_indexing_threads",
            "on_disk",
            "payload_m",
        ],
        &[],
    )?;
    // Accepted without effect (Strata sizes its index itself), typed all the same.
    for k in ["full_scan_threshold", "max_indexing_threads", "payload_m"] {
        parse::usize_field(h, k, at)?;
    }
    parse::bool_field(h, "on_disk", at)?;
    let clamp = |x: usize| x.min(u32::MAX as usize) as u32;
    Ok(HnswUpdate {
        vector,
        m: parse::usize_field(h, "m", at)?.map(clamp),
        ef_construct: parse::usize_field(h, "ef_construct", at)?.map(clamp),
    })
}

/// `PATCH /collections/{c}`: HNSW parameters, collection-wide (`hnsw_config`) and per vector
/// (`vectors.{name}.hnsw_config`); the options create accepts without effect are accepted
/// here too; quantization and non-empty sparse vectors are 501.
pub(crate) async fn update_collection(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    Path(c): Path<String>,
    _q: Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult {
    let started = Instant::now();
    st.manager(&caller)?;
    let h = st.writable(&caller, &c, &dl)?;
    let b = parse::body(&body)?;
    parse::check_fields(
        &b,
        "",
        &[
            "vectors",
            "hnsw_config",
            "optimizers_config",
            "params",
            "strict_mode_config",
            "metadata",
            "sparse_vectors",
        ],
        &["quantization_config"],
    )?;
    if let Some(sv) = parse::obj_field(&b, "sparse_vectors", "")?
        && !sparse_params(sv)?.is_empty()
    {
        // Well-formed (else the 400 above): changing sparse vectors is not implemented.
        return Err(ApiError::unsupported("sparse_vectors"));
    }
    for k in [
        "optimizers_config",
        "params",
        "strict_mode_config",
        "metadata",
    ] {
        parse::obj_field(&b, k, "")?;
    }
    let mut updates = Vec::new();
    if let Some(hc) = parse::obj_field(&b, "hnsw_config", "")? {
        updates.push(hnsw_update(hc, "hnsw_config.", None)?);
    }
    if let Some(v) = parse::obj_field(&b, "vectors", "")? {
        for (name, p) in v {
            let at = format!("vectors.{name}.");
            let p = p
                .as_object()
                .ok_or_else(|| ApiError::invalid(format!("{at}: expected an object, got {p}")))?;
            parse::check_fields(
                p,
                &at,
                &["hnsw_config", "on_disk"],
                &["quantization_config"],
            )?;
            parse::bool_field(p, "on_disk", &at)?;
            if let Some(hc) = parse::obj_field(p, "hnsw_config", &at)? {
                updates.push(hnsw_update(
                    hc,
                    &format!("{at}hnsw_config."),
                    Some(name.clone()),
                )?);
            } else {
                // Still names an unknown vector.
                updates.push(HnswUpdate {
                    vector: Some(name.clone()),
                    ..HnswUpdate::default()
                });
            }
        }
    }
    blocking(move || h.update_hnsw(&updates).map_err(ApiError::from)).await?;
    ok(started, json!(true))
}

pub(crate) async fn get_collection(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    Path(c): Path<String>,
) -> ApiResult {
    let started = Instant::now();
    let h = st.readable(&caller, &c, &dl)?;
    let max_rows = st.max_segment_rows;
    let (info, schema) = blocking(move || Ok((h.info()?, h.payload_schema()?))).await?;
    ok(started, info_json(&info, &schema, max_rows))
}

/// The index type of a `field_schema`: a type name, or an object with `type` and Qdrant's
/// tuning parameters (accepted and type-checked; Strata's indexes need none of them).
fn field_schema(v: Option<&Value>) -> Result<FieldType, ApiError> {
    match v {
        None | Some(Value::Null) => Err(ApiError::invalid(
            "field_schema: missing (keyword, integer, float, bool, uuid or datetime)",
        )),
        Some(Value::String(t)) => Ok(t.parse::<FieldType>()?),
        Some(Value::Object(o)) => {
            let ty = match parse::get(o, "type") {
                Some(Value::String(t)) => t.parse::<FieldType>()?,
                _ => return Err(ApiError::invalid("field_schema.type: expected a type name")),
            };
            let flags: &[&str] = match ty {
                FieldType::Keyword | FieldType::Uuid => &["is_tenant", "on_disk", "enable_hnsw"],
                FieldType::Integer => {
                    &["lookup", "range", "is_principal", "on_disk", "enable_hnsw"]
                }
                FieldType::Float | FieldType::Datetime => {
                    &["is_principal", "on_disk", "enable_hnsw"]
                }
                FieldType::Bool => &["on_disk", "enable_hnsw"],
            };
            let known: Vec<&str> = std::iter::once("type")
                .chain(flags.iter().copied())
                .collect();
            parse::check_fields(o, "field_schema.", &known, &[])?;
            for f in flags {
                parse::bool_field(o, f, "field_schema.")?;
            }
            Ok(ty)
        }
        Some(other) => Err(ApiError::invalid(format!(
            "field_schema: expected a type name or an object, got {other}"
        ))),
    }
}

pub(crate) async fn create_index(
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
    parse::check_fields(&b, "", &["field_name", "field_schema"], &[])?;
    let key = match parse::get(&b, "field_name") {
        Some(Value::String(k)) => k.clone(),
        _ => return Err(ApiError::invalid("field_name: expected a payload key")),
    };
    let ty = field_schema(parse::get(&b, "field_schema"))?;
    blocking(move || h.create_payload_index(&key, ty).map_err(ApiError::from)).await?;
    ok(started, update_result(st.engine.last_lsn()))
}

pub(crate) async fn delete_index(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    Path((c, key)): Path<(String, String)>,
    _q: Query<HashMap<String, String>>,
) -> ApiResult {
    let started = Instant::now();
    let h = st.writable(&caller, &c, &dl)?;
    blocking(move || h.drop_payload_index(&key).map_err(ApiError::from)).await?;
    ok(started, update_result(st.engine.last_lsn()))
}

pub(crate) async fn delete_collection(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    Path(c): Path<String>,
) -> ApiResult {
    let started = Instant::now();
    st.manager(&caller)?;
    let tenant = caller.0.tenant.clone();
    let deadline = dl.get();
    let existed = blocking(move || {
        match deadline
            .check("delete collection")
            .and_then(|()| st.engine.delete_collection(&tenant, &c))
        {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == strata_engine::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    ok(started, json!(existed))
}

pub(crate) async fn collection_exists(
    State(st): State<AppState>,
    caller: Caller,
    Path(c): Path<String>,
) -> ApiResult {
    let started = Instant::now();
    let target = st.target(&caller, &c);
    if !caller.0.can_read(&target) {
        return Err(ApiError::forbidden(format!(
            "the token does not grant read access to collection {target:?}"
        )));
    }
    let exists = match st.engine.collection(&caller.0.tenant, &c) {
        Ok(_) => true,
        Err(e) if e.kind() == strata_engine::ErrorKind::NotFound => false,
        Err(e) => return Err(e.into()),
    };
    ok(started, json!({"exists": exists}))
}

// ---------------------------------------------------------------- points: writes

pub(super) fn points_from_body(b: &Obj, max: usize) -> Result<Vec<PointInput>, ApiError> {
    parse::check_fields(
        b,
        "",
        &["points", "batch", "shard_key", "update_filter"],
        &[],
    )?;
    if parse::get(b, "shard_key").is_some() {
        return Err(ApiError::unsupported("shard_key"));
    }
    if parse::get(b, "update_filter").is_some() {
        return Err(ApiError::unsupported("update_filter"));
    }
    let n_check = |n: usize| {
        if n > max {
            Err(ApiError::new(
                crate::error::Kind::Engine(strata_engine::ErrorKind::ResourceExhausted),
                format!(
                    "points: batch of {n} exceeds the limit of {max} points (STRATA_MAX_BATCH_POINTS)"
                ),
            ))
        } else {
            Ok(())
        }
    };
    match (parse::get(b, "points"), parse::obj_field(b, "batch", "")?) {
        (Some(Value::Array(points)), None) => {
            n_check(points.len())?;
            points
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let at = format!("points[{i}]");
                    if let Some(o) = p.as_object() {
                        parse::check_fields(
                            o,
                            &format!("{at}."),
                            &["id", "vector", "payload"],
                            &[],
                        )?;
                    }
                    PointInput::from_json(p, &at).map_err(ApiError::from)
                })
                .collect()
        }
        (None, Some(batch)) => {
            parse::check_fields(batch, "batch.", &["ids", "vectors", "payloads"], &[])?;
            let ids = parse::ids(
                parse::get(batch, "ids").ok_or_else(|| ApiError::invalid("batch.ids: missing"))?,
                "batch.ids",
            )?;
            n_check(ids.len())?;
            // A list of vectors (the unnamed one), or an object of lists by name.
            let mut vectors: Vec<Vectors> = vec![Vectors::new(); ids.len()];
            let mut sparse: Vec<SparseVectors> = vec![SparseVectors::new(); ids.len()];
            let by_name: Vec<(String, &Vec<Value>)> = match parse::get(batch, "vectors") {
                Some(Value::Array(vs)) => vec![(String::new(), vs)],
                Some(Value::Object(m)) => m
                    .iter()
                    .map(|(name, vs)| match vs {
                        Value::Array(vs) => Ok((name.clone(), vs)),
                        other => Err(ApiError::invalid(format!(
                            "batch.vectors.{name}: expected a list of vectors, got {other}"
                        ))),
                    })
                    .collect::<Result<_, _>>()?,
                _ => {
                    return Err(ApiError::invalid(
                        "batch.vectors: expected a list of vectors or an object of them by name",
                    ));
                }
            };
            for (name, vs) in by_name {
                let at = match name.is_empty() {
                    true => "batch.vectors".to_string(),
                    false => format!("batch.vectors.{name}"),
                };
                if vs.len() != ids.len() {
                    return Err(ApiError::invalid(format!(
                        "{at}: {} vectors for {} ids",
                        vs.len(),
                        ids.len()
                    )));
                }
                for (i, v) in vs.iter().enumerate() {
                    match v {
                        Value::Null => {}
                        Value::Object(o) if !name.is_empty() => {
                            let sv = SparseVector::from_map(o, &format!("{at}[{i}]"))?;
                            sparse[i].insert(name.clone(), sv);
                        }
                        v => {
                            let x = parse::vector(v, &format!("{at}[{i}]"))?;
                            vectors[i].insert(name.clone(), x);
                        }
                    }
                }
            }
            let payloads = match parse::get(batch, "payloads") {
                None => None,
                Some(Value::Array(ps)) if ps.len() == ids.len() => Some(ps),
                Some(Value::Array(ps)) => {
                    return Err(ApiError::invalid(format!(
                        "batch.payloads: {} payloads for {} ids",
                        ps.len(),
                        ids.len()
                    )));
                }
                Some(_) => return Err(ApiError::invalid("batch.payloads: expected a list")),
            };
            ids.into_iter()
                .enumerate()
                .map(|(i, id)| {
                    let payload = match payloads.and_then(|p| p.get(i)) {
                        None | Some(Value::Null) => None,
                        Some(Value::Object(m)) => Some(m.clone()),
                        Some(other) => {
                            return Err(ApiError::invalid(format!(
                                "batch.payloads[{i}]: expected a JSON object, got {other}"
                            )));
                        }
                    };
                    Ok(PointInput {
                        id,
                        vectors: std::mem::take(&mut vectors[i]),
                        sparse: std::mem::take(&mut sparse[i]),
                        payload,
                    })
                })
                .collect()
        }
        (Some(_), Some(_)) => Err(ApiError::invalid("give either points or batch, not both")),
        (Some(_), None) => Err(ApiError::invalid("points: expected a list")),
        (None, None) => Err(ApiError::invalid("points: missing (or give batch)")),
    }
}

pub(crate) async fn upsert_points(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    Path(c): Path<String>,
    _q: Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult {
    let started = Instant::now();
    let h = st.writable(&caller, &c, &dl)?;
    let points = points_from_body(&parse::body(&body)?, st.max_batch_points)?;
    let lsn = blocking(move || h.upsert(points).map_err(ApiError::from)).await?;
    ok(started, update_result(lsn))
}

// ---------------------------------------------------------------- points: reads

pub(crate) async fn retrieve_points(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    Path(c): Path<String>,
    body: Bytes,
) -> ApiResult {
    let started = Instant::now();
    let h = st.readable(&caller, &c, &dl)?;
    let b = parse::body(&body)?;
    parse::check_fields(
        &b,
        "",
        &["ids", "with_payload", "with_vector", "with_vectors"],
        &["shard_key"],
    )?;
    let ids = parse::ids(
        parse::get(&b, "ids").ok_or_else(|| ApiError::invalid("ids: missing"))?,
        "ids",
    )?;
    let sel = parse::with_payload(&b, true, "")?;
    let vsel = parse::with_vector(&b, false, "")?;
    let (wp, wv) = (sel.wants(), vsel.wants());
    let recs = blocking(move || h.get(&ids, wp, wv).map_err(ApiError::from)).await?;
    ok(
        started,
        Value::Array(
            recs.into_iter()
                .map(|r| record_json(r, &sel, &vsel))
                .collect(),
        ),
    )
}

pub(crate) async fn get_point(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    Path((c, id)): Path<(String, String)>,
) -> ApiResult {
    let started = Instant::now();
    let h = st.readable(&caller, &c, &dl)?;
    let pid: PointId = id
        .parse()
        .map_err(|e: strata_engine::Error| ApiError::invalid(format!("id: {}", e.message())))?;
    let mut recs = blocking(move || h.get(&[pid], true, true).map_err(ApiError::from)).await?;
    match recs.pop() {
        Some(r) => ok(
            started,
            record_json(r, &PayloadSelector::All, &parse::VectorSelector::All),
        ),
        None => Err(ApiError::not_found(format!("No point with id {pid} found"))),
    }
}

pub(crate) async fn scroll_points(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    Path(c): Path<String>,
    body: Bytes,
) -> ApiResult {
    let started = Instant::now();
    let h = st.readable(&caller, &c, &dl)?;
    let b = parse::body(&body)?;
    parse::check_fields(
        &b,
        "",
        &[
            "offset",
            "limit",
            "filter",
            "with_payload",
            "with_vector",
            "with_vectors",
        ],
        &["order_by", "shard_key"],
    )?;
    let offset = parse::get(&b, "offset")
        .map(|v| {
            PointId::from_json(v).map_err(|e| ApiError::invalid(format!("offset: {}", e.message())))
        })
        .transpose()?;
    let limit = parse::usize_field(&b, "limit", "")?.unwrap_or(10);
    check_limit(limit, 0, st.max_limit, "")?;
    let sel = parse::with_payload(&b, true, "")?;
    let vsel = parse::with_vector(&b, false, "")?;
    let req = ScrollRequest {
        offset,
        limit,
        filter: parse::filter_field(&b, "filter", "")?,
        with_payload: sel.wants(),
        with_vector: vsel.wants(),
    };
    let page = blocking(move || h.scroll(&req).map_err(ApiError::from)).await?;
    ok(
        started,
        json!({
            "points": page.points.into_iter().map(|r| record_json(r, &sel, &vsel)).collect::<Vec<_>>(),
            "next_page_offset": page.next_offset.map(PointId::to_json),
        }),
    )
}

pub(crate) async fn count_points(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    Path(c): Path<String>,
    body: Bytes,
) -> ApiResult {
    let started = Instant::now();
    let h = st.readable(&caller, &c, &dl)?;
    let b = parse::body(&body)?;
    parse::check_fields(&b, "", &["filter", "exact"], &["shard_key"])?;
    // Counts are always exact; the flag is accepted, and typed like every field.
    parse::bool_field(&b, "exact", "")?;
    let f = parse::filter_field(&b, "filter", "")?;
    let n = blocking(move || h.count(f.as_ref()).map_err(ApiError::from)).await?;
    ok(started, json!({"count": n}))
}

fn check_limit(limit: usize, offset: usize, max: usize, at: &str) -> Result<(), ApiError> {
    if limit == 0 {
        return Err(ApiError::invalid(format!("{at}limit: must be at least 1")));
    }
    if limit.saturating_add(offset) > max {
        return Err(ApiError::invalid(format!(
            "{at}limit + {at}offset = {} exceeds the maximum of {max} (STRATA_MAX_LIMIT)",
            limit.saturating_add(offset)
        )));
    }
    Ok(())
}

/// A recommendation example: a stored point (its `using` vector) or a vector.
#[derive(Clone, Debug)]
pub(super) enum Example {
    Id(PointId),
    Vector(Vec<f32>),
}

/// A parsed search, whether it came as a `query` or a legacy `search` body.
pub(super) struct Search {
    /// Where the search sits in the request (`""`, `prefetch[0].`, `searches[2].`): errors
    /// found while running it are named from there.
    pub(super) at: String,
    pub(super) req: SearchRequest,
    /// A sparse query (searched in the sparse vector `req.using`) instead of `req.vector`.
    pub(super) sparse: Option<SparseVector>,
    pub(super) by_id: Option<PointId>,
    pub(super) mmr: Option<Mmr>,
    /// A recommendation: examples (ids resolved at run time) and strategy.
    pub(super) recommend: Option<(Vec<Example>, Vec<Example>, RecommendStrategy)>,
    /// Sub-queries whose results this one fuses (`fusion`) or re-scores (a vector query).
    pub(super) prefetch: Vec<Search>,
    pub(super) fusion: Option<Fusion>,
    pub(super) sel: PayloadSelector,
    pub(super) vsel: parse::VectorSelector,
    /// No query and no prefetch: the points matching the filter in id order (Qdrant's query
    /// without `query`), each with score 0.
    pub(super) by_id_order: bool,
}

fn search_params(b: &Obj, at: &str, req: &mut SearchRequest) -> Result<(), ApiError> {
    if let Some(p) = parse::obj_field(b, "params", at)? {
        let here = format!("{at}params.");
        parse::check_fields(
            p,
            &here,
            &[
                "hnsw_ef",
                "exact",
                "indexed_only",
                "quantization",
                "cold",
                "cold_deadline_ms",
            ],
            &["acorn"],
        )?;
        req.ef = parse::usize_field(p, "hnsw_ef", &here)?;
        if let Some(ef) = req.ef
            && !(1..=100_000).contains(&ef)
        {
            // Checked here too: a query without `query` scrolls, and never reaches the search.
            return Err(ApiError::invalid(format!(
                "{here}hnsw_ef: must be in 1..=100000, got {ef}"
            )));
        }
        req.exact = parse::bool_field(p, "exact", &here)?.unwrap_or(false);
        // Every segment answers (a memtable is searched exactly): accepted, typed.
        parse::bool_field(p, "indexed_only", &here)?;
        if let Some(qp) = parse::obj_field(p, "quantization", &here)? {
            let here = format!("{here}quantization.");
            parse::check_fields(qp, &here, &["ignore", "rescore", "oversampling"], &[])?;
            req.ignore_quantization = parse::bool_field(qp, "ignore", &here)?.unwrap_or(false);
            req.rescore = parse::bool_field(qp, "rescore", &here)?.unwrap_or(true);
            req.oversampling = match parse::get(qp, "oversampling") {
                None => None,
                Some(v) => match v.as_f64() {
                    Some(o) if (1.0..=1000.0).contains(&o) => Some(o),
                    _ => {
                        return Err(ApiError::invalid(format!(
                            "{here}oversampling: expected a number in 1..=1000, got {v}"
                        )));
                    }
                },
            };
        }
        // Strata extensions (Qdrant clients never send them).
        match parse::get(p, "cold") {
            None => {}
            Some(Value::String(c)) => {
                req.cold = crate::tiers::parse_cold(c, &format!("{here}cold"))?;
            }
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "{here}cold: expected \"include\" or \"skip\", got {other}"
                )));
            }
        }
        req.cold_deadline = parse::usize_field(p, "cold_deadline_ms", &here)?
            .map(|ms| std::time::Duration::from_millis(ms as u64));
    }
    req.score_threshold = parse::f32_field(b, "score_threshold", at)?;
    req.filter = parse::filter_field(b, "filter", at)?;
    Ok(())
}

pub(super) fn parse_query(b: &Obj, at: &str, max: usize) -> Result<Search, ApiError> {
    parse::check_fields(
        b,
        at,
        &[
            "query",
            "filter",
            "limit",
            "offset",
            "with_payload",
            "with_vector",
            "with_vectors",
            "params",
            "score_threshold",
            "using",
            "prefetch",
        ],
        &["lookup_from", "shard_key", "group_by", "group_size"],
    )?;
    let using = match parse::get(b, "using") {
        None => String::new(),
        Some(Value::String(u)) => u.clone(),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "{at}using: expected a vector name, got {other}"
            )));
        }
    };
    let mut mmr = None;
    let mut recommend = None;
    let mut fusion = None;
    let mut sparse = None;
    let prefetch = match parse::get(b, "prefetch") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, p)| parse_prefetch(p, &format!("{at}prefetch[{i}]."), max))
            .collect::<Result<_, _>>()?,
        Some(p @ Value::Object(_)) => vec![parse_prefetch(p, &format!("{at}prefetch."), max)?],
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "{at}prefetch: expected a query object or a list of them, got {v}"
            )));
        }
    };
    let (vector, by_id) = match parse::get(b, "query") {
        None if prefetch.len() == 1 => (Vec::new(), None),
        None if prefetch.len() > 1 => {
            return Err(ApiError::invalid(format!(
                "{at}query: several prefetches need a query to combine them (e.g. {{\"fusion\": \"rrf\"}})"
            )));
        }
        None => (Vec::new(), None),
        Some(v @ Value::Array(_)) => (parse::vector(v, &format!("{at}query"))?, None),
        Some(v @ (Value::Number(_) | Value::String(_))) => (
            Vec::new(),
            Some(
                PointId::from_json(v)
                    .map_err(|e| ApiError::invalid(format!("{at}query: {}", e.message())))?,
            ),
        ),
        Some(Value::Object(o)) => {
            let q = parse_query_object(o, &format!("{at}query"))?;
            sparse = q.sparse;
            mmr = q.mmr;
            recommend = q.recommend;
            fusion = q.fusion;
            if fusion.is_some() && prefetch.is_empty() {
                return Err(ApiError::invalid(format!(
                    "{at}query: fusion needs prefetch (the queries it fuses)"
                )));
            }
            (q.vector, q.by_id)
        }
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "{at}query: expected a vector, got {other}"
            )));
        }
    };
    let limit = parse::usize_field(b, "limit", at)?.unwrap_or(10);
    let offset = parse::usize_field(b, "offset", at)?.unwrap_or(0);
    check_limit(limit, offset, max, at)?;
    let mmr = mmr.map(|(diversity, candidates)| Mmr {
        diversity,
        candidates_limit: candidates.unwrap_or(limit.saturating_add(offset)),
    });
    let mut req = SearchRequest::new(vector, limit);
    req.using = using;
    req.offset = offset;
    search_params(b, at, &mut req)?;
    let sel = parse::with_payload(b, false, at)?;
    req.with_payload = sel.wants();
    let vsel = parse::with_vector(b, false, at)?;
    req.with_vector = vsel.wants();
    let by_id_order = parse::get(b, "query").is_none() && prefetch.is_empty();
    Ok(Search {
        at: at.to_string(),
        req,
        sparse,
        by_id,
        mmr,
        recommend,
        prefetch,
        fusion,
        sel,
        vsel,
        by_id_order,
    })
}

/// The vector or point id of `{"nearest": ..., "mmr": {...}}`; other query kinds are named in a
/// 501 (`query.recommend`), unknown keys in a 400.
/// MMR's `candidates_limit` is `None` when the request leaves it to the default (its limit).
struct QueryObject {
    vector: Vec<f32>,
    sparse: Option<SparseVector>,
    by_id: Option<PointId>,
    mmr: Option<(f32, Option<usize>)>,
    recommend: Option<(Vec<Example>, Vec<Example>, RecommendStrategy)>,
    fusion: Option<Fusion>,
}

/// One prefetch: a query (with `prefetch`, `using`, `filter`, `params`, `score_threshold`,
/// `limit` — 10 by default); payloads and vectors are the outer query's.
fn parse_prefetch(v: &Value, at: &str, max: usize) -> Result<Search, ApiError> {
    let o = v
        .as_object()
        .ok_or_else(|| ApiError::invalid(format!("{at}: expected a query object, got {v}")))?;
    parse::check_fields(
        o,
        at,
        &[
            "prefetch",
            "query",
            "using",
            "filter",
            "params",
            "score_threshold",
            "limit",
        ],
        &["lookup_from"],
    )?;
    parse_query(o, at, max)
}

fn parse_fusion(o: &Obj, at: &str) -> Result<Option<Fusion>, ApiError> {
    if parse::get(o, "fusion").is_some() && parse::get(o, "rrf").is_some() {
        return Err(ApiError::invalid(format!(
            "{at}: fusion and rrf are two ways to ask for a fusion: give one"
        )));
    }
    if let Some(f) = parse::get(o, "fusion") {
        return match f.as_str() {
            Some("rrf") => Ok(Some(Fusion::Rrf { k: DEFAULT_RRF_K })),
            Some("dbsf") => Ok(Some(Fusion::Dbsf)),
            _ => Err(ApiError::invalid(format!(
                "{at}.fusion: expected \"rrf\" or \"dbsf\", got {f}"
            ))),
        };
    }
    if let Some(r) = parse::obj_field(o, "rrf", &format!("{at}."))? {
        let here = format!("{at}.rrf.");
        parse::check_fields(r, &here, &["k"], &["weights"])?;
        let k = parse::usize_field(r, "k", &here)?.unwrap_or(DEFAULT_RRF_K);
        if k == 0 {
            return Err(ApiError::invalid(format!("{here}k: must be at least 1")));
        }
        return Ok(Some(Fusion::Rrf { k }));
    }
    Ok(None)
}

/// A list of examples at `at`: point ids or vectors.
fn examples(o: &Obj, key: &str, at: &str) -> Result<Vec<Example>, ApiError> {
    match parse::get(o, key) {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let here = format!("{at}{key}[{i}]");
                match v {
                    Value::Array(_) => Ok(Example::Vector(parse::vector(v, &here)?)),
                    // A well-formed sparse vector is a feature Strata lacks here (501);
                    // any other object is malformed (400, naming what is wrong with it).
                    Value::Object(m) => match SparseVector::from_map(m, &here) {
                        Ok(_) => Err(ApiError::unsupported(&format!("{here}: a sparse example"))),
                        Err(e) => Err(e.into()),
                    },
                    _ => PointId::from_json(v)
                        .map(Example::Id)
                        .map_err(|e| ApiError::invalid(format!("{here}: {}", e.message()))),
                }
            })
            .collect(),
        Some(v) => Err(ApiError::invalid(format!(
            "{at}{key}: expected a list of point ids or vectors, got {v}"
        ))),
    }
}

fn parse_recommend(r: &Obj, at: &str) -> Result<QueryObject, ApiError> {
    let here = format!("{at}.recommend.");
    parse::check_fields(r, &here, &["positive", "negative", "strategy"], &[])?;
    let strategy = match parse::get(r, "strategy") {
        None => RecommendStrategy::AverageVector,
        Some(Value::String(s)) => match s.as_str() {
            "average_vector" => RecommendStrategy::AverageVector,
            "best_score" => RecommendStrategy::BestScore,
            "sum_scores" => RecommendStrategy::SumScores,
            other => {
                return Err(ApiError::invalid(format!(
                    "{here}strategy: expected average_vector, best_score or sum_scores, got {other:?}"
                )));
            }
        },
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "{here}strategy: expected a string, got {v}"
            )));
        }
    };
    Ok(QueryObject {
        vector: Vec::new(),
        sparse: None,
        by_id: None,
        mmr: None,
        recommend: Some((
            examples(r, "positive", &here)?,
            examples(r, "negative", &here)?,
            strategy,
        )),
        fusion: None,
    })
}

fn parse_query_object(o: &Obj, at: &str) -> Result<QueryObject, ApiError> {
    // A sparse vector given directly: `{"indices": [...], "values": [...]}`.
    if o.contains_key("indices") || o.contains_key("values") {
        return Ok(QueryObject {
            vector: Vec::new(),
            sparse: Some(SparseVector::from_map(o, at)?),
            by_id: None,
            mmr: None,
            recommend: None,
            fusion: None,
        });
    }
    if let Some(f) = parse_fusion(o, at)? {
        parse::check_fields(o, &format!("{at}."), &["fusion", "rrf"], &[])?;
        return Ok(QueryObject {
            vector: Vec::new(),
            sparse: None,
            by_id: None,
            mmr: None,
            recommend: None,
            fusion: Some(f),
        });
    }
    if let Some(r) = parse::obj_field(o, "recommend", &format!("{at}."))? {
        parse::check_fields(o, &format!("{at}."), &["recommend"], &[])?;
        return parse_recommend(r, at);
    }
    const UNSUPPORTED: &[&str] = &[
        "discover",
        "context",
        "order_by",
        "formula",
        "sample",
        "relevance_feedback",
    ];
    if let Some(k) = o.keys().find(|k| UNSUPPORTED.contains(&k.as_str())) {
        return Err(ApiError::unsupported(&format!("{at}.{k}")));
    }
    parse::check_fields(o, &format!("{at}."), &["nearest", "mmr"], &[])?;
    let nearest = parse::get(o, "nearest").ok_or_else(|| {
        ApiError::invalid(format!("{at}: expected \"nearest\" or another query kind"))
    })?;
    let (vector, by_id, sparse) = match nearest {
        v @ Value::Array(_) => (parse::vector(v, &format!("{at}.nearest"))?, None, None),
        Value::Object(n) if n.contains_key("indices") || n.contains_key("values") => (
            Vec::new(),
            None,
            Some(SparseVector::from_map(n, &format!("{at}.nearest"))?),
        ),
        other => (
            Vec::new(),
            Some(
                PointId::from_json(other)
                    .map_err(|e| ApiError::invalid(format!("{at}.nearest: {}", e.message())))?,
            ),
            None,
        ),
    };
    let mmr = match parse::obj_field(o, "mmr", &format!("{at}."))? {
        None => None,
        Some(m) => {
            let here = format!("{at}.mmr.");
            parse::check_fields(m, &here, &["diversity", "candidates_limit"], &[])?;
            Some((
                parse::f32_field(m, "diversity", &here)?.unwrap_or(Mmr::DEFAULT_DIVERSITY),
                parse::usize_field(m, "candidates_limit", &here)?,
            ))
        }
    };
    if sparse.is_some() && mmr.is_some() {
        return Err(ApiError::unsupported(&format!(
            "{at}.mmr with a sparse vector"
        )));
    }
    Ok(QueryObject {
        vector,
        sparse,
        by_id,
        mmr,
        recommend: None,
        fusion: None,
    })
}

pub(super) fn parse_search(b: &Obj, at: &str, max: usize) -> Result<Search, ApiError> {
    parse::check_fields(
        b,
        at,
        &[
            "vector",
            "filter",
            "limit",
            "offset",
            "with_payload",
            "with_vector",
            "with_vectors",
            "params",
            "score_threshold",
        ],
        &["shard_key"],
    )?;
    // A list (the unnamed vector) or {"name", "vector"} (a named one).
    let mut sparse = None;
    let (using, vector) = match parse::get(b, "vector") {
        None => return Err(ApiError::invalid(format!("{at}vector: missing"))),
        Some(Value::Object(o)) => {
            parse::check_fields(o, &format!("{at}vector."), &["name", "vector"], &[])?;
            let name = parse::get(o, "name")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::invalid(format!("{at}vector.name: missing")))?;
            let v = parse::get(o, "vector")
                .ok_or_else(|| ApiError::invalid(format!("{at}vector.vector: missing")))?;
            match v {
                // A named sparse vector: {"name", "vector": {"indices", "values"}}.
                Value::Object(sv) => {
                    sparse = Some(SparseVector::from_map(sv, &format!("{at}vector.vector"))?);
                    (name.to_string(), Vec::new())
                }
                v => (
                    name.to_string(),
                    parse::vector(v, &format!("{at}vector.vector"))?,
                ),
            }
        }
        Some(v) => (String::new(), parse::vector(v, &format!("{at}vector"))?),
    };
    let limit = parse::usize_field(b, "limit", at)?
        .ok_or_else(|| ApiError::invalid(format!("{at}limit: missing")))?;
    let offset = parse::usize_field(b, "offset", at)?.unwrap_or(0);
    check_limit(limit, offset, max, at)?;
    let mut req = SearchRequest::new(vector, limit);
    req.using = using;
    req.offset = offset;
    search_params(b, at, &mut req)?;
    let sel = parse::with_payload(b, false, at)?;
    req.with_payload = sel.wants();
    let vsel = parse::with_vector(b, false, at)?;
    req.with_vector = vsel.wants();
    Ok(Search {
        at: at.to_string(),
        req,
        sparse,
        by_id: None,
        mmr: None,
        recommend: None,
        prefetch: Vec::new(),
        fusion: None,
        sel,
        vsel,
        by_id_order: false,
    })
}

/// Runs one search on the blocking pool (a query by point id first looks up that point's vector
/// and excludes it from the results, as Qdrant does).
fn run_search(h: &CollectionHandle, s: Search) -> Result<(Vec<Value>, ColdCounts), ApiError> {
    let (sel, vsel) = (s.sel.clone(), s.vsel.clone());
    let report = execute(h, s)?;
    let counts = cold_counts(&report);
    let points = report
        .points
        .into_iter()
        .map(|p| scored_json(p, &sel, &vsel))
        .collect();
    Ok((points, counts))
}

/// True when the scores `execute(s)` answers are distances (smaller is better): a search or
/// average-vector recommendation on a Euclid vector, or a prefetch passed through from one.
/// Fusion and example-scored recommendations answer larger-is-better scores.
fn smaller_is_better(config: &strata_engine::CollectionConfig, s: &Search) -> bool {
    if !s.prefetch.is_empty() {
        if s.fusion.is_some() {
            return false;
        }
        if let [only] = s.prefetch.as_slice()
            && s.req.vector.is_empty()
            && s.sparse.is_none()
            && s.by_id.is_none()
            && s.recommend.is_none()
        {
            return smaller_is_better(config, only);
        }
    }
    if let Some((_, _, strategy)) = &s.recommend
        && *strategy != RecommendStrategy::AverageVector
    {
        return false;
    }
    if s.sparse.is_some() {
        return false;
    }
    config
        .space(&s.req.using)
        .is_some_and(|i| config.vectors[i].1.distance == Distance::Euclid)
}

/// Runs a parsed query: its prefetches first (each with the outer filter too, and the outer
/// payload and vector choices), fused or re-scored by the outer query; else one search.
pub(super) fn execute(h: &CollectionHandle, mut s: Search) -> Result<SearchReport, ApiError> {
    if s.by_id_order {
        // `using` names a vector even when nothing is searched: checked as a search would.
        let config = h.config();
        if !s.req.using.is_empty()
            && config.space(&s.req.using).is_none()
            && config.sparse_space(&s.req.using).is_none()
        {
            return Err(ApiError::invalid(format!(
                "{}using: the collection has no vector named {:?}",
                s.at, s.req.using
            )));
        }
        // `offset` points skipped, then `limit` (their sum is bounded as for any search).
        let page = h.scroll(&ScrollRequest {
            offset: None,
            limit: s.req.limit.saturating_add(s.req.offset),
            filter: s.req.filter.take(),
            with_payload: s.req.with_payload,
            with_vector: s.req.with_vector,
        })?;
        let points = page
            .points
            .into_iter()
            .skip(s.req.offset)
            .map(|r| ScoredPoint {
                id: r.id,
                version: r.version,
                score: 0.0,
                payload: r.payload,
                vectors: r.vectors,
                sparse: r.sparse,
            })
            .collect();
        let mut report = SearchReport::default();
        report.points = points;
        return Ok(report);
    }
    if !s.prefetch.is_empty() {
        let config = h.config();
        let mut total = SearchReport::default();
        let mut lists = Vec::with_capacity(s.prefetch.len());
        for mut p in std::mem::take(&mut s.prefetch) {
            p.req.filter = Filter::both(p.req.filter.take(), s.req.filter.clone());
            p.req.with_payload = s.req.with_payload;
            p.req.with_vector = s.req.with_vector;
            let smaller_is_better = smaller_is_better(&config, &p);
            let r = execute(h, p)?;
            total.cold_searched += r.cold_searched;
            total.cold_skipped += r.cold_skipped;
            total.cold_left_out += r.cold_left_out;
            lists.push(Ranked {
                points: r.points,
                smaller_is_better,
            });
        }
        match (s.fusion, lists.len()) {
            (Some(f), _) => {
                let fused = fuse(lists, f);
                total.points = fused
                    .into_iter()
                    .filter(|p| s.req.score_threshold.is_none_or(|t| p.score >= t))
                    .skip(s.req.offset)
                    .take(s.req.limit)
                    .collect();
                return Ok(total);
            }
            (None, 1)
                if s.req.vector.is_empty()
                    && s.sparse.is_none()
                    && s.by_id.is_none()
                    && s.recommend.is_none() =>
            {
                let (only, smaller) = lists
                    .pop()
                    .map(|l| (l.points, l.smaller_is_better))
                    .unwrap_or_default();
                // The outer score_threshold applies to the passed-through scores.
                total.points = only
                    .into_iter()
                    .filter(|p| match s.req.score_threshold {
                        None => true,
                        Some(t) if smaller => p.score <= t,
                        Some(t) => p.score >= t,
                    })
                    .skip(s.req.offset)
                    .take(s.req.limit)
                    .collect();
                return Ok(total);
            }
            (None, _) => {
                // Re-score the prefetched candidates with the outer query, exactly.
                let ids: Vec<PointId> = lists
                    .iter()
                    .flat_map(|l| l.points.iter().map(|p| p.id))
                    .collect();
                s.req.filter = Some(Filter::only(s.req.filter.take(), ids));
                s.req.exact = true;
            }
        }
    }
    resolve_by_id(h, &mut s)?;
    if let Some(q) = &s.sparse {
        if s.recommend.is_some() {
            return Err(ApiError::unsupported("query.recommend on a sparse vector"));
        }
        return Ok(h.search_sparse(&s.req, q)?);
    }
    let report = match (s.mmr, s.recommend.take()) {
        (_, Some((pos, neg, strategy))) => {
            let rec = resolve_examples(h, &mut s.req, pos, neg, strategy)?;
            // The engine names the example (`recommend.positive[0]`); the request has it under
            // `query`.
            let at = format!("{}query.", s.at);
            h.search_recommend(&s.req, &rec).map_err(|e| {
                let e = ApiError::from(e);
                match e.message.starts_with("recommend") {
                    true => ApiError::new(e.kind, format!("{at}{}", e.message)),
                    false => e,
                }
            })?
        }
        (Some(mmr), None) => h.search_mmr(&s.req, mmr)?,
        (None, None) => h.search_report(&s.req)?,
    };
    Ok(report)
}

/// The vectors of recommendation examples: stored points give their `using` vector (404 when
/// absent) and are left out of the results, as Qdrant does.
pub(super) fn resolve_examples(
    h: &CollectionHandle,
    req: &mut SearchRequest,
    pos: Vec<Example>,
    neg: Vec<Example>,
    strategy: RecommendStrategy,
) -> Result<Recommend, ApiError> {
    let ids: Vec<PointId> = pos
        .iter()
        .chain(&neg)
        .filter_map(|e| match e {
            Example::Id(id) => Some(*id),
            Example::Vector(_) => None,
        })
        .collect();
    let found = match ids.is_empty() {
        true => Vec::new(),
        false => h.get(&ids, false, true)?,
    };
    let vector_of = |e: Example| -> Result<Vec<f32>, ApiError> {
        match e {
            Example::Vector(v) => Ok(v),
            Example::Id(id) => {
                let r = found
                    .iter()
                    .find(|r| r.id == id)
                    .ok_or_else(|| ApiError::not_found(format!("No point with id {id} found")))?;
                r.vectors
                    .as_ref()
                    .and_then(|v| v.get(&req.using))
                    .cloned()
                    .ok_or_else(|| {
                        ApiError::invalid(format!(
                            "query.recommend: point {id} has no vector named {:?}",
                            req.using
                        ))
                    })
            }
        }
    };
    let rec = Recommend {
        positive: pos.into_iter().map(vector_of).collect::<Result<_, _>>()?,
        negative: neg.into_iter().map(vector_of).collect::<Result<_, _>>()?,
        strategy,
    };
    if !ids.is_empty() {
        req.filter = Some(Filter::excluding(req.filter.take(), ids));
    }
    Ok(rec)
}

pub(super) fn cold_counts(r: &strata_engine::SearchReport) -> ColdCounts {
    [r.cold_searched, r.cold_skipped, r.cold_left_out]
}

/// A query by point id becomes a query by that point's vector (`using`), excluding the point
/// from its own results as Qdrant does.
pub(super) fn resolve_by_id(h: &CollectionHandle, s: &mut Search) -> Result<(), ApiError> {
    if let Some(id) = s.by_id.take() {
        let mut rec = h
            .get(&[id], false, true)?
            .pop()
            .ok_or_else(|| ApiError::not_found(format!("No point with id {id} found")))?;
        // A sparse `using`: the point's sparse vector is the query.
        if h.config().sparse_space(&s.req.using).is_some() {
            s.sparse = Some(rec.sparse.remove(&s.req.using).ok_or_else(|| {
                ApiError::invalid(format!(
                    "query: point {id} has no sparse vector named {:?}",
                    s.req.using
                ))
            })?);
            s.req.filter = Some(Filter::excluding(s.req.filter.take(), vec![id]));
            return Ok(());
        }
        s.req.vector = rec
            .vectors
            .and_then(|mut v| v.remove(&s.req.using))
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "query: point {id} has no vector named {:?}",
                    s.req.using
                ))
            })?;
        // As Qdrant: the example is not among its own results.
        s.req.filter = Some(Filter::excluding(s.req.filter.take(), vec![id]));
    }
    Ok(())
}

/// Cold segments a search read, skipped (their summaries could not beat the results) and left
/// out (`params.cold = "skip"` or `params.cold_deadline_ms` passed).
pub(super) type ColdCounts = [u64; 3];

/// The Qdrant envelope, with the cold segments the search(es) touched in a
/// `strata-cold-segments` header (and `strata-partial: true` when some were left out): headers,
/// so that Qdrant clients see exactly Qdrant's body.
pub(super) fn searched(
    started: Instant,
    result: Value,
    c: ColdCounts,
) -> Result<Response, ApiError> {
    let mut r = ok(started, result)?.into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "searched={}, skipped={}, left_out={}",
        c[0], c[1], c[2]
    )) {
        h.insert("strata-cold-segments", v);
    }
    if c[2] > 0 {
        h.insert("strata-partial", HeaderValue::from_static("true"));
    }
    Ok(r)
}

pub(crate) async fn query_points(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    Path(c): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let h = st.readable(&caller, &c, &dl)?;
    let s = parse_query(&parse::body(&body)?, "", st.max_limit)?;
    let (points, cold) = blocking(move || run_search(&h, s)).await?;
    searched(started, json!({"points": points}), cold)
}

fn searches(b: &Obj, max: usize) -> Result<&Vec<Value>, ApiError> {
    parse::check_fields(b, "", &["searches"], &[])?;
    match parse::get(b, "searches") {
        Some(Value::Array(a)) if a.len() > max => Err(ApiError::new(
            crate::error::Kind::Engine(strata_engine::ErrorKind::ResourceExhausted),
            format!(
                "searches: {} searches exceed the limit of {max} (STRATA_MAX_BATCH_SEARCHES)",
                a.len()
            ),
        )),
        Some(Value::Array(a)) => Ok(a),
        _ => Err(ApiError::invalid("searches: expected a list")),
    }
}

/// A batch of searches: each entry parsed with `parse` (errors name `searches[i].field`), all
/// run on one blocking task, each result wrapped with `wrap`.
async fn run_batch(
    st: AppState,
    caller: Caller,
    dl: ReqDeadline,
    c: String,
    body: Bytes,
    parse: fn(&Obj, &str, usize) -> Result<Search, ApiError>,
    wrap: fn(Vec<Value>) -> Value,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let h = st.readable(&caller, &c, &dl)?;
    let b = parse::body(&body)?;
    let parsed = searches(&b, st.max_batch_searches)?
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let at = format!("searches[{i}].");
            let o = s
                .as_object()
                .ok_or_else(|| ApiError::invalid(format!("{at}: expected an object")))?;
            parse(o, &at, st.max_limit)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (out, cold) = blocking(move || {
        let mut cold = [0u64; 3];
        let out = parsed
            .into_iter()
            .map(|s| {
                let (points, c) = run_search(&h, s)?;
                for (total, n) in cold.iter_mut().zip(c) {
                    *total += n;
                }
                Ok(wrap(points))
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok((out, cold))
    })
    .await?;
    searched(started, Value::Array(out), cold)
}

pub(crate) async fn query_batch(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    Path(c): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    run_batch(
        st,
        caller,
        dl,
        c,
        body,
        parse_query,
        |p| json!({"points": p}),
    )
    .await
}

pub(crate) async fn search_points(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    Path(c): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let h = st.readable(&caller, &c, &dl)?;
    let s = parse_search(&parse::body(&body)?, "", st.max_limit)?;
    let (points, cold) = blocking(move || run_search(&h, s)).await?;
    searched(started, Value::Array(points), cold)
}

pub(crate) async fn search_batch(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    Path(c): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    run_batch(st, caller, dl, c, body, parse_search, Value::Array).await
}

// ---------------------------------------------------------------- tiers (Strata extension)

pub(crate) async fn get_tiers(State(st): State<AppState>, caller: Caller) -> ApiResult {
    let started = Instant::now();
    crate::tiers::manager(&caller)?;
    let engine = st.engine.clone();
    let tenant = caller.0.tenant.clone();
    let r = blocking(move || crate::tiers::report(&engine, &tenant)).await?;
    ok(started, crate::tiers::to_json(&r))
}

/// The `{"hint"}` body of a tier route.
fn hint_body(body: &Bytes) -> Result<strata_engine::TierHint, ApiError> {
    let b = parse::body(body)?;
    parse::check_fields(&b, "", &["hint"], &[])?;
    match parse::get(&b, "hint") {
        Some(Value::String(h)) => crate::tiers::parse_hint(h, "hint"),
        Some(other) => Err(ApiError::invalid(format!(
            "hint: expected one of auto, pin_hot, warm, offload, got {other}"
        ))),
        None => Err(ApiError::invalid("hint: missing")),
    }
}

pub(crate) async fn set_tier(
    State(st): State<AppState>,
    caller: Caller,
    Path(c): Path<String>,
    body: Bytes,
) -> ApiResult {
    let started = Instant::now();
    crate::tiers::manager(&caller)?;
    let hint = hint_body(&body)?;
    blocking(move || crate::tiers::set_hint(&st, &caller, &c, hint)).await?;
    ok(started, json!(true))
}

/// `PUT /v1/actor_types/{actor_type}/tier` `{"hint"}`.
pub(crate) async fn set_actor_tier(
    State(st): State<AppState>,
    caller: Caller,
    Path(ty): Path<String>,
    body: Bytes,
) -> ApiResult {
    let started = Instant::now();
    crate::tiers::manager(&caller)?;
    let hint = hint_body(&body)?;
    blocking(move || crate::tiers::set_actor_hint(&st, &caller, &ty, hint)).await?;
    ok(started, json!(true))
}
