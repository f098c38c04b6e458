//! Two collector processes' worth of servers on one PostgreSQL, serving
//! one fleet: every batch reaches both at the same moment, and every event
//! is stored exactly once with no false gaps. Needs
//! LENSCAP_TEST_POSTGRES_URL; skips (saying so) without it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::thread;

use common::{Collector, Db, all_events, chain, host, host_health};
use lenscap_collector::store::Role;

#[test]
fn two_collectors_on_one_postgres_store_each_event_once() {
    let Some(db) = Db::postgres("two_collectors") else {
        return;
    };
    // Both start (and migrate) at once.
    let (c1, c2) = thread::scope(|s| {
        let a = s.spawn(|| Collector::start(&db));
        let b = s.spawn(|| Collector::start(&db));
        (a.join().unwrap(), b.join().unwrap())
    });
    let hosts: Vec<_> = (0..4).map(|i| host(&format!("fleet-mac-{i}"))).collect();
    // Enrolled through one, valid on both: tokens live in the database.
    let tokens: Vec<String> = hosts.iter().map(|h| c1.enroll(h)).collect();
    let reader = c2.token(Role::Reader);

    thread::scope(|s| {
        for (h, token) in hosts.iter().zip(&tokens) {
            let (c1, c2) = (&c1, &c2);
            s.spawn(move || {
                let events = chain(h, 1000);
                for batch in events.chunks(100) {
                    // The same batch to both collectors at the same time,
                    // as an agent retrying through a load balancer would.
                    let (r1, r2) = thread::scope(|s2| {
                        let a = s2.spawn(|| c1.send(token, batch));
                        let b = s2.spawn(|| c2.send(token, batch));
                        (a.join().unwrap(), b.join().unwrap())
                    });
                    assert_eq!(r1.0, 200, "{}", r1.1);
                    assert_eq!(r2.0, 200, "{}", r2.1);
                    let v1: serde_json::Value = serde_json::from_str(&r1.1).unwrap();
                    let v2: serde_json::Value = serde_json::from_str(&r2.1).unwrap();
                    assert_eq!(
                        v1["accepted"].as_u64().unwrap() + v2["accepted"].as_u64().unwrap(),
                        100
                    );
                    assert_eq!(
                        v1["duplicate"].as_u64().unwrap() + v2["duplicate"].as_u64().unwrap(),
                        100
                    );
                }
            });
        }
    });

    let stored = all_events(&c1, &reader, "");
    assert_eq!(stored.len(), 4000);
    let mut uids: Vec<&str> = stored.iter().map(|e| e["uid"].as_str().unwrap()).collect();
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), 4000);
    for h in &hosts {
        assert_eq!(
            host_health(&c2, &reader, &h.hostname),
            (0, 0, 0),
            "{}",
            h.hostname
        );
    }
    c1.stop();
    c2.stop();
}
