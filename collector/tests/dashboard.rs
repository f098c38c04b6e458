//! The dashboard as a browser sees it (no JavaScript: plain GETs and one
//! form POST), and HTTPS with a certificate from files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Collector, Db, Http, chain, host};
use lenscap_collector::config::{Limits, TlsFiles};
use lenscap_collector::store::Role;

fn session_cookie(c: &Collector, token: &str) -> (u16, Option<String>) {
    let mut resp = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .new_agent()
        .post(c.url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .send(format!("token={token}"))
        .unwrap();
    let cookie = resp
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string());
    let _ = resp.body_mut().read_to_string();
    (resp.status().as_u16(), cookie)
}

#[test]
fn dashboard_pages_render_escaped_for_a_signed_in_reader() {
    let db = Db::sqlite();
    let c = Collector::start(&db);
    let evil = host("<script>alert(1)</script>");
    let token = c.enroll(&evil);
    let mut events = chain(&evil, 12);
    events.remove(5); // a real gap
    assert_eq!(c.send(&token, &events).0, 200);
    let reader = c.token(Role::Reader);

    // Not signed in: sent to the sign-in page.
    let (s, headers, _) = c.http.get_with(&c.url("/ui/"), None, &[]);
    assert_eq!(s, 303);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "location" && v == "/ui/login")
    );
    let (s, page) = c.http.get(&c.url("/ui/login"), None);
    assert_eq!(s, 200);
    assert!(page.contains("Reader token"));

    // A host token cannot sign in; a reader can.
    assert_eq!(session_cookie(&c, &token).0, 403);
    assert_eq!(session_cookie(&c, "lc_reader_nope").0, 401);
    let (s, cookie) = session_cookie(&c, &reader);
    assert_eq!(s, 303);
    let cookie = cookie.unwrap();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/ui")
    );
    let session = cookie.split(';').next().unwrap().to_string();

    // The API does not take the cookie.
    let (s, _, _) = c
        .http
        .get_with(&c.url("/api/v1/hosts"), None, &[("cookie", &session)]);
    assert_eq!(s, 401);

    let get = |path: &str| {
        let (s, headers, body) = c.http.get_with(&c.url(path), None, &[("cookie", &session)]);
        assert_eq!(s, 200, "{path}: {body}");
        let csp = headers
            .iter()
            .find(|(k, _)| k == "content-security-policy")
            .unwrap();
        assert!(csp.1.contains("default-src 'none'"));
        assert!(!body.contains("<script>alert"), "{path} did not escape");
        body
    };
    let fleet = get("/ui/fleet");
    assert!(fleet.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(fleet.contains("1 in 1 gap(s)"), "{fleet}");
    let host_page = get("/ui/hosts/1");
    assert!(host_page.contains("Timeline") && host_page.contains("Missing events"));
    assert!(host_page.contains("kill_process"));
    assert!(get("/ui/rules").contains("heuristics (no rule)"));
    assert!(get("/ui/remediations").contains("would do (monitor mode)"));
    let gaps = get("/ui/gaps");
    assert!(gaps.contains("<td>6</td>"), "{gaps}");
    // Paging links carry a cursor; a junk cursor starts from the newest.
    assert!(get("/ui/hosts/1?cursor=junk").contains("Timeline"));
    let (s, _, _) = c
        .http
        .get_with(&c.url("/ui/hosts/99"), None, &[("cookie", &session)]);
    assert_eq!(s, 404);
}

#[test]
fn serves_https_from_pem_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let db = Db::sqlite();
    let c = Collector::start_with(
        &db,
        Limits::default(),
        Some(TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }),
    );
    assert!(c.base.starts_with("https://"));
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    let https = Http::with_tls(Some(&ca));
    let (s, body) = https.get(&c.url("/healthz"), None);
    assert_eq!((s, body.as_str()), (200, "ok\n"));
    // An agent's batch over TLS.
    let h = host("mac-tls");
    let enroll = c.token(Role::Enroll);
    let (s, text) = https.post(
        &c.url("/api/v1/enroll"),
        Some(&enroll),
        "application/json",
        serde_json::to_vec(&serde_json::json!({"host": h, "agent_version": "0.1.0"})).unwrap(),
        false,
    );
    assert_eq!(s, 200, "{text}");
    // Plain HTTP to the TLS port gets nowhere.
    let plain = c.base.replace("https://", "http://");
    let err = ureq::get(format!("{plain}/healthz")).call();
    assert!(err.is_err() || err.unwrap().status() != 200);
}
