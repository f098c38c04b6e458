//! The jobs of `launchd-standin` (a test fixture): what a plist asks for,
//! starting a job the way launchd does, when KeepAlive restarts it, and the
//! text `launchctl print` shows for it.

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plist::Value;

/// launchd's default `ExitTimeOut`: SIGTERM to SIGKILL on `bootout`.
const DEFAULT_EXIT_TIMEOUT: Duration = Duration::from_secs(20);
/// A job plist is a few hundred bytes; refuse to parse anything huge.
const MAX_PLIST_BYTES: u64 = 1 << 20;
/// The status launchd records when it cannot start a job's program.
const EX_CONFIG: i32 = 78;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// launchd.plist(5): `Crashed` means "a signal typically associated with
    /// a crash (SIGILL, SIGSEGV, etc.)".
    fn crashed(self) -> bool {
        use libc::{SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGSYS, SIGTRAP};
        matches!(self, Exit::Signal(s) if [SIGILL, SIGTRAP, SIGABRT, SIGFPE, SIGBUS, SIGSEGV, SIGSYS].contains(&s))
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "code {c}"),
            Exit::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    Never,
    Always,
    /// The dict form; a condition left out is `None`.
    When {
        successful_exit: Option<bool>,
        crashed: Option<bool>,
    },
}

impl KeepAlive {
    fn from_plist(value: Option<&Value>) -> KeepAlive {
        match value {
            Some(Value::Boolean(true)) => KeepAlive::Always,
            Some(Value::Dictionary(d)) => KeepAlive::When {
                successful_exit: d.get("SuccessfulExit").and_then(Value::as_boolean),
                crashed: d.get("Crashed").and_then(Value::as_boolean),
            },
            _ => KeepAlive::Never,
        }
    }

    /// Whether a job that ended with `exit` is started again.
    pub fn restarts_after(self, exit: Exit) -> bool {
        match self {
            KeepAlive::Never => false,
            KeepAlive::Always => true,
            KeepAlive::When {
                successful_exit,
                crashed,
            } => {
                successful_exit.is_some_and(|want| want == (exit == Exit::Code(0)))
                    || crashed.is_some_and(|want| want == exit.crashed())
            }
        }
    }
}

/// What a job plist asks for.
#[derive(Debug, Clone)]
pub struct Spec {
    pub label: String,
    pub plist: PathBuf,
    pub program: PathBuf,
    /// The whole argv, `argv[0]` included.
    pub args: Vec<String>,
    pub run_at_load: bool,
    pub keep_alive: KeepAlive,
    pub throttle: Duration,
    pub exit_timeout: Duration,
    pub abandon_group: bool,
    pub workdir: Option<PathBuf>,
    pub stdout: Option<PathBuf>,
    pub stderr: Option<PathBuf>,
}

impl Spec {
    pub fn from_plist(path: &Path, default_throttle: Duration) -> Result<Spec, String> {
        let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
        if size > MAX_PLIST_BYTES {
            return Err(format!("{size} bytes, too big for a job plist"));
        }
        let value = Value::from_file(path).map_err(|e| e.to_string())?;
        Spec::from_value(&value, path, default_throttle)
    }

    fn from_value(value: &Value, path: &Path, default_throttle: Duration) -> Result<Spec, String> {
        let dict = value.as_dictionary().ok_or("not a dictionary")?;
        let string = |k: &str| dict.get(k).and_then(Value::as_string).map(str::to_owned);
        let flag = |k: &str| dict.get(k).and_then(Value::as_boolean).unwrap_or(false);
        let secs = |k: &str| {
            let secs = dict.get(k).and_then(Value::as_unsigned_integer);
            secs.map(Duration::from_secs)
        };
        let label = string("Label")
            .filter(|l| !l.is_empty())
            .ok_or("no Label")?;
        let mut args = Vec::new();
        if let Some(v) = dict.get("ProgramArguments") {
            for item in v.as_array().ok_or("ProgramArguments is not an array")? {
                let arg = item
                    .as_string()
                    .ok_or("ProgramArguments holds a non-string")?;
                args.push(arg.to_owned());
            }
        }
        // launchd executes `Program` when given, else ProgramArguments[0];
        // argv is ProgramArguments, or just the program.
        let program = string("Program")
            .or_else(|| args.first().cloned())
            .ok_or("neither Program nor ProgramArguments")?;
        if args.is_empty() {
            args.push(program.clone());
        }
        Ok(Spec {
            label,
            plist: path.to_path_buf(),
            program: program.into(),
            args,
            run_at_load: flag("RunAtLoad"),
            keep_alive: KeepAlive::from_plist(dict.get("KeepAlive")),
            throttle: secs("ThrottleInterval").unwrap_or(default_throttle),
            exit_timeout: secs("ExitTimeOut").unwrap_or(DEFAULT_EXIT_TIMEOUT),
            abandon_group: flag("AbandonProcessGroup"),
            workdir: string("WorkingDirectory").map(PathBuf::from),
            stdout: string("StandardOutPath").map(PathBuf::from),
            stderr: string("StandardErrorPath").map(PathBuf::from),
        })
    }

    /// launchd starts a job at load for `RunAtLoad`, for `KeepAlive` true,
    /// and for `SuccessfulExit`, which "implies RunAtLoad" (launchd.plist(5)).
    pub fn starts_at_load(&self) -> bool {
        self.run_at_load
            || matches!(
                self.keep_alive,
                KeepAlive::Always
                    | KeepAlive::When {
                        successful_exit: Some(_),
                        ..
                    }
            )
    }
}

/// A loaded job.
#[derive(Debug)]
pub struct Job {
    pub spec: Spec,
    pub pid: Option<i32>,
    /// When to (re)start it; `None` = not scheduled.
    pub restart_at: Option<Instant>,
    pub runs: u32,
    last_start: Option<Instant>,
    pub last_exit: Option<Exit>,
}

impl Job {
    pub fn new(spec: Spec) -> Job {
        Job {
            restart_at: spec.starts_at_load().then(Instant::now),
            spec,
            pid: None,
            runs: 0,
            last_start: None,
            last_exit: None,
        }
    }

    /// Its process ended (it has been reaped).
    pub fn exited(&mut self, exit: Exit, may_restart: bool) {
        self.pid = None;
        self.last_exit = Some(exit);
        if may_restart && self.spec.keep_alive.restarts_after(exit) {
            // ThrottleInterval: never sooner than that after the last start.
            let earliest = self.last_start.map(|t| t + self.spec.throttle);
            self.restart_at = Some(earliest.unwrap_or_else(Instant::now).max(Instant::now()));
        }
    }

    fn spawn(&mut self, target: &str, log: &dyn Fn(&str)) {
        let spec = &self.spec;
        let Some((argv0, rest)) = spec.args.split_first() else {
            return; // from_value always puts the program in argv
        };
        let mut cmd = Command::new(&spec.program);
        // launchd runs a job of `gui/<uid>` as that user; so does the
        // stand-in when it can (as root), so a user's agent in a test runs
        // as the user, exactly as the agent under test will see it on a Mac.
        if let Some(uid) = gui_uid(target).filter(|&u| u != 0)
            // SAFETY: geteuid cannot fail.
            && unsafe { libc::geteuid() } == 0
        {
            // A user's own plist: its group. A root-owned agent loaded for a
            // logged-in user: that user's primary group, as loginwindow's
            // session has.
            let gid = match std::fs::metadata(&spec.plist) {
                Ok(m) if m.uid() == uid => m.gid(),
                _ => primary_gid(uid).unwrap_or(uid),
            };
            cmd.uid(uid).gid(gid);
        }
        cmd.arg0(argv0)
            .args(rest)
            .current_dir(spec.workdir.as_deref().unwrap_or(Path::new("/")))
            .stdin(Stdio::null())
            .stdout(output(spec.stdout.as_deref()))
            .stderr(output(spec.stderr.as_deref()));
        // SAFETY: between fork and exec the closure calls only
        // async-signal-safe functions (sigemptyset, pthread_sigmask, setsid,
        // prctl) on a stack-allocated set, and allocates nothing.
        unsafe {
            cmd.pre_exec(|| {
                // The stand-in blocks SIGTERM & co. for its sigtimedwait, and
                // a blocked mask survives exec (std does not reset it when
                // pre_exec is used): unblock, or the job would ignore SIGTERM.
                let mut empty: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut empty);
                libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
                // A session of its own, as launchd gives every job: no
                // controlling terminal, its own process group.
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Spawning happens only on the main thread, so this fires
                // when the stand-in dies, even by SIGKILL: no stray jobs.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        self.runs += 1;
        self.last_start = Some(Instant::now());
        self.restart_at = None;
        match cmd.spawn() {
            // Dropping the Child neither kills nor waits; the reaper does.
            Ok(child) => {
                let pid = child.id() as i32;
                self.pid = Some(pid);
                log(&format!("spawn {target} {pid}"));
            }
            Err(e) => {
                log(&format!("spawn-failed {target} {e}"));
                self.exited(Exit::Code(EX_CONFIG), true);
            }
        }
    }
}

fn output(path: Option<&Path>) -> Stdio {
    let file = path.and_then(|p| {
        let mut open = std::fs::OpenOptions::new();
        open.create(true).append(true).open(p).ok()
    });
    file.map_or_else(Stdio::null, Stdio::from)
}

/// The primary group of `uid`, from the password database.
fn primary_gid(uid: u32) -> Option<u32> {
    // SAFETY: getpwuid returns null or a pointer to a static record, read
    // at once; the stand-in's main thread is the only one spawning jobs.
    unsafe {
        let pw = libc::getpwuid(uid);
        (!pw.is_null()).then(|| (*pw).pw_gid)
    }
}

/// The uid of a `gui/<uid>/<label>` target.
fn gui_uid(target: &str) -> Option<u32> {
    target.strip_prefix("gui/")?.split('/').next()?.parse().ok()
}

/// Start every job whose start is due.
pub fn start_due(jobs: &mut BTreeMap<String, Job>, log: &dyn Fn(&str)) {
    let now = Instant::now();
    for (target, job) in jobs.iter_mut() {
        if job.pid.is_none() && job.restart_at.is_some_and(|t| t <= now) {
            job.spawn(target, log);
        }
    }
}

/// How long until the next scheduled start (`Duration::MAX` if none).
pub fn next_due(jobs: &BTreeMap<String, Job>) -> Duration {
    let now = Instant::now();
    let due = jobs.values().filter(|j| j.pid.is_none());
    let waits = due
        .filter_map(|j| j.restart_at)
        .map(|t| t.saturating_duration_since(now));
    waits.min().unwrap_or(Duration::MAX)
}

/// The domains a plist found at start-up loads into: `system` from a
/// `LaunchDaemons` directory; a root-owned agent, when the test says who
/// is logged in (`--console-uid`), into the gui domain of each of them, as
/// launchd loads `/Library/LaunchAgents` into every user's session (none
/// when nobody is); else the gui domain of the plist's owner.
pub fn domains_for(dir: &Path, plist: &Path, console: Option<&[u32]>) -> Vec<String> {
    let root_owned = std::fs::metadata(plist).is_ok_and(|m| m.uid() == 0);
    match console {
        Some(uids) if root_owned && dir.file_name().is_none_or(|n| n != "LaunchDaemons") => {
            uids.iter().map(|u| format!("gui/{u}")).collect()
        }
        _ => vec![domain_for(dir, plist)],
    }
}

/// The domain a plist found at start-up loads into: `system` from a
/// `LaunchDaemons` directory, else the gui domain of the plist's owner.
pub fn domain_for(dir: &Path, plist: &Path) -> String {
    if dir.file_name().is_some_and(|n| n == "LaunchDaemons") {
        return "system".into();
    }
    // SAFETY: getuid cannot fail. (Only a vanished plist has no owner; its
    // load fails next anyway.)
    let uid = std::fs::metadata(plist).map_or_else(|_| unsafe { libc::getuid() }, |m| m.uid());
    format!("gui/{uid}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A third-party LaunchAgent in the shape macOS installs them (keys from
    /// launchd.plist(5); the project's macOS reference lists those that matter).
    const AGENT_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>us.zoom.ZoomOpener</string>
	<key>ProgramArguments</key>
	<array>
		<string>/Users/a/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener</string>
		<string>--background</string>
	</array>
	<key>RunAtLoad</key>
	<false/>
	<key>KeepAlive</key>
	<dict>
		<key>SuccessfulExit</key>
		<false/>
	</dict>
	<key>ThrottleInterval</key>
	<integer>5</integer>
</dict>
</plist>"#;

    fn spec(xml: &str) -> Result<Spec, String> {
        let value = Value::from_reader_xml(xml.as_bytes()).unwrap();
        Spec::from_value(&value, Path::new("/x.plist"), Duration::from_millis(200))
    }

    #[test]
    fn reads_a_launch_agent() {
        let s = spec(AGENT_XML).unwrap();
        assert_eq!(s.label, "us.zoom.ZoomOpener");
        let exe = "/Users/a/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener";
        assert_eq!(s.program, Path::new(exe));
        assert_eq!(s.args, [exe, "--background"]);
        assert_eq!(s.throttle, Duration::from_secs(5));
        assert_eq!(s.exit_timeout, DEFAULT_EXIT_TIMEOUT);
        let when = KeepAlive::When {
            successful_exit: Some(false),
            crashed: None,
        };
        assert_eq!(s.keep_alive, when);
        assert!(
            !s.run_at_load && s.starts_at_load(),
            "SuccessfulExit implies RunAtLoad"
        );
    }

    #[test]
    fn program_alone_is_argv_and_program_wins_over_argv0() {
        let dict = |body: &str| {
            format!("<plist><dict><key>Label</key><string>l</string>{body}</dict></plist>")
        };
        let s = spec(&dict("<key>Program</key><string>/bin/p</string>")).unwrap();
        assert_eq!(
            (s.program.as_path(), s.args.as_slice()),
            (Path::new("/bin/p"), &["/bin/p".to_string()][..])
        );
        let both = "<key>Program</key><string>/bin/p</string><key>ProgramArguments</key><array><string>name</string></array>";
        let s = spec(&dict(both)).unwrap();
        assert_eq!(
            (s.program.as_path(), s.args.as_slice()),
            (Path::new("/bin/p"), &["name".to_string()][..])
        );
        assert_eq!(
            spec(&dict("")).unwrap_err(),
            "neither Program nor ProgramArguments"
        );
        let bad = "<key>ProgramArguments</key><array><integer>1</integer></array>";
        assert_eq!(
            spec(&dict(bad)).unwrap_err(),
            "ProgramArguments holds a non-string"
        );
        assert_eq!(
            spec("<plist><dict></dict></plist>").unwrap_err(),
            "no Label"
        );
        assert_eq!(
            spec("<plist><array></array></plist>").unwrap_err(),
            "not a dictionary"
        );
    }

    #[test]
    fn binary_plists_load_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.plist");
        Value::from_reader_xml(AGENT_XML.as_bytes())
            .unwrap()
            .to_file_binary(&path)
            .unwrap();
        assert!(std::fs::read(&path).unwrap().starts_with(b"bplist00"));
        assert_eq!(
            Spec::from_plist(&path, Duration::ZERO).unwrap().label,
            "us.zoom.ZoomOpener"
        );
    }

    #[test]
    fn keep_alive_decides_restarts() {
        let when = |successful_exit, crashed| KeepAlive::When {
            successful_exit,
            crashed,
        };
        let (ok, failed, killed, segv) = (
            Exit::Code(0),
            Exit::Code(1),
            Exit::Signal(9),
            Exit::Signal(11),
        );
        let table = [
            (KeepAlive::Never, [false, false, false, false]),
            (KeepAlive::Always, [true, true, true, true]),
            (when(Some(false), None), [false, true, true, true]),
            (when(Some(true), None), [true, false, false, false]),
            (when(None, Some(true)), [false, false, false, true]),
            (when(None, None), [false, false, false, false]),
        ];
        for (keep, expected) in table {
            let got = [ok, failed, killed, segv].map(|e| keep.restarts_after(e));
            assert_eq!(got, expected, "{keep:?}");
        }
    }
}
