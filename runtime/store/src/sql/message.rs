//! SMS messages, their history and parts, and the outbound queue the sender claims from.
//!
//! Every statement that changes a message is guarded by the state it expects (`… AND state =
//! 'queued'`), so a late or duplicated write (a second receipt, a retried attempt) changes
//! nothing. On SQLite each transaction starts with its write, so it takes the single writer's
//! lock at once instead of upgrading a read (which WAL refuses with "database is locked").

use crate::sql::BeginWrite;
use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use uuid::Uuid;

use super::{Backend, Store, id_list, ms, opt_str, opt_uuid, ordered, uuid, with_pool};
use crate::error::{ObjectKind, Result, StoreError};
use crate::id::new_id;
use crate::model::*;
use crate::repo::{EARLY_RECEIPT_TTL_MS, List, ListParams, MessageRepo, SmsMoved, SmsWrite};

const K: ObjectKind = ObjectKind::Message;
/// The largest SMPP `user_message_reference` (a 2-octet integer); references wrap after it.
const MAX_REFERENCE: i32 = 0xFFFF;
/// Parts put in doubt by one INSERT.
const REFERENCE_CHUNK: usize = 500;
/// Messages stored by one INSERT (11 bound values each: well under either backend's limit).
const CREATE_CHUNK: usize = 500;
/// Writes of a batch recorded by one statement each step (4 bound values at most each).
const RUN_CHUNK: usize = 1_000;

/// `rows` tuples of `cols` numbered placeholders for a `VALUES` list, numbered from `first`:
/// `($2, $3), ($4, $5)`. Both backends name a `VALUES` list's columns `column1`, `column2`…
fn values_placeholders(rows: usize, cols: usize, first: usize) -> String {
    (0..rows)
        .map(|row| {
            let cells: Vec<String> = (0..cols).map(|col| format!("${}", first + row * cols + col)).collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

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
    price_micros: Option<i64>,
}

macro_rules! message_cols {
    () => {
        "id, account_id, direction, tn_lease_id, from_addr, to_addr, body, encoding, parts, state, \
         custom_callback_url, attempts, created_on, modified_on, price_micros"
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
            price_micros: self.price_micros,
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

/// Records a send attempt of the message `$key` in `$tx` (see
/// [`MessageRepo::record_sms_attempt`]); evaluates to the steps it added to the message's
/// history (0 to 2: sent, then delivered or undelivered when receipts came first), `None` when
/// there is no such message.
macro_rules! record_attempt {
    ($tx:expr, $key:expr, $accepted:expr, $attempt:expr, $at:expr) => {{
        let (key, accepted, attempt, at): (&str, &BTreeMap<usize, String>, &SmsAttempt, i64) =
            ($key, $accepted, $attempt, $at);
        // First the write that every outcome makes (and that tells whether the id exists).
        let not_before = match attempt {
            SmsAttempt::Retry { not_before, .. } | SmsAttempt::Unanswered { not_before, .. } => {
                Some(ms(*not_before))
            }
            _ => None,
        };
        let n = sqlx::query(
            "UPDATE sms_message SET attempts = attempts + 1, modified_on = $2, claim_token = NULL, \
             claimed_until = NULL, not_before = COALESCE($3, not_before) WHERE id = $1",
        )
        .bind(key)
        .bind(at)
        .bind(not_before)
        .execute(&mut *$tx)
        .await?
        .rows_affected();
        if n == 0 {
            None
        } else {
            for (part, carrier_id) in accepted {
                sqlx::query(
                    "INSERT INTO sms_part (message_id, part, carrier_id) VALUES ($1, $2, $3) \
                     ON CONFLICT (message_id, part) DO NOTHING",
                )
                .bind(key)
                .bind(i32::try_from(*part).unwrap_or(i32::MAX))
                .bind(carrier_id)
                .execute(&mut *$tx)
                .await?;
            }
            // Parts accepted or refused are no longer in doubt; those whose answer was lost
            // stay in doubt (their reference kept), from now.
            match attempt {
                SmsAttempt::Unanswered { in_doubt, .. } if !in_doubt.is_empty() => {
                    let parts = in_doubt.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ");
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DELETE FROM sms_submitting WHERE message_id = $1 AND part NOT IN ({parts})"
                    )))
                    .bind(key)
                    .execute(&mut *$tx)
                    .await?;
                    sqlx::query("UPDATE sms_submitting SET at = $2 WHERE message_id = $1")
                        .bind(key)
                        .bind(at)
                        .execute(&mut *$tx)
                        .await?;
                }
                _ => {
                    sqlx::query("DELETE FROM sms_submitting WHERE message_id = $1")
                        .bind(key)
                        .execute(&mut *$tx)
                        .await?;
                }
            }
            let mut steps = match attempt {
                // Receipts that settled parts before this record (by reference) apply now.
                SmsAttempt::Sent => {
                    let sent = guarded_move!($tx, key, SmsState::Queued, SmsState::Sent, at, None::<String>);
                    usize::from(sent) + usize::from(sent && settle!($tx, key, at))
                }
                SmsAttempt::Failed { reason } => usize::from(guarded_move!(
                    $tx,
                    key,
                    SmsState::Queued,
                    SmsState::Failed,
                    at,
                    Some(reason.as_str())
                )),
                SmsAttempt::Retry { .. } | SmsAttempt::Unanswered { .. } => 0,
            };
            // Receipts that overtook this record.
            if !accepted.is_empty() {
                let list = accepted
                    .values()
                    .map(|s| format!("'{}'", s.replace('\'', "''")))
                    .collect::<Vec<_>>()
                    .join(", ");
                let early: Vec<(String, String, Option<String>)> =
                    sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT carrier_id, receipt_status, receipt_final FROM sms_early_receipt \
                     WHERE carrier_id IN ({list}) ORDER BY at"
                    )))
                    .fetch_all(&mut *$tx)
                    .await?;
                if !early.is_empty() {
                    for (carrier_id, status, part_final) in early {
                        sqlx::query(
                            "UPDATE sms_part SET receipt_status = $3, receipt_final = $4 \
                             WHERE message_id = $1 AND carrier_id = $2 AND receipt_final IS NULL",
                        )
                        .bind(key)
                        .bind(&carrier_id)
                        .bind(&status)
                        .bind(&part_final)
                        .execute(&mut *$tx)
                        .await?;
                    }
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DELETE FROM sms_early_receipt WHERE carrier_id IN ({list})"
                    )))
                    .execute(&mut *$tx)
                    .await?;
                    steps += usize::from(settle!($tx, key, at));
                }
            }
            Some(steps)
        }
    }};
}

/// Applies a delivery receipt in `$tx` (see [`MessageRepo::record_sms_receipt_echoed`]);
/// evaluates to the message it moved and the steps it added to its history (2 when an echoed
/// reference settles the last part in doubt: sent, then the receipt's outcome).
macro_rules! record_receipt {
    ($tx:expr, $receipt:expr, $echo:expr, $at:expr) => {{
        let (receipt, echo, at): (&SmsReceipt, Option<(u16, &str)>, i64) = ($receipt, $echo, $at);
        let part_final = receipt.part_final.map(|s| s.as_str());
        // A part's final receipt is kept: a later (duplicate, intermediate) one changes nothing.
        sqlx::query(
            "UPDATE sms_part SET receipt_status = $2, receipt_final = $3 \
             WHERE carrier_id = $1 AND receipt_final IS NULL",
        )
        .bind(&receipt.carrier_id)
        .bind(&receipt.status)
        .bind(part_final)
        .execute(&mut *$tx)
        .await?;
        let mut ids: Vec<String> = sqlx::query_scalar("SELECT message_id FROM sms_part WHERE carrier_id = $1")
            .bind(&receipt.carrier_id)
            .fetch_all(&mut *$tx)
            .await?;
        // The message this receipt moved, and the steps it made.
        let mut moved: Option<(String, usize)> = None;
        if let (true, Some((reference, handset))) = (ids.is_empty(), echo) {
            // A part in doubt whose submit's answer was never recorded (the sender died, the
            // connection dropped): the SMSC echoed its reference, so it took it.
            let found: Option<(String, i32)> = sqlx::query_as(
                "SELECT s.message_id, s.part FROM sms_submitting s JOIN sms_message m ON m.id = s.message_id \
                 WHERE s.user_ref = $1 AND m.state = 'queued' AND ($2 = '' OR m.to_addr = $2)",
            )
            .bind(i32::from(reference))
            .bind(handset.trim_start_matches('+'))
            .fetch_optional(&mut *$tx)
            .await?;
            if let Some((id, part)) = found {
                sqlx::query("DELETE FROM sms_submitting WHERE message_id = $1 AND part = $2")
                    .bind(&id)
                    .bind(part)
                    .execute(&mut *$tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO sms_part (message_id, part, carrier_id, receipt_status, receipt_final) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_id, part) DO NOTHING",
                )
                .bind(&id)
                .bind(part)
                .bind(&receipt.carrier_id)
                .bind(&receipt.status)
                .bind(part_final)
                .execute(&mut *$tx)
                .await?;
                // Every part taken and no sender holds the message (one that does records
                // its attempt, which settles it): it was sent.
                let sent = sqlx::query(
                    "UPDATE sms_message SET state = 'sent', modified_on = $2, claim_token = NULL, claimed_until = NULL \
                     WHERE id = $1 AND state = 'queued' AND (claimed_until IS NULL OR claimed_until < $2) \
                     AND parts = (SELECT COUNT(*) FROM sms_part WHERE message_id = $1)",
                )
                .bind(&id)
                .bind(at)
                .execute(&mut *$tx)
                .await?
                .rows_affected()
                    > 0;
                if sent {
                    append_step!($tx, &id, SmsState::Sent, at,
                        Some("the SMSC's receipt echoed the reference of a submit whose answer was lost"));
                    moved = Some((id.clone(), 1));
                }
                ids.push(id);
            }
        }
        if ids.is_empty() {
            sqlx::query("DELETE FROM sms_early_receipt WHERE at < $1")
                .bind(at.saturating_sub(EARLY_RECEIPT_TTL_MS))
                .execute(&mut *$tx)
                .await?;
            sqlx::query(
                "INSERT INTO sms_early_receipt (carrier_id, receipt_status, receipt_final, at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&receipt.carrier_id)
            .bind(&receipt.status)
            .bind(part_final)
            .bind(at)
            .execute(&mut *$tx)
            .await?;
        }
        for id in ids {
            if settle!($tx, &id, at) {
                let before = moved.take().filter(|(m, _)| *m == id).map_or(0, |(_, steps)| steps);
                moved = Some((id, before + 1));
            }
        }
        moved
    }};
}

/// Appends one step to each of several messages' histories, in one statement (each `seq` one
/// past that message's last). Each message appears once: `$steps` are (id, state, at, reason).
macro_rules! append_steps {
    ($tx:expr, $steps:expr) => {{
        let steps: &[(&str, SmsState, i64, Option<&str>)] = $steps;
        for chunk in steps.chunks(RUN_CHUNK) {
            let sql = format!(
                "INSERT INTO sms_transition (message_id, seq, state, at, reason) \
                 SELECT v.column1, (SELECT COALESCE(MAX(t.seq) + 1, 0) FROM sms_transition t \
                 WHERE t.message_id = v.column1), v.column2, v.column3, v.column4 FROM (VALUES {}) AS v",
                values_placeholders(chunk.len(), 4, 1)
            );
            let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, state, at, reason) in chunk {
                insert = insert.bind(*id).bind(state.as_str()).bind(*at).bind(*reason);
            }
            insert.execute(&mut *$tx).await?;
        }
    }};
}

/// Moves each message (id, to, at, reason) that is in `$from` to its `to`, releasing any claim,
/// and records its step; evaluates to the ids that moved. [`guarded_move!`] for many at once.
macro_rules! guarded_moves {
    ($tx:expr, $from:expr, $moves:expr) => {{
        let (from, moves): (SmsState, &[(&str, SmsState, i64, Option<&str>)]) = ($from, $moves);
        let mut moved: HashSet<String> = HashSet::new();
        for chunk in moves.chunks(RUN_CHUNK) {
            let sql = format!(
                "UPDATE sms_message SET state = v.column2, modified_on = v.column3, claim_token = NULL, \
                 claimed_until = NULL FROM (VALUES {}) AS v WHERE sms_message.id = v.column1 \
                 AND sms_message.state = $1 RETURNING sms_message.id",
                values_placeholders(chunk.len(), 3, 2)
            );
            let mut update = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(from.as_str());
            for (id, to, at, _) in chunk {
                update = update.bind(*id).bind(to.as_str()).bind(*at);
            }
            moved.extend(update.fetch_all(&mut *$tx).await?);
        }
        let steps: Vec<(&str, SmsState, i64, Option<&str>)> =
            moves.iter().filter(|m| moved.contains(m.0)).copied().collect();
        if !steps.is_empty() {
            append_steps!($tx, &steps);
        }
        moved
    }};
}

/// Settles sent messages whose parts all have their final receipt (see [`settle!`]), many at
/// once: `$settling` are (id, at) of distinct messages; evaluates to the ids that moved.
macro_rules! settle_many {
    ($tx:expr, $settling:expr) => {{
        let settling: &[(&str, i64)] = $settling;
        let mut moves: Vec<(&str, SmsState, i64, String)> = Vec::new();
        for chunk in settling.chunks(RUN_CHUNK) {
            let list = values_placeholders(chunk.len(), 1, 1);
            let sql = format!(
                "SELECT sms_part.message_id, sms_message.parts, sms_part.receipt_final, sms_part.receipt_status \
                 FROM sms_part JOIN sms_message ON sms_message.id = sms_part.message_id \
                 WHERE sms_message.state = 'sent' AND sms_part.message_id IN ({}) ORDER BY sms_part.message_id, sms_part.part",
                list.replace(['(', ')'], "")
            );
            let mut select = sqlx::query_as::<_, (String, i32, Option<String>, Option<String>)>(sqlx::AssertSqlSafe(sql));
            for (id, _) in chunk {
                select = select.bind(*id);
            }
            let mut finals: HashMap<String, (i32, Vec<(Option<String>, Option<String>)>)> = HashMap::new();
            for (id, parts, part_final, status) in select.fetch_all(&mut *$tx).await? {
                finals.entry(id).or_insert_with(|| (parts, Vec::new())).1.push((part_final, status));
            }
            for (id, at) in chunk {
                if let Some((to, reason)) = finals.get(*id).and_then(|(parts, f)| aggregate(f, *parts)) {
                    moves.push((*id, to, *at, reason));
                }
            }
        }
        let moves: Vec<(&str, SmsState, i64, Option<&str>)> =
            moves.iter().map(|(id, to, at, reason)| (*id, *to, *at, Some(reason.as_str()))).collect();
        if moves.is_empty() { HashSet::new() } else { guarded_moves!($tx, SmsState::Sent, &moves) }
    }};
}

/// Records a run of plain `Sent` attempts of distinct messages (`$run`: id, accepted parts,
/// at) in `$tx` as [`record_attempt!`] records each, with a handful of statements for the
/// whole run; evaluates to each attempt's outcome in order: `None` for an unknown message, else
/// the steps it added to the history (sent, then delivered or undelivered when receipts came
/// first).
macro_rules! record_sent_run {
    ($tx:expr, $run:expr) => {{
        let run: &[(&str, &BTreeMap<usize, String>, i64)] = $run;
        // Every attempt counted, by one statement that also tells which messages exist.
        let sql = format!(
            "UPDATE sms_message SET attempts = attempts + 1, modified_on = v.column2, claim_token = NULL, \
             claimed_until = NULL FROM (VALUES {}) AS v WHERE sms_message.id = v.column1 RETURNING sms_message.id",
            values_placeholders(run.len(), 2, 1)
        );
        let mut update = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
        for (id, _, at) in run {
            update = update.bind(*id).bind(*at);
        }
        let found: HashSet<String> = update.fetch_all(&mut *$tx).await?.into_iter().collect();
        let known: Vec<&(&str, &BTreeMap<usize, String>, i64)> =
            run.iter().filter(|(id, _, _)| found.contains(*id)).collect();
        let mut sent: HashSet<String> = HashSet::new();
        let mut settled: HashSet<String> = HashSet::new();
        if !known.is_empty() {
            let parts: Vec<(&str, i32, &str)> = known
                .iter()
                .flat_map(|(id, accepted, _)| {
                    accepted.iter().map(move |(part, carrier)| (*id, i32::try_from(*part).unwrap_or(i32::MAX), carrier.as_str()))
                })
                .collect();
            for chunk in parts.chunks(RUN_CHUNK) {
                let sql = format!(
                    "INSERT INTO sms_part (message_id, part, carrier_id) VALUES {} ON CONFLICT (message_id, part) DO NOTHING",
                    values_placeholders(chunk.len(), 3, 1)
                );
                let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (id, part, carrier) in chunk {
                    insert = insert.bind(*id).bind(*part).bind(*carrier);
                }
                insert.execute(&mut *$tx).await?;
            }
            // Every part was accepted: none is in doubt any more. (The ids were read back
            // from the store: UUIDs, safe to splice.)
            let ids = known.iter().map(|(id, _, _)| format!("'{}'", id.replace('\'', "''"))).collect::<Vec<_>>().join(", ");
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM sms_submitting WHERE message_id IN ({ids})")))
                .execute(&mut *$tx)
                .await?;
            let moves: Vec<(&str, SmsState, i64, Option<&str>)> =
                known.iter().map(|(id, _, at)| (*id, SmsState::Sent, *at, None)).collect();
            sent = guarded_moves!($tx, SmsState::Queued, &moves);
            // Receipts that came first: parts already final (an echoed reference's) of the
            // messages just sent, and receipts kept early because they overtook this record.
            let mut settling: HashSet<String> = HashSet::new();
            if !sent.is_empty() {
                let sent_ids = sent.iter().map(|id| format!("'{}'", id.replace('\'', "''"))).collect::<Vec<_>>().join(", ");
                let already: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT DISTINCT message_id FROM sms_part WHERE message_id IN ({sent_ids}) AND receipt_final IS NOT NULL"
                )))
                .fetch_all(&mut *$tx)
                .await?;
                settling.extend(already);
            }
            for chunk in parts.chunks(RUN_CHUNK) {
                let sql = format!(
                    "SELECT carrier_id, receipt_status, receipt_final FROM sms_early_receipt WHERE carrier_id IN ({}) ORDER BY at",
                    values_placeholders(chunk.len(), 1, 1).replace(['(', ')'], "")
                );
                let mut select = sqlx::query_as::<_, (String, String, Option<String>)>(sqlx::AssertSqlSafe(sql));
                for (_, _, carrier) in chunk {
                    select = select.bind(*carrier);
                }
                let early = select.fetch_all(&mut *$tx).await?;
                for (carrier_id, status, part_final) in &early {
                    for (id, _, _) in chunk.iter().filter(|(_, _, c)| c == carrier_id) {
                        sqlx::query(
                            "UPDATE sms_part SET receipt_status = $3, receipt_final = $4 \
                             WHERE message_id = $1 AND carrier_id = $2 AND receipt_final IS NULL",
                        )
                        .bind(*id)
                        .bind(carrier_id)
                        .bind(status)
                        .bind(part_final)
                        .execute(&mut *$tx)
                        .await?;
                        settling.insert((*id).to_owned());
                    }
                }
                if !early.is_empty() {
                    let sql = format!(
                        "DELETE FROM sms_early_receipt WHERE carrier_id IN ({})",
                        values_placeholders(early.len(), 1, 1).replace(['(', ')'], "")
                    );
                    let mut delete = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for (carrier_id, _, _) in &early {
                        delete = delete.bind(carrier_id);
                    }
                    delete.execute(&mut *$tx).await?;
                }
            }
            if !settling.is_empty() {
                let settling: Vec<(&str, i64)> =
                    known.iter().filter(|(id, _, _)| settling.contains(*id)).map(|(id, _, at)| (*id, *at)).collect();
                settled = settle_many!($tx, &settling);
            }
        }
        run.iter()
            .map(|(id, _, _)| {
                found.contains(*id).then(|| usize::from(sent.contains(*id)) + usize::from(settled.contains(*id)))
            })
            .collect::<Vec<Option<usize>>>()
    }};
}

/// Records a run of receipts of distinct parts (`$run`: receipt, echo, at) in `$tx` as
/// [`record_receipt!`] records each: the parts found by their carrier id take their receipts in
/// one statement and their messages are settled together; a receipt whose part is not found
/// (in doubt, or ahead of its attempt's record) is recorded alone. Evaluates to each receipt's
/// outcome in order: the message it moved and the steps. A message that several receipts of the
/// run settle is moved once, by the last of them.
macro_rules! record_receipt_run {
    ($tx:expr, $run:expr) => {{
        let run: &[(&SmsReceipt, Option<(u16, &str)>, i64)] = $run;
        // A part's final receipt is kept: a later (duplicate, intermediate) one changes nothing.
        let sql = format!(
            "UPDATE sms_part SET receipt_status = v.column2, receipt_final = v.column3 FROM (VALUES {}) AS v \
             WHERE sms_part.carrier_id = v.column1 AND sms_part.receipt_final IS NULL",
            values_placeholders(run.len(), 3, 1)
        );
        let mut update = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (receipt, _, _) in run {
            update = update
                .bind(receipt.carrier_id.as_str())
                .bind(receipt.status.as_str())
                .bind(receipt.part_final.map(|s| s.as_str()));
        }
        update.execute(&mut *$tx).await?;
        let sql = format!(
            "SELECT carrier_id, message_id FROM sms_part WHERE carrier_id IN ({})",
            values_placeholders(run.len(), 1, 1).replace(['(', ')'], "")
        );
        let mut select = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql));
        for (receipt, _, _) in run {
            select = select.bind(receipt.carrier_id.as_str());
        }
        let mut messages: HashMap<String, Vec<String>> = HashMap::new();
        for (carrier_id, id) in select.fetch_all(&mut *$tx).await? {
            messages.entry(carrier_id).or_default().push(id);
        }
        let mut outcomes: Vec<Option<(String, usize)>> = vec![None; run.len()];
        // The last receipt of the run that names each message, and its time.
        let mut last: HashMap<String, (usize, i64)> = HashMap::new();
        for (i, (receipt, echo, at)) in run.iter().enumerate() {
            match messages.get(&receipt.carrier_id) {
                Some(ids) => {
                    for id in ids {
                        last.insert(id.clone(), (i, *at));
                    }
                }
                None => outcomes[i] = record_receipt!($tx, *receipt, *echo, *at),
            }
        }
        let mut settling: Vec<(&str, i64)> = last.iter().map(|(id, (_, at))| (id.as_str(), *at)).collect();
        settling.sort_unstable();
        for id in settle_many!($tx, &settling) {
            if let Some((i, _)) = last.get(&id) {
                outcomes[*i] = Some((id, 1));
            }
        }
        outcomes
    }};
}

/// How many writes from the start of `writes` [`record_sent_run!`] records together: plain
/// `Sent` attempts of distinct messages.
fn sent_run(writes: &[(SmsWrite, Timestamp)]) -> usize {
    let mut seen = HashSet::new();
    writes
        .iter()
        .take(RUN_CHUNK)
        .take_while(|(write, _)| {
            matches!(write, SmsWrite::Attempt { id, attempt: SmsAttempt::Sent, .. } if seen.insert(*id))
        })
        .count()
}

/// How many writes from the start of `writes` [`record_receipt_run!`] records together:
/// receipts of distinct carrier ids.
fn receipt_run(writes: &[(SmsWrite, Timestamp)]) -> usize {
    let mut seen = HashSet::new();
    writes
        .iter()
        .take(RUN_CHUNK)
        .take_while(|(write, _)| matches!(write, SmsWrite::Receipt { receipt, .. } if seen.insert(receipt.carrier_id.as_str())))
        .count()
}

/// SQLite has one writer: this process's message writes (the group commits, claims) take turns
/// here rather than meet in SQLite's busy handler, which sleeps 1, 2, 5… ms between tries.
/// PostgreSQL's run side by side.
static SQLITE_SMS_WRITER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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

    /// The turn of a message write on SQLite (see [`SQLITE_SMS_WRITER`]); none on PostgreSQL.
    async fn sms_write_turn(&self) -> Option<tokio::sync::MutexGuard<'static, ()>> {
        match self.backend() {
            Backend::Sqlite => Some(SQLITE_SMS_WRITER.lock().await),
            Backend::Postgres => None,
        }
    }

    /// *Unscoped*: messages by id (two queries for all of them), by id.
    async fn load_many(&self, ids: &[&str]) -> Result<HashMap<String, SmsMessage>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let list =
            ids.iter().map(|id| format!("'{}'", id.replace('\'', "''"))).collect::<Vec<_>>().join(", ");
        let sql = format!(concat!("SELECT ", message_cols!(), " FROM sms_message WHERE id IN ({})"), list);
        let rows: Vec<MessageRow> =
            with_pool!(self, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).fetch_all(p).await?);
        Ok(self.with_history(rows).await?.into_iter().map(|m| (m.uuid.to_string(), m)).collect())
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
    async fn create_sms_batch(&self, items: Vec<(Uuid, NewSms)>) -> Result<Vec<Result<SmsMessage>>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let now = now();
        let at = ms(now);
        // Each message with its id, its first state and the state it is stored in.
        let planned: Vec<(Uuid, SmsState, SmsState)> = items
            .iter()
            .map(|(_, new)| {
                let first = match new.direction {
                    SmsDirection::Smso => SmsState::Created,
                    SmsDirection::Smsr => SmsState::Received,
                };
                let queue = new.queue && new.direction == SmsDirection::Smso;
                (new_id(), first, if queue { SmsState::Queued } else { first })
            })
            .collect();
        let _turn = self.sms_write_turn().await;
        // Two statements a chunk whatever its size: the messages, then their first steps.
        let inserted: HashSet<String> = with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            let mut inserted = HashSet::with_capacity(items.len());
            for (chunk, plans) in items.chunks(CREATE_CHUNK).zip(planned.chunks(CREATE_CHUNK)) {
                // The lease is checked by the insert itself: one released since the caller read
                // it refuses its message alone.
                let sql = format!(
                    "INSERT INTO sms_message (id, account_id, direction, tn_lease_id, from_addr, to_addr, body, \
                     encoding, parts, state, custom_callback_url, attempts, not_before, created_on, modified_on) \
                     SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7, \
                     v.column8, v.column9, v.column10, v.column11, 0, $1, $1, $1 FROM (VALUES {}) AS v \
                     WHERE v.column4 IS NULL OR EXISTS (SELECT 1 FROM tn_lease \
                     WHERE account_id = v.column2 AND id = v.column4 AND released_on IS NULL) RETURNING id",
                    values_placeholders(chunk.len(), 11, 2)
                );
                let mut insert = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(at);
                for ((account, new), (id, _, state)) in chunk.iter().zip(plans) {
                    insert = insert
                        .bind(id.to_string())
                        .bind(account.to_string())
                        .bind(new.direction.as_str())
                        .bind(opt_str(new.tn_lease))
                        .bind(new.from.as_str())
                        .bind(new.to.as_str())
                        .bind(new.text.as_str())
                        .bind(new.encoding.as_str())
                        .bind(new.parts)
                        .bind(state.as_str())
                        .bind(new.custom_callback_url.as_deref());
                }
                let ids: HashSet<String> = insert.fetch_all(&mut *tx).await?.into_iter().collect();
                // A new message's history starts at 0: no need to look for its last step. Ids
                // and states are the store's own (a UUID, a state's name): safe to splice.
                let steps: Vec<String> = plans
                    .iter()
                    .filter(|(id, _, _)| ids.contains(&id.to_string()))
                    .flat_map(|(id, first, state)| {
                        let mut steps = vec![format!("('{id}', 0, '{}', $1, NULL)", first.as_str())];
                        if state != first {
                            steps.push(format!("('{id}', 1, '{}', $1, NULL)", state.as_str()));
                        }
                        steps
                    })
                    .collect();
                if !steps.is_empty() {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO sms_transition (message_id, seq, state, at, reason) VALUES {}",
                        steps.join(", ")
                    )))
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                }
                inserted.extend(ids);
            }
            tx.commit().await?;
            inserted
        });
        // The 201 is answered from what was written, not from a read back.
        Ok(items
            .into_iter()
            .zip(planned)
            .map(|((account, new), (id, first, state))| {
                if !inserted.contains(&id.to_string()) {
                    return Err(StoreError::not_found(ObjectKind::TnLease, new.tn_lease.unwrap_or_default()));
                }
                let mut history = vec![SmsTransition { state: first, at: now, reason: None }];
                if state != first {
                    history.push(SmsTransition { state, at: now, reason: None });
                }
                Ok(SmsMessage {
                    uuid: id,
                    account,
                    direction: new.direction,
                    tn_lease: new.tn_lease,
                    from: new.from,
                    to: new.to,
                    text: new.text,
                    encoding: new.encoding,
                    parts: new.parts,
                    state,
                    custom_callback_url: new.custom_callback_url,
                    attempts: 0,
                    history,
                    created_on: now,
                    modified_on: now,
                    price_micros: None,
                })
            })
            .collect())
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

    async fn claim_sms_with(
        &self,
        limit: usize,
        lease_ms: i64,
        expired: ExpiredClaim,
        grace_ms: i64,
    ) -> Result<Vec<ClaimedSms>> {
        let _turn = self.sms_write_turn().await;
        let now = ms(now());
        // Doubts and claims older than this have had their reconciliation grace.
        let settled = now.saturating_sub(grace_ms.max(0));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        if expired == ExpiredClaim::Fail {
            // At-most-once: parts in doubt past the grace without a receipt may have been
            // submitted; fail their message rather than risk a duplicate. Marked by a token
            // first (one write), then each gets its step.
            let token = Uuid::new_v4().to_string();
            with_pool!(self, p => {
                let mut tx = p.begin_write().await?;
                let n = sqlx::query(
                    "UPDATE sms_message SET state = 'failed', modified_on = $2, claim_token = $1, claimed_until = NULL \
                     WHERE state = 'queued' AND (claimed_until IS NULL OR claimed_until < $3) \
                     AND EXISTS (SELECT 1 FROM sms_submitting s WHERE s.message_id = sms_message.id) \
                     AND NOT EXISTS (SELECT 1 FROM sms_submitting s WHERE s.message_id = sms_message.id AND s.at > $3)",
                )
                .bind(&token)
                .bind(now)
                .bind(settled)
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
                            Some("no receipt showed whether the SMSC took a part whose submit was cut short (at-most-once)"));
                    }
                    sqlx::query(
                        "DELETE FROM sms_submitting WHERE message_id IN (SELECT id FROM sms_message WHERE claim_token = $1)",
                    )
                    .bind(&token)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("UPDATE sms_message SET claim_token = NULL WHERE claim_token = $1")
                        .bind(&token)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            });
        }
        let token = Uuid::new_v4();
        // Claimable: queued, ready, held by nobody — and, when parts are in doubt, their grace
        // passed (since the claim ran out, and since each was put in doubt).
        macro_rules! claimable {
            () => {
                "SELECT m.id FROM sms_message m WHERE m.state = 'queued' AND m.not_before <= $3 \
                 AND (m.claimed_until IS NULL OR m.claimed_until < $5 OR (m.claimed_until < $3 \
                 AND NOT EXISTS (SELECT 1 FROM sms_submitting s WHERE s.message_id = m.id))) \
                 AND NOT EXISTS (SELECT 1 FROM sms_submitting s WHERE s.message_id = m.id AND s.at > $5) \
                 ORDER BY m.created_on, m.id LIMIT $4"
            };
        }
        let claim_sql = match self.backend() {
            // Concurrent claimers skip each other's rows instead of waiting on them.
            Backend::Postgres => concat!(
                "UPDATE sms_message SET claim_token = $1, claimed_until = $2 WHERE id IN (",
                claimable!(),
                " FOR UPDATE SKIP LOCKED)"
            ),
            // One statement under SQLite's single writer: nobody else claims in between.
            Backend::Sqlite => {
                concat!(
                    "UPDATE sms_message SET claim_token = $1, claimed_until = $2 WHERE id IN (",
                    claimable!(),
                    ")"
                )
            }
        };
        type Row = (String, String, String, String, i32, i32);
        let (rows, parts, references): (Vec<Row>, Vec<(String, i32, String)>, Vec<(String, i32, i32)>) = with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            let n = sqlx::query(claim_sql)
                .bind(token.to_string())
                .bind(now.saturating_add(lease_ms))
                .bind(now)
                .bind(limit)
                .bind(settled)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                tx.commit().await?;
                (Vec::new(), Vec::new(), Vec::new())
            } else {
                let rows: Vec<Row> = sqlx::query_as(
                    "SELECT id, from_addr, to_addr, body, attempts, parts FROM sms_message \
                     WHERE claim_token = $1 ORDER BY created_on, id",
                )
                .bind(token.to_string())
                .fetch_all(&mut *tx)
                .await?;
                let parts: Vec<(String, i32, String)> = sqlx::query_as(
                    "SELECT sms_part.message_id, sms_part.part, sms_part.carrier_id FROM sms_part \
                     JOIN sms_message ON sms_message.id = sms_part.message_id WHERE sms_message.claim_token = $1",
                )
                .bind(token.to_string())
                .fetch_all(&mut *tx)
                .await?;
                // Parts still in doubt had their grace without evidence: they go out again under
                // new references (an old reference echoed late no longer matches them).
                sqlx::query(
                    "DELETE FROM sms_submitting WHERE message_id IN (SELECT id FROM sms_message WHERE claim_token = $1)",
                )
                .bind(token.to_string())
                .execute(&mut *tx)
                .await?;
                let done: std::collections::HashSet<(&str, i32)> =
                    parts.iter().map(|(id, part, _)| (id.as_str(), *part)).collect();
                let todo: Vec<(String, i32)> = rows
                    .iter()
                    .flat_map(|r| (0..r.5).map(move |part| (r.0.clone(), part)))
                    .filter(|(id, part)| !done.contains(&(id.as_str(), *part)))
                    .collect();
                // References for every part at once (one counter write, one insert a chunk);
                // a reference still in doubt (the counter came round) is skipped one by one.
                let n = i32::try_from(todo.len()).unwrap_or(i32::MAX);
                let mut references = Vec::with_capacity(todo.len());
                let mut next: i32 = if n == 0 {
                    0
                } else {
                    let end: i32 = sqlx::query_scalar(
                        "UPDATE sms_reference SET next_ref = (next_ref + $1) % 65536 WHERE id = 1 RETURNING next_ref",
                    )
                    .bind(n % (MAX_REFERENCE + 1))
                    .fetch_one(&mut *tx)
                    .await?;
                    (end - n % (MAX_REFERENCE + 1) + MAX_REFERENCE + 1) % (MAX_REFERENCE + 1)
                };
                let mut clashed = Vec::new();
                for chunk in todo.chunks(REFERENCE_CHUNK) {
                    let mut values = Vec::with_capacity(chunk.len());
                    let mut wanted = Vec::with_capacity(chunk.len());
                    for (id, part) in chunk {
                        values.push(format!("('{}', {part}, {next}, {now})", id.replace('\'', "''")));
                        wanted.push((id.clone(), *part, next));
                        next = (next + 1) % (MAX_REFERENCE + 1);
                    }
                    let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO sms_submitting (message_id, part, user_ref, at) VALUES {} ON CONFLICT DO NOTHING",
                        values.join(", ")
                    )))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if usize::try_from(inserted).ok() == Some(wanted.len()) {
                        references.extend(wanted);
                        continue;
                    }
                    let list = wanted.iter().map(|(_, _, r)| r.to_string()).collect::<Vec<_>>().join(", ");
                    let placed: Vec<(String, i32, i32)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT message_id, part, user_ref FROM sms_submitting WHERE user_ref IN ({list}) AND at = {now}"
                    )))
                    .fetch_all(&mut *tx)
                    .await?;
                    for w in wanted {
                        if placed.contains(&w) {
                            references.push(w);
                        } else {
                            clashed.push((w.0, w.1));
                        }
                    }
                }
                for (id, part) in clashed {
                    let mut placed = false;
                    for _ in 0..=MAX_REFERENCE {
                        let candidate = next;
                        next = (next + 1) % (MAX_REFERENCE + 1);
                        let inserted = sqlx::query(
                            "INSERT INTO sms_submitting (message_id, part, user_ref, at) VALUES ($1, $2, $3, $4) \
                             ON CONFLICT DO NOTHING",
                        )
                        .bind(&id)
                        .bind(part)
                        .bind(candidate)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        if inserted > 0 {
                            references.push((id.clone(), part, candidate));
                            placed = true;
                            break;
                        }
                    }
                    if !placed {
                        return Err(StoreError::Invalid {
                            field: "user_message_reference",
                            reason: "every SMPP user_message_reference is in doubt",
                        });
                    }
                    sqlx::query("UPDATE sms_reference SET next_ref = $1 WHERE id = 1")
                        .bind(next)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                (rows, parts, references)
            }
        });
        let mut accepted: HashMap<String, BTreeMap<usize, String>> = HashMap::new();
        for (id, part, carrier_id) in parts {
            accepted.entry(id).or_default().insert(usize::try_from(part).unwrap_or(0), carrier_id);
        }
        let mut refs: HashMap<String, BTreeMap<usize, u16>> = HashMap::new();
        for (id, part, reference) in references {
            refs.entry(id)
                .or_default()
                .insert(usize::try_from(part).unwrap_or(0), u16::try_from(reference).unwrap_or(0));
        }
        rows.into_iter()
            .map(|(id, from, to, text, attempts, _)| {
                Ok(ClaimedSms {
                    uuid: uuid(K, "id", &id)?,
                    accepted: accepted.remove(&id).unwrap_or_default(),
                    references: refs.remove(&id).unwrap_or_default(),
                    token,
                    from,
                    to,
                    text,
                    attempts: u32::try_from(attempts).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn renew_sms_claims(&self, tokens: &[Uuid], lease_ms: i64) -> Result<u64> {
        if tokens.is_empty() {
            return Ok(0);
        }
        let _turn = self.sms_write_turn().await;
        let until = ms(now()).saturating_add(lease_ms);
        let sql = format!(
            "UPDATE sms_message SET claimed_until = $1 WHERE state = 'queued' AND claim_token IN ({})",
            id_list(tokens.iter().copied())
        );
        Ok(
            with_pool!(self, p => sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(until).execute(p).await?.rows_affected()),
        )
    }

    async fn write_sms_batch(
        &self,
        writes: &[(SmsWrite, Timestamp)],
    ) -> Result<Vec<Result<Option<SmsMoved>>>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let turn = self.sms_write_turn().await;
        // Per write: the message it moved and the steps it made, or the unknown message's id.
        let outcomes: Vec<std::result::Result<Option<(String, usize)>, Uuid>> = with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            let mut outcomes = Vec::with_capacity(writes.len());
            let mut rest = writes;
            while !rest.is_empty() {
                // Runs of attempts or receipts go together (the common case under load: a
                // window of submits answered, then their receipts); anything else alone.
                let (sent, receipts) = (sent_run(rest), receipt_run(rest));
                if sent > 1 {
                    let run: Vec<(Uuid, String, &BTreeMap<usize, String>, i64)> = rest[..sent]
                        .iter()
                        .filter_map(|(write, at)| match write {
                            SmsWrite::Attempt { id, accepted, .. } => Some((*id, id.to_string(), accepted, ms(*at))),
                            SmsWrite::Receipt { .. } => None,
                        })
                        .collect();
                    let borrowed: Vec<(&str, &BTreeMap<usize, String>, i64)> =
                        run.iter().map(|(_, key, accepted, at)| (key.as_str(), *accepted, *at)).collect();
                    let recorded = record_sent_run!(tx, &borrowed);
                    for ((id, key, _, _), steps) in run.iter().zip(recorded) {
                        outcomes.push(match steps {
                            None => Err(*id),
                            Some(0) => Ok(None),
                            Some(steps) => Ok(Some((key.clone(), steps))),
                        });
                    }
                    rest = &rest[sent..];
                    continue;
                }
                if receipts > 1 {
                    let run: Vec<(&SmsReceipt, Option<(u16, &str)>, i64)> = rest[..receipts]
                        .iter()
                        .filter_map(|(write, at)| match write {
                            SmsWrite::Receipt { receipt, echo } => Some((
                                receipt,
                                echo.as_ref().map(|(reference, handset)| (*reference, handset.as_str())),
                                ms(*at),
                            )),
                            SmsWrite::Attempt { .. } => None,
                        })
                        .collect();
                    outcomes.extend(record_receipt_run!(tx, &run).into_iter().map(Ok));
                    rest = &rest[receipts..];
                    continue;
                }
                let (write, at) = &rest[0];
                rest = &rest[1..];
                let at = ms(*at);
                outcomes.push(match write {
                    SmsWrite::Attempt { id, accepted, attempt } => {
                        let key = id.to_string();
                        match record_attempt!(tx, key.as_str(), accepted, attempt, at) {
                            None => Err(*id),
                            Some(0) => Ok(None),
                            Some(steps) => Ok(Some((key, steps))),
                        }
                    }
                    SmsWrite::Receipt { receipt, echo } => {
                        let echo = echo.as_ref().map(|(reference, handset)| (*reference, handset.as_str()));
                        Ok(record_receipt!(tx, receipt, echo, at))
                    }
                });
            }
            tx.commit().await?;
            outcomes
        });
        drop(turn);
        let mut ids: Vec<&str> =
            outcomes.iter().filter_map(|o| o.as_ref().ok()?.as_ref().map(|(id, _)| id.as_str())).collect();
        ids.sort_unstable();
        ids.dedup();
        let loaded = self.load_many(&ids).await?;
        // A message two writes of the batch moved is shown to each as that write left it: its
        // history cut after the write's last step (walking back from the last write).
        let mut ends: HashMap<&str, usize> = HashMap::new();
        let mut answers: Vec<Result<Option<SmsMoved>>> = Vec::with_capacity(outcomes.len());
        for outcome in outcomes.iter().rev() {
            answers.push(match outcome {
                Err(id) => Err(StoreError::not_found(K, *id)),
                Ok(None) => Ok(None),
                Ok(Some((id, steps))) => Ok(loaded.get(id.as_str()).map(|message| {
                    let end = ends.get(id.as_str()).copied().unwrap_or(message.history.len());
                    ends.insert(id.as_str(), end.saturating_sub(*steps));
                    let mut message = message.clone();
                    message.history.truncate(end);
                    if let Some(last) = message.history.last() {
                        message.state = last.state;
                    }
                    SmsMoved { message, steps: *steps }
                })),
            });
        }
        answers.reverse();
        Ok(answers)
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
        let turn = self.sms_write_turn().await;
        let moved = with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
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
        drop(turn);
        if moved { self.load_sms(&key).await } else { Ok(None) }
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
