//! What a probe sends: the requests a web page open in Chrome on a Mac
//! makes to a helper on this machine, so that a helper cannot tell the
//! probe from the pages it serves and answer it differently.
//!
//! A helper that wants to stay hidden looks for give-aways: a product name
//! in `User-Agent`, an `Origin` that never changes, a fixed WebSocket key,
//! headers no browser sends (`Connection: close` on a `fetch()`). So every
//! probe
//!
//! - claims a current desktop Chrome on macOS ([`USER_AGENT`], with the
//!   low-entropy client hints Chrome sends to a local address);
//! - comes from a foreign origin of its own ([`Disguise::origin`]): an
//!   `https` site with a random, pronounceable name under a common TLD, the
//!   same for the three requests of one probe (one page asks) and new for
//!   the next probe, so a helper can neither learn it nor tell a reflected
//!   origin from a configured one (the classifier compares with the origin
//!   actually sent);
//! - sends the headers Chrome sends on a cross-site `fetch()` and its
//!   preflight (`Sec-Fetch-*`, `Referer` with the origin only,
//!   `Accept-Language`, `Accept-Encoding`) or on a WebSocket handshake (a
//!   fresh random key);
//!
//! and nothing in it names lenscap. What stays safe (docs/design.md §2): only
//! `OPTIONS` and `GET /`, no cookies or credentials, redirects never
//! followed — a browser would send cookies a page has none of here.
//!
//! [`USER_AGENT`] must move with Chrome: a version far behind the current
//! one is itself a give-away. Chrome ships a milestone every two weeks
//! since September 2026 (153 on 8 September), so bump it each release.

use std::fmt::Write as _;
use std::net::SocketAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Chrome's milestone in [`USER_AGENT`] and the client hints.
const CHROME_MAJOR: u32 = 158;

/// Desktop Chrome on macOS, in the reduced form Chrome has sent since
/// version 110 (the macOS version frozen at 10_15_7, minor versions zero).
pub const USER_AGENT: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) \
     AppleWebKit/537.36 (KHTML, like Gecko) Chrome/158.0.0.0 Safari/537.36";

/// The `Accept-Encoding` Chrome sends. We never decode a body: only its
/// first bytes are sniffed for image magic, and `Content-Type` usually
/// says it first.
const ACCEPT_ENCODING: &str = "gzip, deflate, br, zstd";
const ACCEPT_LANGUAGE: &str = "en-US,en;q=0.9";

/// Top-level domains a random site is put under: common ones, so the
/// origin looks like any page's.
const TLDS: [&str; 8] = ["com", "net", "org", "io", "co", "app", "dev", "ai"];
/// Syllable parts of a random site name. No onset starts with `c`, so no
/// name can contain "lenscap" (or any word with "sc" in it).
const ONSETS: [&str; 20] = [
    "b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br", "st",
    "tr", "pl",
];
const VOWELS: [&str; 8] = ["a", "e", "i", "o", "u", "ai", "ea", "ou"];
const CODAS: [&str; 8] = ["", "", "", "n", "r", "l", "x", "m"];

/// Which of the three requests of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A CORS preflight, as Chrome sends before a `fetch()` with a JSON
    /// `Content-Type`.
    Options,
    /// A cross-site `fetch()` of `/`.
    Get,
    /// A WebSocket handshake; the probe hangs up once the status line is in.
    WebSocket,
}

/// The browser one probe pretends to be: its page's origin, the WebSocket
/// key it would send, and how the page names this machine. Random per
/// probe ([`Disguise::random`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disguise {
    origin: String,
    websocket_key: String,
    /// Pages reach a helper as `http://localhost:PORT` (ZoomOpener's did)
    /// or by the address; a helper that answers only one `Host` is found
    /// by the probes that send the other.
    by_name: bool,
}

/// Random bytes for one disguise.
pub type Seed = [u8; 24];

impl Disguise {
    /// A fresh disguise from the OS's randomness.
    pub fn random() -> Disguise {
        Disguise::from_seed(&seed())
    }

    /// The disguise `seed` makes: bytes 0..8 pick the origin, 8..24 are
    /// the WebSocket key.
    pub fn from_seed(seed: &Seed) -> Disguise {
        let mut pick = Picker(u64::from_le_bytes(seed[..8].try_into().unwrap_or([0; 8])));
        let syllables = 2 + pick.below(2);
        let mut name = String::new();
        for _ in 0..syllables {
            name.push_str(ONSETS[pick.below(ONSETS.len())]);
            name.push_str(VOWELS[pick.below(VOWELS.len())]);
            name.push_str(CODAS[pick.below(CODAS.len())]);
        }
        let tld = TLDS[pick.below(TLDS.len())];
        Disguise {
            origin: format!("https://{name}.{tld}"),
            websocket_key: BASE64.encode(&seed[8..24]),
            by_name: pick.below(2) == 1,
        }
    }

    /// The `Origin` every request of this probe carries.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The `Host` a page reaching `target` sends: `localhost:PORT` or the
    /// address, as this disguise's page names it (only a loopback address
    /// has the name).
    pub fn host(&self, target: SocketAddr) -> String {
        if self.by_name && target.ip().is_loopback() {
            format!("localhost:{}", target.port())
        } else {
            target.to_string()
        }
    }

    /// The bytes of one request to `target`, the address connected to.
    pub fn request(&self, kind: Kind, target: SocketAddr) -> String {
        let origin = &self.origin;
        let target = self.host(target);
        let mut r = String::with_capacity(768);
        // Header order is Chrome's (HTTP/1.1), so that it gives nothing away either.
        let _ = match kind {
            Kind::Options => write!(
                r,
                "OPTIONS / HTTP/1.1\r\nHost: {target}\r\nConnection: keep-alive\r\n\
                 Accept: */*\r\nAccess-Control-Request-Method: GET\r\n\
                 Access-Control-Request-Headers: content-type\r\nOrigin: {origin}\r\n\
                 User-Agent: {USER_AGENT}\r\nSec-Fetch-Mode: cors\r\n\
                 Sec-Fetch-Site: cross-site\r\nSec-Fetch-Dest: empty\r\n\
                 Referer: {origin}/\r\nAccept-Encoding: {ACCEPT_ENCODING}\r\n\
                 Accept-Language: {ACCEPT_LANGUAGE}\r\n\r\n"
            ),
            Kind::Get => write!(
                r,
                "GET / HTTP/1.1\r\nHost: {target}\r\nConnection: keep-alive\r\n\
                 sec-ch-ua-platform: \"macOS\"\r\nUser-Agent: {USER_AGENT}\r\n\
                 sec-ch-ua: {hints}\r\nsec-ch-ua-mobile: ?0\r\nAccept: */*\r\n\
                 Origin: {origin}\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: cors\r\n\
                 Sec-Fetch-Dest: empty\r\nReferer: {origin}/\r\n\
                 Accept-Encoding: {ACCEPT_ENCODING}\r\nAccept-Language: {ACCEPT_LANGUAGE}\r\n\r\n",
                hints = client_hints(),
            ),
            Kind::WebSocket => write!(
                r,
                "GET / HTTP/1.1\r\nHost: {target}\r\nConnection: Upgrade\r\n\
                 Pragma: no-cache\r\nCache-Control: no-cache\r\nUser-Agent: {USER_AGENT}\r\n\
                 Upgrade: websocket\r\nOrigin: {origin}\r\nSec-WebSocket-Version: 13\r\n\
                 Accept-Encoding: {ACCEPT_ENCODING}\r\nAccept-Language: {ACCEPT_LANGUAGE}\r\n\
                 Sec-WebSocket-Key: {key}\r\n\
                 Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
                key = self.websocket_key,
            ),
        };
        r
    }
}

/// `sec-ch-ua` for [`CHROME_MAJOR`], with the GREASE brand Chrome uses.
fn client_hints() -> String {
    format!(
        "\"Google Chrome\";v=\"{CHROME_MAJOR}\", \"Chromium\";v=\"{CHROME_MAJOR}\", \
         \"Not_A Brand\";v=\"24\""
    )
}

/// Draws small numbers from one random u64 (a name needs ~40 bits).
struct Picker(u64);

impl Picker {
    fn below(&mut self, n: usize) -> usize {
        let n64 = u64::try_from(n).unwrap_or(u64::MAX).max(1);
        let v = self.0 % n64;
        self.0 /= n64;
        usize::try_from(v).unwrap_or(0)
    }
}

/// Random bytes from the OS. Should it ever have none to give, the clock
/// and a counter still make every disguise differ from the last, which is
/// what matters against a helper that remembers one.
fn seed() -> Seed {
    let mut seed = [0u8; 24];
    if getrandom::fill(&mut seed).is_err() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mut x = nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(32);
        for chunk in seed.chunks_mut(8) {
            // splitmix64: spreads a counter over all bits.
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
    seed
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn target() -> SocketAddr {
        "127.0.0.1:19421".parse().unwrap()
    }

    fn all(d: &Disguise) -> [String; 3] {
        [Kind::Options, Kind::Get, Kind::WebSocket].map(|k| d.request(k, target()))
    }

    fn header<'a>(request: &'a str, name: &str) -> Option<&'a str> {
        request.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    #[test]
    fn looks_like_chrome_on_a_mac() {
        let d = Disguise::random();
        for r in all(&d) {
            let ua = header(&r, "User-Agent").unwrap_or_default();
            assert!(
                ua.starts_with("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)")
                    && ua.contains(&format!("Chrome/{CHROME_MAJOR}.0.0.0 Safari/537.36")),
                "{ua}"
            );
            assert_eq!(header(&r, "Origin"), Some(d.origin()));
            assert_eq!(header(&r, "Host"), Some(d.host(target()).as_str()));
            assert_eq!(header(&r, "Accept-Language"), Some(ACCEPT_LANGUAGE));
            // What a browser never sends on these, or a page has none of.
            for absent in ["Cookie", "Authorization", "X-Requested-With"] {
                assert!(header(&r, absent).is_none(), "{absent} in {r}");
            }
            assert_ne!(header(&r, "Connection"), Some("close"));
            assert!(r.ends_with("\r\n\r\n") && !r[..r.len() - 4].contains("\r\n\r\n"));
        }
        let [options, get, ws] = all(&d);
        assert!(options.starts_with("OPTIONS / HTTP/1.1\r\n"));
        assert_eq!(
            header(&options, "Access-Control-Request-Method"),
            Some("GET")
        );
        assert!(get.starts_with("GET / HTTP/1.1\r\n"));
        for (name, value) in [
            ("Sec-Fetch-Site", "cross-site"),
            ("Sec-Fetch-Mode", "cors"),
            ("Sec-Fetch-Dest", "empty"),
            ("sec-ch-ua-platform", "\"macOS\""),
            ("sec-ch-ua-mobile", "?0"),
        ] {
            assert_eq!(header(&get, name), Some(value), "{name}");
        }
        assert_eq!(
            header(&get, "Referer"),
            Some(format!("{}/", d.origin()).as_str())
        );
        assert_eq!(header(&ws, "Upgrade"), Some("websocket"));
        assert_eq!(header(&ws, "Sec-WebSocket-Version"), Some("13"));
        let key = header(&ws, "Sec-WebSocket-Key").unwrap_or_default();
        assert_eq!(BASE64.decode(key).map(|k| k.len()).ok(), Some(16), "{key}");
    }

    #[test]
    fn pages_name_the_machine_either_way() {
        let hosts: std::collections::BTreeSet<String> =
            (0..64).map(|_| Disguise::random().host(target())).collect();
        let both: std::collections::BTreeSet<String> = ["127.0.0.1:19421", "localhost:19421"]
            .map(String::from)
            .into();
        assert_eq!(hosts, both);
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        for _ in 0..16 {
            let h = Disguise::random().host(v6);
            assert!(h == "[::1]:80" || h == "localhost:80", "{h}");
        }
        // Only loopback has the name.
        let lan: SocketAddr = "192.168.1.4:80".parse().unwrap();
        assert!((0..16).all(|_| Disguise::random().host(lan) == "192.168.1.4:80"));
    }

    #[test]
    fn every_probe_has_its_own_origin_and_key() {
        let disguises: Vec<Disguise> = (0..50).map(|_| Disguise::random()).collect();
        let origins: std::collections::BTreeSet<&str> =
            disguises.iter().map(Disguise::origin).collect();
        let keys: std::collections::BTreeSet<&str> =
            disguises.iter().map(|d| d.websocket_key.as_str()).collect();
        // ~40 bits of name: 50 draws colliding would be a broken generator.
        assert!(origins.len() >= 49, "{origins:?}");
        assert_eq!(keys.len(), 50);
        assert_ne!(Disguise::random(), Disguise::random());
    }

    proptest! {
        #[test]
        fn no_product_token_and_a_plausible_origin(seed in proptest::array::uniform24(any::<u8>())) {
            let d = Disguise::from_seed(&seed);
            for r in all(&d) {
                prop_assert!(!r.to_ascii_lowercase().contains("lenscap"), "{}", r);
                prop_assert!(r.is_ascii());
            }
            let host = d.origin().strip_prefix("https://");
            prop_assert!(host.is_some(), "{}", d.origin());
            let (name, tld) = host.unwrap_or_default().rsplit_once('.').unwrap_or_default();
            prop_assert!(TLDS.contains(&tld), "{}", d.origin());
            prop_assert!(
                (4..=24).contains(&name.len())
                    && name.bytes().all(|b| b.is_ascii_lowercase()),
                "{}", d.origin()
            );
            prop_assert!(!d.origin().ends_with(".invalid"));
        }
    }
}
