//! Allow rules lenscap adds itself: `lenscap quarantine restore <id>
//! --allow` records that the admin wants the restored helper left alone.
//!
//! They live in `<StateDir>/allow-rules.json`, not in the preferences: on a
//! managed Mac the MDM's `Rules` win key by key, so a rule written to the
//! local preferences would be ignored. The policy (`super`) adds these to
//! the configured rules for the daemon, `scan` and `config show`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::model::Rule;

#[derive(Debug, thiserror::Error)]
pub enum AllowlistError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid rule list ({source}); fix or remove it")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// `<StateDir>/allow-rules.json`.
pub fn file(state_dir: &Path) -> PathBuf {
    state_dir.join("allow-rules.json")
}

/// The local allow rules (none when the file does not exist).
pub fn load(state_dir: &Path) -> Result<Vec<Rule>, AllowlistError> {
    let path = file(state_dir);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|source| AllowlistError::Corrupt { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(AllowlistError::Io { path, source }),
    }
}

/// Add `rule`, replacing one with the same id.
pub fn add(state_dir: &Path, rule: Rule) -> Result<(), AllowlistError> {
    let mut rules = load(state_dir)?;
    rules.retain(|r| r.id != rule.id);
    rules.push(rule);
    let path = file(state_dir);
    let io = |source| AllowlistError::Io {
        path: path.clone(),
        source,
    };
    let bytes = serde_json::to_vec_pretty(&rules).map_err(|source| AllowlistError::Corrupt {
        path: path.clone(),
        source,
    })?;
    crate::fsutil::write_atomic(&path, &bytes, 0o600, crate::fsutil::Durability::Durable)
        .map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RuleAction;

    fn rule(id: &str, path: &str) -> Rule {
        Rule {
            id: id.into(),
            action: RuleAction::Allow,
            team_id: None,
            signing_id: None,
            bundle_id: None,
            label: None,
            path: Some(path.into()),
            port: None,
            comment: None,
        }
    }

    #[test]
    fn add_replaces_by_id_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
        add(dir.path(), rule("a", "/x")).unwrap();
        add(dir.path(), rule("b", "/y")).unwrap();
        add(dir.path(), rule("a", "/z")).unwrap();
        let rules = load(dir.path()).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(
            rules.iter().find(|r| r.id == "a").unwrap().path.as_deref(),
            Some("/z")
        );
    }

    #[test]
    fn corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("allow-rules.json"), b"{").unwrap();
        let err = load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("allow-rules.json"), "{err}");
    }
}
