//! Load generator: the real server (HTTP and gRPC) on loopback vs the same operations called
//! in-process on the engine, in one run, on bigann10k.
//!
//! `cargo bench -p strata-benches --bench loadgen` (env: `LOADGEN_SECONDS`, default 3 per cell;
//! one cell, e.g. for a profile: `LOADGEN_MIX=search LOADGEN_CLIENTS=1 LOADGEN_PROTO=http`).
//! For each protocol, mix (search k=10 / upsert of one point / 90 % search + 10 % upsert) and
//! concurrency (1, 4, 16 clients) it reports QPS, p50 and p99, and the in-process QPS of the same
//! mix and concurrency, so the server's overhead is a ratio on the same machine and data.
//! Upserts overwrite the 10,000 existing points (with their own vectors), so every cell sees the
//! same data: inserting new points instead would measure background indexing catching up (new
//! points sit in unindexed segments until compaction builds their graph), not the server.
//! Client and server share the process and the machine's cores, on separate runtimes: the
//! server's CPU per request is the process's CPU time over the cell less that of the client's
//! threads (its runtime's workers, named `loadgen-client`, and the main thread), so it counts
//! everything the server does for a request — protocol, auth, JSON or protobuf, the engine,
//! WAL and background flush — and nothing the load generator does. Beside it, the CPU per
//! operation of the same mix called in process (the whole process's CPU over the cell: the
//! engine's own cost), and their difference, the server's overhead.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use strata_benches::{Stats, summarize};
use strata_engine::*;
use strata_server::grpc::pb;

/// The name of the load generator's runtime threads.
const CLIENT_THREADS: &str = "loadgen-client";

/// CPU time the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mix {
    Search,
    Upsert,
    Mixed,
}

impl Mix {
    fn name(self) -> &'static str {
        match self {
            Mix::Search => "search k=10",
            Mix::Upsert => "upsert 1 point",
            Mix::Mixed => "90% search / 10% upsert",
        }
    }
    fn is_search(self, i: u64) -> bool {
        match self {
            Mix::Search => true,
            Mix::Upsert => false,
            Mix::Mixed => !i.is_multiple_of(10),
        }
    }
}

struct Data {
    base: Arc<Vec<Vec<f32>>>,
    queries: Arc<Vec<Vec<f32>>>,
}

fn in_process(
    c: &CollectionHandle,
    data: &Data,
    mix: Mix,
    clients: usize,
    secs: Duration,
    next_id: &Arc<AtomicU64>,
) -> Stats {
    let start = Instant::now();
    let lats: Vec<Vec<Duration>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..clients)
            .map(|t| {
                let c = c.clone();
                let next_id = Arc::clone(next_id);
                s.spawn(move || {
                    let mut lat = Vec::new();
                    let mut i = t as u64;
                    while start.elapsed() < secs {
                        let t0 = Instant::now();
                        if mix.is_search(i) {
                            let q = &data.queries[(i % 100) as usize];
                            std::hint::black_box(
                                c.search(&SearchRequest::new(q.clone(), 10))
                                    .expect("search"),
                            );
                        } else {
                            let id = next_id.fetch_add(1, Ordering::Relaxed);
                            let v = data.base[(id % 10_000) as usize].clone();
                            c.upsert(vec![PointInput::new(PointId::Num(id % 10_000), v, None)])
                                .expect("upsert");
                        }
                        lat.push(t0.elapsed());
                        i += clients as u64;
                    }
                    lat
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("client")).collect()
    });
    summarize(lats.concat(), start.elapsed())
}

async fn over_http(
    url: &str,
    token: &str,
    data: &Data,
    mix: Mix,
    clients: usize,
    secs: Duration,
    next_id: &Arc<AtomicU64>,
) -> Stats {
    let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..clients {
        let (client, url, token) = (client.clone(), url.to_string(), token.to_string());
        let (base, queries, next_id) = (
            Arc::clone(&data.base),
            Arc::clone(&data.queries),
            Arc::clone(next_id),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = t as u64;
            while start.elapsed() < secs {
                let (method, path, body) = if mix.is_search(i) {
                    let q = &queries[(i % 100) as usize];
                    ("POST", "points/query", serde_json::json!({"query": q, "limit": 10}))
                } else {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    ("PUT", "points", serde_json::json!({"points": [{"id": id % 10_000, "vector": base[(id % 10_000) as usize]}]}))
                };
                let req = hyper::Request::builder()
                    .method(method)
                    .uri(format!("{url}/collections/b/{path}"))
                    .header("api-key", &token)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body.to_string())))
                    .expect("request");
                let t0 = Instant::now();
                let resp = client.request(req).await.expect("http");
                assert!(resp.status().is_success(), "HTTP {}", resp.status());
                let _ = resp.into_body().collect().await.expect("body");
                lat.push(t0.elapsed());
                i += clients as u64;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client"));
    }
    summarize(all, start.elapsed())
}

async fn over_grpc(
    addr: &str,
    token: &str,
    data: &Data,
    mix: Mix,
    clients: usize,
    secs: Duration,
    next_id: &Arc<AtomicU64>,
) -> Stats {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..clients {
        let mut client = pb::points_client::PointsClient::new(channel.clone());
        let token: tonic::metadata::MetadataValue<_> =
            format!("Bearer {token}").parse().expect("metadata");
        let (base, queries, next_id) = (
            Arc::clone(&data.base),
            Arc::clone(&data.queries),
            Arc::clone(next_id),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = t as u64;
            while start.elapsed() < secs {
                let t0 = Instant::now();
                if mix.is_search(i) {
                    let mut req = tonic::Request::new(pb::SearchPointsRequest {
                        collection: "b".into(),
                        vector: queries[(i % 100) as usize].clone(),
                        limit: 10,
                        ..Default::default()
                    });
                    req.metadata_mut().insert("authorization", token.clone());
                    client.search(req).await.expect("search");
                } else {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    let mut req = tonic::Request::new(pb::UpsertPointsRequest {
                        collection: "b".into(),
                        points: vec![pb::Point {
                            id: Some(pb::PointId {
                                kind: Some(pb::point_id::Kind::Num(id % 10_000)),
                            }),
                            vector: base[(id % 10_000) as usize].clone(),
                            payload_json: String::new(),
                        }],
                    });
                    req.metadata_mut().insert("authorization", token.clone());
                    client.upsert(req).await.expect("upsert");
                }
                lat.push(t0.elapsed());
                i += clients as u64;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client"));
    }
    summarize(all, start.elapsed())
}

fn main() {
    let secs = Duration::from_secs(
        std::env::var("LOADGEN_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = EngineOptions::new(dir.path());
    opts.background = true;
    let engine = Arc::new(Engine::open(opts).expect("open"));
    let coll = engine
        .create_collection(
            DEFAULT_TENANT,
            "b",
            CollectionConfig::new(128, Distance::Euclid),
        )
        .expect("create");
    let base = strata_benches::bigann_base();
    strata_benches::load_bigann(&coll, &base);
    coll.flush().expect("flush");
    coll.compact().expect("compact"); // one indexed segment: searches use the HNSW graph
    let data = Data {
        base: Arc::new(base),
        queries: Arc::new(strata_benches::bigann_queries()),
    };
    let served = strata_benches::serve(Arc::clone(&engine));
    let (http, grpc, token) = (&served.http, &served.grpc, &served.token);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name(CLIENT_THREADS)
        .enable_all()
        .build()
        .expect("client runtime");
    // CPU of the process and of the load generator's threads (its workers and this thread).
    let cpu = || {
        (
            strata_benches::process_cpu(),
            strata_benches::threads_cpu(CLIENT_THREADS) + thread_cpu(),
        )
    };
    let next_id = Arc::new(AtomicU64::new(0));
    println!(
        "machine: {}; {}s per cell; bigann10k (128-d, Euclid) in one indexed segment; WAL ack fsync",
        strata_benches::machine(),
        secs.as_secs()
    );
    println!();
    println!(
        "| protocol | mix | clients | QPS | p50 | p99 | in-process QPS | server / in-process | server CPU / request | in-process CPU / op | overhead |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let us = |d: Duration, n: u64| d.as_secs_f64() * 1e6 / n.max(1) as f64;
    // Knobs to run one cell (e.g. under a profiler): LOADGEN_MIX (search, upsert, mixed),
    // LOADGEN_CLIENTS (1,4,16), LOADGEN_PROTO (HTTP, gRPC).
    let only = |var: &str, name: &str| {
        std::env::var(var).map_or(true, |v| v.split(',').any(|x| x.eq_ignore_ascii_case(name)))
    };
    for mix in [Mix::Search, Mix::Upsert, Mix::Mixed] {
        let key = format!("{mix:?}");
        if !only("LOADGEN_MIX", &key) {
            continue;
        }
        for clients in [1usize, 4, 16] {
            if !only("LOADGEN_CLIENTS", &clients.to_string()) {
                continue;
            }
            let before = strata_benches::process_cpu();
            let local = in_process(&coll, &data, mix, clients, secs, &next_id);
            let local_cpu = us(strata_benches::process_cpu() - before, local.count);
            for proto in ["HTTP", "gRPC"] {
                if !only("LOADGEN_PROTO", proto) {
                    continue;
                }
                let (p0, c0) = cpu();
                let s = rt.block_on(async {
                    if proto == "HTTP" {
                        over_http(http, token, &data, mix, clients, secs, &next_id).await
                    } else {
                        over_grpc(grpc, token, &data, mix, clients, secs, &next_id).await
                    }
                });
                let (p1, c1) = cpu();
                // A client thread that exited mid-cell would make c1 < c0: never negative.
                let server_cpu = us((p1 - p0).saturating_sub(c1.saturating_sub(c0)), s.count);
                println!(
                    "| {proto} | {} | {clients} | {:.0} | {:.2} ms | {:.2} ms | {:.0} | {:.2} | {server_cpu:.0} µs | {local_cpu:.0} µs | {:.0} µs |",
                    mix.name(),
                    s.ops,
                    s.p50.as_secs_f64() * 1e3,
                    s.p99.as_secs_f64() * 1e3,
                    local.ops,
                    s.ops / local.ops,
                    server_cpu - local_cpu
                );
            }
        }
    }
    served.stop();
}
