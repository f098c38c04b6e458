//! Remediate mode end to end: stopped, stays stopped, quarantined with a
//! correct manifest, restored exactly, allowed; a reinstall is removed
//! again.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use lenscap_e2e::{Daemon, sha256_file, tree_facts, wait_for_file, wait_until};
use serde_json::Value;

use super::{
    ROGUE, Scenario, USER_UID, is_placeholder, remediation_events, step_names, step_statuses,
};

/// The quarantine record (from `quarantine list --json`) whose items
/// include `path`, once it is `quarantined`.
fn record_holding(s: &Scenario, path: &Path, daemon: &Daemon) -> Value {
    let path = path.to_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = s.quarantine_list().into_iter().find(|r| {
            r["state"] == "quarantined"
                && r["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i["original"] == path)
        });
        if let Some(r) = found {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no quarantine record for {path}; log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn item<'a>(record: &'a Value, path: &Path) -> &'a Value {
    record["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["original"] == path.to_str().unwrap())
        .unwrap_or_else(|| panic!("{} not in {record:#}", path.display()))
}

/// Bootstrap the job again (as a user logging in would) and return the
/// new helper's pid once it listens.
fn start_job_again(s: &Scenario) -> u32 {
    let _ = std::fs::remove_file(&s.port_file);
    let out = s.standin.launchctl(&[
        "bootstrap",
        &format!("gui/{USER_UID}"),
        s.plist.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "bootstrap: {out:?}");
    wait_for_file(&s.port_file, Duration::from_secs(10));
    wait_until(Duration::from_secs(5), "the job's new pid", || {
        s.standin.job_pid(&s.target())
    })
}

#[test]
fn rogue_helper_is_stopped_quarantined_and_restored_exactly() {
    let s = Scenario::new("remediate", &[]);
    let users = s.root.join("Users");
    let before = tree_facts(&users);
    let plist_sha = sha256_file(&s.plist);
    let helper_sha = sha256_file(Path::new(ROGUE));
    let plist_size = s.plist.metadata().unwrap().len();

    let mut d = s.start_daemon();
    s.wait_gone(s.pid, Duration::from_secs(10), &d);
    s.assert_stays_gone(Duration::from_secs(3));

    // launchd was told first: the job was booted out, then its process
    // ended (the stand-in logs its exit after the bootout).
    let jobs = s.standin.job_events();
    let bootout = jobs
        .iter()
        .position(|l| l == &format!("bootout {}", s.target()));
    let exit = jobs
        .iter()
        .position(|l| l.starts_with(&format!("exit {} {}", s.target(), s.pid)));
    assert!(
        matches!((bootout, exit), (Some(b), Some(e)) if b < e),
        "bootout before the process ended: {jobs:#?}"
    );
    assert!(
        s.standin
            .calls()
            .contains(&format!("bootout {}", s.target())),
        "{:?}",
        s.standin.calls()
    );

    // The manifest: original paths, owner, group, mode, size, sha256.
    let record = record_holding(&s, &s.plist, &d);
    let id = record["id"].as_str().unwrap().to_string();
    assert_eq!(record["items"].as_array().unwrap().len(), 2, "{record:#}");
    let p = item(&record, &s.plist);
    assert_eq!(p["kind"], "file");
    assert_eq!(
        (p["uid"].as_u64(), p["gid"].as_u64()),
        (Some(1000), Some(1000))
    );
    assert_eq!(p["mode"].as_u64().map(|m| m & 0o7777), Some(0o644));
    assert_eq!(p["size"].as_u64(), Some(plist_size));
    assert_eq!(p["sha256"].as_str(), Some(plist_sha.as_str()));
    let f = item(&record, &s.folder);
    assert_eq!(f["kind"], "dir");
    assert_eq!(
        (f["uid"].as_u64(), f["gid"].as_u64()),
        (Some(1000), Some(1000))
    );
    let bin = f["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "acme-connect")
        .unwrap_or_else(|| panic!("helper binary not listed: {f:#}"));
    assert_eq!(bin["sha256"].as_str(), Some(helper_sha.as_str()));
    assert_eq!(bin["uid"].as_u64(), Some(u64::from(USER_UID)));
    assert_eq!(
        bin["mode"].as_u64().map(|m| m & 0o7777),
        Some(u64::from(
            Path::new(ROGUE).metadata().unwrap().permissions().mode() & 0o7777
        ))
    );
    assert!(record["time"].is_string() && record["finding"].is_string());

    // The vault holds the very bytes, root-only.
    let vault = s.root.join("state/quarantine").join(&id);
    assert_eq!(vault.metadata().unwrap().mode() & 0o777, 0o700);
    assert_eq!(
        s.root.join("state/quarantine").metadata().unwrap().mode() & 0o777,
        0o700
    );
    let payload = |n: &str| vault.join(item(&record, n.as_ref())["payload"].as_str().unwrap());
    assert_eq!(sha256_file(&payload(s.plist.to_str().unwrap())), plist_sha);
    assert_eq!(
        sha256_file(&payload(s.folder.to_str().unwrap()).join("acme-connect")),
        helper_sha
    );
    assert!(!s.plist.exists(), "plist moved");
    assert!(
        is_placeholder(&s.folder),
        "placeholder where the folder was"
    );

    // The journal: one remediate plan, in the order, all done.
    let journal = s.journal();
    assert_eq!(journal.len(), 1, "{journal:#?}");
    assert_eq!(journal[0]["mode"], "remediate");
    assert_eq!(journal[0]["finished"], true);
    assert_eq!(
        step_names(&journal[0]),
        ["bootout", "terminate", "quarantine", "guard", "notify"]
    );
    assert!(
        step_statuses(&journal[0]).iter().all(|s| s == "done"),
        "{:#}",
        journal[0]
    );

    // Restore while the daemon runs: back byte-identical with owner,
    // group, mode (and file mtimes); the placeholder is gone.
    s.lenscap(&["quarantine", "restore", &id]);
    assert_eq!(before, tree_facts(&users), "restored exactly");
    assert!(
        s.folder.metadata().unwrap().is_dir(),
        "placeholder replaced"
    );
    d.wait_sweeps(2);
    assert_eq!(before, tree_facts(&users), "the daemon left them back");

    // Not allowed: once it runs again, it is removed again.
    let pid = start_job_again(&s);
    s.wait_gone(pid, Duration::from_secs(10), &d);
    let second = wait_until(Duration::from_secs(10), "a second record", || {
        s.quarantine_list()
            .into_iter()
            .find(|r| r["id"] != id.as_str() && r["state"] == "quarantined")
    });
    let id2 = second["id"].as_str().unwrap().to_string();
    assert_eq!(s.quarantine_list()[0]["state"], "restored");

    // Restored with --allow: it stays, running, for three sweeps.
    s.lenscap(&["quarantine", "restore", &id2, "--allow"]);
    assert_eq!(before, tree_facts(&users), "restored exactly again");
    let pid = start_job_again(&s);
    d.wait_sweeps(3);
    assert!(
        lenscap_e2e::pid_running(pid),
        "allowed helper stopped; log:\n{}",
        d.log()
    );
    assert_eq!(s.standin.job_pid(&s.target()), Some(pid));
    assert_eq!(before, tree_facts(&users), "allowed files untouched");
    assert_eq!(s.journal().len(), 2, "no plan for the allowed helper");
    assert!(
        s.quarantine_list().iter().all(|r| r["state"] == "restored"),
        "{:#?}",
        s.quarantine_list()
    );
    // `lenscap scan` judges by the same policy: the restored, allowed
    // helper is `allow` there too, and scan exits 0 (an MDM extension
    // attribute built on it reports a clean Mac).
    let scan: Value = serde_json::from_str(&s.lenscap(&["scan", "--json"])).unwrap();
    let helper = scan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "listener" && f["process"]["pid"] == pid)
        .unwrap_or_else(|| panic!("scan lists the helper (pid {pid}): {scan:#}"));
    assert_eq!(helper["verdict"], "allow", "{helper:#}");
    assert_eq!(d.stop().code(), Some(0), "clean stop; log:\n{}", d.log());
}

#[test]
fn a_reinstall_is_removed_again_and_recorded() {
    let s = Scenario::new("remediate", &[]);
    let helper_sha = sha256_file(Path::new(ROGUE));
    let plist_bytes = std::fs::read(&s.plist).unwrap();
    let mut d = s.start_daemon();
    s.wait_gone(s.pid, Duration::from_secs(10), &d);
    let first = record_holding(&s, &s.plist, &d);
    wait_until(Duration::from_secs(5), "the placeholder", || {
        is_placeholder(&s.folder).then_some(())
    });

    // The installer comes back: the folder with the binary in it. It is
    // built beside the home and renamed into place, so the daemon never
    // sees a half-made folder (it would take an empty one away too, and
    // the copy into it would then fail: a race of the test, not a finding).
    let staging = s.root.join("staging/.acmeconnect");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::copy(ROGUE, staging.join("acme-connect")).unwrap();
    // It runs as ann, so what it puts back is ann's (lenscap moves only
    // what the guard's actor, ann, could move herself).
    super::chown_tree(&staging, USER_UID);
    std::fs::remove_file(&s.folder).unwrap();
    std::fs::rename(&staging, &s.folder).unwrap();

    let again = wait_until(Duration::from_secs(10), "the reinstall removed", || {
        s.quarantine_list()
            .into_iter()
            .find(|r| r["id"] != first["id"] && r["state"] == "quarantined")
    });
    let f = item(&again, &s.folder);
    let bin = &f["entries"].as_array().unwrap()[0];
    assert_eq!(
        bin["sha256"].as_str(),
        Some(helper_sha.as_str()),
        "{again:#}"
    );
    wait_until(Duration::from_secs(5), "the placeholder back", || {
        is_placeholder(&s.folder).then_some(())
    });
    let reinstall = |path: &Path| {
        let events = s.events();
        remediation_events(&events)
            .into_iter()
            .find(|e| {
                e["kind"] == "file_remediation"
                    && e["payload"]["file"]["path"] == path.to_str().unwrap()
                    && e["payload"]["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("Reinstall attempt"))
            })
            .cloned()
    };
    let ev = wait_until(Duration::from_secs(5), "a reinstall_attempt event", || {
        reinstall(&s.folder)
    });
    assert_eq!(ev["payload"]["would_do"], false, "{ev:#}");
    assert_eq!(ev["payload"]["outcome"]["status"], "success", "{ev:#}");

    // The plist, written back by ann (staged and renamed into place, so
    // the daemon never sees it root-owned): removed again too.
    let staged = s.plist.with_extension("staged");
    std::fs::write(&staged, &plist_bytes).unwrap();
    std::os::unix::fs::chown(&staged, Some(USER_UID), Some(USER_UID)).unwrap();
    std::fs::rename(&staged, &s.plist).unwrap();
    wait_until(Duration::from_secs(10), "the plist removed again", || {
        (!s.plist.exists()).then_some(())
    });
    wait_until(
        Duration::from_secs(5),
        "its reinstall_attempt event",
        || reinstall(&s.plist),
    );
    d.wait_sweeps(1);
    let status = d.status().unwrap();
    assert!(
        status["reinstall_attempts"].as_u64() >= Some(2),
        "{status:#}"
    );
    assert!(s.helper_processes().is_empty());
    assert_eq!(s.standin.job_pid(&s.target()), None);

    // Journaled like every other action: one entry per undone reinstall,
    // each a single `reinstall` step, done, naming its vault record — and
    // no new plan of the helper (a reinstall is the guard's work).
    let journal = s.journal();
    let (undos, plans): (Vec<&Value>, Vec<&Value>) =
        journal.iter().partition(|e| step_names(e) == ["reinstall"]);
    assert_eq!(plans.len(), 1, "{journal:#?}");
    assert!(undos.len() >= 2, "{journal:#?}");
    for u in &undos {
        assert_eq!(u["mode"], "remediate", "{u:#}");
        assert_eq!(u["finished"], true, "{u:#}");
        assert_eq!(step_statuses(u), ["done"], "{u:#}");
    }
    let undo_of = |path: &Path| {
        undos
            .iter()
            .find(|u| u["plan"]["steps"][0]["path"] == path.to_str().unwrap())
            .unwrap_or_else(|| panic!("no journal entry for {}: {undos:#?}", path.display()))
    };
    let folder_undo = undo_of(&s.folder);
    assert_eq!(
        folder_undo["steps"][0]["quarantine_id"], again["id"],
        "{folder_undo:#}"
    );
    // `quarantine list` and `events` say what they said before: the
    // record named after the plan the guard protects against, and the
    // event, now tied to its journal entry like every step's.
    assert!(
        again["finding"]
            .as_str()
            .is_some_and(|f| f.starts_with("reinstall attempt of ")),
        "{again:#}"
    );
    assert_eq!(ev["payload"]["command_uid"], folder_undo["id"], "{ev:#}");
}
