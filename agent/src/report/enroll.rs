//! Enrollment: trading the fleet's `EnrollmentSecret` for this host's own
//! token, once, and keeping that token where only root can read it.
//!
//! `<StateDir>/host-token` holds the token and nothing else. It is written
//! atomically (a private temporary file in the same directory, fsync'd,
//! renamed over, the directory fsync'd), mode 0600, in the 0700 state
//! directory, so a crash leaves the old token or the new one, never half
//! of one. The token is never logged: [`HostToken`]'s `Debug` hides it.
//!
//! The agent enrolls when it has no token, and again once when the
//! collector answers 401 to a token it had (the collector lost its
//! database, or an admin revoked the token); see `upload::worker`.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use lenscap_events::Host;
use lenscap_events::api::EnrollRequest;

use super::upload::client::{Client, Failure};
use crate::config::Secret;

/// The token file in the state directory.
pub const TOKEN_FILE: &str = "host-token";
/// A token longer than this is not one the collector made.
const MAX_TOKEN_LEN: usize = 512;

/// This host's collector token (`lc_host_…`). Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct HostToken(String);

impl HostToken {
    /// Refuses text that cannot be sent as a bearer token (it goes into an
    /// HTTP header, so no spaces or control characters).
    pub fn new(text: String) -> Result<HostToken, String> {
        let text = text.trim().to_string();
        if text.is_empty() || text.len() > MAX_TOKEN_LEN {
            return Err(format!(
                "a token is 1 to {MAX_TOKEN_LEN} characters, this one {}",
                text.len()
            ));
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("a token is printable ASCII without spaces".into());
        }
        Ok(HostToken(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for HostToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostToken(…)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error(
        "no host token yet and EnrollmentSecret is empty: set EnrollmentSecret to an enroll token (`lenscap-collector token create --role enroll`)"
    )]
    NoSecret,
    #[error("enrolling with {url} failed: {failure}")]
    Collector { url: String, failure: Failure },
    #[error("refusing the host token file {path}: {reason}; remove it (the agent enrolls again)")]
    Insecure { path: PathBuf, reason: String },
    #[error("host token file {path}: {reason}; remove it (the agent enrolls again)")]
    Malformed { path: PathBuf, reason: String },
    #[error("host token file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl EnrollError {
    /// The collector refused the secret itself (401/403): trying again
    /// soon will not help, a person must fix `EnrollmentSecret`.
    pub fn is_refused(&self) -> bool {
        matches!(
            self,
            EnrollError::Collector {
                failure: Failure::Unauthorized(_) | Failure::Forbidden(_),
                ..
            }
        )
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EnrollError + '_ {
    move |source| EnrollError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The stored token, if there is one. A file readable by others is
/// tightened to 0600 (and said so); one that is a link, not a regular file
/// or owned by someone else is refused.
pub fn load_token(state_dir: &Path) -> Result<Option<HostToken>, EnrollError> {
    let path = state_dir.join(TOKEN_FILE);
    let mut file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(EnrollError::Insecure {
                path,
                reason: "it is a symbolic link".into(),
            });
        }
        Err(e) => return Err(io_err(&path)(e)),
    };
    let meta = file.metadata().map_err(io_err(&path))?;
    let euid = nix::unistd::geteuid().as_raw();
    if !meta.is_file() {
        return Err(EnrollError::Insecure {
            path,
            reason: "it is not a regular file".into(),
        });
    }
    if meta.uid() != euid {
        return Err(EnrollError::Insecure {
            path,
            reason: format!("it belongs to uid {}, not to us (uid {euid})", meta.uid()),
        });
    }
    if meta.mode() & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.mode() & 0o7777), "the host token was readable by others; made it 0600");
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_err(&path))?;
    }
    let mut text = String::new();
    (&mut file)
        .take(MAX_TOKEN_LEN as u64 + 2)
        .read_to_string(&mut text)
        .map_err(|e| EnrollError::Malformed {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    HostToken::new(text)
        .map(Some)
        .map_err(|reason| EnrollError::Malformed { path, reason })
}

/// Store `token` in `<state_dir>/host-token`, 0600, atomically.
pub fn store_token(state_dir: &Path, token: &HostToken) -> Result<(), EnrollError> {
    let path = state_dir.join(TOKEN_FILE);
    write_private(&path, format!("{}\n", token.as_str()).as_bytes()).map_err(io_err(&path))
}

/// Enroll this host and store its token. The secret is sent only to the
/// configured collector, over TLS unless that collector is on loopback.
pub fn enroll(
    client: &Client,
    secret: &Secret,
    host: &Host,
    state_dir: &Path,
) -> Result<HostToken, EnrollError> {
    if secret.is_empty() {
        return Err(EnrollError::NoSecret);
    }
    let request = EnrollRequest {
        host: host.clone(),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let token = client
        .enroll(secret, &request)
        .map_err(|failure| EnrollError::Collector {
            url: client.url().as_str().to_string(),
            failure,
        })?;
    store_token(state_dir, &token)?;
    tracing::info!(
        collector = client.url().as_str(),
        "enrolled with the collector"
    );
    Ok(token)
}

/// Replace `path` with `bytes`: a new 0600 file beside it (random name,
/// `O_EXCL`), fsync'd, renamed over `path`, the directory fsync'd. The
/// temporary name is random so no file planted in advance can be reused,
/// and it is created 0600 so the content is never readable by others,
/// not even for a moment.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_token(dir.path()).unwrap().is_none());
        let token = HostToken::new(format!("lc_host_{}", "ab".repeat(32))).unwrap();
        store_token(dir.path(), &token).unwrap();
        let path = dir.path().join(TOKEN_FILE);
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
        assert_eq!(load_token(dir.path()).unwrap(), Some(token.clone()));
        // Replaced whole; no temporary files left behind.
        let other = HostToken::new("lc_host_other".into()).unwrap();
        store_token(dir.path(), &other).unwrap();
        assert_eq!(load_token(dir.path()).unwrap(), Some(other));
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert_eq!(format!("{token:?}"), "HostToken(…)");
    }

    #[test]
    fn loose_modes_are_tightened_links_and_junk_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TOKEN_FILE);
        fs::write(&path, "lc_host_x\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load_token(dir.path()).unwrap().is_some());
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);

        fs::write(&path, "two words\n").unwrap();
        let err = load_token(dir.path()).unwrap_err();
        assert!(matches!(err, EnrollError::Malformed { .. }), "{err}");
        fs::write(&path, "x".repeat(10_000)).unwrap();
        assert!(load_token(dir.path()).is_err());

        fs::remove_file(&path).unwrap();
        let target = dir.path().join("elsewhere");
        fs::write(&target, "lc_host_x").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let err = load_token(dir.path()).unwrap_err();
        assert!(
            matches!(err, EnrollError::Insecure { .. }) && err.to_string().contains("link"),
            "{err}"
        );
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert!(load_token(dir.path()).is_err());
    }

    #[test]
    fn token_text_is_checked() {
        assert!(HostToken::new(" lc_host_a \n".into()).is_ok());
        assert!(HostToken::new(String::new()).is_err());
        assert!(HostToken::new("a\u{7f}b".into()).is_err());
        assert!(HostToken::new("a\r\nX-Evil: 1".into()).is_err());
        assert!(HostToken::new("é".into()).is_err());
    }
}
