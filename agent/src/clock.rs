//! The wall clock as the agent records it: Unix seconds, milliseconds and
//! microseconds, and seconds as RFC 3339 text. One place, so every stage
//! rounds and clamps the same way: a clock set before 1970 reads as 0 (or
//! a negative second count where a sign can be kept), one far in the future
//! saturates instead of wrapping.
//!
//! A leaf: it imports nothing of the agent, so any stage may use it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (negative before it).
pub fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Seconds since the epoch, now.
pub fn unix_now() -> i64 {
    unix_secs(SystemTime::now())
}

/// Milliseconds since the epoch, now; 0 for a clock set before 1970.
pub fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Microseconds since the epoch, now; 0 for a clock set before 1970.
pub fn unix_now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `2026-11-28T06:30:12Z` for a Unix time in seconds (out-of-range times,
/// which no clock produces, print as the epoch).
pub fn rfc3339(unix: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| unix.to_string())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_562_716_800), "2019-07-10T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn before_the_epoch_is_negative_seconds() {
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(5)), -5);
        assert_eq!(unix_secs(UNIX_EPOCH + Duration::from_millis(1999)), 1);
    }

    #[test]
    fn the_units_agree() {
        let (s, ms, us) = (unix_now(), unix_now_ms(), unix_now_us());
        let us_s = i64::try_from(us / 1_000_000).unwrap();
        assert!(ms / 1000 >= s && ms / 1000 - s <= 1, "{s} {ms}");
        assert!(us_s >= s && us_s - s <= 1, "{s} {us}");
    }
}
