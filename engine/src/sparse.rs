//! Sparse vectors: the data type, its scoring (dot product, optionally IDF-weighted as
//! Qdrant's `modifier: idf`), and the per-segment section that stores a sparse space's rows and
//! its inverted index (byte layout in `docs/format.md`, "Sparse section").
//!
//! ```text
//! query (indices, values) ──▶ weights (× idf(dim) when the space has the idf modifier; the
//!                             document frequencies are summed over every source first)
//!   memtable: score every live row with a vector there (merge of two sorted index lists)
//!   segment:  walk the postings of each query dim, accumulate per row, top-k of the allowed
//! ```

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Most entries of one sparse vector.
pub const MAX_SPARSE_ENTRIES: usize = 65_536;

/// A sparse vector: indices (dimension ids) ascending and unique, one finite value each.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SparseVector {
    /// Dimension ids, strictly ascending.
    pub indices: Vec<u32>,
    /// One value per index.
    pub values: Vec<f32>,
}

/// How a sparse space weighs query dimensions (Qdrant's `modifier`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Modifier {
    /// Plain dot product.
    #[default]
    None,
    /// Each query weight is multiplied by the dimension's inverse document frequency over the
    /// collection: `ln((N − df + 0.5) / (df + 0.5) + 1)`, N the points with a vector in the
    /// space, df those with the dimension.
    Idf,
}

impl Modifier {
    pub(crate) fn tag(self) -> u8 {
        match self {
            Modifier::None => 0,
            Modifier::Idf => 1,
        }
    }

    pub(crate) fn from_tag(t: u8) -> Option<Modifier> {
        match t {
            0 => Some(Modifier::None),
            1 => Some(Modifier::Idf),
            _ => None,
        }
    }

    /// Qdrant's name: `none` or `idf`.
    pub fn name(self) -> &'static str {
        match self {
            Modifier::None => "none",
            Modifier::Idf => "idf",
        }
    }

    /// Parses Qdrant's name (`none`, `idf`; case-insensitive).
    pub fn parse(s: &str, at: &str) -> Result<Modifier> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Modifier::None),
            "idf" => Ok(Modifier::Idf),
            _ => Err(Error::invalid(format!(
                "{at}: modifier {s:?} is not one of none, idf"
            ))),
        }
    }
}

/// One named sparse vector's parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SparseParams {
    /// Query weighting.
    pub modifier: Modifier,
}

/// Qdrant's IDF of a dimension held by `df` of `n` vectors.
pub(crate) fn idf(n: f64, df: f64) -> f32 {
    (((n - df + 0.5) / (df + 0.5)) + 1.0).ln() as f32
}

impl SparseVector {
    /// A sparse vector from unordered pairs: sorted by index here; a repeated index, a
    /// non-finite value, unequal lengths or more than [`MAX_SPARSE_ENTRIES`] entries are refused
    /// with an error naming `at`.
    pub fn new(indices: Vec<u32>, values: Vec<f32>, at: &str) -> Result<SparseVector> {
        if indices.len() != values.len() {
            return Err(Error::invalid(format!(
                "{at}: indices ({}) and values ({}) must have the same length",
                indices.len(),
                values.len()
            )));
        }
        if indices.len() > MAX_SPARSE_ENTRIES {
            return Err(Error::invalid(format!(
                "{at}: {} entries, at most {MAX_SPARSE_ENTRIES}",
                indices.len()
            )));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(format!(
                "{at}.values[{i}]: {} is not a finite number",
                values[i]
            )));
        }
        let mut pairs: Vec<(u32, f32)> = indices.into_iter().zip(values).collect();
        if !pairs.windows(2).all(|w| w[0].0 < w[1].0) {
            pairs.sort_by_key(|p| p.0);
            if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(Error::invalid(format!(
                    "{at}.indices: index {} is repeated (indices must be unique)",
                    w[0].0
                )));
            }
        }
        Ok(SparseVector {
            indices: pairs.iter().map(|p| p.0).collect(),
            values: pairs.iter().map(|p| p.1).collect(),
        })
    }

    /// Parses Qdrant's `{"indices": [..], "values": [..]}`.
    pub fn from_json(v: &Value, at: &str) -> Result<SparseVector> {
        let obj = v.as_object().ok_or_else(|| {
            Error::invalid(format!(
                "{at}: expected a sparse vector {{\"indices\": [...], \"values\": [...]}}"
            ))
        })?;
        Self::from_map(obj, at)
    }

    /// As [`Self::from_json`], from the object's fields.
    pub fn from_map(obj: &Map<String, Value>, at: &str) -> Result<SparseVector> {
        if let Some(k) = obj.keys().find(|k| *k != "indices" && *k != "values") {
            return Err(Error::invalid(format!(
                "{at}.{k}: unknown field of a sparse vector (expected indices, values)"
            )));
        }
        let list = |name: &str| -> Result<&Vec<Value>> {
            obj.get(name)
                .ok_or_else(|| Error::invalid(format!("{at}.{name}: missing")))?
                .as_array()
                .ok_or_else(|| Error::invalid(format!("{at}.{name}: expected a list")))
        };
        let indices = list("indices")?
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "{at}.indices[{i}]: expected an integer in 0..=4294967295, got {x}"
                        ))
                    })
            })
            .collect::<Result<Vec<u32>>>()?;
        let values = list("values")?
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_f64().map(|f| f as f32).ok_or_else(|| {
                    Error::invalid(format!("{at}.values[{i}]: expected a number, got {x}"))
                })
            })
            .collect::<Result<Vec<f32>>>()?;
        SparseVector::new(indices, values, at)
    }

    /// Qdrant's JSON shape.
    pub fn to_json(&self) -> Value {
        serde_json::json!({ "indices": self.indices, "values": self.values })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// True without entries.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Checks the invariants of a stored vector (ascending unique indices, equal lengths,
    /// finite values): what decoding a WAL record or a segment must not take on trust.
    pub(crate) fn check(indices: &[u32], values: &[f32]) -> std::result::Result<(), String> {
        if indices.len() != values.len() {
            return Err("sparse indices and values differ in length".into());
        }
        if !indices.windows(2).all(|w| w[0] < w[1]) {
            return Err("sparse indices not strictly ascending".into());
        }
        if !values.iter().all(|v| v.is_finite()) {
            return Err("non-finite sparse value".into());
        }
        Ok(())
    }
}

/// Dot product of two sparse vectors given as sorted (indices, values), and whether they share
/// a dimension.
pub(crate) fn dot(ai: &[u32], av: &[f32], bi: &[u32], bv: &[f32]) -> (f32, bool) {
    let (mut i, mut j, mut s, mut any) = (0, 0, 0f32, false);
    while i < ai.len() && j < bi.len() {
        match ai[i].cmp(&bi[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                s += av[i] * bv[j];
                any = true;
                i += 1;
                j += 1;
            }
        }
    }
    (s, any)
}

// ---------------------------------------------------------------------------------------------
// The segment section of one sparse space.

/// Bytes before the arrays: rows, dims, entries.
const SECTION_HEAD: usize = 16;

fn pad8(n: usize) -> usize {
    n.next_multiple_of(8)
}

/// Where each array of a sparse section lies (byte offsets within the section).
#[derive(Clone, Copy, Debug)]
struct SectionLayout {
    dims: usize,
    nnz: usize,
    presence: usize,
    row_off: usize,
    row_idx: usize,
    row_val: usize,
    dim_ids: usize,
    dim_off: usize,
    post_row: usize,
    post_val: usize,
    end: usize,
}

impl SectionLayout {
    fn new(rows: usize, dims: usize, nnz: usize) -> Option<SectionLayout> {
        let words = rows.div_ceil(64);
        let presence = SECTION_HEAD;
        let row_off = presence.checked_add(words.checked_mul(8)?)?;
        let row_idx = row_off.checked_add(rows.checked_add(1)?.checked_mul(8)?)?;
        let row_val = row_idx.checked_add(pad8(nnz.checked_mul(4)?))?;
        let dim_ids = row_val.checked_add(pad8(nnz * 4))?;
        let dim_off = dim_ids.checked_add(pad8(dims.checked_mul(4)?))?;
        let post_row = dim_off.checked_add(dims.checked_add(1)?.checked_mul(8)?)?;
        let post_val = post_row.checked_add(pad8(nnz * 4))?;
        let end = post_val.checked_add(pad8(nnz * 4))?;
        Some(SectionLayout {
            dims,
            nnz,
            presence,
            row_off,
            row_idx,
            row_val,
            dim_ids,
            dim_off,
            post_row,
            post_val,
            end,
        })
    }
}

/// Encodes one sparse space's rows (`None`: the row has no vector there) as a section: a
/// presence bitmap, the rows' entries, and the inverted index (per dimension, its rows
/// ascending with their values).
pub(crate) fn encode_section(rows: &[Option<&SparseVector>]) -> Vec<u8> {
    let nnz: usize = rows.iter().flatten().map(|v| v.len()).sum();
    let mut by_dim: std::collections::BTreeMap<u32, Vec<(u32, f32)>> = Default::default();
    for (r, v) in rows.iter().enumerate() {
        if let Some(v) = v {
            for (i, x) in v.indices.iter().zip(&v.values) {
                by_dim.entry(*i).or_default().push((r as u32, *x));
            }
        }
    }
    let l = SectionLayout::new(rows.len(), by_dim.len(), nnz).expect("section size fits usize");
    let mut b = vec![0u8; l.end];
    let put32 = |b: &mut [u8], at: usize, x: u32| b[at..at + 4].copy_from_slice(&x.to_le_bytes());
    let put64 = |b: &mut [u8], at: usize, x: u64| b[at..at + 8].copy_from_slice(&x.to_le_bytes());
    put32(&mut b, 0, rows.len() as u32);
    put32(&mut b, 4, by_dim.len() as u32);
    put64(&mut b, 8, nnz as u64);
    let mut off = 0usize;
    put64(&mut b, l.row_off, 0);
    for (r, v) in rows.iter().enumerate() {
        if let Some(v) = v {
            b[l.presence + r / 64 * 8 + (r % 64) / 8] |= 1 << (r % 8);
            for (k, (i, x)) in v.indices.iter().zip(&v.values).enumerate() {
                put32(&mut b, l.row_idx + (off + k) * 4, *i);
                put32(&mut b, l.row_val + (off + k) * 4, x.to_bits());
            }
            off += v.len();
        }
        put64(&mut b, l.row_off + (r + 1) * 8, off as u64);
    }
    let mut off = 0usize;
    put64(&mut b, l.dim_off, 0);
    for (d, (dim, post)) in by_dim.iter().enumerate() {
        put32(&mut b, l.dim_ids + d * 4, *dim);
        for (k, (row, x)) in post.iter().enumerate() {
            put32(&mut b, l.post_row + (off + k) * 4, *row);
            put32(&mut b, l.post_val + (off + k) * 4, x.to_bits());
        }
        off += post.len();
        put64(&mut b, l.dim_off + (d + 1) * 8, off as u64);
    }
    b
}

/// A checked view of a sparse section.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SparseView<'a> {
    presence: &'a [u64],
    row_off: &'a [u64],
    row_idx: &'a [u32],
    row_val: &'a [f32],
    dim_ids: &'a [u32],
    dim_off: &'a [u64],
    post_row: &'a [u32],
    post_val: &'a [f32],
}

impl<'a> SparseView<'a> {
    /// Views `b` (8-byte aligned) as the section of a segment with `rows` rows and checks its
    /// whole structure (see [`Self::verify`]).
    pub(crate) fn view(b: &'a [u8], rows: u32) -> std::result::Result<SparseView<'a>, String> {
        let v = Self::view_sized(b, rows)?;
        v.verify(rows)?;
        Ok(v)
    }

    /// Views `b` as the section of a segment with `rows` rows, checking only its sizes (O(1)):
    /// for a section verified when its segment was opened. Accessors never panic on a section
    /// that is not verified; they may answer nonsense from one.
    pub(crate) fn view_sized(
        b: &'a [u8],
        rows: u32,
    ) -> std::result::Result<SparseView<'a>, String> {
        if b.len() < SECTION_HEAD {
            return Err(format!("sparse section of {} bytes is too short", b.len()));
        }
        let get32 = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        let (n, dims) = (get32(0), get32(4) as usize);
        let nnz = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
        if n != rows {
            return Err(format!("sparse section has {n} rows, the segment {rows}"));
        }
        let nnz = usize::try_from(nnz).map_err(|_| "sparse entry count overflows".to_string())?;
        let l = SectionLayout::new(rows as usize, dims, nnz)
            .filter(|l| l.end == b.len())
            .ok_or_else(|| {
                format!(
                    "sparse section of {} bytes does not match {rows} rows, {dims} dimensions and {nnz} entries",
                    b.len()
                )
            })?;
        fn cast<T: bytemuck::Pod>(b: &[u8]) -> std::result::Result<&[T], String> {
            crate::codec::cast_slice(b).ok_or_else(|| "misaligned sparse section".to_string())
        }
        let v = SparseView {
            presence: cast(&b[l.presence..l.row_off])?,
            row_off: cast(&b[l.row_off..l.row_idx])?,
            row_idx: cast(&b[l.row_idx..l.row_idx + l.nnz * 4])?,
            row_val: cast(&b[l.row_val..l.row_val + l.nnz * 4])?,
            dim_ids: cast(&b[l.dim_ids..l.dim_ids + l.dims * 4])?,
            dim_off: cast(&b[l.dim_off..l.post_row])?,
            post_row: cast(&b[l.post_row..l.post_row + l.nnz * 4])?,
            post_val: cast(&b[l.post_val..l.post_val + l.nnz * 4])?,
        };
        Ok(v)
    }

    /// Checks the whole structure: offsets, ascending unique indices and rows, finite values,
    /// no presence bits past the rows, and that the inverted index holds exactly the rows'
    /// entries (counts per dimension agree).
    pub(crate) fn verify(&self, rows: u32) -> std::result::Result<(), String> {
        let v = self;
        let (nnz, dims) = (v.row_idx.len(), v.dim_ids.len());
        let monotone = |o: &[u64]| {
            o.first() == Some(&0)
                && o.windows(2).all(|w| w[0] <= w[1])
                && o.last() == Some(&(nnz as u64))
        };
        if !monotone(v.row_off) || !monotone(v.dim_off) {
            return Err("sparse offsets not monotonic or not ending at the entry count".into());
        }
        let mut per_dim = vec![0u64; dims];
        for r in 0..rows {
            let (idx, val) = v.row_raw(r);
            if !v.has(r) && !idx.is_empty() {
                return Err(format!("sparse row {r} has entries but no vector"));
            }
            SparseVector::check(idx, val).map_err(|e| format!("row {r}: {e}"))?;
            for i in idx {
                let d = v
                    .dim_ids
                    .binary_search(i)
                    .map_err(|_| format!("row {r}: dimension {i} missing from the index"))?;
                per_dim[d] += 1;
            }
        }
        if let Some(extra) = v.presence.iter().enumerate().find_map(|(w, x)| {
            let valid = (rows as usize).saturating_sub(w * 64).min(64);
            let mask = if valid == 64 {
                u64::MAX
            } else {
                (1u64 << valid) - 1
            };
            (x & !mask != 0).then_some(w)
        }) {
            return Err(format!(
                "sparse presence word {extra} has bits past the rows"
            ));
        }
        if !v.dim_ids.windows(2).all(|w| w[0] < w[1]) {
            return Err("sparse dimensions not strictly ascending".into());
        }
        for (d, want) in per_dim.iter().enumerate() {
            let (rs, vs) = v.postings_at(d);
            if rs.len() as u64 != *want || rs.is_empty() {
                return Err(format!(
                    "postings of dimension {} disagree with the rows",
                    v.dim_ids[d]
                ));
            }
            if !rs.windows(2).all(|w| w[0] < w[1]) || rs.last().is_some_and(|x| *x >= rows) {
                return Err(format!(
                    "postings of dimension {} not ascending within the rows",
                    v.dim_ids[d]
                ));
            }
            if !vs.iter().all(|x| x.is_finite()) {
                return Err("non-finite sparse posting value".into());
            }
        }
        Ok(())
    }

    /// True when row `r` has a vector in this space.
    pub(crate) fn has(&self, r: u32) -> bool {
        self.presence
            .get(r as usize / 64)
            .is_some_and(|w| w & (1 << (r % 64)) != 0)
    }

    fn row_raw(&self, r: u32) -> (&'a [u32], &'a [f32]) {
        let span = |o: &[u64], i: usize| Some((*o.get(i)? as usize, *o.get(i + 1)? as usize));
        span(self.row_off, r as usize)
            .and_then(|(a, b)| Some((self.row_idx.get(a..b)?, self.row_val.get(a..b)?)))
            .unwrap_or((&[], &[]))
    }

    /// Row `r`'s vector, if it has one.
    pub(crate) fn row(&self, r: u32) -> Option<SparseVector> {
        if !self.has(r) || r as usize + 1 >= self.row_off.len() {
            return None;
        }
        let (i, v) = self.row_raw(r);
        Some(SparseVector {
            indices: i.to_vec(),
            values: v.to_vec(),
        })
    }

    fn postings_at(&self, d: usize) -> (&'a [u32], &'a [f32]) {
        let span = |o: &[u64], i: usize| Some((*o.get(i)? as usize, *o.get(i + 1)? as usize));
        span(self.dim_off, d)
            .and_then(|(a, b)| Some((self.post_row.get(a..b)?, self.post_val.get(a..b)?)))
            .unwrap_or((&[], &[]))
    }

    /// The rows holding dimension `dim`, ascending, with their values.
    pub(crate) fn postings(&self, dim: u32) -> (&'a [u32], &'a [f32]) {
        match self.dim_ids.binary_search(&dim) {
            Ok(d) => self.postings_at(d),
            Err(_) => (&[], &[]),
        }
    }

    /// Rows with a vector here for which `allow` holds.
    pub(crate) fn count_vectors(&self, allow: &mut dyn FnMut(u32) -> bool) -> u64 {
        let rows = self.row_off.len().saturating_sub(1) as u32;
        (0..rows).filter(|r| self.has(*r) && allow(*r)).count() as u64
    }

    /// The allowed rows holding `dim`.
    pub(crate) fn df(&self, dim: u32, allow: &mut dyn FnMut(u32) -> bool) -> u64 {
        self.postings(dim).0.iter().filter(|r| allow(**r)).count() as u64
    }

    /// The `k` allowed rows with the highest dot product with the query (`indices` ascending,
    /// `weights` already modified), among rows sharing at least one dimension with it: (row,
    /// score), best first, ties by row.
    pub(crate) fn top_k(
        &self,
        indices: &[u32],
        weights: &[f32],
        k: usize,
        allow: &mut dyn FnMut(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        let mut acc: std::collections::HashMap<u32, f32> = Default::default();
        for (dim, w) in indices.iter().zip(weights) {
            let (rows, vals) = self.postings(*dim);
            for (r, x) in rows.iter().zip(vals) {
                *acc.entry(*r).or_insert(0.0) += w * x;
            }
        }
        let mut hits: Vec<(u32, f32)> = acc.into_iter().filter(|(r, _)| allow(*r)).collect();
        best_first(&mut hits, k);
        hits
    }
}

/// Sorts `(row, score)` best first (ties by row) and keeps `k`.
pub(crate) fn best_first(hits: &mut Vec<(u32, f32)>, k: usize) {
    let cmp = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if hits.len() > k && k > 0 {
        hits.select_nth_unstable_by(k - 1, cmp);
        hits.truncate(k);
    }
    hits.sort_by(cmp);
    hits.truncate(k);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sv(pairs: &[(u32, f32)]) -> SparseVector {
        SparseVector::new(
            pairs.iter().map(|p| p.0).collect(),
            pairs.iter().map(|p| p.1).collect(),
            "v",
        )
        .expect("valid")
    }

    /// Copies into 8-byte aligned memory, as a segment section is.
    fn aligned(b: &[u8]) -> Vec<u64> {
        let mut words = vec![0u64; b.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..b.len()].copy_from_slice(b);
        words
    }

    #[test]
    fn new_sorts_and_refuses_repeats_mismatches_and_non_finite_values() {
        let v = sv(&[(7, 1.0), (2, 2.0), (5, 3.0)]);
        assert_eq!((v.indices, v.values), (vec![2, 5, 7], vec![2.0, 3.0, 1.0]));
        let e = SparseVector::new(vec![1, 1], vec![1.0, 2.0], "q").expect_err("refused");
        assert!(e.message().contains("q.indices") && e.message().contains("repeated"));
        let e = SparseVector::new(vec![1], vec![1.0, 2.0], "q").expect_err("refused");
        assert!(e.message().contains("same length"));
        let e = SparseVector::new(vec![1], vec![f32::NAN], "q").expect_err("refused");
        assert!(e.message().contains("q.values[0]"));
        let e = SparseVector::from_json(&serde_json::json!({"indices": [-1], "values": [1]}), "x")
            .expect_err("refused");
        assert!(e.message().contains("x.indices[0]"), "{}", e.message());
        let e = SparseVector::from_json(&serde_json::json!({"indices": [1], "value": [1]}), "x")
            .expect_err("refused");
        assert!(e.message().contains("x.value"), "{}", e.message());
    }

    #[test]
    fn idf_matches_qdrants_formula() {
        // ln((N - df + 0.5) / (df + 0.5) + 1), N = 10, df = 2: ln(8.5 / 2.5 + 1) = ln(4.4).
        assert!((idf(10.0, 2.0) - 4.4f32.ln()).abs() < 1e-6);
        assert!(idf(10.0, 10.0) > 0.0);
    }

    #[test]
    fn a_section_answers_rows_postings_and_top_k_by_dot_product() {
        let a = sv(&[(1, 1.0), (3, 2.0)]);
        let b = sv(&[(3, 1.0), (9, 5.0)]);
        let empty = SparseVector::default();
        let rows = [Some(&a), None, Some(&b), Some(&empty)];
        let bytes = encode_section(&rows);
        let words = aligned(&bytes);
        let v = SparseView::view(&bytemuck::cast_slice(&words)[..bytes.len()], 4).expect("valid");
        assert_eq!(v.row(0), Some(a.clone()));
        assert_eq!(v.row(1), None);
        assert_eq!(v.row(3), Some(empty));
        assert_eq!(v.postings(3), (&[0u32, 2][..], &[2.0f32, 1.0][..]));
        assert_eq!(v.postings(4).0.len(), 0);
        assert_eq!(v.count_vectors(&mut |_| true), 3);
        assert_eq!(v.df(3, &mut |r| r != 2), 1);
        // Query {3: 1, 9: 1}: row 2 scores 6, row 0 scores 2; row 3 shares nothing.
        assert_eq!(
            v.top_k(&[3, 9], &[1.0, 1.0], 10, &mut |_| true),
            vec![(2, 6.0), (0, 2.0)]
        );
        assert_eq!(
            v.top_k(&[3, 9], &[1.0, 1.0], 1, &mut |r| r != 2),
            vec![(0, 2.0)]
        );
    }

    #[test]
    fn a_damaged_section_is_refused_not_trusted() {
        let a = sv(&[(1, 1.0), (3, 2.0)]);
        let bytes = encode_section(&[Some(&a), Some(&a)]);
        assert!(
            SparseView::view(&bytemuck::cast_slice(&aligned(&bytes))[..bytes.len()], 3).is_err()
        );
        // Every single-byte change is either refused or leaves a section that still views
        // consistently (values may change; structure may not break).
        for at in 0..bytes.len() {
            let mut b = bytes.clone();
            b[at] ^= 0x41;
            let words = aligned(&b);
            if let Ok(v) = SparseView::view(&bytemuck::cast_slice(&words)[..b.len()], 2) {
                for r in 0..2 {
                    let _ = v.row(r);
                }
                let _ = v.top_k(&[1, 3], &[1.0, 1.0], 2, &mut |_| true);
            }
        }
    }

    proptest! {
        #[test]
        fn section_top_k_equals_brute_force(
            rows in prop::collection::vec(
                prop::option::of(prop::collection::btree_map(0u32..40, -4.0f32..4.0, 0..8)),
                0..50,
            ),
            query in prop::collection::btree_map(0u32..40, -4.0f32..4.0, 1..6),
            k in 1usize..10,
        ) {
            let rows: Vec<Option<SparseVector>> = rows
                .into_iter()
                .map(|r| r.map(|m| sv(&m.into_iter().collect::<Vec<_>>())))
                .collect();
            let refs: Vec<Option<&SparseVector>> = rows.iter().map(Option::as_ref).collect();
            let bytes = encode_section(&refs);
            let words = aligned(&bytes);
            let v = SparseView::view(&bytemuck::cast_slice(&words)[..bytes.len()], rows.len() as u32)
                .expect("valid");
            let (qi, qv): (Vec<u32>, Vec<f32>) = query.into_iter().unzip();
            let mut want: Vec<(u32, f32)> = rows
                .iter()
                .enumerate()
                .filter_map(|(r, x)| {
                    let x = x.as_ref()?;
                    let (s, any) = dot(&qi, &qv, &x.indices, &x.values);
                    any.then_some((r as u32, s))
                })
                .collect();
            best_first(&mut want, k);
            let got = v.top_k(&qi, &qv, k, &mut |_| true);
            prop_assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                prop_assert!((g.1 - w.1).abs() < 1e-3, "{:?} vs {:?}", got, want);
            }
            for (r, x) in rows.iter().enumerate() {
                let got = v.row(r as u32);
                prop_assert_eq!(got.as_ref(), x.as_ref());
            }
        }
    }
}
