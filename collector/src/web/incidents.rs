//! The Incidents page, the dashboard's first page: one row per incident
//! (what happened about one helper on one Mac, `crate::incidents`), most
//! recently active first, a page at a time; and one incident's page with
//! its events in order. An incident holding an event on a chain break
//! says so beside its state, and that event carries the mark.

use axum::extract::{Path, Query, State};
use axum::response::Response;

use super::html::{badge, esc, page, table, untrusted_mark, url_value};
use super::pages::{PAGE, Paging, host_link};
use super::summary::describe;
use super::{Viewer, not_found};
use crate::error::ApiError;
use crate::export::integrity;
use crate::state::AppState;
use crate::store::{IncidentFilter, IncidentRecord};
use crate::timefmt::human;

/// The state cell: the state as a badge, and the chain-break mark when
/// one of its events is untrusted.
fn state_cell(i: &IncidentRecord) -> String {
    let class = match i.state.as_str() {
        "contained" | "restored" | "closed" => "ok",
        "failed" | "open" => "bad",
        _ => "monitor",
    };
    let words = i.state.replace('_', "-");
    format!("{}{}", untrusted_mark(i.untrusted), badge(class, &words))
}

pub(super) async fn incidents_page(
    State(state): State<AppState>,
    _: Viewer,
    Query(paging): Query<Paging>,
) -> Result<Response, ApiError> {
    let list = state
        .store
        .incidents(&IncidentFilter {
            cursor: paging.cursor(),
            limit: PAGE,
            ..IncidentFilter::default()
        })
        .await?;
    let rows: Vec<Vec<String>> = list
        .incidents
        .iter()
        .map(|i| {
            vec![
                esc(&human(i.last_time)),
                host_link(i.host_id, &i.hostname),
                format!("<a href=\"/ui/incidents/{}\">{}</a>", i.id, esc(&i.title)),
                state_cell(i),
                badge(&i.severity, &i.severity),
                i.event_count.to_string(),
            ]
        })
        .collect();
    let mut body = String::from(
        "<h1>Incidents</h1><p class=\"lead\">What happened on each Mac, one row per program lenscap \
         acted on or reported: its findings, the steps taken and how they went. Most recently \
         active first. An incident marked <b>chain break — untrusted</b> holds an event whose \
         place in its host's hash chain does not match: read it as possibly forged.</p>",
    );
    body.push_str(&table(
        &[
            "Last activity",
            "Host",
            "Incident",
            "State",
            "Severity",
            "Events",
        ],
        &rows,
        "No incident yet: no agent has reported a finding to act on.",
    ));
    if let Some(c) = list.next {
        body.push_str(&format!(
            "<p class=\"more\"><a href=\"/ui/?cursor={}\">Older incidents →</a></p>",
            url_value(&c.encode())
        ));
    }
    Ok(page("Incidents", "/ui/", &body))
}

pub(super) async fn incident_page(
    State(state): State<AppState>,
    _: Viewer,
    Path(id): Path<String>,
    Query(paging): Query<Paging>,
) -> Result<Response, ApiError> {
    let Ok(id) = id.parse::<i64>() else {
        return Ok(not_found("There is no such incident."));
    };
    // A page of its events: a helper that keeps coming back makes an
    // incident of thousands.
    let Some((i, events, next)) = state.store.incident(id, paging.cursor(), PAGE).await? else {
        return Ok(not_found("There is no such incident."));
    };
    let mut body = format!(
        "<h1>{}</h1><p class=\"lead\">{} · {} · {} · first {} · last {} · integrity <b>{}</b></p>",
        esc(&i.title),
        host_link(i.host_id, &i.hostname),
        state_cell(&i),
        badge(&i.severity, &i.severity),
        esc(&human(i.first_time)),
        esc(&human(i.last_time)),
        integrity(i.untrusted),
    );
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                esc(&human(e.time)),
                e.seq.to_string(),
                format!("{}{}", untrusted_mark(e.untrusted), describe(&e.body)),
            ]
        })
        .collect();
    body.push_str("<h2>Events, in the host's order</h2>");
    body.push_str(&table(
        &["Time", "Seq", "What happened"],
        &rows,
        "No events.",
    ));
    if let Some(c) = next {
        body.push_str(&format!(
            "<p class=\"more\"><a href=\"/ui/incidents/{id}?cursor={}\">Later events →</a></p>",
            url_value(&c.encode())
        ));
    }
    Ok(page(&i.title, "/ui/", &body))
}
