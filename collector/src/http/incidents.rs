//! Incidents for readers: `GET /api/v1/incidents` (filters, cursor
//! paging), `GET /api/v1/incidents/{id}` (the incident with its events in
//! order) and the exports `/api/v1/incidents/export.ndjson` and `.csv`.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::read::{cursor_param, limit_param, time_param};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::export::{self, Format, IncidentView};
use crate::incidents::severity_rank;
use crate::state::AppState;
use crate::store::{Cursor, IncidentFilter, Role};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/incidents", get(list))
        .route("/api/v1/incidents/export.ndjson", get(export_ndjson))
        .route("/api/v1/incidents/export.csv", get(export_csv))
        .route("/api/v1/incidents/{id}", get(detail))
}

const READERS: &[Role] = &[Role::Reader, Role::Admin];

pub const STATES: [&str; 6] = [
    "open",
    "contained",
    "failed",
    "restored",
    "would_do",
    "closed",
];

/// The query string of the incident routes; unknown parameters are
/// refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentQuery {
    pub host: Option<String>,
    pub state: Option<String>,
    /// At least this severity.
    pub severity: Option<String>,
    pub rule: Option<String>,
    /// `chain_break`: only incidents holding an untrusted event.
    pub integrity: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<String>,
}

impl IncidentQuery {
    pub fn filter(&self) -> Result<IncidentFilter, ApiError> {
        let bad = |m: String| ApiError::BadRequest(m);
        let state = match self.state.as_deref() {
            None => None,
            Some(s) if STATES.contains(&s) => Some(s.to_string()),
            Some(s) => {
                return Err(bad(format!(
                    "unknown state {s:?}; expected one of {}",
                    STATES.join(", ")
                )));
            }
        };
        let min_severity = match self.severity.as_deref() {
            None => None,
            Some(s @ ("info" | "low" | "medium" | "high" | "critical")) => Some(severity_rank(s)),
            Some(s) => {
                return Err(bad(format!(
                    "unknown severity {s:?}; expected info, low, medium, high or critical"
                )));
            }
        };
        let untrusted = match self.integrity.as_deref() {
            None | Some("any") => false,
            Some("chain_break") => true,
            Some(s) => {
                return Err(bad(format!(
                    "unknown integrity {s:?}; expected chain_break"
                )));
            }
        };
        let cursor = cursor_param(&self.cursor, Cursor::decode)?;
        let limit = limit_param(&self.limit)?;
        Ok(IncidentFilter {
            host: self.host.clone(),
            host_id: None,
            state,
            min_severity,
            rule: self.rule.clone(),
            since: time_param("since", &self.since)?,
            until: time_param("until", &self.until)?,
            untrusted,
            cursor,
            limit,
        })
    }
}

#[derive(Debug, serde::Serialize)]
struct ListAnswer {
    incidents: Vec<IncidentView>,
    next_cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<IncidentQuery>, QueryRejection>,
) -> Result<Json<ListAnswer>, ApiError> {
    caller.require(READERS, "read incidents")?;
    let Query(query) = query?;
    let page = state.store.incidents(&query.filter()?).await?;
    Ok(Json(ListAnswer {
        incidents: page.incidents.iter().map(IncidentView::from).collect(),
        next_cursor: page.next.map(Cursor::encode),
    }))
}

/// The query string of `GET /api/v1/incidents/{id}`: a page of its
/// events.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetailQuery {
    pub cursor: Option<String>,
    pub limit: Option<String>,
}

async fn detail(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<DetailQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(READERS, "read incidents")?;
    let Query(query) = query?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("{id:?} is not an incident id")))?;
    let cursor = cursor_param(&query.cursor, Cursor::decode)?;
    let limit = limit_param(&query.limit)?;
    let Some((incident, events, next)) = state.store.incident(id, cursor, limit).await? else {
        return Err(ApiError::NotFound(format!("no incident {id}")));
    };
    let head = serde_json::to_string(&IncidentView::from(&incident)).map_err(|e| {
        ApiError::Internal(crate::store::StoreError::Corrupt {
            what: "writing an incident",
            detail: e.to_string(),
        })
    })?;
    // The events are spliced in as stored (see `export::event_json`).
    let mut out = String::with_capacity(
        head.len() + events.iter().map(|e| e.body.len() + 1).sum::<usize>() + 64,
    );
    out.push_str("{\"incident\":");
    out.push_str(&head);
    out.push_str(",\"events\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&export::event_json(e));
    }
    out.push_str("],\"next_cursor\":");
    match next {
        Some(c) => {
            out.push('"');
            out.push_str(&c.encode());
            out.push('"');
        }
        None => out.push_str("null"),
    }
    out.push('}');
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        out,
    )
        .into_response())
}

async fn export_ndjson(
    state: State<AppState>,
    caller: Caller,
    query: Result<Query<IncidentQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    export_route(state, caller, query, Format::Ndjson).await
}

async fn export_csv(
    state: State<AppState>,
    caller: Caller,
    query: Result<Query<IncidentQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    export_route(state, caller, query, Format::Csv).await
}

async fn export_route(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<IncidentQuery>, QueryRejection>,
    format: Format,
) -> Result<Response, ApiError> {
    caller.require(READERS, "export incidents")?;
    let Query(query) = query?;
    if query.limit.is_some() || query.cursor.is_some() {
        return Err(ApiError::BadRequest(
            "exports take every matching incident: leave out limit and cursor".into(),
        ));
    }
    let filter = query.filter()?;
    state.store.ping().await?;
    let disposition = match format {
        Format::Ndjson => "attachment; filename=\"lenscap-incidents.ndjson\"",
        Format::Csv => "attachment; filename=\"lenscap-incidents.csv\"",
    };
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static(disposition),
            ),
        ],
        Body::from_stream(export::incident_stream(state.store.clone(), filter, format)),
    )
        .into_response())
}
