//! Limits counted in the database for all the nodes that share it ([`LimitRepo`]): the
//! outbound voice profiles' channels and start slots, and each account's calls.

use std::sync::Arc;
use std::time::Duration;

use opentact_store::{LimitRepo, StoreError, new_id};
use tracing::warn;
use uuid::Uuid;

/// The first wait before a failed give-back is tried again.
const GIVE_BACK_FIRST_RETRY: Duration = Duration::from_millis(100);
/// The longest wait between two tries.
const GIVE_BACK_MAX_RETRY: Duration = Duration::from_secs(30);
/// How long a give-back is tried.
const GIVE_BACK_FOR: Duration = Duration::from_secs(600);

/// The database that counts for all the nodes, and this node's name in it.
pub(crate) struct SharedLimits {
    store: Arc<dyn LimitRepo>,
    node: String,
}

impl std::fmt::Debug for SharedLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLimits").field("node", &self.node).finish_non_exhaustive()
    }
}

impl SharedLimits {
    pub(crate) fn new(store: Arc<dyn LimitRepo>, node: String) -> Self {
        SharedLimits { store, node }
    }

    /// A lease in `scope` if fewer than `limit` are held (`None`: at the limit); an error when
    /// the database cannot be reached, and the caller counts alone.
    pub(crate) async fn take(&self, scope: &str, limit: usize) -> Result<Option<Uuid>, StoreError> {
        let id = new_id();
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let taken = self.store.take_lease(scope, limit, &self.node, id, chrono::Utc::now()).await?;
        Ok(taken.then_some(id))
    }

    /// Gives `lease` back in the background (a drop cannot wait), then runs `then`. A
    /// database that cannot be reached is tried again, [`GIVE_BACK_FIRST_RETRY`] later and
    /// twice as long each time, for [`GIVE_BACK_FOR`]: a lease left behind would hold a channel
    /// or an account's place until its node restarts or is taken over.
    pub(crate) fn give_back(&self, lease: Uuid, then: impl FnOnce() + Send + 'static) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let store = self.store.clone();
        runtime.spawn(async move {
            let deadline = tokio::time::Instant::now() + GIVE_BACK_FOR;
            let mut wait = GIVE_BACK_FIRST_RETRY;
            loop {
                match store.give_back_lease(lease).await {
                    Ok(()) => break,
                    Err(error) if tokio::time::Instant::now() + wait < deadline => {
                        warn!(%error, %lease, retry_in_ms = wait.as_millis(), "a limit's lease was not given back");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(GIVE_BACK_MAX_RETRY);
                    }
                    Err(error) => {
                        // Now only the node's restart or take-over frees it.
                        warn!(%error, %lease, "a limit's lease was not given back; giving up");
                        break;
                    }
                }
            }
            then();
        });
    }

    /// The next start slot of `scope` (see [`LimitRepo::reserve_rate_slot`]).
    pub(crate) async fn reserve_rate_slot(
        &self,
        scope: &str,
        interval_us: i64,
        now_us: i64,
        max_wait_us: Option<i64>,
    ) -> Result<Option<i64>, StoreError> {
        self.store.reserve_rate_slot(scope, interval_us, now_us, max_wait_us).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use async_trait::async_trait;
    use opentact_store::Timestamp;

    use super::*;

    /// A database that cannot be reached for the first `failures` give-backs.
    struct Flaky {
        failures: u32,
        tries: AtomicU32,
    }

    #[async_trait]
    impl LimitRepo for Flaky {
        async fn take_lease(
            &self,
            _: &str,
            _: u32,
            _: &str,
            _: Uuid,
            _: Timestamp,
        ) -> opentact_store::Result<bool> {
            Ok(true)
        }
        async fn give_back_lease(&self, _: Uuid) -> opentact_store::Result<()> {
            if self.tries.fetch_add(1, Ordering::SeqCst) < self.failures {
                return Err(StoreError::Invalid { field: "connection", reason: "unreachable" });
            }
            Ok(())
        }
        async fn leases_held(&self, _: &str) -> opentact_store::Result<u64> {
            Ok(0)
        }
        async fn release_node_leases(&self, _: &str) -> opentact_store::Result<u64> {
            Ok(0)
        }
        async fn reserve_rate_slot(
            &self,
            _: &str,
            _: i64,
            n: i64,
            _: Option<i64>,
        ) -> opentact_store::Result<Option<i64>> {
            Ok(Some(n))
        }
    }

    #[tokio::test]
    async fn a_give_back_the_database_refused_is_tried_again_until_it_succeeds() {
        let store = Arc::new(Flaky { failures: 2, tries: AtomicU32::new(0) });
        let limits = SharedLimits::new(store.clone(), "a".into());
        let (done, given_back) = tokio::sync::oneshot::channel();
        limits.give_back(new_id(), move || {
            let _ = done.send(());
        });
        tokio::time::timeout(Duration::from_secs(5), given_back)
            .await
            .expect("given back in time")
            .expect("ran");
        assert_eq!(store.tries.load(Ordering::SeqCst), 3, "two refusals, then the give-back that worked");
    }
}
