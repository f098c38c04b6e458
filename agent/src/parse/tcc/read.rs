//! Opening a TCC.db without ever blocking tccd, the process that owns it.
//!
//! 1. **Pre-flight** with a plain `open(O_NOFOLLOW)`: a missing file, a
//!    denied one (no Full Disk Access: macOS answers `EPERM` even to root),
//!    a symlink, or a file without the SQLite header each get their own
//!    error before SQLite turns them into a vague "unable to open".
//! 2. **Live read** (rollback-journal databases): `file:…?mode=ro` with
//!    `SQLITE_OPEN_READ_ONLY` and a short busy timeout. A read-only
//!    connection takes at most a SHARED lock, which tccd's writes wait for
//!    only as long as our one `SELECT`, and creates no file. `immutable=1`
//!    is *not* used: it skips locking entirely and can read a page tccd is
//!    halfway through writing.
//! 3. **Copy**, when tccd holds a lock longer than the timeout (a
//!    rollback-journal database mid-transaction), when a hot journal needs a
//!    rollback that a read-only connection may not do, and *always* for a
//!    WAL-mode database (header bytes 18–19 = 2): even a read-only
//!    connection creates `-wal`/`-shm` when they are absent, and files a
//!    root daemon creates in a user's TCC directory would be root-owned and
//!    unwritable for that user's tccd (measured here: a read-only open of a
//!    WAL database at rest left both files behind). Copy the database and
//!    its `-journal`, `-wal`, `-shm` into a private 0700 temp directory and
//!    read the copy read-write, so SQLite recovers it to the last committed
//!    state exactly as it would after a crash. Copying takes no SQLite lock
//!    (POSIX advisory locks do not stop `read`), so it cannot block tccd.
//!    The main file is copied before its sidecars because a rollback journal
//!    only grows during a transaction: every page already overwritten in our
//!    copy has its original in the journal copied after it. A commit landing
//!    mid-copy breaks that, so the copy is kept only when the files' sizes
//!    and mtimes did not move while copying and `PRAGMA quick_check` passes;
//!    otherwise it is retried, and after `copy_attempts` the error is
//!    [`TccError::Locked`] — never a hang.
//!
//! The copy is made with std file calls, which would release any SQLite
//! lock *this process* held on the same file (POSIX locks are per process);
//! the live connection is therefore closed before copying.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use percent_encoding::{AsciiSet, CONTROLS, percent_encode};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OpenFlags, Row};

use super::{
    TccAuth, TccClientType, TccError, TccGrant, TccReason, TccSchema, TccService, TccSnapshot,
};

/// Knobs for [`read_grants`]; the defaults suit the daemon.
#[derive(Debug, Clone)]
pub struct TccReadOptions {
    /// How long the live read waits on tccd's lock before copying instead.
    pub busy_timeout: Duration,
    /// Copies tried before giving up with [`TccError::Locked`].
    pub copy_attempts: u32,
    /// Where the private copy goes; the system temp dir when `None`. The
    /// daemon passes its state directory so the copy stays root-only.
    pub scratch_dir: Option<PathBuf>,
}

impl Default for TccReadOptions {
    fn default() -> Self {
        TccReadOptions {
            busy_timeout: Duration::from_millis(200),
            copy_attempts: 3,
            scratch_dir: None,
        }
    }
}

const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";
/// Longer than any bundle id or PATH_MAX (1024 on macOS) with room to spare;
/// a longer value is a damaged row, not a client.
const MAX_CLIENT_LEN: usize = 4096;
/// A real TCC.db holds hundreds of rows; stop long before memory matters.
const MAX_ROWS: usize = 100_000;
const SIDECARS: [&str; 3] = ["-journal", "-wal", "-shm"];
/// Characters that would end or escape the path part of an SQLite URI.
const URI_PATH: &AsciiSet = &CONTROLS.add(b'%').add(b'?').add(b'#');

/// Read the camera, microphone, screen-capture and Full Disk Access grants
/// of one TCC database. Blocking (SQLite and file copies): call it from a
/// blocking thread. It waits at most about `busy_timeout` plus the copies.
pub fn read_grants(path: &Path, opts: &TccReadOptions) -> Result<TccSnapshot, TccError> {
    if preflight(path)? == Journal::Wal {
        return read_copy(path, opts);
    }
    match read_live(path, opts) {
        Ok(snapshot) => Ok(snapshot),
        Err(Failure::Fatal(err)) => Err(err),
        Err(Failure::Contended) => read_copy(path, opts),
    }
}

/// Why a read did not produce a snapshot.
enum Failure {
    /// Locked, a hot journal, or (for a copy) torn: worth another way or try.
    Contended,
    Fatal(TccError),
}

fn io_error(path: &Path, source: io::Error) -> TccError {
    let path = path.to_path_buf();
    if source.raw_os_error() == Some(libc::ELOOP) {
        return TccError::Symlink { path };
    }
    match source.kind() {
        io::ErrorKind::NotFound => TccError::NotFound { path },
        // std maps both EACCES and EPERM here; TCC's denial is EPERM.
        io::ErrorKind::PermissionDenied => TccError::PermissionDenied { path, source },
        _ => TccError::Io { path, source },
    }
}

fn open_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        // O_NONBLOCK: a FIFO swapped in after the file-type check must not
        // hang the reader (it has no effect on a regular file).
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// How the database journals its writes (SQLite file header bytes 18–19,
/// the write and read format versions: 1 = rollback journal, 2 = WAL).
#[derive(Debug, PartialEq, Eq)]
enum Journal {
    Rollback,
    Wal,
}

fn preflight(path: &Path) -> Result<Journal, TccError> {
    let file = open_nofollow(path).map_err(|e| io_error(path, e))?;
    let mut header = Vec::with_capacity(20);
    file.take(20)
        .read_to_end(&mut header)
        .map_err(|e| io_error(path, e))?;
    // SQLite treats an empty file as an empty database; that then fails as
    // "no access table", which is the truer message.
    if header.is_empty() {
        return Ok(Journal::Rollback);
    }
    if !header.starts_with(SQLITE_HEADER) {
        return Err(TccError::NotADatabase {
            path: path.to_path_buf(),
        });
    }
    if header.get(18..20) == Some(&[2, 2]) {
        Ok(Journal::Wal)
    } else {
        Ok(Journal::Rollback)
    }
}

fn classify(path: &Path, source: rusqlite::Error) -> Failure {
    let path = path.to_path_buf();
    match source.sqlite_error_code() {
        // ReadOnly: a hot journal a read-only connection may not roll back.
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::ReadOnly) => {
            Failure::Contended
        }
        Some(ErrorCode::NotADatabase) => Failure::Fatal(TccError::NotADatabase { path }),
        Some(ErrorCode::DatabaseCorrupt) => Failure::Fatal(TccError::Corrupt { path, source }),
        _ => Failure::Fatal(TccError::Sqlite { path, source }),
    }
}

fn read_live(path: &Path, opts: &TccReadOptions) -> Result<TccSnapshot, Failure> {
    let uri = format!(
        "file:{}?mode=ro",
        percent_encode(path.as_os_str().as_bytes(), URI_PATH)
    );
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let conn = Connection::open_with_flags(&uri, flags).map_err(|e| classify(path, e))?;
    conn.busy_timeout(opts.busy_timeout)
        .map_err(|e| classify(path, e))?;
    query(&conn, path)
}

fn read_copy(path: &Path, opts: &TccReadOptions) -> Result<TccSnapshot, TccError> {
    let scratch = opts.scratch_dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("lenscap-tcc-")
        .permissions(Permissions::from_mode(0o700))
        .tempdir_in(&scratch)
        .map_err(|source| TccError::Io {
            path: scratch.clone(),
            source,
        })?;
    let attempts = opts.copy_attempts.max(1);
    for attempt in 0..attempts {
        if attempt > 0 {
            // Give tccd's transaction a moment to finish.
            std::thread::sleep(Duration::from_millis(50 * u64::from(attempt)));
        }
        let copy = dir.path().join(format!("TCC-{attempt}.db"));
        let before = fingerprint(path)?;
        copy_set(path, &copy)?;
        if fingerprint(path)? != before {
            continue;
        }
        match read_private_copy(&copy, path) {
            Ok(mut snapshot) => {
                snapshot.via_copy = true;
                return Ok(snapshot);
            }
            Err(Failure::Fatal(
                err @ (TccError::NoAccessTable { .. } | TccError::UnknownSchema { .. }),
            )) => return Err(err),
            Err(_) => continue,
        }
    }
    Err(TccError::Locked {
        path: path.to_path_buf(),
        attempts,
    })
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Size and mtime of the database and each sidecar, to notice a write
/// landing while we copy.
type Fingerprint = Vec<Option<(u64, SystemTime)>>;

fn fingerprint(path: &Path) -> Result<Fingerprint, TccError> {
    let mut out = Vec::with_capacity(1 + SIDECARS.len());
    for file in std::iter::once(path.to_path_buf()).chain(SIDECARS.iter().map(|s| sidecar(path, s)))
    {
        match std::fs::symlink_metadata(&file) {
            Ok(meta) => out.push(Some((
                meta.len(),
                meta.modified().map_err(|e| io_error(&file, e))?,
            ))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => out.push(None),
            Err(e) => return Err(io_error(&file, e)),
        }
    }
    Ok(out)
}

fn copy_one(from: &Path, to: &Path) -> io::Result<()> {
    let mut src = open_nofollow(from)?;
    let mut dst = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)?;
    io::copy(&mut src, &mut dst)?;
    Ok(())
}

fn copy_set(path: &Path, copy: &Path) -> Result<(), TccError> {
    copy_one(path, copy).map_err(|e| io_error(path, e))?;
    for suffix in SIDECARS {
        let from = sidecar(path, suffix);
        match copy_one(&from, &sidecar(copy, suffix)) {
            Ok(()) => {}
            // tccd committed and removed it between our looks: the
            // fingerprint check catches what that means for the copy.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&from, e)),
        }
    }
    Ok(())
}

fn read_private_copy(copy: &Path, original: &Path) -> Result<TccSnapshot, Failure> {
    // Read-write, because recovering a hot journal or replaying the WAL
    // writes to the copy; it is ours alone.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let torn = |_| Failure::Contended;
    let conn = Connection::open_with_flags(copy, flags).map_err(torn)?;
    let verdict: String = conn
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(torn)?;
    if verdict != "ok" {
        return Err(Failure::Contended);
    }
    query(&conn, original).map_err(|failure| match failure {
        Failure::Fatal(TccError::Corrupt { .. } | TccError::NotADatabase { .. }) => {
            Failure::Contended
        }
        other => other,
    })
}

/// Introspect the `access` table and select the columns this generation has.
fn query(conn: &Connection, path: &Path) -> Result<TccSnapshot, Failure> {
    let sqlite = |e| classify(path, e);
    let columns: Vec<String> = conn
        .prepare("PRAGMA table_info(access)")
        .map_err(sqlite)?
        .query_map([], |row| row.get::<_, String>(1))
        .map_err(sqlite)?
        .collect::<Result<_, _>>()
        .map_err(sqlite)?;
    if columns.is_empty() {
        return Err(Failure::Fatal(TccError::NoAccessTable {
            path: path.to_path_buf(),
        }));
    }
    let schema = TccSchema::detect(&columns).ok_or_else(|| {
        Failure::Fatal(TccError::UnknownSchema {
            path: path.to_path_buf(),
            columns: columns.clone(),
        })
    })?;
    let has = |name: &str| columns.iter().any(|c| c == name);
    let legacy = !has("auth_value");
    // Only names from this list reach the SQL text, never a name read from
    // the file.
    let auth = if legacy { "allowed" } else { "auth_value" };
    let reason = if has("auth_reason") {
        "auth_reason"
    } else {
        "NULL"
    };
    let modified = if has("last_modified") {
        "last_modified"
    } else {
        "NULL"
    };
    let sql = format!(
        "SELECT service, client, client_type, {auth}, {reason}, {modified} \
         FROM access WHERE service IN (?1, ?2, ?3, ?4)"
    );
    let mut stmt = conn.prepare(&sql).map_err(sqlite)?;
    let names = TccService::ALL.map(TccService::tcc_name);
    let mut rows = stmt.query(names).map_err(sqlite)?;
    let mut grants = Vec::new();
    let mut skipped_rows = 0;
    while let Some(row) = rows.next().map_err(sqlite)? {
        if grants.len() + skipped_rows >= MAX_ROWS {
            skipped_rows += 1;
            continue;
        }
        match grant_from_row(row, legacy) {
            Some(grant) => grants.push(grant),
            None => skipped_rows += 1,
        }
    }
    grants.sort_by(|a, b| {
        (a.service, &a.client, a.client_type).cmp(&(b.service, &b.client, b.client_type))
    });
    Ok(TccSnapshot {
        schema,
        grants,
        skipped_rows,
        via_copy: false,
    })
}

/// Map one row; `None` when a value has the wrong type or size. SQLite
/// columns are dynamically typed, so a damaged file can hold anything.
fn grant_from_row(row: &Row<'_>, legacy: bool) -> Option<TccGrant> {
    let int = |i: usize| match row.get_ref(i).ok()? {
        ValueRef::Integer(n) => Some(n),
        _ => None,
    };
    let text = |i: usize| match row.get_ref(i).ok()? {
        ValueRef::Text(bytes) => std::str::from_utf8(bytes).ok(),
        _ => None,
    };
    let service = TccService::from_tcc_name(text(0)?)?;
    let client = text(1).filter(|c| !c.is_empty() && c.len() <= MAX_CLIENT_LEN)?;
    let auth = if legacy {
        TccAuth::from_legacy_allowed(int(3)?)
    } else {
        TccAuth::from_auth_value(int(3)?)
    };
    Some(TccGrant {
        service,
        client: client.to_string(),
        client_type: TccClientType::from_column(int(2)?),
        auth,
        reason: int(4).map(TccReason::from_auth_reason),
        // Integer seconds in every public schema; anything else (a text
        // CURRENT_TIMESTAMP from a hand-made database) is not guessed at.
        last_modified: int(5),
    })
}
