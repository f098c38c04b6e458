//! A GitHub-releases API stand-in on 127.0.0.1, and signed release
//! archives to serve from it.
//!
//! It answers what self_update's GitHub backend asks for (read from
//! self_update 1.3.3's `backends/github.rs`): `GET
//! {base}/repos/{owner}/{repo}/releases/latest` (one release object),
//! `GET …/releases` (an array, one page, no `Link` header) and `GET` on the
//! asset's `url` (the bytes). tiny_http rather than the collector's axum:
//! a synchronous server in a thread is all a test needs.

use std::io::{Cursor, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use base64::Engine as _;
use serde_json::json;
use tiny_http::{Header, Response, Server};
use zipsign_api::SigningKey;

pub const OWNER: &str = "lenscap";
pub const REPO: &str = "lenscap";

/// One release: its version and its one asset.
#[derive(Debug, Clone)]
pub struct Release {
    pub version: String,
    pub asset_name: String,
    pub bytes: Vec<u8>,
}

/// The server; stops when dropped.
pub struct ReleaseServer {
    server: Arc<Server>,
    thread: Option<JoinHandle<()>>,
    /// Every request path, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
    pub port: u16,
}

impl ReleaseServer {
    /// Serves `release` as the only (and so the latest) release.
    pub fn start(release: Release) -> ReleaseServer {
        let server = Arc::new(Server::http("127.0.0.1:0").expect("bind 127.0.0.1:0"));
        let port = server.server_addr().to_ip().expect("an IP listener").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let server = Arc::clone(&server);
            let requests = Arc::clone(&requests);
            std::thread::spawn(move || serve(&server, port, &release, &requests))
        };
        ReleaseServer {
            server,
            thread: Some(thread),
            requests,
            port,
        }
    }

    /// The `UpdateURL` that points lenscap here.
    pub fn update_url(&self) -> String {
        format!("http://127.0.0.1:{}/repos/{OWNER}/{REPO}", self.port)
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("requests lock").clone()
    }
}

impl std::fmt::Debug for ReleaseServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseServer")
            .field("port", &self.port)
            .finish()
    }
}

impl Drop for ReleaseServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(server: &Server, port: u16, release: &Release, requests: &Mutex<Vec<String>>) {
    let base = format!("http://127.0.0.1:{port}/repos/{OWNER}/{REPO}");
    let asset_path = format!("/repos/{OWNER}/{REPO}/releases/assets/1");
    let release_json = json!({
        "tag_name": format!("v{}", release.version),
        "name": format!("lenscap {}", release.version),
        "created_at": "2026-11-28T12:00:00Z",
        "html_url": format!("https://github.com/{OWNER}/{REPO}/releases/tag/v{}", release.version),
        "body": "test release",
        "assets": [{
            "name": release.asset_name,
            "url": format!("{base}/releases/assets/1"),
            "size": release.bytes.len(),
        }],
    });
    let json_header = Header::from_bytes("Content-Type", "application/json").expect("header");
    for request in server.incoming_requests() {
        let path = request.url().to_string();
        requests.lock().expect("requests lock").push(path.clone());
        let latest = format!("/repos/{OWNER}/{REPO}/releases/latest");
        let listing = format!("/repos/{OWNER}/{REPO}/releases");
        let response = if path == latest {
            Response::from_string(release_json.to_string()).with_header(json_header.clone())
        } else if path == listing || path.starts_with(&format!("{listing}?")) {
            Response::from_string(json!([release_json]).to_string())
                .with_header(json_header.clone())
        } else if path == asset_path {
            Response::from_data(release.bytes.clone()).with_header(
                Header::from_bytes("Content-Type", "application/octet-stream").expect("header"),
            )
        } else {
            Response::from_string("{\"message\":\"Not Found\"}")
                .with_status_code(404)
                .with_header(json_header.clone())
        };
        let _ = request.respond(response);
    }
}

/// A `.tar.gz` holding `lenscap`: a shell script that answers
/// `--version` with `lenscap <version>` like the real binary, so the test
/// can run what was installed.
pub fn archive(version: &str) -> Vec<u8> {
    archive_script(&format!("#!/bin/sh\necho \"lenscap {version}\"\n"))
}

/// A `.tar.gz` whose `lenscap` is the shell script `script`.
pub fn archive_script(script: &str) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(script.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    tar.append_data(&mut header, "lenscap", script.as_bytes())
        .expect("append to tar");
    gzip(tar.into_inner().expect("finish tar"))
}

/// A `.tar.gz` whose `lenscap` is a symbolic link to `target`.
pub fn archive_symlink(target: &Path) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    header.set_mode(0o777);
    tar.append_link(&mut header, "lenscap", target)
        .expect("append a symlink to tar");
    gzip(tar.into_inner().expect("finish tar"))
}

fn gzip(tar: Vec<u8>) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).expect("gzip");
    gz.finish().expect("finish gzip")
}

/// `zipsign sign tar`: the signature covers the bytes and `asset_name`.
pub fn sign(archive: &[u8], key: &SigningKey, asset_name: &str) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    zipsign_api::sign::copy_and_sign_tar(
        &mut Cursor::new(archive),
        &mut out,
        std::slice::from_ref(key),
        Some(asset_name.as_bytes()),
    )
    .expect("sign archive");
    out.into_inner()
}

/// A fresh random signing key.
pub fn new_key() -> SigningKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("random seed");
    SigningKey::from_bytes(&seed)
}

/// `UpdatePublicKey` for `key`.
pub fn public_b64(key: &SigningKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.verifying_key().to_bytes())
}
