//! `lenscap run`: the launchd daemon, and the only place the four stages
//! meet — observe (incremental sweeps + file watchers) → judge → act
//! (journaled plans; guard) → report (the on-disk outbox).
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

mod camera;
mod events;
pub mod status;
pub mod sweep;
pub mod watch;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::act::budget::{Budget, Charge};
use crate::act::execute::{self, Context, Notifier, StepEvent};
use crate::act::guard::{Guard, GuardError};
use crate::act::journal::{Entry, Journal, JournalError};
use crate::act::kill::ProcessControl;
use crate::act::lock::StateLock;
use crate::act::plan::{self, PlanOptions};
use crate::act::quarantine::{QuarantineError, Vault, placeholder_block};
use crate::config::{self, Config, ConfigError, Loaded, Mode, Sources};
use crate::judge::{self, JudgeError, Policy};
use crate::model::{Finding, FindingKind, ProcessIdentity, Verdict};
use crate::observe::signing::SignatureCache;
use crate::platform::{Native, Platform, PlatformError, SignalOutcome};
use crate::report::outbox::OutboxError;
use crate::report::policy_sync::FleetAdditions;
use crate::report::upload::worker::Notice;

use self::camera::{CameraHealth, CameraWatch, SessionChange};
use self::events::{Deliverer, Reporter};
use self::status::{RecentAction, Status};
use self::sweep::SweepState;
use self::watch::{Trigger, WatchSet, Watches};
use crate::clock::{unix_now, unix_now_us};

/// When the daemon first looks for an update, and how often after.
const UPDATE_FIRST: Duration = Duration::from_secs(600);
const UPDATE_EVERY: Duration = Duration::from_secs(6 * 3600);

/// The window of the remediation circuit breaker.
const BREAKER_WINDOW: Duration = Duration::from_secs(3600);

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
    let mut tick = interval(d.sweep_interval());
    let mut ticks: u64 = 0;
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
                    tick = interval(d.sweep_interval());
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
                ticks += 1;
                // New homes and guard dirs join the watch set now and then;
                // the periodic rescan covers the time in between.
                if ticks.is_multiple_of(15)
                    && let Some(w) = watches.as_mut()
                {
                    w.refresh(&d.watch_set());
                }
            }
            () = probed.notified() => d.cycle(),
        }
    }
    Ok(())
}

fn interval(period: Duration) -> tokio::time::Interval {
    let mut i = tokio::time::interval(period);
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    i
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
    /// Finding uid → the verdict last reported for it.
    reported: HashMap<String, (Verdict, crate::model::Severity, Option<String>)>,
    /// Plan key → journal entry id, while the helper is still found.
    planned: BTreeMap<String, String>,
    /// When each remediation of the last hour ran.
    /// The remediation budget, per actor (`act::budget`).
    budget: Budget,
    /// Identity of guard.json and allow-rules.json when last read.
    local_state_stamp: Option<(Option<FileStamp>, Option<FileStamp>)>,
    /// Reappeared guarded paths left in place (refused, or monitor mode),
    /// with the identity of what stood there, so each is reported once.
    reinstall_left: HashMap<PathBuf, FileStamp>,
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
    flagged: std::collections::BTreeSet<(std::net::IpAddr, u16)>,
    /// The last camera_use finding of each open session, for its stop event.
    sessions: BTreeMap<SessionKey, Finding>,
    /// Camera session starts and stops not yet recorded: while a new
    /// socket waits for its first probe result, the helper it may be is not
    /// flagged yet, and a session's start is recorded with the verdict it
    /// will keep (a helper's camera use is critical from its first event).
    camera_pending: Vec<SessionChange>,
}

/// A camera session across sweeps: its pid, or its bundle id when the log
/// named no pid, and its device. Unique among open sessions (one process
/// holding one device is one session).
type SessionKey = (Option<u32>, Option<String>, Option<PathBuf>);

fn session_key_of_change(c: &SessionChange) -> SessionKey {
    (
        c.pid,
        c.pid.is_none().then(|| c.bundle_id.clone()).flatten(),
        c.device.clone(),
    )
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
        let max_remediations = loaded.config.max_remediations_per_hour;
        let status = Status {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").into(),
            mode,
            effective_mode: mode,
            breaker_open: false,
            started_unix: unix_now(),
            last_sweep_unix: None,
            sweeps: 0,
            listeners: 0,
            persistence_items: 0,
            findings_report: 0,
            findings_remediate: 0,
            remediations: 0,
            would_do: 0,
            reinstall_attempts: 0,
            quarantined: 0,
            guarded_paths: guard.entries().len(),
            outbox_pending: None,
            camera_sessions: 0,
            privacy_grants: 0,
            running: true,
            recent: Vec::new(),
        };
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
            reported: HashMap::new(),
            planned: BTreeMap::new(),
            budget: Budget::new(max_remediations, BREAKER_WINDOW),
            reinstall_left: HashMap::new(),
            local_state_stamp: None,
            local_rules,
            status,
            deliverer,
            rejudge: false,
            camera: CameraWatch::new(),
            flagged: Default::default(),
            sessions: BTreeMap::new(),
            camera_pending: Vec::new(),
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
        Duration::from_secs(self.config().sweep_seconds)
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

    /// One observe → judge → act → report pass.
    fn cycle(&mut self) {
        let mut swept = self.sweep.sweep(
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
        let obs = &mut swept.observations;
        obs.grants = cam.grants;
        obs.camera_sessions = cam.sessions;
        obs.connections = cam.connections;
        for (pid, p) in cam.processes {
            obs.processes.entry(pid).or_insert(p);
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
        if swept.changed || cam.changed || std::mem::take(&mut self.rejudge) {
            let findings = judge::judge(&self.policy, &swept.observations);
            self.flagged = findings
                .iter()
                .filter(|f| f.kind == FindingKind::Listener && f.verdict == Verdict::Remediate)
                .filter_map(|f| f.listener.as_ref().map(|l| (l.address, l.port)))
                .collect();
            self.report_findings(&findings);
            // Before acting: the camera session of a helper about to be
            // contained is on record before the kill ends it. While a new
            // socket awaits its first probe, its verdict (and so that of a
            // camera session in its tree) may still change: wait for it.
            self.camera_pending.extend(cam.changes.iter().cloned());
            let (wait, ready): (Vec<SessionChange>, Vec<SessionChange>) =
                std::mem::take(&mut self.camera_pending)
                    .into_iter()
                    .partition(|c| {
                        c.waited() < CAMERA_WAIT_MAX
                            && in_held_tree(c.pid, self.sweep.held_pids(), &swept.observations)
                    });
            self.camera_pending = wait;
            self.report_camera(&findings, &ready);
            self.act_on(&findings);
            self.status.camera_sessions = swept.observations.camera_sessions.len();
            self.status.privacy_grants = swept.observations.grants.len();
            self.status.listeners = swept.observations.listeners.len();
            self.status.persistence_items = swept.observations.persistence.len();
            self.status.findings_report = count(&findings, Verdict::Report);
            self.status.findings_remediate = count(&findings, Verdict::Remediate);
            self.status.quarantined = self.vault.list().len();
        }
        self.status.sweeps += 1;
        self.status.last_sweep_unix = Some(unix_now());
        self.reporter.flush_pending();
        self.write_status();
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
            Ok(g) => self.guard = g,
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

    fn report_findings(&mut self, findings: &[Finding]) {
        let mut current = HashMap::new();
        // Camera sessions are reported by `report_camera`, at their start
        // and stop, allowed ones included.
        for f in findings
            .iter()
            .filter(|f| f.verdict != Verdict::Allow && f.kind != FindingKind::CameraUse)
        {
            let uid = crate::report::convert::finding_uid(f);
            // A new verdict, severity or deciding rule is news (a fleet
            // catalog entry that turns a report into a critical one).
            let now = (f.verdict, f.severity, f.rule.clone());
            let previous = self.reported.get(&uid);
            if previous != Some(&now) {
                self.reporter
                    .finding(f, self.status.effective_mode, previous.is_some());
            }
            current.insert(uid, now);
        }
        self.reported = current;
    }

    /// A camera_use event for every session that started or stopped, and
    /// an update when a running session's verdict changed (its helper was
    /// flagged after the camera turned on).
    fn report_camera(&mut self, findings: &[Finding], changes: &[SessionChange]) {
        let mode = self.status.effective_mode;
        let current: BTreeMap<SessionKey, &Finding> = findings
            .iter()
            .filter(|f| f.kind == FindingKind::CameraUse)
            .filter_map(|f| session_key_of_finding(f).map(|k| (k, f)))
            .collect();
        for c in changes.iter().filter(|c| !c.started) {
            let key = session_key_of_change(c);
            if let Some(mut f) = self.sessions.remove(&key) {
                if let Some(cam) = f.camera.as_mut() {
                    cam.duration_seconds = c.duration_us.map(|us| us / 1_000_000);
                }
                self.reporter.camera_use(&f, mode, false);
            }
        }
        for c in changes.iter().filter(|c| c.started) {
            let key = session_key_of_change(c);
            if let Some(f) = current.get(&key) {
                self.reporter.camera_use(f, mode, true);
                self.sessions.insert(key, (*f).clone());
            }
        }
        for (key, f) in &current {
            if let Some(known) = self.sessions.get_mut(key)
                && (known.verdict != f.verdict || known.severity != f.severity)
            {
                *known = (*f).clone();
                self.reporter.finding(f, mode, true);
            }
        }
        // Sessions that vanished without a stop (a restarted watcher).
        self.sessions.retain(|k, _| current.contains_key(k));
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
        if self.effective_mode() == Mode::Monitor {
            return Mode::Monitor;
        }
        match self
            .budget
            .charge(plan.actor, &plan.key, plan.costs, Instant::now())
        {
            Charge::Free | Charge::Spent => Mode::Remediate,
            Charge::Over { opened, programs } => {
                if opened {
                    tracing::error!(
                        actor = ?plan.actor,
                        programs = ?programs,
                        "circuit breaker open: MaxRemediationsPerHour distinct programs of this actor within an hour; its findings are monitored only until the window passes"
                    );
                    self.reporter
                        .breaker_opened(plan.actor, &programs, &plan.key, BREAKER_WINDOW);
                }
                self.status.breaker_open = true;
                Mode::Monitor
            }
        }
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
        let config = &self.loaded.config;
        let mut ctx = Context {
            launchctl: config.launchctl_path.clone(),
            command_timeout: Duration::from_secs(10),
            grace: Duration::from_millis(config.term_grace_ms),
            ctl: &self.platform,
            vault: &self.vault,
            guard: &mut self.guard,
            notifier: &self.platform,
        };
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

    /// Something stands again where a guard keeps a path empty: move it
    /// into quarantine again and report the reinstall attempt.
    fn handle_reinstalls(&mut self) {
        let back: Vec<_> = self.guard.reappeared().into_iter().cloned().collect();
        if back.is_empty() {
            return;
        }
        let configured = self.effective_mode();
        // Forget what was left in place at paths that are empty again.
        self.reinstall_left
            .retain(|path, _| back.iter().any(|g| &g.path == path));
        for g in back {
            // Something we could not (or, in monitor mode, would not) move
            // is reported once, not on every sweep, until it changes.
            let seen = what_stands_at(&g.path);
            if seen.is_some() && self.reinstall_left.get(&g.path) == seen.as_ref() {
                continue;
            }
            self.status.reinstall_attempts += 1;
            let over_budget = self.budget.is_open(g.actor, Instant::now());
            if configured == Mode::Monitor || over_budget {
                if let Some(id) = seen {
                    self.reinstall_left.insert(g.path.clone(), id);
                }
                self.reporter
                    .reinstall(&g, None, Err("monitor mode: left in place".into()), true);
                continue;
            }
            let summary = format!("reinstall attempt of {}", g.plan_key);
            // Only what the guard's actor could move itself: a root-owned
            // file that appears in a user's guarded spot stays.
            let actor = g
                .actor
                .or_else(|| folder_owner(&g.path))
                .unwrap_or(u32::MAX);
            let mut moved = self.vault.quarantine_as(
                std::slice::from_ref(&g.path),
                &summary,
                None,
                SystemTime::now(),
                actor,
            );
            if g.placeholder {
                // Whatever replaced our placeholder is gone now; the
                // placeholder goes back.
                moved = moved.and_then(|r| placeholder_block(&g.path).map(|()| r));
            }
            match moved {
                Ok(record) => {
                    tracing::warn!(path = %g.path.display(), id = %record.id, "reinstall attempt undone");
                    self.reporter.reinstall(&g, Some(&record.id), Ok(()), false);
                }
                Err(e) => {
                    if let Some(id) = seen {
                        self.reinstall_left.insert(g.path.clone(), id);
                    }
                    tracing::error!(path = %g.path.display(), error = %e, "reinstall attempt could not be undone");
                    self.reporter.reinstall(&g, None, Err(e.to_string()), false);
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
        let interval_changed = loaded.config.sweep_seconds != self.loaded.config.sweep_seconds;
        self.loaded = loaded;
        self.policy = policy;
        self.rejudge = true;
        self.deliverer.configure(&self.loaded.config);
        self.status.mode = self.loaded.config.mode;
        self.sweep.mark_persistence_dirty();
        self.reporter.config_changed(&changed);
        interval_changed
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

/// The session a camera_use finding is about, keyed like a change.
fn session_key_of_finding(f: &Finding) -> Option<SessionKey> {
    let cam = f.camera.as_ref()?;
    let pid = cam.pid.or(f.process.as_ref().map(|p| p.pid));
    // Without a pid the judge names the session by its bundle id.
    Some((
        pid,
        pid.is_none().then(|| cam.client.clone()),
        cam.device.clone(),
    ))
}

/// Device, inode, mtime, ctime of a file: what changes when it is replaced.
type FileStamp = (u64, u64, i64, i64);

/// Identity of whatever stands at `path` (lstat: a link is not followed).
fn what_stands_at(path: &std::path::Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.mtime(), m.ctime()))
}

fn count(findings: &[Finding], v: Verdict) -> usize {
    findings.iter().filter(|f| f.verdict == v).count()
}

pub use crate::policy::{load_local_rules, policy_for};

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

impl ProcessControl for Native {
    fn process(&self, pid: u32) -> Result<ProcessIdentity, PlatformError> {
        Platform::process(self, pid)
    }

    fn signal_verified(
        &self,
        expected: &ProcessIdentity,
        signal: i32,
    ) -> Result<SignalOutcome, PlatformError> {
        Native::signal_verified(self, expected, signal)
    }

    fn child_pids(&self, pid: u32) -> Result<Vec<u32>, PlatformError> {
        Native::child_pids(self, pid)
    }
}

impl Notifier for Native {
    fn notify(&self, uid: Option<u32>, title: &str, message: &str) -> Result<(), String> {
        self.notify_user(uid, title, message)
    }
}

/// The owner of the folder holding `path` (lstat): for guards written
/// before they recorded an actor, who can put things there.
fn folder_owner(path: &std::path::Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    path.parent()?.symlink_metadata().ok().map(|m| m.uid())
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

/// How long a camera session's record may wait for its process's new
/// socket to be judged (the probe's first-result hold is shorter).
const CAMERA_WAIT_MAX: Duration = Duration::from_secs(10);

/// Does `pid`, or an ancestor of it, hold a socket still waiting for its
/// first probe result? (Bounded walk: parent chains can loop while pids
/// are reused.)
fn in_held_tree(
    pid: Option<u32>,
    held: &std::collections::BTreeSet<u32>,
    obs: &judge::Observations,
) -> bool {
    let mut next = pid;
    for _ in 0..16 {
        let Some(p) = next.filter(|&p| p > 1) else {
            return false;
        };
        if held.contains(&p) {
            return true;
        }
        next = obs.processes.get(&p).map(|q| q.ppid);
    }
    false
}
