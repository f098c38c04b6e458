//! The collector's policy shapes (`lenscap_events::{PolicyRule,
//! CatalogEntry}`) → the agent's (`model::Rule`, `judge::CatalogEntry`).
//! The mapping and why it is so are in the parent module's doc.

use std::collections::BTreeSet;

use lenscap_events::{
    CatalogEntry as FleetEntry, FleetPolicy, PolicyRule, RuleAction as FleetAction,
};

use super::PolicySyncError;
use crate::judge::{Catalog, CatalogEntry};
use crate::model::rule::{Rule, RuleAction, check_path_glob};

/// What a fleet policy adds to the judge's policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetAdditions {
    /// After the configured `Rules` and the local allow rules.
    pub rules: Vec<Rule>,
    /// After the built-in catalog.
    pub catalog: Vec<CatalogEntry>,
}

impl FleetAdditions {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.catalog.is_empty()
    }
}

/// Convert a validated fleet policy. `source` is the https URL recorded as
/// the provenance of catalog entries that name no https reference.
pub fn convert(policy: &FleetPolicy, source: &str) -> Result<FleetAdditions, PolicySyncError> {
    let mut out = FleetAdditions::default();
    for (index, r) in policy.rules.iter().enumerate() {
        out.rules
            .push(rule(r).map_err(|problem| PolicySyncError::Rule {
                index,
                id: r.id.clone(),
                problem,
            })?);
    }
    let builtin = Catalog::builtin().map_err(|e| PolicySyncError::Invalid(e.to_string()))?;
    let builtin_ids: BTreeSet<&str> = builtin.entries.iter().map(|e| e.id.as_str()).collect();
    let mut ids = BTreeSet::new();
    for (index, e) in policy.catalog.iter().enumerate() {
        let bad = |problem: String| PolicySyncError::Catalog {
            index,
            id: e.id.clone(),
            problem,
        };
        for (n, glob) in e.paths.iter().enumerate() {
            check_path_glob(glob).map_err(|p| bad(format!("paths[{n}]: {p}")))?;
            out.rules.push(Rule {
                id: e.id.clone(),
                action: RuleAction::Deny,
                team_id: None,
                signing_id: None,
                bundle_id: None,
                label: None,
                path: Some(glob.clone()),
                port: None,
                comment: Some(format!("fleet catalog entry {}", e.name)),
            });
        }
        let Some(entry) = catalog_entry(e, source) else {
            continue;
        };
        if builtin_ids.contains(entry.id.as_str()) {
            tracing::warn!(id = %entry.id, "a fleet catalog entry has a built-in entry's id; the built-in one is kept");
            continue;
        }
        if !ids.insert(entry.id.clone()) {
            return Err(bad(format!(
                "its id is {} once lowercased with '.' and '_' as '-', like an earlier entry's",
                entry.id
            )));
        }
        // The built-in catalog's own checks, entry by entry, so the error
        // names this entry.
        builtin
            .clone()
            .with_entries(vec![entry.clone()])
            .map_err(|e| bad(e.to_string()))?;
        out.catalog.push(entry);
    }
    Ok(out)
}

/// The agent's rule for a fleet rule, checked by the validator every
/// source of rules shares (`model::rule`).
fn rule(r: &PolicyRule) -> Result<Rule, String> {
    let rule = Rule {
        id: r.id.clone(),
        action: match r.action {
            FleetAction::Allow => RuleAction::Allow,
            FleetAction::Deny => RuleAction::Deny,
        },
        team_id: r.team_id.clone(),
        signing_id: r.signing_id.clone(),
        bundle_id: r.bundle_id.clone(),
        label: r.label.clone(),
        path: r.path.clone(),
        port: r.port,
        comment: Some(match &r.comment {
            Some(c) => format!("fleet policy: {c}"),
            None => "fleet policy".into(),
        }),
    };
    rule.check().map_err(|problem| problem.to_string())?;
    Ok(rule)
}

/// The agent's catalog entry for a fleet entry's identity signals, or
/// `None` when it has only `paths` (those became deny rules).
fn catalog_entry(e: &FleetEntry, source: &str) -> Option<CatalogEntry> {
    let mut bundle_ids: Vec<String> = Vec::new();
    for id in e.bundle_ids.iter().chain(&e.signing_ids) {
        if !bundle_ids.iter().any(|b| b.eq_ignore_ascii_case(id)) {
            bundle_ids.push(id.clone());
        }
    }
    if bundle_ids.is_empty() && e.process_names.is_empty() {
        return None;
    }
    let slug: String =
        e.id.chars()
            .map(|c| match c {
                '.' | '_' => '-',
                c => c.to_ascii_lowercase(),
            })
            .collect();
    let cves: Vec<String> = e
        .references
        .iter()
        .filter(|r| r.starts_with("CVE-"))
        .cloned()
        .collect();
    let mut sources: Vec<String> = e
        .references
        .iter()
        .filter(|r| r.starts_with("https://"))
        .cloned()
        .collect();
    if sources.is_empty() {
        sources.push(source.to_string());
    }
    let name = if e.name.trim().is_empty() {
        e.id.clone()
    } else {
        e.name.clone()
    };
    Some(CatalogEntry {
        id: format!("catalog:{slug}"),
        summary: e
            .description
            .clone()
            .filter(|d| !d.trim().is_empty())
            .unwrap_or_else(|| format!("{name}: a known-bad helper named by the fleet policy")),
        name,
        vendor: "fleet policy".into(),
        hidden_dirs: Vec::new(),
        bundle_names: Vec::new(),
        process_names: e.process_names.clone(),
        bundle_ids,
        login_item_names: Vec::new(),
        ports: e.ports.iter().copied().filter(|p| *p != 0).collect(),
        parent_bundle_ids: Vec::new(),
        cves,
        sources,
        notes: Some(format!(
            "From the fleet policy; the collector rates it {:?}",
            e.severity
        )),
    })
}
