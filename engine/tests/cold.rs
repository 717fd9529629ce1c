//! The cold tier: every sealed segment and every manifest generation goes to the object store;
//! a node with an empty data directory restores from it alone; a failing object store loses
//! nothing acknowledged; garbage collection keeps what retained manifests name.
//!
//! The cold store here is the in-memory blob store (behind the fault decorator where faults
//! are wanted); the same flows against a real S3 server run in `server/tests/e2e/test_cold.py`.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use strata_engine::storage::{
    BlobStore, Fault, FaultOp, FaultRule, Faults, FaultyStore, MemStorage, MemStore, Trigger,
    layout,
};
use strata_engine::*;

#[path = "support/points.rs"]
mod points;
use points::{assert_all, coll, create, points};

fn opts(local: &MemStorage, cold: Arc<dyn BlobStore>) -> EngineOptions {
    let mut o = EngineOptions::with_storage(local.storage());
    o.cold = Some(cold);
    o.background = false;
    o
}

fn open(local: &MemStorage, cold: &Arc<dyn BlobStore>) -> Engine {
    Engine::open(opts(local, Arc::clone(cold))).expect("open")
}

/// A cold store in RAM, its fault rules, and the store behind the fault decorator.
fn faulty_cold(seed: u64) -> (Arc<dyn BlobStore>, Arc<Faults>, Arc<dyn BlobStore>) {
    let mem: Arc<dyn BlobStore> = Arc::new(MemStore::new());
    let faults = Faults::new(seed);
    let faulty: Arc<dyn BlobStore> =
        Arc::new(FaultyStore::new(Arc::clone(&mem), Arc::clone(&faults)));
    (mem, faults, faulty)
}

/// Segment blobs the newest cold manifest generation names, and that they all exist in cold.
fn check_cold_complete(cold: &dyn BlobStore, local: &MemStorage) -> usize {
    let gens = cold.list(layout::MANIFESTS).expect("list manifests");
    let newest = gens.last().expect("a manifest generation");
    let m = cold.open(&newest.name).expect("open manifest");
    assert_eq!(
        local
            .blobs
            .open(layout::MANIFEST)
            .expect("local manifest")
            .as_bytes(),
        m.as_bytes(),
        "the local manifest is the newest cold generation"
    );
    let segs = local.blobs.list(layout::SEGMENTS).expect("list");
    for s in &segs {
        let c = cold.head(&s.name).expect("every local segment is in cold");
        assert_eq!(c.size, s.size, "{}", s.name);
    }
    segs.len()
}

#[test]
fn an_empty_data_directory_restores_everything_from_the_cold_store() {
    let cold: Arc<dyn BlobStore> = Arc::new(MemStore::new());
    let a = MemStorage::new();
    let e = open(&a, &cold);
    let c = create(&e);
    c.upsert(points(0..300, 1.0)).expect("upsert");
    c.flush().expect("flush");
    c.upsert(points(200..400, 2.0)).expect("upsert");
    c.delete(&[PointId::Num(5)]).expect("delete");
    // A graceful shutdown seals the memtable and finishes its upload.
    e.close().expect("close");
    assert_eq!(check_cold_complete(&*cold, &a), 2);

    // A new node: nothing local at all.
    let b = MemStorage::new();
    let e = open(&b, &cold);
    assert!(e.recovery_report().restored_generation.is_some());
    assert_eq!(e.recovery_report().wal_records_replayed, 0);
    let c = coll(&e);
    assert_eq!(c.count(None).expect("count"), 399);
    assert_all(&c, 0..5, 1.0);
    assert_all(&c, 6..200, 1.0);
    assert_all(&c, 200..400, 2.0);
    let hit = c
        .search(&SearchRequest::new(vec![250.0, 2.0, 1.0, 0.5], 1))
        .expect("search");
    assert_eq!(hit[0].id, PointId::Num(250));
    // It goes on writing where the cold history left off.
    c.upsert(points(400..410, 3.0)).expect("upsert");
    e.close().expect("close");
    check_cold_complete(&*cold, &b);
    let e = open(&MemStorage::new(), &cold);
    assert_eq!(coll(&e).count(None).expect("count"), 409);
}

#[test]
fn a_failing_object_store_loses_nothing_and_a_manifest_names_only_uploaded_segments() {
    let (cold_mem, faults, cold) = faulty_cold(7);
    let a = MemStorage::new();
    let e = open(&a, &cold);
    let c = create(&e);
    c.upsert(points(0..100, 1.0)).expect("upsert");
    // Every upload of a segment fails (a dead network, say): the flush fails and is retried.
    faults.add(
        FaultRule::new(FaultOp::Write, Trigger::From(1))
            .fault(Fault::Error(io::ErrorKind::ConnectionReset))
            .on("segments/"),
    );
    let err = c.flush().expect_err("upload fails");
    assert!(err.to_string().contains("injected"), "{err}");
    assert_eq!(e.stats().unwritten_segments, 1);
    c.upsert(points(100..150, 2.0)).expect("writes continue");
    assert_all(&c, 0..100, 1.0);
    // No manifest names a segment that is not in the cold store: a node restoring from the
    // cold store right now opens cleanly (a named but missing segment fails the open).
    let now = Engine::open(opts(&MemStorage::new(), Arc::clone(&cold_mem))).expect("restore");
    assert_eq!(
        coll(&now).count(None).expect("count"),
        0,
        "nothing flushed yet"
    );
    drop(now);
    // A crash now: the WAL still holds everything (it was never released).
    drop(e);
    a.crash(None);
    faults.clear();
    let e = open(&a, &cold);
    let c = coll(&e);
    assert_eq!(c.count(None).expect("count"), 150);
    c.flush().expect("the store is back");
    e.close().expect("close");
    assert_eq!(check_cold_complete(&*cold_mem, &a), 1);
    // And a new node restores all of it.
    let e = open(&MemStorage::new(), &cold_mem);
    let c = coll(&e);
    assert_all(&c, 0..100, 1.0);
    assert_all(&c, 100..150, 2.0);
}

#[test]
fn chance_faults_on_every_cold_call_lose_nothing_and_converge() {
    let (cold_mem, faults, cold) = faulty_cold(11);
    let a = MemStorage::new();
    let e = open(&a, &cold);
    let c = create(&e);
    // 5 % of cold calls of every kind fail.
    for op in [
        FaultOp::Write,
        FaultOp::Read,
        FaultOp::Delete,
        FaultOp::List,
    ] {
        faults.add(
            FaultRule::new(op, Trigger::Chance(0.05)).fault(Fault::Error(io::ErrorKind::TimedOut)),
        );
    }
    let mut next = 0u64;
    let mut failed_flushes = 0;
    for round in 0..40u64 {
        // A failed manifest write refuses writes until a manifest is written again (a flush
        // retries it first): a refused write is not acknowledged, the client retries.
        let mut tries = 0;
        while let Err(e) = c.upsert(points(next..next + 25, round as f32)) {
            assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
            tries += 1;
            assert!(tries < 50, "writes stay refused: {e}");
            let _ = c.flush();
        }
        next += 25;
        if c.flush().is_err() {
            failed_flushes += 1;
        }
    }
    assert!(failed_flushes > 0, "the faults fired");
    faults.clear();
    c.flush().expect("converges once the store behaves");
    assert_eq!(e.stats().unwritten_segments, 0);
    e.close().expect("close");
    check_cold_complete(&*cold_mem, &a);
    let e = open(&MemStorage::new(), &cold_mem);
    let c = coll(&e);
    assert_eq!(c.count(None).expect("count"), next);
    for round in 0..40u64 {
        assert_all(&c, round * 25..round * 25 + 25, round as f32);
    }
}

#[test]
fn garbage_collection_keeps_what_retained_manifests_name() {
    let cold: Arc<dyn BlobStore> = Arc::new(MemStore::new());
    let clock = Arc::new(ManualClock::new(1_000_000));
    let a = MemStorage::new();
    let mut o = opts(&a, Arc::clone(&cold));
    o.clock = clock.clone();
    o.tiered.retain_manifests = 2;
    o.tiered.gc_grace = Duration::from_secs(60);
    o.max_segments = 1;
    o.index_threshold_rows = 1_000_000;
    let e = Engine::open(o.clone()).expect("open");
    let c = create(&e);
    for round in 0..4u64 {
        c.upsert(points(round * 10..round * 10 + 10, 1.0))
            .expect("upsert");
        c.flush().expect("flush");
    }
    // Compaction merges the four segments into one and deletes the inputs locally; their cold
    // copies stay while a retained manifest may name them.
    assert!(c.compact().expect("compact"));
    // One more manifest, so the retained two (the compaction's and this flush's) no longer
    // name the inputs.
    c.upsert(points(40..50, 1.0)).expect("upsert");
    c.flush().expect("flush");
    assert!(c.compact().expect("compact"));
    // Cold: 4 flushed + merged + flushed + merged again. Retained manifests: the last flush's
    // (merged #1, flushed #2) and the last compaction's (merged #2).
    let cold_segments = || cold.list(layout::SEGMENTS).expect("list").len();
    assert_eq!(cold_segments(), 7);
    assert_eq!(a.blobs.list(layout::SEGMENTS).expect("list").len(), 1);
    drop(e);
    // Collection runs from the flush worker; here, by reopening with background work.
    o.background = true;
    o.max_segments = 8;
    o.maintenance_interval = Duration::from_millis(10);
    o.cold_gc_interval = Duration::from_millis(1);
    let e = Engine::open(o).expect("open");
    let wait_for = |want: usize| {
        for _ in 0..500 {
            if cold_segments() == want {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("cold segments: {} (want {want})", cold_segments());
    };
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        cold_segments(),
        7,
        "nothing deleted within the grace period"
    );
    // Reopening published one more generation (the state at start, naming merged #2 only):
    // the two retained now name one segment; the other six go once their grace has passed.
    clock.advance(61_000);
    wait_for(1);
    let e2 = {
        drop(e);
        open(&MemStorage::new(), &cold)
    };
    assert_eq!(coll(&e2).count(None).expect("count"), 50);
}

#[test]
fn a_directory_that_ran_without_a_cold_tier_is_uploaded_when_one_is_configured() {
    let a = MemStorage::new();
    let mut o = EngineOptions::with_storage(a.storage());
    o.background = false;
    let e = Engine::open(o).expect("open without a cold tier");
    let c = create(&e);
    c.upsert(points(0..100, 1.0)).expect("upsert");
    c.flush().expect("flush");
    c.upsert(points(100..120, 2.0))
        .expect("upsert: only in the WAL");
    drop(e);

    // Configuring a cold store publishes the recovered state at once, uploading the segment
    // written before: the cold store alone restores it.
    let cold: Arc<dyn BlobStore> = Arc::new(MemStore::new());
    let e = open(&a, &cold);
    assert_eq!(
        coll(&e).count(None).expect("count"),
        120,
        "the WAL replays locally"
    );
    drop(e);
    let e = open(&MemStorage::new(), &cold);
    let c = coll(&e);
    // The WAL tail is not shipped: a restore has what was sealed.
    assert_eq!(c.count(None).expect("count"), 100);
    assert_all(&c, 0..100, 1.0);
}

#[test]
fn a_second_node_on_the_same_cold_store_is_fenced_until_restarted() {
    let cold: Arc<dyn BlobStore> = Arc::new(MemStore::new());
    let a = MemStorage::new();
    let e1 = open(&a, &cold);
    let c1 = create(&e1);
    // A second node restores from the same prefix and writes: its generations come next.
    let e2 = open(&MemStorage::new(), &cold);
    coll(&e2).upsert(points(0..10, 2.0)).expect("upsert");
    coll(&e2).flush().expect("flush");
    // The first node's next upload finds the segment id taken by other bytes (both derived ids
    // from the same manifest): it never overwrites them, refuses writes, and retrying (what
    // the flush worker does) does not lift the fence.
    c1.upsert(points(0..10, 1.0)).expect("logged locally");
    let err = c1.flush().expect_err("fenced");
    assert!(err.to_string().contains("fenced"), "{err}");
    for _ in 0..3 {
        let e = c1.upsert(points(10..11, 1.0)).expect_err("fenced");
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        assert!(e.to_string().contains("fenced"), "{e}");
        assert!(c1.flush().is_err());
    }
    assert!(!e1.health().writable);
    // The second node's data is intact in the cold store.
    drop(e2);
    let e3 = open(&MemStorage::new(), &cold);
    assert_all(&coll(&e3), 0..10, 2.0);
}
