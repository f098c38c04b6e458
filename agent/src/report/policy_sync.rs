//! The fleet policy's side of reporting: the `agent_health` events that
//! say a policy was applied or rejected. What the policy is, how it is
//! checked, converted and stored is `policy::fleet`; fetching it is
//! `upload::worker`.

use lenscap_events::{AgentHealth, Body, HealthStatus};

// Re-exported for the delivery thread and the daemon, which hand a fetched
// policy along.
pub use crate::policy::fleet::{
    FILE_NAME, Fetched, FleetAdditions, PolicySyncError, StoredPolicy, load, store,
};

/// The health event for a policy now in force.
pub fn applied_notice(fetched: &Fetched) -> Body {
    Body::AgentHealth(AgentHealth {
        message: format!(
            "Fleet policy {} applied: {} rules, {} catalog entries",
            fetched.etag,
            fetched.policy.rules.len(),
            fetched.policy.catalog.len()
        ),
        status: HealthStatus::ConfigChanged {
            changed_keys: vec!["FleetPolicy".into()],
            source: "fleet_policy".into(),
        },
    })
}

/// The health event for a policy refused; the previous one stays.
pub fn rejected_notice(etag: &str, error: &str) -> Body {
    Body::AgentHealth(AgentHealth {
        message: format!(
            "Fleet policy {etag} rejected, the previous policy stays in force: {error}"
        ),
        status: HealthStatus::ConfigChanged {
            changed_keys: Vec::new(),
            source: "fleet_policy".into(),
        },
    })
}

#[cfg(test)]
mod tests;
