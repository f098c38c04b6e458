//! Signed self-update: `lenscap update --check | --apply`.
//!
//! Releases are listed from a GitHub-releases API (`UpdateURL`; the
//! project's repository by default, any server answering the same JSON
//! otherwise) through `self_update`'s GitHub backend. A release carries one
//! asset per target, `lenscap-<version>-<target>.tar.gz` (e.g.
//! `lenscap-0.2.0-aarch64-apple-darwin.tar.gz`), holding the `lenscap`
//! binary at its root and signed with `zipsign sign tar` under that exact
//! file name.
//!
//! What is refused, each with its own [`UpdateError`]:
//! - anything, when no `UpdatePublicKey` is configured (self_update would
//!   silently skip verification without a key; we never get that far);
//! - replacing the binary when the configuration comes from an MDM that did
//!   not set `AutoUpdate` ([`policy`]);
//! - an archive without a signature, or whose signature is not by the
//!   configured key or no longer matches its bytes or name ([`verify`]);
//! - a release older than the installed version (a server offering a
//!   downgrade is either misconfigured or replaying an old, vulnerable
//!   release); the same version is "up to date", not an update;
//! - a release whose asset is not named for the listed version (zipsign
//!   signs the name, so an old signed asset listed under a new tag keeps
//!   its old name), before anything is downloaded;
//! - a binary that does not answer `--version` as lenscap, is a symlink,
//!   or whose own version — the only version the signature vouches for —
//!   is not strictly newer than the running one or not the listed one
//!   ([`verify::check_binary`]).
//!
//! Only then does self_update replace the file (atomically, via
//! `self_replace` when it is the running executable). The running process
//! keeps the old code: the daemon exits after an update and launchd starts
//! the new binary; after a manual update the daemon needs a
//! `launchctl kickstart -k`. All network and file work here is blocking;
//! call it from `spawn_blocking` inside the daemon.

mod policy;
mod verify;

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use semver::Version;

use crate::config::Loaded;

pub use crate::config::{DEFAULT_UPDATE_URL, PublicKey, UpdateUrl};
pub use policy::{Permission, permission};
pub use verify::{
    BinaryVerdict, MAX_VERSION_OUTPUT, Reported, SignatureVerdict, check_binary, check_signature,
    parse_version_output,
};

/// The version of this lenscap.
pub const CURRENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `lenscap update --check` exits with this when a newer release exists.
pub const EXIT_UPDATE_AVAILABLE: u8 = 10;

/// The binary's name inside a release archive.
const BIN_NAME: &str = "lenscap";

/// Per request; an agent binary is a few MB.
const HTTP_TIMEOUT: Duration = Duration::from_secs(120);

/// The target triple this lenscap was built for, which names its assets.
pub fn target() -> &'static str {
    self_update::get_target()
}

/// The asset name a release must carry for `target`.
pub fn asset_name(version: &str, target: &str) -> String {
    format!("{BIN_NAME}-{version}-{target}.tar.gz")
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(
        "refusing update: no UpdatePublicKey configured; set it to the base64 ed25519 key releases are signed with (docs/install.md, \"Updates\")"
    )]
    NoKey,
    #[error(
        "refusing update: the configuration is managed by MDM ({}) and the profile does not set AutoUpdate to true; install new versions as pkgs through the MDM, or have the profile set AutoUpdate",
        .path.display()
    )]
    ManagedByMdm { path: PathBuf },
    #[error(
        "refusing update: AutoUpdate is false, so the daemon does not update itself; run `sudo lenscap update --apply` or set AutoUpdate"
    )]
    AutomaticOff,
    #[error("refusing update: {latest} is older than the installed {installed}")]
    Older { latest: Version, installed: Version },
    #[error(
        "refusing update: archive is not signed ({asset} carries no zipsign signature); only signed releases are installed"
    )]
    Unsigned { asset: String },
    #[error(
        "refusing update: signature does not match the configured key ({asset} was signed with another key, or changed after signing); check UpdatePublicKey"
    )]
    SignatureMismatch { asset: String },
    #[error("refusing update: release {version} has no asset for {target} (expected {expected})")]
    NoAsset {
        version: Version,
        target: String,
        expected: String,
    },
    #[error(
        "refusing update: release {version} offers {asset}, not {expected}; a signed asset keeps the version it was signed under, so this is an older build listed as a new release (or a misnamed one); nothing was downloaded"
    )]
    AssetName {
        version: Version,
        asset: String,
        expected: String,
    },
    #[error(
        "refusing update: the binary in {asset} is not a working lenscap for this machine: {reason}"
    )]
    BrokenBinary { asset: String, reason: String },
    #[error(
        "refusing update: the signed binary in {asset} is lenscap {}, not newer than the installed {} (the release listing claimed {}); the release server offers an old build as new — check UpdateURL and the release",
        .versions.reported, .versions.installed, .versions.listed
    )]
    NotNewer {
        asset: String,
        versions: Box<Versions>,
    },
    #[error(
        "refusing update: the release listing claims {listed}, but the signed binary in {asset} is lenscap {reported}; the release is mislabelled — fix it on the release server"
    )]
    ListingMismatch {
        asset: String,
        listed: Version,
        reported: Version,
    },
    #[error("the release {tag:?} at {url} has no valid semantic version: {reason}")]
    BadVersion {
        tag: String,
        url: String,
        reason: String,
    },
    #[error("the release server {url} lists no release; check UpdateURL")]
    NoRelease { url: String },
    #[error("invalid UpdateURL {url:?}: expected {expected}")]
    BadUrl { url: String, expected: String },
    #[error("invalid UpdatePublicKey: expected {expected}")]
    BadKey { expected: String },
    // `cause` is shown in the message and deliberately not a `#[source]`:
    // self_update's errors already print their own causes, so a chained
    // report (`{:#}`) would say everything two or three times.
    #[error("cannot {step} (release server {url}): {cause}; check UpdateURL and the network")]
    Remote {
        step: &'static str,
        url: String,
        cause: self_update::errors::Error,
    },
    #[error("could not install the update at {}: {cause}; is it writable by this user?", .path.display())]
    Install {
        path: PathBuf,
        cause: self_update::errors::Error,
    },
}

/// The versions behind a refusal of a signed binary (boxed in
/// [`UpdateError`] to keep the error small).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    /// What the release listing claimed.
    pub listed: Version,
    /// What the signed binary reported for `--version`.
    pub reported: Version,
    /// The running lenscap.
    pub installed: Version,
}

/// Who asked for the update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// An administrator ran `lenscap update --apply`.
    Manual,
    /// The daemon, on its own schedule.
    Automatic,
}

/// What `--check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub installed: Version,
    pub latest: Version,
    /// The asset for this target in the latest release, if it has one.
    pub asset: Option<String>,
    pub permission: Permission,
    pub key_configured: bool,
}

impl Check {
    /// Whether the listing claims a newer version. A claim only: `--apply`
    /// believes the version the signed binary reports.
    pub fn update_available(&self) -> bool {
        self.latest.cmp_precedence(&self.installed) == Ordering::Greater
    }
}

/// What `--apply` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The latest release is the installed version; nothing was touched.
    UpToDate { installed: Version },
    /// `path` now holds `to`; the running process still runs `from`.
    Updated {
        from: Version,
        to: Version,
        path: PathBuf,
        /// What the new binary printed for `--version` (`lenscap <to>`).
        reported: String,
    },
}

/// Checks for and applies updates as the configuration says.
#[derive(Debug, Clone)]
pub struct Updater {
    url: UpdateUrl,
    key: Option<PublicKey>,
    permission: Permission,
    installed: Version,
    install_path: PathBuf,
    target: String,
}

impl Updater {
    /// From the loaded configuration; `install_path` is the file an update
    /// replaces (`std::env::current_exe()` in production).
    pub fn new(loaded: &Loaded, install_path: PathBuf) -> Result<Updater, UpdateError> {
        let config = &loaded.config;
        let url = UpdateUrl::parse(&config.update_url).map_err(|expected| UpdateError::BadUrl {
            url: config.update_url.clone(),
            expected,
        })?;
        let key = PublicKey::parse(&config.update_public_key)
            .map_err(|expected| UpdateError::BadKey { expected })?;
        let installed = parse_version(CURRENT_VERSION, "this lenscap")?;
        Ok(Updater {
            url,
            key,
            permission: permission(loaded),
            installed,
            install_path,
            target: target().to_string(),
        })
    }

    /// Asks the release server for the latest release. Reads only.
    pub fn check(&self) -> Result<Check, UpdateError> {
        let (latest, asset) = self.latest()?;
        Ok(Check {
            installed: self.installed.clone(),
            latest,
            asset,
            permission: self.permission.clone(),
            key_configured: self.key.is_some(),
        })
    }

    /// Installs the latest release if it is signed by the configured key
    /// and its binary runs and reports a version newer than this one and
    /// equal to the listing's. Every refusal leaves the installed file
    /// untouched.
    pub fn apply(&self, trigger: Trigger) -> Result<Applied, UpdateError> {
        match (&self.permission, trigger) {
            (Permission::ManagedDisabled { path }, _) => {
                return Err(UpdateError::ManagedByMdm { path: path.clone() });
            }
            (p, Trigger::Automatic) if !p.automatic() => return Err(UpdateError::AutomaticOff),
            _ => {}
        }
        let key = self.key.ok_or(UpdateError::NoKey)?;
        let (latest, asset) = self.latest()?;
        // The listing's claim decides only whether to look further; the
        // signed binary's own version decides what is installed.
        match latest.cmp_precedence(&self.installed) {
            Ordering::Less => {
                return Err(UpdateError::Older {
                    latest,
                    installed: self.installed.clone(),
                });
            }
            Ordering::Equal => return Ok(Applied::UpToDate { installed: latest }),
            Ordering::Greater => {}
        }
        let expected = asset_name(&latest.to_string(), &self.target);
        let asset = asset.ok_or_else(|| UpdateError::NoAsset {
            expected: expected.clone(),
            version: latest.clone(),
            target: self.target.clone(),
        })?;
        if asset != expected {
            return Err(UpdateError::AssetName {
                version: latest,
                asset,
                expected,
            });
        }
        self.install(key, &asset, &latest)
    }

    /// The newest release and the name of its asset for this target.
    fn latest(&self) -> Result<(Version, Option<String>), UpdateError> {
        let updater = self
            .backend()
            .build()
            .map_err(|source| self.remote("configure the updater", source))?;
        let releases = updater
            .get_latest_release()
            .map_err(|source| self.remote("fetch the latest release", source))?;
        let Some(release) = releases.latest() else {
            return Err(UpdateError::NoRelease {
                url: self.url.to_string(),
            });
        };
        let version = parse_version(release.version(), &self.url.to_string())?;
        let asset = release
            .asset_for(&self.target, Some(".tar.gz"))
            .map(|a| a.name().to_string());
        Ok((version, asset))
    }

    /// Download, verify, test and replace, all inside self_update's flow;
    /// our checks run in its `verify_archive` and `verify_binary` hooks.
    fn install(
        &self,
        key: PublicKey,
        asset: &str,
        listed: &Version,
    ) -> Result<Applied, UpdateError> {
        let verdict: Arc<Mutex<Option<SignatureVerdict>>> = Arc::default();
        let binary: Arc<Mutex<Option<Result<Reported, BinaryVerdict>>>> = Arc::default();
        let mut builder = self.backend();
        {
            let verdict = Arc::clone(&verdict);
            builder.verify_archive(move |archive: &Path| {
                check_signature(archive, &key).map_err(|v| {
                    let reason = format!("{v:?}");
                    if let Ok(mut slot) = verdict.lock() {
                        *slot = Some(v);
                    }
                    self_update::errors::Error::archive_verification_rejected(reason)
                })
            });
        }
        {
            // Runs on the extracted binary, after the archive hook above
            // accepted the signature and before anything is replaced.
            let slot = Arc::clone(&binary);
            let listed = listed.clone();
            let installed = self.installed.clone();
            builder.verify_binary(move |path: &Path| {
                let result = check_binary(path, &listed, &installed);
                let rejected = result.as_ref().err().map(|v| format!("{v:?}"));
                if let Ok(mut slot) = slot.lock() {
                    *slot = Some(result);
                }
                match rejected {
                    None => Ok(()),
                    Some(reason) => Err(self_update::errors::Error::verification_rejected(reason)),
                }
            });
        }
        let updater = builder
            .build()
            .map_err(|source| self.remote("configure the updater", source))?;
        let status = updater.update_extended().map_err(|source| {
            let asset = asset.to_string();
            match source {
                self_update::errors::Error::ArchiveVerificationRejected { .. } => {
                    match verdict.lock().ok().and_then(|mut v| v.take()) {
                        Some(SignatureVerdict::Mismatch) => {
                            UpdateError::SignatureMismatch { asset }
                        }
                        // Unreadable right after download: treat as unsigned,
                        // never as accepted.
                        Some(SignatureVerdict::Unsigned | SignatureVerdict::Unreadable(_))
                        | None => UpdateError::Unsigned { asset },
                    }
                }
                self_update::errors::Error::VerificationRejected { reason, .. } => {
                    match binary.lock().ok().and_then(|mut v| v.take()) {
                        Some(Err(BinaryVerdict::NotNewer { listed, reported })) => {
                            UpdateError::NotNewer {
                                asset,
                                versions: Box::new(Versions {
                                    listed,
                                    reported,
                                    installed: self.installed.clone(),
                                }),
                            }
                        }
                        Some(Err(BinaryVerdict::ListingMismatch { listed, reported })) => {
                            UpdateError::ListingMismatch {
                                asset,
                                listed,
                                reported,
                            }
                        }
                        Some(Err(BinaryVerdict::Broken(reason))) => {
                            UpdateError::BrokenBinary { asset, reason }
                        }
                        Some(Ok(_)) | None => UpdateError::BrokenBinary {
                            asset,
                            reason: reason.unwrap_or_default(),
                        },
                    }
                }
                self_update::errors::Error::InstallPathNotWritable { .. }
                | self_update::errors::Error::Io(_) => UpdateError::Install {
                    path: self.install_path.clone(),
                    cause: source,
                },
                other => self.remote("download the release", other),
            }
        })?;
        if status.into_updated_release().is_none() {
            // The listing changed between our check and the download.
            return Ok(Applied::UpToDate {
                installed: self.installed.clone(),
            });
        }
        // self_update replaces the file only after the binary hook
        // accepted it, so its verdict is there; the version is the one the
        // signed binary reported, not the listing's.
        let Some(Ok(Reported { version: to, line })) =
            binary.lock().ok().and_then(|mut r| r.take())
        else {
            return Err(UpdateError::BrokenBinary {
                asset: asset.to_string(),
                reason: "installed without a version check; reinstall lenscap".into(),
            });
        };
        tracing::info!(
            from = %self.installed,
            to = %to,
            path = %self.install_path.display(),
            "installed signed update"
        );
        Ok(Applied::Updated {
            from: self.installed.clone(),
            to,
            path: self.install_path.clone(),
            reported: line,
        })
    }

    /// self_update's GitHub backend, configured for this machine. Output,
    /// prompts and progress bars are off: lenscap prints its own summary.
    fn backend(&self) -> self_update::backends::github::UpdateBuilder {
        let mut b = self_update::backends::github::Update::configure();
        b.repo_owner(&self.url.owner)
            .repo_name(&self.url.repo)
            .api_base_url(&self.url.api_base)
            .bin_name(BIN_NAME)
            .target(&self.target)
            .asset_identifier(".tar.gz")
            .current_version(self.installed.to_string())
            .bin_install_path(&self.install_path)
            .update_strategy(self_update::UpdateStrategy::Latest)
            .timeout(HTTP_TIMEOUT)
            .no_confirm(true)
            .show_output(false)
            .show_download_progress(false);
        b
    }

    fn remote(&self, step: &'static str, cause: self_update::errors::Error) -> UpdateError {
        UpdateError::Remote {
            step,
            url: self.url.to_string(),
            cause,
        }
    }
}

fn parse_version(text: &str, url: &str) -> Result<Version, UpdateError> {
    Version::parse(text.trim_start_matches('v')).map_err(|e| UpdateError::BadVersion {
        tag: text.to_string(),
        url: url.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::config::{Config, KEYS, Origin};

    fn loaded(config: Config) -> Loaded {
        Loaded {
            config,
            origins: KEYS.iter().map(|k| (*k, Origin::Default)).collect(),
            warnings: Vec::new(),
        }
    }

    fn updater(config: Config) -> Updater {
        Updater::new(&loaded(config), PathBuf::from("/nonexistent/lenscap")).unwrap()
    }

    #[test]
    fn no_key_is_refused_before_any_network() {
        // UpdateURL points at a port nothing listens on: the refusal must
        // come first, so no connection error can hide it.
        let u = updater(Config {
            update_url: "http://127.0.0.1:9/repos/o/r".into(),
            ..Config::default()
        });
        let err = u.apply(Trigger::Manual).unwrap_err();
        assert!(matches!(err, UpdateError::NoKey), "{err}");
        assert!(
            err.to_string()
                .starts_with("refusing update: no UpdatePublicKey configured"),
            "{err}"
        );
    }

    #[test]
    fn automatic_needs_auto_update() {
        let err = updater(Config::default())
            .apply(Trigger::Automatic)
            .unwrap_err();
        assert!(matches!(err, UpdateError::AutomaticOff), "{err}");
    }

    #[test]
    fn mdm_without_auto_update_refuses_manual_updates() {
        let mut l = loaded(Config::default());
        l.origins
            .insert("Mode", Origin::Managed(PathBuf::from("/m.plist")));
        let u = Updater::new(&l, PathBuf::from("/x")).unwrap();
        let err = u.apply(Trigger::Manual).unwrap_err();
        assert!(
            err.to_string().contains("managed by MDM (/m.plist)"),
            "{err}"
        );
    }

    #[test]
    fn unreachable_server_is_a_remote_error_naming_the_url() {
        let key = zipsign_api::SigningKey::from_bytes(&[3; 32]);
        use base64::Engine as _;
        let u = updater(Config {
            update_url: "http://127.0.0.1:9/repos/o/r".into(),
            update_public_key: base64::engine::general_purpose::STANDARD
                .encode(key.verifying_key().to_bytes()),
            ..Config::default()
        });
        let err = u.check().unwrap_err();
        assert!(
            err.to_string()
                .contains("release server http://127.0.0.1:9/repos/o/r"),
            "{err}"
        );
    }

    #[test]
    fn build_metadata_does_not_make_a_listing_newer() {
        let available = |latest: &str| {
            Check {
                installed: Version::new(0, 1, 0),
                latest: Version::parse(latest).unwrap(),
                asset: None,
                permission: Permission::Unmanaged { automatic: false },
                key_configured: true,
            }
            .update_available()
        };
        assert!(available("0.1.1"));
        assert!(available("0.2.0-rc.1"));
        assert!(!available("0.1.0"));
        assert!(
            !available("0.1.0+rebuilt"),
            "semver precedence ignores build"
        );
        assert!(!available("0.1.0-rc.1"));
    }

    #[test]
    fn versions_and_asset_names() {
        assert_eq!(parse_version("v0.2.0", "u").unwrap(), Version::new(0, 2, 0));
        assert!(parse_version("nightly", "u").is_err());
        assert_eq!(
            asset_name("0.2.0", "aarch64-apple-darwin"),
            "lenscap-0.2.0-aarch64-apple-darwin.tar.gz"
        );
        assert!(!target().is_empty());
        Version::parse(CURRENT_VERSION).unwrap();
    }
}
