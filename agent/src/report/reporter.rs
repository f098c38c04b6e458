//! The reporter: every finding and every step goes into the outbox as a
//! wire event, durably, before anything else happens with it. The daemon
//! owns one and hands it what each stage produced; it decides what is news
//! (a finding already reported with the same verdict is not).
//!
//! An append that fails for a passing reason (disk full, the database
//! locked by a reader) keeps the event in memory and retries it at the end
//! of every cycle: an event is lost only if the daemon dies while the disk
//! is full, and then the collector sees the gap.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lenscap_events::{Body, BreakerState, CameraWatchState, FindingActivity, Mode as EvMode};

use crate::act::execute::StepEvent;
use crate::act::journal::{Entry, StepStatus};
use crate::act::manifest::QuarantineRecord;
use crate::act::plan::Step;
use crate::config::{Config, Mode};
use crate::model::{Finding, FindingKind, HostInfo, Severity, Verdict};
use crate::report::convert::{
    self, FileAction, ProcessAction, StepContext, StepOutcome, file_remediation, file_target,
    grant_remediation, job_target, process_remediation, process_target,
};
use crate::report::hostid;
use crate::report::outbox::{Outbox, OutboxError, open_or_recover};

/// Appends to the outbox, holding back what could not be written yet.
pub struct Reporter {
    outbox: Outbox,
    mode: EvMode,
    backlog: Vec<(EvMode, Body)>,
    /// Finding uid → the verdict, severity and rule last reported for it.
    reported: HashMap<String, (Verdict, Severity, Option<String>)>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("backlog", &self.backlog.len())
            .finish_non_exhaustive()
    }
}

impl Reporter {
    pub fn open(config: &Config, _host: &HostInfo) -> Result<Reporter, OutboxError> {
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
            reported: HashMap::new(),
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
    pub fn flush_pending(&mut self) {
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
    pub fn pending(&self) -> Option<u64> {
        self.outbox
            .pending_count()
            .ok()
            .map(|n| n + self.backlog.len() as u64)
    }

    pub fn started(&mut self, mode: Mode, host: &HostInfo) {
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

    pub fn stopped(&mut self, why: &str) {
        self.record(convert::stopped(why));
    }

    /// A health event from delivery (an event the collector refused, a
    /// fleet policy applied or rejected).
    pub fn delivery(&mut self, body: Body) {
        self.record(body);
    }

    pub fn config_changed(&mut self, keys: &[String]) {
        self.record(convert::config_changed(keys, "preferences"));
    }

    pub fn config_rejected(&mut self, error: &str) {
        self.record(convert::config_changed(
            &[],
            &format!("rejected, previous configuration kept: {error}"),
        ));
    }

    /// An actor's breaker opened: critical, naming whose budget and what
    /// it was spent on, and the plan that is now only monitored.
    pub fn breaker_opened(
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

    pub fn breaker_closed(&mut self, actor: Option<u32>, window: Duration) {
        self.record(convert::circuit_breaker(
            BreakerState::Closed,
            "the hour window passed",
            0,
            u32::try_from(window.as_secs()).unwrap_or(u32::MAX),
            actor,
            Vec::new(),
        ));
    }

    /// A judgement's findings: each one not allowed is reported when it is
    /// new, or when its verdict, severity or deciding rule changed (a fleet
    /// catalog entry that turns a report into a critical one). Camera
    /// sessions are not: `report::camera_sessions` reports them at their
    /// start and stop, allowed ones included.
    pub fn findings(&mut self, findings: &[Finding], mode: Mode) {
        let mut current = HashMap::new();
        for f in findings
            .iter()
            .filter(|f| f.verdict != Verdict::Allow && f.kind != FindingKind::CameraUse)
        {
            let uid = convert::finding_uid(f);
            let now = (f.verdict, f.severity, f.rule.clone());
            let previous = self.reported.get(&uid);
            if previous != Some(&now) {
                self.finding(f, mode, previous.is_some());
            }
            current.insert(uid, now);
        }
        self.reported = current;
    }

    /// A finding seen for the first time (or with a new verdict).
    pub fn finding(&mut self, f: &Finding, mode: Mode, update: bool) {
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
    pub fn camera_use(&mut self, f: &Finding, mode: Mode, started: bool) {
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
    pub fn tcc_unreadable(&mut self, database: &Path, detail: &str) {
        self.record(convert::tcc_unreadable(database, detail));
    }

    /// A TCC database reported unreadable can be read again: health
    /// `permission_restored` for `full_disk_access`.
    pub fn tcc_readable(&mut self, database: &Path) {
        self.record(convert::tcc_readable(database));
    }

    /// The camera-use source (macOS: the `log stream` child) failed
    /// (`healthy` false: `camera_watch` degraded) or works again
    /// (restored).
    pub fn camera_watch(&mut self, healthy: bool, detail: &str) {
        let state = if healthy {
            CameraWatchState::Restored
        } else {
            CameraWatchState::Degraded
        };
        self.record(convert::camera_watch(state, detail));
    }

    /// Monitor mode: every step of the plan as "would do".
    pub fn would_do(&mut self, entry: &Entry) {
        let saved = self.mode;
        self.mode = EvMode::Monitor;
        for step in &entry.plan.steps {
            for body in bodies(entry, step, &StepOutcome::WouldDo, None) {
                self.record(body);
            }
        }
        self.mode = saved;
    }

    /// A `lenscap quarantine restore` the daemon noticed (the record's
    /// guard was lifted and the record says `restored`): one Restore event
    /// per item put back, named by the record, so the collector can close
    /// the incident as restored. The CLI does not write the outbox itself:
    /// the daemon is its only writer.
    pub fn restored(&mut self, record: &QuarantineRecord) {
        let ctx = StepContext {
            finding_uid: None,
            command_uid: None,
        };
        // The grants the plan reset are not given back by a restore: each
        // item's message tells the person to grant them again.
        let again = crate::act::grants::grant_again(&record.grants_reset);
        let outcome = StepOutcome::Success((!again.is_empty()).then(|| again.join("; ")));
        for item in &record.items {
            self.record(file_remediation(
                file_target(&item.original.0),
                FileAction::Restore,
                Some(&record.id),
                &outcome,
                &ctx,
            ));
        }
    }

    /// What carrying out a plan's steps did.
    pub fn steps(&mut self, entry: &Entry, events: &[StepEvent]) {
        for e in events {
            let outcome = match e.status {
                // A reinstall's message names the record already; the
                // step's own words would say it twice.
                StepStatus::Done if matches!(e.step, Step::Reinstall { .. }) => {
                    StepOutcome::Success(None)
                }
                StepStatus::Done => StepOutcome::Success(Some(e.outcome.clone())),
                StepStatus::WouldDo => StepOutcome::WouldDo,
                _ => StepOutcome::Failure(e.outcome.clone()),
            };
            for body in bodies(entry, &e.step, &outcome, e.quarantine_id.as_deref()) {
                self.record(body);
            }
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
        Step::Reinstall { path, .. } => {
            files(std::slice::from_ref(path), FileAction::ReinstallRemoved)
        }
        // One event per grant, its target the TCC.db that holds it (what
        // the reset changes); grants the plan keeps are said in the
        // journal and the finding's reasons.
        Step::ResetGrants { grants, .. } => grants
            .iter()
            .map(|g| {
                let mut target = file_target(&g.database);
                target.owner_uid = Some(g.uid);
                grant_remediation(target, g, outcome, &ctx)
            })
            .collect(),
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
