//! Admin allow/deny rules (`model::Rule`), compiled once per policy.
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
//! - An **allow** rule that names an identity (`team_id`, `signing_id`,
//!   `bundle_id`, `label`) applies only when a signature that validated
//!   vouches for that identity (`Subject::vouched`): an ad-hoc, invalid,
//!   unsigned, unchecked or unsupported (Linux) signature, or an
//!   interpreter's signature for the script it runs, is a claim anyone
//!   can make. Such subjects are allowed only by `path` and `port`. The
//!   finding says which rule was not applied and why. Deny rules match
//!   claimed identities too: a claim that makes a subject look worse is
//!   no way to slip past lenscap.
//!
//! Precedence (documented in the judge's module doc too): a matching deny
//! beats a matching allow — a conflict is resolved toward acting, and an
//! admin narrows the deny to carve out an exception. Within one action the
//! first rule in configuration order is the one named in the finding.

use globset::GlobMatcher;

use super::JudgeError;
use super::subject::{Subject, Vouched, strip_btm_type};
use crate::model::rule::{self, Rule, RuleAction, RuleProblem};

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
    // Only what matching itself depends on; every source checked the rest
    // with the same validator (`model::rule`) when it read the rule.
    let bad = |problem| JudgeError::Rule {
        rule_id: rule.id.clone(),
        problem,
    };
    if !rule.has_matcher() {
        return Err(bad(RuleProblem::NoMatcher));
    }
    let path = match &rule.path {
        None => None,
        Some(glob) => {
            // The config loader's compiler, so validation and matching
            // share one set of glob semantics.
            let matcher = rule::check_path_glob(glob).map_err(|p| bad(RuleProblem::Path(p)))?;
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
    /// The identity matchers this rule sets, in words: `SigningID
    /// com.x`.
    fn identity_words(&self) -> Vec<String> {
        let mut words = Vec::new();
        if let Some(t) = &self.team_id {
            words.push(format!("TeamID {t}"));
        }
        if let Some(i) = &self.signing_id {
            words.push(format!("SigningID {i}"));
        }
        if let Some(b) = &self.bundle_id {
            words.push(format!("BundleID {b}"));
        }
        if let Some(l) = &self.label {
            words.push(format!("Label {l}"));
        }
        words
    }

    /// Why this rule does not apply although every matcher matched: an
    /// allow by identity for an identity nothing vouches for.
    fn unvouched(&self, s: &Subject<'_>) -> Option<String> {
        let Vouched::No(why) = &s.vouched else {
            return None;
        };
        let names = self.identity_words();
        if self.action != RuleAction::Allow || names.is_empty() {
            return None;
        }
        Some(format!(
            "admin allow rule rule:{} names {}, which it only claims: {why}, so the rule does \
             not apply (an allow rule by identity needs a signature that validated; a Path or \
             Port rule can allow it)",
            self.id,
            names.join(" and ")
        ))
    }

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
        .filter(|r| r.unvouched(s).is_none())
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

/// The allow rules that would have matched but for an identity nothing
/// vouches for, each as a reason for the finding.
pub(crate) fn unvouched(rules: &[CompiledRule], s: &Subject<'_>) -> Vec<String> {
    rules
        .iter()
        .filter(|r| r.matches(s).is_some())
        .filter_map(|r| r.unvouched(s))
        .collect()
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
            vouched: Vouched::Yes,
            ..Subject::default()
        }
    }

    #[test]
    fn allow_by_identity_needs_a_vouched_identity_deny_does_not() {
        type Edit = fn(&mut Rule);
        let identity: &[(&str, Edit)] = &[
            ("signing id", |r| {
                r.signing_id = Some("com.getdropbox.dropbox".into())
            }),
            ("bundle id", |r| {
                r.bundle_id = Some("com.getdropbox.dropbox".into())
            }),
            ("label", |r| {
                r.label = Some("com.dropbox.DropboxMacUpdate.agent".into())
            }),
            ("team id", |r| r.team_id = Some("G7HH3F8CAK".into())),
        ];
        let claimed = Subject {
            vouched: Vouched::No("its signature is ad-hoc".into()),
            ..subject()
        };
        for (what, edit) in identity {
            let mut allow = rule("dropbox-ok", RuleAction::Allow);
            edit(&mut allow);
            let compiled = compile(&[allow]).unwrap();
            assert!(decide(&compiled, &subject()).is_some(), "{what}: vouched");
            assert!(decide(&compiled, &claimed).is_none(), "{what}: claimed");
            let notes = unvouched(&compiled, &claimed);
            assert_eq!(notes.len(), 1, "{what}");
            assert!(
                notes[0].contains("rule:dropbox-ok") && notes[0].contains("ad-hoc"),
                "{what}: {notes:?}"
            );
            assert!(unvouched(&compiled, &subject()).is_empty());

            let mut deny = rule("no-dropbox", RuleAction::Deny);
            edit(&mut deny);
            let compiled = compile(&[deny]).unwrap();
            let hit = decide(&compiled, &claimed).expect("a deny matches a claim");
            assert_eq!(hit.action, RuleAction::Deny, "{what}");
            assert!(unvouched(&compiled, &claimed).is_empty());
        }
        // Path and Port allow what nothing vouches for.
        let mut by_path = rule("by-path", RuleAction::Allow);
        by_path.path = Some("/Applications/Dropbox.app/**".into());
        let mut by_port = rule("by-port", RuleAction::Allow);
        by_port.port = Some(17500);
        for r in [by_path, by_port] {
            let compiled = compile(&[r]).unwrap();
            assert!(decide(&compiled, &claimed).is_some());
        }
        // An identity that would not match anyway gets no note.
        let mut other = rule("other", RuleAction::Allow);
        other.signing_id = Some("com.other".into());
        assert!(unvouched(&compile(&[other]).unwrap(), &claimed).is_empty());
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
