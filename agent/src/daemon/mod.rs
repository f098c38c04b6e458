//! `lenscap run`: the launchd daemon — the loop and the wiring, and the
//! only place the four stages meet. Each stage's own state lives with the
//! stage: incremental observation in `observe::{sweep, camera_watch}`, the
//! breaker in `act::budget`, reinstall undo in `act::reinstall`, what is
//! news and the outbox in `report::{reporter, camera_sessions}`, delivery
//! and the fleet policy in `report::deliverer`. Here: start-up, the select
//! loop, signals and file watchers ([`watch`]), configuration reloads, and
//! [`status`].
//!
//! Lifecycle: load config → open state (journal, vault, guard, outbox) →
//! finish whatever a crash left half-done → loop { sweep on a timer or a
//! watcher trigger; judge; act; report; write status } → on SIGTERM or
//! SIGINT finish the step in progress (the loop never awaits inside a
//! step, so a signal is only acted on between steps), record `stopped`,
//! exit 0. launchd restarts it if it dies.
//!
//! Delivery to the collector runs on its own thread
//! (`report::upload::worker`); what it has to say — health events, a new
//! fleet policy — arrives here as a [`Notice`] between steps, so the loop
//! never waits on the network and stays the only writer of the outbox and
//! the judge's policy.

pub mod status;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::act::budget::{BREAKER_WINDOW, Budget};
use crate::act::execute::{self, Context, StepEvent};
use crate::act::guard::{Guard, GuardError};
use crate::act::journal::{Entry, Journal, JournalError, StepStatus};
use crate::act::lock::StateLock;
use crate::act::manifest::RecordState;
use crate::act::plan::{self, PlanOptions};
use crate::act::quarantine::{QuarantineError, Vault};
use crate::act::reinstall::Reinstalls;
use crate::act::tell::{self, Gate, Telling};
use crate::clock::{unix_now, unix_now_us};
use crate::config::{self, Config, ConfigError, Loaded, Mode, Sources};
use crate::fsutil::{FileStamp, what_stands_at};
use crate::judge::{self, JudgeError, Policy};
use crate::model::{Finding, FindingKind, Verdict};
use crate::observe::camera_watch::{CameraHealth, CameraWatch};
use crate::observe::signing::SignatureCache;
use crate::observe::sweep::SweepState;
use crate::platform::{Native, Platform};
use crate::policy::{load_local_rules, policy_for};
use crate::report::camera_sessions::CameraSessions;
use crate::report::deliverer::Deliverer;
use crate::report::outbox::OutboxError;
use crate::report::policy_sync::FleetAdditions;
use crate::report::reporter::Reporter;
use crate::report::upload::worker::Notice;

use self::status::{RecentAction, Status};
use self::watch::{Trigger, WatchSet, Watches};

/// How often `status.json` is rewritten when only the sweep counters
/// changed; anything else in it is written at once. At a sweep every
/// 0.5 s, rewriting it every sweep was a sizeable share of an idle sweep.
const STATUS_EVERY: Duration = Duration::from_secs(2);

/// How often new homes and guard directories join the file watchers (the
/// periodic persistence rescan covers the time in between).
const WATCH_REFRESH: Duration = Duration::from_secs(30);

/// When the daemon first looks for an update, and how often after.
const UPDATE_FIRST: Duration = Duration::from_secs(600);
const UPDATE_EVERY: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the configured rules are invalid: {0}")]
    Rules(#[from] JudgeError),
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Vault(#[from] QuarantineError),
    #[error(transparent)]
    Guard(#[from] GuardError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("cannot start the runtime or signal handlers: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Run the daemon until SIGTERM or SIGINT.
pub fn run(sources: Sources) -> Result<(), DaemonError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    runtime.block_on(run_loop(sources))
}

async fn run_loop(sources: Sources) -> Result<(), DaemonError> {
    let loaded = config::load(&sources)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let (notice_tx, mut notices) = mpsc::unbounded_channel();
    let mut d = Daemon::start(sources, loaded, notice_tx)?;
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Runtime)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Runtime)?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut watches = match Watches::start(&d.watch_set(), tx) {
        Ok(w) => Some(w),
        Err(e) => {
            // Without watchers the sweeps still find everything, only later.
            tracing::error!(error = %e, "file watchers unavailable; relying on periodic rescans");
            None
        }
    };
    let mut tick = Tick::new(&d.platform, d.sweep_interval());
    let mut watch_refreshed = Instant::now();
    // Probes run beside the sweeps; a result that changes something wakes
    // the loop to judge at once rather than at the next tick.
    let probed = d.sweep.probe_results();
    // Self-update: first look 10 minutes after start (not in the boot
    // rush), then every UPDATE_EVERY. Only when configuration allows
    // automatic updates (never by default under MDM, which ships pkgs).
    let mut update_tick =
        tokio::time::interval_at(tokio::time::Instant::now() + UPDATE_FIRST, UPDATE_EVERY);
    update_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            biased;
            _ = term.recv() => { d.shutdown("SIGTERM"); break; }
            _ = update_tick.tick() => {
                if d.try_self_update().await {
                    // The new binary is in place; launchd (KeepAlive)
                    // starts it once this process exits.
                    break;
                }
            }
            _ = int.recv() => { d.shutdown("SIGINT"); break; }
            Some(notice) = notices.recv() => {
                if d.delivery_notice(notice) {
                    d.cycle();
                }
            }
            Some(first) = rx.recv() => {
                let mut triggers = vec![first];
                while let Ok(t) = rx.try_recv() {
                    triggers.push(t);
                }
                if triggers.contains(&Trigger::Config) && d.reload() {
                    tick = Tick::new(&d.platform, d.sweep_interval());
                }
                if triggers.contains(&Trigger::Persistence) {
                    d.sweep.mark_persistence_dirty();
                }
                d.cycle();
                if let Some(w) = watches.as_mut() {
                    w.refresh(&d.watch_set());
                }
            }
            _ = tick.tick() => {
                d.cycle();
                // New homes and guard dirs join the watch set now and then;
                // the periodic rescan covers the time in between.
                if watch_refreshed.elapsed() >= WATCH_REFRESH
                    && let Some(w) = watches.as_mut()
                {
                    w.refresh(&d.watch_set());
                    watch_refreshed = Instant::now();
                }
            }
            () = probed.notified() => d.cycle(),
        }
    }
    Ok(())
}

/// The sweep timer: the platform's periodic timer descriptor where it has
/// one ([`Platform::periodic_timer`]: one wake-up per tick), else tokio's
/// interval (two: its timer wheel wakes at the start of the 64 ms slot the
/// deadline falls in, then at the deadline). Ticks missed while a cycle
/// ran are skipped either way, not caught up.
enum Tick {
    Wheel(tokio::time::Interval),
    Fd(tokio::io::unix::AsyncFd<std::fs::File>),
}

impl Tick {
    fn new(platform: &Native, period: Duration) -> Tick {
        let fd = platform.periodic_timer(period).and_then(|fd| {
            let file = std::fs::File::from(fd);
            // SAFETY: the `File` owns the descriptor and the `AsyncFd`
            // owns the `File`: it stays open, and the same timer, until
            // the `AsyncFd` (which deregisters it first) is dropped.
            unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(
                    file,
                    tokio::io::Interest::READABLE,
                )
            }
            .ok()
        });
        match fd {
            Some(fd) => Tick::Fd(fd),
            None => {
                let mut i = tokio::time::interval(period);
                i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                Tick::Wheel(i)
            }
        }
    }

    async fn tick(&mut self) {
        match self {
            Tick::Wheel(i) => {
                i.tick().await;
            }
            Tick::Fd(fd) => loop {
                let Ok(mut ready) = fd.readable().await else {
                    // The runtime's driver is gone (shutting down): never
                    // tick again rather than spin.
                    std::future::pending::<()>().await;
                    return;
                };
                // The count of expirations since the last read: any
                // number is one tick (missed ones are skipped).
                let mut expirations = [0u8; 8];
                match ready.try_io(|f| std::io::Read::read(&mut f.get_ref(), &mut expirations)) {
                    Ok(Ok(_)) => {
                        // All expirations were taken: the next tick needs
                        // the next one, so skip the read that would only
                        // find nothing (tokio keeps an event that came in
                        // meanwhile).
                        ready.clear_ready();
                        return;
                    }
                    // Woken without an expiration to read: wait again.
                    Ok(Err(_)) | Err(_) => continue,
                }
            },
        }
    }
}

/// The daemon's state between cycles.
struct Daemon {
    sources: Sources,
    loaded: Loaded,
    policy: Policy,
    platform: Native,
    cache: SignatureCache,
    journal: Journal,
    vault: Vault,
    guard: Guard,
    lock: StateLock,
    reporter: Reporter,
    sweep: SweepState,
    /// Plan key → journal entry id, while the helper is still found.
    planned: BTreeMap<String, String>,
    /// The remediation budget, per actor (`act::budget`).
    budget: Budget,
    /// Identity of guard.json and allow-rules.json when last read.
    local_state_stamp: Option<(Option<FileStamp>, Option<FileStamp>)>,
    /// Reinstall attempts left in place, so each is reported once.
    reinstalls: Reinstalls,
    /// Allow rules from `quarantine restore --allow`, as last loaded.
    local_rules: Vec<crate::config::Rule>,
    status: Status,
    /// The delivery thread and the fleet policy in force.
    deliverer: Deliverer,
    /// The policy changed: judge the next sweep even if the machine did not.
    rejudge: bool,
    /// Grants, camera sessions and connections to flagged helpers.
    camera: CameraWatch,
    /// Listeners the last judgement flagged for remediation: connections
    /// to these are what a camera session is correlated with.
    flagged: BTreeSet<(IpAddr, u16)>,
    /// Camera sessions on record, and starts and stops held back.
    sessions: CameraSessions,
    /// What the person at the keyboard has been told (`act::tell`).
    telling: Telling,
    /// When `status.json` was last written, and what it said but for the
    /// counters every sweep moves.
    status_written: Option<(Instant, Status)>,
}

impl Daemon {
    fn start(
        sources: Sources,
        loaded: Loaded,
        notices: mpsc::UnboundedSender<Notice>,
    ) -> Result<Daemon, DaemonError> {
        let state_dir = loaded.config.state_dir.clone();
        create_state_dir(&state_dir)?;
        let lock = StateLock::new(&state_dir);
        let local_rules = load_local_rules(&state_dir);
        let mut deliverer = Deliverer::new(&loaded.config, notices);
        let policy = match policy_for(&loaded.config, &local_rules, deliverer.additions()) {
            Ok(p) => p,
            Err(e) => {
                // The stored fleet policy no longer fits (the built-in
                // catalog changed); the next poll brings one that does.
                tracing::error!(error = %e, "stored fleet policy not applied");
                deliverer.fleet = None;
                policy_for(&loaded.config, &local_rules, &FleetAdditions::default())?
            }
        };
        let platform = Native::new(loaded.config.tools());
        let host = platform.host_info();
        let mut reporter = Reporter::open(&loaded.config, &host)?;
        let vault = Vault::open(&state_dir)?;
        let journal = Journal::open(&state_dir)?;
        let guard = Guard::open(&state_dir)?;
        let mode = loaded.config.mode;
        let loaded_notify_user = loaded.config.notify_user;
        let max_remediations = loaded.config.max_remediations_per_hour;
        let status = Status::new(mode, unix_now(), guard.entries().len());
        reporter.started(mode, &host);
        let mut d = Daemon {
            sources,
            loaded,
            policy,
            platform,
            cache: SignatureCache::default(),
            journal,
            vault,
            guard,
            lock,
            reporter,
            sweep: SweepState::default(),
            planned: BTreeMap::new(),
            budget: Budget::new(max_remediations, BREAKER_WINDOW),
            reinstalls: Reinstalls::default(),
            local_state_stamp: None,
            local_rules,
            status,
            deliverer,
            rejudge: false,
            camera: CameraWatch::new(),
            flagged: BTreeSet::new(),
            sessions: CameraSessions::default(),
            telling: Telling::new(loaded_notify_user),
            status_written: None,
        };
        d.recover();
        d.write_status();
        // After the outbox is open and `started` is in it.
        d.deliverer.configure(&d.loaded.config);
        Ok(d)
    }

    fn config(&self) -> &Config {
        &self.loaded.config
    }

    fn sweep_interval(&self) -> Duration {
        Duration::from_millis(self.config().sweep_millis)
    }

    fn watch_set(&self) -> WatchSet {
        let mut config_files: Vec<PathBuf> = [
            self.sources.explicit.clone(),
            self.sources.managed.clone(),
            self.sources.local.clone(),
        ]
        .into_iter()
        .flatten()
        .collect();
        config_files.dedup();
        WatchSet {
            persistence_globs: self.config().persistence_dirs.clone(),
            guard_dirs: self.guard.watch_dirs(),
            config_files,
        }
    }

    /// Finish what a crash interrupted: the vault first (it completes or
    /// undoes half-done moves), then every unfinished journal entry.
    fn recover(&mut self) {
        {
            // Released before the entries run: `execute` takes the lock
            // itself, and flock(2) on a second descriptor of the same file
            // would wait for this one forever.
            let _held = self.lock.hold();
            for action in self.vault.recover() {
                tracing::warn!(?action, "quarantine recovery");
            }
        }
        let (entries, errors) = self.journal.unfinished();
        for e in errors {
            tracing::error!(error = %e, "journal entry skipped");
        }
        for mut entry in entries {
            tracing::warn!(id = %entry.id, subject = %entry.plan.subject, "finishing an interrupted remediation");
            self.planned
                .insert(entry.plan.key.clone(), entry.id.clone());
            self.execute(&mut entry);
        }
    }

    /// One observe → judge → act → report pass. A pass that finds
    /// nothing new costs one socket dump and the camera watch's checks:
    /// observations are assembled only to be judged.
    fn cycle(&mut self) {
        let swept = self.sweep.look(
            &self.platform,
            &self.loaded.config,
            &self.cache,
            Instant::now(),
        );
        let cam = self.camera.sweep(
            &self.platform,
            &self.loaded.config,
            &self.cache,
            &self.flagged,
            unix_now_us(),
        );
        for e in swept.errors.iter().chain(&cam.errors) {
            tracing::debug!(source = %e.source, message = %e.message, "observe");
        }
        self.camera_health(cam.health);
        self.local_state_and_reinstalls();
        if swept.changed || cam.changed || std::mem::take(&mut self.rejudge) {
            let mut observations = self.sweep.observations();
            observations.grants = cam.grants;
            observations.camera_sessions = cam.sessions;
            observations.connections = cam.connections;
            for (pid, p) in cam.processes {
                observations.processes.entry(pid).or_insert(p);
            }
            self.judge_and_act(&observations, &cam.changes);
        }
        self.status.sweeps += 1;
        self.status.last_sweep_unix = Some(unix_now());
        self.reporter.flush_pending();
        self.write_status_if_due();
    }

    /// Pick up what `quarantine restore` changed and undo reinstalls.
    fn local_state_and_reinstalls(&mut self) {
        // Nothing to do, and nothing to lock for, while no file a restore
        // writes has changed and nothing is guarded: the state lock (an
        // open and two flocks) is taken only when there is work.
        if self.guard.entries().is_empty() && self.local_state_unchanged() {
            return;
        }
        {
            // One hold for reading what `quarantine restore` may have
            // changed and acting on it: a restore (which lifts its guard
            // under the same lock) can never land between the two, so
            // restored files are never taken for a reinstall.
            let _held = self.lock.hold();
            self.reload_local_state();
            self.handle_reinstalls();
        }
    }

    /// Judge `observations`, report, and act on what is to be remediated.
    fn judge_and_act(
        &mut self,
        observations: &crate::judge::Observations,
        changes: &[crate::observe::camera_watch::SessionChange],
    ) {
        {
            let findings = judge::judge(&self.policy, observations);
            self.flagged = findings
                .iter()
                .filter(|f| f.kind == FindingKind::Listener && f.verdict == Verdict::Remediate)
                .filter_map(|f| f.listener.as_ref().map(|l| (l.address, l.port)))
                .collect();
            // Subscribed before the findings are recorded: once a test (or
            // an admin) sees the helper flagged, short connections count.
            self.camera.flagged_changed(&self.platform, &self.flagged);
            let mode = self.status.effective_mode;
            self.reporter.findings(&findings, mode);
            // Before acting: the camera session of a helper about to be
            // contained is on record before the kill ends it. While a new
            // socket awaits its first probe, its verdict (and so that of a
            // camera session in its tree) may still change: it waits.
            self.sessions.report(
                &mut self.reporter,
                &findings,
                changes,
                self.sweep.held_pids(),
                observations,
                mode,
            );
            self.act_on(&findings);
            // Critical camera incidents, and with `NotifyUser all` what is
            // only reported: told of without a plan.
            self.telling.findings(&self.platform, &findings);
            self.status.camera_sessions = observations.camera_sessions.len();
            self.status.privacy_grants = observations.grants.len();
            self.status.listeners = observations.listeners.len();
            self.status.persistence_items = observations.persistence.len();
            self.status.findings_report = count(&findings, Verdict::Report);
            self.status.findings_remediate = count(&findings, Verdict::Remediate);
            self.status.quarantined = self.vault.list().len();
        }
    }

    /// Have guard.json and allow-rules.json stayed as last read? (Both
    /// are replaced by rename, so a new inode shows a change.)
    fn local_state_unchanged(&self) -> bool {
        let dir = &self.loaded.config.state_dir;
        let stamp = (
            what_stands_at(&dir.join("guard.json")),
            what_stands_at(&dir.join("allow-rules.json")),
        );
        self.local_state_stamp.as_ref() == Some(&stamp)
    }

    /// Pick up what `lenscap quarantine restore` changed: lifted guards
    /// and new allow rules.
    /// Caller holds the state lock. The files are re-read only when they
    /// changed (they are replaced by rename, so a new inode shows it).
    fn reload_local_state(&mut self) {
        let dir = &self.loaded.config.state_dir;
        let stamp = (
            what_stands_at(&dir.join("guard.json")),
            what_stands_at(&dir.join("allow-rules.json")),
        );
        if self.local_state_stamp.as_ref() == Some(&stamp) {
            return;
        }
        self.local_state_stamp = Some(stamp);
        match Guard::open(&self.config().state_dir) {
            Ok(g) => {
                let lifted = lifted_records(&self.guard, &g);
                self.guard = g;
                // `quarantine restore` lifts a record's guard before it
                // puts the files back: report what came back.
                for id in lifted {
                    match self.vault.get(&id) {
                        Ok(r) if r.state == RecordState::Restored => self.reporter.restored(&r),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, id, "lifted guard names no record"),
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "keeping the guard registry in memory"),
        }
        let local = load_local_rules(&self.config().state_dir);
        if local != self.local_rules {
            match policy_for(self.config(), &local, self.deliverer.additions()) {
                Ok(p) => {
                    self.policy = p;
                    self.local_rules = local;
                    self.rejudge = true;
                    self.sweep.mark_persistence_dirty();
                }
                Err(e) => tracing::error!(error = %e, "local allow rules rejected"),
            }
        }
    }

    fn camera_health(&mut self, notes: Vec<CameraHealth>) {
        for note in notes {
            match note {
                CameraHealth::TccUnreadable(p) => {
                    tracing::warn!(database = %p.database.display(), "{}", p.detail);
                    self.reporter.tcc_unreadable(&p.database, &p.detail);
                }
                CameraHealth::TccReadable(db) => {
                    tracing::info!(database = %db.display(), "TCC database readable again");
                    self.reporter.tcc_readable(&db);
                }
                CameraHealth::WatchDegraded(why) => {
                    tracing::warn!("camera watch degraded: {why}");
                    self.reporter.camera_watch(false, &why);
                }
                CameraHealth::WatchRestored => {
                    tracing::info!("camera watch restored");
                    self.reporter
                        .camera_watch(true, "the camera log stream is running again");
                }
            }
        }
    }

    /// The configured mode, after closing (and reporting) the breakers
    /// whose window has passed.
    fn effective_mode(&mut self) -> Mode {
        self.budget.set_max(self.config().max_remediations_per_hour);
        for closed in self.budget.expire(Instant::now()) {
            tracing::info!(actor = ?closed.actor, "circuit breaker closed: the hour window passed");
            self.reporter.breaker_closed(closed.actor, BREAKER_WINDOW);
        }
        self.status.breaker_open = self.budget.any_open();
        self.status.effective_mode = self.config().mode;
        self.status.effective_mode
    }

    /// The mode one plan runs in: the configured mode, unless the plan's
    /// actor is over the remediation budget (then monitor, and the first
    /// time a critical health event says whose budget and on what).
    fn mode_for(&mut self, plan: &plan::Plan) -> Mode {
        let configured = self.effective_mode();
        let (mode, opened) = self.budget.mode_for(configured, plan, Instant::now());
        if let Some(programs) = opened {
            tracing::error!(
                actor = ?plan.actor,
                programs = ?programs,
                "circuit breaker open: MaxRemediationsPerHour distinct programs of this actor within an hour; its findings are monitored only until the window passes"
            );
            self.reporter
                .breaker_opened(plan.actor, &programs, &plan.key, BREAKER_WINDOW);
        }
        if mode != configured {
            self.status.breaker_open = true;
        }
        mode
    }

    fn act_on(&mut self, findings: &[Finding]) {
        let opts = PlanOptions {
            placeholder_block: self.config().placeholder_block,
            protected: own_paths(self.config(), &self.sources),
        };
        let plans = plan::plans(findings, &opts);
        self.planned
            .retain(|key, _| plans.iter().any(|p| &p.key == key));
        for p in plans {
            if self.planned.contains_key(&p.key) {
                continue;
            }
            let mode = self.mode_for(&p);
            let mut entry = Entry::new(p, mode, SystemTime::now());
            if let Err(e) = self.journal.write(&entry) {
                // Nothing is done that is not journaled first.
                tracing::error!(error = %e, "cannot journal a plan; not acting on it");
                continue;
            }
            self.planned
                .insert(entry.plan.key.clone(), entry.id.clone());
            match mode {
                Mode::Monitor => {
                    self.status.would_do += 1;
                    self.reporter.would_do(&entry);
                    self.note_entry(&entry);
                    self.tell_would_do(&entry);
                }
                Mode::Remediate => {
                    self.status.remediations += 1;
                    self.execute(&mut entry);
                }
            }
        }
    }

    /// Carry out a remediate-mode entry under the state lock.
    fn execute(&mut self, entry: &mut Entry) {
        let held = self.lock.hold();
        let gate = Gate {
            telling: &self.telling,
            inner: &self.platform,
        };
        let mut ctx = act_context(
            &self.loaded.config,
            &self.platform,
            &self.vault,
            &mut self.guard,
            &gate,
        );
        let result = execute::run_entry(&mut ctx, &self.journal, entry);
        drop(held);
        match result {
            Ok(events) => {
                self.reporter.steps(entry, &events);
                self.note_steps(&events);
            }
            Err(e) => {
                tracing::error!(error = %e, id = %entry.id, "journal write failed; remediation paused")
            }
        }
    }

    /// Something stands again where a guard keeps a path empty: journal
    /// moving it into quarantine again, do it (`act::reinstall`), and
    /// report the reinstall attempt. The caller holds the state lock.
    fn handle_reinstalls(&mut self) {
        let attempts = self.reinstalls.attempts(&self.guard);
        if attempts.is_empty() {
            return;
        }
        let configured = self.effective_mode();
        for attempt in attempts {
            self.status.reinstall_attempts += 1;
            // Not a new remediation, so it spends no budget; but it does
            // not run past an open breaker either.
            let over_budget = self.budget.is_open(attempt.guarded.actor, Instant::now());
            let mode = if over_budget {
                Mode::Monitor
            } else {
                configured
            };
            let gate = Gate {
                telling: &self.telling,
                inner: &self.platform,
            };
            let mut ctx = act_context(
                &self.loaded.config,
                &self.platform,
                &self.vault,
                &mut self.guard,
                &gate,
            );
            let path = attempt.guarded.path.clone();
            match self
                .reinstalls
                .undo(&attempt, mode, &mut ctx, &self.journal)
            {
                Ok(undone) if mode == Mode::Monitor => {
                    self.reporter.would_do(&undone.entry);
                    self.note_entry(&undone.entry);
                    self.tell_reinstall(&attempt.guarded, None, false);
                }
                Ok(undone) => {
                    for e in &undone.events {
                        if e.status == StepStatus::Done {
                            tracing::warn!(path = %path.display(), id = ?e.quarantine_id, "reinstall attempt undone");
                        } else {
                            tracing::error!(path = %path.display(), error = %e.outcome, "reinstall attempt could not be undone");
                        }
                    }
                    self.reporter.steps(&undone.entry, &undone.events);
                    self.note_steps(&undone.events);
                    let moved = undone
                        .events
                        .iter()
                        .find(|e| e.status == StepStatus::Done)
                        .map(|e| e.quarantine_id.clone());
                    if let Some(id) = moved {
                        self.tell_reinstall(&attempt.guarded, id.as_deref(), true);
                    }
                }
                Err(e) => {
                    // Nothing is done that is not journaled first; the
                    // next sweep sees the attempt again.
                    tracing::error!(path = %path.display(), error = %e, "cannot journal a reinstall undo; left in place for now");
                }
            }
        }
    }

    /// Reload configuration after a watcher saw it change. An invalid new
    /// configuration is rejected and the old one stays. Returns whether
    /// the sweep interval changed.
    fn reload(&mut self) -> bool {
        let loaded = match config::load(&self.sources) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "new configuration rejected; keeping the previous one");
                self.reporter.config_rejected(&e.to_string());
                return false;
            }
        };
        let policy = match policy_for(
            &loaded.config,
            &self.local_rules,
            self.deliverer.additions(),
        ) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "new rules rejected; keeping the previous configuration");
                self.reporter.config_rejected(&e.to_string());
                return false;
            }
        };
        if loaded.config == self.loaded.config {
            return false;
        }
        let changed: Vec<String> = config::KEYS
            .iter()
            .filter(|k| {
                config::show::effective_value(&loaded.config, k)
                    != config::show::effective_value(&self.loaded.config, k)
            })
            .map(|k| (*k).to_string())
            .collect();
        tracing::info!(?changed, "configuration reloaded");
        let interval_changed = loaded.config.sweep_millis != self.loaded.config.sweep_millis;
        if self.loaded.config.mode == Mode::Monitor && loaded.config.mode == Mode::Remediate {
            // `lenscap mode remediate`: what monitor mode only planned is
            // planned again and now carried out, while it is still found.
            self.planned.clear();
        }
        self.telling.set_level(loaded.config.notify_user);
        self.loaded = loaded;
        self.policy = policy;
        self.rejudge = true;
        self.deliverer.configure(&self.loaded.config);
        self.status.mode = self.loaded.config.mode;
        // What the findings of the next judgement are reported under,
        // before planning looks at the breakers again.
        self.status.effective_mode = self.loaded.config.mode;
        self.sweep.mark_persistence_dirty();
        self.reporter.config_changed(&changed);
        interval_changed
    }

    /// Monitor mode: tell the person what was found and would be done
    /// (the plan's notify step is only journaled as "would do").
    fn tell_would_do(&self, entry: &Entry) {
        let Some((uid, would)) = entry.plan.steps.iter().find_map(|s| match s {
            plan::Step::Notify { uid, would, .. } if !would.is_empty() => Some((*uid, would)),
            _ => None,
        }) else {
            return;
        };
        let incident = format!("would:{}", entry.plan.key);
        if let Err(e) = self.telling.tell(
            &self.platform,
            tell::Kind::Remediation,
            &incident,
            uid,
            tell::TITLE_WOULD,
            would,
        ) {
            tracing::warn!(incident, error = %e, "could not notify");
        }
    }

    /// A reinstall attempt moved into quarantine again (`done`), or left
    /// in place: told of at most once an hour per helper.
    fn tell_reinstall(&self, guarded: &crate::act::guard::Guarded, id: Option<&str>, done: bool) {
        let app = tell::app_name(std::path::Path::new(&guarded.plan_key));
        let (title, body) = if done {
            (tell::TITLE_REINSTALL, tell::reinstalled(&app, id, true))
        } else {
            (tell::TITLE_WOULD, tell::reinstalled(&app, None, false))
        };
        let incident = format!("reinstall:{}", guarded.plan_key);
        let uid = guarded.actor.filter(|u| *u != 0);
        if let Err(e) = self.telling.tell(
            &self.platform,
            tell::Kind::Remediation,
            &incident,
            uid,
            title,
            &body,
        ) {
            tracing::warn!(incident, error = %e, "could not notify");
        }
    }

    fn note_entry(&mut self, entry: &Entry) {
        for (step, rec) in entry.plan.steps.iter().zip(&entry.steps) {
            self.status.push_recent(RecentAction {
                time_unix: unix_now(),
                plan: entry.plan.subject.clone(),
                step: step.name().into(),
                status: format!("{:?}", rec.status).to_lowercase(),
                outcome: rec.outcome.clone().unwrap_or_default(),
            });
        }
    }

    fn note_steps(&mut self, events: &[StepEvent]) {
        for e in events {
            self.status.push_recent(RecentAction {
                time_unix: unix_now(),
                plan: e.plan_key.clone(),
                step: e.step.name().into(),
                status: format!("{:?}", e.status).to_lowercase(),
                outcome: e.outcome.clone(),
            });
        }
    }

    fn write_status(&mut self) {
        self.status.guarded_paths = self.guard.entries().len();
        self.status.outbox_pending = self.reporter.pending();
        if let Err(e) = self.status.write(&self.config().state_dir) {
            tracing::warn!(error = %e, "cannot write status.json");
        }
        self.status_written = Some((Instant::now(), self.status.without_counters()));
    }

    /// Write `status.json` when something other than the sweep counters
    /// changed, else at most every [`STATUS_EVERY`]. The outbox count is a
    /// query, so it is asked only when the file is written anyway or the
    /// reporter says it may have moved.
    fn write_status_if_due(&mut self) {
        let due = match &self.status_written {
            None => true,
            Some((at, written)) => {
                at.elapsed() >= STATUS_EVERY || *written != self.status.without_counters()
            }
        };
        if due {
            self.write_status();
        }
    }

    /// Check for and apply a signed update when configuration allows it
    /// automatically. True when a new binary was installed and this
    /// process should exit so launchd starts the new one.
    async fn try_self_update(&mut self) -> bool {
        if !crate::update::permission(&self.loaded).automatic() {
            return false;
        }
        let Ok(exe) = std::env::current_exe() else {
            return false;
        };
        let loaded = self.loaded.clone();
        let result = tokio::task::spawn_blocking(move || {
            crate::update::Updater::new(&loaded, exe)?.apply(crate::update::Trigger::Automatic)
        })
        .await;
        match result {
            Ok(Ok(crate::update::Applied::Updated { from, to, .. })) => {
                tracing::info!(%from, %to, "updated; exiting so launchd starts the new version");
                self.shutdown(&format!("updated from {from} to {to}"));
                true
            }
            Ok(Ok(crate::update::Applied::UpToDate { .. })) => false,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "self-update refused or failed; keeping this version");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "self-update task failed");
                false
            }
        }
    }

    fn shutdown(&mut self, why: &str) {
        tracing::info!("stopping on {why}");
        self.reporter.stopped(why);
        self.deliverer.stop();
        self.status.running = false;
        self.write_status();
    }

    /// A notice from the delivery thread. Returns whether the policy
    /// changed (judge again now).
    fn delivery_notice(&mut self, notice: Notice) -> bool {
        let fetched = match notice {
            Notice::Health(body) => {
                self.reporter.delivery(body);
                return false;
            }
            Notice::Policy(f) => f,
        };
        let config = &self.loaded.config;
        match self
            .deliverer
            .apply(fetched, config, &self.local_rules, &mut self.reporter)
        {
            Some(policy) => {
                self.policy = policy;
                self.rejudge = true;
                self.sweep.mark_persistence_dirty();
                true
            }
            None => false,
        }
    }
}

/// What the executor needs for one plan: this daemon's platform, vault and
/// guard, notices through the once-per-incident gate.
fn act_context<'a>(
    config: &Config,
    platform: &'a Native,
    vault: &'a Vault,
    guard: &'a mut Guard,
    gate: &'a Gate<'a>,
) -> Context<'a> {
    Context {
        launchctl: config.launchctl_path.clone(),
        tccutil: config.tccutil_path.clone(),
        command_timeout: Duration::from_secs(10),
        grace: Duration::from_millis(config.term_grace_ms),
        ctl: platform,
        vault,
        guard,
        notifier: gate,
        sessions: platform,
    }
}

/// Quarantine records guarded in `before` and no longer in `after`.
fn lifted_records(before: &Guard, after: &Guard) -> Vec<String> {
    let ids = |g: &Guard| -> std::collections::BTreeSet<String> {
        g.entries()
            .iter()
            .filter_map(|e| e.quarantine_id.clone())
            .collect()
    };
    let now = ids(after);
    ids(before)
        .into_iter()
        .filter(|id| !now.contains(id))
        .collect()
}

fn count(findings: &[Finding], v: Verdict) -> usize {
    findings.iter().filter(|f| f.verdict == v).count()
}

fn create_state_dir(dir: &std::path::Path) -> Result<(), DaemonError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
        .map_err(|source| DaemonError::StateDir {
            path: dir.to_path_buf(),
            source,
        })
}

/// lenscap's own files: never a target, whatever a rule or the catalog
/// says — its executable, its LaunchDaemon plist, its preference files
/// (local, managed, `--config`), the whole managed-preferences folder an
/// MDM writes, and its state directory (vault, journal, outbox).
fn own_paths(config: &Config, sources: &Sources) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = vec![
        config.state_dir.clone(),
        PathBuf::from(OWN_LAUNCHD_PLIST),
        PathBuf::from(MANAGED_PREFERENCES),
    ];
    paths.extend(std::env::current_exe().ok());
    paths.extend(
        [&sources.managed, &sources.local, &sources.explicit]
            .into_iter()
            .flatten()
            .cloned(),
    );
    paths
}

/// Where the pkg installs the daemon's plist (launchd/io.lenscap.agent.plist).
const OWN_LAUNCHD_PLIST: &str = "/Library/LaunchDaemons/io.lenscap.agent.plist";
/// Where an MDM's configuration profiles land, for every domain.
const MANAGED_PREFERENCES: &str = "/Library/Managed Preferences";
