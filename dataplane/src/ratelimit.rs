//! A token bucket on the caller's clock, for the rate limits of the packet path (neighbour
//! learning, per-subscriber new sessions).
//!
//! Sans-I/O like the rest of the core: the caller hands in `now` and the rate, so one
//! bucket is 16 bytes and a table of them (one per subscriber) holds no configuration.
//! Tokens are kept in thousandths, so a rate below one token per millisecond loses no
//! time between calls.

use crate::time::Instant;

/// Tokens, refilled at `rate` per second up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// Thousandths of a token.
    milli: u64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens at `now`.
    pub const fn full(burst: u32, now: Instant) -> TokenBucket {
        TokenBucket { milli: burst as u64 * 1000, last: now }
    }

    /// Take one token if there is one (refilling first). `rate` is tokens per second.
    #[inline]
    pub fn take(&mut self, now: Instant, rate: u32, burst: u32) -> bool {
        let cap = u64::from(burst) * 1000;
        let elapsed = now.millis_since(self.last);
        if elapsed > 0 {
            // One millisecond at `rate` tokens/s is `rate` thousandths of a token.
            self.milli = self.milli.saturating_add(elapsed.saturating_mul(u64::from(rate))).min(cap);
            self.last = now;
        }
        if self.milli < 1000 {
            return false;
        }
        self.milli -= 1000;
        true
    }

    /// Whole tokens left (for tests and reports; no refill).
    pub fn tokens(&self) -> u64 {
        self.milli / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let mut b = TokenBucket::full(10, Instant::ZERO);
        let taken = (0..100).filter(|_| b.take(Instant::ZERO, 100, 10)).count();
        assert_eq!(taken, 10, "the burst");
        // 100/s: one token per 10 ms, the fraction carried over between calls.
        let mut got = 0;
        for ms in 1..=1000 {
            if b.take(Instant::from_millis(ms), 100, 10) {
                got += 1;
            }
        }
        assert_eq!(got, 100, "exactly the rate over a second");
        // Idle for a long time: refills to the burst, no more.
        let later = Instant::from_secs(100);
        assert_eq!((0..100).filter(|_| b.take(later, 100, 10)).count(), 10);
    }

    #[test]
    fn slow_rates_lose_no_time() {
        let mut b = TokenBucket::full(5, Instant::ZERO);
        assert_eq!((0..10).filter(|_| b.take(Instant::ZERO, 3, 5)).count(), 5);
        // 3 per second, asked every millisecond: 3 in the next second, 30 in ten.
        let got = (1..=1000).filter(|&ms| b.take(Instant::from_millis(ms), 3, 5)).count();
        assert_eq!(got, 3);
        let got = (1001..=10_000).filter(|&ms| b.take(Instant::from_millis(ms), 3, 5)).count();
        assert_eq!(got, 27);
    }

    #[test]
    fn a_clock_going_back_refills_nothing() {
        let mut b = TokenBucket::full(1, Instant::from_secs(10));
        assert!(b.take(Instant::from_secs(10), 1000, 1));
        assert!(!b.take(Instant::from_secs(5), 1000, 1));
        assert_eq!(b.tokens(), 0);
    }
}
