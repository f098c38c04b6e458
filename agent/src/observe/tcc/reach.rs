//! "The per-user TCC databases are out of reach": said once, plainly,
//! instead of one "grant Full Disk Access" problem per user.
//!
//! macOS 27 is reported (third-party release notes; no Apple statement) to
//! move the per-user TCC.db out of reach even of a process with Full Disk
//! Access. The evidence lenscap has is its own reads: the system database
//! (`/Library/Application Support/com.apple.TCC/TCC.db`), which only Full
//! Disk Access opens, was read, while per-user databases (those matched by
//! a `TCCDatabases` pattern with a wildcard, `/Users/*/…`) were refused
//! with a permission error. Then the fix is not a profile: the per-user
//! problems become one, naming the pattern, that says what lenscap does
//! instead (tccd's grant changes from the unified log, `parse::tcc_log`)
//! and where fleet-wide grants are known (MDM, `docs/mdm.md`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::TccProblem;

/// Plain words for the collapsed problem.
pub const OUT_OF_REACH: &str = "the per-user TCC databases cannot be read although lenscap has \
Full Disk Access (it read the system TCC database): macOS 27 is reported to move them out of \
reach of every other process. From now on lenscap learns camera, microphone, screen-recording \
and Full Disk Access grant changes from tccd's messages in the unified log (changes made while \
lenscap runs; grants made before are not visible). To know every grant fleet-wide, grant \
through MDM (PPPC profiles) and read them there: see docs/mdm.md";

/// Replace the per-user permission problems with one, when the system
/// database was read. `patterns` are `TCCDatabases`; `read_ok` the
/// databases read without a problem this time or before. Returns the
/// problems to report and whether the per-user databases are out of reach.
pub fn collapse(
    patterns: &[String],
    read_ok: &BTreeSet<PathBuf>,
    problems: BTreeMap<PathBuf, TccProblem>,
) -> (BTreeMap<PathBuf, TccProblem>, bool) {
    let per_user: Vec<(&String, glob::Pattern)> = patterns
        .iter()
        .filter(|p| super::has_wildcard(p))
        .filter_map(|p| glob::Pattern::new(p).ok().map(|g| (p, g)))
        .collect();
    let is_per_user = |path: &PathBuf| per_user.iter().any(|(_, g)| g.matches_path(path));
    let system_read = read_ok.iter().any(|p| !is_per_user(p));
    let refused: Vec<&PathBuf> = problems
        .iter()
        .filter(|(db, p)| p.permission && is_per_user(db))
        .map(|(db, _)| db)
        .collect();
    if !system_read || refused.is_empty() {
        return (problems, false);
    }
    let Some((pattern, _)) = per_user
        .iter()
        .find(|(_, g)| refused.iter().any(|db| g.matches_path(db)))
    else {
        return (problems, false);
    };
    let pattern = PathBuf::from(pattern.as_str());
    let mut kept: BTreeMap<PathBuf, TccProblem> = problems
        .into_iter()
        .filter(|(db, p)| !(p.permission && is_per_user(db)))
        .collect();
    kept.insert(
        pattern.clone(),
        TccProblem {
            database: pattern,
            detail: OUT_OF_REACH.to_string(),
            permission: false,
        },
    );
    (kept, true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    const SYSTEM: &str = "/Library/Application Support/com.apple.TCC/TCC.db";
    const USERS: &str = "/Users/*/Library/Application Support/com.apple.TCC/TCC.db";

    fn user_db(name: &str) -> PathBuf {
        PathBuf::from(format!(
            "/Users/{name}/Library/Application Support/com.apple.TCC/TCC.db"
        ))
    }

    fn refused(db: PathBuf) -> (PathBuf, TccProblem) {
        (
            db.clone(),
            TccProblem {
                database: db,
                detail: "no Full Disk Access".into(),
                permission: true,
            },
        )
    }

    fn patterns() -> Vec<String> {
        vec![SYSTEM.into(), USERS.into()]
    }

    #[test]
    fn system_read_and_users_refused_is_one_plain_problem() {
        let problems = BTreeMap::from([refused(user_db("ann")), refused(user_db("bob"))]);
        let read = BTreeSet::from([PathBuf::from(SYSTEM)]);
        let (kept, out) = collapse(&patterns(), &read, problems);
        assert!(out);
        assert_eq!(kept.len(), 1, "{kept:?}");
        let p = &kept[&PathBuf::from(USERS)];
        assert_eq!(p.detail, OUT_OF_REACH);
        assert!(!p.permission, "not a Full Disk Access problem");
    }

    #[test]
    fn without_the_system_database_it_is_the_usual_fda_problem() {
        // The system database refused too: lenscap lacks Full Disk Access,
        // and each database says so as before.
        let problems = BTreeMap::from([refused(PathBuf::from(SYSTEM)), refused(user_db("ann"))]);
        let (kept, out) = collapse(&patterns(), &BTreeSet::new(), problems.clone());
        assert!(!out);
        assert_eq!(kept, problems);
    }

    #[test]
    fn other_problems_are_kept_as_they_are() {
        let corrupt = TccProblem {
            database: user_db("carl"),
            detail: "corrupt".into(),
            permission: false,
        };
        let problems =
            BTreeMap::from([refused(user_db("ann")), (user_db("carl"), corrupt.clone())]);
        let read = BTreeSet::from([PathBuf::from(SYSTEM)]);
        let (kept, out) = collapse(&patterns(), &read, problems);
        assert!(out);
        assert_eq!(kept[&user_db("carl")], corrupt);
        assert!(!kept.contains_key(&user_db("ann")));
    }

    #[test]
    fn all_users_readable_is_no_problem_at_all() {
        let read = BTreeSet::from([PathBuf::from(SYSTEM), user_db("ann")]);
        let (kept, out) = collapse(&patterns(), &read, BTreeMap::new());
        assert!(!out);
        assert!(kept.is_empty());
    }
}
