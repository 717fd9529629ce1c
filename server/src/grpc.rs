//! The gRPC API (`strata.v1`, see `proto/strata/v1/strata.proto`), plus the standard
//! `grpc.health.v1` service and server reflection.
//!
//! ```text
//! call ─▶ interceptor (JWT from `authorization: Bearer` or `api-key` metadata → Caller in the
//!         request extensions; UNAUTHENTICATED otherwise) ─▶ service method: convert, authorize
//!         (the same rules as HTTP), engine call on the blocking pool with the request's
//!         deadline, map errors through `error::status_of`
//! ```
//!
//! The deadline is the server's request timeout, or the client's `grpc-timeout` when that is
//! shorter; a call the client cancels raises the cancel flag (the method's future is dropped),
//! so a write that had not reached the WAL is not applied.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use strata_engine::{
    CollectionConfig, Distance, Filter, HnswConfig, Payload, PointId, PointInput, Record,
    ScoredPoint, ScrollRequest, SearchRequest, VectorParams,
};
use tonic::{Request, Response, Status};

use crate::auth::Authenticator;
use crate::error::ApiError;
use crate::http::handlers::blocking;
use crate::http::{AppState, Caller, ReqDeadline};

/// Generated code.
#[allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    missing_debug_implementations
)]
pub mod pb {
    tonic::include_proto!("strata.v1");
    /// Descriptor set for reflection.
    pub const DESCRIPTOR: &[u8] = tonic::include_file_descriptor_set!("strata_v1_descriptor");
}

use pb::collections_server::{Collections, CollectionsServer};
use pb::points_server::{Points, PointsServer};
use pb::tiers_server::{Tiers, TiersServer};

/// Both services share the HTTP state (engine, authenticator, limits).
#[derive(Debug, Clone)]
pub struct Service(AppState);

impl Service {
    pub(crate) fn state(&self) -> &AppState {
        &self.0
    }
}

/// Parses a `grpc-timeout` header value: up to 8 digits and a unit (`H`, `M`, `S`, `m`, `u`,
/// `n`).
fn grpc_timeout(v: &str) -> Option<std::time::Duration> {
    use std::time::Duration;
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The call's deadline (see the module docs).
pub(crate) fn deadline<T>(req: &Request<T>, st: &AppState) -> ReqDeadline {
    let client = req
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(grpc_timeout);
    ReqDeadline::new(st.timeout, client)
}

pub(crate) fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("missing token"))
}

/// Records request metrics around `f`.
pub(crate) async fn tracked<T>(
    method: &'static str,
    f: impl Future<Output = Result<T, ApiError>>,
) -> Result<Response<T>, Status> {
    let started = Instant::now();
    let res = f.await;
    let code = match &res {
        Ok(_) => tonic::Code::Ok,
        Err(e) => crate::error::status_of(e.kind).1,
    };
    let code = format!("{code:?}");
    metrics::counter!("strata_grpc_requests_total", "method" => method, "code" => code.clone())
        .increment(1);
    if res.is_err() {
        metrics::counter!("strata_grpc_errors_total", "method" => method, "code" => code)
            .increment(1);
    }
    metrics::histogram!("strata_grpc_request_duration_seconds", "method" => method)
        .record(started.elapsed().as_secs_f64());
    res.map(Response::new).map_err(Status::from)
}

fn pid_from(p: Option<&pb::PointId>, at: &str) -> Result<PointId, ApiError> {
    match p.and_then(|p| p.kind.as_ref()) {
        Some(pb::point_id::Kind::Num(n)) => Ok(PointId::Num(*n)),
        Some(pb::point_id::Kind::Uuid(u)) => u
            .parse()
            .map_err(|e: strata_engine::Error| ApiError::invalid(format!("{at}: {}", e.message()))),
        None => Err(ApiError::invalid(format!("{at}: missing"))),
    }
}

fn pid_to(id: PointId) -> pb::PointId {
    pb::PointId {
        kind: Some(match id {
            PointId::Num(n) => pb::point_id::Kind::Num(n),
            PointId::Uuid(_) => pb::point_id::Kind::Uuid(id.to_string()),
        }),
    }
}

fn payload_from(s: &str, at: &str) -> Result<Option<Payload>, ApiError> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => Ok(Some(m)),
        Ok(_) => Err(ApiError::invalid(format!("{at}: expected a JSON object"))),
        Err(e) => Err(ApiError::invalid(format!("{at}: invalid JSON: {e}"))),
    }
}

fn filter_from(s: &str, at: &str) -> Result<Option<Filter>, ApiError> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(s)
        .map_err(|e| ApiError::invalid(format!("{at}: invalid JSON: {e}")))?;
    Filter::from_json(&v, at).map(Some).map_err(ApiError::from)
}

fn payload_to(p: Option<Payload>) -> String {
    p.map(|m| Value::Object(m).to_string()).unwrap_or_default()
}

fn record_to(r: Record) -> pb::Record {
    pb::Record {
        id: Some(pid_to(r.id)),
        version: r.version,
        payload_json: payload_to(r.payload),
        vector: r.vectors.and_then(|mut v| v.remove("")).unwrap_or_default(),
    }
}

fn scored_to(p: ScoredPoint) -> pb::ScoredPoint {
    pb::ScoredPoint {
        id: Some(pid_to(p.id)),
        version: p.version,
        score: p.score,
        payload_json: payload_to(p.payload),
        vector: p.vectors.and_then(|mut v| v.remove("")).unwrap_or_default(),
    }
}

fn distance_from(d: i32) -> Result<Distance, ApiError> {
    match pb::Distance::try_from(d) {
        Ok(pb::Distance::Cosine) => Ok(Distance::Cosine),
        Ok(pb::Distance::Euclid) => Ok(Distance::Euclid),
        Ok(pb::Distance::Dot) => Ok(Distance::Dot),
        _ => Err(ApiError::invalid("distance: must be COSINE, EUCLID or DOT")),
    }
}

fn distance_to(d: Distance) -> i32 {
    match d {
        Distance::Cosine => pb::Distance::Cosine as i32,
        Distance::Euclid => pb::Distance::Euclid as i32,
        Distance::Dot => pb::Distance::Dot as i32,
    }
}

fn ids_from(ids: &[pb::PointId], at: &str) -> Result<Vec<PointId>, ApiError> {
    ids.iter()
        .enumerate()
        .map(|(i, p)| pid_from(Some(p), &format!("{at}[{i}]")))
        .collect()
}

fn search_from(
    r: &pb::SearchPointsRequest,
    at: &str,
    max: usize,
) -> Result<SearchRequest, ApiError> {
    let limit = if r.limit == 0 { 10 } else { r.limit as usize };
    let window = limit + r.offset as usize;
    if window > max {
        return Err(ApiError::invalid(format!(
            "{at}limit + offset = {window} exceeds the maximum of {max} (STRATA_MAX_LIMIT)"
        )));
    }
    let mut req = SearchRequest::new(r.vector.clone(), limit);
    req.offset = r.offset as usize;
    req.filter = filter_from(&r.filter_json, &format!("{at}filter_json"))?;
    req.ef = (r.ef > 0).then_some(r.ef as usize);
    req.exact = r.exact;
    req.with_payload = r.with_payload;
    req.with_vector = r.with_vector;
    req.score_threshold = r.score_threshold;
    if !r.cold.is_empty() {
        req.cold = crate::tiers::parse_cold(&r.cold, &format!("{at}cold"))?;
    }
    req.cold_deadline = (r.cold_deadline_ms > 0)
        .then(|| std::time::Duration::from_millis(r.cold_deadline_ms.into()));
    Ok(req)
}

fn search_to(r: strata_engine::SearchReport) -> pb::SearchPointsResponse {
    pb::SearchPointsResponse {
        cold_searched: r.cold_searched,
        cold_skipped: r.cold_skipped,
        cold_left_out: r.cold_left_out,
        points: r.points.into_iter().map(scored_to).collect(),
    }
}

#[tonic::async_trait]
impl Collections for Service {
    async fn create(
        &self,
        req: Request<pb::CreateCollectionRequest>,
    ) -> Result<Response<pb::CreateCollectionResponse>, Status> {
        let c = caller(&req)?;
        let dl = deadline(&req, &self.0);
        let st = self.0.clone();
        let r = req.into_inner();
        tracked("Collections/Create", async move {
            st.manager(&c)?;
            let hnsw = r.hnsw.unwrap_or_default();
            let d = HnswConfig::default();
            let config = CollectionConfig::single(VectorParams {
                dim: r.dim,
                distance: distance_from(r.distance)?,
                hnsw: HnswConfig {
                    m: if hnsw.m == 0 { d.m } else { hnsw.m },
                    ef_construct: if hnsw.ef_construct == 0 {
                        d.ef_construct
                    } else {
                        hnsw.ef_construct
                    },
                },
            });
            let deadline = dl.get();
            blocking(move || {
                deadline.check("create collection")?;
                st.engine
                    .create_collection(&c.0.tenant, &r.collection, config)
                    .map(|_| pb::CreateCollectionResponse {})
                    .map_err(ApiError::from)
            })
            .await
        })
        .await
    }

    async fn get(
        &self,
        req: Request<pb::GetCollectionRequest>,
    ) -> Result<Response<pb::CollectionInfo>, Status> {
        let c = caller(&req)?;
        let dl = deadline(&req, &self.0);
        let st = self.0.clone();
        let r = req.into_inner();
        tracked("Collections/Get", async move {
            let h = st.readable(&c, &r.collection, &dl)?;
            let i = blocking(move || h.info().map_err(ApiError::from)).await?;
            // A collection of sparse vectors only has no dense parameters to show.
            let first = i.config.first().copied();
            Ok(pb::CollectionInfo {
                collection: i.name,
                dim: first.map_or(0, |p| p.dim),
                distance: first.map_or(0, |p| distance_to(p.distance)),
                hnsw: first.map(|p| pb::HnswConfig {
                    m: p.hnsw.m,
                    ef_construct: p.hnsw.ef_construct,
                }),
                points: i.points,
                segments: i.segments,
                indexed_segments: i.indexed_segments,
                bytes: i.bytes,
            })
        })
        .await
    }

    async fn list(
        &self,
        req: Request<pb::ListCollectionsRequest>,
    ) -> Result<Response<pb::ListCollectionsResponse>, Status> {
        let c = caller(&req)?;
        let st = self.0.clone();
        tracked("Collections/List", async move {
            let collections = st
                .engine
                .list_collections(&c.0.tenant)
                .into_iter()
                .filter(|n| c.0.can_read(n))
                .collect();
            Ok(pb::ListCollectionsResponse { collections })
        })
        .await
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteCollectionRequest>,
    ) -> Result<Response<pb::DeleteCollectionResponse>, Status> {
        let c = caller(&req)?;
        let dl = deadline(&req, &self.0);
        let st = self.0.clone();
        let r = req.into_inner();
        tracked("Collections/Delete", async move {
            st.manager(&c)?;
            let deadline = dl.get();
            blocking(move || {
                match deadline
                    .check("delete collection")
                    .and_then(|()| st.engine.delete_collection(&c.0.tenant, &r.collection))
                {
                    Ok(()) => Ok(pb::DeleteCollectionResponse { existed: true }),
                    Err(e) if e.kind() == strata_engine::ErrorKind::NotFound => {
                        Ok(pb::DeleteCollectionResponse { existed: false })
                    }
                    Err(e) => Err(e.into()),
                }
            })
            .await
        })
        .await
    }
}

#[tonic::async_trait]
impl Points for Service {
    async fn upsert(
        &self,
        req: Request<pb::UpsertPointsRequest>,
    ) -> Result<Response<pb::UpdateResponse>, Status> {
        let c = caller(&req)?;
        let dl = deadline(&req, &self.0);
        let st = self.0.clone();
        let r = req.into_inner();
        tracked("Points/Upsert", async move {
            let h = st.writable(&c, &r.collection, &dl)?;
            let points = r
                .points
                .into_iter()
                .enumerate()
                .map(|(i, p)| {
                    Ok(PointInput::new(
                        pid_from(p.id.as_ref(), &format!("points[{i}].id"))?,
                        p.vector,
                        payload_from(&p.payload_json, &format!("points[{i}].payload_json"))?,
                    ))
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            let version = blocking(move || h.upsert(points).map_err(ApiError::from)).await?;
            Ok(pb::UpdateResponse { version })
        })
        .await
    }

    async fn delete(
        &self,
        req: Request<pb::DeletePointsRequest>,
    ) -> Result<Response<pb::UpdateResponse>, Status> {
        let c = caller(&req)?;
        let dl = deadline(&req, &self.0);
        let st = self.0.clone();
        let r = req.into_inner();
        tracked("Points/Delete", async move {
            let h = st.writable(&c, &r.collection, &dl)?;
            let version = match r.selector {
                Some(pb::delete_points_request::Selector::Ids(ids)) => {
                    let ids = ids_from(&ids.ids, "ids")?;
                    blocking(move || h.delete(&ids).map_err(ApiError::from)).await?
                }
                Some(pb::delete_points_request::Selector::FilterJson(f)) => {
                    let f = filter_from(&f, "filter_json")?
                        .ok_or_else(|| ApiError::invalid("filter_json: empty"))?;
                    blocking(move || {
                        h.delete_matching(&f)
                            .map(|(l, _)| l)
                            .map_err(ApiError::from)
                    })
                    .await?
                }
                None => return Err(ApiError::invalid("selector: give ids or filter_json")),
            };
            Ok(pb::UpdateResponse { version })
        })
        .await
    }

    async fn get(
        &self,
        req: Request<pb::GetPointsRequest>,
    ) -> Result<Response<pb::GetPointsResponse>, Status> {
        let c = caller(&req)?;
        let dl = deadline(&req, &self.0);
        let st = self.0.clone();
        let r = req.into_inner();
        tracked("Points/Get", async move {
            let h = st.readable(&c, &r.collection, &dl)?;
            let ids = ids_from(&r.ids, "ids")?;
            let recs = blocking(move || {
                h.get(&ids, r.with_payload, r.with_vector)
                    .map_err(ApiError::from)
            })
            .await?;
            Ok(pb::GetPointsResponse {
                points: recs.into_iter().map(record_to).collect(),
            })
        })
        .await
    }

    async fn set_payload(
        &self,
        req: Request<pb::SetPayloadRequest>,
    ) -> Result<Response<pb::UpdateResponse>, Status> {
        let c = caller(&req)?;
        let dl = deadline(&req, &self.0);
        let st = self.0.clone();
        let r = req.into_inner();
        tracked("Points/SetPayload", async move {
            let h = st.writable(&c, &r.collection, &dl)?;
            let payload = payload_from(&r.payload_json, "payload_json")?
                .ok_or_else(|| ApiError::invalid("payload_json: empty"))?;
            let (ids, filter) = match &r.selector {
                Some(pb::set_payload_request::Selector::Ids(ids)) => {
                    (Some(ids_from(&ids.ids, "ids")?), None)
                }
                Some(pb::set_payload_request::Selector::FilterJson(f)) => {
                    (None, filter_from(f, "filter_json")?)
                }
                None => (None, None),
            };
            let version = blocking(move || match (ids, filter) {
                (Some(ids), _) => h.set_payload(&ids, &payload).map_err(ApiError::from),
                (None, Some(f)) => h.set_payload_matching(&f, &payload).map_err(ApiError::from),
                (None, None) => Err(ApiError::invalid("selector: give ids or filter_json")),
            })
            .await?;
            Ok(pb::UpdateResponse { version })
        })
        .await
    }

    async fn scroll(
        &self,
        req: Request<pb::ScrollPointsRequest>,
    ) -> Result<Response<pb::ScrollPointsResponse>, Status> {
        let c = caller(&req)?;
        let dl = deadline(&req, &self.0);
        let st = self.0.clone();
        let r = req.into_inner();
        tracked("Points/Scroll", async move {
            let h = st.readable(&c, &r.collection, &dl)?;
            let limit = if r.limit == 0 { 10 } else { r.limit as usize };
            if limit > st.max_limit {
                return Err(ApiError::invalid(format!(
                    "limit {limit} exceeds the maximum of {} (STRATA_MAX_LIMIT)",
                    st.max_limit
                )));
            }
            let req = ScrollRequest {
                offset: r
                    .offset
                    .as_ref()
                    .map(|o| pid_from(Some(o), "offset"))
                    .transpose()?,
                limit,
                filter: filter_from(&r.filter_json, "filter_json")?,
                with_payload: r.with_payload,
                with_vector: r.with_vector,
            };
            let page = blocking(move || h.scroll(&req).map_err(ApiError::from)).await?;
            Ok(pb::ScrollPointsResponse {
                points: page.points.into_iter().map(record_to).collect(),
                next_offset: page.next_offset.map(pid_to),
            })
        })
        .await
    }

    async fn count(
        &self,
        req: Request<pb::CountPointsRequest>,
    ) -> Result<Response<pb::CountPointsResponse>, Status> {
        let c = caller(&req)?;
        let dl = deadline(&req, &self.0);
        let st = self.0.clone();
        let r = req.into_inner();
        tracked("Points/Count", async move {
            let h = st.readable(&c, &r.collection, &dl)?;
            let f = filter_from(&r.filter_json, "filter_json")?;
            let count = blocking(move || h.count(f.as_ref()).map_err(ApiError::from)).await?;
            Ok(pb::CountPointsResponse { count })
        })
        .await
    }

    async fn search(
        &self,
        req: Request<pb::SearchPointsRequest>,
    ) -> Result<Response<pb::SearchPointsResponse>, Status> {
        let c = caller(&req)?;
        let dl = deadline(&req, &self.0);
        let st = self.0.clone();
        let r = req.into_inner();
        tracked("Points/Search", async move {
            let h = st.readable(&c, &r.collection, &dl)?;
            let s = search_from(&r, "", st.max_limit)?;
            let report = blocking(move || h.search_report(&s).map_err(ApiError::from)).await?;
            Ok(search_to(report))
        })
        .await
    }

    async fn search_batch(
        &self,
        req: Request<pb::SearchBatchRequest>,
    ) -> Result<Response<pb::SearchBatchResponse>, Status> {
        let c = caller(&req)?;
        let dl = deadline(&req, &self.0);
        let st = self.0.clone();
        let r = req.into_inner();
        tracked("Points/SearchBatch", async move {
            let h = st.readable(&c, &r.collection, &dl)?;
            if r.searches.len() > st.max_batch_searches {
                return Err(ApiError::new(
                    crate::error::Kind::Engine(strata_engine::ErrorKind::ResourceExhausted),
                    format!(
                        "searches: {} searches exceed the limit of {} (STRATA_MAX_BATCH_SEARCHES)",
                        r.searches.len(),
                        st.max_batch_searches
                    ),
                ));
            }
            let reqs = r
                .searches
                .iter()
                .enumerate()
                .map(|(i, s)| search_from(s, &format!("searches[{i}]."), st.max_limit))
                .collect::<Result<Vec<_>, _>>()?;
            let results = blocking(move || {
                reqs.iter()
                    .map(|s| h.search_report(s).map(search_to).map_err(ApiError::from))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
            Ok(pb::SearchBatchResponse { results })
        })
        .await
    }
}

#[tonic::async_trait]
impl Tiers for Service {
    async fn get(
        &self,
        req: Request<pb::GetTiersRequest>,
    ) -> Result<Response<pb::GetTiersResponse>, Status> {
        let c = caller(&req)?;
        let st = self.0.clone();
        tracked("Tiers/Get", async move {
            crate::tiers::manager(&c)?;
            let engine = st.engine.clone();
            let r = blocking(move || crate::tiers::report(&engine, &c.0.tenant)).await?;
            let fig = |t: &crate::tiers::TierFigures| pb::TierFigures {
                segments: t.segments,
                bytes: t.bytes,
                budget_bytes: t.budget_bytes,
                hits: t.hits,
                moves_in: t.moves_in,
            };
            Ok(pb::GetTiersResponse {
                hot: Some(fig(&r.tiers[0])),
                warm: Some(fig(&r.tiers[1])),
                cold: Some(fig(&r.tiers[2])),
                cold_reads_streamed: r.cold_reads_streamed,
                cold_reads_promoted: r.cold_reads_promoted,
                cold_streamed_bytes: r.cold_streamed_bytes,
                move_failures: r.move_failures,
                search_cold_searched: r.search_cold[0],
                search_cold_skipped: r.search_cold[1],
                search_cold_left_out: r.search_cold[2],
                cold_store_configured: r.cold_store.is_some(),
                cold_store_reachable: matches!(r.cold_store, Some(Ok(()))),
                cold_store_error: match &r.cold_store {
                    Some(Err(e)) => e.clone(),
                    _ => String::new(),
                },
                io_backend: r.io.as_ref().map_or("", |s| s.backend).to_string(),
                io_depth: r.io.as_ref().map_or(0, |s| s.depth),
                io_fallback_reason: r
                    .io
                    .as_ref()
                    .and_then(|s| s.fallback_reason.clone())
                    .unwrap_or_default(),
                collections: r
                    .collections
                    .into_iter()
                    .map(|c| pb::CollectionTier {
                        collection: c.name,
                        hint: c.hint,
                        hot_segments: c.segments[0],
                        warm_segments: c.segments[1],
                        cold_segments: c.segments[2],
                    })
                    .collect(),
                actor_types: r
                    .actor_types
                    .into_iter()
                    .map(|c| pb::ActorTypeTier {
                        actor_type: c.name,
                        hint: c.hint,
                        hot_segments: c.segments[0],
                        warm_segments: c.segments[1],
                        cold_segments: c.segments[2],
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn set_hint(
        &self,
        req: Request<pb::SetTierHintRequest>,
    ) -> Result<Response<pb::SetTierHintResponse>, Status> {
        let c = caller(&req)?;
        let st = self.0.clone();
        let r = req.into_inner();
        tracked("Tiers/SetHint", async move {
            crate::tiers::manager(&c)?;
            let hint = crate::tiers::parse_hint(&r.hint, "hint")?;
            match (r.collection.is_empty(), r.actor_type.is_empty()) {
                (false, true) => {
                    blocking(move || crate::tiers::set_hint(&st, &c, &r.collection, hint)).await?
                }
                (true, false) => {
                    blocking(move || crate::tiers::set_actor_hint(&st, &c, &r.actor_type, hint))
                        .await?
                }
                _ => {
                    return Err(ApiError::invalid(
                        "collection, actor_type: set exactly one of them",
                    ));
                }
            }
            Ok(pb::SetTierHintResponse {})
        })
        .await
    }
}

/// The token a call carries: `api-key` metadata, else `authorization: Bearer …`
/// ([`crate::auth::pick_token`], the rule HTTP uses).
pub(crate) fn token(md: &tonic::metadata::MetadataMap) -> Result<String, Status> {
    let text = |name: &str| md.get(name).and_then(|v| v.to_str().ok());
    crate::auth::pick_token(text("api-key"), text("authorization"))
        .map(str::to_string)
        .map_err(Status::unauthenticated)
}

pub(crate) fn authenticate(
    auth: &Authenticator,
    mut req: Request<()>,
) -> Result<Request<()>, Status> {
    let token = token(req.metadata())?;
    let principal = auth
        .verify(&token)
        .map_err(|e| Status::unauthenticated(e.0))?;
    req.extensions_mut().insert(Caller(principal));
    Ok(req)
}

/// The gRPC router: `strata.v1` services (authenticated), health and reflection (not).
pub async fn router(
    state: AppState,
    max_message_bytes: usize,
) -> anyhow::Result<tonic::transport::server::Router> {
    let auth: Arc<Authenticator> = Arc::clone(&state.auth);
    let qdrant_state = state.clone();
    let svc = Service(state);
    let (health, health_svc) = tonic_health::server::health_reporter();
    health.set_serving::<CollectionsServer<Service>>().await;
    health.set_serving::<PointsServer<Service>>().await;
    health.set_serving::<TiersServer<Service>>().await;
    health
        .set_serving::<pb::actors_server::ActorsServer<Service>>()
        .await;
    health
        .set_serving::<crate::qdrant_grpc::qpb::points_server::PointsServer<crate::qdrant_grpc::Service>>()
        .await;
    health
        .set_serving::<
            crate::qdrant_grpc::qpb::collections_server::CollectionsServer<crate::qdrant_grpc::Service>,
        >()
        .await;
    // Reflection v1 and the older v1alpha (which grpcurl and many clients still ask for).
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::DESCRIPTOR)
            .register_encoded_file_descriptor_set(crate::qdrant_grpc::qpb::DESCRIPTOR)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let a1 = Arc::clone(&auth);
    let a2 = Arc::clone(&auth);
    let a3 = Arc::clone(&auth);
    let a4 = Arc::clone(&auth);
    let actors = pb::actors_server::ActorsServer::new(svc.clone())
        .max_decoding_message_size(max_message_bytes);
    let tiers = TiersServer::new(svc.clone()).max_decoding_message_size(max_message_bytes);
    let collections =
        CollectionsServer::new(svc.clone()).max_decoding_message_size(max_message_bytes);
    let points = PointsServer::new(svc).max_decoding_message_size(max_message_bytes);
    let qdrant_auth = auth;
    let router = tonic::transport::Server::builder()
        .add_service(health_svc)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(tonic::service::interceptor::InterceptedService::new(
            collections,
            move |r| authenticate(&a1, r),
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            points,
            move |r| authenticate(&a2, r),
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            tiers,
            move |r| authenticate(&a3, r),
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            actors,
            move |r| authenticate(&a4, r),
        ));
    Ok(crate::qdrant_grpc::add(
        router,
        qdrant_state,
        qdrant_auth,
        max_message_bytes,
    ))
}

#[cfg(test)]
mod tests {
    use super::grpc_timeout;
    use std::time::Duration;

    #[test]
    fn grpc_timeouts_parse_per_the_spec() {
        assert_eq!(grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(
            grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "S", "5", "5s", "123456789S", "-1S", "1.5S"] {
            assert_eq!(grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
