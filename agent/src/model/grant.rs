//! Privacy grants as TCC records them (the `access` table of a TCC.db):
//! which client may use which service, decided how and why. parse reads
//! them, observe tracks them across reads, the judge weighs them.

use serde::{Deserialize, Serialize};

/// The TCC services lenscap reads. Others (Accessibility, Apple Events, …)
/// are filtered out in the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TccService {
    Camera,
    Microphone,
    ScreenCapture,
    /// Full Disk Access.
    AllFiles,
}

impl TccService {
    pub const ALL: [TccService; 4] = [
        TccService::Camera,
        TccService::Microphone,
        TccService::ScreenCapture,
        TccService::AllFiles,
    ];

    /// The `service` column value.
    pub fn tcc_name(self) -> &'static str {
        match self {
            TccService::Camera => "kTCCServiceCamera",
            TccService::Microphone => "kTCCServiceMicrophone",
            TccService::ScreenCapture => "kTCCServiceScreenCapture",
            TccService::AllFiles => "kTCCServiceSystemPolicyAllFiles",
        }
    }

    pub fn from_tcc_name(name: &str) -> Option<TccService> {
        TccService::ALL.into_iter().find(|s| s.tcc_name() == name)
    }
}

/// How `client` names the program (`client_type` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TccClientType {
    /// `0`: a bundle identifier such as `us.zoom.xos`.
    BundleId,
    /// `1`: an absolute executable path.
    Path,
    /// A value no public source documents; kept rather than guessed.
    Other(i64),
}

impl TccClientType {
    pub fn from_column(value: i64) -> TccClientType {
        match value {
            0 => TccClientType::BundleId,
            1 => TccClientType::Path,
            n => TccClientType::Other(n),
        }
    }
}

/// The decision TCC recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TccAuth {
    Denied,
    Unknown,
    Allowed,
    /// Partial access (macOS 11+, e.g. selected photos).
    Limited,
    Other(i64),
}

impl TccAuth {
    /// macOS 11+ `auth_value`: 0 denied, 1 unknown, 2 allowed, 3 limited.
    pub fn from_auth_value(value: i64) -> TccAuth {
        match value {
            0 => TccAuth::Denied,
            1 => TccAuth::Unknown,
            2 => TccAuth::Allowed,
            3 => TccAuth::Limited,
            n => TccAuth::Other(n),
        }
    }

    /// macOS ≤10.15 `allowed`: a boolean. SQLite stores it as an integer and
    /// tccd wrote only 0 or 1; anything non-zero reads as allowed, the way
    /// SQLite itself evaluates it in a `WHERE allowed` clause.
    pub fn from_legacy_allowed(value: i64) -> TccAuth {
        if value == 0 {
            TccAuth::Denied
        } else {
            TccAuth::Allowed
        }
    }

    /// Does the client get (some) access?
    pub fn grants_access(self) -> bool {
        matches!(self, TccAuth::Allowed | TccAuth::Limited)
    }
}

/// Why TCC decided (`auth_reason`, macOS 11+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TccReason {
    /// 2: the user answered a prompt.
    UserConsent,
    /// 3: the user flipped the switch in System Settings.
    UserSet,
    /// 4: the system set it.
    SystemSet,
    /// 6: an MDM PPPC profile.
    MdmPolicy,
    /// 11: the client holds an entitlement for it.
    Entitled,
    Other(i64),
}

impl TccReason {
    pub fn from_auth_reason(value: i64) -> TccReason {
        match value {
            2 => TccReason::UserConsent,
            3 => TccReason::UserSet,
            4 => TccReason::SystemSet,
            6 => TccReason::MdmPolicy,
            11 => TccReason::Entitled,
            n => TccReason::Other(n),
        }
    }
}

/// One row of the `access` table, for a service lenscap reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TccGrant {
    pub service: TccService,
    pub client: String,
    pub client_type: TccClientType,
    pub auth: TccAuth,
    /// `None` before macOS 11, which recorded no reason.
    pub reason: Option<TccReason>,
    /// Seconds since the Unix epoch; `None` before macOS 10.14.
    pub last_modified: Option<i64>,
}

impl TccGrant {
    /// What identifies a grant across reads: one decision per service and
    /// client (the indirect object only matters for Apple Events, which we
    /// do not read).
    pub fn key(&self) -> (TccService, &str, TccClientType) {
        (self.service, &self.client, self.client_type)
    }
}

impl TccService {
    /// The service name `tccutil reset` takes, for the services a
    /// remediation resets: camera, microphone and screen recording, how a
    /// page spies on a person. Full Disk Access is not reset (`None`): it
    /// is not what a web page reaches through a helper, and taking it from
    /// a backup or security tool that shares a bundle id would do harm.
    pub fn tccutil_name(self) -> Option<&'static str> {
        match self {
            TccService::Camera => Some("Camera"),
            TccService::Microphone => Some("Microphone"),
            TccService::ScreenCapture => Some("ScreenCapture"),
            TccService::AllFiles => None,
        }
    }

    /// The JSON spelling (`camera`, `screen_capture`, …).
    pub fn json_name(self) -> &'static str {
        match self {
            TccService::Camera => "camera",
            TccService::Microphone => "microphone",
            TccService::ScreenCapture => "screen_capture",
            TccService::AllFiles => "all_files",
        }
    }

    pub fn from_json_name(name: &str) -> Option<TccService> {
        TccService::ALL.into_iter().find(|s| s.json_name() == name)
    }
}

/// One privacy grant a remediation resets: `tccutil reset <service>
/// <client>` run as `uid` — the owner of the TCC.db that holds it (0 for
/// the system database). Journaled in the plan and recorded in the
/// quarantine manifest, so a restore can tell the person to grant it
/// again.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GrantReset {
    pub service: TccService,
    /// The bundle id the TCC row names, exactly.
    pub client: String,
    pub uid: u32,
    /// The TCC.db the row was read from.
    pub database: std::path::PathBuf,
}

/// How a `camera_grant` finding is tied to a helper lenscap remediates:
/// the judge's decision, for the planner. Not on the wire (the finding's
/// reasons say it in words).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GrantHolder {
    /// The helper's plan key (`Finding::helper_key` of its finding).
    pub helper: String,
    /// Why this grant must not be reset although the helper holds it (the
    /// tie is a name another installed app carries); `None` when a reset
    /// is the judge's call.
    pub keep: Option<String>,
}
