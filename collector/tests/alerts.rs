//! Alerts against a real collector and a real webhook receiver (a tiny
//! HTTP server thread on 127.0.0.1), on SQLite and (with
//! LENSCAP_TEST_POSTGRES_URL) PostgreSQL: an incident alerts once per
//! state it reaches, signed so the receiver's HMAC check passes (and fails
//! with the wrong secret); a receiver that is down gets its alerts after
//! it comes back, across a collector restart; below-threshold incidents
//! send nothing; bad URLs and secrets are refused; syslog lines are
//! RFC 5424. `alert_latency` (ignored; run by hand) measures ingest to
//! delivery.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read as _;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Collector, Db, host};
use lenscap_collector::admin::{self, AlertAdd};
use lenscap_collector::alerts::{self, AlertSettings};
use lenscap_events::{Action, Body, Event, Host, Mode, Severity, Sha256Hex, Verdict, samples};

on_both_databases! {
    an_incident_alerts_once_per_state_signed => alerts_once_per_state_signed;
    alerts_wait_for_a_receiver_across_a_restart => alerts_wait_across_restart;
    below_threshold_sends_nothing => below_threshold_sends_nothing;
    alerts_go_dead_after_max_attempts => alerts_go_dead;
    syslog_receiver_gets_rfc5424 => syslog_receiver_gets_rfc5424;
    syslog_over_tls_checks_the_receiver => syslog_over_tls;
    an_https_webhook_behind_a_private_ca => webhook_over_https_with_own_ca;
    destinations_filter_by_verdict_and_kind => filters_by_verdict_and_kind;
    a_rebuild_never_hands_out_an_alerted_incident_id => rebuild_keeps_ids_fresh;
}

const SECRET: &str = "test-secret-0123456789";
const BUNDLE: &str = "/Users/jdoe/.zoomus/ZoomOpener.app";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Got {
    signature: String,
    alert_id: String,
    body: String,
    at_ms: i64,
}

impl Got {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// A webhook receiver on 127.0.0.1 answering 200 to every POST while up,
/// 503 while down (an outage; its port stays taken, so no other test's
/// listener can get it).
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
    up: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start(addr: &str) -> Receiver {
        Receiver::start_as(addr, true)
    }

    fn start_as(addr: &str, up: bool) -> Receiver {
        let server = Arc::new(tiny_http::Server::http(addr).unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let up = Arc::new(AtomicBool::new(up));
        let refused = Arc::new(AtomicUsize::new(0));
        let (s, g, u, f) = (server.clone(), got.clone(), up.clone(), refused.clone());
        let thread = std::thread::spawn(move || {
            for mut req in s.incoming_requests() {
                // Only the collector's POSTs: this machine's other tests
                // run lenscap agents, which probe loopback listeners.
                if *req.method() != tiny_http::Method::Post || req.url() != "/hook" {
                    let _ = req.respond(tiny_http::Response::empty(404));
                    continue;
                }
                if !u.load(Ordering::SeqCst) {
                    f.fetch_add(1, Ordering::SeqCst);
                    let _ = req.respond(tiny_http::Response::empty(503));
                    continue;
                }
                let header = |name: &str| {
                    req.headers()
                        .iter()
                        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
                        .map(|h| h.value.as_str().to_string())
                        .unwrap_or_default()
                };
                let signature = header(alerts::SIGNATURE_HEADER);
                let alert_id = header(alerts::ID_HEADER);
                let mut body = String::new();
                req.as_reader().read_to_string(&mut body).unwrap();
                g.lock().unwrap().push(Got {
                    signature,
                    alert_id,
                    body,
                    at_ms: lenscap_collector::timefmt::now_ms(),
                });
                let _ = req.respond(tiny_http::Response::empty(200));
            }
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            got,
            up,
            refused,
            server,
            thread: Some(thread),
        }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Wait until `n` requests arrived (or fail after 20 s).
    fn wait_for(&self, n: usize) -> Vec<Got> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} alerts arrived: {got:#?}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn add_webhook(
    c: &Collector,
    name: &str,
    url: &str,
    min: &str,
) -> Result<String, admin::AdminError> {
    let store = c.store();
    c.block_on(admin::alert_add(
        &store,
        AlertAdd {
            name: name.into(),
            webhook: Some(url.into()),
            secret: Some(SECRET.into()),
            min_severity: min.into(),
            ..AlertAdd::default()
        },
        1,
    ))
}

fn finding(severity: Severity) -> Body {
    let mut f = samples::zoom_finding(Verdict::Remediate, Some("catalog:zoom-opener"));
    f.finding.severity = severity;
    Body::DetectionFinding(Box::new(f))
}

fn step(action: Action) -> Body {
    let mut k = samples::kill_zoom(false);
    k.action = action;
    k.finding_uid = None;
    k.command_uid = Some("plan-1".into());
    k.target.path = Some(BUNDLE.into());
    Body::ProcessRemediation(k)
}

/// A host's chain, sent in pieces.
struct Agent {
    host: Host,
    token: String,
    seq: u64,
    prev: Sha256Hex,
}

impl Agent {
    fn new(c: &Collector, name: &str) -> Agent {
        let host = host(name);
        let token = c.enroll(&host);
        Agent {
            host,
            token,
            seq: 0,
            prev: Sha256Hex::genesis(),
        }
    }

    fn send(&mut self, c: &Collector, bodies: Vec<Body>) {
        let t0 = 1_764_312_000_000;
        let mut events: Vec<Event> = bodies
            .into_iter()
            .map(|b| {
                self.seq += 1;
                samples::event(
                    &self.host,
                    self.seq,
                    t0 + self.seq as i64 * 1000,
                    Mode::Remediate,
                    b,
                )
            })
            .collect();
        self.prev = samples::link(&mut events, self.prev.clone());
        let (status, text) = c.send(&self.token, &events);
        assert_eq!(status, 200, "{text}");
    }
}

fn now_s() -> i64 {
    lenscap_collector::timefmt::now_ms() / 1000
}

fn settle(c: &Collector) {
    let store = c.store();
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.block_on(store.incidents_pending()).unwrap() > 0 {
        assert!(Instant::now() < deadline, "events never grouped");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn alerts_once_per_state_signed(db: &Db) {
    let c = Collector::start(db);
    let r = Receiver::start("127.0.0.1:0");
    add_webhook(&c, "siem", &r.url, "high").unwrap();
    let mut a = Agent::new(&c, "mac-alerts");

    // A critical finding: a new incident, open.
    a.send(
        &c,
        vec![
            Body::AgentHealth(samples::started()),
            finding(Severity::Critical),
        ],
    );
    let got = r.wait_for(1);
    assert_eq!(got.len(), 1, "{got:#?}");
    let open = got[0].json();
    assert_eq!(open["type"], "incident");
    assert_eq!(open["incident"]["state"], "open");
    assert_eq!(open["incident"]["severity"], "critical");
    assert_eq!(open["incident"]["hostname"], "mac-alerts");
    assert_eq!(open["event"]["seq"], 2, "{open}");
    // The receiver's check: right secret passes, anything else fails.
    let body = got[0].body.as_bytes();
    assert!(
        alerts::verify(SECRET, &got[0].signature, body, now_s(), 300),
        "{}",
        got[0].signature
    );
    assert!(!alerts::verify(
        "another-secret-0123",
        &got[0].signature,
        body,
        now_s(),
        300
    ));
    let mut tampered = got[0].body.clone();
    tampered = tampered.replacen("critical", "low", 1);
    assert!(!alerts::verify(
        SECRET,
        &got[0].signature,
        tampered.as_bytes(),
        now_s(),
        300
    ));
    // Replayed ten minutes later, it is refused.
    assert!(!alerts::verify(
        SECRET,
        &got[0].signature,
        body,
        now_s() + 600,
        300
    ));

    // Two steps done: contained, one alert for both steps.
    a.send(&c, vec![step(Action::StopJob), step(Action::KillProcess)]);
    let got = r.wait_for(2);
    let contained = got[1].json();
    assert_eq!(contained["incident"]["state"], "contained", "{contained}");
    assert_eq!(contained["incident"]["id"], open["incident"]["id"]);
    // The incident as the step that contained it left it, with that step.
    assert_eq!(contained["incident"]["steps_done"], 1);
    assert_eq!(
        contained["event"]["payload"]["action"], "stop_job",
        "{contained}"
    );
    assert_ne!(got[0].alert_id, got[1].alert_id);
    assert!(alerts::verify(
        SECRET,
        &got[1].signature,
        got[1].body.as_bytes(),
        now_s(),
        300
    ));

    // More events in the same state, and the same events again: nothing.
    a.send(
        &c,
        vec![
            step(Action::GuardPath),
            Body::AgentHealth(samples::started()),
        ],
    );
    settle(&c);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(r.got().len(), 2, "{:#?}", r.got());

    let store = c.store();
    let counts = c.block_on(store.alert_counts()).unwrap();
    assert_eq!((counts.pending, counts.sent, counts.dead), (0, 2, 0));
    // /metrics shows what this collector sent and the shared queue.
    let reader = c.token(lenscap_collector::store::Role::Reader);
    let (status, text) = c.http.get(&c.url("/metrics"), Some(&reader));
    assert_eq!(status, 200);
    assert!(
        text.contains("lenscap_collector_alerts_sent_total 2"),
        "{text}"
    );
    assert!(
        text.contains("lenscap_collector_alert_queue{status=\"pending\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("lenscap_collector_alert_queue{status=\"sent\"} 2"),
        "{text}"
    );
    // `alert list` shows it.
    let list = c.block_on(admin::alert_list(&store)).unwrap();
    assert!(list.contains("siem\twebhook"), "{list}");
    assert!(list.contains("0 pending, 2 sent, 0 dead"), "{list}");
    // `alert test` sends one now, outside the queue.
    let said = c.block_on(admin::alert_test(&store, "siem", 5)).unwrap();
    assert!(said.contains("delivered"), "{said}");
    let got = r.wait_for(3);
    assert_eq!(got[2].json()["type"], "test");
    assert!(alerts::verify(
        SECRET,
        &got[2].signature,
        got[2].body.as_bytes(),
        now_s(),
        300
    ));
    // And `alert remove` takes it away with its alerts.
    c.block_on(admin::alert_remove(&store, "siem")).unwrap();
    assert!(matches!(
        c.block_on(admin::alert_remove(&store, "siem")),
        Err(admin::AdminError::NoAlert(_))
    ));
    c.stop();
}

/// A dashboard page as a signed-in reader sees it.
fn dashboard_page(c: &Collector, reader: &str, path: &str) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let resp = agent
        .post(c.url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .send(format!("token={reader}"))
        .unwrap();
    let cookie = resp.headers().get("set-cookie").unwrap().to_str().unwrap();
    let session = cookie.split(';').next().unwrap().to_string();
    let (status, _, body) = c.http.get_with(&c.url(path), None, &[("cookie", &session)]);
    assert_eq!(status, 200, "{body}");
    body
}

fn fast_retries(c: &mut lenscap_collector::config::ServeConfig) {
    c.alerts = AlertSettings {
        backoff_first: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        max_attempts: 1000,
    };
}

fn alerts_wait_across_restart(db: &Db) {
    // The receiver is down (answers 503) through the first collector's life.
    let r = Receiver::start_as("127.0.0.1:0", false);
    let c = Collector::start_config(db, fast_retries);
    add_webhook(&c, "down", &r.url, "high").unwrap();
    let mut a = Agent::new(&c, "mac-down");
    a.send(&c, vec![finding(Severity::Critical)]);
    a.send(&c, vec![step(Action::KillProcess)]);
    // Both alerts fail a few times while it is down.
    let store = c.store();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let queued = c.block_on(store.alerts(Some("pending"), 10)).unwrap();
        if queued.len() == 2 && queued.iter().all(|q| q.attempts >= 2) {
            let error = queued[0].last_error.clone().unwrap();
            assert!(error.contains("503"), "{error}");
            break;
        }
        assert!(Instant::now() < deadline, "{queued:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The collector stops with them undelivered; the receiver comes back.
    c.stop();
    assert!(r.got().is_empty());
    assert!(r.refused.load(Ordering::SeqCst) >= 4);
    r.up.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(500));
    assert!(r.got().is_empty(), "nothing sends while no collector runs");
    // A new collector on the same database delivers both, each once.
    let c = Collector::start_config(db, fast_retries);
    let got = r.wait_for(2);
    let mut states: Vec<String> = got
        .iter()
        .map(|g| g.json()["incident"]["state"].as_str().unwrap().to_string())
        .collect();
    states.sort();
    assert_eq!(states, ["contained", "open"]);
    for g in &got {
        assert!(alerts::verify(
            SECRET,
            &g.signature,
            g.body.as_bytes(),
            now_s(),
            300
        ));
    }
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(r.got().len(), 2);
    let counts = c.block_on(c.store().alert_counts()).unwrap();
    assert_eq!((counts.pending, counts.sent, counts.dead), (0, 2, 0));
    c.stop();
}

fn below_threshold_sends_nothing(db: &Db) {
    let c = Collector::start(db);
    let r = Receiver::start("127.0.0.1:0");
    add_webhook(&c, "critical-only", &r.url, "critical").unwrap();
    let mut a = Agent::new(&c, "mac-quiet");
    a.send(&c, vec![finding(Severity::High), step(Action::KillProcess)]);
    settle(&c);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(r.got().is_empty(), "{:#?}", r.got());
    let counts = c.block_on(c.store().alert_counts()).unwrap();
    assert_eq!((counts.pending, counts.sent, counts.dead), (0, 0, 0));

    // Only some states: a destination for `contained` hears nothing of
    // an incident that is only open.
    let store = c.store();
    c.block_on(admin::alert_add(
        &store,
        AlertAdd {
            name: "contained-only".into(),
            webhook: Some(r.url.clone()),
            min_severity: "info".into(),
            states: "contained".into(),
            ..AlertAdd::default()
        },
        1,
    ))
    .unwrap();
    // Filters by rule and by host: another rule's or another Mac's
    // destination hears nothing; this Mac's hears its incident only.
    let others = Receiver::start("127.0.0.1:0");
    let mine = Receiver::start("127.0.0.1:0");
    for (name, url, rule, host) in [
        ("other-rule", &others.url, Some("catalog:other"), None),
        ("other-host", &others.url, None, Some("mac-elsewhere")),
        (
            "this-host",
            &mine.url,
            Some("catalog:zoom-opener"),
            Some("mac-open"),
        ),
    ] {
        c.block_on(admin::alert_add(
            &store,
            AlertAdd {
                name: name.into(),
                webhook: Some(url.clone()),
                min_severity: "info".into(),
                rule: rule.map(str::to_string),
                host: host.map(str::to_string),
                ..AlertAdd::default()
            },
            1,
        ))
        .unwrap();
    }
    let mut b = Agent::new(&c, "mac-open");
    b.send(&c, vec![finding(Severity::High)]);
    settle(&c);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(r.got().is_empty(), "{:#?}", r.got());
    b.send(&c, vec![step(Action::KillProcess)]);
    let got = r.wait_for(1);
    assert_eq!(got[0].json()["incident"]["state"], "contained");
    let got = mine.wait_for(2);
    assert_eq!(got[0].json()["incident"]["state"], "open");
    assert_eq!(got[1].json()["incident"]["state"], "contained");
    assert!(
        got.iter()
            .all(|g| g.json()["incident"]["hostname"] == "mac-open")
    );
    settle(&c);
    std::thread::sleep(Duration::from_millis(800));
    assert!(others.got().is_empty(), "{:#?}", others.got());
    assert_eq!(mine.got().len(), 2);

    // Bad destinations are refused with a reason.
    let err = add_webhook(&c, "x", "ftp://127.0.0.1/", "high")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a usable webhook URL"), "{err}");
    let err = add_webhook(&c, "x", "http://siem.example/hook", "high")
        .unwrap_err()
        .to_string();
    assert!(err.contains("use https"), "{err}");
    let err = add_webhook(&c, "x", &r.url, "urgent")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown severity"), "{err}");
    let err = c
        .block_on(admin::alert_add(
            &store,
            AlertAdd {
                name: "x".into(),
                webhook: Some(r.url.clone()),
                secret: Some("short".into()),
                min_severity: "high".into(),
                ..AlertAdd::default()
            },
            1,
        ))
        .unwrap_err()
        .to_string();
    assert!(err.contains("secret is too short"), "{err}");
    let err = add_webhook(&c, "critical-only", &r.url, "high")
        .unwrap_err()
        .to_string();
    assert!(err.contains("exists already"), "{err}");
    // Without --secret one is made, long enough, and shown once.
    let said = c
        .block_on(admin::alert_add(
            &store,
            AlertAdd {
                name: "made".into(),
                webhook: Some(r.url.clone()),
                min_severity: "high".into(),
                ..AlertAdd::default()
            },
            1,
        ))
        .unwrap();
    let secret = said.rsplit(' ').next().unwrap();
    assert_eq!(secret.len(), 64, "{said}");
    // A test to a URL nobody answers says so.
    let down = Receiver::start_as("127.0.0.1:0", false);
    add_webhook(&c, "nobody", &down.url, "high").unwrap();
    let err = c
        .block_on(admin::alert_test(&store, "nobody", 1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not delivered"), "{err}");
    assert!(err.contains("HTTP 503"), "{err}");
    c.stop();
}

fn alerts_go_dead(db: &Db) {
    let down = Receiver::start_as("127.0.0.1:0", false);
    let url = down.url.clone();
    let c = Collector::start_config(db, |cfg| {
        cfg.alerts = AlertSettings {
            backoff_first: Duration::from_millis(50),
            backoff_max: Duration::from_millis(100),
            max_attempts: 3,
        };
    });
    add_webhook(&c, "gone", &url, "high").unwrap();
    let mut a = Agent::new(&c, "mac-dead");
    a.send(&c, vec![finding(Severity::Critical)]);
    let store = c.store();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let dead = c.block_on(store.alerts(Some("dead"), 10)).unwrap();
        if let Some(d) = dead.first() {
            assert_eq!(d.attempts, 3);
            assert!(d.last_error.is_some());
            break;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let list = c.block_on(admin::alert_list(&store)).unwrap();
    assert!(list.contains("0 pending, 0 sent, 1 dead"), "{list}");
    assert!(list.contains("\ndead "), "{list}");
    let reader = c.token(lenscap_collector::store::Role::Reader);
    let (_, text) = c.http.get(&c.url("/metrics"), Some(&reader));
    assert!(
        text.contains("lenscap_collector_alerts_dead_total 1"),
        "{text}"
    );
    assert!(
        text.contains("lenscap_collector_alert_queue{status=\"dead\"} 1"),
        "{text}"
    );
    // The API lists the dead letter, and never a secret.
    let v = c.get_json("/api/v1/alerts?status=dead", &reader);
    assert_eq!(v["counts"]["dead"], 1, "{v}");
    assert_eq!(v["alerts"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["alerts"][0]["status"], "dead");
    assert_eq!(v["alerts"][0]["attempts"], 3);
    assert!(
        v["alerts"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("503"),
        "{v}"
    );
    assert_eq!(v["destinations"][0]["name"], "gone");
    assert!(!v.to_string().contains(SECRET), "{v}");
    let (status, _) = c
        .http
        .get(&c.url("/api/v1/alerts?status=lost"), Some(&reader));
    assert_eq!(status, 400);
    // So does the dashboard's Alerts page.
    let (status, html) = c.http.get(&c.url("/ui/alerts"), None);
    assert_eq!(status, 303, "{html}");
    let page = dashboard_page(&c, &reader, "/ui/alerts");
    assert!(page.contains("<h2>Dead letters</h2>"), "{page}");
    assert!(page.contains("the receiver answered HTTP 503"), "{page}");
    assert!(page.contains("0 pending, 0 sent, 1 dead"), "{page}");
    // `alert retry` puts it back in the queue.
    let said = c.block_on(admin::alert_retry(&store, 1)).unwrap();
    assert!(said.starts_with("1 "), "{said}");
    c.stop();
}

fn syslog_receiver_gets_rfc5424(db: &Db) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let l = lines.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut data = String::new();
            let _ = conn.read_to_string(&mut data);
            // Only syslog frames: agents probing loopback listeners (this
            // machine's other tests) send HTTP here.
            if data.contains(" lenscap-collector ") {
                l.lock().unwrap().push(data);
            }
        }
    });
    let c = Collector::start(db);
    let store = c.store();
    c.block_on(admin::alert_add(
        &store,
        AlertAdd {
            name: "siem-syslog".into(),
            syslog: Some(format!("tcp://127.0.0.1:{port}")),
            min_severity: "high".into(),
            ..AlertAdd::default()
        },
        1,
    ))
    .unwrap();
    let mut a = Agent::new(&c, "mac-syslog");
    a.send(&c, vec![finding(Severity::Critical)]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let framed = loop {
        if let Some(l) = lines.lock().unwrap().first() {
            break l.clone();
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    };
    check_rfc5424(&framed, "mac-syslog");
    c.stop();
}

/// One octet-counted syslog frame holding an RFC 5424 message about the
/// ZoomOpener incident on `hostname`, field by field.
fn check_rfc5424(framed: &str, hostname: &str) {
    // Octet counting: "LEN SP MSG", LEN the message's bytes.
    let (len, msg) = framed.split_once(' ').unwrap();
    assert_eq!(len.parse::<usize>().unwrap(), msg.len(), "{framed}");
    // RFC 5424: <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP
    // PROCID SP MSGID SP STRUCTURED-DATA SP MSG.
    let parts: Vec<&str> = msg.splitn(7, ' ').collect();
    assert_eq!(parts[0], "<34>1", "{msg}"); // auth (4) * 8 + critical (2)
    assert!(
        time::OffsetDateTime::parse(parts[1], &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "{msg}"
    );
    assert_eq!(parts[2], hostname);
    assert_eq!(parts[3], "lenscap-collector");
    assert_eq!(parts[4], "-");
    assert_eq!(parts[5], "incident");
    assert!(parts[6].starts_with("[lenscap@32473 alert=\""), "{msg}");
    assert!(
        parts[6].contains(" state=\"open\" severity=\"critical\"] \u{feff}"),
        "{msg}"
    );
    assert!(
        parts[6].ends_with("\u{feff}ZoomOpener, a hidden web server on 127.0.0.1:19421, open"),
        "{msg}"
    );
}

/// Syslog over TLS (RFC 5425): a receiver on loopback with a certificate
/// from a private CA gets the same octet-counted RFC 5424 frame inside TLS
/// when the destination names that CA (`--ca`); a destination that trusts
/// only the public web roots refuses the same receiver, and the alert
/// waits with the reason.
fn syslog_over_tls(db: &Db) {
    let (ca_pem, server_config) = private_ca_server();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let handshakes_failed = Arc::new(AtomicUsize::new(0));
    let (l, failed) = (lines.clone(), handshakes_failed.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut sock) = conn else { return };
            let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
            let tls = rustls::ServerConnection::new(server_config.clone()).unwrap();
            let mut stream = rustls::StreamOwned::new(tls, &mut sock);
            let mut data = String::new();
            match stream.read_to_string(&mut data) {
                Ok(_) if data.contains(" lenscap-collector ") => l.lock().unwrap().push(data),
                Ok(_) => {}
                Err(_) => {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    });
    let c = Collector::start(db);
    let store = c.store();
    let add = |name: &str, ca: Option<&str>| {
        c.block_on(admin::alert_add(
            &store,
            AlertAdd {
                name: name.into(),
                syslog: Some(format!("tls://127.0.0.1:{port}")),
                ca_pem: ca.map(str::to_string),
                min_severity: "high".into(),
                ..AlertAdd::default()
            },
            1,
        ))
    };
    let said = add("siem-tls", Some(&ca_pem)).unwrap();
    assert!(said.contains("checked against the given CA"), "{said}");
    add("siem-tls-public-roots", None).unwrap();
    let mut a = Agent::new(&c, "mac-tls");
    a.send(&c, vec![finding(Severity::Critical)]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let framed = loop {
        if let Some(l) = lines.lock().unwrap().first() {
            break l.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no TLS syslog frame arrived: {:#?}",
            c.block_on(store.alerts(None, 10))
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    check_rfc5424(&framed, "mac-tls");
    // The destination trusting only public roots did not send it.
    let error = refused_with(&c, "siem-tls-public-roots");
    assert!(error.contains("certificate"), "{error}");
    assert_eq!(lines.lock().unwrap().len(), 1);
    assert!(handshakes_failed.load(Ordering::SeqCst) >= 1);

    // What `alert add` refuses: --ca without tls://, a file without a
    // certificate.
    let err = c
        .block_on(admin::alert_add(
            &store,
            AlertAdd {
                name: "plain-with-ca".into(),
                syslog: Some(format!("tcp://127.0.0.1:{port}")),
                ca_pem: Some(ca_pem.clone()),
                min_severity: "high".into(),
                ..AlertAdd::default()
            },
            1,
        ))
        .unwrap_err();
    assert!(err.to_string().contains("tls://"), "{err}");
    let err = add("bad-ca", Some("not a certificate")).unwrap_err();
    assert!(err.to_string().contains("no usable certificate"), "{err}");
    c.stop();
}

/// The private CA's PEM and a TLS server config with its certificate for
/// `localhost` and 127.0.0.1 (tests/fixtures/tls).
fn private_ca_server() -> (String, Arc<rustls::ServerConfig>) {
    use rustls_pki_types::pem::PemObject as _;
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let ca_pem = std::fs::read_to_string(fixtures.join("ca.pem")).unwrap();
    let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(fixtures.join("cert.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(fixtures.join("key.pem")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    (ca_pem, Arc::new(config))
}

/// Wait until the destination `name`'s alert failed and waits to be
/// retried; its reason.
fn refused_with(c: &Collector, name: &str) -> String {
    let store = c.store();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let alerts = c.block_on(store.alerts(None, 10)).unwrap();
        if let Some(a) = alerts
            .iter()
            .find(|a| a.destination == name && a.last_error.is_some())
        {
            assert_eq!(a.status, "pending", "{a:?}");
            return a.last_error.clone().unwrap();
        }
        assert!(Instant::now() < deadline, "{alerts:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An https webhook receiver behind a private CA (a company chat or
/// paging server): the destination that names the CA (`--ca`) delivers a
/// signed alert over TLS; one that trusts only the public web roots
/// refuses the receiver's certificate and the alert waits with the
/// reason; `--ca` with a plain http webhook is refused.
fn webhook_over_https_with_own_ca(db: &Db) {
    let (ca_pem, server_config) = private_ca_server();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let handshakes_failed = Arc::new(AtomicUsize::new(0));
    let (b, failed) = (bodies.clone(), handshakes_failed.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut sock) = conn else { return };
            let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
            let tls = rustls::ServerConnection::new(server_config.clone()).unwrap();
            let mut stream = rustls::StreamOwned::new(tls, &mut sock);
            // One HTTP/1.1 request: headers, then Content-Length bytes.
            let mut data = Vec::new();
            let mut buf = [0u8; 4096];
            let request = loop {
                match std::io::Read::read(&mut stream, &mut buf) {
                    Ok(0) => break None,
                    Ok(n) => data.extend_from_slice(&buf[..n]),
                    Err(_) => {
                        failed.fetch_add(1, Ordering::SeqCst);
                        break None;
                    }
                }
                let text = String::from_utf8_lossy(&data).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break Some((head.to_string(), body.to_string()));
                    }
                }
            };
            let Some((head, body)) = request else {
                continue;
            };
            if !head.starts_with("POST /hook ") {
                continue;
            }
            let signature = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case(alerts::SIGNATURE_HEADER)
                        .then(|| v.trim().to_string())
                })
                .unwrap_or_default();
            b.lock().unwrap().push((signature, body));
            let _ = std::io::Write::write_all(
                &mut stream,
                b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
            stream.conn.send_close_notify();
            let _ = std::io::Write::flush(&mut stream);
        }
    });
    let c = Collector::start(db);
    let store = c.store();
    let add = |name: &str, url: String, ca: Option<&str>| {
        c.block_on(admin::alert_add(
            &store,
            AlertAdd {
                name: name.into(),
                webhook: Some(url),
                secret: Some(SECRET.into()),
                ca_pem: ca.map(str::to_string),
                min_severity: "high".into(),
                ..AlertAdd::default()
            },
            1,
        ))
    };
    let url = format!("https://127.0.0.1:{port}/hook");
    let said = add("pager-internal", url.clone(), Some(&ca_pem)).unwrap();
    assert!(said.contains("checked against the given CA"), "{said}");
    add("pager-public-roots", url, None).unwrap();
    let mut a = Agent::new(&c, "mac-https");
    a.send(&c, vec![finding(Severity::Critical)]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let (signature, body) = loop {
        if let Some(got) = bodies.lock().unwrap().first() {
            break got.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no alert arrived over https: {:#?}",
            c.block_on(store.alerts(None, 10))
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        alerts::verify(SECRET, &signature, body.as_bytes(), now_s(), 300),
        "{signature}"
    );
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["incident"]["hostname"], "mac-https", "{json}");
    // The destination trusting only public roots did not deliver.
    let error = refused_with(&c, "pager-public-roots");
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    assert_eq!(bodies.lock().unwrap().len(), 1);
    assert!(handshakes_failed.load(Ordering::SeqCst) >= 1);
    // --ca means nothing to a plain http webhook: refused.
    let err = add(
        "plain-with-ca",
        format!("http://127.0.0.1:{port}/hook"),
        Some(&ca_pem),
    )
    .unwrap_err();
    assert!(err.to_string().contains("https"), "{err}");
    c.stop();
}

/// `--verdict` and `--kind` narrow a destination: a remediated helper's
/// listener incident alerts the destinations asking for `remediate` or
/// `listener`; a camera session a web page started through a helper
/// (verdict report, kind camera_use) alerts those asking for `report` or
/// `camera_use`; neither alerts the others. Unknown values are refused.
fn filters_by_verdict_and_kind(db: &Db) {
    let c = Collector::start(db);
    let r = Receiver::start("127.0.0.1:0");
    let store = c.store();
    for (name, verdict, kind) in [
        ("v-remediate", Some("remediate"), None),
        ("v-report", Some("report"), None),
        ("k-listener", None, Some("listener")),
        ("k-camera", None, Some("camera_use,camera_grant")),
        ("both-mismatch", Some("remediate"), Some("camera_use")),
    ] {
        c.block_on(admin::alert_add(
            &store,
            AlertAdd {
                name: name.into(),
                webhook: Some(r.url.clone()),
                secret: Some(SECRET.into()),
                min_severity: "info".into(),
                states: "open".into(),
                verdict: verdict.map(str::to_string),
                finding_kind: kind.map(str::to_string),
                ..AlertAdd::default()
            },
            1,
        ))
        .unwrap();
    }
    let mut helper = Agent::new(&c, "mac-filter-helper");
    helper.send(&c, vec![finding(Severity::Critical)]);
    let mut camera = Agent::new(&c, "mac-filter-camera");
    camera.send(
        &c,
        vec![Body::DetectionFinding(Box::new(samples::camera_incident()))],
    );
    r.wait_for(4);
    settle(&c);
    std::thread::sleep(Duration::from_millis(800));
    let alerts = c.block_on(store.alerts(None, 100)).unwrap();
    let mut got: Vec<(String, String)> = alerts
        .iter()
        .map(|a| {
            let body: serde_json::Value = serde_json::from_str(&a.body).unwrap();
            (
                a.destination.clone(),
                body["incident"]["hostname"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let want: Vec<(String, String)> = [
        ("k-camera", "mac-filter-camera"),
        ("k-listener", "mac-filter-helper"),
        ("v-remediate", "mac-filter-helper"),
        ("v-report", "mac-filter-camera"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want);
    assert_eq!(r.got().len(), 4);
    for (verdict, kind, says) in [
        (Some("maybe"), None, "unknown verdict \"maybe\""),
        (None, Some("sockets"), "unknown finding kind \"sockets\""),
    ] {
        let err = c
            .block_on(admin::alert_add(
                &store,
                AlertAdd {
                    name: "bad".into(),
                    webhook: Some(r.url.clone()),
                    min_severity: "info".into(),
                    verdict: verdict.map(str::to_string),
                    finding_kind: kind.map(str::to_string),
                    ..AlertAdd::default()
                },
                1,
            ))
            .unwrap_err();
        assert!(err.to_string().starts_with(says), "{err}");
    }
    c.stop();
}

/// Two collectors on one PostgreSQL, both grouping and sending: every
/// alert arrives, and once.
#[test]
fn two_collectors_on_one_postgres_send_each_alert_once() {
    let Some(db) = Db::postgres("two_collectors_alerts") else {
        return;
    };
    let a = Collector::start(&db);
    let b = Collector::start(&db);
    let r = Receiver::start("127.0.0.1:0");
    add_webhook(&a, "shared", &r.url, "high").unwrap();
    let n = 40;
    for i in 0..n {
        // Hosts send to either collector.
        let c = if i % 2 == 0 { &a } else { &b };
        let mut agent = Agent::new(c, &format!("mac-shared-{i}"));
        agent.send(c, vec![finding(Severity::Critical)]);
    }
    r.wait_for(n);
    std::thread::sleep(Duration::from_millis(1500));
    let got = r.got();
    let ids: std::collections::HashSet<&str> = got.iter().map(|g| g.alert_id.as_str()).collect();
    assert_eq!(ids.len(), n, "{got:#?}");
    assert_eq!(got.len(), n, "an alert arrived twice");
    a.stop();
    b.stop();
}

/// Ingest to delivery, over `ALERT_LATENCY_N` incidents (default 300),
/// each its own host's critical finding sent as its own batch, the
/// receiver on loopback. Prints p50/p95. Run by hand:
/// `cargo test --release -p lenscap-collector --test alerts -- --ignored --nocapture alert_latency`.
#[test]
#[ignore]
fn alert_latency() {
    let n: usize = std::env::var("ALERT_LATENCY_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let db = match std::env::var("ALERT_LATENCY_DB").as_deref() {
        Ok("postgres") => Db::postgres("alert_latency").unwrap(),
        _ => Db::sqlite(),
    };
    let c = Collector::start(&db);
    let r = Receiver::start("127.0.0.1:0");
    add_webhook(&c, "bench", &r.url, "high").unwrap();
    let agents: Vec<Agent> = (0..n)
        .map(|i| Agent::new(&c, &format!("mac-{i}")))
        .collect();
    let mut sent_at = std::collections::HashMap::new();
    for (i, mut a) in agents.into_iter().enumerate() {
        let t = lenscap_collector::timefmt::now_ms();
        a.send(&c, vec![finding(Severity::Critical)]);
        sent_at.insert(format!("mac-{i}"), t);
        // About 20 incidents a second, as a busy fleet's worst hour
        // would not reach.
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = r.wait_for(n);
    let mut lat: Vec<i64> = got
        .iter()
        .map(|g| g.at_ms - sent_at[g.json()["incident"]["hostname"].as_str().unwrap()])
        .collect();
    lat.sort_unstable();
    let p = |q: f64| lat[((lat.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    println!(
        "alert latency over {n} incidents ({}): p50 {} ms, p95 {} ms, max {} ms",
        c.store().backend(),
        p(0.50),
        p(0.95),
        lat[lat.len() - 1]
    );
    c.stop();
}

/// Run one statement on the test's database, beside the collector.
fn exec_sql(db: &Db, sql: &str) {
    use sqlx::Connection as _;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if db.url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
                .execute(&mut conn)
                .await
                .unwrap();
        } else {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    });
}

/// `incidents rebuild` empties the incidents table. An alert queued for a
/// former incident (here: one whose id is one above the incident that
/// exists, as after an earlier rebuild grouped fewer incidents) must not
/// keep a new incident that is given that id from alerting: SQLite would
/// hand out the largest id in the table plus one again.
fn rebuild_keeps_ids_fresh(db: &Db) {
    let c = Collector::start(db);
    let r = Receiver::start("127.0.0.1:0");
    add_webhook(&c, "siem", &r.url, "high").unwrap();
    let mut a = Agent::new(&c, "mac-rebuild-a");
    a.send(&c, vec![finding(Severity::Critical)]);
    assert_eq!(r.wait_for(1).len(), 1);
    settle(&c);
    // An alert of a former incident, the id after the one that exists.
    exec_sql(
        db,
        "INSERT INTO alert_queue (destination_id, incident_id, state, event_id, body, queued_at,
                                  status, attempts, next_attempt, last_error, sent_at)
         SELECT destination_id, incident_id + 1, state, event_id, body, queued_at,
                status, attempts, next_attempt, last_error, sent_at FROM alert_queue",
    );
    c.block_on(c.store().rebuild_incidents()).unwrap();
    settle(&c);
    // Regrouped events alert nobody again; a new host's critical finding
    // is a new incident, and it alerts.
    let mut b = Agent::new(&c, "mac-rebuild-b");
    b.send(&c, vec![finding(Severity::Critical)]);
    let got = r.wait_for(2);
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(
        got[1].json()["incident"]["hostname"],
        "mac-rebuild-b",
        "{:#}",
        got[1].json()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(r.wait_for(2).len(), 2, "the rebuild alerted again");
}
