//! Durable ingest and bulk load through the HTTP API (issue 10), on the real server on loopback
//! over an engine with its defaults: every batch acknowledged only after its WAL record is
//! fsynced (group commit), flush and compaction (which builds the graphs) in the background.
//! Four clients each send `PUT /collections/c/points` with 100 points per request.
//!
//! 1. **Ingest** (`INGEST_ROWS`, default 200,000): 128-d vectors — bigann10k's base, copy `k` of
//!    row `i` shifted by `k` in every coordinate so no two rows are equal. Reports vectors/s over
//!    the load, then how long after the last acknowledgement every row is in an indexed segment
//!    (the index keeping up).
//! 2. **Bulk load** (`ANN_DATA`, default `target/ann/glove50`, written by `benches/ann.sh`): the
//!    GloVe base (cosine). Then, every second, one-thread QPS and recall@10 of its queries (k 10,
//!    ef 96, in process: the collection's state, not the server's overhead) until the collection
//!    has settled (memtable empty, every segment indexed) and for `SETTLE_SECS` (5) after.
//!    Beside it, in the same run, the pure build: `HnswIndex::build` of the same base on the
//!    same thread count (`index_threads` 0: every core).
//!
//! Prints a timeline (CSV) and a summary on stdout.
//! `cargo bench -p strata-benches --bench ingest`

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use strata_engine::*;

const CLIENTS: usize = 4;
const BATCH: usize = 100;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: {v}")))
        .unwrap_or(default)
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

async fn send(client: &Client, url: &str, token: &str, method: &str, path: &str, body: String) {
    let req = hyper::Request::builder()
        .method(method)
        .uri(format!("{url}/{path}"))
        .header("api-key", token)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let resp = client.request(req).await.expect("http");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert!(
        status.is_success(),
        "HTTP {status}: {}",
        String::from_utf8_lossy(&body)
    );
}

/// Loads `rows` (row `i` gets id `i`) into collection `c` with [`CLIENTS`] clients taking
/// batches of [`BATCH`] in turn; returns the wall time.
fn load(served: &strata_benches::Served, c: &str, rows: Arc<Vec<Vec<f32>>>) -> Duration {
    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    served.rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..CLIENTS {
            let (client, url, token) = (client.clone(), served.http.clone(), served.token.clone());
            let (rows, next, c) = (Arc::clone(&rows), Arc::clone(&next), c.to_string());
            tasks.push(tokio::spawn(async move {
                loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    let lo = b * BATCH;
                    if lo >= rows.len() {
                        break;
                    }
                    let points: Vec<_> = (lo..(lo + BATCH).min(rows.len()))
                        .map(|i| serde_json::json!({"id": i, "vector": rows[i]}))
                        .collect();
                    let body = serde_json::json!({ "points": points }).to_string();
                    send(
                        &client,
                        &url,
                        &token,
                        "PUT",
                        &format!("collections/{c}/points"),
                        body,
                    )
                    .await;
                }
            }));
        }
        for t in tasks {
            t.await.expect("client");
        }
    });
    start.elapsed()
}

fn create(served: &strata_benches::Served, c: &str, dim: usize, distance: &str) {
    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let body = serde_json::json!({"vectors": {"size": dim, "distance": distance}}).to_string();
    served.rt.block_on(send(
        &client,
        &served.http,
        &served.token,
        "PUT",
        &format!("collections/{c}"),
        body,
    ));
}

/// True when the collection has settled: memtable empty and every segment indexed.
fn settled(coll: &CollectionHandle) -> (bool, CollectionInfo) {
    let info = coll.info().expect("info");
    (
        info.memtable_points == 0 && info.indexed_segments == info.segments,
        info,
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let engine = Arc::new(Engine::open(EngineOptions::new(dir.path())).expect("open"));
    let served = strata_benches::serve(Arc::clone(&engine));
    println!(
        "machine: {}; server on loopback, engine defaults (WAL fsync per acknowledgement); {CLIENTS} clients, {BATCH} points per request",
        strata_benches::machine()
    );

    // 1. Durable ingest, 128-d.
    let n = env_usize("INGEST_ROWS", 200_000);
    let base = strata_benches::bigann_base();
    let rows: Vec<Vec<f32>> = (0..n)
        .map(|i| {
            let k = (i / base.len()) as f32;
            base[i % base.len()].iter().map(|x| x + k).collect()
        })
        .collect();
    create(&served, "ingest", 128, "Euclid");
    let took = load(&served, "ingest", Arc::new(rows));
    let coll = engine
        .collection(DEFAULT_TENANT, "ingest")
        .expect("collection");
    let after = Instant::now();
    let info = loop {
        match settled(&coll) {
            (true, info) => break info,
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    println!(
        "ingest: {n} × 128-d in {:.1} s = {:.0} vectors/s; every row in an indexed segment {:.1} s after the last acknowledgement ({} segments then)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        after.elapsed().as_secs_f64(),
        info.segments
    );
    engine
        .delete_collection(DEFAULT_TENANT, "ingest")
        .expect("drop");

    // 2. Bulk load of GloVe, then QPS until settled.
    let data = PathBuf::from(
        std::env::var("ANN_DATA").unwrap_or_else(|_| "target/ann/glove50".to_string()),
    );
    let Ok(metric) = std::fs::read_to_string(data.join("metric")) else {
        println!(
            "bulk load: skipped ({} missing: run benches/ann.sh once)",
            data.display()
        );
        served.stop();
        return;
    };
    let (metric, name) = match metric.trim() {
        "cosine" => (Distance::Cosine, "Cosine"),
        "l2" => (Distance::Euclid, "Euclid"),
        _ => (Distance::Dot, "Dot"),
    };
    let base = strata_benches::read_fvecs(&data.join("base.fvecs"));
    let queries = strata_benches::read_fvecs(&data.join("query.fvecs"));
    let truth = strata_benches::read_ivecs(&data.join("groundtruth.ivecs"));
    let dim = base[0].len();
    let settle = Duration::from_secs(env_usize("SETTLE_SECS", 5) as u64);

    // The pure build, first (nothing else running).
    let flat: Vec<f32> = base.iter().flatten().copied().collect();
    let t = Instant::now();
    let index = HnswIndex::build(flat, dim, metric, HnswConfig::default(), 0);
    let build = t.elapsed();
    drop(index);
    println!(
        "bulk load: pure build of {} × {dim} (HnswIndex, every core, m {}, ef_construct {}): {:.1} s",
        base.len(),
        HnswConfig::default().m,
        HnswConfig::default().ef_construct,
        build.as_secs_f64()
    );

    create(&served, "bulk", dim, name);
    let coll = engine
        .collection(DEFAULT_TENANT, "bulk")
        .expect("collection");
    let rows = base.len();
    let took = load(&served, "bulk", Arc::new(base));
    let after = Instant::now();
    println!(
        "bulk load: {rows} rows in {:.1} s ({:.0} vectors/s)",
        took.as_secs_f64(),
        rows as f64 / took.as_secs_f64()
    );
    println!("t_after_load_s,qps,recall,segments,indexed_segments,memtable_points");
    let mut settled_at: Option<Duration> = None;
    let mut timeline = Vec::new();
    loop {
        let t0 = Instant::now();
        let mut found = Vec::new();
        let mut done = 0usize;
        while t0.elapsed() < Duration::from_millis(700) || done == 0 {
            let q = &queries[done % queries.len()];
            let mut r = SearchRequest::new(q.clone(), 10);
            r.ef = Some(96);
            let hits = coll.search(&r).expect("search");
            if done < queries.len() {
                found.push(
                    hits.iter()
                        .map(|h| match h.id {
                            PointId::Num(n) => n,
                            PointId::Uuid(_) => u64::MAX,
                        })
                        .collect::<Vec<_>>(),
                );
            }
            done += 1;
        }
        let qps = done as f64 / t0.elapsed().as_secs_f64();
        let recall = strata_benches::recall_at_10(&found, &truth[..found.len()]);
        let (ok, info) = settled(&coll);
        let at = after.elapsed();
        println!(
            "{:.1},{qps:.0},{recall:.3},{},{},{}",
            at.as_secs_f64(),
            info.segments,
            info.indexed_segments,
            info.memtable_points
        );
        timeline.push((at, qps));
        match settled_at {
            None if ok => settled_at = Some(at),
            Some(s) if at > s + settle => break,
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let settled_at = settled_at.expect("settled");
    let steady = timeline
        .iter()
        .filter(|(t, _)| *t >= settled_at)
        .map(|(_, q)| *q)
        .sum::<f64>()
        / timeline.iter().filter(|(t, _)| *t >= settled_at).count() as f64;
    // The first sample from which every later one is at least 0.8× the steady QPS.
    let reached = timeline
        .iter()
        .enumerate()
        .find(|(i, _)| timeline[*i..].iter().all(|(_, q)| *q >= 0.8 * steady))
        .map_or(settled_at, |(_, (t, _))| *t);
    println!(
        "bulk load: settled {:.1} s after the last acknowledgement; steady {steady:.0} QPS (ef 96), reached (≥ 0.8× from then on) {:.1} s after the load = {:.2}× the pure build; load + that = {:.2}× the pure build",
        settled_at.as_secs_f64(),
        reached.as_secs_f64(),
        reached.as_secs_f64() / build.as_secs_f64(),
        (took + reached).as_secs_f64() / build.as_secs_f64()
    );
    served.stop();
}
