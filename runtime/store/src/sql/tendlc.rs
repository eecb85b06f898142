//! 10DLC brands, campaigns (with their sample messages) and the numbers assigned to campaigns.

use crate::sql::BeginWrite;
use std::collections::HashMap;

use async_trait::async_trait;
use uuid::Uuid;

use super::{Ref, Store, id_list, ms, ordered, uuid, with_pool};
use crate::error::{ObjectKind, Result, StoreError};
use crate::id::new_id;
use crate::model::*;
use crate::repo::{CampaignFilter, List, ListParams, TenDlcRepo};

const BRAND: ObjectKind = ObjectKind::Brand;
const CAMPAIGN: ObjectKind = ObjectKind::Campaign;

#[derive(sqlx::FromRow)]
struct BrandRow {
    id: String,
    account_id: String,
    legal_name: String,
    dba_name: Option<String>,
    entity_type: String,
    ein: String,
    country: String,
    vertical: String,
    website: Option<String>,
    street: String,
    city: String,
    state: String,
    postal_code: String,
    contact_name: String,
    contact_email: String,
    contact_phone: String,
    created_on: i64,
    modified_on: i64,
}

impl BrandRow {
    fn into_model(self) -> Result<TenDlcBrand> {
        Ok(TenDlcBrand {
            uuid: uuid(BRAND, "id", &self.id)?,
            account: uuid(BRAND, "account_id", &self.account_id)?,
            entity_type: BrandEntityType::parse(&self.entity_type).ok_or_else(|| StoreError::Corrupt {
                kind: BRAND,
                column: "entity_type",
                value: self.entity_type.clone(),
            })?,
            legal_name: self.legal_name,
            dba_name: self.dba_name,
            ein: self.ein,
            country: self.country,
            vertical: self.vertical,
            website: self.website,
            street: self.street,
            city: self.city,
            state: self.state,
            postal_code: self.postal_code,
            contact_name: self.contact_name,
            contact_email: self.contact_email,
            contact_phone: self.contact_phone,
            created_on: from_millis(self.created_on),
            modified_on: from_millis(self.modified_on),
        })
    }
}

macro_rules! brand_cols {
    () => {
        "id, account_id, legal_name, dba_name, entity_type, ein, country, vertical, website, street, city, \
         state, postal_code, contact_name, contact_email, contact_phone, created_on, modified_on"
    };
}

#[derive(sqlx::FromRow)]
struct CampaignRow {
    id: String,
    account_id: String,
    brand_id: String,
    use_case: String,
    description: String,
    message_flow: String,
    opt_in_message: String,
    opt_out_message: String,
    help_message: String,
    embedded_links: bool,
    embedded_phone: bool,
    state: String,
    reason: Option<String>,
    decided_on: Option<i64>,
    created_on: i64,
    modified_on: i64,
}

impl CampaignRow {
    fn into_model(self, samples: Vec<String>, numbers: Vec<CampaignNumber>) -> Result<TenDlcCampaign> {
        Ok(TenDlcCampaign {
            uuid: uuid(CAMPAIGN, "id", &self.id)?,
            account: uuid(CAMPAIGN, "account_id", &self.account_id)?,
            brand: uuid(CAMPAIGN, "brand_id", &self.brand_id)?,
            state: CampaignState::parse(&self.state).ok_or_else(|| StoreError::Corrupt {
                kind: CAMPAIGN,
                column: "state",
                value: self.state.clone(),
            })?,
            use_case: self.use_case,
            description: self.description,
            message_flow: self.message_flow,
            sample_messages: samples,
            opt_in_message: self.opt_in_message,
            opt_out_message: self.opt_out_message,
            help_message: self.help_message,
            embedded_links: self.embedded_links,
            embedded_phone: self.embedded_phone,
            reason: self.reason,
            decided_on: self.decided_on.map(from_millis),
            numbers,
            created_on: from_millis(self.created_on),
            modified_on: from_millis(self.modified_on),
        })
    }
}

macro_rules! campaign_cols {
    () => {
        "id, account_id, brand_id, use_case, description, message_flow, opt_in_message, opt_out_message, \
         help_message, embedded_links, embedded_phone, state, reason, decided_on, created_on, modified_on"
    };
}

impl Store {
    /// Campaigns with their samples and numbers (one query for each, whatever the count).
    async fn campaigns_whole(&self, rows: Vec<CampaignRow>) -> Result<Vec<TenDlcCampaign>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids = rows.iter().map(|r| uuid(CAMPAIGN, "id", &r.id)).collect::<Result<Vec<_>>>()?;
        let list = id_list(ids);
        let samples_sql = format!(
            "SELECT campaign_id, body FROM tendlc_sample WHERE campaign_id IN ({list}) ORDER BY campaign_id, seq"
        );
        let numbers_sql = format!(
            "SELECT campaign_id, tn, tn_lease_id FROM tendlc_campaign_number WHERE campaign_id IN ({list}) \
             ORDER BY campaign_id, tn"
        );
        let samples: Vec<(String, String)> = with_pool!(self, p => sqlx::query_as(sqlx::AssertSqlSafe(samples_sql.clone())).fetch_all(p).await?);
        let numbers: Vec<(String, i64, String)> = with_pool!(self, p => sqlx::query_as(sqlx::AssertSqlSafe(numbers_sql.clone())).fetch_all(p).await?);
        let mut samples_of: HashMap<String, Vec<String>> = HashMap::new();
        for (id, body) in samples {
            samples_of.entry(id).or_default().push(body);
        }
        let mut numbers_of: HashMap<String, Vec<CampaignNumber>> = HashMap::new();
        for (id, tn, lease) in numbers {
            let tn_lease = uuid(CAMPAIGN, "tn_lease_id", &lease)?;
            numbers_of.entry(id).or_default().push(CampaignNumber { tn, tn_lease });
        }
        rows.into_iter()
            .map(|r| {
                let samples = samples_of.remove(&r.id).unwrap_or_default();
                let numbers = numbers_of.remove(&r.id).unwrap_or_default();
                r.into_model(samples, numbers)
            })
            .collect()
    }

    /// *Unscoped*: a campaign by id.
    async fn load_campaign(&self, id: Uuid) -> Result<Option<TenDlcCampaign>> {
        let row: Option<CampaignRow> = with_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", campaign_cols!(), " FROM tendlc_campaign WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(p)
        .await?);
        Ok(self.campaigns_whole(row.into_iter().collect()).await?.pop())
    }
}

#[async_trait]
impl TenDlcRepo for Store {
    async fn create_brand(&self, account: Uuid, new: NewTenDlcBrand) -> Result<TenDlcBrand> {
        let now = now();
        let b = TenDlcBrand {
            uuid: new_id(),
            account,
            legal_name: new.legal_name,
            dba_name: new.dba_name,
            entity_type: new.entity_type,
            ein: new.ein,
            country: new.country,
            vertical: new.vertical,
            website: new.website,
            street: new.street,
            city: new.city,
            state: new.state,
            postal_code: new.postal_code,
            contact_name: new.contact_name,
            contact_email: new.contact_email,
            contact_phone: new.contact_phone,
            created_on: now,
            modified_on: now,
        };
        with_pool!(self, p => sqlx::query(
            "INSERT INTO tendlc_brand (id, account_id, legal_name, dba_name, entity_type, ein, country, vertical, \
             website, street, city, state, postal_code, contact_name, contact_email, contact_phone, created_on, \
             modified_on) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17)",
        )
        .bind(b.uuid.to_string())
        .bind(account.to_string())
        .bind(&b.legal_name)
        .bind(&b.dba_name)
        .bind(b.entity_type.as_str())
        .bind(&b.ein)
        .bind(&b.country)
        .bind(&b.vertical)
        .bind(&b.website)
        .bind(&b.street)
        .bind(&b.city)
        .bind(&b.state)
        .bind(&b.postal_code)
        .bind(&b.contact_name)
        .bind(&b.contact_email)
        .bind(&b.contact_phone)
        .bind(ms(now))
        .execute(p)
        .await
        .map(|_| ())?);
        Ok(b)
    }

    async fn get_brand(&self, account: Uuid, brand: Uuid) -> Result<Option<TenDlcBrand>> {
        let row: Option<BrandRow> = with_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", brand_cols!(), " FROM tendlc_brand WHERE account_id = $1 AND id = $2"
        ))
        .bind(account.to_string())
        .bind(brand.to_string())
        .fetch_optional(p)
        .await?);
        row.map(BrandRow::into_model).transpose()
    }

    async fn list_brands(&self, account: Uuid, params: ListParams) -> Result<List<TenDlcBrand>> {
        let (total, rows): (i64, Vec<BrandRow>) = with_pool!(self, p => {
            let total = sqlx::query_scalar("SELECT COUNT(*) FROM tendlc_brand WHERE account_id = $1")
                .bind(account.to_string())
                .fetch_one(p)
                .await?;
            let rows = sqlx::query_as(ordered!(
                params.order,
                concat!("SELECT ", brand_cols!(), " FROM tendlc_brand WHERE account_id = $1 ORDER BY created_on"),
                " LIMIT $2 OFFSET $3"
            ))
            .bind(account.to_string())
            .bind(params.limit())
            .bind(params.offset())
            .fetch_all(p)
            .await?;
            (total, rows)
        });
        let data = rows.into_iter().map(BrandRow::into_model).collect::<Result<_>>()?;
        Ok(List { take: params.take, skip: params.skip, total, data })
    }

    async fn create_campaign(&self, account: Uuid, new: NewTenDlcCampaign) -> Result<TenDlcCampaign> {
        if self.get_brand(account, new.brand).await?.is_none() {
            return Err(StoreError::not_found(BRAND, new.brand));
        }
        let now = now();
        let c = TenDlcCampaign {
            uuid: new_id(),
            account,
            brand: new.brand,
            use_case: new.use_case,
            description: new.description,
            message_flow: new.message_flow,
            sample_messages: new.sample_messages,
            opt_in_message: new.opt_in_message,
            opt_out_message: new.opt_out_message,
            help_message: new.help_message,
            embedded_links: new.embedded_links,
            embedded_phone: new.embedded_phone,
            state: CampaignState::Pending,
            reason: None,
            decided_on: None,
            numbers: Vec::new(),
            created_on: now,
            modified_on: now,
        };
        let id = c.uuid.to_string();
        with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            sqlx::query(
                "INSERT INTO tendlc_campaign (id, account_id, brand_id, use_case, description, message_flow, \
                 opt_in_message, opt_out_message, help_message, embedded_links, embedded_phone, state, created_on, \
                 modified_on) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)",
            )
            .bind(&id)
            .bind(account.to_string())
            .bind(c.brand.to_string())
            .bind(&c.use_case)
            .bind(&c.description)
            .bind(&c.message_flow)
            .bind(&c.opt_in_message)
            .bind(&c.opt_out_message)
            .bind(&c.help_message)
            .bind(c.embedded_links)
            .bind(c.embedded_phone)
            .bind(c.state.as_str())
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
            for (seq, body) in c.sample_messages.iter().enumerate() {
                sqlx::query("INSERT INTO tendlc_sample (campaign_id, seq, body) VALUES ($1, $2, $3)")
                    .bind(&id)
                    .bind(i32::try_from(seq).unwrap_or(i32::MAX))
                    .bind(body)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(c)
    }

    async fn get_campaign(&self, account: Uuid, campaign: Uuid) -> Result<Option<TenDlcCampaign>> {
        let row: Option<CampaignRow> = with_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", campaign_cols!(), " FROM tendlc_campaign WHERE account_id = $1 AND id = $2"
        ))
        .bind(account.to_string())
        .bind(campaign.to_string())
        .fetch_optional(p)
        .await?);
        Ok(self.campaigns_whole(row.into_iter().collect()).await?.pop())
    }

    async fn list_campaigns(
        &self,
        account: Uuid,
        filter: CampaignFilter,
        params: ListParams,
    ) -> Result<List<TenDlcCampaign>> {
        let brand = filter.brand.map(|b| b.to_string());
        let state = filter.state.map(CampaignState::as_str);
        let (total, rows): (i64, Vec<CampaignRow>) = with_pool!(self, p => {
            let total = sqlx::query_scalar(
                "SELECT COUNT(*) FROM tendlc_campaign WHERE account_id = $1 \
                 AND ($2 IS NULL OR brand_id = $2) AND ($3 IS NULL OR state = $3)",
            )
            .bind(account.to_string())
            .bind(&brand)
            .bind(state)
            .fetch_one(p)
            .await?;
            let rows = sqlx::query_as(ordered!(
                params.order,
                concat!(
                    "SELECT ", campaign_cols!(), " FROM tendlc_campaign WHERE account_id = $1 \
                     AND ($2 IS NULL OR brand_id = $2) AND ($3 IS NULL OR state = $3) ORDER BY created_on"
                ),
                " LIMIT $4 OFFSET $5"
            ))
            .bind(account.to_string())
            .bind(&brand)
            .bind(state)
            .bind(params.limit())
            .bind(params.offset())
            .fetch_all(p)
            .await?;
            (total, rows)
        });
        let data = self.campaigns_whole(rows).await?;
        Ok(List { take: params.take, skip: params.skip, total, data })
    }

    async fn assign_campaign_numbers(
        &self,
        account: Uuid,
        campaign: Uuid,
        add: &[Uuid],
        remove: &[Uuid],
    ) -> Result<TenDlcCampaign> {
        if self.get_campaign(account, campaign).await?.is_none() {
            return Err(StoreError::not_found(CAMPAIGN, campaign));
        }
        for lease in add {
            self.ensure_live(account, Ref::TnLease, *lease).await?;
        }
        let now = ms(now());
        let (a, c) = (account.to_string(), campaign.to_string());
        with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            for lease in remove {
                let gone = sqlx::query(
                    "DELETE FROM tendlc_campaign_number WHERE account_id = $1 AND campaign_id = $2 AND tn_lease_id = $3",
                )
                .bind(&a)
                .bind(&c)
                .bind(lease.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if gone == 0 {
                    return Err(StoreError::not_found(ObjectKind::TnLease, lease));
                }
            }
            for lease in add {
                let taken: Option<String> = sqlx::query_scalar(
                    "SELECT campaign_id FROM tendlc_campaign_number WHERE tn_lease_id = $1",
                )
                .bind(lease.to_string())
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(other) = taken {
                    return Err(StoreError::Conflict {
                        kind: ObjectKind::TnLease,
                        field: "campaign",
                        value: format!("{lease} in {other}"),
                    });
                }
                sqlx::query(
                    "INSERT INTO tendlc_campaign_number (tn_lease_id, account_id, campaign_id, tn, created_on) \
                     SELECT id, account_id, $3, tn, $4 FROM tn_lease WHERE account_id = $1 AND id = $2",
                )
                .bind(&a)
                .bind(lease.to_string())
                .bind(&c)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| crate::error::conflict_on(e, ObjectKind::TnLease, "campaign", lease))?;
            }
            sqlx::query("UPDATE tendlc_campaign SET modified_on = $3 WHERE account_id = $1 AND id = $2")
                .bind(&a)
                .bind(&c)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        self.get_campaign(account, campaign).await?.ok_or_else(|| StoreError::not_found(CAMPAIGN, campaign))
    }

    async fn campaign_of_lease(&self, account: Uuid, lease: Uuid) -> Result<Option<TenDlcCampaign>> {
        let id: Option<String> = with_pool!(self, p => sqlx::query_scalar(
            "SELECT campaign_id FROM tendlc_campaign_number WHERE account_id = $1 AND tn_lease_id = $2",
        )
        .bind(account.to_string())
        .bind(lease.to_string())
        .fetch_optional(p)
        .await?);
        match id {
            Some(id) => self.get_campaign(account, uuid(CAMPAIGN, "campaign_id", &id)?).await,
            None => Ok(None),
        }
    }

    async fn all_campaigns(
        &self,
        state: Option<CampaignState>,
        params: ListParams,
    ) -> Result<List<TenDlcCampaign>> {
        let state = state.map(CampaignState::as_str);
        let (total, rows): (i64, Vec<CampaignRow>) = with_pool!(self, p => {
            let total = sqlx::query_scalar("SELECT COUNT(*) FROM tendlc_campaign WHERE ($1 IS NULL OR state = $1)")
                .bind(state)
                .fetch_one(p)
                .await?;
            let rows = sqlx::query_as(ordered!(
                params.order,
                concat!(
                    "SELECT ", campaign_cols!(),
                    " FROM tendlc_campaign WHERE ($1 IS NULL OR state = $1) ORDER BY created_on"
                ),
                " LIMIT $2 OFFSET $3"
            ))
            .bind(state)
            .bind(params.limit())
            .bind(params.offset())
            .fetch_all(p)
            .await?;
            (total, rows)
        });
        let data = self.campaigns_whole(rows).await?;
        Ok(List { take: params.take, skip: params.skip, total, data })
    }

    async fn decide_campaign(&self, campaign: Uuid, decision: CampaignDecision) -> Result<TenDlcCampaign> {
        let (state, reason) = match decision {
            CampaignDecision::Approve => (CampaignState::Approved, None),
            CampaignDecision::Reject { reason } => (CampaignState::Rejected, Some(reason)),
        };
        let now = ms(now());
        let done = with_pool!(self, p => sqlx::query(
            "UPDATE tendlc_campaign SET state = $2, reason = $3, decided_on = $4, modified_on = $4 WHERE id = $1",
        )
        .bind(campaign.to_string())
        .bind(state.as_str())
        .bind(&reason)
        .bind(now)
        .execute(p)
        .await?
        .rows_affected());
        if done == 0 {
            return Err(StoreError::not_found(CAMPAIGN, campaign));
        }
        self.load_campaign(campaign).await?.ok_or_else(|| StoreError::not_found(CAMPAIGN, campaign))
    }
}
