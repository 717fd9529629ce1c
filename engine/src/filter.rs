//! Payload filters in Qdrant's JSON syntax, parsed once and evaluated per point.
//!
//! Supported: `must` / `should` / `must_not` (a condition or a list), nested filters, and the
//! conditions `{"key", "match": {"value" | "any" | "except"}}`, `{"key", "range": {"gt",
//! "gte", "lt", "lte"}}`, `{"has_id": [...]}`, `{"is_empty": {"key"}}` and `{"is_null":
//! {"key"}}`. Anything else is refused with an error that names the feature and where it was
//! found, never silently ignored.
//!
//! Keys are dotted paths (`a.b.c`; `a[].b` is accepted and means the same). A path that meets
//! an array looks into each element, and a condition holds if any value found satisfies it —
//! Qdrant's semantics.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::types::{Payload, PointId};

/// A parsed filter.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Filter {
    must: Vec<Condition>,
    should: Vec<Condition>,
    must_not: Vec<Condition>,
}

#[derive(Clone, Debug, PartialEq)]
enum Condition {
    Match {
        key: Vec<String>,
        values: Vec<Value>,
    },
    Except {
        key: Vec<String>,
        values: Vec<Value>,
    },
    Range {
        key: Vec<String>,
        range: Range,
    },
    /// Sorted and deduplicated: checked by binary search.
    HasId(Vec<PointId>),
    IsEmpty(Vec<String>),
    IsNull(Vec<String>),
    Nested(Box<Filter>),
}

#[derive(Clone, Copy, Debug, PartialEq, Default)]
struct Range {
    gt: Option<f64>,
    gte: Option<f64>,
    lt: Option<f64>,
    lte: Option<f64>,
}

impl Range {
    fn contains(&self, x: f64) -> bool {
        self.gt.is_none_or(|b| x > b)
            && self.gte.is_none_or(|b| x >= b)
            && self.lt.is_none_or(|b| x < b)
            && self.lte.is_none_or(|b| x <= b)
    }
}

impl Filter {
    /// `filter` (or everything) without the points `ids`: how a query by example leaves out
    /// its own examples.
    pub fn excluding(filter: Option<Filter>, mut ids: Vec<PointId>) -> Filter {
        ids.sort_unstable();
        ids.dedup();
        let mut f = filter.unwrap_or_default();
        f.must_not.push(Condition::HasId(ids));
        f
    }

    /// Parses a filter from JSON; `at` is the location used in error messages (e.g. `"filter"`).
    pub fn from_json(v: &Value, at: &str) -> Result<Filter> {
        let obj = v
            .as_object()
            .ok_or_else(|| Error::invalid(format!("{at}: expected an object")))?;
        let mut f = Filter::default();
        for (k, val) in obj {
            let list = match k.as_str() {
                "must" => &mut f.must,
                "should" => &mut f.should,
                "must_not" => &mut f.must_not,
                "min_should" => {
                    return Err(Error::invalid(format!(
                        "{at}.min_should: not supported by Strata"
                    )));
                }
                other => {
                    return Err(Error::invalid(format!(
                        "{at}: unknown field {other:?} (expected must, should, must_not)"
                    )));
                }
            };
            let here = format!("{at}.{k}");
            match val {
                Value::Null => {}
                Value::Array(items) => {
                    for (i, c) in items.iter().enumerate() {
                        list.push(Condition::parse(c, &format!("{here}[{i}]"))?);
                    }
                }
                single => list.push(Condition::parse(single, &here)?),
            }
        }
        Ok(f)
    }

    /// Parses a filter from a JSON string.
    pub fn parse_str(s: &str) -> Result<Filter> {
        let v: Value = serde_json::from_str(s)
            .map_err(|e| Error::invalid(format!("filter: not valid JSON: {e}")))?;
        Filter::from_json(&v, "filter")
    }

    /// True when the point satisfies the filter.
    pub fn matches(&self, id: PointId, payload: &Payload) -> bool {
        self.matches_fields(id, payload)
    }

    /// [`Filter::matches`] over any storage of the payload's top-level fields.
    pub(crate) fn matches_fields(&self, id: PointId, payload: &dyn Fields) -> bool {
        self.must.iter().all(|c| c.matches(id, payload))
            && !self.must_not.iter().any(|c| c.matches(id, payload))
            && (self.should.is_empty() || self.should.iter().any(|c| c.matches(id, payload)))
    }

    /// The top-level payload keys the filter reads (the first segment of each key path).
    pub(crate) fn top_level_keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_keys(&mut out);
        out.sort();
        out.dedup();
        out
    }

    fn collect_keys(&self, out: &mut Vec<String>) {
        for c in self.must.iter().chain(&self.should).chain(&self.must_not) {
            match c {
                Condition::Match { key, .. }
                | Condition::Except { key, .. }
                | Condition::Range { key, .. }
                | Condition::IsEmpty(key)
                | Condition::IsNull(key) => out.extend(key.first().cloned()),
                Condition::Nested(f) => f.collect_keys(out),
                Condition::HasId(_) => {}
            }
        }
    }

    /// How many conditions the filter holds, nested ones and `has_id` ids included: a bound on
    /// the work of evaluating it once.
    pub fn size(&self) -> usize {
        self.must
            .iter()
            .chain(&self.should)
            .chain(&self.must_not)
            .map(|c| match c {
                Condition::Nested(f) => 1 + f.size(),
                Condition::HasId(ids) => 1 + ids.len().max(1).ilog2() as usize,
                Condition::Match { values, .. } | Condition::Except { values, .. } => {
                    values.len().max(1)
                }
                _ => 1,
            })
            .sum()
    }

    /// True when the filter only looks at ids (no payload needed to evaluate it).
    pub fn needs_payload(&self) -> bool {
        self.must
            .iter()
            .chain(&self.should)
            .chain(&self.must_not)
            .any(Condition::needs_payload)
    }
}

/// The top-level fields of one point's payload, however they are stored (a parsed map, or the
/// per-key columns a segment caches).
pub(crate) trait Fields {
    /// The value of top-level key `key`, if present.
    fn field(&self, key: &str) -> Option<&Value>;
}

impl Fields for Payload {
    fn field(&self, key: &str) -> Option<&Value> {
        self.get(key)
    }
}

fn parse_key(v: Option<&Value>, at: &str) -> Result<Vec<String>> {
    let s = v
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid(format!("{at}.key: expected a string")))?;
    if s.is_empty() {
        return Err(Error::invalid(format!("{at}.key: must not be empty")));
    }
    Ok(s.split('.')
        .map(|p| p.trim_end_matches("[]").to_string())
        .collect())
}

fn parse_match_value(v: &Value, at: &str) -> Result<Value> {
    match v {
        Value::String(_) | Value::Bool(_) => Ok(v.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(v.clone()),
        _ => Err(Error::invalid(format!(
            "{at}: expected a string, an integer or a boolean, got {v}"
        ))),
    }
}

fn parse_bound(obj: &Map<String, Value>, name: &str, at: &str) -> Result<Option<f64>> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(other) => Err(Error::invalid(format!(
            "{at}.range.{name}: expected a number, got {other}"
        ))),
    }
}

impl Condition {
    fn parse(v: &Value, at: &str) -> Result<Condition> {
        let obj = v
            .as_object()
            .ok_or_else(|| Error::invalid(format!("{at}: expected a condition object")))?;
        if obj.contains_key("must") || obj.contains_key("should") || obj.contains_key("must_not") {
            return Ok(Condition::Nested(Box::new(Filter::from_json(v, at)?)));
        }
        if let Some(ids) = obj.get("has_id") {
            let arr = ids
                .as_array()
                .ok_or_else(|| Error::invalid(format!("{at}.has_id: expected a list of ids")))?;
            let mut ids = arr
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    PointId::from_json(x)
                        .map_err(|e| Error::invalid(format!("{at}.has_id[{i}]: {}", e.message())))
                })
                .collect::<Result<Vec<_>>>()?;
            ids.sort_unstable();
            ids.dedup();
            return Ok(Condition::HasId(ids));
        }
        for (name, ctor) in [
            (
                "is_empty",
                Condition::IsEmpty as fn(Vec<String>) -> Condition,
            ),
            ("is_null", Condition::IsNull),
        ] {
            if let Some(inner) = obj.get(name) {
                let here = format!("{at}.{name}");
                let key = parse_key(inner.get("key"), &here)?;
                return Ok(ctor(key));
            }
        }
        for unsupported in [
            "geo_bounding_box",
            "geo_radius",
            "geo_polygon",
            "values_count",
            "nested",
            "datetime_range",
        ] {
            if obj.contains_key(unsupported) {
                return Err(Error::invalid(format!(
                    "{at}.{unsupported}: condition not supported by Strata"
                )));
            }
        }
        let key = parse_key(obj.get("key"), at)?;
        if let Some(m) = obj.get("match") {
            let m = m
                .as_object()
                .ok_or_else(|| Error::invalid(format!("{at}.match: expected an object")))?;
            if let Some(v) = m.get("value") {
                let v = parse_match_value(v, &format!("{at}.match.value"))?;
                return Ok(Condition::Match {
                    key,
                    values: vec![v],
                });
            }
            for (name, except) in [("any", false), ("except", true)] {
                if let Some(list) = m.get(name) {
                    let here = format!("{at}.match.{name}");
                    let arr = list
                        .as_array()
                        .ok_or_else(|| Error::invalid(format!("{here}: expected a list")))?;
                    let values = arr
                        .iter()
                        .enumerate()
                        .map(|(i, x)| parse_match_value(x, &format!("{here}[{i}]")))
                        .collect::<Result<Vec<_>>>()?;
                    return Ok(if except {
                        Condition::Except { key, values }
                    } else {
                        Condition::Match { key, values }
                    });
                }
            }
            let what = m.keys().next().map_or("(empty)", String::as_str);
            return Err(Error::invalid(format!(
                "{at}.match.{what}: not supported by Strata (use value, any or except)"
            )));
        }
        if let Some(r) = obj.get("range") {
            let r = r
                .as_object()
                .ok_or_else(|| Error::invalid(format!("{at}.range: expected an object")))?;
            if let Some(k) = r
                .keys()
                .find(|k| !["gt", "gte", "lt", "lte"].contains(&k.as_str()))
            {
                return Err(Error::invalid(format!(
                    "{at}.range.{k}: unknown bound (expected gt, gte, lt, lte)"
                )));
            }
            let range = Range {
                gt: parse_bound(r, "gt", at)?,
                gte: parse_bound(r, "gte", at)?,
                lt: parse_bound(r, "lt", at)?,
                lte: parse_bound(r, "lte", at)?,
            };
            return Ok(Condition::Range { key, range });
        }
        Err(Error::invalid(format!(
            "{at}: a field condition needs match or range"
        )))
    }

    fn needs_payload(&self) -> bool {
        match self {
            Condition::HasId(_) => false,
            Condition::Nested(f) => f.needs_payload(),
            _ => true,
        }
    }

    fn matches(&self, id: PointId, payload: &dyn Fields) -> bool {
        match self {
            Condition::HasId(ids) => ids.binary_search(&id).is_ok(),
            Condition::Nested(f) => f.matches_fields(id, payload),
            Condition::Match { key, values } => {
                let mut found = false;
                visit(payload, key, &mut |v| {
                    found |= values.iter().any(|want| value_eq(v, want));
                });
                found
            }
            Condition::Except { key, values } => {
                // Qdrant: true when the key holds some value not in the list (a missing key
                // satisfies except).
                let mut any_value = false;
                let mut outside = false;
                visit(payload, key, &mut |v| {
                    any_value = true;
                    outside |= !values.iter().any(|want| value_eq(v, want));
                });
                !any_value || outside
            }
            Condition::Range { key, range } => {
                let mut found = false;
                visit(payload, key, &mut |v| {
                    found |= v.as_f64().is_some_and(|x| range.contains(x));
                });
                found
            }
            Condition::IsEmpty(key) => {
                let mut any = false;
                visit(payload, key, &mut |v| any |= !v.is_null());
                !any
            }
            Condition::IsNull(key) => {
                let mut null = false;
                visit_raw(payload, key, &mut |v| null |= v.is_null());
                null
            }
        }
    }
}

fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(p), Some(q)) => p == q,
            _ => x.as_u64().is_some() && x.as_u64() == y.as_u64(),
        },
        _ => a == b,
    }
}

/// Calls `f` on every value at `path`, flattening arrays (the leaf array's elements are
/// visited one by one).
fn visit(payload: &dyn Fields, path: &[String], f: &mut dyn FnMut(&Value)) {
    visit_raw(payload, path, &mut |v| match v {
        Value::Array(items) => items.iter().for_each(&mut *f),
        other => f(other),
    });
}

/// Like [`visit`] but without flattening the leaf value.
fn visit_raw(payload: &dyn Fields, path: &[String], f: &mut dyn FnMut(&Value)) {
    fn walk(v: &Value, path: &[String], f: &mut dyn FnMut(&Value)) {
        match path.split_first() {
            None => f(v),
            Some((head, rest)) => match v {
                Value::Object(m) => {
                    if let Some(x) = m.get(head) {
                        walk(x, rest, f);
                    }
                }
                Value::Array(items) => items.iter().for_each(|x| walk(x, path, f)),
                _ => {}
            },
        }
    }
    if let Some((head, rest)) = path.split_first()
        && let Some(v) = payload.field(head)
    {
        walk(v, rest, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> Payload {
        v.as_object().expect("object").clone()
    }

    fn f(v: Value) -> Filter {
        Filter::from_json(&v, "filter").expect("parses")
    }

    #[test]
    fn match_any_range_and_combinators() {
        let doc = p(json!({"city": "Paris", "n": 7, "tags": ["a", "b"], "o": {"x": [{"y": 3}]}}));
        let id = PointId::Num(1);
        assert!(
            f(json!({"must": [{"key": "city", "match": {"value": "Paris"}}]})).matches(id, &doc)
        );
        assert!(!f(json!({"must": {"key": "city", "match": {"value": "Rome"}}})).matches(id, &doc));
        assert!(
            f(json!({"must": [{"key": "tags", "match": {"any": ["z", "b"]}}]})).matches(id, &doc)
        );
        assert!(f(json!({"must": [{"key": "n", "range": {"gte": 7, "lt": 8}}]})).matches(id, &doc));
        assert!(!f(json!({"must": [{"key": "n", "range": {"gt": 7}}]})).matches(id, &doc));
        assert!(f(json!({"must": [{"key": "o.x[].y", "match": {"value": 3}}]})).matches(id, &doc));
        assert!(
            f(json!({"must_not": [{"key": "city", "match": {"value": "Rome"}}]})).matches(id, &doc)
        );
        assert!(
            f(json!({"should": [{"key": "n", "match": {"value": 1}}, {"has_id": [1]}]}))
                .matches(id, &doc)
        );
        assert!(!f(json!({"should": [{"key": "n", "match": {"value": 1}}]})).matches(id, &doc));
        assert!(
            f(json!({"must": [{"key": "tags", "match": {"except": ["a"]}}]})).matches(id, &doc)
        );
        assert!(f(json!({"must": [{"is_empty": {"key": "nope"}}]})).matches(id, &doc));
        assert!(!f(json!({"must": [{"is_null": {"key": "n"}}]})).matches(id, &doc));
        assert!(
            f(json!({"must": [{"must_not": [{"key": "n", "match": {"value": 8}}]}]}))
                .matches(id, &doc)
        );
        assert!(!f(json!({"must": [{"has_id": [2]}]})).needs_payload());
    }

    #[test]
    fn errors_name_the_field() {
        let e = Filter::from_json(&json!({"must": [{"key": "a", "match": {"value": 1}}, {"key": "b", "range": {"gt": "x"}}]}), "filter")
            .expect_err("bad bound");
        assert!(e.message().contains("filter.must[1].range.gt"), "{e}");
        let e = Filter::from_json(&json!({"must": [{"key": "g", "geo_radius": {}}]}), "filter")
            .expect_err("geo");
        assert!(e.message().contains("geo_radius"), "{e}");
        let e = Filter::from_json(&json!({"muts": []}), "filter").expect_err("typo");
        assert!(e.message().contains("muts"), "{e}");
        let e = Filter::from_json(
            &json!({"must": [{"key": "a", "match": {"text": "x"}}]}),
            "filter",
        )
        .expect_err("text");
        assert!(e.message().contains("match.text"), "{e}");
    }
}
