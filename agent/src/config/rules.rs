//! The `Rules` key: an array of admin allow/deny rule dictionaries.
//!
//! A rule's keys decide what it matches, and every matcher that is set must
//! match. So a misspelt matcher (`TeamId` for `TeamID`) would not be
//! ignored harmlessly the way an unknown top-level key is: it would silently
//! widen the rule — an allow rule letting through a whole team's helpers,
//! or a deny rule remediating more than meant. Unknown rule fields are
//! therefore errors, with the closest known field suggested.

use std::collections::BTreeMap;

use plist::{Dictionary, Value};

use super::values::{Ctx, suggest};
use super::{ConfigError, Rule, RuleAction};
use crate::model::rule::{self, EXPECT_PATH_GLOB, EXPECT_TEAM_ID, RuleProblem};

/// Every field a rule dictionary may have.
pub const RULE_KEYS: &[&str] = &[
    "Id",
    "Action",
    "TeamID",
    "SigningID",
    "BundleID",
    "Label",
    "Path",
    "Port",
    "Comment",
];

pub(crate) fn parse_rules(ctx: &Ctx<'_>, value: &Value) -> Result<Vec<Rule>, ConfigError> {
    let items = value
        .as_array()
        .ok_or_else(|| ctx.invalid("Rules", value, "an array of rule dictionaries"))?;
    let mut rules = Vec::with_capacity(items.len());
    // Id → index of the rule that first used it.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (index, item) in items.iter().enumerate() {
        let key = format!("Rules[{index}]");
        let dict = item.as_dictionary().ok_or_else(|| {
            ctx.invalid(
                &key,
                item,
                "a rule dictionary with Id, Action and a matcher",
            )
        })?;
        let rule = parse_rule(ctx, &key, index, dict)?;
        if let Some(&first) = seen.get(&rule.id) {
            return Err(ConfigError::DuplicateRuleId {
                path: ctx.path.to_path_buf(),
                id: rule.id,
                first,
                second: index,
            });
        }
        seen.insert(rule.id.clone(), index);
        rules.push(rule);
    }
    Ok(rules)
}

fn parse_rule(
    ctx: &Ctx<'_>,
    key: &str,
    index: usize,
    dict: &Dictionary,
) -> Result<Rule, ConfigError> {
    for field in dict.keys() {
        if !RULE_KEYS.contains(&field.as_str()) {
            return Err(ConfigError::UnknownRuleField {
                path: ctx.path.to_path_buf(),
                key: format!("{key}.{field}"),
                suggestion: suggest(field, RULE_KEYS),
            });
        }
    }
    let field = |name: &str| (format!("{key}.{name}"), dict.get(name));
    let required = |name: &str, expected: &str| match field(name) {
        (field_key, Some(value)) => Ok((field_key, value)),
        (field_key, None) => Err(ConfigError::Missing {
            path: ctx.path.to_path_buf(),
            key: field_key,
            expected: expected.to_string(),
        }),
    };
    let optional_string = |name: &str| -> Result<Option<String>, ConfigError> {
        match field(name) {
            (field_key, Some(value)) => {
                let s = ctx.non_empty_string(&field_key, value)?;
                // The shared validator's rule: blank is empty.
                if s.trim().is_empty() {
                    return Err(ctx.invalid(&field_key, value, "a non-empty string"));
                }
                Ok(Some(s))
            }
            (_, None) => Ok(None),
        }
    };

    let (id_key, id_value) = required("Id", "a non-empty string that names the rule")?;
    let id = ctx.non_empty_string(&id_key, id_value)?;

    let (action_key, action_value) = required("Action", "allow or deny")?;
    let action = parse_action(ctx, &action_key, action_value)?;

    let team_id = match field("TeamID") {
        (field_key, Some(value)) => {
            let s = ctx.string(&field_key, value, EXPECT_TEAM_ID)?;
            rule::check_team_id(s).map_err(|p| ctx.invalid(&field_key, value, p.expected()))?;
            Some(s.to_string())
        }
        (_, None) => None,
    };

    let path = match field("Path") {
        (field_key, Some(value)) => {
            let s = ctx.string(&field_key, value, EXPECT_PATH_GLOB)?;
            if let Err(p) = rule::check_path_glob(s) {
                let expected = RuleProblem::Path(p).expected();
                return Err(ctx.invalid(&field_key, value, expected));
            }
            Some(s.to_string())
        }
        (_, None) => None,
    };

    let port = match field("Port") {
        (field_key, Some(value)) => {
            let n = ctx.integer(&field_key, value, 1..=u64::from(u16::MAX))?;
            // The range check above makes this conversion infallible.
            Some(
                u16::try_from(n)
                    .map_err(|_| ctx.invalid(&field_key, value, "an integer 1..=65535"))?,
            )
        }
        (_, None) => None,
    };

    let comment = match field("Comment") {
        (field_key, Some(value)) => Some(ctx.string(&field_key, value, "a string")?.to_string()),
        (_, None) => None,
    };

    let rule = Rule {
        id,
        action,
        team_id,
        signing_id: optional_string("SigningID")?,
        bundle_id: optional_string("BundleID")?,
        label: optional_string("Label")?,
        path,
        port,
        comment,
    };
    // Each field was checked above as it was read, so its error names the
    // field; what is left is what only the whole rule can say.
    match rule.check() {
        Ok(()) => Ok(rule),
        Err(RuleProblem::NoMatcher) => Err(ConfigError::RuleWithoutMatcher {
            path: ctx.path.to_path_buf(),
            index,
            id: rule.id,
        }),
        Err(problem) => {
            Err(ctx.invalid(key, &Value::Dictionary(dict.clone()), problem.to_string()))
        }
    }
}

fn parse_action(ctx: &Ctx<'_>, key: &str, value: &Value) -> Result<RuleAction, ConfigError> {
    const EXPECTED: &str = "one of allow, deny";
    let s = ctx.string(key, value, EXPECTED)?;
    if s.eq_ignore_ascii_case("allow") {
        Ok(RuleAction::Allow)
    } else if s.eq_ignore_ascii_case("deny") {
        Ok(RuleAction::Deny)
    } else {
        Err(ctx.invalid(key, value, EXPECTED))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use std::path::Path;

    use plist::Integer;

    use super::*;

    const FILE: &str = "/prefs/io.lenscap.agent.plist";

    fn rule(fields: &[(&str, Value)]) -> Value {
        Value::Dictionary(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    fn s(text: &str) -> Value {
        Value::String(text.to_string())
    }

    fn parse(rules: Vec<Value>) -> Result<Vec<Rule>, ConfigError> {
        parse_rules(
            &Ctx {
                path: Path::new(FILE),
            },
            &Value::Array(rules),
        )
    }

    fn err(rules: Vec<Value>) -> String {
        match parse(rules) {
            Ok(rules) => panic!("accepted: {rules:?}"),
            Err(err) => err.to_string(),
        }
    }

    fn deny_zoom() -> Value {
        rule(&[
            ("Id", s("zoom")),
            ("Action", s("deny")),
            ("Path", s("/Users/*/.zoomus/**")),
        ])
    }

    #[test]
    fn allow_and_deny_rules_parse() {
        let rules = parse(vec![
            deny_zoom(),
            rule(&[
                ("Id", s("vendor")),
                ("Action", s("Allow")),
                ("TeamID", s("EQHXZ8M8AV")),
                ("SigningID", s("com.vendor.helper")),
                ("BundleID", s("com.vendor.Helper")),
                ("Label", s("com.vendor.helper.agent")),
                ("Port", Value::Integer(Integer::from(8765))),
                ("Comment", s("")),
            ]),
        ])
        .unwrap();
        assert_eq!(rules[0].action, RuleAction::Deny);
        assert_eq!(rules[0].path.as_deref(), Some("/Users/*/.zoomus/**"));
        assert_eq!(rules[1].action, RuleAction::Allow);
        assert_eq!(rules[1].team_id.as_deref(), Some("EQHXZ8M8AV"));
        assert_eq!(rules[1].port, Some(8765));
        assert_eq!(rules[1].comment.as_deref(), Some(""));
    }

    #[test]
    fn port_out_of_range_names_the_rule_field() {
        let bad = rule(&[
            ("Id", s("p")),
            ("Action", s("deny")),
            ("Port", Value::Integer(Integer::from(70_000))),
        ]);
        let text = err(vec![deny_zoom(), deny_zoom_with_id("z2"), bad]);
        assert_eq!(
            text,
            "/prefs/io.lenscap.agent.plist: Rules[2].Port is 70000, expected an integer 1..=65535; fix the value"
        );
    }

    fn deny_zoom_with_id(id: &str) -> Value {
        rule(&[
            ("Id", s(id)),
            ("Action", s("deny")),
            ("Path", s("/Users/*/.zoomus/**")),
        ])
    }

    #[test]
    fn bad_action_and_missing_fields() {
        let text = err(vec![rule(&[
            ("Id", s("x")),
            ("Action", s("block")),
            ("Port", Value::Integer(1.into())),
        ])]);
        assert!(
            text.contains("Rules[0].Action is \"block\", expected one of allow, deny"),
            "{text}"
        );
        let text = err(vec![rule(&[
            ("Action", s("deny")),
            ("Port", Value::Integer(1.into())),
        ])]);
        assert!(
            text.contains("Rules[0].Id is missing; add it as a non-empty string"),
            "{text}"
        );
        let text = err(vec![rule(&[
            ("Id", s("x")),
            ("Port", Value::Integer(1.into())),
        ])]);
        assert!(
            text.contains("Rules[0].Action is missing; add it as allow or deny"),
            "{text}"
        );
        let text = err(vec![rule(&[
            ("Id", s("")),
            ("Action", s("deny")),
            ("Port", Value::Integer(1.into())),
        ])]);
        assert!(
            text.contains("Rules[0].Id is \"\", expected a non-empty string"),
            "{text}"
        );
    }

    #[test]
    fn duplicate_ids_are_errors() {
        let text = err(vec![deny_zoom(), deny_zoom_with_id("other"), deny_zoom()]);
        assert_eq!(
            text,
            "/prefs/io.lenscap.agent.plist: Rules[2] reuses the Id \"zoom\" of Rules[0]; give every rule a unique Id"
        );
    }

    #[test]
    fn rule_without_matcher_is_an_error() {
        let text = err(vec![rule(&[
            ("Id", s("all")),
            ("Action", s("deny")),
            ("Comment", s("oops")),
        ])]);
        assert!(
            text.contains("Rules[0] (Id \"all\") has no matcher, so it would match everything"),
            "{text}"
        );
    }

    #[test]
    fn misspelt_matcher_is_an_error_with_a_suggestion() {
        let text = err(vec![rule(&[
            ("Id", s("v")),
            ("Action", s("allow")),
            ("TeamId", s("EQHXZ8M8AV")),
        ])]);
        assert!(
            text.contains("Rules[0].TeamId is not a rule field (did you mean TeamID?)"),
            "{text}"
        );
    }

    #[test]
    fn team_id_and_path_shapes() {
        let text = err(vec![rule(&[
            ("Id", s("v")),
            ("Action", s("allow")),
            ("TeamID", s("eqhxz8m8av")),
        ])]);
        assert!(
            text.contains("Rules[0].TeamID is \"eqhxz8m8av\", expected a 10-character Team ID"),
            "{text}"
        );
        let text = err(vec![rule(&[
            ("Id", s("v")),
            ("Action", s("deny")),
            ("Path", s(".zoomus/*")),
        ])]);
        assert!(
            text.contains("Rules[0].Path is \".zoomus/*\", expected an absolute path glob"),
            "{text}"
        );
        let text = err(vec![rule(&[
            ("Id", s("v")),
            ("Action", s("deny")),
            ("Path", s("/a/{b")),
        ])]);
        assert!(
            text.contains("Rules[0].Path is \"/a/{b\", expected a valid glob"),
            "{text}"
        );
        let text = err(vec![rule(&[
            ("Id", s("v")),
            ("Action", s("deny")),
            ("Label", Value::Boolean(true)),
        ])]);
        assert!(
            text.contains("Rules[0].Label is true, expected a non-empty string"),
            "{text}"
        );
        assert!(err(vec![s("zoom")]).contains("Rules[0] is \"zoom\", expected a rule dictionary"));
        let not_array = parse_rules(
            &Ctx {
                path: Path::new(FILE),
            },
            &deny_zoom(),
        );
        assert!(
            not_array
                .unwrap_err()
                .to_string()
                .contains("Rules is a dictionary of 3 keys, expected an array")
        );
    }
}
