//! What the judge decides: one [`Finding`] per listener, persistence item,
//! privacy grant and camera session, with the parts the JSON contract
//! names. The small parts (verdict, severity, listener, probe answer,
//! camera incident) are the wire crate's own types; the ones here hold
//! paths, which the wire carries as strings.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{
    CameraIncident, FindingKind, HttpProbe, ListenerRef, PersistenceKind, ProcessIdentity,
    Severity, Verdict,
};

/// The persistence part of a finding, as the JSON contract names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistenceRef {
    pub kind: PersistenceKind,
    pub path: PathBuf,
    pub label: Option<String>,
    pub program: Option<PathBuf>,
}

/// The camera part of a finding (`camera_grant`, `camera_use`), as the
/// JSON contract names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraRef {
    /// `camera`, `microphone`, `screen_capture` or `all_files` (Full Disk
    /// Access). A camera session is always `camera`.
    pub service: String,
    /// Grant: the TCC client (a bundle id or an executable path). Session:
    /// the user's bundle id when known, else its executable path, else its
    /// process name.
    pub client: String,
    /// Grant: `allowed`, `denied`, `limited`, `unknown` (or `other:<n>`).
    /// Session: `in_use`.
    pub auth: String,
    /// RFC 3339. Grant: when TCC last modified it. Session: when it began
    /// (or when lenscap first saw it open).
    pub since: Option<String>,
    /// Grant: `bundle_id` or `path`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_type: Option<String>,
    /// Grant: why TCC holds it (`user_consent`, `mdm_policy`, …).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// Grant: the TCC.db it was read from.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub database: Option<PathBuf>,
    /// Session: the pid the session was observed with (also when the
    /// process could not be read, so `process` is absent).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pid: Option<u32>,
    /// Session: the device node held open (Linux) when known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub device: Option<PathBuf>,
    /// Session, in a stop event: how long it was open, in seconds.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub duration_seconds: Option<u64>,
    /// Session: it began shortly after a connection to a flagged helper.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub incident: Option<CameraIncident>,
}

/// One judged observation. Every listener and every persistence item gives
/// exactly one finding, allowed ones included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub verdict: Verdict,
    pub severity: Severity,
    /// Plain-words reasons, in the order the judge reached them. Never empty.
    pub reasons: Vec<String>,
    /// Catalog entry id (`catalog:…`) or admin rule id (`rule:…`) that
    /// decided, if one did.
    pub rule: Option<String>,
    /// The primary process (first owner of a listener, or the running
    /// program of a persistence item).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessIdentity>,
    /// Every process holding the listener (a shared socket lists all).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub processes: Vec<ProcessIdentity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener: Option<ListenerRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistence: Option<PersistenceRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbe>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub camera: Option<CameraRef>,
    /// Listener and persistence findings: the file judged as the program —
    /// the executable; for an OS or package-manager interpreter, the
    /// script it runs; for code handed to one inline (`python3 -c`), the
    /// launchd plist that holds the code. What remediation moves and
    /// guards; never an interpreter. Absent when nothing on disk is the
    /// program (inline code with no plist, an unreadable executable).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub judged_path: Option<PathBuf>,
    /// A `camera_grant` whose client is a helper lenscap remediates: which
    /// helper, for the plan that resets the grant. Not serialized: the
    /// reasons say it in words, and the planner reads findings in memory.
    #[serde(skip)]
    pub grant_holder: Option<super::GrantHolder>,
}

impl Finding {
    /// The helper a listener or persistence finding is about, as plans
    /// key it: the file the judge judged as its program (`judged_path`:
    /// the executable, the script an interpreter runs, the plist holding
    /// inline code — never an interpreter); else, when nothing on disk is
    /// the program, its process by pid; else the plist itself.
    pub fn helper_key(&self) -> Option<String> {
        // An OS program a plist runs (`/usr/bin/script -qc …`) is never
        // moved, so it is not what identifies the helper: the plist is.
        if let Some(program) = self
            .judged_path
            .as_deref()
            .filter(|p| !super::never_moved(p))
        {
            return Some(program.display().to_string());
        }
        if self.kind == FindingKind::Persistence
            && let Some(p) = &self.persistence
        {
            return Some(p.path.display().to_string());
        }
        if let Some(p) = &self.process {
            let what = p
                .path
                .as_deref()
                .map_or_else(|| p.name.clone(), |x| x.display().to_string());
            return Some(format!("{what} (pid {})", p.pid));
        }
        self.persistence
            .as_ref()
            .map(|p| p.path.display().to_string())
    }
}

/// The machine a scan ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    pub hostname: String,
    pub os: String,
    pub os_version: Option<String>,
    pub agent_version: String,
    /// Whether this platform can check code signatures (false on Linux).
    pub signatures_supported: bool,
}

/// A per-item problem that did not stop the scan (unreadable plist,
/// refused directory, probe failure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanError {
    pub source: String,
    pub path: Option<PathBuf>,
    pub message: String,
}
