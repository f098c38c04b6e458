//! Fuzz the `net.inet.tcp.pcblist_n` decoder (the macOS daemon's
//! per-sweep change detector) with arbitrary bytes: it must answer with a
//! list or an error, never panic or read past the buffer, and every
//! listening id it reports must belong to a decoded listening PCB.
#![no_main]

use lenscap::parse::pcblist::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(list) = decode(data) {
        for id in list.listening_ids() {
            assert!(
                list.pcbs
                    .iter()
                    .any(|p| p.socket_id == id && p.listening() && p.gencnt <= list.generation)
            );
        }
    }
});
