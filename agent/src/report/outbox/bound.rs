//! The disk bound (`MaxOutboxBytes`). When the accounted size of the stored
//! events goes over it, events are deleted oldest first in this order until
//! it is back under 90 % of the bound (the slack keeps one `outbox_full`
//! event from following every append):
//!
//! 1. events already **sent** — the collector has them; only the local
//!    history (`lenscap events`) gets shorter;
//! 2. **unsent** events that are **not remediations** — these are lost, and
//!    an `outbox_full` health event says how many;
//! 3. never: unsent Process and File Remediation events, and the events of
//!    the append that is running. If those alone exceed the bound, the
//!    outbox stays over it (one `outbox_full` says so) rather than forget
//!    what was done to a machine.
//!
//! Dropping keeps the chain verifiable: the surviving events keep their
//! `seq` and `prev_hash`, so the collector sees each dropped seq as a
//! **gap** (an event that never arrived) and checks every link whose two
//! ends it has.

use std::path::Path;

use rusqlite::Connection;

use super::error::{OutboxError, SqlContext};
use super::store::{Chain, to_i64, to_u64};

/// What one enforcement did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Enforced {
    /// Unsent events deleted (lost; reported).
    pub dropped: u64,
    /// Still over the bound after all that may go went.
    pub over: bool,
}

/// Bring `chain.stored_bytes` under the bound if it is over. Events with
/// seq ≥ `protect_from` (the append in progress) are never deleted.
pub(crate) fn enforce(
    conn: &Connection,
    path: &Path,
    chain: &mut Chain,
    max_bytes: u64,
    protect_from: u64,
) -> Result<Enforced, OutboxError> {
    if max_bytes == 0 || chain.stored_bytes <= max_bytes {
        return Ok(Enforced::default());
    }
    let target = max_bytes / 10 * 9;
    delete_oldest(conn, path, chain, "sent = 1", target, protect_from)?;
    let dropped = delete_oldest(
        conn,
        path,
        chain,
        "sent = 0 AND keep = 0",
        target,
        protect_from,
    )?;
    chain.dropped_total += dropped;
    Ok(Enforced {
        dropped,
        over: chain.stored_bytes > max_bytes,
    })
}

/// Delete the oldest rows matching `which` (a fixed condition from this
/// file, never input) until `stored_bytes` ≤ `target`; returns how many.
fn delete_oldest(
    conn: &Connection,
    path: &Path,
    chain: &mut Chain,
    which: &str,
    target: u64,
    protect_from: u64,
) -> Result<u64, OutboxError> {
    if chain.stored_bytes <= target {
        return Ok(0);
    }
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT seq, bytes FROM events WHERE {which} AND seq < ?1 ORDER BY seq"
        ))
        .at(path)?;
    let mut rows = stmt.query([to_i64(protect_from)]).at(path)?;
    let mut remaining = chain.stored_bytes;
    let mut last = None;
    let mut count = 0u64;
    while remaining > target {
        let Some(row) = rows.next().at(path)? else {
            break;
        };
        let seq: i64 = row.get(0).at(path)?;
        let bytes: i64 = row.get(1).at(path)?;
        remaining = remaining.saturating_sub(to_u64(bytes));
        last = Some(seq);
        count += 1;
    }
    drop(rows);
    let Some(last) = last else {
        return Ok(0);
    };
    let deleted = conn
        .prepare_cached(&format!("DELETE FROM events WHERE {which} AND seq <= ?1"))
        .at(path)?
        .execute([last])
        .at(path)?;
    debug_assert_eq!(deleted as u64, count);
    chain.stored_bytes = remaining;
    Ok(deleted as u64)
}
