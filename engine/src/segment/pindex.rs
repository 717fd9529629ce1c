//! Payload index sections: per segment, per indexed field, the rows holding each value.
//!
//! ```text
//! 0    u32 points        rows holding at least one indexed value
//! 4    u32 values        distinct values V, strictly ascending
//! 8    u32 pairs         (value, row) entries P
//! 12   u32 string bytes  S (keyword and uuid indexes; 0 otherwise)
//! 16   keys              numeric types: V × 8 bytes (i64, or f64 for float)
//!                        string types: u32 offsets[V + 1] into S bytes of UTF-8, padded to 4
//! ...  u32 starts[V + 1] where each value's rows begin in `rows` (starts[V] = P)
//! ...  u32 rows[P]       each value's rows, ascending
//! ```
//! What an index holds of a row is exactly what the filter's conditions look at (see
//! [`values_of`]), so a condition answered from the index and one evaluated on the payload
//! always agree. A keyword or uuid index holds every string at the key; an integer index every
//! whole number (and notes in the record's flags when the key also held other numbers, so that
//! ranges then fall back to the payload); a float index every number; a bool index every
//! boolean; a datetime index every string that parses as a datetime (microseconds, UTC).

use serde_json::Value;

use crate::codec::{Writer, cast_slice};
use crate::filter::{Bits, Fields, IndexQuery, Range, parse_datetime, visit};
use crate::index::FieldType;
use crate::types::Payload;

/// Record flag: an integer index's key also held numbers that are not whole (or beyond
/// `i64`): a range cannot be answered from the index alone.
pub(crate) const FLAG_OTHER_NUMBERS: u8 = 1;
const HEADER: usize = 16;

/// One indexed value of a row.
#[derive(Clone, Debug, PartialEq, PartialOrd)]
enum Key {
    Int(i64),
    Float(f64),
    Str(String),
}

fn is_string_type(ty: FieldType) -> bool {
    matches!(ty, FieldType::Keyword | FieldType::Uuid)
}

/// The indexed values of `payload` at `path`, and whether the path held numbers an integer
/// index cannot hold.
fn values_of(ty: FieldType, path: &[String], payload: &Payload, out: &mut Vec<Key>) -> bool {
    let mut other = false;
    visit(payload as &dyn Fields, path, &mut |v| match (ty, v) {
        (FieldType::Keyword | FieldType::Uuid, Value::String(s)) => out.push(Key::Str(s.clone())),
        (FieldType::Integer, Value::Number(n)) => match n.as_i64() {
            Some(i) => out.push(Key::Int(i)),
            None => other = true,
        },
        (FieldType::Float, Value::Number(n)) => {
            let f = n.as_f64().unwrap_or(0.0);
            out.push(Key::Float(if f == 0.0 { 0.0 } else { f }));
        }
        (FieldType::Bool, Value::Bool(b)) => out.push(Key::Int(i64::from(*b))),
        (FieldType::Datetime, Value::String(s)) => {
            if let Some(t) = parse_datetime(s) {
                out.push(Key::Int(t));
            }
        }
        _ => {}
    });
    other
}

/// True when an index of type `ty` can answer a facet (Qdrant: keyword, integer, bool, uuid).
pub(crate) fn facetable(ty: FieldType) -> bool {
    matches!(
        ty,
        FieldType::Keyword | FieldType::Integer | FieldType::Bool | FieldType::Uuid
    )
}

fn key_json(ty: FieldType, k: &Key) -> Value {
    match (ty, k) {
        (FieldType::Bool, Key::Int(i)) => Value::Bool(*i != 0),
        (_, Key::Int(i)) => Value::from(*i),
        (_, Key::Float(f)) => Value::from(*f),
        (_, Key::Str(s)) => Value::String(s.clone()),
    }
}

/// The distinct values an index of type `ty` at `path` holds of `payload`, as JSON: what a
/// facet counts a point under (the same values as the index section would hold).
pub(crate) fn facet_values(ty: FieldType, path: &[String], payload: &Payload) -> Vec<Value> {
    let mut keys = Vec::new();
    values_of(ty, path, payload, &mut keys);
    let mut out: Vec<Value> = Vec::with_capacity(keys.len());
    for k in &keys {
        let v = key_json(ty, k);
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Facet counts being gathered over several sources.
#[derive(Debug, Default)]
pub(crate) struct FacetCounts(std::collections::HashMap<String, (Value, u64)>);

impl FacetCounts {
    pub(crate) fn add(&mut self, v: Value, n: u64) {
        self.0.entry(v.to_string()).or_insert((v, 0)).1 += n;
    }

    /// The `limit` values with the most points: count descending, then value ascending (as
    /// Qdrant orders them).
    pub(crate) fn top(self, limit: usize) -> Vec<(Value, u64)> {
        let mut all: Vec<(Value, u64)> = self.0.into_values().collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| value_order(&a.0, &b.0)));
        all.truncate(limit);
        all
    }
}

fn value_order(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => x.as_i64().cmp(&y.as_i64()),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// An index section being built, row by row in row order.
#[derive(Debug)]
pub(crate) struct Builder {
    ty: FieldType,
    path: Vec<String>,
    pairs: Vec<(Key, u32)>,
    points: u32,
    flags: u8,
    scratch: Vec<Key>,
}

impl Builder {
    pub(crate) fn new(ty: FieldType, key: &str) -> Builder {
        Builder {
            ty,
            path: crate::filter::key_path(key),
            pairs: Vec::new(),
            points: 0,
            flags: 0,
            scratch: Vec::new(),
        }
    }

    /// Adds row `row` (rows come in ascending order).
    pub(crate) fn add(&mut self, row: u32, payload: &Payload) {
        self.scratch.clear();
        if values_of(self.ty, &self.path, payload, &mut self.scratch) {
            self.flags |= FLAG_OTHER_NUMBERS;
        }
        if self.scratch.is_empty() {
            return;
        }
        self.points += 1;
        self.pairs.extend(self.scratch.drain(..).map(|k| (k, row)));
    }

    /// Rows added so far holding at least one indexed value.
    pub(crate) fn points(&self) -> u32 {
        self.points
    }

    /// The record flags and the section bytes.
    pub(crate) fn finish(mut self) -> (u8, u32, Vec<u8>) {
        self.pairs.sort_by(|a, b| {
            a.0.partial_cmp(&b.0)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.1.cmp(&b.1))
        });
        self.pairs.dedup();
        let mut keys: Vec<&Key> = Vec::new();
        let mut starts: Vec<u32> = Vec::new();
        for (i, (k, _)) in self.pairs.iter().enumerate() {
            if keys.last() != Some(&k) {
                keys.push(k);
                starts.push(i as u32);
            }
        }
        starts.push(self.pairs.len() as u32);
        let mut w = Writer::with_capacity(HEADER + keys.len() * 12 + self.pairs.len() * 4);
        let strings: usize = keys
            .iter()
            .map(|k| match k {
                Key::Str(s) => s.len(),
                _ => 0,
            })
            .sum();
        w.u32(self.points);
        w.u32(keys.len() as u32);
        w.u32(self.pairs.len() as u32);
        w.u32(strings as u32);
        match is_string_type(self.ty) {
            true => {
                let mut off = 0u32;
                w.u32(0);
                for k in &keys {
                    if let Key::Str(s) = k {
                        off += s.len() as u32;
                    }
                    w.u32(off);
                }
                for k in &keys {
                    if let Key::Str(s) = k {
                        w.bytes(s.as_bytes());
                    }
                }
                w.pad_to(4);
            }
            false => {
                for k in &keys {
                    match k {
                        Key::Int(i) => w.u64(*i as u64),
                        Key::Float(f) => w.u64(f.to_bits()),
                        Key::Str(_) => w.u64(0),
                    }
                }
            }
        }
        starts.iter().for_each(|s| w.u32(*s));
        self.pairs.iter().for_each(|(_, r)| w.u32(*r));
        (self.flags, self.points, w.buf)
    }
}

/// Builds the sections of `indexes` over rows given by their stored payload bytes (in row
/// order): per index, (flags, points, bytes). Each payload is parsed once.
pub(crate) fn build<'a>(
    indexes: &[(String, FieldType)],
    payloads: impl Iterator<Item = &'a [u8]>,
) -> Vec<(u8, u32, Vec<u8>)> {
    let mut builders: Vec<Builder> = indexes.iter().map(|(k, t)| Builder::new(*t, k)).collect();
    if builders.is_empty() {
        return Vec::new();
    }
    for (row, p) in payloads.enumerate() {
        if p.is_empty() {
            continue;
        }
        let payload = super::parse_payload(p);
        builders
            .iter_mut()
            .for_each(|b| b.add(row as u32, &payload));
    }
    builders.into_iter().map(Builder::finish).collect()
}

/// True when an index of type `ty` (record flags `flags`) answers `q` exactly.
pub(crate) fn answers(ty: FieldType, flags: u8, q: IndexQuery<'_>) -> bool {
    match q {
        IndexQuery::Match { values, .. } => match ty {
            FieldType::Keyword | FieldType::Uuid => values.iter().all(Value::is_string),
            FieldType::Integer => values.iter().all(|v| v.as_i64().is_some()),
            FieldType::Bool => values.iter().all(Value::is_boolean),
            FieldType::Float | FieldType::Datetime => false,
        },
        IndexQuery::Range { range, .. } => match (ty, range.datetime) {
            (FieldType::Integer, false) => flags & FLAG_OTHER_NUMBERS == 0,
            (FieldType::Float, false) | (FieldType::Datetime, true) => true,
            _ => false,
        },
    }
}

/// A checked view of one index section.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexView<'a> {
    ty: FieldType,
    points: u32,
    nums: &'a [u64],
    str_offsets: &'a [u32],
    strings: &'a [u8],
    starts: &'a [u32],
    rows: &'a [u32],
}

impl<'a> IndexView<'a> {
    /// Views `b` as an index of type `ty` over a segment of `n` rows, checking every invariant
    /// ([`IndexView::view`] and [`IndexView::check`]); `Err` names what is wrong.
    pub(crate) fn new(ty: FieldType, b: &'a [u8], n: u32) -> Result<IndexView<'a>, String> {
        let v = IndexView::view(ty, b, n)?;
        v.check(n)?;
        Ok(v)
    }

    /// Views `b` checking its sizes only (O(1)): for a section checked at open. The accessors
    /// never panic on bad contents (they answer wrongly instead), as graph reads do.
    pub(crate) fn view(ty: FieldType, b: &'a [u8], n: u32) -> Result<IndexView<'a>, String> {
        let head: &[u32] = b
            .get(..HEADER)
            .and_then(cast_slice)
            .ok_or("shorter than its header")?;
        let (points, values, pairs, sbytes) = (
            head[0],
            head[1] as usize,
            head[2] as usize,
            head[3] as usize,
        );
        let string = is_string_type(ty);
        let keys_len = match string {
            true => (values + 1) * 4 + sbytes.next_multiple_of(4),
            false => values * 8,
        };
        let want = HEADER + keys_len + (values + 1) * 4 + pairs * 4;
        if b.len() != want {
            return Err(format!("{} bytes, its counts say {want}", b.len()));
        }
        if points as usize > pairs || points > n || (!string && sbytes != 0) {
            return Err("counts out of range".into());
        }
        let mut at = HEADER;
        let mut take = |len: usize| {
            let s = &b[at..at + len];
            at += len;
            s
        };
        let (nums, str_offsets, strings): (&[u64], &[u32], &[u8]) = match string {
            true => {
                let offs = cast_slice(take((values + 1) * 4)).ok_or("misaligned")?;
                let all = take(sbytes.next_multiple_of(4));
                (&[], offs, &all[..sbytes])
            }
            false => (cast_slice(take(values * 8)).ok_or("misaligned")?, &[], &[]),
        };
        let starts: &[u32] = cast_slice(take((values + 1) * 4)).ok_or("misaligned")?;
        let rows: &[u32] = cast_slice(take(pairs * 4)).ok_or("misaligned")?;
        Ok(IndexView {
            ty,
            points,
            nums,
            str_offsets,
            strings,
            starts,
            rows,
        })
    }

    /// Checks the order of values, strings and rows (O(size)).
    pub(crate) fn check(&self, n: u32) -> Result<(), String> {
        let v = self;
        let (starts, str_offsets, strings, nums) =
            (self.starts, self.str_offsets, self.strings, self.nums);
        let (values, pairs, sbytes) = (self.values(), self.rows.len(), self.strings.len());
        let string = is_string_type(self.ty);
        if starts.first() != Some(&0)
            || starts.last().map(|s| *s as usize) != Some(pairs)
            || starts.windows(2).any(|w| w[0] >= w[1])
        {
            return Err("value starts not strictly ascending".into());
        }
        if string {
            if str_offsets.first() != Some(&0)
                || str_offsets.last().map(|s| *s as usize) != Some(sbytes)
                || str_offsets.windows(2).any(|w| w[0] > w[1])
            {
                return Err("string offsets not ascending".into());
            }
            if std::str::from_utf8(strings).is_err() {
                return Err("strings are not UTF-8".into());
            }
            if (1..values).any(|i| v.string(i - 1) >= v.string(i)) {
                return Err("strings not strictly ascending".into());
            }
        } else {
            let ok = match self.ty {
                FieldType::Float => {
                    nums.windows(2).all(|w| {
                        let (a, b) = (f64::from_bits(w[0]), f64::from_bits(w[1]));
                        a < b
                    }) && nums.iter().all(|x| f64::from_bits(*x).is_finite())
                }
                _ => nums.windows(2).all(|w| (w[0] as i64) < (w[1] as i64)),
            };
            if !ok {
                return Err("values not strictly ascending".into());
            }
        }
        for i in 0..values {
            let p = v.postings(i);
            if p.windows(2).any(|w| w[0] >= w[1]) || p.last().is_some_and(|r| *r >= n) {
                return Err(format!("rows of value {i} not ascending or out of range"));
            }
        }
        Ok(())
    }

    /// Rows holding at least one indexed value when the segment was written.
    pub(crate) fn points(&self) -> u32 {
        self.points
    }

    fn values(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// Number of distinct values.
    pub(crate) fn value_count(&self) -> usize {
        self.values()
    }

    /// Value number of `v` (a match value), if the index holds it.
    pub(crate) fn value_number(&self, v: &Value) -> Option<usize> {
        self.find(v)
    }

    /// The rows of value number `i`, ascending.
    pub(crate) fn value_rows(&self, i: usize) -> &'a [u32] {
        self.postings(i)
    }

    fn string(&self, i: usize) -> &'a [u8] {
        let (a, b) = (self.str_offsets.get(i), self.str_offsets.get(i + 1));
        match (a, b) {
            (Some(a), Some(b)) => self.strings.get(*a as usize..*b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    fn postings(&self, i: usize) -> &'a [u32] {
        match (self.starts.get(i), self.starts.get(i + 1)) {
            (Some(a), Some(b)) => self.rows.get(*a as usize..*b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// The value as the range compares it.
    fn num(&self, i: usize) -> f64 {
        let x = self.nums.get(i).copied().unwrap_or(0);
        match self.ty {
            FieldType::Float => f64::from_bits(x),
            _ => x as i64 as f64,
        }
    }

    /// Value number of `v`, if the index holds it.
    fn find(&self, v: &Value) -> Option<usize> {
        match v {
            Value::String(s) if self.str_offsets.len() > 1 => {
                let (mut lo, mut hi) = (0, self.values());
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    match self.string(mid).cmp(s.as_bytes()) {
                        std::cmp::Ordering::Less => lo = mid + 1,
                        std::cmp::Ordering::Greater => hi = mid,
                        std::cmp::Ordering::Equal => return Some(mid),
                    }
                }
                None
            }
            Value::Bool(b) => self.find_int(i64::from(*b)),
            Value::Number(n) => self.find_int(n.as_i64()?),
            _ => None,
        }
    }

    fn find_int(&self, x: i64) -> Option<usize> {
        self.nums.binary_search_by(|v| (*v as i64).cmp(&x)).ok()
    }

    /// Each value with the number of its rows `allows` accepts (values with none left out).
    pub(crate) fn facet(&self, allows: impl Fn(u32) -> bool) -> Vec<(Value, u64)> {
        (0..self.values())
            .filter_map(|i| {
                let n = self.postings(i).iter().filter(|r| allows(**r)).count() as u64;
                (n > 0).then(|| (self.value_json(i), n))
            })
            .collect()
    }

    /// Value number `i` as JSON.
    fn value_json(&self, i: usize) -> Value {
        let key = match is_string_type(self.ty) {
            true => Key::Str(String::from_utf8_lossy(self.string(i)).into_owned()),
            false => Key::Int(self.nums.get(i).copied().unwrap_or(0) as i64),
        };
        key_json(self.ty, &key)
    }

    /// The rows `q` selects (`q` must be one [`answers`] accepts for this index).
    pub(crate) fn query(&self, q: IndexQuery<'_>, n: u32) -> Bits {
        let mut out = Bits::none(n);
        let mut add = |i: usize| self.postings(i).iter().for_each(|r| out.set(*r));
        match q {
            IndexQuery::Match { values, .. } => {
                values
                    .iter()
                    .filter_map(|v| self.find(v))
                    .for_each(&mut add);
            }
            IndexQuery::Range { range, .. } => {
                let (lo, hi) = self.range(range);
                (lo..hi).for_each(&mut add);
            }
        }
        out
    }

    /// The value numbers in `range`: a contiguous run, since the values are sorted.
    fn range(&self, r: &Range) -> (usize, usize) {
        let n = self.values();
        let above = |x: f64| r.gt.is_none_or(|b| x > b) && r.gte.is_none_or(|b| x >= b);
        let below = |x: f64| r.lt.is_none_or(|b| x < b) && r.lte.is_none_or(|b| x <= b);
        let lo = partition(n, |i| !above(self.num(i)));
        let hi = partition(n, |i| below(self.num(i)));
        (lo, hi.max(lo))
    }
}

/// The first `i` in `0..n` for which `pred` is false (`pred` true then false).
fn partition(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if pred(mid) { lo = mid + 1 } else { hi = mid }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{Filter, RowSets};
    use crate::types::PointId;
    use proptest::prelude::*;
    use serde_json::json;

    /// A segment of `payloads` whose indexes are `indexes`: the filter's plan uses them.
    struct Fixture {
        payloads: Vec<Payload>,
        sections: Vec<(FieldType, String, u8, Vec<u8>)>,
    }

    impl RowSets for Fixture {
        fn rows(&self) -> u32 {
            self.payloads.len() as u32
        }
        fn index(&self, q: IndexQuery<'_>) -> Option<Bits> {
            let key = match q {
                IndexQuery::Match { key, .. } | IndexQuery::Range { key, .. } => key,
            };
            self.sections.iter().find_map(|(ty, k, flags, b)| {
                (crate::filter::key_path(k) == key && answers(*ty, *flags, q)).then(|| {
                    IndexView::new(*ty, b, self.rows())
                        .expect("valid")
                        .query(q, self.rows())
                })
            })
        }
        fn ids(&self, ids: &[PointId]) -> Bits {
            let mut b = Bits::none(self.rows());
            for id in ids {
                if let PointId::Num(n) = id
                    && *n < u64::from(self.rows())
                {
                    b.set(*n as u32);
                }
            }
            b
        }
    }

    fn fixture(payloads: Vec<Value>, indexes: &[(&str, FieldType)]) -> Fixture {
        let payloads: Vec<Payload> = payloads
            .into_iter()
            .map(|v| v.as_object().cloned().unwrap_or_default())
            .collect();
        let bytes: Vec<Vec<u8>> = payloads
            .iter()
            .map(|p| serde_json::to_vec(p).expect("json"))
            .collect();
        let idx: Vec<(String, FieldType)> =
            indexes.iter().map(|(k, t)| (k.to_string(), *t)).collect();
        let built = build(&idx, bytes.iter().map(Vec::as_slice));
        let sections = idx
            .into_iter()
            .zip(built)
            .map(|((k, t), (flags, _, b))| (t, k, flags, b))
            .collect();
        Fixture { payloads, sections }
    }

    /// The rows the plan selects equal the rows the filter selects payload by payload.
    fn agree(fx: &Fixture, f: &Filter) -> Option<bool> {
        let plan = f.plan(fx);
        let want: Vec<u32> = (0..fx.rows())
            .filter(|r| f.matches(PointId::Num(u64::from(*r)), &fx.payloads[*r as usize]))
            .collect();
        let (got, all_index) = match &plan {
            crate::filter::Plan::Rows(b) => (b.iter().collect::<Vec<_>>(), true),
            crate::filter::Plan::Mixed(n) => (
                (0..fx.rows())
                    .filter(|r| {
                        n.matches(*r, PointId::Num(u64::from(*r)), &fx.payloads[*r as usize])
                    })
                    .collect(),
                false,
            ),
        };
        assert_eq!(got, want, "filter {f:?}");
        Some(all_index)
    }

    fn f(v: Value) -> Filter {
        Filter::from_json(&v, "filter").expect("parses")
    }

    #[test]
    fn every_type_answers_its_conditions() {
        let fx = fixture(
            vec![
                json!({"k": "a", "n": 1, "x": 0.5, "b": true, "t": "2024-01-01T00:00:00Z", "u": "6f1c"}),
                json!({"k": ["b", "a"], "n": [2, 3], "x": -1, "b": false, "t": "2024-06-01"}),
                json!({"k": 5, "n": 2.5, "x": "no", "t": "garbage"}),
                json!({"m": {"k": "deep"}, "n": -7}),
                json!({}),
            ],
            &[
                ("k", FieldType::Keyword),
                ("n", FieldType::Integer),
                ("x", FieldType::Float),
                ("b", FieldType::Bool),
                ("t", FieldType::Datetime),
                ("m.k", FieldType::Keyword),
            ],
        );
        let cases = [
            (json!({"must": {"key": "k", "match": {"value": "a"}}}), true),
            (
                json!({"must": {"key": "k", "match": {"any": ["b", "zz"]}}}),
                true,
            ),
            (json!({"must": {"key": "k", "match": {"value": 5}}}), false),
            (
                json!({"must_not": {"key": "k", "match": {"value": "a"}}}),
                true,
            ),
            (json!({"must": {"key": "n", "match": {"value": 2}}}), true),
            // The key also held 2.5: an integer range falls back to the payload.
            (json!({"must": {"key": "n", "range": {"gte": 2}}}), false),
            (
                json!({"must": {"key": "x", "range": {"gt": -1, "lte": 0.5}}}),
                true,
            ),
            (json!({"must": {"key": "x", "range": {"gte": -1}}}), true),
            (
                json!({"must": {"key": "b", "match": {"value": false}}}),
                true,
            ),
            (
                json!({"must": {"key": "t", "range": {"gt": "2024-01-01T00:00:00Z"}}}),
                true,
            ),
            (
                json!({"must": {"key": "m.k", "match": {"value": "deep"}}}),
                true,
            ),
            (
                json!({"should": [{"key": "k", "match": {"value": "b"}}, {"has_id": [3]}]}),
                true,
            ),
            (
                json!({"must": [{"key": "k", "match": {"value": "a"}}, {"is_empty": {"key": "b"}}]}),
                false,
            ),
            (
                json!({"must": {"key": "k", "match": {"except": ["a"]}}}),
                false,
            ),
        ];
        for (c, indexed) in cases {
            assert_eq!(agree(&fx, &f(c.clone())), Some(indexed), "{c}");
        }
    }

    #[test]
    fn an_integer_index_answers_ranges_when_every_number_is_whole() {
        let fx = fixture(
            (0..50).map(|i| json!({"n": i % 7 - 3})).collect(),
            &[("n", FieldType::Integer)],
        );
        assert_eq!(fx.sections[0].2, 0);
        for (lo, hi) in [(-3, 3), (0, 0), (-10, -4), (1, 2)] {
            let q = f(json!({"must": {"key": "n", "range": {"gte": lo, "lt": hi}}}));
            assert_eq!(agree(&fx, &q), Some(true));
        }
    }

    #[test]
    fn damaged_sections_are_refused() {
        let fx = fixture(
            vec![json!({"k": "a"}), json!({"k": "b"}), json!({"k": "a"})],
            &[("k", FieldType::Keyword)],
        );
        let good = &fx.sections[0].3;
        assert!(IndexView::new(FieldType::Keyword, good, 3).is_ok());
        assert!(
            IndexView::new(FieldType::Keyword, good, 2).is_err(),
            "row out of range"
        );
        assert!(IndexView::new(FieldType::Keyword, &good[..good.len() - 4], 3).is_err());
        let mut swapped = good.clone();
        // The two one-byte strings "a" "b" → "b" "a": no longer sorted.
        let at = HEADER + 3 * 4;
        swapped.swap(at, at + 1);
        assert!(IndexView::new(FieldType::Keyword, &swapped, 3).is_err());
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            (0i64..6).prop_map(|i| json!(i)),
            (0i64..6).prop_map(|i| json!(i as f64 + 0.5)),
            prop::sample::select(vec!["a", "b", "c"]).prop_map(|s| json!(s)),
            any::<bool>().prop_map(|b| json!(b)),
            Just(Value::Null),
        ]
    }

    fn field() -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            Just(None),
            value().prop_map(Some),
            prop::collection::vec(value(), 0..3).prop_map(|v| Some(Value::Array(v))),
        ]
    }

    proptest! {
        /// Any filter over any payloads: the indexed plan selects the same rows as evaluating
        /// every payload, whatever the index type of the field.
        #[test]
        fn indexed_plans_agree_with_payload_evaluation(
            rows in prop::collection::vec(field(), 1..40),
            ty in prop::sample::select(FieldType::ALL.to_vec()),
            m in value(),
            lo in -1i64..7, width in 0i64..5,
            neg in any::<bool>(),
        ) {
            let payloads = rows.into_iter().map(|v| match v {
                Some(v) => json!({"f": v}),
                None => json!({}),
            }).collect();
            let fx = fixture(payloads, &[("f", ty)]);
            let cond = |c: Value| if neg { json!({"must_not": c}) } else { json!({"must": c}) };
            if !m.is_null() && !m.is_f64() {
                agree(&fx, &f(cond(json!({"key": "f", "match": {"value": m}}))));
                agree(&fx, &f(cond(json!({"key": "f", "match": {"any": [m, "b"]}}))));
            }
            agree(&fx, &f(cond(json!({"key": "f", "range": {"gte": lo, "lt": lo + width}}))));
            agree(&fx, &f(cond(json!({"key": "f", "range": {"gt": lo as f64 + 0.25}}))));
        }
    }
}
