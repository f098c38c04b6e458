//! Running the outside tools macOS is reached through (`codesign`,
//! `sfltool`, `launchctl`, `sw_vers`): with a deadline and a cap on what we
//! keep of their output, because a root daemon must never hang on, or be
//! flooded by, a child process.
//!
//! Written over `std::process` rather than with a crate: what is needed is
//! a timeout plus bounded pipes, which is a few dozen lines.
//!
//! A leaf shared by the stages that run tools (the platform's `codesign`
//! and `sfltool`, act's `launchctl`, report's host id): it imports nothing
//! of the agent.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} did not finish within {timeout:?} and was killed")]
    Timeout { program: PathBuf, timeout: Duration },
    #[error("waiting for {program}: {source}")]
    Wait {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a finished command left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// True when output beyond `max_output` was thrown away.
    pub truncated: bool,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
    pub fn stdout_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Run `program args…` with no stdin, keep at most `max_output` bytes of
/// each of stdout and stderr (the rest is drained and dropped so the child
/// never blocks on a full pipe), and kill it at `timeout`.
pub fn run<S: AsRef<OsStr>>(
    program: &Path,
    args: &[S],
    timeout: Duration,
    max_output: usize,
) -> Result<Output, CommandError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| CommandError::Spawn {
            program: program.to_path_buf(),
            source,
        })?;
    let out = child.stdout.take().map(|p| drain(p, max_output));
    let err = child.stderr.take().map(|p| drain(p, max_output));

    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                // Best effort: the child may exit between the check and the kill.
                let _ = child.kill();
                let _ = child.wait();
                return Err(CommandError::Timeout {
                    program: program.to_path_buf(),
                    timeout,
                });
            }
            Ok(None) => thread::sleep(Duration::from_millis(2)),
            Err(source) => {
                return Err(CommandError::Wait {
                    program: program.to_path_buf(),
                    source,
                });
            }
        }
    };
    let (stdout, t1) = out.and_then(|h| h.join().ok()).unwrap_or_default();
    let (stderr, t2) = err.and_then(|h| h.join().ok()).unwrap_or_default();
    Ok(Output {
        code: status.code(),
        stdout,
        stderr,
        truncated: t1 || t2,
    })
}

fn drain<R: Read + Send + 'static>(mut pipe: R, max: usize) -> thread::JoinHandle<(Vec<u8>, bool)> {
    thread::spawn(move || {
        let mut kept = Vec::new();
        let mut truncated = false;
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = max.saturating_sub(kept.len());
                    if n > room {
                        truncated = true;
                    }
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        (kept, truncated)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh() -> &'static Path {
        Path::new("/bin/sh")
    }

    #[test]
    fn captures_both_streams_and_code() {
        let out = run(
            sh(),
            &["-c", "echo out; echo err >&2; exit 3"],
            Duration::from_secs(5),
            1024,
        )
        .unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert!(!out.truncated);
    }

    #[test]
    fn output_is_capped_and_child_not_blocked() {
        // 1 MiB of output through a 1 KiB cap: the child must still finish.
        let out = run(
            sh(),
            &["-c", "head -c 1048576 /dev/zero"],
            Duration::from_secs(10),
            1024,
        )
        .unwrap();
        assert!(out.success());
        assert_eq!(out.stdout.len(), 1024);
        assert!(out.truncated);
    }

    #[test]
    fn timeout_kills() {
        let started = Instant::now();
        let err = run(sh(), &["-c", "sleep 30"], Duration::from_millis(200), 64).unwrap_err();
        assert!(matches!(err, CommandError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn missing_program_names_it() {
        let err = run(
            Path::new("/nonexistent/codesign"),
            &["-dv"],
            Duration::from_secs(1),
            64,
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/codesign"), "{err}");
    }
}
