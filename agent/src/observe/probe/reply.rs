//! Reading one reply to a probe request: bytes in, facts out. Pure, so the
//! fuzz target (`fuzz/fuzz_targets/http_response.rs`) and the proptest
//! below can hammer it; the socket side lives in [`super`].
//!
//! The bytes come from whatever is listening, which may be hostile: a
//! helper that wants to stay hidden could pad its headers past our read
//! cap, send hundreds of junk headers, or break a header line on purpose.
//! So parsing is lenient where a browser is lenient (invalid header lines
//! are skipped, not fatal) and salvages what fits when the header block is
//! cut off, because the facts that matter — status, `Server`,
//! `Access-Control-Allow-Origin` — usually sit near the top.

use std::fmt;

use crate::model::Cors;

/// Most header bytes we read before giving up on finding the end.
pub const MAX_HEAD: usize = 16 * 1024;

/// Body bytes we look at: enough for every image magic we know.
pub const BODY_SNIFF: usize = 16;

/// Room after the header block: a chunk-size line plus [`BODY_SNIFF`].
pub const MAX_REPLY: usize = MAX_HEAD + 64 + BODY_SNIFF;

/// Longest `Server` / `Content-Type` value we keep: they end up in reports.
const MAX_VALUE: usize = 200;

/// What the bytes received so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Not enough bytes to tell yet. `status` is the status code when the
    /// status line has already arrived.
    Incomplete {
        status: Option<u16>,
    },
    Http(HttpReply),
    NotHttp(NotHttp),
}

/// The facts one HTTP response gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    pub server: Option<String>,
    pub content_type: Option<String>,
    pub cors: Cors,
    /// A 101 (only ever sent to an upgrade request) or an
    /// `Upgrade: websocket` header.
    pub websocket: bool,
    /// `Content-Type: image/*`, or image magic at the start of the body.
    pub image: bool,
    /// `Access-Control-Allow-Private-Network: true`: the answer to a
    /// preflight that asked for a private network opts in.
    pub private_network: bool,
    /// The header block was cut (read cap or connection end); the facts
    /// come from the complete header lines that did arrive.
    pub truncated: bool,
    /// Body bytes still worth waiting for to sniff image magic. Non-zero
    /// only when `Content-Type` is missing: otherwise it already told us.
    pub wants_body: usize,
}

/// Why a reply is not an HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotHttp {
    /// Connection closed without a byte.
    Closed,
    /// A TLS record (alert `0x15` or handshake `0x16`, version `0x03`).
    Tls { alert: bool },
    /// Started like HTTP but no status line could be read.
    Malformed,
    /// Something else; `start` is its first bytes, escaped for display.
    Other { start: String },
}

impl fmt::Display for NotHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotHttp::Closed => write!(f, "closed the connection without answering"),
            NotHttp::Tls { alert: true } => write!(f, "TLS alert: HTTPS listener?"),
            NotHttp::Tls { alert: false } => write!(f, "TLS handshake: HTTPS listener?"),
            NotHttp::Malformed => write!(f, "malformed HTTP response"),
            NotHttp::Other { start } => write!(f, "not HTTP: reply starts \"{start}\""),
        }
    }
}

/// Classify the bytes received so far. With `eof` (connection closed, read
/// cap or deadline reached) it never answers `Incomplete`. `origin` is the
/// `Origin` the request carried: an `Access-Control-Allow-Origin` equal to
/// it is a reflected origin (each probe sends its own, so a helper cannot
/// pass off a reflection as one fixed allowed site).
pub fn classify(bytes: &[u8], eof: bool, origin: &str) -> Reply {
    if let [0x15 | 0x16, 0x03, ..] = bytes {
        return Reply::NotHttp(NotHttp::Tls {
            alert: bytes[0] == 0x15,
        });
    }
    let head = &bytes[..bytes.len().min(MAX_HEAD)];
    match parse(head, origin) {
        Parsed::Complete(facts, head_len) => Reply::Http(facts.finish(&bytes[head_len..], false)),
        Parsed::Error => Reply::NotHttp(not_http(bytes)),
        Parsed::Partial(status) if !eof && bytes.len() < MAX_HEAD => Reply::Incomplete { status },
        // Cut off: parse the complete lines we have as if the block ended
        // there, so padding past our cap hides nothing that came before.
        Parsed::Partial(_) => match salvage(head, origin) {
            Some(facts) => Reply::Http(facts.finish(&[], true)),
            None if bytes.is_empty() => Reply::NotHttp(NotHttp::Closed),
            None => Reply::NotHttp(not_http(bytes)),
        },
    }
}

fn not_http(bytes: &[u8]) -> NotHttp {
    if bytes.starts_with(b"HTTP/") {
        return NotHttp::Malformed;
    }
    let start = bytes
        .iter()
        .take(24)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    NotHttp::Other { start }
}

/// Headers we care about, before the body is looked at.
struct Facts {
    status: u16,
    server: Option<String>,
    content_type: Option<String>,
    cors: Cors,
    upgrade_websocket: bool,
    content_length: Option<usize>,
    chunked: bool,
    private_network: bool,
}

enum Parsed {
    Complete(Facts, usize),
    Partial(Option<u16>),
    Error,
}

fn config() -> httparse::ParserConfig {
    let mut config = httparse::ParserConfig::default();
    config
        .ignore_invalid_headers_in_responses(true)
        .allow_spaces_after_header_name_in_responses(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .allow_obsolete_multiline_headers_in_responses(true);
    config
}

fn parse(head: &[u8], origin: &str) -> Parsed {
    let mut small = [httparse::EMPTY_HEADER; 64];
    match parse_with(head, &mut small, origin) {
        Err(httparse::Error::TooManyHeaders) => {
            // Hundreds of junk headers must not hide the real ones: the
            // shortest header line is 3 bytes (`a:\n`), so this many always fit.
            let mut big = vec![httparse::EMPTY_HEADER; head.len() / 3 + 1];
            parse_with(head, &mut big, origin).unwrap_or(Parsed::Error)
        }
        other => other.unwrap_or(Parsed::Error),
    }
}

fn parse_with<'b>(
    head: &'b [u8],
    headers: &mut [httparse::Header<'b>],
    origin: &str,
) -> Result<Parsed, httparse::Error> {
    let mut response = httparse::Response::new(headers);
    match config().parse_response(&mut response, head)? {
        httparse::Status::Partial => Ok(Parsed::Partial(response.code)),
        httparse::Status::Complete(len) => {
            let status = response.code.unwrap_or(0);
            Ok(Parsed::Complete(
                facts(status, response.headers, origin),
                len,
            ))
        }
    }
}

/// Parse the complete lines of a cut-off header block as a whole one.
fn salvage(head: &[u8], origin: &str) -> Option<Facts> {
    let last_newline = head.iter().rposition(|&b| b == b'\n')?;
    let mut whole = head[..=last_newline].to_vec();
    whole.extend_from_slice(b"\r\n");
    match parse(&whole, origin) {
        Parsed::Complete(facts, _) => Some(facts),
        Parsed::Partial(_) | Parsed::Error => None,
    }
}

fn facts(status: u16, headers: &[httparse::Header<'_>], origin: &str) -> Facts {
    let mut facts = Facts {
        status,
        server: None,
        content_type: None,
        cors: Cors::None,
        upgrade_websocket: false,
        content_length: None,
        chunked: false,
        private_network: false,
    };
    for header in headers {
        let value = String::from_utf8_lossy(header.value);
        let value = value.trim();
        let name = header.name;
        if name.eq_ignore_ascii_case("server") && facts.server.is_none() {
            facts.server = Some(printable(value));
        } else if name.eq_ignore_ascii_case("content-type") && facts.content_type.is_none() {
            facts.content_type = Some(printable(value));
        } else if name.eq_ignore_ascii_case("access-control-allow-origin") {
            facts.cors = most_open(facts.cors, cors_of(value, origin));
        } else if name.eq_ignore_ascii_case("upgrade") {
            facts.upgrade_websocket |= value.to_ascii_lowercase().contains("websocket");
        } else if name.eq_ignore_ascii_case("content-length") {
            facts.content_length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("access-control-allow-private-network") {
            facts.private_network |= value.eq_ignore_ascii_case("true");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            facts.chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    facts
}

/// What one `Access-Control-Allow-Origin` value allows, answering a
/// request from `origin`. Scheme and host compare without case, as
/// browsers compare them.
pub fn cors_of(value: &str, origin: &str) -> Cors {
    let value = value.trim();
    if value == "*" {
        Cors::Wildcard
    } else if !origin.is_empty() && value.eq_ignore_ascii_case(origin) {
        Cors::Reflected
    } else if value.is_empty() {
        Cors::None
    } else {
        Cors::Specific
    }
}

/// The more permissive of two answers. A reflected origin ranks above `*`
/// because browsers send credentials to it.
pub fn most_open(a: Cors, b: Cors) -> Cors {
    fn rank(c: Cors) -> u8 {
        match c {
            Cors::None => 0,
            Cors::Specific => 1,
            Cors::Wildcard => 2,
            Cors::Reflected => 3,
        }
    }
    if rank(b) > rank(a) { b } else { a }
}

/// Untrusted text headed for reports: no control characters, bounded.
fn printable(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_VALUE)
        .collect()
}

impl Facts {
    fn finish(self, body: &[u8], truncated: bool) -> HttpReply {
        let has_body = !(self.status < 200 || self.status == 204 || self.status == 304);
        let (sniffed, line_done) = match (has_body, self.chunked) {
            (false, _) => (&[][..], true),
            (true, false) => (body, true),
            (true, true) => skip_chunk_size(body),
        };
        let sniffed = &sniffed[..sniffed.len().min(BODY_SNIFF)];
        let wanted = match self.content_length {
            Some(n) if !self.chunked => n.min(BODY_SNIFF),
            _ => BODY_SNIFF,
        };
        let wants_body = if !has_body || truncated || self.content_type.is_some() {
            0
        } else if !line_done {
            BODY_SNIFF
        } else {
            wanted.saturating_sub(sniffed.len())
        };
        let image = self
            .content_type
            .as_deref()
            .is_some_and(|t| t.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("image/")))
            || image_magic(sniffed);
        HttpReply {
            status: self.status,
            server: self.server,
            content_type: self.content_type,
            cors: self.cors,
            websocket: self.status == 101 || self.upgrade_websocket,
            image,
            private_network: self.private_network,
            truncated,
            wants_body,
        }
    }
}

/// The data after the first chunk-size line, and whether that line was
/// complete. A size line longer than 64 bytes is given up on.
fn skip_chunk_size(body: &[u8]) -> (&[u8], bool) {
    match body.iter().take(64).position(|&b| b == b'\n') {
        Some(i) => (&body[i + 1..], true),
        None if body.len() >= 64 => (&[], true),
        None => (&[], false),
    }
}

/// PNG, GIF, JPEG or BMP: what an `<img>` would decode, whatever the
/// `Content-Type` says.
pub fn image_magic(body: &[u8]) -> bool {
    body.starts_with(b"\x89PNG\r\n\x1a\n")
        || body.starts_with(b"GIF87a")
        || body.starts_with(b"GIF89a")
        || body.starts_with(&[0xFF, 0xD8, 0xFF])
        // "BM" alone is too common in text; its 4 reserved bytes are zero.
        || (body.starts_with(b"BM") && body.get(6..10) == Some(&[0, 0, 0, 0][..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The origin the tests' requests carried.
    const SENT: &str = "https://brolaxen.io";

    fn classify(bytes: &[u8], eof: bool) -> Reply {
        super::classify(bytes, eof, SENT)
    }

    fn http(bytes: &[u8]) -> HttpReply {
        match classify(bytes, false) {
            Reply::Http(r) => r,
            other => panic!("expected HTTP, got {other:?}"),
        }
    }

    #[test]
    fn zoomopener_style_image_answer() {
        // Shape of ZoomOpener's reply on localhost:19421 (Leitschuh, 2019):
        // a GIF whose dimensions carry the result, no CORS header.
        let r =
            http(b"HTTP/1.1 200 OK\r\nContent-Type: image/gif\r\nContent-Length: 35\r\n\r\nGIF89a");
        assert_eq!((r.status, r.image, r.cors), (200, true, Cors::None));
        assert_eq!(r.wants_body, 0);
    }

    #[test]
    fn cors_variants() {
        let of = |v: &str| {
            http(format!("HTTP/1.1 204 No\r\nAccess-Control-Allow-Origin: {v}\r\n\r\n").as_bytes())
                .cors
        };
        assert_eq!(of("*"), Cors::Wildcard);
        assert_eq!(of("HTTPS://BroLaxen.IO"), Cors::Reflected);
        // Someone else's origin — an earlier probe's, or the constant
        // older versions sent — is a specific site, not a reflection.
        assert_eq!(of("https://brolaxen.com"), Cors::Specific);
        assert_eq!(of("http://lenscap-probe.invalid"), Cors::Specific);
        assert_eq!(of("https://zoom.us"), Cors::Specific);
        assert_eq!(
            http(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").cors,
            Cors::None
        );
        // Two headers: the more open one counts.
        let two = b"HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: https://a\r\nAccess-Control-Allow-Origin: *\r\n\r\n";
        assert_eq!(http(two).cors, Cors::Wildcard);
    }

    #[test]
    fn missing_content_type_waits_for_body_then_sniffs() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 43\r\n\r\n".to_vec();
        assert_eq!(http(&head).wants_body, BODY_SNIFF);
        let mut full = head.clone();
        full.extend_from_slice(b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff");
        let r = http(&full);
        assert!(r.image && r.wants_body == 0);
        // A short body wants only what Content-Length promises.
        assert_eq!(
            http(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab").wants_body,
            1
        );
        // Chunked: magic after the size line.
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2b\r\n\x89PNG\r\n\x1a\nxxxxxxxx";
        assert!(http(chunked).image);
    }

    #[test]
    fn websocket_upgrade() {
        let r = http(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello");
        assert!(r.websocket && r.wants_body == 0);
        let r = http(b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: WebSocket\r\nContent-Type: text/plain\r\n\r\n");
        assert!(r.websocket);
    }

    #[test]
    fn not_http_replies() {
        assert_eq!(
            classify(b"SSH-2.0-OpenSSH_9.6\r\n", false).clone(),
            Reply::NotHttp(NotHttp::Other {
                start: "SSH-2.0-OpenSSH_9.6\\r\\n".into()
            })
        );
        // TLS 1.2 fatal alert "protocol_version", as OpenSSL sends to plaintext.
        let alert = classify(&[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46], false);
        assert_eq!(alert, Reply::NotHttp(NotHttp::Tls { alert: true }));
        assert_eq!(alert_text(&alert), "TLS alert: HTTPS listener?");
        assert_eq!(classify(b"", true), Reply::NotHttp(NotHttp::Closed));
        assert_eq!(
            classify(b"HTTP/1.1 2x0", true),
            Reply::NotHttp(NotHttp::Malformed)
        );
    }

    fn alert_text(r: &Reply) -> String {
        match r {
            Reply::NotHttp(n) => n.to_string(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn partial_reports_status_once_the_line_is_in() {
        assert_eq!(
            classify(b"HTTP/1.", false),
            Reply::Incomplete { status: None }
        );
        assert_eq!(
            classify(b"HTTP/1.1 101 Switching Protocols\r\nUpg", false),
            Reply::Incomplete { status: Some(101) }
        );
    }

    #[test]
    fn padding_and_junk_do_not_hide_cors() {
        // ACAO first, then headers padded past the read cap.
        let mut padded = b"HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\n".to_vec();
        while padded.len() < MAX_HEAD + 100 {
            padded.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        let r = http(&padded);
        assert!(r.truncated && r.cors == Cors::Wildcard);
        // 500 junk headers before ACAO, plus an invalid line.
        let mut junk = b"HTTP/1.1 200 OK\r\nbad line\r\n".to_vec();
        for i in 0..500 {
            junk.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        junk.extend_from_slice(b"Access-Control-Allow-Origin: https://brolaxen.io\r\n\r\n");
        assert_eq!(http(&junk).cors, Cors::Reflected);
        // Cut off by the peer mid-header: what arrived still counts.
        let cut = b"HTTP/1.0 403 Forbidden\r\nServer: rogue\r\nContent-Ty";
        match classify(cut, true) {
            Reply::Http(r) => assert_eq!((r.status, r.server.as_deref()), (403, Some("rogue"))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reflection_is_judged_against_the_origin_sent() {
        let reply = b"HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: https://kaivo.net\r\n\r\n";
        let cors = |sent| match super::classify(reply, false, sent) {
            Reply::Http(r) => r.cors,
            other => panic!("{other:?}"),
        };
        assert_eq!(cors("https://kaivo.net"), Cors::Reflected);
        assert_eq!(cors("https://pelmo.app"), Cors::Specific);
        // No origin sent: nothing can be a reflection of it.
        assert_eq!(cors(""), Cors::Specific);
        assert_eq!(cors_of("", ""), Cors::None);
    }

    #[test]
    fn untrusted_values_are_cleaned() {
        // Tab and a C1 control (NEL, U+0085) pass httparse; neither reaches a report.
        let r =
            http(b"HTTP/1.1 200 OK\r\nServer: a\tb\xc2\x85c\r\nContent-Type: text/html\r\n\r\n");
        assert_eq!(r.server.as_deref(), Some("abc"));
        let long = format!("HTTP/1.1 200 OK\r\nServer: {}\r\n\r\n", "x".repeat(5000));
        assert_eq!(http(long.as_bytes()).server.map(|s| s.len()), Some(200));
    }

    proptest! {
        #[test]
        fn never_panics_and_eof_always_decides(bytes in proptest::collection::vec(any::<u8>(), 0..600), eof: bool) {
            let r = classify(&bytes, eof);
            if eof {
                let incomplete = matches!(r, Reply::Incomplete { .. });
                prop_assert!(!incomplete, "{:?}", r);
            }
        }

        #[test]
        fn well_formed_responses_are_read(
            status in 100u16..600,
            server in "[ -~]{0,40}",
            acao in prop_oneof![Just("*".to_string()), Just(SENT.to_string()), "https://[a-z]{1,10}\\.example"],
            split in 0usize..200,
        ) {
            let text = format!("HTTP/1.1 {status} X\r\nServer: {server}\r\nAccess-Control-Allow-Origin: {acao}\r\nContent-Type: text/plain\r\n\r\n");
            let bytes = text.as_bytes();
            let r = http(bytes);
            prop_assert_eq!(r.status, status);
            prop_assert_eq!(r.server.as_deref(), Some(server.trim()));
            prop_assert_eq!(r.cors, cors_of(&acao, SENT));
            prop_assert_eq!(r.websocket, status == 101);
            // Any strict prefix is incomplete, never an error.
            let cut = split.min(bytes.len() - 1);
            let partial = classify(&bytes[..cut], false);
            let incomplete = matches!(partial, Reply::Incomplete { .. });
            prop_assert!(incomplete, "{:?}", partial);
        }
    }
}
