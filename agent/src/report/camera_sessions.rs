//! Camera sessions on record: a `camera_use` event when a session starts
//! and when it stops, and an update when a running session's verdict
//! changes (its helper was flagged after the camera turned on).
//!
//! A session's start waits for its verdict: while a new socket waits for
//! its first probe result, the helper it may be is not flagged yet, so a
//! session in that process's tree is held back (at most
//! [`CAMERA_WAIT_MAX`]) and recorded with the verdict it will keep — a
//! helper's camera use is critical from its first event.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use crate::config::Mode;
use crate::judge::Observations;
use crate::model::{Finding, FindingKind};
use crate::observe::camera_watch::SessionChange;
use crate::report::reporter::Reporter;

/// How long a camera session's record may wait for its process's new
/// socket to be judged (the probe's first-result hold is shorter).
pub const CAMERA_WAIT_MAX: Duration = Duration::from_secs(10);

/// A camera session across sweeps: its pid, or its bundle id when the log
/// named no pid, and its device. Unique among open sessions (one process
/// holding one device is one session).
type SessionKey = (Option<u32>, Option<String>, Option<PathBuf>);

/// The open sessions and the changes not recorded yet.
#[derive(Debug, Default)]
pub struct CameraSessions {
    /// The last camera_use finding of each open session, for its stop event.
    open: BTreeMap<SessionKey, Finding>,
    /// Session starts and stops not yet recorded (see the module doc).
    pending: Vec<SessionChange>,
}

impl CameraSessions {
    /// Record what is ready of `changes` (and of those held back before),
    /// against this judgement's `findings`. `held` are the pids holding a
    /// socket still waiting for its first probe result.
    pub fn report(
        &mut self,
        reporter: &mut Reporter,
        findings: &[Finding],
        changes: &[SessionChange],
        held: &BTreeSet<u32>,
        obs: &Observations,
        mode: Mode,
    ) {
        self.pending.extend(changes.iter().cloned());
        let (wait, ready): (Vec<SessionChange>, Vec<SessionChange>) =
            std::mem::take(&mut self.pending)
                .into_iter()
                .partition(|c| c.waited() < CAMERA_WAIT_MAX && in_held_tree(c.pid, held, obs));
        self.pending = wait;
        self.record(reporter, findings, &ready, mode);
    }

    fn record(
        &mut self,
        reporter: &mut Reporter,
        findings: &[Finding],
        changes: &[SessionChange],
        mode: Mode,
    ) {
        let current: BTreeMap<SessionKey, &Finding> = findings
            .iter()
            .filter(|f| f.kind == FindingKind::CameraUse)
            .filter_map(|f| session_key_of_finding(f).map(|k| (k, f)))
            .collect();
        for c in changes.iter().filter(|c| !c.started) {
            let key = session_key_of_change(c);
            if let Some(mut f) = self.open.remove(&key) {
                if let Some(cam) = f.camera.as_mut() {
                    cam.duration_seconds = c.duration_us.map(|us| us / 1_000_000);
                }
                reporter.camera_use(&f, mode, false);
            }
        }
        for c in changes.iter().filter(|c| c.started) {
            let key = session_key_of_change(c);
            if let Some(f) = current.get(&key) {
                reporter.camera_use(f, mode, true);
                self.open.insert(key, (*f).clone());
            }
        }
        for (key, f) in &current {
            if let Some(known) = self.open.get_mut(key)
                && (known.verdict != f.verdict || known.severity != f.severity)
            {
                *known = (*f).clone();
                reporter.finding(f, mode, true);
            }
        }
        // Sessions that vanished without a stop (a restarted watcher).
        self.open.retain(|k, _| current.contains_key(k));
    }
}

fn session_key_of_change(c: &SessionChange) -> SessionKey {
    (
        c.pid,
        c.pid.is_none().then(|| c.bundle_id.clone()).flatten(),
        c.device.clone(),
    )
}

/// The session a camera_use finding is about, keyed like a change.
fn session_key_of_finding(f: &Finding) -> Option<SessionKey> {
    let cam = f.camera.as_ref()?;
    let pid = cam.pid.or(f.process.as_ref().map(|p| p.pid));
    // Without a pid the judge names the session by its bundle id.
    Some((
        pid,
        pid.is_none().then(|| cam.client.clone()),
        cam.device.clone(),
    ))
}

/// Does `pid`, or an ancestor of it, hold a socket still waiting for its
/// first probe result? (Bounded walk: parent chains can loop while pids
/// are reused.)
fn in_held_tree(pid: Option<u32>, held: &BTreeSet<u32>, obs: &Observations) -> bool {
    let mut next = pid;
    for _ in 0..16 {
        let Some(p) = next.filter(|&p| p > 1) else {
            return false;
        };
        if held.contains(&p) {
            return true;
        }
        next = obs.processes.get(&p).map(|q| q.ppid);
    }
    false
}
