//! Sparse search: the top hits of a sparse query by dot product (optionally IDF-weighted).
//!
//! ```text
//! idf modifier? ─▶ stats pass: live rows with a vector (N) and per query dim those holding it
//!                  (df), over the memtable and every segment ─▶ weights × ln((N−df+.5)/(df+.5)+1)
//! search pass:  memtable (exact, under its lock) ─┐
//!               each segment: its sparse section's ├▶ newest version per id ─▶ offset, limit,
//!               postings, rows allowed by liveness │   score_threshold ─▶ payloads / vectors
//!               and the filter ────────────────────┘
//! ```
//! Only points sharing at least one dimension with the query are hits (as in Qdrant). The two
//! passes take separate views: a write landing between them changes the IDF weights by its own
//! contribution only, never what is searched.

use super::CollectionHandle;
use crate::error::{Error, Result};
use crate::read::{Found, ReadSource, newest, split_named};
use crate::segment::format::{Sec, SectionSet, common};
use crate::sparse::{Modifier, SparseVector, idf};
use crate::types::{ScoredPoint, SearchReport, SearchRequest};

impl CollectionHandle {
    /// The best points for the sparse `query` in the sparse vector `req.using`; `req`'s limit,
    /// offset, filter, score threshold (a minimum), payload and vector choices apply (its
    /// dense `vector`, `ef` and `exact` do not: sparse search is always exact).
    pub fn search_sparse(&self, req: &SearchRequest, query: &SparseVector) -> Result<SearchReport> {
        self.check_live()?;
        let config = self.coll.config();
        let space = config.sparse_space_or_err(&req.using, "using")?;
        let name = &config.sparse[space].0;
        let window = req.limit.saturating_add(req.offset);
        let max = self.inner.opts().max_result_window;
        if window > max {
            return Err(Error::invalid(format!(
                "limit + offset must be at most {max}, got {window}"
            )));
        }
        SparseVector::check(&query.indices, &query.values)
            .map_err(|e| Error::invalid(format!("query: {e}")))?;
        if req.limit == 0 || query.is_empty() {
            return Ok(SearchReport::default());
        }
        let filter = req.filter.as_ref();
        self.check_filter(filter)?;
        let hint = self.coll.hint();
        let cache = self.inner.columns();
        let (wp, wv) = (req.with_payload, req.with_vector);
        let mut weights = query.values.clone();
        if config.sparse[space].1.modifier == Modifier::Idf {
            let (n, df) = self.sparse_stats(space, &query.indices)?;
            for (w, df) in weights.iter_mut().zip(df) {
                *w *= idf(n as f64, df as f64);
            }
        }
        self.deadline.check("search")?;
        let mut found: Vec<Found> = Vec::new();
        let views = {
            let s = self.coll.sources();
            for (row, score) in s
                .mem
                .sparse_search(space, &query.indices, &weights, window, filter)
            {
                found.push(s.mem.found(row, -score, wp, wv)?);
            }
            s.views(true)
        };
        for mut v in views {
            let Some(j) = v.seg.meta.layout.sparse_index(name) else {
                continue;
            };
            self.deadline.check("search")?;
            let layout = &v.seg.meta.layout;
            let mut need = SectionSet::EMPTY
                .with(layout.sparse_sec(j))
                .union(v.seg.filter_sections(filter));
            if wp {
                need = need.with(common(Sec::PayloadOffsets));
            }
            if wv {
                need = need.union(crate::segment::compaction_sections(layout));
            }
            let body = self.inner.body_for(&v.seg, hint, need)?;
            v.body = Some(std::sync::Arc::clone(&body));
            let view = body
                .sparse_view(j)
                .ok_or_else(|| crate::segment::not_resident(v.seg.id()))?;
            let prepared = v
                .seg
                .prepare(Some(&body), filter, cache, v.dead.as_deref())?;
            let hits = view.top_k(&query.indices, &weights, window, &mut |r| {
                prepared.allows(r)
            });
            drop(prepared);
            for (row, score) in hits {
                found.push(v.found(row, -score, wp, wv)?);
            }
        }
        let mut hits = newest(found);
        // A sum of finite products can still overflow f32: such a score is not a number a
        // client can use, and it would rank first. Never returned (as dense searches do).
        hits.retain(|f| f.dist.is_finite());
        hits.sort_by(|a, b| a.dist.total_cmp(&b.dist).then(a.id.cmp(&b.id)));
        let mut rows: Vec<Found> = hits
            .into_iter()
            .skip(req.offset)
            .take(req.limit)
            .filter(|f| req.score_threshold.is_none_or(|t| -f.dist >= t))
            .collect();
        self.inner.load_rows(&mut rows, hint, wp, wv)?;
        let points = rows
            .into_iter()
            .map(|f| {
                let (payload, vectors) = f.materialize(wp, wv)?;
                let (vectors, sparse) = split_named(&config, vectors);
                Ok(ScoredPoint {
                    id: f.id,
                    version: f.version,
                    score: -f.dist,
                    payload,
                    vectors,
                    sparse,
                })
            })
            .collect::<Result<_>>()?;
        Ok(SearchReport {
            points,
            ..SearchReport::default()
        })
    }

    /// Live points with a vector in sparse space `space`, and per dimension of `dims` those
    /// holding it, over the memtable and every segment (for the idf modifier).
    fn sparse_stats(&self, space: usize, dims: &[u32]) -> Result<(u64, Vec<u64>)> {
        let config = self.coll.config();
        let name = &config.sparse[space].0;
        let hint = self.coll.hint();
        let cache = self.inner.columns();
        let (mut n, mut df, views) = {
            let s = self.coll.sources();
            let (n, df) = s.mem.sparse_stats(space, dims);
            (n, df, s.views(true))
        };
        for v in views {
            let Some(j) = v.seg.meta.layout.sparse_index(name) else {
                continue;
            };
            self.deadline.check("search")?;
            let need = SectionSet::EMPTY.with(v.seg.meta.layout.sparse_sec(j));
            let body = self.inner.body_for(&v.seg, hint, need)?;
            let view = body
                .sparse_view(j)
                .ok_or_else(|| crate::segment::not_resident(v.seg.id()))?;
            let live = v.seg.prepare(Some(&body), None, cache, v.dead.as_deref())?;
            n += view.count_vectors(&mut |r| live.allows(r));
            for (k, d) in dims.iter().enumerate() {
                df[k] += view.df(*d, &mut |r| live.allows(r));
            }
        }
        Ok((n, df))
    }
}
