//! Helpers for the end-to-end tests: the `lenscap` binary, temporary trees
//! that look like a Mac's, and real child processes that are killed when a
//! test ends, pass or fail.

// This crate is test support only: a failed setup step is a failed test,
// so panicking with a message is the right behaviour here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Path of the `lenscap` binary, built once per test process.
///
/// Cargo builds a package's binaries only for that package's own
/// integration tests, and this crate is another package; so build it here.
/// Nested `cargo build` is safe: `cargo test` holds no build lock while
/// test binaries run.
pub fn lenscap_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("tests/ lives in the workspace")
            .to_path_buf();
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "lenscap", "--bin", "lenscap"])
            .current_dir(&workspace)
            .status()
            .expect("run cargo build for the lenscap binary");
        assert!(status.success(), "building lenscap failed");
        // target/debug/deps/<test-binary> → target/debug/lenscap
        let exe = std::env::current_exe().expect("current exe");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary lives in target/<profile>/deps");
        let bin = profile_dir.join("lenscap");
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
}

/// A temporary directory whose own name is not hidden. `tempfile`'s default
/// names start with `.tmp`, which would make everything inside look like it
/// lives in a hidden directory to the judge.
pub fn temp_tree() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("lenscap-e2e-")
        .tempdir()
        .expect("create temp dir")
}

/// A child process killed (and reaped) when dropped.
#[derive(Debug)]
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Proc { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait for a file written atomically by a fixture (e.g. the port file of
/// `rogue-helper`) and return its trimmed contents.
pub fn wait_for_file(path: &Path, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            return s.trim().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "{} did not appear within {timeout:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Write an XML launchd plist.
pub fn write_launchd_plist(path: &Path, label: &str, program_args: &[&str], keep_alive: bool) {
    let mut dict = plist::Dictionary::new();
    dict.insert("Label".into(), label.into());
    dict.insert(
        "ProgramArguments".into(),
        plist::Value::Array(program_args.iter().map(|a| (*a).into()).collect()),
    );
    dict.insert("RunAtLoad".into(), true.into());
    dict.insert("KeepAlive".into(), keep_alive.into());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create plist dir");
    }
    plist::Value::Dictionary(dict)
        .to_file_xml(path)
        .expect("write plist");
}

/// Write a configuration plist for `--config`: every location points into
/// `root`, so nothing outside the temporary tree is read or written.
pub fn write_config(root: &Path, extra: &[(&str, plist::Value)]) -> PathBuf {
    let mut dict = plist::Dictionary::new();
    let dirs = |d: &[&str]| {
        plist::Value::Array(
            d.iter()
                .map(|s| root.join(s).display().to_string().into())
                .collect(),
        )
    };
    dict.insert(
        "PersistenceDirs".into(),
        dirs(&[
            "Library/LaunchAgents",
            "Library/LaunchDaemons",
            "Users/*/Library/LaunchAgents",
        ]),
    );
    dict.insert("ApplicationDirs".into(), dirs(&["Applications"]));
    dict.insert("TempDirs".into(), dirs(&["private/tmp"]));
    dict.insert(
        "StateDir".into(),
        root.join("state").display().to_string().into(),
    );
    dict.insert("LoginItems".into(), false.into());
    for (k, v) in extra {
        dict.insert((*k).into(), v.clone());
    }
    let path = root.join("lenscap.plist");
    plist::Value::Dictionary(dict)
        .to_file_xml(&path)
        .expect("write config");
    path
}
