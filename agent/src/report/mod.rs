//! report: every finding and action as an event, on disk before anything
//! is sent.
//!
//! - [`hostid`]: who this machine is (hostname, hardware UUID and serial on
//!   a Mac, machine-id on Linux), for every event's envelope.
//! - [`convert`]: pure conversions from the agent's findings, remediation
//!   steps and health into `lenscap_events` payloads.
//! - [`outbox`]: the durable, hash-chained, disk-bounded SQLite queue that
//!   `lenscap events` reads and the uploader drains.

pub mod convert;
pub mod hostid;
pub mod outbox;
