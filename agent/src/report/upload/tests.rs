//! The uploader against a real outbox in a temporary directory and a
//! scripted collector: what it sends, what it marks sent, and what it does
//! with every kind of answer. The real collector end to end is
//! tests/tests/delivery.rs.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;
use lenscap_events::{Event, Host, Mode};

use super::*;
use crate::report::convert;

fn host() -> Host {
    Host {
        hostname: "test-host".into(),
        hardware_uuid: None,
        serial: None,
        machine_id: Some("0123456789abcdef0123456789abcdef".into()),
    }
}

fn outbox_with(dir: &Path, n: u64) -> Outbox {
    let mut outbox =
        Outbox::open(dir, host(), "0.1.0", 0).unwrap_or_else(|e| panic!("open outbox: {e}"));
    let items: Vec<(Mode, Body)> = (0..n)
        .map(|i| {
            (
                Mode::Monitor,
                convert::config_changed(&[format!("Key{i}")], "preferences"),
            )
        })
        .collect();
    outbox.append_all(&items).unwrap_or_else(|e| panic!("{e}"));
    outbox
}

fn decode(body: &[u8]) -> Vec<Event> {
    let mut text = String::new();
    GzDecoder::new(body)
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("not gzip: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not an event array: {e}"))
}

fn ok(n: usize) -> Result<IngestResponse, Failure> {
    Ok(IngestResponse {
        accepted: n as u64,
        duplicate: 0,
    })
}

/// Step until the uploader stops asking to go on; panics on a runaway.
fn drain(up: &mut Uploader, outbox: &mut Outbox, send: &mut Send<'_>) -> Next {
    for _ in 0..10_000 {
        match up.step(outbox, send).unwrap_or_else(|e| panic!("{e}")) {
            Next::Now => continue,
            other => return other,
        }
    }
    panic!("the uploader never stopped");
}

fn pending(outbox: &Outbox) -> u64 {
    outbox.stats().unwrap_or_else(|e| panic!("{e}")).pending
}

#[test]
fn sends_everything_oldest_first_in_gzip_batches_and_marks_it_sent() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut outbox = outbox_with(dir.path(), 250);
    let mut sizes = Vec::new();
    let mut seqs = Vec::new();
    let mut up = Uploader::new();
    let next = drain(&mut up, &mut outbox, &mut |body, n| {
        let events = decode(body);
        assert_eq!(events.len(), n);
        sizes.push(n);
        seqs.extend(events.iter().map(|e| e.seq));
        ok(n)
    });
    assert_eq!(next, Next::Idle);
    assert_eq!(sizes, [100, 100, 50]);
    assert_eq!(seqs, (1..=250).collect::<Vec<u64>>());
    assert_eq!(pending(&outbox), 0);
    assert_eq!(up.stats().accepted, 250);
    assert_eq!(up.stats().batches, 3);
    assert!(up.take_notices().is_empty());
}

#[test]
fn the_encoded_batch_is_the_stored_events_unchanged() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let outbox = outbox_with(dir.path(), 3);
    let stored = outbox.pending(10).unwrap_or_else(|e| panic!("{e}"));
    let sent = decode(&encode(&stored, &outbox).unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(sent, stored);
    // And each hashes as it did when the outbox chained it.
    for pair in sent.windows(2) {
        assert_eq!(
            pair[1].prev_hash,
            pair[0].hash().unwrap_or_else(|e| panic!("{e}"))
        );
    }
}

#[test]
fn a_lost_answer_means_the_batch_is_sent_again_not_lost() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut outbox = outbox_with(dir.path(), 30);
    let mut stored_at_collector: Vec<u64> = Vec::new();
    let mut calls = 0;
    let mut up = Uploader::new();
    let mut send = |body: &[u8], n: usize| {
        calls += 1;
        let events = decode(body);
        let mut dup = 0;
        for e in &events {
            if stored_at_collector.contains(&e.seq) {
                dup += 1;
            } else {
                stored_at_collector.push(e.seq);
            }
        }
        if calls == 1 {
            // Stored, but the answer never came back.
            return Err(Failure::Network("connection reset".into()));
        }
        Ok(IngestResponse {
            accepted: (n - dup) as u64,
            duplicate: dup as u64,
        })
    };
    let next = up
        .step(&mut outbox, &mut send)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(next, Next::Wait(d) if d <= BACKOFF_BASE),
        "{next:?}"
    );
    assert_eq!(pending(&outbox), 30, "nothing marked without a 200");
    assert_eq!(drain(&mut up, &mut outbox, &mut send), Next::Idle);
    assert_eq!(pending(&outbox), 0);
    assert_eq!(stored_at_collector, (1..=30).collect::<Vec<u64>>());
    assert_eq!(up.stats().duplicate, 30);
}

#[test]
fn too_large_halves_the_batch_and_it_grows_back() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut outbox = outbox_with(dir.path(), 400);
    let mut sizes = Vec::new();
    let mut up = Uploader::new();
    let mut refused = 0;
    let next = drain(&mut up, &mut outbox, &mut |_, n| {
        sizes.push(n);
        if n > 25 && refused < 2 {
            refused += 1;
            return Err(Failure::TooLarge("too_large: body over 8 MiB".into()));
        }
        ok(n)
    });
    assert_eq!(next, Next::Idle);
    assert_eq!(&sizes[..5], &[100, 50, 25, 50, 100]);
    assert_eq!(pending(&outbox), 0);
}

#[test]
fn a_poison_event_is_isolated_skipped_and_reported_the_rest_delivered() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut outbox = outbox_with(dir.path(), 150);
    const BAD: u64 = 57;
    let mut stored = BTreeSet::new();
    let mut calls = 0;
    let mut up = Uploader::new();
    let next = drain(&mut up, &mut outbox, &mut |body, n| {
        calls += 1;
        let events = decode(body);
        if events.iter().any(|e| e.seq == BAD) {
            return Err(Failure::BadRequest(format!(
                "bad_request: event {} (uid …): field `payload`",
                BAD
            )));
        }
        stored.extend(events.iter().map(|e| e.seq));
        ok(n)
    });
    assert_eq!(next, Next::Idle);
    let want: BTreeSet<u64> = (1..=150).filter(|s| *s != BAD).collect();
    assert_eq!(stored, want);
    assert_eq!(
        pending(&outbox),
        0,
        "the poison event does not block the queue"
    );
    assert!(calls < 25, "isolating took {calls} requests");
    assert_eq!(up.stats().skipped, 1);
    let notices = up.take_notices();
    assert_eq!(notices.len(), 1);
    let Body::AgentHealth(h) = &notices[0] else {
        panic!("{notices:?}")
    };
    assert!(
        h.message.contains("seq 57") && h.message.contains("field `payload`"),
        "{}",
        h.message
    );
}

#[test]
fn a_collector_refusing_everything_makes_it_wait_and_skip_nothing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut outbox = outbox_with(dir.path(), 20);
    let mut up = Uploader::new();
    let mut calls = 0;
    let mut send = |_: &[u8], _: usize| {
        calls += 1;
        Err(Failure::BadRequest("bad_request: unknown kind".into()))
    };
    let mut waits = Vec::new();
    for _ in 0..3 {
        match drain(&mut up, &mut outbox, &mut send) {
            Next::Wait(d) => waits.push(d),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(pending(&outbox), 20, "nothing skipped or marked");
    assert_eq!(up.stats().skipped, 0);
    assert!(waits[2] > waits[0] / 2, "{waits:?}");
    assert!(calls < 30, "{calls} requests for three rounds");
    assert!(up.take_notices().is_empty());
}

#[test]
fn network_errors_back_off_growing_and_a_success_resets() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut outbox = outbox_with(dir.path(), 5);
    let mut up = Uploader::new();
    let mut ceilings = Vec::new();
    for _ in 0..12 {
        let next = up
            .step(&mut outbox, &mut |_, _| {
                Err(Failure::Network("connection refused".into()))
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let Next::Wait(d) = next else {
            panic!("{next:?}")
        };
        assert!(d <= BACKOFF_CAP);
        ceilings.push(d);
    }
    assert!(ceilings[8] >= Duration::from_secs(128), "{ceilings:?}");
    assert!(ceilings[11] >= BACKOFF_CAP / 2, "{ceilings:?}");
    assert_eq!(drain(&mut up, &mut outbox, &mut |_, n| ok(n)), Next::Idle);
    let next = up
        .step(&mut outbox, &mut |_, _| Err(Failure::Network("x".into())))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next, Next::Idle, "nothing pending: no request");
    outbox
        .append(Mode::Monitor, &convert::stopped("test"))
        .unwrap_or_else(|e| panic!("{e}"));
    let next = up
        .step(&mut outbox, &mut |_, _| {
            Err(Failure::Server {
                status: 502,
                message: "bad gateway".into(),
            })
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(next, Next::Wait(d) if d <= BACKOFF_BASE),
        "reset after the success: {next:?}"
    );
}

#[test]
fn retry_after_is_honoured_and_401_asks_for_enrollment() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut outbox = outbox_with(dir.path(), 5);
    let mut up = Uploader::new();
    let next = up
        .step(&mut outbox, &mut |_, _| {
            Err(Failure::Busy {
                status: 429,
                retry_after: Some(Duration::from_secs(7)),
            })
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next, Next::Wait(Duration::from_secs(7)));
    let next = up
        .step(&mut outbox, &mut |_, _| {
            Err(Failure::Busy {
                status: 503,
                retry_after: None,
            })
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(next, Next::Wait(_)), "{next:?}");
    let next = up
        .step(&mut outbox, &mut |_, _| {
            Err(Failure::Unauthorized("unauthorized: unknown token".into()))
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next, Next::Reenroll);
    assert_eq!(pending(&outbox), 5);
}

#[test]
fn a_refusing_collector_is_reported_once_per_streak() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut outbox = outbox_with(dir.path(), 5);
    let mut up = Uploader::new();
    let mut forbidden = |_: &[u8], _: usize| {
        Err(Failure::Forbidden(
            "forbidden: events of another host".into(),
        ))
    };
    for _ in 0..5 {
        let next = up
            .step(&mut outbox, &mut forbidden)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(next, Next::Wait(_)), "{next:?}");
    }
    let notices = up.take_notices();
    assert_eq!(notices.len(), 1, "{notices:?}");
    let Body::AgentHealth(h) = &notices[0] else {
        panic!()
    };
    assert!(h.message.contains("another host"), "{}", h.message);
    drain(&mut up, &mut outbox, &mut |_, n| ok(n));
    outbox
        .append(Mode::Monitor, &convert::stopped("test"))
        .unwrap_or_else(|e| panic!("{e}"));
    up.step(&mut outbox, &mut forbidden)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(up.take_notices().len(), 1, "a new streak is reported again");
}

#[test]
fn an_answer_that_does_not_account_for_the_batch_is_not_a_success() {
    // `Client::post_events` turns such an answer into `Unexpected`; here,
    // that the uploader then keeps the events.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut outbox = outbox_with(dir.path(), 5);
    let mut up = Uploader::new();
    let next = up
        .step(&mut outbox, &mut |_, _| {
            Err(Failure::Unexpected {
                status: 200,
                message: "the answer is not the collector API's".into(),
            })
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(next, Next::Wait(_)));
    assert_eq!(pending(&outbox), 5);
}
