//! Fuzz the decoders of `proc_pidfdinfo(PROC_PIDFDSOCKETINFO)` buffers:
//! listeners and established connections.
#![no_main]

use lenscap::parse::libproc_abi::{decode_tcp_connection, decode_tcp_listener};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(listener)) = decode_tcp_listener(data) {
        assert_eq!(listener.v6only.is_some(), listener.address.is_ipv6());
    }
    // Any input decodes to a value or an error, never a panic or an
    // out-of-bounds read.
    let _ = decode_tcp_connection(data);
});
