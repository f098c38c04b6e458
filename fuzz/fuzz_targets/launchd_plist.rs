//! Fuzz the launchd plist reader (XML and binary) with arbitrary bytes:
//! it must never panic, abort (stack overflow) or hang, and whatever it
//! accepts must resolve a program path without panicking either.
#![no_main]

use std::path::Path;

use lenscap::model::PersistenceKind;
use lenscap::parse::launchd::{MAX_DEPTH, parse_launchd_plist, parse_plist_value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(job) = parse_launchd_plist(data) {
        let plist = Path::new("/Applications/A.app/Contents/Library/LaunchAgents/a.plist");
        let item = job.to_persistence_item(PersistenceKind::LaunchAgent, plist, Some(501));
        assert_eq!(item.args, job.program_arguments);
        if let Some(program) = item.program {
            // Lexically normalised: no `..` can survive under an absolute root.
            assert!(!program.is_absolute() || !program.components().any(|c| c.as_os_str() == ".."));
        }
    }
    // The guard alone: an accepted value is never deeper than the cap.
    if let Ok(value) = parse_plist_value(data) {
        let mut stack = vec![(&value, 0usize)];
        while let Some((v, depth)) = stack.pop() {
            assert!(depth <= MAX_DEPTH);
            if let Some(a) = v.as_array() {
                stack.extend(a.iter().map(|c| (c, depth + 1)));
            } else if let Some(d) = v.as_dictionary() {
                stack.extend(d.values().map(|c| (c, depth + 1)));
            }
        }
    }
});
