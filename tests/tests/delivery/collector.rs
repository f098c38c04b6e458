//! A real `lenscap-collector serve` process on 127.0.0.1 for end-to-end
//! tests, and a small client for its API. Used by `delivery.rs` and
//! `daemon.rs` (`#[path]`).

// Each test binary uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lenscap_e2e::{collector_bin, wait_until};
use serde_json::Value;

/// A `lenscap-collector serve` on 127.0.0.1 with its SQLite file in `dir`.
/// Stopped (SIGTERM) when dropped.
#[derive(Debug)]
pub struct Collector {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    starts: u32,
    scheme: &'static str,
}

impl Collector {
    pub fn start(dir: &Path) -> Collector {
        Collector::start_with(dir, &[], "http")
    }

    /// With more `serve` options (`--tls-cert …`); `scheme` is the URL's.
    pub fn start_with(dir: &Path, extra: &[&str], scheme: &'static str) -> Collector {
        std::fs::create_dir_all(dir).unwrap();
        let mut c = Collector {
            child: None,
            port: 0,
            dir: dir.to_path_buf(),
            extra: extra.iter().map(|s| (*s).to_string()).collect(),
            starts: 0,
            scheme,
        };
        c.serve();
        c
    }

    pub fn db(&self) -> String {
        format!("sqlite:{}", self.dir.join("collector.db").display())
    }

    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    /// Serve on `self.port` (0 the first time: any free port), and wait
    /// until it says where it listens.
    fn serve(&mut self) {
        self.starts += 1;
        let log = self.dir.join(format!("collector-{}.log", self.starts));
        let err = std::fs::File::create(&log).unwrap();
        let child = Command::new(collector_bin())
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--db", &self.db()])
            .args(&self.extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn lenscap-collector");
        self.child = Some(child);
        let line = wait_until(Duration::from_secs(30), "the collector listening", || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("lenscap-collector exited ({status}):\n{text}");
            }
            // Only a whole line: stderr is unbuffered, so the line may be
            // read half written.
            text.split_inclusive('\n')
                .filter_map(|l| l.strip_suffix('\n'))
                .find_map(|l| l.strip_prefix("lenscap-collector listening on "))
                .map(str::to_string)
        });
        let port: u16 = line
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        self.port = port;
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own unreaped child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Serve again on the same port and database.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        self.serve();
    }

    /// `lenscap-collector token create --role ROLE` on this database.
    pub fn token(&self, role: &str) -> String {
        let out = Command::new(collector_bin())
            .args(["token", "create", "--role", role, "--db", &self.db()])
            .stdin(Stdio::null())
            .output()
            .expect("run token create");
        assert!(
            out.status.success(),
            "token create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A plain-HTTP client for the collector's API, as a reader or admin.
pub fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

/// `GET path` with `token`: status and body.
pub fn get(c: &Collector, path: &str, token: &str) -> (u16, String) {
    let mut resp = http()
        .get(format!("{}{path}", c.url()))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .unwrap();
    (status, body)
}

/// Every event the collector stored, as stored (the NDJSON export).
pub fn stored_events(c: &Collector, reader: &str) -> Vec<Value> {
    let (status, body) = get(c, "/api/v1/export.ndjson", reader);
    assert_eq!(status, 200, "{body}");
    body.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}
