//! One policy for everything that judges: `lenscap scan` and the daemon
//! merge the same sources the same way, so a helper the daemon leaves
//! alone is not "remediate" to an MDM extension attribute built on `scan`.
//!
//! The sources, in order: the configured rules (preferences, managed
//! preferences or `--config`), the allow rules `quarantine restore
//! --allow` wrote into the state directory, the fleet policy's rules, and
//! the built-in catalog plus the fleet's catalog additions (the fleet
//! policy as the daemon last stored it). A deny beats an allow wherever
//! either comes from (`judge::verdict`), so a fleet deny overrides a local
//! allow and a fleet allow cannot lift an admin's deny.

use std::path::Path;

use crate::act::allowlist;
use crate::config::{Config, Rule};
use crate::judge::{JudgeError, Policy};
use crate::report::policy_sync::{self, Fetched, FleetAdditions};

/// The policy from configured rules, local allow rules and the fleet's
/// rules and catalog additions.
pub fn policy_for(
    config: &Config,
    local: &[Rule],
    fleet: &FleetAdditions,
) -> Result<Policy, JudgeError> {
    let mut with_local = config.clone();
    with_local.rules.extend(local.iter().cloned());
    with_local.rules.extend(fleet.rules.iter().cloned());
    Policy::new(&with_local)?.with_catalog_additions(fleet.catalog.clone())
}

/// The local allow rules; a broken file is logged and treated as empty
/// (the configured rules still apply).
pub fn load_local_rules(state_dir: &Path) -> Vec<Rule> {
    allowlist::load(state_dir).unwrap_or_else(|e| {
        tracing::error!(error = %e, "local allow rules ignored");
        Vec::new()
    })
}

/// The fleet policy the daemon last stored, as additions to the policy;
/// none when there is none, or it cannot be read (logged: the configured
/// and local rules still apply).
pub fn stored_fleet_additions(state_dir: &Path) -> FleetAdditions {
    match policy_sync::load(state_dir) {
        Ok(Some(stored)) => match Fetched::from_stored(stored) {
            Ok(fetched) => fetched.additions,
            Err(e) => {
                tracing::error!(error = %e, "stored fleet policy ignored");
                FleetAdditions::default()
            }
        },
        Ok(None) => FleetAdditions::default(),
        Err(e) => {
            tracing::error!(error = %e, "stored fleet policy ignored");
            FleetAdditions::default()
        }
    }
}

/// Everything merged, read from `config.state_dir`: what `lenscap scan`
/// judges by. Configured rules that do not compile are an error (the
/// daemon refuses them too); a stored fleet policy that no longer fits is
/// left out with a logged error, as the daemon does.
pub fn load(config: &Config) -> Result<Policy, JudgeError> {
    let local = load_local_rules(&config.state_dir);
    let fleet = stored_fleet_additions(&config.state_dir);
    match policy_for(config, &local, &fleet) {
        Ok(policy) => Ok(policy),
        Err(e) if !fleet.rules.is_empty() || !fleet.catalog.is_empty() => {
            tracing::error!(error = %e, "stored fleet policy not applied");
            policy_for(config, &local, &FleetAdditions::default())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RuleAction;

    #[test]
    fn scan_and_the_daemon_see_the_local_allow_rules() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            state_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        assert!(load(&config).unwrap().rules.is_empty());
        let rule = Rule {
            id: "restored-helper".into(),
            action: RuleAction::Allow,
            team_id: None,
            signing_id: None,
            bundle_id: None,
            label: None,
            path: Some("/Users/ann/.acme/helper".into()),
            port: None,
            comment: None,
        };
        allowlist::add(dir.path(), rule).unwrap();
        let policy = load(&config).unwrap();
        assert_eq!(policy.rules.len(), 1, "{:?}", policy.rules);
    }

    #[test]
    fn scan_and_the_daemon_see_the_stored_fleet_policy() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            state_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let builtin = load(&config).unwrap().catalog().entries.len();
        let policy: lenscap_events::FleetPolicy = serde_json::from_value(serde_json::json!({
            "rules": [{"id": "fleet-deny", "action": "deny", "path": "/Users/*/.acme/helper"}],
            "catalog": [{"id": "vendor-opener", "name": "Vendor opener", "severity": "high",
                         "bundle_ids": ["com.vendor.opener"]}]
        }))
        .unwrap();
        let stored = policy_sync::StoredPolicy {
            etag: "\"1\"".into(),
            source: "https://collector.example/api/v1/policy".into(),
            policy,
        };
        policy_sync::store(dir.path(), &stored).unwrap();
        let merged = load(&config).unwrap();
        assert_eq!(merged.rules.len(), 1, "the fleet's deny rule");
        assert_eq!(
            merged.catalog().entries.len(),
            builtin + 1,
            "the fleet's entry"
        );
        // A stored policy that cannot be read leaves the rest in force.
        std::fs::write(dir.path().join("fleet-policy.json"), b"{not json").unwrap();
        assert_eq!(load(&config).unwrap().catalog().entries.len(), builtin);
    }
}
