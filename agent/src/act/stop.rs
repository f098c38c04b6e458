//! Plan step 1: unload the launchd job, so KeepAlive cannot bring the
//! helper back the moment its process is killed.
//!
//! - [`domain_for`] names the job: `system/<label>` for a LaunchDaemon,
//!   `gui/<uid>/<label>` for a user's LaunchAgent or login item.
//! - [`bootout`] runs `launchctl bootout <target>`. A job that is already
//!   gone is not an error ([`BootoutOutcome::NotLoaded`]): the step is
//!   idempotent, so a plan resumed after a crash can simply run it again.
//!   For a user's job, `gui/<uid>` is tried and, when the job is not
//!   there, `user/<uid>`: agents limited to the `Background` or
//!   `StandardIO` session types, and agents loaded over SSH, live in the
//!   user domain, and a miss in `gui` alone would leave a KeepAlive job
//!   running.
//! - [`print`] asks launchd about the job (`launchctl print <target>`).
//!
//! `launchctl` is run through [`crate::command::run`] (deadline,
//! bounded output) from the configured `LaunchctlPath`. A label comes from a
//! plist the helper wrote itself, so it is checked ([`Label::parse`]) before
//! it is put into a command line.
//!
//! Bootout is asynchronous. launchd sends the job's process SIGTERM
//! (SIGKILL after its `ExitTimeOut`, 20 s by default) and removes the job
//! once the process is gone; `launchctl` may return before that (exit 0)
//! or say so (`Boot-out failed: 36: Operation now in progress`). Either
//! way [`bootout`] then asks `print` until launchd no longer knows the job
//! ([`SETTLE`] at most), and each launchctl run gets at least
//! [`MIN_TIMEOUT`], longer than an `ExitTimeOut` of 30 s, whatever the
//! caller passed.

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
/// The least time a `launchctl bootout` is given: above a job's
/// `ExitTimeOut` (20 s by default; lenscap's own daemon sets 30 s).
pub const MIN_TIMEOUT: Duration = Duration::from_secs(35);
/// How long, after a bootout launchd accepted, `print` is asked whether the
/// job is gone (launchd removes it once its process exits, SIGKILL at the
/// latest after `ExitTimeOut`).
pub const SETTLE: Duration = Duration::from_secs(40);
/// Between two `print`s while waiting for a job to go.
const SETTLE_POLL: Duration = Duration::from_millis(250);

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
    #[error(
        "cannot tell who is logged in, so {path} (a root-owned LaunchAgent, loaded into every logged-in user's gui domain) is left loaded: {detail}"
    )]
    ConsoleUsers { path: PathBuf, detail: String },
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
    #[error(
        "launchd accepted `launchctl bootout {target}` but still lists the job after {waited:?} ({detail}); its process may be ignoring SIGTERM"
    )]
    StillLoaded {
        target: String,
        waited: Duration,
        detail: String,
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
    /// `user/<uid>/<label>`: a user's agents outside the GUI session
    /// (`LimitLoadToSessionType` `Background`/`StandardIO`, or loaded over
    /// SSH). [`bootout`] tries it after a miss in `gui/<uid>`.
    User { uid: u32, label: Label },
}

impl Domain {
    pub fn label(&self) -> &Label {
        match self {
            Domain::System { label } | Domain::Gui { label, .. } | Domain::User { label, .. } => {
                label
            }
        }
    }

    /// Could `actor` (a uid; 0 is root) boot this job out itself? A user
    /// reaches only jobs in their own gui domain.
    pub fn within_reach(&self, actor: u32) -> bool {
        match self {
            _ if actor == 0 => true,
            Domain::System { .. } => false,
            Domain::Gui { uid, .. } | Domain::User { uid, .. } => *uid == actor,
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Domain::System { label } => write!(f, "system/{label}"),
            Domain::Gui { uid, label } => write!(f, "gui/{uid}/{label}"),
            Domain::User { uid, label } => write!(f, "user/{uid}/{label}"),
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

/// Every service target a bootout of `item` must reach.
///
/// A root-owned LaunchAgent (`/Library/LaunchAgents`) is loaded by launchd
/// into the gui domain of *each* user logged in at the console, and
/// `gui/0` is not where it runs: its targets are `gui/<uid>/<label>` for
/// every console user (`console_users`, asked only in this case) and for
/// the uid its running process has (`process_uid`), each once. Nobody
/// logged in and nothing running is an empty list: the job is loaded
/// nowhere. Every other item has the one target [`domain_for`] names — a
/// user's agent only ever its owner's domain, whoever else is logged in.
pub fn domains_for(
    item: &PersistenceItem,
    process_uid: Option<u32>,
    console_users: &dyn Fn() -> Result<Vec<u32>, String>,
) -> Result<Vec<Domain>, StopError> {
    if item.kind != PersistenceKind::LaunchAgent || item.owner_uid != Some(0) {
        return domain_for(item, process_uid).map(|d| vec![d]);
    }
    // The label is checked as for any other item.
    let label = match domain_for(item, Some(u32::MAX)) {
        Ok(d) => d.label().clone(),
        Err(e) => return Err(e),
    };
    let mut uids = console_users().map_err(|detail| StopError::ConsoleUsers {
        path: item.path.clone(),
        detail,
    })?;
    uids.extend(process_uid);
    // Root has no gui domain of its own on a Mac (loginwindow runs as the
    // user); a gui/0 target would only ever be "not found".
    uids.retain(|&u| u != 0);
    uids.sort_unstable();
    uids.dedup();
    Ok(uids
        .into_iter()
        .map(|uid| Domain::Gui {
            uid,
            label: label.clone(),
        })
        .collect())
}

/// What `bootout` achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootoutOutcome {
    /// launchd unloaded the job from `from` and no longer lists it.
    Unloaded { from: Domain },
    /// The job was not loaded (never was, or already booted out, or the
    /// user has no session): nothing to do. `detail` is launchctl's word.
    NotLoaded { detail: String },
}

/// `launchctl bootout <target>`, then wait until launchd has let the job go.
///
/// Exit 0 or `36: Operation now in progress` → launchd is stopping the job:
/// `print` is asked until it no longer finds it ([`SETTLE`] at most;
/// [`StopError::StillLoaded`] after that) → [`BootoutOutcome::Unloaded`].
/// "Not loaded" answers (exit 113, `Could not find service`, `Boot-out
/// failed: 3: No such process`, no such domain) → [`BootoutOutcome::NotLoaded`].
/// launchd's ambiguous `5: Input/output error` is settled by asking
/// `print`: a job `print` cannot find is not loaded; one it still shows is
/// an error. Anything else is [`StopError::Launchctl`] with launchctl's
/// message. A [`Domain::Gui`] target that is not loaded is tried again as
/// [`Domain::User`] (see the module doc). Each run gets at least
/// [`MIN_TIMEOUT`].
pub fn bootout(
    launchctl: &Path,
    target: &Domain,
    timeout: Duration,
) -> Result<BootoutOutcome, StopError> {
    bootout_settling(launchctl, target, timeout.max(MIN_TIMEOUT), SETTLE)
}

/// [`bootout`] with the run timeout and settle window given as they are
/// (tests use short ones).
pub fn bootout_settling(
    launchctl: &Path,
    target: &Domain,
    timeout: Duration,
    settle: Duration,
) -> Result<BootoutOutcome, StopError> {
    let outcome = bootout_one(launchctl, target, timeout, settle)?;
    match (target, outcome) {
        (Domain::Gui { uid, label }, BootoutOutcome::NotLoaded { detail }) => {
            let user = Domain::User {
                uid: *uid,
                label: label.clone(),
            };
            match bootout_one(launchctl, &user, timeout, settle)? {
                BootoutOutcome::NotLoaded {
                    detail: user_detail,
                } => Ok(BootoutOutcome::NotLoaded {
                    detail: format!("{detail}; {user}: {user_detail}"),
                }),
                unloaded => Ok(unloaded),
            }
        }
        (_, outcome) => Ok(outcome),
    }
}

fn bootout_one(
    launchctl: &Path,
    target: &Domain,
    timeout: Duration,
    settle: Duration,
) -> Result<BootoutOutcome, StopError> {
    let target_text = target.to_string();
    let out = run(launchctl, "bootout", &target_text, timeout)?;
    let failure = (!out.success()).then(|| failure_of(&out));
    match failure {
        None => settled(launchctl, target, timeout, settle, "exit 0"),
        Some(f) if f.is_in_progress() => settled(launchctl, target, timeout, settle, &f.message),
        Some(f) if f.is_not_loaded() => Ok(BootoutOutcome::NotLoaded { detail: f.message }),
        Some(f) if f.is_io_error() => {
            if let Ok(None) = print(launchctl, target, timeout) {
                return Ok(BootoutOutcome::NotLoaded { detail: f.message });
            }
            Err(launchctl_error(launchctl, "bootout", target_text, &out, f))
        }
        Some(f) => Err(launchctl_error(launchctl, "bootout", target_text, &out, f)),
    }
}

/// After launchd accepted a bootout: ask `print` until the job is gone.
fn settled(
    launchctl: &Path,
    target: &Domain,
    timeout: Duration,
    settle: Duration,
    said: &str,
) -> Result<BootoutOutcome, StopError> {
    let started = std::time::Instant::now();
    loop {
        let status = print(launchctl, target, timeout)?;
        let Some(status) = status else {
            return Ok(BootoutOutcome::Unloaded {
                from: target.clone(),
            });
        };
        if started.elapsed() >= settle {
            return Err(StopError::StillLoaded {
                target: target.to_string(),
                waited: started.elapsed(),
                detail: format!(
                    "bootout said {said:?}; print still shows state {:?}, pid {:?}",
                    status.state, status.pid
                ),
            });
        }
        std::thread::sleep(SETTLE_POLL);
    }
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
