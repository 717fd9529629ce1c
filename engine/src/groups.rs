//! Grouped search (Qdrant's `group_by`): the best `group_size` hits of each of the best
//! `limit` values of a payload field.
//!
//! ```text
//! search top-L (payloads on) ─▶ put each hit in the group of every value it holds at the key
//!   ─▶ the first `limit` groups full (or the search exhausted, or L at the result window)?
//!        no ─▶ L × 4, search again
//! ```
//! A search's hits are a prefix of the collection's ranking, so the groups first seen are the
//! best groups, and a group holding `group_size` hits of the prefix holds its best ones.

use std::collections::HashMap;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::filter::{Fields, key_path, visit};
use crate::handle::CollectionHandle;
use crate::types::{GroupRequest, PointGroup, SearchReport, SearchRequest};

/// Most hits per group.
pub const MAX_GROUP_SIZE: usize = 1_000;

/// The group ids a payload holds at `path`: strings and whole numbers, once each.
fn group_ids(payload: &crate::types::Payload, path: &[String]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    visit(payload as &dyn Fields, path, &mut |v| {
        let id = match v {
            Value::String(_) => v.clone(),
            Value::Number(n) if n.is_i64() || n.is_u64() => v.clone(),
            _ => return,
        };
        if !out.contains(&id) {
            out.push(id);
        }
    });
    out
}

impl CollectionHandle {
    /// `req` grouped by `g.group_by`: up to `g.limit` groups, best first (by their best hit),
    /// each with its best `g.group_size` hits. `req.limit` and `req.offset` are ignored. Points
    /// without a string or whole-number value at the key are in no group; a point holding
    /// several values is in each of their groups.
    pub fn search_groups(
        &self,
        req: &SearchRequest,
        g: &GroupRequest,
    ) -> Result<(Vec<PointGroup>, SearchReport)> {
        if g.limit == 0 || g.group_size == 0 {
            return Err(Error::invalid(format!(
                "limit and group_size must be at least 1, got {} and {}",
                g.limit, g.group_size
            )));
        }
        if g.group_size > MAX_GROUP_SIZE {
            return Err(Error::invalid(format!(
                "group_size must be at most {MAX_GROUP_SIZE}, got {}",
                g.group_size
            )));
        }
        if g.group_by.is_empty() {
            return Err(Error::invalid("group_by: must name a payload field"));
        }
        let path = key_path(&g.group_by);
        let max = self.max_result_window();
        let mut candidates = g.limit.saturating_mul(g.group_size).min(max).max(1);
        let mut r = req.clone();
        r.offset = 0;
        r.with_payload = true;
        loop {
            r.limit = candidates;
            let report = self.search_report(&r)?;
            let exhausted = report.points.len() < candidates || candidates >= max;
            let mut groups: Vec<PointGroup> = Vec::new();
            // Group index by the id's JSON text (`"a"` and `1` stay apart; Value has no Hash).
            let mut index: HashMap<String, usize> = HashMap::new();
            for hit in &report.points {
                let ids = hit
                    .payload
                    .as_ref()
                    .map(|p| group_ids(p, &path))
                    .unwrap_or_default();
                for id in ids {
                    let at = *index.entry(id.to_string()).or_insert_with(|| {
                        groups.push(PointGroup {
                            id,
                            hits: Vec::new(),
                        });
                        groups.len() - 1
                    });
                    if groups[at].hits.len() < g.group_size {
                        groups[at].hits.push(hit.clone());
                    }
                }
            }
            let done = groups.len() >= g.limit
                && groups[..g.limit]
                    .iter()
                    .all(|x| x.hits.len() == g.group_size);
            if done || exhausted {
                groups.truncate(g.limit);
                if !req.with_payload {
                    for h in groups.iter_mut().flat_map(|x| x.hits.iter_mut()) {
                        h.payload = None;
                    }
                }
                let mut report = report;
                report.points = Vec::new();
                return Ok((groups, report));
            }
            candidates = candidates.saturating_mul(4).min(max);
        }
    }
}
