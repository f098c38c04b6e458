//! Exports and the fleet policy against a real server, on SQLite and (with
//! LENSCAP_TEST_POSTGRES_URL) PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Collector, Db, chain, host};
use lenscap_collector::store::Role;

on_both_databases! {
    exports_hold_every_matching_event => exports;
    policy_etags_and_roles => policy;
}

fn exports(db: &Db) {
    let c = Collector::start(db);
    let h = host("mac-export");
    let token = c.enroll(&h);
    let reader = c.token(Role::Reader);
    let events = chain(&h, 2500);
    for batch in events.chunks(500) {
        assert_eq!(c.send(&token, batch).0, 200);
    }
    let (s, ndjson) = c.http.get(&c.url("/api/v1/export.ndjson"), Some(&reader));
    assert_eq!(s, 200);
    let lines: Vec<serde_json::Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2500);
    let (s, csv) = c.http.get(
        &c.url("/api/v1/export.csv?kind=process_remediation"),
        Some(&reader),
    );
    assert_eq!(s, 200);
    let mut rows = csv.lines();
    assert_eq!(
        rows.next(),
        Some("time,host,seq,kind,verdict,severity,rule,uid,message,finding_kind,integrity")
    );
    assert_eq!(rows.count(), 625);
    let (s, text) = c
        .http
        .get(&c.url("/api/v1/export.csv?limit=5"), Some(&reader));
    assert_eq!(s, 400, "{text}");
}

fn policy(db: &Db) {
    let c = Collector::start(db);
    let h = host("mac-policy");
    let host_token = c.enroll(&h);
    let reader = c.token(Role::Reader);
    let admin = c.token(Role::Admin);
    let url = c.url("/api/v1/policy");

    let (s, headers, body) = c.http.get_with(&url, Some(&host_token), &[]);
    assert_eq!(s, 200);
    assert_eq!(body, r#"{"catalog":[],"rules":[]}"#);
    let etag = headers.iter().find(|(k, _)| k == "etag").unwrap().1.clone();
    let (s, _, _) = c
        .http
        .get_with(&url, Some(&host_token), &[("if-none-match", &etag)]);
    assert_eq!(s, 304);

    let policy = serde_json::json!({
        "rules": [{"id": "allow-jetbrains", "action": "allow", "team_id": "2ZEFAR8TH3", "port": 63342}],
        "catalog": [{"id": "ringcentral-opener", "name": "RingCentral opener", "severity": "high",
                     "paths": ["/Users/*/.ringcentralopener/**"], "ports": [19424]}]
    });
    let put = |token: &str, headers: &[(&str, &str)], body: &serde_json::Value| {
        let mut hs = vec![("content-type", "application/json")];
        hs.extend_from_slice(headers);
        c.http.send(
            "PUT",
            &url,
            Some(token),
            &hs,
            serde_json::to_vec(body).unwrap(),
            false,
        )
    };
    assert_eq!(put(&reader, &[], &policy).0, 403);
    assert_eq!(put(&host_token, &[], &policy).0, 403);
    let (s, text) = put(&admin, &[("if-match", &etag)], &policy);
    assert_eq!(s, 200, "{text}");
    // A second admin still holding the old ETag loses cleanly.
    let (s, text) = put(&admin, &[("if-match", &etag)], &serde_json::json!({}));
    assert_eq!(s, 412, "{text}");
    // Invalid policies are refused with the entry named.
    let bad = serde_json::json!({"rules": [{"id": "no-matcher", "action": "deny"}]});
    let (s, text) = put(&admin, &[], &bad);
    assert_eq!(s, 400);
    assert!(text.contains("rules[0]"), "{text}");

    // Agents see the change: a new ETag and the new body.
    let (s, headers, body) = c
        .http
        .get_with(&url, Some(&host_token), &[("if-none-match", &etag)]);
    assert_eq!(s, 200);
    assert!(body.contains("ringcentral-opener"));
    let new_etag = headers.iter().find(|(k, _)| k == "etag").unwrap().1.clone();
    assert_ne!(new_etag, etag);
    assert_eq!(
        c.http
            .get_with(&url, Some(&reader), &[("if-none-match", &new_etag)])
            .0,
        304
    );
}
