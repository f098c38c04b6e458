//! Listening TCP sockets of this network namespace, without owners.
//!
//! The first choice is netlink `sock_diag` (what `ss` uses): the kernel
//! filters to LISTEN for us and, for IPv6, reports `IPV6_V6ONLY`
//! (`INET_DIAG_SKV6ONLY`), which decides whether a `[::]` listener is also
//! reachable over IPv4. If netlink is refused (a seccomp sandbox, a kernel
//! without `inet_diag`), `/proc/net/tcp{,6}` gives the same sockets but
//! cannot tell `v6only`.

use std::net::IpAddr;
use std::path::Path;

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
use netlink_packet_sock_diag::inet::nlas::Nla;
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use netlink_sys::{Socket, SocketAddr};

use super::procfs::{TCP_LISTEN, parse_tcp_line};
use crate::platform::PlatformError;

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

/// Netlink dump of LISTEN sockets for both address families.
pub fn netlink_listening() -> Result<Vec<RawListener>, PlatformError> {
    let netlink = |e: std::io::Error| PlatformError::io("netlink sock_diag", e);
    let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(netlink)?;
    socket.bind_auto().map_err(netlink)?;
    socket.connect(&SocketAddr::new(0, 0)).map_err(netlink)?;
    let mut out = Vec::new();
    // Dumps are sent in skbs of up to 32 KiB; a smaller buffer would
    // truncate messages.
    let mut buf = vec![0u8; 64 * 1024];
    for family in [AF_INET, AF_INET6] {
        dump_family(&socket, family, &mut buf, &mut out)?;
    }
    Ok(out)
}

fn dump_family(
    socket: &Socket,
    family: u8,
    buf: &mut [u8],
    out: &mut Vec<RawListener>,
) -> Result<(), PlatformError> {
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
            states: StateFlags::LISTEN,
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
                    return Err(malformed(format!("kernel error {:?}", e.code)));
                }
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
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
                }
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
    use std::net::TcpListener;

    fn inode_of(listener: &TcpListener) -> u64 {
        use std::os::fd::AsRawFd;
        let link = std::fs::read_link(format!("/proc/self/fd/{}", listener.as_raw_fd())).unwrap();
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
}
