//! Merging the sources, each rule's and entry's origin, what is left out
//! and why, and the `config show` section that lists them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::path::Path;

use super::*;
use crate::config::{Origin as KeyOrigin, Sources};
use crate::model::RuleAction;

/// A `--config` file with one deny rule and `StateDir` at `state`.
fn configured(dir: &Path, state: &Path) -> config::Loaded {
    let file = dir.join("c.plist");
    std::fs::write(
        &file,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>\
             <key>StateDir</key><string>{}</string>\
             <key>Rules</key><array><dict><key>Id</key><string>zoom-opener</string>\
             <key>Action</key><string>deny</string><key>Path</key><string>/Users/*/.zoomus/**</string>\
             </dict></array></dict></plist>\n",
            state.display()
        ),
    )
    .unwrap();
    config::load(&Sources::explicit(&file)).unwrap()
}

fn restored(path: &str) -> Rule {
    Rule {
        id: "restored-q1".into(),
        action: RuleAction::Allow,
        team_id: None,
        signing_id: None,
        bundle_id: None,
        label: None,
        path: Some(path.into()),
        port: None,
        comment: None,
    }
}

fn store_fleet(state: &Path) {
    let policy: lenscap_events::FleetPolicy = serde_json::from_value(serde_json::json!({
        "rules": [{"id": "fleet-deny", "action": "deny", "path": "/Users/*/.acme/helper"}],
        "catalog": [{"id": "vendor-opener", "name": "Vendor opener", "severity": "high",
                     "bundle_ids": ["com.vendor.opener"], "paths": ["/Users/*/.vendor/**"]}]
    }))
    .unwrap();
    let stored = fleet::StoredPolicy {
        etag: "\"7\"".into(),
        source: "https://collector.example/api/v1/policy".into(),
        policy,
    };
    fleet::store(state, &stored).unwrap();
}

#[test]
fn every_source_is_merged_with_its_origin() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let loaded = configured(dir.path(), &state);
    let builtin = load(&loaded).unwrap().policy.catalog().entries.len();

    allowlist::add(&state, restored("/Users/ann/.acme/helper")).unwrap();
    store_fleet(&state);
    let merged = load(&loaded).unwrap();
    assert!(merged.problems.is_empty(), "{:?}", merged.problems);

    let origins: Vec<(&str, &str)> = merged
        .rules
        .iter()
        .map(|r| (r.rule.id.as_str(), r.origin.kind()))
        .collect();
    assert_eq!(
        origins,
        [
            ("zoom-opener", "file"),
            ("restored-q1", "restore_allow"),
            ("fleet-deny", "fleet_policy"),
            ("vendor-opener", "fleet_catalog"),
        ]
    );
    assert_eq!(
        merged.rules[0].origin,
        Origin::Configured(KeyOrigin::File(dir.path().join("c.plist")))
    );
    assert_eq!(
        merged.rules[1].origin,
        Origin::RestoreAllow(state.join("allow-rules.json"))
    );
    let source = FleetSource {
        etag: "\"7\"".into(),
        url: "https://collector.example/api/v1/policy".into(),
    };
    assert_eq!(merged.rules[2].origin, Origin::Fleet(source.clone()));
    assert_eq!(merged.fleet(), Some(&source));

    // The judge got all four rules, and the fleet's catalog entry.
    assert_eq!(merged.policy.rules.len(), 4);
    let known_bad = merged.catalog.iter().filter(|e| e.class == "known_bad");
    assert_eq!(known_bad.count(), builtin + 1);
    assert_eq!(merged.policy.catalog().entries.len(), builtin + 1);
    // The known-risky and benign lists are built in and listed too.
    let built = merged.policy.catalog();
    assert_eq!(
        merged.catalog.len(),
        builtin + 1 + built.risky.len() + built.benign.len()
    );
    let added: Vec<_> = merged
        .catalog
        .iter()
        .filter(|e| e.origin != Origin::BuiltinCatalog)
        .collect();
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(added[0].id, "catalog:vendor-opener");
    assert_eq!(added[0].origin, Origin::FleetCatalog(source));
}

#[test]
fn broken_local_and_fleet_files_are_left_out_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let loaded = configured(dir.path(), &state);

    // One local rule the shared validator refuses, one it accepts.
    let mut bad = restored("relative/helper");
    bad.id = "restored-bad".into();
    allowlist::add(&state, bad).unwrap();
    allowlist::add(&state, restored("/Users/ann/.acme/helper")).unwrap();
    std::fs::write(state.join(fleet::FILE_NAME), b"{not json").unwrap();
    let merged = load(&loaded).unwrap();
    let ids: Vec<&str> = merged.rules.iter().map(|r| r.rule.id.as_str()).collect();
    assert_eq!(ids, ["zoom-opener", "restored-q1"]);
    assert_eq!(merged.problems.len(), 2, "{:?}", merged.problems);
    assert!(
        merged.problems[0].contains("rule restored-bad ignored: path: \"relative/helper\""),
        "{}",
        merged.problems[0]
    );
    assert!(
        merged.problems[1].contains("fleet-policy.json"),
        "{}",
        merged.problems[1]
    );

    // A whole file that cannot be read: the configured rules stay.
    std::fs::write(state.join("allow-rules.json"), b"[").unwrap();
    let merged = load(&loaded).unwrap();
    assert_eq!(merged.rules.len(), 1);
    assert!(merged.problems[0].starts_with("local allow rules ignored: "));
}

#[test]
fn config_show_lists_every_rule_and_entry_with_its_origin() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let loaded = configured(dir.path(), &state);
    allowlist::add(&state, restored("/Users/ann/.acme/helper")).unwrap();
    store_fleet(&state);
    let merged = load(&loaded).unwrap();

    let text = show::render(&merged);
    let plist = dir.path().join("c.plist");
    for line in [
        format!(
            "  - deny  zoom-opener  Path=/Users/*/.zoomus/**  (file: {})",
            plist.display()
        ),
        format!(
            "  - allow restored-q1  Path=/Users/ann/.acme/helper  (restore --allow: {})",
            state.join("allow-rules.json").display()
        ),
        "  - deny  fleet-deny  Path=/Users/*/.acme/helper  # fleet policy  \
         (fleet policy \"7\" from https://collector.example/api/v1/policy)"
            .to_string(),
        "  - deny  vendor-opener  Path=/Users/*/.vendor/**  # fleet catalog entry Vendor opener  \
         (fleet catalog \"7\" from https://collector.example/api/v1/policy)"
            .to_string(),
        "  - catalog:zoomopener  ZoomOpener (Zoom Video Communications)  (built-in catalog)"
            .to_string(),
        "  - catalog:vendor-opener  Vendor opener (fleet policy)  \
         (fleet catalog \"7\" from https://collector.example/api/v1/policy)"
            .to_string(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line}\nnot in\n{text}");
    }
    assert!(text.starts_with(&format!(
        "policy in force: 4 rules, {} catalog entries\n",
        merged.catalog.len()
    )));
    assert!(!text.contains("left out:"));

    let json = show::to_json(&merged);
    assert_eq!(
        json["rules"][0],
        serde_json::json!({"rule": {"Id": "zoom-opener", "Action": "deny",
            "Path": "/Users/*/.zoomus/**"}, "origin": "file", "path": plist.display().to_string()})
    );
    assert_eq!(json["rules"][1]["origin"], "restore_allow");
    assert_eq!(json["rules"][2]["origin"], "fleet_policy");
    assert_eq!(json["rules"][2]["etag"], "\"7\"");
    assert_eq!(json["rules"][3]["origin"], "fleet_catalog");
    let entries = json["catalog"].as_array().unwrap();
    assert_eq!(entries[0]["origin"], "builtin_catalog");
    assert_eq!(entries[0]["class"], "known_bad");
    let fleet: Vec<_> = entries
        .iter()
        .filter(|e| e["origin"] == "fleet_catalog")
        .collect();
    assert_eq!(fleet.len(), 1);
    assert_eq!(fleet[0]["id"], "catalog:vendor-opener");
    assert!(entries.iter().any(|e| e["class"] == "known_risky"));
    assert_eq!(entries.last().unwrap()["class"], "benign_listener");
    assert!(text.contains("  - catalog:logitech-options  Logitech Options (LogiMgrDaemon) (Logitech)  known-risky  (built-in catalog)\n"), "{text}");
    assert_eq!(json["problems"], serde_json::json!([]));
}

#[test]
fn the_default_configuration_has_only_the_built_in_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = config::Loaded {
        config: Config {
            state_dir: dir.path().to_path_buf(),
            ..Config::default()
        },
        origins: Default::default(),
        warnings: Vec::new(),
    };
    let merged = load(&loaded).unwrap();
    assert!(merged.rules.is_empty());
    assert!(merged.problems.is_empty());
    assert!(
        merged
            .catalog
            .iter()
            .all(|e| e.origin == Origin::BuiltinCatalog)
    );
    assert_eq!(merged.fleet(), None);
    let text = show::render(&merged);
    assert!(text.contains("rules:\n  (none)\ncatalog:\n"), "{text}");
}
