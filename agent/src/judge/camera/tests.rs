//! Camera scenarios (Zoom's helper on 127.0.0.1:19421 and the cameras,
//! grants and connections around it) and properties: one finding per grant
//! and per session, never remediate for a protected process, same input →
//! same output whatever the input order.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::same_listener;
use crate::judge::testkit::*;
use crate::judge::{CameraSessionObservation, ConnectionSeen, GrantObservation};
use crate::model::RuleAction;
use crate::model::{Finding, FindingKind, ProcessIdentity, Severity, Verdict};
use crate::model::{TccAuth, TccClientType, TccReason, TccService};

const HELPER_PID: u32 = 601;

/// Zoom 2019: the login item "ZoomOpener" and its listener on
/// 127.0.0.1:19421 answering with images. The catalog remediates it.
fn zoom_2019() -> Scene {
    Scene::new()
        .process(zoom_opener_process(HELPER_PID, 1))
        .listen(loopback(19421, &[HELPER_PID]), Some(zoom_image_probe()))
        .item(zoom_login_item(HOME))
        .exists(&zoom_opener_exe(HOME))
}

/// The Zoom client a web page gets launched: a signed, ordinary app.
fn zoom_client(pid: u32) -> ProcessIdentity {
    signed(
        process(
            pid,
            1,
            "/Applications/zoom.us.app/Contents/MacOS/zoom.us",
            "zoom.us",
        ),
        ZOOM_TEAM,
        "us.zoom.xos",
    )
}

fn only(findings: &[Finding], kind: FindingKind) -> &Finding {
    let all = of_kind(findings, kind);
    assert_eq!(all.len(), 1, "one {kind:?} finding: {findings:#?}");
    all[0]
}

fn the_use(findings: &[Finding]) -> &Finding {
    only(findings, FindingKind::CameraUse)
}

fn the_grant(findings: &[Finding]) -> &Finding {
    only(findings, FindingKind::CameraGrant)
}

fn assert_helper_is_flagged(findings: &[Finding]) {
    let l = on_port(findings, 19421);
    assert_eq!(l.verdict, Verdict::Remediate, "{}", said(l));
}

// ----- camera sessions -----

#[test]
fn the_helper_itself_using_the_camera_is_remediated_critical_with_its_rule() {
    let findings = zoom_2019()
        .camera(camera_session(HELPER_PID, 0))
        .judge(&policy());
    assert_helper_is_flagged(&findings);
    let f = the_use(&findings);
    assert_eq!(f.verdict, Verdict::Remediate, "{}", said(f));
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.rule.as_deref(), Some("catalog:zoomopener"));
    assert_eq!(f.process.as_ref().map(|p| p.pid), Some(HELPER_PID));
    let text = said(f);
    for want in [
        "pid 601",
        "/Users/ann/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener",
        "127.0.0.1:19421",
        "itself",
        "process tree is terminated",
    ] {
        assert!(text.contains(want), "missing {want:?} in {text}");
    }
    let c = f.camera.as_ref().expect("camera part");
    assert_eq!(c.service, "camera");
    assert_eq!(c.auth, "in_use");
    assert_eq!(c.client, zoom_opener_exe(HOME));
    assert_eq!(c.since.as_deref(), Some("2019-07-10T00:00:00Z"));
    assert_eq!(c.incident, None, "no connection was seen");
    // A camera finding sorts after the helper's own findings of its verdict.
    assert_eq!(findings[0].kind, FindingKind::Listener);
    assert_eq!(findings[2].kind, FindingKind::CameraUse);
}

#[test]
fn a_descendant_of_the_helper_is_contained_with_it() {
    let child = process(
        602,
        HELPER_PID,
        &home(".zoomus/ZoomOpener.app/Contents/Helpers/capture"),
        "capture",
    );
    let grandchild = process(603, 602, "/tmp/zc/recorder", "recorder");
    for pid in [602, 603] {
        let findings = zoom_2019()
            .process(child.clone())
            .process(grandchild.clone())
            .camera(camera_session(pid, 0))
            .judge(&policy());
        let f = the_use(&findings);
        assert_eq!(f.verdict, Verdict::Remediate, "pid {pid}: {}", said(f));
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(f.rule.as_deref(), Some("catalog:zoomopener"));
        assert!(
            said(f).contains("its ancestor ZoomOpener (pid 601)"),
            "{}",
            said(f)
        );
    }
}

#[test]
fn another_copy_of_the_helper_program_is_tied_by_its_executable() {
    // Same program, not in the helper's tree (started by launchd).
    let copy = zoom_opener_process(650, 1);
    let findings = zoom_2019()
        .process(copy)
        .camera(camera_session(650, 0))
        .judge(&policy());
    let f = the_use(&findings);
    assert_eq!(f.verdict, Verdict::Remediate, "{}", said(f));
    assert!(said(f).contains("the program of the flagged helper ZoomOpener"));
}

#[test]
fn an_unrelated_apple_app_using_the_camera_is_allowed() {
    let findings = zoom_2019()
        .process(facetime_process(700))
        .camera(camera_session(700, 0))
        .judge(&policy());
    let f = the_use(&findings);
    assert_eq!(f.verdict, Verdict::Allow, "{}", said(f));
    assert_eq!(f.severity, Severity::Info);
    assert_eq!(f.rule, None);
    assert_eq!(f.reasons.len(), 1, "{:?}", f.reasons);
    assert!(
        f.reasons[0].starts_with(
            "camera in use by /System/Applications/FaceTime.app/Contents/MacOS/FaceTime (pid \
             700) since 2019-07-10T00:00:00Z"
        ),
        "{}",
        f.reasons[0]
    );
    // With no helper flagged at all, the same.
    let findings = Scene::new()
        .process(facetime_process(700))
        .camera(camera_session(700, 0))
        .judge(&policy());
    assert_eq!(the_use(&findings).verdict, Verdict::Allow);
}

#[test]
fn the_session_client_is_bundle_id_then_path_then_name_then_unknown() {
    let mut nameless = process(705, 1, "/x", "camd");
    nameless.path = None;
    let cases: Vec<(Option<ProcessIdentity>, CameraSessionObservation, &str)> = vec![
        (
            Some(facetime_process(700)),
            CameraSessionObservation {
                bundle_id: Some("com.apple.FaceTime".into()),
                ..camera_session(700, 0)
            },
            "com.apple.FaceTime",
        ),
        (
            Some(facetime_process(700)),
            camera_session(700, 0),
            "/System/Applications/FaceTime.app/Contents/MacOS/FaceTime",
        ),
        (Some(nameless), camera_session(705, 0), "camd"),
        (None, camera_session(4242, 0), "unknown"),
    ];
    let unseen = Scene::new()
        .camera(camera_session(4242, 0))
        .judge(&policy());
    assert_eq!(
        the_use(&unseen).camera.as_ref().and_then(|c| c.pid),
        Some(4242)
    );
    assert!(the_use(&unseen).process.is_none());
    for (p, session, want) in cases {
        let mut scene = Scene::new().camera(session);
        if let Some(p) = p {
            scene = scene.process(p);
        }
        let findings = scene.judge(&policy());
        let f = the_use(&findings);
        assert_eq!(f.camera.as_ref().map(|c| c.client.as_str()), Some(want));
    }
}

#[test]
fn a_protected_process_in_the_helper_tree_is_reported_critical_never_remediated() {
    let cases: Vec<(&str, ProcessIdentity, &str)> = vec![
        (
            "Apple platform binary started by the helper",
            apple(
                process(
                    610,
                    HELPER_PID,
                    "/usr/libexec/avconferenced",
                    "avconferenced",
                ),
                "com.apple.avconferenced",
            ),
            "Apple platform binary",
        ),
        (
            "unsigned file under /System started by the helper",
            process(611, HELPER_PID, "/System/Library/Private/cam", "cam"),
            "/System",
        ),
        (
            "the agent (as if the helper had started it)",
            process(AGENT_PID, HELPER_PID, AGENT_EXE, "lenscap"),
            "lenscap itself",
        ),
        (
            "launchd running the helper's program",
            process(1, 0, &zoom_opener_exe(HOME), "launchd"),
            "launchd (pid 1)",
        ),
    ];
    for (what, p, why) in cases {
        let pid = p.pid;
        let findings = zoom_2019()
            .process(p)
            .camera(camera_session(pid, 0))
            .judge(&policy());
        assert_helper_is_flagged(&findings);
        let f = the_use(&findings);
        assert_eq!(f.verdict, Verdict::Report, "{what}: {}", said(f));
        assert_eq!(f.severity, Severity::Critical, "{what}");
        assert_eq!(f.rule.as_deref(), Some("catalog:zoomopener"), "{what}");
        let text = said(f);
        assert!(
            text.contains("lenscap never acts on it") && text.contains(why),
            "{what}: {text}"
        );
    }
}

#[test]
fn a_session_naming_only_the_helper_bundle_id_is_reported_not_remediated() {
    let session = CameraSessionObservation {
        pid: None,
        bundle_id: Some("us.zoom.ZoomOpener".into()),
        device: None,
        since_unix_us: CAMERA_T0_US,
    };
    let findings = zoom_2019().camera(session).judge(&policy());
    let f = the_use(&findings);
    assert_eq!(f.verdict, Verdict::Report, "{}", said(f));
    assert_eq!(f.severity, Severity::Critical);
    assert!(f.process.is_none());
    assert!(said(f).contains("nothing to act on"), "{}", said(f));
}

#[test]
fn an_allow_rule_on_the_camera_user_does_not_lower_the_verdict() {
    let mut allow = rule("zoom-ok", RuleAction::Allow);
    allow.path = Some("/Applications/zoom.us.app/**".into());
    let mut allow_child = rule("capture-ok", RuleAction::Allow);
    allow_child.path = Some("/Users/*/.zoomus/**/capture".into());
    let child = process(
        602,
        HELPER_PID,
        &home(".zoomus/ZoomOpener.app/Contents/Helpers/capture"),
        "capture",
    );
    let findings = zoom_2019()
        .process(child)
        .process(zoom_client(800))
        .camera(camera_session(602, 0))
        .camera(camera_session(800, 3))
        .connection(connection_seen("127.0.0.1", 19421, 0))
        .judge(&policy_with(vec![allow, allow_child]));
    let uses = of_kind(&findings, FindingKind::CameraUse);
    let by_pid = |pid: u32| {
        uses.iter()
            .find(|f| f.process.as_ref().is_some_and(|p| p.pid == pid))
            .copied()
            .unwrap_or_else(|| panic!("no session of pid {pid}"))
    };
    assert_eq!(by_pid(602).verdict, Verdict::Remediate);
    assert_eq!(by_pid(800).verdict, Verdict::Report);
    assert_eq!(by_pid(800).severity, Severity::Critical);
}

// ----- the Zoom incident: connection, then camera -----

#[test]
fn camera_three_seconds_after_a_connection_to_the_helper_is_a_critical_incident() {
    let findings = zoom_2019()
        .process(zoom_client(800))
        .connection(connection_seen("127.0.0.1", 19421, 0))
        .camera(camera_session(800, 3))
        .judge(&policy());
    let f = the_use(&findings);
    assert_eq!(f.verdict, Verdict::Report, "{}", said(f));
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.rule.as_deref(), Some("catalog:zoomopener"));
    let i = f
        .camera
        .as_ref()
        .and_then(|c| c.incident.as_ref())
        .expect("incident");
    assert_eq!(i.helper.port, 19421);
    assert_eq!(i.helper.address.to_string(), "127.0.0.1");
    assert_eq!(i.helper_pid, Some(HELPER_PID));
    assert_eq!(i.helper_rule.as_deref(), Some("catalog:zoomopener"));
    assert_eq!(i.connection_at, "2019-07-10T00:00:00Z");
    assert_eq!(i.seconds_before, 3);
    let text = said(f);
    for want in [
        "a camera turned on 3 s after something connected to the flagged helper ZoomOpener",
        "pid 601",
        "on 127.0.0.1:19421",
        "/Applications/zoom.us.app/Contents/MacOS/zoom.us (pid 800)",
    ] {
        assert!(text.contains(want), "missing {want:?} in {text}");
    }
}

#[test]
fn the_correlation_window_is_inclusive_and_bounded() {
    let scene = |camera_at: u64| {
        zoom_2019()
            .process(zoom_client(800))
            .connection(connection_seen("127.0.0.1", 19421, 0))
            .camera(camera_session(800, camera_at))
    };
    let mut window10 = policy();
    window10.camera_correlation_seconds = 10;
    let at10 = scene(10).judge(&window10);
    assert_eq!(
        the_use(&at10)
            .camera
            .as_ref()
            .and_then(|c| c.incident.as_ref())
            .map(|i| i.seconds_before),
        Some(10)
    );
    let at11 = scene(11).judge(&window10);
    let f = the_use(&at11);
    assert_eq!(f.verdict, Verdict::Allow, "{}", said(f));
    assert_eq!(f.camera.as_ref().and_then(|c| c.incident.as_ref()), None);

    let mut off = policy();
    off.camera_correlation_seconds = 0;
    let at0 = scene(0).judge(&off);
    assert_eq!(the_use(&at0).verdict, Verdict::Allow, "0 turns it off");
    let at0 = scene(0).judge(&window10);
    assert_eq!(
        the_use(&at0).verdict,
        Verdict::Report,
        "same instant counts"
    );
}

#[test]
fn a_connection_after_the_camera_started_does_not_count() {
    let findings = zoom_2019()
        .process(zoom_client(800))
        .camera(camera_session(800, 2))
        .connection(connection_seen("127.0.0.1", 19421, 3))
        .judge(&policy());
    let f = the_use(&findings);
    assert_eq!(f.verdict, Verdict::Allow, "{}", said(f));
    assert!(f.camera.as_ref().is_some_and(|c| c.incident.is_none()));
}

#[test]
fn the_latest_qualifying_connection_is_the_incident() {
    let findings = zoom_2019()
        .process(zoom_client(800))
        .connection(connection_seen("127.0.0.1", 19421, 0))
        .connection(connection_seen("127.0.0.1", 19421, 6))
        .connection(connection_seen("127.0.0.1", 19421, 2))
        .connection(connection_seen("127.0.0.1", 19421, 9))
        .camera(camera_session(800, 7))
        .judge(&policy());
    let i = the_use(&findings)
        .camera
        .as_ref()
        .and_then(|c| c.incident.clone())
        .expect("incident");
    assert_eq!(i.seconds_before, 1);
    assert_eq!(i.connection_at, "2019-07-10T00:00:06Z");
}

#[test]
fn connections_elsewhere_are_not_the_helper() {
    let cases = [
        ("another port", "127.0.0.1", 8080, false),
        ("another address, same port", "192.168.1.2", 19421, false),
        ("IPv6 loopback, helper bound to IPv4", "::1", 19421, false),
        ("mapped loopback", "::ffff:127.0.0.1", 19421, true),
        ("sampler only saw the wildcard", "0.0.0.0", 19421, true),
    ];
    for (what, addr, port, want) in cases {
        let findings = zoom_2019()
            .process(zoom_client(800))
            .connection(connection_seen(addr, port, 0))
            .camera(camera_session(800, 1))
            .judge(&policy());
        let f = the_use(&findings);
        let got = f.camera.as_ref().is_some_and(|c| c.incident.is_some());
        assert_eq!(got, want, "{what}: {}", said(f));
    }
}

#[test]
fn a_wildcard_helper_takes_connections_on_any_address() {
    let findings = Scene::new()
        .process(zoom_opener_process(HELPER_PID, 1))
        .listen(wildcard(19421, &[HELPER_PID]), Some(zoom_image_probe()))
        .item(zoom_login_item(HOME))
        .process(zoom_client(800))
        .connection(connection_seen("127.0.0.1", 19421, 0))
        .camera(camera_session(800, 4))
        .judge(&policy());
    let f = the_use(&findings);
    let i = f
        .camera
        .as_ref()
        .and_then(|c| c.incident.as_ref())
        .expect("incident");
    assert_eq!(i.helper.address.to_string(), "0.0.0.0");
    assert!(said(f).contains("on 127.0.0.1:19421"), "{}", said(f));
}

#[test]
fn a_connection_to_an_allowed_listener_is_no_incident() {
    // nginx from Homebrew: reported at most, never flagged.
    let findings = Scene::new()
        .process(brew_nginx_process(900))
        .listen(wildcard(8080, &[900]), Some(http("nginx")))
        .item(brew_nginx_agent())
        .process(zoom_client(800))
        .connection(connection_seen("127.0.0.1", 8080, 0))
        .camera(camera_session(800, 1))
        .judge(&policy());
    assert_ne!(on_port(&findings, 8080).verdict, Verdict::Remediate);
    assert_eq!(the_use(&findings).verdict, Verdict::Allow);
}

#[test]
fn a_tied_session_also_carries_the_incident() {
    let findings = zoom_2019()
        .connection(connection_seen("127.0.0.1", 19421, 0))
        .camera(camera_session(HELPER_PID, 2))
        .judge(&policy());
    let f = the_use(&findings);
    assert_eq!(f.verdict, Verdict::Remediate);
    assert_eq!(
        f.camera
            .as_ref()
            .and_then(|c| c.incident.as_ref())
            .map(|i| i.seconds_before),
        Some(2)
    );
}

#[test]
fn listener_address_matching() {
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    let table = [
        ("127.0.0.1", "127.0.0.1", true),
        ("127.0.0.1", "::ffff:127.0.0.1", true),
        ("::ffff:127.0.0.1", "127.0.0.1", true),
        ("0.0.0.0", "127.0.0.1", true),
        ("0.0.0.0", "192.168.1.2", true),
        ("0.0.0.0", "::1", false),
        ("::", "::1", true),
        ("::", "127.0.0.1", true),
        ("127.0.0.1", "::1", false),
        ("127.0.0.1", "127.0.0.2", false),
        ("::1", "::", true),
    ];
    for (bound, seen, want) in table {
        assert_eq!(same_listener(ip(bound), ip(seen)), want, "{bound} ← {seen}");
    }
}

// ----- grants -----

#[test]
fn a_new_grant_is_reported_medium() {
    let findings = Scene::new()
        .grant(camera_grant("com.example.cam", true))
        .judge(&policy());
    let f = the_grant(&findings);
    assert_eq!(f.verdict, Verdict::Report, "{}", said(f));
    assert_eq!(f.severity, Severity::Medium);
    assert_eq!(f.rule, None);
    assert!(f.process.is_none());
    let text = said(f);
    assert!(
        text.contains(
            "new since lenscap last read /Users/ann/Library/Application \
             Support/com.apple.TCC/TCC.db"
        ),
        "{text}"
    );
    let c = f.camera.as_ref().expect("camera part");
    assert_eq!(c.service, "camera");
    assert_eq!(c.client, "com.example.cam");
    assert_eq!(c.auth, "allowed");
    assert_eq!(c.client_type.as_deref(), Some("bundle_id"));
    assert_eq!(c.reason.as_deref(), Some("user_consent"));
    assert_eq!(c.since.as_deref(), Some("2019-07-10T00:00:00Z"));
    assert_eq!(c.database.as_deref(), Some(user_tcc_db().as_path()));

    // The same grant already seen: allowed, one plain line.
    let findings = Scene::new()
        .grant(camera_grant("com.example.cam", false))
        .judge(&policy());
    let f = the_grant(&findings);
    assert_eq!(f.verdict, Verdict::Allow);
    assert_eq!(f.severity, Severity::Info);
    assert_eq!(
        f.reasons,
        vec![
            "com.example.cam may use the camera (user consent, since 2019-07-10T00:00:00Z)"
                .to_string()
        ]
    );
}

#[test]
fn a_grant_held_by_the_flagged_helper_is_critical() {
    let exe = zoom_opener_exe(HOME);
    let inside = home(".zoomus/ZoomOpener.app/Contents/Helpers/capture");
    let cases = [
        (
            "the signing identifier us.zoom.ZoomOpener of",
            TccService::Camera,
            "us.zoom.ZoomOpener",
            TccClientType::BundleId,
            Severity::Critical,
        ),
        (
            "the program /Users/ann/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener of",
            TccService::Microphone,
            exe.as_str(),
            TccClientType::Path,
            Severity::Critical,
        ),
        (
            "inside the bundle /Users/ann/.zoomus/ZoomOpener.app of",
            TccService::ScreenCapture,
            inside.as_str(),
            TccClientType::Path,
            Severity::Critical,
        ),
        (
            "the program /Users/ann/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener of",
            TccService::AllFiles,
            exe.as_str(),
            TccClientType::Path,
            Severity::High,
        ),
    ];
    for (how, service, client, ty, severity) in cases {
        let findings = zoom_2019()
            .grant(grant_seen(
                tcc_grant(service, client, ty, TccAuth::Allowed),
                false,
            ))
            .judge(&policy());
        let f = the_grant(&findings);
        assert_eq!(f.verdict, Verdict::Report, "{how}: {}", said(f));
        assert_eq!(f.severity, severity, "{how} {service:?}");
        assert_eq!(f.rule.as_deref(), Some("catalog:zoomopener"));
        let text = said(f);
        assert!(
            text.contains(how) && text.contains("the flagged helper ZoomOpener (pid 601"),
            "{text}"
        );
    }
    // A path that merely shares a prefix is not inside the bundle: not the
    // running helper's grant — though judged on its own, the hidden
    // `.zoomus` folder is the catalog's, so it is reported all the same.
    let findings = zoom_2019()
        .grant(grant_seen(
            tcc_grant(
                TccService::Camera,
                &home(".zoomus/ZoomOpener.appx/cam"),
                TccClientType::Path,
                TccAuth::Allowed,
            ),
            false,
        ))
        .judge(&policy());
    let f = the_grant(&findings);
    assert!(!said(f).contains("the flagged helper"), "{}", said(f));
    assert_eq!(f.verdict, Verdict::Report, "{}", said(f));
}

#[test]
fn the_helper_login_item_bundle_ids_name_its_grants() {
    let mut item = zoom_login_item(HOME);
    item.parent_identifier = Some("2.us.zoom.xos".into());
    let findings = Scene::new()
        .process(zoom_opener_process(HELPER_PID, 1))
        .listen(loopback(19421, &[HELPER_PID]), Some(zoom_image_probe()))
        .item(item)
        .grant(camera_grant("US.ZOOM.XOS", false))
        .judge(&policy());
    let f = the_grant(&findings);
    assert_eq!(f.verdict, Verdict::Report, "{}", said(f));
    assert_eq!(f.severity, Severity::Critical);
    assert!(
        said(f).contains("the associated bundle id us.zoom.xos of the flagged helper"),
        "{}",
        said(f)
    );
}

#[test]
fn denied_grants_are_allowed_even_for_the_helper() {
    for new in [false, true] {
        let findings = zoom_2019()
            .grant(grant_seen(
                tcc_grant(
                    TccService::Camera,
                    "us.zoom.ZoomOpener",
                    TccClientType::BundleId,
                    TccAuth::Denied,
                ),
                new,
            ))
            .judge(&policy());
        let f = the_grant(&findings);
        assert_eq!(f.verdict, Verdict::Allow, "{}", said(f));
        assert_eq!(f.severity, Severity::Info);
        assert_eq!(
            f.reasons,
            vec![
                "us.zoom.ZoomOpener is denied the camera (user consent, since \
                 2019-07-10T00:00:00Z)"
                    .to_string()
            ]
        );
        assert_eq!(f.camera.as_ref().map(|c| c.auth.as_str()), Some("denied"));
    }
}

#[test]
fn an_allow_rule_on_a_new_grant_allows_it_with_the_rule_id() {
    let mut by_bundle = rule("cam-ok", RuleAction::Allow);
    by_bundle.bundle_id = Some("COM.EXAMPLE.CAM".into());
    let findings = Scene::new()
        .grant(camera_grant("com.example.cam", true))
        .judge(&policy_with(vec![by_bundle]));
    let f = the_grant(&findings);
    assert_eq!(f.verdict, Verdict::Allow, "{}", said(f));
    assert_eq!(f.rule.as_deref(), Some("rule:cam-ok"));
    assert!(said(f).contains("admin allow rule rule:cam-ok matches"));

    let mut by_path = rule("tools-ok", RuleAction::Allow);
    by_path.path = Some("/opt/tools/**".into());
    let path_grant = grant_seen(
        tcc_grant(
            TccService::Microphone,
            "/opt/tools/bin/recorder",
            TccClientType::Path,
            TccAuth::Allowed,
        ),
        true,
    );
    let findings = Scene::new()
        .grant(path_grant.clone())
        .judge(&policy_with(vec![by_path.clone()]));
    assert_eq!(the_grant(&findings).rule.as_deref(), Some("rule:tools-ok"));

    // A Team ID cannot be known from a TCC row, so such a rule never
    // matches a grant; nor does a path rule match a bundle-id client.
    let mut by_team = rule("zoom-team", RuleAction::Allow);
    by_team.team_id = Some(ZOOM_TEAM.into());
    let findings = Scene::new()
        .grant(camera_grant("us.zoom.xos", true))
        .judge(&policy_with(vec![by_team, by_path]));
    let f = the_grant(&findings);
    assert_eq!(f.verdict, Verdict::Report, "{}", said(f));
    assert_eq!(f.rule, None);
}

#[test]
fn the_flagged_helper_beats_an_allow_rule_on_its_grant() {
    let mut allow = rule("opener-ok", RuleAction::Allow);
    allow.bundle_id = Some("us.zoom.ZoomOpener".into());
    allow.port = Some(1); // keeps the listener itself unmatched: still flagged
    let findings = zoom_2019()
        .grant(camera_grant("us.zoom.ZoomOpener", true))
        .judge(&policy_with(vec![allow]));
    assert_helper_is_flagged(&findings);
    let f = the_grant(&findings);
    assert_eq!(f.verdict, Verdict::Report);
    assert_eq!(f.severity, Severity::Critical);
    assert!(
        said(f).contains("new since lenscap last read"),
        "{}",
        said(f)
    );
}

#[test]
fn a_deny_rule_on_a_grant_client_reports_it() {
    let mut deny = rule("no-cam-tool", RuleAction::Deny);
    deny.bundle_id = Some("com.example.cam".into());
    let findings = Scene::new()
        .grant(camera_grant("com.example.cam", false))
        .judge(&policy_with(vec![deny]));
    let f = the_grant(&findings);
    assert_eq!(f.verdict, Verdict::Report, "{}", said(f));
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.rule.as_deref(), Some("rule:no-cam-tool"));
}

#[test]
fn grant_words_for_every_service_auth_and_reason() {
    let mut g = tcc_grant(
        TccService::AllFiles,
        "/usr/local/bin/backup",
        TccClientType::Path,
        TccAuth::Other(7),
    );
    g.reason = Some(TccReason::Other(99));
    g.last_modified = None;
    let findings = Scene::new().grant(grant_seen(g, true)).judge(&policy());
    let f = the_grant(&findings);
    assert_eq!(
        f.verdict,
        Verdict::Allow,
        "unknown decisions give no access"
    );
    let c = f.camera.as_ref().expect("camera part");
    assert_eq!(
        (
            c.service.as_str(),
            c.auth.as_str(),
            c.reason.as_deref(),
            c.since.as_deref()
        ),
        ("all_files", "other:7", Some("other:99"), None)
    );
    assert_eq!(
        f.reasons,
        vec![
            "/usr/local/bin/backup has an unrecognised decision (7) for all files (Full Disk \
             Access) (reason 99)"
                .to_string()
        ]
    );
    let mut g = tcc_grant(
        TccService::ScreenCapture,
        "com.example.rec",
        TccClientType::Other(5),
        TccAuth::Limited,
    );
    g.reason = Some(TccReason::MdmPolicy);
    let findings = Scene::new().grant(grant_seen(g, true)).judge(&policy());
    let f = the_grant(&findings);
    assert_eq!(f.verdict, Verdict::Report, "limited is access");
    assert_eq!(f.severity, Severity::Medium);
    let c = f.camera.as_ref().expect("camera part");
    assert_eq!(
        (
            c.service.as_str(),
            c.auth.as_str(),
            c.client_type.as_deref()
        ),
        ("screen_capture", "limited", Some("other:5"))
    );
    assert!(
        said(f).contains("com.example.rec may use screen capture, limited (an MDM profile"),
        "{}",
        said(f)
    );
}

// ----- order, determinism, the JSON contract -----

fn busy_camera() -> Scene {
    let mut denied_mic = tcc_grant(
        TccService::Microphone,
        "us.zoom.xos",
        TccClientType::BundleId,
        TccAuth::Denied,
    );
    denied_mic.last_modified = Some(1_600_000_000);
    zoom_2019()
        .process(zoom_client(800))
        .process(facetime_process(700))
        .process(process(
            602,
            HELPER_PID,
            &home(".zoomus/ZoomOpener.app/Contents/Helpers/capture"),
            "capture",
        ))
        .process(brew_nginx_process(900))
        .listen(wildcard(8080, &[900]), Some(http("nginx")))
        .item(brew_nginx_agent())
        .grant(camera_grant("us.zoom.xos", false))
        .grant(camera_grant("us.zoom.ZoomOpener", true))
        .grant(camera_grant("com.example.cam", true))
        .grant(grant_seen(denied_mic, false))
        .grant(GrantObservation {
            database: PathBuf::from("/Library/Application Support/com.apple.TCC/TCC.db"),
            ..camera_grant("us.zoom.xos", false)
        })
        .connection(connection_seen("127.0.0.1", 8080, 1))
        .connection(connection_seen("127.0.0.1", 19421, 0))
        .connection(connection_seen("127.0.0.1", 19421, 2))
        .camera(camera_session(800, 4))
        .camera(camera_session(700, 30))
        .camera(camera_session(602, 5))
        .camera(CameraSessionObservation {
            device: Some(PathBuf::from("/dev/video0")),
            ..camera_session(602, 5)
        })
}

#[test]
fn same_input_same_output_whatever_the_input_order() {
    let scene = busy_camera();
    let policy = policy();
    let expected = scene.judge(&policy);
    assert_eq!(scene.judge(&policy), expected, "same input, same output");
    let mut reversed = scene.clone();
    reversed.obs.listeners.reverse();
    reversed.obs.persistence.reverse();
    reversed.obs.grants.reverse();
    reversed.obs.camera_sessions.reverse();
    reversed.obs.connections.reverse();
    assert_eq!(reversed.judge(&policy), expected);

    let summary: Vec<(Verdict, FindingKind, Option<u32>, String)> = expected
        .iter()
        .filter(|f| f.camera.is_some())
        .map(|f| {
            let c = f.camera.as_ref().expect("camera");
            (
                f.verdict,
                f.kind,
                f.process.as_ref().map(|p| p.pid),
                format!(
                    "{} {} {}",
                    c.service,
                    c.client,
                    c.database
                        .as_deref()
                        .or(c.device.as_deref())
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                ),
            )
        })
        .collect();
    let user_db = user_tcc_db().display().to_string();
    let capture = home(".zoomus/ZoomOpener.app/Contents/Helpers/capture");
    assert_eq!(
        summary,
        vec![
            (
                Verdict::Remediate,
                FindingKind::CameraUse,
                Some(602),
                format!("camera {capture} "),
            ),
            (
                Verdict::Remediate,
                FindingKind::CameraUse,
                Some(602),
                format!("camera {capture} /dev/video0"),
            ),
            (
                Verdict::Report,
                FindingKind::CameraUse,
                Some(800),
                "camera /Applications/zoom.us.app/Contents/MacOS/zoom.us ".into(),
            ),
            (
                Verdict::Report,
                FindingKind::CameraGrant,
                None,
                format!("camera com.example.cam {user_db}"),
            ),
            (
                Verdict::Report,
                FindingKind::CameraGrant,
                None,
                format!("camera us.zoom.ZoomOpener {user_db}"),
            ),
            (
                Verdict::Allow,
                FindingKind::CameraUse,
                Some(700),
                "camera /System/Applications/FaceTime.app/Contents/MacOS/FaceTime ".into(),
            ),
            (
                Verdict::Allow,
                FindingKind::CameraGrant,
                None,
                "camera us.zoom.xos /Library/Application Support/com.apple.TCC/TCC.db".into(),
            ),
            (
                Verdict::Allow,
                FindingKind::CameraGrant,
                None,
                format!("camera us.zoom.xos {user_db}"),
            ),
            (
                Verdict::Allow,
                FindingKind::CameraGrant,
                None,
                format!("microphone us.zoom.xos {user_db}"),
            ),
        ]
    );
    // zoom.us at t+4: the latest connection before it (t+2) to the helper,
    // not the later-numbered one to nginx on 8080 (not flagged).
    let zoom = expected
        .iter()
        .find(|f| f.process.as_ref().is_some_and(|p| p.pid == 800))
        .and_then(|f| f.camera.as_ref())
        .and_then(|c| c.incident.as_ref())
        .expect("incident");
    assert_eq!((zoom.helper.port, zoom.seconds_before), (19421, 2));
}

/// The `camera` object as `lenscap scan --json` prints it. Run with
/// `--nocapture` to see the JSON the docs/scan-json.md example came from.
#[test]
fn camera_findings_serialise_to_the_documented_shape() {
    let findings = zoom_2019()
        .process(zoom_client(800))
        .connection(connection_seen("127.0.0.1", 19421, 0))
        .camera(camera_session(800, 3))
        .grant(camera_grant("us.zoom.ZoomOpener", true))
        .judge(&policy());
    let camera: Vec<&Finding> = findings.iter().filter(|f| f.camera.is_some()).collect();
    // Printed straight from the findings, so fields keep their order.
    println!(
        "{}",
        serde_json::to_string_pretty(&camera).expect("pretty JSON")
    );
    let json = serde_json::to_value(&camera).expect("serialise");
    let use_ = &json[0];
    assert_eq!(use_["kind"], "camera_use");
    assert_eq!(use_["verdict"], "report");
    assert_eq!(use_["severity"], "critical");
    assert_eq!(use_["camera"]["service"], "camera");
    assert_eq!(use_["camera"]["auth"], "in_use");
    assert_eq!(use_["camera"]["since"], "2019-07-10T00:00:03Z");
    assert_eq!(use_["camera"]["incident"]["helper"]["port"], 19421);
    assert_eq!(use_["camera"]["incident"]["helper"]["scope"], "loopback");
    assert_eq!(use_["camera"]["incident"]["helper_pid"], 601);
    assert_eq!(
        use_["camera"]["incident"]["helper_rule"],
        "catalog:zoomopener"
    );
    assert_eq!(
        use_["camera"]["incident"]["connection_at"],
        "2019-07-10T00:00:00Z"
    );
    assert_eq!(use_["camera"]["incident"]["seconds_before"], 3);
    for absent in [
        "client_type",
        "reason",
        "database",
        "device",
        "duration_seconds",
    ] {
        assert!(use_["camera"].get(absent).is_none(), "{absent} omitted");
    }
    assert!(use_.get("listener").is_none() && use_.get("processes").is_none());
    assert_eq!(use_["process"]["pid"], 800);
    assert_eq!(use_["camera"]["pid"], 800);

    let grant = &json[1];
    assert_eq!(grant["kind"], "camera_grant");
    assert_eq!(grant["camera"]["client_type"], "bundle_id");
    assert_eq!(grant["camera"]["reason"], "user_consent");
    assert_eq!(grant["camera"]["auth"], "allowed");
    assert!(grant.get("process").is_none());
    assert!(grant["camera"].get("pid").is_none());
    assert!(grant["camera"].get("incident").is_none());
    let back: Vec<Finding> = serde_json::from_value(json).expect("round trip");
    // Which helper holds the grant is for the planner, never on the wire.
    assert!(camera[1].grant_holder.is_some());
    let wire: Vec<Finding> = camera
        .iter()
        .map(|f| Finding {
            grant_holder: None,
            ..(*f).clone()
        })
        .collect();
    assert_eq!(back, wire);
}

// ----- properties -----

const PROP_PIDS: &[u32] = &[0, 1, AGENT_PID, HELPER_PID, 602, 603, 700, 800];

const PROP_PATHS: &[&str] = &[
    "/System/Library/Private/cam",
    "/System/Applications/FaceTime.app/Contents/MacOS/FaceTime",
    "/Users/ann/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener",
    "/Users/ann/.zoomus/ZoomOpener.app/Contents/Helpers/capture",
    "/Applications/zoom.us.app/Contents/MacOS/zoom.us",
    "/usr/libexec/avconferenced",
    "/sbin/launchd",
    AGENT_EXE,
];

fn prop_process() -> impl Strategy<Value = ProcessIdentity> {
    (
        proptest::sample::select(PROP_PIDS),
        proptest::sample::select(PROP_PIDS),
        proptest::sample::select(PROP_PATHS),
        0u8..3,
    )
        .prop_map(|(pid, ppid, path, sig)| {
            let p = process(pid, ppid, path, "p");
            match sig {
                0 => p,
                1 => apple(p, "com.apple.x"),
                _ => signed(p, ZOOM_TEAM, "us.zoom.ZoomOpener"),
            }
        })
}

fn prop_session() -> impl Strategy<Value = CameraSessionObservation> {
    (
        proptest::option::weighted(0.9, proptest::sample::select(PROP_PIDS)),
        proptest::option::of(proptest::sample::select(
            &["us.zoom.ZoomOpener", "com.apple.FaceTime"][..],
        )),
        proptest::option::of(Just(PathBuf::from("/dev/video0"))),
        0u64..20,
    )
        .prop_map(|(pid, bundle_id, device, at)| CameraSessionObservation {
            pid,
            bundle_id: bundle_id.map(String::from),
            device,
            since_unix_us: CAMERA_T0_US + at * 1_000_000,
        })
}

fn prop_connection() -> impl Strategy<Value = ConnectionSeen> {
    (
        proptest::sample::select(&["127.0.0.1", "0.0.0.0", "::1", "::ffff:127.0.0.1"][..]),
        proptest::sample::select(&[19421u16, 8080][..]),
        0u64..20,
    )
        .prop_map(|(addr, port, at)| connection_seen(addr, port, at))
}

fn prop_grant() -> impl Strategy<Value = GrantObservation> {
    let exe = zoom_opener_exe(HOME);
    (
        proptest::sample::select(&TccService::ALL[..]),
        prop_oneof![
            Just(("us.zoom.ZoomOpener".to_string(), TccClientType::BundleId)),
            Just(("us.zoom.xos".to_string(), TccClientType::BundleId)),
            Just((exe, TccClientType::Path)),
            "[a-z./]{0,12}".prop_map(|c| (c, TccClientType::Other(3))),
        ],
        proptest::sample::select(
            &[
                TccAuth::Allowed,
                TccAuth::Denied,
                TccAuth::Limited,
                TccAuth::Unknown,
                TccAuth::Other(9),
            ][..],
        ),
        any::<bool>(),
    )
        .prop_map(|(service, (client, ty), auth, new)| {
            grant_seen(tcc_grant(service, &client, ty, auth), new)
        })
}

fn protected(p: &ProcessIdentity) -> bool {
    p.pid <= 1
        || p.pid == AGENT_PID
        || p.path.as_deref() == Some(Path::new(AGENT_EXE))
        || p.signature.is_apple_platform()
        || p.path.as_deref().is_some_and(|x| x.starts_with("/System"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn one_finding_each_never_remediating_the_protected(
        procs in proptest::collection::vec(prop_process(), 0..6),
        sessions in proptest::collection::vec(prop_session(), 0..5),
        connections in proptest::collection::vec(prop_connection(), 0..4),
        grants in proptest::collection::vec(prop_grant(), 0..5),
        window in 0u64..12,
        deny_all in any::<bool>(),
    ) {
        let mut scene = zoom_2019();
        for p in procs {
            scene = scene.process(p);
        }
        scene.obs.camera_sessions = sessions;
        scene.obs.connections = connections;
        scene.obs.grants = grants;
        let mut rules = Vec::new();
        if deny_all {
            let mut r = rule("deny-all", RuleAction::Deny);
            r.path = Some("/**".into());
            rules.push(r);
        }
        let mut policy = policy_with(rules);
        policy.camera_correlation_seconds = window;
        let findings = scene.judge(&policy);

        let uses = of_kind(&findings, FindingKind::CameraUse);
        let grants = of_kind(&findings, FindingKind::CameraGrant);
        prop_assert_eq!(uses.len(), scene.obs.camera_sessions.len());
        prop_assert_eq!(grants.len(), scene.obs.grants.len());
        for f in grants {
            prop_assert!(f.verdict != Verdict::Remediate, "grant remediated: {:?}", f);
            prop_assert!(f.camera.is_some() && f.process.is_none());
        }
        for f in uses {
            prop_assert!(!f.reasons.is_empty());
            prop_assert_eq!(f.camera.as_ref().map(|c| c.auth.as_str()), Some("in_use"));
            if f.verdict == Verdict::Remediate {
                prop_assert_eq!(f.severity, Severity::Critical);
                let p = f.process.as_ref();
                prop_assert!(p.is_some(), "remediate without a process: {:?}", f);
                prop_assert!(!p.is_some_and(protected), "remediates a protected process: {:?}", f);
            }
            if let Some(i) = f.camera.as_ref().and_then(|c| c.incident.as_ref()) {
                prop_assert!(window > 0);
                prop_assert!(i.seconds_before <= window);
            }
        }

        let mut shuffled = scene.clone();
        shuffled.obs.camera_sessions.reverse();
        shuffled.obs.grants.reverse();
        shuffled.obs.connections.reverse();
        prop_assert_eq!(shuffled.judge(&policy), findings, "order independent");
    }
}
