//! Whole-tree operations on top of [`SafeDir`]: scan with sha256, copy by
//! descriptor, move (rename, or copy + verify + remove across
//! filesystems), and remove only what equals a kept copy.
//!
//! Invariants the quarantine relies on:
//! - nothing here follows a link: a link inside a tree is read with
//!   `readlinkat` and recreated with `symlinkat`;
//! - a cross-filesystem move never removes a source entry before its copy
//!   is complete, fsynced, hash-verified and committed (renamed from its
//!   partial name to the final one), and then removes only entries whose
//!   content equals the committed copy — so a crash leaves either an
//!   intact source (plus a partial copy to discard) or a complete copy
//!   (plus source leftovers equal to it);
//! - depth and entry count are bounded, so a hostile tree cannot exhaust
//!   the stack or the disk we copy to.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{EntryKind, FsError, Meta, RawPath, SafeDir, hex, set_meta_fd, sha256_of};

/// Deeper trees are refused (macOS bundles are a handful of levels deep).
pub const MAX_DEPTH: usize = 64;
/// More entries are refused (a large app bundle has tens of thousands).
pub const MAX_ENTRIES: usize = 200_000;

/// One entry of a scanned tree; `path` is relative to the tree's root, and
/// empty for the root itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: RawPath,
    #[serde(flatten)]
    pub meta: Meta,
}

fn too_large(path: PathBuf) -> FsError {
    FsError::TooLarge {
        path,
        limit: MAX_ENTRIES.max(MAX_DEPTH),
    }
}

fn missing(path: PathBuf) -> FsError {
    FsError::io("stat", path, Errno::ENOENT)
}

/// Record every entry of `dir/name` (depth-first, names sorted): owner,
/// group, mode, size, mtime, sha256 of files, text of links.
pub fn scan(dir: &SafeDir, name: &OsStr) -> Result<Vec<Entry>, FsError> {
    let mut out = Vec::new();
    scan_into(dir, name, Path::new(""), 0, &mut out)?;
    Ok(out)
}

fn scan_into(
    dir: &SafeDir,
    name: &OsStr,
    rel: &Path,
    depth: usize,
    out: &mut Vec<Entry>,
) -> Result<(), FsError> {
    let path = dir.child_path(name);
    if depth > MAX_DEPTH || out.len() >= MAX_ENTRIES {
        return Err(too_large(path));
    }
    let mut meta = dir.lstat(name)?.ok_or_else(|| missing(path.clone()))?;
    match meta.kind {
        EntryKind::File => {
            let (mut file, opened) = dir.open_file(name)?;
            if !opened.same_object(&meta) {
                return Err(FsError::Changed { path });
            }
            meta.sha256 = Some(sha256_of(&mut file, &path)?);
        }
        EntryKind::Symlink => meta.link_target = Some(RawPath(dir.readlink(name)?.into())),
        EntryKind::Dir => {}
        EntryKind::Other => {
            return Err(FsError::Unsupported {
                path,
                kind: meta.kind_name(),
            });
        }
    }
    let sub = if meta.kind == EntryKind::Dir {
        let sub = dir.open_dir(name)?;
        if !sub.stat_self()?.same_object(&meta) {
            return Err(FsError::Changed { path });
        }
        Some(sub)
    } else {
        None
    };
    out.push(Entry {
        path: RawPath(rel.to_path_buf()),
        meta,
    });
    if let Some(sub) = sub {
        for child in sub.list()? {
            scan_into(&sub, &child, &rel.join(&child), depth + 1, out)?;
        }
    }
    Ok(())
}

/// Copy `src/name` to the new name `dst/dst_name` with owner, group, mode
/// and mtime, each file fsynced and its copy's sha256 checked against what
/// was read. On any failure the partial copy is removed and the source is
/// untouched.
pub fn copy_tree(
    src: &SafeDir,
    name: &OsStr,
    dst: &SafeDir,
    dst_name: &OsStr,
) -> Result<(), FsError> {
    let top = dst.child_path(dst_name);
    if dst.lstat(dst_name)?.is_some() {
        return Err(FsError::Exists { path: top });
    }
    let result = copy_entry(src, name, dst, dst_name, 0, &mut 0);
    if let Err(err) = &result {
        // Only what we created: an `Exists` for the top name is not ours.
        let ours = !matches!(err, FsError::Exists { path } if *path == top);
        if ours && let Err(cleanup) = remove_tree(dst, dst_name) {
            tracing::warn!(path = %top.display(), error = %cleanup, "could not remove a partial copy");
        }
    }
    result
}

fn copy_entry(
    src: &SafeDir,
    name: &OsStr,
    dst: &SafeDir,
    dst_name: &OsStr,
    depth: usize,
    count: &mut usize,
) -> Result<(), FsError> {
    let path = src.child_path(name);
    *count += 1;
    if depth > MAX_DEPTH || *count > MAX_ENTRIES {
        return Err(too_large(path));
    }
    let meta = src.lstat(name)?.ok_or_else(|| missing(path.clone()))?;
    match meta.kind {
        EntryKind::File => copy_file(src, name, &meta, dst, dst_name),
        EntryKind::Symlink => dst.symlink(&src.readlink(name)?, dst_name, &meta),
        EntryKind::Dir => {
            let from = src.open_dir(name)?;
            if !from.stat_self()?.same_object(&meta) {
                return Err(FsError::Changed { path });
            }
            // 0700 while we fill it: nobody else can reach into it before
            // it is complete.
            let to = dst.create_dir(dst_name, 0o700)?;
            for child in from.list()? {
                copy_entry(&from, &child, &to, &child, depth + 1, count)?;
            }
            // After the children: creating them moved the mtime.
            to.set_meta(&meta)?;
            to.sync()
        }
        EntryKind::Other => Err(FsError::Unsupported {
            path,
            kind: meta.kind_name(),
        }),
    }
}

fn copy_file(
    src: &SafeDir,
    name: &OsStr,
    meta: &Meta,
    dst: &SafeDir,
    dst_name: &OsStr,
) -> Result<(), FsError> {
    let path = src.child_path(name);
    let to_path = dst.child_path(dst_name);
    let (mut from, before) = src.open_file(name)?;
    if !before.same_object(meta) {
        return Err(FsError::Changed { path });
    }
    let mut to = dst.create_file(dst_name, 0o600)?;
    let io = |op, p: &Path| {
        let p = p.to_path_buf();
        move |source| FsError::Io {
            op,
            path: p,
            source,
        }
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).map_err(io("read", &path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n]).map_err(io("write", &to_path))?;
    }
    let expected = hex(&hasher.finalize());
    let after = fstat_meta(&from, &path)?;
    if after.size != before.size || after.mtime != before.mtime {
        return Err(FsError::Changed { path });
    }
    set_meta_fd(&to, meta, &to_path)?;
    to.sync_all().map_err(io("fsync", &to_path))?;
    to.seek(SeekFrom::Start(0)).map_err(io("seek", &to_path))?;
    let actual = sha256_of(&mut to, &to_path)?;
    if actual != expected {
        return Err(FsError::HashMismatch {
            path,
            expected,
            actual,
        });
    }
    Ok(())
}

fn fstat_meta(file: &File, path: &Path) -> Result<Meta, FsError> {
    nix::sys::stat::fstat(file)
        .map(|st| Meta::from_stat(&st))
        .map_err(|e| FsError::io("stat", path, e))
}

/// Remove `dir/name` and everything below it, never following a link.
/// Missing is fine. Used only on copies we made.
pub fn remove_tree(dir: &SafeDir, name: &OsStr) -> Result<(), FsError> {
    remove_at(dir, name, 0)
}

fn remove_at(dir: &SafeDir, name: &OsStr, depth: usize) -> Result<(), FsError> {
    match dir.lstat(name)? {
        None => Ok(()),
        Some(m) if m.kind == EntryKind::Dir => {
            if depth > MAX_DEPTH {
                return Err(too_large(dir.child_path(name)));
            }
            let sub = dir.open_dir(name)?;
            for child in sub.list()? {
                remove_at(&sub, &child, depth + 1)?;
            }
            dir.rmdir(name)
        }
        Some(_) => dir.unlink(name),
    }
}

/// Remove from `rm/name` every entry whose content equals the matching
/// entry under `keep/keep_name` (same sha256, same link text); directories
/// go once empty. Returns what was left in place because it differs or has
/// no counterpart — nothing that is not provably kept is removed.
pub fn remove_matching(
    rm: &SafeDir,
    name: &OsStr,
    keep: &SafeDir,
    keep_name: &OsStr,
) -> Result<Vec<PathBuf>, FsError> {
    let mut left = Vec::new();
    remove_matching_at(rm, name, keep, keep_name, 0, &mut left)?;
    Ok(left)
}

fn file_hash(dir: &SafeDir, name: &OsStr) -> Result<String, FsError> {
    let (mut file, _) = dir.open_file(name)?;
    sha256_of(&mut file, &dir.child_path(name))
}

fn remove_matching_at(
    rm: &SafeDir,
    name: &OsStr,
    keep: &SafeDir,
    keep_name: &OsStr,
    depth: usize,
    left: &mut Vec<PathBuf>,
) -> Result<(), FsError> {
    let path = rm.child_path(name);
    let Some(r) = rm.lstat(name)? else {
        return Ok(());
    };
    let k = keep.lstat(keep_name)?;
    let same = match (r.kind, k.as_ref().map(|k| k.kind)) {
        (EntryKind::File, Some(EntryKind::File)) => {
            k.is_some_and(|k| k.size == r.size)
                && file_hash(rm, name)? == file_hash(keep, keep_name)?
        }
        (EntryKind::Symlink, Some(EntryKind::Symlink)) => {
            rm.readlink(name)? == keep.readlink(keep_name)?
        }
        (EntryKind::Dir, Some(EntryKind::Dir)) => {
            if depth > MAX_DEPTH {
                return Err(too_large(path));
            }
            let (rsub, ksub) = (rm.open_dir(name)?, keep.open_dir(keep_name)?);
            let before = left.len();
            for child in rsub.list()? {
                remove_matching_at(&rsub, &child, &ksub, &child, depth + 1, left)?;
            }
            return match rm.rmdir(name) {
                Ok(()) => Ok(()),
                Err(e) if matches!(e.errno(), Some(Errno::ENOTEMPTY | Errno::EEXIST)) => {
                    // Something appeared that we did not look at: say so.
                    if left.len() == before {
                        left.push(path);
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            };
        }
        _ => false,
    };
    if same {
        rm.unlink(name)
    } else {
        left.push(path);
        Ok(())
    }
}

/// How [`move_entry`] moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moved {
    /// Same filesystem: one atomic `renameat`.
    Renamed,
    /// Across filesystems: copied, verified, committed, source removed —
    /// except these source entries, which changed after the copy.
    Copied { left_in_place: Vec<PathBuf> },
}

/// Move `src/name` to `dst/dst_name`, which must not exist. On one
/// filesystem this is `renameat`. Across filesystems (`EXDEV`) the tree is
/// copied to `dst/partial`, committed by renaming `partial` to `dst_name`,
/// and only then removed from the source (see the module invariants).
pub fn move_entry(
    src: &SafeDir,
    name: &OsStr,
    dst: &SafeDir,
    dst_name: &OsStr,
    partial: &OsStr,
) -> Result<Moved, FsError> {
    let exists = || FsError::Exists {
        path: dst.child_path(dst_name),
    };
    if dst.lstat(dst_name)?.is_some() {
        return Err(exists());
    }
    match src.rename(name, dst, dst_name) {
        Ok(()) => {
            dst.sync()?;
            src.sync()?;
            return Ok(Moved::Renamed);
        }
        Err(e) if e.errno() == Some(Errno::EXDEV) => {}
        Err(e) => return Err(e),
    }
    remove_tree(dst, partial)?; // left by an earlier crash
    copy_tree(src, name, dst, partial)?;
    dst.sync()?;
    // renameat replaces a file: look again right before the commit.
    if dst.lstat(dst_name)?.is_some() {
        remove_tree(dst, partial)?;
        return Err(exists());
    }
    dst.rename(partial, dst, dst_name)?;
    dst.sync()?;
    let left_in_place = remove_matching(src, name, dst, dst_name)?;
    src.sync()?;
    Ok(Moved::Copied { left_in_place })
}

/// The first difference between a recorded tree and a scanned one, as
/// (relative path, what differs). Directory sizes are filesystem-specific
/// and a link's mode cannot be set everywhere, so neither is compared.
pub fn diff(expected: &[Entry], actual: &[Entry]) -> Option<(PathBuf, &'static str)> {
    let found: BTreeMap<&RawPath, &Meta> = actual.iter().map(|e| (&e.path, &e.meta)).collect();
    for e in expected {
        let p = || e.path.0.clone();
        let Some(a) = found.get(&e.path) else {
            return Some((p(), "missing"));
        };
        let m = &e.meta;
        let what = if a.kind != m.kind {
            "kind"
        } else if (a.uid, a.gid) != (m.uid, m.gid) {
            "owner"
        } else if m.kind != EntryKind::Symlink && a.mode != m.mode {
            "mode"
        } else if m.kind == EntryKind::File && a.size != m.size {
            "size"
        } else if a.sha256 != m.sha256 {
            "sha256"
        } else if a.link_target != m.link_target {
            "link target"
        } else if a.mtime != m.mtime {
            "mtime"
        } else {
            continue;
        };
        return Some((p(), what));
    }
    let recorded: BTreeMap<&RawPath, ()> = expected.iter().map(|e| (&e.path, ())).collect();
    actual
        .iter()
        .find(|a| !recorded.contains_key(&a.path))
        .map(|a| (a.path.0.clone(), "unexpected entry"))
}
