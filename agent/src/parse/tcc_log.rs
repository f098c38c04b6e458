//! Privacy-grant changes from tccd's own log message, for when the
//! per-user TCC.db cannot be read (macOS 27 is reported to move it out of
//! reach even with Full Disk Access).
//!
//! When tccd writes a decision it logs (category `access`, default level):
//!
//! ```text
//! Update Access Record: kTCCServiceMicrophone for us.zoom.xos to Allowed at 1674472946 (2023-01-23 11:22:26 +0000)
//! Update Access Record: kTCCServiceAccessibility for ru.starmel.OpenSuperWhisper to Allowed (System Set)
//! ```
//!
//! (verbatim published lines; sources beside the fixtures in
//! `agent/tests/fixtures/tcc_log/`). What one line tells, and what not:
//!
//! - **service** and **client** as the `access` table stores them: a
//!   bundle id, or for a client known by path, the path (a client type of
//!   its own is not logged; a client beginning with `/` is taken as a path,
//!   as TCC itself keys path clients by absolute path).
//! - the **decision** (`Allowed`, `Denied`; `Unknown` and `Limited` are
//!   the other `auth_value` names and are read too).
//! - a **reason** in parentheses on newer systems (`System Set` seen in
//!   published lines; `User Consent`, `User Set`, `MDM Policy`, `Entitled`
//!   are the other reasons' names and are mapped when they appear), or an
//!   `at <unix seconds>` time on older ones.
//! - Not logged: the code requirement, the indirect object, the database
//!   (which user's) and the requesting process. AUTHREQ_* messages carry
//!   the requesting and accessing processes, but they are access *checks*,
//!   not changes, and are not used.
//!
//! Trust: os_log lets any process log under any subsystem, so a line
//! counts only when the logging system says tccd's executable logged it
//! (`processImagePath`, filled in by the logging system, on a
//! SIP-protected path). A helper cannot fake a revocation to hide a grant.

use serde_json::Value;

use crate::model::{TccAuth, TccClientType, TccGrant, TccReason, TccService};

/// tccd's executable (SIP-protected).
pub const TCCD_PATH: &str = "/System/Library/PrivateFrameworks/TCC.framework/Support/tccd";

/// The message every grant change starts with.
pub const MARKER: &str = "Update Access Record: ";

/// Longest line looked at; a grant change is a few hundred bytes.
pub const MAX_LINE_LEN: usize = 16 * 1024;

/// `log stream` arguments that print only tccd's grant changes.
pub fn log_stream_predicate() -> String {
    format!(
        r#"subsystem == "com.apple.TCC" AND eventMessage BEGINSWITH "{}""#,
        MARKER.trim_end()
    )
}

/// One grant change as tccd logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TccLogChange {
    /// `last_modified` is the `at` time when logged, else the line's
    /// timestamp (seconds), else `None`.
    pub grant: TccGrant,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TccLogError {
    #[error("tccd grant change without ` for <client> to <decision>`: {0:?}")]
    Shape(String),
    #[error("tccd grant change with an empty service or client: {0:?}")]
    Empty(String),
    #[error("line longer than {MAX_LINE_LEN} bytes")]
    TooLong,
}

fn excerpt(s: &str) -> String {
    s.chars().take(160).collect()
}

/// The decision words tccd logs, longest first is not needed: they are
/// whole words followed by the end, a space or nothing else.
const DECISIONS: [(&str, TccAuth); 4] = [
    ("Allowed", TccAuth::Allowed),
    ("Denied", TccAuth::Denied),
    ("Unknown", TccAuth::Unknown),
    ("Limited", TccAuth::Limited),
];

fn reason_of(words: &str) -> Option<TccReason> {
    match words {
        "User Consent" => Some(TccReason::UserConsent),
        "User Set" => Some(TccReason::UserSet),
        "System Set" => Some(TccReason::SystemSet),
        "MDM Policy" => Some(TccReason::MdmPolicy),
        "Entitled" => Some(TccReason::Entitled),
        _ => None,
    }
}

/// The grant change in `text` (an event message, or a whole `log show`
/// line that contains one). `Ok(None)`: not a grant change, or one for a
/// service lenscap does not read (Accessibility, Apple Events, …).
pub fn parse_message(text: &str) -> Result<Option<TccLogChange>, TccLogError> {
    if text.len() > MAX_LINE_LEN {
        return Err(TccLogError::TooLong);
    }
    let Some(at) = text.find(MARKER) else {
        return Ok(None);
    };
    let rest = text[at + MARKER.len()..].trim_end();
    let (service, rest) = rest
        .split_once(" for ")
        .ok_or_else(|| TccLogError::Shape(excerpt(text)))?;
    let Some(service) = TccService::from_tcc_name(service.trim()) else {
        return Ok(None);
    };
    // The client may itself contain " to " (a path such as
    // "/Users/ann/path to/helper"): the decision is the last " to <Word>"
    // whose word is a decision ending the text or followed by a space.
    let mut found = None;
    let mut search = rest.len();
    while let Some(i) = rest[..search].rfind(" to ") {
        let after = &rest[i + 4..];
        if let Some((word, auth)) = DECISIONS.iter().find(|(w, _)| {
            after.starts_with(w) && matches!(after.as_bytes().get(w.len()), None | Some(b' '))
        }) {
            found = Some((i, *auth, &after[word.len()..]));
            break;
        }
        search = i;
    }
    let (i, auth, tail) = found.ok_or_else(|| TccLogError::Shape(excerpt(text)))?;
    let client = &rest[..i];
    if client.trim().is_empty() {
        return Err(TccLogError::Empty(excerpt(text)));
    }
    let tail = tail.trim();
    let reason = tail
        .strip_prefix('(')
        .and_then(|t| t.split_once(')'))
        .and_then(|(words, _)| reason_of(words.trim()));
    let last_modified = tail
        .strip_prefix("at ")
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse::<i64>().ok());
    let client_type = if client.starts_with('/') {
        TccClientType::Path
    } else {
        TccClientType::BundleId
    };
    Ok(Some(TccLogChange {
        grant: TccGrant {
            service,
            client: client.to_string(),
            client_type,
            auth,
            reason,
            last_modified,
        },
    }))
}

/// One line of `log stream --style ndjson`. `None` for lines that are not
/// tccd grant changes (the header, other messages, broken JSON, lines a
/// process other than tccd logged); `Some(Err)` for a tccd grant change
/// that does not parse.
pub fn parse_ndjson_line(line: &str) -> Option<Result<TccLogChange, TccLogError>> {
    // Cheap tests first: almost every line is something else, and no grant
    // change is anywhere near this long.
    if line.len() > MAX_LINE_LEN || !line.contains(MARKER.trim_end()) {
        return None;
    }
    let v: Value = serde_json::from_str(line).ok()?;
    if v.get("processImagePath").and_then(Value::as_str) != Some(TCCD_PATH) {
        return None;
    }
    let message = v.get("eventMessage").and_then(Value::as_str)?;
    let when = v
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(timestamp_seconds);
    match parse_message(message) {
        Ok(Some(mut change)) => {
            change.grant.last_modified = change.grant.last_modified.or(when);
            Some(Ok(change))
        }
        Ok(None) => None,
        Err(e) => Some(Err(e)),
    }
}

/// `2023-01-23 03:22:26.410246-0800` → Unix seconds.
fn timestamp_seconds(ts: &str) -> Option<i64> {
    use time::format_description::well_known::Iso8601;
    // ndjson's timestamp: date, space, time with fraction, offset ±hhmm.
    let (date, rest) = ts.split_once(' ')?;
    let split = rest.rfind(['+', '-'])?;
    let (clock, offset) = rest.split_at(split);
    let offset = if offset.len() == 5 {
        format!("{}:{}", &offset[..3], &offset[3..])
    } else {
        offset.to_string()
    };
    let iso = format!("{date}T{clock}{offset}");
    time::OffsetDateTime::parse(&iso, &Iso8601::DEFAULT)
        .ok()
        .map(|t| t.unix_timestamp())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
#[path = "tcc_log/tests.rs"]
mod tests;
