//! Bulk calls: batches and their items.

use crate::sql::BeginWrite;
use std::collections::HashMap;

use async_trait::async_trait;
use uuid::Uuid;

use super::{Ref, Store, id_list, ms, opt_str, opt_uuid, uuid, with_pool};
use crate::error::{ObjectKind, Result, StoreError};
use crate::id::new_id;
use crate::model::*;
use crate::repo::{BatchRepo, List, MAX_TAKE};

/// Items written per `INSERT` when a batch is created: one round trip per this many numbers
/// instead of one per number. Each row binds one parameter (the phone) besides the batch id,
/// far below SQLite's (32 766) and PostgreSQL's (65 535) limits.
pub const BATCH_INSERT_CHUNK: usize = 500;

const K: ObjectKind = ObjectKind::Batch;

fn corrupt(column: &'static str, value: String) -> StoreError {
    StoreError::Corrupt { kind: K, column, value }
}

#[derive(sqlx::FromRow)]
struct BatchRow {
    id: String,
    account_id: String,
    outbound_voice_profile_id: Option<String>,
    tn_lease_id: String,
    from_tn: i64,
    xml_document: Option<String>,
    sip_control_app_id: Option<String>,
    ring_timeout_secs: i32,
    state: String,
    created_on: i64,
    modified_on: i64,
    deleted_on: Option<i64>,
}

macro_rules! batch_cols {
    () => {
        "id, account_id, outbound_voice_profile_id, tn_lease_id, from_tn, xml_document, sip_control_app_id, \
         ring_timeout_secs, state, created_on, modified_on, deleted_on"
    };
}

impl BatchRow {
    /// The batch with every count at 0 (see [`Store::with_counts`]).
    fn into_model(self) -> Result<Batch> {
        Ok(Batch {
            uuid: uuid(K, "id", &self.id)?,
            account: uuid(K, "account_id", &self.account_id)?,
            outbound_voice_profile: opt_uuid(
                K,
                "outbound_voice_profile_id",
                self.outbound_voice_profile_id.as_deref(),
            )?,
            tn_lease: uuid(K, "tn_lease_id", &self.tn_lease_id)?,
            from_tn: self.from_tn,
            xml: self.xml_document,
            sip_control_app: opt_uuid(K, "sip_control_app_id", self.sip_control_app_id.as_deref())?,
            ring_timeout_secs: self.ring_timeout_secs,
            state: BatchState::parse(&self.state).ok_or_else(|| corrupt("state", self.state.clone()))?,
            total: 0,
            queued: 0,
            calling: 0,
            answered: 0,
            completed: 0,
            busy: 0,
            no_answer: 0,
            failed: 0,
            created_on: from_millis(self.created_on),
            modified_on: from_millis(self.modified_on),
            deleted_on: self.deleted_on.map(from_millis),
        })
    }
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    batch_id: String,
    position: i32,
    phone: String,
    state: String,
    call_id: Option<String>,
    q850_cause: Option<i32>,
    reason: Option<String>,
    started_on: Option<i64>,
    ended_on: Option<i64>,
}

impl ItemRow {
    fn into_model(self) -> Result<BatchItem> {
        Ok(BatchItem {
            batch: uuid(K, "batch_id", &self.batch_id)?,
            position: self.position,
            phone: self.phone,
            state: BatchItemState::parse(&self.state)
                .ok_or_else(|| corrupt("item state", self.state.clone()))?,
            call: opt_uuid(K, "call_id", self.call_id.as_deref())?,
            q850_cause: self.q850_cause,
            reason: self.reason,
            started_on: self.started_on.map(from_millis),
            ended_on: self.ended_on.map(from_millis),
        })
    }
}

/// `INSERT` of `rows` queued items from position `first` on: the batch id is `$1`, the
/// phones `$2…`. Positions are printed (integers this module computed), the phones bound.
fn insert_items_sql(first: usize, rows: usize) -> String {
    let mut sql = String::from("INSERT INTO batch_item (batch_id, position, phone, state) VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("($1, {}, ${}, 'queued')", first + i, i + 2));
    }
    sql
}

impl Store {
    /// Fills in the batches' counts from their items, in one query for all of them.
    async fn with_counts(&self, rows: Vec<BatchRow>) -> Result<Vec<Batch>> {
        let mut batches = rows.into_iter().map(BatchRow::into_model).collect::<Result<Vec<_>>>()?;
        if batches.is_empty() {
            return Ok(batches);
        }
        let ids = id_list(batches.iter().map(|b| b.uuid));
        let sql = format!(
            "SELECT batch_id, state, COUNT(*) FROM batch_item WHERE batch_id IN ({ids}) GROUP BY batch_id, state"
        );
        let counts: Vec<(String, String, i64)> =
            with_pool!(self, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).fetch_all(p).await?);
        let index: HashMap<Uuid, usize> = batches.iter().enumerate().map(|(i, b)| (b.uuid, i)).collect();
        for (batch, state, n) in counts {
            let id = uuid(K, "batch_id", &batch)?;
            let state = BatchItemState::parse(&state).ok_or_else(|| corrupt("item state", state))?;
            if let Some(&i) = index.get(&id) {
                *batches[i].count_mut(state) += n;
                batches[i].total += n;
            }
        }
        Ok(batches)
    }
}

/// Fails the batch items whose calls a dead node carried (placed or answered, their CDR still
/// open on node `$1`): failed, Q.850 41, `$2` the reason, ended at `$3`. Run by the survivor
/// that takes the node over, before it closes those CDRs.
pub(super) const FAIL_ITEMS_OF_NODE: &str = "UPDATE batch_item SET state = 'failed', q850_cause = 41, \
     reason = $2, ended_on = $3 WHERE state IN ('calling', 'answered') AND call_id IN \
     (SELECT id FROM call_record WHERE node_id = $1 AND ended_on IS NULL)";

#[async_trait]
impl BatchRepo for Store {
    async fn create_batch(&self, account: Uuid, new: NewBatch) -> Result<Batch> {
        if new.xml.is_some() == new.sip_control_app.is_some() {
            return Err(StoreError::Invalid {
                field: "xml",
                reason: "give exactly one of xml and sip_control_app",
            });
        }
        if new.phones.is_empty() {
            return Err(StoreError::Invalid { field: "phones", reason: "a batch needs at least one number" });
        }
        // Positions are i32 (as the items' column); a batch is far smaller than that.
        let total = i32::try_from(new.phones.len())
            .map_err(|_| StoreError::Invalid { field: "phones", reason: "too many numbers for one batch" })?;
        self.ensure_live(account, Ref::TnLease, new.tn_lease).await?;
        self.ensure_live_opt(account, Ref::OutboundVoiceProfile, new.outbound_voice_profile).await?;
        self.ensure_live_opt(account, Ref::SipControlApp, new.sip_control_app).await?;
        let now = now();
        let batch = Batch {
            uuid: new_id(),
            account,
            outbound_voice_profile: new.outbound_voice_profile,
            tn_lease: new.tn_lease,
            from_tn: new.from_tn,
            xml: new.xml,
            sip_control_app: new.sip_control_app,
            ring_timeout_secs: new.ring_timeout_secs,
            state: BatchState::Queued,
            total: i64::from(total),
            queued: i64::from(total),
            calling: 0,
            answered: 0,
            completed: 0,
            busy: 0,
            no_answer: 0,
            failed: 0,
            created_on: now,
            modified_on: now,
            deleted_on: None,
        };
        let id = batch.uuid.to_string();
        with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            sqlx::query(
                "INSERT INTO batch (id, account_id, outbound_voice_profile_id, tn_lease_id, from_tn, xml_document, \
                 sip_control_app_id, ring_timeout_secs, state, created_on, modified_on) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
            )
            .bind(&id)
            .bind(account.to_string())
            .bind(opt_str(batch.outbound_voice_profile))
            .bind(batch.tn_lease.to_string())
            .bind(batch.from_tn)
            .bind(&batch.xml)
            .bind(opt_str(batch.sip_control_app))
            .bind(batch.ring_timeout_secs)
            .bind(batch.state.as_str())
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
            for (chunk, phones) in new.phones.chunks(BATCH_INSERT_CHUNK).enumerate() {
                let sql = insert_items_sql(chunk * BATCH_INSERT_CHUNK, phones.len());
                let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&id);
                for phone in phones {
                    insert = insert.bind(phone.as_str());
                }
                insert.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(batch)
    }

    async fn get_batch(&self, account: Uuid, id: Uuid) -> Result<Option<Batch>> {
        let row: Option<BatchRow> = with_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", batch_cols!(), " FROM batch WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL"
        ))
        .bind(account.to_string())
        .bind(id.to_string())
        .fetch_optional(p)
        .await?);
        Ok(self.with_counts(row.into_iter().collect()).await?.pop())
    }

    async fn list_batches(&self, account: Uuid, take: i64, skip: i64) -> Result<List<Batch>> {
        let take = take.clamp(0, i64::from(MAX_TAKE));
        let skip = skip.max(0);
        let (total, rows): (i64, Vec<BatchRow>) = with_pool!(self, p => {
            let total = sqlx::query_scalar("SELECT COUNT(*) FROM batch WHERE account_id = $1 AND deleted_on IS NULL")
                .bind(account.to_string())
                .fetch_one(p)
                .await?;
            let rows = sqlx::query_as(concat!(
                "SELECT ", batch_cols!(),
                " FROM batch WHERE account_id = $1 AND deleted_on IS NULL \
                 ORDER BY created_on ASC, id ASC LIMIT $2 OFFSET $3"
            ))
            .bind(account.to_string())
            .bind(take)
            .bind(skip)
            .fetch_all(p)
            .await?;
            (total, rows)
        });
        let data = self.with_counts(rows).await?;
        Ok(List {
            take: u32::try_from(take).unwrap_or(MAX_TAKE),
            skip: u32::try_from(skip).unwrap_or(u32::MAX),
            total,
            data,
        })
    }

    async fn batch_items(&self, batch: Uuid) -> Result<Vec<BatchItem>> {
        let rows: Vec<ItemRow> = with_pool!(self, p => sqlx::query_as(
            "SELECT batch_id, position, phone, state, call_id, q850_cause, reason, started_on, ended_on \
             FROM batch_item WHERE batch_id = $1 ORDER BY position",
        )
        .bind(batch.to_string())
        .fetch_all(p)
        .await?);
        rows.into_iter().map(ItemRow::into_model).collect()
    }

    async fn update_batch_item(&self, batch: Uuid, position: i32, update: BatchItemUpdate) -> Result<()> {
        let now = ms(now());
        let done = with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            let done = sqlx::query(
                "UPDATE batch_item SET state = $3, call_id = COALESCE($4, call_id), \
                 q850_cause = COALESCE($5, q850_cause), reason = COALESCE($6, reason), \
                 started_on = COALESCE($7, started_on), ended_on = COALESCE($8, ended_on) \
                 WHERE batch_id = $1 AND position = $2",
            )
            .bind(batch.to_string())
            .bind(position)
            .bind(update.state.as_str())
            .bind(opt_str(update.call))
            .bind(update.q850_cause)
            .bind(&update.reason)
            .bind(update.started_on.map(ms))
            .bind(update.ended_on.map(ms))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if done > 0 {
                sqlx::query("UPDATE batch SET modified_on = $2 WHERE id = $1")
                    .bind(batch.to_string())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            done
        });
        if done == 0 { Err(StoreError::not_found(K, format!("{batch} item {position}"))) } else { Ok(()) }
    }

    async fn set_batch_state(&self, batch: Uuid, state: BatchState) -> Result<()> {
        let (done, exists) = with_pool!(self, p => {
            let done = sqlx::query(
                "UPDATE batch SET state = $2, modified_on = $3 \
                 WHERE id = $1 AND state NOT IN ('completed', 'cancelled')",
            )
            .bind(batch.to_string())
            .bind(state.as_str())
            .bind(ms(now()))
            .execute(p)
            .await?
            .rows_affected();
            let exists: i64 = if done == 0 {
                sqlx::query_scalar("SELECT COUNT(*) FROM batch WHERE id = $1")
                    .bind(batch.to_string())
                    .fetch_one(p)
                    .await?
            } else {
                1
            };
            (done, exists)
        });
        // A batch in a final state keeps it: a runner finishing after a cancel does not
        // overwrite "cancelled".
        if done == 0 && exists == 0 { Err(StoreError::not_found(K, batch)) } else { Ok(()) }
    }

    async fn cancel_batch(&self, account: Uuid, id: Uuid) -> Result<Batch> {
        // Conditional, so a cancel racing the runner's "completed" cannot overwrite it.
        with_pool!(self, p => sqlx::query(
            "UPDATE batch SET state = 'cancelled', modified_on = $3 \
             WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL AND state IN ('queued', 'running')",
        )
        .bind(account.to_string())
        .bind(id.to_string())
        .bind(ms(now()))
        .execute(p)
        .await
        .map(|_| ())?);
        match self.get_batch(account, id).await? {
            None => Err(StoreError::not_found(K, id)),
            Some(b) if b.state == BatchState::Completed => Err(StoreError::WrongState {
                kind: K,
                id: id.to_string(),
                state: b.state.as_str(),
                reason: "every call has ended, there is nothing to cancel",
            }),
            Some(b) => Ok(b),
        }
    }

    async fn unfinished_batches(&self) -> Result<Vec<Batch>> {
        let rows: Vec<BatchRow> = with_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", batch_cols!(),
            " FROM batch WHERE state IN ('queued', 'running') AND deleted_on IS NULL ORDER BY created_on, id"
        ))
        .fetch_all(p)
        .await?);
        self.with_counts(rows).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn item_inserts_bind_the_batch_once_and_each_phone() {
        assert_eq!(
            super::insert_items_sql(500, 2),
            "INSERT INTO batch_item (batch_id, position, phone, state) VALUES \
             ($1, 500, $2, 'queued'), ($1, 501, $3, 'queued')"
        );
    }
}
