//! Snapshots: a snapshot holds exactly what was acknowledged before it, restores in place or
//! as a copy, on this node or another (whose log is behind: new writes still win), and a bad
//! archive or checksum changes nothing.

use serde_json::json;
use strata_engine::*;

fn open(dir: &std::path::Path) -> Engine {
    let mut o = EngineOptions::new(dir);
    o.background = false;
    o.index_threshold_rows = 16;
    Engine::open(o).expect("open")
}

fn point(id: u64, tag: f32) -> PointInput {
    PointInput::new(
        PointId::Num(id),
        vec![id as f32, tag, 1.0],
        Some(
            json!({"tag": tag, "k": format!("k{}", id % 3)})
                .as_object()
                .cloned()
                .expect("obj"),
        ),
    )
}

/// (id, version, first vector component, tag) of every point, in id order.
fn state(c: &CollectionHandle) -> Vec<(PointId, Lsn, Vec<f32>, serde_json::Value)> {
    c.scroll(&ScrollRequest {
        offset: None,
        limit: 10_000,
        filter: None,
        with_payload: true,
        with_vector: true,
    })
    .expect("scroll")
    .points
    .into_iter()
    .map(|r| {
        let v = r.vector().expect("vector").to_vec();
        let tag = r.payload.as_ref().expect("payload")["tag"].clone();
        (r.id, r.version, v, tag)
    })
    .collect()
}

#[test]
fn a_snapshot_restores_in_place_as_a_copy_and_on_another_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path());
    let mut c = engine
        .create_collection(
            DEFAULT_TENANT,
            "c",
            CollectionConfig::new(3, Distance::Euclid),
        )
        .expect("create");
    c.create_payload_index("k", FieldType::Keyword)
        .expect("index");
    c.upsert((0..40).map(|i| point(i, 1.0)).collect())
        .expect("upsert");
    c.flush().expect("flush");
    c.compact().expect("compact"); // one indexed segment
    c.upsert((30..50).map(|i| point(i, 2.0)).collect())
        .expect("upsert");
    c.delete(&[PointId::Num(3)]).expect("delete");
    c.flush().expect("flush");
    c.upsert((50..55).map(|i| point(i, 3.0)).collect())
        .expect("upsert"); // memtable only
    engine
        .update_aliases(
            DEFAULT_TENANT,
            &[AliasAction::Create {
                alias: "live".into(),
                collection: "c".into(),
            }],
        )
        .expect("alias");
    let before = state(&c);
    assert_eq!(before.len(), 54);
    let snap = engine
        .create_snapshot(DEFAULT_TENANT, "live")
        .expect("snapshot via alias");
    assert!(
        snap.name.starts_with("c-") && snap.name.ends_with(".snapshot"),
        "{}",
        snap.name
    );
    let listed = engine.list_snapshots(DEFAULT_TENANT, "c").expect("list");
    assert_eq!(listed, vec![snap.clone()]);
    let bytes = engine
        .snapshot_bytes(DEFAULT_TENANT, "c", &snap.name)
        .expect("bytes")
        .as_bytes()
        .to_vec();
    assert_eq!(bytes.len() as u64, snap.size);

    // Changes after the snapshot are gone once it is restored in place; aliases stay.
    c.delete(&[PointId::Num(0), PointId::Num(1)])
        .expect("delete");
    c.upsert((100..110).map(|i| point(i, 9.0)).collect())
        .expect("upsert");
    c.flush().expect("flush");
    engine
        .recover_snapshot(DEFAULT_TENANT, "c", &bytes, Some(&snap.checksum))
        .expect("recover in place");
    c = engine
        .collection(DEFAULT_TENANT, "live")
        .expect("alias kept");
    assert_eq!(state(&c), before);
    assert_eq!(
        c.payload_indexes(),
        vec![("k".to_string(), FieldType::Keyword)]
    );
    let k0 = Filter::parse_str(r#"{"must": [{"key": "k", "match": {"value": "k0"}}]}"#).expect("f");
    assert_eq!(
        c.count(Some(&k0)).expect("count"),
        before
            .iter()
            .filter(|p| matches!(p.0, PointId::Num(n) if n % 3 == 0))
            .count() as u64
    );
    // And as a copy under another name.
    engine
        .recover_snapshot(DEFAULT_TENANT, "copy", &bytes, None)
        .expect("recover copy");
    assert_eq!(
        state(&engine.collection(DEFAULT_TENANT, "copy").expect("copy")),
        before
    );

    // Bad input changes nothing: wrong checksum, damaged archive, a flipped segment byte.
    let e = engine
        .recover_snapshot(DEFAULT_TENANT, "c", &bytes, Some("00"))
        .expect_err("checksum");
    assert!(e.message().contains("checksum"), "{e}");
    for bad in [bytes[..bytes.len() / 2].to_vec(), b"not a tar".to_vec(), {
        let mut b = bytes.clone();
        let at = b.len() - 2048; // inside the last segment's data
        b[at] ^= 0x5a;
        b
    }] {
        assert!(
            engine
                .recover_snapshot(DEFAULT_TENANT, "c", &bad, None)
                .is_err()
        );
        assert_eq!(
            state(&engine.collection(DEFAULT_TENANT, "c").expect("c")),
            before
        );
    }
    assert!(engine.collection(DEFAULT_TENANT, "nope").is_err());

    // Another node whose log is far behind: restored versions stay, and new writes win.
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = open(other_dir.path());
    other
        .recover_snapshot(DEFAULT_TENANT, "c", &bytes, Some(&snap.checksum))
        .expect("recover elsewhere");
    let oc = other.collection(DEFAULT_TENANT, "c").expect("c");
    assert_eq!(state(&oc), before);
    let max_version = before.iter().map(|p| p.1).max().expect("points");
    let v = oc.upsert(vec![point(5, 7.0)]).expect("overwrite");
    assert!(
        v > max_version,
        "new version {v} above the snapshot's {max_version}"
    );
    drop(oc);
    drop(other);
    let other = open(other_dir.path());
    let oc = other
        .collection(DEFAULT_TENANT, "c")
        .expect("c after restart");
    let got = state(&oc);
    let p5 = got.iter().find(|p| p.0 == PointId::Num(5)).expect("5");
    assert_eq!(
        (p5.1, p5.3.clone()),
        (v, json!(7.0)),
        "the newer write wins after a restart"
    );
    let v2 = oc.upsert(vec![point(6, 8.0)]).expect("write after restart");
    assert!(v2 > v);

    // What was restored here survives a restart (the replaced collection's files are gone).
    drop(c);
    drop(engine);
    let engine = open(dir.path());
    assert_eq!(
        state(&engine.collection(DEFAULT_TENANT, "live").expect("c")),
        before
    );
    assert_eq!(
        state(&engine.collection(DEFAULT_TENANT, "copy").expect("copy")),
        before
    );

    // Delete.
    assert!(
        engine
            .delete_snapshot(DEFAULT_TENANT, "c", &snap.name)
            .expect("delete")
    );
    assert!(
        !engine
            .delete_snapshot(DEFAULT_TENANT, "c", &snap.name)
            .expect("gone")
    );
    assert!(
        engine
            .list_snapshots(DEFAULT_TENANT, "c")
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        engine
            .snapshot_bytes(DEFAULT_TENANT, "c", &snap.name)
            .expect_err("gone")
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        engine
            .snapshot_bytes(DEFAULT_TENANT, "c", "../MANIFEST")
            .expect_err("bad name")
            .kind(),
        ErrorKind::InvalidArgument
    );
}
