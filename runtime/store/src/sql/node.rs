//! Nodes sharing one database: heartbeats, and a survivor's take-over of a dead node's work.

use crate::sql::BeginWrite;
use async_trait::async_trait;

use super::batch::FAIL_ITEMS_OF_NODE;
use super::call_log::CLOSE_ABANDONED_CALLS;
use super::{Backend, Store, ms, with_pool};
use crate::error::Result;
use crate::model::*;
use crate::repo::NodeRepo;

/// Picks one dead node nobody took over and marks it taken by `$1`. On PostgreSQL the row is
/// locked with SKIP LOCKED: survivors trying at once each get a different dead node (or none)
/// without waiting for one another; the `taken_over_by IS NULL` test, evaluated again after
/// a lock, makes sure one node is never taken over twice.
const TAKE_OVER_PG: &str = "UPDATE node SET taken_over_by = $1, taken_over_on = $3 WHERE id = \
     (SELECT id FROM node WHERE id <> $1 AND taken_over_by IS NULL AND last_seen < $2 \
     ORDER BY last_seen LIMIT 1 FOR UPDATE SKIP LOCKED) \
     AND taken_over_by IS NULL AND last_seen < $2 RETURNING id";
/// The same on SQLite, where writers take turns at the one database lock anyway.
const TAKE_OVER_SQLITE: &str = "UPDATE node SET taken_over_by = $1, taken_over_on = $3 WHERE id = \
     (SELECT id FROM node WHERE id <> $1 AND taken_over_by IS NULL AND last_seen < $2 \
     ORDER BY last_seen LIMIT 1) RETURNING id";

#[async_trait]
impl NodeRepo for Store {
    async fn register_node(&self, node: &str, at: Timestamp) -> Result<()> {
        with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            sqlx::query(
                "INSERT INTO node (id, started_on, last_seen) VALUES ($1, $2, $2) ON CONFLICT (id) DO UPDATE \
                 SET started_on = $2, last_seen = $2, taken_over_by = NULL, taken_over_on = NULL",
            )
            .bind(node)
            .bind(ms(at))
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE webhook_delivery SET claimed_by = $1 WHERE state = 'pending' AND claimed_by IS NULL")
                .bind(node)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    async fn renew_node(&self, node: &str, at: Timestamp) -> Result<bool> {
        let renewed = with_pool!(self, p => sqlx::query(
            "UPDATE node SET last_seen = $2 WHERE id = $1 AND taken_over_by IS NULL",
        )
        .bind(node)
        .bind(ms(at))
        .execute(p)
        .await?
        .rows_affected());
        Ok(renewed == 1)
    }

    async fn take_over_dead_node(
        &self,
        survivor: &str,
        dead_before: Timestamp,
        at: Timestamp,
        reason: &str,
    ) -> Result<Option<NodeTakeover>> {
        let take = match self.backend() {
            Backend::Postgres => TAKE_OVER_PG,
            Backend::Sqlite => TAKE_OVER_SQLITE,
        };
        let taken = with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            let dead: Option<String> = sqlx::query_scalar(take)
                .bind(survivor)
                .bind(ms(dead_before))
                .bind(ms(at))
                .fetch_optional(&mut *tx)
                .await?;
            match dead {
                None => None,
                Some(node) => {
                    let reason = reason.replace("{node}", &node);
                    let reason = reason.as_str();
                    // The items first: they are found through the CDRs still open.
                    let batch_items_failed = sqlx::query(FAIL_ITEMS_OF_NODE)
                        .bind(&node)
                        .bind(reason)
                        .bind(ms(at))
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    let calls_closed = sqlx::query(CLOSE_ABANDONED_CALLS)
                        .bind(&node)
                        .bind(ms(at))
                        .bind(reason)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    let deliveries_taken = sqlx::query(
                        "UPDATE webhook_delivery SET claimed_by = $1 WHERE state = 'pending' AND claimed_by = $2",
                    )
                    .bind(survivor)
                    .bind(&node)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    // Its calls are gone: their channels are free.
                    sqlx::query("DELETE FROM limit_lease WHERE node_id = $1").bind(&node).execute(&mut *tx).await?;
                    tx.commit().await?;
                    Some(NodeTakeover { node, calls_closed, batch_items_failed, deliveries_taken })
                }
            }
        });
        Ok(taken)
    }
}
