//! The person at the keyboard is told (issue 15), through the notification
//! stand-in: the `launchctl` shim takes `asuser <uid> /usr/bin/sudo -u
//! <user> /usr/bin/osascript -e <script>`, becomes that user as `sudo`
//! would and records its argv and the uid it runs as
//! (`Standin::notifications`).
//!
//! Monitor mode tells once what it would do, remediate mode once what it
//! did with the undo line, `NotifyUser none` tells nothing, a helper that
//! keeps coming back is not a stream of notifications, and `lenscap mode
//! remediate` changes the running daemon's mode — or, when the managed
//! preferences set `Mode`, refuses and says why.

use std::process::Command;
use std::time::Duration;

use lenscap_e2e::{lenscap_bin, wait_until};

use super::{Scenario, USER_UID, is_placeholder, step_names, user_name_of};

/// Every recorded notification ran as the helper's owner, never root, in
/// the documented command shape; returns their scripts.
fn scripts(s: &Scenario) -> Vec<String> {
    let user = user_name_of(USER_UID);
    s.standin
        .notifications()
        .iter()
        .map(|n| {
            assert_eq!(n["uid"], USER_UID, "{n:#}");
            assert_eq!(n["euid"], USER_UID, "{n:#}");
            assert_eq!(n["asuser"], USER_UID, "{n:#}");
            let argv: Vec<&str> = n["argv"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            let uid = USER_UID.to_string();
            assert_eq!(
                argv[..7],
                [
                    "asuser",
                    uid.as_str(),
                    "/usr/bin/sudo",
                    "-u",
                    user.as_str(),
                    "/usr/bin/osascript",
                    "-e"
                ],
                "{n:#}"
            );
            let script = n["script"].as_str().unwrap().to_string();
            assert!(script.starts_with("display notification \""), "{script}");
            script
        })
        .collect()
}

fn wait_notifications(s: &Scenario, n: usize, d: &lenscap_e2e::Daemon) -> Vec<String> {
    wait_until(
        Duration::from_secs(15),
        &format!("{n} notification(s); daemon log:\n{}", d.log()),
        || {
            let got = s.standin.notifications();
            (got.len() >= n).then_some(())
        },
    );
    scripts(s)
}

/// A plan's journal entry (not a reinstall's).
fn is_plan(e: &serde_json::Value) -> bool {
    !e["plan"]["key"]
        .as_str()
        .unwrap_or("")
        .starts_with("reinstall:")
}

#[test]
fn monitor_mode_tells_once_what_it_would_do() {
    let s = Scenario::new("monitor", &[]);
    let mut d = s.start_daemon();
    let got = wait_notifications(&s, 1, &d);
    d.wait_sweeps(4);
    let got_after = scripts(&s);
    assert_eq!(
        got_after.len(),
        1,
        "one notification, not one per sweep: {got_after:#?}"
    );
    assert_eq!(got, got_after);
    let script = &got[0];
    assert!(
        script.contains(
            "acme-connect runs a hidden web server any web page can reach; lenscap would stop it \
             and move it to quarantine. To let lenscap do that: sudo lenscap mode remediate"
        ),
        "{script}"
    );
    assert!(
        script.ends_with("with title \"lenscap found a hidden helper\""),
        "{script}"
    );
    // Telling is not acting: the helper still runs, and the journal's
    // notify step is a "would do" like the rest.
    assert!(lenscap_e2e::pid_running(s.pid));
    assert!(s.quarantine_list().is_empty());
    d.stop();
}

#[test]
fn remediate_mode_tells_once_what_it_did_and_how_to_undo_it() {
    let s = Scenario::new("remediate", &[]);
    let mut d = s.start_daemon();
    s.wait_gone(s.pid, Duration::from_secs(10), &d);
    let got = wait_notifications(&s, 1, &d);
    d.wait_sweeps(3);
    assert_eq!(scripts(&s).len(), 1, "{:#?}", scripts(&s));
    let records = s.quarantine_list();
    assert_eq!(records.len(), 1, "{records:#?}");
    let id = records[0]["id"].as_str().unwrap();
    assert!(
        got[0].contains(&format!(
            "acme-connect ran a hidden web server any web page could reach; lenscap stopped it \
             and moved it to quarantine. To undo: sudo lenscap quarantine restore {id} --allow\""
        )),
        "{}",
        got[0]
    );
    // The journal's notify step says so.
    let journal = s.journal();
    let entry = journal.iter().find(|e| is_plan(e)).unwrap();
    let notify = &entry["steps"][step_names(entry).len() - 1];
    assert_eq!(notify["status"], "done", "{entry:#}");
    assert_eq!(notify["outcome"], "user notified", "{entry:#}");
    d.stop();
}

#[test]
fn notify_user_none_tells_nothing() {
    let s = Scenario::new("remediate", &[("NotifyUser", "none".into())]);
    let mut d = s.start_daemon();
    s.wait_gone(s.pid, Duration::from_secs(10), &d);
    let entry = wait_until(Duration::from_secs(10), "the plan finished", || {
        s.journal()
            .into_iter()
            .find(|e| is_plan(e) && e["finished"] == true)
    });
    d.wait_sweeps(3);
    assert!(
        s.standin.notifications().is_empty(),
        "{:#?}",
        s.standin.notifications()
    );
    let notify = &entry["steps"][step_names(&entry).len() - 1];
    assert_eq!(
        notify["outcome"], "user not notified: NotifyUser is none",
        "{entry:#}"
    );
    assert!(
        s.standin.calls().iter().all(|c| !c.starts_with("asuser")),
        "{:?}",
        s.standin.calls()
    );
    d.stop();
}

/// A KeepAlive helper that keeps coming back — killed and restarted by
/// launchd, its files put back by its installer — is one notification of
/// each kind, not a stream.
#[test]
fn a_helper_that_keeps_coming_back_is_not_a_stream_of_notifications() {
    // Monitor mode: launchd restarts it after every kill.
    let s = Scenario::new("monitor", &[]);
    let mut d = s.start_daemon();
    wait_notifications(&s, 1, &d);
    let mut pid = s.pid;
    for _ in 0..3 {
        // SAFETY: kill(2) on the helper the test started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        pid = wait_until(Duration::from_secs(10), "KeepAlive restarts it", || {
            s.standin.job_pid(&s.target()).filter(|p| *p != pid)
        });
        d.wait_sweeps(2);
    }
    assert_eq!(scripts(&s).len(), 1, "{:#?}", scripts(&s));
    drop(d);
    drop(s);

    // Remediate mode: its installer puts it back, again and again.
    let s = Scenario::new("remediate", &[]);
    let mut d = s.start_daemon();
    s.wait_gone(s.pid, Duration::from_secs(10), &d);
    wait_notifications(&s, 1, &d);
    for round in 0..3 {
        wait_until(Duration::from_secs(10), "the placeholder", || {
            is_placeholder(&s.folder).then_some(())
        });
        let staging = s.root.join(format!("staging{round}/.acmeconnect"));
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::copy(super::ROGUE, staging.join("acme-connect")).unwrap();
        super::chown_tree(&staging, USER_UID);
        std::fs::remove_file(&s.folder).unwrap();
        std::fs::rename(&staging, &s.folder).unwrap();
        wait_until(Duration::from_secs(10), "the reinstall removed", || {
            (s.quarantine_list().len() == round + 2).then_some(())
        });
    }
    d.wait_sweeps(2);
    let got = scripts(&s);
    assert_eq!(
        got.len(),
        2,
        "the removal and one reinstall notice: {got:#?}"
    );
    assert!(got[0].contains("lenscap stopped it"), "{}", got[0]);
    assert!(
        got[1].contains("put back a helper lenscap had removed; lenscap moved it to quarantine again. To undo: sudo lenscap quarantine restore "),
        "{}",
        got[1]
    );
    assert!(
        got[1].ends_with("with title \"lenscap removed a helper again\""),
        "{}",
        got[1]
    );
    d.stop();
}

/// `lenscap mode <mode>` with `args` (a `--config` or preference files).
fn lenscap_mode(mode: &str, args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(lenscap_bin())
        .arg("mode")
        .arg(mode)
        .args(args)
        .output()
        .expect("run lenscap mode")
}

#[test]
fn lenscap_mode_remediate_changes_the_running_daemons_mode() {
    let s = Scenario::new("monitor", &[]);
    let mut d = s.start_daemon();
    wait_notifications(&s, 1, &d);
    assert_eq!(d.status().unwrap()["effective_mode"], "monitor");

    let out = lenscap_mode("remediate", &["--config".as_ref(), s.config.as_os_str()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "mode: monitor -> remediate ({}); the running daemon picks it up without a restart\n",
            s.config.display()
        )
    );
    // The same daemon (same pid) now remediates what it only reported.
    s.wait_gone(s.pid, Duration::from_secs(15), &d);
    let records = wait_until(Duration::from_secs(10), "the helper in quarantine", || {
        let r = s.quarantine_list();
        (!r.is_empty()).then_some(r)
    });
    let got = wait_notifications(&s, 2, &d);
    assert!(got[0].contains("lenscap would stop it"), "{}", got[0]);
    let id = records[0]["id"].as_str().unwrap();
    assert!(
        got[1].contains(&format!("sudo lenscap quarantine restore {id} --allow")),
        "{}",
        got[1]
    );
    d.wait_sweeps(1);
    assert_eq!(d.status().unwrap()["effective_mode"], "remediate");
    assert_eq!(d.status().unwrap()["mode"], "remediate");

    // And `lenscap mode` shows it.
    let shown = Command::new(lenscap_bin())
        .args(["mode", "--config"])
        .arg(&s.config)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&shown.stdout).starts_with("remediate (file: "),
        "{shown:?}"
    );
    d.stop();
}

#[test]
fn lenscap_mode_refuses_when_the_managed_preferences_set_mode() {
    let tree = lenscap_e2e::temp_tree();
    let managed = tree
        .path()
        .join("Managed Preferences/io.lenscap.agent.plist");
    let local = tree.path().join("Preferences/io.lenscap.agent.plist");
    std::fs::create_dir_all(managed.parent().unwrap()).unwrap();
    std::fs::create_dir_all(local.parent().unwrap()).unwrap();
    let mut dict = plist::Dictionary::new();
    dict.insert("Mode".into(), "monitor".into());
    plist::Value::Dictionary(dict)
        .to_file_xml(&managed)
        .unwrap();
    let args = [
        "--managed-preferences".as_ref(),
        managed.as_os_str(),
        "--local-preferences".as_ref(),
        local.as_os_str(),
    ];
    let out = lenscap_mode("remediate", &args);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end(),
        format!(
            "lenscap: error: Mode is managed by your organization (MDM configuration profile for \
             io.lenscap.agent, delivered as {}); lenscap mode cannot change it — ask your \
             administrator to change the profile",
            managed.display()
        )
    );
    assert!(!local.exists(), "nothing written to the local preferences");
}
