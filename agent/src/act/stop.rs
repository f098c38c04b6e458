//! Plan step 1: unload the launchd job, so KeepAlive cannot bring the
//! helper back the moment its process is killed.
//!
//! - [`domain_for`] names the job: `system/<label>` for a LaunchDaemon,
//!   `gui/<uid>/<label>` for a user's LaunchAgent or login item.
//! - [`bootout`] runs `launchctl bootout <target>`. A job that is already
//!   gone is not an error ([`BootoutOutcome::NotLoaded`]): the step is
//!   idempotent, so a plan resumed after a crash can simply run it again.
//! - [`print`] asks launchd about the job (`launchctl print <target>`).
//!
//! `launchctl` is run through [`crate::command::run`] (deadline,
//! bounded output) from the configured `LaunchctlPath`. A label comes from a
//! plist the helper wrote itself, so it is checked ([`Label::parse`]) before
//! it is put into a command line.
//!
//! On macOS `bootout` also stops the job's process (SIGTERM, SIGKILL after
//! its exit timeout) and waits for it, so give it a timeout longer than the
//! job's `ExitTimeOut` (default 20 s).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::command::{self, CommandError, Output};
use crate::model::{PersistenceItem, PersistenceKind};
use crate::parse::launchctl::{self, Failure, JobStatus, PrintError};

/// Most of launchctl's output we keep; `print` of a busy job is a few KiB.
const MAX_OUTPUT: usize = 256 * 1024;
/// launchd's own limit on a label's length.
const MAX_LABEL: usize = 255;

#[derive(Debug, thiserror::Error)]
pub enum StopError {
    #[error("{source} (in {path}); the job is left loaded: unload it by hand")]
    BadLabel {
        path: PathBuf,
        #[source]
        source: LabelError,
    },
    #[error("{path} has no launchd label, so there is no job to unload")]
    NoLabel { path: PathBuf },
    #[error(
        "cannot tell which user's gui domain runs {path}: its owner is {owner:?} and no running process says; pass the helper's uid"
    )]
    NoUserDomain { path: PathBuf, owner: Option<u32> },
    #[error("launchctl {verb} {target}: {source}")]
    Command {
        verb: &'static str,
        target: String,
        #[source]
        source: CommandError,
    },
    #[error(
        "`{program} {verb} {target}` failed (exit {code:?}): {message}; check that the agent runs as root and that LaunchctlPath is the real launchctl",
        message = failure.message
    )]
    Launchctl {
        program: PathBuf,
        verb: &'static str,
        target: String,
        code: Option<i32>,
        /// Boxed: it is large and errors should stay small.
        failure: Box<Failure>,
        /// launchctl's standard error, capped, for the journal.
        stderr: String,
    },
    #[error("`launchctl print {target}`: {source}")]
    Print {
        target: String,
        #[source]
        source: PrintError,
    },
}

/// A label [`Label::parse`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("launchd label {label:?} cannot be put into a launchctl command line: {reason}")]
pub struct LabelError {
    /// The label, cut to 255 characters.
    pub label: String,
    pub reason: &'static str,
}

/// A launchd label that is safe to put into a service target: non-empty,
/// at most 255 bytes, no `/` (it would change the target's meaning), no
/// whitespace or control characters (they would corrupt launchctl's
/// line-based output and our logs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Label(String);

impl Label {
    /// Check `label`; the error says what is wrong with it.
    pub fn parse(label: &str) -> Result<Label, LabelError> {
        Label::check(label).map_err(|reason| LabelError {
            label: label.chars().take(MAX_LABEL).collect(),
            reason,
        })
    }

    fn check(label: &str) -> Result<Label, &'static str> {
        if label.is_empty() {
            Err("it is empty")
        } else if label.len() > MAX_LABEL {
            Err("it is longer than 255 bytes")
        } else if label.contains('/') {
            Err("it contains '/'")
        } else if label.chars().any(char::is_whitespace) {
            Err("it contains whitespace")
        } else if label.chars().any(char::is_control) {
            Err("it contains a control character")
        } else {
            Ok(Label(label.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A launchd service target: the domain a job lives in, and its label.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Domain {
    /// `system/<label>`: LaunchDaemons.
    System { label: Label },
    /// `gui/<uid>/<label>`: a user's agents while they are logged in.
    Gui { uid: u32, label: Label },
}

impl Domain {
    pub fn label(&self) -> &Label {
        match self {
            Domain::System { label } | Domain::Gui { label, .. } => label,
        }
    }

    /// Could `actor` (a uid; 0 is root) boot this job out itself? A user
    /// reaches only jobs in their own gui domain.
    pub fn within_reach(&self, actor: u32) -> bool {
        match self {
            _ if actor == 0 => true,
            Domain::System { .. } => false,
            Domain::Gui { uid, .. } => *uid == actor,
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Domain::System { label } => write!(f, "system/{label}"),
            Domain::Gui { uid, label } => write!(f, "gui/{uid}/{label}"),
        }
    }
}

/// The service target of `item`.
///
/// A LaunchDaemon runs in `system`. A LaunchAgent or login item runs in the
/// gui domain of a user: the owner of its plist (`owner_uid`), or, when the
/// owner is root or unknown, `process_uid` (the uid of the helper's running
/// process, if the caller has one). A root-owned agent in
/// `/Library/LaunchAgents` is loaded into *every* logged-in user's gui
/// domain, and `gui/0` is not where it runs, so its owner says nothing;
/// the caller unloads it per user with [`Domain::Gui`].
pub fn domain_for(item: &PersistenceItem, process_uid: Option<u32>) -> Result<Domain, StopError> {
    let raw = item.label.as_deref().ok_or_else(|| StopError::NoLabel {
        path: item.path.clone(),
    })?;
    let label = Label::parse(raw).map_err(|source| StopError::BadLabel {
        path: item.path.clone(),
        source,
    })?;
    match item.kind {
        PersistenceKind::LaunchDaemon => Ok(Domain::System { label }),
        PersistenceKind::LaunchAgent | PersistenceKind::LoginItem => {
            let uid = item
                .owner_uid
                .filter(|&u| u != 0)
                .or(process_uid.filter(|&u| u != 0))
                .ok_or_else(|| StopError::NoUserDomain {
                    path: item.path.clone(),
                    owner: item.owner_uid,
                })?;
            Ok(Domain::Gui { uid, label })
        }
    }
}

/// What `bootout` achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootoutOutcome {
    /// launchctl unloaded the job (and stopped its process).
    Unloaded,
    /// The job was not loaded (never was, or already booted out, or the
    /// user has no session): nothing to do. `detail` is launchctl's word.
    NotLoaded { detail: String },
}

/// `launchctl bootout <target>`.
///
/// Exit 0 → [`BootoutOutcome::Unloaded`]. "Not loaded" answers (exit 113,
/// `Could not find service`, `Boot-out failed: 3: No such process`, no such
/// domain) → [`BootoutOutcome::NotLoaded`]. launchd's ambiguous
/// `5: Input/output error` is settled by asking `print`: a job `print`
/// cannot find is not loaded; one it still shows is an error. Anything
/// else is [`StopError::Launchctl`] with launchctl's message.
pub fn bootout(
    launchctl: &Path,
    target: &Domain,
    timeout: Duration,
) -> Result<BootoutOutcome, StopError> {
    let target_text = target.to_string();
    let out = run(launchctl, "bootout", &target_text, timeout)?;
    if out.success() {
        return Ok(BootoutOutcome::Unloaded);
    }
    let failure = failure_of(&out);
    if failure.is_not_loaded() {
        return Ok(BootoutOutcome::NotLoaded {
            detail: failure.message,
        });
    }
    if failure.is_io_error()
        && let Ok(None) = print(launchctl, target, timeout)
    {
        return Ok(BootoutOutcome::NotLoaded {
            detail: failure.message,
        });
    }
    Err(launchctl_error(
        launchctl,
        "bootout",
        target_text,
        &out,
        failure,
    ))
}

/// `launchctl print <target>`: `Ok(None)` when launchd has no such job,
/// the job's status otherwise.
pub fn print(
    launchctl: &Path,
    target: &Domain,
    timeout: Duration,
) -> Result<Option<JobStatus>, StopError> {
    let target_text = target.to_string();
    let out = run(launchctl, "print", &target_text, timeout)?;
    if out.success() {
        return launchctl::parse_print(&out.stdout_lossy())
            .map(Some)
            .map_err(|source| StopError::Print {
                target: target_text,
                source,
            });
    }
    let failure = failure_of(&out);
    if failure.is_not_loaded() {
        return Ok(None);
    }
    Err(launchctl_error(
        launchctl,
        "print",
        target_text,
        &out,
        failure,
    ))
}

fn run(
    launchctl: &Path,
    verb: &'static str,
    target: &str,
    timeout: Duration,
) -> Result<Output, StopError> {
    command::run(launchctl, &[verb, target], timeout, MAX_OUTPUT).map_err(|source| {
        StopError::Command {
            verb,
            target: target.to_string(),
            source,
        }
    })
}

/// launchctl writes its complaints to stderr, except when it does not
/// (`Bad request.` goes to stdout on some versions): read both.
fn failure_of(out: &Output) -> Failure {
    let text = format!("{}\n{}", out.stderr_lossy(), out.stdout_lossy());
    launchctl::parse_failure(out.code, &text)
}

fn launchctl_error(
    launchctl: &Path,
    verb: &'static str,
    target: String,
    out: &Output,
    failure: Failure,
) -> StopError {
    StopError::Launchctl {
        program: launchctl.to_path_buf(),
        verb,
        target,
        code: out.code,
        failure: Box::new(failure),
        stderr: out.stderr_lossy().chars().take(4096).collect(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
#[path = "stop/tests.rs"]
mod tests;
