//! Budget exhaustion: the daemon's circuit breaker stops remediating after
//! `MaxRemediationsPerHour` actions, so a flood of cheap decoys could spend
//! it before the helper that matters is judged. eve writes a dozen plists
//! with known-bad labels naming programs that do not exist, lets the daemon
//! sweep over them, and only then starts one real hidden helper from a
//! KeepAlive plist. A name is a claim, not a reason to act: the decoys cost
//! nothing, and the helper is contained.

use super::{Attack, CONTAIN, assert_remediated, can_attack, strings};

/// Catalog names (agent/src/judge/catalog.json): login-item names and a
/// bundle id, as labels.
const DECOY_LABELS: [&str; 12] = [
    "ZoomOpener",
    "us.zoom.ZoomOpener",
    "RingCentralOpener",
    "us.zoom.RingCentralOpener",
    "TelusMeetingsOpener",
    "BTCloudPhoneMeetingsOpener",
    "OfficeSuiteHDMeetingOpener",
    "ATTVideoMeetingsOpener",
    "BizConfOpener",
    "HuihuiOpener",
    "UMeetingOpener",
    "ZhumuOpener",
];

#[test]
fn decoy_plists_with_catalog_labels_do_not_spend_the_remediation_budget() {
    if !can_attack("budget") {
        return;
    }
    let mut a = Attack::setup();
    for (i, label) in DECOY_LABELS.iter().enumerate() {
        let missing = a.home.join(format!("Library/Helpers/decoy-{i:02}/helper"));
        a.plist(
            &format!("a{i:02}.{label}.plist"),
            label,
            &[
                ("ProgramArguments", strings(&[missing.to_str().unwrap()])),
                ("RunAtLoad", true.into()),
            ],
        );
    }
    a.start_launchd();
    let mut d = a.start_daemon(&[("MaxRemediationsPerHour", 3.into())]);
    // The decoys have had their chance to spend the budget.
    d.wait_sweeps(3);

    // Now the real helper: installed, and started the way launchd starts
    // a new agent at its owner's next login.
    let exe = a.install(super::ROGUE.as_ref(), ".sync-agent/syncd");
    let port = a.port_file("sync");
    let label = "zz.eve.sync";
    let plist = a.agent(
        label,
        &[
            exe.to_str().unwrap(),
            "--cors",
            "star",
            "--image",
            "--port-file",
            port.to_str().unwrap(),
        ],
    );
    super::chown_tree(&a.home, super::EVE);
    let gui = format!("gui/{}", super::EVE);
    let out = a
        .standin()
        .launchctl(&["bootstrap", &gui, plist.to_str().unwrap()]);
    assert_eq!(out.code, 0, "bootstrap: {out:?}");
    let (pid, _) = a.wait_job(label, "sync");

    assert_remediated(&a, &d, &[&exe], CONTAIN);
    a.assert_contained(&d, label, pid, &exe, &[&exe, &plist]);

    // No decoy cost an action: no plan, no quarantine record names one.
    let journal = a.journal();
    for entry in &journal {
        let text = entry.to_string();
        assert!(
            !text.contains("Library/Helpers/decoy-") && !text.contains("/LaunchAgents/a"),
            "a plan acted on a decoy: {entry:#}"
        );
    }
    for record in a.quarantine_list() {
        for item in record["items"].as_array().into_iter().flatten() {
            let original = item["original"].as_str().unwrap_or_default();
            assert!(
                !original.contains("/LaunchAgents/a"),
                "decoy quarantined: {record:#}"
            );
        }
    }
    // The breaker stayed closed — or, if it opened, said why.
    let events = a.events();
    for e in events.iter().filter(|e| {
        e["kind"] == "agent_health"
            && e["payload"]["status"] == "circuit_breaker"
            && e["payload"]["state"] == "open"
    }) {
        let reason = e["payload"]["reason"].as_str().unwrap_or_default();
        assert!(
            !reason.is_empty() && e["payload"]["severity"] == "critical",
            "the breaker opened without a critical event saying why: {e:#}"
        );
    }
}
