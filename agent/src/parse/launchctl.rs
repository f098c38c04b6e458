//! What `launchctl` prints: the job report of `launchctl print
//! <domain>/<label>` and the error lines of a failed `print`, `bootout` or
//! `bootstrap`. Pure: text in, typed data out, nothing panics on input.
//!
//! ## `launchctl print`
//! A header `gui/501/com.example.helper = {`, then the job's properties as
//! `key = value` lines indented by **one** tab, with nested blocks
//! (`arguments = {`, `environment = {`, `endpoints = {`, …) whose lines are
//! indented by two tabs or more and may repeat keys (`endpoints` carries its
//! own `pid` and `state`). Only one-tab lines are the job's own facts.
//!
//! The helper being removed wrote its own plist, and `print` echoes parts of
//! it (arguments, environment) verbatim: an argument `"x\n\tpid = 1"` prints
//! as a one-tab `pid = 1` line. launchd prints each top-level key once, so a
//! key seen twice with different values is reported as *ambiguous* (the
//! field is `None` and the key is listed in [`JobStatus::ambiguous`]) rather
//! than trusting either copy: a planted line can hide a fact but never
//! replace it.
//!
//! ## Failures
//! - `Could not find service "x" in domain for system` (exit 113; `print`
//!   puts `Bad request.` before it; the gui form ends `… for user gui: 501`);
//! - `<Operation> failed: <errno>: <strerror>`: `Boot-out failed: 3: No such
//!   process` (bootout of a job that is not loaded, recent macOS),
//!   `Boot-out failed: 113: Could not find specified service` (older),
//!   `Bootstrap failed: 5: Input/output error` (already loaded, a race with
//!   a recent bootout, or a plist that is not root:wheel 0644),
//!   `Boot-out failed: 1: Operation not permitted` (not root),
//!   `Boot-out failed: 36: Operation now in progress` (launchd accepted the
//!   bootout and is still stopping the job: errno 36 is Darwin's
//!   `EINPROGRESS`; the job disappears once its process has exited);
//! - `Could not find domain for user gui: 501` (nobody logged in as 501).
//!
//! Shapes: `/work/shared/macos-reference.md` and the public samples listed in
//! `tests/fixtures/launchctl/README.md`.

/// Longest message kept from launchctl's output.
const MAX_MESSAGE: usize = 512;

/// The job facts `launchctl print <service-target>` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobStatus {
    /// The service target of the header line (`gui/501/com.example.helper`).
    pub target: Option<String>,
    pub state: Option<JobState>,
    /// The running process; `None` when not running (or ambiguous). PID 0
    /// is never a job's process and is read as absent.
    pub pid: Option<u32>,
    /// `program = …`: what launchd runs.
    pub program: Option<String>,
    /// `path = …`: the plist it was loaded from (or `(submitted by …)`).
    pub path: Option<String>,
    pub last_exit: Option<LastExit>,
    /// Keys printed more than once at the top level with different values;
    /// their fields are left `None` (see the module doc).
    pub ambiguous: Vec<String>,
}

impl JobStatus {
    /// Whether launchd reports a live process for the job.
    pub fn is_running(&self) -> bool {
        self.state == Some(JobState::Running) || self.pid.is_some()
    }
}

/// The `state = …` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Running,
    NotRunning,
    /// launchd will start it again (KeepAlive, throttled restart).
    SpawnScheduled,
    /// Any other word launchd uses, kept verbatim (capped).
    Other(String),
}

/// The `last exit code = …` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastExit {
    /// `(never exited)`.
    NeverExited,
    /// `78: EX_CONFIG` or plain `1`.
    Code { code: i32, name: Option<String> },
    /// Anything else, verbatim (capped).
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrintError {
    #[error(
        "launchctl print output has no `<target> = {{` header and no job properties (starts {excerpt:?}); is LaunchctlPath the real launchctl?"
    )]
    NotPrintOutput { excerpt: String },
}

/// Parse the standard output of a successful `launchctl print
/// <domain>/<label>`.
pub fn parse_print(text: &str) -> Result<JobStatus, PrintError> {
    let mut status = JobStatus {
        target: header(text),
        ..JobStatus::default()
    };
    let mut fields: Vec<(&str, &str)> = Vec::new();
    let mut conflicted: Vec<&str> = Vec::new();
    for (key, value) in text.lines().filter_map(top_level) {
        match fields.iter().find(|(k, _)| *k == key) {
            Some((_, seen)) if *seen != value => {
                if !conflicted.contains(&key) {
                    conflicted.push(key);
                }
            }
            Some(_) => {}
            None => fields.push((key, value)),
        }
    }
    if status.target.is_none() && fields.is_empty() {
        return Err(PrintError::NotPrintOutput {
            excerpt: cap(text.trim_start(), 80),
        });
    }
    for (key, value) in fields {
        if conflicted.contains(&key) {
            continue;
        }
        match key {
            "state" => status.state = Some(job_state(value)),
            "pid" => status.pid = value.parse().ok().filter(|&p: &u32| p != 0),
            "program" => status.program = Some(value.to_string()),
            "path" => status.path = Some(value.to_string()),
            "last exit code" => status.last_exit = Some(last_exit(value)),
            _ => {}
        }
    }
    status.ambiguous = conflicted.into_iter().map(str::to_string).collect();
    Ok(status)
}

/// `gui/501/x = {` on the first non-blank line → `gui/501/x`.
fn header(text: &str) -> Option<String> {
    let first = text.lines().find(|l| !l.trim().is_empty())?;
    if first.starts_with(char::is_whitespace) {
        return None;
    }
    let target = first.trim_end().strip_suffix("= {")?.trim_end();
    (!target.is_empty()).then(|| cap(target, MAX_MESSAGE))
}

/// A `\tkey = value` line at the job's own level; `None` for nested lines,
/// block openers (`arguments = {`), closers and blank lines.
fn top_level(line: &str) -> Option<(&str, &str)> {
    let body = line.strip_prefix('\t')?;
    if body.starts_with('\t') {
        return None;
    }
    let (key, value) = body.split_once(" = ")?;
    let (key, value) = (key.trim(), value.trim());
    if key.is_empty() || value.ends_with('{') {
        return None;
    }
    Some((key, value))
}

fn job_state(value: &str) -> JobState {
    match value {
        "running" => JobState::Running,
        "not running" => JobState::NotRunning,
        "spawn scheduled" => JobState::SpawnScheduled,
        other => JobState::Other(cap(other, 80)),
    }
}

fn last_exit(value: &str) -> LastExit {
    if value == "(never exited)" {
        return LastExit::NeverExited;
    }
    let (number, name) = match value.split_once(':') {
        Some((n, rest)) => (n.trim(), Some(rest.trim())),
        None => (value, None),
    };
    match number.parse::<i32>() {
        Ok(code) => LastExit::Code {
            code,
            name: name.filter(|n| !n.is_empty()).map(|n| cap(n, 80)),
        },
        Err(_) => LastExit::Other(cap(value, 80)),
    }
}

/// Why a launchctl command failed, read from its exit code and output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    /// The line that says what went wrong (or the first line), capped and
    /// with control characters removed, for logs and error messages.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// `Could not find service "x" in domain for …`, or exit 113 alone.
    ServiceNotFound {
        service: Option<String>,
        domain: Option<String>,
    },
    /// `Could not find domain for user gui: 501`: no such session.
    DomainNotFound { domain: Option<String> },
    /// `<operation> failed: <errno>: <description>`, e.g.
    /// `Boot-out failed: 3: No such process`.
    Operation {
        operation: String,
        errno: i32,
        description: String,
    },
    /// Nothing recognisable.
    Other,
}

/// launchctl's exit status when launchd has no such service (the code it
/// prints as `113: Could not find specified service`).
pub const EXIT_SERVICE_NOT_FOUND: i32 = 113;
/// errno `ESRCH`, what recent launchctl reports for bootout of a job that is
/// not loaded (`Boot-out failed: 3: No such process`).
const ESRCH: i32 = 3;
/// Darwin's `EINPROGRESS` (`<sys/errno.h>`: 36; Linux numbers it 115, so
/// it is spelled out rather than taken from `libc` on the build host).
pub const EINPROGRESS: i32 = 36;

impl Failure {
    /// The job is not loaded in the target domain: what `bootout` wanted
    /// anyway. True for a missing service, a missing domain (no session
    /// for that user), `113: Could not find specified service` and
    /// `Boot-out failed: 3: No such process`. `Bootstrap failed: 5` and
    /// other I/O errors are *not* included: they are ambiguous.
    pub fn is_not_loaded(&self) -> bool {
        match &self.kind {
            FailureKind::ServiceNotFound { .. } | FailureKind::DomainNotFound { .. } => true,
            FailureKind::Operation {
                operation, errno, ..
            } => *errno == EXIT_SERVICE_NOT_FOUND || (*errno == ESRCH && operation == "Boot-out"),
            FailureKind::Other => false,
        }
    }

    /// `Boot-out failed: 36: Operation now in progress`: launchd is stopping
    /// the job (SIGTERM sent, SIGKILL after its `ExitTimeOut`) and removes
    /// it once the process has gone. Not a failure: wait for `print` to
    /// stop finding it.
    pub fn is_in_progress(&self) -> bool {
        matches!(
            self.kind,
            FailureKind::Operation {
                errno: EINPROGRESS,
                ..
            }
        )
    }

    /// `<operation> failed: 5: Input/output error`: launchd refused without
    /// saying whether the job is loaded; ask `print` to find out.
    pub fn is_io_error(&self) -> bool {
        matches!(self.kind, FailureKind::Operation { errno: 5, .. })
    }
}

/// Read a failed launchctl run: its exit code (`None` when a signal ended
/// it) and its output (stderr, then stdout: launchctl is not consistent
/// about which one it writes).
pub fn parse_failure(exit_code: Option<i32>, output: &str) -> Failure {
    let lines = || output.lines().map(str::trim).filter(|l| !l.is_empty());
    for line in lines() {
        if let Some(kind) = service_not_found(line)
            .or_else(|| domain_not_found(line))
            .or_else(|| operation_failed(line))
        {
            return Failure {
                kind,
                message: clean(line),
            };
        }
    }
    let message = lines()
        .find(|l| *l != "Bad request.")
        .or_else(|| lines().next())
        .map(clean)
        .unwrap_or_else(|| match exit_code {
            Some(code) => format!("exit code {code}, no message"),
            None => "killed by a signal, no message".to_string(),
        });
    let kind = if exit_code == Some(EXIT_SERVICE_NOT_FOUND) {
        FailureKind::ServiceNotFound {
            service: None,
            domain: None,
        }
    } else {
        FailureKind::Other
    };
    Failure { kind, message }
}

/// `Could not find service "x" in domain for system` (quotes optional).
fn service_not_found(line: &str) -> Option<FailureKind> {
    let rest = line.split_once("Could not find service ")?.1;
    let (service, after) = match rest.strip_prefix('"') {
        Some(quoted) => match quoted.split_once('"') {
            Some((name, after)) => (Some(name), after),
            None => (None, quoted),
        },
        None => match rest.split_once(" in domain") {
            Some((name, after)) => (Some(name), after),
            None => (None, rest),
        },
    };
    Some(FailureKind::ServiceNotFound {
        service: service.filter(|s| !s.is_empty()).map(|s| cap(s, 255)),
        domain: domain_after(after),
    })
}

/// `Could not find domain for user gui: 501`.
fn domain_not_found(line: &str) -> Option<FailureKind> {
    let rest = line.split_once("Could not find domain")?.1;
    Some(FailureKind::DomainNotFound {
        domain: rest
            .trim()
            .strip_prefix("for ")
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| cap(d, 80)),
    })
}

fn domain_after(text: &str) -> Option<String> {
    let d = text.split_once("in domain for ")?.1.trim();
    (!d.is_empty()).then(|| cap(d, 80))
}

/// `Boot-out failed: 3: No such process`.
fn operation_failed(line: &str) -> Option<FailureKind> {
    let (operation, rest) = line.split_once(" failed: ")?;
    let (errno, description) = rest.split_once(':')?;
    let errno = errno.trim().parse().ok()?;
    let operation = operation.trim();
    if operation.is_empty() || operation.len() > 40 {
        return None;
    }
    Some(FailureKind::Operation {
        operation: clean(operation),
        errno,
        description: cap(description.trim(), 120),
    })
}

/// At most `max` characters, control characters dropped: this text ends up
/// in logs and events, and comes from a program a test (or an attacker
/// with a writable `LaunchctlPath`) may have replaced.
fn cap(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

fn clean(line: &str) -> String {
    cap(line, MAX_MESSAGE)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
#[path = "launchctl/tests.rs"]
mod tests;
