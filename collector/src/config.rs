//! What `lenscap-collector serve` is told on its command line, checked
//! before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::store::{DbUrl, StoreError};

/// Request size limits. Generous for an agent's batches, small enough that
/// one client cannot exhaust memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest event batch, in bytes after gzip decompression.
    pub max_body_bytes: usize,
    /// Most events in one batch.
    pub max_batch_events: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_bytes: 8 * 1024 * 1024,
            max_batch_events: 5000,
        }
    }
}

/// What one client may hold of the server: time to send its headers and
/// body, and connections. Slow clients (slowloris) are cut off, and no
/// single address can take every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetLimits {
    /// From accepting a connection (after the TLS handshake) or finishing
    /// the previous request on it, until the request's headers are in.
    /// An idle keep-alive connection is closed after this too.
    pub header_read_timeout: Duration,
    /// From the headers until the whole body is in.
    pub body_read_timeout: Duration,
    /// A whole request, body and answer included (408 after it).
    pub request_timeout: Duration,
    /// Open connections at once; more are closed as soon as accepted.
    pub max_connections: usize,
    /// Open connections from one client address (an IPv6 client: its
    /// /64); 0 for no per-address limit (behind a proxy, every client
    /// has the proxy's address).
    pub max_connections_per_ip: usize,
}

impl Default for NetLimits {
    fn default() -> NetLimits {
        NetLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            // Below the usual 1024 open-file limit, leaving room for the
            // database and logs.
            max_connections: 512,
            // An agent uses one connection, a browser about six.
            max_connections_per_ip: 32,
        }
    }
}

impl NetLimits {
    /// From `serve`'s flags (seconds and counts), checked.
    pub fn new(
        header_read_timeout_s: u64,
        body_read_timeout_s: u64,
        request_timeout_s: u64,
        max_connections: usize,
        max_connections_per_ip: usize,
    ) -> Result<NetLimits, ConfigError> {
        let secs = |flag: &'static str, v: u64| {
            if (1..=3600).contains(&v) {
                Ok(Duration::from_secs(v))
            } else {
                Err(ConfigError::Limit {
                    flag,
                    value: v,
                    expected: "1 to 3600 seconds",
                })
            }
        };
        if max_connections == 0 {
            return Err(ConfigError::Limit {
                flag: "--max-connections",
                value: 0,
                expected: "at least 1",
            });
        }
        Ok(NetLimits {
            header_read_timeout: secs("--header-read-timeout", header_read_timeout_s)?,
            body_read_timeout: secs("--body-read-timeout", body_read_timeout_s)?,
            request_timeout: secs("--request-timeout", request_timeout_s)?,
            max_connections,
            max_connections_per_ip,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub db: DbUrl,
    pub tls: Option<TlsFiles>,
    pub limits: Limits,
    pub net: NetLimits,
    /// Serve `/metrics` without a token (for a Prometheus that cannot send
    /// one); otherwise it needs a reader or admin token.
    pub public_metrics: bool,
    /// Alert retry timing (`crate::alerts`).
    pub alerts: crate::alerts::AlertSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "refusing plain HTTP on {listen}: tokens and events would cross the network unencrypted. \
         Give --tls-cert and --tls-key, listen on a loopback address, or pass --insecure-http \
         if a proxy in front terminates TLS"
    )]
    PlainHttpOffLoopback { listen: SocketAddr },
    #[error("--tls-cert and --tls-key go together: {given} was given without {missing}")]
    HalfTls {
        given: &'static str,
        missing: &'static str,
    },
    #[error("--tls-cert and --tls-key with --insecure-http: choose TLS or plain HTTP, not both")]
    TlsAndInsecure,
    #[error("{flag} {value}: expected {expected}")]
    Limit {
        flag: &'static str,
        value: u64,
        expected: &'static str,
    },
    #[error(transparent)]
    Db(#[from] StoreError),
}

impl ServeConfig {
    /// Check the command-line choices against each other.
    pub fn new(
        listen: SocketAddr,
        db: &str,
        tls_cert: Option<PathBuf>,
        tls_key: Option<PathBuf>,
        insecure_http: bool,
    ) -> Result<ServeConfig, ConfigError> {
        let tls = match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (Some(_), None) => {
                return Err(ConfigError::HalfTls {
                    given: "--tls-cert",
                    missing: "--tls-key",
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::HalfTls {
                    given: "--tls-key",
                    missing: "--tls-cert",
                });
            }
            (None, None) => None,
        };
        if tls.is_some() && insecure_http {
            return Err(ConfigError::TlsAndInsecure);
        }
        // `::ffff:127.0.0.1` is loopback too; std says otherwise on the
        // raw form.
        if tls.is_none() && !insecure_http && !listen.ip().to_canonical().is_loopback() {
            return Err(ConfigError::PlainHttpOffLoopback { listen });
        }
        Ok(ServeConfig {
            listen,
            db: DbUrl::parse(db)?,
            tls,
            limits: Limits::default(),
            net: NetLimits::default(),
            public_metrics: false,
            alerts: crate::alerts::AlertSettings::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(listen: &str, tls: bool, insecure: bool) -> Result<ServeConfig, ConfigError> {
        let files = tls.then(|| PathBuf::from("x"));
        ServeConfig::new(
            listen.parse().unwrap(),
            "sqlite:x.db",
            files.clone(),
            files,
            insecure,
        )
    }

    #[test]
    fn plain_http_only_on_loopback_unless_told() {
        assert!(cfg("127.0.0.1:8470", false, false).is_ok());
        assert!(cfg("[::1]:8470", false, false).is_ok());
        assert!(cfg("[::ffff:127.0.0.1]:8470", false, false).is_ok());
        let err = cfg("0.0.0.0:8470", false, false).unwrap_err().to_string();
        assert!(err.contains("--insecure-http"), "{err}");
        assert!(cfg("0.0.0.0:8470", false, true).is_ok());
        assert!(cfg("0.0.0.0:8470", true, false).is_ok());
        assert!(matches!(
            cfg("0.0.0.0:8470", true, true),
            Err(ConfigError::TlsAndInsecure)
        ));
    }

    #[test]
    fn half_tls_is_refused() {
        let r = ServeConfig::new(
            "0.0.0.0:1".parse().unwrap(),
            "sqlite:x.db",
            Some("c.pem".into()),
            None,
            false,
        );
        assert!(matches!(
            r,
            Err(ConfigError::HalfTls {
                missing: "--tls-key",
                ..
            })
        ));
    }

    #[test]
    fn net_limits_are_checked_by_flag() {
        let d = NetLimits::default();
        assert_eq!(NetLimits::new(10, 30, 60, 512, 32).unwrap(), d);
        assert_eq!(
            NetLimits::new(10, 30, 60, 512, 0)
                .unwrap()
                .max_connections_per_ip,
            0
        );
        let err = NetLimits::new(0, 30, 60, 512, 32).unwrap_err().to_string();
        assert!(err.contains("--header-read-timeout 0"), "{err}");
        let err = NetLimits::new(10, 30, 99999, 512, 32)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--request-timeout") && err.contains("3600"),
            "{err}"
        );
        let err = NetLimits::new(10, 30, 60, 0, 32).unwrap_err().to_string();
        assert!(err.contains("--max-connections 0"), "{err}");
    }

    #[test]
    fn bad_db_url_is_a_config_error() {
        let r = ServeConfig::new(
            "127.0.0.1:1".parse().unwrap(),
            "mongodb://x",
            None,
            None,
            false,
        );
        assert!(r.unwrap_err().to_string().contains("sqlite:PATH"));
    }
}
