//! The outbox: every event the agent emits, on disk before any upload is
//! tried. It is the local event history `lenscap events` reads and the
//! queue the uploader drains.
//!
//! # On disk
//!
//! `<StateDir>/outbox.sqlite` (directory 0700, file 0600; SQLite gives its
//! `-wal` and `-shm` the same mode), in WAL mode with `synchronous=FULL`,
//! schema versioned by `PRAGMA user_version` (see `store.rs`):
//!
//! - `events(seq, time, kind, keep, sent, bytes, json)`: one row per event;
//!   `json` is the event exactly as it is uploaded; `keep` marks
//!   remediations, which the disk bound never drops.
//! - `chain(last_seq, last_hash, stored_bytes, dropped_total, …)`: one row,
//!   where the chain stands. It survives the deletion of every event.
//!
//! `<StateDir>/outbox.seq` holds a sequence high-water mark ("reserved N":
//! no seq above N was ever handed out), rewritten atomically once every
//! [`SEQ_RESERVE_STEP`] events. It lets a new file — after
//! [`open_or_recover`] moved a damaged one aside, or after someone deleted
//! it — continue above every seq the old file may have used, so the
//! collector never sees a seq twice.
//!
//! # Invariants
//!
//! - **Durable before returned.** [`Outbox::append`] assigns uid (v4), time
//!   (ms), `seq` = last + 1 and `prev_hash` = hash of the previous event
//!   (`Event::hash`, the events crate's canonical hash), and commits — with
//!   `synchronous=FULL` the commit is fsync'd — before it returns. So an
//!   event is on disk before anything tries to upload it, and a kill -9 at
//!   any moment loses no event whose append returned.
//! - **seq only grows**, across restarts, deletions and recovery; `prev_hash`
//!   links each event to the one before it. A new file after recovery
//!   starts a new chain: its first `prev_hash` is the genesis hash, which
//!   the collector shows as a chain break, and the seqs the damaged file
//!   took with it show as a gap.
//! - **Bounded disk** (`MaxOutboxBytes`, see `bound.rs`): sent events go
//!   first, then unsent non-remediation events (reported by an
//!   `outbox_full` health event, seen as gaps); remediation events never.
//! - **One writer** (the daemon); any number of readers
//!   ([`OutboxReader`], read-only, short busy timeout) alongside it.
//!
//! # Errors the caller handles
//!
//! - On [`OutboxError::DiskFull`] nothing was written: keep the event in
//!   memory and append it again later (`append` takes the body by
//!   reference so the caller still has it).
//! - On [`OutboxError::Corrupt`] at start, use [`open_or_recover`].
//! - On [`OutboxError::Locked`], retry.

mod bound;
mod error;
mod recover;
mod store;

use std::path::{Path, PathBuf};

use lenscap_events::{Body, Event, EventUid, Host, Kind, MAX_SEQ, Mode, Sha256Hex};
use rusqlite::{Connection, TransactionBehavior};

pub use error::OutboxError;
pub use recover::{Recovery, open_or_recover};

use crate::clock::unix_now_ms;
use error::SqlContext;
use store::{Chain, to_i64};

/// The database file in the state directory.
pub const FILE_NAME: &str = "outbox.sqlite";
/// The sequence high-water mark beside it.
pub const SEQ_FILE: &str = "outbox.seq";
/// How many seqs one write of [`SEQ_FILE`] reserves: one extra fsync per
/// this many appends, and at most this many seqs skipped after a recovery.
pub const SEQ_RESERVE_STEP: u64 = 1024;

/// Which events [`Outbox::history`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryFilter {
    /// Only events at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Only these kinds; empty means all.
    pub kinds: Vec<Kind>,
    /// At most this many, the newest.
    pub limit: usize,
}

impl Default for HistoryFilter {
    fn default() -> HistoryFilter {
        HistoryFilter {
            since_ms: None,
            kinds: Vec::new(),
            limit: 1000,
        }
    }
}

/// How full the outbox is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Events stored (sent and unsent).
    pub events: u64,
    /// Events not yet acknowledged by the collector.
    pub pending: u64,
    /// Accounted size of the stored events (what `MaxOutboxBytes` bounds).
    pub bytes: u64,
    /// Size of the database and its write-ahead log on disk.
    pub file_bytes: u64,
    pub oldest_pending_seq: Option<u64>,
    pub oldest_pending_time_ms: Option<i64>,
    /// The seq of the newest event ever appended.
    pub last_seq: u64,
    /// Unsent events the disk bound has dropped, ever.
    pub dropped_total: u64,
}

/// The daemon's handle: appends, and serves the uploader.
#[derive(Debug)]
pub struct Outbox {
    conn: Connection,
    path: PathBuf,
    seq_file: PathBuf,
    /// What [`SEQ_FILE`] says (cached; only this handle writes it).
    reserved: u64,
    host: Host,
    agent_version: String,
    max_bytes: u64,
}

impl Outbox {
    /// Open or create `<state_dir>/outbox.sqlite`. `max_bytes` is
    /// `MaxOutboxBytes` (0: no bound).
    pub fn open(
        state_dir: &Path,
        host: Host,
        agent_version: &str,
        max_bytes: u64,
    ) -> Result<Outbox, OutboxError> {
        store::private_dir(state_dir)?;
        let path = state_dir.join(FILE_NAME);
        let seq_file = state_dir.join(SEQ_FILE);
        let reserved = recover::read_reserved(&seq_file)?;
        let conn = store::open_writer(&path, reserved)?;
        Ok(Outbox {
            conn,
            path,
            seq_file,
            reserved,
            host,
            agent_version: agent_version.to_string(),
            max_bytes,
        })
    }

    /// The database file, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new `MaxOutboxBytes` after a configuration reload; applied at the
    /// next append.
    pub fn set_max_bytes(&mut self, max_bytes: u64) {
        self.max_bytes = max_bytes;
    }

    /// Append one event and commit it (fsync'd) before returning it.
    pub fn append(&mut self, mode: Mode, body: &Body) -> Result<Event, OutboxError> {
        let mut events = self.append_all(&[(mode, body.clone())])?;
        events.pop().ok_or_else(|| OutboxError::Encode {
            path: self.path.clone(),
            detail: "the append returned no event".into(),
        })
    }

    /// Append several events in one commit (one fsync): a plan's steps, or
    /// a catch-up benchmark's backlog. All or none are written.
    pub fn append_all(&mut self, items: &[(Mode, Body)]) -> Result<Vec<Event>, OutboxError> {
        let now = unix_now_ms();
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .at(&path)?;
        let mut chain = store::read_chain(&tx, &path)?;
        let first_new = chain.last_seq + 1;
        let mut out = Vec::with_capacity(items.len());
        let mut ctx = Appending {
            conn: &tx,
            path: &path,
            seq_file: &self.seq_file,
            reserved: &mut self.reserved,
            host: &self.host,
            agent_version: &self.agent_version,
            time: now,
        };
        for (mode, body) in items {
            out.push(ctx.insert(&mut chain, *mode, body.clone())?);
        }
        let enforced = bound::enforce(&tx, &path, &mut chain, self.max_bytes, first_new)?;
        if enforced.dropped > 0 || (enforced.over && !chain.full_reported) {
            let (queued, queued_bytes) = queued(&tx, &path)?;
            let body = crate::report::convert::outbox_full(
                queued,
                queued_bytes,
                self.max_bytes,
                enforced.dropped,
            );
            let mode = items.last().map(|(m, _)| *m).unwrap_or(Mode::Monitor);
            ctx.insert(&mut chain, mode, body)?;
        }
        chain.full_reported = enforced.over;
        store::write_chain(&tx, &path, &chain)?;
        tx.commit().at(&path)?;
        Ok(out)
    }

    /// The oldest unsent events, at most `limit`, oldest first.
    pub fn pending(&self, limit: usize) -> Result<Vec<Event>, OutboxError> {
        store::pending(&self.conn, &self.path, limit)
    }

    /// Record that the collector stored these events; returns how many were
    /// newly marked. Unknown or already-sent seqs are ignored (at-least-once
    /// delivery may acknowledge a batch twice).
    pub fn mark_sent(&mut self, seqs: &[u64]) -> Result<usize, OutboxError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .at(&self.path)?;
        let mut marked = 0;
        {
            let mut stmt = tx
                .prepare_cached("UPDATE events SET sent = 1 WHERE seq = ?1 AND sent = 0")
                .at(&self.path)?;
            for seq in seqs {
                marked += stmt.execute([to_i64(*seq)]).at(&self.path)?;
            }
        }
        tx.commit().at(&self.path)?;
        Ok(marked)
    }

    /// Stored events matching `filter`, newest last.
    pub fn history(&self, filter: &HistoryFilter) -> Result<Vec<Event>, OutboxError> {
        store::history(&self.conn, &self.path, filter)
    }

    pub fn stats(&self) -> Result<Stats, OutboxError> {
        store::stats(&self.conn, &self.path)
    }

    /// Events not yet acknowledged by the collector (cheap; see
    /// [`Outbox::stats`] for everything).
    pub fn pending_count(&self) -> Result<u64, OutboxError> {
        store::pending_count(&self.conn, &self.path)
    }
}

/// A read-only view for `lenscap events` and `lenscap status`, safe to
/// open while the daemon writes (WAL readers do not block the writer).
#[derive(Debug)]
pub struct OutboxReader {
    conn: Connection,
    path: PathBuf,
}

impl OutboxReader {
    /// Open `<state_dir>/outbox.sqlite` read-only. [`OutboxError::Missing`]
    /// when the daemon has not created it yet.
    pub fn open(state_dir: &Path) -> Result<OutboxReader, OutboxError> {
        let path = state_dir.join(FILE_NAME);
        let conn = store::open_reader(&path)?;
        Ok(OutboxReader { conn, path })
    }

    pub fn history(&self, filter: &HistoryFilter) -> Result<Vec<Event>, OutboxError> {
        store::history(&self.conn, &self.path, filter)
    }

    pub fn pending(&self, limit: usize) -> Result<Vec<Event>, OutboxError> {
        store::pending(&self.conn, &self.path, limit)
    }

    pub fn stats(&self) -> Result<Stats, OutboxError> {
        store::stats(&self.conn, &self.path)
    }
}

/// One transaction's worth of appending.
struct Appending<'a> {
    conn: &'a Connection,
    path: &'a Path,
    seq_file: &'a Path,
    reserved: &'a mut u64,
    host: &'a Host,
    agent_version: &'a str,
    time: i64,
}

impl Appending<'_> {
    fn insert(&mut self, chain: &mut Chain, mode: Mode, body: Body) -> Result<Event, OutboxError> {
        let seq = chain.last_seq + 1;
        if seq > MAX_SEQ {
            return Err(OutboxError::SeqExhausted {
                path: self.path.to_path_buf(),
                seq: chain.last_seq,
            });
        }
        if seq > *self.reserved {
            // Reserve before use: once this returns, no seq up to the new
            // mark can be handed out twice, whatever happens to the file.
            let mark = seq.saturating_add(SEQ_RESERVE_STEP - 1).min(MAX_SEQ);
            recover::write_reserved(self.seq_file, mark)?;
            *self.reserved = mark;
        }
        let prev_hash = Sha256Hex::try_from(chain.last_hash.clone()).map_err(|detail| {
            OutboxError::Corrupt {
                path: self.path.to_path_buf(),
                detail: format!("the stored chain hash is damaged: {detail}"),
            }
        })?;
        let kind = body.kind();
        let event = Event {
            uid: EventUid::new_v4(),
            time: self.time,
            host: self.host.clone(),
            agent_version: self.agent_version.to_string(),
            mode,
            seq,
            prev_hash,
            body,
        };
        let encode = |detail: String| OutboxError::Encode {
            path: self.path.to_path_buf(),
            detail,
        };
        let json = serde_json::to_string(&event).map_err(|e| encode(e.to_string()))?;
        let hash = event.hash().map_err(|e| encode(e.to_string()))?;
        let bytes = json.len() as u64 + store::ROW_OVERHEAD;
        let keep = matches!(kind, Kind::ProcessRemediation | Kind::FileRemediation);
        self.conn
            .prepare_cached(
                "INSERT INTO events (seq, time, kind, keep, sent, bytes, json)
                 VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6)",
            )
            .at(self.path)?
            .execute(rusqlite::params![
                to_i64(seq),
                self.time,
                kind.as_str(),
                i64::from(keep),
                to_i64(bytes),
                json
            ])
            .at(self.path)?;
        chain.last_seq = seq;
        chain.last_hash = hash.to_string();
        chain.stored_bytes += bytes;
        Ok(event)
    }
}

/// Unsent events and their accounted bytes.
fn queued(conn: &Connection, path: &Path) -> Result<(u64, u64), OutboxError> {
    let (n, b): (i64, i64) = conn
        .query_row(
            "SELECT count(*), coalesce(sum(bytes), 0) FROM events WHERE sent = 0",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .at(path)?;
    Ok((store::to_u64(n), store::to_u64(b)))
}

#[cfg(test)]
mod tests;
