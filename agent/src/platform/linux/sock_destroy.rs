//! Short connections to flagged helpers: the kernel's report of every TCP
//! socket it frees (sock_diag's `SKNLGRP_INET_TCP_DESTROY` and
//! `SKNLGRP_INET6_TCP_DESTROY` multicast groups, Linux 4.9+).
//!
//! The sweep samples established connections once per `SweepSeconds`, so
//! a page that connects to a helper, sends one request and closes within a
//! second is seen only by luck. The kernel, however, broadcasts one
//! `SOCK_DIAG_BY_FAMILY` message per TCP socket it destroys to whoever
//! joined these groups, with the socket's addresses, ports and `tcp_info`
//! (`inet_diag_handler_get_info` in `net/ipv4/inet_diag.c`). A reader
//! thread keeps the ones whose *local* port is a watched (flagged) port:
//! the helper's side of the connection, which is what the sweep's
//! `established_to` reports too.
//!
//! Privilege: joining needs no capability. The sock_diag netlink family is
//! registered with `NL_CFG_F_NONROOT_RECV`; on Linux 6.18 an unprivileged
//! process (uid 65534, empty capability bounding set) joined both groups
//! and received the reports (checked while writing this). A sandbox that
//! refuses the socket, or a kernel without the groups, makes
//! [`DestroyFeed::start`] fail; the caller says so once and keeps to the
//! sweep.
//!
//! Memory is bounded whatever the rate of connections: reports for other
//! ports are dropped at once; the rest are coalesced to one record per
//! (port, local address, second) and at most [`MAX_BUFFERED`] are kept
//! between two drains, the oldest giving way (counted in `dropped`). The
//! newest always survive, and a camera session is correlated with the
//! newest connection before it. A kernel burst larger than the socket's
//! receive buffer is lost in the kernel (`ENOBUFS`), counted as one
//! overrun.
//!
//! Netlink multicast is hand-read here rather than through a crate's async
//! stream: the workspace already parses sock_diag with
//! `netlink-packet-sock-diag`, and the daemon's loop is not the place to
//! block on a socket, so one plain thread with `poll(2)` does it.

use crate::clock::unix_now_us as now_unix_us;
use std::collections::{BTreeSet, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::inet::InetResponse;
use netlink_packet_sock_diag::inet::nlas::Nla;
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use netlink_sys::{Socket, SocketAddr as NetlinkAddr};
use rustix::event::{PollFd, PollFlags, poll};
use rustix::pipe::{PipeFlags, pipe_with};

use crate::platform::{ClosedBatch, ClosedConnection, ClosedConnectionFeed, PlatformError};

/// `SKNLGRP_INET_TCP_DESTROY` (`include/uapi/linux/sock_diag.h`).
const SKNLGRP_INET_TCP_DESTROY: u32 = 1;
/// `SKNLGRP_INET6_TCP_DESTROY`.
const SKNLGRP_INET6_TCP_DESTROY: u32 = 3;

/// Most records kept between two drains (about 48 bytes each).
pub const MAX_BUFFERED: usize = 4096;

/// Receive buffer asked for: a burst of a few thousand closes between two
/// wake-ups of the reader (each report is 380 bytes on 6.18) fits.
const RCVBUF_BYTES: usize = 1 << 20;

/// Offset of `tcpi_last_data_recv` (ms since the socket last received
/// data) in `struct tcp_info` (`include/uapi/linux/tcp.h`): eight `__u8`
/// fields, then nine `__u32` (`rto` … `fackets`), then `last_data_sent`,
/// `last_ack_sent`, `last_data_recv`.
const TCPI_LAST_DATA_RECV: usize = 52;

/// A running subscription: one reader thread and its socket. Dropping it
/// leaves the groups (the socket is closed) and joins the thread.
#[derive(Debug)]
pub struct DestroyFeed {
    shared: Arc<Shared>,
    /// Shared with the reader: [`DestroyFeed::drain`] reads what waits in
    /// the socket itself, so a report the kernel queued just before a
    /// sweep counts in that sweep even when the reader thread has not run
    /// yet (a loaded machine). Each `recv` takes whole messages, so the
    /// two readers never split one.
    socket: Arc<Socket>,
    /// Writing end of the pipe the reader polls beside the socket; dropping
    /// it wakes the reader to exit.
    stop: Option<OwnedFd>,
    reader: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    ports: RwLock<BTreeSet<u16>>,
    buffer: Mutex<Buffer>,
}

/// The records waiting for the next drain.
#[derive(Debug, Default)]
pub struct Buffer {
    entries: VecDeque<ClosedConnection>,
    /// (port, local address, second) of every entry, for coalescing.
    keys: HashSet<(u16, IpAddr, u64)>,
    dropped: u64,
    overruns: u64,
}

fn key(c: &ClosedConnection) -> (u16, IpAddr, u64) {
    (c.local.port(), c.local.ip(), c.at_unix_us / 1_000_000)
}

impl Buffer {
    /// Keep `c` unless a record for its port, address and second is
    /// already here; past [`MAX_BUFFERED`] the oldest record goes.
    pub fn push(&mut self, c: ClosedConnection) {
        if !self.keys.insert(key(&c)) {
            return;
        }
        if self.entries.len() >= MAX_BUFFERED
            && let Some(old) = self.entries.pop_front()
        {
            self.keys.remove(&key(&old));
            self.dropped += 1;
        }
        self.entries.push_back(c);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Everything kept, oldest first, and what was lost since last time.
    pub fn take(&mut self) -> ClosedBatch {
        self.keys.clear();
        ClosedBatch {
            closed: std::mem::take(&mut self.entries).into(),
            dropped: std::mem::take(&mut self.dropped),
            overruns: std::mem::take(&mut self.overruns),
        }
    }
}

impl DestroyFeed {
    /// Join both TCP destroy groups and start the reader.
    pub fn start() -> Result<DestroyFeed, PlatformError> {
        let netlink = |e: std::io::Error| PlatformError::io("netlink sock_diag destroy groups", e);
        let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(netlink)?;
        socket.bind(&NetlinkAddr::new(0, 0)).map_err(netlink)?;
        socket
            .add_membership(SKNLGRP_INET_TCP_DESTROY)
            .map_err(netlink)?;
        socket
            .add_membership(SKNLGRP_INET6_TCP_DESTROY)
            .map_err(netlink)?;
        // Best effort: the default (rmem_default, ~200 KiB) still works,
        // it only overruns sooner.
        let _ = socket.set_rx_buf_sz(RCVBUF_BYTES);
        socket.set_non_blocking(true).map_err(netlink)?;
        let (wake, stop) = pipe_with(PipeFlags::CLOEXEC)
            .map_err(|e| PlatformError::io("pipe", std::io::Error::from(e)))?;
        let shared = Arc::new(Shared::default());
        let for_reader = Arc::clone(&shared);
        let socket = Arc::new(socket);
        let reader_socket = Arc::clone(&socket);
        let reader = std::thread::Builder::new()
            .name("lenscap-sock-destroy".into())
            .spawn(move || read_loop(&reader_socket, &wake, &for_reader))
            .map_err(|e| PlatformError::io("sock_diag destroy reader thread", e))?;
        Ok(DestroyFeed {
            shared,
            socket,
            stop: Some(stop),
            reader: Some(reader),
        })
    }
}

impl ClosedConnectionFeed for DestroyFeed {
    fn set_ports(&self, ports: &BTreeSet<u16>) {
        *self
            .shared
            .ports
            .write()
            .unwrap_or_else(PoisonError::into_inner) = ports.clone();
    }

    fn drain(&self) -> ClosedBatch {
        // What the kernel queued and the reader has not taken yet.
        let mut buf = vec![0u8; 16 * 1024];
        drain_socket(&self.socket, &mut buf, &self.shared);
        self.shared
            .buffer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn running(&self) -> bool {
        self.reader.as_ref().is_some_and(|r| !r.is_finished())
    }
}

impl Drop for DestroyFeed {
    fn drop(&mut self) {
        // Closing the write end makes the pipe readable (EOF) for the
        // reader, which then returns and drops the socket.
        drop(self.stop.take());
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// Wait for reports or the stop pipe; read every report waiting.
fn read_loop(socket: &Socket, wake: &OwnedFd, shared: &Shared) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (ready, stop) = {
            let mut fds = [
                PollFd::new(socket, PollFlags::IN),
                PollFd::new(wake, PollFlags::IN),
            ];
            match poll(&mut fds, None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "sock_diag destroy reader: poll failed; short connections are no longer seen");
                    return;
                }
            }
            (!fds[0].revents().is_empty(), !fds[1].revents().is_empty())
        };
        if stop {
            return;
        }
        if ready && !drain_socket(socket, &mut buf, shared) {
            return;
        }
    }
}

/// Read until the socket would block. False when it failed for good.
fn drain_socket(socket: &Socket, buf: &mut [u8], shared: &Shared) -> bool {
    loop {
        let size = match socket.recv(&mut &mut buf[..], 0) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                // The kernel dropped reports it could not queue.
                lock(&shared.buffer).overruns += 1;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, fd = socket.as_fd().as_raw_fd(), "sock_diag destroy reader: recv failed; short connections are no longer seen");
                return false;
            }
        };
        let now = now_unix_us();
        let ports = shared
            .ports
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let found = parse_reports(buf.get(..size).unwrap_or(&[]), &ports, now);
        if !found.is_empty() {
            let mut buffer = lock(&shared.buffer);
            for c in found {
                buffer.push(c);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The closed connections to `ports` in one datagram of destroy reports,
/// stamped with when the client last sent data (`now` minus
/// `tcpi_last_data_recv`), or `now` when the report has no `tcp_info`.
/// Anything that does not parse is skipped: the kernel is the only sender
/// a netlink socket accepts multicast from, but a parse failure must still
/// never stop the reader.
pub fn parse_reports(
    datagram: &[u8],
    ports: &BTreeSet<u16>,
    now_unix_us: u64,
) -> Vec<ClosedConnection> {
    let mut out = Vec::new();
    let mut chunk = datagram;
    while chunk.len() >= 16 {
        let Ok(message) = NetlinkMessage::<SockDiagMessage>::deserialize(chunk) else {
            break;
        };
        let len = message.header.length as usize;
        if let NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) = message.payload
            && let Some(c) = closed_of(&r, ports, now_unix_us)
        {
            out.push(c);
        }
        let step = len.next_multiple_of(4);
        if len == 0 || step > chunk.len() {
            break;
        }
        chunk = &chunk[step..];
    }
    out
}

fn closed_of(
    r: &InetResponse,
    ports: &BTreeSet<u16>,
    now_unix_us: u64,
) -> Option<ClosedConnection> {
    let id = &r.header.socket_id;
    // A listener, or a socket that never connected, has no peer.
    if id.destination_port == 0 || !ports.contains(&id.source_port) {
        return None;
    }
    let idle_ms = r.nlas.iter().find_map(|nla| match nla {
        Nla::TcpInfo(bytes) => bytes
            .get(TCPI_LAST_DATA_RECV..TCPI_LAST_DATA_RECV + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_ne_bytes),
        _ => None,
    });
    let at = match idle_ms {
        Some(ms) => now_unix_us.saturating_sub(u64::from(ms) * 1000),
        None => now_unix_us,
    };
    Some(ClosedConnection {
        local: socket_addr(id.source_address, id.source_port, id.interface_id),
        remote: socket_addr(id.destination_address, id.destination_port, id.interface_id),
        at_unix_us: at,
    })
}

/// The same canonical form as `sockets::established` reports: an IPv4 peer
/// of a dual-stack listener as IPv4, link-local IPv6 with its interface.
fn socket_addr(ip: IpAddr, port: u16, interface: u32) -> SocketAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) if v6.is_unicast_link_local() => {
            SocketAddrV6::new(v6, port, 0, interface).into()
        }
        ip => (ip, port).into(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
#[path = "sock_destroy_tests.rs"]
mod tests;
