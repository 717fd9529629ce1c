//! Scalar quantization: each vector component as one byte, for the graph walk.
//!
//! A component `x` of dimension `i` is stored as the code `c = round((x - offset[i]) /
//! scale[i])` in `0..=255`, so `x ≈ offset[i] + scale[i] * c`; `offset` and `scale` come from the
//! data's per-dimension range (see [`Quantizer::train`]). Queries keep (nearly) full precision
//! (an *asymmetric* distance: the stored side carries the quantization error), and each distance
//! is rewritten as one dot product of the codes with a per-query vector `a`:
//!
//! | metric        | internal distance of `q` to `x̂`                 | per-query terms                           |
//! |---------------|-------------------------------------------------|-------------------------------------------|
//! | Cosine / Dot  | `base - Σ a[i]·c[i]`                            | `a = q∘scale`, `base = -Σ q∘offset` (Cosine: `1 +`) |
//! | Euclid        | `base - Σ a[i]·c[i] + ‖x̂ - offset‖²`            | `a = 2·scale∘(q - offset)`, `base = ‖q - offset‖²` |
//!
//! (`‖q - x̂‖² = ‖q - offset‖² - 2 Σ scale[i]·(q[i] - offset[i])·c[i] + Σ (scale[i]·c[i])²`; the
//! last term depends on the row only: [`Quantizer::norms`], worked out once per segment.) `a`
//! is rounded to `i16` steps of `max |a[i]| / 32,767` (fewer bits above 257 dimensions, see
//! [`q_max`]: 8 bits at 65,536), so the products are integer multiply-adds. The rounding moves
//! a distance by at most `step / 2 · Σ c[i]`; Euclid's three terms are then summed in `f32`,
//! which adds an error of about 6e-8 of the largest of them (not of the distance itself). A
//! distance that is not a finite number (data or queries near `f32`'s range) is `+inf`.
//!
//! A walk over codes reads a quarter of the bytes of one over `f32` vectors, and the codes of a
//! few hundred thousand vectors fit in a CPU's last-level cache where the `f32` vectors do not:
//! a graph walk is bound by those reads, not by arithmetic. The walk's candidates are then
//! re-ranked with the exact `f32` distance, so quantization only decides which candidates are
//! seen, never the reported scores or their order — unless the search asks for no re-score
//! (`SearchRequest::rescore`), when the code distances are the answer.

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
        Quantizer::train_where(rows, dim, |_| true)
    }

    /// As [`Quantizer::train`], over the rows `keep` holds for (a segment's rows without a
    /// vector in the space are stored as zeros, which would widen every range).
    pub(crate) fn train_where(rows: &[f32], dim: usize, keep: impl Fn(u32) -> bool) -> Quantizer {
        let mut lo = vec![f32::INFINITY; dim];
        let mut hi = vec![f32::NEG_INFINITY; dim];
        for (_, row) in rows
            .chunks_exact(dim)
            .enumerate()
            .filter(|(i, _)| keep(*i as u32))
        {
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
                // A range too wide for f32 (h - l = inf), or so narrow that the Euclid weight
                // s² is not a normal float, falls back to a constant dimension (decoded as
                // `l`: off by at most the tiny range).
                let s = if s.is_finite() && (s * s).is_normal() {
                    s
                } else {
                    0.0
                };
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
    ///
    /// Every metric becomes one dot product of the codes with a per-query vector `a`
    /// (module docs), and `a` is held as `i16` ([`QueryCodes::step`] apart), so that a distance
    /// is integer multiply-adds: two products per instruction lane, no conversion of the codes
    /// to floats.
    pub(crate) fn prepare(&self, metric: Distance, q: &[f32]) -> QueryCodes {
        let l2 = metric == Distance::Euclid;
        let n = q.len().min(self.dim());
        let (q, offset, scale) = (&q[..n], &self.offset[..n], &self.scale[..n]);
        // Per dimension: the term a[i] (module docs) and the part of `base`, summed in
        // LANES independent lanes (one sequential chain would cost more than the walk's
        // first distances).
        const LANES: usize = 8;
        let mut a = vec![0f32; n];
        let (mut base, mut peak) = ([0f32; LANES], [0f32; LANES]);
        let mut one = |i: usize, lane: usize| {
            let (x, o, s) = (q[i], offset[i], scale[i]);
            let (t, b) = match l2 {
                true => (2.0 * s * (x - o), (x - o) * (x - o)),
                false => (x * s, x * o),
            };
            a[i] = t;
            base[lane] += b;
            peak[lane] = peak[lane].max(t.abs());
        };
        for i in 0..n {
            one(i, i % LANES);
        }
        let (sum, peak) = (
            base.iter().sum::<f32>(),
            peak.iter().fold(0f32, |m, p| m.max(*p)),
        );
        let base = match metric {
            Distance::Euclid => sum,
            Distance::Cosine => 1.0 - sum,
            Distance::Dot => -sum,
        };
        if !(base.is_finite() && peak.is_finite()) {
            // Only a query far outside the data's range gets here (finite components whose
            // terms overflow f32): every row is equally far, rather than NaN.
            return QueryCodes {
                kernel: kernels::best(),
                l2: false,
                base: f32::INFINITY,
                step: 0.0,
                qa: vec![0; n],
            };
        }
        // Terms scaled by `q_max / peak` (so within `±q_max` by construction, whatever the
        // magnitude of the query), the step kept in f64 (a tiny query's step is below f32's
        // range).
        let top = q_max(n);
        let (step, scale) = match peak > 0.0 {
            true => (f64::from(peak) / top, top / f64::from(peak)),
            false => (1.0, 0.0),
        };
        QueryCodes {
            kernel: kernels::best(),
            l2,
            base,
            step,
            // Rounded half away from zero, then clamped to `±q_max` (a guard: the scaled peak
            // is `q_max` itself). `f32::round` would be a libm call per term on the x86-64
            // baseline.
            qa: a
                .iter()
                .map(|t| {
                    let v = f64::from(*t) * scale;
                    (v + 0.5f64.copysign(v)).clamp(-top, top) as i16
                })
                .collect(),
        }
    }

    /// Every row's `‖x̂ - offset‖² = Σ (scale[i]·c[i])²` (`x̂` decoded), the row's term of a
    /// Euclid distance over codes, for `bytes` laid out as [`Quantizer::encode_all`] does.
    pub(crate) fn norms(&self, bytes: &[u8]) -> Vec<f32> {
        let (dim, stride) = (self.dim(), stride(self.dim()));
        bytes
            .chunks_exact(stride)
            .map(|row| self.norm(&row[..dim]))
            .collect()
    }

    /// One row's [`Quantizer::norms`] term.
    fn norm(&self, codes: &[u8]) -> f32 {
        codes
            .iter()
            .zip(&self.scale)
            .map(|(c, s)| {
                let x = s * f32::from(*c);
                x * x
            })
            .sum()
    }
}

/// The largest magnitude of a query's `i16` terms for `dim` dimensions: `i16::MAX`, or less
/// where `dim · 255 · q_max` would pass `i32::MAX`, so no sum of products overflows its `i32`
/// lanes (at 128 dimensions the full 15 bits; at 1,536, 12.4 bits).
fn q_max(dim: usize) -> f64 {
    (f64::from(i32::MAX) / (255.0 * dim.max(1) as f64))
        .min(f64::from(i16::MAX))
        .floor()
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

    /// A copy of `b` in memory aligned to a cache line.
    pub(crate) fn from_bytes(b: &[u8]) -> CodeBuf {
        let mut lines = vec![Line([0; 64]); b.len().div_ceil(64)];
        bytemuck::cast_slice_mut::<Line, u8>(&mut lines)[..b.len()].copy_from_slice(b);
        CodeBuf {
            lines,
            len: b.len(),
        }
    }
}

/// A segment's codes section (format 5, `docs/format.md`): `dim` u32, stride u32, 8 zero
/// bytes, the quantizer's offsets and scales (f32 each), zero padding to 64 bytes, then every
/// row's codes, [`stride`] bytes apart.
pub(crate) mod section {
    use super::{CodeBuf, Quantizer, stride};
    use crate::codec::{Writer, cast_slice};

    /// A section's quantizer and codes.
    pub(crate) type Stored<'a> = (Quantizer, &'a [u8]);

    /// Bytes before the codes.
    pub(crate) fn head_len(dim: usize) -> usize {
        (16 + 8 * dim).next_multiple_of(64)
    }

    /// Writes `quant` and `codes` (made by `quant.encode_all`) at `w`'s end, which must be at a
    /// multiple of 64 bytes.
    pub(crate) fn write(quant: &Quantizer, codes: &CodeBuf, w: &mut Writer) {
        let dim = quant.dim();
        let start = w.len();
        w.u32(dim as u32);
        w.u32(stride(dim) as u32);
        w.u64(0);
        quant.offset.iter().for_each(|x| w.u32(x.to_bits()));
        quant.scale.iter().for_each(|x| w.u32(x.to_bits()));
        w.buf.resize(start + head_len(dim), 0);
        w.bytes(codes.as_bytes());
    }

    /// The quantizer and the codes of a section over `rows` rows of dimension `dim`: every
    /// field checked (O(dim)), the codes' length too (their values are any bytes, the padding
    /// unread). `Ok(None)`: written at another stride (a build that laid rows out otherwise);
    /// such codes are not used, the walk's are made from the vectors.
    pub(crate) fn read(b: &[u8], dim: usize, rows: u32) -> Result<Option<Stored<'_>>, String> {
        let head: &[u32] = b
            .get(..16)
            .and_then(cast_slice)
            .ok_or("shorter than its header")?;
        if head[2] | head[3] != 0 {
            return Err("non-zero reserved bytes".into());
        }
        if head[0] as usize != dim {
            return Err(format!("dimension {}, the space has {dim}", head[0]));
        }
        if head[1] as usize != stride(dim) {
            return Ok(None);
        }
        let want = head_len(dim) as u64 + u64::from(rows) * stride(dim) as u64;
        if b.len() as u64 != want {
            return Err(format!("{} bytes, its counts say {want}", b.len()));
        }
        let params: &[u32] = cast_slice(&b[16..16 + 8 * dim]).ok_or("misaligned")?;
        let (offset, scale): (Vec<f32>, Vec<f32>) = (
            params[..dim].iter().map(|x| f32::from_bits(*x)).collect(),
            params[dim..].iter().map(|x| f32::from_bits(*x)).collect(),
        );
        // What `Quantizer::train_where` makes: finite offsets, scales 0 or with a normal square.
        if offset.iter().any(|x| !x.is_finite())
            || scale
                .iter()
                .any(|s| *s != 0.0 && !(*s > 0.0 && (s * s).is_normal()))
        {
            return Err("a quantizer offset or scale out of range".into());
        }
        Ok(Some((Quantizer { offset, scale }, &b[head_len(dim)..])))
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
    /// [`Quantizer::norms`] of the rows, for Euclid walks (empty otherwise: a Euclid
    /// distance then works a row's term out from its codes).
    pub(crate) norms: &'a [f32],
}

impl Codes<'_> {
    /// Row `row`'s codes; empty if out of range.
    #[inline]
    pub(crate) fn row(&self, row: u32) -> &[u8] {
        let dim = self.quant.dim();
        let at = row as usize * stride(dim);
        self.bytes.get(at..at + dim).unwrap_or(&[])
    }

    /// Row `row`'s Euclid term ([`Quantizer::norms`]).
    #[inline]
    fn norm(&self, row: u32) -> f32 {
        match self.norms.get(row as usize) {
            Some(n) => *n,
            None => self.quant.norm(self.row(row)),
        }
    }

    /// Hints that row `row`'s distance is measured next (its codes and, for Euclid, its term).
    #[inline]
    pub(crate) fn prefetch(&self, row: u32) {
        crate::distance::prefetch(self.row(row));
        if let Some(n) = self.norms.get(row as usize) {
            crate::distance::prefetch(std::slice::from_ref(n));
        }
    }
}

/// A query prepared against one [`Quantizer`]: [`QueryCodes::distance`] to a row is the
/// internal distance of the query to the row's decoded vector, within rounding of the
/// query's terms to `i16` (at most `|step| / 2 · Σ c[i]`).
#[derive(Debug, Clone)]
pub(crate) struct QueryCodes {
    /// Picked once per process, not per distance.
    kernel: fn(&[i16], &[u8]) -> i32,
    /// Add the row's [`Quantizer::norms`] term.
    l2: bool,
    base: f32,
    /// `Σ a[i]·c[i] ≈ step · Σ qa[i]·c[i]` (f64: a tiny query's step is below f32's range).
    step: f64,
    qa: Vec<i16>,
}

impl QueryCodes {
    /// The distance to row `row` of `codes`.
    #[inline]
    pub(crate) fn distance(&self, codes: &Codes<'_>, row: u32) -> f32 {
        let dot = (self.step * f64::from((self.kernel)(&self.qa, codes.row(row)))) as f32;
        crate::distance::finite_or_last(match self.l2 {
            true => self.base - dot + codes.norm(row),
            false => self.base - dot,
        })
    }

    /// The query's terms in `i16`.
    #[cfg(test)]
    fn terms(&self) -> &[i16] {
        &self.qa
    }
}

/// `Σ qa[i]·c[i]` over `i16` query terms and byte codes, in `i32` (callers bound the terms so
/// that it cannot overflow: [`q_max`]): AVX-512BW and AVX2 with explicit intrinsics (codes
/// widened to `i16`, then `madd`: two products and their sum per `i32` lane), picked at run
/// time, and a portable loop elsewhere and for tests. Integer lanes add in one cycle, so unlike
/// an `f32` accumulator the sum is no dependency chain: at 128 dimensions one distance is four
/// loads and four multiply-adds. (The `f32 × u8` kernels this replaced converted every code to
/// a float and chained their fused multiply-adds.)
mod kernels {
    pub(super) fn dot_portable(qa: &[i16], c: &[u8]) -> i32 {
        qa.iter()
            .zip(c)
            .map(|(a, c)| i32::from(*a) * i32::from(*c))
            .sum()
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use std::arch::x86_64::*;

        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        pub(super) fn dot_avx512(qa: &[i16], c: &[u8]) -> i32 {
            let n = qa.len().min(c.len());
            let full = n - n % 32;
            let mut acc = _mm512_setzero_si512();
            let mut i = 0;
            while i < full {
                // SAFETY: `i + 32 <= full <= n`: 32 codes and 32 terms are in bounds; the
                // loads are unaligned; AVX-512F/BW are enabled.
                unsafe {
                    let cv = _mm512_cvtepu8_epi16(_mm256_loadu_si256(
                        c.as_ptr().add(i).cast::<__m256i>(),
                    ));
                    let qv = _mm512_loadu_epi16(qa.as_ptr().add(i));
                    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(cv, qv));
                }
                i += 32;
            }
            if full < n {
                let mask: __mmask32 = (1u32 << (n - full)) - 1;
                // SAFETY: masked loads read only the `n - full` (< 32) elements left in each
                // slice and never fault on the masked-off ones; AVX-512BW/VL are enabled.
                unsafe {
                    let cv = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(
                        mask,
                        c.as_ptr().add(full).cast::<i8>(),
                    ));
                    let qv = _mm512_maskz_loadu_epi16(mask, qa.as_ptr().add(full));
                    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(cv, qv));
                }
            }
            _mm512_reduce_add_epi32(acc)
        }

        #[target_feature(enable = "avx2")]
        pub(super) fn dot_avx2(qa: &[i16], c: &[u8]) -> i32 {
            let n = qa.len().min(c.len());
            let full = n - n % 16;
            let mut acc = _mm256_setzero_si256();
            let mut i = 0;
            while i < full {
                // SAFETY: `i + 16 <= full <= n`: 16 codes and 16 terms are in bounds; the
                // loads are unaligned; AVX2 is enabled.
                unsafe {
                    let cv =
                        _mm256_cvtepu8_epi16(_mm_loadu_si128(c.as_ptr().add(i).cast::<__m128i>()));
                    let qv = _mm256_loadu_si256(qa.as_ptr().add(i).cast::<__m256i>());
                    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(cv, qv));
                }
                i += 16;
            }
            let mut lanes = [0i32; 8];
            // SAFETY: `lanes` holds 8 i32; the store is unaligned.
            unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast::<__m256i>(), acc) };
            lanes.iter().sum::<i32>() + super::dot_portable(&qa[full..n], &c[full..n])
        }
    }

    /// One instruction set's kernel.
    #[derive(Debug, Clone, Copy)]
    pub(super) struct Kernel {
        pub(super) name: &'static str,
        pub(super) dot: fn(&[i16], &[u8]) -> i32,
    }

    /// Every kernel this CPU can run, fastest first (tests check each against the portable
    /// one).
    pub(super) fn all() -> Vec<Kernel> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                // SAFETY (of the call): only reachable on a CPU just found to support
                // AVX-512F, BW and VL.
                out.push(Kernel {
                    name: "avx512",
                    dot: |a, c| unsafe { x86::dot_avx512(a, c) },
                });
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY (of the call): only reachable on a CPU just found to support AVX2.
                out.push(Kernel {
                    name: "avx2",
                    dot: |a, c| unsafe { x86::dot_avx2(a, c) },
                });
            }
        }
        out.push(Kernel {
            name: "portable",
            dot: dot_portable,
        });
        out
    }

    /// The fastest kernel this CPU runs, detected once per process.
    pub(super) fn best() -> fn(&[i16], &[u8]) -> i32 {
        static BEST: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
        BEST.get_or_init(|| {
            let k = all()[0];
            tracing::debug!(kernel = k.name, "byte-code distance kernel");
            k
        })
        .dot
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
            let norms = quant.norms(buf.as_bytes());
            for with_norms in [true, false] {
                let norms: &[f32] = if with_norms { &norms } else { &[] };
                let codes = Codes { quant: &quant, bytes: buf.as_bytes(), norms };
                for (i, r) in rows.chunks_exact(dim).enumerate() {
                    let c = codes.row(i as u32);
                    prop_assert_eq!(c.len(), dim);
                    let back = decode(&quant, c);
                    for ((x, y), s) in r.iter().zip(&back).zip(&quant.scale) {
                        prop_assert!((x - y).abs() <= s * 0.5 + 1e-4 * x.abs().max(1.0));
                    }
                    for metric in [Distance::Dot, Distance::Euclid, Distance::Cosine] {
                        let want = distance::distance(metric, q, &back) as f64;
                        let qc = quant.prepare(metric, q);
                        let got = qc.distance(&codes, i as u32) as f64;
                        // The terms' rounding: half a step (worked out here from the module
                        // docs' terms, not read back) per code unit; plus f32 rounding of sums
                        // of this magnitude.
                        let peak = expected_peak(&quant, metric, q);
                        let rounding = 0.5 * peak / q_max(dim)
                            * c.iter().map(|x| f64::from(*x)).sum::<f64>();
                        let mag: f64 = q.iter().zip(&back).map(|(a, b)| ((a - b) * (a - b) + (a * b).abs() + a * a + b * b) as f64).sum();
                        prop_assert!(
                            (got - want).abs() <= rounding + 1e-5 * (mag + 1.0),
                            "{metric:?}: {got} vs {want} (rounding bound {rounding})"
                        );
                    }
                }
            }
        }
    }

    /// `rows`' codes and their norms.
    fn coded(quant: &Quantizer, rows: &[f32]) -> (CodeBuf, Vec<f32>) {
        let buf = quant.encode_all(rows);
        let norms = quant.norms(buf.as_bytes());
        (buf, norms)
    }

    /// `max |a[i]|` of the module docs' terms for `q`, in f64.
    fn expected_peak(quant: &Quantizer, metric: Distance, q: &[f32]) -> f64 {
        q.iter()
            .zip(&quant.offset)
            .zip(&quant.scale)
            .map(|((x, o), s)| {
                let (x, o, s) = (f64::from(*x), f64::from(*o), f64::from(*s));
                match metric {
                    Distance::Euclid => (2.0 * s * (x - o)).abs(),
                    _ => (x * s).abs(),
                }
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn terms_stay_within_q_max_at_any_query_scale_and_dimension() {
        for dim in [3usize, 128, 300, 1536] {
            let rows: Vec<f32> = (0..dim * 16)
                .map(|i| ((i * 7919) % 1000) as f32 / 4000.0 - 0.1)
                .collect();
            let quant = Quantizer::train(&rows, dim);
            let (buf, norms) = coded(&quant, &rows);
            let codes = Codes {
                quant: &quant,
                bytes: buf.as_bytes(),
                norms: &norms,
            };
            let top = q_max(dim) as i32;
            for scale in [1e-38f32, 1e-30, 1e-3, 1.0, 1e10] {
                let q: Vec<f32> = (0..dim)
                    .map(|i| scale * (((i * 31) % 17) as f32 - 8.0))
                    .collect();
                for metric in [Distance::Dot, Distance::Cosine, Distance::Euclid] {
                    let qc = quant.prepare(metric, &q);
                    let terms = qc.terms();
                    assert!(
                        terms.iter().all(|t| i32::from(*t).abs() <= top),
                        "dim {dim} scale {scale} {metric:?}: a term past q_max {top}"
                    );
                    if metric != Distance::Euclid {
                        // The largest term takes the whole range (none is lost to a step that
                        // underflowed).
                        assert!(
                            terms.iter().any(|t| i32::from(*t).abs() == top),
                            "dim {dim} scale {scale} {metric:?}"
                        );
                    }
                    for row in 0..16 {
                        let d = qc.distance(&codes, row);
                        assert!(!d.is_nan(), "dim {dim} scale {scale} {metric:?}");
                        let want = distance::distance(metric, &q, &decode(&quant, codes.row(row)));
                        if scale <= 1.0 {
                            let tol = 1e-3 * (want.abs() + 1.0);
                            assert!(
                                (d - want).abs() <= tol,
                                "dim {dim} scale {scale} {metric:?} row {row}: {d} vs {want}"
                            );
                        }
                    }
                }
            }
        }
        // Terms that overflow once combined: never NaN (a distance past f32 is +inf).
        let quant = Quantizer::train(&[0.0, 0.0, 4e21, 4e21], 2);
        let (buf, norms) = coded(&quant, &[0.0, 0.0, 4e21, 4e21]);
        let codes = Codes {
            quant: &quant,
            bytes: buf.as_bytes(),
            norms: &norms,
        };
        let qc = quant.prepare(Distance::Euclid, &[1e18, 1e18]);
        for row in 0..2 {
            assert!(!qc.distance(&codes, row).is_nan());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Every kernel the CPU runs agrees exactly with the portable one, at every length
        /// (SIMD bodies and tails), from unaligned starts, and at the largest terms
        /// [`q_max`] allows.
        #[test]
        fn kernels_agree(
            n in 0usize..300,
            skew in 0usize..4,
            seed in prop::collection::vec(-1.0f64..1.0, 304),
            codes in prop::collection::vec(any::<u8>(), 304),
            extreme in any::<bool>(),
        ) {
            let top = q_max(n);
            let qa: Vec<i16> = seed[skew..skew + n]
                .iter()
                .map(|x| if extreme { if *x < 0.0 { -top } else { top } } else { x * top } as i16)
                .collect();
            let c: Vec<u8> = if extreme { vec![255; n] } else { codes[skew..skew + n].to_vec() };
            let want = kernels::dot_portable(&qa, &c);
            for k in kernels::all() {
                prop_assert_eq!((k.dot)(&qa, &c), want, "{}", k.name);
                // A shorter codes slice (a row out of range reads as empty) reads as zeros.
                prop_assert_eq!((k.dot)(&qa, &c[..n / 2]), kernels::dot_portable(&qa[..n / 2], &c[..n / 2]), "{}", k.name);
            }
        }
    }

    #[test]
    fn the_largest_terms_never_overflow() {
        for dim in [1, 128, 257, 258, 1536, 65_536] {
            let top = q_max(dim);
            assert!(top >= 1.0 && top <= f64::from(i16::MAX), "dim {dim}");
            assert!(dim as f64 * 255.0 * top <= f64::from(i32::MAX), "dim {dim}");
            let qa = vec![top as i16; dim];
            let c = vec![255u8; dim];
            let want = (dim as i64 * 255 * top as i64) as i32;
            for k in kernels::all() {
                assert_eq!((k.dot)(&qa, &c), want, "{} dim {dim}", k.name);
                let neg: Vec<i16> = qa.iter().map(|x| -x).collect();
                assert_eq!((k.dot)(&neg, &c), -want, "{} dim {dim}", k.name);
            }
        }
        assert_eq!(q_max(128), 32_767.0);
    }

    #[test]
    fn a_dimension_of_tiny_range_neither_vanishes_nor_turns_nan() {
        // Dimension 1 spans 1e-30: its step squared underflows f32.
        let rows = [0.0, 0.0, 1.0, 1e-30, 2.0, 5e-31];
        let quant = Quantizer::train(&rows, 2);
        assert_eq!(quant.scale[1], 0.0);
        let (buf, norms) = coded(&quant, &rows);
        let codes = Codes {
            quant: &quant,
            bytes: buf.as_bytes(),
            norms: &norms,
        };
        let q = [0.5, 3.0];
        for (i, r) in rows.chunks_exact(2).enumerate() {
            let got = quant
                .prepare(Distance::Euclid, &q)
                .distance(&codes, i as u32);
            let want = distance::distance(Distance::Euclid, &q, r);
            assert!(
                (got - want).abs() <= 1e-3 * want,
                "row {i}: {got} vs {want}"
            );
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
        let codes = Codes {
            quant: &quant,
            bytes: buf.as_bytes(),
            norms: &[],
        };
        for metric in [Distance::Dot, Distance::Cosine] {
            let d = quant.prepare(metric, &[0.5, 0.5]).distance(&codes, 0);
            assert!(d.is_finite(), "{metric:?}");
        }
        // 1e38 away in Euclid: infinitely far, not NaN.
        let d = quant
            .prepare(Distance::Euclid, &[0.5, 0.5])
            .distance(&codes, 0);
        assert!(!d.is_nan());
        // A query whose terms overflow f32: every row equally far, never NaN.
        let quant = Quantizer::train(&[0.0, 0.0, 4e21, 4e21], 2);
        assert!(quant.scale[0] > 0.0);
        let buf = quant.encode_all(&[0.0, 0.0, 4e21, 4e21]);
        let codes = Codes {
            quant: &quant,
            bytes: buf.as_bytes(),
            norms: &[],
        };
        for metric in [Distance::Dot, Distance::Euclid] {
            let qc = quant.prepare(metric, &[3e38, -3e38]);
            for row in 0..2 {
                assert!(!qc.distance(&codes, row).is_nan(), "{metric:?}");
            }
        }
    }
}
