//! The call's clock. Real calls run on the wall clock; the flow runner runs on a virtual clock so
//! that a flow with a 10 s gather timeout runs in microseconds and its transcript shows the
//! timers exactly.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;

/// Time as a call sees it.
#[async_trait]
pub trait Clock: Send + Sync {
    /// Time since the call started.
    fn elapsed(&self) -> Duration;
    /// Wait `duration`.
    async fn sleep(&self, duration: Duration);
}

/// The wall clock.
#[derive(Debug)]
pub struct RealClock {
    start: Instant,
}

impl RealClock {
    /// A clock starting now.
    pub fn new() -> Self {
        Self { start: Instant::now() }
    }
}

impl Default for RealClock {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Clock for RealClock {
    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// A clock that only moves when someone sleeps on it, and then at once.
#[derive(Debug, Default)]
pub struct VirtualClock {
    now: Mutex<Duration>,
}

impl VirtualClock {
    /// A clock at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Move the clock forward without sleeping.
    pub fn advance(&self, duration: Duration) {
        *self.now.lock() += duration;
    }
}

#[async_trait]
impl Clock for VirtualClock {
    fn elapsed(&self) -> Duration {
        *self.now.lock()
    }

    async fn sleep(&self, duration: Duration) {
        self.advance(duration);
    }
}
