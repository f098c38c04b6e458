//! Scenario tests of the actor rule and of names as claims (issue 9): a
//! user who writes plists cannot get root's program, root's process or
//! another user's turned into lenscap's target, and a known-bad name by
//! itself is reported as an impersonation, never acted on.

use super::testkit::*;
use crate::act::plan::{PlanOptions, plans};
use crate::model::{Severity, Verdict};

const ROOTD: &str = "/usr/local/libexec/rootd";

/// Eve (uid 501 in the testkit) writes `~/Library/LaunchAgents/ZoomOpener.plist`
/// naming root's daemon, which runs as root and serves HTTP.
fn confused_deputy() -> Scene {
    let mut root = process(700, 1, ROOTD, "rootd");
    root.uid = 0;
    let plist = home("Library/LaunchAgents/ZoomOpener.plist");
    let mut scene = Scene::new()
        .process(root)
        .listen(loopback(8700, &[700]), Some(http("")))
        .item(launch_agent(&plist, "ZoomOpener", ROOTD))
        .exists(ROOTD);
    scene.obs.path_owners.insert(ROOTD.into(), 0);
    scene.obs.path_owners.insert(plist.into(), 501);
    scene
}

#[test]
fn a_users_catalog_labelled_plist_naming_roots_program_is_reported_never_acted_on() {
    let findings = confused_deputy().judge(&policy());
    let item = of_item(&findings, "ZoomOpener");
    assert_eq!(item.verdict, Verdict::Report, "{}", said(item));
    assert_eq!(item.severity, Severity::Critical, "{}", said(item));
    assert!(
        said(item).contains("impersonates a known-bad helper"),
        "{}",
        said(item)
    );
    // Root's listener is not this user's helper: the plist could not have
    // started a process that runs as root.
    let l = on_port(&findings, 8700);
    assert_ne!(l.verdict, Verdict::Remediate, "{}", said(l));
    assert!(!said(l).contains("started by LaunchAgent"), "{}", said(l));
    assert!(plans(&findings, &PlanOptions::default()).is_empty());
}

#[test]
fn an_admin_deny_rule_cannot_be_aimed_at_roots_program_through_a_users_plist() {
    // Even where something wants to remediate (a deny rule on the label),
    // the user's plist names what the user does not own: critical report.
    let mut deny = rule("rule:deny-zoom", crate::model::RuleAction::Deny);
    deny.label = Some("ZoomOpener".into());
    let policy = policy_with(vec![deny]);
    let findings = confused_deputy().judge(&policy);
    let item = of_item(&findings, "ZoomOpener");
    assert_eq!(item.verdict, Verdict::Report, "{}", said(item));
    assert_eq!(item.severity, Severity::Critical);
    assert!(
        said(item).contains("names a program it does not own"),
        "{}",
        said(item)
    );
    assert!(plans(&findings, &PlanOptions::default()).is_empty());
}

#[test]
fn a_user_running_roots_binary_from_a_hidden_folder_does_not_get_it_moved() {
    // Eve starts root's world-executable binary in a hidden folder from a
    // launchd-less parent: all four criteria hold, but the file is root's.
    let exe = "/opt/vendor/.hidden/rootd";
    let p = process(710, 1, exe, "rootd");
    let mut scene = Scene::new()
        .process(p)
        .listen(loopback(8710, &[710]), Some(http("")))
        .exists(exe);
    scene.obs.path_owners.insert(exe.into(), 0);
    let findings = scene.judge(&policy());
    let l = on_port(&findings, 8710);
    assert_eq!(l.verdict, Verdict::Report, "{}", said(l));
    assert_eq!(l.severity, Severity::Critical);
    assert!(said(l).contains("belongs to root"), "{}", said(l));
}

#[test]
fn the_users_own_hidden_helper_is_still_remediated() {
    let exe = home(".acme/acme-helper");
    let plist = home("Library/LaunchAgents/com.acme.helper.plist");
    let mut scene = Scene::new()
        .process(process(720, 1, &exe, "acme-helper"))
        .listen(loopback(8720, &[720]), Some(http("")))
        .item(launch_agent(&plist, "com.acme.helper", &exe))
        .exists(&exe);
    scene.obs.path_owners.insert(exe.clone().into(), 501);
    scene.obs.path_owners.insert(plist.into(), 501);
    let findings = scene.judge(&policy());
    assert_eq!(on_port(&findings, 8720).verdict, Verdict::Remediate);
    assert_eq!(
        of_item(&findings, "com.acme.helper").verdict,
        Verdict::Remediate
    );
    assert_eq!(plans(&findings, &PlanOptions::default()).len(), 1);
}

#[test]
fn decoy_plists_with_catalog_labels_and_no_program_plan_nothing() {
    let mut scene = Scene::new();
    for n in 0..12 {
        let plist = home(&format!("Library/LaunchAgents/decoy{n}.plist"));
        scene = scene.item(launch_agent(
            &plist,
            "us.zoom.ZoomOpener",
            &home(&format!("nowhere/{n}")),
        ));
    }
    let findings = scene.judge(&policy());
    assert_eq!(findings.len(), 12);
    for f in &findings {
        assert_eq!(f.verdict, Verdict::Report, "{}", said(f));
        assert_eq!(f.severity, Severity::Critical);
    }
    assert!(plans(&findings, &PlanOptions::default()).is_empty());
}

#[test]
fn a_fleet_catalog_entry_by_process_name_is_an_impersonation_report() {
    let mut entry = policy().catalog().entries[0].clone();
    entry.id = "catalog:vendor-opener".into();
    entry.name = "Vendor opener".into();
    entry.hidden_dirs = vec![];
    entry.bundle_names = vec![];
    entry.process_names = vec!["vendoropener".into()];
    entry.login_item_names = vec![];
    entry.ports = vec![];
    entry.parent_bundle_ids = vec![];
    entry.bundle_ids = vec![];
    let policy = policy().with_catalog_additions(vec![entry]).unwrap();
    let exe = "/Applications/Vendor.app/Contents/MacOS/vendoropener";
    let findings = Scene::new()
        .process(process(770, 500, exe, "vendoropener"))
        .listen(loopback(28091, &[770]), Some(http("")))
        .exists(exe)
        .installed("com.vendor")
        .judge(&policy);
    let f = on_port(&findings, 28091);
    assert_eq!(f.verdict, Verdict::Report, "{}", said(f));
    assert_eq!(
        f.rule.as_deref(),
        Some("catalog:vendor-opener"),
        "{}",
        said(f)
    );
    assert_eq!(f.severity, Severity::Critical, "{}", said(f));
}
