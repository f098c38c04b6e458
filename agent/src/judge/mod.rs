//! judge: `(policy, observations) → findings with verdicts`. Pure and
//! synchronous — no I/O, no clock reads — so every decision is
//! reproducible in a unit test. DESIGN.md §2 is the definition this module
//! implements.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

use crate::model::{HttpProbe, Listener, PersistenceItem, ProcessIdentity};

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
    /// Home directories of users (for "hidden directory in a home" tests).
    pub home_dirs: Vec<PathBuf>,
    /// The agent itself: never acted on.
    pub agent_pid: u32,
    pub agent_exe: Option<PathBuf>,
}
