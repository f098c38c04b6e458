//! Preferences in the plist domain `io.lenscap.agent` → a validated
//! [`Config`].
//!
//! Three layers, merged key by key, first match wins:
//!
//! 1. `/Library/Managed Preferences/io.lenscap.agent.plist` — what an MDM
//!    configuration profile delivered; an admin on the Mac cannot override it;
//! 2. `/Library/Preferences/io.lenscap.agent.plist` — `sudo defaults write`;
//! 3. the built-in defaults ([`Config::default`], macOS paths, monitor mode).
//!
//! `--config FILE` replaces layers 1 and 2 with FILE. A key is taken whole
//! from one layer (`Rules` from managed replaces, never extends, local
//! `Rules`), so what a key means never depends on two files at once.
//!
//! Loading is [`load`]: read each file with bounded size, depth and value
//! count (`source`), validate every key of every file that exists into a
//! typed setting (`validate`, `rules`, `values`; which key is which field,
//! default and parser is the one table in `keys`), then apply the layers
//! lowest first, recording each key's [`Origin`]. Unknown top-level keys are
//! warnings; everything else wrong is a [`ConfigError`] that names the file,
//! the key, the value and what was expected. [`show`] renders the result for
//! `lenscap config show`. docs/configuration.md is the admin's reference.

mod error;
mod keys;
mod remote;
mod rules;
mod secret;
pub mod set;
pub mod show;
mod source;
mod validate;
mod values;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use error::{ConfigError, EXIT_CONFIG};
pub use keys::{Config, KEYS};
pub use remote::{CollectorUrl, DEFAULT_UPDATE_URL, EXPECTED_URL, PublicKey, UpdateUrl};
pub use rules::RULE_KEYS;
pub use secret::Secret;
// The rule vocabulary is shared with the judge and the other sources of
// policy; `Rules` is where the preferences write it.
pub use crate::model::rule::{Rule, RuleAction, compile_path_glob, path_glob};
pub use show::{render_show, to_json};
pub use source::{DOMAIN, LOCAL_PATH, MANAGED_PATH, MAX_DEPTH, MAX_FILE_BYTES, Origin, Sources};

/// The default `CameraDevices`: V4L2 capture nodes.
pub const DEFAULT_CAMERA_DEVICES: &[&str] = &["/dev/video*"];

/// The effective configuration and how it came to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub config: Config,
    /// Where each key of [`KEYS`] got its value (every key is present).
    pub origins: BTreeMap<&'static str, Origin>,
    /// Problems that did not stop loading (unknown keys); log them.
    pub warnings: Vec<String>,
}

/// Reads the sources, validates them and merges them key by key.
///
/// A missing managed or local file is skipped; a missing `--config` file,
/// an unreadable or malformed file, or any invalid value is an error, and
/// nothing is partially applied.
pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
    // Highest precedence first.
    let mut layers: Vec<(Origin, Vec<validate::Setting>)> = Vec::new();
    let mut warnings = Vec::new();
    let files: Vec<(Origin, bool)> = match &sources.explicit {
        Some(path) => vec![(Origin::File(path.clone()), true)],
        None => (sources.managed.iter().cloned().map(Origin::Managed))
            .chain(sources.local.iter().cloned().map(Origin::Local))
            .map(|origin| (origin, false))
            .collect(),
    };
    for (origin, required) in files {
        // Only file origins are listed above, so `path()` is always Some.
        let Some(path) = origin.path() else { continue };
        if let Some(root) = source::read_plist(path, required)? {
            let settings = validate::parse_file(path, &root, &mut warnings)?;
            layers.push((origin.clone(), settings));
        }
    }

    let mut config = Config::default();
    let mut origins: BTreeMap<&'static str, Origin> =
        KEYS.iter().map(|key| (*key, Origin::Default)).collect();
    for (origin, settings) in layers.into_iter().rev() {
        for setting in settings {
            origins.insert(setting.key(), origin.clone());
            setting.apply(&mut config);
        }
    }
    Ok(Loaded {
        config,
        origins,
        warnings,
    })
}

/// Monitor records what it would do; remediate does it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Monitor,
    Remediate,
}

/// Who is told at the keyboard (`NotifyUser`): every finding lenscap
/// would tell of, only those it remediates or would remediate (and
/// camera incidents), or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyUser {
    All,
    #[default]
    Remediations,
    None,
}

impl NotifyUser {
    /// The preference value (`all`, `remediations`, `none`).
    pub fn name(self) -> &'static str {
        match self {
            NotifyUser::All => "all",
            NotifyUser::Remediations => "remediations",
            NotifyUser::None => "none",
        }
    }
}

#[cfg(test)]
mod tests;
