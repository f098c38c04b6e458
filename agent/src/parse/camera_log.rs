//! Who turned the camera on, from `log stream --style ndjson` output.
//!
//! macOS has no API that names the process using a camera; the unified log
//! does, in a different message on each generation (shapes from
//! `macos-reference.md`, "Camera in use", and Objective-See's OverSight):
//!
//! | macOS     | subsystem                         | message                                                      |
//! |-----------|-----------------------------------|--------------------------------------------------------------|
//! | 14+       | `com.apple.cmio`/`coremedia`      | `… [{private}901][{private}0] added <private> endpoint <private> camera <private>` |
//! | 14+       | `com.apple.controlcenter`         | `Active activity attributions changed to ["cam:us.zoom.xos"]` |
//! | 13.3–13.x | `com.apple.cmio` (debug level)    | `CMIOExtensionPropertyDeviceControlPID = 90429;`             |
//! | < 13.3    | `com.apple.SystemStatus`          | `cameraAttributions = <STListData…> { … <BSAuditToken: …; PID: 72414; …> … }` |
//!
//! The endpoint *stop* message (`removed endpoint <private>`) is
//! **unconfirmed**: no second public source shows it. It is parsed when it
//! appears; the attribution lists, which carry the full current set and so
//! give stops by difference, are the dependable stop signal.
//!
//! [`CameraLogParser`] is pure and streaming: one line in, zero or more
//! [`CameraEvent`]s out. Its only state is the last attribution set per
//! source, so it can diff successive lists. It skips anything it does not
//! recognise (the `Filtering the log data using …` header, other messages,
//! broken JSON, over-long lines) and never panics.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;

mod shapes;

/// Longest line looked at. A SystemStatus message with several attributions
/// is a few KiB; anything near this is not a message we want. The reader
/// feeding the parser should bound its own line buffer to the same size.
pub const MAX_LINE_LEN: usize = 64 * 1024;

/// ControlCenter's executable. os_log lets any process log under any
/// subsystem, but `processImagePath` is filled in by the logging system, so
/// checking it stops a helper from logging a fake "attributions changed to
/// []" to hide its own camera use.
pub const CONTROL_CENTER_PATH: &str =
    "/System/Library/CoreServices/ControlCenter.app/Contents/MacOS/ControlCenter";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraChange {
    Start,
    Stop,
}

/// Who uses the camera, as the message names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraClient {
    Pid(u32),
    BundleId(String),
    /// The message says a camera session ended or began but not whose.
    Unknown,
}

/// Which message shape an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogShape {
    /// macOS 14+: cmio/coremedia endpoint added / removed.
    CmioEndpoint,
    /// macOS 14+: ControlCenter's sensor-indicator attribution list.
    ControlCenter,
    /// macOS 13.3–13.x: `CMIOExtensionPropertyDeviceControlPID`.
    DeviceControlPid,
    /// Before 13.3: SystemStatus `cameraAttributions`.
    SystemStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraEvent {
    pub change: CameraChange,
    pub client: CameraClient,
    /// The line's `timestamp` as microseconds since the Unix epoch; `None`
    /// when missing or malformed (the caller then uses its own clock).
    pub at_unix_us: Option<u64>,
    pub shape: LogShape,
    /// `processID` of the process that logged the line (ControlCenter, the
    /// camera service), not of the camera's user.
    pub logger_pid: Option<u32>,
}

/// Counters for the health report: a parser that matches nothing for hours
/// on a busy machine is a sign the message shapes changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ParseStats {
    pub lines: u64,
    pub not_json: u64,
    pub oversized: u64,
    pub matched: u64,
}

/// The streaming parser. Feed it every line `log stream` prints, in order.
#[derive(Debug, Default)]
pub struct CameraLogParser {
    /// Bundle ids with `cam:` in ControlCenter's last list.
    control_center: BTreeSet<String>,
    /// PIDs in SystemStatus's last `cameraAttributions`.
    system_status: BTreeSet<u32>,
    stats: ParseStats,
}

impl CameraLogParser {
    pub fn new() -> CameraLogParser {
        CameraLogParser::default()
    }

    pub fn stats(&self) -> ParseStats {
        self.stats
    }

    /// One line of `log stream --style ndjson` output (with or without its
    /// newline). Returns the camera starts and stops it implies.
    pub fn feed_line(&mut self, line: &str) -> Vec<CameraEvent> {
        self.stats.lines += 1;
        if line.len() > MAX_LINE_LEN {
            self.stats.oversized += 1;
            return Vec::new();
        }
        let line = line.trim();
        if line.is_empty() {
            return Vec::new();
        }
        // The header (`Filtering the log data using "…"`) and anything else
        // that is not one JSON object is skipped, not an error.
        let Some(Value::Object(fields)) = line
            .starts_with('{')
            .then(|| serde_json::from_str::<Value>(line).ok())
            .flatten()
        else {
            self.stats.not_json += 1;
            return Vec::new();
        };
        let text = |key: &str| fields.get(key).and_then(Value::as_str);
        if text("eventType").is_some_and(|t| t != "logEvent") {
            return Vec::new();
        }
        let (Some(subsystem), Some(message)) = (text("subsystem"), text("eventMessage")) else {
            return Vec::new();
        };
        let stamp = Stamp {
            at_unix_us: text("timestamp").and_then(parse_timestamp),
            logger_pid: fields
                .get("processID")
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok()),
        };
        let events = match subsystem {
            "com.apple.controlcenter" => {
                if text("processImagePath") != Some(CONTROL_CENTER_PATH) {
                    return Vec::new();
                }
                match shapes::control_center_cameras(message) {
                    Some(now) => {
                        let events = diff_sets(&self.control_center, &now, |id| {
                            CameraClient::BundleId(id.clone())
                        });
                        self.control_center = now;
                        stamp.events(events, LogShape::ControlCenter)
                    }
                    None => Vec::new(),
                }
            }
            "com.apple.cmio" | "com.apple.coremedia" => {
                if let Some(pid) = shapes::device_control_pid(message) {
                    // The property names the process in control of the
                    // device; 0 means none is any more. That is inferred
                    // (macos-reference.md documents only the start), but
                    // without it a 13.3 session would never end.
                    let change = if pid == 0 {
                        (CameraChange::Stop, CameraClient::Unknown)
                    } else {
                        (CameraChange::Start, CameraClient::Pid(pid))
                    };
                    stamp.events(vec![change], LogShape::DeviceControlPid)
                } else if let Some((change, client)) = shapes::cmio_endpoint(message) {
                    stamp.events(vec![(change, client)], LogShape::CmioEndpoint)
                } else {
                    Vec::new()
                }
            }
            "com.apple.SystemStatus" => match shapes::system_status_camera_pids(message) {
                Some(now) => {
                    let events =
                        diff_sets(&self.system_status, &now, |pid| CameraClient::Pid(*pid));
                    self.system_status = now;
                    stamp.events(events, LogShape::SystemStatus)
                }
                None => Vec::new(),
            },
            _ => Vec::new(),
        };
        if !events.is_empty() {
            self.stats.matched += 1;
        }
        events
    }
}

/// What every event from one line shares.
struct Stamp {
    at_unix_us: Option<u64>,
    logger_pid: Option<u32>,
}

impl Stamp {
    fn events(
        &self,
        changes: Vec<(CameraChange, CameraClient)>,
        shape: LogShape,
    ) -> Vec<CameraEvent> {
        changes
            .into_iter()
            .map(|(change, client)| CameraEvent {
                change,
                client,
                at_unix_us: self.at_unix_us,
                shape,
                logger_pid: self.logger_pid,
            })
            .collect()
    }
}

/// Stops (in `before`, not `now`) first, then starts, each in set order.
fn diff_sets<T: Ord>(
    before: &BTreeSet<T>,
    now: &BTreeSet<T>,
    client: impl Fn(&T) -> CameraClient,
) -> Vec<(CameraChange, CameraClient)> {
    let stops = before
        .difference(now)
        .map(|x| (CameraChange::Stop, client(x)));
    let starts = now
        .difference(before)
        .map(|x| (CameraChange::Start, client(x)));
    stops.chain(starts).collect()
}

/// `log`'s timestamp: `2025-07-27 15:47:10.504275-0400`.
static TIMESTAMP_FORMAT: LazyLock<Vec<BorrowedFormatItem<'static>>> = LazyLock::new(|| {
    time::format_description::parse_borrowed::<1>(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond][offset_hour sign:mandatory][offset_minute]",
    )
    // The description is a constant checked by `timestamp_parses`; an
    // empty description just makes every timestamp `None`.
    .unwrap_or_default()
});

fn parse_timestamp(text: &str) -> Option<u64> {
    let at = OffsetDateTime::parse(text, &TIMESTAMP_FORMAT).ok()?;
    // Before 1970 is not a time a live log prints.
    u64::try_from(at.unix_timestamp_nanos() / 1000).ok()
}

/// The `--predicate` for `log stream` on macOS `major.minor`. Narrow on
/// purpose: coremedia logs constantly, and every line we do not ask for is
/// CPU the agent does not spend at idle.
pub fn predicate_for(major: u32, minor: u32) -> String {
    if major >= 14 {
        concat!(
            r#"((subsystem == "com.apple.cmio" OR subsystem == "com.apple.coremedia") AND eventMessage CONTAINS "endpoint")"#,
            r#" OR (subsystem == "com.apple.controlcenter" AND category == "sensor-indicators" AND eventMessage BEGINSWITH "Active activity attributions changed to")"#,
        )
        .to_string()
    } else if major == 13 && minor >= 3 {
        r#"subsystem == "com.apple.cmio" AND eventMessage CONTAINS "CMIOExtensionPropertyDeviceControlPID""#
            .to_string()
    } else {
        r#"subsystem == "com.apple.SystemStatus" AND eventMessage CONTAINS "cameraAttributions""#
            .to_string()
    }
}

/// The whole `log` argument list for macOS `major.minor`: 13.3's message is
/// logged at debug level, which `log stream` hides unless asked.
pub fn log_stream_args(major: u32, minor: u32) -> Vec<String> {
    let level = if major == 13 && minor >= 3 {
        "debug"
    } else {
        "default"
    };
    [
        "stream",
        "--style",
        "ndjson",
        "--level",
        level,
        "--predicate",
    ]
    .into_iter()
    .map(str::to_string)
    // tccd's grant changes ride on the same child (rare lines, one
    // process less): they are what lenscap knows of grants when the
    // per-user TCC.db is out of reach (`parse::tcc_log`).
    .chain(std::iter::once(format!(
        "({}) OR ({})",
        predicate_for(major, minor),
        crate::parse::tcc_log::log_stream_predicate()
    )))
    .collect()
}

#[cfg(test)]
mod tests;
