//! Maximal marginal relevance: re-ranks a search's nearest candidates so that each next pick is
//! relevant to the query and unlike the points already picked (Carbonell & Goldstein, 1998).
//!
//! Qdrant's semantics, which Qdrant clients and frameworks rely on: `diversity` ∈ [0, 1] (default
//! 0.5) gives λ = 1 − diversity; the first pick is the most relevant candidate; each next pick
//! maximises `λ·sim(q, c) − (1 − λ)·max sim(c, s)` over the picked `s`; the answer keeps each
//! point's original score. Similarity is the collection's metric as "larger is closer" (the
//! negated internal distance: dot product, cosine similarity, negated squared L2), so both terms
//! are on one scale.

use crate::distance;
use crate::types::Distance;

/// MMR parameters of a query.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mmr {
    /// Balance of diversity against relevance, in [0, 1]: 0 ranks by relevance only.
    pub diversity: f32,
    /// How many nearest candidates are re-ranked (at least `limit + offset` are useful).
    pub candidates_limit: usize,
}

impl Mmr {
    /// Qdrant's default diversity.
    pub const DEFAULT_DIVERSITY: f32 = 0.5;
    /// Qdrant's bound on `candidates_limit` (the similarity matrix grows with its square).
    pub const MAX_CANDIDATES: usize = 16_384;
}

/// Picks up to `limit` of `vectors` by MMR against `query` (both in the stored form: normalised
/// for Cosine), returning their indexes in pick order. Pairwise similarities are computed as
/// needed, each at most once.
pub(crate) fn select(
    metric: Distance,
    query: &[f32],
    vectors: &[&[f32]],
    diversity: f32,
    limit: usize,
) -> Vec<usize> {
    let sim = |a: &[f32], b: &[f32]| -distance::distance(metric, a, b);
    let lambda = 1.0 - diversity;
    let relevance: Vec<f32> = vectors.iter().map(|v| sim(query, v)).collect();
    let n = vectors.len();
    let mut picked: Vec<usize> = Vec::with_capacity(limit.min(n));
    // For each candidate, its largest similarity to a picked point so far.
    let mut nearest_picked = vec![f32::NEG_INFINITY; n];
    let mut left: Vec<usize> = (0..n).collect();
    while picked.len() < limit && !left.is_empty() {
        let score = |i: usize| match picked.is_empty() {
            true => relevance[i],
            false => lambda * relevance[i] - (1.0 - lambda) * nearest_picked[i],
        };
        // Best score; ties go to the earlier candidate (the better search rank).
        let (at, _) = left
            .iter()
            .enumerate()
            .fold(None::<(usize, f32)>, |best, (at, &i)| {
                let s = score(i);
                match best {
                    Some((_, b)) if b >= s || s.is_nan() => best,
                    _ => Some((at, s)),
                }
            })
            .expect("left is not empty");
        let chosen = left.remove(at);
        picked.push(chosen);
        for &i in &left {
            let s = sim(vectors[i], vectors[chosen]);
            if s > nearest_picked[i] {
                nearest_picked[i] = s;
            }
        }
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The formula written out by brute force over every remaining candidate.
    fn reference(metric: Distance, q: &[f32], vs: &[Vec<f32>], div: f32, k: usize) -> Vec<usize> {
        let sim = |a: &[f32], b: &[f32]| -distance::distance(metric, a, b);
        let mut picked: Vec<usize> = Vec::new();
        while picked.len() < k.min(vs.len()) {
            let mut best: Option<(usize, f32)> = None;
            for i in (0..vs.len()).filter(|i| !picked.contains(i)) {
                let rel = sim(q, &vs[i]);
                let s = match picked.is_empty() {
                    true => rel,
                    false => {
                        let m = picked
                            .iter()
                            .map(|&p| sim(&vs[i], &vs[p]))
                            .fold(f32::NEG_INFINITY, f32::max);
                        (1.0 - div) * rel - div * m
                    }
                };
                if best.is_none_or(|(_, b)| s > b) {
                    best = Some((i, s));
                }
            }
            picked.push(best.expect("ok").0);
        }
        picked
    }

    #[test]
    fn zero_diversity_is_relevance_order() {
        let q = [0.0, 0.0];
        let vs: Vec<Vec<f32>> = vec![vec![3.0, 0.0], vec![1.0, 0.0], vec![2.0, 0.0]];
        let refs: Vec<&[f32]> = vs.iter().map(Vec::as_slice).collect();
        assert_eq!(select(Distance::Euclid, &q, &refs, 0.0, 3), vec![1, 2, 0]);
    }

    #[test]
    fn diversity_skips_near_duplicates() {
        // Two near-copies of the best match and one different, slightly less relevant point:
        // with diversity the different one is picked second.
        let q = [1.0, 0.0];
        let vs: Vec<Vec<f32>> = vec![vec![1.0, 0.0], vec![0.999, 0.01], vec![0.8, 0.6]];
        let refs: Vec<&[f32]> = vs.iter().map(Vec::as_slice).collect();
        assert_eq!(select(Distance::Dot, &q, &refs, 0.0, 2), vec![0, 1]);
        assert_eq!(select(Distance::Dot, &q, &refs, 0.7, 2), vec![0, 2]);
        assert_eq!(select(Distance::Dot, &q, &refs, 0.7, 9), vec![0, 2, 1]);
    }

    #[test]
    fn matches_the_brute_force_formula() {
        let mut rng = crate::SplitMix64::new(7);
        for round in 0..200 {
            let dim = 1 + round % 5;
            let n = round % 23;
            let metric = [Distance::Cosine, Distance::Euclid, Distance::Dot][round % 3];
            let mut make = |_| {
                let mut v: Vec<f32> = (0..dim).map(|_| rng.next_f32() * 2.0 - 1.0).collect();
                if metric == Distance::Cosine {
                    distance::normalize(&mut v);
                }
                v
            };
            let q = make(0);
            let vs: Vec<Vec<f32>> = (0..n).map(&mut make).collect();
            let refs: Vec<&[f32]> = vs.iter().map(Vec::as_slice).collect();
            let div = (round % 11) as f32 / 10.0;
            let k = round % 7;
            assert_eq!(
                select(metric, &q, &refs, div, k),
                reference(metric, &q, &vs, div, k),
                "round {round}"
            );
        }
    }
}
