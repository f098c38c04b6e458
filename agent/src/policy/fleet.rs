//! The fleet policy as the agent keeps it: what the collector serves at
//! `GET /api/v1/policy` (admin allow/deny rules and known-bad catalog
//! additions), checked and turned into what the judge applies
//! ([`Fetched`]), and kept at `<StateDir>/fleet-policy.json` ([`store`],
//! [`load`]) so it is in force from the first sweep after a restart,
//! collector or not — and so `lenscap scan` applies it too.
//!
//! Fetching is the report stage's (`report::upload::worker` polls every
//! `PolicyIntervalSeconds` with `If-None-Match` and parses the answer with
//! [`Fetched::parse`]); the daemon builds its policy with a new one and
//! only then stores it. A policy that fails at any of these steps is
//! rejected with an `agent_health` event (`report::policy_sync`), and the
//! previous one stays in force.
//!
//! # From the collector's shapes to the agent's (`convert`)
//!
//! - **Rules** are the agent's `Rules` entries, checked the way a
//!   preferences file is (a `TeamID` of 10 capitals and digits, a `Path`
//!   glob starting with `/` or `**/` that compiles, a port above 0).
//! - **Catalog entries** differ from the built-in catalog's schema
//!   (judge/catalog.rs): the collector's entries match on `paths` globs,
//!   `bundle_ids`, `signing_ids` and `process_names`; the agent's on hidden
//!   folder names, bundle names, process names and bundle/signing ids. So:
//!   - `bundle_ids` and `signing_ids` become the entry's `bundle_ids`
//!     (the agent compares both against a signing identifier), and
//!     `process_names` stay; the entry is `catalog:<id>` (lowercase,
//!     `.`/`_` as `-`), vendor "fleet policy", its `description` the
//!     summary, `CVE-…` references its CVEs, `https://` references its
//!     sources (else the collector's policy URL, as provenance);
//!   - each of `paths` becomes a **deny rule** with the entry's id and that
//!     exact glob: the agent's catalog has no path globs, and guessing a
//!     hidden folder from a glob could match far more (`/Users/*/.config/x`
//!     is not "everything in `.config`");
//!   - `severity` is not carried: the judge derives severity itself;
//!   - an entry whose id is a built-in entry's is left out (logged): the
//!     built-in one already covers that helper.

mod convert;

use std::path::{Path, PathBuf};

use lenscap_events::FleetPolicy;
use serde::{Deserialize, Serialize};

pub use convert::{FleetAdditions, convert};

use crate::config::CollectorUrl;
use crate::fsutil::{Durability, write_atomic};

/// The stored policy in the state directory.
pub const FILE_NAME: &str = "fleet-policy.json";

#[derive(Debug, thiserror::Error)]
pub enum PolicySyncError {
    #[error("the fleet policy is not valid JSON of the expected shape: {0}")]
    Parse(String),
    #[error("the fleet policy is invalid: {0}")]
    Invalid(String),
    #[error("fleet policy rules[{index}] ({id}): {problem}")]
    Rule {
        index: usize,
        id: String,
        problem: String,
    },
    #[error("fleet policy catalog[{index}] ({id}): {problem}")]
    Catalog {
        index: usize,
        id: String,
        problem: String,
    },
    #[error("{path}: {detail}; remove it (the agent fetches the policy again)")]
    File { path: PathBuf, detail: String },
}

/// A fleet policy as fetched, checked and converted: ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub etag: String,
    pub policy: FleetPolicy,
    pub additions: FleetAdditions,
    /// Where it came from (`https://<collector>/api/v1/policy`).
    pub source: String,
}

impl Fetched {
    /// Parse, validate and convert the body of a 200 answer.
    pub fn parse(body: &str, etag: String, url: &CollectorUrl) -> Result<Fetched, PolicySyncError> {
        let policy: FleetPolicy =
            serde_json::from_str(body).map_err(|e| PolicySyncError::Parse(e.to_string()))?;
        Fetched::from_policy(policy, etag, source_of(url))
    }

    fn from_policy(
        policy: FleetPolicy,
        etag: String,
        source: String,
    ) -> Result<Fetched, PolicySyncError> {
        policy
            .validate()
            .map_err(|e| PolicySyncError::Invalid(e.to_string()))?;
        let additions = convert(&policy, &source)?;
        Ok(Fetched {
            etag,
            policy,
            additions,
            source,
        })
    }

    /// What was in force when the daemon last stopped.
    pub fn from_stored(stored: StoredPolicy) -> Result<Fetched, PolicySyncError> {
        Fetched::from_policy(stored.policy, stored.etag, stored.source)
    }

    pub fn to_stored(&self) -> StoredPolicy {
        StoredPolicy {
            etag: self.etag.clone(),
            source: self.source.clone(),
            policy: self.policy.clone(),
        }
    }
}

/// `<StateDir>/fleet-policy.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPolicy {
    /// The collector's ETag for it, sent back as `If-None-Match`.
    pub etag: String,
    pub source: String,
    pub policy: FleetPolicy,
}

/// The policy URL, as an https URL for catalog provenance (the built-in
/// catalog requires an https source for every entry).
fn source_of(url: &CollectorUrl) -> String {
    format!("https://{}/api/v1/policy", url.authority())
}

/// The stored policy, if any.
pub fn load(state_dir: &Path) -> Result<Option<StoredPolicy>, PolicySyncError> {
    let path = state_dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(PolicySyncError::File {
                path,
                detail: e.to_string(),
            });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| PolicySyncError::File {
            path,
            detail: format!("not a stored fleet policy ({e})"),
        })
}

/// Store what is now in force, atomically (0600, fsync'd).
pub fn store(state_dir: &Path, stored: &StoredPolicy) -> Result<(), PolicySyncError> {
    let path = state_dir.join(FILE_NAME);
    let fail = |detail: String| PolicySyncError::File {
        path: path.clone(),
        detail,
    };
    let bytes = serde_json::to_vec_pretty(stored).map_err(|e| fail(e.to_string()))?;
    write_atomic(&path, &bytes, 0o600, Durability::Durable).map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests;
