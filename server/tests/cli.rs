//! The `strata` binary end to end: `check` and `serve` on real data directories.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use strata_engine::*;

fn strata() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.env_remove("STRATA_DATA_DIR");
    c
}

/// `strata serve` on loopback and free ports, over `dir`.
fn serve(dir: &std::path::Path) -> Command {
    let mut c = strata();
    c.args([
        "serve",
        "--bind",
        "127.0.0.1",
        "--http-port",
        "0",
        "--grpc-port",
        "0",
        "--metrics-port",
        "0",
        "--data-dir",
    ])
    .arg(dir);
    c
}

fn seed(dir: &std::path::Path) {
    let mut o = EngineOptions::new(dir);
    o.background = false;
    let e = Engine::open(o).expect("open");
    let c = e
        .create_collection(
            DEFAULT_TENANT,
            "docs",
            CollectionConfig::new(3, Distance::Cosine),
        )
        .expect("create");
    c.upsert(
        (0..20)
            .map(|i| PointInput::new(PointId::Num(i), vec![1.0, i as f32, 0.5], None))
            .collect(),
    )
    .expect("upsert");
    c.flush().expect("flush");
    c.upsert(vec![PointInput::new(
        PointId::Num(99),
        vec![0.0, 1.0, 0.0],
        None,
    )])
    .expect("upsert");
}

#[test]
fn check_reports_a_fresh_and_a_seeded_directory() {
    let d = tempfile::tempdir().expect("tempdir");
    let out = strata()
        .args(["check", "--data-dir"])
        .arg(d.path())
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    seed(d.path());
    let out = strata()
        .arg("check")
        .env("STRATA_DATA_DIR", d.path())
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["collections"][0]["points"], 21);
    assert_eq!(report["collections"][0]["segments"], 1);
    assert_eq!(report["recovery"]["wal_records_replayed"], 1);
}

#[test]
fn check_fails_on_a_corrupted_segment_and_names_it() {
    let d = tempfile::tempdir().expect("tempdir");
    seed(d.path());
    let seg = std::fs::read_dir(d.path().join("segments"))
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .expect("a segment");
    let mut b = std::fs::read(&seg).expect("read");
    let n = b.len();
    b[n - 3] ^= 1;
    std::fs::write(&seg, b).expect("write");
    let out = strata()
        .args(["check", "--data-dir"])
        .arg(d.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&seg.display().to_string()) && err.contains("byte offset"),
        "{err}"
    );
}

#[test]
fn serve_recovers_then_stops_cleanly_on_sigterm() {
    let d = tempfile::tempdir().expect("tempdir");
    seed(d.path());
    let mut child = serve(d.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("report line");
    let report: serde_json::Value = serde_json::from_str(&line).expect("JSON report");
    assert_eq!(report["collections"][0]["points"], 21);
    // First start: a secret is generated (mode 0600) and an admin token printed; then the ports.
    let mut rest = String::new();
    while !rest.contains("\"listening\"") {
        let mut l = String::new();
        assert!(
            out.read_line(&mut l).expect("line") > 0,
            "serve exited early: {rest}"
        );
        rest.push_str(&l);
    }
    assert!(rest.contains("admin token"), "{rest}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.path().join("jwt-secret"))
        .expect("secret")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(d.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the secret is written atomically: {leftovers:?}"
    );
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = child.wait().expect("wait");
    assert!(status.success(), "exit status {status}");
    // It flushed on the way out: nothing left to replay.
    let out = strata()
        .args(["check", "--data-dir"])
        .arg(d.path())
        .output()
        .expect("run");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["recovery"]["wal_records_replayed"], 0);
    assert_eq!(report["collections"][0]["points"], 21);
}

#[test]
fn a_bad_setting_is_named() {
    let d = tempfile::tempdir().expect("tempdir");
    let out = strata()
        .args(["serve", "--data-dir"])
        .arg(d.path())
        .env("STRATA_WAL_ACK", "sometimes")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("STRATA_WAL_ACK"));
}

#[test]
fn serve_validate_accepts_good_and_names_bad_settings() {
    let d = tempfile::tempdir().expect("tempdir");
    let secret = "s".repeat(40);
    let out = strata()
        .args(["serve", "--validate", "--data-dir"])
        .arg(d.path())
        .env("STRATA_JWT_SECRET", &secret)
        .env("STRATA_HTTP_PORT", "18080")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON config");
    assert_eq!(shown["http_port"], 18080);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&secret),
        "the secret is hidden"
    );

    let bad = |envs: &[(&str, &str)], args: &[&str], needle: &str| {
        let mut c = strata();
        c.args(["serve", "--validate", "--data-dir"])
            .arg(d.path())
            .args(args);
        for (k, v) in envs {
            c.env(k, v);
        }
        let out = c.output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "should fail: {envs:?} {args:?}");
        assert!(err.contains(needle), "{err} should name {needle}");
    };
    bad(
        &[("STRATA_HTTP_PORT", "eighty")],
        &[],
        "STRATA_HTTP_PORT (http_port)",
    );
    bad(&[("STRATA_JWT_SECRET", "short")], &[], "STRATA_JWT_SECRET");
    bad(&[("STRATA_LOG_FORMAT", "xml")], &[], "STRATA_LOG_FORMAT");
    bad(&[], &["--http-port", "50051"], "STRATA_GRPC_PORT");
    let toml = d.path().join("strata.toml");
    std::fs::write(&toml, "http_prot = 1\n").expect("write");
    bad(
        &[],
        &["--config", toml.to_str().expect("utf8")],
        "http_prot",
    );
    let not_a_key = d.path().join("key.pem");
    std::fs::write(&not_a_key, "hello").expect("write");
    bad(
        &[],
        &["--jwt-public-keys", not_a_key.to_str().expect("utf8")],
        "STRATA_JWT_PUBLIC_KEYS",
    );
}

/// Spawns `strata serve` on free ports with its stdout a pipe whose reader is already gone
/// (every print fails with EPIPE); returns the child and the HTTP address, read from the JSON
/// "listening" log line on stderr.
// The child is returned to the caller, which waits for it.
#[allow(clippy::zombie_processes)]
fn spawn_serve_with_closed_stdout(dir: &std::path::Path) -> (std::process::Child, String) {
    let mut child = serve(dir)
        .args(["--log-format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take()); // closed before the server wrote anything
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut seen = String::new();
    loop {
        let mut l = String::new();
        if err.read_line(&mut l).expect("line") == 0 {
            let status = child.wait().expect("wait");
            panic!("serve died ({status}) with its stdout closed: {seen}");
        }
        seen.push_str(&l);
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&l)
            && v["fields"]["message"] == "listening"
        {
            let http = v["fields"]["http"]
                .as_str()
                .expect("http address")
                .to_string();
            // Keep draining stderr so the server never blocks on a full pipe.
            std::thread::spawn(move || {
                let mut sink = String::new();
                while err.read_line(&mut sink).unwrap_or(0) > 0 {
                    sink.clear();
                }
            });
            return (child, http);
        }
    }
}

/// One HTTP/1.1 request; returns (status, body).
fn http(addr: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let auth = token
        .map(|t| format!("api-key: {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let status = out[9..12].parse().expect("status");
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn a_closed_stdout_does_not_bring_the_server_down() {
    // The server prints its recovery report, the first-start token and its ports on stdout;
    // whoever started it may have closed that pipe first. Every print then fails, and the
    // server must still come up (it generates a secret and prints a token on this first
    // start), serve requests, and stop cleanly.
    let d = tempfile::tempdir().expect("tempdir");
    seed(d.path());
    let (mut child, addr) = spawn_serve_with_closed_stdout(d.path());
    let (status, body) = http(&addr, "GET", "/health/ready", None, "");
    assert_eq!(status, 200, "{body}");
    let token = strata()
        .args(["token", "--access", "r", "--data-dir"])
        .arg(d.path())
        .output()
        .expect("token");
    let token = String::from_utf8_lossy(&token.stdout).trim().to_string();
    let (status, body) = http(
        &addr,
        "POST",
        "/collections/docs/points/count",
        Some(&token),
        "{}",
    );
    assert_eq!(
        (status, body.contains("\"count\":21")),
        (200, true),
        "{body}"
    );
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = child.wait().expect("wait");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn an_empty_or_short_secret_is_refused_wherever_it_comes_from() {
    // The defect: an empty DATA_DIR/jwt-secret was accepted as the HS256 key, so a token
    // signed with the empty key was valid for any tenant.
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().expect("tempdir");
    let secret = d.path().join("jwt-secret");
    for content in ["", "\n", "short-secret"] {
        std::fs::write(&secret, content).expect("write");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        for args in [&["serve", "--validate"][..], &["token"][..], &["serve"][..]] {
            let out = strata()
                .args(args)
                .args([
                    "--http-port",
                    "0",
                    "--grpc-port",
                    "0",
                    "--metrics-port",
                    "0",
                    "--data-dir",
                ])
                .arg(d.path())
                .output()
                .expect("run");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?} accepted {content:?}");
            assert!(
                err.contains("shorter than 32") && err.contains(&secret.display().to_string()),
                "{args:?}: {err}"
            );
        }
    }
    let file = d.path().join("given-secret");
    std::fs::write(&file, "").expect("write");
    let out = strata()
        .args(["serve", "--validate", "--jwt-secret-file"])
        .arg(&file)
        .arg("--data-dir")
        .arg(d.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("STRATA_JWT_SECRET_FILE"));
}

#[test]
fn a_secret_file_readable_by_others_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().expect("tempdir");
    let secret = d.path().join("jwt-secret");
    std::fs::write(&secret, "x".repeat(64)).expect("write");
    for (mode, warned) in [(0o644, true), (0o640, true), (0o600, false), (0o400, false)] {
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let out = strata()
            .args(["serve", "--validate", "--data-dir"])
            .arg(d.path())
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.contains("wider than 0600"),
            warned,
            "mode {mode:o}: {err}"
        );
    }
}

#[test]
fn check_reports_damage_inside_the_wal_and_changes_nothing() {
    let d = tempfile::tempdir().expect("tempdir");
    seed(d.path());
    {
        let mut o = EngineOptions::new(d.path());
        o.background = false;
        let e = Engine::open(o).expect("open");
        let c = e.collection(DEFAULT_TENANT, "docs").expect("docs");
        for i in 0..5u64 {
            c.upsert(vec![PointInput::new(
                PointId::Num(100 + i),
                vec![1.0, 2.0, i as f32],
                None,
            )])
            .expect("upsert");
        }
    }
    let wal = std::fs::read_dir(d.path().join("wal"))
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .max()
        .expect("a wal file");
    let mut bytes = std::fs::read(&wal).expect("read");
    // The third record's length field: header 32 bytes, then frames of equal size.
    let frame = (bytes.len() - 32) / 5;
    let at = 32 + 2 * frame;
    bytes[at..at + 4].copy_from_slice(&(frame as u32 + 40).to_le_bytes());
    std::fs::write(&wal, &bytes).expect("write");
    let listing = |p: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_dir(p.join("wal"))
            .expect("ls")
            .chain(std::fs::read_dir(p.join("segments")).expect("ls"))
            .map(|e| e.expect("entry").path().display().to_string())
            .collect();
        v.sort();
        v
    };
    let before = listing(d.path());
    let out = strata()
        .args(["check", "--data-dir"])
        .arg(d.path())
        .output()
        .expect("run");
    assert!(!out.status.success(), "check must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&wal.display().to_string()) && err.contains(&format!("byte offset {at}")),
        "{err}"
    );
    assert!(err.contains("not a torn tail"), "{err}");
    assert_eq!(
        std::fs::read(&wal).expect("read"),
        bytes,
        "check cut nothing"
    );
    assert_eq!(
        listing(d.path()),
        before,
        "check created or removed nothing"
    );
    // And the server refuses to start on it rather than serving without those writes.
    let out = strata()
        .args([
            "serve",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
            "--metrics-port",
            "0",
            "--data-dir",
        ])
        .arg(d.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a torn tail"));
}
