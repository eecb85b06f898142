//! Verified caller IDs.

use async_trait::async_trait;
use uuid::Uuid;

use super::{Store, ms, ordered, uuid, with_pool};
use crate::error::{ObjectKind, Result, StoreError, conflict_on};
use crate::id::new_id;
use crate::model::*;
use crate::repo::{List, ListParams, VerifiedNumberRepo};

#[derive(sqlx::FromRow)]
struct VerifiedRow {
    id: String,
    account_id: String,
    tn: i64,
    code_hash: String,
    attempts: i32,
    expired_on: i64,
    verified_on: Option<i64>,
    created_on: i64,
}

impl VerifiedRow {
    fn into_model(self) -> Result<VerifiedNumber> {
        const K: ObjectKind = ObjectKind::VerifiedNumber;
        Ok(VerifiedNumber {
            uuid: uuid(K, "id", &self.id)?,
            account: uuid(K, "account_id", &self.account_id)?,
            tn: self.tn,
            state: if self.verified_on.is_some() { "verified" } else { "pending" },
            attempts: u32::try_from(self.attempts).unwrap_or_default(),
            expired_on: from_millis(self.expired_on),
            verified_on: self.verified_on.map(from_millis),
            created_on: from_millis(self.created_on),
            code_hash: self.code_hash,
        })
    }
}

macro_rules! verified_cols {
    () => {
        "id, account_id, tn, code_hash, attempts, expired_on, verified_on, created_on"
    };
}

#[async_trait]
impl VerifiedNumberRepo for Store {
    async fn create_verified_number(
        &self,
        account: Uuid,
        tn: Tn,
        code_hash: String,
        expired_on: Timestamp,
    ) -> Result<VerifiedNumber> {
        let now = now();
        let number = VerifiedNumber {
            uuid: new_id(),
            account,
            tn,
            state: "pending",
            attempts: 0,
            expired_on,
            verified_on: None,
            created_on: now,
            code_hash,
        };
        with_pool!(self, p => sqlx::query(
            "INSERT INTO verified_number (id, account_id, tn, code_hash, attempts, expired_on, created_on, \
             modified_on) VALUES ($1, $2, $3, $4, 0, $5, $6, $6)",
        )
        .bind(number.uuid.to_string())
        .bind(account.to_string())
        .bind(tn)
        .bind(&number.code_hash)
        .bind(ms(expired_on))
        .bind(ms(now))
        .execute(p)
        .await
        .map(|_| ())
        .map_err(|e| conflict_on(e, ObjectKind::VerifiedNumber, "tn", tn))?);
        Ok(number)
    }

    async fn get_verified_number(&self, account: Uuid, number: Uuid) -> Result<Option<VerifiedNumber>> {
        let row: Option<VerifiedRow> = with_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", verified_cols!(), " FROM verified_number WHERE account_id = $1 AND id = $2"
        ))
        .bind(account.to_string())
        .bind(number.to_string())
        .fetch_optional(p)
        .await?);
        row.map(VerifiedRow::into_model).transpose()
    }

    async fn list_verified_numbers(&self, account: Uuid, params: ListParams) -> Result<List<VerifiedNumber>> {
        let (total, rows): (i64, Vec<VerifiedRow>) = with_pool!(self, p => {
            let total = sqlx::query_scalar("SELECT COUNT(*) FROM verified_number WHERE account_id = $1")
                .bind(account.to_string())
                .fetch_one(p)
                .await?;
            let rows = sqlx::query_as(ordered!(
                params.order,
                concat!("SELECT ", verified_cols!(), " FROM verified_number WHERE account_id = $1 ORDER BY created_on"),
                " LIMIT $2 OFFSET $3"
            ))
            .bind(account.to_string())
            .bind(params.limit())
            .bind(params.offset())
            .fetch_all(p)
            .await?;
            (total, rows)
        });
        let data = rows.into_iter().map(VerifiedRow::into_model).collect::<Result<_>>()?;
        Ok(List { take: params.take, skip: params.skip, total, data })
    }

    async fn delete_verified_number(&self, account: Uuid, number: Uuid) -> Result<()> {
        let done = with_pool!(self, p => sqlx::query("DELETE FROM verified_number WHERE account_id = $1 AND id = $2")
            .bind(account.to_string())
            .bind(number.to_string())
            .execute(p)
            .await?
            .rows_affected());
        if done == 0 { Err(StoreError::not_found(ObjectKind::VerifiedNumber, number)) } else { Ok(()) }
    }

    async fn count_verification_attempt(&self, account: Uuid, number: Uuid) -> Result<()> {
        let done = with_pool!(self, p => sqlx::query(
            "UPDATE verified_number SET attempts = attempts + 1, modified_on = $3 \
             WHERE account_id = $1 AND id = $2 AND verified_on IS NULL",
        )
        .bind(account.to_string())
        .bind(number.to_string())
        .bind(ms(now()))
        .execute(p)
        .await?
        .rows_affected());
        if done == 0 { Err(StoreError::not_found(ObjectKind::VerifiedNumber, number)) } else { Ok(()) }
    }

    async fn mark_number_verified(&self, account: Uuid, number: Uuid) -> Result<VerifiedNumber> {
        let now = ms(now());
        with_pool!(self, p => sqlx::query(
            "UPDATE verified_number SET verified_on = $3, modified_on = $3 \
             WHERE account_id = $1 AND id = $2 AND verified_on IS NULL",
        )
        .bind(account.to_string())
        .bind(number.to_string())
        .bind(now)
        .execute(p)
        .await
        .map(|_| ())?);
        self.get_verified_number(account, number)
            .await?
            .ok_or_else(|| StoreError::not_found(ObjectKind::VerifiedNumber, number))
    }

    async fn is_verified_number(&self, account: Uuid, tn: Tn) -> Result<bool> {
        let count: i64 = with_pool!(self, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM verified_number WHERE account_id = $1 AND tn = $2 AND verified_on IS NOT NULL",
        )
        .bind(account.to_string())
        .bind(tn)
        .fetch_one(p)
        .await?);
        Ok(count > 0)
    }
}
