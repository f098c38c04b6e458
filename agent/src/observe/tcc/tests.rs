//! TCC reading across databases, on real SQLite files built in temp dirs
//! from the real CREATE TABLE statements (`tests/fixtures/tcc/*.sql`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rusqlite::Connection;

use super::*;
use crate::model::TccAuth;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tcc");
const USER_DB: &str = "Library/Application Support/com.apple.TCC/TCC.db";

/// A TCC.db at `path` built from a fixture's SQL.
fn build(path: &Path, fixture: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let sql = std::fs::read_to_string(Path::new(FIXTURES).join(fixture)).unwrap();
    Connection::open(path).unwrap().execute_batch(&sql).unwrap();
}

/// Set the mtime `secs` seconds into the past, so the stamp is settled
/// (outside the racy window) and distinct from any other `secs`.
fn age(path: &Path, secs: u64) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(secs))
        .unwrap();
}

fn config(patterns: &[String]) -> Config {
    Config {
        tcc_databases: patterns.to_vec(),
        ..Config::default()
    }
}

/// A fake root with `/Library/…/TCC.db` and users' databases under
/// `Users/<name>/…`, and the two default-shaped patterns pointing into it.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        Tree {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn system_db(&self) -> PathBuf {
        self.dir
            .path()
            .join("Library/Application Support/com.apple.TCC/TCC.db")
    }
    fn user_db(&self, user: &str) -> PathBuf {
        self.dir.path().join("Users").join(user).join(USER_DB)
    }
    fn config(&self) -> Config {
        config(&[
            self.system_db().display().to_string(),
            format!("{}/Users/*/{USER_DB}", self.dir.path().display()),
        ])
    }
}

#[test]
fn read_all_expands_globs_and_skips_missing_databases() {
    let tree = Tree::new();
    build(&tree.system_db(), "big_sur.sql");
    build(&tree.user_db("alice"), "sonoma.sql");
    // bob has a home but never answered a prompt; `.localized` is a file
    // the `*` matches; carol's Library is a file, not a directory.
    std::fs::create_dir_all(tree.dir.path().join("Users/bob/Library")).unwrap();
    std::fs::write(tree.dir.path().join("Users/.localized"), b"").unwrap();
    std::fs::create_dir_all(tree.dir.path().join("Users/carol")).unwrap();
    std::fs::write(tree.dir.path().join("Users/carol/Library"), b"").unwrap();

    let read = read_all(&tree.config(), Some(tree.dir.path()));
    assert_eq!(read.problems, vec![]);
    assert_eq!(read.grants.len(), 4 + 5, "{:#?}", read.grants);
    assert!(read.grants.iter().all(|g| !g.new));
    let system: Vec<_> = read
        .grants
        .iter()
        .filter(|g| g.database == tree.system_db())
        .collect();
    assert_eq!(system.len(), 4);
    let alice: Vec<_> = read
        .grants
        .iter()
        .filter(|g| g.database == tree.user_db("alice"))
        .map(|g| (g.grant.service, g.grant.client.as_str()))
        .collect();
    assert_eq!(
        alice,
        vec![
            (TccService::Camera, "com.apple.PhotoBooth"),
            (TccService::Camera, "us.zoom.xos"),
            (TccService::Microphone, "com.example.Dictation"),
            (TccService::ScreenCapture, "com.example.Recorder"),
            (TccService::AllFiles, "/usr/local/bin/lenscap"),
        ]
    );

    // Nothing configured exists (Linux, a fresh machine): quiet and empty.
    let empty = read_all(
        &config(&[
            tree.dir.path().join("nope/TCC.db").display().to_string(),
            format!("{}/nobody/*/TCC.db", tree.dir.path().display()),
        ]),
        None,
    );
    assert_eq!(empty, TccRead::default());
}

#[test]
fn corrupt_and_odd_files_are_problems_not_panics() {
    let tree = Tree::new();
    build(&tree.user_db("alice"), "sonoma.sql");
    let garbage = tree.user_db("bob");
    std::fs::create_dir_all(garbage.parent().unwrap()).unwrap();
    std::fs::write(&garbage, b"bplist00\x00\x01 not sqlite at all \xff\xfe").unwrap();
    // A directory and a FIFO where a database belongs: the FIFO would block
    // an open without O_NONBLOCK forever; it must be refused, not opened.
    let dir_db = tree.user_db("carol");
    std::fs::create_dir_all(&dir_db).unwrap();
    let fifo = tree.user_db("dave");
    std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();

    let started = std::time::Instant::now();
    let read = read_all(&tree.config(), None);
    assert!(started.elapsed() < Duration::from_secs(10));
    // alice's grants are still read.
    assert_eq!(read.grants.len(), 5);
    let by_db: BTreeMap<&Path, &TccProblem> = read
        .problems
        .iter()
        .map(|p| (p.database.as_path(), p))
        .collect();
    assert_eq!(by_db.len(), 3, "{:#?}", read.problems);
    let bad = by_db[garbage.as_path()];
    assert!(!bad.permission);
    assert!(bad.detail.contains("corrupt"), "{}", bad.detail);
    assert!(bad.detail.contains(&garbage.display().to_string()));
    for odd in [&dir_db, &fifo] {
        let p = by_db[odd.as_path()];
        assert!(p.detail.contains("not a regular file"), "{}", p.detail);
        assert!(!p.permission);
    }
}

#[test]
fn unreadable_database_is_a_permission_problem_naming_the_profile() {
    let tree = Tree::new();
    let db = tree.user_db("alice");
    build(&db, "sonoma.sql");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o000)).unwrap();
    let read = read_all(&tree.config(), None);
    if std::fs::File::open(&db).is_ok() {
        // Root (CAP_DAC_OVERRIDE) reads a mode-000 file: there is no
        // permission error to see here, and the read must simply work.
        assert_eq!(read.problems, vec![]);
        assert_eq!(read.grants.len(), 5);
    } else {
        assert_eq!(read.grants, vec![]);
        assert_eq!(read.problems.len(), 1);
        assert!(read.problems[0].permission);
        assert!(read.problems[0].detail.contains(FDA_PROFILE));
    }
    // What macOS answers without Full Disk Access, whoever we run as.
    for errno in [libc::EPERM, libc::EACCES] {
        let p = problem(
            &db,
            &TccError::PermissionDenied {
                path: db.clone(),
                source: io::Error::from_raw_os_error(errno),
            },
        );
        assert!(p.permission);
        assert!(p.detail.contains("Full Disk Access"), "{}", p.detail);
        assert!(p.detail.contains(FDA_PROFILE), "{}", p.detail);
        assert!(p.detail.contains(&db.display().to_string()));
    }
    let locked = problem(
        &db,
        &TccError::Locked {
            path: db.clone(),
            attempts: 3,
        },
    );
    assert!(!locked.permission);
    assert!(locked.detail.contains("locked"), "{}", locked.detail);
}

#[test]
fn invalid_glob_is_a_problem() {
    let read = read_all(&config(&["/tmp/[oops/TCC.db".to_string()]), None);
    assert_eq!(read.grants, vec![]);
    assert_eq!(read.problems.len(), 1);
    assert!(
        read.problems[0].detail.contains("not a valid glob"),
        "{}",
        read.problems[0].detail
    );
}

fn insert(db: &Path, service: &str, client: &str, client_type: i64, auth: i64) {
    Connection::open(db)
        .unwrap()
        .execute(
            "INSERT OR REPLACE INTO access (service, client, client_type, auth_value, auth_reason, auth_version, last_modified) \
             VALUES (?1, ?2, ?3, ?4, 2, 1, 1720000000)",
            rusqlite::params![service, client, client_type, auth],
        )
        .unwrap();
}

#[test]
fn tracker_baseline_then_new_grants_without_rereading_unchanged_files() {
    let tree = Tree::new();
    let alice = tree.user_db("alice");
    build(&alice, "sonoma.sql");
    age(&alice, 3600);
    let cfg = tree.config();
    let mut tracker = TccTracker::new();

    let first = tracker.poll(&cfg, Some(tree.dir.path()));
    assert_eq!(tracker.reads(), 1);
    assert!(first.changed);
    assert_eq!(first.grants.len(), 5);
    assert!(first.grants.iter().all(|g| !g.new), "baseline is not new");
    assert!(first.problems_new.is_empty() && first.problems_cleared.is_empty());

    // Unchanged stamp: no read at all.
    for _ in 0..3 {
        let again = tracker.poll(&cfg, None);
        assert!(!again.changed);
        assert_eq!(again.grants, first.grants);
    }
    assert_eq!(tracker.reads(), 1);

    // A helper gets the camera; the dictation app's "unknown" becomes
    // "allowed"; zoom's grant is rewritten with the same decision.
    insert(&alice, "kTCCServiceCamera", "/tmp/.h/helper", 1, 2);
    insert(
        &alice,
        "kTCCServiceMicrophone",
        "com.example.Dictation",
        0,
        2,
    );
    insert(&alice, "kTCCServiceCamera", "us.zoom.xos", 0, 2);
    age(&alice, 1800);
    let after = tracker.poll(&cfg, None);
    assert_eq!(tracker.reads(), 2);
    assert!(after.changed);
    let new: Vec<_> = after
        .grants
        .iter()
        .filter(|g| g.new)
        .map(|g| (g.grant.service, g.grant.client.as_str(), g.grant.auth))
        .collect();
    assert_eq!(
        new,
        vec![
            (TccService::Camera, "/tmp/.h/helper", TccAuth::Allowed),
            (
                TccService::Microphone,
                "com.example.Dictation",
                TccAuth::Allowed
            ),
        ]
    );
    assert_eq!(after.grants.len(), 6);

    // Still new on the next (unread) poll, and nothing changed.
    let steady = tracker.poll(&cfg, None);
    assert_eq!(tracker.reads(), 2);
    assert!(!steady.changed);
    assert_eq!(steady.grants, after.grants);

    // New for the tracker's life, even after a later rewrite.
    insert(&alice, "kTCCServiceCamera", "/tmp/.h/helper", 1, 0);
    age(&alice, 900);
    let revoked = tracker.poll(&cfg, None);
    assert_eq!(tracker.reads(), 3);
    let helper = revoked
        .grants
        .iter()
        .find(|g| g.grant.client == "/tmp/.h/helper")
        .unwrap();
    assert!(helper.new);
    assert_eq!(helper.grant.auth, TccAuth::Denied);

    // The database disappears: its grants go.
    std::fs::remove_file(&alice).unwrap();
    let gone = tracker.poll(&cfg, None);
    assert!(gone.changed);
    assert_eq!(gone.grants, vec![]);
    assert!(gone.problems_new.is_empty());
}

#[test]
fn tracker_rereads_a_racy_stamp_once_it_settles() {
    let tree = Tree::new();
    let alice = tree.user_db("alice");
    build(&alice, "sonoma.sql");
    let cfg = tree.config();
    let mut tracker = TccTracker::new();
    // Just written: the stamp may not reflect a write in the same tick.
    tracker.poll(&cfg, None);
    tracker.poll(&cfg, None);
    assert_eq!(tracker.reads(), 2, "a fresh mtime is not trusted");
    age(&alice, 600);
    tracker.poll(&cfg, None);
    tracker.poll(&cfg, None);
    tracker.poll(&cfg, None);
    assert_eq!(tracker.reads(), 3, "a settled stamp is trusted");
}

#[test]
fn tracker_reports_a_problem_once_until_it_clears() {
    let tree = Tree::new();
    let alice = tree.user_db("alice");
    let bob = tree.user_db("bob");
    build(&alice, "sonoma.sql");
    age(&alice, 3600);
    std::fs::create_dir_all(bob.parent().unwrap()).unwrap();
    std::fs::write(&bob, b"this is not a database").unwrap();
    age(&bob, 3600);
    let cfg = tree.config();
    let mut tracker = TccTracker::new();

    let first = tracker.poll(&cfg, None);
    assert_eq!(first.grants.len(), 5);
    assert_eq!(first.problems_new.len(), 1);
    assert_eq!(first.problems_new[0].database, bob);
    assert!(!first.problems_new[0].permission);
    assert_eq!(tracker.problems(), first.problems_new);

    // Unchanged: neither read again (the retry interval has not passed)
    // nor reported again.
    let second = tracker.poll(&cfg, None);
    assert!(!second.changed);
    assert!(second.problems_new.is_empty() && second.problems_cleared.is_empty());
    assert_eq!(tracker.reads(), 2);

    // With no retry delay the failed database is read every poll, and
    // still reported only once.
    let mut eager = TccTracker::new().with_retry_failed_after(Duration::ZERO);
    assert_eq!(eager.poll(&cfg, None).problems_new.len(), 1);
    let repeat = eager.poll(&cfg, None);
    assert_eq!(eager.reads(), 3, "alice once, bob twice");
    assert!(repeat.problems_new.is_empty() && !repeat.changed);

    // bob's database becomes readable: the problem clears and his grants
    // are his baseline.
    std::fs::remove_file(&bob).unwrap();
    build(&bob, "big_sur.sql");
    age(&bob, 1800);
    let fixed = tracker.poll(&cfg, None);
    assert!(fixed.changed);
    assert_eq!(fixed.problems_cleared, vec![bob.clone()]);
    assert!(fixed.problems_new.is_empty());
    assert_eq!(fixed.grants.len(), 9);
    assert!(fixed.grants.iter().all(|g| !g.new));
    assert!(tracker.problems().is_empty());
    assert_eq!(fixed.grants.iter().filter(|g| g.database == bob).count(), 4);
}

#[test]
fn wal_sidecar_is_part_of_the_stamp() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("TCC.db");
    build(&db, "sonoma.sql");
    let before = Stamp::of(&db).unwrap().unwrap();
    assert_eq!(before.wal, None);
    std::fs::write(sidecar(&db, "-wal"), b"x").unwrap();
    let after = Stamp::of(&db).unwrap().unwrap();
    assert_ne!(before, after);
    assert!(after.wal.is_some());
    assert!(Stamp::of(&dir.path().join("none.db")).is_err());
    assert!(
        Stamp::of(&dir.path().join("TCC.db/x")).is_err(),
        "ENOTDIR is absent"
    );
}
