//! Headless Chromium for the dashboard tests: find the browser, run it
//! with `--dump-dom` / `--screenshot` under a deadline, and drive it like a
//! person (type into a field, click a button) over the DevTools protocol on
//! `--remote-debugging-pipe`.
//!
//! The pipe is used instead of `--remote-debugging-port` because it needs
//! no WebSocket client and no port: Chromium reads commands on fd 3 and
//! writes answers on fd 4, each a JSON message ended by a NUL byte.

// A test harness whose setup fails should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long one browser run or one DevTools command may take. Generous: CI
/// machines are busy, and a cold Chromium start takes seconds there.
pub const DEADLINE: Duration = Duration::from_secs(90);

/// Flags for every run: no sandbox (CI runs as root in a container), and
/// nothing that talks to the network or changes between runs.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

/// The Chromium binary: `LENSCAP_CHROMIUM` if it names a file, else
/// `chromium` (Debian's package) or `chromium-browser` on `PATH`.
pub fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LENSCAP_CHROMIUM") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|n| dir.join(n)))
        .find(|p| p.is_file())
}

/// A Chromium with one profile directory, kept between runs so a session
/// cookie set in one run is sent by the next.
#[derive(Debug)]
pub struct Chromium {
    pub bin: PathBuf,
    pub profile: PathBuf,
    /// Chromium's `$HOME` (and XDG cache and config), so that it writes
    /// nothing into the real home directory.
    home: PathBuf,
    /// Chromium's stderr of the latest run, for failure messages.
    stderr: PathBuf,
}

/// The end of Chromium's stderr in `file`.
fn stderr_tail(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    // Chromium complains about the missing D-Bus in containers; that is
    // noise, not the reason for a failure.
    let lines: Vec<&str> = text.lines().filter(|l| !l.contains("dbus")).collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Kills the browser if a test fails while it runs.
#[derive(Debug)]
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Chromium {
    pub fn new(bin: PathBuf, dir: &Path) -> Chromium {
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        Chromium {
            bin,
            profile: dir.join("profile"),
            home,
            stderr: dir.join("chromium.stderr"),
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(FLAGS)
            .arg(format!("--user-data-dir={}", self.profile.display()))
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("XDG_CACHE_HOME", self.home.join(".cache"))
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&self.stderr).unwrap());
        cmd
    }

    fn stderr_tail(&self) -> String {
        stderr_tail(&self.stderr)
    }

    /// Run to completion within [`DEADLINE`]; its stdout.
    fn run(&self, mut cmd: Command, what: &str) -> String {
        let mut child = Running(cmd.stdout(Stdio::piped()).spawn().unwrap());
        let mut stdout = child.0.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut out = String::new();
            let _ = stdout.read_to_string(&mut out);
            out
        });
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "chromium {what} took over {DEADLINE:?}; its stderr:\n{}",
                self.stderr_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let out = reader.join().unwrap();
        assert!(
            status.success(),
            "chromium {what} failed ({status}); its stderr:\n{}",
            self.stderr_tail()
        );
        out
    }

    /// The DOM after loading `url`, as Chromium serialises it.
    pub fn dump_dom(&self, url: &str) -> String {
        let mut cmd = self.command();
        cmd.arg("--dump-dom").arg(url);
        let dom = self.run(cmd, &format!("--dump-dom {url}"));
        assert!(
            dom.contains("</html>"),
            "chromium printed no document for {url}: {dom:?}; its stderr:\n{}",
            self.stderr_tail()
        );
        dom
    }

    /// A PNG of `url` in a 1280×900 window, written to `png`.
    pub fn screenshot(&self, url: &str, png: &Path) {
        let mut cmd = self.command();
        cmd.arg(format!("--screenshot={}", png.display()))
            .arg("--window-size=1280,900")
            .arg("--hide-scrollbars")
            .arg(url);
        self.run(cmd, &format!("--screenshot {url}"));
    }

    /// Start Chromium to be driven over the DevTools pipe, with one tab.
    pub fn devtools(&self) -> DevTools {
        let (chrome_reads, we_write) = std::io::pipe().unwrap();
        let (we_read, chrome_writes) = std::io::pipe().unwrap();
        let (r, w) = (chrome_reads.as_raw_fd(), chrome_writes.as_raw_fd());
        let mut cmd = self.command();
        cmd.arg("--remote-debugging-pipe").arg("about:blank");
        // SAFETY: between fork and exec only async-signal-safe calls
        // (fcntl, dup2), on descriptors that stay open until spawn returns.
        // Both ends are first copied above fd 10 so that moving one into
        // place cannot overwrite the other if either already is 3 or 4;
        // dup2 clears close-on-exec on 3 and 4, the copies keep it.
        unsafe {
            cmd.pre_exec(move || {
                let r2 = libc::fcntl(r, libc::F_DUPFD_CLOEXEC, 10);
                let w2 = libc::fcntl(w, libc::F_DUPFD_CLOEXEC, 10);
                if r2 < 0 || w2 < 0 || libc::dup2(r2, 3) < 0 || libc::dup2(w2, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = Running(cmd.spawn().unwrap());
        // Our copies of Chromium's ends must close, or we would never see
        // end-of-file when it exits.
        drop((chrome_reads, chrome_writes));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || read_messages(we_read, tx));
        let mut dt = DevTools {
            child,
            to: we_write,
            rx,
            next_id: 0,
            events: Vec::new(),
            session: None,
            stderr: self.stderr.clone(),
        };
        let target = dt.call("Target.createTarget", json!({"url": "about:blank"}));
        let session = dt.call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        dt.session = Some(session["sessionId"].as_str().unwrap().to_string());
        dt.call("Page.enable", json!({}));
        dt
    }
}

/// NUL-separated JSON messages from Chromium, until it closes the pipe.
fn read_messages(mut from: std::io::PipeReader, tx: mpsc::Sender<Value>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match from.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        while let Some(end) = buf.iter().position(|&b| b == 0) {
            let msg: Vec<u8> = buf.drain(..=end).collect();
            match serde_json::from_slice(&msg[..end]) {
                Ok(v) => {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
                Err(e) => panic!("chromium sent a message that is not JSON ({e})"),
            }
        }
    }
}

/// One Chromium tab driven over the DevTools protocol.
#[derive(Debug)]
pub struct DevTools {
    child: Running,
    to: std::io::PipeWriter,
    rx: mpsc::Receiver<Value>,
    next_id: u64,
    /// Events received while waiting for answers, oldest first.
    events: Vec<Value>,
    session: Option<String>,
    stderr: PathBuf,
}

impl DevTools {
    fn recv(&mut self, waiting_for: &str) -> Value {
        match self.rx.recv_timeout(DEADLINE) {
            Ok(v) => v,
            Err(e) => panic!(
                "no answer from chromium while waiting for {waiting_for} ({e}); its stderr:\n{}",
                stderr_tail(&self.stderr)
            ),
        }
    }

    /// Send a command to the tab (or the browser before a tab is
    /// attached); its `result`.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params);
        loop {
            let m = self.recv(method);
            if m["id"] == json!(id) {
                assert!(m.get("error").is_none(), "{method} failed: {m}");
                return m["result"].clone();
            }
            if m.get("method").is_some() {
                self.events.push(m);
            }
        }
    }

    /// Write a command; its id.
    fn send(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).unwrap();
        id
    }

    /// Forget events so far; call before an action whose events matter.
    pub fn clear_events(&mut self) {
        self.events.clear();
        while let Ok(m) = self.rx.try_recv() {
            drop(m);
        }
    }

    /// Wait for the event `method` (received since [`clear_events`]).
    pub fn wait_event(&mut self, method: &str) -> Value {
        if let Some(i) = self.events.iter().position(|e| e["method"] == method) {
            return self.events.remove(i);
        }
        loop {
            let m = self.recv(method);
            if m["method"] == method {
                return m;
            }
        }
    }

    /// Open `url` as if typed into the address bar; returns once loaded.
    pub fn open(&mut self, url: &str) {
        self.clear_events();
        self.call("Page.navigate", json!({"url": url}));
        self.wait_event("Page.loadEventFired");
    }

    /// The address the tab shows now.
    pub fn url(&mut self) -> String {
        let h = self.call("Page.getNavigationHistory", json!({}));
        let i = h["currentIndex"].as_u64().unwrap() as usize;
        h["entries"][i]["url"].as_str().unwrap().to_string()
    }

    /// The current document, serialised.
    pub fn dom(&mut self) -> String {
        let root = self.call("DOM.getDocument", json!({}))["root"]["nodeId"].clone();
        self.call("DOM.getOuterHTML", json!({"nodeId": root}))["outerHTML"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn node(&mut self, selector: &str) -> Value {
        let root = self.call("DOM.getDocument", json!({}))["root"]["nodeId"].clone();
        let node = self.call(
            "DOM.querySelector",
            json!({"nodeId": root, "selector": selector}),
        )["nodeId"]
            .clone();
        assert_ne!(node, json!(0), "no element {selector} on {}", self.url());
        node
    }

    /// Click into the field `selector` and type `text`, as from a keyboard.
    pub fn type_into(&mut self, selector: &str, text: &str) {
        let node = self.node(selector);
        self.call("DOM.focus", json!({"nodeId": node}));
        self.call("Input.insertText", json!({"text": text}));
    }

    /// Click the middle of the element `selector` with the mouse and wait
    /// for the page it leads to.
    pub fn click_and_wait(&mut self, selector: &str) {
        let node = self.node(selector);
        let quad =
            self.call("DOM.getBoxModel", json!({"nodeId": node}))["model"]["content"].clone();
        let q: Vec<f64> = quad
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let (x, y) = ((q[0] + q[4]) / 2.0, (q[1] + q[5]) / 2.0);
        self.clear_events();
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            );
        }
        self.wait_event("Page.loadEventFired");
    }

    /// Close the browser cleanly, so the profile (and its cookies) is
    /// written to disk for the next run.
    pub fn close(mut self) {
        self.session = None;
        // Chromium may close the pipe before it answers; its exit is the
        // answer that matters.
        self.send("Browser.close", json!({}));
        let start = Instant::now();
        while matches!(self.child.0.try_wait(), Ok(None)) {
            assert!(start.elapsed() < DEADLINE, "chromium did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
