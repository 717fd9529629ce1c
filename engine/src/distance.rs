//! Distance kernels over `f32`, through `simsimd` (runtime dispatch: AVX-512, AVX2, NEON…).
//!
//! Internally every metric is a *distance*: lower is closer.
//!
//! | metric | stored vector | distance             | reported score        |
//! |--------|---------------|----------------------|-----------------------|
//! | Cosine | normalised    | `1 - dot(q, v)`      | `1 - d` (cosine sim.) |
//! | Euclid | as given      | `‖q - v‖²`           | `sqrt(d)` (L2)        |
//! | Dot    | as given      | `-dot(q, v)`         | `-d` (dot product)    |
//!
//! [`scalar`] is a plain-Rust reference used by tests and benches only; the property tests
//! check that the SIMD kernels agree with it (see [`TOLERANCE`]).

use simsimd::SpatialSimilarity;

use crate::types::Distance;

/// Relative tolerance of SIMD against the f64 scalar reference: `|simd - ref| <= TOLERANCE *
/// (magnitude + 1)` where magnitude is `Σ|aᵢ·bᵢ|` (dot) or `Σ(aᵢ-bᵢ)²` (L2). SIMD kernels
/// accumulate in f32 lanes in another order than a sequential loop; this bound holds for
/// dimensions up to 65,536 with room to spare.
pub const TOLERANCE: f64 = 1e-4;

/// Dot product.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    f32::dot(a, b).unwrap_or_else(|| scalar::dot(a, b)) as f32
}

/// Squared Euclidean distance.
#[inline]
pub fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    f32::l2sq(a, b).unwrap_or_else(|| scalar::l2sq(a, b)) as f32
}

/// The internal distance (lower is closer) of `q` to stored vector `v`: `+inf` (last, and
/// never returned: see `CollectionHandle::search_report`) where it is not a finite number,
/// which only vectors stored before [`crate::MAX_SQUARED_NORM`] was enforced can cause.
#[inline]
pub fn distance(metric: Distance, q: &[f32], v: &[f32]) -> f32 {
    finite_or_last(match metric {
        Distance::Cosine => 1.0 - dot(q, v),
        Distance::Euclid => l2sq(q, v),
        Distance::Dot => -dot(q, v),
    })
}

/// `v`'s squared norm when it is past [`crate::MAX_SQUARED_NORM`] (or overflows f32: `inf`),
/// else `None`: the one check of the norm contract.
pub(crate) fn norm_past_bound(v: &[f32]) -> Option<f32> {
    let squared = dot(v, v);
    (squared.is_nan() || f64::from(squared) > crate::MAX_SQUARED_NORM).then_some(squared)
}

/// `d`, or `+inf` when `d` is NaN or infinite: a distance that ranks after every real one.
#[inline(always)]
pub fn finite_or_last(d: f32) -> f32 {
    if d.is_finite() { d } else { f32::INFINITY }
}

/// Similarity as Qdrant scores example-based queries ("larger is closer"): the dot product
/// (Cosine on normalised vectors, Dot) or the negated squared L2 distance (Euclid).
#[inline]
pub fn similarity(metric: Distance, q: &[f32], v: &[f32]) -> f32 {
    match metric {
        Distance::Cosine | Distance::Dot => dot(q, v),
        Distance::Euclid => -l2sq(q, v),
    }
}

/// Asks the CPU to bring `v` into its caches ahead of a distance computation that would
/// otherwise wait for it: a graph walk touches vectors in an order no hardware prefetcher can
/// guess, and a miss costs more than the distance itself. A hint only: no effect on results.
#[inline(always)]
pub fn prefetch<T>(v: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // Up to 8 cache lines (128 floats): enough for the walk to overlap the misses.
        let lines = std::mem::size_of_val(v).div_ceil(64).min(8);
        let p = v.as_ptr().cast::<i8>();
        for i in 0..lines {
            // SAFETY: SSE is part of the x86_64 baseline, and a prefetch is a hint that never
            // faults, whatever the address (`wrapping_add` keeps the pointer arithmetic defined).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(i * 64)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// Converts an internal distance to the score reported to users.
#[inline]
pub fn score(metric: Distance, d: f32) -> f32 {
    match metric {
        Distance::Cosine => 1.0 - d,
        Distance::Euclid => d.max(0.0).sqrt(),
        Distance::Dot => -d,
    }
}

/// Normalises `v` in place to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let n = dot(v, v).sqrt();
    if n > 0.0 && n.is_finite() {
        let inv = 1.0 / n;
        v.iter_mut().for_each(|x| *x *= inv);
    }
}

/// Plain-Rust reference kernels, accumulating in f64. For tests and benches; never on a hot path.
pub mod scalar {
    /// Dot product in f64.
    pub fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }
    /// Squared L2 distance in f64.
    pub fn l2sq(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| {
                let d = *x as f64 - *y as f64;
                d * d
            })
            .sum()
    }
    /// Dot product in an f32 accumulator: the naive loop benches compare against.
    pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        let mut s = 0.0f32;
        for i in 0..a.len() {
            s += a[i] * b[i];
        }
        s
    }
    /// Squared L2 in an f32 accumulator: the naive loop benches compare against.
    pub fn l2sq_f32(a: &[f32], b: &[f32]) -> f32 {
        let mut s = 0.0f32;
        for i in 0..a.len() {
            let d = a[i] - b[i];
            s += d * d;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vecs(max_dim: usize) -> impl Strategy<Value = (Vec<f32>, Vec<f32>, usize)> {
        (1..=max_dim, 0usize..4).prop_flat_map(|(dim, skew)| {
            // `skew` extra leading elements make the slices start at unaligned addresses.
            let n = dim + skew;
            (
                prop::collection::vec(-100.0f32..100.0, n),
                prop::collection::vec(-100.0f32..100.0, n),
                Just(skew),
            )
        })
    }

    fn close(simd: f64, reference: f64, magnitude: f64) -> bool {
        (simd - reference).abs() <= TOLERANCE * (magnitude + 1.0)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn simd_matches_scalar((a, b, skew) in vecs(4096)) {
            let (a, b) = (&a[skew..], &b[skew..]);
            let mag_dot: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 * *y as f64).abs()).sum();
            let want_dot = scalar::dot(a, b);
            prop_assert!(close(dot(a, b) as f64, want_dot, mag_dot), "dot {} vs {}", dot(a, b), want_dot);
            let want_l2 = scalar::l2sq(a, b);
            prop_assert!(close(l2sq(a, b) as f64, want_l2, want_l2), "l2 {} vs {}", l2sq(a, b), want_l2);
            // Cosine: normalise, then 1 - dot.
            let (mut na, mut nb) = (a.to_vec(), b.to_vec());
            normalize(&mut na);
            normalize(&mut nb);
            let want_cos = 1.0 - scalar::dot(&na, &nb);
            let got_cos = distance(Distance::Cosine, &na, &nb) as f64;
            prop_assert!(close(got_cos, want_cos, 1.0), "cos {} vs {}", got_cos, want_cos);
        }
    }

    #[test]
    fn every_small_dim_and_offset_agrees() {
        // Exhaustive over the tails SIMD loops handle specially.
        for dim in 1..=80usize {
            for skew in 0..4usize {
                let a: Vec<f32> = (0..dim + skew).map(|i| (i as f32 * 0.37).sin()).collect();
                let b: Vec<f32> = (0..dim + skew).map(|i| (i as f32 * 0.11).cos()).collect();
                let (a, b) = (&a[skew..], &b[skew..]);
                assert!(
                    close(dot(a, b) as f64, scalar::dot(a, b), dim as f64),
                    "dim {dim}"
                );
                assert!(
                    close(l2sq(a, b) as f64, scalar::l2sq(a, b), dim as f64),
                    "dim {dim}"
                );
            }
        }
    }

    #[test]
    fn scores_convert() {
        assert_eq!(score(Distance::Euclid, 4.0), 2.0);
        assert_eq!(score(Distance::Dot, -3.0), 3.0);
        assert!((score(Distance::Cosine, 0.25) - 0.75).abs() < 1e-7);
        let mut v = vec![3.0, 4.0];
        normalize(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        let mut z = vec![0.0, 0.0];
        normalize(&mut z);
        assert_eq!(z, vec![0.0, 0.0]);
    }
}
