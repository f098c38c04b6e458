//! The envelope every event carries: who sent it, when, where in the host's
//! sequence it stands and the hash of the event before it.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::{GENESIS_HASH, canonical_hash};
use crate::finding::DetectionFinding;
use crate::health::AgentHealth;
use crate::remediation::{FileTarget, ProcessTarget, Remediation};

/// What went wrong reading or checking an event. Messages name the field
/// and say what was expected, because the collector hands them to the
/// agent's operator as they are.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not a lenscap event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("field `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> EventError {
    EventError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// An event's unique id: a UUID version 4, lowercase and hyphenated
/// (`8-4-4-4-12`). The collector stores each uid once, so a batch sent
/// twice is stored once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventUid(String);

impl EventUid {
    /// A fresh random (version 4) uid.
    pub fn new_v4() -> EventUid {
        EventUid(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventUid {
    type Error = String;
    fn try_from(s: String) -> Result<EventUid, String> {
        let parsed =
            uuid::Uuid::try_parse(&s).map_err(|e| format!("uid {s:?} is not a UUID ({e})"))?;
        if parsed.get_version_num() != 4 {
            return Err(format!("uid {s:?} is not a version 4 (random) UUID"));
        }
        // One spelling per uid, or "the same uid" would depend on case.
        if parsed.hyphenated().to_string() != s {
            return Err(format!(
                "uid {s:?} must be lowercase and hyphenated, like {}",
                parsed.hyphenated()
            ));
        }
        Ok(EventUid(s))
    }
}

impl From<EventUid> for String {
    fn from(u: EventUid) -> String {
        u.0
    }
}

impl fmt::Display for EventUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A SHA-256 digest as 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha256Hex(String);

impl Sha256Hex {
    /// `prev_hash` of a host's first event.
    pub fn genesis() -> Sha256Hex {
        Sha256Hex(GENESIS_HASH.to_string())
    }

    pub fn of_bytes(bytes: &[u8]) -> Sha256Hex {
        Sha256Hex(crate::canonical::sha256_hex(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Sha256Hex {
    type Error = String;
    fn try_from(s: String) -> Result<Sha256Hex, String> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Sha256Hex(s))
        } else {
            Err(format!(
                "{s:?} is not a SHA-256 digest (64 lowercase hex digits)"
            ))
        }
    }
}

impl From<Sha256Hex> for String {
    fn from(h: Sha256Hex) -> String {
        h.0
    }
}

impl fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The machine an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    pub hostname: String,
    /// macOS: `IOPlatformUUID` from `ioreg -rd1 -c IOPlatformExpertDevice`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware_uuid: Option<String>,
    /// macOS: `IOPlatformSerialNumber` from the same `ioreg` output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Linux: `/etc/machine-id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
}

/// Which field identifies a host, in order of preference. Hostnames change
/// (a person renames their Mac), so they identify a host only when it has
/// neither a hardware UUID nor a machine-id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostIdentity {
    pub field: &'static str,
    pub value: String,
}

impl Host {
    pub fn identity(&self) -> HostIdentity {
        let pick = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
        if let Some(value) = pick(&self.hardware_uuid) {
            HostIdentity {
                field: "hardware_uuid",
                value,
            }
        } else if let Some(value) = pick(&self.machine_id) {
            HostIdentity {
                field: "machine_id",
                value,
            }
        } else {
            HostIdentity {
                field: "hostname",
                value: self.hostname.clone(),
            }
        }
    }
}

/// The agent's mode when it sent the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Records what it would do; changes nothing.
    Monitor,
    /// Carries remediations out.
    Remediate,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Monitor => "monitor",
            Mode::Remediate => "remediate",
        }
    }
}

/// What an event is about; its `kind` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    DetectionFinding,
    ProcessRemediation,
    FileRemediation,
    AgentHealth,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::DetectionFinding,
        Kind::ProcessRemediation,
        Kind::FileRemediation,
        Kind::AgentHealth,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::DetectionFinding => "detection_finding",
            Kind::ProcessRemediation => "process_remediation",
            Kind::FileRemediation => "file_remediation",
            Kind::AgentHealth => "agent_health",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The payload, tagged by `kind`; the payload of the OCSF kinds is an
/// OCSF 1.3 object of that class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
pub enum Body {
    /// OCSF Detection Finding (class 2004). Boxed: a finding is several
    /// times the size of the other payloads.
    DetectionFinding(Box<DetectionFinding>),
    /// OCSF Process Remediation Activity (class 7003).
    ProcessRemediation(Remediation<ProcessTarget>),
    /// OCSF File Remediation Activity (class 7002).
    FileRemediation(Remediation<FileTarget>),
    /// lenscap's own: the agent's health. Not an OCSF class.
    AgentHealth(AgentHealth),
}

impl Body {
    pub fn kind(&self) -> Kind {
        match self {
            Body::DetectionFinding(_) => Kind::DetectionFinding,
            Body::ProcessRemediation(_) => Kind::ProcessRemediation,
            Body::FileRemediation(_) => Kind::FileRemediation,
            Body::AgentHealth(_) => Kind::AgentHealth,
        }
    }
}

/// One event, as it travels from agent to collector and is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "EventWire")]
pub struct Event {
    pub uid: EventUid,
    /// When it happened: milliseconds since the Unix epoch, UTC (OCSF
    /// `timestamp_t`).
    pub time: i64,
    pub host: Host,
    pub agent_version: String,
    pub mode: Mode,
    /// Position in the host's event sequence: 1 for its first event, one
    /// more for each event after. It only grows, so a missing number is a
    /// lost event.
    pub seq: u64,
    /// [`hash`](Event::hash) of the host's event `seq - 1`;
    /// [`GENESIS_HASH`] for seq 1.
    pub prev_hash: Sha256Hex,
    #[serde(flatten)]
    pub body: Body,
}

/// How an event is read: the envelope, then the payload by `kind`.
/// Reading through `#[serde(flatten)]` would first copy the whole event
/// into serde's intermediate buffer; the collector reads thousands a
/// second, so the payload is taken as a JSON value and converted once.
#[derive(Deserialize)]
struct EventWire {
    uid: EventUid,
    time: i64,
    host: Host,
    agent_version: String,
    mode: Mode,
    seq: u64,
    prev_hash: Sha256Hex,
    kind: Kind,
    payload: Value,
}

impl TryFrom<EventWire> for Event {
    type Error = String;
    fn try_from(w: EventWire) -> Result<Event, String> {
        fn read<T: serde::de::DeserializeOwned>(payload: Value) -> Result<T, String> {
            serde_json::from_value(payload).map_err(|e| format!("payload: {e}"))
        }
        let body = match w.kind {
            Kind::DetectionFinding => Body::DetectionFinding(read(w.payload)?),
            Kind::ProcessRemediation => Body::ProcessRemediation(read(w.payload)?),
            Kind::FileRemediation => Body::FileRemediation(read(w.payload)?),
            Kind::AgentHealth => Body::AgentHealth(read(w.payload)?),
        };
        Ok(Event {
            uid: w.uid,
            time: w.time,
            host: w.host,
            agent_version: w.agent_version,
            mode: w.mode,
            seq: w.seq,
            prev_hash: w.prev_hash,
            body,
        })
    }
}

/// The largest `seq` the collector can store (a signed 64-bit column).
pub const MAX_SEQ: u64 = i64::MAX as u64;

impl Event {
    pub fn kind(&self) -> Kind {
        self.body.kind()
    }

    /// The hash the host's next event puts in its `prev_hash`.
    pub fn hash(&self) -> Result<Sha256Hex, EventError> {
        Ok(canonical_hash(&serde_json::to_value(self)?))
    }

    /// Read and check one event from a JSON value as received.
    pub fn from_value(value: Value) -> Result<Event, EventError> {
        let event: Event = serde_json::from_value(value)?;
        event.check()?;
        Ok(event)
    }

    /// Rules serde cannot express: ranges and non-empty strings.
    pub fn check(&self) -> Result<(), EventError> {
        if self.seq == 0 || self.seq > MAX_SEQ {
            return Err(invalid(
                "seq",
                format!(
                    "{} is out of range: sequences start at 1 and stay below 2^63",
                    self.seq
                ),
            ));
        }
        if self.time < 0 {
            return Err(invalid(
                "time",
                format!(
                    "{} is before 1970: time is milliseconds since the Unix epoch",
                    self.time
                ),
            ));
        }
        if self.host.hostname.trim().is_empty() {
            return Err(invalid("host.hostname", "must not be empty"));
        }
        if self.agent_version.trim().is_empty() {
            return Err(invalid("agent_version", "must not be empty"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_must_be_lowercase_v4() {
        let ok = EventUid::new_v4();
        assert!(EventUid::try_from(ok.to_string()).is_ok());
        let upper = ok.to_string().to_uppercase();
        assert!(EventUid::try_from(upper).unwrap_err().contains("lowercase"));
        // version 1 UUID
        let v1 = "c232ab00-9414-11ec-b3c8-9f6bdeced846".to_string();
        assert!(EventUid::try_from(v1).unwrap_err().contains("version 4"));
        assert!(
            EventUid::try_from("x".to_string())
                .unwrap_err()
                .contains("not a UUID")
        );
    }

    #[test]
    fn sha256hex_rejects_uppercase_and_short() {
        assert!(Sha256Hex::try_from("A".repeat(64)).is_err());
        assert!(Sha256Hex::try_from("a".repeat(63)).is_err());
        assert!(Sha256Hex::try_from("a".repeat(64)).is_ok());
    }

    #[test]
    fn identity_prefers_hardware_uuid_then_machine_id() {
        let mut h = Host {
            hostname: "mac-1".into(),
            hardware_uuid: Some("H".into()),
            serial: Some("S".into()),
            machine_id: Some("M".into()),
        };
        assert_eq!(h.identity().field, "hardware_uuid");
        h.hardware_uuid = Some(String::new());
        assert_eq!(h.identity().field, "machine_id");
        h.machine_id = None;
        assert_eq!(
            h.identity(),
            HostIdentity {
                field: "hostname",
                value: "mac-1".into()
            }
        );
    }

    #[test]
    fn kind_names_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert_eq!(Kind::parse("drop table"), None);
    }
}
