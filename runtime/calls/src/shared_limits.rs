//! Limits counted in the database for all the nodes that share it ([`LimitRepo`]): the
//! outbound voice profiles' channels and start slots, and each account's calls.

use std::sync::Arc;

use opentact_store::{LimitRepo, StoreError, new_id};
use tracing::warn;
use uuid::Uuid;

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

    /// Gives `lease` back in the background (a drop cannot wait), then runs `then`.
    pub(crate) fn give_back(&self, lease: Uuid, then: impl FnOnce() + Send + 'static) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let store = self.store.clone();
        runtime.spawn(async move {
            if let Err(error) = store.give_back_lease(lease).await {
                // The node's leases go when it is taken over or starts again.
                warn!(%error, %lease, "a limit's lease was not given back");
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
