//! `codesign` as a text interface: a parser for what
//! `codesign -dv --verbose=4 <path>` writes (to **stderr**), and builders
//! for the argument lists of the validating `codesign --verify -R=…` runs.
//!
//! Nothing read from the display output is trusted. It says what the
//! signature *claims*: a Team ID printed there can be carried by an ad-hoc
//! or self-signed binary, and `Platform identifier=` can be printed by
//! anything that fakes its output (a path with a newline in it, say). Trust
//! comes only from a `--verify -R=<requirement>` run that exits 0, and the
//! requirement text is built here from a [`TeamId`] that can only hold
//! `[A-Z0-9]{10}`, so a claimed Team ID can never inject requirement syntax.
//!
//! Output shapes: `tests/fixtures/codesign/README.md` lists the public
//! sources of every fixture.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// What codesign prints for a file without a signature.
pub const NOT_SIGNED: &str = "code object is not signed at all";

/// Longest error message kept from a failed display run.
const MAX_MESSAGE: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodesignError {
    #[error(
        "Team ID {value:?} is not 10 upper-case letters or digits; it cannot be validated and is ignored"
    )]
    BadTeamId { value: String },
    #[error("refusing to run codesign on {path:?}: pass an absolute path")]
    RelativePath { path: PathBuf },
    #[error(
        "refusing to run codesign on {path:?}: the path contains a line break or control character that would corrupt codesign's line-based output"
    )]
    UnsafePath { path: PathBuf },
}

/// The outcome of `codesign -dv --verbose=4`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Display {
    Signed(SigningInfo),
    /// `code object is not signed at all`.
    Unsigned,
    /// Anything else: missing file, unreadable bundle, empty output. The
    /// message is codesign's last line, capped.
    Failed {
        message: String,
    },
}

/// What the signature claims. Read [the module doc](self) before trusting
/// any of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SigningInfo {
    pub executable: Option<String>,
    pub identifier: Option<String>,
    pub format: Option<String>,
    /// The CodeDirectory `flags=0x…(names)` field.
    pub flags: Option<CodeFlags>,
    /// `Platform identifier=N`: claims to be an Apple platform binary.
    /// `None` when absent or not a number (treated as absent: not a
    /// platform binary).
    pub platform_identifier: Option<u32>,
    /// `Authority=` lines, leaf first, as printed.
    pub authorities: Vec<String>,
    /// `Signature=adhoc`, or the `adhoc` CodeDirectory flag.
    pub adhoc: bool,
    /// `TeamIdentifier=` as claimed; `None` for `not set` or empty. Never
    /// trusted; validate with [`Requirement::Team`].
    pub claimed_team_id: Option<String>,
    pub cdhash: Option<String>,
}

/// CodeDirectory flags, e.g. `flags=0x10000(runtime)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeFlags {
    pub bits: u32,
    /// Names in the parentheses; empty for `(none)`.
    pub names: Vec<String>,
}

/// `CS_ADHOC` (xnu `osfmk/kern/cs_blobs.h`).
const CS_ADHOC: u32 = 0x2;

/// Parse the stderr of `codesign -dv --verbose=4 <path>`.
///
/// A signed result needs an `Identifier=` or `CodeDirectory` line: codesign
/// prints both for every signature it can read. Only without them is the
/// "not signed at all" line believed, so a path that merely *contains* that
/// phrase cannot make a signed file look unsigned.
pub fn parse_display(stderr: &str) -> Display {
    let mut info = SigningInfo::default();
    let mut signed = false;
    let mut unsigned = false;
    let mut last_line = "";
    for raw in stderr.lines() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        last_line = line;
        if line.ends_with(NOT_SIGNED) {
            unsigned = true;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "Executable" => set_once(&mut info.executable, value),
            "Identifier" => {
                signed = true;
                set_once(&mut info.identifier, value);
            }
            "Format" => set_once(&mut info.format, value),
            "CodeDirectory v" => {
                signed = true;
                info.flags = info.flags.take().or_else(|| parse_flags(value));
            }
            "Platform identifier" if info.platform_identifier.is_none() => {
                info.platform_identifier = value.trim().parse().ok();
            }
            "Authority" => info.authorities.push(value.to_string()),
            "Signature" if value.trim() == "adhoc" => info.adhoc = true,
            "TeamIdentifier" => {
                let v = value.trim();
                if info.claimed_team_id.is_none() && !v.is_empty() && v != "not set" {
                    info.claimed_team_id = Some(v.to_string());
                }
            }
            "CDHash" => set_once(&mut info.cdhash, value),
            _ => {}
        }
    }
    if let Some(flags) = &info.flags
        && (flags.bits & CS_ADHOC != 0 || flags.names.iter().any(|n| n == "adhoc"))
    {
        info.adhoc = true;
    }
    if signed {
        Display::Signed(info)
    } else if unsigned {
        Display::Unsigned
    } else {
        let message: String = if last_line.is_empty() {
            "codesign printed nothing".to_string()
        } else {
            last_line.chars().take(MAX_MESSAGE).collect()
        };
        Display::Failed { message }
    }
}

/// The first occurrence wins: codesign prints each of these once, and the
/// only text before them that we do not control is the `Executable=` path.
fn set_once(slot: &mut Option<String>, value: &str) {
    if slot.is_none() {
        *slot = Some(value.to_string());
    }
}

/// `20500 size=111777 flags=0x10000(runtime) hashes=…` → bits and names.
fn parse_flags(code_directory: &str) -> Option<CodeFlags> {
    let field = code_directory
        .split_whitespace()
        .find_map(|t| t.strip_prefix("flags="))?;
    let (hex, rest) = match field.find('(') {
        Some(i) => (&field[..i], &field[i..]),
        None => (field, ""),
    };
    let bits = u32::from_str_radix(hex.strip_prefix("0x")?, 16).ok()?;
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or("");
    let names = inner
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty() && *n != "none")
        .map(str::to_string)
        .collect();
    Some(CodeFlags { bits, names })
}

/// A Team ID fit to be put inside a requirement string: exactly ten
/// characters from `[A-Z0-9]`, the form Apple issues. Anything else — a
/// quote, a space, `or anchor apple` — is refused at construction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TeamId(String);

impl TeamId {
    pub fn parse(value: &str) -> Result<TeamId, CodesignError> {
        let ok = value.len() == 10
            && value
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if ok {
            Ok(TeamId(value.to_string()))
        } else {
            Err(CodesignError::BadTeamId {
                value: value.chars().take(64).collect(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A designated-requirement test for `codesign --verify -R=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `anchor apple`: signed by Apple itself. Xcode satisfies it too, so
    /// a platform binary needs this *and* a `Platform identifier=` line.
    AppleAnchor,
    /// Signed through Apple's developer CA by the holder of this Team ID.
    Team(TeamId),
}

impl Requirement {
    /// The requirement-language text.
    pub fn text(&self) -> String {
        match self {
            Requirement::AppleAnchor => "anchor apple".to_string(),
            Requirement::Team(team) => format!(
                "anchor apple generic and certificate leaf[subject.OU] = \"{}\"",
                team.as_str()
            ),
        }
    }
}

/// Paths handed to codesign must be absolute (so they cannot be read as an
/// option) and free of control characters (so they cannot forge lines in
/// the output we parse).
fn checked_path(path: &Path) -> Result<OsString, CodesignError> {
    if !path.is_absolute() {
        return Err(CodesignError::RelativePath {
            path: path.to_path_buf(),
        });
    }
    let has_control = path
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .any(|b| b.is_ascii_control());
    if has_control {
        return Err(CodesignError::UnsafePath {
            path: path.to_path_buf(),
        });
    }
    Ok(path.as_os_str().to_os_string())
}

/// `codesign -dv --verbose=4 <path>`.
pub fn display_args(path: &Path) -> Result<Vec<OsString>, CodesignError> {
    Ok(vec![
        "-dv".into(),
        "--verbose=4".into(),
        checked_path(path)?,
    ])
}

/// `codesign --verify [-R=<requirement>] <path>`. The `=` right after `-R`
/// is codesign's marker for "requirement text follows" (without it the
/// argument is read as a file name).
pub fn verify_args(
    path: &Path,
    requirement: Option<&Requirement>,
) -> Result<Vec<OsString>, CodesignError> {
    let mut args: Vec<OsString> = vec!["--verify".into()];
    if let Some(req) = requirement {
        args.push(format!("-R={}", req.text()).into());
    }
    args.push(checked_path(path)?);
    Ok(args)
}

/// What a `codesign --verify` exit code means (codesign(1), EXIT STATUS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyOutcome {
    /// 0: signature valid and the requirement (if any) satisfied.
    Satisfied,
    /// 3: signature valid but the `-R` requirement not satisfied.
    RequirementNotMet,
    /// 1: the signature failed to verify.
    Invalid,
    /// Anything else: bad arguments (2), killed, timed out, not started.
    Inconclusive,
}

impl VerifyOutcome {
    pub fn from_exit_code(code: Option<i32>) -> VerifyOutcome {
        match code {
            Some(0) => VerifyOutcome::Satisfied,
            Some(3) => VerifyOutcome::RequirementNotMet,
            Some(1) => VerifyOutcome::Invalid,
            _ => VerifyOutcome::Inconclusive,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fixture(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/codesign")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn signed(name: &str) -> SigningInfo {
        match parse_display(&fixture(name)) {
            Display::Signed(info) => info,
            other => panic!("{name}: expected signed, got {other:?}"),
        }
    }

    #[test]
    fn developer_id() {
        let info = signed("developer_id.txt");
        assert_eq!(
            info.identifier.as_deref(),
            Some("app.backglance.Backglance")
        );
        assert_eq!(info.claimed_team_id.as_deref(), Some("TEAMID1234"));
        assert_eq!(info.platform_identifier, None);
        assert!(!info.adhoc);
        assert_eq!(
            info.authorities,
            vec![
                "Developer ID Application: Backglance (TEAMID1234)",
                "Developer ID Certification Authority",
                "Apple Root CA"
            ]
        );
        assert_eq!(
            info.flags,
            Some(CodeFlags {
                bits: 0x10000,
                names: vec!["runtime".into()]
            })
        );
    }

    #[test]
    fn chrome_flags_list() {
        let info = signed("chrome_developer_id.txt");
        assert_eq!(info.identifier.as_deref(), Some("com.google.Chrome"));
        assert_eq!(info.claimed_team_id.as_deref(), Some("EQHXZ8M8AV"));
        let flags = info.flags.unwrap();
        assert_eq!(flags.bits, 0x12a00);
        assert_eq!(
            flags.names,
            vec!["kill", "restrict", "library-validation", "runtime"]
        );
        assert_eq!(
            info.executable.as_deref(),
            Some("/Applications/Google Chrome.app/Contents/MacOS/Google Chrome")
        );
    }

    #[test]
    fn apple_platform_binaries() {
        for (name, id, platform) in [
            ("platform_textedit.txt", "com.apple.TextEdit", 13),
            ("platform_siri.txt", "com.apple.siri.launcher", 2),
        ] {
            let info = signed(name);
            assert_eq!(info.identifier.as_deref(), Some(id), "{name}");
            assert_eq!(info.platform_identifier, Some(platform), "{name}");
            assert_eq!(info.claimed_team_id, None, "{name}: `not set` is no team");
            assert_eq!(info.authorities[0], "Software Signing");
            assert_eq!(info.flags.as_ref().unwrap().names, Vec::<String>::new());
            assert!(!info.adhoc);
        }
    }

    #[test]
    fn xcode_software_signing_is_not_a_platform_binary() {
        let info = signed("xcode_software_signing.txt");
        assert_eq!(info.authorities[0], "Software Signing");
        assert_eq!(info.platform_identifier, None);
        assert_eq!(info.claimed_team_id.as_deref(), Some("59GAB85EFG"));
    }

    #[test]
    fn adhoc() {
        let info = signed("adhoc_linker_signed.txt");
        assert!(info.adhoc);
        assert_eq!(info.identifier.as_deref(), Some("foo"));
        assert!(info.authorities.is_empty());
        assert_eq!(
            info.cdhash.as_deref(),
            Some("9ac8f2b102c6f2b8dafc777574099063f0e209f9")
        );
        let claims = signed("adhoc_claims_team.txt");
        assert!(claims.adhoc);
        assert_eq!(claims.claimed_team_id.as_deref(), Some("EQHXZ8M8AV"));
        // The flag alone marks ad hoc even without the `Signature=` line.
        let only_flag = parse_display("Identifier=x\nCodeDirectory v=20400 flags=0x2(adhoc)\n");
        assert!(matches!(only_flag, Display::Signed(i) if i.adhoc));
    }

    #[test]
    fn unsigned_and_failures() {
        assert_eq!(parse_display(&fixture("unsigned.txt")), Display::Unsigned);
        assert_eq!(
            parse_display(&fixture("no_such_file.txt")),
            Display::Failed {
                message: "/Users/a/.gone/helper: No such file or directory".into()
            }
        );
        assert!(matches!(parse_display(""), Display::Failed { .. }));
    }

    #[test]
    fn a_path_naming_the_unsigned_phrase_does_not_unsign() {
        let out = "Executable=/tmp/a: code object is not signed at all\nIdentifier=x\n\
                   CodeDirectory v=20400 size=1 flags=0x0(none) hashes=1+0 location=embedded\n";
        assert!(matches!(parse_display(out), Display::Signed(_)));
    }

    #[test]
    fn team_id_accepts_only_apple_shape() {
        assert_eq!(TeamId::parse("TEAMID1234").unwrap().as_str(), "TEAMID1234");
        assert!(TeamId::parse("59GAB85EFG").is_ok());
        for bad in [
            "",
            "not set",
            "teamid1234",
            "TEAMID123",
            "TEAMID12345",
            "TEAMID123\"",
            "A\" or anchor apple or \"B",
            "X\") or (anchor apple",
            "ABCDEFGHI ",
            "ÄBCDEFGHIJ",
        ] {
            assert!(TeamId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn requirement_text_and_args() {
        let team = TeamId::parse("EQHXZ8M8AV").unwrap();
        let p = Path::new("/Applications/Google Chrome.app");
        assert_eq!(
            verify_args(p, Some(&Requirement::Team(team))).unwrap(),
            vec![
                OsString::from("--verify"),
                OsString::from(
                    "-R=anchor apple generic and certificate leaf[subject.OU] = \"EQHXZ8M8AV\""
                ),
                OsString::from("/Applications/Google Chrome.app"),
            ]
        );
        assert_eq!(
            verify_args(p, Some(&Requirement::AppleAnchor)).unwrap()[1],
            OsString::from("-R=anchor apple")
        );
        assert_eq!(verify_args(p, None).unwrap().len(), 2);
        assert_eq!(
            display_args(p).unwrap(),
            vec![
                OsString::from("-dv"),
                OsString::from("--verbose=4"),
                OsString::from("/Applications/Google Chrome.app")
            ]
        );
    }

    #[test]
    fn unsafe_paths_are_refused() {
        assert!(matches!(
            display_args(Path::new("-R=anchor apple")),
            Err(CodesignError::RelativePath { .. })
        ));
        assert!(matches!(
            verify_args(Path::new("/tmp/x\nPlatform identifier=1"), None),
            Err(CodesignError::UnsafePath { .. })
        ));
    }

    #[test]
    fn exit_codes() {
        use VerifyOutcome::*;
        assert_eq!(VerifyOutcome::from_exit_code(Some(0)), Satisfied);
        assert_eq!(VerifyOutcome::from_exit_code(Some(3)), RequirementNotMet);
        assert_eq!(VerifyOutcome::from_exit_code(Some(1)), Invalid);
        assert_eq!(VerifyOutcome::from_exit_code(Some(2)), Inconclusive);
        assert_eq!(VerifyOutcome::from_exit_code(None), Inconclusive);
    }

    proptest! {
        #[test]
        fn display_never_panics(s in "\\PC{0,400}") {
            let _ = parse_display(&s);
        }

        #[test]
        fn display_lines_never_panic(lines in proptest::collection::vec(
            prop_oneof![
                Just("Identifier=".to_string()),
                Just("CodeDirectory v=".to_string()),
                Just("TeamIdentifier=".to_string()),
                Just("Platform identifier=".to_string()),
                Just("Authority=".to_string()),
                "[ -~]{0,40}",
            ].prop_flat_map(|k| "[ -~]{0,40}".prop_map(move |v| format!("{k}{v}"))),
            0..20,
        )) {
            let _ = parse_display(&lines.join("\n"));
        }

        /// Whatever a binary claims, only the Apple shape reaches a
        /// requirement, and then the requirement has exactly two quotes.
        #[test]
        fn requirement_never_injected(claim in "\\PC{0,20}") {
            if let Ok(team) = TeamId::parse(&claim) {
                let text = Requirement::Team(team).text();
                prop_assert_eq!(text.matches('"').count(), 2);
                prop_assert!(claim.bytes().all(|b| b.is_ascii_alphanumeric()));
            }
        }
    }
}
