//! Connections to flagged helpers too short for a sweep to sample: the
//! platform's report of closed TCP connections
//! ([`Platform::closed_connections`]; Linux sock_diag destroy groups),
//! subscribed while at least one listener is flagged and dropped when none
//! is.
//!
//! A closed connection counts like an established one seen at the time the
//! client last sent data on it: for camera correlation a page's one-shot
//! `fetch` to the helper is the same evidence as a connection held open.
//! Where the report does not exist (macOS) or is refused, that is said
//! once and the sweep's sampling stays the only source.
//!
//! Bounded: at most one record per (address, port, second) within the
//! correlation memory, and never more than [`MAX_RECORDS`]; a flood pushes
//! out the oldest first, so the connections just before a camera session
//! are the ones kept.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::model::ConnectionSeen;
use crate::platform::{ClosedConnectionFeed, Platform, PlatformError};

/// Most short-connection records kept (about 40 bytes each).
pub const MAX_RECORDS: usize = 4096;

enum Feed {
    /// Nothing flagged: not subscribed.
    Off,
    On(Box<dyn ClosedConnectionFeed>),
    /// Refused or not offered; tried again only after the flagged set
    /// empties and fills again.
    Unavailable,
}

/// The subscription and what it brought in.
pub struct ShortConnections {
    feed: Feed,
    /// "Not available" has been logged (once per daemon).
    said_unavailable: bool,
    /// A flood past the caps has been logged (once per subscription).
    said_dropped: bool,
    /// (address, port, second) → when the client last sent data (µs).
    records: BTreeMap<(IpAddr, u16, u64), u64>,
}

impl std::fmt::Debug for ShortConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let feed = match &self.feed {
            Feed::Off => "off",
            Feed::On(_) => "on",
            Feed::Unavailable => "unavailable",
        };
        f.debug_struct("ShortConnections")
            .field("feed", &feed)
            .field("records", &self.records.len())
            .finish_non_exhaustive()
    }
}

impl Default for ShortConnections {
    fn default() -> ShortConnections {
        ShortConnections {
            feed: Feed::Off,
            said_unavailable: false,
            said_dropped: false,
            records: BTreeMap::new(),
        }
    }
}

impl ShortConnections {
    /// Follow the flagged ports: subscribe when the first is flagged,
    /// retarget while some are, unsubscribe when none is.
    pub fn watch(&mut self, platform: &dyn Platform, ports: &BTreeSet<u16>) {
        if ports.is_empty() {
            if matches!(self.feed, Feed::On(_)) {
                tracing::info!("no listener is flagged: no longer watching for short connections");
            }
            self.feed = Feed::Off;
            return;
        }
        if let Feed::On(feed) = &self.feed
            && !feed.running()
        {
            self.unavailable("the report of closed connections stopped (see the log above)");
            return;
        }
        match &self.feed {
            Feed::On(feed) => feed.set_ports(ports),
            Feed::Unavailable => {}
            Feed::Off => match platform.closed_connections() {
                Ok(feed) => {
                    feed.set_ports(ports);
                    tracing::info!(
                        ports = ?ports,
                        "watching for short connections to flagged listeners (closed-connection reports)"
                    );
                    self.said_dropped = false;
                    self.feed = Feed::On(feed);
                }
                Err(PlatformError::Unsupported(what)) => {
                    self.unavailable(&format!("this platform has no {what}"))
                }
                Err(e) => self.unavailable(&e.to_string()),
            },
        }
    }

    fn unavailable(&mut self, why: &str) {
        self.feed = Feed::Unavailable;
        if !std::mem::replace(&mut self.said_unavailable, true) {
            tracing::warn!(
                "short connections to flagged listeners are not seen ({why}); only connections open during a sweep count for camera correlation"
            );
        }
    }

    /// Is a subscription live?
    pub fn subscribed(&self) -> bool {
        matches!(self.feed, Feed::On(_))
    }

    /// Take in what the platform reported, forget what is older than
    /// `memory_us` before `now_unix_us`, and list the rest.
    pub fn collect(&mut self, now_unix_us: u64, memory_us: u64) -> Vec<ConnectionSeen> {
        let mut dropped = 0;
        if let Feed::On(feed) = &self.feed {
            let batch = feed.drain();
            dropped = batch.dropped + batch.overruns;
            for c in batch.closed {
                let at = c.at_unix_us.min(now_unix_us);
                self.records
                    .insert((c.local.ip(), c.local.port(), at / 1_000_000), at);
            }
        }
        self.records
            .retain(|_, at| now_unix_us.saturating_sub(*at) <= memory_us);
        while self.records.len() > MAX_RECORDS {
            let oldest = self
                .records
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => {
                    self.records.remove(&k);
                    dropped += 1;
                }
                None => break,
            }
        }
        if dropped > 0 && !std::mem::replace(&mut self.said_dropped, true) {
            tracing::warn!(
                dropped,
                "more short connections to flagged listeners than lenscap keeps; the oldest were let go"
            );
        }
        self.records
            .iter()
            .map(|((address, port, _), at)| ConnectionSeen {
                address: *address,
                port: *port,
                first_seen_unix_us: *at,
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::model::{Established, HostInfo, Listener, PersistenceItem, ProcessIdentity};
    use crate::platform::{CameraSource, ClosedBatch, ClosedConnection};
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    /// A platform whose closed-connection report is a queue the test fills.
    #[derive(Debug, Default)]
    struct Fake {
        queue: Arc<Mutex<Vec<ClosedConnection>>>,
        ports: Arc<Mutex<BTreeSet<u16>>>,
        subscriptions: Arc<Mutex<u32>>,
        refuse: bool,
    }

    #[derive(Debug)]
    struct FakeFeed {
        queue: Arc<Mutex<Vec<ClosedConnection>>>,
        ports: Arc<Mutex<BTreeSet<u16>>>,
        subscriptions: Arc<Mutex<u32>>,
    }

    impl ClosedConnectionFeed for FakeFeed {
        fn set_ports(&self, ports: &BTreeSet<u16>) {
            *self.ports.lock().unwrap() = ports.clone();
        }
        fn drain(&self) -> ClosedBatch {
            ClosedBatch {
                closed: std::mem::take(&mut *self.queue.lock().unwrap()),
                ..ClosedBatch::default()
            }
        }
        fn running(&self) -> bool {
            true
        }
    }

    impl Drop for FakeFeed {
        fn drop(&mut self) {
            *self.subscriptions.lock().unwrap() -= 1;
        }
    }

    impl Platform for Fake {
        fn host_info(&self) -> HostInfo {
            HostInfo {
                hostname: "fake".into(),
                os: "test".into(),
                os_version: None,
                agent_version: "0".into(),
                signatures_supported: false,
            }
        }
        fn listeners(&self) -> Result<Vec<Listener>, PlatformError> {
            Ok(Vec::new())
        }
        fn process(&self, pid: u32) -> Result<ProcessIdentity, PlatformError> {
            Err(PlatformError::NoSuchProcess { pid })
        }
        fn check_signature(&self, _: &Path) -> crate::model::Signature {
            crate::model::Signature::not_supported()
        }
        fn login_items(&self) -> Result<Vec<PersistenceItem>, PlatformError> {
            Ok(Vec::new())
        }
        fn camera_source(&self) -> CameraSource {
            CameraSource::UnifiedLog
        }
        fn established_to(&self, _: &BTreeSet<u16>) -> Result<Vec<Established>, PlatformError> {
            Ok(Vec::new())
        }
        fn notify_user(&self, _: Option<u32>, _: &str, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn console_users(&self) -> Result<Vec<u32>, PlatformError> {
            Ok(Vec::new())
        }
        fn user_name_of(&self, _: u32) -> Option<String> {
            None
        }
        fn closed_connections(&self) -> Result<Box<dyn ClosedConnectionFeed>, PlatformError> {
            if self.refuse {
                return Err(PlatformError::Unsupported(
                    "a report of closed TCP connections",
                ));
            }
            *self.subscriptions.lock().unwrap() += 1;
            Ok(Box::new(FakeFeed {
                queue: Arc::clone(&self.queue),
                ports: Arc::clone(&self.ports),
                subscriptions: Arc::clone(&self.subscriptions),
            }))
        }
    }

    fn closed(port: u16, at_us: u64) -> ClosedConnection {
        ClosedConnection {
            local: ([127, 0, 0, 1], port).into(),
            remote: ([127, 0, 0, 1], 50000).into(),
            at_unix_us: at_us,
        }
    }

    const S: u64 = 1_000_000;

    #[test]
    fn subscribed_only_while_something_is_flagged() {
        let p = Fake::default();
        let mut s = ShortConnections::default();
        s.watch(&p, &BTreeSet::new());
        assert_eq!(*p.subscriptions.lock().unwrap(), 0);
        s.watch(&p, &BTreeSet::from([8080]));
        assert!(s.subscribed());
        assert_eq!(*p.subscriptions.lock().unwrap(), 1);
        assert_eq!(*p.ports.lock().unwrap(), BTreeSet::from([8080]));
        s.watch(&p, &BTreeSet::from([8080, 9090]));
        assert_eq!(
            *p.subscriptions.lock().unwrap(),
            1,
            "retargeted, not resubscribed"
        );
        assert_eq!(*p.ports.lock().unwrap(), BTreeSet::from([8080, 9090]));
        s.watch(&p, &BTreeSet::new());
        assert!(!s.subscribed());
        assert_eq!(*p.subscriptions.lock().unwrap(), 0, "unsubscribed");
    }

    #[test]
    fn a_closed_connection_is_seen_at_its_time_and_forgotten_later() {
        let p = Fake::default();
        let mut s = ShortConnections::default();
        s.watch(&p, &BTreeSet::from([8080]));
        p.queue.lock().unwrap().push(closed(8080, 100 * S));
        let seen = s.collect(101 * S, 10 * S);
        assert_eq!(
            seen,
            vec![ConnectionSeen {
                address: "127.0.0.1".parse().unwrap(),
                port: 8080,
                first_seen_unix_us: 100 * S
            }]
        );
        assert_eq!(s.collect(105 * S, 10 * S).len(), 1, "remembered");
        assert!(s.collect(111 * S, 10 * S).is_empty(), "forgotten");
    }

    #[test]
    fn a_report_from_the_future_is_clamped_to_now() {
        let p = Fake::default();
        let mut s = ShortConnections::default();
        s.watch(&p, &BTreeSet::from([8080]));
        p.queue.lock().unwrap().push(closed(8080, 500 * S));
        let seen = s.collect(100 * S, 10 * S);
        assert_eq!(seen[0].first_seen_unix_us, 100 * S);
    }

    #[test]
    fn a_flood_is_capped_and_keeps_the_newest() {
        let p = Fake::default();
        let mut s = ShortConnections::default();
        s.watch(&p, &BTreeSet::from([8080]));
        let n = MAX_RECORDS as u64 * 2;
        p.queue
            .lock()
            .unwrap()
            .extend((0..n).map(|i| closed(8080, i * S)));
        let seen = s.collect(n * S, u64::MAX);
        assert_eq!(seen.len(), MAX_RECORDS);
        assert!(seen.iter().any(|c| c.first_seen_unix_us == (n - 1) * S));
        assert!(
            seen.iter()
                .all(|c| c.first_seen_unix_us >= (n - MAX_RECORDS as u64) * S)
        );
    }

    #[test]
    fn unavailable_degrades_to_the_sweep_without_retrying_every_time() {
        let p = Fake {
            refuse: true,
            ..Fake::default()
        };
        let mut s = ShortConnections::default();
        s.watch(&p, &BTreeSet::from([8080]));
        assert!(!s.subscribed());
        assert!(s.said_unavailable);
        s.watch(&p, &BTreeSet::from([8080]));
        assert!(!s.subscribed());
        assert!(s.collect(S, S).is_empty());
    }
}
