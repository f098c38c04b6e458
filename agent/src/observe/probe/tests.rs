//! Tests of the probe against real servers on 127.0.0.1 and ::1, each a
//! few lines of std networking so the probe meets actual sockets: silent
//! peers, peers that speak first, redirects, upgrades.

// Test code: an unwrap that fails is a failed test, with its location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use super::*;

const TIMEOUT: Duration = Duration::from_millis(500);

/// A tiny GIF (1×1), as the Zoom-style image trick answers.
const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b";

/// A server answering every request with `respond(request_head)`, recording
/// each request head it saw.
struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start<F>(bind: &str, respond: F) -> Server
    where
        F: Fn(&str) -> Vec<u8> + Send + Sync + 'static,
    {
        let listener = TcpListener::bind(bind).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        let respond = Arc::new(respond);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (log, respond) = (Arc::clone(&log), Arc::clone(&respond));
                thread::spawn(move || {
                    let mut stream = stream;
                    let head = read_head(&mut stream);
                    log.lock().unwrap().push(head.clone());
                    let _ = stream.write_all(&respond(&head));
                    // Hold the connection a while, as a lazy server would:
                    // the probe must not wait for us to close.
                    thread::sleep(Duration::from_secs(3));
                });
            }
        });
        Server { addr, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    fn probe(&self) -> HttpProbe {
        let key = (self.addr.ip(), self.addr.port());
        probe_all(&[key], TIMEOUT, 4).remove(&key).unwrap()
    }
}

fn read_head(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn ok_with(headers: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

#[test]
fn cors_star_on_v4_and_v6() {
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let s = Server::start(bind, |_| {
            ok_with(
                "Access-Control-Allow-Origin: *\r\nServer: rogue/1\r\nContent-Type: text/plain\r\n",
                b"ok",
            )
        });
        let p = s.probe();
        assert!(p.http, "{bind}: {p:?}");
        assert_eq!((p.status, p.cors), (Some(200), Cors::Wildcard), "{bind}");
        assert_eq!(p.server.as_deref(), Some("rogue/1"));
        assert_eq!(p.content_type.as_deref(), Some("text/plain"));
        assert!(!p.image && !p.websocket && p.error.is_none(), "{p:?}");
    }
}

#[test]
fn requests_are_the_safe_ones_and_look_like_a_browser() {
    let s = Server::start("127.0.0.1:0", |_| ok_with("", b""));
    s.probe();
    let reqs = s.requests();
    assert_eq!(reqs.len(), 3, "{reqs:?}");
    let hosts = [
        format!("127.0.0.1:{}", s.addr.port()),
        format!("localhost:{}", s.addr.port()),
    ];
    let origin = header(&reqs[0], "Origin").unwrap().to_string();
    assert!(origin.starts_with("https://"), "{origin}");
    for r in &reqs {
        // One page asks: the three requests share their origin.
        assert_eq!(header(r, "Origin"), Some(origin.as_str()));
        // One page names the machine one way for all three.
        assert_eq!(header(r, "Host"), header(&reqs[0], "Host"));
        assert!(hosts.iter().any(|h| header(r, "Host") == Some(h)), "{r}");
        assert_eq!(header(r, "User-Agent"), Some(USER_AGENT));
        assert!(!r.to_ascii_lowercase().contains("lenscap"), "{r}");
        assert!(header(r, "Cookie").is_none() && header(r, "Authorization").is_none());
    }
    let find = |pred: &dyn Fn(&String) -> bool| reqs.iter().find(|r| pred(r)).unwrap();
    let options = find(&|r| r.starts_with("OPTIONS"));
    let ws = find(&|r| header(r, "Upgrade").is_some());
    let get = find(&|r| r.starts_with("GET") && header(r, "Upgrade").is_none());
    assert!(get.starts_with("GET / HTTP/1.1\r\n"));
    assert_eq!(header(get, "Sec-Fetch-Site"), Some("cross-site"));
    assert_eq!(header(ws, "Upgrade"), Some("websocket"));
    assert!(header(ws, "Sec-WebSocket-Key").is_some());
    assert!(options.starts_with("OPTIONS / HTTP/1.1\r\n"));
    assert_eq!(
        header(options, "Access-Control-Request-Method"),
        Some("GET")
    );
    // The next probe comes from another page.
    s.probe();
    let next = s.requests();
    assert_eq!(next.len(), 6);
    let second = header(&next[3], "Origin").unwrap();
    assert_ne!(second, origin);
    let keys: Vec<&str> = next
        .iter()
        .filter_map(|r| header(r, "Sec-WebSocket-Key"))
        .collect();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1]);
}

#[test]
fn a_helper_hanging_up_on_the_old_give_away_is_still_seen() {
    // What a helper could do against older versions: close the connection,
    // unanswered, when the User-Agent names lenscap.
    let addr = hang_up_on("lenscap");
    let p = probe_addr(addr, TIMEOUT);
    assert!(p.http && p.status == Some(200), "{p:?}");
    assert_eq!(p.cors, Cors::Reflected);
}

/// A server that closes every connection unanswered whose request head
/// contains `give_away` (any case), and otherwise reflects the Origin.
fn hang_up_on(give_away: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let head = read_head(&mut stream);
                if head.to_ascii_lowercase().contains(give_away) {
                    return;
                }
                let origin = header(&head, "Origin").unwrap_or("").to_string();
                let _ = stream.write_all(&ok_with(
                    &format!("Access-Control-Allow-Origin: {origin}\r\n"),
                    b"ok",
                ));
                thread::sleep(Duration::from_secs(1));
            });
        }
    });
    addr
}

#[test]
fn a_remembered_origin_is_not_a_reflection() {
    // A helper that allows whatever origin first asked it: the first probe
    // sees its own origin reflected, the next sees someone else's.
    let first: Arc<Mutex<Option<String>>> = Arc::default();
    let s = Server::start("127.0.0.1:0", move |req| {
        let origin = header(req, "Origin").unwrap_or("").to_string();
        let allowed = first.lock().unwrap().get_or_insert(origin).clone();
        ok_with(&format!("Access-Control-Allow-Origin: {allowed}\r\n"), b"")
    });
    assert_eq!(s.probe().cors, Cors::Reflected);
    assert_eq!(s.probe().cors, Cors::Specific);
}

#[test]
fn scan_asks_once_more_when_the_first_answer_settles_nothing() {
    // Hangs up on its first three connections (one probe), then answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for (i, mut stream) in listener.incoming().flatten().enumerate() {
            thread::spawn(move || {
                read_head(&mut stream);
                if i >= 3 {
                    let _ = stream.write_all(&ok_with("", b"hi"));
                    thread::sleep(Duration::from_secs(1));
                }
            });
        }
    });
    let key = (addr.ip(), addr.port());
    let once = probe_all_retrying(&[key], TIMEOUT, 1, None);
    assert!(!once[&key].http, "{:?}", once[&key]);
    let twice = probe_all_retrying(&[key], TIMEOUT, 1, Some(Duration::from_millis(50)));
    assert!(twice[&key].http, "{:?}", twice[&key]);
    // A listener that lets every request time out is not asked again:
    // its connections are counted.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = listener.local_addr().unwrap();
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let held = Arc::clone(&accepted);
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            held.lock().unwrap().push(stream);
        }
    });
    let key = (silent.ip(), silent.port());
    let p = probe_all_retrying(&[key], TIMEOUT, 1, Some(Duration::from_millis(10)));
    assert_eq!(p[&key].error.as_deref(), Some("no answer within 500 ms"));
    thread::sleep(Duration::from_millis(100));
    assert_eq!(accepted.lock().unwrap().len(), 3);
}

#[test]
fn reflected_origin_and_none() {
    let s = Server::start("127.0.0.1:0", |req| {
        let origin = header(req, "Origin").unwrap_or("");
        ok_with(&format!("Access-Control-Allow-Origin: {origin}\r\n"), b"hi")
    });
    assert_eq!(s.probe().cors, Cors::Reflected);
    let s = Server::start("[::1]:0", |_| {
        ok_with("Content-Type: text/html\r\n", b"<p>")
    });
    let p = s.probe();
    assert_eq!((p.http, p.cors), (true, Cors::None));
    // CORS only on the preflight still counts.
    let s = Server::start("127.0.0.1:0", |req| {
        if req.starts_with("OPTIONS") {
            b"HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Origin: https://zoom.us\r\n\r\n"
                .to_vec()
        } else {
            ok_with("", b"")
        }
    });
    assert_eq!(s.probe().cors, Cors::Specific);
}

#[test]
fn image_answers() {
    // No Content-Type: the GIF magic gives it away.
    let s = Server::start("127.0.0.1:0", |_| ok_with("", GIF));
    let p = s.probe();
    assert!(p.image && p.content_type.is_none(), "{p:?}");
    let s = Server::start("[::1]:0", |_| ok_with("Content-Type: image/png\r\n", b""));
    assert!(s.probe().image);
}

#[test]
fn redirect_is_recorded_not_followed() {
    let target = Server::start("127.0.0.1:0", |_| ok_with("", b"followed"));
    let location = format!("http://{}/launch", target.addr);
    let s = Server::start("127.0.0.1:0", move |_| {
        format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n")
            .into_bytes()
    });
    let p = s.probe();
    assert_eq!(p.status, Some(302));
    thread::sleep(Duration::from_millis(100));
    assert!(target.requests().is_empty(), "redirect was followed");
}

#[test]
fn websocket_upgrade_closes_quickly() {
    let s = Server::start("[::1]:0", |req| {
        if header(req, "Upgrade") == Some("websocket") {
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
                .to_vec()
        } else {
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_vec()
        }
    });
    let started = Instant::now();
    let p = s.probe();
    assert!(p.websocket && p.http && p.status == Some(400), "{p:?}");
    // The server holds every connection open for 3 s; we did not wait.
    assert!(started.elapsed() < TIMEOUT, "{:?}", started.elapsed());
}

#[test]
fn upgrade_status_line_alone_is_enough() {
    // The 101 line arrives, the headers never do: we hang up at once.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let head = read_head(&mut stream);
                if header(&head, "Upgrade").is_some() {
                    let _ = stream.write_all(b"HTTP/1.1 101 Switching Protocols\r\n");
                }
                thread::sleep(Duration::from_secs(3));
            });
        }
    });
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcome = rt.block_on(exchange(
        addr,
        Kind::WebSocket,
        TIMEOUT,
        &Disguise::random(),
    ));
    assert!(started.elapsed() < TIMEOUT / 2, "{:?}", started.elapsed());
    assert!(
        matches!(&outcome, Outcome::Http(r) if r.websocket),
        "{outcome:?}"
    );
}

/// A listener whose every connection gets `greet` written at once (before
/// the request is read), then the request is read and the connection
/// closed — or, with `greet` = None, held silently.
fn raw_server(bind: &str, greet: Option<&'static [u8]>) -> SocketAddr {
    let listener = TcpListener::bind(bind).unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let mut held = Vec::new();
        for mut stream in listener.incoming().flatten() {
            match greet {
                Some(bytes) => {
                    let _ = stream.write_all(bytes);
                    read_head(&mut stream);
                }
                None => held.push(stream),
            }
        }
    });
    addr
}

fn probe_addr(addr: SocketAddr, timeout: Duration) -> HttpProbe {
    probe_all(&[(addr.ip(), addr.port())], timeout, 1)
        .into_values()
        .next()
        .unwrap()
}

#[test]
fn silent_server_costs_one_timeout() {
    let addr = raw_server("127.0.0.1:0", None);
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let probed = rt.block_on(probe_settled(addr, timeout));
    let took = started.elapsed();
    assert!(took >= timeout && took < timeout * 2, "took {took:?}");
    assert!(!probed.settled && probed.silent);
    let p = probed.probe;
    assert!(!p.http);
    assert_eq!(p.error.as_deref(), Some("no answer within 300 ms"));
}

#[test]
fn ssh_banner_first_is_not_http() {
    let addr = raw_server("[::1]:0", Some(b"SSH-2.0-rogue\r\n"));
    let p = probe_addr(addr, TIMEOUT);
    assert!(!p.http && p.status.is_none(), "{p:?}");
    assert_eq!(
        p.error.as_deref(),
        Some("not HTTP: reply starts \"SSH-2.0-rogue\\r\\n\"")
    );
}

#[test]
fn tls_alert_reply() {
    // What a TLS server sends to plaintext: a fatal protocol_version alert.
    let addr = raw_server(
        "127.0.0.1:0",
        Some(&[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46]),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let probed = rt.block_on(probe_settled(addr, TIMEOUT));
    // An HTTPS server has shown what it is; nothing to ask again.
    assert!(probed.settled);
    let p = probed.probe;
    assert!(!p.http);
    assert_eq!(p.error.as_deref(), Some("TLS alert: HTTPS listener?"));
}

#[test]
fn refused_port() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = probe_addr(SocketAddr::from(([127, 0, 0, 1], port)), TIMEOUT);
    assert!(!p.http);
    assert_eq!(p.error.as_deref(), Some("connection refused"));
}

#[test]
fn wildcard_listeners_probed_via_loopback_and_keyed_by_own_address() {
    let v4 = Server::start("0.0.0.0:0", |_| {
        ok_with("Access-Control-Allow-Origin: *\r\n", b"")
    });
    let v6 = Server::start("[::]:0", |_| ok_with("", b""));
    let keys = [
        (IpAddr::V4(Ipv4Addr::UNSPECIFIED), v4.addr.port()),
        (IpAddr::V6(Ipv6Addr::UNSPECIFIED), v6.addr.port()),
    ];
    let results = probe_all(&keys, TIMEOUT, 2);
    assert_eq!(results.keys().copied().collect::<Vec<_>>(), keys.to_vec());
    assert_eq!(results[&keys[0]].cors, Cors::Wildcard);
    assert!(results[&keys[1]].http);
    let host = header(&v6.requests()[0], "Host").unwrap().to_string();
    let port = v6.addr.port();
    assert!(
        host == format!("[::1]:{port}") || host == format!("localhost:{port}"),
        "{host}"
    );
}

#[test]
fn address_mapping() {
    let m = |s: &str| reachable(s.parse().unwrap(), 80).ip().to_string();
    assert_eq!(m("0.0.0.0"), "127.0.0.1");
    assert_eq!(m("::"), "::1");
    assert_eq!(m("::ffff:127.0.0.1"), "127.0.0.1");
    assert_eq!(m("::ffff:0.0.0.0"), "127.0.0.1");
    assert_eq!(m("192.168.1.4"), "192.168.1.4");
}

#[tokio::test]
async fn probe_all_works_inside_a_runtime() {
    let s = Server::start("127.0.0.1:0", |_| ok_with("", b""));
    let key = (s.addr.ip(), s.addr.port());
    assert!(probe_all(&[key], TIMEOUT, 1)[&key].http);
    assert!(probe(s.addr, TIMEOUT).await.http);
    assert!(probe_all(&[], TIMEOUT, 0).is_empty());
}

#[test]
fn combine_prefers_get_and_reports_reasons() {
    let reply = |status, cors| HttpReply {
        status,
        server: None,
        content_type: None,
        cors,
        websocket: status == 101,
        image: false,
        private_network: false,
        truncated: false,
        wants_body: 0,
    };
    let timeout = Outcome::TimedOut("no answer within 5 ms".into());
    let p = combine(
        &Outcome::Http(reply(204, Cors::Wildcard)),
        &timeout,
        &timeout,
    );
    assert_eq!((p.http, p.status, p.cors), (true, None, Cors::Wildcard));
    assert_eq!(p.error.as_deref(), Some("GET /: no answer within 5 ms"));
    let tls = Outcome::NotHttp(NotHttp::Tls { alert: true });
    let p = combine(&timeout, &tls, &Outcome::Failed("x".into()));
    assert_eq!(
        (p.http, p.error.as_deref()),
        (false, Some("TLS alert: HTTPS listener?"))
    );
    // ACAO on a 101 is not CORS; the 101 is the WebSocket fact.
    let p = combine(
        &timeout,
        &Outcome::Http(reply(200, Cors::None)),
        &Outcome::Http(reply(101, Cors::Wildcard)),
    );
    assert_eq!((p.cors, p.websocket, p.error), (Cors::None, true, None));
}

/// A helper that opts in to the private-network preflight: it answers
/// `Access-Control-Allow-Private-Network: true` to the preflight that asks.
/// One that does not ask gets nothing; a GET that carries the header is not
/// an opt-in (only a preflight answer is).
#[test]
fn a_helper_opting_in_to_the_private_network_preflight_is_seen() {
    let s = Server::start("127.0.0.1:0", |req| {
        if req.starts_with("OPTIONS")
            && header(req, "Access-Control-Request-Private-Network") == Some("true")
        {
            ok_with(
                "Access-Control-Allow-Origin: *\r\nAccess-Control-Allow-Private-Network: true\r\n",
                b"",
            )
        } else {
            ok_with("", b"")
        }
    });
    let p = s.probe();
    assert!(p.http && p.private_network, "{p:?}");
    assert!(
        s.requests().iter().any(|r| r.starts_with("OPTIONS")
            && header(r, "Access-Control-Request-Private-Network") == Some("true")),
        "the preflight asks for a private network: {:?}",
        s.requests()
    );

    let plain = Server::start("127.0.0.1:0", |_| ok_with("", b""));
    assert!(!plain.probe().private_network);
    let on_get_only = Server::start("127.0.0.1:0", |req| {
        if req.starts_with("GET") {
            ok_with("Access-Control-Allow-Private-Network: true\r\n", b"")
        } else {
            ok_with("", b"")
        }
    });
    assert!(!on_get_only.probe().private_network);
}

/// A WebSocket that checks `Origin` refuses the probe's foreign page; one
/// that does not accepts it. `websocket` says which.
#[test]
fn a_websocket_refusing_a_foreign_origin_is_not_open_to_any_page() {
    let checks = Server::start("127.0.0.1:0", |req| {
        let from_us = header(req, "Origin").is_some_and(|o| o == "https://app.example.com");
        if header(req, "Upgrade") == Some("websocket") && from_us {
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                .to_vec()
        } else if header(req, "Upgrade") == Some("websocket") {
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".to_vec()
        } else {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()
        }
    });
    let p = checks.probe();
    assert!(p.http && !p.websocket, "{p:?}");

    let any = Server::start("127.0.0.1:0", |req| {
        if header(req, "Upgrade") == Some("websocket") {
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                .to_vec()
        } else {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()
        }
    });
    let p = any.probe();
    assert!(p.websocket, "{p:?}");
}
