//! Recommendation by examples (Qdrant's `recommend` query): points like the positive examples
//! and unlike the negative ones.
//!
//! - `average_vector` (Qdrant's default): one search for `avg(positive)` with no negatives, else
//!   for `2·avg(positive) − avg(negative)`.
//! - `best_score`: each candidate scores `σ(max sim(c, positive))` when that beats its largest
//!   similarity to a negative, else `−σ(max sim(c, negative))`, with σ(x) = ½·(x / (1 + |x|) + 1);
//!   the answer carries these scores.
//! - `sum_scores`: `Σ sim(c, positive) − Σ sim(c, negative)`.
//!
//! `sim` is the collection's metric as "larger is closer" (dot product; cosine on normalised
//! vectors; negated squared L2), as in Qdrant. For `best_score` and `sum_scores` the candidates
//! are the union of each positive example's nearest `4 × (limit + offset)` points (at least 64
//! and `ef`; filter and `exact` as in the request; at most 16 384 in all), re-scored; with
//! negatives only, every point matching the filter is scored (an exact scan: the far side of
//! the examples is not reachable by a nearest search). The request's `score_threshold`
//! applies to the new score.

use std::collections::{HashMap, HashSet};

use crate::distance;
use crate::error::{Error, Result};
use crate::handle::CollectionHandle;
use crate::types::{Distance, PointId, ScoredPoint, ScrollRequest, SearchReport, SearchRequest};

/// How examples are combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RecommendStrategy {
    /// Search the average (Qdrant's default).
    #[default]
    AverageVector,
    /// Score each candidate by its best example.
    BestScore,
    /// Score each candidate by the sum over examples.
    SumScores,
}

/// A recommendation query: example vectors (of the searched `using` vector).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recommend {
    /// Vectors to be like (at least one unless there are negatives and the strategy scores
    /// by examples).
    pub positive: Vec<Vec<f32>>,
    /// Vectors to be unlike.
    pub negative: Vec<Vec<f32>>,
    /// How they are combined.
    pub strategy: RecommendStrategy,
}

/// Most examples in one recommendation.
pub const MAX_EXAMPLES: usize = 1_000;
/// Most candidates re-scored for `best_score` / `sum_scores` with positive examples (or the
/// answer window, when larger).
const MAX_CANDIDATES: usize = 16_384;
/// Points read per batch while scoring.
const SCAN_PAGE: usize = 1_024;

fn sigmoid(x: f32) -> f32 {
    0.5 * (x / (1.0 + x.abs()) + 1.0)
}

fn average(vs: &[Vec<f32>]) -> Vec<f32> {
    let mut out = vec![0.0f32; vs.first().map_or(0, Vec::len)];
    for v in vs {
        for (o, x) in out.iter_mut().zip(v) {
            *o += x;
        }
    }
    let n = vs.len().max(1) as f32;
    out.iter_mut().for_each(|o| *o /= n);
    out
}

impl CollectionHandle {
    /// Points recommended by `rec`'s examples: `req` gives the vector searched (`using`),
    /// filter, limit, offset, `ef`, `exact`, `score_threshold` and what to return; its `vector`
    /// is ignored. Example points themselves are not excluded here (the caller adds them to the
    /// filter, as Qdrant leaves example ids out).
    pub fn search_recommend(&self, req: &SearchRequest, rec: &Recommend) -> Result<SearchReport> {
        let examples = rec.positive.len() + rec.negative.len();
        if examples > MAX_EXAMPLES {
            return Err(Error::invalid(format!(
                "recommend: {examples} examples exceed the limit of {MAX_EXAMPLES}"
            )));
        }
        if rec.positive.is_empty()
            && (rec.strategy == RecommendStrategy::AverageVector || rec.negative.is_empty())
        {
            return Err(Error::invalid(
                "recommend.positive: at least one positive example is needed (or negatives with best_score or sum_scores)",
            ));
        }
        let config = self.config();
        let space = config.space_or_err(&req.using, "using")?;
        let metric = config.vectors[space].1.distance;
        let prep = |v: &Vec<f32>, at: String| -> Result<Vec<f32>> {
            self.check_vector(space, v, &at)?;
            let mut v = v.clone();
            if metric == Distance::Cosine {
                distance::normalize(&mut v);
            }
            Ok(v)
        };
        let pos = rec
            .positive
            .iter()
            .enumerate()
            .map(|(i, v)| prep(v, format!("recommend.positive[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        let neg = rec
            .negative
            .iter()
            .enumerate()
            .map(|(i, v)| prep(v, format!("recommend.negative[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        if rec.strategy == RecommendStrategy::AverageVector {
            let avg = average(&pos);
            let vector = match neg.is_empty() {
                true => avg,
                false => avg
                    .iter()
                    .zip(average(&neg))
                    .map(|(p, n)| p + p - n)
                    .collect(),
            };
            // Each example is within the bound; their combination can pass it (up to 3× the
            // norm): refused naming what the request gave, not the internal query.
            if let Some(squared) = distance::norm_past_bound(&vector) {
                return Err(Error::invalid(format!(
                    "recommend: the average_vector query (2 × mean of positive − mean of \
                     negative) has squared norm {squared:e}, above {:e}: use examples of smaller \
                     norm, or the best_score or sum_scores strategy",
                    crate::MAX_SQUARED_NORM
                )));
            }
            let mut r = req.clone();
            r.vector = vector;
            return self.search_report(&r);
        }
        let sim = |a: &[f32], b: &[f32]| distance::similarity(metric, a, b);
        let score = |v: &[f32]| -> f32 {
            match rec.strategy {
                RecommendStrategy::BestScore => {
                    let best = |xs: &[Vec<f32>]| {
                        xs.iter()
                            .map(|x| sim(v, x))
                            .fold(f32::NEG_INFINITY, f32::max)
                    };
                    let (p, n) = (best(&pos), best(&neg));
                    match p > n {
                        true => sigmoid(p),
                        false => -sigmoid(n),
                    }
                }
                _ => {
                    pos.iter().map(|x| sim(v, x)).sum::<f32>()
                        - neg.iter().map(|x| sim(v, x)).sum::<f32>()
                }
            }
        };
        let window = req.limit.saturating_add(req.offset);
        let max = self.max_result_window();
        let name = config.vectors[space].0.clone();
        let best_first =
            |a: &(f32, PointId), b: &(f32, PointId)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        let mut report = SearchReport::default();
        // (score, id) of the candidates.
        let mut scored: Vec<(f32, PointId)> = Vec::new();
        let add = |scored: &mut Vec<(f32, PointId)>, records: &[crate::types::Record]| {
            for r in records {
                if let Some(v) = r.vectors.as_ref().and_then(|vs| vs.get(&name)) {
                    let s = score(v);
                    // Sums of similarities can overflow f32 (or meet inf - inf): such a
                    // score is never returned, as in every search.
                    if s.is_finite() && req.score_threshold.is_none_or(|t| s >= t) {
                        scored.push((s, r.id));
                    }
                }
            }
            // Only the best `window` can be answered: keep memory bounded on long scans.
            if scored.len() > window.max(SCAN_PAGE).saturating_mul(4) {
                scored.sort_by(best_first);
                scored.truncate(window);
            }
        };
        if pos.is_empty() {
            // Only negatives: the answer is the far side of the examples, which no nearest
            // search reaches, so every point that matches the filter is scored.
            let mut page = ScrollRequest {
                offset: None,
                limit: SCAN_PAGE.min(max).max(1),
                filter: req.filter.clone(),
                with_payload: false,
                with_vector: true,
            };
            loop {
                let p = self.scroll(&page)?;
                add(&mut scored, &p.points);
                match p.next_offset {
                    Some(o) => page.offset = Some(o),
                    None => break,
                }
            }
        } else {
            // Candidates: each positive example's nearest points (ids only), then their
            // vectors read once.
            let k = window
                .saturating_mul(4)
                .max(req.ef.unwrap_or(0))
                .max(64)
                .min(max);
            let mut c = req.clone();
            c.limit = k;
            c.offset = 0;
            c.with_vector = false;
            c.with_payload = false;
            c.score_threshold = None;
            let cap = MAX_CANDIDATES.max(k);
            let mut seen: HashSet<PointId> = HashSet::new();
            let mut ids: Vec<PointId> = Vec::new();
            for seed in &rec.positive {
                if ids.len() >= cap {
                    break;
                }
                c.vector = seed.clone();
                let r = self.search_report(&c)?;
                report.cold_searched += r.cold_searched;
                report.cold_skipped += r.cold_skipped;
                report.cold_left_out += r.cold_left_out;
                ids.extend(r.points.iter().map(|p| p.id).filter(|id| seen.insert(*id)));
            }
            ids.truncate(cap);
            for chunk in ids.chunks(SCAN_PAGE) {
                add(&mut scored, &self.get(chunk, false, true)?);
            }
        }
        scored.sort_by(best_first);
        let top: Vec<(f32, PointId)> = scored
            .into_iter()
            .skip(req.offset)
            .take(req.limit)
            .collect();
        // The answer's payloads and vectors, as asked (a point deleted meanwhile drops out).
        let ids: Vec<PointId> = top.iter().map(|t| t.1).collect();
        let mut records: HashMap<PointId, crate::types::Record> = self
            .get(&ids, req.with_payload, req.with_vector)?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        report.points = top
            .into_iter()
            .filter_map(|(score, id)| {
                let r = records.remove(&id)?;
                Some(ScoredPoint {
                    id,
                    version: r.version,
                    score,
                    payload: r.payload,
                    vectors: r.vectors,
                    sparse: r.sparse,
                })
            })
            .collect();
        Ok(report)
    }
}
