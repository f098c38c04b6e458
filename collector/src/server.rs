//! Starting and stopping a collector: config → store → migrations →
//! serve, in that order, each failure saying which step and what to do.

use std::net::SocketAddr;
use std::sync::Arc;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;

use crate::config::ServeConfig;
use crate::http::{AppState, app};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source} (is another process using it?)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot load TLS certificate {cert} / key {key}: {source} (PEM files expected)")]
    Tls {
        cert: String,
        key: String,
        #[source]
        source: std::io::Error,
    },
}

/// A collector serving in the background.
#[derive(Debug)]
pub struct Running {
    /// Where it listens (the real port when asked for port 0).
    pub addr: SocketAddr,
    pub tls: bool,
    pub store: Store,
    handle: Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Open the store, migrate it, bind and serve. Returns once the socket
/// is listening.
pub async fn start(config: ServeConfig) -> Result<Running, StartError> {
    let store = Store::open(&config.db).await?;
    let tls = match &config.tls {
        Some(files) => Some(
            RustlsConfig::from_pem_file(&files.cert, &files.key)
                .await
                .map_err(|source| StartError::Tls {
                    cert: files.cert.display().to_string(),
                    key: files.key.display().to_string(),
                    source,
                })?,
        ),
        None => None,
    };
    let bind_err = |source| StartError::Bind {
        addr: config.listen,
        source,
    };
    let listener = std::net::TcpListener::bind(config.listen).map_err(bind_err)?;
    listener.set_nonblocking(true).map_err(bind_err)?;
    let addr = listener.local_addr().map_err(bind_err)?;

    let state = AppState {
        store: store.clone(),
        metrics: Arc::new(Metrics::default()),
        limits: config.limits,
        tls: tls.is_some(),
    };
    let service = app(state).into_make_service();
    let handle = Handle::new();
    let task = match tls {
        Some(tls_config) => {
            let server = axum_server::from_tcp_rustls(listener, tls_config)
                .map_err(bind_err)?
                .handle(handle.clone());
            tokio::spawn(server.serve(service))
        }
        None => {
            let server = axum_server::from_tcp(listener)
                .map_err(bind_err)?
                .handle(handle.clone());
            tokio::spawn(server.serve(service))
        }
    };
    tracing::info!(%addr, tls = config.tls.is_some(), db = %config.db.display(), "collector listening");
    Ok(Running {
        addr,
        tls: config.tls.is_some(),
        store,
        handle,
        task,
    })
}

impl Running {
    /// `http://addr` or `https://addr`.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Stop accepting, let requests in flight finish (up to 10 s), close
    /// the store.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.handle
            .graceful_shutdown(Some(std::time::Duration::from_secs(10)));
        let result = match self.task.await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        };
        self.store.close().await;
        result
    }
}
