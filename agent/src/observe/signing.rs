//! Code signatures by executable: a cache so each executable is checked
//! once per version of the file. The check itself (running `codesign`) is
//! the platform's ([`crate::platform::Platform::check_signature`]; on
//! macOS `platform::signing`).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

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

/// First wait before an inconclusive check of one file version is run
/// again; it doubles with each further inconclusive run, up to
/// [`UNKNOWN_RETRY_MAX`].
pub const UNKNOWN_RETRY_FIRST: Duration = Duration::from_secs(60);
/// Longest wait between retries of an inconclusive check.
pub const UNKNOWN_RETRY_MAX: Duration = Duration::from_secs(3600);

/// The wait after `failures` consecutive inconclusive checks (1, 2, …).
pub fn unknown_retry_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    UNKNOWN_RETRY_FIRST
        .saturating_mul(1u32 << doublings)
        .min(UNKNOWN_RETRY_MAX)
}

/// An inconclusive check remembered for one file version: not retried
/// before `retry_at`.
#[derive(Debug, Clone)]
struct Inconclusive {
    version: FileVersion,
    failures: u32,
    retry_at: std::time::Instant,
}

#[derive(Debug, Default)]
struct CacheInner {
    /// Inconclusive (`Unknown`) results, by path, with their backoff. A
    /// `codesign --verify` that times out on a large bundle would
    /// otherwise run again every sweep.
    inconclusive: HashMap<PathBuf, Inconclusive>,
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
    /// `check`. An `Unknown` result (a timeout, a codesign that could not
    /// decide) is retried, but with backoff: not before
    /// [`unknown_retry_after`] has passed for that file version (1 min,
    /// doubling to 1 h); a changed file is checked at once. Results for a
    /// file that changed while `check` ran are not kept.
    pub fn get_or_check(&self, path: &Path, check: impl FnOnce(&Path) -> Signature) -> Signature {
        self.get_or_check_at(path, std::time::Instant::now(), check)
    }

    /// [`SignatureCache::get_or_check`] at a given time (tests stage the
    /// backoff with it).
    pub fn get_or_check_at(
        &self,
        path: &Path,
        now: std::time::Instant,
        check: impl FnOnce(&Path) -> Signature,
    ) -> Signature {
        let Some(before) = FileVersion::of(path) else {
            return Signature::unknown();
        };
        let mut earlier_failures = 0;
        {
            let inner = self.lock();
            if let Some((version, sig)) = inner.entries.get(path)
                && *version == before
            {
                return sig.clone();
            }
            if let Some(unknown) = inner.inconclusive.get(path)
                && unknown.version == before
            {
                if now < unknown.retry_at {
                    return Signature::unknown();
                }
                earlier_failures = unknown.failures;
            }
        }
        let sig = check(path);
        if FileVersion::of(path) != Some(before.clone()) {
            return sig;
        }
        if sig.status == SignatureStatus::Unknown {
            let failures = earlier_failures.saturating_add(1);
            let mut inner = self.lock();
            if !inner.inconclusive.contains_key(path) && inner.inconclusive.len() >= self.capacity {
                // Bounded like the entries: forget an arbitrary old one
                // (at worst it is checked again sooner).
                if let Some(old) = inner.inconclusive.keys().next().cloned() {
                    inner.inconclusive.remove(&old);
                }
            }
            inner.inconclusive.insert(
                path.to_path_buf(),
                Inconclusive {
                    version: before,
                    failures,
                    retry_at: now + unknown_retry_after(failures),
                },
            );
            return sig;
        }
        let mut inner = self.lock();
        inner.inconclusive.remove(path);
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

    #[test]
    fn inconclusive_checks_are_retried_with_backoff() {
        use std::time::Instant;
        let dir = tempfile::tempdir().unwrap();
        let cache = SignatureCache::new(8);
        let runs = AtomicUsize::new(0);
        let big = dir.path().join("Big.app-binary");
        std::fs::write(&big, b"v1").unwrap();
        // A verify that times out every time: Unknown.
        let timeout = |_: &Path| {
            runs.fetch_add(1, Ordering::SeqCst);
            Signature::unknown()
        };
        let t0 = Instant::now();
        assert_eq!(
            cache.get_or_check_at(&big, t0, timeout),
            Signature::unknown()
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Next sweeps within the first minute: no codesign run.
        for secs in [5, 30, 59] {
            cache.get_or_check_at(&big, t0 + Duration::from_secs(secs), timeout);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "retried inside the backoff");
        // After a minute: tried again, still inconclusive → wait doubles.
        let t1 = t0 + Duration::from_secs(60);
        cache.get_or_check_at(&big, t1, timeout);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        cache.get_or_check_at(&big, t1 + Duration::from_secs(119), timeout);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        let t2 = t1 + Duration::from_secs(120);
        // This time codesign finishes: the answer is cached for good.
        let sig = cache.get_or_check_at(&big, t2, |_| {
            runs.fetch_add(1, Ordering::SeqCst);
            valid("TEAMID1234")
        });
        assert_eq!(sig, valid("TEAMID1234"));
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        cache.get_or_check_at(&big, t2 + Duration::from_secs(1), timeout);
        assert_eq!(runs.load(Ordering::SeqCst), 3);

        // A changed file is checked at once, backoff or not.
        let other = dir.path().join("other");
        std::fs::write(&other, b"1").unwrap();
        cache.get_or_check_at(&other, t0, timeout);
        std::fs::write(&other, b"22").unwrap();
        cache.get_or_check_at(&other, t0 + Duration::from_secs(1), timeout);
        assert_eq!(runs.load(Ordering::SeqCst), 5);

        assert_eq!(unknown_retry_after(1), Duration::from_secs(60));
        assert_eq!(unknown_retry_after(3), Duration::from_secs(240));
        assert_eq!(unknown_retry_after(40), UNKNOWN_RETRY_MAX);
    }
}
