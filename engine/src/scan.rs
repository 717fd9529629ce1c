//! Exact top-k scan: the memtable's search, the fallback for very selective filters and small
//! segments, and the ground truth for recall tests.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::distance;
use crate::types::Distance;

/// A candidate: internal distance (lower is closer) and row number.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    /// Internal distance, lower is closer.
    pub dist: f32,
    /// Row number within its source.
    pub row: u32,
}

impl Eq for Hit {}
impl Ord for Hit {
    fn cmp(&self, other: &Self) -> Ordering {
        self.dist
            .total_cmp(&other.dist)
            .then(self.row.cmp(&other.row))
    }
}
impl PartialOrd for Hit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Keeps the `k` smallest hits seen.
#[derive(Debug)]
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Hit>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> TopK {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }
    /// Worst distance kept, or +inf while not full.
    #[inline]
    pub(crate) fn bound(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::INFINITY
        } else {
            self.heap.peek().map_or(f32::INFINITY, |h| h.dist)
        }
    }
    #[inline]
    pub(crate) fn push(&mut self, hit: Hit) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(hit);
        } else if hit < *self.heap.peek().expect("heap is full, so not empty") {
            self.heap.pop();
            self.heap.push(hit);
        }
    }
    /// Hits, closest first.
    pub(crate) fn into_sorted(self) -> Vec<Hit> {
        self.heap.into_sorted_vec()
    }
}

/// Exact top-`k` of `query` over row-major `rows` (`dim` floats each), keeping rows for which
/// `allow(row)` is true. Closest first.
pub fn top_k(
    metric: Distance,
    query: &[f32],
    rows: &[f32],
    dim: usize,
    k: usize,
    mut allow: impl FnMut(u32) -> bool,
) -> Vec<Hit> {
    let mut top = TopK::new(k);
    for (i, v) in rows.chunks_exact(dim).enumerate() {
        let row = i as u32;
        if !allow(row) {
            continue;
        }
        let dist = distance::distance(metric, query, v);
        if dist < top.bound() {
            top.push(Hit { dist, row });
        }
    }
    top.into_sorted()
}

/// Exact top-`k` of `query` over the given rows of row-major `rows` (ascending row numbers).
pub(crate) fn top_k_rows(
    metric: Distance,
    query: &[f32],
    rows: &[f32],
    dim: usize,
    k: usize,
    which: impl Iterator<Item = u32>,
) -> Vec<Hit> {
    let mut top = TopK::new(k);
    for row in which {
        let Some(v) = rows.get(row as usize * dim..(row as usize + 1) * dim) else {
            continue;
        };
        let dist = distance::distance(metric, query, v);
        if dist < top.bound() {
            top.push(Hit { dist, row });
        }
    }
    top.into_sorted()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_matches_sort() {
        let dim = 3;
        let rows: Vec<f32> = (0..300).map(|i| ((i * 37) % 101) as f32).collect();
        let q = [10.0, 20.0, 30.0];
        let got = top_k(Distance::Euclid, &q, &rows, dim, 7, |r| r % 2 == 0);
        let mut all: Vec<Hit> = rows
            .chunks_exact(dim)
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(i, v)| Hit {
                dist: distance::l2sq(&q, v),
                row: i as u32,
            })
            .collect();
        all.sort();
        assert_eq!(got, all[..7].to_vec());
        assert!(top_k(Distance::Dot, &q, &rows, dim, 0, |_| true).is_empty());
    }
}
