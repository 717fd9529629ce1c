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
            .map(|i| PointInput {
                id: PointId::Num(i),
                vector: vec![1.0, i as f32, 0.5],
                payload: None,
            })
            .collect(),
    )
    .expect("upsert");
    c.flush().expect("flush");
    c.upsert(vec![PointInput {
        id: PointId::Num(99),
        vector: vec![0.0, 1.0, 0.0],
        payload: None,
    }])
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
    let mut child = strata()
        .args([
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
        .arg(d.path())
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
    drop(out); // a closed stdout must not bring the server down
    std::thread::sleep(Duration::from_millis(200));
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
