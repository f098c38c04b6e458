//! Fixtures and their sources: `tests/fixtures/tcc_log/README.md`.

use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tcc_log");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
}

/// The published lines, without their `# source:` lines.
fn published() -> Vec<String> {
    fixture("published.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn every_published_line_has_its_source_beside_it() {
    let text = fixture("published.txt");
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if !l.starts_with('#') {
            assert!(
                i > 0 && lines[i - 1].starts_with("# source: https://"),
                "line {} has no source above it",
                i + 1
            );
        }
    }
}

#[test]
fn the_published_microphone_lines_are_grant_changes() {
    let lines = published();
    let allowed = parse_message(&lines[0]).unwrap().unwrap().grant;
    assert_eq!(allowed.service, TccService::Microphone);
    assert_eq!(allowed.client, "us.zoom.xos");
    assert_eq!(allowed.client_type, TccClientType::BundleId);
    assert_eq!(allowed.auth, TccAuth::Allowed);
    assert_eq!(allowed.reason, None);
    assert_eq!(allowed.last_modified, Some(1_674_472_946));
    let denied = parse_message(&lines[1]).unwrap().unwrap().grant;
    assert_eq!(denied.auth, TccAuth::Denied);
    assert_eq!(denied.last_modified, Some(1_674_472_949));
}

#[test]
fn a_service_lenscap_does_not_read_is_not_a_change_for_it() {
    // Accessibility: a real line, but not camera, microphone, screen
    // recording or Full Disk Access.
    let lines = published();
    assert_eq!(parse_message(&lines[2]), Ok(None));
}

#[test]
fn the_reason_in_parentheses_is_read() {
    // The published Accessibility line's shape with a service lenscap
    // reads (expectation, see the README: no camera line is published).
    let line = "tccd: Update Access Record: kTCCServiceCamera for ru.starmel.OpenSuperWhisper to Allowed (System Set)";
    let g = parse_message(line).unwrap().unwrap().grant;
    assert_eq!(g.service, TccService::Camera);
    assert_eq!(g.reason, Some(TccReason::SystemSet));
    assert_eq!(g.last_modified, None);
    let g = parse_message(
        "Update Access Record: kTCCServiceCamera for us.zoom.xos to Denied (Something New)",
    )
    .unwrap()
    .unwrap()
    .grant;
    assert_eq!(g.reason, None, "an unknown reason is not guessed");
}

#[test]
fn a_path_client_is_a_path_even_with_to_inside_it() {
    // Expectation (README): a path client is logged as its path.
    let line = "Update Access Record: kTCCServiceCamera for /Users/ann/path to Allowed/.opener/Opener to Allowed (User Consent)";
    let g = parse_message(line).unwrap().unwrap().grant;
    assert_eq!(g.client, "/Users/ann/path to Allowed/.opener/Opener");
    assert_eq!(g.client_type, TccClientType::Path);
    assert_eq!(g.auth, TccAuth::Allowed);
    assert_eq!(g.reason, Some(TccReason::UserConsent));
}

#[test]
fn malformed_grant_changes_are_errors_that_say_what_is_missing() {
    for bad in [
        "Update Access Record: kTCCServiceCamera",
        "Update Access Record: kTCCServiceCamera for us.zoom.xos",
        "Update Access Record: kTCCServiceCamera for us.zoom.xos to Maybe",
        "Update Access Record: kTCCServiceCamera for us.zoom.xos to Allowedish",
    ] {
        assert!(
            matches!(parse_message(bad), Err(TccLogError::Shape(_))),
            "{bad}"
        );
    }
    assert!(matches!(
        parse_message("Update Access Record: kTCCServiceCamera for  to Allowed"),
        Err(TccLogError::Empty(_))
    ));
    assert_eq!(parse_message("something else entirely"), Ok(None));
    let long = format!("{MARKER}{}", "x".repeat(MAX_LINE_LEN));
    assert_eq!(parse_message(&long), Err(TccLogError::TooLong));
}

#[test]
fn the_stream_keeps_tccd_lines_and_ignores_an_impostor() {
    let text = fixture("stream.ndjson");
    let changes: Vec<TccLogChange> = text
        .lines()
        .filter_map(parse_ndjson_line)
        .map(Result::unwrap)
        .collect();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(changes[0].grant.auth, TccAuth::Allowed);
    assert_eq!(changes[1].grant.auth, TccAuth::Denied);
    // The impostor's line (a later Denied at …950) is not among them.
    assert!(
        changes
            .iter()
            .all(|c| c.grant.last_modified != Some(1_674_472_950))
    );
}

#[test]
fn the_line_timestamp_stands_in_when_the_message_has_no_time() {
    let line = serde_json::json!({
        "processImagePath": TCCD_PATH,
        "eventMessage": "Update Access Record: kTCCServiceCamera for us.zoom.xos to Allowed (User Set)",
        "timestamp": "2023-01-23 03:22:26.410246-0800",
    })
    .to_string();
    let c = parse_ndjson_line(&line).unwrap().unwrap();
    assert_eq!(c.grant.last_modified, Some(1_674_472_946));
}

#[test]
fn the_predicate_asks_for_the_marker() {
    assert_eq!(
        log_stream_predicate(),
        r#"subsystem == "com.apple.TCC" AND eventMessage BEGINSWITH "Update Access Record:""#
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_text_never_panics(s in "\\PC{0,300}") {
            let _ = parse_message(&s);
            let _ = parse_ndjson_line(&s);
            let _ = parse_message(&format!("{MARKER}{s}"));
        }

        #[test]
        fn a_formatted_change_reads_back(
            service in proptest::sample::select(TccService::ALL.to_vec()),
            client in "(/[A-Za-z0-9 ._-]{1,20}){1,4}|[a-z]{2,8}(\\.[a-z0-9]{1,8}){1,3}",
            decision in proptest::sample::select(vec!["Allowed", "Denied", "Unknown", "Limited"]),
            at in proptest::option::of(0i64..4_000_000_000),
        ) {
            let suffix = match at {
                Some(t) => format!(" at {t} (some date)"),
                None => " (User Set)".to_string(),
            };
            let line = format!("prefix: {MARKER}{} for {client} to {decision}{suffix}", service.tcc_name());
            let g = parse_message(&line).unwrap().unwrap().grant;
            prop_assert_eq!(g.service, service);
            prop_assert_eq!(&g.client, &client);
            prop_assert_eq!(g.client_type == TccClientType::Path, client.starts_with('/'));
            prop_assert_eq!(g.last_modified, at);
            let want = DECISIONS.iter().find(|(w, _)| *w == decision).map(|(_, a)| *a);
            prop_assert_eq!(Some(g.auth), want);
        }
    }
}
