//! The daemon SIGKILLed before and after each plan step (its crash hook,
//! `LENSCAP_FAULT_KILL`), then started again without it: the journal entry
//! finishes, the helper is gone, and every original file is in the vault
//! exactly — never lost, never half-moved, no `.partial` left anywhere.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lenscap_e2e::{Daemon, sha256_file, tree_facts};
use serde_json::Value;

use super::{Scenario, is_placeholder, step_names, step_statuses};

/// Each original file (the plist, the helper binary) and its sha256.
fn originals(s: &Scenario) -> BTreeMap<PathBuf, String> {
    [s.plist.clone(), s.exe.clone()]
        .into_iter()
        .map(|p| {
            let sha = sha256_file(&p);
            (p, sha)
        })
        .collect()
}

/// Where each original file is now: at its path, or in the vault (by the
/// manifest's item paths), with its bytes. Checked at the crash too, so a
/// file is never lost in between.
fn locate(s: &Scenario, want: &BTreeMap<PathBuf, String>) -> BTreeMap<PathBuf, Vec<String>> {
    let vault = s.root.join("state/quarantine");
    let mut seen: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for (path, sha) in want {
        if path.symlink_metadata().is_ok() {
            assert_eq!(
                &sha256_file(path),
                sha,
                "{} changed in place",
                path.display()
            );
            seen.entry(path.clone())
                .or_default()
                .push("original".into());
        }
    }
    // Every file in the vault is a complete copy of an original, or the
    // manifest (no partial copies, no strays).
    for (rel, facts) in tree_facts(&vault) {
        if facts.kind != 'f' || rel.ends_with("manifest.json") {
            continue;
        }
        let name = rel.to_string_lossy();
        assert!(!name.contains(".partial"), "partial copy left: {name}");
        let owner = want
            .iter()
            .find(|(_, sha)| **sha == facts.content)
            .unwrap_or_else(|| panic!("vault file {name} matches no original"));
        seen.entry(owner.0.clone())
            .or_default()
            .push(format!("vault:{name}"));
    }
    seen
}

/// No temporary name the vault or a restore uses, anywhere in the tree.
fn assert_no_leftovers(root: &Path) {
    for rel in tree_facts(root).keys() {
        let name = rel.to_string_lossy();
        assert!(
            !name.ends_with(".partial")
                && !name.contains(".lenscap-restore-")
                && !name.ends_with(".json.tmp"),
            "leftover {name}"
        );
    }
}

fn crash_and_recover(point: &str) {
    let s = Scenario::new("remediate", &[]);
    let want = originals(&s);

    let mut first = s.spawn_daemon_with_fault(point);
    let status = first.wait_exit(Duration::from_secs(30));
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "{point}: expected the daemon to SIGKILL itself ({status}); log:\n{}",
        first.log()
    );
    assert!(first.log().contains(point), "{}", first.log());
    let journal = s.journal();
    assert_eq!(journal.len(), 1, "{point}: {journal:#?}");
    assert_eq!(
        journal[0]["finished"],
        point == "after:notify",
        "{point}: {:#}",
        journal[0]
    );
    // At the crash: every file is somewhere, whole.
    let at_crash = locate(&s, &want);
    assert_eq!(
        at_crash.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{point}: lost at the crash: {at_crash:#?}"
    );
    drop(first);

    let mut second = s.start_daemon();
    finished(&s, &second, point);
    s.wait_gone(s.pid, Duration::from_secs(10), &second);
    s.assert_stays_gone(Duration::from_millis(1500));

    let entry = &s.plans()[0];
    assert_eq!(
        step_names(entry),
        ["bootout", "terminate", "quarantine", "guard", "notify"]
    );
    assert!(
        step_statuses(entry).iter().all(|st| st == "done"),
        "{point}: {entry:#}\nlog:\n{}",
        second.log()
    );
    // Every original: in the vault exactly once, not at its path.
    let now = locate(&s, &want);
    for (path, places) in &now {
        assert_eq!(places.len(), 1, "{point}: {} is {places:?}", path.display());
        assert!(places[0].starts_with("vault:"), "{point}: {places:?}");
    }
    assert_eq!(now.len(), want.len(), "{point}: lost: {now:#?}");
    assert!(is_placeholder(&s.folder), "{point}: no placeholder");
    let records = s.quarantine_list();
    assert_eq!(records.len(), 1, "{point}: {records:#?}");
    assert_eq!(records[0]["state"], "quarantined", "{point}");
    assert_manifest_matches(&records[0], &want, point);
    assert_no_leftovers(&s.root);
    assert_eq!(s.plans().len(), 1, "{point}: no second plan");
    assert_eq!(second.stop().code(), Some(0));
}

/// Wait until every journal entry is finished.
fn finished(s: &Scenario, d: &Daemon, point: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !s.journal().iter().all(|e| e["finished"] == true) {
        assert!(
            Instant::now() < deadline,
            "{point}: the journal entry was not finished; log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The manifest names both originals with their hashes.
fn assert_manifest_matches(record: &Value, want: &BTreeMap<PathBuf, String>, point: &str) {
    let text = record.to_string();
    for sha in want.values() {
        assert!(
            text.contains(sha.as_str()),
            "{point}: {sha} not in {record:#}"
        );
    }
}

macro_rules! fault_tests {
    ($($name:ident => $point:literal,)*) => {
        $(
            #[test]
            fn $name() {
                crash_and_recover($point);
            }
        )*
    };
}

fault_tests! {
    killed_before_bootout => "before:bootout",
    killed_after_bootout => "after:bootout",
    killed_before_terminate => "before:terminate",
    killed_after_terminate => "after:terminate",
    killed_before_quarantine => "before:quarantine",
    killed_after_quarantine => "after:quarantine",
    killed_before_guard => "before:guard",
    killed_after_guard => "after:guard",
    killed_before_notify => "before:notify",
    killed_after_notify => "after:notify",
}
