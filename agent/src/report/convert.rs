//! Pure conversions from what the agent knows into `lenscap_events`
//! payloads ([`Body`]): a judged [`Finding`] into a Detection Finding, one
//! remediation step into a Process or File Remediation Activity, and the
//! agent's own news into an `agent_health` record. No I/O and no clock: the
//! outbox adds the envelope (uid, time, seq, chain) when it appends.
//!
//! Monitor mode's "would do" is a [`StepOutcome::WouldDo`], which is the
//! only way to set the wire's `would_do`: a step that was only planned can
//! then never be written as having succeeded or failed (the events crate
//! refuses that combination when it reads one).
//!
//! `reinstall_attempt` has no kind of its own in the wire format. It is a
//! File Remediation with activity **Harden** and action `quarantine_file`
//! ([`FileAction::ReinstallRemoved`]): the guard enforcing itself by moving
//! a re-created file back into quarantine. A first quarantine is activity
//! Evict, so the pair (Harden, quarantine_file) marks a reinstall attempt,
//! and its message starts with `Reinstall attempt:`.

mod camera;
mod health;
mod steps;

pub use health::{
    camera_watch, circuit_breaker, config_changed, outbox_full, permission_missing,
    permission_restored, started, stopped, tcc_readable, tcc_unreadable,
};
pub use steps::{
    FileAction, ProcessAction, StepContext, StepOutcome, file_remediation, file_target,
    grant_remediation, job_target, kill_outcome, process_remediation, process_report_target,
    process_target,
};

use std::net::SocketAddr;
use std::path::Path;

use lenscap_events as ev;
use lenscap_events::{Body, DetectionFinding, FindingActivity, FindingInfo, FindingRecord};

use crate::config;
use crate::model::{self, Finding, FindingKind, ProcessIdentity};

/// The wire's name for the configured mode.
pub fn mode(m: config::Mode) -> ev::Mode {
    match m {
        config::Mode::Monitor => ev::Mode::Monitor,
        config::Mode::Remediate => ev::Mode::Remediate,
    }
}

fn lossy(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

// ---- findings -------------------------------------------------------------

/// The finding's stable key (`finding_info.uid`): the same listener or
/// persistence item gives the same key on every sweep, so Create, Update
/// and Close pair up at the collector, and remediation steps name it.
///
/// - listener: `listener:<addr:port>:<bundle, else executable, else name>`
/// - persistence: `persistence:<kind>:<plist or item path>`
/// - camera grant: `camera_grant:<service>:<client_type>:<client>:<database>`
/// - camera session: `camera_use:<pid>:<process start unix_us>:<device,
///   else client>`; without a pid, `camera_use:<client>:<since>`
pub fn finding_uid(f: &Finding) -> String {
    // By kind first: a camera finding may one day also name a listener
    // (the helper), and must keep its own key.
    if let (FindingKind::CameraGrant | FindingKind::CameraUse, Some(c)) = (f.kind, &f.camera) {
        return camera::uid(f, c);
    }
    if let Some(l) = &f.listener {
        let owner = f
            .process
            .as_ref()
            .map(|p| {
                p.bundle
                    .as_deref()
                    .or(p.path.as_deref())
                    .map(lossy)
                    .unwrap_or_else(|| p.name.clone())
            })
            .unwrap_or_else(|| "unknown".to_string());
        return format!("listener:{}:{owner}", SocketAddr::new(l.address, l.port));
    }
    if let Some(p) = &f.persistence {
        return format!("persistence:{}:{}", p.kind.as_str(), lossy(&p.path));
    }
    // The judge always fills one of the two; keep a key anyway rather than
    // fail on a finding a future judge shapes differently.
    format!("{}:{}", f.kind.as_str(), f.reasons.join("; "))
}

fn process_name(f: &Finding) -> String {
    f.process
        .as_ref()
        .map(|p| p.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "an unknown process".to_string())
}

/// Short title and one-sentence message for a person.
fn finding_text(f: &Finding, activity: FindingActivity, mode: ev::Mode) -> (String, String) {
    if let (FindingKind::CameraGrant | FindingKind::CameraUse, Some(c)) = (f.kind, &f.camera) {
        return camera::text(f, c, activity, mode);
    }
    let (title, message) = if let (model::FindingKind::Listener, Some(l)) = (f.kind, &f.listener) {
        let sock = SocketAddr::new(l.address, l.port);
        let name = process_name(f);
        let title = format!("{name} listening on {sock}");
        let message = match f.verdict {
            model::Verdict::Remediate => {
                format!("Undisclosed helper web server {name} listens on {sock}")
            }
            model::Verdict::Report => format!("Web server {name} listens on {sock}"),
            model::Verdict::Allow => format!("Allowed web server {name} listens on {sock}"),
        };
        (title, message)
    } else if let Some(p) = &f.persistence {
        let kind = p.kind.title();
        let what = p.label.clone().unwrap_or_else(|| lossy(&p.path));
        let title = format!("{kind} {what}");
        let program = p
            .program
            .as_deref()
            .map(lossy)
            .unwrap_or_else(|| "an unknown program".to_string());
        let message = match f.verdict {
            model::Verdict::Remediate => {
                format!("{kind} {what} starts an undisclosed helper: {program}")
            }
            model::Verdict::Report => format!("{kind} {what} starts {program}"),
            model::Verdict::Allow => format!("Allowed {kind} {what} starts {program}"),
        };
        (title, message)
    } else {
        let title = format!("{} finding", f.kind.as_str());
        (title.clone(), title)
    };
    let message = match activity {
        FindingActivity::Create => message,
        FindingActivity::Update => format!("Changed: {message}"),
        FindingActivity::Close => format!("No longer present: {message}"),
    };
    (title, monitor_note(f, activity, mode, message))
}

/// A person reading a monitor-mode fleet must not think it was removed.
fn monitor_note(f: &Finding, activity: FindingActivity, mode: ev::Mode, message: String) -> String {
    if mode == ev::Mode::Monitor
        && f.verdict == model::Verdict::Remediate
        && activity != FindingActivity::Close
    {
        format!("{message} (monitor mode: left in place)")
    } else {
        message
    }
}

/// The Detection Finding payload of one judged finding. `activity` is the
/// daemon's to choose (first seen, changed, gone); `mode` only shapes the
/// message — the envelope carries the mode itself.
pub fn detection_finding(f: &Finding, activity: FindingActivity, mode: ev::Mode) -> Body {
    let (title, message) = finding_text(f, activity, mode);
    Body::DetectionFinding(Box::new(DetectionFinding {
        activity,
        message,
        finding_info: FindingInfo {
            uid: finding_uid(f),
            title,
        },
        finding: finding_record(f),
    }))
}

/// The wire mirror of a [`Finding`], field for field.
pub fn finding_record(f: &Finding) -> FindingRecord {
    FindingRecord {
        kind: f.kind,
        verdict: f.verdict,
        severity: f.severity,
        reasons: f.reasons.clone(),
        rule: f.rule.clone(),
        process: f.process.as_ref().map(process_info),
        processes: f.processes.iter().map(process_info).collect(),
        listener: f.listener.clone(),
        persistence: f.persistence.as_ref().map(|p| ev::PersistenceInfo {
            kind: p.kind,
            path: lossy(&p.path),
            label: p.label.clone(),
            program: p.program.as_deref().map(lossy),
        }),
        http: f.http.clone(),
        camera: f.camera.as_ref().map(camera_info),
    }
}

fn camera_info(c: &model::CameraRef) -> ev::CameraInfo {
    ev::CameraInfo {
        service: c.service.clone(),
        client: c.client.clone(),
        auth: c.auth.clone(),
        since: c.since.clone(),
        client_type: c.client_type.clone(),
        reason: c.reason.clone(),
        database: c.database.as_deref().map(lossy),
        pid: c.pid,
        device: c.device.as_deref().map(lossy),
        duration_seconds: c.duration_seconds,
        incident: c.incident.clone(),
    }
}

fn process_info(p: &ProcessIdentity) -> ev::ProcessInfo {
    ev::ProcessInfo {
        pid: p.pid,
        ppid: p.ppid,
        start_time: p.start_time,
        path: p.path.as_deref().map(lossy),
        args: p.args.clone(),
        uid: p.uid,
        user: p.user.clone(),
        name: p.name.clone(),
        interactive: p.interactive,
        bundle: p.bundle.as_deref().map(lossy),
        signature: p.signature.clone(),
    }
}

#[cfg(test)]
mod tests;
