//! Grouped search against a brute force: the groups of an exact search are the best `limit`
//! values of the field, each with its best `group_size` hits, whatever mix of strings, integers,
//! arrays and missing values the points hold, across memtable and segments.

use proptest::prelude::*;
use serde_json::{Value, json};
use strata_engine::*;

const DIM: usize = 3;

fn vector(id: u64) -> Vec<f32> {
    let mut r = SplitMix64::new(id * 7919 + 1);
    (0..DIM).map(|_| r.next_f32()).collect()
}

/// The group field of point `id` for `kind`: an integer, a string, an array of both, nothing,
/// or a value that names no group (a float, a bool).
fn field(kind: u8, id: u64) -> Option<Value> {
    match kind % 6 {
        0 => Some(json!(id % 4)),
        1 => Some(json!(format!("s{}", id % 3))),
        2 => Some(json!([id % 4, format!("s{}", id % 2), id % 4])),
        3 => None,
        4 => Some(json!(1.5)),
        _ => Some(json!(true)),
    }
}

fn ids_of(v: &Option<Value>) -> Vec<Value> {
    let mut out = Vec::new();
    let mut add = |x: &Value| {
        if (x.is_string() || x.is_i64() || x.is_u64()) && !out.contains(x) {
            out.push(x.clone());
        }
    };
    match v {
        Some(Value::Array(a)) => a.iter().for_each(&mut add),
        Some(x) => add(x),
        None => {}
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn groups_equal_a_brute_force(
        kinds in prop::collection::vec(any::<u8>(), 1..120),
        flush_at in 0usize..120,
        limit in 1usize..6,
        group_size in 1usize..5,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut o = EngineOptions::new(dir.path());
        o.background = false;
        let engine = Engine::open(o).expect("open");
        let c = engine
            .create_collection(DEFAULT_TENANT, "g", CollectionConfig::new(DIM as u32, Distance::Euclid))
            .expect("create");
        let points: Vec<(u64, Option<Value>)> =
            kinds.iter().enumerate().map(|(i, k)| (i as u64, field(*k, i as u64))).collect();
        for (i, (id, f)) in points.iter().enumerate() {
            let mut p = serde_json::Map::new();
            if let Some(f) = f {
                p.insert("g".into(), f.clone());
            }
            c.upsert(vec![PointInput::new(PointId::Num(*id), vector(*id), Some(p))]).expect("upsert");
            if i == flush_at {
                c.flush().expect("flush");
            }
        }
        let q = vec![0.5; DIM];
        let mut ranked: Vec<(f32, u64)> = points
            .iter()
            .map(|(id, _)| (distance::l2sq(&q, &vector(*id)), *id))
            .collect();
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut want: Vec<(Value, Vec<u64>)> = Vec::new();
        for (_, id) in &ranked {
            for g in ids_of(&points[*id as usize].1) {
                match want.iter_mut().find(|w| w.0 == g) {
                    Some(w) if w.1.len() < group_size => w.1.push(*id),
                    Some(_) => {}
                    None => want.push((g, vec![*id])),
                }
            }
        }
        want.truncate(limit);
        let mut req = SearchRequest::new(q, 1);
        req.exact = true;
        let (groups, _) = c
            .search_groups(&req, &GroupRequest { group_by: "g".into(), group_size, limit })
            .expect("groups");
        let got: Vec<(Value, Vec<u64>)> = groups
            .into_iter()
            .map(|g| {
                prop_assert!(g.hits.iter().all(|h| h.payload.is_none()), "payload not asked for");
                Ok((g.id, g.hits.iter().map(|h| match h.id { PointId::Num(n) => n, _ => u64::MAX }).collect()))
            })
            .collect::<Result<_, TestCaseError>>()?;
        prop_assert_eq!(got, want);
    }
}

#[test]
fn bad_group_requests_name_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(EngineOptions::new(dir.path())).expect("open");
    let c = engine
        .create_collection(DEFAULT_TENANT, "g", CollectionConfig::new(2, Distance::Dot))
        .expect("create");
    let req = SearchRequest::new(vec![1.0, 0.0], 1);
    for (g, word) in [
        (
            GroupRequest {
                group_by: "g".into(),
                group_size: 0,
                limit: 1,
            },
            "group_size",
        ),
        (
            GroupRequest {
                group_by: "g".into(),
                group_size: 1,
                limit: 0,
            },
            "limit",
        ),
        (
            GroupRequest {
                group_by: String::new(),
                group_size: 1,
                limit: 1,
            },
            "group_by",
        ),
        (
            GroupRequest {
                group_by: "g".into(),
                group_size: MAX_GROUP_SIZE + 1,
                limit: 1,
            },
            "group_size",
        ),
    ] {
        let e = c.search_groups(&req, &g).expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.message().contains(word), "{}", e.message());
    }
    // An empty collection has no groups.
    assert!(
        c.search_groups(
            &req,
            &GroupRequest {
                group_by: "g".into(),
                group_size: 2,
                limit: 3
            }
        )
        .expect("groups")
        .0
        .is_empty()
    );
}
