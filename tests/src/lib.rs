//! Helpers for the end-to-end tests: the `lenscap` binary, temporary trees
//! that look like a Mac's, and real child processes that are killed when a
//! test ends, pass or fail.

// This crate is test support only: a failed setup step is a failed test,
// so panicking with a message is the right behaviour here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Path of the `lenscap` binary, built once per test process.
///
/// Cargo builds a package's binaries only for that package's own
/// integration tests, and this crate is another package; so build it here.
/// Nested `cargo build` is safe: `cargo test` holds no build lock while
/// test binaries run.
pub fn lenscap_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_workspace_bin("lenscap", "lenscap"))
}

/// Build one binary of the workspace in the test binary's own profile (a
/// `--release` test run gets a release binary) and return its path.
fn build_workspace_bin(package: &str, bin: &str) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf();
    // target/<profile>/deps/<test-binary> → target/<profile>/<bin>
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", package, "--bin", bin]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd
        .current_dir(&workspace)
        .status()
        .unwrap_or_else(|e| panic!("run cargo build for {bin}: {e}"));
    assert!(status.success(), "building {bin} failed");
    let path = profile_dir.join(bin);
    assert!(path.exists(), "{} missing after build", path.display());
    path
}

/// A temporary directory whose own name is not hidden. `tempfile`'s default
/// names start with `.tmp`, which would make everything inside look like it
/// lives in a hidden directory to the judge.
pub fn temp_tree() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let tree = tempfile::Builder::new()
        .prefix("lenscap-e2e-")
        .tempdir()
        .expect("create temp dir");
    // Like `/` on a Mac: everyone may pass through, so a user's agent the
    // stand-in runs as that user can reach its own home inside the tree.
    std::fs::set_permissions(tree.path(), std::fs::Permissions::from_mode(0o755))
        .expect("open the temp tree to traversal");
    tree
}

/// A child process killed (and reaped) when dropped.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Proc { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait for a file written atomically by a fixture (e.g. the port file of
/// `rogue-helper`) and return its trimmed contents.
pub fn wait_for_file(path: &Path, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            return s.trim().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "{} did not appear within {timeout:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Write an XML launchd plist.
pub fn write_launchd_plist(path: &Path, label: &str, program_args: &[&str], keep_alive: bool) {
    let mut dict = plist::Dictionary::new();
    dict.insert("Label".into(), label.into());
    dict.insert(
        "ProgramArguments".into(),
        plist::Value::Array(program_args.iter().map(|a| (*a).into()).collect()),
    );
    dict.insert("RunAtLoad".into(), true.into());
    dict.insert("KeepAlive".into(), keep_alive.into());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create plist dir");
    }
    plist::Value::Dictionary(dict)
        .to_file_xml(path)
        .expect("write plist");
}

/// Write a configuration plist for `--config`: every location points into
/// `root`, so nothing outside the temporary tree is read or written.
pub fn write_config(root: &Path, extra: &[(&str, plist::Value)]) -> PathBuf {
    let mut dict = plist::Dictionary::new();
    let dirs = |d: &[&str]| {
        plist::Value::Array(
            d.iter()
                .map(|s| root.join(s).display().to_string().into())
                .collect(),
        )
    };
    dict.insert(
        "PersistenceDirs".into(),
        dirs(&[
            "Library/LaunchAgents",
            "Library/LaunchDaemons",
            "Users/*/Library/LaunchAgents",
        ]),
    );
    dict.insert("ApplicationDirs".into(), dirs(&["Applications"]));
    dict.insert("TempDirs".into(), dirs(&["private/tmp"]));
    dict.insert(
        "StateDir".into(),
        root.join("state").display().to_string().into(),
    );
    dict.insert("LoginItems".into(), false.into());
    dict.insert(
        "TCCDatabases".into(),
        dirs(&[
            "Library/Application Support/com.apple.TCC/TCC.db",
            "Users/*/Library/Application Support/com.apple.TCC/TCC.db",
        ]),
    );
    // Absent unless a test logs someone in (`var/run/utmpx`); the
    // `tccutil` stand-in, which records what it was asked.
    dict.insert(
        "UtmpxPath".into(),
        root.join("var/run/utmpx").display().to_string().into(),
    );
    dict.insert(
        "TccutilPath".into(),
        fixture_bin("tccutil").display().to_string().into(),
    );
    for (k, v) in extra {
        dict.insert((*k).into(), v.clone());
    }
    let path = root.join("lenscap.plist");
    plist::Value::Dictionary(dict)
        .to_file_xml(&path)
        .expect("write config");
    path
}

/// A binary of this package (`rogue-helper`, `launchd-standin`,
/// `launchctl`), from the target directory this test binary runs in.
/// Cargo builds a package's binaries before its integration tests, where
/// `CARGO_BIN_EXE_<name>` names the same files; this library is compiled
/// without those variables, so it finds them the way [`lenscap_bin`] does.
pub fn fixture_bin(name: &str) -> PathBuf {
    // target/<profile>/deps/<test-binary> → target/<profile>/<name>
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .join(name);
    assert!(
        bin.exists(),
        "{} missing: cargo builds it only for lenscap-e2e's integration tests",
        bin.display()
    );
    bin
}

/// The environment variable through which the `launchctl` shim (and so the
/// daemon under test, which runs it as its `LaunchctlPath`) finds the
/// launchd stand-in's control socket.
pub const STANDIN_SOCK_ENV: &str = "LENSCAP_STANDIN_SOCK";

/// The environment variable naming the file the `tccutil` stand-in
/// appends to (one JSON line per run: argv, uid, euid). The daemon under
/// test passes its environment on to `tccutil`, through `launchctl asuser`
/// too.
pub const TCCUTIL_LOG_ENV: &str = "LENSCAP_TCCUTIL_LOG";

/// What one `launchctl` command printed and the status it exited with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchctlReply {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Send one `launchctl` command line (its arguments, without the program
/// name) to the launchd stand-in listening on `sock`, and read its answer.
/// Returns errors instead of panicking: the `launchctl` shim uses it.
///
/// The protocol, one request per connection:
/// - request: the arguments joined by tabs, then `\n` (so an argument may
///   hold spaces but no tab or newline);
/// - reply: lines `out <text>` (stdout) and `err <text>` (stderr) in any
///   number, then `exit <code>`.
pub fn standin_request(sock: &Path, args: &[String]) -> std::io::Result<LaunchctlReply> {
    use std::io::{BufRead, Write};
    if let Some(bad) = args.iter().find(|a| a.contains(['\t', '\n'])) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("argument {bad:?} holds a tab or newline, which the stand-in cannot carry"),
        ));
    }
    let mut stream = std::os::unix::net::UnixStream::connect(sock)?;
    stream.write_all(format!("{}\n", args.join("\t")).as_bytes())?;
    let mut reply = LaunchctlReply {
        code: -1,
        stdout: String::new(),
        stderr: String::new(),
    };
    for line in std::io::BufReader::new(stream).lines() {
        let line = line?;
        if let Some(text) = line.strip_prefix("out ") {
            reply.stdout.push_str(text);
            reply.stdout.push('\n');
        } else if let Some(text) = line.strip_prefix("err ") {
            reply.stderr.push_str(text);
            reply.stderr.push('\n');
        } else if let Some(code) = line.strip_prefix("exit ") {
            reply.code = code.parse().map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad {line:?}"))
            })?;
            return Ok(reply);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "the stand-in closed the connection without an exit line",
    ))
}

/// `reply` in the wire format [`standin_request`] reads (for the stand-in).
pub fn encode_standin_reply(reply: &LaunchctlReply) -> String {
    let mut wire = String::new();
    for line in reply.stdout.lines() {
        wire.push_str(&format!("out {line}\n"));
    }
    for line in reply.stderr.lines() {
        wire.push_str(&format!("err {line}\n"));
    }
    wire.push_str(&format!("exit {}\n", reply.code));
    wire
}

/// A running `launchd-standin` (the Linux tests' launchd), stopped with
/// SIGTERM when dropped; it takes every job it started down with it.
#[derive(Debug)]
pub struct Standin {
    child: Child,
    state: PathBuf,
}

impl Standin {
    /// Start the stand-in on the plists in `dirs` and wait until it has
    /// loaded them and started the RunAtLoad jobs.
    pub fn start(dirs: &[&Path], state: &Path) -> Standin {
        Standin::start_with(dirs, state, &[])
    }

    /// [`Standin::start`] with more arguments, e.g. `["--throttle-ms", "50"]`.
    pub fn start_with(dirs: &[&Path], state: &Path, extra: &[&str]) -> Standin {
        std::fs::create_dir_all(state).expect("create the stand-in's state dir");
        let cmd = Command::new(fixture_bin("launchd-standin"));
        Standin::launch(cmd, dirs, state, extra, "launchd-standin")
    }

    /// Run `cmd` (the stand-in, already set up to run as someone) on
    /// `dirs` and wait until it has loaded them and started the RunAtLoad
    /// jobs. `who` names it in a failure.
    fn launch(
        mut cmd: Command,
        dirs: &[&Path],
        state: &Path,
        extra: &[&str],
        who: &str,
    ) -> Standin {
        let ready = state.join("ready");
        let _ = std::fs::remove_file(&ready);
        for dir in dirs {
            cmd.arg("--dir").arg(dir);
        }
        cmd.arg("--state").arg(state).args(extra);
        cmd.stdin(Stdio::null());
        // The stand-in was just copied into the tree: a test on another
        // thread that forks while the copy's file was open for writing
        // holds it open in its child until that child execs, and exec
        // then fails with ETXTBSY. Brief; try again.
        let mut tries = 0;
        let child = loop {
            match cmd.spawn() {
                Ok(child) => break child,
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("spawn {who} {cmd:?}: {e}"),
            }
        };
        let mut standin = Standin {
            child,
            state: state.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready.exists() {
            if let Some(status) = standin.child.try_wait().expect("try_wait") {
                panic!("{who} exited before it was ready: {status}");
            }
            assert!(Instant::now() < deadline, "{who} not ready in 10 s");
            std::thread::sleep(Duration::from_millis(10));
        }
        standin
    }

    /// [`Standin::start_with`] as an unprivileged user: the stand-in, and so
    /// every job it starts, runs as `uid`:`gid` with no supplementary groups
    /// — that user's own launchd, as on a Mac where a LaunchAgent runs as
    /// the user who is logged in. `state` is created and given to that
    /// user; the stand-in runs from a root-owned copy in `<state>/bin`. The
    /// environment is a job's minimal one (`PATH`, `SHELL=/bin/sh`) rather
    /// than the test's, whose paths that user may not reach. Needs root
    /// (setuid).
    pub fn start_as_user(
        dirs: &[&Path],
        state: &Path,
        extra: &[&str],
        uid: u32,
        gid: u32,
    ) -> Standin {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt;
        let open = || std::fs::Permissions::from_mode(0o755);
        // The user may not reach the build's target directory (a checkout
        // in a home that is not world-readable): run a root-owned copy.
        let bin_dir = state.join("bin");
        std::fs::create_dir_all(&bin_dir).expect("create the stand-in's state dir");
        let exe = bin_dir.join("launchd-standin");
        std::fs::copy(fixture_bin("launchd-standin"), &exe).expect("copy the stand-in");
        for (path, mode) in [
            (&bin_dir, open()),
            (&exe, open()),
            (&state.to_path_buf(), open()),
        ] {
            std::fs::set_permissions(path, mode).expect("chmod the stand-in's files");
        }
        std::os::unix::fs::chown(state, Some(uid), Some(gid)).expect("chown the state dir");
        let mut cmd = Command::new(&exe);
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("SHELL", "/bin/sh");
        // SAFETY: setgroups, setgid and setuid are async-signal-safe system
        // calls; nothing is allocated between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setgroups(0, std::ptr::null()) < 0
                    || libc::setgid(gid) < 0
                    || libc::setuid(uid) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Standin::launch(
            cmd,
            dirs,
            state,
            extra,
            &format!("launchd-standin (uid {uid})"),
        )
    }

    /// The `launchctl` shim, for the daemon's `LaunchctlPath`. Whoever runs
    /// it needs [`STANDIN_SOCK_ENV`] set to [`Standin::sock_path`].
    pub fn launchctl_path() -> PathBuf {
        fixture_bin("launchctl")
    }

    pub fn sock_path(&self) -> PathBuf {
        self.state.join("control.sock")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Run the `launchctl` shim, as the daemon would (it is logged in
    /// `calls.log`).
    pub fn launchctl(&self, args: &[&str]) -> LaunchctlReply {
        let out = Command::new(Standin::launchctl_path())
            .args(args)
            .env(STANDIN_SOCK_ENV, self.sock_path())
            .stdin(Stdio::null())
            .output()
            .expect("run the launchctl shim");
        LaunchctlReply {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// A `launchctl` command sent straight to the socket: not in
    /// `calls.log`, so a test's own looking does not mix with the daemon's
    /// calls.
    pub fn query(&self, args: &[&str]) -> LaunchctlReply {
        let args: Vec<String> = args.iter().map(|a| (*a).to_string()).collect();
        standin_request(&self.sock_path(), &args).expect("ask the stand-in")
    }

    /// The pid of a running job, from `launchctl print <target>` (the
    /// one-tab `pid = ` line; nested blocks are indented further).
    pub fn job_pid(&self, target: &str) -> Option<u32> {
        let reply = self.query(&["print", target]);
        (reply.code == 0)
            .then(|| {
                reply
                    .stdout
                    .lines()
                    .find_map(|l| l.strip_prefix("\tpid = ")?.parse().ok())
            })
            .flatten()
    }

    /// The shim's log: one line per call, its arguments joined by spaces.
    pub fn calls(&self) -> Vec<String> {
        self.log_lines("calls.log")
    }

    /// What the notification stand-in recorded (`launchctl asuser …`),
    /// one JSON object per notification: `argv`, `asuser`, `user`, `uid`
    /// and `euid` it ran as, `script`.
    pub fn notifications(&self) -> Vec<serde_json::Value> {
        self.log_lines("notifications.log")
            .iter()
            .map(|l| serde_json::from_str(l).expect("a notification record"))
            .collect()
    }

    /// The stand-in's log: `load`, `spawn`, `exit`, `bootout` lines.
    pub fn job_events(&self) -> Vec<String> {
        self.log_lines("jobs.log")
    }

    fn log_lines(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.state.join(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid; no memory involved.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// The daemon under test (`lenscap run`), and facts about files it moves.
mod daemon;
pub use daemon::{
    Daemon, FAULT_ENV, FileFacts, config_state_dir, pid_running, processes_matching, sha256_file,
    sha256_hex, tree_facts, wait_until,
};

/// Path of the `lenscap-collector` binary, built once per test process
/// the way [`lenscap_bin`] builds `lenscap` (in the test binary's own
/// profile, so a `--release` test run gets a release collector).
pub fn collector_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_workspace_bin("lenscap-collector", "lenscap-collector"))
}

/// Start a helper on a pseudo-terminal as its controlling terminal — what a
/// person typing in Terminal.app produces — and wait for its port file.
/// Returns the process, its port and the pty master (close it when done).
pub fn start_on_terminal(exe: &Path, args: &[&str], port_file: &Path) -> (Proc, u16, libc::c_int) {
    let mut master: libc::c_int = -1;
    let mut slave: libc::c_int = -1;
    // SAFETY: openpty writes two fds into the provided ints; null name,
    // termios and winsize pointers are allowed.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(exe);
    cmd.args(args).arg("--port-file").arg(port_file);
    // SAFETY: setsid and ioctl are async-signal-safe; `slave` is a valid fd
    // inherited across fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(slave, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let proc = Proc::spawn(&mut cmd);
    // SAFETY: closing our copy of the slave fd; the child keeps its own.
    unsafe { libc::close(slave) };
    let port = wait_for_file(port_file, Duration::from_secs(10))
        .parse()
        .expect("port file holds a port");
    (proc, port, master)
}
