//! Fuzz the `log stream --style ndjson` camera parser with arbitrary text
//! fed line by line, checking the attribution-diff invariant: a bundle id
//! is only stopped after it started, and never started twice.
#![no_main]

use std::collections::BTreeSet;

use lenscap::parse::camera_log::{CameraChange, CameraClient, CameraLogParser, LogShape};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parser = CameraLogParser::new();
    let mut active = BTreeSet::new();
    for line in text.lines() {
        for event in parser.feed_line(line) {
            match (&event.client, event.shape) {
                (CameraClient::Pid(pid), _) => assert!(*pid > 0),
                (CameraClient::BundleId(id), LogShape::ControlCenter) => match event.change {
                    CameraChange::Start => assert!(active.insert(id.clone())),
                    CameraChange::Stop => assert!(active.remove(id)),
                },
                _ => {}
            }
        }
    }
});
