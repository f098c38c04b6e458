//! The Zoom attack with a one-shot request: a page `fetch`es the flagged
//! helper once (connect, request, answer, close, well inside one sweep
//! interval) and a camera turns on within `CameraCorrelationSeconds`. The
//! sweep never sees that connection open (`SweepSeconds` is an hour and
//! no sweep runs while it exists); the kernel's report of the closed
//! connection (Linux sock_diag destroy groups, subscribed while the helper
//! is flagged) is what ties the session to the helper: one critical
//! incident.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::{CREATE, Setup, Slot, activity, camera_events_of, hold_open, wait_event};

/// Wide: the camera session is seen at the sweep the test triggers, a
/// second or two after the request on a loaded machine.
const CORRELATION: u64 = 60;

#[test]
fn a_one_shot_request_then_the_camera_is_one_critical_incident() {
    // Alone: another test's daemon would probe this helper, and a probe is
    // a connection too.
    let s = Setup::in_slot(
        Slot::exclusive(),
        "monitor",
        false,
        &[],
        &[
            ("CameraCorrelationSeconds", CORRELATION.into()),
            // The timer never fires during the test: only the start, the
            // probe's result and the test's own trigger run a sweep.
            ("SweepSeconds", 3600.into()),
        ],
    );
    let mut d = s.start_daemon();
    let port = s.port;
    wait_event(
        &s.config,
        &d,
        Duration::from_secs(20),
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

    // The page's fetch: one request, answered, closed by both sides.
    let sweeps_before = d.sweeps();
    {
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client
            .write_all(
                format!(
                    "GET /launch?action=join HTTP/1.1\r\nHost: localhost:{port}\r\n\
                     Origin: http://evil.example\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap();
        let mut head = [0u8; 12];
        client.read_exact(&mut head).unwrap();
        assert!(head.starts_with(b"HTTP/1."), "the helper answered");
    }
    assert_eq!(
        d.sweeps(),
        sweeps_before,
        "a sweep ran while the connection was open; the test shows nothing"
    );

    // The camera turns on, in a process that is not the helper, and the
    // daemon looks (a write to the helper's plist is a persistence
    // trigger: one sweep, no timer).
    let cam = hold_open(&s.video);
    let cam_pid = cam.pid();
    let plist = std::fs::read(&s.plist).unwrap();
    std::fs::write(&s.plist, &plist).unwrap();
    let start = wait_event(
        &s.config,
        &d,
        Duration::from_secs(15),
        "the camera session's start",
        |all| {
            camera_events_of(all, cam_pid)
                .into_iter()
                .find(|e| activity(e) == Some(CREATE))
                .cloned()
        },
    );
    let f = &start["payload"]["finding"];
    assert_eq!(
        f["severity"],
        "critical",
        "{start:#}\ndaemon log:\n{}",
        d.log()
    );
    assert_eq!(f["verdict"], "report", "{start:#}");
    let incident = &f["camera"]["incident"];
    assert_eq!(
        incident["helper"]["port"].as_u64(),
        Some(u64::from(port)),
        "{start:#}"
    );
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
    // One incident for the one session.
    let incidents = camera_events_of(&s.events(), cam_pid)
        .into_iter()
        .filter(|e| activity(e) == Some(CREATE))
        .count();
    assert_eq!(incidents, 1);
    drop(cam);
    assert_eq!(d.stop().code(), Some(0), "clean stop; log:\n{}", d.log());
}
