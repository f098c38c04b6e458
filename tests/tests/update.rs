//! `lenscap update` end to end against a release server on 127.0.0.1
//! (`update/server.rs`), with real `.tar.gz` releases signed in the test
//! by zipsign: a correctly signed newer release is installed and runs;
//! unsigned, wrong-key, tampered and older releases are each refused with
//! their own message and the installed file is byte-for-byte unchanged.
//! So is a correctly signed archive whose binary is not what the listing
//! claims: an old signed build listed as a new release, a build of the
//! running version, a newer build under another version's tag, a symlink,
//! a binary that prints garbage — the version that counts is the one the
//! signed binary reports.
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
use server::{
    Release, ReleaseServer, archive, archive_script, archive_symlink, new_key, public_b64, sign,
};
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

/// Serves a release listed as `listed`, its asset named for `listed` and
/// correctly signed under that name, holding the archive `inside`.
fn serve_signed(listed: &str, key: &SigningKey, inside: Vec<u8>) -> ReleaseServer {
    serve(listed, move |_, name| sign(&inside, key, name))
}

fn asset_downloaded(server: &ReleaseServer) -> bool {
    server
        .requests()
        .iter()
        .any(|r| r.ends_with("/releases/assets/1"))
}

/// The replay: an old build, correctly signed when it was released, listed
/// again under a new tag. zipsign signed its file name, so it keeps its
/// old name; that alone refuses it, before the download.
#[test]
fn listing_claiming_a_newer_version_over_an_older_signed_build_is_refused() {
    let key = new_key();
    let old_name = asset_name(OLDER, target());
    let server = ReleaseServer::start(Release {
        version: "9.9.9".into(),
        asset_name: old_name.clone(),
        bytes: sign(&archive(OLDER), &key, &old_name),
    });
    let machine = Machine::new(&server.update_url(), Some(&public_b64(&key)));
    assert_refused(
        &machine,
        &format!(
            "refusing update: release 9.9.9 offers {old_name}, not {}",
            asset_name("9.9.9", target())
        ),
    );
    assert!(!asset_downloaded(&server), "{:?}", server.requests());
}

/// The same replay with the name made to fit (a build signed under the
/// wrong name, or a name check someone loosened): the binary itself says
/// what it is, and 0.0.9 under a 9.9.9 listing is refused after the
/// signature check, before anything is replaced.
#[test]
fn signed_older_build_under_a_newer_listing_is_refused_by_its_own_version() {
    let key = new_key();
    let server = serve_signed("9.9.9", &key, archive(OLDER));
    let machine = Machine::new(&server.update_url(), Some(&public_b64(&key)));
    assert_refused(
        &machine,
        &format!(
            "refusing update: the signed binary in {} is lenscap {OLDER}, not newer than the installed {CURRENT_VERSION} (the release listing claimed 9.9.9)",
            asset_name("9.9.9", target())
        ),
    );
    assert!(
        asset_downloaded(&server),
        "the refusal came after the download"
    );
}

#[test]
fn signed_build_of_the_running_version_is_refused() {
    let key = new_key();
    let listed = newer();
    let server = serve_signed(&listed, &key, archive(CURRENT_VERSION));
    let machine = Machine::new(&server.update_url(), Some(&public_b64(&key)));
    assert_refused(
        &machine,
        &format!(
            "is lenscap {CURRENT_VERSION}, not newer than the installed {CURRENT_VERSION} (the release listing claimed {listed})"
        ),
    );
}

#[test]
fn newer_signed_build_under_another_versions_listing_is_refused() {
    let key = new_key();
    let real = newer();
    let server = serve_signed("9.9.9", &key, archive(&real));
    let machine = Machine::new(&server.update_url(), Some(&public_b64(&key)));
    assert_refused(
        &machine,
        &format!(
            "refusing update: the release listing claims 9.9.9, but the signed binary in {} is lenscap {real}",
            asset_name("9.9.9", target())
        ),
    );
}

#[test]
fn signed_binary_that_prints_garbage_is_refused() {
    let key = new_key();
    let version = newer();
    // The right words, with an escape sequence in the middle.
    let script = format!("#!/bin/sh\nprintf 'lenscap \\033[2J{version}\\n'\n");
    let server = serve_signed(&version, &key, archive_script(&script));
    let machine = Machine::new(&server.update_url(), Some(&public_b64(&key)));
    assert_refused(
        &machine,
        "is not a working lenscap for this machine: `--version` printed \"lenscap \\u{1b}[2J",
    );
}

/// A symlink in a signed archive would install a link to whatever it
/// names (here a script outside the archive that answers correctly).
#[test]
fn signed_archive_whose_binary_is_a_symlink_is_refused() {
    let key = new_key();
    let version = newer();
    let elsewhere = temp_tree();
    let target_script = elsewhere.path().join("impostor");
    std::fs::write(
        &target_script,
        format!("#!/bin/sh\necho \"lenscap {version}\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&target_script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = serve_signed(&version, &key, archive_symlink(&target_script));
    let machine = Machine::new(&server.update_url(), Some(&public_b64(&key)));
    assert_refused(
        &machine,
        &format!(
            "the archive's `lenscap` is a symbolic link to {}",
            target_script.display()
        ),
    );
    assert!(
        !std::fs::symlink_metadata(machine.bin())
            .unwrap()
            .file_type()
            .is_symlink()
    );
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
