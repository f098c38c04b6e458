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
//! typed setting (`validate`, `rules`, `values`), then apply the layers
//! lowest first, recording each key's [`Origin`]. Unknown top-level keys are
//! warnings; everything else wrong is a [`ConfigError`] that names the file,
//! the key, the value and what was expected. [`show`] renders the result for
//! `lenscap config show`. docs/configuration.md is the admin's reference.

mod error;
mod remote;
mod rules;
mod secret;
pub mod show;
mod source;
mod validate;
mod values;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use error::{ConfigError, EXIT_CONFIG};
pub use remote::{CollectorUrl, DEFAULT_UPDATE_URL, EXPECTED_URL, PublicKey, UpdateUrl};
pub use rules::RULE_KEYS;
pub use secret::Secret;
// The rule vocabulary is shared with the judge and the other sources of
// policy; `Rules` is where the preferences write it.
pub use crate::model::rule::{Rule, RuleAction, compile_path_glob};
pub use show::{render_show, to_json};
pub use source::{DOMAIN, LOCAL_PATH, MANAGED_PATH, MAX_DEPTH, MAX_FILE_BYTES, Origin, Sources};

/// The default `CameraDevices`: V4L2 capture nodes.
pub const DEFAULT_CAMERA_DEVICES: &[&str] = &["/dev/video*"];

/// Every top-level preference key lenscap reads, in documentation order.
/// MDM profiles and docs/configuration.md are checked against this list.
pub const KEYS: &[&str] = &[
    "Mode",
    "PersistenceDirs",
    "ApplicationDirs",
    "TempDirs",
    "Rules",
    "StateDir",
    "SweepSeconds",
    "LaunchctlPath",
    "CodesignPath",
    "SfltoolPath",
    "LoginItems",
    "Probe",
    "ProbeTimeoutMillis",
    "TCCDatabases",
    "CameraWatch",
    "CameraDevices",
    "CameraCorrelationSeconds",
    "LogPath",
    "MaxPlistBytes",
    "MaxRemediationsPerHour",
    "PlaceholderBlock",
    "TermGraceMillis",
    "MaxOutboxBytes",
    "AutoUpdate",
    "UpdateURL",
    "UpdatePublicKey",
    "CollectorURL",
    "EnrollmentSecret",
    "UploadIntervalSeconds",
    "PolicyIntervalSeconds",
];

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

/// The effective configuration. Field docs name the plist key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// `Mode`: monitor (default) or remediate.
    pub mode: Mode,
    /// `PersistenceDirs`: launchd plist directories; globs allowed.
    pub persistence_dirs: Vec<String>,
    /// `ApplicationDirs`: where installed apps live (to tell whether a
    /// helper's parent app still exists); globs allowed.
    pub application_dirs: Vec<String>,
    /// `TempDirs`: user-writable temporary locations; a helper living in
    /// one is undisclosed.
    pub temp_dirs: Vec<String>,
    /// `Rules`: admin allow/deny rules.
    pub rules: Vec<Rule>,
    /// `StateDir`: journal, quarantine, outbox.
    pub state_dir: PathBuf,
    /// `SweepSeconds`: the daemon's listener sweep interval.
    pub sweep_seconds: u64,
    /// `LaunchctlPath`.
    pub launchctl_path: PathBuf,
    /// `CodesignPath`.
    pub codesign_path: PathBuf,
    /// `SfltoolPath`.
    pub sfltool_path: PathBuf,
    /// `LoginItems`: read BTM login items (`sfltool dumpbtm`).
    pub login_items: bool,
    /// `Probe`: probe listeners over HTTP.
    pub probe: bool,
    /// `ProbeTimeoutMillis`: connect and read timeout per probe request.
    pub probe_timeout_ms: u64,
    /// `MaxPlistBytes`: larger plists are refused with an error.
    pub max_plist_bytes: u64,
    /// `MaxRemediationsPerHour`: the circuit breaker. Past it the daemon
    /// falls back to monitor for the rest of the hour and says so.
    pub max_remediations_per_hour: u64,
    /// `PlaceholderBlock`: leave a mode-000 file where a helper's dedicated
    /// hidden folder was, so its installer cannot re-create it.
    pub placeholder_block: bool,
    /// `TermGraceMillis`: how long a helper gets between SIGTERM and SIGKILL.
    pub term_grace_ms: u64,
    /// `MaxOutboxBytes`: disk the event outbox may use; remediation events
    /// are never dropped to stay under it.
    pub max_outbox_bytes: u64,
    /// `AutoUpdate`: the daemon installs signed updates by itself; under
    /// MDM, also what allows `lenscap update --apply` (`update::policy`).
    pub auto_update: bool,
    /// `UpdateURL`: the GitHub-releases API URL of the repository updates
    /// come from (validated by [`UpdateUrl::parse`]).
    pub update_url: String,
    /// `UpdatePublicKey`: base64 ed25519 key releases must be signed with;
    /// empty means no key, so every update is refused.
    pub update_public_key: String,
    /// `CollectorURL`: where events go and the fleet policy comes from;
    /// empty means no upload (validated by [`CollectorUrl::parse`]).
    pub collector_url: String,
    /// `EnrollmentSecret`: the enroll token this host trades for its own
    /// host token, once. Never logged or shown.
    pub enrollment_secret: Secret,
    /// `UploadIntervalSeconds`: how often waiting events are uploaded.
    pub upload_interval_seconds: u64,
    /// `PolicyIntervalSeconds`: how often the fleet policy is polled.
    pub policy_interval_seconds: u64,
    /// `TCCDatabases`: the TCC.db files read for privacy grants; globs
    /// allowed (one per user home).
    pub tcc_databases: Vec<String>,
    /// `CameraWatch`: watch camera use (macOS: a `log stream` child;
    /// Linux: open descriptors on `CameraDevices`).
    pub camera_watch: bool,
    /// `CameraDevices`: device paths whose open descriptors mean "camera
    /// in use" (the Linux mechanism); globs allowed.
    pub camera_devices: Vec<String>,
    /// `CameraCorrelationSeconds`: a camera session starting this soon
    /// after a connection to a flagged helper is one critical incident.
    pub camera_correlation_seconds: u64,
    /// `LogPath`: the macOS `log` tool (`log stream` for camera use).
    pub log_path: PathBuf,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            mode: Mode::Monitor,
            persistence_dirs: vec![
                "/Library/LaunchAgents".into(),
                "/Library/LaunchDaemons".into(),
                "/Users/*/Library/LaunchAgents".into(),
                "/Applications/*.app/Contents/Library/LaunchAgents".into(),
                "/Applications/*.app/Contents/Library/LaunchDaemons".into(),
            ],
            application_dirs: vec!["/Applications".into(), "/Users/*/Applications".into()],
            temp_dirs: vec![
                "/tmp".into(),
                "/private/tmp".into(),
                "/var/folders".into(),
                "/private/var/folders".into(),
            ],
            rules: Vec::new(),
            state_dir: PathBuf::from("/Library/Application Support/lenscap"),
            sweep_seconds: 2,
            launchctl_path: PathBuf::from("/bin/launchctl"),
            codesign_path: PathBuf::from("/usr/bin/codesign"),
            sfltool_path: PathBuf::from("/usr/bin/sfltool"),
            login_items: true,
            probe: true,
            probe_timeout_ms: 300,
            max_plist_bytes: 1024 * 1024,
            max_remediations_per_hour: 10,
            placeholder_block: false,
            term_grace_ms: 3000,
            max_outbox_bytes: 64 * 1024 * 1024,
            auto_update: false,
            update_url: DEFAULT_UPDATE_URL.to_string(),
            update_public_key: String::new(),
            collector_url: String::new(),
            enrollment_secret: Secret::default(),
            upload_interval_seconds: 10,
            policy_interval_seconds: 300,
            tcc_databases: vec![
                "/Library/Application Support/com.apple.TCC/TCC.db".into(),
                "/Users/*/Library/Application Support/com.apple.TCC/TCC.db".into(),
            ],
            camera_watch: true,
            camera_devices: DEFAULT_CAMERA_DEVICES
                .iter()
                .map(|d| (*d).to_string())
                .collect(),
            camera_correlation_seconds: 10,
            log_path: "/usr/bin/log".into(),
        }
    }
}

#[cfg(test)]
mod tests;
