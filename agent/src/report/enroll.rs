//! Enrollment: trading the fleet's `EnrollmentSecret` for this host's own
//! token, once, and keeping that token where only root can read it.
//!
//! `<StateDir>/host-token` holds the token and nothing else. It is written
//! atomically (a private temporary file in the same directory, fsync'd,
//! renamed over, the directory fsync'd), mode 0600, in the 0700 state
//! directory, so a crash leaves the old token or the new one, never half
//! of one. The token is never logged: [`HostToken`]'s `Debug` hides it.
//!
//! `<StateDir>/enroll-key` holds this installation's enroll key: 32
//! random bytes (hex), made before the first enrolment and kept, written
//! and read like the token. It goes with every enrolment; the collector
//! stores only its hash. Enrolling again with the same key proves the same
//! installation is asking (after the collector lost its tokens, or an
//! answer that never arrived), and gets a token at once. A new
//! installation on a known machine (a re-imaged Mac: its state directory
//! is gone) has a new key, so the collector *holds* the enrolment until an
//! admin runs `lenscap-collector host approve` ([`EnrollError::Held`]), or
//! refuses it ([`EnrollError::Refused`]). Neither is a fault of this
//! agent: it keeps its events and asks again with backoff (at most every
//! 5 minutes), and a held request becomes a token at the first attempt
//! after the approval.
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
/// The enroll key file in the state directory.
pub const KEY_FILE: &str = "enroll-key";
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
    /// This machine is already enrolled, from another installation (or
    /// its token was revoked): an admin must approve this enrolment.
    #[error(
        "the collector {url} holds this enrolment for an admin's approval (retrying until it is approved): {message}"
    )]
    Held { url: String, message: String },
    /// An admin refused this installation's enrolment.
    #[error("the collector {url} refuses this enrolment: {message}")]
    Refused { url: String, message: String },
    #[error(
        "refusing {path}: {reason}; remove it (the agent enrolls again; without its enroll key that waits for the collector's admin)"
    )]
    Insecure { path: PathBuf, reason: String },
    #[error(
        "{path}: {reason}; remove it (the agent enrolls again; without its enroll key that waits for the collector's admin)"
    )]
    Malformed { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl EnrollError {
    /// The collector refused the secret itself (401/403), or an admin
    /// refused this enrolment: trying again soon will not help, a person
    /// must act. (A held enrolment is not refused: it waits for one.)
    pub fn is_refused(&self) -> bool {
        matches!(
            self,
            EnrollError::Refused { .. }
                | EnrollError::Collector {
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
    match read_private(&path)? {
        None => Ok(None),
        Some(text) => HostToken::new(text)
            .map(Some)
            .map_err(|reason| EnrollError::Malformed { path, reason }),
    }
}

/// The text of a root-only file of ours in the state directory, at most
/// [`MAX_TOKEN_LEN`] bytes; `None` when it does not exist.
fn read_private(path: &Path) -> Result<Option<String>, EnrollError> {
    let path = path.to_path_buf();
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
        tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.mode() & 0o7777), "a secret file was readable by others; made it 0600");
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
    Ok(Some(text))
}

/// This installation's enroll key: the stored one, or a new one stored
/// before it is first sent (so a crash after the collector recorded it
/// cannot lose it).
pub fn enroll_key(state_dir: &Path) -> Result<String, EnrollError> {
    let path = state_dir.join(KEY_FILE);
    if let Some(text) = read_private(&path)? {
        let key = text.trim();
        if key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(key.to_string());
        }
        return Err(EnrollError::Malformed {
            path,
            reason: "an enroll key is 64 hex digits".into(),
        });
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| EnrollError::Io {
        path: path.clone(),
        source: std::io::Error::other(format!("no system randomness for an enroll key: {e}")),
    })?;
    let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, format!("{key}\n").as_bytes()).map_err(io_err(&path))?;
    Ok(key)
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
        enroll_key: Some(enroll_key(state_dir)?),
    };
    let url = client.url().as_str().to_string();
    let token = client
        .enroll(secret, &request)
        .map_err(|failure| classify(url, failure))?;
    store_token(state_dir, &token)?;
    tracing::info!(
        collector = client.url().as_str(),
        "enrolled with the collector"
    );
    Ok(token)
}

/// A held or refused enrolment, told by the API's error `code` (the
/// client gives error bodies as `code: message`); any other failure as is.
fn classify(url: String, failure: Failure) -> EnrollError {
    match &failure {
        Failure::Unexpected {
            status: 409,
            message,
        } => {
            if let Some(m) = message.strip_prefix("enroll_held: ") {
                return EnrollError::Held {
                    url,
                    message: m.to_string(),
                };
            }
        }
        Failure::Forbidden(message) => {
            if let Some(m) = message.strip_prefix("enroll_refused: ") {
                return EnrollError::Refused {
                    url,
                    message: m.to_string(),
                };
            }
        }
        _ => {}
    }
    EnrollError::Collector { url, failure }
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

    /// A collector stand-in on 127.0.0.1 giving `answers` (status line,
    /// JSON body) to successive requests, and the bodies it received.
    fn collector(
        answers: Vec<(&'static str, &'static str)>,
    ) -> (Client, std::sync::mpsc::Receiver<String>) {
        use std::io::{BufRead, BufReader};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for (status, body) in answers {
                let Ok((mut stream, _)) = listener.accept() else {
                    return;
                };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut got = vec![0; length];
                reader.read_exact(&mut got).unwrap();
                let _ = tx.send(String::from_utf8(got).unwrap());
                let answer = format!(
                    "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(answer.as_bytes()).unwrap();
            }
        });
        let url =
            crate::report::upload::client::CollectorUrl::parse(&format!("http://127.0.0.1:{port}"))
                .unwrap();
        (Client::new(url), rx)
    }

    fn mac() -> Host {
        Host {
            hostname: "mac-1".into(),
            hardware_uuid: Some("5F3A0C1E-0000-4000-8000-000000000001".into()),
            serial: None,
            machine_id: None,
        }
    }

    #[test]
    fn held_and_refused_enrolments_are_typed_and_keep_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let secret = Secret::new("lc_enroll_s");
        let (client, bodies) = collector(vec![
            (
                "409 Conflict",
                r#"{"code":"enroll_held","error":"held for approval: run `lenscap-collector host approve 7` on the collector","host_id":7,"request_id":3}"#,
            ),
            (
                "403 Forbidden",
                r#"{"code":"enroll_refused","error":"an admin refused this enrolment","host_id":7,"request_id":3}"#,
            ),
            (
                "403 Forbidden",
                r#"{"code":"forbidden","error":"a reader token may not enroll hosts"}"#,
            ),
            ("200 OK", r#"{"host_id":7,"token":"lc_host_abc"}"#),
        ]);

        let err = enroll(&client, &secret, &mac(), dir.path()).unwrap_err();
        let EnrollError::Held { message, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(message.contains("host approve 7"), "{message}");
        assert!(
            !err.is_refused(),
            "a held enrolment waits; it is not refused"
        );
        assert!(err.to_string().contains("retrying"), "{err}");
        assert!(load_token(dir.path()).unwrap().is_none());
        // The key was made, stored 0600 and sent.
        let key_path = dir.path().join(KEY_FILE);
        assert_eq!(fs::metadata(&key_path).unwrap().mode() & 0o7777, 0o600);
        let key = fs::read_to_string(&key_path).unwrap().trim().to_string();
        assert_eq!(key.len(), 64);
        let sent: serde_json::Value = serde_json::from_str(&bodies.recv().unwrap()).unwrap();
        assert_eq!(sent["enroll_key"], key.as_str());

        let err = enroll(&client, &secret, &mac(), dir.path()).unwrap_err();
        assert!(
            matches!(&err, EnrollError::Refused { message, .. } if message.contains("refused")),
            "{err:?}"
        );
        assert!(err.is_refused());
        let err = enroll(&client, &secret, &mac(), dir.path()).unwrap_err();
        assert!(
            matches!(
                &err,
                EnrollError::Collector {
                    failure: Failure::Forbidden(_),
                    ..
                }
            ),
            "{err:?}"
        );

        // Approved: the token, and the same key sent every time.
        let token = enroll(&client, &secret, &mac(), dir.path()).unwrap();
        assert_eq!(token.as_str(), "lc_host_abc");
        assert_eq!(load_token(dir.path()).unwrap(), Some(token));
        for _ in 0..3 {
            let sent: serde_json::Value = serde_json::from_str(&bodies.recv().unwrap()).unwrap();
            assert_eq!(sent["enroll_key"], key.as_str());
        }
    }

    #[test]
    fn a_tampered_or_linked_enroll_key_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let key = enroll_key(dir.path()).unwrap();
        assert_eq!(enroll_key(dir.path()).unwrap(), key, "kept, not remade");
        let path = dir.path().join(KEY_FILE);
        fs::write(&path, "not a key\n").unwrap();
        let err = enroll_key(dir.path()).unwrap_err();
        assert!(matches!(err, EnrollError::Malformed { .. }), "{err}");
        fs::remove_file(&path).unwrap();
        let target = dir.path().join("elsewhere");
        fs::write(&target, "ab".repeat(32)).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let err = enroll_key(dir.path()).unwrap_err();
        assert!(matches!(err, EnrollError::Insecure { .. }), "{err}");
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
