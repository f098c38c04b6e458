//! `lenscap quarantine restore <id> [--allow]`: put a record's files back,
//! under the state lock so the daemon's guard cannot take them away again
//! mid-restore. The guard over the record's paths is lifted first; with
//! `--allow` an allow rule for the restored program paths is added before
//! the files come back, so the next sweep leaves them alone.

use super::fsops::EntryKind;
use super::guard::{Guard, GuardError};
use super::lock::StateLock;
use super::quarantine::{QuarantineError, RestoreReport, Vault};
use crate::config::{Config, Rule, RuleAction};
use crate::policy::allowlist::{self, AllowlistError};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Quarantine(#[from] QuarantineError),
    #[error(transparent)]
    Guard(#[from] GuardError),
    #[error(transparent)]
    Allowlist(#[from] AllowlistError),
}

/// Restore record `id`; see the module doc for the order.
pub fn restore(config: &Config, id: &str, allow: bool) -> Result<RestoreReport, RestoreError> {
    let state_dir = &config.state_dir;
    let vault = Vault::open(state_dir)?;
    let record = vault.get(id)?;
    let _held = StateLock::new(state_dir).hold();
    let mut guard = Guard::open(state_dir)?;
    guard.lift_record(id)?;
    if allow {
        for (n, item) in record.items.iter().enumerate() {
            allowlist::add(
                state_dir,
                allow_rule(id, n, &item.original.0, item.meta.kind == EntryKind::Dir),
            )?;
        }
    }
    Ok(vault.restore(id)?)
}

/// An allow rule for one restored item: the path itself, or everything
/// under a restored folder or bundle.
fn allow_rule(id: &str, n: usize, path: &std::path::Path, is_dir: bool) -> Rule {
    let glob = if is_dir {
        format!("{}/**", escape_glob(path))
    } else {
        escape_glob(path)
    };
    Rule {
        id: format!("restored-{id}-{n}"),
        action: RuleAction::Allow,
        team_id: None,
        signing_id: None,
        bundle_id: None,
        label: None,
        path: Some(glob),
        port: None,
        comment: Some(format!(
            "added by `lenscap quarantine restore {id} --allow`"
        )),
    }
}

/// Escape glob metacharacters so a path matches only itself.
fn escape_glob(path: &std::path::Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}') {
            out.push('[');
            out.push(c);
            out.push(']');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_rule_matches_exactly_the_restored_path() {
        let r = allow_rule("q1", 0, std::path::Path::new("/Users/a/.x[1]/h*"), false);
        let m = crate::config::compile_path_glob(r.path.as_deref().unwrap()).unwrap();
        assert!(m.is_match("/Users/a/.x[1]/h*"));
        assert!(!m.is_match("/Users/a/.x1/hello"));
        let d = allow_rule("q1", 1, std::path::Path::new("/Users/a/.zoomus"), true);
        let m = crate::config::compile_path_glob(d.path.as_deref().unwrap()).unwrap();
        assert!(m.is_match("/Users/a/.zoomus/ZoomOpener.app/Contents/MacOS/ZoomOpener"));
        assert!(!m.is_match("/Users/a/.zoomusx/y"));
    }
}
