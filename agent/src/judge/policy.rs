//! [`Policy`]: everything the judge decides with that is not an
//! observation — compiled admin rules, the catalog, and the configured
//! application and temp locations. Built once from [`Config`]; building is
//! where every configuration mistake surfaces, so judging itself cannot
//! fail.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

use globset::{Glob, GlobMatcher};

use super::JudgeError;
use super::catalog::{Catalog, CatalogEntry};
use super::rules::{self, CompiledRule};
use crate::config::Config;

/// The compiled policy the judge applies.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) rules: Vec<CompiledRule>,
    pub(crate) catalog: Catalog,
    /// `ApplicationDirs`: where installed apps live.
    pub(crate) application_dirs: DirSet,
    /// `TempDirs`: user-writable scratch locations.
    pub(crate) temp_dirs: DirSet,
    /// `CameraCorrelationSeconds`: a camera session that begins this soon
    /// after a connection to a flagged helper is one incident; 0 turns the
    /// correlation off.
    pub(crate) camera_correlation_seconds: u64,
}

impl Policy {
    /// Compile `config.rules` (a bad glob is an error naming the rule and
    /// the glob), load the built-in catalog, compile `ApplicationDirs` and
    /// `TempDirs`.
    pub fn new(config: &Config) -> Result<Policy, JudgeError> {
        Ok(Policy {
            rules: rules::compile(&config.rules)?,
            catalog: Catalog::builtin()?,
            application_dirs: DirSet::new("ApplicationDirs", &config.application_dirs)?,
            temp_dirs: DirSet::new("TempDirs", &config.temp_dirs)?,
            camera_correlation_seconds: config.camera_correlation_seconds,
        })
    }

    /// Add catalog entries (e.g. a fleet's own known-bad helpers). Each is
    /// validated like the built-in ones; a duplicate id is refused.
    pub fn with_catalog_additions(
        mut self,
        entries: Vec<CatalogEntry>,
    ) -> Result<Policy, JudgeError> {
        self.catalog = self.catalog.with_entries(entries)?;
        Ok(self)
    }

    /// The catalog in force (built-in plus additions).
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }
}

/// A configured list of directory globs (`/Applications`,
/// `/Users/*/Applications`). A path is "in" the set when it or one of its
/// ancestors matches an entry: the entries name directories, not files.
#[derive(Debug, Clone)]
pub(crate) struct DirSet {
    entries: Vec<(String, DirMatcher)>,
}

/// One entry of a [`DirSet`]. Compiling a glob builds a regex (about
/// 0.1 ms each, most of a one-shot scan's policy load), and most entries
/// (`/Applications`, `/tmp`) have no glob syntax at all.
#[derive(Debug, Clone)]
enum DirMatcher {
    /// No glob syntax: matches exactly the path with these bytes, which is
    /// what the compiled glob would match.
    Literal(String),
    /// Validated when the set is built, compiled the first time a path is
    /// tested against it.
    Glob(Glob, OnceLock<GlobMatcher>),
}

impl DirMatcher {
    fn new(glob: Glob) -> DirMatcher {
        // Every character globset gives a meaning to (`*`, `?`, classes,
        // alternates, escapes); anything else matches itself.
        if glob.glob().contains(['*', '?', '[', ']', '{', '}', '\\']) {
            DirMatcher::Glob(glob, OnceLock::new())
        } else {
            DirMatcher::Literal(glob.glob().to_string())
        }
    }

    fn is_match(&self, path: &Path) -> bool {
        match self {
            DirMatcher::Literal(literal) => path.as_os_str().as_bytes() == literal.as_bytes(),
            DirMatcher::Glob(glob, matcher) => matcher
                .get_or_init(|| glob.compile_matcher())
                .is_match(path),
        }
    }
}

impl DirSet {
    pub(crate) fn new(key: &'static str, globs: &[String]) -> Result<DirSet, JudgeError> {
        let mut entries = Vec::with_capacity(globs.len());
        for glob in globs {
            // `/tmp/` and `/tmp` name the same directory; an ancestor never
            // has a trailing slash.
            let trimmed = match glob.trim_end_matches('/') {
                "" => "/",
                t => t,
            };
            let compiled =
                crate::model::rule::path_glob(trimmed).map_err(|source| JudgeError::DirGlob {
                    key,
                    glob: glob.clone(),
                    source,
                })?;
            entries.push((glob.clone(), DirMatcher::new(compiled)));
        }
        Ok(DirSet { entries })
    }

    /// The configured entry containing `path`, if any.
    pub(crate) fn containing(&self, path: &Path) -> Option<&str> {
        path.ancestors().find_map(|a| {
            self.entries
                .iter()
                .find(|(_, m)| m.is_match(a))
                .map(|(g, _)| g.as_str())
        })
    }

    pub(crate) fn describe(&self) -> String {
        let names: Vec<&str> = self.entries.iter().map(|(g, _)| g.as_str()).collect();
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Rule, RuleAction};

    #[test]
    fn default_config_compiles() {
        let policy = Policy::new(&Config::default()).unwrap();
        assert_eq!(policy.catalog().entries.len(), 14);
        assert!(policy.rules.is_empty());
        assert_eq!(policy.camera_correlation_seconds, 10);
        let policy = Policy::new(&Config {
            camera_correlation_seconds: 0,
            ..Config::default()
        })
        .unwrap();
        assert_eq!(policy.camera_correlation_seconds, 0);
    }

    proptest::proptest! {
        /// A glob without special characters, taken as a literal, matches
        /// exactly what globset's compiled matcher for it matches.
        #[test]
        fn literal_entries_match_as_their_compiled_glob(
            glob in "/[a-zA-Z0-9 ._-]{0,6}(/[a-zA-Z0-9 ._-]{1,6}){0,2}",
            tail in "(/[a-zA-Z0-9 ._-]{0,4}){0,2}",
        ) {
            let built = crate::model::rule::path_glob(&glob).unwrap();
            let literal = DirMatcher::new(built.clone());
            proptest::prop_assert!(matches!(literal, DirMatcher::Literal(_)));
            let compiled = built.compile_matcher();
            for candidate in [glob.clone(), format!("{glob}{tail}"), glob.to_uppercase(), glob[..glob.len() / 2].to_string()] {
                let path = Path::new(&candidate);
                proptest::prop_assert_eq!(literal.is_match(path), compiled.is_match(path), "{:?}", candidate);
            }
        }
    }

    #[test]
    fn glob_entries_are_compiled_when_first_used() {
        let set = DirSet::new("TempDirs", &["/tmp".into(), "/var/*/T".into()]).unwrap();
        let DirMatcher::Glob(_, compiled) = &set.entries[1].1 else {
            panic!("{:?}", set.entries[1]);
        };
        assert!(compiled.get().is_none());
        assert_eq!(set.containing(Path::new("/tmp/x")), Some("/tmp"));
        assert_eq!(
            set.containing(Path::new("/var/folders/T/x")),
            Some("/var/*/T")
        );
        assert_eq!(set.containing(Path::new("/var/a/b/T/x")), None);
        assert!(matches!(&set.entries[0].1, DirMatcher::Literal(l) if l == "/tmp"));
        // Escapes and classes are glob syntax, not literals.
        let set = DirSet::new("TempDirs", &[r"/a\*b".into(), "/[ab]".into()]).unwrap();
        assert_eq!(set.containing(Path::new("/a*b/c")), Some(r"/a\*b"));
        assert_eq!(set.containing(Path::new("/b")), Some("/[ab]"));
        assert_eq!(set.containing(Path::new(r"/a\*b")), None);
    }

    #[test]
    fn dir_sets_match_ancestors_with_globs() {
        let apps = DirSet::new(
            "ApplicationDirs",
            &["/Applications/".into(), "/Users/*/Applications".into()],
        )
        .unwrap();
        let p = Path::new("/Applications/Utilities/Foo.app");
        assert_eq!(apps.containing(p), Some("/Applications/"));
        let p = Path::new("/Users/ann/Applications/Bar.app/Contents/MacOS/Bar");
        assert_eq!(apps.containing(p), Some("/Users/*/Applications"));
        assert_eq!(
            apps.containing(Path::new("/Users/ann/Downloads/Bar.app")),
            None
        );
        assert_eq!(apps.containing(Path::new("/ApplicationsX/Foo.app")), None);
    }

    #[test]
    fn bad_globs_name_the_key_or_rule() {
        let mut config = Config {
            temp_dirs: vec!["/tmp/[".into()],
            ..Config::default()
        };
        let err = Policy::new(&config).unwrap_err().to_string();
        assert!(err.contains("TempDirs") && err.contains("/tmp/["), "{err}");
        config.temp_dirs = vec!["/tmp".into()];
        config.rules = vec![Rule {
            id: "zoom-deny".into(),
            action: RuleAction::Deny,
            team_id: None,
            signing_id: None,
            bundle_id: None,
            label: None,
            path: Some("/Users/*/.zoomus/{a".into()),
            port: None,
            comment: None,
        }];
        let err = Policy::new(&config).unwrap_err().to_string();
        assert!(err.contains("zoom-deny") && err.contains("{a"), "{err}");
    }

    #[test]
    fn catalog_additions_are_validated() {
        let policy = Policy::new(&Config::default()).unwrap();
        let mut extra = policy.catalog().entries[0].clone();
        extra.id = "catalog:fleet-helper".into();
        extra.sources = vec![];
        assert!(
            policy
                .clone()
                .with_catalog_additions(vec![extra.clone()])
                .is_err()
        );
        extra.sources = vec!["https://example.com/advisory".into()];
        let policy = policy.with_catalog_additions(vec![extra]).unwrap();
        assert_eq!(policy.catalog().entries.len(), 15);
    }
}
