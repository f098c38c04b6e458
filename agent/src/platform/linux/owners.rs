//! Which processes hold which sockets: the expensive half of
//! `listeners()`. Linux has no "owner of inode N" query; the only way is to
//! read every `/proc/<pid>/fd/*` symlink and look for `socket:[N]`.
//!
//! Why it is written by hand at the syscall level: `procfs` and `ss` both
//! do this walk, but allocate per fd, stat or read `/proc/<pid>/stat` per
//! process, and use one core. Here each worker reuses one directory buffer
//! and one 64-byte link buffer (`getdents64` + `readlinkat` relative to an
//! open `/proc` and `/proc/<pid>/fd`, no path strings, no `stat`), and the
//! PIDs are shared out to every core through an atomic cursor. Kernel
//! threads cost one `openat` + one `getdents64` (their fd table is empty),
//! which is cheaper than reading their stat to find out they are kernel
//! threads.

use std::collections::HashMap;
use std::ffi::{CStr, OsStr};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::fs::{CWD, Mode, OFlags, RawDir, openat, readlinkat, readlinkat_raw};
use rustix::io::Errno;

use super::procfs::parse_socket_link;
use crate::platform::PlatformError;

/// PIDs handed to a worker at a time: small enough to balance a few
/// processes with thousands of fds, big enough to keep the cursor cold.
const BATCH: usize = 8;
/// Below this many processes a second thread costs more than it saves.
const MIN_PIDS_PER_THREAD: usize = 64;

/// Which paths a walk also looks for: the `CameraDevices` globs.
pub type PathFilter<'a> = &'a (dyn Fn(&Path) -> bool + Sync);

/// What one walk found.
#[derive(Debug, Default)]
pub struct Walked {
    /// Each target inode → every PID holding it, ascending.
    pub owners: HashMap<u64, Vec<u32>>,
    /// (PID, path) for every descriptor on an absolute path the filter
    /// accepted, sorted, each pair once.
    pub paths: Vec<(u32, PathBuf)>,
}

/// Map each inode in `targets` to every PID holding it, ascending. PIDs we
/// may not inspect (another user's, without privilege) are silently
/// absent: `Listener::pids` documents that an empty list means invisible.
pub fn owners(targets: &[u64]) -> Result<HashMap<u64, Vec<u32>>, PlatformError> {
    Ok(owners_in(targets, None, None)?.owners)
}

/// [`owners`], and in the same pass which processes hold a path `wanted`
/// accepts open. `lenscap scan` wants both the listeners' owners and the
/// camera devices' holders; each is a read of every descriptor of every
/// process, so reading them once halves the scan's biggest cost.
pub fn owners_and_paths(targets: &[u64], wanted: PathFilter<'_>) -> Result<Walked, PlatformError> {
    owners_in(targets, None, Some(wanted))
}

/// [`owners`], reading only the descriptors of `among` (those that still
/// exist): the daemon's refresh of known sockets' owners, which need not
/// look at processes whose descriptors it read before.
pub fn owners_among(
    targets: &[u64],
    among: &std::collections::BTreeSet<u32>,
) -> Result<HashMap<u64, Vec<u32>>, PlatformError> {
    Ok(owners_in(targets, Some(among), None)?.owners)
}

/// The thread-group leaders in `/proc` now.
pub fn process_ids() -> Result<std::collections::BTreeSet<u32>, PlatformError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let proc_dir = openat(CWD, c"/proc", flags, Mode::empty())
        .map_err(|e| PlatformError::io("/proc", e.into()))?;
    let pids = list_pids(proc_dir.as_fd()).map_err(|e| PlatformError::io("/proc", e.into()))?;
    Ok(pids.into_iter().collect())
}

fn owners_in(
    targets: &[u64],
    among: Option<&std::collections::BTreeSet<u32>>,
    wanted: Option<PathFilter<'_>>,
) -> Result<Walked, PlatformError> {
    let mut targets = targets.to_vec();
    targets.sort_unstable();
    targets.dedup();
    let mut walked = Walked::default();
    if targets.is_empty() && wanted.is_none() {
        return Ok(walked);
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let proc_dir = openat(CWD, c"/proc", flags, Mode::empty())
        .map_err(|e| PlatformError::io("/proc", e.into()))?;
    let pids: Vec<u32> = match among {
        None => list_pids(proc_dir.as_fd()).map_err(|e| PlatformError::io("/proc", e.into()))?,
        Some(among) => among.iter().copied().collect(),
    };

    // available_parallelism reads cgroup files each call; the CPU count
    // of a running agent does not change often enough to matter.
    static CPUS: OnceLock<usize> = OnceLock::new();
    let cpus = *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from));
    let threads = cpus.min(pids.len() / MIN_PIDS_PER_THREAD).max(1);
    let cursor = AtomicUsize::new(0);
    let work = || walk(proc_dir.as_fd(), &pids, &cursor, &targets, wanted);
    let found: Found = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads)
            .map(|_| super::cpus::spawn_beside(s, work))
            .collect();
        let mut found = work();
        for h in helpers {
            // A worker only panics on a bug; its share is then lost, not
            // the whole answer.
            if let Ok(more) = h.join() {
                found.sockets.extend(more.sockets);
                found.paths.extend(more.paths);
            }
        }
        found
    });
    let map = &mut walked.owners;
    for (inode, pid) in found.sockets {
        map.entry(inode).or_default().push(pid);
    }
    for pids in map.values_mut() {
        pids.sort_unstable();
        pids.dedup();
    }
    walked.paths = found.paths;
    walked.paths.sort();
    walked.paths.dedup();
    Ok(walked)
}

/// One worker's finds: (inode, PID) and (PID, path).
#[derive(Debug, Default)]
struct Found {
    sockets: Vec<(u64, u32)>,
    paths: Vec<(u32, PathBuf)>,
}

/// Numeric entries of `/proc`: thread-group leaders (threads live under
/// `/proc/<pid>/task` and share their leader's fd table).
fn list_pids(proc_dir: BorrowedFd<'_>) -> rustix::io::Result<Vec<u32>> {
    let mut buf = Vec::with_capacity(32 * 1024);
    let mut dir = RawDir::new(proc_dir, buf.spare_capacity_mut());
    let mut pids = Vec::with_capacity(512);
    while let Some(entry) = dir.next() {
        if let Some(pid) = parse_pid(entry?.file_name()) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

fn parse_pid(name: &CStr) -> Option<u32> {
    let bytes = name.to_bytes();
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// One worker: take batches of PIDs until none are left.
fn walk(
    proc_dir: BorrowedFd<'_>,
    pids: &[u32],
    cursor: &AtomicUsize,
    targets: &[u64],
    wanted: Option<PathFilter<'_>>,
) -> Found {
    let mut found = Found::default();
    let mut dir_buf: Vec<MaybeUninit<u8>> = Vec::with_capacity(16 * 1024);
    dir_buf.resize(16 * 1024, MaybeUninit::uninit());
    loop {
        let start = cursor.fetch_add(BATCH, Ordering::Relaxed);
        let Some(batch) = pids.get(start..(start + BATCH).min(pids.len())) else {
            return found;
        };
        if batch.is_empty() {
            return found;
        }
        for &pid in batch {
            scan_pid(proc_dir, pid, targets, wanted, &mut dir_buf, &mut found);
        }
    }
}

/// Look through one process's fds for target sockets (and wanted paths).
/// A process that exits mid-walk, or that we may not inspect, simply
/// contributes nothing.
fn scan_pid(
    proc_dir: BorrowedFd<'_>,
    pid: u32,
    targets: &[u64],
    wanted: Option<PathFilter<'_>>,
    dir_buf: &mut [MaybeUninit<u8>],
    found: &mut Found,
) {
    let mut path = [0u8; 24];
    let Some(path) = fd_dir_path(pid, &mut path) else {
        return;
    };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let Ok(fd_dir) = openat(proc_dir, path, flags, Mode::empty()) else {
        return;
    };
    let mut dir = RawDir::new(fd_dir.as_fd(), dir_buf);
    let mut link = [0u8; 64];
    while let Some(entry) = dir.next() {
        let Ok(entry) = entry else { return };
        let name = entry.file_name();
        if name.to_bytes().first() == Some(&b'.') {
            continue;
        }
        let len = match readlinkat_raw(fd_dir.as_fd(), name, &mut link) {
            Ok(len) => len,
            // Access is decided per process (ptrace rules), so one refusal
            // means every fd will be refused: stop asking.
            Err(Errno::ACCESS | Errno::PERM) => return,
            Err(_) => continue, // closed since getdents
        };
        let Some(target) = link.get(..len) else {
            continue;
        };
        if let Some(inode) = parse_socket_link(target) {
            if targets.binary_search(&inode).is_ok() {
                found.sockets.push((inode, pid));
            }
        } else if let Some(wanted) = wanted
            && target.first() == Some(&b'/')
            && let Some(path) = full_path(fd_dir.as_fd(), name, target, link.len())
            && wanted(&path)
        {
            found.paths.push((pid, path));
        }
    }
}

/// An absolute link target as a path. `readlinkat` truncates silently to
/// the buffer, so a target that filled it is read again at full length.
fn full_path(
    fd_dir: BorrowedFd<'_>,
    name: &CStr,
    target: &[u8],
    buf_len: usize,
) -> Option<PathBuf> {
    if target.len() < buf_len {
        return Some(PathBuf::from(OsStr::from_bytes(target)));
    }
    let long = readlinkat(fd_dir, name, Vec::new()).ok()?;
    // The descriptor may have been closed and reused in between.
    let long = long.as_bytes();
    (long.first() == Some(&b'/')).then(|| PathBuf::from(OsStr::from_bytes(long)))
}

/// `"<pid>/fd\0"` in a stack buffer: no allocation per process.
fn fd_dir_path(pid: u32, buf: &mut [u8; 24]) -> Option<&CStr> {
    let mut digits = [0u8; 10];
    let mut n = pid;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let digits = &digits[i..];
    let end = digits.len() + 4;
    buf[..digits.len()].copy_from_slice(digits);
    buf[digits.len()..end].copy_from_slice(b"/fd\0");
    CStr::from_bytes_with_nul(&buf[..end]).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::TcpListener;
    use std::os::fd::AsRawFd;

    fn inode_of(fd: i32) -> u64 {
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        parse_socket_link(link.as_os_str().as_encoded_bytes()).unwrap()
    }

    #[test]
    fn finds_our_own_socket() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let inode = inode_of(l.as_raw_fd());
        let map = owners(&[inode, inode]).unwrap();
        assert_eq!(map.get(&inode), Some(&vec![std::process::id()]));
        assert!(owners(&[]).unwrap().is_empty());
        // An inode nobody holds maps to nothing.
        assert!(owners(&[u64::MAX]).unwrap().is_empty());
    }

    #[test]
    fn finds_paths_held_open_in_the_same_walk() {
        let dir = tempfile::tempdir().unwrap();
        // Longer than the 64-byte link buffer: read again at full length.
        let long = dir.path().join(format!("video-{}", "x".repeat(80)));
        let short = dir.path().join("video0");
        let other = dir.path().join("other");
        for p in [&long, &short, &other] {
            std::fs::write(p, b"").unwrap();
        }
        let _held: Vec<std::fs::File> = [&long, &short, &other]
            .iter()
            .map(|p| std::fs::File::open(p).unwrap())
            .collect();
        let _again = std::fs::File::open(&short).unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let inode = inode_of(l.as_raw_fd());
        let wanted = |p: &Path| p.starts_with(dir.path()) && p != other;
        let walked = owners_and_paths(&[inode], &wanted).unwrap();
        let me = std::process::id();
        assert_eq!(walked.owners.get(&inode), Some(&vec![me]));
        // Each (pid, path) once, however many descriptors, sorted.
        let mine: Vec<&PathBuf> = walked
            .paths
            .iter()
            .filter(|(pid, _)| *pid == me)
            .map(|(_, p)| p)
            .collect();
        let mut expected = vec![&long, &short];
        expected.sort();
        assert_eq!(mine, expected);
        // Paths only, no sockets wanted: the walk still runs.
        let walked = owners_and_paths(&[], &wanted).unwrap();
        assert!(walked.owners.is_empty());
        assert!(
            walked
                .paths
                .iter()
                .any(|(pid, p)| *pid == me && *p == short)
        );
    }

    #[test]
    fn a_forked_child_is_an_owner_too() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let inode = inode_of(l.as_raw_fd());
        // The child inherits a copy of the listening socket (`dup` does
        // not set close-on-exec) and sleeps holding it.
        let inherited = rustix::io::dup(&l).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        drop(inherited);
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let owners = loop {
            let o = owners(&[inode]).unwrap().remove(&inode).unwrap_or_default();
            if o.contains(&pid) || std::time::Instant::now() > deadline {
                break o;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let _ = child.kill();
        let _ = child.wait();
        // Other tests' children may inherit the copy too while it exists:
        // only the two processes this test made are asserted.
        assert!(owners.contains(&std::process::id()), "{owners:?}");
        assert!(owners.contains(&pid), "{owners:?}");
    }

    #[test]
    fn pid_paths() {
        let mut buf = [0u8; 24];
        assert_eq!(fd_dir_path(0, &mut buf).unwrap().to_bytes(), b"0/fd");
        assert_eq!(
            fd_dir_path(4_194_304, &mut buf).unwrap().to_bytes(),
            b"4194304/fd"
        );
        assert_eq!(
            fd_dir_path(u32::MAX, &mut buf).unwrap().to_bytes(),
            b"4294967295/fd"
        );
        assert_eq!(parse_pid(c"123"), Some(123));
        assert_eq!(parse_pid(c"self"), None);
        assert_eq!(parse_pid(c""), None);
    }

    proptest! {
        #[test]
        fn fd_dir_path_is_decimal(pid in any::<u32>()) {
            let mut buf = [0u8; 24];
            let path = fd_dir_path(pid, &mut buf).unwrap().to_str().unwrap().to_string();
            prop_assert_eq!(path, format!("{pid}/fd"));
        }
    }
}
