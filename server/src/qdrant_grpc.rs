//! Qdrant's gRPC services (`qdrant.Qdrant`, `qdrant.Collections`, `qdrant.Points`; a
//! wire-compatible subset in `proto/qdrant/qdrant.proto`) beside `strata.v1`, for clients
//! such as qdrant-client with `prefer_grpc=True`.
//!
//! ```text
//! call ─▶ interceptor (the same JWT / api-key check as strata.v1) ─▶ method: the request as
//!         Qdrant's REST body (JSON) ─▶ the HTTP handler of that route (same parsing, checks,
//!         errors naming the field, engine calls) ─▶ its JSON result as the gRPC response
//! ```
//! Going through the REST handlers keeps one implementation of every rule: a gRPC call
//! answers exactly what the same call over HTTP answers (the e2e suite runs the same scenario
//! both ways). A request that uses something the subset leaves out (server-side inference,
//! formulas) arrives with its oneof unset and is refused, never read as a default.

// Qdrant marks fields deprecated that older clients still send (a vector's `data`, `on_disk`):
// they are part of the wire format this module must read and write.
#![allow(deprecated)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde_json::{Map, Value, json};
use tonic::{Request, Response, Status};

use crate::auth::Authenticator;
use crate::error::ApiError;
use crate::grpc::{authenticate, caller, deadline, tracked};
use crate::http::handlers as h;
use crate::http::{AppState, aliases, updates};

/// Generated code.
#[allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    missing_debug_implementations
)]
pub mod qpb {
    tonic::include_proto!("qdrant");
    /// Descriptor set for reflection.
    pub const DESCRIPTOR: &[u8] = tonic::include_file_descriptor_set!("qdrant_descriptor");
}

use qpb::collections_server::{Collections, CollectionsServer};
use qpb::points_server::{Points, PointsServer};
use qpb::qdrant_server::{Qdrant, QdrantServer};
use qpb::snapshots_server::{Snapshots, SnapshotsServer};

/// The three services share the HTTP state.
#[derive(Debug, Clone)]
pub struct Service(AppState);

// ------------------------------------------------------------------------ proto → REST JSON

fn unsupported(what: &str) -> ApiError {
    ApiError::unsupported(what)
}

fn value_json(v: &qpb::Value) -> Value {
    use qpb::value::Kind;
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::DoubleValue(d)) => json!(d),
        Some(Kind::IntegerValue(i)) => json!(i),
        Some(Kind::StringValue(s)) => json!(s),
        Some(Kind::BoolValue(b)) => json!(b),
        Some(Kind::StructValue(s)) => map_json(&s.fields),
        Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(value_json).collect()),
    }
}

fn map_json(m: &HashMap<String, qpb::Value>) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.clone(), value_json(v))).collect())
}

fn pid_json(p: Option<&qpb::PointId>, at: &str) -> Result<Value, ApiError> {
    use qpb::point_id::PointIdOptions;
    match p.and_then(|p| p.point_id_options.as_ref()) {
        Some(PointIdOptions::Num(n)) => Ok(json!(n)),
        Some(PointIdOptions::Uuid(u)) => Ok(json!(u)),
        None => Err(ApiError::invalid(format!("{at}: missing point id"))),
    }
}

fn pids_json(ids: &[qpb::PointId], at: &str) -> Result<Value, ApiError> {
    ids.iter()
        .enumerate()
        .map(|(i, p)| pid_json(Some(p), &format!("{at}[{i}]")))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

fn sparse_json(indices: &[u32], values: &[f32]) -> Value {
    json!({"indices": indices, "values": values})
}

/// A point's vector: dense, sparse (the `vector` oneof, or the deprecated `data` + `indices`).
fn vector_json(v: &qpb::Vector, at: &str) -> Result<Value, ApiError> {
    use qpb::vector::Vector as V;
    match &v.vector {
        Some(V::Dense(d)) => Ok(json!(d.data)),
        Some(V::Sparse(s)) => Ok(sparse_json(&s.indices, &s.values)),
        Some(V::MultiDense(_)) => Err(unsupported(&format!("{at}: multi-vectors"))),
        None => match &v.indices {
            Some(i) => Ok(sparse_json(&i.data, &v.data)),
            None if v.vectors_count.is_some_and(|n| n > 1) => {
                Err(unsupported(&format!("{at}: multi-vectors")))
            }
            None if v.data.is_empty() => Err(unsupported(&format!(
                "{at}: a vector input Strata does not serve (server-side inference)"
            ))),
            None => Ok(json!(v.data)),
        },
    }
}

fn vectors_json(v: Option<&qpb::Vectors>, at: &str) -> Result<Value, ApiError> {
    use qpb::vectors::VectorsOptions;
    match v.and_then(|v| v.vectors_options.as_ref()) {
        Some(VectorsOptions::Vector(v)) => vector_json(v, at),
        Some(VectorsOptions::Vectors(n)) => n
            .vectors
            .iter()
            .map(|(name, v)| Ok((name.clone(), vector_json(v, &format!("{at}.{name}"))?)))
            .collect::<Result<Map<_, _>, ApiError>>()
            .map(Value::Object),
        None => Err(ApiError::invalid(format!("{at}: missing"))),
    }
}

fn vector_input_json(v: Option<&qpb::VectorInput>, at: &str) -> Result<Value, ApiError> {
    use qpb::vector_input::Variant;
    match v.and_then(|v| v.variant.as_ref()) {
        Some(Variant::Id(p)) => pid_json(Some(p), at),
        Some(Variant::Dense(d)) => Ok(json!(d.data)),
        Some(Variant::Sparse(s)) => Ok(sparse_json(&s.indices, &s.values)),
        Some(Variant::MultiDense(_)) => Err(unsupported(&format!("{at}: multi-vectors"))),
        None => Err(unsupported(&format!(
            "{at}: a vector input Strata does not serve (server-side inference)"
        ))),
    }
}

fn timestamp_json(t: &prost_types::Timestamp) -> Value {
    let nanos = u32::try_from(t.nanos.clamp(0, 999_999_999)).unwrap_or(0);
    match chrono::DateTime::from_timestamp(t.seconds, nanos) {
        Some(d) => json!(d.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()),
        None => json!(format!("{}s", t.seconds)),
    }
}

fn field_condition_json(f: &qpb::FieldCondition) -> Value {
    use qpb::r#match::MatchValue as M;
    let mut o = Map::new();
    o.insert("key".into(), json!(f.key));
    if let Some(m) = f.r#match.as_ref().and_then(|m| m.match_value.as_ref()) {
        let m = match m {
            M::Keyword(s) => json!({"value": s}),
            M::Integer(i) => json!({"value": i}),
            M::Boolean(b) => json!({"value": b}),
            M::Text(s) => json!({"text": s}),
            M::Keywords(k) => json!({"any": k.strings}),
            M::Integers(k) => json!({"any": k.integers}),
            M::ExceptIntegers(k) => json!({"except": k.integers}),
            M::ExceptKeywords(k) => json!({"except": k.strings}),
            M::Phrase(s) => json!({"phrase": s}),
            M::TextAny(s) => json!({"text_any": s}),
            M::Prefix(s) => json!({"prefix": s}),
            M::Substring(s) => json!({"substring": s}),
        };
        o.insert("match".into(), m);
    }
    if let Some(r) = &f.range {
        let mut range = Map::new();
        for (k, v) in [("lt", r.lt), ("gt", r.gt), ("gte", r.gte), ("lte", r.lte)] {
            if let Some(v) = v {
                range.insert(k.into(), json!(v));
            }
        }
        o.insert("range".into(), Value::Object(range));
    }
    if let Some(r) = &f.datetime_range {
        let mut range = Map::new();
        for (k, v) in [
            ("lt", &r.lt),
            ("gt", &r.gt),
            ("gte", &r.gte),
            ("lte", &r.lte),
        ] {
            if let Some(v) = v {
                range.insert(k.into(), timestamp_json(v));
            }
        }
        o.insert("range".into(), Value::Object(range));
    }
    // Conditions Strata refuses by name over HTTP are passed on so that the answer is the same.
    for (k, set) in [
        ("geo_bounding_box", f.geo_bounding_box.is_some()),
        ("geo_radius", f.geo_radius.is_some()),
        ("geo_polygon", f.geo_polygon.is_some()),
        ("values_count", f.values_count.is_some()),
    ] {
        if set {
            o.insert(k.into(), json!({}));
        }
    }
    if f.is_empty == Some(true) {
        return json!({"is_empty": {"key": f.key}});
    }
    if f.is_null == Some(true) {
        return json!({"is_null": {"key": f.key}});
    }
    Value::Object(o)
}

fn condition_json(c: &qpb::Condition) -> Result<Value, ApiError> {
    use qpb::condition::ConditionOneOf as C;
    Ok(match &c.condition_one_of {
        Some(C::Field(f)) => field_condition_json(f),
        Some(C::IsEmpty(e)) => json!({"is_empty": {"key": e.key}}),
        Some(C::IsNull(e)) => json!({"is_null": {"key": e.key}}),
        Some(C::HasId(h)) => json!({"has_id": pids_json(&h.has_id, "filter.has_id")?}),
        Some(C::Filter(f)) => filter_json(f)?,
        Some(C::Nested(n)) => json!({"nested": {"key": n.key,
            "filter": n.filter.as_ref().map(filter_json).transpose()?}}),
        Some(C::HasVector(v)) => json!({"has_vector": v.has_vector}),
        Some(C::Slice(_)) => json!({"slice": {}}),
        None => return Err(ApiError::invalid("filter: a condition with no kind")),
    })
}

fn filter_json(f: &qpb::Filter) -> Result<Value, ApiError> {
    let list = |cs: &[qpb::Condition]| -> Result<Value, ApiError> {
        cs.iter()
            .map(condition_json)
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array)
    };
    let mut o = Map::new();
    for (k, cs) in [
        ("must", &f.must),
        ("should", &f.should),
        ("must_not", &f.must_not),
    ] {
        if !cs.is_empty() {
            o.insert(k.into(), list(cs)?);
        }
    }
    if let Some(m) = &f.min_should {
        o.insert(
            "min_should".into(),
            json!({"conditions": list(&m.conditions)?, "min_count": m.min_count}),
        );
    }
    Ok(Value::Object(o))
}

fn with_payload_json(s: Option<&qpb::WithPayloadSelector>) -> Option<Value> {
    use qpb::with_payload_selector::SelectorOptions as S;
    Some(match s?.selector_options.as_ref()? {
        S::Enable(b) => json!(b),
        S::Include(i) => json!(i.fields),
        S::Exclude(e) => json!({"exclude": e.fields}),
    })
}

fn with_vectors_json(s: Option<&qpb::WithVectorsSelector>) -> Option<Value> {
    use qpb::with_vectors_selector::SelectorOptions as S;
    Some(match s?.selector_options.as_ref()? {
        S::Enable(b) => json!(b),
        S::Include(i) => json!(i.names),
    })
}

fn params_json(p: &qpb::SearchParams) -> Value {
    let mut o = Map::new();
    if let Some(ef) = p.hnsw_ef {
        o.insert("hnsw_ef".into(), json!(ef));
    }
    if let Some(e) = p.exact {
        o.insert("exact".into(), json!(e));
    }
    if let Some(i) = p.indexed_only {
        o.insert("indexed_only".into(), json!(i));
    }
    if let Some(q) = &p.quantization {
        let mut qo = Map::new();
        if let Some(i) = q.ignore {
            qo.insert("ignore".into(), json!(i));
        }
        if let Some(r) = q.rescore {
            qo.insert("rescore".into(), json!(r));
        }
        if let Some(x) = q.oversampling {
            // JSON has no NaN or infinity: pass those as text, refused as "expected a number".
            let v = if x.is_finite() {
                json!(x)
            } else {
                json!(x.to_string())
            };
            qo.insert("oversampling".into(), v);
        }
        o.insert("quantization".into(), Value::Object(qo));
    }
    Value::Object(o)
}

fn query_json(q: Option<&qpb::Query>, at: &str) -> Result<Value, ApiError> {
    use qpb::query::Variant as Q;
    let strategy = |s: Option<i32>| match qpb::RecommendStrategy::try_from(s.unwrap_or(0)) {
        Ok(qpb::RecommendStrategy::BestScore) => "best_score",
        Ok(qpb::RecommendStrategy::SumScores) => "sum_scores",
        _ => "average_vector",
    };
    let inputs = |v: &[qpb::VectorInput], key: &str| -> Result<Value, ApiError> {
        v.iter()
            .enumerate()
            .map(|(i, x)| vector_input_json(Some(x), &format!("{at}.recommend.{key}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array)
    };
    Ok(match q.and_then(|q| q.variant.as_ref()) {
        Some(Q::Nearest(v)) => {
            json!({"nearest": vector_input_json(Some(v), &format!("{at}.nearest"))?})
        }
        Some(Q::Recommend(r)) => json!({"recommend": {
            "positive": inputs(&r.positive, "positive")?,
            "negative": inputs(&r.negative, "negative")?,
            "strategy": strategy(r.strategy)}}),
        Some(Q::Fusion(f)) => match qpb::Fusion::try_from(*f) {
            Ok(qpb::Fusion::Dbsf) => json!({"fusion": "dbsf"}),
            _ => json!({"fusion": "rrf"}),
        },
        Some(Q::Rrf(r)) => {
            let mut o = Map::new();
            if let Some(k) = r.k {
                o.insert("k".into(), json!(k));
            }
            if !r.weights.is_empty() {
                o.insert("weights".into(), json!(r.weights));
            }
            json!({"rrf": o})
        }
        Some(Q::NearestWithMmr(n)) => {
            let mut mmr = Map::new();
            if let Some(m) = &n.mmr {
                if let Some(d) = m.diversity {
                    mmr.insert("diversity".into(), json!(d));
                }
                if let Some(c) = m.candidates_limit {
                    mmr.insert("candidates_limit".into(), json!(c));
                }
            }
            json!({"nearest": vector_input_json(n.nearest.as_ref(), &format!("{at}.nearest"))?,
                "mmr": mmr})
        }
        // Kinds Strata refuses by name over HTTP: the same 501.
        Some(Q::Discover(_)) => json!({"discover": {}}),
        Some(Q::Context(_)) => json!({"context": {}}),
        Some(Q::OrderBy(_)) => json!({"order_by": {}}),
        Some(Q::Sample(_)) => json!({"sample": "random"}),
        None => {
            return Err(unsupported(&format!(
                "{at}: a query kind Strata does not serve"
            )));
        }
    })
}

/// The fields a query and a prefetch share.
struct QueryParts<'a> {
    prefetch: &'a [qpb::PrefetchQuery],
    query: Option<&'a qpb::Query>,
    using: Option<&'a String>,
    filter: Option<&'a qpb::Filter>,
    params: Option<&'a qpb::SearchParams>,
    score_threshold: Option<f32>,
    limit: Option<u64>,
    has_lookup: bool,
}

fn query_common(o: &mut Map<String, Value>, q: QueryParts<'_>) -> Result<(), ApiError> {
    let QueryParts {
        prefetch,
        query,
        using,
        filter,
        params,
        score_threshold,
        limit,
        has_lookup,
    } = q;
    if !prefetch.is_empty() {
        let p = prefetch
            .iter()
            .map(prefetch_json)
            .collect::<Result<Vec<_>, _>>()?;
        o.insert("prefetch".into(), Value::Array(p));
    }
    if query.is_some() {
        o.insert("query".into(), query_json(query, "query")?);
    }
    if let Some(u) = using {
        o.insert("using".into(), json!(u));
    }
    if let Some(f) = filter {
        o.insert("filter".into(), filter_json(f)?);
    }
    if let Some(p) = params {
        o.insert("params".into(), params_json(p));
    }
    if let Some(t) = score_threshold {
        o.insert("score_threshold".into(), json!(t));
    }
    if let Some(l) = limit {
        o.insert("limit".into(), json!(l));
    }
    if has_lookup {
        o.insert("lookup_from".into(), json!({}));
    }
    Ok(())
}

fn prefetch_json(p: &qpb::PrefetchQuery) -> Result<Value, ApiError> {
    let mut o = Map::new();
    query_common(
        &mut o,
        QueryParts {
            prefetch: &p.prefetch,
            query: p.query.as_ref(),
            using: p.using.as_ref(),
            filter: p.filter.as_ref(),
            params: p.params.as_ref(),
            score_threshold: p.score_threshold,
            limit: p.limit,
            has_lookup: p.lookup_from.is_some(),
        },
    )?;
    Ok(Value::Object(o))
}

fn query_points_json(q: &qpb::QueryPoints) -> Result<Value, ApiError> {
    let mut o = Map::new();
    query_common(
        &mut o,
        QueryParts {
            prefetch: &q.prefetch,
            query: q.query.as_ref(),
            using: q.using.as_ref(),
            filter: q.filter.as_ref(),
            params: q.params.as_ref(),
            score_threshold: q.score_threshold,
            limit: q.limit,
            has_lookup: q.lookup_from.is_some(),
        },
    )?;
    if let Some(off) = q.offset {
        o.insert("offset".into(), json!(off));
    }
    if let Some(w) = with_payload_json(q.with_payload.as_ref()) {
        o.insert("with_payload".into(), w);
    }
    if let Some(w) = with_vectors_json(q.with_vectors.as_ref()) {
        o.insert("with_vector".into(), w);
    }
    Ok(Value::Object(o))
}

fn search_points_json(s: &qpb::SearchPoints) -> Result<Value, ApiError> {
    let vector = match (&s.sparse_indices, &s.vector_name) {
        (Some(i), Some(name)) => json!({"name": name, "vector": sparse_json(&i.data, &s.vector)}),
        (Some(_), None) => {
            return Err(ApiError::invalid(
                "vector_name: a sparse search names its sparse vector",
            ));
        }
        (None, Some(name)) => json!({"name": name, "vector": s.vector}),
        (None, None) => json!(s.vector),
    };
    let mut o = Map::new();
    o.insert("vector".into(), vector);
    o.insert("limit".into(), json!(s.limit));
    if let Some(f) = &s.filter {
        o.insert("filter".into(), filter_json(f)?);
    }
    if let Some(p) = &s.params {
        o.insert("params".into(), params_json(p));
    }
    if let Some(t) = s.score_threshold {
        o.insert("score_threshold".into(), json!(t));
    }
    if let Some(off) = s.offset {
        o.insert("offset".into(), json!(off));
    }
    if let Some(w) = with_payload_json(s.with_payload.as_ref()) {
        o.insert("with_payload".into(), w);
    }
    if let Some(w) = with_vectors_json(s.with_vectors.as_ref()) {
        o.insert("with_vector".into(), w);
    }
    Ok(Value::Object(o))
}

/// `{"points": [ids]}` or `{"filter": …}` from a points selector.
fn selector_json(
    s: Option<&qpb::PointsSelector>,
    o: &mut Map<String, Value>,
) -> Result<(), ApiError> {
    use qpb::points_selector::PointsSelectorOneOf as S;
    match s.and_then(|s| s.points_selector_one_of.as_ref()) {
        Some(S::Points(p)) => {
            o.insert("points".into(), pids_json(&p.ids, "points")?);
        }
        Some(S::Filter(f)) => {
            o.insert("filter".into(), filter_json(f)?);
        }
        None => return Err(ApiError::invalid("points: missing (give ids or a filter)")),
    }
    Ok(())
}

fn hnsw_json(h: &qpb::HnswConfigDiff) -> Value {
    let mut o = Map::new();
    for (k, v) in [
        ("m", h.m),
        ("ef_construct", h.ef_construct),
        ("full_scan_threshold", h.full_scan_threshold),
        ("max_indexing_threads", h.max_indexing_threads),
        ("payload_m", h.payload_m),
    ] {
        if let Some(v) = v {
            o.insert(k.into(), json!(v));
        }
    }
    if let Some(d) = h.on_disk {
        o.insert("on_disk".into(), json!(d));
    }
    Value::Object(o)
}

fn distance_name(d: i32) -> Result<&'static str, ApiError> {
    match qpb::Distance::try_from(d) {
        Ok(qpb::Distance::Cosine) => Ok("Cosine"),
        Ok(qpb::Distance::Euclid) => Ok("Euclid"),
        Ok(qpb::Distance::Dot) => Ok("Dot"),
        Ok(qpb::Distance::Manhattan) => Err(unsupported("distance Manhattan")),
        _ => Err(ApiError::invalid(format!(
            "distance: {d} is not one of Cosine, Euclid, Dot"
        ))),
    }
}

fn vector_params_json(p: &qpb::VectorParams, at: &str) -> Result<Value, ApiError> {
    if p.multivector_config.is_some() {
        return Err(unsupported(&format!("{at}multivector_config")));
    }
    let mut o = Map::new();
    o.insert("size".into(), json!(p.size));
    o.insert("distance".into(), json!(distance_name(p.distance)?));
    if let Some(h) = &p.hnsw_config {
        o.insert("hnsw_config".into(), hnsw_json(h));
    }
    if let Some(d) = p.on_disk {
        o.insert("on_disk".into(), json!(d));
    }
    if let Some(dt) = p.datatype {
        let name = match qpb::Datatype::try_from(dt) {
            Ok(qpb::Datatype::Float32) | Ok(qpb::Datatype::Default) => "float32",
            Ok(other) => other.as_str_name(),
            Err(_) => "unknown",
        };
        o.insert("datatype".into(), json!(name.to_ascii_lowercase()));
    }
    Ok(Value::Object(o))
}

fn create_collection_json(c: &qpb::CreateCollection) -> Result<Value, ApiError> {
    use qpb::vectors_config::Config;
    let mut o = Map::new();
    match c.vectors_config.as_ref().and_then(|v| v.config.as_ref()) {
        Some(Config::Params(p)) => {
            o.insert("vectors".into(), vector_params_json(p, "vectors.")?);
        }
        Some(Config::ParamsMap(m)) => {
            let v = m
                .map
                .iter()
                .map(|(n, p)| Ok((n.clone(), vector_params_json(p, &format!("vectors.{n}."))?)))
                .collect::<Result<Map<_, _>, ApiError>>()?;
            o.insert("vectors".into(), Value::Object(v));
        }
        None => {}
    }
    if let Some(s) = &c.sparse_vectors_config {
        let v: Map<String, Value> = s
            .map
            .iter()
            .map(|(n, p)| {
                let mut x = Map::new();
                if let Some(m) = p.modifier {
                    let m = match qpb::Modifier::try_from(m) {
                        Ok(qpb::Modifier::Idf) => "idf",
                        _ => "none",
                    };
                    x.insert("modifier".into(), json!(m));
                }
                (n.clone(), Value::Object(x))
            })
            .collect();
        o.insert("sparse_vectors".into(), Value::Object(v));
    }
    if let Some(h) = &c.hnsw_config {
        o.insert("hnsw_config".into(), hnsw_json(h));
    }
    if c.sharding_method.is_some_and(|m| m != 0) {
        o.insert("sharding_method".into(), json!("custom"));
    }
    Ok(Value::Object(o))
}

// ------------------------------------------------------------------------ REST JSON → proto

fn json_value(v: &Value) -> qpb::Value {
    use qpb::value::Kind;
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Kind::IntegerValue(i),
            None => Kind::DoubleValue(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(qpb::ListValue {
            values: a.iter().map(json_value).collect(),
        }),
        Value::Object(m) => Kind::StructValue(qpb::Struct {
            fields: json_map(m),
        }),
    };
    qpb::Value { kind: Some(kind) }
}

fn json_map(m: &Map<String, Value>) -> HashMap<String, qpb::Value> {
    m.iter().map(|(k, v)| (k.clone(), json_value(v))).collect()
}

fn json_pid(v: &Value) -> Option<qpb::PointId> {
    use qpb::point_id::PointIdOptions;
    let o = match v {
        Value::Number(n) => PointIdOptions::Num(n.as_u64()?),
        Value::String(s) => PointIdOptions::Uuid(s.clone()),
        _ => return None,
    };
    Some(qpb::PointId {
        point_id_options: Some(o),
    })
}

fn json_vector_output(v: &Value) -> qpb::VectorOutput {
    use qpb::vector_output::Vector as V;
    let floats = |v: Option<&Value>| -> Vec<f32> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_f64)
                    .map(|x| x as f32)
                    .collect()
            })
            .unwrap_or_default()
    };
    let vector = match v {
        Value::Object(o) => V::Sparse(qpb::SparseVector {
            indices: o
                .get("indices")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_u64)
                        .map(|x| x as u32)
                        .collect()
                })
                .unwrap_or_default(),
            values: floats(o.get("values")),
        }),
        v => V::Dense(qpb::DenseVector {
            data: floats(Some(v)),
        }),
    };
    qpb::VectorOutput {
        vector: Some(vector),
        ..Default::default()
    }
}

fn json_vectors_output(v: Option<&Value>) -> Option<qpb::VectorsOutput> {
    use qpb::vectors_output::VectorsOptions;
    let opts = match v? {
        Value::Object(o) if !o.contains_key("indices") => {
            VectorsOptions::Vectors(qpb::NamedVectorsOutput {
                vectors: o
                    .iter()
                    .map(|(n, v)| (n.clone(), json_vector_output(v)))
                    .collect(),
            })
        }
        v => VectorsOptions::Vector(json_vector_output(v)),
    };
    Some(qpb::VectorsOutput {
        vectors_options: Some(opts),
    })
}

fn json_payload(v: Option<&Value>) -> HashMap<String, qpb::Value> {
    v.and_then(Value::as_object)
        .map(json_map)
        .unwrap_or_default()
}

fn json_scored(v: &Value) -> qpb::ScoredPoint {
    qpb::ScoredPoint {
        id: v.get("id").and_then(json_pid),
        payload: json_payload(v.get("payload")),
        score: v.get("score").and_then(Value::as_f64).unwrap_or(0.0) as f32,
        version: v.get("version").and_then(Value::as_u64).unwrap_or(0),
        vectors: json_vectors_output(v.get("vector")),
        ..Default::default()
    }
}

fn json_retrieved(v: &Value) -> qpb::RetrievedPoint {
    qpb::RetrievedPoint {
        id: v.get("id").and_then(json_pid),
        payload: json_payload(v.get("payload")),
        vectors: json_vectors_output(v.get("vector")),
        ..Default::default()
    }
}

fn json_group_id(v: &Value) -> Option<qpb::GroupId> {
    use qpb::group_id::Kind;
    let kind = match v {
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Number(n) => match n.as_u64() {
            Some(u) => Kind::UnsignedValue(u),
            None => Kind::IntegerValue(n.as_i64()?),
        },
        _ => return None,
    };
    Some(qpb::GroupId { kind: Some(kind) })
}

fn json_facet_value(v: &Value) -> Option<qpb::FacetValue> {
    use qpb::facet_value::Variant;
    let variant = match v {
        Value::String(s) => Variant::StringValue(s.clone()),
        Value::Bool(b) => Variant::BoolValue(*b),
        Value::Number(n) => Variant::IntegerValue(n.as_i64()?),
        _ => return None,
    };
    Some(qpb::FacetValue {
        variant: Some(variant),
    })
}

fn json_list<T>(v: &Value, f: fn(&Value) -> T) -> Vec<T> {
    v.as_array()
        .map(|a| a.iter().map(f).collect())
        .unwrap_or_default()
}

fn json_hnsw(v: Option<&Value>) -> Option<qpb::HnswConfigDiff> {
    let v = v?;
    Some(qpb::HnswConfigDiff {
        m: v.get("m").and_then(Value::as_u64),
        ef_construct: v.get("ef_construct").and_then(Value::as_u64),
        full_scan_threshold: v.get("full_scan_threshold").and_then(Value::as_u64),
        on_disk: v.get("on_disk").and_then(Value::as_bool),
        ..Default::default()
    })
}

fn json_vector_params(v: &Value) -> qpb::VectorParams {
    let distance = match v.get("distance").and_then(Value::as_str) {
        Some("Cosine") => qpb::Distance::Cosine,
        Some("Euclid") => qpb::Distance::Euclid,
        Some("Dot") => qpb::Distance::Dot,
        _ => qpb::Distance::UnknownDistance,
    };
    qpb::VectorParams {
        size: v.get("size").and_then(Value::as_u64).unwrap_or(0),
        distance: distance as i32,
        hnsw_config: json_hnsw(v.get("hnsw_config")),
        ..Default::default()
    }
}

fn json_collection_info(v: &Value) -> qpb::CollectionInfo {
    use qpb::vectors_config::Config;
    let params = &v["config"]["params"];
    let vectors = &params["vectors"];
    let vectors_config = match vectors {
        Value::Object(o) if o.contains_key("size") => {
            Some(Config::Params(json_vector_params(vectors)))
        }
        Value::Object(o) => Some(Config::ParamsMap(qpb::VectorParamsMap {
            map: o
                .iter()
                .map(|(n, p)| (n.clone(), json_vector_params(p)))
                .collect(),
        })),
        _ => None,
    };
    let sparse = params["sparse_vectors"]
        .as_object()
        .map(|m| qpb::SparseVectorConfig {
            map: m
                .iter()
                .map(|(n, p)| {
                    let modifier = match p.get("modifier").and_then(Value::as_str) {
                        Some("idf") => Some(qpb::Modifier::Idf as i32),
                        _ => None,
                    };
                    (
                        n.clone(),
                        qpb::SparseVectorParams {
                            index: None,
                            modifier,
                        },
                    )
                })
                .collect(),
        });
    let schema_type = |t: &str| match t {
        "keyword" => qpb::PayloadSchemaType::Keyword,
        "integer" => qpb::PayloadSchemaType::Integer,
        "float" => qpb::PayloadSchemaType::Float,
        "bool" => qpb::PayloadSchemaType::Bool,
        "datetime" => qpb::PayloadSchemaType::Datetime,
        "uuid" => qpb::PayloadSchemaType::Uuid,
        _ => qpb::PayloadSchemaType::UnknownType,
    };
    let payload_schema = v["payload_schema"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, s)| {
                    (
                        k.clone(),
                        qpb::PayloadSchemaInfo {
                            data_type: schema_type(s["data_type"].as_str().unwrap_or("")) as i32,
                            params: None,
                            points: s["points"].as_u64(),
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let opt = &v["config"]["optimizer_config"];
    qpb::CollectionInfo {
        status: qpb::CollectionStatus::Green as i32,
        optimizer_status: Some(qpb::OptimizerStatus {
            ok: true,
            error: String::new(),
        }),
        segments_count: v["segments_count"].as_u64().unwrap_or(0),
        points_count: v["points_count"].as_u64(),
        indexed_vectors_count: v["indexed_vectors_count"].as_u64(),
        payload_schema,
        config: Some(qpb::CollectionConfig {
            params: Some(qpb::CollectionParams {
                shard_number: 1,
                on_disk_payload: true,
                vectors_config: vectors_config.map(|c| qpb::VectorsConfig { config: Some(c) }),
                replication_factor: Some(1),
                write_consistency_factor: Some(1),
                sparse_vectors_config: sparse,
                ..Default::default()
            }),
            hnsw_config: json_hnsw(v["config"].get("hnsw_config")),
            optimizer_config: Some(qpb::OptimizersConfigDiff {
                deleted_threshold: opt["deleted_threshold"].as_f64(),
                vacuum_min_vector_number: opt["vacuum_min_vector_number"].as_u64(),
                default_segment_number: opt["default_segment_number"].as_u64(),
                max_segment_size: opt["max_segment_size"].as_u64(),
                indexing_threshold: opt["indexing_threshold"].as_u64(),
                flush_interval_sec: opt["flush_interval_sec"].as_u64(),
                ..Default::default()
            }),
            wal_config: Some(qpb::WalConfigDiff {
                wal_capacity_mb: Some(64),
                wal_segments_ahead: Some(0),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn update_result(v: &Value) -> qpb::UpdateResult {
    qpb::UpdateResult {
        operation_id: v["operation_id"].as_u64(),
        status: qpb::UpdateStatus::Completed as i32,
    }
}

// ------------------------------------------------------------------------ plumbing

/// The `result` and `time` of a handler's envelope.
fn envelope(j: Json<Value>) -> (Value, f64) {
    let Json(mut v) = j;
    let time = v["time"].as_f64().unwrap_or(0.0);
    (v["result"].take(), time)
}

/// The envelope of a handler that answers a whole HTTP response (searches: cold-segment
/// headers beside the body).
async fn response_envelope(r: axum::response::Response) -> Result<(Value, f64), ApiError> {
    let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
        .await
        .map_err(|e| ApiError::invalid(format!("response body: {e}")))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid(format!("response body: {e}")))?;
    Ok(envelope(Json(v)))
}

fn body(v: Value) -> Bytes {
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

fn no_query() -> Query<HashMap<String, String>> {
    Query(HashMap::new())
}

fn ops_response(j: Json<Value>) -> qpb::PointsOperationResponse {
    let (r, time) = envelope(j);
    qpb::PointsOperationResponse {
        result: Some(update_result(&r)),
        time,
    }
}

fn coll_response(j: Json<Value>) -> qpb::CollectionOperationResponse {
    let (r, time) = envelope(j);
    qpb::CollectionOperationResponse {
        result: r.as_bool().unwrap_or(false),
        time,
    }
}

macro_rules! ctx {
    ($self:ident, $req:ident) => {{
        let c = caller(&$req)?;
        let dl = deadline(&$req, &$self.0);
        (c, dl, $self.0.clone(), $req.into_inner())
    }};
}

// ------------------------------------------------------------------------ services

#[tonic::async_trait]
impl Qdrant for Service {
    async fn health_check(
        &self,
        _req: Request<qpb::HealthCheckRequest>,
    ) -> Result<Response<qpb::HealthCheckReply>, Status> {
        Ok(Response::new(qpb::HealthCheckReply {
            title: "qdrant - vector search engine (Strata)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            commit: None,
        }))
    }
}

#[tonic::async_trait]
impl Collections for Service {
    async fn get(
        &self,
        req: Request<qpb::GetCollectionInfoRequest>,
    ) -> Result<Response<qpb::GetCollectionInfoResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Collections/Get", async move {
            let (v, time) =
                envelope(h::get_collection(State(st), c, dl, Path(r.collection_name)).await?);
            Ok(qpb::GetCollectionInfoResponse {
                result: Some(json_collection_info(&v)),
                time,
            })
        })
        .await
    }

    async fn list(
        &self,
        req: Request<qpb::ListCollectionsRequest>,
    ) -> Result<Response<qpb::ListCollectionsResponse>, Status> {
        let (c, _dl, st, _r) = ctx!(self, req);
        tracked("qdrant.Collections/List", async move {
            let (v, time) = envelope(h::list_collections(State(st), c).await?);
            Ok(qpb::ListCollectionsResponse {
                collections: json_list(&v["collections"], |x| qpb::CollectionDescription {
                    name: x["name"].as_str().unwrap_or_default().to_string(),
                }),
                time,
            })
        })
        .await
    }

    async fn create(
        &self,
        req: Request<qpb::CreateCollection>,
    ) -> Result<Response<qpb::CollectionOperationResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Collections/Create", async move {
            let b = create_collection_json(&r)?;
            let j =
                h::create_collection(State(st), c, dl, Path(r.collection_name), body(b)).await?;
            Ok(coll_response(j))
        })
        .await
    }

    async fn update(
        &self,
        req: Request<qpb::UpdateCollection>,
    ) -> Result<Response<qpb::CollectionOperationResponse>, Status> {
        use qpb::vectors_config_diff::Config;
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Collections/Update", async move {
            let mut o = Map::new();
            if let Some(hc) = &r.hnsw_config {
                o.insert("hnsw_config".into(), hnsw_json(hc));
            }
            match r.vectors_config.as_ref().and_then(|v| v.config.as_ref()) {
                Some(Config::Params(p)) => {
                    let mut x = Map::new();
                    if let Some(hc) = &p.hnsw_config {
                        x.insert("hnsw_config".into(), hnsw_json(hc));
                    }
                    o.insert("vectors".into(), json!({"": x}));
                }
                Some(Config::ParamsMap(m)) => {
                    let v: Map<String, Value> = m
                        .map
                        .iter()
                        .map(|(n, p)| {
                            let mut x = Map::new();
                            if let Some(hc) = &p.hnsw_config {
                                x.insert("hnsw_config".into(), hnsw_json(hc));
                            }
                            (n.clone(), Value::Object(x))
                        })
                        .collect();
                    o.insert("vectors".into(), Value::Object(v));
                }
                None => {}
            }
            if r.sparse_vectors_config
                .as_ref()
                .is_some_and(|s| !s.map.is_empty())
            {
                return Err(unsupported("sparse_vectors"));
            }
            let j = h::update_collection(
                State(st),
                c,
                dl,
                Path(r.collection_name),
                no_query(),
                body(Value::Object(o)),
            )
            .await?;
            Ok(coll_response(j))
        })
        .await
    }

    async fn delete(
        &self,
        req: Request<qpb::DeleteCollection>,
    ) -> Result<Response<qpb::CollectionOperationResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Collections/Delete", async move {
            let j = h::delete_collection(State(st), c, dl, Path(r.collection_name)).await?;
            Ok(coll_response(j))
        })
        .await
    }

    async fn update_aliases(
        &self,
        req: Request<qpb::ChangeAliases>,
    ) -> Result<Response<qpb::CollectionOperationResponse>, Status> {
        use qpb::alias_operations::Action;
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Collections/UpdateAliases", async move {
            let actions = r
                .actions
                .iter()
                .map(|a| match &a.action {
                    Some(Action::CreateAlias(x)) => Ok(json!({"create_alias": {
                        "collection_name": x.collection_name, "alias_name": x.alias_name}})),
                    Some(Action::RenameAlias(x)) => Ok(json!({"rename_alias": {
                        "old_alias_name": x.old_alias_name, "new_alias_name": x.new_alias_name}})),
                    Some(Action::DeleteAlias(x)) => {
                        Ok(json!({"delete_alias": {"alias_name": x.alias_name}}))
                    }
                    None => Err(ApiError::invalid("actions: an action with no kind")),
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            let j = aliases::update_aliases(
                State(st),
                c,
                dl,
                no_query(),
                body(json!({"actions": actions})),
            )
            .await?;
            Ok(coll_response(j))
        })
        .await
    }

    async fn list_collection_aliases(
        &self,
        req: Request<qpb::ListCollectionAliasesRequest>,
    ) -> Result<Response<qpb::ListAliasesResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Collections/ListCollectionAliases", async move {
            let j = aliases::collection_aliases(State(st), c, dl, Path(r.collection_name)).await?;
            Ok(aliases_response(j))
        })
        .await
    }

    async fn list_aliases(
        &self,
        req: Request<qpb::ListAliasesRequest>,
    ) -> Result<Response<qpb::ListAliasesResponse>, Status> {
        let (c, _dl, st, _r) = ctx!(self, req);
        tracked("qdrant.Collections/ListAliases", async move {
            Ok(aliases_response(aliases::list_aliases(State(st), c).await?))
        })
        .await
    }

    async fn collection_exists(
        &self,
        req: Request<qpb::CollectionExistsRequest>,
    ) -> Result<Response<qpb::CollectionExistsResponse>, Status> {
        let (c, _dl, st, r) = ctx!(self, req);
        tracked("qdrant.Collections/CollectionExists", async move {
            let (v, time) =
                envelope(h::collection_exists(State(st), c, Path(r.collection_name)).await?);
            Ok(qpb::CollectionExistsResponse {
                result: Some(qpb::CollectionExists {
                    exists: v["exists"].as_bool().unwrap_or(false),
                }),
                time,
            })
        })
        .await
    }
}

fn aliases_response(j: Json<Value>) -> qpb::ListAliasesResponse {
    let (v, time) = envelope(j);
    qpb::ListAliasesResponse {
        aliases: json_list(&v["aliases"], |a| qpb::AliasDescription {
            alias_name: a["alias_name"].as_str().unwrap_or_default().into(),
            collection_name: a["collection_name"].as_str().unwrap_or_default().into(),
        }),
        time,
    }
}

#[tonic::async_trait]
impl Points for Service {
    async fn upsert(
        &self,
        req: Request<qpb::UpsertPoints>,
    ) -> Result<Response<qpb::PointsOperationResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Points/Upsert", async move {
            if r.update_filter.is_some() {
                return Err(unsupported("update_filter"));
            }
            let points = r
                .points
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let at = format!("points[{i}]");
                    Ok(json!({"id": pid_json(p.id.as_ref(), &format!("{at}.id"))?,
                        "vector": vectors_json(p.vectors.as_ref(), &format!("{at}.vector"))?,
                        "payload": map_json(&p.payload)}))
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            let j = h::upsert_points(
                State(st),
                c,
                dl,
                Path(r.collection_name),
                no_query(),
                body(json!({ "points": points })),
            )
            .await?;
            Ok(ops_response(j))
        })
        .await
    }

    async fn delete(
        &self,
        req: Request<qpb::DeletePoints>,
    ) -> Result<Response<qpb::PointsOperationResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Points/Delete", async move {
            let mut o = Map::new();
            selector_json(r.points.as_ref(), &mut o)?;
            let j = updates::delete_points(
                State(st),
                c,
                dl,
                Path(r.collection_name),
                no_query(),
                body(Value::Object(o)),
            )
            .await?;
            Ok(ops_response(j))
        })
        .await
    }

    async fn get(
        &self,
        req: Request<qpb::GetPoints>,
    ) -> Result<Response<qpb::GetResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Points/Get", async move {
            let mut o = Map::new();
            o.insert("ids".into(), pids_json(&r.ids, "ids")?);
            if let Some(w) = with_payload_json(r.with_payload.as_ref()) {
                o.insert("with_payload".into(), w);
            }
            if let Some(w) = with_vectors_json(r.with_vectors.as_ref()) {
                o.insert("with_vector".into(), w);
            }
            let (v, time) = envelope(
                h::retrieve_points(
                    State(st),
                    c,
                    dl,
                    Path(r.collection_name),
                    body(Value::Object(o)),
                )
                .await?,
            );
            Ok(qpb::GetResponse {
                result: json_list(&v, json_retrieved),
                time,
            })
        })
        .await
    }

    async fn update_vectors(
        &self,
        req: Request<qpb::UpdatePointVectors>,
    ) -> Result<Response<qpb::PointsOperationResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Points/UpdateVectors", async move {
            if r.update_filter.is_some() {
                return Err(unsupported("update_filter"));
            }
            let points = r
                .points
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let at = format!("points[{i}]");
                    Ok(json!({"id": pid_json(p.id.as_ref(), &format!("{at}.id"))?,
                        "vector": vectors_json(p.vectors.as_ref(), &format!("{at}.vector"))?}))
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            let j = updates::update_vectors(
                State(st),
                c,
                dl,
                Path(r.collection_name),
                no_query(),
                body(json!({ "points": points })),
            )
            .await?;
            Ok(ops_response(j))
        })
        .await
    }

    async fn delete_vectors(
        &self,
        req: Request<qpb::DeletePointVectors>,
    ) -> Result<Response<qpb::PointsOperationResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Points/DeleteVectors", async move {
            let mut o = Map::new();
            selector_json(r.points_selector.as_ref(), &mut o)?;
            let names = r.vectors.map(|v| v.names).unwrap_or_default();
            o.insert("vector".into(), json!(names));
            let j = updates::delete_vectors(
                State(st),
                c,
                dl,
                Path(r.collection_name),
                no_query(),
                body(Value::Object(o)),
            )
            .await?;
            Ok(ops_response(j))
        })
        .await
    }

    async fn set_payload(
        &self,
        req: Request<qpb::SetPayloadPoints>,
    ) -> Result<Response<qpb::PointsOperationResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Points/SetPayload", async move {
            let o = payload_body(&r)?;
            let j = updates::set_payload(
                State(st),
                c,
                dl,
                Path(r.collection_name),
                no_query(),
                body(o),
            )
            .await?;
            Ok(ops_response(j))
        })
        .await
    }

    async fn overwrite_payload(
        &self,
        req: Request<qpb::SetPayloadPoints>,
    ) -> Result<Response<qpb::PointsOperationResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Points/OverwritePayload", async move {
            let o = payload_body(&r)?;
            let j = updates::overwrite_payload(
                State(st),
                c,
                dl,
                Path(r.collection_name),
                no_query(),
                body(o),
            )
            .await?;
            Ok(ops_response(j))
        })
        .await
    }

    async fn delete_payload(
        &self,
        req: Request<qpb::DeletePayloadPoints>,
    ) -> Result<Response<qpb::PointsOperationResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Points/DeletePayload", async move {
            let mut o = Map::new();
            selector_json(r.points_selector.as_ref(), &mut o)?;
            o.insert("keys".into(), json!(r.keys));
            let j = updates::delete_payload(
                State(st),
                c,
                dl,
                Path(r.collection_name),
                no_query(),
                body(Value::Object(o)),
            )
            .await?;
            Ok(ops_response(j))
        })
        .await
    }

    async fn clear_payload(
        &self,
        req: Request<qpb::ClearPayloadPoints>,
    ) -> Result<Response<qpb::PointsOperationResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Points/ClearPayload", async move {
            let mut o = Map::new();
            selector_json(r.points.as_ref(), &mut o)?;
            let j = updates::clear_payload(
                State(st),
                c,
                dl,
                Path(r.collection_name),
                no_query(),
                body(Value::Object(o)),
            )
            .await?;
            Ok(ops_response(j))
        })
        .await
    }

    async fn create_field_index(
        &self,
        req: Request<qpb::CreateFieldIndexCollection>,
    ) -> Result<Response<qpb::PointsOperationResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Points/CreateFieldIndex", async move {
            let ty = match r.field_type.map(qpb::FieldType::try_from) {
                None => {
                    return Err(ApiError::invalid("field_type: missing"));
                }
                Some(Ok(t)) => t
                    .as_str_name()
                    .trim_start_matches("FieldType")
                    .to_ascii_lowercase(),
                Some(Err(_)) => {
                    return Err(ApiError::invalid(format!(
                        "field_type: unknown type {:?}",
                        r.field_type
                    )));
                }
            };
            let b = json!({"field_name": r.field_name, "field_schema": ty});
            let j = h::create_index(
                State(st),
                c,
                dl,
                Path(r.collection_name),
                no_query(),
                body(b),
            )
            .await?;
            Ok(ops_response(j))
        })
        .await
    }

    async fn delete_field_index(
        &self,
        req: Request<qpb::DeleteFieldIndexCollection>,
    ) -> Result<Response<qpb::PointsOperationResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Points/DeleteFieldIndex", async move {
            let j = h::delete_index(
                State(st),
                c,
                dl,
                Path((r.collection_name, r.field_name)),
                no_query(),
            )
            .await?;
            Ok(ops_response(j))
        })
        .await
    }

    async fn search(
        &self,
        req: Request<qpb::SearchPoints>,
    ) -> Result<Response<qpb::SearchResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Points/Search", async move {
            let b = search_points_json(&r)?;
            let resp = h::search_points(State(st), c, dl, Path(r.collection_name), body(b)).await?;
            let (v, time) = response_envelope(resp).await?;
            Ok(qpb::SearchResponse {
                result: json_list(&v, json_scored),
                time,
            })
        })
        .await
    }

    async fn search_batch(
        &self,
        req: Request<qpb::SearchBatchPoints>,
    ) -> Result<Response<qpb::SearchBatchResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Points/SearchBatch", async move {
            let searches = r
                .search_points
                .iter()
                .map(search_points_json)
                .collect::<Result<Vec<_>, _>>()?;
            let resp = h::search_batch(
                State(st),
                c,
                dl,
                Path(r.collection_name),
                body(json!({ "searches": searches })),
            )
            .await?;
            let (v, time) = response_envelope(resp).await?;
            Ok(qpb::SearchBatchResponse {
                result: json_list(&v, |x| qpb::BatchResult {
                    result: json_list(x, json_scored),
                }),
                time,
            })
        })
        .await
    }

    async fn scroll(
        &self,
        req: Request<qpb::ScrollPoints>,
    ) -> Result<Response<qpb::ScrollResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Points/Scroll", async move {
            if r.order_by.is_some() {
                return Err(unsupported("order_by"));
            }
            let mut o = Map::new();
            if let Some(f) = &r.filter {
                o.insert("filter".into(), filter_json(f)?);
            }
            if r.offset.is_some() {
                o.insert("offset".into(), pid_json(r.offset.as_ref(), "offset")?);
            }
            if let Some(l) = r.limit {
                o.insert("limit".into(), json!(l));
            }
            if let Some(w) = with_payload_json(r.with_payload.as_ref()) {
                o.insert("with_payload".into(), w);
            }
            if let Some(w) = with_vectors_json(r.with_vectors.as_ref()) {
                o.insert("with_vector".into(), w);
            }
            let (v, time) = envelope(
                h::scroll_points(
                    State(st),
                    c,
                    dl,
                    Path(r.collection_name),
                    body(Value::Object(o)),
                )
                .await?,
            );
            Ok(qpb::ScrollResponse {
                next_page_offset: json_pid(&v["next_page_offset"]),
                result: json_list(&v["points"], json_retrieved),
                time,
            })
        })
        .await
    }

    async fn recommend(
        &self,
        _req: Request<qpb::RecommendPoints>,
    ) -> Result<Response<qpb::RecommendResponse>, Status> {
        Err(Status::from(unsupported(
            "qdrant.Points/Recommend (use Query with a recommend query)",
        )))
    }

    async fn update_batch(
        &self,
        req: Request<qpb::UpdateBatchPoints>,
    ) -> Result<Response<qpb::UpdateBatchResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Points/UpdateBatch", async move {
            let ops = r
                .operations
                .iter()
                .enumerate()
                .map(|(i, op)| batch_op_json(op, &format!("operations[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            let (v, time) = envelope(
                updates::batch(
                    State(st),
                    c,
                    dl,
                    Path(r.collection_name),
                    no_query(),
                    body(json!({ "operations": ops })),
                )
                .await?,
            );
            Ok(qpb::UpdateBatchResponse {
                result: json_list(&v, update_result),
                time,
            })
        })
        .await
    }

    async fn count(
        &self,
        req: Request<qpb::CountPoints>,
    ) -> Result<Response<qpb::CountResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Points/Count", async move {
            let mut o = Map::new();
            if let Some(f) = &r.filter {
                o.insert("filter".into(), filter_json(f)?);
            }
            if let Some(e) = r.exact {
                o.insert("exact".into(), json!(e));
            }
            let (v, time) = envelope(
                h::count_points(
                    State(st),
                    c,
                    dl,
                    Path(r.collection_name),
                    body(Value::Object(o)),
                )
                .await?,
            );
            Ok(qpb::CountResponse {
                result: Some(qpb::CountResult {
                    count: v["count"].as_u64().unwrap_or(0),
                }),
                time,
            })
        })
        .await
    }

    async fn query(
        &self,
        req: Request<qpb::QueryPoints>,
    ) -> Result<Response<qpb::QueryResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Points/Query", async move {
            let b = query_points_json(&r)?;
            let resp = h::query_points(State(st), c, dl, Path(r.collection_name), body(b)).await?;
            let (v, time) = response_envelope(resp).await?;
            Ok(qpb::QueryResponse {
                result: json_list(&v["points"], json_scored),
                time,
            })
        })
        .await
    }

    async fn query_batch(
        &self,
        req: Request<qpb::QueryBatchPoints>,
    ) -> Result<Response<qpb::QueryBatchResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Points/QueryBatch", async move {
            let searches = r
                .query_points
                .iter()
                .map(query_points_json)
                .collect::<Result<Vec<_>, _>>()?;
            let resp = h::query_batch(
                State(st),
                c,
                dl,
                Path(r.collection_name),
                body(json!({ "searches": searches })),
            )
            .await?;
            let (v, time) = response_envelope(resp).await?;
            Ok(qpb::QueryBatchResponse {
                result: json_list(&v, |x| qpb::BatchResult {
                    result: json_list(&x["points"], json_scored),
                }),
                time,
            })
        })
        .await
    }

    async fn query_groups(
        &self,
        req: Request<qpb::QueryPointGroups>,
    ) -> Result<Response<qpb::QueryGroupsResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Points/QueryGroups", async move {
            let mut o = Map::new();
            query_common(
                &mut o,
                QueryParts {
                    prefetch: &r.prefetch,
                    query: r.query.as_ref(),
                    using: r.using.as_ref(),
                    filter: r.filter.as_ref(),
                    params: r.params.as_ref(),
                    score_threshold: r.score_threshold,
                    limit: r.limit,
                    has_lookup: r.lookup_from.is_some(),
                },
            )?;
            o.insert("group_by".into(), json!(r.group_by));
            if let Some(g) = r.group_size {
                o.insert("group_size".into(), json!(g));
            }
            if let Some(w) = with_payload_json(r.with_payload.as_ref()) {
                o.insert("with_payload".into(), w);
            }
            if let Some(w) = with_vectors_json(r.with_vectors.as_ref()) {
                o.insert("with_vector".into(), w);
            }
            if let Some(l) = &r.with_lookup {
                let mut x = Map::new();
                x.insert("collection".into(), json!(l.collection));
                if let Some(w) = with_payload_json(l.with_payload.as_ref()) {
                    x.insert("with_payload".into(), w);
                }
                if let Some(w) = with_vectors_json(l.with_vectors.as_ref()) {
                    x.insert("with_vectors".into(), w);
                }
                o.insert("with_lookup".into(), Value::Object(x));
            }
            let resp = crate::http::aggregate::query_groups(
                State(st),
                c,
                dl,
                Path(r.collection_name),
                body(Value::Object(o)),
            )
            .await?;
            let (v, time) = response_envelope(resp).await?;
            Ok(qpb::QueryGroupsResponse {
                result: Some(qpb::GroupsResult {
                    groups: json_list(&v["groups"], |g| qpb::PointGroup {
                        id: json_group_id(&g["id"]),
                        hits: json_list(&g["hits"], json_scored),
                        lookup: g.get("lookup").filter(|l| !l.is_null()).map(json_retrieved),
                    }),
                }),
                time,
            })
        })
        .await
    }

    async fn facet(
        &self,
        req: Request<qpb::FacetCounts>,
    ) -> Result<Response<qpb::FacetResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Points/Facet", async move {
            let mut o = Map::new();
            o.insert("key".into(), json!(r.key));
            if let Some(f) = &r.filter {
                o.insert("filter".into(), filter_json(f)?);
            }
            if let Some(l) = r.limit {
                o.insert("limit".into(), json!(l));
            }
            if let Some(e) = r.exact {
                o.insert("exact".into(), json!(e));
            }
            let (v, time) = envelope(
                crate::http::aggregate::facet(
                    State(st),
                    c,
                    dl,
                    Path(r.collection_name),
                    body(Value::Object(o)),
                )
                .await?,
            );
            Ok(qpb::FacetResponse {
                hits: json_list(&v["hits"], |h| qpb::FacetHit {
                    value: json_facet_value(&h["value"]),
                    count: h["count"].as_u64().unwrap_or(0),
                }),
                time,
            })
        })
        .await
    }
}

/// One operation of an update batch as the REST batch writes it: `{"kind": body}`.
fn batch_op_json(op: &qpb::PointsUpdateOperation, at: &str) -> Result<Value, ApiError> {
    use qpb::points_update_operation::Operation as O;
    let selected = |s: Option<&qpb::PointsSelector>| -> Result<Map<String, Value>, ApiError> {
        let mut o = Map::new();
        selector_json(s, &mut o)?;
        Ok(o)
    };
    let payload = |p: &HashMap<String, qpb::Value>,
                   s: Option<&qpb::PointsSelector>,
                   key: Option<&String>|
     -> Result<Value, ApiError> {
        let mut o = selected(s)?;
        o.insert("payload".into(), map_json(p));
        if let Some(k) = key {
            o.insert("key".into(), json!(k));
        }
        Ok(Value::Object(o))
    };
    Ok(match &op.operation {
        Some(O::Upsert(u)) => {
            if u.update_filter.is_some() {
                return Err(unsupported(&format!("{at}.upsert.update_filter")));
            }
            let points = u
                .points
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let here = format!("{at}.upsert.points[{i}]");
                    Ok(
                        json!({"id": pid_json(p.id.as_ref(), &format!("{here}.id"))?,
                        "vector": vectors_json(p.vectors.as_ref(), &format!("{here}.vector"))?,
                        "payload": map_json(&p.payload)}),
                    )
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            json!({"upsert": {"points": points}})
        }
        Some(O::DeleteDeprecated(s)) => json!({"delete": selected(Some(s))?}),
        Some(O::DeletePoints(d)) => json!({"delete": selected(d.points.as_ref())?}),
        Some(O::SetPayload(p)) => json!({"set_payload":
            payload(&p.payload, p.points_selector.as_ref(), p.key.as_ref())?}),
        Some(O::OverwritePayload(p)) => json!({"overwrite_payload":
            payload(&p.payload, p.points_selector.as_ref(), p.key.as_ref())?}),
        Some(O::DeletePayload(p)) => {
            let mut o = selected(p.points_selector.as_ref())?;
            o.insert("keys".into(), json!(p.keys));
            json!({ "delete_payload": o })
        }
        Some(O::ClearPayloadDeprecated(s)) => json!({"clear_payload": selected(Some(s))?}),
        Some(O::ClearPayload(p)) => json!({"clear_payload": selected(p.points.as_ref())?}),
        Some(O::UpdateVectors(u)) => {
            if u.update_filter.is_some() {
                return Err(unsupported(&format!("{at}.update_vectors.update_filter")));
            }
            let points = u
                .points
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let here = format!("{at}.update_vectors.points[{i}]");
                    Ok(
                        json!({"id": pid_json(p.id.as_ref(), &format!("{here}.id"))?,
                        "vector": vectors_json(p.vectors.as_ref(), &format!("{here}.vector"))?}),
                    )
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            json!({"update_vectors": {"points": points}})
        }
        Some(O::DeleteVectors(d)) => {
            let mut o = selected(d.points_selector.as_ref())?;
            let names = d
                .vectors
                .as_ref()
                .map(|v| v.names.clone())
                .unwrap_or_default();
            o.insert("vector".into(), json!(names));
            json!({ "delete_vectors": o })
        }
        None => {
            return Err(unsupported(&format!(
                "{at}: an operation kind Strata does not serve"
            )));
        }
    })
}

/// A snapshot description from its REST shape (`creation_time` is UTC, `YYYY-MM-DDTHH:MM:SS`).
fn json_snapshot(v: &Value) -> qpb::SnapshotDescription {
    let creation_time = v["creation_time"]
        .as_str()
        .and_then(|t| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S").ok())
        .map(|t| prost_types::Timestamp {
            seconds: t.and_utc().timestamp(),
            nanos: 0,
        });
    qpb::SnapshotDescription {
        name: v["name"].as_str().unwrap_or_default().into(),
        creation_time,
        size: v["size"].as_i64().unwrap_or(0),
        checksum: v["checksum"].as_str().map(str::to_string),
    }
}

#[tonic::async_trait]
impl Snapshots for Service {
    async fn create(
        &self,
        req: Request<qpb::CreateSnapshotRequest>,
    ) -> Result<Response<qpb::CreateSnapshotResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Snapshots/Create", async move {
            let j = crate::http::snapshots::create(
                State(st),
                c,
                dl,
                Path(r.collection_name),
                no_query(),
            )
            .await?;
            let (v, time) = envelope(j);
            Ok(qpb::CreateSnapshotResponse {
                snapshot_description: Some(json_snapshot(&v)),
                time,
            })
        })
        .await
    }

    async fn list(
        &self,
        req: Request<qpb::ListSnapshotsRequest>,
    ) -> Result<Response<qpb::ListSnapshotsResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Snapshots/List", async move {
            let j = crate::http::snapshots::list(State(st), c, dl, Path(r.collection_name)).await?;
            let (v, time) = envelope(j);
            Ok(qpb::ListSnapshotsResponse {
                snapshot_descriptions: json_list(&v, json_snapshot),
                time,
            })
        })
        .await
    }

    async fn delete(
        &self,
        req: Request<qpb::DeleteSnapshotRequest>,
    ) -> Result<Response<qpb::DeleteSnapshotResponse>, Status> {
        let (c, dl, st, r) = ctx!(self, req);
        tracked("qdrant.Snapshots/Delete", async move {
            let j = crate::http::snapshots::delete(
                State(st),
                c,
                dl,
                Path((r.collection_name, r.snapshot_name)),
                no_query(),
            )
            .await?;
            let (_, time) = envelope(j);
            Ok(qpb::DeleteSnapshotResponse { time })
        })
        .await
    }

    async fn create_full(
        &self,
        _req: Request<qpb::CreateFullSnapshotRequest>,
    ) -> Result<Response<qpb::CreateSnapshotResponse>, Status> {
        Err(Status::from(unsupported(
            "qdrant.Snapshots/CreateFull: full storage snapshots (snapshot each collection)",
        )))
    }

    async fn list_full(
        &self,
        _req: Request<qpb::ListFullSnapshotsRequest>,
    ) -> Result<Response<qpb::ListSnapshotsResponse>, Status> {
        Err(Status::from(unsupported(
            "qdrant.Snapshots/ListFull: full storage snapshots",
        )))
    }

    async fn delete_full(
        &self,
        _req: Request<qpb::DeleteFullSnapshotRequest>,
    ) -> Result<Response<qpb::DeleteSnapshotResponse>, Status> {
        Err(Status::from(unsupported(
            "qdrant.Snapshots/DeleteFull: full storage snapshots",
        )))
    }
}

fn payload_body(r: &qpb::SetPayloadPoints) -> Result<Value, ApiError> {
    let mut o = Map::new();
    selector_json(r.points_selector.as_ref(), &mut o)?;
    o.insert("payload".into(), map_json(&r.payload));
    if let Some(k) = &r.key {
        o.insert("key".into(), json!(k));
    }
    Ok(Value::Object(o))
}

/// Adds Qdrant's services to `router` (authenticated like `strata.v1`; `qdrant.Qdrant`'s
/// health check is open, as `/healthz`).
pub fn add(
    router: tonic::transport::server::Router,
    state: AppState,
    auth: Arc<Authenticator>,
    max_message_bytes: usize,
) -> tonic::transport::server::Router {
    let svc = Service(state);
    let a1 = Arc::clone(&auth);
    let a2 = Arc::clone(&auth);
    let a3 = auth;
    router
        .add_service(QdrantServer::new(svc.clone()))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            SnapshotsServer::new(svc.clone()),
            move |r| authenticate(&a3, r),
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            CollectionsServer::new(svc.clone()).max_decoding_message_size(max_message_bytes),
            move |r| authenticate(&a1, r),
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            PointsServer::new(svc).max_decoding_message_size(max_message_bytes),
            move |r| authenticate(&a2, r),
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_rfc3339_utc() {
        let t = |seconds, nanos| timestamp_json(&prost_types::Timestamp { seconds, nanos });
        assert_eq!(t(0, 0), json!("1970-01-01T00:00:00.000000000Z"));
        assert_eq!(t(951_782_400, 5), json!("2000-02-29T00:00:00.000000005Z"));
        assert_eq!(
            t(1_733_529_600 + 3_661, 0),
            json!("2024-12-07T01:01:01.000000000Z")
        );
        assert_eq!(t(-86_400, 0), json!("1969-12-31T00:00:00.000000000Z"));
    }

    #[test]
    fn filters_translate_to_qdrants_rest_shapes() {
        use qpb::condition::ConditionOneOf as C;
        let field = |key: &str, m: qpb::r#match::MatchValue| qpb::Condition {
            condition_one_of: Some(C::Field(qpb::FieldCondition {
                key: key.into(),
                r#match: Some(qpb::Match {
                    match_value: Some(m),
                }),
                ..Default::default()
            })),
        };
        let f = qpb::Filter {
            must: vec![field("a", qpb::r#match::MatchValue::Keyword("x".into()))],
            must_not: vec![field("n", qpb::r#match::MatchValue::Integer(3))],
            should: vec![qpb::Condition {
                condition_one_of: Some(C::HasId(qpb::HasIdCondition {
                    has_id: vec![qpb::PointId {
                        point_id_options: Some(qpb::point_id::PointIdOptions::Num(7)),
                    }],
                })),
            }],
            min_should: None,
        };
        assert_eq!(
            filter_json(&f).expect("valid"),
            json!({"must": [{"key": "a", "match": {"value": "x"}}],
                "should": [{"has_id": [7]}],
                "must_not": [{"key": "n", "match": {"value": 3}}]})
        );
        assert!(
            condition_json(&qpb::Condition {
                condition_one_of: None
            })
            .is_err()
        );
    }
}
