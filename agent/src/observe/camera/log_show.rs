//! Which camera sessions are open now, for `lenscap scan` on macOS: replay
//! the recent unified log (`log show`) through the same parser and
//! [`SessionTracker`] the daemon's `log stream` feeds, and keep what is
//! still open at the end.
//!
//! Limits, said plainly: a session that started before the look-back window
//! is not seen (ControlCenter's attribution list reappears on every change,
//! so any change in the window brings it back); and shapes without a stop
//! message (13.3's control PID) stay open until the caller closes them,
//! e.g. because the process exited.

use std::collections::VecDeque;
use std::io::{self, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::log_stream::read_bounded_line;
use super::sessions::{LogSession, SessionTracker};
use crate::clock::unix_now_us;
use crate::parse::camera_log::{CameraLogParser, MAX_LINE_LEN, predicate_for};

#[derive(Debug, thiserror::Error)]
pub enum LogShowError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{program} show did not finish within {timeout:?} and was killed")]
    Timeout { program: PathBuf, timeout: Duration },
    #[error("{program} show failed ({status}){stderr}")]
    Failed {
        program: PathBuf,
        status: String,
        /// `: <last stderr lines>`, or empty.
        stderr: String,
    },
    #[error("waiting for {program}: {source}")]
    Wait {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// `log show` arguments for the last `lookback` on macOS `major.minor`,
/// matching `log_stream_args`' level: 13.3's message is at debug level.
pub fn log_show_args(major: u32, minor: u32, lookback: Duration) -> Vec<String> {
    // `--last` takes minutes, hours or days; round up to whole minutes.
    let minutes = lookback.as_secs().div_ceil(60).max(1);
    let mut args: Vec<String> = ["show", "--style", "ndjson", "--last"]
        .into_iter()
        .map(str::to_string)
        .collect();
    args.push(format!("{minutes}m"));
    if major == 13 && minor >= 3 {
        args.extend(["--info".to_string(), "--debug".to_string()]);
    }
    args.push("--predicate".into());
    args.push(predicate_for(major, minor));
    args
}

/// Run `<log_path> show …` (see [`log_show_args`]), feed every line through
/// the camera log parser and return the sessions still open at the end.
/// The child is killed (with its process group) at `timeout`.
pub fn current_sessions_from_log(
    log_path: &Path,
    major: u32,
    minor: u32,
    lookback: Duration,
    timeout: Duration,
) -> Result<Vec<LogSession>, LogShowError> {
    let program = log_path.to_path_buf();
    let mut child = Command::new(log_path)
        .args(log_show_args(major, minor, lookback))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| LogShowError::Spawn {
            program: program.clone(),
            source,
        })?;
    let (out_tx, out_rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        thread::spawn(move || {
            let _ = out_tx.send(replay(out));
        });
    }
    let (err_tx, err_rx) = mpsc::channel();
    if let Some(err) = child.stderr.take() {
        thread::spawn(move || {
            let _ = err_tx.send(stderr_tail(err));
        });
    }

    let deadline = Instant::now() + timeout;
    let status = wait_until(&mut child, deadline).map_err(|source| LogShowError::Wait {
        program: program.clone(),
        source,
    })?;
    let Some(status) = status else {
        return Err(LogShowError::Timeout { program, timeout });
    };
    // The readers end at end of file, right after the child; should
    // something the child started hold the pipes open, do not wait on it.
    let sessions = out_rx.recv_timeout(Duration::from_secs(2)).ok();
    let stderr = err_rx
        .recv_timeout(Duration::from_millis(500))
        .unwrap_or_default();
    if !status.success() {
        return Err(LogShowError::Failed {
            program,
            status: status.to_string(),
            stderr: if stderr.is_empty() {
                String::new()
            } else {
                format!(": {stderr}")
            },
        });
    }
    sessions.ok_or_else(|| LogShowError::Failed {
        program,
        status: "exited, but its output did not end".into(),
        stderr: String::new(),
    })
}

/// Reap `child` by `deadline`, or kill its process group and reap it and
/// answer `None`. The child is unreaped whenever it is signalled, so its
/// PID cannot name another process.
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.kill();
            child.wait()?;
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn replay(out: impl Read) -> Vec<LogSession> {
    let mut parser = CameraLogParser::new();
    let mut tracker = SessionTracker::new();
    let mut reader = BufReader::with_capacity(64 * 1024, out);
    let mut line = Vec::with_capacity(4096);
    while let Ok(true) = read_bounded_line(&mut reader, &mut line, MAX_LINE_LEN + 1) {
        for event in parser.feed_line(&String::from_utf8_lossy(&line)) {
            tracker.feed(&event, unix_now_us());
        }
    }
    tracker.sessions()
}

fn stderr_tail(err: impl Read) -> String {
    let mut reader = BufReader::new(err);
    let mut line = Vec::new();
    let mut tail = VecDeque::new();
    while let Ok(true) = read_bounded_line(&mut reader, &mut line, 300) {
        let text = String::from_utf8_lossy(&line).trim().to_string();
        if !text.is_empty() {
            if tail.len() == 3 {
                tail.pop_front();
            }
            tail.push_back(text);
        }
    }
    tail.into_iter().collect::<Vec<_>>().join(" | ")
}
