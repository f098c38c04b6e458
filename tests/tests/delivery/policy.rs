//! Policy push: the security team PUTs a rule or a catalog entry on the
//! collector, and every agent acts on it within its policy interval.

use std::time::Duration;

use lenscap_e2e::{Daemon, temp_tree, wait_until};
use serde_json::{Value, json};

use super::{Collector, agent_config, get, http, start_helper, stored_events};

fn put_policy(c: &Collector, admin: &str, policy: &Value) -> (u16, String) {
    let body = serde_json::to_vec(policy).unwrap();
    let mut resp = http()
        .put(format!("{}/api/v1/policy", c.url()))
        .header("Authorization", format!("Bearer {admin}"))
        .header("Content-Type", "application/json")
        .send(&body[..])
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap())
}

/// The newest finding about the listener on `port`, as stored.
fn finding_on(c: &Collector, reader: &str, port: u16) -> Option<Value> {
    stored_events(c, reader)
        .into_iter()
        .filter(|e| {
            e["kind"] == "detection_finding"
                && e["payload"]["finding"]["listener"]["port"].as_u64() == Some(u64::from(port))
        })
        .max_by_key(|e| e["seq"].as_u64())
}

#[test]
fn a_fleet_deny_and_a_catalog_addition_reach_the_agent_within_its_interval() {
    let tree = temp_tree();
    let root = tree.path();
    let c = Collector::start(&root.join("collector"));
    let secret = c.token("enroll");
    let reader = c.token("reader");
    let admin = c.token("admin");

    // Helper A: allowed on this Mac by a local rule.
    let a_exe = root.join("Users/alice/.devtool/devtoold");
    let (_a, a_port) = start_helper(&a_exe, &root.join("a.port"));
    // Helper B: inside an app bundle, so only reported.
    let b_exe = root.join("Applications/Vendor.app/Contents/MacOS/vendoropener");
    let (_b, b_port) = start_helper(&b_exe, &root.join("b.port"));
    let mut allow = plist::Dictionary::new();
    allow.insert("Id".into(), "local-devtool".into());
    allow.insert("Action".into(), "allow".into());
    allow.insert("Path".into(), a_exe.display().to_string().into());
    let config = agent_config(
        root,
        &c.url(),
        &secret,
        &[("Rules", plist::Value::Array(vec![allow.into()]))],
    );
    let mut d = Daemon::start(&config, &[]);
    let state = d.state_dir().to_path_buf();
    let before = wait_until(Duration::from_secs(60), "helper B reported", || {
        finding_on(&c, &reader, b_port)
    });
    assert_eq!(
        before["payload"]["finding"]["verdict"], "report",
        "{before:#}"
    );
    assert!(
        finding_on(&c, &reader, a_port).is_none(),
        "an allowed helper is not reported"
    );

    // The security team denies A fleet-wide and lists B as known-bad.
    let (status, body) = put_policy(
        &c,
        &admin,
        &json!({
            "rules": [{"id": "fleet-deny-devtool", "action": "deny",
                       "path": a_exe.display().to_string()}],
            "catalog": [{"id": "vendor-opener", "name": "Vendor opener", "severity": "high",
                         "process_names": ["vendoropener"]}]
        }),
    );
    assert_eq!(status, 200, "{body}");

    // PolicyIntervalSeconds is 1: well within 15 s the agent has it, and
    // its next judgement says remediate (monitor mode: would do).
    let a = wait_until(Duration::from_secs(15), "helper A denied", || {
        finding_on(&c, &reader, a_port)
            .filter(|f| f["payload"]["finding"]["verdict"] == "remediate")
    });
    assert_eq!(
        a["payload"]["finding"]["rule"], "rule:fleet-deny-devtool",
        "{a:#}"
    );
    assert_eq!(a["mode"], "monitor");
    // B matches the new entry by its process name only: a name is a claim
    // anyone can make, so it is reported as a critical impersonation, not
    // remediated (a `paths` entry, which becomes a deny rule, would act).
    let b = wait_until(Duration::from_secs(15), "helper B listed", || {
        finding_on(&c, &reader, b_port)
            .filter(|f| f["payload"]["finding"]["rule"] == "catalog:vendor-opener")
    });
    assert_eq!(b["payload"]["finding"]["verdict"], "report", "{b:#}");
    assert_eq!(b["payload"]["finding"]["severity"], "critical", "{b:#}");
    // What it would do about them, and that the policy was applied.
    let events = wait_until(Duration::from_secs(15), "would-do events", || {
        let all = stored_events(&c, &reader);
        all.iter()
            .any(|e| e["kind"] == "process_remediation" && e["payload"]["would_do"] == true)
            .then_some(all)
    });
    assert!(
        events
            .iter()
            .any(|e| e["payload"]["status"] == "config_changed"
                && e["payload"]["source"] == "fleet_policy"),
        "no fleet_policy health event"
    );
    let stored: Value =
        serde_json::from_slice(&std::fs::read(state.join("fleet-policy.json")).unwrap()).unwrap();
    assert_eq!(stored["policy"]["rules"][0]["id"], "fleet-deny-devtool");
    let etag = stored["etag"].clone();

    // A policy the collector accepts but the agent cannot apply (a Team ID
    // is 10 capitals and digits): rejected, reported, the old one kept.
    let (status, body) = put_policy(
        &c,
        &admin,
        &json!({"rules": [{"id": "bad-team", "action": "allow", "team_id": "not-a-team"}]}),
    );
    assert_eq!(status, 200, "{body}");
    let rejected = wait_until(Duration::from_secs(15), "the rejection reported", || {
        stored_events(&c, &reader).into_iter().find(|e| {
            e["payload"]["source"] == "fleet_policy"
                && e["payload"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("rejected"))
        })
    });
    assert!(
        rejected["payload"]["message"]
            .as_str()
            .unwrap()
            .contains("bad-team"),
        "{rejected:#}"
    );
    let kept: Value =
        serde_json::from_slice(&std::fs::read(state.join("fleet-policy.json")).unwrap()).unwrap();
    assert_eq!(kept["etag"], etag, "the previous policy stays in force");
    // The agent polled with If-None-Match since: one rejection, not one
    // per poll.
    d.wait_sweeps(3);
    let rejections = stored_events(&c, &reader)
        .iter()
        .filter(|e| {
            e["payload"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("rejected"))
        })
        .count();
    assert_eq!(rejections, 1);
    let (status, _) = get(&c, "/api/v1/hosts", &reader);
    assert_eq!(status, 200);
    d.stop();
}
