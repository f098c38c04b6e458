//! The launchd persistence on disk: every `*.plist` in the configured
//! `LaunchAgents`/`LaunchDaemons` directories (globs such as
//! `/Users/*/Library/LaunchAgents`) → [`PersistenceItem`]s, plus one
//! [`ScanError`] per thing that could not be read. One bad file never stops
//! the scan.
//!
//! A root daemon reading users' home directories is an attack surface
//! (docs/design.md §4), so nothing here is opened by following a link a user
//! could have planted:
//!
//! - each directory is opened one path component at a time, relative to
//!   its already-open parent, with `O_NOFOLLOW`. A symlink on the way is
//!   followed only when neither root nor anyone else but root could have
//!   put it there: owned by root, in a root-owned directory that no one
//!   else may write (that is how `/var` and `/tmp` are links on macOS).
//!   Anything else is refused with "symlink to <target> refused";
//! - files are looked at relative to that open directory (`fstatat`
//!   without following, then `openat` with `O_NOFOLLOW | O_NONBLOCK`), so
//!   swapping a path component afterwards changes nothing; a symlinked
//!   plist is refused whatever its owner, a FIFO or device is refused
//!   without blocking on it, and at most `max_plist_bytes + 1` bytes are
//!   read;
//! - the listing of names itself is taken by path (std has no `fdopendir`);
//!   a race there can only change which *names* are tried, never where
//!   they are opened.
//!
//! Output is sorted (directories, then names within each) so two scans of
//! an unchanged disk compare equal.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};

use crate::model::{PersistenceItem, PersistenceKind, ScanError};
use crate::parse::launchd::parse_launchd_plist;

/// `ScanError::source` of everything this module reports.
pub const SOURCE: &str = "persistence";

/// Scan the directories matched by the glob patterns `dirs`. A pattern
/// matching nothing (a directory that does not exist) is silently empty;
/// everything else that goes wrong is a [`ScanError`] naming the path.
pub fn scan(dirs: &[String], max_plist_bytes: u64) -> (Vec<PersistenceItem>, Vec<ScanError>) {
    let mut items = Vec::new();
    let mut errors = Vec::new();
    let mut matched = BTreeSet::new();
    for pattern in dirs {
        match glob::glob(pattern) {
            Err(e) => errors.push(error(
                None,
                format!("PersistenceDirs pattern {pattern:?} is not a valid glob: {e}"),
            )),
            Ok(paths) => {
                for entry in paths {
                    match entry {
                        Ok(p) => {
                            matched.insert(p);
                        }
                        Err(e) => errors.push(error(
                            Some(e.path()),
                            format!("cannot list while expanding {pattern:?}: {}", e.error()),
                        )),
                    }
                }
            }
        }
    }
    for dir in &matched {
        scan_dir(dir, max_plist_bytes, &mut items, &mut errors);
    }
    (items, errors)
}

fn error(path: Option<&Path>, message: String) -> ScanError {
    // A path that is not UTF-8 cannot go into the JSON report (serde_json
    // refuses it, failing the whole scan); macOS file systems do not allow
    // such names, so it is said in words instead.
    match path {
        Some(p) if p.to_str().is_none() => ScanError {
            source: SOURCE.into(),
            path: None,
            message: format!("{}: {message}", p.to_string_lossy()),
        },
        _ => ScanError {
            source: SOURCE.into(),
            path: path.map(Path::to_path_buf),
            message,
        },
    }
}

fn kind_of(dir: &Path) -> PersistenceKind {
    if dir.file_name().is_some_and(|n| n == "LaunchDaemons") {
        PersistenceKind::LaunchDaemon
    } else {
        PersistenceKind::LaunchAgent
    }
}

fn scan_dir(dir: &Path, max: u64, items: &mut Vec<PersistenceItem>, errors: &mut Vec<ScanError>) {
    if dir.to_str().is_none() {
        errors.push(error(
            Some(dir),
            "directory name is not valid UTF-8; skipped".into(),
        ));
        return;
    }
    let dirfd = match open_dir(dir) {
        Ok(fd) => fd,
        Err((at, message)) => {
            errors.push(error(Some(&at), message));
            return;
        }
    };
    let mut names: Vec<OsString> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .filter(|n| is_plist_name(n))
            .collect(),
        Err(e) => {
            errors.push(error(Some(dir), format!("cannot list directory: {e}")));
            return;
        }
    };
    names.sort();
    let kind = kind_of(dir);
    for name in names {
        let path = dir.join(&name);
        if name.to_str().is_none() {
            errors.push(error(
                Some(&path),
                "file name is not valid UTF-8; not read".into(),
            ));
            continue;
        }
        match read_plist(&dirfd, &name, max) {
            Ok((bytes, uid)) => match parse_launchd_plist(&bytes) {
                Ok(job) => items.push(job.to_persistence_item(kind, &path, Some(uid))),
                Err(e) => errors.push(error(Some(&path), e.to_string())),
            },
            Err(message) => errors.push(error(Some(&path), message)),
        }
    }
}

fn is_plist_name(name: &OsStr) -> bool {
    let b = name.as_bytes();
    b.len() > 6 && b[b.len() - 6..].eq_ignore_ascii_case(b".plist")
}

fn io_error(errno: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(errno as i32)
}

fn type_name(st: &FileStat) -> &'static str {
    let fmt = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    match fmt {
        f if f == SFlag::S_IFREG => "regular file",
        f if f == SFlag::S_IFDIR => "directory",
        f if f == SFlag::S_IFLNK => "symlink",
        f if f == SFlag::S_IFIFO => "FIFO",
        f if f == SFlag::S_IFSOCK => "socket",
        f if f == SFlag::S_IFCHR => "character device",
        f if f == SFlag::S_IFBLK => "block device",
        _ => "unknown file type",
    }
}

/// Open `path` as a directory without following any symlink a non-root
/// user could have planted (module doc). On refusal, the component where
/// it happened and why.
fn open_dir(path: &Path) -> Result<OwnedFd, (PathBuf, String)> {
    let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let start = if path.is_absolute() { "/" } else { "." };
    let mut fd = nix::fcntl::open(start, dir_flags, Mode::empty()).map_err(|e| {
        (
            PathBuf::from(start),
            format!("cannot open: {}", io_error(e)),
        )
    })?;
    let mut at = PathBuf::new();
    for component in path.components() {
        let name: &OsStr = match component {
            Component::RootDir => {
                at.push("/");
                continue;
            }
            Component::CurDir => continue,
            Component::Prefix(_) => continue,
            Component::ParentDir => OsStr::new(".."),
            Component::Normal(n) => n,
        };
        at.push(name);
        fd = match openat(&fd, name, dir_flags | OFlag::O_NOFOLLOW, Mode::empty()) {
            Ok(next) => next,
            Err(open_err) => {
                let st = fstatat(&fd, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|e| {
                    (
                        at.clone(),
                        format!("cannot open directory: {}", io_error(e)),
                    )
                })?;
                if type_name(&st) != "symlink" {
                    return Err((
                        at,
                        format!(
                            "cannot open directory ({}): {}",
                            type_name(&st),
                            io_error(open_err)
                        ),
                    ));
                }
                if !root_controlled(&fd, &st) {
                    return Err((at, refused_link(&fd, name)));
                }
                openat(&fd, name, dir_flags, Mode::empty()).map_err(|e| {
                    (
                        at.clone(),
                        format!("cannot open directory: {}", io_error(e)),
                    )
                })?
            }
        };
    }
    Ok(fd)
}

/// A symlink only root could have made and only root could replace: owned
/// by root, inside a root-owned directory writable by no one else.
// `st_mode` is u16 on macOS and u32 on Linux; `from` widens on both.
#[allow(clippy::useless_conversion)]
fn root_controlled(parent: &OwnedFd, link: &FileStat) -> bool {
    let Ok(p) = fstat(parent) else {
        return false;
    };
    link.st_uid == 0 && p.st_uid == 0 && u32::from(p.st_mode) & 0o022 == 0
}

fn refused_link(dirfd: &OwnedFd, name: &OsStr) -> String {
    let target = readlinkat(dirfd, name)
        .map(|t| t.to_string_lossy().into_owned())
        .unwrap_or_else(|e| format!("<unreadable: {}>", io_error(e)));
    format!(
        "symlink to {target} refused: the agent does not follow links that users could have planted"
    )
}

/// Read one plist relative to the open directory: never through a symlink,
/// never anything but a regular file, never more than `max + 1` bytes.
/// Returns the bytes and the owning uid.
fn read_plist(dirfd: &OwnedFd, name: &OsStr, max: u64) -> Result<(Vec<u8>, u32), String> {
    let st = fstatat(dirfd, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(|e| format!("cannot stat: {}", io_error(e)))?;
    match type_name(&st) {
        "regular file" => {}
        "symlink" => return Err(refused_link(dirfd, name)),
        other => return Err(format!("not a regular file ({other}); refused")),
    }
    let too_big = |size: u64| format!("is {size} bytes, more than MaxPlistBytes ({max}); refused");
    // O_NONBLOCK: if the name became a FIFO since the stat, opening it
    // must not wait for a writer.
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fd = openat(dirfd, name, flags, Mode::empty()).map_err(|e| match e {
        Errno::ELOOP => refused_link(dirfd, name),
        e => format!("cannot open: {}", io_error(e)),
    })?;
    let file = File::from(fd);
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot stat the opened file: {e}"))?;
    if !meta.is_file() {
        return Err(
            "changed into something other than a regular file while being opened; refused".into(),
        );
    }
    if meta.len() > max {
        return Err(too_big(meta.len()));
    }
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(format!(
            "grew past MaxPlistBytes ({max}) while being read; refused"
        ));
    }
    Ok((bytes, meta.uid()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests;
