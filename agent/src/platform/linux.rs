//! The real Linux platform: procfs and netlink, real signals. lenscap's
//! target is macOS, but Linux is where the end-to-end tests run, so nothing
//! here is a mock (docs/design.md §4).
//!
//! - `listeners()`: LISTEN sockets from netlink `sock_diag` (fallback
//!   `/proc/net/tcp{,6}`, [`sockets`]), owners from a parallel walk of
//!   `/proc/*/fd` ([`owners`]).
//! - `established_to()`: ESTABLISHED sockets from the same `sock_diag`
//!   dump, filtered by local port in the kernel ([`sockets`]).
//! - `closed_connections()`: sock_diag's TCP destroy multicast groups, so
//!   a connection shorter than a sweep is still seen ([`sock_destroy`]).
//! - `process()`: `/proc/<pid>/{stat,status,cmdline,exe}` read through one
//!   directory fd ([`process`]).
//! - Linux has no code signatures: `check_signature` says `NotSupported`
//!   rather than pretending binaries are unsigned.

#[path = "linux/cpus.rs"]
mod cpus;
#[path = "linux/devwatch.rs"]
mod devwatch;
#[path = "linux/owners.rs"]
mod owners;
#[path = "linux/process.rs"]
mod process;
#[path = "linux/procfs.rs"]
mod procfs;
#[path = "linux/sock_destroy.rs"]
mod sock_destroy;
#[path = "linux/sockets.rs"]
mod sockets;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;

use nix::unistd::{SysconfVar, Uid, User, sysconf};

pub use self::cpus::spawn_beside;
use self::process::{Clock, ProcDir};
use crate::model::{
    AddressScope, HostInfo, Listener, PersistenceItem, ProcessIdentity, Signature, StartTime,
    enclosing_bundle,
};
use crate::platform::{
    CameraSource, Established, ListenersAndPaths, Platform, PlatformError, SignalOutcome, Tools,
};

/// Linux's `USER_HZ` when `sysconf` cannot say: it has been 100 on every
/// mainstream architecture for decades.
const DEFAULT_TICKS_PER_S: u64 = 100;

/// The TLS stack of the collector and update clients: rustls. OpenSSL
/// (native-tls) would add `libcrypto`'s 4,000 eagerly bound symbols to
/// every start of `lenscap` and ~1 MB to the daemon's resident memory, for
/// nothing the clients need (agent/Cargo.toml).
pub const TLS_PROVIDER: ureq::tls::TlsProvider = ureq::tls::TlsProvider::Rustls;

/// The Linux implementation of [`Platform`].
#[derive(Debug)]
pub struct Native {
    /// Boot time read once, so every start time this value computes uses
    /// the same base: `/proc/stat`'s `btime` moves when the wall clock is
    /// stepped, and a moving base would make one process look like two.
    btime_s: Option<u64>,
    ticks_per_s: u64,
    /// uid → user name; `getpwuid_r` can be slow (NSS, LDAP).
    users: Mutex<HashMap<u32, Option<String>>>,
    /// `LaunchctlPath`: where a notification goes when it exists (the
    /// tests' stand-in); otherwise notifications are only logged.
    launchctl: std::path::PathBuf,
    /// `UtmpxPath`: who is logged in ([`crate::platform::console_users`]).
    utmpx: std::path::PathBuf,
    /// The sock_diag socket the daemon's per-sweep dump reuses: opening,
    /// binding and connecting one costs four syscalls a sweep.
    diag: Mutex<Option<netlink_sys::Socket>>,
}

impl Native {
    /// Build the Linux platform. `tools` names macOS programs (`codesign`,
    /// `sfltool`) that Linux has no use for; `launchctl` only carries
    /// notifications, when the file exists.
    pub fn new(tools: Tools) -> Native {
        let ticks_per_s = sysconf(SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .and_then(|t| u64::try_from(t).ok())
            .filter(|&t| t > 0)
            .unwrap_or(DEFAULT_TICKS_PER_S);
        Native {
            btime_s: read_btime().ok(),
            ticks_per_s,
            users: Mutex::new(HashMap::new()),
            launchctl: tools.launchctl,
            utmpx: tools.utmpx,
            diag: Mutex::new(None),
        }
    }

    fn clock(&self) -> Result<Clock, PlatformError> {
        let btime_s = match self.btime_s {
            Some(b) => b,
            None => read_btime()?,
        };
        Ok(Clock {
            btime_s,
            ticks_per_s: self.ticks_per_s,
        })
    }

    /// A process's start time (µs since the epoch, clock-tick resolution),
    /// the cheap half of an identity check. Gone → `NoSuchProcess`.
    pub fn process_start_time(&self, pid: u32) -> Result<StartTime, PlatformError> {
        let stat = ProcDir::open(pid)?.stat()?;
        Ok(self.clock()?.start_time(stat.starttime))
    }

    /// Send `signal` (e.g. `libc::SIGTERM`) to `expected.pid`, but only if
    /// that PID still has `expected.start_time` and `expected.path`.
    ///
    /// A pidfd is opened first and the signal goes through it, so between
    /// the check and the signal the PID cannot be recycled under us: PID
    /// reuse can never make the agent signal a stranger. Returns `Gone` if
    /// the process has exited (zombies included), `IdentityChanged` if the
    /// PID now names a different process; neither sends anything.
    pub fn signal_verified(
        &self,
        expected: &ProcessIdentity,
        signal: i32,
    ) -> Result<SignalOutcome, PlatformError> {
        process::signal_verified(self.clock()?, expected, signal)
    }

    /// The PIDs whose parent is `pid`, ascending, from the `ppid` field of
    /// every `/proc/<n>/stat`. (`/proc/<pid>/task/<tid>/children` would be
    /// cheaper but exists only with `CONFIG_PROC_CHILDREN`.) A process that
    /// exits during the scan is left out; `NoSuchProcess` if `pid` itself
    /// is gone.
    pub fn child_pids(&self, pid: u32) -> Result<Vec<u32>, PlatformError> {
        ProcDir::open(pid)?;
        let entries = std::fs::read_dir("/proc").map_err(|e| PlatformError::io("/proc", e))?;
        let mut children: Vec<u32> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&candidate| {
                std::fs::read(format!("/proc/{candidate}/stat"))
                    .ok()
                    .and_then(|raw| procfs::parse_stat(&raw))
                    .is_some_and(|stat| stat.ppid == pid)
            })
            .collect();
        children.sort_unstable();
        Ok(children)
    }

    /// Listeners with their owners, found among `among` (every process
    /// when `None`), and the (pid, path) pairs `wanted` accepts when it is
    /// given (every process is walked then).
    fn listeners_walking(
        &self,
        among: Option<&std::collections::BTreeSet<u32>>,
        wanted: Option<owners::PathFilter<'_>>,
    ) -> Result<ListenersAndPaths, PlatformError> {
        let raw = sockets::listening()?;
        let inodes: Vec<u64> = raw.iter().map(|r| r.inode).collect();
        let (mut owners, held) = match (among, wanted) {
            (_, Some(wanted)) => {
                let walked = owners::owners_and_paths(&inodes, wanted)?;
                (walked.owners, walked.paths)
            }
            (None, None) => (owners::owners(&inodes)?, Vec::new()),
            (Some(pids), None) => (owners::owners_among(&inodes, pids)?, Vec::new()),
        };

        let mut out: Vec<Listener> = raw
            .into_iter()
            .map(|r| {
                let scope = AddressScope::of(r.address);
                Listener {
                    address: r.address,
                    port: r.port,
                    scope,
                    // Only a wildcard IPv6 socket can also take IPv4.
                    v6only: match r.address {
                        IpAddr::V6(_) if scope == AddressScope::Wildcard => r.v6only,
                        _ => None,
                    },
                    pids: owners.remove(&r.inode).unwrap_or_default(),
                    socket_id: r.inode,
                }
            })
            .collect();
        out.sort_by_key(|l| (l.port, l.address, l.socket_id));
        Ok(ListenersAndPaths {
            listeners: out,
            held,
        })
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

fn read_btime() -> Result<u64, PlatformError> {
    let text =
        std::fs::read_to_string("/proc/stat").map_err(|e| PlatformError::io("/proc/stat", e))?;
    procfs::parse_btime(&text).ok_or_else(|| PlatformError::Malformed {
        what: "btime line",
        path: "/proc/stat".into(),
        detail: "no `btime <seconds>` line".into(),
    })
}

fn os_version() -> Option<String> {
    // os-release(5): /etc/os-release, else /usr/lib/os-release.
    ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| procfs::parse_pretty_name(&std::fs::read_to_string(p).ok()?))
        .or_else(|| {
            let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
            let release = release.trim();
            (!release.is_empty()).then(|| format!("Linux {release}"))
        })
}

impl Platform for Native {
    fn host_info(&self) -> HostInfo {
        HostInfo {
            hostname: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "unknown".into()),
            os: "linux".into(),
            os_version: os_version(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
            signatures_supported: false,
        }
    }

    fn listeners(&self) -> Result<Vec<Listener>, PlatformError> {
        Ok(self.listeners_walking(None, None)?.listeners)
    }

    fn listeners_among(
        &self,
        pids: &std::collections::BTreeSet<u32>,
    ) -> Result<Vec<Listener>, PlatformError> {
        Ok(self.listeners_walking(Some(pids), None)?.listeners)
    }

    /// The walk of `/proc/*/fd` that finds the sockets' owners also
    /// matches every absolute link target against `wanted`: the same
    /// descriptors [`Platform::camera_source`]'s `/proc` walk reads.
    fn listeners_and_held_paths(
        &self,
        wanted: &(dyn Fn(&Path) -> bool + Sync),
    ) -> Option<Result<ListenersAndPaths, PlatformError>> {
        Some(self.listeners_walking(None, Some(wanted)))
    }

    /// One getdents of `/proc`.
    fn process_ids(&self) -> Option<std::collections::BTreeSet<u32>> {
        owners::process_ids().ok()
    }

    fn watch_devices(&self, patterns: &[String]) -> Option<Box<dyn crate::platform::DeviceWatch>> {
        match devwatch::DeviceOpens::new(patterns) {
            Ok(w) => Some(Box::new(w)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the camera devices; walking /proc instead");
                None
            }
        }
    }

    /// A `timerfd` on the monotonic clock, due at once and then every
    /// `period`.
    fn periodic_timer(&self, period: std::time::Duration) -> Option<std::os::fd::OwnedFd> {
        match periodic_timerfd(period) {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::warn!(error = %e, "no timerfd; the sweep tick uses tokio's timer");
                None
            }
        }
    }

    /// One sock_diag dump on a socket kept open between calls, no `/proc`
    /// walk.
    fn listening_socket_ids(&self) -> Result<std::collections::BTreeSet<u64>, PlatformError> {
        let mut held = self.diag.lock().unwrap_or_else(|p| p.into_inner());
        let socket = match held.take() {
            Some(s) => s,
            None => sockets::open_diag()?,
        };
        match sockets::listening_ids_on(&socket) {
            Ok(ids) => {
                *held = Some(socket);
                Ok(ids)
            }
            // A failed dump may leave replies queued on the socket: drop
            // it, and let the usual fallback (or a fresh socket next
            // time) answer.
            Err(_) => Ok(sockets::listening()?.into_iter().map(|r| r.inode).collect()),
        }
    }

    /// `signature` is always [`Signature::not_supported`]: Linux has no
    /// code signatures to check.
    fn process(&self, pid: u32) -> Result<ProcessIdentity, PlatformError> {
        let dir = ProcDir::open(pid)?;
        let stat = dir.stat()?;
        let status = dir.read("status")?;
        let uid = procfs::parse_status_uid(&status).ok_or_else(|| PlatformError::Malformed {
            what: "Uid line",
            path: format!("/proc/{pid}/status").into(),
            detail: "no `Uid:` line".into(),
        })?;
        let args = procfs::split_cmdline(&dir.read("cmdline")?);
        let path = dir.exe();
        Ok(ProcessIdentity {
            pid,
            ppid: stat.ppid,
            start_time: self.clock()?.start_time(stat.starttime),
            bundle: path.as_deref().and_then(enclosing_bundle),
            path,
            args,
            uid,
            user: self.user_name(uid),
            name: stat.comm,
            interactive: stat.tty_nr != 0,
            signature: Signature::not_supported(),
        })
    }

    /// Linux executables carry no code signature.
    fn check_signature(&self, _path: &Path) -> Signature {
        Signature::not_supported()
    }

    /// Linux has no Background Task Management login items.
    fn login_items(&self) -> Result<Vec<PersistenceItem>, PlatformError> {
        Ok(Vec::new())
    }

    /// Linux has no desktop notification path a root daemon can rely on:
    /// the notice goes to the log, where the operator reads it.
    fn camera_source(&self) -> CameraSource {
        CameraSource::ProcFds {
            proc_root: std::path::PathBuf::from("/proc"),
        }
    }

    /// One sock_diag dump per address family, filtered by state and (in
    /// the kernel, where it allows) by local port; no `/proc` walk.
    fn established_to(
        &self,
        ports: &std::collections::BTreeSet<u16>,
    ) -> Result<Vec<Established>, PlatformError> {
        sockets::established(ports)
    }

    /// sock_diag's TCP destroy multicast groups ([`sock_destroy`]): no
    /// capability needed; refused only by a sandbox or an old kernel.
    fn closed_connections(
        &self,
    ) -> Result<Box<dyn crate::platform::ClosedConnectionFeed>, PlatformError> {
        Ok(Box::new(sock_destroy::DestroyFeed::start()?))
    }

    /// The same file format as on macOS, at `UtmpxPath` (see
    /// [`crate::platform::console_users`] for why).
    fn console_users(&self) -> Result<Vec<u32>, PlatformError> {
        crate::platform::console_users(&self.utmpx)
    }

    fn user_name_of(&self, uid: u32) -> Option<String> {
        self.user_name(uid)
    }

    /// Logged always. The notification itself needs a user to tell (there
    /// is no console owner to fall back on here) and a `launchctl` to run.
    fn notify_user(&self, uid: Option<u32>, title: &str, message: &str) -> Result<(), String> {
        tracing::warn!(uid, "{title}: {message}");
        let Some(uid) = uid.filter(|u| *u != 0) else {
            return Ok(());
        };
        if self.launchctl.symlink_metadata().is_err() {
            return Ok(());
        }
        let user = self
            .user_name(uid)
            .ok_or_else(|| format!("uid {uid} has no user name"))?;
        crate::platform::notify::show(&self.launchctl, uid, &user, title, message)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
#[path = "linux/tests.rs"]
mod tests;

/// A non-blocking `timerfd` that expires at once and then every `period`
/// (as tokio's `interval`, whose first tick is immediate: the daemon
/// sweeps at start and after a reload without waiting a period).
fn periodic_timerfd(period: std::time::Duration) -> std::io::Result<std::os::fd::OwnedFd> {
    use rustix::time::{
        Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, timerfd_create,
        timerfd_settime,
    };
    // A zero period would disarm the timer: the config allows 0.1 s at
    // least, so this only guards a caller's mistake.
    let period = period.max(std::time::Duration::from_millis(1));
    let spec = rustix::time::Timespec {
        tv_sec: i64::try_from(period.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(period.subsec_nanos()),
    };
    let fd = timerfd_create(
        TimerfdClockId::Monotonic,
        TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
    )?;
    timerfd_settime(
        &fd,
        TimerfdTimerFlags::empty(),
        &Itimerspec {
            it_interval: spec,
            // 1 ns: an all-zero value would disarm the timer.
            it_value: rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: 1,
            },
        },
    )?;
    Ok(fd)
}
