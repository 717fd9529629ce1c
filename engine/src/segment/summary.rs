//! Segment summaries: up to [`MAX_BALLS`] balls (centre, radius, row count) that together
//! contain every row's vector, so a search can bound the best distance any row of a segment can
//! have without reading the segment — and skip a cold segment that cannot beat the results it
//! already has.
//!
//! ```text
//! build (writing a segment's meta file): k-means on ≤ 2,048 sampled rows (seeded by the
//!   segment id: same segment, same summary) → every row to its nearest centre → radius =
//!   max ‖v − c‖ in f64, rounded up to the next f32 → balls with rows
//! bound (per query): min over balls of
//!   Euclid ‖q−v‖²  ≥ max(0, ‖q−c‖ − r)²
//!   Dot    −⟨q,v⟩  ≥ −(⟨q,c⟩ + ‖q‖·r)          (Cauchy–Schwarz on v − c)
//!   Cosine 1−⟨q,v⟩ ≥ 1 − (⟨q,c⟩ + ‖q‖·r)       (q and v normalised)
//! ```
//! Bounds are computed in f64 from the stored f32 centre and radius, and [`Summary::can_beat`]
//! allows for the rounding error of the f32 SIMD kernels that compute the real distances, so a
//! segment is skipped only when none of its rows could enter the results.

use crate::SplitMix64;
use crate::codec::{DecodeError, Reader, Writer};
use crate::distance;
use crate::types::Distance;

/// Most balls in a summary.
pub(crate) const MAX_BALLS: usize = 16;
/// Rows k-means runs on (the assignment pass covers every row).
const SAMPLE: usize = 2_048;
const ITERATIONS: usize = 8;
/// Allowance for the SIMD kernels' rounding (twice `distance::TOLERANCE`).
const SLACK: f64 = 2.0 * distance::TOLERANCE;

/// One ball: every row assigned to it lies within `radius` of `centre`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Ball {
    pub(crate) centre: Vec<f32>,
    pub(crate) radius: f32,
    pub(crate) rows: u32,
}

/// The balls of one segment.
#[derive(Clone, Debug, PartialEq, Default)]
pub(crate) struct Summary {
    pub(crate) balls: Vec<Ball>,
}

fn l2_f64(a: &[f32], b: &[f32]) -> f64 {
    distance::scalar::l2sq(a, b).sqrt()
}

fn norm_f64(a: &[f32]) -> f64 {
    distance::scalar::dot(a, a).sqrt()
}

/// Rounds a non-negative f64 up to an f32 that is at least as large.
fn round_up(x: f64) -> f32 {
    let f = x as f32;
    if (f as f64) < x { f.next_up() } else { f }
}

impl Summary {
    /// Builds the summary of `rows` vectors of `dim` (row-major), deterministically from
    /// `seed`. Empty when there are no rows or a vector is not finite.
    pub(crate) fn build(vectors: &[f32], dim: usize, seed: u64) -> Summary {
        let n = vectors.len().checked_div(dim).unwrap_or(0);
        if n == 0 || vectors.iter().any(|x| !x.is_finite()) {
            return Summary::default();
        }
        let row = |i: usize| &vectors[i * dim..(i + 1) * dim];
        let sample: Vec<usize> = if n <= SAMPLE {
            (0..n).collect()
        } else {
            (0..SAMPLE).map(|i| i * n / SAMPLE).collect()
        };
        let k = MAX_BALLS.min(sample.len());
        let mut rng = SplitMix64::new(seed);
        // k-means++ seeding.
        let mut centres: Vec<Vec<f32>> =
            vec![row(sample[rng.below(sample.len() as u64) as usize]).to_vec()];
        let mut nearest: Vec<f32> = sample
            .iter()
            .map(|&i| distance::l2sq(row(i), &centres[0]))
            .collect();
        while centres.len() < k {
            let total: f64 = nearest.iter().map(|d| *d as f64).sum();
            if total <= 0.0 {
                break; // every sampled row sits on a centre already
            }
            let mut pick = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
            let mut chosen = sample.len() - 1;
            for (j, d) in nearest.iter().enumerate() {
                pick -= *d as f64;
                if pick <= 0.0 {
                    chosen = j;
                    break;
                }
            }
            let c = row(sample[chosen]).to_vec();
            for (j, &i) in sample.iter().enumerate() {
                nearest[j] = nearest[j].min(distance::l2sq(row(i), &c));
            }
            centres.push(c);
        }
        let closest = |v: &[f32], centres: &[Vec<f32>]| {
            let mut best = (0usize, f32::INFINITY);
            for (c, centre) in centres.iter().enumerate() {
                let d = distance::l2sq(v, centre);
                if d < best.1 {
                    best = (c, d);
                }
            }
            best.0
        };
        for _ in 0..ITERATIONS {
            let mut sums = vec![vec![0f64; dim]; centres.len()];
            let mut counts = vec![0u64; centres.len()];
            for &i in &sample {
                let c = closest(row(i), &centres);
                counts[c] += 1;
                for (s, x) in sums[c].iter_mut().zip(row(i)) {
                    *s += *x as f64;
                }
            }
            for (c, centre) in centres.iter_mut().enumerate() {
                if counts[c] > 0 {
                    for (x, s) in centre.iter_mut().zip(&sums[c]) {
                        *x = (*s / counts[c] as f64) as f32;
                    }
                }
            }
        }
        let mut radius = vec![0f64; centres.len()];
        let mut counts = vec![0u32; centres.len()];
        for i in 0..n {
            let c = closest(row(i), &centres);
            counts[c] += 1;
            radius[c] = radius[c].max(l2_f64(row(i), &centres[c]));
        }
        let balls: Vec<Ball> = centres
            .into_iter()
            .zip(radius)
            .zip(counts)
            .filter(|(_, rows)| *rows > 0)
            .map(|((centre, r), rows)| Ball {
                centre,
                radius: round_up(r),
                rows,
            })
            .collect();
        if balls.iter().any(|b| !b.radius.is_finite()) {
            return Summary::default();
        }
        Summary { balls }
    }

    /// A lower bound of the internal distance (lower is closer) from `q` (normalised for
    /// Cosine) to any row, and the magnitude its SIMD computation can err by. `None` without
    /// balls.
    pub(crate) fn lower_bound(&self, metric: Distance, q: &[f32]) -> Option<(f64, f64)> {
        let qn = norm_f64(q);
        self.balls
            .iter()
            .map(|b| {
                let r = b.radius as f64;
                match metric {
                    Distance::Euclid => {
                        let lb = (l2_f64(q, &b.centre) - r).max(0.0);
                        (lb * lb, lb * lb)
                    }
                    Distance::Dot | Distance::Cosine => {
                        let best = distance::scalar::dot(q, &b.centre) + qn * r;
                        let mag = qn * (norm_f64(&b.centre) + r);
                        let lb = match metric {
                            Distance::Dot => -best,
                            _ => 1.0 - best,
                        };
                        (lb, mag)
                    }
                }
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
    }

    /// Per ball, an upper bound of the internal distance from `q` to each of its rows, with
    /// the number of rows it holds. A guide for choosing which segments to read first, never
    /// for skipping: rows may be deleted or filtered out.
    pub(crate) fn upper_bounds(&self, metric: Distance, q: &[f32]) -> Vec<(f64, u32)> {
        let qn = norm_f64(q);
        self.balls
            .iter()
            .map(|b| {
                let r = b.radius as f64;
                let ub = match metric {
                    Distance::Euclid => (l2_f64(q, &b.centre) + r).powi(2),
                    Distance::Dot => -(distance::scalar::dot(q, &b.centre) - qn * r),
                    Distance::Cosine => 1.0 - (distance::scalar::dot(q, &b.centre) - qn * r),
                };
                (ub, b.rows)
            })
            .collect()
    }

    /// False only when no row can have a computed distance `<= kth` (the current k-th best):
    /// the segment can be skipped without changing the results.
    pub(crate) fn can_beat(&self, metric: Distance, q: &[f32], kth: f32) -> bool {
        match self.lower_bound(metric, q) {
            None => true,
            Some((lb, mag)) => lb - SLACK * (mag + 1.0) <= kth as f64 || !lb.is_finite(),
        }
    }

    /// Encodes: u32 ball count, u32 dim, then per ball f32 centre\[dim\], f32 radius, u32 rows.
    pub(crate) fn encode(&self, dim: usize) -> Vec<u8> {
        let mut w = Writer::with_capacity(8 + self.balls.len() * (dim * 4 + 8));
        w.u32(self.balls.len() as u32);
        w.u32(dim as u32);
        for b in &self.balls {
            w.f32s(&b.centre);
            w.bytes(&b.radius.to_le_bytes());
            w.u32(b.rows);
        }
        w.buf
    }

    /// Decodes and checks (ball count, dimension, finite values, rows adding up to at most
    /// `rows`: only rows with a vector in the summarised space count).
    pub(crate) fn decode(b: &[u8], dim: usize, rows: u32) -> Result<Summary, DecodeError> {
        let mut r = Reader::new(b);
        let n = r.u32("summary ball count")? as usize;
        let d = r.u32("summary dimension")? as usize;
        if n > MAX_BALLS || d != dim {
            return Err(r.err(format!(
                "summary of {n} balls of dimension {d} (segment: {dim})"
            )));
        }
        let mut balls = Vec::with_capacity(n);
        let mut total = 0u64;
        for _ in 0..n {
            let centre = r.f32s(dim, "summary centre")?;
            let radius =
                f32::from_le_bytes(r.take(4, "summary radius")?.try_into().expect("4 bytes"));
            let count = r.u32("summary rows")?;
            if !radius.is_finite() || radius < 0.0 || centre.iter().any(|x| !x.is_finite()) {
                return Err(r.err("summary ball with a non-finite value"));
            }
            total += count as u64;
            balls.push(Ball {
                centre,
                radius,
                rows: count,
            });
        }
        if r.remaining() != 0 || total > rows as u64 {
            return Err(r.err("summary length or row count does not match the segment"));
        }
        Ok(Summary { balls })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        #[test]
        fn every_row_is_within_the_bound_and_the_codec_round_trips(
            dim in 1usize..12,
            seed in any::<u64>(),
            raw in any::<u64>(),
            qs in prop::collection::vec(prop::collection::vec(-1e3f32..1e3, 12), 1..4),
        ) {
            let mut rng = SplitMix64::new(raw);
            let n = 1 + rng.below(300) as usize;
            let spread = [1e-3f32, 1.0, 100.0][rng.below(3) as usize];
            let v: Vec<f32> = (0..n * dim).map(|_| (rng.next_f32() - 0.5) * spread).collect();
            let s = Summary::build(&v, dim, seed);
            prop_assert!(!s.balls.is_empty() && s.balls.len() <= MAX_BALLS);
            prop_assert_eq!(s.balls.iter().map(|b| b.rows as usize).sum::<usize>(), n);
            prop_assert_eq!(Summary::decode(&s.encode(dim), dim, n as u32).expect("decode"), s.clone());
            prop_assert_eq!(Summary::build(&v, dim, seed), s.clone(), "deterministic");
            for q in &qs {
                for metric in [Distance::Euclid, Distance::Dot, Distance::Cosine] {
                    let mut q = q[..dim].to_vec();
                    let mut rows = v.clone();
                    if metric == Distance::Cosine {
                        distance::normalize(&mut q);
                        for r in rows.chunks_mut(dim) {
                            distance::normalize(r);
                        }
                    }
                    let s = Summary::build(&rows, dim, seed);
                    let best = rows
                        .chunks(dim)
                        .map(|r| distance::distance(metric, &q, r))
                        .fold(f32::INFINITY, f32::min);
                    // The best row could always beat a k-th best equal to its distance...
                    prop_assert!(s.can_beat(metric, &q, best), "{metric:?} best {best}");
                    // ...and the bound never exceeds a true (f64) distance by more than rounding.
                    let (lb, _) = s.lower_bound(metric, &q).expect("balls");
                    for r in rows.chunks(dim) {
                        let exact = match metric {
                            Distance::Euclid => distance::scalar::l2sq(&q, r),
                            Distance::Dot => -distance::scalar::dot(&q, r),
                            Distance::Cosine => 1.0 - distance::scalar::dot(&q, r),
                        };
                        prop_assert!(lb <= exact + 1e-6 * (exact.abs() + 1.0), "{metric:?}: bound {lb} > {exact}");
                    }
                }
            }
        }

        #[test]
        fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200), dim in 1usize..5, rows in 0u32..50) {
            let _ = Summary::decode(&bytes, dim, rows);
        }
    }

    #[test]
    fn far_clusters_are_bounded_away_and_bad_vectors_give_no_summary() {
        let dim = 4;
        let v: Vec<f32> = (0..100)
            .flat_map(|i| [100.0 + (i % 7) as f32 * 0.01, 100.0, 100.0, 100.0])
            .collect();
        let s = Summary::build(&v, dim, 1);
        let q = [0.0f32; 4];
        let (lb, _) = s.lower_bound(Distance::Euclid, &q).expect("balls");
        assert!(lb > 39_000.0, "{lb}");
        assert!(!s.can_beat(Distance::Euclid, &q, 1.0));
        assert!(s.can_beat(Distance::Euclid, &q, 50_000.0));
        assert!(Summary::build(&[1.0, f32::NAN], 2, 0).balls.is_empty());
        assert!(Summary::build(&[], 2, 0).balls.is_empty());
        assert!(Summary::default().can_beat(Distance::Dot, &q, f32::NEG_INFINITY));
    }
}
