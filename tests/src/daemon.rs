//! Helpers for the daemon's end-to-end tests and benchmarks
//! (tests/tests/daemon.rs): a running `lenscap run` that is stopped when
//! dropped, and facts about files and processes to compare before and
//! after the daemon acts.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::lenscap_bin;

/// The daemon's crash hook (`agent/src/act/execute.rs`, `FAULT_ENV`): set
/// to `before:<step>` or `after:<step>`, the daemon SIGKILLs itself there.
pub const FAULT_ENV: &str = "LENSCAP_FAULT_KILL";

/// A running `lenscap run`, stopped with SIGTERM (and waited for) when
/// dropped. Its stderr goes to a log file, which [`Daemon::log`] returns
/// for failure messages. The log lives in a directory of its own: the
/// daemon watches the config file's directory, and its own log lines must
/// not look like file-system activity to it.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    state_dir: PathBuf,
    log: PathBuf,
    exited: Option<std::process::ExitStatus>,
    _log_dir: tempfile::TempDir,
}

impl Daemon {
    /// Start `lenscap run --config <config>` with `env` added, and wait
    /// until it has finished its first sweep (its status file names its
    /// pid and counts a sweep).
    pub fn start(config: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Daemon {
        let mut d = Daemon::spawn(lenscap_bin(), config, env);
        d.wait_sweeps_total(1, Duration::from_secs(20));
        d
    }

    /// Start `bin run --config <config>` without waiting for anything (a
    /// daemon that is meant to kill itself may never finish a sweep).
    pub fn spawn(bin: &Path, config: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Daemon {
        let state_dir = config_state_dir(config);
        let log_dir = tempfile::Builder::new()
            .prefix("lenscap-daemon-log-")
            .tempdir()
            .expect("create a log dir");
        let log = log_dir.path().join("daemon.log");
        let err = std::fs::File::create(&log).expect("create the daemon log");
        let mut cmd = Command::new(bin);
        cmd.arg("run").arg("--config").arg(config);
        // Never inherit a crash hook from the test's own environment.
        cmd.env_remove(FAULT_ENV);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Daemon {
            child,
            state_dir,
            log,
            exited: None,
            _log_dir: log_dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `<StateDir>/status.json`, if this daemon (not an earlier one on the
    /// same state) wrote it.
    pub fn status(&self) -> Option<serde_json::Value> {
        let bytes = std::fs::read(self.state_dir.join("status.json")).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        (v["pid"].as_u64() == Some(u64::from(self.pid()))).then_some(v)
    }

    /// Sweeps this daemon has finished (0 before its first status).
    pub fn sweeps(&self) -> u64 {
        self.status()
            .and_then(|s| s["sweeps"].as_u64())
            .unwrap_or(0)
    }

    /// Wait until `n` more sweeps than now have finished.
    pub fn wait_sweeps(&mut self, n: u64) {
        let target = self.sweeps() + n;
        // A sweep is at most SweepSeconds apart plus its work; be generous
        // for a loaded CI machine.
        self.wait_sweeps_total(target, Duration::from_secs(10 + 5 * n));
    }

    fn wait_sweeps_total(&mut self, total: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.sweeps() < total {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.exited = Some(status);
                panic!(
                    "lenscap run exited ({status}) before sweep {total}; its log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "lenscap run did not finish sweep {total} within {timeout:?}; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for the daemon to exit on its own (the crash hook).
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.exited = Some(status);
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "lenscap run still running after {timeout:?}; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM and wait (10 s, then SIGKILL). Returns how it ended.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        if let Some(status) = self.exited {
            return status;
        }
        // SAFETY: kill(2) on our own unreaped child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
                return status;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait for lenscap run");
        self.exited = Some(status);
        status
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `StateDir` a configuration plist names.
pub fn config_state_dir(config: &Path) -> PathBuf {
    let v = plist::Value::from_file(config).expect("read the config plist");
    let dir = v
        .as_dictionary()
        .and_then(|d| d.get("StateDir"))
        .and_then(plist::Value::as_string)
        .expect("the config names a StateDir");
    PathBuf::from(dir)
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// sha256 of a file's contents (never follows a link: a link is an error).
pub fn sha256_file(path: &Path) -> String {
    let meta = path
        .symlink_metadata()
        .unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
    assert!(meta.is_file(), "{} is not a regular file", path.display());
    sha256_hex(&std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())))
}

/// One entry of a [`tree_facts`] snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    /// `f` file, `d` directory, `l` link, `o` other.
    pub kind: char,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    pub size: u64,
    /// Files: sha256 of the contents; links: the link text.
    pub content: String,
    /// Files only (a directory's mtime changes whenever an entry does).
    pub mtime_ns: Option<i128>,
}

/// Everything under `root` (not `root` itself), by path relative to it,
/// without following links: what a test compares to prove that nothing
/// changed, or that something came back exactly.
pub fn tree_facts(root: &Path) -> std::collections::BTreeMap<PathBuf, FileFacts> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = path.symlink_metadata() else {
                continue;
            };
            let ft = meta.file_type();
            let (kind, content) = if ft.is_file() {
                // A mode-000 file is still readable by root.
                ('f', sha256_hex(&std::fs::read(&path).unwrap_or_default()))
            } else if ft.is_dir() {
                stack.push(path.clone());
                ('d', String::new())
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&path).unwrap_or_default();
                ('l', target.display().to_string())
            } else {
                ('o', String::new())
            };
            let rel = path.strip_prefix(root).expect("under root").to_path_buf();
            out.insert(
                rel,
                FileFacts {
                    kind,
                    uid: meta.uid(),
                    gid: meta.gid(),
                    mode: meta.mode() & 0o7777,
                    size: if kind == 'd' { 0 } else { meta.len() },
                    content,
                    mtime_ns: (kind == 'f').then(|| {
                        i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
                    }),
                },
            );
        }
    }
    out
}

/// Is `pid` a running process (a zombie is not)?
pub fn pid_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Running processes whose command line contains `needle` or whose
/// executable path starts with it.
pub fn processes_matching(needle: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
            (String::from_utf8_lossy(&cmdline).contains(needle)
                || exe.to_string_lossy().starts_with(needle))
                && pid_running(*pid)
        })
        .collect()
}

/// Poll `f` every 10 ms until it returns `Some`, or panic after `timeout`
/// saying `what` did not happen.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
