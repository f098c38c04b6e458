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
            private_network: false,
            error: None,
        }),
        camera: None,
        judged_path: None,
        grant_holder: None,
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
        judged_path: None,
        grant_holder: None,
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
            Some(501),
            vec!["/Users/ann/.x/helper".into()],
        ),
        circuit_breaker(
            ev::BreakerState::Closed,
            "an hour passed",
            0,
            3600,
            Some(501),
            Vec::new(),
        ),
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

// ---- camera ---------------------------------------------------------------

/// The agent's own finding behind a sample payload: the wire record is
/// the `lenscap scan --json` shape, so it reads straight back.
fn model_of(d: &ev::DetectionFinding) -> Finding {
    serde_json::from_value(serde_json::to_value(&d.finding).unwrap()).unwrap()
}

/// docs/events.md shows `samples::docs_camera_chain`; the agent must
/// write exactly those payloads from the same findings and news.
#[test]
fn camera_samples_are_what_the_agent_writes() {
    use ev::samples;
    let chain = samples::docs_camera_chain();
    let mut seen = Vec::new();
    for event in &chain {
        let ours = match &event.body {
            Body::DetectionFinding(d) => {
                seen.push(d.finding.kind);
                detection_finding(&model_of(d), d.activity, event.mode)
            }
            Body::AgentHealth(h) => match &h.status {
                ev::HealthStatus::PermissionMissing { detail, .. } => {
                    tcc_unreadable(std::path::Path::new(samples::USER_TCC_DB), detail)
                }
                ev::HealthStatus::PermissionRestored { .. } => {
                    tcc_readable(std::path::Path::new(samples::USER_TCC_DB))
                }
                ev::HealthStatus::CameraWatch { state, detail } => camera_watch(*state, detail),
                other => panic!("no conversion checked for {other:?}"),
            },
            other => panic!("unexpected sample {other:?}"),
        };
        assert_eq!(ours, event.body, "seq {}", event.seq);
        round_trip(ours, event.mode);
    }
    assert!(seen.contains(&ev::FindingKind::CameraGrant));
    assert!(seen.contains(&ev::FindingKind::CameraUse));
}

fn incident_finding() -> Finding {
    model_of(&ev::samples::camera_incident())
}

fn grant_finding() -> Finding {
    model_of(&ev::samples::camera_grant())
}

fn text_of(f: &Finding, activity: FindingActivity, mode: ev::Mode) -> (String, String) {
    let event = round_trip(detection_finding(f, activity, mode), mode);
    let Body::DetectionFinding(d) = event.body else {
        panic!("not a finding")
    };
    assert_eq!(d.finding_info.uid, finding_uid(f));
    (d.finding_info.title, d.message)
}

#[test]
fn camera_uids_are_stable_and_distinct() {
    let grant = grant_finding();
    let uid = finding_uid(&grant);
    assert_eq!(
        uid,
        "camera_grant:camera:bundle_id:us.zoom.xos:/Users/jdoe/Library/Application Support/com.apple.TCC/TCC.db"
    );
    // Same grant, any verdict or activity: same key.
    let mut judged_again = grant.clone();
    judged_again.verdict = Verdict::Allow;
    judged_again.reasons = vec!["re-read".into()];
    assert_eq!(finding_uid(&judged_again), uid);
    // Each identifying part changes the key.
    let variants: [fn(&mut model::CameraRef); 4] = [
        |c| c.service = "microphone".into(),
        |c| c.client_type = Some("path".into()),
        |c| c.client = "com.example.other".into(),
        |c| {
            c.database = Some(PathBuf::from(
                "/Library/Application Support/com.apple.TCC/TCC.db",
            ))
        },
    ];
    let mut keys = vec![uid];
    for change in variants {
        let mut g = grant.clone();
        change(g.camera.as_mut().unwrap());
        keys.push(finding_uid(&g));
    }
    let mut distinct = keys.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), keys.len(), "{keys:#?}");

    let session = incident_finding();
    assert_eq!(
        finding_uid(&session),
        "camera_use:4242:1764312086200000:us.zoom.xos"
    );
    // The stop carries a duration and the same key as the start.
    let mut stopped = session.clone();
    stopped.camera.as_mut().unwrap().duration_seconds = Some(95);
    assert_eq!(finding_uid(&stopped), finding_uid(&session));
    // A reused pid is another process, so another session.
    let mut reused = session.clone();
    reused.process.as_mut().unwrap().start_time.unix_us += 1;
    assert_ne!(finding_uid(&reused), finding_uid(&session));
    // Linux names the device.
    let mut linux = session.clone();
    linux.camera.as_mut().unwrap().device = Some(PathBuf::from("/dev/video0"));
    assert_eq!(
        finding_uid(&linux),
        "camera_use:4242:1764312086200000:/dev/video0"
    );
    // No process read (a log line named only the bundle, or the process
    // was gone): client and start.
    let mut no_pid = session.clone();
    no_pid.process = None;
    assert_eq!(
        finding_uid(&no_pid),
        "camera_use:us.zoom.xos:2025-11-28T06:41:28Z"
    );
    // A camera finding keeps its own key even if it also names a listener.
    let mut with_listener = session;
    with_listener.listener = zoom_finding().listener;
    assert!(finding_uid(&with_listener).starts_with("camera_use:"));
}

#[test]
fn camera_grant_texts() {
    let mut f = grant_finding();
    let (title, message) = text_of(&f, FindingActivity::Create, ev::Mode::Monitor);
    assert_eq!(title, "us.zoom.xos may use the camera");
    assert_eq!(
        message,
        "New camera grant: us.zoom.xos may use the camera (user consent)"
    );
    assert_eq!(
        text_of(&f, FindingActivity::Update, ev::Mode::Monitor).1,
        "Camera grant changed: us.zoom.xos may use the camera (user consent)"
    );
    assert_eq!(
        text_of(&f, FindingActivity::Close, ev::Mode::Monitor).1,
        "Camera grant removed: us.zoom.xos is no longer listed for the camera"
    );

    // A grant a flagged helper holds (the judge rates only those critical).
    let c = f.camera.as_mut().unwrap();
    c.client = "/Users/jdoe/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener".into();
    c.client_type = Some("path".into());
    f.severity = Severity::Critical;
    f.rule = Some("catalog:zoom-opener".into());
    assert_eq!(
        text_of(&f, FindingActivity::Create, ev::Mode::Remediate).1,
        "The flagged helper /Users/jdoe/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener may use the camera (user consent)"
    );

    // An admin deny rule (high): says which rule.
    let mut f = grant_finding();
    f.severity = Severity::High;
    f.rule = Some("rule:no-screen-recorders".into());
    let c = f.camera.as_mut().unwrap();
    c.service = "screen_capture".into();
    c.reason = Some("user_set".into());
    assert_eq!(
        text_of(&f, FindingActivity::Create, ev::Mode::Remediate).1,
        "New screen capture grant: us.zoom.xos may use screen capture (set by the user in System Settings); flagged by rule:no-screen-recorders"
    );

    // Other decisions and services, worded as the judge words them.
    let mut f = grant_finding();
    let c = f.camera.as_mut().unwrap();
    c.service = "all_files".into();
    c.auth = "denied".into();
    c.reason = Some("other:9".into());
    let (title, message) = text_of(&f, FindingActivity::Create, ev::Mode::Monitor);
    assert_eq!(title, "us.zoom.xos is denied all files (Full Disk Access)");
    assert_eq!(
        message,
        "New Full Disk Access grant: us.zoom.xos is denied all files (Full Disk Access) (reason 9)"
    );
}

#[test]
fn camera_session_texts() {
    let f = incident_finding();
    let (title, message) = text_of(&f, FindingActivity::Create, ev::Mode::Remediate);
    assert_eq!(title, "Camera in use by zoom.us (pid 4242)");
    assert_eq!(
        message,
        "Camera turned on 3 s after a connection to the flagged helper on 127.0.0.1:19421: in use by zoom.us (pid 4242)"
    );

    // Stop: how long it was on; a stop never says "left in place".
    let mut stopped = f.clone();
    stopped.camera.as_mut().unwrap().duration_seconds = Some(95);
    stopped.verdict = Verdict::Remediate;
    let (title_at_stop, message) = text_of(&stopped, FindingActivity::Close, ev::Mode::Monitor);
    assert_eq!(title_at_stop, title);
    assert_eq!(
        message,
        "Camera no longer in use by zoom.us (pid 4242) after 95 s"
    );
    stopped.camera.as_mut().unwrap().duration_seconds = None;
    assert_eq!(
        text_of(&stopped, FindingActivity::Close, ev::Mode::Monitor).1,
        "Camera no longer in use by zoom.us (pid 4242)"
    );

    // The helper itself on camera: remediate, contained with it — or, in
    // monitor mode, left in place.
    let mut helper = f.clone();
    helper.verdict = Verdict::Remediate;
    helper.process = Some(zoom_opener());
    helper.camera.as_mut().unwrap().incident = None;
    assert_eq!(
        text_of(&helper, FindingActivity::Create, ev::Mode::Remediate).1,
        "Camera opened by the undisclosed helper ZoomOpener (pid 1873); contained with it"
    );
    assert_eq!(
        text_of(&helper, FindingActivity::Create, ev::Mode::Monitor).1,
        "Camera opened by the undisclosed helper ZoomOpener (pid 1873) (monitor mode: left in place)"
    );
    let mut helper_after_call = helper.clone();
    helper_after_call.camera.as_mut().unwrap().incident =
        f.camera.as_ref().unwrap().incident.clone();
    helper_after_call
        .camera
        .as_mut()
        .unwrap()
        .incident
        .as_mut()
        .unwrap()
        .seconds_before = 0;
    assert_eq!(
        text_of(
            &helper_after_call,
            FindingActivity::Create,
            ev::Mode::Remediate
        )
        .1,
        "Camera opened by the undisclosed helper ZoomOpener (pid 1873) less than a second after a connection to it on 127.0.0.1:19421; contained with it"
    );

    // An IPv6 helper is bracketed.
    let mut v6 = f.clone();
    v6.camera
        .as_mut()
        .unwrap()
        .incident
        .as_mut()
        .unwrap()
        .helper
        .address = "::1".parse().unwrap();
    assert!(
        text_of(&v6, FindingActivity::Create, ev::Mode::Monitor)
            .1
            .contains("on [::1]:19421"),
    );

    // Every session is reported, allowed ones too, in plain words.
    let mut allowed = f.clone();
    allowed.verdict = Verdict::Allow;
    allowed.severity = Severity::Info;
    allowed.camera.as_mut().unwrap().incident = None;
    assert_eq!(
        text_of(&allowed, FindingActivity::Create, ev::Mode::Monitor),
        (title.clone(), title.clone())
    );
    // Tied to a flagged helper the agent may not act on.
    let mut tied = allowed.clone();
    tied.verdict = Verdict::Report;
    assert_eq!(
        text_of(&tied, FindingActivity::Create, ev::Mode::Remediate).1,
        "Camera in use by zoom.us (pid 4242), tied to a flagged helper"
    );
    // The process could not be read: the client names it, with the pid
    // the session was seen with, if any.
    let mut unread = allowed;
    unread.process = None;
    assert_eq!(
        text_of(&unread, FindingActivity::Create, ev::Mode::Monitor).0,
        "Camera in use by us.zoom.xos (pid 4242)"
    );
    unread.camera.as_mut().unwrap().pid = None;
    assert_eq!(
        text_of(&unread, FindingActivity::Create, ev::Mode::Monitor).0,
        "Camera in use by us.zoom.xos"
    );
}

#[test]
fn camera_and_tcc_health() {
    let db = std::path::Path::new("/Library/Application Support/com.apple.TCC/TCC.db");
    // A detail that does not name the database gets it in front...
    let Body::AgentHealth(h) = tcc_unreadable(db, "deploy the PPPC profile") else {
        panic!("not health")
    };
    assert_eq!(
        h.status,
        ev::HealthStatus::PermissionMissing {
            permission: "full_disk_access".into(),
            detail: "TCC database /Library/Application Support/com.apple.TCC/TCC.db: deploy the PPPC profile".into(),
        }
    );
    // ...one that does (a `parse::tcc` error) is kept as it is.
    let named = format!("cannot read TCC database {}: EPERM", db.display());
    let Body::AgentHealth(h) = tcc_unreadable(db, &named) else {
        panic!("not health")
    };
    assert_eq!(
        h.message,
        format!("Missing permission full_disk_access: {named}")
    );
    let Body::AgentHealth(h) = tcc_readable(db) else {
        panic!("not health")
    };
    assert_eq!(h.status.name(), "permission_restored");
    assert_eq!(
        h.message,
        "Permission full_disk_access restored: TCC database /Library/Application Support/com.apple.TCC/TCC.db can be read again"
    );
    for (state, start) in [
        (ev::CameraWatchState::Degraded, "Camera watch degraded: "),
        (ev::CameraWatchState::Restored, "Camera watch restored: "),
    ] {
        let body = camera_watch(state, "log stream exited");
        let event = round_trip(body, ev::Mode::Remediate);
        let Body::AgentHealth(h) = event.body else {
            panic!("not health")
        };
        assert!(h.message.starts_with(start), "{}", h.message);
        assert_eq!(
            h.status,
            ev::HealthStatus::CameraWatch {
                state,
                detail: "log stream exited".into()
            }
        );
    }
}
