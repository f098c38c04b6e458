//! The collector's API against a real server on 127.0.0.1, on SQLite and
//! (with LENSCAP_TEST_POSTGRES_URL) PostgreSQL: who may do what, what bad
//! input gets, idempotence, gaps and pagination. Exports and the policy
//! are in `exports_policy.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Collector, Db, all_events, chain, host, host_health};
use lenscap_collector::config::Limits;
use lenscap_collector::store::Role;

on_both_databases! {
    auth_is_enforced => auth_is_enforced;
    bad_bodies_get_4xx_and_the_server_keeps_serving => bad_bodies;
    sql_shaped_filters_are_inert => sql_shaped_filters_are_inert;
    a_batch_sent_twice_is_stored_once => duplicates_are_stored_once;
    gaps_are_only_the_seqs_that_never_arrived => gaps_only_for_missing_seqs;
    an_altered_event_shows_as_a_chain_break => altered_event_is_a_chain_break;
    pagination_and_filters => pagination_and_filters;
    hosts_come_a_page_at_a_time_with_filters => hosts_page_with_filters;
}

fn auth_is_enforced(db: &Db) {
    let c = Collector::start(db);
    let a = host("mac-a");
    let b = host("mac-b");
    let token_a = c.enroll(&a);
    let _token_b = c.enroll(&b);
    let reader = c.token(Role::Reader);
    let enroll = c.token(Role::Enroll);
    let events_b = chain(&b, 3);
    let body = serde_json::to_vec(&events_b).unwrap();
    let post = |token: Option<&str>| {
        c.http.post(
            &c.url("/api/v1/events"),
            token,
            "application/json",
            body.clone(),
            false,
        )
    };

    let (s, text) = post(None);
    assert_eq!(s, 401, "{text}");
    assert!(text.contains("Bearer"), "{text}");
    let (s, text) = post(Some("lc_host_0000"));
    assert_eq!(s, 401, "{text}");
    assert!(text.contains("unknown token"), "{text}");
    let (s, _) = c.http.send(
        "POST",
        &c.url("/api/v1/events"),
        None,
        &[
            ("authorization", "Basic YTpi"),
            ("content-type", "application/json"),
        ],
        body.clone(),
        false,
    );
    assert_eq!(s, 401);

    // Host A's token with host B's events.
    let (s, text) = post(Some(&token_a));
    assert_eq!(s, 403, "{text}");
    assert!(text.contains("only its own events"), "{text}");
    // A reader and an enroll token cannot write.
    let (s, text) = post(Some(&reader));
    assert_eq!(s, 403, "{text}");
    assert!(text.contains("reader token may not send events"), "{text}");
    assert_eq!(post(Some(&enroll)).0, 403);
    // Nothing of B's was stored by any of that.
    assert_eq!(all_events(&c, &reader, "").len(), 0);

    // Reading needs a reader (or admin) token.
    assert_eq!(c.http.get(&c.url("/api/v1/events"), None).0, 401);
    assert_eq!(c.http.get(&c.url("/api/v1/events"), Some(&token_a)).0, 403);
    assert_eq!(c.http.get(&c.url("/api/v1/hosts"), Some(&enroll)).0, 403);
    assert_eq!(
        c.http
            .get(&c.url("/api/v1/export.ndjson"), Some(&token_a))
            .0,
        403
    );
    // Enrolling needs an enroll token.
    let (s, _) = c.http.post(
        &c.url("/api/v1/enroll"),
        Some(&reader),
        "application/json",
        br#"{"host":{"hostname":"x"},"agent_version":"1"}"#.to_vec(),
        false,
    );
    assert_eq!(s, 403);
    // The right token works.
    let events_a = chain(&a, 3);
    let (s, text) = c.send(&token_a, &events_a);
    assert_eq!(s, 200, "{text}");
    assert_eq!(all_events(&c, &reader, "").len(), 3);
    // The one unauthenticated endpoint; /metrics needs a reader (see
    // hardening.rs for the rest).
    assert_eq!(c.http.get(&c.url("/healthz"), None).0, 200);
    assert_eq!(c.http.get(&c.url("/metrics"), None).0, 401);
    let (s, metrics) = c.http.get(&c.url("/metrics"), Some(&reader));
    assert_eq!(s, 200);
    assert!(
        metrics.contains("lenscap_collector_http_responses_total{code=\"401\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lenscap_collector_events_accepted_total 3"),
        "{metrics}"
    );
}

fn bad_bodies(db: &Db) {
    let limits = Limits {
        max_body_bytes: 64 * 1024,
        max_batch_events: 50,
    };
    let c = Collector::start_with(db, limits, None);
    let h = host("mac-bad");
    let token = c.enroll(&h);
    let url = c.url("/api/v1/events");
    let post =
        |ct: &str, body: Vec<u8>, gzip: bool| c.http.post(&url, Some(&token), ct, body, gzip);
    let expect = |(s, text): (u16, String), status: u16, needle: &str| {
        assert_eq!(s, status, "{text}");
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        assert!(v["error"].as_str().unwrap().contains(needle), "{text}");
    };

    // Oversized raw (small enough to sit in the socket buffers, so the
    // client reads the answer), oversized after gunzip (a bomb), too many
    // events.
    expect(
        post("application/json", vec![b' '; 100 * 1024], false),
        413,
        "larger than 65536 bytes",
    );
    let mut bomb = b"[".to_vec();
    bomb.extend(std::iter::repeat_n(b' ', 10 << 20));
    bomb.push(b']');
    expect(
        post("application/json", bomb, true),
        413,
        "after decompression",
    );
    let mut many: Vec<lenscap_events::Event> = (1..=51)
        .map(|seq| {
            lenscap_events::samples::event(
                &h,
                seq,
                1,
                lenscap_events::Mode::Monitor,
                lenscap_events::Body::AgentHealth(lenscap_events::samples::started()),
            )
        })
        .collect();
    lenscap_events::samples::link(&mut many, lenscap_events::Sha256Hex::genesis());
    expect(
        post(
            "application/json",
            serde_json::to_vec(&many).unwrap(),
            false,
        ),
        413,
        "at most 50",
    );
    // Malformed.
    expect(
        post("application/json", b"[{\"uid\": ".to_vec(), false),
        400,
        "not JSON",
    );
    expect(
        post("application/json", b"\"hello\"".to_vec(), false),
        400,
        "array of events",
    );
    expect(
        c.http.send(
            "POST",
            &url,
            Some(&token),
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            b"not gzip".to_vec(),
            false,
        ),
        400,
        "not valid gzip",
    );
    expect(
        post("text/plain", b"[]".to_vec(), false),
        415,
        "application/json",
    );
    // Wrong schema: named by index and field.
    let mut events = chain(&h, 3);
    let mut v = serde_json::to_value(&events).unwrap();
    v[1].as_object_mut().unwrap().remove("seq");
    expect(
        post("application/json", serde_json::to_vec(&v).unwrap(), false),
        400,
        "event 1",
    );
    let mut v = serde_json::to_value(&events).unwrap();
    v[2]["payload"]["class_uid"] = serde_json::json!(9999);
    expect(
        post("application/json", serde_json::to_vec(&v).unwrap(), false),
        400,
        "class_uid 9999",
    );
    let mut v = serde_json::to_value(&events).unwrap();
    v[0]["kind"] = serde_json::json!("rm -rf /");
    expect(
        post("application/json", serde_json::to_vec(&v).unwrap(), false),
        400,
        "unknown variant",
    );
    // Unknown route, in the same shape.
    expect(
        c.http.get(&c.url("/api/v1/nope"), None),
        404,
        "no such route",
    );

    // Still serving, and nothing half-stored: the good batch goes in whole.
    assert_eq!(c.http.get(&c.url("/healthz"), None).0, 200);
    events.truncate(3);
    let (s, text) = post(
        "application/json",
        serde_json::to_vec(&events).unwrap(),
        true,
    );
    assert_eq!(s, 200, "{text}");
    assert_eq!(text, r#"{"accepted":3,"duplicate":0}"#);
}

fn sql_shaped_filters_are_inert(db: &Db) {
    let c = Collector::start(db);
    // SQL in the data itself is stored as text.
    let mut h = host("mac'); DROP TABLE events; --");
    h.serial = Some("' OR '1'='1".into());
    let token = c.enroll(&h);
    let reader = c.token(Role::Reader);
    assert_eq!(c.send(&token, &chain(&h, 8)).0, 200);

    for q in [
        "rule=x%27%20OR%20%271%27%3D%271",
        "rule=catalog%3Azoom-opener%27%3B%20DROP%20TABLE%20events%3B%20--",
        "host=%27%20OR%201%3D1%20--",
        "host=mac%27)%20OR%20(1%3D1",
    ] {
        let page = c.get_json(&format!("/api/v1/events?{q}"), &reader);
        assert_eq!(page["events"].as_array().unwrap().len(), 0, "{q}: {page}");
    }
    for q in [
        "kind=detection_finding%27%20OR%20%271%27%3D%271",
        "verdict=remediate%20OR%201%3D1",
        "since=1%20OR%201%3D1",
        "limit=1%3B%20DELETE%20FROM%20events",
        "cursor=1_1%29%20OR%20%281%3D1",
        "drop=table",
    ] {
        let (s, text) = c
            .http
            .get(&c.url(&format!("/api/v1/events?{q}")), Some(&reader));
        assert_eq!(s, 400, "{q}: {text}");
    }
    // The odd hostname and serial match only themselves.
    let by_name = c.get_json(
        "/api/v1/events?host=mac%27)%3B%20DROP%20TABLE%20events%3B%20--",
        &reader,
    );
    assert_eq!(by_name["events"].as_array().unwrap().len(), 8);
    let by_serial = c.get_json("/api/v1/events?host=%27%20OR%20%271%27%3D%271", &reader);
    assert_eq!(by_serial["events"].as_array().unwrap().len(), 8);
    // Everything is still there.
    assert_eq!(all_events(&c, &reader, "").len(), 8);
    let hosts = c.get_json("/api/v1/hosts", &reader);
    assert_eq!(
        hosts["hosts"][0]["hostname"],
        "mac'); DROP TABLE events; --"
    );
}

fn duplicates_are_stored_once(db: &Db) {
    let c = Collector::start(db);
    let h = host("mac-dup");
    let token = c.enroll(&h);
    let reader = c.token(Role::Reader);
    let events = chain(&h, 120);
    assert_eq!(
        c.send(&token, &events[..100]).1,
        r#"{"accepted":100,"duplicate":0}"#
    );
    assert_eq!(
        c.send(&token, &events[..100]).1,
        r#"{"accepted":0,"duplicate":100}"#
    );
    // Overlapping batch and a repeat inside one batch.
    let mut more = events[90..].to_vec();
    more.push(more[0].clone());
    assert_eq!(c.send(&token, &more).1, r#"{"accepted":20,"duplicate":11}"#);
    let stored = all_events(&c, &reader, "");
    assert_eq!(stored.len(), 120);
    let mut uids: Vec<&str> = stored.iter().map(|e| e["uid"].as_str().unwrap()).collect();
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), 120);
    assert_eq!(host_health(&c, &reader, "mac-dup"), (0, 0, 0));
    // Stored exactly as sent: canonical JSON of what the agent serialised.
    let first = stored.iter().find(|e| e["seq"] == 1).unwrap();
    assert_eq!(first, &serde_json::to_value(&events[0]).unwrap());
}

fn gaps_only_for_missing_seqs(db: &Db) {
    let c = Collector::start(db);
    let h = host("mac-gaps");
    let token = c.enroll(&h);
    let reader = c.token(Role::Reader);
    let all = chain(&h, 20);
    let pick =
        |seqs: &[u64]| -> Vec<_> { seqs.iter().map(|s| all[*s as usize - 1].clone()).collect() };
    // 4, 5 and 9 are held back; batches arrive out of order.
    assert_eq!(c.send(&token, &pick(&[6, 7, 8])).0, 200);
    assert_eq!(host_health(&c, &reader, "mac-gaps"), (1, 5, 0));
    assert_eq!(c.send(&token, &pick(&[1, 2, 3, 10, 11, 12])).0, 200);
    assert_eq!(host_health(&c, &reader, "mac-gaps"), (2, 3, 0));
    // Late arrivals close what they fill, and nothing else.
    assert_eq!(c.send(&token, &pick(&[5])).0, 200);
    assert_eq!(host_health(&c, &reader, "mac-gaps"), (2, 2, 0));
    assert_eq!(c.send(&token, &pick(&[9, 4])).0, 200);
    assert_eq!(host_health(&c, &reader, "mac-gaps"), (0, 0, 0));
    // A duplicate of a late event does not reopen anything.
    assert_eq!(
        c.send(&token, &pick(&[4])).1,
        r#"{"accepted":0,"duplicate":1}"#
    );
    assert_eq!(host_health(&c, &reader, "mac-gaps"), (0, 0, 0));
    // Events that truly never existed stay a gap.
    assert_eq!(c.send(&token, &pick(&[16, 17, 18, 19, 20])).0, 200);
    assert_eq!(host_health(&c, &reader, "mac-gaps"), (1, 3, 0));
}

fn altered_event_is_a_chain_break(db: &Db) {
    let c = Collector::start(db);
    let h = host("mac-tamper");
    let token = c.enroll(&h);
    let reader = c.token(Role::Reader);
    let mut events = chain(&h, 6);
    // Someone rewrites event 3's message after it was hashed into 4.
    if let lenscap_events::Body::ProcessRemediation(r) = &mut events[2].body {
        r.message = "nothing happened here".into();
    } else {
        panic!("event 3 should be a remediation");
    }
    assert_eq!(c.send(&token, &events).0, 200);
    assert_eq!(host_health(&c, &reader, "mac-tamper"), (0, 0, 1));
    // A reset agent reusing seq 2 under a new uid.
    let mut reset = chain(&h, 2);
    reset.truncate(2);
    assert_eq!(c.send(&token, &reset[1..]).0, 200);
    assert_eq!(host_health(&c, &reader, "mac-tamper"), (0, 0, 2));
}

fn pagination_and_filters(db: &Db) {
    let c = Collector::start(db);
    let h = host("mac-pages");
    let token = c.enroll(&h);
    let other = host("mac-other");
    let token_other = c.enroll(&other);
    let reader = c.token(Role::Admin);
    let events = chain(&h, 250);
    for batch in events.chunks(100) {
        assert_eq!(c.send(&token, batch).0, 200);
    }
    assert_eq!(c.send(&token_other, &chain(&other, 10)).0, 200);

    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let page = c.get_json(
            &format!("/api/v1/events?host=mac-pages&limit=100{cursor}"),
            &reader,
        );
        pages += 1;
        let list = page["events"].as_array().unwrap();
        seen.extend(list.iter().map(|e| e["seq"].as_u64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    // Newest first, each once.
    assert_eq!(seen, (1..=250).rev().collect::<Vec<u64>>());

    let count = |q: &str| all_events(&c, &reader, q).len();
    assert_eq!(count("host=mac-pages&kind=agent_health"), 62);
    assert_eq!(
        count("host=mac-pages&kind=detection_finding&verdict=remediate"),
        63
    );
    assert_eq!(count("verdict=report"), 63 + 3);
    // Only findings carry a verdict or a rule: another kind with one
    // matches nothing (the store leaves the kind test out for findings,
    // see event_rows).
    assert_eq!(
        count("host=mac-pages&kind=agent_health&verdict=remediate"),
        0
    );
    assert_eq!(count("kind=agent_health&rule=catalog%3Azoom-opener"), 0);
    assert_eq!(
        count("kind=detection_finding&rule=catalog%3Azoom-opener&host=mac-other"),
        3
    );
    assert_eq!(count("rule=catalog%3Azoom-opener&host=mac-other"), 3);
    // since/until bound event time: seq n happened at t0 + n s.
    let t0 = 1_764_312_000_000i64;
    assert_eq!(
        count(&format!(
            "host=mac-pages&since={}&until={}",
            t0 + 10_000,
            t0 + 20_000
        )),
        10
    );
    assert_eq!(count("since=2025-11-28T06:40:00Z&host=mac-pages"), 250);
    assert_eq!(count("until=2025-11-28T06:40:00Z"), 0);
    let hosts = c.get_json("/api/v1/hosts", &reader);
    let ph = hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["hostname"] == "mac-pages")
        .unwrap();
    assert_eq!(ph["events"], 250);
    assert_eq!(ph["last_seq"], 250);
    assert_eq!(ph["mode"], "remediate");
    // One open finding: every finding event has the same finding uid.
    assert_eq!(ph["open_findings"], 1);
}

/// Events 1..=n of `h`: health events only, in `mode`.
fn quiet(
    h: &lenscap_events::Host,
    n: u64,
    mode: lenscap_events::Mode,
) -> Vec<lenscap_events::Event> {
    let mut events: Vec<lenscap_events::Event> = (1..=n)
        .map(|seq| {
            lenscap_events::samples::event(
                h,
                seq,
                1_764_312_000_000 + seq as i64 * 1000,
                mode,
                lenscap_events::Body::AgentHealth(lenscap_events::samples::started()),
            )
        })
        .collect();
    lenscap_events::samples::link(&mut events, lenscap_events::Sha256Hex::genesis());
    events
}

fn hosts_page_with_filters(db: &Db) {
    use lenscap_events::Mode;
    let c = Collector::start(db);
    let reader = c.token(Role::Reader);
    // fleet-0 … fleet-6: fleet-1 missed an event, fleet-2 has an open
    // finding, fleet-3 runs in monitor mode, fleet-6 never sent anything.
    for i in 0..7 {
        let h = host(&format!("fleet-{i}"));
        let token = c.enroll(&h);
        let events = match i {
            1 => {
                let mut e = quiet(&h, 4, Mode::Remediate);
                e.remove(1);
                e
            }
            2 => chain(&h, 2),
            3 => quiet(&h, 2, Mode::Monitor),
            6 => Vec::new(),
            _ => quiet(&h, 2, Mode::Remediate),
        };
        if !events.is_empty() {
            assert_eq!(c.send(&token, &events).0, 200);
        }
    }
    let names = |query: &str| -> Vec<String> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = c.get_json(&format!("/api/v1/hosts?{query}{cursor}"), &reader);
            let list = page["hosts"].as_array().unwrap();
            out.extend(
                list.iter()
                    .map(|h| h["hostname"].as_str().unwrap().to_string()),
            );
            match page["next_cursor"].as_str() {
                Some(n) => cursor = format!("&cursor={n}"),
                None => return out,
            }
        }
    };
    let all: Vec<String> = (0..7).map(|i| format!("fleet-{i}")).collect();
    assert_eq!(names("limit=3"), all);
    let first = c.get_json("/api/v1/hosts?limit=3", &reader);
    assert_eq!(first["hosts"].as_array().unwrap().len(), 3);
    assert!(first["next_cursor"].is_string());
    assert_eq!(names("attention=true&limit=1"), ["fleet-1", "fleet-2"]);
    assert_eq!(names("mode=monitor"), ["fleet-3"]);
    assert_eq!(names("name_prefix=fleet-2"), ["fleet-2"]);
    assert_eq!(names("name_prefix=fleet-"), all);
    assert_eq!(names("name_prefix=%25"), Vec::<String>::new());
    assert_eq!(names("last_seen_after=2000-01-01T00:00:00Z").len(), 6);
    assert_eq!(names("last_seen_before=2000-01-01T00:00:00Z").len(), 0);
    for bad in [
        "attention=yes",
        "mode=paranoid",
        "limit=0",
        "limit=1001",
        "cursor=zz_1",
        "last_seen_before=yesterday",
        "colour=red",
    ] {
        let (s, text) = c
            .http
            .get(&c.url(&format!("/api/v1/hosts?{bad}")), Some(&reader));
        assert_eq!(s, 400, "{bad}: {text}");
    }
    c.stop();
}
