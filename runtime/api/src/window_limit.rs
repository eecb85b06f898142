//! At most so many of something per key in a sliding window: test webhooks per account a
//! minute, sign-ups per client address an hour.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When each key's takes of the window happened. Keys without a take in the window are
/// forgotten, so the map holds only the recently active.
#[derive(Debug)]
pub struct WindowLimiter<K>(Mutex<HashMap<K, Vec<Instant>>>);

impl<K> Default for WindowLimiter<K> {
    fn default() -> Self {
        WindowLimiter(Mutex::new(HashMap::new()))
    }
}

impl<K: Eq + Hash> WindowLimiter<K> {
    /// Take one of `key`'s `max` in `window`, or say in how many seconds the next is possible.
    pub fn take(&self, key: K, max: usize, window: Duration) -> Result<(), u64> {
        let now = Instant::now();
        let mut taken = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        taken.retain(|_, times| {
            times.retain(|at| now.duration_since(*at) < window);
            !times.is_empty()
        });
        let times = taken.entry(key).or_default();
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
}
