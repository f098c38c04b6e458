//! Monitor mode records the plan and changes nothing; in remediate mode,
//! benign services are left alone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lenscap_e2e::{
    Daemon, FileFacts, STANDIN_SOCK_ENV, Standin, pid_running, temp_tree, tree_facts,
    wait_for_file, wait_until, write_config, write_launchd_plist,
};

use super::{ROGUE, Scenario, remediation_events, step_names, step_statuses};

/// Everything in the tree but what the daemon and the stand-in keep for
/// themselves (their state directories).
fn snapshot(root: &Path) -> std::collections::BTreeMap<PathBuf, FileFacts> {
    let mut facts = tree_facts(root);
    facts.retain(|p, _| {
        let first = p.components().next().unwrap().as_os_str().to_string_lossy();
        !(first == "state" || first == "launchd")
    });
    facts
}

#[test]
fn monitor_mode_changes_nothing_and_records_the_plan() {
    let s = Scenario::new("monitor", &[]);
    let before = snapshot(&s.root);
    let mut d = s.start_daemon();
    let entry = wait_until(Duration::from_secs(10), "a monitor journal entry", || {
        s.plans().into_iter().next()
    });
    d.wait_sweeps(2);

    assert_eq!(before, snapshot(&s.root), "monitor mode changed the tree");
    assert!(pid_running(s.pid), "monitor mode stopped the helper");
    assert_eq!(s.standin.job_pid(&s.target()), Some(s.pid));
    assert!(s.quarantine_list().is_empty());

    // The journal: the whole plan, finished, every step "would do".
    assert_eq!(s.plans().len(), 1, "one plan, not one per sweep");
    assert_eq!(entry["mode"], "monitor");
    assert_eq!(entry["finished"], true);
    assert_eq!(
        step_names(&entry),
        ["bootout", "terminate", "quarantine", "guard", "notify"]
    );
    assert!(
        step_statuses(&entry).iter().all(|st| st == "would_do"),
        "{entry:#}"
    );

    // The events: the plan, as would-do events, and nothing done.
    let events = s.events();
    let planned = remediation_events(&events);
    assert!(!planned.is_empty(), "no would-do events: {events:#?}");
    for e in &planned {
        assert_eq!(e["payload"]["would_do"], true, "{e:#}");
        assert_eq!(e["mode"], "monitor", "{e:#}");
    }
    let actions: Vec<&str> = planned
        .iter()
        .filter_map(|e| e["payload"]["action"].as_str())
        .collect();
    for a in ["stop_job", "kill_process", "quarantine_file", "guard_path"] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    let status = d.status().unwrap();
    assert_eq!(status["remediations"], 0, "{status:#}");
    assert!(status["would_do"].as_u64() >= Some(1), "{status:#}");
    assert_eq!(d.stop().code(), Some(0));
    assert!(pid_running(s.pid));
}

#[test]
fn benign_services_are_left_alone_in_remediate_mode() {
    let tree = temp_tree();
    let r = tree.path();
    // A visible vendor app's helper, without CORS, started by launchd.
    let app = r.join("Applications/Vendor.app");
    let vendor = app.join("Contents/MacOS/vendor-helper");
    std::fs::create_dir_all(vendor.parent().unwrap()).unwrap();
    std::fs::copy(ROGUE, &vendor).unwrap();
    let mut info = plist::Dictionary::new();
    info.insert("CFBundleIdentifier".into(), "com.vendor.app".into());
    plist::Value::Dictionary(info)
        .to_file_xml(app.join("Contents/Info.plist"))
        .unwrap();
    let agents = r.join("Library/LaunchAgents");
    let vendor_port = r.join("vendor.port");
    write_launchd_plist(
        &agents.join("com.vendor.helper.plist"),
        "com.vendor.helper",
        &[
            vendor.to_str().unwrap(),
            "--cors",
            "none",
            "--port-file",
            vendor_port.to_str().unwrap(),
        ],
        true,
    );
    // A listener that does not speak HTTP, in a hidden folder, with a
    // KeepAlive plist.
    let quiet = r.join("Users/alice/.quietd/quietd");
    std::fs::create_dir_all(quiet.parent().unwrap()).unwrap();
    std::fs::copy(ROGUE, &quiet).unwrap();
    let user_agents = r.join("Users/alice/Library/LaunchAgents");
    let quiet_port = r.join("quiet.port");
    write_launchd_plist(
        &user_agents.join("com.quiet.d.plist"),
        "com.quiet.d",
        &[
            quiet.to_str().unwrap(),
            "--raw",
            "--port-file",
            quiet_port.to_str().unwrap(),
        ],
        true,
    );
    // An HTTP server with open CORS in a hidden folder, started by a
    // person on a terminal.
    let dev = r.join("Users/alice/.devtools/devserver");
    std::fs::create_dir_all(dev.parent().unwrap()).unwrap();
    std::fs::copy(ROGUE, &dev).unwrap();
    std::fs::create_dir_all(r.join("Applications")).unwrap();
    let config = write_config(
        r,
        &[
            ("Mode", "remediate".into()),
            ("SweepSeconds", 1.into()),
            (
                "LaunchctlPath",
                Standin::launchctl_path().display().to_string().into(),
            ),
            ("PlaceholderBlock", true.into()),
        ],
    );
    let standin = Standin::start(&[&agents, &user_agents], &r.join("launchd"));
    wait_for_file(&vendor_port, Duration::from_secs(10));
    wait_for_file(&quiet_port, Duration::from_secs(10));
    let (terminal, _port, master) =
        lenscap_e2e::start_on_terminal(&dev, &["--cors", "star"], &r.join("dev.port"));
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let job = |label: &str| {
        let target = format!("gui/{uid}/{label}");
        wait_until(Duration::from_secs(5), "a job pid", || {
            standin.job_pid(&target)
        })
    };
    let pids = [job("com.vendor.helper"), job("com.quiet.d"), terminal.pid()];
    let before = snapshot(r);

    let sock = standin.sock_path();
    let mut d = Daemon::start(&config, &[(STANDIN_SOCK_ENV, sock.as_os_str())]);
    d.wait_sweeps(4);

    for pid in pids {
        assert!(pid_running(pid), "pid {pid} was stopped; log:\n{}", d.log());
    }
    assert_eq!(job("com.vendor.helper"), pids[0], "not restarted either");
    assert_eq!(job("com.quiet.d"), pids[1]);
    assert_eq!(before, snapshot(r), "files changed");
    let journal = super::journal_entries(&r.join("state"));
    assert!(journal.is_empty(), "plans made: {journal:#?}");
    let status = d.status().unwrap();
    assert_eq!(status["remediations"], 0, "{status:#}");
    assert_eq!(status["quarantined"], 0, "{status:#}");
    assert!(
        standin.calls().iter().all(|c| !c.starts_with("bootout")),
        "{:?}",
        standin.calls()
    );
    assert_eq!(d.stop().code(), Some(0));
    drop(terminal);
    // SAFETY: closing the pty master we opened.
    unsafe { libc::close(master) };
}
