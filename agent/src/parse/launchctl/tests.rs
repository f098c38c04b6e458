//! Fixture and property tests of the `launchctl` output parsers. Fixture
//! sources: `tests/fixtures/launchctl/README.md`.

use std::path::Path;

use proptest::prelude::*;

use super::*;

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/launchctl")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn running_agent_reads_top_level_facts_not_nested_ones() {
    let s = parse_print(&fixture("print-gui-running.txt")).unwrap();
    assert_eq!(s.target.as_deref(), Some("gui/501/us.example.opener"));
    assert_eq!(s.state, Some(JobState::Running));
    // The endpoints block has `pid = 999` and `state = waiting` further
    // down: a parser that ignores indentation reports those.
    assert_eq!(s.pid, Some(4242));
    assert_eq!(
        s.program.as_deref(),
        Some("/Users/a/.example/Opener.app/Contents/MacOS/Opener")
    );
    assert_eq!(
        s.path.as_deref(),
        Some("/Users/a/Library/LaunchAgents/us.example.opener.plist")
    );
    assert_eq!(s.last_exit, Some(LastExit::NeverExited));
    assert!(s.ambiguous.is_empty());
    assert!(s.is_running());
}

#[test]
fn exited_agent_with_named_exit_code() {
    let s = parse_print(&fixture("print-gui-exited-config.txt")).unwrap();
    assert_eq!(s.target.as_deref(), Some("gui/501/com.example.helper"));
    assert_eq!(s.state, Some(JobState::NotRunning));
    assert_eq!(s.pid, None);
    assert_eq!(
        s.last_exit,
        Some(LastExit::Code {
            code: 78,
            name: Some("EX_CONFIG".into())
        })
    );
    assert!(!s.is_running());
}

#[test]
fn system_daemon_spawn_scheduled_ignores_trigger_block() {
    let s = parse_print(&fixture("print-system-spawn-scheduled.txt")).unwrap();
    assert_eq!(s.target.as_deref(), Some("system/com.example.updater"));
    assert_eq!(s.state, Some(JobState::SpawnScheduled));
    assert_eq!(s.pid, None, "the trigger block's pid is not the job's");
    assert_eq!(
        s.program.as_deref(),
        Some("/Library/Application Support/Example/updater"),
        "values keep their inner spaces"
    );
    assert_eq!(
        s.last_exit,
        Some(LastExit::Code {
            code: 1,
            name: None
        })
    );
}

#[test]
fn planted_one_tab_lines_make_the_field_ambiguous_not_wrong() {
    let s = parse_print(&fixture("print-injected-argument.txt")).unwrap();
    assert_eq!(s.pid, None, "neither the planted pid 1 nor 5151 is trusted");
    assert_eq!(s.state, None);
    assert_eq!(s.ambiguous, vec!["state".to_string(), "pid".to_string()]);
    assert_eq!(s.program.as_deref(), Some("/Users/a/.sneaky/helper"));
    assert!(!s.is_running(), "ambiguity never invents a running job");
}

#[test]
fn print_value_forms() {
    let s = parse_print(
        "system/x = {\n\tpid = 0\n\tstate = waiting\n\tlast exit code = -9: Killed\n}\n",
    )
    .unwrap();
    assert_eq!(s.pid, None, "pid 0 is not a process");
    assert_eq!(s.state, Some(JobState::Other("waiting".into())));
    assert_eq!(
        s.last_exit,
        Some(LastExit::Code {
            code: -9,
            name: Some("Killed".into())
        })
    );
    let s = parse_print("system/x = {\n\tlast exit code = soon\n\tpid = many\n}").unwrap();
    assert_eq!(s.last_exit, Some(LastExit::Other("soon".into())));
    assert_eq!(s.pid, None);
    // Same value twice is not a conflict; CRLF line ends are tolerated.
    let s = parse_print("gui/1/x = {\r\n\tpid = 7\r\n\tpid = 7\r\n}\r\n").unwrap();
    assert_eq!(s.pid, Some(7));
    assert!(s.ambiguous.is_empty());
    // A header alone (a minimal stand-in) is a job with no facts.
    let s = parse_print("gui/501/x = {\n}\n").unwrap();
    assert_eq!(s.target.as_deref(), Some("gui/501/x"));
    assert_eq!(
        s,
        JobStatus {
            target: Some("gui/501/x".into()),
            ..JobStatus::default()
        }
    );
}

#[test]
fn print_rejects_what_is_not_print_output() {
    for text in [
        "",
        "\n\n",
        "usage: launchctl print <target>",
        "state = running\n",
    ] {
        assert!(
            matches!(parse_print(text), Err(PrintError::NotPrintOutput { .. })),
            "{text:?}"
        );
    }
    let err = parse_print("Segmentation fault").unwrap_err();
    assert!(err.to_string().contains("LaunchctlPath"), "{err}");
}

#[test]
fn not_found_forms() {
    let f = parse_failure(Some(113), &fixture("print-not-found-gui.txt"));
    assert_eq!(
        f.kind,
        FailureKind::ServiceNotFound {
            service: Some("com.example.helper".into()),
            domain: Some("user gui: 501".into())
        }
    );
    assert!(f.message.starts_with("Could not find service"), "{f:?}");
    assert!(f.is_not_loaded());

    let f = parse_failure(Some(113), &fixture("print-not-found-system.txt"));
    assert_eq!(
        f.kind,
        FailureKind::ServiceNotFound {
            service: Some("com.example.updater".into()),
            domain: Some("system".into())
        }
    );
    // Unquoted name (some versions), and a bare 113 with no text.
    let f = parse_failure(
        Some(113),
        "Could not find service com.x.y in domain for system",
    );
    assert!(
        matches!(&f.kind, FailureKind::ServiceNotFound { service: Some(s), .. } if s == "com.x.y")
    );
    let f = parse_failure(Some(113), "");
    assert_eq!(
        f.kind,
        FailureKind::ServiceNotFound {
            service: None,
            domain: None
        }
    );
    assert_eq!(f.message, "exit code 113, no message");
}

#[test]
fn operation_failures() {
    let f = parse_failure(Some(3), &fixture("bootout-no-such-process.txt"));
    assert_eq!(
        f.kind,
        FailureKind::Operation {
            operation: "Boot-out".into(),
            errno: 3,
            description: "No such process".into()
        }
    );
    assert!(f.is_not_loaded());

    let f = parse_failure(Some(113), &fixture("bootout-113.txt"));
    assert!(f.is_not_loaded());

    let f = parse_failure(Some(1), &fixture("bootout-not-permitted.txt"));
    assert!(matches!(f.kind, FailureKind::Operation { errno: 1, .. }));
    assert!(!f.is_not_loaded());
    assert!(!f.is_io_error());

    let f = parse_failure(Some(5), &fixture("bootout-io-error.txt"));
    assert!(!f.is_not_loaded(), "5 is ambiguous");
    assert!(f.is_io_error());

    let f = parse_failure(Some(5), &fixture("bootstrap-io-error.txt"));
    assert_eq!(
        f.kind,
        FailureKind::Operation {
            operation: "Bootstrap".into(),
            errno: 5,
            description: "Input/output error".into()
        }
    );
    assert_eq!(f.message, "Bootstrap failed: 5: Input/output error");
    // ESRCH means "not loaded" only for a bootout.
    let f = parse_failure(Some(3), "Bootstrap failed: 3: No such process");
    assert!(!f.is_not_loaded());

    let f = parse_failure(Some(125), &fixture("bootout-no-domain.txt"));
    assert_eq!(
        f.kind,
        FailureKind::DomainNotFound {
            domain: Some("user gui: 502".into())
        }
    );
    assert!(f.is_not_loaded());
}

#[test]
fn unknown_failures_keep_a_clean_message() {
    let f = parse_failure(Some(64), "Bad request.\nUsage: launchctl bootout ...\n");
    assert_eq!(f.kind, FailureKind::Other);
    assert_eq!(f.message, "Usage: launchctl bootout ...");
    let f = parse_failure(None, "");
    assert_eq!(f.message, "killed by a signal, no message");
    let f = parse_failure(Some(1), "weird\u{1b}[31m text");
    assert_eq!(f.message, "weird[31m text", "control characters dropped");
    let long = "x".repeat(5000);
    assert_eq!(parse_failure(Some(1), &long).message.len(), MAX_MESSAGE);
}

proptest! {
    #[test]
    fn print_never_panics(s in "\\PC{0,400}") {
        let _ = parse_print(&s);
    }

    #[test]
    fn print_lines_never_panic(lines in proptest::collection::vec(
        prop_oneof![
            Just("gui/501/x = {".to_string()),
            Just("\tpid = 12".to_string()),
            Just("\tstate = running".to_string()),
            Just("\t\tpid = 99".to_string()),
            Just("\targuments = {".to_string()),
            Just("\t}".to_string()),
            Just("}".to_string()),
            "\t[a-z ]{0,12} = [ -~]{0,20}",
            "\\PC{0,30}",
        ],
        0..40,
    )) {
        let text = lines.join("\n");
        if let Ok(s) = parse_print(&text) {
            // Nested lines never supply a top-level fact.
            prop_assert_ne!(s.pid, Some(99));
            prop_assert!(s.pid != Some(0));
        }
    }

    #[test]
    fn nested_lines_never_change_the_result(
        pid in 1u32..100_000,
        nested in proptest::collection::vec("\t\t[a-z ]{1,10} = [ -~]{0,20}", 0..10),
    ) {
        let plain = format!("gui/501/x = {{\n\tpid = {pid}\n\tblock = {{\n\t}}\n}}\n");
        let with = format!(
            "gui/501/x = {{\n\tpid = {pid}\n\tblock = {{\n{}\n\t}}\n}}\n",
            nested.join("\n")
        );
        prop_assert_eq!(parse_print(&plain).unwrap(), parse_print(&with).unwrap());
    }

    #[test]
    fn failure_never_panics(code in proptest::option::of(any::<i32>()), s in "\\PC{0,300}") {
        let f = parse_failure(code, &s);
        prop_assert!(f.message.chars().count() <= MAX_MESSAGE);
        prop_assert!(!f.message.chars().any(char::is_control));
    }
}

#[test]
fn bootout_in_progress_is_its_own_answer() {
    let f = parse_failure(Some(36), "Boot-out failed: 36: Operation now in progress\n");
    assert!(f.is_in_progress());
    assert!(!f.is_not_loaded() && !f.is_io_error());
    assert_eq!(f.message, "Boot-out failed: 36: Operation now in progress");
    for other in [
        "Boot-out failed: 5: Input/output error",
        "Boot-out failed: 3: No such process",
        "Boot-out failed: 1: Operation not permitted",
    ] {
        assert!(!parse_failure(Some(1), other).is_in_progress(), "{other}");
    }
}
