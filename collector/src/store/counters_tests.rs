//! The hosts' "needs attention" counters and the fleet's totals
//! (migration 0008, kept by ingest and enrolment) against a full recount
//! of findings, gaps and chain breaks: through findings opening and
//! closing, gaps opening and filling, chain breaks, duplicates,
//! re-enrolment, incident rebuilds, random batches, two stores ingesting
//! at once, and the migration from a 0007 database holding data. On SQLite
//! always, on PostgreSQL when `LENSCAP_TEST_POSTGRES_URL` is set (each test
//! in its own schema, dropped after).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use lenscap_events::GENESIS_HASH;
use sqlx::Connection;

use super::*;

const PG_ENV: &str = "LENSCAP_TEST_POSTGRES_URL";

/// A database for one test: a temporary SQLite file or a fresh schema on
/// the test PostgreSQL.
struct TestDb {
    url: DbUrl,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        TestDb {
            url: DbUrl::Sqlite(dir.path().join("c.db")),
            _dir: Some(dir),
            pg: None,
        }
    }

    async fn postgres(test: &str) -> Option<TestDb> {
        let Ok(base) = std::env::var(PG_ENV) else {
            eprintln!("SKIPPED {test} on PostgreSQL: {PG_ENV} is not set");
            return None;
        };
        let mut rnd = [0u8; 6];
        getrandom::fill(&mut rnd).unwrap();
        let schema = format!("lc_{test}_{}", hex::encode(rnd));
        pg_exec(&base, &format!("CREATE SCHEMA {schema}")).await;
        let sep = if base.contains('?') { '&' } else { '?' };
        Some(TestDb {
            url: DbUrl::Postgres(format!("{base}{sep}options[search_path]={schema}")),
            _dir: None,
            pg: Some((base, schema)),
        })
    }

    /// Every database this run can test: SQLite, and PostgreSQL if set.
    async fn all(test: &str) -> Vec<TestDb> {
        let mut dbs = vec![TestDb::sqlite()];
        dbs.extend(TestDb::postgres(test).await);
        dbs
    }

    async fn open(&self) -> Store {
        Store::open(&self.url).await.unwrap()
    }

    async fn drop_schema(self) {
        if let Some((base, schema)) = &self.pg {
            pg_exec(base, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
        }
    }
}

async fn pg_exec(url: &str, sql: &str) {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

async fn enroll(store: &Store, name: &str) -> i64 {
    let host = lenscap_events::Host {
        hostname: name.into(),
        hardware_uuid: Some(format!("uuid-{name}")),
        serial: None,
        machine_id: None,
    };
    let identity = host.identity();
    let claim = EnrollClaim {
        identity: &identity,
        host: &host,
        agent_version: "1",
        key_hash: Some(format!("key-{name}")),
        peer: None,
    };
    match store
        .enroll(&claim, &format!("tok-{name}-{}", rand_u64()), 0)
        .await
        .unwrap()
    {
        EnrollOutcome::Enrolled { host_id } | EnrollOutcome::Reenrolled { host_id, .. } => host_id,
        other => panic!("{other:?}"),
    }
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    u64::from_le_bytes(b)
}

/// Event `seq` of a clean chain (hash "h<seq>"), or a finding about
/// `finding` (open or closed) when given.
fn event(uid: &str, seq: i64, finding: Option<(&str, bool)>) -> IngestItem {
    IngestItem {
        uid: uid.into(),
        seq,
        time: seq,
        kind: if finding.is_some() {
            "detection_finding"
        } else {
            "agent_health"
        },
        finding_kind: None,
        verdict: finding.map(|_| "remediate"),
        rule: None,
        severity: finding.map(|_| "high"),
        hash: format!("h{seq}"),
        prev_hash: if seq == 1 {
            GENESIS_HASH.to_string()
        } else {
            format!("h{}", seq - 1)
        },
        body: "{}".into(),
        meta: HostMeta {
            hostname: format!("host-{uid}"),
            agent_version: "1".into(),
            mode: "remediate",
        },
        finding: finding.map(|(uid, open)| FindingUpdate {
            finding_uid: uid.into(),
            open,
            verdict: "remediate",
            severity: "high",
            rule: None,
            title: "t".into(),
        }),
    }
}

/// A host's counters: (open findings, gaps, missing events, chain breaks,
/// needs attention).
type HostCounts = (i64, i64, i64, i64, bool);

/// Counted from the rows themselves, the slow way.
#[derive(Debug, PartialEq, Eq)]
struct Recount {
    counts: FleetCounts,
    events: i64,
    hosts: BTreeMap<i64, HostCounts>,
}

async fn recount(store: &Store) -> Recount {
    let rows: Vec<(i64, i64, i64, i64, i64, i64)> = dispatch!(store, pool => {
        sqlx::query_as(
            "SELECT h.id,
                (SELECT COUNT(*) FROM events e WHERE e.host_id = h.id),
                (SELECT COUNT(*) FROM findings f WHERE f.host_id = h.id AND f.is_open),
                (SELECT COUNT(*) FROM gaps g WHERE g.host_id = h.id),
                (SELECT CAST(COALESCE(SUM(g.last_seq - g.first_seq + 1), 0) AS BIGINT)
                   FROM gaps g WHERE g.host_id = h.id),
                (SELECT COUNT(*) FROM chain_breaks b WHERE b.host_id = h.id)
             FROM hosts h ORDER BY h.id",
        )
        .fetch_all(pool)
        .await
        .unwrap()
    });
    let mut counts = FleetCounts::default();
    let mut events = 0;
    let mut hosts = BTreeMap::new();
    for (id, ev, open, gaps, missing, breaks) in rows {
        let attention = open > 0 || gaps > 0 || breaks > 0;
        counts.hosts += 1;
        counts.attention += i64::from(attention);
        counts.open_findings += open;
        counts.hosts_with_gaps += i64::from(gaps > 0);
        counts.missing_events += missing;
        counts.chain_breaks += breaks;
        events += ev;
        hosts.insert(id, (open, gaps, missing, breaks, attention));
    }
    Recount {
        counts,
        events,
        hosts,
    }
}

/// What the maintained counters say, through the readers' own calls.
async fn maintained(store: &Store) -> Recount {
    let counts = store.fleet_counts().await.unwrap();
    let (hosts_total, events) = store.totals().await.unwrap();
    assert_eq!(hosts_total, counts.hosts);
    // Walked two at a time, through the cursor, so paging over the
    // partial index is checked too.
    let mut attention = BTreeSet::new();
    let mut cursor = None;
    loop {
        let page = store
            .host_page(&HostFilter {
                attention: true,
                limit: 2,
                cursor,
                ..HostFilter::default()
            })
            .await
            .unwrap();
        for h in &page.hosts {
            assert!(attention.insert(h.id), "host {} listed twice", h.id);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let hosts = store
        .hosts()
        .await
        .unwrap()
        .into_iter()
        .map(|h| {
            let flagged = attention.contains(&h.id);
            (
                h.id,
                (
                    h.open_findings,
                    h.gaps,
                    h.missing_events,
                    h.chain_breaks,
                    flagged,
                ),
            )
        })
        .collect();
    Recount {
        counts,
        events,
        hosts,
    }
}

async fn check(store: &Store, when: &str) -> Recount {
    let want = recount(store).await;
    assert_eq!(
        maintained(store).await,
        want,
        "{} after {when}",
        store.backend()
    );
    want
}

async fn send(store: &Store, host: i64, items: Vec<IngestItem>) -> IngestOutcome {
    store.ingest(host, items, 1).await.unwrap()
}

#[tokio::test]
async fn counters_follow_findings_gaps_breaks_and_reenrolment() {
    for db in TestDb::all("scenario").await {
        let store = db.open().await;
        let a = enroll(&store, "a").await;
        let b = enroll(&store, "b").await;
        let c = enroll(&store, "c").await;
        assert_eq!(check(&store, "enrolment").await.counts.hosts, 3);

        // Findings open, then close one at a time.
        send(
            &store,
            a,
            vec![
                event("a1", 1, None),
                event("a2", 2, Some(("f1", true))),
                event("a3", 3, Some(("f2", true))),
            ],
        )
        .await;
        let r = check(&store, "two findings opened").await;
        assert_eq!(r.hosts[&a], (2, 0, 0, 0, true));
        assert_eq!((r.counts.attention, r.counts.open_findings), (1, 2));
        send(&store, a, vec![event("a4", 4, Some(("f1", false)))]).await;
        assert_eq!(
            check(&store, "one closed").await.hosts[&a],
            (1, 0, 0, 0, true)
        );
        // An older event of f2 arriving late (a gap at 5 filled by it)
        // neither reopens nor closes it.
        send(&store, a, vec![event("a6", 6, Some(("f2", false)))]).await;
        let r = check(&store, "f2 closed past a gap").await;
        assert_eq!(r.hosts[&a], (0, 1, 1, 0, true));
        send(&store, a, vec![event("a5", 5, Some(("f2", true)))]).await;
        let r = check(&store, "a stale open filled the gap").await;
        assert_eq!(r.hosts[&a], (0, 0, 0, 0, false));
        assert_eq!(r.counts.attention, 0);

        // A gap opens, splits, shrinks and closes.
        send(
            &store,
            b,
            vec![
                event("b1", 1, None),
                event("b2", 2, None),
                event("b6", 6, None),
            ],
        )
        .await;
        let r = check(&store, "a gap opened").await;
        assert_eq!(r.hosts[&b], (0, 1, 3, 0, true));
        assert_eq!((r.counts.hosts_with_gaps, r.counts.missing_events), (1, 3));
        send(&store, b, vec![event("b4", 4, None)]).await;
        assert_eq!(
            check(&store, "the gap split").await.hosts[&b],
            (0, 2, 2, 0, true)
        );
        send(&store, b, vec![event("b3", 3, None)]).await;
        assert_eq!(
            check(&store, "one part filled").await.hosts[&b],
            (0, 1, 1, 0, true)
        );
        send(&store, b, vec![event("b5", 5, None)]).await;
        let r = check(&store, "the gap closed").await;
        assert_eq!(r.hosts[&b], (0, 0, 0, 0, false));
        assert_eq!(r.counts.hosts_with_gaps, 0);

        // Chain breaks: a reused seq, then a wrong prev_hash.
        send(
            &store,
            c,
            (1..=3).map(|s| event(&format!("c{s}"), s, None)).collect(),
        )
        .await;
        send(&store, c, vec![event("forged", 2, None)]).await;
        assert_eq!(
            check(&store, "a reused seq").await.hosts[&c],
            (0, 0, 0, 1, true)
        );
        let mut bad = event("c4", 4, None);
        bad.prev_hash = "not-h3".into();
        send(&store, c, vec![bad]).await;
        let r = check(&store, "a wrong prev_hash").await;
        assert_eq!(r.hosts[&c], (0, 0, 0, 2, true));
        assert_eq!(r.counts.chain_breaks, 2);

        // The same batch again changes nothing.
        let again = send(&store, b, vec![event("b5", 5, None), event("b6", 6, None)]).await;
        assert_eq!(again.accepted, 0);
        let before = check(&store, "a repeated batch").await;

        // Re-enrolment keeps the host's row and its counters; rebuilding
        // incidents does not touch them either.
        assert_eq!(enroll(&store, "c").await, c);
        store.rebuild_incidents().await.unwrap();
        assert_eq!(check(&store, "re-enrolment and a rebuild").await, before);
        assert_eq!(before.counts.hosts, 3);
        assert_eq!(before.events, 6 + 6 + 5);

        store.close().await;
        db.drop_schema().await;
    }
}

/// A small deterministic generator (xorshift64*), so a failure names its
/// seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An event the random test sent: uid, seq, and the finding it is about
/// (finding uid, open).
type Sent = (String, i64, Option<(String, bool)>);

/// Random batches for `hosts`: in-order events, jumps ahead (gaps), late
/// events filling gaps, reused seqs, altered prev_hashes, repeats of
/// stored events, and findings opening and closing in any order. The
/// counters must equal a recount after every batch.
async fn random_batches(store: &Store, hosts: &[i64], seed: u64, batches: usize) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    // Per host: the highest seq sent, seqs not sent yet below it, and
    // events sent (to repeat).
    let mut top: BTreeMap<i64, i64> = hosts.iter().map(|h| (*h, 0)).collect();
    let mut missing: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    let mut sent: BTreeMap<i64, Vec<Sent>> = BTreeMap::new();
    let mut n = 0u64;
    for step in 0..batches {
        let host = hosts[rng.below(hosts.len() as u64) as usize];
        let mut batch = Vec::new();
        for _ in 0..1 + rng.below(5) {
            n += 1;
            let uid = format!("{seed}-{n}");
            let finding =
                (rng.below(2) == 0).then(|| (format!("f{}", rng.below(4)), rng.below(2) == 0));
            let gaps = missing.entry(host).or_default();
            let seq = match rng.below(10) {
                // A late event filling a gap.
                0 | 1 if !gaps.is_empty() => {
                    let pick = rng.below(gaps.len() as u64) as usize;
                    let s = *gaps.iter().nth(pick).unwrap();
                    gaps.remove(&s);
                    s
                }
                // A reused seq under a new uid.
                2 if top[&host] > 0 => 1 + rng.below(top[&host] as u64) as i64,
                // A repeat of something stored.
                3 if sent.get(&host).is_some_and(|v| !v.is_empty()) => {
                    let v = &sent[&host];
                    let (uid, seq, f) = v[rng.below(v.len() as u64) as usize].clone();
                    batch.push(event(&uid, seq, f.as_ref().map(|(u, o)| (u.as_str(), *o))));
                    continue;
                }
                // Jump ahead, leaving a gap.
                4 => {
                    let t = top.get_mut(&host).unwrap();
                    let skip = 1 + rng.below(3) as i64;
                    gaps.extend(*t + 1..=*t + skip);
                    *t += skip + 1;
                    *t
                }
                _ => {
                    let t = top.get_mut(&host).unwrap();
                    *t += 1;
                    *t
                }
            };
            let mut e = event(&uid, seq, finding.as_ref().map(|(u, o)| (u.as_str(), *o)));
            if rng.below(15) == 0 {
                e.prev_hash = "altered".into();
            }
            sent.entry(host).or_default().push((uid, seq, finding));
            batch.push(e);
        }
        send(store, host, batch).await;
        check(store, &format!("seed {seed}, batch {step}")).await;
    }
}

#[tokio::test]
async fn counters_equal_a_recount_after_random_batches() {
    for db in TestDb::all("random").await {
        let seeds: &[u64] = if db.pg.is_some() {
            &[1, 2]
        } else {
            &[1, 2, 3, 4, 5]
        };
        for seed in seeds {
            let store = db.open().await;
            let mut hosts = Vec::new();
            for i in 0..4 {
                hosts.push(enroll(&store, &format!("r{seed}-{i}")).await);
            }
            random_batches(&store, &hosts, *seed, 60).await;
            store.close().await;
        }
        db.drop_schema().await;
    }
}

/// Two stores on one database — two collectors — ingesting at once, into
/// the same hosts and into different ones: no increment is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_stay_exact_under_concurrent_ingest() {
    for db in TestDb::all("concurrent").await {
        let one = db.open().await;
        let two = db.open().await;
        let mut hosts = Vec::new();
        for i in 0..8 {
            hosts.push(enroll(if i % 2 == 0 { &one } else { &two }, &format!("k{i}")).await);
        }
        let mut tasks = Vec::new();
        for (i, host) in hosts.iter().enumerate() {
            for (k, store) in [&one, &two].into_iter().enumerate() {
                let store = store.clone();
                let host = *host;
                tasks.push(tokio::spawn(async move {
                    // Each store sends every other run of seqs of the
                    // host (so gaps open on one and close from the other),
                    // findings opening and closing, and one reused seq.
                    for b in 0..10i64 {
                        if (b % 2) as usize != k {
                            continue;
                        }
                        let items: Vec<IngestItem> = (1..=5)
                            .map(|j| {
                                let seq = b * 5 + j;
                                let f = format!("f{}", seq % 3);
                                event(
                                    &format!("{i}-{seq}"),
                                    seq,
                                    (j % 2 == 0).then_some((f.as_str(), seq % 4 != 0)),
                                )
                            })
                            .collect();
                        store.ingest(host, items, 1).await.unwrap();
                    }
                    if k == 1 && i % 3 == 0 {
                        store
                            .ingest(host, vec![event(&format!("{i}-forged"), 3, None)], 1)
                            .await
                            .unwrap();
                    }
                }));
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        let r = check(&one, "concurrent ingest").await;
        assert_eq!(r.counts.hosts, 8);
        assert_eq!(r.counts.missing_events, 0);
        assert_eq!(r.counts.chain_breaks, 3);
        assert_eq!(r.events, 8 * 50 + 3);
        one.close().await;
        two.close().await;
        db.drop_schema().await;
    }
}

/// A database at migration 0007 with hosts, findings, gaps and chain
/// breaks: 0008 fills the counters and totals to equal a recount, and
/// ingest and enrolment keep them so.
#[tokio::test]
async fn migration_0008_fills_the_counters_for_stored_data() {
    for db in TestDb::all("migration").await {
        let data = [
            "INSERT INTO hosts (identity_field, identity_value, hostname, enrolled_at, max_seq, event_count)
             VALUES ('hardware_uuid', 'uuid-m1', 'm1', 0, 6, 1), ('hardware_uuid', 'uuid-m2', 'm2', 0, 9, 1),
                    ('hardware_uuid', 'uuid-m3', 'm3', 0, 2, 0), ('hardware_uuid', 'uuid-m4', 'm4', 0, 1, 0)",
            // The events the counts above say are stored (the rest of the
            // hosts' history is not needed here).
            "INSERT INTO events (uid, host_id, seq, time, received_at, kind, hash, prev_hash, body)
             SELECT 'e1', id, 6, 6, 0, 'agent_health', 'h6', 'h5', '{}' FROM hosts WHERE hostname = 'm1'
             UNION ALL SELECT 'e2', id, 9, 9, 0, 'agent_health', 'h9', 'h8', '{}' FROM hosts WHERE hostname = 'm2'",
            "INSERT INTO findings (host_id, finding_uid, last_seq, is_open, verdict, severity, rule, title, updated_at)
             SELECT id, 'f1', 3, TRUE, 'remediate', 'high', NULL, 't', 0 FROM hosts WHERE hostname = 'm1'
             UNION ALL SELECT id, 'f2', 4, FALSE, 'remediate', 'high', NULL, 't', 0 FROM hosts WHERE hostname = 'm1'
             UNION ALL SELECT id, 'f3', 5, TRUE, 'remediate', 'high', NULL, 't', 0 FROM hosts WHERE hostname = 'm1'
             UNION ALL SELECT id, 'f1', 2, FALSE, 'remediate', 'high', NULL, 't', 0 FROM hosts WHERE hostname = 'm4'",
            "INSERT INTO gaps (host_id, first_seq, last_seq, detected_at)
             SELECT id, 3, 5, 0 FROM hosts WHERE hostname = 'm2'
             UNION ALL SELECT id, 8, 8, 0 FROM hosts WHERE hostname = 'm2'",
            "INSERT INTO chain_breaks (host_id, seq, kind, uid, detected_at)
             SELECT id, 2, 'seq_reused', 'x', 0 FROM hosts WHERE hostname = 'm3'",
        ];
        at_migration(&db, 7, &data).await;
        let store = db.open().await;
        let r = check(&store, "migration 0008").await;
        assert_eq!(
            r.counts,
            FleetCounts {
                hosts: 4,
                attention: 3,
                open_findings: 2,
                hosts_with_gaps: 1,
                missing_events: 4,
                chain_breaks: 1,
            }
        );
        assert_eq!(store.totals().await.unwrap(), (4, 2));
        assert_eq!(
            r.hosts.values().copied().collect::<Vec<_>>(),
            vec![
                (2, 0, 0, 0, true),
                (0, 2, 4, 0, true),
                (0, 0, 0, 1, true),
                (0, 0, 0, 0, false)
            ]
        );

        // And they move on from there: m2's gaps filled, a new host.
        let m2 = *r.hosts.keys().nth(1).unwrap();
        send(
            &store,
            m2,
            (3..=5)
                .chain([8])
                .map(|s| event(&format!("m2-{s}"), s, None))
                .collect(),
        )
        .await;
        let n = enroll(&store, "after").await;
        send(&store, n, vec![event("n1", 1, Some(("g", true)))]).await;
        let (hosts, events) = store.totals().await.unwrap();
        assert_eq!((hosts, events), (5, 2 + 4 + 1));
        let counts = store.fleet_counts().await.unwrap();
        assert_eq!(
            (
                counts.attention,
                counts.hosts_with_gaps,
                counts.missing_events,
                counts.open_findings
            ),
            (3, 0, 0, 3)
        );
        store.close().await;
        db.drop_schema().await;
    }
}

#[tokio::test]
async fn the_migration_makes_every_totals_slot() {
    let db = TestDb::sqlite();
    let store = db.open().await;
    let slots: i64 = dispatch!(&store, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM fleet_totals WHERE slot >= 0 AND slot < $1")
            .bind(ingest::TOTALS_SLOTS)
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(slots, ingest::TOTALS_SLOTS);
    store.close().await;
}

#[test]
fn open_delta_and_fleet_change() {
    use ingest::{fleet_change, open_delta};
    assert_eq!(open_delta(None, 5, true), 1);
    assert_eq!(open_delta(None, 5, false), 0);
    assert_eq!(open_delta(Some((true, 4)), 5, false), -1);
    assert_eq!(open_delta(Some((false, 4)), 5, true), 1);
    assert_eq!(open_delta(Some((true, 6)), 5, false), 0, "an older event");
    assert_eq!(fleet_change((1, 0, 0), (1, 0, 0)), (1, 0));
    assert_eq!(fleet_change((0, 0, 0), (-1, 0, 0)), (-1, 0));
    assert_eq!(fleet_change((0, 1, 0), (-1, 1, 0)), (0, 1));
    assert_eq!(fleet_change((0, 0, 1), (0, -2, 1)), (0, -1));
    assert_eq!(fleet_change((2, 3, 0), (1, 1, 0)), (0, 0));
}

/// A database at migration 0008 holding an incident whose events were
/// stored out of seq order (ids 1, 2, 3 with seqs 3, 1, 2): 0009 copies
/// each membership's seq, and a page of the incident walks them in the
/// host's order, the cursor going on where the page stopped.
#[tokio::test]
async fn migration_0009_keeps_an_incidents_events_in_seq_order() {
    for db in TestDb::all("migration9").await {
        let data = [
            "INSERT INTO hosts (identity_field, identity_value, hostname, enrolled_at, max_seq, event_count)
             VALUES ('hardware_uuid', 'uuid-i1', 'i1', 0, 3, 3)",
            "INSERT INTO events (uid, host_id, seq, time, received_at, kind, hash, prev_hash, body)
             SELECT 'e3', id, 3, 30, 0, 'agent_health', 'h3', 'h2', '{}' FROM hosts WHERE hostname = 'i1'",
            "INSERT INTO events (uid, host_id, seq, time, received_at, kind, hash, prev_hash, body)
             SELECT 'e1', id, 1, 10, 0, 'agent_health', 'h1', 'h0', '{}' FROM hosts WHERE hostname = 'i1'",
            "INSERT INTO events (uid, host_id, seq, time, received_at, kind, hash, prev_hash, body)
             SELECT 'e2', id, 2, 20, 0, 'agent_health', 'h2', 'h1', '{}' FROM hosts WHERE hostname = 'i1'",
            "INSERT INTO incidents (id, host_id, title, state, severity, severity_rank, name, first_time,
                 last_time, findings, open_findings, steps_done, steps_failed, steps_would, restores,
                 quarantined, event_count)
             SELECT 5, id, 't', 'open', 'high', 3, 'n', 10, 30, 1, 1, 0, 0, 0, 0, 0, 3 FROM hosts WHERE hostname = 'i1'",
            "INSERT INTO incident_events (incident_id, event_id) SELECT 5, id FROM events",
        ];
        at_migration(&db, 8, &data).await;
        let store = db.open().await;
        let (_, first, next) = store.incident(5, None, 2).await.unwrap().unwrap();
        let seqs: Vec<i64> = first.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2]);
        let (_, rest, end) = store.incident(5, next, 2).await.unwrap().unwrap();
        let seqs: Vec<i64> = rest.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [3]);
        assert!(end.is_none());
        store.close().await;
        db.drop_schema().await;
    }
}

/// Bring `db` to migration `n` only, then run `data` (rows an older
/// collector would have stored), for the tests of the migrations after it.
async fn at_migration(db: &TestDb, n: usize, data: &[&'static str]) {
    match &db.url {
        DbUrl::Sqlite(path) => {
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(
                    sqlx::sqlite::SqliteConnectOptions::new()
                        .filename(path)
                        .create_if_missing(true),
                )
                .await
                .unwrap();
            migrator(&SQLITE_MIGRATIONS[..n]).run(&pool).await.unwrap();
            for sql in data {
                sqlx::query(*sql).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
        DbUrl::Postgres(url) => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .unwrap();
            migrator(&POSTGRES_MIGRATIONS[..n])
                .run(&pool)
                .await
                .unwrap();
            for sql in data {
                sqlx::query(*sql).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
    }
}
