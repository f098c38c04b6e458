//! Delivery end to end (issue 4, "Must show"): the real `lenscap run`
//! against a real `lenscap-collector` on 127.0.0.1, both as separate
//! processes, with every file in temporary directories.
//!
//! - `delivery/basic.rs`: the agent enrolls (token root-only, secret never
//!   logged) and delivers every event of its outbox, each stored exactly
//!   once with the same content; a batch posted twice is stored once; a
//!   gap shows only where an event was truly deleted before it was sent;
//!   HTTPS trusts the system's roots and nothing else.
//! - `delivery/outage.rs`: the collector stopped while the agent keeps
//!   producing events, then restarted: everything arrives, no gap; the
//!   agent kill -9'd in the middle of draining a 20,000-event backlog and
//!   started again: every event stored exactly once.
//! - `delivery/policy.rs`: a fleet deny rule and a catalog addition PUT on
//!   the collector reach the agent within its policy interval and turn a
//!   helper it allowed (or only reported) into a remediation finding; a
//!   policy the agent cannot apply is rejected and the previous one kept.
//! - `delivery/bench.rs`: the catch-up benchmark (ignored; docs/benchmarks.md,
//!   "## Agent delivery").

// Test code: a failed setup step is a failed test, and the message says why.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "delivery/basic.rs"]
mod basic;
#[path = "delivery/bench.rs"]
mod bench;
#[path = "delivery/outage.rs"]
mod outage;
#[path = "delivery/policy.rs"]
mod policy;

// The collector process and its API client, shared with the daemon tests.
#[path = "delivery/collector.rs"]
mod collector;
pub use collector::{Collector, get, http, stored_events};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lenscap::report::outbox::{HistoryFilter, OutboxReader};
use lenscap_e2e::write_config;
use lenscap_events::Event;
use serde_json::Value;

pub const ROGUE: &str = env!("CARGO_BIN_EXE_rogue-helper");

/// `GET /api/v1/hosts`: the one host this test's agent is.
pub fn host_row(c: &Collector, reader: &str) -> Value {
    let (status, body) = get(c, "/api/v1/hosts", reader);
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    let hosts: Vec<Value> = serde_json::from_value(page["hosts"].clone()).unwrap();
    assert_eq!(hosts.len(), 1, "{hosts:#?}");
    hosts.into_iter().next().unwrap()
}

/// A configuration for `lenscap run` in `root`, monitor mode, sweeping
/// every second, uploading to `collector_url` every second.
pub fn agent_config(
    root: &Path,
    collector_url: &str,
    secret: &str,
    extra: &[(&str, plist::Value)],
) -> PathBuf {
    let mut all: Vec<(&str, plist::Value)> = vec![
        ("Mode", "monitor".into()),
        ("SweepSeconds", 1.into()),
        ("CollectorURL", collector_url.into()),
        ("EnrollmentSecret", secret.into()),
        ("UploadIntervalSeconds", 1.into()),
        ("PolicyIntervalSeconds", 1.into()),
    ];
    all.extend(extra.iter().cloned());
    write_config(root, &all)
}

/// Every event in the agent's outbox, oldest first.
pub fn outbox_events(state: &Path) -> Vec<Event> {
    OutboxReader::open(state)
        .unwrap()
        .history(&HistoryFilter {
            limit: usize::MAX >> 1,
            ..HistoryFilter::default()
        })
        .unwrap()
}

pub fn pending(state: &Path) -> u64 {
    OutboxReader::open(state)
        .and_then(|r| r.stats())
        .map(|s| s.pending)
        .unwrap_or(u64::MAX)
}

/// Wait until the outbox has nothing pending and the collector holds as
/// many events as the outbox; return both, read as one consistent view
/// (the daemon may append a finding at any moment: every listener on the
/// machine is judged, other tests' helpers too).
pub fn wait_delivered(
    state: &Path,
    c: &Collector,
    reader: &str,
    timeout: Duration,
) -> (Vec<Event>, Vec<Value>) {
    let mut last = (0, 0);
    let deadline = Instant::now() + timeout;
    loop {
        if pending(state) == 0 {
            let outbox = outbox_events(state);
            let stored = stored_events(c, reader);
            if stored.len() == outbox.len() && pending(state) == 0 {
                return (outbox, stored);
            }
            last = (outbox.len(), stored.len());
        }
        assert!(
            Instant::now() < deadline,
            "not delivered within {timeout:?}: pending {}, outbox/stored {last:?}",
            pending(state)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every outbox event is stored once, with the same content (same hash),
/// and nothing else is stored.
pub fn assert_stored_exactly_once(outbox: &[Event], stored: &[Value]) {
    let mut by_uid: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for v in stored {
        let e: Event = serde_json::from_value(v.clone())
            .unwrap_or_else(|err| panic!("stored event does not parse ({err}): {v}"));
        by_uid.entry(e.uid.to_string()).or_default().push(e);
    }
    let dup: Vec<_> = by_uid.iter().filter(|(_, v)| v.len() > 1).collect();
    assert!(dup.is_empty(), "stored more than once: {dup:?}");
    for e in outbox {
        let got = by_uid
            .remove(&e.uid.to_string())
            .unwrap_or_else(|| panic!("seq {} ({}) was never stored", e.seq, e.uid));
        assert_eq!(
            got[0].hash().unwrap(),
            e.hash().unwrap(),
            "seq {} stored altered",
            e.seq
        );
    }
    assert!(
        by_uid.is_empty(),
        "stored but not in the outbox: {:?}",
        by_uid.keys()
    );
}

/// Seqs present in the outbox history: 1..=n with no hole (where the test
/// deleted nothing).
pub fn assert_contiguous(outbox: &[Event]) {
    for (i, e) in outbox.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1, "outbox history has a hole");
    }
}

/// A copy of the rogue helper at `exe`, serving HTTP on loopback with open
/// CORS until dropped; returns it and its port.
pub fn start_helper(exe: &Path, port_file: &Path) -> (lenscap_e2e::Proc, u16) {
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    std::fs::copy(ROGUE, exe).unwrap();
    let proc = lenscap_e2e::Proc::spawn(
        Command::new(exe)
            .args(["--cors", "star", "--port-file"])
            .arg(port_file)
            .stdout(Stdio::null()),
    );
    let port = lenscap_e2e::wait_for_file(port_file, Duration::from_secs(10))
        .parse()
        .unwrap();
    (proc, port)
}
