use super::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn closed(port: u16, at_s: u64) -> ClosedConnection {
    ClosedConnection {
        local: SocketAddr::from(([127, 0, 0, 1], port)),
        remote: SocketAddr::from(([127, 0, 0, 1], 40000)),
        at_unix_us: at_s * 1_000_000 + 5,
    }
}

/// Wait until `feed` has handed over something matching `want`.
fn wait_for(
    feed: &DestroyFeed,
    got: &mut Vec<ClosedConnection>,
    want: impl Fn(&ClosedConnection) -> bool,
) -> Option<ClosedConnection> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        got.extend(feed.drain().closed);
        if let Some(c) = got.iter().find(|c| want(c)) {
            return Some(*c);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// One request on a fresh connection, answered, then closed by both ends:
/// what a page's `fetch` to a helper looks like.
fn one_request(listener: &TcpListener, pause_before_close: Duration) -> SocketAddr {
    let port = listener.local_addr().unwrap().port();
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (mut served, _) = listener.accept().unwrap();
    client.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut buf = [0u8; 64];
    let n = served.read(&mut buf).unwrap();
    assert!(n > 0);
    served.write_all(b"HTTP/1.0 200 OK\r\n\r\n").unwrap();
    std::thread::sleep(pause_before_close);
    let from = client.local_addr().unwrap();
    drop(served);
    drop(client);
    from
}

#[test]
fn a_closed_connection_to_a_watched_port_is_reported_with_its_last_request_time() {
    let feed = DestroyFeed::start().expect("join the sock_diag destroy groups");
    let watched = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = watched.local_addr().unwrap().port();
    feed.set_ports(&BTreeSet::from([port]));
    let sent = now_unix_us();
    // The request is sent, then the connection stays open 400 ms: the
    // record's time is the request's, not the close's.
    let from = one_request(&watched, Duration::from_millis(400));
    let closed_at = now_unix_us();
    let mut got = Vec::new();
    let c = wait_for(&feed, &mut got, |c| c.local.port() == port)
        .unwrap_or_else(|| panic!("no report for port {port}; got {got:?}"));
    assert_eq!(c.local, SocketAddr::from(([127, 0, 0, 1], port)));
    assert_eq!(c.remote, from, "the peer is the client's address");
    assert!(
        c.at_unix_us + 200_000 <= closed_at && c.at_unix_us + 50_000 >= sent,
        "stamped with the request ({sent}) rather than the close ({closed_at}): {}",
        c.at_unix_us
    );
    // The client's own socket (local port = the ephemeral one) is not
    // reported: only the helper's side counts.
    assert!(got.iter().all(|c| c.local.port() == port), "{got:?}");
}

#[test]
fn connections_to_unwatched_ports_are_ignored() {
    let feed = DestroyFeed::start().unwrap();
    let watched = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = watched.local_addr().unwrap().port();
    let other_port = other.local_addr().unwrap().port();
    feed.set_ports(&BTreeSet::from([port]));
    one_request(&other, Duration::ZERO);
    one_request(&watched, Duration::ZERO);
    let mut got = Vec::new();
    wait_for(&feed, &mut got, |c| c.local.port() == port).expect("the watched one");
    std::thread::sleep(Duration::from_millis(100));
    got.extend(feed.drain().closed);
    assert!(
        got.iter().all(|c| c.local.port() != other_port),
        "an unwatched port was kept: {got:?}"
    );
}

#[test]
fn ipv6_connections_are_reported_too() {
    let Ok(watched) = TcpListener::bind("[::1]:0") else {
        // No IPv6 loopback in this sandbox: nothing to show.
        return;
    };
    let feed = DestroyFeed::start().unwrap();
    let port = watched.local_addr().unwrap().port();
    feed.set_ports(&BTreeSet::from([port]));
    let mut client = TcpStream::connect(("::1", port)).unwrap();
    let (served, _) = watched.accept().unwrap();
    client.write_all(b"x").unwrap();
    drop(served);
    drop(client);
    let mut got = Vec::new();
    let c = wait_for(&feed, &mut got, |c| c.local.port() == port).expect("the IPv6 close");
    assert_eq!(c.local.ip(), "::1".parse::<IpAddr>().unwrap());
}

#[test]
fn dropping_the_feed_leaves_the_groups_and_ends_the_reader() {
    let feed = DestroyFeed::start().unwrap();
    assert!(feed.running());
    let started = Instant::now();
    drop(feed);
    // The pipe wakes the reader at once; no poll timeout to wait out.
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn the_buffer_coalesces_per_port_address_and_second() {
    let mut b = Buffer::default();
    b.push(closed(80, 10));
    b.push(closed(80, 10));
    b.push(closed(80, 11));
    b.push(closed(81, 10));
    assert_eq!(b.len(), 3);
    let batch = b.take();
    assert_eq!(batch.closed.len(), 3);
    assert_eq!(batch.dropped, 0);
    assert!(b.is_empty());
    // After a drain the same key is new again.
    b.push(closed(80, 10));
    assert_eq!(b.len(), 1);
}

#[test]
fn a_flood_keeps_the_newest_records_within_the_cap() {
    let mut b = Buffer::default();
    let flood = MAX_BUFFERED as u64 * 3;
    for s in 0..flood {
        b.push(closed(80, s));
    }
    assert_eq!(b.len(), MAX_BUFFERED);
    let batch = b.take();
    assert_eq!(batch.dropped, flood - MAX_BUFFERED as u64);
    assert_eq!(
        batch.closed.last().map(|c| c.at_unix_us / 1_000_000),
        Some(flood - 1),
        "the newest survives"
    );
    assert_eq!(
        batch.closed.first().map(|c| c.at_unix_us / 1_000_000),
        Some(flood - MAX_BUFFERED as u64)
    );
}

#[test]
fn garbage_datagrams_yield_nothing() {
    let ports = BTreeSet::from([80u16]);
    assert!(parse_reports(&[], &ports, 1).is_empty());
    assert!(parse_reports(&[0u8; 15], &ports, 1).is_empty());
    assert!(parse_reports(&[0xffu8; 400], &ports, 1).is_empty());
    // A header claiming more bytes than there are.
    let mut short = vec![0u8; 32];
    short[..4].copy_from_slice(&1000u32.to_ne_bytes());
    assert!(parse_reports(&short, &ports, 1).is_empty());
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_reports(&bytes, &BTreeSet::from([80u16, 443]), 1_000_000);
        }

        #[test]
        fn the_buffer_never_exceeds_its_cap(
            pushes in proptest::collection::vec((0u16..4, 0u64..8000), 0..9000)
        ) {
            let mut b = Buffer::default();
            for (port, s) in &pushes {
                b.push(closed(*port, *s));
                prop_assert!(b.len() <= MAX_BUFFERED);
                prop_assert_eq!(b.keys.len(), b.entries.len());
            }
        }
    }
}

/// A sweep's drain takes what waits in the socket itself: on a loaded
/// machine the reader thread may not have run between the close and the
/// sweep, and the camera session judged in that sweep must still see the
/// connection. Here the reader is stopped, so only the drain can read.
#[test]
fn a_drain_reads_what_the_reader_has_not_taken_yet() {
    let mut feed = DestroyFeed::start().expect("join the sock_diag destroy groups");
    drop(feed.stop.take());
    if let Some(reader) = feed.reader.take() {
        reader.join().unwrap();
    }
    let watched = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = watched.local_addr().unwrap().port();
    feed.set_ports(&BTreeSet::from([port]));
    let from = one_request(&watched, Duration::ZERO);
    let mut got = Vec::new();
    let seen = wait_for(&feed, &mut got, |c| c.remote == from);
    assert!(seen.is_some(), "the drain did not read the socket: {got:?}");
}
