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
//! are the union of each positive example's nearest `candidates` points (filter, `ef` and
//! `exact` as in the request), re-scored; the request's `score_threshold` applies to the new
//! score.

use std::collections::HashMap;

use crate::distance;
use crate::error::{Error, Result};
use crate::handle::CollectionHandle;
use crate::types::{Distance, PointId, ScoredPoint, SearchReport, SearchRequest};

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
        let k = window
            .saturating_mul(4)
            .max(req.ef.unwrap_or(0))
            .max(64)
            .min(max);
        let name = config.vectors[space].0.clone();
        let mut c = req.clone();
        c.limit = k;
        c.offset = 0;
        c.with_vector = true;
        c.score_threshold = None;
        let mut report = SearchReport::default();
        let mut found: HashMap<PointId, ScoredPoint> = HashMap::new();
        // Negatives are searched too when there is no positive: their far side is not
        // reachable by a nearest search, so the candidates are then the best of the rest.
        let seeds = match pos.is_empty() {
            true => &rec.negative,
            false => &rec.positive,
        };
        for seed in seeds {
            c.vector = seed.clone();
            let r = self.search_report(&c)?;
            report.cold_searched += r.cold_searched;
            report.cold_skipped += r.cold_skipped;
            report.cold_left_out += r.cold_left_out;
            for p in r.points {
                found.entry(p.id).or_insert(p);
            }
        }
        let mut scored: Vec<ScoredPoint> = found
            .into_values()
            .filter_map(|mut p| {
                let v = p.vectors.as_ref()?.get(&name)?;
                p.score = score(v);
                Some(p)
            })
            .filter(|p| req.score_threshold.is_none_or(|t| p.score >= t))
            .collect();
        scored.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        report.points = scored
            .into_iter()
            .skip(req.offset)
            .take(req.limit)
            .map(|mut p| {
                if !req.with_vector {
                    p.vectors = None;
                }
                p
            })
            .collect();
        Ok(report)
    }
}
