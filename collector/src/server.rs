//! Starting and stopping a collector: config → store → migrations →
//! serve, in that order, each failure saying which step and what to do.

use std::net::SocketAddr;
use std::sync::Arc;

use axum_server::Handle;
use axum_server::accept::DefaultAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};

use crate::config::ServeConfig;
use crate::conn_limit::{ConnLimiter, LimitAcceptor};
use crate::http::app;
use crate::metrics::Metrics;
use crate::state::AppState;
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
    grouper: tokio::task::JoinHandle<()>,
    sender: tokio::task::JoinHandle<()>,
}

/// How often the grouper looks for queued events.
const GROUP_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Group queued events into incidents (`store/incidents.rs`) as they
/// arrive, here and from any collector sharing the database. An error is
/// logged and retried on the next tick: the queue keeps the events.
async fn grouper(store: Store, wake_sender: Arc<tokio::sync::Notify>) {
    let mut tick = tokio::time::interval(GROUP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // A read first: an idle collector takes no write lock.
        match store.incidents_pending().await {
            Ok(0) => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the incident queue");
                continue;
            }
        }
        match store.group_all_pending().await {
            // Grouping may have queued alerts: send them now rather than
            // at the sender's next look.
            Ok(_) => wake_sender.notify_one(),
            Err(e) => tracing::warn!(error = %e, "grouping incidents failed; retrying"),
        }
    }
}

/// Open the store, migrate it, bind and serve. Returns once the socket
/// is listening.
pub async fn start(config: ServeConfig) -> Result<Running, StartError> {
    let store = Store::open(&config.db).await?;
    let tls = match &config.tls {
        Some(files) => {
            let loaded = RustlsConfig::from_pem_file(&files.cert, &files.key)
                .await
                .map_err(|source| StartError::Tls {
                    cert: files.cert.display().to_string(),
                    key: files.key.display().to_string(),
                    source,
                })?;
            // Offer HTTP/1.1 only (axum-server also offers h2): see below.
            let mut rustls = (*loaded.get_inner()).clone();
            rustls.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(RustlsConfig::from_config(Arc::new(rustls)))
        }
        None => None,
    };
    let bind_err = |source| StartError::Bind {
        addr: config.listen,
        source,
    };
    let listener = std::net::TcpListener::bind(config.listen).map_err(bind_err)?;
    listener.set_nonblocking(true).map_err(bind_err)?;
    let addr = listener.local_addr().map_err(bind_err)?;

    let metrics = Arc::new(Metrics::default());
    let metrics_for_alerts = metrics.clone();
    let net = config.net;
    let state = AppState {
        store: store.clone(),
        metrics: metrics.clone(),
        limits: config.limits,
        net,
        tls: tls.is_some(),
        public_metrics: config.public_metrics,
    };
    // The client's address reaches handlers (enrolment records it).
    let service = app(state).into_make_service_with_connect_info::<SocketAddr>();
    let handle = Handle::new();
    let limits = LimitAcceptor::new(
        DefaultAcceptor,
        ConnLimiter::new(net.max_connections, net.max_connections_per_ip, metrics),
    );
    // HTTP/1.1 only. hyper closes an HTTP/1 connection that is idle or
    // slow to send its headers (below), but has no such limit for an idle
    // HTTP/2 connection, which could then hold its place under the
    // connection caps for ever. Agents, browsers and Prometheus all speak
    // HTTP/1.1.
    let mut server = axum_server::from_tcp(listener)
        .map_err(bind_err)?
        .http1_only()
        .handle(handle.clone())
        // Until the first request's headers are in: hyper's own header
        // timeout starts only once it knows the protocol, and a client that
        // sends nothing never lets it know.
        .first_request_timeout(net.header_read_timeout);
    // Every later request on a keep-alive connection, and the idle wait
    // before it. (axum-server turns hyper's default off; hyper needs the
    // timer axum-server sets.)
    server
        .http_builder()
        .http1()
        .header_read_timeout(Some(net.header_read_timeout));
    let task = match tls {
        Some(tls_config) => {
            let acceptor = RustlsAcceptor::new(tls_config)
                .handshake_timeout(net.header_read_timeout)
                .acceptor(limits);
            tokio::spawn(server.acceptor(acceptor).serve(service))
        }
        None => tokio::spawn(server.acceptor(limits).serve(service)),
    };
    let wake = Arc::new(tokio::sync::Notify::new());
    let grouper = tokio::spawn(grouper(store.clone(), wake.clone()));
    let sender = tokio::spawn(crate::alerts::run_sender(
        store.clone(),
        metrics_for_alerts,
        config.alerts,
        wake,
    ));
    tracing::info!(%addr, tls = config.tls.is_some(), db = %config.db.display(), "collector listening");
    Ok(Running {
        addr,
        tls: config.tls.is_some(),
        store,
        handle,
        task,
        grouper,
        sender,
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
        self.grouper.abort();
        let _ = self.grouper.await;
        // An alert cut off mid-send stays claimed until its claim expires,
        // then is sent again: at least once.
        self.sender.abort();
        let _ = self.sender.await;
        self.store.close().await;
        result
    }
}
