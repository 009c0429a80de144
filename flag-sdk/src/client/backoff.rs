//! When to reconnect: the numbers as named constants and one small state machine, so the
//! policy is read (and tested) in one place. No I/O; the jitter source is passed in.
//!
//! Exponential backoff with "equal jitter": attempt `n` waits between half and all of
//! `min(INITIAL * 2^n, MAX)`. A connection that stayed healthy for [`RESET_AFTER`] starts
//! over at [`INITIAL`]. A rejected token (401/403) waits [`AUTH_INITIAL`] doubling to
//! [`AUTH_MAX`]: minutes, never a hot loop against an auth failure.

use std::time::Duration;

/// The first reconnection delay.
pub(crate) const INITIAL: Duration = Duration::from_secs(1);
/// The longest reconnection delay.
pub(crate) const MAX: Duration = Duration::from_secs(30);
/// A connection healthy for this long resets the backoff.
pub(crate) const RESET_AFTER: Duration = Duration::from_secs(60);
/// The first delay after the server rejected the token.
pub(crate) const AUTH_INITIAL: Duration = Duration::from_secs(120);
/// The longest delay after the server rejected the token.
pub(crate) const AUTH_MAX: Duration = Duration::from_secs(600);

/// Why the last connection ended, as far as backoff cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Network errors, 5xx, malformed data, staleness: try again soon.
    Recoverable,
    /// The server refused the token: try again in minutes.
    Auth,
}

/// Reconnection state of one stream.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    attempts: u32,
    auth_attempts: u32,
}

impl Backoff {
    /// A backoff whose first delay is `initial` (normally [`INITIAL`]).
    pub fn new(initial: Duration) -> Self {
        Backoff {
            initial: initial.min(MAX),
            attempts: 0,
            auth_attempts: 0,
        }
    }

    /// Changes the first delay (the server's `retry:`), keeping the attempt count.
    pub fn set_initial(&mut self, initial: Duration) {
        self.initial = initial.min(MAX);
    }

    /// A connection ended after being up for `healthy_for`; returns how long to wait.
    /// `jitter` is a uniform sample in `[0, 1)`.
    pub fn next_delay(&mut self, failure: Failure, healthy_for: Duration, jitter: f64) -> Duration {
        if healthy_for >= RESET_AFTER {
            self.attempts = 0;
        }
        let base = match failure {
            Failure::Recoverable => {
                self.auth_attempts = 0;
                let base = grow(self.initial, self.attempts, MAX);
                self.attempts = self.attempts.saturating_add(1);
                base
            }
            Failure::Auth => {
                let base = grow(AUTH_INITIAL, self.auth_attempts, AUTH_MAX);
                self.auth_attempts = self.auth_attempts.saturating_add(1);
                base
            }
        };
        let jitter = jitter.clamp(0.0, 1.0);
        base / 2 + base.mul_f64(jitter / 2.0)
    }
}

fn grow(initial: Duration, attempts: u32, max: Duration) -> Duration {
    initial
        .checked_mul(1u32.checked_shl(attempts.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(max)
        .min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Duration = Duration::ZERO;

    #[test]
    fn doubles_from_one_second_to_thirty() {
        let mut b = Backoff::new(INITIAL);
        let full: Vec<u64> = (0..8)
            .map(|_| b.next_delay(Failure::Recoverable, NOW, 1.0).as_secs())
            .collect();
        assert_eq!(full, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn jitter_stays_within_half_and_full() {
        let mut b = Backoff::new(INITIAL);
        assert_eq!(
            b.next_delay(Failure::Recoverable, NOW, 0.0),
            Duration::from_millis(500)
        );
        let d = b.next_delay(Failure::Recoverable, NOW, 0.5);
        assert_eq!(d, Duration::from_millis(1500));
    }

    #[test]
    fn resets_after_a_healthy_minute() {
        let mut b = Backoff::new(INITIAL);
        for _ in 0..5 {
            b.next_delay(Failure::Recoverable, NOW, 1.0);
        }
        assert_eq!(
            b.next_delay(Failure::Recoverable, RESET_AFTER, 1.0),
            INITIAL
        );
        assert_eq!(
            b.next_delay(Failure::Recoverable, RESET_AFTER / 2, 1.0),
            INITIAL * 2
        );
    }

    #[test]
    fn auth_failures_wait_minutes() {
        let mut b = Backoff::new(INITIAL);
        let d = b.next_delay(Failure::Auth, NOW, 0.0);
        assert!(d >= Duration::from_secs(60), "{d:?}");
        for _ in 0..10 {
            assert!(b.next_delay(Failure::Auth, NOW, 1.0) <= AUTH_MAX);
        }
        assert_eq!(b.next_delay(Failure::Auth, NOW, 1.0), AUTH_MAX);
    }

    #[test]
    fn server_retry_changes_the_first_delay() {
        let mut b = Backoff::new(INITIAL);
        b.set_initial(Duration::from_millis(100));
        assert_eq!(
            b.next_delay(Failure::Recoverable, NOW, 1.0),
            Duration::from_millis(100)
        );
        b.set_initial(Duration::from_secs(3600));
        assert_eq!(b.next_delay(Failure::Recoverable, NOW, 1.0), MAX);
    }
}
