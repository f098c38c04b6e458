//! `lenscap update` end to end against a release server on 127.0.0.1
//! (`update/server.rs`), with real `.tar.gz` releases signed in the test
//! by zipsign: a correctly signed newer release is installed and runs;
//! unsigned, wrong-key, tampered and older releases are each refused with
//! their own message and the installed file is byte-for-byte unchanged.
//!
//! The "installed" lenscap is a file in a temp dir passed as `--bin-path`,
//! never the binary under test. Also: `lenscap completions` and `lenscap
//! man` name every subcommand.

// Test code: a failed setup step is a failed test, and the message says why.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "update/server.rs"]
mod server;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use lenscap::update::{CURRENT_VERSION, asset_name, target};
use lenscap_e2e::{lenscap_bin, temp_tree};
use server::{Release, ReleaseServer, archive, new_key, public_b64, sign};
use sha2::{Digest, Sha256};
use zipsign_api::SigningKey;

const OLD_LENSCAP: &str = "#!/bin/sh\necho \"lenscap installed-before-the-test\"\n";

/// A version one minor above the installed one.
fn newer() -> String {
    let mut parts: Vec<u64> = CURRENT_VERSION
        .split(['.', '-'])
        .take(3)
        .map(|p| p.parse().expect("numeric version"))
        .collect();
    parts[1] += 1;
    parts[2] = 0;
    format!("{}.{}.{}", parts[0], parts[1], parts[2])
}

const OLDER: &str = "0.0.9";

/// A temp dir with an "installed" lenscap and a config pointing at `url`.
struct Machine {
    dir: tempfile::TempDir,
}

impl Machine {
    fn new(update_url: &str, public_key: Option<&str>) -> Machine {
        let dir = temp_tree();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        let bin = dir.path().join("bin/lenscap");
        std::fs::write(&bin, OLD_LENSCAP).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut prefs = plist::Dictionary::new();
        prefs.insert("UpdateURL".into(), update_url.into());
        if let Some(key) = public_key {
            prefs.insert("UpdatePublicKey".into(), key.into());
        }
        plist::Value::Dictionary(prefs)
            .to_file_xml(dir.path().join("config.plist"))
            .unwrap();
        Machine { dir }
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin/lenscap")
    }

    fn sha256(&self) -> String {
        let bytes = std::fs::read(self.bin()).unwrap();
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn update(&self, flag: &str) -> Output {
        let mut cmd = Command::new(lenscap_bin());
        cmd.args(["update", flag, "--config"])
            .arg(self.dir.path().join("config.plist"));
        if flag == "--apply" {
            cmd.arg("--bin-path").arg(self.bin());
        }
        cmd.env_remove("LENSCAP_LOG")
            .output()
            .expect("run lenscap update")
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Serves `version` as built by `make(archive, asset name)`.
fn serve(version: &str, make: impl FnOnce(Vec<u8>, &str) -> Vec<u8>) -> ReleaseServer {
    let name = asset_name(version, target());
    let bytes = make(archive(version), &name);
    ReleaseServer::start(Release {
        version: version.to_string(),
        asset_name: name,
        bytes,
    })
}

fn signed_by(key: &SigningKey) -> impl FnOnce(Vec<u8>, &str) -> Vec<u8> + '_ {
    move |archive, name| sign(&archive, key, name)
}

/// Runs `--apply`, expects exit 1 with `message` on stderr and the
/// installed file unchanged.
fn assert_refused(machine: &Machine, message: &str) {
    let before = machine.sha256();
    let out = machine.update("--apply");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains(message),
        "expected {message:?} in stderr:\n{stderr}"
    );
    assert!(
        text(&out.stdout).is_empty(),
        "stdout: {}",
        text(&out.stdout)
    );
    assert_eq!(
        machine.sha256(),
        before,
        "{} changed",
        machine.bin().display()
    );
    assert_eq!(std::fs::read_to_string(machine.bin()).unwrap(), OLD_LENSCAP);
}

fn run(path: &Path) -> String {
    let out = Command::new(path)
        .arg("--version")
        .output()
        .expect("run the installed binary");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

#[test]
fn signed_newer_release_is_installed_and_runs() {
    let key = new_key();
    let version = newer();
    let server = serve(&version, signed_by(&key));
    let machine = Machine::new(&server.update_url(), Some(&public_b64(&key)));
    let before = machine.sha256();
    lenscap_bin(); // built before the clock starts

    let started = Instant::now();
    let check = machine.update("--check");
    let check_time = started.elapsed();
    let stdout = text(&check.stdout);
    assert_eq!(
        check.status.code(),
        Some(10),
        "--check exits 10 when an update exists: {stdout}{}",
        text(&check.stderr)
    );
    assert!(
        stdout.contains(&format!("installed: {CURRENT_VERSION}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("latest:    {version}")),
        "{stdout}"
    );
    assert!(stdout.contains(&asset_name(&version, target())), "{stdout}");
    assert_eq!(
        machine.sha256(),
        before,
        "--check must not touch the binary"
    );

    let started = Instant::now();
    let apply = machine.update("--apply");
    let apply_time = started.elapsed();
    let stdout = text(&apply.stdout);
    assert_eq!(
        apply.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        text(&apply.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "updated {}: {CURRENT_VERSION} -> {version}",
            machine.bin().display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("launchctl kickstart -k system/io.lenscap.agent"),
        "{stdout}"
    );
    assert_ne!(machine.sha256(), before);
    assert_eq!(run(&machine.bin()), format!("lenscap {version}"));
    let mode = std::fs::metadata(machine.bin())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o111,
        0o111,
        "installed binary is executable: {mode:o}"
    );
    let requests = server.requests();
    assert!(
        requests.iter().any(|r| r.ends_with("/releases/assets/1")),
        "{requests:?}"
    );
    eprintln!(
        "timing: check {:.1} ms, apply {:.1} ms (process start to exit, loopback server)",
        check_time.as_secs_f64() * 1000.0,
        apply_time.as_secs_f64() * 1000.0
    );
}

#[test]
fn unsigned_release_is_refused() {
    let key = new_key();
    let server = serve(&newer(), |archive, _| archive);
    let machine = Machine::new(&server.update_url(), Some(&public_b64(&key)));
    assert_refused(&machine, "refusing update: archive is not signed");
}

#[test]
fn release_signed_with_another_key_is_refused() {
    let (ours, theirs) = (new_key(), new_key());
    let server = serve(&newer(), signed_by(&theirs));
    let machine = Machine::new(&server.update_url(), Some(&public_b64(&ours)));
    assert_refused(
        &machine,
        "refusing update: signature does not match the configured key",
    );
}

#[test]
fn release_tampered_after_signing_is_refused() {
    let key = new_key();
    let server = serve(&newer(), |archive, name| {
        let middle = archive.len() / 2;
        let mut signed = sign(&archive, &key, name);
        // A byte of the archive proper (the signature block is appended
        // after it), flipped after signing.
        signed[middle] ^= 0x20;
        signed
    });
    let machine = Machine::new(&server.update_url(), Some(&public_b64(&key)));
    assert_refused(
        &machine,
        "refusing update: signature does not match the configured key",
    );
}

#[test]
fn older_release_is_refused_even_when_signed() {
    assert!(
        CURRENT_VERSION != OLDER,
        "the test assumes the installed version is newer than {OLDER}"
    );
    let key = new_key();
    let server = serve(OLDER, signed_by(&key));
    let machine = Machine::new(&server.update_url(), Some(&public_b64(&key)));
    assert_refused(
        &machine,
        &format!("refusing update: {OLDER} is older than the installed {CURRENT_VERSION}"),
    );
    // Nothing was downloaded.
    assert!(
        !server.requests().iter().any(|r| r.contains("/assets/")),
        "{:?}",
        server.requests()
    );
}

#[test]
fn same_version_is_up_to_date_and_nothing_changes() {
    let key = new_key();
    let server = serve(CURRENT_VERSION, signed_by(&key));
    let machine = Machine::new(&server.update_url(), Some(&public_b64(&key)));
    let before = machine.sha256();

    let check = machine.update("--check");
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
    assert!(text(&check.stdout).contains("lenscap is up to date"));

    let apply = machine.update("--apply");
    assert_eq!(apply.status.code(), Some(0), "{}", text(&apply.stderr));
    assert!(
        text(&apply.stdout).contains(&format!(
            "lenscap {CURRENT_VERSION} is the latest release; nothing to do"
        )),
        "{}",
        text(&apply.stdout)
    );
    assert_eq!(machine.sha256(), before);
}

#[test]
fn no_key_configured_is_refused_before_contacting_the_server() {
    let key = new_key();
    let server = serve(&newer(), signed_by(&key));
    let machine = Machine::new(&server.update_url(), None);
    assert_refused(&machine, "refusing update: no UpdatePublicKey configured");
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}

#[test]
fn plain_http_to_a_remote_host_is_a_config_error() {
    let machine = Machine::new("http://updates.example.com/repos/lenscap/lenscap", None);
    let out = machine.update("--check");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("UpdateURL") && stderr.contains("plain http only to a loopback host"),
        "{stderr}"
    );
}

/// Each generated document names every subcommand, in its own syntax.
#[test]
fn completions_and_man_page_name_the_subcommands() {
    let subcommands = ["scan", "run", "status", "quarantine", "events", "update"];
    // How each format spells "this is a subcommand" (clap_complete 4.6,
    // clap_mangen 0.3 output).
    type Spelling = fn(&str) -> String;
    let cases: [(&[&str], Spelling); 4] = [
        (&["completions", "bash"], |s| format!("lenscap,{s})")),
        (&["completions", "zsh"], |s| format!("'{s}:")),
        (&["completions", "fish"], |s| format!("-a \"{s}\"")),
        (&["man"], |s| format!("lenscap\\-{s}(1)")),
    ];
    for (args, spelling) in cases {
        let out = Command::new(lenscap_bin()).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let doc = text(&out.stdout);
        assert!(doc.len() > 500, "{args:?} printed only {} bytes", doc.len());
        for sub in subcommands {
            let needle = spelling(sub);
            assert!(doc.contains(&needle), "{args:?} lacks {needle:?}");
        }
    }
    let man = text(
        &Command::new(lenscap_bin())
            .arg("man")
            .output()
            .unwrap()
            .stdout,
    );
    assert!(man.contains(".TH lenscap 1"), "not a roff man page");
}
