//! Blocking the return: the paths a remediation emptied stay watched, and
//! anything that reappears there is a reinstall attempt.
//!
//! The registry lives in `<StateDir>/guard.json` (replaced atomically), so
//! the guard outlives restarts. The daemon asks [`Guard::reappeared`] after
//! every file-system event on a watched directory and on every sweep
//! (watchers coalesce and drop events; the sweep is the safety net), and
//! `act::reinstall` journals moving what came back into quarantine, does
//! it, and the report records a `reinstall_attempt`.
//! Restoring a quarantine record lifts its guard first, or the restored
//! files would be taken away again at once.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("guard registry {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("guard registry {path} is not valid JSON ({source}); move it aside to start a new one")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// One guarded path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guarded {
    pub path: PathBuf,
    /// The plan key (helper program) this guard protects against.
    pub plan_key: String,
    /// The quarantine record holding what was here.
    pub quarantine_id: Option<String>,
    /// A mode-000 placeholder file stands here by design.
    pub placeholder: bool,
    /// The uid whose reach bounds what a reinstall attempt here may have
    /// moved (the plan's actor). Guards written before actors existed have
    /// none: the owner of the guarded path's folder stands in, as whoever
    /// owns the folder is who can put things in it.
    #[serde(default)]
    pub actor: Option<u32>,
}

/// The registry of guarded paths.
#[derive(Debug)]
pub struct Guard {
    file: PathBuf,
    entries: Vec<Guarded>,
}

impl Guard {
    /// Load `<state_dir>/guard.json` (empty when absent).
    pub fn open(state_dir: &Path) -> Result<Guard, GuardError> {
        let file = state_dir.join("guard.json");
        let entries = match fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| GuardError::Corrupt {
                path: file.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(GuardError::Io { path: file, source }),
        };
        Ok(Guard { file, entries })
    }

    pub fn entries(&self) -> &[Guarded] {
        &self.entries
    }

    /// Guard `paths` (replacing older guards of the same paths).
    pub fn add(&mut self, new: Vec<Guarded>) -> Result<(), GuardError> {
        self.entries
            .retain(|e| !new.iter().any(|n| n.path == e.path));
        self.entries.extend(new);
        self.save()
    }

    /// Lift every guard of one quarantine record (before restoring it).
    pub fn lift_record(&mut self, quarantine_id: &str) -> Result<Vec<Guarded>, GuardError> {
        let (lifted, kept) = self
            .entries
            .drain(..)
            .partition(|e| e.quarantine_id.as_deref() == Some(quarantine_id));
        self.entries = kept;
        self.save()?;
        Ok(lifted)
    }

    /// Directories to watch: the parent of every guarded path.
    pub fn watch_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .entries
            .iter()
            .filter_map(|e| e.path.parent().map(Path::to_path_buf))
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// Guarded paths where something stands again: anything at all, or,
    /// where our placeholder belongs, anything that is not our placeholder.
    /// Checked with lstat: a link planted there counts as a reappearance
    /// and is never followed.
    pub fn reappeared(&self) -> Vec<&Guarded> {
        self.entries
            .iter()
            .filter(|g| match fs::symlink_metadata(&g.path) {
                Err(_) => false,
                Ok(meta) if g.placeholder => !is_placeholder(&meta),
                Ok(_) => true,
            })
            .collect()
    }

    fn save(&self) -> Result<(), GuardError> {
        let io = |source| GuardError::Io {
            path: self.file.clone(),
            source,
        };
        let bytes =
            serde_json::to_vec_pretty(&self.entries).map_err(|source| GuardError::Corrupt {
                path: self.file.clone(),
                source,
            })?;
        crate::fsutil::write_atomic(
            &self.file,
            &bytes,
            0o600,
            crate::fsutil::Durability::Durable,
        )
        .map_err(io)
    }
}

/// Our placeholder: a regular, empty, mode-000 file owned by root.
pub(crate) fn is_placeholder(meta: &fs::Metadata) -> bool {
    meta.file_type().is_file() && meta.len() == 0 && meta.mode() & 0o7777 == 0 && meta.uid() == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guarded(path: &Path, placeholder: bool) -> Guarded {
        Guarded {
            actor: Some(501),
            path: path.to_path_buf(),
            plan_key: "k".into(),
            quarantine_id: Some("q1".into()),
            placeholder,
        }
    }

    #[test]
    fn reappearance_is_seen_and_the_registry_persists() {
        let dir = tempfile::tempdir().unwrap();
        let watched = dir.path().join("home/.acme");
        fs::create_dir_all(watched.parent().unwrap()).unwrap();
        let mut g = Guard::open(dir.path()).unwrap();
        g.add(vec![guarded(&watched, false)]).unwrap();
        assert!(g.reappeared().is_empty());
        assert_eq!(g.watch_dirs(), vec![dir.path().join("home")]);

        fs::create_dir(&watched).unwrap();
        let g2 = Guard::open(dir.path()).unwrap();
        assert_eq!(g2.reappeared().len(), 1, "seen after a reopen too");
    }

    #[test]
    fn a_planted_symlink_counts_and_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let watched = dir.path().join("helper");
        let mut g = Guard::open(dir.path()).unwrap();
        g.add(vec![guarded(&watched, false)]).unwrap();
        std::os::unix::fs::symlink("/nonexistent/target", &watched).unwrap();
        assert_eq!(g.reappeared().len(), 1);
    }

    #[test]
    fn our_placeholder_is_not_a_reappearance_but_a_folder_is() {
        let dir = tempfile::tempdir().unwrap();
        let watched = dir.path().join(".zoomus");
        let mut g = Guard::open(dir.path()).unwrap();
        g.add(vec![guarded(&watched, true)]).unwrap();
        crate::act::quarantine::placeholder_block(&watched).unwrap();
        assert!(g.reappeared().is_empty(), "the placeholder is ours");
        fs::remove_file(&watched).unwrap();
        fs::create_dir(&watched).unwrap();
        assert_eq!(g.reappeared().len(), 1);
    }

    #[test]
    fn lifting_a_record_unguards_its_paths_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = Guard::open(dir.path()).unwrap();
        let mut other = guarded(&dir.path().join("b"), false);
        other.quarantine_id = Some("q2".into());
        g.add(vec![guarded(&dir.path().join("a"), false), other])
            .unwrap();
        let lifted = g.lift_record("q1").unwrap();
        assert_eq!(lifted.len(), 1);
        let g2 = Guard::open(dir.path()).unwrap();
        assert_eq!(g2.entries().len(), 1);
        assert_eq!(g2.entries()[0].path, dir.path().join("b"));
    }

    #[test]
    fn corrupt_registry_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("guard.json"), b"[{").unwrap();
        let err = Guard::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("guard.json"), "{err}");
    }
}
