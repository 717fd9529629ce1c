//! The server in-process on loopback: deadlines and request limits.
//!
//! A request that runs out of time is answered with an error only when nothing was applied:
//! the deadline travels into the engine and is checked at the commit point (the WAL append),
//! so "503" and "written" can no longer both be true (the old outer timeout answered 503 while
//! the blocking task went on and committed).

use std::sync::Arc;
use std::time::Duration;

use strata_engine::*;
use strata_server::auth::{Access, Authenticator, Level};
use strata_server::config::Config;
use strata_server::grpc::pb;
use strata_server::server::{Listeners, serve};

struct Running {
    http: String,
    grpc: String,
    token: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(engine: Arc<Engine>, timeout: &str) -> Running {
    let cfg = Config {
        bind: [127, 0, 0, 1].into(),
        http_port: 0,
        grpc_port: 0,
        metrics_port: 0,
        request_timeout: timeout.into(),
        ..Config::default()
    };
    let auth = Arc::new(
        Authenticator::new(
            Some(&[7u8; 32]),
            None,
            Duration::from_secs(30),
            Duration::from_secs(86_400),
        )
        .expect("auth"),
    );
    let token = auth
        .mint(
            DEFAULT_TENANT,
            Access::Global(Level::Manage),
            None,
            Duration::from_secs(600),
        )
        .expect("mint");
    let listeners = Listeners::bind(&cfg).await.expect("bind");
    let http = listeners.http.local_addr().expect("addr").to_string();
    let grpc = listeners.grpc.local_addr().expect("addr").to_string();
    let (stop, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        serve(&cfg, engine, auth, listeners, async {
            let _ = rx.await;
        })
        .await
    });
    Running {
        http,
        grpc,
        token,
        stop,
        task,
    }
}

async fn http(addr: &str, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\napi-key: {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    (
        out[9..12].parse().expect("status"),
        out.split("\r\n\r\n").nth(1).unwrap_or("").to_string(),
    )
}

/// A gRPC upsert of point `id` into "c", authorised by `token`, with an optional client timeout
/// (sent as `grpc-timeout`).
fn upsert(
    token: &str,
    id: u64,
    timeout: Option<Duration>,
) -> tonic::Request<pb::UpsertPointsRequest> {
    let mut req = tonic::Request::new(pb::UpsertPointsRequest {
        collection: "c".into(),
        points: vec![pb::Point {
            id: Some(pb::PointId {
                kind: Some(pb::point_id::Kind::Num(id)),
            }),
            vector: vec![1.0, 2.0],
            payload_json: String::new(),
        }],
    });
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("metadata"),
    );
    if let Some(t) = timeout {
        req.set_timeout(t);
    }
    req
}

fn engine(dir: &std::path::Path) -> (Arc<Engine>, CollectionHandle) {
    let mut o = EngineOptions::new(dir);
    o.background = false;
    let e = Arc::new(Engine::open(o).expect("open"));
    let c = e
        .create_collection(DEFAULT_TENANT, "c", CollectionConfig::new(2, Distance::Dot))
        .expect("create");
    (e, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_deadline_applies_nothing_and_says_so() {
    let d = tempfile::tempdir().expect("tempdir");
    let (e, c) = engine(d.path());
    // A zero timeout: every request is past its deadline when it reaches the engine.
    let s = start(Arc::clone(&e), "0s").await;
    let (status, body) = http(
        &s.http,
        "PUT",
        "/collections/c/points",
        &s.token,
        r#"{"points": [{"id": 1, "vector": [1, 2]}]}"#,
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("deadline exceeded"), "{body}");
    let (status, body) = http(
        &s.http,
        "POST",
        "/collections/c/points/search",
        &s.token,
        r#"{"vector": [1, 2], "limit": 3}"#,
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let (status, body) = http(&s.http, "DELETE", "/collections/c", &s.token, "").await;
    assert_eq!(status, 503, "{body}");

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", s.grpc))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut client = pb::points_client::PointsClient::new(channel);
    let status = client
        .upsert(upsert(&s.token, 2, None))
        .await
        .expect_err("past the deadline");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");

    let _ = s.stop.send(());
    s.task.await.expect("join").expect("serve");
    assert_eq!(c.count(None).expect("count"), 0, "nothing was applied");
    assert!(
        e.collection(DEFAULT_TENANT, "c").is_ok(),
        "the drop was not applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_grpc_timeout_from_the_client_is_honoured() {
    let d = tempfile::tempdir().expect("tempdir");
    let (e, c) = engine(d.path());
    let s = start(Arc::clone(&e), "60s").await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", s.grpc))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut client = pb::points_client::PointsClient::new(channel);
    client
        .upsert(upsert(&s.token, 1, Some(Duration::from_secs(30))))
        .await
        .expect("in time");
    let status = client
        .upsert(upsert(&s.token, 2, Some(Duration::from_nanos(1))))
        .await
        .expect_err("a 1 ns deadline");
    assert!(
        matches!(
            status.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        "{status:?}"
    );
    let _ = s.stop.send(());
    s.task.await.expect("join").expect("serve");
    let ids: Vec<PointId> = c
        .scroll(&ScrollRequest {
            limit: 10,
            ..ScrollRequest::default()
        })
        .expect("scroll")
        .points
        .iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(
        ids,
        vec![PointId::Num(1)],
        "the timed-out write was not applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_batches_are_bounded() {
    let d = tempfile::tempdir().expect("tempdir");
    let (e, _c) = engine(d.path());
    let s = start(Arc::clone(&e), "60s").await;
    for (path, field) in [
        ("/collections/c/points/search/batch", "vector"),
        ("/collections/c/points/query/batch", "query"),
    ] {
        let batch = |n: usize| {
            let one = format!(r#"{{"{field}": [1, 2], "limit": 1}}"#);
            format!(r#"{{"searches": [{}]}}"#, vec![one; n].join(","))
        };
        let (status, text) = http(&s.http, "POST", path, &s.token, &batch(256)).await;
        assert_eq!(status, 200, "{path}: {text}");
        let (status, text) = http(&s.http, "POST", path, &s.token, &batch(257)).await;
        assert_eq!(status, 413, "{path}: {text}");
        assert!(
            text.contains("257 searches exceed the limit of 256"),
            "{text}"
        );
    }
    let _ = s.stop.send(());
    s.task.await.expect("join").expect("serve");
}
