//! What the node's `/metrics` reads from the store at scrape time: the connection pool and
//! the depth of the two outboxes (webhook deliveries, outbound SMS).

use std::time::{Duration, Instant};

use super::{Store, with_pool};
use crate::error::Result;

/// The connection pool now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open.
    pub size: u32,
    /// Of which idle.
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
}

/// What waits in the outboxes (every node's: the tables are shared).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxDepths {
    /// Webhook deliveries pending (not delivered, not given up).
    pub webhooks_pending: u64,
    /// When the oldest pending delivery was stored (`None`: nothing pending).
    pub webhooks_oldest: Option<crate::Timestamp>,
    /// Outbound SMS queued (not yet accepted by the carrier, nor failed).
    pub sms_queued: u64,
}

impl Store {
    /// The pool's connections now (no query).
    pub fn pool_stats(&self) -> PoolStats {
        with_pool!(self, p => PoolStats {
            size: p.size(),
            idle: u32::try_from(p.num_idle()).unwrap_or(u32::MAX),
            max: p.options().get_max_connections(),
        })
    }

    /// How long taking a connection from the pool takes now: about zero while one is idle,
    /// the wait every query sees while all are busy.
    pub async fn probe_acquire(&self) -> Result<Duration> {
        let started = Instant::now();
        with_pool!(self, p => drop(p.acquire().await?));
        Ok(started.elapsed())
    }

    /// The outboxes' depths. The webhook count scans the deliveries kept for the retention
    /// window (`[webhooks] delivered_retention_secs`); the SMS count uses the queue's index.
    pub async fn outbox_depths(&self) -> Result<OutboxDepths> {
        let (pending, oldest): (i64, Option<i64>) = with_pool!(self, p => sqlx::query_as(
            "SELECT COUNT(*), MIN(created_on) FROM webhook_delivery WHERE state = 'pending'"
        )
        .fetch_one(p)
        .await?);
        let queued: i64 = with_pool!(self, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM sms_message WHERE state = 'queued'"
        )
        .fetch_one(p)
        .await?);
        Ok(OutboxDepths {
            webhooks_pending: u64::try_from(pending).unwrap_or(0),
            webhooks_oldest: oldest.map(crate::model::from_millis),
            sms_queued: u64::try_from(queued).unwrap_or(0),
        })
    }
}
