//! The daemon's side of report: every finding and every step goes into the
//! outbox as a wire event, durably, before anything else happens with it.
//!
//! An append that fails for a passing reason (disk full, the database
//! locked by a reader) keeps the event in memory and retries it at the end
//! of every cycle: an event is lost only if the daemon dies while the disk
//! is full, and then the collector sees the gap.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lenscap_events::{Body, BreakerState, CameraWatchState, FindingActivity, Mode as EvMode};

use super::DaemonError;
use crate::act::execute::StepEvent;
use crate::act::guard::Guarded;
use crate::act::journal::{Entry, StepStatus};
use crate::act::plan::Step;
use crate::config::{Config, Mode};
use crate::model::{Finding, HostInfo};
use crate::report::convert::{
    self, FileAction, ProcessAction, StepContext, StepOutcome, file_remediation, file_target,
    job_target, process_remediation, process_target,
};
use crate::report::hostid;
use crate::report::outbox::{Outbox, open_or_recover};
use crate::report::policy_sync::{self, Fetched, FleetAdditions};
use crate::report::upload::worker::{Delivery, DeliverySettings, Notice};

/// Appends to the outbox, holding back what could not be written yet.
pub(super) struct Reporter {
    outbox: Outbox,
    mode: EvMode,
    backlog: Vec<(EvMode, Body)>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("backlog", &self.backlog.len())
            .finish_non_exhaustive()
    }
}

impl Reporter {
    pub(super) fn open(config: &Config, _host: &HostInfo) -> Result<Reporter, DaemonError> {
        let mode = convert::mode(config.mode);
        let (outbox, recovery) = open_or_recover(
            &config.state_dir,
            hostid::detect(),
            env!("CARGO_PKG_VERSION"),
            config.max_outbox_bytes,
            mode,
        )?;
        if let Some(r) = recovery {
            tracing::error!(moved_to = %r.moved_to.display(), detail = %r.detail, "the outbox was damaged and was moved aside; a new one was started");
        }
        Ok(Reporter {
            outbox,
            mode,
            backlog: Vec::new(),
        })
    }

    fn record(&mut self, body: Body) {
        self.flush_pending();
        if !self.backlog.is_empty() {
            // Keep the order: nothing jumps the queue.
            self.backlog.push((self.mode, body));
            return;
        }
        if let Err(e) = self.outbox.append(self.mode, &body) {
            tracing::error!(error = %e, "event kept in memory until the outbox accepts it");
            self.backlog.push((self.mode, body));
        }
    }

    /// Retry events the outbox refused earlier.
    pub(super) fn flush_pending(&mut self) {
        while let Some((mode, body)) = self.backlog.first() {
            match self.outbox.append(*mode, body) {
                Ok(_) => {
                    self.backlog.remove(0);
                }
                Err(e) => {
                    tracing::debug!(error = %e, waiting = self.backlog.len(), "outbox still refusing");
                    return;
                }
            }
        }
    }

    /// Events waiting for the collector (plus any held in memory).
    pub(super) fn pending(&self) -> Option<u64> {
        self.outbox
            .pending_count()
            .ok()
            .map(|n| n + self.backlog.len() as u64)
    }

    pub(super) fn started(&mut self, mode: Mode, host: &HostInfo) {
        self.mode = convert::mode(mode);
        let body = convert::started(
            env!("CARGO_PKG_VERSION"),
            self.mode,
            std::process::id(),
            &host.os,
            host.os_version.as_deref(),
        );
        self.record(body);
    }

    pub(super) fn stopped(&mut self, why: &str) {
        self.record(convert::stopped(why));
    }

    /// A health event from delivery (an event the collector refused, a
    /// fleet policy applied or rejected).
    pub(super) fn delivery(&mut self, body: Body) {
        self.record(body);
    }

    pub(super) fn config_changed(&mut self, keys: &[String]) {
        self.record(convert::config_changed(keys, "preferences"));
    }

    pub(super) fn config_rejected(&mut self, error: &str) {
        self.record(convert::config_changed(
            &[],
            &format!("rejected, previous configuration kept: {error}"),
        ));
    }

    /// An actor's breaker opened: critical, naming whose budget and what
    /// it was spent on, and the plan that is now only monitored.
    pub(super) fn breaker_opened(
        &mut self,
        actor: Option<u32>,
        programs: &[String],
        held: &str,
        window: Duration,
    ) {
        let who = actor.map_or_else(|| "an unknown actor".to_string(), |u| format!("uid {u}"));
        let reason = format!(
            "MaxRemediationsPerHour reached for {who}: {} distinct running programs remediated \
             within the window ({}); {held} and the rest of {who}'s findings are monitored only \
             until it passes — a bad rule, or someone spending the budget on purpose",
            programs.len(),
            programs.join(", ")
        );
        self.record(convert::circuit_breaker(
            BreakerState::Open,
            &reason,
            u32::try_from(programs.len()).unwrap_or(u32::MAX),
            u32::try_from(window.as_secs()).unwrap_or(u32::MAX),
            actor,
            programs.to_vec(),
        ));
    }

    pub(super) fn breaker_closed(&mut self, actor: Option<u32>, window: Duration) {
        self.record(convert::circuit_breaker(
            BreakerState::Closed,
            "the hour window passed",
            0,
            u32::try_from(window.as_secs()).unwrap_or(u32::MAX),
            actor,
            Vec::new(),
        ));
    }

    /// A finding seen for the first time (or with a new verdict).
    pub(super) fn finding(&mut self, f: &Finding, mode: Mode, update: bool) {
        let activity = if update {
            FindingActivity::Update
        } else {
            FindingActivity::Create
        };
        self.record(convert::detection_finding(f, activity, convert::mode(mode)));
    }

    /// A camera session started (`started`: activity Create) or stopped
    /// (activity Close; the caller sets `f.camera.duration_seconds`).
    /// Unlike [`Reporter::finding`], called for every session, allowed
    /// ones included: a security team wants every use of the camera on
    /// record.
    pub(super) fn camera_use(&mut self, f: &Finding, mode: Mode, started: bool) {
        let activity = if started {
            FindingActivity::Create
        } else {
            FindingActivity::Close
        };
        self.record(convert::detection_finding(f, activity, convert::mode(mode)));
    }

    /// A TCC database cannot be read (Full Disk Access missing): health
    /// `permission_missing` for `full_disk_access`. `detail` says why and
    /// what to deploy; `database` is put in front unless it names it.
    pub(super) fn tcc_unreadable(&mut self, database: &Path, detail: &str) {
        self.record(convert::tcc_unreadable(database, detail));
    }

    /// A TCC database reported unreadable can be read again: health
    /// `permission_restored` for `full_disk_access`.
    pub(super) fn tcc_readable(&mut self, database: &Path) {
        self.record(convert::tcc_readable(database));
    }

    /// The camera-use source (macOS: the `log stream` child) failed
    /// (`healthy` false: `camera_watch` degraded) or works again
    /// (restored).
    pub(super) fn camera_watch(&mut self, healthy: bool, detail: &str) {
        let state = if healthy {
            CameraWatchState::Restored
        } else {
            CameraWatchState::Degraded
        };
        self.record(convert::camera_watch(state, detail));
    }

    /// Monitor mode: every step of the plan as "would do".
    pub(super) fn would_do(&mut self, entry: &Entry) {
        let saved = self.mode;
        self.mode = EvMode::Monitor;
        for step in &entry.plan.steps {
            for body in bodies(entry, step, &StepOutcome::WouldDo, None) {
                self.record(body);
            }
        }
        self.mode = saved;
    }

    /// What carrying out a plan's steps did.
    pub(super) fn steps(&mut self, entry: &Entry, events: &[StepEvent]) {
        for e in events {
            let outcome = match e.status {
                StepStatus::Done => StepOutcome::Success(Some(e.outcome.clone())),
                StepStatus::WouldDo => StepOutcome::WouldDo,
                _ => StepOutcome::Failure(e.outcome.clone()),
            };
            for body in bodies(entry, &e.step, &outcome, e.quarantine_id.as_deref()) {
                self.record(body);
            }
        }
    }

    /// A guarded path came back and was (or, in monitor mode, would be)
    /// moved into quarantine again.
    pub(super) fn reinstall(
        &mut self,
        g: &Guarded,
        quarantine_id: Option<&str>,
        result: Result<(), String>,
        would_do: bool,
    ) {
        let outcome = match (would_do, result) {
            (true, _) => StepOutcome::WouldDo,
            (false, Ok(())) => StepOutcome::Success(None),
            (false, Err(e)) => StepOutcome::Failure(e),
        };
        let ctx = StepContext {
            finding_uid: None,
            command_uid: None,
        };
        self.record(file_remediation(
            file_target(&g.path),
            FileAction::ReinstallRemoved,
            quarantine_id,
            &outcome,
            &ctx,
        ));
    }
}

/// The daemon's side of delivery: the delivery thread (started, given
/// new settings, stopped as `CollectorURL` comes and goes) and the fleet
/// policy in force. The thread's notices arrive on the daemon's loop.
pub(super) struct Deliverer {
    delivery: Option<Delivery>,
    settings: Option<DeliverySettings>,
    notices: tokio::sync::mpsc::UnboundedSender<Notice>,
    /// The fleet policy in force (stored in `fleet-policy.json`).
    pub(super) fleet: Option<Fetched>,
    empty: FleetAdditions,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("running", &self.delivery.is_some())
            .field("fleet", &self.fleet.as_ref().map(|p| &p.etag))
            .finish_non_exhaustive()
    }
}

impl Deliverer {
    /// With the fleet policy stored by the previous run, if it is usable.
    pub(super) fn new(
        config: &Config,
        notices: tokio::sync::mpsc::UnboundedSender<Notice>,
    ) -> Deliverer {
        let fleet = match policy_sync::load(&config.state_dir) {
            Ok(Some(stored)) => Fetched::from_stored(stored)
                .inspect_err(|e| tracing::error!(error = %e, "stored fleet policy ignored"))
                .ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "stored fleet policy ignored");
                None
            }
        };
        Deliverer {
            delivery: None,
            settings: None,
            notices,
            fleet,
            empty: FleetAdditions::default(),
        }
    }

    /// What the fleet policy in force adds to the judge's policy.
    pub(super) fn additions(&self) -> &FleetAdditions {
        self.fleet.as_ref().map_or(&self.empty, |f| &f.additions)
    }

    /// Start, reconfigure or stop the delivery thread for `config`.
    pub(super) fn configure(&mut self, config: &Config) {
        let settings = DeliverySettings::from_config(config);
        if settings == self.settings && (settings.is_some() == self.delivery.is_some()) {
            return;
        }
        match (&self.delivery, settings.clone()) {
            (Some(d), Some(s)) => d.reconfigure(s),
            (Some(_), None) => self.stop(),
            (None, Some(s)) => {
                let tx = self.notices.clone();
                let etag = self.fleet.as_ref().map(|f| f.etag.clone());
                match Delivery::start(
                    s,
                    hostid::detect(),
                    etag,
                    Box::new(move |n| {
                        let _ = tx.send(n);
                    }),
                ) {
                    Ok(d) => self.delivery = Some(d),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the delivery thread; events stay in the outbox")
                    }
                }
            }
            (None, None) => {}
        }
        self.settings = settings;
    }

    /// A new fleet policy from the delivery thread: the judge's policy
    /// built with it (stored and reported as applied), or `None` when it
    /// does not build (reported as rejected; the previous one stays).
    pub(super) fn apply(
        &mut self,
        fetched: Fetched,
        config: &Config,
        local: &[crate::config::Rule],
        reporter: &mut Reporter,
    ) -> Option<crate::judge::Policy> {
        match super::policy_for(config, local, &fetched.additions) {
            Ok(policy) => {
                if let Err(e) = policy_sync::store(&config.state_dir, &fetched.to_stored()) {
                    // In force now; after a restart the previous one is,
                    // until the next poll brings this one again.
                    tracing::error!(error = %e, "cannot store the fleet policy");
                }
                tracing::info!(etag = %fetched.etag, rules = fetched.policy.rules.len(), catalog = fetched.policy.catalog.len(), "fleet policy applied");
                reporter.delivery(policy_sync::applied_notice(&fetched));
                self.fleet = Some(fetched);
                Some(policy)
            }
            Err(e) => {
                tracing::error!(error = %e, etag = %fetched.etag, "fleet policy rejected; the previous one stays");
                reporter.delivery(policy_sync::rejected_notice(&fetched.etag, &e.to_string()));
                None
            }
        }
    }

    /// Stop the thread (a request in flight is not waited for: its batch
    /// goes again at the next start).
    pub(super) fn stop(&mut self) {
        if let Some(d) = self.delivery.take()
            && let Some(stats) = d.stop(Duration::from_secs(1))
        {
            tracing::info!(?stats, "delivery stopped");
        }
    }
}

/// The wire events one plan step produces.
fn bodies(
    entry: &Entry,
    step: &Step,
    outcome: &StepOutcome,
    quarantine_id: Option<&str>,
) -> Vec<Body> {
    let ctx = StepContext {
        finding_uid: None,
        command_uid: Some(entry.id.clone()),
    };
    let files = |paths: &[PathBuf], action: FileAction| -> Vec<Body> {
        paths
            .iter()
            .map(|p| file_remediation(file_target(p), action, quarantine_id, outcome, &ctx))
            .collect()
    };
    match step {
        Step::Bootout { item, .. } => vec![process_remediation(
            job_target(item.label.as_deref().unwrap_or("(no label)"), None),
            ProcessAction::StopJob,
            outcome,
            &ctx,
        )],
        Step::Terminate { processes } => processes
            .iter()
            .map(|p| {
                process_remediation(process_target(p), ProcessAction::KillProcess, outcome, &ctx)
            })
            .collect(),
        Step::Quarantine { paths } => files(paths, FileAction::Quarantine),
        Step::Guard { paths, placeholder } => {
            let mut out = files(paths, FileAction::Guard);
            if let Some(p) = placeholder {
                out.extend(files(std::slice::from_ref(p), FileAction::Placeholder));
            }
            out
        }
        // The notice itself is in the journal and the log; it changes
        // nothing on the machine, so it is not a remediation event.
        Step::Notify { .. } => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use lenscap_events::{Event, FindingKind, HealthStatus, samples};

    use super::*;

    fn reporter(dir: &Path) -> Reporter {
        let config = Config {
            state_dir: dir.to_path_buf(),
            ..Config::default()
        };
        let host = HostInfo {
            hostname: "test".into(),
            os: "Linux".into(),
            os_version: None,
            agent_version: env!("CARGO_PKG_VERSION").into(),
            signatures_supported: false,
        };
        Reporter::open(&config, &host).unwrap()
    }

    fn session(verdict: crate::model::Verdict) -> Finding {
        let mut f: Finding = serde_json::from_value(
            serde_json::to_value(samples::camera_incident().finding).unwrap(),
        )
        .unwrap();
        f.verdict = verdict;
        f
    }

    #[test]
    fn camera_and_tcc_news_reach_the_outbox_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = reporter(dir.path());
        let db = Path::new("/Users/jdoe/Library/Application Support/com.apple.TCC/TCC.db");
        // An allowed session is recorded too, start and stop.
        let mut allowed = session(crate::model::Verdict::Allow);
        allowed.camera.as_mut().unwrap().incident = None;
        r.camera_use(&allowed, Mode::Monitor, true);
        allowed.camera.as_mut().unwrap().duration_seconds = Some(12);
        r.camera_use(&allowed, Mode::Monitor, false);
        r.tcc_unreadable(db, "deploy the PPPC profile");
        r.tcc_readable(db);
        r.camera_watch(false, "log stream exited with status 1");
        r.camera_watch(true, "log stream is running again");

        let events: Vec<Event> = r.outbox.pending(100).unwrap();
        assert_eq!(events.len(), 6, "{events:#?}");
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        let Body::DetectionFinding(start) = &events[0].body else {
            panic!("{:?}", events[0].body)
        };
        let Body::DetectionFinding(stop) = &events[1].body else {
            panic!("{:?}", events[1].body)
        };
        assert_eq!(start.finding.kind, FindingKind::CameraUse);
        assert_eq!(start.activity, FindingActivity::Create);
        assert_eq!(stop.activity, FindingActivity::Close);
        assert_eq!(start.finding_info.uid, stop.finding_info.uid);
        assert_eq!(
            stop.message,
            "Camera no longer in use by zoom.us (pid 4242) after 12 s"
        );
        let statuses: Vec<&HealthStatus> = events[2..]
            .iter()
            .map(|e| match &e.body {
                Body::AgentHealth(h) => &h.status,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(matches!(
            statuses[0],
            HealthStatus::PermissionMissing { permission, detail }
                if permission == "full_disk_access" && detail.contains("TCC.db: deploy the PPPC profile")
        ));
        assert!(matches!(
            statuses[1],
            HealthStatus::PermissionRestored { permission, .. } if permission == "full_disk_access"
        ));
        assert_eq!(
            statuses[2],
            &HealthStatus::CameraWatch {
                state: CameraWatchState::Degraded,
                detail: "log stream exited with status 1".into()
            }
        );
        assert!(matches!(
            statuses[3],
            HealthStatus::CameraWatch {
                state: CameraWatchState::Restored,
                ..
            }
        ));
    }

    #[test]
    fn a_remediated_session_says_contained_in_remediate_mode_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = reporter(dir.path());
        let f = session(crate::model::Verdict::Remediate);
        r.camera_use(&f, Mode::Remediate, true);
        r.camera_use(&f, Mode::Monitor, true);
        let events = r.outbox.pending(10).unwrap();
        let messages: Vec<&str> = events
            .iter()
            .map(|e| match &e.body {
                Body::DetectionFinding(d) => d.message.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(
            messages[0].ends_with("; contained with it"),
            "{}",
            messages[0]
        );
        assert!(
            messages[1].ends_with("(monitor mode: left in place)"),
            "{}",
            messages[1]
        );
    }
}
