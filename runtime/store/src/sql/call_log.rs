//! The call log (CDRs) and recordings.

use async_trait::async_trait;
use uuid::Uuid;

use super::{Store, ms, opt_str, opt_uuid, ordered, uuid, with_pool};
use crate::error::{ObjectKind, Result, StoreError};
use crate::model::*;
use crate::repo::{CallFilter, CallLogRepo, List, ListParams};

#[derive(sqlx::FromRow)]
struct CallRow {
    id: String,
    account_id: String,
    app_id: Option<String>,
    direction: String,
    from_party: String,
    to_party: String,
    state: String,
    started_on: i64,
    answered_on: Option<i64>,
    ended_on: Option<i64>,
    duration_ms: Option<i64>,
    q850_cause: Option<i32>,
    hangup_cause: Option<String>,
    hangup_by: Option<String>,
    hangup_reason: Option<String>,
    stir_shaken_attest_level: Option<String>,
    stir_shaken_identity: Option<String>,
    verstat: Option<String>,
    created_on: i64,
    modified_on: i64,
    node_id: Option<String>,
    price_micros: Option<i64>,
    billed_secs: Option<i64>,
    rate_prefix: Option<String>,
    rate_per_minute_micros: Option<i64>,
}

impl CallRow {
    fn into_model(self) -> Result<CallRecord> {
        const K: ObjectKind = ObjectKind::Call;
        let corrupt = |column: &'static str, value: String| StoreError::Corrupt { kind: K, column, value };
        Ok(CallRecord {
            uuid: uuid(K, "id", &self.id)?,
            account: uuid(K, "account_id", &self.account_id)?,
            app: opt_uuid(K, "app_id", self.app_id.as_deref())?,
            direction: match self.direction.as_str() {
                "inbound" => CallDirection::Inbound,
                "outbound" => CallDirection::Outbound,
                _ => return Err(corrupt("direction", self.direction)),
            },
            from: self.from_party,
            to: self.to_party,
            state: CallState::parse(&self.state).ok_or_else(|| corrupt("state", self.state.clone()))?,
            started_on: from_millis(self.started_on),
            answered_on: self.answered_on.map(from_millis),
            ended_on: self.ended_on.map(from_millis),
            duration_ms: self.duration_ms,
            q850_cause: self.q850_cause,
            hangup_cause: self.hangup_cause,
            hangup_by: self.hangup_by,
            hangup_reason: self.hangup_reason,
            stir_shaken_attest_level: match self.stir_shaken_attest_level {
                Some(level) => Some(
                    AttestLevel::parse(&level).ok_or_else(|| corrupt("stir_shaken_attest_level", level))?,
                ),
                None => None,
            },
            stir_shaken_identity: self.stir_shaken_identity,
            verstat: self.verstat,
            created_on: from_millis(self.created_on),
            modified_on: from_millis(self.modified_on),
            node: self.node_id,
            price: match (self.price_micros, self.billed_secs, self.rate_prefix, self.rate_per_minute_micros)
            {
                (Some(price_micros), Some(billed_secs), Some(rate_prefix), Some(rate_per_minute_micros)) => {
                    Some(CallPrice { price_micros, billed_secs, rate_prefix, rate_per_minute_micros })
                }
                _ => None,
            },
        })
    }
}

macro_rules! call_cols {
    () => {
        "id, account_id, app_id, direction, from_party, to_party, state, started_on, answered_on, ended_on, \
         duration_ms, q850_cause, hangup_cause, hangup_by, hangup_reason, stir_shaken_attest_level, \
         stir_shaken_identity, verstat, created_on, modified_on, node_id, price_micros, billed_secs, rate_prefix, \
         rate_per_minute_micros"
    };
}

#[derive(sqlx::FromRow)]
struct RecordingRow {
    id: String,
    account_id: String,
    call_id: String,
    name: String,
    duration_ms: i64,
    size_bytes: i64,
    transcript: Option<String>,
    created_on: i64,
}

impl RecordingRow {
    fn into_model(self) -> Result<RecordingRecord> {
        const K: ObjectKind = ObjectKind::Recording;
        Ok(RecordingRecord {
            uuid: uuid(K, "id", &self.id)?,
            account: uuid(K, "account_id", &self.account_id)?,
            call: uuid(K, "call_id", &self.call_id)?,
            name: self.name,
            duration_ms: self.duration_ms,
            size_bytes: self.size_bytes,
            transcript: self.transcript,
            created_on: from_millis(self.created_on),
        })
    }
}

/// Closes a node's open CDRs: failed, Q.850 41 (temporary failure), `$3` the reason, ended at
/// `$2`. Run by the node itself when it starts again, or by the survivor that takes a dead node
/// over ([`crate::NodeRepo::take_over_dead_node`]).
pub(super) const CLOSE_ABANDONED_CALLS: &str = "UPDATE call_record SET state = 'failed', ended_on = $2, \
     duration_ms = CASE WHEN answered_on IS NULL THEN 0 ELSE $2 - answered_on END, \
     q850_cause = 41, hangup_cause = 'TEMPORARY_FAILURE', hangup_by = 'platform', hangup_reason = $3, \
     modified_on = $2 WHERE node_id = $1 AND ended_on IS NULL";

#[async_trait]
impl CallLogRepo for Store {
    async fn record_call_start(&self, account: Uuid, new: NewCallRecord) -> Result<CallRecord> {
        let now = now();
        let record = CallRecord {
            uuid: new.uuid,
            account,
            app: new.app,
            direction: new.direction,
            from: new.from,
            to: new.to,
            state: CallState::Initiated,
            started_on: new.started_on,
            answered_on: None,
            ended_on: None,
            duration_ms: None,
            q850_cause: None,
            hangup_cause: None,
            hangup_by: None,
            hangup_reason: None,
            stir_shaken_attest_level: None,
            stir_shaken_identity: None,
            verstat: None,
            created_on: now,
            modified_on: now,
            node: new.node.clone(),
            price: None,
        };
        with_pool!(self, p => sqlx::query(
            "INSERT INTO call_record (id, account_id, app_id, direction, from_party, to_party, state, started_on, \
             created_on, modified_on, node_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)",
        )
        .bind(record.uuid.to_string())
        .bind(account.to_string())
        .bind(opt_str(record.app))
        .bind(record.direction.as_str())
        .bind(&record.from)
        .bind(&record.to)
        .bind(record.state.as_str())
        .bind(ms(record.started_on))
        .bind(ms(now))
        .bind(&new.node)
        .execute(p)
        .await
        .map(|_| ())?);
        Ok(record)
    }

    async fn record_call_answer(&self, account: Uuid, call: Uuid, at: Timestamp) -> Result<()> {
        let done = with_pool!(self, p => sqlx::query(
            "UPDATE call_record SET state = 'answered', answered_on = $3, modified_on = $4 \
             WHERE account_id = $1 AND id = $2 AND state = 'initiated'",
        )
        .bind(account.to_string())
        .bind(call.to_string())
        .bind(ms(at))
        .bind(ms(now()))
        .execute(p)
        .await?
        .rows_affected());
        if done == 0 { Err(StoreError::not_found(ObjectKind::Call, call)) } else { Ok(()) }
    }

    async fn record_call_shaken(&self, account: Uuid, call: Uuid, shaken: CallShaken) -> Result<()> {
        let done = with_pool!(self, p => sqlx::query(
            "UPDATE call_record SET stir_shaken_attest_level = $3, stir_shaken_identity = $4, verstat = $5, \
             modified_on = $6 WHERE account_id = $1 AND id = $2",
        )
        .bind(account.to_string())
        .bind(call.to_string())
        .bind(shaken.attest_level.map(AttestLevel::as_str))
        .bind(&shaken.identity)
        .bind(&shaken.verstat)
        .bind(ms(now()))
        .execute(p)
        .await?
        .rows_affected());
        if done == 0 { Err(StoreError::not_found(ObjectKind::Call, call)) } else { Ok(()) }
    }

    async fn record_call_end(&self, account: Uuid, call: Uuid, end: CallEnd) -> Result<()> {
        let state = if end.failed {
            CallState::Failed
        } else if end.answered {
            CallState::Completed
        } else {
            CallState::Unanswered
        };
        let done = with_pool!(self, p => sqlx::query(
            "UPDATE call_record SET state = $3, ended_on = $4, duration_ms = $5, q850_cause = $6, hangup_cause = $7, \
             hangup_by = $8, hangup_reason = $9, modified_on = $10 WHERE account_id = $1 AND id = $2",
        )
        .bind(account.to_string())
        .bind(call.to_string())
        .bind(state.as_str())
        .bind(ms(end.ended_on))
        .bind(end.duration_ms)
        .bind(end.q850_cause)
        .bind(&end.hangup_cause)
        .bind(&end.hangup_by)
        .bind(&end.hangup_reason)
        .bind(ms(now()))
        .execute(p)
        .await?
        .rows_affected());
        if done == 0 { Err(StoreError::not_found(ObjectKind::Call, call)) } else { Ok(()) }
    }

    async fn close_abandoned_calls(&self, node: &str, at: Timestamp, reason: &str) -> Result<u64> {
        // Duration: from the answer (or the start) to the moment the node noticed, an upper
        // bound — the call cannot have lasted longer than the node's absence.
        Ok(with_pool!(self, p => sqlx::query(CLOSE_ABANDONED_CALLS)
        .bind(node)
        .bind(ms(at))
        .bind(reason)
        .execute(p)
        .await?
        .rows_affected()))
    }

    async fn get_call(&self, account: Uuid, call: Uuid) -> Result<Option<CallRecord>> {
        let row: Option<CallRow> = with_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", call_cols!(), " FROM call_record WHERE account_id = $1 AND id = $2"
        ))
        .bind(account.to_string())
        .bind(call.to_string())
        .fetch_optional(p)
        .await?);
        row.map(CallRow::into_model).transpose()
    }

    async fn search_calls(
        &self,
        account: Uuid,
        f: CallFilter,
        params: ListParams,
    ) -> Result<List<CallRecord>> {
        macro_rules! filter {
            () => {
                " FROM call_record WHERE account_id = $1 AND ($2 IS NULL OR direction = $2) \
                 AND ($3 IS NULL OR state = $3) AND ($4 IS NULL OR from_party = $4) AND ($5 IS NULL OR to_party = $5) \
                 AND ($6 IS NULL OR started_on >= $6) AND ($7 IS NULL OR started_on < $7)"
            };
        }
        let direction = f.direction.map(CallDirection::as_str);
        let state = f.state.map(CallState::as_str);
        let (since, until) = (f.since.map(ms), f.until.map(ms));
        let (total, rows): (i64, Vec<CallRow>) = with_pool!(self, p => {
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
                // The call log reads in the order calls started.
                concat!("SELECT ", call_cols!(), filter!(), " ORDER BY started_on"),
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
        let data = rows.into_iter().map(CallRow::into_model).collect::<Result<_>>()?;
        Ok(List { take: params.take, skip: params.skip, total, data })
    }

    async fn add_recording(
        &self,
        account: Uuid,
        call: Uuid,
        recording: Uuid,
        name: &str,
        duration_ms: i64,
        size_bytes: i64,
    ) -> Result<RecordingRecord> {
        if self.get_call(account, call).await?.is_none() {
            return Err(StoreError::not_found(ObjectKind::Call, call));
        }
        let now = now();
        with_pool!(self, p => sqlx::query(
            "INSERT INTO recording (id, account_id, call_id, name, duration_ms, size_bytes, created_on, modified_on) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(recording.to_string())
        .bind(account.to_string())
        .bind(call.to_string())
        .bind(name)
        .bind(duration_ms)
        .bind(size_bytes)
        .bind(ms(now))
        .execute(p)
        .await
        .map(|_| ())?);
        Ok(RecordingRecord {
            uuid: recording,
            account,
            call,
            name: name.to_owned(),
            duration_ms,
            size_bytes,
            transcript: None,
            created_on: now,
        })
    }

    async fn delete_recording(&self, account: Uuid, recording: Uuid) -> Result<RecordingRecord> {
        let found = self
            .get_recording(account, recording)
            .await?
            .ok_or_else(|| StoreError::not_found(ObjectKind::Recording, recording))?;
        let done = with_pool!(self, p => sqlx::query("DELETE FROM recording WHERE account_id = $1 AND id = $2")
            .bind(account.to_string())
            .bind(recording.to_string())
            .execute(p)
            .await?
            .rows_affected());
        // Deleted by a concurrent request between the two statements: gone all the same.
        if done == 0 { Err(StoreError::not_found(ObjectKind::Recording, recording)) } else { Ok(found) }
    }

    async fn recording_usage(&self, account: Uuid) -> Result<RecordingUsage> {
        let (count, bytes): (i64, i64) = with_pool!(self, p => sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) FROM recording WHERE account_id = $1",
        )
        .bind(account.to_string())
        .fetch_one(p)
        .await?);
        Ok(RecordingUsage {
            count: u64::try_from(count).unwrap_or(0),
            bytes: u64::try_from(bytes).unwrap_or(0),
        })
    }

    async fn get_recording(&self, account: Uuid, recording: Uuid) -> Result<Option<RecordingRecord>> {
        let row: Option<RecordingRow> = with_pool!(self, p => sqlx::query_as(
            "SELECT id, account_id, call_id, name, duration_ms, size_bytes, transcript, created_on FROM recording \
             WHERE account_id = $1 AND id = $2",
        )
        .bind(account.to_string())
        .bind(recording.to_string())
        .fetch_optional(p)
        .await?);
        row.map(RecordingRow::into_model).transpose()
    }

    async fn set_transcript(&self, account: Uuid, recording: Uuid, text: &str) -> Result<()> {
        let done = with_pool!(self, p => sqlx::query(
            "UPDATE recording SET transcript = $3, modified_on = $4 WHERE account_id = $1 AND id = $2",
        )
        .bind(account.to_string())
        .bind(recording.to_string())
        .bind(text)
        .bind(ms(now()))
        .execute(p)
        .await?
        .rows_affected());
        if done == 0 { Err(StoreError::not_found(ObjectKind::Recording, recording)) } else { Ok(()) }
    }

    async fn call_recordings(&self, account: Uuid, call: Uuid) -> Result<Vec<RecordingRecord>> {
        let rows: Vec<RecordingRow> = with_pool!(self, p => sqlx::query_as(
            "SELECT id, account_id, call_id, name, duration_ms, size_bytes, transcript, created_on FROM recording \
             WHERE account_id = $1 AND call_id = $2 ORDER BY created_on, id",
        )
        .bind(account.to_string())
        .bind(call.to_string())
        .fetch_all(p)
        .await?);
        rows.into_iter().map(RecordingRow::into_model).collect()
    }
}
