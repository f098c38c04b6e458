//! fsops on real temporary trees. Tests that chown to other uids, or
//! mount a tiny tmpfs, need root (this sandbox runs them as root) and say
//! so on stderr when skipped.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use super::*;

pub(crate) fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        true
    } else {
        eprintln!("skipped: needs root (chown to other uids / mount)");
        false
    }
}

/// A file with content, owner, mode and a fixed mtime.
pub(crate) fn put(path: &Path, content: &[u8], uid: u32, gid: u32, mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    let t = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
    let f = fs::File::options().write(true).open(path).unwrap();
    f.set_modified(t).unwrap();
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A helper bundle: nested dirs, an executable, a 0600 file owned 501:20,
/// a link inside pointing out of the tree, a name that is not UTF-8.
pub(crate) fn helper_tree(root: &Path, outside_target: &Path) -> PathBuf {
    let app = root.join("ZoomOpener.app");
    put(
        &app.join("Contents/MacOS/ZoomOpener"),
        b"\x7fELF helper",
        1234,
        20,
        0o755,
    );
    put(
        &app.join("Contents/Info.plist"),
        b"<plist/>",
        1234,
        20,
        0o644,
    );
    put(
        &app.join("Contents/Resources/secret.db"),
        &[7u8; 100_000],
        501,
        20,
        0o600,
    );
    let odd = OsStr::from_bytes(b"odd-\xff-name");
    put(
        &app.join("Contents/Resources").join(odd),
        b"x",
        1234,
        20,
        0o640,
    );
    symlink(outside_target, app.join("Contents/Resources/escape")).unwrap();
    std::os::unix::fs::lchown(app.join("Contents/Resources/escape"), Some(1234), Some(20)).unwrap();
    for d in ["Contents/Resources", "Contents/MacOS", "Contents", ""] {
        let p = app.join(d);
        std::os::unix::fs::chown(&p, Some(1234), Some(20)).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    app
}

/// Scan `path` the way the vault does.
pub(crate) fn snapshot(path: &Path) -> Vec<Entry> {
    let (parent, name) = SafeDir::open_parent(path).unwrap();
    scan(&parent, &name).unwrap()
}

/// Metadata and content of a file outside every tree, to prove it untouched.
pub(crate) fn fingerprint(path: &Path) -> (Vec<u8>, u32, u32, u32, i64, i64) {
    let m = fs::symlink_metadata(path).unwrap();
    let content = if m.is_file() {
        fs::read(path).unwrap()
    } else {
        Vec::new()
    };
    (
        content,
        m.uid(),
        m.gid(),
        m.mode(),
        m.mtime(),
        m.mtime_nsec(),
    )
}

/// A tiny tmpfs, unmounted on drop; `None` when mounting is not allowed.
pub(crate) struct TinyFs(pub PathBuf);

impl TinyFs {
    pub(crate) fn mount(at: &Path, size: &str) -> Option<TinyFs> {
        fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Some(TinyFs(at.into()))
        } else {
            eprintln!("skipped: cannot mount a tmpfs here");
            None
        }
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A directory on another filesystem than the tempdir, if there is one.
pub(crate) fn other_fs(near: &Path) -> Option<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let dev = |p: &Path| fs::metadata(p).map(|m| m.dev()).ok();
    if shm.is_dir() && dev(shm).is_some() && dev(shm) != dev(near) {
        return tempfile::tempdir_in(shm).ok();
    }
    eprintln!("skipped: /dev/shm is not a separate filesystem here");
    None
}

#[test]
fn refuses_relative_and_dotdot_paths() {
    assert!(matches!(
        SafeDir::open(Path::new("tmp/x")),
        Err(FsError::BadPath { .. })
    ));
    let err = SafeDir::open(Path::new("/tmp/../etc")).unwrap_err();
    assert!(err.to_string().contains("`..`"), "{err}");
}

#[test]
fn symlink_at_an_intermediate_component_is_refused_naming_it() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    put(&outside.join("inner/file"), b"keep", 0, 0, 0o644);
    let home = t.path().join("home");
    fs::create_dir_all(&home).unwrap();
    symlink(&outside, home.join(".zoomus")).unwrap();

    let target = home.join(".zoomus/inner/file");
    let before = fingerprint(&outside.join("inner/file"));
    match SafeDir::open_parent(&target) {
        Err(FsError::Symlink { path, component }) => {
            assert_eq!(path, target);
            assert_eq!(component, home.join(".zoomus"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    match SafeDir::open(&home.join(".zoomus/inner")) {
        Err(e @ FsError::Symlink { .. }) => {
            assert!(e.to_string().contains(".zoomus is a symbolic link"), "{e}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(fingerprint(&outside.join("inner/file")), before);
}

#[test]
fn a_regular_file_as_a_component_is_not_a_directory() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("f"), b"").unwrap();
    assert!(matches!(
        SafeDir::open(&t.path().join("f/x")),
        Err(FsError::NotADirectory { .. })
    ));
}

#[test]
fn scan_records_metadata_hashes_and_links_without_following() {
    if !is_root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("etc-passwd");
    put(&target, b"root:x:0:0", 0, 0, 0o644);
    let app = helper_tree(&t.path().join("home"), &target);
    let tree = snapshot(&app);
    let by = |p: &str| tree.iter().find(|e| e.path.0 == Path::new(p)).unwrap();
    assert_eq!(tree[0].path.0, PathBuf::new());
    assert_eq!(tree[0].meta.kind, EntryKind::Dir);
    let secret = &by("Contents/Resources/secret.db").meta;
    assert_eq!(
        (secret.uid, secret.gid, secret.mode, secret.size),
        (501, 20, 0o600, 100_000)
    );
    assert_eq!(
        secret.mtime,
        Mtime {
            sec: 1_700_000_000,
            nsec: 123_456_789
        }
    );
    // sha256 of 100,000 bytes of 0x07 (python3 hashlib).
    assert_eq!(
        secret.sha256.as_deref(),
        Some("2c4b101169bf328cd4a882e640a8b57eb3acf76518b3d105869905cf629e791c")
    );
    let link = &by("Contents/Resources/escape").meta;
    assert_eq!(link.kind, EntryKind::Symlink);
    assert_eq!(link.link_target.as_ref().unwrap().0, target);
    assert_eq!(link.sha256, None);
    assert_eq!(tree.len(), 9);
}

#[test]
fn sha256_matches_a_known_vector() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("abc"), b"abc").unwrap();
    let dir = SafeDir::open(t.path()).unwrap();
    let tree = scan(&dir, OsStr::new("abc")).unwrap();
    // FIPS 180-2 test vector for "abc".
    assert_eq!(
        tree[0].meta.sha256.as_deref(),
        Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
}

#[test]
fn move_within_a_filesystem_renames_and_keeps_everything() {
    if !is_root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("target");
    put(&target, b"outside", 0, 0, 0o600);
    let app = helper_tree(&t.path().join("home"), &target);
    let before = snapshot(&app);
    let outside_before = fingerprint(&target);
    let src = SafeDir::open(app.parent().unwrap()).unwrap();
    let vault = SafeDir::open(t.path())
        .unwrap()
        .ensure_dir(OsStr::new("v"), 0o700)
        .unwrap();
    let moved = move_entry(
        &src,
        OsStr::new("ZoomOpener.app"),
        &vault,
        OsStr::new("0"),
        OsStr::new("0.partial"),
    );
    assert_eq!(moved.unwrap(), Moved::Renamed);
    assert!(!app.exists());
    let after = scan(&vault, OsStr::new("0")).unwrap();
    assert_eq!(diff(&before, &after), None);
    assert_eq!(fingerprint(&target), outside_before);
}

#[test]
fn move_across_filesystems_copies_verifies_then_unlinks() {
    if !is_root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let Some(other) = other_fs(t.path()) else {
        return;
    };
    let target = t.path().join("target");
    put(&target, b"outside", 0, 0, 0o600);
    let app = helper_tree(&t.path().join("home"), &target);
    let before = snapshot(&app);
    let outside_before = fingerprint(&target);
    let src = SafeDir::open(app.parent().unwrap()).unwrap();
    let dst = SafeDir::open(other.path()).unwrap();
    let moved = move_entry(
        &src,
        OsStr::new("ZoomOpener.app"),
        &dst,
        OsStr::new("0"),
        OsStr::new("0.partial"),
    );
    assert_eq!(
        moved.unwrap(),
        Moved::Copied {
            left_in_place: vec![]
        }
    );
    assert!(!app.exists(), "source removed after the verified copy");
    assert!(!other.path().join("0.partial").exists());
    let after = scan(&dst, OsStr::new("0")).unwrap();
    assert_eq!(
        diff(&before, &after),
        None,
        "owner, mode, mtime, bytes, links"
    );
    let link = other.path().join("0/Contents/Resources/escape");
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_link(&link).unwrap(), target);
    assert_eq!(fingerprint(&target), outside_before);

    // And back again, the way a restore goes.
    let moved = move_entry(
        &dst,
        OsStr::new("0"),
        &src,
        OsStr::new("ZoomOpener.app"),
        OsStr::new(".tmp"),
    );
    assert!(matches!(moved.unwrap(), Moved::Copied { .. }));
    assert_eq!(diff(&before, &snapshot(&app)), None);
}

#[test]
fn copy_refuses_a_fifo_and_leaves_no_partial_copy() {
    let t = tempfile::tempdir().unwrap();
    let src_root = t.path().join("src");
    fs::create_dir_all(src_root.join("tree/a")).unwrap();
    fs::write(src_root.join("tree/a/file"), b"data").unwrap();
    nix::unistd::mkfifo(
        &src_root.join("tree/z-fifo"),
        Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let src = SafeDir::open(&src_root).unwrap();
    let dst = SafeDir::open(t.path()).unwrap();
    let err = copy_tree(&src, OsStr::new("tree"), &dst, OsStr::new("copy")).unwrap_err();
    assert!(matches!(err, FsError::Unsupported { .. }), "{err}");
    assert!(!t.path().join("copy").exists(), "partial copy removed");
    assert!(src_root.join("tree/a/file").exists());
}

#[test]
fn remove_matching_keeps_what_differs() {
    let t = tempfile::tempdir().unwrap();
    for (side, changed) in [("keep", b"same".as_slice()), ("rm", b"changed".as_slice())] {
        fs::create_dir_all(t.path().join(side).join("d")).unwrap();
        fs::write(t.path().join(side).join("d/equal"), b"equal").unwrap();
        fs::write(t.path().join(side).join("d/differs"), changed).unwrap();
        symlink("/nowhere", t.path().join(side).join("d/link")).unwrap();
    }
    fs::write(t.path().join("rm/d/only-here"), b"new").unwrap();
    let root = SafeDir::open(t.path()).unwrap();
    let left = remove_matching(&root, OsStr::new("rm"), &root, OsStr::new("keep")).unwrap();
    assert_eq!(
        left,
        vec![
            t.path().join("rm/d/differs"),
            t.path().join("rm/d/only-here")
        ]
    );
    assert!(!t.path().join("rm/d/equal").exists());
    assert!(fs::symlink_metadata(t.path().join("rm/d/link")).is_err());
    assert!(t.path().join("keep/d/equal").exists());
}

#[test]
fn a_deep_hostile_tree_is_refused_not_overflowed() {
    let t = tempfile::tempdir().unwrap();
    let mut p = t.path().join("deep");
    for _ in 0..(tree::MAX_DEPTH + 2) {
        p.push("d");
    }
    fs::create_dir_all(&p).unwrap();
    let root = SafeDir::open(t.path()).unwrap();
    assert!(matches!(
        scan(&root, OsStr::new("deep")),
        Err(FsError::TooLarge { .. })
    ));
}

#[test]
fn out_of_space_fails_cleanly_with_the_source_untouched() {
    if !is_root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let Some(tiny) = TinyFs::mount(&t.path().join("tiny"), "64k") else {
        return;
    };
    let home = t.path().join("home");
    put(&home.join("big/small"), b"fits", 1234, 20, 0o644);
    put(
        &home.join("big/z-large"),
        &vec![0x5a; 512 * 1024],
        1234,
        20,
        0o644,
    );
    let before = snapshot(&home.join("big"));
    let src = SafeDir::open(&home).unwrap();
    let dst = SafeDir::open(&tiny.0).unwrap();
    let err = move_entry(
        &src,
        OsStr::new("big"),
        &dst,
        OsStr::new("0"),
        OsStr::new("0.partial"),
    )
    .unwrap_err();
    assert_eq!(err.errno(), Some(Errno::ENOSPC), "{err}");
    assert!(err.to_string().contains("z-large"), "{err}");
    assert_eq!(
        dst.list().unwrap(),
        Vec::<std::ffi::OsString>::new(),
        "partial copy removed"
    );
    assert_eq!(diff(&before, &snapshot(&home.join("big"))), None);
}
