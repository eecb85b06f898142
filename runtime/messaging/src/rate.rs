//! Rate limits of outbound SMS, per sending number and per messaging profile: at most so many
//! messages a second and a minute (`[messaging.rate]`). A message over a limit is refused before
//! it is stored, with when to send again (the API answers 429 with `Retry-After`).
//!
//! The windows are fixed (the current second, the current minute, counted from the limiter's
//! start) and kept in this process: with several nodes each node applies the limits to what it
//! accepts. A message is counted when it is accepted, not when the carrier takes it.

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::Mutex;
use serde::Deserialize;
use uuid::Uuid;

/// `[messaging.rate]`: messages a sender may queue; 0 is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateConfig {
    /// Most SMS one number sends in a second.
    pub number_per_second: u32,
    /// Most SMS one number sends in a minute.
    pub number_per_minute: u32,
    /// Most SMS the numbers of one messaging profile send together in a second.
    pub profile_per_second: u32,
    /// Most SMS the numbers of one messaging profile send together in a minute.
    pub profile_per_minute: u32,
}

impl Default for RateConfig {
    fn default() -> Self {
        Self {
            number_per_second: 10,
            number_per_minute: 300,
            profile_per_second: 100,
            profile_per_minute: 3000,
        }
    }
}

impl RateConfig {
    /// No limit at all (benchmarks, tests of something else).
    pub const UNLIMITED: Self =
        Self { number_per_second: 0, number_per_minute: 0, profile_per_second: 0, profile_per_minute: 0 };
}

/// What a limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// A sending number.
    Number(i64),
    /// A messaging profile (all its numbers together).
    Profile(Uuid),
}

/// A refusal: which limit, and in how many milliseconds a message would be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    pub key: RateKey,
    /// `number_per_second`, … (the config key that refused it).
    pub limit: &'static str,
    /// Its value.
    pub max: u32,
    pub retry_after_ms: u64,
}

impl Limited {
    /// `retry_after_ms` rounded up to whole seconds (at least 1), for `Retry-After`.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after_ms.div_ceil(1000).max(1)
    }
}

impl std::fmt::Display for Limited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let window = if self.limit.ends_with("second") { "second" } else { "minute" };
        match self.key {
            RateKey::Number(tn) => write!(f, "the number {tn} may send {} SMS a {window}", self.max)?,
            RateKey::Profile(p) => write!(
                f,
                "the numbers of messaging profile {p} may send {} SMS a {window} together",
                self.max
            )?,
        }
        write!(
            f,
            " ([messaging.rate] {}) and reached it: send again in {} s, or spread the messages over more \
             numbers",
            self.limit,
            self.retry_after_secs()
        )
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    second: u64,
    in_second: u32,
    minute: u64,
    in_minute: u32,
}

impl Counts {
    fn roll(&mut self, now_ms: u64) {
        if self.second != now_ms / 1000 {
            self.second = now_ms / 1000;
            self.in_second = 0;
        }
        if self.minute != now_ms / 60_000 {
            self.minute = now_ms / 60_000;
            self.in_minute = 0;
        }
    }
}

/// Above this many keys, the ones idle for a minute are dropped.
const PRUNE_AT: usize = 100_000;

/// The limiter: counts per key, checked and taken together.
#[derive(Debug)]
pub struct RateLimiter {
    config: RateConfig,
    start: Instant,
    counts: Mutex<HashMap<RateKey, Counts>>,
}

impl RateLimiter {
    pub fn new(config: RateConfig) -> Self {
        Self { config, start: Instant::now(), counts: Mutex::new(HashMap::new()) }
    }

    pub fn config(&self) -> RateConfig {
        self.config
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn limits(&self, key: RateKey) -> [(&'static str, u32, bool); 2] {
        match key {
            RateKey::Number(_) => [
                ("number_per_second", self.config.number_per_second, true),
                ("number_per_minute", self.config.number_per_minute, false),
            ],
            RateKey::Profile(_) => [
                ("profile_per_second", self.config.profile_per_second, true),
                ("profile_per_minute", self.config.profile_per_minute, false),
            ],
        }
    }

    /// The first limit of `keys` that one more message would exceed at `now_ms`.
    fn over(&self, counts: &mut HashMap<RateKey, Counts>, keys: &[RateKey], now_ms: u64) -> Option<Limited> {
        for &key in keys {
            let c = counts.entry(key).or_default();
            c.roll(now_ms);
            for (limit, max, per_second) in self.limits(key) {
                let used = if per_second { c.in_second } else { c.in_minute };
                if max > 0 && used >= max {
                    let retry_after_ms =
                        if per_second { 1000 - now_ms % 1000 } else { 60_000 - now_ms % 60_000 };
                    return Some(Limited { key, limit, max, retry_after_ms });
                }
            }
        }
        None
    }

    /// Whether one more message of `keys` would be refused now, without counting it.
    pub fn check(&self, keys: &[RateKey]) -> Result<(), Limited> {
        self.check_at(keys, self.now_ms())
    }

    /// Counts one message for every key of `keys`, or refuses it (counting nothing) when one of
    /// them is at a limit.
    pub fn take(&self, keys: &[RateKey]) -> Result<(), Limited> {
        self.take_at(keys, self.now_ms())
    }

    /// [`Self::check`] at `now_ms` since the limiter's start.
    pub fn check_at(&self, keys: &[RateKey], now_ms: u64) -> Result<(), Limited> {
        let mut counts = self.counts.lock();
        self.over(&mut counts, keys, now_ms).map_or(Ok(()), Err)
    }

    /// [`Self::take`] at `now_ms` since the limiter's start.
    pub fn take_at(&self, keys: &[RateKey], now_ms: u64) -> Result<(), Limited> {
        let mut counts = self.counts.lock();
        if let Some(limited) = self.over(&mut counts, keys, now_ms) {
            return Err(limited);
        }
        for key in keys {
            let c = counts.entry(*key).or_default();
            c.in_second = c.in_second.saturating_add(1);
            c.in_minute = c.in_minute.saturating_add(1);
        }
        if counts.len() > PRUNE_AT {
            let minute = now_ms / 60_000;
            counts.retain(|_, c| c.minute == minute);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_gets_its_second_and_minute() {
        let limiter = RateLimiter::new(RateConfig {
            number_per_second: 2,
            number_per_minute: 3,
            ..RateConfig::UNLIMITED
        });
        let n = [RateKey::Number(12025550100)];
        assert!(limiter.take_at(&n, 100).is_ok());
        assert!(limiter.take_at(&n, 200).is_ok());
        let refused = limiter.take_at(&n, 300).unwrap_err();
        assert_eq!(
            (refused.limit, refused.retry_after_ms, refused.retry_after_secs()),
            ("number_per_second", 700, 1)
        );
        assert!(refused.to_string().contains("the number 12025550100 may send 2 SMS a second"), "{refused}");
        // Another number is not concerned.
        assert!(limiter.take_at(&[RateKey::Number(12025550101)], 300).is_ok());
        // The next second takes one more, then the minute is full until it ends.
        assert!(limiter.take_at(&n, 1_000).is_ok());
        let refused = limiter.take_at(&n, 1_500).unwrap_err();
        assert_eq!((refused.limit, refused.retry_after_secs()), ("number_per_minute", 59));
        assert!(limiter.take_at(&n, 60_000).is_ok());
    }

    #[test]
    fn a_refusal_counts_nothing_and_profiles_count_all_their_numbers() {
        let p = Uuid::new_v4();
        let limiter = RateLimiter::new(RateConfig {
            number_per_second: 1,
            profile_per_second: 2,
            ..RateConfig::UNLIMITED
        });
        let a = [RateKey::Number(1), RateKey::Profile(p)];
        let b = [RateKey::Number(2), RateKey::Profile(p)];
        let c = [RateKey::Number(3), RateKey::Profile(p)];
        assert!(limiter.take_at(&a, 0).is_ok());
        // Number 1 is full: refused, and the profile's count is not taken by the refusal.
        assert_eq!(limiter.take_at(&a, 1).unwrap_err().limit, "number_per_second");
        assert!(limiter.check_at(&b, 2).is_ok());
        assert!(limiter.take_at(&b, 2).is_ok());
        let refused = limiter.take_at(&c, 3).unwrap_err();
        assert_eq!((refused.key, refused.limit), (RateKey::Profile(p), "profile_per_second"));
        assert!(limiter.take_at(&c, 1_003).is_ok());
    }

    #[test]
    fn zero_is_no_limit() {
        let limiter = RateLimiter::new(RateConfig::UNLIMITED);
        for i in 0..10_000 {
            assert!(limiter.take_at(&[RateKey::Number(1), RateKey::Profile(Uuid::nil())], i / 100).is_ok());
        }
    }
}
