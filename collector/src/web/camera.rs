//! Camera findings on the dashboard: privacy grants (`camera_grant`) and
//! camera sessions (`camera_use`), and the Camera page that lists them.
//!
//! The store keeps each finding's own kind (`finding_kind`), so camera
//! findings are read with a filter on it: the Camera page reads one page
//! of them, however many other findings lie between. Incidents are a
//! subset no column describes (a camera session rated critical or tied to
//! a flagged helper), so [`scan`] still reads camera sessions' bodies,
//! at most [`SCAN_LIMIT`] per request.

use axum::extract::{Query, State};
use axum::response::Response;
use lenscap_events::{
    Body, CameraIncident, CameraInfo, DetectionFinding, Event, FindingActivity, FindingKind, Kind,
    Severity, Verdict,
};

use super::Viewer;
use super::html::{badge, esc, page, rule_code, table};
use super::pages::{Paging, host_link, more_link_to};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{Cursor, EventFilter, MAX_PAGE, StoredEvent};
use crate::timefmt::human;

/// At most this many stored events are read for one page.
pub(super) const SCAN_LIMIT: u32 = 2 * MAX_PAGE;

/// The finding kinds the Camera page shows.
const CAMERA_KINDS: [FindingKind; 2] = [FindingKind::CameraGrant, FindingKind::CameraUse];

/// A camera finding read from a stored event.
#[derive(Debug)]
pub(super) struct CameraEvent {
    pub stored: StoredEvent,
    pub finding: Box<DetectionFinding>,
}

impl CameraEvent {
    fn camera(&self) -> Option<&CameraInfo> {
        self.finding.finding.camera.as_ref()
    }
}

/// The detection finding in `body` if it is about the camera.
pub(super) fn camera_finding(body: &str) -> Option<Box<DetectionFinding>> {
    match serde_json::from_str::<Event>(body).ok()?.body {
        Body::DetectionFinding(d)
            if matches!(
                d.finding.kind,
                FindingKind::CameraGrant | FindingKind::CameraUse
            ) && d.finding.camera.is_some() =>
        {
            Some(d)
        }
        _ => None,
    }
}

/// A camera session that started shortly after a connection to a flagged
/// helper (or that the agent rated critical for another reason, such as
/// the helper itself holding the camera). Its end (Close) is not a second
/// incident.
pub(super) fn is_incident(d: &DetectionFinding) -> bool {
    d.finding.kind == FindingKind::CameraUse
        && d.activity != FindingActivity::Close
        && (d.finding.severity == Severity::Critical
            || d.finding
                .camera
                .as_ref()
                .is_some_and(|c| c.incident.is_some()))
}

/// What a scan found, and where the next one should start.
#[derive(Debug)]
pub(super) struct Scan {
    pub found: Vec<CameraEvent>,
    /// `None`: every matching event was read.
    pub next: Option<Cursor>,
}

/// Camera findings matching `keep` among the camera findings `base`
/// selects (those of `base.finding_kinds`, or both camera kinds), newest
/// first, from `cursor` on: up to `want` of them, reading at most
/// [`SCAN_LIMIT`] events.
pub(super) async fn scan(
    state: &AppState,
    base: &EventFilter,
    cursor: Option<Cursor>,
    want: usize,
    keep: impl Fn(&DetectionFinding) -> bool,
) -> Result<Scan, ApiError> {
    let mut found = Vec::new();
    let mut cursor = cursor;
    let mut read: u32 = 0;
    // Where most findings are camera findings, a short first read is
    // enough; where they are rare, later reads take whole pages.
    let mut limit = u32::try_from(want.saturating_mul(2))
        .unwrap_or(MAX_PAGE)
        .clamp(100, MAX_PAGE);
    loop {
        let filter = EventFilter {
            kinds: vec![Kind::DetectionFinding],
            finding_kinds: if base.finding_kinds.is_empty() {
                CAMERA_KINDS.to_vec()
            } else {
                base.finding_kinds.clone()
            },
            cursor,
            limit: limit.min(SCAN_LIMIT - read),
            ..base.clone()
        };
        limit = MAX_PAGE;
        let page = state.store.events(&filter).await?;
        read += u32::try_from(page.events.len()).unwrap_or(u32::MAX);
        for stored in page.events {
            let at = Cursor {
                time: stored.time,
                id: stored.id,
            };
            if let Some(finding) = camera_finding(&stored.body).filter(|d| keep(d)) {
                found.push(CameraEvent { stored, finding });
                if found.len() >= want {
                    // Continue right after the last one shown; the rest of
                    // this page is read again next time.
                    return Ok(Scan {
                        found,
                        next: Some(at),
                    });
                }
            }
        }
        cursor = page.next;
        if cursor.is_none() || read >= SCAN_LIMIT {
            return Ok(Scan {
                found,
                next: cursor,
            });
        }
    }
}

/// The newest camera incidents of the fleet (or of one host). Incidents
/// are camera sessions never judged `allow`, so only reported and
/// remediated `camera_use` findings are read: the many allowed sessions
/// cannot push them out of reach.
pub(super) async fn incidents(
    state: &AppState,
    host_id: Option<i64>,
    want: usize,
) -> Result<(Vec<CameraEvent>, bool), ApiError> {
    let mut all = Vec::new();
    let mut partial = false;
    for verdict in [Verdict::Report, Verdict::Remediate] {
        let base = EventFilter {
            host_id,
            verdict: Some(verdict),
            finding_kinds: vec![FindingKind::CameraUse],
            ..EventFilter::default()
        };
        let scan = scan(state, &base, None, want, is_incident).await?;
        // Stopped by the read limit, not by running out of events.
        partial |= scan.next.is_some() && scan.found.len() < want;
        all.extend(scan.found);
    }
    all.sort_by_key(|e| std::cmp::Reverse((e.stored.time, e.stored.id)));
    // The same session reported again (Update) is one incident.
    let mut seen = std::collections::HashSet::new();
    all.retain(|e| seen.insert((e.stored.host_id, e.finding.finding_info.uid.clone())));
    all.truncate(want);
    Ok((all, partial))
}

/// "zoom.us (pid 4242)": who had the camera.
pub(super) fn session_owner(d: &DetectionFinding) -> String {
    let c = d.finding.camera.as_ref();
    let name = d
        .finding
        .process
        .as_ref()
        .map(|p| p.name.clone())
        .filter(|n| !n.is_empty())
        .or_else(|| c.map(|c| c.client.clone()))
        .unwrap_or_else(|| "an unknown process".into());
    match d
        .finding
        .process
        .as_ref()
        .map(|p| p.pid)
        .or(c.and_then(|c| c.pid))
    {
        Some(pid) => format!("{name} (pid {pid})"),
        None => name,
    }
}

/// The helper a camera incident points at: `127.0.0.1:19421 (pid 1873,
/// catalog:zoom-opener)`, as HTML.
pub(super) fn helper_html(i: &CameraIncident) -> String {
    let sock = std::net::SocketAddr::new(i.helper.address, i.helper.port);
    let mut extra = Vec::new();
    if let Some(pid) = i.helper_pid {
        extra.push(format!("pid {pid}"));
    }
    if let Some(rule) = &i.helper_rule {
        extra.push(format!("<code>{}</code>", esc(rule)));
    }
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(" ({})", extra.join(", "))
    };
    format!("<code>{}</code>{extra}", esc(&sock.to_string()))
}

fn seconds_words(n: u64) -> String {
    match n {
        0 => "less than a second".into(),
        1 => "1 second".into(),
        n => format!("{n} seconds"),
    }
}

/// The incident line: what connected where and how soon the camera came
/// on, as HTML.
pub(super) fn incident_html(i: &CameraIncident) -> String {
    format!(
        "<div class=\"incident\">Incident: the camera turned on {} after a connection to the \
         flagged helper on {} at {}</div>",
        esc(&seconds_words(i.seconds_before)),
        helper_html(i),
        esc(&i.connection_at)
    )
}

/// `service · client · auth` and the rest of the camera object, as HTML.
pub(super) fn details_html(d: &DetectionFinding) -> String {
    let Some(c) = d.finding.camera.as_ref() else {
        return String::new();
    };
    let mut parts = vec![
        format!("service <b>{}</b>", esc(&c.service)),
        format!(
            "client <code>{}</code>{}",
            esc(&c.client),
            c.client_type
                .as_deref()
                .map(|t| format!(" ({})", esc(&t.replace('_', " "))))
                .unwrap_or_default()
        ),
        format!("auth <b>{}</b>", esc(&c.auth)),
    ];
    if let Some(r) = &c.reason {
        parts.push(format!("reason {}", esc(&r.replace('_', " "))));
    }
    if let Some(pid) = c.pid {
        parts.push(format!("pid {pid}"));
    }
    if let Some(dev) = &c.device {
        parts.push(format!("device <code>{}</code>", esc(dev)));
    }
    if let Some(since) = &c.since {
        parts.push(format!("since {}", esc(since)));
    }
    if let Some(n) = c.duration_seconds {
        parts.push(format!("on for {}", esc(&seconds_words(n))));
    }
    if let Some(db) = &c.database {
        parts.push(format!("from <code>{}</code>", esc(db)));
    }
    let mut out = format!("<div class=\"detail\">{}</div>", parts.join(" · "));
    if let Some(i) = &c.incident {
        out.push_str(&incident_html(i));
    }
    out
}

/// "camera grant", "camera on", "camera off".
pub(super) fn kind_badge(d: &DetectionFinding) -> String {
    match (d.finding.kind, d.activity) {
        (FindingKind::CameraGrant, FindingActivity::Close) => badge("cam_off", "grant removed"),
        (FindingKind::CameraGrant, _) => badge("cam", "privacy grant"),
        (_, FindingActivity::Close) => badge("cam_off", "camera off"),
        _ => badge("cam", "camera on"),
    }
}

/// A camera finding's "what happened" cell: verdict, severity, what kind
/// of camera event, the agent's sentence, the rule, then the camera
/// object and any incident on their own lines.
pub(super) fn describe(d: &DetectionFinding) -> String {
    let f = &d.finding;
    let rule = rule_code(f.rule.as_deref());
    format!(
        "{} {} {} {}{rule}{}",
        badge(f.verdict.as_str(), f.verdict.as_str()),
        badge(f.severity.as_str(), f.severity.as_str()),
        kind_badge(d),
        esc(&d.message),
        details_html(d)
    )
}

/// The Camera page: every camera grant and session the fleet reported,
/// newest first.
pub(super) async fn camera_page(
    State(state): State<AppState>,
    _: Viewer,
    Query(paging): Query<Paging>,
) -> Result<Response, ApiError> {
    let page_of = state
        .store
        .events(&EventFilter {
            kinds: vec![Kind::DetectionFinding],
            finding_kinds: CAMERA_KINDS.to_vec(),
            cursor: paging.cursor(),
            limit: super::pages::PAGE,
            ..EventFilter::default()
        })
        .await?;
    let found: Vec<CameraEvent> = page_of
        .events
        .into_iter()
        .filter_map(|stored| {
            let finding = camera_finding(&stored.body)?;
            Some(CameraEvent { stored, finding })
        })
        .collect();
    let rows: Vec<Vec<String>> = found
        .iter()
        .map(|e| {
            let d = &e.finding;
            let c = e.camera();
            vec![
                esc(&human(e.stored.time)),
                host_link(e.stored.host_id, &e.stored.hostname),
                format!(
                    "{}{} {} {}",
                    super::html::untrusted_mark(e.stored.untrusted),
                    kind_badge(d),
                    badge(d.finding.severity.as_str(), d.finding.severity.as_str()),
                    esc(&d.message)
                ),
                c.map(|c| esc(&c.service)).unwrap_or_default(),
                match d.finding.kind {
                    FindingKind::CameraUse => esc(&session_owner(d)),
                    _ => c
                        .map(|c| format!("<code>{}</code>", esc(&c.client)))
                        .unwrap_or_default(),
                },
                c.map(|c| esc(&c.auth)).unwrap_or_default(),
                c.and_then(|c| c.incident.as_ref())
                    .map(incident_html)
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let mut body = String::from(
        "<h1>Camera</h1><p class=\"lead\">What the agents saw of the camera, newest first. \
         A <b>privacy grant</b> is an entry in macOS's privacy database (TCC): a program \
         allowed — or denied — the camera, the microphone, screen capture or all files. \
         <b>Camera on</b> and <b>camera off</b> are one use of the camera, every use \
         included, allowed ones too. An <b>incident</b> is a camera turned on shortly after \
         something connected to a helper lenscap flagged: the way a web page used Zoom's \
         hidden helper to start a call with the camera on.</p>",
    );
    let empty = "No camera grant or camera use reported yet.";
    body.push_str(&table(
        &[
            "Time",
            "Host",
            "What happened",
            "Service",
            "Who",
            "Auth",
            "Incident",
        ],
        &rows,
        empty,
    ));
    body.push_str(&more_link_to("/ui/camera", page_of.next));
    Ok(page("Camera", "/ui/camera", &body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lenscap_events::samples;

    fn finding(i: usize) -> Box<DetectionFinding> {
        let e = &samples::docs_camera_chain()[i];
        camera_finding(&serde_json::to_string(e).unwrap()).unwrap()
    }

    #[test]
    fn picks_camera_findings_and_incidents() {
        let chain = samples::docs_camera_chain();
        let camera: Vec<bool> = chain
            .iter()
            .map(|e| camera_finding(&serde_json::to_string(e).unwrap()).is_some())
            .collect();
        assert_eq!(camera, [false, false, true, true, true, false, false]);
        assert!(
            camera_finding(&serde_json::to_string(&samples::docs_chain()[1]).unwrap()).is_none()
        );
        assert!(camera_finding("not json").is_none());
        assert!(!is_incident(&finding(2)), "a grant");
        assert!(is_incident(&finding(3)), "the session's start");
        assert!(!is_incident(&finding(4)), "its end");
    }

    #[test]
    fn describes_grants_sessions_and_incidents_escaped() {
        let grant = describe(&finding(2));
        assert!(grant.contains("privacy grant"), "{grant}");
        assert!(grant.contains("service <b>camera</b>"), "{grant}");
        assert!(
            grant.contains("client <code>us.zoom.xos</code> (bundle id)"),
            "{grant}"
        );
        assert!(grant.contains("auth <b>allowed</b>"), "{grant}");
        assert!(grant.contains("reason user consent"), "{grant}");
        assert!(!grant.contains("Incident"));

        let start = describe(&finding(3));
        assert!(start.contains("camera on"), "{start}");
        assert!(
            start.contains(
                "the camera turned on 3 seconds after a connection to the flagged helper on \
                 <code>127.0.0.1:19421</code> (pid 1873, <code>catalog:zoom-opener</code>)"
            ),
            "{start}"
        );
        let stop = describe(&finding(4));
        assert!(
            stop.contains("camera off") && stop.contains("on for 95 seconds"),
            "{stop}"
        );

        let mut evil = finding(3);
        let c = evil.finding.camera.as_mut().unwrap();
        c.client = "<img src=x onerror=alert(1)>".into();
        c.incident.as_mut().unwrap().helper_rule = Some("<b>".into());
        evil.message = "<script>".into();
        let html = describe(&evil);
        assert!(!html.contains("<img") && !html.contains("<script") && !html.contains("<b><"));
        assert!(html.contains("&lt;img src=x"), "{html}");
        assert_eq!(session_owner(&evil), "zoom.us (pid 4242)");
        evil.finding.process = None;
        assert_eq!(
            session_owner(&evil),
            "<img src=x onerror=alert(1)> (pid 4242)"
        );
    }
}
