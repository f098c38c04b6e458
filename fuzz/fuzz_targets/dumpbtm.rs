//! Fuzz the `sfltool dumpbtm` parser and the login-item mapping with
//! arbitrary text: tolerant by design, so it must never panic, and it can
//! never report more login items than records.
#![no_main]

use lenscap::model::PersistenceKind;
use lenscap::parse::btm::{login_items, parse_dumpbtm};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let records = parse_dumpbtm(&text);
    let items = login_items(&records);
    assert!(items.len() <= records.len());
    assert!(items.iter().all(|i| i.kind == PersistenceKind::LoginItem));
});
