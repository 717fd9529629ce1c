//! Point edits (payload set / overwrite / delete keys / clear, vector update / delete): each
//! keeps what it does not touch, survives flush and reopen, and vector updates are all or
//! nothing.

use serde_json::{Value, json};
use strata_engine::*;

fn obj(v: Value) -> Payload {
    v.as_object().cloned().expect("object")
}

fn open(dir: &std::path::Path) -> Engine {
    let mut o = EngineOptions::new(dir);
    o.background = false;
    Engine::open(o).expect("open")
}

fn config() -> CollectionConfig {
    CollectionConfig::named(vec![
        ("a".into(), VectorParams::new(2, Distance::Dot)),
        ("b".into(), VectorParams::new(3, Distance::Euclid)),
    ])
}

fn point(id: u64) -> PointInput {
    let mut v = Vectors::new();
    v.insert("a".into(), vec![id as f32, 1.0]);
    v.insert("b".into(), vec![0.0, id as f32, 0.0]);
    PointInput {
        id: PointId::Num(id),
        vectors: v,
        sparse: Default::default(),
        payload: Some(obj(
            json!({"n": id, "keep": true, "nested": {"x": 1, "y": 2}}),
        )),
    }
}

fn get(c: &CollectionHandle, id: u64) -> Record {
    c.get(&[PointId::Num(id)], true, true)
        .expect("get")
        .pop()
        .expect("present")
}

#[test]
fn edits_keep_what_they_do_not_touch_across_flush_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut engine = open(dir.path());
    let mut c = engine
        .create_collection(DEFAULT_TENANT, "e", config())
        .expect("create");
    c.upsert((0..6).map(point).collect()).expect("upsert");
    c.flush().expect("flush"); // points 0..6 in a segment; edits shadow them from the memtable
    let ids = |v: &[u64]| v.iter().map(|i| PointId::Num(*i)).collect::<Vec<_>>();
    c.edit(
        &ids(&[0, 99]),
        &PointEdit::OverwritePayload(obj(json!({"only": 1}))),
    )
    .expect("overwrite");
    c.edit(
        &ids(&[1]),
        &PointEdit::DeletePayload(vec!["keep".into(), "nested.x".into()]),
    )
    .expect("delete keys");
    c.edit(&ids(&[2]), &PointEdit::ClearPayload).expect("clear");
    c.edit(&ids(&[3]), &PointEdit::DeleteVectors(vec!["b".into()]))
        .expect("delete vectors");
    let n4 =
        Filter::parse_str(r#"{"must": [{"key": "n", "match": {"value": 4}}]}"#).expect("filter");
    c.edit_matching(&n4, &PointEdit::SetPayload(obj(json!({"tag": "four"}))))
        .expect("set by filter");
    let mut v5 = Vectors::new();
    v5.insert("a".into(), vec![-1.0, -2.0]);
    c.update_vectors(vec![(PointId::Num(5), v5)])
        .expect("update vectors");
    for round in 0..3 {
        if round == 1 {
            c.flush().expect("flush");
            c.compact().expect("compact");
        }
        if round == 2 {
            drop(c);
            drop(engine);
            engine = open(dir.path());
            c = engine.collection(DEFAULT_TENANT, "e").expect("reopen");
        }
        let r = get(&c, 0);
        assert_eq!(r.payload, Some(obj(json!({"only": 1}))), "round {round}");
        assert_eq!(r.vectors.as_ref().map(|v| v.len()), Some(2));
        let r = get(&c, 1);
        assert_eq!(r.payload, Some(obj(json!({"n": 1, "nested": {"y": 2}}))));
        assert_eq!(get(&c, 2).payload, Some(Payload::new()));
        let r = get(&c, 3);
        assert_eq!(
            r.vectors
                .as_ref()
                .map(|v| v.keys().cloned().collect::<Vec<_>>()),
            Some(vec!["a".to_string()])
        );
        assert_eq!(r.payload.as_ref().and_then(|p| p.get("n")), Some(&json!(3)));
        assert_eq!(
            get(&c, 4).payload.as_ref().and_then(|p| p.get("tag")),
            Some(&json!("four"))
        );
        let r = get(&c, 5);
        let v = r.vectors.expect("vectors");
        assert_eq!(v["a"], vec![-1.0, -2.0]);
        assert_eq!(v["b"], vec![0.0, 5.0, 0.0]);
        assert_eq!(r.payload.as_ref().and_then(|p| p.get("n")), Some(&json!(5)));
        assert_eq!(c.count(None).expect("count"), 6, "no point lost or added");
        // A point without vector `b` is not found by a search of `b`.
        let mut q = SearchRequest::new(vec![0.0, 3.0, 0.0], 6);
        q.using = "b".into();
        q.exact = true;
        let hits: Vec<PointId> = c.search(&q).expect("search").iter().map(|h| h.id).collect();
        assert_eq!(hits.len(), 5);
        assert!(!hits.contains(&PointId::Num(3)));
    }
}

#[test]
fn vector_updates_are_all_or_nothing_and_errors_name_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path());
    let c = engine
        .create_collection(DEFAULT_TENANT, "e", config())
        .expect("create");
    c.upsert((0..3).map(point).collect()).expect("upsert");
    let before = c.get(&[PointId::Num(1)], true, true).expect("get");
    let v = |name: &str, x: Vec<f32>| {
        let mut m = Vectors::new();
        m.insert(name.into(), x);
        m
    };
    let e = c
        .update_vectors(vec![
            (PointId::Num(1), v("a", vec![9.0, 9.0])),
            (PointId::Num(42), v("a", vec![1.0, 1.0])),
        ])
        .expect_err("absent point");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.message().contains("42"), "{}", e.message());
    assert_eq!(
        c.get(&[PointId::Num(1)], true, true).expect("get"),
        before,
        "nothing applied"
    );
    for (points, field) in [
        (
            vec![(PointId::Num(1), v("a", vec![1.0]))],
            "points[0].vector.a",
        ),
        (
            vec![(PointId::Num(1), v("zz", vec![1.0, 2.0]))],
            "points[0].vector.zz",
        ),
        (
            vec![(PointId::Num(1), v("a", vec![f32::NAN, 0.0]))],
            "points[0].vector.a",
        ),
        (vec![(PointId::Num(1), Vectors::new())], "points[0].vector"),
    ] {
        let e = c.update_vectors(points).expect_err("invalid");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.message().contains(field), "{}", e.message());
    }
    let e = c
        .edit(
            &[PointId::Num(1)],
            &PointEdit::DeleteVectors(vec!["nope".into()]),
        )
        .expect_err("unknown vector");
    assert!(e.message().contains("nope"), "{}", e.message());
}
