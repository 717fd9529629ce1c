//! The norm contract (`crate::MAX_SQUARED_NORM`): writes and queries whose squared norm would
//! let a distance overflow are refused naming the field and the point, and a vector stored
//! before the check (logged unchecked here, as an older version did) is kept but never
//! returned with, or ranked by, a score that is not a number: in the memtable, after WAL
//! replay, and in a compacted segment.

use super::*;
use crate::record::StoredPoint;
use crate::{CollectionConfig, EngineOptions, ErrorKind, PointInput};

/// Points besides the four the test names, so that compaction builds a graph (walked over codes).
const FILLERS: u64 = 40;

fn point(id: u64, v: [f32; 4]) -> PointInput {
    PointInput::new(PointId::Num(id), v.to_vec(), None)
}

fn refused(r: Result<Lsn>, needles: &[&str]) {
    let err = r.expect_err("must be refused");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    for n in needles {
        assert!(err.to_string().contains(n), "{err} should mention {n}");
    }
}

fn search(c: &CollectionHandle, q: [f32; 4], exact: bool) -> Vec<ScoredPoint> {
    let mut r = SearchRequest::new(q.to_vec(), 10);
    r.exact = exact;
    c.search(&r).expect("search")
}

/// Every returned score is a number and the legacy point (id 9) never comes back; the exact
/// match (id 1) is first.
fn answers_finitely(c: &CollectionHandle, metric: Distance, stage: &str) {
    for exact in [false, true] {
        let hits = search(c, [1.0, 2.0, 3.0, 4.0], exact);
        assert!(!hits.is_empty(), "{metric:?} {stage}: no hits");
        assert!(
            hits.iter().all(|h| h.score.is_finite()),
            "{metric:?} {stage}: {hits:?}"
        );
        assert!(
            hits.iter().all(|h| h.id != PointId::Num(9)),
            "{metric:?} {stage}: the overflowing point was returned: {hits:?}"
        );
        if metric != Distance::Dot {
            assert_eq!(hits[0].id, PointId::Num(1), "{metric:?} {stage}: {hits:?}");
        }
    }
    // Kept: nothing acknowledged is lost.
    assert_eq!(
        c.count(None).expect("count"),
        4 + FILLERS,
        "{metric:?} {stage}"
    );
}

#[test]
fn overflowing_norms_are_refused_and_never_scored() {
    for metric in [Distance::Cosine, Distance::Euclid, Distance::Dot] {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = || {
            let mut o = EngineOptions::new(dir.path());
            o.background = false;
            o.index_threshold_rows = 8;
            crate::Engine::open(o).expect("open")
        };
        let engine = open();
        let c = engine
            .create_collection(crate::DEFAULT_TENANT, "c", CollectionConfig::new(4, metric))
            .expect("create");
        c.upsert(vec![point(1, [1.0, 2.0, 3.0, 4.0])]).expect("ok");
        c.upsert(vec![point(2, [-1.0, 0.5, 0.0, 2.0])]).expect("ok");
        c.upsert(
            (0..FILLERS)
                .map(|i| {
                    let f = |m: u64| (i * m % 11) as f32 - 5.0;
                    point(100 + i, [f(3), f(7), -1.0 - f(5).abs(), f(2)])
                })
                .collect(),
        )
        .expect("fillers");
        // Just within the bound: 9e36.
        c.upsert(vec![point(3, [3e18, 0.0, 0.0, 0.0])])
            .expect("within the bound");
        // Every component finite, the squared norm not (f32) or past the bound.
        refused(
            c.upsert(vec![point(1, [1.0; 4]), point(5, [3e38; 4])]),
            &["points[1].vector", "(point 5)", "squared norm"],
        );
        refused(
            c.upsert(vec![point(6, [1e19, 0.0, 0.0, 0.0])]),
            &["points[0].vector", "(point 6)", "squared norm 1e38"],
        );
        refused(
            c.update_vectors(vec![(
                PointId::Num(2),
                [(String::new(), vec![0.0, 0.0, 2e19, 0.0])].into(),
            )]),
            &["points[0].vector", "(point 2)", "squared norm"],
        );
        let q = SearchRequest::new(vec![3e38; 4], 10);
        let err = c.search(&q).expect_err("query refused");
        assert!(
            err.kind() == ErrorKind::InvalidArgument && err.to_string().contains("vector"),
            "{err}"
        );
        assert_eq!(
            c.count(None).expect("count"),
            3 + FILLERS,
            "refused batches left nothing"
        );

        // As an older version stored it: logged unchecked (Cosine: not normalised, as
        // normalising it overflowed).
        c.commit(WalOp::Upsert(vec![StoredPoint {
            id: PointId::Num(9),
            vectors: vec![(0, vec![3e38; 4])],
            sparse: Vec::new(),
            payload: Vec::new(),
        }]))
        .expect("logged");
        answers_finitely(&c, metric, "memtable");
        drop(c);
        drop(engine);

        let engine = open();
        let c = engine
            .collection(crate::DEFAULT_TENANT, "c")
            .expect("collection");
        answers_finitely(&c, metric, "after WAL replay");
        assert!(c.flush().expect("flush"));
        answers_finitely(&c, metric, "flushed segment");
        assert!(c.compact().expect("compact"));
        assert!(
            c.info().expect("info").indexed_segments == 1,
            "{metric:?}: compaction built a graph"
        );
        answers_finitely(&c, metric, "compacted segment");
    }
}
