//! Realistic sample events: the ZoomOpener story from finding to
//! quarantine, and the camera story of a second Mac in monitor mode (a
//! grant, a camera session a web page started through the helper, the
//! agent's camera and TCC health). docs/events.md shows exactly these
//! (tests check the file against them), the agent's tests check that its
//! conversions produce the same payloads, and the collector's tests and
//! benchmark build on them.

use crate::{
    Action, AddressScope, AgentHealth, Body, CameraIncident, CameraInfo, CameraWatchState, Cors,
    DetectionFinding, Event, EventUid, FileTarget, FindingActivity, FindingInfo, FindingKind,
    FindingRecord, HealthStatus, Host, HttpProbe, ListenerRef, Mode, Outcome, OutcomeStatus,
    PersistenceInfo, PersistenceKind, ProcessInfo, ProcessTarget, Remediation, RemediationActivity,
    Severity, Sha256Hex, Signature, SignatureStatus, StartTime, Verdict,
};

/// A Mac as the agent describes it.
pub fn host() -> Host {
    Host {
        hostname: "jdoe-mbp".into(),
        hardware_uuid: Some("6F1E2C3A-8B4D-4E5F-9A0B-1C2D3E4F5A6B".into()),
        serial: Some("C02XK1ABJGH5".into()),
        machine_id: None,
    }
}

/// The agent's start.
pub fn started() -> AgentHealth {
    AgentHealth {
        message: "lenscap 0.1.0 started in remediate mode".into(),
        status: HealthStatus::Started {
            pid: 412,
            os: "macOS".into(),
            os_version: Some("15.1".into()),
        },
    }
}

fn zoom_process() -> ProcessInfo {
    ProcessInfo {
        pid: 1873,
        ppid: 1,
        start_time: StartTime {
            unix_us: 1_764_312_000_123_456,
            resolution_us: 1,
        },
        path: Some("/Users/jdoe/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener".into()),
        args: vec!["/Users/jdoe/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener".into()],
        uid: 501,
        user: Some("jdoe".into()),
        name: "ZoomOpener".into(),
        interactive: false,
        bundle: Some("/Users/jdoe/.zoomus/ZoomOpener.app".into()),
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

/// ZoomOpener on localhost:19421, judged `remediate` by the catalog.
pub fn zoom_finding(verdict: Verdict, rule: Option<&str>) -> DetectionFinding {
    DetectionFinding {
        activity: FindingActivity::Create,
        message: "Undisclosed helper web server ZoomOpener listens on 127.0.0.1:19421".into(),
        finding_info: FindingInfo {
            uid: "listener:127.0.0.1:19421:/Users/jdoe/.zoomus/ZoomOpener.app".into(),
            title: "ZoomOpener listening on 127.0.0.1:19421".into(),
        },
        finding: FindingRecord {
            kind: FindingKind::Listener,
            verdict,
            severity: Severity::Critical,
            reasons: vec![
                "answers HTTP on a loopback port a browser can reach".into(),
                "lives in a hidden directory (~/.zoomus)".into(),
                "started by a login item, not by a person".into(),
                "answers foreign origins with an image (CORS bypass)".into(),
            ],
            rule: rule.map(str::to_string),
            process: Some(zoom_process()),
            processes: Vec::new(),
            listener: Some(ListenerRef {
                address: std::net::IpAddr::from([127, 0, 0, 1]),
                port: 19421,
                scope: AddressScope::Loopback,
            }),
            persistence: Some(PersistenceInfo {
                kind: PersistenceKind::LoginItem,
                path: "/Users/jdoe/.zoomus/ZoomOpener.app".into(),
                label: Some("ZoomOpener".into()),
                program: Some(
                    "/Users/jdoe/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener".into(),
                ),
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
        },
    }
}

/// Killing the helper (after verifying pid + start time + path).
pub fn kill_zoom(would_do: bool) -> Remediation<ProcessTarget> {
    Remediation {
        activity: RemediationActivity::Isolate,
        action: Action::KillProcess,
        target: ProcessTarget {
            pid: 1873,
            name: "ZoomOpener".into(),
            path: Some("/Users/jdoe/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener".into()),
            start_time_us: Some(1_764_312_000_123_456),
            uid: Some(501),
            launchd_label: None,
        },
        outcome: Outcome {
            status: if would_do {
                OutcomeStatus::NotAttempted
            } else {
                OutcomeStatus::Success
            },
            detail: would_do.then(|| "monitor mode: nothing was changed".to_string()),
        },
        would_do,
        reversible: false,
        finding_uid: Some("listener:127.0.0.1:19421:/Users/jdoe/.zoomus/ZoomOpener.app".into()),
        command_uid: Some("plan-0001".into()),
        message: "Sent SIGTERM to ZoomOpener (pid 1873)".into(),
    }
}

/// Moving the helper's bundle into the quarantine vault.
pub fn quarantine_zoom() -> Remediation<FileTarget> {
    Remediation {
        activity: RemediationActivity::Evict,
        action: Action::QuarantineFile,
        target: FileTarget {
            path: "/Users/jdoe/.zoomus/ZoomOpener.app".into(),
            quarantine_path: Some(
                "/Library/Application Support/lenscap/quarantine/plan-0001/ZoomOpener.app".into(),
            ),
            sha256: None,
            owner_uid: Some(501),
            mode: Some(0o755),
        },
        outcome: Outcome {
            status: OutcomeStatus::Success,
            detail: None,
        },
        would_do: false,
        reversible: true,
        finding_uid: Some("listener:127.0.0.1:19421:/Users/jdoe/.zoomus/ZoomOpener.app".into()),
        command_uid: Some("plan-0001".into()),
        message: "Moved ZoomOpener.app into quarantine".into(),
    }
}

// ---- the camera story ----------------------------------------------------

/// The same user's second Mac, where lenscap runs in monitor mode, so
/// ZoomOpener was left in place and a web page could use it.
pub fn camera_host() -> Host {
    Host {
        hostname: "jdoe-air".into(),
        hardware_uuid: Some("3C9A1F20-7B6E-4D5C-8A9B-0E1F2A3B4C5D".into()),
        serial: Some("FVFHK2ABQ05D".into()),
        machine_id: None,
    }
}

/// The user's TCC database, where camera grants live.
pub const USER_TCC_DB: &str = "/Users/jdoe/Library/Application Support/com.apple.TCC/TCC.db";

/// The Zoom client, started by ZoomOpener when a web page asked it to.
fn zoom_client_process() -> ProcessInfo {
    let exe = "/Applications/zoom.us.app/Contents/MacOS/zoom.us";
    ProcessInfo {
        pid: 4242,
        ppid: 1,
        start_time: StartTime {
            unix_us: 1_764_312_086_200_000,
            resolution_us: 1,
        },
        path: Some(exe.into()),
        args: vec![exe.into()],
        uid: 501,
        user: Some("jdoe".into()),
        name: "zoom.us".into(),
        interactive: false,
        bundle: Some("/Applications/zoom.us.app".into()),
        signature: Signature {
            status: SignatureStatus::Valid,
            identifier: Some("us.zoom.xos".into()),
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

fn finding_record(kind: FindingKind, severity: Severity, reasons: &[&str]) -> FindingRecord {
    FindingRecord {
        kind,
        verdict: Verdict::Report,
        severity,
        reasons: reasons.iter().map(|r| r.to_string()).collect(),
        rule: None,
        process: None,
        processes: Vec::new(),
        listener: None,
        persistence: None,
        http: None,
        camera: None,
    }
}

/// A camera grant the user gave the Zoom client since the agent last read
/// the TCC database.
pub fn camera_grant() -> DetectionFinding {
    let mut finding = finding_record(
        FindingKind::CameraGrant,
        Severity::Low,
        &["new since the previous read of this TCC database"],
    );
    finding.camera = Some(CameraInfo {
        service: "camera".into(),
        client: "us.zoom.xos".into(),
        auth: "allowed".into(),
        since: Some("2025-11-28T06:39:50Z".into()),
        client_type: Some("bundle_id".into()),
        reason: Some("user_consent".into()),
        database: Some(USER_TCC_DB.into()),
        pid: None,
        device: None,
        duration_seconds: None,
        incident: None,
    });
    DetectionFinding {
        activity: FindingActivity::Create,
        message: "New camera grant: us.zoom.xos may use the camera (user consent)".into(),
        finding_info: FindingInfo {
            uid: format!("camera_grant:camera:bundle_id:us.zoom.xos:{USER_TCC_DB}"),
            title: "us.zoom.xos may use the camera".into(),
        },
        finding,
    }
}

/// The Zoom attack as the agent reports it: a page connected to ZoomOpener
/// on 127.0.0.1:19421 and 3 s later the Zoom client had the camera on.
pub fn camera_incident() -> DetectionFinding {
    let mut finding = finding_record(
        FindingKind::CameraUse,
        Severity::Critical,
        &[
            "the camera turned on 3 s after a connection to 127.0.0.1:19421, where a helper flagged by catalog:zoom-opener listens",
            "a web page can start a call with the camera on through that helper (CVE-2019-13450)",
        ],
    );
    finding.process = Some(zoom_client_process());
    finding.camera = Some(CameraInfo {
        service: "camera".into(),
        client: "us.zoom.xos".into(),
        auth: "in_use".into(),
        since: Some("2025-11-28T06:41:28Z".into()),
        client_type: None,
        reason: None,
        database: None,
        pid: Some(4242),
        device: None,
        duration_seconds: None,
        incident: Some(CameraIncident {
            helper: ListenerRef {
                address: std::net::IpAddr::from([127, 0, 0, 1]),
                port: 19421,
                scope: AddressScope::Loopback,
            },
            helper_pid: Some(1873),
            helper_rule: Some("catalog:zoom-opener".into()),
            connection_at: "2025-11-28T06:41:25Z".into(),
            seconds_before: 3,
        }),
    });
    DetectionFinding {
        activity: FindingActivity::Create,
        message: "Camera turned on 3 s after a connection to the flagged helper on 127.0.0.1:19421: in use by zoom.us (pid 4242)".into(),
        finding_info: FindingInfo {
            uid: "camera_use:4242:1764312086200000:us.zoom.xos".into(),
            title: "Camera in use by zoom.us (pid 4242)".into(),
        },
        finding,
    }
}

/// The same camera session ending after 95 s (activity Close).
pub fn camera_session_closed() -> DetectionFinding {
    let mut d = camera_incident();
    d.activity = FindingActivity::Close;
    d.message = "Camera no longer in use by zoom.us (pid 4242) after 95 s".into();
    if let Some(c) = d.finding.camera.as_mut() {
        c.duration_seconds = Some(95);
    }
    d
}

/// The agent cannot read a TCC database (no Full Disk Access yet).
pub fn tcc_unreadable() -> AgentHealth {
    let detail = format!(
        "cannot read TCC database {USER_TCC_DB}: Operation not permitted (os error 1). The lenscap daemon needs Full Disk Access (root alone is not enough): deploy the configuration profile installer/profiles/io.lenscap.agent.pppc.mobileconfig (PPPC payload, service SystemPolicyAllFiles) through MDM"
    );
    AgentHealth {
        message: format!("Missing permission full_disk_access: {detail}"),
        status: HealthStatus::PermissionMissing {
            permission: "full_disk_access".into(),
            detail,
        },
    }
}

/// The same database readable again (the profile arrived).
pub fn tcc_readable() -> AgentHealth {
    let detail = format!("TCC database {USER_TCC_DB} can be read again");
    AgentHealth {
        message: format!("Permission full_disk_access restored: {detail}"),
        status: HealthStatus::PermissionRestored {
            permission: "full_disk_access".into(),
            detail,
        },
    }
}

/// Watching camera use failed (`healthy` false) or works again.
pub fn camera_watch(healthy: bool) -> AgentHealth {
    let (state, detail, message) = if healthy {
        let detail = "the `log stream` child is running again";
        (
            CameraWatchState::Restored,
            detail,
            format!("Camera watch restored: {detail}"),
        )
    } else {
        let detail = "the `log stream` child exited with status 1; restarting it in 30 s";
        (
            CameraWatchState::Degraded,
            detail,
            format!(
                "Camera watch degraded: {detail}. Camera use may go unreported until it is restored"
            ),
        )
    };
    AgentHealth {
        message,
        status: HealthStatus::CameraWatch {
            state,
            detail: detail.into(),
        },
    }
}

/// The camera story in the order the agent sent it (monitor mode), with
/// fixed uids: the TCC database unreadable, then readable; a new grant;
/// the incident; the session's end; the camera watch failing and coming
/// back.
pub fn docs_camera_chain() -> Vec<Event> {
    let h = camera_host();
    let bodies: [(i64, &str, Body); 7] = [
        (
            1_764_311_700_000,
            "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c01",
            Body::AgentHealth(tcc_unreadable()),
        ),
        (
            1_764_312_040_000,
            "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c02",
            Body::AgentHealth(tcc_readable()),
        ),
        (
            1_764_312_042_000,
            "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c03",
            Body::DetectionFinding(Box::new(camera_grant())),
        ),
        (
            1_764_312_088_750,
            "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c04",
            Body::DetectionFinding(Box::new(camera_incident())),
        ),
        (
            1_764_312_184_000,
            "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c05",
            Body::DetectionFinding(Box::new(camera_session_closed())),
        ),
        (
            1_764_312_300_000,
            "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c06",
            Body::AgentHealth(camera_watch(false)),
        ),
        (
            1_764_312_330_000,
            "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c07",
            Body::AgentHealth(camera_watch(true)),
        ),
    ];
    let mut events: Vec<Event> = bodies
        .into_iter()
        .zip(1u64..)
        .map(|((time, uid, body), seq)| {
            let mut e = event(&h, seq, time, Mode::Monitor, body);
            e.uid = EventUid::try_from(uid.to_string()).unwrap_or_else(|_| EventUid::new_v4());
            e
        })
        .collect();
    link(&mut events, Sha256Hex::genesis());
    events
}

/// The camera blocks of docs/events.md: `(marker name, event)`.
pub fn docs_camera_examples() -> Vec<(&'static str, Event)> {
    let chain = docs_camera_chain();
    let names = [
        "permission_missing_tcc",
        "permission_restored",
        "camera_grant",
        "camera_use",
        "camera_use_close",
        "camera_watch",
    ];
    names.into_iter().zip(chain).collect()
}

/// An event with a placeholder `prev_hash`; [`link`] fills it in.
pub fn event(host: &Host, seq: u64, time_ms: i64, mode: Mode, body: Body) -> Event {
    Event {
        uid: EventUid::new_v4(),
        time: time_ms,
        host: host.clone(),
        agent_version: "0.1.0".into(),
        mode,
        seq,
        prev_hash: Sha256Hex::genesis(),
        body,
    }
}

/// Chain `events` after an event whose hash is `prev`: each event's
/// `prev_hash` becomes the hash of the one before it. Returns the last
/// hash, to chain the next batch after.
pub fn link(events: &mut [Event], mut prev: Sha256Hex) -> Sha256Hex {
    for e in events.iter_mut() {
        e.prev_hash = prev;
        // A typed Event always serialises: no maps with non-string keys.
        prev = e
            .hash()
            .unwrap_or_else(|_| Sha256Hex::of_bytes(b"unserialisable"));
    }
    prev
}

/// The four events docs/events.md shows, in the order the agent sent them,
/// with fixed uids so the file stays the same from run to run.
pub fn docs_chain() -> Vec<Event> {
    let h = host();
    let t0 = 1_764_312_005_000;
    let uids = [
        "0b7c4a52-3f0e-4d8a-9a41-6f2b8d1c9e01",
        "5d1e8f3a-9c2b-4e7d-8f60-2a3b4c5d6e02",
        "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c03",
        "c4d3e2f1-a0b9-4c8d-a7e6-f5e4d3c2b104",
    ];
    let bodies = [
        Body::AgentHealth(started()),
        Body::DetectionFinding(Box::new(zoom_finding(
            Verdict::Remediate,
            Some("catalog:zoom-opener"),
        ))),
        Body::ProcessRemediation(kill_zoom(false)),
        Body::FileRemediation(quarantine_zoom()),
    ];
    let mut events: Vec<Event> = bodies
        .into_iter()
        .zip(uids)
        .enumerate()
        .map(|(i, (body, uid))| {
            let mut e = event(&h, i as u64 + 1, t0 + 250 * i as i64, Mode::Remediate, body);
            e.uid = EventUid::try_from(uid.to_string()).unwrap_or_else(|_| EventUid::new_v4());
            e
        })
        .collect();
    link(&mut events, Sha256Hex::genesis());
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GENESIS_HASH, Kind, canonical_hash};
    use serde_json::{Value, json};

    #[test]
    fn every_kind_round_trips_through_json() {
        let mut events = docs_chain();
        events.push(event(
            &host(),
            5,
            1,
            Mode::Monitor,
            Body::ProcessRemediation(kill_zoom(true)),
        ));
        let kinds: Vec<Kind> = events.iter().map(Event::kind).collect();
        for k in Kind::ALL {
            assert!(kinds.contains(&k), "no sample of {k:?}");
        }
        events.extend(docs_camera_chain());
        for e in events {
            let text = serde_json::to_string(&e).unwrap();
            let back: Event = serde_json::from_str(&text).unwrap();
            assert_eq!(back, e);
            let value: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(value["kind"], e.kind().as_str());
            // The collector hashes the value it received; the agent its
            // typed event. They must agree.
            assert_eq!(canonical_hash(&value), e.hash().unwrap());
            assert!(Event::from_value(value).is_ok());
        }
    }

    #[test]
    fn every_health_status_round_trips() {
        let statuses = vec![
            started().status,
            HealthStatus::Stopped {
                reason: "SIGTERM".into(),
            },
            HealthStatus::ConfigChanged {
                changed_keys: vec!["Mode".into()],
                source: "profile".into(),
            },
            HealthStatus::CircuitBreaker {
                state: crate::BreakerState::Open,
                reason: "12 remediations in 60 s".into(),
                actions_in_window: 12,
                window_seconds: 60,
                actor_uid: Some(501),
                programs: vec!["/Users/jdoe/.zoomus/ZoomOpener.app".into()],
                severity: Some(crate::Severity::Critical),
            },
            HealthStatus::OutboxFull {
                queued_events: 100_000,
                queued_bytes: 64 << 20,
                limit_bytes: 64 << 20,
                dropped_events: 3,
            },
            HealthStatus::PermissionMissing {
                permission: "full_disk_access".into(),
                detail: "cannot read /Library/Application Support/com.apple.TCC/TCC.db".into(),
            },
            tcc_readable().status,
            camera_watch(false).status,
            camera_watch(true).status,
        ];
        for status in statuses {
            let name = status.name();
            let h = AgentHealth {
                message: "m".into(),
                status,
            };
            let v = serde_json::to_value(&h).unwrap();
            assert_eq!(v["status"], name);
            assert_eq!(serde_json::from_value::<AgentHealth>(v).unwrap(), h);
        }
    }

    #[test]
    fn docs_chain_links_each_event_to_the_one_before() {
        for events in [docs_chain(), docs_camera_chain()] {
            assert_eq!(events[0].prev_hash.as_str(), GENESIS_HASH);
            for pair in events.windows(2) {
                assert_eq!(pair[1].prev_hash, pair[0].hash().unwrap());
                assert_eq!(pair[1].seq, pair[0].seq + 1);
                assert!(pair[1].time > pair[0].time);
            }
        }
    }

    #[test]
    fn new_health_statuses_have_their_wire_names() {
        let v = serde_json::to_value(camera_watch(false)).unwrap();
        assert_eq!(v["status"], "camera_watch");
        assert_eq!(v["state"], "degraded");
        let v = serde_json::to_value(camera_watch(true)).unwrap();
        assert_eq!(v["state"], "restored");
        assert_eq!(
            CameraWatchState::Restored.as_str(),
            v["state"].as_str().unwrap()
        );
        let v = serde_json::to_value(tcc_readable()).unwrap();
        assert_eq!(v["status"], "permission_restored");
        assert_eq!(v["permission"], "full_disk_access");
        // A state this version does not know is refused, not guessed.
        let mut bad = serde_json::to_value(camera_watch(true)).unwrap();
        bad["state"] = json!("sideways");
        assert!(serde_json::from_value::<AgentHealth>(bad).is_err());
    }

    #[test]
    fn camera_payloads_carry_the_camera_object() {
        let chain = docs_camera_chain();
        let v = serde_json::to_value(&chain[3]).unwrap();
        let f = &v["payload"]["finding"];
        assert_eq!(f["kind"], "camera_use");
        assert_eq!(v["payload"]["severity_id"], 5);
        assert_eq!(f["camera"]["incident"]["helper"]["port"], 19421);
        assert_eq!(f["camera"]["incident"]["seconds_before"], 3);
        // Absent optional parts are left out, not written as null.
        assert!(f["camera"].get("database").is_none());
        assert!(f["camera"].get("duration_seconds").is_none());
        let v = serde_json::to_value(&chain[4]).unwrap();
        assert_eq!(v["payload"]["activity_id"], 3);
        assert_eq!(v["payload"]["finding"]["camera"]["duration_seconds"], 95);
        // The session's start and end pair up at the collector.
        assert_eq!(
            v["payload"]["finding_info"]["uid"],
            serde_json::to_value(&chain[3]).unwrap()["payload"]["finding_info"]["uid"]
        );
        let v = serde_json::to_value(&chain[2]).unwrap();
        assert_eq!(v["payload"]["finding"]["kind"], "camera_grant");
        assert_eq!(
            v["payload"]["finding"]["camera"]["client_type"],
            "bundle_id"
        );
        assert!(v["payload"]["finding"]["camera"].get("incident").is_none());
    }

    #[test]
    fn ocsf_ids_are_written_and_checked() {
        let e = &docs_chain()[1];
        let mut v = serde_json::to_value(e).unwrap();
        assert_eq!(v["payload"]["class_uid"], 2004);
        assert_eq!(v["payload"]["type_uid"], 200401);
        assert_eq!(v["payload"]["severity_id"], 5);
        v["payload"]["class_uid"] = json!(7003);
        let err = Event::from_value(v).unwrap_err().to_string();
        assert!(err.contains("Detection Finding is class 2004"), "{err}");

        let e = &docs_chain()[2];
        let mut v = serde_json::to_value(e).unwrap();
        assert_eq!(v["payload"]["class_uid"], 7003);
        assert_eq!(v["payload"]["type_uid"], 700301);
        v["payload"]["would_do"] = json!(true);
        let err = Event::from_value(v).unwrap_err().to_string();
        assert!(err.contains("would_do"), "{err}");

        let e = &docs_chain()[3];
        let mut v = serde_json::to_value(e).unwrap();
        assert_eq!(v["payload"]["class_uid"], 7002);
        v["payload"]["process"] = json!({"pid": 1, "name": "x"});
        let err = Event::from_value(v).unwrap_err().to_string();
        assert!(err.contains("does not belong in class 7002"), "{err}");
    }

    #[test]
    fn wrong_schema_is_refused_with_the_field_named() {
        let good = serde_json::to_value(&docs_chain()[0]).unwrap();
        type Mutate = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Mutate, &str)> = vec![
            (
                "no seq",
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("seq");
                }),
                "seq",
            ),
            ("seq 0", Box::new(|v| v["seq"] = json!(0)), "seq"),
            (
                "seq too big",
                Box::new(|v| v["seq"] = json!(u64::MAX)),
                "seq",
            ),
            (
                "string seq",
                Box::new(|v| v["seq"] = json!("1")),
                "invalid type",
            ),
            (
                "bad kind",
                Box::new(|v| v["kind"] = json!("drop_table")),
                "unknown variant",
            ),
            (
                "bad uid",
                Box::new(|v| v["uid"] = json!("1; DROP TABLE events")),
                "not a UUID",
            ),
            (
                "bad hash",
                Box::new(|v| v["prev_hash"] = json!("00")),
                "SHA-256",
            ),
            ("negative time", Box::new(|v| v["time"] = json!(-5)), "time"),
            (
                "empty hostname",
                Box::new(|v| v["host"]["hostname"] = json!(" ")),
                "hostname",
            ),
            (
                "bad mode",
                Box::new(|v| v["mode"] = json!("yolo")),
                "unknown variant",
            ),
        ];
        for (name, mutate, needle) in cases {
            let mut v = good.clone();
            mutate(&mut v);
            let err = Event::from_value(v).unwrap_err().to_string();
            assert!(err.contains(needle), "{name}: {err}");
        }
    }

    #[test]
    fn unknown_fields_are_kept_in_the_hash_not_refused() {
        // A newer agent may add fields: an older collector accepts the
        // event and still hashes what it received.
        let mut v = serde_json::to_value(&docs_chain()[0]).unwrap();
        v["future_field"] = json!({"x": 1});
        let e = Event::from_value(v.clone()).unwrap();
        assert_ne!(canonical_hash(&v), e.hash().unwrap());
    }

    /// Every JSON pointer in a value, for mutation.
    fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
        out.push(at.clone());
        match v {
            Value::Object(m) => m
                .iter()
                .for_each(|(k, c)| pointers(c, format!("{at}/{k}"), out)),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, c)| pointers(c, format!("{at}/{i}"), out)),
            _ => {}
        }
    }

    fn arb_leaf() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            ".{0,40}".prop_map(Value::String),
            Just(json!([])),
            Just(json!({})),
        ]
    }

    proptest::proptest! {
        /// Received events are outside input: whatever field is replaced
        /// by whatever, reading never panics, and what reads also hashes.
        #[test]
        fn mutated_events_never_panic(
            which in 0usize..12,
            at in proptest::prelude::any::<proptest::sample::Index>(),
            leaf in arb_leaf(),
        ) {
            let mut events = docs_chain();
            events.push(event(&host(), 5, 1, Mode::Monitor, Body::ProcessRemediation(kill_zoom(true))));
            events.extend(docs_camera_chain());
            let mut v = serde_json::to_value(&events[which]).unwrap();
            let mut ps = Vec::new();
            pointers(&v, String::new(), &mut ps);
            let p = at.get(&ps).clone();
            if p.is_empty() {
                v = leaf;
            } else if let Some(slot) = v.pointer_mut(&p) {
                *slot = leaf;
            }
            if let Ok(e) = Event::from_value(v) {
                proptest::prop_assert!(e.hash().is_ok());
            }
        }
    }

    #[test]
    fn unknown_action_reads_as_other() {
        let mut v = serde_json::to_value(Body::ProcessRemediation(kill_zoom(false))).unwrap();
        v["payload"]["action"] = json!("launch_rocket");
        let b: Body = serde_json::from_value(v).unwrap();
        match b {
            Body::ProcessRemediation(r) => assert_eq!(r.action, Action::Other),
            other => panic!("{other:?}"),
        }
    }
}
