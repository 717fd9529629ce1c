//! The planner's cost model for a filtered search of one segment: an exact scan of the rows
//! the filter allows, or a graph walk that passes over the refused ones.
//!
//! Both estimates are nanoseconds on the machine the constants were fitted on (the filter
//! sweep in `docs/benchmarks.md`, "Filter routing by cost": GloVe-400k and bigann10k, AMD
//! EPYC); only their ratio decides, so a faster or slower machine shifts both alike.
//!
//! - A **scan** streams the allowed rows' `f32` vectors: a random access per run of
//!   consecutive allowed rows, then memory bandwidth per byte (a filter matching every tenth
//!   row costs 4× one matching the same number of rows in runs of 100). When no payload index
//!   answered the filter, it also tests the filter on every row.
//! - A **walk** measures about `WALK_EVALS_PER_EF · ef` neighbours unfiltered (a random access
//!   each, plus the bytes of a code or vector) and, to gather `ef` allowed nodes when only a
//!   fraction `s` of rows are allowed, `(1/s)^WALK_SPREAD` times more (fitted: 0.87 from 50 %
//!   down to 1 %), never more than every node once.

/// Neighbours a walk measures per unit of `ef`, unfiltered.
const WALK_EVALS_PER_EF: f64 = 38.0;
/// How a walk's work grows with `1 / selectivity`.
const WALK_SPREAD: f64 = 0.87;
/// A walk's cost per neighbour measured: a random access, plus per byte it reads.
const WALK_EVAL_NS: f64 = 20.0;
const WALK_BYTE_NS: f64 = 0.15;
/// A scan's cost per run of consecutive allowed rows (a random access), plus per byte of the
/// rows' vectors (streamed).
const SCAN_RUN_NS: f64 = 40.0;
const SCAN_BYTE_NS: f64 = 0.066;
/// Testing one row against a filter no index answered (payload columns): an estimate, not
/// fitted (the sweep's filters are all indexed).
const FILTER_ROW_NS: f64 = 5.0;

/// What the planner knows about one filtered search of one segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FilteredSearch {
    /// Rows in the segment.
    pub(crate) rows: f64,
    /// Rows the filter allows (exact from indexes, else sampled).
    pub(crate) allowed: f64,
    /// Runs of consecutive allowed rows, when the indexes answered the filter (a row set);
    /// `None`: the filter is tested on every row, and the allowed ones fall anywhere.
    pub(crate) runs: Option<f64>,
    pub(crate) dim: usize,
    /// The walk's candidate list (at least k).
    pub(crate) ef: usize,
    /// The walk measures one-byte codes, not `f32` vectors.
    pub(crate) codes: bool,
    /// Rows a walk confined by payload links passes through (the blocks of the filter's
    /// values, see `links.rs`); `None`: it passes through every row.
    pub(crate) within: Option<f64>,
}

impl FilteredSearch {
    fn selectivity(&self) -> f64 {
        (self.allowed / self.rows.max(1.0)).clamp(1e-9, 1.0)
    }

    /// Estimated nanoseconds of an exact scan of the allowed rows.
    pub(crate) fn scan_cost(&self) -> f64 {
        let (runs, filter) = match self.runs {
            Some(runs) => (runs, 0.0),
            None => (
                self.allowed * (1.0 - self.selectivity()),
                self.rows * FILTER_ROW_NS,
            ),
        };
        filter + runs * SCAN_RUN_NS + self.allowed * (self.dim * 4) as f64 * SCAN_BYTE_NS
    }

    /// Estimated nanoseconds of a graph walk gathering `ef` allowed nodes.
    pub(crate) fn walk_cost(&self) -> f64 {
        // A confined walk is a walk of a graph over the blocks' rows, where the filter allows
        // a larger share.
        let (rows, s) = match self.within {
            Some(w) => (w, (self.allowed / w.max(1.0)).clamp(1e-9, 1.0)),
            None => (self.rows, self.selectivity()),
        };
        let evals = (WALK_EVALS_PER_EF * self.ef as f64 * s.recip().powf(WALK_SPREAD)).min(rows);
        let bytes = match self.codes {
            // A row of codes is padded to a power of two up to 64 bytes, then to 64.
            true if self.dim <= 64 => self.dim.next_power_of_two() as f64,
            true => self.dim.next_multiple_of(64) as f64,
            false => (self.dim * 4) as f64,
        };
        // The walk tests the filter on the neighbours close enough to become candidates.
        let filter = match self.runs {
            Some(_) => 0.0,
            None => FILTER_ROW_NS / 2.0,
        };
        evals * (WALK_EVAL_NS + bytes * WALK_BYTE_NS + filter)
    }

    /// Whether a walk is estimated cheaper than a scan.
    pub(crate) fn walk_is_cheaper(&self) -> bool {
        self.walk_cost() < self.scan_cost()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glove(allowed: f64, runs: Option<f64>, ef: usize) -> FilteredSearch {
        FilteredSearch {
            rows: 400_000.0,
            allowed,
            runs,
            dim: 50,
            ef,
            codes: true,
            within: None,
        }
    }

    /// The choices the sweep in docs/benchmarks.md measured as faster (GloVe-400k, codes).
    #[test]
    fn picks_the_path_the_sweep_measured_faster() {
        // Every tenth row (40,000 runs of 1): scan 2.3 ms, walk at ef 64 0.6 ms.
        assert!(glove(40_000.0, Some(40_000.0), 64).walk_is_cheaper());
        // 10 % in 400 runs of 100: scan 0.56 ms, walk at ef 32 0.36 ms, at ef 128 1.06 ms.
        assert!(glove(40_000.0, Some(400.0), 32).walk_is_cheaper());
        assert!(!glove(40_000.0, Some(400.0), 128).walk_is_cheaper());
        // 50 %: walk (0.38 ms at ef 64) far below the scan (2.9 ms).
        assert!(glove(200_000.0, Some(400.0), 64).walk_is_cheaper());
        // 5 %, 2 %, 1 % in runs: the scan (0.29, 0.14, 0.09 ms) beats any walk (≥ 0.6 ms).
        for allowed in [20_000.0, 8_000.0, 4_000.0] {
            assert!(
                !glove(allowed, Some(400.0), 32).walk_is_cheaper(),
                "{allowed}"
            );
        }
        // bigann10k, every tenth row (1,000 of 10,000, 128-d): the scan is faster.
        let bigann = FilteredSearch {
            rows: 10_000.0,
            allowed: 1_000.0,
            runs: Some(1_000.0),
            dim: 128,
            ef: 16,
            codes: true,
            within: None,
        };
        assert!(!bigann.walk_is_cheaper());
    }

    /// A walk confined by payload links to the blocks of the filter's values costs what a walk
    /// of a graph over those rows costs at the allowed share of them: a 2 % filter in runs,
    /// scanned without links, is walked within its block; a 10 % filter's walk costs no more
    /// than an unfiltered one; a confined walk never counts more rows than the blocks hold.
    #[test]
    fn a_confined_walk_counts_the_blocks_rows() {
        let two = glove(8_000.0, Some(80.0), 64);
        assert!(!two.walk_is_cheaper(), "unconfined, the scan wins");
        let confined = FilteredSearch {
            within: Some(8_000.0),
            ..two
        };
        assert!(
            confined.walk_is_cheaper(),
            "within its block, the walk wins"
        );
        let ten = FilteredSearch {
            within: Some(40_000.0),
            ..glove(40_000.0, Some(40_000.0), 64)
        };
        let unfiltered = glove(400_000.0, Some(1.0), 64);
        assert!(ten.walk_cost() <= unfiltered.walk_cost() + 1.0);
        // Half the block allowed (the value and another condition): dearer than all of it.
        let half = FilteredSearch {
            allowed: 20_000.0,
            ..ten
        };
        assert!(half.walk_cost() > ten.walk_cost());
        let tiny = FilteredSearch {
            allowed: 1.0,
            within: Some(2_000.0),
            ..ten
        };
        assert!(tiny.walk_cost() <= 2_000.0 * (WALK_EVAL_NS + 64.0 * WALK_BYTE_NS) + 1.0);
    }

    /// A walk never costs more than measuring every node; a scan grows with the rows allowed.
    #[test]
    fn costs_are_monotone_and_bounded() {
        let all = glove(400_000.0, Some(1.0), 64);
        let tiny = glove(1.0, Some(1.0), 64);
        assert!(tiny.walk_cost() <= 400_000.0 * (WALK_EVAL_NS + 64.0 * WALK_BYTE_NS) + 1.0);
        assert!(all.scan_cost() > tiny.scan_cost());
        assert!(
            glove(10_000.0, None, 64).scan_cost() > glove(10_000.0, Some(10_000.0), 64).scan_cost()
        );
    }
}
