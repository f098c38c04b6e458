//! `GET /api/v1/alerts`: the alert destinations (without their secrets),
//! the queue's counts and the newest alerts, `?status=dead` for the dead
//! letters. Destinations are managed with `lenscap-collector alert …`
//! (`crate::admin`), not over HTTP: a secret never crosses the API.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::{Json, Router, routing::get};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{AlertRecord, DEFAULT_PAGE, MAX_PAGE, Role};
use crate::timefmt::rfc3339;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/alerts", get(list))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertQuery {
    status: Option<String>,
    limit: Option<String>,
}

fn view(a: &AlertRecord) -> Value {
    json!({
        "id": a.id,
        "destination": a.destination,
        "incident_id": a.incident_id,
        "state": a.state,
        "event_id": a.event_id,
        "status": a.status,
        "attempts": a.attempts,
        "queued_at": rfc3339(a.queued_at),
        "next_attempt": (a.status == "pending").then(|| rfc3339(a.next_attempt)),
        "sent_at": a.sent_at.map(rfc3339),
        "last_error": a.last_error,
    })
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<AlertQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(&[Role::Reader, Role::Admin], "read alerts")?;
    let Query(q) = query?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s @ ("pending" | "sent" | "dead")) => Some(s),
        Some(s) => {
            return Err(ApiError::BadRequest(format!(
                "unknown status {s:?}; expected pending, sent or dead"
            )));
        }
    };
    let limit = match q.limit.as_deref() {
        None => DEFAULT_PAGE,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("limit {l:?}: expected 1 to {MAX_PAGE}"))
            })?,
    };
    let destinations = state.store.alert_destinations().await?;
    let counts = state.store.alert_counts().await?;
    let alerts = state.store.alerts(status, i64::from(limit)).await?;
    Ok(Json(json!({
        "destinations": destinations,
        "counts": counts,
        "alerts": alerts.iter().map(view).collect::<Vec<_>>(),
    })))
}
