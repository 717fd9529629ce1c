//! On-disk format compatibility and named vectors.
//!
//! - a data directory written before named vectors (segment format 1, manifest 2, WAL op 1;
//!   `tests/data/format-v1`) opens with today's code and answers exactly as that code did;
//! - a data directory of segment format 2 (manifest 4, a payload index defined but no index
//!   sections; `tests/data/format-v2`) opens, answers as that code did, and its segments are
//!   rewritten with the payload index by compaction;
//! - a data directory of segment format 3 (manifest 5; `tests/data/format-v3`, before sparse
//!   vectors) opens, answers as that code did, and compaction rewrites it as format 5;
//! - a data directory of segment format 4 (manifest 8, WAL op 4; `tests/data/format-v4`, before
//!   payload links) opens, answers as that code did (dense, filtered by keyword and integer
//!   indexes, and sparse), and compaction rewrites it as format 5;
//! - collections with several named vectors: points carrying any subset, search `using` one,
//!   recall@10 ≥ 0.95 per vector on bigann10k through memtable, segments, compaction (one
//!   graph per vector) and a restart.

#[path = "support/common.rs"]
mod common;

use std::path::Path;

use serde_json::json;
use strata_engine::*;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("ls") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// The format version (bytes 8..12) of every segment file in data directory `dir`.
fn segment_versions(dir: &Path) -> Vec<u32> {
    let mut versions = Vec::new();
    for f in std::fs::read_dir(dir.join("segments")).expect("ls") {
        let p = f.expect("entry").path();
        if p.extension().is_some_and(|x| x == "seg") {
            let b = std::fs::read(&p).expect("read");
            versions.push(u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")));
        }
    }
    versions
}

fn opts(dir: &Path) -> EngineOptions {
    let mut o = EngineOptions::new(dir);
    o.background = false;
    o
}

#[test]
fn a_data_directory_of_format_1_opens_and_answers_as_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/format-v1");
    copy_dir(&fixture, dir.path());
    let check = |e: &Engine| {
        let c = e.collection(DEFAULT_TENANT, "legacy").expect("collection");
        let cfg = c.config();
        assert_eq!(cfg, CollectionConfig::new(4, Distance::Cosine));
        let info = c.info().expect("info");
        assert_eq!(info.points, 209);
        // What the format-1 code answered (recorded when the fixture was written).
        let mut r = SearchRequest::new(vec![1.0, 2.0, 3.0, 4.0], 5);
        r.with_payload = true;
        let hits = c.search(&r).expect("search");
        let got: Vec<(PointId, String)> = hits
            .iter()
            .map(|h| (h.id, format!("{:.6}", h.score)))
            .collect();
        let want: Vec<(PointId, String)> = [
            (112, "0.968170"),
            (189, "0.942650"),
            (190, "0.927208"),
            (113, "0.904472"),
            (168, "0.894266"),
        ]
        .iter()
        .map(|(i, s)| (PointId::Num(*i), s.to_string()))
        .collect();
        assert_eq!(got, want);
        assert_eq!(
            hits[0].payload.as_ref().expect("payload")["tag"],
            json!("even")
        );
        let mut r = SearchRequest::new(vec![-1.0, 0.5, 3.0, 0.0], 3);
        r.exact = true;
        let exact: Vec<u64> = c
            .search(&r)
            .expect("exact")
            .iter()
            .map(|h| match h.id {
                PointId::Num(n) => n,
                PointId::Uuid(_) => 0,
            })
            .collect();
        assert_eq!(exact, vec![77, 168, 154]);
        let got = c
            .get(
                &[PointId::Num(5), PointId::Num(12), PointId::Num(215)],
                true,
                true,
            )
            .expect("get");
        assert_eq!(got.len(), 2, "5 was deleted");
        assert_eq!(
            got[0].vector().expect("vector"),
            &[0.69629, 0.116048336, 0.69629, 0.12997414]
        );
        assert_eq!(got[1].version, 4);
    };
    let e = Engine::open(opts(dir.path())).expect("format 1 opens");
    check(&e);
    // Rewritten by today's code (flush, then compaction into format 2), the same answers.
    let c = e.collection(DEFAULT_TENANT, "legacy").expect("collection");
    assert!(c.flush().expect("flush"));
    assert!(c.compact().expect("compact"));
    check(&e);
    drop(c);
    drop(e);
    let e = Engine::open(opts(dir.path())).expect("reopen");
    check(&e);
}

#[test]
fn a_data_directory_of_format_2_opens_answers_as_before_and_gets_its_payload_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/format-v2");
    copy_dir(&fixture, dir.path());
    let red = Filter::parse_str(r#"{"must": [{"key": "color", "match": {"value": "red"}}]}"#)
        .expect("filter");
    let check = |e: &Engine| {
        let c = e.collection(DEFAULT_TENANT, "v2").expect("collection");
        assert_eq!(c.count(None).expect("count"), 319);
        assert_eq!(c.count(Some(&red)).expect("count"), 106);
        // What the format-2 code answered (recorded when the fixture was written).
        let want = [
            (
                "a",
                vec![0.5, 1.0, 3.0, 0.2],
                [
                    (177, "0.992487"),
                    (171, "0.988427"),
                    (54, "0.986552"),
                    (174, "0.982698"),
                    (291, "0.981531"),
                ],
            ),
            (
                "b",
                vec![5.0, 0.5, 2.0],
                [
                    (213, "0.018252"),
                    (18, "0.134693"),
                    (291, "0.287169"),
                    (57, "0.677809"),
                    (174, "0.855755"),
                ],
            ),
        ];
        for (using, q, hits) in want {
            for exact in [true, false] {
                let mut r = SearchRequest::new(q.clone(), 5);
                r.using = using.into();
                r.filter = Some(red.clone());
                r.exact = exact;
                let got: Vec<(PointId, String)> = c
                    .search(&r)
                    .expect("search")
                    .iter()
                    .map(|h| (h.id, format!("{:.6}", h.score)))
                    .collect();
                let want: Vec<(PointId, String)> = hits
                    .iter()
                    .map(|(i, s)| (PointId::Num(*i), s.to_string()))
                    .collect();
                assert_eq!(got, want, "{using}, exact {exact}");
            }
        }
        c
    };
    let e = Engine::open(opts(dir.path())).expect("format 2 opens");
    let c = check(&e);
    // The format-2 segments carry no index section: only the memtable's 10 points count.
    let schema = c.payload_schema().expect("schema");
    assert_eq!(schema, vec![("color".to_string(), FieldType::Keyword, 10)]);
    // Rewritten by today's code (format 3, with the index), the same answers.
    assert!(c.compact().expect("compact"));
    check(&e);
    let schema = c.payload_schema().expect("schema");
    assert_eq!(schema, vec![("color".to_string(), FieldType::Keyword, 319)]);
    drop(c);
    drop(e);
    let e = Engine::open(opts(dir.path())).expect("reopen");
    check(&e);
    drop(e);
    // The background policy reindexes on its own: a fresh copy, maintenance running.
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&fixture, dir.path());
    let mut o = opts(dir.path());
    o.background = true;
    o.maintenance_interval = std::time::Duration::from_millis(20);
    let e = Engine::open(o).expect("open");
    let c = e.collection(DEFAULT_TENANT, "v2").expect("collection");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while c.payload_schema().expect("schema")[0].2 != 319 {
        assert!(
            std::time::Instant::now() < deadline,
            "the background reindex did not run: {:?}",
            c.payload_schema()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(c);
    check(&e);
}

#[test]
fn a_data_directory_of_format_3_opens_answers_as_before_and_is_rewritten_as_format_5() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/format-v3");
    copy_dir(&fixture, dir.path());
    let red = Filter::parse_str(r#"{"must": [{"key": "color", "match": {"value": "red"}}]}"#)
        .expect("filter");
    let check = |e: &Engine| {
        let c = e.collection(DEFAULT_TENANT, "v3").expect("collection");
        assert_eq!(c.count(None).expect("count"), 319);
        assert_eq!(c.count(Some(&red)).expect("count"), 106);
        assert!(c.config().sparse.is_empty());
        // What the format-3 code answered (recorded when the fixture was written).
        let want = [
            (
                "a",
                vec![0.5, 1.0, 3.0, 0.2],
                [
                    (177, "0.997857"),
                    (171, "0.995591"),
                    (120, "0.995078"),
                    (108, "0.991253"),
                    (228, "0.989988"),
                ],
            ),
            (
                "b",
                vec![5.0, 0.5, 2.0],
                [
                    (93, "2.001771"),
                    (27, "2.022940"),
                    (126, "2.027474"),
                    (291, "2.027735"),
                    (258, "2.116815"),
                ],
            ),
        ];
        for (using, q, hits) in want {
            let mut r = SearchRequest::new(q.clone(), 5);
            r.using = using.into();
            r.filter = Some(red.clone());
            r.exact = true;
            let got: Vec<(PointId, String)> = c
                .search(&r)
                .expect("search")
                .iter()
                .map(|h| (h.id, format!("{:.6}", h.score)))
                .collect();
            let want: Vec<(PointId, String)> = hits
                .iter()
                .map(|(i, s)| (PointId::Num(*i), s.to_string()))
                .collect();
            assert_eq!(got, want, "{using}");
        }
        c
    };
    let e = Engine::open(opts(dir.path())).expect("format 3 opens");
    let c = check(&e);
    assert!(c.compact().expect("compact"));
    check(&e);
    // One segment now: its index counts exactly the live points.
    let schema = c.payload_schema().expect("schema");
    assert_eq!(schema, vec![("color".to_string(), FieldType::Keyword, 319)]);
    drop(c);
    drop(e);
    // Every segment is now format 5, and the directory reopens.
    assert_eq!(segment_versions(dir.path()), vec![5]);
    let e = Engine::open(opts(dir.path())).expect("reopen");
    check(&e);
}

#[test]
fn a_data_directory_of_format_4_opens_answers_as_before_and_is_rewritten_as_format_5() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/format-v4");
    copy_dir(&fixture, dir.path());
    // The fixture's threshold: compaction then writes an indexed segment (graphs and, in
    // format 5, their stored codes; 319 rows are too few for payload links).
    let opts = |d: &Path| {
        let mut o = opts(d);
        o.index_threshold_rows = 100;
        o
    };
    let filter = |s: &str| Filter::parse_str(s).expect("filter");
    let red = filter(r#"{"must": [{"key": "color", "match": {"value": "red"}}]}"#);
    let bucket2 = filter(r#"{"must": [{"key": "bucket", "match": {"value": 2}}]}"#);
    let red_b23 = filter(
        r#"{"must": [{"key": "color", "match": {"value": "red"}},
                     {"key": "bucket", "range": {"gte": 2}}]}"#,
    );
    let check = |e: &Engine| {
        let c = e.collection(DEFAULT_TENANT, "v4").expect("collection");
        let cfg = c.config();
        assert_eq!(
            cfg.vectors.iter().map(|v| v.0.as_str()).collect::<Vec<_>>(),
            vec!["a", "b"]
        );
        assert_eq!(cfg.sparse, vec![("s".to_string(), SparseParams::default())]);
        assert_eq!(
            c.payload_indexes(),
            vec![
                ("bucket".to_string(), FieldType::Integer),
                ("color".to_string(), FieldType::Keyword)
            ]
        );
        assert_eq!(c.count(None).expect("count"), 319);
        assert_eq!(c.count(Some(&red)).expect("count"), 106);
        assert_eq!(c.count(Some(&bucket2)).expect("count"), 80);
        assert_eq!(c.count(Some(&red_b23)).expect("count"), 53);
        // What the format-4 code answered (recorded when the fixture was written).
        let want = [
            (
                "a",
                vec![0.5, 1.0, 3.0, 0.2],
                &red,
                [
                    (177, "0.997857"),
                    (171, "0.995591"),
                    (120, "0.995078"),
                    (108, "0.991253"),
                    (228, "0.989988"),
                ],
            ),
            (
                "b",
                vec![5.0, 0.5, 2.0],
                &red,
                [
                    (93, "2.001771"),
                    (27, "2.022940"),
                    (126, "2.027474"),
                    (291, "2.027735"),
                    (258, "2.116815"),
                ],
            ),
            (
                "a",
                vec![0.5, 1.0, 3.0, 0.2],
                &bucket2,
                [
                    (58, "0.999515"),
                    (290, "0.993737"),
                    (226, "0.991001"),
                    (170, "0.990398"),
                    (54, "0.986469"),
                ],
            ),
            (
                "b",
                vec![5.0, 0.5, 2.0],
                &red_b23,
                [
                    (27, "2.022940"),
                    (126, "2.027474"),
                    (291, "2.027735"),
                    (258, "2.116815"),
                    (114, "2.236979"),
                ],
            ),
        ];
        let hits = |got: &[ScoredPoint]| -> Vec<(PointId, String)> {
            got.iter()
                .map(|h| (h.id, format!("{:.6}", h.score)))
                .collect()
        };
        let expect = |want: &[(u64, &str)]| -> Vec<(PointId, String)> {
            want.iter()
                .map(|(i, s)| (PointId::Num(*i), s.to_string()))
                .collect()
        };
        for (using, q, f, want) in &want {
            let mut r = SearchRequest::new(q.clone(), 5);
            r.using = (*using).into();
            r.filter = Some((*f).clone());
            r.exact = true;
            assert_eq!(
                hits(&c.search(&r).expect("search")),
                expect(want),
                "{using}"
            );
        }
        // The sparse vector `s` (dot product; 324 lives only in the WAL).
        let q = SparseVector::new(vec![3, 12], vec![1.0, 2.0], "q").expect("query");
        for (f, want) in [
            (
                None,
                [
                    (23, "4.690001"),
                    (303, "4.534863"),
                    (163, "4.186279"),
                    (93, "3.092228"),
                    (65, "3.000000"),
                ],
            ),
            (
                Some(red.clone()),
                [
                    (303, "4.534863"),
                    (93, "3.092228"),
                    (324, "2.917752"),
                    (261, "2.915472"),
                    (240, "2.769387"),
                ],
            ),
        ] {
            let mut r = SearchRequest::new(Vec::new(), 5);
            r.using = "s".into();
            r.filter = f;
            let got = c.search_sparse(&r, &q).expect("sparse search");
            assert_eq!(hits(&got.points), expect(&want), "sparse");
        }
        // 5 was deleted in the second segment, 11 in the WAL; 325 lives only in the WAL.
        let ids = [5, 11, 12, 295, 325].map(PointId::Num);
        let got = c.get(&ids, true, true).expect("get");
        assert_eq!(
            got.iter().map(|r| (r.id, r.version)).collect::<Vec<_>>(),
            vec![
                (PointId::Num(12), 1),
                (PointId::Num(295), 3),
                (PointId::Num(325), 4)
            ]
        );
        let v = got[0].vectors.as_ref().expect("vectors");
        assert_eq!(
            v.keys().collect::<Vec<_>>(),
            vec!["a"],
            "12 has no b (i % 4 == 0)"
        );
        assert_eq!(
            v["a"],
            vec![-0.15816854, 0.040756203, 0.98533976, 0.04926699]
        );
        assert!(got[0].sparse.is_empty(), "12 has no s (i % 5 == 2)");
        assert_eq!(
            got[1].vectors.as_ref().expect("vectors")["b"],
            vec![9.0, 0.15423656, 1.0]
        );
        let s = &got[1].sparse["s"];
        assert_eq!(s.indices, vec![5, 11]);
        assert_eq!(s.values, vec![1.9536195, 1.2471758]);
        assert_eq!(
            got[2].payload.as_ref().expect("payload"),
            json!({"color": "green", "n": 325, "bucket": 1})
                .as_object()
                .expect("object")
        );
        assert_eq!(got[2].sparse["s"].indices, vec![5, 13]);
        c
    };
    let e = Engine::open(opts(dir.path())).expect("format 4 opens");
    let c = check(&e);
    // The format-4 index sections count every row they hold (dead ones too), plus the memtable.
    let schema = c.payload_schema().expect("schema");
    assert_eq!(
        schema,
        vec![
            ("bucket".to_string(), FieldType::Integer, 340),
            ("color".to_string(), FieldType::Keyword, 340)
        ]
    );
    assert!(c.compact().expect("compact"));
    check(&e);
    let info = c.info().expect("info");
    assert_eq!((info.segments, info.indexed_segments), (1, 1));
    // One segment now: its indexes count exactly the live points.
    let schema = c.payload_schema().expect("schema");
    assert_eq!(
        schema,
        vec![
            ("bucket".to_string(), FieldType::Integer, 319),
            ("color".to_string(), FieldType::Keyword, 319)
        ]
    );
    drop(c);
    drop(e);
    // Every segment is now format 5, and the directory reopens.
    assert_eq!(segment_versions(dir.path()), vec![5]);
    let e = Engine::open(opts(dir.path())).expect("reopen");
    check(&e);
}

fn two_vectors() -> CollectionConfig {
    CollectionConfig::named(vec![
        ("image".into(), VectorParams::new(128, Distance::Euclid)),
        ("text".into(), VectorParams::new(8, Distance::Cosine)),
    ])
}

/// A deterministic 8-dimensional "text" vector of point `i`.
fn text(i: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(i * 7 + 1);
    (0..8).map(|_| rng.next_f32() - 0.5).collect()
}

#[test]
fn named_vectors_are_stored_searched_and_compacted_one_graph_each() {
    let (base, queries, gt) = common::bigann10k();
    let dir = tempfile::tempdir().expect("tempdir");
    let e = Engine::open(opts(dir.path())).expect("open");
    let c = e
        .create_collection(DEFAULT_TENANT, "multi", two_vectors())
        .expect("create");
    // Every point has an image; every third has no text.
    let point = |i: usize| {
        let mut v = Vectors::new();
        v.insert("image".into(), base[i].clone());
        if !i.is_multiple_of(3) {
            v.insert("text".into(), text(i as u64));
        }
        PointInput {
            id: PointId::Num(i as u64),
            vectors: v,
            sparse: Default::default(),
            payload: Some(json!({"i": i}).as_object().expect("obj").clone()),
        }
    };
    for (k, chunk) in (0..base.len()).collect::<Vec<_>>().chunks(1000).enumerate() {
        c.upsert(chunk.iter().map(|i| point(*i)).collect())
            .expect("upsert");
        if k == 3 || k == 7 {
            assert!(c.flush().expect("flush"));
            assert!(c.maintain().expect("index"));
        }
    }
    // Errors name the field and the vectors there are.
    let mut bad = point(1);
    bad.vectors.insert("audio".into(), vec![1.0]);
    let err = c.upsert(vec![bad]).expect_err("unknown name");
    assert!(
        err.to_string()
            .contains("points[0].vector.audio: the collection has no dense vector named \"audio\""),
        "{err}"
    );
    let mut bad = point(1);
    bad.vectors.insert("text".into(), vec![1.0; 3]);
    let err = c.upsert(vec![bad]).expect_err("wrong dim");
    assert!(
        err.to_string()
            .contains("points[0].vector.text: expected 8 dimensions, got 3"),
        "{err}"
    );
    let err = c
        .search(&SearchRequest::new(vec![0.0; 128], 3))
        .expect_err("no unnamed vector");
    assert!(
        err.to_string()
            .contains("using: the collection has no dense vector named \"\""),
        "{err}"
    );

    let truth_image = |qi: usize| -> Vec<PointId> {
        gt[qi][..10]
            .iter()
            .map(|i| PointId::Num(*i as u64))
            .collect()
    };
    // The text truth: brute force over the points that have a text vector.
    let text_queries: Vec<Vec<f32>> = (0..50).map(|q| text(100_000 + q)).collect();
    let cos = |a: &[f32], b: &[f32]| {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (n(a) * n(b))
    };
    let text_truth: Vec<Vec<PointId>> = text_queries
        .iter()
        .map(|q| {
            let mut s: Vec<(f32, u64)> = (0..base.len() as u64)
                .filter(|i| !i.is_multiple_of(3))
                .map(|i| (cos(q, &text(i)), i))
                .collect();
            s.sort_by(|a, b| b.0.total_cmp(&a.0));
            s[..10].iter().map(|x| PointId::Num(x.1)).collect()
        })
        .collect();
    let recall = |c: &CollectionHandle,
                  using: &str,
                  qs: &[Vec<f32>],
                  truth: &dyn Fn(usize) -> Vec<PointId>| {
        let mut hit = 0;
        for (qi, q) in qs.iter().enumerate() {
            let mut r = SearchRequest::new(q.clone(), 10);
            r.using = using.into();
            let got: Vec<PointId> = c.search(&r).expect("search").iter().map(|h| h.id).collect();
            if using == "text" {
                assert!(
                    got.iter()
                        .all(|id| matches!(id, PointId::Num(n) if !n.is_multiple_of(3))),
                    "a point without a text vector was returned"
                );
            }
            hit += truth(qi).iter().filter(|w| got.contains(w)).count();
        }
        hit as f64 / (qs.len() * 10) as f64
    };
    let check = |c: &CollectionHandle, stage: &str| {
        let ri = recall(c, "image", &queries, &truth_image);
        let rt = recall(c, "text", &text_queries, &|qi| text_truth[qi].clone());
        eprintln!("recall@10 {stage}: image {ri:.4}, text {rt:.4}");
        assert!(ri >= 0.95 && rt >= 0.95, "{stage}: image {ri}, text {rt}");
        // Reads return exactly the vectors a point has.
        let got = c
            .get(&[PointId::Num(3), PointId::Num(4)], false, true)
            .expect("get");
        let v3 = got[0].vectors.as_ref().expect("vectors");
        assert_eq!(v3.keys().collect::<Vec<_>>(), vec!["image"]);
        let v4 = got[1].vectors.as_ref().expect("vectors");
        assert_eq!(v4.keys().collect::<Vec<_>>(), vec!["image", "text"]);
        assert_eq!(v4["image"], base[4]);
        let norm: f32 = v4["text"].iter().map(|x| x * x).sum();
        assert!(
            (norm - 1.0).abs() < 1e-4,
            "Cosine vectors are stored normalised"
        );
    };
    let info = c.info().expect("info");
    assert_eq!((info.segments, info.indexed_segments), (2, 2));
    check(&c, "memtable + indexed segments");
    assert!(c.flush().expect("flush"));
    assert!(c.compact().expect("compact"));
    check(&c, "compacted");
    drop(c);
    drop(e);
    let e = Engine::open(opts(dir.path())).expect("reopen");
    let c = e.collection(DEFAULT_TENANT, "multi").expect("collection");
    assert_eq!(c.config(), two_vectors());
    check(&c, "reopened");
}
