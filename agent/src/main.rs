//! The `lenscap` command line. CLI only: parse arguments, load
//! configuration, call the library, print, choose the exit status.
//! `anyhow` lives here and nowhere else.
//!
//! Exit status: 0 nothing to remediate; 3 `scan` found at least one
//! `remediate` verdict; 78 (EX_CONFIG, as launchd shows it) the
//! configuration or a rule in it is invalid; 1 any other error; 2 a usage
//! error (clap).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use lenscap::config::{self, Sources};
use lenscap::observe::inventory::GatherOptions;
use lenscap::platform::Native;
use lenscap::scan;

/// lenscap finds undisclosed helper web servers (like Zoom's 2019
/// ZoomOpener), removes them reversibly and reports what it did.
#[derive(Debug, Parser)]
#[command(name = "lenscap", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Common {
    /// Read configuration from this plist instead of the managed and local
    /// preferences (/Library/[Managed ]Preferences/io.lenscap.agent.plist).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Observe and judge once: every listener and persistence item with a
    /// verdict. Changes nothing. Exits 3 when something should be remediated.
    Scan {
        /// Print the JSON contract (docs/scan-json.md) instead of a table.
        #[arg(long)]
        json: bool,
        /// Do not send HTTP probes to listeners.
        #[arg(long)]
        no_probe: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Print the effective configuration and where each value came from.
    Show {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: Common,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            // `{:#}` prints the whole context chain on one line.
            eprintln!("lenscap: error: {e:#}");
            // 78 = config::EXIT_CONFIG (EX_CONFIG); ExitCode takes a u8.
            let bad_config = e.downcast_ref::<config::ConfigError>().is_some()
                || e.downcast_ref::<lenscap::judge::JudgeError>().is_some();
            ExitCode::from(if bad_config { 78 } else { 1 })
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Scan {
            json,
            no_probe,
            common,
        } => {
            init_logging(common.log_format);
            let loaded = load_config(&common)?;
            let platform = Native::new(loaded.config.tools());
            let report = scan::run(
                &platform,
                &loaded.config,
                GatherOptions { probe: !no_probe },
            )
            .context("the configured rules are invalid")?;
            // Stdout is line-buffered: unbuffered JSON would cost a write
            // per line, which dominated the whole scan's time.
            let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
            if json {
                serde_json::to_writer_pretty(&mut stdout, &report)?;
                writeln!(stdout)?;
            } else {
                let color = std::io::stdout().is_terminal();
                write!(stdout, "{}", scan::render_table(&report, color))?;
            }
            stdout.flush()?;
            Ok(if report.needs_remediation() {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Config {
            action: ConfigAction::Show { json, common },
        } => {
            init_logging(common.log_format);
            let loaded = load_config(&common)?;
            let mut stdout = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut stdout, &config::to_json(&loaded))?;
                writeln!(stdout)?;
            } else {
                write!(stdout, "{}", config::render_show(&loaded))?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load_config(common: &Common) -> Result<config::Loaded> {
    let sources = match &common.config {
        Some(path) => Sources::explicit(path.clone()),
        None => Sources::system(),
    };
    let loaded = config::load(&sources)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    Ok(loaded)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LENSCAP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests calling twice) is harmless: ignore the error.
    let _ = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
