//! The on-disk record of one quarantine: `<vault>/<id>/manifest.json`.
//!
//! # Format and invariants
//!
//! ```text
//! <vault>/<id>/manifest.json   this record (JSON, written atomically)
//! <vault>/<id>/payload/<n>     item n, as it was (file, directory tree or link)
//! <vault>/<id>/payload/<n>.partial   a cross-filesystem copy in progress
//! ```
//!
//! - `id` is `YYYYMMDDTHHMMSSZ-xxxxxxxx` (UTC, then random hex): ids sort by
//!   time, and two quarantines in one second do not collide.
//! - The manifest is written (tmp file, fsync, rename, fsync the directory)
//!   with state `moving` **before** anything moves, and again with
//!   `quarantined` after; restore writes `restoring` before and `restored`
//!   after, and keeps the record for audit. A crash therefore always leaves
//!   a record saying what was intended, which `Vault::recover` finishes.
//! - Per item: original path and the root entry's kind, owner, group, mode,
//!   size, mtime and sha256 (files) or link text (links); for a directory,
//!   `entries` holds the same for everything inside it, depth-first, with
//!   paths relative to the item.
//! - Paths that are not UTF-8 are stored as `{"bytes_hex": …}`.

use std::ffi::OsStr;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::fsops::{Entry, FsError, Meta, RawPath, SafeDir};

/// The manifest's file name inside a record directory.
pub const MANIFEST: &str = "manifest.json";
const MANIFEST_TMP: &str = "manifest.json.tmp";
/// Larger manifests are refused when read (a tree of 200,000 entries is
/// well under this).
const MAX_MANIFEST_BYTES: u64 = 256 * 1024 * 1024;

/// Where a record is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    /// Intent recorded; items may be partly moved (recover finishes it).
    Moving,
    /// Every item is in the vault.
    Quarantined,
    /// A restore is under way (recover finishes it).
    Restoring,
    /// Every item is back at its original path; kept for audit.
    Restored,
    /// The quarantine failed and everything moved was put back.
    Aborted,
    /// Something could not be finished or undone; `notes` say what. The
    /// vault still holds whatever is listed as in it; an admin decides.
    Failed,
}

/// One quarantined path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// Where it was, and goes back to.
    pub original: RawPath,
    /// Relative to the record directory: `payload/<n>`.
    pub payload: String,
    /// The item itself: kind, uid, gid, mode, size, mtime, sha256.
    #[serde(flatten)]
    pub meta: Meta,
    /// Everything inside a directory item (relative paths).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<Entry>,
}

impl ItemRecord {
    /// The item as a scanned tree (root entry first), for [`super::fsops::diff`].
    pub fn tree(&self) -> Vec<Entry> {
        let mut all = Vec::with_capacity(self.entries.len() + 1);
        all.push(Entry {
            path: RawPath::default(),
            meta: self.meta.clone(),
        });
        all.extend(self.entries.iter().cloned());
        all
    }

    /// Build from a scan (root entry first).
    pub fn from_tree(original: PathBuf, payload: String, mut tree: Vec<Entry>) -> ItemRecord {
        let meta = if tree.is_empty() {
            // `scan` always returns the root; keep a sane value regardless.
            Meta {
                kind: super::fsops::EntryKind::Other,
                uid: 0,
                gid: 0,
                mode: 0,
                size: 0,
                mtime: Default::default(),
                sha256: None,
                link_target: None,
                dev: 0,
                ino: 0,
            }
        } else {
            tree.remove(0).meta
        };
        ItemRecord {
            original: RawPath(original),
            payload,
            meta,
            entries: tree,
        }
    }

    /// The name of the payload inside `payload/` (`<n>`).
    pub fn payload_name(&self) -> &OsStr {
        OsStr::new(self.payload.rsplit('/').next().unwrap_or(&self.payload))
    }
}

/// One quarantine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineRecord {
    pub id: String,
    /// When it was quarantined, RFC 3339 UTC.
    pub time: String,
    pub time_unix: i64,
    /// What the judge found, in words.
    pub finding: String,
    /// The catalog entry or admin rule that decided, if one did.
    pub rule: Option<String>,
    pub state: RecordState,
    pub items: Vec<ItemRecord>,
    /// Audit trail: state changes, leftovers, recovery steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The privacy grants the same plan reset (service, bundle id, whose
    /// database), so a restore can tell the person to grant them again.
    /// Manifests written before grants were reset have none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants_reset: Vec<crate::model::GrantReset>,
}

/// Errors reading or writing a manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("{}: not a valid quarantine manifest: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: larger than {MAX_MANIFEST_BYTES} bytes; not reading it", path.display())]
    TooLarge { path: PathBuf },
}

/// Write `record` into `dir/manifest.json` atomically and durably.
pub fn write(dir: &SafeDir, record: &QuarantineRecord) -> Result<(), ManifestError> {
    let tmp = OsStr::new(MANIFEST_TMP);
    let tmp_path = dir.child_path(tmp);
    let json = serde_json::to_vec_pretty(record).map_err(|source| ManifestError::Json {
        path: tmp_path.clone(),
        source,
    })?;
    if dir.lstat(tmp)?.is_some() {
        dir.unlink(tmp)?; // a crash's leftover
    }
    let io = |op| {
        let p = tmp_path.clone();
        move |source| FsError::Io {
            op,
            path: p,
            source,
        }
    };
    let mut file = dir.create_file(tmp, 0o600)?;
    file.write_all(&json).map_err(io("write"))?;
    file.sync_all().map_err(io("fsync"))?;
    dir.rename(tmp, dir, OsStr::new(MANIFEST))?;
    dir.sync()?;
    Ok(())
}

/// Read `dir/manifest.json`; `Ok(None)` if there is none.
pub fn read(dir: &SafeDir) -> Result<Option<QuarantineRecord>, ManifestError> {
    let name = OsStr::new(MANIFEST);
    let path = dir.child_path(name);
    if dir.lstat(name)?.is_none() {
        return Ok(None);
    }
    let (file, meta) = dir.open_file(name)?;
    if meta.size > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge { path });
    }
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|source| FsError::Io {
            op: "read",
            path: path.clone(),
            source,
        })?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| ManifestError::Json { path, source })
}

/// Remove a stale `manifest.json.tmp` (a crash between write and rename).
pub fn remove_tmp(dir: &SafeDir) -> Result<bool, FsError> {
    let tmp = OsStr::new(MANIFEST_TMP);
    if dir.lstat(tmp)?.is_some() {
        dir.unlink(tmp)?;
        return Ok(true);
    }
    Ok(false)
}

/// Is `id` shaped like one we make? It becomes a directory name, so
/// anything with `/` or dots must never get that far.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A new id for `now`: `YYYYMMDDTHHMMSSZ-` and eight random hex digits.
///
/// The randomness comes from std's per-process random hash keys: it only
/// has to make a collision unlikely — creating the directory with
/// `mkdirat` fails on one, and the caller draws again.
pub fn new_id(now: SystemTime) -> String {
    // `2026-11-28T06:30:12Z` → `20261128T063012Z`: sortable and a valid
    // file name.
    let stamp: String = rfc3339(now)
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    hasher.write_u32(std::process::id());
    let random = hasher.finish() as u32;
    format!("{stamp}-{random:08x}")
}

/// RFC 3339 UTC, whole seconds.
pub fn rfc3339(now: SystemTime) -> String {
    crate::clock::rfc3339(unix_secs(now))
}

pub use crate::clock::unix_secs;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn civil_dates_match_known_instants() {
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00Z");
        // `date -u -d @1795847412` → 2026-11-28T06:30:12Z
        assert_eq!(rfc3339(at(1_795_847_412)), "2026-11-28T06:30:12Z");
        // Leap day.
        assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(1)),
            "1969-12-31T23:59:59Z"
        );
    }

    #[test]
    fn ids_sort_by_time_and_are_valid_names() {
        let a = new_id(at(1_795_847_412));
        let b = new_id(at(1_795_847_413));
        assert!(a.starts_with("20261128T063012Z-"), "{a}");
        assert!(a < b);
        assert!(valid_id(&a) && valid_id(&b));
        assert_ne!(new_id(at(5)), new_id(at(5)), "random part differs");
        for bad in ["", "..", "a/b", ".", "x.y", "a b"] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn grants_reset_round_trip_and_older_manifests_read_without_them() {
        use crate::model::{GrantReset, TccService};
        let old = r#"{"id":"20261128T063012Z-0000abcd","time":"2026-11-28T06:30:12Z",
            "time_unix":1795847412,"finding":"helper","rule":null,"state":"quarantined",
            "items":[]}"#;
        let record: QuarantineRecord = serde_json::from_str(old).unwrap();
        assert!(record.grants_reset.is_empty());
        // Nothing reset: the field stays out of the file, as before.
        assert!(
            !serde_json::to_string(&record)
                .unwrap()
                .contains("grants_reset")
        );
        let mut with = record.clone();
        with.grants_reset.push(GrantReset {
            service: TccService::Microphone,
            client: "com.acme.helper".into(),
            uid: 501,
            database: PathBuf::from("/Users/ann/Library/Application Support/com.apple.TCC/TCC.db"),
        });
        let text = serde_json::to_string(&with).unwrap();
        assert!(text.contains(r#""service":"microphone""#), "{text}");
        assert_eq!(
            serde_json::from_str::<QuarantineRecord>(&text).unwrap(),
            with
        );
    }

    #[test]
    fn non_utf8_paths_round_trip_through_json() {
        use std::os::unix::ffi::OsStrExt;
        let odd = RawPath(PathBuf::from(OsStr::from_bytes(b"/tmp/a\xff\x00b")));
        let text = serde_json::to_string(&odd).unwrap();
        assert!(text.contains("bytes_hex"), "{text}");
        assert_eq!(serde_json::from_str::<RawPath>(&text).unwrap(), odd);
        let plain = RawPath(PathBuf::from("/Users/a/.zoomus"));
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            "\"/Users/a/.zoomus\""
        );
        assert!(serde_json::from_str::<RawPath>(r#"{"bytes_hex":"abc"}"#).is_err());
    }
}
