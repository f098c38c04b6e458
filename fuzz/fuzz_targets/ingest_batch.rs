//! Fuzz the collector's checking of a host's batch — what an enrolled
//! host's bytes go through before the database: gzip within the size
//! limit, the array or `{"events": [...]}` split, each event's shape and
//! host, canonical JSON — and then the incident grouper's facts reader over
//! every event it accepted. Never panics; an accepted event's stored body
//! is canonical JSON that parses back, and its facts' keys are unique.
//!
//! The first byte picks the encoding (even: plain, odd: gzip of the rest),
//! so the fuzzer reaches the decompressor and the JSON behind it.
#![no_main]

use std::io::Write;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, header};
use flate2::Compression;
use flate2::write::GzEncoder;
use lenscap_collector::config::Limits;
use lenscap_collector::http::check_batch;
use lenscap_collector::incidents::facts;
use lenscap_collector::store::HostKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut headers = HeaderMap::new();
    let raw = if mode % 2 == 1 {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        if e.write_all(rest).is_err() {
            return;
        }
        match e.finish() {
            Ok(v) => Bytes::from(v),
            Err(_) => return,
        }
    } else {
        Bytes::copy_from_slice(rest)
    };
    // The docs' sample host, so sample events in the seeds are accepted.
    let sample = &lenscap_events::samples::docs_chain()[0];
    let identity = sample.host.identity();
    let host = HostKey {
        id: 1,
        identity_field: identity.field.to_string(),
        identity_value: identity.value.to_string(),
        hostname: sample.host.hostname.clone(),
    };
    let limits = Limits {
        max_body_bytes: 1 << 20,
        max_batch_events: 100,
    };
    let Ok(items) = check_batch(&headers, raw, &limits, &host) else {
        return;
    };
    for it in items {
        let back: serde_json::Value =
            serde_json::from_str(&it.body).expect("a stored body is JSON");
        assert_eq!(lenscap_events::canonical_json(&back), it.body);
        let f = facts(it.kind, &it.body);
        let mut keys = f.keys.clone();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), f.keys.len(), "duplicate keys {:?}", f.keys);
    }
});
