//! Tests of the Linux platform against real processes and real sockets on
//! 127.0.0.1 / ::1 (docs/design.md §4: Linux is a real platform, not a mock).

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::model::SignatureStatus;

fn native() -> Native {
    Native::new(Tools {
        codesign: "/usr/bin/codesign".into(),
        sfltool: "/usr/bin/sfltool".into(),
        launchctl: "/bin/launchctl".into(),
        utmpx: "/var/run/utmpx".into(),
    })
}

/// A child that is killed and reaped however the test ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command) -> Reaped {
    Reaped(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn sleeper() -> Reaped {
    spawn(Command::new("sleep").arg("30"))
}

/// Poll until `f` gives a value (children take a moment to exec).
fn eventually<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "condition not reached in 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(program))
                .find(|p| p.is_file())
        })
        .map(|p| std::fs::canonicalize(p).unwrap())
        .unwrap()
}

fn listener_for<'a>(list: &'a [Listener], l: &TcpListener) -> &'a Listener {
    let addr = l.local_addr().unwrap();
    list.iter()
        .find(|x| x.address == addr.ip() && x.port == addr.port())
        .unwrap()
}

#[test]
fn listeners_v4_and_v6_with_owner() {
    let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let v6 = TcpListener::bind("[::1]:0").unwrap();
    let list = native().listeners().unwrap();
    let me = std::process::id();

    let a = listener_for(&list, &v4);
    assert_eq!(a.scope, AddressScope::Loopback);
    assert_eq!(a.v6only, None);
    assert_eq!(a.pids, vec![me]);
    let b = listener_for(&list, &v6);
    assert_eq!(b.scope, AddressScope::Loopback);
    assert_eq!(b.v6only, None, "v6only is only reported for wildcards");
    assert_eq!(b.pids, vec![me]);
    assert_ne!(a.socket_id, b.socket_id);
    assert!(list.windows(2).all(|w| w[0].port <= w[1].port));
}

#[test]
fn shared_socket_lists_parent_and_child_ascending() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let fd = l.as_raw_fd();
    let mut cmd = Command::new("sleep");
    cmd.arg("30");
    // SAFETY: runs in the forked child before exec; fcntl is
    // async-signal-safe and touches only the child's fd table. Clearing
    // FD_CLOEXEC there (not in the parent) means no other test's child can
    // inherit the socket by accident.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = spawn(&mut cmd);
    let child_pid = child.0.id();
    let mut expected = vec![std::process::id(), child_pid];
    expected.sort_unstable();
    let p = native();
    // The child holds the socket from fork on; wait until it has exec'd so
    // the assertion is about `sleep`, not a half-started child.
    eventually(|| (p.process(child_pid).ok()?.name == "sleep").then_some(()));
    // Another test's child may hold a copy of every fd for the instant
    // between its fork and exec; ask again until that passes.
    eventually(|| {
        let list = p.listeners().unwrap();
        (listener_for(&list, &l).pids == expected).then_some(())
    });
}

#[test]
fn plain_child_identity() {
    let child = sleeper();
    let pid = child.0.id();
    let p = native();
    // exec sets the name (comm) a moment before the new argument area
    // (`cmdline`) exists; wait for both.
    let id = eventually(|| {
        p.process(pid)
            .ok()
            .filter(|id| id.name == "sleep" && !id.args.is_empty())
    });
    assert_eq!(id.pid, pid);
    assert_eq!(id.ppid, std::process::id());
    assert_eq!(id.path, Some(which("sleep")));
    assert_eq!(id.args, vec!["sleep", "30"]);
    assert_eq!(id.uid, nix::unistd::getuid().as_raw());
    let name = User::from_uid(nix::unistd::getuid())
        .unwrap()
        .map(|u| u.name);
    assert_eq!(id.user, name);
    assert!(!id.interactive, "spawned without a controlling terminal");
    assert_eq!(id.bundle, None);
    assert_eq!(id.signature.status, SignatureStatus::NotSupported);

    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    // btime is whole seconds, so allow a little more than that either way.
    assert!(id.start_time.unix_us.abs_diff(now_us) < 15_000_000);
    assert_eq!(
        u64::from(id.start_time.resolution_us),
        1_000_000 / p.ticks_per_s
    );
    assert_eq!(p.process_start_time(pid).unwrap(), id.start_time);
}

#[test]
fn a_process_cannot_name_itself_into_another_uid() {
    // A process sets its own name (comm, 15 bytes, any bytes but NUL) and
    // the name is the first line of /proc/<pid>/status. A name holding
    // "\nUid:\t4242" must not become the process's uid: the kernel escapes
    // the newline in `Name:`, and the parser takes only a line that starts
    // with `Uid:`. The shell stays the process (the `:` after `sleep` keeps
    // it from exec'ing into `sleep`, which would reset the name).
    let forged = "x\nUid:\t4242";
    let child = spawn(Command::new("sh").arg("-c").arg(format!(
        "printf '{}' > /proc/self/comm; sleep 30; :",
        forged.replace('\n', "\\n").replace('\t', "\\t")
    )));
    let pid = child.0.id();
    let p = native();
    let id = eventually(|| p.process(pid).ok().filter(|id| id.name == forged));
    assert_eq!(id.uid, nix::unistd::getuid().as_raw());
    assert_ne!(id.uid, 4242);
}

#[test]
fn a_process_belongs_to_its_real_uid_not_its_effective_one() {
    if !nix::unistd::geteuid().is_root() {
        // Only root can give a process two different uids.
        return;
    }
    // A root process acting as 4242 (`seteuid`) is root's: 4242 could not
    // signal it (kill(2) checks the target's real and saved uids), so
    // nothing 4242 triggers may reach it through lenscap.
    let as_user = with_uids(0, 4242, 0);
    // A setuid-root program started by 4242 is 4242's: 4242 may signal it.
    let setuid_root = with_uids(4242, 0, 0);
    let p = native();
    let uid_of = |child: &Reaped| {
        let pid = child.0.id();
        eventually(|| p.process(pid).ok().filter(|id| id.name == "sleep")).uid
    };
    assert_eq!(uid_of(&as_user), 0);
    assert_eq!(uid_of(&setuid_root), 4242);
}

/// `sleep 30` with the given real, effective and saved uids.
fn with_uids(real: u32, effective: u32, saved: u32) -> Reaped {
    let mut cmd = Command::new("sleep");
    cmd.arg("30");
    // SAFETY: setresuid is async-signal-safe; nothing else runs between
    // fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setresuid(real, effective, saved) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    spawn(&mut cmd)
}

#[test]
fn child_with_controlling_terminal_is_interactive() {
    // Give `sleep` a new session whose controlling terminal is a fresh pty,
    // as a login shell's children have. Done by hand rather than through
    // util-linux `script`, whose child is `$SHELL -c …`: with a shell that
    // does not exec its last command (dash), `sleep` would be a grandchild.
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two descriptors; the other arguments may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    let mut cmd = Command::new("sleep");
    cmd.arg("30");
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(slave, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = spawn(&mut cmd);
    // SAFETY: both descriptors came from openpty above and are ours.
    unsafe {
        libc::close(slave);
    }
    let p = native();
    let id = eventually(|| p.process(child.0.id()).ok().filter(|id| id.name == "sleep"));
    assert!(id.interactive, "{id:?}");
    drop(child);
    // SAFETY: as above; the child is gone, nobody else uses the master.
    unsafe {
        libc::close(master);
    }
}

#[test]
fn gone_process_is_no_such_process() {
    let mut child = sleeper();
    let pid = child.0.id();
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let p = native();
    assert!(matches!(p.process(pid), Err(PlatformError::NoSuchProcess { pid: x }) if x == pid));
    assert!(matches!(
        p.process_start_time(pid),
        Err(PlatformError::NoSuchProcess { .. })
    ));
    assert!(matches!(
        p.process(0),
        Err(PlatformError::NoSuchProcess { .. })
    ));
}

#[test]
fn deleted_executable_inside_a_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let macos = dir.path().join("Helper.app/Contents/MacOS");
    std::fs::create_dir_all(&macos).unwrap();
    let exe = macos.join("helper");
    std::fs::copy(which("sleep"), &exe).unwrap();
    // A concurrently forked child of another test can briefly hold our
    // write fd to the copy, so exec may see ETXTBSY: retry.
    let child = eventually(
        || match Command::new(&exe).arg("30").stdin(Stdio::null()).spawn() {
            Ok(c) => Some(Reaped(c)),
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => None,
            Err(e) => panic!("spawning {}: {e}", exe.display()),
        },
    );
    let p = native();
    let id = eventually(|| p.process(child.0.id()).ok().filter(|id| id.path.is_some()));
    let exe = std::fs::canonicalize(&exe).unwrap();
    assert_eq!(id.path.as_deref(), Some(exe.as_path()));
    let bundle = exe.ancestors().nth(3).map(Path::to_path_buf);
    assert_eq!(id.bundle, bundle);
    std::fs::remove_file(&exe).unwrap();
    let after = p.process(child.0.id()).unwrap();
    assert_eq!(after.path, id.path, "the ` (deleted)` suffix is stripped");
}

#[test]
fn signal_verified_refuses_a_changed_identity_and_signals_the_right_one() {
    let mut child = sleeper();
    let pid = child.0.id();
    let p = native();
    let id = eventually(|| p.process(pid).ok().filter(|id| id.name == "sleep"));

    let mut wrong_start = id.clone();
    wrong_start.start_time.unix_us += 10_000;
    assert_eq!(
        p.signal_verified(&wrong_start, libc::SIGKILL).unwrap(),
        SignalOutcome::IdentityChanged
    );
    let mut wrong_exe = id.clone();
    wrong_exe.path = Some("/usr/bin/not-sleep".into());
    assert_eq!(
        p.signal_verified(&wrong_exe, libc::SIGKILL).unwrap(),
        SignalOutcome::IdentityChanged
    );
    assert!(
        p.signal_verified(&id, 0).is_err(),
        "0 is not a signal to send"
    );
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "refused means untouched"
    );

    assert_eq!(
        p.signal_verified(&id, libc::SIGTERM).unwrap(),
        SignalOutcome::Sent
    );
    let status = child.0.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert_eq!(
        p.signal_verified(&id, libc::SIGTERM).unwrap(),
        SignalOutcome::Gone
    );
}

#[test]
fn signal_verified_treats_a_zombie_as_gone() {
    let child = sleeper();
    let pid = child.0.id();
    let p = native();
    let id = eventually(|| p.process(pid).ok().filter(|id| id.name == "sleep"));
    // SAFETY: plain kill(2) on our own unreaped child.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    eventually(|| (ProcDir::open(pid).ok()?.stat().ok()?.state == 'Z').then_some(()));
    assert_eq!(
        p.signal_verified(&id, libc::SIGTERM).unwrap(),
        SignalOutcome::Gone
    );
}

#[test]
fn host_info_and_unsupported_features() {
    let p = native();
    let h = p.host_info();
    assert_eq!(h.os, "linux");
    assert!(!h.hostname.is_empty());
    assert!(!h.signatures_supported);
    assert_eq!(h.agent_version, env!("CARGO_PKG_VERSION"));
    assert!(h.os_version.is_some());
    assert_eq!(
        p.check_signature(Path::new("/usr/bin/sleep")).status,
        SignatureStatus::NotSupported
    );
    assert!(p.login_items().unwrap().is_empty());
}

#[test]
fn child_pids_lists_direct_children_only() {
    // sh with two background sleeps; each sleep is a child of sh, and the
    // grandchild-free sleeps have no children of their own.
    let sh = spawn(Command::new("sh").args(["-c", "sleep 30 & sleep 30 & wait"]));
    let p = native();
    let kids = eventually(|| {
        let kids = p.child_pids(sh.0.id()).unwrap();
        (kids.len() == 2).then_some(kids)
    });
    assert!(kids.windows(2).all(|w| w[0] < w[1]), "ascending: {kids:?}");
    for kid in &kids {
        assert_eq!(p.process(*kid).unwrap().ppid, sh.0.id());
        assert!(p.child_pids(*kid).unwrap().is_empty());
    }
    assert!(
        p.child_pids(std::process::id())
            .unwrap()
            .contains(&sh.0.id())
    );
    let mut gone = sleeper();
    let pid = gone.0.id();
    gone.0.kill().unwrap();
    gone.0.wait().unwrap();
    assert!(matches!(
        p.child_pids(pid),
        Err(PlatformError::NoSuchProcess { .. })
    ));
    // The sleeps outlive sh when it is killed: stop them here.
    for kid in kids {
        if let Ok(id) = p.process(kid) {
            let _ = p.signal_verified(&id, libc::SIGKILL);
        }
    }
}

fn socket_inode(socket: &impl AsRawFd) -> u64 {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd())).unwrap();
    procfs::parse_socket_link(link.as_os_str().as_encoded_bytes()).unwrap()
}

/// A client connected to `listener` and the server side of it.
struct Conn {
    client: std::net::TcpStream,
    server: std::net::TcpStream,
}

impl Conn {
    fn to(listener: &TcpListener, via: std::net::SocketAddr) -> Conn {
        let client = std::net::TcpStream::connect(via).unwrap();
        let (server, _) = listener.accept().unwrap();
        assert_eq!(
            server.peer_addr().unwrap().port(),
            client.local_addr().unwrap().port()
        );
        Conn { client, server }
    }

    /// What `established_to` should say: the server side, in the
    /// client's own (IPv4 for an IPv4 client) addresses.
    fn expected(&self) -> Established {
        Established {
            local: self.client.peer_addr().unwrap(),
            remote: self.client.local_addr().unwrap(),
            socket_id: socket_inode(&self.server),
        }
    }
}

fn sorted(mut v: Vec<Established>) -> Vec<Established> {
    v.sort();
    v
}

#[test]
fn established_to_v4_and_v6_server_sides_only() {
    let p = native();
    assert_eq!(p.established_to(&BTreeSet::new()).unwrap(), vec![]);

    let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let v6 = TcpListener::bind("[::1]:0").unwrap();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let (a4, a6, ao) = (
        v4.local_addr().unwrap(),
        v6.local_addr().unwrap(),
        other.local_addr().unwrap(),
    );
    let c1 = Conn::to(&v4, a4);
    let c2 = Conn::to(&v4, a4);
    let c3 = Conn::to(&v6, a6);
    let c4 = Conn::to(&other, ao);
    assert!(c3.expected().local.is_ipv6());

    let both: BTreeSet<u16> = [a4.port(), a6.port()].into();
    let got = p.established_to(&both).unwrap();
    assert_eq!(
        got,
        sorted(vec![c1.expected(), c2.expected(), c3.expected()])
    );
    // The client halves (ephemeral local ports) are not listed, nor is the
    // connection to the port nobody asked about.
    assert!(got.iter().all(|e| e.socket_id != socket_inode(&c1.client)));
    assert!(!got.contains(&c4.expected()));

    let only6: BTreeSet<u16> = [a6.port()].into();
    assert_eq!(p.established_to(&only6).unwrap(), vec![c3.expected()]);
    let unused = TcpListener::bind("127.0.0.1:0").unwrap();
    let unused_port: BTreeSet<u16> = [unused.local_addr().unwrap().port()].into();
    assert_eq!(p.established_to(&unused_port).unwrap(), vec![]);

    // Closing the client leaves the server side in CLOSE_WAIT: no longer
    // established.
    let gone = c1.expected();
    drop(c1.client);
    let after = eventually(|| {
        let list = p.established_to(&both).unwrap();
        (!list.contains(&gone)).then_some(list)
    });
    assert_eq!(after, sorted(vec![c2.expected(), c3.expected()]));
    drop(c1.server);
    drop(c4);
}

#[test]
fn established_to_dual_stack_listener_reached_over_ipv4() {
    // A `[::]` listener takes IPv4 only where bindv6only is 0 (the default);
    // a host configured otherwise has nothing to test here.
    let bindv6only = std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only").unwrap_or_default();
    if bindv6only.trim() != "0" {
        eprintln!("skipped: net.ipv6.bindv6only = {bindv6only:?}");
        return;
    }
    let dual = TcpListener::bind("[::]:0").unwrap();
    let port = dual.local_addr().unwrap().port();
    let via4 = Conn::to(&dual, (std::net::Ipv4Addr::LOCALHOST, port).into());
    let via6 = Conn::to(&dual, (std::net::Ipv6Addr::LOCALHOST, port).into());
    // The kernel's view of the IPv4 one is v4-mapped: what is being tested.
    assert_eq!(
        via4.server.local_addr().unwrap().ip(),
        "::ffff:127.0.0.1".parse::<IpAddr>().unwrap()
    );
    let got = native().established_to(&[port].into()).unwrap();
    assert_eq!(got, sorted(vec![via4.expected(), via6.expected()]));
    let v4 = got
        .iter()
        .find(|e| e.socket_id == socket_inode(&via4.server))
        .unwrap();
    assert_eq!(v4.local, (std::net::Ipv4Addr::LOCALHOST, port).into());
    assert!(v4.remote.is_ipv4());
}

/// Cost of one call, kernel filter on: `cargo test -p lenscap --release
/// --lib established_to_timing -- --ignored --nocapture`.
#[test]
#[ignore = "timing, not a check"]
fn established_to_timing() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let _conns: Vec<Conn> = (0..4).map(|_| Conn::to(&l, addr)).collect();
    let p = native();
    let ports: BTreeSet<u16> = [addr.port()].into();
    for (label, set) in [
        ("1 port (kernel filter)", ports.clone()),
        (
            "2000 ports (state-only dump)",
            (1..=2000u16).chain([addr.port()]).collect(),
        ),
    ] {
        assert_eq!(
            p.established_to(&set)
                .unwrap()
                .iter()
                .filter(|e| e.local == addr)
                .count(),
            4
        );
        let start = Instant::now();
        for _ in 0..1000 {
            std::hint::black_box(p.established_to(&set).unwrap());
        }
        eprintln!("{label}: {:?} per call", start.elapsed() / 1000);
    }
}

#[test]
fn console_users_come_from_the_utmpx_file_by_name() {
    use crate::parse::utmpx::{DEAD_PROCESS, Record, USER_PROCESS, encode};
    let rec = |user: &str, line: &str, kind| Record {
        user: user.into(),
        line: line.into(),
        pid: 1,
        kind,
        time_s: 0,
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("utmpx");
    std::fs::write(
        &path,
        encode(&[
            rec("nobody", "console", USER_PROCESS),
            rec("root", "console", USER_PROCESS),
            // A Terminal session, a logged-out user and a name with no
            // account are no gui domain.
            rec("daemon", "ttys000", USER_PROCESS),
            rec("bin", "console", DEAD_PROCESS),
            rec("no-such-user-lenscap", "console", USER_PROCESS),
        ]),
    )
    .unwrap();
    let platform = Native::new(Tools {
        codesign: "/usr/bin/codesign".into(),
        sfltool: "/usr/bin/sfltool".into(),
        launchctl: "/bin/launchctl".into(),
        utmpx: path.clone(),
    });
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .unwrap()
        .uid
        .as_raw();
    let mut want = vec![0, nobody];
    want.sort_unstable();
    assert_eq!(platform.console_users().unwrap(), want);
    // No file: nobody has logged in.
    assert!(
        crate::platform::console_users(&dir.path().join("none"))
            .unwrap()
            .is_empty()
    );
    // Not a utmpx file: an error naming it.
    std::fs::write(&path, b"garbage").unwrap();
    let err = platform.console_users().unwrap_err().to_string();
    assert!(
        err.contains("utmpx") && err.contains(&*path.to_string_lossy()),
        "{err}"
    );
}

#[test]
fn the_periodic_timer_expires_at_once_then_every_period() {
    use std::io::Read;
    let period = Duration::from_millis(40);
    let created = Instant::now();
    let fd = Native::new(crate::config::Config::default().tools())
        .periodic_timer(period)
        .expect("timerfd");
    let mut timer = std::fs::File::from(fd);
    let mut count = [0u8; 8];
    // The first expiration is immediate (the daemon sweeps at start).
    let first = Instant::now();
    while timer.read(&mut count).is_err() {
        assert!(first.elapsed() < period, "the first tick waited a period");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Non-blocking: taken, nothing more to read until a period passed.
    let taken = Instant::now();
    let again = timer.read(&mut count);
    if taken.elapsed() < period {
        assert_eq!(
            again.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::WouldBlock)
        );
    }
    let mut expirations = 0;
    while expirations < 3 {
        std::thread::sleep(period / 2);
        if timer.read(&mut count).is_ok() {
            expirations += u64::from_ne_bytes(count);
        }
    }
    assert!(
        created.elapsed() >= period * 3,
        "three more expirations take three periods"
    );
}
