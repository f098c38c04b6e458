//! Fuzz the `KERN_PROCARGS2` buffer parser.
#![no_main]

use lenscap::parse::procargs::parse_procargs2;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(args) = parse_procargs2(data) {
        assert!(!args.exec_path.as_os_str().is_empty());
    }
});
