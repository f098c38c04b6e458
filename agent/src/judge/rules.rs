//! Admin allow/deny rules (`config::Rule`), compiled once per policy.
//!
//! Semantics an admin can rely on:
//! - Every matcher that is set must match (AND). A rule with no matcher
//!   would match everything and is refused.
//! - `team_id` is compared only with a Team ID the signature check
//!   *validated*: an ad-hoc signature cannot claim one. Case-insensitive.
//! - `signing_id` is exact. `bundle_id` is case-insensitive (macOS treats
//!   bundle ids so) and is tested against a process's signing identifier,
//!   or a persistence item's `AssociatedBundleIdentifiers` / BTM parent.
//! - `label` is exact (launchd labels are case-sensitive); for a listener it
//!   is the label of the persistence item that starts it.
//! - `path` is a glob on the executable (listener) or program
//!   (persistence): `*` stays inside one path component, `**` crosses them.
//! - `port` is the listener's port; for a persistence item, a port it is
//!   socket-activated on or that a listener it starts holds.
//!
//! Precedence (documented in the judge's module doc too): a matching deny
//! beats a matching allow — a conflict is resolved toward acting, and an
//! admin narrows the deny to carve out an exception. Within one action the
//! first rule in configuration order is the one named in the finding.

use globset::GlobMatcher;

use super::JudgeError;
use super::subject::{Subject, strip_btm_type};
use crate::config::{Rule, RuleAction, compile_path_glob};

#[derive(Debug, Clone)]
pub(crate) struct CompiledRule {
    pub id: String,
    pub action: RuleAction,
    team_id: Option<String>,
    signing_id: Option<String>,
    bundle_id: Option<String>,
    label: Option<String>,
    path: Option<(String, GlobMatcher)>,
    port: Option<u16>,
}

/// An admin rule matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleHit {
    /// `rule:<id>`.
    pub id: String,
    pub action: RuleAction,
    pub reasons: Vec<String>,
}

pub(crate) fn compile(rules: &[Rule]) -> Result<Vec<CompiledRule>, JudgeError> {
    rules.iter().map(compile_one).collect()
}

fn compile_one(rule: &Rule) -> Result<CompiledRule, JudgeError> {
    let has_matcher = rule.team_id.is_some()
        || rule.signing_id.is_some()
        || rule.bundle_id.is_some()
        || rule.label.is_some()
        || rule.path.is_some()
        || rule.port.is_some();
    if !has_matcher {
        return Err(JudgeError::EmptyRule {
            rule_id: rule.id.clone(),
        });
    }
    let path = match &rule.path {
        None => None,
        Some(glob) => {
            // The config loader's compiler, so validation and matching
            // share one set of glob semantics.
            let matcher = compile_path_glob(glob).map_err(|source| JudgeError::RuleGlob {
                rule_id: rule.id.clone(),
                glob: glob.clone(),
                source,
            })?;
            Some((glob.clone(), matcher))
        }
    };
    Ok(CompiledRule {
        id: rule.id.clone(),
        action: rule.action,
        team_id: rule.team_id.clone(),
        signing_id: rule.signing_id.clone(),
        bundle_id: rule.bundle_id.clone(),
        label: rule.label.clone(),
        path,
        port: rule.port,
    })
}

impl CompiledRule {
    /// The matchers this rule satisfied, in words, or `None` if any set
    /// matcher failed.
    fn matches(&self, s: &Subject<'_>) -> Option<Vec<String>> {
        let mut why = Vec::new();
        if let Some(want) = &self.team_id {
            s.team_id.filter(|t| t.eq_ignore_ascii_case(want))?;
            why.push(format!("validated team ID {want}"));
        }
        if let Some(want) = &self.signing_id {
            s.signing_id.filter(|t| t == want)?;
            why.push(format!("signing identifier {want}"));
        }
        if let Some(want) = &self.bundle_id {
            s.bundle_ids.iter().find(|b| b.eq_ignore_ascii_case(want))?;
            why.push(format!("bundle id {want}"));
        }
        if let Some(want) = &self.label {
            s.labels
                .iter()
                .find(|l| *l == want || strip_btm_type(l) == want)?;
            why.push(format!("label {want}"));
        }
        if let Some((glob, matcher)) = &self.path {
            s.program.filter(|p| matcher.is_match(p))?;
            why.push(format!("path glob {glob}"));
        }
        if let Some(want) = self.port {
            s.ports.iter().find(|p| **p == want)?;
            why.push(format!("port {want}"));
        }
        Some(why)
    }
}

/// The rule that decides for this subject, if any: a deny beats an allow.
pub(crate) fn decide(rules: &[CompiledRule], s: &Subject<'_>) -> Option<RuleHit> {
    let matched: Vec<(&CompiledRule, Vec<String>)> = rules
        .iter()
        .filter_map(|r| r.matches(s).map(|why| (r, why)))
        .collect();
    let deny = matched.iter().find(|(r, _)| r.action == RuleAction::Deny);
    let allow = matched.iter().find(|(r, _)| r.action == RuleAction::Allow);
    let (rule, why) = deny.or(allow)?;
    let verb = match rule.action {
        RuleAction::Deny => "deny",
        RuleAction::Allow => "allow",
    };
    let mut reasons = vec![format!(
        "admin {verb} rule rule:{} matches ({})",
        rule.id,
        why.join(", ")
    )];
    if let (Some(_), Some((overridden, _))) = (deny, allow) {
        reasons.push(format!(
            "admin allow rule rule:{} also matches, but a deny rule wins over an allow rule",
            overridden.id
        ));
    }
    Some(RuleHit {
        id: format!("rule:{}", rule.id),
        action: rule.action,
        reasons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn rule(id: &str, action: RuleAction) -> Rule {
        Rule {
            id: id.into(),
            action,
            team_id: None,
            signing_id: None,
            bundle_id: None,
            label: None,
            path: None,
            port: None,
            comment: None,
        }
    }

    fn subject() -> Subject<'static> {
        Subject {
            program: Some(Path::new(
                "/Applications/Dropbox.app/Contents/MacOS/Dropbox",
            )),
            team_id: Some("G7HH3F8CAK"),
            signing_id: Some("com.getdropbox.dropbox"),
            bundle_ids: vec!["com.getdropbox.dropbox".into()],
            labels: vec!["com.dropbox.DropboxMacUpdate.agent"],
            ports: vec![17500],
            ..Subject::default()
        }
    }

    #[test]
    fn empty_rule_and_bad_glob_are_errors_naming_the_rule() {
        let err = compile(&[rule("nothing", RuleAction::Allow)]).unwrap_err();
        assert!(err.to_string().contains("nothing"), "{err}");
        let mut bad = rule("broken-glob", RuleAction::Deny);
        bad.path = Some("/Applications/[oops".into());
        let err = compile(&[bad]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("broken-glob") && text.contains("[oops"),
            "{text}"
        );
    }

    #[test]
    fn every_set_matcher_must_match() {
        type Edit = fn(&mut Rule);
        let table: &[(&str, Edit, bool)] = &[
            ("team id", |r| r.team_id = Some("g7hh3f8cak".into()), true),
            (
                "wrong team",
                |r| r.team_id = Some("ZZZZZZZZZZ".into()),
                false,
            ),
            (
                "signing id",
                |r| r.signing_id = Some("com.getdropbox.dropbox".into()),
                true,
            ),
            (
                "signing id case",
                |r| r.signing_id = Some("COM.getdropbox.dropbox".into()),
                false,
            ),
            (
                "bundle id case",
                |r| r.bundle_id = Some("COM.GETDROPBOX.DROPBOX".into()),
                true,
            ),
            (
                "label",
                |r| r.label = Some("com.dropbox.DropboxMacUpdate.agent".into()),
                true,
            ),
            (
                "path glob",
                |r| r.path = Some("/Applications/Dropbox.app/**".into()),
                true,
            ),
            (
                "star stays in a component",
                |r| r.path = Some("/Applications/*".into()),
                false,
            ),
            ("port", |r| r.port = Some(17500), true),
            ("wrong port", |r| r.port = Some(17501), false),
            (
                "all set, one wrong",
                |r| {
                    r.team_id = Some("G7HH3F8CAK".into());
                    r.path = Some("/Applications/Dropbox.app/**".into());
                    r.port = Some(1);
                },
                false,
            ),
        ];
        for (what, edit, want) in table {
            let mut r = rule("r", RuleAction::Allow);
            edit(&mut r);
            let compiled = compile(&[r]).unwrap();
            let hit = decide(&compiled, &subject());
            assert_eq!(hit.is_some(), *want, "{what}");
        }
    }

    #[test]
    fn unvalidated_team_id_never_matches() {
        let mut r = rule("team", RuleAction::Allow);
        r.team_id = Some("G7HH3F8CAK".into());
        let compiled = compile(&[r]).unwrap();
        let s = Subject {
            team_id: None,
            ..subject()
        };
        assert!(decide(&compiled, &s).is_none());
    }

    #[test]
    fn deny_beats_allow_and_says_so() {
        let mut allow = rule("dropbox-ok", RuleAction::Allow);
        allow.team_id = Some("G7HH3F8CAK".into());
        let mut deny = rule("no-17500", RuleAction::Deny);
        deny.port = Some(17500);
        for order in [vec![allow.clone(), deny.clone()], vec![deny, allow]] {
            let compiled = compile(&order).unwrap();
            let hit = decide(&compiled, &subject()).unwrap();
            assert_eq!(hit.id, "rule:no-17500");
            assert_eq!(hit.action, RuleAction::Deny);
            assert!(
                hit.reasons[1].contains("rule:dropbox-ok"),
                "{:?}",
                hit.reasons
            );
        }
    }
}
