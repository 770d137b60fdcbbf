//! When to renew and when to retry: pure functions of the certificate's lifetime.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

/// The longest wait between retries of a failing order.
pub const MAX_RETRY: Duration = Duration::from_secs(6 * 3600);

/// When a certificate valid from `not_before` to `not_after` is renewed: with a third of its
/// lifetime left, less a random part of a further twentieth (so many servers issued at once
/// do not all come back at once).
pub fn renew_at(not_before: DateTime<Utc>, not_after: DateTime<Utc>) -> DateTime<Utc> {
    let lifetime = (not_after - not_before).max(chrono::Duration::zero());
    let jitter_ms = lifetime.num_milliseconds() / 20;
    let jitter = if jitter_ms > 0 {
        rand::rng().random_range(0..jitter_ms)
    } else {
        0
    };
    not_after - lifetime / 3 - chrono::Duration::milliseconds(jitter)
}

/// A random time inside a renewal window the CA suggested (RFC 9773 §4.2).
pub fn inside(start: DateTime<Utc>, end: DateTime<Utc>) -> DateTime<Utc> {
    let span = (end - start).num_milliseconds();
    if span <= 0 {
        return start;
    }
    start + chrono::Duration::milliseconds(rand::rng().random_range(0..span))
}

/// The wait after the `failures`-th failure in a row: `first`, doubling each time, at most
/// [`MAX_RETRY`], with up to a tenth of random spread.
pub fn retry_after(first: Duration, failures: u32) -> Duration {
    let doubled = first.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    let base = doubled.min(MAX_RETRY);
    let spread = base.as_millis() as u64 / 10;
    let extra = if spread > 0 {
        rand::rng().random_range(0..spread)
    } else {
        0
    };
    base + Duration::from_millis(extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn renewal_comes_with_a_third_of_the_lifetime_left() {
        // 90 days: renewed between day 56.5 and day 60.
        let (from, to) = (at(0), at(90 * 86400));
        for _ in 0..100 {
            let r = renew_at(from, to);
            assert!(r <= at(60 * 86400), "{r}");
            assert!(r > at(60 * 86400 - 90 * 86400 / 20 - 1), "{r}");
        }
        // A certificate already past its renewal time is renewed at once (the time is past).
        assert!(renew_at(at(0), at(30)) < at(30));
    }

    #[test]
    fn retries_double_and_stop_at_six_hours() {
        let first = Duration::from_secs(60);
        let r1 = retry_after(first, 1);
        assert!(r1 >= first && r1 < first + first / 10 + Duration::from_secs(1));
        let r3 = retry_after(first, 3);
        assert!(r3 >= first * 4 && r3 < first * 5, "{r3:?}");
        let r30 = retry_after(first, 30);
        assert!(
            r30 >= MAX_RETRY && r30 <= MAX_RETRY + MAX_RETRY / 10,
            "{r30:?}"
        );
    }

    #[test]
    fn a_window_time_is_inside_it() {
        for _ in 0..100 {
            let t = inside(at(100), at(200));
            assert!(t >= at(100) && t < at(200));
        }
        assert_eq!(inside(at(100), at(50)), at(100));
    }
}
