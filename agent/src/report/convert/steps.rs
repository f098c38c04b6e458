//! Remediation steps as OCSF Process (7003) and File (7002) Remediation
//! Activities: what was done to which process, job or file, and how it
//! ended — or, in monitor mode, what would have been done.

use std::path::Path;

use lenscap_events::{
    Action, Body, FileTarget, Outcome, OutcomeStatus, ProcessTarget, Remediation,
    RemediationActivity,
};

use super::lossy;
use crate::act::kill::{KillOutcome, ProcessReport, Refusal};
use crate::model::ProcessIdentity;

/// How one step ended. [`StepOutcome::WouldDo`] is monitor mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// Done; the optional detail says how ("exited after SIGTERM").
    Success(Option<String>),
    /// Tried and failed: why.
    Failure(String),
    /// Monitor mode: computed, recorded, not carried out.
    WouldDo,
    /// Held back in remediate mode (circuit breaker open, protected target,
    /// nothing left to do): why.
    NotAttempted(String),
}

impl StepOutcome {
    fn wire(&self) -> (Outcome, bool) {
        match self {
            StepOutcome::Success(detail) => (
                Outcome {
                    status: OutcomeStatus::Success,
                    detail: detail.clone(),
                },
                false,
            ),
            StepOutcome::Failure(why) => (
                Outcome {
                    status: OutcomeStatus::Failure,
                    detail: Some(why.clone()),
                },
                false,
            ),
            StepOutcome::WouldDo => (
                Outcome {
                    status: OutcomeStatus::NotAttempted,
                    detail: Some("monitor mode: nothing was changed".to_string()),
                },
                true,
            ),
            StepOutcome::NotAttempted(why) => (
                Outcome {
                    status: OutcomeStatus::NotAttempted,
                    detail: Some(why.clone()),
                },
                false,
            ),
        }
    }

    /// "Unloaded x" / "Would unload x" / "Failed to unload x: why" …
    fn sentence(&self, infinitive: &str, past: &str) -> String {
        match self {
            StepOutcome::Success(None) => past.to_string(),
            StepOutcome::Success(Some(d)) => format!("{past} ({d})"),
            StepOutcome::Failure(why) => format!("Failed to {infinitive}: {why}"),
            StepOutcome::WouldDo => format!("Would {infinitive}"),
            StepOutcome::NotAttempted(why) => format!("Did not {infinitive}: {why}"),
        }
    }
}

/// Which finding and which plan a step belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepContext {
    /// [`finding_uid`] of the finding acted on.
    pub finding_uid: Option<String>,
    /// The plan's journal id; every step of one plan shares it.
    pub command_uid: Option<String>,
}

/// A step done to a process or a launchd job (OCSF 7003).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProcessAction {
    /// `launchctl bootout`.
    StopJob,
    /// `launchctl disable`.
    DisableJob,
    /// Undo of stop/disable (restore).
    EnableJob,
    /// SIGTERM, grace, SIGKILL, identity re-verified before each.
    KillProcess,
    /// Remove a login item from Background Task Management.
    DisableLoginItem,
}

impl ProcessAction {
    fn wire(self) -> (Action, RemediationActivity, bool) {
        use RemediationActivity::{Isolate, Restore};
        match self {
            ProcessAction::StopJob => (Action::StopJob, Isolate, true),
            ProcessAction::DisableJob => (Action::DisableJob, Isolate, true),
            ProcessAction::EnableJob => (Action::EnableJob, Restore, false),
            // A killed process cannot be brought back; restoring its files
            // lets launchd start it again, which is a new process.
            ProcessAction::KillProcess => (Action::KillProcess, Isolate, false),
            ProcessAction::DisableLoginItem => (Action::DisableLoginItem, Isolate, true),
        }
    }
}

/// The target of a kill: a process as observed.
pub fn process_target(p: &ProcessIdentity) -> ProcessTarget {
    ProcessTarget {
        pid: p.pid,
        name: p.name.clone(),
        path: p.path.as_deref().map(lossy),
        start_time_us: Some(p.start_time.unix_us),
        uid: Some(p.uid),
        launchd_label: None,
    }
}

/// The target of a kill as `act::kill` reports it for a descendant found
/// while walking the tree.
pub fn process_report_target(r: &ProcessReport) -> ProcessTarget {
    ProcessTarget {
        pid: r.pid,
        name: r.name.clone().unwrap_or_else(|| format!("pid {}", r.pid)),
        path: r.path.as_deref().map(lossy),
        start_time_us: None,
        uid: None,
        launchd_label: None,
    }
}

/// The target of a job action: the launchd label, and the job's process
/// when one runs. The wire requires a pid; a job with no running process
/// is written with pid 0 (no real process has it) and its label as name.
pub fn job_target(label: &str, process: Option<&ProcessIdentity>) -> ProcessTarget {
    match process {
        Some(p) => ProcessTarget {
            launchd_label: Some(label.to_string()),
            ..process_target(p)
        },
        None => ProcessTarget {
            pid: 0,
            name: label.to_string(),
            path: None,
            start_time_us: None,
            uid: None,
            launchd_label: Some(label.to_string()),
        },
    }
}

/// How `act::kill` ended for one process, as a step outcome.
pub fn kill_outcome(o: &KillOutcome) -> StepOutcome {
    match o {
        KillOutcome::Terminated => StepOutcome::Success(Some("exited after SIGTERM".into())),
        KillOutcome::Killed => StepOutcome::Success(Some(
            "still running after the grace period; SIGKILL ended it".into(),
        )),
        KillOutcome::AlreadyGone => {
            StepOutcome::NotAttempted("it had exited before it was signalled".into())
        }
        KillOutcome::IdentityChanged => StepOutcome::NotAttempted(
            "its pid now belongs to another process; nothing was sent".into(),
        ),
        KillOutcome::Refused(r) => StepOutcome::NotAttempted(match r {
            Refusal::SystemProcess => "pid 0 and 1 are never signalled".to_string(),
            Refusal::OwnProcess => "the agent never signals itself".to_string(),
            Refusal::IdentityUnknown(why) => {
                format!("its identity could not be verified ({why})")
            }
            Refusal::NoExecutable => {
                "its executable is unknown, so its identity cannot be verified".to_string()
            }
            Refusal::OutsideReach { uid, actor } => format!(
                "it runs as uid {uid}, outside the reach of uid {actor} whose finding this is; \
                 lenscap never acts beyond the actor's reach"
            ),
        }),
        KillOutcome::Survived => StepOutcome::Failure("still running after SIGKILL".to_string()),
        KillOutcome::Error(e) => StepOutcome::Failure(e.clone()),
    }
}

/// A Process Remediation Activity for one step.
pub fn process_remediation(
    target: ProcessTarget,
    action: ProcessAction,
    outcome: &StepOutcome,
    ctx: &StepContext,
) -> Body {
    let (wire_action, activity, reversible) = action.wire();
    let job = target
        .launchd_label
        .clone()
        .unwrap_or_else(|| target.name.clone());
    let who = format!("{} (pid {})", target.name, target.pid);
    let (inf, past) = match action {
        ProcessAction::StopJob => (
            format!("unload launchd job {job}"),
            format!("Unloaded launchd job {job}"),
        ),
        ProcessAction::DisableJob => (
            format!("disable launchd job {job}"),
            format!("Disabled launchd job {job}"),
        ),
        ProcessAction::EnableJob => (
            format!("re-enable launchd job {job}"),
            format!("Re-enabled launchd job {job}"),
        ),
        ProcessAction::KillProcess => (format!("terminate {who}"), format!("Terminated {who}")),
        ProcessAction::DisableLoginItem => (
            format!("disable login item {}", target.name),
            format!("Disabled login item {}", target.name),
        ),
    };
    let message = outcome.sentence(&inf, &past);
    let (outcome, would_do) = outcome.wire();
    Body::ProcessRemediation(Remediation {
        activity,
        action: wire_action,
        target,
        outcome,
        would_do,
        reversible,
        finding_uid: ctx.finding_uid.clone(),
        command_uid: ctx.command_uid.clone(),
        message,
    })
}

/// A step done to a file (OCSF 7002).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileAction {
    /// Move into the vault (Evict).
    Quarantine,
    /// Put back from the vault (Restore).
    Restore,
    /// Watch the original path and remove re-creations (Harden).
    Guard,
    /// A mode-000 file where the helper's hidden folder was (Harden).
    Placeholder,
    /// Stop guarding; remove a placeholder (Restore).
    RemoveGuard,
    /// `reinstall_attempt`: a guarded path was re-created and moved back
    /// into quarantine (Harden + `quarantine_file`; see the module doc).
    ReinstallRemoved,
}

impl FileAction {
    fn wire(self) -> (Action, RemediationActivity, bool) {
        use RemediationActivity::{Evict, Harden, Restore};
        match self {
            FileAction::Quarantine => (Action::QuarantineFile, Evict, true),
            FileAction::Restore => (Action::RestoreFile, Restore, false),
            FileAction::Guard => (Action::GuardPath, Harden, true),
            FileAction::Placeholder => (Action::GuardPath, Harden, true),
            FileAction::RemoveGuard => (Action::RemoveGuard, Restore, false),
            FileAction::ReinstallRemoved => (Action::QuarantineFile, Harden, true),
        }
    }
}

/// A file target with only its path; the caller fills what it knows
/// (`quarantine_path`, `sha256`, `owner_uid`, `mode`).
pub fn file_target(path: &Path) -> FileTarget {
    FileTarget {
        path: lossy(path),
        quarantine_path: None,
        sha256: None,
        owner_uid: None,
        mode: None,
    }
}

/// A File Remediation Activity for one step. `quarantine_id` is the vault
/// record (what `lenscap quarantine restore <id>` takes): it is named in
/// the message and, when the step has no plan id of its own (a restore
/// from the CLI), becomes `command_uid`, so the Evict and the Restore of
/// one record pair up at the collector.
pub fn file_remediation(
    target: FileTarget,
    action: FileAction,
    quarantine_id: Option<&str>,
    outcome: &StepOutcome,
    ctx: &StepContext,
) -> Body {
    let (wire_action, activity, reversible) = action.wire();
    let p = target.path.clone();
    let into = quarantine_id
        .map(|id| format!("quarantine {id}"))
        .unwrap_or_else(|| "quarantine".to_string());
    let (inf, past) = match action {
        FileAction::Quarantine => (
            format!("move {p} into {into}"),
            match quarantine_id {
                Some(id) => {
                    format!("Moved {p} into {into}; `lenscap quarantine restore {id}` puts it back")
                }
                None => format!("Moved {p} into {into}"),
            },
        ),
        FileAction::Restore => (
            format!("restore {p} from {into}"),
            format!("Restored {p} from {into}"),
        ),
        FileAction::Guard => (
            format!("guard {p} against re-creation"),
            format!("Guarding {p} against re-creation"),
        ),
        FileAction::Placeholder => (
            format!("block {p} with a mode-000 placeholder"),
            format!("Blocked {p} with a mode-000 placeholder"),
        ),
        FileAction::RemoveGuard => (
            format!("stop guarding {p}"),
            format!("Stopped guarding {p}"),
        ),
        FileAction::ReinstallRemoved => (
            format!("move re-created {p} into {into}"),
            format!("re-created {p} was moved into {into} again"),
        ),
    };
    let mut message = outcome.sentence(&inf, &past);
    if action == FileAction::ReinstallRemoved {
        message = format!("Reinstall attempt: {message}");
    }
    let (outcome, would_do) = outcome.wire();
    Body::FileRemediation(Remediation {
        activity,
        action: wire_action,
        target,
        outcome,
        would_do,
        reversible,
        finding_uid: ctx.finding_uid.clone(),
        command_uid: ctx
            .command_uid
            .clone()
            .or_else(|| quarantine_id.map(str::to_string)),
        message,
    })
}

/// A privacy grant reset (`tccutil reset`, OCSF 7002 Harden): the target
/// is the TCC.db that held it (`owner_uid` its user). Not reversible by
/// lenscap: only the person can grant it again.
pub fn grant_remediation(
    target: FileTarget,
    grant: &crate::model::GrantReset,
    outcome: &StepOutcome,
    ctx: &StepContext,
) -> Body {
    let what = format!(
        "the {} grant of {} for uid {}",
        grant.service.json_name().replace('_', " "),
        grant.client,
        grant.uid
    );
    let message = outcome.sentence(&format!("reset {what}"), &format!("Reset {what}"));
    let (outcome, would_do) = outcome.wire();
    Body::FileRemediation(Remediation {
        activity: RemediationActivity::Harden,
        action: Action::ResetGrant,
        target,
        outcome,
        would_do,
        reversible: false,
        finding_uid: ctx.finding_uid.clone(),
        command_uid: ctx.command_uid.clone(),
        message,
    })
}
