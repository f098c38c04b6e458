//! The vault end to end on temporary trees: round trips with owners, modes
//! and mtimes, planted links, refusals, cross-filesystem moves, a full
//! disk, and recovery from every state a crash can leave.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::*;
use crate::act::fsops::tests::{
    TinyFs, fingerprint, helper_tree, is_root, other_fs, put, snapshot,
};
use crate::act::fsops::{Entry, diff};

pub(super) fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_847_412)
}

/// A user's home (owned by 1234) with a hidden helper folder holding a
/// bundle, a LaunchAgent plist, and a root-owned file outside it all.
pub(super) struct Home {
    _t: tempfile::TempDir,
    pub(super) state: PathBuf,
    pub(super) home: PathBuf,
    pub(super) zoomus: PathBuf,
    pub(super) plist: PathBuf,
    pub(super) outside: PathBuf,
}

pub(super) fn home_in(t: tempfile::TempDir, state: PathBuf) -> Home {
    let home = t.path().join("Users/alice");
    let outside = t.path().join("Library/Preferences/system.plist");
    put(&outside, b"root-owned, must never move", 0, 0, 0o644);
    let zoomus = home.join(".zoomus");
    helper_tree(&zoomus, &outside);
    std::os::unix::fs::chown(&zoomus, Some(1234), Some(20)).unwrap();
    fs::set_permissions(&zoomus, fs::Permissions::from_mode(0o700)).unwrap();
    let plist = home.join("Library/LaunchAgents/us.zoom.ZoomHelper.plist");
    put(
        &plist,
        b"<plist><dict><key>Label</key></dict></plist>",
        1234,
        20,
        0o644,
    );
    for d in [
        home.join("Library/LaunchAgents"),
        home.join("Library"),
        home.clone(),
    ] {
        std::os::unix::fs::chown(&d, Some(1234), Some(20)).unwrap();
    }
    Home {
        _t: t,
        state,
        home,
        zoomus,
        plist,
        outside,
    }
}

pub(super) fn home() -> Home {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    home_in(t, state)
}

pub(super) fn snap(h: &Home) -> (Vec<Entry>, Vec<Entry>) {
    (snapshot(&h.zoomus), snapshot(&h.plist))
}

pub(super) fn assert_back(h: &Home, before: &(Vec<Entry>, Vec<Entry>)) {
    let after = snap(h);
    assert_eq!(diff(&before.0, &after.0), None);
    assert_eq!(diff(&before.1, &after.1), None);
}

pub(super) fn items(h: &Home) -> Vec<PathBuf> {
    vec![h.zoomus.clone(), h.plist.clone()]
}

#[test]
fn round_trip_restores_bytes_owner_mode_and_mtime() {
    if !is_root() {
        return;
    }
    let h = home();
    let before = snap(&h);
    let outside = fingerprint(&h.outside);
    let vault = Vault::open(&h.state).unwrap();
    let rule = Some("catalog:zoom-opener".to_owned());
    let rec = vault
        .quarantine(&items(&h), "ZoomOpener on 19421", rule, now())
        .unwrap();

    assert_eq!(rec.state, RecordState::Quarantined);
    assert!(rec.id.starts_with("20261128T063012Z-"), "{}", rec.id);
    assert!(!h.zoomus.exists() && !h.plist.exists());
    let m = fs::metadata(h.state.join("quarantine")).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o7777), (0, 0o700));
    let on_disk = vault.get(&rec.id).unwrap();
    assert_eq!(on_disk, rec, "the manifest on disk is the record returned");
    let secret = rec.items[0]
        .entries
        .iter()
        .find(|e| e.path.0.ends_with("secret.db"))
        .unwrap();
    assert_eq!(
        (secret.meta.uid, secret.meta.gid, secret.meta.mode),
        (501, 20, 0o600)
    );
    assert_eq!(rec.items[1].meta.sha256, before.1[0].meta.sha256);
    let json = fs::read_to_string(
        h.state
            .join("quarantine")
            .join(&rec.id)
            .join("manifest.json"),
    )
    .unwrap();
    for field in [
        "\"original\"",
        "\"sha256\"",
        "\"mtime\"",
        "\"bytes_hex\"",
        "catalog:zoom-opener",
    ] {
        assert!(json.contains(field), "manifest lacks {field}");
    }
    assert_eq!(vault.list().len(), 1);

    let report = vault.restore(&rec.id).unwrap();
    assert_eq!(report.restored, items(&h));
    assert_back(&h, &before);
    assert_eq!(
        fingerprint(&h.outside),
        outside,
        "the link target was never touched"
    );
    let secret = h.zoomus.join("ZoomOpener.app/Contents/Resources/secret.db");
    let m = fs::metadata(&secret).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (501, 20, 0o600));
    assert_eq!(
        vault.get(&rec.id).unwrap().state,
        RecordState::Restored,
        "kept for audit"
    );
    assert!(matches!(
        vault.restore(&rec.id),
        Err(QuarantineError::WrongState { .. })
    ));
}

#[test]
fn round_trip_across_filesystems() {
    if !is_root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let Some(other) = other_fs(t.path()) else {
        return;
    };
    let h = home_in(t, other.path().join("state"));
    let before = snap(&h);
    let vault = Vault::open(&h.state).unwrap();
    let rec = vault.quarantine(&items(&h), "cross", None, now()).unwrap();
    assert_eq!(rec.state, RecordState::Quarantined);
    assert!(!h.zoomus.exists() && !h.plist.exists());
    assert!(rec.notes.is_empty(), "{:?}", rec.notes);
    vault.restore(&rec.id).unwrap();
    assert_back(&h, &before);
}

#[test]
fn a_link_planted_in_place_of_the_helper_folder_is_refused() {
    if !is_root() {
        return;
    }
    let h = home();
    // Root's own directory with a bundle of the same name: the bait.
    let bait = h.outside.parent().unwrap().join("bait");
    put(
        &bait.join("ZoomOpener.app/payload"),
        b"root data",
        0,
        0,
        0o600,
    );
    fs::remove_dir_all(&h.zoomus).unwrap();
    symlink(&bait, &h.zoomus).unwrap();
    let bait_file = bait.join("ZoomOpener.app/payload");
    let (file_before, dir_before) = (fingerprint(&bait_file), fingerprint(&bait));
    let vault = Vault::open(&h.state).unwrap();

    let through = h.zoomus.join("ZoomOpener.app");
    match vault.quarantine(std::slice::from_ref(&through), "x", None, now()) {
        Err(QuarantineError::Fs(FsError::Symlink { path, component })) => {
            assert_eq!((path, component), (through, h.zoomus.clone()));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let err = vault
        .quarantine(std::slice::from_ref(&h.zoomus), "x", None, now())
        .unwrap_err();
    assert!(
        matches!(err, QuarantineError::Fs(FsError::Symlink { .. })),
        "{err}"
    );
    // A plist replaced by a link to a root-owned file: refused as well.
    fs::remove_file(&h.plist).unwrap();
    symlink(&h.outside, &h.plist).unwrap();
    let outside = fingerprint(&h.outside);
    assert!(
        vault
            .quarantine(std::slice::from_ref(&h.plist), "x", None, now())
            .is_err()
    );

    assert_eq!(fingerprint(&bait_file), file_before);
    assert_eq!(fingerprint(&bait), dir_before);
    assert_eq!(fingerprint(&h.outside), outside);
    assert!(vault.list().is_empty(), "a refusal leaves no record");
}

#[test]
fn a_link_at_an_intermediate_component_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let real = t.path().join("real-library");
    put(&real.join("LaunchAgents/x.plist"), b"keep", 0, 0, 0o644);
    let home = t.path().join("home");
    fs::create_dir_all(&home).unwrap();
    symlink(&real, home.join("Library")).unwrap();
    let vault = Vault::open(&t.path().join("state")).unwrap();
    let item = home.join("Library/LaunchAgents/x.plist");
    let err = vault.quarantine(&[item], "x", None, now()).unwrap_err();
    assert!(
        err.to_string().contains("Library is a symbolic link"),
        "{err}"
    );
    assert_eq!(
        fs::read(real.join("LaunchAgents/x.plist")).unwrap(),
        b"keep"
    );
}

#[test]
fn restore_refuses_to_overwrite_and_changes_nothing() {
    if !is_root() {
        return;
    }
    let h = home();
    let vault = Vault::open(&h.state).unwrap();
    let rec = vault.quarantine(&items(&h), "x", None, now()).unwrap();
    put(&h.plist, b"the user's new file", 1234, 20, 0o644);
    match vault.restore(&rec.id) {
        Err(e @ QuarantineError::Occupied { .. }) => {
            assert!(e.to_string().contains("us.zoom.ZoomHelper.plist"), "{e}")
        }
        other => panic!("expected Occupied, got {other:?}"),
    }
    assert_eq!(fs::read(&h.plist).unwrap(), b"the user's new file");
    assert!(
        !h.zoomus.exists(),
        "nothing restored before the check passed"
    );
    assert_eq!(vault.get(&rec.id).unwrap().state, RecordState::Quarantined);
}

#[test]
fn placeholder_blocks_the_folder_and_restore_removes_it() {
    if !is_root() {
        return;
    }
    let h = home();
    let before = snap(&h);
    let vault = Vault::open(&h.state).unwrap();
    let rec = vault.quarantine(&items(&h), "x", None, now()).unwrap();
    placeholder_block(&h.zoomus).unwrap();
    placeholder_block(&h.zoomus).unwrap(); // idempotent
    let m = fs::symlink_metadata(&h.zoomus).unwrap();
    assert!(m.is_file());
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777, m.len()), (0, 0, 0, 0));
    assert!(
        fs::create_dir(h.zoomus.join("x")).is_err(),
        "cannot be a folder again"
    );
    let report = vault.restore(&rec.id).unwrap();
    assert_eq!(report.placeholders_removed, vec![h.zoomus.clone()]);
    assert_back(&h, &before);
    // Something else there is not a placeholder and is refused.
    assert!(matches!(
        placeholder_block(&h.plist),
        Err(QuarantineError::Occupied { .. })
    ));
}

#[test]
fn an_insecure_vault_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let elsewhere = t.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let linked = t.path().join("linked");
    fs::create_dir(&linked).unwrap();
    symlink(&elsewhere, linked.join("quarantine")).unwrap();
    let err = Vault::open(&linked).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");

    let open = t.path().join("open");
    fs::create_dir_all(open.join("quarantine")).unwrap();
    fs::set_permissions(open.join("quarantine"), fs::Permissions::from_mode(0o777)).unwrap();
    let err = Vault::open(&open).unwrap_err();
    assert!(
        err.to_string().contains("writable by group or others"),
        "{err}"
    );

    let state_link = t.path().join("state-link");
    symlink(&elsewhere, &state_link).unwrap();
    assert!(matches!(
        Vault::open(&state_link),
        Err(QuarantineError::VaultInsecure { .. })
    ));
    if is_root() {
        let theirs = t.path().join("theirs");
        fs::create_dir_all(theirs.join("quarantine")).unwrap();
        std::os::unix::fs::chown(theirs.join("quarantine"), Some(1234), None).unwrap();
        let err = Vault::open(&theirs).unwrap_err();
        assert!(err.to_string().contains("owned by uid 1234"), "{err}");
    }
    // A readable (not writable) vault is tightened, not refused.
    let loose = t.path().join("loose");
    fs::create_dir_all(loose.join("quarantine")).unwrap();
    fs::set_permissions(loose.join("quarantine"), fs::Permissions::from_mode(0o755)).unwrap();
    Vault::open(&loose).unwrap();
    let mode = fs::metadata(loose.join("quarantine")).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn bad_item_lists_are_refused_before_anything_moves() {
    let t = tempfile::tempdir().unwrap();
    let vault = Vault::open(&t.path().join("state")).unwrap();
    assert!(matches!(
        vault.quarantine(&[], "x", None, now()),
        Err(QuarantineError::NoItems)
    ));
    let a = t.path().join("a");
    fs::create_dir_all(a.join("b")).unwrap();
    let err = vault
        .quarantine(&[a.join("b"), a.clone()], "x", None, now())
        .unwrap_err();
    assert!(matches!(err, QuarantineError::Nested { .. }), "{err}");
    let missing = vault
        .quarantine(&[t.path().join("nope")], "x", None, now())
        .unwrap_err();
    assert!(missing.to_string().contains("nope"), "{missing}");
    assert!(a.join("b").is_dir());
    assert!(matches!(
        vault.restore("../etc"),
        Err(QuarantineError::UnknownId { .. })
    ));
}

#[test]
fn running_out_of_space_rolls_back_cleanly() {
    if !is_root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let Some(tiny) = TinyFs::mount(&t.path().join("tiny"), "256k") else {
        return;
    };
    let h = home_in(t, tiny.0.join("state"));
    // The plist fits; the bundle (100 kB secret + this) does not.
    put(
        &h.zoomus.join("ZoomOpener.app/Contents/big"),
        &vec![1u8; 300_000],
        1234,
        20,
        0o644,
    );
    let before = snap(&h);
    let vault = Vault::open(&h.state).unwrap();
    let order = vec![h.plist.clone(), h.zoomus.clone()];
    let err = vault.quarantine(&order, "x", None, now()).unwrap_err();
    assert!(err.to_string().contains("No space left"), "{err}");
    assert_back(&h, &before);
    let records = vault.list();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].state, RecordState::Aborted);
    let payload = h
        .state
        .join("quarantine")
        .join(&records[0].id)
        .join("payload");
    assert_eq!(
        fs::read_dir(&payload).unwrap().count(),
        0,
        "no partial copy left"
    );
}

#[test]
fn an_actor_moves_only_what_it_could_move_itself() {
    if !is_root() {
        return;
    }
    let h = home();
    let vault = Vault::open(&h.state).unwrap();
    let outside = fingerprint(&h.outside);
    // Root's file, named by a user's finding: refused, nothing moved.
    let err = vault
        .quarantine_as(std::slice::from_ref(&h.outside), "decoy", None, now(), 1234)
        .unwrap_err();
    assert!(
        matches!(
            err,
            QuarantineError::OutsideReach {
                owner: 0,
                actor: 1234,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(fingerprint(&h.outside), outside);
    // A tree holding another user's file (secret.db is uid 501's): refused
    // whole, and the user's own plist listed beside it does not move either.
    let before = snap(&h);
    let err = vault
        .quarantine_as(&items(&h), "mixed", None, now(), 1234)
        .unwrap_err();
    assert!(err.to_string().contains("secret.db"), "{err}");
    assert_back(&h, &before);
    // Root's file hard-linked into the user's own folder is still root's.
    let link = h.home.join("Library/LaunchAgents/hard");
    fs::hard_link(&h.outside, &link).unwrap();
    let err = vault
        .quarantine_as(std::slice::from_ref(&link), "hard link", None, now(), 1234)
        .unwrap_err();
    assert!(
        matches!(err, QuarantineError::OutsideReach { owner: 0, .. }),
        "{err}"
    );
    fs::remove_file(&link).unwrap();
    // The user's own plist in the user's own folder: moved.
    let rec = vault
        .quarantine_as(std::slice::from_ref(&h.plist), "own", None, now(), 1234)
        .unwrap();
    assert_eq!(rec.state, RecordState::Quarantined);
    assert!(!h.plist.exists());
    // Another user acting on it would have been refused by its folder too.
    assert_eq!(vault.list().len(), 1, "refusals leave no record behind");
}
