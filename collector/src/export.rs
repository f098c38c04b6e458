//! Exports: every matching event, streamed page by page so a large export
//! never sits in memory. NDJSON is the stored events, one per line; CSV is
//! a summary row per event for spreadsheets.

use axum::body::Bytes;
use futures_util::Stream;
use serde_json::Value;

use crate::store::{EventFilter, MAX_PAGE, Store, StoredEvent};
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

/// `finding_kind` comes last so scripts that read the earlier columns by
/// position keep working.
pub const CSV_HEADER: &str = "time,host,seq,kind,verdict,severity,rule,uid,message,finding_kind\n";

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
                    chunk.push_str(&e.body);
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
    ];
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
        };
        let row = csv_row(&stored);
        assert_eq!(row.matches(',').count(), CSV_HEADER.matches(',').count());
        assert!(row.starts_with("2025-11-28T06:40:05.25Z,jdoe-mbp,2,detection_finding,remediate,critical,catalog:zoom-opener,5d1e8f3a-"));
        assert!(row.ends_with("ZoomOpener listens on 127.0.0.1:19421,listener\n"));
    }
}
