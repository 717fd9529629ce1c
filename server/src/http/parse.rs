//! Parsing Qdrant request bodies from JSON, with errors that name the field.

use serde_json::{Map, Value};
use strata_engine::{Filter, PointId};

use crate::error::ApiError;

pub(crate) type Obj = Map<String, Value>;

/// Parses a body; an empty body is `{}`.
pub(crate) fn body(bytes: &[u8]) -> Result<Obj, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Obj::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(ApiError::invalid(format!(
            "body: expected a JSON object, got {}",
            kind(&other)
        ))),
        Err(e) => Err(ApiError::invalid(format!("body: invalid JSON: {e}"))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Refuses fields outside `known`; `unsupported` ones get a 501 naming the Qdrant feature.
/// Null values count as absent (clients send them for unset options).
pub(crate) fn check_fields(
    o: &Obj,
    at: &str,
    known: &[&str],
    unsupported: &[&str],
) -> Result<(), ApiError> {
    // Malformed input first: an unknown field is a 400 even beside an unsupported one (a 501
    // is only for a request that is otherwise well formed).
    let mut missing_feature = None;
    for (k, v) in o {
        if v.is_null() || known.contains(&k.as_str()) {
            continue;
        }
        if unsupported.contains(&k.as_str()) {
            missing_feature.get_or_insert(k);
            continue;
        }
        return Err(ApiError::invalid(format!("{at}{k}: unknown field")));
    }
    match missing_feature {
        Some(k) => Err(ApiError::unsupported(&format!("{at}{k}"))),
        None => Ok(()),
    }
}

pub(crate) fn get<'a>(o: &'a Obj, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

pub(crate) fn usize_field(o: &Obj, key: &str, at: &str) -> Result<Option<usize>, ApiError> {
    match get(o, key) {
        None => Ok(None),
        Some(v) => v.as_u64().map(|n| Some(n as usize)).ok_or_else(|| {
            ApiError::invalid(format!(
                "{at}{key}: expected a non-negative integer, got {v}"
            ))
        }),
    }
}

pub(crate) fn bool_field(o: &Obj, key: &str, at: &str) -> Result<Option<bool>, ApiError> {
    match get(o, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(ApiError::invalid(format!(
            "{at}{key}: expected true or false, got {v}"
        ))),
    }
}

pub(crate) fn f32_field(o: &Obj, key: &str, at: &str) -> Result<Option<f32>, ApiError> {
    match get(o, key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(|x| Some(x as f32))
            .ok_or_else(|| ApiError::invalid(format!("{at}{key}: expected a number, got {v}"))),
    }
}

pub(crate) fn obj_field<'a>(o: &'a Obj, key: &str, at: &str) -> Result<Option<&'a Obj>, ApiError> {
    match get(o, key) {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(v) => Err(ApiError::invalid(format!(
            "{at}{key}: expected an object, got {}",
            kind(v)
        ))),
    }
}

pub(crate) fn filter_field(o: &Obj, key: &str, at: &str) -> Result<Option<Filter>, ApiError> {
    match get(o, key) {
        None => Ok(None),
        Some(v) => Filter::from_json(v, &format!("{at}{key}"))
            .map(Some)
            .map_err(ApiError::from),
    }
}

pub(crate) fn vector(v: &Value, at: &str) -> Result<Vec<f32>, ApiError> {
    match v {
        Value::Array(xs) => xs
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_f64().map(|f| f as f32).ok_or_else(|| {
                    ApiError::invalid(format!("{at}[{i}]: expected a number, got {x}"))
                })
            })
            .collect(),
        other => Err(ApiError::invalid(format!(
            "{at}: expected a list of numbers, got {}",
            kind(other)
        ))),
    }
}

pub(crate) fn ids(v: &Value, at: &str) -> Result<Vec<PointId>, ApiError> {
    let arr = v
        .as_array()
        .ok_or_else(|| ApiError::invalid(format!("{at}: expected a list of point ids")))?;
    arr.iter()
        .enumerate()
        .map(|(i, x)| {
            PointId::from_json(x)
                .map_err(|e| ApiError::invalid(format!("{at}[{i}]: {}", e.message())))
        })
        .collect()
}

/// `with_payload`: true/false, a list of keys to include, or {"include"|"exclude": [...]}.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PayloadSelector {
    None,
    All,
    Include(Vec<String>),
    Exclude(Vec<String>),
}

impl PayloadSelector {
    pub(crate) fn wants(&self) -> bool {
        *self != PayloadSelector::None
    }
    pub(crate) fn apply(&self, p: strata_engine::Payload) -> strata_engine::Payload {
        match self {
            PayloadSelector::Include(keys) => {
                p.into_iter().filter(|(k, _)| keys.contains(k)).collect()
            }
            PayloadSelector::Exclude(keys) => {
                p.into_iter().filter(|(k, _)| !keys.contains(k)).collect()
            }
            _ => p,
        }
    }
}

fn strings(v: &Value, at: &str) -> Result<Vec<String>, ApiError> {
    v.as_array()
        .and_then(|a| {
            a.iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| ApiError::invalid(format!("{at}: expected a list of strings")))
}

pub(crate) fn with_payload(o: &Obj, default: bool, at: &str) -> Result<PayloadSelector, ApiError> {
    let at = format!("{at}with_payload");
    Ok(match get(o, "with_payload") {
        None => {
            if default {
                PayloadSelector::All
            } else {
                PayloadSelector::None
            }
        }
        Some(Value::Bool(true)) => PayloadSelector::All,
        Some(Value::Bool(false)) => PayloadSelector::None,
        Some(v @ Value::Array(_)) => PayloadSelector::Include(strings(v, &at)?),
        Some(Value::Object(m)) => {
            check_fields(m, &format!("{at}."), &["include", "exclude"], &[])?;
            match (get(m, "include"), get(m, "exclude")) {
                (Some(i), None) => PayloadSelector::Include(strings(i, &format!("{at}.include"))?),
                (None, Some(e)) => PayloadSelector::Exclude(strings(e, &format!("{at}.exclude"))?),
                _ => {
                    return Err(ApiError::invalid(format!(
                        "{at}: expected include or exclude"
                    )));
                }
            }
        }
        Some(v) => {
            return Err(ApiError::invalid(format!(
                "{at}: expected a boolean, a list of keys or include/exclude, got {v}"
            )));
        }
    })
}

/// Which vectors a read returns (`with_vector`): none, all, or those named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum VectorSelector {
    None,
    All,
    Names(Vec<String>),
}

impl VectorSelector {
    /// True when any vector is returned.
    pub(crate) fn wants(&self) -> bool {
        !matches!(self, VectorSelector::None)
    }
    /// True when the vector named `name` is returned.
    pub(crate) fn keeps(&self, name: &str) -> bool {
        match self {
            VectorSelector::None => false,
            VectorSelector::All => true,
            VectorSelector::Names(n) => n.iter().any(|x| x == name),
        }
    }
}

/// `with_vector` / `with_vectors`: a boolean or a list of vector names.
pub(crate) fn with_vector(o: &Obj, default: bool, at: &str) -> Result<VectorSelector, ApiError> {
    if get(o, "with_vector").is_some() && get(o, "with_vectors").is_some() {
        return Err(ApiError::invalid(format!(
            "{at}with_vector: given twice (with_vector and with_vectors): give one"
        )));
    }
    match get(o, "with_vector").or_else(|| get(o, "with_vectors")) {
        None if default => Ok(VectorSelector::All),
        None | Some(Value::Bool(false)) => Ok(VectorSelector::None),
        Some(Value::Bool(true)) => Ok(VectorSelector::All),
        Some(Value::Array(a)) if a.is_empty() => Ok(VectorSelector::None),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, n)| {
                n.as_str().map(str::to_string).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "{at}with_vector[{i}]: expected a vector name, got {n}"
                    ))
                })
            })
            .collect::<Result<_, _>>()
            .map(VectorSelector::Names),
        Some(v) => Err(ApiError::invalid(format!(
            "{at}with_vector: expected a boolean or a list of vector names, got {v}"
        ))),
    }
}
