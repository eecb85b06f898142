//! SIP connections, SIP domains and SIP users.

use crate::sql::BeginWrite;
use async_trait::async_trait;
use uuid::Uuid;

use super::{Ref, Store, ms, opt_str, opt_uuid, ordered, patch, uuid, with_pool};
use crate::error::{ObjectKind, Result, StoreError, conflict_on};
use crate::id::new_id;
use crate::model::*;
use crate::repo::{List, ListParams, SipConnectionRepo, SipDomainRepo};

#[derive(sqlx::FromRow)]
struct ConnRow {
    id: String,
    account_id: String,
    name: String,
    subdomain: Option<String>,
    ip: Option<String>,
    port: Option<i32>,
    is_active: bool,
    login: Option<String>,
    ha1: Option<String>,
    ha1b: Option<String>,
    outbound_voice_profile_id: Option<String>,
    failover_addresses: String,
    codecs: String,
    ring_timeout_secs: Option<i32>,
    transport_protocol: String,
    encrypted_media: Option<String>,
    created_on: i64,
    modified_on: i64,
    deleted_on: Option<i64>,
}

/// A stored comma-separated list (addresses and codec names have no commas).
fn split_list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect()
}

/// The codecs a connection is offered when it names none, in preference order.
const DEFAULT_CONNECTION_CODECS: [&str; 2] = ["PCMU", "PCMA"];

/// Codecs to store: the given ones, or the default.
fn codecs_or_default(codecs: Vec<String>) -> Vec<String> {
    if codecs.is_empty() { DEFAULT_CONNECTION_CODECS.map(str::to_owned).to_vec() } else { codecs }
}

/// Lists are stored comma-separated: an item with a comma would come back split.
fn check_list(field: &'static str, items: &[String]) -> Result<()> {
    if items.iter().any(|item| item.contains(',') || item.trim().is_empty()) {
        return Err(StoreError::Invalid { field, reason: "items must be non-empty and have no commas" });
    }
    Ok(())
}

impl ConnRow {
    fn into_model(self) -> Result<SipConnection> {
        const K: ObjectKind = ObjectKind::SipConnection;
        Ok(SipConnection {
            uuid: uuid(K, "id", &self.id)?,
            account: uuid(K, "account_id", &self.account_id)?,
            name: self.name,
            subdomain: self.subdomain,
            ip: self.ip,
            port: self.port,
            is_active: self.is_active,
            login: self.login,
            ha1: self.ha1,
            ha1b: self.ha1b,
            outbound_voice_profile: opt_uuid(
                K,
                "outbound_voice_profile_id",
                self.outbound_voice_profile_id.as_deref(),
            )?,
            failover_addresses: split_list(&self.failover_addresses),
            codecs: codecs_or_default(split_list(&self.codecs)),
            ring_timeout_secs: self.ring_timeout_secs,
            transport_protocol: match self.transport_protocol.as_str() {
                "TCP" => SipTransportProtocol::Tcp,
                _ => SipTransportProtocol::Udp,
            },
            encrypted_media: match self.encrypted_media.as_deref() {
                Some("SRTP") => Some(EncryptedMedia::Srtp),
                _ => None,
            },
            created_on: from_millis(self.created_on),
            modified_on: from_millis(self.modified_on),
            deleted_on: self.deleted_on.map(from_millis),
        })
    }
}

macro_rules! conn_cols {
    () => {
        "id, account_id, name, subdomain, ip, port, is_active, login, ha1, ha1b, outbound_voice_profile_id, \
         failover_addresses, codecs, ring_timeout_secs, transport_protocol, encrypted_media, created_on, \
         modified_on, deleted_on"
    };
}

#[derive(sqlx::FromRow)]
struct DomainRow {
    id: String,
    account_id: String,
    name: String,
    app_id: Option<String>,
    event_url: Option<String>,
    created_on: i64,
    modified_on: i64,
    deleted_on: Option<i64>,
}

impl DomainRow {
    fn into_model(self) -> Result<SipDomain> {
        const K: ObjectKind = ObjectKind::SipDomain;
        Ok(SipDomain {
            uuid: uuid(K, "id", &self.id)?,
            account: uuid(K, "account_id", &self.account_id)?,
            name: self.name,
            app: opt_uuid(K, "app_id", self.app_id.as_deref())?,
            event_url: self.event_url,
            created_on: from_millis(self.created_on),
            modified_on: from_millis(self.modified_on),
            deleted_on: self.deleted_on.map(from_millis),
        })
    }
}

macro_rules! domain_cols {
    () => {
        "id, account_id, name, app_id, event_url, created_on, modified_on, deleted_on"
    };
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    account_id: String,
    domain_id: String,
    login: String,
    ha1: String,
    ha1b: String,
    is_active: bool,
    tn_lease_id: Option<String>,
    same_domain_calls_only: bool,
    event_url: Option<String>,
    created_on: i64,
    modified_on: i64,
    deleted_on: Option<i64>,
}

impl UserRow {
    fn into_model(self) -> Result<SipUser> {
        const K: ObjectKind = ObjectKind::SipUser;
        Ok(SipUser {
            uuid: uuid(K, "id", &self.id)?,
            account: uuid(K, "account_id", &self.account_id)?,
            domain: uuid(K, "domain_id", &self.domain_id)?,
            login: self.login,
            ha1: self.ha1,
            ha1b: self.ha1b,
            is_active: self.is_active,
            tn_lease: opt_uuid(K, "tn_lease_id", self.tn_lease_id.as_deref())?,
            same_domain_calls_only: self.same_domain_calls_only,
            event_url: self.event_url,
            created_on: from_millis(self.created_on),
            modified_on: from_millis(self.modified_on),
            deleted_on: self.deleted_on.map(from_millis),
        })
    }
}

macro_rules! user_cols {
    () => {
        "id, account_id, domain_id, login, ha1, ha1b, is_active, tn_lease_id, same_domain_calls_only, \
         event_url, created_on, modified_on, deleted_on"
    };
}

fn check_label(field: &'static str, label: &str) -> Result<()> {
    let ok = !label.is_empty()
        && label.len() <= 63
        && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            field,
            reason: "must be a DNS label: 1-63 of a-z, 0-9 and '-' (not at the ends)",
        })
    }
}

#[async_trait]
impl SipConnectionRepo for Store {
    async fn create_connection(&self, account: Uuid, new: NewSipConnection) -> Result<SipConnection> {
        if let Some(s) = &new.subdomain {
            check_label("subdomain", s)?;
        }
        self.ensure_live_opt(account, Ref::OutboundVoiceProfile, new.outbound_voice_profile).await?;
        check_list("failover_addresses", &new.failover_addresses)?;
        check_list("codecs", &new.codecs)?;
        let now = now();
        let (login, ha1, ha1b) = match new.credentials {
            Some(c) => (Some(c.login), Some(c.ha1), Some(c.ha1b)),
            None => (None, None, None),
        };
        let c = SipConnection {
            uuid: new_id(),
            account,
            name: new.name,
            subdomain: new.subdomain,
            ip: new.ip,
            port: new.port,
            is_active: new.is_active,
            login,
            ha1,
            ha1b,
            outbound_voice_profile: new.outbound_voice_profile,
            failover_addresses: new.failover_addresses,
            codecs: codecs_or_default(new.codecs),
            ring_timeout_secs: new.ring_timeout_secs,
            transport_protocol: new.transport_protocol,
            encrypted_media: new.encrypted_media,
            created_on: now,
            modified_on: now,
            deleted_on: None,
        };
        with_pool!(self, p => sqlx::query(
            "INSERT INTO sip_connection (id, account_id, name, subdomain, ip, port, is_active, login, ha1, ha1b, \
             outbound_voice_profile_id, created_on, modified_on, failover_addresses, codecs, ring_timeout_secs, \
             transport_protocol, encrypted_media) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14, $15, $16, $17)",
        )
        .bind(c.uuid.to_string())
        .bind(account.to_string())
        .bind(&c.name)
        .bind(&c.subdomain)
        .bind(&c.ip)
        .bind(c.port)
        .bind(c.is_active)
        .bind(&c.login)
        .bind(&c.ha1)
        .bind(&c.ha1b)
        .bind(opt_str(c.outbound_voice_profile))
        .bind(ms(now))
        .bind(c.failover_addresses.join(","))
        .bind(c.codecs.join(","))
        .bind(c.ring_timeout_secs)
        .bind(c.transport_protocol.as_str())
        .bind(c.encrypted_media.map(EncryptedMedia::as_str))
        .execute(p)
        .await
        .map(|_| ()))
        .map_err(|e| conflict_on(e, ObjectKind::SipConnection, "subdomain", c.subdomain.as_deref().unwrap_or("")))?;
        Ok(c)
    }

    async fn get_connection(&self, account: Uuid, conn: Uuid) -> Result<Option<SipConnection>> {
        let row: Option<ConnRow> = with_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", conn_cols!(), " FROM sip_connection WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL"
        ))
        .bind(account.to_string())
        .bind(conn.to_string())
        .fetch_optional(p)
        .await?);
        row.map(ConnRow::into_model).transpose()
    }

    async fn list_connections(&self, account: Uuid, params: ListParams) -> Result<List<SipConnection>> {
        let (total, rows): (i64, Vec<ConnRow>) = with_pool!(self, p => {
            let total = sqlx::query_scalar(
                "SELECT COUNT(*) FROM sip_connection WHERE account_id = $1 AND deleted_on IS NULL",
            )
            .bind(account.to_string())
            .fetch_one(p)
            .await?;
            let rows = sqlx::query_as(ordered!(
                params.order,
                concat!(
                    "SELECT ", conn_cols!(),
                    " FROM sip_connection WHERE account_id = $1 AND deleted_on IS NULL ORDER BY created_on"
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
        let data = rows.into_iter().map(ConnRow::into_model).collect::<Result<_>>()?;
        Ok(List { take: params.take, skip: params.skip, total, data })
    }

    async fn update_connection(
        &self,
        account: Uuid,
        conn: Uuid,
        p: SipConnectionPatch,
    ) -> Result<SipConnection> {
        let mut c = self
            .get_connection(account, conn)
            .await?
            .ok_or(StoreError::not_found(ObjectKind::SipConnection, conn))?;
        patch(&mut c.name, p.name);
        patch(&mut c.subdomain, p.subdomain);
        patch(&mut c.ip, p.ip);
        patch(&mut c.port, p.port);
        patch(&mut c.is_active, p.is_active);
        patch(&mut c.outbound_voice_profile, p.outbound_voice_profile);
        patch(&mut c.failover_addresses, p.failover_addresses);
        if let Some(codecs) = p.codecs {
            c.codecs = codecs_or_default(codecs);
        }
        patch(&mut c.ring_timeout_secs, p.ring_timeout_secs);
        patch(&mut c.transport_protocol, p.transport_protocol);
        patch(&mut c.encrypted_media, p.encrypted_media);
        check_list("failover_addresses", &c.failover_addresses)?;
        check_list("codecs", &c.codecs)?;
        if let Some(creds) = p.credentials {
            (c.login, c.ha1, c.ha1b) = match creds {
                Some(d) => (Some(d.login), Some(d.ha1), Some(d.ha1b)),
                None => (None, None, None),
            };
        }
        if let Some(s) = &c.subdomain {
            check_label("subdomain", s)?;
        }
        self.ensure_live_opt(account, Ref::OutboundVoiceProfile, c.outbound_voice_profile).await?;
        c.modified_on = now();
        let done = with_pool!(self, pool => sqlx::query(
            "UPDATE sip_connection SET name = $3, subdomain = $4, ip = $5, port = $6, is_active = $7, login = $8, \
             ha1 = $9, ha1b = $10, outbound_voice_profile_id = $11, modified_on = $12, \
             failover_addresses = $13, codecs = $14, ring_timeout_secs = $15, transport_protocol = $16, \
             encrypted_media = $17 WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL",
        )
        .bind(account.to_string())
        .bind(conn.to_string())
        .bind(&c.name)
        .bind(&c.subdomain)
        .bind(&c.ip)
        .bind(c.port)
        .bind(c.is_active)
        .bind(&c.login)
        .bind(&c.ha1)
        .bind(&c.ha1b)
        .bind(opt_str(c.outbound_voice_profile))
        .bind(ms(c.modified_on))
        .bind(c.failover_addresses.join(","))
        .bind(c.codecs.join(","))
        .bind(c.ring_timeout_secs)
        .bind(c.transport_protocol.as_str())
        .bind(c.encrypted_media.map(EncryptedMedia::as_str))
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))
        .map_err(|e| conflict_on(e, ObjectKind::SipConnection, "subdomain", c.subdomain.as_deref().unwrap_or("")))?;
        if done == 0 { Err(StoreError::not_found(ObjectKind::SipConnection, conn)) } else { Ok(c) }
    }

    async fn delete_connection(&self, account: Uuid, conn: Uuid) -> Result<()> {
        let now = ms(now());
        let done = with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            let done = sqlx::query(
                "UPDATE sip_connection SET deleted_on = $3, modified_on = $3 \
                 WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL",
            )
            .bind(account.to_string())
            .bind(conn.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(
                "UPDATE tn_lease SET sip_connection_id = NULL, modified_on = $3 \
                 WHERE account_id = $1 AND sip_connection_id = $2",
            )
            .bind(account.to_string())
            .bind(conn.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            done
        });
        if done == 0 { Err(StoreError::not_found(ObjectKind::SipConnection, conn)) } else { Ok(()) }
    }

    async fn connections_by_ip(&self, ip: &str) -> Result<Vec<SipConnection>> {
        // A failover address is the PBX too: it is stored `ip:port` (`[v6]:port`) in a
        // comma-separated list, so `,<ip>:` (`,[<v6>]:`) finds it. An address is digits, hex,
        // dots and colons: nothing LIKE would read as a wildcard; anything else matches none.
        let failover = if !ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':') {
            String::new()
        } else if ip.contains(':') {
            format!("%,[{ip}]:%")
        } else {
            format!("%,{ip}:%")
        };
        let rows: Vec<ConnRow> = with_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", conn_cols!(),
            " FROM sip_connection WHERE (ip = $1 OR ',' || failover_addresses || ',' LIKE $2) \
             AND is_active = TRUE AND deleted_on IS NULL ORDER BY created_on, id"
        ))
        .bind(ip)
        .bind(failover)
        .fetch_all(p)
        .await?);
        rows.into_iter().map(ConnRow::into_model).collect()
    }

    async fn connection_by_subdomain(&self, subdomain: &str) -> Result<Option<SipConnection>> {
        let row: Option<ConnRow> = with_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", conn_cols!(),
            " FROM sip_connection WHERE subdomain = $1 AND is_active = TRUE AND deleted_on IS NULL"
        ))
        .bind(subdomain)
        .fetch_optional(p)
        .await?);
        row.map(ConnRow::into_model).transpose()
    }
}

#[async_trait]
impl SipDomainRepo for Store {
    async fn create_domain(&self, account: Uuid, new: NewSipDomain) -> Result<SipDomain> {
        check_label("name", &new.name)?;
        self.ensure_live_opt(account, Ref::SipControlApp, new.app).await?;
        let now = now();
        let d = SipDomain {
            uuid: new_id(),
            account,
            name: new.name,
            app: new.app,
            event_url: new.event_url,
            created_on: now,
            modified_on: now,
            deleted_on: None,
        };
        with_pool!(self, p => sqlx::query(
            "INSERT INTO sip_domain (id, account_id, name, app_id, created_on, modified_on, event_url) \
             VALUES ($1, $2, $3, $4, $5, $5, $6)",
        )
        .bind(d.uuid.to_string())
        .bind(account.to_string())
        .bind(&d.name)
        .bind(opt_str(d.app))
        .bind(ms(now))
        .bind(&d.event_url)
        .execute(p)
        .await
        .map(|_| ()))
        .map_err(|e| conflict_on(e, ObjectKind::SipDomain, "name", &d.name))?;
        Ok(d)
    }

    async fn get_domain(&self, account: Uuid, domain: Uuid) -> Result<Option<SipDomain>> {
        let row: Option<DomainRow> = with_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", domain_cols!(), " FROM sip_domain WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL"
        ))
        .bind(account.to_string())
        .bind(domain.to_string())
        .fetch_optional(p)
        .await?);
        row.map(DomainRow::into_model).transpose()
    }

    async fn list_domains(&self, account: Uuid, params: ListParams) -> Result<List<SipDomain>> {
        let (total, rows): (i64, Vec<DomainRow>) = with_pool!(self, p => {
            let total = sqlx::query_scalar(
                "SELECT COUNT(*) FROM sip_domain WHERE account_id = $1 AND deleted_on IS NULL",
            )
            .bind(account.to_string())
            .fetch_one(p)
            .await?;
            let rows = sqlx::query_as(ordered!(
                params.order,
                concat!(
                    "SELECT ", domain_cols!(),
                    " FROM sip_domain WHERE account_id = $1 AND deleted_on IS NULL ORDER BY created_on"
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
        let data = rows.into_iter().map(DomainRow::into_model).collect::<Result<_>>()?;
        Ok(List { take: params.take, skip: params.skip, total, data })
    }

    async fn update_domain(&self, account: Uuid, domain: Uuid, p: SipDomainPatch) -> Result<SipDomain> {
        let mut d = self
            .get_domain(account, domain)
            .await?
            .ok_or(StoreError::not_found(ObjectKind::SipDomain, domain))?;
        patch(&mut d.app, p.app);
        patch(&mut d.event_url, p.event_url);
        self.ensure_live_opt(account, Ref::SipControlApp, d.app).await?;
        d.modified_on = now();
        let done = with_pool!(self, pool => sqlx::query(
            "UPDATE sip_domain SET app_id = $3, modified_on = $4, event_url = $5 \
             WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL",
        )
        .bind(account.to_string())
        .bind(domain.to_string())
        .bind(opt_str(d.app))
        .bind(ms(d.modified_on))
        .bind(&d.event_url)
        .execute(pool)
        .await?
        .rows_affected());
        if done == 0 { Err(StoreError::not_found(ObjectKind::SipDomain, domain)) } else { Ok(d) }
    }

    async fn delete_domain(&self, account: Uuid, domain: Uuid) -> Result<()> {
        let now = ms(now());
        let done = with_pool!(self, p => {
            let mut tx = p.begin_write().await?;
            let done = sqlx::query(
                "UPDATE sip_domain SET deleted_on = $3, modified_on = $3 \
                 WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL",
            )
            .bind(account.to_string())
            .bind(domain.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(
                "UPDATE sip_user SET deleted_on = $3, modified_on = $3 \
                 WHERE account_id = $1 AND domain_id = $2 AND deleted_on IS NULL",
            )
            .bind(account.to_string())
            .bind(domain.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            done
        });
        if done == 0 { Err(StoreError::not_found(ObjectKind::SipDomain, domain)) } else { Ok(()) }
    }

    async fn domain_by_name(&self, name: &str) -> Result<Option<SipDomain>> {
        let row: Option<DomainRow> = with_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", domain_cols!(), " FROM sip_domain WHERE name = $1 AND deleted_on IS NULL"
        ))
        .bind(name)
        .fetch_optional(p)
        .await?);
        row.map(DomainRow::into_model).transpose()
    }

    async fn create_sip_user(&self, account: Uuid, domain: Uuid, new: NewSipUser) -> Result<SipUser> {
        self.ensure_live(account, Ref::SipDomain, domain).await?;
        self.ensure_live_opt(account, Ref::TnLease, new.tn_lease).await?;
        if new.credentials.login.is_empty() {
            return Err(StoreError::Invalid { field: "login", reason: "must not be empty" });
        }
        let now = now();
        let u = SipUser {
            uuid: new_id(),
            account,
            domain,
            login: new.credentials.login,
            ha1: new.credentials.ha1,
            ha1b: new.credentials.ha1b,
            is_active: new.is_active,
            tn_lease: new.tn_lease,
            same_domain_calls_only: new.same_domain_calls_only,
            event_url: new.event_url,
            created_on: now,
            modified_on: now,
            deleted_on: None,
        };
        with_pool!(self, p => sqlx::query(
            "INSERT INTO sip_user (id, account_id, domain_id, login, ha1, ha1b, is_active, tn_lease_id, \
             created_on, modified_on, same_domain_calls_only, event_url) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11)",
        )
        .bind(u.uuid.to_string())
        .bind(account.to_string())
        .bind(domain.to_string())
        .bind(&u.login)
        .bind(&u.ha1)
        .bind(&u.ha1b)
        .bind(u.is_active)
        .bind(opt_str(u.tn_lease))
        .bind(ms(now))
        .bind(u.same_domain_calls_only)
        .bind(&u.event_url)
        .execute(p)
        .await
        .map(|_| ()))
        .map_err(|e| conflict_on(e, ObjectKind::SipUser, "login", &u.login))?;
        Ok(u)
    }

    async fn get_sip_user(&self, account: Uuid, user: Uuid) -> Result<Option<SipUser>> {
        let row: Option<UserRow> = with_pool!(self, p => sqlx::query_as(concat!(
            "SELECT ", user_cols!(), " FROM sip_user WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL"
        ))
        .bind(account.to_string())
        .bind(user.to_string())
        .fetch_optional(p)
        .await?);
        row.map(UserRow::into_model).transpose()
    }

    async fn list_sip_users(&self, account: Uuid, domain: Uuid, params: ListParams) -> Result<List<SipUser>> {
        self.ensure_live(account, Ref::SipDomain, domain).await?;
        let (total, rows): (i64, Vec<UserRow>) = with_pool!(self, p => {
            let total = sqlx::query_scalar(
                "SELECT COUNT(*) FROM sip_user WHERE account_id = $1 AND domain_id = $2 AND deleted_on IS NULL",
            )
            .bind(account.to_string())
            .bind(domain.to_string())
            .fetch_one(p)
            .await?;
            let rows = sqlx::query_as(ordered!(
                params.order,
                concat!(
                    "SELECT ", user_cols!(),
                    " FROM sip_user WHERE account_id = $1 AND domain_id = $2 AND deleted_on IS NULL ORDER BY created_on"
                ),
                " LIMIT $3 OFFSET $4"
            ))
            .bind(account.to_string())
            .bind(domain.to_string())
            .bind(params.limit())
            .bind(params.offset())
            .fetch_all(p)
            .await?;
            (total, rows)
        });
        let data = rows.into_iter().map(UserRow::into_model).collect::<Result<_>>()?;
        Ok(List { take: params.take, skip: params.skip, total, data })
    }

    async fn update_sip_user(&self, account: Uuid, user: Uuid, p: SipUserPatch) -> Result<SipUser> {
        let mut u = self
            .get_sip_user(account, user)
            .await?
            .ok_or(StoreError::not_found(ObjectKind::SipUser, user))?;
        if let Some(c) = p.credentials {
            if c.login != u.login {
                return Err(StoreError::Invalid {
                    field: "login",
                    reason: "cannot be changed; create a new user",
                });
            }
            u.ha1 = c.ha1;
            u.ha1b = c.ha1b;
        }
        patch(&mut u.is_active, p.is_active);
        patch(&mut u.tn_lease, p.tn_lease);
        patch(&mut u.same_domain_calls_only, p.same_domain_calls_only);
        patch(&mut u.event_url, p.event_url);
        self.ensure_live_opt(account, Ref::TnLease, u.tn_lease).await?;
        u.modified_on = now();
        let done = with_pool!(self, pool => sqlx::query(
            "UPDATE sip_user SET ha1 = $3, ha1b = $4, is_active = $5, tn_lease_id = $6, modified_on = $7, \
             same_domain_calls_only = $8, event_url = $9 \
             WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL",
        )
        .bind(account.to_string())
        .bind(user.to_string())
        .bind(&u.ha1)
        .bind(&u.ha1b)
        .bind(u.is_active)
        .bind(opt_str(u.tn_lease))
        .bind(ms(u.modified_on))
        .bind(u.same_domain_calls_only)
        .bind(&u.event_url)
        .execute(pool)
        .await?
        .rows_affected());
        if done == 0 { Err(StoreError::not_found(ObjectKind::SipUser, user)) } else { Ok(u) }
    }

    async fn delete_sip_user(&self, account: Uuid, user: Uuid) -> Result<()> {
        let done = with_pool!(self, p => sqlx::query(
            "UPDATE sip_user SET deleted_on = $3, modified_on = $3 \
             WHERE account_id = $1 AND id = $2 AND deleted_on IS NULL",
        )
        .bind(account.to_string())
        .bind(user.to_string())
        .bind(ms(now()))
        .execute(p)
        .await?
        .rows_affected());
        if done == 0 { Err(StoreError::not_found(ObjectKind::SipUser, user)) } else { Ok(()) }
    }

    async fn sip_user_by_login(&self, domain_name: &str, login: &str) -> Result<Option<SipUser>> {
        let row: Option<UserRow> = with_pool!(self, p => sqlx::query_as(
            "SELECT u.id, u.account_id, u.domain_id, u.login, u.ha1, u.ha1b, u.is_active, u.tn_lease_id, \
             u.same_domain_calls_only, u.event_url, u.created_on, u.modified_on, u.deleted_on FROM sip_user u JOIN sip_domain d ON d.id = u.domain_id \
             WHERE d.name = $1 AND d.deleted_on IS NULL AND u.login = $2 AND u.deleted_on IS NULL",
        )
        .bind(domain_name)
        .bind(login)
        .fetch_optional(p)
        .await?);
        row.map(UserRow::into_model).transpose()
    }

    async fn sip_user_by_ha1b(&self, ha1b: &str) -> Result<Option<SipUser>> {
        let row: Option<UserRow> = with_pool!(self, p => sqlx::query_as(
            "SELECT u.id, u.account_id, u.domain_id, u.login, u.ha1, u.ha1b, u.is_active, u.tn_lease_id, \
             u.same_domain_calls_only, u.event_url, u.created_on, u.modified_on, u.deleted_on FROM sip_user u JOIN sip_domain d ON d.id = u.domain_id \
             WHERE u.ha1b = $1 AND u.deleted_on IS NULL AND u.is_active AND d.deleted_on IS NULL \
             ORDER BY u.created_on, u.id LIMIT 1",
        )
        .bind(ha1b.to_ascii_lowercase())
        .fetch_optional(p)
        .await?);
        row.map(UserRow::into_model).transpose()
    }

    async fn sip_user_of_lease(&self, account: Uuid, lease: Uuid) -> Result<Option<(String, SipUser)>> {
        let row: Option<(String, UserRow)> = with_pool!(self, p => {
            let row: Option<UserRowWithDomain> = sqlx::query_as(
                "SELECT d.name AS domain_name, u.id, u.account_id, u.domain_id, u.login, u.ha1, u.ha1b, \
                 u.is_active, u.tn_lease_id, u.same_domain_calls_only, u.event_url, u.created_on, u.modified_on, \
                 u.deleted_on \
                 FROM sip_user u JOIN sip_domain d ON d.id = u.domain_id \
                 WHERE u.account_id = $1 AND u.tn_lease_id = $2 AND u.deleted_on IS NULL AND u.is_active \
                 AND d.deleted_on IS NULL ORDER BY u.created_on, u.id LIMIT 1",
            )
            .bind(account.to_string())
            .bind(lease.to_string())
            .fetch_optional(p)
            .await?;
            row.map(|r| (r.domain_name, r.user))
        });
        row.map(|(domain, user)| Ok((domain, user.into_model()?))).transpose()
    }
}

/// A user row with its domain's name (`sip_user_of_lease`).
#[derive(sqlx::FromRow)]
struct UserRowWithDomain {
    domain_name: String,
    #[sqlx(flatten)]
    user: UserRow,
}
