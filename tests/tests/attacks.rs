//! The attacks of lenscap's "Trust" issue, each tried for real against a
//! real `lenscap run` in remediate mode (docs/security.md says what each
//! one proves). The attacker is an unprivileged local user — uid 65534
//! (`nobody`), called eve here — with a home in a temporary tree: every
//! file of the attack is eve's, every process of the attack runs as eve
//! (its launchd is the stand-in started as uid 65534), and the daemon runs
//! as root, as on a Mac.
//!
//! - `attacks/deputy.rs`: eve's LaunchAgents name a known-bad label and
//!   root's programs — root's process and files must not be touched.
//! - `attacks/budget.rs`: a dozen decoy plists with known-bad labels to
//!   spend the remediation budget before eve's real helper is judged.
//! - `attacks/dodges.rs`: helpers that dodge the probe or the location
//!   heuristics — shunning a scanner's User-Agent, staying silent at first,
//!   a folder named `AppTranslocation`, toolchain folders, a pty, a LAN
//!   address — still judged remediate and contained.
//! - `attacks/interpreters.rs`: a plist running a system interpreter on a
//!   hidden script, or on inline code: the script or plist goes, the
//!   interpreter stays.
//!
//! Setting a uid needs root, which CI has; run as another user, each test
//! prints that it skipped and passes.

// Test code: a failed setup step is a failed test, and the message says why.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "attacks/budget.rs"]
mod budget;
#[path = "attacks/deputy.rs"]
mod deputy;
#[path = "attacks/dodges.rs"]
mod dodges;
#[path = "attacks/interpreters.rs"]
mod interpreters;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lenscap_e2e::{
    Daemon, STANDIN_SOCK_ENV, Standin, lenscap_bin, pid_running, processes_matching, temp_tree,
    wait_for_file, write_config,
};
use serde_json::Value;

/// The attacker's uid and gid: `nobody`, which every Linux has.
pub const EVE: u32 = 65534;
pub const ROGUE: &str = env!("CARGO_BIN_EXE_rogue-helper");
pub const DODGER: &str = env!("CARGO_BIN_EXE_dodging-helper");

/// How long a helper may take to be contained: a sweep a second, a probe,
/// a bootout (SIGTERM to the job), on a loaded 2-core machine.
pub const CONTAIN: Duration = Duration::from_secs(20);

/// Whether the test can run (root can set a uid); says so when it cannot.
pub fn can_attack(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("{test}: skipped — it must run as root to act as uid {EVE} (CI runs as root)");
    }
    root
}

/// A temporary Mac-shaped tree with eve's home in it, her launchd (the
/// stand-in, as uid 65534, over her LaunchAgents) and the daemon's config.
#[derive(Debug)]
pub struct Attack {
    pub root: PathBuf,
    /// `Users/eve`, given to eve (recursively) when her launchd starts.
    pub home: PathBuf,
    /// `Users/eve/Library/LaunchAgents`.
    pub agents: PathBuf,
    /// `run/`: eve's helpers write their port files here, outside her home
    /// so that her hidden folders hold only the helpers.
    pub run: PathBuf,
    pub standin: Option<Standin>,
    pub config: Option<PathBuf>,
    // Last: the tree outlives the stand-in and its jobs.
    _tree: tempfile::TempDir,
}

impl Attack {
    pub fn setup() -> Attack {
        let tree = temp_tree();
        let root = tree.path().to_path_buf();
        // tempfile makes it 0700; eve must reach her home through it, and
        // through every directory above it.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        for dir in root.ancestors().skip(1) {
            let mode = dir.metadata().unwrap().mode();
            assert!(
                mode & 0o001 != 0,
                "uid {EVE} cannot pass through {} (mode {:o}): point TMPDIR at a directory \
                 every user can reach, such as /tmp",
                dir.display(),
                mode & 0o7777
            );
        }
        let home = root.join("Users/eve");
        let agents = home.join("Library/LaunchAgents");
        let run = root.join("run");
        for d in [
            &agents,
            &run,
            &root.join("Applications"),
            &root.join("private/tmp"),
        ] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::os::unix::fs::chown(&run, Some(EVE), Some(EVE)).unwrap();
        // Whatever the umask: eve passes through `Users` to her home.
        let users = root.join("Users");
        std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o755)).unwrap();
        Attack {
            root,
            home,
            agents,
            run,
            standin: None,
            config: None,
            _tree: tree,
        }
    }

    /// Copy `src` to `rel` under eve's home, executable (eve will own it).
    pub fn install(&self, src: &Path, rel: &str) -> PathBuf {
        let dst = self.home.join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(src, &dst).unwrap();
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
        dst
    }

    /// Write a file (a script) under eve's home.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let dst = self.home.join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::write(&dst, text).unwrap();
        dst
    }

    /// Where a helper started with `--port-file` announces its port.
    pub fn port_file(&self, name: &str) -> PathBuf {
        self.run.join(format!("{name}.port"))
    }

    /// Write `LaunchAgents/<file>` with these keys plus `Label`.
    pub fn plist(&self, file: &str, label: &str, keys: &[(&str, plist::Value)]) -> PathBuf {
        let mut dict = plist::Dictionary::new();
        dict.insert("Label".into(), label.into());
        for (k, v) in keys {
            dict.insert((*k).into(), v.clone());
        }
        let path = self.agents.join(file);
        plist::Value::Dictionary(dict).to_file_xml(&path).unwrap();
        path
    }

    /// A KeepAlive, RunAtLoad LaunchAgent running `args`: how a helper
    /// installs itself.
    pub fn agent(&self, label: &str, args: &[&str]) -> PathBuf {
        self.plist(
            &format!("{label}.plist"),
            label,
            &[
                ("ProgramArguments", strings(args)),
                ("RunAtLoad", true.into()),
                ("KeepAlive", true.into()),
            ],
        )
    }

    /// Give eve her home and start her launchd on her LaunchAgents.
    pub fn start_launchd(&mut self) {
        chown_tree(&self.home, EVE);
        let standin = Standin::start_as_user(
            &[&self.agents],
            &self.root.join("launchd"),
            &["--throttle-ms", "200"],
            EVE,
            EVE,
        );
        self.standin = Some(standin);
    }

    pub fn standin(&self) -> &Standin {
        self.standin.as_ref().expect("start_launchd first")
    }

    /// eve's job `label` in her gui domain.
    pub fn target(label: &str) -> String {
        format!("gui/{EVE}/{label}")
    }

    /// Wait for the job's port file and its pid; check it runs as eve.
    pub fn wait_job(&self, label: &str, port_name: &str) -> (u32, u16) {
        let port = wait_for_file(&self.port_file(port_name), Duration::from_secs(10))
            .parse()
            .unwrap();
        let pid = lenscap_e2e::wait_until(Duration::from_secs(5), "the job's pid", || {
            self.standin().job_pid(&Attack::target(label))
        });
        assert_eq!(uid_of(pid), Some(EVE), "{label} runs as eve");
        (pid, port)
    }

    /// Start `lenscap run` in remediate mode (a sweep a second) with
    /// `extra` configuration keys, and wait for its first sweep.
    pub fn start_daemon(&mut self, extra: &[(&str, plist::Value)]) -> Daemon {
        let mut keys: Vec<(&str, plist::Value)> = vec![
            ("Mode", "remediate".into()),
            ("SweepSeconds", 1.into()),
            (
                "LaunchctlPath",
                Standin::launchctl_path().display().to_string().into(),
            ),
        ];
        keys.extend(extra.iter().cloned());
        let config = write_config(&self.root, &keys);
        self.config = Some(config.clone());
        let sock = self.standin().sock_path();
        Daemon::start(&config, &[(STANDIN_SOCK_ENV, sock.as_os_str())])
    }

    /// `lenscap <args> --config <config>`, which must succeed.
    pub fn lenscap(&self, args: &[&str]) -> String {
        let config = self.config.as_ref().expect("start_daemon first");
        let out = Command::new(lenscap_bin())
            .args(args)
            .arg("--config")
            .arg(config)
            .output()
            .expect("run lenscap");
        assert!(
            out.status.success(),
            "lenscap {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    fn json_array(&self, args: &[&str]) -> Vec<Value> {
        let v: Value = serde_json::from_str(&self.lenscap(args)).unwrap();
        v.as_array().unwrap().clone()
    }

    /// `events --json` (the newest 1000).
    pub fn events(&self) -> Vec<Value> {
        self.json_array(&["events", "--json", "--limit", "1000"])
    }

    /// `quarantine list --json`.
    pub fn quarantine_list(&self) -> Vec<Value> {
        self.json_array(&["quarantine", "list", "--json"])
    }

    /// Every journal entry (one per plan).
    pub fn journal(&self) -> Vec<Value> {
        let dir = self.root.join("state/journal");
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The `quarantined` record holding `path` or a folder above it.
    pub fn quarantined(&self, path: &Path) -> Option<Value> {
        self.quarantine_list().into_iter().find(|r| {
            r["state"] == "quarantined"
                && r["items"].as_array().is_some_and(|items| {
                    items
                        .iter()
                        .any(|i| i["original"].as_str().is_some_and(|o| path.starts_with(o)))
                })
        })
    }

    /// Wait until the helper `label` is contained: its process `pid` is
    /// gone, `files` are each in a quarantine record, and for a second
    /// launchd runs no process for the job (it was booted out, not just
    /// killed) and no process names `mark` — a path in the helper's command
    /// line: its program, or the script an interpreter runs.
    pub fn assert_contained(
        &self,
        d: &Daemon,
        label: &str,
        pid: u32,
        mark: &Path,
        files: &[&Path],
    ) {
        wait_for(d, CONTAIN, &format!("{label} (pid {pid}) stopped"), || {
            (!pid_running(pid)).then_some(())
        });
        for f in files {
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.quarantined(f).is_none() {
                if Instant::now() >= deadline {
                    let held: Vec<String> = self
                        .quarantine_list()
                        .iter()
                        .flat_map(|r| {
                            let state = r["state"].clone();
                            r["items"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(move |i| format!("{} ({state})", i["original"]))
                        })
                        .collect();
                    panic!(
                        "{} not quarantined within 10 s; the quarantine holds {held:?}; \
                         daemon log:\n{}",
                        f.display(),
                        tail(&d.log())
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            let job = self.standin().job_pid(&Attack::target(label));
            let running = processes_matching(mark.to_str().unwrap());
            assert!(
                job.is_none() && running.is_empty(),
                "{label} runs again (job pid {job:?}, processes {running:?}); daemon log:\n{}",
                tail(&d.log())
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `ProgramArguments`-style array.
pub fn strings(args: &[&str]) -> plist::Value {
    plist::Value::Array(args.iter().map(|a| (*a).into()).collect())
}

/// `chown -R uid:uid` without following links.
pub fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
    if path.symlink_metadata().unwrap().is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), uid);
        }
    }
}

/// Real uid of a process.
pub fn uid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A process's start time (clock ticks since boot, `/proc/<pid>/stat`
/// field 22): with the pid, who it is.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// Identity and contents of a file, to prove it was left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untouched {
    dev: u64,
    ino: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime_ns: i128,
}

impl Untouched {
    pub fn of(path: &Path) -> Untouched {
        let m = path
            .symlink_metadata()
            .unwrap_or_else(|e| panic!("{} is gone: {e}", path.display()));
        Untouched {
            dev: m.dev(),
            ino: m.ino(),
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            size: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        }
    }
}

/// The detection findings (newest last) whose finding names `path`
/// anywhere (its process, listener, persistence item or reasons).
pub fn findings_naming<'a>(events: &'a [Value], path: &Path) -> Vec<&'a Value> {
    let needle = path.to_str().unwrap();
    events
        .iter()
        .filter(|e| e["kind"] == "detection_finding")
        .filter(|e| e["payload"]["finding"].to_string().contains(needle))
        .collect()
}

/// The last 60 lines of a daemon log, for failure messages.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Poll `f` every 50 ms; after `timeout`, fail naming `what`, with the
/// end of the daemon's log.
pub fn wait_for<T>(
    d: &Daemon,
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {timeout:?}; daemon log:\n{}",
            tail(&d.log())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until the daemon has written a finding with verdict `remediate`
/// naming each of `paths`. If one has none within `within`, fail saying
/// what the daemon concluded about each of them instead (the newest
/// finding's kind, verdict and conclusion), which is why the dodge worked.
pub fn assert_remediated(a: &Attack, d: &Daemon, paths: &[&Path], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let events = a.events();
        let missing: Vec<&&Path> = paths
            .iter()
            .filter(|p| {
                !findings_naming(&events, p)
                    .iter()
                    .any(|e| e["payload"]["finding"]["verdict"] == "remediate")
            })
            .collect();
        if missing.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            let said: Vec<String> = missing
                .iter()
                .map(|p| {
                    let found = findings_naming(&events, p);
                    // The newest finding of each kind (listener, persistence).
                    let newest: Vec<String> = ["listener", "persistence"]
                        .iter()
                        .filter_map(|kind| {
                            let e = found
                                .iter()
                                .rev()
                                .find(|e| e["payload"]["finding"]["kind"] == *kind)?;
                            let f = &e["payload"]["finding"];
                            let last = f["reasons"].as_array().and_then(|r| r.last());
                            Some(format!(
                                "  {kind} finding, verdict {}: {}",
                                f["verdict"],
                                last.unwrap_or(&Value::Null)
                            ))
                        })
                        .collect();
                    if newest.is_empty() {
                        format!("{}: no finding names it", p.display())
                    } else {
                        format!("{}:\n{}", p.display(), newest.join("\n"))
                    }
                })
                .collect();
            panic!(
                "not judged remediate within {within:?}:\n{}\ndaemon log:\n{}",
                said.join("\n"),
                tail(&d.log())
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The quarantine and guard paths and the terminated pids of every plan.
pub fn planned_targets(journal: &[Value]) -> (Vec<String>, Vec<u64>) {
    let mut paths = Vec::new();
    let mut pids = Vec::new();
    for entry in journal {
        for step in entry["plan"]["steps"].as_array().into_iter().flatten() {
            for key in ["paths", "placeholder"] {
                match &step[key] {
                    Value::Array(list) => {
                        paths.extend(list.iter().filter_map(|p| p.as_str().map(String::from)))
                    }
                    Value::String(p) => paths.push(p.clone()),
                    _ => {}
                }
            }
            for p in step["processes"].as_array().into_iter().flatten() {
                pids.extend(p["pid"].as_u64());
            }
        }
    }
    (paths, pids)
}
