//! Checks on a downloaded release before it may replace lenscap: the
//! archive's ed25519 signature (mandatory), then whether the binary inside
//! runs and is a newer lenscap than this one.
//!
//! The binary's version is its own answer to `--version` (see
//! [`check_binary`]), never the release listing's claim.
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

use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use semver::Version;

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

/// Once the binary has exited, how long its output may take to end. It
/// ends with the process unless something it started holds the pipe.
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// The most of `--version`'s output we read. lenscap prints one short
/// line; anything longer is not lenscap, and is not kept in memory.
pub const MAX_VERSION_OUTPUT: usize = 4096;

/// What the new binary says it is, from its own `--version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub version: Version,
    /// The line it printed, `lenscap <version>`.
    pub line: String,
}

/// Why a signed binary was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinaryVerdict {
    /// It does not run, or does not answer `--version` as lenscap.
    Broken(String),
    /// It is not newer than the running lenscap: the release server is
    /// offering an old (possibly vulnerable) signed build, whatever
    /// version its listing claims.
    NotNewer { listed: Version, reported: Version },
    /// It is newer, but not the version the listing claimed.
    ListingMismatch { listed: Version, reported: Version },
}

/// The gate on the binary extracted from a signed archive: it must be a
/// regular file (a symlink would install a link to whatever it names),
/// must answer `--version` as `lenscap <version>`, and that version —
/// not the listing's, which the release server alone vouches for — must
/// be strictly newer than `installed` and equal to `listed`.
///
/// The signature covers the archive, not the version in the listing: a
/// server (or anyone on the way to it, for a mirror) can list an old,
/// correctly signed archive as a new release. Only what the signed binary
/// reports about itself is covered by the signature.
pub fn check_binary(
    binary: &Path,
    listed: &Version,
    installed: &Version,
) -> Result<Reported, BinaryVerdict> {
    let meta = std::fs::symlink_metadata(binary)
        .map_err(|e| BinaryVerdict::Broken(format!("cannot inspect it: {e}")))?;
    if meta.file_type().is_symlink() {
        let to = std::fs::read_link(binary)
            .map(|t| format!(" to {}", t.display()))
            .unwrap_or_default();
        return Err(BinaryVerdict::Broken(format!(
            "the archive's `lenscap` is a symbolic link{to}, not the binary"
        )));
    }
    if !meta.is_file() {
        return Err(BinaryVerdict::Broken(
            "the archive's `lenscap` is not a regular file".into(),
        ));
    }
    let output = run_version(binary, VERSION_TIMEOUT).map_err(BinaryVerdict::Broken)?;
    let version = parse_version_output(&output).map_err(BinaryVerdict::Broken)?;
    // Precedence, not `Ord`: semver's `Ord` also orders build metadata,
    // so `0.1.0+anything` would count as newer than `0.1.0`.
    if version.cmp_precedence(installed) != Ordering::Greater {
        return Err(BinaryVerdict::NotNewer {
            listed: listed.clone(),
            reported: version,
        });
    }
    if version != *listed {
        return Err(BinaryVerdict::ListingMismatch {
            listed: listed.clone(),
            reported: version,
        });
    }
    Ok(Reported {
        line: format!("lenscap {version}"),
        version,
    })
}

/// The version in `--version` output: exactly one line, `lenscap
/// <semver>` (what clap prints for the real binary), nothing else. The
/// error quotes what was printed, escaped and cut short.
pub fn parse_version_output(output: &[u8]) -> Result<Version, String> {
    let shown = || {
        let text = String::from_utf8_lossy(output);
        let mut cut: String = text.chars().take(80).collect();
        if text.chars().count() > 80 {
            cut.push('…');
        }
        format!("`--version` printed {cut:?}, not `lenscap <version>`")
    };
    let text = std::str::from_utf8(output).map_err(|_| shown())?;
    let line = text.strip_suffix('\n').unwrap_or(text);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let Some(version) = line.strip_prefix("lenscap ") else {
        return Err(shown());
    };
    // `Version::parse` rejects surrounding whitespace and any further
    // line, so "lenscap 1.2.3\nsomething" fails here.
    Version::parse(version).map_err(|e| format!("{}: {e}", shown()))
}

/// Runs `<binary> --version` in a process group of its own and returns
/// what it printed to stdout, if it exits 0 within `timeout` and prints
/// at most [`MAX_VERSION_OUTPUT`] bytes. A binary for the wrong
/// architecture, or a truncated one, fails here instead of leaving launchd
/// restarting a daemon that cannot start. It runs only after the signature
/// check passed, so it is code signed with the release key.
fn run_version(binary: &Path, timeout: Duration) -> Result<Vec<u8>, String> {
    let spawn = || {
        Command::new(binary)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
    };
    // A file just written may be "busy" for a moment (ETXTBSY): a child
    // another thread forked while it was open for writing still holds the
    // descriptor until that child execs. Asking again shortly settles it.
    let mut tries = 0;
    let mut child = loop {
        match spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(25));
            }
            other => break other.map_err(|e| format!("cannot start it: {e}"))?,
        }
    };
    let (tx, rx) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        std::thread::spawn(move || {
            // One byte past the limit tells "too long" from "exactly at
            // it". Returning drops the pipe: a binary still writing gets
            // EPIPE and ends instead of filling memory or spinning.
            let mut out = Vec::new();
            let read = stdout
                .take(MAX_VERSION_OUTPUT as u64 + 1)
                .read_to_end(&mut out);
            let _ = tx.send(read.map(|_| out));
        });
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(None) => {
                // Unreaped, so its pid (and group id) cannot name another
                // process yet.
                if let Ok(pid) = i32::try_from(child.id()) {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`--version` did not finish within {}s",
                    timeout.as_secs_f64()
                ));
            }
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
    };
    let grace = deadline
        .saturating_duration_since(Instant::now())
        .min(OUTPUT_GRACE);
    let out = match rx.recv_timeout(grace) {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(format!("cannot read its output: {e}")),
        // Whatever holds the pipe is not waited for (the reader thread
        // ends when it lets go).
        Err(_) => {
            return Err("`--version` exited, but something it started kept its output open".into());
        }
    };
    if out.len() > MAX_VERSION_OUTPUT {
        return Err(format!(
            "`--version` printed more than {MAX_VERSION_OUTPUT} bytes; lenscap prints one line"
        ));
    }
    if !status.success() {
        return Err(format!("`--version` exited with {status}"));
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

    fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn version_output_is_one_lenscap_line() {
        assert_eq!(parse_version_output(b"lenscap 0.2.0\n"), Ok(v("0.2.0")));
        assert_eq!(parse_version_output(b"lenscap 0.2.0"), Ok(v("0.2.0")));
        assert_eq!(parse_version_output(b"lenscap 0.2.0\r\n"), Ok(v("0.2.0")));
        assert_eq!(
            parse_version_output(b"lenscap 1.0.0-rc.1+build.7\n"),
            Ok(v("1.0.0-rc.1+build.7"))
        );
        for bad in [
            &b""[..],
            b"\n",
            b"lenscap\n",
            b"lenscap \n",
            b"hello\n",
            b"lenscap v0.2.0\n",
            b"lenscap 0.2\n",
            b"lenscap 0.2.0 \n",
            b" lenscap 0.2.0\n",
            b"Lenscap 0.2.0\n",
            b"lenscap  0.2.0\n",
            b"lenscap 0.2.0\n\n",
            b"lenscap 0.2.0\nlenscap 9.9.9\n",
            b"lenscap 9.9.9\x00\n",
            b"lenscap 0.2.0\xff\n",
            b"zoomopener 0.2.0\n",
        ] {
            let err = parse_version_output(bad).unwrap_err();
            assert!(
                err.starts_with("`--version` printed ") && err.contains("not `lenscap <version>`"),
                "{bad:?}: {err}"
            );
        }
        // What was printed is quoted escaped and cut short.
        let err = parse_version_output("\x1b[2J".repeat(500).as_bytes()).unwrap_err();
        assert!(err.len() < 400, "{err}");
        assert!(err.contains("\\u{1b}[2J") && err.contains('…'), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn version_output_parser_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse_version_output(&bytes);
        }

        #[test]
        fn any_printed_version_parses_back(major in 0u64..1000, minor in 0u64..1000, patch in 0u64..1000) {
            let version = Version::new(major, minor, patch);
            proptest::prop_assert_eq!(
                parse_version_output(format!("lenscap {version}\n").as_bytes()),
                Ok(version)
            );
        }
    }

    #[test]
    fn binary_must_run_and_say_lenscap() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let timeout = Duration::from_secs(10);
        let ok = script(d, "ok", "echo 'lenscap 9.9.9'");
        assert_eq!(run_version(&ok, timeout).unwrap(), b"lenscap 9.9.9\n");
        let fails = script(d, "fails", "echo 'lenscap 9.9.9'; exit 3");
        assert!(run_version(&fails, timeout).unwrap_err().contains("exited"));
        let not_exec = d.join("data");
        std::fs::write(&not_exec, b"\x00\x01").unwrap();
        assert!(
            run_version(&not_exec, timeout)
                .unwrap_err()
                .contains("cannot start")
        );
    }

    #[test]
    fn endless_output_is_cut_off_not_collected() {
        let dir = tempfile::tempdir().unwrap();
        let spew = script(dir.path(), "spew", "exec yes lenscap");
        let err = run_version(&spew, Duration::from_secs(30)).unwrap_err();
        assert!(err.contains("printed more than 4096 bytes"), "{err}");
        // Exactly at the limit is still read whole (and then judged).
        let at_limit = script(
            dir.path(),
            "at-limit",
            &format!("head -c {MAX_VERSION_OUTPUT} /dev/zero"),
        );
        assert_eq!(
            run_version(&at_limit, Duration::from_secs(30))
                .unwrap()
                .len(),
            MAX_VERSION_OUTPUT
        );
    }

    #[test]
    fn a_hanging_binary_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild.pid");
        // The binary starts a helper of its own, then hangs; both must
        // be gone afterwards (they share its process group).
        let hang = script(
            dir.path(),
            "hang",
            &format!("sleep 60 & echo $! > {}\nsleep 60", pid_file.display()),
        );
        let err = run_version(&hang, Duration::from_millis(500)).unwrap_err();
        assert!(err.contains("did not finish within 0.5s"), "{err}");
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Killed, then reaped by init (it was orphaned): poll until gone.
        let gone = (0..500).any(|_| {
            let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
                && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z "));
            if alive {
                std::thread::sleep(Duration::from_millis(10));
            }
            !alive
        });
        assert!(gone, "the helper {pid} the binary started is still running");
    }

    #[test]
    fn output_held_open_after_exit_is_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("bg.pid");
        // Prints a good line, exits 0, but leaves a process holding stdout.
        let leaky = script(
            dir.path(),
            "leaky",
            &format!(
                "echo 'lenscap 9.9.9'\nsleep 30 & echo $! > {}",
                pid_file.display()
            ),
        );
        let err = run_version(&leaky, Duration::from_secs(10)).unwrap_err();
        assert!(err.contains("kept its output open"), "{err}");
        // Clean up what the script left behind (ours: its pid is in our file).
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }

    #[test]
    fn only_a_strictly_newer_version_equal_to_the_listing_passes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let installed = v("0.1.0");
        let bin = |name: &str, version: &str| script(d, name, &format!("echo 'lenscap {version}'"));

        let newer = bin("newer", "0.2.0");
        assert_eq!(
            check_binary(&newer, &v("0.2.0"), &installed),
            Ok(Reported {
                version: v("0.2.0"),
                line: "lenscap 0.2.0".into()
            })
        );
        // A listing that claims 9.9.9 over a signed build of 0.1.0 (the
        // running version) or 0.0.9 (older): not newer, whatever it says.
        for (name, old) in [("same", "0.1.0"), ("older", "0.0.9")] {
            assert_eq!(
                check_binary(&bin(name, old), &v("9.9.9"), &installed),
                Err(BinaryVerdict::NotNewer {
                    listed: v("9.9.9"),
                    reported: v(old)
                })
            );
        }
        // The same version with other build metadata is not newer either.
        assert!(matches!(
            check_binary(&bin("meta", "0.1.0+evil"), &v("0.1.0+evil"), &installed),
            Err(BinaryVerdict::NotNewer { .. })
        ));
        // A pre-release of the running version is older than it.
        assert!(matches!(
            check_binary(&bin("pre", "0.1.0-rc.1"), &v("0.1.0-rc.1"), &installed),
            Err(BinaryVerdict::NotNewer { .. })
        ));
        // Newer, but not what the listing claimed.
        assert_eq!(
            check_binary(&newer, &v("0.3.0"), &installed),
            Err(BinaryVerdict::ListingMismatch {
                listed: v("0.3.0"),
                reported: v("0.2.0")
            })
        );
        let garbage = script(d, "garbage", "printf 'lenscap \\033[31m9.9.9'");
        assert!(matches!(
            check_binary(&garbage, &v("9.9.9"), &installed),
            Err(BinaryVerdict::Broken(reason)) if reason.contains("not `lenscap <version>`")
        ));
    }

    #[test]
    fn a_symlink_or_directory_is_not_a_binary() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let real = script(d, "real", "echo 'lenscap 0.2.0'");
        let link = d.join("lenscap");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let installed = v("0.1.0");
        match check_binary(&link, &v("0.2.0"), &installed) {
            Err(BinaryVerdict::Broken(reason)) => {
                assert!(reason.contains("is a symbolic link to "), "{reason}");
                assert!(reason.contains(&real.display().to_string()), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            check_binary(d, &v("0.2.0"), &installed),
            Err(BinaryVerdict::Broken(reason)) if reason.contains("not a regular file")
        ));
        assert!(matches!(
            check_binary(&d.join("absent"), &v("0.2.0"), &installed),
            Err(BinaryVerdict::Broken(reason)) if reason.contains("cannot inspect")
        ));
    }
}
