//! The `lenscap` command line. CLI only: parse arguments, load
//! configuration, call the library, print, choose the exit status.
//! `anyhow` lives here and nowhere else.
//!
//! Exit status: 0 nothing to remediate; 3 `scan` found at least one
//! `remediate` verdict; 78 (EX_CONFIG, as launchd shows it) the
//! configuration or a rule in it is invalid; 1 any other error; 2 a usage
//! error (clap); 10 `update --check` found a newer release.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use lenscap::clock::unix_now;
use lenscap::config::{self, Sources};
use lenscap::logging::{LogFormat, LogOptions};
use lenscap::observe::inventory::GatherOptions;
use lenscap::platform::Native;
use lenscap::policy;
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
    /// Read the managed preferences from FILE instead of /Library/Managed
    /// Preferences (staging trees and tests).
    #[arg(
        long,
        value_name = "FILE",
        global = true,
        hide = true,
        conflicts_with = "config"
    )]
    managed_preferences: Option<PathBuf>,
    /// Read the local preferences from FILE instead of /Library/Preferences
    /// (staging trees and tests).
    #[arg(
        long,
        value_name = "FILE",
        global = true,
        hide = true,
        conflicts_with = "config"
    )]
    local_preferences: Option<PathBuf>,
    /// Log format (text or one JSON object per line). The level comes
    /// from LENSCAP_LOG (e.g. `debug`, `lenscap=debug`); default `info`.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    /// Append logs to this file instead of writing them to stderr.
    #[arg(long, value_name = "PATH", global = true)]
    log_file: Option<PathBuf>,
}

/// `lenscap mode` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    Monitor,
    Remediate,
}

/// Shells `lenscap completions` writes scripts for.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
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
    /// Show the mode (monitor or remediate) and where it is set, or set it
    /// in the local preferences (root). The daemon picks it up at once.
    Mode {
        /// The mode to set; without it, show the mode in force.
        #[arg(value_enum)]
        mode: Option<ModeArg>,
        #[command(flatten)]
        common: Common,
    },
    /// Check for, or install, a signed lenscap release (UpdateURL,
    /// UpdatePublicKey). `--check` exits 10 when a newer release exists.
    Update {
        /// Only report the installed and the latest version.
        #[arg(long, conflicts_with = "apply", required_unless_present = "apply")]
        check: bool,
        /// Download, verify the signature and replace the binary.
        #[arg(long)]
        apply: bool,
        /// Replace this file instead of the running lenscap.
        #[arg(long, value_name = "PATH", conflicts_with = "check")]
        bin_path: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Print a shell completion script to stdout.
    #[command(hide = true)]
    Completions { shell: Shell },
    /// Print the man page (roff) to stdout.
    #[command(hide = true)]
    Man,
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
            ExitCode::from(if is_bad_config(&e) { 78 } else { 1 })
        }
    }
}

/// Whether `e` is a bad configuration (exit 78) rather than a failure.
/// `lenscap run` wraps the same errors in `DaemonError`, whose
/// `#[error(transparent)]` variants hide them from `anyhow`'s downcast, so
/// they are looked for there too: launchd must show 78 for the daemon
/// exactly as an admin sees it from `scan`.
fn is_bad_config(e: &anyhow::Error) -> bool {
    use lenscap::daemon::DaemonError;
    e.downcast_ref::<config::ConfigError>().is_some()
        || e.downcast_ref::<lenscap::judge::JudgeError>().is_some()
        || matches!(
            e.downcast_ref::<DaemonError>(),
            Some(DaemonError::Config(_) | DaemonError::Rules(_))
        )
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Scan {
            json,
            no_probe,
            common,
        } => {
            init_logging(&common)?;
            let loaded = load_config(&common)?;
            let platform = Native::new(loaded.config.tools());
            let report = scan::run(&platform, &loaded, GatherOptions { probe: !no_probe })
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
            init_logging(&common)?;
            let sources = sources(&common);
            lenscap::daemon::run(sources)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json, common } => {
            init_logging(&common)?;
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
                    lenscap::daemon::status::render(&status, alive, unix_now())
                )?;
            }
            stdout.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Quarantine {
            action: QuarantineAction::List { json, common },
        } => {
            init_logging(&common)?;
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
            init_logging(&common)?;
            let loaded = load_config(&common)?;
            let report = lenscap::act::restore::restore(&loaded.config, &id, allow)?;
            for p in &report.restored {
                println!("restored {}", p.display());
            }
            for p in &report.placeholders_removed {
                println!("removed placeholder {}", p.display());
            }
            for line in lenscap::act::grants::grant_again(&report.grants_reset) {
                println!("{line}");
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
            init_logging(&common)?;
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
            init_logging(&common)?;
            let loaded = load_config(&common)?;
            // The keys, then every rule in force with where it came from
            // (the same merge `scan` and the daemon judge by). Rules that
            // do not compile still get the keys shown, then exit 78.
            let merged = policy::load(&loaded);
            let mut stdout = std::io::stdout().lock();
            if json {
                let mut out = config::to_json(&loaded);
                if let (Ok(m), Some(obj)) = (&merged, out.as_object_mut()) {
                    obj.insert("policy".into(), policy::show::to_json(m));
                }
                serde_json::to_writer_pretty(&mut stdout, &out)?;
                writeln!(stdout)?;
            } else {
                write!(stdout, "{}", config::render_show(&loaded))?;
                if let Ok(m) = &merged {
                    write!(stdout, "\n{}", policy::show::render(m))?;
                }
            }
            stdout.flush()?;
            merged.context("the rules in force are invalid")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Update {
            check,
            apply: _,
            bin_path,
            common,
        } => {
            init_logging(&common)?;
            update(check, bin_path, &common)
        }
        Command::Mode { mode, common } => {
            init_logging(&common)?;
            mode_command(mode, &common)
        }
        Command::Completions { shell } => print_completions(shell),
        Command::Man => print_man(),
    }
}

/// `lenscap mode [monitor|remediate]`.
fn mode_command(mode: Option<ModeArg>, common: &Common) -> Result<ExitCode> {
    use lenscap::config::set::{mode_value, render_mode, set_mode};
    let sources = sources(common);
    let Some(mode) = mode else {
        let loaded = load_config(common)?;
        print!("{}", render_mode(&loaded));
        return Ok(ExitCode::SUCCESS);
    };
    let mode = match mode {
        ModeArg::Monitor => config::Mode::Monitor,
        ModeArg::Remediate => config::Mode::Remediate,
    };
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    let set = set_mode(&sources, mode, euid)?;
    if set.before == set.after {
        println!(
            "mode is already {} ({})",
            mode_value(set.after),
            set.file.display()
        );
    } else {
        println!(
            "mode: {} -> {} ({}); the running daemon picks it up without a restart",
            mode_value(set.before),
            mode_value(set.after),
            set.file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn sources(common: &Common) -> Sources {
    match &common.config {
        Some(path) => Sources::explicit(path.clone()),
        None => {
            let mut s = Sources::system();
            if let Some(m) = &common.managed_preferences {
                s.managed = Some(m.clone());
            }
            if let Some(l) = &common.local_preferences {
                s.local = Some(l.clone());
            }
            s
        }
    }
}

fn load_config(common: &Common) -> Result<config::Loaded> {
    let loaded = config::load(&sources(common))?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    Ok(loaded)
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

fn init_logging(common: &Common) -> Result<()> {
    lenscap::logging::init(&LogOptions {
        format: common.log_format,
        file: common.log_file.clone(),
    })?;
    Ok(())
}

/// `lenscap update --check | --apply`.
fn update(check: bool, bin_path: Option<PathBuf>, common: &Common) -> Result<ExitCode> {
    use lenscap::update::{Applied, EXIT_UPDATE_AVAILABLE, Trigger, Updater};
    let loaded = load_config(common)?;
    let install_path = match bin_path {
        Some(path) => path,
        None => std::env::current_exe().context("cannot find the running lenscap binary")?,
    };
    let updater = Updater::new(&loaded, install_path)?;
    if check {
        let c = updater.check()?;
        println!("installed: {}", c.installed);
        println!("latest:    {}", c.latest);
        if !c.update_available() {
            println!("lenscap is up to date");
            return Ok(ExitCode::SUCCESS);
        }
        match &c.asset {
            Some(asset) => println!("update available: {asset}"),
            None => println!("update available, but the release has no asset for this machine"),
        }
        if !c.permission.manual() {
            println!(
                "updates are disabled here: the configuration comes from MDM; install the pkg through the MDM"
            );
        } else if !c.key_configured {
            println!("set UpdatePublicKey before `lenscap update --apply` can install it");
        } else {
            println!("install it with: sudo lenscap update --apply");
        }
        return Ok(ExitCode::from(EXIT_UPDATE_AVAILABLE));
    }
    match updater.apply(Trigger::Manual)? {
        Applied::UpToDate { installed } => {
            println!("lenscap {installed} is the latest release; nothing to do");
        }
        Applied::Updated {
            from,
            to,
            path,
            reported,
        } => {
            println!(
                "updated {}: {from} -> {to} (signature verified with UpdatePublicKey; the new binary reports {reported:?})",
                path.display()
            );
            println!(
                "a running daemon keeps {from} until it restarts: sudo launchctl kickstart -k system/io.lenscap.agent"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `lenscap completions <shell>` and `lenscap man`: generated from the
/// clap definitions above, so they never drift from the real options.
fn print_completions(shell: Shell) -> Result<ExitCode> {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut stdout = std::io::stdout().lock();
    clap_complete::generate(shell, &mut Cli::command(), "lenscap", &mut stdout);
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn print_man() -> Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    clap_mangen::Man::new(Cli::command()).render(&mut stdout)?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}
