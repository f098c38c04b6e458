//! Probing beside the sweep (docs/daemon.md, "Probing"; docs/benchmarks.md,
//! "Probing beside the sweep"): helpers that dodge a probe are still
//! contained by the real daemon.
//!
//! - `helper_hanging_up_on_a_probe_give_away_is_contained`: a helper that
//!   closes the connection when the `User-Agent` names lenscap is judged
//!   on its HTTP answer (and its reflected CORS) and contained.
//! - `helper_silent_at_first_is_asked_again_and_contained`: a helper
//!   silent to its first visitors is first reported (whether it speaks
//!   HTTP unknown), asked again by the retry, then remediated.
//! - `bench_sweep_with_silent_listeners` (ignored; `bench/probe.sh`): one
//!   daemon sweep when 1,000 silent loopback listeners and one real helper
//!   web server (another process) appear at once: how long the sweep
//!   takes, how long until the helper's probe result is there to judge,
//!   and until every silent listener has been probed once.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lenscap::config::Config;
use lenscap::observe::signing::SignatureCache;
use lenscap::observe::sweep::SweepState;
use lenscap::platform::Native;
use lenscap_e2e::{
    Daemon, Proc, STANDIN_SOCK_ENV, Standin, lenscap_bin, pid_running, temp_tree, wait_for_file,
    wait_until, write_config, write_launchd_plist,
};
use serde_json::Value;

use super::{ROGUE, USER_UID, chown_tree};

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A configuration for in-process sweeps: probing on, no persistence, no
/// login items, everything else in `root`.
fn sweep_config(root: &Path) -> Config {
    Config {
        persistence_dirs: vec![root.join("none").display().to_string()],
        application_dirs: vec![],
        login_items: false,
        probe: true,
        state_dir: root.join("state"),
        ..Config::default()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One sweep with `n` new silent loopback listeners (bound, never
/// accepting) and a new `rogue-helper --cors star` in another process,
/// after a sweep that saw (and probed) the machine's other listeners.
/// Prints the sweep's time, then sweeps every 10 ms until the helper has a
/// probe result and until every silent listener has one.
#[test]
#[ignore = "benchmark: bench/probe.sh"]
fn bench_sweep_with_silent_listeners() {
    let n = knob("PROBE_BENCH_LISTENERS", 1000);
    let runs = knob("PROBE_BENCH_RUNS", 3);
    let tree = temp_tree();
    let config = sweep_config(tree.path());
    let platform = Native::new(config.tools());
    let cache = SignatureCache::default();
    for run in 0..runs {
        let mut state = SweepState::default();
        // Warm: the machine's own listeners, probed and settled.
        let warm = Instant::now();
        state.sweep(&platform, &config, &cache, Instant::now());
        std::thread::sleep(Duration::from_secs(2));
        state.sweep(&platform, &config, &cache, Instant::now());
        let warm = warm.elapsed();

        let silent: Vec<TcpListener> = (0..n)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let ports: BTreeSet<u16> = silent
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        let port_file = tree.path().join(format!("port{run}"));
        let _helper = Proc::spawn(
            Command::new(ROGUE)
                .args(["--cors", "star", "--port-file"])
                .arg(&port_file)
                .stdout(Stdio::null()),
        );
        let helper: u16 = wait_for_file(&port_file, Duration::from_secs(10))
            .trim()
            .parse()
            .unwrap();
        let key = |port| (IpAddr::V4(Ipv4Addr::LOCALHOST), port);

        let started = Instant::now();
        let mut swept = state.sweep(&platform, &config, &cache, Instant::now());
        let sweep = started.elapsed();
        let mut sweeps = vec![sweep];
        let mut helper_at = None;
        let mut all_at = None;
        let deadline = started + Duration::from_secs(300);
        loop {
            let probes = &swept.observations.probes;
            if helper_at.is_none() && probes.get(&key(helper)).is_some_and(|p| p.http) {
                helper_at = Some(started.elapsed());
            }
            if all_at.is_none() && ports.iter().all(|p| probes.contains_key(&key(*p))) {
                all_at = Some(started.elapsed());
            }
            if (helper_at.is_some() && all_at.is_some()) || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            let t = Instant::now();
            swept = state.sweep(&platform, &config, &cache, Instant::now());
            sweeps.push(t.elapsed());
        }
        let max_later = sweeps.iter().skip(1).max().copied().unwrap_or_default();
        sweeps.sort();
        println!(
            "BENCH sweep_silent_listeners: run={run} listeners={n} warm={:.0}ms \
             first_sweep={:.1}ms helper_probed={:.1}ms all_probed={:.1}ms \
             sweeps={} sweep_p50={:.2}ms sweep_max={:.1}ms max_after_first={:.1}ms",
            ms(warm),
            ms(sweep),
            helper_at.map_or(f64::NAN, ms),
            all_at.map_or(f64::NAN, ms),
            sweeps.len(),
            ms(sweeps[sweeps.len() / 2]),
            ms(*sweeps.last().unwrap()),
            ms(max_later),
        );
        drop(silent);
    }
}

/// A hidden helper (`rogue-helper` with `flags`) started by a user's
/// KeepAlive LaunchAgent, and a remediate-mode daemon configured into the
/// tree — the `Scenario` of `daemon.rs` with the helper's flags chosen.
struct Dodger {
    config: PathBuf,
    port: u16,
    pid: u32,
    standin: Standin,
    _tree: tempfile::TempDir,
}

const DODGER: &str = "com.acme.dodger";

impl Dodger {
    fn start(flags: &[&str]) -> Dodger {
        let tree = temp_tree();
        let root = tree.path().to_path_buf();
        let home = root.join("Users/ann");
        let exe = home.join(".acmedodger/acme-dodger");
        let plist = home.join(format!("Library/LaunchAgents/{DODGER}.plist"));
        // The helper runs as ann (the stand-in runs a gui/<uid> job as that
        // user): it writes its port where ann may write.
        let port_file = root.join("run/port");
        std::fs::create_dir_all(root.join("run")).unwrap();
        chown_tree(&root.join("run"), USER_UID);
        std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
        std::fs::copy(ROGUE, &exe).unwrap();
        let port_arg = ["--port-file", port_file.to_str().unwrap()];
        let args = [&[exe.to_str().unwrap()][..], flags, &port_arg].concat();
        write_launchd_plist(&plist, DODGER, &args, true);
        chown_tree(&home, USER_UID);
        for d in ["Applications", "private/tmp"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let config = write_config(
            &root,
            &[
                ("Mode", "remediate".into()),
                ("SweepSeconds", 1.into()),
                (
                    "LaunchctlPath",
                    Standin::launchctl_path().display().to_string().into(),
                ),
            ],
        );
        let standin = Standin::start(&[plist.parent().unwrap()], &root.join("launchd"));
        let port = wait_for_file(&port_file, Duration::from_secs(10))
            .parse()
            .unwrap();
        let target = format!("gui/{USER_UID}/{DODGER}");
        let pid = wait_until(Duration::from_secs(5), "the helper's pid", || {
            standin.job_pid(&target)
        });
        Dodger {
            config,
            port,
            pid,
            standin,
            _tree: tree,
        }
    }

    fn daemon(&self) -> Daemon {
        let sock = self.standin.sock_path();
        Daemon::start(&self.config, &[(STANDIN_SOCK_ENV, sock.as_os_str())])
    }

    /// Wait until the helper's process is gone (a zombie counts).
    fn wait_contained(&self, within: Duration, daemon: &Daemon) -> Duration {
        let started = Instant::now();
        while pid_running(self.pid) {
            assert!(
                started.elapsed() < within,
                "helper {} still running after {within:?}; findings: {:#?}\ndaemon log:\n{}",
                self.pid,
                self.findings(),
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        started.elapsed()
    }

    /// The daemon's findings about the helper's listener, oldest first:
    /// (verdict, http facts), a repeated verdict once (a finding's close
    /// event repeats it).
    fn findings(&self) -> Vec<(String, Value)> {
        let out = Command::new(lenscap_bin())
            .args(["events", "--json", "--limit", "1000", "--config"])
            .arg(&self.config)
            .output()
            .unwrap();
        let events: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        events
            .iter()
            .filter(|e| e["kind"] == "detection_finding")
            .map(|e| &e["payload"]["finding"])
            .filter(|f| f["kind"] == "listener" && f["listener"]["port"] == self.port)
            .map(|f| {
                (
                    f["verdict"].as_str().unwrap_or("").to_string(),
                    f["http"].clone(),
                )
            })
            .fold(Vec::new(), |mut out: Vec<(String, Value)>, f| {
                if out.last().is_none_or(|last| last.0 != f.0) {
                    out.push(f);
                }
                out
            })
    }
}

#[test]
fn helper_hanging_up_on_a_probe_give_away_is_contained() {
    // Hangs up, unanswered, on any request naming lenscap — what older
    // probes sent in their User-Agent; reflects any other Origin.
    let h = Dodger::start(&["--cors", "reflect", "--hang-up-on", "lenscap"]);
    let d = h.daemon();
    h.wait_contained(Duration::from_secs(15), &d);
    let findings = wait_until(Duration::from_secs(5), "the finding", || {
        Some(h.findings()).filter(|f| !f.is_empty())
    });
    // Judged once, on the probe's answer: never "unknown whether it
    // speaks HTTP".
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let (verdict, http) = &findings[0];
    assert_eq!(verdict, "remediate", "{findings:#?}");
    assert_eq!(http["http"], true, "{http:#}");
    // The reflected origin is recognised by comparing with the one sent.
    assert_eq!(http["cors"], "reflected", "{http:#}");
}

#[test]
fn helper_silent_at_first_is_asked_again_and_contained() {
    // Says nothing to whoever connects in the 4 seconds from its first
    // visitor on: the first probe times out, so the first judgement
    // cannot call it a web server. (Daemons of tests running alongside
    // probe it too, and may be its first visitor: the window is long
    // enough to hold this daemon's first probe, and shorter than the
    // 5 s the first retry waits at least.)
    let h = Dodger::start(&["--cors", "star", "--silent-for", "4"]);
    let d = h.daemon();
    // First retry within 10 s of the first probe (5–10 s, jittered).
    let took = h.wait_contained(Duration::from_secs(30), &d);
    let findings = wait_until(Duration::from_secs(5), "both findings", || {
        Some(h.findings()).filter(|f| f.len() >= 2)
    });
    let verdicts: Vec<&str> = findings.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(
        verdicts,
        ["report", "remediate"],
        "{findings:#?} after {took:?}"
    );
    assert_eq!(findings[0].1["http"], false, "{findings:#?}");
    assert_eq!(findings[1].1["http"], true, "{findings:#?}");
}
