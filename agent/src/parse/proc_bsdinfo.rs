//! Process facts from libproc's `proc_bsdinfo` (`PROC_PIDTBSDINFO`, XNU
//! `bsd/sys/proc_info.h`) turned into model data, and the identity check
//! the macOS platform makes right before it signals a process.
//!
//! Pure, so the rules are tested here on Linux: `platform/macos.rs` only
//! reads the struct and calls these.

use std::path::PathBuf;

use crate::model::{ProcessIdentity, SignalOutcome, StartTime};

/// `e_tdev` when there is no controlling terminal (`NODEV`, `(dev_t)-1`
/// stored in a `uint32_t`).
pub const NODEV: u32 = u32::MAX;

/// `pbi_start_tvsec` / `pbi_start_tvusec` → [`StartTime`] (µs resolution).
/// Saturates instead of overflowing on nonsense values.
pub fn start_time(tv_sec: u64, tv_usec: u64) -> StartTime {
    StartTime {
        unix_us: tv_sec.saturating_mul(1_000_000).saturating_add(tv_usec),
        resolution_us: 1,
    }
}

/// A process has a controlling terminal — a person started it from a
/// shell — when `e_tdev` is a device rather than `NODEV`.
pub fn has_controlling_tty(e_tdev: u32) -> bool {
    e_tdev != NODEV
}

/// A fixed-size C `char` array (`pbi_comm`, `pbi_name`) up to its first
/// NUL. Takes bytes so callers can convert whatever `c_char` is.
pub fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// `pbi_status` of a process that exited but is not yet reaped (XNU `SZOMB`).
pub const SZOMB: u32 = 5;

/// The process holding a PID, as re-read right before signalling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub start_time: StartTime,
    pub path: Option<PathBuf>,
    /// `pbi_status`.
    pub status: u32,
}

/// Whether `expected` still holds its PID. `None`: it does, send the
/// signal. `Some(Gone)`: nothing (or only a zombie) has the PID.
/// `Some(IdentityChanged)`: another process has it — same rule as Linux:
/// the start time (µs) and the executable path must both be unchanged.
pub fn pre_signal_check(
    expected: &ProcessIdentity,
    now: Option<&Observed>,
) -> Option<SignalOutcome> {
    let Some(now) = now.filter(|n| n.status != SZOMB) else {
        return Some(SignalOutcome::Gone);
    };
    if now.start_time != expected.start_time || now.path != expected.path {
        return Some(SignalOutcome::IdentityChanged);
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn small_conversions() {
        let t = start_time(1_700_000_000, 123_456);
        assert_eq!(t.unix_us, 1_700_000_000_123_456);
        assert_eq!(t.resolution_us, 1);
        assert_eq!(start_time(u64::MAX, 5).unix_us, u64::MAX);
        assert!(!has_controlling_tty(NODEV));
        assert!(has_controlling_tty(0x1000003));
        assert_eq!(c_string(b"zoom.us\0\0garbage"), "zoom.us");
        assert_eq!(c_string(b"sixteen-chars-xx"), "sixteen-chars-xx");
    }

    #[test]
    fn pre_signal_identity() {
        use crate::model::Signature;
        let expected = ProcessIdentity {
            pid: 4242,
            ppid: 1,
            start_time: start_time(1_700_000_000, 5),
            path: Some(PathBuf::from("/Users/a/.zoomus/ZoomOpener")),
            args: vec![],
            uid: 501,
            user: None,
            name: "ZoomOpener".into(),
            interactive: false,
            bundle: None,
            signature: Signature::unknown(),
        };
        let same = Observed {
            start_time: expected.start_time,
            path: expected.path.clone(),
            status: 2,
        };
        assert_eq!(pre_signal_check(&expected, Some(&same)), None);
        assert_eq!(pre_signal_check(&expected, None), Some(SignalOutcome::Gone));
        let zombie = Observed {
            status: SZOMB,
            ..same.clone()
        };
        assert_eq!(
            pre_signal_check(&expected, Some(&zombie)),
            Some(SignalOutcome::Gone)
        );
        // One microsecond later: a different process that reused the PID.
        let reused = Observed {
            start_time: start_time(1_700_000_000, 6),
            ..same.clone()
        };
        assert_eq!(
            pre_signal_check(&expected, Some(&reused)),
            Some(SignalOutcome::IdentityChanged)
        );
        let other_exe = Observed {
            path: Some("/bin/sh".into()),
            ..same
        };
        assert_eq!(
            pre_signal_check(&expected, Some(&other_exe)),
            Some(SignalOutcome::IdentityChanged)
        );
    }
}
