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
use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::fs::{CWD, Mode, OFlags, RawDir, openat, readlinkat_raw};
use rustix::io::Errno;

use super::procfs::parse_socket_link;
use crate::platform::PlatformError;

/// PIDs handed to a worker at a time: small enough to balance a few
/// processes with thousands of fds, big enough to keep the cursor cold.
const BATCH: usize = 8;
/// Below this many processes a second thread costs more than it saves.
const MIN_PIDS_PER_THREAD: usize = 64;

/// Map each inode in `targets` to every PID holding it, ascending. PIDs we
/// may not inspect (another user's, without privilege) are silently
/// absent: `Listener::pids` documents that an empty list means invisible.
pub fn owners(targets: &[u64]) -> Result<HashMap<u64, Vec<u32>>, PlatformError> {
    owners_in(targets, None)
}

/// [`owners`], reading only the descriptors of `among` (those that still
/// exist): the daemon's refresh of known sockets' owners, which need not
/// look at processes whose descriptors it read before.
pub fn owners_among(
    targets: &[u64],
    among: &std::collections::BTreeSet<u32>,
) -> Result<HashMap<u64, Vec<u32>>, PlatformError> {
    owners_in(targets, Some(among))
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
) -> Result<HashMap<u64, Vec<u32>>, PlatformError> {
    let mut targets = targets.to_vec();
    targets.sort_unstable();
    targets.dedup();
    let mut map: HashMap<u64, Vec<u32>> = HashMap::new();
    if targets.is_empty() {
        return Ok(map);
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
    let work = || walk(proc_dir.as_fd(), &pids, &cursor, &targets);
    let found: Vec<(u64, u32)> = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut found = work();
        for h in helpers {
            // A worker only panics on a bug; its share is then lost, not
            // the whole answer.
            if let Ok(more) = h.join() {
                found.extend(more);
            }
        }
        found
    });
    for (inode, pid) in found {
        map.entry(inode).or_default().push(pid);
    }
    for pids in map.values_mut() {
        pids.sort_unstable();
        pids.dedup();
    }
    Ok(map)
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
) -> Vec<(u64, u32)> {
    let mut found = Vec::new();
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
            scan_pid(proc_dir, pid, targets, &mut dir_buf, &mut found);
        }
    }
}

/// Look through one process's fds for target sockets. A process that
/// exits mid-walk, or that we may not inspect, simply contributes nothing.
fn scan_pid(
    proc_dir: BorrowedFd<'_>,
    pid: u32,
    targets: &[u64],
    dir_buf: &mut [MaybeUninit<u8>],
    found: &mut Vec<(u64, u32)>,
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
        if let Some(inode) = link.get(..len).and_then(parse_socket_link)
            && targets.binary_search(&inode).is_ok()
        {
            found.push((inode, pid));
        }
    }
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
