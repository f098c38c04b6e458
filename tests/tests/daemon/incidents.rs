//! The collector's incidents from a real agent: `lenscap run` contains
//! the rogue helper and delivers to a real `lenscap-collector` on
//! 127.0.0.1, which groups what it was told into one incident — the
//! listener and persistence findings and every plan step, `contained`;
//! `lenscap quarantine restore` makes the same incident `restored`; in
//! monitor mode it is `would_do`.
//!
//! Other tests' helpers on this machine may be judged too, so the test
//! looks only at incidents about its own helper (its port or its files).

use std::time::Duration;

use lenscap_e2e::wait_until;
use serde_json::Value;

use super::Scenario;
use super::collector::{Collector, get};

/// A scenario whose daemon delivers to `c` every second.
fn scenario(mode: &str, c: &Collector) -> Scenario {
    Scenario::new(
        mode,
        &[
            ("CollectorURL", c.url().into()),
            ("EnrollmentSecret", c.token("enroll").into()),
            ("UploadIntervalSeconds", 1.into()),
        ],
    )
}

/// The incidents whose events name the scenario's helper (its listener's
/// port, its plist or its folder), each with its events.
fn helper_incidents(
    c: &Collector,
    reader: &str,
    s: &Scenario,
    port: u16,
) -> Vec<(Value, Vec<Value>)> {
    let (status, body) = get(c, "/api/v1/incidents?limit=500", reader);
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    let plist = s.plist.to_str().unwrap();
    let folder = s.folder.to_str().unwrap();
    let mut out = Vec::new();
    for inc in page["incidents"].as_array().unwrap() {
        let (status, body) = get(c, &format!("/api/v1/incidents/{}", inc["id"]), reader);
        assert_eq!(status, 200, "{body}");
        let detail: Value = serde_json::from_str(&body).unwrap();
        let events = detail["events"].as_array().unwrap().clone();
        let ours = events.iter().any(|e| {
            let text = e.to_string();
            e["payload"]["finding"]["listener"]["port"].as_u64() == Some(u64::from(port))
                || text.contains(plist)
                || text.contains(folder)
        });
        if ours {
            out.push((detail["incident"].clone(), events));
        }
    }
    out
}

fn uids(events: &[&Value]) -> std::collections::BTreeSet<String> {
    events
        .iter()
        .map(|e| e["uid"].as_str().unwrap().to_string())
        .collect()
}

fn finding_kinds(events: &[Value]) -> std::collections::BTreeSet<String> {
    events
        .iter()
        .filter(|e| e["kind"] == "detection_finding")
        .filter_map(|e| e["payload"]["finding"]["kind"].as_str())
        .map(str::to_string)
        .collect()
}

#[test]
fn a_contained_helper_is_one_incident_then_restored() {
    let s_dir = tempfile::tempdir().unwrap();
    let c = Collector::start(s_dir.path());
    let reader = c.token("reader");
    let s = scenario("remediate", &c);
    let port: u16 = std::fs::read_to_string(&s.port_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut d = s.start_daemon();
    s.wait_gone(s.pid, Duration::from_secs(10), &d);
    let plan = wait_until(Duration::from_secs(10), "the plan finished", || {
        s.plans().into_iter().find(|p| p["finished"] == true)
    });

    // Every step the agent took, as it recorded them.
    let steps_sent = |s: &Scenario| {
        let events = s.events();
        uids(&super::remediation_events(&events))
    };
    let (incident, events) = wait_until(
        Duration::from_secs(30),
        "one contained incident holding every step",
        || {
            let want = steps_sent(&s);
            let found = helper_incidents(&c, &reader, &s, port);
            let [(inc, events)] = found.as_slice() else {
                return None;
            };
            let got = uids(&events.iter().collect::<Vec<_>>());
            (inc["state"] == "contained"
                && !want.is_empty()
                && want.is_subset(&got)
                && finding_kinds(events).len() == 2)
                .then(|| (inc.clone(), events.clone()))
        },
    );
    assert_eq!(
        finding_kinds(&events),
        ["listener", "persistence"].map(String::from).into()
    );
    assert_eq!(incident["integrity"], "ok", "{incident:#}");
    assert_eq!(incident["verdict"], "remediate", "{incident:#}");
    let title = incident["title"].as_str().unwrap();
    assert!(
        title.contains(&format!("127.0.0.1:{port}"))
            && title.ends_with("contained and quarantined"),
        "{title}"
    );
    assert_eq!(
        incident["steps_done"].as_u64().unwrap() as usize,
        super::remediation_events(&s.events()).len(),
        "{incident:#}"
    );
    assert_eq!(incident["steps_failed"], 0, "{incident:#}");

    // `quarantine restore`: the agent reports it, and the same incident
    // is now restored (no new incident).
    let record = plan["id"].as_str().map(str::to_string);
    let id = s
        .quarantine_list()
        .into_iter()
        .find(|r| r["state"] == "quarantined")
        .and_then(|r| r["id"].as_str().map(str::to_string))
        .or(record)
        .expect("a quarantine record");
    s.lenscap(&["quarantine", "restore", &id]);
    let restored = wait_until(Duration::from_secs(30), "the incident restored", || {
        let found = helper_incidents(&c, &reader, &s, port);
        found
            .iter()
            .find(|(inc, _)| inc["state"] == "restored")
            .map(|(inc, _)| (inc.clone(), found.len()))
    });
    assert_eq!(restored.0["id"], incident["id"], "{:#}", restored.0);
    assert_eq!(restored.1, 1, "the restore started no incident of its own");
    d.stop();
}

#[test]
fn monitor_mode_is_would_do() {
    let s_dir = tempfile::tempdir().unwrap();
    let c = Collector::start(s_dir.path());
    let reader = c.token("reader");
    let s = scenario("monitor", &c);
    let port: u16 = std::fs::read_to_string(&s.port_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut d = s.start_daemon();
    let incident = wait_until(Duration::from_secs(30), "a would-do incident", || {
        let found = helper_incidents(&c, &reader, &s, port);
        let [(inc, events)] = found.as_slice() else {
            return None;
        };
        (inc["state"] == "would_do" && finding_kinds(events).len() == 2).then(|| inc.clone())
    });
    assert_eq!(incident["steps_done"], 0, "{incident:#}");
    assert!(
        incident["steps_would_do"].as_u64().unwrap() >= 4,
        "{incident:#}"
    );
    assert!(
        incident["title"]
            .as_str()
            .unwrap()
            .ends_with("would be contained (monitor mode)"),
        "{incident:#}"
    );
    d.stop();
}
