//! Camera findings (`camera_grant`, `camera_use`) and the camera health
//! statuses through a real collector, on SQLite and (with
//! LENSCAP_TEST_POSTGRES_URL) PostgreSQL: stored, filtered and exported like
//! every other finding, and shown on the dashboard — the fleet's camera
//! incidents, a host's timeline with service, client, auth and the
//! incident's helper, and the Camera page paged to its end even where
//! thousands of other findings lie between camera events.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use common::{Collector, Db, all_events, chain, host};
use lenscap_collector::store::Role;
use lenscap_events::samples;
use lenscap_events::{Body, Event, FindingActivity, Host, Mode, Severity, Sha256Hex, Verdict};

on_both_databases! {
    camera_findings_are_stored_filtered_exported_and_shown => camera_findings;
}

/// A signed-in dashboard session for `token`, as a `cookie` header value.
fn session(c: &Collector, token: &str) -> String {
    let resp = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .new_agent()
        .post(c.url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .send(format!("token={token}"))
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let cookie = resp.headers().get("set-cookie").unwrap().to_str().unwrap();
    cookie.split(';').next().unwrap().to_string()
}

/// `n` allowed camera sessions (start and stop each) of a busy Mac, after
/// a new grant and one critical incident, as events 1..=2n+2 from `t0`.
fn busy_camera_mac(h: &Host, n: u64, t0: i64) -> Vec<Event> {
    let mut bodies = vec![
        Body::DetectionFinding(Box::new(samples::camera_grant())),
        Body::DetectionFinding(Box::new(samples::camera_incident())),
    ];
    for i in 0..n {
        let mut d = samples::camera_incident();
        d.finding.verdict = Verdict::Allow;
        d.finding.severity = Severity::Info;
        d.finding.reasons = vec!["nothing ties it to a flagged helper: allowed".into()];
        let pid = 5000 + u32::try_from(i).unwrap();
        let p = d.finding.process.as_mut().unwrap();
        p.pid = pid;
        let c = d.finding.camera.as_mut().unwrap();
        c.pid = Some(pid);
        c.incident = None;
        d.finding_info.uid = format!("camera_use:{pid}:1:us.zoom.xos");
        d.finding_info.title = format!("Camera in use by zoom.us (pid {pid})");
        d.message = d.finding_info.title.clone();
        let mut stop = d.clone();
        stop.activity = FindingActivity::Close;
        stop.finding.camera.as_mut().unwrap().duration_seconds = Some(60);
        stop.message = format!("Camera no longer in use by zoom.us (pid {pid}) after 60 s");
        bodies.push(Body::DetectionFinding(Box::new(d)));
        bodies.push(Body::DetectionFinding(Box::new(stop)));
    }
    let mut events: Vec<Event> = bodies
        .into_iter()
        .zip(1u64..)
        .map(|(b, seq)| samples::event(h, seq, t0 + seq as i64 * 1000, Mode::Monitor, b))
        .collect();
    samples::link(&mut events, Sha256Hex::genesis());
    events
}

fn send_all(c: &Collector, token: &str, events: &[Event]) {
    for batch in events.chunks(1000) {
        let (s, text) = c.send(token, batch);
        assert_eq!(s, 200, "{text}");
    }
}

fn camera_findings(db: &Db) {
    let c = Collector::start(db);
    let reader = c.token(Role::Reader);

    // jdoe-air: the documented camera story (monitor mode).
    let air = samples::camera_host();
    let air_events = samples::docs_camera_chain();
    let air_token = c.enroll(&air);
    send_all(&c, &air_token, &air_events);
    // jdoe-mbp: the ZoomOpener listener story, no camera.
    let mbp = samples::host();
    let mbp_token = c.enroll(&mbp);
    send_all(&c, &mbp_token, &samples::docs_chain());
    // A Mac whose 2,200 listener findings are newer than jdoe-air's camera
    // events: more than one Camera page reads.
    let noisy = host("noisy-mac");
    let noisy_token = c.enroll(&noisy);
    send_all(&c, &noisy_token, &chain(&noisy, 4400));
    // A Mac with one incident and then 1,099 allowed sessions, all newer
    // than everything else: its incident must still be found. Its 2,200
    // camera findings fill 44 Camera pages exactly, so the next page
    // starts in noisy-mac's stretch of 2,000+ listener findings.
    let busy = host("busy-mac");
    let busy_token = c.enroll(&busy);
    let busy_events = busy_camera_mac(&busy, 1099, 1_764_400_000_000);
    send_all(&c, &busy_token, &busy_events);

    // ---- API: camera findings are detection findings, filterable by
    // host, verdict, time and exported like the others.
    let air_findings = all_events(&c, &reader, "host=jdoe-air&kind=detection_finding");
    let kinds: Vec<&str> = air_findings
        .iter()
        .map(|e| e["payload"]["finding"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["camera_use", "camera_use", "camera_grant"]);
    let incident = &air_findings[1]["payload"];
    assert_eq!(incident["severity_id"], 5);
    assert_eq!(
        incident["finding"]["camera"]["incident"]["helper"]["port"],
        19421
    );
    assert_eq!(
        air_findings[0]["payload"]["finding"]["camera"]["duration_seconds"],
        95
    );
    let health = all_events(&c, &reader, "host=jdoe-air&kind=agent_health");
    let statuses: Vec<&str> = health
        .iter()
        .map(|e| e["payload"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "camera_watch",
            "camera_watch",
            "permission_restored",
            "permission_missing"
        ]
    );
    // Allowed sessions are stored too, and a verdict filter separates them.
    assert_eq!(
        all_events(&c, &reader, "host=busy-mac&verdict=allow").len(),
        2198
    );
    assert_eq!(
        all_events(&c, &reader, "host=busy-mac&verdict=report").len(),
        2
    );
    // Exports: every camera event of the host, with its sentence.
    let (s, csv) = c.http.get(
        &c.url("/api/v1/export.csv?host=jdoe-air&kind=detection_finding"),
        Some(&reader),
    );
    assert_eq!(s, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(
        lines[2].contains(",detection_finding,report,critical,"),
        "{}",
        lines[2]
    );
    assert!(
        lines[2].contains(
            "Camera turned on 3 s after a connection to the flagged helper on 127.0.0.1:19421: in use by zoom.us (pid 4242)"
        ),
        "{}",
        lines[2]
    );
    assert!(lines[1].contains("after 95 s"), "{}", lines[1]);
    assert!(
        lines[3].contains("New camera grant: us.zoom.xos"),
        "{}",
        lines[3]
    );
    let (s, ndjson) = c
        .http
        .get(&c.url("/api/v1/export.ndjson?host=jdoe-air"), Some(&reader));
    assert_eq!(s, 200);
    let exported: Vec<Event> = ndjson
        .lines()
        .map(|l| Event::from_value(serde_json::from_str(l).unwrap()).unwrap())
        .collect();
    assert_eq!(exported.len(), air_events.len());
    for e in &air_events {
        assert!(exported.contains(e), "seq {} not exported as sent", e.seq);
    }

    // ---- Dashboard.
    let cookie = session(&c, &reader);
    let get = |path: &str| {
        let (s, _, body) = c.http.get_with(&c.url(path), None, &[("cookie", &cookie)]);
        assert_eq!(s, 200, "{path}: {body}");
        body
    };
    let hosts = c.get_json("/api/v1/hosts", &reader);
    let id_of = |name: &str| {
        hosts["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["hostname"] == name)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };

    // Fleet: two incidents (jdoe-air's and busy-mac's), newest first, and
    // not ZoomOpener's listener finding.
    let fleet = get("/ui/fleet");
    assert!(
        fleet.contains("<div class=\"n\">2</div><div class=\"l\">camera incidents</div>"),
        "{fleet}"
    );
    let section = fleet.split("<h2>Camera incidents</h2>").nth(1).unwrap();
    let section = section.split("</table>").next().unwrap();
    let rows: Vec<&str> = section.split("<tr>").skip(2).collect();
    assert_eq!(rows.len(), 2, "{section}");
    assert!(rows[0].contains("busy-mac") && rows[1].contains("jdoe-air"));
    for row in &rows {
        assert!(row.contains("<td>zoom.us (pid 4242)</td>"), "{row}");
        assert!(
            row.contains(
                "<code>127.0.0.1:19421</code> (pid 1873, <code>catalog:zoom-opener</code>)"
            ),
            "{row}"
        );
        assert!(row.contains("<td>3 s</td>"), "{row}");
    }
    assert!(!section.contains("listening on"));
    assert!(fleet.contains("href=\"/ui/camera\""));

    // jdoe-air's page: the incident on top, then the timeline with each
    // camera event spelt out.
    let page = get(&format!("/ui/hosts/{}", id_of("jdoe-air")));
    assert!(page.contains("<h2>Camera incidents</h2>"), "{page}");
    let timeline = page.split("<h2>Timeline</h2>").nth(1).unwrap();
    for needle in [
        "privacy grant",
        "New camera grant: us.zoom.xos may use the camera (user consent)",
        "service <b>camera</b> · client <code>us.zoom.xos</code> (bundle id) · auth <b>allowed</b> · reason user consent",
        "from <code>/Users/jdoe/Library/Application Support/com.apple.TCC/TCC.db</code>",
        "camera on",
        "Incident: the camera turned on 3 seconds after a connection to the flagged helper on <code>127.0.0.1:19421</code> (pid 1873, <code>catalog:zoom-opener</code>) at 2025-11-28T06:41:25Z",
        "auth <b>in_use</b> · pid 4242",
        "camera off",
        "on for 95 seconds",
        "<span class=\"b bad\">camera_watch</span> Camera watch degraded",
        "<span class=\"b ok\">camera_watch</span> Camera watch restored",
        "<span class=\"b ok\">permission_restored</span>",
        "<span class=\"b bad\">permission_missing</span>",
    ] {
        assert!(
            timeline.contains(needle),
            "timeline lacks {needle:?}:\n{timeline}"
        );
    }
    // A host without camera incidents gets no such section.
    let page = get(&format!("/ui/hosts/{}", id_of("jdoe-mbp")));
    assert!(!page.contains("Camera incidents"));

    // The Camera page, followed to its end: every camera event exactly
    // once, no other finding, and noisy-mac's stretch of 2,000+ listener
    // findings crossed without an empty page (the filter on the finding's
    // kind skips them).
    let want = 3 + busy_events.len();
    let mut seen = Vec::new();
    let mut path = "/ui/camera".to_string();
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages < 100, "the Camera page does not end");
        let page = get(&path);
        let rows: Vec<&str> = page.split("<tr>").skip(2).collect();
        assert!(!rows.is_empty(), "an empty Camera page: {page}");
        for row in rows {
            assert!(!row.contains("listening on"), "{row}");
            seen.push(row.to_string());
        }
        match page.split("href=\"/ui/camera?cursor=").nth(1) {
            Some(rest) => {
                path = format!("/ui/camera?cursor={}", rest.split('"').next().unwrap());
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), want, "pages: {pages}");
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        want,
        "a row shown twice"
    );
    // 50 rows a page, and no page more than needed.
    assert_eq!(pages, want.div_ceil(50), "pages");
    assert!(seen.last().unwrap().contains("New camera grant"));
    let grants = seen.iter().filter(|r| r.contains("privacy grant")).count();
    assert_eq!(grants, 2);
}
