//! Messaging profiles.

use crate::sql::BeginWrite;
use async_trait::async_trait;
use uuid::Uuid;

use super::{Store, ms, ordered, patch, uuid, with_pool};
use crate::error::{ObjectKind, Result, StoreError};
use crate::id::new_id;
use crate::model::*;
use crate::repo::{List, ListParams, MessagingProfileRepo};

const K: ObjectKind = ObjectKind::MessagingProfile;

#[derive(sqlx::FromRow)]
struct ProfileRow {
    id: String,
    account_id: String,
    name: String,
    callback_url: Option<String>,
    callback_url2: Option<String>,
    number_pool_enable: bool,
    long_code_weight: i32,
    toll_free_weight: i32,
    skip_unhealthy_tns: bool,
    sticky_sender: bool,
    created_on: i64,
    modified_on: i64,
    deleted_on: Option<i64>,
}

impl ProfileRow {
    fn into_model(self) -> Result<MessagingProfile> {
        Ok(MessagingProfile {
            uuid: uuid(K, "id", &self.id)?,
            account: uuid(K, "account_id", &self.account_id)?,
            name: self.name,
            callback_url: self.callback_url,
            callback_url2: self.callback_url2,
            number_pool_enable: self.number_pool_enable,
            long_code_weight: self.long_code_weight,
            toll_free_weight: self.toll_free_weight,
            skip_unhealthy_tns: self.skip_unhealthy_tns,
            sticky_sender: self.sticky_sender,
            created_on: from_millis(self.created_on),
            modified_on: from_millis(self.modified_on),
            deleted_on: self.deleted_on.map(from_millis),
        })
    }
}

macro_rules! profile_cols {
    () => {
        "id, account_id, name, callback_url, callback_url2, number_pool_enable, long_code_weight, \
         toll_free_weight, skip_unhealthy_tns, sticky_sender, created_on, modified_on, deleted_on"
    };
}

fn check_weights(p: &MessagingProfile) -> Result<()> {
    if p.long_code_weight < 0 || p.toll_free_weight < 0 {
        return Err(StoreError::Invalid { field: "weight", reason: "weights must not be negative" });
    }
    Ok(())
}

#[async_trait]
impl MessagingProfileRepo for Store {
    async fn create_messaging_profile(
        &self,
        account: Uuid,
        new: NewMessagingProfile,
    ) -> Result<MessagingProfile> {
        let now = now();
        let m = MessagingProfile {
            uuid: new_id(),
            account,
            name: new.name,
            callback_url: new.callback_url,
            callback_url2: new.callback_url2,
            number_pool_enable: new.number_pool_enable,
            long_code_weight: new.long_code_weight,
            toll_free_weight: new.toll_free_weight,
            skip_unhealthy_tns: new.skip_unhealthy_tns,
            sticky_sender: new.sticky_sender,
            created_on: now,
            modified_on: now,
            deleted_on: None,
        };
        check_weights(&m)?;
        with_pool!(self, p => sqlx::query(
            "INSERT INTO messaging_profile (id, account_id, name, callback_url, callback_url2, number_pool_enable, \
             long_code_weight, toll_free_weight, skip_unhealthy_tns, sticky_sender, created_on, modified_on) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
        )
        .bind(m.uuid.to_string())
        .bind(account.to_string())
        .bind(&m.name)
        .bind(&m.callback_url)
        .bind(&m.callback_url2)
        .bind(m.number_pool_enable)
        .bind(m.long_code_weight)
        .bind(m.toll_free_weight)
        .bind(m.skip_unhealthy_tns)
        .bind(m.sticky_sender)
        .bind(ms(now))
        .execute(p)
        .await
        .map(|_| ())?);
        Ok(m)
    }

    async fn get_messaging_profile(&self, account: Uuid, profile: Uuid) -> Result<Option<MessagingProfile>> {
        let row: Option<ProfileRow> = with_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", profile_cols!(),
            " FROM messaging_profile WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL"
        ))
        .bind(account.to_string())
        .bind(profile.to_string())
        .fetch_optional(p)
        .await?);
        row.map(ProfileRow::into_model).transpose()
    }

    async fn list_messaging_profiles(
        &self,
        account: Uuid,
        params: ListParams,
    ) -> Result<List<MessagingProfile>> {
        let (total, rows): (i64, Vec<ProfileRow>) = with_pool!(self, p => {
            let total = sqlx::query_scalar(
                "SELECT COUNT(*) FROM messaging_profile WHERE account_id = $1 AND deleted_on IS NULL",
            )
            .bind(account.to_string())
            .fetch_one(p)
            .await?;
            let rows = sqlx::query_as(ordered!(
                params.order,
                concat!(
                    "SELECT ", profile_cols!(),
                    " FROM messaging_profile WHERE account_id = $1 AND deleted_on IS NULL ORDER BY created_on"
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
        let data = rows.into_iter().map(ProfileRow::into_model).collect::<Result<_>>()?;
        Ok(List { take: params.take, skip: params.skip, total, data })
    }

    async fn update_messaging_profile(
        &self,
        account: Uuid,
        profile: Uuid,
        p: MessagingProfilePatch,
    ) -> Result<MessagingProfile> {
        let mut m =
            self.get_messaging_profile(account, profile).await?.ok_or(StoreError::not_found(K, profile))?;
        patch(&mut m.name, p.name);
        patch(&mut m.callback_url, p.callback_url);
        patch(&mut m.callback_url2, p.callback_url2);
        patch(&mut m.number_pool_enable, p.number_pool_enable);
        patch(&mut m.long_code_weight, p.long_code_weight);
        patch(&mut m.toll_free_weight, p.toll_free_weight);
        patch(&mut m.skip_unhealthy_tns, p.skip_unhealthy_tns);
        patch(&mut m.sticky_sender, p.sticky_sender);
        check_weights(&m)?;
        m.modified_on = now();
        let done = with_pool!(self, pool => sqlx::query(
            "UPDATE messaging_profile SET name = $3, callback_url = $4, callback_url2 = $5, number_pool_enable = $6, \
             long_code_weight = $7, toll_free_weight = $8, skip_unhealthy_tns = $9, sticky_sender = $10, \
             modified_on = $11 WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL",
        )
        .bind(account.to_string())
        .bind(profile.to_string())
        .bind(&m.name)
        .bind(&m.callback_url)
        .bind(&m.callback_url2)
        .bind(m.number_pool_enable)
        .bind(m.long_code_weight)
        .bind(m.toll_free_weight)
        .bind(m.skip_unhealthy_tns)
        .bind(m.sticky_sender)
        .bind(ms(m.modified_on))
        .execute(pool)
        .await?
        .rows_affected());
        if done == 0 { Err(StoreError::not_found(K, profile)) } else { Ok(m) }
    }

    async fn delete_messaging_profile(&self, account: Uuid, profile: Uuid) -> Result<()> {
        let now = ms(now());
        let done = with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            let done = sqlx::query(
                "UPDATE messaging_profile SET deleted_on = $3, modified_on = $3 \
                 WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL",
            )
            .bind(account.to_string())
            .bind(profile.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(
                "UPDATE tn_lease SET messaging_profile_id = NULL, modified_on = $3 \
                 WHERE account_id = $1 AND messaging_profile_id = $2",
            )
            .bind(account.to_string())
            .bind(profile.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            done
        });
        if done == 0 { Err(StoreError::not_found(K, profile)) } else { Ok(()) }
    }
}
