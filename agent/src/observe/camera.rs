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

use std::io;
use std::path::{Path, PathBuf};

use globset::GlobMatcher;
use serde::{Deserialize, Serialize};

mod watcher;

pub use watcher::{CameraSession, CameraUseEvent, CameraWatcher};

/// The default `CameraDevices`: V4L2 capture nodes.
pub const DEFAULT_CAMERA_DEVICES: &[&str] = &["/dev/video*"];

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

/// Compiled `CameraDevices` globs (same semantics as rule paths: `*` stays
/// within one path component, `**` spans components).
#[derive(Debug, Clone)]
pub struct CameraDevices {
    globs: Vec<GlobMatcher>,
}

impl CameraDevices {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<CameraDevices, CameraError> {
        let globs = patterns
            .iter()
            .map(|p| {
                crate::config::compile_path_glob(p.as_ref()).map_err(|source| {
                    CameraError::InvalidGlob {
                        pattern: p.as_ref().to_string(),
                        source,
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(CameraDevices { globs })
    }

    pub fn matches(&self, path: &Path) -> bool {
        self.globs.iter().any(|g| g.is_match(path))
    }
}

impl Default for CameraDevices {
    fn default() -> Self {
        // The default patterns are constants that `default_devices_compile`
        // tests; should one ever fail, matching nothing is the safe outcome.
        CameraDevices::new(DEFAULT_CAMERA_DEVICES).unwrap_or(CameraDevices { globs: Vec::new() })
    }
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

/// Field 22 (`starttime`) of `/proc/<pid>/stat`. The command name (field 2)
/// is in parentheses and may itself contain spaces and `)`, so fields are
/// counted from the *last* `)` (proc(5)).
fn start_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // Fields 3.. follow; starttime is the 20th of them.
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests;
