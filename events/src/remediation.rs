//! Process and File Remediation Activity (OCSF 1.3 classes 7003 and 7002):
//! one step the agent took — or, in monitor mode, would have taken.
//!
//! Both classes share every field but the target (`process` or `file`), so
//! one generic [`Remediation<T>`] serves both; the target type decides the
//! class.

use serde::{Deserialize, Serialize};

/// OCSF category "Remediation".
pub const REMEDIATION_CATEGORY: u32 = 7;
/// OCSF File Remediation Activity.
pub const FILE_REMEDIATION_CLASS: u32 = 7002;
/// OCSF Process Remediation Activity.
pub const PROCESS_REMEDIATION_CLASS: u32 = 7003;

/// OCSF remediation `activity_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RemediationActivity {
    /// Cut it off: stop a job, kill a process, disable a login item.
    Isolate = 1,
    /// Remove it: move a file into the quarantine vault.
    Evict = 2,
    /// Undo an earlier step.
    Restore = 3,
    /// Keep it from coming back: a guard file where its folder would go.
    Harden = 4,
}

impl RemediationActivity {
    fn from_id(id: u8) -> Option<RemediationActivity> {
        match id {
            1 => Some(RemediationActivity::Isolate),
            2 => Some(RemediationActivity::Evict),
            3 => Some(RemediationActivity::Restore),
            4 => Some(RemediationActivity::Harden),
            _ => None,
        }
    }
}

/// lenscap's name for the step. New actions may be added; a collector that
/// does not know one reads it as `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `launchctl bootout` of the job that runs it.
    StopJob,
    /// `launchctl disable` so launchd does not start it again.
    DisableJob,
    /// Undo of `disable_job`/`stop_job`.
    EnableJob,
    /// Signal the process (after re-verifying pid + start time + path).
    KillProcess,
    /// Remove a login item from Background Task Management.
    DisableLoginItem,
    /// Move a file or bundle into the quarantine vault.
    QuarantineFile,
    /// Put a quarantined file back, with its owner and mode.
    RestoreFile,
    /// Create a guard (an unwritable file) where the helper would reinstall.
    GuardPath,
    /// Remove a guard.
    RemoveGuard,
    /// Reset a privacy grant (camera, microphone, screen recording) the
    /// helper held (`tccutil reset`); the target is the TCC.db.
    ResetGrant,
    #[serde(other)]
    Other,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::StopJob => "stop_job",
            Action::DisableJob => "disable_job",
            Action::EnableJob => "enable_job",
            Action::KillProcess => "kill_process",
            Action::DisableLoginItem => "disable_login_item",
            Action::QuarantineFile => "quarantine_file",
            Action::RestoreFile => "restore_file",
            Action::GuardPath => "guard_path",
            Action::RemoveGuard => "remove_guard",
            Action::ResetGrant => "reset_grant",
            Action::Other => "other",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeStatus {
    Success,
    Failure,
    /// Not carried out: monitor mode (`would_do`), or held back (circuit
    /// breaker, protected target).
    NotAttempted,
}

impl OutcomeStatus {
    /// OCSF `status_id`: Success 1, Failure 2, Other 99.
    pub fn status_id(self) -> u8 {
        match self {
            OutcomeStatus::Success => 1,
            OutcomeStatus::Failure => 2,
            OutcomeStatus::NotAttempted => 99,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: OutcomeStatus,
    /// Why it failed or was not attempted, in plain words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The process a Process Remediation acted on (OCSF `process`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessTarget {
    pub pid: u32,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Start time in microseconds since the epoch, as verified before
    /// signalling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// The launchd job label, for job actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launchd_label: Option<String>,
}

/// The file a File Remediation acted on (OCSF `file`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileTarget {
    pub path: String,
    /// Where the quarantine vault keeps it (evict) or kept it (restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_uid: Option<u32>,
    /// Unix permission bits, e.g. 493 for 0o755.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// What a remediation was done to; decides the OCSF class.
pub trait RemediationTarget: Sized + Clone {
    const CLASS_UID: u32;
    const CLASS_NAME: &'static str;
    #[doc(hidden)]
    fn into_wire(self) -> (Option<ProcessTarget>, Option<FileTarget>);
    #[doc(hidden)]
    fn from_wire(process: Option<ProcessTarget>, file: Option<FileTarget>) -> Result<Self, String>;
}

impl RemediationTarget for ProcessTarget {
    const CLASS_UID: u32 = PROCESS_REMEDIATION_CLASS;
    const CLASS_NAME: &'static str = "Process Remediation Activity";
    fn into_wire(self) -> (Option<ProcessTarget>, Option<FileTarget>) {
        (Some(self), None)
    }
    fn from_wire(process: Option<ProcessTarget>, file: Option<FileTarget>) -> Result<Self, String> {
        match (process, file) {
            (Some(p), None) => Ok(p),
            (None, _) => Err("missing field `process` (class 7003 acts on a process)".into()),
            (Some(_), Some(_)) => Err("field `file` does not belong in class 7003".into()),
        }
    }
}

impl RemediationTarget for FileTarget {
    const CLASS_UID: u32 = FILE_REMEDIATION_CLASS;
    const CLASS_NAME: &'static str = "File Remediation Activity";
    fn into_wire(self) -> (Option<ProcessTarget>, Option<FileTarget>) {
        (None, Some(self))
    }
    fn from_wire(process: Option<ProcessTarget>, file: Option<FileTarget>) -> Result<Self, String> {
        match (process, file) {
            (None, Some(f)) => Ok(f),
            (_, None) => Err("missing field `file` (class 7002 acts on a file)".into()),
            (Some(_), Some(_)) => Err("field `process` does not belong in class 7002".into()),
        }
    }
}

/// A remediation payload. On the wire it also carries `class_uid`
/// (7003/7002), `category_uid` 7, `activity_id`, `type_uid` and
/// `status_id`, derived when written and checked when read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    into = "RemediationWire",
    try_from = "RemediationWire",
    bound(
        serialize = "T: RemediationTarget",
        deserialize = "T: RemediationTarget"
    )
)]
pub struct Remediation<T> {
    pub activity: RemediationActivity,
    pub action: Action,
    pub target: T,
    pub outcome: Outcome,
    /// Monitor mode: this is what the agent *would* have done; nothing was
    /// changed. Implies `outcome.status = not_attempted`.
    pub would_do: bool,
    /// Whether a later Restore can undo it.
    pub reversible: bool,
    /// `finding_info.uid` of the Detection Finding this acts on.
    pub finding_uid: Option<String>,
    /// The plan (journal entry) this step belongs to: steps of one plan
    /// share it (OCSF `command_uid`).
    pub command_uid: Option<String>,
    pub message: String,
}

#[derive(Serialize, Deserialize)]
struct RemediationWire {
    class_uid: u32,
    category_uid: u32,
    activity_id: u8,
    type_uid: u32,
    status_id: u8,
    action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    process: Option<ProcessTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<FileTarget>,
    outcome: Outcome,
    would_do: bool,
    reversible: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    finding_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command_uid: Option<String>,
    message: String,
}

impl<T: RemediationTarget> From<Remediation<T>> for RemediationWire {
    fn from(r: Remediation<T>) -> RemediationWire {
        let (process, file) = r.target.into_wire();
        RemediationWire {
            class_uid: T::CLASS_UID,
            category_uid: REMEDIATION_CATEGORY,
            activity_id: r.activity as u8,
            type_uid: T::CLASS_UID * 100 + r.activity as u32,
            status_id: r.outcome.status.status_id(),
            action: r.action,
            process,
            file,
            outcome: r.outcome,
            would_do: r.would_do,
            reversible: r.reversible,
            finding_uid: r.finding_uid,
            command_uid: r.command_uid,
            message: r.message,
        }
    }
}

impl<T: RemediationTarget> TryFrom<RemediationWire> for Remediation<T> {
    type Error = String;
    fn try_from(w: RemediationWire) -> Result<Remediation<T>, String> {
        crate::ocsf::check_class(
            w.class_uid,
            w.category_uid,
            T::CLASS_UID,
            REMEDIATION_CATEGORY,
            T::CLASS_NAME,
        )?;
        let activity = RemediationActivity::from_id(w.activity_id).ok_or_else(|| {
            format!(
                "activity_id {} is not a remediation activity (1 Isolate, 2 Evict, 3 Restore, 4 Harden)",
                w.activity_id
            )
        })?;
        crate::ocsf::check_type_uid(w.type_uid, T::CLASS_UID, w.activity_id)?;
        let want_status = w.outcome.status.status_id();
        if w.status_id != want_status {
            return Err(format!(
                "status_id {} does not match outcome.status (expected {want_status})",
                w.status_id
            ));
        }
        if w.would_do && w.outcome.status != OutcomeStatus::NotAttempted {
            return Err(
                "would_do is true but outcome.status is not `not_attempted`: a step monitor mode only planned cannot have succeeded or failed".into(),
            );
        }
        let target = T::from_wire(w.process, w.file)?;
        Ok(Remediation {
            activity,
            action: w.action,
            target,
            outcome: w.outcome,
            would_do: w.would_do,
            reversible: w.reversible,
            finding_uid: w.finding_uid,
            command_uid: w.command_uid,
            message: w.message,
        })
    }
}
