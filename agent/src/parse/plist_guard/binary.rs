//! The pre-check of a binary (`bplist00`) property list: a walk of its
//! object graph through the offset table, reading it the way the plist
//! crate does (trailer, offset table, object markers, references) but
//! decoding no values. It measures nesting depth, finds cycles, and counts
//! how many values and string/data bytes the file expands to when shared
//! objects are read once per reference — so that `guard.rs` can refuse a
//! file before the crate builds a deep or exploded `Value` from it.
//!
//! Iterative and memoised (each object is examined once), so linear in the
//! file. Written here because the crate's event stream is public only
//! behind its unstable feature (see `guard.rs`).

use super::{MAX_DEPTH, PlistError};

/// The shape of a `bplist00` file, read the way the plist crate reads it
/// (trailer, offset table, object markers) but without decoding values.
struct Binary<'a> {
    bytes: &'a [u8],
    trailer_start: usize,
    offset_size: usize,
    ref_size: usize,
    num_objects: u64,
    table_at: usize,
}

/// One object as far as the walk cares: where its references are, or how
/// many bytes of string/data it decodes to.
enum Object {
    Leaf { bytes: u64 },
    Container { refs_at: usize, refs: u64 },
}

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

impl<'a> Binary<'a> {
    fn open(bytes: &'a [u8]) -> Result<Binary<'a>, PlistError> {
        let bad = |m: &str| PlistError::Binary(m.to_string());
        let trailer_start = bytes
            .len()
            .checked_sub(32)
            .filter(|&t| t >= 8)
            .ok_or_else(|| bad("shorter than its header and trailer"))?;
        let trailer = &bytes[trailer_start..];
        let offset_size = usize::from(trailer[6]);
        let ref_size = usize::from(trailer[7]);
        if ![1, 2, 3, 4, 8].contains(&offset_size) || ![1, 2, 3, 4, 8].contains(&ref_size) {
            return Err(bad("invalid offset or reference size in the trailer"));
        }
        let num_objects = be(&trailer[8..16]);
        let table_at =
            usize::try_from(be(&trailer[24..32])).map_err(|_| bad("offset table out of range"))?;
        let table_len = num_objects
            .checked_mul(offset_size as u64)
            .and_then(|l| (table_at as u64).checked_add(l))
            .filter(|&end| end <= trailer_start as u64);
        if table_len.is_none() {
            return Err(bad("offset table runs into the trailer"));
        }
        Ok(Binary {
            bytes,
            trailer_start,
            offset_size,
            ref_size,
            num_objects,
            table_at,
        })
    }

    fn root(&self) -> u64 {
        be(&self.bytes[self.trailer_start + 16..self.trailer_start + 24])
    }

    fn reference(&self, at: usize, index: u64) -> u64 {
        // In range: checked against the trailer when the object was read.
        let start = at + index as usize * self.ref_size;
        be(&self.bytes[start..start + self.ref_size])
    }

    fn object(&self, index: u64) -> Result<Object, PlistError> {
        let bad = |m: String| PlistError::Binary(m);
        if index >= self.num_objects {
            return Err(bad(format!(
                "reference to object {index} of {}",
                self.num_objects
            )));
        }
        let slot = self.table_at + index as usize * self.offset_size;
        let at = usize::try_from(be(&self.bytes[slot..slot + self.offset_size]))
            .ok()
            .filter(|&at| at < self.trailer_start)
            .ok_or_else(|| bad(format!("object {index} lies outside the file")))?;
        let token = self.bytes[at];
        let (kind, low) = (token >> 4, token & 0x0f);
        if !matches!(kind, 0x4 | 0x5 | 0x6 | 0xa | 0xd) {
            return Ok(Object::Leaf { bytes: 0 });
        }
        let (len, body) = if low == 0x0f {
            // Extended length: an integer object of 2^n bytes follows.
            let width = 1usize << (self.bytes.get(at + 1).copied().unwrap_or(0) & 0x03);
            let end = at + 2 + width;
            if end > self.trailer_start {
                return Err(bad(format!("object {index} length runs past the end")));
            }
            (be(&self.bytes[at + 2..end]), end)
        } else {
            (u64::from(low), at + 1)
        };
        let (unit, container) = match kind {
            0x6 => (2, false),
            0xa => (self.ref_size as u64, true),
            0xd => (2 * self.ref_size as u64, true),
            _ => (1, false),
        };
        let size = len.checked_mul(unit);
        if size.is_none_or(|s| body as u64 + s > self.trailer_start as u64) {
            return Err(bad(format!("object {index} runs past the end")));
        }
        let size = size.unwrap_or(0);
        Ok(if container {
            Object::Container {
                refs_at: body,
                refs: if kind == 0xd { len * 2 } else { len },
            }
        } else {
            Object::Leaf { bytes: size }
        })
    }
}

/// Walk the object graph from the root: depth, cycles, and how many values
/// and decoded bytes it expands to, each against its budget.
pub(super) fn check_binary(bytes: &[u8]) -> Result<(), PlistError> {
    // Without sharing, every value costs at least one byte of the file (a
    // reference is ≥ 1 byte) and each container adds one end event, so
    // 2 × length bounds honest input; likewise for string and data bytes.
    let limit = (bytes.len() as u64).saturating_mul(2).saturating_add(64);
    let bin = Binary::open(bytes)?;
    #[derive(Clone, Copy)]
    enum Seen {
        New,
        Open,
        Done { values: u64, bytes: u64 },
    }
    // One slot per object; the offset table bounds the count by the size.
    let mut seen = vec![Seen::New; bin.num_objects as usize];
    struct Frame {
        index: u64,
        refs_at: usize,
        refs: u64,
        next: u64,
        values: u64,
        bytes: u64,
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut pending = Some(bin.root());
    loop {
        // `pending` is an object to add to the frame on top (or the root).
        let (values, decoded) = match pending.take() {
            Some(index) => {
                let slot = usize::try_from(index)
                    .ok()
                    .filter(|&i| i < seen.len())
                    .ok_or_else(|| {
                        PlistError::Binary(format!("reference to object {index} of {}", seen.len()))
                    })?;
                match seen[slot] {
                    Seen::Open => {
                        return Err(PlistError::Binary(format!(
                            "object {index} contains itself"
                        )));
                    }
                    Seen::Done { values, bytes } => (values, bytes),
                    Seen::New => match bin.object(index)? {
                        Object::Leaf { bytes } => {
                            seen[slot] = Seen::Done { values: 1, bytes };
                            (1, bytes)
                        }
                        Object::Container { refs_at, refs } => {
                            if stack.len() >= MAX_DEPTH {
                                return Err(PlistError::TooDeep { max: MAX_DEPTH });
                            }
                            seen[slot] = Seen::Open;
                            stack.push(Frame {
                                index,
                                refs_at,
                                refs,
                                next: 0,
                                values: 2, // start and end
                                bytes: 0,
                            });
                            (0, 0)
                        }
                    },
                }
            }
            None => (0, 0),
        };
        let Some(top) = stack.last_mut() else {
            return Ok(());
        };
        top.values = top.values.saturating_add(values);
        top.bytes = top.bytes.saturating_add(decoded);
        if top.values > limit {
            return Err(PlistError::Expands {
                what: "values",
                limit,
                input_len: bytes.len(),
            });
        }
        if top.bytes > limit {
            return Err(PlistError::Expands {
                what: "bytes of strings and data",
                limit,
                input_len: bytes.len(),
            });
        }
        if top.next < top.refs {
            pending = Some(bin.reference(top.refs_at, top.next));
            top.next += 1;
            continue;
        }
        // Container finished: memoise it and hand its totals to its parent.
        let done = stack.pop();
        if let Some(f) = done {
            if let Some(slot) = usize::try_from(f.index).ok().filter(|&i| i < seen.len()) {
                seen[slot] = Seen::Done {
                    values: f.values,
                    bytes: f.bytes,
                };
            }
            match stack.last_mut() {
                Some(parent) => {
                    parent.values = parent.values.saturating_add(f.values);
                    parent.bytes = parent.bytes.saturating_add(f.bytes);
                    // Re-check budgets on the next turn with nothing new.
                }
                None => return Ok(()),
            }
        }
    }
}
