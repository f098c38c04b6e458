//! Times as the collector stores them (milliseconds since the Unix epoch)
//! and as people and query strings write them.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A `since`/`until` value: milliseconds since the epoch, or an RFC 3339
/// date-time such as `2026-11-28T06:00:00Z`.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    OffsetDateTime::parse(s, &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            format!("{s:?} is not a time: give milliseconds since 1970 or RFC 3339 like 2026-11-28T06:00:00Z")
        })
}

fn to_datetime(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-28T06:40:05.250Z`.
pub fn rfc3339(ms: i64) -> String {
    to_datetime(ms)
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// For people: `2026-11-28 06:40:05 UTC`.
pub fn human(ms: i64) -> String {
    match to_datetime(ms) {
        Some(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        None => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms() {
        assert_eq!(parse_time("1764312005250"), Ok(1_764_312_005_250));
        assert_eq!(parse_time("2025-11-28T06:40:05.25Z"), Ok(1_764_312_005_250));
        assert_eq!(
            parse_time("2025-11-28T07:40:05.25+01:00"),
            Ok(1_764_312_005_250)
        );
        assert!(parse_time("yesterday").unwrap_err().contains("RFC 3339"));
        assert!(parse_time("1' OR '1'='1").is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(rfc3339(1_764_312_005_250), "2025-11-28T06:40:05.25Z");
        assert_eq!(human(1_764_312_005_250), "2025-11-28 06:40:05 UTC");
        assert_eq!(human(i64::MAX), i64::MAX.to_string());
    }
}
