//! The safe HTTP probe (docs/design.md §2): does a listener answer HTTP or
//! WebSocket, and how does it treat a foreign web page's `Origin`?
//!
//! Three requests, each on its own connection, run side by side so that a
//! listener that accepts and then says nothing costs one timeout, not three:
//!
//! - `OPTIONS /` — a CORS preflight;
//! - `GET /` — the status, `Server`, `Content-Type`, CORS and image answer;
//! - `GET /` with `Upgrade: websocket` — closed as soon as the status line
//!   is in, so we never speak the WebSocket protocol.
//!
//! Each probe looks like a page open in Chrome on this Mac, from a random
//! foreign origin of its own ([`request`]), so a helper cannot answer the
//! probe differently from the pages it serves. Only safe methods, no
//! cookies or credentials, redirects recorded and never followed, at most
//! [`MAX_REPLY`] bytes read per reply, and every connect and read under a
//! deadline. What the bytes mean is decided by the pure [`classify`].
//!
//! An answer *settles* what a listener is when a request got HTTP (or
//! TLS) back; anything else — silence, a reset, a hang-up, bytes that are
//! not HTTP — may be a helper dodging the probe, so the daemon asks again
//! ([`schedule`], run beside its sweeps by [`worker`]), and `lenscap scan`
//! asks once more ([`probe_all_retrying`]).

mod reply;
pub mod request;
pub mod schedule;
pub mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

pub use reply::{BODY_SNIFF, HttpReply, MAX_HEAD, MAX_REPLY, NotHttp, Reply, classify};
pub use request::{Disguise, Kind, USER_AGENT};

use crate::model::{Cors, HttpProbe};

/// One probe's result, and whether it settles what the listener is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    pub probe: HttpProbe,
    pub settled: bool,
    /// Every request timed out: asking again right away costs another
    /// full timeout (the daemon asks later, on its schedule).
    pub silent: bool,
}

/// Probe one listener. A wildcard or IPv4-mapped address is probed through
/// the loopback address of the same family (see [`reachable`]).
pub async fn probe(target: SocketAddr, timeout: Duration) -> HttpProbe {
    probe_settled(target, timeout).await.probe
}

/// [`probe`], saying whether the answer settles what the listener is. A
/// fresh [`Disguise`] each time: one origin for the three requests (one
/// page asks), another for the next probe.
pub async fn probe_settled(target: SocketAddr, timeout: Duration) -> Probed {
    let target = reachable(target.ip(), target.port());
    let disguise = &Disguise::random();
    let (options, get, websocket) = tokio::join!(
        exchange(target, Kind::Options, timeout, disguise),
        exchange(target, Kind::Get, timeout, disguise),
        exchange(target, Kind::WebSocket, timeout, disguise),
    );
    Probed {
        probe: combine(&options, &get, &websocket),
        settled: [&options, &get, &websocket].iter().any(|o| o.settles()),
        silent: [&options, &get, &websocket]
            .iter()
            .all(|o| matches!(o, Outcome::TimedOut(_))),
    }
}

/// Probe many listeners from synchronous code, at most `concurrency` at a
/// time, on a small current-thread runtime of its own. Keys are the
/// listeners' own addresses as given. Safe to call from inside a tokio
/// runtime too: then the work moves to a scoped thread, because blocking
/// on a runtime inside another one panics.
pub fn probe_all(
    targets: &[(IpAddr, u16)],
    timeout: Duration,
    concurrency: usize,
) -> BTreeMap<(IpAddr, u16), HttpProbe> {
    probe_all_retrying(targets, timeout, concurrency, None)
}

/// [`probe_all`], then — with `retry_after` — once more after that pause
/// for every listener whose answer did not settle what it is but came
/// quickly: a connection cut short, a helper hanging up on its first
/// visitors, bytes that are not HTTP. A listener that let every request
/// time out is not asked again here: that would cost a one-shot another
/// full timeout (`lenscap scan` on a machine with one PostgreSQL would
/// double), and the daemon asks it again on its schedule. A settled
/// answer from the second round replaces an unsettled one; an unsettled
/// one keeps the first round's reason.
pub fn probe_all_retrying(
    targets: &[(IpAddr, u16)],
    timeout: Duration,
    concurrency: usize,
    retry_after: Option<Duration>,
) -> BTreeMap<(IpAddr, u16), HttpProbe> {
    let keys: BTreeSet<(IpAddr, u16)> = targets.iter().copied().collect();
    if keys.is_empty() {
        return BTreeMap::new();
    }
    let run = || match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(async {
            let mut results = probe_many(&keys, timeout, concurrency).await;
            let Some(pause) = retry_after else {
                return results;
            };
            let again: BTreeSet<(IpAddr, u16)> = results
                .iter()
                .filter(|(_, p)| !p.settled && !p.silent)
                .map(|(k, _)| *k)
                .collect();
            if !again.is_empty() {
                tokio::time::sleep(pause).await;
                for (key, p) in probe_many(&again, timeout, concurrency).await {
                    if p.settled {
                        results.insert(key, p);
                    }
                }
            }
            results
        }),
        Err(e) => all_failed(&keys, &format!("cannot start the probe runtime: {e}")),
    };
    let results = if tokio::runtime::Handle::try_current().is_err() {
        run()
    } else {
        std::thread::scope(|s| s.spawn(run).join())
            .unwrap_or_else(|_| all_failed(&keys, "the probe thread panicked"))
    };
    results.into_iter().map(|(k, p)| (k, p.probe)).collect()
}

async fn probe_many(
    keys: &BTreeSet<(IpAddr, u16)>,
    timeout: Duration,
    concurrency: usize,
) -> BTreeMap<(IpAddr, u16), Probed> {
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for &(ip, port) in keys {
        let permits = Arc::clone(&permits);
        tasks.spawn(async move {
            // The semaphore is never closed, so acquiring cannot fail; if it
            // somehow did, probing unbounded is still correct.
            let _permit = permits.acquire_owned().await.ok();
            let probed = probe_settled(SocketAddr::new(ip, port), timeout).await;
            ((ip, port), probed)
        });
    }
    let mut results = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((key, probe)) = joined {
            results.insert(key, probe);
        }
    }
    // A task that panicked took its key with it: say so rather than drop it.
    for key in keys {
        results
            .entry(*key)
            .or_insert_with(|| unsettled("the probe task panicked"));
    }
    results
}

/// Where to connect for a listener on `ip`: a wildcard listener through
/// the loopback of its family (a browser reaches it there), an
/// IPv4-mapped IPv6 address as plain IPv4.
pub fn reachable(ip: IpAddr, port: u16) -> SocketAddr {
    let ip = match ip.to_canonical() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    };
    SocketAddr::new(ip, port)
}

/// How one request went.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Http(HttpReply),
    NotHttp(NotHttp),
    Failed(String),
    /// Nothing came back before the deadline (connect or answer).
    TimedOut(String),
}

impl Outcome {
    /// Does this answer tell what the listener is? HTTP does, and so does
    /// TLS (an HTTPS server answering plain text); silence, a hang-up or
    /// other bytes may be a helper dodging the probe.
    fn settles(&self) -> bool {
        matches!(
            self,
            Outcome::Http(_) | Outcome::NotHttp(NotHttp::Tls { .. })
        )
    }
}

async fn exchange(
    target: SocketAddr,
    kind: Kind,
    timeout: Duration,
    disguise: &Disguise,
) -> Outcome {
    let ms = timeout.as_millis();
    let mut stream = match tokio::time::timeout(timeout, TcpStream::connect(target)).await {
        Err(_) => return Outcome::TimedOut(format!("connect timed out after {ms} ms")),
        Ok(Err(e)) => return Outcome::Failed(describe(&e)),
        Ok(Ok(stream)) => stream,
    };
    let deadline = Instant::now() + timeout;
    // A server that spoke first and hung up can make the write fail while
    // its words wait in our receive buffer: read them before giving up.
    let request = disguise.request(kind, target);
    let wrote = match timeout_at(deadline, stream.write_all(request.as_bytes())).await {
        Err(_) => Err(format!("sending the request timed out after {ms} ms")),
        Ok(result) => result.map_err(|e| describe(&e)),
    };
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let room = MAX_REPLY - buf.len();
        if room == 0 {
            return decided(&buf, true, disguise);
        }
        let want = room.min(chunk.len());
        let read = timeout_at(deadline, stream.read(&mut chunk[..want])).await;
        let n = match read {
            Ok(Ok(n)) => n,
            Ok(Err(_)) | Err(_) if !buf.is_empty() => return decided(&buf, true, disguise),
            Ok(Err(e)) => return Outcome::Failed(wrote.err().unwrap_or_else(|| describe(&e))),
            Err(_) => return Outcome::TimedOut(format!("no answer within {ms} ms")),
        };
        if n == 0 {
            return match (&wrote, buf.is_empty()) {
                (Err(e), true) => Outcome::Failed(e.clone()),
                _ => decided(&buf, true, disguise),
            };
        }
        buf.extend_from_slice(&chunk[..n]);
        match classify(&buf, false, disguise.origin()) {
            // The upgrade was accepted: hang up once the status line is
            // whole rather than wait for headers and start a conversation.
            Reply::Incomplete { status: Some(101) }
                if kind == Kind::WebSocket && buf.contains(&b'\n') =>
            {
                return decided(&buf, true, disguise);
            }
            Reply::Incomplete { .. } => {}
            Reply::Http(r) if r.wants_body > 0 => {}
            Reply::Http(r) => return Outcome::Http(r),
            Reply::NotHttp(n) => return Outcome::NotHttp(n),
        }
    }
}

/// The verdict on the bytes we have, read as final.
fn decided(buf: &[u8], eof: bool, disguise: &Disguise) -> Outcome {
    match classify(buf, eof, disguise.origin()) {
        Reply::Http(r) => Outcome::Http(r),
        Reply::NotHttp(n) => Outcome::NotHttp(n),
        // classify never says Incomplete at eof; treat it as cut off if so.
        Reply::Incomplete { .. } => Outcome::NotHttp(NotHttp::Malformed),
    }
}

fn describe(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        std::io::ErrorKind::ConnectionReset => "connection reset".to_string(),
        _ => e.to_string(),
    }
}

/// Merge the three outcomes. `status` comes from the `GET`; CORS from
/// whichever of `GET` and `OPTIONS` was more open; `error` is set when nothing spoke HTTP
/// (the `GET`'s reason first) or when the `GET` itself failed.
fn combine(options: &Outcome, get: &Outcome, websocket: &Outcome) -> HttpProbe {
    let all = [get, options, websocket];
    let replies: Vec<&HttpReply> = all
        .iter()
        .filter_map(|o| match o {
            Outcome::Http(r) => Some(r),
            _ => None,
        })
        .collect();
    let get_reply = match get {
        Outcome::Http(r) => Some(r),
        _ => None,
    };
    let reason = |o: &Outcome| match o {
        Outcome::Http(_) => None,
        Outcome::NotHttp(n) => Some(n.to_string()),
        Outcome::Failed(e) | Outcome::TimedOut(e) => Some(e.clone()),
    };
    let error = if replies.is_empty() {
        all.iter().find_map(|o| reason(o))
    } else {
        reason(get).map(|e| format!("GET /: {e}"))
    };
    HttpProbe {
        http: !replies.is_empty(),
        websocket: replies.iter().any(|r| r.websocket),
        status: get_reply.map(|r| r.status),
        server: replies.iter().find_map(|r| r.server.clone()),
        content_type: get_reply.and_then(|r| r.content_type.clone()),
        // CORS is what the GET and the preflight said; browsers do not
        // apply CORS to WebSockets (the upgrade's 101 tells that story).
        cors: [get, options]
            .iter()
            .filter_map(|o| match o {
                Outcome::Http(r) => Some(r.cors),
                _ => None,
            })
            .fold(Cors::None, reply::most_open),
        image: get_reply.is_some_and(|r| r.image),
        error,
    }
}

fn unsettled(reason: &str) -> Probed {
    Probed {
        probe: failed(reason),
        settled: false,
        silent: false,
    }
}

fn failed(reason: &str) -> HttpProbe {
    HttpProbe {
        http: false,
        websocket: false,
        status: None,
        server: None,
        content_type: None,
        cors: Cors::None,
        image: false,
        error: Some(reason.to_string()),
    }
}

fn all_failed(keys: &BTreeSet<(IpAddr, u16)>, reason: &str) -> BTreeMap<(IpAddr, u16), Probed> {
    keys.iter().map(|k| (*k, unsettled(reason))).collect()
}

#[cfg(test)]
mod tests;
