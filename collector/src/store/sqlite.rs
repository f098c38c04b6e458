//! The embedded SQLite store: one file, WAL journal, `synchronous=FULL`
//! (an event the collector acknowledged survives a power cut; the agent
//! deletes it from its outbox on that acknowledgement).
//!
//! SQLite allows one writer at a time. Writes go through a pool of exactly
//! one connection and take the write lock up front (`BEGIN IMMEDIATE`), so
//! two batches never deadlock upgrading a read lock; reads use a separate
//! read-only pool and run beside the writer (WAL).
//!
//! **Group commit.** With `synchronous=FULL` every commit waits for an
//! fsync (milliseconds on ordinary disks), which would cap ingest at a few
//! hundred commits a second. Batches therefore go to one writer task, which
//! takes every batch waiting (up to [`GROUP_MAX`]) into one transaction,
//! each batch inside its own savepoint, commits once, and only then
//! answers each request. A batch that fails rolls back to its savepoint
//! alone; a failed commit fails every batch of the group, and none of them
//! is acknowledged.

use std::path::Path;
use std::time::Duration;

use sqlx::{Acquire, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use sqlx::QueryBuilder;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::ingest::{finish_batch, plan_batch};
use super::types::*;

const INSERT_EVENTS_HEAD: &str = "INSERT INTO events (uid, host_id, seq, time, received_at, kind, finding_kind, verdict, rule, severity, hash, prev_hash, body) ";

/// Most batches committed together.
const GROUP_MAX: usize = 64;

/// A batch waiting for the writer task.
#[derive(Debug)]
struct Job {
    host_id: i64,
    items: Vec<IngestItem>,
    now: i64,
    reply: oneshot::Sender<Result<IngestOutcome, StoreError>>,
}

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(super) write: SqlitePool,
    pub(super) read: SqlitePool,
    jobs: mpsc::Sender<Job>,
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
            .foreign_keys(true)
            // 64 MiB of page cache per connection (the default is 2 MiB):
            // seven indexes on events touch many pages per batch. (Not
            // more: SQLite scans the whole cache's hash table at the end of
            // a transaction whose b-tree balancing renumbered a page, so
            // each commit costs time in proportion to the cache.)
            .pragma("cache_size", "-65536")
            // Checkpoint every 64 MiB of WAL (4096 pages of 16 KiB, below)
            // rather than SQLite's 1000 pages: an index page changed by
            // many batches is copied back once.
            .pragma("wal_autocheckpoint", "4096")
            // Each batch runs in a savepoint, whose undo journal is a temp
            // file unless temp storage is in memory.
            .pragma("temp_store", "memory")
            // 16 KiB pages rather than 4 KiB: an event is ~1.6 kB, so a
            // page holds nine rather than two, and the WAL gets a quarter
            // of the frames (each a write call, a checksum and, at the
            // checkpoint, another write) for the same bytes. This cut the
            // SQLite thread's CPU per event by about a fifth. It applies
            // only when the file is created; an older file keeps its size.
            .page_size(16384);
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
        let (jobs, queue) = mpsc::channel(GROUP_MAX * 4);
        tokio::spawn(writer(write.clone(), queue));
        Ok(SqliteStore { write, read, jobs })
    }

    /// Hand a batch to the writer task and wait until it is committed.
    pub(super) async fn ingest(
        &self,
        host_id: i64,
        items: Vec<IngestItem>,
        now: i64,
    ) -> Result<IngestOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        let gone = || {
            StoreError::NotStored(
                "the database writer has stopped (the collector is shutting down)".into(),
            )
        };
        self.jobs
            .send(Job {
                host_id,
                items,
                now,
                reply,
            })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// The writer task: group waiting batches into one transaction each.
async fn writer(pool: SqlitePool, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut group = vec![first];
        while group.len() < GROUP_MAX {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let (work, replies): (Vec<_>, Vec<_>) = group
            .into_iter()
            .map(|j| ((j.host_id, j.items, j.now), j.reply))
            .unzip();
        let results = commit_group(&pool, work).await;
        for (reply, result) in replies.into_iter().zip(results) {
            // The requester may have gone (client hung up); the batch is
            // stored all the same and a retry will count it duplicate.
            let _ = reply.send(result);
        }
    }
}

/// One transaction for the group; a result per job, in order.
async fn commit_group(
    pool: &SqlitePool,
    group: Vec<(i64, Vec<IngestItem>, i64)>,
) -> Vec<Result<IngestOutcome, StoreError>> {
    let n = group.len();
    let fail_all = |e: StoreError| -> Vec<Result<IngestOutcome, StoreError>> {
        let text = e.to_string();
        (0..n)
            .map(|_| {
                Err(StoreError::NotStored(format!(
                    "committing a group of batches failed: {text}"
                )))
            })
            .collect()
    };
    let mut tx = match pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .ctx("starting a batch")
    {
        Ok(tx) => tx,
        Err(e) => return fail_all(e),
    };
    let mut results = Vec::with_capacity(n);
    for (host_id, items, now) in group {
        let result = async {
            let mut savepoint = tx.begin().await.ctx("starting a batch")?;
            let outcome = ingest_one(&mut savepoint, host_id, items, now).await?;
            savepoint.commit().await.ctx("finishing a batch")?;
            Ok(outcome)
        }
        .await;
        results.push(result);
    }
    match tx.commit().await.ctx("committing batches") {
        Ok(()) => results,
        Err(e) => fail_all(e),
    }
}

/// Store one batch on the writer's connection (inside its savepoint).
async fn ingest_one(
    tx: &mut SqliteConnection,
    host_id: i64,
    items: Vec<IngestItem>,
    now: i64,
) -> Result<IngestOutcome, StoreError> {
    // json_each keeps the statement text fixed whatever the batch size.
    let mut planned = plan_batch!(tx, host_id, items,
        host: "SELECT max_seq, last_hash FROM hosts WHERE id = $1",
        existing: "SELECT seq, uid FROM events WHERE host_id = $1 AND seq IN (SELECT value FROM json_each($2))",
        |seqs| serde_json::to_string(&seqs).map_err(|e| StoreError::Corrupt {
            what: "storing events",
            detail: e.to_string(),
        })?);

    // One multi-row INSERT per chunk: per statement, sqlx hands work to
    // SQLite's connection thread and back, which costs more than the
    // insert itself. 500 rows × 13 values stays far below SQLite's
    // limit of 32,766 bound values. The strings are moved into the
    // statement, not copied: nothing after the insert reads them.
    let mut accepted = 0u64;
    for chunk in planned.new.chunks_mut(500) {
        let mut qb = QueryBuilder::new(INSERT_EVENTS_HEAD);
        qb.push_values(chunk.iter_mut(), |mut row, item| {
            row.push_bind(std::mem::take(&mut item.uid))
                .push_bind(host_id)
                .push_bind(item.seq)
                .push_bind(item.time)
                .push_bind(now)
                .push_bind(item.kind)
                .push_bind(item.finding_kind)
                .push_bind(item.verdict)
                .push_bind(item.rule.take())
                .push_bind(item.severity)
                .push_bind(std::mem::take(&mut item.hash))
                .push_bind(std::mem::take(&mut item.prev_hash))
                .push_bind(std::mem::take(&mut item.body));
        });
        qb.push(" ON CONFLICT (host_id, seq, uid) DO NOTHING");
        accepted += qb
            .build()
            .execute(&mut *tx)
            .await
            .ctx("storing events")?
            .rows_affected();
    }
    let new: Vec<&IngestItem> = planned.new.iter().collect();
    finish_batch!(tx, host_id, &planned, &new, accepted, now);
    Ok(planned.outcome(accepted))
}

#[cfg(test)]
mod tests {
    use super::super::{DbUrl, Store};
    use super::*;

    fn item(uid: String, seq: i64) -> IngestItem {
        IngestItem {
            uid,
            seq,
            time: seq,
            kind: "agent_health",
            finding_kind: None,
            verdict: None,
            rule: None,
            severity: None,
            hash: format!("h{seq}"),
            prev_hash: if seq == 1 {
                lenscap_events::GENESIS_HASH.to_string()
            } else {
                format!("h{}", seq - 1)
            },
            body: "{}".into(),
            meta: HostMeta {
                hostname: "h".into(),
                agent_version: "1".into(),
                mode: "monitor",
            },
            finding: None,
        }
    }

    #[tokio::test]
    async fn a_new_file_gets_16_kib_pages() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&DbUrl::Sqlite(dir.path().join("p.db")))
            .await
            .unwrap();
        let Store::Sqlite(s) = &store else {
            panic!("not SQLite")
        };
        let (size,): (i64,) = sqlx::query_as("PRAGMA page_size")
            .fetch_one(&s.read)
            .await
            .unwrap();
        assert_eq!(size, 16384);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_batches_commit_in_groups_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&DbUrl::Sqlite(dir.path().join("g.db")))
            .await
            .unwrap();
        let mut hosts = Vec::new();
        for i in 0..8 {
            let host = lenscap_events::Host {
                hostname: format!("h{i}"),
                hardware_uuid: Some(format!("uuid-{i}")),
                serial: None,
                machine_id: None,
            };
            let identity = host.identity();
            let claim = EnrollClaim {
                identity: &identity,
                host: &host,
                agent_version: "1",
                key_hash: None,
                peer: None,
            };
            let outcome = store.enroll(&claim, &format!("tok{i}"), 0).await.unwrap();
            let EnrollOutcome::Enrolled { host_id } = outcome else {
                panic!("{outcome:?}")
            };
            hosts.push(host_id);
        }
        // 8 hosts × 10 batches at once, plus batches for a host that does
        // not exist, which must fail without taking the others down.
        let mut tasks = Vec::new();
        for (h, id) in hosts.iter().enumerate() {
            for b in 0..10i64 {
                let store = store.clone();
                let id = *id;
                let items: Vec<IngestItem> = (1..=10)
                    .map(|k| item(format!("{h}-{}", b * 10 + k), b * 10 + k))
                    .collect();
                tasks.push(tokio::spawn(
                    async move { store.ingest(id, items, 1).await },
                ));
            }
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store.ingest(9999, vec![item(format!("x{h}"), 1)], 1).await
            }));
        }
        let mut ok = 0;
        let mut failed = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(o) => {
                    assert_eq!(o.accepted + o.duplicate, 10);
                    ok += 1;
                }
                Err(e) => {
                    assert!(e.to_string().contains("9999"), "{e}");
                    failed += 1;
                }
            }
        }
        assert_eq!((ok, failed), (80, 8));
        let (n_hosts, n_events) = store.totals().await.unwrap();
        assert_eq!((n_hosts, n_events), (8, 800));
        // Batches of one host may commit in any order; the gaps they
        // opened on the way are all closed.
        for s in store.hosts().await.unwrap() {
            assert_eq!((s.max_seq, s.gaps, s.chain_breaks), (100, 0, 0), "{s:?}");
        }
        store.close().await;
    }
}
