//! A link planted where the daemon is about to act — in place of the plist,
//! or of the helper's folder — pointing at root-owned things outside the
//! tree: the daemon must not read, move or delete what the link points at.
//!
//! The swap happens between judging and acting, the window a user racing
//! the root daemon would aim for: the daemon is crashed right after it
//! stopped the helper (`after:terminate`, its quarantine step journaled but
//! not run), the link is planted, and a fresh daemon finishes the plan.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lenscap_e2e::{lenscap_bin, temp_tree, tree_facts, wait_until};
use serde_json::Value;

use super::{Scenario, step_statuses};

/// Crash the daemon after it stopped the helper, then run `plant`.
fn crash_then_plant(s: &Scenario, plant: impl FnOnce()) {
    let mut first = s.spawn_daemon_with_fault("after:terminate");
    let status = first.wait_exit(Duration::from_secs(30));
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{}", first.log());
    plant();
}

/// A fresh daemon finishes the interrupted plan; returns its journal entry
/// after a few more sweeps (the guard has had its chances too).
fn finish(s: &Scenario) -> (Value, String) {
    let mut d = s.start_daemon();
    // The plan's entry, not a reinstall entry the guard journaled in the
    // same second (entries of one second sort by their random ids).
    let plan = |e: &Value| {
        !e["plan"]["key"]
            .as_str()
            .unwrap_or("")
            .starts_with("reinstall:")
    };
    wait_until(Duration::from_secs(15), "the plan finished", || {
        s.journal()
            .into_iter()
            .find(plan)
            .filter(|e| e["finished"] == true)
    });
    d.wait_sweeps(3);
    let entry = s.journal().into_iter().find(plan).unwrap();
    assert_eq!(d.stop().code(), Some(0), "{}", d.log());
    (entry, d.log())
}

fn quarantine_step(entry: &Value) -> (&str, &str) {
    let names = super::step_names(entry);
    let i = names.iter().position(|n| n == "quarantine").unwrap();
    let rec = &entry["steps"][i];
    (
        rec["status"].as_str().unwrap(),
        rec["outcome"].as_str().unwrap_or(""),
    )
}

#[test]
fn a_link_in_place_of_the_plist_leaves_its_target_alone() {
    // The target: a root-owned file elsewhere, which is itself a valid
    // launchd plist (a daemon that followed the link would parse it and
    // might move it).
    let outside = temp_tree();
    let target = outside.path().join("secret.plist");
    lenscap_e2e::write_launchd_plist(&target, "com.example.secret", &["/bin/true"], false);
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    let before = tree_facts(outside.path());

    let s = Scenario::new("remediate", &[]);
    crash_then_plant(&s, || {
        std::fs::remove_file(&s.plist).unwrap();
        symlink(&target, &s.plist).unwrap();
    });
    let (entry, log) = finish(&s);

    assert_eq!(before, tree_facts(outside.path()), "the target changed");
    // The quarantine refused the link (and, checking everything before it
    // moves anything, the whole item list); the link itself is still there.
    let (status, outcome) = quarantine_step(&entry);
    assert_eq!(status, "failed", "{entry:#}\n{log}");
    assert!(outcome.contains("link"), "{outcome}");
    assert!(s.plist.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_link(&s.plist).unwrap(), target);
    assert!(step_statuses(&entry)[..2].iter().all(|st| st == "done"));
    assert!(s.helper_processes().is_empty());

    // The scan names the linked plist as an error rather than reading it.
    let out = Command::new(lenscap_bin())
        .args(["scan", "--json", "--no-probe", "--config"])
        .arg(&s.config)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let plist = s.plist.to_str().unwrap();
    assert!(
        report["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == plist),
        "{:#}",
        report["errors"]
    );
    assert!(
        !report.to_string().contains("com.example.secret"),
        "the scan read the link's target"
    );
    assert_eq!(before, tree_facts(outside.path()));
}

#[test]
fn a_link_in_place_of_the_helper_folder_leaves_its_target_alone() {
    // The target: a root-owned folder elsewhere with a file in it named
    // like the helper.
    let outside = temp_tree();
    let dir = outside.path().join("precious");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("acme-connect"), b"root's own file\n").unwrap();
    std::fs::set_permissions(
        dir.join("acme-connect"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o751)).unwrap();
    let before = tree_facts(outside.path());
    let dir_meta = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        let m = p.symlink_metadata().unwrap();
        (m.ino(), m.mode(), m.uid(), m.mtime(), m.mtime_nsec())
    };
    let dir_before = dir_meta(&dir);

    let s = Scenario::new("remediate", &[]);
    crash_then_plant(&s, || {
        std::fs::remove_dir_all(&s.folder).unwrap();
        symlink(&dir, &s.folder).unwrap();
    });
    let (entry, log) = finish(&s);

    assert_eq!(
        before,
        tree_facts(outside.path()),
        "the target's contents changed"
    );
    assert_eq!(dir_before, dir_meta(&dir), "the target folder changed");
    let (status, outcome) = quarantine_step(&entry);
    assert_eq!(status, "failed", "{entry:#}\n{log}");
    assert!(outcome.contains("link"), "{outcome}");
    assert!(
        s.folder
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(s.helper_processes().is_empty());
}

/// A link planted at a guarded path after the remediation: the guard
/// refuses to move it and leaves its target alone — and, with nothing
/// changing, does not report the same refusal as a new reinstall attempt
/// on every sweep (it did once: one failed `reinstall_attempt` event a
/// second at `SweepSeconds` 1).
#[test]
fn a_link_at_a_guarded_path_is_refused_once_not_every_sweep() {
    let outside = temp_tree();
    let target = outside.path().join("secret.plist");
    lenscap_e2e::write_launchd_plist(&target, "com.example.secret", &["/bin/true"], false);
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    let before = tree_facts(outside.path());

    let s = Scenario::new("remediate", &[]);
    let mut d = s.start_daemon();
    s.wait_gone(s.pid, Duration::from_secs(10), &d);
    wait_until(Duration::from_secs(10), "the plist guarded", || {
        (s.plist.symlink_metadata().is_err()
            && d.status().is_some_and(|st| st["guarded_paths"] == 2))
        .then_some(())
    });
    symlink(&target, &s.plist).unwrap();
    let refusals = || {
        s.events()
            .iter()
            .filter(|e| {
                e["payload"]["file"]["path"] == s.plist.to_str().unwrap()
                    && e["payload"]["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("Reinstall attempt"))
            })
            .inspect(|e| assert_eq!(e["payload"]["outcome"]["status"], "failure", "{e:#}"))
            .count()
    };
    wait_until(
        Duration::from_secs(10),
        "the reinstall attempt seen",
        || (refusals() > 0).then_some(()),
    );
    d.wait_sweeps(1);
    let first = refusals();
    d.wait_sweeps(3);

    assert_eq!(before, tree_facts(outside.path()), "the target changed");
    assert_eq!(std::fs::read_link(&s.plist).unwrap(), target, "link kept");
    assert!(s.helper_processes().is_empty());
    assert_eq!(
        refusals(),
        first,
        "the same refused link was reported again on every sweep"
    );
}
