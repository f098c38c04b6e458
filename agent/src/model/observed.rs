//! What observe learns and hands to the judge: listeners, processes,
//! persistence items, privacy grants, camera sessions and connections,
//! gathered in one [`Observations`] per pass. Facts that need I/O to learn
//! (does this path exist? who owns it? which apps are installed?) are
//! gathered by observe and put here, so the judge stays pure.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{AddressScope, HttpProbe, PersistenceKind, Signature, StartTime, TccGrant};

/// One listening TCP socket and every process holding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub address: IpAddr,
    pub port: u16,
    pub scope: AddressScope,
    /// For an IPv6 wildcard: whether it refuses IPv4 (`IPV6_V6ONLY`).
    /// `None` when the platform could not tell or the socket is IPv4.
    pub v6only: Option<bool>,
    /// Every PID that holds the socket, ascending. Empty when the owner is
    /// invisible to us (another namespace, or we lack privilege).
    pub pids: Vec<u32>,
    /// Platform socket identity (Linux inode, macOS socket address) used to
    /// notice new sockets between sweeps.
    pub socket_id: u64,
}

/// Who a process is. Enough to judge it and to re-verify it right before
/// signalling (pid + start time + executable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    pub pid: u32,
    pub ppid: u32,
    pub start_time: StartTime,
    /// Executable path; `None` when unreadable (kernel thread, privilege).
    pub path: Option<PathBuf>,
    pub args: Vec<String>,
    pub uid: u32,
    pub user: Option<String>,
    /// Short process name (comm).
    pub name: String,
    /// Runs with a controlling terminal: a person started it from a shell.
    pub interactive: bool,
    /// The enclosing `*.app` when the executable is inside `*.app/Contents/`.
    pub bundle: Option<PathBuf>,
    pub signature: Signature,
}

/// A launchd `Sockets` entry: launchd itself listens and hands the socket
/// to the job on demand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchdSocket {
    pub name: String,
    pub service: Option<String>,
    pub node: Option<String>,
}

/// One thing that starts a program by itself: a launchd plist or a login
/// item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistenceItem {
    pub kind: PersistenceKind,
    /// The plist (launchd) or the item's URL/path (login item).
    pub path: PathBuf,
    pub label: Option<String>,
    /// Resolved program: `Program`, else `ProgramArguments[0]`, else
    /// `BundleProgram` joined to the enclosing bundle.
    pub program: Option<PathBuf>,
    pub args: Vec<String>,
    pub run_at_load: bool,
    pub keep_alive: bool,
    pub sockets: Vec<LaunchdSocket>,
    pub associated_bundle_ids: Vec<String>,
    /// uid owning the plist file (0 for system, the user for a home agent).
    pub owner_uid: Option<u32>,
    /// Login items: the BTM parent identifier / developer name, when shown.
    pub parent_identifier: Option<String>,
    pub developer: Option<String>,
    /// Login items: BTM disposition flags (enabled 0x1, allowed 0x2,
    /// visible 0x4, notified 0x8).
    pub disposition: Option<u32>,
}

/// Everything observe learned in one pass. Facts that need I/O to learn
/// (does this path exist? which apps are installed?) are gathered by
/// observe and handed in here, so the judge stays pure.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    pub listeners: Vec<Listener>,
    /// Identity of every process that owns a listener (and their parents,
    /// where observe could read them).
    pub processes: BTreeMap<u32, ProcessIdentity>,
    pub persistence: Vec<PersistenceItem>,
    /// Probe results keyed by the listener's (address, port).
    pub probes: BTreeMap<(IpAddr, u16), HttpProbe>,
    /// Bundle identifiers of the apps installed in `ApplicationDirs`.
    pub installed_bundle_ids: BTreeSet<String>,
    /// Of the paths that findings refer to (programs, bundles), the ones
    /// that exist right now.
    pub existing_paths: BTreeSet<PathBuf>,
    /// The owner (uid, from lstat) of each referenced path that exists:
    /// programs, scripts, bundles, plists. What an action may touch is
    /// bounded by who triggered it (`actor`).
    pub path_owners: BTreeMap<PathBuf, u32>,
    /// Home directories of users (for "hidden directory in a home" tests).
    pub home_dirs: Vec<PathBuf>,
    /// `<Name>.app` folders of programs running from App Translocation
    /// that observe found on a real translocation mount (nullfs, macOS):
    /// only these count as "a downloaded app a person opened". A folder
    /// merely named like one is not (`model::translocation_bundle`).
    pub translocated: BTreeSet<PathBuf>,
    /// The agent itself: never acted on.
    pub agent_pid: u32,
    pub agent_exe: Option<PathBuf>,
    /// Privacy grants read from the TCC databases.
    pub grants: Vec<GrantObservation>,
    /// Camera sessions open now. Their processes (and ancestors, where
    /// readable) are in `processes`.
    pub camera_sessions: Vec<CameraSessionObservation>,
    /// Connections to listening ports recently seen, newest last (the
    /// daemon samples them every sweep; `lenscap scan` has none).
    pub connections: Vec<ConnectionSeen>,
}

/// One TCC grant and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantObservation {
    pub grant: TccGrant,
    pub database: PathBuf,
    /// Not in the previous read of that database (the daemon's diff);
    /// always false in `lenscap scan`, which has no previous read.
    pub new: bool,
    /// A path client: is its program on disk now (lstat)? `None` for a
    /// bundle-id client, or when observe could not tell.
    pub client_exists: Option<bool>,
}

/// One camera session: who (a pid, or only a bundle id when the log line
/// named no pid), which device, since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraSessionObservation {
    pub pid: Option<u32>,
    pub bundle_id: Option<String>,
    pub device: Option<PathBuf>,
    pub since_unix_us: u64,
}

/// A TCP connection to a local listening port, first seen at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSeen {
    /// The listening side (the helper's address and port).
    pub address: IpAddr,
    pub port: u16,
    pub first_seen_unix_us: u64,
}

/// What happened when the platform was asked to signal a process only if
/// it is still the one we identified (`platform::Native::signal_verified`).
/// The identity check exists so PID reuse can never make us signal a stranger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignalOutcome {
    /// The process matched the expected identity and the signal was sent.
    Sent,
    /// No process has that PID any more (or it exited before the signal).
    Gone,
    /// The PID now belongs to a process with a different start time or
    /// executable; nothing was sent.
    IdentityChanged,
}

/// An established TCP connection to a local listening port, seen from the
/// listening side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Established {
    /// The listener's side (local address and port).
    pub local: std::net::SocketAddr,
    /// The connecting side.
    pub remote: std::net::SocketAddr,
    /// Platform socket identity, so one connection seen in two sweeps is
    /// counted once.
    pub socket_id: u64,
}
