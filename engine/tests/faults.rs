//! Durability under failing storage: every failure the storage layer can produce, at the
//! points where the engine must handle it, with the outcome checked after a crash.
//!
//! The engine runs on in-memory storage behind the fault-injecting decorator; a "crash" drops
//! the engine and every WAL byte that was not synced, then recovers.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[path = "support/block_on.rs"]
mod block_on;

use strata_engine::storage::{Fault, FaultOp, FaultRule, Faults, MemStorage, Trigger};
use strata_engine::*;

#[path = "support/points.rs"]
mod points;
use points::{assert_all, coll, create, points};

struct Rig {
    mem: MemStorage,
    faults: Arc<Faults>,
}

impl Rig {
    fn new() -> Rig {
        Rig {
            mem: MemStorage::new(),
            faults: Faults::new(42),
        }
    }
    fn opts(&self) -> EngineOptions {
        let mut o = EngineOptions::with_storage(self.mem.storage().with_faults(&self.faults));
        o.background = false;
        o
    }
    fn open(&self) -> Engine {
        Engine::open(self.opts()).expect("open")
    }
    /// Drops the engine, loses every unsynced WAL byte, and recovers without faults.
    fn crash(&self, e: Engine) -> Engine {
        drop(e);
        self.faults.clear();
        self.mem.crash(None);
        self.open()
    }
    fn fail(&self, rule: FaultRule) {
        self.faults.add(rule);
    }
}

fn enospc(op: FaultOp, trigger: Trigger) -> FaultRule {
    FaultRule::new(op, trigger).fault(Fault::Error(io::ErrorKind::StorageFull))
}

#[test]
fn a_failed_flush_loses_nothing_and_is_retried_in_order() {
    let rig = Rig::new();
    let e = rig.open();
    let c = create(&e);
    c.upsert(points(0..50, 1.0)).expect("upsert");
    rig.fail(enospc(FaultOp::Write, Trigger::Nth(1)).on("segments/"));
    let err = c.flush().expect_err("disk full");
    assert!(err.to_string().contains("injected"), "{err}");
    // Still readable from the sealed segment held in RAM, and writes go on.
    assert_eq!(c.count(None).expect("count"), 50);
    assert_all(&c, 0..50, 1.0);
    assert_eq!(e.stats().unwritten_segments, 1);
    c.upsert(points(50..80, 2.0)).expect("writes continue");
    // The next flush writes the old segment first, then the new one.
    assert!(c.flush().expect("retry"));
    assert_eq!(e.stats().unwritten_segments, 0);
    assert_eq!(e.stats().segments, 2);
    let e = rig.crash(e);
    let c = coll(&e);
    assert_eq!(c.count(None).expect("count"), 80);
    assert_all(&c, 0..50, 1.0);
    assert_all(&c, 50..80, 2.0);
}

#[test]
fn a_flush_that_keeps_failing_never_releases_the_wal_it_needs() {
    // The defect: the memtable was emptied and a later flush recorded a later flushed LSN, so
    // replay skipped the rows of the segment that was never written.
    let rig = Rig::new();
    let e = rig.open();
    let c = create(&e);
    c.upsert(points(0..40, 1.0)).expect("upsert");
    rig.fail(enospc(FaultOp::Write, Trigger::Nth(1)).on("segments/"));
    assert!(c.flush().is_err());
    c.upsert(points(40..60, 2.0)).expect("upsert");
    // Now the first segment can't be written either way: its retry fails again.
    rig.fail(enospc(FaultOp::Rename, Trigger::Nth(1)).on("segments/"));
    assert!(c.flush().is_err());
    let e = rig.crash(e);
    let c = coll(&e);
    assert_eq!(c.count(None).expect("count"), 60);
    assert_all(&c, 0..40, 1.0);
    assert_all(&c, 40..60, 2.0);
}

#[test]
fn a_failed_manifest_write_refuses_writes_until_it_is_written_again() {
    for ambiguous in [false, true] {
        let rig = Rig::new();
        let e = rig.open();
        let c = create(&e);
        c.upsert(points(0..30, 1.0)).expect("upsert");
        // put = write, sync, rename, dir sync: fail the rename (old manifest stays) or the
        // directory sync after it (the new one is visible, maybe not durable).
        let rule = if ambiguous {
            FaultRule::new(FaultOp::Sync, Trigger::Nth(2)).on("MANIFEST")
        } else {
            FaultRule::new(FaultOp::Rename, Trigger::Nth(1)).on("MANIFEST")
        };
        rig.fail(rule);
        assert!(c.flush().is_err(), "the publish fails");
        assert!(!e.is_writable());
        let h = e.health();
        assert!(
            h.reason.as_deref().is_some_and(|r| r.contains("manifest")),
            "{h:?}"
        );
        let err = c.upsert(points(30..31, 9.0)).expect_err("writes refused");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert_all(&c, 0..30, 1.0); // reads go on
        // The retry (the flush worker's job; a flush does it too) writes it again.
        c.flush().expect("a flush writes the manifest again");
        assert!(
            e.is_writable(),
            "a successful manifest write lifts the refusal"
        );
        c.upsert(points(30..40, 2.0))
            .expect("writes accepted again");
        let e = rig.crash(e);
        let c = coll(&e);
        assert_eq!(c.count(None).expect("count"), 40, "ambiguous = {ambiguous}");
        assert_all(&c, 30..40, 2.0);
    }
}

#[test]
fn a_crash_right_after_a_failed_manifest_write_loses_nothing_acknowledged() {
    for ambiguous in [false, true] {
        let rig = Rig::new();
        let e = rig.open();
        let c = create(&e);
        c.upsert(points(0..30, 1.0)).expect("upsert");
        c.flush().expect("flush");
        c.upsert(points(30..60, 2.0)).expect("upsert");
        c.flush().expect("flush");
        c.upsert(points(60..70, 3.0)).expect("upsert");
        let rule = |n| {
            if ambiguous {
                FaultRule::new(FaultOp::Sync, Trigger::Nth(2 * n)).on("MANIFEST")
            } else {
                FaultRule::new(FaultOp::Write, Trigger::Nth(n)).on("MANIFEST")
            }
        };
        // A compaction whose publish fails (inputs swapped out in memory, not deleted)...
        rig.fail(rule(1));
        assert!(c.compact().is_err());
        // ... and, still refused, a flush whose publish fails too.
        rig.fail(rule(2));
        assert!(c.flush().is_err());
        let e = rig.crash(e);
        let c = coll(&e);
        assert_eq!(c.count(None).expect("count"), 70, "ambiguous = {ambiguous}");
        assert_all(&c, 0..30, 1.0);
        assert_all(&c, 30..60, 2.0);
        assert_all(&c, 60..70, 3.0);
    }
}

#[test]
fn a_failed_drop_keeps_the_collection_and_refuses_writes_until_republished() {
    // The defect: `dropped` was reset although the manifest on disk no longer named the
    // collection; writes were accepted, then vanished at restart.
    for crash_before_retry in [true, false] {
        let rig = Rig::new();
        let e = rig.open();
        let c = create(&e);
        c.upsert(points(0..20, 1.0)).expect("upsert");
        c.flush().expect("flush");
        c.upsert(points(20..30, 1.0)).expect("upsert");
        // The directory fsync after the rename fails: the new manifest (without "c") is on
        // disk, but the engine cannot know it.
        rig.fail(FaultRule::new(FaultOp::Sync, Trigger::Nth(2)).on("MANIFEST"));
        assert!(e.delete_collection(DEFAULT_TENANT, "c").is_err());
        let c = coll(&e);
        assert_eq!(c.count(None).expect("still there"), 30);
        assert_eq!(
            c.upsert(points(30..31, 1.0)).expect_err("refused").kind(),
            ErrorKind::Unavailable
        );
        if crash_before_retry {
            // The drop may or may not have happened; nothing was acknowledged after it.
            let e = rig.crash(e);
            if let Ok(c) = e.collection(DEFAULT_TENANT, "c") {
                assert_eq!(c.count(None).expect("count"), 30);
            }
            continue;
        }
        // The retry writes the manifest with the collection again; then writes are safe.
        c.flush().expect("republish");
        assert!(e.is_writable());
        c.upsert(points(30..40, 3.0)).expect("accepted");
        let e = rig.crash(e);
        let c = coll(&e);
        assert_eq!(c.count(None).expect("count"), 40);
        assert_all(&c, 30..40, 3.0);
        assert_all(&c, 0..30, 1.0);
    }
}

#[test]
fn a_failed_compaction_leaves_the_inputs_and_is_retried() {
    let rig = Rig::new();
    let e = rig.open();
    let c = create(&e);
    for k in 0..3u64 {
        c.upsert(points(k * 10..k * 10 + 10, 1.0)).expect("upsert");
        c.flush().expect("flush");
    }
    c.delete(&[PointId::Num(5)]).expect("delete");
    rig.fail(enospc(FaultOp::Write, Trigger::Nth(1)).on("segments/"));
    assert!(c.compact().is_err());
    assert!(
        e.is_writable(),
        "a failed segment write does not refuse writes"
    );
    assert_eq!(c.info().expect("info").segments, 3);
    assert_eq!(c.count(None).expect("count"), 29);
    assert!(c.compact().expect("retry"));
    assert_eq!(c.info().expect("info").segments, 1);
    let e = rig.crash(e);
    let c = coll(&e);
    assert_eq!(c.count(None).expect("count"), 29);
    assert!(
        c.get(&[PointId::Num(5)], false, false)
            .expect("get")
            .is_empty()
    );
}

#[test]
fn a_failed_wal_fsync_refuses_writes_and_loses_nothing_acknowledged() {
    let rig = Rig::new();
    let e = rig.open();
    let c = create(&e);
    c.upsert(points(0..10, 1.0)).expect("upsert");
    rig.fail(FaultRule::new(FaultOp::Sync, Trigger::Nth(1)).on(".wal"));
    let err = c.upsert(points(10..20, 2.0)).expect_err("fsync fails");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(!e.is_writable());
    assert!(e.health().reason.expect("a reason").contains("WAL"));
    rig.faults.clear();
    assert!(
        c.upsert(points(20..21, 3.0)).is_err(),
        "poisoned until restart"
    );
    let e = rig.crash(e);
    assert!(e.is_writable());
    let c = coll(&e);
    assert_all(&c, 0..10, 1.0);
    assert_eq!(
        c.count(None).expect("count"),
        10,
        "the unacknowledged batch died with the crash"
    );
}

#[test]
fn a_torn_manifest_is_refused_with_its_location_and_a_torn_temp_file_is_ignored() {
    let d = tempfile::tempdir().expect("tempdir");
    let mut o = EngineOptions::new(d.path());
    o.background = false;
    {
        let e = Engine::open(o.clone()).expect("open");
        create(&e).upsert(points(0..10, 1.0)).expect("upsert");
        coll(&e).flush().expect("flush");
    }
    // A crash while writing the next manifest leaves a partial temporary file: ignored.
    let good = std::fs::read(d.path().join("MANIFEST")).expect("read");
    std::fs::write(d.path().join("MANIFEST.1.2.tmp"), &good[..good.len() / 2]).expect("write");
    {
        let e = Engine::open(o.clone()).expect("open");
        assert_eq!(coll(&e).count(None).expect("count"), 10);
        assert_eq!(e.recovery_report().orphans_removed, 1);
    }
    // A manifest cut short (a file system that lost its tail) is corruption, named.
    std::fs::write(d.path().join("MANIFEST"), &good[..good.len() - 7]).expect("write");
    let err = Engine::open(o).expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Corruption);
    assert!(err.to_string().contains("MANIFEST"), "{err}");
}

#[test]
fn a_panicking_maintenance_job_is_caught_reported_and_retried() {
    let rig = Rig::new();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let mut o = rig.opts();
    o.background = true;
    o.clock = clock.clone();
    o.memtable_max_bytes = 1;
    o.maintenance_interval = Duration::from_millis(5);
    let e = Engine::open(o).expect("open");
    rig.fail(
        FaultRule::new(FaultOp::Write, Trigger::Nth(1))
            .on("segments/")
            .fault(Fault::Panic),
    );
    let c = create(&e);
    c.upsert(points(0..10, 1.0)).expect("upsert");
    let wait_for = |what: &str, f: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for("the failure to be reported", &|| {
        !e.health().failing.is_empty()
    });
    let h = e.health();
    let f = &h.failing[0];
    assert_eq!(
        (f.job.as_str(), f.collection.as_str(), f.panicked),
        ("flush", "c", true)
    );
    assert!(f.last_error.contains("injected panic"), "{f:?}");
    assert!(
        e.is_writable(),
        "a maintenance failure does not refuse writes"
    );
    c.upsert(points(10..20, 1.0)).expect("writes go on");
    // The worker survived: once the backoff passes it flushes.
    clock.advance(60_000);
    wait_for("the retry to succeed", &|| {
        e.health().failing.is_empty() && e.stats().memtable_points == 0
    });
    assert_eq!(c.count(None).expect("count"), 20);
}

#[test]
fn count_is_exact_under_concurrent_flushes_and_overwrites() {
    let rig = Rig::new();
    let e = Arc::new(rig.open());
    let c = create(&e);
    c.upsert(points(0..500, 0.0)).expect("upsert");
    let f = Filter::parse_str(r#"{"must": [{"key": "i", "range": {"lt": 100}}]}"#).expect("filter");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (c, stop) = (c.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut round = 1.0;
            while !stop.load(Ordering::Relaxed) {
                // Overwrites and flushes: rows move between the memtable and segments.
                c.upsert(points(0..500, round)).expect("overwrite");
                c.flush().expect("flush");
                round += 1.0;
            }
        })
    };
    let started = std::time::Instant::now();
    let mut checks = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        assert_eq!(c.count(None).expect("count"), 500);
        assert_eq!(c.count(Some(&f)).expect("count"), 100);
        checks += 1;
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    assert!(checks > 10, "{checks}");
}

#[test]
fn reads_never_miss_a_point_that_is_being_overwritten() {
    // A read takes its view of the memtable, then walks the segments; a write landing in
    // between marks the old row dead and puts the new one in the memtable already passed. The
    // read must still see the point (the old version or the new), by every read path.
    let rig = Rig::new();
    let e = Arc::new(rig.open());
    let c = create(&e);
    c.upsert(points(0..200, 0.0)).expect("upsert");
    c.flush().expect("flush");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (c, stop) = (c.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut round = 1.0;
            while !stop.load(Ordering::Relaxed) {
                for chunk in (0..200u64).step_by(20) {
                    c.upsert(points(chunk..chunk + 20, round))
                        .expect("overwrite");
                }
                c.flush().expect("flush");
                round += 1.0;
            }
        })
    };
    let ids: Vec<PointId> = (0..200).map(PointId::Num).collect();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        assert_eq!(c.get(&ids, false, false).expect("get").len(), 200, "get");
        let page = c
            .scroll(&ScrollRequest {
                limit: 500,
                ..ScrollRequest::default()
            })
            .expect("scroll");
        assert_eq!(page.points.len(), 200, "scroll");
        let mut q = SearchRequest::new(vec![0.0; 4], 500);
        q.exact = true;
        assert_eq!(c.search(&q).expect("search").len(), 200, "search");
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
}

#[test]
fn an_expired_or_cancelled_deadline_applies_nothing() {
    let rig = Rig::new();
    let e = rig.open();
    let c = create(&e);
    c.upsert(points(0..5, 1.0)).expect("upsert");
    let expired = c.with_deadline(Deadline::at(std::time::Instant::now()));
    let err = expired.upsert(points(5..10, 1.0)).expect_err("too late");
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded);
    assert!(expired.delete(&[PointId::Num(1)]).is_err());
    assert!(
        expired
            .search(&SearchRequest::new(vec![0.0; 4], 3))
            .is_err()
    );
    assert!(expired.count(None).is_err());
    let flag = Arc::new(AtomicBool::new(true));
    let cancelled = c.with_deadline(Deadline::none().cancelled_by(flag));
    assert!(cancelled.upsert(points(5..10, 1.0)).is_err());
    let e = rig.crash(e);
    assert_eq!(
        coll(&e).count(None).expect("count"),
        5,
        "nothing of a refused write applied"
    );
    let ok = coll(&e).with_deadline(Deadline::after(Duration::from_secs(60)));
    ok.upsert(points(5..10, 1.0)).expect("in time");
}

#[test]
fn filters_are_bounded_in_keys_conditions_and_cache_memory() {
    let rig = Rig::new();
    let mut o = rig.opts();
    o.max_filter_keys = 4;
    o.max_filter_conditions = 50;
    o.filter_cache_bytes = 64 << 10;
    let e = Engine::open(o).expect("open");
    let c = create(&e);
    for k in 0..4u64 {
        c.upsert(points(k * 500..k * 500 + 500, 1.0))
            .expect("upsert");
        c.flush().expect("flush");
    }
    let keys: Vec<String> = (0..5)
        .map(|k| format!(r#"{{"key": "k{k}", "match": {{"value": 1}}}}"#))
        .collect();
    let wide = Filter::parse_str(&format!(r#"{{"should": [{}]}}"#, keys.join(","))).expect("parse");
    let err = c.count(Some(&wide)).expect_err("too many keys");
    assert!(err.to_string().contains("5 distinct payload keys"), "{err}");
    let big = Filter::parse_str(&format!(
        r#"{{"must": [{{"key": "i", "match": {{"any": [{}]}}}}]}}"#,
        (0..60).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
    ))
    .expect("parse");
    let err = c
        .scroll(&ScrollRequest {
            limit: 5,
            filter: Some(big),
            ..ScrollRequest::default()
        })
        .expect_err("too many conditions");
    assert!(err.to_string().contains("60 conditions"), "{err}");
    // Columns of every key on every segment would need far more than 64 KiB: the cache stays
    // under its budget and answers stay right.
    for key in ["i", "tag", "x", "y"] {
        let f = Filter::parse_str(&format!(
            r#"{{"must_not": [{{"key": "{key}", "match": {{"value": 7}}}}]}}"#
        ))
        .expect("parse");
        let n = c.count(Some(&f)).expect("count");
        assert_eq!(n, if key == "i" { 1999 } else { 2000 }, "{key}");
        assert!(e.stats().filter_cache_bytes <= 64 << 10, "{:?}", e.stats());
    }
}

#[test]
fn a_read_only_engine_changes_nothing() {
    let d = tempfile::tempdir().expect("tempdir");
    let mut o = EngineOptions::new(d.path());
    o.background = false;
    {
        let e = Engine::open(o.clone()).expect("open");
        create(&e).upsert(points(0..10, 1.0)).expect("upsert");
        coll(&e).flush().expect("flush");
        coll(&e).upsert(points(10..12, 1.0)).expect("upsert");
    }
    std::fs::write(
        d.path().join("segments/00000000000000000777.seg"),
        b"orphan",
    )
    .expect("w");
    let snapshot = |p: &std::path::Path| {
        let mut v: Vec<(String, Vec<u8>)> = walk(p);
        v.sort();
        v
    };
    let before = snapshot(d.path());
    let mut ro = o.clone();
    ro.read_only = true;
    let e = Engine::open(ro).expect("read-only open");
    assert_eq!(e.recovery_report().orphans_found, 1);
    assert_eq!(e.recovery_report().orphans_removed, 0);
    assert_eq!(coll(&e).count(None).expect("count"), 12);
    assert!(!e.is_writable());
    assert_eq!(
        coll(&e)
            .upsert(points(0..1, 1.0))
            .expect_err("read-only")
            .kind(),
        ErrorKind::Unavailable
    );
    assert!(coll(&e).flush().is_err());
    drop(e);
    assert_eq!(snapshot(d.path()), before, "not a byte changed");
}

fn walk(p: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(p).expect("ls") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push((
                path.display().to_string(),
                std::fs::read(&path).expect("read"),
            ));
        }
    }
    out
}

#[test]
fn payload_indexes_are_persisted_and_a_failed_publish_changes_nothing() {
    let rig = Rig::new();
    let e = rig.open();
    let c = create(&e);
    c.upsert(points(0..10, 1.0)).expect("upsert");
    c.create_payload_index("tag", FieldType::Float)
        .expect("create");
    c.create_payload_index("i", FieldType::Integer)
        .expect("create");
    // Again with the same type: nothing changes; with another type: replaced.
    c.create_payload_index("i", FieldType::Integer)
        .expect("same");
    c.create_payload_index("tag", FieldType::Keyword)
        .expect("retype");
    let want = vec![
        ("i".to_string(), FieldType::Integer),
        ("tag".to_string(), FieldType::Keyword),
    ];
    assert_eq!(c.payload_indexes(), want);
    let schema = c.payload_schema().expect("schema");
    assert_eq!(schema[0], ("i".to_string(), FieldType::Integer, 10));
    // The manifest write fails: the list stays as it was, in memory and after a crash.
    rig.fail(FaultRule::new(FaultOp::Write, Trigger::Nth(1)).on("MANIFEST"));
    assert!(c.create_payload_index("missing", FieldType::Bool).is_err());
    assert!(c.drop_payload_index("i").is_err());
    assert_eq!(c.payload_indexes(), want);
    let e = rig.crash(e);
    let c = coll(&e);
    assert_eq!(c.payload_indexes(), want);
    assert!(c.drop_payload_index("i").expect("drop"));
    assert!(!c.drop_payload_index("i").expect("gone already"));
    let e = rig.crash(e);
    assert_eq!(
        coll(&e).payload_indexes(),
        vec![("tag".to_string(), FieldType::Keyword)]
    );
    // Bad keys are refused by name.
    let err = coll(&e)
        .create_payload_index("a..b", FieldType::Keyword)
        .expect_err("refused");
    assert!(err.message().contains("field_name"), "{err}");
}

#[test]
fn a_failed_reindex_leaves_the_segment_answering_and_is_retried() {
    let rig = Rig::new();
    let e = rig.open();
    let c = create(&e);
    c.upsert(points(0..20, 1.0)).expect("upsert");
    c.flush().expect("flush");
    // Created after the segment was written: the segment lacks the index section.
    c.create_payload_index("i", FieldType::Integer)
        .expect("index");
    let small =
        Filter::parse_str(r#"{"must": [{"key": "i", "range": {"lt": 5}}]}"#).expect("filter");
    assert_eq!(c.payload_schema().expect("schema")[0].2, 0);
    rig.fail(enospc(FaultOp::Write, Trigger::Nth(1)).on("segments/"));
    assert!(c.compact().is_err(), "the rewrite with the index fails");
    assert!(e.is_writable());
    assert_eq!(c.count(Some(&small)).expect("count from payloads"), 5);
    assert_eq!(c.payload_schema().expect("schema")[0].2, 0);
    assert!(c.compact().expect("retry"));
    assert_eq!(c.payload_schema().expect("schema")[0].2, 20);
    assert_eq!(c.count(Some(&small)).expect("count from the index"), 5);
    let e = rig.crash(e);
    let c = coll(&e);
    assert_eq!(c.payload_schema().expect("schema")[0].2, 20);
    assert_eq!(c.count(Some(&small)).expect("count"), 5);
}

#[test]
fn alias_changes_are_atomic_persisted_and_a_failed_publish_changes_nothing() {
    let rig = Rig::new();
    let e = rig.open();
    create(&e).upsert(points(0..5, 1.0)).expect("upsert");
    let blue = e
        .create_collection(
            DEFAULT_TENANT,
            "blue",
            CollectionConfig::new(4, Distance::Dot),
        )
        .expect("blue");
    blue.upsert(points(0..2, 1.0)).expect("upsert");
    let create_alias = |alias: &str, collection: &str| AliasAction::Create {
        alias: alias.into(),
        collection: collection.into(),
    };
    e.update_aliases(DEFAULT_TENANT, &[create_alias("prod", "c")])
        .expect("create");
    assert_eq!(
        e.collection(DEFAULT_TENANT, "prod")
            .expect("by alias")
            .name(),
        "c"
    );
    // A switch whose last action fails applies none of it.
    let err = e
        .update_aliases(
            DEFAULT_TENANT,
            &[
                AliasAction::Delete {
                    alias: "prod".into(),
                },
                create_alias("prod", "blue"),
                create_alias("x", "missing"),
            ],
        )
        .expect_err("unknown collection");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("actions[2]"), "{err}");
    assert_eq!(
        e.resolve_alias(DEFAULT_TENANT, "prod").as_deref(),
        Some("c")
    );
    // Names are one namespace: an alias cannot be a collection name, nor the reverse.
    let err = e
        .update_aliases(DEFAULT_TENANT, &[create_alias("blue", "c")])
        .expect_err("collection name");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    let err = e
        .create_collection(
            DEFAULT_TENANT,
            "prod",
            CollectionConfig::new(4, Distance::Dot),
        )
        .expect_err("alias name");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    // The manifest write fails: the aliases stay as they were, in memory and after a crash.
    rig.fail(FaultRule::new(FaultOp::Write, Trigger::Nth(1)).on("MANIFEST"));
    assert!(
        e.update_aliases(DEFAULT_TENANT, &[create_alias("prod", "blue")])
            .is_err()
    );
    assert_eq!(
        e.resolve_alias(DEFAULT_TENANT, "prod").as_deref(),
        Some("c")
    );
    let e = rig.crash(e);
    assert_eq!(
        e.aliases(DEFAULT_TENANT),
        vec![("prod".to_string(), "c".to_string())]
    );
    // The blue/green switch, then a rename; both persisted.
    e.update_aliases(
        DEFAULT_TENANT,
        &[
            AliasAction::Delete {
                alias: "prod".into(),
            },
            create_alias("prod", "blue"),
        ],
    )
    .expect("switch");
    assert_eq!(
        e.collection(DEFAULT_TENANT, "prod")
            .expect("alias")
            .count(None)
            .expect("count"),
        2
    );
    e.update_aliases(
        DEFAULT_TENANT,
        &[
            AliasAction::Rename {
                from: "prod".into(),
                to: "live".into(),
            },
            create_alias("old", "c"),
        ],
    )
    .expect("rename");
    let e = rig.crash(e);
    assert_eq!(
        e.aliases(DEFAULT_TENANT),
        vec![
            ("live".to_string(), "blue".to_string()),
            ("old".to_string(), "c".to_string())
        ]
    );
    assert!(e.aliases("other").is_empty(), "aliases are per tenant");
    assert!(e.collection("other", "live").is_err());
    // Dropping a collection drops its aliases, durably.
    e.delete_collection(DEFAULT_TENANT, "blue").expect("drop");
    assert_eq!(
        e.aliases(DEFAULT_TENANT),
        vec![("old".to_string(), "c".to_string())]
    );
    let e = rig.crash(e);
    assert_eq!(
        e.aliases(DEFAULT_TENANT),
        vec![("old".to_string(), "c".to_string())]
    );
    assert!(e.collection(DEFAULT_TENANT, "live").is_err());
    let err = e
        .update_aliases(
            DEFAULT_TENANT,
            &[AliasAction::Rename {
                from: "nope".into(),
                to: "x".into(),
            }],
        )
        .expect_err("unknown alias");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn hnsw_updates_are_persisted_validated_and_a_failed_publish_changes_nothing() {
    let rig = Rig::new();
    let e = rig.open();
    let c = create(&e);
    c.upsert(points(0..40, 1.0)).expect("upsert");
    let hnsw = |c: &CollectionHandle| c.config().vectors[0].1.hnsw;
    c.update_hnsw(&[HnswUpdate {
        vector: None,
        m: Some(8),
        ef_construct: Some(40),
    }])
    .expect("update");
    assert_eq!((hnsw(&c).m, hnsw(&c).ef_construct), (8, 40));
    // Out of range or an unknown vector: refused by name, nothing changed.
    let err = c
        .update_hnsw(&[HnswUpdate {
            vector: None,
            m: Some(2),
            ef_construct: None,
        }])
        .expect_err("m too small");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let err = c
        .update_hnsw(&[
            HnswUpdate {
                vector: None,
                m: Some(12),
                ef_construct: None,
            },
            HnswUpdate {
                vector: Some("nope".into()),
                m: Some(8),
                ef_construct: None,
            },
        ])
        .expect_err("unknown vector");
    assert!(err.message().contains("nope"), "{err}");
    assert_eq!(hnsw(&c).m, 8);
    rig.fail(FaultRule::new(FaultOp::Write, Trigger::Nth(1)).on("MANIFEST"));
    assert!(
        c.update_hnsw(&[HnswUpdate {
            vector: None,
            m: Some(24),
            ef_construct: None
        }])
        .is_err()
    );
    assert_eq!(hnsw(&c).m, 8);
    let e = rig.crash(e);
    let c = coll(&e);
    assert_eq!((hnsw(&c).m, hnsw(&c).ef_construct), (8, 40));
    // Flush and compaction under the new parameters lose nothing.
    c.flush().expect("flush");
    c.compact().expect("compact");
    assert_all(&c, 0..40, 1.0);
    let e = rig.crash(e);
    assert_all(&coll(&e), 0..40, 1.0);
}

#[test]
fn a_failed_snapshot_restore_changes_nothing_and_a_restored_one_numbers_above_it_after_a_crash() {
    let rig = Rig::new();
    let e = rig.open();
    let c = create(&e);
    // Many writes: the snapshot's versions are well ahead of a fresh node's log.
    for i in 0..30 {
        c.upsert(points(i..i + 1, 1.0)).expect("upsert");
    }
    let snap = e.create_snapshot(DEFAULT_TENANT, "c").expect("snapshot");
    let bytes = e
        .snapshot_bytes(DEFAULT_TENANT, "c", &snap.name)
        .expect("bytes")
        .as_bytes()
        .to_vec();
    c.upsert(points(0..30, 2.0)).expect("newer");
    // The manifest write of the restore fails: the collection keeps its newer data.
    rig.fail(FaultRule::new(FaultOp::Write, Trigger::Nth(1)).on("MANIFEST"));
    assert!(
        e.recover_snapshot(DEFAULT_TENANT, "c", &bytes, None)
            .is_err()
    );
    let e = rig.crash(e);
    assert_all(&coll(&e), 0..30, 2.0);
    // Its segments were left in place (the failed write might have landed) and the start
    // found no manifest naming them: removed.
    assert!(
        e.recovery_report().orphans_removed >= 1,
        "{:?}",
        e.recovery_report()
    );
    // Restored into a node whose log is behind, then a crash before any write: new writes
    // still number above every restored version.
    let fresh = Rig::new();
    let f = fresh.open();
    f.recover_snapshot(DEFAULT_TENANT, "c", &bytes, Some(&snap.checksum))
        .expect("restore");
    let max = coll(&f).get(&[PointId::Num(0)], false, false).expect("get")[0].version;
    let f = fresh.crash(f);
    assert_all(&coll(&f), 0..30, 1.0);
    let v = coll(&f).upsert(points(0..1, 3.0)).expect("write");
    assert!(v > max, "{v} > {max}");
    let f = fresh.crash(f);
    assert_all(&coll(&f), 0..1, 3.0);
    assert_all(&coll(&f), 1..30, 1.0);
}

#[test]
fn actor_writes_survive_disk_faults_as_points_do() {
    // A failed manifest write when a store is created: the write is refused, nothing is
    // acknowledged; once the manifest is written again the store is created and persists.
    let rig = Rig::new();
    let e = rig.open();
    let c = create(&e);
    rig.fail(FaultRule::new(FaultOp::Rename, Trigger::Nth(1)).on("MANIFEST"));
    assert!(e.actors(DEFAULT_TENANT, "t").is_err(), "the publish fails");
    assert!(
        e.actors_existing(DEFAULT_TENANT, "t")
            .expect("lookup")
            .is_none()
    );
    rig.faults.clear();
    c.flush().expect("a flush writes the manifest again");
    drop(c);
    let a = e.actors(DEFAULT_TENANT, "t").expect("created now");
    let put = |a: &ActorHandle, v: &[u8]| {
        a.put(
            "x",
            "state",
            v.to_vec(),
            "text/plain",
            None,
            ActorCondition::None,
        )
    };
    let v1 = put(&a, b"1").expect("acknowledged");
    // A failed WAL fsync: the write is refused (not acknowledged), the engine stops writing,
    // and after a crash the acknowledged state is there and the refused one is not.
    rig.fail(FaultRule::new(FaultOp::Sync, Trigger::Nth(1)).on(".wal"));
    let err = put(&a, b"2").expect_err("fsync fails");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(
        a.get("x", "state").expect("get").map(|s| s.version),
        Some(v1),
        "not applied"
    );
    drop(a);
    let e = rig.crash(e);
    let a = e
        .actors_existing(DEFAULT_TENANT, "t")
        .expect("lookup")
        .expect("the store survived");
    let s = a.get("x", "state").expect("get").expect("present");
    assert_eq!((s.value, s.version), (b"1".to_vec(), v1));
}

#[test]
fn actor_flushes_and_compactions_survive_disk_faults() {
    let rig = Rig::new();
    let e = rig.open();
    let a = e.actors(DEFAULT_TENANT, "t").expect("store");
    let put = |a: &ActorHandle, id: &str, v: &[u8]| {
        a.put(
            id,
            "state",
            v.to_vec(),
            "text/plain",
            None,
            ActorCondition::None,
        )
        .expect("acknowledged")
    };
    let mut want: Vec<(String, Vec<u8>, u64)> = Vec::new();
    for i in 0..50 {
        let (id, v) = (format!("a{i:03}"), format!("v{i}").into_bytes());
        let ver = put(&a, &id, &v);
        want.push((id, v, ver));
    }
    let check = |a: &ActorHandle, want: &[(String, Vec<u8>, u64)]| {
        for (id, v, ver) in want {
            let s = a.get(id, "state").expect("get").expect("present");
            assert_eq!((&s.value, s.version), (v, *ver), "{id}");
        }
    };
    // A failed segment write: the flush fails, every state stays readable (from RAM), and a
    // crash right after loses nothing (the WAL still holds the records).
    rig.fail(FaultRule::new(FaultOp::Sync, Trigger::Nth(1)).on(".seg"));
    a.flush().expect_err("the segment's fsync fails");
    check(&a, &want);
    drop(a);
    let e = rig.crash(e);
    let a = e
        .actors_existing(DEFAULT_TENANT, "t")
        .expect("lookup")
        .expect("store");
    check(&a, &want);
    // A failed manifest write after the segment is written: still readable, and after a crash
    // the manifest names no segment — the records come back from the WAL.
    rig.fail(FaultRule::new(FaultOp::Rename, Trigger::Nth(1)).on("MANIFEST"));
    a.flush().expect_err("the manifest write fails");
    check(&a, &want);
    drop(a);
    let e = rig.crash(e);
    let a = e
        .actors_existing(DEFAULT_TENANT, "t")
        .expect("lookup")
        .expect("store");
    check(&a, &want);
    assert_eq!(e.stats().actor_segments, [0, 0, 0]);
    // Flushed for real, then overwritten and flushed again, then a compaction whose output
    // write fails: the inputs still answer; a crash keeps them; a retried compaction merges.
    assert!(a.flush().expect("flush"));
    for w in want.iter_mut().step_by(3) {
        w.1 = b"newer".to_vec();
        w.2 = put(&a, &w.0, &w.1);
    }
    assert!(a.flush().expect("flush"));
    assert_eq!(e.stats().actor_segments, [0, 2, 0]);
    rig.fail(FaultRule::new(FaultOp::Write, Trigger::Nth(1)).on(".seg"));
    a.compact(true).expect_err("the output's write fails");
    check(&a, &want);
    drop(a);
    let e = rig.crash(e);
    let a = e
        .actors_existing(DEFAULT_TENANT, "t")
        .expect("lookup")
        .expect("store");
    check(&a, &want);
    assert_eq!(
        e.stats().actor_segments,
        [0, 2, 0],
        "the inputs, named by the manifest"
    );
    assert!(a.compact(true).expect("compact"));
    assert_eq!(e.stats().actor_segments, [0, 1, 0]);
    check(&a, &want);
    // A failed read of a block is an error, never a wrong answer or an absent state.
    rig.fail(FaultRule::new(FaultOp::Read, Trigger::Nth(1)).on(".seg"));
    let err = a.get("a007", "state").expect_err("the read fails");
    assert_ne!(err.kind(), ErrorKind::NotFound);
    rig.faults.clear();
    check(&a, &want);
    drop(a);
    let e = rig.crash(e);
    let a = e
        .actors_existing(DEFAULT_TENANT, "t")
        .expect("lookup")
        .expect("store");
    check(&a, &want);
}

#[test]
fn an_async_actor_commit_whose_fsync_fails_is_refused_and_never_applied() {
    let rig = Rig::new();
    let e = rig.open();
    let a = e.actors(DEFAULT_TENANT, "t").expect("store");
    let w = |v: &[u8]| {
        vec![ActorWrite::Put {
            state: "state".into(),
            value: v.to_vec(),
            content_type: "text/plain".into(),
            ttl_ms: None,
            condition: ActorCondition::None,
        }]
    };
    let f = a.commit_async("x", w(b"1"), false).expect("no I/O needed");
    let v1 = block_on::block_on(f)
        .expect("durable")
        .version
        .expect("written");
    rig.fail(FaultRule::new(FaultOp::Sync, Trigger::Nth(1)).on(".wal"));
    let f = a.commit_async("x", w(b"2"), false).expect("no I/O needed");
    let err = block_on::block_on(f).expect_err("the fsync fails");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let s = a.get("x", "state").expect("get").expect("present");
    assert_eq!((s.value, s.version), (b"1".to_vec(), v1), "not applied");
    drop(a);
    let e = rig.crash(e);
    let a = e
        .actors_existing(DEFAULT_TENANT, "t")
        .expect("lookup")
        .expect("store");
    let s = a.get("x", "state").expect("get").expect("present");
    assert_eq!((s.value, s.version), (b"1".to_vec(), v1));
}
