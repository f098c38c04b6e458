//! The `Rules` key: an array of admin allow/deny rule dictionaries.
//!
//! A rule's keys decide what it matches, and every matcher that is set must
//! match. So a misspelt matcher (`TeamId` for `TeamID`) would not be
//! ignored harmlessly the way an unknown top-level key is: it would silently
//! widen the rule — an allow rule letting through a whole team's helpers,
//! or a deny rule remediating more than meant. Unknown rule fields are
//! therefore errors, with the closest known field suggested.

use std::collections::BTreeMap;

use globset::{GlobBuilder, GlobMatcher};
use plist::{Dictionary, Value};

use super::values::{Ctx, suggest};
use super::{ConfigError, Rule, RuleAction};

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

const EXPECT_TEAM_ID: &str =
    "a 10-character Team ID of capital letters and digits, such as ABCDE12345";
const EXPECT_PATH_GLOB: &str = "an absolute path glob starting with / or **/";

/// Compiles a rule's `Path` the way lenscap matches it: `*` and `?` stay
/// inside one path component, `**` spans any number of components. The
/// judge calls this too, so the semantics documented in
/// docs/configuration.md hold in one place.
pub fn compile_path_glob(pattern: &str) -> Result<GlobMatcher, globset::Error> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|glob| glob.compile_matcher())
}

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
            (field_key, Some(value)) => ctx.non_empty_string(&field_key, value).map(Some),
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
            let well_formed = s.len() == 10
                && s.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
            if !well_formed {
                return Err(ctx.invalid(&field_key, value, EXPECT_TEAM_ID));
            }
            Some(s.to_string())
        }
        (_, None) => None,
    };

    let path = match field("Path") {
        (field_key, Some(value)) => {
            let s = ctx.string(&field_key, value, EXPECT_PATH_GLOB)?;
            if !(s.starts_with('/') || s.starts_with("**/")) || s.contains('\0') {
                return Err(ctx.invalid(&field_key, value, EXPECT_PATH_GLOB));
            }
            if let Err(err) = compile_path_glob(s) {
                let expected = format!("a valid glob ({})", err.kind());
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
    let has_matcher = rule.team_id.is_some()
        || rule.signing_id.is_some()
        || rule.bundle_id.is_some()
        || rule.label.is_some()
        || rule.path.is_some()
        || rule.port.is_some();
    if !has_matcher {
        return Err(ConfigError::RuleWithoutMatcher {
            path: ctx.path.to_path_buf(),
            index,
            id: rule.id,
        });
    }
    Ok(rule)
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

    #[test]
    fn path_glob_semantics() {
        let zoom = compile_path_glob("/Users/*/.zoomus/**").unwrap();
        assert!(zoom.is_match("/Users/alice/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener"));
        assert!(!zoom.is_match("/Users/alice/x/.zoomus/ZoomOpener"));
        let star = compile_path_glob("/Applications/*.app/Contents/MacOS/*").unwrap();
        assert!(star.is_match("/Applications/zoom.us.app/Contents/MacOS/zoom.us"));
        assert!(!star.is_match("/Applications/a/b.app/Contents/MacOS/x"));
        let anywhere = compile_path_glob("**/ZoomOpener").unwrap();
        assert!(anywhere.is_match("/Users/a/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener"));
    }
}
