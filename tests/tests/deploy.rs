//! Deployment files, checked on Linux: there is no Mac here, so the
//! LaunchDaemon plist, the MDM profiles, the Distribution file and the
//! macOS CI workflow are checked by parsing them, and the pkg scripts by
//! running them against a temporary root with recording `launchctl`,
//! `chown` and `pkgutil` shims.
//!
//! - `deploy/files.rs`: the plist, the three profiles, the Distribution,
//!   and names that must agree across files and docs.
//! - `deploy/scripts.rs`: shellcheck, preinstall, postinstall, uninstall,
//!   build-pkg.sh's refusal off macOS.
//! - `deploy/workflow.rs`: `.github/workflows/macos.yml`.

// Test code: a failed setup step is a failed test, and the message says why.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "deploy/files.rs"]
mod files;
#[path = "deploy/scripts.rs"]
mod scripts;
#[path = "deploy/workflow.rs"]
mod workflow;

use std::path::{Path, PathBuf};
use std::process::Command;

use plist::{Dictionary, Value};

/// The launchd label, pkg identifier and preferences domain.
pub const LABEL: &str = "io.lenscap.agent";
/// Where the pkg installs the agent; every file and doc must say this.
pub const BINARY: &str = "/usr/local/bin/lenscap";

/// The repository root (this crate lives in `tests/`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository")
        .to_path_buf()
}

/// Reads a repository file as text, naming it if it is missing.
pub fn read_text(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Parses a repository plist (XML or binary) whose top level is a dict.
pub fn read_plist(rel: &str) -> Dictionary {
    let path = repo().join(rel);
    let value = Value::from_file(&path)
        .unwrap_or_else(|e| panic!("{} is not a valid plist: {e}", path.display()));
    match value {
        Value::Dictionary(d) => d,
        other => panic!("{}: top level is {other:?}, not a dict", path.display()),
    }
}

/// `d[key]` as a dict; the panic names the key and what was there.
pub fn dict<'a>(d: &'a Dictionary, key: &str) -> &'a Dictionary {
    d.get(key)
        .and_then(Value::as_dictionary)
        .unwrap_or_else(|| panic!("{key}: expected a dict, found {:?}", d.get(key)))
}

/// `d[key]` as an array.
pub fn array<'a>(d: &'a Dictionary, key: &str) -> &'a [Value] {
    d.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("{key}: expected an array, found {:?}", d.get(key)))
}

/// `d[key]` as a string.
pub fn string<'a>(d: &'a Dictionary, key: &str) -> &'a str {
    d.get(key)
        .and_then(Value::as_string)
        .unwrap_or_else(|| panic!("{key}: expected a string, found {:?}", d.get(key)))
}

/// `d[key]` as a signed integer.
pub fn integer(d: &Dictionary, key: &str) -> i64 {
    d.get(key)
        .and_then(Value::as_signed_integer)
        .unwrap_or_else(|| panic!("{key}: expected an integer, found {:?}", d.get(key)))
}

/// `d[key]` as a bool.
pub fn boolean(d: &Dictionary, key: &str) -> bool {
    d.get(key)
        .and_then(Value::as_boolean)
        .unwrap_or_else(|| panic!("{key}: expected a bool, found {:?}", d.get(key)))
}

/// The `shellcheck` to use, or `None` (after saying so) when it is missing
/// on a developer's machine. Under CI a missing shellcheck fails the test:
/// a silently skipped lint is no lint.
pub fn shellcheck() -> Option<&'static str> {
    let found = Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("shellcheck");
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "shellcheck is not installed, and CI is set: .ci/run must install it \
             (apt-get install -y shellcheck) so the pkg scripts are linted"
        );
    }
    eprintln!(
        "SKIPPED: shellcheck is not installed, so the shell scripts were not linted \
         (apt-get install -y shellcheck; under CI=1 this is a failure)"
    );
    None
}

/// Runs shellcheck on a file (or on stdin when `input` is given, as bash)
/// and fails with its report.
pub fn assert_shellcheck_clean(
    shellcheck: &str,
    name: &str,
    path: Option<&Path>,
    input: Option<&str>,
) {
    use std::io::Write;
    use std::process::Stdio;

    let mut cmd = Command::new(shellcheck);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    match (path, input) {
        (Some(path), _) => {
            cmd.arg(path);
        }
        (None, Some(_)) => {
            cmd.args(["--shell=bash", "-"]).stdin(Stdio::piped());
        }
        (None, None) => unreachable!("shellcheck needs a file or an input"),
    }
    let mut child = cmd.spawn().expect("spawn shellcheck");
    if let Some(text) = input {
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(text.as_bytes())
            .expect("write to shellcheck");
    }
    let out = child.wait_with_output().expect("wait for shellcheck");
    assert!(
        out.status.success(),
        "shellcheck found problems in {name}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
