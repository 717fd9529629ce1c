//! Fusion of several ranked lists into one (Qdrant's `query: {"fusion": …}` over `prefetch`):
//!
//! - **RRF** (reciprocal rank fusion): a point scores `Σ 1 / (rank + k)` over the lists it is
//!   in, rank from 0, `k` = 2 by default as in Qdrant (`{"rrf": {"k": n}}` sets it).
//! - **DBSF** (distribution-based score fusion): each list's scores are mapped to [0, 1]-ish by
//!   `(s − (μ − 3σ)) / 6σ` (μ, σ: the list's mean and sample standard deviation; a list of one
//!   scores 0.5; equal scores all 0.5), then summed per point.
//!
//! Lists whose scores are distances (Euclid: smaller is closer) are negated first, so that in
//! every list larger is better. The fused list is sorted by the new score, best first, ties by
//! id; each point keeps the payload and vectors of its first appearance.

use std::collections::HashMap;

use crate::types::{PointId, ScoredPoint};

/// Qdrant's default RRF `k`.
pub const DEFAULT_RRF_K: usize = 2;

/// How lists are fused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fusion {
    /// Reciprocal rank fusion with this `k`.
    Rrf {
        /// Damps the weight of top ranks (Qdrant's default 2).
        k: usize,
    },
    /// Distribution-based score fusion.
    Dbsf,
}

/// One list to fuse: its points, best first, and whether a smaller score is better.
#[derive(Clone, Debug)]
pub struct Ranked {
    /// The points, best first.
    pub points: Vec<ScoredPoint>,
    /// True for distances (Euclid).
    pub smaller_is_better: bool,
}

fn distr_norm(scores: &mut [f32]) {
    match scores.len() {
        0 => {}
        1 => scores[0] = 0.5,
        n => {
            let mean = scores.iter().map(|s| f64::from(*s)).sum::<f64>() / n as f64;
            let var = scores
                .iter()
                .map(|s| (f64::from(*s) - mean).powi(2))
                .sum::<f64>()
                / (n as f64 - 1.0);
            let sd = var.sqrt();
            let (lo, hi) = (mean - 3.0 * sd, mean + 3.0 * sd);
            for s in scores.iter_mut() {
                *s = match hi > lo {
                    true => ((f64::from(*s) - lo) / (hi - lo)) as f32,
                    false => 0.5,
                };
            }
        }
    }
}

/// Fuses `lists` by `fusion`.
pub fn fuse(lists: Vec<Ranked>, fusion: Fusion) -> Vec<ScoredPoint> {
    let mut by_id: HashMap<PointId, ScoredPoint> = HashMap::new();
    for list in lists {
        let mut scores: Vec<f32> = match fusion {
            Fusion::Rrf { k } => (0..list.points.len())
                // In f64: no overflow for any k, and 1/(rank + k) stays distinct for large k.
                .map(|rank| (1.0 / (rank as f64 + k as f64)) as f32)
                .collect(),
            Fusion::Dbsf => {
                let mut s: Vec<f32> = list
                    .points
                    .iter()
                    .map(|p| match list.smaller_is_better {
                        true => -p.score,
                        false => p.score,
                    })
                    .collect();
                distr_norm(&mut s);
                s
            }
        };
        for (p, s) in list.points.into_iter().zip(scores.drain(..)) {
            by_id
                .entry(p.id)
                .and_modify(|q| q.score += s)
                .or_insert(ScoredPoint { score: s, ..p });
        }
    }
    let mut out: Vec<ScoredPoint> = by_id.into_values().collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: u64, score: f32) -> ScoredPoint {
        ScoredPoint {
            id: PointId::Num(id),
            version: 0,
            score,
            payload: None,
            vectors: None,
            sparse: Default::default(),
        }
    }

    fn ids(v: &[ScoredPoint]) -> Vec<(u64, f32)> {
        v.iter()
            .map(|x| match x.id {
                PointId::Num(n) => (n, x.score),
                _ => (u64::MAX, x.score),
            })
            .collect()
    }

    #[test]
    fn rrf_sums_reciprocal_ranks() {
        let a = Ranked {
            points: vec![p(1, 0.9), p(2, 0.8), p(3, 0.1)],
            smaller_is_better: false,
        };
        let b = Ranked {
            points: vec![p(3, 5.0), p(1, 9.0)],
            smaller_is_better: true,
        };
        let got = ids(&fuse(vec![a, b], Fusion::Rrf { k: 2 }));
        // 1: 1/2 + 1/3; 3: 1/4 + 1/2; 2: 1/3.
        assert_eq!(got.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 3, 2]);
        assert!((got[0].1 - (0.5 + 1.0 / 3.0)).abs() < 1e-6);
        assert!((got[1].1 - 0.75).abs() < 1e-6);
    }

    #[test]
    fn dbsf_normalises_each_list_by_three_deviations() {
        let a = Ranked {
            points: vec![p(1, 3.0), p(2, 1.0)],
            smaller_is_better: false,
        };
        let b = Ranked {
            points: vec![p(2, 7.0)],
            smaller_is_better: false,
        };
        let got = ids(&fuse(vec![a, b], Fusion::Dbsf));
        // List a: mean 2, sd √2: 1 → (3 − 2 + 3√2) / 6√2, 2 → (1 − 2 + 3√2) / 6√2; b: 0.5.
        let sd = 2f32.sqrt();
        let s1 = (1.0 + 3.0 * sd) / (6.0 * sd);
        let s2 = (-1.0 + 3.0 * sd) / (6.0 * sd) + 0.5;
        assert_eq!(got.iter().map(|x| x.0).collect::<Vec<_>>(), vec![2, 1]);
        assert!((got[0].1 - s2).abs() < 1e-5 && (got[1].1 - s1).abs() < 1e-5);
        // Distances are negated first: the nearer point normalises higher.
        let d = Ranked {
            points: vec![p(5, 1.0), p(6, 4.0)],
            smaller_is_better: true,
        };
        assert_eq!(ids(&fuse(vec![d], Fusion::Dbsf))[0].0, 5);
    }
}
