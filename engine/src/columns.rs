//! The filter column cache: parsed payload columns of immutable segments, bounded in bytes,
//! evicted least-recently-used.
//!
//! A filter on top-level key `k` over a segment reads one parsed `Option<Value>` per row from
//! a column built by parsing every payload of the segment once. Columns are shared by all
//! queries and all collections of an engine, and the whole cache holds at most
//! `EngineOptions::filter_cache_bytes`; a column is built outside every lock (two queries may
//! build the same one; the first to finish is kept). A column larger than the whole budget is
//! used by the query that built it and not kept. Columns of a segment are dropped when the
//! segment is retired (a query still running on it may add one back; the LRU evicts it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// One parsed top-level payload key, one entry per row of a segment.
pub(crate) type Column = Vec<Option<Value>>;

#[derive(Debug)]
struct Entry {
    col: Arc<Column>,
    bytes: usize,
    used: u64,
}

#[derive(Debug, Default)]
struct State {
    map: HashMap<(u64, String), Entry>,
    bytes: usize,
    tick: u64,
}

/// The cache (one per engine).
#[derive(Debug)]
pub(crate) struct ColumnCache {
    budget: usize,
    state: Mutex<State>,
}

/// RAM of a parsed JSON value beyond its inline 32 bytes (an estimate: strings, array and
/// map storage, and what they hold).
fn heap_bytes(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        Value::String(s) => s.capacity(),
        Value::Array(a) => {
            a.capacity() * size_of::<Value>() + a.iter().map(heap_bytes).sum::<usize>()
        }
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| k.capacity() + size_of::<Value>() + 24 + heap_bytes(v))
            .sum(),
    }
}

/// Estimated RAM of a column.
pub(crate) fn column_bytes(col: &Column) -> usize {
    col.capacity() * size_of::<Option<Value>>()
        + col.iter().flatten().map(heap_bytes).sum::<usize>()
        + 64
}

impl ColumnCache {
    pub(crate) fn new(budget: usize) -> ColumnCache {
        ColumnCache {
            budget,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        crate::engine::lock(&self.state)
    }

    /// The columns of `keys` for segment `segment`, building the missing ones with `build`
    /// (called once, without any lock held, with the missing keys; it returns their columns in
    /// that order).
    pub(crate) fn get(
        &self,
        segment: u64,
        keys: &[String],
        build: impl FnOnce(&[&String]) -> Vec<Column>,
    ) -> Vec<Arc<Column>> {
        let mut out: Vec<Option<Arc<Column>>> = {
            let mut s = self.lock();
            s.tick += 1;
            let tick = s.tick;
            keys.iter()
                .map(|k| {
                    s.map.get_mut(&(segment, k.clone())).map(|e| {
                        e.used = tick;
                        Arc::clone(&e.col)
                    })
                })
                .collect()
        };
        let missing: Vec<&String> = keys
            .iter()
            .zip(&out)
            .filter(|(_, c)| c.is_none())
            .map(|(k, _)| k)
            .collect();
        if !missing.is_empty() {
            let built = build(&missing);
            let mut built = built.into_iter();
            let mut s = self.lock();
            for (k, slot) in keys.iter().zip(out.iter_mut()) {
                if slot.is_some() {
                    continue;
                }
                let col = Arc::new(built.next().unwrap_or_default());
                let key = (segment, k.clone());
                if let Some(e) = s.map.get(&key) {
                    // Another query built it meanwhile: keep that one.
                    *slot = Some(Arc::clone(&e.col));
                    continue;
                }
                let bytes = column_bytes(&col);
                *slot = Some(Arc::clone(&col));
                if bytes > self.budget {
                    metrics::counter!("strata_filter_cache_oversize_total").increment(1);
                    continue;
                }
                s.tick += 1;
                let tick = s.tick;
                s.map.insert(
                    key,
                    Entry {
                        col,
                        bytes,
                        used: tick,
                    },
                );
                s.bytes += bytes;
                self.evict(&mut s);
            }
        }
        out.into_iter().map(|c| c.unwrap_or_default()).collect()
    }

    fn evict(&self, s: &mut State) {
        while s.bytes > self.budget {
            let Some(victim) = s
                .map
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = s.map.remove(&victim) {
                s.bytes -= e.bytes;
                metrics::counter!("strata_filter_cache_evictions_total").increment(1);
            }
        }
    }

    /// Drops every column of `segment` (it was retired).
    pub(crate) fn forget(&self, segment: u64) {
        let mut s = self.lock();
        let mut freed = 0;
        s.map.retain(|(seg, _), e| {
            let keep = *seg != segment;
            if !keep {
                freed += e.bytes;
            }
            keep
        });
        s.bytes -= freed;
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(n: usize, s: &str) -> Column {
        (0..n).map(|_| Some(Value::String(s.to_string()))).collect()
    }

    #[test]
    fn bounded_lru_and_forget() {
        let one = column_bytes(&col(100, "xxxxxxxx"));
        let cache = ColumnCache::new(one * 2 + one / 2);
        let keys = |k: &str| vec![k.to_string()];
        let builds = std::cell::Cell::new(0);
        let get = |seg: u64, k: &str| {
            cache.get(seg, &keys(k), |m| {
                builds.set(builds.get() + m.len());
                vec![col(100, "xxxxxxxx")]
            })
        };
        get(1, "a");
        get(1, "b");
        get(1, "a"); // a is now the most recent
        assert_eq!(builds.get(), 2);
        get(2, "c"); // evicts b, the least recently used
        assert!(cache.bytes() <= one * 2 + one / 2);
        get(1, "a");
        assert_eq!(builds.get(), 3, "a stayed cached");
        get(1, "b");
        assert_eq!(builds.get(), 4, "b was evicted");
        cache.forget(1);
        assert!(cache.bytes() <= one, "only segment 2's column may remain");
        let tiny = ColumnCache::new(10);
        let got = tiny.get(1, &keys("a"), |_| vec![col(100, "y")]);
        assert_eq!(got[0].len(), 100, "an oversize column is still served");
        assert_eq!(tiny.bytes(), 0, "but not kept");
    }
}
