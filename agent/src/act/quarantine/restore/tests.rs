//! Recovery from every state a crash can leave, and the interrupted
//! restore. Each scenario ends with a full restore compared against the
//! tree as it was: no file lost, none left half-moved.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use crate::act::fsops::tests::{is_root, other_fs, put};
use crate::act::fsops::{self, Entry, SafeDir};
use crate::act::manifest::{self, RecordState};
use crate::act::quarantine::tests::{Home, assert_back, home, home_in, items, now, snap};
use crate::act::quarantine::{PAYLOAD_DIR, RecoveryAction, Vault};

/// Phase one done by hand, then a crash: returns the record's paths.
fn crashed(h: &Home, vault: &Vault) -> (String, PathBuf) {
    let p = vault.prepare(&items(h), "x", None, now(), 0).unwrap();
    (p.record.id.clone(), p.payload.path().to_path_buf())
}

fn recover_and_check(
    h: &Home,
    vault: &Vault,
    before: &(Vec<Entry>, Vec<Entry>),
) -> Vec<RecoveryAction> {
    let actions = vault.recover();
    let rec = &vault.list()[0];
    assert_eq!(rec.state, RecordState::Quarantined, "{actions:?}");
    assert!(!h.zoomus.exists() && !h.plist.exists(), "{actions:?}");
    assert!(
        vault
            .recover()
            .iter()
            .all(|a| !matches!(a, RecoveryAction::Finished { .. }))
    );
    vault.restore(&rec.id).unwrap();
    assert_back(h, before);
    actions
}

#[test]
fn recover_completes_every_interrupted_quarantine_state() {
    if !is_root() {
        return;
    }
    let same = |f: &dyn Fn(&Home, &Path)| {
        let h = home();
        let before = snap(&h);
        let vault = Vault::open(&h.state).unwrap();
        let (_, payload) = crashed(&h, &vault);
        f(&h, &payload);
        recover_and_check(&h, &vault, &before)
    };
    // 1. Manifest says moving, nothing moved.
    let a = same(&|_, _| {});
    assert_eq!(
        a.iter()
            .filter(|a| matches!(a, RecoveryAction::MovedRemaining { .. }))
            .count(),
        2
    );
    // 2. First item renamed, second not.
    same(&|h, payload| fs::rename(&h.zoomus, payload.join("0")).unwrap());
    // 3. Both moved, manifest not yet updated.
    same(&|h, payload| {
        fs::rename(&h.zoomus, payload.join("0")).unwrap();
        fs::rename(&h.plist, payload.join("1")).unwrap();
    });
}

#[test]
fn recover_completes_interrupted_cross_filesystem_moves() {
    if !is_root() {
        return;
    }
    let run = |f: &dyn Fn(&Home, &SafeDir, &SafeDir)| {
        let t = tempfile::tempdir().unwrap();
        let other = other_fs(t.path())?;
        let h = home_in(t, other.path().join("state"));
        let before = snap(&h);
        let vault = Vault::open(&h.state).unwrap();
        let (_, payload) = crashed(&h, &vault);
        let src = SafeDir::open(&h.home).unwrap();
        let dst = SafeDir::open(&payload).unwrap();
        f(&h, &src, &dst);
        Some((recover_and_check(&h, &vault, &before), other))
    };
    let zoomus = OsStr::new(".zoomus");
    // Copy half done: a partial copy, source intact.
    let Some((a, _)) = run(&|_, src, dst| {
        fsops::copy_tree(src, zoomus, dst, OsStr::new("0.partial")).unwrap();
        fs::remove_dir_all(
            dst.child_path(OsStr::new("0.partial"))
                .join("ZoomOpener.app/Contents/MacOS"),
        )
        .unwrap();
    }) else {
        return;
    };
    assert!(
        a.iter()
            .any(|a| matches!(a, RecoveryAction::RemovedPartialCopy { .. })),
        "{a:?}"
    );
    // Copy committed, source not yet removed: both places, equal hashes.
    let (a, _) = run(&|_, src, dst| {
        fsops::copy_tree(src, zoomus, dst, OsStr::new("0")).unwrap();
    })
    .unwrap();
    assert!(
        a.iter()
            .any(|a| matches!(a, RecoveryAction::RemovedLeftover { .. })),
        "{a:?}"
    );
    // Copy committed, source partly removed.
    run(&|h, src, dst| {
        fsops::copy_tree(src, zoomus, dst, OsStr::new("0")).unwrap();
        fs::remove_dir_all(h.zoomus.join("ZoomOpener.app/Contents/Resources")).unwrap();
    })
    .unwrap();
}

#[test]
fn recover_keeps_an_original_that_differs_from_its_vault_copy() {
    if !is_root() {
        return;
    }
    let h = home();
    let vault = Vault::open(&h.state).unwrap();
    let (_, payload) = crashed(&h, &vault);
    let src = SafeDir::open(h.plist.parent().unwrap()).unwrap();
    let dst = SafeDir::open(&payload).unwrap();
    fsops::copy_tree(
        &src,
        OsStr::new("us.zoom.ZoomHelper.plist"),
        &dst,
        OsStr::new("1"),
    )
    .unwrap();
    put(
        &h.plist,
        b"rewritten by the user afterwards",
        1234,
        20,
        0o644,
    );
    let actions = vault.recover();
    assert!(actions.contains(&RecoveryAction::LeftInPlace {
        id: vault.list()[0].id.clone(),
        path: h.plist.clone(),
    }));
    assert_eq!(
        fs::read(&h.plist).unwrap(),
        b"rewritten by the user afterwards"
    );
    assert!(!h.zoomus.exists(), "the other item was moved");
}

#[test]
fn recover_finishes_an_interrupted_restore() {
    if !is_root() {
        return;
    }
    let h = home();
    let before = snap(&h);
    let vault = Vault::open(&h.state).unwrap();
    let mut rec = vault.quarantine(&items(&h), "x", None, now()).unwrap();
    let dir = vault.dir.open_dir(OsStr::new(&rec.id)).unwrap();
    rec.state = RecordState::Restoring;
    manifest::write(&dir, &rec).unwrap();
    // Crash after item 0 went back, before item 1 did.
    let payload = dir.child_path(OsStr::new("payload"));
    fs::rename(payload.join("0"), &h.zoomus).unwrap();
    let actions = vault.recover();
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, RecoveryAction::PutBack { .. })),
        "{actions:?}"
    );
    assert_back(&h, &before);
    assert_eq!(vault.get(&rec.id).unwrap().state, RecordState::Restored);

    // A cross-filesystem restore interrupted after its commit: the copy is
    // at the original and the vault copy is still there.
    let mut rec = vault.quarantine(&items(&h), "x", None, now()).unwrap();
    let dir = vault.dir.open_dir(OsStr::new(&rec.id)).unwrap();
    rec.state = RecordState::Restoring;
    manifest::write(&dir, &rec).unwrap();
    let payload = SafeDir::open(&dir.child_path(OsStr::new("payload"))).unwrap();
    let plist_dir = SafeDir::open(h.plist.parent().unwrap()).unwrap();
    fsops::copy_tree(
        &payload,
        OsStr::new("1"),
        &plist_dir,
        OsStr::new("us.zoom.ZoomHelper.plist"),
    )
    .unwrap();
    let actions = vault.recover();
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, RecoveryAction::RemovedVaultCopy { .. })),
        "{actions:?}"
    );
    assert_back(&h, &before);
    assert!(!payload.child_path(OsStr::new("1")).exists());
}

#[test]
fn recover_cleans_records_that_never_got_a_manifest() {
    let t = tempfile::tempdir().unwrap();
    let vault = Vault::open(&t.path().join("state")).unwrap();
    let (id, dir) = vault.new_record_dir(now()).unwrap();
    dir.create_dir(OsStr::new(PAYLOAD_DIR), 0o700).unwrap();
    fs::write(dir.child_path(OsStr::new("manifest.json.tmp")), b"{half").unwrap();
    assert_eq!(
        vault.recover(),
        vec![RecoveryAction::RemovedEmptyRecord { id: id.clone() }]
    );
    assert!(!vault.path().join(&id).exists());
    // A corrupt manifest is reported and left for an admin.
    let (id, dir) = vault.new_record_dir(now()).unwrap();
    fs::write(dir.child_path(OsStr::new("manifest.json")), b"{not json").unwrap();
    assert!(matches!(&vault.recover()[..], [RecoveryAction::Unreadable { id: i, .. }] if *i == id));
    assert!(vault.list().is_empty());
}

#[test]
fn a_failure_after_a_commit_is_rolled_back_too() {
    if !is_root() {
        return;
    }
    // Item 0 committed by a copy while its source is still in place (as if
    // removing the source failed): abort must remove the equal source,
    // move the vault copy back, and leave the record `aborted`.
    let h = home();
    let before = snap(&h);
    let vault = Vault::open(&h.state).unwrap();
    let mut p = vault.prepare(&items(&h), "x", None, now(), 0).unwrap();
    let src = SafeDir::open(&h.home).unwrap();
    fsops::copy_tree(&src, OsStr::new(".zoomus"), &p.payload, OsStr::new("0")).unwrap();
    super::super::abort(&p.dir, &p.payload, &mut p.record, &p.targets[..1]);
    assert_eq!(p.record.state, RecordState::Aborted, "{:?}", p.record.notes);
    assert_back(&h, &before);
    assert!(!p.payload.child_path(OsStr::new("0")).exists());
}
