//! Preferences in the plist domain `io.lenscap.agent` → a validated
//! [`Config`].
//!
//! PLACEHOLDER HEADER — the loader below is being written; see the brief.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
