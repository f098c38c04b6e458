//! The one error type of the configuration loader.
//!
//! Every variant carries the file it is about, and the ones about a value
//! carry the key (`SweepSeconds`, `Rules[2].Port`), the value found and what
//! was expected, because the person reading the message is an admin with a
//! plist editor open and nothing else. Each message is one sentence that
//! ends with what to do.

use std::path::{Path, PathBuf};

/// The exit status of `lenscap` when the configuration cannot be loaded:
/// `EX_CONFIG` from sysexits(3). launchd shows it as
/// `last exit code = 78: EX_CONFIG` in `launchctl print`, which tells an
/// admin where to look without reading the log.
pub const EXIT_CONFIG: i32 = 78;

/// Why the preferences could not be turned into a [`super::Config`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--config FILE` names a file that does not exist. (A missing
    /// managed or local preferences file is not an error.)
    #[error("config file {} does not exist; check the path given to --config", .path.display())]
    NotFound { path: PathBuf },

    #[error("cannot read {}: {source}; make sure it is a regular file readable by root", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{} is larger than {limit} bytes, the limit for a preferences file; remove what does not belong in it",
        .path.display()
    )]
    TooLarge { path: PathBuf, limit: u64 },

    #[error(
        "{} is not a valid XML or binary plist ({source}); check it with `plutil -lint` and fix or delete it",
        .path.display()
    )]
    Parse {
        path: PathBuf,
        #[source]
        source: crate::parse::plist_guard::PlistError,
    },

    #[error(
        "{} nests arrays or dictionaries deeper than {limit} levels, which no lenscap preference needs; fix or delete the file",
        .path.display()
    )]
    TooDeep { path: PathBuf, limit: usize },

    #[error(
        "{} holds more than {limit} values, far more than any lenscap configuration; fix or delete the file",
        .path.display()
    )]
    TooManyValues { path: PathBuf, limit: usize },

    #[error(
        "{}: the top level is {found}, expected a dictionary of preference keys; put the keys (Mode, Rules, …) in a top-level <dict>",
        .path.display()
    )]
    NotADictionary { path: PathBuf, found: String },

    /// A value of the wrong type or out of range.
    #[error(
        "{}: {key} is {found}, expected {expected}; {}",
        .path.display(),
        fix_hint(.key)
    )]
    Invalid {
        path: PathBuf,
        key: String,
        found: String,
        expected: String,
    },

    /// A required rule field is absent.
    #[error("{}: {key} is missing; add it as {expected}", .path.display())]
    Missing {
        path: PathBuf,
        key: String,
        expected: String,
    },

    /// Rules are read from a dictionary whose keys decide what matches, so a
    /// misspelt matcher would silently widen the rule: an error, not a
    /// warning.
    #[error(
        "{}: {key} is not a rule field{}; use only Id, Action, TeamID, SigningID, BundleID, Label, Path, Port and Comment",
        .path.display(),
        suggestion_clause(.suggestion)
    )]
    UnknownRuleField {
        path: PathBuf,
        key: String,
        suggestion: Option<&'static str>,
    },

    /// A top-level key that differs from a lenscap key only by case.
    /// Plist keys are case-sensitive, so `mode` would be ignored and the
    /// agent would quietly run with the default `Mode`: unlike an unknown
    /// key (a warning), this is an error.
    #[error(
        "{}: `{key}` is not a key; did you mean `{known}`? keys are case-sensitive, so rename it to `{known}`",
        .path.display()
    )]
    KeyCase {
        path: PathBuf,
        key: String,
        known: &'static str,
    },

    #[error(
        "{}: Rules[{second}] reuses the Id {id:?} of Rules[{first}]; give every rule a unique Id",
        .path.display()
    )]
    DuplicateRuleId {
        path: PathBuf,
        id: String,
        first: usize,
        second: usize,
    },

    #[error(
        "{}: Rules[{index}] (Id {id:?}) has no matcher, so it would match everything; add at least one of TeamID, SigningID, BundleID, Label, Path, Port",
        .path.display()
    )]
    RuleWithoutMatcher {
        path: PathBuf,
        index: usize,
        id: String,
    },
}

impl ConfigError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ConfigError::NotFound { path }
            | ConfigError::Read { path, .. }
            | ConfigError::TooLarge { path, .. }
            | ConfigError::Parse { path, .. }
            | ConfigError::TooDeep { path, .. }
            | ConfigError::TooManyValues { path, .. }
            | ConfigError::NotADictionary { path, .. }
            | ConfigError::Invalid { path, .. }
            | ConfigError::Missing { path, .. }
            | ConfigError::UnknownRuleField { path, .. }
            | ConfigError::KeyCase { path, .. }
            | ConfigError::DuplicateRuleId { path, .. }
            | ConfigError::RuleWithoutMatcher { path, .. } => path,
        }
    }
}

/// A top-level key can simply be removed to fall back to the default; a
/// field inside a rule or an item of a list cannot.
fn fix_hint(key: &str) -> &'static str {
    if key.contains('[') {
        "fix the value"
    } else {
        "fix the value, or remove the key to use the default"
    }
}

fn suggestion_clause(suggestion: &Option<&'static str>) -> String {
    match suggestion {
        Some(known) => format!(" (did you mean {known}?)"),
        None => String::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn top_level_invalid_suggests_removing_the_key() {
        let err = ConfigError::Invalid {
            path: PathBuf::from("/p.plist"),
            key: "SweepSeconds".into(),
            found: "0".into(),
            expected: "an integer 1..=3600".into(),
        };
        assert_eq!(
            err.to_string(),
            "/p.plist: SweepSeconds is 0, expected an integer 1..=3600; \
             fix the value, or remove the key to use the default"
        );
        assert_eq!(err.path(), Path::new("/p.plist"));
    }

    #[test]
    fn nested_invalid_only_asks_for_a_fix() {
        let err = ConfigError::Invalid {
            path: PathBuf::from("/p.plist"),
            key: "Rules[2].Port".into(),
            found: "70000".into(),
            expected: "an integer 1..=65535".into(),
        };
        assert!(err.to_string().ends_with("; fix the value"), "{err}");
    }

    #[test]
    fn key_case_names_the_right_key() {
        let err = ConfigError::KeyCase {
            path: PathBuf::from("/p.plist"),
            key: "mode".into(),
            known: "Mode",
        };
        assert_eq!(
            err.to_string(),
            "/p.plist: `mode` is not a key; did you mean `Mode`? keys are case-sensitive, \
             so rename it to `Mode`"
        );
        assert_eq!(err.path(), Path::new("/p.plist"));
    }

    #[test]
    fn unknown_rule_field_names_the_suggestion() {
        let err = ConfigError::UnknownRuleField {
            path: PathBuf::from("/p.plist"),
            key: "Rules[0].TeamId".into(),
            suggestion: Some("TeamID"),
        };
        assert!(
            err.to_string()
                .contains("Rules[0].TeamId is not a rule field (did you mean TeamID?)"),
            "{err}"
        );
    }
}
