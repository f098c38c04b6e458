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
pub use rules::{RULE_KEYS, compile_path_glob};
pub use secret::Secret;
pub use show::{render_show, to_json};
pub use source::{DOMAIN, LOCAL_PATH, MANAGED_PATH, MAX_DEPTH, MAX_FILE_BYTES, Origin, Sources};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    Allow,
    Deny,
}

/// An admin rule. Every matcher that is set must match (AND); a rule with
/// no matcher is rejected at load time.
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
    /// come from (validated by `update::UpdateUrl::parse`).
    pub update_url: String,
    /// `UpdatePublicKey`: base64 ed25519 key releases must be signed with;
    /// empty means no key, so every update is refused.
    pub update_public_key: String,
    /// `CollectorURL`: where events go and the fleet policy comes from;
    /// empty means no upload (validated by
    /// `report::upload::client::CollectorUrl::parse`).
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
            update_url: crate::update::DEFAULT_UPDATE_URL.to_string(),
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
            camera_devices: crate::observe::camera::DEFAULT_CAMERA_DEVICES
                .iter()
                .map(|d| (*d).to_string())
                .collect(),
            camera_correlation_seconds: 10,
            log_path: "/usr/bin/log".into(),
        }
    }
}

impl Config {
    pub fn tools(&self) -> crate::platform::Tools {
        crate::platform::Tools {
            codesign: self.codesign_path.clone(),
            sfltool: self.sfltool_path.clone(),
            launchctl: self.launchctl_path.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/config")
            .join(name)
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn plist_xml(body: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \
             \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\"><dict>{body}</dict></plist>\n"
        )
    }

    #[test]
    fn no_files_gives_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = load(&Sources::layered(
            dir.path().join("m.plist"),
            dir.path().join("l.plist"),
        ))
        .unwrap();
        assert_eq!(loaded.config, Config::default());
        assert!(loaded.origins.values().all(|o| *o == Origin::Default));
        assert_eq!(loaded.origins.len(), KEYS.len());
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn managed_over_local_over_default_key_by_key() {
        let (managed, local) = (fixture("managed.plist"), fixture("local.plist"));
        let loaded = load(&Sources::layered(&managed, &local)).unwrap();
        let c = &loaded.config;
        // Set in both files: managed wins, whole key (Rules is not merged).
        assert_eq!(c.mode, Mode::Remediate);
        assert_eq!(c.sweep_seconds, 5);
        assert_eq!(c.rules.len(), 1);
        assert_eq!(c.rules[0].id, "zoom-opener");
        for key in ["Mode", "SweepSeconds", "Rules"] {
            assert_eq!(
                loaded.origins[key],
                Origin::Managed(managed.clone()),
                "{key}"
            );
        }
        // Only in local.
        assert_eq!(c.state_dir, PathBuf::from("/var/db/lenscap"));
        assert_eq!(c.probe_timeout_ms, 500);
        for key in ["StateDir", "ProbeTimeoutMillis"] {
            assert_eq!(loaded.origins[key], Origin::Local(local.clone()), "{key}");
        }
        // In neither.
        let defaults = Config::default();
        assert_eq!(c.persistence_dirs, defaults.persistence_dirs);
        assert_eq!(c.launchctl_path, defaults.launchctl_path);
        assert_eq!(loaded.origins["LaunchctlPath"], Origin::Default);
        assert_eq!(
            loaded
                .origins
                .values()
                .filter(|o| **o == Origin::Default)
                .count(),
            KEYS.len() - 5
        );
    }

    #[test]
    fn local_alone_applies() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = load(&Sources::layered(
            dir.path().join("absent.plist"),
            fixture("local.plist"),
        ))
        .unwrap();
        assert_eq!(loaded.config.mode, Mode::Monitor);
        assert_eq!(loaded.config.sweep_seconds, 10);
        assert_eq!(
            loaded.config.rules[0].team_id.as_deref(),
            Some("EQHXZ8M8AV")
        );
    }

    #[test]
    fn binary_and_xml_plists_give_the_same_config() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("absent.plist");
        let xml = load(&Sources::layered(&absent, fixture("local.plist"))).unwrap();
        let binary = load(&Sources::layered(&absent, fixture("binary.plist"))).unwrap();
        assert_eq!(xml.config, binary.config);
    }

    #[test]
    fn explicit_file_replaces_both_system_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "c.plist",
            &plist_xml("<key>SweepSeconds</key><integer>30</integer>"),
        );
        let mut sources = Sources::layered(fixture("managed.plist"), fixture("local.plist"));
        sources.explicit = Some(file.clone());
        let loaded = load(&sources).unwrap();
        assert_eq!(loaded.config.sweep_seconds, 30);
        assert_eq!(loaded.origins["SweepSeconds"], Origin::File(file));
        // Managed says remediate, but it was not read.
        assert_eq!(loaded.config.mode, Mode::Monitor);
        assert_eq!(loaded.origins["Mode"], Origin::Default);
    }

    #[test]
    fn camera_keys_load_apply_and_show() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "c.plist",
            &plist_xml(
                "<key>TCCDatabases</key><array><string>/t/Users/*/TCC.db</string></array>\
                 <key>CameraWatch</key><false/>\
                 <key>CameraDevices</key><array><string>/t/dev/video*</string>\
                 <string>/t/dev/cam{0,1}</string></array>\
                 <key>CameraCorrelationSeconds</key><integer>0</integer>\
                 <key>LogPath</key><string>/t/bin/log</string>",
            ),
        );
        let loaded = load(&Sources::explicit(&file)).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let c = &loaded.config;
        assert_eq!(c.tcc_databases, ["/t/Users/*/TCC.db"]);
        assert!(!c.camera_watch);
        assert_eq!(c.camera_devices, ["/t/dev/video*", "/t/dev/cam{0,1}"]);
        assert_eq!(c.camera_correlation_seconds, 0);
        assert_eq!(c.log_path, PathBuf::from("/t/bin/log"));
        for key in [
            "TCCDatabases",
            "CameraWatch",
            "CameraDevices",
            "CameraCorrelationSeconds",
            "LogPath",
        ] {
            assert_eq!(loaded.origins[key], Origin::File(file.clone()), "{key}");
        }
        // Everything else stays at its default.
        let rest = Config {
            tcc_databases: Config::default().tcc_databases,
            camera_watch: true,
            camera_devices: Config::default().camera_devices,
            camera_correlation_seconds: 10,
            log_path: "/usr/bin/log".into(),
            ..c.clone()
        };
        assert_eq!(rest, Config::default());
        let json = to_json(&loaded);
        assert_eq!(
            json["keys"]["CameraWatch"]["value"],
            serde_json::json!(false)
        );
        assert_eq!(
            json["keys"]["CameraDevices"]["value"],
            serde_json::json!(["/t/dev/video*", "/t/dev/cam{0,1}"])
        );
        assert_eq!(
            json["keys"]["LogPath"]["value"],
            serde_json::json!("/t/bin/log")
        );
        let text = render_show(&loaded);
        assert!(text.contains("- /t/Users/*/TCC.db\n"), "{text}");
        let line = text
            .lines()
            .find(|l| l.starts_with("CameraCorrelationSeconds "))
            .unwrap_or_else(|| panic!("{text}"));
        assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(&Sources::explicit(dir.path().join("nope.plist"))).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("nope.plist does not exist; check the path given to --config"),
            "{err}"
        );
    }

    #[test]
    fn an_error_in_any_layer_fails_the_load() {
        // Even a key managed preferences override: a file is valid or not.
        let dir = tempfile::tempdir().unwrap();
        let local = write(
            dir.path(),
            "l.plist",
            &plist_xml("<key>SweepSeconds</key><integer>0</integer>"),
        );
        let err = load(&Sources::layered(fixture("managed.plist"), &local)).unwrap_err();
        assert_eq!(err.path(), local);
        assert!(
            err.to_string()
                .contains("SweepSeconds is 0, expected an integer 1..=3600"),
            "{err}"
        );
    }

    #[test]
    fn corrupt_layer_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let managed = write(
            dir.path(),
            "managed.plist",
            "<?xml version=\"1.0\"?><plist><dict><key>Mode",
        );
        let err = load(&Sources::layered(&managed, fixture("local.plist"))).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("{} is not a valid", managed.display())),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_warnings_from_every_layer() {
        let dir = tempfile::tempdir().unwrap();
        let managed = write(
            dir.path(),
            "m.plist",
            &plist_xml("<key>SweepSecond</key><integer>9</integer>"),
        );
        let local = write(
            dir.path(),
            "l.plist",
            &plist_xml("<key>Probes</key><false/>"),
        );
        let loaded = load(&Sources::layered(&managed, &local)).unwrap();
        assert_eq!(loaded.config, Config::default());
        assert_eq!(loaded.warnings.len(), 2);
        assert!(
            loaded.warnings[0]
                .contains("\"SweepSecond\" is ignored; did you mean \"SweepSeconds\"?")
        );
        assert!(loaded.warnings[1].contains("\"Probes\" is ignored; did you mean \"Probe\"?"));
    }

    #[test]
    fn a_miscased_key_is_an_error_in_every_source() {
        let dir = tempfile::tempdir().unwrap();
        let bad = write(
            dir.path(),
            "bad.plist",
            &plist_xml("<key>mode</key><string>remediate</string>"),
        );
        let absent = dir.path().join("absent.plist");
        for sources in [
            Sources::layered(&bad, &absent),
            Sources::layered(&absent, &bad),
            // Also under a valid managed file that sets Mode itself.
            Sources::layered(fixture("managed.plist"), &bad),
            Sources::explicit(&bad),
        ] {
            let err = load(&sources).unwrap_err();
            assert!(
                matches!(&err, ConfigError::KeyCase { key, known: "Mode", .. } if key == "mode"),
                "{sources:?}: {err:?}"
            );
            assert_eq!(err.path(), bad);
            assert!(
                err.to_string()
                    .contains("`mode` is not a key; did you mean `Mode`? keys are case-sensitive"),
                "{err}"
            );
        }
    }

    #[test]
    fn show_json_values_load_back_to_the_same_config() {
        let loaded = load(&Sources::layered(
            fixture("managed.plist"),
            fixture("local.plist"),
        ))
        .unwrap();
        let json = to_json(&loaded);
        let mut dict = plist::Dictionary::new();
        for key in KEYS {
            dict.insert(
                (*key).to_string(),
                plist::to_value(&json["keys"][*key]["value"]).unwrap(),
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roundtrip.plist");
        plist::Value::Dictionary(dict)
            .to_file_binary(&path)
            .unwrap();
        let again = load(&Sources::explicit(&path)).unwrap();
        assert_eq!(again.config, loaded.config);
        assert!(again.warnings.is_empty());
    }

    /// The example in docs/configuration.md is this fixture, and it loads.
    #[test]
    fn documented_example_is_the_fixture_and_is_valid() {
        let example = std::fs::read_to_string(fixture("example.plist")).unwrap();
        let docs_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
        let docs = std::fs::read_to_string(docs_path).unwrap();
        assert!(
            docs.contains(&example),
            "docs/configuration.md must contain example.plist verbatim"
        );
        let loaded = load(&Sources::explicit(fixture("example.plist"))).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(loaded.config.rules.len(), 3);
        let mut previous = 0;
        for key in KEYS {
            let section = docs.find(&format!("### `{key}`\n"));
            let Some(at) = section else {
                panic!("docs/configuration.md lacks a section for {key}");
            };
            assert!(
                at > previous,
                "docs/configuration.md: the {key} section is out of KEYS order"
            );
            previous = at;
            let row = format!("| [`{key}`](#{}) |", key.to_ascii_lowercase());
            assert!(
                docs.contains(&row),
                "docs/configuration.md lacks the table row {row}"
            );
        }
    }
}
