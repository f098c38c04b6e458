//! The outbox file itself: making the state directory and file private,
//! opening SQLite with the settings durability depends on, the schema and
//! its migrations, the `chain` row, and the queries the writer and the
//! read-only view share.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use lenscap_events::{Event, GENESIS_HASH, Kind};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params_from_iter};

use super::error::{OutboxError, SqlContext};
use super::{HistoryFilter, Stats};

/// The schema this code writes. Migrations run from the file's
/// `user_version` up to this in one transaction each.
pub(crate) const SCHEMA_VERSION: i64 = 1;

/// Accounting overhead per row on top of its JSON: the other columns, the
/// index entries and page slack, so `MaxOutboxBytes` bounds the file and
/// not just the JSON.
pub(crate) const ROW_OVERHEAD: u64 = 64;

/// How long the daemon waits for a lock (only the CLI reads alongside it).
const WRITER_BUSY: Duration = Duration::from_secs(2);
/// `lenscap events` must answer promptly even while the daemon commits.
const READER_BUSY: Duration = Duration::from_millis(250);

const SCHEMA_V1: &str = "
CREATE TABLE events (
    seq   INTEGER PRIMARY KEY,   -- the envelope's seq
    time  INTEGER NOT NULL,      -- the envelope's time, ms
    kind  TEXT    NOT NULL,      -- the envelope's kind
    keep  INTEGER NOT NULL,      -- 1: a remediation, never dropped
    sent  INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL,      -- accounted size: length(json) + ROW_OVERHEAD
    json  TEXT    NOT NULL       -- the event exactly as it will be uploaded
);
CREATE INDEX events_pending ON events(seq) WHERE sent = 0;
CREATE INDEX events_time ON events(time);
-- One row: where the chain stands. Kept apart from `events` because
-- events are deleted (sent, or dropped by the disk bound) while the next
-- seq and prev_hash must survive.
CREATE TABLE chain (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq      INTEGER NOT NULL,
    last_hash     TEXT    NOT NULL,
    stored_bytes  INTEGER NOT NULL,
    dropped_total INTEGER NOT NULL,
    full_reported INTEGER NOT NULL
);
";

/// The `chain` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chain {
    pub last_seq: u64,
    pub last_hash: String,
    pub stored_bytes: u64,
    pub dropped_total: u64,
    /// An `outbox_full` event was written and the outbox has not been back
    /// under its bound since: do not write another for the same episode.
    pub full_reported: bool,
}

/// Create `dir` (0700) if it is missing and refuse one that is a link,
/// belongs to someone else, or that others may write to: whoever can write
/// there can swap the file.
pub(crate) fn private_dir(dir: &Path) -> Result<(), OutboxError> {
    match fs::symlink_metadata(dir) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| OutboxError::io(dir, e))?;
        }
        Err(e) => return Err(OutboxError::io(dir, e)),
    }
    let meta = fs::symlink_metadata(dir).map_err(|e| OutboxError::io(dir, e))?;
    if !meta.is_dir() {
        return Err(OutboxError::Insecure {
            path: dir.to_path_buf(),
            reason: "the state directory is not a directory (a link is not followed)".into(),
        });
    }
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != euid && meta.uid() != 0 {
        return Err(OutboxError::Insecure {
            path: dir.to_path_buf(),
            reason: format!(
                "the state directory belongs to uid {}, not to us (uid {euid}) or root",
                meta.uid()
            ),
        });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(OutboxError::Insecure {
            path: dir.to_path_buf(),
            reason: format!(
                "the state directory is writable by others (mode {:o}); chmod 700 it",
                meta.mode() & 0o7777
            ),
        });
    }
    Ok(())
}

/// Create the file 0600 before SQLite does (SQLite would use the umask),
/// and tighten one that is readable by others. SQLite gives its -wal and
/// -shm files the mode of the database file.
fn private_file(path: &Path) -> Result<(), OutboxError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() || !meta.is_file() => {
            Err(OutboxError::Insecure {
                path: path.to_path_buf(),
                reason: "it is not a regular file (a link is not followed)".into(),
            })
        }
        Ok(meta) => {
            if meta.mode() & 0o077 != 0 {
                fs::set_permissions(path, fs::Permissions::from_mode(0o600))
                    .map_err(|e| OutboxError::io(path, e))?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map(drop)
            .map_err(|e| OutboxError::io(path, e)),
        Err(e) => Err(OutboxError::io(path, e)),
    }
}

/// Open (creating) the database for the daemon: WAL so `lenscap events`
/// reads while it writes; `synchronous=FULL` so a commit is on disk when
/// it returns; schema migrated; integrity checked.
pub(crate) fn open_writer(path: &Path, seed_seq: u64) -> Result<Connection, OutboxError> {
    private_file(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .at(path)?;
    conn.busy_timeout(WRITER_BUSY).at(path)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .at(path)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OutboxError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("SQLite refused write-ahead logging (journal_mode {mode})"),
        });
    }
    conn.pragma_update(None, "synchronous", "FULL").at(path)?;
    // Keep the -wal file from staying at its high-water mark after a burst.
    conn.pragma_update(None, "journal_size_limit", 4 * 1024 * 1024)
        .at(path)?;
    integrity(&conn, path)?;
    migrate(&conn, path, seed_seq)?;
    Ok(conn)
}

/// Open an existing database for reading only (`lenscap events`, status).
pub(crate) fn open_reader(path: &Path) -> Result<Connection, OutboxError> {
    if !path.exists() {
        return Err(OutboxError::Missing {
            path: path.to_path_buf(),
        });
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .at(path)?;
    conn.busy_timeout(READER_BUSY).at(path)?;
    let version = user_version(&conn, path)?;
    if version > SCHEMA_VERSION {
        return Err(OutboxError::TooNew {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < 1 {
        return Err(OutboxError::Missing {
            path: path.to_path_buf(),
        });
    }
    Ok(conn)
}

fn user_version(conn: &Connection, path: &Path) -> Result<i64, OutboxError> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .at(path)
}

/// `PRAGMA quick_check`: finds damaged pages SQLite would otherwise only
/// trip over when it reads them, perhaps in the middle of an upload.
fn integrity(conn: &Connection, path: &Path) -> Result<(), OutboxError> {
    let mut stmt = conn.prepare("PRAGMA quick_check(5)").at(path)?;
    let problems: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .at(path)?
        .collect::<Result<_, _>>()
        .at(path)?;
    if problems.len() == 1 && problems[0] == "ok" {
        return Ok(());
    }
    Err(OutboxError::Corrupt {
        path: path.to_path_buf(),
        detail: problems.join("; "),
    })
}

/// Bring the schema to [`SCHEMA_VERSION`]. A new file's chain starts after
/// `seed_seq` (the reserved sequence high-water mark, see `reserve`).
fn migrate(conn: &Connection, path: &Path, seed_seq: u64) -> Result<(), OutboxError> {
    let version = user_version(conn, path)?;
    if version > SCHEMA_VERSION {
        return Err(OutboxError::TooNew {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < 1 {
        let tx = conn.unchecked_transaction().at(path)?;
        tx.execute_batch(SCHEMA_V1).at(path)?;
        tx.execute(
            "INSERT INTO chain (id, last_seq, last_hash, stored_bytes, dropped_total, full_reported)
             VALUES (1, ?1, ?2, 0, 0, 0)",
            rusqlite::params![to_i64(seed_seq), GENESIS_HASH],
        )
        .at(path)?;
        tx.pragma_update(None, "user_version", 1).at(path)?;
        tx.commit().at(path)?;
    }
    // Later versions: `if version < 2 { … }` here, each in its own
    // transaction, never editing SCHEMA_V1.
    Ok(())
}

pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub(crate) fn read_chain(conn: &Connection, path: &Path) -> Result<Chain, OutboxError> {
    conn.query_row(
        "SELECT last_seq, last_hash, stored_bytes, dropped_total, full_reported FROM chain WHERE id = 1",
        [],
        |r| {
            Ok(Chain {
                last_seq: to_u64(r.get(0)?),
                last_hash: r.get(1)?,
                stored_bytes: to_u64(r.get(2)?),
                dropped_total: to_u64(r.get(3)?),
                full_reported: r.get::<_, i64>(4)? != 0,
            })
        },
    )
    .optional()
    .at(path)?
    .ok_or_else(|| OutboxError::Corrupt {
        path: path.to_path_buf(),
        detail: "the chain row is missing".into(),
    })
}

pub(crate) fn write_chain(conn: &Connection, path: &Path, c: &Chain) -> Result<(), OutboxError> {
    conn.execute(
        "UPDATE chain SET last_seq = ?1, last_hash = ?2, stored_bytes = ?3, dropped_total = ?4,
         full_reported = ?5 WHERE id = 1",
        rusqlite::params![
            to_i64(c.last_seq),
            c.last_hash,
            to_i64(c.stored_bytes),
            to_i64(c.dropped_total),
            i64::from(c.full_reported)
        ],
    )
    .at(path)?;
    Ok(())
}

/// The highest seq a damaged file can still tell, or 0. Best effort: this
/// runs on a file already known to be damaged.
pub(crate) fn salvage_last_seq(path: &Path) -> u64 {
    let Ok(conn) = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return 0;
    };
    let from_chain: Option<i64> = conn
        .query_row("SELECT last_seq FROM chain WHERE id = 1", [], |r| r.get(0))
        .ok();
    let from_rows: Option<i64> = conn
        .query_row("SELECT max(seq) FROM events", [], |r| r.get(0))
        .ok();
    to_u64(from_chain.unwrap_or(0).max(from_rows.unwrap_or(0)))
}

fn decode(path: &Path, seq: i64, json: &str) -> Result<Event, OutboxError> {
    serde_json::from_str(json).map_err(|e| OutboxError::Corrupt {
        path: path.to_path_buf(),
        detail: format!("event seq {seq} does not read back: {e}"),
    })
}

fn collect(
    conn: &Connection,
    path: &Path,
    sql: &str,
    args: Vec<rusqlite::types::Value>,
) -> Result<Vec<Event>, OutboxError> {
    let mut stmt = conn.prepare_cached(sql).at(path)?;
    let rows = stmt
        .query_map(params_from_iter(args), |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })
        .at(path)?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, json) = row.at(path)?;
        out.push(decode(path, seq, &json)?);
    }
    Ok(out)
}

pub(crate) fn pending(
    conn: &Connection,
    path: &Path,
    limit: usize,
) -> Result<Vec<Event>, OutboxError> {
    collect(
        conn,
        path,
        "SELECT seq, json FROM events WHERE sent = 0 ORDER BY seq LIMIT ?1",
        vec![rusqlite::types::Value::Integer(to_i64(limit as u64))],
    )
}

pub(crate) fn history(
    conn: &Connection,
    path: &Path,
    filter: &HistoryFilter,
) -> Result<Vec<Event>, OutboxError> {
    use rusqlite::types::Value;
    let mut sql = String::from("SELECT seq, json FROM events WHERE time >= ?1");
    let mut args = vec![Value::Integer(filter.since_ms.unwrap_or(i64::MIN))];
    if !filter.kinds.is_empty() {
        // Placeholders only: the kinds are bound, never spliced in.
        let marks: Vec<String> = (0..filter.kinds.len())
            .map(|i| format!("?{}", i + 2))
            .collect();
        sql.push_str(&format!(" AND kind IN ({})", marks.join(", ")));
        args.extend(
            filter
                .kinds
                .iter()
                .map(|k: &Kind| Value::Text(k.as_str().to_string())),
        );
    }
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT ?{}", args.len() + 1));
    args.push(Value::Integer(to_i64(filter.limit as u64)));
    let mut events = collect(conn, path, &sql, args)?;
    events.reverse();
    Ok(events)
}

pub(crate) fn stats(conn: &Connection, path: &Path) -> Result<Stats, OutboxError> {
    let chain = read_chain(conn, path)?;
    let events: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .at(path)?;
    let (pending, oldest_seq, oldest_time): (i64, Option<i64>, Option<i64>) = conn
        .query_row(
            "SELECT count(*), min(seq), (SELECT time FROM events WHERE sent = 0 ORDER BY seq LIMIT 1)
             FROM events WHERE sent = 0",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .at(path)?;
    let file_bytes = ["", "-wal"]
        .iter()
        .filter_map(|suffix| fs::metadata(sibling(path, suffix)).ok())
        .map(|m| m.len())
        .sum();
    Ok(Stats {
        events: to_u64(events),
        pending: to_u64(pending),
        bytes: chain.stored_bytes,
        file_bytes,
        oldest_pending_seq: oldest_seq.map(to_u64),
        oldest_pending_time_ms: oldest_time,
        last_seq: chain.last_seq,
        dropped_total: chain.dropped_total,
    })
}

/// `path` with `suffix` appended to its file name (`-wal`, `-shm`).
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Write `contents` to `path` so that a crash leaves the old file or the
/// new one, never a torn one: temp file, fsync, rename, fsync the
/// directory.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), OutboxError> {
    crate::fsutil::write_atomic(path, contents, 0o600, crate::fsutil::Durability::Durable)
        .map_err(|e| OutboxError::io(path, e))
}

/// Events not yet acknowledged, counted on the partial index of unsent
/// rows: cheap enough for every sweep, unlike [`stats`], which counts the
/// whole table.
pub(crate) fn pending_count(conn: &Connection, path: &Path) -> Result<u64, OutboxError> {
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM events WHERE sent = 0")
        .and_then(|mut st| st.query_row([], |r| r.get(0)))
        .at(path)?;
    Ok(to_u64(n))
}

/// fsync the directory holding `path`, so a rename in it is durable.
pub(crate) fn sync_dir(path: &Path) -> Result<(), OutboxError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| OutboxError::io(dir, e))
}
