//! Fuzz the probe's reply classifier (`lenscap::observe::probe::classify`)
//! with whatever a listener might send back: it must never panic, must
//! always decide once the connection is over, and must read a reply the
//! same however the network splits it into reads. The origin the request
//! carried only decides whether an `Access-Control-Allow-Origin` is a
//! reflection; any one will do here.
#![no_main]

use lenscap::observe::probe::{Reply, classify};
use libfuzzer_sys::fuzz_target;

const SENT: &str = "https://brolaxen.io";

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read size, as the probe re-classifies the
    // growing buffer after every read.
    let Some((&step, reply)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut verdict = None;
    let mut end = 0;
    while end < reply.len() {
        end = (end + step).min(reply.len());
        match classify(&reply[..end], false, SENT) {
            Reply::Incomplete { .. } => {}
            // Decided early: the probe stops reading here, so more bytes
            // must not have turned a "not HTTP" into HTTP.
            decided => {
                verdict = Some(decided);
                break;
            }
        }
    }
    let at_eof = classify(reply, true, SENT);
    assert!(
        !matches!(at_eof, Reply::Incomplete { .. }),
        "undecided at eof"
    );
    if let Some(Reply::NotHttp(early)) = verdict {
        assert!(
            matches!(at_eof, Reply::NotHttp(_)),
            "{early:?} on a prefix, {at_eof:?} on the whole"
        );
    }
});
