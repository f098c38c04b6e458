//! `<StateDir>/status.json`: what `lenscap status` shows. The daemon opens
//! no port, so this file is how it answers: rewritten atomically after
//! every sweep that did something, and at start and stop.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use std::fmt::Write as _;

use crate::render::ago;

use crate::config::Mode;

/// How many recent actions the status keeps.
pub const RECENT: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentAction {
    pub time_unix: i64,
    pub plan: String,
    pub step: String,
    pub status: String,
    pub outcome: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    pub version: String,
    /// The configured mode.
    pub mode: Mode,
    /// What the daemon does now: `monitor` while the circuit breaker is
    /// open even when `mode` is remediate.
    pub effective_mode: Mode,
    pub breaker_open: bool,
    pub started_unix: i64,
    pub last_sweep_unix: Option<i64>,
    pub sweeps: u64,
    pub listeners: usize,
    pub persistence_items: usize,
    pub findings_report: usize,
    pub findings_remediate: usize,
    pub remediations: u64,
    pub would_do: u64,
    pub reinstall_attempts: u64,
    pub quarantined: usize,
    pub guarded_paths: usize,
    pub outbox_pending: Option<u64>,
    /// Camera sessions open at the last judgement.
    #[serde(default)]
    pub camera_sessions: usize,
    /// Privacy grants read from the TCC databases.
    #[serde(default)]
    pub privacy_grants: usize,
    /// false once the daemon has stopped cleanly.
    pub running: bool,
    pub recent: Vec<RecentAction>,
}

impl Status {
    /// The status of a daemon starting now in `mode`, with nothing swept
    /// yet. The one place the fields are listed: every other status is
    /// this one, updated.
    pub fn new(mode: Mode, started_unix: i64, guarded_paths: usize) -> Status {
        Status {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").into(),
            mode,
            effective_mode: mode,
            breaker_open: false,
            started_unix,
            last_sweep_unix: None,
            sweeps: 0,
            listeners: 0,
            persistence_items: 0,
            findings_report: 0,
            findings_remediate: 0,
            remediations: 0,
            would_do: 0,
            reinstall_attempts: 0,
            quarantined: 0,
            guarded_paths,
            outbox_pending: None,
            camera_sessions: 0,
            privacy_grants: 0,
            running: true,
            recent: Vec::new(),
        }
    }

    /// This status without what moves on every sweep (the sweep count and
    /// time, the outbox count read when writing): two statuses that are
    /// equal this way differ only in those counters.
    pub fn without_counters(&self) -> Status {
        Status {
            sweeps: 0,
            last_sweep_unix: None,
            outbox_pending: None,
            ..self.clone()
        }
    }

    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("status.json")
    }

    pub fn push_recent(&mut self, action: RecentAction) {
        self.recent.push(action);
        let extra = self.recent.len().saturating_sub(RECENT);
        self.recent.drain(..extra);
    }

    /// Replace the status file atomically (no fsync: losing the last
    /// status in a power cut is harmless; it is rewritten at start).
    pub fn write(&self, state_dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::fsutil::write_atomic(
            &Status::path(state_dir),
            &bytes,
            0o644,
            crate::fsutil::Durability::Atomic,
        )
    }

    pub fn read(state_dir: &Path) -> std::io::Result<Status> {
        let bytes = fs::read(Status::path(state_dir))?;
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)
    }
}

/// `lenscap status`: the table a person reads (`--json` is the serde
/// form of [`Status`]).
pub fn render(s: &Status, alive: bool, now: i64) -> String {
    let mut out = String::new();
    let state = match (s.running, alive) {
        (true, true) => format!("running (pid {})", s.pid),
        (false, _) => "stopped".to_string(),
        (true, false) => format!("not running (pid {} is gone without a clean stop)", s.pid),
    };
    let _ = writeln!(out, "lenscap {}: {state}", s.version);
    let mode = if s.breaker_open {
        format!("{:?} — circuit breaker OPEN: monitoring only", s.mode)
    } else {
        format!("{:?}", s.mode)
    };
    let _ = writeln!(out, "mode:            {}", mode.to_lowercase());
    let _ = writeln!(out, "started:         {}", ago(now, s.started_unix));
    let _ = writeln!(
        out,
        "last sweep:      {} ({} sweeps)",
        s.last_sweep_unix
            .map(|t| ago(now, t))
            .unwrap_or_else(|| "never".into()),
        s.sweeps
    );
    let _ = writeln!(
        out,
        "watching:        {} listeners, {} persistence items, {} privacy grants, {} camera sessions",
        s.listeners, s.persistence_items, s.privacy_grants, s.camera_sessions
    );
    let _ = writeln!(
        out,
        "findings now:    {} remediate, {} report",
        s.findings_remediate, s.findings_report
    );
    let _ = writeln!(
        out,
        "actions:         {} remediations, {} would-do (monitor), {} reinstall attempts",
        s.remediations, s.would_do, s.reinstall_attempts
    );
    let _ = writeln!(
        out,
        "quarantine:      {} records, {} guarded paths",
        s.quarantined, s.guarded_paths
    );
    if let Some(p) = s.outbox_pending {
        let _ = writeln!(out, "outbox:          {p} events waiting for the collector");
    }
    if !s.recent.is_empty() {
        let _ = writeln!(out, "\nrecent actions:");
        for a in s.recent.iter().rev() {
            let _ = writeln!(
                out,
                "  {:>10}  {:<10} {:<8} {}  {}",
                ago(now, a.time_unix),
                a.step,
                a.status,
                a.plan,
                a.outcome
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_only_recent_actions() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Status::new(Mode::Monitor, 0, 0);
        for i in 0..(RECENT + 5) {
            s.push_recent(RecentAction {
                time_unix: i as i64,
                plan: "p".into(),
                step: "s".into(),
                status: "done".into(),
                outcome: String::new(),
            });
        }
        assert_eq!(s.recent.len(), RECENT);
        assert_eq!(s.recent[0].time_unix, 5);
        s.write(dir.path()).unwrap();
        assert_eq!(Status::read(dir.path()).unwrap(), s);
    }
}
