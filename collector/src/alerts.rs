//! Alerts out: telling a webhook or a syslog receiver when an incident
//! appears or changes state, so nobody has to watch the dashboard.
//!
//! **What alerts.** The grouper (`store/incidents.rs`) queues one alert
//! per destination each time an incident starts, changes state or gets
//! worse, if its severity is at least the destination's minimum and its
//! state is one the destination asked for. The queue's unique
//! (destination, incident, state) key makes that one alert per incident
//! state, however many events it took to get there.
//!
//! **Durable, at least once.** The queue is a table written in the same
//! transaction as the incident; [`run_sender`] sends due alerts, retries
//! failures with capped exponential backoff and marks an alert `dead`
//! after [`AlertSettings::max_attempts`]. A restart resumes from the
//! table. A receiver may see an alert twice (a collector that dies after
//! sending but before recording it): the `X-Lenscap-Alert-Id` header lets
//! it drop repeats.
//!
//! **Signed.** Webhook bodies carry `X-Lenscap-Signature: t=<unix
//! seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, so a receiver can
//! check both who sent it and that it is not an old body replayed
//! ([`verify`]).
//!
//! **Syslog** is RFC 5424, one message per alert, with octet-counting
//! framing ("LEN SP MSG"): over TCP (`tcp://`, RFC 6587 §3.4.1) or over
//! TLS (`tls://`, RFC 5425 §4.3, the same framing inside the TLS stream).
//! TLS (syslog's and https webhooks') checks the receiver's certificate
//! and name against the public web roots, or against the CA an admin gave
//! (`alert add --ca FILE`), which is how a SIEM or chat server behind an
//! internal CA is reached.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use crate::incidents::{IncidentRow, severity_rank};
use crate::metrics::Metrics;
use crate::store::{AlertDestination, AlertRecord, Delivery, Store};
use crate::timefmt::now_ms;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The header holding a webhook body's signature.
pub const SIGNATURE_HEADER: &str = "x-lenscap-signature";
/// The header naming the alert (the same on every retry).
pub const ID_HEADER: &str = "x-lenscap-alert-id";
/// Shortest secret `alert add` accepts.
pub const MIN_SECRET: usize = 16;
/// How long one delivery may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed alert is this collector's before another may try
/// it (longer than any delivery).
const CLAIM_MS: i64 = 60_000;
/// Alerts taken per round.
const BATCH: i64 = 32;
/// How often the sender looks for due alerts when nothing wakes it
/// (retries, alerts queued by another collector).
const POLL: Duration = Duration::from_millis(250);

/// The incident states an alert can be about.
pub const STATES: &[&str] = &[
    "open",
    "contained",
    "failed",
    "restored",
    "would_do",
    "closed",
];

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("{url:?} is not a usable webhook URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error(
        "the secret is too short ({len} bytes): give at least {MIN_SECRET} characters, or leave --secret out and one is made for you"
    )]
    ShortSecret { len: usize },
    #[error("the secret may hold only printable ASCII without spaces")]
    BadSecret,
    #[error(
        "unknown incident state {0:?}: expected some of open, contained, failed, restored, would_do, closed"
    )]
    BadState(String),
    #[error("unknown severity {0:?}: expected info, low, medium, high or critical")]
    BadSeverity(String),
    #[error("unknown verdict {0:?}: expected some of remediate, report, allow")]
    BadVerdict(String),
    #[error(
        "unknown finding kind {0:?}: expected some of listener, persistence, camera_grant, camera_use"
    )]
    BadKind(String),
    #[error(
        "the CA file holds no usable certificate: {0} (PEM `BEGIN CERTIFICATE` blocks expected)"
    )]
    BadCa(String),
}

/// Retry timing and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertSettings {
    /// Wait after the first failure; doubled after each further one.
    pub backoff_first: Duration,
    /// The longest wait between attempts.
    pub backoff_max: Duration,
    /// Attempts before an alert is `dead`.
    pub max_attempts: i64,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            backoff_first: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
            max_attempts: 12,
        }
    }
}

impl AlertSettings {
    /// Wait after `attempts` failed attempts (1, 2, …).
    pub fn backoff(&self, attempts: i64) -> Duration {
        let shift = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        self.backoff_first
            .saturating_mul(1u32 << shift)
            .min(self.backoff_max)
    }
}

/// `info`…`critical` as its rank.
pub fn parse_severity(s: &str) -> Result<i64, AlertError> {
    match s {
        "info" | "low" | "medium" | "high" | "critical" => Ok(severity_rank(s)),
        _ => Err(AlertError::BadSeverity(s.to_string())),
    }
}

/// `open,contained` checked and normalised; empty means every state.
pub fn parse_states(s: &str) -> Result<String, AlertError> {
    let mut out = Vec::new();
    for st in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let st = if st == "would-do" { "would_do" } else { st };
        if !STATES.contains(&st) {
            return Err(AlertError::BadState(st.to_string()));
        }
        if !out.contains(&st) {
            out.push(st);
        }
    }
    Ok(out.join(","))
}

/// A comma-separated list checked against `known`, each once, in order;
/// `bad` names an unknown entry. Empty means "any" (None).
fn parse_list(
    s: &str,
    known: &[&str],
    bad: fn(String) -> AlertError,
) -> Result<Option<String>, AlertError> {
    let mut out: Vec<&str> = Vec::new();
    for x in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let Some(k) = known.iter().find(|k| **k == x) else {
            return Err(bad(x.to_string()));
        };
        if !out.contains(k) {
            out.push(k);
        }
    }
    Ok((!out.is_empty()).then(|| out.join(",")))
}

/// `remediate,report` checked; empty: any verdict.
pub fn parse_verdicts(s: &str) -> Result<Option<String>, AlertError> {
    parse_list(s, &["remediate", "report", "allow"], AlertError::BadVerdict)
}

/// `listener,camera_use` checked; empty: any kind.
pub fn parse_kinds(s: &str) -> Result<Option<String>, AlertError> {
    parse_list(
        s,
        &["listener", "persistence", "camera_grant", "camera_use"],
        AlertError::BadKind,
    )
}

/// The certificates of a PEM CA file, at least one.
pub fn parse_ca(pem: &str) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, AlertError> {
    use rustls_pki_types::pem::PemObject as _;
    let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| AlertError::BadCa(e.to_string()))?;
    if certs.is_empty() {
        return Err(AlertError::BadCa("no certificate found".into()));
    }
    // Each must be one rustls can anchor trust in.
    let mut roots = rustls::RootCertStore::empty();
    for c in &certs {
        roots
            .add(c.clone())
            .map_err(|e| AlertError::BadCa(e.to_string()))?;
    }
    Ok(certs)
}

/// A webhook URL the collector will send to: http or https with a host,
/// plain http only to loopback unless `allow_http` (bodies say what is
/// wrong on which Mac).
pub fn check_webhook_url(url: &str, allow_http: bool) -> Result<(), AlertError> {
    let bad = |reason: &str| AlertError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    let host = parsed
        .host()
        .ok_or_else(|| bad("no host; expected https://host/path"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match host {
                url::Host::Domain(d) => d == "localhost",
                url::Host::Ipv4(a) => a.is_loopback(),
                url::Host::Ipv6(a) => a.is_loopback(),
            };
            if loopback || allow_http {
                Ok(())
            } else {
                Err(bad(
                    "plain http off loopback would show alerts to the network; use https, or --allow-http behind a trusted proxy",
                ))
            }
        }
        other => Err(bad(&format!("scheme {other:?}; expected http or https"))),
    }
}

/// A syslog destination: `tcp://host:port` or `tls://host:port`.
pub fn check_syslog_url(url: &str) -> Result<(), AlertError> {
    let bad = |reason: &str| AlertError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if !matches!(parsed.scheme(), "tcp" | "tls") {
        return Err(bad("expected tcp://host:port or tls://host:port"));
    }
    if parsed.host().is_none() || parsed.port().is_none() {
        return Err(bad("expected tcp://host:port or tls://host:port"));
    }
    Ok(())
}

pub fn check_secret(secret: &str) -> Result<(), AlertError> {
    if secret.len() < MIN_SECRET {
        return Err(AlertError::ShortSecret { len: secret.len() });
    }
    if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AlertError::BadSecret);
    }
    Ok(())
}

/// A new random secret (32 bytes, hex).
pub fn new_secret() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b)?;
    Ok(hex::encode(b))
}

/// Whether the incident `row`, on the Mac `hostname`, alerts `dest`: its
/// severity, state, rule, host, strongest verdict and finding kinds.
pub fn wants(dest: &AlertDestination, row: &IncidentRow, hostname: &str) -> bool {
    let state = row.state();
    severity_rank(&row.severity) >= dest.min_rank
        && (dest.states.is_empty() || dest.states.split(',').any(|s| s == state))
        && dest
            .rule
            .as_deref()
            .is_none_or(|r| Some(r) == row.rule.as_deref())
        && dest.host.as_deref().is_none_or(|h| h == hostname)
        && dest.verdict.as_deref().is_none_or(|vs| {
            row.verdict
                .as_deref()
                .is_some_and(|v| vs.split(',').any(|x| x == v))
        })
        && dest.finding_kind.as_deref().is_none_or(|ks| {
            ks.split(',')
                .any(|k| row.kinds.split(',').any(|mine| mine == k))
        })
}

/// The JSON body of an alert: the incident as it is after the change,
/// and the event that changed it.
pub fn payload(
    incident_id: i64,
    hostname: &str,
    host_id: i64,
    row: &IncidentRow,
    event_id: i64,
    event_body: &str,
) -> String {
    let event: Value = serde_json::from_str(event_body).unwrap_or(Value::Null);
    json!({
        "type": "incident",
        "incident": {
            "id": incident_id,
            "host_id": host_id,
            "hostname": hostname,
            "title": row.title(),
            "state": row.state(),
            "severity": row.severity,
            "name": row.name,
            "rule": row.rule,
            "first_time": row.first_time,
            "last_time": row.last_time,
            "findings": row.findings,
            "open_findings": row.open_findings,
            "steps_done": row.steps_done,
            "steps_failed": row.steps_failed,
            "steps_would": row.steps_would,
            "restores": row.restores,
            "quarantined": row.quarantined,
            "events": row.events,
        },
        "event_id": event_id,
        "event": event,
    })
    .to_string()
}

/// `t=<ts>,v1=<hex>`: HMAC-SHA256 with `secret` over `"<ts>.<body>"`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(secret, timestamp, body))
    )
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length; this cannot fail.
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

/// A receiver's check of [`SIGNATURE_HEADER`]: the MAC matches (in
/// constant time) and the timestamp is within `tolerance_s` of `now_s`.
pub fn verify(secret: &str, header: &str, body: &[u8], now_s: i64, tolerance_s: i64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = x.parse::<i64>().ok(),
            Some(("v1", x)) => v1 = hex::decode(x).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if (now_s - t).abs() > tolerance_s {
        return false;
    }
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.verify_slice(&v1).is_ok()
}

/// Send one alert body to `dest`, blocking (run it on the blocking pool).
/// `Err` says why, for the queue's `last_error`.
pub fn deliver(dest: &AlertDestination, alert_id: i64, body: &str) -> Result<(), String> {
    match dest.kind.as_str() {
        "webhook" => deliver_webhook(dest, alert_id, body),
        "syslog" => deliver_syslog(dest, alert_id, body),
        other => Err(format!("unknown destination kind {other:?}")),
    }
}

fn deliver_webhook(dest: &AlertDestination, alert_id: i64, body: &str) -> Result<(), String> {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(SEND_TIMEOUT));
    if let Some(pem) = dest.ca_pem.as_deref() {
        // An internal receiver (chat or paging behind a company CA): its
        // certificate must chain to these only, as for tls:// syslog.
        let certs: Vec<ureq::tls::Certificate<'static>> = parse_ca(pem)
            .map_err(|e| e.to_string())?
            .iter()
            .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        config = config.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                .build(),
        );
    }
    let agent: ureq::Agent = config.build().into();
    let secret = dest.secret.as_deref().unwrap_or("");
    let signature = sign(secret, now_ms() / 1000, body.as_bytes());
    let resp = agent
        .post(&dest.url)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("lenscap-collector/", env!("CARGO_PKG_VERSION")),
        )
        .header(SIGNATURE_HEADER, &signature)
        .header(ID_HEADER, alert_id.to_string())
        .send(body.as_bytes())
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("the receiver answered HTTP {status}"))
    }
}

/// RFC 5424 severity for an incident severity.
fn syslog_severity(s: &str) -> u8 {
    match s {
        "critical" => 2,
        "high" => 3,
        "medium" => 4,
        "low" => 5,
        _ => 6,
    }
}

/// A structured-data parameter value: `"`, `\` and `]` escaped (RFC 5424
/// §6.3.3).
fn sd_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// HOSTNAME: printable ASCII without spaces, at most 255, `-` if none.
fn syslog_hostname(s: &str) -> String {
    let h: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if h.is_empty() { "-".into() } else { h }
}

/// One RFC 5424 message for an alert body (facility security/auth, 4).
pub fn syslog_message(alert_id: i64, body: &str, now_ms: i64) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let inc = &v["incident"];
    let text = |k: &str| inc[k].as_str().unwrap_or("").to_string();
    let pri = 4 * 8 + u32::from(syslog_severity(&text("severity")));
    let ts = crate::timefmt::rfc3339(now_ms);
    format!(
        "<{pri}>1 {ts} {host} lenscap-collector - incident [lenscap@32473 alert=\"{alert_id}\" incident=\"{id}\" state=\"{state}\" severity=\"{sev}\"] \u{feff}{title}",
        host = syslog_hostname(&text("hostname")),
        id = inc["id"].as_i64().unwrap_or(0),
        state = sd_escape(&text("state")),
        sev = sd_escape(&text("severity")),
        title = text("title"),
    )
}

fn deliver_syslog(dest: &AlertDestination, alert_id: i64, body: &str) -> Result<(), String> {
    let parsed = url::Url::parse(&dest.url).map_err(|e| e.to_string())?;
    let (Some(host), Some(port)) = (parsed.host_str(), parsed.port()) else {
        return Err("expected tcp://host:port or tls://host:port".into());
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let tls = match parsed.scheme() {
        "tcp" => false,
        "tls" => true,
        other => return Err(format!("scheme {other:?}; expected tcp or tls")),
    };
    let addrs =
        std::net::ToSocketAddrs::to_socket_addrs(&(host, port)).map_err(|e| e.to_string())?;
    let mut last = String::from("no address");
    for addr in addrs {
        match std::net::TcpStream::connect_timeout(&addr, SEND_TIMEOUT) {
            Ok(s) => {
                let _ = s.set_write_timeout(Some(SEND_TIMEOUT));
                let _ = s.set_read_timeout(Some(SEND_TIMEOUT));
                let msg = syslog_message(alert_id, body, now_ms());
                // Octet counting (RFC 6587 §3.4.1, RFC 5425 §4.3):
                // "LEN SP MSG".
                let framed = format!("{} {msg}", msg.len());
                return if tls {
                    send_tls(s, host, dest.ca_pem.as_deref(), framed.as_bytes())
                } else {
                    let mut s = s;
                    s.write_all(framed.as_bytes())
                        .and_then(|()| s.flush())
                        .map_err(|e| e.to_string())
                };
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// The client side of a TLS syslog connection: the receiver's certificate
/// must chain to `ca_pem` (or, without one, the public web roots, as
/// webhooks use) and name `host`.
fn tls_config(ca_pem: Option<&str>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for c in parse_ca(pem).map_err(|e| e.to_string())? {
                roots.add(c).map_err(|e| e.to_string())?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

fn send_tls(
    sock: std::net::TcpStream,
    host: &str,
    ca_pem: Option<&str>,
    framed: &[u8],
) -> Result<(), String> {
    let config = tls_config(ca_pem)?;
    let name = rustls_pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| format!("{host:?} is not a TLS server name: {e}"))?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(framed)
        .and_then(|()| tls.flush())
        .map_err(|e| format!("TLS: {e}"))?;
    // Close cleanly, so the receiver reads a whole message, not a
    // truncation: close_notify, then read what the receiver still sends
    // (TLS 1.3 session tickets) until it closes too. A socket closed with
    // unread data sends a reset, which can make the receiver drop the
    // message it already has.
    tls.conn.send_close_notify();
    let _ = tls.flush();
    let _ = tls.sock.shutdown(std::net::Shutdown::Write);
    let _ = tls.sock.set_read_timeout(Some(Duration::from_secs(1)));
    let mut sink = [0u8; 1024];
    while let Ok(n) = std::io::Read::read(&mut tls, &mut sink) {
        if n == 0 {
            break;
        }
    }
    Ok(())
}

/// Deliver queued alerts until the task is stopped: every [`POLL`], or
/// at once when `wake` is notified (the grouper queued something).
pub async fn run_sender(
    store: Store,
    metrics: Arc<Metrics>,
    settings: AlertSettings,
    wake: Arc<tokio::sync::Notify>,
) {
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
        loop {
            match send_due(&store, &metrics, settings).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the alert queue; retrying");
                    break;
                }
            }
        }
    }
}

/// One round: claim due alerts and send them side by side. How many were
/// claimed.
pub async fn send_due(
    store: &Store,
    metrics: &Metrics,
    settings: AlertSettings,
) -> Result<usize, crate::store::StoreError> {
    let now = now_ms();
    let due = store.due_alerts(now, BATCH).await?;
    if due.is_empty() {
        return Ok(0);
    }
    let dests = store.alert_destinations().await?;
    let wanted: Vec<(i64, i64)> = due
        .iter()
        .filter(|a| dests.iter().any(|d| d.id == a.destination_id))
        .map(|a| (a.id, a.next_attempt))
        .collect();
    let taken = store.claim_alerts(&wanted, now + CLAIM_MS).await?;
    let claimed: Vec<(AlertRecord, AlertDestination)> = due
        .into_iter()
        .filter(|a| taken.contains(&a.id))
        .filter_map(|a| {
            let d = dests.iter().find(|d| d.id == a.destination_id)?.clone();
            Some((a, d))
        })
        .collect();
    let n = claimed.len();
    let sends = claimed.into_iter().map(|(a, d)| async move {
        let body = a.body.clone();
        let id = a.id;
        let result = tokio::task::spawn_blocking(move || deliver(&d, id, &body))
            .await
            .unwrap_or_else(|e| Err(format!("delivery task failed: {e}")));
        (a, result)
    });
    let mut outcomes = Vec::with_capacity(n);
    for (a, result) in futures_util::future::join_all(sends).await {
        let attempts = a.attempts + 1;
        let done = now_ms();
        match result {
            Ok(()) => {
                metrics.alert_sent();
                outcomes.push(Delivery {
                    id: a.id,
                    attempts,
                    at: done,
                    error: None,
                    next_attempt: done,
                    dead: false,
                });
            }
            Err(e) => {
                let dead = attempts >= settings.max_attempts;
                metrics.alert_failed(dead);
                let wait =
                    i64::try_from(settings.backoff(attempts).as_millis()).unwrap_or(i64::MAX);
                tracing::warn!(alert = a.id, destination = %a.destination, attempts, dead, error = %e, "alert not delivered");
                outcomes.push(Delivery {
                    id: a.id,
                    attempts,
                    at: done,
                    error: Some(e),
                    next_attempt: done.saturating_add(wait),
                    dead,
                });
            }
        }
    }
    // One write for the round (see `Store::claim_alerts`).
    store.record_deliveries(&outcomes).await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_expire() {
        let sig = sign("0123456789abcdef", 1_700_000_000, b"{\"a\":1}");
        assert!(verify(
            "0123456789abcdef",
            &sig,
            b"{\"a\":1}",
            1_700_000_010,
            300
        ));
        assert!(!verify(
            "0123456789abcdeX",
            &sig,
            b"{\"a\":1}",
            1_700_000_010,
            300
        ));
        assert!(!verify(
            "0123456789abcdef",
            &sig,
            b"{\"a\":2}",
            1_700_000_010,
            300
        ));
        // Replayed later than the tolerance.
        assert!(!verify(
            "0123456789abcdef",
            &sig,
            b"{\"a\":1}",
            1_700_000_400,
            300
        ));
        assert!(!verify(
            "0123456789abcdef",
            "v1=00",
            b"{\"a\":1}",
            1_700_000_000,
            300
        ));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let s = AlertSettings {
            backoff_first: Duration::from_secs(2),
            backoff_max: Duration::from_secs(60),
            max_attempts: 5,
        };
        assert_eq!(s.backoff(1), Duration::from_secs(2));
        assert_eq!(s.backoff(2), Duration::from_secs(4));
        assert_eq!(s.backoff(5), Duration::from_secs(32));
        assert_eq!(s.backoff(6), Duration::from_secs(60));
        assert_eq!(s.backoff(500), Duration::from_secs(60));
    }

    #[test]
    fn destinations_are_checked() {
        assert!(check_webhook_url("http://127.0.0.1:9/x", false).is_ok());
        assert!(check_webhook_url("https://siem.example/hook", false).is_ok());
        assert!(check_webhook_url("http://siem.example/hook", false).is_err());
        assert!(check_webhook_url("http://siem.example/hook", true).is_ok());
        assert!(check_webhook_url("ftp://x/", true).is_err());
        assert!(check_webhook_url("not a url", true).is_err());
        assert!(check_syslog_url("tcp://127.0.0.1:514").is_ok());
        assert!(check_syslog_url("udp://127.0.0.1:514").is_err());
        assert!(check_secret("short").is_err());
        assert!(check_secret("sixteen chars!!! ").is_err());
        assert!(check_secret("0123456789abcdef").is_ok());
        assert_eq!(
            parse_states("contained, would-do").unwrap(),
            "contained,would_do"
        );
        assert!(parse_states("closed").is_ok());
        assert!(parse_states("resolved").is_err());
        assert_eq!(parse_severity("high").unwrap(), 4);
        assert!(parse_severity("urgent").is_err());
    }

    #[test]
    fn syslog_lines_follow_rfc5424() {
        let body = json!({"incident": {"id": 7, "hostname": "mac one", "state": "contained",
            "severity": "critical", "title": "ZoomOpener \"x\" ] contained"}})
        .to_string();
        let line = syslog_message(3, &body, 1_764_312_000_123);
        let parts: Vec<&str> = line.splitn(8, ' ').collect();
        assert_eq!(parts[0], "<34>1");
        assert_eq!(parts[2], "macone");
        assert_eq!(parts[3], "lenscap-collector");
        assert_eq!(parts[4], "-");
        assert_eq!(parts[5], "incident");
        assert!(line.contains(
            "[lenscap@32473 alert=\"3\" incident=\"7\" state=\"contained\" severity=\"critical\"]"
        ));
    }
}
