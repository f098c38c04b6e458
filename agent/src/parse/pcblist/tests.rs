//! Fixtures built field by field from the xnu declarations (in
//! declaration order, aligned as `#pragma pack(4)` aligns them), so the
//! decoder's fixed offsets are checked against an independent layout.

use super::*;
use proptest::prelude::*;

/// Appends C fields in declaration order with pack(4) alignment: a field
/// is aligned to the smaller of its size and 4.
#[derive(Default)]
struct Packed(Vec<u8>);

impl Packed {
    fn align(&mut self, size: usize) -> &mut Self {
        let a = size.min(4);
        while !self.0.len().is_multiple_of(a) {
            self.0.push(0);
        }
        self
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.align(2).0.extend_from_slice(&v.to_ne_bytes());
        self
    }
    fn u16_be(&mut self, v: u16) -> &mut Self {
        self.align(2).0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.align(4).0.extend_from_slice(&v.to_ne_bytes());
        self
    }
    fn i32(&mut self, v: i32) -> &mut Self {
        self.u32(v as u32)
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.align(8).0.extend_from_slice(&v.to_ne_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8], align: usize) -> &mut Self {
        self.align(align).0.extend_from_slice(b);
        self
    }
    /// The struct's size: padded to its alignment (4 under pack(4)).
    fn done(&mut self) -> Vec<u8> {
        self.align(4);
        std::mem::take(&mut self.0)
    }
}

#[derive(Debug, Clone)]
struct Spec {
    so: u64,
    addr: IpAddr,
    port: u16,
    state: i32,
    uid: u32,
    last_pid: i32,
    e_pid: i32,
    gencnt: u64,
    protocol: i32,
}

fn spec(so: u64, port: u16, state: i32) -> Spec {
    Spec {
        so,
        addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port,
        state,
        uid: 501,
        last_pid: 4242,
        e_pid: 4242,
        gencnt: 7,
        protocol: 6,
    }
}

/// struct xinpgen.
fn xinpgen(count: u32, gen_: u64) -> Vec<u8> {
    Packed::default()
        .u32(XINPGEN_LEN as u32)
        .u32(count)
        .u64(gen_)
        .u64(99)
        .done()
}

/// struct xinpcb_n.
fn xinpcb_n(s: &Spec) -> Vec<u8> {
    let (vflag, local) = match s.addr {
        IpAddr::V4(v4) => {
            let mut a = [0u8; 16];
            a[12..].copy_from_slice(&v4.octets());
            (INP_IPV4, a)
        }
        IpAddr::V6(v6) => (INP_IPV6, v6.octets()),
    };
    let mut p = Packed::default();
    p.u32(XINPCB_N_LEN as u32)
        .u32(XSO_INPCB)
        .u64(0xfeed) // xi_inpp
        .u16_be(80) // inp_fport
        .u16_be(s.port) // inp_lport
        .u64(0xbeef) // inp_ppcb
        .u64(s.gencnt) // inp_gencnt
        .i32(0) // inp_flags
        .u32(0) // inp_flow
        .u8(vflag)
        .u8(64) // inp_ip_ttl
        .u8(6) // inp_ip_p
        .bytes(&[0xaa; 16], 4) // inp_dependfaddr
        .bytes(&local, 4) // inp_dependladdr
        .u8(0) // inp_depend4.inp4_ip_tos
        .align(4) // inp_depend6: a struct with an int, aligned 4
        .u8(0) // inp6_hlim
        .i32(0) // inp6_cksum
        .u16(0) // inp6_ifindex
        .u16(0) // inp6_hops
        .u32(0) // inp_flowhash
        .u32(0); // inp_flags2
    p.done()
}

/// struct xsocket_n.
fn xsocket_n(s: &Spec) -> Vec<u8> {
    let mut p = Packed::default();
    p.u32(XSOCKET_N_LEN as u32)
        .u32(XSO_SOCKET)
        .u64(s.so) // xso_so
        .u16(1) // so_type
        .u32(0x2) // so_options
        .u16(0) // so_linger
        .u16(0x80) // so_state
        .u64(0x1234) // so_pcb
        .i32(s.protocol) // xso_protocol
        .i32(2) // xso_family
        .u16(0) // so_qlen
        .u16(0) // so_incqlen
        .u16(128) // so_qlimit
        .u16(0) // so_timeo
        .u16(0) // so_error
        .i32(0) // so_pgid
        .u32(0) // so_oobmark
        .u32(s.uid) // so_uid
        .i32(s.last_pid) // so_last_pid
        .i32(s.e_pid) // so_e_pid
        .u64(5) // so_gencnt
        .u32(0) // so_flags
        .u32(0) // so_flags1
        .i32(1) // so_usecount
        .i32(0) // so_retaincnt
        .u32(0); // xso_filter_flags
    p.done()
}

/// struct xsockbuf_n.
fn xsockbuf_n(kind: u32) -> Vec<u8> {
    let mut p = Packed::default();
    p.u32(XSOCKBUF_N_LEN as u32).u32(kind);
    for _ in 0..5 {
        p.u32(0); // sb_cc, sb_hiwat, sb_mbcnt, sb_mbmax, sb_lowat
    }
    p.u16(0).u16(0); // sb_flags, sb_timeo
    p.done()
}

/// struct xsockstat_n.
fn xsockstat_n() -> Vec<u8> {
    let mut p = Packed::default();
    p.u32(XSOCKSTAT_N_LEN as u32).u32(XSO_STATS);
    for _ in 0..4 * 4 {
        p.u64(0); // xst_tc_stats[SO_TC_STATS_MAX] of four u64
    }
    p.done()
}

/// struct xtcpcb_n.
fn xtcpcb_n(state: i32) -> Vec<u8> {
    let mut p = Packed::default();
    p.u32(XTCPCB_N_LEN as u32).u32(XSO_TCPCB).u64(0).i32(0); // t_segq, t_dupacks
    for _ in 0..4 {
        p.i32(0); // t_timer[TCPT_NTIMERS_EXT]
    }
    p.i32(state).u32(0).i32(0); // t_state, t_flags, t_force
    // snd_una … t_softerror: 29 32-bit fields.
    for _ in 0..29 {
        p.u32(0);
    }
    p.u8(0).u8(0).u8(0).u8(0).u8(0).u8(0); // t_oobflags … requested_s_scale
    // ts_recent … snd_ssthresh_prev: 8 32-bit fields.
    for _ in 0..8 {
        p.u32(0);
    }
    p.done()
}

/// One PCB's records, each padded to 8 bytes as `ADVANCE64` steps.
fn group(s: &Spec) -> Vec<u8> {
    let mut out = Vec::new();
    for mut rec in [
        xinpcb_n(s),
        xsocket_n(s),
        xsockbuf_n(XSO_RCVBUF),
        xsockbuf_n(XSO_SNDBUF),
        xsockstat_n(),
        xtcpcb_n(s.state),
    ] {
        rec.resize(rec.len().next_multiple_of(8), 0);
        out.extend(rec);
    }
    out
}

fn list(specs: &[Spec], gen_: u64) -> Vec<u8> {
    let mut out = xinpgen(specs.len() as u32, gen_);
    for s in specs {
        out.extend(group(s));
    }
    out.extend(xinpgen(specs.len() as u32, gen_));
    out
}

#[test]
fn struct_sizes_match_the_headers() {
    let s = spec(1, 80, TCPS_LISTEN);
    assert_eq!(xinpgen(0, 0).len(), XINPGEN_LEN);
    assert_eq!(xinpcb_n(&s).len(), XINPCB_N_LEN);
    assert_eq!(xsocket_n(&s).len(), XSOCKET_N_LEN);
    assert_eq!(xsockbuf_n(XSO_RCVBUF).len(), XSOCKBUF_N_LEN);
    assert_eq!(xsockstat_n().len(), XSOCKSTAT_N_LEN);
    assert_eq!(xtcpcb_n(1).len(), XTCPCB_N_LEN);
    // The kernel's item_size for TCP: ROUNDUP64 of each.
    assert_eq!(group(&s).len(), 104 + 104 + 32 + 32 + 136 + 208);
}

#[test]
fn listeners_and_connections_of_both_families() {
    let v6 = Spec {
        addr: "::1".parse().unwrap(),
        ..spec(0x22, 8443, TCPS_LISTEN)
    };
    let established = Spec {
        last_pid: 77,
        ..spec(0x33, 51000, 4)
    };
    let specs = [spec(0x11, 19421, TCPS_LISTEN), v6.clone(), established];
    let decoded = decode(&list(&specs, 10)).unwrap();
    assert_eq!(decoded.generation, 10);
    assert_eq!(decoded.pcbs.len(), 3);
    let first = &decoded.pcbs[0];
    assert_eq!(first.socket_id, 0x11);
    assert_eq!(first.local_port, 19421);
    assert_eq!(first.local_address, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!((first.uid, first.last_pid, first.e_pid), (501, 4242, 4242));
    assert!(first.listening());
    assert_eq!(decoded.pcbs[1].local_address, v6.addr);
    assert_eq!(decoded.pcbs[1].vflag, INP_IPV6);
    assert!(!decoded.pcbs[2].listening());
    assert_eq!(decoded.pcbs[2].last_pid, 77);
    assert_eq!(decoded.listening_ids(), BTreeSet::from([0x11, 0x22]));
}

#[test]
fn an_empty_list_and_pcbs_born_during_the_copy() {
    assert_eq!(decode(&list(&[], 3)).unwrap().pcbs, vec![]);
    // Only the header (the kernel answers so when there is nothing).
    assert!(decode(&xinpgen(0, 3)).unwrap().pcbs.is_empty());
    let late = Spec {
        gencnt: 11,
        ..spec(0x44, 80, TCPS_LISTEN)
    };
    let decoded = decode(&list(&[late, spec(0x55, 81, TCPS_LISTEN)], 10)).unwrap();
    assert_eq!(decoded.listening_ids(), BTreeSet::from([0x55]));
}

#[test]
fn unknown_kinds_are_skipped_and_other_protocols_ignored() {
    let mut buf = xinpgen(2, 10);
    // A record of a kind a later macOS might add, before the PCB's own.
    let mut unknown = Packed::default();
    unknown.u32(40).u32(0x400);
    for _ in 0..8 {
        unknown.u32(0);
    }
    buf.extend(unknown.done());
    buf.extend(group(&spec(0x11, 80, TCPS_LISTEN)));
    buf.extend(group(&Spec {
        protocol: 17,
        ..spec(0x66, 53, TCPS_LISTEN)
    }));
    buf.extend(xinpgen(2, 10));
    let decoded = decode(&buf).unwrap();
    assert_eq!(decoded.listening_ids(), BTreeSet::from([0x11]));
}

#[test]
fn an_incomplete_last_group_is_dropped() {
    let mut buf = list(&[spec(0x11, 80, TCPS_LISTEN)], 10);
    buf.truncate(buf.len() - XINPGEN_LEN);
    let s = spec(0x77, 81, TCPS_LISTEN);
    buf.extend(xinpcb_n(&s));
    buf.extend(xsocket_n(&s));
    let decoded = decode(&buf).unwrap();
    assert_eq!(decoded.listening_ids(), BTreeSet::from([0x11]));
}

#[test]
fn bad_input_is_a_clear_error() {
    assert_eq!(decode(&[0; 10]), Err(PcbListError::NoHeader(10)));
    let mut bad = xinpgen(0, 0);
    bad[0] = 23;
    assert_eq!(decode(&bad), Err(PcbListError::BadHeader(23)));

    // A record that claims less than its kind's fields.
    let mut buf = list(&[spec(0x11, 80, TCPS_LISTEN)], 10);
    buf[XINPGEN_LEN..XINPGEN_LEN + 4].copy_from_slice(&40u32.to_ne_bytes());
    let err = decode(&buf).unwrap_err();
    assert!(
        matches!(
            err,
            PcbListError::TooShort {
                at: 24,
                kind: XSO_INPCB,
                len: 40,
                need: 104
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("kind 0x10"), "{err}");

    // A record that claims more than is there.
    let mut buf = list(&[spec(0x11, 80, TCPS_LISTEN)], 10);
    buf.truncate(XINPGEN_LEN + 50);
    assert!(matches!(
        decode(&buf),
        Err(PcbListError::Truncated {
            at: 24,
            need: 104,
            have: 50
        })
    ));
    // A dangling half header.
    let mut buf = xinpgen(0, 0);
    buf.extend([200, 0, 0]);
    assert!(matches!(decode(&buf), Err(PcbListError::Truncated { .. })));
}

fn arb_spec() -> impl Strategy<Value = Spec> {
    (
        any::<u64>(),
        any::<bool>(),
        any::<[u8; 16]>(),
        any::<u16>(),
        0i32..11,
        any::<(u32, i32, i32)>(),
        0u64..20,
    )
        .prop_map(
            |(so, v6, addr, port, state, (uid, last_pid, e_pid), gencnt)| Spec {
                so,
                addr: if v6 {
                    IpAddr::V6(Ipv6Addr::from(addr))
                } else {
                    IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
                },
                port,
                state,
                uid,
                last_pid,
                e_pid,
                gencnt,
                protocol: 6,
            },
        )
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn decode_never_panics_on_damaged_lists(
        specs in proptest::collection::vec(arb_spec(), 0..6),
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
    ) {
        let mut buf = list(&specs, 10);
        for (i, b) in flips {
            let at = i.index(buf.len());
            buf[at] = b;
        }
        buf.truncate(cut.index(buf.len() + 1));
        let _ = decode(&buf);
    }

    #[test]
    fn built_lists_decode_to_what_was_built(
        specs in proptest::collection::vec(arb_spec(), 0..12),
        gen_ in 0u64..20,
    ) {
        let decoded = decode(&list(&specs, gen_)).unwrap();
        prop_assert_eq!(decoded.generation, gen_);
        prop_assert_eq!(decoded.pcbs.len(), specs.len());
        for (p, s) in decoded.pcbs.iter().zip(&specs) {
            prop_assert_eq!(p.socket_id, s.so);
            prop_assert_eq!(p.local_address, s.addr);
            prop_assert_eq!(p.local_port, s.port);
            prop_assert_eq!(p.state, s.state);
            prop_assert_eq!((p.uid, p.last_pid, p.e_pid, p.gencnt), (s.uid, s.last_pid, s.e_pid, s.gencnt));
        }
        let expected: BTreeSet<u64> = specs
            .iter()
            .filter(|s| s.state == TCPS_LISTEN && s.gencnt <= gen_)
            .map(|s| s.so)
            .collect();
        prop_assert_eq!(decoded.listening_ids(), expected);
    }
}
