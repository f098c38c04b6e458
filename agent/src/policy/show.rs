//! The policy part of `lenscap config show`: every rule and catalog entry
//! in force with where it came from, after the configuration keys. Rules
//! are written the way the key list writes the `Rules` key, so a rule from
//! the fleet reads like one from a profile.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use super::{Merged, Origin};
use crate::config::show::{rule_json, rule_line};

/// `config show`: the policy section.
pub fn render(merged: &Merged) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "policy in force: {} rules, {} catalog entries",
        merged.rules.len(),
        merged.catalog.len()
    );
    let _ = writeln!(out, "rules:");
    if merged.rules.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for r in &merged.rules {
        let _ = writeln!(out, "  - {}  ({})", rule_line(&r.rule), r.origin);
    }
    let _ = writeln!(out, "catalog:");
    for e in &merged.catalog {
        // Known-bad lines read as before; the other lists say which.
        let class = match e.class {
            "known_risky" => "  known-risky",
            "benign_listener" => "  benign listener",
            _ => "",
        };
        let _ = writeln!(
            out,
            "  - {}  {} ({}){class}  ({})",
            e.id, e.name, e.vendor, e.origin
        );
    }
    if !merged.problems.is_empty() {
        let _ = writeln!(out, "left out:");
        for p in &merged.problems {
            let _ = writeln!(out, "  {p}");
        }
    }
    out
}

/// `config show --json`: `{"rules": [{"rule": {…}, "origin": "managed",
/// "path": "…"}, …], "catalog": [{"id": …, "name": …, "vendor": …,
/// "class": "known_bad", "origin": "builtin_catalog"}, …], "problems": […]}`.
pub fn to_json(merged: &Merged) -> Value {
    let rules: Vec<Value> = merged
        .rules
        .iter()
        .map(|r| {
            let mut entry = Map::new();
            entry.insert("rule".into(), rule_json(&r.rule));
            origin_fields(&r.origin, &mut entry);
            Value::Object(entry)
        })
        .collect();
    let catalog: Vec<Value> = merged
        .catalog
        .iter()
        .map(|e| {
            let mut entry = Map::new();
            entry.insert("id".into(), json!(e.id));
            entry.insert("name".into(), json!(e.name));
            entry.insert("vendor".into(), json!(e.vendor));
            entry.insert("class".into(), json!(e.class));
            origin_fields(&e.origin, &mut entry);
            Value::Object(entry)
        })
        .collect();
    json!({ "rules": rules, "catalog": catalog, "problems": merged.problems })
}

fn origin_fields(origin: &Origin, entry: &mut Map<String, Value>) {
    entry.insert("origin".into(), json!(origin.kind()));
    if let Some(p) = origin.path() {
        entry.insert("path".into(), json!(p.display().to_string()));
    }
    if let Some(f) = origin.fleet() {
        entry.insert("etag".into(), json!(f.etag));
        entry.insert("url".into(), json!(f.url));
    }
}
