//! act: turn a `remediate` verdict into an ordered plan and carry it out —
//! or, in monitor mode, record what it would do.
//!
//! The plan runs plan → stop (launchd bootout) → kill (identity re-verified
//! before each signal) → quarantine → guard → restore (on request), and each
//! step is journaled in `StateDir` before it runs, so the next start
//! completes or rolls back whatever a crash interrupted.
//!
//! - [`fsops`]: file operations on descriptors that never follow a link a
//!   user planted (the root daemon works in user-writable directories).
//! - [`manifest`]: the on-disk record of one quarantine, written atomically.
//! - [`quarantine`]: the root-only vault — move files in reversibly, restore
//!   them exactly, recover half-done moves, block a hidden folder's return.
//! - [`guard`] and [`reinstall`]: paths a remediation emptied stay watched;
//!   what comes back is moved into the vault again, through the journal
//!   like every other step.
//! - [`grants`]: reset the camera, microphone and screen recording grants
//!   of a remediated helper (`tccutil reset`, in the grant holder's session).
//! - [`budget`]: the remediation circuit breaker, per actor.
//! - [`tell`]: what the person at the keyboard is told, in either mode —
//!   one notification per incident, as `NotifyUser` allows.
//! - [`native`]: the platform's implementations of act's traits
//!   ([`kill::ProcessControl`], [`execute::Notifier`]).

pub mod budget;
pub mod execute;
pub mod fsops;
pub mod grants;
pub mod guard;
pub mod journal;
pub mod kill;
pub mod lock;
pub mod manifest;
pub mod native;
pub mod plan;
pub mod quarantine;
pub mod reinstall;
pub mod restore;
pub mod stop;
pub mod tell;
