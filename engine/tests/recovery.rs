//! Recovery and validation at the engine level.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;
use strata_engine::*;

fn opts(dir: &Path) -> EngineOptions {
    let mut o = EngineOptions::new(dir);
    o.background = false;
    o
}

fn point(id: u64, x: f32) -> PointInput {
    PointInput::new(
        PointId::Num(id),
        vec![x, 1.0, 2.0, 3.0],
        Some(json!({"x": x}).as_object().expect("obj").clone()),
    )
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

fn setup(dir: &Path) {
    let e = Engine::open(opts(dir)).expect("open");
    let c = e
        .create_collection(DEFAULT_TENANT, "c", CollectionConfig::new(4, Distance::Dot))
        .expect("create");
    c.upsert((0..50).map(|i| point(i, i as f32)).collect())
        .expect("upsert");
    c.flush().expect("flush");
    c.upsert((50..60).map(|i| point(i, i as f32)).collect())
        .expect("upsert");
}

#[test]
fn a_corrupted_segment_byte_stops_startup_naming_file_and_offset() {
    let d = tempfile::tempdir().expect("tempdir");
    setup(d.path());
    let seg = files(&d.path().join("segments"), "seg")
        .pop()
        .expect("a segment");
    let mut bytes = fs::read(&seg).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    fs::write(&seg, &bytes).expect("write");
    let err = Engine::open(opts(d.path())).expect_err("must not open");
    assert_eq!(err.kind(), ErrorKind::Corruption);
    let msg = err.to_string();
    assert!(
        msg.contains(&seg.display().to_string()) && msg.contains("byte offset"),
        "{msg}"
    );
}

#[test]
fn every_io_mode_finds_a_flipped_byte_anywhere_in_a_segment_and_opens_a_clean_one() {
    use strata_engine::storage::{Io, IoMode};
    let d = tempfile::tempdir().expect("tempdir");
    setup(d.path());
    let seg = files(&d.path().join("segments"), "seg")
        .pop()
        .expect("a segment");
    let clean = fs::read(&seg).expect("read");
    let mut modes = vec![IoMode::Pread];
    if strata_engine::storage::io::test_io_uring() {
        modes.push(IoMode::IoUring);
    }
    for mode in modes {
        let io = std::sync::Arc::new(Io::new(mode, 4).expect("io"));
        // Past the header and section table (those fail at the header check anyway).
        for eighth in 1..8 {
            let at = 512 + (clean.len() - 512) * eighth / 8;
            let mut bytes = clean.clone();
            bytes[at] ^= 0x01;
            fs::write(&seg, &bytes).expect("write");
            let mut o = opts(d.path());
            o.io = Some(std::sync::Arc::clone(&io));
            let err = Engine::open(o).expect_err("must not open");
            assert_eq!(
                err.kind(),
                ErrorKind::Corruption,
                "{mode:?} byte {at}: {err}"
            );
            assert!(
                err.to_string().contains(&seg.display().to_string()),
                "{err}"
            );
        }
        fs::write(&seg, &clean).expect("restore");
        let mut o = opts(d.path());
        o.io = Some(std::sync::Arc::clone(&io));
        let e = Engine::open(o).expect("clean opens");
        assert_eq!(e.io().expect("local io").backend().name(), mode.name());
        let c = e.collection(DEFAULT_TENANT, "c").expect("c");
        assert_eq!(c.count(None).expect("count"), 60);
    }
}

#[test]
fn a_failing_or_short_read_while_verifying_is_a_read_error_not_corruption() {
    use strata_engine::storage::{Fault, FaultOp, FaultRule, Faults, Storage, Trigger};
    let d = tempfile::tempdir().expect("tempdir");
    setup(d.path());
    for fault in [Fault::Error(std::io::ErrorKind::Other), Fault::ShortRead] {
        // Steps on the segment: head, open (the mapping), then the batched reads.
        let faults = Faults::new(1);
        faults.add(
            FaultRule::new(FaultOp::Read, Trigger::From(3))
                .on(".seg")
                .fault(fault),
        );
        let storage = Storage::open_local(d.path())
            .expect("storage")
            .with_faults(&faults);
        let mut o = EngineOptions::with_storage(storage);
        o.background = false;
        let err = Engine::open(o).expect_err("must not open");
        assert_ne!(err.kind(), ErrorKind::Corruption, "{fault:?}: {err}");
        assert!(err.to_string().contains("verify"), "{fault:?}: {err}");
    }
    // The file itself is fine.
    Engine::open(opts(d.path())).expect("opens without faults");
}

#[test]
fn a_torn_wal_tail_is_truncated_and_earlier_writes_survive() {
    let d = tempfile::tempdir().expect("tempdir");
    setup(d.path());
    let wal = files(&d.path().join("wal"), "wal")
        .pop()
        .expect("a wal file");
    let len = fs::metadata(&wal).expect("meta").len();
    // Append half a record: the tail a crash mid-write leaves.
    let mut bytes = fs::read(&wal).expect("read");
    bytes.extend_from_slice(&[0x10, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3]);
    fs::write(&wal, &bytes).expect("write");
    let e = Engine::open(opts(d.path())).expect("opens");
    assert!(e.recovery_report().wal_torn_bytes > 0);
    let c = e.collection(DEFAULT_TENANT, "c").expect("c");
    assert_eq!(c.count(None).expect("count"), 60);
    assert_eq!(
        fs::metadata(&wal).expect("meta").len(),
        len,
        "torn bytes truncated"
    );
}

#[test]
fn one_process_per_data_directory() {
    let d = tempfile::tempdir().expect("tempdir");
    let _a = Engine::open(opts(d.path())).expect("first");
    let err = Engine::open(opts(d.path())).expect_err("second must fail");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("in use"), "{err}");
}

#[test]
fn leftover_files_are_removed_and_data_kept() {
    let d = tempfile::tempdir().expect("tempdir");
    setup(d.path());
    let segs = d.path().join("segments");
    fs::write(
        segs.join("00000000000000009999.seg"),
        b"half-written compaction output",
    )
    .expect("w");
    fs::write(segs.join("x.seg.tmp"), b"tmp").expect("w");
    fs::write(d.path().join("MANIFEST.tmp"), b"tmp").expect("w");
    let e = Engine::open(opts(d.path())).expect("open");
    assert_eq!(e.recovery_report().orphans_removed, 3);
    assert_eq!(files(&segs, "seg").len(), 1);
    assert_eq!(
        e.collection(DEFAULT_TENANT, "c")
            .expect("c")
            .count(None)
            .expect("n"),
        60
    );
}

#[test]
fn dropped_collections_stay_dropped_and_names_can_be_reused() {
    let d = tempfile::tempdir().expect("tempdir");
    setup(d.path());
    {
        let e = Engine::open(opts(d.path())).expect("open");
        e.delete_collection(DEFAULT_TENANT, "c").expect("drop");
        assert_eq!(
            e.collection(DEFAULT_TENANT, "c").expect_err("gone").kind(),
            ErrorKind::NotFound
        );
        let c = e
            .create_collection(DEFAULT_TENANT, "c", CollectionConfig::new(4, Distance::Dot))
            .expect("recreate");
        c.upsert(vec![point(1000, 1.0)]).expect("upsert");
    }
    let e = Engine::open(opts(d.path())).expect("reopen");
    let c = e.collection(DEFAULT_TENANT, "c").expect("c");
    assert_eq!(
        c.count(None).expect("n"),
        1,
        "old incarnation's WAL records are not replayed into the new one"
    );
    assert!(
        files(&d.path().join("segments"), "seg").is_empty(),
        "dropped segments deleted"
    );
}

#[test]
fn tenants_are_isolated() {
    let d = tempfile::tempdir().expect("tempdir");
    let e = Engine::open(opts(d.path())).expect("open");
    e.create_collection("a", "docs", CollectionConfig::new(4, Distance::Dot))
        .expect("a");
    assert_eq!(
        e.collection("b", "docs")
            .expect_err("b sees nothing")
            .kind(),
        ErrorKind::NotFound
    );
    e.create_collection("b", "docs", CollectionConfig::new(4, Distance::Dot))
        .expect("same name, other tenant");
    assert_eq!(e.list_collections("a"), vec!["docs".to_string()]);
}

#[test]
fn validation_errors_name_the_field() {
    let d = tempfile::tempdir().expect("tempdir");
    let mut o = opts(d.path());
    o.max_batch_points = 5;
    let e = Engine::open(o).expect("open");
    let c = e
        .create_collection(
            DEFAULT_TENANT,
            "c",
            CollectionConfig::new(4, Distance::Cosine),
        )
        .expect("create");
    let check = |r: Result<Lsn>, kind: ErrorKind, needle: &str| {
        let err = r.expect_err("must fail");
        assert_eq!(err.kind(), kind, "{err}");
        assert!(
            err.to_string().contains(needle),
            "{err} should mention {needle}"
        );
    };
    let mut bad = point(1, 1.0);
    bad.vectors.get_mut("").expect("v").pop();
    check(
        c.upsert(vec![point(0, 0.0), bad]),
        ErrorKind::InvalidArgument,
        "points[1].vector: expected 4 dimensions, got 3",
    );
    let mut nan = point(1, 1.0);
    nan.vectors.get_mut("").expect("v")[2] = f32::NAN;
    check(
        c.upsert(vec![nan]),
        ErrorKind::InvalidArgument,
        "points[0].vector[2] is NaN",
    );
    let mut inf = point(1, 1.0);
    inf.vectors.get_mut("").expect("v")[0] = f32::INFINITY;
    check(
        c.upsert(vec![inf]),
        ErrorKind::InvalidArgument,
        "points[0].vector[0] is inf",
    );
    check(
        c.upsert((0..6).map(|i| point(i, 1.0)).collect()),
        ErrorKind::ResourceExhausted,
        "batch of 6 exceeds the limit of 5",
    );
    assert_eq!(
        c.count(None).expect("n"),
        0,
        "nothing of a refused batch is applied"
    );
    let e2 = PointInput::from_json(
        &json!({"id": 1, "vector": [1, 2, 3, 4], "payload": [1, 2]}),
        "points[7]",
    )
    .expect_err("array payload");
    assert!(
        e2.to_string()
            .contains("points[7].payload: expected a JSON object"),
        "{e2}"
    );
    let e3 = PointInput::from_json(&json!({"id": -1, "vector": [1]}), "points[0]")
        .expect_err("negative id");
    assert!(e3.to_string().contains("points[0].id"), "{e3}");
    for (name, needle) in [
        ("", "collection name"),
        ("a/b", "collection name"),
        ("..", "collection name"),
    ] {
        let err = e
            .create_collection(
                DEFAULT_TENANT,
                name,
                CollectionConfig::new(4, Distance::Dot),
            )
            .expect_err("bad name");
        assert!(err.to_string().contains(needle), "{err}");
    }
    let long = "x".repeat(129);
    assert!(
        e.create_collection(
            DEFAULT_TENANT,
            &long,
            CollectionConfig::new(4, Distance::Dot)
        )
        .is_err()
    );
    let err = e
        .create_collection(
            DEFAULT_TENANT,
            "big",
            CollectionConfig::new(65_537, Distance::Dot),
        )
        .expect_err("dim");
    assert!(err.to_string().contains("vectors.size"), "{err}");
    assert!(
        e.create_collection(
            DEFAULT_TENANT,
            "max",
            CollectionConfig::new(65_536, Distance::Dot)
        )
        .is_ok()
    );
    let err = e
        .create_collection(DEFAULT_TENANT, "c", CollectionConfig::new(4, Distance::Dot))
        .expect_err("dup");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    let err = c
        .search(&SearchRequest::new(vec![1.0; 3], 3))
        .expect_err("query dim");
    assert!(
        err.to_string().contains("vector: expected 4 dimensions"),
        "{err}"
    );
}

#[test]
fn versions_are_lsns_and_newest_wins_across_segments() {
    let d = tempfile::tempdir().expect("tempdir");
    let e = Engine::open(opts(d.path())).expect("open");
    let c = e
        .create_collection(
            DEFAULT_TENANT,
            "c",
            CollectionConfig::new(4, Distance::Euclid),
        )
        .expect("create");
    let v1 = c.upsert(vec![point(1, 1.0), point(2, 2.0)]).expect("u1");
    c.flush().expect("flush");
    let v2 = c.upsert(vec![point(1, 10.0)]).expect("u2");
    assert!(v2 > v1);
    c.flush().expect("flush");
    let v3 = c.delete(&[PointId::Num(2)]).expect("del");
    assert!(v3 > v2);
    let check = |c: &CollectionHandle| {
        let r = c
            .get(&[PointId::Num(1), PointId::Num(2)], true, true)
            .expect("get");
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].version, r[0].vector().expect("v")[0]), (v2, 10.0));
        let hits = c
            .search(&SearchRequest::new(vec![1.0, 1.0, 2.0, 3.0], 10))
            .expect("search");
        assert_eq!(
            hits.iter().map(|h| h.id).collect::<Vec<_>>(),
            vec![PointId::Num(1)]
        );
        assert_eq!(c.count(None).expect("n"), 1);
    };
    check(&c);
    c.flush().expect("flush tombstone");
    check(&c);
    drop((c, e));
    let e = Engine::open(opts(d.path())).expect("reopen");
    let c = e.collection(DEFAULT_TENANT, "c").expect("c");
    check(&c);
    assert!(c.compact().expect("compact"));
    check(&c);
    let info = c.info().expect("info");
    assert_eq!(info.segments, 1);
}

#[test]
fn background_flush_by_age_uses_the_injected_clock() {
    let d = tempfile::tempdir().expect("tempdir");
    let clock = std::sync::Arc::new(ManualClock::new(1_000_000));
    let mut o = EngineOptions::new(d.path());
    o.clock = clock.clone();
    o.memtable_max_age = std::time::Duration::from_secs(30);
    o.maintenance_interval = std::time::Duration::from_millis(10);
    let e = Engine::open(o).expect("open");
    let c = e
        .create_collection(DEFAULT_TENANT, "c", CollectionConfig::new(4, Distance::Dot))
        .expect("create");
    c.upsert(vec![point(1, 1.0)]).expect("upsert");
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(c.info().expect("info").segments, 0, "not old enough yet");
    clock.advance(31_000);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while c.info().expect("info").segments == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "age-based flush never happened"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(c.info().expect("info").memtable_points, 0);
}

#[test]
fn background_flush_when_writes_pause_with_rows_enough_for_a_graph() {
    let d = tempfile::tempdir().expect("tempdir");
    let clock = std::sync::Arc::new(ManualClock::new(1_000_000));
    let mut o = EngineOptions::new(d.path());
    o.clock = clock.clone();
    o.memtable_max_age = std::time::Duration::from_secs(600);
    o.index_threshold_rows = 50;
    o.maintenance_interval = std::time::Duration::from_millis(10);
    assert_eq!(
        o.memtable_idle_flush,
        Some(std::time::Duration::from_secs(1))
    );
    let e = Engine::open(o).expect("open");
    let c = e
        .create_collection(DEFAULT_TENANT, "c", CollectionConfig::new(4, Distance::Dot))
        .expect("create");
    let settle = || std::thread::sleep(std::time::Duration::from_millis(150));
    c.upsert((0..49).map(|i| point(i, i as f32)).collect())
        .expect("upsert");
    clock.advance(5_000);
    settle();
    assert_eq!(
        c.info().expect("info").segments,
        0,
        "49 rows: too few for a graph"
    );
    c.upsert(vec![point(49, 49.0)]).expect("upsert");
    clock.advance(999);
    settle();
    assert_eq!(c.info().expect("info").segments, 0, "written 999 ms ago");
    clock.advance(1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while c.info().expect("info").segments == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "idle flush never happened"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(c.info().expect("info").memtable_points, 0);
    assert_eq!(c.info().expect("info").points, 50);
}

#[test]
fn set_payload_merges_by_id_and_by_filter_and_survives_restart() {
    let d = tempfile::tempdir().expect("tempdir");
    {
        let mut o = opts(d.path());
        o.max_batch_points = 3; // several batches
        let e = Engine::open(o).expect("open");
        let c = e
            .create_collection(DEFAULT_TENANT, "c", CollectionConfig::new(4, Distance::Dot))
            .expect("create");
        for chunk in (0..10u64).collect::<Vec<_>>().chunks(3) {
            c.upsert(chunk.iter().map(|i| point(*i, *i as f32)).collect())
                .expect("upsert");
        }
        c.flush().expect("flush"); // half in a segment, half in the memtable
        c.upsert(
            (10..20)
                .map(|i| point(i, i as f32))
                .collect::<Vec<_>>()
                .into_iter()
                .take(3)
                .collect(),
        )
        .expect("upsert");
        let tag = json!({"tag": "t"}).as_object().expect("obj").clone();
        c.set_payload(
            &[PointId::Num(1), PointId::Num(11), PointId::Num(999)],
            &tag,
        )
        .expect("by id");
        let big =
            Filter::parse_str(r#"{"must": [{"key": "x", "range": {"gte": 5}}]}"#).expect("filter");
        let seven = json!({"big": true}).as_object().expect("obj").clone();
        c.set_payload_matching(&big, &seven).expect("by filter");
    }
    let e = Engine::open(opts(d.path())).expect("reopen");
    let c = e.collection(DEFAULT_TENANT, "c").expect("c");
    let recs = c
        .get(&(0..13).map(PointId::Num).collect::<Vec<_>>(), true, true)
        .expect("get");
    assert_eq!(recs.len(), 13, "set_payload never drops a point");
    for r in recs {
        let PointId::Num(i) = r.id else {
            panic!("uuid")
        };
        let p = r.payload.clone().expect("payload");
        assert_eq!(p["x"], json!(i as f32), "other keys kept");
        assert_eq!(p.get("tag").is_some(), i == 1 || i == 11, "tag on {i}");
        assert_eq!(p.get("big").is_some(), i >= 5, "big on {i}");
        assert_eq!(r.vector().expect("vector")[0], i as f32, "vector kept");
    }
}
