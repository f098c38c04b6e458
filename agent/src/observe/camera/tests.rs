//! Camera-holder tests against the real `/proc` with real child processes;
//! a temp file matched by the configured glob stands in for `/dev/video0`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::parse::camera_log::CameraChange;

/// Kills and reaps the children we started, even when an assert fails.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `sh` opens `device` on fd 3 and `other` on fd 4, then *execs* `sleep`,
/// so the holder keeps the PID we were given.
fn hold_open(device: &Path, other: &Path) -> Child {
    Command::new("sh")
        .args(["-c", r#"exec 3<"$1" 4<"$2"; exec sleep 30"#, "sh"])
        .arg(device)
        .arg(other)
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

/// Snapshot until `pred` holds (the child needs a moment to exec).
fn wait_for(devices: &CameraDevices, pred: impl Fn(&[CameraHolder]) -> bool) -> Vec<CameraHolder> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let holders = camera_holders(Path::new("/proc"), devices).unwrap();
        if pred(&holders) || Instant::now() > deadline {
            return holders;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn real_process_holding_a_matching_file_is_reported_then_stops() {
    let dir = tempfile::tempdir().unwrap();
    let device = dir.path().join("video0");
    let other = dir.path().join("notes.txt");
    std::fs::write(&device, b"").unwrap();
    std::fs::write(&other, b"").unwrap();
    let devices = CameraDevices::new(&[format!("{}/video*", dir.path().display())]).unwrap();

    let mut children = Children(vec![hold_open(&device, &other)]);
    let pid = children.0[0].id();
    let holders = wait_for(&devices, |h| h.iter().any(|h| h.pid == pid));
    let mine: Vec<_> = holders.iter().filter(|h| h.pid == pid).collect();
    assert_eq!(mine.len(), 1, "{holders:?}");
    assert_eq!(mine[0].device, device);
    assert!(mine[0].start_ticks.is_some());
    // Nothing outside the glob (notes.txt, sockets, the binary) is reported.
    assert!(holders.iter().all(|h| h.device == device), "{holders:?}");

    let mut watcher = CameraWatcher::new();
    let t0 = 1_700_000_000_000_000;
    let started = watcher.update(&holders, t0);
    assert_eq!(started.len(), holders.len());
    let start = started.iter().find(|e| e.session.pid == pid).unwrap();
    assert_eq!(start.change, CameraChange::Start);
    assert_eq!(watcher.update(&holders, t0 + 500_000), vec![]);

    let mut child = children.0.remove(0);
    child.kill().unwrap();
    child.wait().unwrap();
    let holders = wait_for(&devices, |h| h.iter().all(|h| h.pid != pid));
    let stopped = watcher.update(&holders, t0 + 1_500_000);
    let stop = stopped.iter().find(|e| e.session.pid == pid).unwrap();
    assert_eq!(stop.change, CameraChange::Stop);
    assert_eq!(stop.duration_us, Some(1_500_000));
    assert_eq!(stop.session.since_unix_us, t0);
    assert!(watcher.sessions().iter().all(|s| s.pid != pid));
}

#[test]
fn watcher_sees_pid_reuse_and_several_devices() {
    let holder = |pid, ticks, dev: &str| CameraHolder {
        pid,
        start_ticks: Some(ticks),
        device: PathBuf::from(dev),
    };
    let mut watcher = CameraWatcher::new();
    let first = [
        holder(10, 100, "/dev/video0"),
        holder(10, 100, "/dev/video2"),
    ];
    let events = watcher.update(&first, 1_000);
    assert_eq!(events.len(), 2);
    assert_eq!(watcher.sessions().len(), 2);
    // Same PID, different start time: the old process is gone.
    let reused = [holder(10, 999, "/dev/video0")];
    let events = watcher.update(&reused, 3_000);
    let summary: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.change,
                e.session.start_ticks,
                e.session.device.clone(),
                e.duration_us,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                CameraChange::Stop,
                Some(100),
                PathBuf::from("/dev/video0"),
                Some(2_000)
            ),
            (
                CameraChange::Stop,
                Some(100),
                PathBuf::from("/dev/video2"),
                Some(2_000)
            ),
            (
                CameraChange::Start,
                Some(999),
                PathBuf::from("/dev/video0"),
                None
            ),
        ]
    );
    assert_eq!(watcher.update(&[], 4_000).len(), 1);
    assert!(watcher.sessions().is_empty());
}

#[test]
fn device_globs() {
    let default = CameraDevices::default();
    assert!(default.matches(Path::new("/dev/video0")));
    assert!(default.matches(Path::new("/dev/video12")));
    assert!(!default.matches(Path::new("/dev/v4l/by-id/video0")));
    assert!(!default.matches(Path::new("/dev/null")));
    assert!(CameraDevices::new(DEFAULT_CAMERA_DEVICES).is_ok());
    match CameraDevices::new(&["/dev/video[0"]) {
        Err(err @ CameraError::InvalidGlob { .. }) => {
            assert!(err.to_string().contains("/dev/video[0"), "{err}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_proc_root_finds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let holders = camera_holders(&dir.path().join("no-proc"), &CameraDevices::default()).unwrap();
    assert!(holders.is_empty());
}

#[test]
fn fake_proc_tree_with_odd_entries() {
    // A procfs-shaped tree: links that are sockets, non-numeric entries and
    // a process without an fd directory are all skipped.
    let root = tempfile::tempdir().unwrap();
    let p = root.path();
    std::fs::create_dir_all(p.join("42/fd")).unwrap();
    std::fs::create_dir_all(p.join("43")).unwrap();
    std::fs::create_dir_all(p.join("self/fd")).unwrap();
    std::os::unix::fs::symlink("/dev/video0", p.join("42/fd/3")).unwrap();
    std::os::unix::fs::symlink("/dev/video0", p.join("42/fd/7")).unwrap();
    std::os::unix::fs::symlink("socket:[1234]", p.join("42/fd/4")).unwrap();
    std::os::unix::fs::symlink("/dev/video0", p.join("self/fd/3")).unwrap();
    std::fs::write(
        p.join("42/stat"),
        "42 (cam (x) y) S 1 42 42 0 -1 4194304 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 100",
    )
    .unwrap();
    let holders = camera_holders(p, &CameraDevices::default()).unwrap();
    assert_eq!(
        holders,
        vec![CameraHolder {
            pid: 42,
            start_ticks: Some(123456),
            device: PathBuf::from("/dev/video0"),
        }]
    );
}

#[test]
fn stat_start_ticks() {
    assert_eq!(
        start_ticks("1 (init) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 9 10 11"),
        Some(9)
    );
    assert_eq!(start_ticks("1 (init) S 0"), None);
    assert_eq!(start_ticks("garbage"), None);
}

/// Cost of one snapshot with ~300 processes. Run for the numbers:
/// `cargo test -p lenscap --lib observe::camera::tests::snapshot_cost -- --ignored --nocapture`
#[test]
#[ignore = "benchmark; spawns ~300 processes"]
fn snapshot_cost_with_300_processes() {
    let count = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .count()
    };
    let mut children = Children(Vec::new());
    while count() < 300 {
        children.0.push(
            Command::new("sleep")
                .arg("60")
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    let processes = count();
    let devices = CameraDevices::default();
    let rounds = 50;
    let started = Instant::now();
    let mut fds = 0;
    for _ in 0..rounds {
        fds = camera_holders(Path::new("/proc"), &devices).unwrap().len();
    }
    let per = started.elapsed() / rounds;
    println!("camera snapshot: {processes} processes, {fds} holders, {per:?} per snapshot");
    assert!(per < Duration::from_millis(500), "{per:?}");
}
