//! Interpreting one parsed preferences file: each top-level key becomes a
//! typed [`Setting`] or a [`ConfigError`] naming the file, the key, the
//! value found and what was expected.
//!
//! Every file that exists is validated whole, even keys another layer
//! overrides: a file is either correct or it is an error, so what an admin
//! sees from `lenscap config show` never depends on which layer happens to
//! win today. Unknown top-level keys are only warnings (a newer profile on
//! an older agent must not stop it); unknown fields inside a rule are
//! errors (see [`super::rules`]).

use std::ops::RangeInclusive;
use std::path::Path;

use plist::Value;

pub(crate) use super::keys::{Setting, parse_key};
use super::values::{Ctx, describe, suggest};
use super::{ConfigError, KEYS};

/// `SweepSeconds`, in milliseconds: a tenth of a second to an hour. Below
/// 0.1 s a sweep would cost more than it finds (docs/benchmarks.md).
pub(crate) const SWEEP_MILLIS: RangeInclusive<u64> = 100..=3_600_000;
pub(crate) const PROBE_TIMEOUT_MILLIS: RangeInclusive<u64> = 10..=10_000;
/// 0 turns correlation off; past five minutes a camera session and an
/// earlier connection are no longer plausibly one incident.
pub(crate) const CAMERA_CORRELATION_SECONDS: RangeInclusive<u64> = 0..=300;
/// Below 1 KiB not even a minimal launchd plist fits; above 64 MiB no
/// launchd plist is legitimate and reading it is a memory risk for a daemon.
pub(crate) const MAX_PLIST_BYTES: RangeInclusive<u64> = 1024..=64 * 1024 * 1024;
pub(crate) const MAX_REMEDIATIONS_PER_HOUR: RangeInclusive<u64> = 1..=10_000;
pub(crate) const TERM_GRACE_MILLIS: RangeInclusive<u64> = 100..=60_000;
pub(crate) const MAX_OUTBOX_BYTES: RangeInclusive<u64> = 1024 * 1024..=16 * 1024 * 1024 * 1024;
pub(crate) const UPLOAD_INTERVAL_SECONDS: RangeInclusive<u64> = 1..=3600;
/// Up to a day: a policy push should reach the fleet the same day.
pub(crate) const POLICY_INTERVAL_SECONDS: RangeInclusive<u64> = 1..=86_400;

/// Validates a whole file. Unknown keys add a warning to `warnings`; a key
/// that is a lenscap key but for its case is an error.
pub(crate) fn parse_file(
    path: &Path,
    root: &Value,
    warnings: &mut Vec<String>,
) -> Result<Vec<Setting>, ConfigError> {
    let ctx = Ctx { path };
    let Some(dict) = root.as_dictionary() else {
        return Err(ConfigError::NotADictionary {
            path: path.to_path_buf(),
            found: describe(root),
        });
    };
    let mut settings = Vec::new();
    for (key, value) in dict {
        match parse_key(&ctx, key, value) {
            Some(setting) => settings.push(setting?),
            None => {
                // `mode` is almost certainly meant as `Mode`, but plist keys
                // are case-sensitive: as a mere warning the agent would run
                // with the default the admin meant to change (in monitor
                // mode when they asked for remediate, say). A newer agent's
                // key cannot collide this way, so an error costs nothing.
                if let Some(known) = case_twin(key) {
                    return Err(ConfigError::KeyCase {
                        path: path.to_path_buf(),
                        key: key.to_string(),
                        known,
                    });
                }
                // A profile payload's bookkeeping keys (PayloadUUID, …) are
                // not ours; admins who paste a payload dict should not get
                // warnings.
                if !key.starts_with("Payload") {
                    warnings.push(unknown_key_warning(path, key));
                }
            }
        }
    }
    Ok(settings)
}

/// The lenscap key `key` equals but for ASCII case, when it is not that
/// key itself (every key in [`KEYS`] is ASCII).
pub(crate) fn case_twin(key: &str) -> Option<&'static str> {
    KEYS.iter()
        .copied()
        .find(|known| *known != key && known.eq_ignore_ascii_case(key))
}

fn unknown_key_warning(path: &Path, key: &str) -> String {
    match suggest(key, KEYS) {
        Some(known) => format!(
            "{}: unknown key {key:?} is ignored; did you mean {known:?}?",
            path.display()
        ),
        None => format!(
            "{}: unknown key {key:?} is ignored; docs/configuration.md lists the keys lenscap reads",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests;
