//! Payload filters in Qdrant's JSON syntax, parsed once and evaluated per point.
//!
//! Supported: `must` / `should` / `must_not` (a condition or a list), `min_should`
//! (`{"conditions": [...], "min_count": n}`: at least n of them hold), nested filters, and the
//! conditions `{"key", "match": {"value" | "any" | "except"}}`, `{"key", "range": {"gt",
//! "gte", "lt", "lte"}}` (numbers, or datetime strings for a datetime range), `{"has_id": [...]}`, `{"is_empty": {"key"}}` and `{"is_null":
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
    /// `min_should`: at least `min_count` of these hold (none given: no such clause).
    min_should: Vec<Condition>,
    min_count: usize,
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

/// A range condition's bounds. Numbers compare as `f64`; a datetime range (bounds written as
/// datetime strings) compares payload strings parsed as datetimes, in microseconds since the
/// Unix epoch (UTC) — exact in an `f64` for any year Qdrant accepts.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub(crate) struct Range {
    pub(crate) gt: Option<f64>,
    pub(crate) gte: Option<f64>,
    pub(crate) lt: Option<f64>,
    pub(crate) lte: Option<f64>,
    pub(crate) datetime: bool,
}

impl Range {
    pub(crate) fn contains(&self, x: f64) -> bool {
        self.gt.is_none_or(|b| x > b)
            && self.gte.is_none_or(|b| x >= b)
            && self.lt.is_none_or(|b| x < b)
            && self.lte.is_none_or(|b| x <= b)
    }

    /// True when payload value `v` falls in the range (a number, or for a datetime range a
    /// string that parses as one).
    pub(crate) fn contains_value(&self, v: &Value) -> bool {
        match self.datetime {
            false => v.as_f64().is_some_and(|x| self.contains(x)),
            true => v
                .as_str()
                .and_then(parse_datetime)
                .is_some_and(|t| self.contains(t as f64)),
        }
    }
}

/// A datetime as Qdrant accepts it — RFC 3339 (`2023-02-08T10:49:00Z`, `…+01:00`, a space for
/// the `T`), without a zone (read as UTC: `2023-02-08T10:49:00`, `2023-02-08T10:49`), or a
/// date alone (midnight UTC) — in microseconds since the Unix epoch.
pub(crate) fn parse_datetime(s: &str) -> Option<i64> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    let t = s.replacen(' ', "T", 1);
    if let Ok(t) = DateTime::parse_from_rfc3339(&t) {
        return Some(t.timestamp_micros());
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(&t, f) {
            return Some(n.and_utc().timestamp_micros());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|n| n.and_utc().timestamp_micros())
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

    /// `filter` (or everything) restricted to the points `ids`: how prefetched candidates are
    /// re-scored.
    pub fn only(filter: Option<Filter>, mut ids: Vec<PointId>) -> Filter {
        ids.sort_unstable();
        ids.dedup();
        let mut f = filter.unwrap_or_default();
        f.must.push(Condition::HasId(ids));
        f
    }

    /// Both filters (`None`: no condition).
    pub fn both(a: Option<Filter>, b: Option<Filter>) -> Option<Filter> {
        match (a, b) {
            (Some(a), Some(b)) => Some(Filter {
                must: vec![
                    Condition::Nested(Box::new(a)),
                    Condition::Nested(Box::new(b)),
                ],
                ..Filter::default()
            }),
            (a, b) => a.or(b),
        }
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
                    let here = format!("{at}.min_should");
                    let m = match val {
                        Value::Null => continue,
                        Value::Object(m) => m,
                        other => {
                            return Err(Error::invalid(format!(
                                "{here}: expected {{\"conditions\": [...], \"min_count\": n}}, got {other}"
                            )));
                        }
                    };
                    if let Some(k) = m.keys().find(|k| *k != "conditions" && *k != "min_count") {
                        return Err(Error::invalid(format!(
                            "{here}: unknown field {k:?} (expected conditions, min_count)"
                        )));
                    }
                    f.min_count = match m.get("min_count") {
                        Some(n) => n.as_u64().map(|n| n as usize).ok_or_else(|| {
                            Error::invalid(format!(
                                "{here}.min_count: expected a non-negative integer, got {n}"
                            ))
                        })?,
                        None => return Err(Error::invalid(format!("{here}.min_count: missing"))),
                    };
                    match m.get("conditions") {
                        Some(Value::Array(items)) => {
                            for (i, c) in items.iter().enumerate() {
                                let c = Condition::parse(c, &format!("{here}.conditions[{i}]"))?;
                                f.min_should.push(c);
                            }
                        }
                        _ => {
                            return Err(Error::invalid(format!(
                                "{here}.conditions: expected a list of conditions"
                            )));
                        }
                    }
                    continue;
                }
                other => {
                    return Err(Error::invalid(format!(
                        "{at}: unknown field {other:?} (expected must, should, must_not, min_should)"
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
            && self.min_should_holds(|c| c.matches(id, payload))
    }

    /// True when the `min_should` clause holds (or there is none), `holds` telling whether one
    /// of its conditions does.
    fn min_should_holds(&self, holds: impl Fn(&Condition) -> bool) -> bool {
        self.min_should.is_empty()
            || self
                .min_should
                .iter()
                .filter(|c| holds(c))
                .take(self.min_count)
                .count()
                >= self.min_count
    }

    /// Every condition at the top level of the filter.
    fn conditions(&self) -> impl Iterator<Item = &Condition> {
        self.must
            .iter()
            .chain(&self.should)
            .chain(&self.must_not)
            .chain(&self.min_should)
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
        for c in self.conditions() {
            c.collect_keys(out);
        }
    }

    /// How many conditions the filter holds, nested ones and `has_id` ids included: a bound on
    /// the work of evaluating it once.
    pub fn size(&self) -> usize {
        self.conditions()
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
        self.conditions().any(Condition::needs_payload)
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
    Ok(key_path(s))
}

/// A dotted payload key as a path (`a[].b` and `a.b` are the same path).
pub(crate) fn key_path(s: &str) -> Vec<String> {
    key_parts(s).map(str::to_string).collect()
}

fn key_parts(s: &str) -> impl Iterator<Item = &str> {
    s.split('.').map(|p| p.trim_end_matches("[]"))
}

/// True when dotted key `s` names `path` (as [`key_path`] would, without allocating).
pub(crate) fn key_is(s: &str, path: &[String]) -> bool {
    key_parts(s).eq(path.iter().map(String::as_str))
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

/// One bound of a range: a number, a datetime string (`Some(true)` in the second field), or
/// absent.
fn parse_bound(
    obj: &Map<String, Value>,
    name: &str,
    at: &str,
) -> Result<(Option<f64>, Option<bool>)> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok((None, None)),
        Some(Value::Number(n)) => Ok((n.as_f64(), Some(false))),
        Some(Value::String(s)) => match parse_datetime(s) {
            Some(t) => Ok((Some(t as f64), Some(true))),
            None => Err(Error::invalid(format!(
                "{at}.range.{name}: {s:?} is not a datetime (RFC 3339, e.g. 2023-02-08T10:49:00Z)"
            ))),
        },
        Some(other) => Err(Error::invalid(format!(
            "{at}.range.{name}: expected a number or a datetime string, got {other}"
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
            let mut range = Range::default();
            let mut kind: Option<bool> = None;
            for (name, slot) in [
                ("gt", &mut range.gt),
                ("gte", &mut range.gte),
                ("lt", &mut range.lt),
                ("lte", &mut range.lte),
            ] {
                let (v, k) = parse_bound(r, name, at)?;
                if let (Some(a), Some(b)) = (kind, k)
                    && a != b
                {
                    return Err(Error::invalid(format!(
                        "{at}.range.{name}: bounds mix numbers and datetimes"
                    )));
                }
                kind = kind.or(k);
                *slot = v;
            }
            range.datetime = kind == Some(true);
            return Ok(Condition::Range { key, range });
        }
        Err(Error::invalid(format!(
            "{at}: a field condition needs match or range"
        )))
    }

    /// The top-level payload keys this condition reads.
    fn collect_keys(&self, out: &mut Vec<String>) {
        match self {
            Condition::Match { key, .. }
            | Condition::Except { key, .. }
            | Condition::Range { key, .. }
            | Condition::IsEmpty(key)
            | Condition::IsNull(key) => out.extend(key.first().cloned()),
            Condition::Nested(f) => f.collect_keys(out),
            Condition::HasId(_) => {}
        }
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
                    found |= range.contains_value(v);
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

pub(crate) fn value_eq(a: &Value, b: &Value) -> bool {
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
pub(crate) fn visit(payload: &dyn Fields, path: &[String], f: &mut dyn FnMut(&Value)) {
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

/// One bit per row of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bits {
    words: Vec<u64>,
    rows: u32,
}

impl Bits {
    pub(crate) fn none(rows: u32) -> Bits {
        Bits {
            words: vec![0; (rows as usize).div_ceil(64)],
            rows,
        }
    }
    pub(crate) fn all(rows: u32) -> Bits {
        let mut b = Bits {
            words: vec![u64::MAX; (rows as usize).div_ceil(64)],
            rows,
        };
        b.mask_tail();
        b
    }
    fn mask_tail(&mut self) {
        let r = self.rows % 64;
        if r != 0
            && let Some(w) = self.words.last_mut()
        {
            *w &= (1u64 << r) - 1;
        }
    }
    #[inline]
    pub(crate) fn set(&mut self, row: u32) {
        if row < self.rows {
            self.words[(row / 64) as usize] |= 1 << (row % 64);
        }
    }
    #[inline]
    pub(crate) fn has(&self, row: u32) -> bool {
        self.words
            .get((row / 64) as usize)
            .is_some_and(|w| w & (1 << (row % 64)) != 0)
    }
    pub(crate) fn and(&mut self, o: &Bits) {
        self.words
            .iter_mut()
            .zip(&o.words)
            .for_each(|(a, b)| *a &= b);
    }
    pub(crate) fn and_not(&mut self, o: &Bits) {
        self.words
            .iter_mut()
            .zip(&o.words)
            .for_each(|(a, b)| *a &= !b);
    }
    pub(crate) fn or(&mut self, o: &Bits) {
        self.words
            .iter_mut()
            .zip(&o.words)
            .for_each(|(a, b)| *a |= b);
    }
    /// Clears the rows whose bit is set in `dead` (a dead-row bitmap of the same segment).
    pub(crate) fn remove_words(&mut self, dead: impl Iterator<Item = u64>) {
        self.words.iter_mut().zip(dead).for_each(|(a, d)| *a &= !d);
    }
    pub(crate) fn count(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }
    /// Maximal runs of consecutive set rows (how scattered the set is: a scan of it pays a
    /// random access per run).
    pub(crate) fn runs(&self) -> u64 {
        let mut carry = 0u64;
        let mut runs = 0u64;
        for &w in &self.words {
            runs += u64::from((w & !((w << 1) | carry)).count_ones());
            carry = w >> 63;
        }
        runs
    }
    /// The set rows, ascending.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(i, w)| {
            let mut w = *w;
            std::iter::from_fn(move || {
                (w != 0).then(|| {
                    let b = w.trailing_zeros();
                    w &= w - 1;
                    i as u32 * 64 + b
                })
            })
        })
    }
}

/// A question a segment's payload index may answer: the rows where one condition holds.
#[derive(Clone, Copy, Debug)]
pub(crate) enum IndexQuery<'a> {
    /// The value at `key` equals one of `values` (strings, integers or booleans).
    Match {
        key: &'a [String],
        values: &'a [Value],
    },
    /// A value at `key` falls in `range`.
    Range { key: &'a [String], range: &'a Range },
}

/// What a segment can answer without reading payloads.
pub(crate) trait RowSets {
    /// Rows of the segment.
    fn rows(&self) -> u32;
    /// The rows where `q` holds, when one of the segment's payload indexes answers it exactly.
    fn index(&self, q: IndexQuery<'_>) -> Option<Bits>;
    /// The rows holding one of `ids` (sorted).
    fn ids(&self, ids: &[PointId]) -> Bits;
}

/// A filter prepared for one segment: conditions its indexes answer are row sets, the rest
/// are evaluated per row (from payload columns).
#[derive(Debug)]
pub(crate) enum Plan<'a> {
    /// Every condition was answered: exactly these rows match (dead rows included).
    Rows(Bits),
    /// Some conditions need the payload of each row.
    Mixed(PlanNode<'a>),
}

#[derive(Debug)]
pub(crate) struct PlanNode<'a> {
    must: Vec<Step<'a>>,
    should: Vec<Step<'a>>,
    must_not: Vec<Step<'a>>,
    min_should: Vec<Step<'a>>,
    min_count: usize,
}

#[derive(Debug)]
enum Step<'a> {
    Rows(Bits),
    Node(PlanNode<'a>),
    Eval(&'a Condition),
}

impl Step<'_> {
    fn matches(&self, row: u32, id: PointId, payload: &dyn Fields) -> bool {
        match self {
            Step::Rows(b) => b.has(row),
            Step::Node(n) => n.matches(row, id, payload),
            Step::Eval(c) => c.matches(id, payload),
        }
    }
}

impl<'a> PlanNode<'a> {
    /// True when row `row` (point `id`, payload fields `payload`) matches.
    pub(crate) fn matches(&self, row: u32, id: PointId, payload: &dyn Fields) -> bool {
        self.must.iter().all(|c| c.matches(row, id, payload))
            && !self.must_not.iter().any(|c| c.matches(row, id, payload))
            && (self.should.is_empty() || self.should.iter().any(|c| c.matches(row, id, payload)))
            && (self.min_should.is_empty()
                || self
                    .min_should
                    .iter()
                    .filter(|c| c.matches(row, id, payload))
                    .take(self.min_count)
                    .count()
                    >= self.min_count)
    }

    /// Top-level payload keys the conditions evaluated per row read.
    pub(crate) fn eval_keys(&self) -> Vec<String> {
        fn walk(n: &PlanNode<'_>, out: &mut Vec<String>) {
            for s in n
                .must
                .iter()
                .chain(&n.should)
                .chain(&n.must_not)
                .chain(&n.min_should)
            {
                match s {
                    Step::Rows(_) => {}
                    Step::Node(n) => walk(n, out),
                    Step::Eval(c) => c.collect_keys(out),
                }
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out.sort();
        out.dedup();
        out
    }
}

impl Filter {
    /// This filter prepared for a segment whose indexes and ids `sets` answers.
    pub(crate) fn plan<'a>(&'a self, sets: &dyn RowSets) -> Plan<'a> {
        match self.plan_node(sets) {
            Ok(b) => Plan::Rows(b),
            Err(n) => Plan::Mixed(n),
        }
    }

    fn plan_node<'a>(&'a self, sets: &dyn RowSets) -> std::result::Result<Bits, PlanNode<'a>> {
        let step = |c: &'a Condition| -> Step<'a> {
            let q = match c {
                Condition::Nested(f) => {
                    return match f.plan_node(sets) {
                        Ok(b) => Step::Rows(b),
                        Err(n) => Step::Node(n),
                    };
                }
                Condition::HasId(ids) => return Step::Rows(sets.ids(ids)),
                Condition::Match { key, values } => IndexQuery::Match { key, values },
                Condition::Range { key, range } => IndexQuery::Range { key, range },
                _ => return Step::Eval(c),
            };
            sets.index(q).map_or(Step::Eval(c), Step::Rows)
        };
        let node = PlanNode {
            must: self.must.iter().map(step).collect(),
            should: self.should.iter().map(step).collect(),
            must_not: self.must_not.iter().map(step).collect(),
            min_should: self.min_should.iter().map(step).collect(),
            min_count: self.min_count,
        };
        let all_rows = node
            .must
            .iter()
            .chain(&node.should)
            .chain(&node.must_not)
            .chain(&node.min_should)
            .all(|s| matches!(s, Step::Rows(_)));
        if !all_rows {
            return Err(node);
        }
        let bits = |s: &Step<'_>| match s {
            Step::Rows(b) => Some(b.clone()),
            _ => None,
        };
        let mut acc = Bits::all(sets.rows());
        for b in node.must.iter().filter_map(bits) {
            acc.and(&b);
        }
        for b in node.must_not.iter().filter_map(bits) {
            acc.and_not(&b);
        }
        if !node.should.is_empty() {
            let mut any = Bits::none(sets.rows());
            for b in node.should.iter().filter_map(bits) {
                any.or(&b);
            }
            acc.and(&any);
        }
        if !node.min_should.is_empty() {
            let of: Vec<Bits> = node.min_should.iter().filter_map(bits).collect();
            let mut enough = Bits::none(sets.rows());
            for r in 0..sets.rows() {
                if of.iter().filter(|b| b.has(r)).take(node.min_count).count() >= node.min_count {
                    enough.set(r);
                }
            }
            acc.and(&enough);
        }
        Ok(acc)
    }

    /// The conditions on payload fields, as index questions with the key they read (to find
    /// which index sections a segment would use for this filter).
    pub(crate) fn index_questions(&self) -> Vec<IndexQuery<'_>> {
        let mut out = Vec::new();
        for c in self.conditions() {
            match c {
                Condition::Match { key, values } => out.push(IndexQuery::Match { key, values }),
                Condition::Range { key, range } => out.push(IndexQuery::Range { key, range }),
                Condition::Nested(f) => out.extend(f.index_questions()),
                _ => {}
            }
        }
        out
    }

    /// The top-level `must` conditions that match values (`match` value or any), as index
    /// questions: every row the filter allows holds one of each one's values.
    pub(crate) fn must_matches(&self) -> impl Iterator<Item = IndexQuery<'_>> {
        self.must.iter().filter_map(|c| match c {
            Condition::Match { key, values } => Some(IndexQuery::Match { key, values }),
            _ => None,
        })
    }

    /// True when a segment answering every question of [`Filter::index_questions`] for which
    /// `answers` is true needs no payload at all.
    pub(crate) fn answered_by(&self, answers: &dyn Fn(IndexQuery<'_>) -> bool) -> bool {
        self.conditions().all(|c| match c {
            Condition::HasId(_) => true,
            Condition::Nested(f) => f.answered_by(answers),
            Condition::Match { key, values } => answers(IndexQuery::Match { key, values }),
            Condition::Range { key, range } => answers(IndexQuery::Range { key, range }),
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    proptest::proptest! {
        /// `Bits::runs` counts maximal runs of set rows, across word boundaries included.
        #[test]
        fn runs_counts_maximal_runs(set in proptest::collection::vec(proptest::bool::ANY, 0..300)) {
            let mut b = Bits::none(set.len() as u32);
            for (i, on) in set.iter().enumerate() {
                if *on {
                    b.set(i as u32);
                }
            }
            let naive = (0..set.len()).filter(|&i| set[i] && (i == 0 || !set[i - 1])).count();
            proptest::prop_assert_eq!(b.runs(), naive as u64);
        }
    }

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
    fn min_should_needs_min_count_of_its_conditions() {
        let doc = p(json!({"city": "Paris", "n": 7}));
        let id = PointId::Num(1);
        let ms = |k: usize| {
            f(json!({"min_should": {"min_count": k, "conditions": [
                {"key": "city", "match": {"value": "Paris"}},
                {"key": "n", "range": {"gt": 10}},
                {"has_id": [1]}]}}))
        };
        assert!(ms(0).matches(id, &doc));
        assert!(ms(2).matches(id, &doc));
        assert!(!ms(3).matches(id, &doc), "only two of the three hold");
        assert!(!ms(4).matches(id, &doc), "more than there are never holds");
        let e = Filter::from_json(&json!({"min_should": {"conditions": []}}), "filter")
            .expect_err("no count");
        assert!(e.message().contains("filter.min_should.min_count"), "{e}");
        let e = Filter::from_json(
            &json!({"min_should": {"min_count": 1, "conditions": [{"key": "a", "geo_radius": {}}]}}),
            "filter",
        )
        .expect_err("bad condition");
        assert!(
            e.message().contains("filter.min_should.conditions[0]"),
            "{e}"
        );
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
