//! One-time invites to set a SIP connection's credentials.

use crate::sql::BeginWrite;
use async_trait::async_trait;
use uuid::Uuid;

use super::{Ref, Store, ms, ordered, uuid, with_pool};
use crate::error::{ObjectKind, Result, StoreError};
use crate::id::new_id;
use crate::model::*;
use crate::repo::{List, ListParams, SipInviteRepo};
use crate::secret;

#[derive(sqlx::FromRow)]
struct InviteRow {
    id: String,
    account_id: String,
    connection_id: String,
    name: String,
    expired_on: i64,
    used_on: Option<i64>,
    created_on: i64,
    modified_on: i64,
    deleted_on: Option<i64>,
}

impl InviteRow {
    fn into_model(self) -> Result<SipInvite> {
        const K: ObjectKind = ObjectKind::SipInvite;
        Ok(SipInvite {
            uuid: uuid(K, "id", &self.id)?,
            account: uuid(K, "account_id", &self.account_id)?,
            connection: uuid(K, "connection_id", &self.connection_id)?,
            name: self.name,
            expired_on: from_millis(self.expired_on),
            used_on: self.used_on.map(from_millis),
            created_on: from_millis(self.created_on),
            modified_on: from_millis(self.modified_on),
            deleted_on: self.deleted_on.map(from_millis),
        })
    }
}

macro_rules! invite_cols {
    () => {
        "id, account_id, connection_id, name, expired_on, used_on, created_on, modified_on, deleted_on"
    };
}

#[async_trait]
impl SipInviteRepo for Store {
    async fn create_invite(
        &self,
        account: Uuid,
        connection: Uuid,
        name: String,
        expired_on: Timestamp,
    ) -> Result<CreatedSipInvite> {
        self.ensure_live(account, Ref::SipConnection, connection).await?;
        let token = secret::new_token()?;
        let now = now();
        let invite = SipInvite {
            uuid: new_id(),
            account,
            connection,
            name,
            expired_on,
            used_on: None,
            created_on: now,
            modified_on: now,
            deleted_on: None,
        };
        with_pool!(self, p => sqlx::query(
            "INSERT INTO sip_invite (id, account_id, connection_id, name, token_hash, expired_on, created_on, \
             modified_on) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(invite.uuid.to_string())
        .bind(account.to_string())
        .bind(connection.to_string())
        .bind(&invite.name)
        .bind(secret::sha256_hex(token.as_bytes()))
        .bind(ms(expired_on))
        .bind(ms(now))
        .execute(p)
        .await
        .map(|_| ())?);
        Ok(CreatedSipInvite { invite, token })
    }

    async fn list_invites(
        &self,
        account: Uuid,
        connection: Uuid,
        params: ListParams,
    ) -> Result<List<SipInvite>> {
        self.ensure_live(account, Ref::SipConnection, connection).await?;
        let (total, rows): (i64, Vec<InviteRow>) = with_pool!(self, p => {
            let total = sqlx::query_scalar(
                "SELECT COUNT(*) FROM sip_invite WHERE account_id = $1 AND connection_id = $2 AND deleted_on IS NULL",
            )
            .bind(account.to_string())
            .bind(connection.to_string())
            .fetch_one(p)
            .await?;
            let rows = sqlx::query_as(ordered!(
                params.order,
                concat!(
                    "SELECT ", invite_cols!(),
                    " FROM sip_invite WHERE account_id = $1 AND connection_id = $2 AND deleted_on IS NULL \
                     ORDER BY created_on"
                ),
                " LIMIT $3 OFFSET $4"
            ))
            .bind(account.to_string())
            .bind(connection.to_string())
            .bind(params.limit())
            .bind(params.offset())
            .fetch_all(p)
            .await?;
            (total, rows)
        });
        let data = rows.into_iter().map(InviteRow::into_model).collect::<Result<_>>()?;
        Ok(List { take: params.take, skip: params.skip, total, data })
    }

    async fn delete_invite(&self, account: Uuid, connection: Uuid, invite: Uuid) -> Result<()> {
        let done = with_pool!(self, p => sqlx::query(
            "UPDATE sip_invite SET deleted_on = $4, modified_on = $4 \
             WHERE account_id = $1 AND connection_id = $2 AND id = $3 AND deleted_on IS NULL",
        )
        .bind(account.to_string())
        .bind(connection.to_string())
        .bind(invite.to_string())
        .bind(ms(now()))
        .execute(p)
        .await?
        .rows_affected());
        if done == 0 { Err(StoreError::not_found(ObjectKind::SipInvite, invite)) } else { Ok(()) }
    }

    async fn use_invite(&self, token: &str) -> Result<Option<SipInvite>> {
        let hash = secret::sha256_hex(token.as_bytes());
        let now = ms(now());
        // The UPDATE is the gate: only one caller can move used_on from NULL. The connection
        // must still be live too.
        let row: Option<InviteRow> = with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            let done = sqlx::query(
                "UPDATE sip_invite SET used_on = $2, modified_on = $2 \
                 WHERE token_hash = $1 AND used_on IS NULL AND deleted_on IS NULL AND expired_on > $2 \
                 AND connection_id IN (SELECT id FROM sip_connection WHERE deleted_on IS NULL)",
            )
            .bind(&hash)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let row = if done == 1 {
                sqlx::query_as(concat!("SELECT ", invite_cols!(), " FROM sip_invite WHERE token_hash = $1"))
                    .bind(&hash)
                    .fetch_optional(&mut *tx)
                    .await?
            } else {
                None
            };
            tx.commit().await?;
            row
        });
        row.map(InviteRow::into_model).transpose()
    }
}
