//! `lenscap run` end to end on Linux (issue 3, "Must show"): the real
//! daemon binary against real helper processes under the launchd
//! stand-in, with real signals, in temporary trees. Every location the
//! daemon reads or writes is configured into the test's tree.
//!
//! - `daemon/remediate.rs`: remediate mode end to end — the helper is
//!   stopped and stays stopped, its plist and folder are in quarantine with
//!   a correct manifest, `quarantine restore` puts them back exactly (and
//!   `--allow` keeps them there); a reinstall is removed again.
//! - `daemon/monitor.rs`: monitor mode changes nothing and records the
//!   plan; benign services are left alone in remediate mode.
//! - `daemon/incidents.rs`: the agent delivers to a real collector, which
//!   makes one incident of a contained helper (listener and persistence
//!   findings, every step), `restored` after `quarantine restore`,
//!   `would_do` in monitor mode.
//! - `daemon/faults.rs`: the daemon SIGKILLed before and after every plan
//!   step; the next start finishes the job and no file is lost.
//! - `daemon/notify.rs`: the person at the keyboard is told, once per
//!   incident, through the notification stand-in; `lenscap mode` changes
//!   the running daemon's mode, and refuses when an MDM manages it.
//! - `daemon/grants.rs`: a remediated helper's camera and microphone
//!   grants are reset as its user through the `tccutil` stand-in, nothing
//!   beyond her reach; monitor mode only journals it; the manifest lists
//!   them and a restore says to grant them again.
//! - `daemon/gui_domains.rs`: a root-owned LaunchAgent is booted out of
//!   the gui domain of each user logged in (two users, utmpx and the
//!   stand-in agreeing), and of none when nobody is.
//! - `daemon/symlinks.rs`: links planted in place of the plist and of the
//!   helper's folder never make the daemon touch what they point at.
//! - `daemon/pid_reuse.rs`: a PID reused by another process before the kill
//!   is not signalled.
//! - `daemon/probe.rs`: probing beside the sweep — a helper that hangs up
//!   on a probe's give-away or stays silent at first is still found; and
//!   the benchmark of a sweep with 1,000 silent listeners.
//! - `daemon/bench.rs`: the benchmarks in docs/benchmarks.md ("## Daemon"),
//!   ignored by default; `bench/daemon.sh` runs them on a release build.
//!
//! Why the plan's order matters — a KeepAlive job killed without `bootout`
//! is started again, booted out first it stays gone — is proven against
//! the stand-in in `tests/launchd_standin.rs`
//! (`keepalive_job_comes_back_after_a_kill_but_not_after_bootout`); here
//! the daemon's own journal and the stand-in's log show it booted out
//! before it killed.

// Test code: a failed setup step is a failed test, and the message says why.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "daemon/bench.rs"]
mod bench;
#[path = "delivery/collector.rs"]
mod collector;
#[path = "daemon/faults.rs"]
mod faults;
#[path = "daemon/grants.rs"]
mod grants;
#[path = "daemon/gui_domains.rs"]
mod gui_domains;
#[path = "daemon/incidents.rs"]
mod incidents;
#[path = "daemon/monitor.rs"]
mod monitor;
#[path = "daemon/notify.rs"]
mod notify;
#[path = "daemon/pid_reuse.rs"]
mod pid_reuse;
#[path = "daemon/probe.rs"]
mod probe;
#[path = "daemon/remediate.rs"]
mod remediate;
#[path = "daemon/symlinks.rs"]
mod symlinks;

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lenscap_e2e::{
    Daemon, STANDIN_SOCK_ENV, Standin, lenscap_bin, processes_matching, temp_tree, wait_for_file,
    write_config, write_launchd_plist,
};
use serde_json::Value;

pub const ROGUE: &str = env!("CARGO_BIN_EXE_rogue-helper");

/// The user who owns the rogue helper's home, plist and files. The
/// stand-in loads a plist into the gui domain of its owner, and the daemon
/// boots the job out of the domain of the plist's owner, so the two agree
/// only if the daemon reads the owner right.
pub const USER_UID: u32 = 1000;
pub const LABEL: &str = "com.acme.connect";

/// A rogue helper (`--cors star --image`) in a hidden folder of ann's home,
/// started by the stand-in from a KeepAlive RunAtLoad LaunchAgent, and a
/// configuration for the daemon pointing into the tree.
#[derive(Debug)]
pub struct Scenario {
    pub root: PathBuf,
    /// `Users/ann/.acmeconnect`: dedicated to the helper, so the daemon
    /// moves it whole and leaves a placeholder.
    pub folder: PathBuf,
    pub exe: PathBuf,
    pub plist: PathBuf,
    /// Outside the hidden folder, so the folder holds only the helper.
    pub port_file: PathBuf,
    pub config: PathBuf,
    /// The helper's first pid.
    pub pid: u32,
    pub standin: Standin,
    // Last: the tree outlives the stand-in and its jobs.
    _tree: tempfile::TempDir,
}

impl Scenario {
    /// `mode` is the daemon's `Mode`; `extra` more configuration keys.
    pub fn new(mode: &str, extra: &[(&str, plist::Value)]) -> Scenario {
        let tree = temp_tree();
        let root = tree.path().to_path_buf();
        let home = root.join("Users/ann");
        let folder = home.join(".acmeconnect");
        let exe = folder.join("acme-connect");
        let plist = home.join("Library/LaunchAgents/com.acme.connect.plist");
        // The helper runs as ann (the stand-in runs a gui/<uid> job as that
        // user): it writes its port where ann may write.
        let port_file = root.join("run/port");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::create_dir_all(root.join("run")).unwrap();
        chown_tree(&root.join("run"), USER_UID);
        std::fs::copy(ROGUE, &exe).unwrap();
        write_launchd_plist(
            &plist,
            LABEL,
            &[
                exe.to_str().unwrap(),
                "--cors",
                "star",
                "--image",
                "--port-file",
                port_file.to_str().unwrap(),
            ],
            true,
        );
        chown_tree(&home, USER_UID);
        for d in ["Applications", "private/tmp"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let mut keys: Vec<(&str, plist::Value)> = vec![
            ("Mode", mode.into()),
            ("SweepSeconds", 1.into()),
            (
                "LaunchctlPath",
                Standin::launchctl_path().display().to_string().into(),
            ),
            ("PlaceholderBlock", true.into()),
        ];
        keys.extend(extra.iter().cloned());
        let config = write_config(&root, &keys);
        let standin = Standin::start(&[plist.parent().unwrap()], &root.join("launchd"));
        wait_for_file(&port_file, Duration::from_secs(10));
        let target = format!("gui/{USER_UID}/{LABEL}");
        let pid = lenscap_e2e::wait_until(Duration::from_secs(5), "the helper's pid", || {
            standin.job_pid(&target)
        });
        Scenario {
            root,
            folder,
            exe,
            plist,
            port_file,
            config,
            pid,
            standin,
            _tree: tree,
        }
    }

    /// The job's launchd service target.
    pub fn target(&self) -> String {
        format!("gui/{USER_UID}/{LABEL}")
    }

    /// Start the daemon and wait for its first sweep.
    pub fn start_daemon(&self) -> Daemon {
        let sock = self.standin.sock_path();
        Daemon::start(&self.config, &[(STANDIN_SOCK_ENV, sock.as_os_str())])
    }

    /// Start the daemon with the crash hook set to `point`
    /// (`before:<step>` / `after:<step>`); it is not waited for.
    pub fn spawn_daemon_with_fault(&self, point: &str) -> Daemon {
        let sock = self.standin.sock_path();
        let point = OsString::from(point);
        Daemon::spawn(
            lenscap_bin(),
            &self.config,
            &[
                (STANDIN_SOCK_ENV, sock.as_os_str()),
                (lenscap_e2e::FAULT_ENV, point.as_os_str()),
            ],
        )
    }

    /// `lenscap <args> --config <config>`, which must succeed.
    pub fn lenscap(&self, args: &[&str]) -> String {
        let out = Command::new(lenscap_bin())
            .args(args)
            .arg("--config")
            .arg(&self.config)
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

    /// `quarantine list --json`.
    pub fn quarantine_list(&self) -> Vec<Value> {
        let text = self.lenscap(&["quarantine", "list", "--json"]);
        serde_json::from_str::<Value>(&text)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// `events --json` (the newest 1000).
    pub fn events(&self) -> Vec<Value> {
        let text = self.lenscap(&["events", "--json", "--limit", "1000"]);
        serde_json::from_str::<Value>(&text)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// The journal entries, oldest first.
    pub fn journal(&self) -> Vec<Value> {
        journal_entries(&self.root.join("state"))
    }

    /// The journal's plans, without the one-step entries that undo a
    /// reinstall (those are journaled too, and may sort first within a
    /// second).
    pub fn plans(&self) -> Vec<Value> {
        self.journal()
            .into_iter()
            .filter(|e| step_names(e) != ["reinstall"])
            .collect()
    }

    /// Processes running the helper: its command line or executable names
    /// the helper's original path (a moved executable keeps its inode, so
    /// its `/proc/<pid>/exe` would name the vault; the command line does
    /// not change).
    pub fn helper_processes(&self) -> Vec<u32> {
        processes_matching(self.exe.to_str().unwrap())
    }

    /// Wait until `pid` has exited (a zombie counts as exited).
    pub fn wait_gone(&self, pid: u32, timeout: Duration, daemon: &Daemon) {
        let deadline = Instant::now() + timeout;
        while lenscap_e2e::pid_running(pid) {
            assert!(
                Instant::now() < deadline,
                "helper pid {pid} still running after {timeout:?}; daemon log:\n{}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// For `period`: launchd has no process for the job, and nothing runs
    /// the helper.
    pub fn assert_stays_gone(&self, period: Duration) {
        let deadline = Instant::now() + period;
        while Instant::now() < deadline {
            assert_eq!(self.standin.job_pid(&self.target()), None, "job respawned");
            let running = self.helper_processes();
            assert!(running.is_empty(), "helper running again: {running:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Every journal entry in `state/journal`, oldest first.
pub fn journal_entries(state: &Path) -> Vec<Value> {
    let mut out: Vec<Value> = std::fs::read_dir(state.join("journal"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort_by_key(|e: &Value| {
        (
            e["created_unix"].as_i64(),
            e["id"].as_str().map(String::from),
        )
    });
    out
}

/// The step names of a journal entry, in order.
pub fn step_names(entry: &Value) -> Vec<String> {
    entry["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap().to_string())
        .collect()
}

/// The status of each step of a journal entry.
pub fn step_statuses(entry: &Value) -> Vec<String> {
    entry["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap().to_string())
        .collect()
}

/// `chown -R uid:uid` without following links.
/// The user name of `uid` on this machine (what the stand-in's `sudo -u`
/// resolves); the test fails if the uid has no passwd entry.
pub fn user_name_of(uid: u32) -> String {
    // SAFETY: getpwuid with a plain uid; the name is copied at once.
    unsafe {
        let pw = libc::getpwuid(uid);
        assert!(!pw.is_null(), "uid {uid} has no passwd entry");
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

pub fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
    if path.symlink_metadata().unwrap().is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), uid);
        }
    }
}

/// Is there a placeholder (root-owned, empty, mode 000 file) at `path`?
pub fn is_placeholder(path: &Path) -> bool {
    path.symlink_metadata().is_ok_and(|m| {
        m.file_type().is_file() && m.len() == 0 && m.mode() & 0o7777 == 0 && m.uid() == 0
    })
}

/// The remediation events (`process_remediation`, `file_remediation`).
pub fn remediation_events(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| {
            matches!(
                e["kind"].as_str(),
                Some("process_remediation" | "file_remediation")
            )
        })
        .collect()
}
