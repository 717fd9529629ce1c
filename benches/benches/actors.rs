//! Actor state: Strata over gRPC and HTTP beside Redis (`redis-server`, AOF with
//! `appendfsync always` and `everysec`), in one run, same keys, same value size, same client
//! model (one connection per client, tokio tasks in this process).
//!
//! `cargo bench -p strata-benches --bench actors` (needs `redis-server` on the PATH: Debian's
//! `redis-server` package). Env: `ACTORS_SECONDS` (per cell, default 2), `ACTORS_CLIENTS`
//! (default `1,4,16,64`), `ACTORS_KEYS` (default 10,000), `ACTORS_VALUE_BYTES` (default 256),
//! `ACTORS_COLD_GET_MS` (latency added to every cold-store GET, default 20), `ACTORS_SYSTEMS`
//! (which to run of `redis,grpc,session,http,engine`, default all; `session`: gRPC with every
//! client's operations on one `Actors/Session` stream instead of a call each; `engine`: the
//! same operations called in-process on the engine, the baseline of the server's overhead),
//! `ACTORS_CELLS` (which of `get-hot,get-cold,get-warm,put,mixed`, default all),
//! `ACTORS_CONNECTIONS` (0, the default: one connection per client; N: the clients share N
//! connections, as multiplexing clients do — Redis commands pipelined on them, gRPC calls and
//! session streams multiplexed; HTTP/1.1 stays at one per client).
//!
//! Cells: gets with Strata's working set hot (its actor segment pinned in RAM), warm (the
//! local file: one positional read per get) and cold (offloaded: one ranged GET per get, to an
//! in-memory object store that waits `ACTORS_COLD_GET_MS` per GET); durable puts (Strata: WAL
//! group commit + fsync before the answer; Redis `always`: fsync before the answer, `everysec`:
//! fsync once a second); and a 50 / 50 mix of gets and puts on the hot working set. Redis keeps
//! everything in RAM in every cell. Strata's server, Strata's and Redis's clients share this
//! process; Redis runs as its own process on the same two cores.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use strata_benches::{Stats, summarize};
use strata_engine::storage::object_store::throttle::{ThrottleConfig, ThrottledStore};
use strata_engine::storage::{BlobStore, ObjectBlobStore, object_store};
use strata_engine::*;
use strata_server::grpc::pb;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// The allocator the `strata` binary uses, so the server in this process runs as it does there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Op {
    Get,
    Put,
    Mixed,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Put => "put (durable)",
            Op::Mixed => "50% get / 50% put",
        }
    }
    fn is_get(self, i: u64) -> bool {
        match self {
            Op::Get => true,
            Op::Put => false,
            Op::Mixed => i.is_multiple_of(2),
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// What every cell shares.
#[derive(Clone)]
struct Load {
    keys: u64,
    value: Arc<Vec<u8>>,
    secs: Duration,
    /// Connections the clients share (multiplexed); 0: one per client.
    conns: usize,
}

impl Load {
    /// How many connections a cell of `clients` opens.
    fn connections(&self, clients: usize) -> usize {
        match self.conns {
            0 => clients,
            n => n.min(clients),
        }
    }
}

impl Load {
    fn key(&self, i: u64) -> String {
        format!("a{:06}", i % self.keys)
    }

    /// Puts key `i`'s value in-process (blind, durable).
    fn put(&self, a: &ActorHandle, i: u64) -> strata_engine::Result<u64> {
        a.put(
            &self.key(i),
            "state",
            self.value.to_vec(),
            "application/octet-stream",
            None,
            ActorCondition::None,
        )
    }
}

/// A spread of key indices per client (a multiplicative walk: every key, no two clients in
/// step).
fn key_index(client: usize, n: u64) -> u64 {
    (client as u64)
        .wrapping_mul(7_919)
        .wrapping_add(n.wrapping_mul(2_654_435_761))
}

/// Runs `clients` tasks of `op` for `load.secs`; `call(client, i, is_get)` does one operation.
async fn run<F, Fut>(load: &Load, op: Op, clients: usize, call: F) -> Stats
where
    F: Fn(usize, u64, bool) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..clients {
        let (call, secs) = (call.clone(), load.secs);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut n = 0u64;
            while start.elapsed() < secs {
                let i = key_index(t, n);
                let t0 = Instant::now();
                call(t, i, op.is_get(n + t as u64)).await;
                lat.push(t0.elapsed());
                n += 1;
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

// ---------------------------------------------------------------- Redis (RESP over TCP)

/// One Redis connection: commands as RESP arrays, replies read to their end.
struct Resp {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
    line: String,
}

impl Resp {
    async fn connect(port: u16) -> Resp {
        let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to redis");
        s.set_nodelay(true).expect("nodelay");
        let (r, w) = s.into_split();
        Resp {
            r: BufReader::new(r),
            w,
            line: String::new(),
        }
    }

    /// Sends `args` and returns the reply's payload (bulk string bytes, or the status line).
    async fn call(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.w
            .write_all(&resp_command(args))
            .await
            .expect("redis write");
        resp_reply(&mut self.r, &mut self.line).await
    }

    /// This connection shared by several clients (a multiplexing client, as StackExchange.Redis
    /// or redis-rs's `MultiplexedConnection`): commands are written as they come, several per
    /// write when they queue, and replies (which Redis sends in command order) handed back in
    /// that order.
    fn shared(self) -> SharedResp {
        type Done = tokio::sync::oneshot::Sender<Vec<u8>>;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(Vec<u8>, Done)>(1024);
        let (order, mut ordered) = tokio::sync::mpsc::unbounded_channel::<Done>();
        let Resp {
            mut r,
            mut w,
            mut line,
        } = self;
        tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Some((cmd, done)) = rx.recv().await {
                buf.clear();
                buf.extend_from_slice(&cmd);
                let _ = order.send(done);
                while let Ok((cmd, done)) = rx.try_recv() {
                    buf.extend_from_slice(&cmd);
                    let _ = order.send(done);
                }
                if w.write_all(&buf).await.is_err() {
                    return;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(done) = ordered.recv().await {
                let _ = done.send(resp_reply(&mut r, &mut line).await);
            }
        });
        SharedResp { tx }
    }
}

/// `args` as a RESP array.
fn resp_command(args: &[&[u8]]) -> Vec<u8> {
    let mut m = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        m.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        m.extend_from_slice(a);
        m.extend_from_slice(b"\r\n");
    }
    m
}

/// One reply's payload (bulk string bytes, or the status line).
async fn resp_reply(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    line: &mut String,
) -> Vec<u8> {
    line.clear();
    r.read_line(line).await.expect("redis read");
    match line.as_bytes().first() {
        Some(b'$') => {
            let n: i64 = line[1..].trim().parse().expect("bulk length");
            if n < 0 {
                return Vec::new();
            }
            let mut b = vec![0; n as usize + 2];
            r.read_exact(&mut b).await.expect("bulk");
            b.truncate(n as usize);
            b
        }
        Some(b'+') | Some(b':') => line.trim().as_bytes().to_vec(),
        _ => panic!("redis answered {line:?}"),
    }
}

/// A Redis connection several clients share ([`Resp::shared`]).
#[derive(Clone)]
struct SharedResp {
    tx: tokio::sync::mpsc::Sender<(Vec<u8>, tokio::sync::oneshot::Sender<Vec<u8>>)>,
}

impl SharedResp {
    async fn call(&self, args: &[&[u8]]) -> Vec<u8> {
        let (done, reply) = tokio::sync::oneshot::channel();
        self.tx
            .send((resp_command(args), done))
            .await
            .expect("redis writer");
        reply.await.expect("redis reply")
    }
}

/// A `redis-server` child with AOF on and `appendfsync` = `fsync`, in its own directory.
struct Redis {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start(fsync: &str) -> Redis {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--dir", &dir.path().display().to_string()])
            .args(["--appendonly", "yes", "--appendfsync", fsync, "--save", ""])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is needed on the PATH (Debian: apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client's way to Redis: its own connection, or one it shares ([`Resp::shared`]).
enum RedisConn {
    Own(tokio::sync::Mutex<Resp>),
    Shared(SharedResp),
}

impl RedisConn {
    async fn call(&self, args: &[&[u8]]) -> Vec<u8> {
        match self {
            RedisConn::Own(c) => c.lock().await.call(args).await,
            RedisConn::Shared(c) => c.call(args).await,
        }
    }
}

/// Clients on their own connections, or on `load.conns` shared ones.
async fn redis_cell(port: u16, load: &Load, op: Op, clients: usize) -> Stats {
    let mut conns = Vec::new();
    for _ in 0..load.connections(clients) {
        let c = Resp::connect(port).await;
        conns.push(if load.conns > 0 {
            RedisConn::Shared(c.shared())
        } else {
            RedisConn::Own(tokio::sync::Mutex::new(c))
        });
    }
    let conns = Arc::new(conns);
    let l = load.clone();
    run(load, op, clients, move |t, i, get| {
        let (conns, l) = (Arc::clone(&conns), l.clone());
        async move {
            let c = &conns[t % conns.len()];
            let key = format!("bench:{}", l.key(i));
            if get {
                let v = c.call(&[b"GET", key.as_bytes()]).await;
                assert_eq!(v.len(), l.value.len());
            } else {
                c.call(&[b"SET", key.as_bytes(), &l.value]).await;
            }
        }
    })
    .await
}

// ---------------------------------------------------------------- Strata

async fn grpc_cell(addr: &str, token: &str, load: &Load, op: Op, clients: usize) -> Stats {
    let mut stubs = Vec::new();
    // A channel multiplexes concurrent calls on its HTTP/2 connection.
    for _ in 0..load.connections(clients) {
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .tcp_nodelay(true)
            .connect()
            .await
            .expect("connect");
        stubs.push(pb::actors_client::ActorsClient::new(ch));
    }
    let stubs = Arc::new(stubs);
    let token: tonic::metadata::MetadataValue<_> =
        format!("Bearer {token}").parse().expect("metadata");
    let l = load.clone();
    run(load, op, clients, move |t, i, get| {
        let (stubs, l, token) = (Arc::clone(&stubs), l.clone(), token.clone());
        async move {
            let mut c = stubs[t % stubs.len()].clone();
            if get {
                let mut req = tonic::Request::new(pb::GetActorStateRequest {
                    actor_type: "bench".into(),
                    actor_id: l.key(i),
                    ..Default::default()
                });
                req.metadata_mut().insert("authorization", token);
                let r = c.get(req).await.expect("get").into_inner();
                assert!(r.found && r.value.len() == l.value.len());
            } else {
                let mut req = tonic::Request::new(pb::PutActorStateRequest {
                    actor_type: "bench".into(),
                    actor_id: l.key(i),
                    value: l.value.to_vec(),
                    ..Default::default()
                });
                req.metadata_mut().insert("authorization", token);
                c.put(req).await.expect("put");
            }
        }
    })
    .await
}

/// One `Actors/Session` stream per client (its own connection), one operation outstanding at
/// a time: the unary cell's client model, without a call per operation.
async fn session_cell(addr: &str, token: &str, load: &Load, op: Op, clients: usize) -> Stats {
    if load.conns > 0 {
        return session_shared_cell(addr, token, load, op, clients).await;
    }
    type Tx = tokio::sync::mpsc::Sender<pb::ActorSessionRequest>;
    type Rx = tonic::Streaming<pb::ActorSessionResponse>;
    let mut sessions: Vec<Arc<tokio::sync::Mutex<(Tx, Rx)>>> = Vec::new();
    for _ in 0..clients {
        sessions.push(Arc::new(tokio::sync::Mutex::new(
            open_session(addr, token).await,
        )));
    }
    let sessions = Arc::new(sessions);
    let l = load.clone();
    run(load, op, clients, move |t, i, get| {
        let (sessions, l) = (Arc::clone(&sessions), l.clone());
        async move {
            use pb::actor_session_request::Op as Req;
            use pb::actor_session_response::Result as Ans;
            let mut s = sessions[t].lock().await;
            let op = match get {
                true => Req::Get(pb::GetActorStateRequest {
                    actor_type: "bench".into(),
                    actor_id: l.key(i),
                    ..Default::default()
                }),
                false => Req::Put(pb::PutActorStateRequest {
                    actor_type: "bench".into(),
                    actor_id: l.key(i),
                    value: l.value.to_vec(),
                    ..Default::default()
                }),
            };
            s.0.send(pb::ActorSessionRequest {
                id: i,
                op: Some(op),
            })
            .await
            .expect("send");
            let a = s.1.message().await.expect("session").expect("answer");
            assert_eq!(a.id, i);
            match (get, a.result) {
                (true, Some(Ans::Get(g))) => assert!(g.found && g.value.len() == l.value.len()),
                (false, Some(Ans::Write(w))) => assert!(w.version > 0),
                (_, other) => panic!("unexpected answer {other:?}"),
            }
        }
    })
    .await
}

/// Opens an `Actors/Session` stream on its own connection: the sender of its requests and
/// the stream of its answers.
async fn open_session(
    addr: &str,
    token: &str,
) -> (
    tokio::sync::mpsc::Sender<pb::ActorSessionRequest>,
    tonic::Streaming<pb::ActorSessionResponse>,
) {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .tcp_nodelay(true)
        .connect()
        .await
        .expect("connect");
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    let outbound =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    let mut req = tonic::Request::new(outbound);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("metadata"),
    );
    let answers = pb::actors_client::ActorsClient::new(ch)
        .session(req)
        .await
        .expect("session")
        .into_inner();
    (tx, answers)
}

/// Clients waiting for their answers, by request id.
type Waiting = Arc<
    std::sync::Mutex<
        std::collections::HashMap<u64, tokio::sync::oneshot::Sender<pb::ActorSessionResponse>>,
    >,
>;

/// A session stream several clients share: requests numbered per stream, answers routed back
/// by id (they can come out of order).
struct SharedSession {
    tx: tokio::sync::mpsc::Sender<pb::ActorSessionRequest>,
    waiting: Waiting,
    next: std::sync::atomic::AtomicU64,
}

impl SharedSession {
    async fn open(addr: &str, token: &str) -> SharedSession {
        let (tx, mut answers) = open_session(addr, token).await;
        let waiting: Waiting = Arc::default();
        let w = Arc::clone(&waiting);
        tokio::spawn(async move {
            while let Ok(Some(a)) = answers.message().await {
                let to = w.lock().expect("waiting").remove(&a.id);
                if let Some(to) = to {
                    let _ = to.send(a);
                }
            }
        });
        SharedSession {
            tx,
            waiting,
            next: Default::default(),
        }
    }

    async fn call(&self, op: pb::actor_session_request::Op) -> pb::actor_session_response::Result {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (done, answer) = tokio::sync::oneshot::channel();
        self.waiting.lock().expect("waiting").insert(id, done);
        self.tx
            .send(pb::ActorSessionRequest { id, op: Some(op) })
            .await
            .expect("send");
        answer.await.expect("answer").result.expect("result")
    }
}

/// [`session_cell`] with the clients on `load.conns` shared streams (one connection each).
async fn session_shared_cell(
    addr: &str,
    token: &str,
    load: &Load,
    op: Op,
    clients: usize,
) -> Stats {
    let mut sessions = Vec::new();
    for _ in 0..load.connections(clients) {
        sessions.push(SharedSession::open(addr, token).await);
    }
    let sessions = Arc::new(sessions);
    let l = load.clone();
    run(load, op, clients, move |t, i, get| {
        let (sessions, l) = (Arc::clone(&sessions), l.clone());
        async move {
            use pb::actor_session_request::Op as Req;
            use pb::actor_session_response::Result as Ans;
            let s = &sessions[t % sessions.len()];
            let a = match get {
                true => {
                    s.call(Req::Get(pb::GetActorStateRequest {
                        actor_type: "bench".into(),
                        actor_id: l.key(i),
                        ..Default::default()
                    }))
                    .await
                }
                false => {
                    s.call(Req::Put(pb::PutActorStateRequest {
                        actor_type: "bench".into(),
                        actor_id: l.key(i),
                        value: l.value.to_vec(),
                        ..Default::default()
                    }))
                    .await
                }
            };
            match (get, a) {
                (true, Ans::Get(g)) => assert!(g.found && g.value.len() == l.value.len()),
                (false, Ans::Write(w)) => assert!(w.version > 0),
                (_, other) => panic!("unexpected answer {other:?}"),
            }
        }
    })
    .await
}

async fn http_cell(url: &str, token: &str, load: &Load, op: Op, clients: usize) -> Stats {
    let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_max_idle_per_host(clients)
            .build_http();
    let (l, url, token) = (load.clone(), url.to_string(), token.to_string());
    run(load, op, clients, move |_, i, get| {
        let (client, l, url, token) = (client.clone(), l.clone(), url.clone(), token.clone());
        async move {
            let uri = format!("{url}/v1/actors/bench/{}", l.key(i));
            let req = hyper::Request::builder()
                .method(if get { "GET" } else { "PUT" })
                .uri(uri)
                .header("api-key", &token)
                .header("content-type", "application/octet-stream");
            let body = match get {
                true => Full::new(Bytes::new()),
                false => Full::new(Bytes::from(l.value.to_vec())),
            };
            let resp = client
                .request(req.body(body).expect("request"))
                .await
                .expect("http");
            assert!(resp.status().is_success(), "HTTP {}", resp.status());
            let b = resp.into_body().collect().await.expect("body").to_bytes();
            if get {
                assert_eq!(b.len(), l.value.len());
            }
        }
    })
    .await
}

/// The same operations called in-process on the engine from `clients` threads (no network,
/// no protocol): what the server's overhead is measured against.
fn in_process(a: &ActorHandle, load: &Load, op: Op, clients: usize) -> Stats {
    let start = Instant::now();
    let lats: Vec<Vec<Duration>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..clients)
            .map(|t| {
                s.spawn(move || {
                    let mut lat = Vec::new();
                    let mut n = 0u64;
                    while start.elapsed() < load.secs {
                        let i = key_index(t, n);
                        let t0 = Instant::now();
                        if op.is_get(n + t as u64) {
                            let v = a.get(&load.key(i), "state").expect("get").expect("found");
                            assert_eq!(v.value.len(), load.value.len());
                        } else {
                            load.put(a, i).expect("put");
                        }
                        lat.push(t0.elapsed());
                        n += 1;
                    }
                    lat
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("client")).collect()
    });
    summarize(lats.concat(), start.elapsed())
}

/// Every cell measured: (system, tier, op, clients, ops/s).
type Results = std::cell::RefCell<Vec<(String, String, Op, usize, f64)>>;

/// `fsyncs`: the WAL fsyncs Strata made during the cell (`None` for Redis); with the cell's
/// put count it gives the writes each fsync carried (group commit at work).
fn record_row(
    out: &Results,
    (who, tier, op, clients): (&str, &str, Op, usize),
    s: &Stats,
    fsyncs: Option<u64>,
) {
    out.borrow_mut()
        .push((who.into(), tier.into(), op, clients, s.ops));
    let puts = match op {
        Op::Get => 0.0,
        Op::Put => s.count as f64,
        Op::Mixed => s.count as f64 / 2.0,
    };
    let per_fsync = match fsyncs {
        Some(f) if f > 0 && puts > 0.0 => format!("{:.1}", puts / f as f64),
        _ => "-".into(),
    };
    println!(
        "| {who} | {tier} | {} | {clients} | {:.0} | {:.3} | {:.3} | {per_fsync} |",
        op.name(),
        s.ops,
        s.p50.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3
    );
}

fn main() {
    let load = Load {
        keys: env_or("ACTORS_KEYS", 10_000u64),
        value: Arc::new(
            (0..env_or("ACTORS_VALUE_BYTES", 256usize))
                .map(|i| (i % 251) as u8)
                .collect(),
        ),
        secs: Duration::from_secs_f64(env_or("ACTORS_SECONDS", 2.0f64)),
        conns: env_or("ACTORS_CONNECTIONS", 0usize),
    };
    let clients: Vec<usize> = std::env::var("ACTORS_CLIENTS")
        .unwrap_or_else(|_| "1,4,16,64".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let cold_ms = env_or("ACTORS_COLD_GET_MS", 20u64);
    let systems =
        std::env::var("ACTORS_SYSTEMS").unwrap_or_else(|_| "redis,grpc,session,http,engine".into());
    let run_of = |s: &str| systems.split(',').any(|x| x.trim() == s);
    let cell_list = std::env::var("ACTORS_CELLS")
        .unwrap_or_else(|_| "get-hot,get-cold,get-warm,put,mixed".into());
    let cell_of = |s: &str| cell_list.split(',').any(|x| x.trim() == s);

    // Strata: a data directory on the same disk as Redis's, a cold store in RAM with a GET
    // latency, the server in this process.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let mem: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let throttled = ThrottledStore::new(
        mem,
        ThrottleConfig {
            wait_get_per_call: Duration::from_millis(cold_ms),
            ..ThrottleConfig::default()
        },
    );
    let cold: Arc<dyn BlobStore> =
        Arc::new(ObjectBlobStore::new(Arc::new(throttled), "bench", "memory://").expect("cold"));
    let mut opts = EngineOptions::new(dir.path());
    opts.cold = Some(cold);
    opts.tiers.hot_bytes = 1 << 30;
    opts.tiers.min_residence = Duration::ZERO;
    // Tiers move only when the bench says (a background pass would promote the warm segment
    // it reads).
    opts.tiers.mover_interval = Duration::from_secs(3_600);
    let engine = Arc::new(Engine::open(opts).expect("open"));
    let actors = engine.actors(DEFAULT_TENANT, "bench").expect("store");
    for i in 0..load.keys {
        load.put(&actors, i).expect("load");
    }
    actors.flush().expect("flush");
    let served = strata_benches::serve(Arc::clone(&engine));
    let (rt, http, grpc, token) = (&served.rt, &served.http, &served.grpc, &served.token);

    let redis: Vec<(&str, Redis)> = vec![
        ("Redis appendfsync always", Redis::start("always")),
        ("Redis appendfsync everysec", Redis::start("everysec")),
    ];
    rt.block_on(async {
        for (_, r) in &redis {
            let mut c = Resp::connect(r.port).await;
            for i in 0..load.keys {
                let key = format!("bench:{}", load.key(i));
                c.call(&[b"SET", key.as_bytes(), &load.value]).await;
            }
        }
    });
    let tier_to = |hint: TierHint, want: usize| {
        actors.set_tier_hint(hint).expect("hint");
        engine.run_mover().expect("mover");
        let t = actors.segments_per_tier();
        assert!(
            t[want] >= 1 && t.iter().sum::<u64>() == t[want],
            "segments per tier {t:?}"
        );
    };

    println!(
        "machine: {}; {} keys, {}-byte values; {:.1} s per cell; cold-store GETs +{cold_ms} ms; {}",
        strata_benches::machine(),
        load.keys,
        load.value.len(),
        load.secs.as_secs_f64(),
        match load.conns {
            0 => "one connection per client".to_string(),
            n => format!(
                "clients share {n} connections (Redis pipelined, gRPC calls and session streams multiplexed; HTTP one per client)"
            ),
        }
    );
    println!();
    println!(
        "| system | Strata tier | op | clients | ops/s | p50 ms | p99 ms | writes per fsync |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let results: Results = Default::default();
    let row = |who: &str, tier: &str, op: Op, clients: usize, s: &Stats| {
        record_row(&results, (who, tier, op, clients), s, None)
    };
    // A Strata cell: its row with the WAL fsyncs it caused.
    let strata = |who: &str, tier: &str, op: Op, clients: usize, cell: &dyn Fn() -> Stats| {
        let before = engine.stats().wal_fsyncs;
        let s = cell();
        let fsyncs = engine.stats().wal_fsyncs - before;
        record_row(&results, (who, tier, op, clients), &s, Some(fsyncs))
    };
    let cells = |tier: &str, op: Op, with_redis: bool| {
        for &c in &clients {
            if with_redis && run_of("redis") {
                for (name, r) in &redis {
                    let s = rt.block_on(redis_cell(r.port, &load, op, c));
                    row(name, "(RAM)", op, c, &s);
                }
            }
            if run_of("grpc") {
                strata("Strata gRPC", tier, op, c, &|| {
                    rt.block_on(grpc_cell(grpc, token, &load, op, c))
                });
            }
            if run_of("session") {
                strata("Strata gRPC session", tier, op, c, &|| {
                    rt.block_on(session_cell(grpc, token, &load, op, c))
                });
            }
            if run_of("http") {
                strata("Strata HTTP", tier, op, c, &|| {
                    rt.block_on(http_cell(http, token, &load, op, c))
                });
            }
            if run_of("engine") {
                strata("Strata in-process", tier, op, c, &|| {
                    in_process(&actors, &load, op, c)
                });
            }
        }
    };
    tier_to(TierHint::PinHot, 0);
    if cell_of("get-hot") {
        cells("hot", Op::Get, true);
    }
    tier_to(TierHint::Offload, 2);
    if cell_of("get-cold") {
        cells("cold", Op::Get, false);
    }
    // Warm: a cold segment with the warm hint is fetched to the local disk (not into RAM).
    tier_to(TierHint::Warm, 1);
    if cell_of("get-warm") {
        cells("warm", Op::Get, false);
    }
    let reads = engine.stats().actor_segment_reads;
    tier_to(TierHint::PinHot, 0);
    if cell_of("put") {
        cells("hot", Op::Put, true);
    }
    if cell_of("mixed") {
        cells("hot", Op::Mixed, true);
    }
    println!();
    println!(
        "actor segment block reads: hot {}, warm {}, cold {} (one per get that reached a segment)",
        reads[0], reads[1], reads[2]
    );
    // The targets, as ratios from this run (16 clients and more).
    let ops = |who: &str, tier: &str, op: Op, c: usize| {
        results
            .borrow()
            .iter()
            .find(|r| r.0 == who && r.1 == tier && r.2 == op && r.3 == c)
            .map(|r| r.4)
    };
    println!();
    println!(
        "| clients | durable puts: Strata gRPC / gRPC session / HTTP ÷ Redis always | hot gets: Strata gRPC / gRPC session / HTTP ÷ best Redis | mixed ops/s over gRPC / gRPC session (target 50,000) |"
    );
    println!("|---|---|---|---|");
    for &c in clients.iter().filter(|c| **c >= 16) {
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "-".into(),
        };
        let always = ops("Redis appendfsync always", "(RAM)", Op::Put, c);
        let best_get = [
            ops("Redis appendfsync always", "(RAM)", Op::Get, c),
            ops("Redis appendfsync everysec", "(RAM)", Op::Get, c),
        ]
        .into_iter()
        .flatten()
        .reduce(f64::max);
        let mixed =
            |who: &str| ops(who, "hot", Op::Mixed, c).map_or("-".into(), |o| format!("{o:.0}"));
        println!(
            "| {c} | {} / {} / {} | {} / {} / {} | {} / {} |",
            ratio(ops("Strata gRPC", "hot", Op::Put, c), always),
            ratio(ops("Strata gRPC session", "hot", Op::Put, c), always),
            ratio(ops("Strata HTTP", "hot", Op::Put, c), always),
            ratio(ops("Strata gRPC", "hot", Op::Get, c), best_get),
            ratio(ops("Strata gRPC session", "hot", Op::Get, c), best_get),
            ratio(ops("Strata HTTP", "hot", Op::Get, c), best_get),
            mixed("Strata gRPC"),
            mixed("Strata gRPC session"),
        );
    }
    let commits = engine.stats().actor_commits;
    println!();
    println!(
        "Strata commits by path: async {} (no thread held while the WAL syncs), blocking {}",
        commits[0], commits[1]
    );
    drop(redis);
    served.stop();
}
