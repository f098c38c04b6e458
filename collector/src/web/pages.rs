//! The dashboard's pages: fleet overview, one host's timeline, findings by
//! rule, remediations, and gaps (the Camera page is in `camera`).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use lenscap_events::{Kind, Verdict};
use serde::Deserialize;

use super::camera;
use super::html::{badge, esc, page, table, tile, untrusted_mark, url_value};
use super::summary::{describe, remediation_cells};
use super::{Viewer, not_found};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{Cursor, EventFilter, EventPage, HostCursor, HostFilter};
use crate::timefmt::human;

pub(super) const PAGE: u32 = 50;

/// Camera incidents shown on the fleet page and on a host's page.
const INCIDENTS: usize = 10;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/", get(super::incidents::incidents_page))
        .route("/ui/incidents/{id}", get(super::incidents::incident_page))
        .route("/ui/fleet", get(fleet))
        .route("/ui/hosts/{id}", get(host))
        .route("/ui/rules", get(rules))
        .route("/ui/remediations", get(remediations))
        .route("/ui/gaps", get(gaps))
        .route("/ui/camera", get(camera::camera_page))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Paging {
    cursor: Option<String>,
}

impl Paging {
    /// A cursor that does not parse starts from the newest, as a fresh
    /// page would.
    pub(super) fn cursor(&self) -> Option<Cursor> {
        self.cursor.as_deref().and_then(Cursor::decode)
    }
}

pub(super) fn host_link(id: i64, name: &str) -> String {
    format!("<a href=\"/ui/hosts/{id}\">{}</a>", esc(name))
}

fn more_link(base: &str, page: &EventPage) -> String {
    more_link_to(base, page.next)
}

pub(super) fn more_link_to(base: &str, next: Option<Cursor>) -> String {
    match next {
        Some(c) => format!(
            "<p class=\"more\"><a href=\"{base}?cursor={}\">Older events →</a></p>",
            url_value(&c.encode())
        ),
        None => String::new(),
    }
}

/// The camera incidents table (fleet page, host page).
fn incidents_section(found: &[camera::CameraEvent], partial: bool) -> String {
    let rows: Vec<Vec<String>> = found
        .iter()
        .map(|e| {
            let d = &e.finding;
            let incident = d.finding.camera.as_ref().and_then(|c| c.incident.as_ref());
            vec![
                esc(&human(e.stored.time)),
                host_link(e.stored.host_id, &e.stored.hostname),
                esc(&camera::session_owner(d)),
                incident
                    .map(camera::helper_html)
                    .unwrap_or_else(|| "—".into()),
                incident
                    .map(|i| format!("{} s", i.seconds_before))
                    .unwrap_or_else(|| "—".into()),
                format!(
                    "{}{} {}",
                    untrusted_mark(e.stored.untrusted),
                    badge(d.finding.verdict.as_str(), d.finding.verdict.as_str()),
                    esc(&d.message)
                ),
            ]
        })
        .collect();
    let note = if partial {
        format!(
            " Only the newest {} reported findings were searched.",
            camera::SCAN_LIMIT
        )
    } else {
        String::new()
    };
    format!(
        "<h2>Camera incidents</h2><p class=\"lead\">A camera that turned on within seconds of \
         something connecting to a helper lenscap flagged — how a web page could switch on \
         the camera through Zoom's hidden helper. Newest first; every camera use is on the \
         <a href=\"/ui/camera\">Camera</a> page.{note}</p>{}",
        table(
            &[
                "Time",
                "Host",
                "Camera used by",
                "Flagged helper",
                "Camera on after the connection",
                "What happened",
            ],
            &rows,
            "No camera incident: no camera turned on right after a connection to a flagged helper.",
        )
    )
}

/// The fleet page's query: which page of hosts, and whether to list
/// every host rather than those that need attention.
#[derive(Debug, Default, Deserialize)]
pub(super) struct FleetQuery {
    cursor: Option<String>,
    all: Option<String>,
}

/// Hosts per fleet page.
const FLEET_PAGE: u32 = 100;

async fn fleet(
    State(state): State<AppState>,
    _: Viewer,
    Query(q): Query<FleetQuery>,
) -> Result<Response, ApiError> {
    // A page at a time, whatever the fleet's size: the counts come from
    // totals kept at ingest, the rows from one walk of the index of hosts
    // that need attention (or of all hosts, by name).
    let counts = state.store.fleet_counts().await?;
    let all = q.all.as_deref() == Some("1");
    let page_of = state
        .store
        .host_page(&HostFilter {
            attention: !all,
            cursor: q.cursor.as_deref().and_then(HostCursor::decode),
            limit: FLEET_PAGE,
            ..HostFilter::default()
        })
        .await?;
    let (incidents, partial) = camera::incidents(&state, None, INCIDENTS).await?;
    let mut body = String::from(
        "<h1>Fleet</h1><p class=\"lead\">Every enrolled Mac, what lenscap found on it and whether its events all arrived.</p><div class=\"tiles\">",
    );
    body.push_str(&tile(counts.hosts, "hosts"));
    body.push_str(&tile(counts.attention, "hosts that need attention"));
    body.push_str(&tile(counts.open_findings, "open findings"));
    body.push_str(&tile(counts.hosts_with_gaps, "hosts with missing events"));
    body.push_str(&tile(counts.missing_events, "events missing"));
    body.push_str(&tile(counts.chain_breaks, "chain breaks"));
    body.push_str(&tile(
        if incidents.len() >= INCIDENTS {
            format!("{INCIDENTS}+")
        } else {
            incidents.len().to_string()
        },
        "camera incidents",
    ));
    body.push_str("</div>");
    let rows: Vec<Vec<String>> = page_of
        .hosts
        .iter()
        .map(|h| {
            let mode = h.mode.as_deref().unwrap_or("unknown");
            let class = if mode == "remediate" { "ok" } else { "monitor" };
            vec![
                host_link(h.id, &h.hostname),
                badge(class, mode),
                esc(h.agent_version.as_deref().unwrap_or("—")),
                esc(&h.last_seen.map(human).unwrap_or_else(|| "never".into())),
                if h.open_findings > 0 {
                    badge("remediate", &h.open_findings.to_string())
                } else {
                    "0".into()
                },
                h.event_count.to_string(),
                if h.missing_events > 0 {
                    badge("bad", &format!("{} in {} gap(s)", h.missing_events, h.gaps))
                } else {
                    badge("ok", "none")
                },
                if h.chain_breaks > 0 {
                    badge("bad", &h.chain_breaks.to_string())
                } else {
                    "0".into()
                },
            ]
        })
        .collect();
    let (heading, empty) = if all {
        (
            "All hosts, by name",
            "No host has enrolled yet. Agents enroll with an enroll token (lenscap-collector token create --role enroll).",
        )
    } else {
        (
            "Hosts that need attention",
            "No host needs attention: no open findings, no missing events, no chain breaks.",
        )
    };
    body.push_str(&format!("<h2>{heading}</h2>"));
    body.push_str(&table(
        &[
            "Host",
            "Mode",
            "Agent",
            "Last seen",
            "Open findings",
            "Events",
            "Missing events",
            "Chain breaks",
        ],
        &rows,
        empty,
    ));
    let base = if all {
        "/ui/fleet?all=1&"
    } else {
        "/ui/fleet?"
    };
    if let Some(c) = &page_of.next {
        body.push_str(&format!(
            "<p class=\"more\"><a href=\"{base}cursor={}\">More hosts →</a></p>",
            url_value(&c.encode())
        ));
    }
    if !all {
        let rest = counts.hosts - counts.attention;
        body.push_str(&format!(
            "<p class=\"more\">{rest} other host(s) need nothing. <a href=\"/ui/fleet?all=1\">All hosts, by name →</a></p>"
        ));
    }
    body.push_str(&incidents_section(&incidents, partial));

    let latest = state
        .store
        .events(&EventFilter {
            kinds: vec![Kind::DetectionFinding],
            verdict: Some(Verdict::Remediate),
            limit: 15,
            ..EventFilter::default()
        })
        .await?;
    body.push_str("<h2>Latest findings to remediate</h2>");
    body.push_str(&table(
        &["Time", "Host", "Finding"],
        &latest
            .events
            .iter()
            .map(|e| {
                vec![
                    esc(&human(e.time)),
                    host_link(e.host_id, &e.hostname),
                    format!("{}{}", untrusted_mark(e.untrusted), describe(&e.body)),
                ]
            })
            .collect::<Vec<_>>(),
        "No finding has been judged `remediate` yet.",
    ));
    Ok(page("Fleet", "/ui/fleet", &body))
}

async fn host(
    State(state): State<AppState>,
    _: Viewer,
    Path(id): Path<String>,
    Query(paging): Query<Paging>,
) -> Result<Response, ApiError> {
    let Ok(id) = id.parse::<i64>() else {
        return Ok(not_found("There is no such host."));
    };
    let Some(h) = state.store.host(id).await? else {
        return Ok(not_found("There is no such host."));
    };
    let mut body = format!(
        "<h1>{}</h1><p class=\"lead\">{} · {} · agent {} · enrolled {} · last seen {}</p>",
        esc(&h.hostname),
        esc(&format!("{}={}", h.identity_field, h.identity_value)),
        badge(
            if h.mode.as_deref() == Some("remediate") {
                "ok"
            } else {
                "monitor"
            },
            h.mode.as_deref().unwrap_or("mode unknown")
        ),
        esc(h.agent_version.as_deref().unwrap_or("—")),
        esc(&human(h.enrolled_at)),
        esc(&h.last_seen.map(human).unwrap_or_else(|| "never".into())),
    );
    body.push_str("<div class=\"tiles\">");
    body.push_str(&tile(h.event_count, "events"));
    body.push_str(&tile(h.max_seq, "last sequence number"));
    body.push_str(&tile(h.open_findings, "open findings"));
    body.push_str(&tile(h.missing_events, "events missing"));
    body.push_str(&tile(h.chain_breaks, "chain breaks"));
    body.push_str("</div>");
    if h.gaps > 0 || h.chain_breaks > 0 {
        body.push_str(&gap_tables(&state, Some(id)).await?);
    }
    let (incidents, partial) = camera::incidents(&state, Some(id), INCIDENTS).await?;
    if !incidents.is_empty() {
        body.push_str(&incidents_section(&incidents, partial));
    }
    let events = state
        .store
        .events(&EventFilter {
            host_id: Some(id),
            cursor: paging.cursor(),
            limit: PAGE,
            ..EventFilter::default()
        })
        .await?;
    body.push_str("<h2>Timeline</h2>");
    body.push_str(&table(
        &["Time", "Seq", "What happened"],
        &events
            .events
            .iter()
            .map(|e| {
                vec![
                    esc(&human(e.time)),
                    e.seq.to_string(),
                    format!("{}{}", untrusted_mark(e.untrusted), describe(&e.body)),
                ]
            })
            .collect::<Vec<_>>(),
        "No events from this host yet.",
    ));
    body.push_str(&more_link(&format!("/ui/hosts/{id}"), &events));
    Ok(page(&h.hostname, "/ui/fleet", &body))
}

async fn rules(State(state): State<AppState>, _: Viewer) -> Result<Response, ApiError> {
    let rules = state.store.rules().await?;
    let rows: Vec<Vec<String>> = rules
        .iter()
        .map(|r| {
            vec![
                match &r.rule {
                    Some(rule) => format!("<code>{}</code>", esc(rule)),
                    None => "<em>heuristics (no rule)</em>".into(),
                },
                r.findings.to_string(),
                r.open.to_string(),
                r.hosts.to_string(),
                badge(&r.worst_severity, &r.worst_severity),
            ]
        })
        .collect();
    let body = format!(
        "<h1>Findings by rule</h1><p class=\"lead\">Which catalog entry (<code>catalog:…</code>) or admin rule \
         (<code>rule:…</code>) decided each finding that was not allowed. A finding is open until the agent \
         reports it gone.</p>{}",
        table(
            &["Rule", "Findings", "Open", "Hosts", "Worst severity"],
            &rows,
            "No finding yet.",
        )
    );
    Ok(page("Findings by rule", "/ui/rules", &body))
}

async fn remediations(
    State(state): State<AppState>,
    _: Viewer,
    Query(paging): Query<Paging>,
) -> Result<Response, ApiError> {
    let events = state
        .store
        .events(&EventFilter {
            kinds: vec![Kind::ProcessRemediation, Kind::FileRemediation],
            cursor: paging.cursor(),
            limit: PAGE,
            ..EventFilter::default()
        })
        .await?;
    let rows: Vec<Vec<String>> = events
        .events
        .iter()
        .map(|e| {
            let mut row = vec![esc(&human(e.time)), host_link(e.host_id, &e.hostname)];
            match remediation_cells(&e.body) {
                Some(mut cells) => {
                    cells[0] = format!("{}{}", untrusted_mark(e.untrusted), cells[0]);
                    row.extend(cells)
                }
                None => row.extend([
                    format!("{}{}", untrusted_mark(e.untrusted), describe(&e.body)),
                    String::new(),
                    String::new(),
                    String::new(),
                ]),
            }
            row
        })
        .collect();
    let mut body = String::from(
        "<h1>Remediations</h1><p class=\"lead\">Every step agents took — or, in monitor mode, would have \
         taken — newest first.</p>",
    );
    body.push_str(&table(
        &["Time", "Host", "Action", "Target", "Outcome", "Message"],
        &rows,
        "No remediation yet.",
    ));
    body.push_str(&more_link("/ui/remediations", &events));
    Ok(page("Remediations", "/ui/remediations", &body))
}

async fn gap_tables(state: &AppState, host_id: Option<i64>) -> Result<String, ApiError> {
    let gaps = state.store.gaps(host_id).await?;
    let breaks = state.store.chain_breaks(host_id).await?;
    let gap_rows: Vec<Vec<String>> = gaps
        .iter()
        .map(|g| {
            vec![
                host_link(g.host_id, &g.hostname),
                if g.first_seq == g.last_seq {
                    g.first_seq.to_string()
                } else {
                    format!("{} – {}", g.first_seq, g.last_seq)
                },
                (g.last_seq - g.first_seq + 1).to_string(),
                esc(&human(g.detected_at)),
            ]
        })
        .collect();
    let short = |h: &Option<String>| {
        h.as_deref()
            .map(|s| {
                format!(
                    "<code>{}…</code>",
                    esc(&s.chars().take(12).collect::<String>())
                )
            })
            .unwrap_or_default()
    };
    let break_rows: Vec<Vec<String>> = breaks
        .iter()
        .map(|b| {
            vec![
                host_link(b.host_id, &b.hostname),
                b.seq.to_string(),
                badge("bad", &b.kind),
                format!("<code>{}</code>", esc(&b.uid)),
                short(&b.expected),
                short(&b.actual),
                esc(&human(b.detected_at)),
            ]
        })
        .collect();
    Ok(format!(
        "<h2>Missing events</h2>{}<h2>Chain breaks</h2>{}",
        table(
            &["Host", "Missing sequence numbers", "Events", "Noticed"],
            &gap_rows,
            "No missing events: every sequence number up to each host's latest has arrived.",
        ),
        table(
            &[
                "Host",
                "Seq",
                "Kind",
                "Event uid",
                "Expected prev_hash",
                "Received",
                "Noticed"
            ],
            &break_rows,
            "No chain breaks.",
        )
    ))
}

async fn gaps(State(state): State<AppState>, _: Viewer) -> Result<Response, ApiError> {
    let body = format!(
        "<h1>Gaps</h1><p class=\"lead\">Each agent numbers its events 1, 2, 3… and links each to the one \
         before by hash. A <b>missing event</b> is a number that never arrived (it disappears from this \
         list if it arrives late). A <b>chain break</b> is an event whose link does not match its \
         predecessor — altered or substituted — or a number used twice (an agent reset).</p>{}",
        gap_tables(&state, None).await?
    );
    Ok(page("Gaps", "/ui/gaps", &body))
}
