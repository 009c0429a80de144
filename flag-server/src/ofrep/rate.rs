//! The per-token rate limit of OFREP: a GCRA bucket per token (`governor`), refilled at the
//! configured rate with a burst of one second's worth. Over it: `429` with `Retry-After`.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use super::wire::{OfrepError, Refusal};

/// Requests per second per token by default: far above what one browser or one service
/// instance sends, low enough that a leaked client token cannot flood the server.
pub const DEFAULT_PER_SECOND: u32 = 5_000;

/// The limiter (none when the rate is 0).
pub struct RateLimit {
    limiter: Option<DefaultKeyedRateLimiter<i64>>,
    clock: DefaultClock,
}

impl RateLimit {
    /// `per_second` requests per token, bursts of as many; 0 turns the limit off.
    pub fn new(per_second: u32) -> RateLimit {
        RateLimit {
            limiter: NonZeroU32::new(per_second)
                .map(|rate| DefaultKeyedRateLimiter::keyed(Quota::per_second(rate))),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request of token `id`, or refuses it with the seconds to wait.
    pub fn check(&self, id: i64) -> Result<(), OfrepError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&id).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            OfrepError::refused(
                Refusal::TooManyRequests(seconds.max(1)),
                "over this token's rate limit of OFREP requests; retry after the time given",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_over_the_rate_is_refused_with_a_wait() {
        let limit = RateLimit::new(5);
        for _ in 0..5 {
            limit.check(1).unwrap();
        }
        let refused = limit.check(1).unwrap_err();
        assert_eq!(refused.refusal, Some(Refusal::TooManyRequests(1)));
        // Another token has its own bucket; 0 is no limit.
        limit.check(2).unwrap();
        let none = RateLimit::new(0);
        for _ in 0..1000 {
            none.check(1).unwrap();
        }
    }
}
