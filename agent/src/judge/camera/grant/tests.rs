//! Grants judged on their own: no helper runs, yet the grant's client is
//! the catalog's, or a program no installed app accounts for, or gone.

use crate::config::RuleAction;
use crate::judge::testkit::*;
use crate::model::{Finding, FindingKind, Severity, TccAuth, TccClientType, TccService, Verdict};

fn the_grant(findings: &[Finding]) -> &Finding {
    let grants: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.kind == FindingKind::CameraGrant)
        .collect();
    assert_eq!(grants.len(), 1, "{findings:#?}");
    grants[0]
}

fn judged(service: TccService, client: &str, ty: TccClientType, exists: Option<bool>) -> Finding {
    let mut seen = grant_seen(tcc_grant(service, client, ty, TccAuth::Allowed), false);
    seen.client_exists = exists;
    let findings = Scene::new().grant(seen).judge(&policy());
    the_grant(&findings).clone()
}

#[test]
fn the_catalog_helper_between_runs_keeps_no_clean_record() {
    // The catalog's own bundle id, nothing running: critical for the camera,
    // high for Full Disk Access (grave, but not the spying this is about).
    for (service, severity) in [
        (TccService::Camera, Severity::Critical),
        (TccService::Microphone, Severity::Critical),
        (TccService::AllFiles, Severity::High),
    ] {
        let f = judged(service, "us.zoom.ZoomOpener", TccClientType::BundleId, None);
        assert_eq!(f.verdict, Verdict::Report, "{}", said(&f));
        assert_eq!(f.severity, severity, "{service:?}: {}", said(&f));
        assert_eq!(f.rule.as_deref(), Some("catalog:zoomopener"));
        assert!(said(&f).contains("running or not"), "{}", said(&f));
    }
    // Its program by path, in its hidden folder.
    let f = judged(
        TccService::Camera,
        &home(".zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener"),
        TccClientType::Path,
        Some(true),
    );
    assert_eq!(f.verdict, Verdict::Report, "{}", said(&f));
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.rule.as_deref(), Some("catalog:zoomopener"));
}

#[test]
fn a_path_client_in_a_hidden_or_temporary_folder_is_reported_high() {
    for (client, why) in [
        (home(".acmeopener/AcmeOpener"), "hidden folder .acmeopener"),
        ("/private/tmp/cam-helper".to_string(), "tmp"),
    ] {
        let f = judged(TccService::Camera, &client, TccClientType::Path, Some(true));
        assert_eq!(f.verdict, Verdict::Report, "{client}: {}", said(&f));
        assert_eq!(f.severity, Severity::High, "{client}");
        assert_eq!(f.rule, None);
        assert!(said(&f).contains(why), "{client}: {}", said(&f));
        assert!(
            said(&f).contains("no installed app accounts for"),
            "{}",
            said(&f)
        );
    }
}

#[test]
fn a_path_client_whose_program_is_gone_is_reported_high() {
    let f = judged(
        TccService::Microphone,
        "/Applications/Gone.app/Contents/MacOS/Gone",
        TccClientType::Path,
        Some(false),
    );
    assert_eq!(f.verdict, Verdict::Report, "{}", said(&f));
    assert_eq!(f.severity, Severity::High);
    assert!(said(&f).contains("is gone"), "{}", said(&f));
}

#[test]
fn ordinary_clients_stay_allowed() {
    // A bundle id nobody lists, an app installed in /Applications, a
    // program a package manager put in its prefix.
    for (client, ty, exists) in [
        ("com.example.Meetings", TccClientType::BundleId, None),
        (
            "/Applications/Meet.app/Contents/MacOS/Meet",
            TccClientType::Path,
            Some(true),
        ),
        ("/opt/homebrew/bin/ffmpeg", TccClientType::Path, Some(true)),
    ] {
        let f = judged(TccService::Camera, client, ty, exists);
        assert_eq!(f.verdict, Verdict::Allow, "{client}: {}", said(&f));
        assert_eq!(f.severity, Severity::Info, "{client}");
    }
}

#[test]
fn a_denied_grant_is_no_concern_whoever_holds_it() {
    let seen = grant_seen(
        tcc_grant(
            TccService::Camera,
            &home(".acmeopener/AcmeOpener"),
            TccClientType::Path,
            TccAuth::Denied,
        ),
        false,
    );
    let findings = Scene::new().grant(seen).judge(&policy());
    assert_eq!(the_grant(&findings).verdict, Verdict::Allow);
}

#[test]
fn an_allow_rule_covers_a_client_judged_on_its_own() {
    let mut allow = rule("acme-ok", RuleAction::Allow);
    allow.path = Some(home(".acmeopener/**"));
    let seen = grant_seen(
        tcc_grant(
            TccService::Camera,
            &home(".acmeopener/AcmeOpener"),
            TccClientType::Path,
            TccAuth::Allowed,
        ),
        false,
    );
    let findings = Scene::new().grant(seen).judge(&policy_with(vec![allow]));
    let f = the_grant(&findings);
    assert_eq!(f.verdict, Verdict::Allow, "{}", said(f));
    assert_eq!(f.rule.as_deref(), Some("rule:acme-ok"));
    assert!(
        said(f).contains("hidden folder"),
        "the concern is still said: {}",
        said(f)
    );
}
