//! Reading an untrusted property list into a [`plist::Value`] without
//! letting its shape hurt the process.
//!
//! Three ways a hostile plist can hurt a reader, and what stops each here:
//!
//! - **Depth.** `plist::from_bytes` (serde) recurses per nesting level and
//!   aborted the process on ~30,000 nested arrays (crates-notes.md). The
//!   crate's readers and its `Value` builder are iterative, but *dropping*
//!   (and cloning, comparing, printing) a `Value` recurses — including the
//!   drop of a half-built document when a later byte is bad — so a deep
//!   `Value` must never be built at all.
//! - **Expansion.** A binary plist stores objects once and refers to them
//!   by index, so an array of two references to an array of two references
//!   to … is a few hundred bytes on disk and 2^n values when read (the
//!   binary "billion laughs"). The crate refuses only *cycles*.
//! - **Shared big strings.** The same trick with one large string turns a
//!   small file into gigabytes of owned `String`s.
//!
//! The crate's event stream, which would let us count while reading, is
//! public only behind its `enable_unstable_…` feature, so the bytes are
//! pre-checked here instead, before the crate builds anything:
//!
//! - binary (`bplist00`): a walk of the object graph through the offset
//!   table (`binary.rs`; no values decoded, iterative, memoised, so linear
//!   in the file) measures depth, cycles and the expanded size against
//!   budgets derived from the file length;
//! - XML: a scan of the markup counts element nesting. It never
//!   under-counts what the XML reader sees (comments, CDATA and processing
//!   instructions end where XML says; a quoted tag is never taken as
//!   self-closing), so an accepted file cannot build a deep `Value`. XML has
//!   no references, and the crate's reader expands no custom entities, so
//!   it cannot expand.
//!
//! ASCII (OpenStep) plists are refused: launchd reads only XML and binary.
//! After building, the exact depth is checked on the `Value` iteratively.

use std::io::Cursor;

use plist::Value;

mod binary;

use self::binary::check_binary;

/// Deepest nesting accepted. Real launchd jobs nest four or five levels
/// (`KeepAlive` → `PathState` → path → bool); 64 leaves room for odd but
/// honest files and is far below anything that could exhaust a stack.
pub const MAX_DEPTH: usize = 64;

/// Why an untrusted plist was not turned into a [`Value`].
#[derive(Debug, thiserror::Error)]
pub enum PlistError {
    #[error("not a property list (XML or binary): {0}")]
    Malformed(#[source] plist::Error),
    #[error("malformed binary property list: {0}")]
    Binary(String),
    #[error("not a UTF-8 XML property list: it contains NUL bytes (UTF-16 XML is not supported)")]
    NulBytes,
    #[error("property list nests deeper than {max} levels; refused (honest files nest a handful)")]
    TooDeep { max: usize },
    #[error(
        "property list expands to more than {limit} {what} from {input_len} bytes \
         (objects shared many times in a binary plist); refused"
    )]
    Expands {
        what: &'static str,
        limit: u64,
        input_len: usize,
    },
    #[error("property list is empty")]
    Empty,
}

/// Parse untrusted bytes (XML, or binary `bplist00`) into a [`Value`],
/// refusing anything nested deeper than [`MAX_DEPTH`] or that expands far
/// beyond its own size. Never panics and never recurses per level of the
/// input.
pub fn parse_plist_value(bytes: &[u8]) -> Result<Value, PlistError> {
    if bytes.is_empty() {
        return Err(PlistError::Empty);
    }
    let value = if bytes.starts_with(b"bplist00") {
        check_binary(bytes)?;
        Value::from_reader(Cursor::new(bytes)).map_err(PlistError::Malformed)?
    } else {
        check_xml(bytes)?;
        Value::from_reader_xml(bytes).map_err(PlistError::Malformed)?
    };
    if deeper_than(&value, MAX_DEPTH) {
        return Err(PlistError::TooDeep { max: MAX_DEPTH });
    }
    Ok(value)
}

/// Whether `value` nests more than `max` containers, found without
/// recursion.
fn deeper_than(value: &Value, max: usize) -> bool {
    let mut stack = vec![(value, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(a) => Box::new(a.iter()),
            Value::Dictionary(d) => Box::new(d.values()),
            _ => continue,
        };
        if depth + 1 > max {
            return true;
        }
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    false
}

/// Element nesting of the markup (see the module doc for why this never
/// under-counts). `plist` and a leaf element such as `string` add two
/// levels around the values themselves.
fn check_xml(bytes: &[u8]) -> Result<(), PlistError> {
    if bytes.contains(&0) {
        return Err(PlistError::NulBytes);
    }
    let find = |from: usize, pat: &[u8]| -> usize {
        bytes[from..]
            .windows(pat.len())
            .position(|w| w == pat)
            .map_or(bytes.len(), |p| from + p + pat.len())
    };
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(p) = bytes[i..].iter().position(|&b| b == b'<') {
        let at = i + p;
        let rest = &bytes[at..];
        i = if rest.starts_with(b"<!--") {
            find(at + 4, b"-->")
        } else if rest.starts_with(b"<![CDATA[") {
            find(at + 9, b"]]>")
        } else if rest.starts_with(b"<?") {
            find(at + 2, b"?>")
        } else if rest.starts_with(b"<!") || rest.starts_with(b"</") {
            // A declaration ends at its first `>` at the latest as far as
            // nesting goes: skipping less can only over-count.
            if rest.starts_with(b"</") {
                depth = depth.saturating_sub(1);
            }
            find(at + 2, b">")
        } else {
            let end = find(at + 1, b">");
            let tag = &bytes[at..end];
            let quoted = tag.iter().any(|&b| b == b'"' || b == b'\'');
            if quoted || !tag.ends_with(b"/>") {
                depth += 1;
                if depth > MAX_DEPTH + 2 {
                    return Err(PlistError::TooDeep { max: MAX_DEPTH });
                }
            }
            end
        };
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
pub(crate) mod tests {
    use super::*;

    /// Assemble a binary plist from already-encoded objects: `objects[i]`
    /// is object number i, references are `ref_size` bytes wide, object 0
    /// is the root. Lets tests build shapes no honest writer produces.
    pub(crate) fn bplist(objects: &[Vec<u8>], ref_size: u8) -> Vec<u8> {
        let mut out = b"bplist00".to_vec();
        let mut offsets = Vec::with_capacity(objects.len());
        for o in objects {
            offsets.push(out.len() as u64);
            out.extend_from_slice(o);
        }
        let table_at = out.len() as u64;
        for off in &offsets {
            out.extend_from_slice(&off.to_be_bytes());
        }
        out.extend_from_slice(&[0; 6]);
        out.push(8); // offset size
        out.push(ref_size);
        out.extend_from_slice(&(objects.len() as u64).to_be_bytes());
        out.extend_from_slice(&0u64.to_be_bytes()); // root object
        out.extend_from_slice(&table_at.to_be_bytes());
        out
    }

    /// A binary array object holding `refs`, each `ref_size` bytes.
    pub(crate) fn barray(refs: &[u64], ref_size: u8) -> Vec<u8> {
        let mut o = Vec::new();
        if refs.len() < 15 {
            o.push(0xA0 | refs.len() as u8);
        } else {
            o.push(0xAF);
            o.push(0x13); // 8-byte integer length follows
            o.extend_from_slice(&(refs.len() as u64).to_be_bytes());
        }
        for r in refs {
            o.extend_from_slice(&r.to_be_bytes()[8 - ref_size as usize..]);
        }
        o
    }

    #[test]
    fn honest_plist_passes() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict><key>Label</key><string>a</string>
<key>ProgramArguments</key><array><string>/bin/x</string></array></dict></plist>"#;
        let v = parse_plist_value(xml).unwrap();
        assert!(v.as_dictionary().is_some());
    }

    #[test]
    fn empty_is_an_error() {
        assert!(matches!(parse_plist_value(b""), Err(PlistError::Empty)));
    }

    #[test]
    fn depth_at_the_limit_passes_and_one_more_fails() {
        let ok = format!(
            "{}{}",
            "<array>".repeat(MAX_DEPTH),
            "</array>".repeat(MAX_DEPTH)
        );
        assert!(parse_plist_value(ok.as_bytes()).is_ok());
        let n = MAX_DEPTH + 1;
        let deep = format!("{}{}", "<array>".repeat(n), "</array>".repeat(n));
        assert!(matches!(
            parse_plist_value(deep.as_bytes()),
            Err(PlistError::TooDeep { max: MAX_DEPTH })
        ));
    }

    #[test]
    fn xml_nested_100_000_levels_is_refused_without_abort() {
        let n = 100_000;
        let xml = format!(
            "<?xml version=\"1.0\"?><plist version=\"1.0\">{}{}</plist>",
            "<array>".repeat(n),
            "</array>".repeat(n)
        );
        let err = parse_plist_value(xml.as_bytes()).unwrap_err();
        assert!(matches!(err, PlistError::TooDeep { .. }), "{err}");
    }

    #[test]
    fn binary_nested_100_000_levels_is_refused_without_abort() {
        let n: u64 = 100_000;
        let mut objects: Vec<Vec<u8>> = (0..n).map(|i| barray(&[i + 1], 4)).collect();
        objects.push(barray(&[], 4));
        let bytes = bplist(&objects, 4);
        let err = parse_plist_value(&bytes).unwrap_err();
        assert!(matches!(err, PlistError::TooDeep { .. }), "{err}");
    }

    #[test]
    fn binary_reference_bomb_is_refused_quickly() {
        // 40 arrays, each holding the next one twice: 2^40 leaves from
        // ~150 bytes. Depth 40 is within MAX_DEPTH, so only the expansion
        // budget can stop it.
        let n: u64 = 40;
        let mut objects: Vec<Vec<u8>> = (0..n).map(|i| barray(&[i + 1, i + 1], 1)).collect();
        objects.push(vec![0x51, b'x']); // ASCII string "x"
        let bytes = bplist(&objects, 1);
        let started = std::time::Instant::now();
        let err = parse_plist_value(&bytes).unwrap_err();
        assert!(
            matches!(err, PlistError::Expands { what: "values", .. }),
            "{err}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn shared_big_string_is_refused() {
        // One 4 KiB string referenced 200 times: 800 KiB decoded from ~5 KiB.
        let mut string = vec![0x5F, 0x11, 0x10, 0x00]; // ASCII string, 2-byte length 4096
        string.extend(std::iter::repeat_n(b'a', 4096));
        let refs: Vec<u64> = std::iter::repeat_n(1, 200).collect();
        let bytes = bplist(&[barray(&refs, 1), string], 1);
        let err = parse_plist_value(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                PlistError::Expands {
                    what: "bytes of strings and data",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn deep_xml_followed_by_junk_is_refused_before_building() {
        // The crate would build the deep value and then drop it recursively
        // when the junk fails: the scan must stop it first.
        let n = 100_000;
        let xml = format!(
            "<plist>{}{}</plist><junk",
            "<array>".repeat(n),
            "</array>".repeat(n)
        );
        let err = parse_plist_value(xml.as_bytes()).unwrap_err();
        assert!(matches!(err, PlistError::TooDeep { .. }), "{err}");
    }

    #[test]
    fn xml_scan_is_not_fooled_by_comments_cdata_or_quotes() {
        // Closing tags hidden in a comment or CDATA must not cancel real
        // openings; a quoted "/>" is not self-closing.
        let deep = "<array>".repeat(MAX_DEPTH + 3);
        for hide in [
            "<!-- </array> -->",
            "<![CDATA[</array>]]>",
            "<?pi </array> ?>",
        ] {
            let xml = format!("{}{deep}", hide.repeat(MAX_DEPTH));
            assert!(matches!(
                check_xml(xml.as_bytes()),
                Err(PlistError::TooDeep { .. })
            ));
        }
        let xml = "<array a=\"/>\">".repeat(MAX_DEPTH + 3);
        assert!(matches!(
            check_xml(xml.as_bytes()),
            Err(PlistError::TooDeep { .. })
        ));
        // Honest self-closing leaves do not count.
        let flat = format!("<plist><array>{}</array></plist>", "<true/>".repeat(1000));
        assert!(check_xml(flat.as_bytes()).is_ok());
    }

    #[test]
    fn ascii_plists_are_refused() {
        assert!(parse_plist_value(b"{ Label = x; }").is_err());
    }

    #[test]
    fn binary_cycle_and_bad_references_are_errors() {
        let cycle = bplist(&[barray(&[0], 1)], 1);
        assert!(matches!(
            parse_plist_value(&cycle),
            Err(PlistError::Binary(_))
        ));
        let dangling = bplist(&[barray(&[7], 1)], 1);
        assert!(matches!(
            parse_plist_value(&dangling),
            Err(PlistError::Binary(_))
        ));
        let mut truncated = bplist(&[barray(&[1, 1], 1), vec![0x09]], 1);
        truncated.truncate(20);
        assert!(parse_plist_value(&truncated).is_err());
    }

    #[test]
    fn garbage_and_invalid_utf8_are_errors() {
        for input in [
            &b"bplist00"[..],
            b"bplist00\xff\xff\xff\xff",
            b"<?xml version=\"1.0\"?><plist><dict><key>\xff\xfe</key>",
            b"<plist><dict><key>a</key></plist>",
            b"\x00\x01\x02",
        ] {
            assert!(parse_plist_value(input).is_err(), "{input:?}");
        }
    }
}
