//! Detection Finding (OCSF class 2004): one judged listener or persistence
//! item.
//!
//! The small types of a finding — verdict, severity, kinds, address scope,
//! signature, start time, the probe's answer, the listener, a camera
//! incident — are defined here once, and the agent's `model` uses these
//! very types: what the judge decides is what goes on the wire, with no
//! mapping to drift. The records that hold paths (`ProcessInfo`,
//! `PersistenceInfo`, `CameraInfo`, `FindingRecord`) have the same field
//! names and spellings as the agent's `model` (the `lenscap scan --json`
//! contract) but carry paths as UTF-8 strings, where the agent keeps
//! `PathBuf`s and converts lossily when it writes an event. This crate is
//! serde only: the agent depends on it, never the other way round.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// OCSF Detection Finding.
pub const DETECTION_FINDING_CLASS: u32 = 2004;
/// OCSF category "Findings".
pub const FINDINGS_CATEGORY: u32 = 2;

/// The judge's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    Report,
    Remediate,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Report => "report",
            Verdict::Remediate => "remediate",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// OCSF `severity_id`: Informational 1, Low 2, Medium 3, High 4,
    /// Critical 5.
    pub fn severity_id(self) -> u8 {
        match self {
            Severity::Info => 1,
            Severity::Low => 2,
            Severity::Medium => 3,
            Severity::High => 4,
            Severity::Critical => 5,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// OCSF Detection Finding `activity_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FindingActivity {
    /// First seen.
    Create = 1,
    /// Seen again with something changed (verdict, severity, owner).
    Update = 2,
    /// Gone: remediated, or no longer observed. Closes the finding.
    Close = 3,
}

impl FindingActivity {
    fn from_id(id: u8) -> Option<FindingActivity> {
        match id {
            1 => Some(FindingActivity::Create),
            2 => Some(FindingActivity::Update),
            3 => Some(FindingActivity::Close),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    Listener,
    Persistence,
    /// A privacy grant (camera, microphone, screen capture, Full Disk
    /// Access) from a TCC database.
    CameraGrant,
    /// A process using a camera right now.
    CameraUse,
}

impl FindingKind {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Listener => "listener",
            FindingKind::Persistence => "persistence",
            FindingKind::CameraGrant => "camera_grant",
            FindingKind::CameraUse => "camera_use",
        }
    }
}

/// What kind of address a listener is bound to. Every kind is reachable
/// from a web page on this machine: a page may name the machine's own
/// network address as easily as `127.0.0.1`. `Wildcard` and `Lan` are
/// reachable from the local network as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressScope {
    Loopback,
    Wildcard,
    /// One specific address of this machine that is not loopback (a LAN
    /// or link address). Earlier agents wrote `specific`; still read so.
    #[serde(alias = "specific")]
    Lan,
}

impl AddressScope {
    /// Classify an address. `::ffff:127.0.0.1` is loopback: `is_loopback`
    /// on the raw IPv6 form says false, so canonicalise first.
    pub fn of(addr: IpAddr) -> AddressScope {
        let addr = addr.to_canonical();
        if addr.is_loopback() {
            AddressScope::Loopback
        } else if addr.is_unspecified() {
            AddressScope::Wildcard
        } else {
            AddressScope::Lan
        }
    }

    /// Can a browser running on this machine open a connection to it?
    /// Always: a page reaches the machine's own LAN address as it reaches
    /// loopback. Spelled out per kind so a new kind must decide.
    pub fn browser_reachable(self) -> bool {
        match self {
            AddressScope::Loopback | AddressScope::Wildcard | AddressScope::Lan => true,
        }
    }

    /// Can other machines on the network reach it (firewalls aside)?
    pub fn network_reachable(self) -> bool {
        match self {
            AddressScope::Loopback => false,
            AddressScope::Wildcard | AddressScope::Lan => true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureStatus {
    /// The platform has no code signatures (Linux). Said honestly rather
    /// than pretending "unsigned".
    NotSupported,
    /// Checking failed (codesign missing, timed out, file gone).
    Unknown,
    Unsigned,
    AdHoc,
    /// Signed and the signature validated.
    Valid,
    /// Signed but the signature did not validate.
    Invalid,
}

/// Where a persistence item came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersistenceKind {
    LaunchAgent,
    LaunchDaemon,
    /// A login item from Background Task Management (`sfltool dumpbtm`).
    LoginItem,
}

impl PersistenceKind {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PersistenceKind::LaunchAgent => "launch_agent",
            PersistenceKind::LaunchDaemon => "launch_daemon",
            PersistenceKind::LoginItem => "login_item",
        }
    }

    /// As a person names it.
    pub fn title(self) -> &'static str {
        match self {
            PersistenceKind::LaunchAgent => "LaunchAgent",
            PersistenceKind::LaunchDaemon => "LaunchDaemon",
            PersistenceKind::LoginItem => "Login item",
        }
    }
}

/// How a listener answers a cross-origin request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cors {
    /// No `Access-Control-Allow-Origin`: a page may send but not read.
    None,
    /// `Access-Control-Allow-Origin: *`.
    Wildcard,
    /// Echoes the foreign `Origin` we sent.
    Reflected,
    /// Allows some other, fixed origin.
    Specific,
}

/// Process start time at the platform's finest resolution, as microseconds
/// since the Unix epoch. Linux measures in clock ticks (usually 10 ms), macOS
/// in microseconds; `resolution_us` says which, so PID-reuse checks know how
/// much to trust equality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StartTime {
    pub unix_us: u64,
    pub resolution_us: u32,
}

/// What is known of an executable's code signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub status: SignatureStatus,
    /// Signing identifier (`Identifier=` from codesign).
    pub identifier: Option<String>,
    /// Team ID, only when validated against Apple's anchor with a designated
    /// requirement. A Team ID merely read from the binary is never put here.
    pub team_id: Option<String>,
    /// `Platform identifier=` present: an Apple platform binary.
    pub platform_binary: bool,
    /// Leaf-first signing authorities, for display.
    pub authorities: Vec<String>,
}

impl Signature {
    pub fn not_supported() -> Signature {
        Signature {
            status: SignatureStatus::NotSupported,
            identifier: None,
            team_id: None,
            platform_binary: false,
            authorities: Vec::new(),
        }
    }

    pub fn unknown() -> Signature {
        Signature {
            status: SignatureStatus::Unknown,
            ..Signature::not_supported()
        }
    }

    /// An Apple platform binary whose signature validated.
    pub fn is_apple_platform(&self) -> bool {
        self.platform_binary && self.status == SignatureStatus::Valid
    }
}

/// The agent's `model::ProcessIdentity`, with paths as strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    pub start_time: StartTime,
    pub path: Option<String>,
    pub args: Vec<String>,
    pub uid: u32,
    pub user: Option<String>,
    pub name: String,
    pub interactive: bool,
    pub bundle: Option<String>,
    pub signature: Signature,
}

/// The listener part of a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerRef {
    pub address: IpAddr,
    pub port: u16,
    pub scope: AddressScope,
}

/// The agent's `model::PersistenceRef`, with paths as strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistenceInfo {
    pub kind: PersistenceKind,
    pub path: String,
    pub label: Option<String>,
    pub program: Option<String>,
}

/// What the safe HTTP probe learned about a listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpProbe {
    /// Answered with a parseable HTTP response.
    pub http: bool,
    /// Accepted a WebSocket upgrade (101) or advertised one.
    pub websocket: bool,
    /// Status of `GET /`.
    pub status: Option<u16>,
    pub server: Option<String>,
    pub content_type: Option<String>,
    pub cors: Cors,
    /// Answers with an image: the Zoom trick of encoding status in the
    /// image's dimensions to get round CORS.
    pub image: bool,
    /// The reason the probe could not finish, if it could not.
    pub error: Option<String>,
}

/// The Zoom attack as lenscap sees it: something connected to a flagged
/// helper's port and, within `CameraCorrelationSeconds`, a camera turned on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraIncident {
    /// The flagged helper's listener.
    pub helper: ListenerRef,
    /// The helper's process, when known.
    pub helper_pid: Option<u32>,
    /// Rule or catalog entry that flagged the helper.
    pub helper_rule: Option<String>,
    /// When the connection to the helper was first seen (RFC 3339).
    pub connection_at: String,
    /// Seconds from the connection to the camera session's start.
    pub seconds_before: u64,
}

/// The agent's `model::CameraRef`, with paths as strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraInfo {
    pub service: String,
    pub client: String,
    pub auth: String,
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<CameraIncident>,
}

/// The agent's `model::Finding` (what the judge decided and why), with
/// paths as strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingRecord {
    pub kind: FindingKind,
    pub verdict: Verdict,
    pub severity: Severity,
    /// Plain-words reasons, in the order the judge reached them.
    pub reasons: Vec<String>,
    /// `catalog:…` or `rule:…` that decided, if one did.
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<ProcessInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<ListenerRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<PersistenceInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera: Option<CameraInfo>,
}

/// OCSF `finding_info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingInfo {
    /// The agent's stable key for this finding across events (same listener
    /// or item → same uid), so Create/Update/Close can be paired.
    pub uid: String,
    /// One line for a person: "ZoomOpener listening on 127.0.0.1:19421".
    pub title: String,
}

/// A Detection Finding payload. On the wire it also carries the OCSF ids
/// `class_uid` 2004, `category_uid` 2, `activity_id`, `type_uid`
/// (`class_uid * 100 + activity_id`) and `severity_id`; they are derived
/// from the fields here when written and checked when read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "FindingWire", try_from = "FindingWire")]
pub struct DetectionFinding {
    pub activity: FindingActivity,
    pub message: String,
    pub finding_info: FindingInfo,
    pub finding: FindingRecord,
}

#[derive(Serialize, Deserialize)]
struct FindingWire {
    class_uid: u32,
    category_uid: u32,
    activity_id: u8,
    type_uid: u32,
    severity_id: u8,
    message: String,
    finding_info: FindingInfo,
    finding: FindingRecord,
}

impl From<DetectionFinding> for FindingWire {
    fn from(d: DetectionFinding) -> FindingWire {
        FindingWire {
            class_uid: DETECTION_FINDING_CLASS,
            category_uid: FINDINGS_CATEGORY,
            activity_id: d.activity as u8,
            type_uid: DETECTION_FINDING_CLASS * 100 + d.activity as u32,
            severity_id: d.finding.severity.severity_id(),
            message: d.message,
            finding_info: d.finding_info,
            finding: d.finding,
        }
    }
}

impl TryFrom<FindingWire> for DetectionFinding {
    type Error = String;
    fn try_from(w: FindingWire) -> Result<DetectionFinding, String> {
        crate::ocsf::check_class(
            w.class_uid,
            w.category_uid,
            DETECTION_FINDING_CLASS,
            FINDINGS_CATEGORY,
            "Detection Finding",
        )?;
        let activity = FindingActivity::from_id(w.activity_id).ok_or_else(|| {
            format!(
                "activity_id {} is not a Detection Finding activity (1 Create, 2 Update, 3 Close)",
                w.activity_id
            )
        })?;
        crate::ocsf::check_type_uid(w.type_uid, DETECTION_FINDING_CLASS, w.activity_id)?;
        let expected = w.finding.severity.severity_id();
        if w.severity_id != expected {
            return Err(format!(
                "severity_id {} does not match finding.severity {:?} (expected {expected})",
                w.severity_id,
                w.finding.severity.as_str()
            ));
        }
        if w.finding_info.uid.is_empty() {
            return Err("finding_info.uid must not be empty".into());
        }
        Ok(DetectionFinding {
            activity,
            message: w.message,
            finding_info: w.finding_info,
            finding: w.finding,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::net::IpAddr;

    use super::AddressScope;

    #[test]
    fn mapped_loopback_is_loopback() {
        let a: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(!a.is_loopback(), "std says false on the raw form");
        assert_eq!(AddressScope::of(a), AddressScope::Loopback);
        assert_eq!(
            AddressScope::of("::".parse().unwrap()),
            AddressScope::Wildcard
        );
        assert_eq!(
            AddressScope::of("0.0.0.0".parse().unwrap()),
            AddressScope::Wildcard
        );
        assert_eq!(
            AddressScope::of("::ffff:0.0.0.0".parse().unwrap()),
            AddressScope::Wildcard
        );
        assert_eq!(
            AddressScope::of("192.168.1.4".parse().unwrap()),
            AddressScope::Lan
        );
        assert!(AddressScope::Lan.browser_reachable());
        assert!(AddressScope::Lan.network_reachable());
        assert!(!AddressScope::Loopback.network_reachable());
    }

    #[test]
    fn lan_scope_is_written_lan_and_older_specific_is_still_read() {
        assert_eq!(
            serde_json::to_string(&AddressScope::Lan).unwrap(),
            "\"lan\""
        );
        let old: AddressScope = serde_json::from_str("\"specific\"").unwrap();
        assert_eq!(old, AddressScope::Lan);
    }
}
