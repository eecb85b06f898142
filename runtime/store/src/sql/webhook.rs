//! Event subscriptions, signing keys and the webhook outbox.

use crate::sql::BeginWrite;
use std::collections::HashMap;

use async_trait::async_trait;
use uuid::Uuid;

use super::{Store, id_list, ms, ordered, uuid, with_pool};
use crate::error::{ObjectKind, Result, StoreError};
use crate::id::new_id;
use crate::model::*;
use crate::repo::{List, ListParams, MAX_TAKE, WebhookRepo};

#[derive(sqlx::FromRow)]
struct SubscriptionRow {
    id: String,
    account_id: String,
    channel: String,
    event_type: String,
    url: Option<String>,
    url2: Option<String>,
    created_on: i64,
    modified_on: i64,
}

impl SubscriptionRow {
    fn into_model(self) -> Result<EventSubscription> {
        const K: ObjectKind = ObjectKind::EventSubscription;
        Ok(EventSubscription {
            uuid: uuid(K, "id", &self.id)?,
            account: uuid(K, "account_id", &self.account_id)?,
            channel: match self.channel.as_str() {
                "webhook" => EventChannel::Webhook,
                "wss" => EventChannel::Wss,
                _ => return Err(StoreError::Corrupt { kind: K, column: "channel", value: self.channel }),
            },
            event_type: self.event_type,
            url: self.url,
            url2: self.url2,
            created_on: from_millis(self.created_on),
            modified_on: from_millis(self.modified_on),
        })
    }
}

macro_rules! subscription_cols {
    () => {
        "id, account_id, channel, event_type, url, url2, created_on, modified_on"
    };
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: String,
    account_id: String,
    position: i64,
    node_id: Option<String>,
    url: String,
    url2: Option<String>,
    event_id: String,
    event_type: String,
    call_id: Option<String>,
    body: String,
    state: String,
    attempts: i32,
    next_attempt_on: i64,
    last_error: Option<String>,
    created_on: i64,
}

impl DeliveryRow {
    fn into_model(self) -> Result<WebhookDelivery> {
        const K: ObjectKind = ObjectKind::EventSubscription;
        Ok(WebhookDelivery {
            uuid: uuid(K, "id", &self.id)?,
            account: uuid(K, "account_id", &self.account_id)?,
            position: self.position,
            node: self.node_id,
            url: self.url,
            url2: self.url2,
            event: uuid(K, "event_id", &self.event_id)?,
            event_type: self.event_type,
            call: self.call_id,
            body: self.body,
            state: match self.state.as_str() {
                "pending" => DeliveryState::Pending,
                "delivered" => DeliveryState::Delivered,
                "failed" => DeliveryState::Failed,
                _ => return Err(StoreError::Corrupt { kind: K, column: "state", value: self.state }),
            },
            attempts: self.attempts,
            next_attempt_on: from_millis(self.next_attempt_on),
            last_error: self.last_error,
            created_on: from_millis(self.created_on),
        })
    }
}

macro_rules! delivery_cols {
    () => {
        "id, account_id, position, node_id, url, url2, event_id, event_type, call_id, body, state, attempts, \
         next_attempt_on, last_error, created_on"
    };
}

#[async_trait]
impl WebhookRepo for Store {
    async fn create_subscription(
        &self,
        account: Uuid,
        new: NewEventSubscription,
    ) -> Result<EventSubscription> {
        let now = now();
        let s = EventSubscription {
            uuid: new_id(),
            account,
            channel: new.channel,
            event_type: new.event_type,
            url: new.url,
            url2: new.url2,
            created_on: now,
            modified_on: now,
        };
        with_pool!(self, p => sqlx::query(
            "INSERT INTO event_subscription (id, account_id, channel, event_type, url, url2, created_on, modified_on) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(s.uuid.to_string())
        .bind(account.to_string())
        .bind(s.channel.as_str())
        .bind(&s.event_type)
        .bind(&s.url)
        .bind(&s.url2)
        .bind(ms(now))
        .execute(p)
        .await
        .map(|_| ())?);
        Ok(s)
    }

    async fn list_subscriptions(&self, account: Uuid, params: ListParams) -> Result<List<EventSubscription>> {
        let (total, rows): (i64, Vec<SubscriptionRow>) = with_pool!(self, p => {
            let total = sqlx::query_scalar(
                "SELECT COUNT(*) FROM event_subscription WHERE account_id = $1 AND deleted_on IS NULL",
            )
            .bind(account.to_string())
            .fetch_one(p)
            .await?;
            let rows = sqlx::query_as(ordered!(
                params.order,
                concat!(
                    "SELECT ", subscription_cols!(),
                    " FROM event_subscription WHERE account_id = $1 AND deleted_on IS NULL ORDER BY created_on"
                ),
                " LIMIT $2 OFFSET $3"
            ))
            .bind(account.to_string())
            .bind(params.limit())
            .bind(params.offset())
            .fetch_all(p)
            .await?;
            (total, rows)
        });
        let data = rows.into_iter().map(SubscriptionRow::into_model).collect::<Result<_>>()?;
        Ok(List { take: params.take, skip: params.skip, total, data })
    }

    async fn delete_subscription(&self, account: Uuid, subscription: Uuid) -> Result<()> {
        let done = with_pool!(self, p => sqlx::query(
            "UPDATE event_subscription SET deleted_on = $3, modified_on = $3 \
             WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL",
        )
        .bind(account.to_string())
        .bind(subscription.to_string())
        .bind(ms(now()))
        .execute(p)
        .await?
        .rows_affected());
        if done == 0 {
            Err(StoreError::not_found(ObjectKind::EventSubscription, subscription))
        } else {
            Ok(())
        }
    }

    async fn webhook_subscriptions(&self, account: Uuid) -> Result<Vec<EventSubscription>> {
        let rows: Vec<SubscriptionRow> = with_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", subscription_cols!(),
            " FROM event_subscription WHERE account_id = $1 AND channel = 'webhook' AND deleted_on IS NULL \
             ORDER BY created_on, id LIMIT $2"
        ))
        .bind(account.to_string())
        .bind(i64::from(MAX_TAKE))
        .fetch_all(p)
        .await?);
        rows.into_iter().map(SubscriptionRow::into_model).collect()
    }

    async fn signing_key(&self, account: Uuid) -> Result<Option<SigningKey>> {
        let row: Option<(String, String)> = with_pool!(self, p => sqlx::query_as(
            "SELECT public_key, private_pkcs8 FROM account_signing_key WHERE account_id = $1",
        )
        .bind(account.to_string())
        .fetch_optional(p)
        .await?);
        let owner = account.to_string();
        row.map(|(public_key, stored)| {
            Ok(SigningKey { public_key, private_pkcs8: self.unseal(&stored, &owner)? })
        })
        .transpose()
    }

    async fn insert_signing_key(&self, account: Uuid, key: SigningKey) -> Result<SigningKey> {
        with_pool!(self, p => sqlx::query(
            "INSERT INTO account_signing_key (account_id, public_key, private_pkcs8, created_on) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (account_id) DO NOTHING",
        )
        .bind(account.to_string())
        .bind(&key.public_key)
        .bind(self.seal(&key.private_pkcs8, &account.to_string())?)
        .bind(ms(now()))
        .execute(p)
        .await
        .map(|_| ())?);
        self.signing_key(account).await?.ok_or(StoreError::not_found(ObjectKind::Account, account))
    }

    async fn enqueue_deliveries(&self, deliveries: Vec<NewWebhookDelivery>) -> Result<Vec<WebhookDelivery>> {
        if deliveries.is_empty() {
            return Ok(Vec::new());
        }
        let now = now();
        let mut stored: Vec<WebhookDelivery> = deliveries
            .into_iter()
            .map(|d| WebhookDelivery {
                uuid: new_id(),
                account: d.account,
                // Given by the database below.
                position: 0,
                node: d.node,
                url: d.url,
                url2: d.url2,
                event: d.event,
                event_type: d.event_type,
                call: d.call,
                body: d.body,
                state: DeliveryState::Pending,
                attempts: 0,
                next_attempt_on: now,
                last_error: None,
                created_on: now,
            })
            .collect();
        with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            // One statement per chunk: on PostgreSQL each statement is a round trip. The
            // positions come from the sequence (PostgreSQL) or the AUTOINCREMENT rowid (SQLite):
            // unique with any number of writers, and assigned row after row in VALUES order, so
            // this writer's deliveries keep the order given. RETURNING's rows are matched by id
            // (SQLite does not promise their order).
            for rows in stored.chunks_mut(DELIVERY_INSERT_CHUNK) {
                let mut insert = sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(insert_deliveries_sql(rows.len())));
                for row in rows.iter() {
                    insert = insert
                        .bind(row.uuid.to_string())
                        .bind(row.account.to_string())
                        .bind(&row.node)
                        .bind(&row.url)
                        .bind(&row.url2)
                        .bind(row.event.to_string())
                        .bind(&row.event_type)
                        .bind(&row.call)
                        .bind(&row.body)
                        .bind(ms(now));
                }
                let positions: HashMap<String, i64> = insert.fetch_all(&mut *tx).await?.into_iter().collect();
                for row in rows.iter_mut() {
                    row.position = *positions.get(&row.uuid.to_string()).ok_or_else(|| StoreError::Corrupt {
                        kind: ObjectKind::EventSubscription,
                        column: "position",
                        value: format!("no position returned for delivery {}", row.uuid),
                    })?;
                }
            }
            tx.commit().await?;
        });
        Ok(stored)
    }

    async fn pending_deliveries(
        &self,
        node: Option<&str>,
        after_position: i64,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>> {
        // Both read the partial index of pending rows (claimed_by, position).
        let sql = match node {
            Some(_) => concat!(
                "SELECT ",
                delivery_cols!(),
                " FROM webhook_delivery WHERE state = 'pending' AND position > $1 AND claimed_by = $3 \
                 ORDER BY position LIMIT $2"
            ),
            None => concat!(
                "SELECT ",
                delivery_cols!(),
                " FROM webhook_delivery WHERE state = 'pending' AND position > $1 ORDER BY position LIMIT $2"
            ),
        };
        let limit = i64::from(limit.min(MAX_TAKE));
        let rows: Vec<DeliveryRow> = with_pool!(self, p => {
            let query = sqlx::query_as(sql).bind(after_position).bind(limit);
            match node {
                Some(node) => query.bind(node),
                None => query,
            }
            .fetch_all(p)
            .await?
        });
        rows.into_iter().map(DeliveryRow::into_model).collect()
    }

    async fn mark_delivered(&self, deliveries: &[Uuid]) -> Result<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        // One statement for a whole round.
        let ids = id_list(deliveries.iter().copied());
        let sql = format!(
            "UPDATE webhook_delivery SET state = 'delivered', attempts = attempts + 1, delivered_on = $1, \
             last_error = NULL WHERE id IN ({ids})"
        );
        let now = ms(now());
        with_pool!(self, p => sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(now).execute(p).await.map(|_| ())?);
        Ok(())
    }

    async fn mark_attempt_failed(
        &self,
        delivery: Uuid,
        attempts: i32,
        error: &str,
        retry_at: Option<Timestamp>,
    ) -> Result<()> {
        let (state, next) = match retry_at {
            Some(at) => (DeliveryState::Pending, ms(at)),
            None => (DeliveryState::Failed, ms(now())),
        };
        with_pool!(self, p => sqlx::query(
            "UPDATE webhook_delivery SET state = $2, attempts = $3, last_error = $4, next_attempt_on = $5 WHERE id = $1",
        )
        .bind(delivery.to_string())
        .bind(state.as_str())
        .bind(attempts)
        .bind(error)
        .bind(next)
        .execute(p)
        .await
        .map(|_| ())?);
        Ok(())
    }

    async fn purge_deliveries(&self, before: Timestamp, limit: u32) -> Result<u64> {
        // A sub-select with LIMIT: SQLite has no DELETE … LIMIT. The newest row stays (positions
        // come from a sequence now and never go back anyway; the dispatcher skips positions it
        // has seen).
        let done = with_pool!(self, p => sqlx::query(
            "DELETE FROM webhook_delivery WHERE id IN (SELECT id FROM webhook_delivery \
             WHERE ((state = 'delivered' AND delivered_on < $1) OR (state = 'failed' AND next_attempt_on < $1)) \
             AND position < (SELECT MAX(position) FROM webhook_delivery) LIMIT $2)",
        )
        .bind(ms(before))
        .bind(i64::from(limit))
        .execute(p)
        .await?
        .rows_affected());
        Ok(done)
    }

    async fn list_deliveries(&self, account: Uuid, params: ListParams) -> Result<List<WebhookDelivery>> {
        let (total, rows): (i64, Vec<DeliveryRow>) = with_pool!(self, p => {
            let total = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_delivery WHERE account_id = $1")
                .bind(account.to_string())
                .fetch_one(p)
                .await?;
            let rows = sqlx::query_as(concat!(
                "SELECT ", delivery_cols!(),
                " FROM webhook_delivery WHERE account_id = $1 ORDER BY position DESC LIMIT $2 OFFSET $3"
            ))
            .bind(account.to_string())
            .bind(params.limit())
            .bind(params.offset())
            .fetch_all(p)
            .await?;
            (total, rows)
        });
        let data = rows.into_iter().map(DeliveryRow::into_model).collect::<Result<_>>()?;
        Ok(List { take: params.take, skip: params.skip, total, data })
    }
}

/// Rows per outbox INSERT (10 parameters each, well under SQLite's 32 766).
const DELIVERY_INSERT_CHUNK: usize = 500;

/// `INSERT INTO webhook_delivery … VALUES (…), (…) RETURNING id, position` for `rows` rows of
/// 10 parameters; the database gives the positions.
fn insert_deliveries_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO webhook_delivery (id, account_id, node_id, claimed_by, url, url2, event_id, event_type, \
         call_id, body, state, attempts, next_attempt_on, created_on) VALUES ",
    );
    for row in 0..rows {
        let n = row * 10;
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, 'pending', 0, ${}, ${})",
            n + 1,
            n + 2,
            n + 3,
            // The writer sends its own deliveries: it claims them as it writes them.
            n + 3,
            n + 4,
            n + 5,
            n + 6,
            n + 7,
            n + 8,
            n + 9,
            n + 10,
            n + 10
        ));
    }
    sql.push_str(" RETURNING id, position");
    sql
}
