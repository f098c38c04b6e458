//! `dodging-helper` — a **test fixture**, never shipped: a helper web
//! server that tries to slip past a scanner's probe, for
//! `tests/tests/attacks.rs` (the "probe dodges" of the Trust issue).
//!
//! ```text
//! dodging-helper [--bind ADDR:PORT] [--shun-agent TEXT] [--silent-ms N]
//!                [--port-file PATH]
//! ```
//!
//! - `--bind` (default `127.0.0.1:0`).
//! - `--shun-agent TEXT`: a request whose `User-Agent` contains `TEXT`
//!   (ASCII case-insensitive) gets no answer: the connection is closed as
//!   soon as its head is read. Anyone else gets the normal answer.
//! - `--silent-ms N`: after each accept, neither read nor write for `N` ms,
//!   then serve normally: a probe with a shorter timeout sees a port that
//!   accepts and says nothing.
//! - `--port-file PATH`: once listening, writes the port to `PATH.tmp` and
//!   renames it to `PATH` (a test that sees the file sees a ready server).
//!
//! The normal answer is what a browser-reachable helper gives any web page:
//! `OPTIONS` → 204, `GET /` → 200 `dodging-helper`, both with
//! `Access-Control-Allow-Origin: *`. Every answer carries `X-Dodger-Pid`.
//! One thread per connection; serves until killed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::exit;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

#[derive(Debug, Clone)]
struct Options {
    bind: SocketAddr,
    shun_agent: Option<String>,
    silent: Duration,
    port_file: Option<PathBuf>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut o = Options {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        shun_agent: None,
        silent: Duration::ZERO,
        port_file: None,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--bind" => o.bind = value()?.parse().map_err(|e| format!("--bind: {e}"))?,
            "--shun-agent" => o.shun_agent = Some(value()?.to_ascii_lowercase()),
            "--silent-ms" => {
                let ms = value()?.parse().map_err(|e| format!("--silent-ms: {e}"))?;
                o.silent = Duration::from_millis(ms);
            }
            "--port-file" => o.port_file = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown argument {arg}")),
        }
    }
    Ok(o)
}

fn main() {
    let opts = parse_args(std::env::args().skip(1)).unwrap_or_else(|e| fail(&e));
    let listener =
        TcpListener::bind(opts.bind).unwrap_or_else(|e| fail(&format!("bind {}: {e}", opts.bind)));
    if let Some(path) = &opts.port_file {
        let port = listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_else(|e| fail(&e.to_string()));
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{port}\n"))
            .and_then(|()| std::fs::rename(&tmp, path))
            .unwrap_or_else(|e| fail(&format!("port file {}: {e}", path.display())));
    }
    let opts = Arc::new(opts);
    for stream in listener.incoming().flatten() {
        let opts = Arc::clone(&opts);
        thread::spawn(move || handle(stream, &opts));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("dodging-helper: {message}");
    exit(2)
}

fn handle(mut stream: TcpStream, opts: &Options) {
    // Silent first: the client's bytes wait in the socket buffer unread.
    thread::sleep(opts.silent);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Some((method, agent)) = read_request(&mut stream) else {
        return;
    };
    if let Some(shun) = &opts.shun_agent
        && agent.to_ascii_lowercase().contains(shun.as_str())
    {
        // Dropping the stream closes it: the scanner sees a reset or EOF
        // where a browser would have seen a page.
        return;
    }
    let cors = "Access-Control-Allow-Origin: *\r\n";
    let _ = match method.as_str() {
        "OPTIONS" => respond(
            &mut stream,
            "204 No Content",
            &format!("{cors}Access-Control-Allow-Methods: GET, OPTIONS\r\n"),
            b"",
        ),
        "GET" => respond(
            &mut stream,
            "200 OK",
            &format!("{cors}Content-Type: text/plain\r\n"),
            b"dodging-helper\n",
        ),
        _ => respond(&mut stream, "405 Method Not Allowed", cors, b""),
    };
}

/// The request's method and `User-Agent` (empty if none), or None if the
/// client sent no complete head within the read timeout (8 KiB at most).
fn read_request(stream: &mut TcpStream) -> Option<(String, String)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.lines();
    let method = lines.next()?.split(' ').next()?.to_string();
    let agent = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("user-agent"))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    Some((method, agent))
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    headers: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nServer: dodging-helper\r\nX-Dodger-Pid: {}\r\n{headers}\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        std::process::id(),
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)
}
