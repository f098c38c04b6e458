//! The remediation journal: every plan and the state of each of its steps,
//! on disk before the step runs, so a crash at any point leaves a record
//! the next start reads to finish the job.
//!
//! On-disk format: `<StateDir>/journal/<id>.json`, one file per plan run,
//! replaced atomically (write `<id>.json.tmp`, fsync, rename, fsync the
//! directory) at every state change. Invariants:
//!
//! - a step is marked `started` (and that is durable) before it runs, and
//!   `done` or `failed` after;
//! - every step is idempotent (bootout of an unloaded job is "not
//!   loaded"; terminating a gone process is "already gone"; the vault
//!   finishes or undoes a half-done move on open), so recovery simply runs
//!   every step that is not `done` again, in order;
//! - an entry with `finished: true` is history and never run again.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::plan::Plan;
use crate::config::Mode;
use crate::fsutil::Durability;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "journal entry {path} is not valid JSON ({source}); it was left in place for inspection"
    )]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Started,
    Done,
    Failed,
    /// Monitor mode: recorded, not run.
    WouldDo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub status: StepStatus,
    /// What happened, in words (or what would happen, in monitor mode).
    pub outcome: Option<String>,
    /// The quarantine record the step created, for `quarantine` steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine_id: Option<String>,
    /// How many times the step was started (more than once after a crash).
    pub attempts: u32,
}

/// One plan run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub created_unix: i64,
    pub mode: Mode,
    pub plan: Plan,
    pub steps: Vec<StepRecord>,
    pub finished: bool,
}

impl Entry {
    pub fn new(plan: Plan, mode: Mode, now: SystemTime) -> Entry {
        let secs = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let id = format!("{}-{:08x}", secs, random_u32());
        let status = match mode {
            Mode::Monitor => StepStatus::WouldDo,
            Mode::Remediate => StepStatus::Pending,
        };
        let steps = plan
            .steps
            .iter()
            .map(|s| StepRecord {
                status,
                outcome: (mode == Mode::Monitor).then(|| s.describe()),
                quarantine_id: None,
                attempts: 0,
            })
            .collect();
        Entry {
            id,
            created_unix: i64::try_from(secs).unwrap_or(i64::MAX),
            mode,
            plan,
            steps,
            finished: mode == Mode::Monitor,
        }
    }

    /// Index of the first step that still has to run.
    pub fn next_step(&self) -> Option<usize> {
        if self.finished {
            return None;
        }
        self.steps
            .iter()
            .position(|s| matches!(s.status, StepStatus::Pending | StepStatus::Started))
    }
}

/// Random enough to keep ids of plans made in the same second apart;
/// not a secret. Read from the OS so no RNG crate is needed for one word.
fn random_u32() -> u32 {
    let mut buf = [0u8; 4];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut buf);
    }
    u32::from_le_bytes(buf) ^ std::process::id()
}

/// The journal directory.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// Open (creating, root-only) `<state_dir>/journal`.
    pub fn open(state_dir: &Path) -> Result<Journal, JournalError> {
        let dir = state_dir.join("journal");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io(&dir))?;
        Ok(Journal { dir })
    }

    /// Write `entry` durably, replacing the previous version.
    pub fn write(&self, entry: &Entry) -> Result<(), JournalError> {
        let path = self.dir.join(format!("{}.json", entry.id));
        let bytes = serde_json::to_vec_pretty(entry).map_err(|source| JournalError::Corrupt {
            path: path.clone(),
            source,
        })?;
        crate::fsutil::write_atomic(&path, &bytes, 0o600, Durability::Durable)
            .map_err(io(&path))?;
        Ok(())
    }

    /// Every entry, oldest first. A corrupt entry is reported, not
    /// deleted: it may be the only record of what happened.
    pub fn entries(&self) -> (Vec<Entry>, Vec<JournalError>) {
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return (entries, errors);
        };
        for e in dir.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            match fs::read(&path) {
                Ok(bytes) => match serde_json::from_slice::<Entry>(&bytes) {
                    Ok(entry) => entries.push(entry),
                    Err(source) => errors.push(JournalError::Corrupt { path, source }),
                },
                Err(source) => errors.push(JournalError::Io { path, source }),
            }
        }
        entries.sort_by(|a, b| (a.created_unix, &a.id).cmp(&(b.created_unix, &b.id)));
        (entries, errors)
    }

    /// Entries a crash left unfinished.
    pub fn unfinished(&self) -> (Vec<Entry>, Vec<JournalError>) {
        let (entries, errors) = self.entries();
        (
            entries.into_iter().filter(|e| !e.finished).collect(),
            errors,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::act::plan::Step;
    use crate::model::Severity;

    fn plan() -> Plan {
        Plan {
            key: "/Users/a/.x/helper".into(),
            subject: "helper".into(),
            rule: None,
            severity: Severity::High,
            reasons: vec!["because".into()],
            steps: vec![
                Step::Quarantine {
                    paths: vec!["/Users/a/.x".into()],
                },
                Step::Notify {
                    uid: Some(501),
                    message: "m".into(),
                    would: "w".into(),
                },
            ],
            actor: Some(501),
            costs: true,
        }
    }

    #[test]
    fn entries_survive_reopen_and_unfinished_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let mut e = Entry::new(plan(), Mode::Remediate, SystemTime::now());
        assert_eq!(e.next_step(), Some(0));
        e.steps[0].status = StepStatus::Started;
        j.write(&e).unwrap();

        let j2 = Journal::open(dir.path()).unwrap();
        let (open, errors) = j2.unfinished();
        assert!(errors.is_empty());
        assert_eq!(open, vec![e.clone()]);
        assert_eq!(open[0].next_step(), Some(0), "a started step runs again");

        e.steps[0].status = StepStatus::Done;
        e.steps[1].status = StepStatus::Done;
        e.finished = true;
        j2.write(&e).unwrap();
        assert!(j2.unfinished().0.is_empty());
        assert_eq!(j2.entries().0.len(), 1, "history kept");
    }

    #[test]
    fn monitor_entries_are_finished_would_do_records() {
        let e = Entry::new(plan(), Mode::Monitor, SystemTime::now());
        assert!(e.finished);
        assert_eq!(e.next_step(), None);
        assert!(e.steps.iter().all(|s| s.status == StepStatus::WouldDo));
        assert!(
            e.steps[0]
                .outcome
                .as_deref()
                .unwrap()
                .contains("quarantine")
        );
    }

    #[test]
    fn corrupt_entry_is_reported_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let bad = dir.path().join("journal/123-bad.json");
        fs::write(&bad, b"{ not json").unwrap();
        let (entries, errors) = j.entries();
        assert!(entries.is_empty());
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].to_string().contains("123-bad.json"),
            "{}",
            errors[0]
        );
        assert!(bad.exists(), "never deleted");
    }

    #[test]
    fn journal_dir_is_root_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        Journal::open(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join("journal"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
