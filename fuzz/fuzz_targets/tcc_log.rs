//! Fuzz tccd's grant-change message parser (plain text and `log stream
//! --style ndjson` lines): never panics, and a change it returns names a
//! non-empty client whose client type agrees with its first character.
#![no_main]

use lenscap::model::TccClientType;
use lenscap::parse::tcc_log::{MARKER, parse_message, parse_ndjson_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        let check = |r: Result<Option<lenscap::parse::tcc_log::TccLogChange>, _>| {
            if let Ok(Some(c)) = r {
                assert!(!c.grant.client.trim().is_empty());
                assert_eq!(
                    c.grant.client_type == TccClientType::Path,
                    c.grant.client.starts_with('/')
                );
            }
        };
        check(parse_message(line));
        check(parse_message(&format!("{MARKER}{line}")));
        if let Some(r) = parse_ndjson_line(line) {
            check(r.map(Some));
        }
    }
});
