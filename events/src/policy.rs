//! The fleet policy the collector serves and agents apply on top of their
//! local configuration: admin allow/deny rules (the same shape as the
//! agent's `Rules` preference) and known-bad catalog additions.
//!
//! A security team that learns of the next ZoomOpener adds a catalog entry
//! here; every agent has it at its next fetch (ETag polling).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::finding::Severity;

/// Upper bound on rules + catalog entries, so one PUT cannot make every
/// agent in the fleet parse megabytes every few minutes.
pub const MAX_POLICY_ENTRIES: usize = 5000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    Allow,
    Deny,
}

/// An admin rule; every matcher that is set must match (AND). Same fields
/// as the agent's `Rules` preference entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRule {
    /// Shown in findings as `rule:<id>`.
    pub id: String,
    pub action: RuleAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Glob on the executable (listener) or program (persistence) path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A known-bad helper. It matches on identity (path glob, bundle id,
/// signing id, process name); ports are only a supporting signal because
/// most white-label helpers' ports are unconfirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// Shown in findings as `catalog:<id>`.
    pub id: String,
    pub name: String,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bundle_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub process_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// Advisories, CVEs, write-ups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetPolicy {
    #[serde(default)]
    pub rules: Vec<PolicyRule>,
    #[serde(default)]
    pub catalog: Vec<CatalogEntry>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error(
        "policy has {count} entries; at most {MAX_POLICY_ENTRIES} rules and catalog entries together"
    )]
    TooLarge { count: usize },
    #[error(
        "{section}[{index}]: id {id:?} must be 1–64 characters of a-z, A-Z, 0-9, '.', '_', '-'"
    )]
    BadId {
        section: &'static str,
        index: usize,
        id: String,
    },
    #[error("{section}[{index}]: id {id:?} is used twice in {section}")]
    DuplicateId {
        section: &'static str,
        index: usize,
        id: String,
    },
    #[error(
        "rules[{index}] ({id}): a rule needs at least one matcher (team_id, signing_id, bundle_id, label, path or port)"
    )]
    RuleWithoutMatcher { index: usize, id: String },
    #[error(
        "catalog[{index}] ({id}): an entry needs at least one identity matcher (paths, bundle_ids, signing_ids or process_names); a port alone is not enough"
    )]
    EntryWithoutIdentity { index: usize, id: String },
}

fn id_ok(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl FleetPolicy {
    /// Refuse a policy an agent could not apply, naming the entry.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let count = self.rules.len() + self.catalog.len();
        if count > MAX_POLICY_ENTRIES {
            return Err(PolicyError::TooLarge { count });
        }
        let mut seen = BTreeSet::new();
        for (index, r) in self.rules.iter().enumerate() {
            check_id("rules", index, &r.id, &mut seen)?;
            let has_matcher = r.team_id.is_some()
                || r.signing_id.is_some()
                || r.bundle_id.is_some()
                || r.label.is_some()
                || r.path.is_some()
                || r.port.is_some();
            if !has_matcher {
                return Err(PolicyError::RuleWithoutMatcher {
                    index,
                    id: r.id.clone(),
                });
            }
        }
        let mut seen = BTreeSet::new();
        for (index, e) in self.catalog.iter().enumerate() {
            check_id("catalog", index, &e.id, &mut seen)?;
            if e.paths.is_empty()
                && e.bundle_ids.is_empty()
                && e.signing_ids.is_empty()
                && e.process_names.is_empty()
            {
                return Err(PolicyError::EntryWithoutIdentity {
                    index,
                    id: e.id.clone(),
                });
            }
        }
        Ok(())
    }
}

fn check_id<'a>(
    section: &'static str,
    index: usize,
    id: &'a str,
    seen: &mut BTreeSet<&'a str>,
) -> Result<(), PolicyError> {
    if !id_ok(id) {
        return Err(PolicyError::BadId {
            section,
            index,
            id: id.to_string(),
        });
    }
    if !seen.insert(id) {
        return Err(PolicyError::DuplicateId {
            section,
            index,
            id: id.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str) -> PolicyRule {
        PolicyRule {
            id: id.into(),
            action: RuleAction::Deny,
            team_id: None,
            signing_id: None,
            bundle_id: Some("us.zoom.ZoomOpener".into()),
            label: None,
            path: None,
            port: None,
            comment: None,
        }
    }

    #[test]
    fn validate_names_the_bad_entry() {
        let mut p = FleetPolicy {
            rules: vec![rule("deny-zoom"), rule("deny-zoom")],
            catalog: vec![],
        };
        assert_eq!(
            p.validate(),
            Err(PolicyError::DuplicateId {
                section: "rules",
                index: 1,
                id: "deny-zoom".into()
            })
        );
        p.rules[1].id = "x y".into();
        assert!(matches!(
            p.validate(),
            Err(PolicyError::BadId { index: 1, .. })
        ));
        p.rules[1] = rule("other");
        p.rules[1].bundle_id = None;
        assert!(matches!(
            p.validate(),
            Err(PolicyError::RuleWithoutMatcher { index: 1, .. })
        ));
        p.rules.pop();
        p.catalog.push(CatalogEntry {
            id: "ringcentral-opener".into(),
            name: "RingCentral opener".into(),
            severity: Severity::High,
            paths: vec![],
            bundle_ids: vec![],
            signing_ids: vec![],
            process_names: vec![],
            ports: vec![19424],
            references: vec![],
            description: None,
        });
        assert!(matches!(
            p.validate(),
            Err(PolicyError::EntryWithoutIdentity { index: 0, .. })
        ));
        p.catalog[0]
            .paths
            .push("/Users/*/.ringcentralopener/**".into());
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn empty_document_is_an_empty_policy() {
        let p: FleetPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(p, FleetPolicy::default());
        assert_eq!(p.validate(), Ok(()));
    }
}
