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

/// `proc_pidinfo` flavors read as bytes (xnu `bsd/sys/proc_info.h`).
pub const PROC_PIDTBSDINFO: i32 = 3;
/// Needs no privilege over the target: `proc_pidinfo` in xnu
/// `bsd/kern/proc_info.c` lists it with `NO_CHECK_SAME_USER` (with
/// `PROC_PIDT_SHORTBSDINFO` and `PROC_PIDPATHINFO`). Present since long
/// before macOS 13 (xnu-8792.41.9 defines it as 17).
pub const PROC_PIDUNIQIDENTIFIERINFO: i32 = 17;

/// The `arg` that makes `proc_pidinfo(PROC_PIDTBSDINFO |
/// PROC_PIDUNIQIDENTIFIERINFO)` also find zombies. xnu
/// `bsd/kern/proc_info.c`, `proc_pidinfo`: "Check if we need to look for
/// zombies" sets `findzomb` only when `arg` is non-zero, and then falls
/// back to `proc_find_zombref` when `proc_find` fails (a dead, unreaped
/// process). With `arg == 0` a zombie is simply ESRCH while `kill(pid, 0)`
/// still succeeds: the mismatch that made zombies look alive.
pub const FIND_ZOMBIES: u64 = 1;

/// `struct proc_bsdinfo` (xnu `bsd/sys/proc_info.h`). Never filled from the
/// kernel: it exists so the compiler computes offsets and proves the size
/// (`PROC_PIDTBSDINFO_SIZE`, 136 bytes); [`decode_bsdinfo`] reads the bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcBsdInfo {
    pub pbi_flags: u32,
    pub pbi_status: u32,
    pub pbi_xstatus: u32,
    pub pbi_pid: u32,
    pub pbi_ppid: u32,
    pub pbi_uid: u32,
    pub pbi_gid: u32,
    pub pbi_ruid: u32,
    pub pbi_rgid: u32,
    pub pbi_svuid: u32,
    pub pbi_svgid: u32,
    pub rfu_1: u32,
    pub pbi_comm: [u8; 16],
    pub pbi_name: [u8; 32],
    pub pbi_nfiles: u32,
    pub pbi_pgid: u32,
    pub pbi_pjobc: u32,
    pub e_tdev: u32,
    pub e_tpgid: u32,
    pub pbi_nice: i32,
    pub pbi_start_tvsec: u64,
    pub pbi_start_tvusec: u64,
}

/// `struct proc_uniqidentifierinfo` (xnu `bsd/sys/proc_info.h`; the field
/// after `p_idversion` is `p_reserve2` in xnu-8792, `p_orig_ppidversion`
/// later; same size).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcUniqIdentifierInfo {
    pub p_uuid: [u8; 16],
    pub p_uniqueid: u64,
    pub p_puniqueid: u64,
    pub p_idversion: i32,
    pub p_reserve2: u32,
    pub p_reserve3: u64,
    pub p_reserve4: u64,
}

pub const PROC_BSDINFO_SIZE: usize = std::mem::size_of::<ProcBsdInfo>();
pub const PROC_UNIQIDENTIFIERINFO_SIZE: usize = std::mem::size_of::<ProcUniqIdentifierInfo>();
const _: () = assert!(PROC_BSDINFO_SIZE == 136);
const _: () = assert!(PROC_UNIQIDENTIFIERINFO_SIZE == 56);

/// A `proc_pidinfo` answer too short for the struct asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "proc_pidinfo({what}) returned {got} bytes, expected {need}: this macOS may have changed the struct; update parse/proc_bsdinfo.rs"
)]
pub struct ShortInfo {
    pub what: &'static str,
    pub got: usize,
    pub need: usize,
}

/// The fields of `proc_bsdinfo` the agent uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BsdInfo {
    pub status: u32,
    pub pid: u32,
    pub ppid: u32,
    /// `pbi_ruid`, the real uid: whose process it is. Not `pbi_uid`, the
    /// effective uid: the reach of an action is who could signal the
    /// process, and kill(2) (xnu `cansignal`) compares the sender with the
    /// target's real and saved uids, never its effective one. A root
    /// daemon running as a user for a while (`seteuid`) is not that user's
    /// to kill; a setuid-root program the user started is.
    pub uid: u32,
    /// `pbi_comm`: the name cut to 16 bytes.
    pub comm: String,
    /// `pbi_name`: the full name when one is registered, else empty.
    pub name: String,
    /// Size of the descriptor table (`fd_nfiles`), not a count of open fds.
    pub nfiles: u32,
    pub e_tdev: u32,
    pub start_time: StartTime,
}

impl BsdInfo {
    /// Exited but not reaped: only reported when asked with [`FIND_ZOMBIES`].
    pub fn is_zombie(&self) -> bool {
        self.status == SZOMB
    }

    /// The best name: `pbi_name` when registered, else `pbi_comm`.
    pub fn best_name(&self) -> String {
        if self.name.is_empty() {
            self.comm.clone()
        } else {
            self.name.clone()
        }
    }
}

/// Read the bytes `proc_pidinfo(PROC_PIDTBSDINFO)` wrote. Longer buffers
/// are fine (a future kernel may append); shorter ones are an error.
pub fn decode_bsdinfo(buf: &[u8]) -> Result<BsdInfo, ShortInfo> {
    use std::mem::offset_of;
    if buf.len() < PROC_BSDINFO_SIZE {
        return Err(ShortInfo {
            what: "PROC_PIDTBSDINFO",
            got: buf.len(),
            need: PROC_BSDINFO_SIZE,
        });
    }
    let u32_at = |off: usize| u32::from_ne_bytes(bytes_at(buf, off));
    let u64_at = |off: usize| u64::from_ne_bytes(bytes_at(buf, off));
    let comm: [u8; 16] = bytes_at(buf, offset_of!(ProcBsdInfo, pbi_comm));
    let name: [u8; 32] = bytes_at(buf, offset_of!(ProcBsdInfo, pbi_name));
    Ok(BsdInfo {
        status: u32_at(offset_of!(ProcBsdInfo, pbi_status)),
        pid: u32_at(offset_of!(ProcBsdInfo, pbi_pid)),
        ppid: u32_at(offset_of!(ProcBsdInfo, pbi_ppid)),
        uid: u32_at(offset_of!(ProcBsdInfo, pbi_ruid)),
        comm: c_string(&comm),
        name: c_string(&name),
        nfiles: u32_at(offset_of!(ProcBsdInfo, pbi_nfiles)),
        e_tdev: u32_at(offset_of!(ProcBsdInfo, e_tdev)),
        start_time: start_time(
            u64_at(offset_of!(ProcBsdInfo, pbi_start_tvsec)),
            u64_at(offset_of!(ProcBsdInfo, pbi_start_tvusec)),
        ),
    })
}

/// A process version: `p_uniqueid` (new at every fork, never reused while
/// the machine runs) and `p_idversion` (new at every fork *and* exec: xnu
/// `bsd/kern/kern_exec.c` calls `proc_setpidversion(p,
/// OSIncrementAtomic(&nextpidversion))`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcVersion {
    pub uniqueid: u64,
    pub idversion: i32,
}

/// Read the bytes `proc_pidinfo(PROC_PIDUNIQIDENTIFIERINFO)` wrote.
pub fn decode_uniqid(buf: &[u8]) -> Result<ProcVersion, ShortInfo> {
    use std::mem::offset_of;
    if buf.len() < PROC_UNIQIDENTIFIERINFO_SIZE {
        return Err(ShortInfo {
            what: "PROC_PIDUNIQIDENTIFIERINFO",
            got: buf.len(),
            need: PROC_UNIQIDENTIFIERINFO_SIZE,
        });
    }
    Ok(ProcVersion {
        uniqueid: u64::from_ne_bytes(bytes_at(
            buf,
            offset_of!(ProcUniqIdentifierInfo, p_uniqueid),
        )),
        idversion: i32::from_ne_bytes(bytes_at(
            buf,
            offset_of!(ProcUniqIdentifierInfo, p_idversion),
        )),
    })
}

/// `N` bytes at `off`; zeros if out of range (callers check the length
/// first, so that never happens, but no input can make this panic).
fn bytes_at<const N: usize>(buf: &[u8], off: usize) -> [u8; N] {
    buf.get(off..off + N)
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0; N])
}

/// A process identity from `proc_bsdinfo` plus what was read beside it.
/// A zombie keeps its PID and start time but the kernel has let go of its
/// image: its identity has no path and no arguments, which is how every
/// caller (`act::kill`'s `exited`, the pre-signal check) recognises a
/// process that has exited — the same shape Linux reports.
pub fn identity(
    info: &BsdInfo,
    path: Option<PathBuf>,
    args: Vec<String>,
    user: Option<String>,
) -> ProcessIdentity {
    let zombie = info.is_zombie();
    let path = path.filter(|_| !zombie);
    ProcessIdentity {
        pid: info.pid,
        ppid: info.ppid,
        start_time: info.start_time,
        bundle: path.as_deref().and_then(crate::model::enclosing_bundle),
        path,
        args: if zombie { Vec::new() } else { args },
        uid: info.uid,
        user,
        name: info.best_name(),
        interactive: has_controlling_tty(info.e_tdev),
        signature: crate::model::Signature::unknown(),
    }
}

/// What the pre-signal reads say about the process version. `before` is
/// read first, then `proc_bsdinfo` and the path, then `after`: only when
/// both agree were the start time and path read from that one process
/// version, so the version can stand for the verified identity.
/// `None`: the PID changed hands (or exec'd) during the reads.
pub fn stable_version(
    before: Option<ProcVersion>,
    after: Option<ProcVersion>,
) -> Option<ProcVersion> {
    match (before, after) {
        (Some(b), Some(a)) if a == b => Some(a),
        _ => None,
    }
}

/// `audit_token_t` (`unsigned int val[8]`) naming one process version, for
/// `proc_signal_with_audittoken`. The kernel reads only `val[5]` (pid,
/// `get_audit_token_pid`, xnu `bsd/kern/kern_prot.c`) and `val[7]` (pid
/// version, compared in `proc_find_audit_token`, xnu
/// `bsd/kern/kern_proc.c`) to find the target; a token whose version is
/// stale finds nothing and the call fails with ESRCH, atomically with the
/// signal (`psignal_by_audit_token`, xnu `bsd/kern/proc_info.c`).
pub fn audit_token_for(pid: u32, version: ProcVersion) -> [u32; 8] {
    let mut val = [0u32; 8];
    val[5] = pid;
    val[7] = u32::from_ne_bytes(version.idversion.to_ne_bytes());
    val
}

/// After a version-checked signal failed with ESRCH, what became of the
/// process: gone, or still there under a new version (it exec'd, or the
/// PID was reused) — the latter is `IdentityChanged`, which `act::kill`
/// follows through an exec by re-reading the identity.
pub fn after_stale_token(now: Option<ProcVersion>) -> SignalOutcome {
    match now {
        None => SignalOutcome::Gone,
        Some(_) => SignalOutcome::IdentityChanged,
    }
}

/// A `proc_bsdinfo` as the kernel writes it, for tests here and in
/// `act::kill`: every field at its xnu offset, native byte order.
#[cfg(test)]
pub(crate) fn fixture_bsdinfo(pid: u32, ppid: u32, status: u32, comm: &str, tvsec: u64) -> Vec<u8> {
    use std::mem::offset_of;
    let mut b = vec![0u8; PROC_BSDINFO_SIZE];
    let mut put = |off: usize, bytes: &[u8]| b[off..off + bytes.len()].copy_from_slice(bytes);
    put(offset_of!(ProcBsdInfo, pbi_status), &status.to_ne_bytes());
    put(offset_of!(ProcBsdInfo, pbi_pid), &pid.to_ne_bytes());
    put(offset_of!(ProcBsdInfo, pbi_ppid), &ppid.to_ne_bytes());
    put(offset_of!(ProcBsdInfo, pbi_uid), &501u32.to_ne_bytes());
    put(offset_of!(ProcBsdInfo, pbi_ruid), &501u32.to_ne_bytes());
    put(
        offset_of!(ProcBsdInfo, pbi_comm),
        &comm.as_bytes()[..comm.len().min(15)],
    );
    put(offset_of!(ProcBsdInfo, pbi_nfiles), &256u32.to_ne_bytes());
    put(offset_of!(ProcBsdInfo, e_tdev), &NODEV.to_ne_bytes());
    put(
        offset_of!(ProcBsdInfo, pbi_start_tvsec),
        &tvsec.to_ne_bytes(),
    );
    put(
        offset_of!(ProcBsdInfo, pbi_start_tvusec),
        &7u64.to_ne_bytes(),
    );
    b
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

    #[test]
    fn the_uid_is_the_real_one_not_the_effective_one() {
        // pbi_uid (effective) at byte 20, pbi_ruid (real) at 28, by hand
        // from xnu bsd/sys/proc_info.h.
        let with = |euid: u32, ruid: u32| {
            let mut b = fixture_bsdinfo(4242, 1, 2, "helper", 1_700_000_000);
            b[20..24].copy_from_slice(&euid.to_ne_bytes());
            b[28..32].copy_from_slice(&ruid.to_ne_bytes());
            decode_bsdinfo(&b).unwrap().uid
        };
        // A root daemon acting as 501 for a while is root's: 501 could
        // not signal it, so nothing 501's plist claims may reach it.
        assert_eq!(with(501, 0), 0);
        // A setuid-root program 501 started is 501's: 501 may signal it.
        assert_eq!(with(0, 501), 501);
    }

    #[test]
    fn bsdinfo_bytes_decode_at_xnu_offsets() {
        // Offsets by hand from xnu bsd/sys/proc_info.h, so a mistake in the
        // mirror struct cannot hide behind offset_of!.
        let b = fixture_bsdinfo(4242, 1, 2, "ZoomOpener", 1_700_000_000);
        assert_eq!(&b[12..16], &4242u32.to_ne_bytes()); // pbi_pid
        assert_eq!(&b[48..58], b"ZoomOpener"); // pbi_comm
        assert_eq!(&b[120..128], &1_700_000_000u64.to_ne_bytes()); // pbi_start_tvsec
        let info = decode_bsdinfo(&b).unwrap();
        assert_eq!(
            (info.pid, info.ppid, info.uid, info.status),
            (4242, 1, 501, 2)
        );
        assert_eq!(&b[28..32], &501u32.to_ne_bytes()); // pbi_ruid
        assert_eq!(info.best_name(), "ZoomOpener");
        assert_eq!(info.nfiles, 256);
        assert_eq!(info.start_time, start_time(1_700_000_000, 7));
        assert!(!info.is_zombie());
        // A longer answer (a future kernel appending fields) still decodes;
        // a short one is an error, never a read past the end.
        let mut long = b.clone();
        long.extend_from_slice(&[0xff; 64]);
        assert_eq!(decode_bsdinfo(&long).unwrap(), info);
        assert_eq!(
            decode_bsdinfo(&b[..135]),
            Err(ShortInfo {
                what: "PROC_PIDTBSDINFO",
                got: 135,
                need: 136
            })
        );
    }

    #[test]
    fn a_zombie_bsdinfo_is_an_exited_identity() {
        // pbi_status 5 (SZOMB): what proc_pidinfo reports for a dead,
        // unreaped helper when asked with FIND_ZOMBIES.
        let info =
            decode_bsdinfo(&fixture_bsdinfo(4242, 1, SZOMB, "helper", 1_700_000_000)).unwrap();
        assert!(info.is_zombie());
        let id = identity(
            &info,
            Some("/Users/a/.x/helper".into()),
            vec!["helper".into()],
            None,
        );
        assert_eq!(id.path, None, "a zombie has no executable");
        assert!(id.args.is_empty());
        assert_eq!(id.start_time, info.start_time);
        let observed = Observed {
            start_time: id.start_time,
            path: None,
            status: info.status,
        };
        let mut expected = id.clone();
        expected.path = Some("/Users/a/.x/helper".into());
        assert_eq!(
            pre_signal_check(&expected, Some(&observed)),
            Some(SignalOutcome::Gone)
        );
        let live = decode_bsdinfo(&fixture_bsdinfo(4242, 1, 2, "helper", 1_700_000_000)).unwrap();
        let id = identity(
            &live,
            Some("/Users/a/.x/helper".into()),
            vec!["helper".into()],
            None,
        );
        assert_eq!(
            id.path.as_deref(),
            Some(std::path::Path::new("/Users/a/.x/helper"))
        );
        assert_eq!(id.args, vec!["helper".to_string()]);
    }

    #[test]
    fn process_version_and_audit_token() {
        let mut b = vec![0u8; PROC_UNIQIDENTIFIERINFO_SIZE];
        b[16..24].copy_from_slice(&0x1234_5678_9abc_u64.to_ne_bytes()); // p_uniqueid
        b[32..36].copy_from_slice(&(-7i32).to_ne_bytes()); // p_idversion
        let v = decode_uniqid(&b).unwrap();
        assert_eq!(
            v,
            ProcVersion {
                uniqueid: 0x1234_5678_9abc,
                idversion: -7
            }
        );
        assert!(decode_uniqid(&b[..55]).is_err());
        let token = audit_token_for(4242, v);
        assert_eq!(token[5], 4242);
        assert_eq!(token[7], u32::from_ne_bytes((-7i32).to_ne_bytes()));
        assert_eq!(token.iter().filter(|&&w| w != 0).count(), 2);

        let exec = ProcVersion { idversion: 8, ..v };
        assert_eq!(stable_version(Some(v), Some(v)), Some(v));
        assert_eq!(
            stable_version(Some(v), Some(exec)),
            None,
            "exec'd between reads"
        );
        assert_eq!(stable_version(None, Some(v)), None);
        assert_eq!(after_stale_token(None), SignalOutcome::Gone);
        assert_eq!(
            after_stale_token(Some(exec)),
            SignalOutcome::IdentityChanged
        );
    }
}
