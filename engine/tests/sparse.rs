//! Sparse vectors: stored through the WAL, the memtable, segments (the inverted index) and
//! compaction; searched by dot product (optionally IDF-weighted) with the same answers as a
//! brute-force reference wherever the points live; returned by reads; edited; reopened.

use std::collections::BTreeMap;

use serde_json::json;
use strata_engine::*;

fn open(dir: &std::path::Path) -> Engine {
    let mut o = EngineOptions::new(dir);
    o.background = false;
    Engine::open(o).expect("open")
}

fn config(modifier: Modifier) -> CollectionConfig {
    CollectionConfig::named(vec![("dense".into(), VectorParams::new(2, Distance::Dot))])
        .with_sparse(vec![
            ("text".into(), SparseParams { modifier }),
            ("other".into(), SparseParams::default()),
        ])
}

/// A deterministic sparse vector for point `i`: 1 to 5 dims out of 30.
fn sparse_of(i: u64) -> SparseVector {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut m = BTreeMap::new();
    for _ in 0..(1 + i % 5) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        m.insert((x % 30) as u32, ((x >> 32) % 100) as f32 / 10.0 + 0.1);
    }
    let (indices, values) = m.into_iter().unzip();
    SparseVector::new(indices, values, "test").expect("valid")
}

fn point(i: u64) -> PointInput {
    let mut sparse = SparseVectors::new();
    if i % 7 != 3 {
        sparse.insert("text".into(), sparse_of(i));
    }
    PointInput {
        id: PointId::Num(i),
        vectors: Vectors::from([("dense".to_string(), vec![i as f32, 1.0])]),
        sparse,
        payload: Some(
            json!({"even": i.is_multiple_of(2)})
                .as_object()
                .cloned()
                .expect("object"),
        ),
    }
}

/// The reference: every live point's `text` vector by id.
type Model = BTreeMap<u64, SparseVector>;

fn dot(q: &SparseVector, v: &SparseVector, w: &dyn Fn(u32) -> f32) -> Option<f32> {
    let mut s = 0.0;
    let mut any = false;
    for (i, x) in q.indices.iter().zip(&q.values) {
        if let Ok(k) = v.indices.binary_search(i) {
            s += x * w(*i) * v.values[k];
            any = true;
        }
    }
    any.then_some(s)
}

fn reference(
    model: &Model,
    q: &SparseVector,
    idf: bool,
    keep: &dyn Fn(u64) -> bool,
) -> Vec<(u64, f32)> {
    let n = model.len() as f64;
    let weight = |d: u32| {
        if !idf {
            return 1.0;
        }
        let df = model
            .values()
            .filter(|v| v.indices.binary_search(&d).is_ok())
            .count() as f64;
        (((n - df + 0.5) / (df + 0.5)) + 1.0).ln() as f32
    };
    let mut hits: Vec<(u64, f32)> = model
        .iter()
        .filter(|(id, _)| keep(**id))
        .filter_map(|(id, v)| Some((*id, dot(q, v, &weight)?)))
        .collect();
    hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    hits
}

fn check(c: &CollectionHandle, model: &Model, idf: bool, when: &str) {
    for qi in [1u64, 2, 5, 11, 40] {
        let q = sparse_of(qi * 1000 + 7);
        for filtered in [false, true] {
            let mut req = SearchRequest::new(Vec::new(), 10);
            req.using = "text".into();
            if filtered {
                req.filter = Some(
                    Filter::from_json(
                        &json!({"must": [{"key": "even", "match": {"value": true}}]}),
                        "filter",
                    )
                    .expect("filter"),
                );
            }
            let got = c.search_sparse(&req, &q).expect("search");
            let want = reference(model, &q, idf, &|id| !filtered || id % 2 == 0);
            let want: Vec<(u64, f32)> = want.into_iter().take(10).collect();
            assert_eq!(
                got.points.len(),
                want.len(),
                "{when}: query {qi} filtered {filtered}"
            );
            for (g, (wid, ws)) in got.points.iter().zip(&want) {
                assert!(
                    (g.score - ws).abs() <= 1e-3 * ws.abs().max(1.0),
                    "{when}: query {qi}: got {:?} {}, want {wid} {ws}",
                    g.id,
                    g.score
                );
            }
            // Ids agree wherever scores are not tied.
            let gi: Vec<PointId> = got.points.iter().map(|p| p.id).collect();
            let wi: Vec<PointId> = want.iter().map(|w| PointId::Num(w.0)).collect();
            if want.windows(2).all(|w| (w[0].1 - w[1].1).abs() > 1e-3) {
                assert_eq!(gi, wi, "{when}: query {qi} filtered {filtered}");
            }
        }
    }
}

#[test]
fn sparse_search_matches_a_brute_force_reference_in_memtable_segments_and_after_reopen() {
    for (modifier, idf) in [(Modifier::None, false), (Modifier::Idf, true)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut engine = open(dir.path());
        let mut c = engine
            .create_collection(DEFAULT_TENANT, "s", config(modifier))
            .expect("create");
        let mut model = Model::new();
        let apply = |c: &CollectionHandle, model: &mut Model, ids: std::ops::Range<u64>| {
            let points: Vec<PointInput> = ids.map(point).collect();
            for p in &points {
                match p.sparse.get("text") {
                    Some(v) => model.insert(p.id_num(), v.clone()),
                    None => model.remove(&p.id_num()),
                };
            }
            c.upsert(points).expect("upsert");
        };
        apply(&c, &mut model, 0..120);
        check(&c, &model, idf, "memtable");
        c.flush().expect("flush");
        apply(&c, &mut model, 100..200); // 100..120 shadow the segment's rows
        c.delete(&[PointId::Num(5), PointId::Num(150)])
            .expect("delete");
        model.remove(&5);
        model.remove(&150);
        check(&c, &model, idf, "memtable + segment");
        c.flush().expect("flush");
        check(&c, &model, idf, "two segments");
        c.compact().expect("compact");
        check(&c, &model, idf, "compacted");
        apply(&c, &mut model, 190..210);
        drop(c);
        drop(engine);
        engine = open(dir.path());
        c = engine.collection(DEFAULT_TENANT, "s").expect("reopened");
        check(&c, &model, idf, "reopened (WAL replay + segments)");
        assert_eq!(c.config(), config(modifier));
    }
}

trait IdNum {
    fn id_num(&self) -> u64;
}
impl IdNum for PointInput {
    fn id_num(&self) -> u64 {
        match self.id {
            PointId::Num(n) => n,
            PointId::Uuid(_) => unreachable!("numeric ids only"),
        }
    }
}

#[test]
fn reads_return_sparse_vectors_and_edits_keep_or_change_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path());
    let c = engine
        .create_collection(DEFAULT_TENANT, "r", config(Modifier::None))
        .expect("create");
    c.upsert((0..10).map(point).collect()).expect("upsert");
    let get = |id: u64| {
        c.get(&[PointId::Num(id)], true, true)
            .expect("get")
            .pop()
            .expect("present")
    };
    for flushed in [false, true] {
        let r = get(1);
        assert_eq!(
            r.sparse.get("text"),
            Some(&sparse_of(1)),
            "flushed {flushed}"
        );
        assert!(get(3).sparse.is_empty(), "point 3 has no sparse vector");
        let page = c
            .scroll(&ScrollRequest {
                limit: 10,
                with_vector: true,
                ..ScrollRequest::default()
            })
            .expect("scroll");
        assert_eq!(page.points[2].sparse.get("text"), Some(&sparse_of(2)));
        c.flush().expect("flush");
    }
    // A payload edit keeps the sparse vector; a vector update replaces it; delete removes it.
    c.edit(&[PointId::Num(1)], &PointEdit::ClearPayload)
        .expect("clear");
    assert_eq!(get(1).sparse.get("text"), Some(&sparse_of(1)));
    let new = SparseVector::new(vec![29, 3], vec![1.0, 2.0], "v").expect("valid");
    c.update_vectors_with_sparse(vec![(
        PointId::Num(1),
        Vectors::new(),
        SparseVectors::from([("other".to_string(), new.clone())]),
    )])
    .expect("update");
    let r = get(1);
    assert_eq!(
        (r.sparse.get("text"), r.sparse.get("other")),
        (Some(&sparse_of(1)), Some(&new))
    );
    c.edit(
        &[PointId::Num(1)],
        &PointEdit::DeleteVectors(vec!["text".into()]),
    )
    .expect("delete vectors");
    let r = get(1);
    assert_eq!(
        (r.sparse.get("text"), r.sparse.get("other")),
        (None, Some(&new))
    );
    assert_eq!(
        r.vectors.expect("vectors").get("dense"),
        Some(&vec![1.0, 1.0])
    );
}

#[test]
fn bad_sparse_input_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path());
    let c = engine
        .create_collection(DEFAULT_TENANT, "b", config(Modifier::None))
        .expect("create");
    let mut p = point(1);
    p.sparse.insert("nope".into(), sparse_of(1));
    let e = c.upsert(vec![p]).expect_err("unknown name");
    assert!(
        e.message().contains("points[0].vector.nope"),
        "{}",
        e.message()
    );
    let mut req = SearchRequest::new(Vec::new(), 3);
    req.using = "dense".into();
    let e = c
        .search_sparse(&req, &sparse_of(1))
        .expect_err("dense name");
    assert!(e.message().contains("using"), "{}", e.message());
    // A repeated name in dense and sparse vectors is refused at creation.
    let bad = CollectionConfig::named(vec![("x".into(), VectorParams::new(2, Distance::Dot))])
        .with_sparse(vec![("x".into(), SparseParams::default())]);
    let e = engine
        .create_collection(DEFAULT_TENANT, "bad", bad)
        .expect_err("clash");
    assert!(e.message().contains("sparse_vectors.x"), "{}", e.message());
    // Sparse only: no dense vector at all.
    let only = CollectionConfig::named(Vec::new())
        .with_sparse(vec![("t".into(), SparseParams::default())]);
    let c = engine
        .create_collection(DEFAULT_TENANT, "only", only)
        .expect("sparse only");
    c.upsert(vec![PointInput {
        id: PointId::Num(1),
        vectors: Vectors::new(),
        sparse: SparseVectors::from([("t".to_string(), sparse_of(1))]),
        payload: None,
    }])
    .expect("upsert");
    c.flush().expect("flush");
    c.compact().expect("compact");
    let mut req = SearchRequest::new(Vec::new(), 3);
    req.using = "t".into();
    let hits = c.search_sparse(&req, &sparse_of(1)).expect("search");
    assert_eq!(hits.points.len(), 1);
}

#[test]
fn cold_segments_answer_sparse_searches_and_reads_unchanged() {
    use std::sync::Arc;
    use strata_engine::storage::{BlobStore, MemStorage, MemStore};
    let cold: Arc<dyn BlobStore> = Arc::new(MemStore::new());
    let local = MemStorage::new();
    let mut o = EngineOptions::with_storage(local.storage());
    o.cold = Some(Arc::clone(&cold));
    o.background = false;
    o.tiers.warm_bytes = Some(1); // nothing stays local: every read streams from the cold store
    o.tiers.min_residence = std::time::Duration::ZERO;
    let e = Engine::open(o).expect("open");
    let c = e
        .create_collection(DEFAULT_TENANT, "cold", config(Modifier::Idf))
        .expect("create");
    let mut model = Model::new();
    for range in [0..80u64, 60..140] {
        let points: Vec<PointInput> = range.map(point).collect();
        for p in &points {
            match p.sparse.get("text") {
                Some(v) => model.insert(p.id_num(), v.clone()),
                None => model.remove(&p.id_num()),
            };
        }
        c.upsert(points).expect("upsert");
        c.flush().expect("flush");
    }
    assert!(e.run_mover().expect("mover"));
    assert_eq!(e.stats().tier_segments, [0, 0, 2], "both segments cold");
    check(&c, &model, true, "cold");
    // Reads returning vectors stream the sparse sections with the rows.
    let r = c
        .get(&[PointId::Num(61), PointId::Num(3)], true, true)
        .expect("get");
    assert_eq!(r[0].sparse.get("text"), Some(&sparse_of(61)));
    assert!(r[1].sparse.is_empty());
    let mut req = SearchRequest::new(vec![1.0, 0.0], 3);
    req.using = "dense".into();
    req.with_vector = true;
    for h in c.search(&req).expect("dense search") {
        let PointId::Num(n) = h.id else {
            panic!("numeric ids")
        };
        assert_eq!(h.sparse.get("text"), model.get(&n), "point {n}");
    }
    let mut req = SearchRequest::new(Vec::new(), 5);
    req.using = "text".into();
    req.with_vector = true;
    req.with_payload = true;
    for h in c
        .search_sparse(&req, &sparse_of(7))
        .expect("sparse search")
        .points
    {
        let PointId::Num(n) = h.id else {
            panic!("numeric ids")
        };
        assert_eq!(h.sparse.get("text"), model.get(&n), "point {n}");
        assert!(h.payload.expect("payload").contains_key("even"));
    }
    assert!(e.stats().cold_reads_streamed > 0);
}
