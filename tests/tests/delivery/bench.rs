//! The agent's catch-up benchmark (docs/benchmarks.md, "## Agent
//! delivery"): 100,000 events queued in the outbox while the collector was
//! away, then the agent's delivery thread — the one `lenscap run` starts,
//! with its batching, gzip, enrollment and outbox bookkeeping — drains
//! them into a local collector. Timed from the thread's start to
//! `pending == 0` in the outbox. Ignored by default:
//!
//! ```sh
//! cargo test --release -p lenscap-e2e --test delivery -- \
//!     --ignored bench::catch_up --nocapture
//! ```

use std::time::{Duration, Instant};

use lenscap::config::Secret;
use lenscap::report::hostid;
use lenscap::report::upload::client::CollectorUrl;
use lenscap::report::upload::worker::{Delivery, DeliverySettings};
use lenscap_e2e::temp_tree;

use super::outage::fill;
use super::{Collector, pending, stored_events};

#[test]
#[ignore = "benchmark: run with --ignored on a release build"]
fn catch_up() {
    let n: usize = std::env::var("DELIVERY_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let tree = temp_tree();
    let root = tree.path();
    let c = Collector::start(&root.join("collector"));
    let secret = c.token("enroll");
    let reader = c.token("reader");
    let state = root.join("state");
    let t = Instant::now();
    fill(&state, n);
    let bytes = std::fs::metadata(state.join("outbox.sqlite"))
        .map(|m| m.len())
        .unwrap_or(0);
    eprintln!(
        "NOTE queued {n} events ({} MiB outbox) in {:.1} s",
        bytes / (1 << 20),
        t.elapsed().as_secs_f64()
    );
    assert_eq!(pending(&state), n as u64);

    let settings = DeliverySettings {
        url: CollectorUrl::parse(&c.url()).unwrap(),
        secret: Secret::new(secret),
        upload_interval: Duration::from_secs(1),
        policy_interval: Duration::from_secs(3600),
        state_dir: state.clone(),
        max_outbox_bytes: 0,
    };
    let start = Instant::now();
    let delivery = Delivery::start(settings, hostid::detect(), None, Box::new(|_| {})).unwrap();
    while pending(&state) > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(1800),
            "not drained in 30 min"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = start.elapsed();
    let stats = delivery.stop(Duration::from_secs(5));
    let stored = stored_events(&c, &reader).len();
    assert_eq!(stored, n, "the collector holds every event");
    println!(
        "BENCH catch-up {n} events: {:.2} s, {:.0} events/s ({stats:?})",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
}
