//! The agent's HTTP client for the collector (docs/api.md): the three
//! calls the agent makes — enroll, post a batch of events, fetch the fleet
//! policy — and what each answer means for the caller.
//!
//! - **TLS trusts the system's roots**, never a bundled root list:
//!   Security.framework through native-tls on macOS, so the System
//!   keychain where MDM installs a fleet's CA; rustls with
//!   rustls-platform-verifier on Linux, so `/etc/ssl` and `SSL_CERT_FILE`
//!   (`platform::TLS_PROVIDER`).
//! - **Timeouts on everything**: connecting, and the whole exchange.
//! - **No redirects**: a 3xx is an error the admin fixes in `CollectorURL`;
//!   following one would send the host token (or the enrollment secret) to
//!   wherever the redirect points.
//! - **A 200 counts only when it is the collector's 200**: the body must
//!   be the API's answer and account for the whole batch, so a captive
//!   portal or a proxy's page is never taken for "stored".

use std::time::{Duration, SystemTime};

use lenscap_events::api::{EnrollRequest, EnrollResponse, ErrorBody, IngestResponse};
use ureq::tls::{RootCerts, TlsConfig};

use crate::config::Secret;
pub use crate::config::{CollectorUrl, EXPECTED_URL};
use crate::report::enroll::HostToken;

/// Connecting (DNS, TCP, TLS) may take this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One whole request may take this long: the collector's own limit per
/// request is 60 s (docs/api.md), so an answer can still arrive.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(75);
/// The longest `Retry-After` honoured: a misconfigured proxy's "come back
/// tomorrow" must not stall delivery that long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Error bodies are read up to this size, for the message.
const ERROR_BODY_LIMIT: u64 = 16 * 1024;
/// A fleet policy is at most 5,000 entries sent as at most 1 MiB.
const POLICY_BODY_LIMIT: u64 = 8 * 1024 * 1024;
/// Success bodies of enroll and events are small JSON objects.
const SMALL_BODY_LIMIT: u64 = 64 * 1024;

/// Why a call did not give the answer asked for, sorted by what the caller
/// does about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Could not connect, TLS failed, timed out, or the answer was cut off:
    /// retry with backoff.
    Network(String),
    /// 401: the token is unknown (re-enroll) or the secret is wrong.
    Unauthorized(String),
    /// 403: the token may not do this (another host's events).
    Forbidden(String),
    /// 429 or 503: come back later, after `retry_after` when it was said.
    Busy {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// 413: the batch is too big.
    TooLarge(String),
    /// 400: something in the request is malformed.
    BadRequest(String),
    /// Any other 5xx: retry with backoff.
    Server { status: u16, message: String },
    /// Anything else (a redirect, 404, 415, a 200 that is not the API's).
    Unexpected { status: u16, message: String },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Network(m) => write!(f, "cannot reach the collector: {m}"),
            Failure::Unauthorized(m) => write!(f, "401 unauthorized: {m}"),
            Failure::Forbidden(m) => write!(f, "403 forbidden: {m}"),
            Failure::Busy {
                status,
                retry_after: Some(d),
            } => write!(f, "{status}: busy, retry after {} s", d.as_secs()),
            Failure::Busy { status, .. } => write!(f, "{status}: busy"),
            Failure::TooLarge(m) => write!(f, "413 too large: {m}"),
            Failure::BadRequest(m) => write!(f, "400 bad request: {m}"),
            Failure::Server { status, message } | Failure::Unexpected { status, message } => {
                write!(f, "{status}: {message}")
            }
        }
    }
}

/// What `GET /api/v1/policy` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyAnswer {
    /// 304: the policy with the ETag sent is still current.
    NotModified,
    /// 200: the policy text and its ETag (absent if the server sent none).
    Policy { body: String, etag: Option<String> },
}

/// One collector, one connection pool.
#[derive(Debug)]
pub struct Client {
    agent: ureq::Agent,
    url: CollectorUrl,
}

impl Client {
    pub fn new(url: CollectorUrl) -> Client {
        let tls = TlsConfig::builder()
            .provider(crate::platform::TLS_PROVIDER)
            .root_certs(RootCerts::PlatformVerifier)
            .build();
        // A proxy from the environment (launchd `EnvironmentVariables`)
        // applies to a remote collector, never to one on this machine.
        let proxy = if url.loopback {
            None
        } else {
            ureq::Proxy::try_from_env()
        };
        let config = ureq::Agent::config_builder()
            .tls_config(tls)
            .proxy(proxy)
            .http_status_as_error(false)
            .max_redirects(0)
            .https_only(!url.loopback)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            .user_agent(concat!("lenscap/", env!("CARGO_PKG_VERSION")))
            .build();
        Client {
            agent: config.new_agent(),
            url,
        }
    }

    pub fn url(&self) -> &CollectorUrl {
        &self.url
    }

    /// `POST /api/v1/enroll` with the enrollment secret.
    pub fn enroll(&self, secret: &Secret, req: &EnrollRequest) -> Result<HostToken, Failure> {
        let body = serde_json::to_vec(req).map_err(|e| Failure::Unexpected {
            status: 0,
            message: format!("cannot encode the enrollment request: {e}"),
        })?;
        let resp = self
            .agent
            .post(self.url.endpoint("/api/v1/enroll"))
            .header("Content-Type", "application/json")
            .header("Authorization", format!("Bearer {}", secret.expose()))
            .send(&body[..])
            .map_err(network)?;
        let (status, text) = read(resp, SMALL_BODY_LIMIT)?;
        let answer: EnrollResponse = serde_json::from_str(&text).map_err(|e| not_api(status, e))?;
        HostToken::new(answer.token).map_err(|why| Failure::Unexpected {
            status,
            message: format!("the collector's enrollment answer holds an unusable token: {why}"),
        })
    }

    /// `POST /api/v1/events` with a gzip'd JSON array of `events` events.
    /// `Ok` only when the collector stored (or already had) all of them.
    pub fn post_events(
        &self,
        token: &HostToken,
        gzip_body: &[u8],
        events: usize,
    ) -> Result<IngestResponse, Failure> {
        let resp = self
            .agent
            .post(self.url.endpoint("/api/v1/events"))
            .header("Content-Type", "application/json")
            .header("Content-Encoding", "gzip")
            .header("Authorization", format!("Bearer {}", token.as_str()))
            .send(gzip_body)
            .map_err(network)?;
        let (status, text) = read(resp, SMALL_BODY_LIMIT)?;
        let answer: IngestResponse = serde_json::from_str(&text).map_err(|e| not_api(status, e))?;
        let counted = answer.accepted.saturating_add(answer.duplicate);
        if counted != events as u64 {
            return Err(Failure::Unexpected {
                status,
                message: format!(
                    "the collector accounted for {counted} of {events} events; the batch is sent again"
                ),
            });
        }
        Ok(answer)
    }

    /// `GET /api/v1/policy`, conditional on `etag`.
    pub fn policy(&self, token: &HostToken, etag: Option<&str>) -> Result<PolicyAnswer, Failure> {
        let mut req = self
            .agent
            .get(self.url.endpoint("/api/v1/policy"))
            .header("Authorization", format!("Bearer {}", token.as_str()));
        if let Some(tag) = etag {
            req = req.header("If-None-Match", tag);
        }
        let resp = req.call().map_err(network)?;
        if resp.status().as_u16() == 304 {
            return Ok(PolicyAnswer::NotModified);
        }
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let (_, body) = read(resp, POLICY_BODY_LIMIT)?;
        Ok(PolicyAnswer::Policy { body, etag })
    }
}

fn network(e: ureq::Error) -> Failure {
    Failure::Network(e.to_string())
}

fn not_api(status: u16, e: serde_json::Error) -> Failure {
    Failure::Unexpected {
        status,
        message: format!("the answer is not the collector API's ({e}); is CollectorURL right?"),
    }
}

/// The body of a 2xx answer, or the failure any other status means.
fn read(mut resp: ureq::http::Response<ureq::Body>, limit: u64) -> Result<(u16, String), Failure> {
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        let text = resp
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_string()
            .map_err(network)?;
        return Ok((status, text));
    }
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // A body that cannot be read still leaves the status to act on.
    let text = resp
        .body_mut()
        .with_config()
        .limit(ERROR_BODY_LIMIT)
        .lossy_utf8(true)
        .read_to_string()
        .unwrap_or_default();
    let message = error_message(&text);
    Err(match status {
        400 => Failure::BadRequest(message),
        401 => Failure::Unauthorized(message),
        403 => Failure::Forbidden(message),
        413 => Failure::TooLarge(message),
        429 | 503 => Failure::Busy {
            status,
            retry_after,
        },
        300..400 => Failure::Unexpected {
            status,
            message: format!(
                "the collector redirects to {}; redirects are not followed (the token would go along): set CollectorURL to the final address",
                location.as_deref().unwrap_or("(no Location)")
            ),
        },
        500..600 => Failure::Server { status, message },
        _ => Failure::Unexpected { status, message },
    })
}

/// The API's `{"code", "error"}` as `code: error`; anything else, cut.
fn error_message(text: &str) -> String {
    if let Ok(e) = serde_json::from_str::<ErrorBody>(text) {
        return format!("{}: {}", e.code, e.error);
    }
    let cut: String = text.chars().take(200).collect();
    if cut.trim().is_empty() {
        "(no message)".into()
    } else {
        cut
    }
}

/// `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3),
/// capped at [`MAX_RETRY_AFTER`]. A date in the past means now.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let d = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(d.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests;
