//! Who is logged in at the console: the records of macOS's `/var/run/utmpx`.
//!
//! A root-owned LaunchAgent (`/Library/LaunchAgents`) is loaded into the gui
//! domain of *every* user logged in at the console, so unloading it means
//! one `launchctl bootout gui/<uid>/<label>` per such user. loginwindow
//! records each GUI login in utmpx as a `USER_PROCESS` record whose
//! `ut_line` is `console` (what `who` prints as `ann  console  …`); fast
//! user switching leaves one such record per user.
//!
//! Why a parser of the file rather than `getutxent(3)`: the daemon is
//! multi-threaded and `getutxent`/`setutxent`/`endutxent` share one hidden
//! cursor per process; a pure parser is tested here on fixtures, has
//! property tests and a fuzz target (`fuzz/fuzz_targets/utmpx.rs`), and
//! `platform/macos.rs` pins [`RECORD_LEN`] and every offset below to the
//! `libc` crate's `struct utmpx` at compile time, so the layout cannot
//! drift from the header's without the macOS build failing.
//!
//! # Format (`<utmpx.h>`, 64-bit macOS, little-endian: arm64 and x86_64)
//!
//! ```text
//! struct utmpx {
//!     char ut_user[256];       //   0  _UTX_USERSIZE
//!     char ut_id[4];           // 256  _UTX_IDSIZE
//!     char ut_line[32];        // 260  _UTX_LINESIZE
//!     pid_t ut_pid;            // 292  int32
//!     short ut_type;           // 296  int16, then 6 bytes of padding
//!     struct timeval ut_tv;    // 304  int64 tv_sec, int32 tv_usec, 4 padding
//!     char ut_host[256];       // 320  _UTX_HOSTSIZE
//!     __uint32_t ut_pad[16];   // 576
//! };                           // 640 bytes
//! ```
//!
//! The file is an array of these. Apple's libc (from NetBSD's
//! `getutxent.c`) writes a first record of type `SIGNATURE` (10) whose
//! `ut_user` is `utmpx-1.00` when it creates the file, and refuses a file
//! that does not start with it; so do we. A trailing partial record (the
//! file read while a record is being written) is left out and counted.
//! Character fields are NUL-padded, not necessarily NUL-terminated when
//! full; names are taken up to the first NUL and must be UTF-8.

/// `sizeof(struct utmpx)` on 64-bit macOS.
pub const RECORD_LEN: usize = 640;
/// Offsets of the fields read, from `<utmpx.h>` (see the module doc).
pub const USER_OFFSET: usize = 0;
pub const USER_LEN: usize = 256;
pub const ID_OFFSET: usize = 256;
pub const LINE_OFFSET: usize = 260;
pub const LINE_LEN: usize = 32;
pub const PID_OFFSET: usize = 292;
pub const TYPE_OFFSET: usize = 296;
pub const TV_OFFSET: usize = 304;
pub const HOST_OFFSET: usize = 320;

/// `ut_type` values of `<utmpx.h>` that matter here.
pub const USER_PROCESS: i16 = 7;
pub const DEAD_PROCESS: i16 = 8;
pub const SIGNATURE: i16 = 10;
/// What libc writes into the signature record's `ut_user`.
pub const SIGNATURE_TEXT: &str = "utmpx-1.00";

/// One record, the fields lenscap reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub user: String,
    pub line: String,
    pub pid: i32,
    pub kind: i16,
    /// `ut_tv.tv_sec`: when the record was written.
    pub time_s: i64,
}

/// A whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utmpx {
    /// Every record after the signature, in file order.
    pub records: Vec<Record>,
    /// Bytes after the last whole record (a write in progress).
    pub partial_tail: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UtmpxError {
    #[error("empty: no signature record (a utmpx file starts with one)")]
    Empty,
    #[error("not a utmpx file: the first record is not the `utmpx-1.00` signature")]
    NoSignature,
    #[error("record {index}: {field} is not UTF-8")]
    NotUtf8 { index: usize, field: &'static str },
}

/// Parse a whole utmpx file.
pub fn parse(bytes: &[u8]) -> Result<Utmpx, UtmpxError> {
    let mut chunks = bytes.chunks_exact(RECORD_LEN);
    let partial_tail = chunks.remainder().len();
    let first = chunks.next().ok_or(UtmpxError::Empty)?;
    if i16_at(first, TYPE_OFFSET) != SIGNATURE
        || text(field(first, USER_OFFSET, USER_LEN)) != Some(SIGNATURE_TEXT)
    {
        return Err(UtmpxError::NoSignature);
    }
    let mut records = Vec::new();
    for (n, raw) in chunks.enumerate() {
        let index = n + 1;
        let user = text(field(raw, USER_OFFSET, USER_LEN)).ok_or(UtmpxError::NotUtf8 {
            index,
            field: "ut_user",
        })?;
        let line = text(field(raw, LINE_OFFSET, LINE_LEN)).ok_or(UtmpxError::NotUtf8 {
            index,
            field: "ut_line",
        })?;
        records.push(Record {
            user: user.to_string(),
            line: line.to_string(),
            pid: i32_at(raw, PID_OFFSET),
            kind: i16_at(raw, TYPE_OFFSET),
            time_s: i64_at(raw, TV_OFFSET),
        });
    }
    Ok(Utmpx {
        records,
        partial_tail,
    })
}

/// The names of the users logged in at the console (`USER_PROCESS` on
/// `console`), each once, in the order of their first record.
pub fn console_users(bytes: &[u8]) -> Result<Vec<String>, UtmpxError> {
    let file = parse(bytes)?;
    let mut users: Vec<String> = Vec::new();
    for r in file.records {
        if r.kind == USER_PROCESS
            && r.line == "console"
            && !r.user.is_empty()
            && !users.contains(&r.user)
        {
            users.push(r.user);
        }
    }
    Ok(users)
}

/// Bytes of one record, as libc writes it: the inverse of [`parse`] for
/// the fields lenscap reads (the rest zero). For fixtures and the Linux
/// tests' launchd stand-in, which read the same file the daemon does.
/// Names longer than their field are cut, as `strncpy` would.
pub fn encode_record(r: &Record) -> [u8; RECORD_LEN] {
    let mut out = [0u8; RECORD_LEN];
    put_text(&mut out, USER_OFFSET, USER_LEN, &r.user);
    put_text(&mut out, LINE_OFFSET, LINE_LEN, &r.line);
    out[PID_OFFSET..PID_OFFSET + 4].copy_from_slice(&r.pid.to_le_bytes());
    out[TYPE_OFFSET..TYPE_OFFSET + 2].copy_from_slice(&r.kind.to_le_bytes());
    out[TV_OFFSET..TV_OFFSET + 8].copy_from_slice(&r.time_s.to_le_bytes());
    out
}

/// A whole file: the signature record, then `records`.
pub fn encode(records: &[Record]) -> Vec<u8> {
    let signature = Record {
        user: SIGNATURE_TEXT.into(),
        line: String::new(),
        pid: 0,
        kind: SIGNATURE,
        time_s: 0,
    };
    std::iter::once(&signature)
        .chain(records)
        .flat_map(encode_record)
        .collect()
}

fn put_text(out: &mut [u8], at: usize, len: usize, s: &str) {
    let b = s.as_bytes();
    let n = b.len().min(len);
    out[at..at + n].copy_from_slice(&b[..n]);
}

fn field(raw: &[u8], at: usize, len: usize) -> &[u8] {
    &raw[at..at + len]
}

/// Up to the first NUL (or the whole field when it is full).
fn text(field: &[u8]) -> Option<&str> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    std::str::from_utf8(&field[..end]).ok()
}

fn i16_at(raw: &[u8], at: usize) -> i16 {
    i16::from_le_bytes([raw[at], raw[at + 1]])
}

fn i32_at(raw: &[u8], at: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&raw[at..at + 4]);
    i32::from_le_bytes(b)
}

fn i64_at(raw: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&raw[at..at + 8]);
    i64::from_le_bytes(b)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn rec(user: &str, line: &str, kind: i16) -> Record {
        Record {
            user: user.into(),
            line: line.into(),
            pid: 123,
            kind,
            time_s: 1_767_225_600,
        }
    }

    /// What a Mac with fast user switching looks like after boot: a
    /// BOOT_TIME record, ann and bob at the console, ann also in a
    /// Terminal tab (`ttys000`, not a GUI login), and carl logged out
    /// (his console record rewritten as DEAD_PROCESS, as `pututxline`
    /// does on logout).
    fn fast_user_switching() -> Vec<u8> {
        encode(&[
            rec("", "~", 2),
            rec("ann", "console", USER_PROCESS),
            rec("ann", "ttys000", USER_PROCESS),
            rec("bob", "console", USER_PROCESS),
            rec("carl", "console", DEAD_PROCESS),
            rec("ann", "console", USER_PROCESS),
        ])
    }

    #[test]
    fn console_users_are_user_processes_on_console_each_once() {
        assert_eq!(
            console_users(&fast_user_switching()).unwrap(),
            ["ann", "bob"]
        );
    }

    #[test]
    fn nobody_logged_in_is_an_empty_list_not_an_error() {
        assert!(console_users(&encode(&[])).unwrap().is_empty());
        assert!(
            console_users(&encode(&[rec("", "~", 2)]))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn fields_sit_where_the_header_puts_them() {
        let raw = encode_record(&Record {
            user: "ann".into(),
            line: "console".into(),
            pid: 0x0102_0304,
            kind: USER_PROCESS,
            time_s: 0x0a0b_0c0d_0e0f,
        });
        assert_eq!(&raw[0..4], b"ann\0");
        assert_eq!(&raw[260..268], b"console\0");
        assert_eq!(&raw[292..296], &[4, 3, 2, 1]);
        assert_eq!(&raw[296..298], &[7, 0]);
        assert_eq!(&raw[304..310], &[0x0f, 0x0e, 0x0d, 0x0c, 0x0b, 0x0a]);
        assert!(raw[HOST_OFFSET..].iter().all(|&b| b == 0));
        assert_eq!(raw[ID_OFFSET..ID_OFFSET + 4], [0; 4]);
    }

    #[test]
    fn a_file_without_the_signature_is_refused() {
        assert_eq!(parse(&[]), Err(UtmpxError::Empty));
        assert_eq!(parse(&[0u8; RECORD_LEN - 1]), Err(UtmpxError::Empty));
        // glibc's utmp, or anything else, is not read as utmpx.
        let no_sig = encode_record(&rec("ann", "console", USER_PROCESS));
        assert_eq!(parse(&no_sig), Err(UtmpxError::NoSignature));
        let mut wrong_text = encode(&[]);
        wrong_text[..10].copy_from_slice(b"utmpx-9.99");
        assert_eq!(parse(&wrong_text), Err(UtmpxError::NoSignature));
    }

    #[test]
    fn a_partial_last_record_is_left_out_and_counted() {
        let mut bytes = fast_user_switching();
        bytes.extend_from_slice(&encode_record(&rec("dan", "console", USER_PROCESS))[..100]);
        let file = parse(&bytes).unwrap();
        assert_eq!(file.partial_tail, 100);
        assert_eq!(file.records.len(), 6);
        assert_eq!(console_users(&bytes).unwrap(), ["ann", "bob"]);
    }

    #[test]
    fn a_full_name_field_without_nul_is_read_whole_and_bad_utf8_is_an_error() {
        let long = "a".repeat(USER_LEN + 10);
        let bytes = encode(&[rec(&long, "console", USER_PROCESS)]);
        assert_eq!(console_users(&bytes).unwrap(), ["a".repeat(USER_LEN)]);
        let mut bad = encode(&[rec("ann", "console", USER_PROCESS)]);
        bad[RECORD_LEN] = 0xff;
        assert_eq!(
            parse(&bad),
            Err(UtmpxError::NotUtf8 {
                index: 1,
                field: "ut_user"
            })
        );
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-z_][a-z0-9_.-]{0,30}"
    }

    proptest! {
        #[test]
        fn any_bytes_parse_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..3 * RECORD_LEN)) {
            let _ = parse(&bytes);
            let _ = console_users(&bytes);
        }

        #[test]
        fn records_round_trip(records in proptest::collection::vec(
            (name(), "[a-z0-9~]{0,31}", any::<i32>(), any::<i16>(), any::<i64>()), 0..20)
        ) {
            let records: Vec<Record> = records
                .into_iter()
                .map(|(user, line, pid, kind, time_s)| Record { user, line, pid, kind, time_s })
                .collect();
            let file = parse(&encode(&records)).unwrap();
            prop_assert_eq!(file.partial_tail, 0);
            prop_assert_eq!(&file.records, &records);
            // The console users are exactly the logged-in console names.
            let users = console_users(&encode(&records)).unwrap();
            for r in &records {
                let logged_in = records
                    .iter()
                    .any(|o| o.user == r.user && o.kind == USER_PROCESS && o.line == "console");
                prop_assert_eq!(users.contains(&r.user), logged_in);
            }
        }
    }
}
