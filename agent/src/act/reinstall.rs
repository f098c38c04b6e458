//! Undoing reinstall attempts: something stands again where a guard keeps
//! a path empty (`guard`), so it is moved into the vault again and the
//! placeholder put back — journaled like every other action.
//!
//! Each attempt becomes a plan of one [`Step::Reinstall`] under the key
//! `reinstall:<path>`, written to the journal before anything moves and
//! run by [`execute::run_entry`], so a crash in the middle is finished by
//! the next start like any plan (the step is idempotent: what the vault's
//! recovery already moved is not there any more, and our own placeholder
//! is never taken for a reinstall). In monitor mode, or while the guard's
//! actor is over the remediation budget, the entry is journaled as "would
//! do" and the thing is left in place.
//!
//! What could not be (or, in monitor mode, would not be) moved is
//! remembered with the identity of the file that stands there
//! ([`FileStamp`]) and not reported again on every sweep until it changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::Mode;
use crate::fsutil::{FileStamp, what_stands_at};
use crate::model::Severity;

use super::execute::{self, Context, StepEvent};
use super::guard::{Guard, Guarded};
use super::journal::{Entry, Journal, JournalError, StepStatus};
use super::plan::{Plan, Step};
use super::quarantine::{Vault, placeholder_block};

/// A guarded path where something new stands.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub guarded: Guarded,
    /// What stands there now (`None`: gone again, or unreadable).
    seen: Option<FileStamp>,
}

/// What undoing one attempt did, for the report stage.
#[derive(Debug)]
pub struct Undone {
    /// The journal entry, finished.
    pub entry: Entry,
    /// The steps run (empty in monitor mode: the entry says "would do").
    pub events: Vec<StepEvent>,
}

/// The reinstall attempts left in place, across sweeps.
#[derive(Debug, Default)]
pub struct Reinstalls {
    left: HashMap<PathBuf, FileStamp>,
}

impl Reinstalls {
    /// The guarded paths where something stands again and is news: not
    /// the same file already left in place there.
    pub fn attempts(&mut self, guard: &Guard) -> Vec<Attempt> {
        let back: Vec<Guarded> = guard.reappeared().into_iter().cloned().collect();
        // Forget what was left in place at paths that are empty again.
        self.left
            .retain(|path, _| back.iter().any(|g| &g.path == path));
        back.into_iter()
            .filter_map(|g| {
                let seen = what_stands_at(&g.path);
                let known = seen.is_some() && self.left.get(&g.path) == seen.as_ref();
                (!known).then_some(Attempt { guarded: g, seen })
            })
            .collect()
    }

    /// Journal `attempt` in `mode` and, in remediate mode, carry it out.
    /// The caller holds the state lock. An error means the journal could
    /// not be written and nothing was done (nothing is done that is not
    /// journaled first); the attempt is seen again at the next sweep.
    pub fn undo(
        &mut self,
        attempt: &Attempt,
        mode: Mode,
        ctx: &mut Context<'_>,
        journal: &Journal,
    ) -> Result<Undone, JournalError> {
        let mut entry = Entry::new(plan_for(&attempt.guarded), mode, SystemTime::now());
        journal.write(&entry)?;
        let events = match mode {
            Mode::Monitor => Vec::new(),
            Mode::Remediate => execute::run_entry(ctx, journal, &mut entry)?,
        };
        let undone = entry.steps.iter().all(|s| s.status == StepStatus::Done);
        if !undone && let Some(stamp) = attempt.seen {
            self.left.insert(attempt.guarded.path.clone(), stamp);
        }
        Ok(Undone { entry, events })
    }
}

/// The one-step plan that undoes a reinstall at `g`'s path.
pub fn plan_for(g: &Guarded) -> Plan {
    Plan {
        key: format!("reinstall:{}", g.path.display()),
        subject: format!("reinstall attempt of {}", g.plan_key),
        rule: None,
        severity: Severity::High,
        reasons: vec![format!(
            "{} came back where a remediation of {} left it empty",
            g.path.display(),
            g.plan_key
        )],
        steps: vec![Step::Reinstall {
            path: g.path.clone(),
            guarded_for: g.plan_key.clone(),
            placeholder: g.placeholder,
        }],
        // Only what the guard's actor could move itself: a root-owned file
        // that appears in a user's guarded spot stays. Guards written
        // before they recorded an actor: whoever owns the folder, who can
        // put things there; failing that, nobody's reach.
        actor: Some(
            g.actor
                .or_else(|| folder_owner(&g.path))
                .unwrap_or(u32::MAX),
        ),
        // Not a new remediation: it spends no budget (but does not run past
        // an open breaker either; the daemon asks the budget first).
        costs: false,
    }
}

/// Carry out a [`Step::Reinstall`]: (succeeded, what happened, quarantine
/// record id).
pub(super) fn undo(
    vault: &Vault,
    path: &Path,
    guarded_for: &str,
    placeholder: bool,
    actor: u32,
) -> (bool, String, Option<String>) {
    // After a crash the vault's recovery may have finished the move, and
    // the placeholder may be back already: ours is not a reinstall.
    let ours = placeholder
        && path
            .symlink_metadata()
            .is_ok_and(|m| super::guard::is_placeholder(&m));
    if ours {
        return (true, "the placeholder stands again".into(), None);
    }
    let mut moved = None;
    if path.symlink_metadata().is_ok() {
        let summary = format!("reinstall attempt of {guarded_for}");
        match vault.quarantine_as(
            &[path.to_path_buf()],
            &summary,
            None,
            SystemTime::now(),
            actor,
        ) {
            Ok(record) => moved = Some(record.id),
            Err(e) => return (false, e.to_string(), None),
        }
    }
    if placeholder && let Err(e) = placeholder_block(path) {
        // Whatever replaced our placeholder is gone now; the placeholder
        // goes back — or the step failed.
        return (false, e.to_string(), moved);
    }
    let outcome = match &moved {
        Some(id) => format!("moved re-created {} into quarantine {id}", path.display()),
        None => format!("nothing left at {}", path.display()),
    };
    (true, outcome, moved)
}

/// The owner of the folder holding `path` (lstat): for guards written
/// before they recorded an actor, who can put things there.
fn folder_owner(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    path.parent()?.symlink_metadata().ok().map(|m| m.uid())
}

#[cfg(test)]
mod tests;
