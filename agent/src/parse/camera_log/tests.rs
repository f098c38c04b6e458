//! Fixture, shape and property tests for the camera log parser. Fixture
//! sources: `tests/fixtures/camera_log/README.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/camera_log");

fn feed_fixture(name: &str) -> (Vec<CameraEvent>, CameraLogParser) {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap();
    let mut parser = CameraLogParser::new();
    let events = text.lines().flat_map(|l| parser.feed_line(l)).collect();
    (events, parser)
}

fn brief(events: &[CameraEvent]) -> Vec<(CameraChange, CameraClient, LogShape)> {
    events
        .iter()
        .map(|e| (e.change, e.client.clone(), e.shape))
        .collect()
}

fn bundle(id: &str) -> CameraClient {
    CameraClient::BundleId(id.to_string())
}

use CameraChange::{Start, Stop};

#[test]
fn sonoma_cmio_endpoint_lines() {
    let (events, parser) = feed_fixture("sonoma_cmio_endpoint.ndjson");
    assert_eq!(
        brief(&events),
        vec![
            (Start, CameraClient::Pid(901), LogShape::CmioEndpoint),
            (Stop, CameraClient::Pid(901), LogShape::CmioEndpoint),
            (Stop, CameraClient::Unknown, LogShape::CmioEndpoint),
        ]
    );
    // 2025-07-27 15:47:10.504275-0400 == 19:47:10.504275Z
    assert_eq!(events[0].at_unix_us, Some(1_753_645_630_504_275));
    assert_eq!(events[0].logger_pid, Some(311));
    let stats = parser.stats();
    assert_eq!((stats.lines, stats.not_json, stats.matched), (5, 1, 3));
}

#[test]
fn sonoma_control_center_attribution_diffs() {
    let (events, _) = feed_fixture("sonoma_controlcenter.ndjson");
    assert_eq!(
        brief(&events),
        vec![
            (
                Start,
                bundle("com.apple.PhotoBooth"),
                LogShape::ControlCenter
            ),
            (Start, bundle("us.zoom.xos"), LogShape::ControlCenter),
            (
                Stop,
                bundle("com.apple.PhotoBooth"),
                LogShape::ControlCenter
            ),
            (Stop, bundle("us.zoom.xos"), LogShape::ControlCenter),
        ]
    );
    assert!(events.iter().all(|e| e.logger_pid == Some(588)));
}

#[test]
fn ventura_device_control_pid() {
    let (events, _) = feed_fixture("ventura_13_3_device_control_pid.ndjson");
    // PID 0 in the second message is "no client": the session ends.
    assert_eq!(
        brief(&events),
        vec![
            (Start, CameraClient::Pid(90429), LogShape::DeviceControlPid),
            (Stop, CameraClient::Unknown, LogShape::DeviceControlPid),
        ]
    );
    // 2023-05-02 09:15:31.000123-0700 == 16:15:31.000123Z
    assert_eq!(events[0].at_unix_us, Some(1_683_044_131_000_123));
}

#[test]
fn monterey_system_status_lists() {
    let (events, _) = feed_fixture("monterey_systemstatus.ndjson");
    assert_eq!(
        brief(&events),
        vec![
            (Start, CameraClient::Pid(72396), LogShape::SystemStatus),
            (Start, CameraClient::Pid(72414), LogShape::SystemStatus),
            (Stop, CameraClient::Pid(72414), LogShape::SystemStatus),
            (Stop, CameraClient::Pid(72396), LogShape::SystemStatus),
        ]
    );
    // The audio attribution (PID 5555) in the same message is not a camera.
    assert!(events.iter().all(|e| e.client != CameraClient::Pid(5555)));
}

fn cc_line(path: &str, message: &str) -> String {
    serde_json::json!({
        "timestamp": "2025-07-27 16:00:00.000000-0400",
        "eventType": "logEvent",
        "messageType": "Default",
        "subsystem": "com.apple.controlcenter",
        "category": "sensor-indicators",
        "processID": 588,
        "processImagePath": path,
        "eventMessage": message,
        "formatString": "Active activity attributions changed to %{public}@",
        "machTimestamp": 1,
    })
    .to_string()
}

#[test]
fn control_center_lines_from_other_processes_are_ignored() {
    let mut parser = CameraLogParser::new();
    let started = parser.feed_line(&cc_line(
        CONTROL_CENTER_PATH,
        r#"Active activity attributions changed to ["cam:us.zoom.xos"]"#,
    ));
    assert_eq!(started.len(), 1);
    // A helper logging under ControlCenter's subsystem to hide its session.
    let spoof = parser.feed_line(&cc_line(
        "/Users/alice/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener",
        "Active activity attributions changed to []",
    ));
    assert!(spoof.is_empty());
    let stopped = parser.feed_line(&cc_line(
        CONTROL_CENTER_PATH,
        "Active activity attributions changed to []",
    ));
    assert_eq!(
        brief(&stopped),
        vec![(Stop, bundle("us.zoom.xos"), LogShape::ControlCenter)]
    );
}

#[test]
fn garbled_lists_do_not_read_as_all_stopped() {
    let mut parser = CameraLogParser::new();
    parser.feed_line(&cc_line(
        CONTROL_CENTER_PATH,
        r#"Active activity attributions changed to [cam:us.zoom.xos, mic:us.zoom.xos]"#,
    ));
    for garbled in [
        "Active activity attributions changed to [\"cam:us.zoom",
        "Active activity attributions changed to",
        "Active activity attributions changed to [\"cam:bad id with spaces\"]",
    ] {
        assert!(
            parser
                .feed_line(&cc_line(CONTROL_CENTER_PATH, garbled))
                .is_empty()
        );
    }
    // A SystemStatus block cut off mid-way is no change either.
    let cut = serde_json::json!({
        "subsystem": "com.apple.SystemStatus",
        "eventMessage": "Server data changed for media domain: <X> {\n cameraAttributions = <STListData: 0x1> {\n <BSAuditToken: 0x2; PID: 77;",
    })
    .to_string();
    assert!(parser.feed_line(&cut).is_empty());
}

#[test]
fn shape_edge_cases() {
    use super::shapes::*;
    assert_eq!(
        device_control_pid("x {\n    CMIOExtensionPropertyDeviceControlPID=42 ;\n}"),
        Some(42)
    );
    assert_eq!(
        device_control_pid("CMIOExtensionPropertyDeviceControlPID = 42"),
        None
    );
    assert_eq!(
        device_control_pid("CMIOExtensionPropertyDeviceControlPID = 99999999999;"),
        None
    );
    assert_eq!(
        cmio_endpoint(
            "[{private}7][{private}0] added <private> endpoint <private> camera <private>"
        ),
        Some((Start, CameraClient::Pid(7)))
    );
    // An endpoint that is not a camera (a microphone) is no camera start.
    assert_eq!(
        cmio_endpoint("[{private}7] added <private> endpoint <private> microphone <private>"),
        None
    );
    assert_eq!(
        cmio_endpoint("added <private> endpoint <private> camera <private>"),
        Some((Start, CameraClient::Unknown))
    );
    assert_eq!(
        cmio_endpoint("[{private}0] removed endpoint <private>"),
        Some((Stop, CameraClient::Unknown))
    );
    assert_eq!(cmio_endpoint("removed <private>"), None);
    assert_eq!(
        control_center_cameras("Active activity attributions changed to []"),
        Some(BTreeSet::new())
    );
    assert_eq!(
        system_status_camera_pids("cameraAttributions = (null);"),
        Some(BTreeSet::new())
    );
}

#[test]
fn pathological_system_status_stays_fast() {
    // Thousands of unterminated audit tokens in one near-maximal message.
    let body = "<BSAuditToken: 0x1; PID: 7".repeat(2_400);
    let message = format!("cameraAttributions = <STListData: 0x1> {{ {body} }};");
    let started = std::time::Instant::now();
    let pids = super::shapes::system_status_camera_pids(&message).unwrap();
    assert_eq!(pids, BTreeSet::from([7]));
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[test]
fn noise_is_skipped_and_counted() {
    let mut parser = CameraLogParser::new();
    let huge = format!("{{\"eventMessage\": \"{}\"}}", "a".repeat(MAX_LINE_LEN));
    for line in [
        "Filtering the log data using \"subsystem == \\\"com.apple.cmio\\\"\"",
        "",
        "{not json",
        "[1, 2, 3]",
        r#"{"subsystem": 5, "eventMessage": null}"#,
        r#"{"eventType": "activityCreateEvent", "subsystem": "com.apple.cmio", "eventMessage": "[{private}9] added a endpoint b camera c"}"#,
        r#"{"subsystem": "com.apple.cmio", "eventMessage": "[{private}9] added a endpoint b camera c", "timestamp": "yesterday", "processID": -4}"#,
        huge.as_str(),
    ] {
        let events = parser.feed_line(line);
        if line.contains("timestamp") {
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].at_unix_us, None);
            assert_eq!(events[0].logger_pid, None);
        } else {
            assert!(events.is_empty(), "{line}");
        }
    }
    let stats = parser.stats();
    assert_eq!((stats.not_json, stats.oversized), (3, 1));
}

#[test]
fn timestamp_parses() {
    assert!(!TIMESTAMP_FORMAT.is_empty());
    assert_eq!(parse_timestamp("1970-01-01 00:00:00.000001+0000"), Some(1));
    assert_eq!(parse_timestamp("2025-07-27 15:47:10-0400"), None);
}

#[test]
fn predicates_per_version() {
    let sonoma = predicate_for(14, 0);
    assert!(sonoma.contains(r#"subsystem == "com.apple.coremedia""#));
    assert!(sonoma.contains(r#"category == "sensor-indicators""#));
    assert_eq!(predicate_for(15, 2), sonoma);
    assert!(predicate_for(13, 3).contains("CMIOExtensionPropertyDeviceControlPID"));
    assert!(predicate_for(13, 2).contains("com.apple.SystemStatus"));
    assert!(predicate_for(12, 7).contains("com.apple.SystemStatus"));
    // Balanced quotes and parentheses: `log` rejects anything else.
    for p in [
        predicate_for(14, 0),
        predicate_for(13, 3),
        predicate_for(12, 0),
    ] {
        assert_eq!(p.matches('"').count() % 2, 0, "{p}");
        assert_eq!(p.matches('(').count(), p.matches(')').count(), "{p}");
    }
    let args = log_stream_args(13, 4);
    assert_eq!(
        &args[..5],
        ["stream", "--style", "ndjson", "--level", "debug"]
    );
    // The camera predicate, or tccd's grant changes (`parse::tcc_log`).
    assert_eq!(
        args.last(),
        Some(&format!(
            "({}) OR ({})",
            predicate_for(13, 4),
            crate::parse::tcc_log::log_stream_predicate()
        ))
    );
    assert_eq!(log_stream_args(14, 0)[4], "default");
}

proptest! {
    /// Arbitrary text never panics the parser.
    #[test]
    fn arbitrary_lines_never_panic(lines in proptest::collection::vec(".{0,300}", 0..20)) {
        let mut parser = CameraLogParser::new();
        for line in &lines {
            parser.feed_line(line);
        }
        prop_assert_eq!(parser.stats().lines, lines.len() as u64);
    }

    /// Arbitrary text inside a well-formed JSON line of each subsystem never
    /// panics either (exercises the shape matchers, not just the JSON gate).
    #[test]
    fn arbitrary_messages_never_panic(
        subsystem in prop_oneof![
            Just("com.apple.cmio"), Just("com.apple.coremedia"),
            Just("com.apple.controlcenter"), Just("com.apple.SystemStatus"),
        ],
        message in "(added|removed|endpoint|camera|\\[\\{private\\}[0-9]{0,12}\\]|cameraAttributions = |\\{|\\}|;|<BSAuditToken: | PID: [0-9]{0,11}|Active activity attributions changed to|\\[|\\]|\"cam:[a-z.]{0,8}\"|,| |.){0,40}",
    ) {
        let line = serde_json::json!({
            "subsystem": subsystem,
            "processImagePath": CONTROL_CENTER_PATH,
            "eventMessage": message,
        }).to_string();
        let mut parser = CameraLogParser::new();
        for event in parser.feed_line(&line) {
            if let CameraClient::Pid(pid) = event.client {
                prop_assert!(pid > 0);
            }
        }
    }

    /// Replaying the starts and stops from a sequence of attribution lists
    /// always reproduces the last list: no start or stop is lost or doubled.
    #[test]
    fn attribution_diffs_replay_to_the_current_set(
        lists in proptest::collection::vec(
            proptest::collection::btree_set("[a-c]\\.[a-c]", 0..4), 1..10)
    ) {
        let mut parser = CameraLogParser::new();
        let mut active = BTreeSet::new();
        for list in &lists {
            let items: Vec<String> = list.iter().map(|id| format!("\"cam:{id}\"")).chain(["\"mic:x.y\"".to_string()]).collect();
            let message = format!("Active activity attributions changed to [{}]", items.join(", "));
            for event in parser.feed_line(&cc_line(CONTROL_CENTER_PATH, &message)) {
                let CameraClient::BundleId(id) = event.client else { panic!("not a bundle id") };
                match event.change {
                    Start => prop_assert!(active.insert(id)),
                    Stop => prop_assert!(active.remove(&id)),
                }
            }
            prop_assert_eq!(&active, list);
        }
    }
}
