//! Canonical JSON and the event hash chain.
//!
//! Every event names the hash of its host's previous event (`prev_hash`),
//! so a missing or altered event shows at the collector. Agent and collector
//! must therefore produce *byte-identical* JSON for the same event, whatever
//! field order, whitespace or serde_json features (`preserve_order`) their
//! builds use. "Canonical JSON" here means exactly:
//!
//! 1. The event as a JSON value (an agent serialises its typed [`Event`];
//!    the collector takes the value it received, unknown fields included).
//! 2. No whitespace outside strings.
//! 3. Object members sorted by key, comparing the keys' UTF-8 bytes
//!    (a JSON value cannot hold duplicate keys).
//! 4. Strings: `"` and `\` escaped as `\"` and `\\`; U+0008, U+000C, U+000A,
//!    U+000D, U+0009 as `\b \f \n \r \t`; every other code point below
//!    U+0020 as `\u00xx` with lowercase hex; everything else, non-ASCII and
//!    `/` included, written as itself in UTF-8.
//! 5. Numbers as serde_json writes them: integers in plain decimal; the
//!    schema has no non-integers, but one in an unknown field is written in
//!    serde_json's shortest round-trip form.
//! 6. `true`, `false`, `null` as such.
//!
//! Points 4–6 are serde_json's compact output, so canonical JSON is what
//! `serde_json::to_string` prints for a value whose maps are sorted; the
//! writer is ours only so that the ordering does not depend on a cargo
//! feature some other crate in the build might switch on.
//!
//! `hash(event) = lowercase hex(SHA-256(canonical JSON of event))`, and the
//! first event of a host (seq 1) has `prev_hash` = [`GENESIS_HASH`].
//!
//! [`Event`]: crate::Event

use std::fmt::Write as _;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::Sha256Hex;

/// `prev_hash` of a host's first event (seq 1): 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The canonical JSON text of a value (see the module doc).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::with_capacity(512);
    write_value(value, &mut out);
    out
}

/// `hex(SHA-256(canonical_json(value)))`.
pub fn canonical_hash(value: &Value) -> Sha256Hex {
    Sha256Hex::of_bytes(canonical_json(value).as_bytes())
}

/// Lowercase hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        // serde_json's Display for Number is the same itoa/ryu text its
        // serializer writes.
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            // str's Ord is byte order of the UTF-8 encoding.
            entries.sort_unstable_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_value(item, out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    // Copy runs of bytes that need no escape in one go: the collector
    // canonicalises every event it receives, and pushing char by char was
    // the largest single cost of its ingest. Every byte that needs an
    // escape is ASCII, so the slice bounds below are char boundaries.
    out.push('"');
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_at_every_depth_and_whitespace_dropped() {
        let v: Value = serde_json::from_str(
            r#"{ "b": 1, "a": { "z": [ {"y": null, "x": true} ], "m": "é" } }"#,
        )
        .unwrap();
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"m":"é","z":[{"x":true,"y":null}]},"b":1}"#
        );
    }

    #[test]
    fn key_order_is_utf8_byte_order() {
        // 'Z' (0x5a) < '_' (0x5f) < 'a' (0x61) < 'é' (0xc3 0xa9)
        let v = json!({"é": 1, "a": 2, "_": 3, "Z": 4});
        assert_eq!(canonical_json(&v), r#"{"Z":4,"_":3,"a":2,"é":1}"#);
    }

    #[test]
    fn escapes_follow_the_definition() {
        let v = json!("q\"b\\s/\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f}\u{2028}");
        assert_eq!(
            canonical_json(&v),
            "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\u{7f}\u{2028}\""
        );
    }

    #[test]
    fn numbers_are_plain() {
        let v = json!([0, -1, 18446744073709551615u64, 1.5]);
        assert_eq!(canonical_json(&v), "[0,-1,18446744073709551615,1.5]");
    }

    #[test]
    fn hash_is_hex_sha256_of_the_canonical_text() {
        let v = json!({"b": 2, "a": 1});
        // echo -n '{"a":1,"b":2}' | sha256sum
        assert_eq!(
            canonical_hash(&v).as_str(),
            "43258cff783fe7036d8a43033f830adfc60ec037382473548ac742b888292777"
        );
        assert_eq!(GENESIS_HASH.len(), 64);
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(".*", inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The definition is serde_json's compact output with sorted maps;
        /// parsing canonical text back gives the same value, and
        /// canonicalising is idempotent.
        #[test]
        fn canonical_is_serde_json_compact_and_stable(v in arb_json()) {
            let text = canonical_json(&v);
            let back: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(&back, &v);
            prop_assert_eq!(canonical_json(&back), text.clone());
            // Without preserve_order serde_json's maps are sorted by key,
            // so its own compact output must agree with ours.
            prop_assert_eq!(serde_json::to_string(&v).unwrap(), text);
        }
    }
}
