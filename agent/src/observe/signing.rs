//! Code signatures by executable: a cache so each executable is checked
//! once per version of the file. The check itself (running `codesign`) is
//! the platform's ([`crate::platform::Platform::check_signature`]; on
//! macOS `platform::signing`).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::model::{Signature, SignatureStatus};

/// Which version of a file a cached signature belongs to. Besides the
/// path, device, inode, size and mtime the brief asks for, the ctime is
/// kept: `utimes` can put an old mtime back after a rewrite, but nothing
/// unprivileged can set the ctime.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileVersion {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileVersion {
    fn of(path: &Path) -> Option<FileVersion> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileVersion {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

/// Number of executables a default cache remembers.
pub const DEFAULT_CAPACITY: usize = 4096;

/// Signatures by executable, valid while the file is unchanged. Shared by
/// the daemon's threads; the lock is never held while `codesign` runs.
#[derive(Debug)]
pub struct SignatureCache {
    capacity: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    entries: HashMap<PathBuf, (FileVersion, Signature)>,
    /// Insertion order of the keys of `entries`, oldest first, for eviction.
    order: VecDeque<PathBuf>,
}

impl Default for SignatureCache {
    fn default() -> SignatureCache {
        SignatureCache::new(DEFAULT_CAPACITY)
    }
}

impl SignatureCache {
    pub fn new(capacity: usize) -> SignatureCache {
        SignatureCache {
            capacity: capacity.max(1),
            inner: Mutex::new(CacheInner::default()),
        }
    }

    /// Number of cached signatures.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        // A panic elsewhere cannot leave the map half-updated in a way that
        // matters (worst case a stale entry is re-checked), so keep going.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The signature of `path`, from the cache when the file is the same
    /// version as when it was checked, else from `check` (then cached).
    ///
    /// A path whose metadata cannot be read is `Unknown` without running
    /// `check`. `Unknown` results are not cached (a timeout deserves a
    /// retry), nor are results for a file that changed while `check` ran.
    pub fn get_or_check(&self, path: &Path, check: impl FnOnce(&Path) -> Signature) -> Signature {
        let Some(before) = FileVersion::of(path) else {
            return Signature::unknown();
        };
        if let Some((version, sig)) = self.lock().entries.get(path)
            && *version == before
        {
            return sig.clone();
        }
        let sig = check(path);
        if sig.status == SignatureStatus::Unknown || FileVersion::of(path) != Some(before.clone()) {
            return sig;
        }
        let mut inner = self.lock();
        let key = path.to_path_buf();
        if inner
            .entries
            .insert(key.clone(), (before, sig.clone()))
            .is_none()
        {
            inner.order.push_back(key);
            while inner.entries.len() > self.capacity {
                let Some(old) = inner.order.pop_front() else {
                    break;
                };
                inner.entries.remove(&old);
            }
        }
        sig
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn valid(id: &str) -> Signature {
        Signature {
            status: SignatureStatus::Valid,
            identifier: Some(id.into()),
            ..Signature::unknown()
        }
    }

    #[test]
    fn cache_rechecks_only_changed_files() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("helper");
        std::fs::write(&exe, b"version one").unwrap();
        let cache = SignatureCache::new(8);
        let runs = AtomicUsize::new(0);
        let check = |_: &Path| {
            runs.fetch_add(1, Ordering::SeqCst);
            valid("x")
        };
        assert_eq!(cache.get_or_check(&exe, check), valid("x"));
        assert_eq!(cache.get_or_check(&exe, check), valid("x"));
        assert_eq!(runs.load(Ordering::SeqCst), 1, "unchanged file re-checked");

        std::fs::write(&exe, b"version two, longer").unwrap();
        cache.get_or_check(&exe, check);
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "rewritten file not re-checked"
        );

        // Same size, replaced by rename: a new inode.
        let tmp = dir.path().join("helper.new");
        std::fs::write(&tmp, b"version THREE,longer").unwrap();
        std::fs::rename(&tmp, &exe).unwrap();
        cache.get_or_check(&exe, check);
        assert_eq!(
            runs.load(Ordering::SeqCst),
            3,
            "replaced file not re-checked"
        );
        cache.get_or_check(&exe, check);
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn cache_skips_unknown_and_missing_and_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let cache = SignatureCache::new(2);
        let runs = AtomicUsize::new(0);
        let gone = dir.path().join("gone");
        let sig = cache.get_or_check(&gone, |_| {
            runs.fetch_add(1, Ordering::SeqCst);
            valid("x")
        });
        assert_eq!(sig, Signature::unknown());
        assert_eq!(runs.load(Ordering::SeqCst), 0);

        let a = dir.path().join("a");
        std::fs::write(&a, b"a").unwrap();
        cache.get_or_check(&a, |_| Signature::unknown());
        assert!(cache.is_empty(), "Unknown must be retried, not cached");

        for name in ["a", "b", "c"] {
            let p = dir.path().join(name);
            std::fs::write(&p, name).unwrap();
            cache.get_or_check(&p, |_| valid(name));
        }
        assert_eq!(cache.len(), 2);
        // `a` was evicted first: checking it again runs the check.
        let again = cache.get_or_check(&a, |_| valid("a2"));
        assert_eq!(again, valid("a2"));
    }

    #[test]
    fn cache_is_shareable_across_threads() {
        fn assert_sync<T: Send + Sync>() {}
        assert_sync::<SignatureCache>();
    }
}
