//! The daemon's benchmarks (docs/benchmarks.md, "## Daemon"). Ignored by
//! default; `bench/daemon.sh` runs them on a release build:
//!
//! - `bench_listen_to_death`: a rogue helper started by the stand-in
//!   (bootstrap of a fresh KeepAlive plist, at a random moment of the
//!   sweep cycle) → from its `listen()` (its port file's mtime) to its
//!   process being gone. `SweepSeconds` 1.
//! - `bench_plist_to_quarantine`: a catalog-matched LaunchAgent plist
//!   (ZoomOpener, not running) renamed into a watched folder → until it is
//!   gone from there (moved into quarantine).
//! - `bench_idle_footprint`: the daemon idle with ~300 extra processes:
//!   VmRSS (max of 1 s samples, and VmHWM) and CPU (utime+stime over wall
//!   time), with `SweepSeconds` from `DAEMON_BENCH_SWEEP`; `CameraWatch` on (the
//!   default), off, or both in alternation (docs/benchmarks.md, "## Camera
//!   watching").
//! - `bench_camera_holders`: one `camera_holders` walk of `/proc/*/fd`,
//!   timed in-process; `bench/camera.sh` runs it beside `fuser` and `lsof`.
//!
//! Knobs: `DAEMON_BENCH_RUNS` (default 25), `DAEMON_BENCH_IDLE_SECS`
//! (default 300), `DAEMON_BENCH_PROCS` (default 300),
//! `DAEMON_BENCH_SWEEP` (idle sweep seconds, default 2),
//! `DAEMON_BENCH_CAMERA` (`on`, `off` or `both`; default `on`),
//! `DAEMON_BENCH_ROUNDS` (rounds of `both`, default 1),
//! `CAMERA_BENCH_ITERS` (default 300), `CAMERA_BENCH_DEVICE` (a file held
//! open elsewhere; default a temp file held by a `sleep`),
//! `DAEMON_BENCH_CONTAIN_SWEEP` (the latency benchmarks' `SweepSeconds`:
//! default 1, `default` for the binary's own default, or a number such
//! as 0.5), `DAEMON_BENCH_BIN` (another `lenscap` binary to run instead
//! of this tree's, for side-by-side runs against an older build).

use std::os::unix::fs::lchown;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lenscap_e2e::{
    Daemon, Proc, STANDIN_SOCK_ENV, Standin, pid_running, temp_tree, wait_until, write_config,
    write_launchd_plist,
};

use super::{ROGUE, USER_UID, chown_tree};

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `lenscap` binary of this test binary's profile (release under
/// `cargo test --release`), built if needed.
fn profile_lenscap() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(["build", "--quiet", "-p", "lenscap", "--bin", "lenscap"])
        .current_dir(workspace);
    if release {
        cmd.arg("--release");
    }
    assert!(cmd.status().unwrap().success(), "build lenscap");
    if !release {
        eprintln!("NOTE: a debug build; run bench/daemon.sh for release numbers");
    }
    profile_dir.join("lenscap")
}

/// A small PRNG for the start delays (xorshift; no crate for ten numbers).
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Rng(u64::from(seed) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// p50, p95, max of `ms` (nearest-rank).
fn percentiles(ms: &mut [f64]) -> (f64, f64, f64) {
    ms.sort_by(f64::total_cmp);
    let rank = |p: f64| ms[((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
    (rank(0.50), rank(0.95), ms[ms.len() - 1])
}

fn report(name: &str, mut ms: Vec<f64>) {
    let (p50, p95, max) = percentiles(&mut ms);
    let min = ms[0];
    println!(
        "BENCH {name}: runs={} min={min:.1}ms p50={p50:.1}ms p95={p95:.1}ms max={max:.1}ms",
        ms.len()
    );
    println!("BENCH {name} samples: {ms:.1?}");
}

/// A tree, the stand-in and a remediate-mode daemon at `SweepSeconds` 1.
struct Rig {
    root: PathBuf,
    /// Port files and staged files: outside every directory the daemon
    /// watches, so writing them cannot wake it.
    aside: tempfile::TempDir,
    standin: Standin,
    daemon: Daemon,
    _tree: tempfile::TempDir,
}

fn rig() -> Rig {
    let tree = temp_tree();
    let root = tree.path().to_path_buf();
    for d in ["Users", "Applications", "private/tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let mut keys: Vec<(&str, plist::Value)> = vec![("Mode", "remediate".into())];
    match std::env::var("DAEMON_BENCH_CONTAIN_SWEEP").as_deref() {
        Err(_) => keys.push(("SweepSeconds", 1.into())),
        Ok("default") => {}
        Ok(s) => keys.push((
            "SweepSeconds",
            plist::Value::Real(s.parse().expect("DAEMON_BENCH_CONTAIN_SWEEP: a number")),
        )),
    }
    let config = write_config(
        &root,
        &[
            keys,
            vec![
                (
                    "LaunchctlPath",
                    Standin::launchctl_path().display().to_string().into(),
                ),
                ("PlaceholderBlock", true.into()),
                // Every run is a remediation; the default circuit breaker (10
                // an hour) would fall back to monitor mode mid-benchmark.
                ("MaxRemediationsPerHour", 10_000.into()),
            ],
        ]
        .concat(),
    );
    let standin = Standin::start(&[], &root.join("launchd"));
    let sock = standin.sock_path();
    let bin = std::env::var_os("DAEMON_BENCH_BIN").map_or_else(profile_lenscap, PathBuf::from);
    let mut daemon = Daemon::spawn(&bin, &config, &[(STANDIN_SOCK_ENV, sock.as_os_str())]);
    daemon.wait_sweeps(1);
    // The helpers run as the user (the stand-in runs a gui/<uid> job as
    // that user) and write their port files here.
    let aside = temp_tree();
    chown_tree(aside.path(), USER_UID);
    Rig {
        root,
        aside,
        standin,
        daemon,
        _tree: tree,
    }
}

fn mtime(path: &Path) -> SystemTime {
    path.metadata().unwrap().modified().unwrap()
}

#[test]
#[ignore = "benchmark: bench/daemon.sh"]
fn bench_listen_to_death() {
    let runs = knob("DAEMON_BENCH_RUNS", 25);
    let mut r = rig();
    let mut rng = Rng::new();
    let mut ms = Vec::new();
    for i in 0..runs {
        let home = r.root.join(format!("Users/u{i}"));
        let exe = home.join(format!(".acme{i}/acme-helper"));
        let plist = home.join(format!("Library/LaunchAgents/com.acme.b{i}.plist"));
        let port = r.aside.path().join(format!("port{i}"));
        std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
        std::fs::copy(ROGUE, &exe).unwrap();
        let args = [exe.to_str().unwrap(), "--cors", "star", "--image"];
        let port_arg = ["--port-file", port.to_str().unwrap()];
        write_launchd_plist(
            &plist,
            &format!("com.acme.b{i}"),
            &[&args[..], &port_arg].concat(),
            true,
        );
        chown_tree(&home, USER_UID);
        // Let the plist's own rescan pass, then start at a random moment of
        // the sweep cycle: uniform over 2 s, whole cycles of a 0.5, 1 or
        // 2 s sweep alike.
        std::thread::sleep(Duration::from_millis(300 + rng.below(2000)));
        let domain = format!("gui/{USER_UID}");
        let out = r
            .standin
            .query(&["bootstrap", &domain, plist.to_str().unwrap()]);
        assert_eq!(out.code, 0, "{out:?}");
        let target = format!("{domain}/com.acme.b{i}");
        let pid = wait_until(Duration::from_secs(10), "the job's pid", || {
            r.standin.job_pid(&target)
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while pid_running(pid) {
            assert!(
                Instant::now() < deadline,
                "not stopped; log:\n{}",
                r.daemon.log()
            );
            std::thread::sleep(Duration::from_micros(500));
        }
        let died = SystemTime::now();
        let listened = wait_until(Duration::from_secs(2), "its port file", || {
            port.exists().then(|| mtime(&port))
        });
        ms.push(died.duration_since(listened).unwrap().as_secs_f64() * 1000.0);
    }
    report("listen_to_death", ms);
    r.daemon.wait_sweeps(1);
    println!("BENCH daemon status: {}", r.daemon.status().unwrap());
}

#[test]
#[ignore = "benchmark: bench/daemon.sh"]
fn bench_plist_to_quarantine() {
    let runs = knob("DAEMON_BENCH_RUNS", 25);
    let mut r = rig();
    let mut rng = Rng::new();
    let mut ms = Vec::new();
    for i in 0..runs {
        // The home, with ZoomOpener on disk, appears at once (a rename), so
        // the daemon's next watch refresh sees its LaunchAgents folder.
        let staged = r.aside.path().join(format!("z{i}"));
        let opener = staged.join(".zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener");
        std::fs::create_dir_all(opener.parent().unwrap()).unwrap();
        std::fs::write(&opener, b"#!/bin/sh\nexit 0\n").unwrap();
        std::fs::create_dir_all(staged.join("Library/LaunchAgents")).unwrap();
        chown_tree(&staged, USER_UID);
        let home = r.root.join(format!("Users/z{i}"));
        std::fs::rename(&staged, &home).unwrap();
        let real_opener = home.join(".zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener");
        let new_plist = r.aside.path().join(format!("us.zoom.ZoomOpener.{i}.plist"));
        write_launchd_plist(
            &new_plist,
            "us.zoom.ZoomOpener",
            &[real_opener.to_str().unwrap()],
            true,
        );
        lchown(&new_plist, Some(USER_UID), Some(USER_UID)).unwrap();
        std::thread::sleep(Duration::from_millis(1200 + rng.below(1000)));

        let plist = home.join("Library/LaunchAgents/us.zoom.ZoomOpener.plist");
        let written = Instant::now();
        std::fs::rename(&new_plist, &plist).unwrap();
        let deadline = written + Duration::from_secs(20);
        while plist.symlink_metadata().is_ok() {
            assert!(
                Instant::now() < deadline,
                "not removed; log:\n{}",
                r.daemon.log()
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        ms.push(written.elapsed().as_secs_f64() * 1000.0);
        let zoomus = home.join(".zoomus");
        wait_until(
            Duration::from_secs(10),
            "the placeholder at .zoomus",
            || {
                zoomus
                    .symlink_metadata()
                    .is_ok_and(|m| m.is_file())
                    .then_some(())
            },
        );
    }
    report("plist_to_quarantine", ms);
    r.daemon.wait_sweeps(1);
    let status = r.daemon.status().unwrap();
    assert_eq!(status["quarantined"].as_u64(), Some(runs), "{status:#}");
    println!("BENCH daemon status: {status}");
}

/// `(VmRSS kB, VmHWM kB)` of `pid`.
fn memory_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // After "(comm)": state is field 3, so utime (14) and stime (15) are
    // at 11 and 12.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// The 1-minute load average, as `/proc/loadavg` prints it.
fn load1() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn count_processes() -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .count()
}

/// What one idle daemon cost.
struct Idle {
    camera: bool,
    wall: f64,
    cpu: f64,
    sweeps: u64,
    rss_max_kb: u64,
}

impl Idle {
    fn cpu_pct(&self) -> f64 {
        100.0 * self.cpu / self.wall
    }

    fn ms_per_sweep(&self) -> f64 {
        1000.0 * self.cpu / self.sweeps.max(1) as f64
    }
}

fn on_off(camera: bool) -> &'static str {
    if camera { "on" } else { "off" }
}

/// A fresh remediate-mode daemon on its own tree, left idle for `secs`
/// after two warm-up sweeps (the first probes every listener once).
fn idle_run(lenscap: &Path, camera: bool, secs: u64, sweep: u64) -> Idle {
    let tree = temp_tree();
    let root = tree.path();
    for d in [
        "Users/ann/Library/LaunchAgents",
        "Applications",
        "private/tmp",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let config = write_config(
        root,
        &[
            ("Mode", "remediate".into()),
            ("SweepSeconds", sweep.into()),
            ("CameraWatch", camera.into()),
        ],
    );
    let total = count_processes();
    let mut d = Daemon::spawn(lenscap, &config, &[]);
    d.wait_sweeps(2);
    let pid = d.pid();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let load_before = load1();
    let start = Instant::now();
    let ticks0 = cpu_ticks(pid);
    let sweeps0 = d.sweeps();
    let mut rss_max = 0;
    while start.elapsed() < Duration::from_secs(secs) {
        rss_max = rss_max.max(memory_kb(pid).0);
        std::thread::sleep(Duration::from_secs(1));
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(pid) - ticks0) as f64 / hz;
    let (rss, hwm) = memory_kb(pid);
    let sweeps = d.sweeps() - sweeps0;
    let run = Idle {
        camera,
        wall,
        cpu,
        sweeps,
        rss_max_kb: rss_max,
    };
    println!(
        "BENCH idle_footprint: camera={} processes={total} sweep={sweep}s wall={wall:.0}s \
         sweeps={sweeps} cpu={cpu:.2}s ({:.3}% of one core, {:.2} ms/sweep) rss_max={:.1}MB \
         rss_end={:.1}MB hwm={:.1}MB load={load_before}->{}",
        on_off(camera),
        run.cpu_pct(),
        run.ms_per_sweep(),
        rss_max as f64 / 1024.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        load1(),
    );
    assert_eq!(d.stop().code(), Some(0));
    run
}

/// The daemon idle with ~300 extra processes. `DAEMON_BENCH_CAMERA`:
/// `on` (the shipping default, `CameraWatch` true), `off`, or `both` —
/// then `DAEMON_BENCH_ROUNDS` rounds of one daemon each way, in ABBA
/// order so a drift in the machine's load falls on both alike, and a
/// summary with the difference.
#[test]
#[ignore = "benchmark: bench/daemon.sh"]
fn bench_idle_footprint() {
    let secs = knob("DAEMON_BENCH_IDLE_SECS", 300);
    let procs = knob("DAEMON_BENCH_PROCS", 300);
    let sweep = knob("DAEMON_BENCH_SWEEP", 2);
    let rounds = knob("DAEMON_BENCH_ROUNDS", 1);
    let camera = std::env::var("DAEMON_BENCH_CAMERA").unwrap_or_else(|_| "on".into());
    let order: Vec<bool> = match camera.as_str() {
        "on" => vec![true],
        "off" => vec![false],
        "both" => vec![false, true],
        other => panic!("DAEMON_BENCH_CAMERA={other:?}: on, off or both"),
    };
    let _load: Vec<Proc> = (0..procs)
        .map(|_| Proc::spawn(Command::new("sleep").arg("3600").stdout(Stdio::null())))
        .collect();
    // Built once: every run, on or off, uses the same binary.
    let lenscap = profile_lenscap();
    let mut runs = Vec::new();
    for round in 0..rounds {
        let mut this = order.clone();
        if round % 2 == 1 {
            this.reverse();
        }
        for camera in this {
            runs.push(idle_run(&lenscap, camera, secs, sweep));
        }
    }
    if camera == "both" {
        let total = |on: bool| {
            let of: Vec<&Idle> = runs.iter().filter(|r| r.camera == on).collect();
            let wall: f64 = of.iter().map(|r| r.wall).sum();
            let cpu: f64 = of.iter().map(|r| r.cpu).sum();
            let sweeps: u64 = of.iter().map(|r| r.sweeps).sum();
            let rss = of.iter().map(|r| r.rss_max_kb).max().unwrap_or(0);
            Idle {
                camera: on,
                wall,
                cpu,
                sweeps,
                rss_max_kb: rss,
            }
        };
        let (on, off) = (total(true), total(false));
        for t in [&on, &off] {
            println!(
                "BENCH idle_camera {}: wall={:.0}s sweeps={} cpu={:.2}s ({:.3}% of one core, \
                 {:.2} ms/sweep) rss_max={:.1}MB",
                on_off(t.camera),
                t.wall,
                t.sweeps,
                t.cpu,
                t.cpu_pct(),
                t.ms_per_sweep(),
                t.rss_max_kb as f64 / 1024.0,
            );
        }
        println!(
            "BENCH idle_camera difference (on - off): {:+.3}% of one core, {:+.2} ms/sweep, \
             rss_max {:+.1}MB",
            on.cpu_pct() - off.cpu_pct(),
            on.ms_per_sweep() - off.ms_per_sweep(),
            (on.rss_max_kb as f64 - off.rss_max_kb as f64) / 1024.0,
        );
    }
}

/// CPU time of the calling thread, in seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// One `camera_holders` walk — what every daemon sweep does with
/// `CameraWatch` on (Linux) — timed in-process over
/// `CAMERA_BENCH_ITERS` calls (default 300, after 10 warm-up calls), with
/// `DAEMON_BENCH_PROCS` extra `sleep`s (default 300). The device is
/// `CAMERA_BENCH_DEVICE` when set (a file some other process holds open,
/// as `bench/camera.sh` arranges so `fuser` and `lsof` look for the same
/// file), else a temp file held open here by a `sleep`.
#[test]
#[ignore = "benchmark: bench/camera.sh"]
fn bench_camera_holders() {
    use lenscap::observe::camera::{CameraDevices, camera_holders};

    let iters = knob("CAMERA_BENCH_ITERS", 300);
    let procs = knob("DAEMON_BENCH_PROCS", 300);
    let tree = temp_tree();
    let mut holder = None;
    let device = match std::env::var_os("CAMERA_BENCH_DEVICE") {
        Some(d) => PathBuf::from(d),
        None => {
            let device = tree.path().join("video0");
            let file = std::fs::File::create(&device).unwrap();
            holder = Some(Proc::spawn(Command::new("sleep").arg("3600").stdout(file)));
            device
        }
    };
    let _load: Vec<Proc> = (0..procs)
        .map(|_| Proc::spawn(Command::new("sleep").arg("3600").stdout(Stdio::null())))
        .collect();
    let pattern = device.display().to_string();
    let devices = CameraDevices::new(&[pattern.as_str()]).unwrap();
    let proc_root = Path::new("/proc");
    let found = camera_holders(proc_root, &devices).unwrap();
    assert!(
        found.iter().any(|h| h.device == device),
        "no holder of {} found: {found:?}",
        device.display()
    );
    if let Some(h) = &holder {
        assert!(found.iter().any(|f| f.pid == h.pid()), "{found:?}");
    }
    let processes = count_processes();
    let fds: usize = std::fs::read_dir(proc_root)
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_dir(e.path().join("fd")).ok())
        .map(|fd| fd.count())
        .sum();
    for _ in 0..10 {
        camera_holders(proc_root, &devices).unwrap();
    }
    let load_before = load1();
    let mut wall_ms = Vec::new();
    let cpu0 = thread_cpu();
    for _ in 0..iters {
        let t = Instant::now();
        let found = camera_holders(proc_root, &devices).unwrap();
        wall_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(!found.is_empty());
    }
    let cpu_ms = (thread_cpu() - cpu0) * 1000.0 / iters as f64;
    let (p50, p95, max) = percentiles(&mut wall_ms);
    let mean = wall_ms.iter().sum::<f64>() / wall_ms.len() as f64;
    println!(
        "BENCH camera_holders: processes={processes} fds={fds} calls={iters} min={:.3}ms \
         p50={p50:.3}ms mean={mean:.3}ms p95={p95:.3}ms max={max:.3}ms cpu={cpu_ms:.3}ms/call \
         load={load_before}->{}",
        wall_ms[0],
        load1(),
    );
}
