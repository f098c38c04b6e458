//! Reading a TCC.db that another process is writing, and one we may not
//! read. Lock contention comes from a *separate process* (this test binary
//! re-run as a child through `child_entry`), because a lock held by this
//! process would be dropped by the reader's own file copies (POSIX locks
//! are per process) and tccd is never in our process either.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::build;
use crate::parse::tcc::*;

const CHILD_MODE: &str = "LENSCAP_TCC_TEST_CHILD";
const CHILD_DB: &str = "LENSCAP_TCC_TEST_DB";
const LOCKED_MARKER: &str = "LENSCAP_CHILD_LOCKED";
const ERROR_MARKER: &str = "LENSCAP_CHILD_ERROR: ";
const CHILD_TEST: &str = "parse::tcc::tests::contention::child_entry";

/// A child process (this test binary, re-run) holding a lock on a database.
struct LockHolder {
    child: Child,
    /// Kept open (and drained on drop) so the child's last words do not hit
    /// a closed pipe.
    out: BufReader<std::process::ChildStdout>,
}

impl LockHolder {
    /// `journal`: SQLite journal mode to switch the database to first.
    fn start(db: &Path, journal: &str) -> LockHolder {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                CHILD_TEST,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_MODE, format!("hold_lock:{journal}"))
            .env(CHILD_DB, db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let locked = loop {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                break false;
            }
            if line.contains(LOCKED_MARKER) {
                break true;
            }
        };
        assert!(locked, "lock-holding child never took its lock");
        LockHolder { child, out }
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        // Closing stdin tells the child to roll back and exit.
        drop(self.child.stdin.take());
        let _ = std::io::copy(&mut self.out, &mut std::io::sink());
        let _ = self.child.wait();
    }
}

#[test]
fn rollback_db_under_exclusive_lock_is_read_from_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(dir.path(), "sonoma.sql");
    let expected = read_grants(&path, &Default::default()).unwrap().grants;
    let _holder = LockHolder::start(&path, "DELETE");
    let scratch = tempfile::tempdir().unwrap();
    let opts = TccReadOptions {
        scratch_dir: Some(scratch.path().to_path_buf()),
        ..Default::default()
    };
    let started = Instant::now();
    let snap = read_grants(&path, &opts).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        snap.via_copy,
        "a locked rollback-journal db must be read from a copy"
    );
    // The child's uncommitted insert is not there; the committed rows are.
    assert_eq!(snap.grants, expected);
    // The private copy is gone afterwards.
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
}

fn dir_listing(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    names
}

#[test]
fn rollback_db_is_read_live_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(dir.path(), "mojave.sql");
    let before = dir_listing(dir.path());
    let snap = read_grants(&path, &Default::default()).unwrap();
    assert!(!snap.via_copy);
    assert_eq!(dir_listing(dir.path()), before);
}

#[test]
fn wal_db_under_exclusive_lock_is_read_from_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(dir.path(), "big_sur.sql");
    let expected = read_grants(&path, &Default::default()).unwrap().grants;
    let _holder = LockHolder::start(&path, "WAL");
    let before = dir_listing(dir.path());
    let snap = read_grants(&path, &Default::default()).unwrap();
    assert!(snap.via_copy);
    assert_eq!(
        snap.grants, expected,
        "the uncommitted insert must not show"
    );
    assert_eq!(dir_listing(dir.path()), before);
}

#[test]
fn wal_db_at_rest_gets_no_files_created_beside_it() {
    // tccd closed cleanly: WAL mode in the header, no -wal or -shm files. A
    // read-only SQLite open would create both (root-owned, in a user's
    // directory); the copy path creates nothing there.
    let dir = tempfile::tempdir().unwrap();
    let path = build(dir.path(), "sonoma.sql");
    let conn = Connection::open(&path).unwrap();
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    assert_eq!(dir_listing(dir.path()), ["TCC.db"]);
    let snap = read_grants(&path, &Default::default()).unwrap();
    assert_eq!(snap.grants.len(), 5);
    assert!(snap.via_copy);
    assert_eq!(dir_listing(dir.path()), ["TCC.db"]);
}

#[test]
fn locked_and_damaged_gives_locked_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(dir.path(), "sonoma.sql");
    let _holder = LockHolder::start(&path, "DELETE");
    // Damage the file under the writer's lock: every copy fails quick_check.
    let mut bytes = std::fs::read(&path).unwrap();
    let page = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
    for b in &mut bytes[page..] {
        *b = 0x5A;
    }
    std::fs::write(&path, &bytes).unwrap();
    let started = Instant::now();
    let err = read_grants(&path, &Default::default()).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(err, TccError::Locked { attempts: 3, .. }),
        "{err:?}"
    );
}

#[test]
fn permission_denied_names_full_disk_access_and_profile() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(dir.path(), "sonoma.sql");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    let message = if nix::unistd::geteuid().is_root() {
        // Root reads anything here, so read as `nobody` in a child process.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = Command::new(std::env::current_exe().unwrap())
            .args([CHILD_TEST, "--exact", "--ignored", "--nocapture"])
            .env(CHILD_MODE, "read_as_nobody")
            .env(CHILD_DB, &path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.split_once(ERROR_MARKER).map(|(_, e)| e.to_string()))
            .expect("child printed no error")
    } else {
        let err = read_grants(&path, &Default::default()).unwrap_err();
        assert!(matches!(err, TccError::PermissionDenied { .. }), "{err:?}");
        err.to_string()
    };
    assert!(message.contains("Full Disk Access"), "{message}");
    assert!(message.contains(FDA_PROFILE), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
}

/// Not a test: the entry point of the child processes above, run with
/// `--ignored --exact` and told what to do through the environment.
#[test]
#[ignore = "child-process helper for the lock and permission tests"]
fn child_entry() {
    let (Ok(mode), Ok(db)) = (std::env::var(CHILD_MODE), std::env::var(CHILD_DB)) else {
        return;
    };
    if let Some(journal) = mode.strip_prefix("hold_lock:") {
        let conn = Connection::open(&db).unwrap();
        conn.query_row(&format!("PRAGMA journal_mode={journal}"), [], |_| Ok(()))
            .unwrap();
        conn.execute_batch(
            "BEGIN EXCLUSIVE;
             INSERT INTO access (service, client, client_type, auth_value, auth_reason, auth_version)
             VALUES ('kTCCServiceCamera', 'com.example.Uncommitted', 0, 2, 2, 1);",
        )
        .unwrap();
        // libtest prints the test name on the same line first.
        println!("{LOCKED_MARKER}");
        std::io::stdout().flush().unwrap();
        // Hold the lock until the parent closes our stdin.
        let _ = std::io::stdin().lines().count();
        conn.execute_batch("ROLLBACK").unwrap();
    } else if mode == "read_as_nobody" {
        nix::unistd::setgid(nix::unistd::Gid::from_raw(65534)).unwrap();
        nix::unistd::setuid(nix::unistd::Uid::from_raw(65534)).unwrap();
        match read_grants(Path::new(&db), &Default::default()) {
            Err(err @ TccError::PermissionDenied { .. }) => println!("{ERROR_MARKER}{err}"),
            other => println!("UNEXPECTED: {other:?}"),
        }
    }
}
