//! The `finding_kind` column and filter, on SQLite and (with
//! LENSCAP_TEST_POSTGRES_URL) PostgreSQL: filled at ingest, filtered by
//! `GET /api/v1/events?finding_kind=` and the exports, shown in the CSV,
//! refusing values it does not know, and added in place to a database
//! created before the column existed, whose stored findings it backfills.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::borrow::Cow;

use common::{Collector, Db, all_events, chain, host, host_health};
use lenscap_collector::store::Role;
use lenscap_events::{Event, Host, Sha256Hex, canonical_json, samples};
use sqlx::SqlStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

on_both_databases! {
    finding_kind_filters_events_and_exports => filters;
    a_database_from_before_finding_kind_is_upgraded_in_place => upgrade;
}

fn send_all(c: &Collector, token: &str, events: &[Event]) {
    for batch in events.chunks(1000) {
        let (s, text) = c.send(token, batch);
        assert_eq!(s, 200, "{text}");
    }
}

/// `payload.finding.kind` of each event (`None` for other events).
fn finding_kinds(events: &[serde_json::Value]) -> Vec<Option<&str>> {
    events
        .iter()
        .map(|e| e["payload"]["finding"]["kind"].as_str())
        .collect()
}

fn filters(db: &Db) {
    let c = Collector::start(db);
    let reader = c.token(Role::Reader);
    // jdoe-air: a grant and a camera session (start, end) among health
    // events; jdoe-mbp: a listener finding; noisy-mac: 400 listener
    // findings, newer than the camera events.
    let air_token = c.enroll(&samples::camera_host());
    send_all(&c, &air_token, &samples::docs_camera_chain());
    let mbp_token = c.enroll(&samples::host());
    send_all(&c, &mbp_token, &samples::docs_chain());
    let noisy = host("noisy-mac");
    let noisy_token = c.enroll(&noisy);
    send_all(&c, &noisy_token, &chain(&noisy, 400));

    let uses = all_events(&c, &reader, "finding_kind=camera_use");
    assert_eq!(finding_kinds(&uses), [Some("camera_use"); 2]);
    assert!(uses.iter().all(|e| e["host"]["hostname"] == "jdoe-air"));
    let grants = all_events(&c, &reader, "finding_kind=camera_grant");
    assert_eq!(finding_kinds(&grants), [Some("camera_grant")]);
    // Comma-separated: either kind, newest first, and nothing else.
    let camera = all_events(&c, &reader, "finding_kind=camera_grant,camera_use");
    assert_eq!(
        finding_kinds(&camera),
        [Some("camera_use"), Some("camera_use"), Some("camera_grant")]
    );
    // Combined with the other filters.
    assert_eq!(
        all_events(&c, &reader, "finding_kind=camera_use&verdict=report").len(),
        2
    );
    assert!(all_events(&c, &reader, "finding_kind=camera_use&verdict=allow").is_empty());
    assert_eq!(
        all_events(&c, &reader, "finding_kind=camera_use&host=jdoe-mbp").len(),
        0
    );
    assert_eq!(
        all_events(&c, &reader, "finding_kind=camera_use&kind=agent_health").len(),
        0
    );
    let listeners = all_events(&c, &reader, "finding_kind=listener");
    assert_eq!(listeners.len(), 1 + 200, "jdoe-mbp's and noisy-mac's");
    assert!(
        finding_kinds(&listeners)
            .iter()
            .all(|k| *k == Some("listener"))
    );
    assert!(all_events(&c, &reader, "finding_kind=persistence").is_empty());
    // Paging through the filter: every camera event once.
    let page = c.get_json(
        "/api/v1/events?finding_kind=camera_use,camera_grant&limit=2",
        &reader,
    );
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    let next = page["next_cursor"].as_str().unwrap();
    let rest = c.get_json(
        &format!("/api/v1/events?finding_kind=camera_use,camera_grant&limit=2&cursor={next}"),
        &reader,
    );
    assert_eq!(
        finding_kinds(rest["events"].as_array().unwrap()),
        [Some("camera_grant")]
    );
    assert!(rest["next_cursor"].is_null());

    // Unknown values and SQL-shaped input: 400, saying what is accepted,
    // and nothing lost.
    for bad in [
        "camera",
        "CAMERA_USE",
        "camera_use,",
        "camera_use%27%20OR%20%271%27%3D%271",
        "camera_use%27%3B%20DROP%20TABLE%20events%3B%20--",
        "",
    ] {
        for route in [
            "/api/v1/events",
            "/api/v1/export.csv",
            "/api/v1/export.ndjson",
        ] {
            let (s, text) = c.http.get(
                &c.url(&format!("{route}?finding_kind={bad}")),
                Some(&reader),
            );
            assert_eq!(s, 400, "{route} {bad}: {text}");
            assert!(text.contains("unknown finding_kind"), "{text}");
            assert!(
                text.contains("listener, persistence, camera_grant, camera_use"),
                "{text}"
            );
        }
    }
    assert_eq!(all_events(&c, &reader, "").len(), 7 + 4 + 400);

    // CSV: the finding kind in the last column, filtered.
    let (s, csv) = c.http.get(
        &c.url("/api/v1/export.csv?finding_kind=camera_use,camera_grant"),
        Some(&reader),
    );
    assert_eq!(s, 200, "{csv}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "time,host,seq,kind,verdict,severity,rule,uid,message,finding_kind,integrity"
    );
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[1].ends_with(",camera_use,ok"), "{}", lines[1]);
    assert!(lines[2].ends_with(",camera_use,ok"), "{}", lines[2]);
    assert!(lines[3].ends_with(",camera_grant,ok"), "{}", lines[3]);
    // Other events: an empty finding_kind column.
    let (_, csv) = c.http.get(
        &c.url("/api/v1/export.csv?host=jdoe-air&kind=agent_health"),
        Some(&reader),
    );
    let lines: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines.iter().all(|l| l.ends_with(",,ok")), "{csv}");

    // NDJSON honours the filter too.
    let (s, ndjson) = c.http.get(
        &c.url("/api/v1/export.ndjson?finding_kind=camera_use"),
        Some(&reader),
    );
    assert_eq!(s, 200);
    let exported: Vec<serde_json::Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(finding_kinds(&exported), [Some("camera_use"); 2]);
}

/// The schema as the collector made it before `finding_kind`: migration 1
/// only, with its checksum, so the collector takes the database for its
/// own and applies only what is new.
fn old_migrator(db: &Db) -> Migrator {
    let sql = if db.url.starts_with("sqlite:") {
        include_str!("../src/store/migrations/sqlite/0001_init.sql")
    } else {
        include_str!("../src/store/migrations/postgres/0001_init.sql")
    };
    Migrator::with_migrations(vec![Migration::new(
        1,
        Cow::Borrowed("init"),
        MigrationType::Simple,
        SqlStr::from_static(sql),
        false,
    )])
}

/// Rows as the old collector stored them: one host, its events chained.
const INSERT_HOST: &str = "INSERT INTO hosts (identity_field, identity_value, hostname, hardware_uuid, serial, machine_id, enrolled_at, agent_version, max_seq, last_hash, event_count)
     VALUES ($1, $2, $3, $4, $5, $6, 0, '0.1.0', $7, $8, $9) RETURNING id";
const INSERT_EVENT: &str = "INSERT INTO events (uid, host_id, seq, time, received_at, kind, verdict, rule, severity, hash, prev_hash, body)
     VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9, $10, $11)";

/// Create the old schema in `db` and store `hosts`' events there.
fn create_old_database(db: &Db, hosts: &[(Host, Vec<Event>)]) {
    macro_rules! fill {
        ($pool:expr) => {{
            let pool = $pool;
            old_migrator(db).run(&pool).await.unwrap();
            for (h, events) in hosts {
                let last = events.last().unwrap();
                let id = h.identity();
                let host_id: i64 = sqlx::query_scalar(INSERT_HOST)
                    .bind(id.field)
                    .bind(&id.value)
                    .bind(&h.hostname)
                    .bind(&h.hardware_uuid)
                    .bind(&h.serial)
                    .bind(&h.machine_id)
                    .bind(last.seq as i64)
                    .bind(last.hash().unwrap().to_string())
                    .bind(events.len() as i64)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                for e in events {
                    let value = serde_json::to_value(e).unwrap();
                    let body = canonical_json(&value);
                    let p = &value["payload"]["finding"];
                    sqlx::query(INSERT_EVENT)
                        .bind(e.uid.to_string())
                        .bind(host_id)
                        .bind(e.seq as i64)
                        .bind(e.time)
                        .bind(e.kind().as_str())
                        .bind(p["verdict"].as_str())
                        .bind(p["rule"].as_str())
                        .bind(p["severity"].as_str())
                        .bind(Sha256Hex::of_bytes(body.as_bytes()).to_string())
                        .bind(e.prev_hash.to_string())
                        .bind(&body)
                        .execute(&pool)
                        .await
                        .unwrap();
                }
            }
            pool.close().await;
        }};
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if let Some(path) = db.url.strip_prefix("sqlite:") {
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true);
            fill!(sqlx::SqlitePool::connect_with(opts).await.unwrap());
        } else {
            fill!(sqlx::PgPool::connect(&db.url).await.unwrap());
        }
    });
}

fn upgrade(db: &Db) {
    let air = samples::camera_host();
    let air_events = samples::docs_camera_chain();
    let mbp = samples::host();
    // Stored before the upgrade: jdoe-air's first three events (two health
    // events and the camera grant) and all of jdoe-mbp's (a listener).
    create_old_database(
        db,
        &[
            (air.clone(), air_events[..3].to_vec()),
            (mbp.clone(), samples::docs_chain()),
        ],
    );

    let c = Collector::start(db);
    let reader = c.token(Role::Reader);
    // Still readable, as before.
    let all = all_events(&c, &reader, "");
    assert_eq!(all.len(), 3 + 4);
    assert_eq!(
        all_events(&c, &reader, "host=jdoe-air&kind=detection_finding").len(),
        1
    );
    // Stored findings were given their kind.
    let grants = all_events(&c, &reader, "finding_kind=camera_grant");
    assert_eq!(finding_kinds(&grants), [Some("camera_grant")]);
    assert_eq!(grants[0]["seq"], 3);
    let listeners = all_events(&c, &reader, "finding_kind=listener");
    assert_eq!(finding_kinds(&listeners), [Some("listener")]);
    assert!(all_events(&c, &reader, "finding_kind=camera_use").is_empty());
    let (_, csv) = c
        .http
        .get(&c.url("/api/v1/export.csv?host=jdoe-air"), Some(&reader));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[1].ends_with(",camera_grant,ok"), "{csv}");
    assert!(
        lines[2].ends_with(",,ok") && lines[3].ends_with(",,ok"),
        "{csv}"
    );
    // Incidents did not exist when these events were stored: the upgrade
    // queued them, and the collector grouped them (jdoe-mbp's listener,
    // killed and quarantined).
    let store = c.store();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while c.block_on(store.incidents_pending()).unwrap() > 0 {
        assert!(std::time::Instant::now() < deadline, "never grouped");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let incidents = c.get_json("/api/v1/incidents?host=jdoe-mbp", &reader);
    let list = incidents["incidents"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{incidents}");
    assert_eq!(list[0]["state"], "contained");
    assert_eq!(list[0]["events"], 3);
    assert_eq!(
        c.get_json("/api/v1/incidents?host=jdoe-air", &reader)["incidents"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "the camera grant is its own incident"
    );

    // jdoe-air enrolls again (same machine, same host; its enrolment of
    // a known identity waits for the admin's approval) and sends the rest
    // of its chain: new findings get their kind, and the chain continues
    // across the upgrade without a gap or break.
    let token = c.enroll_approved(&air);
    let (s, text) = c.send(&token, &air_events[3..]);
    assert_eq!(s, 200, "{text}");
    let ingest: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(ingest["accepted"], 4, "{text}");
    let uses = all_events(&c, &reader, "finding_kind=camera_use");
    assert_eq!(finding_kinds(&uses), [Some("camera_use"); 2]);
    assert_eq!(
        uses.iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [5, 4]
    );
    assert_eq!(
        all_events(&c, &reader, "host=jdoe-air").len(),
        air_events.len()
    );
    assert_eq!(host_health(&c, &reader, "jdoe-air"), (0, 0, 0));
    c.stop();

    // Opening the upgraded database again changes nothing.
    let c = Collector::start(db);
    let reader = c.token(Role::Reader);
    assert_eq!(
        all_events(&c, &reader, "finding_kind=camera_grant,camera_use").len(),
        3
    );
}
