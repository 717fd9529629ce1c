//! The tiers API, shared by HTTP (`GET /v1/tiers`, `PUT /v1/collections/{c}/tier`) and gRPC
//! (`strata.v1.Tiers`): what each tier holds and does, and per-collection hints. Both need a
//! token with access `m`.

use serde_json::{Value, json};
use strata_engine::{ColdReads, Engine, TierHint};

use crate::error::ApiError;
use crate::http::{AppState, Caller};

/// One tier's figures.
#[derive(Clone, Debug, Default)]
pub(crate) struct TierFigures {
    pub(crate) segments: u64,
    pub(crate) bytes: u64,
    /// `None`: no budget (cold), or unlimited (warm without `STRATA_WARM_BYTES`).
    pub(crate) budget_bytes: Option<u64>,
    /// Reads that found a body resident here (cold: reads that found it cold).
    pub(crate) hits: u64,
    /// Moves into this tier.
    pub(crate) moves_in: u64,
}

/// One collection's hint and where its segments are.
#[derive(Clone, Debug)]
pub(crate) struct CollectionTier {
    pub(crate) name: String,
    pub(crate) hint: String,
    pub(crate) segments: [u64; 3],
}

/// Everything `GET /v1/tiers` says.
#[derive(Clone, Debug)]
pub(crate) struct Report {
    pub(crate) tiers: [TierFigures; 3],
    pub(crate) cold_reads_streamed: u64,
    pub(crate) cold_reads_promoted: u64,
    pub(crate) cold_streamed_bytes: u64,
    pub(crate) move_failures: u64,
    pub(crate) search_cold: [u64; 3],
    /// `None`: no cold store configured; else the last probe.
    pub(crate) cold_store: Option<Result<(), String>>,
    /// Batched reads: backend, depth, why `auto` fell back (`None`: no local directory).
    pub(crate) io: Option<IoStatus>,
    pub(crate) collections: Vec<CollectionTier>,
    /// Actor types, with the same figures (`name` is the actor type).
    pub(crate) actor_types: Vec<CollectionTier>,
}

/// Refuses callers without access `m`.
pub(crate) fn manager(caller: &Caller) -> Result<(), ApiError> {
    if caller.0.can_manage() {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "the tiers API needs a token with access \"m\"",
        ))
    }
}

/// The report for `tenant` (runs a cold-store probe if none ran yet: call off the runtime).
pub(crate) fn report(engine: &Engine, tenant: &str) -> Result<Report, ApiError> {
    let st = engine.stats();
    let (hot_budget, warm_budget) = engine.tier_budgets();
    let budgets = [Some(hot_budget), warm_budget, None];
    let hits = [st.tier_hits[0], st.tier_hits[1], st.tier_misses];
    let tiers = std::array::from_fn(|i| TierFigures {
        segments: st.tier_segments[i],
        bytes: st.tier_bytes[i],
        budget_bytes: budgets[i],
        hits: hits[i],
        moves_in: st.tier_moves[i],
    });
    let mut collections = Vec::new();
    for name in engine.list_collections(tenant) {
        // A collection dropped meanwhile is simply not listed.
        if let Ok(info) = engine.collection(tenant, &name).and_then(|c| c.info()) {
            collections.push(CollectionTier {
                name,
                hint: info.tier_hint,
                segments: info.tier_segments,
            });
        }
    }
    let actor_types = engine
        .list_actor_types(tenant)
        .into_iter()
        .filter_map(|ty| {
            let a = engine.actors_existing(tenant, &ty).ok().flatten()?;
            Some(CollectionTier {
                name: ty,
                hint: strata_engine::tiers::hint_name(a.tier_hint()).to_string(),
                segments: a.segments_per_tier(),
            })
        })
        .collect();
    Ok(Report {
        actor_types,
        tiers,
        cold_reads_streamed: st.cold_reads_streamed,
        cold_reads_promoted: st.cold_reads_promoted,
        cold_streamed_bytes: st.cold_streamed_bytes,
        move_failures: st.tier_move_failures,
        search_cold: st.search_cold_segments,
        cold_store: engine.cold_store_status(),
        io: io_status(engine),
        collections,
    })
}

/// The report as JSON.
pub(crate) fn to_json(r: &Report) -> Value {
    let tier = |t: &TierFigures, hits: &str| {
        json!({"segments": t.segments, "bytes": t.bytes, "budget_bytes": t.budget_bytes,
               hits: t.hits, "moves_in": t.moves_in})
    };
    json!({
        "tiers": {
            "hot": tier(&r.tiers[0], "hits"),
            "warm": tier(&r.tiers[1], "hits"),
            "cold": tier(&r.tiers[2], "misses"),
        },
        "cold_reads": {"streamed": r.cold_reads_streamed, "promoted": r.cold_reads_promoted,
                       "streamed_bytes": r.cold_streamed_bytes},
        "move_failures": r.move_failures,
        "search_cold_segments": {"searched": r.search_cold[0], "skipped": r.search_cold[1],
                                 "left_out": r.search_cold[2]},
        "cold_store": cold_store_json(&r.cold_store),
        "io": io_json(&r.io),
        "collections": r.collections.iter().map(|c| json!({
            "name": c.name, "hint": c.hint,
            "segments": {"hot": c.segments[0], "warm": c.segments[1], "cold": c.segments[2]},
        })).collect::<Vec<_>>(),
        "actor_types": r.actor_types.iter().map(|c| json!({
            "actor_type": c.name, "hint": c.hint,
            "segments": {"hot": c.segments[0], "warm": c.segments[1], "cold": c.segments[2]},
        })).collect::<Vec<_>>(),
    })
}

/// How the engine reads batches from local files.
#[derive(Clone, Debug)]
pub(crate) struct IoStatus {
    pub(crate) backend: &'static str,
    pub(crate) depth: u32,
    pub(crate) fallback_reason: Option<String>,
}

/// The engine's batched-read backend.
pub(crate) fn io_status(engine: &Engine) -> Option<IoStatus> {
    engine.io().map(|io| IoStatus {
        backend: io.backend().name(),
        depth: io.depth(),
        fallback_reason: io.fallback_reason().map(str::to_string),
    })
}

/// `{"backend", "depth", "fallback_reason"}` (`null` without a local directory).
pub(crate) fn io_json(s: &Option<IoStatus>) -> Value {
    match s {
        None => Value::Null,
        Some(s) => json!({"backend": s.backend, "depth": s.depth,
                          "fallback_reason": s.fallback_reason}),
    }
}

/// `{"configured", "reachable", "error"}` of the cold store.
pub(crate) fn cold_store_json(s: &Option<Result<(), String>>) -> Value {
    match s {
        None => json!({"configured": false}),
        Some(Ok(())) => json!({"configured": true, "reachable": true}),
        Some(Err(e)) => json!({"configured": true, "reachable": false, "error": e}),
    }
}

/// Parses a hint named in field `field`.
pub(crate) fn parse_hint(s: &str, field: &str) -> Result<TierHint, ApiError> {
    strata_engine::tiers::parse_hint(s).ok_or_else(|| {
        ApiError::invalid(format!(
            "{field}: {s:?} is not a tier hint (auto, pin_hot, warm, offload)"
        ))
    })
}

/// Parses a per-query `cold` control named in field `field`.
pub(crate) fn parse_cold(s: &str, field: &str) -> Result<ColdReads, ApiError> {
    match s {
        "include" => Ok(ColdReads::Include),
        "skip" => Ok(ColdReads::Skip),
        _ => Err(ApiError::invalid(format!(
            "{field}: {s:?} is not one of include, skip"
        ))),
    }
}

/// Sets the hint of collection `c` for the caller's tenant.
pub(crate) fn set_hint(
    st: &AppState,
    caller: &Caller,
    c: &str,
    hint: TierHint,
) -> Result<(), ApiError> {
    manager(caller)?;
    st.lookup(caller, c)?;
    st.engine
        .set_tier_hint(&caller.0.tenant, c, hint)
        .map_err(|e| match e.kind() {
            strata_engine::ErrorKind::NotFound => {
                ApiError::not_found(format!("Collection `{c}` doesn't exist!"))
            }
            _ => e.into(),
        })
}

/// Sets the hint of actor type `ty` for the caller's tenant (created if never written, so a
/// hint can be set before the first write).
pub(crate) fn set_actor_hint(
    st: &AppState,
    caller: &Caller,
    ty: &str,
    hint: TierHint,
) -> Result<(), ApiError> {
    manager(caller)?;
    let a = st.engine.actors(&caller.0.tenant, ty)?;
    a.set_tier_hint(hint)?;
    Ok(())
}
