//! SIP Control Apps and their component versions.

use crate::sql::BeginWrite;
use async_trait::async_trait;
use uuid::Uuid;

use super::{Store, ms, opt_uuid, ordered, patch, uuid, with_pool};
use crate::error::{ObjectKind, Result, StoreError};
use crate::model::*;
use crate::repo::{List, ListParams, SipControlAppRepo};
use crate::secret;

/// How often an upload that lost a race for its version number is tried again.
const MAX_VERSION_ATTEMPTS: u32 = 5;

#[derive(sqlx::FromRow)]
struct AppRow {
    id: String,
    account_id: String,
    name: String,
    mode: String,
    xml_document: Option<String>,
    webhook_url: Option<String>,
    webhook_method: Option<String>,
    webhook_timeout_ms: Option<i64>,
    auto_answer: bool,
    max_call_length_min: i32,
    event_url: Option<String>,
    current_component_id: Option<String>,
    shaken_verify_policy: Option<String>,
    shaken_minimum_accepted_attest_lvl: Option<String>,
    created_on: i64,
    modified_on: i64,
    deleted_on: Option<i64>,
}

impl AppRow {
    fn into_model(self) -> Result<SipControlApp> {
        const K: ObjectKind = ObjectKind::SipControlApp;
        let corrupt = |column, value: &str| StoreError::Corrupt { kind: K, column, value: value.to_owned() };
        let mode = match self.mode.as_str() {
            "xml" => AppMode::Xml { document: self.xml_document.ok_or(corrupt("xml_document", "NULL"))? },
            "webhook" => {
                let method = self.webhook_method.as_deref().unwrap_or("NULL");
                AppMode::Webhook {
                    url: self.webhook_url.ok_or(corrupt("webhook_url", "NULL"))?,
                    method: WebhookMethod::parse(method).ok_or(corrupt("webhook_method", method))?,
                    timeout_ms: self.webhook_timeout_ms.ok_or(corrupt("webhook_timeout_ms", "NULL"))?,
                }
            }
            "async" => AppMode::Async,
            "component" => AppMode::Component,
            other => return Err(corrupt("mode", other)),
        };
        let shaken = AppShaken {
            shaken_verify_policy: match self.shaken_verify_policy.as_deref() {
                Some(policy) => {
                    Some(ShakenVerifyPolicy::parse(policy).ok_or(corrupt("shaken_verify_policy", policy))?)
                }
                None => None,
            },
            shaken_minimum_accepted_attest_lvl: match self.shaken_minimum_accepted_attest_lvl.as_deref() {
                Some(level) => Some(
                    AttestLevel::parse(level).ok_or(corrupt("shaken_minimum_accepted_attest_lvl", level))?,
                ),
                None => None,
            },
        };
        Ok(SipControlApp {
            uuid: uuid(K, "id", &self.id)?,
            account: uuid(K, "account_id", &self.account_id)?,
            name: self.name,
            mode,
            auto_answer: self.auto_answer,
            max_call_length_min: self.max_call_length_min,
            event_url: self.event_url,
            shaken,
            current_component: opt_uuid(K, "current_component_id", self.current_component_id.as_deref())?,
            created_on: from_millis(self.created_on),
            modified_on: from_millis(self.modified_on),
            deleted_on: self.deleted_on.map(from_millis),
        })
    }
}

macro_rules! app_cols {
    () => {
        "id, account_id, name, mode, xml_document, webhook_url, webhook_method, webhook_timeout_ms, \
         auto_answer, max_call_length_min, event_url, current_component_id, shaken_verify_policy, \
         shaken_minimum_accepted_attest_lvl, created_on, modified_on, deleted_on"
    };
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    id: String,
    account_id: String,
    app_id: String,
    version: i32,
    sha256: String,
    size: i64,
    created_on: i64,
}

impl VersionRow {
    fn into_model(self) -> Result<ComponentVersion> {
        const K: ObjectKind = ObjectKind::ComponentVersion;
        Ok(ComponentVersion {
            uuid: uuid(K, "id", &self.id)?,
            account: uuid(K, "account_id", &self.account_id)?,
            app: uuid(K, "app_id", &self.app_id)?,
            version: self.version,
            sha256: self.sha256,
            size: self.size,
            created_on: from_millis(self.created_on),
        })
    }
}

/// The mode's columns: (document, url, method, timeout).
fn mode_columns(mode: &AppMode) -> (Option<&str>, Option<&str>, Option<&'static str>, Option<i64>) {
    match mode {
        AppMode::Xml { document } => (Some(document), None, None, None),
        AppMode::Webhook { url, method, timeout_ms } => {
            (None, Some(url), Some(method.as_str()), Some(*timeout_ms))
        }
        AppMode::Async | AppMode::Component => (None, None, None, None),
    }
}

fn check_app(max_call_length_min: i32, mode: &AppMode) -> Result<()> {
    if max_call_length_min <= 0 {
        return Err(StoreError::Invalid { field: "max_call_length_min", reason: "must be at least 1" });
    }
    if let AppMode::Webhook { timeout_ms, .. } = mode
        && *timeout_ms <= 0
    {
        return Err(StoreError::Invalid {
            field: "webhook_request_timeout",
            reason: "must be a positive duration",
        });
    }
    Ok(())
}

#[async_trait]
impl SipControlAppRepo for Store {
    async fn create_app(&self, account: Uuid, new: NewSipControlApp) -> Result<SipControlApp> {
        check_app(new.max_call_length_min, &new.mode)?;
        let now = now();
        let app = SipControlApp {
            uuid: Uuid::new_v4(),
            account,
            name: new.name,
            mode: new.mode,
            auto_answer: new.auto_answer,
            max_call_length_min: new.max_call_length_min,
            event_url: new.event_url,
            shaken: new.shaken,
            current_component: None,
            created_on: now,
            modified_on: now,
            deleted_on: None,
        };
        let (doc, url, method, timeout) = mode_columns(&app.mode);
        with_pool!(self, p => sqlx::query(
            "INSERT INTO sip_control_app (id, account_id, name, mode, xml_document, webhook_url, webhook_method, \
             webhook_timeout_ms, auto_answer, max_call_length_min, event_url, created_on, modified_on, \
             shaken_verify_policy, shaken_minimum_accepted_attest_lvl) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14)",
        )
        .bind(app.uuid.to_string())
        .bind(account.to_string())
        .bind(&app.name)
        .bind(app.mode.tag())
        .bind(doc)
        .bind(url)
        .bind(method)
        .bind(timeout)
        .bind(app.auto_answer)
        .bind(app.max_call_length_min)
        .bind(&app.event_url)
        .bind(ms(now))
        .bind(app.shaken.shaken_verify_policy.map(ShakenVerifyPolicy::as_str))
        .bind(app.shaken.shaken_minimum_accepted_attest_lvl.map(AttestLevel::as_str))
        .execute(p)
        .await
        .map(|_| ())?);
        Ok(app)
    }

    async fn get_app(&self, account: Uuid, app: Uuid) -> Result<Option<SipControlApp>> {
        let row: Option<AppRow> = with_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", app_cols!(), " FROM sip_control_app WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL"
        ))
        .bind(account.to_string())
        .bind(app.to_string())
        .fetch_optional(p)
        .await?);
        row.map(AppRow::into_model).transpose()
    }

    async fn list_apps(&self, account: Uuid, params: ListParams) -> Result<List<SipControlApp>> {
        let (total, rows): (i64, Vec<AppRow>) = with_pool!(self, p => {
            let total = sqlx::query_scalar(
                "SELECT COUNT(*) FROM sip_control_app WHERE account_id = $1 AND deleted_on IS NULL",
            )
            .bind(account.to_string())
            .fetch_one(p)
            .await?;
            let rows = sqlx::query_as(ordered!(
                params.order,
                concat!(
                    "SELECT ", app_cols!(),
                    " FROM sip_control_app WHERE account_id = $1 AND deleted_on IS NULL ORDER BY created_on"
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
        let data = rows.into_iter().map(AppRow::into_model).collect::<Result<_>>()?;
        Ok(List { take: params.take, skip: params.skip, total, data })
    }

    async fn update_app(&self, account: Uuid, app: Uuid, p: SipControlAppPatch) -> Result<SipControlApp> {
        let mut a =
            self.get_app(account, app).await?.ok_or(StoreError::not_found(ObjectKind::SipControlApp, app))?;
        patch(&mut a.name, p.name);
        patch(&mut a.mode, p.mode);
        patch(&mut a.auto_answer, p.auto_answer);
        patch(&mut a.max_call_length_min, p.max_call_length_min);
        patch(&mut a.event_url, p.event_url);
        patch(&mut a.shaken.shaken_verify_policy, p.shaken_verify_policy);
        patch(&mut a.shaken.shaken_minimum_accepted_attest_lvl, p.shaken_minimum_accepted_attest_lvl);
        check_app(a.max_call_length_min, &a.mode)?;
        a.modified_on = now();
        let (doc, url, method, timeout) = mode_columns(&a.mode);
        let done = with_pool!(self, pool => sqlx::query(
            "UPDATE sip_control_app SET name = $3, mode = $4, xml_document = $5, webhook_url = $6, \
             webhook_method = $7, webhook_timeout_ms = $8, auto_answer = $9, max_call_length_min = $10, \
             event_url = $11, modified_on = $12, shaken_verify_policy = $13, \
             shaken_minimum_accepted_attest_lvl = $14 WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL",
        )
        .bind(account.to_string())
        .bind(app.to_string())
        .bind(&a.name)
        .bind(a.mode.tag())
        .bind(doc)
        .bind(url)
        .bind(method)
        .bind(timeout)
        .bind(a.auto_answer)
        .bind(a.max_call_length_min)
        .bind(&a.event_url)
        .bind(ms(a.modified_on))
        .bind(a.shaken.shaken_verify_policy.map(ShakenVerifyPolicy::as_str))
        .bind(a.shaken.shaken_minimum_accepted_attest_lvl.map(AttestLevel::as_str))
        .execute(pool)
        .await?
        .rows_affected());
        if done == 0 { Err(StoreError::not_found(ObjectKind::SipControlApp, app)) } else { Ok(a) }
    }

    async fn delete_app(&self, account: Uuid, app: Uuid) -> Result<()> {
        let now = ms(now());
        let done = with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            let done = sqlx::query(
                "UPDATE sip_control_app SET deleted_on = $3, modified_on = $3 \
                 WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL",
            )
            .bind(account.to_string())
            .bind(app.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(
                "UPDATE tn_lease SET sip_control_app_id = NULL, modified_on = $3 \
                 WHERE account_id = $1 AND sip_control_app_id = $2",
            )
            .bind(account.to_string())
            .bind(app.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE sip_domain SET app_id = NULL, modified_on = $3 WHERE account_id = $1 AND app_id = $2",
            )
            .bind(account.to_string())
            .bind(app.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            done
        });
        if done == 0 { Err(StoreError::not_found(ObjectKind::SipControlApp, app)) } else { Ok(()) }
    }

    async fn add_component_version_within(
        &self,
        account: Uuid,
        app: Uuid,
        bytes: &[u8],
        max_versions: u32,
    ) -> Result<Option<ComponentVersion>> {
        self.ensure_live(account, super::Ref::SipControlApp, app).await?;
        let now = now();
        let mut v = ComponentVersion {
            uuid: Uuid::new_v4(),
            account,
            app,
            version: 0,
            sha256: secret::sha256_hex(bytes),
            size: bytes.len() as i64,
            created_on: now,
        };
        // The count, the next number and the insert are one statement: a write that SQLite runs
        // under its write lock, and that PostgreSQL runs on one snapshot — two uploads racing
        // there read the same MAX(version) and the second fails on UNIQUE (app_id, version), to
        // be tried again against the first one's row (so the quota holds, and an upload under
        // it is not refused for the race).
        let mut attempts = 0;
        let version = loop {
            attempts += 1;
            let added = with_pool!(self, p => {
                let mut tx = p.begin_write().await?;
                let inserted = sqlx::query(
                    "INSERT INTO component_version (id, account_id, app_id, version, sha256, size, bytes, created_on) \
                     SELECT $1, $2, $3, COALESCE(MAX(version), 0) + 1, $4, $5, $6, $7 FROM component_version \
                     WHERE app_id = $3 HAVING COUNT(*) < $8",
                )
                .bind(v.uuid.to_string())
                .bind(account.to_string())
                .bind(app.to_string())
                .bind(&v.sha256)
                .bind(v.size)
                .bind(bytes)
                .bind(ms(now))
                .bind(i64::from(max_versions))
                .execute(&mut *tx)
                .await
                .map_err(|e| crate::error::conflict_on(e, ObjectKind::ComponentVersion, "version", "next"));
                match inserted {
                    Ok(done) if done.rows_affected() == 0 => Ok(None),
                    Ok(_) => {
                        let version: i32 = sqlx::query_scalar("SELECT version FROM component_version WHERE id = $1")
                            .bind(v.uuid.to_string())
                            .fetch_one(&mut *tx)
                            .await?;
                        sqlx::query(
                            "UPDATE sip_control_app SET current_component_id = $3, modified_on = $4 \
                             WHERE account_id = $1 AND id = $2",
                        )
                        .bind(account.to_string())
                        .bind(app.to_string())
                        .bind(v.uuid.to_string())
                        .bind(ms(now))
                        .execute(&mut *tx)
                        .await?;
                        tx.commit().await?;
                        Ok(Some(version))
                    }
                    Err(error) => Err(error),
                }
            });
            match added {
                Err(StoreError::Conflict { .. }) if attempts < MAX_VERSION_ATTEMPTS => continue,
                other => break other?,
            }
        };
        Ok(version.map(|version| {
            v.version = version;
            v
        }))
    }

    async fn list_component_versions(&self, account: Uuid, app: Uuid) -> Result<Vec<ComponentVersion>> {
        self.ensure_live(account, super::Ref::SipControlApp, app).await?;
        let rows: Vec<VersionRow> = with_pool!(self, p => sqlx::query_as(
            "SELECT id, account_id, app_id, version, sha256, size, created_on FROM component_version \
             WHERE account_id = $1 AND app_id = $2 ORDER BY version DESC",
        )
        .bind(account.to_string())
        .bind(app.to_string())
        .fetch_all(p)
        .await?);
        rows.into_iter().map(VersionRow::into_model).collect()
    }

    async fn component_bytes(&self, account: Uuid, version: Uuid) -> Result<Option<Vec<u8>>> {
        Ok(with_pool!(self, p => sqlx::query_scalar(
            "SELECT v.bytes FROM component_version v JOIN sip_control_app a ON a.id = v.app_id \
             WHERE v.account_id = $1 AND v.id = $2 AND a.deleted_on IS NULL",
        )
        .bind(account.to_string())
        .bind(version.to_string())
        .fetch_optional(p)
        .await?))
    }

    async fn set_current_component(&self, account: Uuid, app: Uuid, version: Uuid) -> Result<SipControlApp> {
        let done = with_pool!(self, p => sqlx::query(
            "UPDATE sip_control_app SET current_component_id = $3, modified_on = $4 \
             WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL \
             AND EXISTS (SELECT 1 FROM component_version v WHERE v.id = $3 AND v.app_id = $2)",
        )
        .bind(account.to_string())
        .bind(app.to_string())
        .bind(version.to_string())
        .bind(ms(now()))
        .execute(p)
        .await?
        .rows_affected());
        if done == 0 {
            self.ensure_live(account, super::Ref::SipControlApp, app).await?;
            return Err(StoreError::not_found(ObjectKind::ComponentVersion, version));
        }
        self.get_app(account, app).await?.ok_or(StoreError::not_found(ObjectKind::SipControlApp, app))
    }

    async fn delete_component_version(&self, account: Uuid, app: Uuid, version: Uuid) -> Result<()> {
        self.ensure_live(account, super::Ref::SipControlApp, app).await?;
        // One statement: the version is deleted only while it is not the app's current one.
        let done = with_pool!(self, p => sqlx::query(
            "DELETE FROM component_version WHERE account_id = $1 AND app_id = $2 AND id = $3 \
             AND NOT EXISTS (SELECT 1 FROM sip_control_app a WHERE a.id = $2 AND a.current_component_id = $3)",
        )
        .bind(account.to_string())
        .bind(app.to_string())
        .bind(version.to_string())
        .execute(p)
        .await?
        .rows_affected());
        if done > 0 {
            return Ok(());
        }
        let listed = self.list_component_versions(account, app).await?;
        if listed.iter().any(|v| v.uuid == version) {
            return Err(StoreError::WrongState {
                kind: ObjectKind::ComponentVersion,
                id: version.to_string(),
                state: "the app's current version",
                reason: "calls run it; deploy another version first",
            });
        }
        Err(StoreError::not_found(ObjectKind::ComponentVersion, version))
    }
}
