//! TN profiles (caller-ID lists) and outbound voice profiles.

use crate::sql::BeginWrite;
use async_trait::async_trait;
use uuid::Uuid;

use super::{Store, ms, ordered, patch, uuid, with_pool};
use crate::error::{ObjectKind, Result, StoreError};
use crate::id::new_id;
use crate::model::*;
use crate::repo::{List, ListParams, OutboundVoiceProfileRepo, TnProfileRepo};

#[derive(sqlx::FromRow)]
struct TnProfileRow {
    id: String,
    account_id: String,
    name: String,
    created_on: i64,
    modified_on: i64,
    deleted_on: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct CallerRow {
    profile_id: String,
    list: String,
    entry: String,
}

macro_rules! tn_profile_cols {
    () => {
        "id, account_id, name, created_on, modified_on, deleted_on"
    };
}

#[derive(sqlx::FromRow)]
struct OvpRow {
    id: String,
    account_id: String,
    name: String,
    channel_limit: Option<i32>,
    calls_per_second: Option<i32>,
    max_rate_micros: Option<i64>,
    daily_spend_limit_micros: Option<i64>,
    record_calls: bool,
    shaken_sign_policy: String,
    created_on: i64,
    modified_on: i64,
    deleted_on: Option<i64>,
}

impl OvpRow {
    fn into_model(self) -> Result<OutboundVoiceProfile> {
        const K: ObjectKind = ObjectKind::OutboundVoiceProfile;
        Ok(OutboundVoiceProfile {
            uuid: uuid(K, "id", &self.id)?,
            account: uuid(K, "account_id", &self.account_id)?,
            name: self.name,
            channel_limit: self.channel_limit,
            calls_per_second: self.calls_per_second,
            max_rate_micros: self.max_rate_micros,
            daily_spend_limit_micros: self.daily_spend_limit_micros,
            record_calls: self.record_calls,
            shaken_sign_policy: ShakenSignPolicy::parse(&self.shaken_sign_policy).ok_or(
                StoreError::Corrupt { kind: K, column: "shaken_sign_policy", value: self.shaken_sign_policy },
            )?,
            created_on: from_millis(self.created_on),
            modified_on: from_millis(self.modified_on),
            deleted_on: self.deleted_on.map(from_millis),
        })
    }
}

macro_rules! ovp_cols {
    () => {
        "id, account_id, name, channel_limit, max_rate_micros, daily_spend_limit_micros, record_calls, \
         shaken_sign_policy, created_on, modified_on, deleted_on, calls_per_second"
    };
}

/// Entries are digit strings (a number or a prefix), as callers are matched by prefix.
fn check_entries(entries: &[String]) -> Result<()> {
    if entries.iter().any(|e| e.is_empty() || e.len() > 15 || !e.bytes().all(|b| b.is_ascii_digit())) {
        return Err(StoreError::Invalid {
            field: "caller list entry",
            reason: "must be 1 to 15 digits: a number with country code, or a prefix of one",
        });
    }
    Ok(())
}

impl Store {
    /// Builds profiles from their rows, loading their caller lists with one more query.
    async fn tn_profiles(&self, rows: Vec<TnProfileRow>) -> Result<Vec<TnProfile>> {
        const K: ObjectKind = ObjectKind::TnProfile;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(TnProfile {
                uuid: uuid(K, "id", &r.id)?,
                account: uuid(K, "account_id", &r.account_id)?,
                name: r.name,
                blacklist: Vec::new(),
                whitelist: Vec::new(),
                created_on: from_millis(r.created_on),
                modified_on: from_millis(r.modified_on),
                deleted_on: r.deleted_on.map(from_millis),
            });
        }
        if out.is_empty() {
            return Ok(out);
        }
        // The page's profiles all belong to one account: fetch that account's entries for them.
        let account = out[0].account.to_string();
        let callers: Vec<CallerRow> = with_pool!(self, p => sqlx::query_as(
            "SELECT c.profile_id, c.list, c.entry FROM tn_profile_caller c \
             JOIN tn_profile t ON t.id = c.profile_id \
             WHERE t.account_id = $1 AND t.deleted_on IS NULL ORDER BY c.entry",
        )
        .bind(account)
        .fetch_all(p)
        .await?);
        for c in callers {
            let id = uuid(K, "profile_id", &c.profile_id)?;
            let Some(profile) = out.iter_mut().find(|p| p.uuid == id) else { continue };
            match c.list.as_str() {
                "black" => profile.blacklist.push(c.entry),
                "white" => profile.whitelist.push(c.entry),
                _ => return Err(StoreError::Corrupt { kind: K, column: "list", value: c.list }),
            }
        }
        Ok(out)
    }

    async fn add_callers(&self, profile: Uuid, list: CallerList, entries: &[String]) -> Result<()> {
        check_entries(entries)?;
        let now = ms(now());
        with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            for e in entries {
                sqlx::query(
                    "INSERT INTO tn_profile_caller (profile_id, list, entry, created_on) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (profile_id, list, entry) DO NOTHING",
                )
                .bind(profile.to_string())
                .bind(list.as_str())
                .bind(e)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}

#[async_trait]
impl TnProfileRepo for Store {
    async fn create_tn_profile(&self, account: Uuid, new: NewTnProfile) -> Result<TnProfile> {
        check_entries(&new.blacklist)?;
        check_entries(&new.whitelist)?;
        let id = new_id();
        let now = ms(now());
        with_pool!(self, p => sqlx::query(
            "INSERT INTO tn_profile (id, account_id, name, created_on, modified_on) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(id.to_string())
        .bind(account.to_string())
        .bind(&new.name)
        .bind(now)
        .execute(p)
        .await
        .map(|_| ())?);
        self.add_callers(id, CallerList::Black, &new.blacklist).await?;
        self.add_callers(id, CallerList::White, &new.whitelist).await?;
        self.get_tn_profile(account, id).await?.ok_or(StoreError::not_found(ObjectKind::TnProfile, id))
    }

    async fn get_tn_profile(&self, account: Uuid, profile: Uuid) -> Result<Option<TnProfile>> {
        let row: Option<TnProfileRow> = with_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", tn_profile_cols!(), " FROM tn_profile WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL"
        ))
        .bind(account.to_string())
        .bind(profile.to_string())
        .fetch_optional(p)
        .await?);
        Ok(self.tn_profiles(row.into_iter().collect()).await?.pop())
    }

    async fn list_tn_profiles(&self, account: Uuid, params: ListParams) -> Result<List<TnProfile>> {
        let (total, rows): (i64, Vec<TnProfileRow>) = with_pool!(self, p => {
            let total = sqlx::query_scalar(
                "SELECT COUNT(*) FROM tn_profile WHERE account_id = $1 AND deleted_on IS NULL",
            )
            .bind(account.to_string())
            .fetch_one(p)
            .await?;
            let rows = sqlx::query_as(ordered!(
                params.order,
                concat!(
                    "SELECT ", tn_profile_cols!(),
                    " FROM tn_profile WHERE account_id = $1 AND deleted_on IS NULL ORDER BY created_on"
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
        let data = self.tn_profiles(rows).await?;
        Ok(List { take: params.take, skip: params.skip, total, data })
    }

    async fn rename_tn_profile(&self, account: Uuid, profile: Uuid, name: String) -> Result<TnProfile> {
        let done = with_pool!(self, p => sqlx::query(
            "UPDATE tn_profile SET name = $3, modified_on = $4 \
             WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL",
        )
        .bind(account.to_string())
        .bind(profile.to_string())
        .bind(&name)
        .bind(ms(now()))
        .execute(p)
        .await?
        .rows_affected());
        if done == 0 {
            return Err(StoreError::not_found(ObjectKind::TnProfile, profile));
        }
        self.get_tn_profile(account, profile)
            .await?
            .ok_or(StoreError::not_found(ObjectKind::TnProfile, profile))
    }

    async fn update_caller_list(
        &self,
        account: Uuid,
        profile: Uuid,
        list: CallerList,
        add: &[String],
        remove: &[String],
    ) -> Result<TnProfile> {
        self.ensure_live(account, super::Ref::TnProfile, profile).await?;
        self.add_callers(profile, list, add).await?;
        with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            for e in remove {
                sqlx::query("DELETE FROM tn_profile_caller WHERE profile_id = $1 AND list = $2 AND entry = $3")
                    .bind(profile.to_string())
                    .bind(list.as_str())
                    .bind(e)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("UPDATE tn_profile SET modified_on = $2 WHERE id = $1")
                .bind(profile.to_string())
                .bind(ms(now()))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        self.get_tn_profile(account, profile)
            .await?
            .ok_or(StoreError::not_found(ObjectKind::TnProfile, profile))
    }

    async fn delete_tn_profile(&self, account: Uuid, profile: Uuid) -> Result<()> {
        let now = ms(now());
        let done = with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            let done = sqlx::query(
                "UPDATE tn_profile SET deleted_on = $3, modified_on = $3 \
                 WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL",
            )
            .bind(account.to_string())
            .bind(profile.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query("UPDATE tn_lease SET tn_profile_id = NULL, modified_on = $3 WHERE account_id = $1 AND tn_profile_id = $2")
                .bind(account.to_string())
                .bind(profile.to_string())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            done
        });
        if done == 0 { Err(StoreError::not_found(ObjectKind::TnProfile, profile)) } else { Ok(()) }
    }
}

#[async_trait]
impl OutboundVoiceProfileRepo for Store {
    async fn create_ovp(&self, account: Uuid, new: NewOutboundVoiceProfile) -> Result<OutboundVoiceProfile> {
        let now = now();
        let ovp = OutboundVoiceProfile {
            uuid: new_id(),
            account,
            name: new.name,
            channel_limit: new.channel_limit,
            calls_per_second: new.calls_per_second,
            max_rate_micros: new.max_rate_micros,
            daily_spend_limit_micros: new.daily_spend_limit_micros,
            record_calls: new.record_calls,
            shaken_sign_policy: new.shaken_sign_policy,
            created_on: now,
            modified_on: now,
            deleted_on: None,
        };
        with_pool!(self, p => sqlx::query(
            "INSERT INTO outbound_voice_profile (id, account_id, name, channel_limit, max_rate_micros, \
             daily_spend_limit_micros, record_calls, created_on, modified_on, shaken_sign_policy, \
             calls_per_second) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10)",
        )
        .bind(ovp.uuid.to_string())
        .bind(account.to_string())
        .bind(&ovp.name)
        .bind(ovp.channel_limit)
        .bind(ovp.max_rate_micros)
        .bind(ovp.daily_spend_limit_micros)
        .bind(ovp.record_calls)
        .bind(ms(now))
        .bind(ovp.shaken_sign_policy.as_str())
        .bind(ovp.calls_per_second)
        .execute(p)
        .await
        .map(|_| ())?);
        Ok(ovp)
    }

    async fn get_ovp(&self, account: Uuid, ovp: Uuid) -> Result<Option<OutboundVoiceProfile>> {
        let row: Option<OvpRow> = with_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", ovp_cols!(),
            " FROM outbound_voice_profile WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL"
        ))
        .bind(account.to_string())
        .bind(ovp.to_string())
        .fetch_optional(p)
        .await?);
        row.map(OvpRow::into_model).transpose()
    }

    async fn list_ovps(&self, account: Uuid, params: ListParams) -> Result<List<OutboundVoiceProfile>> {
        let (total, rows): (i64, Vec<OvpRow>) = with_pool!(self, p => {
            let total = sqlx::query_scalar(
                "SELECT COUNT(*) FROM outbound_voice_profile WHERE account_id = $1 AND deleted_on IS NULL",
            )
            .bind(account.to_string())
            .fetch_one(p)
            .await?;
            let rows = sqlx::query_as(ordered!(
                params.order,
                concat!(
                    "SELECT ", ovp_cols!(),
                    " FROM outbound_voice_profile WHERE account_id = $1 AND deleted_on IS NULL ORDER BY created_on"
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
        let data = rows.into_iter().map(OvpRow::into_model).collect::<Result<_>>()?;
        Ok(List { take: params.take, skip: params.skip, total, data })
    }

    async fn update_ovp(
        &self,
        account: Uuid,
        ovp: Uuid,
        p: OutboundVoiceProfilePatch,
    ) -> Result<OutboundVoiceProfile> {
        let mut o = self
            .get_ovp(account, ovp)
            .await?
            .ok_or(StoreError::not_found(ObjectKind::OutboundVoiceProfile, ovp))?;
        patch(&mut o.name, p.name);
        patch(&mut o.channel_limit, p.channel_limit);
        patch(&mut o.calls_per_second, p.calls_per_second);
        patch(&mut o.max_rate_micros, p.max_rate_micros);
        patch(&mut o.daily_spend_limit_micros, p.daily_spend_limit_micros);
        patch(&mut o.record_calls, p.record_calls);
        patch(&mut o.shaken_sign_policy, p.shaken_sign_policy);
        o.modified_on = now();
        let done = with_pool!(self, pool => sqlx::query(
            "UPDATE outbound_voice_profile SET name = $3, channel_limit = $4, max_rate_micros = $5, \
             daily_spend_limit_micros = $6, record_calls = $7, modified_on = $8, shaken_sign_policy = $9, \
             calls_per_second = $10 WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL",
        )
        .bind(account.to_string())
        .bind(ovp.to_string())
        .bind(&o.name)
        .bind(o.channel_limit)
        .bind(o.max_rate_micros)
        .bind(o.daily_spend_limit_micros)
        .bind(o.record_calls)
        .bind(ms(o.modified_on))
        .bind(o.shaken_sign_policy.as_str())
        .bind(o.calls_per_second)
        .execute(pool)
        .await?
        .rows_affected());
        if done == 0 { Err(StoreError::not_found(ObjectKind::OutboundVoiceProfile, ovp)) } else { Ok(o) }
    }

    async fn delete_ovp(&self, account: Uuid, ovp: Uuid) -> Result<()> {
        let now = ms(now());
        let done = with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            let done = sqlx::query(
                "UPDATE outbound_voice_profile SET deleted_on = $3, modified_on = $3 \
                 WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL",
            )
            .bind(account.to_string())
            .bind(ovp.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(
                "UPDATE sip_connection SET outbound_voice_profile_id = NULL, modified_on = $3 \
                 WHERE account_id = $1 AND outbound_voice_profile_id = $2",
            )
            .bind(account.to_string())
            .bind(ovp.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            done
        });
        if done == 0 { Err(StoreError::not_found(ObjectKind::OutboundVoiceProfile, ovp)) } else { Ok(()) }
    }
}
