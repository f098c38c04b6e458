//! A remediated helper's privacy grants are reset (issue 12): the plan's
//! `reset_grants` step runs `tccutil reset <Service> <bundle id>` — the
//! `tccutil` stand-in, which records its argv and the uid it runs as —
//! in the session of the user whose TCC.db holds the grant, through the
//! `launchctl asuser … sudo -u` stand-in; monitor mode only journals it;
//! the quarantine manifest lists what was reset, and a restore tells the
//! person to grant it again.
//!
//! The helper is ann's (uid 1000): the same bundle id granted in another
//! user's database and in the system database is beyond her reach and
//! stays, and a grant TCC knows only by the helper's path is reported,
//! not reset.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lenscap_e2e::{Daemon, STANDIN_SOCK_ENV, TCCUTIL_LOG_ENV, wait_until};
use serde_json::Value;

use super::{LABEL, Scenario, USER_UID, chown_tree, step_names, user_name_of};

/// The uid of a second user on this machine, whose database ann's helper
/// must never reach.
fn other_uid() -> u32 {
    let name = std::ffi::CString::new("nobody").unwrap();
    // SAFETY: getpwnam with a valid C string; pw_uid is read at once.
    unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        assert!(!pw.is_null(), "this test needs the user nobody");
        (*pw).pw_uid
    }
}

/// The macOS 14 `access` table, as `tests/camera.rs` writes it.
const SONOMA_ACCESS: &str = "\
CREATE TABLE admin (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);
INSERT INTO admin VALUES('version',30);
CREATE TABLE access (service TEXT NOT NULL, client TEXT NOT NULL, client_type INTEGER NOT NULL, auth_value INTEGER NOT NULL, auth_reason INTEGER NOT NULL, auth_version INTEGER NOT NULL, csreq BLOB, policy_id INTEGER, indirect_object_identifier_type INTEGER, indirect_object_identifier TEXT NOT NULL DEFAULT 'UNUSED', indirect_object_code_identity BLOB, flags INTEGER, last_modified INTEGER NOT NULL DEFAULT (CAST(strftime('%s','now') AS INTEGER)), pid INTEGER, pid_version INTEGER, boot_uuid TEXT NOT NULL DEFAULT 'UNUSED', last_reminded INTEGER NOT NULL DEFAULT (CAST(strftime('%s','now') AS INTEGER)), PRIMARY KEY (service, client, client_type, indirect_object_identifier));
";

/// A TCC.db at `path` owned by `uid`, granting (user consent) each
/// `(service, client, client_type)`.
fn tcc_db(path: &Path, uid: u32, rows: &[(&str, &str, i64)]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(SONOMA_ACCESS).unwrap();
    for (service, client, client_type) in rows {
        conn.execute(
            "INSERT INTO access (service, client, client_type, auth_value, auth_reason, \
             auth_version, flags, last_modified, last_reminded) \
             VALUES (?1, ?2, ?3, 2, 2, 1, 0, 1717000000, 1717000000)",
            rusqlite::params![service, client, client_type],
        )
        .unwrap();
    }
    conn.close().unwrap();
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
}

fn user_db(root: &Path, user: &str) -> PathBuf {
    root.join(format!(
        "Users/{user}/Library/Application Support/com.apple.TCC/TCC.db"
    ))
}

/// The rogue helper of [`Scenario`] (label `com.acme.connect`) with: in
/// ann's database a camera and a microphone grant to its bundle id, a
/// camera grant to its executable's path, and one to another app; the
/// same bundle id granted in another user's database and in the system
/// one. Returns the scenario and the `tccutil` stand-in's log (writable
/// by every user, as the stand-in runs as whoever it was started as).
fn scenario(mode: &str) -> (Scenario, PathBuf) {
    let s = Scenario::new(mode, &[]);
    let exe = s.exe.to_str().unwrap().to_string();
    let ann = user_db(&s.root, "ann");
    tcc_db(
        &ann,
        USER_UID,
        &[
            ("kTCCServiceCamera", LABEL, 0),
            ("kTCCServiceMicrophone", LABEL, 0),
            ("kTCCServiceCamera", &exe, 1),
            ("kTCCServiceCamera", "us.zoom.xos", 0),
        ],
    );
    chown_tree(&s.root.join("Users/ann/Library"), USER_UID);
    let other = other_uid();
    tcc_db(
        &user_db(&s.root, "nobody"),
        other,
        &[("kTCCServiceCamera", LABEL, 0)],
    );
    tcc_db(
        &s.root
            .join("Library/Application Support/com.apple.TCC/TCC.db"),
        0,
        &[("kTCCServiceCamera", LABEL, 0)],
    );
    let log = s.root.join("run/tccutil.log");
    std::fs::write(&log, b"").unwrap();
    std::fs::set_permissions(&log, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    (s, log)
}

fn start(s: &Scenario, log: &Path) -> Daemon {
    let sock = s.standin.sock_path();
    Daemon::start(
        &s.config,
        &[
            (STANDIN_SOCK_ENV, sock.as_os_str()),
            (TCCUTIL_LOG_ENV, log.as_os_str()),
        ],
    )
}

/// Every run of the `tccutil` stand-in: (argv, uid, euid).
fn tccutil_runs(log: &Path) -> Vec<(Vec<String>, u64, u64)> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let argv = v["argv"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect();
            (
                argv,
                v["uid"].as_u64().unwrap(),
                v["euid"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The finished journal entry of the helper's plan.
fn finished_plan(s: &Scenario, d: &Daemon) -> Value {
    wait_until(
        Duration::from_secs(30),
        "the helper's plan, finished",
        || {
            s.plans()
                .into_iter()
                .find(|e| e["finished"] == true && step_names(e).contains(&"reset_grants".into()))
        },
    )
    .tap_log(d)
}

trait TapLog {
    fn tap_log(self, d: &Daemon) -> Self;
}

impl TapLog for Value {
    /// Print the daemon's log when the entry says a step failed, so a
    /// failing assertion below comes with it.
    fn tap_log(self, d: &Daemon) -> Self {
        if self.to_string().contains("\"failed\"") {
            eprintln!("daemon log:\n{}", d.log());
        }
        self
    }
}

fn reset_step(entry: &Value) -> (&Value, &Value) {
    let i = step_names(entry)
        .iter()
        .position(|n| n == "reset_grants")
        .unwrap();
    (&entry["plan"]["steps"][i], &entry["steps"][i])
}

#[test]
fn remediate_resets_the_helpers_grants_as_its_user_and_nothing_beyond_her_reach() {
    let (s, log) = scenario("remediate");
    let d = start(&s, &log);
    let entry = finished_plan(&s, &d);
    assert_eq!(
        step_names(&entry),
        [
            "bootout",
            "terminate",
            "quarantine",
            "guard",
            "reset_grants",
            "notify"
        ]
    );
    let (planned, done) = reset_step(&entry);
    assert_eq!(done["status"], "done", "{entry:#}\n{}", d.log());

    // tccutil ran twice, as ann (uid and euid), naming the bundle id.
    let runs = tccutil_runs(&log);
    let want = |service: &str| {
        (
            vec!["reset".to_string(), service.to_string(), LABEL.to_string()],
            u64::from(USER_UID),
            u64::from(USER_UID),
        )
    };
    assert_eq!(runs, [want("Camera"), want("Microphone")], "{}", d.log());
    // Through `launchctl asuser` and `sudo -u`, as on a Mac.
    let calls = std::fs::read_to_string(s.root.join("launchd/calls.log")).unwrap();
    let tccutil = lenscap_e2e::fixture_bin("tccutil");
    let user = user_name_of(USER_UID);
    assert!(
        calls.contains(&format!(
            "asuser {USER_UID} /usr/bin/sudo -u {user} {} reset Camera {LABEL}",
            tccutil.display()
        )),
        "{calls}"
    );

    // What was kept, and why: another user's database, the system's, and
    // the grant TCC knows by path.
    let kept = planned["kept"].to_string();
    assert!(
        kept.contains(&format!("uid {}'s database", other_uid())),
        "{kept}"
    );
    assert!(kept.contains("uid 0's database"), "{kept}");
    assert!(kept.contains("only by its path"), "{kept}");
    assert!(
        !kept.contains("us.zoom.xos"),
        "another app's grant is not the helper's: {kept}"
    );

    // The manifest lists the grants reset.
    let record = s
        .quarantine_list()
        .into_iter()
        .find(|r| r["state"] == "quarantined")
        .expect("a quarantine record");
    let grants = record["grants_reset"].as_array().expect("grants_reset");
    let listed: Vec<(String, String, u64)> = grants
        .iter()
        .map(|g| {
            (
                g["service"].as_str().unwrap().to_string(),
                g["client"].as_str().unwrap().to_string(),
                g["uid"].as_u64().unwrap(),
            )
        })
        .collect();
    let ann = |service: &str| (service.to_string(), LABEL.to_string(), u64::from(USER_UID));
    assert_eq!(listed, [ann("camera"), ann("microphone")]);

    // One reset_grant event per grant, its target ann's database. (The
    // reporter writes them after the journal entry finishes: wait.)
    let resets: Vec<Value> = wait_until(Duration::from_secs(15), "two reset_grant events", || {
        let resets: Vec<Value> = s
            .events()
            .into_iter()
            .filter(|e| e["payload"]["action"] == "reset_grant")
            .collect();
        (resets.len() >= 2).then_some(resets)
    });
    assert_eq!(resets.len(), 2, "{resets:#?}");
    for e in &resets {
        assert_eq!(e["payload"]["outcome"]["status"], "success", "{e:#}");
        assert_eq!(
            e["payload"]["file"]["path"],
            user_db(&s.root, "ann").to_str().unwrap(),
            "{e:#}"
        );
    }

    // A restore says what to grant again, on the terminal and in the
    // restore event the daemon reports.
    let id = record["id"].as_str().unwrap();
    let out = s.lenscap(&["quarantine", "restore", id]);
    assert!(
        out.contains(&format!(
            "lenscap reset the camera access of {LABEL} (uid {USER_UID}); if you trust it, grant it again"
        )),
        "{out}"
    );
    let restore = wait_until(Duration::from_secs(10), "a restore event", || {
        s.events()
            .into_iter()
            .find(|e| e["payload"]["action"] == "restore_file")
    });
    let message = restore["payload"]["message"].as_str().unwrap();
    assert!(
        message.contains("grant it again") && message.contains("microphone access"),
        "{message}"
    );
    drop(d);
}

#[test]
fn monitor_mode_journals_the_reset_as_would_do_and_runs_nothing() {
    let (s, log) = scenario("monitor");
    let mut d = start(&s, &log);
    let entry = finished_plan(&s, &d);
    let (planned, done) = reset_step(&entry);
    assert_eq!(done["status"], "would_do", "{entry:#}");
    assert_eq!(
        planned["grants"].as_array().unwrap().len(),
        2,
        "{planned:#}"
    );
    let would: Vec<Value> = wait_until(Duration::from_secs(15), "two would-do events", || {
        let would: Vec<Value> = s
            .events()
            .into_iter()
            .filter(|e| e["payload"]["action"] == "reset_grant")
            .collect();
        (would.len() >= 2).then_some(would)
    });
    assert_eq!(would.len(), 2, "{would:#?}");
    assert!(would.iter().all(|e| e["payload"]["would_do"] == true));
    d.wait_sweeps(2);
    assert!(tccutil_runs(&log).is_empty(), "tccutil ran in monitor mode");
    assert!(
        !std::fs::read_to_string(s.root.join("launchd/calls.log"))
            .unwrap_or_default()
            .contains("tccutil"),
        "asked launchctl to run tccutil in monitor mode"
    );
}

/// The daemon SIGKILLed before and after `reset_grants`, then started
/// again: the entry finishes, the grants are reset (running `tccutil`
/// again is harmless: a reset of a reset changes nothing), and the
/// manifest lists each grant once.
fn crash_around_reset(point: &str) {
    use std::os::unix::process::ExitStatusExt;
    let (s, log) = scenario("remediate");
    let sock = s.standin.sock_path();
    let point_os = std::ffi::OsString::from(point);
    let mut first = Daemon::spawn(
        lenscap_e2e::lenscap_bin(),
        &s.config,
        &[
            (STANDIN_SOCK_ENV, sock.as_os_str()),
            (TCCUTIL_LOG_ENV, log.as_os_str()),
            (lenscap_e2e::FAULT_ENV, point_os.as_os_str()),
        ],
    );
    let status = first.wait_exit(Duration::from_secs(30));
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "{point}: {status}; log:\n{}",
        first.log()
    );
    let before = tccutil_runs(&log).len();
    assert_eq!(
        before,
        if point.starts_with("after") { 2 } else { 0 },
        "{point}"
    );
    drop(first);

    let d = start(&s, &log);
    let entry = finished_plan(&s, &d);
    let (_, done) = reset_step(&entry);
    assert_eq!(done["status"], "done", "{point}: {entry:#}\n{}", d.log());
    let runs = tccutil_runs(&log);
    assert!(
        runs.len() == 2 || runs.len() == 4,
        "{point}: tccutil ran {} times",
        runs.len()
    );
    assert!(
        runs.iter()
            .all(|(argv, uid, _)| *uid == u64::from(USER_UID) && argv[2] == LABEL),
        "{point}: {runs:?}"
    );
    let record = s
        .quarantine_list()
        .into_iter()
        .find(|r| r["state"] == "quarantined")
        .expect("a quarantine record");
    let grants = record["grants_reset"].as_array().expect("grants_reset");
    assert_eq!(grants.len(), 2, "{point}: each grant once: {grants:#?}");
    assert_eq!(s.plans().len(), 1, "{point}: no second plan");
}

#[test]
fn killed_before_reset_grants_the_restarted_daemon_finishes_it() {
    crash_around_reset("before:reset_grants");
}

#[test]
fn killed_after_reset_grants_the_restarted_daemon_does_not_list_them_twice() {
    crash_around_reset("after:reset_grants");
}
