//! Counters for `/metrics`, in the Prometheus text format.
//!
//! A handful of counters written by hand: the format is a few lines of
//! text, and a metrics crate would add a registry, macros and a second
//! HTTP exporter to a binary that already serves HTTP.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::IngestOutcome;

#[derive(Debug, Default)]
pub struct Metrics {
    /// Responses by status code.
    responses: Mutex<BTreeMap<u16, u64>>,
    batches: AtomicU64,
    events_accepted: AtomicU64,
    events_duplicate: AtomicU64,
    gaps_recorded: AtomicU64,
    chain_breaks: AtomicU64,
    /// Total time spent storing batches, in microseconds.
    ingest_micros: AtomicU64,
    /// Connections open now.
    connections_open: AtomicU64,
    /// Connections closed at once because the server, or the client's
    /// address, held its limit.
    refused_total_limit: AtomicU64,
    refused_per_address: AtomicU64,
    /// Alerts delivered, failed attempts, and alerts given up on.
    alerts_sent: AtomicU64,
    alerts_failed: AtomicU64,
    alerts_dead: AtomicU64,
}

impl Metrics {
    pub fn response(&self, status: u16) {
        // A poisoned lock only means another thread panicked mid-increment;
        // the map is still a valid map.
        let mut map = self.responses.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(status).or_insert(0) += 1;
    }

    pub fn batch(&self, outcome: &IngestOutcome, micros: u64) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.events_accepted
            .fetch_add(outcome.accepted, Ordering::Relaxed);
        self.events_duplicate
            .fetch_add(outcome.duplicate, Ordering::Relaxed);
        self.gaps_recorded
            .fetch_add(outcome.gaps_opened, Ordering::Relaxed);
        self.chain_breaks
            .fetch_add(outcome.breaks, Ordering::Relaxed);
        self.ingest_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn connections_open(&self, n: usize) {
        self.connections_open.store(n as u64, Ordering::Relaxed);
    }

    pub fn connection_refused(&self, why: crate::conn_limit::Refusal) {
        let counter = match why {
            crate::conn_limit::Refusal::Total => &self.refused_total_limit,
            crate::conn_limit::Refusal::PerAddress => &self.refused_per_address,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn alert_sent(&self) {
        self.alerts_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// A failed delivery attempt; `dead` when it was the last.
    pub fn alert_failed(&self, dead: bool) {
        self.alerts_failed.fetch_add(1, Ordering::Relaxed);
        if dead {
            self.alerts_dead.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The alert lines: this process's delivery counters, and the queue
    /// as the database has it (shared by every collector on it), when it
    /// answered.
    pub fn render_alerts(&self, queue: Option<crate::store::AlertCounts>) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = format!(
            "# HELP lenscap_collector_alerts_sent_total Alerts delivered by this collector.\n# TYPE lenscap_collector_alerts_sent_total counter\nlenscap_collector_alerts_sent_total {}\n\
             # HELP lenscap_collector_alert_attempts_failed_total Alert delivery attempts that failed.\n# TYPE lenscap_collector_alert_attempts_failed_total counter\nlenscap_collector_alert_attempts_failed_total {}\n\
             # HELP lenscap_collector_alerts_dead_total Alerts given up on (dead letters) by this collector.\n# TYPE lenscap_collector_alerts_dead_total counter\nlenscap_collector_alerts_dead_total {}\n",
            get(&self.alerts_sent),
            get(&self.alerts_failed),
            get(&self.alerts_dead)
        );
        if let Some(q) = queue {
            let _ = writeln!(
                out,
                "# HELP lenscap_collector_alert_queue Alerts in the database by status.\n# TYPE lenscap_collector_alert_queue gauge\nlenscap_collector_alert_queue{{status=\"pending\"}} {}\nlenscap_collector_alert_queue{{status=\"dead\"}} {}\nlenscap_collector_alert_queue{{status=\"sent\"}} {}",
                q.pending, q.dead, q.sent
            );
        }
        out
    }

    /// The exposition text. `totals` is (hosts, stored events) from the
    /// store, when it answered.
    pub fn render(&self, backend: &str, totals: Option<(i64, i64)>) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP lenscap_collector_http_responses_total HTTP responses by status code.\n# TYPE lenscap_collector_http_responses_total counter"
        );
        {
            let map = self.responses.lock().unwrap_or_else(|e| e.into_inner());
            for (code, n) in map.iter() {
                let _ = writeln!(
                    out,
                    "lenscap_collector_http_responses_total{{code=\"{code}\"}} {n}"
                );
            }
        }
        counter(
            &mut out,
            "lenscap_collector_batches_total",
            "Event batches stored.",
            get(&self.batches),
        );
        counter(
            &mut out,
            "lenscap_collector_events_accepted_total",
            "Events stored for the first time.",
            get(&self.events_accepted),
        );
        counter(
            &mut out,
            "lenscap_collector_events_duplicate_total",
            "Events received again (uid already stored) and not stored twice.",
            get(&self.events_duplicate),
        );
        counter(
            &mut out,
            "lenscap_collector_gap_rows_written_total",
            "Sequence gap records written (new gaps and the pieces of partly filled ones).",
            get(&self.gaps_recorded),
        );
        counter(
            &mut out,
            "lenscap_collector_chain_breaks_total",
            "Hash-chain breaks and reused sequence numbers recorded.",
            get(&self.chain_breaks),
        );
        let _ = writeln!(
            out,
            "# HELP lenscap_collector_ingest_seconds_total Time spent storing batches.\n# TYPE lenscap_collector_ingest_seconds_total counter\nlenscap_collector_ingest_seconds_total {:.6}",
            get(&self.ingest_micros) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# HELP lenscap_collector_connections_open Client connections open now.\n# TYPE lenscap_collector_connections_open gauge\nlenscap_collector_connections_open {}",
            get(&self.connections_open)
        );
        let _ = writeln!(
            out,
            "# HELP lenscap_collector_connections_refused_total Connections closed on arrival because a connection limit was reached.\n# TYPE lenscap_collector_connections_refused_total counter\nlenscap_collector_connections_refused_total{{limit=\"total\"}} {}\nlenscap_collector_connections_refused_total{{limit=\"per_address\"}} {}",
            get(&self.refused_total_limit),
            get(&self.refused_per_address)
        );
        let _ = writeln!(
            out,
            "# HELP lenscap_collector_store_up Whether the database answered (1) or not (0).\n# TYPE lenscap_collector_store_up gauge\nlenscap_collector_store_up{{backend=\"{backend}\"}} {}",
            u8::from(totals.is_some())
        );
        if let Some((hosts, events)) = totals {
            let _ = writeln!(
                out,
                "# HELP lenscap_collector_hosts Enrolled hosts.\n# TYPE lenscap_collector_hosts gauge\nlenscap_collector_hosts {hosts}"
            );
            let _ = writeln!(
                out,
                "# HELP lenscap_collector_events_stored Events stored.\n# TYPE lenscap_collector_events_stored gauge\nlenscap_collector_events_stored {events}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.response(200);
        m.response(200);
        m.response(401);
        m.batch(
            &IngestOutcome {
                accepted: 90,
                duplicate: 10,
                gaps_opened: 1,
                breaks: 0,
            },
            1500,
        );
        let text = m.render("sqlite", Some((3, 90)));
        assert!(text.contains("lenscap_collector_http_responses_total{code=\"200\"} 2"));
        assert!(text.contains("lenscap_collector_http_responses_total{code=\"401\"} 1"));
        assert!(text.contains("lenscap_collector_events_accepted_total 90"));
        assert!(text.contains("lenscap_collector_events_duplicate_total 10"));
        assert!(text.contains("lenscap_collector_ingest_seconds_total 0.001500"));
        assert!(text.contains("lenscap_collector_store_up{backend=\"sqlite\"} 1"));
        assert!(text.contains("lenscap_collector_events_stored 90"));
        m.connections_open(4);
        m.connection_refused(crate::conn_limit::Refusal::PerAddress);
        let text = m.render("sqlite", None);
        assert!(
            text.contains("lenscap_collector_connections_open 4"),
            "{text}"
        );
        assert!(
            text.contains("lenscap_collector_connections_refused_total{limit=\"per_address\"} 1"),
            "{text}"
        );
        // Every sample line is `name{labels} value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
