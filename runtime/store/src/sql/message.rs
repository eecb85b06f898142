//! SMS messages, their history and parts, and the outbound queue the sender claims from.
//!
//! Every statement that changes a message is guarded by the state it expects (`… AND state =
//! 'queued'`), so a late or duplicated write (a second receipt, a retried attempt) changes
//! nothing. On SQLite each transaction starts with its write, so it takes the single writer's
//! lock at once instead of upgrading a read (which WAL refuses with "database is locked").

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use uuid::Uuid;

use super::{Backend, Ref, Store, id_list, ms, opt_str, opt_uuid, ordered, uuid, with_pool};
use crate::error::{ObjectKind, Result, StoreError};
use crate::model::*;
use crate::repo::{EARLY_RECEIPT_TTL_MS, List, ListParams, MessageRepo};

const K: ObjectKind = ObjectKind::Message;

fn corrupt(column: &'static str, value: String) -> StoreError {
    StoreError::Corrupt { kind: K, column, value }
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: String,
    account_id: String,
    direction: String,
    tn_lease_id: Option<String>,
    from_addr: String,
    to_addr: String,
    body: String,
    encoding: String,
    parts: i32,
    state: String,
    custom_callback_url: Option<String>,
    attempts: i32,
    created_on: i64,
    modified_on: i64,
}

macro_rules! message_cols {
    () => {
        "id, account_id, direction, tn_lease_id, from_addr, to_addr, body, encoding, parts, state, \
         custom_callback_url, attempts, created_on, modified_on"
    };
}

impl MessageRow {
    fn into_model(self, history: Vec<SmsTransition>) -> Result<SmsMessage> {
        Ok(SmsMessage {
            uuid: uuid(K, "id", &self.id)?,
            account: uuid(K, "account_id", &self.account_id)?,
            direction: SmsDirection::parse(&self.direction)
                .ok_or_else(|| corrupt("direction", self.direction.clone()))?,
            tn_lease: opt_uuid(K, "tn_lease_id", self.tn_lease_id.as_deref())?,
            from: self.from_addr,
            to: self.to_addr,
            text: self.body,
            encoding: self.encoding,
            parts: self.parts,
            state: SmsState::parse(&self.state).ok_or_else(|| corrupt("state", self.state.clone()))?,
            custom_callback_url: self.custom_callback_url,
            attempts: self.attempts,
            history,
            created_on: from_millis(self.created_on),
            modified_on: from_millis(self.modified_on),
        })
    }
}

/// Appends a step to a message's history (its `seq` is one past the last).
macro_rules! append_step {
    ($tx:expr, $id:expr, $state:expr, $at:expr, $reason:expr) => {
        sqlx::query(
            "INSERT INTO sms_transition (message_id, seq, state, at, reason) \
             SELECT $1, COALESCE(MAX(seq) + 1, 0), $2, $3, $4 FROM sms_transition WHERE message_id = $1",
        )
        .bind($id)
        .bind($state.as_str())
        .bind($at)
        .bind($reason)
        .execute(&mut *$tx)
        .await?
    };
}

/// Moves a message from `$from` to `$to` if it is in `$from`, releasing any claim, and records
/// the step; evaluates to whether it moved.
macro_rules! guarded_move {
    ($tx:expr, $id:expr, $from:expr, $to:expr, $at:expr, $reason:expr) => {{
        let moved = sqlx::query(
            "UPDATE sms_message SET state = $3, modified_on = $4, claim_token = NULL, claimed_until = NULL \
             WHERE id = $1 AND state = $2",
        )
        .bind($id)
        .bind($from.as_str())
        .bind($to.as_str())
        .bind($at)
        .execute(&mut *$tx)
        .await?
        .rows_affected()
            > 0;
        if moved {
            append_step!($tx, $id, $to, $at, $reason);
        }
        moved
    }};
}

/// If a sent message's parts all have their final receipt, moves it to delivered (or to
/// undelivered as soon as one part is); evaluates to whether it moved.
macro_rules! settle {
    ($tx:expr, $id:expr, $at:expr) => {{
        let row: Option<(String, i32)> = sqlx::query_as("SELECT state, parts FROM sms_message WHERE id = $1")
            .bind($id)
            .fetch_optional(&mut *$tx)
            .await?;
        match row {
            Some((state, parts)) if state == SmsState::Sent.as_str() => {
                let finals: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
                    "SELECT receipt_final, receipt_status FROM sms_part WHERE message_id = $1 ORDER BY part",
                )
                .bind($id)
                .fetch_all(&mut *$tx)
                .await?;
                match aggregate(&finals, parts) {
                    Some((to, reason)) => guarded_move!($tx, $id, SmsState::Sent, to, $at, Some(reason)),
                    None => false,
                }
            }
            _ => false,
        }
    }};
}

/// The message state the parts' final receipts add up to, with the receipt status that
/// decided it: undelivered as soon as one part is, delivered once all `parts` are.
fn aggregate(finals: &[(Option<String>, Option<String>)], parts: i32) -> Option<(SmsState, String)> {
    let undelivered = SmsState::Undelivered.as_str();
    if let Some((_, status)) = finals.iter().find(|(f, _)| f.as_deref() == Some(undelivered)) {
        return Some((SmsState::Undelivered, status.clone().unwrap_or_default()));
    }
    let delivered = SmsState::Delivered.as_str();
    let n = finals.iter().filter(|(f, _)| f.as_deref() == Some(delivered)).count();
    (n > 0 && i32::try_from(n).ok() == Some(parts))
        .then(|| (SmsState::Delivered, finals[0].1.clone().unwrap_or_default()))
}

impl Store {
    /// Reads messages with their histories (one query for all the histories).
    async fn with_history(&self, rows: Vec<MessageRow>) -> Result<Vec<SmsMessage>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids = rows.iter().map(|r| uuid(K, "id", &r.id)).collect::<Result<Vec<_>>>()?;
        let sql = format!(
            "SELECT message_id, state, at, reason FROM sms_transition WHERE message_id IN ({}) \
             ORDER BY message_id, seq",
            id_list(ids)
        );
        let steps: Vec<(String, String, i64, Option<String>)> =
            with_pool!(self, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).fetch_all(p).await?);
        let mut by_id: HashMap<String, Vec<SmsTransition>> = HashMap::new();
        for (id, state, at, reason) in steps {
            let state = SmsState::parse(&state).ok_or_else(|| corrupt("transition state", state))?;
            by_id.entry(id).or_default().push(SmsTransition { state, at: from_millis(at), reason });
        }
        rows.into_iter()
            .map(|r| {
                let history = by_id.remove(&r.id).unwrap_or_default();
                r.into_model(history)
            })
            .collect()
    }

    /// *Unscoped*: a message by id.
    async fn load_sms(&self, id: &str) -> Result<Option<SmsMessage>> {
        let row: Option<MessageRow> = with_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", message_cols!(), " FROM sms_message WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(p)
        .await?);
        Ok(self.with_history(row.into_iter().collect()).await?.pop())
    }
}

#[async_trait]
impl MessageRepo for Store {
    async fn create_sms(&self, account: Uuid, new: NewSms) -> Result<SmsMessage> {
        self.ensure_live_opt(account, Ref::TnLease, new.tn_lease).await?;
        let now = now();
        let id = Uuid::new_v4();
        let first = match new.direction {
            SmsDirection::Smso => SmsState::Created,
            SmsDirection::Smsr => SmsState::Received,
        };
        let queue = new.queue && new.direction == SmsDirection::Smso;
        let state = if queue { SmsState::Queued } else { first };
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(
                "INSERT INTO sms_message (id, account_id, direction, tn_lease_id, from_addr, to_addr, body, \
                 encoding, parts, state, custom_callback_url, attempts, not_before, created_on, modified_on) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12, $12, $12)",
            )
            .bind(id.to_string())
            .bind(account.to_string())
            .bind(new.direction.as_str())
            .bind(opt_str(new.tn_lease))
            .bind(&new.from)
            .bind(&new.to)
            .bind(&new.text)
            .bind(&new.encoding)
            .bind(new.parts)
            .bind(state.as_str())
            .bind(&new.custom_callback_url)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
            append_step!(tx, id.to_string(), first, ms(now), None::<String>);
            if queue {
                append_step!(tx, id.to_string(), SmsState::Queued, ms(now), None::<String>);
            }
            tx.commit().await?;
        });
        self.load_sms(&id.to_string()).await?.ok_or_else(|| StoreError::not_found(K, id))
    }

    async fn get_sms(&self, account: Uuid, id: Uuid) -> Result<Option<SmsMessage>> {
        let row: Option<MessageRow> = with_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", message_cols!(), " FROM sms_message WHERE account_id = $1 AND id = $2"
        ))
        .bind(account.to_string())
        .bind(id.to_string())
        .fetch_optional(p)
        .await?);
        Ok(self.with_history(row.into_iter().collect()).await?.pop())
    }

    async fn search_sms(&self, account: Uuid, f: SmsFilter, params: ListParams) -> Result<List<SmsMessage>> {
        macro_rules! filter {
            () => {
                " FROM sms_message WHERE account_id = $1 AND ($2 IS NULL OR direction = $2) \
                 AND ($3 IS NULL OR state = $3) AND ($4 IS NULL OR from_addr = $4) AND ($5 IS NULL OR to_addr = $5) \
                 AND ($6 IS NULL OR created_on >= $6) AND ($7 IS NULL OR created_on < $7)"
            };
        }
        let direction = f.direction.map(SmsDirection::as_str);
        let state = f.state.map(SmsState::as_str);
        let (since, until) = (f.since.map(ms), f.until.map(ms));
        let (total, rows): (i64, Vec<MessageRow>) = with_pool!(self, p => {
            let total = sqlx::query_scalar(concat!("SELECT COUNT(*)", filter!()))
                .bind(account.to_string())
                .bind(direction)
                .bind(state)
                .bind(&f.from)
                .bind(&f.to)
                .bind(since)
                .bind(until)
                .fetch_one(p)
                .await?;
            let rows = sqlx::query_as(ordered!(
                params.order,
                concat!("SELECT ", message_cols!(), filter!(), " ORDER BY created_on"),
                " LIMIT $8 OFFSET $9"
            ))
            .bind(account.to_string())
            .bind(direction)
            .bind(state)
            .bind(&f.from)
            .bind(&f.to)
            .bind(since)
            .bind(until)
            .bind(params.limit())
            .bind(params.offset())
            .fetch_all(p)
            .await?;
            (total, rows)
        });
        let data = self.with_history(rows).await?;
        Ok(List { take: params.take.min(crate::repo::MAX_TAKE), skip: params.skip, total, data })
    }

    async fn claim_sms(&self, limit: usize, lease_ms: i64, expired: ExpiredClaim) -> Result<Vec<ClaimedSms>> {
        let now = ms(now());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        if expired == ExpiredClaim::Fail {
            // At-most-once: a claim that ran out without a recorded attempt may have been
            // submitted; fail it rather than risk a duplicate. Marked by a token first (one
            // write), then each gets its step.
            let token = Uuid::new_v4().to_string();
            with_pool!(self, p => {
                let mut tx = p.begin().await?;
                let n = sqlx::query(
                    "UPDATE sms_message SET state = 'failed', modified_on = $2, claim_token = $1, claimed_until = NULL \
                     WHERE state = 'queued' AND claimed_until IS NOT NULL AND claimed_until < $2",
                )
                .bind(&token)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n > 0 {
                    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM sms_message WHERE claim_token = $1")
                        .bind(&token)
                        .fetch_all(&mut *tx)
                        .await?;
                    for id in ids {
                        append_step!(tx, &id, SmsState::Failed, now,
                            Some("the sender stopped during a submit (at-most-once)"));
                    }
                    sqlx::query("UPDATE sms_message SET claim_token = NULL WHERE claim_token = $1")
                        .bind(&token)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            });
        }
        let token = Uuid::new_v4().to_string();
        let claim_sql = match self.backend() {
            // Concurrent claimers skip each other's rows instead of waiting on them.
            Backend::Postgres => {
                "UPDATE sms_message SET claim_token = $1, claimed_until = $2 WHERE id IN (\
                 SELECT id FROM sms_message WHERE state = 'queued' AND not_before <= $3 \
                 AND (claimed_until IS NULL OR claimed_until < $3) ORDER BY created_on, id LIMIT $4 \
                 FOR UPDATE SKIP LOCKED)"
            }
            // One statement under SQLite's single writer: nobody else claims in between.
            Backend::Sqlite => {
                "UPDATE sms_message SET claim_token = $1, claimed_until = $2 WHERE id IN (\
                 SELECT id FROM sms_message WHERE state = 'queued' AND not_before <= $3 \
                 AND (claimed_until IS NULL OR claimed_until < $3) ORDER BY created_on, id LIMIT $4)"
            }
        };
        let (rows, parts): (Vec<(String, String, String, String, i32)>, Vec<(String, i32, String)>) = with_pool!(self, p => {
            let n = sqlx::query(claim_sql)
                .bind(&token)
                .bind(now.saturating_add(lease_ms))
                .bind(now)
                .bind(limit)
                .execute(p)
                .await?
                .rows_affected();
            if n == 0 {
                (Vec::new(), Vec::new())
            } else {
                let rows = sqlx::query_as(
                    "SELECT id, from_addr, to_addr, body, attempts FROM sms_message \
                     WHERE claim_token = $1 ORDER BY created_on, id",
                )
                .bind(&token)
                .fetch_all(p)
                .await?;
                let parts = sqlx::query_as(
                    "SELECT sms_part.message_id, sms_part.part, sms_part.carrier_id FROM sms_part \
                     JOIN sms_message ON sms_message.id = sms_part.message_id WHERE sms_message.claim_token = $1",
                )
                .bind(&token)
                .fetch_all(p)
                .await?;
                (rows, parts)
            }
        });
        let mut accepted: HashMap<String, BTreeMap<usize, String>> = HashMap::new();
        for (id, part, carrier_id) in parts {
            accepted.entry(id).or_default().insert(usize::try_from(part).unwrap_or(0), carrier_id);
        }
        rows.into_iter()
            .map(|(id, from, to, text, attempts)| {
                Ok(ClaimedSms {
                    uuid: uuid(K, "id", &id)?,
                    accepted: accepted.remove(&id).unwrap_or_default(),
                    from,
                    to,
                    text,
                    attempts: u32::try_from(attempts).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn record_sms_attempt(
        &self,
        id: Uuid,
        accepted: &BTreeMap<usize, String>,
        attempt: &SmsAttempt,
        at: Timestamp,
    ) -> Result<Option<SmsMessage>> {
        let key = id.to_string();
        let at = ms(at);
        let moved = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            // First the write that every outcome makes (and that tells whether the id exists).
            let not_before = match attempt {
                SmsAttempt::Retry { not_before, .. } => Some(ms(*not_before)),
                _ => None,
            };
            let n = sqlx::query(
                "UPDATE sms_message SET attempts = attempts + 1, modified_on = $2, claim_token = NULL, \
                 claimed_until = NULL, not_before = COALESCE($3, not_before) WHERE id = $1",
            )
            .bind(&key)
            .bind(at)
            .bind(not_before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::not_found(K, id));
            }
            for (part, carrier_id) in accepted {
                sqlx::query(
                    "INSERT INTO sms_part (message_id, part, carrier_id) VALUES ($1, $2, $3) \
                     ON CONFLICT (message_id, part) DO NOTHING",
                )
                .bind(&key)
                .bind(i32::try_from(*part).unwrap_or(i32::MAX))
                .bind(carrier_id)
                .execute(&mut *tx)
                .await?;
            }
            let mut moved = match attempt {
                SmsAttempt::Sent => guarded_move!(tx, &key, SmsState::Queued, SmsState::Sent, at, None::<String>),
                SmsAttempt::Failed { reason } => {
                    guarded_move!(tx, &key, SmsState::Queued, SmsState::Failed, at, Some(reason.as_str()))
                }
                SmsAttempt::Retry { .. } => false,
            };
            // Receipts that overtook this record.
            if !accepted.is_empty() {
                let ids: Vec<String> = accepted.values().cloned().collect();
                let list = ids.iter().map(|s| format!("'{}'", s.replace('\'', "''"))).collect::<Vec<_>>().join(", ");
                let early: Vec<(String, String, Option<String>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT carrier_id, receipt_status, receipt_final FROM sms_early_receipt \
                     WHERE carrier_id IN ({list}) ORDER BY at"
                )))
                .fetch_all(&mut *tx)
                .await?;
                if !early.is_empty() {
                    for (carrier_id, status, part_final) in early {
                        sqlx::query(
                            "UPDATE sms_part SET receipt_status = $3, receipt_final = $4 \
                             WHERE message_id = $1 AND carrier_id = $2 AND receipt_final IS NULL",
                        )
                        .bind(&key)
                        .bind(&carrier_id)
                        .bind(&status)
                        .bind(&part_final)
                        .execute(&mut *tx)
                        .await?;
                    }
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DELETE FROM sms_early_receipt WHERE carrier_id IN ({list})"
                    )))
                    .execute(&mut *tx)
                    .await?;
                    moved |= settle!(tx, &key, at);
                }
            }
            tx.commit().await?;
            moved
        });
        if moved { self.load_sms(&key).await } else { Ok(None) }
    }

    async fn settle_inbound_sms(
        &self,
        id: Uuid,
        to: SmsState,
        reason: Option<String>,
        at: Timestamp,
    ) -> Result<Option<SmsMessage>> {
        if !matches!(to, SmsState::Delivered | SmsState::Failed) {
            return Err(StoreError::Invalid {
                field: "state",
                reason: "an inbound message moves from received to delivered or failed only",
            });
        }
        let key = id.to_string();
        let at = ms(at);
        let moved = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            // The direction is part of the guard: an outbound message is never 'received'.
            let n = sqlx::query(
                "UPDATE sms_message SET state = $3, modified_on = $4 \
                 WHERE id = $1 AND direction = 'smsr' AND state = $2",
            )
            .bind(&key)
            .bind(SmsState::Received.as_str())
            .bind(to.as_str())
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n > 0 {
                append_step!(tx, &key, to, at, reason.as_deref());
            }
            tx.commit().await?;
            n > 0
        });
        if moved { self.load_sms(&key).await } else { Ok(None) }
    }

    async fn record_sms_receipt(&self, receipt: &SmsReceipt, at: Timestamp) -> Result<Option<SmsMessage>> {
        let at = ms(at);
        let part_final = receipt.part_final.map(|s| s.as_str());
        let moved: Option<String> = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            // A part's final receipt is kept: a later (duplicate, intermediate) one changes nothing.
            sqlx::query(
                "UPDATE sms_part SET receipt_status = $2, receipt_final = $3 \
                 WHERE carrier_id = $1 AND receipt_final IS NULL",
            )
            .bind(&receipt.carrier_id)
            .bind(&receipt.status)
            .bind(part_final)
            .execute(&mut *tx)
            .await?;
            let ids: Vec<String> = sqlx::query_scalar("SELECT message_id FROM sms_part WHERE carrier_id = $1")
                .bind(&receipt.carrier_id)
                .fetch_all(&mut *tx)
                .await?;
            let mut moved = None;
            if ids.is_empty() {
                sqlx::query("DELETE FROM sms_early_receipt WHERE at < $1")
                    .bind(at.saturating_sub(EARLY_RECEIPT_TTL_MS))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO sms_early_receipt (carrier_id, receipt_status, receipt_final, at) VALUES ($1, $2, $3, $4)",
                )
                .bind(&receipt.carrier_id)
                .bind(&receipt.status)
                .bind(part_final)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            for id in ids {
                if settle!(tx, &id, at) {
                    moved = Some(id);
                }
            }
            tx.commit().await?;
            moved
        });
        match moved {
            Some(id) => self.load_sms(&id).await,
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(x: Option<&str>) -> (Option<String>, Option<String>) {
        (x.map(String::from), x.map(String::from))
    }

    #[test]
    fn parts_add_up() {
        assert_eq!(aggregate(&[f(Some("delivered"))], 1).map(|a| a.0), Some(SmsState::Delivered));
        assert_eq!(aggregate(&[f(Some("delivered"))], 2), None);
        assert_eq!(aggregate(&[f(Some("delivered")), f(None)], 2), None);
        assert_eq!(
            aggregate(&[f(None), f(Some("undelivered"))], 2).map(|a| a.0),
            Some(SmsState::Undelivered)
        );
        assert_eq!(aggregate(&[], 1), None);
    }
}
