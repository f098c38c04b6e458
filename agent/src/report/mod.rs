//! report: every finding and action as an event, on disk before anything
//! is sent.
//!
//! - [`hostid`]: who this machine is (hostname, hardware UUID and serial on
//!   a Mac, machine-id on Linux), for every event's envelope.
//! - [`convert`]: pure conversions from the agent's findings, remediation
//!   steps and health into `lenscap_events` payloads.
//! - [`outbox`]: the durable, hash-chained, disk-bounded SQLite queue that
//!   `lenscap events` reads and the uploader drains.
//! - [`enroll`]: the host token — enrolling once, kept root-only.
//! - [`upload`]: the delivery thread — batches to the collector at least
//!   once, with backoff — and the HTTP client.
//! - [`policy_sync`]: the health events for a fleet policy applied or
//!   rejected (fetching it is `upload`'s; checking, converting and storing
//!   it is `policy::fleet`).
//! - [`reporter`]: what the daemon records — each finding when it is news,
//!   each step, health — appended to the outbox in order.
//! - [`camera_sessions`]: a camera session's start and stop events, held
//!   back while the helper it may belong to awaits its first probe.
//! - [`deliverer`]: the daemon's side of delivery — the delivery thread and
//!   the fleet policy in force.

pub mod camera_sessions;
pub mod convert;
pub mod deliverer;
pub mod enroll;
pub mod hostid;
pub mod outbox;
pub mod policy_sync;
pub mod reporter;
pub mod upload;
