//! Events relayed to the other nodes of a shared PostgreSQL (see `EventRelayRepo`).

use crate::sql::BeginWrite;
use async_trait::async_trait;
use uuid::Uuid;

use super::{Pool, Store, ms, with_pool};
use crate::error::Result;
use crate::model::*;
use crate::repo::EventRelayRepo;

/// The channel every node listens on for the others' events.
pub const EVENT_CHANNEL: &str = "opentact_event";

/// The largest NOTIFY payload PostgreSQL takes is 8000 bytes; the node's id and the newline
/// come first.
const INLINE_LIMIT: usize = 7900;

#[async_trait]
impl EventRelayRepo for Store {
    async fn relay_events(&self, node: &str, events: &[(Uuid, String)]) -> Result<()> {
        let Pool::Postgres(p) = &self.pool else { return Ok(()) };
        if events.is_empty() {
            return Ok(());
        }
        let now = ms(chrono::Utc::now());
        let mut payloads = Vec::with_capacity(events.len());
        let mut kept = Vec::new();
        for (id, json) in events {
            if node.len() + 1 + json.len() <= INLINE_LIMIT {
                payloads.push(format!("{node}\n{json}"));
            } else {
                payloads.push(format!("{node}\n@{id}"));
                kept.push((id.to_string(), json.as_str()));
            }
        }
        // Notifications are delivered when the transaction commits, in the order sent: the
        // rows they name are there by then.
        let mut tx = p.begin_write().await?;
        for (id, json) in kept {
            sqlx::query("INSERT INTO relayed_event (id, body, created_on) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(json)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        // The subquery fixes the order in which pg_notify is called: the array's.
        sqlx::query(
            "SELECT count(pg_notify($1, payload)) FROM \
             (SELECT payload FROM unnest($2::text[]) WITH ORDINALITY AS sent(payload, n) ORDER BY n) AS ordered",
        )
        .bind(EVENT_CHANNEL)
        .bind(&payloads)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn relayed_event(&self, id: Uuid) -> Result<Option<String>> {
        let body: Option<(String,)> = with_pool!(self, p => sqlx::query_as(
            "SELECT body FROM relayed_event WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(p)
        .await?);
        Ok(body.map(|(body,)| body))
    }

    async fn purge_relayed_events(&self, before: Timestamp) -> Result<u64> {
        let purged = with_pool!(self, p => sqlx::query("DELETE FROM relayed_event WHERE created_on < $1")
            .bind(ms(before))
            .execute(p)
            .await?
            .rows_affected());
        Ok(purged)
    }
}
