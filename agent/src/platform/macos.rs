//! The macOS platform: libproc for sockets and processes, `sysctl` for
//! arguments, and the outside tools (`codesign`, `sfltool`, `sw_vers`) for
//! the rest.
//!
//! Nothing here can run in CI (there is no Mac); it is only type-checked
//! for `aarch64-apple-darwin` and `x86_64-apple-darwin`. So this file is
//! kept thin: it makes the system calls and hands the bytes to the pure,
//! fixture-tested modules that decide — `parse::libproc_abi` (socket
//! buffers, grouping into listeners, established connections to chosen
//! ports), `parse::pcblist` (`net.inet.tcp.pcblist_n`, the per-sweep
//! change detector), `parse::proc_bsdinfo` (start time, terminal, the pre-signal
//! identity rule), `parse::procargs` (`KERN_PROCARGS2`), `parse::sw_vers`,
//! and `platform::signing`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use libproc::proc_pid::pidpath;
use libproc::processes::{ProcFilter, pids_by_type};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, Uid, User};

use crate::command;
use crate::model::{HostInfo, Listener, PersistenceItem, ProcessIdentity, Signature, StartTime};
use crate::parse::libproc_abi::{
    DecodedConnection, DecodedListener, PROC_PIDFDSOCKETINFO, PROX_FDTYPE_SOCKET,
    decode_tcp_connection, decode_tcp_listener, established_to_ports, group_listeners,
};
use crate::parse::proc_bsdinfo::{self, Observed};
use crate::parse::{procargs, sw_vers};
use crate::platform::{CameraSource, Established, Platform, PlatformError, SignalOutcome, Tools};
use crate::platform::{login_items, signing};

/// `codesign -dv` only reads the signature blob: quick.
const CODESIGN_TIMEOUT: Duration = Duration::from_secs(10);
/// `codesign --verify` hashes every page of the executable (and, for a
/// bundle path, its resources): a large app takes well over 10 s on a
/// busy Mac. An inconclusive run is retried with backoff by the
/// signature cache, so a long limit costs one wait, not one per sweep.
const CODESIGN_VERIFY_TIMEOUT: Duration = Duration::from_secs(60);
/// `sfltool dumpbtm` reads a database and can be slow on a busy Mac.
const SFLTOOL_TIMEOUT: Duration = Duration::from_secs(30);
const SW_VERS: &str = "/usr/bin/sw_vers";
const SW_VERS_TIMEOUT: Duration = Duration::from_secs(5);
/// `launchctl asuser … osascript`: a notification either shows at once or not.
/// `KERN_ARGMAX` is 1 MiB on current macOS; refuse anything absurd.
const MAX_PROCARGS: usize = 16 * 1024 * 1024;

/// The TLS stack of the collector and update clients: Security.framework
/// through native-tls, so the System keychain, where MDM installs a
/// fleet's CA, is trusted (agent/Cargo.toml).
pub const TLS_PROVIDER: ureq::tls::TlsProvider = ureq::tls::TlsProvider::NativeTls;

/// [`std::thread::Scope::spawn`]: macOS has no CPU affinity to set
/// (`thread_policy_set` affinity tags are hints, and Apple silicon ignores
/// them), and whether its scheduler queues a new thread behind a busy
/// spawner, as Linux's may (`linux/cpus.rs`), was not measured: no Mac here.
pub fn spawn_beside<'scope, T, F>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    f: F,
) -> std::thread::ScopedJoinHandle<'scope, T>
where
    F: FnOnce() -> T + Send + 'scope,
    T: Send + 'scope,
{
    scope.spawn(f)
}

/// The macOS implementation of [`Platform`].
#[derive(Debug)]
pub struct Native {
    tools: Tools,
    /// uid → user name; directory services lookups can be slow.
    users: Mutex<HashMap<u32, Option<String>>>,
    /// The OS version does not change while the agent runs (an update
    /// reboots), so `sw_vers` runs once.
    os_version: OnceLock<Option<String>>,
    /// The `pcblist_n` buffer the per-sweep read reuses.
    pcblist: Mutex<Vec<u8>>,
}

impl Native {
    pub fn new(tools: Tools) -> Native {
        Native {
            tools,
            users: Mutex::new(HashMap::new()),
            os_version: OnceLock::new(),
            pcblist: Mutex::new(Vec::new()),
        }
    }

    /// A process's start time, microsecond resolution
    /// (`pbi_start_tvsec/usec`). Gone → `NoSuchProcess`.
    pub fn process_start_time(&self, pid: u32) -> Result<StartTime, PlatformError> {
        Ok(bsd_info(pid)?.start_time)
    }

    /// Direct children of `pid` (`proc_listpids(PROC_PPID_ONLY)`). errno is
    /// cleared before the call, so a childless process (0 bytes, errno
    /// untouched) is an empty list and not a stale error
    /// ([`crate::parse::libproc_abi::libproc_answer`]).
    pub fn child_pids(&self, pid: u32) -> Result<Vec<u32>, PlatformError> {
        let failed = |errno: i32| PlatformError::Command {
            program: PathBuf::from("proc_listpids(PROC_PPID_ONLY)"),
            detail: Errno::from_raw(errno).to_string(),
        };
        let mut slots: usize = 64;
        loop {
            let mut buf = vec![0i32; slots];
            let len = libc::c_int::try_from(slots * std::mem::size_of::<i32>())
                .map_err(|_| failed(libc::EINVAL))?;
            let answer = libproc_call(|| {
                // SAFETY: `buf` is a live, writable allocation of `len`
                // bytes; the kernel writes at most `len` bytes of pids.
                unsafe { libc::proc_listpids(PROC_PPID_ONLY, pid, buf.as_mut_ptr().cast(), len) }
            });
            match answer {
                crate::parse::libproc_abi::LibprocAnswer::Bytes(n) => {
                    let count = n / std::mem::size_of::<i32>();
                    // A full buffer may be a cut list: ask again with more room.
                    if count >= slots && slots < crate::parse::libproc_abi::MAX_FD_SLOTS {
                        slots *= 2;
                        continue;
                    }
                    buf.truncate(count.min(slots));
                    return Ok(buf
                        .into_iter()
                        .filter_map(|p| u32::try_from(p).ok())
                        .filter(|&p| p > 0)
                        .collect());
                }
                crate::parse::libproc_abi::LibprocAnswer::Failed { errno } => {
                    return Err(failed(errno));
                }
            }
        }
    }

    /// Send `signal` (e.g. `libc::SIGTERM`) to `expected.pid` only if that
    /// PID still has `expected.start_time` and `expected.path`.
    ///
    /// The check is tied to a process *version* (`p_uniqueid` and
    /// `p_idversion`, `PROC_PIDUNIQIDENTIFIERINFO`, which needs no privilege
    /// over the target): the version is read before and after the start
    /// time and path, and only if both reads agree do start time and path
    /// belong to that version. Then:
    /// - where libproc exports `proc_signal_with_audittoken` (xnu-11215 /
    ///   macOS 15 and later; absent from xnu-8792 and xnu-10002, macOS
    ///   13 and 14, so it is looked up at run time), the signal goes to an
    ///   audit token naming that version, and the kernel refuses it
    ///   atomically (ESRCH) if the PID now holds another version
    ///   (`psignal_by_audit_token`, xnu `bsd/kern/proc_info.c`);
    /// - otherwise the version is read once more right before `kill(2)`.
    ///   A window of a few microseconds remains there: a stranger would
    ///   need the PID space to cycle through it.
    ///
    /// A zombie is `Gone`: it has exited, only its parent has not reaped it.
    pub fn signal_verified(
        &self,
        expected: &ProcessIdentity,
        signal: i32,
    ) -> Result<SignalOutcome, PlatformError> {
        let sig = Signal::try_from(signal).map_err(|_| PlatformError::Malformed {
            what: "signal number",
            path: PathBuf::from(format!("pid {}", expected.pid)),
            detail: format!("{signal} is not a signal macOS knows"),
        })?;
        let Some(pid) = i32::try_from(expected.pid).ok().filter(|&p| p > 0) else {
            return Ok(SignalOutcome::Gone);
        };
        let before = proc_version(pid);
        let observed = match bsd_info(expected.pid) {
            Ok(info) => Some(Observed {
                start_time: info.start_time,
                path: if info.is_zombie() {
                    None
                } else {
                    pidpath(pid).ok().map(PathBuf::from)
                },
                status: info.status,
            }),
            Err(PlatformError::NoSuchProcess { .. }) => None,
            Err(e) => return Err(e),
        };
        if let Some(outcome) = proc_bsdinfo::pre_signal_check(expected, observed.as_ref()) {
            return Ok(outcome);
        }
        let after = proc_version(pid);
        let Some(version) = proc_bsdinfo::stable_version(before, after) else {
            // The PID changed hands (or exec'd) while it was read: what was
            // verified may not be what holds it now.
            return Ok(proc_bsdinfo::after_stale_token(after));
        };
        if let Some(signal_with_token) = signal_with_audittoken() {
            let mut token = proc_bsdinfo::audit_token_for(expected.pid, version);
            // SAFETY: the symbol is libproc's `int
            // proc_signal_with_audittoken(audit_token_t *, int)`
            // (libsyscall/wrappers/libproc/libproc.h); `audit_token_t` is
            // `unsigned int val[8]`, which `token` is, and the kernel only
            // reads it (copyin of exactly sizeof(audit_token_t)).
            let rc = unsafe { signal_with_token(token.as_mut_ptr(), signal) };
            return match rc {
                0 => Ok(SignalOutcome::Sent),
                libc::ESRCH => Ok(proc_bsdinfo::after_stale_token(proc_version(pid))),
                errno => Err(PlatformError::io(
                    format!("proc_signal_with_audittoken({pid}, {sig})"),
                    std::io::Error::from_raw_os_error(errno),
                )),
            };
        }
        let now = proc_version(pid);
        if now != Some(version) {
            return Ok(proc_bsdinfo::after_stale_token(now));
        }
        match kill(Pid::from_raw(pid), sig) {
            Ok(()) => Ok(SignalOutcome::Sent),
            Err(Errno::ESRCH) => Ok(SignalOutcome::Gone),
            Err(e) => Err(PlatformError::io(format!("kill({pid}, {sig})"), e.into())),
        }
    }

    fn user_name(&self, uid: u32) -> Option<String> {
        // A poisoned lock only means another thread panicked mid-insert;
        // the map is still a valid cache.
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users
            .entry(uid)
            .or_insert_with(|| {
                User::from_uid(Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            })
            .clone()
    }
}

/// `proc_listpids` type: processes whose parent is `typeinfo`
/// (xnu `bsd/sys/proc_info.h`).
const PROC_PPID_ONLY: u32 = 6;

/// Run a libproc call that returns a byte count and 0 on error (with
/// errno set, libsyscall/wrappers/libproc/libproc.c): errno is cleared
/// first so a 0 with errno untouched reads as a real empty answer.
fn libproc_call(call: impl FnOnce() -> libc::c_int) -> crate::parse::libproc_abi::LibprocAnswer {
    Errno::clear();
    let ret = call();
    crate::parse::libproc_abi::libproc_answer(ret, Errno::last_raw())
}

/// `proc_pidinfo(pid, flavor, arg)` into `buf`.
fn pidinfo_bytes(
    pid: libc::c_int,
    flavor: libc::c_int,
    arg: u64,
    buf: &mut [u8],
) -> crate::parse::libproc_abi::LibprocAnswer {
    let Ok(len) = libc::c_int::try_from(buf.len()) else {
        return crate::parse::libproc_abi::LibprocAnswer::Failed {
            errno: libc::EINVAL,
        };
    };
    libproc_call(|| {
        // SAFETY: `buf` is a live, writable allocation of `len` bytes and
        // proc_pidinfo writes at most `len` bytes into it; the bytes are
        // then decoded as a plain slice, never transmuted.
        unsafe { libc::proc_pidinfo(pid, flavor, arg, buf.as_mut_ptr().cast(), len) }
    })
}

/// `proc_pidinfo(PROC_PIDTBSDINFO)` asked with `FIND_ZOMBIES`, so a dead,
/// unreaped process is reported (with `pbi_status == SZOMB`) instead of
/// failing while `kill(pid, 0)` still succeeds. ESRCH: no process at all.
fn bsd_info(pid: u32) -> Result<proc_bsdinfo::BsdInfo, PlatformError> {
    let gone = PlatformError::NoSuchProcess { pid };
    let Some(ipid) = i32::try_from(pid).ok().filter(|&p| p > 0) else {
        return Err(gone);
    };
    let mut buf = [0u8; proc_bsdinfo::PROC_BSDINFO_SIZE];
    let what = || format!("proc_pidinfo({pid}, PROC_PIDTBSDINFO)");
    match pidinfo_bytes(
        ipid,
        proc_bsdinfo::PROC_PIDTBSDINFO,
        proc_bsdinfo::FIND_ZOMBIES,
        &mut buf,
    ) {
        crate::parse::libproc_abi::LibprocAnswer::Bytes(n) => {
            proc_bsdinfo::decode_bsdinfo(&buf[..n.min(buf.len())]).map_err(|e| {
                PlatformError::Malformed {
                    what: "proc_bsdinfo",
                    path: PathBuf::from(what()),
                    detail: e.to_string(),
                }
            })
        }
        crate::parse::libproc_abi::LibprocAnswer::Failed { errno: libc::ESRCH } => Err(gone),
        crate::parse::libproc_abi::LibprocAnswer::Failed { errno } => Err(PlatformError::io(
            what(),
            std::io::Error::from_raw_os_error(errno),
        )),
    }
}

/// The version of the live process holding `pid` (`None`: none, or a
/// zombie — asked without `FIND_ZOMBIES`).
fn proc_version(pid: libc::c_int) -> Option<proc_bsdinfo::ProcVersion> {
    let mut buf = [0u8; proc_bsdinfo::PROC_UNIQIDENTIFIERINFO_SIZE];
    match pidinfo_bytes(pid, proc_bsdinfo::PROC_PIDUNIQIDENTIFIERINFO, 0, &mut buf) {
        crate::parse::libproc_abi::LibprocAnswer::Bytes(n) => {
            proc_bsdinfo::decode_uniqid(&buf[..n.min(buf.len())]).ok()
        }
        crate::parse::libproc_abi::LibprocAnswer::Failed { .. } => None,
    }
}

type SignalWithAuditToken = unsafe extern "C" fn(*mut u32, libc::c_int) -> libc::c_int;

/// libproc's `proc_signal_with_audittoken`, when this macOS has it
/// (exported from xnu-11215, macOS 15; not in the macOS 13/14 libproc, so
/// it is looked up rather than linked).
fn signal_with_audittoken() -> Option<SignalWithAuditToken> {
    static FOUND: OnceLock<Option<SignalWithAuditToken>> = OnceLock::new();
    *FOUND.get_or_init(|| {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only
        // looks the symbol up.
        let ptr =
            unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"proc_signal_with_audittoken".as_ptr()) };
        // Said once, so a first run on a Mac shows which path signals take.
        tracing::info!(
            available = !ptr.is_null(),
            "proc_signal_with_audittoken: {}",
            if ptr.is_null() {
                "absent; signals re-check the process version right before kill(2)"
            } else {
                "present; the kernel checks the process version with each signal"
            }
        );
        if ptr.is_null() {
            return None;
        }
        // SAFETY: the symbol, when present, is the C function
        // `int proc_signal_with_audittoken(audit_token_t *, int)`.
        Some(unsafe { std::mem::transmute::<*mut libc::c_void, SignalWithAuditToken>(ptr) })
    })
}

/// Every TCP socket `pid` holds, decoded as a possible listener.
fn tcp_sockets(
    pid: u32,
    tally: &mut crate::parse::libproc_abi::SocketTally,
) -> Vec<(u32, DecodedListener)> {
    let mut out = Vec::new();
    each_socket(pid, tally, |fd, info| {
        decode_tcp_listener(info)
            .map(|socket| out.extend(socket.map(|s| (pid, s))))
            .inspect_err(|err| tracing::debug!(%err, pid, fd, "socket skipped"))
    });
    out
}

/// Every TCP socket `pid` holds, decoded as a connection.
fn tcp_connections(
    pid: u32,
    tally: &mut crate::parse::libproc_abi::SocketTally,
) -> Vec<DecodedConnection> {
    let mut out = Vec::new();
    each_socket(pid, tally, |fd, info| {
        decode_tcp_connection(info)
            .map(|c| out.extend(c))
            .inspect_err(|err| tracing::debug!(%err, pid, fd, "socket skipped"))
    });
    out
}

/// The descriptor list of `pid` as `(fd, type)`, sized from `nfiles` with
/// headroom and asked again while the answer fills the buffer (the table
/// can grow between `proc_bsdinfo` and this call).
fn fd_list(pid: libc::c_int, nfiles: u32) -> Option<Vec<(i32, u32)>> {
    use crate::parse::libproc_abi::{
        LibprocAnswer, PROC_FDINFO_SIZE, fd_list_retry, fd_list_slots,
    };
    let mut slots = fd_list_slots(nfiles);
    loop {
        let mut buf = vec![0u8; slots.saturating_mul(PROC_FDINFO_SIZE)];
        match pidinfo_bytes(pid, libc::PROC_PIDLISTFDS, 0, &mut buf) {
            LibprocAnswer::Bytes(n) => {
                if let Some(more) = fd_list_retry(n, slots) {
                    slots = more;
                    continue;
                }
                let written = &buf[..n.min(buf.len())];
                return Some(
                    written
                        .chunks_exact(PROC_FDINFO_SIZE)
                        .map(|c| {
                            let fd = i32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
                            let kind = u32::from_ne_bytes([c[4], c[5], c[6], c[7]]);
                            (fd, kind)
                        })
                        .collect(),
                );
            }
            LibprocAnswer::Failed { .. } => return None,
        }
    }
}

/// Hand `each` the `socket_fdinfo` bytes of every socket descriptor `pid`
/// holds (with the fd), counting in `tally` what decoded, what vanished
/// and what failed. Processes we may not inspect (not root, or gone
/// mid-walk) contribute nothing rather than failing the whole sweep.
fn each_socket(
    pid: u32,
    tally: &mut crate::parse::libproc_abi::SocketTally,
    mut each: impl FnMut(i32, &[u8]) -> Result<(), crate::parse::libproc_abi::AbiError>,
) {
    use crate::parse::libproc_abi::{FdInfoAnswer, SOCKET_FDINFO_BUFFER, fdinfo_answer};
    let Some(ipid) = i32::try_from(pid).ok().filter(|&p| p > 0) else {
        return;
    };
    let Ok(info) = bsd_info(pid) else {
        return;
    };
    if info.is_zombie() {
        return;
    }
    let Some(fds) = fd_list(ipid, info.nfiles) else {
        return;
    };
    let mut buf = vec![0u8; SOCKET_FDINFO_BUFFER];
    let Ok(len) = libc::c_int::try_from(buf.len()) else {
        return;
    };
    for (fd, _) in fds.iter().filter(|(_, kind)| *kind == PROX_FDTYPE_SOCKET) {
        Errno::clear();
        // SAFETY: `buf` is a live, writable allocation of `len` bytes, and
        // proc_pidfdinfo writes at most `len` bytes into it. Nothing is
        // read through the pointer afterwards; the bytes are decoded as a
        // plain slice.
        let ret = unsafe {
            libc::proc_pidfdinfo(
                ipid,
                *fd,
                PROC_PIDFDSOCKETINFO,
                buf.as_mut_ptr().cast(),
                len,
            )
        };
        match fdinfo_answer(ret, Errno::last_raw()) {
            FdInfoAnswer::Bytes(n) => {
                tally.record(each(*fd, &buf[..n.min(buf.len())]));
            }
            FdInfoAnswer::Vanished => tally.vanish(),
            FdInfoAnswer::Failed { errno } => tally.fail(format!(
                "proc_pidfdinfo({pid}, {fd}, PROC_PIDFDSOCKETINFO): {}",
                Errno::from_raw(errno)
            )),
        }
    }
}

/// A sweep in which every socket descriptor failed to decode is an error
/// (the daemon reports it), not an empty list of listeners.
fn sweep_health(tally: &crate::parse::libproc_abi::SocketTally) -> Result<(), PlatformError> {
    tally.health().map_err(|e| PlatformError::Malformed {
        what: "socket_fdinfo",
        path: PathBuf::from("proc_pidfdinfo(PROC_PIDFDSOCKETINFO)"),
        detail: e.to_string(),
    })
}

/// The MIB name netstat reads for TCP (network_cmds `netstat.tproj/inet.c`).
const PCBLIST_N: &std::ffi::CStr = c"net.inet.tcp.pcblist_n";
/// Attempts when the list outgrows the buffer between sizing and reading.
const PCBLIST_TRIES: usize = 4;
/// No Mac has this many TCP PCBs (600-odd bytes each); a larger answer is
/// refused rather than allocated.
const MAX_PCBLIST: usize = 256 * 1024 * 1024;

/// `sysctlbyname("net.inet.tcp.pcblist_n")` into `buf`, decoded. One call
/// to size (the kernel already adds an eighth for growth), one to read;
/// `ENOMEM` (the list grew past that) asks again with the new size.
fn tcp_pcblist(buf: &mut Vec<u8>) -> Result<crate::parse::pcblist::PcbList, PlatformError> {
    let io = |e: std::io::Error| PlatformError::io("sysctl net.inet.tcp.pcblist_n", e);
    for _ in 0..PCBLIST_TRIES {
        let mut size: libc::size_t = 0;
        // SAFETY: a NUL-terminated name; a null old pointer asks only for
        // the size, stored in `size`; no new value is set.
        let rc = unsafe {
            libc::sysctlbyname(
                PCBLIST_N.as_ptr(),
                std::ptr::null_mut(),
                &mut size,
                std::ptr::null_mut(),
                0,
            )
        };
        if rc != 0 {
            return Err(io(std::io::Error::last_os_error()));
        }
        if size > MAX_PCBLIST {
            return Err(io(std::io::Error::other(format!(
                "the kernel asks for {size} bytes, more than {MAX_PCBLIST}"
            ))));
        }
        buf.resize(size, 0);
        let mut len = buf.len();
        // SAFETY: `buf` is writable for `len` bytes; the kernel writes at
        // most `len` and stores the count written back in `len`.
        let rc = unsafe {
            libc::sysctlbyname(
                PCBLIST_N.as_ptr(),
                buf.as_mut_ptr().cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENOMEM) {
                continue;
            }
            return Err(io(err));
        }
        let answer = buf.get(..len).unwrap_or(buf);
        return crate::parse::pcblist::decode(answer).map_err(|e| PlatformError::Malformed {
            what: "pcblist_n",
            path: PathBuf::from("sysctl net.inet.tcp.pcblist_n"),
            detail: e.to_string(),
        });
    }
    Err(io(std::io::Error::other(
        "the TCP list kept growing while it was read",
    )))
}

/// `sysctl(KERN_PROCARGS2)` for `pid`, parsed. `None` when the process is
/// gone or we may not read it (another user's process without root).
fn procargs(pid: u32) -> Option<procargs::ProcArgs> {
    let pid = libc::c_int::try_from(pid).ok()?;
    let mut argmax: libc::c_int = 0;
    let mut size = std::mem::size_of::<libc::c_int>();
    let mut mib = [libc::CTL_KERN, libc::KERN_ARGMAX];
    // SAFETY: `mib` holds the 2 names passed; `argmax` is a c_int and
    // `size` says so; no new value is set (null, 0).
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            2,
            (&raw mut argmax).cast(),
            &mut size,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return None;
    }
    let cap = usize::try_from(argmax).ok()?.min(MAX_PROCARGS);
    let mut buf = vec![0u8; cap];
    let mut size = buf.len();
    let mut mib = [libc::CTL_KERN, libc::KERN_PROCARGS2, pid];
    // SAFETY: `mib` holds the 3 names passed; `buf` is writable for `size`
    // bytes, and the kernel writes at most `size` and stores the count
    // written back in `size`; no new value is set.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            3,
            buf.as_mut_ptr().cast(),
            &mut size,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return None;
    }
    buf.truncate(size);
    procargs::parse_procargs2(&buf)
        .inspect_err(|err| tracing::debug!(%err, pid, "arguments unreadable"))
        .ok()
}

fn os_version() -> Option<String> {
    let out = command::run(
        Path::new(SW_VERS),
        &["-productVersion"],
        SW_VERS_TIMEOUT,
        4096,
    )
    .inspect_err(|err| tracing::warn!(%err, "sw_vers failed"))
    .ok()?;
    sw_vers::parse_product_version(&out.stdout_lossy())
        .inspect_err(|err| tracing::warn!(%err, "sw_vers output"))
        .ok()
}

/// `statfs(2)` of `path`: file-system type, mount point and read-only
/// flag. `None` when it fails (gone, no permission).
fn statfs_of(path: &Path) -> Option<(String, PathBuf, bool)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `statfs` is plain old data; all-zero is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is NUL-terminated and `st` is a valid out-pointer.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    fn text(chars: &[libc::c_char]) -> Vec<u8> {
        chars
            .iter()
            .map(|c| c.to_ne_bytes()[0])
            .take_while(|b| *b != 0)
            .collect()
    }
    let fstype = String::from_utf8_lossy(&text(&st.f_fstypename)).into_owned();
    let on = PathBuf::from(std::ffi::OsStr::from_bytes(&text(&st.f_mntonname)));
    let read_only = st.f_flags & (libc::MNT_RDONLY as u32) != 0;
    Some((fstype, on, read_only))
}

impl Platform for Native {
    fn host_info(&self) -> HostInfo {
        HostInfo {
            hostname: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "unknown".into()),
            os: "macos".into(),
            os_version: self.os_version.get_or_init(os_version).clone(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
            signatures_supported: true,
        }
    }

    fn listeners(&self) -> Result<Vec<Listener>, PlatformError> {
        let pids = pids_by_type(ProcFilter::All)
            .map_err(|e| PlatformError::io("proc_listpids(PROC_ALL_PIDS)", e))?;
        let mut tally = crate::parse::libproc_abi::SocketTally::default();
        let mut found = Vec::new();
        for pid in pids {
            found.extend(tcp_sockets(pid, &mut tally));
        }
        sweep_health(&tally)?;
        Ok(group_listeners(found))
    }

    /// The daemon's per-sweep change detector: one read of the kernel's
    /// TCP list (`net.inet.tcp.pcblist_n`, what netstat reads) instead of
    /// the libproc walk of every process's descriptors, which runs only
    /// when these ids differ from the last sweep's. `xso_so` here and
    /// libproc's `soi_so` are the same hash of the same kernel pointer
    /// (`VM_KERNEL_ADDRHASH(so)`), so the ids compare with
    /// [`Listener::socket_id`]; were they ever to differ, every sweep would
    /// see a change and walk — slower, never blind.
    ///
    /// The list also carries `so_last_pid` and `so_e_pid`, and it is
    /// tempting to check that one process instead of walking all. xnu
    /// (`bsd/kern/uipc_socket.c`, `so_update_last_owner_locked`) sets
    /// `last_pid` to whichever process last made a socket call on it: a
    /// process that has since passed the descriptor on and closed it, or
    /// exited after a fork, is still named there, its pid can meanwhile be
    /// reused by a stranger, and a child that inherited the socket and
    /// never touched it is named nowhere. `e_pid` is the delegate a holder
    /// with the delegation entitlement declared (`SO_DELEGATED`), a claim,
    /// not a fact about who holds the descriptor. Neither tells every
    /// holder, and lenscap acts on every holder of a helper's socket and
    /// only after re-identifying it. So they are not used to skip the walk:
    /// the walk runs only when the set changed, which on an idle Mac is
    /// rare, and it finds every holder with the descriptor in hand.
    fn listening_socket_ids(&self) -> Result<std::collections::BTreeSet<u64>, PlatformError> {
        let mut buf = self.pcblist.lock().unwrap_or_else(|p| p.into_inner());
        Ok(tcp_pcblist(&mut buf)?.listening_ids())
    }

    /// `signature` is left [`Signature::unknown`]: callers fill it through
    /// the signature cache.
    fn process(&self, pid: u32) -> Result<ProcessIdentity, PlatformError> {
        let info = bsd_info(pid)?;
        let user = self.user_name(info.uid);
        if info.is_zombie() {
            // Exited, not reaped: no image left to read.
            return Ok(proc_bsdinfo::identity(&info, None, Vec::new(), user));
        }
        let path = i32::try_from(pid)
            .ok()
            .and_then(|p| pidpath(p).ok())
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        let args = procargs(pid).map(|a| a.args).unwrap_or_default();
        Ok(proc_bsdinfo::identity(&info, path, args, user))
    }

    fn check_signature(&self, path: &Path) -> Signature {
        signing::check_with_timeouts(
            &self.tools.codesign,
            path,
            CODESIGN_TIMEOUT,
            CODESIGN_VERIFY_TIMEOUT,
        )
    }

    fn login_items(&self) -> Result<Vec<PersistenceItem>, PlatformError> {
        login_items::from_sfltool(&self.tools.sfltool, SFLTOOL_TIMEOUT).map_err(|err| {
            PlatformError::Command {
                program: self.tools.sfltool.clone(),
                detail: err.to_string(),
            }
        })
    }

    /// `launchctl asuser <uid> sudo -u <user> osascript -e 'display
    /// notification …'` for the given user, or for the console user (the
    /// owner of /dev/console; root means nobody is logged in).
    fn camera_source(&self) -> CameraSource {
        CameraSource::UnifiedLog
    }

    /// macOS has no socket-diagnostics query: the same libproc walk as
    /// [`Platform::listeners`] (every process, every socket descriptor),
    /// keeping ESTABLISHED sockets on `ports` ([`established_to_ports`]).
    fn established_to(
        &self,
        ports: &std::collections::BTreeSet<u16>,
    ) -> Result<Vec<Established>, PlatformError> {
        if ports.is_empty() {
            return Ok(Vec::new());
        }
        let pids = pids_by_type(ProcFilter::All)
            .map_err(|e| PlatformError::io("proc_listpids(PROC_ALL_PIDS)", e))?;
        let mut tally = crate::parse::libproc_abi::SocketTally::default();
        let mut found = Vec::new();
        for pid in pids {
            found.extend(tcp_connections(pid, &mut tally));
        }
        sweep_health(&tally)?;
        Ok(established_to_ports(found, ports))
    }

    /// macOS offers a user-space agent no report of closed TCP
    /// connections: no sock_diag, and libproc sees only sockets that still
    /// exist. The kernel does log `tcp_connection_summary` lines to the
    /// unified log (published `log show` output shows them for `en0`
    /// connections), but no source says loopback connections are logged or
    /// at which level, so lenscap does not build on them; the Network
    /// Extension and Endpoint Security frameworks that would see every
    /// connection need entitlements lenscap does not have. So a connection
    /// shorter than a sweep is missed here (docs/daemon.md, "Short
    /// connections").
    fn closed_connections(
        &self,
    ) -> Result<Box<dyn crate::platform::ClosedConnectionFeed>, PlatformError> {
        Err(PlatformError::Unsupported(
            "a report of closed TCP connections (macOS has no sock_diag)",
        ))
    }

    /// Gatekeeper mounts a translocated app read-only with nullfs under
    /// the translocation folder. `statfs` follows links, so the mount
    /// point must contain `bundle`: a link planted in a temp folder that
    /// leads to some other translocation mount names a different one.
    fn on_translocation_mount(&self, bundle: &Path) -> bool {
        statfs_of(bundle).is_some_and(|(fstype, on, read_only)| {
            fstype == "nullfs"
                && read_only
                && on.components().count() > 1
                && bundle.starts_with(&on)
        })
    }

    /// `/var/run/utmpx` through the pure parser (`parse::utmpx`, whose
    /// layout the asserts below pin to libc's `struct utmpx`).
    fn console_users(&self) -> Result<Vec<u32>, PlatformError> {
        crate::platform::console_users(&self.tools.utmpx)
    }

    fn user_name_of(&self, uid: u32) -> Option<String> {
        self.user_name(uid)
    }

    fn notify_user(&self, uid: Option<u32>, title: &str, message: &str) -> Result<(), String> {
        use std::os::unix::fs::MetadataExt;
        let uid = match uid {
            Some(u) => u,
            None => std::fs::metadata("/dev/console")
                .map(|m| m.uid())
                .map_err(|e| format!("cannot tell who is logged in: {e}"))?,
        };
        if uid == 0 {
            return Err("nobody is logged in at the console".into());
        }
        let user = self
            .user_name(uid)
            .ok_or_else(|| format!("uid {uid} has no user name"))?;
        crate::platform::notify::show(&self.tools.launchctl, uid, &user, title, message)
    }
}

// `parse::utmpx` reads `/var/run/utmpx` by offsets taken from <utmpx.h>;
// these fail the macOS build if libc's `struct utmpx` says otherwise.
const _: () = {
    use crate::parse::utmpx as u;
    use std::mem::{offset_of, size_of};
    assert!(size_of::<libc::utmpx>() == u::RECORD_LEN);
    assert!(offset_of!(libc::utmpx, ut_user) == u::USER_OFFSET);
    assert!(offset_of!(libc::utmpx, ut_id) == u::ID_OFFSET);
    assert!(offset_of!(libc::utmpx, ut_line) == u::LINE_OFFSET);
    assert!(offset_of!(libc::utmpx, ut_pid) == u::PID_OFFSET);
    assert!(offset_of!(libc::utmpx, ut_type) == u::TYPE_OFFSET);
    assert!(offset_of!(libc::utmpx, ut_tv) == u::TV_OFFSET);
    assert!(offset_of!(libc::utmpx, ut_host) == u::HOST_OFFSET);
    assert!(libc::USER_PROCESS == u::USER_PROCESS);
    assert!(libc::DEAD_PROCESS == u::DEAD_PROCESS);
    assert!(libc::SIGNATURE == u::SIGNATURE);
    assert!(libc::_UTX_USERSIZE == u::USER_LEN);
    assert!(libc::_UTX_LINESIZE == u::LINE_LEN);
};
