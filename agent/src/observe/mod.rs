//! observe: answers questions about the machine and returns plain data
//! ([`crate::model`]). It never decides anything.
//!
//! `scan` asks once ([`inventory`]); the daemon asks again every sweep and
//! keeps what it learned between sweeps ([`sweep`]: sockets, owners,
//! persistence and probes, resolving only what is new; [`camera_watch`]:
//! grants, camera sessions and connections to flagged helpers, with
//! [`short_conns`] for those too short for a sweep).
pub mod apps;
pub mod camera;
pub mod camera_watch;
pub mod inventory;
pub mod persistence;
pub mod probe;
pub mod short_conns;
pub mod signing;
pub mod sweep;
pub mod tcc;
