//! The `rogue-helper` fixture does what the end-to-end tests rely on: it
//! listens where told, announces its port atomically, answers like a
//! ZoomOpener-style helper, and can share its socket with a child process.

// Test code: an unwrap that fails is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

/// The fixture, killed (with everything it spawned that we know of) on drop
/// so a failing assertion leaves no server behind.
struct Rogue {
    child: Child,
    port: u16,
    others: Vec<u32>,
}

impl Rogue {
    fn start(args: &[&str], dir: &Path) -> Rogue {
        let port_file = dir.join("port");
        let child = Command::new(env!("CARGO_BIN_EXE_rogue-helper"))
            .args(args)
            .arg("--port-file")
            .arg(&port_file)
            .spawn()
            .unwrap();
        let mut rogue = Rogue {
            child,
            port: 0,
            others: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while rogue.port == 0 {
            assert!(Instant::now() < deadline, "no port file within 10 s");
            assert!(
                rogue.child.try_wait().unwrap().is_none(),
                "rogue-helper exited early"
            );
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                rogue.port = text.trim().parse().unwrap();
            } else {
                thread::sleep(Duration::from_millis(20));
            }
        }
        rogue
    }
}

impl Drop for Rogue {
    fn drop(&mut self) {
        for pid in &self.others {
            // SAFETY: kill(2) with a pid we spawned; no memory involved.
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `GET` with a foreign Origin; the response head and body.
fn get(host: &str, port: u16, path: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect((host, port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nOrigin: http://evil.example\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&reply[..split]).into_owned();
    (head, reply[split + 4..].to_vec())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn serves_cors_and_the_status_gif() {
    let dir = tempfile::tempdir().unwrap();
    let rogue = Rogue::start(&["--cors", "star", "--image"], dir.path());
    for path in ["/", "/launch?action=join&confno=1"] {
        let (head, body) = get("127.0.0.1", rogue.port, path);
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert_eq!(header(&head, "Access-Control-Allow-Origin"), Some("*"));
        assert_eq!(header(&head, "Content-Type"), Some("image/gif"));
        assert!(
            body.starts_with(b"GIF89a") && body.ends_with(b"\x3b"),
            "{body:?}"
        );
        // Width × height = 2 × 1: "launched".
        assert_eq!(&body[6..10], &[2, 0, 1, 0]);
    }
    drop(rogue);

    // IPv6 loopback only, reflecting the Origin.
    let dir = tempfile::tempdir().unwrap();
    let rogue = Rogue::start(&["--bind", "[::1]:0", "--cors", "reflect"], dir.path());
    let (head, body) = get("::1", rogue.port, "/");
    assert_eq!(
        header(&head, "Access-Control-Allow-Origin"),
        Some("http://evil.example")
    );
    assert_eq!(body, b"rogue-helper\n");
    assert!(
        TcpStream::connect(("127.0.0.1", rogue.port)).is_err(),
        "bound beyond ::1"
    );
}

/// Parent PID of `pid`, from the field after the `(comm)` in /proc/pid/stat.
fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn socket_inodes(pid: u32) -> BTreeSet<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .filter(|l| l.starts_with("socket:["))
        .collect()
}

fn gone_within(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn share_with_child_gives_one_socket_two_serving_owners() {
    let dir = tempfile::tempdir().unwrap();
    let mut rogue = Rogue::start(&["--share-with-child", "--cors", "none"], dir.path());
    let parent = rogue.child.id();
    let children: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&pid| ppid(pid) == Some(parent))
        .collect();
    assert_eq!(children.len(), 1, "children of {parent}: {children:?}");
    let child = children[0];
    rogue.others.push(child);
    let exe = |pid: u32| std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(exe(child), exe(parent));
    let shared: Vec<_> = socket_inodes(parent)
        .intersection(&socket_inodes(child))
        .cloned()
        .collect();
    assert_eq!(
        shared.len(),
        1,
        "one listening socket held by both: {shared:?}"
    );

    // Both accept on it: the kernel hands connections to either.
    let mut served = BTreeSet::new();
    for _ in 0..200 {
        let (head, _) = get("127.0.0.1", rogue.port, "/");
        served.insert(
            header(&head, "X-Rogue-Pid")
                .unwrap()
                .parse::<u32>()
                .unwrap(),
        );
        if served.len() == 2 {
            break;
        }
    }
    assert_eq!(served, BTreeSet::from([parent, child]));

    // SIGTERM ends each promptly; the parent reaps its child.
    // SAFETY: kill(2) on processes this test started.
    unsafe { libc::kill(child as i32, libc::SIGTERM) };
    assert!(
        gone_within(child, Duration::from_secs(5)),
        "child {child} survived SIGTERM"
    );
    // SAFETY: as above.
    unsafe { libc::kill(parent as i32, libc::SIGTERM) };
    let status = rogue.child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGTERM)
    );
    rogue.others.clear();
}

/// What the lenscap probe makes of each fixture mode: the fixture and the
/// probe agree before the end-to-end tests rely on both.
#[test]
fn the_probe_reads_each_mode() {
    use lenscap::model::{Cors, HttpProbe};
    use lenscap::observe::probe::probe_all;
    type Check = fn(&HttpProbe) -> bool;
    let cases: [(&[&str], Check); 4] = [
        (&["--cors", "star", "--image"], |p| {
            p.http && p.cors == Cors::Wildcard && p.image
        }),
        (&["--bind", "[::1]:0", "--cors", "reflect"], |p| {
            p.cors == Cors::Reflected && !p.image
        }),
        (&["--websocket"], |p| {
            p.websocket && p.cors == Cors::None && p.status == Some(200)
        }),
        (&["--raw"], |p| {
            !p.http
                && p.error
                    .as_deref()
                    .is_some_and(|e| e.contains("SSH-2.0-rogue"))
        }),
    ];
    for (args, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let rogue = Rogue::start(args, dir.path());
        let ip = if args.contains(&"[::1]:0") {
            "::1"
        } else {
            "127.0.0.1"
        };
        let key = (ip.parse().unwrap(), rogue.port);
        let probe = &probe_all(&[key], Duration::from_secs(2), 1)[&key];
        assert!(expected(probe), "{args:?}: {probe:?}");
    }
}
