//! Realistic sample events: the ZoomOpener story from finding to
//! quarantine. docs/events.md shows exactly these (a test checks the file
//! against them) and the collector's tests and benchmark build on them.

use crate::{
    Action, AddressScope, AgentHealth, Body, Cors, DetectionFinding, Event, EventUid, FileTarget,
    FindingActivity, FindingInfo, FindingKind, FindingRecord, HealthStatus, Host, HttpInfo,
    ListenerInfo, Mode, Outcome, OutcomeStatus, PersistenceInfo, PersistenceKind, ProcessInfo,
    ProcessTarget, Remediation, RemediationActivity, Severity, Sha256Hex, Signature,
    SignatureStatus, StartTime, Verdict,
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
            listener: Some(ListenerInfo {
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
            http: Some(HttpInfo {
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
        let events = docs_chain();
        assert_eq!(events[0].prev_hash.as_str(), GENESIS_HASH);
        for pair in events.windows(2) {
            assert_eq!(pair[1].prev_hash, pair[0].hash().unwrap());
            assert_eq!(pair[1].seq, pair[0].seq + 1);
        }
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
            which in 0usize..5,
            at in proptest::prelude::any::<proptest::sample::Index>(),
            leaf in arb_leaf(),
        ) {
            let mut events = docs_chain();
            events.push(event(&host(), 5, 1, Mode::Monitor, Body::ProcessRemediation(kill_zoom(true))));
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
