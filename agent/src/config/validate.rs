//! Interpreting one parsed preferences file: each top-level key becomes a
//! typed [`Setting`] or a [`ConfigError`] naming the file, the key, the
//! value found and what was expected.
//!
//! Every file that exists is validated whole, even keys another layer
//! overrides: a file is either correct or it is an error, so what an admin
//! sees from `lenscap config show` never depends on which layer happens to
//! win today. Unknown top-level keys are only warnings (a newer profile on
//! an older agent must not stop it); unknown fields inside a rule are
//! errors (see [`super::rules`]).

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use plist::Value;

use super::rules::parse_rules;
use super::values::{Ctx, describe, suggest};
use super::{Config, ConfigError, KEYS, Mode, Rule, Secret};

/// One validated top-level key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Setting {
    Mode(Mode),
    PersistenceDirs(Vec<String>),
    ApplicationDirs(Vec<String>),
    TempDirs(Vec<String>),
    Rules(Vec<Rule>),
    StateDir(PathBuf),
    SweepSeconds(u64),
    LaunchctlPath(PathBuf),
    CodesignPath(PathBuf),
    SfltoolPath(PathBuf),
    LoginItems(bool),
    Probe(bool),
    ProbeTimeoutMillis(u64),
    TccDatabases(Vec<String>),
    CameraWatch(bool),
    CameraDevices(Vec<String>),
    CameraCorrelationSeconds(u64),
    LogPath(PathBuf),
    MaxPlistBytes(u64),
    MaxRemediationsPerHour(u64),
    PlaceholderBlock(bool),
    TermGraceMillis(u64),
    MaxOutboxBytes(u64),
    AutoUpdate(bool),
    UpdateUrl(String),
    UpdatePublicKey(String),
    CollectorUrl(String),
    EnrollmentSecret(Secret),
    UploadIntervalSeconds(u64),
    PolicyIntervalSeconds(u64),
}

pub(crate) const SWEEP_SECONDS: RangeInclusive<u64> = 1..=3600;
pub(crate) const PROBE_TIMEOUT_MILLIS: RangeInclusive<u64> = 10..=10_000;
/// 0 turns correlation off; past five minutes a camera session and an
/// earlier connection are no longer plausibly one incident.
pub(crate) const CAMERA_CORRELATION_SECONDS: RangeInclusive<u64> = 0..=300;
/// Below 1 KiB not even a minimal launchd plist fits; above 64 MiB no
/// launchd plist is legitimate and reading it is a memory risk for a daemon.
pub(crate) const MAX_PLIST_BYTES: RangeInclusive<u64> = 1024..=64 * 1024 * 1024;
pub(crate) const MAX_REMEDIATIONS_PER_HOUR: RangeInclusive<u64> = 1..=10_000;
pub(crate) const TERM_GRACE_MILLIS: RangeInclusive<u64> = 100..=60_000;
pub(crate) const MAX_OUTBOX_BYTES: RangeInclusive<u64> = 1024 * 1024..=16 * 1024 * 1024 * 1024;
pub(crate) const UPLOAD_INTERVAL_SECONDS: RangeInclusive<u64> = 1..=3600;
/// Up to a day: a policy push should reach the fleet the same day.
pub(crate) const POLICY_INTERVAL_SECONDS: RangeInclusive<u64> = 1..=86_400;

impl Setting {
    /// The plist key this setting was read from (one of [`KEYS`]).
    pub(crate) fn key(&self) -> &'static str {
        match self {
            Setting::Mode(_) => "Mode",
            Setting::PersistenceDirs(_) => "PersistenceDirs",
            Setting::ApplicationDirs(_) => "ApplicationDirs",
            Setting::TempDirs(_) => "TempDirs",
            Setting::Rules(_) => "Rules",
            Setting::StateDir(_) => "StateDir",
            Setting::SweepSeconds(_) => "SweepSeconds",
            Setting::LaunchctlPath(_) => "LaunchctlPath",
            Setting::CodesignPath(_) => "CodesignPath",
            Setting::SfltoolPath(_) => "SfltoolPath",
            Setting::LoginItems(_) => "LoginItems",
            Setting::Probe(_) => "Probe",
            Setting::ProbeTimeoutMillis(_) => "ProbeTimeoutMillis",
            Setting::TccDatabases(_) => "TCCDatabases",
            Setting::CameraWatch(_) => "CameraWatch",
            Setting::CameraDevices(_) => "CameraDevices",
            Setting::CameraCorrelationSeconds(_) => "CameraCorrelationSeconds",
            Setting::LogPath(_) => "LogPath",
            Setting::MaxPlistBytes(_) => "MaxPlistBytes",
            Setting::MaxRemediationsPerHour(_) => "MaxRemediationsPerHour",
            Setting::PlaceholderBlock(_) => "PlaceholderBlock",
            Setting::TermGraceMillis(_) => "TermGraceMillis",
            Setting::MaxOutboxBytes(_) => "MaxOutboxBytes",
            Setting::AutoUpdate(_) => "AutoUpdate",
            Setting::UpdateUrl(_) => "UpdateURL",
            Setting::UpdatePublicKey(_) => "UpdatePublicKey",
            Setting::CollectorUrl(_) => "CollectorURL",
            Setting::EnrollmentSecret(_) => "EnrollmentSecret",
            Setting::UploadIntervalSeconds(_) => "UploadIntervalSeconds",
            Setting::PolicyIntervalSeconds(_) => "PolicyIntervalSeconds",
        }
    }

    pub(crate) fn apply(self, config: &mut Config) {
        match self {
            Setting::Mode(v) => config.mode = v,
            Setting::PersistenceDirs(v) => config.persistence_dirs = v,
            Setting::ApplicationDirs(v) => config.application_dirs = v,
            Setting::TempDirs(v) => config.temp_dirs = v,
            Setting::Rules(v) => config.rules = v,
            Setting::StateDir(v) => config.state_dir = v,
            Setting::SweepSeconds(v) => config.sweep_seconds = v,
            Setting::LaunchctlPath(v) => config.launchctl_path = v,
            Setting::CodesignPath(v) => config.codesign_path = v,
            Setting::SfltoolPath(v) => config.sfltool_path = v,
            Setting::LoginItems(v) => config.login_items = v,
            Setting::Probe(v) => config.probe = v,
            Setting::ProbeTimeoutMillis(v) => config.probe_timeout_ms = v,
            Setting::TccDatabases(v) => config.tcc_databases = v,
            Setting::CameraWatch(v) => config.camera_watch = v,
            Setting::CameraDevices(v) => config.camera_devices = v,
            Setting::CameraCorrelationSeconds(v) => config.camera_correlation_seconds = v,
            Setting::LogPath(v) => config.log_path = v,
            Setting::MaxPlistBytes(v) => config.max_plist_bytes = v,
            Setting::MaxRemediationsPerHour(v) => config.max_remediations_per_hour = v,
            Setting::PlaceholderBlock(v) => config.placeholder_block = v,
            Setting::TermGraceMillis(v) => config.term_grace_ms = v,
            Setting::MaxOutboxBytes(v) => config.max_outbox_bytes = v,
            Setting::AutoUpdate(v) => config.auto_update = v,
            Setting::UpdateUrl(v) => config.update_url = v,
            Setting::UpdatePublicKey(v) => config.update_public_key = v,
            Setting::CollectorUrl(v) => config.collector_url = v,
            Setting::EnrollmentSecret(v) => config.enrollment_secret = v,
            Setting::UploadIntervalSeconds(v) => config.upload_interval_seconds = v,
            Setting::PolicyIntervalSeconds(v) => config.policy_interval_seconds = v,
        }
    }
}

/// Validates a whole file. Unknown keys add a warning to `warnings`; a key
/// that is a lenscap key but for its case is an error.
pub(crate) fn parse_file(
    path: &Path,
    root: &Value,
    warnings: &mut Vec<String>,
) -> Result<Vec<Setting>, ConfigError> {
    let ctx = Ctx { path };
    let Some(dict) = root.as_dictionary() else {
        return Err(ConfigError::NotADictionary {
            path: path.to_path_buf(),
            found: describe(root),
        });
    };
    let mut settings = Vec::new();
    for (key, value) in dict {
        match parse_key(&ctx, key, value) {
            Some(setting) => settings.push(setting?),
            None => {
                // `mode` is almost certainly meant as `Mode`, but plist keys
                // are case-sensitive: as a mere warning the agent would run
                // with the default the admin meant to change (in monitor
                // mode when they asked for remediate, say). A newer agent's
                // key cannot collide this way, so an error costs nothing.
                if let Some(known) = case_twin(key) {
                    return Err(ConfigError::KeyCase {
                        path: path.to_path_buf(),
                        key: key.to_string(),
                        known,
                    });
                }
                // A profile payload's bookkeeping keys (PayloadUUID, …) are
                // not ours; admins who paste a payload dict should not get
                // warnings.
                if !key.starts_with("Payload") {
                    warnings.push(unknown_key_warning(path, key));
                }
            }
        }
    }
    Ok(settings)
}

/// The lenscap key `key` equals but for ASCII case, when it is not that
/// key itself (every key in [`KEYS`] is ASCII).
pub(crate) fn case_twin(key: &str) -> Option<&'static str> {
    KEYS.iter()
        .copied()
        .find(|known| *known != key && known.eq_ignore_ascii_case(key))
}

fn unknown_key_warning(path: &Path, key: &str) -> String {
    match suggest(key, KEYS) {
        Some(known) => format!(
            "{}: unknown key {key:?} is ignored; did you mean {known:?}?",
            path.display()
        ),
        None => format!(
            "{}: unknown key {key:?} is ignored; docs/configuration.md lists the keys lenscap reads",
            path.display()
        ),
    }
}

/// `None` when `key` is not a lenscap key.
pub(crate) fn parse_key(
    ctx: &Ctx<'_>,
    key: &str,
    value: &Value,
) -> Option<Result<Setting, ConfigError>> {
    let setting = match key {
        "Mode" => ctx.mode(key, value).map(Setting::Mode),
        "PersistenceDirs" => ctx.path_globs(key, value).map(Setting::PersistenceDirs),
        "ApplicationDirs" => ctx.path_globs(key, value).map(Setting::ApplicationDirs),
        "TempDirs" => ctx.path_globs(key, value).map(Setting::TempDirs),
        "Rules" => parse_rules(ctx, value).map(Setting::Rules),
        "StateDir" => ctx.absolute_path(key, value).map(Setting::StateDir),
        "SweepSeconds" => ctx
            .integer(key, value, SWEEP_SECONDS)
            .map(Setting::SweepSeconds),
        "LaunchctlPath" => ctx.absolute_path(key, value).map(Setting::LaunchctlPath),
        "CodesignPath" => ctx.absolute_path(key, value).map(Setting::CodesignPath),
        "SfltoolPath" => ctx.absolute_path(key, value).map(Setting::SfltoolPath),
        "LoginItems" => ctx.boolean(key, value).map(Setting::LoginItems),
        "Probe" => ctx.boolean(key, value).map(Setting::Probe),
        "ProbeTimeoutMillis" => ctx
            .integer(key, value, PROBE_TIMEOUT_MILLIS)
            .map(Setting::ProbeTimeoutMillis),
        "TCCDatabases" => ctx.path_globs(key, value).map(Setting::TccDatabases),
        "CameraWatch" => ctx.boolean(key, value).map(Setting::CameraWatch),
        "CameraDevices" => ctx.device_globs(key, value).map(Setting::CameraDevices),
        "CameraCorrelationSeconds" => ctx
            .integer(key, value, CAMERA_CORRELATION_SECONDS)
            .map(Setting::CameraCorrelationSeconds),
        "LogPath" => ctx.absolute_path(key, value).map(Setting::LogPath),
        "MaxPlistBytes" => ctx
            .integer(key, value, MAX_PLIST_BYTES)
            .map(Setting::MaxPlistBytes),
        "MaxRemediationsPerHour" => ctx
            .integer(key, value, MAX_REMEDIATIONS_PER_HOUR)
            .map(Setting::MaxRemediationsPerHour),
        "PlaceholderBlock" => ctx.boolean(key, value).map(Setting::PlaceholderBlock),
        "TermGraceMillis" => ctx
            .integer(key, value, TERM_GRACE_MILLIS)
            .map(Setting::TermGraceMillis),
        "MaxOutboxBytes" => ctx
            .integer(key, value, MAX_OUTBOX_BYTES)
            .map(Setting::MaxOutboxBytes),
        "AutoUpdate" => ctx.boolean(key, value).map(Setting::AutoUpdate),
        "UpdateURL" => ctx.update_url(key, value).map(Setting::UpdateUrl),
        "UpdatePublicKey" => ctx.public_key(key, value).map(Setting::UpdatePublicKey),
        "CollectorURL" => ctx.collector_url(key, value).map(Setting::CollectorUrl),
        "EnrollmentSecret" => ctx.secret(key, value).map(Setting::EnrollmentSecret),
        "UploadIntervalSeconds" => ctx
            .integer(key, value, UPLOAD_INTERVAL_SECONDS)
            .map(Setting::UploadIntervalSeconds),
        "PolicyIntervalSeconds" => ctx
            .integer(key, value, POLICY_INTERVAL_SECONDS)
            .map(Setting::PolicyIntervalSeconds),
        _ => return None,
    };
    Some(setting)
}

#[cfg(test)]
mod tests;
