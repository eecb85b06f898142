//! SIP domains and their users: `GET/POST /rest/sip/domain`,
//! `GET/PATCH/DELETE /rest/sip/domain/{domain}`, `GET/POST /rest/sip/domain/{domain}/user`,
//! `GET/PATCH/DELETE /rest/sip/domain/{domain}/user/{uuid}`. `{domain}` is the domain's uuid or
//! its name (the label under the platform SIP domain).
//!
//! A domain `acme` is `acme.<platform SIP domain>`; its users register and are called as
//! `login@acme.<platform SIP domain>`, and their passwords are hashed at once in that realm
//! (HA1, HA1B) and never shown again. A user's `state` is `online` while it has a live
//! registration.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use opentact_store::{
    NewSipDomain, NewSipUser, ObjectKind, SipDomain, SipDomainPatch, SipUser, SipUserPatch,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::AuthAccount;
use crate::envelope::{
    ApiJson, ApiQuery, Created, Page, Paging, Payload, SegmentPath, SegmentsPath, parse_id,
};
use crate::error::ApiError;
use crate::openapi as doc;
use crate::routes::lease::nullable;
use crate::routes::sip_connection::{Deleted, check_label, check_login, check_password};
use crate::state::ApiState;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/rest/sip/domain", get(list).post(create))
        .route("/rest/sip/domain/{domain}", get(get_one).patch(update).delete(remove))
        .route("/rest/sip/domain/{domain}/user", get(users).post(create_user))
        .route("/rest/sip/domain/{domain}/user/{uuid}", get(get_user).patch(update_user).delete(remove_user))
}

/// A domain as the API shows it, with its full name.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DomainView {
    #[serde(flatten)]
    pub domain: SipDomain,
    /// `<name>.<platform SIP domain>`: where users register, and their digest realm.
    pub sip_domain: String,
}

fn full_name(state: &ApiState, domain: &SipDomain) -> String {
    format!("{}.{}", domain.name, state.sip_domain)
}

fn view(state: &ApiState, domain: SipDomain) -> DomainView {
    DomainView { sip_domain: full_name(state, &domain), domain }
}

/// Whether a user is reachable now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    Online,
    Offline,
}

/// A user as the API shows it: the stored object, its address and its registration state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    #[serde(flatten)]
    pub user: SipUser,
    /// `login@<domain>.<platform SIP domain>`.
    pub address: String,
    pub state: Presence,
}

fn user_view(state: &ApiState, domain: &str, user: SipUser) -> UserView {
    let online = state.presence.as_ref().is_some_and(|p| p.is_online(domain, &user.login));
    UserView {
        address: format!("{}@{domain}", user.login),
        state: if online { Presence::Online } else { Presence::Offline },
        user,
    }
}

/// The account's domain named by `raw` (uuid or name); 404 otherwise.
async fn domain_of(state: &ApiState, account: Uuid, raw: &str) -> Result<SipDomain, ApiError> {
    let found = match Uuid::parse_str(raw) {
        Ok(id) => state.repo.get_domain(account, id).await?,
        Err(_) => {
            state.repo.domain_by_name(&raw.to_ascii_lowercase()).await?.filter(|d| d.account == account)
        }
    };
    found.ok_or(ApiError::NotFound { kind: ObjectKind::SipDomain.as_str(), id: raw.to_owned() })
}

#[utoipa::path(
    get,
    operation_id = "sip_domain_list",
    path = "/rest/sip/domain",
    tag = "sip_domain",
    summary = "The account's SIP domains",
    params(crate::envelope::Paging),
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<DomainView>>), doc::ApiErrors)
)]
async fn list(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Payload<Page<DomainView>>, ApiError> {
    let page = state.repo.list_domains(auth.account, paging.params()?).await?;
    Ok(Payload(page.map(|d| view(&state, d))))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDomain {
    #[schema(pattern = "^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")]
    pub name: String,
    /// The app that runs calls to the domain's users.
    #[serde(default)]
    pub app: Option<Uuid>,
    /// The domain's own event webhook: the events of its users' calls also go here (signed,
    /// like the account's webhooks).
    #[serde(default)]
    pub event_url: Option<String>,
}

#[utoipa::path(
    post,
    operation_id = "sip_domain_create",
    path = "/rest/sip/domain",
    tag = "sip_domain",
    summary = "Create a SIP domain <name>.<platform SIP domain>",
    request_body = NewDomain,
    responses((status = 201, description = "Created", body = doc::Envelope<DomainView>), doc::ApiErrors)
)]
async fn create(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiJson(body): ApiJson<NewDomain>,
) -> Result<Created<DomainView>, ApiError> {
    let new = NewSipDomain {
        name: check_label("name", &body.name)?,
        app: body.app,
        event_url: body.event_url.map(|url| state.webhook_urls.check_event_url(&url)).transpose()?,
    };
    let created = state
        .repo
        .create_domain(auth.account, new)
        .await
        .map_err(|e| ApiError::reference(e, ObjectKind::SipDomain, "app"))?;
    Ok(Created(view(&state, created)))
}

#[utoipa::path(
    get,
    operation_id = "sip_domain_get_one",
    path = "/rest/sip/domain/{domain}",
    tag = "sip_domain",
    summary = "A SIP domain",
    params(("domain" = String, Path, description = "The domain's id or its name (the label under the platform SIP domain)")),
    responses((status = 200, description = "OK", body = doc::Envelope<DomainView>), doc::ApiErrors)
)]
async fn get_one(
    State(state): State<ApiState>,
    auth: AuthAccount,
    SegmentPath(domain): SegmentPath,
) -> Result<Payload<DomainView>, ApiError> {
    Ok(Payload(view(&state, domain_of(&state, auth.account, &domain).await?)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainUpdate {
    /// `null` detaches the app.
    #[serde(default, deserialize_with = "nullable")]
    pub app: Option<Option<Uuid>>,
    /// The domain's own event webhook; `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    pub event_url: Option<Option<String>>,
}

#[utoipa::path(
    patch,
    operation_id = "sip_domain_update",
    path = "/rest/sip/domain/{domain}",
    tag = "sip_domain",
    summary = "Attach an app to the domain or detach it; set or remove its event webhook",
    params(("domain" = String, Path, description = "The domain's id or its name (the label under the platform SIP domain)")),
    request_body = DomainUpdate,
    responses((status = 200, description = "OK", body = doc::Envelope<DomainView>), doc::ApiErrors)
)]
async fn update(
    State(state): State<ApiState>,
    auth: AuthAccount,
    SegmentPath(domain): SegmentPath,
    ApiJson(body): ApiJson<DomainUpdate>,
) -> Result<Payload<DomainView>, ApiError> {
    let domain = domain_of(&state, auth.account, &domain).await?;
    if body.app.is_none() && body.event_url.is_none() {
        return Err(ApiError::invalid(
            "body",
            "nothing to change: send app (an app's uuid, or null) or event_url (a URL, or null)",
        ));
    }
    let patch = SipDomainPatch {
        app: body.app,
        event_url: state.webhook_urls.check_event_url_patch(body.event_url)?,
    };
    let updated = state
        .repo
        .update_domain(auth.account, domain.uuid, patch)
        .await
        .map_err(|e| ApiError::reference(e, ObjectKind::SipDomain, "app"))?;
    Ok(Payload(view(&state, updated)))
}

#[utoipa::path(
    delete,
    operation_id = "sip_domain_remove",
    path = "/rest/sip/domain/{domain}",
    tag = "sip_domain",
    summary = "Delete a SIP domain",
    params(("domain" = String, Path, description = "The domain's id or its name (the label under the platform SIP domain)")),
    responses((status = 200, description = "OK", body = doc::Envelope<Deleted>), doc::ApiErrors)
)]
async fn remove(
    State(state): State<ApiState>,
    auth: AuthAccount,
    SegmentPath(domain): SegmentPath,
) -> Result<Payload<Deleted>, ApiError> {
    let domain = domain_of(&state, auth.account, &domain).await?;
    state.repo.delete_domain(auth.account, domain.uuid).await?;
    Ok(Payload(Deleted { uuid: domain.uuid, deleted: true }))
}

// ---------------------------------------------------------------------------------------------
// users

#[utoipa::path(
    get,
    operation_id = "sip_domain_users",
    path = "/rest/sip/domain/{domain}/user",
    tag = "sip_domain",
    summary = "The domain's SIP users, with their registration state",
    params(("domain" = String, Path, description = "The domain's id or its name (the label under the platform SIP domain)"), crate::envelope::Paging),
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<UserView>>), doc::ApiErrors)
)]
async fn users(
    State(state): State<ApiState>,
    auth: AuthAccount,
    SegmentPath(domain): SegmentPath,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Payload<Page<UserView>>, ApiError> {
    let domain = domain_of(&state, auth.account, &domain).await?;
    let page = state.repo.list_sip_users(auth.account, domain.uuid, paging.params()?).await?;
    let name = full_name(&state, &domain);
    Ok(Payload(page.map(|u| user_view(&state, &name, u))))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    #[schema(pattern = "^[A-Za-z0-9._+-]{1,64}$")]
    pub login: String,
    #[schema(min_length = 8, max_length = 128)]
    pub password: String,
    #[serde(default)]
    pub is_active: Option<bool>,
    /// The leased number the user calls out with and is reached on.
    #[serde(default)]
    pub tn_lease: Option<Uuid>,
    #[serde(default)]
    pub same_domain_calls_only: bool,
    /// The user's own event webhook: the events of the calls it makes, and of the calls
    /// routed to it, also go here (signed, like the account's webhooks).
    #[serde(default)]
    pub event_url: Option<String>,
}

#[utoipa::path(
    post,
    operation_id = "sip_domain_create_user",
    path = "/rest/sip/domain/{domain}/user",
    tag = "sip_domain",
    summary = "Create a SIP user",
    params(("domain" = String, Path, description = "The domain's id or its name (the label under the platform SIP domain)")),
    request_body = NewUser,
    responses((status = 201, description = "Created", body = doc::Envelope<UserView>), doc::ApiErrors)
)]
async fn create_user(
    State(state): State<ApiState>,
    auth: AuthAccount,
    SegmentPath(domain): SegmentPath,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<Created<UserView>, ApiError> {
    let domain = domain_of(&state, auth.account, &domain).await?;
    let login = check_login(&body.login)?;
    let password = check_password(&body.password)?;
    let name = full_name(&state, &domain);
    let new = NewSipUser {
        credentials: opentact_store::DigestCredentials::new(&login, password, &name, &name),
        is_active: body.is_active.unwrap_or(true),
        tn_lease: body.tn_lease,
        same_domain_calls_only: body.same_domain_calls_only,
        event_url: body.event_url.map(|url| state.webhook_urls.check_event_url(&url)).transpose()?,
    };
    let created = state
        .repo
        .create_sip_user(auth.account, domain.uuid, new)
        .await
        .map_err(|e| ApiError::reference(e, ObjectKind::SipDomain, "tn_lease"))?;
    Ok(Created(user_view(&state, &name, created)))
}

/// The account's user `raw` of `domain`; 404 for a user of another domain or account.
async fn user_of(
    state: &ApiState,
    account: Uuid,
    domain: &SipDomain,
    raw: &str,
) -> Result<SipUser, ApiError> {
    let id = parse_id(raw)?;
    state
        .repo
        .get_sip_user(account, id)
        .await?
        .filter(|u| u.domain == domain.uuid)
        .ok_or(ApiError::not_found(ObjectKind::SipUser, id))
}

#[utoipa::path(
    get,
    operation_id = "sip_domain_get_user",
    path = "/rest/sip/domain/{domain}/user/{uuid}",
    tag = "sip_domain",
    summary = "A SIP user",
    params(("domain" = String, Path, description = "The domain's id or its name (the label under the platform SIP domain)"), ("uuid" = uuid::Uuid, Path, description = "The user's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<UserView>), doc::ApiErrors)
)]
async fn get_user(
    State(state): State<ApiState>,
    auth: AuthAccount,
    SegmentsPath(domain, user): SegmentsPath,
) -> Result<Payload<UserView>, ApiError> {
    let domain = domain_of(&state, auth.account, &domain).await?;
    let user = user_of(&state, auth.account, &domain, &user).await?;
    Ok(Payload(user_view(&state, &full_name(&state, &domain), user)))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    #[serde(default)]
    #[schema(min_length = 8, max_length = 128)]
    pub password: Option<String>,
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub tn_lease: Option<Option<Uuid>>,
    #[serde(default)]
    pub same_domain_calls_only: Option<bool>,
    /// The user's own event webhook; `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    pub event_url: Option<Option<String>>,
    /// Logins are not renamed; sending one that differs is refused with a reason.
    #[serde(default)]
    pub login: Option<String>,
}

#[utoipa::path(
    patch,
    operation_id = "sip_domain_update_user",
    path = "/rest/sip/domain/{domain}/user/{uuid}",
    tag = "sip_domain",
    summary = "Change a SIP user",
    params(("domain" = String, Path, description = "The domain's id or its name (the label under the platform SIP domain)"), ("uuid" = uuid::Uuid, Path, description = "The user's id")),
    request_body = UserUpdate,
    responses((status = 200, description = "OK", body = doc::Envelope<UserView>), doc::ApiErrors)
)]
async fn update_user(
    State(state): State<ApiState>,
    auth: AuthAccount,
    SegmentsPath(domain, user): SegmentsPath,
    ApiJson(body): ApiJson<UserUpdate>,
) -> Result<Payload<UserView>, ApiError> {
    let domain = domain_of(&state, auth.account, &domain).await?;
    let user = user_of(&state, auth.account, &domain, &user).await?;
    if body.login.as_ref().is_some_and(|l| *l != user.login) {
        return Err(ApiError::invalid("login", "cannot be changed; create a new user"));
    }
    if body.password.is_none()
        && body.is_active.is_none()
        && body.tn_lease.is_none()
        && body.same_domain_calls_only.is_none()
        && body.event_url.is_none()
    {
        return Err(ApiError::invalid(
            "body",
            "nothing to change: send one or more of password, is_active, tn_lease, same_domain_calls_only, \
             event_url",
        ));
    }
    let name = full_name(&state, &domain);
    let credentials = match &body.password {
        Some(p) => {
            Some(opentact_store::DigestCredentials::new(&user.login, check_password(p)?, &name, &name))
        }
        None => None,
    };
    let patch = SipUserPatch {
        credentials,
        is_active: body.is_active,
        tn_lease: body.tn_lease,
        same_domain_calls_only: body.same_domain_calls_only,
        event_url: state.webhook_urls.check_event_url_patch(body.event_url)?,
    };
    let updated = state
        .repo
        .update_sip_user(auth.account, user.uuid, patch)
        .await
        .map_err(|e| ApiError::reference(e, ObjectKind::SipUser, "tn_lease"))?;
    Ok(Payload(user_view(&state, &name, updated)))
}

#[utoipa::path(
    delete,
    operation_id = "sip_domain_remove_user",
    path = "/rest/sip/domain/{domain}/user/{uuid}",
    tag = "sip_domain",
    summary = "Delete a SIP user",
    params(("domain" = String, Path, description = "The domain's id or its name (the label under the platform SIP domain)"), ("uuid" = uuid::Uuid, Path, description = "The user's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<Deleted>), doc::ApiErrors)
)]
async fn remove_user(
    State(state): State<ApiState>,
    auth: AuthAccount,
    SegmentsPath(domain, user): SegmentsPath,
) -> Result<Payload<Deleted>, ApiError> {
    let domain = domain_of(&state, auth.account, &domain).await?;
    let user = user_of(&state, auth.account, &domain, &user).await?;
    state.repo.delete_sip_user(auth.account, user.uuid).await?;
    Ok(Payload(Deleted { uuid: user.uuid, deleted: true }))
}
