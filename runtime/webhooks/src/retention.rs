//! The outbox's retention: deliveries that finished (delivered, or given up after the last
//! attempt) are kept for `delivered_retention_secs` for inspection, then deleted, so the
//! outbox holds days of traffic, not all of it.

use std::sync::Arc;
use std::time::Duration;

use opentact_store::{Store, WebhookRepo};
use tracing::{info, warn};

use crate::Webhooks;

/// How often finished deliveries are looked for (at most; sooner when the retention is
/// shorter).
pub const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// Rows deleted per statement: a backlog of millions is deleted in short statements that
/// leave the database to the outbox writer between them.
pub const PURGE_BATCH: u32 = 10_000;

/// Deletes finished deliveries older than `retention`, every [`PURGE_EVERY`], for as long as
/// the process runs.
pub(crate) async fn purge(webhooks: Arc<Webhooks>, store: Store, retention: Duration) {
    let mut every = tokio::time::interval(retention.clamp(Duration::from_secs(1), PURGE_EVERY));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let before =
            chrono::Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::TimeDelta::MAX);
        let mut purged = 0;
        loop {
            let done = {
                let _turn = webhooks.turn().await;
                store.purge_deliveries(before, PURGE_BATCH).await
            };
            match done {
                Ok(n) => {
                    purged += n;
                    if n < u64::from(PURGE_BATCH) {
                        break;
                    }
                }
                Err(error) => {
                    warn!(%error, "webhooks: purging finished deliveries");
                    break;
                }
            }
        }
        if purged > 0 {
            info!(purged, "webhooks: finished deliveries past their retention deleted");
        }
    }
}
