//! Plan step 2: terminate the helper's process tree without ever signalling
//! a stranger.
//!
//! [`terminate_tree`] works in three phases:
//! 1. **Capture.** The root's identity is re-read and compared with the one
//!    the caller judged; then its descendants are found breadth-first
//!    through [`ProcessControl::child_pids`], each identity captured as it
//!    is found. Children listed for a process only count if that process is
//!    still the same one after the listing and the child names it as its
//!    parent, so a PID recycled mid-walk cannot pull strangers in.
//! 2. **SIGTERM**, root first, then descendants parents-before-children.
//!    The launchd job is already booted out (step 1), so nothing respawns
//!    the root; the root, though, may be a supervisor that restarts its
//!    workers when they die, so it goes first. The descendants were
//!    captured before any signal, so orphaning them loses nothing.
//! 3. **Wait** up to `grace`, then **SIGKILL** the survivors, and any child
//!    a survivor forked during the grace.
//!
//! Every signal goes through [`ProcessControl::signal_verified`], which
//! re-checks pid + start time + executable immediately before sending (a
//! pidfd on Linux); a descendant that `exec`s after it was captured keeps
//! its PID and start time and is followed to its new executable. PID 0, PID 1, the agent's own PID and any process whose
//! identity could not be captured (or has no known executable) are never
//! signalled.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::model::ProcessIdentity;
use crate::platform::{PlatformError, SignalOutcome};

/// How often the survivors are checked while waiting.
const POLL: Duration = Duration::from_millis(10);
/// How long a SIGKILLed process may take to disappear (a process in
/// uninterruptible sleep dies only when its I/O returns).
const KILL_WAIT: Duration = Duration::from_secs(2);
/// A helper's tree is a handful of processes; a bigger one means a fork
/// bomb or a mistake, and the walk stops there (the report says so).
const MAX_TREE: usize = 1024;

/// What [`terminate_tree`] needs from the operating system. The lead
/// implements it for each platform's `Native`.
pub trait ProcessControl {
    /// The identity of one process now (`NoSuchProcess` when gone).
    fn process(&self, pid: u32) -> Result<ProcessIdentity, PlatformError>;
    /// Send `signal` only if `expected.pid` is still `expected`.
    fn signal_verified(
        &self,
        expected: &ProcessIdentity,
        signal: i32,
    ) -> Result<SignalOutcome, PlatformError>;
    /// The PIDs whose parent is `pid`, in any order.
    fn child_pids(&self, pid: u32) -> Result<Vec<u32>, PlatformError>;
}

/// What happened to one process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "detail")]
pub enum KillOutcome {
    /// Exited after SIGTERM, within the grace period.
    Terminated,
    /// Still running after the grace period; SIGKILL ended it.
    Killed,
    /// Had exited before it was signalled.
    AlreadyGone,
    /// The PID now names another process: refused, nothing sent. Our
    /// process is gone (it exited and its PID was reused).
    IdentityChanged,
    /// Never signalled, on principle.
    Refused(Refusal),
    /// SIGKILL was sent and the process was still there after the wait.
    Survived,
    /// The platform failed (reading /proc, sending the signal).
    Error(String),
}

impl KillOutcome {
    /// The process we identified no longer runs.
    pub fn is_gone(&self) -> bool {
        matches!(
            self,
            KillOutcome::Terminated
                | KillOutcome::Killed
                | KillOutcome::AlreadyGone
                | KillOutcome::IdentityChanged
        )
    }
}

/// Why a process was not signalled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// PID 0 or 1.
    SystemProcess,
    /// The agent itself.
    OwnProcess,
    /// Its identity could not be read, so it could not be verified.
    IdentityUnknown(String),
    /// Its executable is unknown (kernel thread, no privilege): the
    /// identity check would have nothing to compare.
    NoExecutable,
    /// It runs as another user than the actor whose finding this is: the
    /// actor could not have signalled it, so neither does lenscap (a
    /// helper's setuid child, or a process a user's plist merely names).
    OutsideReach { uid: u32, actor: u32 },
}

/// One process of the tree and its fate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessReport {
    pub pid: u32,
    /// The identity that was verified before each signal (`None` when it
    /// could not be captured).
    pub name: Option<String>,
    pub path: Option<PathBuf>,
    pub outcome: KillOutcome,
}

/// The fate of every process of the tree, root first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TerminateReport {
    pub processes: Vec<ProcessReport>,
    /// The tree had more than 1024 processes and the walk stopped.
    pub truncated: bool,
}

impl TerminateReport {
    /// Every process we identified is gone, and none was left unverified.
    pub fn all_gone(&self) -> bool {
        !self.truncated && self.processes.iter().all(|p| p.outcome.is_gone())
    }

    pub fn outcome_of(&self, pid: u32) -> Option<&KillOutcome> {
        self.processes
            .iter()
            .find(|p| p.pid == pid)
            .map(|p| &p.outcome)
    }
}

/// Terminate `root` and all its descendants: SIGTERM, wait up to `grace`,
/// SIGKILL. See the module doc for the order and the safety rules.
pub fn terminate_tree(
    ctl: &dyn ProcessControl,
    root: &ProcessIdentity,
    grace: Duration,
) -> TerminateReport {
    terminate_tree_as(ctl, root, grace, 0)
}

/// [`terminate_tree`] on behalf of `actor` (a uid; 0 is root, whose reach
/// is every process but the never-list): only processes running as the
/// actor are signalled; the rest are reported as out of reach.
pub fn terminate_tree_as(
    ctl: &dyn ProcessControl,
    root: &ProcessIdentity,
    grace: Duration,
    actor: u32,
) -> TerminateReport {
    let reach = Reach {
        me: std::process::id(),
        actor,
    };
    let mut report = TerminateReport::default();
    // Phase 1: capture. `members` holds the verified identities, in the
    // order they will be signalled.
    let mut members: Vec<ProcessIdentity> = Vec::new();
    match check_root(ctl, root, reach) {
        Ok(()) => members.push(root.clone()),
        Err(outcome) => {
            report.processes.push(entry(root.pid, Some(root), outcome));
            return report;
        }
    }
    let mut seen: HashSet<u32> = HashSet::from([root.pid]);
    let mut next = 0;
    while next < members.len() {
        let parent = members[next].clone();
        next += 1;
        let found = descendants_of(ctl, &parent, reach, &mut seen, &mut report);
        if members.len() + found.len() > MAX_TREE {
            report.truncated = true;
            tracing::warn!(
                root = root.pid,
                "process tree over {MAX_TREE}; walk stopped"
            );
            members.extend(found.into_iter().take(MAX_TREE - members.len()));
            break;
        }
        members.extend(found);
    }

    // Phase 2: SIGTERM, root first.
    let mut pending: Vec<(usize, ProcessIdentity)> = Vec::new();
    for id in members {
        let slot = report.processes.len();
        let mut id = id;
        let outcome = match signal_following_exec(ctl, &mut id, libc::SIGTERM) {
            Ok(SignalOutcome::Sent) => {
                pending.push((slot, id.clone()));
                KillOutcome::Terminated // provisional: confirmed by the wait
            }
            Ok(SignalOutcome::Gone) => KillOutcome::AlreadyGone,
            Ok(SignalOutcome::IdentityChanged) => KillOutcome::IdentityChanged,
            Err(e) => KillOutcome::Error(format!("SIGTERM: {e}")),
        };
        report.processes.push(entry(id.pid, Some(&id), outcome));
    }

    // Phase 3: wait, then SIGKILL whoever is left.
    let survivors = wait_for_exit(ctl, pending, Instant::now() + grace);
    let mut late: Vec<(usize, ProcessIdentity)> = Vec::new();
    for (_, id) in &survivors {
        // A survivor may have forked while it ignored SIGTERM.
        for child in descendants_of(ctl, id, reach, &mut seen, &mut report) {
            late.push((report.processes.len(), child.clone()));
            report
                .processes
                .push(entry(child.pid, Some(&child), KillOutcome::Killed));
        }
    }
    let mut killed = Vec::new();
    for (slot, mut id) in survivors.into_iter().chain(late) {
        report.processes[slot].outcome = match signal_following_exec(ctl, &mut id, libc::SIGKILL) {
            Ok(SignalOutcome::Sent) => {
                killed.push((slot, id));
                KillOutcome::Killed
            }
            // It exited (and maybe lost its PID) between the last check
            // and the SIGKILL: the SIGTERM did its work after all.
            Ok(SignalOutcome::Gone | SignalOutcome::IdentityChanged) => KillOutcome::Terminated,
            Err(e) => KillOutcome::Error(format!("SIGKILL: {e}")),
        };
    }
    for (slot, _) in wait_for_exit(ctl, killed, Instant::now() + KILL_WAIT) {
        report.processes[slot].outcome = KillOutcome::Survived;
    }
    report
}

/// `signal_verified`, following an `exec`: a process captured between its
/// fork and its exec shows the same PID and start time but a new
/// executable. It is still the process we found (a PID is reused within
/// one start-time tick only if the whole PID space cycles in 10 ms), so
/// its new identity is adopted and the signal, verified again, is sent.
fn signal_following_exec(
    ctl: &dyn ProcessControl,
    id: &mut ProcessIdentity,
    signal: i32,
) -> Result<SignalOutcome, PlatformError> {
    match ctl.signal_verified(id, signal)? {
        SignalOutcome::IdentityChanged => match ctl.process(id.pid) {
            Ok(now) if now.start_time == id.start_time && now.path.is_some() => {
                *id = now;
                ctl.signal_verified(id, signal)
            }
            _ => Ok(SignalOutcome::IdentityChanged),
        },
        outcome => Ok(outcome),
    }
}

/// Why the root may not be touched, or how it is gone; `Ok` when it is
/// still the process the caller identified.
/// Who is walking the tree: the agent's own pid (never signalled) and the
/// actor whose reach bounds the signals.
#[derive(Debug, Clone, Copy)]
struct Reach {
    me: u32,
    actor: u32,
}

impl Reach {
    fn refuses(&self, id: &ProcessIdentity) -> Option<Refusal> {
        (self.actor != 0 && id.uid != self.actor).then_some(Refusal::OutsideReach {
            uid: id.uid,
            actor: self.actor,
        })
    }
}

fn check_root(
    ctl: &dyn ProcessControl,
    root: &ProcessIdentity,
    reach: Reach,
) -> Result<(), KillOutcome> {
    if let Some(refusal) = protected(root.pid, reach.me) {
        return Err(KillOutcome::Refused(refusal));
    }
    if root.path.is_none() {
        return Err(KillOutcome::Refused(Refusal::NoExecutable));
    }
    match ctl.process(root.pid) {
        // The uid as it is now: a process that changed user since the
        // sweep (setuid exec) is judged by who it is at signal time.
        Ok(now) if same_process(&now, root) => match reach.refuses(&now) {
            Some(refusal) => Err(KillOutcome::Refused(refusal)),
            None => Ok(()),
        },
        Ok(now) if exited(&now) && now.start_time == root.start_time => {
            Err(KillOutcome::AlreadyGone)
        }
        Ok(_) => Err(KillOutcome::IdentityChanged),
        Err(PlatformError::NoSuchProcess { .. }) => Err(KillOutcome::AlreadyGone),
        Err(e) => Err(KillOutcome::Refused(Refusal::IdentityUnknown(
            e.to_string(),
        ))),
    }
}

fn protected(pid: u32, me: u32) -> Option<Refusal> {
    if pid <= 1 {
        Some(Refusal::SystemProcess)
    } else if pid == me {
        Some(Refusal::OwnProcess)
    } else {
        None
    }
}

/// A process that has exited but is not reaped yet (a zombie): the kernel
/// has dropped its executable and arguments. (A live process with neither
/// is a kernel thread, which is never anyone's child but kthreadd's.)
fn exited(now: &ProcessIdentity) -> bool {
    now.path.is_none() && now.args.is_empty()
}

/// The identity fields `signal_verified` checks.
fn same_process(now: &ProcessIdentity, expected: &ProcessIdentity) -> bool {
    now.pid == expected.pid && now.start_time == expected.start_time && now.path == expected.path
}

/// The children of `parent` not seen before, identities captured. Children
/// that cannot be signalled safely go straight into the report.
fn descendants_of(
    ctl: &dyn ProcessControl,
    parent: &ProcessIdentity,
    reach: Reach,
    seen: &mut HashSet<u32>,
    report: &mut TerminateReport,
) -> Vec<ProcessIdentity> {
    let pids = match ctl.child_pids(parent.pid) {
        Ok(pids) => pids,
        Err(PlatformError::NoSuchProcess { .. }) => return Vec::new(),
        Err(e) => {
            tracing::warn!(pid = parent.pid, error = %e, "cannot list children");
            return Vec::new();
        }
    };
    // If the parent is no longer the process we captured, the PIDs just
    // listed are a stranger's children.
    if !matches!(ctl.process(parent.pid), Ok(now) if same_process(&now, parent)) {
        return Vec::new();
    }
    let mut found = Vec::new();
    for pid in pids {
        if !seen.insert(pid) {
            continue;
        }
        if let Some(refusal) = protected(pid, reach.me) {
            report
                .processes
                .push(entry(pid, None, KillOutcome::Refused(refusal)));
            continue;
        }
        match ctl.process(pid) {
            // Reused since the listing and no longer ours: not in the tree.
            Ok(id) if id.ppid != parent.pid => {}
            Ok(id) if exited(&id) => {
                report
                    .processes
                    .push(entry(pid, Some(&id), KillOutcome::AlreadyGone));
            }
            Ok(id) if id.path.is_none() => report.processes.push(entry(
                pid,
                Some(&id),
                KillOutcome::Refused(Refusal::NoExecutable),
            )),
            Ok(id) if reach.refuses(&id).is_some() => {
                if let Some(refusal) = reach.refuses(&id) {
                    report
                        .processes
                        .push(entry(pid, Some(&id), KillOutcome::Refused(refusal)));
                }
            }
            Ok(id) => found.push(id),
            Err(PlatformError::NoSuchProcess { .. }) => {}
            Err(e) => report.processes.push(entry(
                pid,
                None,
                KillOutcome::Refused(Refusal::IdentityUnknown(e.to_string())),
            )),
        }
    }
    found
}

/// Poll until every process in `pending` is gone or `deadline` passes;
/// returns those still running. A process whose PID now shows another
/// identity (or a zombie, which has no executable left) counts as gone.
fn wait_for_exit(
    ctl: &dyn ProcessControl,
    mut pending: Vec<(usize, ProcessIdentity)>,
    deadline: Instant,
) -> Vec<(usize, ProcessIdentity)> {
    loop {
        pending.retain(|(_, id)| match ctl.process(id.pid) {
            Ok(now) => same_process(&now, id),
            Err(PlatformError::NoSuchProcess { .. }) => false,
            // Unknown: assume it still runs; the SIGKILL is verified anyway.
            Err(_) => true,
        });
        if pending.is_empty() || Instant::now() >= deadline {
            return pending;
        }
        std::thread::sleep(POLL);
    }
}

fn entry(pid: u32, id: Option<&ProcessIdentity>, outcome: KillOutcome) -> ProcessReport {
    ProcessReport {
        pid,
        name: id.map(|i| i.name.clone()),
        path: id.and_then(|i| i.path.clone()),
        outcome,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
#[path = "kill/tests.rs"]
mod tests;
