//! Shared helpers for Strata's benches: bigann10k readers and loader, machine description.

use std::path::PathBuf;

/// `testdata/bigann10k` in the repository.
pub fn bigann_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/bigann10k")
}

fn read_vecs<T>(path: &std::path::Path, conv: fn([u8; 4]) -> T) -> Vec<Vec<T>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= bytes.len() {
        let d = i32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes")) as usize;
        i += 4;
        out.push(
            bytes[i..i + 4 * d]
                .chunks_exact(4)
                .map(|c| conv(c.try_into().expect("4 bytes")))
                .collect(),
        );
        i += 4 * d;
    }
    out
}

/// An `.fvecs` file (TEXMEX layout: each row is its dimension as an i32, then its values).
pub fn read_fvecs(path: &std::path::Path) -> Vec<Vec<f32>> {
    read_vecs(path, f32::from_le_bytes)
}

/// An `.ivecs` file (as [`read_fvecs`], i32 values).
pub fn read_ivecs(path: &std::path::Path) -> Vec<Vec<i32>> {
    read_vecs(path, i32::from_le_bytes)
}

/// bigann10k base vectors (10,000 × 128).
pub fn bigann_base() -> Vec<Vec<f32>> {
    read_vecs(
        &bigann_dir().join("bigann10k_base.fvecs"),
        f32::from_le_bytes,
    )
}

/// bigann10k queries (100 × 128).
pub fn bigann_queries() -> Vec<Vec<f32>> {
    read_vecs(
        &bigann_dir().join("bigann10k_query.fvecs"),
        f32::from_le_bytes,
    )
}

/// bigann10k ground truth (100 × 100 ids).
pub fn bigann_truth() -> Vec<Vec<i32>> {
    read_vecs(
        &bigann_dir().join("bigann10k_groundtruth.ivecs"),
        i32::from_le_bytes,
    )
}

/// One line describing the machine (CPU model, cores) for bench output.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores")
}

/// Upserts bigann10k into `coll` as ids `0..10_000`, in batches of 1,000, with payloads
/// `{"bucket": i % 10, "rare": i % 97 == 5}` (filters keeping 10 % and 1 % of points).
pub fn load_bigann(coll: &strata_engine::CollectionHandle, base: &[Vec<f32>]) {
    load(coll, base, |id| {
        serde_json::json!({"bucket": id % 10, "rare": id % 97 == 5})
            .as_object()
            .cloned()
    });
}

/// Upserts `base` into `coll` as ids `0..base.len()`, in batches of 1,000, each point with
/// `payload(id)`.
pub fn load(
    coll: &strata_engine::CollectionHandle,
    base: &[Vec<f32>],
    payload: impl Fn(usize) -> Option<strata_engine::Payload>,
) {
    for (n, chunk) in base.chunks(1000).enumerate() {
        let points = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let id = n * 1000 + i;
                strata_engine::PointInput::new(
                    strata_engine::PointId::Num(id as u64),
                    v.clone(),
                    payload(id),
                )
            })
            .collect();
        coll.upsert(points).expect("upsert");
    }
}

/// Recall@10 of `found` ids against `truth` (the first 10 of each row).
pub fn recall_at_10(found: &[Vec<u64>], truth: &[Vec<i32>]) -> f64 {
    let hits: usize = found
        .iter()
        .zip(truth)
        .map(|(f, t)| t[..10].iter().filter(|x| f.contains(&(**x as u64))).count())
        .sum();
    hits as f64 / (10 * found.len()) as f64
}

/// The real server (HTTP and gRPC on loopback, ports chosen by the OS) over `engine`, on a
/// multi-thread runtime of its own, with a manager token (every collection and actor type).
#[derive(Debug)]
pub struct Served {
    /// The runtime the server (and the caller's clients) run on.
    pub rt: tokio::runtime::Runtime,
    /// `http://127.0.0.1:port`.
    pub http: String,
    /// `127.0.0.1:port` of gRPC.
    pub grpc: String,
    /// A JWT with access `m`.
    pub token: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), String>>,
}

/// The name of [`Served`]'s runtime threads.
pub const SERVER_THREADS: &str = "strata-server";

/// CPU time (user + system) every thread of this process has used so far, those that exited
/// included (`CLOCK_PROCESS_CPUTIME_ID`).
pub fn process_cpu() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time the live threads of this process named `name` have used so far (the first field of
/// `/proc/self/task/<tid>/schedstat`, in nanoseconds).
pub fn threads_cpu(name: &str) -> std::time::Duration {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        ns += stat
            .split_whitespace()
            .next()
            .and_then(|x| x.parse::<u64>().ok())
            .unwrap_or(0);
    }
    std::time::Duration::from_nanos(ns)
}

/// Starts [`Served`] over `engine`.
pub fn serve(engine: std::sync::Arc<strata_engine::Engine>) -> Served {
    use std::sync::Arc;
    use std::time::Duration;
    use strata_server::auth::{Access, Authenticator, Level};
    let secret = b"bench-secret-bench-secret-bench-secret-bench".to_vec();
    let auth = Arc::new(
        Authenticator::new(
            Some(&secret),
            None,
            Duration::from_secs(30),
            Duration::from_secs(86_400),
        )
        .expect("auth"),
    );
    let token = auth
        .mint(
            strata_engine::DEFAULT_TENANT,
            Access::Global(Level::Manage),
            Some("bench"),
            Duration::from_secs(3600),
        )
        .expect("token");
    let cfg = strata_server::config::Config {
        bind: [127, 0, 0, 1].into(),
        http_port: 0,
        grpc_port: 0,
        metrics_port: 0,
        ..strata_server::config::Config::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name(SERVER_THREADS)
        .enable_all()
        .build()
        .expect("runtime");
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let listeners = rt
        .block_on(strata_server::server::Listeners::bind(&cfg))
        .expect("bind");
    let http = format!("http://{}", listeners.http.local_addr().expect("addr"));
    let grpc = listeners.grpc.local_addr().expect("addr").to_string();
    let server = rt.spawn(async move {
        strata_server::server::serve(&cfg, engine, auth, listeners, async {
            let _ = stop_rx.await;
        })
        .await
        .map_err(|e| e.to_string())
    });
    Served {
        rt,
        http,
        grpc,
        token,
        stop,
        server,
    }
}

impl Served {
    /// Stops the server and waits for it.
    pub fn stop(self) {
        let _ = self.stop.send(());
        self.rt
            .block_on(self.server)
            .expect("join")
            .expect("server");
    }
}

/// Throughput and latency of one bench cell.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    /// Operations per second.
    pub ops: f64,
    /// Median latency.
    pub p50: std::time::Duration,
    /// 99th percentile latency.
    pub p99: std::time::Duration,
    /// Operations measured.
    pub count: u64,
}

/// [`Stats`] of the latencies `lat` measured over `elapsed`.
pub fn summarize(mut lat: Vec<std::time::Duration>, elapsed: std::time::Duration) -> Stats {
    lat.sort();
    let pick = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Stats {
        ops: lat.len() as f64 / elapsed.as_secs_f64(),
        p50: pick(0.5),
        p99: pick(0.99),
        count: lat.len() as u64,
    }
}
