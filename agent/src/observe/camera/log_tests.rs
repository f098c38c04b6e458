//! The unified-log camera mechanism on Linux: the session tracker on the
//! real fixture lines, and `log stream` / `log show` played by shell
//! scripts standing in for `/usr/bin/log` in temp dirs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use super::*;
use crate::parse::camera_log::{
    CameraChange, CameraClient, CameraEvent, CameraLogParser, LogShape, log_stream_args,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/camera_log");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
}

fn events_of(text: &str) -> Vec<CameraEvent> {
    let mut parser = CameraLogParser::new();
    text.lines().flat_map(|l| parser.feed_line(l)).collect()
}

fn bundle(id: &str) -> CameraClient {
    CameraClient::BundleId(id.into())
}

// ---------------------------------------------------------------- sessions

#[test]
fn control_center_fixture_gives_sessions_with_exact_durations() {
    let mut tracker = SessionTracker::new();
    let out: Vec<LogSessionEvent> = events_of(&fixture("sonoma_controlcenter.ndjson"))
        .iter()
        .flat_map(|e| tracker.feed(e, 0))
        .collect();
    let brief: Vec<_> = out
        .iter()
        .map(|e| (e.change, e.session.client.clone(), e.duration_us))
        .collect();
    // 16:00:00.100100 PhotoBooth on; 16:00:05 zoom on; 16:10 PhotoBooth
    // off; 16:20 zoom off (all -0400).
    assert_eq!(
        brief,
        vec![
            (CameraChange::Start, bundle("com.apple.PhotoBooth"), None),
            (CameraChange::Start, bundle("us.zoom.xos"), None),
            (
                CameraChange::Stop,
                bundle("com.apple.PhotoBooth"),
                Some(599_899_900)
            ),
            (
                CameraChange::Stop,
                bundle("us.zoom.xos"),
                Some(1_195_000_000)
            ),
        ]
    );
    assert!(
        out.iter()
            .all(|e| e.session.shape == LogShape::ControlCenter)
    );
    assert!(tracker.sessions().is_empty());
}

fn event(
    change: CameraChange,
    client: CameraClient,
    shape: LogShape,
    at: Option<u64>,
) -> CameraEvent {
    CameraEvent {
        change,
        client,
        at_unix_us: at,
        shape,
        logger_pid: Some(311),
    }
}

#[test]
fn unknown_stop_closes_that_shape_only_and_odd_events_are_harmless() {
    use CameraChange::{Start, Stop};
    use LogShape::{CmioEndpoint, ControlCenter};
    let mut t = SessionTracker::new();
    assert_eq!(
        t.feed(
            &event(Start, CameraClient::Pid(901), CmioEndpoint, Some(1_000)),
            5
        )
        .len(),
        1
    );
    // A repeated start changes nothing; a stop for a session never seen
    // started is dropped.
    assert!(
        t.feed(
            &event(Start, CameraClient::Pid(901), CmioEndpoint, Some(1_500)),
            5
        )
        .is_empty()
    );
    assert!(
        t.feed(
            &event(Stop, CameraClient::Pid(77), CmioEndpoint, Some(1_600)),
            5
        )
        .is_empty()
    );
    // No timestamp: the caller's now.
    let started = t.feed(
        &event(Start, CameraClient::Unknown, CmioEndpoint, None),
        2_000,
    );
    assert_eq!(started[0].session.since_unix_us, 2_000);
    t.feed(
        &event(Start, bundle("us.zoom.xos"), ControlCenter, Some(2_500)),
        5,
    );
    assert_eq!(t.sessions().len(), 3);

    let stopped = t.feed(
        &event(Stop, CameraClient::Unknown, CmioEndpoint, Some(9_000)),
        5,
    );
    let brief: Vec<_> = stopped
        .iter()
        .map(|e| (e.session.client.clone(), e.duration_us))
        .collect();
    assert_eq!(
        brief,
        vec![
            (CameraClient::Pid(901), Some(8_000)),
            (CameraClient::Unknown, Some(7_000)),
        ]
    );
    // ControlCenter's session is another shape: still open.
    let left = t.sessions();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].bundle_id(), Some("us.zoom.xos"));
    assert_eq!(left[0].pid(), None);
    let obs = left[0].observation();
    assert_eq!(obs.bundle_id.as_deref(), Some("us.zoom.xos"));
    assert_eq!(
        (obs.pid, obs.device, obs.since_unix_us),
        (None, None, 2_500)
    );
}

#[test]
fn close_where_ends_sessions_the_caller_picks() {
    let mut t = SessionTracker::new();
    for pid in [10, 20] {
        t.feed(
            &event(
                CameraChange::Start,
                CameraClient::Pid(pid),
                LogShape::DeviceControlPid,
                Some(100),
            ),
            0,
        );
    }
    let closed = t.close_where(|s| s.pid() == Some(10), 600);
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].change, CameraChange::Stop);
    assert_eq!(closed[0].duration_us, Some(500));
    assert_eq!(closed[0].at_unix_us, 600);
    assert_eq!(
        t.sessions().iter().map(|s| s.pid()).collect::<Vec<_>>(),
        vec![Some(20)]
    );
    assert!(t.close_where(|_| false, 700).is_empty());
}

// ------------------------------------------------------------- stand-ins

/// Write an executable script without this process ever holding a write
/// descriptor on it: a descriptor inherited by another test thread's fork
/// would make exec fail with ETXTBSY.
fn install_script(path: &Path, body: &str) {
    let mut child = Command::new("/bin/sh")
        .args(["-c", r#"cat > "$1" && chmod 755 "$1""#, "sh"])
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("#!/bin/sh\n{body}\n").as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Is `pid` still a process of ours (running or an unreaped zombie)?
fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Running, as opposed to gone or a zombie (a grandchild reparented to an
/// init that does not reap is a zombie, not something we left running).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| !r.starts_with('Z')))
        .unwrap_or(false)
}

fn wait_for(what: &str, timeout: Duration, pred: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !pred() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn options(program: &Path, base_ms: u64, cap_ms: u64, healthy_ms: u64) -> LogStreamOptions {
    LogStreamOptions {
        program: program.to_path_buf(),
        args: log_stream_args(14, 0),
        backoff_base: Duration::from_millis(base_ms),
        backoff_cap: Duration::from_millis(cap_ms),
        healthy_after: Duration::from_millis(healthy_ms),
    }
}

/// Everything received until `until` holds for the feeds so far.
fn collect(
    rx: &Receiver<CameraFeed>,
    timeout: Duration,
    until: impl Fn(&[CameraFeed]) -> bool,
) -> Vec<CameraFeed> {
    let deadline = Instant::now() + timeout;
    let mut feeds = Vec::new();
    while !until(&feeds) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(feed) => feeds.push(feed),
            Err(_) => panic!("timed out; got {feeds:#?}"),
        }
    }
    feeds
}

fn troubles(feeds: &[CameraFeed]) -> Vec<&str> {
    feeds
        .iter()
        .filter_map(|f| match f {
            CameraFeed::Trouble(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn stream_delivers_events_then_restarts_an_exiting_child_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    std::fs::write(
        dir.path().join("lines"),
        fixture("sonoma_controlcenter.ndjson"),
    )
    .unwrap();
    let script = dir.path().join("log");
    install_script(
        &script,
        &format!(
            r#"date +%s%N >> "{d}/starts"
printf '%s\n' "$@" > "{d}/args"
cat "{d}/lines"
echo "log: the log store went away" >&2
exit 3"#
        ),
    );
    let (tx, rx) = mpsc::channel();
    let stream = LogStream::start(options(&script, 100, 800, 60_000), tx).unwrap();

    let feeds = collect(&rx, Duration::from_secs(10), |f| !troubles(f).is_empty());
    let events: Vec<CameraEvent> = feeds
        .iter()
        .filter_map(|f| match f {
            CameraFeed::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(events, events_of(&fixture("sonoma_controlcenter.ndjson")));
    assert_eq!(lines_of(&dir.path().join("args")), log_stream_args(14, 0));
    let trouble = troubles(&feeds)[0];
    assert!(trouble.contains("exit status: 3"), "{trouble}");
    assert!(trouble.contains("the log store went away"), "{trouble}");
    assert!(trouble.contains("starting it again in"), "{trouble}");

    // Restarts keep coming, further and further apart; each restarted child
    // printed a line, so each brought a Recovered.
    std::thread::sleep(Duration::from_millis(1_600));
    let starts = lines_of(&dir.path().join("starts"));
    let more: Vec<CameraFeed> = rx.try_iter().collect();
    stream.stop();
    assert!(
        (3..=7).contains(&starts.len()),
        "waits 50–100, 100–200, 200–400, 400–800 ms allow 3 to 6 starts in 1.6 s, got {}",
        starts.len()
    );
    let times: Vec<u128> = starts.iter().map(|s| s.parse().unwrap()).collect();
    let gaps: Vec<u128> = times
        .windows(2)
        .map(|w| (w[1] - w[0]) / 1_000_000)
        .collect();
    // Never a tight loop (the shortest wait is 50 ms), and growing: the
    // third wait (200–400 ms) outlasts the first (50–100 ms) by more than
    // any start-up jitter.
    assert!(gaps.iter().all(|g| *g >= 45), "gaps (ms) {gaps:?}");
    if gaps.len() >= 3 {
        assert!(gaps[gaps.len() - 1] > gaps[0], "gaps (ms) {gaps:?}");
    }
    assert!(more.contains(&CameraFeed::Recovered), "{more:#?}");
    assert!(!troubles(&more).is_empty());
}

#[test]
fn stream_recovers_after_trouble_and_stop_reaps_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let script = dir.path().join("log");
    install_script(
        &script,
        &format!(
            r#"echo $$ >> "{d}/pids"
if [ "$(wc -l < "{d}/pids")" -eq 1 ]; then
  echo "log: Cannot run while sandboxed" >&2
  exit 70
fi
echo 'Filtering the log data using "subsystem == \"com.apple.cmio\""'
exec sleep 30"#
        ),
    );
    let (tx, rx) = mpsc::channel();
    let stream = LogStream::start(options(&script, 50, 100, 60_000), tx).unwrap();
    let feeds = collect(&rx, Duration::from_secs(10), |f| {
        f.contains(&CameraFeed::Recovered)
    });
    let trouble = troubles(&feeds);
    assert_eq!(trouble.len(), 1, "{feeds:#?}");
    assert!(trouble[0].contains("exit status: 70"), "{}", trouble[0]);
    assert!(trouble[0].contains("sandboxed"), "{}", trouble[0]);
    assert_eq!(stream.starts(), 2);
    assert_eq!(stream.stats().lines, 1);

    let pids: Vec<u32> = lines_of(&dir.path().join("pids"))
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(running(pids[1]));
    let started = Instant::now();
    stream.stop();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // Reaped, not a zombie: the PID is gone entirely.
    assert!(!exists(pids[0]) && !exists(pids[1]));
    assert!(rx.try_iter().all(|f| f != CameraFeed::Recovered));
}

#[test]
fn stop_during_a_long_backoff_is_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-log");
    let (tx, rx) = mpsc::channel();
    let stream = LogStream::start(options(&missing, 600_000, 600_000, 60_000), tx).unwrap();
    let feeds = collect(&rx, Duration::from_secs(5), |f| !f.is_empty());
    let trouble = troubles(&feeds);
    assert!(trouble[0].contains("cannot start"), "{}", trouble[0]);
    assert!(trouble[0].contains(&missing.display().to_string()));
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    drop(stream);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn stop_kills_the_childs_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let script = dir.path().join("log");
    // Not `exec`: the script stays the parent of a sleep that shares its
    // stdout, as a wrapper around the real tool might.
    install_script(
        &script,
        &format!(
            r#"sleep 30 &
echo $! > "{d}/grandchild"
echo $$ > "{d}/child"
echo header
wait"#
        ),
    );
    let (tx, rx) = mpsc::channel();
    let stream = LogStream::start(options(&script, 50, 100, 60_000), tx).unwrap();
    wait_for("the script", Duration::from_secs(5), || {
        dir.path().join("grandchild").exists() && dir.path().join("child").exists()
    });
    let pid = |name: &str| -> u32 { lines_of(&dir.path().join(name))[0].parse().unwrap() };
    let (child, grandchild) = (pid("child"), pid("grandchild"));
    assert!(running(grandchild));
    let started = Instant::now();
    stream.stop();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(!exists(child));
    wait_for("the grandchild to die", Duration::from_secs(2), || {
        !running(grandchild)
    });
    assert!(troubles(&rx.try_iter().collect::<Vec<_>>()).is_empty());
}

#[test]
fn stream_stops_itself_when_nobody_listens() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    std::fs::write(
        dir.path().join("lines"),
        fixture("monterey_systemstatus.ndjson"),
    )
    .unwrap();
    let script = dir.path().join("log");
    install_script(
        &script,
        &format!(
            r#"echo $$ > "{d}/child"
while :; do cat "{d}/lines"; sleep 0.05; done"#
        ),
    );
    let (tx, rx) = mpsc::channel();
    let stream = LogStream::start(options(&script, 50, 100, 60_000), tx).unwrap();
    collect(&rx, Duration::from_secs(5), |f| !f.is_empty());
    let child: u32 = lines_of(&dir.path().join("child"))[0].parse().unwrap();
    drop(rx);
    wait_for("the child to be reaped", Duration::from_secs(5), || {
        !exists(child)
    });
    assert_eq!(stream.starts(), 1, "no restart without a listener");
    drop(stream);
}

#[test]
fn oversized_and_garbage_lines_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let cmio = fixture("sonoma_cmio_endpoint.ndjson");
    let start_line = cmio.lines().nth(1).unwrap();
    let mut bytes = format!("{{\"eventMessage\": \"{}\"}}\n", "x".repeat(200_000)).into_bytes();
    bytes.extend_from_slice(b"\x00\x01\xfe garbage\n");
    bytes.extend_from_slice(format!("{start_line}\n").as_bytes());
    std::fs::write(dir.path().join("lines"), bytes).unwrap();
    let script = dir.path().join("log");
    install_script(&script, &format!(r#"cat "{d}/lines"; exec sleep 30"#));
    let (tx, rx) = mpsc::channel();
    let stream = LogStream::start(options(&script, 50, 100, 60_000), tx).unwrap();
    let feeds = collect(&rx, Duration::from_secs(5), |f| !f.is_empty());
    match &feeds[0] {
        CameraFeed::Event(e) => assert_eq!(e.client, CameraClient::Pid(901)),
        other => panic!("{other:?}"),
    }
    let stats = stream.stats();
    assert_eq!((stats.lines, stats.oversized, stats.matched), (3, 1, 1));
}

#[test]
fn healthy_run_resets_the_backoff_and_counts_as_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let script = dir.path().join("log");
    // First run fails at once; later ones stay up (silently) for 400 ms,
    // past `healthy_after`, then exit.
    install_script(
        &script,
        &format!(
            r#"date +%s%N >> "{d}/starts"
[ "$(wc -l < "{d}/starts")" -eq 1 ] && exit 1
exec sleep 0.4"#
        ),
    );
    let (tx, rx) = mpsc::channel();
    let stream = LogStream::start(options(&script, 100, 5_000, 250), tx).unwrap();
    let feeds = collect(&rx, Duration::from_secs(10), |f| {
        f.contains(&CameraFeed::Recovered)
    });
    assert_eq!(troubles(&feeds).len(), 1);
    wait_for("five starts", Duration::from_secs(10), || {
        lines_of(&dir.path().join("starts")).len() >= 5
    });
    stream.stop();
    let times: Vec<u128> = lines_of(&dir.path().join("starts"))
        .iter()
        .map(|s| s.parse::<u128>().unwrap() / 1_000_000)
        .collect();
    // Without the reset the waits would be 50–100, 100–200, 200–400,
    // 400–800 ms; with it every wait after a healthy run is at most 100.
    for gap in times[1..].windows(2).map(|w| w[1] - w[0]) {
        assert!(gap < 400 + 100 + 250, "gap {gap} ms in {times:?}");
    }
}

// ------------------------------------------------------------- log show

#[test]
fn log_show_replays_and_returns_what_is_still_open() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let cmio = fixture("sonoma_cmio_endpoint.ndjson");
    let cc = fixture("sonoma_controlcenter.ndjson");
    // Header, zoom's endpoint added; ControlCenter's lists up to "both on",
    // then PhotoBooth off.
    let mut text = String::new();
    for line in cmio.lines().take(2).chain(cc.lines().take(6)) {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(dir.path().join("lines"), text).unwrap();
    let script = dir.path().join("log");
    install_script(
        &script,
        &format!(
            r#"printf '%s\n' "$@" > "{d}/args"
cat "{d}/lines""#
        ),
    );
    let lookback = Duration::from_secs(3600);
    let sessions =
        current_sessions_from_log(&script, 14, 5, lookback, Duration::from_secs(10)).unwrap();
    let brief: Vec<_> = sessions
        .iter()
        .map(|s| (s.shape, s.client.clone()))
        .collect();
    assert_eq!(
        brief,
        vec![
            (LogShape::CmioEndpoint, CameraClient::Pid(901)),
            (LogShape::ControlCenter, bundle("us.zoom.xos")),
        ]
    );
    // 2025-07-27 15:47:10.504275-0400
    assert_eq!(sessions[0].since_unix_us, 1_753_645_630_504_275);
    let args = lines_of(&dir.path().join("args"));
    assert_eq!(args, log_show_args(14, 5, lookback));
    assert_eq!(&args[..5], ["show", "--style", "ndjson", "--last", "60m"]);
    assert_eq!(
        args.last(),
        Some(&crate::parse::camera_log::predicate_for(14, 5))
    );
    assert!(!args.contains(&"--debug".to_string()));
    assert!(log_show_args(13, 4, lookback).contains(&"--debug".to_string()));
    assert_eq!(log_show_args(13, 4, Duration::from_secs(61))[4], "2m");
}

#[test]
fn log_show_failure_and_timeout_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let failing = dir.path().join("log-fails");
    install_script(&failing, "echo 'log: invalid predicate' >&2; exit 64");
    let err = current_sessions_from_log(
        &failing,
        14,
        0,
        Duration::from_secs(60),
        Duration::from_secs(10),
    )
    .unwrap_err();
    assert!(matches!(err, LogShowError::Failed { .. }), "{err}");
    assert!(err.to_string().contains("invalid predicate"), "{err}");
    assert!(err.to_string().contains("64"), "{err}");

    let d = dir.path().display();
    let hanging = dir.path().join("log-hangs");
    install_script(&hanging, &format!(r#"echo $$ > "{d}/pid"; exec sleep 30"#));
    let started = Instant::now();
    let err = current_sessions_from_log(
        &hanging,
        14,
        0,
        Duration::from_secs(60),
        Duration::from_millis(300),
    )
    .unwrap_err();
    assert!(matches!(err, LogShowError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let pid: u32 = lines_of(&dir.path().join("pid"))[0].parse().unwrap();
    assert!(!exists(pid), "killed and reaped");

    let missing: PathBuf = dir.path().join("nope");
    let err = current_sessions_from_log(
        &missing,
        14,
        0,
        Duration::from_secs(60),
        Duration::from_secs(1),
    )
    .unwrap_err();
    assert!(matches!(err, LogShowError::Spawn { .. }), "{err}");
}

#[test]
fn the_reaper_kills_an_orphaned_stream_once_its_daemon_is_gone() {
    use super::log_stream::spawn_reaper;
    use std::os::unix::process::CommandExt;
    // A stand-in `log stream` in its own process group, as `run_once`
    // starts it; the reaper watches the pipe a daemon would hold.
    let mut stream = Command::new("/bin/sh")
        .args(["-c", "exec sleep 30"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let (mut reaper, writer) = spawn_reaper(stream.id()).unwrap();
    // While the "daemon" lives, nothing happens.
    std::thread::sleep(Duration::from_millis(300));
    assert!(stream.try_wait().unwrap().is_none(), "killed too early");
    assert!(reaper.try_wait().unwrap().is_none());
    // The daemon dies: its end of the pipe closes.
    drop(writer);
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = stream.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "orphaned stream still running");
        std::thread::sleep(Duration::from_millis(20));
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    // The reaper was in the group it killed.
    assert_eq!(reaper.wait().unwrap().signal(), Some(libc::SIGKILL));
}

#[test]
fn tccd_grant_changes_ride_on_the_same_stream_and_impostors_are_ignored() {
    // The published microphone changes in `log stream --style ndjson`
    // form, with a line another process logged under tccd's subsystem
    // (`tests/fixtures/tcc_log/README.md`).
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let lines = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tcc_log/stream.ndjson"
    );
    let script = dir.path().join("log");
    install_script(
        &script,
        &format!(r#"cat "{lines}"; touch "{d}/done"; exec sleep 30"#),
    );
    let (tx, rx) = mpsc::channel();
    let stream = LogStream::start(options(&script, 50, 100, 60_000), tx).unwrap();
    let feeds = collect(&rx, Duration::from_secs(5), |f| {
        f.iter()
            .filter(|f| matches!(f, CameraFeed::Grant(_)))
            .count()
            >= 2
    });
    std::thread::sleep(Duration::from_millis(200));
    let more: Vec<CameraFeed> = rx.try_iter().collect();
    let grants: Vec<_> = feeds
        .iter()
        .chain(&more)
        .filter_map(|f| match f {
            CameraFeed::Grant(c) => Some(c.grant.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(grants.len(), 2, "{feeds:#?}");
    assert_eq!(grants[0].auth, crate::model::TccAuth::Allowed);
    assert_eq!(grants[1].auth, crate::model::TccAuth::Denied);
    assert_eq!(
        grants[1].last_modified,
        Some(1_674_472_949),
        "not the impostor's"
    );
    drop(stream);
}
