//! `sfltool dumpbtm` (Background Task Management, macOS 13+) → records,
//! and the login items among them → [`PersistenceItem`]s.
//!
//! The dump is a report for people, not a format: Apple adds keys between
//! releases. So the parser is tolerant — it reads the lines it knows, skips
//! everything else, and never fails. What it relies on (from real dumps, see
//! `agent/tests/fixtures/btm/README.md`):
//!
//! ```text
//! ========================
//!  Records for UID 501 : FA7B2188-5C79-409C-AD7A-704FB1B05396
//! ========================
//!  Items:
//!  #35:
//!                  Name: DockerHelper
//!                  Type: login item (0x4)
//!           Disposition: [enabled, allowed, notified] (0xb)
//!            Identifier: 4.com.docker.helper
//!                   URL: Contents/Library/LoginItems/DockerHelper.app
//!     Parent Identifier: 2.com.docker.docker
//!   Embedded Item Identifiers:
//!     #1: 16.com.docker.vmnetd
//! ```
//!
//! - a record starts at a line that is exactly `#<n>:`; `#<n>: <value>`
//!   lines are entries of the `Embedded Item Identifiers` list above them;
//! - keys are right-aligned; the value is everything after the first `: `
//!   (a name may itself contain `: `); `(null)` means absent;
//! - `URL` is a `file://` URL (percent-escaped), an absolute path, or a path
//!   relative to the parent app's bundle (`Contents/…`);
//! - the uid of the section is the user the record belongs to (`-2` holds
//!   system-wide records).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::model::{PersistenceItem, PersistenceKind};

/// BTM item types (the hex in `Type: login item (0x4)`); legacy items add
/// [`TYPE_LEGACY`].
pub const TYPE_APP: u32 = 0x2;
pub const TYPE_LOGIN_ITEM: u32 = 0x4;
pub const TYPE_LEGACY: u32 = 0x10000;
/// Disposition bits (macos-reference.md).
pub const DISPOSITION_ENABLED: u32 = 0x1;
pub const DISPOSITION_ALLOWED: u32 = 0x2;

/// One `#<n>:` record of the dump, as printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BtmRecord {
    /// The `Records for UID <uid>` section it was listed under; `None`
    /// before any section header.
    pub uid: Option<i64>,
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub developer_name: Option<String>,
    pub team_identifier: Option<String>,
    /// `login item` from `Type: login item (0x4)`.
    pub type_name: Option<String>,
    pub type_code: Option<u32>,
    pub flags: Option<u32>,
    /// The number in parentheses, or (when a build prints none) the bits
    /// of the words in brackets.
    pub disposition: Option<u32>,
    pub disposition_words: Vec<String>,
    /// BTM's identifier, usually `<type in decimal>.<bundle id or label>`.
    pub identifier: Option<String>,
    /// `URL` as printed (a `file://` URL, a path, or bundle-relative).
    pub url: Option<String>,
    pub executable_path: Option<String>,
    pub generation: Option<u64>,
    pub bundle_identifier: Option<String>,
    pub parent_identifier: Option<String>,
    pub associated_bundle_ids: Vec<String>,
    pub embedded_item_identifiers: Vec<String>,
}

impl BtmRecord {
    /// The type without the legacy bit; falls back to the printed name.
    fn base_type(&self) -> Option<u32> {
        match (self.type_code, self.type_name.as_deref()) {
            (Some(code), _) => Some(code & !TYPE_LEGACY),
            (None, Some("login item")) => Some(TYPE_LOGIN_ITEM),
            (None, Some("app")) => Some(TYPE_APP),
            _ => None,
        }
    }

    pub fn is_login_item(&self) -> bool {
        self.base_type() == Some(TYPE_LOGIN_ITEM)
    }

    pub fn is_app(&self) -> bool {
        self.base_type() == Some(TYPE_APP)
    }

    pub fn enabled(&self) -> bool {
        self.disposition
            .is_some_and(|d| d & DISPOSITION_ENABLED != 0)
    }

    pub fn allowed(&self) -> bool {
        self.disposition
            .is_some_and(|d| d & DISPOSITION_ALLOWED != 0)
    }

    /// `Identifier` without BTM's numeric type prefix (`4.com.docker.helper`
    /// → `com.docker.helper`), which is the bundle id or launchd label.
    pub fn label(&self) -> Option<&str> {
        let id = self.identifier.as_deref()?;
        match id.split_once('.') {
            Some((n, rest))
                if !n.is_empty() && !rest.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Some(rest)
            }
            _ => Some(id),
        }
    }
}

/// Parse the whole dump. Tolerant: unknown lines are skipped and nothing
/// panics; every `#n:` header starts a record, whatever follows it.
pub fn parse_dumpbtm(text: &str) -> Vec<BtmRecord> {
    let mut records = Vec::new();
    let mut section_uid: Option<i64> = None;
    let mut current: Option<BtmRecord> = None;
    let mut in_embedded = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("===") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("Records for UID") {
            records.extend(current.take());
            in_embedded = false;
            let number: String = rest
                .trim_start()
                .chars()
                .take_while(|c| *c == '-' || c.is_ascii_digit())
                .collect();
            section_uid = number.parse().ok();
            continue;
        }
        if let Some(value) = numbered(line) {
            if value.is_empty() {
                records.extend(current.take());
                in_embedded = false;
                current = Some(BtmRecord {
                    uid: section_uid,
                    ..BtmRecord::default()
                });
            } else if in_embedded && let Some(rec) = current.as_mut() {
                rec.embedded_item_identifiers.push(value.to_string());
            }
            continue;
        }
        let Some(rec) = current.as_mut() else {
            // Section-level lines (`Items:`, `ServiceManagement migrated: …`).
            continue;
        };
        let (key, value) = match line.split_once(": ") {
            Some((k, v)) => (k.trim(), v.trim()),
            None => match line.strip_suffix(':') {
                Some(k) => (k.trim(), ""),
                None => continue,
            },
        };
        in_embedded = key == "Embedded Item Identifiers";
        set_field(rec, key, value);
    }
    records.extend(current);
    records
}

/// `#12:` → `""`, `#1: 16.com.x` → `"16.com.x"`; `None` for other lines.
fn numbered(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('#')?;
    let (n, value) = rest.split_once(':')?;
    n.parse::<u64>().ok()?;
    Some(value.trim())
}

fn set_field(rec: &mut BtmRecord, key: &str, value: &str) {
    let text = || (value != "(null)" && !value.is_empty()).then(|| value.to_string());
    match key {
        "UUID" => rec.uuid = text(),
        "Name" => rec.name = text(),
        "Developer Name" => rec.developer_name = text(),
        "Team Identifier" => rec.team_identifier = text(),
        "Type" => {
            let (name, code) = split_code(value);
            rec.type_name = (!name.is_empty()).then(|| name.to_string());
            rec.type_code = code;
        }
        "Flags" => rec.flags = split_code(value).1,
        "Disposition" => {
            let (words, code) = split_code(value);
            rec.disposition_words = bracket_list(words, false);
            rec.disposition = code.or_else(|| disposition_from_words(&rec.disposition_words));
        }
        "Identifier" => rec.identifier = text(),
        "URL" => rec.url = text(),
        "Executable Path" => rec.executable_path = text(),
        "Generation" => rec.generation = value.parse().ok(),
        "Bundle Identifier" => rec.bundle_identifier = text(),
        "Parent Identifier" => rec.parent_identifier = text(),
        "Assoc. Bundle IDs" | "Associated Bundle Identifiers" => {
            rec.associated_bundle_ids = bracket_list(value, true)
        }
        _ => {}
    }
}

/// `login item (0x4)` → ("login item", Some(4)); `[ ] (0)` → ("[ ]", Some(0)).
fn split_code(value: &str) -> (&str, Option<u32>) {
    let Some(open) = value.rfind('(') else {
        return (value.trim(), None);
    };
    let inner = value[open + 1..].trim_end().trim_end_matches(')').trim();
    let code = match inner
        .strip_prefix("0x")
        .or_else(|| inner.strip_prefix("0X"))
    {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => inner.parse().ok(),
    };
    match code {
        Some(c) => (value[..open].trim(), Some(c)),
        // Not a number in the parentheses: keep the whole text.
        None => (value.trim(), None),
    }
}

/// `[enabled, not notified]` → phrases; with `on_spaces`, `[ com.a com.b ]`
/// → ids too (bundle id lists have been seen with commas and with spaces;
/// disposition phrases contain spaces, so they split on commas only).
fn bracket_list(value: &str, on_spaces: bool) -> Vec<String> {
    let inner = value.trim();
    let inner = inner.strip_prefix('[').unwrap_or(inner);
    let inner = match inner.find(']') {
        Some(end) => &inner[..end],
        None => inner,
    };
    inner
        .split(|c: char| c == ',' || (on_spaces && c.is_whitespace()))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// Exact words only: "disabled" contains "enabled" and "not notified"
/// contains "notified".
fn disposition_from_words(words: &[String]) -> Option<u32> {
    if words.is_empty() {
        return None;
    }
    Some(words.iter().fold(0, |bits, w| {
        bits | match w.as_str() {
            "enabled" => DISPOSITION_ENABLED,
            "allowed" => DISPOSITION_ALLOWED,
            "notified" => 0x8,
            _ => 0,
        }
    }))
}

/// The login items among the records, as persistence items.
///
/// Two kinds of record start something at login:
/// - `login item (0x4)`: a helper app registered with
///   `SMLoginItemSetEnabled` / `SMAppService.loginItem`, inside its parent
///   app (`Contents/Library/LoginItems/…`);
/// - an **enabled** `app (0x2)` record (legacy `0x10002` included): an app
///   that opens at login (`SMAppService.mainApp`, or an old
///   "Open at Login" item — ZoomOpener's kind of persistence). Apps that
///   merely contain background items are listed as *disabled* containers
///   and are left out.
///
/// `path` is the item's URL resolved to an absolute path where possible
/// (bundle-relative URLs against the parent app's record); `program` is
/// the `Executable Path`, resolved the same way, when the dump shows one.
/// Records with neither URL nor executable path cannot be located and are
/// left out.
pub fn login_items(records: &[BtmRecord]) -> Vec<PersistenceItem> {
    records
        .iter()
        .filter(|r| r.is_login_item() || (r.is_app() && r.enabled()))
        .filter_map(|r| {
            let base = parent_bundle(records, r);
            let resolve = |s: &str| resolve_path(s, base.as_ref());
            let path = r
                .url
                .as_deref()
                .map(resolve)
                .or_else(|| r.executable_path.as_deref().map(resolve))?;
            Some(PersistenceItem {
                kind: PersistenceKind::LoginItem,
                path,
                label: r.label().map(str::to_string),
                program: r.executable_path.as_deref().map(resolve),
                args: Vec::new(),
                // launchd's "run at load" is BTM's "enabled and allowed".
                run_at_load: r.enabled() && r.allowed(),
                keep_alive: false,
                sockets: Vec::new(),
                associated_bundle_ids: r.associated_bundle_ids.clone(),
                owner_uid: r.uid.and_then(|u| u32::try_from(u).ok()),
                parent_identifier: r.parent_identifier.clone(),
                developer: r.developer_name.clone(),
                disposition: r.disposition,
            })
        })
        .collect()
}

/// The bundle path of the record's parent app (`Parent Identifier` →
/// the app record with that `Identifier`, same uid first).
fn parent_bundle(records: &[BtmRecord], rec: &BtmRecord) -> Option<PathBuf> {
    let parent = rec.parent_identifier.as_deref()?;
    let candidates = records
        .iter()
        .filter(|p| p.is_app() && p.identifier.as_deref() == Some(parent));
    let chosen = candidates
        .clone()
        .find(|p| p.uid == rec.uid)
        .or_else(|| candidates.clone().next())?;
    let path = resolve_path(chosen.url.as_deref()?, None);
    path.is_absolute().then_some(path)
}

/// `file:///A%20B.app/` → `/A B.app`; `/x` stays; a relative path is joined
/// to `base` when there is one.
fn resolve_path(value: &str, base: Option<&PathBuf>) -> PathBuf {
    let raw = match value.strip_prefix("file://") {
        Some(rest) => {
            // `file://localhost/x` names the same file as `file:///x`.
            let rest = rest.strip_prefix("localhost").unwrap_or(rest);
            let bytes: Vec<u8> = percent_encoding::percent_decode_str(rest).collect();
            PathBuf::from(OsStr::from_bytes(&bytes))
        }
        None => PathBuf::from(value),
    };
    // Drops a trailing slash and `.` components.
    let raw: PathBuf = raw.components().collect();
    match base {
        Some(b) if raw.is_relative() => b.join(raw),
        _ => raw,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests;
