//! `lenscap config show`: every key, its effective value and where it came
//! from — as aligned text for a person, or as JSON (`--json`) for scripts.
//!
//! Values are shown the way an admin writes them in the plist (PascalCase
//! rule fields, `monitor`/`remediate`), not as Rust field names, so what
//! `config show` prints can be compared with the profile line by line.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use super::{KEYS, Loaded, Mode, Rule, RuleAction};

/// The longest key plus two spaces, so no key runs into its value.
const KEY_WIDTH: usize = longest_key() + 2;
const VALUE_WIDTH: usize = 40;

pub use super::keys::effective_value;

/// `config show --json`:
/// `{"keys": {"Mode": {"value": "monitor", "origin": "default"}, "SweepSeconds":
/// {"value": 5, "origin": "managed", "path": "/Library/Managed Preferences/…"}, …},
/// "warnings": […]}`.
pub fn to_json(loaded: &Loaded) -> Value {
    let mut keys = Map::new();
    for key in KEYS {
        let mut entry = Map::new();
        let value = effective_value(&loaded.config, key).unwrap_or(Value::Null);
        entry.insert("value".into(), value);
        if let Some(origin) = loaded.origins.get(key) {
            entry.insert("origin".into(), json!(origin.kind()));
            if let Some(p) = origin.path() {
                entry.insert("path".into(), json!(p.display().to_string()));
            }
        }
        keys.insert((*key).to_string(), Value::Object(entry));
    }
    json!({ "keys": keys, "warnings": loaded.warnings })
}

/// `config show`: one line per key (`Key  value  (origin)`), list items
/// and rules indented below their key, then any warnings.
pub fn render_show(loaded: &Loaded) -> String {
    let mut out = String::new();
    let pad = " ".repeat(KEY_WIDTH);
    for key in KEYS {
        let origin = loaded
            .origins
            .get(key)
            .map_or_else(|| "unknown".to_string(), ToString::to_string);
        let value = effective_value(&loaded.config, key).unwrap_or(Value::Null);
        let (summary, items) = match (&value, *key) {
            (Value::Array(_), "Rules") => (
                count(loaded.config.rules.len(), "rule"),
                rule_lines(&loaded.config.rules),
            ),
            (Value::Array(list), _) => (
                count(list.len(), "entry"),
                list.iter().map(scalar).collect(),
            ),
            _ => (scalar(&value), Vec::new()),
        };
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{key:<KEY_WIDTH$}{summary:<VALUE_WIDTH$} ({origin})");
        for item in items {
            let _ = writeln!(out, "{pad}- {item}");
        }
    }
    if !loaded.warnings.is_empty() {
        out.push_str("\nwarnings:\n");
        for warning in &loaded.warnings {
            let _ = writeln!(out, "  {warning}");
        }
    }
    out
}

const fn longest_key() -> usize {
    let mut longest = 0;
    let mut i = 0;
    while i < KEYS.len() {
        if KEYS[i].len() > longest {
            longest = KEYS[i].len();
        }
        i += 1;
    }
    longest
}

pub(super) fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Monitor => "monitor",
        Mode::Remediate => "remediate",
    }
}

fn action_name(action: RuleAction) -> &'static str {
    match action {
        RuleAction::Allow => "allow",
        RuleAction::Deny => "deny",
    }
}

/// The rule's fields that are set, under their plist names.
fn rule_fields(rule: &Rule) -> Vec<(&'static str, Value)> {
    let mut fields = vec![
        ("Id", json!(rule.id)),
        ("Action", json!(action_name(rule.action))),
    ];
    let optional = [
        ("TeamID", &rule.team_id),
        ("SigningID", &rule.signing_id),
        ("BundleID", &rule.bundle_id),
        ("Label", &rule.label),
        ("Path", &rule.path),
    ];
    for (name, value) in optional {
        if let Some(v) = value {
            fields.push((name, json!(v)));
        }
    }
    if let Some(port) = rule.port {
        fields.push(("Port", json!(port)));
    }
    if let Some(comment) = &rule.comment {
        fields.push(("Comment", json!(comment)));
    }
    fields
}

/// A rule, plist-shaped (`{"Id": …, "Action": "deny", "Path": …}`).
pub fn rule_json(rule: &Rule) -> Value {
    Value::Object(
        rule_fields(rule)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

fn rule_lines(rules: &[Rule]) -> Vec<String> {
    rules.iter().map(rule_line).collect()
}

/// `deny  zoom-opener  Path=/Users/*/.zoomus/** Port=19421  # why`: a rule
/// as `config show` lists it, whichever source it came from.
pub fn rule_line(rule: &Rule) -> String {
    let matchers: Vec<String> = rule_fields(rule)
        .into_iter()
        .filter(|(name, _)| !matches!(*name, "Id" | "Action" | "Comment"))
        .map(|(name, value)| format!("{name}={}", scalar(&value)))
        .collect();
    let mut line = format!(
        "{:<5} {}  {}",
        action_name(rule.action),
        rule.id,
        matchers.join(" ")
    );
    if let Some(comment) = &rule.comment {
        let _ = write!(line, "  # {comment}");
    }
    line
}

fn count(n: usize, noun: &str) -> String {
    match (n, noun) {
        (0, _) => "(none)".to_string(),
        (1, _) => format!("1 {noun}"),
        (_, "entry") => format!("{n} entries"),
        _ => format!("{n} {noun}s"),
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use std::path::PathBuf;

    use super::super::{Config, Origin};
    use super::*;

    fn loaded() -> Loaded {
        let config = Config {
            sweep_millis: 5000,
            rules: vec![Rule {
                id: "zoom-opener".into(),
                action: RuleAction::Deny,
                team_id: None,
                signing_id: None,
                bundle_id: None,
                label: None,
                path: Some("/Users/*/.zoomus/**".into()),
                port: Some(19421),
                comment: Some("ZoomOpener, CVE-2019-13450".into()),
            }],
            ..Config::default()
        };
        let managed = PathBuf::from("/m/io.lenscap.agent.plist");
        let mut origins: std::collections::BTreeMap<_, _> =
            KEYS.iter().map(|k| (*k, Origin::Default)).collect();
        origins.insert("SweepSeconds", Origin::Managed(managed.clone()));
        origins.insert("Rules", Origin::Managed(managed));
        Loaded {
            config,
            origins,
            warnings: vec!["w: unknown key \"X\" is ignored".into()],
        }
    }

    #[test]
    fn every_key_has_an_effective_value() {
        let config = Config::default();
        for key in KEYS {
            assert!(effective_value(&config, key).is_some(), "{key}");
        }
        assert!(effective_value(&config, "Nope").is_none());
    }

    #[test]
    fn the_enrollment_secret_is_never_shown() {
        let mut l = loaded();
        l.config.enrollment_secret = crate::config::Secret::new("lc_enroll_s3cr3t");
        let text = render_show(&l);
        let json = to_json(&l).to_string();
        assert!(!text.contains("s3cr3t") && !json.contains("s3cr3t"));
        let line = text
            .lines()
            .find(|l| l.starts_with("EnrollmentSecret "))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(
            line["EnrollmentSecret".len()..]
                .trim_start()
                .starts_with("(set) "),
            "{line}"
        );
        assert_eq!(
            to_json(&l)["keys"]["EnrollmentSecret"]["value"],
            json!("(set)")
        );
        assert!(!format!("{:?}", l.config).contains("s3cr3t"));
    }

    #[test]
    fn text_shows_value_and_origin_per_key() {
        let text = render_show(&loaded());
        let line = |key: &str| {
            text.lines()
                .find(|l| l.starts_with(key))
                .unwrap_or_else(|| panic!("{key} missing in\n{text}"))
                .to_string()
        };
        assert!(line("Mode ").contains("monitor"));
        assert!(line("Mode ").ends_with("(default)"));
        assert!(line("SweepSeconds").contains(" 5 "));
        assert!(line("SweepSeconds").ends_with("(managed: /m/io.lenscap.agent.plist)"));
        assert!(line("PersistenceDirs").contains("5 entries"));
        assert!(text.contains("- /Library/LaunchAgents\n"));
        assert!(line("Rules").contains("1 rule "));
        assert!(text.contains(
            "- deny  zoom-opener  Path=/Users/*/.zoomus/** Port=19421  # ZoomOpener, CVE-2019-13450"
        ));
        assert!(text.contains("warnings:\n  w: unknown key"));
        assert_eq!(
            text.lines().filter(|l| !l.starts_with(' ')).count(),
            KEYS.len() + 2
        );
    }

    #[test]
    fn every_key_is_followed_by_space_and_values_align() {
        let text = render_show(&loaded());
        let key_lines: Vec<&str> = text
            .lines()
            .filter(|l| KEYS.iter().any(|k| l.starts_with(k)))
            .collect();
        assert_eq!(key_lines.len(), KEYS.len(), "{text}");
        for (key, line) in KEYS.iter().zip(&key_lines) {
            // The key, at least two spaces, then the value column (which
            // may be empty: an unset string).
            let (column, value) = line.split_at(KEY_WIDTH);
            assert_eq!(column.trim_end(), *key, "{line:?}");
            assert!(
                column.ends_with("  "),
                "{key} runs into its value: {line:?}"
            );
            assert!(
                !value.starts_with(' ') || value.trim_start().starts_with('('),
                "{line:?}"
            );
        }
        assert!(KEYS.contains(&"CameraCorrelationSeconds"));
        assert!(KEY_WIDTH >= "CameraCorrelationSeconds".len() + 2);
    }

    #[test]
    fn json_has_plist_shaped_values_and_origins() {
        let json = to_json(&loaded());
        assert_eq!(
            json["keys"]["Mode"],
            json!({"value": "monitor", "origin": "default"})
        );
        assert_eq!(json["keys"]["SweepSeconds"]["value"], json!(5));
        assert_eq!(json["keys"]["SweepSeconds"]["origin"], json!("managed"));
        assert_eq!(
            json["keys"]["SweepSeconds"]["path"],
            json!("/m/io.lenscap.agent.plist")
        );
        assert_eq!(
            json["keys"]["Rules"]["value"][0],
            json!({"Id": "zoom-opener", "Action": "deny", "Path": "/Users/*/.zoomus/**",
                   "Port": 19421, "Comment": "ZoomOpener, CVE-2019-13450"})
        );
        assert_eq!(json["keys"].as_object().map(Map::len), Some(KEYS.len()));
        assert_eq!(
            json["warnings"][0],
            json!("w: unknown key \"X\" is ignored")
        );
    }
}
