//! Fuzz the `launchctl print` job-report parser and the failure-line
//! classifier with arbitrary output text.
#![no_main]

use lenscap::parse::launchctl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(status) = launchctl::parse_print(&text) {
        // A job's process is never PID 0, and an ambiguous key never
        // leaves a value behind.
        assert_ne!(status.pid, Some(0));
        if status.ambiguous.iter().any(|k| k == "pid") {
            assert_eq!(status.pid, None);
        }
    }
    let code = data.first().map(|&b| i32::from(b));
    let failure = launchctl::parse_failure(code, &text);
    assert!(failure.message.chars().count() <= 512);
    assert!(!failure.message.chars().any(char::is_control));
});
