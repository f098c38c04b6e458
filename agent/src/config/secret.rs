//! [`Secret`]: a configuration value that must never reach a log line, a
//! `config show` listing or an event (`EnrollmentSecret`).
//!
//! `Config` derives `Debug` and `Serialize` like every plain settings
//! struct, so the secret's own impls are where it is kept out of them:
//! both print `(set)` (or nothing when empty). The only way to the text is
//! [`Secret::expose`], which the enrollment request calls.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What [`Secret`] shows instead of its value.
pub const SHOWN_WHEN_SET: &str = "(set)";

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The secret itself, for the one request that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What `config show` prints: `(set)`, or an empty string.
    pub fn shown(&self) -> &'static str {
        if self.0.is_empty() {
            ""
        } else {
            SHOWN_WHEN_SET
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({:?})", self.shown())
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.shown())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn never_shown() {
        let s = Secret::new("lc_enroll_0123456789abcdef");
        assert_eq!(format!("{s:?}"), "Secret(\"(set)\")");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"(set)\"");
        assert_eq!(s.expose(), "lc_enroll_0123456789abcdef");
        let empty = Secret::default();
        assert_eq!(format!("{empty:?}"), "Secret(\"\")");
        assert!(empty.is_empty());
        let back: Secret = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(back.expose(), "abc");
    }
}
