//! Scenario tests: the ways a user-level helper used to talk its way out
//! of `remediate` (issue 9, "Trust") — a terminal, a toolchain folder, a
//! folder named `AppTranslocation`, a LAN address, an OS interpreter, an
//! identifier it only claims. docs/design.md §4: judge what runs, not what it
//! says about itself. Each test pairs the dodge with the honest case it
//! imitates, which must keep its verdict.

use std::path::{Path, PathBuf};

use super::testkit::*;
use crate::act::plan::{PlanOptions, Step, plans};
use crate::model::RuleAction;
use crate::model::{AddressScope, Finding, Severity, Verdict};

fn plist(label: &str) -> String {
    home(&format!("Library/LaunchAgents/{label}.plist"))
}

/// The one plan the findings make, and the paths it quarantines.
fn only_plan(findings: &[Finding]) -> (crate::act::plan::Plan, Vec<PathBuf>) {
    let mut all = plans(findings, &PlanOptions::default());
    assert_eq!(all.len(), 1, "one helper, one plan: {all:#?}");
    let plan = all.remove(0);
    let quarantined = plan
        .steps
        .iter()
        .find_map(|s| match s {
            Step::Quarantine { paths } => Some(paths.clone()),
            _ => None,
        })
        .unwrap_or_default();
    (plan, quarantined)
}

fn guarded(plan: &crate::act::plan::Plan) -> Vec<PathBuf> {
    plan.steps
        .iter()
        .find_map(|s| match s {
            Step::Guard { paths, .. } => Some(paths.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn terminated(plan: &crate::act::plan::Plan) -> Vec<u32> {
    plan.steps
        .iter()
        .find_map(|s| match s {
            Step::Terminate { processes } => Some(processes.iter().map(|p| p.pid).collect()),
            _ => None,
        })
        .unwrap_or_default()
}

#[test]
fn a_plist_that_runs_its_helper_under_a_pty_is_still_remediated() {
    // ProgramArguments = /usr/bin/script -qc ~/.acme/acme-web: the helper
    // gets a controlling terminal, and so does nothing a person did.
    let exe = home(".acme/acme-web");
    let mut agent = launch_agent(&plist("com.acme.web"), "com.acme.web", "/usr/bin/script");
    agent.args = vec![
        "/usr/bin/script".into(),
        "-qc".into(),
        exe.clone(),
        "/dev/null".into(),
    ];
    let script = with_args(
        apple(
            process(2000, 1, "/usr/bin/script", "script"),
            "com.apple.script",
        ),
        &["/usr/bin/script", "-qc", &exe, "/dev/null"],
    );
    let helper = interactive(process(2001, 2000, &exe, "acme-web"));
    let findings = Scene::new()
        .process(script)
        .process(helper)
        .listen(loopback(28100, &[2001]), Some(http("")))
        .item(agent)
        .judge(&policy());
    let f = on_port(&findings, 28100);
    assert_eq!(f.verdict, Verdict::Remediate, "{}", said(f));
    let text = said(f);
    assert!(
        text.contains("its parent script (pid 2000) was started by"),
        "{text}"
    );
    assert!(
        text.contains("it runs with a controlling terminal, but a persistence item starts it"),
        "{text}"
    );
    // The helper's file is what is moved and guarded, so `script` cannot
    // run it again. The plist is reported, not remediated: what it runs,
    // `/usr/bin/script`, is an Apple platform binary, which lenscap does
    // not terminate.
    let (plan, quarantined) = only_plan(&findings);
    assert_eq!(terminated(&plan), vec![2001]);
    assert_eq!(quarantined, vec![PathBuf::from(&exe)]);
    let item = of_item(&findings, "com.acme.web");
    assert_eq!(item.verdict, Verdict::Report, "{}", said(item));
    assert!(
        said(item).contains("script is an Apple platform binary"),
        "{}",
        said(item)
    );

    // The same program typed into a terminal by a person is not a helper.
    let findings = Scene::new()
        .process(interactive(process(2010, 2011, &exe, "acme-web")))
        .process(interactive(process(2011, 1, "/bin/zsh", "zsh")))
        .listen(loopback(28101, &[2010]), Some(http("")))
        .judge(&policy());
    let f = on_port(&findings, 28101);
    assert_eq!(f.verdict, Verdict::Report, "{}", said(f));
    assert!(
        said(f).contains("no persistence item starts it"),
        "{}",
        said(f)
    );
}

#[test]
fn toolchain_folders_do_not_excuse_what_a_plist_starts() {
    for (exe, port) in [
        (home("code/site/node_modules/acme/bin/acme-web"), 28110),
        (home("code/site/.venv/bin/acme-web"), 28111),
        (home(".local/bin/acme-web"), 28112),
        (home(".nvm/versions/node/v20.11.0/bin/acme-web"), 28113),
    ] {
        let label = format!("com.acme.web{port}");
        let started = Scene::new()
            .process(process(2100, 1, &exe, "acme-web"))
            .listen(loopback(port, &[2100]), Some(http("")))
            .item(launch_agent(&plist(&label), &label, &exe))
            .exists(&exe)
            .judge(&policy());
        let f = on_port(&started, port);
        assert_eq!(f.verdict, Verdict::Remediate, "{exe}: {}", said(f));
        assert!(
            said(f).contains("a toolchain folder discloses only what a person starts"),
            "{exe}: {}",
            said(f)
        );
        assert_eq!(
            of_item(&started, &label).verdict,
            Verdict::Remediate,
            "{exe}"
        );

        // A person ran it from a terminal: the toolchain folder is where
        // they chose to work. Not a helper and disclosed: never remediated.
        let typed = Scene::new()
            .process(interactive(process(2101, 2102, &exe, "acme-web")))
            .process(interactive(process(2102, 1, "/bin/zsh", "zsh")))
            .listen(loopback(port, &[2101]), Some(http("")))
            .judge(&policy());
        let f = on_port(&typed, port);
        assert_eq!(f.verdict, Verdict::Report, "{exe}: {}", said(f));
        assert!(said(f).contains("a developer toolchain folder"), "{exe}");
        assert!(
            said(f).contains("neither a helper nor undisclosed"),
            "{exe}"
        );
    }
}

#[test]
fn a_folder_named_app_translocation_discloses_nothing() {
    let uuid = "2A2D6B24-0C1B-4F5E-9A8D-1234567890AB";
    let real_app = format!("/private/var/folders/x1/abc/T/AppTranslocation/{uuid}/d/Foo.app");
    // A helper inside the app (its parent is launchd, so it counts as a
    // helper); only where it lives is in question.
    let exe = format!("{real_app}/Contents/Helpers/foo-web");
    let scene = |pid: u32| {
        Scene::new()
            .process(process(pid, 1, &exe, "foo-web"))
            .listen(loopback(28120, &[pid]), Some(http("")))
    };
    // Observe found that bundle on a real translocation mount, and a person
    // opened it (no persistence): disclosed.
    let mut opened = scene(2200);
    opened.obs.translocated.insert(PathBuf::from(&real_app));
    let findings = opened.judge(&policy());
    let f = on_port(&findings, 28120);
    assert_ne!(f.verdict, Verdict::Remediate, "{}", said(f));
    assert!(
        said(f).contains("read-only translocation mount"),
        "{}",
        said(f)
    );

    // The same path without the mount (folders a user made), a folder
    // merely named AppTranslocation, or a real mount a plist starts from:
    // undisclosed, remediated.
    let fake_home = home("AppTranslocation/d/Foo.app/Contents/Helpers/foo-web");
    let cases: Vec<(Scene, &str)> = vec![
        (scene(2201), "not on an App Translocation (nullfs) mount"),
        (
            Scene::new()
                .process(process(2202, 1, &fake_home, "foo-web"))
                .listen(loopback(28120, &[2202]), Some(http(""))),
            "a folder named AppTranslocation",
        ),
        (
            {
                let mut s = scene(2203).item(launch_agent(&plist("com.foo"), "com.foo", &exe));
                s.obs.translocated.insert(PathBuf::from(&real_app));
                s
            },
            "App Translocation discloses only an app a person opened",
        ),
    ];
    for (scene, note) in cases {
        let findings = scene.judge(&policy());
        let f = on_port(&findings, 28120);
        assert_eq!(f.verdict, Verdict::Remediate, "{note}: {}", said(f));
        assert!(said(f).contains(note), "{note}: {}", said(f));
    }
}

#[test]
fn a_helper_on_the_lan_address_is_remediated_one_step_higher() {
    let exe = home(".acme/acme-web");
    let scene = |l| {
        Scene::new()
            .process(process(2300, 1, &exe, "acme-web"))
            .listen(l, Some(http("")))
    };
    let lan = scene(specific("192.168.1.20", 28130, &[2300])).judge(&policy());
    let f = on_port(&lan, 28130);
    assert_eq!(f.verdict, Verdict::Remediate, "{}", said(f));
    assert_eq!(
        f.listener.as_ref().map(|l| l.scope),
        Some(AddressScope::Lan)
    );
    assert!(
        said(f).contains("this machine's own network address"),
        "{}",
        said(f)
    );
    assert!(said(f).contains("aggravating: reachable from the local network"));
    let json = serde_json::to_value(f).unwrap();
    assert_eq!(json["listener"]["scope"], "lan");

    let lo = scene(loopback(28130, &[2300])).judge(&policy());
    let g = on_port(&lo, 28130);
    assert_eq!(g.verdict, Verdict::Remediate);
    assert_eq!(
        (g.severity, f.severity),
        (Severity::High, Severity::Critical)
    );

    // A person's server on the LAN address is reported, a step up from
    // low, and never remediated.
    let typed = Scene::new()
        .process(interactive(process(
            2301,
            1,
            &home("code/app/server"),
            "server",
        )))
        .listen(specific("10.0.0.5", 28131, &[2301]), Some(http("")))
        .judge(&policy());
    let f = on_port(&typed, 28131);
    assert_eq!(
        (f.verdict, f.severity),
        (Verdict::Report, Severity::Medium),
        "{}",
        said(f)
    );
}

/// `/usr/bin/python3 ~/.sync/server.py` from a user's LaunchAgent, as
/// macOS runs it: the Command Line Tools' Python, an Apple platform binary.
fn python_agent(args: &[&str]) -> Scene {
    let exe = "/Library/Developer/CommandLineTools/usr/bin/python3";
    let python = with_args(
        apple(process(2400, 1, exe, "python3"), "com.apple.python3"),
        args,
    );
    let mut agent = launch_agent(&plist("com.sync"), "com.sync", "/usr/bin/python3");
    agent.args = std::iter::once("/usr/bin/python3")
        .chain(args.iter().skip(1).copied())
        .map(String::from)
        .collect();
    Scene::new()
        .process(python)
        .listen(loopback(28140, &[2400]), Some(http("BaseHTTP/0.6")))
        .item(agent)
}

#[test]
fn an_os_interpreter_running_a_hidden_script_is_remediated_by_its_script() {
    let script = home(".sync/server.py");
    let findings = python_agent(&["python3", &script]).judge(&policy());
    let l = on_port(&findings, 28140);
    assert_eq!(l.verdict, Verdict::Remediate, "{}", said(l));
    let text = said(l);
    assert!(
        text.contains("Apple's signature covers the interpreter"),
        "{text}"
    );
    assert!(
        text.contains("the script /Users/ann/.sync/server.py is what runs"),
        "{text}"
    );
    assert!(text.contains("hidden folder .sync"), "{text}");
    assert!(
        text.contains("runs the script /Users/ann/.sync/server.py that the item hands"),
        "linked although launchd's /usr/bin/python3 execs another Python: {text}"
    );
    assert_eq!(l.judged_path.as_deref(), Some(Path::new(&script)));
    let item = of_item(&findings, "com.sync");
    assert_eq!(item.verdict, Verdict::Remediate, "{}", said(item));
    assert_eq!(item.judged_path.as_deref(), Some(Path::new(&script)));

    // The plan: boot out, terminate the Python process, quarantine and
    // guard the plist and the script — never the interpreter.
    let (plan, quarantined) = only_plan(&findings);
    assert_eq!(plan.key, script);
    assert_eq!(terminated(&plan), vec![2400]);
    for paths in [&quarantined, &guarded(&plan)] {
        assert!(paths.contains(&PathBuf::from(&script)), "{paths:?}");
        assert!(
            paths.contains(&PathBuf::from(plist("com.sync"))),
            "{paths:?}"
        );
        assert!(
            !paths.iter().any(|p| p.ends_with("python3")),
            "the interpreter is never moved: {paths:?}"
        );
    }
}

#[test]
fn inline_code_in_a_users_plist_makes_the_plist_the_helper() {
    let code = "import http.server as h; h.test(port=28140, bind='127.0.0.1')";
    for args in [
        vec!["python3", "-c", code],
        vec!["python3", "-m", "http.server", "28140"],
    ] {
        let findings = python_agent(&args).judge(&policy());
        let l = on_port(&findings, 28140);
        assert_eq!(l.verdict, Verdict::Remediate, "{args:?}: {}", said(l));
        let text = said(l);
        assert!(
            text.contains("the plist is judged, not the interpreter"),
            "{text}"
        );
        assert!(text.contains("no visible app is associated"), "{text}");
        let plist = PathBuf::from(plist("com.sync"));
        assert_eq!(l.judged_path.as_ref(), Some(&plist));
        let item = of_item(&findings, "com.sync");
        assert_eq!(item.verdict, Verdict::Remediate, "{args:?}: {}", said(item));
        assert!(said(item).contains("owned by uid 501"), "{}", said(item));

        let (plan, quarantined) = only_plan(&findings);
        assert_eq!(quarantined, vec![plist.clone()], "{args:?}");
        assert_eq!(guarded(&plan), vec![plist], "{args:?}");
        assert_eq!(terminated(&plan), vec![2400], "{args:?}");
        assert_eq!(plan.steps[0].name(), "bootout");
    }
}

#[test]
fn the_interpreter_is_never_a_rule_subject() {
    // An allow rule for the interpreter's path or Apple's identifier does
    // not shield the scripts it runs.
    let script = home(".sync/server.py");
    let mut by_path = rule("python-ok", RuleAction::Allow);
    by_path.path = Some("/Library/Developer/CommandLineTools/usr/bin/python3".into());
    let mut by_id = rule("apple-python", RuleAction::Allow);
    by_id.signing_id = Some("com.apple.python3".into());
    let findings = python_agent(&["python3", &script]).judge(&policy_with(vec![by_path, by_id]));
    let l = on_port(&findings, 28140);
    assert_eq!(
        (l.verdict, l.rule.as_deref()),
        (Verdict::Remediate, None),
        "{}",
        said(l)
    );

    // A rule on the script itself decides.
    let mut by_script = rule("sync-ok", RuleAction::Allow);
    by_script.path = Some(home(".sync/*.py"));
    let findings = python_agent(&["python3", &script]).judge(&policy_with(vec![by_script]));
    let l = on_port(&findings, 28140);
    assert_eq!(
        (l.verdict, l.rule.as_deref()),
        (Verdict::Allow, Some("rule:sync-ok"))
    );
}

#[test]
fn a_program_named_like_an_interpreter_in_a_hidden_folder_is_its_own_program() {
    // ~/.acme/node with a decoy argument: the name is a claim, and the
    // file that is quarantined is the binary, not the decoy.
    let exe = home(".acme/node");
    let decoy = home("Documents/notes.js");
    let mut agent = launch_agent(&plist("com.acme"), "com.acme", &exe);
    agent.args = vec![exe.clone(), decoy.clone()];
    let findings = Scene::new()
        .process(with_args(process(2500, 1, &exe, "node"), &[&exe, &decoy]))
        .listen(loopback(28150, &[2500]), Some(http("")))
        .item(agent)
        .judge(&policy());
    let l = on_port(&findings, 28150);
    assert_eq!(l.verdict, Verdict::Remediate, "{}", said(l));
    assert!(said(l).contains("named like an interpreter"), "{}", said(l));
    assert_eq!(l.judged_path.as_deref(), Some(Path::new(&exe)));
    let (_, quarantined) = only_plan(&findings);
    assert!(
        quarantined.contains(&PathBuf::from(&exe)),
        "{quarantined:?}"
    );
    assert!(
        !quarantined.contains(&PathBuf::from(&decoy)),
        "{quarantined:?}"
    );
}

#[test]
fn an_allow_rule_by_identity_needs_a_valid_signature() {
    let exe = home(".acme/acme-web");
    let scene = |p| {
        Scene::new()
            .process(p)
            .listen(loopback(28160, &[2600]), Some(http("")))
    };
    let mut allow = rule("acme-ok", RuleAction::Allow);
    allow.signing_id = Some("com.acme.web".into());
    let policy = policy_with(vec![allow]);

    // Ad-hoc signed with the allowed identifier written into it.
    let mut claimed = ad_hoc(process(2600, 1, &exe, "acme-web"));
    claimed.signature.identifier = Some("com.acme.web".into());
    let findings = scene(claimed).judge(&policy);
    let f = on_port(&findings, 28160);
    assert_eq!(
        (f.verdict, f.rule.as_deref()),
        (Verdict::Remediate, None),
        "{}",
        said(f)
    );
    assert!(
        said(f).contains(
            "admin allow rule rule:acme-ok names SigningID com.acme.web, which it only claims: \
             its signature is ad-hoc, so the rule does not apply"
        ),
        "{}",
        said(f)
    );

    // Validly signed as com.acme.web: the admin's rule holds.
    let valid = signed(
        process(2600, 1, &exe, "acme-web"),
        "ACMETEAM01",
        "com.acme.web",
    );
    let findings = scene(valid).judge(&policy);
    let f = on_port(&findings, 28160);
    assert_eq!(
        (f.verdict, f.rule.as_deref()),
        (Verdict::Allow, Some("rule:acme-ok"))
    );

    // A plist label is a claim too: an allow by Label needs the running
    // program's signature to validate.
    let mut by_label = rule("label-ok", RuleAction::Allow);
    by_label.label = Some("com.acme.web".into());
    let findings = scene(process(2600, 1, &exe, "acme-web"))
        .item(launch_agent(&plist("com.acme.web"), "com.acme.web", &exe))
        .judge(&policy_with(vec![by_label]));
    for f in &findings {
        assert_eq!(f.verdict, Verdict::Remediate, "{}", said(f));
        assert!(
            said(f).contains("it is not signed, so the rule does not apply"),
            "{}",
            said(f)
        );
    }

    // A deny rule matches a claimed identity: claiming it only hurts.
    let mut deny = rule("no-acme", RuleAction::Deny);
    deny.signing_id = Some("com.acme.web".into());
    let mut claimed = ad_hoc(process(2600, 1, &home("code/app/server"), "server"));
    claimed.signature.identifier = Some("com.acme.web".into());
    let findings = scene(interactive(claimed)).judge(&policy_with(vec![deny]));
    let f = on_port(&findings, 28160);
    assert_eq!(
        (f.verdict, f.rule.as_deref()),
        (Verdict::Remediate, Some("rule:no-acme"))
    );
}
