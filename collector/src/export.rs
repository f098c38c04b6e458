//! Exports: every matching event, streamed page by page so a large export
//! never sits in memory. NDJSON is the stored events, one per line; CSV is
//! a summary row per event for spreadsheets.

use axum::body::Bytes;
use futures_util::Stream;
use serde_json::Value;

use crate::store::{EventFilter, IncidentFilter, IncidentRecord, MAX_PAGE, Store, StoredEvent};
use crate::timefmt::rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Ndjson => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }

    pub fn disposition(self) -> &'static str {
        match self {
            Format::Ndjson => "attachment; filename=\"lenscap-events.ndjson\"",
            Format::Csv => "attachment; filename=\"lenscap-events.csv\"",
        }
    }
}

/// `finding_kind` and `integrity` come last so scripts that read the
/// earlier columns by position keep working.
pub const CSV_HEADER: &str =
    "time,host,seq,kind,verdict,severity,rule,uid,message,finding_kind,integrity\n";

/// What `integrity` says of an event or incident: `chain_break` when it
/// is (or holds) an event involved in a chain break, else `ok`.
pub fn integrity(untrusted: bool) -> &'static str {
    if untrusted { "chain_break" } else { "ok" }
}

/// An event as the API and the NDJSON export hand it out: the stored
/// canonical JSON, with `"integrity":"chain_break"` added in front when
/// the event is involved in a chain break. The mark is the collector's,
/// not the agent's: it is not part of the hashed event, and a reader
/// checking hashes removes it first.
pub fn event_json(e: &StoredEvent) -> std::borrow::Cow<'_, str> {
    match (e.untrusted, e.body.strip_prefix('{')) {
        (true, Some(rest)) => {
            let sep = if rest.starts_with('}') { "" } else { "," };
            format!("{{\"integrity\":\"chain_break\"{sep}{rest}").into()
        }
        _ => e.body.as_str().into(),
    }
}

struct Cursorwise {
    store: Store,
    filter: EventFilter,
    format: Format,
    started: bool,
    done: bool,
}

/// The export as a stream of chunks. A database error ends the stream
/// with an error, which aborts the response: a client never mistakes a
/// truncated export for a complete one.
pub fn stream(
    store: Store,
    mut filter: EventFilter,
    format: Format,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    filter.limit = MAX_PAGE;
    filter.cursor = None;
    let state = Cursorwise {
        store,
        filter,
        format,
        started: false,
        done: false,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        let page = match st.store.events(&st.filter).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "export stopped");
                st.done = true;
                return Some((
                    Err(std::io::Error::other("export stopped: database error")),
                    st,
                ));
            }
        };
        let mut chunk = String::new();
        if !st.started && st.format == Format::Csv {
            chunk.push_str(CSV_HEADER);
        }
        st.started = true;
        for e in &page.events {
            match st.format {
                Format::Ndjson => {
                    chunk.push_str(&event_json(e));
                    chunk.push('\n');
                }
                Format::Csv => chunk.push_str(&csv_row(e)),
            }
        }
        match page.next {
            Some(c) => st.filter.cursor = Some(c),
            None => st.done = true,
        }
        Some((Ok(Bytes::from(chunk)), st))
    })
}

/// An incident as the API and the exports give it.
#[derive(Debug, serde::Serialize)]
pub struct IncidentView {
    pub id: i64,
    pub host_id: i64,
    pub hostname: String,
    pub title: String,
    /// `open`, `contained`, `failed`, `restored`, `would_do` or `closed`.
    pub state: String,
    /// `chain_break` when one of its events is involved in a chain break.
    pub integrity: &'static str,
    pub severity: String,
    pub rule: Option<String>,
    /// The strongest verdict of its findings.
    pub verdict: Option<String>,
    /// The kinds of its findings.
    pub kinds: Vec<String>,
    pub first_time: String,
    pub last_time: String,
    pub findings: i64,
    pub open_findings: i64,
    pub steps_done: i64,
    pub steps_failed: i64,
    pub steps_would_do: i64,
    pub restores: i64,
    pub events: i64,
}

impl From<&IncidentRecord> for IncidentView {
    fn from(i: &IncidentRecord) -> IncidentView {
        IncidentView {
            id: i.id,
            host_id: i.host_id,
            hostname: i.hostname.clone(),
            title: i.title.clone(),
            state: i.state.clone(),
            integrity: integrity(i.untrusted),
            severity: i.severity.clone(),
            rule: i.rule.clone(),
            verdict: i.verdict.clone(),
            kinds: i
                .kinds
                .split(',')
                .filter(|k| !k.is_empty())
                .map(str::to_string)
                .collect(),
            first_time: rfc3339(i.first_time),
            last_time: rfc3339(i.last_time),
            findings: i.findings,
            open_findings: i.open_findings,
            steps_done: i.steps_done,
            steps_failed: i.steps_failed,
            steps_would_do: i.steps_would,
            restores: i.restores,
            events: i.event_count,
        }
    }
}

/// `integrity` last, as for events.
pub const INCIDENT_CSV_HEADER: &str = "first_time,last_time,host,id,state,severity,verdict,kinds,rule,title,findings,steps_done,steps_failed,steps_would_do,restores,events,integrity\n";

/// One CSV row for an incident.
pub fn incident_csv_row(i: &IncidentRecord) -> String {
    let fields = [
        rfc3339(i.first_time),
        rfc3339(i.last_time),
        i.hostname.clone(),
        i.id.to_string(),
        i.state.clone(),
        i.severity.clone(),
        i.verdict.clone().unwrap_or_default(),
        // As stored: sorted, comma-separated, so one quoted cell.
        i.kinds.clone(),
        i.rule.clone().unwrap_or_default(),
        i.title.clone(),
        i.findings.to_string(),
        i.steps_done.to_string(),
        i.steps_failed.to_string(),
        i.steps_would.to_string(),
        i.restores.to_string(),
        i.event_count.to_string(),
        integrity(i.untrusted).to_string(),
    ];
    csv_line(&fields)
}

/// Every matching incident, page by page, like [`stream`].
pub fn incident_stream(
    store: Store,
    mut filter: IncidentFilter,
    format: Format,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    filter.limit = MAX_PAGE;
    filter.cursor = None;
    futures_util::stream::unfold(
        (store, filter, false, false),
        move |(store, mut filter, started, done)| async move {
            if done {
                return None;
            }
            let page = match store.incidents(&filter).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "incident export stopped");
                    return Some((
                        Err(std::io::Error::other("export stopped: database error")),
                        (store, filter, true, true),
                    ));
                }
            };
            let mut chunk = String::new();
            if !started && format == Format::Csv {
                chunk.push_str(INCIDENT_CSV_HEADER);
            }
            for i in &page.incidents {
                match format {
                    Format::Ndjson => {
                        if let Ok(line) = serde_json::to_string(&IncidentView::from(i)) {
                            chunk.push_str(&line);
                            chunk.push('\n');
                        }
                    }
                    Format::Csv => chunk.push_str(&incident_csv_row(i)),
                }
            }
            let done = page.next.is_none();
            filter.cursor = page.next;
            Some((Ok(Bytes::from(chunk)), (store, filter, true, done)))
        },
    )
}

/// One CSV row for an event.
pub fn csv_row(e: &StoredEvent) -> String {
    let body: Value = serde_json::from_str(&e.body).unwrap_or(Value::Null);
    let payload = &body["payload"];
    let severity = payload["finding"]["severity"].as_str().unwrap_or("");
    let message = payload["message"].as_str().unwrap_or("");
    let uid = body["uid"].as_str().unwrap_or("");
    let fields = [
        rfc3339(e.time),
        e.hostname.clone(),
        e.seq.to_string(),
        e.kind.clone(),
        e.verdict.clone().unwrap_or_default(),
        severity.to_string(),
        e.rule.clone().unwrap_or_default(),
        uid.to_string(),
        message.to_string(),
        e.finding_kind.clone().unwrap_or_default(),
        integrity(e.untrusted).to_string(),
    ];
    csv_line(&fields)
}

/// One CSV line: each field quoted as needed, joined, newline-ended.
fn csv_line(fields: &[String]) -> String {
    let mut row = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    row.push('\n');
    row
}

/// RFC 4180 quoting, plus a guard against formula injection: hostnames,
/// process names and messages come from endpoints, and a spreadsheet would
/// run `=HYPERLINK(…)` in a cell. A leading `'` keeps such text text.
pub fn csv_field(s: &str) -> String {
    let guarded = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("+1"), "'+1");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
    }

    #[test]
    fn csv_row_summarises_an_event() {
        let ev = &lenscap_events::samples::docs_chain()[1];
        let stored = StoredEvent {
            id: 1,
            host_id: 1,
            hostname: "jdoe-mbp".into(),
            seq: 2,
            time: ev.time,
            received_at: ev.time,
            kind: "detection_finding".into(),
            finding_kind: Some("listener".into()),
            verdict: Some("remediate".into()),
            rule: Some("catalog:zoom-opener".into()),
            body: serde_json::to_string(ev).unwrap(),
            untrusted: false,
        };
        let row = csv_row(&stored);
        assert_eq!(row.matches(',').count(), CSV_HEADER.matches(',').count());
        assert!(row.starts_with("2025-11-28T06:40:05.25Z,jdoe-mbp,2,detection_finding,remediate,critical,catalog:zoom-opener,5d1e8f3a-"));
        assert!(row.ends_with("ZoomOpener listens on 127.0.0.1:19421,listener,ok\n"));
        assert_eq!(event_json(&stored), stored.body);
    }

    #[test]
    fn an_untrusted_event_is_marked_outside_its_hashed_fields() {
        let ev = &lenscap_events::samples::docs_chain()[2];
        let stored = StoredEvent {
            id: 1,
            host_id: 1,
            hostname: "h".into(),
            seq: 3,
            time: ev.time,
            received_at: ev.time,
            kind: "process_remediation".into(),
            finding_kind: None,
            verdict: None,
            rule: None,
            body: serde_json::to_string(ev).unwrap(),
            untrusted: true,
        };
        let marked: serde_json::Value = serde_json::from_str(&event_json(&stored)).unwrap();
        assert_eq!(marked["integrity"], "chain_break");
        // Without the mark it is the event as hashed.
        let mut unmarked = marked.clone();
        unmarked.as_object_mut().unwrap().remove("integrity");
        let back: lenscap_events::Event = serde_json::from_value(unmarked).unwrap();
        assert_eq!(back.hash().unwrap(), ev.hash().unwrap());
        assert!(csv_row(&stored).ends_with(",chain_break\n"));
    }

    #[test]
    fn an_incident_row_carries_its_verdict_and_kinds_in_their_columns() {
        let i = IncidentRecord {
            id: 7,
            host_id: 1,
            hostname: "mac-01".into(),
            title: "AcmeOpener, a hidden web server on 127.0.0.1:19500, contained".into(),
            state: "contained".into(),
            severity: "critical".into(),
            name: "AcmeOpener".into(),
            what: None,
            rule: Some("catalog:zoom-opener".into()),
            verdict: Some("remediate".into()),
            kinds: "listener,persistence".into(),
            first_time: 1_700_000_000_000_000,
            last_time: 1_700_000_060_000_000,
            findings: 2,
            open_findings: 0,
            steps_done: 5,
            steps_failed: 0,
            steps_would: 0,
            restores: 0,
            quarantined: 1,
            event_count: 7,
            untrusted: true,
        };
        let row = incident_csv_row(&i);
        // A standard reader splits it into the header's columns, by name.
        let header: Vec<&str> = INCIDENT_CSV_HEADER.trim_end().split(',').collect();
        let cells = split_csv_line(row.trim_end());
        assert_eq!(cells.len(), header.len(), "{row}");
        let cell = |name: &str| cells[header.iter().position(|h| *h == name).unwrap()].clone();
        assert_eq!(cell("verdict"), "remediate");
        assert_eq!(cell("kinds"), "listener,persistence");
        assert_eq!(cell("rule"), "catalog:zoom-opener");
        assert_eq!(cell("state"), "contained");
        assert_eq!(cell("integrity"), "chain_break");
        // Steps only: no verdict, an empty cell.
        let steps_only = IncidentRecord {
            verdict: None,
            kinds: String::new(),
            ..i
        };
        let cells = split_csv_line(incident_csv_row(&steps_only).trim_end());
        assert_eq!(
            cells[header.iter().position(|h| *h == "verdict").unwrap()],
            ""
        );
    }

    /// RFC 4180 split of one line (quoted cells, doubled quotes), for the
    /// test above: what a spreadsheet or `csv` reader does.
    fn split_csv_line(line: &str) -> Vec<String> {
        let mut cells = vec![String::new()];
        let mut quoted = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    chars.next();
                    cells.last_mut().unwrap().push('"');
                }
                ('"', _) => quoted = !quoted,
                (',', false) => cells.push(String::new()),
                (c, _) => cells.last_mut().unwrap().push(c),
            }
        }
        cells
    }
}
