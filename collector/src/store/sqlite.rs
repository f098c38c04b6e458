//! The embedded SQLite store: one file, WAL journal, `synchronous=FULL`
//! (an event the collector acknowledged survives a power cut; the agent
//! deletes it from its outbox on that acknowledgement).
//!
//! SQLite allows one writer at a time. Writes go through a pool of exactly
//! one connection and take the write lock up front (`BEGIN IMMEDIATE`), so
//! two batches never deadlock upgrading a read lock; reads use a separate
//! read-only pool and run beside the writer (WAL).

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::chain::{self, ChainState};
use super::ingest::{Batch, finish_batch, link, load_late};
use super::types::*;

const INSERT_EVENT: &str = "INSERT INTO events (uid, host_id, seq, time, received_at, kind, verdict, rule, severity, hash, prev_hash, body)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
     ON CONFLICT (uid) DO NOTHING";

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(super) write: SqlitePool,
    pub(super) read: SqlitePool,
}

impl SqliteStore {
    pub(super) async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let url = format!("sqlite:{}", path.display());
        let open_err = |source| StoreError::Open {
            url: url.clone(),
            source,
        };
        let base = SqliteConnectOptions::new()
            .filename(path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(base.clone().create_if_missing(true))
            .await
            .map_err(open_err)?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(base.read_only(true))
            .await
            .map_err(open_err)?;
        Ok(SqliteStore { write, read })
    }

    pub(super) async fn ingest(
        &self,
        host_id: i64,
        items: Vec<IngestItem>,
        now: i64,
    ) -> Result<IngestOutcome, StoreError> {
        let batch = Batch::new(items);
        let mut tx = self
            .write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .ctx("starting a batch")?;
        let (max_seq, last_hash): (i64, Option<String>) =
            sqlx::query_as("SELECT max_seq, last_hash FROM hosts WHERE id = $1")
                .bind(host_id)
                .fetch_optional(&mut *tx)
                .await
                .ctx("reading the host's sequence")?
                .ok_or_else(|| StoreError::Corrupt {
                    what: "storing events",
                    detail: format!("host {host_id} has a token but no row"),
                })?;
        // json_each keeps the statement text fixed whatever the batch size.
        let uids = serde_json::to_string(&batch.uids()).map_err(|e| StoreError::Corrupt {
            what: "storing events",
            detail: e.to_string(),
        })?;
        let existing: HashSet<String> = sqlx::query_scalar(
            "SELECT uid FROM events WHERE uid IN (SELECT value FROM json_each($1))",
        )
        .bind(uids)
        .fetch_all(&mut *tx)
        .await
        .ctx("checking for duplicates")?
        .into_iter()
        .collect();
        let new: Vec<&IngestItem> = batch
            .items
            .iter()
            .filter(|i| !existing.contains(&i.uid))
            .collect();
        let (gaps, stored) = load_late!(tx, host_id, &new, max_seq);
        let links: Vec<_> = new.iter().map(|i| link(i)).collect();
        let plan = chain::plan(&ChainState { max_seq, last_hash }, &gaps, &stored, &links);

        let mut accepted = 0u64;
        for item in &new {
            accepted += sqlx::query(INSERT_EVENT)
                .bind(&item.uid)
                .bind(host_id)
                .bind(item.seq)
                .bind(item.time)
                .bind(now)
                .bind(item.kind)
                .bind(item.verdict)
                .bind(&item.rule)
                .bind(item.severity)
                .bind(&item.hash)
                .bind(&item.prev_hash)
                .bind(&item.body)
                .execute(&mut *tx)
                .await
                .ctx("storing an event")?
                .rows_affected();
        }
        finish_batch!(tx, host_id, &plan, &new, max_seq, accepted, now);
        tx.commit().await.ctx("committing a batch")?;
        Ok(IngestOutcome {
            accepted,
            duplicate: batch.repeated + (batch.items.len() as u64 - accepted),
            gaps_opened: plan.insert_gaps.len() as u64,
            breaks: plan.breaks.len() as u64,
        })
    }
}
