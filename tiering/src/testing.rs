//! Test support shared by the workspace's tests: a fresh local S3 server (moto) per test.
//!
//! `scripts/test.sh` installs `moto[server]` into the test venv and exports
//! `STRATA_TEST_PYTHON` (that venv's interpreter); without it, `python3` is tried. A test that
//! needs S3 and finds no moto fails with a message saying how to get it — it is never skipped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::object::ColdConfig;

/// A moto S3 server on 127.0.0.1, killed on drop. Everything it holds is in its RAM.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Starts moto on a free port and waits until it answers.
    pub fn start() -> Moto {
        let python = std::env::var("STRATA_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new(&python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {python} for the S3 test server ({e}): run ./scripts/test.sh, or set STRATA_TEST_PYTHON to a Python with moto[server]")
            });
        let mut m = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = m.child.try_wait() {
                panic!(
                    "the S3 test server exited ({status}): is moto[server] installed for {python}? Run ./scripts/test.sh, or set STRATA_TEST_PYTHON"
                );
            }
            if m.request("GET", "/")
                .is_ok_and(|s| s.starts_with("HTTP/1.1 200"))
            {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "the S3 test server did not answer within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn request(&self, method: &str, path: &str) -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    /// Creates `bucket` (names of at least 3 characters).
    pub fn create_bucket(&self, bucket: &str) {
        let r = self
            .request("PUT", &format!("/{bucket}"))
            .expect("PUT bucket");
        assert!(
            r.starts_with("HTTP/1.1 200"),
            "creating bucket {bucket}: {r}"
        );
    }

    /// A cold-store configuration for `s3://{bucket}/{prefix}` on this server (any
    /// credentials: moto does not check signatures).
    pub fn config(&self, bucket: &str, prefix: &str) -> ColdConfig {
        let mut c = ColdConfig::new(format!("s3://{bucket}/{prefix}"));
        c.s3_endpoint = Some(self.endpoint());
        c.s3_region = Some("us-east-1".into());
        c.s3_access_key_id = Some("testing-key-id".into());
        c.s3_secret_access_key = Some("testing-secret-key".into());
        c.s3_allow_http = true;
        c.request_timeout = Duration::from_secs(20);
        c
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
