//! File operations for a root daemon working in user-writable directories.
//!
//! A user can plant a symbolic link anywhere in their home, so a path such
//! as `/Users/alice/.zoomus/ZoomOpener.app` cannot be handed to a
//! path-based call: if `.zoomus` had become a link to `/Library`, root would
//! move `/Library/ZoomOpener.app`. Everything here therefore works on
//! directory file descriptors ([`SafeDir`]):
//!
//! - a path is opened from a **trusted anchor** — the longest prefix of it
//!   that only root can change (every directory root-owned and not group-
//!   or world-writable; a root-owned link inside such a directory, like
//!   macOS's `/var → private/var`, is resolved only if its target is trusted
//!   too) — and every component after the anchor is opened with
//!   `openat(O_NOFOLLOW | O_DIRECTORY)`; a link there is refused with
//!   [`FsError::Symlink`], naming the path and the component;
//! - entries are inspected with `fstatat(AT_SYMLINK_NOFOLLOW)`, files opened
//!   with `O_NOFOLLOW | O_NONBLOCK` (a planted FIFO cannot block us) and
//!   changed through their descriptor (`fchown`, `fchmod`, `futimens`);
//! - names are moved with `renameat`, removed with `unlinkat`.
//!
//! `tree` builds the tree operations on top: scanning with sha256, moving
//! within a filesystem (`renameat`, atomic) or across filesystems (copy by
//! descriptor, fsync, verify the hash, then remove the source), and removing
//! only what provably equals a kept copy.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags};
use sha2::{Digest, Sha256};

mod meta;
mod tree;

pub use meta::{EntryKind, Meta, Mtime, RawPath, hex};
pub use tree::{Entry, Moved, copy_tree, diff, move_entry, remove_matching, remove_tree, scan};

/// Why a file operation was refused or failed. Each variant names the path
/// it is about.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{}: {reason}; give an absolute path without `..`", path.display())]
    BadPath { path: PathBuf, reason: &'static str },
    #[error(
        "refusing {}: {} is a symbolic link, which may lead outside the user's directory; \
         inspect it and remove it by hand if it is unexpected",
        path.display(), component.display()
    )]
    Symlink { path: PathBuf, component: PathBuf },
    #[error("refusing {}: {} is not a directory", path.display(), component.display())]
    NotADirectory { path: PathBuf, component: PathBuf },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "refusing {}: it is a {kind}; only regular files, directories and symbolic links are moved",
        path.display()
    )]
    Unsupported { path: PathBuf, kind: &'static str },
    #[error("refusing {}: more than {limit} levels or entries", path.display())]
    TooLarge { path: PathBuf, limit: usize },
    #[error(
        "{} changed while it was being copied; the copy was discarded and nothing removed — retry",
        path.display()
    )]
    Changed { path: PathBuf },
    #[error(
        "the copy of {} does not match it (sha256 {expected} vs {actual}); \
         the copy was discarded and the original left in place",
        path.display()
    )]
    HashMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{} already exists; refusing to overwrite it — move it away and retry", path.display())]
    Exists { path: PathBuf },
}

impl FsError {
    /// The OS error number behind an `Io` error (to tell EXDEV or ENOENT
    /// from the rest).
    pub fn errno(&self) -> Option<Errno> {
        match self {
            FsError::Io { source, .. } => source.raw_os_error().map(Errno::from_raw),
            _ => None,
        }
    }

    fn io(op: &'static str, path: impl Into<PathBuf>, errno: Errno) -> FsError {
        FsError::Io {
            op,
            path: path.into(),
            source: std::io::Error::from(errno),
        }
    }
}

// `mode_t` is u16 on macOS and u32 on Linux.
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
fn mode(bits: u32) -> Mode {
    Mode::from_bits_truncate((bits & 0o7777) as libc::mode_t)
}

#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
fn timespec(t: Mtime) -> TimeSpec {
    TimeSpec::new(t.sec as libc::time_t, t.nsec as _)
}

/// Trusted: only root can change what its names point to.
fn trusted_dir(m: &std::fs::Metadata) -> bool {
    m.is_dir() && m.uid() == 0 && m.mode() & 0o022 == 0
}

/// Is every directory from `/` down to `path` (already canonical) trusted?
fn trusted_chain(path: &Path) -> bool {
    path.ancestors()
        .all(|p| std::fs::symlink_metadata(p).is_ok_and(|m| trusted_dir(&m)))
}

/// The normal components of an absolute path; `..` is refused because it
/// could climb out of the directory a check was made on.
fn components(path: &Path) -> Result<Vec<&OsStr>, FsError> {
    if !path.is_absolute() {
        return Err(FsError::BadPath {
            path: path.into(),
            reason: "not absolute",
        });
    }
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(FsError::BadPath {
                    path: path.into(),
                    reason: "contains `..`",
                });
            }
        }
    }
    Ok(out)
}

/// How many leading components root alone controls. Inspecting them by
/// path is safe: each one's parent was already found trusted.
fn trusted_prefix_len(comps: &[&OsStr]) -> usize {
    let mut prefix = PathBuf::from("/");
    for (i, c) in comps.iter().enumerate() {
        prefix.push(c);
        let Ok(m) = std::fs::symlink_metadata(&prefix) else {
            return i;
        };
        let ok = if m.file_type().is_symlink() {
            m.uid() == 0 && std::fs::canonicalize(&prefix).is_ok_and(|t| trusted_chain(&t))
        } else {
            trusted_dir(&m)
        };
        if !ok {
            return i;
        }
    }
    comps.len()
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// An open directory, reached without following any link a user could
/// have planted. `path` is for messages only; every operation uses `fd`.
#[derive(Debug)]
pub struct SafeDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl SafeDir {
    /// Open the directory `path` (absolute): the trusted anchor by path,
    /// the rest component by component with `O_NOFOLLOW`.
    pub fn open(path: &Path) -> Result<SafeDir, FsError> {
        let comps = components(path)?;
        let anchor_len = trusted_prefix_len(&comps);
        let mut anchor = PathBuf::from("/");
        anchor.extend(&comps[..anchor_len]);
        let fd = nix::fcntl::open(
            &anchor,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| FsError::io("open", &anchor, e))?;
        let mut dir = SafeDir { fd, path: anchor };
        for c in &comps[anchor_len..] {
            dir = dir.open_dir_for(c, path)?;
        }
        Ok(dir)
    }

    /// Open the parent of `path` safely; returns it and the final name.
    pub fn open_parent(path: &Path) -> Result<(SafeDir, OsString), FsError> {
        let comps = components(path)?;
        let (name, parents) = comps.split_last().ok_or_else(|| FsError::BadPath {
            path: path.into(),
            reason: "has no final component",
        })?;
        let mut parent = PathBuf::from("/");
        parent.extend(parents);
        let dir = SafeDir::open(&parent).map_err(|e| match e {
            // Name the item the caller asked about, not just its parent.
            FsError::Symlink { component, .. } => FsError::Symlink {
                path: path.into(),
                component,
            },
            FsError::NotADirectory { component, .. } => FsError::NotADirectory {
                path: path.into(),
                component,
            },
            other => other,
        })?;
        Ok((dir, name.to_os_string()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn child_path(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// Open the subdirectory `name`, refusing a link.
    pub fn open_dir(&self, name: &OsStr) -> Result<SafeDir, FsError> {
        self.open_dir_for(name, &self.child_path(name))
    }

    fn open_dir_for(&self, name: &OsStr, full: &Path) -> Result<SafeDir, FsError> {
        let child = self.child_path(name);
        match nix::fcntl::openat(&self.fd, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(SafeDir { fd, path: child }),
            // O_NOFOLLOW on a link gives ELOOP (Linux, macOS) or ENOTDIR
            // (with O_DIRECTORY on some kernels): look to say which.
            Err(e @ (Errno::ELOOP | Errno::ENOTDIR)) => match self.lstat(name)? {
                Some(m) if m.kind == EntryKind::Symlink => Err(FsError::Symlink {
                    path: full.into(),
                    component: child,
                }),
                Some(_) => Err(FsError::NotADirectory {
                    path: full.into(),
                    component: child,
                }),
                None => Err(FsError::io("open", child, e)),
            },
            Err(e) => Err(FsError::io("open", child, e)),
        }
    }

    /// `mkdirat` a new directory (it must not exist) and open it.
    pub fn create_dir(&self, name: &OsStr, bits: u32) -> Result<SafeDir, FsError> {
        nix::sys::stat::mkdirat(&self.fd, name, mode(bits))
            .map_err(|e| FsError::io("mkdir", self.child_path(name), e))?;
        self.open_dir(name)
    }

    /// Create the directory if it is missing, then open it.
    pub fn ensure_dir(&self, name: &OsStr, bits: u32) -> Result<SafeDir, FsError> {
        match nix::sys::stat::mkdirat(&self.fd, name, mode(bits)) {
            Ok(()) | Err(Errno::EEXIST) => self.open_dir(name),
            Err(e) => Err(FsError::io("mkdir", self.child_path(name), e)),
        }
    }

    /// `fstatat(AT_SYMLINK_NOFOLLOW)`; `None` when nothing is there.
    pub fn lstat(&self, name: &OsStr) -> Result<Option<Meta>, FsError> {
        match nix::sys::stat::fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Meta::from_stat(&st))),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(FsError::io("stat", self.child_path(name), e)),
        }
    }

    /// The directory's own metadata.
    pub fn stat_self(&self) -> Result<Meta, FsError> {
        nix::sys::stat::fstat(&self.fd)
            .map(|st| Meta::from_stat(&st))
            .map_err(|e| FsError::io("stat", &self.path, e))
    }

    /// Names in the directory, sorted, without `.` and `..`.
    pub fn list(&self) -> Result<Vec<OsString>, FsError> {
        let err = |e| FsError::io("read directory", &self.path, e);
        // A fresh descriptor, so the listing has its own read offset.
        let mut dir = Dir::openat(&self.fd, ".", DIR_FLAGS, Mode::empty()).map_err(err)?;
        let mut names = Vec::new();
        for entry in dir.iter() {
            let name = entry.map_err(err)?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name));
            }
        }
        names.sort();
        Ok(names)
    }

    /// Open a regular file for reading, refusing a link, and return it with
    /// its metadata (from the descriptor, so it is the file we read).
    pub fn open_file(&self, name: &OsStr) -> Result<(File, Meta), FsError> {
        let path = self.child_path(name);
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = match nix::fcntl::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ELOOP) => {
                return Err(FsError::Symlink {
                    component: path.clone(),
                    path,
                });
            }
            Err(e) => return Err(FsError::io("open", path, e)),
        };
        let meta = nix::sys::stat::fstat(&fd)
            .map(|st| Meta::from_stat(&st))
            .map_err(|e| FsError::io("stat", &path, e))?;
        if meta.kind != EntryKind::File {
            return Err(FsError::Unsupported {
                path,
                kind: meta.kind_name(),
            });
        }
        Ok((File::from(fd), meta))
    }

    /// Create a new regular file (`O_EXCL | O_NOFOLLOW`), read-write.
    pub fn create_file(&self, name: &OsStr, bits: u32) -> Result<File, FsError> {
        let flags =
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        nix::fcntl::openat(&self.fd, name, flags, mode(bits))
            .map(File::from)
            .map_err(|e| match e {
                Errno::EEXIST => FsError::Exists {
                    path: self.child_path(name),
                },
                e => FsError::io("create", self.child_path(name), e),
            })
    }

    /// `renameat(self/name → to/to_name)`. It replaces a file at the
    /// destination, so callers check the destination first.
    pub fn rename(&self, name: &OsStr, to: &SafeDir, to_name: &OsStr) -> Result<(), FsError> {
        nix::fcntl::renameat(&self.fd, name, &to.fd, to_name)
            .map_err(|e| FsError::io("rename", self.child_path(name), e))
    }

    /// Remove a non-directory entry (the entry itself, never a link target).
    pub fn unlink(&self, name: &OsStr) -> Result<(), FsError> {
        nix::unistd::unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir)
            .map_err(|e| FsError::io("unlink", self.child_path(name), e))
    }

    /// Remove an empty directory.
    pub fn rmdir(&self, name: &OsStr) -> Result<(), FsError> {
        nix::unistd::unlinkat(&self.fd, name, UnlinkatFlags::RemoveDir)
            .map_err(|e| FsError::io("rmdir", self.child_path(name), e))
    }

    pub fn readlink(&self, name: &OsStr) -> Result<OsString, FsError> {
        nix::fcntl::readlinkat(&self.fd, name)
            .map_err(|e| FsError::io("readlink", self.child_path(name), e))
    }

    /// Create the link `name → target` and give it the recorded owner and
    /// time (a link's mode cannot be set on Linux and is ignored on macOS).
    pub fn symlink(&self, target: &OsStr, name: &OsStr, meta: &Meta) -> Result<(), FsError> {
        let path = self.child_path(name);
        nix::unistd::symlinkat(target, &self.fd, name).map_err(|e| match e {
            Errno::EEXIST => FsError::Exists { path: path.clone() },
            e => FsError::io("symlink", &path, e),
        })?;
        nix::unistd::fchownat(
            &self.fd,
            name,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| FsError::io("chown", &path, e))?;
        nix::sys::stat::utimensat(
            &self.fd,
            name,
            &TimeSpec::UTIME_OMIT,
            &timespec(meta.mtime),
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| FsError::io("set times", &path, e))
    }

    /// Change only this directory's mode (through its descriptor).
    pub fn chmod(&self, bits: u32) -> Result<(), FsError> {
        nix::sys::stat::fchmod(&self.fd, mode(bits))
            .map_err(|e| FsError::io("chmod", &self.path, e))
    }

    /// Give this directory the recorded owner, mode and time.
    pub fn set_meta(&self, meta: &Meta) -> Result<(), FsError> {
        set_meta_fd(&self.fd, meta, &self.path)
    }

    /// fsync the directory, making renames and creations in it durable.
    pub fn sync(&self) -> Result<(), FsError> {
        nix::unistd::fsync(&self.fd).map_err(|e| FsError::io("fsync", &self.path, e))
    }
}

/// Give an open file or directory the recorded owner, mode and mtime.
pub fn set_meta_fd(fd: impl AsFd, meta: &Meta, path: &Path) -> Result<(), FsError> {
    let fd = fd.as_fd();
    set_owner_mode(fd, meta.uid, meta.gid, meta.mode, path)?;
    nix::sys::stat::futimens(fd, &TimeSpec::UTIME_OMIT, &timespec(meta.mtime))
        .map_err(|e| FsError::io("set times", path, e))
}

/// Owner first: `chown` clears setuid/setgid, so the mode must come after.
pub fn set_owner_mode(
    fd: impl AsFd,
    uid: u32,
    gid: u32,
    bits: u32,
    path: &Path,
) -> Result<(), FsError> {
    let fd = fd.as_fd();
    nix::unistd::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
        .map_err(|e| FsError::io("chown", path, e))?;
    nix::sys::stat::fchmod(fd, mode(bits)).map_err(|e| FsError::io("chmod", path, e))
}

/// sha256 of everything readable from `file`, as lower-case hex.
pub fn sha256_of(file: &mut File, path: &Path) -> Result<String, FsError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(|source| FsError::Io {
            op: "read",
            path: path.into(),
            source,
        })?;
        if n == 0 {
            return Ok(hex(&hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

#[cfg(test)]
pub(crate) mod tests;
