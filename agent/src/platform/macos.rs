//! The macOS platform: libproc for sockets and processes, `sysctl` for
//! arguments, and the outside tools (`codesign`, `sfltool`, `sw_vers`) for
//! the rest.
//!
//! Nothing here can run in CI (there is no Mac); it is only type-checked
//! for `aarch64-apple-darwin` and `x86_64-apple-darwin`. So this file is
//! kept thin: it makes the system calls and hands the bytes to the pure,
//! fixture-tested modules that decide — `parse::libproc_abi` (socket
//! buffers, grouping into listeners, established connections to chosen
//! ports), `parse::proc_bsdinfo` (start time, terminal, the pre-signal
//! identity rule), `parse::procargs` (`KERN_PROCARGS2`), `parse::sw_vers`,
//! and `platform::signing`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use libproc::bsd_info::BSDInfo;
use libproc::file_info::ListFDs;
use libproc::proc_pid::{listpidinfo, pidinfo, pidpath};
use libproc::processes::{ProcFilter, pids_by_type};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, Uid, User};

use crate::command;
use crate::model::{
    HostInfo, Listener, PersistenceItem, ProcessIdentity, Signature, StartTime, enclosing_bundle,
};
use crate::parse::libproc_abi::{
    DecodedConnection, DecodedListener, PROC_PIDFDSOCKETINFO, PROX_FDTYPE_SOCKET,
    SOCKET_FDINFO_SIZE, decode_tcp_connection, decode_tcp_listener, established_to_ports,
    group_listeners,
};
use crate::parse::proc_bsdinfo::{self, Observed};
use crate::parse::{procargs, sw_vers};
use crate::platform::{CameraSource, Established, Platform, PlatformError, SignalOutcome, Tools};
use crate::platform::{login_items, signing};

/// Each `codesign` run (display or verify) is cut off after this.
const CODESIGN_TIMEOUT: Duration = Duration::from_secs(10);
/// `sfltool dumpbtm` reads a database and can be slow on a busy Mac.
const SFLTOOL_TIMEOUT: Duration = Duration::from_secs(30);
const SW_VERS: &str = "/usr/bin/sw_vers";
const SW_VERS_TIMEOUT: Duration = Duration::from_secs(5);
/// `launchctl asuser … osascript`: a notification either shows at once or not.
/// `KERN_ARGMAX` is 1 MiB on current macOS; refuse anything absurd.
const MAX_PROCARGS: usize = 16 * 1024 * 1024;

/// The macOS implementation of [`Platform`].
#[derive(Debug)]
pub struct Native {
    tools: Tools,
    /// uid → user name; directory services lookups can be slow.
    users: Mutex<HashMap<u32, Option<String>>>,
    /// The OS version does not change while the agent runs (an update
    /// reboots), so `sw_vers` runs once.
    os_version: OnceLock<Option<String>>,
}

impl Native {
    pub fn new(tools: Tools) -> Native {
        Native {
            tools,
            users: Mutex::new(HashMap::new()),
            os_version: OnceLock::new(),
        }
    }

    /// A process's start time, microsecond resolution
    /// (`pbi_start_tvsec/usec`). Gone → `NoSuchProcess`.
    pub fn process_start_time(&self, pid: u32) -> Result<StartTime, PlatformError> {
        let info = bsd_info(pid)?;
        Ok(proc_bsdinfo::start_time(
            info.pbi_start_tvsec,
            info.pbi_start_tvusec,
        ))
    }

    /// Send `signal` (e.g. `libc::SIGTERM`) to `expected.pid` only if that
    /// PID still has `expected.start_time` and `expected.path`, re-read
    /// immediately before `kill`. macOS has no pidfd, so a window of a few
    /// microseconds remains between the check and the signal; PIDs are
    /// handed out in increasing order and wrap at 99 999, so for a stranger
    /// to get the PID in that window the whole PID space would have to
    /// cycle through it.
    /// Direct children of `pid` (libproc `PROC_PPID_ONLY`).
    pub fn child_pids(&self, pid: u32) -> Result<Vec<u32>, PlatformError> {
        pids_by_type(ProcFilter::ByParentProcess { ppid: pid }).map_err(|e| {
            PlatformError::Command {
                program: PathBuf::from("proc_listpids"),
                detail: e.to_string(),
            }
        })
    }

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
        let observed = match bsd_info(expected.pid) {
            Ok(info) => Some(Observed {
                start_time: proc_bsdinfo::start_time(info.pbi_start_tvsec, info.pbi_start_tvusec),
                path: pidpath(pid).ok().map(PathBuf::from),
                status: info.pbi_status,
            }),
            Err(PlatformError::NoSuchProcess { .. }) => None,
            Err(e) => return Err(e),
        };
        if let Some(outcome) = proc_bsdinfo::pre_signal_check(expected, observed.as_ref()) {
            return Ok(outcome);
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

/// `proc_pidinfo(PROC_PIDTBSDINFO)`. libproc reports failures as strings,
/// so whether the process is gone is asked of `kill(pid, 0)`.
fn bsd_info(pid: u32) -> Result<BSDInfo, PlatformError> {
    let gone = PlatformError::NoSuchProcess { pid };
    let Some(ipid) = i32::try_from(pid).ok().filter(|&p| p > 0) else {
        return Err(gone);
    };
    pidinfo::<BSDInfo>(ipid, 0).map_err(|msg| {
        if kill(Pid::from_raw(ipid), None) == Err(Errno::ESRCH) {
            gone
        } else {
            PlatformError::io(
                format!("proc_pidinfo({pid}, PROC_PIDTBSDINFO)"),
                std::io::Error::other(msg),
            )
        }
    })
}

/// Every TCP socket `pid` holds, decoded as a possible listener.
fn tcp_sockets(pid: u32) -> Vec<(u32, DecodedListener)> {
    let mut out = Vec::new();
    each_socket(pid, |fd, info| match decode_tcp_listener(info) {
        Ok(Some(socket)) => out.push((pid, socket)),
        Ok(None) => {}
        Err(err) => tracing::debug!(%err, pid, fd, "socket skipped"),
    });
    out
}

/// Every TCP socket `pid` holds, decoded as a connection.
fn tcp_connections(pid: u32) -> Vec<DecodedConnection> {
    let mut out = Vec::new();
    each_socket(pid, |fd, info| match decode_tcp_connection(info) {
        Ok(Some(connection)) => out.push(connection),
        Ok(None) => {}
        Err(err) => tracing::debug!(%err, pid, fd, "socket skipped"),
    });
    out
}

/// Hand `each` the `socket_fdinfo` bytes of every socket descriptor `pid`
/// holds (with the fd). Processes we may not inspect (not root, or gone
/// mid-walk) contribute nothing rather than failing the whole sweep.
fn each_socket(pid: u32, mut each: impl FnMut(i32, &[u8])) {
    let Some(ipid) = i32::try_from(pid).ok().filter(|&p| p > 0) else {
        return;
    };
    let Ok(info) = pidinfo::<BSDInfo>(ipid, 0) else {
        return;
    };
    let slots = usize::try_from(info.pbi_nfiles).unwrap_or(0);
    let Ok(fds) = listpidinfo::<ListFDs>(ipid, slots) else {
        return;
    };
    let mut buf = vec![0u8; SOCKET_FDINFO_SIZE];
    let Ok(len) = libc::c_int::try_from(buf.len()) else {
        return;
    };
    for fd in fds.iter().filter(|fd| fd.proc_fdtype == PROX_FDTYPE_SOCKET) {
        // SAFETY: `buf` is a live, writable allocation of `len` bytes, and
        // proc_pidfdinfo writes at most `len` bytes into it. Nothing is
        // read through the pointer afterwards; the bytes are decoded as a
        // plain slice.
        let written = unsafe {
            libc::proc_pidfdinfo(
                ipid,
                fd.proc_fd,
                PROC_PIDFDSOCKETINFO,
                buf.as_mut_ptr().cast(),
                len,
            )
        };
        let Ok(written) = usize::try_from(written) else {
            continue; // -1: the fd closed or the process exited meanwhile
        };
        each(fd.proc_fd, &buf[..written.min(buf.len())]);
    }
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

/// A `c_char` array as bytes, whatever `c_char`'s signedness on this
/// architecture.
fn c_bytes<const N: usize>(chars: &[libc::c_char; N]) -> [u8; N] {
    chars.map(|c| u8::from_ne_bytes(c.to_ne_bytes()))
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
        Ok(group_listeners(pids.into_iter().flat_map(tcp_sockets)))
    }

    /// `signature` is left [`Signature::unknown`]: callers fill it through
    /// the signature cache.
    fn process(&self, pid: u32) -> Result<ProcessIdentity, PlatformError> {
        let info = bsd_info(pid)?;
        let path = i32::try_from(pid)
            .ok()
            .and_then(|p| pidpath(p).ok())
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        let args = procargs(pid).map(|a| a.args).unwrap_or_default();
        // `pbi_name` is the full name when one is registered; `pbi_comm`
        // is the 16-byte truncation.
        let name = Some(proc_bsdinfo::c_string(&c_bytes(&info.pbi_name)))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| proc_bsdinfo::c_string(&c_bytes(&info.pbi_comm)));
        Ok(ProcessIdentity {
            pid,
            ppid: info.pbi_ppid,
            start_time: proc_bsdinfo::start_time(info.pbi_start_tvsec, info.pbi_start_tvusec),
            bundle: path.as_deref().and_then(enclosing_bundle),
            path,
            args,
            uid: info.pbi_uid,
            user: self.user_name(info.pbi_uid),
            name,
            interactive: proc_bsdinfo::has_controlling_tty(info.e_tdev),
            signature: Signature::unknown(),
        })
    }

    fn check_signature(&self, path: &Path) -> Signature {
        signing::check_with_codesign(&self.tools.codesign, path, CODESIGN_TIMEOUT)
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
        Ok(established_to_ports(
            pids.into_iter().flat_map(tcp_connections),
            ports,
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
