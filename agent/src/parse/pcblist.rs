//! The bytes of `sysctl net.inet.tcp.pcblist_n`: the kernel's list of TCP
//! control blocks, which `netstat` reads. The macOS daemon reads it every
//! sweep as its change detector (one syscall, no per-process walk) and
//! walks every process's descriptors with libproc only when the set of
//! listening sockets changed (`platform/macos.rs`).
//!
//! The format, from xnu (`bsd/netinet/in_pcblist.c`, `get_pcblist_n`;
//! structs in `bsd/netinet/in_pcb.h`, `bsd/sys/socketvar.h`,
//! `bsd/netinet/tcp_var.h`, all under `#pragma pack(4)`), and walked as
//! `netstat` walks it (network_cmds, `netstat.tproj/inet.c`, `protopr`):
//!
//! ```text
//! xinpgen (24 bytes: len, count, gen, sogen)
//! per PCB, each record starting {u32 len, u32 kind} and padded to 8
//! bytes (ROUNDUP64):
//!   xinpcb_n    (XSO_INPCB  0x10, 104 bytes)
//!   xsocket_n   (XSO_SOCKET 0x01, 104 bytes)
//!   xsockbuf_n  (XSO_RCVBUF 0x02, 32 bytes)
//!   xsockbuf_n  (XSO_SNDBUF 0x04, 32 bytes)
//!   xsockstat_n (XSO_STATS  0x08, 136 bytes)
//!   xtcpcb_n    (XSO_TCPCB  0x20, 204 bytes)
//! xinpgen (the closing one: a record no longer than an xinpgen ends it)
//! ```
//!
//! Only the fields the daemon needs are read, at offsets computed from
//! those declarations (pack(4): 64-bit fields on 4-byte boundaries). Like
//! netstat, records are grouped by kind until a PCB's set is complete, so
//! an unknown kind a later macOS adds is skipped, not an error; lengths
//! are checked against the fields read, so a short or lying record is an
//! error, never a read past the buffer.
//!
//! `xso_so` is `VM_KERNEL_ADDRHASH(so)`, the same handle libproc reports
//! as `soi_so` (`bsd/kern/socket_info.c`), so a socket here is the socket
//! `parse::libproc_abi` decodes from a descriptor.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Record kinds (`XSO_*`, `bsd/sys/socketvar.h`).
pub const XSO_SOCKET: u32 = 0x001;
pub const XSO_RCVBUF: u32 = 0x002;
pub const XSO_SNDBUF: u32 = 0x004;
pub const XSO_STATS: u32 = 0x008;
pub const XSO_INPCB: u32 = 0x010;
pub const XSO_TCPCB: u32 = 0x020;
/// Every kind one TCP PCB brings (`ALL_XGN_KIND_TCP` in netstat).
pub const ALL_KINDS_TCP: u32 =
    XSO_SOCKET | XSO_RCVBUF | XSO_SNDBUF | XSO_STATS | XSO_INPCB | XSO_TCPCB;

/// `sizeof(struct xinpgen)`.
pub const XINPGEN_LEN: usize = 24;
/// `sizeof` of each record under pack(4).
pub const XINPCB_N_LEN: usize = 104;
pub const XSOCKET_N_LEN: usize = 104;
pub const XSOCKBUF_N_LEN: usize = 32;
pub const XSOCKSTAT_N_LEN: usize = 136;
pub const XTCPCB_N_LEN: usize = 204;

/// `TCPS_LISTEN` (`bsd/netinet/tcp_fsm.h`).
pub const TCPS_LISTEN: i32 = 1;
/// `INP_IPV4`, `INP_IPV6` (`inp_vflag`).
pub const INP_IPV4: u8 = 0x1;
pub const INP_IPV6: u8 = 0x2;
const IPPROTO_TCP: i32 = 6;

/// Field offsets, from the declarations under pack(4).
mod off {
    // xinpgen
    pub const XIG_GEN: usize = 8;
    // xinpcb_n
    pub const INP_LPORT: usize = 18;
    pub const INP_GENCNT: usize = 28;
    pub const INP_VFLAG: usize = 44;
    /// `inp_dependladdr`: an in6_addr, or an `in_addr_4in6` whose IPv4
    /// address is its last four bytes.
    pub const INP_LADDR: usize = 64;
    // xsocket_n
    pub const XSO_SO: usize = 8;
    pub const XSO_PROTOCOL: usize = 36;
    pub const SO_UID: usize = 64;
    pub const SO_LAST_PID: usize = 68;
    pub const SO_E_PID: usize = 72;
    // xtcpcb_n: t_segq (u64 at 8), t_dupacks (16), t_timer[4] (20..36)
    pub const T_STATE: usize = 36;
}

/// One TCP control block, as much of it as lenscap uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcb {
    /// `xso_so`: the socket's kernel handle (hashed), libproc's `soi_so`.
    pub socket_id: u64,
    pub local_address: IpAddr,
    pub local_port: u16,
    /// `inp_vflag`.
    pub vflag: u8,
    /// `t_state` (`TCPS_*`).
    pub state: i32,
    /// `so_uid`: the credential the socket was created with.
    pub uid: u32,
    /// `so_last_pid`: the last process that did a socket operation on it.
    pub last_pid: i32,
    /// `so_e_pid`: the effective (delegated) pid, when delegated.
    pub e_pid: i32,
    /// `inp_gencnt`: later than the list's generation means the PCB was
    /// created while the list was copied out.
    pub gencnt: u64,
}

impl Pcb {
    pub fn listening(&self) -> bool {
        self.state == TCPS_LISTEN
    }
}

/// What the kernel answered, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PcbList {
    /// `xig_gen` of the opening `xinpgen`.
    pub generation: u64,
    pub pcbs: Vec<Pcb>,
}

impl PcbList {
    /// The ids of the listening sockets, as the daemon compares them from
    /// sweep to sweep. PCBs created during the copy-out (generation later
    /// than the list's) are left out, as netstat leaves them out: they are
    /// in the next read.
    pub fn listening_ids(&self) -> BTreeSet<u64> {
        self.pcbs
            .iter()
            .filter(|p| p.listening() && p.gencnt <= self.generation)
            .map(|p| p.socket_id)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PcbListError {
    #[error("pcblist_n is {0} bytes, shorter than its xinpgen header")]
    NoHeader(usize),
    #[error("pcblist_n xinpgen says it is {0} bytes long, expected {XINPGEN_LEN}")]
    BadHeader(u32),
    #[error("pcblist_n record at byte {at} is cut short: {need} bytes needed, {have} left")]
    Truncated { at: usize, need: usize, have: usize },
    #[error(
        "pcblist_n record at byte {at} of kind {kind:#x} says it is {len} bytes, {need} needed"
    )]
    TooShort {
        at: usize,
        kind: u32,
        len: u32,
        need: usize,
    },
}

/// Decode a `net.inet.tcp.pcblist_n` buffer (exactly the bytes the sysctl
/// reported writing). An incomplete group at the end (the kernel skips a
/// PCB whose tcpcb went away mid-copy) is dropped, as netstat drops it.
pub fn decode(buf: &[u8]) -> Result<PcbList, PcbListError> {
    if buf.len() < XINPGEN_LEN {
        return Err(PcbListError::NoHeader(buf.len()));
    }
    let xig_len = u32_at(buf, 0);
    if xig_len as usize != XINPGEN_LEN {
        return Err(PcbListError::BadHeader(xig_len));
    }
    let mut list = PcbList {
        generation: u64_at(buf, off::XIG_GEN),
        pcbs: Vec::new(),
    };
    let mut at = roundup64(XINPGEN_LEN);
    let mut seen = 0u32;
    let (mut inp, mut so, mut tp) = (0usize, 0usize, 0usize);
    while at < buf.len() {
        let have = buf.len() - at;
        if have < 8 {
            return Err(PcbListError::Truncated { at, need: 8, have });
        }
        let len = u32_at(buf, at);
        let kind = u32_at(buf, at + 4);
        if len as usize <= XINPGEN_LEN {
            // The closing xinpgen (netstat's test): the list ends here.
            break;
        }
        let need = match kind {
            XSO_INPCB => XINPCB_N_LEN,
            XSO_SOCKET => XSOCKET_N_LEN,
            XSO_TCPCB => XTCPCB_N_LEN,
            XSO_RCVBUF | XSO_SNDBUF => XSOCKBUF_N_LEN,
            XSO_STATS => XSOCKSTAT_N_LEN,
            _ => 0,
        };
        if (len as usize) < need {
            return Err(PcbListError::TooShort {
                at,
                kind,
                len,
                need,
            });
        }
        if (len as usize) > have {
            return Err(PcbListError::Truncated {
                at,
                need: len as usize,
                have,
            });
        }
        if seen & kind == 0 {
            seen |= kind;
            match kind {
                XSO_INPCB => inp = at,
                XSO_SOCKET => so = at,
                XSO_TCPCB => tp = at,
                _ => {}
            }
        }
        at = at.saturating_add(roundup64(len as usize));
        if seen & ALL_KINDS_TCP != ALL_KINDS_TCP {
            continue;
        }
        seen = 0;
        if i32_at(buf, so + off::XSO_PROTOCOL) != IPPROTO_TCP {
            continue;
        }
        list.pcbs.push(pcb(buf, inp, so, tp));
    }
    Ok(list)
}

/// One PCB from its three records (lengths already checked).
fn pcb(buf: &[u8], inp: usize, so: usize, tp: usize) -> Pcb {
    let vflag = buf[inp + off::INP_VFLAG];
    let laddr: [u8; 16] = bytes_at(buf, inp + off::INP_LADDR);
    let local_address = if vflag & INP_IPV6 != 0 {
        IpAddr::V6(Ipv6Addr::from(laddr))
    } else {
        let v4: [u8; 4] = bytes_at(&laddr, 12);
        IpAddr::V4(Ipv4Addr::from(v4))
    };
    Pcb {
        socket_id: u64_at(buf, so + off::XSO_SO),
        local_address,
        // Network byte order, as in the kernel's inpcb.
        local_port: u16::from_be_bytes(bytes_at(buf, inp + off::INP_LPORT)),
        vflag,
        state: i32_at(buf, tp + off::T_STATE),
        uid: u32_at(buf, so + off::SO_UID),
        last_pid: i32_at(buf, so + off::SO_LAST_PID),
        e_pid: i32_at(buf, so + off::SO_E_PID),
        gencnt: u64_at(buf, inp + off::INP_GENCNT),
    }
}

/// `ROUNDUP64` as xnu defines it for the records: up to a multiple of 8.
fn roundup64(n: usize) -> usize {
    n.div_ceil(8).saturating_mul(8)
}

/// `N` bytes at `at`; callers checked the record's length covers them.
fn bytes_at<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = buf.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

// The sysctl answers in the running kernel's byte order.
fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(bytes_at(buf, at))
}
fn i32_at(buf: &[u8], at: usize) -> i32 {
    i32::from_ne_bytes(bytes_at(buf, at))
}
fn u64_at(buf: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(bytes_at(buf, at))
}

#[cfg(test)]
#[path = "pcblist/tests.rs"]
mod tests;
