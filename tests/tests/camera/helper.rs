//! A flagged helper (ZoomOpener-style: hidden folder, KeepAlive
//! LaunchAgent, open CORS) that holds the camera open: its session is a
//! `camera_use` finding to remediate, critical. Monitor mode records it
//! and stops nothing; remediate mode contains the helper by its own plan
//! and the session's end is recorded with its duration.

use std::path::Path;
use std::time::{Duration, Instant};

use lenscap_e2e::{pid_running, wait_until};
use serde_json::Value;

use super::{CLOSE, CREATE, Setup, activity, camera_events_of, same_finding, summary, wait_event};

/// The first `camera_use` create event of `pid`.
fn created(events: &[Value], pid: u32) -> Option<Value> {
    camera_events_of(events, pid)
        .into_iter()
        .find(|e| activity(e) == Some(CREATE))
        .cloned()
}

fn assert_critical_helper_session(e: &Value, s: &Setup) {
    let f = &e["payload"]["finding"];
    assert_eq!(f["kind"], "camera_use", "{e:#}");
    assert_eq!(f["verdict"], "remediate", "{e:#}");
    assert_eq!(f["severity"], "critical", "{e:#}");
    assert_eq!(
        f["process"]["pid"].as_u64(),
        Some(u64::from(s.pid)),
        "{e:#}"
    );
    assert_eq!(f["process"]["path"], s.exe.to_str().unwrap(), "{e:#}");
    assert_eq!(f["camera"]["service"], "camera", "{e:#}");
    assert!(
        f["camera"]["pid"].is_null() || f["camera"]["pid"].as_u64() == Some(u64::from(s.pid)),
        "{e:#}"
    );
    assert_eq!(f["camera"]["device"], s.video.to_str().unwrap(), "{e:#}");
    assert!(!f["reasons"].as_array().unwrap().is_empty(), "{e:#}");
}

#[test]
fn monitor_mode_reports_the_helpers_camera_use_as_critical_and_stops_nothing() {
    let s = Setup::new("monitor", true, &[], &[]);
    let mut d = s.start_daemon();

    let e = wait_event(
        &s.config,
        &d,
        Duration::from_secs(15),
        "a camera_use event for the helper",
        |all| created(all, s.pid),
    );
    assert_critical_helper_session(&e, &s);
    assert_eq!(e["mode"], "monitor", "{e:#}");

    // Nothing stopped, moved or restarted, over more sweeps.
    d.wait_sweeps(3);
    assert!(pid_running(s.pid), "monitor mode stopped the helper");
    assert_eq!(s.standin.job_pid(&s.target()), Some(s.pid));
    assert!(s.exe.exists() && s.plist.exists(), "files moved");
    assert!(s.video.exists(), "the device is not the helper's to move");
    assert!(s.quarantine_list().is_empty(), "{:#?}", s.quarantine_list());
    assert!(
        super::holds_open(s.pid, &s.video),
        "the helper still holds the camera"
    );

    // One session, one start: the session is not re-created every sweep,
    // and it has not closed.
    let all = s.events();
    let mine = camera_events_of(&all, s.pid);
    let creates = mine.iter().filter(|e| activity(e) == Some(CREATE)).count();
    assert_eq!(creates, 1, "one start event:\n{}", summary(&all));
    assert!(
        same_finding(&all, &e, CLOSE).is_none(),
        "closed while still open:\n{}",
        summary(&all)
    );
    let status = d.status().unwrap();
    assert_eq!(status["remediations"], 0, "{status:#}");
    assert_eq!(d.stop().code(), Some(0), "clean stop; log:\n{}", d.log());
    assert!(pid_running(s.pid));
}

#[test]
fn remediate_mode_contains_the_helper_and_records_the_sessions_end() {
    let s = Setup::new("remediate", true, &[], &[]);
    let d = s.start_daemon();

    // The helper's tree is terminated and stays gone.
    let deadline = Instant::now() + Duration::from_secs(15);
    while pid_running(s.pid) {
        assert!(
            Instant::now() < deadline,
            "helper {} still running; daemon log:\n{}",
            s.pid,
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_eq!(s.standin.job_pid(&s.target()), None, "job respawned");
        let running = s.helper_processes();
        assert!(running.is_empty(), "helper running again: {running:?}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Its files are in quarantine: the plist, and the executable with the
    // folder holding it.
    let record = wait_until(Duration::from_secs(10), "a quarantine record", || {
        s.quarantine_list().into_iter().find(|r| {
            r["state"] == "quarantined"
                && r["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i["original"] == s.plist.to_str().unwrap())
        })
    });
    let items = record["items"].as_array().unwrap();
    assert!(
        items.iter().any(|i| i["original"]
            .as_str()
            .is_some_and(|o| s.exe.starts_with(o) && Path::new(o).starts_with(&s.folder))),
        "the helper's executable is not in quarantine: {record:#}"
    );
    assert!(!s.plist.exists(), "plist still in place");
    assert!(!s.exe.exists(), "executable still in place");
    assert!(s.video.exists(), "the device is not the helper's to move");

    // The events: the critical session, then its close with a duration.
    let (start, close) = wait_event(
        &s.config,
        &d,
        Duration::from_secs(15),
        "the helper's camera_use start and close",
        |all| {
            let start = created(all, s.pid)?;
            let close = same_finding(all, &start, CLOSE)?.clone();
            Some((start, close))
        },
    );
    assert_critical_helper_session(&start, &s);
    assert!(
        close["seq"].as_u64() > start["seq"].as_u64(),
        "close after start: {start:#}\n{close:#}"
    );
    let f = &close["payload"]["finding"];
    assert_eq!(f["kind"], "camera_use", "{close:#}");
    assert_eq!(
        f["process"]["pid"].as_u64(),
        Some(u64::from(s.pid)),
        "{close:#}"
    );
    assert!(
        f["camera"]["duration_seconds"].as_u64().is_some(),
        "a closed session says how long it was open: {close:#}"
    );
    // It ended because the helper's plan stopped it, for real.
    let all = s.events();
    assert!(
        all.iter().any(|e| e["kind"] == "process_remediation"
            && e["payload"]["action"] == "kill_process"
            && e["payload"]["would_do"] == false),
        "no kill_process remediation event:\n{}",
        summary(&all)
    );
}
