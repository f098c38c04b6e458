//! Scenario tests: what must be remediated (or deliberately only
//! reported) — the Zoom family, generic undisclosed helpers, admin deny
//! rules and the never-list. Built from realistic observations
//! (testkit.rs); the benign side is in scenarios_benign.rs.

use super::testkit::*;
use crate::model::RuleAction;
use crate::model::{Cors, FindingKind, HttpProbe, Severity, Verdict};

/// Zoom 2019: the login item "ZoomOpener" and its running listener on
/// 127.0.0.1:19421 answering with images.
fn zoom_2019() -> Scene {
    Scene::new()
        .process(zoom_opener_process(601, 1))
        .listen(loopback(19421, &[601]), Some(zoom_image_probe()))
        .item(zoom_login_item(HOME))
        .exists(&zoom_opener_exe(HOME))
}

#[test]
fn zoom_opener_login_item_with_listener_is_remediated_critical() {
    let findings = zoom_2019().judge(&policy());
    let l = on_port(&findings, 19421);
    assert_eq!(l.verdict, Verdict::Remediate, "{}", said(l));
    assert_eq!(l.severity, Severity::Critical);
    assert_eq!(l.rule.as_deref(), Some("catalog:zoomopener"));
    let text = said(l);
    for want in [
        ".zoomus",
        "CVE-2019-13450",
        "image",
        "login item",
        "port 19421",
    ] {
        assert!(text.contains(want), "missing {want:?} in {text}");
    }
    assert_eq!(l.process.as_ref().map(|p| p.pid), Some(601));
    assert_eq!(l.processes.len(), 1);
    assert_eq!(
        l.persistence.as_ref().and_then(|p| p.label.as_deref()),
        Some("ZoomOpener")
    );
    assert!(l.http.as_ref().is_some_and(|h| h.image));

    let item = of_item(&findings, "ZoomOpener");
    assert_eq!(item.verdict, Verdict::Remediate, "{}", said(item));
    assert_eq!(item.severity, Severity::Critical);
    assert_eq!(item.rule.as_deref(), Some("catalog:zoomopener"));
    assert_eq!(item.listener.as_ref().map(|l| l.port), Some(19421));
    assert_eq!(item.process.as_ref().map(|p| p.pid), Some(601));
    // Strongest first: both remediate, the listener sorts before the item.
    assert_eq!(findings[0].kind, FindingKind::Listener);
}

#[test]
fn zoom_opener_is_remediated_even_without_the_catalog() {
    // The heuristics alone reach the same verdict: hidden folder, login
    // item, HTTP on loopback, not Apple.
    let mut policy = policy();
    policy.catalog.entries.clear();
    let findings = zoom_2019().judge(&policy);
    let l = on_port(&findings, 19421);
    assert_eq!(l.verdict, Verdict::Remediate, "{}", said(l));
    assert_eq!(l.rule, None);
    assert!(said(l).contains("all four hold"));
    assert_eq!(of_item(&findings, "ZoomOpener").verdict, Verdict::Remediate);
}

#[test]
fn embedded_copy_in_installed_zoom_without_listener_is_not_remediated() {
    let embedded =
        "/Applications/zoom.us.app/Contents/Frameworks/ZoomOpener.app/Contents/MacOS/ZoomOpener";
    let mut item = login_item(
        "ZoomOpener",
        "/Applications/zoom.us.app/Contents/Frameworks/ZoomOpener.app",
        embedded,
    );
    item.parent_identifier = Some("2.us.zoom.xos".into());
    let scene = Scene::new()
        .item(item)
        .installed("us.zoom.xos")
        .exists("/Applications/zoom.us.app")
        .exists(embedded);
    let findings = scene.judge(&policy());
    let f = of_item(&findings, "ZoomOpener");
    assert_ne!(f.verdict, Verdict::Remediate, "{}", said(f));
    assert_eq!(f.verdict, Verdict::Report);
    assert_eq!(f.rule.as_deref(), Some("catalog:zoomopener"));
    assert!(
        said(f).contains("embedded in /Applications/zoom.us.app"),
        "{}",
        said(f)
    );

    // The same copy serving on 19421 is the vulnerability itself.
    let serving = scene
        .clone()
        .process(signed(
            process(602, 1, embedded, "ZoomOpener"),
            ZOOM_TEAM,
            "us.zoom.ZoomOpener",
        ))
        .listen(loopback(19421, &[602]), Some(zoom_image_probe()));
    let findings = serving.judge(&policy());
    assert_eq!(on_port(&findings, 19421).verdict, Verdict::Remediate);
    assert_eq!(of_item(&findings, "ZoomOpener").verdict, Verdict::Remediate);
}

#[test]
fn leftover_zoom_opener_after_zoom_was_trashed_is_remediated_while_not_running() {
    // Zoom dragged to the Trash; the login item and ~/.zoomus remain.
    let mut item = zoom_login_item(HOME);
    item.parent_identifier = Some("2.us.zoom.xos".into());
    let findings = Scene::new()
        .item(item)
        .exists(&zoom_opener_exe(HOME))
        .judge(&policy());
    let f = of_item(&findings, "ZoomOpener");
    assert_eq!(f.verdict, Verdict::Remediate, "{}", said(f));
    assert_eq!(
        f.severity,
        Severity::Critical,
        "a login item comes back by itself"
    );
    let text = said(f);
    assert!(text.contains("us.zoom.xos) is not installed"), "{text}");
    assert!(text.contains("could not be probed"), "{text}");
}

#[test]
fn white_label_openers_match_by_folder_and_truncated_name() {
    // comm is cut to 15 characters on Linux, 16 on macOS.
    let exe = home(".ringcentralopener/RingCentralOpener.app/Contents/MacOS/RingCentralOpener");
    let p = process(610, 1, &exe, "RingCentralOpen");
    let findings = Scene::new()
        .process(p)
        .listen(loopback(19424, &[610]), Some(http("")))
        .judge(&policy());
    let f = on_port(&findings, 19424);
    assert_eq!(f.verdict, Verdict::Remediate);
    assert_eq!(f.rule.as_deref(), Some("catalog:ringcentralopener"));

    // Renamed binary, but still in the brand's hidden folder.
    let p = process(611, 4242, &home(".zhumuopener/bin/srv"), "srv");
    let findings = Scene::new()
        .process(interactive(p))
        .listen(loopback(40000, &[611]), None)
        .judge(&policy());
    let f = on_port(&findings, 40000);
    assert_eq!(f.rule.as_deref(), Some("catalog:zhumuopener"));
    assert_eq!(
        f.verdict,
        Verdict::Remediate,
        "catalog wins even from a terminal"
    );
}

#[test]
fn port_19421_alone_is_never_a_catalog_match() {
    let foo = signed(
        process(620, 1, "/Applications/Foo.app/Contents/MacOS/Foo", "Foo"),
        "FOOTEAM123",
        "com.foo.app",
    );
    let scene = Scene::new()
        .process(foo)
        .listen(loopback(19421, &[620]), Some(zoom_image_probe()));
    let mut allow = rule("foo-ok", RuleAction::Allow);
    allow.team_id = Some("FOOTEAM123".into());
    let findings = scene.judge(&policy_with(vec![allow]));
    let f = on_port(&findings, 19421);
    assert_eq!(f.verdict, Verdict::Allow, "{}", said(f));
    assert_eq!(f.rule.as_deref(), Some("rule:foo-ok"));
    assert!(
        said(f).contains("a port alone is never a catalog match"),
        "{}",
        said(f)
    );

    // Without the rule: an installed app's main program, not a helper.
    let findings = scene.judge(&policy());
    let f = on_port(&findings, 19421);
    assert_eq!(f.rule, None);
    assert_eq!(f.verdict, Verdict::Report);

    // A developer's server on 19421 from a terminal.
    let dev = interactive(with_args(
        process(621, 500, "/opt/homebrew/bin/node", "node"),
        &["node", "/Users/ann/code/app/server.js"],
    ));
    let findings = Scene::new()
        .process(dev)
        .listen(loopback(19421, &[621]), Some(http("")))
        .judge(&policy());
    let f = on_port(&findings, 19421);
    assert_eq!((f.verdict, f.rule.as_deref()), (Verdict::Report, None));
}

/// A vendor helper in `~/Library/Application Support`, kept alive by a
/// LaunchAgent, serving any origin.
fn acme_helper(cors: Cors) -> Scene {
    let exe = home("Library/Application Support/Acme/acme-helper");
    let mut agent = launch_agent(
        &home("Library/LaunchAgents/com.acme.helper.plist"),
        "com.acme.helper",
        &exe,
    );
    agent.keep_alive = true;
    let probe = HttpProbe {
        cors,
        ..http("acme/1.0")
    };
    Scene::new()
        .process(signed(
            process(700, 1, &exe, "acme-helper"),
            "ACMETEAM01",
            "com.acme.helper",
        ))
        .listen(loopback(28080, &[700]), Some(probe))
        .item(agent)
        .exists(&exe)
}

#[test]
fn undisclosed_helpers_are_remediated_by_the_heuristics() {
    for (cors, severity) in [
        (Cors::Wildcard, Severity::Critical),
        (Cors::Reflected, Severity::Critical),
        // KeepAlive is aggravating on its own.
        (Cors::None, Severity::Critical),
    ] {
        let findings = acme_helper(cors).judge(&policy());
        let f = on_port(&findings, 28080);
        assert_eq!(f.verdict, Verdict::Remediate, "{cors:?}: {}", said(f));
        assert_eq!(f.severity, severity, "{cors:?}");
        assert_eq!(f.rule, None);
        let text = said(f);
        assert!(text.contains("Library/Application Support"), "{text}");
        assert!(text.contains("KeepAlive"), "{text}");
        assert!(text.contains("validly signed by team ACMETEAM01"), "{text}");
        assert_eq!(
            of_item(&findings, "com.acme.helper").verdict,
            Verdict::Remediate
        );
    }
}

#[test]
fn helper_started_by_its_app_from_a_hidden_folder_is_remediated() {
    let app = signed(
        process(710, 1, "/Applications/Acme.app/Contents/MacOS/Acme", "Acme"),
        "ACMETEAM01",
        "com.acme.app",
    );
    let helper = process(711, 710, &home(".acme/bin/acme-web"), "acme-web");
    let findings = Scene::new()
        .process(app)
        .process(helper)
        .listen(wildcard6(31337, &[711]), Some(websocket()))
        .judge(&policy());
    let f = on_port(&findings, 31337);
    assert_eq!(f.verdict, Verdict::Remediate, "{}", said(f));
    assert_eq!(
        f.severity,
        Severity::Critical,
        "on all addresses the network reaches it too"
    );
    assert!(said(f).contains("aggravating: reachable from the local network"));
    assert!(said(f).contains("the app /Applications/Acme.app (pid 710) started it"));
    assert!(said(f).contains("hidden folder .acme"));
}

#[test]
fn helper_that_outlived_its_app_is_remediated() {
    let exe = "/Library/Application Support/Acme/acme-agent";
    let mut daemon = launch_agent(
        "/Library/LaunchAgents/com.acme.agent.plist",
        "com.acme.agent",
        exe,
    );
    daemon.associated_bundle_ids = vec!["com.acme.app".into()];
    let findings = Scene::new()
        .process(process(720, 1, exe, "acme-agent"))
        .listen(loopback(28081, &[720]), Some(http("")))
        .item(daemon)
        .exists(exe)
        .judge(&policy());
    let f = on_port(&findings, 28081);
    assert_eq!(f.verdict, Verdict::Remediate, "{}", said(f));
    assert!(said(f).contains("(com.acme.app) is not installed: it outlived its app"));
}

#[test]
fn persistence_without_a_running_program() {
    let exe = home(".acme/acme-agent");
    let plist = home("Library/LaunchAgents/com.acme.agent.plist");
    // Undisclosed and RunAtLoad, but nothing listening: report, saying so.
    let findings = Scene::new()
        .item(launch_agent(&plist, "com.acme.agent", &exe))
        .exists(&exe)
        .judge(&policy());
    let f = of_item(&findings, "com.acme.agent");
    assert_eq!(f.verdict, Verdict::Report, "{}", said(f));
    assert!(said(f).contains("no HTTP evidence"), "{}", said(f));

    // Neither RunAtLoad nor KeepAlive: it does not start by itself.
    let mut idle = launch_agent(&plist, "com.acme.agent", &exe);
    idle.run_at_load = false;
    let findings = Scene::new().item(idle).exists(&exe).judge(&policy());
    assert_eq!(of_item(&findings, "com.acme.agent").verdict, Verdict::Allow);

    // Its program is gone: it starts nothing.
    let findings = Scene::new()
        .item(launch_agent(&plist, "com.acme.agent", &exe))
        .exists("/some/other/path")
        .judge(&policy());
    let f = of_item(&findings, "com.acme.agent");
    assert_eq!(f.verdict, Verdict::Allow, "{}", said(f));
    assert!(said(f).contains("does not exist"));
}

#[test]
fn unknown_http_is_reported_never_remediated() {
    let exe = home(".acme/acme-agent");
    let p = process(730, 1, &exe, "acme-agent");
    let timeout = HttpProbe {
        error: Some("timed out after 300 ms".into()),
        ..not_http()
    };
    for probe in [None, Some(timeout)] {
        let findings = Scene::new()
            .process(p.clone())
            .listen(loopback(28082, &[730]), probe.clone())
            .judge(&policy());
        let f = on_port(&findings, 28082);
        assert_eq!(f.verdict, Verdict::Report, "{probe:?}: {}", said(f));
        assert!(said(f).contains("unknown"), "{}", said(f));
    }
    // Not HTTP at all: allowed.
    let findings = Scene::new()
        .process(p.clone())
        .listen(loopback(28083, &[730]), Some(not_http()))
        .judge(&policy());
    assert_eq!(on_port(&findings, 28083).verdict, Verdict::Allow);
}

#[test]
fn linux_helper_says_signatures_are_unavailable() {
    let exe = "/home/dev/.cache/acme/srv";
    let findings = Scene::new()
        .process(linux(process(740, 1, exe, "srv")))
        .listen(wildcard(8088, &[740]), Some(http("")))
        .judge(&policy());
    let f = on_port(&findings, 8088);
    assert_eq!(f.verdict, Verdict::Remediate, "{}", said(f));
    assert!(said(f).contains("code signatures are not available on this platform"));

    let mut allow = rule("acme-srv", RuleAction::Allow);
    allow.path = Some("/home/*/.cache/acme/srv".into());
    let findings = Scene::new()
        .process(linux(process(740, 1, exe, "srv")))
        .listen(wildcard(8088, &[740]), Some(http("")))
        .judge(&policy_with(vec![allow]));
    assert_eq!(on_port(&findings, 8088).verdict, Verdict::Allow);
}

#[test]
fn deny_rules_remediate_and_beat_allow_rules() {
    let dropbox = signed(
        process(
            750,
            1,
            "/Applications/Dropbox.app/Contents/MacOS/Dropbox",
            "Dropbox",
        ),
        "G7HH3F8CAK",
        "com.getdropbox.dropbox",
    );
    let scene = Scene::new()
        .process(dropbox)
        .listen(wildcard(17500, &[750]), Some(not_http()));
    let mut deny = rule("no-lan-sync", RuleAction::Deny);
    deny.port = Some(17500);
    let mut allow = rule("dropbox", RuleAction::Allow);
    allow.team_id = Some("G7HH3F8CAK".into());
    let findings = scene.judge(&policy_with(vec![allow, deny]));
    let f = on_port(&findings, 17500);
    assert_eq!(f.verdict, Verdict::Remediate, "{}", said(f));
    assert_eq!(f.rule.as_deref(), Some("rule:no-lan-sync"));
    assert!(said(f).contains("a deny rule wins over an allow rule"));
}

#[test]
fn fleet_catalog_additions_are_matched_like_built_in_entries() {
    let mut entry = policy().catalog().entries[0].clone();
    entry.id = "catalog:acme-helper".into();
    entry.name = "acme-helper".into();
    entry.vendor = "Acme".into();
    entry.hidden_dirs = vec![];
    entry.bundle_names = vec![];
    entry.process_names = vec![];
    entry.login_item_names = vec![];
    entry.ports = vec![];
    entry.parent_bundle_ids = vec![];
    entry.bundle_ids = vec!["com.acme.helper".into()];
    entry.sources = vec!["https://example.com/acme-advisory".into()];
    let policy = policy().with_catalog_additions(vec![entry]).unwrap();
    // Disclosed and from a terminal: only the catalog can remediate it.
    let p = interactive(signed(
        process(
            760,
            500,
            "/Applications/Acme.app/Contents/MacOS/acme-helper",
            "acme-helper",
        ),
        "ACMETEAM01",
        "com.acme.helper",
    ));
    let findings = Scene::new()
        .process(p)
        .listen(loopback(28090, &[760]), Some(http("")))
        .judge(&policy);
    let f = on_port(&findings, 28090);
    assert_eq!(f.verdict, Verdict::Remediate, "{}", said(f));
    assert_eq!(f.rule.as_deref(), Some("catalog:acme-helper"));
}

const LOGI: &str = "/Applications/Logi Options.app/Contents/Support/LogiMgrDaemon.app/Contents/MacOS/LogiMgrDaemon";

/// Logitech Options' daemon, signed by Logitech, answering a WebSocket
/// upgrade from a foreign origin on loopback.
fn logitech_options(p: crate::model::ProcessIdentity) -> Scene {
    Scene::new()
        .process(p)
        .listen(loopback(10134, &[640]), Some(websocket()))
        .exists(LOGI)
}

/// A known-risky program (catalog `known_risky`) is never acted on by
/// itself, but its write-up is in the reasons and it raises the severity;
/// a copy that only carries its name is judged on its own merits.
#[test]
fn a_known_risky_program_serving_is_reported_with_its_write_up() {
    let real = signed(
        process(640, 1, LOGI, "LogiMgrDaemon"),
        "QED4VVPZWA",
        "com.logitech.manager.daemon",
    );
    let findings = logitech_options(real.clone()).judge(&policy());
    let f = on_port(&findings, 10134);
    assert_eq!(f.verdict, Verdict::Report, "{}", said(f));
    assert!(said(f).contains("known-risky catalog entry catalog:logitech-options"));
    assert!(said(f).contains("Project Zero issue 1663"), "{}", said(f));
    assert!(said(f).contains("aggravating: it is Logitech Options"));
    // Without the catalog entry the same listener is one step lower.
    let mut plain = policy();
    plain.catalog.risky.clear();
    let without = logitech_options(real.clone()).judge(&plain);
    assert!(
        f.severity > on_port(&without, 10134).severity,
        "{}",
        said(f)
    );
    assert!(!said(on_port(&without, 10134)).contains("known-risky"));

    // An admin who checked the version may allow it.
    let mut allow = rule("logi-fixed", RuleAction::Allow);
    allow.team_id = Some("QED4VVPZWA".into());
    let allowed = logitech_options(real).judge(&policy_with(vec![allow]));
    assert_eq!(on_port(&allowed, 10134).verdict, Verdict::Allow);

    // Its name alone, unsigned, outside its bundle: no write-up borrowed.
    let fake = process(640, 1, "/Users/Shared/LogiMgrDaemon", "LogiMgrDaemon");
    let findings = Scene::new()
        .process(ad_hoc(fake))
        .listen(loopback(10134, &[640]), Some(websocket()))
        .judge(&policy());
    assert!(!said(on_port(&findings, 10134)).contains("known-risky"));
}
