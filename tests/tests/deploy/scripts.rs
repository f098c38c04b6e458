//! The pkg scripts and the uninstaller, run for real against a temporary
//! root. `launchctl`, `chown` and `pkgutil` are shims that append their
//! argv to a log (and can play launchctl's failures), so the tests assert
//! the exact calls in their exact order. The root's path contains a space,
//! like "Application Support", to catch quoting mistakes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

use super::{BINARY, LABEL, assert_shellcheck_clean, repo, shellcheck};

const SCRIPTS: [&str; 4] = [
    "installer/build-pkg.sh",
    "installer/scripts/preinstall",
    "installer/scripts/postinstall",
    "installer/uninstall.sh",
];

/// One shim for every tool: records `name<TAB>arg<TAB>arg…` per call and
/// fails the way the SHIM_* variables ask. On a bootstrap it also notes
/// the plist's mode, which launchd checks at exactly that moment.
const SHIM: &str = r#"#!/bin/sh
name=$(basename "$0")
line=$name
for a in "$@"; do line="$line	$a"; done
printf '%s\n' "$line" >>"$SHIM_CALLS"
if [ "$name" = launchctl ] && [ "$1" = bootstrap ]; then
	n=$(cat "$SHIM_STATE/bootstraps" 2>/dev/null || echo 0)
	n=$((n + 1))
	echo "$n" >"$SHIM_STATE/bootstraps"
	ls -l "$3" | cut -c1-10 >"$SHIM_STATE/plist-mode-at-bootstrap"
	if [ "$n" -le "${SHIM_BOOTSTRAP_FAILS:-0}" ]; then
		echo "Bootstrap failed: ${SHIM_BOOTSTRAP_ERROR:-5: Input/output error}" >&2
		exit "${SHIM_BOOTSTRAP_RC:-5}"
	fi
fi
if [ "$name" = launchctl ] && [ "$1" = bootout ] && [ -n "${SHIM_BOOTOUT_RC:-}" ]; then
	echo "Boot-out failed: $SHIM_BOOTOUT_RC: Could not find specified service" >&2
	exit "$SHIM_BOOTOUT_RC"
fi
if [ "$name" = pkgutil ] && [ "$1" = --pkg-info ] && [ -n "${SHIM_NO_RECEIPT:-}" ]; then
	echo "No receipt for '$2' found at '/'." >&2
	exit 1
fi
exit 0
"#;

/// A temporary root laid out like the pkg's payload, plus the shims.
struct Sandbox {
    _dir: TempDir,
    root: PathBuf,
    shims: PathBuf,
    calls: PathBuf,
    state: PathBuf,
}

impl Sandbox {
    /// The payload as Installer leaves it, before postinstall: modes that
    /// postinstall must fix, no state or log directory yet.
    fn payload() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("lenscap deploy ")
            .tempdir()
            .expect("tempdir");
        let root = dir.path().join("target volume");
        let shims = dir.path().join("shims");
        let state = dir.path().join("shim state");
        for d in [&root, &shims, &state] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        for tool in ["launchctl", "chown", "pkgutil"] {
            let path = shims.join(tool);
            std::fs::write(&path, SHIM).expect("write shim");
            set_mode(&path, 0o755);
        }
        let sandbox = Sandbox {
            calls: dir.path().join("calls.log"),
            _dir: dir,
            root,
            shims,
            state,
        };
        let plist = sandbox.path(&format!("/Library/LaunchDaemons/{LABEL}.plist"));
        std::fs::create_dir_all(plist.parent().unwrap()).expect("mkdir LaunchDaemons");
        std::fs::copy(repo().join(format!("launchd/{LABEL}.plist")), &plist).expect("copy plist");
        set_mode(&plist, 0o600);
        let binary = sandbox.path(BINARY);
        std::fs::create_dir_all(binary.parent().unwrap()).expect("mkdir bin");
        std::fs::write(&binary, "#!/bin/sh\nexit 0\n").expect("write binary");
        set_mode(&binary, 0o700);
        sandbox
    }

    /// A machine where lenscap is installed and has quarantined a file.
    fn installed() -> Sandbox {
        let s = Sandbox::payload();
        for dir in [
            "/Library/Logs/lenscap",
            "/usr/local/share/lenscap",
            "/Library/Application Support/lenscap/quarantine",
        ] {
            std::fs::create_dir_all(s.path(dir)).expect("mkdir");
        }
        std::fs::write(s.path("/Library/Logs/lenscap/lenscap.err.log"), "old\n")
            .expect("write log");
        std::fs::write(s.path("/usr/local/share/lenscap/uninstall.sh"), "").expect("write");
        std::fs::write(
            s.path("/Library/Application Support/lenscap/quarantine/ZoomOpener"),
            "x",
        )
        .expect("write");
        s
    }

    /// `abs` (an absolute path on the Mac) inside this root.
    fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    fn root_str(&self) -> &str {
        self.root.to_str().expect("utf-8 temp path")
    }

    /// Runs a repository script with Installer's four arguments (or the
    /// given ones) and a minimal environment, as Installer does.
    fn run(&self, script: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(repo().join(script));
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
            .env("LENSCAP_ROOT", &self.root)
            .env("LAUNCHCTL", self.shims.join("launchctl"))
            .env("CHOWN", self.shims.join("chown"))
            .env("PKGUTIL", self.shims.join("pkgutil"))
            .env("LENSCAP_RETRY_SLEEP", "0")
            .env("SHIM_CALLS", &self.calls)
            .env("SHIM_STATE", &self.state);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
        eprintln!(
            "--- {script} {args:?} exited {:?}\nstdout:\n{}stderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Every recorded call, in order, as `tool arg arg…` with the root
    /// written as `$ROOT`.
    fn calls(&self) -> Vec<String> {
        let log = std::fs::read_to_string(&self.calls).unwrap_or_default();
        log.lines()
            .map(|l| l.replace('\t', " ").replace(self.root_str(), "$ROOT"))
            .collect()
    }

    fn mode(&self, abs: &str) -> u32 {
        let path = self.path(abs);
        std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o7777
    }

    fn exists(&self, abs: &str) -> bool {
        self.path(abs).exists()
    }
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Installer's arguments: package path, install location, target volume,
/// running system's root.
fn installer_args(target_volume: &str) -> [&str; 4] {
    ["/private/tmp/lenscap-0.1.0.pkg", "/", target_volume, "/"]
}

const PLIST: &str = "/Library/LaunchDaemons/io.lenscap.agent.plist";
const STATE_DIR: &str = "/Library/Application Support/lenscap";

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn scripts_pass_shellcheck_and_are_executable() {
    for rel in SCRIPTS {
        let mode = std::fs::metadata(repo().join(rel))
            .expect(rel)
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o111,
            0o111,
            "{rel} must be executable (pkgbuild keeps the mode)"
        );
    }
    let Some(shellcheck) = shellcheck() else {
        return;
    };
    for rel in SCRIPTS {
        assert_shellcheck_clean(shellcheck, rel, Some(&repo().join(rel)), None);
    }
}

#[test]
fn preinstall_boots_out_the_running_daemon() {
    let s = Sandbox::payload();
    let out = s.run("installer/scripts/preinstall", &installer_args("/"), &[]);
    assert!(out.status.success());
    assert_eq!(s.calls(), ["launchctl bootout system/io.lenscap.agent"]);
}

#[test]
fn preinstall_on_a_first_install_ignores_not_loaded() {
    for rc in ["3", "113"] {
        let s = Sandbox::payload();
        let out = s.run(
            "installer/scripts/preinstall",
            &installer_args("/"),
            &[("SHIM_BOOTOUT_RC", rc)],
        );
        assert!(
            out.status.success(),
            "bootout exit {rc} must not fail the install"
        );
        assert!(stdout(&out).contains("was not loaded"));
        assert_eq!(s.calls(), ["launchctl bootout system/io.lenscap.agent"]);
    }
}

#[test]
fn preinstall_on_another_volume_leaves_launchd_alone() {
    let s = Sandbox::payload();
    let out = s.run(
        "installer/scripts/preinstall",
        &installer_args("/Volumes/Other Mac"),
        &[],
    );
    assert!(out.status.success());
    assert_eq!(s.calls(), Vec::<String>::new());
}

#[test]
fn postinstall_fixes_modes_then_bootstraps() {
    let s = Sandbox::payload();
    let out = s.run("installer/scripts/postinstall", &installer_args("/"), &[]);
    assert!(out.status.success());
    assert_eq!(
        s.calls(),
        [
            "chown root:wheel $ROOT/Library/LaunchDaemons/io.lenscap.agent.plist",
            "chown root:wheel $ROOT/usr/local/bin/lenscap",
            "launchctl bootstrap system $ROOT/Library/LaunchDaemons/io.lenscap.agent.plist",
        ]
    );
    let mode_at_bootstrap =
        std::fs::read_to_string(s.state.join("plist-mode-at-bootstrap")).expect("recorded");
    assert_eq!(
        mode_at_bootstrap.trim(),
        "-rw-r--r--",
        "plist must be 0644 before bootstrap"
    );
    assert_eq!(s.mode(PLIST), 0o644);
    assert_eq!(s.mode(BINARY), 0o755);
    assert_eq!(s.mode(STATE_DIR), 0o700);
    assert_eq!(s.mode("/Library/Logs/lenscap"), 0o755);
}

#[test]
fn postinstall_retries_bootstrap_on_error_5() {
    let s = Sandbox::payload();
    let out = s.run(
        "installer/scripts/postinstall",
        &installer_args("/"),
        &[("SHIM_BOOTSTRAP_FAILS", "2")],
    );
    assert!(
        out.status.success(),
        "two error-5 failures then success must install"
    );
    let bootstrap = "launchctl bootstrap system $ROOT/Library/LaunchDaemons/io.lenscap.agent.plist";
    assert_eq!(
        s.calls(),
        [
            "chown root:wheel $ROOT/Library/LaunchDaemons/io.lenscap.agent.plist",
            "chown root:wheel $ROOT/usr/local/bin/lenscap",
            bootstrap,
            bootstrap,
            bootstrap,
        ]
    );
    assert_eq!(stdout(&out).matches("failed with error 5").count(), 2);
}

#[test]
fn postinstall_gives_up_after_its_retries_with_a_clear_message() {
    let s = Sandbox::payload();
    let out = s.run(
        "installer/scripts/postinstall",
        &installer_args("/"),
        &[("SHIM_BOOTSTRAP_FAILS", "99"), ("LENSCAP_RETRIES", "3")],
    );
    assert!(
        !out.status.success(),
        "a daemon that never started must fail the install"
    );
    assert_eq!(
        s.calls()
            .iter()
            .filter(|c| c.starts_with("launchctl bootstrap"))
            .count(),
        3
    );
    let err = stderr(&out);
    assert!(
        err.contains("error 5 after 3 attempts")
            && err.contains("launchctl print system/io.lenscap.agent"),
        "{err}"
    );
}

#[test]
fn postinstall_does_not_retry_other_errors() {
    let s = Sandbox::payload();
    let env = [
        ("SHIM_BOOTSTRAP_FAILS", "99"),
        ("SHIM_BOOTSTRAP_RC", "1"),
        ("SHIM_BOOTSTRAP_ERROR", "1: Operation not permitted"),
    ];
    let out = s.run("installer/scripts/postinstall", &installer_args("/"), &env);
    assert!(!out.status.success());
    assert_eq!(
        s.calls()
            .iter()
            .filter(|c| c.starts_with("launchctl bootstrap"))
            .count(),
        1
    );
    assert!(stderr(&out).contains("exited 1"), "{}", stderr(&out));
}

#[test]
fn postinstall_retries_error_37_while_the_old_daemon_exits() {
    // launchd answers EALREADY while the old job (ExitTimeOut 30 s) is
    // still going away; ten refusals, then it accepts.
    let s = Sandbox::payload();
    let env = [
        ("SHIM_BOOTSTRAP_FAILS", "10"),
        ("SHIM_BOOTSTRAP_RC", "37"),
        ("SHIM_BOOTSTRAP_ERROR", "37: Operation already in progress"),
    ];
    let out = s.run("installer/scripts/postinstall", &installer_args("/"), &env);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        s.calls()
            .iter()
            .filter(|c| c.starts_with("launchctl bootstrap"))
            .count(),
        11
    );
    assert_eq!(stdout(&out).matches("failed with error 37").count(), 10);
}

#[test]
fn postinstall_retry_window_outlasts_the_old_daemons_exit_timeout() {
    // The default: attempts × sleep must cover ExitTimeOut (30 s) plus the
    // ~5 s launchd takes to accept the label again.
    let text = std::fs::read_to_string(repo().join("installer/scripts/postinstall"))
        .expect("read postinstall");
    let default = |var: &str| -> u64 {
        let start = text.find(&format!("${{{var}:-")).expect(var) + var.len() + 4;
        text[start..]
            .split('}')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("numeric default")
    };
    let window = default("LENSCAP_RETRIES") * default("LENSCAP_RETRY_SLEEP");
    let plist =
        std::fs::read_to_string(repo().join(format!("launchd/{LABEL}.plist"))).expect("read plist");
    let exit_timeout: u64 = plist
        .split("<key>ExitTimeOut</key>")
        .nth(1)
        .and_then(|rest| rest.split("<integer>").nth(1))
        .and_then(|rest| rest.split("</integer>").next())
        .and_then(|n| n.trim().parse().ok())
        .expect("ExitTimeOut in the daemon plist");
    assert!(
        window >= exit_timeout + 5,
        "retry window {window}s < ExitTimeOut {exit_timeout}s + 5s"
    );
}

#[test]
fn postinstall_on_another_volume_fixes_files_but_bootstraps_nothing() {
    let s = Sandbox::payload();
    let out = s.run(
        "installer/scripts/postinstall",
        &installer_args("/Volumes/Other Mac"),
        &[],
    );
    assert!(out.status.success());
    let calls = s.calls();
    assert!(
        calls.iter().all(|c| !c.starts_with("launchctl")),
        "bootstrapped on another volume: {calls:?}"
    );
    assert_eq!(calls.len(), 2, "only the two chowns: {calls:?}");
    assert_eq!(s.mode(PLIST), 0o644);
    assert_eq!(s.mode(STATE_DIR), 0o700);
}

#[test]
fn postinstall_upgrade_keeps_the_quarantine() {
    let s = Sandbox::installed();
    set_mode(&s.path(STATE_DIR), 0o755);
    let out = s.run("installer/scripts/postinstall", &installer_args("/"), &[]);
    assert!(out.status.success());
    assert!(s.exists("/Library/Application Support/lenscap/quarantine/ZoomOpener"));
    assert_eq!(
        s.mode(STATE_DIR),
        0o700,
        "an upgrade re-tightens the state dir"
    );
}

#[test]
fn postinstall_refuses_a_payload_without_the_plist() {
    let s = Sandbox::payload();
    std::fs::remove_file(s.path(PLIST)).expect("rm");
    let out = s.run("installer/scripts/postinstall", &installer_args("/"), &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("io.lenscap.agent.plist is missing"));
    assert_eq!(s.calls(), Vec::<String>::new());
}

const UNINSTALL_CALLS: [&str; 3] = [
    "launchctl bootout system/io.lenscap.agent",
    "pkgutil --pkg-info io.lenscap.agent",
    "pkgutil --forget io.lenscap.agent",
];

#[test]
fn uninstall_removes_everything_but_the_quarantine() {
    let s = Sandbox::installed();
    let out = s.run("installer/uninstall.sh", &[], &[]);
    assert!(out.status.success());
    assert_eq!(s.calls(), UNINSTALL_CALLS);
    for gone in [
        PLIST,
        BINARY,
        "/Library/Logs/lenscap",
        "/usr/local/share/lenscap",
    ] {
        assert!(!s.exists(gone), "{gone} survived uninstall");
    }
    assert!(s.exists("/Library/Application Support/lenscap/quarantine/ZoomOpener"));
    let said = stdout(&out);
    assert!(
        said.contains("removed") && said.contains("kept") && said.contains("--purge"),
        "{said}"
    );
}

#[test]
fn uninstall_purge_removes_the_state_dir() {
    let s = Sandbox::installed();
    let out = s.run("installer/uninstall.sh", &["--purge"], &[]);
    assert!(out.status.success());
    assert_eq!(s.calls(), UNINSTALL_CALLS);
    assert!(!s.exists(STATE_DIR));
    assert!(!s.exists(BINARY));
}

#[test]
fn uninstall_of_a_stopped_copy_without_receipt_succeeds() {
    let s = Sandbox::installed();
    let out = s.run(
        "installer/uninstall.sh",
        &[],
        &[("SHIM_BOOTOUT_RC", "113"), ("SHIM_NO_RECEIPT", "1")],
    );
    assert!(out.status.success());
    assert_eq!(s.calls(), UNINSTALL_CALLS[..2]);
    // Running it twice is fine too: the second run finds nothing to do.
    let again = s.run(
        "installer/uninstall.sh",
        &[],
        &[("SHIM_BOOTOUT_RC", "113"), ("SHIM_NO_RECEIPT", "1")],
    );
    assert!(again.status.success());
    assert!(stdout(&again).contains("already gone"));
}

#[test]
fn uninstall_rejects_unknown_arguments_before_doing_anything() {
    let s = Sandbox::installed();
    let out = s.run("installer/uninstall.sh", &["--purg"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown argument: --purg"));
    assert_eq!(s.calls(), Vec::<String>::new());
    assert!(s.exists(BINARY));
}

#[test]
fn build_pkg_refuses_to_run_off_macos() {
    if std::env::consts::OS == "macos" {
        eprintln!(
            "SKIPPED: on macOS build-pkg.sh really builds; this checks the refusal elsewhere"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("dist");
    let out = Command::new(repo().join("installer/build-pkg.sh"))
        .current_dir(dir.path())
        .env("OUT_DIR", &out_dir)
        .output()
        .expect("run build-pkg.sh");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("must run on macOS"), "{err}");
    assert!(
        !out_dir.exists(),
        "build-pkg.sh created output before refusing"
    );
}
