//! Admin allow/deny rules: the one vocabulary every source of policy
//! writes in (the `Rules` preference, `quarantine restore --allow`, the
//! fleet policy) and the judge matches with, and the one validator every
//! source is checked by.
//!
//! A rule is plain data. What it must be is decided once, here, so a rule
//! means the same whichever door it came through: a `TeamID` of ten
//! capitals and digits, a `Path` glob that starts with `/` or `**/` and
//! compiles with lenscap's glob semantics ([`compile_path_glob`]), no
//! empty identity field, no port 0, and at least one matcher — a rule
//! without one would match everything. Each source turns a
//! [`RuleProblem`] into its own error, which names the file and key (a
//! preferences file) or the entry (a fleet policy).

use globset::{Glob, GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    Allow,
    Deny,
}

/// An admin rule. Every matcher that is set must match (AND); a rule with
/// no matcher is refused wherever it comes from ([`Rule::check`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Shown in findings as `rule:<id>`.
    pub id: String,
    pub action: RuleAction,
    pub team_id: Option<String>,
    pub signing_id: Option<String>,
    pub bundle_id: Option<String>,
    pub label: Option<String>,
    /// Glob on the executable (listener) or program (persistence) path.
    pub path: Option<String>,
    pub port: Option<u16>,
    pub comment: Option<String>,
}

/// Why a rule cannot be applied. The text names the field the way the
/// fleet policy's JSON does; the preferences loader words its own message
/// around [`RuleProblem::expected`], with the plist key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleProblem {
    #[error("{field} is empty")]
    Empty { field: &'static str },
    #[error("team_id {0:?} is not a Team ID (10 capital letters and digits)")]
    TeamId(String),
    #[error("path: {0}")]
    Path(PathProblem),
    #[error("port 0 is not a port")]
    PortZero,
    #[error(
        "it has no matcher (team_id, signing_id, bundle_id, label, path or port), so it would match everything"
    )]
    NoMatcher,
}

/// Why a `Path` glob cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathProblem {
    #[error("{0:?} must be an absolute path glob starting with / or **/")]
    NotAbsolute(String),
    #[error("{glob:?} is not a valid glob ({kind})")]
    Invalid { glob: String, kind: String },
}

/// What a `TeamID` must be, for messages.
pub const EXPECT_TEAM_ID: &str =
    "a 10-character Team ID of capital letters and digits, such as ABCDE12345";
/// What a `Path` must be, for messages.
pub const EXPECT_PATH_GLOB: &str = "an absolute path glob starting with / or **/";

impl RuleProblem {
    /// What the field should have been, in the words of a preferences
    /// error (`…, expected <this>`).
    pub fn expected(&self) -> String {
        match self {
            RuleProblem::Empty { .. } => "a non-empty string".into(),
            RuleProblem::TeamId(_) => EXPECT_TEAM_ID.into(),
            RuleProblem::Path(PathProblem::NotAbsolute(_)) => EXPECT_PATH_GLOB.into(),
            RuleProblem::Path(PathProblem::Invalid { kind, .. }) => {
                format!("a valid glob ({kind})")
            }
            RuleProblem::PortZero => "an integer 1..=65535".into(),
            RuleProblem::NoMatcher => "at least one matcher".into(),
        }
    }
}

/// Parses a path glob the way lenscap matches it: `*` and `?` stay inside
/// one path component, `**` spans any number of components. Every path
/// glob (rule paths, directory keys, `CameraDevices`) is built here, so the
/// semantics documented in docs/configuration.md hold in one place.
pub fn path_glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern).literal_separator(true).build()
}

/// [`path_glob`], compiled: the judge matches rule paths with this, and the
/// loaders validate with it.
pub fn compile_path_glob(pattern: &str) -> Result<GlobMatcher, globset::Error> {
    path_glob(pattern).map(|glob| glob.compile_matcher())
}

/// A `TeamID` is ten ASCII capitals and digits (Apple's format).
pub fn check_team_id(team_id: &str) -> Result<(), RuleProblem> {
    let well_formed = team_id.len() == 10
        && team_id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if well_formed {
        Ok(())
    } else {
        Err(RuleProblem::TeamId(team_id.to_string()))
    }
}

/// A `Path` glob: absolute (or `**/…`), no NUL (it could never match a
/// path the kernel gives), and it compiles.
pub fn check_path_glob(glob: &str) -> Result<GlobMatcher, PathProblem> {
    if !(glob.starts_with('/') || glob.starts_with("**/")) || glob.contains('\0') {
        return Err(PathProblem::NotAbsolute(glob.to_string()));
    }
    compile_path_glob(glob).map_err(|e| PathProblem::Invalid {
        glob: glob.to_string(),
        kind: e.kind().to_string(),
    })
}

impl Rule {
    /// Does the rule set anything to match on?
    pub fn has_matcher(&self) -> bool {
        self.team_id.is_some()
            || self.signing_id.is_some()
            || self.bundle_id.is_some()
            || self.label.is_some()
            || self.path.is_some()
            || self.port.is_some()
    }

    /// Everything a rule must be before it is applied, in the order a
    /// preferences file's rule is read (so the first problem reported is
    /// the same whichever door the rule came through).
    pub fn check(&self) -> Result<(), RuleProblem> {
        if let Some(t) = &self.team_id {
            check_team_id(t)?;
        }
        if let Some(p) = &self.path {
            check_path_glob(p).map_err(RuleProblem::Path)?;
        }
        if self.port == Some(0) {
            return Err(RuleProblem::PortZero);
        }
        for (field, value) in [
            ("signing_id", &self.signing_id),
            ("bundle_id", &self.bundle_id),
            ("label", &self.label),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(RuleProblem::Empty { field });
            }
        }
        if !self.has_matcher() {
            return Err(RuleProblem::NoMatcher);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn rule() -> Rule {
        Rule {
            id: "r".into(),
            action: RuleAction::Deny,
            team_id: None,
            signing_id: None,
            bundle_id: None,
            label: None,
            path: None,
            port: None,
            comment: None,
        }
    }

    #[test]
    fn every_problem_is_found() {
        assert_eq!(rule().check(), Err(RuleProblem::NoMatcher));
        let with = |f: fn(&mut Rule)| {
            let mut r = rule();
            f(&mut r);
            r.check()
        };
        assert_eq!(with(|r| r.port = Some(19421)), Ok(()));
        assert_eq!(with(|r| r.port = Some(0)), Err(RuleProblem::PortZero));
        assert_eq!(
            with(|r| r.team_id = Some("abc".into())),
            Err(RuleProblem::TeamId("abc".into()))
        );
        assert_eq!(with(|r| r.team_id = Some("EQHXZ8M8AV".into())), Ok(()));
        assert_eq!(
            with(|r| r.label = Some(" ".into())),
            Err(RuleProblem::Empty { field: "label" })
        );
        assert!(matches!(
            with(|r| r.path = Some("relative/x".into())),
            Err(RuleProblem::Path(PathProblem::NotAbsolute(_)))
        ));
        assert!(matches!(
            with(|r| r.path = Some("/a/{b".into())),
            Err(RuleProblem::Path(PathProblem::Invalid { .. }))
        ));
        assert_eq!(with(|r| r.path = Some("**/ZoomOpener".into())), Ok(()));
        // A comment is not a matcher.
        assert_eq!(
            with(|r| r.comment = Some("everything".into())),
            Err(RuleProblem::NoMatcher)
        );
    }

    #[test]
    fn messages_name_the_field_and_what_was_expected() {
        let text = RuleProblem::Path(check_path_glob("relative/x").unwrap_err()).to_string();
        assert_eq!(
            text,
            "path: \"relative/x\" must be an absolute path glob starting with / or **/"
        );
        assert_eq!(
            RuleProblem::TeamId("eqhxz8m8av".into()).expected(),
            EXPECT_TEAM_ID
        );
        let invalid = check_path_glob("/a/{b").unwrap_err();
        assert!(
            RuleProblem::Path(invalid)
                .expected()
                .starts_with("a valid glob (")
        );
    }

    #[test]
    fn path_glob_semantics() {
        let zoom = compile_path_glob("/Users/*/.zoomus/**").unwrap();
        assert!(zoom.is_match("/Users/alice/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener"));
        assert!(!zoom.is_match("/Users/alice/x/.zoomus/ZoomOpener"));
        let star = compile_path_glob("/Applications/*.app/Contents/MacOS/*").unwrap();
        assert!(star.is_match("/Applications/zoom.us.app/Contents/MacOS/zoom.us"));
        assert!(!star.is_match("/Applications/a/b.app/Contents/MacOS/x"));
        let anywhere = compile_path_glob("**/ZoomOpener").unwrap();
        assert!(anywhere.is_match("/Users/a/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener"));
    }
}
