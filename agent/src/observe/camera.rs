//! Which processes have a camera open, the generic way: every process's
//! open descriptors under a procfs root (`/proc/<pid>/fd/<n>` symlinks),
//! matched against the `CameraDevices` globs (default `/dev/video*`).
//!
//! This is the Linux camera-in-use signal and the fallback mechanism
//! everywhere: it is plain `std` file calls on a root the caller passes, so
//! tests point it at a real `/proc` with a temp file standing in for the
//! device, and on macOS (no `/proc`) it simply finds nothing — the macOS
//! signal is the unified log (`parse::camera_log`).
//!
//! [`CameraWatcher`] turns successive snapshots into start/stop events with
//! durations.
//!
//! The unified-log mechanism (macOS) lives beside it: [`log_stream`] keeps a
//! supervised `log stream` child feeding [`CameraFeed`]s, [`sessions`] turns
//! its events into sessions, and [`log_show`] replays the recent log for
//! `lenscap scan`. [`current_sessions`] picks the mechanism the platform
//! names and answers "who has a camera open now".

use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use globset::GlobMatcher;
use serde::{Deserialize, Serialize};

use crate::clock::unix_now_us;
use crate::config::Config;
use crate::model::CameraSessionObservation;
use crate::model::ScanError;
use crate::platform::{CameraSource, Platform, PlatformError};

pub mod log_show;
pub mod log_stream;
pub mod sessions;
mod watcher;

pub use log_show::{LogShowError, current_sessions_from_log, log_show_args};
pub use log_stream::{CameraFeed, LogStream, LogStreamOptions};
pub use sessions::{LogSession, LogSessionEvent, SessionTracker};
pub use watcher::{CameraSession, CameraUseEvent, CameraWatcher};

/// `ScanError::source` for camera problems.
pub const SOURCE: &str = "camera";

/// How far back `lenscap scan` reads the unified log for open sessions.
pub const SCAN_LOG_LOOKBACK: Duration = Duration::from_secs(3600);

/// How long `lenscap scan` lets `log show` run: it walks an hour of the
/// log store, which takes seconds on a busy Mac.
pub const SCAN_LOG_TIMEOUT: Duration = Duration::from_secs(60);

pub use crate::config::DEFAULT_CAMERA_DEVICES;

/// One process holding one matching device open (however many descriptors
/// it uses for it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CameraHolder {
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22),
    /// so a PID reused between two snapshots is not taken for the same
    /// session. `None` when the process vanished before we read it.
    pub start_ticks: Option<u64>,
    pub device: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    #[error("CameraDevices entry {pattern:?} is not a valid path glob: {source}")]
    InvalidGlob {
        pattern: String,
        source: globset::Error,
    },
    #[error("cannot list processes under {path}: {source}")]
    ProcRoot { path: PathBuf, source: io::Error },
}

/// The `CameraDevices` globs (same semantics as rule paths: `*` stays
/// within one path component, `**` spans components), as a descriptor walk
/// tests every open file against them.
///
/// A glob can only match a path that starts with its literal head
/// (`/dev/video` of `/dev/video*`), and almost no open file does: those are
/// turned away by a byte comparison, and the globs are compiled (a regex,
/// hence a DFA, each) only when a path first gets past it. A daemon on a
/// machine whose camera nobody opens never compiles them, and never maps
/// the regex engine's code.
#[derive(Debug, Clone)]
pub struct CameraDevices {
    heads: Vec<String>,
    globs: Vec<globset::Glob>,
    compiled: OnceLock<Vec<GlobMatcher>>,
}

impl CameraDevices {
    /// Parses (and so validates) every pattern; compiles none.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<CameraDevices, CameraError> {
        let globs = patterns
            .iter()
            .map(|p| {
                crate::config::path_glob(p.as_ref()).map_err(|source| CameraError::InvalidGlob {
                    pattern: p.as_ref().to_string(),
                    source,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(CameraDevices {
            heads: patterns
                .iter()
                .map(|p| literal_head(p.as_ref()).to_string())
                .collect(),
            globs,
            compiled: OnceLock::new(),
        })
    }

    pub fn matches(&self, path: &Path) -> bool {
        let bytes = path.as_os_str().as_encoded_bytes();
        if !self.heads.iter().any(|h| bytes.starts_with(h.as_bytes())) {
            return false;
        }
        self.compiled
            .get_or_init(|| self.globs.iter().map(|g| g.compile_matcher()).collect())
            .iter()
            .any(|g| g.is_match(path))
    }

    /// Whether a path has got past the literal heads yet (tests).
    #[cfg(test)]
    fn compiled(&self) -> bool {
        self.compiled.get().is_some()
    }
}

impl Default for CameraDevices {
    fn default() -> Self {
        // The default patterns are constants that `default_devices_compile`
        // tests; should one ever fail, matching nothing is the safe outcome.
        CameraDevices::new(DEFAULT_CAMERA_DEVICES).unwrap_or(CameraDevices {
            heads: Vec::new(),
            globs: Vec::new(),
            compiled: OnceLock::new(),
        })
    }
}

/// The part of a glob before its first special character (globset's `*`,
/// `?`, classes, alternates and escapes): every path it matches starts with
/// exactly these bytes.
fn literal_head(glob: &str) -> &str {
    let end = glob
        .find(['*', '?', '[', ']', '{', '}', '\\'])
        .unwrap_or(glob.len());
    &glob[..end]
}

/// Every (process, device) pair with a matching descriptor open, sorted by
/// pid then device. Processes that exit mid-walk or whose descriptors we may
/// not read are skipped (a non-root run sees only its own user's). A
/// missing `proc_root` (macOS) is an empty answer, not an error.
pub fn camera_holders(
    proc_root: &Path,
    devices: &CameraDevices,
) -> Result<Vec<CameraHolder>, CameraError> {
    let entries = match std::fs::read_dir(proc_root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CameraError::ProcRoot {
                path: proc_root.to_path_buf(),
                source,
            });
        }
    };
    let mut holders = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let proc_dir = entry.path();
        let mut devices_held: Vec<PathBuf> = Vec::new();
        let Ok(fds) = std::fs::read_dir(proc_dir.join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            // Sockets, pipes and anon inodes read as `socket:[123]` etc.;
            // only absolute paths can be devices.
            if target.is_absolute() && devices.matches(&target) && !devices_held.contains(&target) {
                devices_held.push(target);
            }
        }
        if devices_held.is_empty() {
            continue;
        }
        let start_ticks = std::fs::read_to_string(proc_dir.join("stat"))
            .ok()
            .and_then(|stat| start_ticks(&stat));
        holders.extend(devices_held.into_iter().map(|device| CameraHolder {
            pid,
            start_ticks,
            device,
        }));
    }
    holders.sort();
    Ok(holders)
}

/// Who has a camera open now, by the platform's mechanism; empty when
/// `CameraWatch` is off. Failures become `errors` and an empty answer.
///
/// - `ProcFds` (Linux): processes holding a `CameraDevices` path open. The
///   session start is unknown from one snapshot (the process's start time
///   is not when it opened the device), so `since_unix_us` is *now*.
/// - `UnifiedLog` (macOS): the last [`SCAN_LOG_LOOKBACK`] of the log
///   replayed ([`current_sessions_from_log`]) for the OS version the
///   platform reports; PID sessions whose process has exited, or whose PID
///   now belongs to a process started after the session, are dropped.
pub fn current_sessions(
    platform: &dyn Platform,
    config: &Config,
    errors: &mut Vec<ScanError>,
) -> Vec<CameraSessionObservation> {
    if !config.camera_watch {
        return Vec::new();
    }
    match platform.camera_source() {
        CameraSource::ProcFds { proc_root } => {
            let holders = CameraDevices::new(&config.camera_devices)
                .and_then(|devices| camera_holders(&proc_root, &devices));
            match holders {
                Ok(holders) => {
                    let now = unix_now_us();
                    holders
                        .into_iter()
                        .map(|h| CameraSessionObservation {
                            pid: Some(h.pid),
                            bundle_id: None,
                            device: Some(h.device),
                            since_unix_us: now,
                        })
                        .collect()
                }
                Err(e) => {
                    let path = match &e {
                        CameraError::ProcRoot { path, .. } => Some(path.clone()),
                        CameraError::InvalidGlob { .. } => None,
                    };
                    errors.push(ScanError {
                        source: SOURCE.into(),
                        path,
                        message: e.to_string(),
                    });
                    Vec::new()
                }
            }
        }
        CameraSource::UnifiedLog => {
            let version = platform.host_info().os_version;
            let (major, minor) = match version.as_deref().and_then(parse_os_version) {
                Some(v) => v,
                None => {
                    errors.push(ScanError {
                        source: SOURCE.into(),
                        path: None,
                        message: format!(
                            "the macOS version is unknown ({version:?}), so the camera log \
                             messages of macOS 14 and later are assumed"
                        ),
                    });
                    (14, 0)
                }
            };
            match current_sessions_from_log(
                &config.log_path,
                major,
                minor,
                SCAN_LOG_LOOKBACK,
                SCAN_LOG_TIMEOUT,
            ) {
                Ok(sessions) => sessions
                    .iter()
                    .filter(|s| still_running(platform, s))
                    .map(LogSession::observation)
                    .collect(),
                Err(e) => {
                    errors.push(ScanError {
                        source: SOURCE.into(),
                        path: Some(config.log_path.clone()),
                        message: e.to_string(),
                    });
                    Vec::new()
                }
            }
        }
    }
}

/// Is a log session's process still the one that opened the camera? A PID
/// whose process started after the session (plus a second for clock
/// granularity) belongs to someone else now. Sessions without a PID, and
/// processes we may not read, are kept.
fn still_running(platform: &dyn Platform, session: &LogSession) -> bool {
    let Some(pid) = session.pid() else {
        return true;
    };
    match platform.process(pid) {
        Ok(p) => {
            let slack = 1_000_000 + u64::from(p.start_time.resolution_us);
            p.start_time.unix_us <= session.since_unix_us.saturating_add(slack)
        }
        Err(PlatformError::NoSuchProcess { .. }) => false,
        Err(_) => true,
    }
}

/// `"14.5"`, `"15.0.1"`, `"13"` → (major, minor).
pub fn parse_os_version(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = match parts.next() {
        Some(m) => m.parse().ok()?,
        None => 0,
    };
    Some((major, minor))
}

/// Field 22 (`starttime`) of `/proc/<pid>/stat`. The command name (field 2)
/// is in parentheses and may itself contain spaces and `)`, so fields are
/// counted from the *last* `)` (proc(5)).
fn start_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // Fields 3.. follow; starttime is the 20th of them.
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod log_tests;
#[cfg(test)]
mod tests;
