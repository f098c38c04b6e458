//! The PostgreSQL store, for fleets that outgrow one machine and for
//! running several collectors behind one address.
//!
//! Several collector processes may ingest at once. Each batch locks its
//! host's row (`SELECT … FOR UPDATE`), so two batches of one host — say a
//! retry that reached a second collector while the first was still
//! working — run one after the other and see each other's events;
//! different hosts proceed in parallel. Events go in with one `UNNEST`
//! insert per batch rather than one round trip per event.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::ingest::{finish_batch, plan_batch};
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
        let mut tx = self.pool.begin().await.ctx("starting a batch")?;
        let mut planned = plan_batch!(tx, host_id, items,
            host: "SELECT max_seq, last_hash FROM hosts WHERE id = $1 FOR UPDATE",
            existing: "SELECT seq, uid FROM events WHERE host_id = $1 AND seq = ANY($2)",
            |seqs| seqs);
        let new = &mut planned.new;

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
        let new: Vec<&IngestItem> = planned.new.iter().collect();
        finish_batch!(tx, host_id, &planned, &new, accepted, now);
        tx.commit().await.ctx("committing a batch")?;
        Ok(planned.outcome(accepted))
    }
}
