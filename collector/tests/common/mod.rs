//! Test harness: a real collector listening on 127.0.0.1:0 in its own
//! runtime, a blocking HTTP client, databases that clean up after
//! themselves, and event chains built with lenscap-events.
//!
//! PostgreSQL tests run when `LENSCAP_TEST_POSTGRES_URL` is set (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`); each gets its own schema,
//! dropped at the end, so they can run in parallel.

#![allow(dead_code)]
// each test binary uses a different part
// A harness whose setup fails should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::Duration;

use lenscap_collector::auth::{new_token, token_hash};
use lenscap_collector::config::{Limits, NetLimits, ServeConfig, TlsFiles};
use lenscap_collector::server::{self, Running};
use lenscap_collector::store::{DbUrl, Role};
use lenscap_events::samples;
use lenscap_events::{Body, Event, Host, Mode, Sha256Hex};
use sqlx::Connection;

pub const PG_ENV: &str = "LENSCAP_TEST_POSTGRES_URL";

/// A database for one test.
pub struct Db {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl Db {
    pub fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("collector.db").display());
        Db {
            url,
            _dir: Some(dir),
            pg: None,
        }
    }

    /// A fresh schema on the test PostgreSQL, or `None` (said on stderr)
    /// when none is configured.
    pub fn postgres(test: &str) -> Option<Db> {
        let Ok(base) = std::env::var(PG_ENV) else {
            eprintln!("SKIPPED {test}: {PG_ENV} is not set, so the PostgreSQL variant did not run");
            return None;
        };
        let mut rnd = [0u8; 6];
        getrandom::fill(&mut rnd).unwrap();
        let schema = format!(
            "lc_{}_{}",
            test.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            hex::encode(rnd)
        );
        pg_exec(&base, &format!("CREATE SCHEMA {schema}"));
        let sep = if base.contains('?') { '&' } else { '?' };
        Some(Db {
            url: format!("{base}{sep}options[search_path]={schema}"),
            _dir: None,
            pg: Some((base, schema)),
        })
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some((base, schema)) = &self.pg {
            pg_exec(base, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        }
    }
}

fn pg_exec(url: &str, sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    });
}

/// A collector serving in the background of a test.
pub struct Collector {
    pub base: String,
    rt: tokio::runtime::Runtime,
    running: Option<Running>,
    pub http: Http,
}

impl Collector {
    pub fn start(db: &Db) -> Collector {
        Collector::start_with(db, Limits::default(), None)
    }

    pub fn start_with(db: &Db, limits: Limits, tls: Option<TlsFiles>) -> Collector {
        Collector::start_config(db, |c| {
            c.limits = limits;
            c.tls = tls;
        })
    }

    /// A collector whose `serve` settings `adjust` changes first.
    pub fn start_config(db: &Db, adjust: impl FnOnce(&mut ServeConfig)) -> Collector {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut config = ServeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            db: DbUrl::parse(&db.url).unwrap(),
            tls: None,
            limits: Limits::default(),
            net: NetLimits::default(),
            public_metrics: false,
            alerts: Default::default(),
        };
        adjust(&mut config);
        let running = rt.block_on(server::start(config)).unwrap();
        Collector {
            base: running.base_url(),
            rt,
            running: Some(running),
            http: Http::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A new token of `role`, made the way `token create` makes one.
    pub fn token(&self, role: Role) -> String {
        let token = new_token(role).unwrap();
        let store = self.running.as_ref().unwrap().store.clone();
        self.rt
            .block_on(store.insert_token(&token_hash(&token), role, None, None, 0))
            .unwrap();
        token
    }

    /// Enroll `host` over HTTP; its host token.
    pub fn enroll(&self, host: &Host) -> String {
        let enroll = self.token(Role::Enroll);
        let body = serde_json::json!({"host": host, "agent_version": "0.1.0"});
        let (status, text) = self.http.post(
            &self.url("/api/v1/enroll"),
            Some(&enroll),
            "application/json",
            body.to_string().into_bytes(),
            false,
        );
        assert_eq!(status, 200, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["token"].as_str().unwrap().to_string()
    }

    /// The collector's store, as `lenscap-collector host …` opens it.
    pub fn store(&self) -> lenscap_collector::store::Store {
        self.running.as_ref().unwrap().store.clone()
    }

    /// Run `f` on the collector's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// `POST /api/v1/enroll` with `enroll_token` for `host`, sending
    /// `key` as the enroll key; (status, parsed body).
    pub fn try_enroll(
        &self,
        enroll_token: &str,
        host: &Host,
        key: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut body = serde_json::json!({"host": host, "agent_version": "0.1.0"});
        if let Some(k) = key {
            body["enroll_key"] = k.into();
        }
        let (status, text) = self.http.post(
            &self.url("/api/v1/enroll"),
            Some(enroll_token),
            "application/json",
            body.to_string().into_bytes(),
            false,
        );
        let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, v)
    }

    /// `lenscap-collector host approve HOST`, as the admin runs it.
    pub fn approve(&self, host: &str) -> String {
        let store = self.store();
        self.rt
            .block_on(lenscap_collector::admin::approve(&store, host, None, 1))
            .unwrap()
    }

    /// Enrol a host whose identity the collector already knows: held,
    /// approved by the admin, then the token.
    pub fn enroll_approved(&self, host: &Host) -> String {
        let enroll = self.token(Role::Enroll);
        let (status, held) = self.try_enroll(&enroll, host, None);
        assert_eq!(status, 409, "{held}");
        self.approve(&held["host_id"].to_string());
        let (status, v) = self.try_enroll(&enroll, host, None);
        assert_eq!(status, 200, "{v}");
        v["token"].as_str().unwrap().to_string()
    }

    /// POST a batch of events; (status, body).
    pub fn send(&self, token: &str, events: &[Event]) -> (u16, String) {
        self.http.post(
            &self.url("/api/v1/events"),
            Some(token),
            "application/json",
            serde_json::to_vec(events).unwrap(),
            false,
        )
    }

    /// GET a JSON route with a token; the parsed body.
    pub fn get_json(&self, path: &str, token: &str) -> serde_json::Value {
        let (status, text) = self.http.get(&self.url(path), Some(token));
        assert_eq!(status, 200, "{path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = self.rt.block_on(r.shutdown());
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A blocking HTTP client that reports every status instead of failing.
pub struct Http {
    agent: ureq::Agent,
}

impl Http {
    pub fn new() -> Http {
        Http::with_tls(None)
    }

    pub fn with_tls(ca_pem: Option<&[u8]>) -> Http {
        // No pooled connections: the collector closes an idle keep-alive
        // connection after its header timeout, and a request sent on one
        // it is closing at that moment fails with "Peer disconnected" (a
        // POST is not retried). A fresh connection per request costs the
        // tests nothing that matters.
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .timeout_global(Some(Duration::from_secs(30)));
        if let Some(pem) = ca_pem {
            let ca = ureq::tls::Certificate::from_pem(pem).unwrap();
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&[ca]))
                    .build(),
            );
        }
        Http {
            agent: config.build().into(),
        }
    }

    pub fn post(
        &self,
        url: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
        gzip: bool,
    ) -> (u16, String) {
        self.send(
            "POST",
            url,
            token,
            &[("content-type", content_type)],
            body,
            gzip,
        )
    }

    pub fn get(&self, url: &str, token: Option<&str>) -> (u16, String) {
        let (status, _, text) = self.get_with(url, token, &[]);
        (status, text)
    }

    /// GET with extra headers; (status, response headers, body).
    pub fn get_with(
        &self,
        url: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, Vec<(String, String)>, String) {
        let mut req = self.agent.get(url);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut resp = req.call().unwrap();
        let hs = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let text = resp
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_string()
            .unwrap_or_default();
        (resp.status().as_u16(), hs, text)
    }

    pub fn send(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        gzip: bool,
    ) -> (u16, String) {
        let mut req = match method {
            "PUT" => self.agent.put(url),
            _ => self.agent.post(url),
        };
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = if gzip {
            req = req.header("content-encoding", "gzip");
            gzip_bytes(&body)
        } else {
            body
        };
        let mut resp = req.send(body).unwrap();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (resp.status().as_u16(), text)
    }
}

pub fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A Mac named `name` with a hardware UUID of its own.
pub fn host(name: &str) -> Host {
    let digest = lenscap_events::canonical::sha256_hex(name.as_bytes()).to_uppercase();
    Host {
        hostname: name.to_string(),
        hardware_uuid: Some(format!(
            "{}-{}-{}-{}-{}",
            &digest[0..8],
            &digest[8..12],
            &digest[12..16],
            &digest[16..20],
            &digest[20..32]
        )),
        serial: Some(format!("SER{}", &digest[32..40])),
        machine_id: None,
    }
}

/// Events 1..=n of `host`, correctly chained: findings (alternating
/// verdicts), remediations and health events.
pub fn chain(host: &Host, n: u64) -> Vec<Event> {
    let t0 = 1_764_312_000_000;
    let mut events: Vec<Event> = (1..=n)
        .map(|seq| {
            let body = match seq % 4 {
                0 => Body::AgentHealth(samples::started()),
                1 => Body::DetectionFinding(Box::new(samples::zoom_finding(
                    lenscap_events::Verdict::Remediate,
                    Some("catalog:zoom-opener"),
                ))),
                2 => Body::DetectionFinding(Box::new(samples::zoom_finding(
                    lenscap_events::Verdict::Report,
                    None,
                ))),
                _ => Body::ProcessRemediation(samples::kill_zoom(seq % 8 == 3)),
            };
            samples::event(host, seq, t0 + seq as i64 * 1000, Mode::Remediate, body)
        })
        .collect();
    samples::link(&mut events, Sha256Hex::genesis());
    events
}

/// (gaps, missing events, chain breaks) of the host called `name`.
pub fn host_health(c: &Collector, reader: &str, name: &str) -> (i64, i64, i64) {
    let hosts = c.get_json("/api/v1/hosts?limit=1000", reader);
    let h = hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["hostname"] == name)
        .unwrap_or_else(|| panic!("no host {name} in {hosts}"));
    (
        h["gaps"].as_i64().unwrap(),
        h["missing_events"].as_i64().unwrap(),
        h["chain_breaks"].as_i64().unwrap(),
    )
}

/// Every event the reader can page through with `query` (no leading `?`).
pub fn all_events(c: &Collector, reader: &str, query: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/events?limit=1000&{query}");
        if let Some(cur) = &cursor {
            path.push_str(&format!("&cursor={cur}"));
        }
        let page = c.get_json(&path, reader);
        out.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return out,
        }
    }
}

/// Generate `#[test]`s running `$check(&Db)` on SQLite and, when
/// configured, PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident => $check:ident;)*) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$check(&$crate::common::Db::sqlite());
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                if let Some(db) = $crate::common::Db::postgres(stringify!($name)) {
                    super::$check(&db);
                }
            })*
        }
    };
}
