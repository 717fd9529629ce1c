//! Helpers of the tests that run one collection `c` of 4-d Euclid points, tagged by version
//! (`faults.rs`, `cold.rs`).
#![allow(dead_code, unreachable_pub)]

use serde_json::json;
use strata_engine::*;

/// Points `ids`, each vector `[id, tag, 1, 0.5]`: the tag tells which write a point holds.
pub fn points(ids: std::ops::Range<u64>, tag: f32) -> Vec<PointInput> {
    ids.map(|i| {
        PointInput::new(
            PointId::Num(i),
            vec![i as f32, tag, 1.0, 0.5],
            Some(
                json!({"i": i, "tag": tag})
                    .as_object()
                    .expect("obj")
                    .clone(),
            ),
        )
    })
    .collect()
}

/// The collection `c`.
pub fn coll(e: &Engine) -> CollectionHandle {
    e.collection(DEFAULT_TENANT, "c").expect("collection")
}

/// Creates the collection `c`.
pub fn create(e: &Engine) -> CollectionHandle {
    e.create_collection(
        DEFAULT_TENANT,
        "c",
        CollectionConfig::new(4, Distance::Euclid),
    )
    .expect("create")
}

/// Every id in `ids` is present with vector tag `tag`.
pub fn assert_all(c: &CollectionHandle, ids: std::ops::Range<u64>, tag: f32) {
    let want: Vec<PointId> = ids.clone().map(PointId::Num).collect();
    let got = c.get(&want, false, true).expect("get");
    assert_eq!(got.len(), want.len(), "every acknowledged point is there");
    for r in got {
        assert_eq!(
            r.vector().expect("vector")[1],
            tag,
            "point {} has its acknowledged version",
            r.id
        );
    }
}
