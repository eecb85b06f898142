//! At most so many of something per key in a sliding window: test webhooks per account a
//! minute, sign-ups per client address (IPv6 per /64) an hour. The keys kept are bounded
//! ([`DEFAULT_MAX_KEYS`]).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys a limiter keeps by default: past it, a new key waits (fails closed) until old ones
/// leave the window, so many distinct keys (addresses) cannot grow memory without end.
pub const DEFAULT_MAX_KEYS: usize = 10_000;

/// When each key's takes of the window happened. Keys without a take in the window are
/// forgotten, so the map holds only the recently active, and at most `max_keys` of them.
#[derive(Debug)]
pub struct WindowLimiter<K> {
    taken: Mutex<HashMap<K, Vec<Instant>>>,
    max_keys: usize,
}

impl<K> Default for WindowLimiter<K> {
    fn default() -> Self {
        WindowLimiter::with_max_keys(DEFAULT_MAX_KEYS)
    }
}

impl<K> WindowLimiter<K> {
    /// A limiter that keeps at most `max_keys` keys.
    pub fn with_max_keys(max_keys: usize) -> Self {
        WindowLimiter { taken: Mutex::new(HashMap::new()), max_keys: max_keys.max(1) }
    }
}

impl<K: Eq + Hash> WindowLimiter<K> {
    /// Take one of `key`'s `max` in `window`, or say in how many seconds the next is possible.
    /// A new key when the limiter is full waits until some key's takes leave the window.
    pub fn take(&self, key: K, max: usize, window: Duration) -> Result<(), u64> {
        let now = Instant::now();
        let in_window = |at: &Instant| now.duration_since(*at) < window;
        let mut taken = self.taken.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !taken.contains_key(&key) && taken.len() >= self.max_keys {
            // Full: forget the keys whose window has passed (a sweep only when full, so a
            // take costs one key's work otherwise).
            taken.retain(|_, times| {
                times.retain(in_window);
                !times.is_empty()
            });
            if taken.len() >= self.max_keys {
                let oldest = taken.values().filter_map(|times| times.first()).min().copied().unwrap_or(now);
                return Err(window.saturating_sub(now.duration_since(oldest)).as_secs().max(1));
            }
        }
        let times = taken.entry(key).or_default();
        times.retain(in_window);
        if times.len() >= max {
            let oldest = times.first().copied().unwrap_or(now);
            return Err(window.saturating_sub(now.duration_since(oldest)).as_secs().max(1));
        }
        times.push(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_has_its_own_window() {
        let limiter = WindowLimiter::default();
        let minute = Duration::from_secs(60);
        assert_eq!(limiter.take("a", 2, minute), Ok(()));
        assert_eq!(limiter.take("a", 2, minute), Ok(()));
        let retry = limiter.take("a", 2, minute).expect_err("over");
        assert!((59..=60).contains(&retry), "{retry}");
        assert_eq!(limiter.take("b", 2, minute), Ok(()), "another key");
        // A window that has passed forgets.
        assert_eq!(limiter.take("c", 1, Duration::ZERO), Ok(()));
        assert_eq!(limiter.take("c", 1, Duration::ZERO), Ok(()));
    }

    #[test]
    fn a_full_limiter_makes_new_keys_wait_and_forgets_passed_windows() {
        let limiter = WindowLimiter::with_max_keys(2);
        let minute = Duration::from_secs(60);
        assert_eq!(limiter.take(1, 5, minute), Ok(()));
        assert_eq!(limiter.take(2, 5, minute), Ok(()));
        let retry = limiter.take(3, 5, minute).expect_err("full: a new key waits");
        assert!((59..=60).contains(&retry), "{retry}");
        assert_eq!(limiter.take(1, 5, minute), Ok(()), "a known key goes on");
        // Keys whose window has passed make room.
        let short = WindowLimiter::with_max_keys(1);
        assert_eq!(short.take(1, 5, Duration::ZERO), Ok(()));
        assert_eq!(short.take(2, 5, Duration::ZERO), Ok(()), "the first key's window passed");
        assert_eq!(short.taken.lock().map(|taken| taken.len()).unwrap_or_default(), 1, "bounded");
    }
}
