//! Pure parsers of the Linux `/proc` text formats the platform reads:
//! `/proc/<pid>/stat`, `/proc/<pid>/status`, `/proc/<pid>/cmdline`,
//! `/proc/stat`, `/proc/net/tcp{,6}`, fd symlink targets and
//! `/etc/os-release`. No I/O here, so every format is fixture-tested and
//! fuzzed with proptest; nothing panics on input.
//!
//! The formats are documented in proc(5) and os-release(5); the fixtures
//! below are lines copied from a Linux 6.x machine.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The fields of `/proc/<pid>/stat` the agent uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub pid: u32,
    /// The command name (at most 15 bytes in the kernel, any bytes at all:
    /// spaces and `)` included), lossily decoded.
    pub comm: String,
    /// Run state letter (`R`, `S`, `Z` for a zombie, …).
    pub state: char,
    pub ppid: u32,
    /// Controlling terminal device number; 0 when there is none.
    pub tty_nr: i32,
    /// Start time in clock ticks since boot.
    pub starttime: u64,
}

/// Parse one `/proc/<pid>/stat` line. `comm` is framed by the first `(` and
/// the *last* `)`: a process may name itself `a) 1 2 (b`, so splitting on
/// whitespace, or stopping at the first `)`, misreads every later field.
pub fn parse_stat(line: &[u8]) -> Option<Stat> {
    let open = line.iter().position(|&b| b == b'(')?;
    let close = line.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let pid = std::str::from_utf8(&line[..open])
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let comm = String::from_utf8_lossy(&line[open + 1..close]).into_owned();
    let rest = std::str::from_utf8(&line[close + 1..]).ok()?;
    // After `comm`: state(3) ppid(4) pgrp(5) session(6) tty_nr(7) … starttime(22).
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let tty_nr = fields.nth(2)?.parse().ok()?;
    let starttime = fields.nth(14)?.parse().ok()?;
    Some(Stat {
        pid,
        comm,
        state,
        ppid,
        tty_nr,
        starttime,
    })
}

/// The real uid from `/proc/<pid>/status` (`Uid:\treal\teffective\tsaved\tfs`).
/// Real, not effective: the reach of an action is who could signal the
/// process, and kill(2) compares the sender with the target's real and
/// saved uids (macOS reads `pbi_ruid` for the same reason). So this file,
/// not the cheaper owner of `/proc/<pid>`, which is the effective uid.
/// Read as bytes: the file is ~1.4 KB and only one ASCII line matters, so
/// a UTF-8 pass over all of it (a lossy copy, since `Name:` may hold any
/// bytes) was most of a scan's cost of reading an owner's identity. The
/// kernel escapes `\n` in `Name:`, so no process can forge a `Uid:` line.
pub fn parse_status_uid(status: &[u8]) -> Option<u32> {
    let line = status
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"Uid:"))?;
    let real = line
        .split(|b| b.is_ascii_whitespace())
        .find(|f| !f.is_empty())?;
    std::str::from_utf8(real).ok()?.parse().ok()
}

/// Boot time in seconds since the Unix epoch, the `btime` line of `/proc/stat`.
pub fn parse_btime(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// Start time in µs since the epoch from boot time (s) and the stat
/// `starttime` (clock ticks since boot). Saturates rather than overflowing
/// on absurd input.
pub fn start_unix_us(btime_s: u64, starttime_ticks: u64, ticks_per_s: u64) -> u64 {
    let since_boot = u128::from(starttime_ticks) * 1_000_000 / u128::from(ticks_per_s.max(1));
    let boot = u128::from(btime_s) * 1_000_000;
    u64::try_from(boot + since_boot).unwrap_or(u64::MAX)
}

/// `/proc/<pid>/cmdline`: arguments separated (and usually terminated) by
/// NUL, decoded lossily. A process that rewrote its argv may leave one
/// long string; that is returned as one argument.
pub fn split_cmdline(raw: &[u8]) -> Vec<String> {
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// The inode of an fd symlink target `socket:[12345]`; `None` for anything
/// else (files, pipes, `anon_inode:…`).
pub fn parse_socket_link(target: &[u8]) -> Option<u64> {
    let digits = target.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The `/proc/<pid>/exe` target with the kernel's ` (deleted)` suffix
/// removed, and whether it was there (the binary was unlinked while
/// running, e.g. by an updater or our own quarantine).
pub fn strip_deleted(target: &str) -> (&str, bool) {
    match target.strip_suffix(" (deleted)") {
        Some(path) => (path, true),
        None => (target, false),
    }
}

/// One socket line of `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpEntry {
    pub address: IpAddr,
    pub port: u16,
    /// Kernel TCP state (`0A` = LISTEN).
    pub state: u8,
    pub inode: u64,
}

/// Kernel TCP state number of LISTEN, as `/proc/net/tcp` prints it (`0A`).
pub const TCP_LISTEN: u8 = 0x0A;

/// Parse one line of `/proc/net/tcp{,6}`; `None` for the header and for
/// malformed lines. Columns: `sl local rem st tx:rx tr:when retrnsmt uid
/// timeout inode …`.
pub fn parse_tcp_line(line: &str) -> Option<TcpEntry> {
    let mut cols = line.split_ascii_whitespace();
    let slot = cols.next()?;
    if !slot.ends_with(':') {
        return None; // the header line ("sl local_address …")
    }
    let (addr_hex, port_hex) = cols.next()?.split_once(':')?;
    let _remote = cols.next()?;
    let state = u8::from_str_radix(cols.next()?, 16).ok()?;
    let inode = cols.nth(5)?.parse().ok()?;
    Some(TcpEntry {
        address: parse_hex_addr(addr_hex)?,
        port: u16::from_str_radix(port_hex, 16).ok()?,
        state,
        inode,
    })
}

/// The kernel prints addresses as `%08X` of each 32-bit word *as it sits
/// in memory*: the network-order bytes read as a host-endian u32. So the
/// bytes come back with `to_ne_bytes` (on x86 and arm64, little-endian:
/// `0100007F` is 127.0.0.1). IPv6 is four such words.
fn parse_hex_addr(hex: &str) -> Option<IpAddr> {
    let word = |s: &str| -> Option<[u8; 4]> {
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(u32::from_str_radix(s, 16).ok()?.to_ne_bytes())
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(hex)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(hex.get(i * 8..i * 8 + 8)?)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

/// `PRETTY_NAME` from `/etc/os-release`, unquoted (os-release(5): shell
/// style, double or single quotes, `\` escapes inside double quotes).
pub fn parse_pretty_name(os_release: &str) -> Option<String> {
    let value = os_release
        .lines()
        .find_map(|l| l.trim().strip_prefix("PRETTY_NAME="))?
        .trim();
    let value = if let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                out.extend(chars.next());
            } else {
                out.push(c);
            }
        }
        out
    } else if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        inner.to_string()
    } else {
        value.to_string()
    };
    (!value.is_empty()).then_some(value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Real line from `cat /proc/self/stat` on Linux 6.18 (bash in a tty).
    const STAT_BASH: &[u8] = b"4242 (bash) S 4100 4242 4242 34816 4300 4194560 1203 8812 0 2 3 1 10 4 20 0 1 0 123456 9437184 1280 18446744073709551615 1 1 0 0 0 0 65536 3686404 1266761467 0 0 0 17 1 0 0 0 0 0\n";

    #[test]
    fn stat_of_plain_process() {
        let s = parse_stat(STAT_BASH).unwrap();
        assert_eq!(s.pid, 4242);
        assert_eq!(s.comm, "bash");
        assert_eq!(s.state, 'S');
        assert_eq!(s.ppid, 4100);
        assert_eq!(s.tty_nr, 34816);
        assert_eq!(s.starttime, 123456);
    }

    #[test]
    fn stat_comm_with_spaces_and_parens() {
        let line = b"77 (a) 1 2 (b) R 1 77 77 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 999 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.comm, "a) 1 2 (b");
        assert_eq!(s.state, 'R');
        assert_eq!(s.ppid, 1);
        assert_eq!(s.tty_nr, 0);
        assert_eq!(s.starttime, 999);
    }

    #[test]
    fn stat_rejects_truncated_and_garbage() {
        assert_eq!(parse_stat(b""), None);
        assert_eq!(parse_stat(b"12 (x) S 1 2 3"), None);
        assert_eq!(
            parse_stat(b"12 )x( S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19"),
            None
        );
        assert_eq!(
            parse_stat(b"zz (x) S 1 2 3 0 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19"),
            None
        );
    }

    #[test]
    fn status_uid_is_the_real_uid() {
        // Shape from /proc/<pid>/status of a setuid program: real ≠ effective.
        let status = "Name:\tpasswd\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t9\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(parse_status_uid(status.as_bytes()), Some(1000));
        assert_eq!(parse_status_uid(b"Name:\tx\n"), None);
        // A name with invalid UTF-8 does not hide the line after it.
        assert_eq!(
            parse_status_uid(b"Name:\t\xff\xfe\nUid:\t501\t501\t501\t501\n"),
            Some(501)
        );
        assert_eq!(parse_status_uid(b"Uid:\t\n"), None);
        assert_eq!(parse_status_uid(b"Uid:\t-1\t0\n"), None);
    }

    #[test]
    fn btime_and_start_time() {
        let stat = "cpu  1 2 3 4\nintr 5\nctxt 9\nbtime 1764300000\nprocesses 77\n";
        assert_eq!(parse_btime(stat), Some(1_764_300_000));
        assert_eq!(parse_btime("cpu 1\n"), None);
        assert_eq!(
            start_unix_us(1_764_300_000, 250, 100),
            1_764_300_002_500_000
        );
        assert_eq!(start_unix_us(u64::MAX, u64::MAX, 0), u64::MAX);
    }

    #[test]
    fn cmdline_splits_on_nul() {
        assert_eq!(
            split_cmdline(b"/usr/bin/python3\0-m\0http.server\0"),
            vec!["/usr/bin/python3", "-m", "http.server"]
        );
        assert_eq!(
            split_cmdline(b"nginx: worker process"),
            vec!["nginx: worker process"]
        );
        assert!(split_cmdline(b"").is_empty());
        assert_eq!(split_cmdline(b"a\0\0b\0"), vec!["a", "", "b"]);
        assert_eq!(split_cmdline(b"\xff\0"), vec!["\u{fffd}"]);
    }

    #[test]
    fn socket_links() {
        assert_eq!(parse_socket_link(b"socket:[123456]"), Some(123_456));
        assert_eq!(parse_socket_link(b"socket:[]"), None);
        assert_eq!(parse_socket_link(b"socket:[12a]"), None);
        assert_eq!(parse_socket_link(b"pipe:[123]"), None);
        assert_eq!(parse_socket_link(b"anon_inode:[eventpoll]"), None);
        assert_eq!(parse_socket_link(b"/dev/null"), None);
        assert_eq!(parse_socket_link(b"socket:[99999999999999999999]"), None);
    }

    #[test]
    fn deleted_suffix() {
        assert_eq!(strip_deleted("/tmp/x (deleted)"), ("/tmp/x", true));
        assert_eq!(strip_deleted("/usr/bin/sleep"), ("/usr/bin/sleep", false));
    }

    #[test]
    fn proc_net_tcp_v4_lines() {
        // From /proc/net/tcp on x86_64 (little-endian).
        let header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
        assert_eq!(parse_tcp_line(header), None);
        let line = "   0: 0100007F:18EB 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 23117 1 0000000000000000 100 0 0 10 0";
        let e = parse_tcp_line(line).unwrap();
        assert_eq!(e.address, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(e.port, 6379);
        assert_eq!(e.state, TCP_LISTEN);
        assert_eq!(e.inode, 23117);
        let line = "   3: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 19001 1 0000000000000000 100 0 0 10 0";
        let e = parse_tcp_line(line).unwrap();
        assert_eq!(e.address, "0.0.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(e.port, 2024);
    }

    #[test]
    fn proc_net_tcp6_lines() {
        // From /proc/net/tcp6 on x86_64: [::1]:8080 and [::]:22.
        let line = "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 55501 1 0000000000000000 100 0 0 10 0";
        let e = parse_tcp_line(line).unwrap();
        assert_eq!(e.address, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(e.port, 8080);
        assert_eq!(e.inode, 55501);
        // ::ffff:127.0.0.1, a v4-mapped connection end.
        let line = "   1: 0000000000000000FFFF00000100007F:9C40 0000000000000000FFFF00000100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 55502 1 0000000000000000 20 4 30 10 -1";
        let e = parse_tcp_line(line).unwrap();
        assert_eq!(e.address, "::ffff:127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(e.state, 1);
        assert_eq!(parse_tcp_line("   1: 0000:1F90 0:0 0A a b c d e 7"), None);
    }

    #[test]
    fn os_release_pretty_name() {
        let text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n";
        assert_eq!(
            parse_pretty_name(text).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(
            parse_pretty_name("PRETTY_NAME='Arch Linux'\n").as_deref(),
            Some("Arch Linux")
        );
        assert_eq!(
            parse_pretty_name("PRETTY_NAME=Alpine\n").as_deref(),
            Some("Alpine")
        );
        assert_eq!(
            parse_pretty_name("PRETTY_NAME=\"say \\\"hi\\\"\"\n").as_deref(),
            Some("say \"hi\"")
        );
        assert_eq!(parse_pretty_name("PRETTY_NAME=\"\"\n"), None);
        assert_eq!(parse_pretty_name("ID=x\n"), None);
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_stat(&bytes);
            let _ = parse_socket_link(&bytes);
            let _ = split_cmdline(&bytes);
            let _ = parse_tcp_line(&text);
            let _ = parse_status_uid(&bytes);
            let _ = parse_btime(&text);
            let _ = parse_pretty_name(&text);
        }

        #[test]
        fn stat_roundtrips_any_comm(comm in "[ -~]{0,15}", ppid in any::<u32>(), tty in any::<i32>(), start in any::<u64>()) {
            let line = format!("5 ({comm}) S {ppid} 5 5 {tty} -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0 0");
            let s = parse_stat(line.as_bytes()).unwrap();
            prop_assert_eq!(s.comm, comm);
            prop_assert_eq!(s.ppid, ppid);
            prop_assert_eq!(s.tty_nr, tty);
            prop_assert_eq!(s.starttime, start);
        }

        #[test]
        fn socket_link_roundtrips(inode in any::<u64>()) {
            prop_assert_eq!(parse_socket_link(format!("socket:[{inode}]").as_bytes()), Some(inode));
        }

        #[test]
        fn tcp_line_roundtrips(v4 in any::<[u8; 4]>(), v6 in any::<[u8; 16]>(), port in any::<u16>(), inode in any::<u64>()) {
            // Render the way the kernel does: each 4 bytes as a host-endian u32 in %08X.
            let hex = |b: &[u8]| b.chunks(4).map(|c| format!("{:08X}", u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))).collect::<String>();
            for (bytes, addr) in [(&v4[..], IpAddr::from(v4)), (&v6[..], IpAddr::from(v6))] {
                let line = format!("  12: {}:{port:04X} 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 {inode} 1 0 100 0 0 10 0", hex(bytes));
                let e = parse_tcp_line(&line).unwrap();
                prop_assert_eq!(e, TcpEntry { address: addr, port, state: TCP_LISTEN, inode });
            }
        }
    }
}
