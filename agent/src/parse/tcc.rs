//! Privacy grants from a TCC database (`TCC.db`): which clients macOS lets
//! use the camera, the microphone, screen capture and Full Disk Access.
//!
//! TCC.db is an SQLite file owned by `tccd`, so "parsing" it means opening
//! it with SQLite; that is the one piece of I/O in this module and it lives
//! in [`read`]. Everything else (the row → [`TccGrant`] mapping, schema
//! detection, [`diff`]) is pure.
//!
//! Two rules shape the reader:
//! - **Never disturb tccd.** The database is opened read-only through a
//!   `file:…?mode=ro` URI with a short busy timeout, so we never take a
//!   write lock and never wait long on tccd's. When tccd holds the file
//!   locked, or the database is in WAL mode (where even a read-only open
//!   creates files beside it), we read a private copy instead (see [`read`]).
//! - **Read columns by name.** The `access` table changed shape across
//!   macOS generations (≤10.13 `allowed, prompt_count`; 10.14 adds
//!   `indirect_object_*, flags, last_modified`; 11 replaces `allowed` with
//!   `auth_value, auth_reason, auth_version`; 14 adds `pid, pid_version,
//!   boot_uuid, last_reminded`), so we ask `PRAGMA table_info(access)` which
//!   columns exist and select only those.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::{TccAuth, TccClientType, TccGrant, TccReason, TccService};

mod read;

pub use read::{TccReadOptions, read_grants};

/// The profile that grants the agent Full Disk Access, named in errors so
/// an admin knows what to deploy.
pub const FDA_PROFILE: &str = "installer/profiles/io.lenscap.agent.pppc.mobileconfig";

/// Which generation of the `access` table a database has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TccSchema {
    /// ≤10.13: `allowed, prompt_count`.
    HighSierra,
    /// 10.14–10.15: adds `indirect_object_*, flags, last_modified`.
    Mojave,
    /// 11–13: `auth_value, auth_reason, auth_version`.
    BigSur,
    /// 14+: adds `pid, pid_version, boot_uuid, last_reminded`.
    Sonoma,
}

impl TccSchema {
    /// Classify by the column names `PRAGMA table_info(access)` returned.
    /// `None` when the columns lenscap needs are missing.
    pub fn detect<S: AsRef<str>>(columns: &[S]) -> Option<TccSchema> {
        let has = |name: &str| columns.iter().any(|c| c.as_ref() == name);
        if !(has("service") && has("client") && has("client_type")) {
            return None;
        }
        if has("auth_value") {
            if has("pid") || has("boot_uuid") || has("last_reminded") {
                Some(TccSchema::Sonoma)
            } else {
                Some(TccSchema::BigSur)
            }
        } else if has("allowed") {
            if has("last_modified") || has("flags") {
                Some(TccSchema::Mojave)
            } else {
                Some(TccSchema::HighSierra)
            }
        } else {
            None
        }
    }
}

/// Everything one read of a TCC database produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TccSnapshot {
    pub schema: TccSchema,
    /// Sorted by service, client, client type.
    pub grants: Vec<TccGrant>,
    /// Rows of a wanted service whose values had the wrong type or size
    /// (a damaged or hand-edited database); reported, not guessed at.
    pub skipped_rows: usize,
    /// The live file was locked and a private copy was read instead.
    pub via_copy: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TccError {
    #[error("TCC database {path} does not exist")]
    NotFound { path: PathBuf },
    #[error(
        "cannot read TCC database {path}: {source}. The lenscap daemon needs Full Disk Access \
         (root alone is not enough): deploy the configuration profile {FDA_PROFILE} \
         (PPPC payload, service SystemPolicyAllFiles) through MDM"
    )]
    PermissionDenied {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TCC database {path} is a symbolic link; refusing to follow it out of its directory")]
    Symlink { path: PathBuf },
    #[error("{path} is not an SQLite database (corrupt, or not a TCC.db)")]
    NotADatabase { path: PathBuf },
    #[error("TCC database {path} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{path} has no `access` table, so it is not a TCC database")]
    NoAccessTable { path: PathBuf },
    #[error(
        "the access table of {path} lacks the columns lenscap reads (service, client, \
         client_type and auth_value or allowed); it has {columns:?}"
    )]
    UnknownSchema { path: PathBuf, columns: Vec<String> },
    #[error(
        "TCC database {path} stayed locked by its writer and {attempts} private copies were \
         not consistent; it will be read again on the next sweep"
    )]
    Locked { path: PathBuf, attempts: u32 },
    #[error("cannot read TCC database {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("SQLite failed on TCC database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

/// How a grant differs between two reads of the same database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum GrantChange {
    /// A client appeared for a service.
    Added { grant: TccGrant },
    /// The decision, its reason or its modification time changed. A changed
    /// `last_modified` alone still counts: tccd rewrote the decision (for
    /// example the user switched access off and on again between reads).
    Changed { before: TccGrant, after: TccGrant },
    /// The row disappeared (`tccutil reset`, app removed).
    Removed { grant: TccGrant },
}

/// Compare two reads of one database (not the union of several: the same
/// client may hold different grants in the system and a user database).
/// Output order: by service, client, client type.
pub fn diff(old: &[TccGrant], new: &[TccGrant]) -> Vec<GrantChange> {
    let before: BTreeMap<_, &TccGrant> = old.iter().map(|g| (g.key(), g)).collect();
    let after: BTreeMap<_, &TccGrant> = new.iter().map(|g| (g.key(), g)).collect();
    let mut changes = Vec::new();
    let keys: std::collections::BTreeSet<_> = before.keys().chain(after.keys()).collect();
    for key in keys {
        match (before.get(key), after.get(key)) {
            (None, Some(g)) => changes.push(GrantChange::Added {
                grant: (*g).clone(),
            }),
            (Some(g), None) => changes.push(GrantChange::Removed {
                grant: (*g).clone(),
            }),
            (Some(b), Some(a)) if b != a => changes.push(GrantChange::Changed {
                before: (*b).clone(),
                after: (*a).clone(),
            }),
            _ => {}
        }
    }
    changes
}

#[cfg(test)]
mod tests;
