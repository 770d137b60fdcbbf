//! Per-account lockout of the second factor: every TOTP or recovery code tried for an account
//! counts against that account, whichever pending sign-in it came through, so signing in again
//! buys no new guesses. After [`FREE_FAILURES`] wrong codes in a row the account's second step
//! is locked for the configured base time, doubling with each further wrong code (at most
//! [`MAX_DOUBLINGS`] times); a right code clears the count. One attempt per account is
//! checked at a time, so concurrent guesses cannot slip past the count.
//!
//! Kept in memory, as Kanidm keeps its soft locks: a restart clears them, which an attacker
//! cannot cause, and the table is trimmed of accounts whose last failure is long past.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Wrong codes allowed in a row before the first lock.
pub const FREE_FAILURES: u32 = 5;
/// The lock doubles with each wrong code past the free ones, up to base × 2^this.
pub const MAX_DOUBLINGS: u32 = 6;
/// Entries are forgotten this long after their lock ends (or their last failure).
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);
/// The table is trimmed when it grows past this many accounts.
const TRIM_AT: usize = 4096;

#[derive(Debug, Default)]
struct Entry {
    failures: u32,
    locked_until: Option<Instant>,
    last_failure: Option<Instant>,
    in_flight: bool,
}

/// Why an attempt may not be made now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    pub retry_after: Duration,
}

#[derive(Clone)]
pub struct Lockouts {
    base: Duration,
    table: Arc<Mutex<HashMap<String, Entry>>>,
}

/// One code being checked for an account; say how it went with [`Attempt::failed`] or
/// [`Attempt::succeeded`]. Dropped without either (a storage error, say), it counts nothing.
pub struct Attempt {
    account: String,
    lockouts: Lockouts,
}

impl Lockouts {
    pub fn new(base: Duration) -> Self {
        Self {
            base,
            table: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Entry>) -> R) -> R {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut table)
    }

    /// Starts an attempt for `account`, or says how long until one may be made.
    pub fn begin(&self, account: &str) -> Result<Attempt, Locked> {
        let now = Instant::now();
        self.with(|table| {
            if table.len() >= TRIM_AT {
                table.retain(|_, e| {
                    e.in_flight
                        || e.locked_until
                            .or(e.last_failure)
                            .is_some_and(|t| t + FORGET_AFTER > now)
                });
            }
            let entry = table.entry(account.to_string()).or_default();
            if let Some(until) = entry.locked_until
                && until > now
            {
                return Err(Locked {
                    retry_after: until - now,
                });
            }
            if entry.in_flight {
                return Err(Locked {
                    retry_after: Duration::from_secs(1),
                });
            }
            entry.in_flight = true;
            Ok(Attempt {
                account: account.to_string(),
                lockouts: self.clone(),
            })
        })
    }

    /// How long a lock lasts after `failures` wrong codes in a row (zero while they are free).
    pub fn lock_for(&self, failures: u32) -> Duration {
        if failures < FREE_FAILURES {
            return Duration::ZERO;
        }
        let doublings = (failures - FREE_FAILURES).min(MAX_DOUBLINGS);
        self.base.saturating_mul(1 << doublings)
    }
}

impl Attempt {
    /// A wrong code: counted, and the account locked once the free ones are spent.
    /// Returns the lock now in force, if any.
    pub fn failed(self) -> Option<Locked> {
        let now = Instant::now();
        let lock = self.lockouts.with(|table| {
            let entry = table.entry(self.account.clone()).or_default();
            entry.failures = entry.failures.saturating_add(1);
            entry.last_failure = Some(now);
            let lock = self.lockouts.lock_for(entry.failures);
            if !lock.is_zero() {
                entry.locked_until = Some(now + lock);
            }
            lock
        });
        (!lock.is_zero()).then_some(Locked { retry_after: lock })
    }

    /// A right code: the count starts again.
    pub fn succeeded(self) {
        self.lockouts.with(|table| {
            table.remove(&self.account);
        });
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.lockouts.with(|table| {
            if let Some(e) = table.get_mut(&self.account) {
                e.in_flight = false;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_the_free_failures_and_doubles() {
        let l = Lockouts::new(Duration::from_secs(60));
        for _ in 0..FREE_FAILURES - 1 {
            assert_eq!(l.begin("a").expect("free").failed(), None);
        }
        let lock = l.begin("a").expect("last free").failed();
        assert_eq!(lock.map(|l| l.retry_after), Some(Duration::from_secs(60)));
        assert!(l.begin("a").is_err(), "locked");
        assert!(l.begin("b").is_ok(), "other accounts are not");
        assert_eq!(l.lock_for(FREE_FAILURES + 1), Duration::from_secs(120));
        assert_eq!(
            l.lock_for(FREE_FAILURES + 50),
            Duration::from_secs(60 << MAX_DOUBLINGS)
        );
    }

    #[test]
    fn one_attempt_at_a_time_and_success_clears() {
        let l = Lockouts::new(Duration::from_secs(60));
        let first = l.begin("a").expect("first");
        assert!(l.begin("a").is_err(), "a second attempt waits");
        first.failed();
        let again = l.begin("a").expect("after the first ended");
        again.succeeded();
        assert_eq!(l.lock_for(0), Duration::ZERO);
        assert!(l.with(|t| t.is_empty()));
    }
}
