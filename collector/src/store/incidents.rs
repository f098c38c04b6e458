//! Incidents in the database: grouping queued events, and reading.
//!
//! Ingest queues every event that may belong to an incident
//! (`incident_pending`, in the same transaction that stores it). The
//! grouper ([`Store::group_pending`]) takes queued events in the order
//! they were stored, under a lock row so that collectors sharing one
//! PostgreSQL take turns, and applies `crate::incidents` to each: find the
//! incident owning one of the event's keys, or start one, update its
//! aggregate, record the event and its keys. Grouping is idempotent per
//! event (an event already in an incident is skipped), so a retried turn
//! changes nothing twice. [`Store::rebuild_incidents`] empties the tables
//! and queues every stored event again.
//!
//! Reading never groups: a reader's answer costs the same however long
//! the queue is. Whether an incident holds an untrusted event is asked at
//! read time (a chain break may be found after its event was grouped).

use sqlx::QueryBuilder;

use super::alerts::DESTINATION_COLUMNS;
use super::queries::{MAX_PAGE, UNTRUSTED};
use super::types::*;
use super::{Store, dispatch, dispatch_write};
use crate::incidents::{IncidentRow, facts, severity_rank};

/// The columns of [`IncidentRecord`] for `incidents i JOIN hosts h`.
/// Whether it holds an untrusted event is asked from the host's chain
/// breaks (almost always none) towards its events, not from the
/// incident's events (thousands for a helper that keeps coming back)
/// towards the breaks.
const INCIDENT_COLUMNS: &str =
    "i.id, i.host_id, h.hostname, i.title, i.state, i.severity, i.name, i.what, i.rule,
     i.verdict, i.kinds,
     i.first_time, i.last_time, i.findings, i.open_findings, i.steps_done, i.steps_failed,
     i.steps_would, i.restores, i.quarantined, i.event_count,
     (EXISTS (SELECT 1 FROM chain_breaks b0 WHERE b0.host_id = i.host_id)
      AND EXISTS (SELECT 1 FROM chain_breaks b
                  JOIN events e ON e.host_id = b.host_id AND e.seq = b.seq AND e.uid = b.uid
                  JOIN incident_events ie ON ie.event_id = e.id AND ie.incident_id = i.id
                  WHERE b.host_id = i.host_id)) AS untrusted";

/// PostgreSQL's identity never hands out an id twice.
const INSERT_INCIDENT: &str = "INSERT INTO incidents (host_id, title, state, severity, severity_rank, name, what, rule,
       first_time, last_time, findings, open_findings, steps_done, steps_failed, steps_would, restores, quarantined, event_count, kinds)
     VALUES ($1, '', '', 'info', 1, $2, NULL, NULL, $3, $3, 0, 0, 0, 0, 0, 0, 0, 0, '') RETURNING id";

/// SQLite gives a new row the largest id in the table plus one, so once
/// a rebuild emptied the table it would hand out old incidents' ids again,
/// and an alert queued for an old incident would keep the new one's from
/// being queued (`alert_queue_once`). Ids start above `id_floor`, the
/// largest id any incident or alert used before the rebuild (migration
/// 0007). Two indexed lookups: the table's largest rowid and one row.
const INSERT_INCIDENT_SQLITE: &str = "INSERT INTO incidents (id, host_id, title, state, severity, severity_rank, name, what, rule,
       first_time, last_time, findings, open_findings, steps_done, steps_failed, steps_would, restores, quarantined, event_count, kinds)
     VALUES (MAX(COALESCE((SELECT MAX(id) FROM incidents), 0), (SELECT id_floor FROM incident_lock WHERE id = 1)) + 1,
             $1, '', '', 'info', 1, $2, NULL, NULL, $3, $3, 0, 0, 0, 0, 0, 0, 0, 0, '') RETURNING id";

/// Events per grouping turn: enough that a turn's fixed statements are
/// spread thin, few enough that a turn holds SQLite's writer (which
/// ingest waits for) only briefly.
pub const GROUP_TURN: i64 = 500;

/// Rows per multi-row statement (well under SQLite's 32,766 parameters).
const ROWS_PER_STATEMENT: usize = 500;

/// An alert to queue at the end of a turn.
struct QueuedAlert {
    destination: i64,
    incident: i64,
    state: &'static str,
    event_id: i64,
    body: String,
}

impl Store {
    /// Group up to `max` queued events into incidents, in one transaction.
    /// Returns how many were taken from the queue (0: it is empty).
    ///
    /// The turn works in memory: it reads the queued events, the keys they
    /// name (one statement per host) and the incidents owning those keys
    /// (one statement), walks the events in stored order exactly as one
    /// event at a time would, and then writes each touched incident once,
    /// and the memberships, keys and alerts in multi-row statements. So a
    /// turn costs a handful of statements plus one per incident touched,
    /// not several per event (this runs beside ingest, on SQLite's single
    /// writer).
    pub async fn group_pending(&self, max: i64) -> Result<usize, StoreError> {
        use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
        let insert_incident = match self {
            Store::Sqlite(_) => INSERT_INCIDENT_SQLITE,
            Store::Postgres(_) => INSERT_INCIDENT,
        };
        dispatch_write!(self, pool => {
            let mut tx = pool.begin().await.ctx("grouping incidents")?;
            // Take the turn: an update holds the row (PostgreSQL) or the
            // write lock (SQLite) until commit.
            sqlx::query("UPDATE incident_lock SET turns = turns + 1 WHERE id = 1")
                .execute(&mut *tx)
                .await
                .ctx("grouping incidents")?;
            // The queue's ids first, then those events by id: joined in
            // one statement, PostgreSQL merge-joined the queue with the
            // events' primary key from its start, reading every event
            // stored before the first queued one (0.8 s a turn at
            // 2,000,000 events).
            let ids: Vec<i64> = sqlx::query_scalar(
                "SELECT event_id FROM incident_pending ORDER BY event_id LIMIT $1",
            )
            .bind(max)
            .fetch_all(&mut *tx)
            .await
            .ctx("reading queued events")?;
            let mut queued: Vec<(i64, i64, i64, String, String)> = Vec::with_capacity(ids.len());
            // Each queued event's seq, stored with its membership so an
            // incident's page is a walk of (incident_id, seq, event_id).
            let mut seqs: HashMap<i64, i64> = HashMap::with_capacity(ids.len());
            for chunk in ids.chunks(ROWS_PER_STATEMENT) {
                let mut qb = QueryBuilder::new(
                    "SELECT id, host_id, time, kind, body, seq FROM events WHERE id IN (",
                );
                let mut sep = qb.separated(", ");
                for id in chunk {
                    sep.push_bind(*id);
                }
                qb.push(")");
                let rows: Vec<(i64, i64, i64, String, String, i64)> = qb
                    .build_query_as()
                    .fetch_all(&mut *tx)
                    .await
                    .ctx("reading queued events")?;
                for (id, host_id, time, kind, body, seq) in rows {
                    seqs.insert(id, seq);
                    queued.push((id, host_id, time, kind, body));
                }
            }
            queued.sort_by_key(|q| q.0);
            // Queued ids whose event is gone cannot be grouped; they are
            // dequeued below all the same.
            let taken = ids.len();
            if ids.is_empty() {
                tx.commit().await.ctx("grouping incidents")?;
                return Ok(0);
            }
            // Dequeued by id, not by range: on PostgreSQL an ingest may
            // commit a lower id after this read.
            let mut grouped: HashSet<i64> = HashSet::new();
            for chunk in ids.chunks(ROWS_PER_STATEMENT) {
                let mut qb = QueryBuilder::new("DELETE FROM incident_pending WHERE event_id IN (");
                let mut sep = qb.separated(", ");
                for id in chunk {
                    sep.push_bind(*id);
                }
                qb.push(")");
                qb.build().execute(&mut *tx).await.ctx("grouping incidents")?;
                // Grouping is idempotent per event: one already in an
                // incident is skipped.
                let mut qb = QueryBuilder::new("SELECT event_id FROM incident_events WHERE event_id IN (");
                let mut sep = qb.separated(", ");
                for id in chunk {
                    sep.push_bind(*id);
                }
                qb.push(")");
                let done: Vec<(i64,)> = qb
                    .build_query_as()
                    .fetch_all(&mut *tx)
                    .await
                    .ctx("grouping incidents")?;
                grouped.extend(done.into_iter().map(|(id,)| id));
            }
            // (event_id, host_id, time, facts, body)
            let events: Vec<(i64, i64, i64, crate::incidents::Facts, String)> = queued
                .into_iter()
                .filter(|q| !grouped.contains(&q.0))
                .filter_map(|(event_id, host_id, time, kind, body)| {
                    let f = facts(&kind, &body);
                    (!f.keys.is_empty() || f.starts).then_some((event_id, host_id, time, f, body))
                })
                .collect();

            // The keys these events name that some incident owns already.
            let mut by_host: BTreeMap<i64, BTreeSet<&str>> = BTreeMap::new();
            for (_, host_id, _, f, _) in &events {
                by_host
                    .entry(*host_id)
                    .or_default()
                    .extend(f.lookup_order().map(String::as_str));
            }
            let mut keys: HashMap<(i64, String), (i64, Option<bool>)> = HashMap::new();
            // Every host's keys in one statement per chunk of (host, key)
            // pairs, not one per host: a turn's events come from many
            // hosts, and on PostgreSQL each statement is a round trip.
            let pairs: Vec<(i64, &str)> = by_host
                .iter()
                .flat_map(|(h, names)| names.iter().map(move |k| (*h, *k)))
                .collect();
            for chunk in pairs.chunks(ROWS_PER_STATEMENT) {
                let mut qb = QueryBuilder::new(
                    "SELECT host_id, key, incident_id, is_open FROM incident_keys WHERE (host_id, key) IN (",
                );
                let mut sep = qb.separated(", ");
                for (host_id, key) in chunk {
                    sep.push("(")
                        .push_bind_unseparated(*host_id)
                        .push_unseparated(", ")
                        .push_bind_unseparated(key.to_string())
                        .push_unseparated(")");
                }
                qb.push(")");
                let rows: Vec<(i64, String, i64, Option<bool>)> = qb
                    .build_query_as()
                    .fetch_all(&mut *tx)
                    .await
                    .ctx("grouping incidents")?;
                for (host_id, key, id, open) in rows {
                    keys.insert((host_id, key), (id, open));
                }
            }
            // The incidents owning them.
            let owners: BTreeSet<i64> = keys.values().map(|(id, _)| *id).collect();
            let mut rows: HashMap<i64, IncidentRow> = HashMap::new();
            let owners: Vec<i64> = owners.into_iter().collect();
            for chunk in owners.chunks(ROWS_PER_STATEMENT) {
                let mut qb = QueryBuilder::new(
                    "SELECT id, severity, name, what, rule, verdict, kinds,
                       first_time, last_time, findings, open_findings, steps_done, steps_failed,
                       steps_would, restores, quarantined, event_count
                     FROM incidents WHERE id IN (",
                );
                let mut sep = qb.separated(", ");
                for id in chunk {
                    sep.push_bind(*id);
                }
                qb.push(")");
                let got: Vec<GroupedIncident> = qb
                    .build_query_as()
                    .fetch_all(&mut *tx)
                    .await
                    .ctx("grouping incidents")?;
                for r in got {
                    rows.insert(
                        r.id,
                        IncidentRow {
                            name: r.name,
                            what: r.what,
                            severity: r.severity,
                            rule: r.rule,
                            verdict: r.verdict,
                            kinds: r.kinds,
                            first_time: r.first_time,
                            last_time: r.last_time,
                            findings: r.findings,
                            open_findings: r.open_findings,
                            steps_done: r.steps_done,
                            steps_failed: r.steps_failed,
                            steps_would: r.steps_would,
                            restores: r.restores,
                            quarantined: r.quarantined,
                            events: r.event_count,
                        },
                    );
                }
            }

            // Alert destinations, read once per turn; events up to
            // `quiet` never alert (see the migration).
            let dests: Vec<AlertDestination> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {DESTINATION_COLUMNS} FROM alert_destinations"
            )))
            .fetch_all(&mut *tx)
            .await
            .ctx("reading alert destinations")?;
            let quiet: i64 = if dests.is_empty() {
                i64::MAX
            } else {
                sqlx::query_scalar("SELECT quiet_through FROM alert_quiet WHERE id = 1")
                    .fetch_optional(&mut *tx)
                    .await
                    .ctx("reading alert destinations")?
                    .unwrap_or(0)
            };
            let mut hostnames: HashMap<i64, String> = HashMap::new();

            // Walk the events in stored order, in memory.
            let mut dirty: BTreeMap<i64, i64> = BTreeMap::new(); // incident → host
            let mut members: Vec<(i64, i64)> = Vec::new();
            let mut dirty_keys: BTreeSet<(i64, String)> = BTreeSet::new();
            let mut alerts: Vec<QueuedAlert> = Vec::new();
            let mut alerted: HashSet<(i64, i64, &'static str)> = HashSet::new();
            for (event_id, host_id, time, f, body) in &events {
                let (event_id, host_id, time) = (*event_id, *host_id, *time);
                // The first of the event's keys (most specific first) that
                // has an owner decides.
                let owner: Option<i64> = f
                    .lookup_order()
                    .find_map(|k| keys.get(&(host_id, k.clone())).map(|(id, _)| *id));
                let mut current: Option<(i64, IncidentRow)> =
                    owner.and_then(|id| rows.get(&id).map(|r| (id, r.clone())));
                // A new finding about a program whose incident is over
                // starts the next incident.
                let opens = matches!(&f.finding, Some((_, true)));
                if current.as_ref().is_some_and(|(_, row)| row.closed()) && f.starts && opens {
                    current = None;
                }
                let before = current
                    .as_ref()
                    .map(|(_, r)| (r.state(), severity_rank(&r.severity)));
                let (id, mut row) = match current {
                    Some(c) => c,
                    None if f.starts => {
                        let row = IncidentRow::start(f, time);
                        let id: i64 = sqlx::query_scalar(insert_incident)
                            .bind(host_id)
                            .bind(&row.name)
                            .bind(time)
                            .fetch_one(&mut *tx)
                            .await
                            .ctx("starting an incident")?;
                        (id, row)
                    }
                    None => continue,
                };
                let was_open: Option<bool> = f.finding.as_ref().and_then(|(uid, _)| {
                    keys.get(&(host_id, format!("f:{uid}")))
                        .filter(|(owner, _)| *owner == id)
                        .and_then(|(_, open)| *open)
                });
                row.apply(f, time, was_open);
                // One alert per destination per incident state.
                let after = (row.state(), severity_rank(&row.severity));
                if event_id > quiet && before != Some(after) {
                    if let std::collections::hash_map::Entry::Vacant(slot) = hostnames.entry(host_id) {
                        let name: String =
                            sqlx::query_scalar("SELECT hostname FROM hosts WHERE id = $1")
                                .bind(host_id)
                                .fetch_one(&mut *tx)
                                .await
                                .ctx("queueing alerts")?;
                        slot.insert(name);
                    }
                    let hostname = hostnames.get(&host_id).map(String::as_str).unwrap_or("");
                    let wanted: Vec<i64> = dests
                        .iter()
                        .filter(|d| crate::alerts::wants(d, &row, hostname))
                        .map(|d| d.id)
                        .filter(|d| alerted.insert((*d, id, after.0)))
                        .collect();
                    if !wanted.is_empty() {
                        let payload =
                            crate::alerts::payload(id, hostname, host_id, &row, event_id, body);
                        for d in wanted {
                            alerts.push(QueuedAlert {
                                destination: d,
                                incident: id,
                                state: after.0,
                                event_id,
                                body: payload.clone(),
                            });
                        }
                    }
                }
                members.push((id, event_id));
                for key in &f.keys {
                    let is_open = match &f.finding {
                        Some((uid, open)) if key.strip_prefix("f:") == Some(uid.as_str()) => {
                            Some(*open)
                        }
                        _ => None,
                    };
                    keys.insert((host_id, key.clone()), (id, is_open));
                    dirty_keys.insert((host_id, key.clone()));
                }
                rows.insert(id, row);
                dirty.insert(id, host_id);
            }

            // Write what changed: each incident once, in multi-row
            // upserts of rows that exist (one statement per 40, not one
            // per incident: a round trip each on PostgreSQL).
            let changed: Vec<(i64, i64)> = dirty.iter().map(|(i, h)| (*i, *h)).collect();
            for chunk in changed.chunks(40) {
                let mut qb = QueryBuilder::new(
                    "INSERT INTO incidents (id, host_id, title, state, severity, severity_rank, name, what, rule,
                       first_time, last_time, findings, open_findings, steps_done, steps_failed, steps_would,
                       restores, quarantined, event_count, verdict, kinds) ",
                );
                qb.push_values(chunk, |mut b, (id, host_id)| {
                    let row = rows.get(id).cloned().unwrap_or_default();
                    b.push_bind(*id)
                        .push_bind(*host_id)
                        .push_bind(row.title())
                        .push_bind(row.state())
                        .push_bind(row.severity.clone())
                        .push_bind(severity_rank(&row.severity))
                        .push_bind(row.name)
                        .push_bind(row.what)
                        .push_bind(row.rule)
                        .push_bind(row.first_time)
                        .push_bind(row.last_time)
                        .push_bind(row.findings)
                        .push_bind(row.open_findings)
                        .push_bind(row.steps_done)
                        .push_bind(row.steps_failed)
                        .push_bind(row.steps_would)
                        .push_bind(row.restores)
                        .push_bind(row.quarantined)
                        .push_bind(row.events)
                        .push_bind(row.verdict)
                        .push_bind(row.kinds);
                });
                qb.push(
                    " ON CONFLICT (id) DO UPDATE SET title = excluded.title, state = excluded.state,
                       severity = excluded.severity, severity_rank = excluded.severity_rank,
                       name = excluded.name, what = excluded.what, rule = excluded.rule,
                       first_time = excluded.first_time, last_time = excluded.last_time,
                       findings = excluded.findings, open_findings = excluded.open_findings,
                       steps_done = excluded.steps_done, steps_failed = excluded.steps_failed,
                       steps_would = excluded.steps_would, restores = excluded.restores,
                       quarantined = excluded.quarantined, event_count = excluded.event_count,
                       verdict = excluded.verdict, kinds = excluded.kinds",
                );
                qb.build().execute(&mut *tx).await.ctx("updating incidents")?;
            }
            for chunk in members.chunks(ROWS_PER_STATEMENT) {
                let mut qb =
                    QueryBuilder::new("INSERT INTO incident_events (incident_id, event_id, seq) ");
                qb.push_values(chunk, |mut b, (incident, event)| {
                    b.push_bind(*incident)
                        .push_bind(*event)
                        .push_bind(seqs.get(event).copied().unwrap_or(0));
                });
                qb.build().execute(&mut *tx).await.ctx("updating an incident")?;
            }
            let dirty_keys: Vec<(i64, String)> = dirty_keys.into_iter().collect();
            for chunk in dirty_keys.chunks(ROWS_PER_STATEMENT) {
                let mut qb = QueryBuilder::new(
                    "INSERT INTO incident_keys (host_id, key, incident_id, is_open) ",
                );
                qb.push_values(chunk, |mut b, (host_id, key)| {
                    let (id, open) = keys
                        .get(&(*host_id, key.clone()))
                        .copied()
                        .unwrap_or((0, None));
                    b.push_bind(*host_id)
                        .push_bind(key.clone())
                        .push_bind(id)
                        .push_bind(open);
                });
                qb.push(
                    " ON CONFLICT (host_id, key) DO UPDATE SET incident_id = excluded.incident_id, is_open = excluded.is_open",
                );
                qb.build().execute(&mut *tx).await.ctx("updating an incident")?;
            }
            if !alerts.is_empty() {
                let queued_at = crate::timefmt::now_ms();
                for chunk in alerts.chunks(ROWS_PER_STATEMENT / 2) {
                    let mut qb = QueryBuilder::new(
                        "INSERT INTO alert_queue (destination_id, incident_id, state, event_id, body,
                           queued_at, status, attempts, next_attempt) ",
                    );
                    qb.push_values(chunk, |mut b, a| {
                        b.push_bind(a.destination)
                            .push_bind(a.incident)
                            .push_bind(a.state)
                            .push_bind(a.event_id)
                            .push_bind(a.body.clone())
                            .push_bind(queued_at)
                            .push_bind("pending")
                            .push_bind(0i64)
                            .push_bind(queued_at);
                    });
                    qb.push(" ON CONFLICT (destination_id, incident_id, state) DO NOTHING");
                    qb.build().execute(&mut *tx).await.ctx("queueing alerts")?;
                }
            }
            tx.commit().await.ctx("grouping incidents")?;
            Ok(taken)
        })
    }

    /// Group until the queue is empty, [`GROUP_TURN`] events a turn.
    pub async fn group_all_pending(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let n = self.group_pending(GROUP_TURN).await?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    /// Forget every incident and queue every stored event again; the
    /// grouper then derives them afresh. Returns how many events it queued:
    /// counting the queue afterwards would race a serving collector, whose
    /// grouper may already have taken some.
    pub async fn rebuild_incidents(&self) -> Result<u64, StoreError> {
        // Before the rows go: no id any incident or alert used is handed out
        // again (INSERT_INCIDENT_SQLITE).
        let raise_floor = match self {
            Store::Sqlite(_) => {
                "UPDATE incident_lock SET turns = turns + 1, id_floor = MAX(id_floor,
                    (SELECT COALESCE(MAX(id), 0) FROM incidents),
                    (SELECT COALESCE(MAX(incident_id), 0) FROM alert_queue)) WHERE id = 1"
            }
            Store::Postgres(_) => {
                "UPDATE incident_lock SET turns = turns + 1, id_floor = GREATEST(id_floor,
                    (SELECT COALESCE(MAX(id), 0) FROM incidents),
                    (SELECT COALESCE(MAX(incident_id), 0) FROM alert_queue)) WHERE id = 1"
            }
        };
        const QUEUE: &str = "INSERT INTO incident_pending (event_id) SELECT id FROM events WHERE kind <> 'agent_health'";
        let mut queued = 0;
        dispatch_write!(self, pool => {
            let mut tx = pool.begin().await.ctx("rebuilding incidents")?;
            for sql in [
                raise_floor,
                "DELETE FROM incident_keys",
                "DELETE FROM incident_events",
                "DELETE FROM incidents",
                "DELETE FROM incident_pending",
                QUEUE,
                // Regrouped events were alerted about, or not, the first
                // time: a rebuild tells nobody again.
                "UPDATE alert_quiet SET quiet_through = (SELECT COALESCE(MAX(id), 0) FROM events) WHERE id = 1",
            ] {
                let done = sqlx::query(sql)
                    .execute(&mut *tx)
                    .await
                    .ctx("rebuilding incidents")?;
                if sql == QUEUE {
                    queued = done.rows_affected();
                }
            }
            tx.commit().await.ctx("rebuilding incidents")?;
        });
        Ok(queued)
    }

    /// Events waiting to be grouped (for /metrics and tests).
    pub async fn incidents_pending(&self) -> Result<i64, StoreError> {
        dispatch!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM incident_pending")
                .fetch_one(pool)
                .await
                .ctx("counting queued events")
        })
    }

    /// A page of incidents, most recently active first.
    pub async fn incidents(&self, filter: &IncidentFilter) -> Result<IncidentPage, StoreError> {
        let limit = filter.limit.clamp(1, MAX_PAGE);
        dispatch!(self, pool => {
            let mut qb = QueryBuilder::new(format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents i JOIN hosts h ON h.id = i.host_id WHERE 1 = 1"
            ));
            if let Some(id) = filter.host_id {
                qb.push(" AND i.host_id = ").push_bind(id);
            }
            if let Some(host) = &filter.host {
                qb.push(" AND i.host_id IN (SELECT id FROM hosts WHERE hostname = ")
                    .push_bind(host.clone())
                    .push(" OR identity_value = ")
                    .push_bind(host.clone())
                    .push(" OR serial = ")
                    .push_bind(host.clone())
                    .push(")");
            }
            if let Some(state) = &filter.state {
                qb.push(" AND i.state = ").push_bind(state.clone());
            }
            if let Some(rank) = filter.min_severity {
                qb.push(" AND i.severity_rank >= ").push_bind(rank);
            }
            if let Some(rule) = &filter.rule {
                qb.push(" AND i.rule = ").push_bind(rule.clone());
            }
            if let Some(since) = filter.since {
                qb.push(" AND i.last_time >= ").push_bind(since);
            }
            if let Some(until) = filter.until {
                qb.push(" AND i.last_time < ").push_bind(until);
            }
            if filter.untrusted {
                qb.push(
                    " AND i.host_id IN (SELECT host_id FROM chain_breaks)
                      AND EXISTS (SELECT 1 FROM chain_breaks b
                       JOIN events e ON e.host_id = b.host_id AND e.seq = b.seq AND e.uid = b.uid
                       JOIN incident_events ie ON ie.event_id = e.id AND ie.incident_id = i.id
                       WHERE b.host_id = i.host_id)",
                );
            }
            if let Some(c) = filter.cursor {
                qb.push(" AND (i.last_time, i.id) < (")
                    .push_bind(c.time)
                    .push(", ")
                    .push_bind(c.id)
                    .push(")");
            }
            qb.push(" ORDER BY i.last_time DESC, i.id DESC LIMIT ")
                .push_bind(i64::from(limit) + 1);
            let mut incidents: Vec<IncidentRecord> = qb
                .build_query_as()
                .fetch_all(pool)
                .await
                .ctx("listing incidents")?;
            let more = incidents.len() > limit as usize;
            incidents.truncate(limit as usize);
            let next = if more {
                incidents.last().map(|i| Cursor { time: i.last_time, id: i.id })
            } else {
                None
            };
            Ok(IncidentPage { incidents, next })
        })
    }

    /// One incident with a page of its events in the host's order:
    /// `limit` events after `after` (a [`Cursor`] whose `time` is a seq),
    /// and the cursor of the next page if there is one.
    pub async fn incident(
        &self,
        id: i64,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Option<(IncidentRecord, Vec<StoredEvent>, Option<Cursor>)>, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        dispatch!(self, pool => {
            let rec: Option<IncidentRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents i JOIN hosts h ON h.id = i.host_id WHERE i.id = $1"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await
            .ctx("reading an incident")?;
            let Some(rec) = rec else {
                return Ok(None);
            };
            let (seq, eid) = after.map_or((i64::MIN, i64::MIN), |c| (c.time, c.id));
            let mut events: Vec<StoredEvent> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT e.id, e.host_id, h.hostname, e.seq, e.time, e.received_at, e.kind, e.finding_kind,
                        e.verdict, e.rule, e.body, {UNTRUSTED}
                 FROM incident_events ie JOIN events e ON e.id = ie.event_id JOIN hosts h ON h.id = e.host_id
                 WHERE ie.incident_id = $1 AND (ie.seq > $2 OR (ie.seq = $2 AND ie.event_id > $3))
                 ORDER BY ie.seq, ie.event_id LIMIT $4"
            )))
            .bind(id)
            .bind(seq)
            .bind(eid)
            .bind(i64::from(limit) + 1)
            .fetch_all(pool)
            .await
            .ctx("reading an incident's events")?;
            let more = events.len() > limit as usize;
            events.truncate(limit as usize);
            let next = if more {
                events.last().map(|e| Cursor { time: e.seq, id: e.id })
            } else {
                None
            };
            Ok(Some((rec, events, next)))
        })
    }
}
