//! The `lenscap-collector` binary as an administrator runs it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_lenscap-collector");

#[test]
fn token_create_prints_a_token_and_stores_only_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("c.db").display());
    let out = Command::new(BIN)
        .args(["token", "create", "--role", "reader", "--db", &db])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        token.starts_with("lc_reader_") && token.len() == 74,
        "{token}"
    );
    let file = std::fs::read(dir.path().join("c.db")).unwrap();
    let wal = std::fs::read(dir.path().join("c.db-wal")).unwrap_or_default();
    let needle = token.as_bytes();
    for bytes in [&file, &wal] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "token stored in clear"
        );
    }
    // A role that does not exist is refused by name.
    let out = Command::new(BIN)
        .args(["token", "create", "--role", "root", "--db", &db])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("enroll"));
}

#[test]
fn serve_refuses_plain_http_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("c.db").display());
    let out = Command::new(BIN)
        .args(["serve", "--listen", "0.0.0.0:0", "--db", &db])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--insecure-http") && err.contains("--tls-cert"),
        "{err}"
    );
    // Refused before touching the database.
    assert!(!dir.path().join("c.db").exists());
}

#[test]
fn serve_starts_answers_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("c.db").display());
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--db", &db])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("collector exited before listening")
            .unwrap();
        if let Some(rest) = line.strip_prefix("lenscap-collector listening on ") {
            break rest.to_string();
        }
    };
    let mut resp = ureq::get(format!("{base}/healthz")).call().unwrap();
    assert_eq!(resp.body_mut().read_to_string().unwrap(), "ok\n");
    // SAFETY: kill(2) with our own child's pid and a valid signal number
    // touches no memory of ours.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
