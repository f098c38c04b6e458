//! Camera sessions from unified-log events ([`CameraEvent`]s from
//! `parse::camera_log`): the macOS counterpart of [`super::CameraWatcher`].
//! The caller passes "now" for events whose line had no usable timestamp,
//! so the tracker reads no clock and is tested with exact durations.
//!
//! A session is keyed by the message shape and the client it names. On
//! macOS 14+ one camera use is therefore usually *two* sessions: the cmio
//! endpoint line names a PID, ControlCenter's attribution list a bundle id,
//! and nothing in the log ties the two together. Both are kept; the judge
//! sees a PID session (with the process read from the system) and a bundle
//! id session (whose stop is the dependable one).
//!
//! Rules for the events that do not pair up cleanly:
//! - A second start for an open session changes nothing (13.3's control
//!   PID message repeats).
//! - A stop for a session that is not open (it began before we watched) is
//!   dropped: there is no start time to give it a duration.
//! - A stop whose client is [`CameraClient::Unknown`] (cmio's `removed
//!   endpoint <private>` without a PID) closes **every** open session of
//!   that shape. Which session ended cannot be known; keeping them all open
//!   would leave sessions stuck forever, while closing them loses at most
//!   the PID precision of a still-running session whose ControlCenter (bundle
//!   id) session, a different shape, stays open.
//! - Shapes with no stop message at all (13.3's control PID) end only
//!   through [`SessionTracker::close_where`], e.g. when the process exits.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::CameraSessionObservation;
use crate::parse::camera_log::{CameraChange, CameraClient, CameraEvent, LogShape};

/// A camera session seen in the unified log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSession {
    /// The client as the log named it.
    pub client: CameraClient,
    pub shape: LogShape,
    /// The start line's timestamp (or the caller's clock if it had none).
    pub since_unix_us: u64,
}

impl LogSession {
    pub fn pid(&self) -> Option<u32> {
        match self.client {
            CameraClient::Pid(pid) => Some(pid),
            _ => None,
        }
    }

    pub fn bundle_id(&self) -> Option<&str> {
        match &self.client {
            CameraClient::BundleId(id) => Some(id),
            _ => None,
        }
    }

    /// The judge's view: the log names no device.
    pub fn observation(&self) -> CameraSessionObservation {
        CameraSessionObservation {
            pid: self.pid(),
            bundle_id: self.bundle_id().map(str::to_string),
            device: None,
            since_unix_us: self.since_unix_us,
        }
    }
}

/// A session starting or stopping (the log counterpart of
/// [`super::CameraUseEvent`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSessionEvent {
    pub change: CameraChange,
    pub session: LogSession,
    /// When the change happened: the line's timestamp or the caller's now.
    pub at_unix_us: u64,
    /// For a stop: how long the session was open.
    pub duration_us: Option<u64>,
}

/// Open sessions from a stream of [`CameraEvent`]s.
#[derive(Debug, Default)]
pub struct SessionTracker {
    /// (shape rank, client) → (shape, since).
    active: BTreeMap<(u8, CameraClient), (LogShape, u64)>,
}

/// `LogShape` has no order of its own; this gives the map one.
fn rank(shape: LogShape) -> u8 {
    match shape {
        LogShape::CmioEndpoint => 0,
        LogShape::ControlCenter => 1,
        LogShape::DeviceControlPid => 2,
        LogShape::SystemStatus => 3,
    }
}

impl SessionTracker {
    pub fn new() -> SessionTracker {
        SessionTracker::default()
    }

    /// Apply one event; `now_unix_us` stands in for a missing timestamp.
    /// Returns the sessions it started or stopped (see the module
    /// documentation for the unpaired cases).
    pub fn feed(&mut self, event: &CameraEvent, now_unix_us: u64) -> Vec<LogSessionEvent> {
        let at = event.at_unix_us.unwrap_or(now_unix_us);
        let shape = event.shape;
        let key = (rank(shape), event.client.clone());
        match (event.change, &event.client) {
            (CameraChange::Start, _) => {
                if self.active.contains_key(&key) {
                    return Vec::new();
                }
                self.active.insert(key, (shape, at));
                vec![LogSessionEvent {
                    change: CameraChange::Start,
                    session: LogSession {
                        client: event.client.clone(),
                        shape,
                        since_unix_us: at,
                    },
                    at_unix_us: at,
                    duration_us: None,
                }]
            }
            (CameraChange::Stop, CameraClient::Unknown) => {
                self.close_where(|s| s.shape == shape, at)
            }
            (CameraChange::Stop, _) => match self.active.remove(&key) {
                Some((shape, since)) => vec![stop(event.client.clone(), shape, since, at)],
                None => Vec::new(),
            },
        }
    }

    /// Close every open session `pred` picks (a process that exited, a PID
    /// now used by another process), as stops at `now_unix_us`.
    pub fn close_where(
        &mut self,
        pred: impl Fn(&LogSession) -> bool,
        now_unix_us: u64,
    ) -> Vec<LogSessionEvent> {
        let closing: Vec<(u8, CameraClient)> = self
            .active
            .iter()
            .filter(|((_, client), (shape, since))| {
                pred(&LogSession {
                    client: client.clone(),
                    shape: *shape,
                    since_unix_us: *since,
                })
            })
            .map(|(k, _)| k.clone())
            .collect();
        closing
            .into_iter()
            .filter_map(|key| {
                let (shape, since) = self.active.remove(&key)?;
                Some(stop(key.1, shape, since, now_unix_us))
            })
            .collect()
    }

    /// The sessions open now, by shape then client.
    pub fn sessions(&self) -> Vec<LogSession> {
        self.active
            .iter()
            .map(|((_, client), (shape, since))| LogSession {
                client: client.clone(),
                shape: *shape,
                since_unix_us: *since,
            })
            .collect()
    }
}

fn stop(client: CameraClient, shape: LogShape, since: u64, at: u64) -> LogSessionEvent {
    LogSessionEvent {
        change: CameraChange::Stop,
        session: LogSession {
            client,
            shape,
            since_unix_us: since,
        },
        at_unix_us: at,
        duration_us: Some(at.saturating_sub(since)),
    }
}
