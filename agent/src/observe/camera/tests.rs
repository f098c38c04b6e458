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
fn device_globs_are_tested_after_their_literal_head() {
    assert_eq!(literal_head("/dev/video*"), "/dev/video");
    assert_eq!(literal_head("/dev/{video,media}*"), "/dev/");
    assert_eq!(literal_head(r"/dev/a\*"), "/dev/a");
    assert_eq!(literal_head("**/video0"), "");
    assert_eq!(literal_head("/dev/video0"), "/dev/video0");
    let patterns = ["/dev/video*", "/dev/v4l/**/by-id/*", "**/camera?"];
    let devices = CameraDevices::new(&patterns).unwrap();
    // The reference: every glob compiled up front, as rule paths are.
    let reference: Vec<_> = patterns
        .iter()
        .map(|p| crate::config::compile_path_glob(p).unwrap())
        .collect();
    for path in [
        "/dev/video0",
        "/dev/video",
        "/dev/videos/x",
        "/dev/v4l/a/by-id/usb",
        "/dev/v4l/by-id/usb",
        "/x/camera1",
        "/x/camera12",
        "/dev/null",
        "/tmp/video0",
        "socket:[1]",
    ] {
        let path = Path::new(path);
        let expected = reference.iter().any(|g| g.is_match(path));
        assert_eq!(devices.matches(path), expected, "{path:?}");
    }
    // Only the head check runs until a path passes it.
    let devices = CameraDevices::new(&["/dev/video*"]).unwrap();
    assert!(!devices.matches(Path::new("/dev/null")));
    assert!(!devices.matches(Path::new("/tmp/video0")));
    assert!(!devices.compiled());
    assert!(devices.matches(Path::new("/dev/video3")));
    assert!(devices.compiled());
    // An invalid glob is refused when the set is made, not when a path
    // first reaches it.
    assert!(matches!(
        CameraDevices::new(&["/dev/[video"]),
        Err(CameraError::InvalidGlob { .. })
    ));
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

// ------------------------------------------------------- current_sessions

use crate::config::Config;
use crate::model::{HostInfo, Listener, PersistenceItem, ProcessIdentity, Signature};
use crate::platform::{CameraSource, Established, Native, Platform, PlatformError};

fn config_for(dir: &Path) -> Config {
    Config {
        camera_devices: vec![format!("{}/dev/video*", dir.display())],
        ..Config::default()
    }
}

/// `bash` opens the file on fd 3 and execs `sleep`, keeping the PID.
fn hold(file: &Path) -> Child {
    Command::new("bash")
        .args(["-c", "exec 3<\"$1\"; exec sleep 30", "bash"])
        .arg(file)
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn current_sessions_finds_a_real_holder_with_the_native_platform() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dev")).unwrap();
    let video = dir.path().join("dev/video0");
    std::fs::write(&video, b"").unwrap();
    let config = config_for(dir.path());
    let platform = Native::new(config.tools());
    assert!(matches!(
        platform.camera_source(),
        CameraSource::ProcFds { .. }
    ));

    let children = Children(vec![hold(&video)]);
    let pid = children.0[0].id();
    let before = unix_now_us();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut errors = Vec::new();
    let sessions = loop {
        let sessions = current_sessions(&platform, &config, &mut errors);
        if sessions.iter().any(|s| s.pid == Some(pid)) || Instant::now() > deadline {
            break sessions;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(errors.is_empty(), "{errors:?}");
    let mine: Vec<_> = sessions.iter().filter(|s| s.pid == Some(pid)).collect();
    assert_eq!(mine.len(), 1, "{sessions:?}");
    assert_eq!(mine[0].device.as_deref(), Some(video.as_path()));
    assert_eq!(mine[0].bundle_id, None);
    // "Since" is the snapshot's time, not the process's start.
    assert!(mine[0].since_unix_us >= before && mine[0].since_unix_us <= unix_now_us());

    // CameraWatch off: nothing is looked at.
    let off = Config {
        camera_watch: false,
        ..config.clone()
    };
    assert!(current_sessions(&platform, &off, &mut errors).is_empty());
    assert!(errors.is_empty());

    // A CameraDevices glob that does not compile is a scan error, not a
    // panic and not a silently empty answer.
    let bad = Config {
        camera_devices: vec!["/dev/video[0".into()],
        ..config.clone()
    };
    assert!(current_sessions(&platform, &bad, &mut errors).is_empty());
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].source, SOURCE);
    assert!(errors[0].message.contains("/dev/video[0"), "{errors:?}");
    drop(children);
}

/// The native platform, but answering as a Mac would for the camera: the
/// unified log on a given OS version.
struct MacLike {
    native: Native,
    os_version: Option<String>,
}

impl Platform for MacLike {
    fn host_info(&self) -> HostInfo {
        HostInfo {
            os: "macos".into(),
            os_version: self.os_version.clone(),
            ..self.native.host_info()
        }
    }
    fn listeners(&self) -> Result<Vec<Listener>, PlatformError> {
        self.native.listeners()
    }
    fn process(&self, pid: u32) -> Result<ProcessIdentity, PlatformError> {
        self.native.process(pid)
    }
    fn check_signature(&self, path: &Path) -> Signature {
        self.native.check_signature(path)
    }
    fn login_items(&self) -> Result<Vec<PersistenceItem>, PlatformError> {
        self.native.login_items()
    }
    fn camera_source(&self) -> CameraSource {
        CameraSource::UnifiedLog
    }
    fn established_to(
        &self,
        ports: &std::collections::BTreeSet<u16>,
    ) -> Result<Vec<Established>, PlatformError> {
        self.native.established_to(ports)
    }
    fn notify_user(&self, uid: Option<u32>, title: &str, message: &str) -> Result<(), String> {
        self.native.notify_user(uid, title, message)
    }
    fn console_users(&self) -> Result<Vec<u32>, crate::platform::PlatformError> {
        self.native.console_users()
    }
    fn user_name_of(&self, uid: u32) -> Option<String> {
        self.native.user_name_of(uid)
    }
}

/// A `log show` line in the SystemStatus (pre-13.3) shape listing `pids`.
fn system_status_line(at: &str, pids: &[u32]) -> String {
    let tokens: String = pids
        .iter()
        .map(|p| {
            format!("<X> {{ auditToken = <BSAuditToken: 0x1; AUID: 501; PID: {p}; ASID: 1>; }};")
        })
        .collect();
    serde_json::json!({
        "eventType": "logEvent",
        "subsystem": "com.apple.SystemStatus",
        "processID": 402,
        "timestamp": at,
        "eventMessage": format!("Server data changed for media domain: <D> {{ cameraAttributions = <STListData: 0x1> {{ {tokens} }}; }};"),
    })
    .to_string()
}

fn log_timestamp(unix_us: u64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_us) * 1000).unwrap();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+0000",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.microsecond()
    )
}

#[test]
fn current_sessions_from_the_log_keep_only_live_original_processes() {
    let dir = tempfile::tempdir().unwrap();
    let children = Children(vec![
        Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
        Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    ]);
    let (live, reused) = (children.0[0].id(), children.0[1].id());
    let mut gone = Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    let now = unix_now_us();
    // An hour ago `reused`'s PID had the camera (its process then was
    // another one: ours started just now); now `live` and `gone_pid` do.
    let text = format!(
        "Filtering the log data using \"…\"\n{}\n{}\n",
        system_status_line(&log_timestamp(now - 3_600_000_000), &[reused]),
        system_status_line(&log_timestamp(now), &[reused, live, gone_pid]),
    );
    let lines = dir.path().join("lines");
    std::fs::write(&lines, text).unwrap();
    let script = dir.path().join("log");
    let args_file = dir.path().join("args");
    // Written by a child so no write descriptor of ours can leak into
    // another test's fork (ETXTBSY on exec).
    let made = Command::new("/bin/sh")
        .args([
            "-c",
            r#"printf '#!/bin/sh\nprintf "%%s\\n" "$@" > "%s"\ncat "%s"\n' "$2" "$3" > "$1"; chmod 755 "$1""#,
            "sh",
        ])
        .arg(&script)
        .arg(&args_file)
        .arg(&lines)
        .status()
        .unwrap();
    assert!(made.success());
    let config = Config {
        log_path: script,
        ..Config::default()
    };
    let platform = MacLike {
        native: Native::new(config.tools()),
        os_version: Some("12.7.4".into()),
    };
    let mut errors = Vec::new();
    let sessions = current_sessions(&platform, &config, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    let args = std::fs::read_to_string(&args_file).unwrap();
    assert!(args.starts_with("show\n"), "{args}");
    assert!(args.contains("com.apple.SystemStatus"), "{args}");
    assert_eq!(
        sessions,
        vec![crate::model::CameraSessionObservation {
            pid: Some(live),
            bundle_id: None,
            device: None,
            since_unix_us: now,
        }],
        "gone {gone_pid}, reused {reused}"
    );

    // Version unknown: said so, and the 14+ messages are looked for.
    let unknown = MacLike {
        native: Native::new(config.tools()),
        os_version: None,
    };
    current_sessions(&unknown, &config, &mut errors);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].message.contains("unknown"), "{errors:?}");
    let args = std::fs::read_to_string(&args_file).unwrap();
    assert!(args.contains("com.apple.controlcenter"), "{args}");

    // `log` failing is a scan error naming it.
    errors.clear();
    let broken = Config {
        log_path: dir.path().join("no-log"),
        ..Config::default()
    };
    assert!(current_sessions(&platform, &broken, &mut errors).is_empty());
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].path.as_deref(),
        Some(dir.path().join("no-log").as_path())
    );
    drop(children);
}

#[test]
fn os_versions() {
    assert_eq!(parse_os_version("14.5"), Some((14, 5)));
    assert_eq!(parse_os_version("15.0.1"), Some((15, 0)));
    assert_eq!(parse_os_version("13"), Some((13, 0)));
    assert_eq!(parse_os_version("13.x"), None);
    assert_eq!(parse_os_version(""), None);
}
