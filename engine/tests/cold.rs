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
    BlobStore, Fault, FaultOp, FaultRule, Faults, FaultyStore, MemStorage, MemStore, PutMode,
    Trigger, layout,
};
use strata_engine::*;

#[path = "support/counting.rs"]
mod counting;
#[path = "support/points.rs"]
mod points;
use counting::CountingStore;
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

/// Options that keep segments moving: local room for a few small segments, no minimum
/// residence, every read admitted, the mover and its retries every millisecond; no indexing.
fn churning(local: &MemStorage, cold: &Arc<dyn BlobStore>) -> EngineOptions {
    let mut o = opts(local, Arc::clone(cold));
    o.tiers.min_residence = Duration::ZERO;
    o.tiers.admit_frequency = 0.0;
    o.tiers.mover_backoff_max = Duration::from_millis(1);
    o.tiers.mover_interval = Duration::from_millis(1);
    o.tiers.warm_bytes = Some(16 << 10);
    o.index_threshold_rows = 1_000_000;
    o.max_segments = 1_000;
    o
}

/// Runs the mover until a pass has no failing move (bounded).
fn converge(e: &Engine) {
    let mut passes = 0;
    while let Err(err) = e.run_mover() {
        passes += 1;
        assert!(passes < 200, "the mover does not converge: {err}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Retries an upsert refused by injected faults (flushing between tries); bounded, so that a
/// write refused for good (say, by a wrongly fenced store) fails the test, never hangs it.
fn upsert_until_accepted(c: &CollectionHandle, batch: Vec<PointInput>) {
    let mut tries = 0;
    while let Err(err) = c.upsert(batch.clone()) {
        tries += 1;
        assert!(tries < 1_000, "writes are refused for good: {err}");
        let _ = c.flush();
    }
}

/// Flushes after the faults were cleared: a call in flight may still fail once or twice, but
/// a flush refused for good fails the test, never hangs it.
fn flush_once_faults_stop(c: &CollectionHandle) {
    let mut last = None;
    for _ in 0..10 {
        match c.flush() {
            Ok(_) => return,
            Err(e) => last = Some(e),
        }
    }
    panic!("flush keeps failing without faults: {last:?}");
}

/// Makes 5 % of cold calls of every kind (write, read, delete, list) time out.
fn fail_five_percent(faults: &Faults) {
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
}

/// Checks that the local manifest is the newest cold generation, that every local segment file
/// and meta file is in cold, and that every segment has a local meta file (its file may be
/// cold only); returns the number of segments.
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
    let metas: Vec<u64> = segs
        .iter()
        .filter_map(|s| layout::segment_meta_id(&s.name))
        .collect();
    for s in &segs {
        if let Some(id) = layout::segment_id(&s.name) {
            assert!(metas.contains(&id), "segment {id} has a local meta file");
        }
    }
    for id in &metas {
        cold.head(&layout::segment(*id))
            .expect("every segment is in cold");
    }
    metas.len()
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
    fail_five_percent(&faults);
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
    // Segment files and meta files go together (checked where no collection is running).
    let files = |store: &dyn BlobStore| {
        let all = store.list(layout::SEGMENTS).expect("list");
        let segs = all
            .iter()
            .filter(|m| layout::segment_id(&m.name).is_some())
            .count();
        let metas = all
            .iter()
            .filter(|m| layout::segment_meta_id(&m.name).is_some())
            .count();
        (segs, metas)
    };
    let cold_segments = || files(&*cold).0;
    assert_eq!(files(&*cold), (7, 7));
    assert_eq!(files(&*a.blobs), (1, 1));
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
        assert_eq!(
            files(&*cold),
            (1, 1),
            "meta files are collected with their segments"
        );
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

/// Segment files (not meta files) present in `store`.
fn segment_files(store: &dyn BlobStore) -> Vec<u64> {
    store
        .list(layout::SEGMENTS)
        .expect("list")
        .iter()
        .filter_map(|m| layout::segment_id(&m.name))
        .collect()
}

/// Three segments of `c` in `cold` (ids 0..300, tags 1, 2, 3 over overlapping ranges) and a
/// tombstone, closed gracefully.
fn three_segments(cold: &Arc<dyn BlobStore>) {
    let a = MemStorage::new();
    let e = open(&a, cold);
    let c = create(&e);
    c.upsert(points(0..200, 1.0)).expect("upsert");
    c.flush().expect("flush");
    c.upsert(points(100..250, 2.0)).expect("upsert");
    c.flush().expect("flush");
    c.upsert(points(200..300, 3.0)).expect("upsert");
    c.delete(&[PointId::Num(7)]).expect("delete");
    e.close().expect("close");
}

fn assert_three_segments(c: &CollectionHandle) {
    let ids: Vec<PointId> = (300..400).map(PointId::Num).collect();
    let later = c.get(&ids, false, false).expect("get").len() as u64;
    assert_eq!(c.count(None).expect("count"), 299 + later);
    assert_all(c, 0..7, 1.0);
    assert_all(c, 8..100, 1.0);
    assert_all(c, 100..200, 2.0);
    assert_all(c, 200..300, 3.0);
    let hit = c
        .search(&SearchRequest::new(vec![150.0, 2.0, 1.0, 0.5], 3))
        .expect("search");
    assert_eq!(hit[0].id, PointId::Num(150));
    assert_eq!(hit[0].score, 0.0);
}

#[test]
fn a_restored_node_serves_from_meta_files_and_fetches_segments_only_when_read() {
    let cold: Arc<dyn BlobStore> = Arc::new(MemStore::new());
    three_segments(&cold);
    let b = MemStorage::new();
    let e = open(&b, &cold);
    assert_eq!(e.stats().tier_segments, [0, 0, 3], "all three open cold");
    assert!(
        segment_files(&*b.blobs).is_empty(),
        "only meta files were downloaded"
    );
    // Counts, lookups without payload or vector, and id-ordered scrolls need no segment body.
    let c = coll(&e);
    assert_eq!(c.count(None).expect("count"), 299);
    let ids: Vec<PointId> = (0..10).map(PointId::Num).collect();
    assert_eq!(c.get(&ids, false, false).expect("get").len(), 9);
    let page = c
        .scroll(&ScrollRequest {
            offset: None,
            limit: 20,
            filter: None,
            with_payload: false,
            with_vector: false,
        })
        .expect("scroll");
    assert_eq!(page.points.len(), 20);
    assert!(segment_files(&*b.blobs).is_empty(), "still nothing fetched");
    // A get with vectors loads only the segment that holds the newest version.
    let got = c.get(&[PointId::Num(150)], true, true).expect("get");
    assert_eq!(got[0].vector().expect("vector")[1], 2.0);
    assert_eq!(
        segment_files(&*b.blobs),
        vec![2],
        "only segment 2 was fetched"
    );
    // A search needs every body: the policy promotes them (room enough), one fetch each.
    assert_three_segments(&c);
    assert_eq!(segment_files(&*b.blobs).len(), 3);
    let st = e.stats();
    assert_eq!(st.tier_segments, [0, 3, 0]);
    assert_eq!(st.cold_reads_promoted, 3);
    assert_eq!(st.tier_moves[1], 3);
}

#[test]
fn a_tiny_warm_budget_evicts_every_segment_and_reads_stream_them_unchanged() {
    let cold: Arc<dyn BlobStore> = Arc::new(MemStore::new());
    three_segments(&cold);
    let b = MemStorage::new();
    let mut o = opts(&b, Arc::clone(&cold));
    o.tiers.warm_bytes = Some(1);
    o.tiers.min_residence = Duration::ZERO;
    let e = Engine::open(o).expect("open");
    let c = coll(&e);
    // Cold at open; a read would promote only within the budget, so it streams.
    assert_three_segments(&c);
    let st = e.stats();
    assert_eq!(st.tier_segments, [0, 0, 3]);
    assert!(st.cold_reads_streamed >= 3, "{st:?}");
    assert_eq!(st.cold_reads_promoted, 0);
    assert!(segment_files(&*b.blobs).is_empty());
    // New writes are flushed warm, then the mover evicts them too.
    c.upsert(points(300..320, 4.0)).expect("upsert");
    c.flush().expect("flush");
    assert_eq!(e.stats().tier_segments, [0, 1, 3]);
    assert!(e.run_mover().expect("mover"));
    assert_eq!(e.stats().tier_segments, [0, 0, 4]);
    assert!(segment_files(&*b.blobs).is_empty(), "evicted locally");
    assert_eq!(
        cold.list(layout::SEGMENTS).expect("list").len(),
        8,
        "all in cold"
    );
    assert_all(&c, 300..320, 4.0);
    assert_three_segments(&c);
    // Compaction streams its cold inputs; its output is written warm and evicted in turn.
    assert!(c.compact().expect("compact"));
    assert_eq!(e.stats().tier_segments, [0, 1, 0]);
    assert!(e.run_mover().expect("mover"));
    assert_eq!(e.stats().tier_segments, [0, 0, 1]);
    assert_three_segments(&c);
    assert_all(&c, 300..320, 4.0);
    e.close().expect("close");
    // Started without its cold store (a mistake, or `strata check`): it opens from the meta
    // files, answers what they can, and says why it cannot read the rest.
    for read_only in [true, false] {
        let mut o = EngineOptions::with_storage(b.storage());
        o.background = false;
        o.read_only = read_only;
        let e = Engine::open(o).expect("open without the cold tier");
        let c = coll(&e);
        assert_eq!(c.count(None).expect("count"), 319);
        let err = c
            .search(&SearchRequest::new(vec![1.0; 4], 3))
            .expect_err("bodies are cold");
        assert!(err.to_string().contains("no cold tier"), "{err}");
    }
    // Nothing was lost by evicting: a restore elsewhere has it all.
    let e = open(&MemStorage::new(), &cold);
    let c = coll(&e);
    assert_three_segments(&c);
    assert_all(&c, 300..320, 4.0);
}

#[test]
fn a_hot_budget_copies_the_most_read_segments_into_ram() {
    let cold: Arc<dyn BlobStore> = Arc::new(MemStore::new());
    three_segments(&cold);
    let clock = Arc::new(ManualClock::new(1_000_000));
    let b = MemStorage::new();
    let mut o = opts(&b, Arc::clone(&cold));
    o.clock = clock.clone();
    o.tiers.min_residence = Duration::from_secs(1);
    o.tiers.admit_frequency = 1.0;
    // Room for all three in RAM.
    o.tiers.hot_bytes = 1 << 20;
    let e = Engine::open(o).expect("open");
    let c = coll(&e);
    assert_three_segments(&c);
    assert_eq!(e.stats().tier_segments, [0, 3, 0]);
    // Just promoted: the minimum residence holds them warm.
    assert!(!e.run_mover().expect("mover"));
    clock.advance(2_000);
    assert!(e.run_mover().expect("mover"));
    let st = e.stats();
    assert_eq!(st.tier_segments, [3, 0, 0], "{st:?}");
    assert_eq!(st.tier_moves[0], 3);
    assert_three_segments(&c);
    assert!(e.stats().tier_hits[0] > 0, "reads now hit RAM");
}

#[test]
fn reads_stay_exact_while_the_mover_and_reads_move_segments_between_tiers() {
    let cold: Arc<dyn BlobStore> = Arc::new(MemStore::new());
    three_segments(&cold);
    let seg_bytes: u64 = cold
        .list(layout::SEGMENTS)
        .expect("list")
        .iter()
        .filter(|m| layout::segment_id(&m.name).is_some())
        .map(|m| m.size)
        .max()
        .expect("segments");
    let clock = Arc::new(ManualClock::new(1_000_000));
    let b = MemStorage::new();
    let mut o = opts(&b, Arc::clone(&cold));
    o.clock = clock.clone();
    o.background = true;
    o.tiers.mover_interval = Duration::from_millis(2);
    o.tiers.min_residence = Duration::ZERO;
    o.tiers.admit_frequency = 0.0;
    // Room for about one and a half segments locally, half of one in RAM: reads promote,
    // the mover trims, segments cycle through every tier.
    o.tiers.warm_bytes = Some(seg_bytes * 3 / 2);
    o.tiers.hot_bytes = seg_bytes / 2 + seg_bytes / 4;
    let e = Arc::new(Engine::open(o).expect("open"));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let e = Arc::clone(&e);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let c = coll(&e);
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    assert_three_segments(&c);
                    n += 1;
                }
                n
            })
        })
        .collect();
    for _ in 0..200 {
        clock.advance(50);
        std::thread::sleep(Duration::from_millis(2));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.join().expect("reader") > 0);
    }
    let st = e.stats();
    assert!(
        st.tier_moves[2] > 0 && st.tier_moves[1] > 0,
        "segments moved both ways: {st:?}"
    );
    assert_eq!(st.tier_move_failures, 0, "{st:?}");
    // (Background compaction may have merged them meanwhile.)
    assert_eq!(st.tier_segments.iter().sum::<u64>(), st.segments);
}

mod skipping {
    use super::*;
    use proptest::prelude::*;

    /// One write of the generated workload.
    #[derive(Clone, Debug)]
    enum Op {
        /// Points `ids` around `centre` (a tight cluster: summaries can bound it).
        Cluster {
            ids: std::ops::Range<u64>,
            centre: [f32; 4],
        },
        Delete(Vec<u64>),
        Flush,
    }

    fn cluster_points(
        ids: std::ops::Range<u64>,
        centre: [f32; 4],
        metric: Distance,
    ) -> Vec<PointInput> {
        let mut rng = SplitMix64::new(ids.start ^ 0x5eed);
        ids.map(|i| {
            let mut v = centre;
            for x in &mut v {
                *x += (rng.next_f32() - 0.5) * 0.2;
            }
            if metric == Distance::Dot {
                // Not normalised: norms vary.
                v.iter_mut().for_each(|x| *x *= 1.0 + (i % 3) as f32);
            }
            PointInput::new(PointId::Num(i), v.to_vec(), None)
        })
        .collect()
    }

    /// Runs `ops` on an engine whose segments are all evicted to cold and on one without a
    /// cold tier, then compares `queries` on both; returns (searched, skipped) cold segments.
    fn compare(metric: Distance, ops: &[Op], queries: &[([f32; 4], usize)]) -> (u64, u64) {
        let cold: Arc<dyn BlobStore> = Arc::new(MemStore::new());
        let mut o = opts(&MemStorage::new(), Arc::clone(&cold));
        o.tiers.warm_bytes = Some(1);
        o.tiers.min_residence = Duration::ZERO;
        o.index_threshold_rows = 1_000_000; // every segment scanned exactly: equal answers
        let mut plain = EngineOptions::with_storage(MemStorage::new().storage());
        plain.background = false;
        plain.index_threshold_rows = 1_000_000;
        let engines = [
            Engine::open(o).expect("open"),
            Engine::open(plain).expect("open"),
        ];
        for e in &engines {
            let c = e
                .create_collection(DEFAULT_TENANT, "c", CollectionConfig::new(4, metric))
                .expect("create");
            for op in ops {
                match op {
                    Op::Cluster { ids, centre } => {
                        c.upsert(cluster_points(ids.clone(), *centre, metric))
                            .expect("upsert");
                    }
                    Op::Delete(ids) => {
                        let ids: Vec<PointId> = ids.iter().map(|i| PointId::Num(*i)).collect();
                        c.delete(&ids).expect("delete");
                    }
                    Op::Flush => {
                        c.flush().expect("flush");
                    }
                }
            }
        }
        engines[0].run_mover().expect("mover");
        assert_eq!(engines[0].stats().tier_segments[..2], [0, 0], "all evicted");
        let (tiered, plain) = (coll(&engines[0]), coll(&engines[1]));
        for (q, k) in queries {
            let mut req = SearchRequest::new(q.to_vec(), *k);
            req.exact = true;
            let a = tiered.search_report(&req).expect("search");
            let b = plain.search(&req).expect("search");
            let ids = |v: &[ScoredPoint]| v.iter().map(|p| (p.id, p.score)).collect::<Vec<_>>();
            assert_eq!(ids(&a.points), ids(&b), "{metric:?} q={q:?} k={k}");
            // Leaving cold segments out is partial and says so.
            req.cold = ColdReads::Skip;
            let partial = tiered.search_report(&req).expect("search");
            assert_eq!(partial.cold_searched + partial.cold_skipped, 0);
            assert_eq!(
                partial.cold_left_out,
                engines[0].stats().tier_segments[2],
                "every cold segment left out"
            );
            // So is a cold deadline that has passed before the cold phase.
            req.cold = ColdReads::Include;
            req.cold_deadline = Some(Duration::ZERO);
            let late = tiered.search_report(&req).expect("search");
            assert_eq!(late.cold_left_out, partial.cold_left_out);
            assert_eq!(late.cold_searched, 0);
        }
        let st = engines[0].stats();
        (st.search_cold_segments[0], st.search_cold_segments[1])
    }

    fn metric() -> impl Strategy<Value = Distance> {
        prop_oneof![
            Just(Distance::Euclid),
            Just(Distance::Dot),
            Just(Distance::Cosine)
        ]
    }

    fn point() -> impl Strategy<Value = [f32; 4]> {
        prop::array::uniform4(-20.0f32..20.0)
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec(
            prop_oneof![
                4 => (0u64..300, 1u64..60, point()).prop_map(|(a, n, centre)| Op::Cluster { ids: a..a + n, centre }),
                1 => prop::collection::vec(0u64..360, 1..10).prop_map(Op::Delete),
                3 => Just(Op::Flush),
            ],
            1..14,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        #[test]
        fn skipping_cold_segments_returns_exactly_the_full_search(
            metric in metric(),
            ops in ops(),
            queries in prop::collection::vec((point(), 1usize..12), 1..6),
        ) {
            compare(metric, &ops, &queries);
        }
    }

    #[test]
    fn far_clusters_are_skipped() {
        // Eight segments, each a cluster far from the others; queries near one cluster read
        // that segment and skip the rest.
        let mut ops = Vec::new();
        for s in 0..8u64 {
            let c = s as f32 * 10.0;
            ops.push(Op::Cluster {
                ids: s * 50..s * 50 + 50,
                centre: [c, -c, c, 1.0],
            });
            ops.push(Op::Flush);
        }
        let queries: Vec<([f32; 4], usize)> = (0..8)
            .map(|s| {
                (
                    [s as f32 * 10.0, -(s as f32) * 10.0, s as f32 * 10.0, 1.0],
                    5,
                )
            })
            .collect();
        let (searched, skipped) = compare(Distance::Euclid, &ops, &queries);
        assert!(skipped >= 8 * 6, "searched {searched}, skipped {skipped}");
    }
}

#[test]
fn the_mover_under_cold_store_faults_loses_nothing_and_converges() {
    let (cold_mem, faults, cold) = faulty_cold(23);
    let a = MemStorage::new();
    let e = Engine::open(churning(&a, &cold)).expect("open");
    let c = create(&e);
    fail_five_percent(&faults);
    let mut next = 0u64;
    let (mut read_errors, mut mover_errors) = (0, 0);
    for round in 0..20u64 {
        upsert_until_accepted(&c, points(next..next + 25, round as f32));
        next += 25;
        let _ = c.flush();
        if e.run_mover().is_err() {
            mover_errors += 1;
        }
        // Reads may fail while the store fails; when they answer, they are right.
        for r in [0, round / 2, round] {
            let ids: Vec<PointId> = (r * 25..r * 25 + 25).map(PointId::Num).collect();
            match c.get(&ids, false, true) {
                Ok(got) => {
                    assert_eq!(got.len(), 25);
                    assert!(got.iter().all(|p| p.vector().expect("v")[1] == r as f32));
                }
                Err(_) => read_errors += 1,
            }
        }
    }
    assert!(read_errors + mover_errors > 0, "the faults fired");
    faults.clear();
    flush_once_faults_stop(&c);
    // Converges: a pass with no failing move, the budget held, every segment reachable.
    converge(&e);
    let st = e.stats();
    assert!(st.tier_moves[2] > 0, "{st:?}");
    assert_eq!(st.tier_segments.iter().sum::<u64>(), st.segments);
    for r in 0..20u64 {
        assert_all(&c, r * 25..r * 25 + 25, r as f32);
    }
    for id in segment_files(&*cold_mem) {
        // Every segment is in cold, whatever its tier.
        assert!(cold_mem.head(&layout::segment_meta(id)).is_ok());
    }
    e.close().expect("close");
    let e = open(&MemStorage::new(), &cold_mem);
    assert_eq!(coll(&e).count(None).expect("count"), next);
}

#[test]
fn tier_hints_are_persisted_and_drive_the_mover() {
    let cold: Arc<dyn BlobStore> = Arc::new(MemStore::new());
    three_segments(&cold);
    let b = MemStorage::new();
    let mut o = opts(&b, Arc::clone(&cold));
    o.tiers.hot_bytes = 1 << 20;
    o.tiers.admit_frequency = 1_000.0; // nothing is promoted for its reads alone
    let e = Engine::open(o.clone()).expect("open");
    let c = coll(&e);
    assert_eq!(c.info().expect("info").tier_hint, "auto");
    assert_three_segments(&c);
    assert!(!e.run_mover().expect("mover"), "auto: warm stays warm");
    // pin_hot: every segment into RAM, at once (pins ignore the minimum residence).
    e.set_tier_hint(DEFAULT_TENANT, "c", TierHint::PinHot)
        .expect("hint");
    assert!(e.run_mover().expect("mover"));
    assert_eq!(c.info().expect("info").tier_segments, [3, 0, 0]);
    assert_three_segments(&c);
    // offload: every segment to cold only; reads stream and never promote.
    e.set_tier_hint(DEFAULT_TENANT, "c", TierHint::Offload)
        .expect("hint");
    assert!(e.run_mover().expect("mover"));
    assert_eq!(c.info().expect("info").tier_segments, [0, 0, 3]);
    let promoted = e.stats().cold_reads_promoted;
    assert_three_segments(&c);
    assert_eq!(
        e.stats().cold_reads_promoted,
        promoted,
        "offload never promotes"
    );
    assert!(segment_files(&*b.blobs).is_empty());
    assert!(
        e.set_tier_hint(DEFAULT_TENANT, "nope", TierHint::Warm)
            .is_err()
    );
    drop(e);
    // The hint is in the manifest: it survives a restart (and a restore).
    for storage in [b, MemStorage::new()] {
        let e = Engine::open(opts(&storage, Arc::clone(&cold))).expect("reopen");
        assert_eq!(coll(&e).info().expect("info").tier_hint, "offload");
    }
    // warm: pre-warmed now, whatever the reads.
    let e = open(&MemStorage::new(), &cold);
    assert_eq!(coll(&e).info().expect("info").tier_segments, [0, 0, 3]);
    e.set_tier_hint(DEFAULT_TENANT, "c", TierHint::Warm)
        .expect("hint");
    assert!(e.run_mover().expect("mover"));
    assert_eq!(coll(&e).info().expect("info").tier_segments, [0, 3, 0]);
    assert!(e.cold_store_status().expect("configured").is_ok());
}

#[test]
fn object_store_stalls_resets_and_errors_lose_nothing_and_the_tiers_converge() {
    use strata_engine::storage::{FaultyObjectStore, ObjectBlobStore, ObjectFaults, object_store};
    let mem: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let faulty = Arc::new(FaultyObjectStore::new(Arc::clone(&mem), 41));
    let blob = |store: Arc<dyn object_store::ObjectStore>| -> Arc<dyn BlobStore> {
        Arc::new(
            ObjectBlobStore::new(store, "node", "memory://")
                .expect("runtime")
                .with_op_timeout(Duration::from_millis(100))
                // Segments of a few kB go up as multipart uploads of 1 kB parts.
                .with_multipart(2048, 1024),
        )
    };
    let cold = blob(Arc::clone(&faulty) as Arc<dyn object_store::ObjectStore>);
    let a = MemStorage::new();
    let e = Engine::open(churning(&a, &cold)).expect("open");
    let c = create(&e);
    let mut next = 0u64;
    for round in 0..16u64 {
        faulty.set(ObjectFaults {
            error_chance: 0.05,
            stall_chance: 0.05,
            stall: Duration::from_millis(400),
            // Every other round, a multipart upload is reset in the middle.
            reset_part: (round % 2 == 0).then_some(2),
            // Every third round, an upload lands damaged (its read-back check refuses it).
            corrupt_put: (round % 3 == 1).then_some(1),
        });
        upsert_until_accepted(&c, points(next..next + 25, round as f32));
        next += 25;
        let _ = c.flush();
        let _ = e.run_mover();
        let ids: Vec<PointId> = (0..next).step_by(7).map(PointId::Num).collect();
        if let Ok(got) = c.get(&ids, false, true) {
            for p in got {
                let PointId::Num(i) = p.id else {
                    panic!("uuid")
                };
                assert_eq!(
                    p.vector().expect("v")[1],
                    (i / 25) as f32,
                    "a read that answers is right"
                );
            }
        }
    }
    assert!(faulty.injected() > 0, "the faults fired");
    faulty.clear();
    flush_once_faults_stop(&c);
    converge(&e);
    let st = e.stats();
    assert!(st.tier_moves[2] > 0, "{st:?}");
    assert_eq!(st.tier_segments.iter().sum::<u64>(), st.segments);
    for r in 0..16u64 {
        assert_all(&c, r * 25..r * 25 + 25, r as f32);
    }
    e.close().expect("close");
    // A new node restores it all from the objects alone.
    let e = open(&MemStorage::new(), &blob(mem));
    let c = coll(&e);
    assert_eq!(c.count(None).expect("count"), next);
    for r in 0..16u64 {
        assert_all(&c, r * 25..r * 25 + 25, r as f32);
    }
}

/// Points of 4-d pseudo-random vectors with a 2 KB text: payloads are most of the bytes.
fn documents(ids: std::ops::Range<u64>) -> Vec<PointInput> {
    ids.map(|i| {
        let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let vector = (0..4)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 1000) as f32 / 100.0
            })
            .collect();
        let payload = serde_json::json!({"i": i, "text": "x".repeat(2000)});
        PointInput::new(PointId::Num(i), vector, payload.as_object().cloned())
    })
    .collect()
}

#[test]
fn a_streamed_cold_read_fetches_only_the_sections_and_rows_it_needs() {
    let cold: Arc<dyn BlobStore> = Arc::new(MemStore::new());
    let a = MemStorage::new();
    let mut o = opts(&a, Arc::clone(&cold));
    o.index_threshold_rows = 100;
    let e = Engine::open(o).expect("open");
    let c = create(&e);
    // One indexed segment (300 rows, with a graph) and one without a graph (100 rows).
    c.upsert(documents(0..300)).expect("upsert");
    c.flush().expect("flush");
    assert!(c.maintain().expect("index"));
    c.upsert(documents(300..400)).expect("upsert");
    c.flush().expect("flush");
    let st = e.stats();
    assert_eq!((st.segments, st.indexed_segments), (2, 1));
    let file_bytes = st.segment_bytes;
    let search = |c: &CollectionHandle, filter: Option<Filter>| {
        let mut r = SearchRequest::new(vec![5.0, 5.0, 5.0, 5.0], 5);
        r.with_payload = true;
        r.with_vector = true;
        r.filter = filter;
        c.search(&r).expect("search")
    };
    let near_odd = Filter::parse_str(r#"{"must":[{"key":"i","range":{"gte":1,"lt":400}}],"must_not":[{"key":"i","match":{"any":[0,2,4,6,8]}}]}"#).expect("filter");
    let want = search(&c, None);
    let want_filtered = search(&c, Some(near_odd.clone()));
    let want_get = c.get(&[PointId::Num(350)], true, true).expect("get");
    let several: Vec<PointId> = [350, 10, 399, 301, 77, 0].map(PointId::Num).to_vec();
    let want_several = c.get(&several, true, true).expect("get");
    let page = |c: &CollectionHandle| {
        c.scroll(&ScrollRequest {
            offset: Some(PointId::Num(290)),
            limit: 20,
            filter: Some(near_odd.clone()),
            with_payload: true,
            with_vector: true,
        })
        .expect("scroll")
    };
    let want_page = page(&c);
    e.close().expect("close");

    // Payload sections this small are streamed with the vectors by default (one round trip
    // instead of two): the search reads nearly every byte.
    let mut o = opts(&MemStorage::new(), Arc::clone(&cold));
    o.tiers.warm_bytes = Some(1);
    let e = Engine::open(o).expect("open");
    assert_eq!(search(&coll(&e), None), want);
    let inline = e.stats().cold_streamed_bytes;
    assert!(inline > file_bytes * 9 / 10, "{inline} of {file_bytes}");
    e.close().expect("close");

    // Restored elsewhere with no room to promote, and payloads read by row: every read streams.
    let b = MemStorage::new();
    let mut o = opts(&b, Arc::clone(&cold));
    o.tiers.warm_bytes = Some(1);
    o.tiers.min_residence = Duration::ZERO;
    o.tiers.stream_payloads_up_to = 0;
    let e = Engine::open(o).expect("open");
    let c = coll(&e);
    assert_eq!(e.stats().tier_segments, [0, 0, 2]);
    let streamed = || e.stats().cold_streamed_bytes;
    // A search reads vectors, graph and payload offsets, then the 5 results' payloads.
    assert_eq!(
        search(&c, None),
        want,
        "same answer, payloads and vectors included"
    );
    let s1 = streamed();
    assert!(s1 > 0);
    assert!(
        s1 * 10 < file_bytes,
        "a search streamed {s1} of {file_bytes} bytes: payloads are not read"
    );
    // A get reads its row: the vector (16 bytes), two payload offsets and the payload (~2 KB),
    // and the object's header and section table (512 bytes, compared with the meta file's).
    assert_eq!(
        c.get(&[PointId::Num(350)], true, true).expect("get"),
        want_get
    );
    let one = streamed() - s1;
    assert!(
        (2_510..2_610).contains(&one),
        "one row streamed {one} bytes"
    );
    assert_eq!(
        c.get(&[PointId::Num(351)], false, true).expect("get")[0]
            .vector()
            .as_ref()
            .expect("vector")
            .len(),
        4
    );
    assert_eq!(
        streamed() - s1 - one,
        512 + 16,
        "a vector alone is 16 bytes (and the header)"
    );
    // Several rows of both segments at once: vectors and offsets interleaved, then payloads.
    assert_eq!(c.get(&several, true, true).expect("get"), want_several);
    // A filter on payloads streams the payloads too; the answer is the same.
    assert_eq!(search(&c, Some(near_odd.clone())), want_filtered);
    assert_eq!(c.count(Some(&near_odd)).expect("count"), 395);
    // A filtered scroll across both segments: payloads streamed for the filter, the page's
    // vectors read by row.
    assert_eq!(page(&c), want_page);
    assert!(
        streamed() > file_bytes / 2,
        "payloads streamed for the filter"
    );
    assert_eq!(e.stats().tier_segments, [0, 0, 2], "nothing was kept");
    e.close().expect("close");

    // An object that is not the segment's file (here: another segment's) is refused, named,
    // before any row is read out of it.
    let ids = segment_files(&*cold);
    let (x, y) = (layout::segment(ids[0]), layout::segment(ids[1]));
    let saved = cold.open(&y).expect("open").as_bytes().to_vec();
    let other = cold.open(&x).expect("open").as_bytes().to_vec();
    cold.delete(&y).expect("delete");
    cold.put(&y, &other, PutMode::Create).expect("put");
    let mut o = opts(&MemStorage::new(), Arc::clone(&cold));
    o.tiers.warm_bytes = Some(1);
    let e = Engine::open(o).expect("open");
    let all: Vec<PointId> = (0..400).map(PointId::Num).collect();
    let err = coll(&e)
        .get(&all, false, true)
        .map(|_| ())
        .expect_err("another file");
    assert!(
        err.to_string()
            .contains("differs from the segment's meta file"),
        "{err}"
    );
    e.close().expect("close");
    cold.delete(&y).expect("delete");
    cold.put(&y, &saved, PutMode::Create).expect("put");

    // A flipped byte in a streamed section is found by its checksum, named, never served.
    for id in segment_files(&*cold) {
        let name = layout::segment(id);
        let mut bytes = cold.open(&name).expect("open").as_bytes().to_vec();
        // One unnamed vector: the space record is 32 bytes (header 128), then the table;
        // the vectors' entry is the seventh (docs/format.md): its offset is a u64 at 304.
        let at = u64::from_le_bytes(bytes[304..312].try_into().expect("8 bytes")) as usize;
        bytes[at + 1] ^= 0x40;
        cold.delete(&name).expect("delete");
        cold.put(&name, &bytes, PutMode::Create).expect("put");
    }
    let mut o = opts(&MemStorage::new(), Arc::clone(&cold));
    o.tiers.warm_bytes = Some(1);
    let e = Engine::open(o).expect("open");
    let err = coll(&e)
        .search(&SearchRequest::new(vec![5.0; 4], 5))
        .map(|_| ())
        .expect_err("corrupt");
    assert!(
        err.to_string().contains("vectors' checksum mismatch")
            && err.to_string().contains("memory:segments/"),
        "{err}"
    );
}

#[test]
fn concurrent_reads_of_a_cold_segment_share_one_promotion() {
    let cold: Arc<dyn BlobStore> = Arc::new(MemStore::new());
    three_segments(&cold);
    let counting = Arc::new(CountingStore {
        inner: Arc::clone(&cold),
        reads: Default::default(),
        delay: Duration::from_millis(20),
    });
    let b = MemStorage::new();
    let e = open(&b, &(Arc::clone(&counting) as Arc<dyn BlobStore>));
    assert_eq!(e.stats().tier_segments, [0, 0, 3]);
    let c = coll(&e);
    // Eight readers at once, each needing every segment's body (room to promote them all).
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| assert_three_segments(&c));
        }
    });
    let st = e.stats();
    assert_eq!(st.tier_segments, [0, 3, 0], "{st:?}");
    assert_eq!(st.tier_moves[1], 3, "each segment promoted once");
    for id in segment_files(&*b.blobs) {
        assert_eq!(
            counting.reads_of(&layout::segment(id)),
            1,
            "segment {id}: concurrent readers share one download"
        );
    }
}

#[test]
fn the_mover_keeps_promotions_under_its_bandwidth_cap() {
    let cold: Arc<dyn BlobStore> = Arc::new(MemStore::new());
    three_segments(&cold);
    let sizes: Vec<u64> = segment_files(&*cold)
        .iter()
        .map(|id| cold.head(&layout::segment(*id)).expect("head").size)
        .collect();
    let b = MemStorage::new();
    let mut o = opts(&b, Arc::clone(&cold));
    // Pre-warming three segments capped at their total bytes per second, one at a time.
    let total: u64 = sizes.iter().sum();
    let rate = total.max(1);
    o.tiers.mover_bytes_per_sec = Some(rate);
    o.tiers.mover_concurrency = 1;
    let e = Engine::open(o).expect("open");
    e.set_tier_hint(DEFAULT_TENANT, "c", TierHint::Warm)
        .expect("hint");
    let t = std::time::Instant::now();
    assert!(e.run_mover().expect("mover"));
    let took = t.elapsed();
    assert_eq!(coll(&e).info().expect("info").tier_segments, [0, 3, 0]);
    // The first download starts at once; each next one waits until the bytes before it
    // fit the cap: at least (total - the last one) / rate.
    let smallest_last = total - sizes.iter().max().expect("sizes");
    let floor = Duration::from_secs_f64(smallest_last as f64 / rate as f64);
    assert!(
        took >= floor.mul_f64(0.95),
        "{total} bytes at {rate} B/s took {took:?}, under the cap's {floor:?}"
    );
}

#[test]
fn a_cold_deadline_that_runs_out_midway_leaves_the_rest_out_and_says_so() {
    let cold: Arc<dyn BlobStore> = Arc::new(MemStore::new());
    {
        let e = open(&MemStorage::new(), &cold);
        let c = create(&e);
        for s in 0..8u64 {
            c.upsert(points(s * 100..s * 100 + 100, 1.0))
                .expect("upsert");
            c.flush().expect("flush");
        }
        e.close().expect("close");
    }
    // Restored with no room to promote, every cold read taking 200 ms.
    let slow = Arc::new(CountingStore {
        inner: Arc::clone(&cold),
        reads: Default::default(),
        delay: Duration::from_millis(200),
    });
    let mut o = opts(&MemStorage::new(), slow as Arc<dyn BlobStore>);
    o.tiers.warm_bytes = Some(1);
    let e = Engine::open(o).expect("open");
    let c = coll(&e);
    assert_eq!(e.stats().tier_segments, [0, 0, 8]);
    let mut req = SearchRequest::new(vec![50.0, 1.0, 1.0, 0.5], 5);
    req.cold_deadline = Some(Duration::from_millis(100));
    let r = c.search_report(&req).expect("search");
    // The first wave (up to four segments, the nearest first) is read; the deadline has
    // passed when it ends, so the rest are left out — and the report says how many.
    assert!(r.cold_searched >= 1 && r.cold_searched <= 4, "{r:?}");
    assert!(r.cold_left_out >= 4, "{r:?}");
    assert_eq!(r.cold_searched + r.cold_skipped + r.cold_left_out, 8);
    // What it did read, it answered exactly: the nearest segment holds the nearest points.
    assert_eq!(r.points[0].id, PointId::Num(50));
    // Without a deadline, everything needed is read.
    req.cold_deadline = None;
    let full = c.search_report(&req).expect("search");
    assert_eq!(full.cold_left_out, 0);
    assert_eq!(
        full.points.iter().map(|p| p.id).collect::<Vec<_>>(),
        r.points.iter().map(|p| p.id).collect::<Vec<_>>()
    );
}
