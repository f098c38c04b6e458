//! A root-owned LaunchAgent (`/Library/LaunchAgents`) is loaded into the
//! gui domain of every user logged in at the console (issue 12). Who is
//! logged in: a utmpx file at the daemon's `UtmpxPath` (the macOS format,
//! `lenscap::parse::utmpx`) and the same users given to the launchd
//! stand-in (`--console-uid`), which then runs the agent once per user.
//! The daemon boots it out of each of those domains; with nobody logged
//! in there is nothing to boot out, and the step says so.

use std::path::PathBuf;
use std::time::Duration;

use lenscap::parse::utmpx::{Record, USER_PROCESS, encode};
use lenscap_e2e::{
    Daemon, STANDIN_SOCK_ENV, Standin, temp_tree, wait_until, write_config, write_launchd_plist,
};
use serde_json::Value;

use super::{ROGUE, USER_UID, journal_entries, step_names, step_statuses, user_name_of};

const LABEL: &str = "com.acme.everyone";

fn user(uid: u32) -> (u32, String) {
    (uid, user_name_of(uid))
}

/// ann (uid 1000) and `nobody`: two users at the console.
fn two_users() -> Vec<(u32, String)> {
    let name = std::ffi::CString::new("nobody").unwrap();
    // SAFETY: getpwnam with a valid C string; pw_uid is read at once.
    let nobody = unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        assert!(!pw.is_null(), "this test needs the user nobody");
        (*pw).pw_uid
    };
    vec![user(USER_UID), user(nobody)]
}

struct World {
    root: PathBuf,
    plist: PathBuf,
    config: PathBuf,
    standin: Standin,
    _tree: tempfile::TempDir,
}

/// A root-owned KeepAlive LaunchAgent in `<tree>/Library/LaunchAgents`
/// running the rogue helper from a temporary folder (root's, readable by
/// all), `users` logged in, and a remediate-mode configuration (with
/// `deny`, an admin rule that denies the helper's folder, so the agent is
/// remediated even when nothing runs it).
fn world(users: &[(u32, String)], deny: bool) -> World {
    let tree = temp_tree();
    let root = tree.path().to_path_buf();
    let folder = root.join("private/tmp/acme-everyone");
    let exe = folder.join("acme-everyone");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::create_dir_all(root.join("Applications")).unwrap();
    std::fs::copy(ROGUE, &exe).unwrap();
    let plist = root.join(format!("Library/LaunchAgents/{LABEL}.plist"));
    write_launchd_plist(
        &plist,
        LABEL,
        &[exe.to_str().unwrap(), "--cors", "star", "--image"],
        true,
    );
    // Who is logged in, said once for the daemon (utmpx) ...
    let utmpx = root.join("var/run/utmpx");
    std::fs::create_dir_all(utmpx.parent().unwrap()).unwrap();
    let records: Vec<Record> = users
        .iter()
        .map(|(_, name)| Record {
            user: name.clone(),
            line: "console".into(),
            pid: 100,
            kind: USER_PROCESS,
            time_s: 1_767_225_600,
        })
        .collect();
    std::fs::write(&utmpx, encode(&records)).unwrap();
    // ... and for the stand-in.
    let mut extra: Vec<String> = users
        .iter()
        .flat_map(|(uid, _)| ["--console-uid".to_string(), uid.to_string()])
        .collect();
    if users.is_empty() {
        extra.extend(["--console-uid".into(), "none".into()]);
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut keys: Vec<(&str, plist::Value)> = vec![
        ("Mode", "remediate".into()),
        ("SweepSeconds", 1.into()),
        (
            "LaunchctlPath",
            Standin::launchctl_path().display().to_string().into(),
        ),
    ];
    if deny {
        let mut rule = plist::Dictionary::new();
        rule.insert("Id".into(), "acme-everyone".into());
        rule.insert("Action".into(), "deny".into());
        rule.insert("Path".into(), format!("{}/**", folder.display()).into());
        keys.push(("Rules", plist::Value::Array(vec![rule.into()])));
    }
    let config = write_config(&root, &keys);
    let standin = Standin::start_with(&[plist.parent().unwrap()], &root.join("launchd"), &extra);
    World {
        root,
        plist,
        config,
        standin,
        _tree: tree,
    }
}

impl World {
    fn target(&self, uid: u32) -> String {
        format!("gui/{uid}/{LABEL}")
    }

    fn start_daemon(&self) -> Daemon {
        let sock = self.standin.sock_path();
        Daemon::start(&self.config, &[(STANDIN_SOCK_ENV, sock.as_os_str())])
    }

    fn jobs_log(&self) -> String {
        std::fs::read_to_string(self.root.join("launchd/jobs.log")).unwrap_or_default()
    }

    fn plan(&self, d: &Daemon) -> Value {
        wait_until(
            Duration::from_secs(40),
            "the agent's plan, finished",
            || {
                journal_entries(&self.root.join("state"))
                    .into_iter()
                    .find(|e| {
                        e["finished"] == true
                            && step_names(e).first().is_some_and(|s| s == "bootout")
                    })
            },
        )
        .tap(|e| {
            if step_statuses(e).iter().any(|s| s != "done") {
                eprintln!("daemon log:\n{}", d.log());
            }
        })
    }
}

trait Tap: Sized {
    fn tap(self, f: impl FnOnce(&Self)) -> Self {
        f(&self);
        self
    }
}
impl Tap for Value {}

fn outcome_of_bootout(entry: &Value) -> String {
    entry["steps"][0]["outcome"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_root_owned_agent_is_booted_out_of_both_logged_in_users_gui_domains() {
    let users = two_users();
    let w = world(&users, false);
    assert_eq!(
        std::fs::metadata(&w.plist)
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap(),
        0,
        "the plist is root's"
    );
    // The stand-in runs it once per logged-in user, as that user.
    let pids: Vec<u32> = users
        .iter()
        .map(|(uid, _)| {
            wait_until(
                Duration::from_secs(10),
                "the agent running for each user",
                || w.standin.job_pid(&w.target(*uid)),
            )
        })
        .collect();
    let d = w.start_daemon();
    let entry = w.plan(&d);
    assert_eq!(step_statuses(&entry)[0], "done", "{entry:#}");
    let said = outcome_of_bootout(&entry);
    for (uid, _) in &users {
        assert!(
            said.contains(&format!("unloaded {}", w.target(*uid))),
            "{said}"
        );
    }
    let log = w.jobs_log();
    for (uid, _) in &users {
        assert!(
            log.contains(&format!("bootout {}", w.target(*uid))),
            "{log}"
        );
        assert_eq!(
            w.standin.job_pid(&w.target(*uid)),
            None,
            "still loaded for {uid}"
        );
    }
    // Never root's own gui domain: there is none on a Mac.
    assert!(!log.contains(&format!("bootout gui/0/{LABEL}")), "{log}");
    for pid in pids {
        assert!(!lenscap_e2e::pid_running(pid), "pid {pid} still running");
    }
    drop(d);
}

#[test]
fn with_nobody_logged_in_there_is_nothing_to_boot_out_and_the_step_says_so() {
    // Nothing runs it, so only an admin's deny rule makes it a finding
    // to remediate.
    let w = world(&[], true);
    let d = w.start_daemon();
    let entry = w.plan(&d);
    assert_eq!(step_statuses(&entry)[0], "done", "{entry:#}");
    let said = outcome_of_bootout(&entry);
    assert!(said.contains("nobody is logged in"), "{said}");
    let calls = std::fs::read_to_string(w.root.join("launchd/calls.log")).unwrap_or_default();
    assert!(!calls.contains("bootout"), "{calls}");
    // The rest of the plan still ran: its files are in quarantine.
    assert!(!w.plist.exists(), "the plist was not moved");
    drop(d);
}

#[test]
fn a_users_own_agent_is_booted_out_of_her_domain_only_whoever_else_is_logged_in() {
    // ann's KeepAlive agent (the rogue helper of `Scenario`), with ann and
    // another user at the console: only gui/1000 is touched.
    let users = two_users();
    let s = super::Scenario::new("remediate", &[]);
    let utmpx = s.root.join("var/run/utmpx");
    std::fs::create_dir_all(utmpx.parent().unwrap()).unwrap();
    let records: Vec<Record> = users
        .iter()
        .map(|(_, name)| Record {
            user: name.clone(),
            line: "console".into(),
            pid: 100,
            kind: USER_PROCESS,
            time_s: 1_767_225_600,
        })
        .collect();
    std::fs::write(&utmpx, encode(&records)).unwrap();
    let d = s.start_daemon();
    let entry = wait_until(Duration::from_secs(30), "ann's plan, finished", || {
        s.plans().into_iter().find(|e| e["finished"] == true)
    });
    assert_eq!(step_statuses(&entry)[0], "done", "{entry:#}\n{}", d.log());
    let calls = std::fs::read_to_string(s.root.join("launchd/calls.log")).unwrap();
    let bootouts: Vec<&str> = calls.lines().filter(|l| l.starts_with("bootout")).collect();
    assert_eq!(
        bootouts,
        [format!("bootout gui/{USER_UID}/{}", super::LABEL)],
        "{calls}"
    );
    drop(d);
}
