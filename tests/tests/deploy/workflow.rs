//! `.github/workflows/macos.yml` cannot run here (it needs a macOS
//! runner), so it is checked by parsing: the steps that build, test and
//! package exist, in an order that works, and each `run:` block passes
//! shellcheck.

use serde_norway::Value;

use super::{assert_shellcheck_clean, read_text, repo, shellcheck};

const WORKFLOW: &str = ".github/workflows/macos.yml";

fn workflow() -> Value {
    serde_norway::from_str(&read_text(WORKFLOW))
        .unwrap_or_else(|e| panic!("{WORKFLOW} is not valid YAML: {e}"))
}

/// The steps of the one job, as (name, uses, run).
fn steps(doc: &Value) -> Vec<(String, String, String)> {
    let jobs = doc["jobs"].as_mapping().expect("jobs is a mapping");
    assert_eq!(jobs.len(), 1, "one job builds, tests and packages");
    let (_, job) = jobs.iter().next().expect("one job");
    let runs_on = job["runs-on"].as_str().expect("runs-on is a string");
    assert!(
        runs_on.starts_with("macos-"),
        "runs-on {runs_on} is not a macOS runner"
    );
    job["steps"]
        .as_sequence()
        .expect("steps is a list")
        .iter()
        .map(|s| {
            let text = |k: &str| {
                s.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            (text("name"), text("uses"), text("run"))
        })
        .collect()
}

/// Index of the first step whose `uses` or `run` contains every needle.
fn position(steps: &[(String, String, String)], needles: &[&str]) -> usize {
    steps
        .iter()
        .position(|(_, uses, run)| needles.iter().all(|n| uses.contains(n) || run.contains(n)))
        .unwrap_or_else(|| panic!("{WORKFLOW}: no step with {needles:?}"))
}

#[test]
fn workflow_builds_tests_and_packages_on_macos() {
    let doc = workflow();
    let on = &doc["on"];
    assert!(!on.is_null(), "{WORKFLOW} has no `on:` triggers");
    for trigger in ["push", "pull_request"] {
        assert!(
            on.get(trigger).is_some(),
            "{WORKFLOW} does not run on {trigger}"
        );
    }
    let steps = steps(&doc);

    let checkout = position(&steps, &["actions/checkout@"]);
    let targets = position(
        &steps,
        &[
            "rustup target add",
            "aarch64-apple-darwin",
            "x86_64-apple-darwin",
        ],
    );
    let test = position(&steps, &["cargo test", "-p lenscap"]);
    let arm = position(
        &steps,
        &["cargo build --release", "--target aarch64-apple-darwin"],
    );
    let intel = position(
        &steps,
        &["cargo build --release", "--target x86_64-apple-darwin"],
    );
    let pkg = position(&steps, &["installer/build-pkg.sh"]);
    let upload = position(&steps, &["actions/upload-artifact@"]);
    assert!(
        checkout < targets && targets < test,
        "checkout, then Rust, then tests"
    );
    assert!(test < arm && test < intel, "test before the release builds");
    assert!(
        arm < pkg && intel < pkg && pkg < upload,
        "build, package, upload"
    );

    let job = doc["jobs"]
        .as_mapping()
        .expect("jobs")
        .values()
        .next()
        .expect("one job");
    let with = &job["steps"][upload]["with"];
    let path = with["path"].as_str().expect("upload-artifact has a path");
    assert!(
        path.starts_with("dist/") && path.ends_with(".pkg"),
        "uploads {path}, not the pkg"
    );
    assert_eq!(
        with["if-no-files-found"].as_str(),
        Some("error"),
        "a missing pkg must fail the run"
    );

    // The scripts the workflow calls exist and are executable in git's eyes.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(repo().join("installer/build-pkg.sh"))
        .expect("installer/build-pkg.sh exists")
        .permissions()
        .mode();
    assert!(
        mode & 0o111 != 0,
        "installer/build-pkg.sh is not executable"
    );
}

#[test]
fn workflow_run_blocks_pass_shellcheck() {
    let Some(shellcheck) = shellcheck() else {
        return;
    };
    let doc = workflow();
    for (name, _, run) in steps(&doc) {
        if run.is_empty() {
            continue;
        }
        // ${{ … }} is expanded by Actions before the shell sees it.
        let mut script = String::new();
        let mut rest = run.as_str();
        while let Some(at) = rest.find("${{") {
            script.push_str(&rest[..at]);
            let end = rest[at..]
                .find("}}")
                .map(|e| at + e + 2)
                .expect("unterminated ${{");
            script.push_str("EXPR");
            rest = &rest[end..];
        }
        script.push_str(rest);
        // Actions runs `bash -e -o pipefail {0}`.
        let script = format!("#!/bin/bash\nset -eo pipefail\n{script}");
        assert_shellcheck_clean(
            shellcheck,
            &format!("{WORKFLOW} step `{name}`"),
            None,
            Some(&script),
        );
    }
}

#[test]
fn workflow_runs_the_macos_end_to_end_script_after_the_unit_tests() {
    let script = repo().join("tests/macos/e2e.sh");
    let helper = repo().join("tests/macos/helper.c");
    assert!(script.is_file(), "{} missing", script.display());
    assert!(helper.is_file(), "{} missing", helper.display());
    use std::os::unix::fs::PermissionsExt;
    assert!(
        script.metadata().expect("stat").permissions().mode() & 0o111 != 0,
        "tests/macos/e2e.sh is not executable"
    );
    let doc = workflow();
    let steps = steps(&doc);
    let test = position(&steps, &["cargo test", "-p lenscap"]);
    let pkg = position(&steps, &["installer/build-pkg.sh"]);
    let e2e = position(&steps, &["sudo tests/macos/e2e.sh", "--pkg"]);
    assert!(
        test < e2e && pkg < e2e,
        "{WORKFLOW}: the end-to-end step must follow the unit tests and the pkg build"
    );
    // The log is kept even when a check fails.
    let upload = steps
        .iter()
        .enumerate()
        .position(|(i, (_, uses, _))| i > e2e && uses.starts_with("actions/upload-artifact@"))
        .expect("an upload step after the end-to-end run");
    let step = doc["jobs"]
        .as_mapping()
        .and_then(|jobs| jobs.iter().next())
        .map(|(_, job)| &job["steps"][upload])
        .expect("one job");
    assert_eq!(step["if"].as_str(), Some("always()"), "{step:?}");
    assert!(
        step["with"]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("e2e.log")),
        "{step:?}"
    );
}

#[test]
fn the_macos_end_to_end_script_passes_shellcheck_and_refuses_linux() {
    let script = repo().join("tests/macos/e2e.sh");
    if let Some(shellcheck) = shellcheck() {
        assert_shellcheck_clean(shellcheck, "tests/macos/e2e.sh", Some(&script), None);
    }
    // Off macOS it says so and exits 2 (a precondition), touching nothing.
    let out = std::process::Command::new("bash")
        .arg(&script)
        .output()
        .expect("run e2e.sh");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("macOS only"),
        "{out:?}"
    );
}
