//! `lenscap mode [monitor|remediate]`: the one setting a person on their
//! own Mac changes from the command line (issue 15).
//!
//! Setting writes `Mode` into the local preferences file (or the
//! `--config` file) and nothing else of it changes: the file is read with
//! the same bounded reader as at load, the key set, the result validated
//! as a whole before anything is written, and written atomically (a temp
//! file renamed over it, mode 0644, never through a link). The running
//! daemon watches that file and reloads it — no restart.
//!
//! When the managed preferences (an MDM profile) set `Mode`, the local
//! file would change nothing: setting is refused and the error names the
//! managed file, so the person knows whom to ask.

use std::path::{Path, PathBuf};

use plist::Value;

use super::{ConfigError, Loaded, Mode, Origin, Sources, load, source};
use crate::fsutil::{Durability, write_atomic};

/// Why the mode could not be set.
#[derive(Debug, thiserror::Error)]
pub enum SetModeError {
    #[error(
        "Mode is managed by your organization (MDM configuration profile for io.lenscap.agent, \
         delivered as {}); lenscap mode cannot change it — ask your administrator to change the profile",
        .0.display()
    )]
    Managed(PathBuf),
    #[error("setting the mode needs root: sudo lenscap mode {0}")]
    NotRoot(&'static str),
    #[error("no preferences file to write (no local preferences and no --config)")]
    NoFile,
    #[error("{}: the top level is not a dictionary; fix or remove the file", .0.display())]
    NotDictionary(PathBuf),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The mode's preference value.
pub fn mode_value(mode: Mode) -> &'static str {
    match mode {
        Mode::Monitor => "monitor",
        Mode::Remediate => "remediate",
    }
}

/// What [`set_mode`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeSet {
    pub file: PathBuf,
    pub before: Mode,
    pub after: Mode,
}

/// Where `Mode` would be written: the `--config` file, else the local
/// preferences file.
fn writable_file(sources: &Sources) -> Option<&Path> {
    sources.explicit.as_deref().or(sources.local.as_deref())
}

/// Set `Mode` to `mode` in the file [`writable_file`] names, unless the
/// managed preferences set it. `euid` is the caller's effective uid
/// (only root may set it: the preferences are root's).
pub fn set_mode(sources: &Sources, mode: Mode, euid: u32) -> Result<ModeSet, SetModeError> {
    let loaded = load(sources)?;
    if let Some(Origin::Managed(path)) = loaded.origins.get("Mode") {
        return Err(SetModeError::Managed(path.clone()));
    }
    if euid != 0 {
        return Err(SetModeError::NotRoot(mode_value(mode)));
    }
    let file = writable_file(sources).ok_or(SetModeError::NoFile)?;
    let mut dict = match source::read_plist(file, false)? {
        Some(v) => v
            .into_dictionary()
            .ok_or_else(|| SetModeError::NotDictionary(file.to_path_buf()))?,
        None => plist::Dictionary::new(),
    };
    dict.insert("Mode".into(), Value::String(mode_value(mode).into()));
    // Never write a file the daemon would reject: the result is validated
    // as a whole, exactly as loading will.
    let root = Value::Dictionary(dict);
    super::validate::parse_file(file, &root, &mut Vec::new())?;
    let mut bytes = Vec::new();
    root.to_writer_xml(&mut bytes)
        .map_err(|e| SetModeError::Write {
            path: file.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
    write_atomic(file, &bytes, 0o644, Durability::Durable).map_err(|source| {
        SetModeError::Write {
            path: file.to_path_buf(),
            source,
        }
    })?;
    Ok(ModeSet {
        file: file.to_path_buf(),
        before: loaded.config.mode,
        after: mode,
    })
}

/// `lenscap mode` without an argument: the mode and where it comes from.
pub fn render_mode(loaded: &Loaded) -> String {
    let origin = loaded
        .origins
        .get("Mode")
        .map_or_else(|| "default".to_string(), ToString::to_string);
    let mut out = format!("{} ({origin})\n", mode_value(loaded.config.mode));
    match loaded.config.mode {
        Mode::Monitor => out.push_str(
            "lenscap finds and reports helpers, and tells you what it would do; it changes nothing.\n\
             To let it stop and quarantine them: sudo lenscap mode remediate\n",
        ),
        Mode::Remediate => out.push_str(
            "lenscap stops and quarantines harmful helpers, and tells you how to undo it.\n\
             To only report: sudo lenscap mode monitor\n",
        ),
    }
    if let Some(Origin::Managed(_)) = loaded.origins.get("Mode") {
        out.push_str(
            "Your organization manages this setting (MDM); lenscap mode cannot change it.\n",
        );
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn write(path: &Path, body: &str) {
        std::fs::write(
            path,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>{body}</dict></plist>\n"
            ),
        )
        .unwrap();
    }

    #[test]
    fn sets_mode_keeping_every_other_key() {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("local.plist");
        write(&local, "<key>SweepSeconds</key><integer>7</integer>");
        let sources = Sources::layered(dir.path().join("managed.plist"), &local);
        let set = set_mode(&sources, Mode::Remediate, 0).unwrap();
        assert_eq!(set.before, Mode::Monitor);
        assert_eq!(set.after, Mode::Remediate);
        let loaded = load(&sources).unwrap();
        assert_eq!(loaded.config.mode, Mode::Remediate);
        assert_eq!(loaded.config.sweep_millis, 7000);
        assert!(render_mode(&loaded).starts_with("remediate (local: "));
    }

    #[test]
    fn creates_the_local_file_when_there_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("local.plist");
        let sources = Sources::layered(dir.path().join("managed.plist"), &local);
        set_mode(&sources, Mode::Remediate, 0).unwrap();
        assert_eq!(load(&sources).unwrap().config.mode, Mode::Remediate);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&local).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn refuses_when_the_mdm_manages_mode_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let managed = dir.path().join("managed.plist");
        let local = dir.path().join("local.plist");
        write(&managed, "<key>Mode</key><string>monitor</string>");
        let sources = Sources::layered(&managed, &local);
        let e = set_mode(&sources, Mode::Remediate, 0).unwrap_err();
        assert!(
            matches!(e, SetModeError::Managed(ref p) if p == &managed),
            "{e}"
        );
        assert!(e.to_string().contains(managed.to_str().unwrap()), "{e}");
        assert!(!local.exists(), "nothing written");
    }

    #[test]
    fn only_root_sets_it() {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("local.plist");
        let sources = Sources::layered(dir.path().join("managed.plist"), &local);
        let e = set_mode(&sources, Mode::Remediate, 501).unwrap_err();
        assert_eq!(
            e.to_string(),
            "setting the mode needs root: sudo lenscap mode remediate"
        );
        assert!(!local.exists());
    }

    #[test]
    fn a_broken_file_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("local.plist");
        write(&local, "<key>SweepSeconds</key><integer>0</integer>");
        let sources = Sources::layered(dir.path().join("managed.plist"), &local);
        let before = std::fs::read(&local).unwrap();
        assert!(matches!(
            set_mode(&sources, Mode::Remediate, 0),
            Err(SetModeError::Config(_))
        ));
        assert_eq!(std::fs::read(&local).unwrap(), before);
    }
}
