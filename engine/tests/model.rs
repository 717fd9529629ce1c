//! Model-based test: random operation sequences (upsert, delete, flush, compact, maintain,
//! reopen, creating a payload index) checked after every step against a brute-force reference
//! (a `BTreeMap`).

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;
use strata_engine::*;

const DIM: usize = 4;

#[derive(Clone, Debug)]
enum Op {
    Upsert(Vec<(u64, u16)>),
    Delete(Vec<u64>),
    Flush,
    Compact,
    Maintain,
    Reopen,
    /// Index `bucket` as integer (segments written before lack the section until reindexed).
    IndexBucket,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((0u64..48, any::<u16>()), 1..12).prop_map(Op::Upsert),
        2 => prop::collection::vec(0u64..48, 1..6).prop_map(Op::Delete),
        2 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => Just(Op::Maintain),
        1 => Just(Op::Reopen),
        1 => Just(Op::IndexBucket),
    ]
}

fn vector(seed: u16, id: u64) -> Vec<f32> {
    let mut r = SplitMix64::new(seed as u64 * 1_000_003 + id);
    (0..DIM).map(|_| r.next_f32() * 10.0 - 5.0).collect()
}

#[derive(Clone, Debug, PartialEq)]
struct Expected {
    vector: Vec<f32>,
    version: Lsn,
    seed: u16,
}

fn open(dir: &std::path::Path) -> Engine {
    let mut o = EngineOptions::new(dir);
    o.background = false;
    o.index_threshold_rows = 8;
    o.max_segments = 3;
    Engine::open(o).expect("open")
}

/// The facet a brute force gives: (value, count), count descending then value ascending.
fn facet_of(
    model: &BTreeMap<u64, Expected>,
    of: impl Fn(&Expected) -> Option<i64>,
    limit: usize,
) -> Vec<(i64, u64)> {
    let mut counts: BTreeMap<i64, u64> = BTreeMap::new();
    for e in model.values() {
        if let Some(v) = of(e) {
            *counts.entry(v).or_default() += 1;
        }
    }
    let mut all: Vec<(i64, u64)> = counts.into_iter().collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(limit);
    all
}

fn check(
    c: &CollectionHandle,
    model: &BTreeMap<u64, Expected>,
    step: usize,
    bucket_indexed: bool,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        c.count(None).expect("count") as usize,
        model.len(),
        "count at step {}",
        step
    );
    // Full scroll in pages of 7: ids, versions, payloads and vectors, in id order.
    let mut got = Vec::new();
    let mut offset = None;
    loop {
        let page = c
            .scroll(&ScrollRequest {
                offset,
                limit: 7,
                filter: None,
                with_payload: true,
                with_vector: true,
            })
            .expect("scroll");
        got.extend(page.points);
        match page.next_offset {
            Some(o) => offset = Some(o),
            None => break,
        }
    }
    prop_assert_eq!(got.len(), model.len(), "scroll length at step {}", step);
    for (r, (id, e)) in got.iter().zip(model) {
        prop_assert_eq!(r.id, PointId::Num(*id));
        prop_assert_eq!(r.version, e.version, "version of {} at step {}", id, step);
        prop_assert_eq!(r.vector().expect("vector"), &e.vector);
        prop_assert_eq!(
            r.payload
                .as_ref()
                .and_then(|p| p.get("seed"))
                .and_then(|v| v.as_u64()),
            Some(e.seed as u64)
        );
    }
    // Filtered count.
    let even = Filter::parse_str(r#"{"must": [{"key": "even", "match": {"value": true}}]}"#)
        .expect("filter");
    let want_even = model.values().filter(|e| e.seed % 2 == 0).count();
    prop_assert_eq!(c.count(Some(&even)).expect("count") as usize, want_even);
    // Facets: on the bool index (from creation), and on `bucket` under a filter once indexed.
    let got: Vec<(i64, u64)> = c
        .facet(&FacetRequest {
            key: "even".into(),
            filter: None,
            limit: 10,
        })
        .expect("facet")
        .into_iter()
        .map(|h| (i64::from(h.value.as_bool().expect("bool")), h.count))
        .collect();
    prop_assert_eq!(
        got,
        facet_of(model, |e| Some(i64::from(e.seed % 2 == 0)), 10),
        "facet even at step {}",
        step
    );
    let bucket = c.facet(&FacetRequest {
        key: "bucket".into(),
        filter: Some(even.clone()),
        limit: 3,
    });
    match bucket_indexed {
        false => prop_assert!(bucket.is_err(), "facet without an index at step {}", step),
        true => {
            let got: Vec<(i64, u64)> = bucket
                .expect("facet bucket")
                .into_iter()
                .map(|h| (h.value.as_i64().expect("int"), h.count))
                .collect();
            let want = facet_of(
                model,
                |e| (e.seed % 2 == 0).then_some(i64::from(e.seed % 5)),
                3,
            );
            prop_assert_eq!(got, want, "facet bucket at step {}", step);
        }
    }
    // Exact search equals brute force; approximate search returns only live points with true scores.
    let q = vector(step as u16, 999);
    let mut brute: Vec<(f32, u64)> = model
        .iter()
        .map(|(id, e)| (distance::l2sq(&q, &e.vector), *id))
        .collect();
    brute.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut req = SearchRequest::new(q.clone(), 5);
    req.exact = true;
    let exact: Vec<u64> = c
        .search(&req)
        .expect("search")
        .iter()
        .map(|h| match h.id {
            PointId::Num(n) => n,
            _ => u64::MAX,
        })
        .collect();
    let want: Vec<u64> = brute.iter().take(5).map(|b| b.1).collect();
    prop_assert_eq!(exact, want, "exact search at step {}", step);
    req.exact = false;
    for h in c.search(&req).expect("search") {
        let PointId::Num(id) = h.id else {
            panic!("uuid")
        };
        let e = model.get(&id);
        prop_assert!(
            e.is_some(),
            "search returned deleted point {} at step {}",
            id,
            step
        );
        let e = e.expect("present");
        prop_assert_eq!(h.version, e.version);
        prop_assert!((h.score - distance::l2sq(&q, &e.vector).sqrt()).abs() < 1e-3);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn engine_matches_a_brute_force_model(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut engine = open(dir.path());
        let mut c = engine
            .create_collection(DEFAULT_TENANT, "m", CollectionConfig::new(DIM as u32, Distance::Euclid))
            .expect("create");
        c.create_payload_index("even", FieldType::Bool).expect("index even");
        let mut bucket_indexed = false;
        let mut model: BTreeMap<u64, Expected> = BTreeMap::new();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Upsert(points) => {
                    let input: Vec<PointInput> = points
                        .iter()
                        .map(|(id, seed)| PointInput::new(PointId::Num(*id), vector(*seed, *id), Some(json!({"seed": seed, "even": seed % 2 == 0, "bucket": seed % 5}).as_object().expect("obj").clone())))
                        .collect();
                    let lsn = c.upsert(input).expect("upsert");
                    for (id, seed) in points {
                        model.insert(id, Expected { vector: vector(seed, id), version: lsn, seed });
                    }
                }
                Op::Delete(ids) => {
                    let pids: Vec<PointId> = ids.iter().map(|i| PointId::Num(*i)).collect();
                    c.delete(&pids).expect("delete");
                    ids.iter().for_each(|i| { model.remove(i); });
                }
                Op::Flush => { c.flush().expect("flush"); }
                Op::Compact => { c.compact().expect("compact"); }
                Op::Maintain => { c.maintain().expect("maintain"); }
                Op::IndexBucket => {
                    c.create_payload_index("bucket", FieldType::Integer).expect("index bucket");
                    bucket_indexed = true;
                }
                Op::Reopen => {
                    drop(c);
                    drop(engine);
                    engine = open(dir.path());
                    c = engine.collection(DEFAULT_TENANT, "m").expect("collection after reopen");
                }
            }
            check(&c, &model, step, bucket_indexed)?;
        }
    }
}
