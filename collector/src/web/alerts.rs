//! The Alerts page: where incidents are told (destinations, never their
//! secrets), how the queue stands, and the dead letters — alerts the
//! collector gave up on after its last attempt, with the receiver's last
//! answer — so someone notices a SIEM that stopped listening.

use axum::extract::State;
use axum::response::Response;

use super::Viewer;
use super::html::{badge, esc, page, table};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::AlertRecord;
use crate::timefmt::human;

fn severity_name(rank: i64) -> &'static str {
    match rank {
        5 => "critical",
        4 => "high",
        3 => "medium",
        2 => "low",
        _ => "info",
    }
}

fn alert_rows(alerts: &[AlertRecord]) -> Vec<Vec<String>> {
    alerts
        .iter()
        .map(|a| {
            vec![
                esc(&human(a.queued_at)),
                esc(&a.destination),
                format!(
                    "<a href=\"/ui/incidents/{}\">incident {}</a> {}",
                    a.incident_id,
                    a.incident_id,
                    esc(&a.state.replace('_', "-"))
                ),
                badge(
                    match a.status.as_str() {
                        "sent" => "ok",
                        "dead" => "bad",
                        _ => "monitor",
                    },
                    &a.status,
                ),
                a.attempts.to_string(),
                esc(a.last_error.as_deref().unwrap_or("")),
            ]
        })
        .collect()
}

pub(super) async fn alerts_page(
    State(state): State<AppState>,
    _: Viewer,
) -> Result<Response, ApiError> {
    let dests = state.store.alert_destinations().await?;
    let counts = state.store.alert_counts().await?;
    let dead = state.store.alerts(Some("dead"), 100).await?;
    let recent = state.store.alerts(None, 50).await?;
    let mut body = format!(
        "<h1>Alerts</h1><p class=\"lead\">Incidents are told to these destinations once per state \
         they reach. {} pending, {} sent, {} dead. Destinations are managed with \
         <code>lenscap-collector alert add|list|test|remove</code>.</p>",
        counts.pending, counts.sent, counts.dead
    );
    let rows: Vec<Vec<String>> = dests
        .iter()
        .map(|d| {
            vec![
                esc(&d.name),
                esc(&d.kind),
                esc(&d.url),
                esc(severity_name(d.min_rank)),
                esc(if d.states.is_empty() {
                    "every state"
                } else {
                    &d.states
                }),
                esc(d.rule.as_deref().unwrap_or("any")),
                esc(d.host.as_deref().unwrap_or("any")),
            ]
        })
        .collect();
    body.push_str(&table(
        &[
            "Name",
            "Kind",
            "Where",
            "Severity at least",
            "States",
            "Rule",
            "Host",
        ],
        &rows,
        "No destination: nothing is told. Add one with lenscap-collector alert add.",
    ));
    body.push_str("<h2>Dead letters</h2>");
    body.push_str(&table(
        &[
            "Queued",
            "Destination",
            "Incident",
            "Status",
            "Attempts",
            "Last error",
        ],
        &alert_rows(&dead),
        "None: every alert was delivered or is still being tried.",
    ));
    body.push_str("<h2>Latest alerts</h2>");
    body.push_str(&table(
        &[
            "Queued",
            "Destination",
            "Incident",
            "Status",
            "Attempts",
            "Last error",
        ],
        &alert_rows(&recent),
        "No alert yet.",
    ));
    Ok(page("Alerts", "/ui/alerts", &body))
}
