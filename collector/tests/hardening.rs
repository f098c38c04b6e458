//! Slow and greedy clients, and who may read /metrics, against a real
//! collector on 127.0.0.1 with raw sockets: a client that sends half a
//! header (or nothing, or half a body) is cut off after the timeout while
//! others are served; one address cannot hold more than its share of
//! connections, nor everyone all of them. Every wait is bounded: sockets
//! read with a 10 s timeout, retries are counted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Collector, Db};
use lenscap_collector::config::NetLimits;
use lenscap_collector::store::Role;

/// Longest a test waits on one socket read.
const READ_LIMIT: Duration = Duration::from_secs(10);

fn addr(c: &Collector) -> SocketAddr {
    c.base.strip_prefix("http://").unwrap().parse().unwrap()
}

/// A connection from 127.0.0.1.
fn connect(c: &Collector) -> TcpStream {
    let s = TcpStream::connect(addr(c)).unwrap();
    s.set_read_timeout(Some(READ_LIMIT)).unwrap();
    s
}

/// A connection from another loopback address (Linux routes all of
/// 127.0.0.0/8 to `lo`, so a client socket can be bound to 127.0.0.2).
fn connect_from(c: &Collector, source: &str) -> TcpStream {
    let to = addr(c);
    let s = c.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{source}:0").parse().unwrap()).unwrap();
        sock.connect(to).await.unwrap().into_std().unwrap()
    });
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(READ_LIMIT)).unwrap();
    assert_eq!(s.local_addr().unwrap().ip().to_string(), source);
    s
}

/// Everything the server sends until it closes the connection, and
/// whether it did close it (rather than our read timeout running out).
fn until_closed(s: &mut TcpStream) -> (String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&got).into_owned(), true);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (String::from_utf8_lossy(&got).into_owned(), false);
            }
            Err(e) => panic!("reading: {e}"),
        }
    }
}

/// One keep-alive request on `s`; the response head and body, read by
/// its Content-Length. `None` when the server closed instead.
fn request(s: &mut TcpStream, path: &str, token: Option<&str>) -> Option<String> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    if s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n{auth}\r\n").as_bytes())
        .is_err()
    {
        return None;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return Some(text);
            }
        }
        match s.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("reading an answer: {e}"),
        }
    }
}

fn served(s: &mut TcpStream) -> bool {
    request(s, "/healthz", None).is_some_and(|r| r.starts_with("HTTP/1.1 200"))
}

#[test]
fn slow_clients_are_cut_off_while_others_are_served() {
    let db = Db::sqlite();
    let c = Collector::start_config(&db, |cfg| {
        cfg.net = NetLimits {
            header_read_timeout: Duration::from_secs(1),
            body_read_timeout: Duration::from_secs(1),
            ..NetLimits::default()
        };
    });
    let enroll = c.token(Role::Enroll);
    let started = Instant::now();
    // Slowloris: half a header each, then nothing.
    let mut half_headers: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut s = connect(&c);
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: a")
                .unwrap();
            s
        })
        .collect();
    // One that connects and says nothing (not even enough to tell the
    // protocol), one that idles on a kept-alive connection, one that
    // sends half of its body.
    let mut silent = connect(&c);
    let mut idle = connect(&c);
    assert!(served(&mut idle));
    let mut half_body = connect(&c);
    half_body
        .write_all(
            format!(
                "POST /api/v1/enroll HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {enroll}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"host\":"
            )
            .as_bytes(),
        )
        .unwrap();

    // Meanwhile everyone else is served, at once.
    for _ in 0..5 {
        let mut s = connect(&c);
        assert!(served(&mut s));
    }
    let (s, _) = c.http.get(&c.url("/healthz"), None);
    assert_eq!(s, 200);

    // And every slow connection is closed by the server, not left to our
    // read timeout.
    for s in half_headers.iter_mut() {
        let (got, closed) = until_closed(s);
        assert!(closed, "a half-sent header kept its connection: {got:?}");
        assert!(got.is_empty() || got.starts_with("HTTP/1.1 408"), "{got:?}");
    }
    let (got, closed) = until_closed(&mut silent);
    assert!(closed && got.is_empty(), "silent: {got:?}");
    let (got, closed) = until_closed(&mut idle);
    assert!(closed && got.is_empty(), "idle keep-alive: {got:?}");
    let (got, _) = until_closed(&mut half_body);
    assert!(got.starts_with("HTTP/1.1 408"), "half a body: {got:?}");
    assert!(got.contains("body-read timeout"), "{got}");
    // All of that took about the timeouts, not our 10 s read limit.
    assert!(started.elapsed() < READ_LIMIT, "{:?}", started.elapsed());
}

#[test]
fn one_address_cannot_hold_more_than_its_share_of_connections() {
    let db = Db::sqlite();
    let c = Collector::start_config(&db, |cfg| {
        cfg.net = NetLimits {
            max_connections_per_ip: 2,
            header_read_timeout: Duration::from_secs(30),
            ..NetLimits::default()
        };
    });
    let reader = c.token(Role::Reader);
    // Two kept-alive connections from 127.0.0.1, each served once, so
    // both are surely counted.
    let mut a = connect(&c);
    let mut b = connect(&c);
    assert!(served(&mut a) && served(&mut b));
    // A third from 127.0.0.1 is closed on arrival...
    let mut third = connect(&c);
    assert!(
        !served(&mut third),
        "a third connection from 127.0.0.1 was served"
    );
    // ...while another address is served, and the two keep working.
    let mut other = connect_from(&c, "127.0.0.2");
    assert!(served(&mut other));
    assert!(served(&mut a) && served(&mut b));
    // A place freed is a place for the next connection (the server
    // notices the close at once; bounded retries all the same).
    drop(a);
    let mut got_in = false;
    for _ in 0..50 {
        let mut s = connect(&c);
        if served(&mut s) {
            got_in = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(got_in, "no connection from 127.0.0.1 after one closed");
    // Counted for the admin.
    let metrics = request(&mut other, "/metrics", Some(&reader)).unwrap();
    let refused = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("lenscap_collector_connections_refused_total{limit=\"per_address\"} ")
        })
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert!(refused >= 1, "{metrics}");
}

#[test]
fn the_total_connection_cap_holds_for_every_address() {
    let db = Db::sqlite();
    let c = Collector::start_config(&db, |cfg| {
        cfg.net = NetLimits {
            max_connections: 3,
            max_connections_per_ip: 0,
            header_read_timeout: Duration::from_secs(30),
            ..NetLimits::default()
        };
    });
    let mut held: Vec<TcpStream> = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
        .iter()
        .map(|ip| {
            let mut s = connect_from(&c, ip);
            assert!(served(&mut s), "{ip}");
            s
        })
        .collect();
    let mut fourth = connect_from(&c, "127.0.0.4");
    assert!(!served(&mut fourth), "a fourth connection was served");
    held.truncate(2);
    let mut got_in = false;
    for _ in 0..50 {
        let mut s = connect_from(&c, "127.0.0.4");
        if served(&mut s) {
            got_in = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(got_in, "no connection after one of three closed");
}

#[test]
fn metrics_need_a_reader_unless_public() {
    let db = Db::sqlite();
    let c = Collector::start(&db);
    let reader = c.token(Role::Reader);
    let admin = c.token(Role::Admin);
    let enroll = c.token(Role::Enroll);
    let (s, text) = c.http.get(&c.url("/metrics"), None);
    assert_eq!(s, 401, "{text}");
    assert!(!text.contains("lenscap_collector_"), "{text}");
    assert_eq!(c.http.get(&c.url("/metrics"), Some(&enroll)).0, 403);
    assert_eq!(
        c.http.get(&c.url("/metrics"), Some("lc_reader_0000")).0,
        401
    );
    for t in [&reader, &admin] {
        let (s, text) = c.http.get(&c.url("/metrics"), Some(t));
        assert_eq!(s, 200, "{text}");
        assert!(
            text.contains("lenscap_collector_connections_open"),
            "{text}"
        );
    }
    assert_eq!(c.http.get(&c.url("/healthz"), None).0, 200);
    c.stop();

    let c = Collector::start_config(&db, |cfg| cfg.public_metrics = true);
    let (s, text) = c.http.get(&c.url("/metrics"), None);
    assert_eq!(s, 200, "{text}");
    assert!(text.contains("lenscap_collector_hosts"), "{text}");
}

#[test]
fn http2_is_not_spoken_so_no_connection_escapes_the_idle_limit() {
    let db = Db::sqlite();
    let c = Collector::start(&db);
    let mut s = connect(&c);
    // HTTP/2 "prior knowledge": the preface and an empty SETTINGS frame.
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    let (got, closed) = until_closed(&mut s);
    assert!(closed, "an HTTP/2 connection stayed open");
    // An HTTP/2 server would answer with its own SETTINGS frame.
    assert!(
        got.is_empty() || got.starts_with("HTTP/1.1 "),
        "answered in HTTP/2: {:?}",
        got.as_bytes()
    );
}
