//! Detection Finding (OCSF class 2004): one judged listener or persistence
//! item.
//!
//! `finding` is a typed mirror of the agent's `model::Finding` with the same
//! field names and spellings (the `lenscap scan --json` contract), so the
//! agent converts field by field and the collector can read verdict, rule
//! and severity without guessing. It is a mirror rather than the agent's
//! type because this crate is serde only: the agent depends on it, not the
//! other way round. Paths are strings (UTF-8; the agent converts lossily).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// OCSF Detection Finding.
pub const DETECTION_FINDING_CLASS: u32 = 2004;
/// OCSF category "Findings".
pub const FINDINGS_CATEGORY: u32 = 2;

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
    CameraGrant,
    CameraUse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressScope {
    Loopback,
    Wildcard,
    /// A specific non-loopback address of the machine (LAN). Earlier
    /// agents sent `specific`; still read so.
    #[serde(alias = "specific")]
    Lan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureStatus {
    NotSupported,
    Unknown,
    Unsigned,
    AdHoc,
    Valid,
    Invalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersistenceKind {
    LaunchAgent,
    LaunchDaemon,
    LoginItem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cors {
    None,
    Wildcard,
    Reflected,
    Specific,
}

/// Mirror of `model::StartTime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StartTime {
    pub unix_us: u64,
    pub resolution_us: u32,
}

/// Mirror of `model::Signature`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub status: SignatureStatus,
    pub identifier: Option<String>,
    /// Only a Team ID validated against Apple's anchor.
    pub team_id: Option<String>,
    pub platform_binary: bool,
    pub authorities: Vec<String>,
}

/// Mirror of `model::ProcessIdentity`.
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

/// Mirror of `model::ListenerRef`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerInfo {
    pub address: IpAddr,
    pub port: u16,
    pub scope: AddressScope,
}

/// Mirror of `model::PersistenceRef`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistenceInfo {
    pub kind: PersistenceKind,
    pub path: String,
    pub label: Option<String>,
    pub program: Option<String>,
}

/// Mirror of `model::HttpProbe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpInfo {
    pub http: bool,
    pub websocket: bool,
    pub status: Option<u16>,
    pub server: Option<String>,
    pub content_type: Option<String>,
    pub cors: Cors,
    pub image: bool,
    pub error: Option<String>,
}

/// Mirror of `model::CameraIncident`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraIncidentInfo {
    pub helper: ListenerInfo,
    pub helper_pid: Option<u32>,
    pub helper_rule: Option<String>,
    pub connection_at: String,
    pub seconds_before: u64,
}

/// Mirror of `model::CameraRef`.
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
    pub incident: Option<CameraIncidentInfo>,
}

/// Mirror of `model::Finding`: what the judge decided and why.
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
    pub listener: Option<ListenerInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<PersistenceInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpInfo>,
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
    use super::AddressScope;

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
