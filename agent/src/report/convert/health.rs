//! The agent's own news (`agent_health`): started, stopped, configuration
//! changed, circuit breaker, outbox full, permission missing or restored,
//! camera watch degraded or restored — each with a message a person can
//! read without the field list.

use std::path::Path;

use lenscap_events as ev;
use lenscap_events::{AgentHealth, Body, BreakerState, CameraWatchState, HealthStatus};

use super::lossy;

fn health(message: String, status: HealthStatus) -> Body {
    Body::AgentHealth(AgentHealth { message, status })
}

/// The daemon started.
pub fn started(
    agent_version: &str,
    mode: ev::Mode,
    pid: u32,
    os: &str,
    os_version: Option<&str>,
) -> Body {
    health(
        format!("lenscap {agent_version} started in {} mode", mode.as_str()),
        HealthStatus::Started {
            pid,
            os: os.to_string(),
            os_version: os_version.map(str::to_string),
        },
    )
}

/// The daemon is stopping.
pub fn stopped(reason: &str) -> Body {
    health(
        format!("lenscap stopped: {reason}"),
        HealthStatus::Stopped {
            reason: reason.to_string(),
        },
    )
}

/// The effective configuration changed. `source` is `profile`,
/// `preferences` or `fleet_policy`.
pub fn config_changed(changed_keys: &[String], source: &str) -> Body {
    health(
        format!(
            "Configuration changed ({source}): {}",
            changed_keys.join(", ")
        ),
        HealthStatus::ConfigChanged {
            changed_keys: changed_keys.to_vec(),
            source: source.to_string(),
        },
    )
}

/// The remediation circuit breaker of one actor tripped (`Open`, critical)
/// or reset (`Closed`).
pub fn circuit_breaker(
    state: BreakerState,
    reason: &str,
    actions_in_window: u32,
    window_seconds: u32,
    actor_uid: Option<u32>,
    programs: Vec<String>,
) -> Body {
    let message = match state {
        BreakerState::Open => format!(
            "Remediation suspended after {actions_in_window} remediations in {window_seconds} s: {reason}; findings are still reported"
        ),
        BreakerState::Closed => format!("Remediation resumed: {reason}"),
    };
    let severity = (state == BreakerState::Open).then_some(ev::Severity::Critical);
    health(
        message,
        HealthStatus::CircuitBreaker {
            state,
            reason: reason.to_string(),
            actions_in_window,
            window_seconds,
            actor_uid,
            programs,
            severity,
        },
    )
}

/// The outbox went over its disk limit and let `dropped_events` unsent,
/// non-remediation events go.
pub fn outbox_full(
    queued_events: u64,
    queued_bytes: u64,
    limit_bytes: u64,
    dropped_events: u64,
) -> Body {
    health(
        format!(
            "Outbox over its limit of {limit_bytes} bytes: dropped {dropped_events} unsent non-remediation events (they show as sequence gaps); {queued_events} events ({queued_bytes} bytes) kept"
        ),
        HealthStatus::OutboxFull {
            queued_events,
            queued_bytes,
            limit_bytes,
            dropped_events,
        },
    )
}

/// The agent lacks a permission it needs (`full_disk_access`, `root`).
pub fn permission_missing(permission: &str, detail: &str) -> Body {
    health(
        format!("Missing permission {permission}: {detail}"),
        HealthStatus::PermissionMissing {
            permission: permission.to_string(),
            detail: detail.to_string(),
        },
    )
}

/// A permission reported missing is there again.
pub fn permission_restored(permission: &str, detail: &str) -> Body {
    health(
        format!("Permission {permission} restored: {detail}"),
        HealthStatus::PermissionRestored {
            permission: permission.to_string(),
            detail: detail.to_string(),
        },
    )
}

/// The TCC database `database` cannot be read: Full Disk Access is
/// missing. `detail` says why and what to deploy; the database is added
/// in front unless `detail` already names it (a `parse::tcc` error does).
pub fn tcc_unreadable(database: &Path, detail: &str) -> Body {
    let db = lossy(database);
    let detail = if detail.contains(&db) {
        detail.to_string()
    } else {
        format!("TCC database {db}: {detail}")
    };
    permission_missing("full_disk_access", &detail)
}

/// The TCC database `database` can be read again.
pub fn tcc_readable(database: &Path) -> Body {
    permission_restored(
        "full_disk_access",
        &format!("TCC database {} can be read again", lossy(database)),
    )
}

/// Watching camera use failed (`Degraded`: camera sessions may go
/// unreported) or works again (`Restored`).
pub fn camera_watch(state: CameraWatchState, detail: &str) -> Body {
    let message = match state {
        CameraWatchState::Degraded => format!(
            "Camera watch degraded: {detail}. Camera use may go unreported until it is restored"
        ),
        CameraWatchState::Restored => format!("Camera watch restored: {detail}"),
    };
    health(
        message,
        HealthStatus::CameraWatch {
            state,
            detail: detail.to_string(),
        },
    )
}
