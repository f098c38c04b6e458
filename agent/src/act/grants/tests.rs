//! The reset command line, and [`reset`] against recording stand-ins for
//! `launchctl` and `tccutil` (shell scripts that append their argv).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use super::*;
use crate::model::TccService;

const T: Duration = Duration::from_secs(10);

fn grant(uid: u32, client: &str, database: &Path) -> GrantReset {
    GrantReset {
        service: TccService::Camera,
        client: client.into(),
        uid,
        database: database.to_path_buf(),
    }
}

/// A script at `dir/name` that appends its argv (one line, spaces) to
/// `dir/<name>.log` and exits `code`. Written by a child process: a file
/// this process holds open for writing can leak into a child another
/// test forks, and exec would fail with ETXTBSY.
fn recorder(dir: &Path, name: &str, code: i32) -> (PathBuf, PathBuf) {
    let path = dir.join(name);
    let log = dir.join(format!("{name}.log"));
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> '{}'\necho 'tccutil: said no' >&2\nexit {code}\n",
        log.display()
    );
    let mut w = Command::new("/bin/sh")
        .args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "sh"])
        .arg(&path)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    w.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(w.wait().unwrap().success());
    (path, log)
}

fn db_owned_by(dir: &Path, uid: u32) -> PathBuf {
    let db = dir.join(format!("TCC-{uid}.db"));
    std::fs::write(&db, b"SQLite format 3\0").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&db, Some(uid), None).unwrap();
    db
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn only_plain_bundle_ids_reach_a_command_line() {
    for ok in ["us.zoom.ZoomOpener", "com.acme.cam-helper", "a_b.c", "X"] {
        assert_eq!(check_client(ok), Ok(()), "{ok}");
    }
    for bad in [
        "",
        "-h",
        "--all",
        "com.acme helper",
        "com.acme\nhelper",
        "/Users/ann/.acme/helper",
        "com.acme;rm",
        "com.ac\u{e9}me",
        &"a".repeat(256),
    ] {
        assert!(check_client(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_users_grant_is_reset_through_asuser_and_sudo_and_roots_directly() {
    let db = Path::new("/x/TCC.db");
    let (program, args) = command_line(
        Path::new("/bin/launchctl"),
        Path::new("/usr/bin/tccutil"),
        &grant(501, "us.zoom.ZoomOpener", db),
        Some("ann"),
    )
    .unwrap();
    assert_eq!(program, Path::new("/bin/launchctl"));
    assert_eq!(
        args,
        [
            "asuser",
            "501",
            "/usr/bin/sudo",
            "-u",
            "ann",
            "/usr/bin/tccutil",
            "reset",
            "Camera",
            "us.zoom.ZoomOpener"
        ]
    );
    let mut root = grant(0, "us.zoom.ZoomOpener", db);
    root.service = TccService::ScreenCapture;
    let (program, args) = command_line(
        Path::new("/bin/launchctl"),
        Path::new("/usr/bin/tccutil"),
        &root,
        None,
    )
    .unwrap();
    assert_eq!(program, Path::new("/usr/bin/tccutil"));
    assert_eq!(args, ["reset", "ScreenCapture", "us.zoom.ZoomOpener"]);
    // Never a whole service, never Full Disk Access, never without a user.
    let mut fda = grant(0, "com.acme", db);
    fda.service = TccService::AllFiles;
    assert_eq!(
        command_line(Path::new("/l"), Path::new("/t"), &fda, None),
        Err(GrantError::Service)
    );
    assert_eq!(
        command_line(
            Path::new("/l"),
            Path::new("/t"),
            &grant(501, "com.a", db),
            None
        ),
        Err(GrantError::NoUser { uid: 501 })
    );
    assert!(matches!(
        command_line(Path::new("/l"), Path::new("/t"), &grant(0, "", db), None),
        Err(GrantError::BadClient { .. })
    ));
}

#[test]
fn reset_runs_in_the_database_owners_context_and_reports_failure() {
    if !is_root() {
        eprintln!("skipped: needs root to give a database to another uid");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (launchctl, launchctl_log) = recorder(dir.path(), "launchctl", 0);
    let (tccutil, tccutil_log) = recorder(dir.path(), "tccutil", 0);
    let user_db = db_owned_by(dir.path(), 1000);
    let root_db = db_owned_by(dir.path(), 0);

    // A user's grant, for a root actor: through launchctl asuser.
    reset(
        &launchctl,
        &tccutil,
        &grant(1000, "com.acme.camhelper", &user_db),
        Some("ann"),
        0,
        T,
    )
    .unwrap();
    let said = std::fs::read_to_string(&launchctl_log).unwrap();
    assert_eq!(
        said.trim(),
        format!(
            "asuser 1000 /usr/bin/sudo -u ann {} reset Camera com.acme.camhelper",
            tccutil.display()
        )
    );
    assert!(!tccutil_log.exists(), "tccutil ran directly for a user");

    // The system database's grant: tccutil as root.
    reset(
        &launchctl,
        &tccutil,
        &grant(0, "com.acme.camhelper", &root_db),
        None,
        0,
        T,
    )
    .unwrap();
    let said = std::fs::read_to_string(&tccutil_log).unwrap();
    assert_eq!(said.trim(), "reset Camera com.acme.camhelper");

    // tccutil failing is a failure with its words.
    let (bad, _) = recorder(dir.path(), "tccutil-fails", 70);
    let e = reset(
        &launchctl,
        &bad,
        &grant(0, "com.acme", &root_db),
        None,
        0,
        T,
    )
    .unwrap_err();
    assert!(
        matches!(&e, GrantError::Failed { code: Some(70), stderr, .. } if stderr.contains("said no")),
        "{e}"
    );
}

#[test]
fn reset_refuses_another_users_database_and_a_database_that_changed_hands() {
    if !is_root() {
        eprintln!("skipped: needs root to give a database to another uid");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (launchctl, launchctl_log) = recorder(dir.path(), "launchctl", 0);
    let (tccutil, tccutil_log) = recorder(dir.path(), "tccutil", 0);
    let user_db = db_owned_by(dir.path(), 1000);
    let root_db = db_owned_by(dir.path(), 0);

    // uid 1000's helper: never the system database, never uid 65534's.
    assert_eq!(
        reset(
            &launchctl,
            &tccutil,
            &grant(0, "com.a", &root_db),
            None,
            1000,
            T
        ),
        Err(GrantError::OutsideReach {
            uid: 0,
            actor: 1000
        })
    );
    assert_eq!(
        reset(
            &launchctl,
            &tccutil,
            &grant(65534, "com.a", &user_db),
            Some("nobody"),
            1000,
            T
        ),
        Err(GrantError::OutsideReach {
            uid: 65534,
            actor: 1000
        })
    );
    // Planned as uid 1000's, but the file now is root's (replaced since):
    // not reset, not even as the user.
    assert!(matches!(
        reset(
            &launchctl,
            &tccutil,
            &grant(1000, "com.a", &root_db),
            Some("ann"),
            0,
            T
        ),
        Err(GrantError::OwnerChanged {
            now: Some(0),
            planned: 1000,
            ..
        })
    ));
    // A link in place of the database is no one's.
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(&user_db, &link).unwrap();
    assert!(matches!(
        reset(
            &launchctl,
            &tccutil,
            &grant(1000, "com.a", &link),
            Some("ann"),
            0,
            T
        ),
        Err(GrantError::OwnerChanged { now: None, .. })
    ));
    assert!(
        !launchctl_log.exists() && !tccutil_log.exists(),
        "something ran"
    );
}

#[test]
fn a_restore_tells_the_person_what_to_grant_again() {
    let db = Path::new("/Users/ann/Library/Application Support/com.apple.TCC/TCC.db");
    let mut screen = grant(501, "us.zoom.ZoomOpener", db);
    screen.service = TccService::ScreenCapture;
    let lines = grant_again(&[grant(501, "us.zoom.ZoomOpener", db), screen]);
    assert_eq!(
        lines,
        [
            "lenscap reset the camera access of us.zoom.ZoomOpener (uid 501); if you trust it, \
             grant it again in System Settings › Privacy & Security › Camera",
            "lenscap reset the screen capture access of us.zoom.ZoomOpener (uid 501); if you \
             trust it, grant it again in System Settings › Privacy & Security › Screen Recording",
        ]
    );
    assert!(grant_again(&[]).is_empty());
}
