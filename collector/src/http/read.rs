//! What reader and admin tokens read: `GET /api/v1/events`,
//! `GET /api/v1/hosts`, and the exports `/api/v1/export.ndjson` and
//! `/api/v1/export.csv`.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use lenscap_events::{Kind, Verdict};
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::export::{self, Format};
use crate::state::AppState;
use crate::store::{
    Cursor, DEFAULT_PAGE, EventFilter, FINDING_KINDS, HostCursor, HostFilter, HostSummary,
    MAX_PAGE, Role, finding_kind_str, parse_finding_kind,
};
use crate::timefmt::{parse_time, rfc3339};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/events", get(list_events))
        .route("/api/v1/hosts", get(list_hosts))
        .route("/api/v1/export.ndjson", get(export_ndjson))
        .route("/api/v1/export.csv", get(export_csv))
}

const READERS: &[Role] = &[Role::Reader, Role::Admin];

/// The query string of the event routes. Unknown parameters are refused
/// so a typo does not silently return everything.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    pub host: Option<String>,
    pub kind: Option<String>,
    /// Comma-separated finding kinds (`camera_grant,camera_use`).
    pub finding_kind: Option<String>,
    pub verdict: Option<String>,
    pub rule: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<String>,
}

impl EventQuery {
    /// Check every parameter; the values go to the store as bound
    /// parameters, never as SQL text.
    pub fn filter(&self) -> Result<EventFilter, ApiError> {
        let bad = |m: String| ApiError::BadRequest(m);
        let kinds = match &self.kind {
            None => Vec::new(),
            Some(k) => vec![Kind::parse(k).ok_or_else(|| {
                bad(format!(
                    "unknown kind {k:?}; expected detection_finding, process_remediation, file_remediation or agent_health"
                ))
            })?],
        };
        let finding_kinds = match &self.finding_kind {
            None => Vec::new(),
            Some(list) => {
                let mut kinds = Vec::new();
                for k in list.split(',').map(str::trim) {
                    let kind = parse_finding_kind(k).ok_or_else(|| {
                        bad(format!(
                            "unknown finding_kind {k:?}; expected one or more of {}, separated by commas",
                            FINDING_KINDS.map(finding_kind_str).join(", ")
                        ))
                    })?;
                    if !kinds.contains(&kind) {
                        kinds.push(kind);
                    }
                }
                kinds
            }
        };
        let verdict = match self.verdict.as_deref() {
            None => None,
            Some("allow") => Some(Verdict::Allow),
            Some("report") => Some(Verdict::Report),
            Some("remediate") => Some(Verdict::Remediate),
            Some(v) => {
                return Err(bad(format!(
                    "unknown verdict {v:?}; expected allow, report or remediate"
                )));
            }
        };
        let cursor = cursor_param(&self.cursor, Cursor::decode)?;
        let limit = limit_param(&self.limit)?;
        Ok(EventFilter {
            host: self.host.clone(),
            host_id: None,
            kinds,
            verdict,
            finding_kinds,
            rule: self.rule.clone(),
            since: time_param("since", &self.since)?,
            until: time_param("until", &self.until)?,
            cursor,
            limit,
        })
    }
}

async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<EventQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(READERS, "read events")?;
    let Query(query) = query?;
    let page = state.store.events(&query.filter()?).await?;
    // The stored text is the canonical JSON of each event: splice it in
    // rather than parse and re-serialise every event.
    let mut out =
        String::with_capacity(page.events.iter().map(|e| e.body.len() + 1).sum::<usize>() + 64);
    out.push_str("{\"events\":[");
    for (i, e) in page.events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&export::event_json(e));
    }
    out.push_str("],\"next_cursor\":");
    match page.next {
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

/// A host in `GET /api/v1/hosts`.
#[derive(Debug, Serialize)]
struct HostView {
    id: i64,
    hostname: String,
    identity: String,
    serial: Option<String>,
    enrolled_at: String,
    last_seen: Option<String>,
    agent_version: Option<String>,
    mode: Option<String>,
    last_seq: i64,
    events: i64,
    open_findings: i64,
    gaps: i64,
    missing_events: i64,
    chain_breaks: i64,
}

impl From<HostSummary> for HostView {
    fn from(h: HostSummary) -> HostView {
        HostView {
            id: h.id,
            hostname: h.hostname,
            identity: format!("{}={}", h.identity_field, h.identity_value),
            serial: h.serial,
            enrolled_at: rfc3339(h.enrolled_at),
            last_seen: h.last_seen.map(rfc3339),
            agent_version: h.agent_version,
            mode: h.mode,
            last_seq: h.max_seq,
            events: h.event_count,
            open_findings: h.open_findings,
            gaps: h.gaps,
            missing_events: h.missing_events,
            chain_breaks: h.chain_breaks,
        }
    }
}

/// The query string of `GET /api/v1/hosts`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostQuery {
    /// `true`: only hosts with open findings, missing events or chain
    /// breaks.
    pub attention: Option<String>,
    pub mode: Option<String>,
    pub last_seen_before: Option<String>,
    pub last_seen_after: Option<String>,
    pub name_prefix: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<String>,
}

impl HostQuery {
    pub fn filter(&self) -> Result<HostFilter, ApiError> {
        let bad = |m: String| ApiError::BadRequest(m);
        let attention = match self.attention.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(v) => return Err(bad(format!("attention: expected true or false, not {v:?}"))),
        };
        let mode = match self.mode.as_deref() {
            None => None,
            Some(m @ ("monitor" | "remediate")) => Some(m.to_string()),
            Some(m) => {
                return Err(bad(format!(
                    "mode: expected monitor or remediate, not {m:?}"
                )));
            }
        };
        let cursor = cursor_param(&self.cursor, HostCursor::decode)?;
        let limit = limit_param(&self.limit)?;
        Ok(HostFilter {
            attention,
            mode,
            seen_before: time_param("last_seen_before", &self.last_seen_before)?,
            seen_since: time_param("last_seen_after", &self.last_seen_after)?,
            name_prefix: self.name_prefix.clone().filter(|p| !p.is_empty()),
            cursor,
            limit,
        })
    }
}

#[derive(Debug, Serialize)]
struct HostList {
    hosts: Vec<HostView>,
    next_cursor: Option<String>,
}

async fn list_hosts(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<HostQuery>, QueryRejection>,
) -> Result<Json<HostList>, ApiError> {
    caller.require(READERS, "read hosts")?;
    let Query(query) = query?;
    let page = state.store.host_page(&query.filter()?).await?;
    Ok(Json(HostList {
        hosts: page.hosts.into_iter().map(HostView::from).collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

async fn export_ndjson(
    state: State<AppState>,
    caller: Caller,
    query: Result<Query<EventQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    export_route(state, caller, query, Format::Ndjson).await
}

async fn export_csv(
    state: State<AppState>,
    caller: Caller,
    query: Result<Query<EventQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    export_route(state, caller, query, Format::Csv).await
}

async fn export_route(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<EventQuery>, QueryRejection>,
    format: Format,
) -> Result<Response, ApiError> {
    caller.require(READERS, "export events")?;
    let Query(query) = query?;
    if query.limit.is_some() || query.cursor.is_some() {
        return Err(ApiError::BadRequest(
            "exports take every matching event: leave out limit and cursor".into(),
        ));
    }
    let filter = query.filter()?;
    // Fail before the 200 goes out if the store is down.
    state.store.ping().await?;
    let stream = export::stream(state.store.clone(), filter, format);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static(format.disposition()),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A time query parameter (`since`, `until`, `last_seen_before`, …):
/// RFC 3339 or Unix seconds, named in the error.
pub(super) fn time_param(name: &str, v: &Option<String>) -> Result<Option<i64>, ApiError> {
    v.as_deref()
        .map(|s| parse_time(s).map_err(|e| ApiError::BadRequest(format!("{name}: {e}"))))
        .transpose()
}

/// A `cursor` parameter: one this collector handed out as `next_cursor`.
pub(super) fn cursor_param<C>(
    v: &Option<String>,
    decode: impl Fn(&str) -> Option<C>,
) -> Result<Option<C>, ApiError> {
    v.as_deref()
        .map(|c| {
            decode(c).ok_or_else(|| {
                ApiError::BadRequest(
                    "cursor: not a cursor this collector handed out; pass next_cursor back \
                     unchanged"
                        .into(),
                )
            })
        })
        .transpose()
}

/// A `limit` parameter: 1 to [`MAX_PAGE`], [`DEFAULT_PAGE`] when absent.
pub(super) fn limit_param(v: &Option<String>) -> Result<u32, ApiError> {
    match v {
        None => Ok(DEFAULT_PAGE),
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("limit: give a number from 1 to {MAX_PAGE}"))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_checked_not_trusted() {
        let q = EventQuery {
            kind: Some("detection_finding' OR 1=1 --".into()),
            ..Default::default()
        };
        assert!(q.filter().unwrap_err().to_string().contains("unknown kind"));
        let q = EventQuery {
            verdict: Some("remediate; DROP TABLE events".into()),
            ..Default::default()
        };
        assert!(
            q.filter()
                .unwrap_err()
                .to_string()
                .contains("unknown verdict")
        );
        for junk in [
            "camera_use' OR '1'='1",
            "camera_use;DROP TABLE events",
            "",
            "camera_use,",
            "Camera_Use",
        ] {
            let q = EventQuery {
                finding_kind: Some(junk.into()),
                ..Default::default()
            };
            let err = q.filter().unwrap_err().to_string();
            assert!(err.contains("unknown finding_kind"), "{junk}: {err}");
            assert!(err.contains("camera_grant, camera_use"), "{err}");
        }
        let q = EventQuery {
            finding_kind: Some("camera_use, camera_grant,camera_use".into()),
            ..Default::default()
        };
        assert_eq!(
            q.filter().unwrap().finding_kinds,
            [
                lenscap_events::FindingKind::CameraUse,
                lenscap_events::FindingKind::CameraGrant
            ]
        );
        let q = EventQuery {
            limit: Some("0".into()),
            ..Default::default()
        };
        assert!(q.filter().is_err());
        let q = EventQuery {
            rule: Some("x' OR '1'='1".into()),
            host: Some("\"; DELETE FROM hosts; --".into()),
            since: Some("2025-11-28T00:00:00Z".into()),
            ..Default::default()
        };
        let f = q.filter().unwrap();
        // Passed through as values, to be bound.
        assert_eq!(f.rule.as_deref(), Some("x' OR '1'='1"));
        assert_eq!(f.limit, DEFAULT_PAGE);
        assert_eq!(f.since, Some(1_764_288_000_000));
    }
}
