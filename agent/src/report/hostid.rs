//! Who this machine is, for the envelope of every event: its hostname and
//! a stable hardware identity — on a Mac the hardware UUID and serial
//! number, on Linux `/etc/machine-id`.
//!
//! The collector ties a host token to the hardware UUID (else the
//! machine-id, else the hostname), so these must be the same on every start
//! and never made up: a value that does not look right is left out rather
//! than passed on.
//!
//! On a Mac both come from `ioreg -rd1 -c IOPlatformExpertDevice`, whose
//! listing holds the lines (real format: tests/fixtures/ioreg/README.md)
//!
//! ```text
//!       "IOPlatformSerialNumber" = "C02XK1ABJGH5"
//!       "IOPlatformUUID" = "6F1E2C3A-8B4D-4E5F-9A0B-1C2D3E4F5A6B"
//! ```
//!
//! The choice is made at run time, not by `cfg` (docs/design.md §4): `ioreg` is
//! run when it exists at its fixed path, else `/etc/machine-id` is read. The
//! parsers are pure so they are tested on Linux with fixtures, and the
//! running of `ioreg` is tested against a stand-in script.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lenscap_events::Host;

use crate::command;

/// Where macOS keeps `ioreg`. A constant, not a config key: it is a system
/// tool in the sealed system volume, and a test points [`HostSources`]
/// elsewhere.
pub const IOREG: &str = "/usr/sbin/ioreg";
/// systemd's machine identity (machine-id(5)).
pub const MACHINE_ID: &str = "/etc/machine-id";

/// `ioreg` answers in a few milliseconds; a hung one must not hold up the
/// daemon's start.
const IOREG_TIMEOUT: Duration = Duration::from_secs(5);
/// The listing of one device is a few kilobytes.
const IOREG_MAX_OUTPUT: usize = 256 * 1024;
/// Real serials are 10–12 characters; anything much longer is not one.
const MAX_SERIAL_LEN: usize = 64;

/// What a Mac's platform device says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlatformIds {
    /// `IOPlatformUUID`, upper-case as ioreg prints it.
    pub hardware_uuid: Option<String>,
    /// `IOPlatformSerialNumber`; virtual machines may have none.
    pub serial: Option<String>,
}

/// Read `IOPlatformUUID` and `IOPlatformSerialNumber` from the output of
/// `ioreg -rd1 -c IOPlatformExpertDevice` (or `ioreg -l`: tree prefixes are
/// skipped). The first occurrence of each key counts — the platform device
/// is listed first. A UUID that is not UUID-shaped, or an empty serial, is
/// left out.
pub fn parse_ioreg(output: &str) -> PlatformIds {
    let mut ids = PlatformIds::default();
    for line in output.lines() {
        if ids.hardware_uuid.is_none()
            && let Some(v) = string_property(line, "IOPlatformUUID")
        {
            ids.hardware_uuid = Some(v).filter(|v| is_uuid(v)).map(str::to_string);
        }
        if ids.serial.is_none()
            && let Some(v) = string_property(line, "IOPlatformSerialNumber")
        {
            ids.serial = Some(v.trim()).filter(|v| is_serial(v)).map(str::to_string);
        }
    }
    ids
}

/// The value of `"key" = "value"` on one ioreg line, after any tree prefix
/// (`| |   `). `None` for another key or a non-string value (`<…>`, `(…)`).
fn string_property<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.trim_start_matches([' ', '\t', '|']);
    let rest = rest
        .strip_prefix('"')?
        .strip_prefix(key)?
        .strip_prefix('"')?;
    let rest = rest.trim_start().strip_prefix('=')?.trim_start();
    // ioreg does not escape quotes inside strings, so the value runs to the
    // last quote of the line.
    rest.trim_end().strip_prefix('"')?.strip_suffix('"')
}

/// 8-4-4-4-12 hex digits, either case.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Printable ASCII, not empty, not absurdly long. Virtual machines print
/// serials with spaces, so spaces are allowed inside.
fn is_serial(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_SERIAL_LEN && s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// The machine-id in a `/etc/machine-id` file: 32 hex digits (lower-cased).
/// `None` for anything else, e.g. `uninitialized` early in boot.
pub fn parse_machine_id(text: &str) -> Option<String> {
    let id = text.trim();
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_ascii_lowercase())
}

/// Where [`detect_with`] looks. [`Default`] is the real system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSources {
    /// `ioreg`; skipped when there is no file at this path (Linux).
    pub ioreg: PathBuf,
    pub machine_id: PathBuf,
}

impl Default for HostSources {
    fn default() -> HostSources {
        HostSources {
            ioreg: PathBuf::from(IOREG),
            machine_id: PathBuf::from(MACHINE_ID),
        }
    }
}

/// This machine's identity, from the real system.
pub fn detect() -> Host {
    detect_with(&HostSources::default())
}

/// This machine's identity: the hostname, plus `ioreg`'s hardware UUID and
/// serial when `sources.ioreg` exists, else the machine-id. Never fails: a
/// source that cannot be read is logged and left out, and the collector
/// then identifies the host by what remains.
pub fn detect_with(sources: &HostSources) -> Host {
    let mut host = Host {
        hostname: hostname(),
        hardware_uuid: None,
        serial: None,
        machine_id: None,
    };
    if sources.ioreg.exists() {
        let ids = run_ioreg(&sources.ioreg);
        host.hardware_uuid = ids.hardware_uuid;
        host.serial = ids.serial;
    }
    if host.hardware_uuid.is_none() {
        host.machine_id = read_machine_id(&sources.machine_id);
    }
    host
}

fn run_ioreg(program: &Path) -> PlatformIds {
    match command::run(
        program,
        &["-rd1", "-c", "IOPlatformExpertDevice"],
        IOREG_TIMEOUT,
        IOREG_MAX_OUTPUT,
    ) {
        Ok(out) if out.success() => {
            let ids = parse_ioreg(&out.stdout_lossy());
            if ids.hardware_uuid.is_none() {
                tracing::warn!(
                    program = %program.display(),
                    "ioreg listed no IOPlatformUUID; events identify this host by machine-id or hostname"
                );
            }
            ids
        }
        Ok(out) => {
            tracing::warn!(
                program = %program.display(),
                code = ?out.code,
                stderr = %out.stderr_lossy().trim(),
                "ioreg failed; events identify this host by machine-id or hostname"
            );
            PlatformIds::default()
        }
        Err(e) => {
            tracing::warn!(error = %e, "events identify this host by machine-id or hostname");
            PlatformIds::default()
        }
    }
}

fn read_machine_id(path: &Path) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let id = parse_machine_id(&text);
            if id.is_none() {
                tracing::warn!(path = %path.display(), "not a machine-id (32 hex digits); left out of events");
            }
            id
        }
        // Absent on a Mac and in minimal containers: not worth a warning.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read machine-id; left out of events");
            None
        }
    }
}

/// The hostname, or `unknown` — the envelope requires one, and a host
/// without a name is still better reported than not.
fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .map(|h| h.to_string_lossy().trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::fs::PermissionsExt;

    fn fixture(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/ioreg")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn intel_mac() {
        let ids = parse_ioreg(&fixture("intel-macbookpro12-1.txt"));
        assert_eq!(
            ids.hardware_uuid.as_deref(),
            Some("3B6C2A10-7D4E-4F21-9C85-0A1B2C3D4E5F")
        );
        assert_eq!(ids.serial.as_deref(), Some("C02XK1ABFVH8"));
    }

    #[test]
    fn apple_silicon_mac() {
        let ids = parse_ioreg(&fixture("apple-silicon-j314s.txt"));
        assert_eq!(
            ids.hardware_uuid.as_deref(),
            Some("6F1E2C3A-8B4D-4E5F-9A0B-1C2D3E4F5A6B")
        );
        assert_eq!(ids.serial.as_deref(), Some("C02XK1ABJGH5"));
    }

    #[test]
    fn vm_without_serial_keeps_uuid() {
        let ids = parse_ioreg(&fixture("vm-empty-serial.txt"));
        assert_eq!(
            ids.hardware_uuid.as_deref(),
            Some("564D8A1B-2C3D-4E5F-8A9B-0C1D2E3F4A5B")
        );
        assert_eq!(ids.serial, None);
    }

    #[test]
    fn tree_prefixes_are_skipped_and_first_wins() {
        let ids = parse_ioreg(&fixture("ioreg-l-excerpt.txt"));
        assert_eq!(
            ids.hardware_uuid.as_deref(),
            Some("0A1B2C3D-4E5F-6071-8293-A4B5C6D7E8F9")
        );
        assert_eq!(ids.serial.as_deref(), Some("C02XX0XXXX00"));
    }

    #[test]
    fn nothing_found_in_usage_text() {
        assert_eq!(
            parse_ioreg(&fixture("no-platform-device.txt")),
            PlatformIds::default()
        );
        assert_eq!(parse_ioreg(""), PlatformIds::default());
    }

    #[test]
    fn non_string_and_malformed_values_are_left_out() {
        let text = "\"IOPlatformUUID\" = <\"6F1E2C3A-8B4D-4E5F-9A0B-1C2D3E4F5A6B\">\n\
                    \"IOPlatformSerialNumber\" = \"bad\u{1}serial\"\n\
                    \"IOPlatformUUIDX\" = \"6F1E2C3A-8B4D-4E5F-9A0B-1C2D3E4F5A6B\"\n";
        assert_eq!(parse_ioreg(text), PlatformIds::default());
        let not_uuid = "\"IOPlatformUUID\" = \"not-a-uuid /Users/me\"";
        assert_eq!(parse_ioreg(not_uuid).hardware_uuid, None);
    }

    #[test]
    fn machine_id_must_be_32_hex() {
        assert_eq!(
            parse_machine_id("ABCDEF0123456789abcdef0123456789\n").as_deref(),
            Some("abcdef0123456789abcdef0123456789")
        );
        assert_eq!(parse_machine_id("uninitialized\n"), None);
        assert_eq!(parse_machine_id(""), None);
        assert_eq!(parse_machine_id("abcdef0123456789abcdef012345678"), None);
    }

    fn script(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("ioreg");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn detect_runs_ioreg_when_present() {
        let dir = tempfile::tempdir().unwrap();
        let listing = dir.path().join("listing.txt");
        std::fs::write(&listing, fixture("apple-silicon-j314s.txt")).unwrap();
        // The stand-in checks it was asked for the platform device.
        let ioreg = script(
            dir.path(),
            &format!(
                "[ \"$*\" = \"-rd1 -c IOPlatformExpertDevice\" ] || exit 64\ncat '{}'",
                listing.display()
            ),
        );
        let machine_id = dir.path().join("machine-id");
        std::fs::write(&machine_id, "0123456789abcdef0123456789abcdef\n").unwrap();
        let host = detect_with(&HostSources { ioreg, machine_id });
        assert!(!host.hostname.is_empty());
        assert_eq!(
            host.hardware_uuid.as_deref(),
            Some("6F1E2C3A-8B4D-4E5F-9A0B-1C2D3E4F5A6B")
        );
        assert_eq!(host.serial.as_deref(), Some("C02XK1ABJGH5"));
        // A Mac is identified by its hardware UUID; machine-id is not read.
        assert_eq!(host.machine_id, None);
        assert_eq!(host.identity().field, "hardware_uuid");
    }

    #[test]
    fn detect_falls_back_to_machine_id() {
        let dir = tempfile::tempdir().unwrap();
        let machine_id = dir.path().join("machine-id");
        std::fs::write(&machine_id, "0123456789abcdef0123456789abcdef\n").unwrap();
        // No ioreg at all (Linux).
        let host = detect_with(&HostSources {
            ioreg: dir.path().join("absent-ioreg"),
            machine_id: machine_id.clone(),
        });
        assert_eq!(
            host.machine_id.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(host.hardware_uuid, None);
        // An ioreg that fails counts as none.
        let failing = script(dir.path(), "echo boom >&2; exit 1");
        let host = detect_with(&HostSources {
            ioreg: failing,
            machine_id,
        });
        assert_eq!(host.identity().field, "machine_id");
    }

    #[test]
    fn detect_with_nothing_is_hostname_only() {
        let dir = tempfile::tempdir().unwrap();
        let host = detect_with(&HostSources {
            ioreg: dir.path().join("no-ioreg"),
            machine_id: dir.path().join("no-machine-id"),
        });
        assert_eq!(host.identity().field, "hostname");
        assert_eq!(host.identity().value, host.hostname);
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in "(?s).{0,400}") {
            let _ = parse_ioreg(&text);
            let _ = parse_machine_id(&text);
        }

        #[test]
        fn serial_round_trips_through_a_listing(
            serial in "[A-Z0-9]{8,14}",
            uuid in "[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}",
            indent in "[ |]{0,8}",
        ) {
            let text = format!(
                "+-o Mac  <class IOPlatformExpertDevice, id 0x1>\n{indent}{{\n\
                 {indent}  \"IOPlatformSerialNumber\" = \"{serial}\"\n\
                 {indent}  \"IOPlatformUUID\" = \"{uuid}\"\n{indent}}}\n"
            );
            let ids = parse_ioreg(&text);
            prop_assert_eq!(ids.serial, Some(serial));
            prop_assert_eq!(ids.hardware_uuid, Some(uuid));
        }
    }
}
