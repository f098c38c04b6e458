//! Plain data the stages hand each other. No OS types, no I/O, and no
//! imports of the agent's other modules: observe produces these, judge
//! reads them, act and report take the findings on, the CLI serialises
//! them. The serde shape of these types *is* the `lenscap scan --json`
//! contract (docs/scan-json.md), so renaming a field is a breaking change.
//!
//! The small types of a finding — verdict, severity, kinds, address scope,
//! signature, start time, the probe's answer, a listener's address, a
//! camera incident — are the wire crate's (`lenscap_events`) own, used here
//! as they are: what the judge decides is what an event carries, with no
//! mirror to drift. The types that hold paths keep `PathBuf`s here; the
//! wire carries strings, and `report::convert` writes them lossily.
//!
//! - [`observed`]: what one observation pass saw ([`Observations`]).
//! - [`grant`]: privacy grants as TCC records them.
//! - [`finding`]: what the judge decided ([`Finding`]).
//! - [`paths`]: facts read from a path's shape alone.
//! - [`rule`]: admin allow/deny rules, whichever source wrote them, and
//!   the one validator they all go through.

mod finding;
mod grant;
mod observed;
mod paths;
pub mod rule;

pub use lenscap_events::{
    AddressScope, CameraIncident, Cors, FindingKind, HttpProbe, ListenerRef, PersistenceKind,
    Severity, Signature, SignatureStatus, StartTime, Verdict,
};

pub use finding::{CameraRef, Finding, HostInfo, PersistenceRef, ScanError};
pub use grant::{GrantHolder, GrantReset, TccAuth, TccClientType, TccGrant, TccReason, TccService};
pub use observed::{
    CameraSessionObservation, ConnectionSeen, Established, GrantObservation, LaunchdSocket,
    Listener, Observations, PersistenceItem, ProcessIdentity, SignalOutcome,
};
pub use paths::{
    Code, enclosing_bundle, is_interpreter, never_moved, script_arg, translocation_bundle,
};
pub use rule::{Rule, RuleAction};
