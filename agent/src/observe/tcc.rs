//! Privacy grants from every TCC database the configuration names
//! (`TCCDatabases`: the system database and one per user home), for
//! `lenscap scan` ([`read_all`]) and for the daemon ([`TccTracker`]).
//!
//! Reading one database is `parse::tcc::read_grants`; this module decides
//! *which* files to read, *when* to read them again, and turns failures into
//! [`TccProblem`]s an administrator can act on:
//!
//! - A database that does not exist is not a problem: Linux has none, and a
//!   user who never answered a privacy prompt may have none either.
//! - Permission errors (`EPERM`/`EACCES`) mean the agent lacks Full Disk
//!   Access, which root alone does not give; the problem says so and names
//!   the profile that grants it.
//! - Glob patterns are expanded only up to their last wildcard component,
//!   and the literal rest is joined on: the `glob` crate drops a literal
//!   component it cannot `stat`, which would hide exactly the permission
//!   error we must report.
//!
//! The tracker re-reads a database only when its *stamp* changed (device,
//! inode, size and mtime of `TCC.db` and of `TCC.db-wal`): a `stat` is
//! cheap, opening SQLite and perhaps copying the file is not. A stamp whose
//! mtime is within [`RACY_WINDOW`] of the clock is not trusted ("racy git"):
//! file systems stamp mtimes with a coarse clock, so a write landing in the
//! same tick as our read would leave size and mtime unchanged. Such a
//! database is read once more on the next poll, when its stamp has settled.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::config::Config;
use crate::model::{GrantObservation, TccAuth, TccClientType, TccGrant, TccService};
use crate::parse::tcc::{FDA_PROFILE, TccError, TccReadOptions, read_grants};

/// `ScanError::source` for TCC problems.
pub const SOURCE: &str = "tcc";

/// A stamp this close to the clock may still change without its size or
/// mtime moving (see the module documentation).
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// How long a database that failed to read waits before it is tried again
/// with an unchanged stamp (Full Disk Access granted, lock released).
pub const RETRY_FAILED_AFTER: Duration = Duration::from_secs(60);

/// One database (or `TCCDatabases` pattern) that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TccProblem {
    /// The database; for a pattern that is not a valid glob, the pattern.
    pub database: PathBuf,
    /// What went wrong and what to do about it, in plain words.
    pub detail: String,
    /// The operating system refused access (`EPERM`/`EACCES`): on macOS,
    /// the agent lacks Full Disk Access.
    pub permission: bool,
}

/// Everything one [`read_all`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TccRead {
    /// Sorted by database, then service, client and client type.
    pub grants: Vec<GrantObservation>,
    pub problems: Vec<TccProblem>,
}

/// Read every database `config.tcc_databases` matches, once. No grant is
/// `new`: a single read has nothing to compare with. `scratch` is where a
/// locked or WAL-mode database is copied to be read (system temp when
/// `None`; a private 0700 directory is made inside it either way).
pub fn read_all(config: &Config, scratch: Option<&Path>) -> TccRead {
    let opts = read_options(scratch);
    let (paths, mut problems) = databases(&config.tcc_databases);
    let mut grants = Vec::new();
    for path in paths {
        match read_one(&path, &opts) {
            Outcome::Absent => {}
            Outcome::Read(read) => grants.extend(read.into_iter().map(|grant| GrantObservation {
                client_exists: client_exists(&grant),
                grant,
                database: path.clone(),
                new: false,
            })),
            Outcome::Problem(p) => problems.push(p),
        }
    }
    TccRead { grants, problems }
}

/// A path client's program: there or gone (lstat, so a link planted in
/// its place counts as there). A bundle-id client says nothing about where
/// its app is, so `None`. Asked on every poll, so a program deleted since
/// the grant shows at the next sweep (the judge calls such a grant's app
/// gone).
fn client_exists(g: &TccGrant) -> Option<bool> {
    (g.client_type == TccClientType::Path).then(|| Path::new(&g.client).symlink_metadata().is_ok())
}

/// What one [`TccTracker::poll`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TccPoll {
    /// Every grant currently known, with `new` set (sorted as in [`TccRead`]).
    pub grants: Vec<GrantObservation>,
    /// Grants (including their `new` flags) or problems differ from the
    /// previous poll.
    pub changed: bool,
    /// Problems not reported by an earlier poll.
    pub problems_new: Vec<TccProblem>,
    /// Databases (or patterns) whose earlier problem is gone.
    pub problems_cleared: Vec<PathBuf>,
    /// The per-user databases are out of reach despite Full Disk Access
    /// ([`reach`]): grants come from tccd's log messages instead.
    pub out_of_reach: bool,
}

/// What identifies a grant across reads (as in `parse::tcc::diff`).
type GrantKey = (TccService, String, TccClientType);

fn key(grant: &TccGrant) -> GrantKey {
    (grant.service, grant.client.clone(), grant.client_type)
}

/// The daemon's view of the TCC databases across polls.
#[derive(Debug)]
pub struct TccTracker {
    dbs: BTreeMap<PathBuf, DbState>,
    /// Problems reported and not yet cleared, by database or pattern.
    reported: BTreeMap<PathBuf, TccProblem>,
    last_grants: Vec<GrantObservation>,
    reads: u64,
    retry_failed_after: Duration,
}

#[derive(Debug, Default)]
struct DbState {
    /// Stamp when last read; `None` when it could not be taken or was racy,
    /// which makes the next poll read again.
    stamp: Option<Stamp>,
    attempted_at: Option<Instant>,
    problem: Option<TccProblem>,
    grants: Vec<TccGrant>,
    /// The first successful read: what was there before we watched.
    baseline: Option<BTreeMap<GrantKey, TccAuth>>,
    /// Grants that appeared (or began allowing access) since the baseline;
    /// they stay new for the tracker's life.
    new_keys: BTreeSet<GrantKey>,
}

impl Default for TccTracker {
    fn default() -> Self {
        TccTracker::new()
    }
}

impl TccTracker {
    pub fn new() -> TccTracker {
        TccTracker {
            dbs: BTreeMap::new(),
            reported: BTreeMap::new(),
            last_grants: Vec::new(),
            reads: 0,
            retry_failed_after: RETRY_FAILED_AFTER,
        }
    }

    /// How long a failed database waits to be read again when its stamp
    /// has not changed (default [`RETRY_FAILED_AFTER`]).
    pub fn with_retry_failed_after(mut self, after: Duration) -> TccTracker {
        self.retry_failed_after = after;
        self
    }

    /// How many database reads (SQLite opens) the tracker has made: for
    /// the health report, and to check that unchanged files are not read.
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// The problems reported and not yet cleared.
    pub fn problems(&self) -> Vec<TccProblem> {
        self.reported.values().cloned().collect()
    }

    /// Stat every configured database, read those that changed, and report
    /// what is new. Blocking (SQLite, file copies): call it off the async
    /// runtime.
    pub fn poll(&mut self, config: &Config, scratch: Option<&Path>) -> TccPoll {
        let opts = read_options(scratch);
        let (paths, glob_problems) = databases(&config.tcc_databases);
        let now = Instant::now();
        for path in &paths {
            let state = self.dbs.entry(path.clone()).or_default();
            let seen = match Stamp::of(path) {
                Err(Absent) => {
                    *state = DbState {
                        baseline: state.baseline.take(),
                        new_keys: std::mem::take(&mut state.new_keys),
                        ..DbState::default()
                    };
                    continue;
                }
                Ok(seen) => seen,
            };
            let retry_due = state
                .attempted_at
                .is_none_or(|at| now.duration_since(at) >= self.retry_failed_after);
            let due = if state.problem.is_some() {
                retry_due || (seen.is_some() && seen != state.stamp)
            } else {
                state.attempted_at.is_none() || seen.is_none() || seen != state.stamp
            };
            if !due {
                continue;
            }
            self.reads += 1;
            state.attempted_at = Some(now);
            state.stamp = seen.filter(|s| !s.racy(SystemTime::now()));
            match read_one(path, &opts) {
                Outcome::Absent => {
                    state.stamp = None;
                    state.problem = None;
                    state.grants.clear();
                }
                Outcome::Problem(p) => {
                    // Keep the last good grants: a locked or briefly
                    // unreadable database has not lost them.
                    state.problem = Some(p);
                }
                Outcome::Read(grants) => {
                    state.problem = None;
                    state.observe(&grants);
                    state.grants = grants;
                }
            }
        }
        // Databases no longer matched (deleted home, changed config).
        for (path, state) in &mut self.dbs {
            if !paths.contains(path) {
                state.grants.clear();
                state.problem = None;
                state.stamp = None;
                state.attempted_at = None;
            }
        }

        let current: BTreeMap<PathBuf, TccProblem> = glob_problems
            .into_iter()
            .chain(self.dbs.values().filter_map(|s| s.problem.clone()))
            .map(|p| (p.database.clone(), p))
            .collect();
        let read_ok: BTreeSet<PathBuf> = self
            .dbs
            .iter()
            .filter(|(path, s)| {
                paths.contains(*path) && s.problem.is_none() && s.baseline.is_some()
            })
            .map(|(path, _)| path.clone())
            .collect();
        let (current, out_of_reach) = reach::collapse(&config.tcc_databases, &read_ok, current);
        let problems_new: Vec<TccProblem> = current
            .values()
            .filter(|p| self.reported.get(&p.database) != Some(p))
            .cloned()
            .collect();
        let problems_cleared: Vec<PathBuf> = self
            .reported
            .keys()
            .filter(|db| !current.contains_key(*db))
            .cloned()
            .collect();
        self.reported = current;

        let grants: Vec<GrantObservation> = self
            .dbs
            .iter()
            .flat_map(|(db, state)| {
                state.grants.iter().map(|g| GrantObservation {
                    grant: g.clone(),
                    database: db.clone(),
                    new: state.new_keys.contains(&key(g)),
                    client_exists: client_exists(g),
                })
            })
            .collect();
        let changed =
            grants != self.last_grants || !problems_new.is_empty() || !problems_cleared.is_empty();
        self.last_grants = grants.clone();
        TccPoll {
            grants,
            changed,
            problems_new,
            problems_cleared,
            out_of_reach,
        }
    }
}

impl DbState {
    fn observe(&mut self, grants: &[TccGrant]) {
        match &self.baseline {
            None => self.baseline = Some(grants.iter().map(|g| (key(g), g.auth)).collect()),
            Some(baseline) => {
                for g in grants {
                    let is_new = baseline
                        .get(&key(g))
                        .is_none_or(|before| !before.grants_access() && g.auth.grants_access());
                    if is_new {
                        self.new_keys.insert(key(g));
                    }
                }
            }
        }
    }
}

/// The database is not there (no file, or a path component is not a
/// directory).
#[derive(Debug)]
struct Absent;

fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// What says a database file changed without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    db: FileStamp,
    wal: Option<FileStamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> FileStamp {
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        }
    }
}

impl Stamp {
    /// `Ok(None)` when the file exists but could not be stat'ed (let the
    /// read report why).
    fn of(path: &Path) -> Result<Option<Stamp>, Absent> {
        let db = match std::fs::symlink_metadata(path) {
            Ok(meta) => FileStamp::of(&meta),
            Err(e) if is_absent(&e) => return Err(Absent),
            Err(_) => return Ok(None),
        };
        let wal = match std::fs::symlink_metadata(sidecar(path, "-wal")) {
            Ok(meta) => Some(FileStamp::of(&meta)),
            Err(e) if is_absent(&e) => None,
            Err(_) => return Ok(None),
        };
        Ok(Some(Stamp { db, wal }))
    }

    fn racy(&self, now: SystemTime) -> bool {
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
            .unwrap_or(0);
        let window = i128::try_from(RACY_WINDOW.as_nanos()).unwrap_or(i128::MAX);
        std::iter::once(self.db)
            .chain(self.wal)
            .any(|f| now - (i128::from(f.mtime.0) * 1_000_000_000 + i128::from(f.mtime.1)) < window)
    }
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

fn read_options(scratch: Option<&Path>) -> TccReadOptions {
    TccReadOptions {
        scratch_dir: scratch.map(Path::to_path_buf),
        ..TccReadOptions::default()
    }
}

enum Outcome {
    Absent,
    Read(Vec<TccGrant>),
    Problem(TccProblem),
}

fn read_one(path: &Path, opts: &TccReadOptions) -> Outcome {
    // `read_grants` opens without O_NONBLOCK; a FIFO planted where a
    // database belongs would block it forever, so only regular files (and
    // symlinks, which it refuses with its own error) get that far.
    match std::fs::symlink_metadata(path) {
        Err(e) if is_absent(&e) => return Outcome::Absent,
        Ok(meta) if !meta.file_type().is_file() && !meta.file_type().is_symlink() => {
            return Outcome::Problem(TccProblem {
                database: path.to_path_buf(),
                detail: format!(
                    "{} is not a regular file, so it is not a TCC database; not read",
                    path.display()
                ),
                permission: false,
            });
        }
        _ => {}
    }
    match read_grants(path, opts) {
        Ok(snapshot) => Outcome::Read(snapshot.grants),
        Err(TccError::NotFound { .. }) => Outcome::Absent,
        Err(TccError::Io { source, path: at }) if at == path && is_absent(&source) => {
            Outcome::Absent
        }
        Err(e) => Outcome::Problem(problem(path, &e)),
    }
}

/// Plain words for a failed read.
fn problem(database: &Path, err: &TccError) -> TccProblem {
    let db = database.display();
    let (detail, permission) = match err {
        TccError::PermissionDenied { source, .. } => (
            format!(
                "cannot read TCC database {db} ({source}): lenscap does not have Full Disk \
                 Access, which root alone does not give. Deploy the configuration profile \
                 {FDA_PROFILE} (PPPC payload, service SystemPolicyAllFiles) through MDM, or \
                 grant lenscap Full Disk Access in System Settings > Privacy & Security"
            ),
            true,
        ),
        TccError::Corrupt { source, .. } => (
            format!(
                "TCC database {db} is corrupt ({source}); its grants cannot be read until \
                 macOS repairs or replaces it"
            ),
            false,
        ),
        TccError::NotADatabase { .. } => (
            format!("{db} is corrupt or not an SQLite database, so its grants cannot be read"),
            false,
        ),
        TccError::Locked { attempts, .. } => (
            format!(
                "TCC database {db} is locked: tccd was writing it and {attempts} private \
                 copies were inconsistent; it will be read again"
            ),
            false,
        ),
        // `Io` on the database itself is classified as `PermissionDenied`
        // by the reader; what is left (the scratch directory, SQLite) is not
        // about Full Disk Access.
        other => (other.to_string(), false),
    };
    TccProblem {
        database: database.to_path_buf(),
        detail,
        permission,
    }
}

/// The files `patterns` name, and the patterns or directories that could
/// not be expanded.
fn databases(patterns: &[String]) -> (BTreeSet<PathBuf>, Vec<TccProblem>) {
    let mut paths = BTreeSet::new();
    let mut problems = Vec::new();
    for pattern in patterns {
        expand(pattern, &mut paths, &mut problems);
    }
    (paths, problems)
}

fn has_wildcard(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

fn expand(pattern: &str, paths: &mut BTreeSet<PathBuf>, problems: &mut Vec<TccProblem>) {
    let components: Vec<Component<'_>> = Path::new(pattern).components().collect();
    let last_wild = components
        .iter()
        .rposition(|c| c.as_os_str().to_str().is_some_and(has_wildcard));
    let Some(last_wild) = last_wild else {
        paths.insert(PathBuf::from(pattern));
        return;
    };
    let prefix: PathBuf = components[..=last_wild].iter().collect();
    let rest: PathBuf = components[last_wild + 1..].iter().collect();
    let Some(prefix_text) = prefix.to_str() else {
        return;
    };
    let matches = match glob::glob(prefix_text) {
        Ok(m) => m,
        Err(e) => {
            problems.push(TccProblem {
                database: PathBuf::from(pattern),
                detail: format!("TCCDatabases entry {pattern:?} is not a valid glob: {e}"),
                permission: false,
            });
            return;
        }
    };
    for entry in matches {
        match entry {
            Ok(found) if rest.as_os_str().is_empty() => {
                paths.insert(found);
            }
            // `/Users/*` also matches files such as `/Users/.localized`.
            Ok(found) if found.is_dir() => {
                paths.insert(found.join(&rest));
            }
            Ok(_) => {}
            Err(e) => {
                let permission = e.error().kind() == io::ErrorKind::PermissionDenied;
                problems.push(TccProblem {
                    database: e.path().to_path_buf(),
                    detail: format!(
                        "cannot list {} while expanding TCCDatabases entry {pattern:?}: {}{}",
                        e.path().display(),
                        e.error(),
                        if permission {
                            " (lenscap may lack Full Disk Access)"
                        } else {
                            ""
                        }
                    ),
                    permission,
                });
            }
        }
    }
}

pub mod reach;

#[cfg(test)]
mod tests;
