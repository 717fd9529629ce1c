//! `strata.v1.Actors`: actor state over gRPC, with the HTTP routes' rules (`docs/api.md`, Actor
//! state). A failed condition answers FAILED_PRECONDITION with the state's current version in
//! the `strata-current-version` metadata (absent when the state does not exist).
//!
//! `Session` carries many of the same operations on one stream (see [`Session`]): the
//! per-operation rules below are shared, so an operation answers the same either way.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, Stream};
use tonic::{Request, Response, Status, Streaming};

use strata_engine::{ActorCondition, ActorHandle, ActorWrite};

use crate::auth::Principal;

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

/// A get's answer: here and now when the state is in RAM (or ruled out), else later.
enum Got {
    Now(pb::GetActorStateResponse),
    Later(BoxFuture<'static, Result<pb::GetActorStateResponse, Status>>),
}

fn answer(found: Option<strata_engine::ActorState>) -> pb::GetActorStateResponse {
    match found {
        Some(s) => pb::GetActorStateResponse {
            found: true,
            value: s.value,
            content_type: s.content_type,
            version: s.version,
            expires_at_ms: s.expires_at_ms,
        },
        None => pb::GetActorStateResponse::default(),
    }
}

/// One operation's rules, shared by the unary calls and [`Actors::session`].
impl Service {
    /// The store for a write (created on first use).
    fn writer(&self, c: &Principal, ty: &str) -> Result<ActorHandle, Status> {
        if !c.can_write_actors(ty) {
            return Err(Status::permission_denied(format!(
                "the token has no rw access to actor type {ty:?} (claim `actors`)"
            )));
        }
        self.state()
            .engine
            .actors(&c.tenant, ty)
            .map_err(|e| Status::from(ApiError::from(e)))
    }

    /// The store for a read: `None` when the type has never been written (reads create nothing).
    fn reader(&self, c: &Principal, ty: &str) -> Result<Option<ActorHandle>, Status> {
        if !c.can_read_actors(ty) {
            return Err(Status::permission_denied(format!(
                "the token has no r access to actor type {ty:?} (claim `actors`)"
            )));
        }
        self.state()
            .engine
            .actors_existing(&c.tenant, ty)
            .map_err(|e| Status::from(ApiError::from(e)))
    }

    fn get_op(&self, c: &Principal, r: pb::GetActorStateRequest) -> Result<Got, Status> {
        let Some(a) = self.reader(c, &r.actor_type)? else {
            return Ok(Got::Now(pb::GetActorStateResponse::default()));
        };
        let state = state_name(r.state);
        // In RAM (or ruled out by bloom filters): answered here; else a block read on the
        // blocking pool.
        if let Some(found) = a.get_resident(&r.actor_id, &state) {
            return Ok(Got::Now(answer(found.map_err(status)?)));
        }
        Ok(Got::Later(Box::pin(async move {
            let found = blocking(move || Ok(a.get(&r.actor_id, &state)))
                .await
                .map_err(Status::from)?
                .map_err(status)?;
            Ok(answer(found))
        })))
    }

    fn put_op(&self, c: &Principal, r: pb::PutActorStateRequest) -> Result<Write, Status> {
        let a = self.writer(c, &r.actor_type)?;
        let put = ActorWrite::Put {
            state: state_name(r.state),
            value: r.value,
            content_type: content_type(r.content_type),
            ttl_ms: ttl_ms(r.ttl_seconds)?,
            condition: condition(r.condition),
        };
        Ok(write(a, r.actor_id, vec![put]))
    }

    fn delete_op(&self, c: &Principal, r: pb::DeleteActorStateRequest) -> Result<Write, Status> {
        let a = self.writer(c, &r.actor_type)?;
        let state = state_name(r.state);
        let missing = format!(
            "actor {:?} of type {:?} has no state {state:?}",
            r.actor_id, r.actor_type
        );
        let del = ActorWrite::Delete {
            state,
            condition: condition(r.condition),
        };
        let w = write(a, r.actor_id, vec![del]);
        Ok(Box::pin(async move {
            let res = w.await?;
            // Nothing to delete: nothing was written (as HTTP's 404).
            match res.version {
                0 => Err(Status::not_found(missing)),
                _ => Ok(res),
            }
        }))
    }

    fn transaction_op(
        &self,
        c: &Principal,
        r: pb::ActorTransactionRequest,
    ) -> Result<Write, Status> {
        let a = self.writer(c, &r.actor_type)?;
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
        Ok(write(a, r.actor_id, ops))
    }
}

/// A write waiting to be durable.
type Write = BoxFuture<'static, Result<pb::ActorWriteResponse, Status>>;

/// Commits `writes` (see `http::actors::commit`); its version in the answer (0: nothing was
/// written).
fn write(a: ActorHandle, actor: String, writes: Vec<ActorWrite>) -> Write {
    Box::pin(async move {
        match crate::http::actors::commit(a, actor, writes, false).await {
            Ok(Ok(c)) => Ok(pb::ActorWriteResponse {
                version: c.version.unwrap_or(0),
            }),
            Ok(Err(e)) => Err(status(e)),
            Err(e) => Err(Status::from(e)),
        }
    })
}

fn principal<T>(req: &Request<T>) -> Result<Principal, Status> {
    Ok(caller(req)?.0)
}

#[tonic::async_trait]
impl Actors for Service {
    async fn get(
        &self,
        req: Request<pb::GetActorStateRequest>,
    ) -> Result<Response<pb::GetActorStateResponse>, Status> {
        let c = principal(&req)?;
        match self.get_op(&c, req.into_inner())? {
            Got::Now(r) => Ok(Response::new(r)),
            Got::Later(f) => Ok(Response::new(f.await?)),
        }
    }

    async fn put(
        &self,
        req: Request<pb::PutActorStateRequest>,
    ) -> Result<Response<pb::ActorWriteResponse>, Status> {
        let c = principal(&req)?;
        Ok(Response::new(self.put_op(&c, req.into_inner())?.await?))
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteActorStateRequest>,
    ) -> Result<Response<pb::ActorWriteResponse>, Status> {
        let c = principal(&req)?;
        Ok(Response::new(self.delete_op(&c, req.into_inner())?.await?))
    }

    async fn transaction(
        &self,
        req: Request<pb::ActorTransactionRequest>,
    ) -> Result<Response<pb::ActorWriteResponse>, Status> {
        let c = principal(&req)?;
        Ok(Response::new(
            self.transaction_op(&c, req.into_inner())?.await?,
        ))
    }

    async fn list(
        &self,
        req: Request<pb::ListActorsRequest>,
    ) -> Result<Response<pb::ListActorsResponse>, Status> {
        let c = principal(&req)?;
        let r = req.into_inner();
        let Some(a) = self.reader(&c, &r.actor_type)? else {
            return Ok(Response::new(pb::ListActorsResponse::default()));
        };
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

    type SessionStream = Session;

    async fn session(
        &self,
        req: Request<Streaming<pb::ActorSessionRequest>>,
    ) -> Result<Response<Session>, Status> {
        // The interceptor verified the token; the session keeps what it grants and checks its
        // expiry before every operation, so that a stream does not outlive the token.
        let token = crate::grpc::token(req.metadata())?;
        let (principal, until) = self
            .state()
            .auth
            .verify_until(&token)
            .map_err(|e| Status::unauthenticated(e.0))?;
        Ok(Response::new(Session {
            svc: self.clone(),
            principal,
            until,
            inbound: Some(req.into_inner()),
            inflight: FuturesUnordered::new(),
        }))
    }
}

/// Operations one session stream has in flight at most; beyond it the stream is not read
/// until answers are taken (back-pressure through HTTP/2 flow control).
pub(crate) const SESSION_IN_FLIGHT: usize = 1024;

/// The answers of an `Actors/Session` stream: operations are read from the request stream
/// and started as the answers are polled (no task of its own), gets in RAM answered at once,
/// the rest as they finish.
pub struct Session {
    svc: Service,
    /// Who the token speaks for, and the second after which it no longer does.
    principal: Principal,
    until: u64,
    /// `None` once the client closed its side.
    inbound: Option<Streaming<pb::ActorSessionRequest>>,
    inflight: FuturesUnordered<BoxFuture<'static, pb::ActorSessionResponse>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("reading", &self.inbound.is_some())
            .field("in_flight", &self.inflight.len())
            .finish()
    }
}

fn session_error(s: Status) -> pb::ActorSessionError {
    pb::ActorSessionError {
        code: s.code() as i32,
        message: s.message().to_string(),
        current_version: s
            .metadata()
            .get("strata-current-version")
            .and_then(|v| v.to_str().ok()?.parse().ok()),
    }
}

fn session_answer(id: u64, r: Result<Outcome, Status>) -> pb::ActorSessionResponse {
    use pb::actor_session_response::Result as R;
    pb::ActorSessionResponse {
        id,
        result: Some(match r {
            Ok(Outcome::Got(g)) => R::Get(g),
            Ok(Outcome::Wrote(w)) => R::Write(w),
            Err(s) => R::Error(session_error(s)),
        }),
    }
}

enum Outcome {
    Got(pb::GetActorStateResponse),
    Wrote(pb::ActorWriteResponse),
}

impl Session {
    /// Starts one operation: its answer now, or `None` when it joined the in-flight set. An
    /// error ends the stream (the token no longer holds).
    fn start(
        &mut self,
        req: pb::ActorSessionRequest,
    ) -> Result<Option<pb::ActorSessionResponse>, Status> {
        use pb::actor_session_request::Op;
        crate::auth::Authenticator::still_valid(self.until)
            .map_err(|e| Status::unauthenticated(e.0))?;
        let c = &self.principal;
        let id = req.id;
        let later = |w: Write| -> BoxFuture<'static, pb::ActorSessionResponse> {
            Box::pin(async move { session_answer(id, w.await.map(Outcome::Wrote)) })
        };
        let write = match req.op {
            None => Err(Status::invalid_argument(
                "op: set one of get, put, delete, transaction",
            )),
            Some(Op::Get(g)) => {
                let got = match self.svc.get_op(c, g) {
                    Ok(Got::Now(g)) => Ok(Outcome::Got(g)),
                    Ok(Got::Later(f)) => {
                        self.inflight.push(Box::pin(async move {
                            session_answer(id, f.await.map(Outcome::Got))
                        }));
                        return Ok(None);
                    }
                    Err(e) => Err(e),
                };
                return Ok(Some(session_answer(id, got)));
            }
            Some(Op::Put(p)) => self.svc.put_op(c, p),
            Some(Op::Delete(d)) => self.svc.delete_op(c, d),
            Some(Op::Transaction(t)) => self.svc.transaction_op(c, t),
        };
        match write {
            // Answered when durable.
            Ok(w) => {
                self.inflight.push(later(w));
                Ok(None)
            }
            Err(s) => Ok(Some(session_answer(id, Err(s)))),
        }
    }
}

impl Stream for Session {
    type Item = Result<pb::ActorSessionResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            // Read while there is room: a get in RAM is answered here.
            if this.inflight.len() < SESSION_IN_FLIGHT
                && let Some(inbound) = this.inbound.as_mut()
            {
                match Pin::new(inbound).poll_next(cx) {
                    Poll::Ready(Some(Ok(req))) => match this.start(req) {
                        Ok(Some(answer)) => return Poll::Ready(Some(Ok(answer))),
                        Ok(None) => continue,
                        Err(s) => {
                            this.inbound = None;
                            this.inflight = FuturesUnordered::new();
                            return Poll::Ready(Some(Err(s)));
                        }
                    },
                    // The client's stream broke: nothing more to answer.
                    Poll::Ready(Some(Err(s))) => {
                        this.inbound = None;
                        this.inflight = FuturesUnordered::new();
                        return Poll::Ready(Some(Err(s)));
                    }
                    Poll::Ready(None) => this.inbound = None,
                    Poll::Pending => {}
                }
            }
            return match Pin::new(&mut this.inflight).poll_next(cx) {
                Poll::Ready(Some(answer)) => Poll::Ready(Some(Ok(answer))),
                // Nothing in flight: done once the client closed its side.
                Poll::Ready(None) if this.inbound.is_none() => Poll::Ready(None),
                Poll::Ready(None) | Poll::Pending => Poll::Pending,
            };
        }
    }
}
