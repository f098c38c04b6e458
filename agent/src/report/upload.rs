//! Delivery: draining the outbox into the collector, at least once.
//!
//! - [`client`]: the HTTP client (the system's TLS roots, timeouts, no redirects) and
//!   what each answer means.
//! - [`backoff`]: exponential backoff with jitter.
//! - [`worker`]: the delivery thread the daemon starts — enrollment,
//!   this uploader, and the fleet-policy poll (`report::policy_sync`) —
//!   so no step of the daemon's loop ever waits on the network.
//! - this file: [`Uploader`], one batch at a time.
//!
//! # The delivery contract
//!
//! Events leave the outbox oldest first, in gzip'd JSON batches of up to
//! [`MAX_BATCH`]. An event is marked sent only after the collector's 200
//! for its batch, which the collector gives only once the batch is
//! committed (docs/api.md). So a crash, a kill -9 or a lost answer at any
//! moment means the batch is sent again, and the collector, idempotent on
//! each event's uid, stores it once: at-least-once delivery, exactly-once
//! storage.
//!
//! What each failure does:
//!
//! | answer | what happens |
//! |---|---|
//! | network error, 5xx | wait with exponential backoff (1 s doubling to 5 min, jittered), same batch |
//! | 429, 503 | wait `Retry-After` (at most an hour), else backoff |
//! | 413 | halve the batch and send again at once |
//! | 400, batch of several | halve the batch: the refused event is isolated in log₂(100) ≈ 7 tries |
//! | 400, one event alone | the events *after* it are sent; if the collector takes them, the lone event is refused for what it is: it is skipped (marked sent, kept in the local history), an `agent_health` event says which one and why, and the collector shows its seq as a gap. If the collector refuses those too, nothing is skipped: it is the collector that refuses, so wait with backoff |
//! | 401 | enroll again, once, then back off |
//! | 403, other 4xx, a redirect | back off; reported once as an `agent_health` event |

pub mod client;
pub mod worker;

use std::io::Write;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use lenscap_events::api::IngestResponse;
use lenscap_events::{AgentHealth, Body, Event, HealthStatus};

use self::client::Failure;
use crate::backoff::{self, Backoff};
use crate::report::outbox::{Outbox, OutboxError};

/// The most events in one request (the collector takes up to 5,000; 100
/// keeps one request small enough to finish on a slow link).
pub const MAX_BATCH: usize = 100;
/// First retry wait after a failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// The longest wait between retries.
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);

/// What to do after a [`Uploader::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing is waiting: come back at the next upload interval.
    Idle,
    /// More is waiting: step again at once.
    Now,
    /// Back off this long.
    Wait(Duration),
    /// The collector does not know the token: enroll again, then step.
    Reenroll,
}

/// Counters since start, for logs, status and the catch-up benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadStats {
    pub batches: u64,
    pub accepted: u64,
    pub duplicate: u64,
    pub failures: u64,
    pub skipped: u64,
}

/// A lone event the collector refused with a 400.
#[derive(Debug, Clone)]
struct Suspect {
    seq: u64,
    message: String,
}

/// One collector's uploader state: the batch size in force, the backoff,
/// and the event under suspicion. The sending itself is the caller's
/// (`send(gzip_body, event_count)`), so this logic is tested without a
/// network.
#[derive(Debug)]
pub struct Uploader {
    limit: usize,
    backoff: Backoff,
    suspect: Option<Suspect>,
    /// A refusal (403, 4xx, redirect) was already reported in this streak.
    refusal_reported: bool,
    notices: Vec<Body>,
    stats: UploadStats,
}

impl Default for Uploader {
    fn default() -> Uploader {
        Uploader::new()
    }
}

/// `send(gzip'd JSON array, number of events)`.
pub type Send<'a> = dyn FnMut(&[u8], usize) -> Result<IngestResponse, Failure> + 'a;

impl Uploader {
    pub fn new() -> Uploader {
        Uploader {
            limit: MAX_BATCH,
            backoff: Backoff::new(BACKOFF_BASE, BACKOFF_CAP),
            suspect: None,
            refusal_reported: false,
            notices: Vec::new(),
            stats: UploadStats::default(),
        }
    }

    pub fn stats(&self) -> UploadStats {
        self.stats
    }

    /// The batch size in force (halved after a 413 or 400).
    pub fn batch_limit(&self) -> usize {
        self.limit
    }

    /// Health events to record (the daemon appends them to the outbox).
    pub fn take_notices(&mut self) -> Vec<Body> {
        std::mem::take(&mut self.notices)
    }

    /// Send one batch of the oldest pending events and act on the answer.
    pub fn step(&mut self, outbox: &mut Outbox, send: &mut Send<'_>) -> Result<Next, OutboxError> {
        let pending = outbox.pending(self.limit + 1)?;
        let Some(head) = pending.first() else {
            self.suspect = None;
            return Ok(Next::Idle);
        };
        if let Some(suspect) = self.suspect.take().filter(|s| s.seq == head.seq) {
            return self.probe_past(outbox, &pending, suspect, send);
        }
        let batch = &pending[..pending.len().min(self.limit)];
        let result = send(&encode(batch, outbox)?, batch.len());
        match result {
            Ok(answer) => {
                self.delivered(outbox, batch, answer)?;
                self.limit = (self.limit * 2).min(MAX_BATCH);
                Ok(Next::Now)
            }
            Err(Failure::TooLarge(_) | Failure::BadRequest(_)) if batch.len() > 1 => {
                self.limit = batch.len() / 2;
                tracing::debug!(limit = self.limit, "batch refused; halving it");
                Ok(Next::Now)
            }
            Err(Failure::TooLarge(message) | Failure::BadRequest(message)) => {
                tracing::warn!(seq = head.seq, uid = %head.uid, %message, "the collector refuses this event; checking whether it takes the ones after it");
                self.suspect = Some(Suspect {
                    seq: head.seq,
                    message,
                });
                Ok(Next::Now)
            }
            Err(failure) => Ok(self.failed(failure)),
        }
    }

    /// The head event alone was refused: send the ones after it. If they
    /// are taken, the head is refused for what it is and is skipped.
    fn probe_past(
        &mut self,
        outbox: &mut Outbox,
        pending: &[Event],
        suspect: Suspect,
        send: &mut Send<'_>,
    ) -> Result<Next, OutboxError> {
        let rest = &pending[1..pending.len().min(self.limit + 1)];
        if rest.is_empty() {
            // Nothing after it to tell the event from the collector: wait
            // for more events (or a fixed collector).
            self.suspect = Some(suspect);
            return Ok(self.wait_backoff());
        }
        match send(&encode(rest, outbox)?, rest.len()) {
            Ok(answer) => {
                self.delivered(outbox, rest, answer)?;
                let head = &pending[0];
                outbox.mark_sent(&[head.seq])?;
                self.stats.skipped += 1;
                tracing::error!(seq = head.seq, uid = %head.uid, message = %suspect.message, "the collector refused this event alone and took the ones after it; skipped (it shows as a gap)");
                let queued = outbox
                    .stats()
                    .map(|s| (s.pending, s.bytes))
                    .unwrap_or((0, 0));
                self.notices
                    .push(skipped_notice(head, &suspect.message, queued));
                Ok(Next::Now)
            }
            Err(Failure::BadRequest(_) | Failure::TooLarge(_)) => {
                // It refuses the others too: the collector (or its
                // version), not one event, is the problem. Skip nothing.
                tracing::warn!(
                    "the collector refuses every event it is sent; waiting, nothing is skipped"
                );
                self.limit = 1;
                Ok(self.wait_backoff())
            }
            Err(failure) => {
                self.suspect = Some(suspect);
                Ok(self.failed(failure))
            }
        }
    }

    fn delivered(
        &mut self,
        outbox: &mut Outbox,
        batch: &[Event],
        answer: IngestResponse,
    ) -> Result<(), OutboxError> {
        let seqs: Vec<u64> = batch.iter().map(|e| e.seq).collect();
        outbox.mark_sent(&seqs)?;
        if self.backoff.failures() > 0 {
            tracing::info!(
                after = self.backoff.failures(),
                "the collector takes events again"
            );
        }
        self.backoff.reset();
        self.refusal_reported = false;
        self.stats.batches += 1;
        self.stats.accepted += answer.accepted;
        self.stats.duplicate += answer.duplicate;
        Ok(())
    }

    fn wait_backoff(&mut self) -> Next {
        self.stats.failures += 1;
        Next::Wait(self.backoff.fail(backoff::random()))
    }

    /// Network errors, busy and refusing collectors.
    fn failed(&mut self, failure: Failure) -> Next {
        let n = self.backoff.failures() + 1;
        // The first failure of a streak and then every power of two: a
        // collector down for a day does not fill the log.
        let loud = n.is_power_of_two();
        match &failure {
            Failure::Unauthorized(_) => return Next::Reenroll,
            Failure::Busy {
                retry_after: Some(d),
                ..
            } => {
                if loud {
                    tracing::info!(%failure, "the collector asks to wait");
                }
                self.stats.failures += 1;
                // Count it so a collector that keeps saying "busy" still
                // meets growing waits if it stops saying how long.
                self.backoff.fail(0);
                return Next::Wait((*d).max(Duration::from_millis(100)));
            }
            Failure::Network(_) | Failure::Server { .. } | Failure::Busy { .. } => {
                if loud {
                    tracing::warn!(%failure, failures = n, "upload failed; backing off");
                }
            }
            Failure::Forbidden(_) | Failure::Unexpected { .. } => {
                tracing::error!(%failure, "the collector refuses this agent's uploads; backing off");
                self.refused(&failure);
            }
            Failure::BadRequest(_) | Failure::TooLarge(_) => {}
        }
        self.wait_backoff()
    }

    /// After a failed re-enrollment: wait, and report the refusal once.
    pub fn enroll_failed(&mut self, error: &str) -> Next {
        self.refused(&Failure::Unauthorized(error.to_string()));
        self.wait_backoff()
    }

    /// Report, once per streak, that the collector refuses this agent.
    pub fn refused(&mut self, failure: &Failure) {
        if !self.refusal_reported {
            self.refusal_reported = true;
            self.notices.push(refused_notice(failure));
        }
    }
}

/// A batch as the collector takes it: a JSON array, gzip'd.
pub fn encode(events: &[Event], outbox: &Outbox) -> Result<Vec<u8>, OutboxError> {
    let fail = |detail: String| OutboxError::Encode {
        path: outbox.path().to_path_buf(),
        detail,
    };
    // Fast compression: JSON events shrink ~5× even at level 1, and the
    // agent's CPU matters more than a few bytes.
    let mut gz = GzEncoder::new(Vec::with_capacity(events.len() * 256), Compression::fast());
    serde_json::to_writer(&mut gz, events).map_err(|e| fail(e.to_string()))?;
    gz.flush().map_err(|e| fail(e.to_string()))?;
    gz.finish().map_err(|e| fail(e.to_string()))
}

fn skipped_notice(event: &Event, why: &str, (queued, queued_bytes): (u64, u64)) -> Body {
    // The events crate has no delivery status; `outbox_full` is the one
    // whose meaning fits — an unsent event was let go and shows at the
    // collector as a gap — and the message says what really happened.
    Body::AgentHealth(AgentHealth {
        message: format!(
            "The collector refused event seq {} (uid {}, {}) on its own while taking the events after it: {why}. It was skipped and shows as a gap; it is still in the agent's local history (`lenscap events`).",
            event.seq,
            event.uid,
            event.body.kind().as_str()
        ),
        status: HealthStatus::OutboxFull {
            queued_events: queued,
            queued_bytes,
            limit_bytes: 0,
            dropped_events: 1,
        },
    })
}

fn refused_notice(failure: &Failure) -> Body {
    Body::AgentHealth(AgentHealth {
        message: format!(
            "The collector refuses this agent ({failure}); events are kept and sent once it accepts them. Check CollectorURL and EnrollmentSecret."
        ),
        status: HealthStatus::PermissionMissing {
            permission: "collector".into(),
            detail: failure.to_string(),
        },
    })
}

#[cfg(test)]
mod tests;
