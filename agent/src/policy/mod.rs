//! One policy for everything that judges: `lenscap scan`, the daemon and
//! `lenscap config show` merge the same sources the same way, so a helper
//! the daemon leaves alone is not "remediate" to an MDM extension
//! attribute built on `scan`, and an admin can see every rule in force and
//! where it came from.
//!
//! The sources, in order (the order is the order rules are named in a
//! finding when several match):
//!
//! 1. the configured `Rules` (managed preferences, local preferences or
//!    `--config`: whichever layer set the key, `config::Loaded::origins`);
//! 2. the allow rules `quarantine restore --allow` wrote into
//!    `<StateDir>/allow-rules.json` ([`allowlist`]);
//! 3. the fleet policy's rules, then the deny rules its catalog entries'
//!    `paths` became, as the daemon last stored it in
//!    `<StateDir>/fleet-policy.json` ([`fleet`]);
//! 4. the built-in known-bad catalog, then the fleet's catalog additions.
//!
//! A deny beats an allow wherever either comes from (`judge::verdict`), so
//! a fleet deny overrides a local allow and a fleet allow cannot lift an
//! admin's deny. Every rule, from any source, is checked by the one
//! validator in `model::rule`.
//!
//! What may fail, and what it costs: configured rules that do not compile
//! are an error (exit 78; the daemon refuses them too). A broken
//! `allow-rules.json`, a single local rule that does not validate, or a
//! stored fleet policy that no longer fits is left out and named in
//! [`Merged::problems`] (logged by `scan` and the daemon, printed by
//! `config show`): what the admin configured still applies.
//!
//! Matching is the judge's (`judge::Policy`, pure); this module does the
//! reading, and the judge imports nothing of it.

pub mod allowlist;
pub mod fleet;
pub mod show;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::{self, Config, Rule};
use crate::judge::{self, JudgeError};
use fleet::{Fetched, FleetAdditions};

/// Where a rule or a catalog entry in force came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The `Rules` key of a preferences file (managed, local or
    /// `--config`).
    Configured(config::Origin),
    /// `quarantine restore --allow`, kept in this file.
    RestoreAllow(PathBuf),
    /// A rule of the fleet policy.
    Fleet(FleetSource),
    /// A fleet catalog entry: its identity signals are a catalog entry,
    /// its `paths` deny rules with the entry's id.
    FleetCatalog(FleetSource),
    /// lenscap's own known-bad catalog (`judge/catalog.json`).
    BuiltinCatalog,
}

/// Which fleet policy: the collector's ETag for it and its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetSource {
    pub etag: String,
    pub url: String,
}

impl Origin {
    /// `managed`, `local`, `file`, `restore_allow`, `fleet_policy`,
    /// `fleet_catalog` or `builtin_catalog` (for JSON and scripts).
    pub fn kind(&self) -> &'static str {
        match self {
            Origin::Configured(o) => o.kind(),
            Origin::RestoreAllow(_) => "restore_allow",
            Origin::Fleet(_) => "fleet_policy",
            Origin::FleetCatalog(_) => "fleet_catalog",
            Origin::BuiltinCatalog => "builtin_catalog",
        }
    }

    /// The file it was read from, when there is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Origin::Configured(o) => o.path(),
            Origin::RestoreAllow(p) => Some(p),
            Origin::Fleet(_) | Origin::FleetCatalog(_) | Origin::BuiltinCatalog => None,
        }
    }

    fn fleet(&self) -> Option<&FleetSource> {
        match self {
            Origin::Fleet(s) | Origin::FleetCatalog(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Configured(o) => write!(f, "{o}"),
            Origin::RestoreAllow(p) => write!(f, "restore --allow: {}", p.display()),
            Origin::Fleet(s) => write!(f, "fleet policy {} from {}", s.etag, s.url),
            Origin::FleetCatalog(s) => write!(f, "fleet catalog {} from {}", s.etag, s.url),
            Origin::BuiltinCatalog => f.write_str("built-in catalog"),
        }
    }
}

/// A rule in force and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcedRule {
    pub rule: Rule,
    pub origin: Origin,
}

/// A catalog entry in force and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcedEntry {
    /// `catalog:<slug>` or `benign:<slug>`, as findings name it.
    pub id: String,
    pub name: String,
    pub vendor: String,
    /// Which list: `known_bad`, `known_risky` or `benign_listener`.
    pub class: &'static str,
    pub origin: Origin,
}

/// The merged policy: what the judge applies, and what went into it.
#[derive(Debug, Clone)]
pub struct Merged {
    /// Compiled, for `judge::judge`.
    pub policy: judge::Policy,
    /// Every rule in force, in the order the judge reads them.
    pub rules: Vec<SourcedRule>,
    /// Every catalog entry in force: built-in first, then the fleet's.
    pub catalog: Vec<SourcedEntry>,
    /// Sources left out, and why (see the module doc).
    pub problems: Vec<String>,
}

/// The local allow rules as read, and what was wrong with the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalRules {
    pub file: PathBuf,
    pub rules: Vec<Rule>,
    pub problems: Vec<String>,
}

impl LocalRules {
    /// `<StateDir>/allow-rules.json`. A file that cannot be read, or a
    /// rule in it that does not validate, is left out and named in
    /// `problems`.
    pub fn read(state_dir: &Path) -> LocalRules {
        let file = allowlist::file(state_dir);
        let mut problems = Vec::new();
        let rules = match allowlist::load(state_dir) {
            Ok(rules) => rules,
            Err(e) => {
                problems.push(format!("local allow rules ignored: {e}"));
                Vec::new()
            }
        };
        let rules = rules
            .into_iter()
            .filter(|rule| match rule.check() {
                Ok(()) => true,
                Err(problem) => {
                    problems.push(format!(
                        "{}: rule {} ignored: {problem}",
                        file.display(),
                        rule.id
                    ));
                    false
                }
            })
            .collect();
        LocalRules {
            file,
            rules,
            problems,
        }
    }
}

/// The fleet policy stored in `state_dir`, if there is a usable one.
pub fn stored_fleet(state_dir: &Path) -> Result<Option<Fetched>, String> {
    match fleet::load(state_dir) {
        Ok(Some(stored)) => Fetched::from_stored(stored)
            .map(Some)
            .map_err(|e| format!("stored fleet policy ignored: {e}")),
        Ok(None) => Ok(None),
        Err(e) => Err(format!("stored fleet policy ignored: {e}")),
    }
}

/// Everything merged, read from the configuration's `StateDir`: what
/// `lenscap scan` judges by, what the daemon starts with, what `config
/// show` lists.
pub fn load(config: &config::Loaded) -> Result<Merged, JudgeError> {
    let state_dir = &config.config.state_dir;
    let local = LocalRules::read(state_dir);
    let (fleet, fleet_problem) = match stored_fleet(state_dir) {
        Ok(f) => (f, None),
        Err(problem) => (None, Some(problem)),
    };
    let mut merged = merge(config, &local, fleet.as_ref())?;
    merged.problems.extend(fleet_problem);
    Ok(merged)
}

/// Merge what was read. Configured rules that do not compile are an
/// error; fleet additions that do not fit (a catalog entry the built-in
/// catalog now refuses) are left out with a problem.
pub fn merge(
    config: &config::Loaded,
    local: &LocalRules,
    fleet: Option<&Fetched>,
) -> Result<Merged, JudgeError> {
    let mut problems = local.problems.clone();
    let none = FleetAdditions::default();
    let additions = fleet.map_or(&none, |f| &f.additions);
    let policy = match policy_for(&config.config, &local.rules, additions) {
        Ok(policy) => policy,
        Err(e) if fleet.is_some_and(|f| !f.additions.is_empty()) => {
            problems.push(format!("stored fleet policy not applied: {e}"));
            return merge_without_fleet(config, local, problems);
        }
        Err(e) => return Err(e),
    };
    Ok(describe(config, local, fleet, policy, problems))
}

fn merge_without_fleet(
    config: &config::Loaded,
    local: &LocalRules,
    problems: Vec<String>,
) -> Result<Merged, JudgeError> {
    let policy = policy_for(&config.config, &local.rules, &FleetAdditions::default())?;
    Ok(describe(config, local, None, policy, problems))
}

/// Each rule and catalog entry of a built policy with its origin.
fn describe(
    config: &config::Loaded,
    local: &LocalRules,
    fleet: Option<&Fetched>,
    policy: judge::Policy,
    problems: Vec<String>,
) -> Merged {
    let rules_origin = config
        .origins
        .get("Rules")
        .cloned()
        .unwrap_or(config::Origin::Default);
    let mut rules: Vec<SourcedRule> = config
        .config
        .rules
        .iter()
        .map(|rule| SourcedRule {
            rule: rule.clone(),
            origin: Origin::Configured(rules_origin.clone()),
        })
        .collect();
    rules.extend(local.rules.iter().map(|rule| SourcedRule {
        rule: rule.clone(),
        origin: Origin::RestoreAllow(local.file.clone()),
    }));
    let source = fleet.map(|f| FleetSource {
        etag: f.etag.clone(),
        url: f.source.clone(),
    });
    if let (Some(f), Some(source)) = (fleet, &source) {
        // `fleet::convert` puts the policy's own rules first, then one
        // deny rule per catalog entry path.
        let own = f.policy.rules.len();
        rules.extend(
            f.additions
                .rules
                .iter()
                .enumerate()
                .map(|(i, rule)| SourcedRule {
                    rule: rule.clone(),
                    origin: if i < own {
                        Origin::Fleet(source.clone())
                    } else {
                        Origin::FleetCatalog(source.clone())
                    },
                }),
        );
    }
    let fleet_ids: Vec<&str> = fleet
        .map(|f| f.additions.catalog.iter().map(|e| e.id.as_str()).collect())
        .unwrap_or_default();
    let built = policy.catalog();
    let mut catalog: Vec<SourcedEntry> = built
        .entries
        .iter()
        .map(|e| SourcedEntry {
            id: e.id.clone(),
            name: e.name.clone(),
            vendor: e.vendor.clone(),
            class: "known_bad",
            origin: match &source {
                Some(s) if fleet_ids.contains(&e.id.as_str()) => Origin::FleetCatalog(s.clone()),
                _ => Origin::BuiltinCatalog,
            },
        })
        .collect();
    // The two other lists are built in only (a fleet adds known-bad entries).
    let builtin = |id: &str, name: &str, vendor: &str, class| SourcedEntry {
        id: id.to_string(),
        name: name.to_string(),
        vendor: vendor.to_string(),
        class,
        origin: Origin::BuiltinCatalog,
    };
    catalog.extend(
        built
            .risky
            .iter()
            .map(|e| builtin(&e.id, &e.name, &e.vendor, "known_risky")),
    );
    catalog.extend(
        built
            .benign
            .iter()
            .map(|e| builtin(&e.id, &e.name, &e.vendor, "benign_listener")),
    );
    Merged {
        policy,
        rules,
        catalog,
        problems,
    }
}

impl Merged {
    /// Log what was left out (`scan` and the daemon; `config show` prints
    /// it instead).
    pub fn log_problems(&self) {
        for problem in &self.problems {
            tracing::error!("{problem}");
        }
    }

    /// The fleet policy in force, if any: its ETag and URL.
    pub fn fleet(&self) -> Option<&FleetSource> {
        self.rules
            .iter()
            .map(|r| &r.origin)
            .chain(self.catalog.iter().map(|e| &e.origin))
            .find_map(Origin::fleet)
    }
}

/// The judge's policy from configured rules, local allow rules and the
/// fleet's rules and catalog additions, in that order. The daemon rebuilds
/// with this when one of the sources changes while it runs.
pub fn policy_for(
    config: &Config,
    local: &[Rule],
    fleet: &FleetAdditions,
) -> Result<judge::Policy, JudgeError> {
    let mut with_local = config.clone();
    with_local.rules.extend(local.iter().cloned());
    with_local.rules.extend(fleet.rules.iter().cloned());
    judge::Policy::new(&with_local)?.with_catalog_additions(fleet.catalog.clone())
}

/// The local allow rules the daemon merges while it runs; problems are
/// logged (the configured rules still apply).
pub fn load_local_rules(state_dir: &Path) -> Vec<Rule> {
    let local = LocalRules::read(state_dir);
    for problem in &local.problems {
        tracing::error!("{problem}");
    }
    local.rules
}

#[cfg(test)]
mod tests;
