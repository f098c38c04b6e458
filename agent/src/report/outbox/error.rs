//! What can go wrong with the outbox, sorted by what the caller does about
//! it: a damaged file is moved aside ([`super::open_or_recover`]), a full
//! disk is waited out with the event kept in memory, a lock held by another
//! process is retried. Every message names the file.

use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The file is not a SQLite database or a page of it is damaged.
    #[error(
        "outbox {path} is damaged ({detail}); the daemon moves it aside to {path}.corrupt-<time> and starts a new chain — to do it by hand, stop the daemon and move the file (with its -wal and -shm) out of the way"
    )]
    Corrupt { path: PathBuf, detail: String },
    /// SQLITE_FULL or ENOSPC: nothing was written. The caller keeps the
    /// event in memory and appends it again later.
    #[error(
        "the disk holding outbox {path} is full; nothing was written — the event is kept in memory and appended again later; free space on that volume"
    )]
    DiskFull { path: PathBuf },
    /// Another connection held the lock longer than the busy timeout.
    #[error(
        "outbox {path} is locked by another process; retry in a moment (only the daemon writes to it)"
    )]
    Locked { path: PathBuf },
    /// Written by a newer lenscap whose schema this one does not know.
    #[error(
        "outbox {path} has schema version {found}, newer than this lenscap understands ({supported}); run the newer lenscap, or move the file aside to start a new outbox"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// The read-only view was asked for before the daemon created one.
    #[error("there is no outbox at {path} yet; the daemon creates it when it first runs")]
    Missing { path: PathBuf },
    /// The state directory or the file is not what a root daemon may trust.
    #[error("refusing outbox {path}: {reason}")]
    Insecure { path: PathBuf, reason: String },
    /// The sequence high-water mark file does not read as one. Guessing
    /// low could hand out a seq twice, so a person decides.
    #[error(
        "{path} should read `reserved <number>` but reads {found:?}; write into it `reserved N` with N at least the highest seq the collector has for this host"
    )]
    SeqMark { path: PathBuf, found: String },
    /// The host has used every sequence number (2^63 − 1): not reachable in
    /// practice, but a wrapped number would break the chain.
    #[error("outbox {path}: sequence numbers are exhausted at {seq}")]
    SeqExhausted { path: PathBuf, seq: u64 },
    /// An event could not be encoded (a bug, not input).
    #[error("cannot encode an event for outbox {path}: {detail}")]
    Encode { path: PathBuf, detail: String },
    #[error("outbox {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("outbox {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

impl OutboxError {
    /// Sort a SQLite error by what the caller can do about it.
    pub(crate) fn sqlite(path: &Path, e: rusqlite::Error) -> OutboxError {
        let path = path.to_path_buf();
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => OutboxError::Corrupt {
                path,
                detail: e.to_string(),
            },
            Some(ErrorCode::DiskFull) => OutboxError::DiskFull { path },
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                OutboxError::Locked { path }
            }
            _ => OutboxError::Sqlite { path, source: e },
        }
    }

    pub(crate) fn io(path: &Path, e: std::io::Error) -> OutboxError {
        if e.raw_os_error() == Some(libc::ENOSPC) {
            return OutboxError::DiskFull {
                path: path.to_path_buf(),
            };
        }
        OutboxError::Io {
            path: path.to_path_buf(),
            source: e,
        }
    }

    /// Whether [`super::open_or_recover`] should move the file aside.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, OutboxError::Corrupt { .. })
    }
}

/// `?` on rusqlite calls, naming the file.
pub(crate) trait SqlContext<T> {
    fn at(self, path: &Path) -> Result<T, OutboxError>;
}

impl<T> SqlContext<T> for Result<T, rusqlite::Error> {
    fn at(self, path: &Path) -> Result<T, OutboxError> {
        self.map_err(|e| OutboxError::sqlite(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn codes_sort_into_actions() {
        let p = Path::new("/state/outbox.sqlite");
        assert!(OutboxError::sqlite(p, failure(rusqlite::ffi::SQLITE_CORRUPT)).is_corrupt());
        assert!(OutboxError::sqlite(p, failure(rusqlite::ffi::SQLITE_NOTADB)).is_corrupt());
        assert!(matches!(
            OutboxError::sqlite(p, failure(rusqlite::ffi::SQLITE_FULL)),
            OutboxError::DiskFull { .. }
        ));
        assert!(matches!(
            OutboxError::sqlite(p, failure(rusqlite::ffi::SQLITE_BUSY)),
            OutboxError::Locked { .. }
        ));
        assert!(matches!(
            OutboxError::io(p, std::io::Error::from_raw_os_error(libc::ENOSPC)),
            OutboxError::DiskFull { .. }
        ));
        let msg = OutboxError::sqlite(p, failure(rusqlite::ffi::SQLITE_NOTADB)).to_string();
        assert!(
            msg.contains("/state/outbox.sqlite") && msg.contains("move"),
            "{msg}"
        );
    }
}
