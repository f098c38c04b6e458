//! One line of HTML saying what an event is about, for timelines.

use lenscap_events::{Body, CameraWatchState, Event, FindingKind, HealthStatus, OutcomeStatus};

use super::camera;
use super::html::{badge, esc, rule_code};

/// The event's "what happened" cell. Unreadable bodies (a newer agent's
/// kind) are shown as such rather than hidden.
pub fn describe(body: &str) -> String {
    let Ok(event) = serde_json::from_str::<Event>(body) else {
        return "<em>an event this collector version cannot read</em>".into();
    };
    match &event.body {
        Body::DetectionFinding(d)
            if matches!(
                d.finding.kind,
                FindingKind::CameraGrant | FindingKind::CameraUse
            ) && d.finding.camera.is_some() =>
        {
            camera::describe(d)
        }
        Body::DetectionFinding(d) => {
            let f = &d.finding;
            let rule = rule_code(f.rule.as_deref());
            format!(
                "{} {} {}{rule}",
                badge(f.verdict.as_str(), f.verdict.as_str()),
                badge(f.severity.as_str(), f.severity.as_str()),
                esc(&d.finding_info.title)
            )
        }
        Body::ProcessRemediation(r) => remediation(
            r.action.as_str(),
            &format!("{} (pid {})", r.target.name, r.target.pid),
            r.outcome.status,
            r.would_do,
            &r.message,
        ),
        Body::FileRemediation(r) => remediation(
            r.action.as_str(),
            &r.target.path,
            r.outcome.status,
            r.would_do,
            &r.message,
        ),
        Body::AgentHealth(h) => {
            let class = match &h.status {
                HealthStatus::Started { .. }
                | HealthStatus::Stopped { .. }
                | HealthStatus::PermissionRestored { .. }
                | HealthStatus::CameraWatch {
                    state: CameraWatchState::Restored,
                    ..
                } => "ok",
                HealthStatus::ConfigChanged { .. } => "info",
                _ => "bad",
            };
            format!("{} {}", badge(class, h.status.name()), esc(&h.message))
        }
    }
}

/// (action, target, outcome badge, message) cells for the remediation list.
pub fn remediation_cells(body: &str) -> Option<[String; 4]> {
    let event = serde_json::from_str::<Event>(body).ok()?;
    let (action, target, status, would_do, message) = match &event.body {
        Body::ProcessRemediation(r) => (
            r.action.as_str(),
            format!("{} (pid {})", r.target.name, r.target.pid),
            r.outcome.status,
            r.would_do,
            r.message.clone(),
        ),
        Body::FileRemediation(r) => (
            r.action.as_str(),
            r.target.path.clone(),
            r.outcome.status,
            r.would_do,
            r.message.clone(),
        ),
        _ => return None,
    };
    Some([
        format!("<code>{}</code>", esc(action)),
        format!("<code>{}</code>", esc(&target)),
        outcome_badge(status, would_do),
        esc(&message),
    ])
}

fn outcome_badge(status: OutcomeStatus, would_do: bool) -> String {
    match (status, would_do) {
        (_, true) => badge("monitor", "would do (monitor mode)"),
        (OutcomeStatus::Success, _) => badge("success", "done"),
        (OutcomeStatus::Failure, _) => badge("failure", "failed"),
        (OutcomeStatus::NotAttempted, _) => badge("not_attempted", "held back"),
    }
}

fn remediation(
    action: &str,
    target: &str,
    status: OutcomeStatus,
    would_do: bool,
    message: &str,
) -> String {
    format!(
        "{} <code>{}</code> on <code>{}</code> — {}",
        outcome_badge(status, would_do),
        esc(action),
        esc(target),
        esc(message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use lenscap_events::samples;

    #[test]
    fn describes_each_kind_with_escaping() {
        let mut chain = samples::docs_chain();
        if let Body::DetectionFinding(d) = &mut chain[1].body {
            d.finding_info.title = "<img src=x onerror=alert(1)>".into();
        }
        let texts: Vec<String> = chain
            .iter()
            .map(|e| describe(&serde_json::to_string(e).unwrap()))
            .collect();
        assert!(texts[0].contains("started"));
        assert!(texts[1].contains("&lt;img src=x"), "{}", texts[1]);
        assert!(!texts[1].contains("<img"));
        assert!(texts[2].contains("kill_process") && texts[2].contains("done"));
        assert!(texts[3].contains("quarantine_file"));
        assert!(describe("{}").contains("cannot read"));
        assert!(remediation_cells(&serde_json::to_string(&chain[3]).unwrap()).is_some());
        assert!(remediation_cells(&serde_json::to_string(&chain[0]).unwrap()).is_none());
    }

    #[test]
    fn camera_events_get_their_own_lines_and_health_colours() {
        let texts: Vec<String> = samples::docs_camera_chain()
            .iter()
            .map(|e| describe(&serde_json::to_string(e).unwrap()))
            .collect();
        assert!(texts[0].starts_with("<span class=\"b bad\">permission_missing</span>"));
        assert!(texts[1].starts_with("<span class=\"b ok\">permission_restored</span>"));
        assert!(texts[2].contains("privacy grant") && texts[2].contains("class=\"detail\""));
        assert!(texts[3].contains("class=\"incident\""), "{}", texts[3]);
        assert!(texts[5].starts_with("<span class=\"b bad\">camera_watch</span>"));
        assert!(texts[6].starts_with("<span class=\"b ok\">camera_watch</span>"));
        // A listener finding keeps its one-line title.
        let listener = describe(&serde_json::to_string(&samples::docs_chain()[1]).unwrap());
        assert!(!listener.contains("class=\"detail\""), "{listener}");
    }
}
