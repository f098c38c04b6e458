//! `launchd-standin` — a **test fixture**, never shipped: just enough of
//! launchd for the Linux end-to-end tests to prove that the order of the
//! remediation steps matters. Kill a KeepAlive job's process without
//! unloading the job and it is started again, as on a Mac; `launchctl
//! bootout` it first and it stays gone.
//!
//! ```text
//! launchd-standin --dir DIR [--dir DIR …] --state DIR [--throttle-ms N]
//!                 [--bootout-missing 113|3] [--console-uid UID …]
//! ```
//!
//! - At start it loads every `*.plist` (XML or binary) in each `--dir`:
//!   `Label`, `ProgramArguments` / `Program`, `RunAtLoad`, `KeepAlive`
//!   (`true`, or a dict with `SuccessfulExit` / `Crashed`; other conditions
//!   are not modelled), `ThrottleInterval`, `ExitTimeOut`,
//!   `AbandonProcessGroup`, `WorkingDirectory`, `StandardOutPath`,
//!   `StandardErrorPath`. Like launchd it does not watch the directories: a
//!   plist written later runs only after `launchctl bootstrap`.
//! - Domains: a plist from a directory named `LaunchDaemons` is loaded into
//!   `system`, any other into `gui/<uid of the plist's owner>`, so a
//!   `bootout` naming the wrong domain fails as it would on a Mac. Who is
//!   logged in at the console is what the test says with `--console-uid`
//!   (once per user; the tests write the same users into the utmpx file
//!   the daemon reads as `UtmpxPath`): with it, a root-owned plist outside
//!   `LaunchDaemons` (`/Library/LaunchAgents`) is loaded into the gui
//!   domain of each of those users, its job run once per user as that
//!   user, and nowhere when the list is empty (`--console-uid none`).
//! - Each job runs in its own session (`setsid`: no controlling terminal,
//!   its own process group). When its process exits, the rest of its
//!   process group is killed (unless `AbandonProcessGroup`), and it is
//!   started again if `KeepAlive` says so, no sooner than `ThrottleInterval`
//!   after its last start (default `--throttle-ms` 200; launchd's is 10 s).
//!   Like launchd (pid 1) it is a child subreaper, so it reaps orphans too.
//! - Control: the `launchctl` shim of this package talks to
//!   `<state>/control.sock` (protocol: `lenscap_e2e::standin_request`).
//!   `bootout <service-target>`, `bootstrap <domain> <plist>…` and
//!   `print <service-target>` answer with the real commands' text and exit
//!   codes. A missing service: `print` exits 113 with `Could not find
//!   service "x" in domain for system` (or `for user gui: 501`); `bootout`
//!   exits 113 with `Boot-out failed: 113: Could not find specified
//!   service`, or, with `--bootout-missing 3`, as newer macOS does, 3 with
//!   `Boot-out failed: 3: No such process`. `bootout` returns once the job's
//!   process is gone (SIGTERM, then SIGKILL after `ExitTimeOut`, 20 s).
//! - Files in `--state`: `control.sock`; `ready` (our pid, written once the
//!   RunAtLoad jobs are started); `jobs.log` (`load`, `spawn`, `exit`,
//!   `bootout` lines for tests to check); `calls.log` (the shim's).
//! - SIGTERM or SIGINT: SIGTERM to every job, SIGKILL after 2 s, then to
//!   every remaining descendant; exit 0. It also stops when the process
//!   that started it dies, so a test killed by a timeout leaves nothing.
//!
//! Linux only (`setsid`, `prctl`, `/proc`): it stands in for launchd where
//! there is none. Output formats: the project's macOS reference.

#[path = "launchd-standin/control.rs"]
mod control;
#[path = "launchd-standin/job.rs"]
mod job;
#[path = "launchd-standin/print.rs"]
mod print;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::exit;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use control::reply;
use job::{Exit, Job};
use lenscap_e2e::LaunchctlReply;

/// How long a stop at shutdown waits after SIGTERM before SIGKILL.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct Options {
    dirs: Vec<PathBuf>,
    state: PathBuf,
    throttle: Duration,
    bootout_missing: i32,
    /// `--console-uid`: who is logged in; `None` when not said.
    console: Option<Vec<u32>>,
}

/// What the main loop (spawning, reaping) and the control thread share.
#[derive(Debug, Default)]
struct State {
    /// Loaded jobs by service target (`gui/501/<label>`, `system/<label>`).
    jobs: BTreeMap<String, Job>,
    /// Processes of booted-out jobs not yet reaped: pid → (target, abandon
    /// its process group).
    stopping: BTreeMap<i32, (String, bool)>,
    shutting_down: bool,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Notified after each reaping pass: `bootout` waits on it.
    reaped: Condvar,
    opts: Options,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Append a line to `jobs.log`; a test fixture that cannot is broken.
    fn log(&self, line: &str) {
        let path = self.opts.state.join("jobs.log");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            eprintln!("launchd-standin: {}: {e}", path.display());
        }
    }
}

fn main() {
    let opts = parse_args(std::env::args().skip(1)).unwrap_or_else(|e| fail(&e));
    // Block the signals the main loop waits for, before any thread exists,
    // so every thread inherits the mask and only `sigtimedwait` sees them.
    // (Jobs get a clean mask: see `Job::spawn`.)
    let signals = block_signals();
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
    let sock = opts.state.join("control.sock");
    if let Err(e) = std::fs::create_dir_all(&opts.state) {
        fail(&format!("{}: {e}", opts.state.display()));
    }
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock)
        .unwrap_or_else(|e| fail(&format!("bind {}: {e}", sock.display())));
    let shared = Arc::new(Shared {
        state: Mutex::default(),
        reaped: Condvar::new(),
        opts,
    });
    {
        let mut st = shared.lock();
        for dir in &shared.opts.dirs {
            load_dir(&shared, &mut st, dir);
        }
        job::start_due(&mut st.jobs, &|l| shared.log(l));
    }
    let ready = shared.opts.state.join("ready");
    let tmp = ready.with_extension("tmp");
    std::fs::write(&tmp, format!("{}\n", std::process::id()))
        .and_then(|()| std::fs::rename(&tmp, &ready))
        .unwrap_or_else(|e| fail(&format!("{}: {e}", ready.display())));
    let control = Arc::clone(&shared);
    // Spawning and reaping stay on the main thread: std's `spawn` waits for
    // a child whose exec failed, which a reaper on another thread could race.
    std::thread::spawn(move || control::serve(&listener, &control));
    run(&shared, &signals);
    shutdown(&shared);
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(&ready);
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut opts = Options {
        dirs: Vec::new(),
        state: PathBuf::new(),
        throttle: Duration::from_millis(200),
        bootout_missing: 113,
        console: None,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--dir" => opts.dirs.push(PathBuf::from(value()?)),
            "--state" => opts.state = PathBuf::from(value()?),
            "--throttle-ms" => {
                let ms = value()?
                    .parse()
                    .map_err(|e| format!("--throttle-ms: {e}"))?;
                opts.throttle = Duration::from_millis(ms);
            }
            "--bootout-missing" => {
                opts.bootout_missing = match value()?.as_str() {
                    "113" => 113,
                    "3" => 3,
                    v => return Err(format!("--bootout-missing {v}: expected 113 or 3")),
                }
            }
            "--console-uid" => {
                let v = value()?;
                let users = opts.console.get_or_insert_with(Vec::new);
                if v != "none" {
                    users.push(v.parse().map_err(|e| format!("--console-uid {v}: {e}"))?);
                }
            }
            _ => return Err(format!("unknown argument {arg}")),
        }
    }
    if opts.state.as_os_str().is_empty() {
        return Err("--state DIR is required".into());
    }
    Ok(opts)
}

fn fail(message: &str) -> ! {
    eprintln!("launchd-standin: {message}");
    exit(2)
}

fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use;
    // pthread_sigmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGUSR1] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Ask the main loop to look at the jobs now (after a `bootstrap`).
fn wake_main_loop() {
    // SAFETY: kill(2) on our own pid; SIGUSR1 is blocked in every thread, so
    // it waits for the main loop's sigtimedwait.
    unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
}

/// The main loop: reap, restart, until SIGTERM/SIGINT or our parent dies.
fn run(shared: &Shared, signals: &libc::sigset_t) {
    // SAFETY: getppid cannot fail.
    let parent = unsafe { libc::getppid() };
    loop {
        let timeout = job::next_due(&shared.lock().jobs).min(Duration::from_secs(1));
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `signals` and `ts` outlive the call; siginfo may be null.
        let sig = unsafe { libc::sigtimedwait(signals, std::ptr::null_mut(), &ts) };
        // SAFETY: as above.
        if sig == libc::SIGTERM || sig == libc::SIGINT || unsafe { libc::getppid() } != parent {
            return;
        }
        let mut st = shared.lock();
        reap(shared, &mut st);
        job::start_due(&mut st.jobs, &|l| shared.log(l));
        drop(st);
        shared.reaped.notify_all();
    }
}

/// Collect every exited child: update its job, kill what is left of its
/// process group, and schedule a KeepAlive restart. Holding the lock while
/// reaping means a pid the control thread signals is never a reused one.
fn reap(shared: &Shared, st: &mut State) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
        let exit = if libc::WIFEXITED(status) {
            Exit::Code(libc::WEXITSTATUS(status))
        } else {
            Exit::Signal(libc::WTERMSIG(status))
        };
        if let Some((target, abandon)) = st.stopping.remove(&pid) {
            if !abandon {
                kill_group(pid);
            }
            shared.log(&format!("exit {target} {pid} {exit}"));
        } else if let Some((target, job)) = st.jobs.iter_mut().find(|(_, j)| j.pid == Some(pid)) {
            if !job.spec.abandon_group {
                kill_group(pid);
            }
            job.exited(exit, !st.shutting_down);
            shared.log(&format!("exit {target} {pid} {exit}"));
        }
        // Anything else is an orphan we adopted as subreaper: reaped, done.
    }
}

/// SIGKILL the rest of a job's process group (launchd does the same unless
/// the job sets `AbandonProcessGroup`).
fn kill_group(pgid: i32) {
    // SAFETY: kill(2) on a process group; no memory involved.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

fn shutdown(shared: &Shared) {
    let pids: Vec<i32> = {
        let mut st = shared.lock();
        st.shutting_down = true;
        st.jobs.values_mut().for_each(|j| j.restart_at = None);
        let running = st.jobs.values().filter_map(|j| j.pid);
        running.chain(st.stopping.keys().copied()).collect()
    };
    for pid in pids {
        // SAFETY: kill(2); the pid is our unreaped child, so not reused.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while Instant::now() < deadline {
        let mut st = shared.lock();
        reap(shared, &mut st);
        if st.jobs.values().all(|j| j.pid.is_none()) && st.stopping.is_empty() {
            break;
        }
        drop(st);
        std::thread::sleep(Duration::from_millis(10));
    }
    shared.reaped.notify_all();
    kill_descendants();
}

/// SIGKILL and reap every process below us. As a subreaper we inherit the
/// orphans of our jobs' trees, so repeating until none is left gets all.
fn kill_descendants() {
    for _ in 0..100 {
        let me = std::process::id();
        let kids: Vec<i32> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|pid| parent_of(*pid) == Some(me))
            .collect();
        if kids.is_empty() {
            return;
        }
        for pid in &kids {
            // SAFETY: kill(2) on our own unreaped child.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        for pid in kids {
            // SAFETY: waitpid on our own child; a null status is allowed.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        }
    }
}

/// Parent pid from `/proc/<pid>/stat`: the second field after `(comm)`.
fn parent_of(pid: i32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn load_dir(shared: &Shared, st: &mut State, dir: &Path) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return eprintln!("launchd-standin: skipping {}: {e}", dir.display()),
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "plist"))
        .collect();
    paths.sort();
    for path in paths {
        for domain in job::domains_for(dir, &path, shared.opts.console.as_deref()) {
            if let Err(reply) = load(shared, st, &domain, &path) {
                eprint!("launchd-standin: {}: {}", path.display(), reply.stderr);
            }
        }
    }
}

/// Load one plist into `domain`; the job starts on the next loop pass if it
/// runs at load. Errors are the real `bootstrap`'s.
fn load(shared: &Shared, st: &mut State, domain: &str, path: &Path) -> Result<(), LaunchctlReply> {
    if !path.exists() {
        let text = format!(
            "{}: No such file or directory\nBootstrap failed: 2: No such file or directory\n",
            path.display()
        );
        return Err(reply(2, "", &text));
    }
    let io_error = || reply(5, "", "Bootstrap failed: 5: Input/output error\n");
    let spec = job::Spec::from_plist(path, shared.opts.throttle).map_err(|e| {
        eprintln!("launchd-standin: {}: {e}", path.display());
        io_error()
    })?;
    let target = format!("{domain}/{}", spec.label);
    if st.jobs.contains_key(&target) {
        // launchd's answer when the label is already loaded.
        return Err(io_error());
    }
    shared.log(&format!("load {target} {}", path.display()));
    st.jobs.insert(target, Job::new(spec));
    Ok(())
}
