//! judge: `(policy, observations) → findings with verdicts`. Pure and
//! synchronous — no I/O, no clock reads — so every decision is
//! reproducible in a unit test. docs/design.md §2 is the definition this module
//! implements.
//!
//! # How a verdict is reached
//!
//! Every listener and every persistence item gives exactly one [`Finding`],
//! allowed ones included, each with plain-words reasons in the order the
//! judge reached them:
//!
//! 1. **Web-reachable** (`heuristics::web_reach`): bound to loopback, all
//!    addresses or one LAN address of the machine (a page reaches
//!    `192.168.1.20` as easily as `127.0.0.1`) *and* the probe saw HTTP or
//!    WebSocket. Not probed or the probe failed → unknown, which can at
//!    most be reported.
//! 2. **Not trusted** (`heuristics::trust`): not an Apple platform binary.
//!    An interpreter installed where interpreters are
//!    (`heuristics::code_of`: the OS, a package manager, a toolchain, an
//!    installed app) is judged by what it runs — the script, or for inline
//!    code (`-c`, `-e`, `-m`) the launchd plist that holds it — and its own
//!    signature, Apple's or anyone's, vouches for none of it. A program
//!    merely *named* like an interpreter elsewhere is its own program. On
//!    Linux there are no signatures, and the reasons say so.
//! 3. **A helper** (`helper::helper`): started by a persistence item
//!    (`correlate`), by another app, or by launchd without being an app a
//!    person opened. A persistence link settles it first: a terminal does
//!    not excuse what a plist starts (`script -qc` gives it one). Without
//!    a link, a process with a controlling terminal, or whose parent has
//!    one, was started by a person and is not a helper.
//! 4. **Undisclosed** (`locate`, `items::item_facts`), judged on the
//!    program that runs (`Finding::judged_path`): a hidden folder in its
//!    path, outside every installed app, in a temp location or a home's
//!    `Library/Application Support`, its app gone, no visible app
//!    associated. OS locations and package-manager prefixes (`/opt/homebrew`,
//!    `/usr/local`, `/opt/local`, `/nix`, `~/.linuxbrew`) count as
//!    disclosed. Toolchain folders (`~/.nvm`, `.venv`, `node_modules`,
//!    `~/.local/bin`) and App Translocation count only for what a person
//!    started — never for what a persistence item starts — and App
//!    Translocation only on a mount observe confirmed
//!    (`Observations::translocated`), never for a folder's name. The
//!    reasons say when such a shortcut did not apply.
//!
//! # Precedence (`verdict::decide`)
//!
//! 1. An admin **deny** rule → remediate. A deny beats an allow when both
//!    match: a conflict resolves toward acting; narrow the deny to carve out
//!    an exception.
//! 2. An admin **allow** rule → allow. It beats the built-in catalog and the
//!    heuristics: an admin knows their fleet. An allow rule by identity
//!    (`TeamID`, `SigningID`, `BundleID`, `Label`) applies only when a
//!    signature that validated vouches for it; for an ad-hoc, invalid,
//!    unsigned or unchecked signature (or an interpreter's) the reasons
//!    say the rule did not apply, and only `Path`/`Port` rules allow.
//!    Deny rules match claimed identities too.
//! 3. A **catalog** match → remediate; a dormant copy embedded inside its
//!    still-installed parent app (not serving) is reported instead. A port
//!    alone never matches the catalog.
//! 4. A persistence item takes the strongest verdict of the listeners it
//!    starts. Not running: undisclosed + starts by itself → report ("no
//!    HTTP evidence"); otherwise allow.
//! 5. The heuristics: 1–4 hold → remediate; 1–2 hold → report; else allow.
//! 6. **Never-list**, last and absolute: PID 0/1, the agent itself, Apple
//!    platform binaries and anything under `/System` are never remediated —
//!    a remediate verdict is lowered to report and the reasons say why.
//!    A listener whose owner cannot be seen is likewise never remediated.
//!    An installed interpreter running a script (or a plist's inline code)
//!    is that code's process: it may be terminated, unless the script is
//!    part of the sealed OS or the plist lives under `/System`; its file
//!    is never moved (act moves `judged_path`).
//!
//! Severity: allow → info; report → low, one step up per aggravating
//! factor (max high); remediate → high, critical with any aggravating
//! factor (CORS `*` or reflected Origin, image answers, reachable from the
//! local network — bound to all addresses or a LAN address —, KeepAlive /
//! RunAtLoad / login item).
//!
//! # Camera (`camera`)
//!
//! Judged last, against the *flagged helpers*: this pass's listener and
//! persistence findings that say remediate. Every privacy grant and every
//! open camera session gives exactly one finding. lenscap never acts on a
//! camera finding by itself (act ignores them): a session in a helper's
//! tree ends when the helper's tree is terminated; a grant is never revoked.
//!
//! A **camera session** (`camera_use`):
//! 1. Its process is a flagged helper, descends from one (parent chain,
//!    cycle-safe and bounded), or runs a flagged helper's program →
//!    remediate, critical, with the helper's rule. The never-list still
//!    holds: PID 0/1, the agent, Apple platform binaries and `/System` (or
//!    a session whose process cannot be seen) are lowered to report, still
//!    critical.
//! 2. Else it began at most `CameraCorrelationSeconds` after a connection
//!    to a flagged helper's port (never before the connection; 0 turns
//!    this off) → report, critical, with the `incident` (the latest such
//!    connection). A tied session (1.) carries the incident too when one
//!    qualifies.
//! 3. Else allow, info. An admin allow rule matching the camera user does
//!    not lower 1 or 2: the helper is what is flagged, not the user.
//!
//! A **privacy grant** (`camera_grant`; camera, microphone, screen capture,
//! Full Disk Access):
//! 1. It gives access and its client is a flagged helper (a path: the
//!    helper's program or inside its bundle; a bundle id: a helper's
//!    signing identifier, its persistence label, associated or parent
//!    bundle ids) → report with the helper's rule; critical for camera,
//!    microphone and screen capture, high for Full Disk Access.
//! 2. It gives access and an admin deny rule matches the client → report,
//!    high, with the rule.
//! 3. It gives access and an admin allow rule matches the client (bundle
//!    id → `BundleID`/`SigningID`, path → `Path`) while something below
//!    would report it → allow, with the rule id.
//! 4. It gives access and the client, judged on its own with nothing
//!    running, is the catalog's (its bundle id — TCC vouches for it by the
//!    code requirement — or its path) → report, critical (high for Full
//!    Disk Access), with the catalog entry; a path client whose program
//!    lives where no installed app put it (hidden, temporary, support
//!    folder, outside every app) or is gone → report, high.
//! 5. It gives access and is new since the previous read of its database
//!    → report, medium (all four services: a new Full Disk Access grant is
//!    no less worth a look).
//! 6. Else allow, info, one line saying who may (or is denied) what.

use crate::model::Finding;

mod actor;
mod camera;
mod catalog;
mod catalog_match;
mod correlate;
mod helper;
mod heuristics;
mod items;
mod listener;
mod locate;
mod persistence;
mod policy;
#[cfg(test)]
mod props;
mod rules;
#[cfg(test)]
mod scenarios_bad;
#[cfg(test)]
mod scenarios_benign;
#[cfg(test)]
mod scenarios_dodges;
#[cfg(test)]
mod scenarios_misuse;
#[cfg(test)]
mod scenarios_never;
mod subject;
#[cfg(test)]
pub(crate) mod testkit;
mod verdict;

pub use catalog::{Catalog, CatalogEntry, CatalogFile, DisclosedLocations};
pub use policy::Policy;

pub use crate::model::{CameraSessionObservation, ConnectionSeen, GrantObservation, Observations};

/// Why a [`Policy`] could not be built. Each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    /// A rule the judge cannot match with (`model::rule` says why).
    #[error("rule {rule_id}: {problem}; fix that rule")]
    Rule {
        rule_id: String,
        problem: crate::model::rule::RuleProblem,
    },
    #[error("{key} entry {glob:?} is not a valid glob ({source}); fix that entry")]
    DirGlob {
        key: &'static str,
        glob: String,
        #[source]
        source: globset::Error,
    },
    #[error("catalog {origin} is not a valid catalog: {detail}")]
    CatalogParse { origin: String, detail: String },
    #[error("catalog entry {id}: {problem}")]
    CatalogEntry { id: String, problem: String },
}

/// Judge one observation pass: exactly one finding per listener, per
/// persistence item, per privacy grant and per camera session, strongest
/// verdict first, then listeners by port, persistence by path, camera
/// sessions and grants by their own fields. Pure: the same inputs give the
/// same output.
pub fn judge(policy: &Policy, obs: &Observations) -> Vec<Finding> {
    let links = correlate::link(obs);
    let facts: Vec<items::ItemFacts> = obs
        .persistence
        .iter()
        .map(|item| items::item_facts(item, policy, obs))
        .collect();
    let listeners: Vec<listener::Judged> = (0..obs.listeners.len())
        .map(|li| listener::judge_listener(policy, obs, &links, &facts, li))
        .collect();
    let mut findings: Vec<Finding> = (0..obs.persistence.len())
        .map(|ii| persistence::judge_item(policy, obs, &links, &facts[ii], &listeners, ii))
        .collect();
    findings.extend(listeners.into_iter().map(|j| j.finding));
    // Camera findings are judged against the helpers flagged above, taken
    // in sorted order so the helper a finding names never depends on the
    // order observe produced.
    verdict::sort(&mut findings);
    let camera = camera::judge_camera(policy, obs, &findings);
    findings.extend(camera);
    verdict::sort(&mut findings);
    findings
}
