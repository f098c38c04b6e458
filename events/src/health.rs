//! Agent health: the agent telling the collector about itself. OCSF has no
//! class that fits these well, so this kind is lenscap's own; its payload
//! is tagged by `status`.

use serde::{Deserialize, Serialize};

/// A health event's payload: a plain-words `message` and the `status`
/// with its own fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentHealth {
    pub message: String,
    #[serde(flatten)]
    pub status: HealthStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Tripped: remediation is suspended, findings are still reported.
    Open,
    /// Reset: remediation resumes.
    Closed,
}

/// Whether the agent can currently tell when a camera turns on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraWatchState {
    /// The camera-use source failed (macOS: the `log stream` child exited
    /// or cannot start): camera sessions may go unreported until it is
    /// restored.
    Degraded,
    /// The source works again.
    Restored,
}

impl CameraWatchState {
    pub fn as_str(self) -> &'static str {
        match self {
            CameraWatchState::Degraded => "degraded",
            CameraWatchState::Restored => "restored",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum HealthStatus {
    /// The daemon started.
    Started {
        pid: u32,
        os: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        os_version: Option<String>,
    },
    /// The daemon is stopping (signal, update, uninstall).
    Stopped { reason: String },
    /// The effective configuration changed (MDM profile, fleet policy).
    ConfigChanged {
        /// Preference keys whose value changed, e.g. `Mode`, `Rules`.
        changed_keys: Vec<String>,
        /// `profile`, `preferences`, `fleet_policy`.
        source: String,
    },
    /// The remediation circuit breaker tripped or reset.
    CircuitBreaker {
        state: BreakerState,
        reason: String,
        /// Remediations in the window that tripped it: distinct running
        /// programs of one actor.
        actions_in_window: u32,
        window_seconds: u32,
        /// The uid whose budget this is: the breaker counts per actor, so
        /// one user's flood never suspends remediation for anyone else.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        actor_uid: Option<u32>,
        /// The distinct programs remediated in the window.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        programs: Vec<String>,
        /// `critical` when it opens: remediation is suspended for that
        /// actor, which is either a bad rule or someone spending the budget
        /// on purpose.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        severity: Option<crate::Severity>,
    },
    /// The outbox reached its disk limit. Remediation events are never
    /// dropped; `dropped_events` counts the others the policy let go, and
    /// those show at the collector as sequence gaps.
    OutboxFull {
        queued_events: u64,
        queued_bytes: u64,
        limit_bytes: u64,
        dropped_events: u64,
    },
    /// The agent lacks a permission it needs (Full Disk Access for TCC.db,
    /// root for signalling other users' processes).
    PermissionMissing { permission: String, detail: String },
    /// A permission reported missing is there again (e.g. a TCC database
    /// that could not be read can be read now).
    PermissionRestored { permission: String, detail: String },
    /// Watching camera use stopped working (`degraded`) or works again
    /// (`restored`).
    CameraWatch {
        state: CameraWatchState,
        detail: String,
    },
}

impl HealthStatus {
    pub fn name(&self) -> &'static str {
        match self {
            HealthStatus::Started { .. } => "started",
            HealthStatus::Stopped { .. } => "stopped",
            HealthStatus::ConfigChanged { .. } => "config_changed",
            HealthStatus::CircuitBreaker { .. } => "circuit_breaker",
            HealthStatus::OutboxFull { .. } => "outbox_full",
            HealthStatus::PermissionMissing { .. } => "permission_missing",
            HealthStatus::PermissionRestored { .. } => "permission_restored",
            HealthStatus::CameraWatch { .. } => "camera_watch",
        }
    }
}
