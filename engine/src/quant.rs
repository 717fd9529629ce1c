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
    pub(crate) fn prepare(&self, metric: Distance, q: &[f32]) -> QueryCodes {
        match metric {
            Distance::Cosine | Distance::Dot => {
                let base: f32 = -q.iter().zip(&self.offset).map(|(x, a)| x * a).sum::<f32>();
                QueryCodes {
                    kernels: kernels::best(),
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
                    kernels: kernels::best(),
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
    /// Picked once per process, not per distance.
    kernels: kernels::Kernels,
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
            self.base + (self.kernels.wl2)(&self.a, &self.w, codes)
        } else {
            self.base - (self.kernels.dot)(&self.a, codes)
        }
    }
}

/// `f32 × u8` kernels: AVX-512 and AVX2 + FMA with explicit intrinsics, picked at run time, and
/// a portable version (16 independent lanes, summed as a tree) elsewhere and for tests. (Left
/// to the auto-vectoriser, the same loops came out two lanes wide without FMA: a 128-d walk was
/// 2× slower than over `f32`.)
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

    pub(super) fn dot_portable(a: &[f32], c: &[u8]) -> f32 {
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

    pub(super) fn wl2_portable(t: &[f32], w: &[f32], c: &[u8]) -> f32 {
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
        use std::arch::x86_64::*;

        /// The last `n % 16` codes from `at`, zero-padded to 16.
        #[inline(always)]
        fn tail16(c: &[u8], at: usize) -> [u8; 16] {
            let mut b = [0u8; 16];
            let rest = &c[at..];
            b[..rest.len()].copy_from_slice(rest);
            b
        }

        /// 16 codes from `c[at..at + 16]` as f32 lanes.
        ///
        /// # Safety
        /// AVX-512F must be available; `at + 16 <= c.len()`.
        #[inline(always)]
        unsafe fn codes512(c: &[u8], at: usize) -> __m512 {
            debug_assert!(at + 16 <= c.len());
            // SAFETY: the caller guarantees 16 readable bytes from `at` and AVX-512F; the load
            // is unaligned.
            unsafe {
                _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(
                    c.as_ptr().add(at).cast::<__m128i>(),
                )))
            }
        }

        #[target_feature(enable = "avx512f")]
        pub(super) fn dot_avx512(a: &[f32], c: &[u8]) -> f32 {
            let n = a.len().min(c.len());
            let full = n - n % 16;
            let mut acc = _mm512_setzero_ps();
            let mut i = 0;
            while i < full {
                // SAFETY: `i + 16 <= full <= n`, within both slices; AVX-512F is enabled.
                unsafe {
                    let av = _mm512_loadu_ps(a.as_ptr().add(i));
                    acc = _mm512_fmadd_ps(av, codes512(c, i), acc);
                }
                i += 16;
            }
            if full < n {
                let mask: __mmask16 = (1u16 << (n - full)) - 1;
                let cb = tail16(&c[..n], full);
                // SAFETY: the masked load reads only the `n - full` floats left in `a`; `cb` is
                // 16 bytes.
                unsafe {
                    let av = _mm512_maskz_loadu_ps(mask, a.as_ptr().add(full));
                    acc = _mm512_fmadd_ps(av, codes512(&cb, 0), acc);
                }
            }
            _mm512_reduce_add_ps(acc)
        }

        #[target_feature(enable = "avx512f")]
        pub(super) fn wl2_avx512(t: &[f32], w: &[f32], c: &[u8]) -> f32 {
            let n = t.len().min(w.len()).min(c.len());
            let full = n - n % 16;
            let mut acc = _mm512_setzero_ps();
            let mut i = 0;
            while i < full {
                // SAFETY: `i + 16 <= full <= n`, within every slice; AVX-512F is enabled.
                unsafe {
                    let d = _mm512_sub_ps(_mm512_loadu_ps(t.as_ptr().add(i)), codes512(c, i));
                    let wd = _mm512_mul_ps(_mm512_loadu_ps(w.as_ptr().add(i)), d);
                    acc = _mm512_fmadd_ps(wd, d, acc);
                }
                i += 16;
            }
            if full < n {
                let mask: __mmask16 = (1u16 << (n - full)) - 1;
                let cb = tail16(&c[..n], full);
                // SAFETY: the masked loads read only the `n - full` floats left; masked-off
                // lanes of `w` are zero, so their (zero-code) differences add nothing.
                unsafe {
                    let tv = _mm512_maskz_loadu_ps(mask, t.as_ptr().add(full));
                    let wv = _mm512_maskz_loadu_ps(mask, w.as_ptr().add(full));
                    let d = _mm512_sub_ps(tv, codes512(&cb, 0));
                    acc = _mm512_fmadd_ps(_mm512_mul_ps(wv, d), d, acc);
                }
            }
            _mm512_reduce_add_ps(acc)
        }

        /// 8 codes from `c[at..at + 8]` as f32 lanes.
        ///
        /// # Safety
        /// AVX2 must be available; `at + 8 <= c.len()`.
        #[inline(always)]
        unsafe fn codes256(c: &[u8], at: usize) -> __m256 {
            debug_assert!(at + 8 <= c.len());
            // SAFETY: the caller guarantees 8 readable bytes from `at` and AVX2 (a 64-bit load).
            unsafe {
                _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(
                    c.as_ptr().add(at).cast::<__m128i>(),
                )))
            }
        }

        #[inline(always)]
        fn hsum256(v: __m256) -> f32 {
            let mut lanes = [0f32; 8];
            // SAFETY: `lanes` holds 8 floats; the store is unaligned.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
            (lanes[0] + lanes[4])
                + (lanes[1] + lanes[5])
                + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]))
        }

        #[target_feature(enable = "avx2,fma")]
        pub(super) fn dot_avx2(a: &[f32], c: &[u8]) -> f32 {
            let n = a.len().min(c.len());
            let full = n - n % 8;
            let mut acc = _mm256_setzero_ps();
            let mut i = 0;
            while i < full {
                // SAFETY: `i + 8 <= full <= n`, within both slices; AVX2 and FMA are enabled.
                unsafe {
                    let av = _mm256_loadu_ps(a.as_ptr().add(i));
                    acc = _mm256_fmadd_ps(av, codes256(c, i), acc);
                }
                i += 8;
            }
            let mut tail = 0.0;
            for j in full..n {
                tail += a[j] * c[j] as f32;
            }
            hsum256(acc) + tail
        }

        #[target_feature(enable = "avx2,fma")]
        pub(super) fn wl2_avx2(t: &[f32], w: &[f32], c: &[u8]) -> f32 {
            let n = t.len().min(w.len()).min(c.len());
            let full = n - n % 8;
            let mut acc = _mm256_setzero_ps();
            let mut i = 0;
            while i < full {
                // SAFETY: `i + 8 <= full <= n`, within every slice; AVX2 and FMA are enabled.
                unsafe {
                    let d = _mm256_sub_ps(_mm256_loadu_ps(t.as_ptr().add(i)), codes256(c, i));
                    let wd = _mm256_mul_ps(_mm256_loadu_ps(w.as_ptr().add(i)), d);
                    acc = _mm256_fmadd_ps(wd, d, acc);
                }
                i += 8;
            }
            let mut tail = 0.0;
            for j in full..n {
                let d = t[j] - c[j] as f32;
                tail += w[j] * d * d;
            }
            hsum256(acc) + tail
        }
    }

    /// One instruction set's kernels: `dot` is `Σ a[i]·c[i]`, `wl2` is `Σ w[i]·(t[i] - c[i])²`.
    #[derive(Debug, Clone, Copy)]
    pub(super) struct Kernels {
        pub(super) name: &'static str,
        pub(super) dot: fn(&[f32], &[u8]) -> f32,
        pub(super) wl2: fn(&[f32], &[f32], &[u8]) -> f32,
    }

    /// Every kernel set this CPU can run, fastest first (tests check each against the
    /// portable one).
    pub(super) fn all() -> Vec<Kernels> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY (of the calls): these are only reachable on a CPU just found to
                // support AVX-512F.
                out.push(Kernels {
                    name: "avx512",
                    dot: |a, c| unsafe { x86::dot_avx512(a, c) },
                    wl2: |t, w, c| unsafe { x86::wl2_avx512(t, w, c) },
                });
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY (of the calls): only reachable on a CPU just found to support AVX2
                // and FMA.
                out.push(Kernels {
                    name: "avx2",
                    dot: |a, c| unsafe { x86::dot_avx2(a, c) },
                    wl2: |t, w, c| unsafe { x86::wl2_avx2(t, w, c) },
                });
            }
        }
        out.push(Kernels {
            name: "portable",
            dot: dot_portable,
            wl2: wl2_portable,
        });
        out
    }

    /// The fastest kernels this CPU runs, detected once per process.
    pub(super) fn best() -> Kernels {
        static BEST: std::sync::OnceLock<Kernels> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            let k = all()[0];
            tracing::debug!(kernels = k.name, "byte-code distance kernels");
            k
        })
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Every kernel the CPU runs agrees with the portable one, at every length (SIMD bodies
        /// and tails) and from unaligned starts.
        #[test]
        fn kernels_agree(
            n in 0usize..100,
            skew in 0usize..4,
            seed in prop::collection::vec(-10.0f32..10.0, 2 * 104),
            codes in prop::collection::vec(any::<u8>(), 104),
        ) {
            let (a, w) = (&seed[skew..skew + n], &seed[104 + skew..104 + skew + n]);
            let w: Vec<f32> = w.iter().map(|x| x.abs()).collect();
            let c = &codes[skew..skew + n];
            let want_dot = kernels::dot_portable(a, c);
            let want_l2 = kernels::wl2_portable(a, &w, c);
            for k in kernels::all() {
                let (name, d, l) = (k.name, (k.dot)(a, c), (k.wl2)(a, &w, c));
                prop_assert!((d - want_dot).abs() <= 1e-3 * (want_dot.abs() + 255.0 * n as f32 * 0.01 + 1.0), "{name} dot {d} vs {want_dot}");
                prop_assert!((l - want_l2).abs() <= 1e-4 * (want_l2.abs() + 1.0), "{name} wl2 {l} vs {want_l2}");
            }
        }
    }

    #[test]
    fn a_dimension_of_tiny_range_neither_vanishes_nor_turns_nan() {
        // Dimension 1 spans 1e-30: its step squared underflows f32.
        let rows = [0.0, 0.0, 1.0, 1e-30, 2.0, 5e-31];
        let quant = Quantizer::train(&rows, 2);
        assert_eq!(quant.scale[1], 0.0);
        let buf = quant.encode_all(&rows);
        let codes = Codes {
            quant: &quant,
            bytes: buf.as_bytes(),
        };
        let q = [0.5, 3.0];
        for (i, r) in rows.chunks_exact(2).enumerate() {
            let got = quant
                .prepare(Distance::Euclid, &q)
                .distance(codes.row(i as u32));
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
        for metric in [Distance::Dot, Distance::Cosine] {
            let d = quant
                .prepare(metric, &[0.5, 0.5])
                .distance(&buf.as_bytes()[..2]);
            assert!(d.is_finite(), "{metric:?}");
        }
    }
}
