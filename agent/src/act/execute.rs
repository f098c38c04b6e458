//! Carrying out a journaled plan, step by step.
//!
//! Each step is marked `started` in the journal (durably) before it runs
//! and `done`/`failed` after. A failed step does not stop the plan: a
//! failed bootout still leaves the process worth killing and its files
//! worth moving (without the program, KeepAlive has nothing to restart).
//! Running an entry again after a crash re-runs exactly the steps not
//! marked `done`; every step is idempotent.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::guard::{Guard, Guarded};
use super::journal::{Entry, Journal, JournalError, StepStatus};
use super::kill::{ProcessControl, terminate_tree_as};
use super::plan::Step;
use super::quarantine::{Vault, placeholder_block};
use super::stop::{self, BootoutOutcome};
use super::tell::{self, Told};
use crate::model::{GrantReset, PersistenceItem};

/// Env var naming a step after which the daemon kills itself with SIGKILL
/// (`after:quarantine`) or before it (`before:terminate`). A test hook for
/// the crash-recovery tests; inert unless set.
pub const FAULT_ENV: &str = "LENSCAP_FAULT_KILL";

/// Tells a user what happened (macOS: a notification; elsewhere: the log).
pub trait Notifier {
    fn notify(&self, uid: Option<u32>, title: &str, message: &str) -> Result<(), String>;

    /// Tell of one incident (`incident` names it across sweeps). A
    /// notifier that keeps count (`act::tell::Gate`) may hold it back: one
    /// notification per incident, and none when `NotifyUser` says so.
    fn notify_incident(
        &self,
        incident: &str,
        uid: Option<u32>,
        title: &str,
        message: &str,
    ) -> Result<Told, String> {
        let _ = incident;
        self.notify(uid, title, message).map(|()| Told::Shown)
    }
}

/// What a step needs to know about users' sessions: who is logged in at
/// the console (a root-owned LaunchAgent runs in each of their gui
/// domains) and users' names (`sudo -u <user>`).
pub trait Sessions {
    /// The uids logged in at the console, each once.
    fn console_users(&self) -> Result<Vec<u32>, String>;
    fn user_name(&self, uid: u32) -> Option<String>;
}

/// What carrying out a step did, for the report stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepEvent {
    pub entry_id: String,
    pub plan_key: String,
    pub step: Step,
    pub status: StepStatus,
    pub outcome: String,
    pub quarantine_id: Option<String>,
}

/// Everything a step needs from the outside.
pub struct Context<'a> {
    pub launchctl: PathBuf,
    /// `TccutilPath`.
    pub tccutil: PathBuf,
    pub command_timeout: Duration,
    pub grace: Duration,
    pub ctl: &'a dyn ProcessControl,
    pub vault: &'a Vault,
    pub guard: &'a mut Guard,
    pub notifier: &'a dyn Notifier,
    pub sessions: &'a dyn Sessions,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("launchctl", &self.launchctl)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

/// Run every step of `entry` that is not done yet, journaling each.
/// Returns one event per step run. An error means the journal itself could
/// not be written: the caller must stop acting (nothing can be promised
/// about a step that is not journaled).
pub fn run_entry(
    ctx: &mut Context<'_>,
    journal: &Journal,
    entry: &mut Entry,
) -> Result<Vec<StepEvent>, JournalError> {
    let mut events = Vec::new();
    while let Some(i) = entry.next_step() {
        let step = entry.plan.steps[i].clone();
        entry.steps[i].status = StepStatus::Started;
        entry.steps[i].attempts += 1;
        journal.write(entry)?;
        fault_point("before", step.name());

        let (ok, outcome, quarantine_id) = run_step(ctx, entry, &step);
        let rec = &mut entry.steps[i];
        rec.status = if ok {
            StepStatus::Done
        } else {
            StepStatus::Failed
        };
        rec.outcome = Some(outcome.clone());
        if quarantine_id.is_some() {
            rec.quarantine_id = quarantine_id.clone();
        }
        let status = rec.status;
        if entry.next_step().is_none() {
            entry.finished = true;
        }
        journal.write(entry)?;
        fault_point("after", step.name());
        events.push(StepEvent {
            entry_id: entry.id.clone(),
            plan_key: entry.plan.key.clone(),
            step,
            status,
            outcome,
            quarantine_id,
        });
    }
    if !entry.finished {
        entry.finished = true;
        journal.write(entry)?;
    }
    Ok(events)
}

fn fault_point(when: &str, step: &str) {
    if let Ok(v) = std::env::var(FAULT_ENV)
        && v == format!("{when}:{step}")
    {
        tracing::warn!("{FAULT_ENV}={v}: killing this process as the test asked");
        // SAFETY: raise(2) has no memory-safety preconditions.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
}

/// (succeeded, what happened, quarantine record id)
fn run_step(ctx: &mut Context<'_>, entry: &Entry, step: &Step) -> (bool, String, Option<String>) {
    // The actor rule: every step but the notice needs to know whose reach
    // bounds it, and stays inside it.
    let actor = match (entry.plan.actor, step) {
        (_, Step::Notify { .. }) => 0,
        (Some(actor), _) => actor,
        (None, _) => {
            return (
                false,
                "not done: who triggered this finding could not be told (items or processes \
                 of more than one user), so no action is within anyone's reach"
                    .into(),
                None,
            );
        }
    };
    match step {
        Step::Bootout { item, process_uid } => bootout_step(ctx, item, *process_uid, actor),
        Step::Terminate { processes } => {
            let mut all_ok = true;
            let mut parts = Vec::new();
            for p in processes {
                let report = terminate_tree_as(ctx.ctl, p, ctx.grace, actor);
                all_ok &= report.all_gone();
                for r in &report.processes {
                    parts.push(format!("pid {}: {:?}", r.pid, r.outcome));
                }
            }
            (all_ok, parts.join("; "), None)
        }
        Step::Quarantine { paths } => {
            // After a crash some paths may already be in the vault (its
            // recovery finished the move); move only what is still there.
            let present: Vec<PathBuf> = paths
                .iter()
                .filter(|p| p.symlink_metadata().is_ok())
                .cloned()
                .collect();
            if present.is_empty() {
                return (true, "nothing left to move".into(), None);
            }
            let summary = format!("{} (plan {})", entry.plan.subject, entry.id);
            match ctx.vault.quarantine_as(
                &present,
                &summary,
                entry.plan.rule.clone(),
                SystemTime::now(),
                actor,
            ) {
                Ok(record) => (
                    true,
                    format!(
                        "moved {} item(s) into quarantine {}",
                        record.items.len(),
                        record.id
                    ),
                    Some(record.id),
                ),
                Err(e) => (false, e.to_string(), None),
            }
        }
        Step::Guard { paths, placeholder } => {
            let qid = entry.steps.iter().find_map(|s| s.quarantine_id.clone());
            let mut notes = Vec::new();
            let mut ok = true;
            if let Some(dir) = placeholder {
                match placeholder_block(dir) {
                    Ok(()) => notes.push(format!("placeholder at {}", dir.display())),
                    Err(e) => {
                        ok = false;
                        notes.push(format!("placeholder at {}: {e}", dir.display()));
                    }
                }
            }
            let guards = paths
                .iter()
                .map(|p| Guarded {
                    path: p.clone(),
                    plan_key: entry.plan.key.clone(),
                    quarantine_id: qid.clone(),
                    placeholder: placeholder.as_ref() == Some(p),
                    actor: entry.plan.actor,
                })
                .collect();
            match ctx.guard.add(guards) {
                Ok(()) => notes.insert(0, format!("guarding {} path(s)", paths.len())),
                Err(e) => {
                    ok = false;
                    notes.insert(0, e.to_string());
                }
            }
            (ok, notes.join("; "), None)
        }
        Step::Reinstall {
            path,
            guarded_for,
            placeholder,
        } => super::reinstall::undo(ctx.vault, path, guarded_for, *placeholder, actor),
        Step::ResetGrants { grants, kept } => reset_grants_step(ctx, entry, grants, kept, actor),
        Step::Notify { uid, message, .. } => {
            // The undo line names the record the quarantine step made.
            let qid = entry.steps.iter().find_map(|s| s.quarantine_id.clone());
            let message = tell::with_quarantine_id(message, qid.as_deref());
            let incident = format!("did:{}", entry.plan.key);
            match ctx
                .notifier
                .notify_incident(&incident, *uid, tell::TITLE_REMOVED, &message)
            {
                Ok(Told::Shown) => (true, "user notified".into(), None),
                Ok(Told::Held(why)) => (true, format!("user not notified: {why}"), None),
                // Not being able to tell someone is worth recording but
                // does not undo the remediation.
                Err(e) => (false, format!("could not notify: {e}"), None),
            }
        }
    }
}

/// `launchctl bootout` of every domain the job is loaded in
/// (`stop::domains_for`): one for a daemon or a user's agent, one per
/// logged-in user for a root-owned agent — none when nobody is logged in
/// and nothing runs it, which the outcome says. Each domain must be within
/// the actor's reach; a domain where the job is not loaded is not a
/// failure.
fn bootout_step(
    ctx: &Context<'_>,
    item: &PersistenceItem,
    process_uid: Option<u32>,
    actor: u32,
) -> (bool, String, Option<String>) {
    let console = || ctx.sessions.console_users();
    let domains = match stop::domains_for(item, process_uid, &console) {
        Ok(d) => d,
        Err(e) => return (false, e.to_string(), None),
    };
    if domains.is_empty() {
        return (
            true,
            format!(
                "nobody is logged in and nothing runs it: {} (a root-owned LaunchAgent) is loaded \
                 only in logged-in users' gui domains, so there was nothing to unload",
                item.path.display()
            ),
            None,
        );
    }
    let mut ok = true;
    let mut parts = Vec::new();
    for domain in &domains {
        if !domain.within_reach(actor) {
            ok = false;
            parts.push(format!(
                "not done: {domain} is outside the reach of uid {actor} whose finding this is"
            ));
            continue;
        }
        match stop::bootout(&ctx.launchctl, domain, ctx.command_timeout) {
            Ok(BootoutOutcome::Unloaded { from }) => parts.push(format!("unloaded {from}")),
            Ok(BootoutOutcome::NotLoaded { detail }) => {
                parts.push(format!("{domain} was not loaded ({detail})"))
            }
            Err(e) => {
                ok = false;
                parts.push(e.to_string());
            }
        }
    }
    (ok, parts.join("; "), None)
}

/// Reset each planned grant (`act::grants::reset`), then record the ones
/// reset in the plan's quarantine manifest, if it made one. Grants the
/// plan keeps are only said. Idempotent: a second `tccutil reset` of a
/// reset grant changes nothing, and the manifest lists each grant once.
fn reset_grants_step(
    ctx: &Context<'_>,
    entry: &Entry,
    grants: &[GrantReset],
    kept: &[String],
    actor: u32,
) -> (bool, String, Option<String>) {
    let mut ok = true;
    let mut parts = Vec::new();
    let mut done: Vec<GrantReset> = Vec::new();
    for g in grants {
        let user = ctx.sessions.user_name(g.uid);
        let name = format!(
            "{} grant of {} for uid {}",
            g.service.json_name(),
            g.client,
            g.uid
        );
        match super::grants::reset(
            &ctx.launchctl,
            &ctx.tccutil,
            g,
            user.as_deref(),
            actor,
            ctx.command_timeout,
        ) {
            Ok(()) => {
                parts.push(format!("reset the {name}"));
                done.push(g.clone());
            }
            Err(e) => {
                ok = false;
                parts.push(format!("could not reset the {name}: {e}"));
            }
        }
    }
    parts.extend(kept.iter().map(|k| format!("not reset: {k}")));
    let qid = entry.steps.iter().find_map(|s| s.quarantine_id.clone());
    if let Some(qid) = qid.filter(|_| !done.is_empty()) {
        match ctx.vault.note_grants_reset(&qid, &done) {
            Ok(()) => parts.push(format!("recorded in quarantine {qid}")),
            Err(e) => {
                ok = false;
                parts.push(format!("could not record them in quarantine {qid}: {e}"));
            }
        }
    }
    if parts.is_empty() {
        parts.push("no grant to reset".into());
    }
    (ok, parts.join("; "), None)
}
