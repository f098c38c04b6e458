//! Scenario tests: the never-list (PID 0/1, the agent, Apple platform
//! binaries, `/System`) holds against rules and the catalog; order and
//! determinism of the output.

use super::testkit::*;
use crate::model::RuleAction;
use crate::model::{FindingKind, LaunchdSocket, Verdict};

/// A deny rule that matches every path: the strongest push to remediate.
fn deny_everything() -> crate::model::Rule {
    let mut r = rule("deny-all", RuleAction::Deny);
    r.path = Some("/**".into());
    r
}

#[test]
fn never_list_beats_deny_rules_and_the_catalog() {
    let cc_path = "/System/Library/CoreServices/ControlCenter.app/Contents/MacOS/ControlCenter";
    let cases = [
        (
            "Apple platform binary under /System",
            apple(
                process(420, 1, cc_path, "ControlCenter"),
                "com.apple.controlcenter",
            ),
            "Apple platform binary",
        ),
        (
            "Apple platform binary outside /System",
            apple(
                process(380, 1, "/usr/libexec/rapportd", "rapportd"),
                "com.apple.rapportd",
            ),
            "Apple platform binary",
        ),
        (
            "unsigned file under /System named like the catalog",
            process(
                430,
                1,
                "/System/Library/Private/.zoomus/ZoomOpener",
                "ZoomOpener",
            ),
            "/System",
        ),
        (
            "launchd",
            apple(
                process(1, 0, "/sbin/launchd", "launchd"),
                "com.apple.xpc.launchd",
            ),
            "pid 1",
        ),
        (
            "the agent",
            process(AGENT_PID, 1, AGENT_EXE, "lenscap"),
            "lenscap itself",
        ),
        (
            "another agent process",
            process(78, 77, AGENT_EXE, "lenscap"),
            "lenscap's own",
        ),
        ("kernel", process(0, 0, "/kernel", "kernel_task"), "kernel"),
    ];
    for (what, p, why) in cases {
        let pid = p.pid;
        let findings = Scene::new()
            .process(p)
            .listen(loopback(19421, &[pid]), Some(zoom_image_probe()))
            .judge(&policy_with(vec![deny_everything()]));
        let f = &findings[0];
        assert_eq!(f.verdict, Verdict::Report, "{what}: {}", said(f));
        assert_eq!(f.rule.as_deref(), Some("rule:deny-all"), "{what}");
        let text = said(f);
        assert!(
            text.contains("lenscap never acts on it") && text.contains(why),
            "{what}: {text}"
        );
    }
}

#[test]
fn listener_without_a_visible_owner_is_never_remediated() {
    let mut deny = rule("no-9999", RuleAction::Deny);
    deny.port = Some(9999);
    let findings = Scene::new()
        .listen(loopback(9999, &[]), Some(http("")))
        .judge(&policy_with(vec![deny]));
    let f = &findings[0];
    assert_eq!(f.verdict, Verdict::Report, "{}", said(f));
    assert!(said(f).contains("nothing to act on"));
    assert!(f.process.is_none() && f.processes.is_empty());
}

#[test]
fn an_os_interpreter_is_never_acted_on_for_code_that_is_the_os() {
    // Apple's perl running a script of the sealed OS, and Apple's python
    // running inline code that no persistence item hands it (an app's
    // `python3 -c`): judged by what runs, that is macOS's or nothing on
    // disk — a deny-everything rule still lowers them to report.
    let perl = with_args(
        apple(process(430, 1, "/usr/bin/perl", "perl"), "com.apple.perl5"),
        &["/usr/bin/perl", "/usr/libexec/apple-helper.pl"],
    );
    let python = with_args(
        apple(
            process(431, 1, "/usr/bin/python3", "python3"),
            "com.apple.python3",
        ),
        &["python3", "-c", "import http.server"],
    );
    let findings = Scene::new()
        .process(perl)
        .process(python)
        .listen(loopback(28200, &[430]), Some(http("")))
        .listen(loopback(28201, &[431]), Some(http("")))
        .judge(&policy_with(vec![deny_everything()]));
    for (port, words) in [
        (
            28200,
            "the script it runs, /usr/libexec/apple-helper.pl, is part of macOS",
        ),
        (28201, "python3 is an Apple platform binary"),
    ] {
        let f = on_port(&findings, port);
        assert_eq!(f.verdict, Verdict::Report, "{port}: {}", said(f));
        assert!(said(f).contains(words), "{port}: {}", said(f));
    }

    // Inline code a /System plist hands an interpreter is macOS's too.
    let mut apple_job = launch_agent(
        "/System/Library/LaunchAgents/com.apple.x.plist",
        "com.apple.x",
        "/bin/sh",
    );
    apple_job.args = vec!["/bin/sh".into(), "-c".into(), "exec x".into()];
    let sh = with_args(
        apple(process(432, 1, "/bin/sh", "sh"), "com.apple.sh"),
        &["/bin/sh", "-c", "exec x"],
    );
    let findings = Scene::new()
        .process(sh)
        .listen(loopback(28202, &[432]), Some(http("")))
        .item(apple_job)
        .judge(&policy_with(vec![deny_everything()]));
    for f in &findings {
        assert_eq!(f.verdict, Verdict::Report, "{}", said(f));
        assert!(said(f).contains("/System"), "{}", said(f));
    }
}

#[test]
fn socket_activated_job_its_plist_is_remediated_not_launchd() {
    let exe = "/Library/Application Support/Acme/sockd";
    let mut daemon = launch_agent(
        "/Library/LaunchDaemons/com.acme.sockd.plist",
        "com.acme.sockd",
        exe,
    );
    daemon.kind = crate::model::PersistenceKind::LaunchDaemon;
    daemon.run_at_load = false;
    daemon.sockets = vec![LaunchdSocket {
        name: "Listeners".into(),
        service: Some("8765".into()),
        node: Some("localhost".into()),
    }];
    let launchd = apple(
        process(1, 0, "/sbin/launchd", "launchd"),
        "com.apple.xpc.launchd",
    );
    let findings = Scene::new()
        .process(launchd)
        .process(process(1400, 1, exe, "sockd"))
        .listen(loopback(8765, &[1, 1400]), Some(http("")))
        .item(daemon)
        .exists(exe)
        .judge(&policy());
    let l = on_port(&findings, 8765);
    assert_eq!(l.verdict, Verdict::Report, "{}", said(l));
    assert_eq!(
        l.process.as_ref().map(|p| p.pid),
        Some(1400),
        "the job is the primary owner"
    );
    assert_eq!(l.processes.len(), 2);
    let item = of_item(&findings, "com.acme.sockd");
    assert_eq!(item.verdict, Verdict::Remediate, "{}", said(item));
    assert!(item.processes.iter().all(|p| p.pid != 1));
}

#[test]
fn agent_own_daemon_plist_is_never_remediated() {
    let mut own = launch_agent(
        "/Library/LaunchDaemons/io.lenscap.agent.plist",
        "io.lenscap.agent",
        AGENT_EXE,
    );
    own.keep_alive = true;
    let findings = Scene::new()
        .item(own)
        .judge(&policy_with(vec![deny_everything()]));
    assert_eq!(
        findings[0].verdict,
        Verdict::Report,
        "{}",
        said(&findings[0])
    );
    assert!(said(&findings[0]).contains("it starts lenscap itself"));
}

/// A busy machine: Zoom's helper, brew nginx, AirPlay, a dev server.
fn busy() -> Scene {
    Scene::new()
        .process(zoom_opener_process(601, 1))
        .process(brew_nginx_process(900))
        .process(apple(
            process(
                420,
                1,
                "/System/Library/CoreServices/ControlCenter.app/Contents/MacOS/ControlCenter",
                "ControlCenter",
            ),
            "com.apple.controlcenter",
        ))
        .process(interactive(process(
            1001,
            500,
            "/opt/homebrew/bin/node",
            "node",
        )))
        .listen(wildcard(8080, &[900]), Some(http("nginx")))
        .listen(wildcard(7000, &[420]), Some(http("AirTunes")))
        .listen(loopback(19421, &[601]), Some(zoom_image_probe()))
        .listen(loopback(3000, &[1001]), Some(http("")))
        .item(brew_nginx_agent())
        .item(zoom_login_item(HOME))
}

#[test]
fn findings_are_sorted_strongest_first_then_by_port_and_path() {
    let findings = busy().judge(&policy());
    let summary: Vec<(Verdict, FindingKind, Option<u16>)> = findings
        .iter()
        .map(|f| (f.verdict, f.kind, f.listener.as_ref().map(|l| l.port)))
        .collect();
    assert_eq!(
        summary,
        vec![
            (Verdict::Remediate, FindingKind::Listener, Some(19421)),
            (Verdict::Remediate, FindingKind::Persistence, Some(19421)),
            (Verdict::Report, FindingKind::Listener, Some(3000)),
            (Verdict::Report, FindingKind::Listener, Some(8080)),
            (Verdict::Allow, FindingKind::Listener, Some(7000)),
            (Verdict::Allow, FindingKind::Persistence, None),
        ]
    );
}

#[test]
fn input_order_does_not_change_the_output() {
    let scene = busy();
    let policy = policy();
    let expected = scene.judge(&policy);
    let mut reversed = scene.clone();
    reversed.obs.listeners.reverse();
    reversed.obs.persistence.reverse();
    assert_eq!(reversed.judge(&policy), expected);
    assert_eq!(scene.judge(&policy), expected, "same input, same output");
}
