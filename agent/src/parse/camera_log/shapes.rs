//! Matchers for the individual `eventMessage` shapes (see the table in the
//! parent module). Hand-written scanning rather than the `regex` crate:
//! each shape is a literal anchor followed by a run of digits or a
//! bracketed list, the agent has no other use for regex, and scanning keeps
//! the worst case linear in the (capped) line length.

use std::collections::BTreeSet;

use super::{CameraChange, CameraClient};

const ATTRIBUTIONS_PREFIX: &str = "Active activity attributions changed to";
const CONTROL_PID: &str = "CMIOExtensionPropertyDeviceControlPID";
const PRIVATE_PID: &str = "[{private}";
const CAMERA_ATTRIBUTIONS: &str = "cameraAttributions = ";
const AUDIT_TOKEN: &str = "<BSAuditToken:";
/// App Store bundle ids are at most 155 characters; a Team ID prefix
/// (`27KU2G7D8T.`) adds 11. Anything longer is not a bundle id.
const MAX_BUNDLE_ID: usize = 255;
const MAX_AUDIT_TOKEN: usize = 512;

/// Leading ASCII digits as a PID; 0 and overflow are not PIDs.
fn leading_pid(text: &str) -> Option<(u32, &str)> {
    let end = text
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(text.len());
    let pid: u32 = text.get(..end)?.parse().ok()?;
    (pid > 0).then(|| (pid, &text[end..]))
}

/// ControlCenter (14+): `Active activity attributions changed to
/// ["cam:com.apple.PhotoBooth", "mic:us.zoom.xos"]` → the `cam:` bundle ids.
/// `… to []` is the empty set. `None` when the list is not well formed, so
/// a garbled line never reads as "everything stopped".
pub(super) fn control_center_cameras(message: &str) -> Option<BTreeSet<String>> {
    let list = message.strip_prefix(ATTRIBUTIONS_PREFIX)?.trim();
    let inner = list.strip_prefix('[')?.strip_suffix(']')?;
    let mut cams = BTreeSet::new();
    for item in inner.split(',') {
        // Seen both quoted (Sequoia) and bare (older builds, third-party
        // parsers' fixtures); accept either.
        let item = item.trim().trim_matches('"');
        if let Some(id) = item.strip_prefix("cam:") {
            let ok = !id.is_empty()
                && id.len() <= MAX_BUNDLE_ID
                && id
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'));
            if !ok {
                return None;
            }
            cams.insert(id.to_string());
        }
    }
    Some(cams)
}

/// macOS 13.3: `… propertyValues {\n    CMIOExtensionPropertyDeviceControlPID = 90429;\n}`.
/// `= 0;` (no process in control) is returned as 0.
pub(super) fn device_control_pid(message: &str) -> Option<u32> {
    let at = message.find(CONTROL_PID)?;
    let rest = message[at + CONTROL_PID.len()..].trim_start();
    let rest = rest.strip_prefix('=')?.trim_start();
    let end = rest
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len());
    let pid: u32 = rest.get(..end)?.parse().ok()?;
    rest[end..].trim_start().starts_with(';').then_some(pid)
}

/// The first `[{private}<digits>]`: the client PID in the 14+ endpoint line.
fn first_private_pid(message: &str) -> Option<u32> {
    let at = message.find(PRIVATE_PID)?;
    let (pid, rest) = leading_pid(&message[at + PRIVATE_PID.len()..])?;
    rest.starts_with(']').then_some(pid)
}

/// macOS 14+: `… [{private}901][{private}0] added <private> endpoint
/// <private> camera <private>` is a start by PID 901. `… removed endpoint
/// <private>` is taken as a stop (**unconfirmed** shape), by PID when the
/// line carries one. Matched on whole words in order, so it holds whether
/// or not private data is redacted.
pub(super) fn cmio_endpoint(message: &str) -> Option<(CameraChange, CameraClient)> {
    let mut words = message.split_whitespace();
    let change = loop {
        match words.next()? {
            "added" => break CameraChange::Start,
            "removed" => break CameraChange::Stop,
            _ => {}
        }
    };
    let mut words = words.skip_while(|w| *w != "endpoint");
    words.next()?;
    if change == CameraChange::Start && !words.any(|w| w == "camera") {
        return None;
    }
    let client = first_private_pid(message).map_or(CameraClient::Unknown, CameraClient::Pid);
    Some((change, client))
}

/// Before 13.3: `Server data changed for media domain: … cameraAttributions
/// = <STListData: 0x…> { <…CameraCaptureAttribution…> { … auditToken =
/// <BSAuditToken: 0x…; AUID: 501; …; PID: 72414; …>; … } … };` → the PIDs
/// in the camera block (audio attributions in the same message are
/// ignored). `None` when the block is cut off, so a truncated message never
/// reads as "everything stopped".
pub(super) fn system_status_camera_pids(message: &str) -> Option<BTreeSet<u32>> {
    let at = message.find(CAMERA_ATTRIBUTIONS)?;
    let rest = &message[at + CAMERA_ATTRIBUTIONS.len()..];
    let open = rest.find(['{', ';'])?;
    if rest.as_bytes()[open] == b';' {
        // `cameraAttributions = (null);`: no camera in use.
        return Some(BTreeSet::new());
    }
    let mut depth = 0usize;
    let mut close = None;
    for (i, b) in rest.bytes().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let block = &rest.as_bytes()[open..close?];
    let mut pids = BTreeSet::new();
    let mut at = 0;
    while let Some(found) = find_bytes(&block[at..], AUDIT_TOKEN.as_bytes()) {
        let token = &block[at + found..];
        at += found + AUDIT_TOKEN.len();
        // An audit token is ~150 bytes; looking no further than this keeps
        // a message full of unterminated tokens linear.
        let token = &token[..token.len().min(MAX_AUDIT_TOKEN)];
        let token = &token[..token.iter().position(|&b| b == b'>').unwrap_or(token.len())];
        let Some(p) = find_bytes(token, b" PID: ") else {
            continue;
        };
        let digits: Vec<u8> = token[p + 6..]
            .iter()
            .copied()
            .take_while(u8::is_ascii_digit)
            .collect();
        if let Some((pid, _)) = std::str::from_utf8(&digits).ok().and_then(leading_pid) {
            pids.insert(pid);
        }
    }
    Some(pids)
}

fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
