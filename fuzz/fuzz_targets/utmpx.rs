//! Fuzz the `/var/run/utmpx` parser (who is logged in at the console).
#![no_main]

use lenscap::parse::utmpx::{RECORD_LEN, console_users, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = parse(data) {
        assert!(file.partial_tail < RECORD_LEN);
        assert_eq!((file.records.len() + 1) * RECORD_LEN + file.partial_tail, data.len());
        let users = console_users(data).expect("parsed once, parses again");
        assert!(users.iter().all(|u| !u.is_empty()));
    }
});
