//! What ingest does on both databases, minus the locking and bulk-insert
//! details each does its own way (`sqlite.rs`, `postgres.rs`):
//!
//! 1. begin a transaction that holds the host's lock;
//! 2. read the host's chain state and which of the batch's uids are stored;
//! 3. for late events (seq ≤ the host's highest), read the gaps they may
//!    fill and their stored neighbours;
//! 4. [`chain::plan`](super::chain::plan) works out gaps and breaks;
//! 5. insert the new events, apply the plan, update the findings, the
//!    host (with its "needs attention" counters) and the fleet's totals;
//!    commit.
//!
//! Everything here is SQL text shared by both databases and the pure
//! preparation of a batch.

use std::collections::HashSet;

use super::chain::{Link, Plan};
use super::types::{HostMeta, IngestItem, IngestOutcome};

pub(crate) const SELECT_GAPS: &str = "SELECT first_seq, last_seq FROM gaps
     WHERE host_id = $1 AND last_seq >= $2 AND first_seq <= $3";
pub(crate) const SELECT_NEIGHBOURS: &str = "SELECT seq, uid, hash, prev_hash FROM events
     WHERE host_id = $1 AND seq BETWEEN $2 AND $3";
pub(crate) const DELETE_GAP: &str = "DELETE FROM gaps WHERE host_id = $1 AND first_seq = $2";
pub(crate) const INSERT_GAP: &str =
    "INSERT INTO gaps (host_id, first_seq, last_seq, detected_at) VALUES ($1, $2, $3, $4)";
pub(crate) const INSERT_BREAK: &str =
    "INSERT INTO chain_breaks (host_id, seq, kind, uid, expected, actual, detected_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
/// Also moves the host's "needs attention" counters by the batch's
/// changes ($9 open findings, $10 gaps, $11 missing events, $12 chain
/// breaks) and sets its `attention` flag from them (SET expressions see the
/// row as it was), returning the new counters so the caller can tell
/// whether the host started or stopped needing attention. Increments, not
/// values computed in Rust: the row is the source of truth, and the host's
/// lock (held since the batch began) keeps a second batch of the same host
/// out until this one commits.
pub(crate) const UPDATE_HOST: &str = "UPDATE hosts SET max_seq = $2, last_hash = $3, last_seen = $4,
       event_count = event_count + $5,
       hostname = COALESCE($6, hostname), agent_version = COALESCE($7, agent_version), mode = COALESCE($8, mode),
       open_findings = open_findings + $9, gap_count = gap_count + $10,
       missing_events = missing_events + $11, break_count = break_count + $12,
       attention = (open_findings + $9 > 0 OR gap_count + $10 > 0 OR break_count + $12 > 0)
     WHERE id = $1
     RETURNING open_findings, gap_count, break_count";
/// Moves the fleet's totals (one slot of them, [`totals_slot`]) by a
/// batch's changes, as increments in SQL so that collectors sharing one
/// PostgreSQL never lose each other's updates.
pub(crate) const UPDATE_TOTALS: &str =
    "UPDATE fleet_totals SET events = events + $2, attention = attention + $3,
       open_findings = open_findings + $4, hosts_with_gaps = hosts_with_gaps + $5,
       missing_events = missing_events + $6, chain_breaks = chain_breaks + $7
     WHERE slot = $1";
/// A new host: one more in the fleet.
pub(crate) const COUNT_NEW_HOST: &str = "UPDATE fleet_totals SET hosts = hosts + 1 WHERE slot = $1";
/// Rows of `fleet_totals` (migration 0008 makes exactly this many).
pub(crate) const TOTALS_SLOTS: i64 = 64;

/// The `fleet_totals` row a host's changes go to. One row for everyone
/// would make every ingest transaction on PostgreSQL wait for the one
/// before to commit (the row stays locked until then); spread over slots,
/// batches of different hosts rarely meet.
pub(crate) fn totals_slot(host_id: i64) -> i64 {
    host_id.rem_euclid(TOTALS_SLOTS)
}

/// How storing a finding event moves the host's open-findings count,
/// given the finding's stored (is_open, last_seq), if any. Mirrors
/// [`UPSERT_FINDING`]: only a newer event changes a stored finding.
pub(crate) fn open_delta(stored: Option<(bool, i64)>, seq: i64, open: bool) -> i64 {
    match stored {
        None => i64::from(open),
        Some((was_open, last_seq)) if last_seq < seq => i64::from(open) - i64::from(was_open),
        Some(_) => 0,
    }
}

/// How a host's change moves the fleet's (hosts that need attention, hosts
/// with gaps), from its counters after the batch (open findings, gaps,
/// chain breaks) and the batch's changes to them.
pub(crate) fn fleet_change(after: (i64, i64, i64), delta: (i64, i64, i64)) -> (i64, i64) {
    let (open, gaps, breaks) = after;
    let before = (open - delta.0, gaps - delta.1, breaks - delta.2);
    let needs = |(o, g, b): (i64, i64, i64)| i64::from(o > 0 || g > 0 || b > 0);
    (
        needs(after) - needs(before),
        i64::from(gaps > 0) - i64::from(before.1 > 0),
    )
}
/// Queue the batch's events for grouping into incidents
/// (`store/incidents.rs`), in the transaction that stores them, so none is
/// ever missed: one statement per batch, over the (host, seq) range of its
/// new events, reading the unique (host_id, seq, uid) index. Health
/// events belong to no incident.
pub(crate) const QUEUE_FOR_INCIDENTS: &str = "INSERT INTO incident_pending (event_id)
     SELECT id FROM events
     WHERE host_id = $1 AND seq BETWEEN $2 AND $3 AND received_at = $4 AND kind <> 'agent_health'
     ON CONFLICT (event_id) DO NOTHING";
/// A finding's row follows its newest event only: an older event that
/// arrives late does not reopen or rewrite it.
pub(crate) const UPSERT_FINDING: &str = "INSERT INTO findings (host_id, finding_uid, last_seq, is_open, verdict, severity, rule, title, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     ON CONFLICT (host_id, finding_uid) DO UPDATE SET
       last_seq = excluded.last_seq, is_open = excluded.is_open, verdict = excluded.verdict,
       severity = excluded.severity, rule = excluded.rule, title = excluded.title, updated_at = excluded.updated_at
     WHERE findings.last_seq < excluded.last_seq";

/// Steps 2–4, written once for both databases: read the host's chain
/// state (`$host_sql`, which takes the host's lock where the database
/// needs one), drop the events already stored (`$existing_sql` with the
/// batch's seqs bound as `$seqs`, each database its own way of passing a
/// list), load what late events need, and work out the chain plan.
/// Evaluates to a [`Planned`]. A macro for the reason given at
/// [`load_late`].
macro_rules! plan_batch {
    ($tx:expr, $host_id:expr, $items:expr,
     host: $host_sql:expr,
     existing: $existing_sql:expr, |$seqs:ident| $bind_seqs:expr) => {{
        use $crate::store::types::Ctx as _;
        let batch = $crate::store::ingest::Batch::new($items);
        let (max_seq, last_hash): (i64, Option<String>) = sqlx::query_as($host_sql)
            .bind($host_id)
            .fetch_optional(&mut *$tx)
            .await
            .ctx("reading the host's sequence")?
            .ok_or_else(|| $crate::store::types::StoreError::Corrupt {
                what: "storing events",
                detail: format!("host {} has a token but no row", $host_id),
            })?;
        let existing: std::collections::HashSet<(i64, String)> = if batch.may_hold_stored(max_seq) {
            let $seqs = batch.seqs();
            sqlx::query_as($existing_sql)
                .bind($host_id)
                .bind($bind_seqs)
                .fetch_all(&mut *$tx)
                .await
                .ctx("checking for duplicates")?
                .into_iter()
                .collect()
        } else {
            std::collections::HashSet::new()
        };
        let total = batch.items.len() as u64;
        let repeated = batch.repeated;
        let new: Vec<$crate::store::types::IngestItem> = batch
            .items
            .into_iter()
            .filter(|i| !existing.contains(&(i.seq, i.uid.clone())))
            .collect();
        let queue = $crate::store::ingest::incident_range(&new);
        let refs: Vec<&$crate::store::types::IngestItem> = new.iter().collect();
        let (gaps, stored) = $crate::store::ingest::load_late!($tx, $host_id, &refs, max_seq);
        let links: Vec<_> = refs
            .iter()
            .map(|i| $crate::store::ingest::link(i))
            .collect();
        let plan = $crate::store::chain::plan(
            &$crate::store::chain::ChainState { max_seq, last_hash },
            &gaps,
            &stored,
            &links,
        );
        $crate::store::ingest::Planned {
            new,
            plan,
            max_seq,
            total,
            repeated,
            queue,
        }
    }};
}
pub(super) use plan_batch;

/// A batch after planning: the events to insert and what to write after.
#[derive(Debug)]
pub(super) struct Planned {
    /// Events not stored before, in seq order.
    pub new: Vec<IngestItem>,
    pub plan: Plan,
    /// The host's highest seq before the batch.
    pub max_seq: i64,
    /// Events in the batch after dropping uids repeated inside it.
    pub total: u64,
    pub repeated: u64,
    /// Seq range of the new events that may belong to an incident.
    pub queue: Option<(i64, i64)>,
}

impl Planned {
    /// The answer to the agent once `accepted` events were inserted.
    pub fn outcome(&self, accepted: u64) -> IngestOutcome {
        IngestOutcome {
            accepted,
            duplicate: self.repeated + (self.total - accepted),
            gaps_opened: self.plan.insert_gaps.len() as u64,
            breaks: self.plan.breaks.len() as u64,
        }
    }
}

/// Read the gaps and stored neighbours the late events need (step 3).
/// A macro rather than a generic function: the same code runs on a SQLite
/// and a PostgreSQL transaction, each type-checked against its own driver,
/// without spelling out sqlx's executor bounds.
macro_rules! load_late {
    ($tx:expr, $host_id:expr, $new:expr, $max_seq:expr) => {{
        use $crate::store::types::Ctx as _;
        let mut gaps: Vec<$crate::store::chain::Gap> = Vec::new();
        let mut stored: std::collections::BTreeMap<i64, Vec<$crate::store::chain::Link>> =
            std::collections::BTreeMap::new();
        if let Some((lo, hi)) = $crate::store::ingest::late_range($new, $max_seq) {
            let rows: Vec<(i64, i64)> = sqlx::query_as($crate::store::ingest::SELECT_GAPS)
                .bind($host_id)
                .bind(lo)
                .bind(hi)
                .fetch_all(&mut *$tx)
                .await
                .ctx("reading gaps")?;
            gaps = rows
                .into_iter()
                .map(|(first, last)| $crate::store::chain::Gap { first, last })
                .collect();
            for item in $new.iter().filter(|i| i.seq <= $max_seq) {
                let rows: Vec<(i64, String, String, String)> =
                    sqlx::query_as($crate::store::ingest::SELECT_NEIGHBOURS)
                        .bind($host_id)
                        .bind(item.seq - 1)
                        .bind(item.seq + 1)
                        .fetch_all(&mut *$tx)
                        .await
                        .ctx("reading neighbouring events")?;
                for (seq, uid, hash, prev_hash) in rows {
                    if seq != item.seq {
                        let list = stored.entry(seq).or_default();
                        if !list.iter().any(|l| l.uid == uid) {
                            list.push($crate::store::chain::Link {
                                seq,
                                uid,
                                hash,
                                prev_hash,
                            });
                        }
                    }
                }
            }
        }
        (gaps, stored)
    }};
}
pub(super) use load_late;

/// Apply the plan and update the host and findings (step 5, after the
/// events are inserted). See [`load_late`] for why a macro.
macro_rules! finish_batch {
    ($tx:expr, $host_id:expr, $planned:expr, $new:expr, $accepted:expr, $now:expr) => {{
        use $crate::store::types::Ctx as _;
        let planned: &$crate::store::ingest::Planned = $planned;
        let plan = &planned.plan;
        for first in &plan.delete_gaps {
            sqlx::query($crate::store::ingest::DELETE_GAP)
                .bind($host_id)
                .bind(*first)
                .execute(&mut *$tx)
                .await
                .ctx("closing a gap")?;
        }
        for g in &plan.insert_gaps {
            sqlx::query($crate::store::ingest::INSERT_GAP)
                .bind($host_id)
                .bind(g.first)
                .bind(g.last)
                .bind($now)
                .execute(&mut *$tx)
                .await
                .ctx("recording a gap")?;
        }
        for b in &plan.breaks {
            sqlx::query($crate::store::ingest::INSERT_BREAK)
                .bind($host_id)
                .bind(b.seq)
                .bind(b.kind.as_str())
                .bind(&b.uid)
                .bind(&b.expected)
                .bind(&b.actual)
                .bind($now)
                .execute(&mut *$tx)
                .await
                .ctx("recording a chain break")?;
        }
        // Only each finding's newest event in the batch can win the
        // upsert; skip the rest rather than send them.
        let mut newest: std::collections::BTreeMap<&str, &$crate::store::types::IngestItem> =
            std::collections::BTreeMap::new();
        for item in $new.iter() {
            if let Some(f) = &item.finding {
                let slot = newest.entry(f.finding_uid.as_str()).or_insert(item);
                if item.seq > slot.seq {
                    *slot = item;
                }
            }
        }
        // The findings' stored state, read under the host's lock, tells
        // how the upserts below move the host's open-findings count.
        let mut open_delta = 0i64;
        if !newest.is_empty() {
            let mut qb = sqlx::QueryBuilder::new(
                "SELECT finding_uid, is_open, last_seq FROM findings WHERE host_id = ",
            );
            qb.push_bind($host_id).push(" AND finding_uid IN (");
            let mut sep = qb.separated(", ");
            for uid in newest.keys() {
                sep.push_bind(uid.to_string());
            }
            qb.push(")");
            let stored: std::collections::HashMap<String, (bool, i64)> = qb
                .build_query_as::<(String, bool, i64)>()
                .fetch_all(&mut *$tx)
                .await
                .ctx("reading findings")?
                .into_iter()
                .map(|(uid, open, seq)| (uid, (open, seq)))
                .collect();
            for (uid, item) in &newest {
                if let Some(f) = &item.finding {
                    open_delta += $crate::store::ingest::open_delta(
                        stored.get(*uid).copied(),
                        item.seq,
                        f.open,
                    );
                }
            }
        }
        for item in newest.into_values() {
            if let Some(f) = &item.finding {
                sqlx::query($crate::store::ingest::UPSERT_FINDING)
                    .bind($host_id)
                    .bind(&f.finding_uid)
                    .bind(item.seq)
                    .bind(f.open)
                    .bind(f.verdict)
                    .bind(f.severity)
                    .bind(&f.rule)
                    .bind(&f.title)
                    .bind($now)
                    .execute(&mut *$tx)
                    .await
                    .ctx("updating a finding")?;
            }
        }
        let gap_delta = plan.insert_gaps.len() as i64 - plan.delete_gaps.len() as i64;
        let break_delta = plan.breaks.len() as i64;
        let meta = $crate::store::ingest::newest_meta($new, planned.max_seq);
        let after: (i64, i64, i64) = sqlx::query_as($crate::store::ingest::UPDATE_HOST)
            .bind($host_id)
            .bind(plan.state.max_seq)
            .bind(&plan.state.last_hash)
            .bind($now)
            .bind($accepted as i64)
            .bind(meta.map(|m| m.hostname.as_str()))
            .bind(meta.map(|m| m.agent_version.as_str()))
            .bind(meta.map(|m| m.mode))
            .bind(open_delta)
            .bind(gap_delta)
            .bind(plan.missing_delta)
            .bind(break_delta)
            .fetch_one(&mut *$tx)
            .await
            .ctx("updating the host")?;
        let (attention_delta, gapped_delta) =
            $crate::store::ingest::fleet_change(after, (open_delta, gap_delta, break_delta));
        let totals = [
            $accepted as i64,
            attention_delta,
            open_delta,
            gapped_delta,
            plan.missing_delta,
            break_delta,
        ];
        if totals.iter().any(|d| *d != 0) {
            let mut q = sqlx::query($crate::store::ingest::UPDATE_TOTALS)
                .bind($crate::store::ingest::totals_slot($host_id));
            for d in totals {
                q = q.bind(d);
            }
            q.execute(&mut *$tx)
                .await
                .ctx("updating the fleet's totals")?;
        }
        if let Some((lo, hi)) = planned.queue {
            sqlx::query($crate::store::ingest::QUEUE_FOR_INCIDENTS)
                .bind($host_id)
                .bind(lo)
                .bind(hi)
                .bind($now)
                .execute(&mut *$tx)
                .await
                .ctx("queueing for incidents")?;
        }
    }};
}
pub(super) use finish_batch;

/// A batch with duplicate uids inside it removed, in seq order.
#[derive(Debug)]
pub(super) struct Batch {
    pub items: Vec<IngestItem>,
    /// Events whose uid appeared earlier in the same batch.
    pub repeated: u64,
}

impl Batch {
    pub fn new(items: Vec<IngestItem>) -> Batch {
        let total = items.len();
        let first_of_uid: Vec<bool> = {
            let mut seen = HashSet::with_capacity(total);
            items.iter().map(|i| seen.insert(i.uid.as_str())).collect()
        };
        let mut items: Vec<IngestItem> = items
            .into_iter()
            .zip(first_of_uid)
            .filter_map(|(item, first)| first.then_some(item))
            .collect();
        items.sort_by_key(|i| i.seq);
        Batch {
            repeated: (total - items.len()) as u64,
            items,
        }
    }

    /// Whether any event of the batch may already be stored. The host's
    /// `max_seq` is the highest seq stored, so a batch entirely above it —
    /// an agent sending its next events, the usual case — holds nothing
    /// stored, and the duplicate check can be skipped. (The insert's
    /// `ON CONFLICT (host_id, seq, uid) DO NOTHING` stays as the guarantee.)
    pub fn may_hold_stored(&self, max_seq: i64) -> bool {
        self.items.first().is_some_and(|i| i.seq <= max_seq)
    }

    /// The batch's seqs, each once, for the duplicate check.
    pub fn seqs(&self) -> Vec<i64> {
        let mut seqs: Vec<i64> = self.items.iter().map(|i| i.seq).collect();
        seqs.dedup();
        seqs
    }
}

pub(super) fn link(item: &IngestItem) -> Link {
    Link {
        seq: item.seq,
        uid: item.uid.clone(),
        hash: item.hash.clone(),
        prev_hash: item.prev_hash.clone(),
    }
}

/// Seq range of the events that may belong to an incident (all but
/// health events), if any.
pub(crate) fn incident_range(new: &[IngestItem]) -> Option<(i64, i64)> {
    let mut seqs = new
        .iter()
        .filter(|i| i.kind != "agent_health")
        .map(|i| i.seq);
    let first = seqs.next()?;
    Some(seqs.fold((first, first), |(lo, hi), s| (lo.min(s), hi.max(s))))
}

/// Seq range of the late events (seq ≤ `max_seq`), if any.
pub(crate) fn late_range(new: &[&IngestItem], max_seq: i64) -> Option<(i64, i64)> {
    let late: Vec<i64> = new
        .iter()
        .map(|i| i.seq)
        .filter(|s| *s <= max_seq)
        .collect();
    Some((*late.iter().min()?, *late.iter().max()?))
}

/// The host fields to update: from the newest new event, if it is newer
/// than anything stored.
pub(crate) fn newest_meta<'a>(new: &[&'a IngestItem], max_seq: i64) -> Option<&'a HostMeta> {
    new.iter()
        .filter(|i| i.seq > max_seq)
        .max_by_key(|i| i.seq)
        .map(|i| &i.meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(uid: &str, seq: i64) -> IngestItem {
        IngestItem {
            uid: uid.into(),
            seq,
            time: 0,
            kind: "agent_health",
            finding_kind: None,
            verdict: None,
            rule: None,
            severity: None,
            hash: format!("h{seq}"),
            prev_hash: String::new(),
            body: "{}".into(),
            meta: HostMeta {
                hostname: format!("host-at-{seq}"),
                agent_version: "1".into(),
                mode: "monitor",
            },
            finding: None,
        }
    }

    #[test]
    fn batch_drops_repeated_uids_and_sorts() {
        let b = Batch::new(vec![item("a", 3), item("b", 1), item("a", 3), item("c", 2)]);
        assert_eq!(b.repeated, 1);
        assert_eq!(
            b.items.iter().map(|i| i.seq).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn only_batches_reaching_back_may_hold_stored_events() {
        let b = Batch::new(vec![item("b", 8), item("a", 6)]);
        assert!(!b.may_hold_stored(5));
        assert!(b.may_hold_stored(6));
        assert!(b.may_hold_stored(100));
        assert!(!Batch::new(Vec::new()).may_hold_stored(100));
    }

    #[test]
    fn late_range_and_newest_meta() {
        let items = [item("a", 2), item("b", 5), item("c", 9), item("d", 7)];
        let refs: Vec<&IngestItem> = items.iter().collect();
        assert_eq!(late_range(&refs, 6), Some((2, 5)));
        assert_eq!(late_range(&refs, 1), None);
        assert_eq!(newest_meta(&refs, 6).unwrap().hostname, "host-at-9");
        assert!(newest_meta(&refs, 9).is_none());
    }
}
