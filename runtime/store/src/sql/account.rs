//! Accounts and API tokens.

use crate::sql::BeginWrite;
use async_trait::async_trait;
use chrono::Duration;
use uuid::Uuid;

use super::{Store, ms, ordered, patch, uuid, with_pool};
use crate::error::{ObjectKind, Result, StoreError, conflict_on};
use crate::id::new_id;
use crate::model::*;
use crate::repo::{AccountRepo, List, ListParams, TokenRepo};
use crate::secret;

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: String,
    name: String,
    email: String,
    password_hash: String,
    time_zone: String,
    created_on: i64,
    modified_on: i64,
    deleted_on: Option<i64>,
    company: Option<String>,
    contact_phone: Option<String>,
    address: Option<String>,
}

impl AccountRow {
    fn into_model(self) -> Result<Account> {
        Ok(Account {
            uuid: uuid(ObjectKind::Account, "id", &self.id)?,
            name: self.name,
            email: self.email,
            password_hash: self.password_hash,
            time_zone: self.time_zone,
            contact: AccountContact {
                company: self.company,
                phone: self.contact_phone,
                address: self.address,
            },
            created_on: from_millis(self.created_on),
            modified_on: from_millis(self.modified_on),
            deleted_on: self.deleted_on.map(from_millis),
        })
    }
}

macro_rules! account_cols {
    () => {
        "id, name, email, password_hash, time_zone, created_on, modified_on, deleted_on, company, contact_phone, \
         address"
    };
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    account_id: String,
    name: String,
    token_hash: String,
    expires_on: Option<i64>,
    created_on: i64,
    modified_on: i64,
}

impl TokenRow {
    fn into_model(self) -> Result<ApiToken> {
        Ok(ApiToken {
            uuid: uuid(ObjectKind::ApiToken, "id", &self.id)?,
            account: uuid(ObjectKind::ApiToken, "account_id", &self.account_id)?,
            name: self.name,
            token_hash: self.token_hash,
            expires_on: self.expires_on.map(from_millis),
            created_on: from_millis(self.created_on),
            modified_on: from_millis(self.modified_on),
        })
    }
}

macro_rules! token_cols {
    () => {
        "id, account_id, name, token_hash, expires_on, created_on, modified_on"
    };
}

fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

#[async_trait]
impl AccountRepo for Store {
    async fn create_account(&self, new: NewAccount) -> Result<Account> {
        let now = now();
        let account = Account {
            uuid: new_id(),
            name: new.name,
            email: normalize_email(&new.email),
            password_hash: secret::hash_password(&new.password).await?,
            time_zone: new.time_zone,
            contact: AccountContact::default(),
            created_on: now,
            modified_on: now,
            deleted_on: None,
        };
        with_pool!(self, p => sqlx::query(
            "INSERT INTO account (id, name, email, password_hash, time_zone, created_on, modified_on) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(account.uuid.to_string())
        .bind(&account.name)
        .bind(&account.email)
        .bind(&account.password_hash)
        .bind(&account.time_zone)
        .bind(ms(now))
        .bind(ms(now))
        .execute(p)
        .await
        .map(|_| ()))
        .map_err(|e| conflict_on(e, ObjectKind::Account, "email", &account.email))?;
        Ok(account)
    }

    async fn get_account(&self, account: Uuid) -> Result<Option<Account>> {
        let row: Option<AccountRow> = with_pool!(self, p => sqlx::query_as(
            concat!("SELECT ", account_cols!(), " FROM account WHERE id = $1 AND deleted_on IS NULL"),
        )
        .bind(account.to_string())
        .fetch_optional(p)
        .await?);
        row.map(AccountRow::into_model).transpose()
    }

    async fn update_account(&self, account: Uuid, p: AccountPatch) -> Result<Account> {
        let mut a =
            self.get_account(account).await?.ok_or(StoreError::not_found(ObjectKind::Account, account))?;
        patch(&mut a.name, p.name);
        patch(&mut a.email, p.email.map(|e| normalize_email(&e)));
        patch(&mut a.time_zone, p.time_zone);
        patch(&mut a.contact.company, p.company);
        patch(&mut a.contact.phone, p.phone);
        patch(&mut a.contact.address, p.address);
        a.modified_on = now();
        with_pool!(self, pool => sqlx::query(
            "UPDATE account SET name = $2, email = $3, time_zone = $4, modified_on = $5, company = $6, \
             contact_phone = $7, address = $8 WHERE id = $1 AND deleted_on IS NULL",
        )
        .bind(account.to_string())
        .bind(&a.name)
        .bind(&a.email)
        .bind(&a.time_zone)
        .bind(ms(a.modified_on))
        .bind(&a.contact.company)
        .bind(&a.contact.phone)
        .bind(&a.contact.address)
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(|e| conflict_on(e, ObjectKind::Account, "email", &a.email))?;
        Ok(a)
    }

    async fn set_password(&self, account: Uuid, password: &str) -> Result<()> {
        let hash = secret::hash_password(password).await?;
        let done = with_pool!(self, p => sqlx::query(
            "UPDATE account SET password_hash = $2, modified_on = $3 WHERE id = $1 AND deleted_on IS NULL",
        )
        .bind(account.to_string())
        .bind(hash)
        .bind(ms(now()))
        .execute(p)
        .await?
        .rows_affected());
        if done == 0 { Err(StoreError::not_found(ObjectKind::Account, account)) } else { Ok(()) }
    }

    async fn delete_account(&self, account: Uuid) -> Result<()> {
        let done = with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            let done = sqlx::query("UPDATE account SET deleted_on = $2 WHERE id = $1 AND deleted_on IS NULL")
                .bind(account.to_string())
                .bind(ms(now()))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM api_token WHERE account_id = $1")
                .bind(account.to_string())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            done
        });
        if done == 0 { Err(StoreError::not_found(ObjectKind::Account, account)) } else { Ok(()) }
    }

    async fn account_by_email(&self, email: &str) -> Result<Option<Account>> {
        let row: Option<AccountRow> = with_pool!(self, p => sqlx::query_as(
            concat!("SELECT ", account_cols!(), " FROM account WHERE email = $1 AND deleted_on IS NULL"),
        )
        .bind(normalize_email(email))
        .fetch_optional(p)
        .await?);
        row.map(AccountRow::into_model).transpose()
    }

    async fn verify_password(&self, email: &str, password: &str) -> Result<Option<Account>> {
        let Some(account) = self.account_by_email(email).await? else {
            // Hash anyway so that "no such email" takes as long as "wrong password".
            let _ = secret::hash_password(password).await?;
            return Ok(None);
        };
        let ok = secret::verify_password(password, &account.password_hash).await?;
        Ok(ok.then_some(account))
    }
}

#[async_trait]
impl TokenRepo for Store {
    async fn create_token(&self, account: Uuid, new: NewApiToken) -> Result<CreatedToken> {
        if new.ttl_secs.is_some_and(|t| t <= 0) {
            return Err(StoreError::Invalid { field: "ttl", reason: "must be a positive number of seconds" });
        }
        self.get_account(account).await?.ok_or(StoreError::not_found(ObjectKind::Account, account))?;
        let plain = secret::new_token()?;
        let now = now();
        let token = ApiToken {
            uuid: new_id(),
            account,
            name: new.name,
            token_hash: secret::sha256_hex(plain.as_bytes()),
            expires_on: new.ttl_secs.map(|t| now + Duration::seconds(t)),
            created_on: now,
            modified_on: now,
        };
        with_pool!(self, p => sqlx::query(
            "INSERT INTO api_token (id, account_id, name, token_hash, expires_on, created_on, modified_on) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token.uuid.to_string())
        .bind(account.to_string())
        .bind(&token.name)
        .bind(&token.token_hash)
        .bind(token.expires_on.map(ms))
        .bind(ms(now))
        .bind(ms(now))
        .execute(p)
        .await
        .map(|_| ())?);
        Ok(CreatedToken { token, plain })
    }

    async fn list_tokens(&self, account: Uuid, params: ListParams) -> Result<List<ApiToken>> {
        let (total, rows): (i64, Vec<TokenRow>) = with_pool!(self, p => {
            let total = sqlx::query_scalar("SELECT COUNT(*) FROM api_token WHERE account_id = $1")
                .bind(account.to_string())
                .fetch_one(p)
                .await?;
            let rows = sqlx::query_as(ordered!(
                params.order,
                concat!("SELECT ", token_cols!(), " FROM api_token WHERE account_id = $1 ORDER BY created_on"),
                " LIMIT $2 OFFSET $3"
            ))
            .bind(account.to_string())
            .bind(params.limit())
            .bind(params.offset())
            .fetch_all(p)
            .await?;
            (total, rows)
        });
        let data = rows.into_iter().map(TokenRow::into_model).collect::<Result<_>>()?;
        Ok(List { take: params.take, skip: params.skip, total, data })
    }

    async fn delete_token(&self, account: Uuid, token: Uuid) -> Result<()> {
        let done = with_pool!(self, p => sqlx::query("DELETE FROM api_token WHERE account_id = $1 AND id = $2")
            .bind(account.to_string())
            .bind(token.to_string())
            .execute(p)
            .await?
            .rows_affected());
        if done == 0 { Err(StoreError::not_found(ObjectKind::ApiToken, token)) } else { Ok(()) }
    }

    async fn delete_all_tokens(&self, account: Uuid) -> Result<u64> {
        Ok(with_pool!(self, p => sqlx::query("DELETE FROM api_token WHERE account_id = $1")
            .bind(account.to_string())
            .execute(p)
            .await?
            .rows_affected()))
    }

    async fn token_by_hash(&self, sha256_hex: &str) -> Result<Option<ApiToken>> {
        let row: Option<TokenRow> = with_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", token_cols!(), " FROM api_token \
             WHERE token_hash = $1 AND (expires_on IS NULL OR expires_on > $2)"
        ))
        .bind(sha256_hex)
        .bind(ms(now()))
        .fetch_optional(p)
        .await?);
        row.map(TokenRow::into_model).transpose()
    }
}
