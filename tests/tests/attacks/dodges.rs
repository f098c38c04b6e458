//! Probe and heuristic dodges: each helper below is started by eve's own
//! KeepAlive LaunchAgent and serves any web page, but tries one trick to
//! look like something lenscap leaves alone. Each must still be judged
//! `remediate` and contained (stopped, booted out, files quarantined).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lenscap_e2e::wait_for_file;

use super::{Attack, CONTAIN, DODGER, ROGUE, assert_remediated, can_attack, tail};

/// One dodging helper: `src` installed at `rel` in eve's home, run with
/// `args` (and `--port-file`) by the KeepAlive LaunchAgent `label`.
struct Dodge {
    a: Attack,
    label: &'static str,
    exe: PathBuf,
    plist: PathBuf,
    pid: u32,
    port: u16,
}

impl Dodge {
    fn new(label: &'static str, src: &str, rel: &str, args: &[&str]) -> Dodge {
        let mut a = Attack::setup();
        let exe = a.install(Path::new(src), rel);
        let port_file = a.port_file(label);
        let mut argv = vec![exe.to_str().unwrap()];
        argv.extend_from_slice(args);
        argv.extend(["--port-file", port_file.to_str().unwrap()]);
        let plist = a.agent(label, &argv);
        a.start_launchd();
        let (pid, port) = a.wait_job(label, label);
        Dodge {
            a,
            label,
            exe,
            plist,
            pid,
            port,
        }
    }

    /// Start the daemon; the helper must be judged remediate and contained
    /// within `within`.
    fn assert_caught(mut self, extra: &[(&str, plist::Value)], within: Duration) {
        let d = self.a.start_daemon(extra);
        let started = Instant::now();
        assert_remediated(&self.a, &d, &[&self.exe], within);
        self.a.assert_contained(
            &d,
            self.label,
            self.pid,
            &self.exe,
            &[&self.exe, &self.plist],
        );
        eprintln!(
            "{}: caught {:.1} s after the daemon's first sweep",
            self.label,
            started.elapsed().as_secs_f64()
        );
    }
}

/// One HTTP request to the helper; `None` when it closes without an answer.
fn ask(addr: SocketAddr, agent: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: {agent}\r\nOrigin: http://evil.example\r\n\r\n"
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    (!reply.is_empty()).then_some(reply)
}

const BROWSER: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 \
                       (KHTML, like Gecko) Version/17.0 Safari/605.1.15";

/// The dodging fixture does what the tests below rely on (no root needed).
#[test]
fn the_dodging_helper_shuns_scanners_and_stays_silent() {
    let dir = lenscap_e2e::temp_tree();
    let start = |args: &[&str], name: &str| {
        let port_file = dir.path().join(name);
        let proc = lenscap_e2e::Proc::spawn(
            std::process::Command::new(DODGER)
                .args(args)
                .arg("--port-file")
                .arg(&port_file),
        );
        let port: u16 = wait_for_file(&port_file, Duration::from_secs(10))
            .parse()
            .unwrap();
        (proc, SocketAddr::from(([127, 0, 0, 1], port)))
    };
    let (_shy, addr) = start(&["--shun-agent", "lenscap"], "shy");
    assert_eq!(ask(addr, "lenscap-probe/0.1"), None, "answered the scanner");
    assert_eq!(ask(addr, "LensCap"), None, "case-insensitive");
    let reply = ask(addr, BROWSER).expect("answers a browser");
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.contains("Access-Control-Allow-Origin: *"), "{reply}");

    let (_quiet, addr) = start(&["--silent-ms", "1500"], "quiet");
    let t = Instant::now();
    let reply = ask(addr, BROWSER).expect("answers after the silence");
    assert!(
        t.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
}

/// (a) It closes the connection on anything whose User-Agent says
/// `lenscap` and serves browsers normally.
#[test]
fn a_helper_that_shuns_the_scanners_user_agent_is_still_remediated() {
    if !can_attack("dodge: user agent") {
        return;
    }
    let d = Dodge::new(
        "com.eve.shy",
        DODGER,
        ".shy-agent/shyd",
        &["--shun-agent", "lenscap"],
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], d.port));
    assert_eq!(ask(addr, "lenscap-probe/0.1"), None, "the dodge works");
    assert!(ask(addr, BROWSER).is_some(), "it serves browsers");
    d.assert_caught(&[], CONTAIN);
}

/// (b) After each accept it says nothing for 3 s (ten times the default
/// probe timeout), then serves normally: what did not answer must be asked
/// again, patiently.
#[test]
fn a_helper_silent_for_three_seconds_after_each_accept_is_still_remediated() {
    if !can_attack("dodge: silent") {
        return;
    }
    let d = Dodge::new(
        "com.eve.quiet",
        DODGER,
        ".quiet-agent/quietd",
        &["--silent-ms", "3000"],
    );
    d.assert_caught(&[], Duration::from_secs(40));
}

/// (c) App Translocation is where Gatekeeper runs a downloaded app a person
/// opened; a folder of eve's that is merely named so is not that.
#[test]
fn a_folder_merely_named_app_translocation_excuses_nothing() {
    if !can_attack("dodge: AppTranslocation") {
        return;
    }
    let d = Dodge::new(
        "com.eve.translocated",
        ROGUE,
        "AppTranslocation/0A1B2C3D-4E5F/d/syncd",
        &["--cors", "star"],
    );
    d.assert_caught(&[], CONTAIN);
}

/// (d) node_modules, a project's .venv and ~/.local/bin are where
/// developers' tools live; a plist that starts a helper from one is still
/// persistence starting a helper.
#[test]
fn toolchain_folders_excuse_nothing_a_plist_starts() {
    if !can_attack("dodge: toolchain folders") {
        return;
    }
    let mut a = Attack::setup();
    let places = [
        ("dev.eve.site", "code/site/node_modules/.bin/site-sync"),
        ("dev.eve.api", "code/api/.venv/bin/api-sync"),
        ("dev.eve.local", ".local/bin/eve-sync"),
    ];
    let mut helpers = Vec::new();
    for (label, rel) in places {
        let exe = a.install(Path::new(ROGUE), rel);
        let port_file = a.port_file(label);
        let plist = a.agent(
            label,
            &[
                exe.to_str().unwrap(),
                "--cors",
                "star",
                "--port-file",
                port_file.to_str().unwrap(),
            ],
        );
        helpers.push((label, exe, plist));
    }
    a.start_launchd();
    let pids: Vec<u32> = places
        .iter()
        .map(|(label, _)| a.wait_job(label, label).0)
        .collect();
    let d = a.start_daemon(&[]);
    let exes: Vec<&Path> = helpers.iter().map(|(_, exe, _)| exe.as_path()).collect();
    assert_remediated(&a, &d, &exes, CONTAIN);
    for ((label, exe, plist), pid) in helpers.iter().zip(pids) {
        a.assert_contained(&d, label, pid, exe, &[exe, plist]);
    }
}

/// (e) A process with a controlling terminal looks like a person's; the
/// plist runs the helper under `script`, which gives it a pty.
#[test]
fn a_helper_a_plist_runs_under_a_pty_is_still_a_helper() {
    if !can_attack("dodge: pty") {
        return;
    }
    let script = Path::new("/usr/bin/script");
    if !script.exists() {
        eprintln!("dodge: pty: skipped — no /usr/bin/script (util-linux) here");
        return;
    }
    let mut a = Attack::setup();
    let exe = a.install(Path::new(ROGUE), ".tty-agent/ttyd");
    let port_file = a.port_file("tty");
    let label = "com.eve.tty";
    // `exec`: the helper replaces the shell `script` starts, whatever
    // shell that is, so it is the direct child of the job's process.
    let command = format!(
        "exec '{}' --cors star --image --port-file '{}'",
        exe.display(),
        port_file.display()
    );
    let plist = a.agent(label, &["/usr/bin/script", "-qc", &command, "/dev/null"]);
    a.start_launchd();
    wait_for_file(&port_file, Duration::from_secs(10));
    let pid = lenscap_e2e::wait_until(Duration::from_secs(5), "the helper's pid", || {
        pid_of_exe(&exe)
    });
    assert_ne!(
        tty_nr(pid),
        Some(0),
        "the helper has a controlling terminal"
    );
    let job = a.standin().job_pid(&Attack::target(label)).unwrap();
    assert_ne!(
        job, pid,
        "the job's process is script, the helper its child"
    );

    let d = a.start_daemon(&[]);
    assert_remediated(&a, &d, &[&exe], CONTAIN);
    a.assert_contained(&d, label, pid, &exe, &[&exe, &plist]);
    assert!(
        !lenscap_e2e::pid_running(job),
        "script (pid {job}) still runs; log:\n{}",
        tail(&d.log())
    );
}

/// (f) Bound to one of this machine's own non-loopback addresses: a page
/// in the browser reaches it as well as it would reach 127.0.0.1.
#[test]
fn a_helper_bound_to_a_lan_address_is_still_remediated() {
    if !can_attack("dodge: LAN address") {
        return;
    }
    let Some(ip) = lan_address() else {
        eprintln!(
            "dodge: LAN address: skipped — this machine has no IPv4 address on a \
             non-loopback interface (the test sends probes only to such an address)"
        );
        return;
    };
    let bind = format!("{ip}:0");
    let d = Dodge::new(
        "com.eve.lan",
        ROGUE,
        ".lan-agent/land",
        &["--bind", &bind, "--cors", "star"],
    );
    let reply = ask(SocketAddr::new(IpAddr::V4(ip), d.port), BROWSER);
    assert!(reply.is_some(), "it serves on {ip}:{}", d.port);
    d.assert_caught(&[], CONTAIN);
}

/// The pid of a running process whose executable is `exe`.
fn pid_of_exe(exe: &Path) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p == exe)
                && lenscap_e2e::pid_running(*pid)
        })
}

/// `tty_nr` of `/proc/<pid>/stat` (field 7): 0 when it has no terminal.
fn tty_nr(pid: u32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(4)?
        .parse()
        .ok()
}

/// An IPv4 address of this machine on an interface that is up and not
/// loopback (e.g. eth0's).
fn lan_address() -> Option<Ipv4Addr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        let flags = ifa.ifa_flags;
        if ifa.ifa_addr.is_null()
            || flags & libc::IFF_UP as u32 == 0
            || flags & libc::IFF_LOOPBACK as u32 != 0
        {
            continue;
        }
        // SAFETY: ifa_addr is non-null; the family says how to read it.
        if unsafe { (*ifa.ifa_addr).sa_family } != libc::AF_INET as libc::sa_family_t {
            continue;
        }
        // SAFETY: an AF_INET address is a sockaddr_in.
        let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
        let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
        if !ip.is_loopback() && !ip.is_unspecified() && !ip.is_link_local() {
            found = Some(ip);
            break;
        }
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}
