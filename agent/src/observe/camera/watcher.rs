//! Successive [`CameraHolder`] snapshots → camera sessions and their start
//! and stop events. The caller passes the time of each snapshot, so the
//! watcher reads no clock and is tested with exact durations.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::CameraHolder;
use crate::parse::camera_log::CameraChange;

/// A process using a camera device, and since when we have seen it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraSession {
    pub pid: u32,
    pub start_ticks: Option<u64>,
    pub device: PathBuf,
    /// When the first snapshot showing it was taken. For sessions already
    /// open when the watcher started, that is the first snapshot's time.
    pub since_unix_us: u64,
}

impl CameraSession {
    /// The judge's view of this session.
    pub fn observation(&self) -> crate::model::CameraSessionObservation {
        crate::model::CameraSessionObservation {
            pid: Some(self.pid),
            bundle_id: None,
            device: Some(self.device.clone()),
            since_unix_us: self.since_unix_us,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraUseEvent {
    pub change: CameraChange,
    pub session: CameraSession,
    /// Time of the snapshot that showed the change.
    pub at_unix_us: u64,
    /// For a stop: how long the session was seen open (to the first
    /// snapshot without it, so at most one interval too long).
    pub duration_us: Option<u64>,
}

#[derive(Debug, Default)]
pub struct CameraWatcher {
    /// Open sessions keyed by (pid, start ticks, device) → first seen.
    active: BTreeMap<CameraHolder, u64>,
}

impl CameraWatcher {
    pub fn new() -> CameraWatcher {
        CameraWatcher::default()
    }

    /// Feed one snapshot taken at `now_unix_us`; returns stops (in key
    /// order) then starts. A PID reused by a new process is a stop of the
    /// old session and a start of a new one, because the start time differs.
    pub fn update(&mut self, holders: &[CameraHolder], now_unix_us: u64) -> Vec<CameraUseEvent> {
        let mut events = Vec::new();
        let gone: Vec<CameraHolder> = self
            .active
            .keys()
            .filter(|k| !holders.contains(k))
            .cloned()
            .collect();
        for holder in gone {
            if let Some(since) = self.active.remove(&holder) {
                events.push(CameraUseEvent {
                    change: CameraChange::Stop,
                    session: session(&holder, since),
                    at_unix_us: now_unix_us,
                    duration_us: Some(now_unix_us.saturating_sub(since)),
                });
            }
        }
        for holder in holders {
            if !self.active.contains_key(holder) {
                self.active.insert(holder.clone(), now_unix_us);
                events.push(CameraUseEvent {
                    change: CameraChange::Start,
                    session: session(holder, now_unix_us),
                    at_unix_us: now_unix_us,
                    duration_us: None,
                });
            }
        }
        events
    }

    /// The sessions open as of the last snapshot (for `lenscap scan`).
    pub fn sessions(&self) -> Vec<CameraSession> {
        self.active
            .iter()
            .map(|(h, since)| session(h, *since))
            .collect()
    }
}

fn session(holder: &CameraHolder, since_unix_us: u64) -> CameraSession {
    CameraSession {
        pid: holder.pid,
        start_ticks: holder.start_ticks,
        device: holder.device.clone(),
        since_unix_us,
    }
}
