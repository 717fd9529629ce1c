//! Collection aliases (Qdrant's routes): `POST /collections/aliases` applies a list of
//! actions atomically (one manifest publish); `GET /aliases` and
//! `GET /collections/{c}/aliases` list them.

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};
use strata_engine::AliasAction;

use super::handlers::{ApiResult, blocking, ok};
use super::parse::{self, Obj};
use super::{AppState, Caller, ReqDeadline};
use crate::error::ApiError;

fn name(o: &Obj, key: &str, at: &str) -> Result<String, ApiError> {
    match parse::get(o, key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(ApiError::invalid(format!(
            "{at}{key}: expected a name, got {v}"
        ))),
        None => Err(ApiError::invalid(format!("{at}{key}: missing"))),
    }
}

fn parse_action(v: &Value, i: usize) -> Result<AliasAction, ApiError> {
    let at = format!("actions[{i}]");
    let (kind, body) = match v.as_object() {
        Some(o) if o.len() == 1 => o.iter().next().expect("one entry"),
        _ => {
            return Err(ApiError::invalid(format!(
                "{at}: expected one of create_alias, delete_alias, rename_alias"
            )));
        }
    };
    let here = format!("{at}.{kind}.");
    let b = body
        .as_object()
        .ok_or_else(|| ApiError::invalid(format!("{here}: expected an object")))?;
    Ok(match kind.as_str() {
        "create_alias" => {
            parse::check_fields(b, &here, &["collection_name", "alias_name"], &[])?;
            AliasAction::Create {
                alias: name(b, "alias_name", &here)?,
                collection: name(b, "collection_name", &here)?,
            }
        }
        "delete_alias" => {
            parse::check_fields(b, &here, &["alias_name"], &[])?;
            AliasAction::Delete {
                alias: name(b, "alias_name", &here)?,
            }
        }
        "rename_alias" => {
            parse::check_fields(b, &here, &["old_alias_name", "new_alias_name"], &[])?;
            AliasAction::Rename {
                from: name(b, "old_alias_name", &here)?,
                to: name(b, "new_alias_name", &here)?,
            }
        }
        other => {
            return Err(ApiError::invalid(format!(
                "{at}.{other}: unknown action (create_alias, delete_alias, rename_alias)"
            )));
        }
    })
}

/// `POST /collections/aliases`: `{"actions": [...]}`, all or nothing; needs the manage right.
pub(crate) async fn update_aliases(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    _q: Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult {
    let started = Instant::now();
    st.manager(&caller)?;
    let b = parse::body(&body)?;
    parse::check_fields(&b, "", &["actions"], &[])?;
    let actions = match parse::get(&b, "actions") {
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| parse_action(v, i))
            .collect::<Result<Vec<_>, _>>()?,
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "actions: expected a list, got {v}"
            )));
        }
        None => return Err(ApiError::invalid("actions: missing")),
    };
    let tenant = caller.0.tenant.clone();
    let deadline = dl.get();
    blocking(move || {
        deadline.check("update aliases")?;
        st.engine
            .update_aliases(&tenant, &actions)
            .map_err(ApiError::from)
    })
    .await?;
    ok(started, json!(true))
}

fn listed(pairs: impl Iterator<Item = (String, String)>) -> Value {
    let v: Vec<Value> = pairs
        .map(|(a, c)| json!({"alias_name": a, "collection_name": c}))
        .collect();
    json!({ "aliases": v })
}

/// `GET /aliases`: the aliases of collections the token may read.
pub(crate) async fn list_aliases(State(st): State<AppState>, caller: Caller) -> ApiResult {
    let started = Instant::now();
    let all = st.engine.aliases(&caller.0.tenant);
    ok(
        started,
        listed(all.into_iter().filter(|(_, c)| caller.0.can_read(c))),
    )
}

/// `GET /collections/{c}/aliases`: the aliases of one collection (404 if it does not exist).
pub(crate) async fn collection_aliases(
    State(st): State<AppState>,
    caller: Caller,
    dl: ReqDeadline,
    Path(c): Path<String>,
) -> ApiResult {
    let started = Instant::now();
    let h = st.readable(&caller, &c, &dl)?;
    let all = st.engine.aliases(&caller.0.tenant);
    ok(
        started,
        listed(all.into_iter().filter(|(_, target)| target == h.name())),
    )
}
