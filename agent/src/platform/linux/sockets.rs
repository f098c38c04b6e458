//! Listening TCP sockets of this network namespace, and established
//! connections to chosen local ports, without owners.
//!
//! The first choice is netlink `sock_diag` (what `ss` uses): the kernel
//! filters to LISTEN for us and, for IPv6, reports `IPV6_V6ONLY`
//! (`INET_DIAG_SKV6ONLY`), which decides whether a `[::]` listener is also
//! reachable over IPv4. If netlink is refused (a seccomp sandbox, a kernel
//! without `inet_diag`), `/proc/net/tcp{,6}` gives the same sockets but
//! cannot tell `v6only`.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddrV6};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
use netlink_packet_sock_diag::inet::nlas::Nla;
use netlink_packet_sock_diag::inet::{
    ExtensionFlags, InetRequest, InetResponse, SocketId, StateFlags,
};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use netlink_sys::{Socket, SocketAddr};

use super::procfs::{TCP_LISTEN, parse_tcp_line};
use crate::platform::{Established, PlatformError};

/// A listening socket before its owners are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawListener {
    pub address: IpAddr,
    pub port: u16,
    pub inode: u64,
    /// Known only for IPv6 sockets, and only through netlink.
    pub v6only: Option<bool>,
}

/// Every listening TCP socket, IPv4 then IPv6: netlink if it answers,
/// otherwise `/proc/net/tcp{,6}`.
pub fn listening() -> Result<Vec<RawListener>, PlatformError> {
    match netlink_listening() {
        Ok(list) => Ok(list),
        Err(netlink_err) => {
            tracing::debug!(error = %netlink_err, "sock_diag refused; reading /proc/net/tcp");
            procfs_listening(Path::new("/proc/net"))
        }
    }
}

/// The inodes of the LISTEN sockets of both families, dumped on an open
/// `socket` (the daemon keeps one between sweeps). Only the ids: the
/// sweep compares them with the last sweep's and looks further only when
/// they differ.
///
/// This is every sweep's one piece of work on an idle machine, so it is
/// kept small: one dump for both families where the kernel takes the old
/// `TCPDIAG_GETSOCK` request (its family is `AF_UNSPEC`: the kernel walks
/// its listening hash once instead of once per family; the walk over its
/// buckets is most of a dump's cost, docs/benchmarks.md "Issue 11"), and
/// the inode read straight from each `inet_diag_msg` rather than decoding
/// every message and its attributes. Where the old request is refused,
/// two `SOCK_DIAG_BY_FAMILY` dumps as before.
pub fn listening_ids_on(socket: &Socket) -> Result<BTreeSet<u64>, PlatformError> {
    // Thread-local so the per-sweep dump allocates nothing: 64 KiB once.
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(dump_buffer());
    }
    BUF.with_borrow_mut(|buf| {
        let mut ids = BTreeSet::new();
        if COMPAT_DUMP.load(Ordering::Relaxed) {
            match raw_listen_dump(socket, buf, &compat_listen_request(), &mut ids) {
                Ok(()) => return Ok(ids),
                Err(DumpError::Refused(errno)) => {
                    tracing::debug!(errno, "TCPDIAG_GETSOCK refused; dumping per family");
                    COMPAT_DUMP.store(false, Ordering::Relaxed);
                    ids.clear();
                }
                Err(DumpError::Failed(e)) => return Err(e),
            }
        }
        for family in [AF_INET, AF_INET6] {
            dump(socket, buf, family, StateFlags::LISTEN, None, |r| {
                ids.insert(u64::from(r.header.inode));
            })
            .map_err(PlatformError::from)?;
        }
        Ok(ids)
    })
}

/// Whether the kernel took the one-dump `TCPDIAG_GETSOCK` request last
/// time; cleared for good the first time it refuses it.
static COMPAT_DUMP: AtomicBool = AtomicBool::new(true);

/// `TCPDIAG_GETSOCK` (linux/inet_diag.h): the request type that predates
/// `SOCK_DIAG_BY_FAMILY`. The kernel answers it with `sdiag_family`
/// `AF_UNSPEC`, i.e. TCP sockets of both families in one dump.
const TCPDIAG_GETSOCK: u16 = 18;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
/// `offsetof(struct inet_diag_msg, idiag_inode)`: family, state, timer,
/// retrans (4 bytes), `inet_diag_sockid` (48), expires, rqueue, wqueue,
/// uid (16).
const INET_DIAG_MSG_INODE: usize = 68;
const TCP_LISTEN_STATE: u32 = 10;

/// `nlmsghdr` + `struct inet_diag_req` (the v1 request: family, src_len,
/// dst_len, ext, a zero `inet_diag_sockid`, states, dbs) asking for the
/// LISTEN sockets.
fn compat_listen_request() -> [u8; NLMSG_HDRLEN + 60] {
    let mut req = [0u8; NLMSG_HDRLEN + 60];
    let len = u32::try_from(req.len()).unwrap_or(u32::MAX);
    req[0..4].copy_from_slice(&len.to_ne_bytes());
    req[4..6].copy_from_slice(&TCPDIAG_GETSOCK.to_ne_bytes());
    req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    // Sequence and port stay 0 (the kernel fills the port in); the
    // family byte is ignored by the kernel, AF_INET for old ones that
    // read it.
    req[NLMSG_HDRLEN] = AF_INET;
    let states = 1u32 << TCP_LISTEN_STATE;
    req[NLMSG_HDRLEN + 52..NLMSG_HDRLEN + 56].copy_from_slice(&states.to_ne_bytes());
    req
}

/// Send `request` and collect the inode of every socket in the dump that
/// answers it, reading the fixed `inet_diag_msg` layout in place.
fn raw_listen_dump(
    socket: &Socket,
    buf: &mut [u8],
    request: &[u8],
    ids: &mut BTreeSet<u64>,
) -> Result<(), DumpError> {
    let netlink = |e: std::io::Error| PlatformError::io("netlink sock_diag", e);
    socket.send(request, 0).map_err(netlink)?;
    loop {
        let size = socket.recv(&mut &mut buf[..], 0).map_err(netlink)?;
        let chunk = buf.get(..size).unwrap_or(buf);
        if let Some(end) = listen_inodes(chunk, ids)? {
            return end;
        }
    }
}

/// The inodes in one datagram of a dump. `Some` when the dump ended in
/// it: `Ok` at `NLMSG_DONE`, the kernel's refusal at `NLMSG_ERROR`.
fn listen_inodes(
    mut chunk: &[u8],
    ids: &mut BTreeSet<u64>,
) -> Result<Option<Result<(), DumpError>>, DumpError> {
    let malformed = |detail: String| PlatformError::Malformed {
        what: "sock_diag reply",
        path: "netlink sock_diag".into(),
        detail,
    };
    let u32_at = |b: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    while chunk.len() >= NLMSG_HDRLEN {
        let len = u32_at(chunk, 0).unwrap_or(0) as usize;
        if len < NLMSG_HDRLEN || len > chunk.len() {
            return Err(malformed(format!(
                "message of {len} bytes in a {}-byte datagram",
                chunk.len()
            ))
            .into());
        }
        let kind = u16::from_ne_bytes([chunk[4], chunk[5]]);
        let payload = &chunk[NLMSG_HDRLEN..len];
        match kind {
            NLMSG_DONE => return Ok(Some(Ok(()))),
            NLMSG_ERROR => {
                // `struct nlmsgerr`: the kernel stores -errno.
                let code = payload
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, i32::from_ne_bytes);
                return Ok(Some(Err(DumpError::Refused(-code))));
            }
            _ => {
                let inode = u32_at(payload, INET_DIAG_MSG_INODE)
                    .ok_or_else(|| malformed(format!("{}-byte inet_diag_msg", payload.len())))?;
                ids.insert(u64::from(inode));
            }
        }
        // Messages are 4-byte aligned within a datagram.
        let step = len.next_multiple_of(4).min(chunk.len());
        chunk = &chunk[step..];
    }
    Ok(None)
}

/// Netlink dump of LISTEN sockets for both address families.
pub fn netlink_listening() -> Result<Vec<RawListener>, PlatformError> {
    let socket = open_diag()?;
    let mut out = Vec::new();
    let mut buf = dump_buffer();
    for family in [AF_INET, AF_INET6] {
        dump(&socket, &mut buf, family, StateFlags::LISTEN, None, |r| {
            let v6only = r.nlas.iter().find_map(|nla| match nla {
                Nla::SkV6Only(v) => Some(*v),
                _ => None,
            });
            out.push(RawListener {
                address: r.header.socket_id.source_address,
                port: r.header.socket_id.source_port,
                inode: u64::from(r.header.inode),
                v6only,
            });
        })
        .map_err(PlatformError::from)?;
    }
    Ok(out)
}

/// Whether the kernel took our port-filter bytecode last time. Cleared for
/// good the first time it refuses (kernels before 4.16 lack
/// `INET_DIAG_BC_S_EQ`), so an old kernel costs one refused request per
/// process, not one per call.
static KERNEL_FILTER: AtomicBool = AtomicBool::new(true);

/// Established TCP connections, IPv4 and IPv6, whose local port is in
/// `ports`, sorted. Empty `ports` answers without a syscall.
///
/// The kernel filters by state (`1 << TCP_ESTABLISHED`) and, when it
/// accepts the bytecode, by port, so only matching sockets cross into
/// user space; the port test is repeated here regardless, so the answer
/// does not depend on the bytecode. No `/proc` walk: owners are not
/// resolved.
///
/// Cost: each family's dump walks the kernel's whole established hash
/// (262 144 buckets on a 23 GiB host: 1.5–2.5 ms per family, most of a
/// call), however few sockets match. The port filter saves the
/// per-socket messages, which only matters on a host with many
/// connections.
pub fn established(ports: &BTreeSet<u16>) -> Result<Vec<Established>, PlatformError> {
    if ports.is_empty() {
        return Ok(Vec::new());
    }
    let program = port_filter(ports);
    let socket = open_diag()?;
    let mut buf = dump_buffer();
    let mut out = Vec::new();
    for family in [AF_INET, AF_INET6] {
        let kernel = program
            .as_deref()
            .filter(|_| KERNEL_FILTER.load(Ordering::Relaxed));
        let found = match dump_established(&socket, &mut buf, family, kernel) {
            Err(DumpError::Refused(code)) if kernel.is_some() => {
                tracing::debug!(code, "sock_diag refused the port filter; filtering here");
                KERNEL_FILTER.store(false, Ordering::Relaxed);
                dump_established(&socket, &mut buf, family, None)?
            }
            other => other?,
        };
        out.extend(
            found
                .into_iter()
                .filter(|e| ports.contains(&e.local.port())),
        );
    }
    out.sort_unstable();
    Ok(out)
}

/// One family's ESTABLISHED sockets exactly as the kernel returns them
/// (filtered by `program` if given, not by us).
pub fn dump_established(
    socket: &Socket,
    buf: &mut [u8],
    family: u8,
    program: Option<&[u8]>,
) -> Result<Vec<Established>, DumpError> {
    let mut out = Vec::new();
    dump(socket, buf, family, StateFlags::ESTABLISHED, program, |r| {
        let id = &r.header.socket_id;
        out.push(Established {
            local: socket_addr(id.source_address, id.source_port, id.interface_id),
            remote: socket_addr(id.destination_address, id.destination_port, id.interface_id),
            socket_id: u64::from(r.header.inode),
        });
    })?;
    Ok(out)
}

/// An address as the rest of lenscap compares it. An IPv4 peer of a
/// dual-stack `[::]` listener appears here as `::ffff:a.b.c.d`; it is
/// reported as the IPv4 address it is, which is also how macOS reports
/// such a connection (the accepted socket is re-flagged IPv4 there). A
/// link-local IPv6 address keeps its interface as the scope id.
fn socket_addr(ip: IpAddr, port: u16, interface: u32) -> std::net::SocketAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) if v6.is_unicast_link_local() => {
            SocketAddrV6::new(v6, port, 0, interface).into()
        }
        ip => (ip, port).into(),
    }
}

/// `INET_DIAG_REQ_BYTECODE`: the request attribute carrying a filter.
const INET_DIAG_REQ_BYTECODE: u16 = 1;
/// `inet_diag_bc_op.code`: unconditional jump (the `no` branch is taken).
const INET_DIAG_BC_JMP: u8 = 1;
/// `inet_diag_bc_op.code`: local port equals the next op's `no` (4.16+).
const INET_DIAG_BC_S_EQ: u8 = 11;
/// Beyond this many ports the program is not worth its size (12 bytes a
/// port, and every socket runs it): the kernel then filters by state only.
const MAX_FILTER_PORTS: usize = 1024;

/// An `inet_diag` bytecode program accepting sockets whose local port is
/// one of `ports`, or `None` when there are none or too many.
///
/// The interpreter (`inet_diag_bc_run`) steps through 4-byte
/// `{code, yes: u8, no: u16}` ops, moving `yes` or `no` bytes forward;
/// landing exactly on the end accepts, jumping past it rejects. The
/// auditor (`inet_diag_bc_audit`) demands that every `no` target lies on
/// the chain of `yes` steps from the start, so a match cannot jump
/// straight to the end. Each port but the last is therefore
///
/// ```text
/// S_EQ yes=8 no=12 | port | JMP yes=4 no=<rest>
/// ```
///
/// a match falls through to the `JMP`, which always takes `no` to the end
/// (accept); a miss skips the `JMP` to the next port's test. The last port
/// is `S_EQ yes=8 no=12 | port`: a match ends the program, a miss jumps 4
/// bytes past the end (reject).
pub fn port_filter(ports: &BTreeSet<u16>) -> Option<Vec<u8>> {
    if ports.is_empty() || ports.len() > MAX_FILTER_PORTS {
        return None;
    }
    let op = |code: u8, yes: u8, no: u16| {
        let mut b = [code, yes, 0, 0];
        b[2..].copy_from_slice(&no.to_ne_bytes());
        b
    };
    let total = 12 * ports.len() - 4;
    let mut program = Vec::with_capacity(total);
    for (i, &port) in ports.iter().enumerate() {
        program.extend_from_slice(&op(INET_DIAG_BC_S_EQ, 8, 12));
        program.extend_from_slice(&op(0, 0, port));
        if i + 1 < ports.len() {
            // From the JMP (included) to the end: exactly what is left.
            let rest = total - program.len();
            program.extend_from_slice(&op(INET_DIAG_BC_JMP, 4, u16::try_from(rest).ok()?));
        }
    }
    Some(program)
}

/// Why a dump failed: the kernel answered the request with an error
/// (`NLMSG_ERROR`, e.g. `EINVAL` for a program it does not understand), or
/// something else went wrong.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("sock_diag request refused: errno {0}")]
    Refused(i32),
    #[error(transparent)]
    Failed(#[from] PlatformError),
}

impl From<DumpError> for PlatformError {
    fn from(e: DumpError) -> PlatformError {
        match e {
            DumpError::Failed(e) => e,
            refused @ DumpError::Refused(_) => PlatformError::Malformed {
                what: "sock_diag reply",
                path: "netlink sock_diag".into(),
                detail: refused.to_string(),
            },
        }
    }
}

/// A connected `NETLINK_SOCK_DIAG` socket.
pub fn open_diag() -> Result<Socket, PlatformError> {
    let netlink = |e: std::io::Error| PlatformError::io("netlink sock_diag", e);
    let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(netlink)?;
    socket.bind_auto().map_err(netlink)?;
    socket.connect(&SocketAddr::new(0, 0)).map_err(netlink)?;
    Ok(socket)
}

/// Dumps are sent in skbs of up to 32 KiB; a smaller buffer would
/// truncate messages.
pub fn dump_buffer() -> Vec<u8> {
    vec![0u8; 64 * 1024]
}

/// One `SOCK_DIAG_BY_FAMILY` dump of TCP sockets in `states`, optionally
/// filtered by an `inet_diag` bytecode `program`; `each` sees every socket
/// the kernel returns.
fn dump(
    socket: &Socket,
    buf: &mut [u8],
    family: u8,
    states: StateFlags,
    program: Option<&[u8]>,
    mut each: impl FnMut(InetResponse),
) -> Result<(), DumpError> {
    let netlink = |e: std::io::Error| PlatformError::io("netlink sock_diag", e);
    let malformed = |detail: String| PlatformError::Malformed {
        what: "sock_diag reply",
        path: "netlink sock_diag".into(),
        detail,
    };
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut request = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states,
            socket_id: if family == AF_INET {
                SocketId::new_v4()
            } else {
                SocketId::new_v6()
            },
        })
        .into(),
    );
    request.finalize();
    let mut bytes = vec![0u8; request.buffer_len()];
    request.serialize(&mut bytes);
    if let Some(program) = program {
        // netlink-packet-sock-diag cannot emit request attributes: append
        // the nlattr after `inet_diag_req_v2` (already 4-byte aligned) and
        // grow `nlmsg_len` to cover it.
        let attr_len = u16::try_from(4 + program.len())
            .map_err(|_| malformed(format!("{}-byte filter program", program.len())))?;
        bytes.extend_from_slice(&attr_len.to_ne_bytes());
        bytes.extend_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
        bytes.extend_from_slice(program);
        bytes.resize(bytes.len().next_multiple_of(4), 0);
        let total = u32::try_from(bytes.len()).map_err(|_| malformed("request too long".into()))?;
        bytes[..4].copy_from_slice(&total.to_ne_bytes());
    }
    socket.send(&bytes, 0).map_err(netlink)?;

    loop {
        let size = socket.recv(&mut &mut buf[..], 0).map_err(netlink)?;
        let mut chunk = buf.get(..size).unwrap_or(buf);
        while !chunk.is_empty() {
            let message = NetlinkMessage::<SockDiagMessage>::deserialize(chunk)
                .map_err(|e| malformed(e.to_string()))?;
            let len = message.header.length as usize;
            match message.payload {
                NetlinkPayload::Done(_) => return Ok(()),
                NetlinkPayload::Error(e) => {
                    return Err(match e.code {
                        // The kernel stores -errno.
                        Some(code) => DumpError::Refused(-code.get()),
                        None => malformed("unexpected ACK in a dump".into()).into(),
                    });
                }
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => each(*r),
                _ => {}
            }
            // Messages are 4-byte aligned within a datagram.
            let step = len.next_multiple_of(4);
            if len == 0 || step > chunk.len() {
                break;
            }
            chunk = &chunk[step..];
        }
    }
}

/// LISTEN sockets from `<net_dir>/tcp` and `<net_dir>/tcp6` (normally
/// `/proc/net`). A missing `tcp6` means IPv6 is disabled, not an error.
pub fn procfs_listening(net_dir: &Path) -> Result<Vec<RawListener>, PlatformError> {
    let mut out = Vec::new();
    for name in ["tcp", "tcp6"] {
        let path = net_dir.join(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if name == "tcp6" && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(PlatformError::io(&path, e)),
        };
        out.extend(
            text.lines()
                .filter_map(parse_tcp_line)
                .filter(|e| e.state == TCP_LISTEN)
                .map(|e| RawListener {
                    address: e.address,
                    port: e.port,
                    inode: e.inode,
                    v6only: None,
                }),
        );
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    fn inode_of(socket: &impl AsRawFd) -> u64 {
        let link = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd())).unwrap();
        super::super::procfs::parse_socket_link(link.as_os_str().as_encoded_bytes()).unwrap()
    }

    #[test]
    fn netlink_sees_v4_and_v6_listeners_with_v6only() {
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let v6 = TcpListener::bind("[::1]:0").unwrap();
        let list = netlink_listening().unwrap();
        let find = |l: &TcpListener| {
            let inode = inode_of(l);
            *list.iter().find(|r| r.inode == inode).unwrap()
        };
        let a = find(&v4);
        assert_eq!(a.address, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(a.port, v4.local_addr().unwrap().port());
        assert_eq!(a.v6only, None);
        let b = find(&v6);
        assert_eq!(b.address, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(b.port, v6.local_addr().unwrap().port());
        // std sets no IPV6_V6ONLY; Linux's default (bindv6only=0) is false.
        assert!(b.v6only.is_some());
    }

    #[test]
    fn one_dump_lists_listeners_of_both_families_and_not_closed_ones() {
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let v6 = TcpListener::bind("[::1]:0").unwrap();
        let gone = TcpListener::bind("127.0.0.1:0").unwrap();
        let gone_inode = inode_of(&gone);
        drop(gone);
        let socket = open_diag().unwrap();
        // The one-dump request on its own (not the per-family fallback).
        let mut buf = dump_buffer();
        let mut one = BTreeSet::new();
        raw_listen_dump(&socket, &mut buf, &compat_listen_request(), &mut one).unwrap();
        assert!(one.contains(&inode_of(&v4)), "IPv4 listener");
        assert!(one.contains(&inode_of(&v6)), "IPv6 listener");
        assert!(!one.contains(&gone_inode), "a closed listener");
        // The socket is reusable: the daemon keeps it between sweeps.
        let again = listening_ids_on(&socket).unwrap();
        assert!(again.contains(&inode_of(&v4)) && again.contains(&inode_of(&v6)));
        assert!(!again.contains(&gone_inode));
    }

    /// A datagram as the kernel sends it: `nlmsghdr` + `inet_diag_msg`
    /// (72 bytes) per socket, then `NLMSG_DONE`.
    fn diag_datagram(inodes: &[u32], end: Option<(u16, i32)>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut message = |kind: u16, payload: &[u8]| {
            let len = u32::try_from(NLMSG_HDRLEN + payload.len()).unwrap();
            out.extend_from_slice(&len.to_ne_bytes());
            out.extend_from_slice(&kind.to_ne_bytes());
            out.extend_from_slice(&[0u8; 10]);
            out.extend_from_slice(payload);
            out.resize(out.len().next_multiple_of(4), 0);
        };
        for inode in inodes {
            let mut msg = [0u8; 72];
            msg[0] = AF_INET;
            msg[1] = 10;
            msg[INET_DIAG_MSG_INODE..INET_DIAG_MSG_INODE + 4].copy_from_slice(&inode.to_ne_bytes());
            message(TCPDIAG_GETSOCK, &msg);
        }
        if let Some((kind, code)) = end {
            message(kind, &code.to_ne_bytes());
        }
        out
    }

    #[test]
    fn inodes_are_read_in_place_and_the_end_of_the_dump_is_seen() {
        let mut ids = BTreeSet::new();
        let more = listen_inodes(&diag_datagram(&[7, 9], None), &mut ids).unwrap();
        assert!(more.is_none(), "no NLMSG_DONE yet: read on");
        let done = listen_inodes(&diag_datagram(&[11], Some((NLMSG_DONE, 0))), &mut ids).unwrap();
        assert!(matches!(done, Some(Ok(()))));
        assert_eq!(ids, BTreeSet::from([7, 9, 11]));

        let mut ids = BTreeSet::new();
        let refused =
            listen_inodes(&diag_datagram(&[], Some((NLMSG_ERROR, -22))), &mut ids).unwrap();
        assert!(matches!(refused, Some(Err(DumpError::Refused(22)))));

        // A message cut short, or one claiming more bytes than came.
        let mut short = diag_datagram(&[5], None);
        short.truncate(NLMSG_HDRLEN + 40);
        let len = u32::try_from(short.len()).unwrap();
        short[..4].copy_from_slice(&len.to_ne_bytes());
        assert!(listen_inodes(&short, &mut BTreeSet::new()).is_err());
        let mut long = diag_datagram(&[5], None);
        long[..4].copy_from_slice(&4096u32.to_ne_bytes());
        assert!(listen_inodes(&long, &mut BTreeSet::new()).is_err());
    }

    #[test]
    fn procfs_agrees_with_netlink() {
        let _v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let _v6 = TcpListener::bind("[::1]:0").unwrap();
        let key = |r: &RawListener| (r.inode, r.address, r.port);
        let mut a: Vec<_> = netlink_listening().unwrap().iter().map(key).collect();
        let mut b: Vec<_> = procfs_listening(Path::new("/proc/net"))
            .unwrap()
            .iter()
            .map(key)
            .collect();
        a.sort();
        b.sort();
        // Other tests open and close listeners concurrently: compare ours.
        for inode in [inode_of(&_v4), inode_of(&_v6)] {
            assert_eq!(
                a.iter().find(|k| k.0 == inode),
                b.iter().find(|k| k.0 == inode)
            );
        }
    }

    #[test]
    fn procfs_reads_fixture_dir_and_skips_non_listen() {
        let dir = tempfile::tempdir().unwrap();
        // Lines in the shape of /proc/net/tcp on x86_64; no tcp6 file.
        std::fs::write(
            dir.path().join("tcp"),
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
             \x20  0: 0100007F:4BE5 00000000:0000 0A 00000000:00000000 00:00000000 00000000   501        0 7001 1 0 100 0 0 10 0\n\
             \x20  1: 0100007F:4BE5 0100007F:C350 01 00000000:00000000 00:00000000 00000000   501        0 7002 1 0 20 4 30 10 -1\n",
        )
        .unwrap();
        let list = procfs_listening(dir.path()).unwrap();
        assert_eq!(
            list,
            vec![RawListener {
                address: "127.0.0.1".parse().unwrap(),
                port: 19429,
                inode: 7001,
                v6only: None
            }]
        );
        std::fs::remove_file(dir.path().join("tcp")).unwrap();
        assert!(procfs_listening(dir.path()).is_err());
    }

    /// A listener on `addr` with one accepted connection: (listener,
    /// client, server side).
    fn connected(addr: &str) -> (TcpListener, TcpStream, TcpStream) {
        let listener = TcpListener::bind(addr).unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (listener, client, server)
    }

    fn ports(list: &[u16]) -> BTreeSet<u16> {
        list.iter().copied().collect()
    }

    fn op(code: u8, yes: u8, no: u16) -> Vec<u8> {
        let mut b = vec![code, yes];
        b.extend_from_slice(&no.to_ne_bytes());
        b
    }

    #[test]
    fn port_filter_layout() {
        assert_eq!(port_filter(&BTreeSet::new()), None);
        assert_eq!(
            port_filter(&ports(&[8080])).unwrap(),
            [op(11, 8, 12), op(0, 0, 8080)].concat()
        );
        // Ports in ascending order; each JMP lands exactly on the end.
        assert_eq!(
            port_filter(&ports(&[443, 80, 8080])).unwrap(),
            [
                op(11, 8, 12),
                op(0, 0, 80),
                op(1, 4, 24),
                op(11, 8, 12),
                op(0, 0, 443),
                op(1, 4, 12),
                op(11, 8, 12),
                op(0, 0, 8080),
            ]
            .concat()
        );
        let many: BTreeSet<u16> = (1..=u16::try_from(MAX_FILTER_PORTS).unwrap()).collect();
        assert_eq!(port_filter(&many).unwrap().len(), 12 * MAX_FILTER_PORTS - 4);
        let too_many: BTreeSet<u16> = (1..=u16::try_from(MAX_FILTER_PORTS + 1).unwrap()).collect();
        assert_eq!(port_filter(&too_many), None);
    }

    /// The kernel runs the program: only sockets on the chosen ports come
    /// back, though the other connection is just as ESTABLISHED.
    #[test]
    fn kernel_filter_keeps_only_the_chosen_ports() {
        let (a, _ca, sa) = connected("127.0.0.1:0");
        let (b, _cb, sb) = connected("127.0.0.1:0");
        let (c, _cc, sc) = connected("[::1]:0");
        let (pa, pb, pc) = (
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
            c.local_addr().unwrap().port(),
        );
        let socket = open_diag().unwrap();
        let mut buf = dump_buffer();
        let dump = |family, program: Option<Vec<u8>>, buf: &mut [u8]| {
            dump_established(&socket, buf, family, program.as_deref()).unwrap()
        };
        let ids = |list: &[Established]| list.iter().map(|e| e.socket_id).collect::<Vec<_>>();

        let unfiltered = dump(AF_INET, None, &mut buf);
        assert!(ids(&unfiltered).contains(&inode_of(&sa)));
        assert!(ids(&unfiltered).contains(&inode_of(&sb)));

        let only_a = dump(AF_INET, port_filter(&ports(&[pa])), &mut buf);
        assert_eq!(ids(&only_a), vec![inode_of(&sa)], "{only_a:?}");
        assert!(only_a.iter().all(|e| e.local.port() == pa));

        // Many ports, ours scattered among them: every branch of the
        // program is exercised, and the IPv6 dump runs it too.
        let mut wide: BTreeSet<u16> = (0..40u16).map(|i| 20_000 + 997 * i).collect();
        wide.extend([pa, pb, pc]);
        let v4 = dump(AF_INET, port_filter(&wide), &mut buf);
        assert!(v4.iter().all(|e| wide.contains(&e.local.port())), "{v4:?}");
        assert!(ids(&v4).contains(&inode_of(&sa)));
        assert!(ids(&v4).contains(&inode_of(&sb)));
        let v6 = dump(AF_INET6, port_filter(&wide), &mut buf);
        assert!(v6.iter().all(|e| wide.contains(&e.local.port())), "{v6:?}");
        assert!(ids(&v6).contains(&inode_of(&sc)));
        let none = dump(AF_INET6, port_filter(&ports(&[pa, pb])), &mut buf);
        assert!(!ids(&none).contains(&inode_of(&sc)));
    }

    #[test]
    fn refused_program_is_reported_and_the_socket_stays_usable() {
        let (l, _c, s) = connected("127.0.0.1:0");
        let socket = open_diag().unwrap();
        let mut buf = dump_buffer();
        // 200 is no inet_diag_bc op code: the auditor says EINVAL.
        let bogus = op(200, 4, 8);
        match dump_established(&socket, &mut buf, AF_INET, Some(&bogus)) {
            Err(DumpError::Refused(code)) => assert_eq!(code, libc::EINVAL),
            other => panic!("expected a refusal, got {other:?}"),
        }
        let port = l.local_addr().unwrap().port();
        let program = port_filter(&ports(&[port]));
        let after = dump_established(&socket, &mut buf, AF_INET, program.as_deref()).unwrap();
        assert_eq!(
            after.iter().map(|e| e.socket_id).collect::<Vec<_>>(),
            vec![inode_of(&s)]
        );
    }

    /// More ports than the kernel program takes: the state-only dump and
    /// the filter here give the same answer.
    #[test]
    fn too_many_ports_are_filtered_here() {
        let (l, c, s) = connected("127.0.0.1:0");
        let port = l.local_addr().unwrap().port();
        let mut set: BTreeSet<u16> = (1..=3000u16).map(|i| 30_000u16.wrapping_add(i)).collect();
        set.insert(port);
        assert_eq!(port_filter(&set), None);
        let got = established(&set).unwrap();
        assert!(got.iter().all(|e| set.contains(&e.local.port())));
        let ours: Vec<_> = got.iter().filter(|e| e.local.port() == port).collect();
        assert_eq!(
            ours,
            vec![&Established {
                local: c.peer_addr().unwrap(),
                remote: c.local_addr().unwrap(),
                socket_id: inode_of(&s),
            }]
        );
    }

    #[test]
    fn mapped_and_link_local_addresses() {
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(socket_addr(mapped, 80, 0), "127.0.0.1:80".parse().unwrap());
        let ll: IpAddr = "fe80::1".parse().unwrap();
        assert_eq!(
            socket_addr(ll, 80, 3),
            std::net::SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 80, 0, 3))
        );
        assert_eq!(
            socket_addr("::1".parse().unwrap(), 80, 3),
            "[::1]:80".parse().unwrap()
        );
    }
}
