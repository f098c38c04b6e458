//! Fuzz the decoders of `proc_pidinfo` buffers: `PROC_PIDTBSDINFO`
//! (`proc_bsdinfo`) and `PROC_PIDUNIQIDENTIFIERINFO`.
#![no_main]

use lenscap::parse::proc_bsdinfo::{
    PROC_BSDINFO_SIZE, PROC_UNIQIDENTIFIERINFO_SIZE, decode_bsdinfo, decode_uniqid, identity,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match decode_bsdinfo(data) {
        Ok(info) => {
            assert!(data.len() >= PROC_BSDINFO_SIZE);
            // A zombie's identity never carries an executable or arguments.
            let id = identity(&info, Some("/x".into()), vec!["x".into()], None);
            assert_eq!(info.is_zombie(), id.path.is_none());
        }
        Err(e) => assert_eq!(e.got, data.len()),
    }
    assert_eq!(
        decode_uniqid(data).is_ok(),
        data.len() >= PROC_UNIQIDENTIFIERINFO_SIZE
    );
});
