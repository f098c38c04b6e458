//! Code signatures: running `codesign` to learn one, and a cache so each
//! executable is checked once per version of the file.
//!
//! A signature is built in two steps (see `parse::codesign` for why):
//! `codesign -dv --verbose=4` says what the signature *claims*; then
//! `codesign --verify -R=<requirement>` runs decide what is *true*. Only a
//! passed requirement puts a Team ID into [`Signature::team_id`] or sets
//! [`Signature::platform_binary`]; the claims alone never do.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::model::{Signature, SignatureStatus};
use crate::observe::command;
use crate::parse::codesign::{self, Display, Requirement, SigningInfo, TeamId, VerifyOutcome};

/// codesign's output is a few KiB; anything past this is not a signature.
const MAX_OUTPUT: usize = 64 * 1024;

/// Learn `exe`'s signature with the `codesign` at `codesign`. Each run is
/// bounded by `timeout`. Never fails: what could not be learned is
/// [`SignatureStatus::Unknown`].
pub fn check_with_codesign(codesign: &Path, exe: &Path, timeout: Duration) -> Signature {
    check_with_timeouts(codesign, exe, timeout, timeout)
}

/// [`check_with_codesign`] with separate limits: `display` for `codesign
/// -dv` (reads the signature blob only) and `verify` for each `codesign
/// --verify` (hashes the whole executable; a large bundle can take far
/// longer than 10 s).
///
/// Mac App Store apps: their leaf certificate is Apple's ("Apple Mac OS
/// Application Signing"), whose subject OU is not the developer's Team
/// ID, so the team requirement (`certificate leaf[subject.OU] = …`) is
/// never met and such an app is `Valid` with no confirmed `team_id`. That
/// is deliberate: the TeamIdentifier in a MAS code directory is covered by
/// Apple's signature, but the requirement language has no way to test it,
/// and an unconfirmed team only means no Team-ID allow rule applies (the
/// app is judged by its other facts). Documented in docs/macos-first-run.md.
pub fn check_with_timeouts(
    codesign: &Path,
    exe: &Path,
    display_timeout: Duration,
    verify_timeout: Duration,
) -> Signature {
    let timeout = display_timeout;
    let args = match codesign::display_args(exe) {
        Ok(args) => args,
        Err(err) => {
            tracing::debug!(%err, "not checking signature");
            return Signature::unknown();
        }
    };
    let display = match command::run(codesign, &args, timeout, MAX_OUTPUT) {
        Ok(out) => codesign::parse_display(&out.stderr_lossy()),
        Err(err) => {
            tracing::warn!(%err, path = %exe.display(), "codesign display failed");
            return Signature::unknown();
        }
    };
    let info = match display {
        Display::Signed(info) => info,
        Display::Unsigned => {
            return Signature {
                status: SignatureStatus::Unsigned,
                ..Signature::unknown()
            };
        }
        Display::Failed { message } => {
            tracing::debug!(%message, path = %exe.display(), "codesign could not read a signature");
            return Signature::unknown();
        }
    };
    if info.adhoc {
        // An ad-hoc signature has no certificate chain: no requirement
        // with an anchor can pass, so no verify run is worth its cost, and
        // whatever Team ID it carries is ignored.
        return Signature {
            status: SignatureStatus::AdHoc,
            identifier: info.identifier,
            authorities: info.authorities,
            ..Signature::unknown()
        };
    }

    let verify = |req: Option<&Requirement>| -> VerifyOutcome {
        let Ok(args) = codesign::verify_args(exe, req) else {
            return VerifyOutcome::Inconclusive;
        };
        match command::run(codesign, &args, verify_timeout, MAX_OUTPUT) {
            Ok(out) => VerifyOutcome::from_exit_code(out.code),
            Err(err) => {
                tracing::warn!(%err, path = %exe.display(), "codesign --verify failed");
                VerifyOutcome::Inconclusive
            }
        }
    };
    let platform = info
        .platform_identifier
        .map(|_| verify(Some(&Requirement::AppleAnchor)));
    let team = match info.claimed_team_id.as_deref().map(TeamId::parse) {
        Some(Ok(team)) => {
            let outcome = verify(Some(&Requirement::Team(team.clone())));
            Some((team, outcome))
        }
        Some(Err(err)) => {
            tracing::info!(%err, path = %exe.display(), "claimed Team ID not validated");
            None
        }
        None => None,
    };
    // Nothing to validate against: still learn whether the signature holds.
    let plain = (platform.is_none() && team.is_none()).then(|| verify(None));
    assemble(info, platform, team, plain)
}

/// Combine the claims with the verify outcomes. Any `Invalid` wins (the
/// file failed a check, whatever else passed); otherwise a run that
/// verified the signature (exit 0 or 3) makes it `Valid`; if every run was
/// inconclusive the status is `Unknown`.
pub fn assemble(
    info: SigningInfo,
    platform: Option<VerifyOutcome>,
    team: Option<(TeamId, VerifyOutcome)>,
    plain: Option<VerifyOutcome>,
) -> Signature {
    let outcomes: Vec<VerifyOutcome> = [platform, team.as_ref().map(|t| t.1), plain]
        .into_iter()
        .flatten()
        .collect();
    let status = if outcomes.contains(&VerifyOutcome::Invalid) {
        SignatureStatus::Invalid
    } else if outcomes.iter().any(|o| {
        matches!(
            o,
            VerifyOutcome::Satisfied | VerifyOutcome::RequirementNotMet
        )
    }) {
        SignatureStatus::Valid
    } else {
        SignatureStatus::Unknown
    };
    let valid = status == SignatureStatus::Valid;
    Signature {
        status,
        identifier: info.identifier,
        team_id: team
            .filter(|(_, o)| valid && *o == VerifyOutcome::Satisfied)
            .map(|(t, _)| t.as_str().to_string()),
        platform_binary: valid && platform == Some(VerifyOutcome::Satisfied),
        authorities: info.authorities,
    }
}

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
    use std::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A stand-in `codesign`: prints `display.txt` to stderr for `-dv`, and
    /// for `--verify` exits with the code in `team.code`, `platform.code`
    /// or `plain.code` by which requirement it was given. Every call is
    /// logged to `calls.log`. Behaviour lives in data files beside it, so
    /// the script itself is never rewritten.
    const SHIM: &str = r#"#!/bin/sh
d=$(dirname "$0")
printf '%s\n' "$*" >> "$d/calls.log"
case "$1" in
  -dv)
    [ -f "$d/display.sleep" ] && exec sleep 30
    cat "$d/display.txt" >&2
    exit "$(cat "$d/display.code")" ;;
  --verify)
    case "$2" in
      -R=anchor\ apple\ generic*) exit "$(cat "$d/team.code")" ;;
      -R=anchor\ apple) exit "$(cat "$d/platform.code")" ;;
      *) exit "$(cat "$d/plain.code")" ;;
    esac ;;
esac
exit 2
"#;

    struct Shim {
        dir: tempfile::TempDir,
    }

    impl Shim {
        /// `display`: fixture name; then the exit codes of the display,
        /// team, platform and plain verify runs.
        fn new(display: &str, codes: [i32; 4]) -> Shim {
            let dir = tempfile::tempdir().unwrap();
            let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/codesign")
                .join(display);
            std::fs::copy(&fixture, dir.path().join("display.txt")).unwrap();
            for (name, code) in ["display", "team", "platform", "plain"].iter().zip(codes) {
                std::fs::write(dir.path().join(format!("{name}.code")), code.to_string()).unwrap();
            }
            std::fs::write(dir.path().join("shim.src"), SHIM).unwrap();
            // The executable is created by a child `cp`, never opened for
            // writing by this (multi-threaded) test process: a write fd
            // inherited by a sibling test's fork would make exec fail with
            // ETXTBSY.
            let status = Command::new("/bin/sh")
                .args([
                    "-c",
                    "cp \"$1/shim.src\" \"$1/codesign\" && chmod 755 \"$1/codesign\"",
                ])
                .arg("sh")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success());
            Shim { dir }
        }

        fn codesign(&self) -> PathBuf {
            self.dir.path().join("codesign")
        }

        fn check(&self, exe: &str) -> Signature {
            check_with_codesign(&self.codesign(), Path::new(exe), Duration::from_secs(20))
        }

        fn calls(&self) -> Vec<String> {
            std::fs::read_to_string(self.dir.path().join("calls.log"))
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect()
        }
    }

    const EXE: &str = "/Applications/Example.app/Contents/MacOS/Example";

    #[test]
    fn developer_id_team_validated() {
        let shim = Shim::new("developer_id.txt", [0, 0, 9, 9]);
        let sig = shim.check(EXE);
        assert_eq!(sig.status, SignatureStatus::Valid);
        assert_eq!(sig.team_id.as_deref(), Some("TEAMID1234"));
        assert_eq!(sig.identifier.as_deref(), Some("app.backglance.Backglance"));
        assert!(!sig.platform_binary);
        assert_eq!(sig.authorities.len(), 3);
        assert_eq!(
            shim.calls(),
            vec![
                format!("-dv --verbose=4 {EXE}"),
                format!(
                    "--verify -R=anchor apple generic and certificate leaf[subject.OU] = \"TEAMID1234\" {EXE}"
                ),
            ]
        );
    }

    #[test]
    fn claimed_team_that_fails_verification_is_dropped() {
        // Exit 3: the signature holds but not Apple's chain for this team.
        let sig = Shim::new("developer_id.txt", [0, 3, 9, 9]).check(EXE);
        assert_eq!(sig.status, SignatureStatus::Valid);
        assert_eq!(sig.team_id, None);
        // Exit 1: the signature itself is broken.
        let sig = Shim::new("developer_id.txt", [0, 1, 9, 9]).check(EXE);
        assert_eq!(sig.status, SignatureStatus::Invalid);
        assert_eq!(sig.team_id, None);
        // Exit 2 (or a crash): nothing learned.
        let sig = Shim::new("developer_id.txt", [0, 2, 9, 9]).check(EXE);
        assert_eq!(sig.status, SignatureStatus::Unknown);
        assert_eq!(sig.team_id, None);
    }

    #[test]
    fn apple_platform_binary_needs_the_anchor_check() {
        let shim = Shim::new("platform_textedit.txt", [0, 9, 0, 9]);
        let sig = shim.check("/System/Applications/TextEdit.app/Contents/MacOS/TextEdit");
        assert!(sig.is_apple_platform(), "{sig:?}");
        assert_eq!(sig.team_id, None);
        assert_eq!(shim.calls().len(), 2);
        assert!(shim.calls()[1].starts_with("--verify -R=anchor apple /System/"));

        let forged = Shim::new("platform_textedit.txt", [0, 9, 3, 9]).check(EXE);
        assert_eq!(forged.status, SignatureStatus::Valid);
        assert!(!forged.platform_binary);
    }

    #[test]
    fn xcode_software_signing_is_not_platform() {
        // Anchor apple would pass for Xcode; without `Platform identifier=`
        // the check is not even run.
        let shim = Shim::new("xcode_software_signing.txt", [0, 0, 0, 0]);
        let sig = shim.check("/Applications/Xcode.app/Contents/MacOS/Xcode");
        assert!(!sig.platform_binary);
        assert_eq!(sig.team_id.as_deref(), Some("59GAB85EFG"));
        assert!(
            !shim
                .calls()
                .iter()
                .any(|c| c.starts_with("--verify -R=anchor apple /"))
        );
    }

    #[test]
    fn adhoc_is_never_verified_nor_given_a_team() {
        for fixture in ["adhoc_linker_signed.txt", "adhoc_claims_team.txt"] {
            let shim = Shim::new(fixture, [0, 0, 0, 0]);
            let sig = shim.check(EXE);
            assert_eq!(sig.status, SignatureStatus::AdHoc, "{fixture}");
            assert_eq!(sig.team_id, None, "{fixture}");
            assert!(!sig.platform_binary);
            assert_eq!(shim.calls().len(), 1, "{fixture}: only the display run");
        }
    }

    #[test]
    fn unsigned_missing_and_failing() {
        let sig = Shim::new("unsigned.txt", [1, 0, 0, 0]).check(EXE);
        assert_eq!(sig.status, SignatureStatus::Unsigned);
        let sig = Shim::new("no_such_file.txt", [1, 0, 0, 0]).check(EXE);
        assert_eq!(sig.status, SignatureStatus::Unknown);
        let sig = check_with_codesign(
            Path::new("/nonexistent/codesign"),
            Path::new(EXE),
            Duration::from_secs(1),
        );
        assert_eq!(sig, Signature::unknown());
    }

    #[test]
    fn no_claims_means_a_plain_verify() {
        // Signed, no team, no platform line (an old self-signed app).
        let shim = Shim::new("developer_id.txt", [0, 9, 9, 0]);
        std::fs::write(
            shim.dir.path().join("display.txt"),
            "Identifier=net.notational.velocity\nCodeDirectory v=20100 size=4692 flags=0x0(none) hashes=228+3 location=embedded\nTeamIdentifier=not set\n",
        )
        .unwrap();
        let sig = shim.check(EXE);
        assert_eq!(sig.status, SignatureStatus::Valid);
        assert_eq!(shim.calls()[1], format!("--verify {EXE}"));
    }

    #[test]
    fn injected_team_id_never_reaches_codesign() {
        let shim = Shim::new("developer_id.txt", [0, 0, 0, 0]);
        std::fs::write(
            shim.dir.path().join("display.txt"),
            "Identifier=evil\nCodeDirectory v=20500 size=1 flags=0x0(none) hashes=1+0 location=embedded\nTeamIdentifier=X\" or anchor apple or \"Y\n",
        )
        .unwrap();
        let sig = shim.check(EXE);
        assert_eq!(sig.team_id, None);
        assert!(
            !shim.calls().iter().any(|c| c.contains("or anchor")),
            "{:?}",
            shim.calls()
        );
    }

    #[test]
    fn unsafe_paths_and_timeouts_are_unknown() {
        let shim = Shim::new("developer_id.txt", [0, 0, 0, 0]);
        assert_eq!(shim.check("relative/helper"), Signature::unknown());
        assert_eq!(
            shim.check("/tmp/a\nPlatform identifier=1"),
            Signature::unknown()
        );
        assert!(shim.calls().is_empty());
        std::fs::write(shim.dir.path().join("display.sleep"), "").unwrap();
        let sig = check_with_codesign(&shim.codesign(), Path::new(EXE), Duration::from_millis(300));
        assert_eq!(sig, Signature::unknown());
    }

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

    #[test]
    fn verify_gets_its_own_timeout() {
        // codesign -dv answers at once; --verify takes 1.5 s (a big
        // bundle). A 1 s display limit with a 10 s verify limit validates.
        let dir = tempfile::tempdir().unwrap();
        let codesign = dir.path().join("codesign");
        std::fs::write(
            &codesign,
            "#!/bin/sh\ncase \"$1\" in\n  -dv) printf 'Identifier=x\\nCodeDirectory v=20500 size=1 flags=0x0(none) hashes=1+0 location=embedded\\nTeamIdentifier=not set\\n' >&2; exit 0 ;;\n  *) sleep 1.5; exit 0 ;;\nesac\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&codesign, std::fs::Permissions::from_mode(0o755)).unwrap();
        let exe = dir.path().join("exe");
        std::fs::write(&exe, b"x").unwrap();
        let slow = check_with_timeouts(
            &codesign,
            &exe,
            Duration::from_secs(1),
            Duration::from_secs(10),
        );
        assert_eq!(slow.status, SignatureStatus::Valid);
        let cut = check_with_codesign(&codesign, &exe, Duration::from_secs(1));
        assert_eq!(
            cut.status,
            SignatureStatus::Unknown,
            "one 1 s limit cuts the verify"
        );
    }
}
