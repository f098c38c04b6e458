//! The PostgreSQL store, for fleets that outgrow one machine and for
//! running several collectors behind one address.
//!
//! Several collector processes may ingest at once. Each batch locks its
//! host's row (`SELECT … FOR UPDATE`), so two batches of one host — say a
//! retry that reached a second collector while the first was still
//! working — run one after the other and see each other's events;
//! different hosts proceed in parallel. Events go in with one `UNNEST`
//! insert per batch rather than one round trip per event.

use std::collections::HashSet;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::chain::{self, ChainState};
use super::ingest::{Batch, finish_batch, link, load_late};
use super::types::*;

const INSERT_EVENTS: &str = "INSERT INTO events (uid, host_id, seq, time, received_at, kind, finding_kind, verdict, rule, severity, hash, prev_hash, body)
     SELECT u.uid, $1, u.seq, u.time, $2, u.kind, u.finding_kind, u.verdict, u.rule, u.severity, u.hash, u.prev_hash, u.body
     FROM UNNEST($3::text[], $4::int8[], $5::int8[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[])
          AS u(uid, seq, time, kind, finding_kind, verdict, rule, severity, hash, prev_hash, body)
     ON CONFLICT (host_id, seq, uid) DO NOTHING";

#[derive(Debug, Clone)]
pub struct PgStore {
    pub(super) pool: PgPool,
}

impl PgStore {
    pub(super) async fn open(url: &str) -> Result<PgStore, StoreError> {
        let shown = super::DbUrl::Postgres(url.to_string()).display();
        let options: PgConnectOptions = url.parse().map_err(|source| StoreError::Open {
            url: shown.clone(),
            source,
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open { url: shown, source })?;
        Ok(PgStore { pool })
    }

    pub(super) async fn ingest(
        &self,
        host_id: i64,
        items: Vec<IngestItem>,
        now: i64,
    ) -> Result<IngestOutcome, StoreError> {
        let batch = Batch::new(items);
        let mut tx = self.pool.begin().await.ctx("starting a batch")?;
        let (max_seq, last_hash): (i64, Option<String>) =
            sqlx::query_as("SELECT max_seq, last_hash FROM hosts WHERE id = $1 FOR UPDATE")
                .bind(host_id)
                .fetch_optional(&mut *tx)
                .await
                .ctx("locking the host")?
                .ok_or_else(|| StoreError::Corrupt {
                    what: "storing events",
                    detail: format!("host {host_id} has a token but no row"),
                })?;
        let total = batch.items.len() as u64;
        let existing: HashSet<(i64, String)> = if batch.may_hold_stored(max_seq) {
            sqlx::query_as("SELECT seq, uid FROM events WHERE host_id = $1 AND seq = ANY($2)")
                .bind(host_id)
                .bind(batch.seqs())
                .fetch_all(&mut *tx)
                .await
                .ctx("checking for duplicates")?
                .into_iter()
                .collect()
        } else {
            HashSet::new()
        };
        let mut new: Vec<IngestItem> = batch
            .items
            .into_iter()
            .filter(|i| !existing.contains(&(i.seq, i.uid.clone())))
            .collect();
        let refs: Vec<&IngestItem> = new.iter().collect();
        let (gaps, stored) = load_late!(tx, host_id, &refs, max_seq);
        let links: Vec<_> = refs.iter().map(|i| link(i)).collect();
        let plan = chain::plan(&ChainState { max_seq, last_hash }, &gaps, &stored, &links);

        // The strings are moved into the statement's arrays, not copied:
        // nothing after the insert reads them.
        let mut take = |f: fn(&mut IngestItem) -> String| new.iter_mut().map(f).collect::<Vec<_>>();
        let uids = take(|i| std::mem::take(&mut i.uid));
        let hashes = take(|i| std::mem::take(&mut i.hash));
        let prev_hashes = take(|i| std::mem::take(&mut i.prev_hash));
        let bodies = take(|i| std::mem::take(&mut i.body));
        let col = |f: fn(&IngestItem) -> Option<String>| new.iter().map(f).collect::<Vec<_>>();
        let accepted = if new.is_empty() {
            0
        } else {
            sqlx::query(INSERT_EVENTS)
                .bind(host_id)
                .bind(now)
                .bind(uids)
                .bind(new.iter().map(|i| i.seq).collect::<Vec<_>>())
                .bind(new.iter().map(|i| i.time).collect::<Vec<_>>())
                .bind(new.iter().map(|i| i.kind.to_string()).collect::<Vec<_>>())
                .bind(col(|i| i.finding_kind.map(str::to_string)))
                .bind(col(|i| i.verdict.map(str::to_string)))
                .bind(col(|i| i.rule.clone()))
                .bind(col(|i| i.severity.map(str::to_string)))
                .bind(hashes)
                .bind(prev_hashes)
                .bind(bodies)
                .execute(&mut *tx)
                .await
                .ctx("storing events")?
                .rows_affected()
        };
        let new: Vec<&IngestItem> = new.iter().collect();
        finish_batch!(tx, host_id, &plan, &new, max_seq, accepted, now);
        tx.commit().await.ctx("committing a batch")?;
        Ok(IngestOutcome {
            accepted,
            duplicate: batch.repeated + (total - accepted),
            gaps_opened: plan.insert_gaps.len() as u64,
            breaks: plan.breaks.len() as u64,
        })
    }
}
