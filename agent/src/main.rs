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
    /// Run the daemon (what launchd starts): watch, judge, remediate in
    /// remediate mode, record everything. Stops cleanly on SIGTERM.
    Run {
        #[command(flatten)]
        common: Common,
    },
    /// Show what the daemon is doing, from its state directory.
    Status {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: Common,
    },
    /// List or restore what the daemon moved into quarantine.
    Quarantine {
        #[command(subcommand)]
        action: QuarantineAction,
    },
    /// The local event history (findings, actions, agent health).
    Events {
        #[arg(long)]
        json: bool,
        /// Only events from the last DURATION (`30m`, `2h`, `7d`) or since
        /// a Unix time in seconds.
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// At most this many events (the newest).
        #[arg(long, default_value_t = 100)]
        limit: u32,
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
enum QuarantineAction {
    /// Every quarantine record with its files.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Put a record's files back exactly (owner, mode, bytes).
    Restore {
        /// The record id from `quarantine list`.
        id: String,
        /// Also allow the restored helper from now on, so the daemon does
        /// not remove it again.
        #[arg(long)]
        allow: bool,
        #[command(flatten)]
        common: Common,
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
        Command::Run { common } => {
            init_logging(common.log_format);
            let sources = sources(&common);
            lenscap::daemon::run(sources)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json, common } => {
            init_logging(common.log_format);
            let loaded = load_config(&common)?;
            let state_dir = &loaded.config.state_dir;
            let status = lenscap::daemon::status::Status::read(state_dir).with_context(|| {
                format!(
                    "no daemon status in {} (has `lenscap run` ever started with this configuration?)",
                    state_dir.display()
                )
            })?;
            let alive = process_alive(status.pid);
            let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
            if json {
                let mut v = serde_json::to_value(&status)?;
                v["alive"] = serde_json::Value::Bool(alive && status.running);
                serde_json::to_writer_pretty(&mut stdout, &v)?;
                writeln!(stdout)?;
            } else {
                write!(
                    stdout,
                    "{}",
                    lenscap::render::status(&status, alive, unix_now())
                )?;
            }
            stdout.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Quarantine {
            action: QuarantineAction::List { json, common },
        } => {
            init_logging(common.log_format);
            let loaded = load_config(&common)?;
            let vault = lenscap::act::quarantine::Vault::open(&loaded.config.state_dir)?;
            let records = vault.list();
            let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
            if json {
                serde_json::to_writer_pretty(&mut stdout, &records)?;
                writeln!(stdout)?;
            } else {
                write!(stdout, "{}", lenscap::render::quarantine_list(&records))?;
            }
            stdout.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Quarantine {
            action: QuarantineAction::Restore { id, allow, common },
        } => {
            init_logging(common.log_format);
            let loaded = load_config(&common)?;
            let report = lenscap::act::restore::restore(&loaded.config, &id, allow)?;
            for p in &report.restored {
                println!("restored {}", p.display());
            }
            for p in &report.placeholders_removed {
                println!("removed placeholder {}", p.display());
            }
            if allow {
                println!("added allow rule restored-{id}: lenscap will leave these files alone");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Events {
            json,
            since,
            limit,
            common,
        } => {
            init_logging(common.log_format);
            let loaded = load_config(&common)?;
            let since_ms = match since.as_deref() {
                Some(s) => Some(parse_since(s, unix_now())?),
                None => None,
            };
            let reader = lenscap::report::outbox::OutboxReader::open(&loaded.config.state_dir)?;
            let events = reader.history(&lenscap::report::outbox::HistoryFilter {
                since_ms,
                kinds: Vec::new(),
                limit: limit as usize,
            })?;
            let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
            if json {
                serde_json::to_writer_pretty(&mut stdout, &events)?;
                writeln!(stdout)?;
            } else {
                write!(stdout, "{}", lenscap::render::events(&events))?;
            }
            stdout.flush()?;
            Ok(ExitCode::SUCCESS)
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

fn sources(common: &Common) -> Sources {
    match &common.config {
        Some(path) => Sources::explicit(path.clone()),
        None => Sources::system(),
    }
}

fn load_config(common: &Common) -> Result<config::Loaded> {
    let loaded = config::load(&sources(common))?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    Ok(loaded)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Is `pid` a live process? (signal 0 checks without signalling.)
fn process_alive(pid: u32) -> bool {
    i32::try_from(pid)
        .ok()
        .is_some_and(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok())
}

/// `--since`: `30s`, `15m`, `2h`, `7d` ago, or a Unix time in seconds.
/// Returns milliseconds since the epoch.
fn parse_since(s: &str, now: i64) -> Result<i64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .with_context(|| format!("--since {s:?}: expected e.g. 30m, 2h, 7d or a Unix time"))?;
    let secs = match unit {
        "" => return Ok(n.saturating_mul(1000)),
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        other => anyhow::bail!("--since {s:?}: unknown unit {other:?}; use s, m, h or d"),
    };
    Ok(now.saturating_sub(secs).saturating_mul(1000))
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
