//! The one table of configuration keys. Each row names a plist key once,
//! with its [`Config`] field and type, its default, how a value is
//! validated and how `config show` writes it; [`config_keys!`] turns the
//! table into everything that used to repeat each key: the [`Config`]
//! struct and its `Default`, [`KEYS`] (documentation order, which the docs
//! drift test and the MDM profile checks read), the typed [`Setting`] one
//! file's value becomes, which field a setting sets, the key → parser
//! dispatch, and the effective value `config show` prints.
//!
//! Adding a key is one row here plus its section in
//! docs/configuration.md (a test fails until the docs have it).

use std::path::PathBuf;

use plist::Value;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::show::{mode_name, rule_json};
use super::validate::{
    CAMERA_CORRELATION_SECONDS, MAX_OUTBOX_BYTES, MAX_PLIST_BYTES, MAX_REMEDIATIONS_PER_HOUR,
    POLICY_INTERVAL_SECONDS, PROBE_TIMEOUT_MILLIS, SWEEP_MILLIS, TERM_GRACE_MILLIS,
    UPLOAD_INTERVAL_SECONDS,
};
use super::values::Ctx;
use super::{
    ConfigError, DEFAULT_CAMERA_DEVICES, DEFAULT_UPDATE_URL, Mode, NotifyUser, Rule, Secret,
};

/// Milliseconds shown as the seconds the key takes: `2`, or `0.5`.
fn seconds_json(millis: u64) -> serde_json::Value {
    if millis.is_multiple_of(1000) {
        json!(millis / 1000)
    } else {
        json!(millis as f64 / 1000.0)
    }
}

/// One row per key:
///
/// ```text
/// /// Field doc (names the key).
/// "PlistKey" Variant field: Type = default,
///     parse |ctx, key, value| <Result<Type, ConfigError>>,
///     show |config| <serde_json::Value>;
/// ```
macro_rules! config_keys {
    ($(
        $(#[$doc:meta])*
        $key:literal $variant:ident $field:ident: $ty:ty = $default:expr,
            parse |$ctx:ident, $k:ident, $v:ident| $parse:expr,
            show |$c:ident| $show:expr;
    )*) => {
        /// The effective configuration. Field docs name the plist key.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub struct Config {
            $( $(#[$doc])* pub $field: $ty, )*
        }

        impl Default for Config {
            fn default() -> Config {
                Config { $( $field: $default, )* }
            }
        }

        /// Every top-level preference key lenscap reads, in documentation
        /// order. MDM profiles and docs/configuration.md are checked
        /// against this list.
        pub const KEYS: &[&str] = &[ $( $key, )* ];

        /// One validated top-level key.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub(crate) enum Setting {
            $( $variant($ty), )*
        }

        impl Setting {
            /// The plist key this setting was read from (one of [`KEYS`]).
            pub(crate) fn key(&self) -> &'static str {
                match self {
                    $( Setting::$variant(_) => $key, )*
                }
            }

            pub(crate) fn apply(self, config: &mut Config) {
                match self {
                    $( Setting::$variant(v) => config.$field = v, )*
                }
            }
        }

        /// `None` when `key` is not a lenscap key.
        pub(crate) fn parse_key(
            ctx: &Ctx<'_>,
            key: &str,
            value: &Value,
        ) -> Option<Result<Setting, ConfigError>> {
            match key {
                $( $key => {
                    let ($ctx, $k, $v) = (ctx, key, value);
                    Some($parse.map(Setting::$variant))
                } )*
                _ => None,
            }
        }

        /// The effective value of one top-level key, plist-shaped. `None`
        /// when `key` is not one of [`KEYS`].
        pub fn effective_value(config: &Config, key: &str) -> Option<serde_json::Value> {
            match key {
                $( $key => {
                    let $c = config;
                    Some($show)
                } )*
                _ => None,
            }
        }
    };
}

/// A path as `config show` writes it.
fn path(p: &std::path::Path) -> serde_json::Value {
    serde_json::Value::String(p.display().to_string())
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_string()).collect()
}

config_keys! {
    /// `Mode`: monitor (default) or remediate.
    "Mode" Mode mode: Mode = Mode::Monitor,
        parse |ctx, key, value| ctx.mode(key, value),
        show |c| json!(mode_name(c.mode));
    /// `PersistenceDirs`: launchd plist directories; globs allowed.
    "PersistenceDirs" PersistenceDirs persistence_dirs: Vec<String> = strings(&[
            "/Library/LaunchAgents",
            "/Library/LaunchDaemons",
            "/Users/*/Library/LaunchAgents",
            "/Applications/*.app/Contents/Library/LaunchAgents",
            "/Applications/*.app/Contents/Library/LaunchDaemons",
        ]),
        parse |ctx, key, value| ctx.path_globs(key, value),
        show |c| json!(c.persistence_dirs);
    /// `ApplicationDirs`: where installed apps live (to tell whether a
    /// helper's parent app still exists); globs allowed.
    "ApplicationDirs" ApplicationDirs application_dirs: Vec<String> =
            strings(&["/Applications", "/Users/*/Applications"]),
        parse |ctx, key, value| ctx.path_globs(key, value),
        show |c| json!(c.application_dirs);
    /// `TempDirs`: user-writable temporary locations; a helper living in
    /// one is undisclosed.
    "TempDirs" TempDirs temp_dirs: Vec<String> =
            strings(&["/tmp", "/private/tmp", "/var/folders", "/private/var/folders"]),
        parse |ctx, key, value| ctx.path_globs(key, value),
        show |c| json!(c.temp_dirs);
    /// `Rules`: admin allow/deny rules.
    "Rules" Rules rules: Vec<Rule> = Vec::new(),
        parse |ctx, _key, value| super::rules::parse_rules(ctx, value),
        show |c| serde_json::Value::Array(c.rules.iter().map(rule_json).collect());
    /// `StateDir`: journal, quarantine, outbox.
    "StateDir" StateDir state_dir: PathBuf = PathBuf::from("/Library/Application Support/lenscap"),
        parse |ctx, key, value| ctx.absolute_path(key, value),
        show |c| path(&c.state_dir);
    /// `SweepSeconds`: the daemon's listener sweep interval, kept in
    /// milliseconds (the key takes fractions: `0.5`). Default 0.5 s: a
    /// helper that starts listening is contained in about half a second
    /// (p95), and an idle daemon at 0.5 s stays inside the idle budget
    /// issue 11 set (0.094 % of a core at ~400 processes, budget 0.12 %),
    /// though above the old build at 2 s in the same run (0.061 %);
    /// docs/benchmarks.md, "Issue 11", "The default".
    "SweepSeconds" SweepSeconds sweep_millis: u64 = 500,
        parse |ctx, key, value| ctx.seconds_as_millis(key, value, SWEEP_MILLIS),
        show |c| seconds_json(c.sweep_millis);
    /// `LaunchctlPath`.
    "LaunchctlPath" LaunchctlPath launchctl_path: PathBuf = PathBuf::from("/bin/launchctl"),
        parse |ctx, key, value| ctx.absolute_path(key, value),
        show |c| path(&c.launchctl_path);
    /// `CodesignPath`.
    "CodesignPath" CodesignPath codesign_path: PathBuf = PathBuf::from("/usr/bin/codesign"),
        parse |ctx, key, value| ctx.absolute_path(key, value),
        show |c| path(&c.codesign_path);
    /// `SfltoolPath`.
    "SfltoolPath" SfltoolPath sfltool_path: PathBuf = PathBuf::from("/usr/bin/sfltool"),
        parse |ctx, key, value| ctx.absolute_path(key, value),
        show |c| path(&c.sfltool_path);
    /// `TccutilPath`: the `tccutil` that resets a remediated helper's
    /// privacy grants.
    "TccutilPath" TccutilPath tccutil_path: PathBuf = PathBuf::from("/usr/bin/tccutil"),
        parse |ctx, key, value| ctx.absolute_path(key, value),
        show |c| path(&c.tccutil_path);
    /// `UtmpxPath`: the login records that say who is logged in at the
    /// console (a root-owned LaunchAgent runs in each of their sessions).
    "UtmpxPath" UtmpxPath utmpx_path: PathBuf = PathBuf::from("/var/run/utmpx"),
        parse |ctx, key, value| ctx.absolute_path(key, value),
        show |c| path(&c.utmpx_path);
    /// `LoginItems`: read BTM login items (`sfltool dumpbtm`).
    "LoginItems" LoginItems login_items: bool = true,
        parse |ctx, key, value| ctx.boolean(key, value),
        show |c| json!(c.login_items);
    /// `Probe`: probe listeners over HTTP.
    "Probe" Probe probe: bool = true,
        parse |ctx, key, value| ctx.boolean(key, value),
        show |c| json!(c.probe);
    /// `ProbeTimeoutMillis`: connect and read timeout per probe request.
    "ProbeTimeoutMillis" ProbeTimeoutMillis probe_timeout_ms: u64 = 300,
        parse |ctx, key, value| ctx.integer(key, value, PROBE_TIMEOUT_MILLIS),
        show |c| json!(c.probe_timeout_ms);
    /// `TCCDatabases`: the TCC.db files read for privacy grants; globs
    /// allowed (one per user home).
    "TCCDatabases" TccDatabases tcc_databases: Vec<String> = strings(&[
            "/Library/Application Support/com.apple.TCC/TCC.db",
            "/Users/*/Library/Application Support/com.apple.TCC/TCC.db",
        ]),
        parse |ctx, key, value| ctx.path_globs(key, value),
        show |c| json!(c.tcc_databases);
    /// `CameraWatch`: watch camera use (macOS: a `log stream` child;
    /// Linux: open descriptors on `CameraDevices`).
    "CameraWatch" CameraWatch camera_watch: bool = true,
        parse |ctx, key, value| ctx.boolean(key, value),
        show |c| json!(c.camera_watch);
    /// `CameraDevices`: device paths whose open descriptors mean "camera
    /// in use" (the Linux mechanism); globs allowed.
    "CameraDevices" CameraDevices camera_devices: Vec<String> = strings(DEFAULT_CAMERA_DEVICES),
        parse |ctx, key, value| ctx.device_globs(key, value),
        show |c| json!(c.camera_devices);
    /// `CameraCorrelationSeconds`: a camera session starting this soon
    /// after a connection to a flagged helper is one critical incident.
    "CameraCorrelationSeconds" CameraCorrelationSeconds camera_correlation_seconds: u64 = 10,
        parse |ctx, key, value| ctx.integer(key, value, CAMERA_CORRELATION_SECONDS),
        show |c| json!(c.camera_correlation_seconds);
    /// `LogPath`: the macOS `log` tool (`log stream` for camera use).
    "LogPath" LogPath log_path: PathBuf = PathBuf::from("/usr/bin/log"),
        parse |ctx, key, value| ctx.absolute_path(key, value),
        show |c| path(&c.log_path);
    /// `MaxPlistBytes`: larger plists are refused with an error.
    "MaxPlistBytes" MaxPlistBytes max_plist_bytes: u64 = 1024 * 1024,
        parse |ctx, key, value| ctx.integer(key, value, MAX_PLIST_BYTES),
        show |c| json!(c.max_plist_bytes);
    /// `MaxRemediationsPerHour`: the circuit breaker. Past it the daemon
    /// falls back to monitor for the rest of the hour and says so.
    "MaxRemediationsPerHour" MaxRemediationsPerHour max_remediations_per_hour: u64 = 10,
        parse |ctx, key, value| ctx.integer(key, value, MAX_REMEDIATIONS_PER_HOUR),
        show |c| json!(c.max_remediations_per_hour);
    /// `PlaceholderBlock`: leave a mode-000 file where a helper's dedicated
    /// hidden folder was, so its installer cannot re-create it.
    "PlaceholderBlock" PlaceholderBlock placeholder_block: bool = false,
        parse |ctx, key, value| ctx.boolean(key, value),
        show |c| json!(c.placeholder_block);
    /// `TermGraceMillis`: how long a helper gets between SIGTERM and SIGKILL.
    "TermGraceMillis" TermGraceMillis term_grace_ms: u64 = 3000,
        parse |ctx, key, value| ctx.integer(key, value, TERM_GRACE_MILLIS),
        show |c| json!(c.term_grace_ms);
    /// `MaxOutboxBytes`: disk the event outbox may use; remediation events
    /// are never dropped to stay under it.
    "MaxOutboxBytes" MaxOutboxBytes max_outbox_bytes: u64 = 64 * 1024 * 1024,
        parse |ctx, key, value| ctx.integer(key, value, MAX_OUTBOX_BYTES),
        show |c| json!(c.max_outbox_bytes);
    /// `AutoUpdate`: the daemon installs signed updates by itself; under
    /// MDM, also what allows `lenscap update --apply` (`update::policy`).
    "AutoUpdate" AutoUpdate auto_update: bool = false,
        parse |ctx, key, value| ctx.boolean(key, value),
        show |c| json!(c.auto_update);
    /// `UpdateURL`: the GitHub-releases API URL of the repository updates
    /// come from (validated by [`super::UpdateUrl::parse`]).
    "UpdateURL" UpdateUrl update_url: String = DEFAULT_UPDATE_URL.to_string(),
        parse |ctx, key, value| ctx.update_url(key, value),
        show |c| json!(c.update_url);
    /// `UpdatePublicKey`: base64 ed25519 key releases must be signed with;
    /// empty means no key, so every update is refused.
    "UpdatePublicKey" UpdatePublicKey update_public_key: String = String::new(),
        parse |ctx, key, value| ctx.public_key(key, value),
        show |c| json!(c.update_public_key);
    /// `CollectorURL`: where events go and the fleet policy comes from;
    /// empty means no upload (validated by [`super::CollectorUrl::parse`]).
    "CollectorURL" CollectorUrl collector_url: String = String::new(),
        parse |ctx, key, value| ctx.collector_url(key, value),
        show |c| json!(c.collector_url);
    /// `EnrollmentSecret`: the enroll token this host trades for its own
    /// host token, once. Never logged or shown.
    "EnrollmentSecret" EnrollmentSecret enrollment_secret: Secret = Secret::default(),
        parse |ctx, key, value| ctx.secret(key, value),
        // Never the secret itself: `(set)`, or empty.
        show |c| json!(c.enrollment_secret.shown());
    /// `UploadIntervalSeconds`: how often waiting events are uploaded.
    "UploadIntervalSeconds" UploadIntervalSeconds upload_interval_seconds: u64 = 10,
        parse |ctx, key, value| ctx.integer(key, value, UPLOAD_INTERVAL_SECONDS),
        show |c| json!(c.upload_interval_seconds);
    /// `PolicyIntervalSeconds`: how often the fleet policy is polled.
    "PolicyIntervalSeconds" PolicyIntervalSeconds policy_interval_seconds: u64 = 300,
        parse |ctx, key, value| ctx.integer(key, value, POLICY_INTERVAL_SECONDS),
        show |c| json!(c.policy_interval_seconds);
    /// `NotifyUser`: what the person at the keyboard is told — `all`
    /// findings, `remediations` (findings that are or would be remediated,
    /// and camera incidents), or `none`.
    "NotifyUser" NotifyUser notify_user: NotifyUser = NotifyUser::Remediations,
        parse |ctx, key, value| ctx.notify_user(key, value),
        show |c| json!(c.notify_user.name());
}
