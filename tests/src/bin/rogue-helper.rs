//! `rogue-helper` — a **test fixture**, never shipped: a small, real
//! "undisclosed helper web server" in the mould of Zoom's 2019 ZoomOpener
//! (`localhost:19421`), for the end-to-end tests to find, probe and stop.
//!
//! ```text
//! rogue-helper [--bind ADDR:PORT] [--cors star|reflect|none] [--image]
//!              [--raw] [--websocket] [--share-with-child] [--camera PATH]
//!              [--silent-for SECS] [--hang-up-on TEXT] [--port-file PATH]
//! ```
//!
//! - `--bind` (default `127.0.0.1:0`): `[::1]:0` binds ::1 only.
//! - `--cors`: the `Access-Control-Allow-Origin` it sends on every answer
//!   (`star` = `*`, `reflect` = the request's `Origin`, `none` = nothing).
//! - `--image`: `GET /` and `GET /launch…` answer with a tiny GIF whose
//!   width × height carry a status, the trick ZoomOpener used to get an
//!   answer past CORS: [`LAUNCHED`] means "launched".
//! - `--raw`: not HTTP — writes `SSH-2.0-rogue\r\n`, reads a little, closes.
//! - `--websocket`: answers an `Upgrade: websocket` request with 101 and
//!   holds the connection. It sends no `Sec-WebSocket-Accept` (that needs
//!   SHA-1; a probe only reads the status), so a real browser would refuse.
//! - `--share-with-child`: re-executes itself as `--hold-fd N` with the
//!   listening socket inherited, so two PIDs own and serve one socket. The
//!   parent reaps the child; killing the parent leaves the child running.
//! - `--camera PATH`: once listening (before the port file is written),
//!   opens `PATH` read-only and holds the descriptor for its whole life: a
//!   helper "using the camera", with a regular file standing in for
//!   `/dev/video0` (the Linux camera-in-use signal is an open descriptor on
//!   a `CameraDevices` path). Not passed on to a `--share-with-child` child.
//! - `--silent-for SECS`: a helper dodging a probe that comes right after
//!   it starts listening — every connection accepted within SECS of its
//!   first one is read from and never answered (held until the client
//!   goes). Counted from the first visitor, not from `listen()`, so a
//!   test does not race the prober's start.
//! - `--hang-up-on TEXT`: a helper dodging a probe that names itself —
//!   closes, unanswered, every connection whose `User-Agent` contains
//!   TEXT (ASCII case-insensitive).
//! - `--port-file PATH`: once listening (and any child started), writes the
//!   port to `PATH.tmp` and renames it to `PATH`, so a test that sees the
//!   file sees a complete port and a ready server.
//!
//! Every answer carries `X-Rogue-Pid`, so a test can tell which process
//! served it. One thread per connection, serves until killed; SIGTERM's
//! default action ends it at once.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;
use std::process::{Command, exit};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The status the `--image` GIF encodes as its (width, height).
const LAUNCHED: (u16, u16) = (2, 1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cors {
    Star,
    Reflect,
    None,
}

#[derive(Debug, Clone)]
struct Options {
    bind: SocketAddr,
    cors: Cors,
    image: bool,
    raw: bool,
    websocket: bool,
    share_with_child: bool,
    port_file: Option<PathBuf>,
    camera: Option<PathBuf>,
    silent_for: Option<Duration>,
    hang_up_on: Option<String>,
    hold_fd: Option<i32>,
    /// The serving flags, passed on to a `--share-with-child` child.
    serve_args: Vec<String>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut o = Options {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        cors: Cors::None,
        image: false,
        raw: false,
        websocket: false,
        share_with_child: false,
        port_file: None,
        camera: None,
        silent_for: None,
        hang_up_on: None,
        hold_fd: None,
        serve_args: Vec::new(),
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--bind" => o.bind = value()?.parse().map_err(|e| format!("--bind: {e}"))?,
            "--cors" => {
                let v = value()?;
                o.cors = match v.as_str() {
                    "star" => Cors::Star,
                    "reflect" => Cors::Reflect,
                    "none" => Cors::None,
                    _ => return Err(format!("--cors {v}: expected star, reflect or none")),
                };
                o.serve_args.extend(["--cors".to_string(), v]);
            }
            "--image" | "--raw" | "--websocket" => {
                o.serve_args.push(arg.clone());
                match arg.as_str() {
                    "--image" => o.image = true,
                    "--raw" => o.raw = true,
                    _ => o.websocket = true,
                }
            }
            "--share-with-child" => o.share_with_child = true,
            "--port-file" => o.port_file = Some(PathBuf::from(value()?)),
            "--camera" => o.camera = Some(PathBuf::from(value()?)),
            "--silent-for" => {
                let v = value()?;
                let secs: f64 = v.parse().map_err(|e| format!("--silent-for {v}: {e}"))?;
                o.silent_for = Some(
                    Duration::try_from_secs_f64(secs)
                        .map_err(|e| format!("--silent-for {v}: {e}"))?,
                );
                o.serve_args.extend([arg.clone(), v]);
            }
            "--hang-up-on" => {
                let v = value()?;
                o.hang_up_on = Some(v.to_ascii_lowercase());
                o.serve_args.extend([arg.clone(), v]);
            }
            "--hold-fd" => {
                o.hold_fd = Some(value()?.parse().map_err(|e| format!("--hold-fd: {e}"))?)
            }
            _ => return Err(format!("unknown argument {arg}")),
        }
    }
    Ok(o)
}

fn main() {
    let opts = parse_args(std::env::args().skip(1)).unwrap_or_else(|e| fail(&e));
    let listener = match opts.hold_fd {
        // SAFETY: our parent dup'ed its listening socket to this fd number
        // for us to inherit; nothing else in this process owns it.
        Some(fd) => unsafe { TcpListener::from_raw_fd(fd) },
        None => TcpListener::bind(opts.bind)
            .unwrap_or_else(|e| fail(&format!("bind {}: {e}", opts.bind))),
    };
    if opts.share_with_child {
        share_with_child(&listener, &opts).unwrap_or_else(|e| fail(&e));
    }
    // Held, never read, until the process ends: the open descriptor is
    // what a camera watcher sees. Opened before the port file is written,
    // so a test that sees the port also sees the camera in use.
    let _camera = opts.camera.as_ref().map(|path| {
        std::fs::File::open(path)
            .unwrap_or_else(|e| fail(&format!("--camera {}: {e}", path.display())))
    });
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
    let mut first_visit: Option<Instant> = None;
    for stream in listener.incoming().flatten() {
        let since = *first_visit.get_or_insert_with(Instant::now);
        if opts.silent_for.is_some_and(|quiet| since.elapsed() < quiet) {
            thread::spawn(move || hold_silently(stream));
            continue;
        }
        let opts = Arc::clone(&opts);
        thread::spawn(move || handle(stream, &opts));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("rogue-helper: {message}");
    exit(2)
}

/// Start a copy of ourselves that inherits the listening socket.
fn share_with_child(listener: &TcpListener, opts: &Options) -> Result<(), String> {
    // std opens sockets close-on-exec; dup() gives a copy without the flag.
    // SAFETY: dup on a descriptor we own; the result is checked below.
    let fd = unsafe { libc::dup(listener.as_raw_fd()) };
    if fd < 0 {
        return Err(format!("dup: {}", std::io::Error::last_os_error()));
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let spawned = Command::new(exe)
        .args(&opts.serve_args)
        .args(["--hold-fd", &fd.to_string()])
        .spawn();
    // SAFETY: fd is our own dup, used by nothing else; the child has its copy.
    unsafe { libc::close(fd) };
    let mut child = spawned.map_err(|e| format!("spawning the sharing child: {e}"))?;
    // Reap it, so a test that kills the child sees it vanish from /proc.
    thread::spawn(move || child.wait());
    Ok(())
}

/// Read whatever comes, answer nothing, until the client hangs up.
fn hold_silently(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let _ = stream.read_to_end(&mut Vec::new());
}

fn handle(mut stream: TcpStream, opts: &Options) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if opts.raw {
        let _ = stream.write_all(b"SSH-2.0-rogue\r\n");
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let _ = read_request(&mut stream);
        return;
    }
    let Some((method, path, headers)) = read_request(&mut stream) else {
        return;
    };
    let header = |name: &str| headers.get(name).map(String::as_str);
    if let (Some(text), Some(agent)) = (&opts.hang_up_on, header("user-agent"))
        && agent.to_ascii_lowercase().contains(text.as_str())
    {
        return;
    }
    let cors = match (opts.cors, header("origin")) {
        (Cors::Star, _) => "Access-Control-Allow-Origin: *\r\n".to_string(),
        (Cors::Reflect, Some(origin)) => format!("Access-Control-Allow-Origin: {origin}\r\n"),
        _ => String::new(),
    };
    let wants_upgrade = header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    if opts.websocket && wants_upgrade {
        let _ = respond(
            &mut stream,
            "101 Switching Protocols",
            "Upgrade: websocket\r\nConnection: Upgrade\r\n",
            None,
        );
        // Hold the connection until the client goes (or a minute passes).
        let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
        let _ = stream.read_to_end(&mut Vec::new());
        return;
    }
    let launch = path == "/" || path.starts_with("/launch");
    let _ = match method.as_str() {
        "OPTIONS" => {
            let allow = format!("{cors}Access-Control-Allow-Methods: GET, OPTIONS\r\n");
            respond(&mut stream, "204 No Content", &allow, None)
        }
        "GET" if opts.image && launch => {
            let headers = format!("{cors}Content-Type: image/gif\r\n");
            respond(
                &mut stream,
                "200 OK",
                &headers,
                Some(&gif(LAUNCHED.0, LAUNCHED.1)),
            )
        }
        "GET" if path == "/" => {
            let headers = format!("{cors}Content-Type: text/plain\r\n");
            respond(&mut stream, "200 OK", &headers, Some(b"rogue-helper\n"))
        }
        "GET" => respond(&mut stream, "404 Not Found", &cors, Some(b"")),
        _ => respond(&mut stream, "405 Method Not Allowed", &cors, Some(b"")),
    };
}

/// Request line and headers (names lower-cased), or None if the client
/// sent nothing usable within the read timeout. At most 8 KiB is read.
fn read_request(stream: &mut TcpStream) -> Option<(String, String, HashMap<String, String>)> {
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
    let mut request_line = lines.next()?.split(' ');
    let (method, path) = (
        request_line.next()?.to_string(),
        request_line.next()?.to_string(),
    );
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some((method, path, headers))
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    headers: &str,
    body: Option<&[u8]>,
) -> std::io::Result<()> {
    let length = body.map(|b| format!("Content-Length: {}\r\nConnection: close\r\n", b.len()));
    let head = format!(
        "HTTP/1.1 {status}\r\nServer: rogue-helper\r\nX-Rogue-Pid: {}\r\n{headers}{}\r\n",
        std::process::id(),
        length.unwrap_or_default()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.unwrap_or_default())
}

/// A valid GIF89a with a `width` × `height` logical screen holding one
/// 1×1 white frame: a browser's `img.width/height` read the screen size,
/// so the dimensions carry a number without drawing any pixels.
fn gif(width: u16, height: u16) -> Vec<u8> {
    let mut g = b"GIF89a".to_vec();
    g.extend_from_slice(&width.to_le_bytes());
    g.extend_from_slice(&height.to_le_bytes());
    // Global colour table of 2 entries (flag 0x80, size 0), white + black.
    g.extend_from_slice(&[0x80, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00]);
    // Image descriptor: a 1×1 frame at (0, 0), no local colour table.
    g.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0]);
    // LZW, minimum code size 2: codes clear (4), pixel 0, end (5) = 0x44 0x01.
    g.extend_from_slice(&[0x02, 0x02, 0x44, 0x01, 0x00]);
    g.push(0x3B);
    g
}
