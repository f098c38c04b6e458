//! Exponential backoff with full jitter: for retrying the collector
//! (`report::upload`), asking a silent listener again (`observe::probe`)
//! and restarting the camera log stream (`observe::camera`). A leaf: it
//! imports nothing of the agent.
//!
//! After the n-th failure in a row the wait is a random duration in
//! `[base·2ⁿ⁻¹ / 2, base·2ⁿ⁻¹]`, capped at `cap`: growing fast enough that a
//! collector that is down is not hammered, and random enough that a fleet
//! which lost its collector at the same moment does not come back in
//! lock-step. (Half the interval is kept rather than AWS-style "full"
//! jitter from zero so that a run of small random draws cannot turn into
//! a tight retry loop.) A success resets it.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap: cap.max(base),
            failures: 0,
        }
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Count a failure and return how long to wait before the next try.
    /// `random` is a uniformly random number (the caller's source, so
    /// tests can fix it).
    pub fn fail(&mut self, random: u64) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let ceiling = self.ceiling();
        let half = ceiling / 2;
        let span = u64::try_from((ceiling - half).as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(random % span.saturating_add(1))
    }

    /// The longest the current wait may be: base·2^(failures−1), capped.
    fn ceiling(&self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(30);
        self.base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.cap)
            .min(self.cap)
    }
}

/// A random number for jitter. If the OS has no randomness to give (it
/// always has), the clock's nanoseconds are random enough for spreading
/// retries.
pub fn random() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::from(d.subsec_nanos()))
            .unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const BASE: Duration = Duration::from_secs(1);
    const CAP: Duration = Duration::from_secs(300);

    #[test]
    fn grows_doubling_to_the_cap_and_resets() {
        let mut b = Backoff::new(BASE, CAP);
        let mut ceilings = Vec::new();
        for _ in 0..12 {
            let d = b.fail(random());
            assert!(d >= b.ceiling() / 2 && d <= b.ceiling(), "{d:?}");
            ceilings.push(b.ceiling().as_secs());
        }
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(b.failures(), 12);
        b.reset();
        assert_eq!(b.failures(), 0);
        // The smallest draw gives half the ceiling.
        assert_eq!(b.fail(0), Duration::from_millis(500));
        assert_eq!(b.fail(0), Duration::from_secs(1));
    }

    #[test]
    fn thousands_of_failures_do_not_overflow() {
        let mut b = Backoff::new(BASE, CAP);
        for _ in 0..10_000 {
            assert!(b.fail(random()) <= CAP);
        }
    }

    proptest! {
        #[test]
        fn always_between_half_the_ceiling_and_the_ceiling(
            failures in 1u32..64, r in any::<u64>()
        ) {
            let mut b = Backoff::new(BASE, CAP);
            for _ in 1..failures {
                b.fail(0);
            }
            let d = b.fail(r);
            let ceiling = b.ceiling();
            prop_assert!(d >= ceiling / 2 && d <= ceiling, "{d:?} vs {ceiling:?}");
        }
    }
}
