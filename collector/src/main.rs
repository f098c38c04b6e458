//! `lenscap-collector`: the command line. Everything else is in the
//! library; this file parses arguments, sets up logging and waits for a
//! signal.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use lenscap_collector::auth::{new_token, token_hash};
use lenscap_collector::config::ServeConfig;
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
    },
    /// Manage tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
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
        } => {
            let config = ServeConfig::new(listen, &db, tls_cert, tls_key, insecure_http)?;
            let running = server::start(config).await?;
            eprintln!("lenscap-collector listening on {}", running.base_url());
            shutdown_signal().await;
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
    }
    Ok(())
}

/// Ctrl-C or SIGTERM (launchd, systemd, docker stop).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
