//! Human-readable renderings for the CLI's read-only commands (`status`,
//! `quarantine list`, `events`). JSON output is the serde form of the same
//! types; this is the table a person reads.

use std::fmt::Write as _;

use crate::act::manifest::QuarantineRecord;
use crate::daemon::status::Status;

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

/// `lenscap status`.
pub fn status(s: &Status, alive: bool, now: i64) -> String {
    let mut out = String::new();
    let state = match (s.running, alive) {
        (true, true) => format!("running (pid {})", s.pid),
        (false, _) => "stopped".to_string(),
        (true, false) => format!("not running (pid {} is gone without a clean stop)", s.pid),
    };
    let _ = writeln!(out, "lenscap {}: {state}", s.version);
    let mode = if s.breaker_open {
        format!("{:?} — circuit breaker OPEN: monitoring only", s.mode)
    } else {
        format!("{:?}", s.mode)
    };
    let _ = writeln!(out, "mode:            {}", mode.to_lowercase());
    let _ = writeln!(out, "started:         {}", ago(now, s.started_unix));
    let _ = writeln!(
        out,
        "last sweep:      {} ({} sweeps)",
        s.last_sweep_unix
            .map(|t| ago(now, t))
            .unwrap_or_else(|| "never".into()),
        s.sweeps
    );
    let _ = writeln!(
        out,
        "watching:        {} listeners, {} persistence items, {} privacy grants, {} camera sessions",
        s.listeners, s.persistence_items, s.privacy_grants, s.camera_sessions
    );
    let _ = writeln!(
        out,
        "findings now:    {} remediate, {} report",
        s.findings_remediate, s.findings_report
    );
    let _ = writeln!(
        out,
        "actions:         {} remediations, {} would-do (monitor), {} reinstall attempts",
        s.remediations, s.would_do, s.reinstall_attempts
    );
    let _ = writeln!(
        out,
        "quarantine:      {} records, {} guarded paths",
        s.quarantined, s.guarded_paths
    );
    if let Some(p) = s.outbox_pending {
        let _ = writeln!(out, "outbox:          {p} events waiting for the collector");
    }
    if !s.recent.is_empty() {
        let _ = writeln!(out, "\nrecent actions:");
        for a in s.recent.iter().rev() {
            let _ = writeln!(
                out,
                "  {:>10}  {:<10} {:<8} {}  {}",
                ago(now, a.time_unix),
                a.step,
                a.status,
                a.plan,
                a.outcome
            );
        }
    }
    out
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
