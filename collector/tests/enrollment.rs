//! Who may hold a host's token, against a real collector on SQLite and
//! (with LENSCAP_TEST_POSTGRES_URL) PostgreSQL: a known identity's
//! enrolment from another installation is held until an admin approves
//! that very request; approving revokes the old tokens; refusing sticks;
//! revoked tokens get 401 everywhere. The attacker throughout holds the
//! fleet's enroll token and knows a victim Mac's hardware UUID.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Collector, Db, chain, host};
use lenscap_collector::admin::{self, AdminError};
use lenscap_collector::store::Role;

on_both_databases! {
    a_known_identity_is_held_until_the_admin_approves_that_request => held_until_approved;
    a_refused_enrolment_stays_refused => refused_stays_refused;
    a_revoked_token_gets_401_on_every_route => revoked_tokens_get_401;
}

const KEY_MAC: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const KEY_REIMAGED: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const KEY_ATTACKER: &str = "3333333333333333333333333333333333333333333333333333333333333333";

/// (status, body) of an authenticated GET.
fn get(c: &Collector, path: &str, token: &str) -> (u16, String) {
    c.http.get(&c.url(path), Some(token))
}

fn held(c: &Collector, enroll: &str, h: &lenscap_events::Host, key: Option<&str>) -> i64 {
    let (status, v) = c.try_enroll(enroll, h, key);
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["code"], "enroll_held", "{v}");
    assert!(v.get("token").is_none(), "{v}");
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.contains("lenscap-collector host approve") && msg.contains("held for approval"),
        "{msg}"
    );
    v["request_id"].as_i64().unwrap()
}

fn held_until_approved(db: &Db) {
    let c = Collector::start(db);
    let enroll = c.token(Role::Enroll);
    let mac = host("mac-victim");
    let events = chain(&mac, 6);

    // First enrolment of a new identity: a token at once.
    let (s, v) = c.try_enroll(&enroll, &mac, Some(KEY_MAC));
    assert_eq!(s, 200, "{v}");
    let first = v["token"].as_str().unwrap().to_string();
    let host_id = v["host_id"].as_i64().unwrap();
    assert_eq!(c.send(&first, &events[..2]).0, 200);

    // The attacker claims the same hardware UUID: no token, with or
    // without a key, however often it asks; the real host is unaffected.
    let attacker = held(&c, &enroll, &mac, Some(KEY_ATTACKER));
    assert_eq!(held(&c, &enroll, &mac, Some(KEY_ATTACKER)), attacker);
    let keyless = held(&c, &enroll, &mac, None);
    assert_ne!(keyless, attacker);
    assert_eq!(c.send(&first, &events[2..3]).0, 200);

    // The same installation (same key) enrols again without an admin, as
    // after a lost answer; its older token is revoked.
    let (s, v) = c.try_enroll(&enroll, &mac, Some(KEY_MAC));
    assert_eq!(s, 200, "{v}");
    let second = v["token"].as_str().unwrap().to_string();
    assert_eq!(v["host_id"].as_i64().unwrap(), host_id);
    let (s, text) = c.send(&first, &events[3..4]);
    assert_eq!(s, 401, "{text}");
    assert!(text.contains("revoked"), "{text}");

    // The Mac is re-imaged: a new installation, a new key. Held.
    let reimaged = held(&c, &enroll, &mac, Some(KEY_REIMAGED));
    let store = c.store();
    let pending = c.block_on(admin::pending(&store, false)).unwrap();
    for id in [attacker, keyless, reimaged] {
        assert!(
            pending.lines().any(|l| l.starts_with(&format!("{id} "))),
            "{pending}"
        );
    }
    // Three waiting: the admin must say which.
    let err = c
        .block_on(admin::approve(&store, "mac-victim", None, 1))
        .unwrap_err();
    assert!(matches!(err, AdminError::ManyWaiting { n: 3, .. }), "{err}");
    assert!(err.to_string().contains("--request"), "{err}");
    let said = c
        .block_on(admin::approve(&store, "mac-victim", Some(reimaged), 1))
        .unwrap();
    assert!(said.contains("revoked 1 older token"), "{said}");
    // Approval revokes the host's tokens at once.
    assert_eq!(c.send(&second, &events[3..4]).0, 401);

    // The approval is for the re-imaged Mac's request only: the attacker,
    // the keyless claimant and the old installation are still held.
    held(&c, &enroll, &mac, Some(KEY_ATTACKER));
    held(&c, &enroll, &mac, None);
    held(&c, &enroll, &mac, Some(KEY_MAC));
    let (s, v) = c.try_enroll(&enroll, &mac, Some(KEY_REIMAGED));
    assert_eq!(s, 200, "{v}");
    let third = v["token"].as_str().unwrap().to_string();
    assert_eq!(v["host_id"].as_i64().unwrap(), host_id, "the same host");
    let (s, text) = c.send(&third, &events[3..]);
    assert_eq!(s, 200, "{text}");
    // Once issued, the approval is used up: the same key again is the
    // same installation (no admin), another key is held again.
    let (s, v) = c.try_enroll(&enroll, &mac, Some(KEY_REIMAGED));
    assert_eq!(s, 200, "{v}");
    held(&c, &enroll, &mac, Some(KEY_ATTACKER));
    let pending = c.block_on(admin::pending(&store, false)).unwrap();
    assert!(
        !pending
            .lines()
            .any(|l| l.starts_with(&format!("{reimaged} "))),
        "{pending}"
    );
    // Revoked again: the re-imaged installation's key is forgotten, and
    // its used-up request is held anew (attempts counted from 1).
    c.block_on(admin::token_revoke(&store, "mac-victim", 1))
        .unwrap();
    assert_eq!(held(&c, &enroll, &mac, Some(KEY_REIMAGED)), reimaged);
    let pending = c.block_on(admin::pending(&store, false)).unwrap();
    let row = pending
        .lines()
        .find(|l| l.starts_with(&format!("{reimaged} ")))
        .unwrap_or_else(|| panic!("{pending}"));
    assert!(
        row.contains("held") && row.trim_end().ends_with(" 1"),
        "{row}"
    );
    // A new Mac is not affected by any of this.
    let (s, _) = c.try_enroll(&enroll, &host("mac-new"), Some(KEY_ATTACKER));
    assert_eq!(s, 200);
    // Bad keys are refused by name.
    let (s, v) = c.try_enroll(&enroll, &host("mac-x"), Some("short"));
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("enroll_key"), "{v}");
}

fn refused_stays_refused(db: &Db) {
    let c = Collector::start(db);
    let enroll = c.token(Role::Enroll);
    let mac = host("mac-refused");
    let (s, v) = c.try_enroll(&enroll, &mac, Some(KEY_MAC));
    assert_eq!(s, 200, "{v}");
    let token = v["token"].as_str().unwrap().to_string();
    let request = held(&c, &enroll, &mac, Some(KEY_ATTACKER));
    let store = c.store();
    let said = c
        .block_on(admin::refuse(&store, "mac-refused", None, 1))
        .unwrap();
    assert!(
        said.contains(&format!("refused request {request}")),
        "{said}"
    );
    for _ in 0..2 {
        let (s, v) = c.try_enroll(&enroll, &mac, Some(KEY_ATTACKER));
        assert_eq!(s, 403, "{v}");
        assert_eq!(v["code"], "enroll_refused", "{v}");
        assert_eq!(v["request_id"].as_i64(), Some(request), "{v}");
        assert!(v.get("token").is_none(), "{v}");
    }
    // Refusing leaves the real host's token alone.
    assert_eq!(c.send(&token, &chain(&mac, 1)).0, 200);
    // Nothing waits now; approving needs the request named.
    let err = c
        .block_on(admin::approve(&store, "mac-refused", None, 1))
        .unwrap_err();
    assert!(
        matches!(err, AdminError::NothingWaiting { .. })
            && err.to_string().contains("refused earlier"),
        "{err}"
    );
    // A host that does not exist, or a request of another host, is named.
    let err = c
        .block_on(admin::approve(&store, "no-such-mac", None, 1))
        .unwrap_err();
    assert!(matches!(err, AdminError::NoHost(_)), "{err}");
    let err = c
        .block_on(admin::approve(
            &store,
            "mac-refused",
            Some(request + 1000),
            1,
        ))
        .unwrap_err();
    assert!(matches!(err, AdminError::NoSuchRequest { .. }), "{err}");
    // The admin changes their mind.
    c.block_on(admin::approve(&store, "mac-refused", Some(request), 1))
        .unwrap();
    let (s, v) = c.try_enroll(&enroll, &mac, Some(KEY_ATTACKER));
    assert_eq!(s, 200, "{v}");
    assert_eq!(c.send(&token, &chain(&mac, 2)[1..]).0, 401);
}

fn revoked_tokens_get_401(db: &Db) {
    let c = Collector::start(db);
    let reader = c.token(Role::Reader);
    let admin_token = c.token(Role::Admin);
    let enroll = c.token(Role::Enroll);
    let mac = host("mac-revoked");
    let (s, v) = c.try_enroll(&enroll, &mac, Some(KEY_MAC));
    assert_eq!(s, 200, "{v}");
    let host_token = v["token"].as_str().unwrap().to_string();
    let store = c.store();

    // `token list` names tokens by the start of their hash, never shows
    // one, and lists the host's.
    let list = c.block_on(admin::token_list(&store, false)).unwrap();
    for t in [&reader, &admin_token, &enroll, &host_token] {
        assert!(!list.contains(t.as_str()), "{list}");
    }
    let id_of = |token: &str| lenscap_collector::auth::token_hash(token)[..12].to_string();
    assert!(list.contains(&id_of(&host_token)), "{list}");
    assert!(list.contains("mac-revoked"), "{list}");

    // A reader token, by id.
    assert_eq!(get(&c, "/api/v1/events", &reader).0, 200);
    let said = c
        .block_on(admin::token_revoke(&store, &id_of(&reader), 1))
        .unwrap();
    assert!(said.contains("revoked reader token"), "{said}");
    for path in [
        "/api/v1/events",
        "/api/v1/hosts",
        "/api/v1/export.ndjson",
        "/metrics",
    ] {
        let (s, text) = get(&c, path, &reader);
        assert_eq!(s, 401, "{path}: {text}");
        assert!(text.contains("revoked"), "{path}: {text}");
    }
    // The dashboard does not take it either.
    let (s, _) = c.http.post(
        &c.url("/ui/login"),
        None,
        "application/x-www-form-urlencoded",
        format!("token={reader}").into_bytes(),
        false,
    );
    assert_eq!(s, 401, "a revoked token must not log in");

    // An admin token, by the token itself (a leaked one pasted in).
    assert_eq!(get(&c, "/api/v1/policy", &admin_token).0, 200);
    c.block_on(admin::token_revoke(&store, &admin_token, 1))
        .unwrap();
    assert_eq!(get(&c, "/api/v1/policy", &admin_token).0, 401);

    // A host, by name: every token of it; and the installation cannot
    // enrol its way back, not even with its own key.
    assert_eq!(c.send(&host_token, &chain(&mac, 1)).0, 200);
    let said = c
        .block_on(admin::token_revoke(&store, "mac-revoked", 1))
        .unwrap();
    assert!(said.contains("revoked 1 token(s) of host"), "{said}");
    let (s, text) = c.send(&host_token, &chain(&mac, 2)[1..]);
    assert_eq!(s, 401, "{text}");
    assert_eq!(get(&c, "/api/v1/policy", &host_token).0, 401);
    held(&c, &enroll, &mac, Some(KEY_MAC));

    // The enroll token: no more enrolments with it.
    c.block_on(admin::token_revoke(&store, &id_of(&enroll), 1))
        .unwrap();
    let (s, v) = c.try_enroll(&enroll, &host("mac-other"), Some(KEY_MAC));
    assert_eq!(s, 401, "{v}");

    // Revoked tokens stay listed with --all only; revoking twice says so.
    let list = c.block_on(admin::token_list(&store, false)).unwrap();
    assert!(!list.contains(&id_of(&reader)), "{list}");
    let all = c.block_on(admin::token_list(&store, true)).unwrap();
    assert!(all.contains(&id_of(&reader)), "{all}");
    let said = c
        .block_on(admin::token_revoke(&store, &id_of(&reader), 1))
        .unwrap();
    assert!(said.contains("already revoked"), "{said}");
    // What names nothing is an error that says what to give.
    let err = c
        .block_on(admin::token_revoke(&store, "nothing-here", 1))
        .unwrap_err();
    assert!(err.to_string().contains("token list"), "{err}");
}
