//! SMS: `POST /rest/sms` (send from one of the account's numbers), `POST /rest/sms/pool` (send
//! from a number picked from a messaging profile's pool), `GET /rest/sms/{uuid}` (the
//! message with its state history), `POST /rest/sms/search` (the SMS log), and
//! `POST /rest/lease/tn/sms` (enable or disable SMS on several numbers at once).
//!
//! A message is checked whole before anything is stored: the callback URL here, then the rest by
//! the messaging capability (`opentact_control::Messaging::send`, the one path flows use too):
//! the number (a lease of the account, in force, with SMS) or the pool's pick, the destination,
//! the text (planned into parts), the rate limits. It is then stored queued — the row exists before the 201 —
//! and the sender is told; it submits the parts and the carrier's receipts finish the history
//! (created → queued → sent → delivered | undelivered | failed).

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use opentact_control::{SmsFrom, SmsOrigin, SmsRefusal, SmsSend};
use opentact_store::{LeasePatch, ObjectKind, SmsDirection, SmsFilter, SmsMessage, SmsState, TnLease};
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::AuthAccount;
use crate::envelope::{ApiJson, ApiQuery, Created, IdPath, Page, Paging, Payload};
use crate::error::ApiError;
use crate::openapi as doc;
use crate::routes::app::WEBHOOKS;
use crate::routes::batch::{Phone, normalize as digits};
use crate::state::ApiState;

/// Most numbers one `POST /rest/lease/tn/sms` may name (enable and disable together).
pub const MAX_SMS_TOGGLE_ITEMS: usize = 1_000;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/rest/sms", post(send))
        .route("/rest/sms/pool", post(send_pool))
        .route("/rest/sms/search", post(search))
        .route("/rest/sms/{uuid}", get(get_one))
        .route("/rest/lease/tn/sms", post(toggle))
}

fn shown(phone: &Phone) -> String {
    match phone {
        Phone::Integer(n) => n.to_string(),
        Phone::Text(s) => format!("{s:?}"),
    }
}

/// The body of `POST /rest/sms`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = NewSmsBody)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    /// The account's number the message is sent from (a lease with SMS enabled).
    pub tn: Phone,
    /// The handset, with its country code.
    pub to: Phone,
    /// The text, 1 to 918 characters.
    #[schema(min_length = 1, max_length = 918)]
    pub message: String,
    /// Where this message's status events are also delivered.
    #[serde(default)]
    pub custom_callback_url: Option<String>,
}

/// The account's active lease of `tn`, or a 422 on `field` saying why not.
async fn sms_lease(state: &ApiState, account: Uuid, field: &str, phone: &Phone) -> Result<TnLease, ApiError> {
    let tn = digits(phone)
        .and_then(|d| d.parse::<i64>().ok())
        .ok_or_else(|| ApiError::invalid(field, format!("{} is not a telephone number", shown(phone))))?;
    state
        .repo
        .lease_by_tn(tn)
        .await?
        .filter(|l| l.account == account && l.released_on.is_none())
        .ok_or_else(|| ApiError::invalid(field, format!("the number {tn} is not leased by this account")))
}

/// A phone as the messaging capability takes it (it checks it).
fn given(phone: &Phone) -> String {
    match phone {
        Phone::Integer(n) => n.to_string(),
        Phone::Text(s) => s.clone(),
    }
}

/// A refusal of the messaging capability as the API answers it.
fn refused(refusal: SmsRefusal) -> ApiError {
    match refusal {
        SmsRefusal::Invalid { field, message } => ApiError::invalid(field, message),
        SmsRefusal::RateLimited { message, retry_after_secs } => {
            ApiError::RateLimited { message, retry_after_secs }
        }
        SmsRefusal::Unavailable(message) => ApiError::Unavailable(message),
        SmsRefusal::PaymentRequired(message) => ApiError::PaymentRequired(message),
    }
}

/// Checks the callback URL, then has the messaging capability check and queue the message.
async fn queue(
    state: &ApiState,
    account: Uuid,
    from: SmsFrom,
    to: &Phone,
    message: String,
    custom_callback_url: Option<&str>,
) -> Result<Created<SmsMessage>, ApiError> {
    let callback = custom_callback_url
        .map(|u| state.webhook_urls.check("custom_callback_url", WEBHOOKS, u))
        .transpose()?;
    let Some(messaging) = state.messaging.clone() else {
        return Err(ApiError::Unavailable(
            "messaging is not running on this server, so no SMS can be sent".into(),
        ));
    };
    let request = SmsSend {
        account,
        from,
        to: given(to),
        text: message,
        custom_callback_url: callback,
        origin: SmsOrigin::Api,
    };
    Ok(Created(messaging.send(request).await.map_err(refused)?))
}

#[utoipa::path(
    post,
    operation_id = "sms_send",
    path = "/rest/sms",
    tag = "sms",
    summary = "Send an SMS from one of the account's numbers",
    description = "The number must be leased by the account with SMS enabled (`POST /rest/lease/tn/sms`). \
        The message is stored queued and sent in the background; `GET /rest/sms/{uuid}` shows its history \
        (created → queued → sent → delivered | undelivered | failed) and `sms.*` events report each step.",
    request_body = SendBody,
    responses(
        (status = 201, description = "Stored and queued", body = doc::Envelope<SmsMessage>),
        doc::ApiErrors,
        (status = 429, description = "The number or its messaging profile is at a rate limit (see `Retry-After`)", body = doc::ErrorEnvelope),
        (status = 503, description = "Messaging is not running on this server", body = doc::ErrorEnvelope),
    )
)]
async fn send(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiJson(body): ApiJson<SendBody>,
) -> Result<Created<SmsMessage>, ApiError> {
    let from = SmsFrom::Tn(given(&body.tn));
    queue(&state, auth.account, from, &body.to, body.message, body.custom_callback_url.as_deref()).await
}

/// The body of `POST /rest/sms/pool`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = NewPoolSmsBody)]
#[serde(deny_unknown_fields)]
pub struct PoolBody {
    /// The account's messaging profile (with `number_pool_enable`) whose numbers may send it.
    pub messaging_profile: Uuid,
    /// The handset, with its country code.
    pub to: Phone,
    /// The text, 1 to 918 characters.
    #[schema(min_length = 1, max_length = 918)]
    pub message: String,
    /// Where this message's status events are also delivered.
    #[serde(default)]
    pub custom_callback_url: Option<String>,
}

#[utoipa::path(
    post,
    operation_id = "sms_send_pool",
    path = "/rest/sms/pool",
    tag = "sms",
    summary = "Send an SMS from a number picked from a messaging profile's pool",
    description = "The sender is one of the account's numbers attached to the messaging profile (its \
        `number_pool_enable` on) with SMS enabled: the number that last sent to this destination while it \
        stays usable (`sticky_sender`), else picked by `long_code_weight` : `toll_free_weight`; numbers at a \
        rate limit are passed over, and with `skip_unhealthy_tns` so are numbers whose recent messages mostly \
        failed (at least 5 of their last 50 in the past hour finished, half or more of them undelivered or \
        failed). No usable number: 422 \"no healthy sender in the pool\"; every number at a rate limit: 429. \
        The message is stored queued like `POST /rest/sms`; its `from` is the number picked.",
    request_body = PoolBody,
    responses(
        (status = 201, description = "Stored and queued", body = doc::Envelope<SmsMessage>),
        doc::ApiErrors,
        (status = 429, description = "Every number of the pool is at a rate limit (see `Retry-After`)", body = doc::ErrorEnvelope),
        (status = 503, description = "Messaging is not running on this server", body = doc::ErrorEnvelope),
    )
)]
async fn send_pool(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiJson(body): ApiJson<PoolBody>,
) -> Result<Created<SmsMessage>, ApiError> {
    let from = SmsFrom::Pool { profile: body.messaging_profile };
    queue(&state, auth.account, from, &body.to, body.message, body.custom_callback_url.as_deref()).await
}

#[utoipa::path(
    get,
    operation_id = "sms_get_one",
    path = "/rest/sms/{uuid}",
    tag = "sms",
    summary = "A message with its state history",
    params(("uuid" = uuid::Uuid, Path, description = "The message's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<SmsMessage>), doc::ApiErrors)
)]
async fn get_one(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<SmsMessage>, ApiError> {
    let message =
        state.repo.get_sms(auth.account, id).await?.ok_or(ApiError::not_found(ObjectKind::Message, id))?;
    Ok(Payload(message))
}

/// `POST /rest/sms/search`: every field optional.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsSearch {
    /// `smso` (outbound) or `smsr` (inbound).
    #[serde(default, rename = "type")]
    pub direction: Option<SmsDirection>,
    #[serde(default)]
    pub state: Option<SmsState>,
    /// The sender, exactly (digits without `+`).
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    /// Messages created at or after this (ISO-8601).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub since: Option<DateTime<Utc>>,
    /// Messages created before this (ISO-8601).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub until: Option<DateTime<Utc>>,
    /// `{"created_on": "ASC" | "DESC"}`.
    #[serde(default)]
    pub order: Option<crate::routes::numbers::SortOrder>,
}

#[utoipa::path(
    post,
    operation_id = "sms_search",
    path = "/rest/sms/search",
    tag = "sms",
    summary = "Search the SMS log",
    params(crate::envelope::Paging),
    request_body = SmsSearch,
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<SmsMessage>>), doc::ApiErrors)
)]
async fn search(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiQuery(paging): ApiQuery<Paging>,
    ApiJson(body): ApiJson<SmsSearch>,
) -> Result<Payload<Page<SmsMessage>>, ApiError> {
    let params = paging.search_params(body.order, body.since, body.until)?;
    let filter = SmsFilter {
        direction: body.direction,
        state: body.state,
        from: body.from,
        to: body.to,
        since: body.since,
        until: body.until,
    };
    Ok(Payload(state.repo.search_sms(auth.account, filter, params).await?))
}

/// A number in `POST /rest/lease/tn/sms`: a lease's id or the number itself.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum LeaseRef {
    Lease(Uuid),
    #[schema(value_type = String)]
    Tn(Phone),
}

/// The body of `POST /rest/lease/tn/sms`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsToggle {
    /// Leases (ids or numbers) to enable SMS on.
    #[serde(default)]
    pub enable: Vec<LeaseRef>,
    /// Leases (ids or numbers) to disable SMS on.
    #[serde(default)]
    pub disable: Vec<LeaseRef>,
}

#[utoipa::path(
    post,
    operation_id = "lease_sms_toggle",
    path = "/rest/lease/tn/sms",
    tag = "sms",
    summary = "Enable or disable SMS on several of the account's numbers",
    description = "Every item (a lease id or a number) is checked before any change: one that is not an \
        active lease of the account refuses the whole request (422, naming it). Answers the leases as updated.",
    request_body = SmsToggle,
    responses((status = 200, description = "OK", body = doc::Envelope<Vec<TnLease>>), doc::ApiErrors)
)]
async fn toggle(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiJson(body): ApiJson<SmsToggle>,
) -> Result<Payload<Vec<TnLease>>, ApiError> {
    let account = auth.account;
    let total = body.enable.len() + body.disable.len();
    if total == 0 || total > MAX_SMS_TOGGLE_ITEMS {
        return Err(ApiError::invalid(
            "enable",
            format!("name 1 to {MAX_SMS_TOGGLE_ITEMS} numbers in enable and disable (got {total})"),
        ));
    }
    let mut changes: Vec<(TnLease, bool)> = Vec::with_capacity(total);
    for (list, items, on) in [("enable", &body.enable, true), ("disable", &body.disable, false)] {
        for (i, item) in items.iter().enumerate() {
            let field = format!("{list}[{i}]");
            let lease = match item {
                LeaseRef::Lease(id) => state
                    .repo
                    .get_lease(account, *id)
                    .await?
                    .filter(|l| l.released_on.is_none())
                    .ok_or_else(|| ApiError::invalid(&field, format!("tn lease {id} not found")))?,
                LeaseRef::Tn(phone) => sms_lease(&state, account, &field, phone).await?,
            };
            if changes.iter().any(|(l, _)| l.uuid == lease.uuid) {
                return Err(ApiError::invalid(&field, format!("the number {} is named twice", lease.tn)));
            }
            changes.push((lease, on));
        }
    }
    let mut updated = Vec::with_capacity(changes.len());
    for (lease, on) in changes {
        let patch = LeasePatch { sms: Some(on), ..Default::default() };
        let lease = state.repo.update_lease(account, lease.uuid, patch).await?;
        crate::publish::tn_changed(&state, account, if on { "sms_enabled" } else { "sms_disabled" }, &lease);
        updated.push(lease);
    }
    Ok(Payload(updated))
}
