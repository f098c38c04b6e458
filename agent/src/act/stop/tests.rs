//! Tests of the launchd stop step against a `launchctl` stand-in: a shell
//! script in a temporary directory that records its argv and answers each
//! verb with the exit code and text real launchctl gives (shapes in
//! `tests/fixtures/launchctl/README.md`).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::*;
use crate::parse::launchctl::{FailureKind, JobState};

const T: Duration = Duration::from_secs(10);

/// A fake `launchctl`. Every run appends its arguments, one per line, then
/// `--`, to `argv` beside it.
struct Shim {
    _dir: tempfile::TempDir,
    path: PathBuf,
    log: PathBuf,
}

impl Shim {
    /// `body` is shell run after the argv is recorded; `$1` is the verb.
    fn new(body: &str) -> Shim {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("launchctl");
        let log = dir.path().join("argv");
        let script = format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\" >> '{log}'; done\nprintf -- '--\\n' >> '{log}'\n{body}\n",
            log = log.display()
        );
        // Written by a child process rather than by us: a file this process
        // has open for writing can leak, for an instant, into a child
        // another test is forking, and exec of the shim would then fail
        // with ETXTBSY.
        let mut writer = Command::new("/bin/sh")
            .args(["-c", "cat > \"$1\" && chmod 700 \"$1\"", "sh"])
            .arg(&path)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        writer
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(writer.wait().unwrap().success());
        Shim {
            _dir: dir,
            path,
            log,
        }
    }

    fn calls(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut calls = vec![];
        let mut current = vec![];
        for line in text.lines() {
            if line == "--" {
                calls.push(std::mem::take(&mut current));
            } else {
                current.push(line.to_string());
            }
        }
        calls
    }
}

fn label(s: &str) -> Label {
    Label::parse(s).unwrap()
}

fn agent_target() -> Domain {
    Domain::Gui {
        uid: 501,
        label: label("com.example.helper"),
    }
}

fn item(kind: PersistenceKind, label: Option<&str>, owner: Option<u32>) -> PersistenceItem {
    PersistenceItem {
        kind,
        path: "/Users/a/Library/LaunchAgents/com.example.helper.plist".into(),
        label: label.map(str::to_string),
        program: Some("/Users/a/.example/helper".into()),
        args: vec![],
        run_at_load: true,
        keep_alive: true,
        sockets: vec![],
        associated_bundle_ids: vec![],
        owner_uid: owner,
        parent_identifier: None,
        developer: None,
        disposition: None,
    }
}

#[test]
fn labels_are_checked() {
    for good in [
        "com.example.helper",
        "us.zoom.ZoomOpener",
        "a",
        "x-y_z@1",
        &"a".repeat(255),
    ] {
        assert_eq!(label(good).as_str(), good);
    }
    for (bad, why) in [
        ("", "empty"),
        ("a/b", "'/'"),
        ("../x", "'/'"),
        ("a b", "whitespace"),
        ("a\tb", "whitespace"),
        ("a\nb", "whitespace"),
        ("x;\u{a0}rm", "whitespace"),
        ("a\u{7}", "control"),
        ("a\0", "control"),
    ] {
        let err = Label::parse(bad).unwrap_err();
        assert!(err.reason.contains(why), "{bad:?}: {err}");
    }
    let long = Label::parse(&"a".repeat(300)).unwrap_err();
    assert!(long.reason.contains("255"));
    assert_eq!(
        long.label.len(),
        255,
        "the error does not carry all of a huge label"
    );
}

#[test]
fn domains_of_items() {
    let daemon = item(
        PersistenceKind::LaunchDaemon,
        Some("com.example.d"),
        Some(0),
    );
    assert_eq!(
        domain_for(&daemon, None).unwrap().to_string(),
        "system/com.example.d"
    );

    let agent = item(
        PersistenceKind::LaunchAgent,
        Some("com.example.helper"),
        Some(501),
    );
    let d = domain_for(&agent, Some(777)).unwrap();
    assert_eq!(
        d.to_string(),
        "gui/501/com.example.helper",
        "the plist owner wins"
    );
    assert_eq!(d.label().as_str(), "com.example.helper");

    let login = item(
        PersistenceKind::LoginItem,
        Some("com.example.login"),
        Some(502),
    );
    assert_eq!(
        domain_for(&login, None).unwrap().to_string(),
        "gui/502/com.example.login"
    );

    // A root-owned global agent runs in the user's domain, not gui/0.
    let global = item(PersistenceKind::LaunchAgent, Some("com.example.g"), Some(0));
    assert_eq!(
        domain_for(&global, Some(503)).unwrap().to_string(),
        "gui/503/com.example.g"
    );
    let unknown = item(PersistenceKind::LaunchAgent, Some("com.example.g"), None);
    assert_eq!(
        domain_for(&unknown, Some(504)).unwrap().to_string(),
        "gui/504/com.example.g"
    );
    for (it, uid) in [(&global, None), (&global, Some(0)), (&unknown, None)] {
        let err = domain_for(it, uid).unwrap_err();
        assert!(matches!(err, StopError::NoUserDomain { .. }), "{err}");
        assert!(
            err.to_string().contains("com.example.helper.plist"),
            "{err}"
        );
    }
}

fn targets(
    it: &PersistenceItem,
    process_uid: Option<u32>,
    logged_in: Result<Vec<u32>, String>,
) -> Result<Vec<String>, StopError> {
    let asked = std::cell::Cell::new(false);
    let console = || {
        asked.set(true);
        logged_in.clone()
    };
    let out = domains_for(it, process_uid, &console)
        .map(|ds| ds.iter().map(ToString::to_string).collect::<Vec<_>>());
    // Who is logged in matters only to a root-owned agent.
    let root_agent = it.kind == PersistenceKind::LaunchAgent && it.owner_uid == Some(0);
    assert!(root_agent || !asked.get(), "console users asked for {it:?}");
    out
}

#[test]
fn a_root_owned_agent_is_booted_out_of_every_logged_in_users_gui_domain() {
    let global = item(PersistenceKind::LaunchAgent, Some("com.example.g"), Some(0));
    assert_eq!(
        targets(&global, None, Ok(vec![502, 501])).unwrap(),
        ["gui/501/com.example.g", "gui/502/com.example.g"]
    );
    // The running helper's uid is one more (or the same) domain; root's is
    // never one (no gui/0 on a Mac).
    assert_eq!(
        targets(&global, Some(503), Ok(vec![501, 0])).unwrap(),
        ["gui/501/com.example.g", "gui/503/com.example.g"]
    );
    assert_eq!(
        targets(&global, Some(501), Ok(vec![501])).unwrap(),
        ["gui/501/com.example.g"]
    );
    // Nobody logged in and nothing running: loaded nowhere.
    assert!(targets(&global, None, Ok(vec![])).unwrap().is_empty());
    // Not knowing who is logged in is said, naming the plist.
    let err = targets(&global, Some(501), Err("utmpx: bad".into())).unwrap_err();
    assert!(
        matches!(&err, StopError::ConsoleUsers { detail, .. } if detail == "utmpx: bad"),
        "{err}"
    );
    assert!(
        err.to_string().contains("com.example.helper.plist"),
        "{err}"
    );
    // Its label is checked like any other.
    let bad = item(PersistenceKind::LaunchAgent, Some("a/b"), Some(0));
    assert!(matches!(
        targets(&bad, None, Ok(vec![501])),
        Err(StopError::BadLabel { .. })
    ));
}

#[test]
fn a_users_agent_stays_in_its_owners_domain_whoever_is_logged_in() {
    // Owned by 501 (ann): bob (502) being logged in, or the helper
    // running as 502, never sends a bootout into bob's domain.
    let ann = item(
        PersistenceKind::LaunchAgent,
        Some("com.example.a"),
        Some(501),
    );
    assert_eq!(
        targets(&ann, Some(502), Ok(vec![501, 502])).unwrap(),
        ["gui/501/com.example.a"]
    );
    let daemon = item(
        PersistenceKind::LaunchDaemon,
        Some("com.example.d"),
        Some(0),
    );
    assert_eq!(
        targets(&daemon, None, Ok(vec![501, 502])).unwrap(),
        ["system/com.example.d"]
    );
}

#[test]
fn items_without_a_usable_label_are_refused() {
    let none = item(PersistenceKind::LaunchAgent, None, Some(501));
    assert!(matches!(
        domain_for(&none, None),
        Err(StopError::NoLabel { .. })
    ));
    let evil = item(PersistenceKind::LaunchAgent, Some("x; rm -rf ~"), Some(501));
    let err = domain_for(&evil, None).unwrap_err();
    assert!(matches!(err, StopError::BadLabel { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("whitespace") && text.contains("com.example.helper.plist"),
        "{text}"
    );
    let slash = item(PersistenceKind::LaunchDaemon, Some("a/../../b"), Some(0));
    assert!(matches!(
        domain_for(&slash, None),
        Err(StopError::BadLabel { .. })
    ));
}

#[test]
fn bootout_success_passes_the_target_as_one_argument() {
    let shim = Shim::new(&format!(
        r#"case "$1" in
  bootout) exit 0 ;;
  print) {NOT_FOUND} ;;
esac"#
    ));
    assert_eq!(
        bootout(&shim.path, &agent_target(), T).unwrap(),
        BootoutOutcome::Unloaded {
            from: agent_target()
        }
    );
    // Then `print` confirms launchd has let the job go.
    assert_eq!(
        shim.calls(),
        vec![
            vec!["bootout", "gui/501/com.example.helper"],
            vec!["print", "gui/501/com.example.helper"]
        ]
    );
    let daemon = Domain::System {
        label: label("com.example.d"),
    };
    bootout(&shim.path, &daemon, T).unwrap();
    assert_eq!(shim.calls()[2], vec!["bootout", "system/com.example.d"]);
}

/// `print`'s answer for a job launchd does not know.
const NOT_FOUND: &str = r#"echo 'Bad request.'; echo "Could not find service \"x\" in domain for user gui: 501" >&2; exit 113"#;

#[test]
fn bootout_in_progress_waits_until_print_no_longer_finds_the_job() {
    // launchd answers 36 while it is still stopping the job; the first
    // print still shows it, the second does not.
    let shim = Shim::new(&format!(
        r#"d=$(dirname "$0")
case "$1" in
  bootout) echo 'Boot-out failed: 36: Operation now in progress' >&2; exit 36 ;;
  print)
    if [ -e "$d/printed" ]; then {NOT_FOUND}; fi
    : > "$d/printed"
    printf 'gui/501/com.example.helper = {{\n\tstate = running\n\tpid = 4242\n}}\n' ;;
esac"#
    ));
    let outcome = bootout(&shim.path, &agent_target(), T).unwrap();
    assert_eq!(
        outcome,
        BootoutOutcome::Unloaded {
            from: agent_target()
        }
    );
    let verbs: Vec<String> = shim.calls().into_iter().map(|c| c[0].clone()).collect();
    assert_eq!(verbs, ["bootout", "print", "print"]);

    // A job that never goes: an error naming the wait, not a success.
    let stuck = Shim::new(
        r#"case "$1" in
  bootout) echo 'Boot-out failed: 36: Operation now in progress' >&2; exit 36 ;;
  print) printf 'gui/501/com.example.helper = {\n\tstate = running\n\tpid = 4242\n}\n' ;;
esac"#,
    );
    let err =
        bootout_settling(&stuck.path, &agent_target(), T, Duration::from_millis(600)).unwrap_err();
    assert!(
        matches!(&err, StopError::StillLoaded { target, .. } if target == "gui/501/com.example.helper"),
        "{err}"
    );
    assert!(
        err.to_string().contains("36: Operation now in progress"),
        "{err}"
    );
}

#[test]
fn a_gui_miss_is_tried_in_the_user_domain() {
    let shim = Shim::new(&format!(
        r#"case "$1 $2" in
  "bootout gui/"*) echo 'Boot-out failed: 3: No such process' >&2; exit 3 ;;
  "bootout user/"*) exit 0 ;;
  "print "*) {NOT_FOUND} ;;
esac"#
    ));
    let outcome = bootout(&shim.path, &agent_target(), T).unwrap();
    assert_eq!(
        outcome,
        BootoutOutcome::Unloaded {
            from: Domain::User {
                uid: 501,
                label: label("com.example.helper")
            }
        }
    );
    assert_eq!(
        shim.calls(),
        vec![
            vec!["bootout", "gui/501/com.example.helper"],
            vec!["bootout", "user/501/com.example.helper"],
            vec!["print", "user/501/com.example.helper"]
        ]
    );
    // A daemon has no user domain to fall back to.
    let daemon = Domain::System {
        label: label("com.example.d"),
    };
    let missing = Shim::new("echo 'Boot-out failed: 3: No such process' >&2; exit 3");
    assert!(matches!(
        bootout(&missing.path, &daemon, T).unwrap(),
        BootoutOutcome::NotLoaded { .. }
    ));
    assert_eq!(missing.calls().len(), 1);
    assert_eq!(
        Domain::User {
            uid: 501,
            label: label("x")
        }
        .to_string(),
        "user/501/x"
    );
}

#[test]
fn a_short_timeout_is_raised_to_the_bootout_minimum() {
    // launchctl waits up to the job's ExitTimeOut; a caller's 10 s (or,
    // here, 1 ms) must not cut it off.
    let slow = Shim::new(&format!(
        r#"case "$1" in
  bootout) sleep 0.5; exit 0 ;;
  print) {NOT_FOUND} ;;
esac"#
    ));
    assert!(matches!(
        bootout(&slow.path, &agent_target(), Duration::from_millis(1)).unwrap(),
        BootoutOutcome::Unloaded { .. }
    ));
    assert!(MIN_TIMEOUT > Duration::from_secs(30));
}

#[test]
fn bootout_of_a_job_that_is_not_loaded_is_not_an_error() {
    for body in [
        r#"echo 'Could not find service "com.example.helper" in domain for user gui: 501' >&2; exit 113"#,
        "echo 'Boot-out failed: 3: No such process' >&2; exit 3",
        "echo 'Boot-out failed: 113: Could not find specified service' >&2; exit 113",
        "echo 'Could not find domain for user gui: 501' >&2; exit 125",
        "exit 113",
    ] {
        let shim = Shim::new(body);
        let outcome = bootout(&shim.path, &agent_target(), T).unwrap();
        assert!(
            matches!(outcome, BootoutOutcome::NotLoaded { .. }),
            "{body}: {outcome:?}"
        );
        // Not in gui/501: the user domain is tried too, with the same answer.
        let calls = shim.calls();
        assert_eq!(calls.len(), 2, "{body}");
        assert_eq!(calls[1], vec!["bootout", "user/501/com.example.helper"]);
        assert!(
            matches!(outcome, BootoutOutcome::NotLoaded { ref detail } if detail.contains("user/501/com.example.helper")),
            "{outcome:?}"
        );
    }
}

#[test]
fn bootout_failure_is_a_typed_error_with_stderr() {
    let shim = Shim::new("echo 'Boot-out failed: 1: Operation not permitted' >&2; exit 1");
    let err = bootout(&shim.path, &agent_target(), T).unwrap_err();
    match &err {
        StopError::Launchctl {
            verb,
            target,
            code,
            failure,
            stderr,
            ..
        } => {
            assert_eq!(*verb, "bootout");
            assert_eq!(target, "gui/501/com.example.helper");
            assert_eq!(*code, Some(1));
            assert!(matches!(
                failure.kind,
                FailureKind::Operation { errno: 1, .. }
            ));
            assert_eq!(stderr, "Boot-out failed: 1: Operation not permitted\n");
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("Operation not permitted") && text.contains("root"),
        "{text}"
    );
}

#[test]
fn bootout_io_error_is_settled_by_print() {
    let gone = Shim::new(
        r#"case "$1" in
  bootout) echo 'Boot-out failed: 5: Input/output error' >&2; exit 5 ;;
  print) echo 'Bad request.'; echo "Could not find service \"x\" in domain for user gui: 501" >&2; exit 113 ;;
esac"#,
    );
    let outcome = bootout(&gone.path, &agent_target(), T).unwrap();
    assert!(
        matches!(outcome, BootoutOutcome::NotLoaded { ref detail } if detail.contains("5: Input/output"))
    );
    let calls = gone.calls();
    assert_eq!(
        calls.len(),
        4,
        "gui: bootout + print, then user: bootout + print"
    );
    assert_eq!(calls[1], vec!["print", "gui/501/com.example.helper"]);

    let still_loaded = Shim::new(
        r#"case "$1" in
  bootout) echo 'Boot-out failed: 5: Input/output error' >&2; exit 5 ;;
  print) printf 'gui/501/com.example.helper = {\n\tstate = running\n\tpid = 4242\n}\n'; exit 0 ;;
esac"#,
    );
    let err = bootout(&still_loaded.path, &agent_target(), T).unwrap_err();
    assert!(
        matches!(err, StopError::Launchctl { code: Some(5), .. }),
        "{err}"
    );
}

#[test]
fn print_reports_the_job_or_none() {
    let running = Shim::new(
        r#"printf 'gui/501/com.example.helper = {\n\tstate = running\n\tprogram = /Users/a/.example/helper\n\targuments = {\n\t\tpid = 1\n\t}\n\tpid = 4242\n\tlast exit code = (never exited)\n}\n'"#,
    );
    let status = print(&running.path, &agent_target(), T).unwrap().unwrap();
    assert_eq!(status.state, Some(JobState::Running));
    assert_eq!(status.pid, Some(4242));
    assert_eq!(status.target.as_deref(), Some("gui/501/com.example.helper"));
    assert_eq!(
        running.calls(),
        vec![vec!["print", "gui/501/com.example.helper"]]
    );

    let missing = Shim::new(
        r#"echo 'Bad request.'; echo 'Could not find service "com.example.helper" in domain for user gui: 501'; exit 113"#,
    );
    assert_eq!(print(&missing.path, &agent_target(), T).unwrap(), None);

    let garbage = Shim::new("echo 'hello from a fake'; exit 0");
    let err = print(&garbage.path, &agent_target(), T).unwrap_err();
    assert!(matches!(err, StopError::Print { .. }), "{err}");

    let denied =
        Shim::new("echo 'Could not print service: 1: Operation not permitted' >&2; exit 1");
    let err = print(&denied.path, &agent_target(), T).unwrap_err();
    assert!(
        matches!(
            err,
            StopError::Launchctl {
                verb: "print",
                code: Some(1),
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_missing_or_hanging_launchctl_is_a_command_error() {
    let missing = Path::new("/nonexistent/launchctl");
    let err = bootout(missing, &agent_target(), T).unwrap_err();
    assert!(
        matches!(
            &err,
            StopError::Command {
                verb: "bootout",
                source: CommandError::Spawn { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("/nonexistent/launchctl"), "{err}");

    let hang = Shim::new("exec sleep 30");
    let started = std::time::Instant::now();
    let err = bootout_settling(
        &hang.path,
        &agent_target(),
        Duration::from_millis(300),
        Duration::from_millis(300),
    )
    .unwrap_err();
    assert!(
        matches!(
            &err,
            StopError::Command {
                source: CommandError::Timeout { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_user_reaches_only_their_own_gui_domain() {
    let gui = |uid| Domain::Gui {
        uid,
        label: label("com.acme.helper"),
    };
    let system = Domain::System {
        label: label("com.acme.helper"),
    };
    assert!(gui(501).within_reach(501));
    assert!(!gui(502).within_reach(501));
    assert!(!system.within_reach(501));
    assert!(system.within_reach(0) && gui(501).within_reach(0));
}
