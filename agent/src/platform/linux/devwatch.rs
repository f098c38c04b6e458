//! Camera device opens and closes by inotify, so the camera watch walks
//! `/proc/*/fd` only when a device was opened or closed rather than every
//! sweep (docs/benchmarks.md, "Issue 11": the walk is ~18 ms of CPU at
//! ~400 processes).
//!
//! Each existing path matching a `CameraDevices` glob is watched for
//! `IN_OPEN`, `IN_CLOSE_WRITE` and `IN_CLOSE_NOWRITE` (a camera is opened
//! read-write or read-only; the `notify` crate folds the close kinds
//! together and has no `IN_OPEN` on every backend, hence rustix's inotify
//! directly), and for `IN_DELETE_SELF`/`IN_MOVE_SELF`/`IN_ATTRIB`. The
//! directory holding the nodes is watched for nodes coming and going (a
//! webcam plugged in). inotify watches the inode, so an open through any
//! name of the node (a `/dev/v4l/by-id` symlink) is seen.
//!
//! What it cannot see, and who covers it: a descriptor handed on by
//! `fork` makes no event, and a close fires only when the last descriptor
//! of an open file goes — so while sessions are open the camera watch
//! still walks now and then (`observe/camera_watch.rs`). A second device
//! node for the same device made with `mknod` is another inode; making
//! one needs root.

use std::collections::BTreeSet;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::io::Errno;

use crate::platform::{DeviceWatch, PlatformError};

/// The inotify watches on the camera device nodes and their directories.
#[derive(Debug)]
pub struct DeviceOpens {
    fd: OwnedFd,
    patterns: Vec<String>,
    /// Watch descriptors of the directories (their events mean: glob
    /// again).
    dir_wds: BTreeSet<i32>,
    /// Device paths watched now.
    watched: BTreeSet<PathBuf>,
}

/// The device node events that mean "holders may have changed".
fn node_flags() -> WatchFlags {
    WatchFlags::OPEN
        | WatchFlags::CLOSE_WRITE
        | WatchFlags::CLOSE_NOWRITE
        | WatchFlags::ATTRIB
        | WatchFlags::DELETE_SELF
        | WatchFlags::MOVE_SELF
}

impl DeviceOpens {
    /// Watch the paths matching `patterns` and their directories. Fails
    /// when inotify is unavailable, a pattern is not a valid glob, or a
    /// pattern has a wildcard before its last component (new nodes in
    /// directories that appear later could not be seen): the caller then
    /// walks instead.
    pub fn new(patterns: &[String]) -> Result<DeviceOpens, PlatformError> {
        let fd = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC)
            .map_err(|e| PlatformError::io("inotify_init1", e.into()))?;
        let mut me = DeviceOpens {
            fd,
            patterns: patterns.to_vec(),
            dir_wds: BTreeSet::new(),
            watched: BTreeSet::new(),
        };
        for pattern in patterns {
            let dir = fixed_dir(pattern).ok_or_else(|| PlatformError::Malformed {
                what: "CameraDevices pattern",
                path: PathBuf::from(pattern),
                detail: "a wildcard before the last path component cannot be watched".into(),
            })?;
            let wd = inotify::add_watch(
                &me.fd,
                &dir,
                WatchFlags::CREATE
                    | WatchFlags::DELETE
                    | WatchFlags::MOVED_TO
                    | WatchFlags::MOVED_FROM
                    | WatchFlags::DELETE_SELF
                    | WatchFlags::MOVE_SELF,
            )
            .map_err(|e| PlatformError::io(&dir, e.into()))?;
            me.dir_wds.insert(wd);
        }
        me.glob_again()?;
        Ok(me)
    }

    /// Watch every path the patterns match now that is not watched yet.
    fn glob_again(&mut self) -> Result<(), PlatformError> {
        for pattern in &self.patterns {
            let paths = glob::glob(pattern).map_err(|e| PlatformError::Malformed {
                what: "CameraDevices pattern",
                path: PathBuf::from(pattern),
                detail: e.to_string(),
            })?;
            for path in paths.flatten() {
                if self.watched.contains(&path) {
                    continue;
                }
                // A node that went between the glob and here is no error:
                // its directory's event brings us back.
                if inotify::add_watch(&self.fd, &path, node_flags()).is_ok() {
                    self.watched.insert(path);
                }
            }
        }
        Ok(())
    }
}

impl DeviceWatch for DeviceOpens {
    fn activity(&mut self) -> bool {
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut reader = inotify::Reader::new(self.fd.as_fd(), &mut buf);
        let mut any = false;
        let mut reglob = false;
        loop {
            match reader.next() {
                Ok(event) => {
                    let flags = event.events();
                    if flags.contains(ReadFlags::IGNORED) {
                        // A watched node went away (its watch is gone):
                        // forget it so a new node of that name is watched.
                        reglob = true;
                        any = true;
                        continue;
                    }
                    if flags.contains(ReadFlags::QUEUE_OVERFLOW)
                        || self.dir_wds.contains(&event.wd())
                    {
                        reglob = true;
                    }
                    any = true;
                }
                Err(Errno::WOULDBLOCK) => break,
                Err(Errno::INTR) => continue,
                // Unreadable: say "look", the walk decides.
                Err(_) => return true,
            }
        }
        if reglob {
            self.watched.retain(|p| p.exists());
            if self.glob_again().is_err() {
                return true;
            }
        }
        any
    }
}

/// The directory a glob's matches live in, when only the last component
/// has wildcards: `/dev/video*` → `/dev`.
fn fixed_dir(pattern: &str) -> Option<PathBuf> {
    let path = Path::new(pattern);
    let parent = path.parent()?;
    let wild = |s: &str| s.contains(['*', '?', '[', ']', '{', '}']);
    if wild(&parent.to_string_lossy()) || parent.as_os_str().is_empty() {
        return None;
    }
    Some(parent.to_path_buf())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use std::fs::{File, OpenOptions};

    fn watch(dir: &Path) -> DeviceOpens {
        DeviceOpens::new(&[format!("{}/video*", dir.display())]).unwrap()
    }

    #[test]
    fn open_and_close_of_a_device_are_activity_and_quiet_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("video0");
        File::create(&node).unwrap();
        let mut w = watch(dir.path());
        assert!(!w.activity(), "nothing happened yet");

        // Read-only open and close (IN_OPEN, IN_CLOSE_NOWRITE).
        let f = File::open(&node).unwrap();
        assert!(w.activity(), "an open");
        assert!(!w.activity(), "events are taken once");
        drop(f);
        assert!(w.activity(), "a read-only close");

        // Read-write open and close (IN_CLOSE_WRITE).
        let f = OpenOptions::new().write(true).open(&node).unwrap();
        drop(f);
        assert!(w.activity());
        assert!(!w.activity());

        // Reading the holder's descriptor links, as the walk does, opens
        // nothing: the walk does not wake itself.
        let held = File::open(&node).unwrap();
        assert!(w.activity());
        let _ = std::fs::read_dir("/proc/self/fd").unwrap().count();
        for fd in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
            let _ = std::fs::read_link(fd.path());
        }
        assert!(!w.activity(), "readlink of /proc/<pid>/fd is no open");
        drop(held);
    }

    #[test]
    fn an_open_through_a_symlink_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("video0");
        File::create(&node).unwrap();
        let other = tempfile::tempdir().unwrap();
        let link = other.path().join("by-id-camera");
        std::os::unix::fs::symlink(&node, &link).unwrap();
        let mut w = watch(dir.path());
        drop(File::open(&link).unwrap());
        assert!(w.activity());
    }

    #[test]
    fn a_new_device_is_watched_and_other_files_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = watch(dir.path());
        assert!(!w.activity());
        let node = dir.path().join("video1");
        File::create(&node).unwrap();
        assert!(w.activity(), "a device node appeared");
        drop(File::open(&node).unwrap());
        assert!(w.activity(), "the new node's opens are watched");

        // Opening a file the patterns do not match is no activity.
        let other = dir.path().join("audio0");
        File::create(&other).unwrap();
        assert!(w.activity(), "created in the watched directory");
        drop(File::open(&other).unwrap());
        assert!(!w.activity(), "not a camera device");

        std::fs::remove_file(&node).unwrap();
        assert!(w.activity(), "a device went");
        File::create(&node).unwrap();
        assert!(w.activity());
        drop(File::open(&node).unwrap());
        assert!(
            w.activity(),
            "a node re-created under the same name is watched"
        );
    }

    #[test]
    fn unwatchable_patterns_are_refused() {
        assert!(DeviceOpens::new(&["/dev/*/video*".to_string()]).is_err());
        assert!(DeviceOpens::new(&["video*".to_string()]).is_err());
        let dir = tempfile::tempdir().unwrap();
        let missing = format!("{}/none/video*", dir.path().display());
        assert!(DeviceOpens::new(&[missing]).is_err());
        assert_eq!(fixed_dir("/dev/video*"), Some(PathBuf::from("/dev")));
    }
}
