//! Conversions tested the way the collector will read them: every payload
//! is wrapped in an envelope, serialised, and read back through
//! `Event::from_value` (which runs `Event::check` and the OCSF id checks).

use std::net::IpAddr;
use std::path::PathBuf;

use lenscap_events as ev;
use lenscap_events::{Event, EventUid, Host, Sha256Hex};

use super::*;
use crate::act::kill::{KillOutcome, ProcessReport, Refusal};
use crate::model::{
    AddressScope, Cors, HttpProbe, ListenerRef, PersistenceKind, PersistenceRef, Severity,
    Signature, SignatureStatus, StartTime, Verdict,
};

fn zoom_opener() -> ProcessIdentity {
    let exe = "/Users/jdoe/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener";
    ProcessIdentity {
        pid: 1873,
        ppid: 1,
        start_time: StartTime {
            unix_us: 1_764_312_000_123_456,
            resolution_us: 1,
        },
        path: Some(PathBuf::from(exe)),
        args: vec![exe.to_string()],
        uid: 501,
        user: Some("jdoe".into()),
        name: "ZoomOpener".into(),
        interactive: false,
        bundle: Some(PathBuf::from("/Users/jdoe/.zoomus/ZoomOpener.app")),
        signature: Signature {
            status: SignatureStatus::Valid,
            identifier: Some("us.zoom.ZoomOpener".into()),
            team_id: Some("BJ4HAAB9B3".into()),
            platform_binary: false,
            authorities: vec![
                "Developer ID Application: Zoom Video Communications, Inc. (BJ4HAAB9B3)".into(),
                "Developer ID Certification Authority".into(),
                "Apple Root CA".into(),
            ],
        },
    }
}

/// The 2019 ZoomOpener as the judge reports it (catalog-facts.md).
fn zoom_finding() -> Finding {
    let p = zoom_opener();
    Finding {
        kind: FindingKind::Listener,
        verdict: Verdict::Remediate,
        severity: Severity::Critical,
        reasons: vec![
            "answers HTTP on a loopback port a browser can reach".into(),
            "lives in a hidden directory (~/.zoomus)".into(),
            "answers foreign origins with an image (CORS bypass)".into(),
        ],
        rule: Some("catalog:zoom-opener".into()),
        process: Some(p.clone()),
        processes: vec![p],
        listener: Some(ListenerRef {
            address: "127.0.0.1".parse().unwrap(),
            port: 19421,
            scope: AddressScope::Loopback,
        }),
        persistence: Some(PersistenceRef {
            kind: PersistenceKind::LoginItem,
            path: PathBuf::from("/Users/jdoe/.zoomus/ZoomOpener.app"),
            label: Some("ZoomOpener".into()),
            program: Some(PathBuf::from(
                "/Users/jdoe/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener",
            )),
        }),
        http: Some(HttpProbe {
            http: true,
            websocket: false,
            status: Some(200),
            server: None,
            content_type: Some("image/gif".into()),
            cors: Cors::None,
            image: true,
            error: None,
        }),
        camera: None,
    }
}

fn plist_finding() -> Finding {
    Finding {
        kind: FindingKind::Persistence,
        verdict: Verdict::Report,
        severity: Severity::Medium,
        reasons: vec!["starts a program outside any application bundle".into()],
        rule: None,
        process: None,
        processes: vec![],
        listener: None,
        persistence: Some(PersistenceRef {
            kind: PersistenceKind::LaunchAgent,
            path: PathBuf::from("/Users/jdoe/Library/LaunchAgents/com.example.helper.plist"),
            label: Some("com.example.helper".into()),
            program: Some(PathBuf::from(
                "/Users/jdoe/Library/Application Support/x/helper",
            )),
        }),
        http: None,
        camera: None,
    }
}

/// Wrap in an envelope, serialise, read back as the collector does.
fn round_trip(body: Body, mode: ev::Mode) -> Event {
    let event = Event {
        uid: EventUid::new_v4(),
        time: 1_764_312_005_250,
        host: Host {
            hostname: "jdoe-mbp".into(),
            hardware_uuid: Some("6F1E2C3A-8B4D-4E5F-9A0B-1C2D3E4F5A6B".into()),
            serial: Some("C02XK1ABJGH5".into()),
            machine_id: None,
        },
        agent_version: "0.1.0".into(),
        mode,
        seq: 2,
        prev_hash: Sha256Hex::genesis(),
        body,
    };
    event.check().unwrap();
    let value = serde_json::to_value(&event).unwrap();
    let back = Event::from_value(value).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, event);
    back
}

#[test]
fn zoom_finding_round_trips_and_mirrors_the_model() {
    let f = zoom_finding();
    let body = detection_finding(&f, FindingActivity::Create, ev::Mode::Remediate);
    let event = round_trip(body, ev::Mode::Remediate);
    let json = serde_json::to_value(&event).unwrap();
    let p = &json["payload"];
    assert_eq!(p["class_uid"], 2004);
    assert_eq!(p["type_uid"], 200401);
    assert_eq!(p["severity_id"], 5);
    assert_eq!(
        p["finding_info"]["uid"],
        "listener:127.0.0.1:19421:/Users/jdoe/.zoomus/ZoomOpener.app"
    );
    assert_eq!(
        p["finding_info"]["title"],
        "ZoomOpener listening on 127.0.0.1:19421"
    );
    assert_eq!(
        p["message"],
        "Undisclosed helper web server ZoomOpener listens on 127.0.0.1:19421"
    );
    // The `finding` object is the `lenscap scan --json` shape of the same
    // finding: the mirror must not lose or rename anything.
    assert_eq!(p["finding"], serde_json::to_value(&f).unwrap());
}

#[test]
fn monitor_mode_message_says_left_in_place() {
    let body = detection_finding(&zoom_finding(), FindingActivity::Create, ev::Mode::Monitor);
    let Body::DetectionFinding(d) = &body else {
        panic!("not a finding")
    };
    assert!(
        d.message.ends_with("(monitor mode: left in place)"),
        "{}",
        d.message
    );
    round_trip(body, ev::Mode::Monitor);
}

#[test]
fn persistence_finding_and_activities() {
    let f = plist_finding();
    assert_eq!(
        finding_uid(&f),
        "persistence:launch_agent:/Users/jdoe/Library/LaunchAgents/com.example.helper.plist"
    );
    for activity in [
        FindingActivity::Create,
        FindingActivity::Update,
        FindingActivity::Close,
    ] {
        let event = round_trip(
            detection_finding(&f, activity, ev::Mode::Monitor),
            ev::Mode::Monitor,
        );
        let Body::DetectionFinding(d) = &event.body else {
            panic!("not a finding")
        };
        assert_eq!(d.activity, activity);
        assert!(
            d.message.contains("LaunchAgent com.example.helper"),
            "{}",
            d.message
        );
        // Same thing, same key, whatever the activity.
        assert_eq!(d.finding_info.uid, finding_uid(&f));
    }
}

#[test]
fn ipv6_listener_key_is_bracketed() {
    let mut f = zoom_finding();
    let addr: IpAddr = "::1".parse().unwrap();
    f.listener = Some(ListenerRef {
        address: addr,
        port: 8080,
        scope: AddressScope::Loopback,
    });
    f.process.as_mut().unwrap().bundle = None;
    assert_eq!(
        finding_uid(&f),
        "listener:[::1]:8080:/Users/jdoe/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener"
    );
}

fn ctx() -> StepContext {
    StepContext {
        finding_uid: Some(finding_uid(&zoom_finding())),
        command_uid: Some("plan-0001".into()),
    }
}

#[test]
fn kill_done_and_would_do() {
    let target = process_target(&zoom_opener());
    let done = process_remediation(
        target.clone(),
        ProcessAction::KillProcess,
        &kill_outcome(&KillOutcome::Terminated),
        &ctx(),
    );
    let event = round_trip(done, ev::Mode::Remediate);
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(json["payload"]["type_uid"], 700301);
    assert_eq!(json["payload"]["status_id"], 1);
    assert_eq!(json["payload"]["would_do"], false);
    assert_eq!(
        json["payload"]["process"]["start_time_us"],
        1_764_312_000_123_456u64
    );
    assert_eq!(
        json["payload"]["message"],
        "Terminated ZoomOpener (pid 1873) (exited after SIGTERM)"
    );

    let would = process_remediation(
        target,
        ProcessAction::KillProcess,
        &StepOutcome::WouldDo,
        &ctx(),
    );
    let event = round_trip(would, ev::Mode::Monitor);
    let Body::ProcessRemediation(r) = &event.body else {
        panic!("not a process remediation")
    };
    assert!(r.would_do);
    assert_eq!(r.outcome.status, ev::OutcomeStatus::NotAttempted);
    assert_eq!(r.message, "Would terminate ZoomOpener (pid 1873)");
}

#[test]
fn every_kill_outcome_is_representable() {
    let outcomes = [
        KillOutcome::Terminated,
        KillOutcome::Killed,
        KillOutcome::AlreadyGone,
        KillOutcome::IdentityChanged,
        KillOutcome::Refused(Refusal::SystemProcess),
        KillOutcome::Refused(Refusal::OwnProcess),
        KillOutcome::Refused(Refusal::IdentityUnknown("EPERM".into())),
        KillOutcome::Refused(Refusal::NoExecutable),
        KillOutcome::Survived,
        KillOutcome::Error("EPERM".into()),
    ];
    let child = ProcessReport {
        pid: 1900,
        name: None,
        path: None,
        outcome: KillOutcome::Killed,
    };
    for o in &outcomes {
        let step = kill_outcome(o);
        let body = process_remediation(
            process_report_target(&child),
            ProcessAction::KillProcess,
            &step,
            &ctx(),
        );
        let event = round_trip(body, ev::Mode::Remediate);
        let Body::ProcessRemediation(r) = &event.body else {
            panic!("not a process remediation")
        };
        assert!(!r.would_do);
        let want = match o {
            KillOutcome::Terminated | KillOutcome::Killed => ev::OutcomeStatus::Success,
            KillOutcome::Survived | KillOutcome::Error(_) => ev::OutcomeStatus::Failure,
            _ => ev::OutcomeStatus::NotAttempted,
        };
        assert_eq!(r.outcome.status, want, "{o:?}");
    }
}

#[test]
fn stop_job_without_a_running_process() {
    let body = process_remediation(
        job_target("us.zoom.ZoomDaemon", None),
        ProcessAction::StopJob,
        &StepOutcome::Failure("launchctl bootout exited 5: Input/output error".into()),
        &ctx(),
    );
    let event = round_trip(body, ev::Mode::Remediate);
    let Body::ProcessRemediation(r) = &event.body else {
        panic!("not a process remediation")
    };
    assert_eq!(r.target.pid, 0);
    assert_eq!(
        r.target.launchd_label.as_deref(),
        Some("us.zoom.ZoomDaemon")
    );
    assert_eq!(r.activity, ev::RemediationActivity::Isolate);
    assert!(r.reversible);
    assert_eq!(
        r.message,
        "Failed to unload launchd job us.zoom.ZoomDaemon: launchctl bootout exited 5: Input/output error"
    );
    let with_pid = job_target("us.zoom.ZoomDaemon", Some(&zoom_opener()));
    assert_eq!(with_pid.pid, 1873);
    assert_eq!(
        with_pid.launchd_label.as_deref(),
        Some("us.zoom.ZoomDaemon")
    );
}

#[test]
fn file_actions_map_to_ocsf_activities() {
    use ev::RemediationActivity::*;
    let cases = [
        (FileAction::Quarantine, Evict, ev::Action::QuarantineFile),
        (FileAction::Restore, Restore, ev::Action::RestoreFile),
        (FileAction::Guard, Harden, ev::Action::GuardPath),
        (FileAction::Placeholder, Harden, ev::Action::GuardPath),
        (FileAction::RemoveGuard, Restore, ev::Action::RemoveGuard),
        (
            FileAction::ReinstallRemoved,
            Harden,
            ev::Action::QuarantineFile,
        ),
    ];
    for (action, activity, wire) in cases {
        for outcome in [
            StepOutcome::Success(None),
            StepOutcome::WouldDo,
            StepOutcome::Failure("EACCES".into()),
            StepOutcome::NotAttempted("circuit breaker open".into()),
        ] {
            let mut target = file_target(std::path::Path::new("/Users/jdoe/.zoomus"));
            target.quarantine_path = Some("/var/db/lenscap/quarantine/q1/payload/0".into());
            target.mode = Some(0o755);
            target.owner_uid = Some(501);
            let body = file_remediation(
                target,
                action,
                Some("q1"),
                &outcome,
                &StepContext::default(),
            );
            let event = round_trip(body, ev::Mode::Remediate);
            let Body::FileRemediation(r) = &event.body else {
                panic!("not a file remediation")
            };
            assert_eq!(r.activity, activity, "{action:?}");
            assert_eq!(r.action, wire, "{action:?}");
            assert_eq!(r.would_do, outcome == StepOutcome::WouldDo);
            // Without a plan id the vault record pairs Evict and Restore.
            assert_eq!(r.command_uid.as_deref(), Some("q1"));
        }
    }
}

#[test]
fn reinstall_attempt_is_recognisable() {
    let body = file_remediation(
        file_target(std::path::Path::new("/Users/jdoe/.zoomus")),
        FileAction::ReinstallRemoved,
        Some("q7"),
        &StepOutcome::Success(None),
        &ctx(),
    );
    let Body::FileRemediation(r) = &body else {
        panic!("not a file remediation")
    };
    assert_eq!(
        r.message,
        "Reinstall attempt: re-created /Users/jdoe/.zoomus was moved into quarantine q7 again"
    );
    assert_eq!(r.command_uid.as_deref(), Some("plan-0001"));
    let quarantine = file_remediation(
        file_target(std::path::Path::new("/Users/jdoe/.zoomus")),
        FileAction::Quarantine,
        Some("q7"),
        &StepOutcome::Success(None),
        &ctx(),
    );
    let Body::FileRemediation(q) = &quarantine else {
        panic!("not a file remediation")
    };
    assert!(
        q.message.contains("lenscap quarantine restore q7"),
        "{}",
        q.message
    );
    assert_ne!(q.activity, r.activity);
}

#[test]
fn health_events_round_trip() {
    let bodies = [
        started("0.1.0", ev::Mode::Monitor, 412, "macOS", Some("15.1")),
        stopped("SIGTERM"),
        config_changed(&["Mode".to_string(), "Rules".to_string()], "profile"),
        circuit_breaker(
            ev::BreakerState::Open,
            "MaxRemediationsPerHour 10 reached",
            10,
            3600,
        ),
        circuit_breaker(ev::BreakerState::Closed, "an hour passed", 0, 3600),
        outbox_full(1200, 9_000_000, 10_000_000, 37),
        permission_missing(
            "full_disk_access",
            "cannot read /Library/Application Support/com.apple.TCC/TCC.db",
        ),
    ];
    for body in bodies {
        let event = round_trip(body, ev::Mode::Monitor);
        let Body::AgentHealth(h) = &event.body else {
            panic!("not health")
        };
        assert!(!h.message.is_empty());
    }
    let Body::AgentHealth(h) = started("0.1.0", ev::Mode::Remediate, 1, "macOS", None) else {
        panic!("not health")
    };
    assert_eq!(h.message, "lenscap 0.1.0 started in remediate mode");
}

#[test]
fn config_mode_maps() {
    assert_eq!(mode(config::Mode::Monitor), ev::Mode::Monitor);
    assert_eq!(mode(config::Mode::Remediate), ev::Mode::Remediate);
}
