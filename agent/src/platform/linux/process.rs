//! Reading one process's identity from `/proc/<pid>`, and signalling it
//! only if it is still that process.
//!
//! Every file is read relative to one open `/proc/<pid>` directory fd. That
//! fd is bound to the process it was opened for: if the process exits and
//! the PID is reused, reads through the old fd fail (`ESRCH`) instead of
//! returning the newcomer's data, so an identity is never stitched together
//! from two processes.

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use rustix::fs::{CWD, Mode, OFlags, openat, readlinkat};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};

use super::procfs::{Stat, parse_stat, start_unix_us, strip_deleted};
use crate::model::{ProcessIdentity, StartTime};
use crate::platform::{PlatformError, SignalOutcome};

/// Clock facts needed to turn stat's `starttime` into a [`StartTime`].
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub btime_s: u64,
    pub ticks_per_s: u64,
}

impl Clock {
    pub fn start_time(self, starttime_ticks: u64) -> StartTime {
        StartTime {
            unix_us: start_unix_us(self.btime_s, starttime_ticks, self.ticks_per_s),
            resolution_us: u32::try_from(1_000_000 / self.ticks_per_s.max(1)).unwrap_or(u32::MAX),
        }
    }
}

/// An open `/proc/<pid>` directory.
#[derive(Debug)]
pub struct ProcDir {
    pub pid: u32,
    fd: OwnedFd,
}

fn gone_or_io(pid: u32, file: &str, e: Errno) -> PlatformError {
    if e == Errno::NOENT || e == Errno::SRCH {
        PlatformError::NoSuchProcess { pid }
    } else {
        PlatformError::io(format!("/proc/{pid}/{file}"), e.into())
    }
}

impl ProcDir {
    pub fn open(pid: u32) -> Result<ProcDir, PlatformError> {
        if pid == 0 {
            return Err(PlatformError::NoSuchProcess { pid });
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = openat(CWD, format!("/proc/{pid}"), flags, Mode::empty())
            .map_err(|e| gone_or_io(pid, "", e))?;
        Ok(ProcDir { pid, fd })
    }

    pub fn read(&self, file: &str) -> Result<Vec<u8>, PlatformError> {
        let flags = OFlags::RDONLY | OFlags::CLOEXEC;
        let fd = openat(self.fd.as_fd(), file, flags, Mode::empty())
            .map_err(|e| gone_or_io(self.pid, file, e))?;
        // Plain reads until end of file. `std`'s `read_to_end` first asks
        // the file's size (`statx`) and position (`lseek`) to size its
        // buffer, two syscalls per file that procfs answers with 0.
        // Into the vector's spare room (no zeroing), which is grown
        // whenever a read filled it. 4 KB holds `status` (1.4 KB on 6.x
        // kernels) in one read; 1 KB took two, plus the one that finds
        // the end.
        let mut out: Vec<u8> = Vec::with_capacity(4096);
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity());
            }
            match rustix::io::read(&fd, rustix::buffer::spare_capacity(&mut out)) {
                Ok(0) => return Ok(out),
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(gone_or_io(self.pid, file, e)),
            }
        }
    }

    pub fn stat(&self) -> Result<Stat, PlatformError> {
        let raw = self.read("stat")?;
        parse_stat(&raw).ok_or_else(|| PlatformError::Malformed {
            what: "stat line",
            path: format!("/proc/{}/stat", self.pid).into(),
            detail: String::from_utf8_lossy(&raw).into_owned(),
        })
    }

    /// The executable, without the ` (deleted)` suffix the kernel adds when
    /// the file was unlinked (a deleted binary is still the same program).
    /// `None` for kernel threads, zombies and processes we may not inspect.
    pub fn exe(&self) -> Option<PathBuf> {
        let target = readlinkat(self.fd.as_fd(), "exe", Vec::new()).ok()?;
        let target = OsString::from_vec(target.into_bytes());
        match target.to_str().map(strip_deleted) {
            Some((path, true)) => {
                tracing::debug!(pid = self.pid, path, "executable was deleted while running");
                Some(PathBuf::from(path))
            }
            _ => Some(PathBuf::from(target)),
        }
    }
}

/// Send `signal` to `expected.pid` only if that PID still has `expected`'s
/// start time and executable. See `Native::signal_verified`.
pub fn signal_verified(
    clock: Clock,
    expected: &ProcessIdentity,
    signal: i32,
) -> Result<SignalOutcome, PlatformError> {
    let Some(sig) = Signal::from_named_raw(signal) else {
        return Err(PlatformError::Malformed {
            what: "signal number",
            path: format!("/proc/{}", expected.pid).into(),
            detail: format!("{signal} is not a named signal (1..=31)"),
        });
    };
    let Some(pid) = i32::try_from(expected.pid).ok().and_then(Pid::from_raw) else {
        return Ok(SignalOutcome::Gone);
    };
    // The pidfd pins the process that has the PID *now*; whatever happens
    // to the PID afterwards, a signal through it reaches only this process.
    let pidfd = match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(Errno::SRCH) => return Ok(SignalOutcome::Gone),
        Err(Errno::NOSYS) => return Err(PlatformError::Unsupported("pidfd_open (Linux 5.3+)")),
        Err(e) => {
            return Err(PlatformError::io(
                format!("pidfd_open({})", expected.pid),
                e.into(),
            ));
        }
    };
    // Then check it is the process we mean. If the pidfd's process had
    // already been replaced by a stranger, /proc shows the stranger (or, if
    // the stranger died too, nothing): it can never show the expected
    // process, which died before the stranger got its PID.
    let dir = match ProcDir::open(expected.pid) {
        Ok(dir) => dir,
        Err(PlatformError::NoSuchProcess { .. }) => return Ok(SignalOutcome::Gone),
        Err(e) => return Err(e),
    };
    let stat = match dir.stat() {
        Ok(stat) => stat,
        Err(PlatformError::NoSuchProcess { .. }) => return Ok(SignalOutcome::Gone),
        Err(e) => return Err(e),
    };
    if matches!(stat.state, 'Z' | 'X') {
        return Ok(SignalOutcome::Gone); // exited, waiting to be reaped
    }
    if clock.start_time(stat.starttime) != expected.start_time || dir.exe() != expected.path {
        return Ok(SignalOutcome::IdentityChanged);
    }
    match pidfd_send_signal(&pidfd, sig) {
        Ok(()) => Ok(SignalOutcome::Sent),
        Err(Errno::SRCH) => Ok(SignalOutcome::Gone),
        Err(e) => Err(PlatformError::io(
            format!("pidfd_send_signal({})", expected.pid),
            e.into(),
        )),
    }
}
