//! Learning a code signature by running `codesign` — one of the outside
//! tools the platform reaches macOS through (the cache that makes each
//! executable checked once per version is `observe::signing`).
//!
//! A signature is built in two steps (see `parse::codesign` for why):
//! `codesign -dv --verbose=4` says what the signature *claims*; then
//! `codesign --verify -R=<requirement>` runs decide what is *true*. Only a
//! passed requirement puts a Team ID into [`Signature::team_id`] or sets
//! [`Signature::platform_binary`]; the claims alone never do.
//!
//! Plain code, compiled and tested on every OS (with a stand-in
//! `codesign`); only `platform/macos.rs` calls it.

use std::path::Path;
use std::time::Duration;

use crate::command;
use crate::model::{Signature, SignatureStatus};
use crate::parse::codesign::{self, Display, Requirement, SigningInfo, TeamId, VerifyOutcome};

/// codesign's output is a few KiB; anything past this is not a signature.
const MAX_OUTPUT: usize = 64 * 1024;

/// Learn `exe`'s signature with the `codesign` at `codesign`. Each run is
/// bounded by `timeout`. Never fails: what could not be learned is
/// [`SignatureStatus::Unknown`].
pub fn check_with_codesign(codesign: &Path, exe: &Path, timeout: Duration) -> Signature {
    let args = match codesign::display_args(exe) {
        Ok(args) => args,
        Err(err) => {
            tracing::debug!(%err, "not checking signature");
            return Signature::unknown();
        }
    };
    let display = match command::run(codesign, &args, timeout, MAX_OUTPUT) {
        Ok(out) => codesign::parse_display(&out.stderr_lossy()),
        Err(err) => {
            tracing::warn!(%err, path = %exe.display(), "codesign display failed");
            return Signature::unknown();
        }
    };
    let info = match display {
        Display::Signed(info) => info,
        Display::Unsigned => {
            return Signature {
                status: SignatureStatus::Unsigned,
                ..Signature::unknown()
            };
        }
        Display::Failed { message } => {
            tracing::debug!(%message, path = %exe.display(), "codesign could not read a signature");
            return Signature::unknown();
        }
    };
    if info.adhoc {
        // An ad-hoc signature has no certificate chain: no requirement
        // with an anchor can pass, so no verify run is worth its cost, and
        // whatever Team ID it carries is ignored.
        return Signature {
            status: SignatureStatus::AdHoc,
            identifier: info.identifier,
            authorities: info.authorities,
            ..Signature::unknown()
        };
    }

    let verify = |req: Option<&Requirement>| -> VerifyOutcome {
        let Ok(args) = codesign::verify_args(exe, req) else {
            return VerifyOutcome::Inconclusive;
        };
        match command::run(codesign, &args, timeout, MAX_OUTPUT) {
            Ok(out) => VerifyOutcome::from_exit_code(out.code),
            Err(err) => {
                tracing::warn!(%err, path = %exe.display(), "codesign --verify failed");
                VerifyOutcome::Inconclusive
            }
        }
    };
    let platform = info
        .platform_identifier
        .map(|_| verify(Some(&Requirement::AppleAnchor)));
    let team = match info.claimed_team_id.as_deref().map(TeamId::parse) {
        Some(Ok(team)) => {
            let outcome = verify(Some(&Requirement::Team(team.clone())));
            Some((team, outcome))
        }
        Some(Err(err)) => {
            tracing::info!(%err, path = %exe.display(), "claimed Team ID not validated");
            None
        }
        None => None,
    };
    // Nothing to validate against: still learn whether the signature holds.
    let plain = (platform.is_none() && team.is_none()).then(|| verify(None));
    assemble(info, platform, team, plain)
}

/// Combine the claims with the verify outcomes. Any `Invalid` wins (the
/// file failed a check, whatever else passed); otherwise a run that
/// verified the signature (exit 0 or 3) makes it `Valid`; if every run was
/// inconclusive the status is `Unknown`.
pub fn assemble(
    info: SigningInfo,
    platform: Option<VerifyOutcome>,
    team: Option<(TeamId, VerifyOutcome)>,
    plain: Option<VerifyOutcome>,
) -> Signature {
    let outcomes: Vec<VerifyOutcome> = [platform, team.as_ref().map(|t| t.1), plain]
        .into_iter()
        .flatten()
        .collect();
    let status = if outcomes.contains(&VerifyOutcome::Invalid) {
        SignatureStatus::Invalid
    } else if outcomes.iter().any(|o| {
        matches!(
            o,
            VerifyOutcome::Satisfied | VerifyOutcome::RequirementNotMet
        )
    }) {
        SignatureStatus::Valid
    } else {
        SignatureStatus::Unknown
    };
    let valid = status == SignatureStatus::Valid;
    Signature {
        status,
        identifier: info.identifier,
        team_id: team
            .filter(|(_, o)| valid && *o == VerifyOutcome::Satisfied)
            .map(|(t, _)| t.as_str().to_string()),
        platform_binary: valid && platform == Some(VerifyOutcome::Satisfied),
        authorities: info.authorities,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;

    /// A stand-in `codesign`: prints `display.txt` to stderr for `-dv`, and
    /// for `--verify` exits with the code in `team.code`, `platform.code`
    /// or `plain.code` by which requirement it was given. Every call is
    /// logged to `calls.log`. Behaviour lives in data files beside it, so
    /// the script itself is never rewritten.
    const SHIM: &str = r#"#!/bin/sh
d=$(dirname "$0")
printf '%s\n' "$*" >> "$d/calls.log"
case "$1" in
  -dv)
    [ -f "$d/display.sleep" ] && exec sleep 30
    cat "$d/display.txt" >&2
    exit "$(cat "$d/display.code")" ;;
  --verify)
    case "$2" in
      -R=anchor\ apple\ generic*) exit "$(cat "$d/team.code")" ;;
      -R=anchor\ apple) exit "$(cat "$d/platform.code")" ;;
      *) exit "$(cat "$d/plain.code")" ;;
    esac ;;
esac
exit 2
"#;

    struct Shim {
        dir: tempfile::TempDir,
    }

    impl Shim {
        /// `display`: fixture name; then the exit codes of the display,
        /// team, platform and plain verify runs.
        fn new(display: &str, codes: [i32; 4]) -> Shim {
            let dir = tempfile::tempdir().unwrap();
            let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/codesign")
                .join(display);
            std::fs::copy(&fixture, dir.path().join("display.txt")).unwrap();
            for (name, code) in ["display", "team", "platform", "plain"].iter().zip(codes) {
                std::fs::write(dir.path().join(format!("{name}.code")), code.to_string()).unwrap();
            }
            std::fs::write(dir.path().join("shim.src"), SHIM).unwrap();
            // The executable is created by a child `cp`, never opened for
            // writing by this (multi-threaded) test process: a write fd
            // inherited by a sibling test's fork would make exec fail with
            // ETXTBSY.
            let status = Command::new("/bin/sh")
                .args([
                    "-c",
                    "cp \"$1/shim.src\" \"$1/codesign\" && chmod 755 \"$1/codesign\"",
                ])
                .arg("sh")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success());
            Shim { dir }
        }

        fn codesign(&self) -> PathBuf {
            self.dir.path().join("codesign")
        }

        fn check(&self, exe: &str) -> Signature {
            check_with_codesign(&self.codesign(), Path::new(exe), Duration::from_secs(20))
        }

        fn calls(&self) -> Vec<String> {
            std::fs::read_to_string(self.dir.path().join("calls.log"))
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect()
        }
    }

    const EXE: &str = "/Applications/Example.app/Contents/MacOS/Example";

    #[test]
    fn developer_id_team_validated() {
        let shim = Shim::new("developer_id.txt", [0, 0, 9, 9]);
        let sig = shim.check(EXE);
        assert_eq!(sig.status, SignatureStatus::Valid);
        assert_eq!(sig.team_id.as_deref(), Some("TEAMID1234"));
        assert_eq!(sig.identifier.as_deref(), Some("app.backglance.Backglance"));
        assert!(!sig.platform_binary);
        assert_eq!(sig.authorities.len(), 3);
        assert_eq!(
            shim.calls(),
            vec![
                format!("-dv --verbose=4 {EXE}"),
                format!(
                    "--verify -R=anchor apple generic and certificate leaf[subject.OU] = \"TEAMID1234\" {EXE}"
                ),
            ]
        );
    }

    #[test]
    fn claimed_team_that_fails_verification_is_dropped() {
        // Exit 3: the signature holds but not Apple's chain for this team.
        let sig = Shim::new("developer_id.txt", [0, 3, 9, 9]).check(EXE);
        assert_eq!(sig.status, SignatureStatus::Valid);
        assert_eq!(sig.team_id, None);
        // Exit 1: the signature itself is broken.
        let sig = Shim::new("developer_id.txt", [0, 1, 9, 9]).check(EXE);
        assert_eq!(sig.status, SignatureStatus::Invalid);
        assert_eq!(sig.team_id, None);
        // Exit 2 (or a crash): nothing learned.
        let sig = Shim::new("developer_id.txt", [0, 2, 9, 9]).check(EXE);
        assert_eq!(sig.status, SignatureStatus::Unknown);
        assert_eq!(sig.team_id, None);
    }

    #[test]
    fn apple_platform_binary_needs_the_anchor_check() {
        let shim = Shim::new("platform_textedit.txt", [0, 9, 0, 9]);
        let sig = shim.check("/System/Applications/TextEdit.app/Contents/MacOS/TextEdit");
        assert!(sig.is_apple_platform(), "{sig:?}");
        assert_eq!(sig.team_id, None);
        assert_eq!(shim.calls().len(), 2);
        assert!(shim.calls()[1].starts_with("--verify -R=anchor apple /System/"));

        let forged = Shim::new("platform_textedit.txt", [0, 9, 3, 9]).check(EXE);
        assert_eq!(forged.status, SignatureStatus::Valid);
        assert!(!forged.platform_binary);
    }

    #[test]
    fn xcode_software_signing_is_not_platform() {
        // Anchor apple would pass for Xcode; without `Platform identifier=`
        // the check is not even run.
        let shim = Shim::new("xcode_software_signing.txt", [0, 0, 0, 0]);
        let sig = shim.check("/Applications/Xcode.app/Contents/MacOS/Xcode");
        assert!(!sig.platform_binary);
        assert_eq!(sig.team_id.as_deref(), Some("59GAB85EFG"));
        assert!(
            !shim
                .calls()
                .iter()
                .any(|c| c.starts_with("--verify -R=anchor apple /"))
        );
    }

    #[test]
    fn adhoc_is_never_verified_nor_given_a_team() {
        for fixture in ["adhoc_linker_signed.txt", "adhoc_claims_team.txt"] {
            let shim = Shim::new(fixture, [0, 0, 0, 0]);
            let sig = shim.check(EXE);
            assert_eq!(sig.status, SignatureStatus::AdHoc, "{fixture}");
            assert_eq!(sig.team_id, None, "{fixture}");
            assert!(!sig.platform_binary);
            assert_eq!(shim.calls().len(), 1, "{fixture}: only the display run");
        }
    }

    #[test]
    fn unsigned_missing_and_failing() {
        let sig = Shim::new("unsigned.txt", [1, 0, 0, 0]).check(EXE);
        assert_eq!(sig.status, SignatureStatus::Unsigned);
        let sig = Shim::new("no_such_file.txt", [1, 0, 0, 0]).check(EXE);
        assert_eq!(sig.status, SignatureStatus::Unknown);
        let sig = check_with_codesign(
            Path::new("/nonexistent/codesign"),
            Path::new(EXE),
            Duration::from_secs(1),
        );
        assert_eq!(sig, Signature::unknown());
    }

    #[test]
    fn no_claims_means_a_plain_verify() {
        // Signed, no team, no platform line (an old self-signed app).
        let shim = Shim::new("developer_id.txt", [0, 9, 9, 0]);
        std::fs::write(
            shim.dir.path().join("display.txt"),
            "Identifier=net.notational.velocity\nCodeDirectory v=20100 size=4692 flags=0x0(none) hashes=228+3 location=embedded\nTeamIdentifier=not set\n",
        )
        .unwrap();
        let sig = shim.check(EXE);
        assert_eq!(sig.status, SignatureStatus::Valid);
        assert_eq!(shim.calls()[1], format!("--verify {EXE}"));
    }

    #[test]
    fn injected_team_id_never_reaches_codesign() {
        let shim = Shim::new("developer_id.txt", [0, 0, 0, 0]);
        std::fs::write(
            shim.dir.path().join("display.txt"),
            "Identifier=evil\nCodeDirectory v=20500 size=1 flags=0x0(none) hashes=1+0 location=embedded\nTeamIdentifier=X\" or anchor apple or \"Y\n",
        )
        .unwrap();
        let sig = shim.check(EXE);
        assert_eq!(sig.team_id, None);
        assert!(
            !shim.calls().iter().any(|c| c.contains("or anchor")),
            "{:?}",
            shim.calls()
        );
    }

    #[test]
    fn unsafe_paths_and_timeouts_are_unknown() {
        let shim = Shim::new("developer_id.txt", [0, 0, 0, 0]);
        assert_eq!(shim.check("relative/helper"), Signature::unknown());
        assert_eq!(
            shim.check("/tmp/a\nPlatform identifier=1"),
            Signature::unknown()
        );
        assert!(shim.calls().is_empty());
        std::fs::write(shim.dir.path().join("display.sleep"), "").unwrap();
        let sig = check_with_codesign(&shim.codesign(), Path::new(EXE), Duration::from_millis(300));
        assert_eq!(sig, Signature::unknown());
    }
}
