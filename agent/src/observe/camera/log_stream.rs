//! `log stream` as a supervised, long-lived child: the daemon's camera
//! signal on macOS.
//!
//! One supervisor thread starts `<LogPath> <log_stream_args(major, minor)>`
//! and restarts it whenever it cannot start or exits, waiting with
//! exponential backoff and jitter in between (1 s doubling to 5 min; the
//! backoff resets once a child has run [`LogStreamOptions::healthy_after`]).
//! Each child's stdout is read line by line on its own thread, every line
//! goes through one [`CameraLogParser`] (kept across restarts: the
//! attribution lists it diffs are full state, so the next list after a gap
//! reconciles what the gap missed), and what comes out is sent as
//! [`CameraFeed`]s:
//!
//! - `Event` for every camera start or stop;
//! - `Trouble` when a child cannot start or exits, with its exit status,
//!   the last lines of its stderr and the wait before the next try;
//! - `Recovered` once a child started after trouble prints its first line
//!   (`log` prints its `Filtering the log data…` header as soon as the
//!   predicate compiles) or has run `healthy_after`.
//!
//! The child runs in its own process group and is killed as a group, so a
//! stand-in script's children die with it. It is only ever signalled while
//! its `Child` is held, unreaped, under the shared lock: its PID (and so its
//! group id) cannot have been reused by then. [`LogStream::stop`] (or
//! dropping the `LogStream`) kills and reaps the child and joins the
//! supervisor promptly: every wait, including a five-minute backoff, is a
//! condition-variable wait that `stop` interrupts.
//!
//! If the daemon itself dies (a crash, SIGKILL), nothing of the above runs,
//! and an orphaned `log stream` would live on until its next write hits the
//! closed pipe — for the camera predicate, possibly hours. So each child
//! gets a *reaper* ([`spawn_reaper`]): a `/bin/sh` in the child's process
//! group that blocks reading a pipe whose only writer is this process.
//! The daemon never writes to it; when the daemon is gone, however it
//! ended, the kernel closes the write end, the read sees EOF and the
//! reaper kills the group. (macOS has no parent-death signal, and launchd
//! cleans up only the job's own process group, which the child left.)

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::backoff::{Backoff, random};
use crate::parse::camera_log::{
    CameraEvent, CameraLogParser, MAX_LINE_LEN, ParseStats, log_stream_args,
};
use crate::parse::tcc_log::{TccLogChange, parse_ndjson_line};

/// What the camera log stream tells its consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraFeed {
    Event(CameraEvent),
    /// A privacy-grant change tccd logged (`parse::tcc_log`).
    Grant(TccLogChange),
    /// The stream is down (or could not start); the text says why and when
    /// it is tried again.
    Trouble(String),
    /// A restarted stream is healthy again after `Trouble`.
    Recovered,
}

/// How [`LogStream`] runs its child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStreamOptions {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// First wait after a failure; it doubles per failure in a row.
    pub backoff_base: Duration,
    /// Longest wait between tries.
    pub backoff_cap: Duration,
    /// A child that ran this long counts as healthy: the backoff resets
    /// when it exits, and `Recovered` is sent if it had not been yet.
    pub healthy_after: Duration,
}

impl LogStreamOptions {
    /// `log stream` for macOS `major.minor` with the production timings.
    pub fn macos(log_path: &Path, major: u32, minor: u32) -> LogStreamOptions {
        LogStreamOptions {
            program: log_path.to_path_buf(),
            args: log_stream_args(major, minor),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(300),
            healthy_after: Duration::from_secs(60),
        }
    }
}

/// Lines of a dead child's stderr quoted in `Trouble`.
const STDERR_LINES: usize = 5;
/// Longest stderr line quoted.
const STDERR_LINE_LEN: usize = 300;
/// How often the supervisor looks at a running child when nothing wakes it
/// (a child that died while something else holds its stdout open).
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long a child that closed its stdout may take to exit before it is
/// killed, and how long reader threads get to finish after it is gone.
const GRACE: Duration = Duration::from_secs(2);

/// The running stream. Dropping it stops it.
#[derive(Debug)]
pub struct LogStream {
    shared: Arc<Shared>,
    supervisor: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    parser: Mutex<CameraLogParser>,
    starts: AtomicU64,
    /// Which child is current (bumped per start).
    generation: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    stopping: bool,
    /// The current child, unreaped. Only code holding the lock signals or
    /// reaps it, and it is taken out when reaped.
    child: Option<Child>,
    /// The current child's stdout reached end of file.
    stdout_closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking reader thread must not take the supervisor with it;
        // the state stays consistent (plain flags and the child handle).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stop(&self) {
        let mut state = self.lock();
        state.stopping = true;
        if let Some(child) = state.child.as_mut() {
            kill_group(child);
        }
        drop(state);
        self.wake.notify_all();
    }

    /// Sleep up to `wait` unless stopped; returns false when stopping.
    fn sleep(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let mut state = self.lock();
        while !state.stopping {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            state = match self.wake.wait_timeout(state, left) {
                Ok((s, _)) => s,
                Err(e) => e.into_inner().0,
            };
        }
        false
    }
}

/// Kill the child's whole process group, then the child itself (in case it
/// left the group). The caller holds the state lock and the child is
/// unreaped, so its PID still names it.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.kill();
}

impl LogStream {
    /// Start supervising `opts.program`; feeds go to `feed`. The stream stops
    /// by itself if `feed`'s receiver is dropped.
    pub fn start(opts: LogStreamOptions, feed: Sender<CameraFeed>) -> io::Result<LogStream> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            parser: Mutex::new(CameraLogParser::new()),
            starts: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        });
        let for_thread = Arc::clone(&shared);
        let supervisor = thread::Builder::new()
            .name("lenscap-camera-log".into())
            .spawn(move || supervise(&for_thread, &opts, &feed))?;
        Ok(LogStream {
            shared,
            supervisor: Some(supervisor),
        })
    }

    /// How many children have been started so far.
    pub fn starts(&self) -> u64 {
        self.shared.starts.load(Ordering::Relaxed)
    }

    /// The parser's counters (lines seen, matched, …) for the health report.
    pub fn stats(&self) -> ParseStats {
        self.shared
            .parser
            .lock()
            .map(|p| p.stats())
            .unwrap_or_else(|e| e.into_inner().stats())
    }

    /// Kill and reap the child and join the supervisor.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop();
        if let Some(handle) = self.supervisor.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for LogStream {
    fn drop(&mut self) {
        self.shutdown();
    }
}

enum Run {
    /// Stopped on request, or nobody listens any more.
    Over,
    /// The child could not start or exited; the text says how.
    Failed(String),
}

fn supervise(shared: &Arc<Shared>, opts: &LogStreamOptions, feed: &Sender<CameraFeed>) {
    let mut backoff = Backoff::new(opts.backoff_base, opts.backoff_cap);
    let in_trouble = Arc::new(AtomicBool::new(false));
    loop {
        let started = Instant::now();
        match run_once(shared, opts, feed, &in_trouble) {
            Run::Over => return,
            Run::Failed(why) => {
                if started.elapsed() >= opts.healthy_after {
                    backoff.reset();
                }
                let wait = backoff.fail(random());
                in_trouble.store(true, Ordering::SeqCst);
                let message = format!("{why}; starting it again in {wait:.1?}");
                if feed.send(CameraFeed::Trouble(message)).is_err() || !shared.sleep(wait) {
                    return;
                }
            }
        }
    }
}

fn run_once(
    shared: &Arc<Shared>,
    opts: &LogStreamOptions,
    feed: &Sender<CameraFeed>,
    in_trouble: &Arc<AtomicBool>,
) -> Run {
    let program = opts.program.display();
    let mut child = match Command::new(&opts.program)
        .args(&opts.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return Run::Failed(format!("cannot start {program}: {e}")),
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    // Held until this run ends: dropping it (or this process dying) is the
    // reaper's cue.
    let mut reaper = match spawn_reaper(child.id()) {
        Ok(reaper) => Some(reaper),
        Err(e) => {
            tracing::warn!(error = %e, "log stream reaper not started; a crash of the daemon would orphan `log stream`");
            None
        }
    };
    {
        let mut state = shared.lock();
        if state.stopping {
            kill_group(&mut child);
            let _ = child.wait();
            end_reaper(reaper.take());
            return Run::Over;
        }
        state.child = Some(child);
        state.stdout_closed = false;
    }
    shared.starts.fetch_add(1, Ordering::Relaxed);

    let generation = shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let receiver_gone = Arc::new(AtomicBool::new(false));
    // Readers are not scoped threads: should something outside the child's
    // process group hold its pipes open, they are left to finish on their
    // own (sending nothing, being of an old generation) instead of hanging
    // the supervisor and `stop`. With `log`, which has no children, and a
    // killed group, they always end.
    let mut readers = 0;
    if let Some(out) = stdout {
        let (shared, feed, in_trouble, gone, done) = (
            Arc::clone(shared),
            feed.clone(),
            Arc::clone(in_trouble),
            Arc::clone(&receiver_gone),
            done_tx.clone(),
        );
        let spawned = thread::Builder::new()
            .name("lenscap-camera-log-out".into())
            .spawn(move || {
                let reader = Reader {
                    shared: &shared,
                    generation,
                    feed: &feed,
                    in_trouble: &in_trouble,
                    receiver_gone: &gone,
                };
                reader.read(out);
                let mut state = shared.lock();
                if shared.generation.load(Ordering::SeqCst) == generation {
                    state.stdout_closed = true;
                }
                drop(state);
                shared.wake.notify_all();
                let _ = done.send(());
            });
        readers += usize::from(spawned.is_ok());
    }
    if let Some(err) = stderr {
        let (tail, done) = (Arc::clone(&tail), done_tx.clone());
        let spawned = thread::Builder::new()
            .name("lenscap-camera-log-err".into())
            .spawn(move || {
                read_stderr(err, &tail);
                let _ = done.send(());
            });
        readers += usize::from(spawned.is_ok());
    }
    drop(done_tx);
    let ended = watch_child(shared, opts, feed, in_trouble, &receiver_gone);
    end_reaper(reaper.take());
    wait_readers(&done_rx, readers);
    match ended {
        Ended::Stopped => Run::Over,
        Ended::Exited(_) if receiver_gone.load(Ordering::SeqCst) => Run::Over,
        Ended::Exited(status) => {
            let tail = tail.lock().map(|t| t.clone()).unwrap_or_default();
            let stderr = if tail.is_empty() {
                String::new()
            } else {
                format!(
                    "; its last stderr: {}",
                    tail.iter().cloned().collect::<Vec<_>>().join(" | ")
                )
            };
            let status = match status {
                Ok(s) => format!("exited ({s})"),
                Err(e) => format!("was lost ({e})"),
            };
            Run::Failed(format!("{program} {status}{stderr}"))
        }
    }
}

/// The reaper's script: wait for EOF on stdin (the daemon gone), then kill
/// the process group given as `$1`. Nothing is ever written to the pipe,
/// so `read` returns only at EOF.
const REAPER_SCRIPT: &str = r#"read -r _; kill -s KILL -- "-$1""#;

/// A reaper for the process group `group` (the `log` child's pid, which
/// leads it): `/bin/sh` joins that group, so stopping the child with
/// [`kill_group`] ends it too, and reads a pipe whose write end (returned)
/// only this process holds. Drop the writer, or die, and the reaper kills
/// the group. The write end is close-on-exec, so no other child of the
/// daemon inherits it and keeps the reaper waiting.
pub(crate) fn spawn_reaper(group: u32) -> io::Result<(Child, io::PipeWriter)> {
    let pgid = i32::try_from(group).map_err(|_| io::Error::other("pid out of range"))?;
    let (reader, writer) = io::pipe()?;
    let child = Command::new("/bin/sh")
        .args([
            "-c",
            REAPER_SCRIPT,
            "lenscap-log-reaper",
            &group.to_string(),
        ])
        .stdin(reader)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(pgid)
        .spawn()?;
    Ok((child, writer))
}

/// This run is over: end the reaper (it is still ours and unreaped, so its
/// PID names it) and reap it; then the pipe is closed.
fn end_reaper(reaper: Option<(Child, io::PipeWriter)>) {
    if let Some((mut child, writer)) = reaper {
        let _ = child.kill();
        let _ = child.wait();
        drop(writer);
    }
}

enum Ended {
    Stopped,
    Exited(io::Result<ExitStatus>),
}

/// Wait until the child exits or we are told to stop; reaps it either way.
fn watch_child(
    shared: &Shared,
    opts: &LogStreamOptions,
    feed: &Sender<CameraFeed>,
    in_trouble: &AtomicBool,
    receiver_gone: &AtomicBool,
) -> Ended {
    let started = Instant::now();
    let mut closed_at: Option<Instant> = None;
    let mut state = shared.lock();
    loop {
        if state.stopping || receiver_gone.load(Ordering::SeqCst) {
            if let Some(mut child) = state.child.take() {
                kill_group(&mut child);
                let _ = child.wait();
            }
            return if state.stopping {
                Ended::Stopped
            } else {
                Ended::Exited(Err(io::Error::other("nobody reads the camera feed")))
            };
        }
        let stdout_closed = state.stdout_closed;
        let Some(child) = state.child.as_mut() else {
            return Ended::Stopped;
        };
        match child.try_wait() {
            Ok(Some(status)) => {
                state.child = None;
                return Ended::Exited(Ok(status));
            }
            Ok(None) => {}
            Err(e) => {
                kill_group(child);
                let _ = child.wait();
                state.child = None;
                return Ended::Exited(Err(e));
            }
        }
        if stdout_closed {
            // Without stdout the child is of no use; give it a moment to
            // exit by itself (so its status is its own), then end it.
            let at = *closed_at.get_or_insert_with(Instant::now);
            if at.elapsed() >= GRACE {
                kill_group(child);
            }
        }
        if started.elapsed() >= opts.healthy_after
            && in_trouble.swap(false, Ordering::SeqCst)
            && feed.send(CameraFeed::Recovered).is_err()
        {
            receiver_gone.store(true, Ordering::SeqCst);
        }
        let until_healthy = opts.healthy_after.saturating_sub(started.elapsed());
        let wait = if stdout_closed {
            Duration::from_millis(20)
        } else if until_healthy.is_zero() {
            CHECK_EVERY
        } else {
            CHECK_EVERY.min(until_healthy)
        };
        state = match shared.wake.wait_timeout(state, wait) {
            Ok((s, _)) => s,
            Err(e) => e.into_inner().0,
        };
    }
}

fn wait_readers(done: &Receiver<()>, readers: usize) {
    let deadline = Instant::now() + GRACE;
    for _ in 0..readers {
        let left = deadline.saturating_duration_since(Instant::now());
        if done.recv_timeout(left).is_err() {
            return;
        }
    }
}

/// One child's stdout reader.
struct Reader<'a> {
    shared: &'a Shared,
    /// The child this reader belongs to; a reader outliving its child
    /// sends nothing.
    generation: u64,
    feed: &'a Sender<CameraFeed>,
    in_trouble: &'a AtomicBool,
    receiver_gone: &'a AtomicBool,
}

impl Reader<'_> {
    fn current(&self) -> bool {
        self.shared.generation.load(Ordering::SeqCst) == self.generation
    }

    fn read(&self, out: impl Read) {
        let mut reader = BufReader::with_capacity(64 * 1024, out);
        let mut line = Vec::with_capacity(4096);
        let mut first = true;
        while let Ok(true) = read_bounded_line(&mut reader, &mut line, MAX_LINE_LEN + 1) {
            if !self.current() {
                continue;
            }
            if first {
                first = false;
                if self.in_trouble.swap(false, Ordering::SeqCst)
                    && self.feed.send(CameraFeed::Recovered).is_err()
                {
                    self.gone();
                    break;
                }
            }
            let text = String::from_utf8_lossy(&line);
            let events = {
                let mut parser = self.shared.parser.lock().unwrap_or_else(|e| e.into_inner());
                // A line cut at `MAX_LINE_LEN + 1` is still over the limit,
                // so the parser counts it as oversized and skips it.
                parser.feed_line(&text)
            };
            if events
                .into_iter()
                .any(|e| self.feed.send(CameraFeed::Event(e)).is_err())
            {
                self.gone();
                break;
            }
            // After the camera parser, which counts every line.
            let sent = match parse_ndjson_line(&text) {
                Some(Ok(change)) => self.feed.send(CameraFeed::Grant(change)).is_ok(),
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "tccd grant change not understood");
                    true
                }
                None => true,
            };
            if !sent {
                self.gone();
                break;
            }
        }
    }

    fn gone(&self) {
        self.receiver_gone.store(true, Ordering::SeqCst);
        self.shared.wake.notify_all();
    }
}

fn read_stderr(err: impl Read, tail: &Mutex<VecDeque<String>>) {
    let mut reader = BufReader::new(err);
    let mut line = Vec::new();
    while let Ok(true) = read_bounded_line(&mut reader, &mut line, STDERR_LINE_LEN) {
        let text = String::from_utf8_lossy(&line).trim().to_string();
        if text.is_empty() {
            continue;
        }
        let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
        if tail.len() == STDERR_LINES {
            tail.pop_front();
        }
        tail.push_back(text);
    }
}

/// Read one line (without its newline) into `buf`, keeping at most `max`
/// bytes of it and discarding the rest, so a child printing without
/// newlines cannot make us buffer without bound. `Ok(false)` at end of file.
pub(crate) fn read_bounded_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<bool> {
    buf.clear();
    let mut any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(any);
        }
        any = true;
        let (chunk, used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        let room = max.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        reader.consume(used);
        if done {
            return Ok(true);
        }
    }
}
