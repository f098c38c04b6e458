//! What `lenscap-collector serve` is told on its command line, checked
//! before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;

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
