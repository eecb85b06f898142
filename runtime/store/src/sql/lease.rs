//! The number inventory and leases.

use crate::sql::BeginWrite;
use async_trait::async_trait;
use uuid::Uuid;

use super::{Ref, Store, ms, opt_str, opt_uuid, ordered, patch, uuid, with_pool};
use crate::error::{ObjectKind, Result, StoreError, conflict_on};
use crate::id::new_id;
use crate::model::*;
use crate::repo::{LeaseFilter, LeaseRepo, LeaseState, List, ListParams, NumberFilter, NumberRepo};

#[derive(sqlx::FromRow)]
struct NumberRow {
    tn: i64,
    npa: i32,
    state: Option<String>,
    voice: bool,
    sms: bool,
    available: bool,
    created_on: i64,
    modified_on: i64,
}

impl From<NumberRow> for NumberInventory {
    fn from(r: NumberRow) -> Self {
        NumberInventory {
            tn: r.tn,
            npa: r.npa,
            state: r.state,
            voice: r.voice,
            sms: r.sms,
            available: r.available,
            created_on: from_millis(r.created_on),
            modified_on: from_millis(r.modified_on),
        }
    }
}

#[derive(sqlx::FromRow)]
struct LeaseRow {
    id: String,
    account_id: String,
    tn: i64,
    voice: bool,
    sms: bool,
    autorenew: bool,
    tn_profile_id: Option<String>,
    sip_connection_id: Option<String>,
    sip_control_app_id: Option<String>,
    messaging_profile_id: Option<String>,
    created_on: i64,
    modified_on: i64,
    released_on: Option<i64>,
    event_url: Option<String>,
    paid_until: Option<i64>,
}

impl LeaseRow {
    fn into_model(self) -> Result<TnLease> {
        const K: ObjectKind = ObjectKind::TnLease;
        Ok(TnLease {
            uuid: uuid(K, "id", &self.id)?,
            account: uuid(K, "account_id", &self.account_id)?,
            tn: self.tn,
            voice: self.voice,
            sms: self.sms,
            autorenew: self.autorenew,
            tn_profile: opt_uuid(K, "tn_profile_id", self.tn_profile_id.as_deref())?,
            sip_connection: opt_uuid(K, "sip_connection_id", self.sip_connection_id.as_deref())?,
            sip_control_app: opt_uuid(K, "sip_control_app_id", self.sip_control_app_id.as_deref())?,
            messaging_profile: opt_uuid(K, "messaging_profile_id", self.messaging_profile_id.as_deref())?,
            created_on: from_millis(self.created_on),
            modified_on: from_millis(self.modified_on),
            released_on: self.released_on.map(from_millis),
            event_url: self.event_url,
            paid_until: self.paid_until.map(from_millis),
        })
    }
}

macro_rules! lease_cols {
    () => {
        "id, account_id, tn, voice, sms, autorenew, tn_profile_id, sip_connection_id, sip_control_app_id, \
         messaging_profile_id, created_on, modified_on, released_on, event_url, paid_until"
    };
}

macro_rules! number_cols {
    () => {
        "tn, npa, state, voice, sms, available, created_on, modified_on"
    };
}

#[async_trait]
impl NumberRepo for Store {
    async fn upsert_numbers(&self, numbers: &[NumberInventory]) -> Result<()> {
        let now = ms(now());
        with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            for n in numbers {
                sqlx::query(
                    "INSERT INTO number_inventory (tn, npa, state, voice, sms, available, created_on, modified_on) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
                     ON CONFLICT (tn) DO UPDATE SET npa = excluded.npa, state = excluded.state, \
                     voice = excluded.voice, sms = excluded.sms, modified_on = excluded.modified_on",
                )
                .bind(n.tn)
                .bind(n.npa)
                .bind(&n.state)
                .bind(n.voice)
                .bind(n.sms)
                .bind(n.available)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    async fn get_number(&self, tn: Tn) -> Result<Option<NumberInventory>> {
        let row: Option<NumberRow> = with_pool!(self, p => sqlx::query_as(
            concat!("SELECT ", number_cols!(), " FROM number_inventory WHERE tn = $1"),
        )
        .bind(tn)
        .fetch_optional(p)
        .await?);
        Ok(row.map(Into::into))
    }

    async fn search_numbers(&self, f: NumberFilter, params: ListParams) -> Result<List<NumberInventory>> {
        macro_rules! filter {
            () => {
                " FROM number_inventory WHERE ($1 IS NULL OR npa = $1) AND ($2 IS NULL OR state = $2) \
                 AND ($3 = FALSE OR voice = TRUE) AND ($4 = FALSE OR sms = TRUE) \
                 AND ($5 = FALSE OR available = TRUE) AND ($6 IS NULL OR CAST(tn AS TEXT) LIKE $6)"
            };
        }
        // `1` and the ten national digits, `*` as LIKE's one-character `_`.
        let like = f.pattern.as_deref().map(|p| format!("1{}", p.replace('*', "_")));
        let (total, rows): (i64, Vec<NumberRow>) = with_pool!(self, p => {
            let total = sqlx::query_scalar(concat!("SELECT COUNT(*)", filter!()))
                .bind(f.npa)
                .bind(&f.state)
                .bind(f.voice)
                .bind(f.sms)
                .bind(f.available_only)
                .bind(&like)
                .fetch_one(p)
                .await?;
            let rows = sqlx::query_as(match params.order {
                crate::repo::Order::Asc => {
                    concat!("SELECT ", number_cols!(), filter!(), " ORDER BY tn ASC LIMIT $7 OFFSET $8")
                }
                crate::repo::Order::Desc => {
                    concat!("SELECT ", number_cols!(), filter!(), " ORDER BY tn DESC LIMIT $7 OFFSET $8")
                }
            })
            .bind(f.npa)
            .bind(&f.state)
            .bind(f.voice)
            .bind(f.sms)
            .bind(f.available_only)
            .bind(&like)
            .bind(params.limit())
            .bind(params.offset())
            .fetch_all(p)
            .await?;
            (total, rows)
        });
        Ok(List {
            take: params.take,
            skip: params.skip,
            total,
            data: rows.into_iter().map(Into::into).collect(),
        })
    }
}

impl Store {
    async fn check_lease_refs(
        &self,
        account: Uuid,
        profile: Option<Uuid>,
        conn: Option<Uuid>,
        app: Option<Uuid>,
    ) -> Result<()> {
        self.ensure_live_opt(account, Ref::TnProfile, profile).await?;
        self.ensure_live_opt(account, Ref::SipConnection, conn).await?;
        self.ensure_live_opt(account, Ref::SipControlApp, app).await
    }
}

#[async_trait]
impl LeaseRepo for Store {
    async fn lease_tn(&self, account: Uuid, new: NewLease) -> Result<TnLease> {
        let now = now();
        let lease = TnLease {
            uuid: new_id(),
            account,
            tn: new.tn,
            voice: new.voice,
            sms: new.sms,
            autorenew: new.autorenew,
            tn_profile: None,
            sip_connection: None,
            sip_control_app: None,
            messaging_profile: None,
            created_on: now,
            modified_on: now,
            released_on: None,
            event_url: None,
            paid_until: None,
        };
        let conflict =
            || StoreError::Conflict { kind: ObjectKind::TnLease, field: "tn", value: new.tn.to_string() };
        with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            let available: Option<bool> =
                sqlx::query_scalar("SELECT available FROM number_inventory WHERE tn = $1")
                    .bind(new.tn)
                    .fetch_optional(&mut *tx)
                    .await?;
            match available {
                None => return Err(StoreError::not_found(ObjectKind::Number, new.tn)),
                Some(false) => {
                    let leased: i64 =
                        sqlx::query_scalar("SELECT COUNT(*) FROM tn_lease WHERE tn = $1 AND released_on IS NULL")
                            .bind(new.tn)
                            .fetch_one(&mut *tx)
                            .await?;
                    return Err(if leased > 0 { conflict() } else { StoreError::NumberUnavailable { tn: new.tn } });
                }
                Some(true) => {}
            }
            let taken = sqlx::query(
                "UPDATE number_inventory SET available = FALSE, modified_on = $2 WHERE tn = $1 AND available = TRUE",
            )
            .bind(new.tn)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if taken == 0 {
                return Err(conflict());
            }
            sqlx::query(
                "INSERT INTO tn_lease (id, account_id, tn, voice, sms, autorenew, created_on, modified_on) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(lease.uuid.to_string())
            .bind(account.to_string())
            .bind(lease.tn)
            .bind(lease.voice)
            .bind(lease.sms)
            .bind(lease.autorenew)
            .bind(ms(now))
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_on(e, ObjectKind::TnLease, "tn", new.tn))?;
            tx.commit().await?;
        });
        Ok(lease)
    }

    async fn get_lease(&self, account: Uuid, lease: Uuid) -> Result<Option<TnLease>> {
        let row: Option<LeaseRow> = with_pool!(self, p => sqlx::query_as(
            concat!("SELECT ", lease_cols!(), " FROM tn_lease WHERE account_id = $1 AND id = $2"),
        )
        .bind(account.to_string())
        .bind(lease.to_string())
        .fetch_optional(p)
        .await?);
        row.map(LeaseRow::into_model).transpose()
    }

    async fn list_leases(&self, account: Uuid, f: LeaseFilter, params: ListParams) -> Result<List<TnLease>> {
        macro_rules! filter {
            () => {
                " FROM tn_lease WHERE account_id = $1 AND ($2 IS NULL OR sip_connection_id = $2) \
                 AND ($3 IS NULL OR sip_control_app_id = $3) \
                 AND ($4 = 'all' OR ($4 = 'active' AND released_on IS NULL) \
                      OR ($4 = 'released' AND released_on IS NOT NULL))"
            };
        }
        let state = match f.state {
            LeaseState::Active => "active",
            LeaseState::Released => "released",
            LeaseState::All => "all",
        };
        let (total, rows): (i64, Vec<LeaseRow>) = with_pool!(self, p => {
            let total = sqlx::query_scalar(concat!("SELECT COUNT(*)", filter!()))
                .bind(account.to_string())
                .bind(opt_str(f.sip_connection))
                .bind(opt_str(f.sip_control_app))
                .bind(state)
                .fetch_one(p)
                .await?;
            let rows = sqlx::query_as(ordered!(
                params.order,
                concat!("SELECT ", lease_cols!(), filter!(), " ORDER BY created_on"),
                " LIMIT $5 OFFSET $6"
            ))
            .bind(account.to_string())
            .bind(opt_str(f.sip_connection))
            .bind(opt_str(f.sip_control_app))
            .bind(state)
            .bind(params.limit())
            .bind(params.offset())
            .fetch_all(p)
            .await?;
            (total, rows)
        });
        let data = rows.into_iter().map(LeaseRow::into_model).collect::<Result<_>>()?;
        Ok(List { take: params.take, skip: params.skip, total, data })
    }

    async fn update_lease(&self, account: Uuid, lease: Uuid, p: LeasePatch) -> Result<TnLease> {
        let mut l = self
            .get_lease(account, lease)
            .await?
            .filter(|l| l.released_on.is_none())
            .ok_or(StoreError::not_found(ObjectKind::TnLease, lease))?;
        patch(&mut l.voice, p.voice);
        patch(&mut l.sms, p.sms);
        patch(&mut l.autorenew, p.autorenew);
        patch(&mut l.tn_profile, p.tn_profile);
        patch(&mut l.sip_connection, p.sip_connection);
        patch(&mut l.sip_control_app, p.sip_control_app);
        patch(&mut l.messaging_profile, p.messaging_profile);
        patch(&mut l.event_url, p.event_url);
        self.check_lease_refs(account, l.tn_profile, l.sip_connection, l.sip_control_app).await?;
        self.ensure_live_opt(account, Ref::MessagingProfile, l.messaging_profile).await?;
        l.modified_on = now();
        let done = with_pool!(self, pool => sqlx::query(
            "UPDATE tn_lease SET voice = $3, sms = $4, autorenew = $5, tn_profile_id = $6, \
             sip_connection_id = $7, sip_control_app_id = $8, modified_on = $9, messaging_profile_id = $10, \
             event_url = $11 WHERE account_id = $1 AND id = $2 AND released_on IS NULL",
        )
        .bind(account.to_string())
        .bind(lease.to_string())
        .bind(l.voice)
        .bind(l.sms)
        .bind(l.autorenew)
        .bind(opt_str(l.tn_profile))
        .bind(opt_str(l.sip_connection))
        .bind(opt_str(l.sip_control_app))
        .bind(ms(l.modified_on))
        .bind(opt_str(l.messaging_profile))
        .bind(&l.event_url)
        .execute(pool)
        .await?
        .rows_affected());
        if done == 0 { Err(StoreError::not_found(ObjectKind::TnLease, lease)) } else { Ok(l) }
    }

    async fn release_lease(&self, account: Uuid, lease: Uuid) -> Result<TnLease> {
        let now = ms(now());
        let done = with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            let done = sqlx::query(
                "UPDATE tn_lease SET released_on = $3, modified_on = $3 \
                 WHERE account_id = $1 AND id = $2 AND released_on IS NULL",
            )
            .bind(account.to_string())
            .bind(lease.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if done > 0 {
                sqlx::query(
                    "UPDATE number_inventory SET available = TRUE, modified_on = $2 \
                     WHERE tn = (SELECT tn FROM tn_lease WHERE id = $1)",
                )
                .bind(lease.to_string())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE sip_user SET tn_lease_id = NULL, modified_on = $2 WHERE tn_lease_id = $1")
                    .bind(lease.to_string())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            done
        });
        if done == 0 {
            return Err(StoreError::not_found(ObjectKind::TnLease, lease));
        }
        self.get_lease(account, lease).await?.ok_or(StoreError::not_found(ObjectKind::TnLease, lease))
    }

    async fn lease_by_tn(&self, tn: Tn) -> Result<Option<TnLease>> {
        let row: Option<LeaseRow> = with_pool!(self, p => sqlx::query_as(
            concat!("SELECT ", lease_cols!(), " FROM tn_lease WHERE tn = $1 AND released_on IS NULL"),
        )
        .bind(tn)
        .fetch_optional(p)
        .await?);
        row.map(LeaseRow::into_model).transpose()
    }

    async fn leases_due(&self, at: Timestamp, limit: i64) -> Result<Vec<TnLease>> {
        let rows: Vec<LeaseRow> = with_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", lease_cols!(),
            " FROM tn_lease WHERE released_on IS NULL AND paid_until <= $1 \
             AND (renewal_retry_on IS NULL OR renewal_retry_on <= $1) \
             ORDER BY COALESCE(renewal_retry_on, paid_until), id LIMIT $2"
        ))
        .bind(ms(at))
        .bind(limit)
        .fetch_all(p)
        .await?);
        rows.into_iter().map(LeaseRow::into_model).collect()
    }

    async fn defer_renewal(
        &self,
        lease: Uuid,
        paid_until: Timestamp,
        retry_on: Timestamp,
    ) -> Result<Option<bool>> {
        // The first failure of the month is the one that finds no retry set: of two nodes
        // failing at once, one.
        const FIRST: &str = "UPDATE tn_lease SET renewal_retry_on = $3 WHERE id = $1 AND released_on IS NULL \
                             AND paid_until = $2 AND renewal_retry_on IS NULL";
        const LATER: &str = "UPDATE tn_lease SET renewal_retry_on = $3 WHERE id = $1 AND released_on IS NULL AND paid_until = $2";
        for (sql, first) in [(FIRST, true), (LATER, false)] {
            let moved = with_pool!(self, p => sqlx::query(sql)
                .bind(lease.to_string())
                .bind(ms(paid_until))
                .bind(ms(retry_on))
                .execute(p)
                .await?
                .rows_affected());
            if moved == 1 {
                return Ok(Some(first));
            }
        }
        Ok(None)
    }
}
