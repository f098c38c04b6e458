//! The collector's policy documents → the agent's rules and catalog, and
//! the stored file. The documents are the shapes docs/api.md shows (the
//! collector serves them from `lenscap_events::FleetPolicy`).

use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::config::{Config, RuleAction};
use crate::judge::testkit::{Scene, http, linux, on_port, policy_with, process, said, wildcard};
use crate::model::Verdict;

fn url() -> CollectorUrl {
    CollectorUrl::parse("https://collector.example.com:8470").unwrap_or_else(|e| panic!("{e}"))
}

fn parse(body: &str) -> Result<Fetched, PolicySyncError> {
    Fetched::parse(body, "\"etag-1\"".into(), &url())
}

/// docs/api.md, `GET /api/v1/policy`, verbatim.
const API_EXAMPLE: &str = r#"{"catalog":[{"id":"ringcentral-opener","name":"RingCentral opener","paths":["/Users/*/.ringcentralopener/**"],"ports":[19424],"severity":"high"}],
 "rules":[{"action":"allow","id":"allow-jetbrains","port":63342,"team_id":"2ZEFAR8TH3"}]}"#;

#[test]
fn the_documented_example_converts() {
    let f = parse(API_EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.etag, "\"etag-1\"");
    assert_eq!(f.source, "https://collector.example.com:8470/api/v1/policy");
    let rules = &f.additions.rules;
    assert_eq!(rules.len(), 2, "{rules:#?}");
    assert_eq!(rules[0].id, "allow-jetbrains");
    assert_eq!(rules[0].action, RuleAction::Allow);
    assert_eq!(rules[0].team_id.as_deref(), Some("2ZEFAR8TH3"));
    assert_eq!(rules[0].port, Some(63342));
    // A catalog entry's path glob is a deny rule with the entry's id.
    assert_eq!(rules[1].id, "ringcentral-opener");
    assert_eq!(rules[1].action, RuleAction::Deny);
    assert_eq!(
        rules[1].path.as_deref(),
        Some("/Users/*/.ringcentralopener/**")
    );
    assert_eq!(rules[1].port, None, "a port never narrows it");
    // Only paths: nothing for the agent's catalog.
    assert!(f.additions.catalog.is_empty());
}

#[test]
fn identity_signals_become_a_catalog_entry() {
    let f = parse(
        r#"{"catalog":[{"id":"Acme_Opener.v2","name":"Acme opener","severity":"critical",
            "process_names":["AcmeOpener"],"bundle_ids":["com.acme.opener"],
            "signing_ids":["com.acme.opener","com.acme.opener.helper"],"ports":[19500],
            "references":["CVE-2026-12345","https://acme.example/advisory","see the wiki"],
            "description":"Acme's opener answers any web page."}]}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(f.additions.rules.is_empty());
    let [e] = &f.additions.catalog[..] else {
        panic!("{:#?}", f.additions.catalog)
    };
    assert_eq!(e.id, "catalog:acme-opener-v2");
    assert_eq!(e.name, "Acme opener");
    assert_eq!(e.summary, "Acme's opener answers any web page.");
    assert_eq!(e.process_names, ["AcmeOpener"]);
    assert_eq!(e.bundle_ids, ["com.acme.opener", "com.acme.opener.helper"]);
    assert_eq!(e.ports, [19500]);
    assert_eq!(e.cves, ["CVE-2026-12345"]);
    assert_eq!(e.sources, ["https://acme.example/advisory"]);

    // With no https reference, the policy URL is the source.
    let f = parse(r#"{"catalog":[{"id":"x","name":"X","severity":"low","process_names":["xd"]}]}"#)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        f.additions.catalog[0].sources,
        ["https://collector.example.com:8470/api/v1/policy"]
    );
}

#[test]
fn converted_additions_decide_verdicts() {
    let f = parse(
        r#"{"rules":[{"id":"deny-devsrv","action":"deny","path":"/home/*/dev/srv"}],
            "catalog":[{"id":"acme","name":"Acme","severity":"high","process_names":["acmed"]}]}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // A local allow rule for the same program: the fleet deny still wins.
    let mut rules = vec![crate::judge::testkit::rule(
        "local-allow",
        RuleAction::Allow,
    )];
    rules[0].path = Some("/home/*/dev/srv".into());
    rules.extend(f.additions.rules.clone());
    let policy = policy_with(rules)
        .with_catalog_additions(f.additions.catalog.clone())
        .unwrap_or_else(|e| panic!("{e}"));
    let findings = Scene::new()
        .process(linux(process(700, 1, "/home/ann/dev/srv", "srv")))
        .listen(wildcard(8088, &[700]), Some(http("")))
        .process(linux(process(701, 1, "/opt/acme/acmed", "acmed")))
        .listen(wildcard(8089, &[701]), Some(http("")))
        .judge(&policy);
    let denied = on_port(&findings, 8088);
    assert_eq!(denied.verdict, Verdict::Remediate, "{}", said(denied));
    assert_eq!(denied.rule.as_deref(), Some("rule:deny-devsrv"));
    let listed = on_port(&findings, 8089);
    assert_eq!(listed.verdict, Verdict::Remediate, "{}", said(listed));
    assert_eq!(listed.rule.as_deref(), Some("catalog:acme"));
}

#[test]
fn bad_policies_are_refused_naming_the_entry() {
    let cases = [
        ("{", "not valid JSON"),
        (
            r#"{"rules":[{"id":"r","action":"deny"}]}"#,
            "at least one matcher",
        ),
        (
            r#"{"rules":[{"id":"r","action":"block","port":1}]}"#,
            "not valid JSON",
        ),
        (
            r#"{"rules":[{"id":"ok","action":"deny","port":1},{"id":"t","action":"allow","team_id":"abc"}]}"#,
            "rules[1] (t): team_id \"abc\" is not a Team ID",
        ),
        (
            r#"{"rules":[{"id":"p","action":"deny","path":"relative/x"}]}"#,
            "rules[0] (p): path: \"relative/x\" must be an absolute path glob",
        ),
        (
            r#"{"rules":[{"id":"p","action":"deny","path":"/a/{b"}]}"#,
            "is not a valid glob",
        ),
        (
            r#"{"rules":[{"id":"z","action":"deny","port":0}]}"#,
            "port 0",
        ),
        (
            r#"{"catalog":[{"id":"c","name":"C","severity":"low","paths":["x/**"]}]}"#,
            "catalog[0] (c): paths[0]",
        ),
        (
            r#"{"catalog":[{"id":"a.b","name":"A","severity":"low","process_names":["a"]},
                          {"id":"a_b","name":"B","severity":"low","process_names":["b"]}]}"#,
            "catalog[1] (a_b): its id is catalog:a-b",
        ),
        (
            r#"{"catalog":[{"id":"s","name":"S","severity":"low","process_names":["bin/s"]}]}"#,
            "catalog[0] (s): catalog entry catalog:s: process_names has an empty value or one with '/'",
        ),
    ];
    for (body, want) in cases {
        let err = parse(body).expect_err(body).to_string();
        assert!(err.contains(want), "{body}\n→ {err}\nwanted {want:?}");
    }
}

#[test]
fn an_entry_with_a_built_in_id_is_left_to_the_built_in_one() {
    let builtin = &Policy::new(&Config::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .catalog()
        .entries[0]
        .id
        .clone();
    let slug = builtin.trim_start_matches("catalog:");
    let body = format!(
        r#"{{"catalog":[{{"id":"{slug}","name":"dup","severity":"low","process_names":["x"]}},
                       {{"id":"other","name":"O","severity":"low","process_names":["o"]}}]}}"#
    );
    let f = parse(&body).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = f.additions.catalog.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["catalog:other"]);
}

use crate::judge::Policy;

#[test]
fn the_stored_policy_round_trips_privately() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(load(dir.path()).unwrap_or_else(|e| panic!("{e}")), None);
    let f = parse(API_EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
    store(dir.path(), &f.to_stored()).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join(FILE_NAME);
    let mode = std::fs::metadata(&path)
        .unwrap_or_else(|e| panic!("{e}"))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let stored = load(dir.path())
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("stored policy missing"));
    assert_eq!(stored, f.to_stored());
    assert_eq!(
        Fetched::from_stored(stored).unwrap_or_else(|e| panic!("{e}")),
        f
    );

    std::fs::write(&path, "{\"etag\": 1}").unwrap_or_else(|e| panic!("{e}"));
    let err = load(dir.path()).expect_err("damaged").to_string();
    assert!(
        err.contains("fleet-policy.json") && err.contains("remove it"),
        "{err}"
    );
}
