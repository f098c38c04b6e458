//! The bytes `proc_pidfdinfo(pid, fd, PROC_PIDFDSOCKETINFO)` writes, read
//! without trusting them, and the grouping of the sockets found that way
//! into listeners or into established connections to chosen ports. (Process facts from `proc_bsdinfo` are in
//! [`super::proc_bsdinfo`].)
//!
//! The `#[repr(C)]` structs mirror XNU's `bsd/sys/proc_info.h`
//! (apple-oss-distributions/xnu): `proc_fileinfo`, `vinfo_stat`,
//! `in_sockinfo`, `tcp_sockinfo`, `socket_info`, `socket_fdinfo`. They are
//! never filled from the kernel buffer: they exist so the compiler computes
//! the field offsets (`offset_of!`) and proves the sizes the public bindings
//! assert (80 / 120 / 792 bytes). [`decode_tcp_listener`] then reads each
//! field from the byte slice at those offsets — no transmute of a buffer
//! another process influenced, no `unsafe`, and a short buffer is an error
//! rather than a read past the end.
//!
//! Byte order. Integers are the host's (both Mac architectures are
//! little-endian). Ports and addresses are **network byte order**, settled
//! from three public sources: XNU's `fill_socketinfo` copies
//! `inp->inp_lport` (kept in network order by the inpcb code) straight into
//! `insi_lport`; Apple's lsof (`dialects/darwin/libproc/dsock.c`) reads it as
//! `ntohs(…insi_lport)`; and the libproc 0.15 crate's own `pidfdinfo`
//! example byte-swaps `insi_lport` and `s_addr` "because … network endian".
//!
//! IPv4 or IPv6 comes from `insi_vflag` (`INI_IPV4 = 1`, `INI_IPV6 = 2`).
//! An IPv6 socket bound to `::` without `IPV6_V6ONLY` carries both bits:
//! that is how we learn it also accepts IPv4. One bound to a v4-mapped
//! address carries only `INI_IPV4` and its address sits in the last four
//! bytes of the 16-byte field (the `in4in6_addr` view of the same union),
//! which is where lsof reads it too.

use std::collections::{BTreeMap, BTreeSet};
use std::mem::{offset_of, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use crate::model::{AddressScope, Established, Listener};

/// `struct proc_fileinfo`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcFileInfo {
    pub fi_openflags: u32,
    pub fi_status: u32,
    pub fi_offset: i64,
    pub fi_type: i32,
    pub fi_guardflags: u32,
}

/// `struct vinfo_stat` (a fixed-size `stat64`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct VinfoStat {
    pub vst_dev: u32,
    pub vst_mode: u16,
    pub vst_nlink: u16,
    pub vst_ino: u64,
    pub vst_uid: u32,
    pub vst_gid: u32,
    pub vst_atime: i64,
    pub vst_atimensec: i64,
    pub vst_mtime: i64,
    pub vst_mtimensec: i64,
    pub vst_ctime: i64,
    pub vst_ctimensec: i64,
    pub vst_birthtime: i64,
    pub vst_birthtimensec: i64,
    pub vst_size: i64,
    pub vst_blocks: i64,
    pub vst_blksize: i32,
    pub vst_flags: u32,
    pub vst_gen: u32,
    pub vst_rdev: u32,
    pub vst_qspare: [i64; 2],
}

/// The `union { struct in4in6_addr ina_46; struct in6_addr ina_6; }` of
/// `in_sockinfo`: 16 bytes, 4-byte aligned. The IPv4 view is the last four.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct In4In6Addr {
    pub words: [u32; 4],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct InSiV4 {
    pub in4_tos: u8,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct InSiV6 {
    pub in6_hlim: u8,
    pub in6_cksum: i32,
    pub in6_ifindex: u16,
    pub in6_hops: i16,
}

/// `struct in_sockinfo`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct InSockInfo {
    pub insi_fport: i32,
    pub insi_lport: i32,
    pub insi_gencnt: u64,
    pub insi_flags: u32,
    pub insi_flow: u32,
    pub insi_vflag: u8,
    pub insi_ip_ttl: u8,
    pub rfu_1: u32,
    pub insi_faddr: In4In6Addr,
    pub insi_laddr: In4In6Addr,
    pub insi_v4: InSiV4,
    pub insi_v6: InSiV6,
}

/// `struct tcp_sockinfo`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpSockInfo {
    pub tcpsi_ini: InSockInfo,
    pub tcpsi_state: i32,
    pub tcpsi_timer: [i32; 4],
    pub tcpsi_mss: i32,
    pub tcpsi_flags: u32,
    pub rfu_1: u32,
    pub tcpsi_tp: u64,
}

/// `struct sockbuf_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SockbufInfo {
    pub sbi_cc: u32,
    pub sbi_hiwat: u32,
    pub sbi_mbcnt: u32,
    pub sbi_mbmax: u32,
    pub sbi_lowat: u32,
    pub sbi_flags: i16,
    pub sbi_timeo: i16,
}

/// `soi_proto`, the union of per-kind details. Its largest member is
/// `un_sockinfo` (two `uint64_t` and two 255-byte address unions = 526
/// bytes, padded to 528 by the 8-byte alignment), so it is modelled as 66
/// `u64`s: the same size and alignment. Only the IN/TCP view is read.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SocketInfoProto {
    pub storage: [u64; 66],
}

/// `struct socket_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SocketInfo {
    pub soi_stat: VinfoStat,
    pub soi_so: u64,
    pub soi_pcb: u64,
    pub soi_type: i32,
    pub soi_protocol: i32,
    pub soi_family: i32,
    pub soi_options: i16,
    pub soi_linger: i16,
    pub soi_state: i16,
    pub soi_qlen: i16,
    pub soi_incqlen: i16,
    pub soi_qlimit: i16,
    pub soi_timeo: i16,
    pub soi_error: u16,
    pub soi_oobmark: u32,
    pub soi_rcv: SockbufInfo,
    pub soi_snd: SockbufInfo,
    pub soi_kind: i32,
    pub rfu_1: u32,
    pub soi_proto: SocketInfoProto,
}

/// `struct socket_fdinfo`: what `PROC_PIDFDSOCKETINFO` fills.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SocketFdInfo {
    pub pfi: ProcFileInfo,
    pub psi: SocketInfo,
}

/// Bytes to hand `proc_pidfdinfo` for `PROC_PIDFDSOCKETINFO`.
pub const SOCKET_FDINFO_SIZE: usize = size_of::<SocketFdInfo>();

// The sizes the public bindings assert; a mistake in a mirror above fails
// the build rather than mis-reading a field.
const _: () = assert!(size_of::<InSockInfo>() == 80);
const _: () = assert!(size_of::<TcpSockInfo>() == 120);
const _: () = assert!(size_of::<SocketFdInfo>() == 792);
const _: () = assert!(size_of::<VinfoStat>() == 136);
const _: () = assert!(size_of::<ProcFileInfo>() == 24);

/// `proc_pidfdinfo` flavor.
pub const PROC_PIDFDSOCKETINFO: i32 = 3;
/// `proc_fdinfo.proc_fdtype` of a socket.
pub const PROX_FDTYPE_SOCKET: u32 = 2;
/// `soi_kind` of a TCP socket (then `soi_proto` is a `tcp_sockinfo`).
pub const SOCKINFO_TCP: i32 = 2;
pub const INI_IPV4: u8 = 0x1;
pub const INI_IPV6: u8 = 0x2;
/// `tcpsi_state` of a listening socket.
pub const TSI_S_LISTEN: i32 = 1;
/// `tcpsi_state` of an open connection (`TCPS_ESTABLISHED`).
pub const TSI_S_ESTABLISHED: i32 = 4;

const PSI: usize = offset_of!(SocketFdInfo, psi);
const OFF_SOI_SO: usize = PSI + offset_of!(SocketInfo, soi_so);
const OFF_SOI_PCB: usize = PSI + offset_of!(SocketInfo, soi_pcb);
const OFF_SOI_KIND: usize = PSI + offset_of!(SocketInfo, soi_kind);
const TCP: usize = PSI + offset_of!(SocketInfo, soi_proto);
const INI: usize = TCP + offset_of!(TcpSockInfo, tcpsi_ini);
const OFF_FPORT: usize = INI + offset_of!(InSockInfo, insi_fport);
const OFF_LPORT: usize = INI + offset_of!(InSockInfo, insi_lport);
const OFF_VFLAG: usize = INI + offset_of!(InSockInfo, insi_vflag);
const OFF_FADDR: usize = INI + offset_of!(InSockInfo, insi_faddr);
const OFF_LADDR: usize = INI + offset_of!(InSockInfo, insi_laddr);
const OFF_STATE: usize = TCP + offset_of!(TcpSockInfo, tcpsi_state);
const OFF_TP: usize = TCP + offset_of!(TcpSockInfo, tcpsi_tp);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AbiError {
    #[error(
        "proc_pidfdinfo(PROC_PIDFDSOCKETINFO) returned {got} bytes, expected {need}: this macOS may have changed struct socket_fdinfo; update parse/libproc_abi.rs"
    )]
    Short { got: usize, need: usize },
    #[error("TCP socket with insi_vflag {vflag:#x} is neither IPv4 (0x1) nor IPv6 (0x2); skipped")]
    UnknownFamily { vflag: u8 },
}

/// One TCP socket as seen through one file descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedListener {
    pub address: IpAddr,
    pub port: u16,
    /// IPv6 sockets: whether IPv4 is refused (`INI_IPV4` not set). `None`
    /// for IPv4 sockets.
    pub v6only: Option<bool>,
    /// `tcpsi_state == TSI_S_LISTEN`.
    pub listening: bool,
    /// Kernel handle of the socket (`soi_so`, else `soi_pcb`, else
    /// `tcpsi_tp`): the same for every descriptor and process sharing it.
    pub socket_id: u64,
}

/// Decode what `proc_pidfdinfo(…, PROC_PIDFDSOCKETINFO, …)` wrote. `buf` is
/// the slice of the bytes it reported writing. `Ok(None)` for sockets that
/// are not TCP (UDP, Unix, kernel control…).
pub fn decode_tcp_listener(buf: &[u8]) -> Result<Option<DecodedListener>, AbiError> {
    if !is_tcp(buf)? {
        return Ok(None);
    }
    let vflag = buf[OFF_VFLAG];
    let laddr: [u8; 16] = array(buf, OFF_LADDR);
    let (address, v6only) = if vflag & INI_IPV6 != 0 {
        (
            IpAddr::V6(Ipv6Addr::from(laddr)),
            Some(vflag & INI_IPV4 == 0),
        )
    } else if vflag & INI_IPV4 != 0 {
        let v4: [u8; 4] = array(&laddr, 12);
        (IpAddr::V4(Ipv4Addr::from(v4)), None)
    } else {
        return Err(AbiError::UnknownFamily { vflag });
    };
    Ok(Some(DecodedListener {
        address,
        port: port_at(buf, OFF_LPORT),
        v6only,
        listening: read_i32(buf, OFF_STATE) == TSI_S_LISTEN,
        socket_id: socket_id(buf),
    }))
}

/// One TCP connection (either end, any state) as seen through one file
/// descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodedConnection {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// `tcpsi_state` (`TSI_S_*`; [`TSI_S_ESTABLISHED`] is the one that
    /// matters here).
    pub state: i32,
    /// As [`DecodedListener::socket_id`].
    pub socket_id: u64,
}

/// Decode a `socket_fdinfo` as a connection: both addresses and the state.
/// `Ok(None)` for sockets that are not TCP.
///
/// An IPv4 peer of a dual-stack `[::]` listener arrives on a socket the
/// kernel re-flags `INI_IPV4` (XNU `tcp_input`, on accepting: `inp_vflag
/// &= ~INP_IPV6; inp_vflag |= INP_IPV4`), so it decodes as the IPv4
/// addresses it is; a v4-mapped address met under `INI_IPV6` anyway is
/// reduced to IPv4 too, so both platforms report such peers alike.
pub fn decode_tcp_connection(buf: &[u8]) -> Result<Option<DecodedConnection>, AbiError> {
    if !is_tcp(buf)? {
        return Ok(None);
    }
    let vflag = buf[OFF_VFLAG];
    let end = |addr_off: usize, port_off: usize| -> Result<SocketAddr, AbiError> {
        let raw: [u8; 16] = array(buf, addr_off);
        let port = port_at(buf, port_off);
        if vflag & INI_IPV6 != 0 {
            Ok(v6_socket_addr(raw, port))
        } else if vflag & INI_IPV4 != 0 {
            let v4: [u8; 4] = array(&raw, 12);
            Ok(SocketAddr::from((Ipv4Addr::from(v4), port)))
        } else {
            Err(AbiError::UnknownFamily { vflag })
        }
    };
    Ok(Some(DecodedConnection {
        local: end(OFF_LADDR, OFF_LPORT)?,
        remote: end(OFF_FADDR, OFF_FPORT)?,
        state: read_i32(buf, OFF_STATE),
        socket_id: socket_id(buf),
    }))
}

/// An IPv6 address from the kernel. XNU (KAME) may keep a link-local
/// address's interface index embedded in bytes 2–3 (`in6_embedscope`);
/// real link-local addresses have zeros there (`fe80::/64`), so a non-zero
/// value is moved into the scope id, as `netstat` does.
fn v6_socket_addr(mut raw: [u8; 16], port: u16) -> SocketAddr {
    let ip = Ipv6Addr::from(raw);
    if let IpAddr::V4(v4) = ip.to_canonical() {
        return SocketAddr::from((v4, port));
    }
    if !ip.is_unicast_link_local() {
        return SocketAddr::from((ip, port));
    }
    let scope = u16::from_be_bytes([raw[2], raw[3]]);
    raw[2] = 0;
    raw[3] = 0;
    SocketAddrV6::new(Ipv6Addr::from(raw), port, 0, u32::from(scope)).into()
}

/// Keep the ESTABLISHED connections whose local port is in `ports`: the
/// server sides of connections to those listeners (a client's own end
/// has an ephemeral local port). One entry per socket however many
/// descriptors or processes hold it, ordered.
pub fn established_to_ports(
    seen: impl IntoIterator<Item = DecodedConnection>,
    ports: &BTreeSet<u16>,
) -> Vec<Established> {
    let by_socket: BTreeMap<u64, Established> = seen
        .into_iter()
        .filter(|c| c.state == TSI_S_ESTABLISHED && ports.contains(&c.local.port()))
        .map(|c| {
            (
                c.socket_id,
                Established {
                    local: c.local,
                    remote: c.remote,
                    socket_id: c.socket_id,
                },
            )
        })
        .collect();
    let mut out: Vec<Established> = by_socket.into_values().collect();
    out.sort_unstable();
    out
}

/// The length check every decoder starts with, and whether `soi_kind`
/// says TCP.
fn is_tcp(buf: &[u8]) -> Result<bool, AbiError> {
    if buf.len() < SOCKET_FDINFO_SIZE {
        return Err(AbiError::Short {
            got: buf.len(),
            need: SOCKET_FDINFO_SIZE,
        });
    }
    Ok(read_i32(buf, OFF_SOI_KIND) == SOCKINFO_TCP)
}

/// `insi_lport` / `insi_fport`: an int holding the network-order `u_short`
/// in its low 16 bits, read as `ntohs((u_short)insi_lport)`, as lsof does.
fn port_at(buf: &[u8], off: usize) -> u16 {
    u16::from_be(u16::try_from(read_i32(buf, off) & 0xffff).unwrap_or(0))
}

/// Kernel handle of the socket: `soi_so`, else `soi_pcb`, else `tcpsi_tp`.
fn socket_id(buf: &[u8]) -> u64 {
    [OFF_SOI_SO, OFF_SOI_PCB, OFF_TP]
        .into_iter()
        .map(|off| read_u64(buf, off))
        .find(|&id| id != 0)
        .unwrap_or(0)
}

/// `N` bytes at `off`. Callers have checked `buf.len() >= 792` and every
/// offset is a compile-time constant inside that, so the fallback (zeros)
/// is unreachable; it exists so no input can make this panic.
fn array<const N: usize>(buf: &[u8], off: usize) -> [u8; N] {
    buf.get(off..off + N)
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0; N])
}

fn read_i32(buf: &[u8], off: usize) -> i32 {
    i32::from_ne_bytes(array(buf, off))
}

fn read_u64(buf: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(array(buf, off))
}

/// Turn `(pid, socket)` sightings into listeners: only LISTEN sockets, one
/// [`Listener`] per socket id with every PID holding it (ascending, no
/// duplicates when a process has the socket on several fds), ordered by
/// port, address, then socket id.
pub fn group_listeners(seen: impl IntoIterator<Item = (u32, DecodedListener)>) -> Vec<Listener> {
    let mut by_socket: BTreeMap<u64, Listener> = BTreeMap::new();
    for (pid, d) in seen {
        if !d.listening {
            continue;
        }
        let scope = AddressScope::of(d.address);
        let entry = by_socket.entry(d.socket_id).or_insert_with(|| Listener {
            address: d.address,
            port: d.port,
            scope,
            // The model (and Linux) report it only where it matters: an
            // IPv6 wildcard, which may or may not also take IPv4.
            v6only: d.v6only.filter(|_| scope == AddressScope::Wildcard),
            pids: Vec::new(),
            socket_id: d.socket_id,
        });
        if let Err(at) = entry.pids.binary_search(&pid) {
            entry.pids.insert(at, pid);
        }
    }
    let mut out: Vec<Listener> = by_socket.into_values().collect();
    out.sort_by_key(|l| (l.port, l.address, l.socket_id));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Offsets worked out by hand from bsd/sys/proc_info.h, independently of
    // the mirrors above: proc_fileinfo is 24 bytes; in socket_info,
    // vinfo_stat is 136 bytes, then soi_so @136, soi_pcb @144,
    // soi_family @160, two 24-byte sockbuf_info @184/@208, soi_kind @232,
    // soi_proto @240. In in_sockinfo: insi_lport @4, insi_vflag @24,
    // insi_fport @0, insi_faddr @32, insi_laddr @48; in tcp_sockinfo: tcpsi_state @80, tcpsi_tp @112.
    const SO: usize = 24 + 136;
    const PCB: usize = 24 + 144;
    const KIND: usize = 24 + 232;
    const PROTO: usize = 24 + 240;
    const FPORT: usize = PROTO;
    const LPORT: usize = PROTO + 4;
    const FADDR: usize = PROTO + 32;
    const VFLAG: usize = PROTO + 24;
    const LADDR: usize = PROTO + 48;
    const STATE: usize = PROTO + 80;
    const TP: usize = PROTO + 112;

    struct Sock {
        kind: i32,
        vflag: u8,
        laddr: [u8; 16],
        port: u16,
        faddr: [u8; 16],
        fport: u16,
        state: i32,
        so: u64,
        pcb: u64,
        tp: u64,
    }

    fn tcp(vflag: u8, laddr: [u8; 16], port: u16, state: i32) -> Sock {
        Sock {
            kind: SOCKINFO_TCP,
            vflag,
            laddr,
            port,
            faddr: [0; 16],
            fport: 0,
            state,
            so: 0xffff_ff80_1234_5678,
            pcb: 0x42,
            tp: 0x43,
        }
    }

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[12..].copy_from_slice(&a);
        out
    }

    /// Lay the socket out the way the kernel does: `insi_lport` is an int
    /// assigned from the network-order `u_short` `inp_lport`.
    fn bytes(s: &Sock) -> Vec<u8> {
        let mut b = vec![0u8; 792];
        b[KIND..KIND + 4].copy_from_slice(&s.kind.to_ne_bytes());
        b[VFLAG] = s.vflag;
        b[LADDR..LADDR + 16].copy_from_slice(&s.laddr);
        let inp_lport = u16::from_ne_bytes(s.port.to_be_bytes());
        b[LPORT..LPORT + 4].copy_from_slice(&i32::from(inp_lport).to_ne_bytes());
        b[FADDR..FADDR + 16].copy_from_slice(&s.faddr);
        let inp_fport = u16::from_ne_bytes(s.fport.to_be_bytes());
        b[FPORT..FPORT + 4].copy_from_slice(&i32::from(inp_fport).to_ne_bytes());
        b[STATE..STATE + 4].copy_from_slice(&s.state.to_ne_bytes());
        b[SO..SO + 8].copy_from_slice(&s.so.to_ne_bytes());
        b[PCB..PCB + 8].copy_from_slice(&s.pcb.to_ne_bytes());
        b[TP..TP + 8].copy_from_slice(&s.tp.to_ne_bytes());
        b
    }

    fn decode(s: &Sock) -> DecodedListener {
        decode_tcp_listener(&bytes(s)).unwrap().unwrap()
    }

    #[test]
    fn sizes_and_offsets_match_the_header() {
        assert_eq!(size_of::<InSockInfo>(), 80);
        assert_eq!(size_of::<TcpSockInfo>(), 120);
        assert_eq!(size_of::<SocketFdInfo>(), 792);
        assert_eq!(SOCKET_FDINFO_SIZE, 792);
        assert_eq!(
            [
                OFF_SOI_SO,
                OFF_SOI_PCB,
                OFF_SOI_KIND,
                OFF_FPORT,
                OFF_LPORT,
                OFF_VFLAG,
                OFF_FADDR,
                OFF_LADDR,
                OFF_STATE,
                OFF_TP
            ],
            [SO, PCB, KIND, FPORT, LPORT, VFLAG, FADDR, LADDR, STATE, TP]
        );
        assert_eq!(PSI + offset_of!(SocketInfo, soi_family), 184);
    }

    #[test]
    fn v4_loopback_listener() {
        let d = decode(&tcp(INI_IPV4, v4([127, 0, 0, 1]), 19421, TSI_S_LISTEN));
        assert_eq!(d.address, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(d.port, 19421);
        assert_eq!(d.v6only, None);
        assert!(d.listening);
        assert_eq!(d.socket_id, 0xffff_ff80_1234_5678);
    }

    #[test]
    fn v6_wildcard_dual_stack_and_v6only() {
        let dual = decode(&tcp(INI_IPV4 | INI_IPV6, [0; 16], 8080, TSI_S_LISTEN));
        assert_eq!(dual.address, "::".parse::<IpAddr>().unwrap());
        assert_eq!(dual.v6only, Some(false));
        assert_eq!(dual.port, 8080);
        let only = decode(&tcp(INI_IPV6, [0; 16], 8080, TSI_S_LISTEN));
        assert_eq!(only.v6only, Some(true));
        let mut one = [0u8; 16];
        one[15] = 1;
        let lo = decode(&tcp(INI_IPV6, one, 443, TSI_S_LISTEN));
        assert_eq!(lo.address, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(AddressScope::of(lo.address), AddressScope::Loopback);
    }

    #[test]
    fn v4_mapped_bind_reads_the_ipv4_view() {
        let mut mapped = v4([127, 0, 0, 1]);
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        let d = decode(&tcp(INI_IPV4, mapped, 1, TSI_S_LISTEN));
        assert_eq!(d.address, IpAddr::from([127, 0, 0, 1]));
    }

    #[test]
    fn non_listening_and_non_tcp() {
        let est = decode(&tcp(INI_IPV4, v4([10, 0, 0, 2]), 55000, 4));
        assert!(!est.listening);
        let mut udp = tcp(INI_IPV4, v4([0; 4]), 53, 0);
        udp.kind = 1; // SOCKINFO_IN
        assert_eq!(decode_tcp_listener(&bytes(&udp)), Ok(None));
    }

    #[test]
    fn short_buffer_and_bad_vflag_are_errors() {
        let full = bytes(&tcp(INI_IPV4, v4([127, 0, 0, 1]), 80, TSI_S_LISTEN));
        assert_eq!(
            decode_tcp_listener(&full[..791]),
            Err(AbiError::Short {
                got: 791,
                need: 792
            })
        );
        assert!(matches!(
            decode_tcp_listener(&[]),
            Err(AbiError::Short { .. })
        ));
        let none = bytes(&tcp(0, [0; 16], 80, TSI_S_LISTEN));
        assert_eq!(
            decode_tcp_listener(&none),
            Err(AbiError::UnknownFamily { vflag: 0 })
        );
        // A longer buffer (a future kernel appending fields) still decodes.
        let mut longer = full.clone();
        longer.extend_from_slice(&[0xAA; 64]);
        assert_eq!(decode_tcp_listener(&longer).unwrap().unwrap().port, 80);
    }

    #[test]
    fn socket_id_falls_back_to_pcb_then_tp() {
        let mut s = tcp(INI_IPV4, v4([127, 0, 0, 1]), 80, TSI_S_LISTEN);
        s.so = 0;
        assert_eq!(decode(&s).socket_id, 0x42);
        s.pcb = 0;
        assert_eq!(decode(&s).socket_id, 0x43);
    }

    #[test]
    fn shared_socket_lists_every_pid_once() {
        let shared = decode(&tcp(INI_IPV4, v4([127, 0, 0, 1]), 19421, TSI_S_LISTEN));
        let mut other = tcp(INI_IPV4 | INI_IPV6, [0; 16], 8080, TSI_S_LISTEN);
        other.so = 7;
        let other = decode(&other);
        let mut closed = tcp(INI_IPV4, v4([127, 0, 0, 1]), 9, 4);
        closed.so = 9;
        let closed = decode(&closed);
        let got = group_listeners([
            (700, shared.clone()),
            (300, shared.clone()),
            (700, shared.clone()),
            (55, other),
            (56, closed),
        ]);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].port, 8080);
        assert_eq!(got[0].scope, AddressScope::Wildcard);
        assert_eq!(got[0].v6only, Some(false));
        assert_eq!(got[1].port, 19421);
        assert_eq!(got[1].pids, vec![300, 700]);
        assert_eq!(got[1].scope, AddressScope::Loopback);
        assert_eq!(got[1].v6only, None);
        let mut one = [0u8; 16];
        one[15] = 1;
        let v6_loopback = decode(&tcp(INI_IPV6, one, 443, TSI_S_LISTEN));
        assert_eq!(v6_loopback.v6only, Some(true));
        assert_eq!(group_listeners([(1, v6_loopback)])[0].v6only, None);
    }

    /// A connection's server side: local `laddr:port`, peer
    /// `faddr:fport`.
    fn conn(vflag: u8, laddr: [u8; 16], port: u16, faddr: [u8; 16], fport: u16) -> Sock {
        let mut s = tcp(vflag, laddr, port, TSI_S_ESTABLISHED);
        s.faddr = faddr;
        s.fport = fport;
        s
    }

    fn decode_conn(s: &Sock) -> DecodedConnection {
        decode_tcp_connection(&bytes(s)).unwrap().unwrap()
    }

    fn v6(text: &str) -> [u8; 16] {
        text.parse::<Ipv6Addr>().unwrap().octets()
    }

    #[test]
    fn v4_and_v6_connections() {
        let c = decode_conn(&conn(
            INI_IPV4,
            v4([127, 0, 0, 1]),
            19421,
            v4([127, 0, 0, 1]),
            55000,
        ));
        assert_eq!(
            c,
            DecodedConnection {
                local: "127.0.0.1:19421".parse().unwrap(),
                remote: "127.0.0.1:55000".parse().unwrap(),
                state: TSI_S_ESTABLISHED,
                socket_id: 0xffff_ff80_1234_5678,
            }
        );
        let c = decode_conn(&conn(INI_IPV6, v6("::1"), 8080, v6("::1"), 61000));
        assert_eq!(c.local, "[::1]:8080".parse().unwrap());
        assert_eq!(c.remote, "[::1]:61000".parse().unwrap());
        let listening = decode_tcp_connection(&bytes(&tcp(INI_IPV4, v4([0; 4]), 80, TSI_S_LISTEN)));
        assert_eq!(listening.unwrap().unwrap().state, TSI_S_LISTEN);
    }

    #[test]
    fn ipv4_peer_of_a_dual_stack_listener_is_ipv4() {
        // As XNU leaves it: re-flagged INI_IPV4, addresses in the last four
        // bytes (whatever the first twelve hold).
        let mut mapped = v4([127, 0, 0, 1]);
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        let c = decode_conn(&conn(INI_IPV4, mapped, 8080, v4([127, 0, 0, 1]), 50123));
        assert_eq!(c.local, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.remote, "127.0.0.1:50123".parse().unwrap());
        // Under INI_IPV6 a v4-mapped address is still reported as IPv4.
        let c = decode_conn(&conn(
            INI_IPV6,
            v6("::ffff:127.0.0.1"),
            8080,
            v6("::ffff:10.0.0.7"),
            50124,
        ));
        assert_eq!(c.local, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.remote, "10.0.0.7:50124".parse().unwrap());
    }

    #[test]
    fn link_local_embedded_scope_becomes_the_scope_id() {
        let c = decode_conn(&conn(INI_IPV6, v6("fe80:4::1"), 8080, v6("fe80::2"), 50000));
        assert_eq!(
            c.local,
            SocketAddr::V6(SocketAddrV6::new(v6("fe80::1").into(), 8080, 0, 4))
        );
        assert_eq!(
            c.remote,
            SocketAddr::V6(SocketAddrV6::new(v6("fe80::2").into(), 50000, 0, 0))
        );
        // Only link-local addresses carry an embedded scope.
        let c = decode_conn(&conn(INI_IPV6, v6("2001:4::1"), 1, v6("::1"), 2));
        assert_eq!(c.local, "[2001:4::1]:1".parse().unwrap());
    }

    #[test]
    fn connection_errors_match_the_listener_decoder() {
        let full = bytes(&conn(
            INI_IPV4,
            v4([127, 0, 0, 1]),
            80,
            v4([127, 0, 0, 1]),
            9,
        ));
        assert_eq!(
            decode_tcp_connection(&full[..791]),
            Err(AbiError::Short {
                got: 791,
                need: 792
            })
        );
        let mut udp = conn(INI_IPV4, v4([0; 4]), 53, v4([0; 4]), 0);
        udp.kind = 1; // SOCKINFO_IN
        assert_eq!(decode_tcp_connection(&bytes(&udp)), Ok(None));
        let none = bytes(&conn(0, [0; 16], 80, [0; 16], 9));
        assert_eq!(
            decode_tcp_connection(&none),
            Err(AbiError::UnknownFamily { vflag: 0 })
        );
    }

    #[test]
    fn established_to_keeps_server_sides_of_chosen_ports_once() {
        let lo = v4([127, 0, 0, 1]);
        let with_id = |mut s: Sock, id: u64| {
            s.so = id;
            decode_conn(&s)
        };
        let browser = with_id(conn(INI_IPV4, lo, 19421, lo, 50001), 1);
        let second = with_id(conn(INI_IPV6, v6("::1"), 19421, v6("::1"), 50002), 2);
        // The client's own end of the first connection: local port 50001.
        let client_end = with_id(conn(INI_IPV4, lo, 50001, lo, 19421), 3);
        let other_port = with_id(conn(INI_IPV4, lo, 8080, lo, 50003), 4);
        let mut closing = conn(INI_IPV4, lo, 19421, lo, 50004);
        closing.state = 5; // TSI_S_CLOSE_WAIT: the peer has closed
        let closing = with_id(closing, 5);
        let listener = with_id(tcp(INI_IPV4, lo, 19421, TSI_S_LISTEN), 6);
        let seen = [
            second, browser, client_end, other_port, closing, listener,
            // The same socket through a second descriptor or process.
            browser,
        ];
        let ports: BTreeSet<u16> = [19421, 9999].into();
        let got = established_to_ports(seen, &ports);
        let e = |c: DecodedConnection| Established {
            local: c.local,
            remote: c.remote,
            socket_id: c.socket_id,
        };
        assert_eq!(got, vec![e(browser), e(second)]);
        let both: BTreeSet<u16> = [19421, 8080].into();
        assert_eq!(established_to_ports(seen, &both).len(), 3);
        assert!(established_to_ports(seen, &BTreeSet::new()).is_empty());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..1600)) {
            let _ = decode_tcp_listener(&buf);
        }

        #[test]
        fn arbitrary_tcp_sockets_never_panic(
            mut buf in proptest::collection::vec(any::<u8>(), 792..900),
        ) {
            buf[KIND..KIND + 4].copy_from_slice(&SOCKINFO_TCP.to_ne_bytes());
            if let Ok(Some(d)) = decode_tcp_listener(&buf) {
                prop_assert_eq!(d.v6only.is_some(), d.address.is_ipv6());
            }
        }

        #[test]
        fn port_round_trips(port in any::<u16>()) {
            let d = decode(&tcp(INI_IPV4, v4([127, 0, 0, 1]), port, TSI_S_LISTEN));
            prop_assert_eq!(d.port, port);
        }

        #[test]
        fn arbitrary_bytes_never_panic_as_connections(
            buf in proptest::collection::vec(any::<u8>(), 0..1600),
        ) {
            let _ = decode_tcp_connection(&buf);
        }

        #[test]
        fn connection_ports_round_trip(port in any::<u16>(), fport in any::<u16>()) {
            let lo = v4([127, 0, 0, 1]);
            let c = decode_conn(&conn(INI_IPV4, lo, port, lo, fport));
            prop_assert_eq!((c.local.port(), c.remote.port()), (port, fport));
        }
    }
}
