//! `strata.v1.Actors`: actor state over gRPC, with the HTTP routes' rules (`docs/api.md`, Actor
//! state). A failed condition answers FAILED_PRECONDITION with the state's current version in
//! the `strata-current-version` metadata (absent when the state does not exist).

use tonic::{Request, Response, Status};

use strata_engine::{ActorCondition, ActorHandle, ActorWrite};

use crate::error::ApiError;
use crate::grpc::pb;
use crate::grpc::pb::actors_server::Actors;
use crate::grpc::{Service, caller};
use crate::http::handlers::blocking;

const DEFAULT_STATE: &str = "state";

fn state_name(s: String) -> String {
    if s.is_empty() {
        DEFAULT_STATE.to_string()
    } else {
        s
    }
}

fn condition(c: Option<pb::ActorCondition>) -> ActorCondition {
    match c.and_then(|c| c.kind) {
        Some(pb::actor_condition::Kind::IfMatch(v)) => ActorCondition::IfMatch(v),
        Some(pb::actor_condition::Kind::IfNoneMatch(true)) => ActorCondition::IfNoneMatch,
        Some(pb::actor_condition::Kind::IfExists(true)) => ActorCondition::IfExists,
        _ => ActorCondition::None,
    }
}

fn ttl_ms(s: Option<u64>) -> Result<Option<u64>, Status> {
    match s {
        None => Ok(None),
        Some(s) if s > 0 && s <= 10 * 365 * 86_400 => Ok(Some(s * 1000)),
        Some(s) => Err(Status::invalid_argument(format!(
            "ttl_seconds: {s} is not in 1..=315360000"
        ))),
    }
}

fn content_type(c: String) -> String {
    if c.is_empty() {
        "application/octet-stream".to_string()
    } else {
        c
    }
}

/// An engine error as a status; a failed condition carries the current version.
fn status(e: strata_engine::Error) -> Status {
    let current = e.conflict_version();
    let mut s = Status::from(ApiError::from(e));
    if let Some(Some(v)) = current
        && let Ok(v) = v.to_string().parse()
    {
        s.metadata_mut().insert("strata-current-version", v);
    }
    s
}

impl Service {
    /// The store for a write (created on first use).
    fn actors<T>(&self, req: &Request<T>, ty: &str) -> Result<ActorHandle, Status> {
        let c = caller(req)?;
        if !c.0.can_write_actors(ty) {
            return Err(Status::permission_denied(format!(
                "the token has no rw access to actor type {ty:?} (claim `actors`)"
            )));
        }
        self.state()
            .engine
            .actors(&c.0.tenant, ty)
            .map_err(|e| Status::from(ApiError::from(e)))
    }
}

impl Service {
    /// The store for a read: `None` when the type has never been written (reads create nothing).
    fn existing<T>(&self, req: &Request<T>, ty: &str) -> Result<Option<ActorHandle>, Status> {
        let c = caller(req)?;
        if !c.0.can_read_actors(ty) {
            return Err(Status::permission_denied(format!(
                "the token has no r access to actor type {ty:?} (claim `actors`)"
            )));
        }
        self.state()
            .engine
            .actors_existing(&c.0.tenant, ty)
            .map_err(|e| Status::from(ApiError::from(e)))
    }
}

/// Commits `writes` (see `http::actors::commit`); its version in the answer (0: nothing was
/// written).
async fn write(
    a: ActorHandle,
    actor: String,
    writes: Vec<ActorWrite>,
) -> Result<Response<pb::ActorWriteResponse>, Status> {
    match crate::http::actors::commit(a, actor, writes, false).await {
        Ok(Ok(c)) => Ok(Response::new(pb::ActorWriteResponse {
            version: c.version.unwrap_or(0),
        })),
        Ok(Err(e)) => Err(status(e)),
        Err(e) => Err(Status::from(e)),
    }
}

#[tonic::async_trait]
impl Actors for Service {
    async fn get(
        &self,
        req: Request<pb::GetActorStateRequest>,
    ) -> Result<Response<pb::GetActorStateResponse>, Status> {
        let Some(a) = self.existing(&req, &req.get_ref().actor_type)? else {
            return Ok(Response::new(pb::GetActorStateResponse::default()));
        };
        let r = req.into_inner();
        let state = state_name(r.state);
        // In RAM (or ruled out by bloom filters): answered here; else a block read on the
        // blocking pool.
        let found = match a.get_resident(&r.actor_id, &state) {
            Some(found) => found.map_err(status)?,
            None => blocking(move || Ok(a.get(&r.actor_id, &state)))
                .await
                .map_err(Status::from)?
                .map_err(status)?,
        };
        Ok(Response::new(match found {
            Some(s) => pb::GetActorStateResponse {
                found: true,
                value: s.value,
                content_type: s.content_type,
                version: s.version,
                expires_at_ms: s.expires_at_ms,
            },
            None => pb::GetActorStateResponse::default(),
        }))
    }

    async fn put(
        &self,
        req: Request<pb::PutActorStateRequest>,
    ) -> Result<Response<pb::ActorWriteResponse>, Status> {
        let a = self.actors(&req, &req.get_ref().actor_type)?;
        let r = req.into_inner();
        let (state, ttl, cond) = (
            state_name(r.state),
            ttl_ms(r.ttl_seconds)?,
            condition(r.condition),
        );
        let ct = content_type(r.content_type);
        let put = ActorWrite::Put {
            state,
            value: r.value,
            content_type: ct,
            ttl_ms: ttl,
            condition: cond,
        };
        write(a, r.actor_id, vec![put]).await
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteActorStateRequest>,
    ) -> Result<Response<pb::ActorWriteResponse>, Status> {
        let a = self.actors(&req, &req.get_ref().actor_type)?;
        let r = req.into_inner();
        let (state, cond) = (state_name(r.state), condition(r.condition));
        let (id, ty) = (r.actor_id.clone(), r.actor_type.clone());
        let missing = format!("actor {id:?} of type {ty:?} has no state {state:?}");
        let del = ActorWrite::Delete {
            state,
            condition: cond,
        };
        let res = write(a, r.actor_id, vec![del]).await?;
        // Nothing to delete: nothing was written (as HTTP's 404).
        match res.get_ref().version {
            0 => Err(Status::not_found(missing)),
            _ => Ok(res),
        }
    }

    async fn transaction(
        &self,
        req: Request<pb::ActorTransactionRequest>,
    ) -> Result<Response<pb::ActorWriteResponse>, Status> {
        let a = self.actors(&req, &req.get_ref().actor_type)?;
        let r = req.into_inner();
        let ops = r
            .operations
            .into_iter()
            .map(|o| {
                let (state, condition) = (state_name(o.state), condition(o.condition));
                Ok(match o.delete {
                    true => ActorWrite::Delete { state, condition },
                    false => ActorWrite::Put {
                        state,
                        value: o.value,
                        content_type: content_type(o.content_type),
                        ttl_ms: ttl_ms(o.ttl_seconds)?,
                        condition,
                    },
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        write(a, r.actor_id, ops).await
    }

    async fn list(
        &self,
        req: Request<pb::ListActorsRequest>,
    ) -> Result<Response<pb::ListActorsResponse>, Status> {
        let Some(a) = self.existing(&req, &req.get_ref().actor_type)? else {
            return Ok(Response::new(pb::ListActorsResponse::default()));
        };
        let r = req.into_inner();
        let limit = if r.limit == 0 { 100 } else { r.limit as usize };
        let after = (!r.after.is_empty()).then_some(r.after);
        let ids = blocking(move || Ok(a.list(after.as_deref(), limit)))
            .await
            .map_err(Status::from)?
            .map_err(status)?;
        let next = match ids.len() == limit {
            true => ids.last().cloned().unwrap_or_default(),
            false => String::new(),
        };
        Ok(Response::new(pb::ListActorsResponse {
            actor_ids: ids,
            next,
        }))
    }
}
