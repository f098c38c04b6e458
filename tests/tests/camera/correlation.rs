//! The Zoom attack as lenscap sees it: something connects to a flagged
//! helper's port, and within `CameraCorrelationSeconds` a camera turns on.
//! That session is one critical incident naming the helper, reported (the
//! camera user is not the helper, so there is nothing of its own to
//! remediate); a session with no such connection before it is allowed.
//! Both are recorded, start and stop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{
    CLOSE, CREATE, Setup, Slot, activity, camera_events_of, hold_open, same_finding, wait_event,
};

/// `CameraCorrelationSeconds` for this test: long enough for a connection
/// to be sampled by a 1-second sweep and the camera to be seen after it on
/// a loaded machine, short enough to wait out before the control.
const CORRELATION: u64 = 6;

/// The `camera_use` start and close events of `pid`, once both exist.
fn start_and_close(all: &[Value], pid: u32) -> Option<(Value, Value)> {
    let start = camera_events_of(all, pid)
        .into_iter()
        .find(|e| activity(e) == Some(CREATE))?
        .clone();
    let close = same_finding(all, &start, CLOSE)?.clone();
    Some((start, close))
}

fn start_of(all: &[Value], pid: u32) -> Option<Value> {
    camera_events_of(all, pid)
        .into_iter()
        .find(|e| activity(e) == Some(CREATE))
        .cloned()
}

#[test]
fn camera_on_after_a_connection_to_a_flagged_helper_is_a_critical_incident() {
    // Alone: another test's daemon starting now would probe this helper,
    // and that connection would fall inside the control's window.
    let s = Setup::in_slot(
        Slot::exclusive(),
        "monitor",
        false,
        &["--websocket"],
        &[("CameraCorrelationSeconds", CORRELATION.into())],
    );
    let mut d = s.start_daemon();
    // The daemon's own probe of the helper happened in the first sweep,
    // before `start_daemon` returned: the quiet period starts here.
    let started = Instant::now();
    let port = s.port;
    wait_event(
        &s.config,
        &d,
        Duration::from_secs(15),
        "the helper flagged (a remediate listener finding)",
        |all| {
            all.iter()
                .find(|e| {
                    let f = &e["payload"]["finding"];
                    f["kind"] == "listener"
                        && f["listener"]["port"].as_u64() == Some(u64::from(port))
                        && f["verdict"] == "remediate"
                })
                .map(|_| ())
        },
    );

    // Control: nothing has connected to the helper for longer than the
    // correlation window; a camera session now is an ordinary one.
    let quiet = started + Duration::from_secs(CORRELATION + 1);
    std::thread::sleep(quiet.saturating_duration_since(Instant::now()));
    let control = hold_open(&s.video);
    let control_pid = control.pid();
    let start = wait_event(
        &s.config,
        &d,
        Duration::from_secs(10),
        "the control session's start",
        |all| start_of(all, control_pid),
    );
    let f = &start["payload"]["finding"];
    assert_eq!(f["verdict"], "allow", "{start:#}");
    assert_eq!(f["severity"], "info", "{start:#}");
    assert!(f["camera"]["incident"].is_null(), "{start:#}");
    assert_eq!(
        f["camera"]["device"],
        s.video.to_str().unwrap(),
        "{start:#}"
    );
    drop(control);
    let (_, close) = wait_event(
        &s.config,
        &d,
        Duration::from_secs(10),
        "the control session's close",
        |all| start_and_close(all, control_pid),
    );
    assert!(
        close["payload"]["finding"]["camera"]["duration_seconds"]
            .as_u64()
            .is_some(),
        "{close:#}"
    );

    // The attack: a page connects to the helper (and stays connected)…
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client
        .write_all(
            format!(
                "GET / HTTP/1.1\r\nHost: localhost:{port}\r\nOrigin: http://evil.example\r\n\
                 Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    let mut head = [0u8; 12];
    client.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 101", "the helper holds the connection");
    // …the daemon sweeps at least once with it open…
    d.wait_sweeps(2);
    // …and then a camera turns on, in a process that is not the helper.
    let cam = hold_open(&s.video);
    let cam_pid = cam.pid();
    let start = wait_event(
        &s.config,
        &d,
        Duration::from_secs(10),
        "the incident session's start",
        |all| start_of(all, cam_pid),
    );
    let f = &start["payload"]["finding"];
    assert_eq!(f["severity"], "critical", "{start:#}");
    assert_eq!(f["verdict"], "report", "{start:#}");
    let incident = &f["camera"]["incident"];
    assert_eq!(
        incident["helper"]["port"].as_u64(),
        Some(u64::from(port)),
        "{start:#}"
    );
    assert_eq!(incident["helper"]["address"], "127.0.0.1", "{start:#}");
    assert_eq!(
        incident["helper_pid"].as_u64(),
        Some(u64::from(s.pid)),
        "{start:#}"
    );
    assert!(
        incident["seconds_before"]
            .as_u64()
            .is_some_and(|n| n <= CORRELATION),
        "{start:#}"
    );
    assert!(incident["connection_at"].is_string(), "{start:#}");
    drop(cam);
    wait_event(
        &s.config,
        &d,
        Duration::from_secs(10),
        "the incident session's close",
        |all| start_and_close(all, cam_pid),
    );

    // Monitor mode: the helper was flagged but not touched.
    assert!(
        lenscap_e2e::pid_running(s.pid),
        "monitor mode stopped the helper"
    );
    drop(client);
    assert_eq!(d.stop().code(), Some(0), "clean stop; log:\n{}", d.log());
}
