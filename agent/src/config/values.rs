//! Typed reads of plist values whose errors name the file, the key, the
//! value found and what was expected — the vocabulary `validate` and
//! `rules` are written in — and the typo suggestions for unknown keys.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use plist::Value;

use super::{ConfigError, Mode};

const EXPECT_ABSOLUTE: &str = "an absolute path starting with /";
const EXPECT_BOOL: &str = "a boolean (<true/> or <false/>)";

/// The closest known name to a misspelt one, if it is close enough to be
/// a likely typo. Case is ignored because CFPreferences keys are
/// case-sensitive and `sweepSeconds` is a common slip.
pub(crate) fn suggest(name: &str, known: &[&'static str]) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    known
        .iter()
        .map(|candidate| {
            let distance = strsim::damerau_levenshtein(&lower, &candidate.to_ascii_lowercase());
            (distance, *candidate)
        })
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 4).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// A short, human description of a plist value for error messages.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => {
            // Long strings are cut so one bad value cannot flood the log.
            const MAX_CHARS: usize = 80;
            if s.chars().count() > MAX_CHARS {
                let cut: String = s.chars().take(MAX_CHARS).collect();
                format!("{cut:?}…")
            } else {
                format!("{s:?}")
            }
        }
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => format!("the real number {r}"),
        Value::Boolean(b) => b.to_string(),
        Value::Array(a) => format!("an array of {} items", a.len()),
        Value::Dictionary(d) => format!("a dictionary of {} keys", d.len()),
        Value::Data(d) => format!("data of {} bytes", d.len()),
        Value::Date(d) => format!("the date {}", d.to_xml_format()),
        Value::Uid(u) => format!("the UID {}", u.get()),
        // plist::Value is non_exhaustive.
        _ => "a value of an unsupported plist type".to_string(),
    }
}

/// The file being validated; builds errors that name it.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub(crate) path: &'a Path,
}

impl Ctx<'_> {
    pub(crate) fn invalid(
        &self,
        key: &str,
        value: &Value,
        expected: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            found: describe(value),
            expected: expected.into(),
        }
    }

    pub(crate) fn string<'v>(
        &self,
        key: &str,
        value: &'v Value,
        expected: &str,
    ) -> Result<&'v str, ConfigError> {
        value
            .as_string()
            .ok_or_else(|| self.invalid(key, value, expected))
    }

    pub(crate) fn non_empty_string(&self, key: &str, value: &Value) -> Result<String, ConfigError> {
        const EXPECTED: &str = "a non-empty string";
        match self.string(key, value, EXPECTED)? {
            "" => Err(self.invalid(key, value, EXPECTED)),
            s => Ok(s.to_string()),
        }
    }

    pub(crate) fn boolean(&self, key: &str, value: &Value) -> Result<bool, ConfigError> {
        value
            .as_boolean()
            .ok_or_else(|| self.invalid(key, value, EXPECT_BOOL))
    }

    pub(crate) fn integer(
        &self,
        key: &str,
        value: &Value,
        range: RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        value
            .as_unsigned_integer()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                let expected = format!("an integer {}..={}", range.start(), range.end());
                self.invalid(key, value, expected)
            })
    }

    /// A number of seconds, whole or fractional (`2`, `0.5`), returned in
    /// milliseconds and checked against `millis`. More precision than a
    /// millisecond is refused rather than rounded away silently.
    pub(crate) fn seconds_as_millis(
        &self,
        key: &str,
        value: &Value,
        millis: RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        let seconds = |ms: u64| {
            if ms.is_multiple_of(1000) {
                (ms / 1000).to_string()
            } else {
                format!("{}", ms as f64 / 1000.0)
            }
        };
        let expected = format!(
            "a number of seconds from {} to {}, in steps of at least 0.001",
            seconds(*millis.start()),
            seconds(*millis.end())
        );
        let ms = match value {
            Value::Integer(_) => value
                .as_unsigned_integer()
                .and_then(|s| s.checked_mul(1000)),
            Value::Real(r) if r.is_finite() && *r >= 0.0 => {
                let ms = r * 1000.0;
                // Whole milliseconds only (0.5 and 0.25 are; 0.0001 is not).
                ((ms - ms.round()).abs() < 1e-6 && ms <= u64::MAX as f64).then(|| ms.round() as u64)
            }
            _ => None,
        };
        ms.filter(|ms| millis.contains(ms))
            .ok_or_else(|| self.invalid(key, value, expected))
    }

    pub(crate) fn mode(&self, key: &str, value: &Value) -> Result<Mode, ConfigError> {
        const EXPECTED: &str = "one of monitor, remediate";
        let s = self.string(key, value, EXPECTED)?;
        // Case-insensitive: `Monitor` is an obvious intent, not an error.
        if s.eq_ignore_ascii_case("monitor") {
            Ok(Mode::Monitor)
        } else if s.eq_ignore_ascii_case("remediate") {
            Ok(Mode::Remediate)
        } else {
            Err(self.invalid(key, value, EXPECTED))
        }
    }

    pub(crate) fn notify_user(
        &self,
        key: &str,
        value: &Value,
    ) -> Result<super::NotifyUser, ConfigError> {
        use super::NotifyUser;
        const EXPECTED: &str = "one of all, remediations, none";
        let s = self.string(key, value, EXPECTED)?;
        [NotifyUser::All, NotifyUser::Remediations, NotifyUser::None]
            .into_iter()
            .find(|n| s.eq_ignore_ascii_case(n.name()))
            .ok_or_else(|| self.invalid(key, value, EXPECTED))
    }

    pub(crate) fn absolute_path(&self, key: &str, value: &Value) -> Result<PathBuf, ConfigError> {
        let s = self.string(key, value, EXPECT_ABSOLUTE)?;
        // A NUL byte cannot reach a system call; catch it here, by key.
        if !s.starts_with('/') || s.contains('\0') {
            return Err(self.invalid(key, value, EXPECT_ABSOLUTE));
        }
        Ok(PathBuf::from(s))
    }

    /// `UpdateURL`: a GitHub-releases repository API URL (the rules are
    /// in [`super::UpdateUrl::parse`]). Kept as text; the updater re-parses.
    pub(crate) fn update_url(&self, key: &str, value: &Value) -> Result<String, ConfigError> {
        const EXPECTED: &str = "a URL like https://api.github.com/repos/<owner>/<name>";
        let s = self.string(key, value, EXPECTED)?;
        super::UpdateUrl::parse(s).map_err(|expected| self.invalid(key, value, expected))?;
        Ok(s.to_string())
    }

    /// `UpdatePublicKey`: empty, or the base64 of an ed25519 public key.
    pub(crate) fn public_key(&self, key: &str, value: &Value) -> Result<String, ConfigError> {
        const EXPECTED: &str = "the base64 of a 32-byte ed25519 public key, or an empty string";
        let s = self.string(key, value, EXPECTED)?;
        super::PublicKey::parse(s).map_err(|expected| self.invalid(key, value, expected))?;
        Ok(s.trim().to_string())
    }

    /// `CollectorURL`: empty (no upload), or a URL
    /// [`super::CollectorUrl::parse`] accepts.
    pub(crate) fn collector_url(&self, key: &str, value: &Value) -> Result<String, ConfigError> {
        use super::{CollectorUrl, EXPECTED_URL};
        let s = self.string(key, value, EXPECTED_URL)?.trim();
        if !s.is_empty() {
            CollectorUrl::parse(s).map_err(|expected| self.invalid(key, value, expected))?;
        }
        Ok(s.to_string())
    }

    /// `EnrollmentSecret`: printable text (it is sent in an HTTP header),
    /// or empty. Errors never quote it.
    pub(crate) fn secret(&self, key: &str, value: &Value) -> Result<super::Secret, ConfigError> {
        const EXPECTED: &str =
            "an enroll token: up to 512 printable ASCII characters without spaces, or empty";
        let hidden = Value::String(super::secret::SHOWN_WHEN_SET.to_string());
        let s = value
            .as_string()
            .ok_or_else(|| self.invalid(key, value, EXPECTED))?
            .trim();
        if s.len() > 512 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(self.invalid(key, &hidden, EXPECTED));
        }
        Ok(super::Secret::new(s))
    }

    /// An array of absolute paths that may contain `glob` patterns (the
    /// crate observe expands directory lists with).
    pub(crate) fn path_globs(&self, key: &str, value: &Value) -> Result<Vec<String>, ConfigError> {
        self.absolute_globs(key, value, |s| {
            glob::Pattern::new(s).map(drop).map_err(|e| e.to_string())
        })
    }

    /// `CameraDevices`: like [`Ctx::path_globs`], but each entry must compile
    /// the way it is matched — as a [`super::compile_path_glob`] against a
    /// descriptor's target — whose syntax differs from the `glob` crate's
    /// (`{a,b}` alternation, for one).
    pub(crate) fn device_globs(
        &self,
        key: &str,
        value: &Value,
    ) -> Result<Vec<String>, ConfigError> {
        self.absolute_globs(key, value, |s| {
            super::compile_path_glob(s)
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }

    fn absolute_globs(
        &self,
        key: &str,
        value: &Value,
        compiles: impl Fn(&str) -> Result<(), String>,
    ) -> Result<Vec<String>, ConfigError> {
        const EXPECTED_ITEM: &str = "an absolute path or glob starting with /";
        let items = value
            .as_array()
            .ok_or_else(|| self.invalid(key, value, "an array of absolute paths or globs"))?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{i}]");
            let s = self.string(&item_key, item, EXPECTED_ITEM)?;
            if !s.starts_with('/') || s.contains('\0') {
                return Err(self.invalid(&item_key, item, EXPECTED_ITEM));
            }
            if let Err(err) = compiles(s) {
                return Err(self.invalid(&item_key, item, format!("a valid glob ({err})")));
            }
            out.push(s.to_string());
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use super::super::KEYS;
    use super::*;

    #[test]
    fn suggestions_only_for_likely_typos() {
        assert_eq!(suggest("Mod", KEYS), Some("Mode"));
        assert_eq!(suggest("mode", KEYS), Some("Mode"));
        assert_eq!(suggest("PersistanceDirs", KEYS), Some("PersistenceDirs"));
        assert_eq!(suggest("Rule", KEYS), Some("Rules"));
        assert_eq!(suggest("Zoom", KEYS), None);
        assert_eq!(suggest("", KEYS), None);
    }

    #[test]
    fn long_strings_are_cut_in_messages() {
        let ctx = Ctx {
            path: Path::new("/p.plist"),
        };
        let long = Value::String("x".repeat(10_000));
        let text = ctx
            .integer("SweepSeconds", &long, 1..=3600)
            .unwrap_err()
            .to_string();
        assert!(text.len() < 300, "{text}");
        assert!(text.contains("…, expected an integer 1..=3600"), "{text}");
        assert_eq!(describe(&Value::String("ab".into())), "\"ab\"");
        assert_eq!(describe(&Value::Data(vec![0; 3])), "data of 3 bytes");
    }
}
