//! Putting things back, and finishing what a crash interrupted.
//!
//! [`Vault::restore`] checks every item first (its folder reachable without
//! a link, nothing but our placeholder at its path), marks the record
//! `restoring`, then per item removes the placeholder, moves the payload
//! back (rename, or copy into a temporary name beside the original,
//! verify, rename) and compares the result with the record.
//!
//! [`Vault::recover`] runs on start: `moving` records are rolled forward,
//! `restoring` ones finished, half-written manifests and empty record
//! directories cleaned up. Nothing is removed that is not provably equal to
//! a copy that stays.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::{PAYLOAD_DIR, QuarantineError, Target, Vault, note_leftovers, partial_name};
use crate::act::fsops::{self, EntryKind, FsError, Moved, SafeDir};
use crate::act::manifest::{self, QuarantineRecord, RecordState};

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    pub id: String,
    /// Every original path now holding its item again.
    pub restored: Vec<PathBuf>,
    /// Placeholders removed to make room.
    pub placeholders_removed: Vec<PathBuf>,
    /// The privacy grants the plan reset, which a restore does not give
    /// back (`act::grants::grant_again` says so to the person).
    pub grants_reset: Vec<crate::model::GrantReset>,
}

/// One step `recover` (or a restore) took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryAction {
    /// A record directory without a manifest (crash before the first
    /// write, so nothing had moved) was removed.
    RemovedEmptyRecord { id: String },
    /// A half-made copy was discarded; its source is intact.
    RemovedPartialCopy { id: String, path: PathBuf },
    /// An original's leftover, equal to its vault copy, was removed.
    RemovedLeftover { id: String, path: PathBuf },
    /// An item not yet moved when the crash came was moved now.
    MovedRemaining { id: String, path: PathBuf },
    /// An item was put back at its original path.
    PutBack { id: String, path: PathBuf },
    /// Already back and equal: the vault's copy was removed.
    RemovedVaultCopy { id: String, path: PathBuf },
    /// A placeholder was removed before putting a folder back.
    RemovedPlaceholder { id: String, path: PathBuf },
    /// Differs from the other copy, so it was kept; an admin decides.
    LeftInPlace { id: String, path: PathBuf },
    /// Neither in the vault nor at its original path.
    ItemMissing { id: String, path: PathBuf },
    /// The record reached this state.
    Finished { id: String, state: RecordState },
    /// The record could not be finished; it is marked `failed`.
    Failed { id: String, error: String },
    /// The record's manifest cannot be read; it was left alone.
    Unreadable { id: String, error: String },
}

/// The temporary name a cross-filesystem restore copies to, beside the
/// original.
pub(super) fn restore_partial_name(id: &str, n: usize) -> OsString {
    OsString::from(format!(".lenscap-restore-{id}-{n}"))
}

/// The original's folder; its absence is `ParentMissing`, not an I/O error.
fn open_original(path: &Path) -> Result<Target, QuarantineError> {
    match SafeDir::open_parent(path) {
        Ok((parent, name)) => Ok(Target { parent, name }),
        Err(e) if e.errno() == Some(Errno::ENOENT) => Err(QuarantineError::ParentMissing {
            path: path.into(),
            parent: path.parent().unwrap_or(path).into(),
        }),
        Err(e) => Err(e.into()),
    }
}

impl Vault {
    /// Put every item of record `id` back at its original path, byte for
    /// byte with owner, group, mode and mtime, then mark it `restored` (the
    /// manifest stays for audit). Refuses — before changing anything — if
    /// any original path holds something other than our placeholder.
    pub fn restore(&self, id: &str) -> Result<RestoreReport, QuarantineError> {
        let (dir, mut record) = self.open_record(id)?;
        if !matches!(record.state, RecordState::Quarantined | RecordState::Failed) {
            return Err(QuarantineError::WrongState {
                id: id.to_owned(),
                state: record.state,
            });
        }
        let payload = dir.open_dir(OsStr::new(PAYLOAD_DIR))?;
        for item in &record.items {
            let path = &item.original.0;
            if payload.lstat(item.payload_name())?.is_none() {
                // A failed record may hold only some of its items.
                if record.state == RecordState::Failed {
                    continue;
                }
                return Err(QuarantineError::PayloadMissing {
                    path: path.clone(),
                    payload: payload.child_path(item.payload_name()),
                });
            }
            let t = open_original(path)?;
            if t.parent
                .lstat(&t.name)?
                .is_some_and(|m| !m.is_placeholder())
            {
                return Err(QuarantineError::Occupied { path: path.clone() });
            }
        }
        record.state = RecordState::Restoring;
        manifest::write(&dir, &record)?;
        let actions = finish_restore(&dir, &mut record)?;
        let mut report = RestoreReport {
            id: id.to_owned(),
            restored: Vec::new(),
            placeholders_removed: Vec::new(),
            grants_reset: record.grants_reset.clone(),
        };
        for a in actions {
            match a {
                RecoveryAction::PutBack { path, .. } => report.restored.push(path),
                RecoveryAction::RemovedPlaceholder { path, .. } => {
                    report.placeholders_removed.push(path)
                }
                _ => {}
            }
        }
        Ok(report)
    }

    /// Finish or roll back every half-done record; call once on start,
    /// before anything else uses the vault.
    pub fn recover(&self) -> Vec<RecoveryAction> {
        let mut actions = Vec::new();
        let names = match self.dir.list() {
            Ok(names) => names,
            Err(e) => {
                actions.push(RecoveryAction::Unreadable {
                    id: String::new(),
                    error: e.to_string(),
                });
                return actions;
            }
        };
        for name in names {
            let Some(id) = name.to_str().filter(|n| manifest::valid_id(n)) else {
                continue;
            };
            let id = id.to_owned();
            if let Err(e) = self.recover_one(&name, &mut actions) {
                actions.push(RecoveryAction::Failed {
                    id,
                    error: e.to_string(),
                });
            }
        }
        actions
    }

    fn recover_one(
        &self,
        name: &OsStr,
        out: &mut Vec<RecoveryAction>,
    ) -> Result<(), QuarantineError> {
        let id = name.to_string_lossy().into_owned();
        if self
            .dir
            .lstat(name)?
            .is_none_or(|m| m.kind != EntryKind::Dir)
        {
            return Ok(());
        }
        let dir = self.dir.open_dir(name)?;
        manifest::remove_tmp(&dir)?;
        let mut record = match manifest::read(&dir) {
            Ok(Some(r)) => r,
            Ok(None) => {
                // Manifest first, then any move: without one, at most an
                // empty payload folder exists. rmdir refuses anything more.
                let payload = OsStr::new(PAYLOAD_DIR);
                if dir.lstat(payload)?.is_some() {
                    dir.rmdir(payload)?;
                }
                self.dir.rmdir(name)?;
                self.dir.sync()?;
                out.push(RecoveryAction::RemovedEmptyRecord { id });
                return Ok(());
            }
            Err(e) => {
                out.push(RecoveryAction::Unreadable {
                    id,
                    error: e.to_string(),
                });
                return Ok(());
            }
        };
        let result = match record.state {
            RecordState::Moving => roll_forward(&dir, &mut record),
            RecordState::Restoring => finish_restore(&dir, &mut record),
            _ => return Ok(()),
        };
        match result {
            Ok(actions) => {
                out.extend(actions);
                out.push(RecoveryAction::Finished {
                    id,
                    state: record.state,
                });
                Ok(())
            }
            Err(e) => {
                record.state = RecordState::Failed;
                record.notes.push(format!("recovery failed: {e}"));
                manifest::write(&dir, &record)?;
                Err(e)
            }
        }
    }
}

/// A `moving` record after a crash: per item, a committed payload means
/// the original's remains are leftovers (removed where equal); otherwise
/// discard any partial copy and move the item now.
fn roll_forward(
    dir: &SafeDir,
    record: &mut QuarantineRecord,
) -> Result<Vec<RecoveryAction>, QuarantineError> {
    let id = record.id.clone();
    let payload = dir.ensure_dir(OsStr::new(PAYLOAD_DIR), 0o700)?;
    let mut out = Vec::new();
    let mut missing = false;
    for item in &record.items {
        let pname = item.payload_name().to_os_string();
        let original = item.original.0.clone();
        let partial = partial_name(&pname);
        if payload.lstat(&partial)?.is_some() {
            fsops::remove_tree(&payload, &partial)?;
            out.push(RecoveryAction::RemovedPartialCopy {
                id: id.clone(),
                path: payload.child_path(&partial),
            });
        }
        let target = match open_original(&original) {
            Ok(t) => Some(t),
            Err(QuarantineError::ParentMissing { .. }) => None,
            Err(e) => return Err(e),
        };
        let here = match &target {
            Some(t) => t.parent.lstat(&t.name)?,
            None => None,
        };
        let present = here.is_some();
        if payload.lstat(&pname)?.is_some() {
            if let (Some(t), true) = (&target, present) {
                let left = fsops::remove_matching(&t.parent, &t.name, &payload, &pname)?;
                t.parent.sync()?;
                out.extend(left_actions(&id, &left));
                if left.is_empty() {
                    out.push(RecoveryAction::RemovedLeftover {
                        id: id.clone(),
                        path: original,
                    });
                }
            }
        } else if let (Some(t), true) = (&target, present) {
            // As on a first attempt: never move a link or a special file
            // that appeared in the item's place.
            if let Some(m) = here.filter(|m| !matches!(m.kind, EntryKind::File | EntryKind::Dir)) {
                return Err(match m.kind {
                    EntryKind::Symlink => FsError::Symlink {
                        path: original.clone(),
                        component: original,
                    },
                    _ => FsError::Unsupported {
                        path: original,
                        kind: m.kind_name(),
                    },
                }
                .into());
            }
            let moved = fsops::move_entry(&t.parent, &t.name, &payload, &pname, &partial)?;
            note_leftovers(&mut record.notes, moved);
            out.push(RecoveryAction::MovedRemaining {
                id: id.clone(),
                path: original,
            });
        } else {
            missing = true;
            out.push(RecoveryAction::ItemMissing {
                id: id.clone(),
                path: original,
            });
        }
    }
    super::refresh_from_payload(&payload, record);
    record.state = if missing {
        RecordState::Failed
    } else {
        RecordState::Quarantined
    };
    record
        .notes
        .push("interrupted while moving; completed on restart".into());
    manifest::write(dir, record)?;
    Ok(out)
}

fn left_actions(id: &str, left: &[PathBuf]) -> Vec<RecoveryAction> {
    left.iter()
        .map(|p| RecoveryAction::LeftInPlace {
            id: id.to_owned(),
            path: p.clone(),
        })
        .collect()
}

/// Move every item still in the vault back, for a `restoring` record
/// (a restore under way, or one a crash interrupted). Ends `restored`, or
/// `failed` with the first problem returned.
fn finish_restore(
    dir: &SafeDir,
    record: &mut QuarantineRecord,
) -> Result<Vec<RecoveryAction>, QuarantineError> {
    let id = record.id.clone();
    let payload = dir.open_dir(OsStr::new(PAYLOAD_DIR))?;
    let mut out = Vec::new();
    let mut problem: Option<QuarantineError> = None;
    for (n, item) in record.items.iter().enumerate() {
        let pname = item.payload_name();
        let original = item.original.0.clone();
        let t = open_original(&original)?;
        let partial = restore_partial_name(&id, n);
        if t.parent.lstat(&partial)?.is_some() {
            fsops::remove_tree(&t.parent, &partial)?;
            out.push(RecoveryAction::RemovedPartialCopy {
                id: id.clone(),
                path: t.parent.child_path(&partial),
            });
        }
        let here = t.parent.lstat(&t.name)?;
        if payload.lstat(pname)?.is_none() {
            if here.is_none() {
                out.push(RecoveryAction::ItemMissing {
                    id: id.clone(),
                    path: original,
                });
            }
            continue;
        }
        match here {
            Some(m) if m.is_placeholder() => {
                t.parent.unlink(&t.name)?;
                t.parent.sync()?;
                out.push(RecoveryAction::RemovedPlaceholder {
                    id: id.clone(),
                    path: original.clone(),
                });
            }
            Some(_) => {
                // Already back (a crash after the commit), or something new.
                let left = fsops::remove_matching(&payload, pname, &t.parent, &t.name)?;
                if left.is_empty() {
                    out.push(RecoveryAction::RemovedVaultCopy {
                        id: id.clone(),
                        path: original,
                    });
                } else {
                    out.extend(left_actions(&id, &left));
                    problem.get_or_insert(QuarantineError::Occupied { path: original });
                }
                continue;
            }
            None => {}
        }
        let moved = fsops::move_entry(&payload, pname, &t.parent, &t.name, &partial)?;
        if let Moved::Copied { left_in_place } = &moved {
            out.extend(left_actions(&id, left_in_place));
        }
        let now = fsops::scan(&t.parent, &t.name)?;
        if let Some((entry, what)) = fsops::diff(&item.tree(), &now) {
            problem.get_or_insert(QuarantineError::Mismatch {
                path: original.clone(),
                entry,
                what,
            });
        }
        out.push(RecoveryAction::PutBack {
            id: id.clone(),
            path: original,
        });
    }
    match &problem {
        None => {
            record.state = RecordState::Restored;
            record.notes.push(format!(
                "restored at {}",
                manifest::rfc3339(std::time::SystemTime::now())
            ));
        }
        Some(e) => {
            record.state = RecordState::Failed;
            record.notes.push(format!("restore incomplete: {e}"));
        }
    }
    manifest::write(dir, record)?;
    match problem {
        None => Ok(out),
        Some(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
