//! Caps on open connections, in total and per client address.
//!
//! Written here because nothing at hand counts *connections*: tower's
//! `ConcurrencyLimit` counts requests in flight (an idle or half-sent
//! connection holds none, which is exactly what slowloris exploits), and
//! neither hyper nor axum-server caps connections. This is an
//! axum-server acceptor: it runs first on every accepted socket, before
//! the TLS handshake, and closes the socket at once when the client's
//! address (an IPv6 client: its /64, which one machine usually has whole)
//! or the server already holds its limit. The permit lives inside the
//! stream, so whatever ends the connection — the client, a timeout, the
//! server shutting down — gives the place back.

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum_server::accept::Accept;
use futures_util::future::Either;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::metrics::Metrics;

/// Which limit turned a connection away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Total,
    PerAddress,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_key: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
struct Shared {
    max_total: usize,
    /// 0: no per-address limit.
    max_per_ip: usize,
    counts: Mutex<Counts>,
    metrics: Arc<Metrics>,
}

/// The connection counts shared by every accepted connection.
#[derive(Debug, Clone)]
pub struct ConnLimiter {
    shared: Arc<Shared>,
}

/// An IPv4 client (also one written as `::ffff:a.b.c.d`) by its address,
/// an IPv6 client by its /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

impl ConnLimiter {
    pub fn new(max_total: usize, max_per_ip: usize, metrics: Arc<Metrics>) -> ConnLimiter {
        ConnLimiter {
            shared: Arc::new(Shared {
                max_total,
                max_per_ip,
                counts: Mutex::new(Counts::default()),
                metrics,
            }),
        }
    }

    /// A place for one more connection from `peer`, or which limit is full.
    pub fn try_acquire(&self, peer: IpAddr) -> Result<Permit, Refusal> {
        let k = key(peer);
        let s = &self.shared;
        // A poisoned lock means a thread panicked between two integer
        // updates; the counts are still counts.
        let mut c = s.counts.lock().unwrap_or_else(|e| e.into_inner());
        if c.total >= s.max_total {
            s.metrics.connection_refused(Refusal::Total);
            return Err(Refusal::Total);
        }
        let n = c.per_key.entry(k).or_insert(0);
        if s.max_per_ip > 0 && *n >= s.max_per_ip {
            s.metrics.connection_refused(Refusal::PerAddress);
            return Err(Refusal::PerAddress);
        }
        *n += 1;
        c.total += 1;
        s.metrics.connections_open(c.total);
        Ok(Permit {
            shared: self.shared.clone(),
            key: k,
        })
    }

    /// Open connections now (for tests and metrics).
    pub fn open(&self) -> usize {
        self.shared
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .total
    }
}

/// One connection's place; given back when dropped.
#[derive(Debug)]
pub struct Permit {
    shared: Arc<Shared>,
    key: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.shared.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_key.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_key.remove(&self.key);
            }
        }
        self.shared.metrics.connections_open(c.total);
    }
}

/// A stream that holds its connection's [`Permit`].
#[derive(Debug)]
pub struct Counted<S> {
    inner: S,
    _permit: Permit,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The acceptor: counts the connection, then hands it to `inner` (plain
/// or TLS).
#[derive(Debug, Clone)]
pub struct LimitAcceptor<A> {
    inner: A,
    limiter: ConnLimiter,
}

impl<A> LimitAcceptor<A> {
    pub fn new(inner: A, limiter: ConnLimiter) -> LimitAcceptor<A> {
        LimitAcceptor { inner, limiter }
    }
}

impl<A, S> Accept<TcpStream, S> for LimitAcceptor<A>
where
    A: Accept<Counted<TcpStream>, S>,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = Either<Ready<io::Result<(A::Stream, A::Service)>>, A::Future>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let peer = match stream.peer_addr() {
            Ok(a) => a.ip(),
            // Already gone: nothing to serve.
            Err(e) => return Either::Left(ready(Err(e))),
        };
        match self.limiter.try_acquire(peer) {
            Ok(permit) => Either::Right(self.inner.accept(
                Counted {
                    inner: stream,
                    _permit: permit,
                },
                service,
            )),
            Err(why) => {
                tracing::debug!(%peer, ?why, "connection refused: limit reached");
                // Dropping the stream closes it.
                Either::Left(ready(Err(io::Error::other(match why {
                    Refusal::Total => "connection limit reached",
                    Refusal::PerAddress => "per-address connection limit reached",
                }))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_address_and_total_limits_and_places_come_back() {
        let l = ConnLimiter::new(3, 2, Arc::new(Metrics::default()));
        let a1 = l.try_acquire(ip("198.51.100.1")).unwrap();
        let a2 = l.try_acquire(ip("::ffff:198.51.100.1")).unwrap();
        assert_eq!(
            l.try_acquire(ip("198.51.100.1")).unwrap_err(),
            Refusal::PerAddress
        );
        let b1 = l.try_acquire(ip("198.51.100.2")).unwrap();
        assert_eq!(
            l.try_acquire(ip("198.51.100.3")).unwrap_err(),
            Refusal::Total
        );
        assert_eq!(l.open(), 3);
        drop(a1);
        let a3 = l.try_acquire(ip("198.51.100.1")).unwrap();
        drop((a2, a3, b1));
        assert_eq!(l.open(), 0);
        assert!(l.shared.counts.lock().unwrap().per_key.is_empty());
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let l = ConnLimiter::new(100, 2, Arc::new(Metrics::default()));
        let _a = l.try_acquire(ip("2001:db8:1:2::1")).unwrap();
        let _b = l.try_acquire(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert_eq!(
            l.try_acquire(ip("2001:db8:1:2::abcd")).unwrap_err(),
            Refusal::PerAddress
        );
        assert!(l.try_acquire(ip("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn zero_per_address_means_no_per_address_limit() {
        let l = ConnLimiter::new(5, 0, Arc::new(Metrics::default()));
        let held: Vec<_> = (0..5)
            .map(|_| l.try_acquire(ip("127.0.0.1")).unwrap())
            .collect();
        assert_eq!(l.try_acquire(ip("127.0.0.1")).unwrap_err(), Refusal::Total);
        drop(held);
    }
}
