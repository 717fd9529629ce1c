//! Scalar quantization: each vector component as one byte, for the graph walk.
//!
//! A component `x` of dimension `i` is stored as the code `c = round((x - offset[i]) /
//! scale[i])` in `0..=255`, so `x ≈ offset[i] + scale[i] * c`; `offset` and `scale` come from the
//! data's per-dimension range (see [`Quantizer::train`]). Queries stay in `f32` (an *asymmetric*
//! distance: only the stored side carries quantization error), and each distance is rewritten
//! so that the work per code is one multiply-add:
//!
//! | metric        | internal distance of `q` to `x̂`        | per-query terms                    |
//! |---------------|----------------------------------------|------------------------------------|
//! | Cosine / Dot  | `base - Σ qs[i]·c[i]`                   | `qs = q∘scale`, `base = -Σ q∘offset` (Cosine: `1 +`) |
//! | Euclid        | `base + Σ w[i]·(t[i] - c[i])²`           | `t = (q - offset)/scale`, `w = scale²` |
//!
//! A walk over codes reads a quarter of the bytes of one over `f32` vectors, and the codes of a
//! few hundred thousand vectors fit in a CPU's last-level cache where the `f32` vectors do not:
//! a graph walk is bound by those reads, not by arithmetic. The walk's candidates are then
//! re-ranked with the exact `f32` distance, so quantization only decides which candidates are
//! seen, never the reported scores or their order.

use crate::types::Distance;

/// Per-dimension affine map between `f32` components and byte codes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Quantizer {
    pub(crate) offset: Vec<f32>,
    pub(crate) scale: Vec<f32>,
}

impl Quantizer {
    /// Fits the map to `rows` (row-major, `dim` each): per dimension, the range of its finite
    /// values. Exact at the extremes, so no value is clipped; a constant dimension gets scale 0
    /// (every code 0, decoded exactly).
    pub(crate) fn train(rows: &[f32], dim: usize) -> Quantizer {
        let mut lo = vec![f32::INFINITY; dim];
        let mut hi = vec![f32::NEG_INFINITY; dim];
        for row in rows.chunks_exact(dim) {
            for (i, &x) in row.iter().enumerate() {
                if x.is_finite() {
                    lo[i] = lo[i].min(x);
                    hi[i] = hi[i].max(x);
                }
            }
        }
        let (mut offset, mut scale) = (Vec::with_capacity(dim), Vec::with_capacity(dim));
        for (l, h) in lo.into_iter().zip(hi) {
            if l.is_finite() && h.is_finite() && h > l {
                let s = (h - l) / 255.0;
                // A range too wide for f32 (h - l = inf) falls back to a constant dimension.
                let s = if s.is_finite() { s } else { 0.0 };
                offset.push(l);
                scale.push(s);
            } else {
                offset.push(if l.is_finite() { l } else { 0.0 });
                scale.push(0.0);
            }
        }
        Quantizer { offset, scale }
    }

    pub(crate) fn dim(&self) -> usize {
        self.offset.len()
    }

    /// The codes of `v` (of this quantizer's dimension) into `out`.
    pub(crate) fn encode(&self, v: &[f32], out: &mut [u8]) {
        for (((o, &x), &a), &s) in out.iter_mut().zip(v).zip(&self.offset).zip(&self.scale) {
            *o = if s > 0.0 {
                // `as u8` saturates (NaN → 0), so out-of-range values clamp.
                ((x - a) / s).round().clamp(0.0, 255.0) as u8
            } else {
                0
            };
        }
    }

    /// The codes of every row of `rows`, [`stride`] bytes apart (zero padding), in a buffer
    /// aligned to a cache line.
    pub(crate) fn encode_all(&self, rows: &[f32]) -> CodeBuf {
        let dim = self.dim();
        let stride = stride(dim);
        let n = rows.len() / dim.max(1);
        let mut lines = vec![Line([0; 64]); (n * stride).div_ceil(64)];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut lines);
        for (v, out) in rows.chunks_exact(dim).zip(bytes.chunks_exact_mut(stride)) {
            self.encode(v, &mut out[..dim]);
        }
        CodeBuf {
            lines,
            len: n * stride,
        }
    }

    /// The query-side terms for `q` (the internal distance's convention: lower is closer; see
    /// [`crate::distance`]; `q` already normalised for Cosine).
    pub(crate) fn prepare(&self, metric: Distance, q: &[f32]) -> QueryCodes {
        match metric {
            Distance::Cosine | Distance::Dot => {
                let base: f32 = -q.iter().zip(&self.offset).map(|(x, a)| x * a).sum::<f32>();
                QueryCodes {
                    l2: false,
                    base: if metric == Distance::Cosine {
                        1.0 + base
                    } else {
                        base
                    },
                    a: q.iter().zip(&self.scale).map(|(x, s)| x * s).collect(),
                    w: Vec::new(),
                }
            }
            Distance::Euclid => {
                let (mut base, mut t, mut w) = (0.0f32, Vec::with_capacity(q.len()), Vec::new());
                for ((x, a), s) in q.iter().zip(&self.offset).zip(&self.scale) {
                    if *s > 0.0 {
                        t.push((x - a) / s);
                        w.push(s * s);
                    } else {
                        base += (x - a) * (x - a);
                        t.push(0.0);
                        w.push(0.0);
                    }
                }
                QueryCodes {
                    l2: true,
                    base,
                    a: t,
                    w,
                }
            }
        }
    }
}

/// Bytes from one row's codes to the next's: `dim` rounded up to a power of two up to 64,
/// else to a multiple of 64. With the codes starting on a cache line, a row's codes then span
/// the fewest lines they can (for `dim` ≤ 64, exactly one). At `dim` 50, packed rows straddle
/// two lines three times in four; padded, a GloVe-50 walk was 1.13× faster (docs/benchmarks.md)
/// for 28 % more code bytes.
pub(crate) fn stride(dim: usize) -> usize {
    if dim <= 64 {
        dim.next_power_of_two()
    } else {
        dim.next_multiple_of(64)
    }
}

/// One cache line of codes.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Line([u8; 64]);

// SAFETY: `Line` is `repr(C)` over a byte array whose size (64) equals its alignment: no
// padding, and every bit pattern is a valid value.
unsafe impl bytemuck::Zeroable for Line {}
// SAFETY: as above.
unsafe impl bytemuck::Pod for Line {}

/// Codes in memory aligned to a cache line.
#[derive(Clone)]
pub(crate) struct CodeBuf {
    lines: Vec<Line>,
    len: usize,
}

impl CodeBuf {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.lines)[..self.len]
    }
}

impl std::fmt::Debug for CodeBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeBuf").field("len", &self.len).finish()
    }
}

/// Rows' codes ([`stride`] bytes apart) and the quantizer that made them, borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Codes<'a> {
    pub(crate) quant: &'a Quantizer,
    pub(crate) bytes: &'a [u8],
}

impl Codes<'_> {
    /// Row `row`'s codes; empty if out of range.
    #[inline]
    pub(crate) fn row(&self, row: u32) -> &[u8] {
        let dim = self.quant.dim();
        let at = row as usize * stride(dim);
        self.bytes.get(at..at + dim).unwrap_or(&[])
    }
}

/// A query prepared against one [`Quantizer`]: [`QueryCodes::distance`] of a row's codes is the
/// internal distance of the query to the row's decoded vector.
#[derive(Debug, Clone)]
pub(crate) struct QueryCodes {
    l2: bool,
    base: f32,
    /// `qs` (Cosine, Dot) or `t` (Euclid).
    a: Vec<f32>,
    /// `w` (Euclid only).
    w: Vec<f32>,
}

impl QueryCodes {
    #[inline]
    pub(crate) fn distance(&self, codes: &[u8]) -> f32 {
        if self.l2 {
            self.base + kernels::wl2(&self.a, &self.w, codes)
        } else {
            self.base - kernels::dot(&self.a, codes)
        }
    }
}

/// `f32 × u8` kernels: sixteen independent lanes the compiler maps onto SIMD registers, built
/// once per instruction set and picked at run time (AVX-512, AVX2 + FMA, else the x86-64 or
/// other baseline).
mod kernels {
    const LANES: usize = 16;

    /// The lanes' sum as a tree (four dependent adds, not fifteen).
    #[inline(always)]
    fn sum(mut acc: [f32; LANES]) -> f32 {
        let mut w = LANES / 2;
        while w > 0 {
            for j in 0..w {
                acc[j] += acc[j + w];
            }
            w /= 2;
        }
        acc[0]
    }

    #[inline(always)]
    fn dot_lanes(a: &[f32], c: &[u8]) -> f32 {
        let n = a.len().min(c.len());
        let (a, c) = (&a[..n], &c[..n]);
        let mut acc = [0f32; LANES];
        let mut ac = a.chunks_exact(LANES);
        let mut cc = c.chunks_exact(LANES);
        for (a, c) in (&mut ac).zip(&mut cc) {
            for j in 0..LANES {
                acc[j] += a[j] * c[j] as f32;
            }
        }
        let mut tail = 0.0;
        for (a, c) in ac.remainder().iter().zip(cc.remainder()) {
            tail += a * *c as f32;
        }
        sum(acc) + tail
    }

    #[inline(always)]
    fn wl2_lanes(t: &[f32], w: &[f32], c: &[u8]) -> f32 {
        let n = t.len().min(w.len()).min(c.len());
        let (t, w, c) = (&t[..n], &w[..n], &c[..n]);
        let mut acc = [0f32; LANES];
        let mut tc = t.chunks_exact(LANES);
        let mut wc = w.chunks_exact(LANES);
        let mut cc = c.chunks_exact(LANES);
        for ((t, w), c) in (&mut tc).zip(&mut wc).zip(&mut cc) {
            for j in 0..LANES {
                let d = t[j] - c[j] as f32;
                acc[j] += w[j] * d * d;
            }
        }
        let mut tail = 0.0;
        for ((t, w), c) in tc
            .remainder()
            .iter()
            .zip(wc.remainder())
            .zip(cc.remainder())
        {
            let d = t - *c as f32;
            tail += w * d * d;
        }
        sum(acc) + tail
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        #[target_feature(enable = "avx512f")]
        pub(super) fn dot_avx512(a: &[f32], c: &[u8]) -> f32 {
            super::dot_lanes(a, c)
        }
        #[target_feature(enable = "avx2,fma")]
        pub(super) fn dot_avx2(a: &[f32], c: &[u8]) -> f32 {
            super::dot_lanes(a, c)
        }
        #[target_feature(enable = "avx512f")]
        pub(super) fn wl2_avx512(t: &[f32], w: &[f32], c: &[u8]) -> f32 {
            super::wl2_lanes(t, w, c)
        }
        #[target_feature(enable = "avx2,fma")]
        pub(super) fn wl2_avx2(t: &[f32], w: &[f32], c: &[u8]) -> f32 {
            super::wl2_lanes(t, w, c)
        }
    }

    /// `Σ a[i]·c[i]`.
    #[inline]
    pub(super) fn dot(a: &[f32], c: &[u8]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU was just found to support AVX-512F.
                return unsafe { x86::dot_avx512(a, c) };
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU was just found to support AVX2 and FMA.
                return unsafe { x86::dot_avx2(a, c) };
            }
        }
        dot_lanes(a, c)
    }

    /// `Σ w[i]·(t[i] - c[i])²`.
    #[inline]
    pub(super) fn wl2(t: &[f32], w: &[f32], c: &[u8]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU was just found to support AVX-512F.
                return unsafe { x86::wl2_avx512(t, w, c) };
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU was just found to support AVX2 and FMA.
                return unsafe { x86::wl2_avx2(t, w, c) };
            }
        }
        wl2_lanes(t, w, c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance;
    use proptest::prelude::*;

    fn decode(q: &Quantizer, codes: &[u8]) -> Vec<f32> {
        codes
            .iter()
            .zip(&q.offset)
            .zip(&q.scale)
            .map(|((c, a), s)| a + s * *c as f32)
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// The prepared distance over codes equals the exact distance to the decoded vector,
        /// and decoding is within half a step of the original, for every metric and any
        /// dimension (SIMD bodies and tails).
        #[test]
        fn code_distance_is_the_decoded_vectors_distance(
            dim in 1usize..70,
            seed in prop::collection::vec(-50.0f32..50.0, 70 * 9),
        ) {
            let rows: Vec<f32> = seed[..dim * 8].to_vec();
            let q = &seed[dim * 8..dim * 9];
            let quant = Quantizer::train(&rows, dim);
            let buf = quant.encode_all(&rows);
            let codes = Codes { quant: &quant, bytes: buf.as_bytes() };
            for (i, r) in rows.chunks_exact(dim).enumerate() {
                let c = codes.row(i as u32);
                prop_assert_eq!(c.len(), dim);
                let back = decode(&quant, c);
                for ((x, y), s) in r.iter().zip(&back).zip(&quant.scale) {
                    prop_assert!((x - y).abs() <= s * 0.5 + 1e-4 * x.abs().max(1.0));
                }
                for metric in [Distance::Dot, Distance::Euclid, Distance::Cosine] {
                    let want = distance::distance(metric, q, &back) as f64;
                    let got = quant.prepare(metric, q).distance(c) as f64;
                    let mag: f64 = q.iter().zip(&back).map(|(a, b)| ((a - b) * (a - b) + (a * b).abs()) as f64).sum();
                    prop_assert!((got - want).abs() <= 1e-4 * (mag + 1.0), "{metric:?}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn constant_and_extreme_dimensions_stay_finite() {
        // Dimension 0 constant, dimension 1 spans more than f32 can subtract (such vectors are
        // refused at write time; the quantizer must not turn them into NaN all the same).
        let rows = [1.0, -1e38, 1.0, 3e38, 1.0, 0.0];
        let quant = Quantizer::train(&rows, 2);
        assert_eq!(quant.scale, vec![0.0, 0.0]);
        let buf = quant.encode_all(&rows);
        for metric in [Distance::Dot, Distance::Cosine] {
            let d = quant
                .prepare(metric, &[0.5, 0.5])
                .distance(&buf.as_bytes()[..2]);
            assert!(d.is_finite(), "{metric:?}");
        }
    }
}
