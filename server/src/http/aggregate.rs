//! Reads that aggregate over points: facet counts and grouped search (query or legacy search
//! with `group_by`, with an optional lookup of each group's id in another collection).

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Value, json};
use strata_engine::{CollectionHandle, FacetRequest, GroupRequest, PointId};

use super::handlers::{
    ApiResult, Search, blocking, cold_counts, ok, parse_query, parse_search, record_json,
    resolve_by_id, scored_json, searched,
};
use super::parse::{self, Obj, PayloadSelector, VectorSelector};
use super::{AppState, Caller, ReqDeadline};
use crate::error::ApiError;

/// `POST /collections/{c}/facet`: `{key, filter?, limit? = 10, exact?}` →
/// `{"hits": [{"value", "count"}]}`, count descending. Counts are always exact.
pub(crate) async fn facet(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    Path(c): Path<String>,
    body: Bytes,
) -> ApiResult {
    let started = Instant::now();
    let h = st.readable(&caller, &c, &dl)?;
    let b = parse::body(&body)?;
    parse::check_fields(&b, "", &["key", "filter", "limit", "exact"], &["shard_key"])?;
    let key = match parse::get(&b, "key") {
        Some(Value::String(k)) if !k.is_empty() => k.clone(),
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "key: expected a payload field name, got {v}"
            )));
        }
        None => return Err(ApiError::invalid("key: missing")),
    };
    let limit = parse::usize_field(&b, "limit", "")?.unwrap_or(10);
    if limit == 0 || limit > st.max_limit {
        return Err(ApiError::invalid(format!(
            "limit: must be in 1..={}, got {limit}",
            st.max_limit
        )));
    }
    parse::bool_field(&b, "exact", "")?;
    let req = FacetRequest {
        key,
        filter: parse::filter_field(&b, "filter", "")?,
        limit,
    };
    let hits = blocking(move || h.facet(&req).map_err(ApiError::from)).await?;
    ok(
        started,
        json!({"hits": hits.into_iter().map(|h| json!({"value": h.value, "count": h.count})).collect::<Vec<_>>()}),
    )
}

/// Where a grouped search looks up each group's id as a point id.
struct Lookup {
    handle: CollectionHandle,
    sel: PayloadSelector,
    vsel: VectorSelector,
}

/// A parsed grouped search.
struct Grouped {
    search: Search,
    group: GroupRequest,
    lookup: Option<(String, Obj)>,
}

/// Splits the group fields off `b` and parses the rest as a query (or a legacy search).
fn parse_grouped(b: &Obj, legacy: bool, max: usize) -> Result<Grouped, ApiError> {
    let mut rest = b.clone();
    let group_by = match rest.remove("group_by").filter(|v| !v.is_null()) {
        Some(Value::String(g)) if !g.is_empty() => g,
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "group_by: expected a payload field name, got {v}"
            )));
        }
        None => return Err(ApiError::invalid("group_by: missing")),
    };
    let mut fields = Obj::new();
    for k in ["group_size", "with_lookup"] {
        if let Some(v) = rest.remove(k) {
            fields.insert(k.into(), v);
        }
    }
    let group_size = parse::usize_field(&fields, "group_size", "")?.unwrap_or(3);
    let lookup = match parse::get(&fields, "with_lookup") {
        None => None,
        Some(Value::String(name)) => Some((name.clone(), Obj::new())),
        Some(Value::Object(o)) => {
            parse::check_fields(
                o,
                "with_lookup.",
                &["collection", "with_payload", "with_vectors", "with_vector"],
                &[],
            )?;
            match parse::get(o, "collection") {
                Some(Value::String(name)) => Some((name.clone(), o.clone())),
                _ => {
                    return Err(ApiError::invalid(
                        "with_lookup.collection: expected a collection name",
                    ));
                }
            }
        }
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "with_lookup: expected a collection name or an object, got {v}"
            )));
        }
    };
    let search = match legacy {
        true => parse_search(&rest, "", max)?,
        false => parse_query(&rest, "", max)?,
    };
    if search.by_id_order {
        // Groups are of the nearest points: without a query there is nothing to be near.
        return Err(ApiError::invalid(
            "query: missing (groups are formed from a query's nearest points)",
        ));
    }
    if !search.prefetch.is_empty() {
        return Err(ApiError::unsupported("prefetch with group_by"));
    }
    if search.recommend.is_some() {
        return Err(ApiError::unsupported("query.recommend with group_by"));
    }
    if search.mmr.is_some() {
        return Err(ApiError::unsupported("query.nearest.mmr with group_by"));
    }
    if search.req.offset != 0 {
        return Err(ApiError::invalid(
            "offset: not allowed with group_by (groups have no offset)",
        ));
    }
    if group_size.saturating_mul(search.req.limit) > max {
        return Err(ApiError::invalid(format!(
            "limit × group_size = {} exceeds the maximum of {max} (STRATA_MAX_LIMIT)",
            group_size.saturating_mul(search.req.limit)
        )));
    }
    let group = GroupRequest {
        group_by,
        group_size,
        limit: search.req.limit,
    };
    Ok(Grouped {
        search,
        group,
        lookup,
    })
}

async fn grouped(
    st: AppState,
    caller: Caller,
    dl: ReqDeadline,
    c: String,
    body: Bytes,
    legacy: bool,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let h = st.readable(&caller, &c, &dl)?;
    let Grouped {
        mut search,
        group,
        lookup,
    } = parse_grouped(&parse::body(&body)?, legacy, st.max_limit)?;
    let lookup = match lookup {
        None => None,
        Some((name, o)) => Some(Lookup {
            handle: st.readable(&caller, &name, &dl)?,
            sel: parse::with_payload(&o, true, "with_lookup.")?,
            vsel: parse::with_vector(&o, false, "with_lookup.")?,
        }),
    };
    let (groups, cold) = blocking(move || {
        resolve_by_id(&h, &mut search)?;
        let (groups, report) = h.search_groups(&search.req, &group)?;
        let found = match &lookup {
            None => Vec::new(),
            Some(l) => {
                let ids: Vec<PointId> = groups
                    .iter()
                    .filter_map(|g| PointId::from_json(&g.id).ok())
                    .collect();
                l.handle.get(&ids, l.sel.wants(), l.vsel.wants())?
            }
        };
        let out: Vec<Value> = groups
            .into_iter()
            .map(|g| {
                let mut o = serde_json::Map::new();
                let id = PointId::from_json(&g.id).ok();
                o.insert(
                    "hits".into(),
                    Value::Array(
                        g.hits
                            .into_iter()
                            .map(|p| scored_json(p, &search.sel, &search.vsel))
                            .collect(),
                    ),
                );
                o.insert("id".into(), g.id);
                if let (Some(l), Some(id)) = (&lookup, id)
                    && let Some(r) = found.iter().find(|r| r.id == id)
                {
                    o.insert("lookup".into(), record_json(r.clone(), &l.sel, &l.vsel));
                }
                Value::Object(o)
            })
            .collect();
        Ok((out, cold_counts(&report)))
    })
    .await?;
    searched(started, json!({"groups": groups}), cold)
}

/// `POST /collections/{c}/points/query/groups`.
pub(crate) async fn query_groups(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    Path(c): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    grouped(st, caller, dl, c, body, false).await
}

/// `POST /collections/{c}/points/search/groups` (the legacy form: `vector` instead of `query`).
pub(crate) async fn search_groups(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    Path(c): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    grouped(st, caller, dl, c, body, true).await
}
