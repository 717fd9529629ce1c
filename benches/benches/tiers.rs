//! Tiers on bigann10k (the largest set in `testdata`), 10 indexed segments of 1,000 rows:
//! search latency with every segment hot (in RAM), warm (mapped local files), 10 % of the
//! bytes hot and the rest warm, and cold on first touch (a node restored from the object store,
//! its first query) with the object store delayed by 60 ms per GET (`object_store`'s
//! `ThrottledStore`, modelling S3's latency); plus opening a warm segment (time, resident pages
//! of its mapping, whole-process RSS growth) with each batched-read backend.
//! Every mode answers the same queries; recall@10 is printed for each (they must agree).
//!
//! `cargo bench -p strata-benches --bench tiers` (quick: `-- --quick`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_engine::storage::object_store::memory::InMemory;
use strata_engine::storage::object_store::throttle::{ThrottleConfig, ThrottledStore};
use strata_engine::storage::{BlobStore, ObjectBlobStore, object_store};
use strata_engine::*;

const SEGMENTS: usize = 10;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

use strata_benches::recall_at_10 as recall;

fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

/// Resident bytes of this process's mappings of segment files (`/proc/self/smaps`): what
/// opening a warm segment itself costs in RAM, apart from the engine's own start-up.
fn mapped_segment_rss() -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let mut total = 0;
    let mut in_segment = false;
    for line in smaps.lines() {
        if let Some(first) = line.split_whitespace().next()
            && first.contains('-')
            && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        {
            in_segment = line.ends_with(".seg");
        } else if in_segment && let Some(kb) = line.strip_prefix("Rss:") {
            total += kb
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .unwrap_or(0)
                * 1024;
        }
    }
    total
}

fn cold_store(mem: &Arc<dyn object_store::ObjectStore>, get_delay: Duration) -> Arc<dyn BlobStore> {
    let throttled = ThrottledStore::new(
        Arc::clone(mem),
        ThrottleConfig {
            wait_get_per_call: get_delay,
            ..ThrottleConfig::default()
        },
    );
    Arc::new(ObjectBlobStore::new(Arc::new(throttled), "bench", "memory://").expect("runtime"))
}

fn opts(dir: &std::path::Path, cold: Arc<dyn BlobStore>) -> EngineOptions {
    let mut o = EngineOptions::new(dir);
    o.cold = Some(cold);
    o.background = false;
    o.wal_ack = AckMode::None;
    o.index_threshold_rows = 500;
    o.max_segment_rows = 1_000;
    o.max_segments = 100;
    o.tiers.min_residence = Duration::ZERO;
    o
}

/// What [`run`] measured.
struct Ran {
    /// Latencies, sorted.
    lat: Vec<Duration>,
    /// The ids each query found.
    found: Vec<Vec<u64>>,
    /// Cold segments read and skipped, over all queries.
    cold_searched: u64,
    cold_skipped: u64,
}

/// Runs every query (k = 10, ef = 64), returning payloads when `payloads`.
fn run(c: &CollectionHandle, queries: &[Vec<f32>], payloads: bool) -> Ran {
    let mut ran = Ran {
        lat: Vec::new(),
        found: Vec::new(),
        cold_searched: 0,
        cold_skipped: 0,
    };
    for q in queries {
        let mut r = SearchRequest::new(q.clone(), 10);
        r.ef = Some(64);
        r.with_payload = payloads;
        let t = Instant::now();
        let rep = c.search_report(&r).expect("search");
        ran.lat.push(t.elapsed());
        ran.cold_searched += rep.cold_searched;
        ran.cold_skipped += rep.cold_skipped;
        ran.found.push(
            rep.points
                .iter()
                .map(|h| match h.id {
                    PointId::Num(n) => n,
                    PointId::Uuid(_) => u64::MAX,
                })
                .collect(),
        );
    }
    ran.lat.sort();
    ran
}

fn report(mode: &str, lat: &[Duration], found: &[Vec<u64>], truth: &[Vec<i32>]) {
    println!(
        "| {mode} | {:.3} | {:.3} | {:.3} |",
        ms(percentile(lat, 0.5)),
        ms(percentile(lat, 0.99)),
        recall(found, truth)
    );
}

/// Loads the rows of `base` in `order` as [`SEGMENTS`] flushes (one segment each), each indexed;
/// each point with a text payload of `text` bytes when given.
fn load(c: &CollectionHandle, base: &[Vec<f32>], order: &[usize], text: Option<usize>) {
    for chunk in order.chunks(order.len() / SEGMENTS) {
        let pts = chunk
            .iter()
            .map(|&i| {
                PointInput::new(
                    PointId::Num(i as u64),
                    base[i].clone(),
                    text.map(|n| {
                        let mut p = Payload::new();
                        p.insert("i".into(), (i as u64).into());
                        p.insert("text".into(), "x".repeat(n).into());
                        p
                    }),
                )
            })
            .collect();
        c.upsert(pts).expect("upsert");
        c.flush().expect("flush");
    }
    while c.maintain().expect("compaction") {}
}

/// Rows grouped by proximity: `k` k-means clusters (Lloyd, 8 rounds, seeded with evenly spaced
/// rows), the row indices ordered by cluster.
fn proximity_order(base: &[Vec<f32>], k: usize) -> Vec<usize> {
    let dim = base[0].len();
    let mut centres: Vec<Vec<f32>> = (0..k).map(|i| base[i * base.len() / k].clone()).collect();
    let nearest = |v: &[f32], centres: &[Vec<f32>]| {
        (0..centres.len())
            .min_by(|&a, &b| {
                let d = |c: &[f32]| v.iter().zip(c).map(|(x, y)| (x - y) * (x - y)).sum::<f32>();
                d(&centres[a]).total_cmp(&d(&centres[b]))
            })
            .unwrap_or(0)
    };
    let mut assign = vec![0usize; base.len()];
    for _ in 0..8 {
        for (i, v) in base.iter().enumerate() {
            assign[i] = nearest(v, &centres);
        }
        let mut sums = vec![vec![0f64; dim]; k];
        let mut counts = vec![0usize; k];
        for (v, &c) in base.iter().zip(&assign) {
            counts[c] += 1;
            for (s, x) in sums[c].iter_mut().zip(v) {
                *s += *x as f64;
            }
        }
        for c in 0..k {
            if counts[c] > 0 {
                centres[c] = sums[c]
                    .iter()
                    .map(|s| (s / counts[c] as f64) as f32)
                    .collect();
            }
        }
    }
    let mut order: Vec<usize> = (0..base.len()).collect();
    order.sort_by_key(|&i| (assign[i], i));
    order
}

/// Loads `base` in `order` as ten segments, offloads the collection (cold only, reads stream),
/// restores a node from the object store and runs `queries` on it: the cold segments searched
/// and skipped, latency and recall.
fn skipping(
    label: &str,
    base: &[Vec<f32>],
    order: &[usize],
    queries: &[Vec<f32>],
    truth: &[Vec<i32>],
    delay: Duration,
) {
    let mem: Arc<dyn object_store::ObjectStore> = Arc::new(InMemory::new());
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = Engine::open(opts(dir.path(), cold_store(&mem, Duration::ZERO))).expect("open");
        let c = e
            .create_collection(
                DEFAULT_TENANT,
                "b",
                CollectionConfig::new(128, Distance::Euclid),
            )
            .expect("create");
        load(&c, base, order, None);
        e.set_tier_hint(DEFAULT_TENANT, "b", TierHint::Offload)
            .expect("hint");
        e.close().expect("close");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let e = Engine::open(opts(dir.path(), cold_store(&mem, delay))).expect("restore");
    let c = e.collection(DEFAULT_TENANT, "b").expect("coll");
    let Ran {
        lat,
        found,
        cold_searched: searched,
        cold_skipped: skipped,
    } = run(&c, queries, false);
    assert_eq!(
        e.stats().tier_segments,
        [0, 0, SEGMENTS as u64],
        "offloaded"
    );
    let st = e.stats();
    println!(
        "| {label} | {searched} | {skipped} | {:.0} % | {:.2} of {:.2} | {:.1} | {:.1} | {:.3} |",
        100.0 * skipped as f64 / (searched + skipped).max(1) as f64,
        st.cold_streamed_bytes as f64 / queries.len() as f64 / 1e6,
        st.segment_bytes as f64 / 1e6,
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        recall(&found, &truth[..found.len()])
    );
}

/// Documents — bigann's vectors, each with a 2 KB text payload — offloaded (every segment
/// cold, reads stream): a search returning payloads streams vectors, graph and payload offsets,
/// then either only its results' payloads, by row (a segment's payload bytes above
/// `stream_payloads_up_to`), or every searched segment's payload bytes with its vectors (one
/// round trip fewer; about what streaming whole files, as before, fetched).
fn payloads(base: &[Vec<f32>], queries: &[Vec<f32>], truth: &[Vec<i32>], delay: Duration) {
    let mem: Arc<dyn object_store::ObjectStore> = Arc::new(InMemory::new());
    let file_bytes;
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = Engine::open(opts(dir.path(), cold_store(&mem, Duration::ZERO))).expect("open");
        let c = e
            .create_collection(
                DEFAULT_TENANT,
                "d",
                CollectionConfig::new(128, Distance::Euclid),
            )
            .expect("create");
        load(&c, base, &(0..base.len()).collect::<Vec<_>>(), Some(2_000));
        file_bytes = c.info().expect("info").bytes;
        e.set_tier_hint(DEFAULT_TENANT, "d", TierHint::Offload)
            .expect("hint");
        e.close().expect("close");
    }
    println!(
        "\nstreaming documents (2 KB payload each, {:.1} MB of segment files), {} queries with_payload, offloaded:",
        file_bytes as f64 / 1e6,
        queries.len()
    );
    println!("| payloads fetched | MB streamed per query | p50 ms | p99 ms | recall@10 |");
    println!("|---|---|---|---|---|");
    for (label, up_to) in [
        (
            "the results' only, by row (default: 2 MB per segment > 1 MiB)",
            1u64 << 20,
        ),
        (
            "every searched segment's, with its vectors (≈ whole files, as before)",
            u64::MAX,
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut o = opts(dir.path(), cold_store(&mem, delay));
        o.tiers.stream_payloads_up_to = up_to;
        let e = Engine::open(o).expect("restore");
        let c = e.collection(DEFAULT_TENANT, "d").expect("coll");
        let ran = run(&c, queries, true);
        assert_eq!(e.stats().tier_segments, [0, 0, SEGMENTS as u64]);
        println!(
            "| {label} | {:.2} | {:.1} | {:.1} | {:.3} |",
            e.stats().cold_streamed_bytes as f64 / queries.len() as f64 / 1e6,
            ms(percentile(&ran.lat, 0.5)),
            ms(percentile(&ran.lat, 0.99)),
            recall(&ran.found, &truth[..ran.found.len()])
        );
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    println!("machine: {}", strata_benches::machine());
    let base = strata_benches::bigann_base();
    let queries = strata_benches::bigann_queries();
    let truth = strata_benches::bigann_truth();
    let mem: Arc<dyn object_store::ObjectStore> = Arc::new(InMemory::new());
    let delay = Duration::from_millis(60);

    // Load: ten flushes of 1,000 points, each segment indexed on its own.
    let dir = tempfile::tempdir().expect("tempdir");
    let total_bytes;
    {
        let e = Engine::open(opts(dir.path(), cold_store(&mem, Duration::ZERO))).expect("open");
        let c = e
            .create_collection(
                DEFAULT_TENANT,
                "b",
                CollectionConfig::new(128, Distance::Euclid),
            )
            .expect("create");
        load(&c, &base, &(0..base.len()).collect::<Vec<_>>(), None);
        let info = c.info().expect("info");
        assert_eq!(info.indexed_segments as usize, SEGMENTS, "{info:?}");
        total_bytes = info.bytes;
        e.close().expect("close");
    }
    println!(
        "bigann10k: {} points, {SEGMENTS} indexed segments, {:.1} MB of segment files; cold GETs delayed {} ms",
        base.len(),
        total_bytes as f64 / 1e6,
        delay.as_millis()
    );
    println!("\n| mode | p50 ms | p99 ms | recall@10 |\n|---|---|---|---|");
    let rounds = if quick { 1 } else { 3 };
    let mut reference: Option<Vec<Vec<u64>>> = None;
    // One segment of the ten (10 % of the bytes) fits the hot budget under its 95 % watermark.
    let one_in_ten = (total_bytes as f64 / SEGMENTS as f64 / 0.95) as u64 + 4096;
    for (mode, hot) in [
        ("all hot (RAM)", Some(u64::MAX / 2)),
        ("10 % of bytes hot, rest warm", Some(one_in_ten)),
        ("all warm (mapped)", None),
    ] {
        let mut o = opts(dir.path(), cold_store(&mem, delay));
        o.tiers.hot_bytes = hot.unwrap_or(0);
        o.tiers.admit_frequency = 0.0;
        let e = Engine::open(o).expect("open");
        let c = e.collection(DEFAULT_TENANT, "b").expect("coll");
        if hot.is_some() {
            run(&c, &queries, false); // access statistics for the policy
            e.run_mover().expect("mover");
        }
        let mut lat = Vec::new();
        let mut found = Vec::new();
        for _ in 0..rounds {
            let ran = run(&c, &queries, false);
            lat.extend(ran.lat);
            found = ran.found;
        }
        lat.sort();
        let tiers = e.stats().tier_segments;
        report(&format!("{mode} {tiers:?}"), &lat, &found, &truth);
        match &reference {
            None => reference = Some(found),
            Some(r) => assert_eq!(r, &found, "{mode}: other answers than all hot"),
        }
    }

    // Cold first touch: a node restored from the object store alone; its first query.
    let restores = if quick { 2 } else { 8 };
    let (mut first, mut after, mut open_ms) = (Vec::new(), Vec::new(), Vec::new());
    let mut first_found = Vec::new();
    for r in 0..restores {
        let d = tempfile::tempdir().expect("tempdir");
        let t = Instant::now();
        let e = Engine::open(opts(d.path(), cold_store(&mem, delay))).expect("restore");
        open_ms.push(t.elapsed());
        let c = e.collection(DEFAULT_TENANT, "b").expect("coll");
        assert_eq!(e.stats().tier_segments, [0, 0, SEGMENTS as u64]);
        let q = &queries[r % queries.len()];
        let mut req = SearchRequest::new(q.clone(), 10);
        req.ef = Some(64);
        let t = Instant::now();
        c.search(&req).expect("first");
        first.push(t.elapsed());
        let ran = run(&c, &queries, false);
        after.extend(ran.lat);
        first_found = ran.found;
    }
    first.sort();
    after.sort();
    open_ms.sort();
    report(
        "cold, first query after restore",
        &first,
        &first_found[..1],
        &truth[..1],
    );
    report("cold, then (promoted: warm)", &after, &first_found, &truth);
    println!(
        "\nrestore (open from the object store: manifest + {SEGMENTS} meta files): p50 {:.1} ms",
        ms(percentile(&open_ms, 0.5))
    );

    // Opening the largest warm segment: one compaction of all ten.
    {
        let mut o = opts(dir.path(), cold_store(&mem, Duration::ZERO));
        o.max_segment_rows = 1_000_000;
        let e = Engine::open(o).expect("open");
        let c = e.collection(DEFAULT_TENANT, "b").expect("coll");
        c.compact().expect("compact");
        let bytes = c.info().expect("info").bytes;
        drop(c);
        e.close().expect("close");
        let io_uring = storage::io::io_uring_support().is_ok();
        for (label, verify, mode) in [
            (
                "full verification (the default), io_uring",
                Verify::Full,
                storage::IoMode::IoUring,
            ),
            (
                "full verification (the default), pread",
                Verify::Full,
                storage::IoMode::Pread,
            ),
            (
                "header-only verification",
                Verify::HeaderOnly,
                storage::IoMode::Pread,
            ),
        ] {
            if mode == storage::IoMode::IoUring && !io_uring {
                continue;
            }
            let io = Arc::new(storage::Io::new(mode, storage::io::DEFAULT_DEPTH).expect("io"));
            let mut times = Vec::new();
            let mut growth = Vec::new();
            let mut mapped = Vec::new();
            for _ in 0..5 {
                let before = rss();
                let mut o = opts(dir.path(), cold_store(&mem, Duration::ZERO));
                o.verify_on_open = verify;
                o.io = Some(Arc::clone(&io));
                let t = Instant::now();
                let e = Engine::open(o).expect("open");
                times.push(t.elapsed());
                growth.push(rss().saturating_sub(before));
                mapped.push(mapped_segment_rss());
                drop(e);
            }
            times.sort();
            growth.sort();
            mapped.sort();
            println!(
                "open with one warm segment of {:.1} MB ({} rows), {label}: p50 {:.1} ms; \
                 resident pages of the segment's mapping {:.3} MB ({:.2} % of the file); \
                 whole-process RSS growth {:.2} MB",
                bytes as f64 / 1e6,
                base.len(),
                ms(percentile(&times, 0.5)),
                mapped[mapped.len() / 2] as f64 / 1e6,
                100.0 * mapped[mapped.len() / 2] as f64 / bytes as f64,
                growth[growth.len() / 2] as f64 / 1e6,
            );
        }
    }

    // Skipping cold segments: rows in write order (bigann's order: random) vs grouped by
    // proximity (the same rows, ordered by a 10-means clustering before loading).
    let n = if quick { 10 } else { 30 };
    println!(
        "\nskipping, {n} queries on an offloaded collection (every segment cold, reads stream):"
    );
    println!(
        "| rows in segments | cold segments read | skipped | skip ratio | MB streamed per query (of the files' MB) | p50 ms | p99 ms | recall@10 |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let write_order: Vec<usize> = (0..base.len()).collect();
    skipping(
        "write order (random)",
        &base,
        &write_order,
        &queries[..n],
        &truth,
        delay,
    );
    let grouped = proximity_order(&base, SEGMENTS);
    skipping(
        "grouped by proximity (10-means)",
        &base,
        &grouped,
        &queries[..n],
        &truth,
        delay,
    );
    payloads(&base, &queries[..n], &truth, delay);
}
