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

mod common;

use common::{Collector, Db, chain, host};
use lenscap_collector::store::Role;

on_both_databases! {
    host_and_token_commands_work_on_the_store_serve_uses => admin_commands;
}

/// `lenscap-collector ARGS --db URL`: (success, stdout, stderr).
fn run(db: &Db, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .args(["--db", &db.url])
        .env("RUST_LOG", "warn")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    // The docs quote this output (docs/api.md).
    eprintln!("$ lenscap-collector {}\n{stdout}{stderr}", args.join(" "));
    (out.status.success(), stdout, stderr)
}

fn admin_commands(db: &Db) {
    // `serve` is running on the database while the admin works on it.
    let c = Collector::start(db);
    let enroll = c.token(Role::Enroll);
    let mac = host("mac-cli");
    let key_a = "a".repeat(64);
    let key_b = "b".repeat(64);
    let (s, v) = c.try_enroll(&enroll, &mac, Some(&key_a));
    assert_eq!(s, 200, "{v}");
    let old_token = v["token"].as_str().unwrap().to_string();
    let (s, v) = c.try_enroll(&enroll, &mac, Some(&key_b));
    assert_eq!(s, 409, "{v}");
    let request = v["request_id"].as_i64().unwrap().to_string();

    let (ok, out, _) = run(db, &["host", "pending"]);
    assert!(ok);
    let row = out
        .lines()
        .find(|l| l.starts_with(&format!("{request} ")))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains("held") && row.contains("mac-cli") && row.contains("127.0.0.1"),
        "{row}"
    );
    assert!(out.contains("host approve HOST"), "{out}");
    let (ok, out, _) = run(db, &["host", "list"]);
    assert!(ok && out.contains("mac-cli"), "{out}");

    let (ok, out, _) = run(db, &["host", "approve", "mac-cli"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("approved request {request}")),
        "{out}"
    );
    assert_eq!(c.send(&old_token, &chain(&mac, 1)).0, 401);
    let (s, v) = c.try_enroll(&enroll, &mac, Some(&key_b));
    assert_eq!(s, 200, "{v}");
    let new_token = v["token"].as_str().unwrap().to_string();
    assert_eq!(c.send(&new_token, &chain(&mac, 1)).0, 200);
    let (ok, out, _) = run(db, &["host", "pending"]);
    assert!(ok && out.contains("no enrolment waiting"), "{out}");

    let (ok, out, _) = run(db, &["token", "list", "--all"]);
    assert!(ok);
    for t in [&enroll, &old_token, &new_token] {
        assert!(!out.contains(t.as_str()), "a token was printed: {out}");
    }
    assert!(out.starts_with("ID "), "{out}");
    let (ok, out, _) = run(db, &["token", "revoke", "mac-cli"]);
    assert!(ok && out.contains("revoked 1 token(s) of host"), "{out}");
    assert_eq!(c.send(&new_token, &chain(&mac, 2)[1..]).0, 401);

    let (ok, _, err) = run(db, &["token", "revoke", "mac-nobody"]);
    assert!(!ok);
    assert!(err.contains("token list"), "{err}");
    let (ok, _, err) = run(db, &["host", "approve", "mac-cli"]);
    assert!(!ok);
    assert!(err.contains("no enrolment waiting"), "{err}");

    // chain(…, 1) is one finding about ZoomOpener: one incident, derived
    // again from the stored events.
    let (ok, out, _) = run(db, &["incidents", "rebuild"]);
    assert!(ok, "{out}");
    assert!(out.contains("1 stored events queued"), "{out}");
    let reader = c.token(Role::Reader);
    let list = c.get_json("/api/v1/incidents?host=mac-cli", &reader);
    assert_eq!(list["incidents"].as_array().unwrap().len(), 1, "{list}");
}

#[test]
fn every_command_and_serve_option_is_in_docs_api_md() {
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md")).unwrap();
    let help = |args: &[&str]| {
        let out = Command::new(BIN).args(args).arg("--help").output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    for word in help(&["serve"]).split_whitespace() {
        let flag = word.trim_end_matches(',');
        if flag.starts_with("--") && flag != "--help" {
            assert!(docs.contains(flag), "docs/api.md lacks {flag}");
        }
    }
    for cmd in [
        "token create",
        "token list",
        "token revoke",
        "host list",
        "host pending",
        "host approve",
        "host refuse",
        "incidents rebuild",
    ] {
        let args: Vec<&str> = cmd.split(' ').collect();
        help(&args);
        assert!(docs.contains(cmd), "docs/api.md lacks `{cmd}`");
    }
}

/// `alert add|list|test|remove` as an administrator runs them: a made
/// secret printed once, refusals that say why, a test to a receiver that
/// is not there reported as not delivered, exit statuses that tell.
#[test]
fn alert_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("c.db").display());
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = vec!["alert"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--db", &db]);
        let out = Command::new(BIN).args(&all).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // A port let go at once, so nothing answers there: `alert test` must
    // fail and say so.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/hook");
    let (ok, out, err) = run(&[
        "add",
        "siem",
        "--webhook",
        &url,
        "--min-severity",
        "critical",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("alert destination siem added"), "{out}");
    let secret = out.trim().rsplit(' ').next().unwrap();
    assert_eq!(secret.len(), 64, "{out}");
    // The secret is shown once: not by list.
    let (ok, out, err) = run(&["list"]);
    assert!(ok, "{err}");
    assert!(out.contains("siem\twebhook\t"), "{out}");
    assert!(out.contains("severity >= critical"), "{out}");
    assert!(!out.contains(secret), "{out}");
    // Refused, with the reason.
    let (ok, _, err) = run(&["add", "x", "--webhook", "http://siem.example/hook"]);
    assert!(!ok);
    assert!(err.contains("use https"), "{err}");
    let (ok, _, err) = run(&["add", "x", "--webhook", &url, "--secret", "short"]);
    assert!(!ok);
    assert!(err.contains("secret is too short"), "{err}");
    let (ok, _, err) = run(&["add", "x", "--syslog", "udp://127.0.0.1:514"]);
    assert!(!ok);
    assert!(err.contains("tcp://host:port"), "{err}");
    let (ok, _, err) = run(&["add", "x"]);
    assert!(!ok);
    assert!(err.contains("--webhook"), "{err}");
    let (ok, _, err) = run(&["test", "siem"]);
    assert!(!ok);
    assert!(err.contains("test alert to siem not delivered"), "{err}");
    let (ok, out, err) = run(&["remove", "siem"]);
    assert!(ok, "{err}");
    assert!(out.contains("removed"), "{out}");
    let (ok, _, err) = run(&["remove", "siem"]);
    assert!(!ok);
    assert!(err.contains("no alert destination named"), "{err}");
}
