//! `min_should` filters: at least `min_count` of the conditions hold, with the same answer
//! whether the conditions are evaluated on payloads or answered by payload indexes and ids.

use serde_json::json;
use strata_engine::*;

fn open(dir: &std::path::Path) -> Engine {
    let mut o = EngineOptions::new(dir);
    o.background = false;
    Engine::open(o).expect("open")
}

fn ids(c: &CollectionHandle, f: &Filter) -> Vec<u64> {
    let page = c
        .scroll(&ScrollRequest {
            limit: 1000,
            filter: Some(f.clone()),
            ..ScrollRequest::default()
        })
        .expect("scroll");
    page.points
        .iter()
        .map(|r| match r.id {
            PointId::Num(n) => n,
            PointId::Uuid(_) => unreachable!("numeric ids"),
        })
        .collect()
}

#[test]
fn min_should_answers_the_same_from_payloads_and_from_indexes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path());
    let c = engine
        .create_collection(DEFAULT_TENANT, "m", CollectionConfig::new(2, Distance::Dot))
        .expect("create");
    let colors = ["red", "green", "blue"];
    let point = |i: u64| {
        PointInput::new(
            PointId::Num(i),
            vec![i as f32, 1.0],
            json!({"color": colors[(i % 3) as usize], "n": i})
                .as_object()
                .cloned(),
        )
    };
    c.upsert((0..120).map(point).collect()).expect("upsert");
    c.flush().expect("flush");
    c.upsert((120..150).map(point).collect()).expect("upsert");
    let filter = |k: usize| {
        Filter::from_json(
            &json!({"min_should": {"min_count": k, "conditions": [
                {"key": "color", "match": {"value": "red"}},
                {"key": "n", "range": {"lt": 60}},
                {"has_id": [1, 2, 3, 4, 5, 130, 133]}]}}),
            "filter",
        )
        .expect("filter")
    };
    let want = |k: usize| -> Vec<u64> {
        (0..150)
            .filter(|i| {
                let held = [i % 3 == 0, *i < 60, [1, 2, 3, 4, 5, 130, 133].contains(i)];
                held.iter().filter(|h| **h).count() >= k
            })
            .collect()
    };
    for stage in ["payloads", "indexed"] {
        for k in 0..=4 {
            let f = filter(k);
            assert_eq!(ids(&c, &f), want(k), "{stage}, min_count {k}");
            assert_eq!(
                c.count(Some(&f)).expect("count"),
                want(k).len() as u64,
                "{stage}, min_count {k}"
            );
        }
        // Index the keyword and the integer: every condition is then a row set per segment.
        c.create_payload_index("color", FieldType::Keyword)
            .expect("index");
        c.create_payload_index("n", FieldType::Integer)
            .expect("index");
        c.compact().expect("compact");
    }
}
