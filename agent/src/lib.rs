//! lenscap: observe → judge → act → report.
//!
//! - [`observe`] answers questions about the machine and returns plain data
//!   ([`model`]); it never decides anything.
//! - [`judge`] is pure: `(policy, observations) → findings with verdicts`.
//! - `act` and `report` (the daemon's stages) carry verdicts out and tell
//!   the collector.
//!
//! [`scan`] runs observe → judge once; `lenscap scan` prints its result.

pub mod act;
pub mod backoff;
pub mod clock;
pub mod command;
pub mod config;
pub mod daemon;
pub mod fsutil;
pub mod judge;
pub mod logging;
pub mod model;
pub mod observe;
pub mod parse;
pub mod platform;
pub mod policy;
pub mod render;
pub mod report;
pub mod scan;
pub mod update;
