//! Password checks (argon2id: ~19 MiB and a core for tens of milliseconds each) run at most
//! [`PASSWORD_HASH_PERMITS`] at a time.
//!
//! The store hashes on tokio's blocking pool, which DNS lookups, audio decoding and component
//! compiles share: unbounded, a flood of logins would fill it (512 threads, 19 MiB each) and
//! take every core. Here a login waits for a permit — at most [`PASSWORD_HASH_QUEUE`] of them
//! wait, for at most [`PASSWORD_HASH_WAIT`]; the rest are answered 503 with `Retry-After` at
//! once, costing nothing.
//!
//! The check runs in a task of its own that holds the permit: a client that hangs up does not
//! free the permit while its hash is still being computed.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::error::ApiError;

/// Password hashes computed at once. Two: logins are rare next to token-authenticated
/// requests, and two cores' worth of argon2 (about 40 logins a second) leaves the rest of the
/// machine to calls.
pub const PASSWORD_HASH_PERMITS: usize = 2;

/// Logins waiting for a permit; more are refused at once (503).
pub const PASSWORD_HASH_QUEUE: usize = 32;

/// Longest wait for a permit before a login is refused (503).
pub const PASSWORD_HASH_WAIT: Duration = Duration::from_secs(5);

/// `Retry-After` of a login refused because the queue was full, seconds.
pub const PASSWORD_HASH_RETRY_AFTER_SECS: u64 = 1;

/// The permits, and gauges of their use.
#[derive(Debug)]
pub struct PasswordGate {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    checked: Arc<AtomicU64>,
}

impl Default for PasswordGate {
    fn default() -> Self {
        PasswordGate {
            permits: Arc::new(Semaphore::new(PASSWORD_HASH_PERMITS)),
            waiting: AtomicUsize::new(0),
            running: Arc::new(AtomicUsize::new(0)),
            peak: Arc::new(AtomicUsize::new(0)),
            checked: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// Takes a waiter off the queue count however the wait ends (also when the request is
/// dropped while waiting).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PasswordGate {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `check` (a password check: it hashes) once a permit is free, or refuses with
    /// [`ApiError::Busy`] when the queue is full or the wait too long.
    pub async fn run<F, T>(&self, check: F) -> Result<T, ApiError>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let busy = || ApiError::Busy {
            what: "too many logins are being checked",
            retry_after_secs: PASSWORD_HASH_RETRY_AFTER_SECS,
        };
        let permit = {
            if self.waiting.fetch_add(1, Ordering::SeqCst) >= PASSWORD_HASH_QUEUE {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                return Err(busy());
            }
            let _waiting = Waiting(&self.waiting);
            match tokio::time::timeout(PASSWORD_HASH_WAIT, self.permits.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                // Timed out (or the semaphore closed, which it never is).
                _ => return Err(busy()),
            }
        };
        let (running, peak, checked) = (self.running.clone(), self.peak.clone(), self.checked.clone());
        let task = tokio::spawn(async move {
            checked.fetch_add(1, Ordering::SeqCst);
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let out = check.await;
            running.fetch_sub(1, Ordering::SeqCst);
            drop(permit);
            out
        });
        task.await.map_err(|e| ApiError::Internal(opentact_store::StoreError::Task(e)))
    }

    /// Checks running now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Most checks that ever ran at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Checks started since the gate was made.
    pub fn checked(&self) -> u64 {
        self.checked.load(Ordering::SeqCst)
    }

    /// Logins waiting for a permit now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_most_the_permits_run_and_a_full_queue_is_refused_at_once() {
        let gate = Arc::new(PasswordGate::new());
        let (release, released) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..PASSWORD_HASH_PERMITS + PASSWORD_HASH_QUEUE {
            let (gate, mut released) = (gate.clone(), released.clone());
            tasks.push(tokio::spawn(async move {
                gate.run(async move {
                    let _ = released.wait_for(|r| *r).await;
                })
                .await
            }));
        }
        // Wait until the permits are taken and the queue is full.
        while gate.running() < PASSWORD_HASH_PERMITS || gate.waiting() < PASSWORD_HASH_QUEUE {
            tokio::task::yield_now().await;
        }
        let refused = gate.run(async {}).await.expect_err("queue full");
        assert_eq!(refused.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.retry_after_secs(), Some(PASSWORD_HASH_RETRY_AFTER_SECS));
        release.send(true).unwrap();
        drop(released);
        for task in tasks {
            task.await.unwrap().expect("queued checks run");
        }
        assert_eq!(gate.peak(), PASSWORD_HASH_PERMITS);
        assert_eq!((gate.running(), gate.waiting()), (0, 0));
    }
}
