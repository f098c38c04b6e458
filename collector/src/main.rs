//! `lenscap-collector`: the command line. Everything else is in the
//! library; this file parses arguments, sets up logging and waits for a
//! signal.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use lenscap_collector::admin;
use lenscap_collector::auth::{new_token, token_hash};
use lenscap_collector::config::{NetLimits, ServeConfig};
use lenscap_collector::server;
use lenscap_collector::store::{DbUrl, Role, Store};
use lenscap_collector::timefmt::now_ms;

const DEFAULT_DB: &str = "sqlite:lenscap-collector.db";

/// mimalloc rather than glibc's malloc: ingest allocates and frees many
/// small strings per event (JSON values, canonical text) on several
/// threads, and glibc's allocator took about a quarter of the HTTP
/// workers' time there (docs/benchmarks.md, "Collector").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "lenscap-collector",
    version,
    about = "Collects lenscap events from a fleet and shows them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API and dashboard.
    Serve {
        /// Address to listen on. Plain HTTP is refused off loopback.
        #[arg(long, default_value = "127.0.0.1:8470")]
        listen: SocketAddr,
        /// `sqlite:PATH` (created if missing) or `postgres://user@host/db`.
        #[arg(long, default_value = DEFAULT_DB)]
        db: String,
        /// PEM certificate chain for HTTPS.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for HTTPS.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Allow plain HTTP on a non-loopback address (a TLS proxy in front).
        #[arg(long)]
        insecure_http: bool,
        /// Seconds a client has to send a request's headers (and the
        /// longest an idle keep-alive connection stays open).
        #[arg(long, value_name = "SECONDS", default_value_t = 10)]
        header_read_timeout: u64,
        /// Seconds a client has to send a request's whole body, from the
        /// end of its headers.
        #[arg(long, value_name = "SECONDS", default_value_t = 30)]
        body_read_timeout: u64,
        /// Seconds for a whole request, answer included (then 408).
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        request_timeout: u64,
        /// Open connections at most; more are closed on arrival.
        #[arg(long, value_name = "N", default_value_t = 512)]
        max_connections: usize,
        /// Open connections from one client address (IPv6: one /64) at
        /// most; 0 for no limit (behind a proxy every client has its address).
        #[arg(long, value_name = "N", default_value_t = 32)]
        max_connections_per_ip: usize,
        /// Serve /metrics without a token (by default it needs a reader
        /// or admin token, as the rest of the API).
        #[arg(long)]
        public_metrics: bool,
    },
    /// Manage tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Manage hosts: list them, decide held enrolments.
    Host {
        #[command(subcommand)]
        command: HostCommand,
    },
    /// Where incidents are told: webhooks and syslog receivers.
    Alert {
        #[command(subcommand)]
        command: AlertCommand,
    },
    /// Incidents, derived from stored events.
    Incidents {
        #[command(subcommand)]
        command: IncidentsCommand,
    },
}

// `Add` carries every filter flag; the enum is parsed once per run, so
// its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum AlertCommand {
    /// Add a destination. Each incident alerts it once per state it
    /// reaches at or above --min-severity.
    Add {
        /// A name for it (letters, digits, `-`, `_`, `.`).
        name: String,
        /// POST signed JSON to this URL (https; http on loopback).
        #[arg(long, value_name = "URL", conflicts_with = "syslog")]
        webhook: Option<String>,
        /// Send RFC 5424 lines to tcp://HOST:PORT, or over TLS to
        /// tls://HOST:PORT (RFC 5425).
        #[arg(long, value_name = "URL")]
        syslog: Option<String>,
        /// For tls:// syslog or an https webhook: a PEM file of the CA(s)
        /// the receiver's certificate must chain to (default: the public
        /// web roots).
        #[arg(long, value_name = "FILE")]
        ca: Option<std::path::PathBuf>,
        /// Webhook signing secret (16+ printable characters); made and
        /// printed once when left out.
        #[arg(long)]
        secret: Option<String>,
        /// Lowest incident severity that alerts: info, low, medium, high,
        /// critical.
        #[arg(long, default_value = "high")]
        min_severity: String,
        /// Incident states that alert, comma-separated (open, contained,
        /// failed, restored, would_do, closed); all when left out.
        #[arg(long, default_value = "")]
        states: String,
        /// Only incidents of this rule (e.g. catalog:zoom-opener).
        #[arg(long)]
        rule: Option<String>,
        /// Only incidents on the Mac with this hostname.
        #[arg(long)]
        host: Option<String>,
        /// Only incidents whose strongest verdict is one of these,
        /// comma-separated (remediate, report, allow).
        #[arg(long)]
        verdict: Option<String>,
        /// Only incidents holding a finding of one of these kinds,
        /// comma-separated (listener, persistence, camera_grant,
        /// camera_use).
        #[arg(long)]
        kind: Option<String>,
        /// Allow a plain http webhook off loopback.
        #[arg(long)]
        allow_http: bool,
        #[arg(long, default_value = DEFAULT_DB)]
        db: String,
    },
    /// Destinations, the queue's counts and the dead letters.
    List {
        #[arg(long, default_value = DEFAULT_DB)]
        db: String,
    },
    /// Send a test alert to a destination now and say whether it arrived.
    Test {
        name: String,
        #[arg(long, default_value = DEFAULT_DB)]
        db: String,
    },
    /// Remove a destination and its queued alerts.
    Remove {
        name: String,
        #[arg(long, default_value = DEFAULT_DB)]
        db: String,
    },
    /// The newest alerts, with their delivery status.
    Queue {
        /// Only pending, sent or dead alerts.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long, default_value = DEFAULT_DB)]
        db: String,
    },
    /// Queue every dead alert again.
    Retry {
        #[arg(long, default_value = DEFAULT_DB)]
        db: String,
    },
}

#[derive(Debug, Subcommand)]
enum IncidentsCommand {
    /// Forget every incident and derive them again from the stored events.
    Rebuild {
        #[arg(long, default_value = DEFAULT_DB)]
        db: String,
    },
}

#[derive(Debug, Subcommand)]
enum HostCommand {
    /// Every enrolled host, with its active tokens and waiting enrolments.
    List {
        #[arg(long, default_value = DEFAULT_DB)]
        db: String,
    },
    /// Enrolments of an already enrolled identity, waiting for an admin.
    Pending {
        /// Decided requests too.
        #[arg(long)]
        all: bool,
        #[arg(long, default_value = DEFAULT_DB)]
        db: String,
    },
    /// Let a held enrolment have the host: its agent gets a token at its
    /// next attempt, and the host's older tokens are revoked now.
    Approve {
        /// Host id, hostname, hardware UUID, machine-id or serial.
        host: String,
        /// Which request, when the host has several waiting.
        #[arg(long, value_name = "ID")]
        request: Option<i64>,
        #[arg(long, default_value = DEFAULT_DB)]
        db: String,
    },
    /// Refuse a held enrolment: its attempts are answered 403.
    Refuse {
        /// Host id, hostname, hardware UUID, machine-id or serial.
        host: String,
        /// Which request, when the host has several waiting.
        #[arg(long, value_name = "ID")]
        request: Option<i64>,
        #[arg(long, default_value = DEFAULT_DB)]
        db: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a new token and print it. Only its hash is stored: keep it.
    Create {
        #[arg(long, value_enum)]
        role: TokenRole,
        #[arg(long, default_value = DEFAULT_DB)]
        db: String,
        /// A note to remember what it is for.
        #[arg(long)]
        note: Option<String>,
    },
    /// List tokens by id (the start of their hash; the tokens themselves
    /// are not stored).
    List {
        /// Revoked tokens too.
        #[arg(long)]
        all: bool,
        #[arg(long, default_value = DEFAULT_DB)]
        db: String,
    },
    /// Revoke a token (by id, or the token itself), or every token of a
    /// host (by id, hostname or identity). Revoked tokens get 401.
    Revoke {
        /// Token id, token, or host.
        target: String,
        #[arg(long, default_value = DEFAULT_DB)]
        db: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TokenRole {
    /// Lets agents enroll (give it to MDM as the EnrollmentSecret).
    Enroll,
    /// Reads events, hosts, exports and the dashboard.
    Reader,
    /// A reader that may also change the fleet policy.
    Admin,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve {
            listen,
            db,
            tls_cert,
            tls_key,
            insecure_http,
            header_read_timeout,
            body_read_timeout,
            request_timeout,
            max_connections,
            max_connections_per_ip,
            public_metrics,
        } => {
            let mut config = ServeConfig::new(listen, &db, tls_cert, tls_key, insecure_http)?;
            config.net = NetLimits::new(
                header_read_timeout,
                body_read_timeout,
                request_timeout,
                max_connections,
                max_connections_per_ip,
            )?;
            config.public_metrics = public_metrics;
            let stop = shutdown_signal();
            let running = server::start(config).await?;
            eprintln!("lenscap-collector listening on {}", running.base_url());
            stop.await;
            tracing::info!("stopping");
            running.shutdown().await.context("stopping the server")?;
        }
        Command::Token {
            command: TokenCommand::Create { role, db, note },
        } => {
            let role = match role {
                TokenRole::Enroll => Role::Enroll,
                TokenRole::Reader => Role::Reader,
                TokenRole::Admin => Role::Admin,
            };
            let url = DbUrl::parse(&db)?;
            let store = Store::open(&url).await?;
            let token = new_token(role).context("no system randomness to make a token")?;
            store
                .insert_token(&token_hash(&token), role, None, note.as_deref(), now_ms())
                .await?;
            store.close().await;
            println!("{token}");
        }
        Command::Token {
            command: TokenCommand::List { all, db },
        } => {
            with_store(
                &db,
                |store| async move { admin::token_list(&store, all).await },
            )
            .await?;
        }
        Command::Token {
            command: TokenCommand::Revoke { target, db },
        } => {
            with_store(&db, |store| async move {
                admin::token_revoke(&store, &target, now_ms()).await
            })
            .await?;
        }
        Command::Host { command } => match command {
            HostCommand::List { db } => {
                with_store(&db, |store| async move { admin::host_list(&store).await }).await?;
            }
            HostCommand::Pending { all, db } => {
                with_store(
                    &db,
                    |store| async move { admin::pending(&store, all).await },
                )
                .await?;
            }
            HostCommand::Approve { host, request, db } => {
                with_store(&db, |store| async move {
                    admin::approve(&store, &host, request, now_ms()).await
                })
                .await?;
            }
            HostCommand::Refuse { host, request, db } => {
                with_store(&db, |store| async move {
                    admin::refuse(&store, &host, request, now_ms()).await
                })
                .await?;
            }
        },
        Command::Alert { command } => match command {
            AlertCommand::Add {
                name,
                webhook,
                syslog,
                secret,
                min_severity,
                states,
                rule,
                host,
                verdict,
                kind,
                ca,
                allow_http,
                db,
            } => {
                let ca_pem =
                    match &ca {
                        Some(path) => Some(std::fs::read_to_string(path).with_context(|| {
                            format!("cannot read the CA file {}", path.display())
                        })?),
                        None => None,
                    };
                let add = admin::AlertAdd {
                    name,
                    webhook,
                    syslog,
                    secret,
                    min_severity,
                    states,
                    rule,
                    host,
                    verdict,
                    finding_kind: kind,
                    ca_pem,
                    allow_http,
                };
                with_store(&db, |store| async move {
                    admin::alert_add(&store, add, now_ms()).await
                })
                .await?;
            }
            AlertCommand::List { db } => {
                with_store(&db, |store| async move { admin::alert_list(&store).await }).await?;
            }
            AlertCommand::Test { name, db } => {
                with_store(&db, |store| async move {
                    admin::alert_test(&store, &name, now_ms()).await
                })
                .await?;
            }
            AlertCommand::Remove { name, db } => {
                with_store(&db, |store| async move {
                    admin::alert_remove(&store, &name).await
                })
                .await?;
            }
            AlertCommand::Queue { status, limit, db } => {
                with_store(&db, |store| async move {
                    admin::alert_queue(&store, status.as_deref(), limit).await
                })
                .await?;
            }
            AlertCommand::Retry { db } => {
                with_store(&db, |store| async move {
                    admin::alert_retry(&store, now_ms()).await
                })
                .await?;
            }
        },
        Command::Incidents {
            command: IncidentsCommand::Rebuild { db },
        } => {
            with_store(&db, |store| async move {
                admin::incidents_rebuild(&store).await
            })
            .await?;
        }
    }
    Ok(())
}

/// Open the store, run one admin command, close the store, print what it
/// says.
async fn with_store<F, Fut>(db: &str, run: F) -> anyhow::Result<()>
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = Result<String, admin::AdminError>>,
{
    let url = DbUrl::parse(db)?;
    let store = Store::open(&url).await?;
    let result = run(store.clone()).await;
    store.close().await;
    println!("{}", result?);
    Ok(())
}

/// Ctrl-C or SIGTERM (launchd, systemd, docker stop). The handlers are
/// installed when this is called, not when it is first awaited, so a
/// signal that arrives right after "listening" is not missed (it would
/// kill the process the default way instead of stopping it gracefully).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    let mut term = signal(SignalKind::terminate()).ok();
    async move {
        let wait = |s: &mut Option<tokio::signal::unix::Signal>| {
            let s = s.take();
            async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
        };
        tokio::select! {
            _ = wait(&mut interrupt) => {},
            _ = wait(&mut term) => {},
        }
    }
}
