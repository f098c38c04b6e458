//! Human-readable renderings for the CLI's read-only commands
//! (`quarantine list`, `events`; `status` is `daemon::status::render`). JSON output is the serde form of the same
//! types; this is the table a person reads.

use std::fmt::Write as _;

use crate::act::manifest::QuarantineRecord;

/// How long ago `then` (unix seconds) was, in words.
pub fn ago(now: i64, then: i64) -> String {
    let s = now.saturating_sub(then).max(0);
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h {}m ago", s / 3600, (s % 3600) / 60),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// `lenscap quarantine list`.
pub fn quarantine_list(records: &[QuarantineRecord]) -> String {
    if records.is_empty() {
        return "the quarantine is empty\n".to_string();
    }
    let mut out = String::new();
    for r in records {
        let state = format!("{:?}", r.state).to_lowercase();
        let _ = writeln!(
            out,
            "{}  {}  {}{}",
            r.id,
            state,
            r.finding,
            r.rule
                .as_deref()
                .map(|x| format!(" [{x}]"))
                .unwrap_or_default()
        );
        for item in &r.items {
            let _ = writeln!(
                out,
                "    {}  ({:?}, uid {}, mode {:o})",
                item.original.0.display(),
                item.meta.kind,
                item.meta.uid,
                item.meta.mode
            );
        }
    }
    out
}

/// One line of `lenscap events` per event: time, sequence number, kind,
/// mode and what happened.
pub fn events(events: &[lenscap_events::Event]) -> String {
    use lenscap_events::Body;
    if events.is_empty() {
        return "no events recorded\n".to_string();
    }
    let mut out = String::new();
    for e in events {
        let message = match &e.body {
            Body::DetectionFinding(d) => d.message.as_str(),
            Body::ProcessRemediation(r) => r.message.as_str(),
            Body::FileRemediation(r) => r.message.as_str(),
            Body::AgentHealth(h) => h.message.as_str(),
        };
        let _ = writeln!(
            out,
            "{}  #{:<6} {:<20} {:<9} {}",
            crate::clock::rfc3339(e.time.div_euclid(1000)),
            e.seq,
            e.kind().as_str(),
            e.mode.as_str(),
            message
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ago_reads_naturally() {
        assert_eq!(ago(100, 95), "5s ago");
        assert_eq!(ago(1000, 100), "15m ago");
        assert_eq!(ago(10_000, 0), "2h 46m ago");
        assert_eq!(ago(200_000, 0), "2d ago");
        assert_eq!(ago(0, 10), "0s ago", "clock skew never goes negative");
    }
}
