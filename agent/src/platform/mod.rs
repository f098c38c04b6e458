//! The platform boundary. This file is the ONLY place in the project where
//! `cfg(target_os)` appears (docs/design.md §4): it picks `linux.rs` or
//! `macos.rs` as `native` and every other module talks to the [`Platform`]
//! trait. The Linux implementation is real (procfs, real signals) so the
//! end-to-end tests exercise real behaviour; the macOS one is type-checked
//! in CI with `cargo check --target aarch64-apple-darwin` but cannot run here.

use std::path::{Path, PathBuf};

use crate::model::{HostInfo, Listener, PersistenceItem, ProcessIdentity, Signature};
// Plain data the platform answers with; in `model` so the pure parsers
// that build them (`parse::libproc_abi`, `parse::proc_bsdinfo`) need
// nothing of the platform.
pub use crate::model::{Established, SignalOutcome};

#[cfg(target_os = "linux")]
#[path = "linux.rs"]
mod native;

#[cfg(target_os = "macos")]
#[path = "macos.rs"]
mod native;

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
compile_error!("lenscap runs on macOS; Linux is supported for development and tests");

pub use native::{Native, TLS_PROVIDER, spawn_beside};

// Outside tools the platform runs, and the command lines it builds: plain
// code, compiled and tested on every OS, called by `macos.rs`.
pub mod login_items;
pub mod notify;
pub mod signing;

/// Paths of the outside tools the platform runs. Configuration keys with
/// macOS defaults, so tests and admins can point them elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    pub codesign: PathBuf,
    pub sfltool: PathBuf,
    pub launchctl: PathBuf,
    /// `UtmpxPath`: who is logged in at the console ([`console_users`]).
    pub utmpx: PathBuf,
}

// Here rather than in `config`: the configuration names the paths, the
// platform decides what it needs of them, and `config` imports nothing
// above the leaf modules.
impl crate::config::Config {
    /// The outside tools this configuration points at.
    pub fn tools(&self) -> Tools {
        Tools {
            codesign: self.codesign_path.clone(),
            sfltool: self.sfltool_path.clone(),
            launchctl: self.launchctl_path.clone(),
            utmpx: self.utmpx_path.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("process {pid} is gone")]
    NoSuchProcess { pid: u32 },
    #[error("malformed {what} in {path}: {detail}")]
    Malformed {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error("running {program}: {detail}")]
    Command { program: PathBuf, detail: String },
    #[error("{0} is not available on this platform")]
    Unsupported(&'static str),
}

impl PlatformError {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> PlatformError {
        PlatformError::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
}

/// How this platform tells that a camera is in use.
/// Opens and closes of camera device nodes since the last look
/// ([`Platform::watch_devices`]).
pub trait DeviceWatch: Send + std::fmt::Debug {
    /// True when, since the last call, a watched device was opened or
    /// closed, a device node matching the patterns appeared or went, or
    /// events were lost: the holders must be looked up again. Cheap when
    /// nothing happened (one non-blocking read).
    fn activity(&mut self) -> bool;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraSource {
    /// Processes holding a descriptor on a `CameraDevices` path, read from
    /// `<root>/<pid>/fd` (Linux `/proc`).
    ProcFds { proc_root: PathBuf },
    /// The unified log (`log stream` / `log show`), macOS.
    UnifiedLog,
}

/// A TCP connection to a watched local port that the kernel reported
/// closed ([`Platform::closed_connections`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClosedConnection {
    /// The listening side: the helper's address and port.
    pub local: std::net::SocketAddr,
    pub remote: std::net::SocketAddr,
    /// When the client last sent data on it (µs since the Unix epoch), or
    /// when the close was reported if the kernel did not say.
    pub at_unix_us: u64,
}

/// What [`ClosedConnectionFeed::drain`] hands over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClosedBatch {
    /// Oldest first, at most one per port, local address and second.
    pub closed: Vec<ClosedConnection>,
    /// Records pushed out by newer ones because the buffer was full.
    pub dropped: u64,
    /// Times the kernel dropped reports it could not queue for us.
    pub overruns: u64,
}

/// A live subscription to closed TCP connections. Dropping it unsubscribes.
pub trait ClosedConnectionFeed: Send + std::fmt::Debug {
    /// Keep connections to these local ports from now on (replaces the
    /// previous set; others are dropped as they arrive).
    fn set_ports(&self, ports: &std::collections::BTreeSet<u16>);
    /// Everything kept since the last call.
    fn drain(&self) -> ClosedBatch;
    /// False once the subscription died (its reader stopped on an error).
    fn running(&self) -> bool;
}

/// What [`Platform::listeners_and_held_paths`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenersAndPaths {
    pub listeners: Vec<Listener>,
    /// `(pid, path)` of every descriptor open on an accepted path.
    pub held: Vec<(u32, PathBuf)>,
}

/// What the agent needs from the operating system. Implementations answer
/// questions and return plain data; they never decide anything.
pub trait Platform: Send + Sync {
    /// Facts about this machine for reports.
    fn host_info(&self) -> HostInfo;

    /// Every listening TCP socket (IPv4 and IPv6) with every owning PID.
    fn listeners(&self) -> Result<Vec<Listener>, PlatformError>;

    /// The ids of the listening sockets, without resolving their owners.
    /// Mapping sockets to PIDs is most of what [`Platform::listeners`]
    /// costs, so the daemon asks this first and skips the owner walk when
    /// nothing changed. The default simply lists everything.
    fn listening_socket_ids(&self) -> Result<std::collections::BTreeSet<u64>, PlatformError> {
        Ok(self.listeners()?.iter().map(|l| l.socket_id).collect())
    }

    /// The processes that exist now (thread-group leaders), when the
    /// platform can list them cheaply; `None` otherwise. With
    /// [`Platform::listeners_among`] it lets the daemon refresh owners by
    /// reading only new processes' descriptors.
    fn process_ids(&self) -> Option<std::collections::BTreeSet<u32>> {
        None
    }

    /// Like [`Platform::listeners`], but owners are looked for among
    /// `pids` only (a socket held by nobody in `pids` has no pids). The
    /// default walks everything.
    fn listeners_among(
        &self,
        pids: &std::collections::BTreeSet<u32>,
    ) -> Result<Vec<Listener>, PlatformError> {
        let _ = pids;
        self.listeners()
    }

    /// [`Platform::listeners`], and from the same pass over every
    /// process's descriptors, which processes hold open a path `wanted`
    /// accepts: `(pid, path)`, sorted, each pair once. For platforms whose
    /// camera source is [`CameraSource::ProcFds`], where both answers are
    /// a read of every descriptor and one read is half the cost. `None`
    /// where the platform has no such combined walk (ask
    /// [`Platform::listeners`] and the camera source separately).
    fn listeners_and_held_paths(
        &self,
        wanted: &(dyn Fn(&Path) -> bool + Sync),
    ) -> Option<Result<ListenersAndPaths, PlatformError>> {
        let _ = wanted;
        None
    }

    /// Opens and closes of the camera devices (`patterns`, the
    /// `CameraDevices` globs) as they happen, where the platform can watch
    /// for them; `None` where it cannot (the camera watch then walks
    /// whenever a device exists).
    fn watch_devices(&self, patterns: &[String]) -> Option<Box<dyn DeviceWatch>> {
        let _ = patterns;
        None
    }

    /// A descriptor that becomes readable at once and then every `period`
    /// (reading it takes the expirations: 8 bytes), for the daemon's sweep
    /// tick; `None`
    /// where the platform has none (the daemon then uses tokio's timer).
    /// Why: tokio's timer wheel wakes the daemon twice per tick — at the
    /// start of the 64 ms slot the deadline falls in, and again at the
    /// deadline — and a wake-up was most of a quiet sweep's CPU on the
    /// build VM (docs/benchmarks.md, "Issue 11"); a kernel timer wakes it
    /// once.
    fn periodic_timer(&self, period: std::time::Duration) -> Option<std::os::fd::OwnedFd> {
        let _ = period;
        None
    }

    /// The identity of one process. `signature` is left as
    /// [`Signature::unknown`] (or `not_supported`); callers fill it through
    /// the signature cache, which calls [`Platform::check_signature`].
    fn process(&self, pid: u32) -> Result<ProcessIdentity, PlatformError>;

    /// Check an executable's code signature, uncached (may run `codesign`).
    fn check_signature(&self, path: &Path) -> Signature;

    /// Login items from Background Task Management (macOS 13+). Platforms
    /// without them return an empty list.
    fn login_items(&self) -> Result<Vec<PersistenceItem>, PlatformError>;

    /// Where camera use is observed on this platform.
    fn camera_source(&self) -> CameraSource;

    /// Established TCP connections whose local (listening) port is one of
    /// `ports`: who is talking to a flagged helper right now.
    fn established_to(
        &self,
        ports: &std::collections::BTreeSet<u16>,
    ) -> Result<Vec<Established>, PlatformError>;

    /// Subscribe to the kernel's reports of closed TCP connections, so a
    /// connection that opens and closes between two sweeps is still seen.
    /// `Unsupported` where the platform has no such report (macOS); an
    /// error when it exists but was refused. Either way the caller keeps to
    /// [`Platform::established_to`].
    fn closed_connections(&self) -> Result<Box<dyn ClosedConnectionFeed>, PlatformError> {
        Err(PlatformError::Unsupported(
            "a report of closed TCP connections",
        ))
    }

    /// Tell a user (`uid`, or whoever is logged in at the console) what
    /// lenscap did. Best effort: the error says why nobody was told.
    fn notify_user(&self, uid: Option<u32>, title: &str, message: &str) -> Result<(), String>;

    /// The uids of the users logged in at the console, each once (see
    /// [`console_users`]). Empty when nobody is.
    fn console_users(&self) -> Result<Vec<u32>, PlatformError>;

    /// The name of user `uid`, if it has one.
    fn user_name_of(&self, uid: u32) -> Option<String>;

    /// Is `bundle` (a `…/T/AppTranslocation/<UUID>/d/<Name>.app` path,
    /// `model::translocation_bundle`) on a real App Translocation mount:
    /// a read-only nullfs mount whose mount point contains it? Folders
    /// anyone can create with those names are not. App Translocation
    /// exists only on macOS; elsewhere the answer is always no.
    fn on_translocation_mount(&self, bundle: &Path) -> bool {
        let _ = bundle;
        false
    }
}

/// The uids of the users logged in at the console, read from the utmpx
/// file at `path` (`parse::utmpx`: `USER_PROCESS` records on `console`),
/// names resolved with `getpwnam`. A missing file is nobody logged in (no
/// login has written one); a record naming a user that does not exist is
/// left out (it cannot own a gui domain).
///
/// The same on both platforms: macOS keeps these records in
/// `/var/run/utmpx`; Linux has no console in that sense, and what the
/// Linux end-to-end tests log in is a file of this format at `UtmpxPath`
/// that the launchd stand-in reads too (`--utmpx`), so the daemon and the
/// stand-in agree on who has a gui domain.
pub fn console_users(path: &Path) -> Result<Vec<u32>, PlatformError> {
    /// A login record file is a few records per login; refuse anything absurd.
    const MAX_UTMPX: u64 = 16 * 1024 * 1024;
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(PlatformError::io(path, e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_UTMPX)
        .read_to_end(&mut bytes)
        .map_err(|e| PlatformError::io(path, e))?;
    let names =
        crate::parse::utmpx::console_users(&bytes).map_err(|e| PlatformError::Malformed {
            what: "utmpx login records",
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    let mut uids: Vec<u32> = names
        .iter()
        .filter_map(|n| nix::unistd::User::from_name(n).ok().flatten())
        .map(|u| u.uid.as_raw())
        .collect();
    uids.sort_unstable();
    uids.dedup();
    Ok(uids)
}
