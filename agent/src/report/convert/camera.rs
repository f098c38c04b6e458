//! Camera findings for people and for pairing: the `finding_info.uid` of a
//! privacy grant or a camera session, and the title and message a security
//! team reads ("Camera turned on 3 s after a connection to the flagged
//! helper on 127.0.0.1:19421: in use by zoom.us (pid 4242)").
//!
//! The wording follows the judge's verdicts (`judge::camera`): a grant is
//! never remediated (lenscap does not revoke privacy grants), so a grant
//! the judge rates critical is one a flagged helper holds; a session the
//! judge says to remediate is the helper itself using the camera, which is
//! contained when the helper is.

use std::net::SocketAddr;

use lenscap_events as ev;
use lenscap_events::FindingActivity;

use super::{lossy, monitor_note};
use crate::model::{self, CameraRef, Finding, FindingKind};

/// `camera_grant:<service>:<client_type>:<client>:<database>` or
/// `camera_use:<pid>:<start unix_us>:<device, else client>` (no process
/// read, so no start time: `camera_use:<client>:<since>`). Absent parts are empty, so the number
/// of fields never changes. The grant puts the database last because it
/// is the only part that is a full path and may hold a `:`.
pub(super) fn uid(f: &Finding, c: &CameraRef) -> String {
    match f.kind {
        FindingKind::CameraGrant => format!(
            "camera_grant:{}:{}:{}:{}",
            c.service,
            c.client_type.as_deref().unwrap_or(""),
            c.client,
            c.database.as_deref().map(lossy).unwrap_or_default()
        ),
        _ => match &f.process {
            // Pid and start time name one process for its whole life, so
            // a session's start and stop share the key and a reused pid
            // does not.
            Some(p) => format!(
                "camera_use:{}:{}:{}",
                p.pid,
                p.start_time.unix_us,
                c.device
                    .as_deref()
                    .map(lossy)
                    .unwrap_or_else(|| c.client.clone())
            ),
            None => format!(
                "camera_use:{}:{}",
                c.client,
                c.since.as_deref().unwrap_or("")
            ),
        },
    }
}

/// Title and message, activity and mode included.
pub(super) fn text(
    f: &Finding,
    c: &CameraRef,
    activity: FindingActivity,
    mode: ev::Mode,
) -> (String, String) {
    match f.kind {
        FindingKind::CameraGrant => grant_text(f, c, activity, mode),
        _ => session_text(f, c, activity, mode),
    }
}

fn service_words(service: &str) -> &str {
    match service {
        "camera" => "the camera",
        "microphone" => "the microphone",
        "screen_capture" => "screen capture",
        "all_files" => "all files (Full Disk Access)",
        other => other,
    }
}

fn grant_label(service: &str) -> String {
    match service {
        "camera" => "camera grant".into(),
        "microphone" => "microphone grant".into(),
        "screen_capture" => "screen capture grant".into(),
        "all_files" => "Full Disk Access grant".into(),
        other => format!("{other} grant"),
    }
}

fn reason_words(reason: &str) -> String {
    match reason {
        "user_consent" => "user consent".into(),
        "user_set" => "set by the user in System Settings".into(),
        "system_set" => "set by the system".into(),
        "mdm_policy" => "an MDM profile".into(),
        "entitled" => "an entitlement".into(),
        other => match other.strip_prefix("other:") {
            Some(n) => format!("reason {n}"),
            None => other.replace('_', " "),
        },
    }
}

/// `us.zoom.xos may use the camera`, as the judge words the grant.
fn grant_statement(c: &CameraRef) -> String {
    let what = service_words(&c.service);
    let client = &c.client;
    match c.auth.as_str() {
        "allowed" => format!("{client} may use {what}"),
        "limited" => format!("{client} may use {what}, limited"),
        "denied" => format!("{client} is denied {what}"),
        "unknown" => format!("{client} has no decision for {what} (unknown)"),
        other => format!("{client} has an unrecognised decision ({other}) for {what}"),
    }
}

fn upper_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn grant_text(
    f: &Finding,
    c: &CameraRef,
    activity: FindingActivity,
    mode: ev::Mode,
) -> (String, String) {
    let title = grant_statement(c);
    let mut statement = title.clone();
    if let Some(r) = &c.reason {
        statement.push_str(&format!(" ({})", reason_words(r)));
    }
    let label = grant_label(&c.service);
    let flagged = f.verdict != model::Verdict::Allow;
    let message = match activity {
        FindingActivity::Close => format!(
            "{}: {} is no longer listed for {}",
            upper_first(&format!("{label} removed")),
            c.client,
            service_words(&c.service)
        ),
        _ => {
            let body = if flagged && f.severity == model::Severity::Critical {
                // Only a grant a flagged helper holds is critical.
                format!("The flagged helper {statement}")
            } else if flagged && f.severity >= model::Severity::High {
                let by = f.rule.as_deref().unwrap_or("lenscap's heuristics");
                format!("{statement}; flagged by {by}")
            } else {
                statement
            };
            match activity {
                FindingActivity::Update => {
                    format!("{}: {body}", upper_first(&format!("{label} changed")))
                }
                _ if body.starts_with("The flagged helper") => body,
                _ => format!("New {label}: {body}"),
            }
        }
    };
    (title, monitor_note(f, activity, mode, message))
}

/// "zoom.us (pid 4242)": the process's name, else the client; the pid
/// when one was observed, even if the process could not be read.
fn session_owner(f: &Finding, c: &CameraRef) -> String {
    let name = f
        .process
        .as_ref()
        .map(|p| p.name.as_str())
        .filter(|n| !n.is_empty())
        .unwrap_or(&c.client);
    match f.process.as_ref().map(|p| p.pid).or(c.pid) {
        Some(pid) => format!("{name} (pid {pid})"),
        None => name.to_string(),
    }
}

fn session_text(
    f: &Finding,
    c: &CameraRef,
    activity: FindingActivity,
    mode: ev::Mode,
) -> (String, String) {
    let who = session_owner(f, c);
    let title = format!("Camera in use by {who}");
    if activity == FindingActivity::Close {
        let message = match c.duration_seconds {
            Some(n) => format!("Camera no longer in use by {who} after {n} s"),
            None => format!("Camera no longer in use by {who}"),
        };
        return (title, message);
    }
    let remediate = f.verdict == model::Verdict::Remediate;
    let after = c.incident.as_ref().map(|i| {
        let sock = SocketAddr::new(i.helper.address, i.helper.port);
        let gap = match i.seconds_before {
            0 => "less than a second".to_string(),
            n => format!("{n} s"),
        };
        (gap, sock)
    });
    let mut message = match (&after, remediate) {
        (Some((gap, sock)), true) => format!(
            "Camera opened by the undisclosed helper {who} {gap} after a connection to it on {sock}"
        ),
        (None, true) => format!("Camera opened by the undisclosed helper {who}"),
        (Some((gap, sock)), false) => format!(
            "Camera turned on {gap} after a connection to the flagged helper on {sock}: in use by {who}"
        ),
        // Not allowed and no incident: the judge tied the session to a
        // flagged helper but may not act on its process.
        (None, false) if f.verdict != model::Verdict::Allow => {
            format!("Camera in use by {who}, tied to a flagged helper")
        }
        (None, false) => title.clone(),
    };
    if activity == FindingActivity::Update {
        message = format!("Changed: {message}");
    }
    if remediate && mode == ev::Mode::Remediate {
        message.push_str("; contained with it");
    }
    (title, monitor_note(f, activity, mode, message))
}
