//! Balances and the ledger.
//!
//! A balance changes only together with its ledger row, in one transaction: the `UPDATE` of
//! the account takes its row lock (PostgreSQL) or the database's write lock (SQLite), so two
//! charges of one account never read the same balance.

use crate::sql::BeginWrite;
use async_trait::async_trait;
use uuid::Uuid;

use super::{Store, ms, opt_str, opt_uuid, ordered, uuid, with_pool};
use crate::error::{ObjectKind, Result, StoreError};
use crate::id::new_id;
use crate::model::*;
use crate::repo::{BillingRepo, List, ListParams};

#[derive(sqlx::FromRow)]
struct TransactionRow {
    id: String,
    account_id: String,
    kind: String,
    amount_micros: i64,
    balance_after_micros: i64,
    reference_id: Option<String>,
    profile_id: Option<String>,
    description: String,
    created_on: i64,
}

impl TransactionRow {
    fn into_model(self) -> Result<Transaction> {
        const K: ObjectKind = ObjectKind::Account;
        Ok(Transaction {
            uuid: uuid(K, "id", &self.id)?,
            account: uuid(K, "account_id", &self.account_id)?,
            kind: TransactionKind::parse(&self.kind).ok_or(StoreError::Corrupt {
                kind: K,
                column: "kind",
                value: self.kind.clone(),
            })?,
            amount_micros: self.amount_micros,
            balance_after_micros: self.balance_after_micros,
            reference: opt_uuid(K, "reference_id", self.reference_id.as_deref())?,
            outbound_voice_profile: opt_uuid(K, "profile_id", self.profile_id.as_deref())?,
            description: self.description,
            created_on: from_millis(self.created_on),
        })
    }
}

macro_rules! transaction_cols {
    () => {
        "id, account_id, kind, amount_micros, balance_after_micros, reference_id, profile_id, description, \
         created_on"
    };
}

impl ChargeTarget {
    fn kind(&self) -> TransactionKind {
        match self {
            ChargeTarget::Call { .. } | ChargeTarget::Leg { .. } => TransactionKind::Call,
            ChargeTarget::Sms { .. } => TransactionKind::Sms,
        }
    }

    fn reference(&self) -> Uuid {
        match self {
            ChargeTarget::Call { call, .. } => *call,
            ChargeTarget::Sms { message } => *message,
            ChargeTarget::Leg { leg, .. } => *leg,
        }
    }
}

/// Moves `account`'s balance by `amount` and writes the ledger row, inside `$tx`; the row.
macro_rules! book {
    ($tx:expr, $account:expr, $kind:expr, $amount:expr, $reference:expr, $profile:expr, $description:expr) => {{
        let moved = sqlx::query(
            "UPDATE account SET balance_micros = balance_micros + $2 WHERE id = $1 AND deleted_on IS NULL",
        )
        .bind($account.to_string())
        .bind($amount)
        .execute(&mut *$tx)
        .await?
        .rows_affected();
        if moved == 0 {
            return Err(StoreError::not_found(ObjectKind::Account, $account));
        }
        let balance_after: i64 = sqlx::query_scalar("SELECT balance_micros FROM account WHERE id = $1")
            .bind($account.to_string())
            .fetch_one(&mut *$tx)
            .await?;
        let row = Transaction {
            uuid: new_id(),
            account: $account,
            kind: $kind,
            amount_micros: $amount,
            balance_after_micros: balance_after,
            reference: $reference,
            outbound_voice_profile: $profile,
            description: $description.to_owned(),
            created_on: now(),
        };
        sqlx::query(concat!(
            "INSERT INTO account_transaction (",
            transaction_cols!(),
            ") \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(row.uuid.to_string())
        .bind($account.to_string())
        .bind(row.kind.as_str())
        .bind(row.amount_micros)
        .bind(row.balance_after_micros)
        .bind(opt_str(row.reference))
        .bind(opt_str(row.outbound_voice_profile))
        .bind(&row.description)
        .bind(ms(row.created_on))
        .execute(&mut *$tx)
        .await?;
        row
    }};
}

#[async_trait]
impl BillingRepo for Store {
    async fn balance(&self, account: Uuid) -> Result<i64> {
        let balance: Option<i64> = with_pool!(self, p => sqlx::query_scalar(
            "SELECT balance_micros FROM account WHERE id = $1 AND deleted_on IS NULL",
        )
        .bind(account.to_string())
        .fetch_optional(p)
        .await?);
        balance.ok_or(StoreError::not_found(ObjectKind::Account, account))
    }

    async fn credit(&self, account: Uuid, amount_micros: i64, description: &str) -> Result<Transaction> {
        Ok(with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            let row = book!(tx, account, TransactionKind::Credit, amount_micros, None, None, description);
            sqlx::query("INSERT INTO credit_announcement (transaction_id, created_on) VALUES ($1, $2)")
                .bind(row.uuid.to_string())
                .bind(ms(row.created_on))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            row
        }))
    }

    async fn take_credits_to_announce(&self, limit: u32) -> Result<Vec<Transaction>> {
        // One statement takes the rows: two nodes never both get one.
        let taken: Vec<String> = with_pool!(self, p => sqlx::query_scalar(
            "DELETE FROM credit_announcement WHERE transaction_id IN \
             (SELECT transaction_id FROM credit_announcement ORDER BY created_on LIMIT $1) \
             RETURNING transaction_id",
        )
        .bind(i64::from(limit))
        .fetch_all(p)
        .await?);
        let mut credits = Vec::with_capacity(taken.len());
        for id in taken {
            let row: Option<TransactionRow> = with_pool!(self, p => sqlx::query_as(concat!(
                "SELECT ",
                transaction_cols!(),
                " FROM account_transaction WHERE id = $1"
            ))
            .bind(&id)
            .fetch_optional(p)
            .await?);
            credits.extend(row.map(TransactionRow::into_model).transpose()?);
        }
        credits.sort_by_key(|credit| (credit.created_on, credit.uuid));
        Ok(credits)
    }

    async fn charge(&self, account: Uuid, charge: NewCharge) -> Result<Transaction> {
        if charge.amount_micros < 0 {
            return Err(StoreError::Invalid { field: "amount", reason: "a charge is not negative" });
        }
        let kind = charge.target.kind();
        let reference = charge.target.reference();
        Ok(with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            // The call's or message's row is priced first: it must be the account's.
            let priced = match &charge.target {
                ChargeTarget::Call { call, price, .. } => sqlx::query(
                    "UPDATE call_record SET price_micros = $3, billed_secs = $4, rate_prefix = $5, \
                     rate_per_minute_micros = $6 WHERE account_id = $1 AND id = $2",
                )
                .bind(account.to_string())
                .bind(call.to_string())
                .bind(price.price_micros)
                .bind(price.billed_secs)
                .bind(&price.rate_prefix)
                .bind(price.rate_per_minute_micros)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
                ChargeTarget::Sms { message } => sqlx::query(
                    "UPDATE sms_message SET price_micros = $3 WHERE account_id = $1 AND id = $2",
                )
                .bind(account.to_string())
                .bind(message.to_string())
                .bind(charge.amount_micros)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
                // The leg's call must be the account's. Checked with a write that changes
                // nothing, not a read: a SQLite transaction that reads first cannot take the
                // write lock once another connection has written since (SQLITE_BUSY_SNAPSHOT,
                // which no busy timeout waits out) — and the call log writes as the leg ends.
                ChargeTarget::Leg { call, .. } => {
                    sqlx::query("UPDATE call_record SET id = id WHERE account_id = $1 AND id = $2")
                        .bind(account.to_string())
                        .bind(call.to_string())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                }
            };
            if priced == 0 {
                let (object, id) = match &charge.target {
                    ChargeTarget::Sms { message } => (ObjectKind::Message, *message),
                    ChargeTarget::Call { call, .. } | ChargeTarget::Leg { call, .. } => (ObjectKind::Call, *call),
                };
                return Err(StoreError::not_found(object, id));
            }
            let already: Option<TransactionRow> = sqlx::query_as(concat!(
                "SELECT ", transaction_cols!(), " FROM account_transaction WHERE kind = $1 AND reference_id = $2"
            ))
            .bind(kind.as_str())
            .bind(reference.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            let row = match already {
                Some(row) => row.into_model()?,
                None => {
                    let profile = match &charge.target {
                        ChargeTarget::Call { outbound_voice_profile, .. }
                        | ChargeTarget::Leg { outbound_voice_profile, .. } => *outbound_voice_profile,
                        ChargeTarget::Sms { .. } => None,
                    };
                    book!(tx, account, kind, -charge.amount_micros, Some(reference), profile, charge.description)
                }
            };
            tx.commit().await?;
            row
        }))
    }

    async fn charge_lease(&self, account: Uuid, charge: NewLeaseCharge) -> Result<LeaseChargeOutcome> {
        if charge.amount_micros < 0 {
            return Err(StoreError::Invalid { field: "amount", reason: "a charge is not negative" });
        }
        Ok(with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            // The lease as read, or nothing: a renewal by another node, or a release, wins.
            let moved = sqlx::query(
                "UPDATE tn_lease SET paid_until = $3, renewal_retry_on = NULL WHERE account_id = $1 AND id = $2 \
                 AND released_on IS NULL AND paid_until IS NOT DISTINCT FROM $4",
            )
            .bind(account.to_string())
            .bind(charge.lease.to_string())
            .bind(ms(charge.paid_until))
            .bind(charge.expected_paid_until.map(ms))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if moved == 0 {
                return Ok(LeaseChargeOutcome::Stale);
            }
            // Locks the account's row (PostgreSQL re-checks the condition on the row it
            // locks), so two charges cannot both spend the same money.
            let paid = sqlx::query(
                "UPDATE account SET balance_micros = balance_micros WHERE id = $1 AND balance_micros >= $2",
            )
            .bind(account.to_string())
            .bind(charge.amount_micros)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if paid == 0 {
                let balance: Option<i64> = sqlx::query_scalar("SELECT balance_micros FROM account WHERE id = $1")
                    .bind(account.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
                tx.rollback().await?;
                return Ok(LeaseChargeOutcome::Unpaid { balance_micros: balance.unwrap_or(0) });
            }
            let row = book!(
                tx,
                account,
                TransactionKind::Number,
                -charge.amount_micros,
                Some(charge.lease),
                None,
                charge.description
            );
            tx.commit().await?;
            LeaseChargeOutcome::Charged(row)
        }))
    }

    async fn spent_since(&self, account: Uuid, profile: Uuid, since: Timestamp) -> Result<i64> {
        let spent: Option<i64> = with_pool!(self, p => sqlx::query_scalar(
            "SELECT CAST(-SUM(amount_micros) AS BIGINT) FROM account_transaction \
             WHERE account_id = $1 AND profile_id = $2 AND created_on >= $3 AND kind = 'call'",
        )
        .bind(account.to_string())
        .bind(profile.to_string())
        .bind(ms(since))
        .fetch_one(p)
        .await?);
        Ok(spent.unwrap_or(0).max(0))
    }

    async fn search_transactions(
        &self,
        account: Uuid,
        filter: TransactionFilter,
        params: ListParams,
    ) -> Result<List<Transaction>> {
        // Absent filters bind NULL and match everything, so one static text serves every filter.
        macro_rules! filter {
            () => {
                " FROM account_transaction WHERE account_id = $1 AND ($2 IS NULL OR kind = $2) \
                 AND ($3 IS NULL OR reference_id = $3) AND ($4 IS NULL OR created_on >= $4) \
                 AND ($5 IS NULL OR created_on < $5)"
            };
        }
        let kind = filter.kind.map(TransactionKind::as_str);
        let reference = opt_str(filter.reference);
        let (since, until) = (filter.since.map(ms), filter.until.map(ms));
        let (total, rows): (i64, Vec<TransactionRow>) = with_pool!(self, p => {
            let total = sqlx::query_scalar(concat!("SELECT COUNT(*)", filter!()))
                .bind(account.to_string())
                .bind(kind)
                .bind(reference.as_deref())
                .bind(since)
                .bind(until)
                .fetch_one(p)
                .await?;
            let rows = sqlx::query_as(ordered!(
                params.order,
                concat!("SELECT ", transaction_cols!(), filter!(), " ORDER BY created_on"),
                " LIMIT $6 OFFSET $7"
            ))
            .bind(account.to_string())
            .bind(kind)
            .bind(reference.as_deref())
            .bind(since)
            .bind(until)
            .bind(params.limit())
            .bind(params.offset())
            .fetch_all(p)
            .await?;
            (total, rows)
        });
        let data = rows.into_iter().map(TransactionRow::into_model).collect::<Result<_>>()?;
        Ok(List { take: params.take, skip: params.skip, total, data })
    }
}
