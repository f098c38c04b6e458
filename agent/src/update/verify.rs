//! Checks on a downloaded release before it may replace lenscap: the
//! archive's ed25519 signature (mandatory) and whether the binary inside
//! runs at all.
//!
//! The signature is checked by `self_update::verify_signature` — the same
//! zipsign check self_update runs when given keys — but called from our own
//! `verify_archive` hook rather than through `verifying_keys`, for two
//! reasons: self_update silently skips verification when the key list is
//! empty (here a missing key is refused before anything is fetched, and
//! [`check_signature`] takes a key, not a list), and its error is opaque,
//! while an admin needs to know whether the archive carries no signature at
//! all or one made with another key (or altered after signing). zipsign
//! signs the archive's file name too, so a correctly signed archive
//! renamed on the server is also a mismatch.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::PublicKey;

/// Why a downloaded archive was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureVerdict {
    /// No zipsign signature block at all (or one that cannot be read).
    Unsigned,
    /// Signed, but by another key, or the archive changed after signing.
    Mismatch,
    /// The archive could not be read.
    Unreadable(String),
}

/// Accepts `archive` only if it is a `.tar.gz` carrying a zipsign signature
/// by `key` over its contents and its file name.
pub fn check_signature(archive: &Path, key: &PublicKey) -> Result<(), SignatureVerdict> {
    match self_update::verify_signature(archive, &[key.0]) {
        Ok(()) => Ok(()),
        Err(_) => Err(classify(archive)),
    }
}

/// After a failed check: is there a readable signature block at all?
/// zipsign's verification error does not say (its kinds are private), but
/// stripping the signatures succeeds exactly when a block is there.
fn classify(archive: &Path) -> SignatureVerdict {
    let mut file = match File::open(archive) {
        Ok(file) => file,
        Err(e) => return SignatureVerdict::Unreadable(e.to_string()),
    };
    match zipsign_api::unsign::copy_and_unsign_tar(&mut file, &mut Discard) {
        Ok(()) => SignatureVerdict::Mismatch,
        Err(_) => SignatureVerdict::Unsigned,
    }
}

/// A seekable sink: `copy_and_unsign_tar` wants `Write + Seek` output, and
/// only its success matters here, not the bytes.
struct Discard;

impl Write for Discard {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Discard {
    fn seek(&mut self, _: SeekFrom) -> io::Result<u64> {
        Ok(0)
    }
}

/// How long the new binary gets to answer `--version`.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `<binary> --version` and returns what it printed, if it exits 0
/// within [`VERSION_TIMEOUT`] and prints `lenscap <version>`. A binary for
/// the wrong architecture, or a truncated one, fails here instead of
/// leaving launchd restarting a daemon that cannot start. It runs only
/// after the signature check passed, so it is code we already trust.
pub fn check_runs(binary: &Path) -> Result<String, String> {
    let mut child = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start it: {e}"))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < VERSION_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`--version` did not finish within {}s",
                    VERSION_TIMEOUT.as_secs()
                ));
            }
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        // `--version` prints one short line; cap what we keep anyway.
        let _ = io::Read::read_to_string(&mut io::Read::take(&mut stdout, 4096), &mut out);
    }
    let out = out.trim().to_string();
    if !status.success() {
        return Err(format!("`--version` exited with {status}"));
    }
    if !out.starts_with("lenscap ") {
        return Err(format!(
            "`--version` printed {out:?}, not `lenscap <version>`"
        ));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use std::io::Cursor;
    use std::os::unix::fs::PermissionsExt;

    use zipsign_api::SigningKey;

    use super::*;

    /// A small real .tar.gz holding one file (tar + flate2, as a release
    /// is built).
    fn tar_gz() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let data = b"#!/bin/sh\necho lenscap 9.9.9\n";
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        builder
            .append_data(&mut header, "lenscap", &data[..])
            .unwrap();
        let tar = builder.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    }

    fn sign(bytes: &[u8], key: &SigningKey, name: &str) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        zipsign_api::sign::copy_and_sign_tar(
            &mut Cursor::new(bytes),
            &mut out,
            std::slice::from_ref(key),
            Some(name.as_bytes()),
        )
        .unwrap();
        out.into_inner()
    }

    fn public(key: &SigningKey) -> PublicKey {
        PublicKey(key.verifying_key().to_bytes())
    }

    #[test]
    fn signed_wrong_key_tampered_renamed_and_unsigned() {
        let dir = tempfile::tempdir().unwrap();
        let name = "lenscap-9.9.9-x86_64-unknown-linux-gnu.tar.gz";
        let path = dir.path().join(name);
        let good = SigningKey::from_bytes(&[1; 32]);
        let other = SigningKey::from_bytes(&[2; 32]);
        let archive = tar_gz();
        let signed = sign(&archive, &good, name);

        std::fs::write(&path, &signed).unwrap();
        assert_eq!(check_signature(&path, &public(&good)), Ok(()));
        assert_eq!(
            check_signature(&path, &public(&other)),
            Err(SignatureVerdict::Mismatch)
        );

        let mut tampered = signed.clone();
        tampered[archive.len() / 2] ^= 0x01;
        std::fs::write(&path, &tampered).unwrap();
        assert_eq!(
            check_signature(&path, &public(&good)),
            Err(SignatureVerdict::Mismatch)
        );

        // The name is signed: the same bytes under another name fail.
        let renamed = dir.path().join("lenscap-9.9.9-other.tar.gz");
        std::fs::write(&renamed, &signed).unwrap();
        assert_eq!(
            check_signature(&renamed, &public(&good)),
            Err(SignatureVerdict::Mismatch)
        );

        std::fs::write(&path, &archive).unwrap();
        assert_eq!(
            check_signature(&path, &public(&good)),
            Err(SignatureVerdict::Unsigned)
        );
    }

    #[test]
    fn missing_or_non_tar_gz_archive_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = public(&SigningKey::from_bytes(&[1; 32]));
        let zip = dir.path().join("lenscap.zip");
        std::fs::write(&zip, b"PK\x03\x04").unwrap();
        assert!(check_signature(&zip, &key).is_err());
        assert!(matches!(
            check_signature(&dir.path().join("absent.tar.gz"), &key),
            Err(SignatureVerdict::Unreadable(_))
        ));
    }

    #[test]
    fn binary_must_run_and_say_lenscap() {
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, body: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        };
        let ok = script("ok", "echo 'lenscap 9.9.9'");
        assert_eq!(check_runs(&ok).unwrap(), "lenscap 9.9.9");
        let fails = script("fails", "exit 3");
        assert!(check_runs(&fails).unwrap_err().contains("exited"));
        let other = script("other", "echo hello");
        assert!(check_runs(&other).unwrap_err().contains("\"hello\""));
        let not_exec = dir.path().join("data");
        std::fs::write(&not_exec, b"\x00\x01").unwrap();
        assert!(check_runs(&not_exec).unwrap_err().contains("cannot start"));
    }
}
