//! Incidents and untrusted-event marks against a real collector on
//! 127.0.0.1, on SQLite and (with LENSCAP_TEST_POSTGRES_URL) PostgreSQL:
//! one contained helper is one incident holding its findings and every
//! step; a restore makes it `restored`; monitor mode makes it `would_do`;
//! a forged event (a reused seq under a new uid) is marked in the events
//! API, both exports, the incident and its state; rebuilding derives the
//! same incidents again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Collector, Db, host};
use lenscap_collector::store::Role;
use lenscap_events::{
    Action, Body, Event, FindingActivity, FindingKind, Host, Mode, OutcomeStatus,
    RemediationActivity, Sha256Hex, samples,
};

on_both_databases! {
    a_contained_helper_is_one_incident => contained_helper_is_one_incident;
    monitor_mode_is_would_do => monitor_mode_is_would_do;
    a_forged_event_is_marked_everywhere => forged_event_is_marked_everywhere;
    incidents_page_and_filter => incidents_page_and_filter;
    camera_sessions_and_grants_join_the_helpers_incident => camera_joins_the_helper;
}

const BUNDLE: &str = "/Users/jdoe/.zoomus/ZoomOpener.app";

/// What a real agent sends when it contains ZoomOpener: the listener and
/// login-item findings, the plan's steps (which, like the agent's, name
/// what they touched and their plan, not the finding), the findings
/// closing, and health events around them. Steps are `would_do` in
/// monitor mode.
fn story(mode: Mode, plan: &str) -> Vec<Body> {
    let would = mode == Mode::Monitor;
    let listener = samples::zoom_finding(
        lenscap_events::Verdict::Remediate,
        Some("catalog:zoom-opener"),
    );
    let mut login_item = listener.clone();
    login_item.finding_info.uid = format!("persistence:login_item:{BUNDLE}");
    login_item.finding.kind = FindingKind::Persistence;
    login_item.finding.listener = None;
    login_item.finding.http = None;
    login_item.finding.process = None;
    let step = |action: Action, path: Option<&str>, label: Option<&str>| {
        let mut k = samples::kill_zoom(would);
        k.action = action;
        k.finding_uid = None;
        k.command_uid = Some(plan.to_string());
        if let Some(p) = path {
            k.target.path = Some(p.to_string());
        }
        k.target.launchd_label = label.map(str::to_string);
        Body::ProcessRemediation(k)
    };
    let file = |action: Action, path: &str| {
        let mut q = samples::quarantine_zoom();
        q.action = action;
        q.finding_uid = None;
        q.command_uid = Some(plan.to_string());
        q.target.path = path.to_string();
        if would {
            q.would_do = true;
            q.outcome.status = OutcomeStatus::NotAttempted;
        }
        Body::FileRemediation(q)
    };
    let mut out = vec![
        Body::AgentHealth(samples::started()),
        Body::DetectionFinding(Box::new(listener.clone())),
        Body::DetectionFinding(Box::new(login_item.clone())),
        step(Action::StopJob, None, Some("ZoomOpener")),
        step(Action::KillProcess, None, None),
        file(Action::QuarantineFile, BUNDLE),
        file(
            Action::QuarantineFile,
            "/Users/jdoe/Library/Application Support/ZoomOpener/helper.plist",
        ),
        file(Action::GuardPath, BUNDLE),
        file(Action::GuardPath, "/Users/jdoe/.zoomus"),
    ];
    if !would {
        let mut closed = listener;
        closed.activity = FindingActivity::Close;
        let mut closed_item = login_item;
        closed_item.activity = FindingActivity::Close;
        out.push(Body::DetectionFinding(Box::new(closed)));
        out.push(Body::DetectionFinding(Box::new(closed_item)));
    }
    out.push(Body::AgentHealth(samples::started()));
    out
}

/// Events `first_seq..` of `h` from `bodies`, chained after `prev`.
fn events(h: &Host, mode: Mode, first_seq: u64, prev: Sha256Hex, bodies: Vec<Body>) -> Vec<Event> {
    let t0 = 1_764_312_000_000;
    let mut out: Vec<Event> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            let seq = first_seq + i as u64;
            samples::event(h, seq, t0 + seq as i64 * 1000, mode, b)
        })
        .collect();
    samples::link(&mut out, prev);
    out
}

/// Wait until every stored event has been grouped.
fn settle(c: &Collector) {
    let store = c.store();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pending = c.block_on(store.incidents_pending()).unwrap();
        if pending == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{pending} events never grouped");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn incidents(c: &Collector, reader: &str, query: &str) -> Vec<serde_json::Value> {
    settle(c);
    let page = c.get_json(&format!("/api/v1/incidents?{query}"), reader);
    page["incidents"].as_array().unwrap().clone()
}

fn contained_helper_is_one_incident(db: &Db) {
    let c = Collector::start(db);
    let h = host("mac-contained");
    let token = c.enroll(&h);
    let reader = c.token(Role::Reader);
    let sent = events(
        &h,
        Mode::Remediate,
        1,
        Sha256Hex::genesis(),
        story(Mode::Remediate, "plan-1"),
    );
    let n = sent.len() as u64;
    assert_eq!(c.send(&token, &sent).0, 200);

    let list = incidents(&c, &reader, "host=mac-contained");
    assert_eq!(list.len(), 1, "{list:#?}");
    let inc = &list[0];
    assert_eq!(inc["state"], "contained", "{inc}");
    assert_eq!(inc["integrity"], "ok", "{inc}");
    assert_eq!(inc["severity"], "critical");
    assert_eq!(inc["findings"], 2);
    assert_eq!(inc["open_findings"], 0);
    assert_eq!(inc["steps_done"], 6);
    assert_eq!(
        inc["title"],
        "ZoomOpener, a hidden web server on 127.0.0.1:19421, contained and quarantined"
    );
    // Every event but the two health events, in the host's order.
    let detail = c.get_json(&format!("/api/v1/incidents/{}", inc["id"]), &reader);
    let seqs: Vec<u64> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (2..n).collect::<Vec<_>>());
    assert_eq!(detail["incident"]["id"], inc["id"]);

    // `quarantine restore` puts the bundle back: the same incident,
    // now restored.
    let prev = sent.last().unwrap().hash().unwrap();
    let mut restore = samples::quarantine_zoom();
    restore.activity = RemediationActivity::Restore;
    restore.action = Action::RestoreFile;
    restore.finding_uid = None;
    restore.command_uid = Some("restore-1".into());
    let more = events(
        &h,
        Mode::Remediate,
        n + 1,
        prev,
        vec![Body::FileRemediation(restore)],
    );
    assert_eq!(c.send(&token, &more).0, 200);
    let list = incidents(&c, &reader, "host=mac-contained");
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0]["state"], "restored");
    assert_eq!(list[0]["restores"], 1);

    // The same helper found again after its incident closed starts a
    // new one.
    let prev = more.last().unwrap().hash().unwrap();
    let again = events(
        &h,
        Mode::Remediate,
        n + 2,
        prev,
        vec![Body::DetectionFinding(Box::new(samples::zoom_finding(
            lenscap_events::Verdict::Remediate,
            Some("catalog:zoom-opener"),
        )))],
    );
    assert_eq!(c.send(&token, &again).0, 200);
    let list = incidents(&c, &reader, "host=mac-contained");
    assert_eq!(list.len(), 2, "{list:#?}");
    assert_eq!(list[0]["state"], "open");
    assert_eq!(list[1]["state"], "restored");

    // Derived from events only: rebuilt, the same incidents come back.
    let before = incidents(&c, &reader, "host=mac-contained");
    c.block_on(c.store().rebuild_incidents()).unwrap();
    let after = incidents(&c, &reader, "host=mac-contained");
    let strip = |v: &[serde_json::Value]| {
        v.iter()
            .map(|i| {
                let mut i = i.clone();
                i.as_object_mut().unwrap().remove("id");
                i
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&before), strip(&after));
    c.stop();
}

fn monitor_mode_is_would_do(db: &Db) {
    let c = Collector::start(db);
    let h = host("mac-monitor");
    let token = c.enroll(&h);
    let reader = c.token(Role::Reader);
    let sent = events(
        &h,
        Mode::Monitor,
        1,
        Sha256Hex::genesis(),
        story(Mode::Monitor, "plan-m"),
    );
    assert_eq!(c.send(&token, &sent).0, 200);
    let list = incidents(&c, &reader, "");
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0]["state"], "would_do");
    assert_eq!(list[0]["steps_would_do"], 6);
    assert_eq!(list[0]["open_findings"], 2);
    assert!(
        list[0]["title"]
            .as_str()
            .unwrap()
            .ends_with("would be contained (monitor mode)"),
        "{}",
        list[0]["title"]
    );
    c.stop();
}

fn forged_event_is_marked_everywhere(db: &Db) {
    let c = Collector::start(db);
    let h = host("mac-forged");
    let token = c.enroll(&h);
    let reader = c.token(Role::Reader);
    let sent = events(
        &h,
        Mode::Remediate,
        1,
        Sha256Hex::genesis(),
        story(Mode::Remediate, "plan-f"),
    );
    assert_eq!(c.send(&token, &sent).0, 200);
    // Someone with the host's token sends a kill step reusing seq 5
    // under a new uid, with a message of their own.
    let mut forged = sent[4].clone();
    forged.uid = lenscap_events::EventUid::new_v4();
    if let Body::ProcessRemediation(r) = &mut forged.body {
        r.message = "FORGED: nothing to see".into();
    } else {
        panic!("seq 5 should be the kill step");
    }
    assert_eq!(c.send(&token, &[forged.clone()]).0, 200);
    settle(&c);

    // The events API marks it, and only it.
    let all = common::all_events(&c, &reader, "host=mac-forged");
    let marked: Vec<&serde_json::Value> = all
        .iter()
        .filter(|e| e["integrity"] == "chain_break")
        .collect();
    assert_eq!(marked.len(), 1, "{marked:#?}");
    assert_eq!(marked[0]["uid"], forged.uid.to_string());
    assert_eq!(marked[0]["payload"]["message"], "FORGED: nothing to see");

    // NDJSON and CSV exports.
    let (s, nd) = c.http.get(
        &c.url("/api/v1/export.ndjson?host=mac-forged"),
        Some(&reader),
    );
    assert_eq!(s, 200);
    let lines: Vec<serde_json::Value> = nd
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), sent.len() + 1);
    let flagged: Vec<_> = lines
        .iter()
        .filter(|l| l["integrity"] == "chain_break")
        .collect();
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0]["uid"], forged.uid.to_string());
    let (s, csv) = c
        .http
        .get(&c.url("/api/v1/export.csv?host=mac-forged"), Some(&reader));
    assert_eq!(s, 200);
    assert!(csv.lines().next().unwrap().ends_with(",integrity"));
    let bad: Vec<&str> = csv
        .lines()
        .filter(|l| l.ends_with(",chain_break"))
        .collect();
    assert_eq!(bad.len(), 1, "{csv}");
    assert!(bad[0].contains("FORGED"), "{}", bad[0]);
    assert_eq!(
        csv.lines().filter(|l| l.ends_with(",ok")).count(),
        sent.len()
    );

    // The incident says so, in the list, the detail, and the exports.
    let list = incidents(&c, &reader, "host=mac-forged");
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0]["integrity"], "chain_break");
    let only_untrusted = incidents(&c, &reader, "integrity=chain_break");
    assert_eq!(only_untrusted.len(), 1);
    let detail = c.get_json(&format!("/api/v1/incidents/{}", list[0]["id"]), &reader);
    assert_eq!(detail["incident"]["integrity"], "chain_break");
    let in_detail: Vec<_> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["integrity"] == "chain_break")
        .collect();
    assert_eq!(in_detail.len(), 1);
    let (s, nd) = c.http.get(
        &c.url("/api/v1/incidents/export.ndjson?host=mac-forged"),
        Some(&reader),
    );
    assert_eq!(s, 200);
    let line: serde_json::Value = serde_json::from_str(nd.lines().next().unwrap()).unwrap();
    assert_eq!(line["integrity"], "chain_break");
    let (s, csv) = c.http.get(
        &c.url("/api/v1/incidents/export.csv?host=mac-forged"),
        Some(&reader),
    );
    assert_eq!(s, 200);
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(
        csv.lines().nth(1).unwrap().ends_with(",chain_break"),
        "{csv}"
    );
    c.stop();
}

fn incidents_page_and_filter(db: &Db) {
    let c = Collector::start(db);
    let reader = c.token(Role::Reader);
    // Five hosts, each one contained helper; one host in monitor mode.
    for i in 0..5 {
        let h = host(&format!("mac-page-{i}"));
        let token = c.enroll(&h);
        let mode = if i == 0 {
            Mode::Monitor
        } else {
            Mode::Remediate
        };
        let sent = events(&h, mode, 1, Sha256Hex::genesis(), story(mode, "plan"));
        assert_eq!(c.send(&token, &sent).0, 200);
    }
    settle(&c);
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = c.get_json(&format!("/api/v1/incidents?limit=2{cursor}"), &reader);
        let list = page["incidents"].as_array().unwrap();
        assert!(list.len() <= 2);
        seen.extend(list.iter().map(|i| i["id"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(n) => cursor = format!("&cursor={n}"),
            None => break,
        }
    }
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 5);
    assert_eq!(incidents(&c, &reader, "state=would_do").len(), 1);
    assert_eq!(incidents(&c, &reader, "state=contained").len(), 4);
    assert_eq!(incidents(&c, &reader, "severity=critical").len(), 5);
    assert_eq!(incidents(&c, &reader, "rule=catalog:zoom-opener").len(), 5);
    assert_eq!(incidents(&c, &reader, "rule=nope").len(), 0);
    for bad in [
        "state=sleeping",
        "severity=huge",
        "integrity=maybe",
        "limit=0",
        "cursor=x",
        "colour=red",
    ] {
        let (s, text) = c
            .http
            .get(&c.url(&format!("/api/v1/incidents?{bad}")), Some(&reader));
        assert_eq!(s, 400, "{bad}: {text}");
    }
    let (s, _) = c
        .http
        .get(&c.url("/api/v1/incidents/999999"), Some(&reader));
    assert_eq!(s, 404);
    let host_token = c.enroll(&host("mac-page-x"));
    let (s, _) = c.http.get(&c.url("/api/v1/incidents"), Some(&host_token));
    assert_eq!(s, 403);
    c.stop();
}

/// A camera grant or session whose client or process is the helper joins
/// the helper's incident — by program path, by the helper's signing
/// identifier (without case, as TCC compares), by process, or by the
/// helper's listener for a session that began right after a connection to
/// it. A grant of an unrelated app stays an incident of its own, and the
/// camera app a session named does not become part of the helper's
/// incident: a later finding about that app is its own incident.
fn camera_joins_the_helper(db: &Db) {
    use lenscap_events::{CameraInfo, Verdict};
    let c = Collector::start(db);
    let h = host("mac-camera");
    let token = c.enroll(&h);
    let reader = c.token(Role::Reader);
    let helper = samples::zoom_finding(Verdict::Remediate, Some("catalog:zoom-opener"));
    let helper_exe = format!("{BUNDLE}/Contents/MacOS/ZoomOpener");
    let grant = |uid: &str, client: &str, client_type: &str| {
        let mut g = samples::camera_grant();
        g.finding_info.uid = uid.to_string();
        g.finding.severity = lenscap_events::Severity::Critical;
        let cam: &mut CameraInfo = g.finding.camera.as_mut().unwrap();
        cam.client = client.to_string();
        cam.client_type = Some(client_type.to_string());
        Body::DetectionFinding(Box::new(g))
    };
    // The helper itself holding the camera (tied by process, not time).
    let mut own_session = samples::camera_incident();
    own_session.finding_info.uid = "camera_use:1873:1:ZoomOpener".into();
    own_session.finding.process = helper.finding.process.clone();
    if let Some(cam) = own_session.finding.camera.as_mut() {
        cam.client = helper_exe.clone();
        cam.incident = None;
    }
    // The Zoom client's own listener, found later: not the helper's.
    let mut client_listener = samples::zoom_finding(Verdict::Report, None);
    client_listener.finding_info.uid = "listener:127.0.0.1:4433:/Applications/zoom.us.app".into();
    if let Some(p) = client_listener.finding.process.as_mut() {
        p.path = Some("/Applications/zoom.us.app/Contents/MacOS/zoom.us".into());
        p.bundle = Some("/Applications/zoom.us.app".into());
        p.name = "zoom.us".into();
        p.signature.identifier = Some("us.zoom.xos".into());
    }
    client_listener.finding.persistence = None;
    if let Some(l) = client_listener.finding.listener.as_mut() {
        l.port = 4433;
    }
    let bodies = vec![
        Body::DetectionFinding(Box::new(helper)),
        grant("camera_grant:path", &helper_exe, "path"),
        grant("camera_grant:id", "US.ZOOM.ZoomOpener", "bundle_id"),
        Body::DetectionFinding(Box::new(own_session)),
        // Tied by time to the helper's listener; its process is the Zoom
        // client.
        Body::DetectionFinding(Box::new(samples::camera_incident())),
        // An unrelated app's grant.
        grant("camera_grant:other", "com.example.Recorder", "bundle_id"),
        Body::DetectionFinding(Box::new(client_listener)),
    ];
    let sent = events(&h, Mode::Remediate, 1, Sha256Hex::genesis(), bodies);
    assert_eq!(c.send(&token, &sent).0, 200);
    let list = incidents(&c, &reader, "host=mac-camera");
    assert_eq!(list.len(), 3, "{list:#?}");
    let by_name = |n: &str| {
        list.iter()
            .find(|i| i["title"].as_str().unwrap().starts_with(n))
            .unwrap_or_else(|| panic!("no incident titled {n}: {list:#?}"))
    };
    let inc = by_name("ZoomOpener");
    assert_eq!(inc["findings"], 5, "{inc}");
    assert_eq!(inc["verdict"], "remediate", "{inc}");
    assert_eq!(
        inc["kinds"],
        serde_json::json!(["camera_grant", "camera_use", "listener"]),
        "{inc}"
    );
    let detail = c.get_json(&format!("/api/v1/incidents/{}", inc["id"]), &reader);
    let seqs: Vec<u64> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    let other = by_name("com.example.Recorder");
    assert_eq!(other["findings"], 1, "{other}");
    assert_eq!(other["kinds"], serde_json::json!(["camera_grant"]));
    let client = by_name("zoom.us");
    assert_eq!(client["findings"], 1, "{client}");
    assert_eq!(client["verdict"], "report");
    c.stop();
}
