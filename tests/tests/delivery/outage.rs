//! The collector away for a while, and the agent killed in the middle of
//! an upload: nothing lost, nothing stored twice, no gap.

use std::time::{Duration, Instant};

use lenscap::report::hostid;
use lenscap::report::outbox::Outbox;
use lenscap_e2e::{Daemon, temp_tree, wait_until};
use lenscap_events::Mode;

use super::{
    Collector, agent_config, assert_contiguous, assert_stored_exactly_once, host_row, pending,
    start_helper, wait_delivered,
};

#[test]
fn collector_away_then_back_everything_arrives_without_a_gap() {
    let tree = temp_tree();
    let root = tree.path();
    let mut c = Collector::start(&root.join("collector"));
    let secret = c.token("enroll");
    let reader = c.token("reader");
    let config = agent_config(root, &c.url(), &secret, &[]);
    let mut d = Daemon::start(&config, &[]);
    let state = d.state_dir().to_path_buf();
    let (before, _) = wait_delivered(&state, &c, &reader, Duration::from_secs(60));

    // The collector goes away. The agent keeps producing events: restarts
    // (stopped + started) and the findings of two new helpers.
    c.stop();
    d.stop();
    let mut d = Daemon::start(&config, &[]);
    let (_h1, _) = start_helper(
        &root.join("Users/alice/.one/onehelper"),
        &root.join("one.port"),
    );
    d.wait_sweeps(2);
    d.stop();
    let mut d = Daemon::start(&config, &[]);
    let (_h2, _) = start_helper(
        &root.join("Users/alice/.two/twohelper"),
        &root.join("two.port"),
    );
    d.wait_sweeps(3);
    let waiting = pending(&state);
    assert!(waiting >= 5, "only {waiting} events waiting");
    let log = d.log();
    assert!(
        log.contains("upload failed") || log.contains("cannot reach"),
        "no failed upload in the log:\n{log}"
    );

    // Back on the same port and database.
    c.restart();
    let (after, stored) = wait_delivered(&state, &c, &reader, Duration::from_secs(90));
    assert!(after.len() >= before.len() + waiting as usize);
    assert_contiguous(&after);
    assert_stored_exactly_once(&after, &stored);
    let host = host_row(&c, &reader);
    assert_eq!(host["gaps"], 0, "{host:#}");
    assert_eq!(host["missing_events"], 0, "{host:#}");
    assert_eq!(host["chain_breaks"], 0, "{host:#}");
    d.stop();
}

#[test]
fn agent_killed_mid_upload_every_event_is_stored_exactly_once() {
    const BACKLOG: usize = 20_000;
    let tree = temp_tree();
    let root = tree.path();
    let c = Collector::start(&root.join("collector"));
    let secret = c.token("enroll");
    let reader = c.token("reader");
    let config = agent_config(root, &c.url(), &secret, &[]);
    let state = root.join("state");
    fill(&state, BACKLOG);

    // Kill -9 while the backlog drains, twice, at different depths.
    for cut in [2_000, 9_000] {
        let mut d = Daemon::spawn(lenscap_e2e::lenscap_bin(), &config, &[]);
        let t0 = Instant::now();
        wait_until(Duration::from_secs(120), "the upload under way", || {
            (pending(&state) <= (BACKLOG - cut) as u64).then_some(())
        });
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(d.pid() as i32, libc::SIGKILL) };
        let status = d.wait_exit(Duration::from_secs(10));
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        let left = pending(&state);
        assert!(left > 0, "drained before the kill ({:?})", t0.elapsed());
    }
    let mut d = Daemon::start(&config, &[]);
    let (outbox, stored) = wait_delivered(&state, &c, &reader, Duration::from_secs(300));
    assert!(outbox.len() > BACKLOG);
    assert_contiguous(&outbox);
    assert_stored_exactly_once(&outbox, &stored);
    let host = host_row(&c, &reader);
    assert_eq!(host["gaps"], 0, "{host:#}");
    assert_eq!(host["chain_breaks"], 0, "{host:#}");
    d.stop();
}

/// `n` events queued as the daemon would have written them.
pub fn fill(state: &std::path::Path, n: usize) {
    let mut outbox = Outbox::open(state, hostid::detect(), env!("CARGO_PKG_VERSION"), 0).unwrap();
    for chunk in 0..n.div_ceil(5_000) {
        let items: Vec<_> = (chunk * 5_000..((chunk + 1) * 5_000).min(n))
            .map(|i| {
                (
                    Mode::Monitor,
                    lenscap::report::convert::config_changed(&[format!("Key{i}")], "backlog"),
                )
            })
            .collect();
        outbox.append_all(&items).unwrap();
    }
}
