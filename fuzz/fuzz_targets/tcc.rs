//! Fuzz the TCC.db reader with damaged databases: the input is a list of
//! patches (`offset_hi, offset_lo, len, bytes…`) applied to a valid Sonoma
//! TCC.db, or, when it starts with the SQLite header, a whole file. SQLite
//! must turn every damaged file into an error or a snapshot, never a panic.
#![no_main]

use std::time::Duration;

use lenscap::parse::tcc::{TccReadOptions, read_grants};
use libfuzzer_sys::fuzz_target;

const BASE: &[u8] = include_bytes!("../../agent/tests/fixtures/tcc/sonoma.db");
const HEADER: &[u8] = b"SQLite format 3\0";

fn patched(data: &[u8]) -> Vec<u8> {
    if data.starts_with(HEADER) {
        return data.to_vec();
    }
    let mut db = BASE.to_vec();
    let mut rest = data;
    while let [hi, lo, len, tail @ ..] = rest {
        let at = usize::from(*hi) << 8 | usize::from(*lo);
        let len = usize::from(*len).min(tail.len());
        for (i, b) in tail[..len].iter().enumerate() {
            if let Some(slot) = db.get_mut(at + i) {
                *slot = *b;
            }
        }
        rest = &tail[len..];
    }
    db
}

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("lenscap-fuzz-tcc-{}.db", std::process::id()));
    if std::fs::write(&path, patched(data)).is_err() {
        return;
    }
    let opts = TccReadOptions {
        busy_timeout: Duration::ZERO,
        copy_attempts: 1,
        scratch_dir: None,
    };
    if let Ok(snapshot) = read_grants(&path, &opts) {
        assert!(snapshot.grants.iter().all(|g| !g.client.is_empty()));
    }
    let _ = std::fs::remove_file(&path);
});
