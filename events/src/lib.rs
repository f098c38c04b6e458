//! lenscap's wire format, shared by the agent and the collector: serde
//! types only, no I/O.
//!
//! An [`Event`] is an envelope (uid, time, host, agent version, mode,
//! per-host `seq`, `prev_hash`) around a payload tagged by `kind`:
//!
//! | kind                  | payload                                   |
//! |-----------------------|-------------------------------------------|
//! | `detection_finding`   | OCSF 1.3 Detection Finding (2004)         |
//! | `process_remediation` | OCSF 1.3 Process Remediation Activity (7003) |
//! | `file_remediation`    | OCSF 1.3 File Remediation Activity (7002) |
//! | `agent_health`        | lenscap's own health record               |
//!
//! `seq` and `prev_hash` chain a host's events so the collector can show
//! what is missing or altered; [`canonical`] defines the bytes that are
//! hashed. docs/events.md shows an example of each kind produced by this
//! crate's tests.

pub mod api;
pub mod canonical;
mod envelope;
mod finding;
mod health;
pub mod ocsf;
mod policy;
mod remediation;
#[cfg(any(test, feature = "samples"))]
pub mod samples;

pub use canonical::{GENESIS_HASH, canonical_hash, canonical_json};
pub use envelope::{
    Body, Event, EventError, EventUid, Host, HostIdentity, Kind, MAX_SEQ, Mode, Sha256Hex,
};
pub use finding::{
    AddressScope, CameraIncident, CameraInfo, Cors, DETECTION_FINDING_CLASS, DetectionFinding,
    FINDINGS_CATEGORY, FindingActivity, FindingInfo, FindingKind, FindingRecord, HttpProbe,
    ListenerRef, PersistenceInfo, PersistenceKind, ProcessInfo, Severity, Signature,
    SignatureStatus, StartTime, Verdict,
};
pub use health::{AgentHealth, BreakerState, CameraWatchState, HealthStatus};
pub use policy::{
    CatalogEntry, FleetPolicy, MAX_POLICY_ENTRIES, PolicyError, PolicyRule, RuleAction,
};
pub use remediation::{
    Action, FILE_REMEDIATION_CLASS, FileTarget, Outcome, OutcomeStatus, PROCESS_REMEDIATION_CLASS,
    ProcessTarget, REMEDIATION_CATEGORY, Remediation, RemediationActivity, RemediationTarget,
};
