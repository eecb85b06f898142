//! Number orders and their items.

use crate::sql::BeginWrite;
use async_trait::async_trait;
use uuid::Uuid;

use super::{Store, id_list, ms, opt_str, opt_uuid, ordered, uuid, with_pool};
use crate::error::{ObjectKind, Result, StoreError};
use crate::id::new_id;
use crate::model::*;
use crate::repo::{List, ListParams, OrderFilter, OrderRepo};

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: String,
    account_id: String,
    state: String,
    total: i32,
    success: i32,
    failed: i32,
    created_on: i64,
    modified_on: i64,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    order_id: String,
    tn: i64,
    state: String,
    lease_id: Option<String>,
    message: Option<String>,
}

const K: ObjectKind = ObjectKind::Order;

fn corrupt(column: &'static str, value: String) -> StoreError {
    StoreError::Corrupt { kind: K, column, value }
}

impl OrderRow {
    fn into_model(self, items: Vec<OrderItem>) -> Result<TnOrder> {
        let state = match self.state.as_str() {
            "success" => OrderState::Success,
            "partial" => OrderState::Partial,
            "failed" => OrderState::Failed,
            _ => return Err(corrupt("state", self.state)),
        };
        Ok(TnOrder {
            uuid: uuid(K, "id", &self.id)?,
            account: uuid(K, "account_id", &self.account_id)?,
            state,
            total: self.total,
            success: self.success,
            processing: 0,
            failed: self.failed,
            items,
            created_on: from_millis(self.created_on),
            modified_on: from_millis(self.modified_on),
        })
    }
}

impl ItemRow {
    fn into_model(self) -> Result<OrderItem> {
        let state = match self.state.as_str() {
            "success" => OrderItemState::Success,
            "failed" => OrderItemState::Failed,
            _ => return Err(corrupt("item state", self.state)),
        };
        Ok(OrderItem {
            tn: self.tn,
            state,
            lease: opt_uuid(K, "lease_id", self.lease_id.as_deref())?,
            message: self.message,
        })
    }
}

fn item_state(s: OrderItemState) -> &'static str {
    match s {
        OrderItemState::Success => "success",
        OrderItemState::Failed => "failed",
    }
}

macro_rules! order_cols {
    () => {
        "id, account_id, state, total, success, failed, created_on, modified_on"
    };
}

impl Store {
    /// The orders of `rows` with their items, read in one query.
    async fn with_items(&self, rows: Vec<OrderRow>) -> Result<Vec<TnOrder>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        // One query for a page instead of one per order.
        let ids = id_list(rows.iter().map(|r| uuid(K, "id", &r.id)).collect::<Result<Vec<_>>>()?);
        let sql = format!(
            "SELECT order_id, tn, state, lease_id, message FROM tn_order_item \
             WHERE order_id IN ({ids}) ORDER BY order_id, position"
        );
        let items: Vec<ItemRow> =
            with_pool!(self, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).fetch_all(p).await?);
        let mut by_order: std::collections::HashMap<String, Vec<OrderItem>> =
            std::collections::HashMap::new();
        for item in items {
            let order = item.order_id.clone();
            by_order.entry(order).or_default().push(item.into_model()?);
        }
        rows.into_iter()
            .map(|r| {
                let items = by_order.remove(&r.id).unwrap_or_default();
                r.into_model(items)
            })
            .collect()
    }
}

#[async_trait]
impl OrderRepo for Store {
    async fn create_order(&self, account: Uuid, items: Vec<OrderItem>) -> Result<TnOrder> {
        let now = now();
        let total = items.len();
        let success = items.iter().filter(|i| i.state == OrderItemState::Success).count();
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        let order = TnOrder {
            uuid: new_id(),
            account,
            state: OrderState::of(success, total),
            total: count(total),
            success: count(success),
            processing: 0,
            failed: count(total - success),
            items,
            created_on: now,
            modified_on: now,
        };
        with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            sqlx::query(
                "INSERT INTO tn_order (id, account_id, state, total, success, failed, created_on, modified_on) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(order.uuid.to_string())
            .bind(account.to_string())
            .bind(order.state.as_str())
            .bind(order.total)
            .bind(order.success)
            .bind(order.failed)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
            for (position, item) in order.items.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO tn_order_item (order_id, position, tn, state, lease_id, message) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(order.uuid.to_string())
                .bind(count(position))
                .bind(item.tn)
                .bind(item_state(item.state))
                .bind(opt_str(item.lease))
                .bind(&item.message)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(order)
    }

    async fn get_order(&self, account: Uuid, order: Uuid) -> Result<Option<TnOrder>> {
        let row: Option<OrderRow> = with_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", order_cols!(), " FROM tn_order WHERE account_id = $1 AND id = $2"
        ))
        .bind(account.to_string())
        .bind(order.to_string())
        .fetch_optional(p)
        .await?);
        match row {
            Some(row) => Ok(self.with_items(vec![row]).await?.pop()),
            None => Ok(None),
        }
    }

    async fn search_orders(
        &self,
        account: Uuid,
        f: OrderFilter,
        params: ListParams,
    ) -> Result<List<TnOrder>> {
        macro_rules! filter {
            () => {
                " FROM tn_order WHERE account_id = $1 AND ($2 IS NULL OR state = $2) \
                 AND ($3 IS NULL OR id IN (SELECT order_id FROM tn_order_item WHERE tn = $3))"
            };
        }
        let state = f.state.map(OrderState::as_str);
        let (total, rows): (i64, Vec<OrderRow>) = with_pool!(self, p => {
            let total = sqlx::query_scalar(concat!("SELECT COUNT(*)", filter!()))
                .bind(account.to_string())
                .bind(state)
                .bind(f.tn)
                .fetch_one(p)
                .await?;
            let rows = sqlx::query_as(ordered!(
                params.order,
                concat!("SELECT ", order_cols!(), filter!(), " ORDER BY created_on"),
                " LIMIT $4 OFFSET $5"
            ))
            .bind(account.to_string())
            .bind(state)
            .bind(f.tn)
            .bind(params.limit())
            .bind(params.offset())
            .fetch_all(p)
            .await?;
            (total, rows)
        });
        let data = self.with_items(rows).await?;
        Ok(List { take: params.take, skip: params.skip, total, data })
    }
}
