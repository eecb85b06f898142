//! Outbound voice profiles: `GET/POST /rest/profile/outbound_voice`,
//! `GET/PATCH/DELETE /rest/profile/outbound_voice/{uuid}`.
//!
//! `max_rate` and `daily_spend_limit` are amounts in the account's currency (`0.05` per
//! minute); the store keeps them exactly, as micro-units, so at most six decimals count.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use opentact_store::{
    NewOutboundVoiceProfile, ObjectKind, OutboundVoiceProfile, OutboundVoiceProfilePatch, ShakenSignPolicy,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::AuthAccount;
use crate::envelope::{ApiJson, ApiQuery, Created, IdPath, Page, Paging, Payload, check_name};
use crate::error::ApiError;
use crate::openapi as doc;
use crate::routes::lease::nullable;
use crate::routes::sip_connection::Deleted;
use crate::state::ApiState;

/// Longest profile name, in characters.
pub const MAX_NAME: usize = 100;
/// Most concurrent calls a profile may allow.
pub const MAX_CHANNEL_LIMIT: i32 = 100_000;
/// Most new calls per second a profile may allow.
pub const MAX_CALLS_PER_SECOND: i32 = 1000;
/// Largest amount accepted (per minute, or per day), in the account's currency.
pub const MAX_AMOUNT: f64 = 1_000_000.0;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/rest/profile/outbound_voice", get(list).post(create))
        .route("/rest/profile/outbound_voice/{uuid}", get(get_one).patch(update).delete(remove))
}

/// A profile as the API shows it: amounts in currency units.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = OutboundVoiceProfileView)]
pub struct ProfileView {
    pub uuid: Uuid,
    pub name: String,
    pub channel_limit: Option<i32>,
    /// New calls started per second (bulk calls are paced to it); `null` for no limit.
    pub calls_per_second: Option<i32>,
    pub max_rate: Option<f64>,
    pub daily_spend_limit: Option<f64>,
    pub record_calls: bool,
    pub shaken_sign_policy: ShakenSignPolicy,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "opentact_store::model::millis")]
    pub created_on: opentact_store::Timestamp,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "opentact_store::model::millis")]
    pub modified_on: opentact_store::Timestamp,
}

impl From<OutboundVoiceProfile> for ProfileView {
    fn from(p: OutboundVoiceProfile) -> Self {
        let units = |micros: i64| micros as f64 / 1_000_000.0;
        ProfileView {
            uuid: p.uuid,
            name: p.name,
            channel_limit: p.channel_limit,
            calls_per_second: p.calls_per_second,
            max_rate: p.max_rate_micros.map(units),
            daily_spend_limit: p.daily_spend_limit_micros.map(units),
            record_calls: p.record_calls,
            shaken_sign_policy: p.shaken_sign_policy,
            created_on: p.created_on,
            modified_on: p.modified_on,
        }
    }
}

fn micros(field: &str, amount: f64) -> Result<i64, ApiError> {
    if !amount.is_finite() || !(0.0..=MAX_AMOUNT).contains(&amount) {
        return Err(ApiError::invalid(field, format!("must be an amount from 0 to {MAX_AMOUNT}")));
    }
    // In range, so the product fits an i64 exactly enough (at most 1e12).
    Ok((amount * 1_000_000.0).round() as i64)
}

fn channels(limit: i32) -> Result<i32, ApiError> {
    if (1..=MAX_CHANNEL_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::invalid(
            "channel_limit",
            format!("must be 1 to {MAX_CHANNEL_LIMIT} (or null for none)"),
        ))
    }
}

fn calls_per_second(rate: i32) -> Result<i32, ApiError> {
    if (1..=MAX_CALLS_PER_SECOND).contains(&rate) {
        Ok(rate)
    } else {
        Err(ApiError::invalid(
            "calls_per_second",
            format!("must be 1 to {MAX_CALLS_PER_SECOND} (or null for no limit)"),
        ))
    }
}

#[utoipa::path(
    get,
    operation_id = "outbound_voice_list",
    path = "/rest/profile/outbound_voice",
    tag = "outbound_voice_profile",
    summary = "The account's outbound voice profiles",
    params(crate::envelope::Paging),
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<ProfileView>>), doc::ApiErrors)
)]
async fn list(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Payload<Page<ProfileView>>, ApiError> {
    let page = state.repo.list_ovps(auth.account, paging.params()?).await?;
    Ok(Payload(page.map(Into::into)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = NewOutboundVoiceProfile)]
#[serde(deny_unknown_fields)]
pub struct NewProfile {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100000)]
    pub channel_limit: Option<i32>,
    /// New calls started per second; absent or `null` for no limit.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000)]
    pub calls_per_second: Option<i32>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000000)]
    pub max_rate: Option<f64>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000000)]
    pub daily_spend_limit: Option<f64>,
    #[serde(default)]
    pub record_calls: bool,
    #[serde(default)]
    pub shaken_sign_policy: ShakenSignPolicy,
}

#[utoipa::path(
    post,
    operation_id = "outbound_voice_create",
    path = "/rest/profile/outbound_voice",
    tag = "outbound_voice_profile",
    summary = "Create an outbound voice profile",
    request_body = NewProfile,
    responses((status = 201, description = "Created", body = doc::Envelope<ProfileView>), doc::ApiErrors)
)]
async fn create(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiJson(body): ApiJson<NewProfile>,
) -> Result<Created<ProfileView>, ApiError> {
    let new = NewOutboundVoiceProfile {
        name: check_name("name", &body.name, MAX_NAME)?,
        channel_limit: body.channel_limit.map(channels).transpose()?,
        calls_per_second: body.calls_per_second.map(calls_per_second).transpose()?,
        max_rate_micros: body.max_rate.map(|a| micros("max_rate", a)).transpose()?,
        daily_spend_limit_micros: body
            .daily_spend_limit
            .map(|a| micros("daily_spend_limit", a))
            .transpose()?,
        record_calls: body.record_calls,
        shaken_sign_policy: body.shaken_sign_policy,
    };
    Ok(Created(state.repo.create_ovp(auth.account, new).await?.into()))
}

#[utoipa::path(
    get,
    operation_id = "outbound_voice_get_one",
    path = "/rest/profile/outbound_voice/{uuid}",
    tag = "outbound_voice_profile",
    summary = "An outbound voice profile",
    params(("uuid" = uuid::Uuid, Path, description = "The profile's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<ProfileView>), doc::ApiErrors)
)]
async fn get_one(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<ProfileView>, ApiError> {
    match state.repo.get_ovp(auth.account, id).await? {
        Some(p) => Ok(Payload(p.into())),
        None => Err(ApiError::not_found(ObjectKind::OutboundVoiceProfile, id)),
    }
}

/// The PATCH body; `null` removes a limit.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = OutboundVoiceProfileUpdate)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(minimum = 1, maximum = 100000)]
    pub channel_limit: Option<Option<i32>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(minimum = 1, maximum = 1000)]
    pub calls_per_second: Option<Option<i32>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(minimum = 0, maximum = 1000000)]
    pub max_rate: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(minimum = 0, maximum = 1000000)]
    pub daily_spend_limit: Option<Option<f64>>,
    #[serde(default)]
    pub record_calls: Option<bool>,
    #[serde(default)]
    pub shaken_sign_policy: Option<ShakenSignPolicy>,
}

#[utoipa::path(
    patch,
    operation_id = "outbound_voice_update",
    path = "/rest/profile/outbound_voice/{uuid}",
    tag = "outbound_voice_profile",
    summary = "Change an outbound voice profile (null removes a limit)",
    params(("uuid" = uuid::Uuid, Path, description = "The profile's id")),
    request_body = ProfileUpdate,
    responses((status = 200, description = "OK", body = doc::Envelope<ProfileView>), doc::ApiErrors)
)]
async fn update(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<ProfileUpdate>,
) -> Result<Payload<ProfileView>, ApiError> {
    let patch = OutboundVoiceProfilePatch {
        name: body.name.as_deref().map(|n| check_name("name", n, MAX_NAME)).transpose()?,
        channel_limit: body.channel_limit.map(|l| l.map(channels).transpose()).transpose()?,
        calls_per_second: body.calls_per_second.map(|r| r.map(calls_per_second).transpose()).transpose()?,
        max_rate_micros: body.max_rate.map(|a| a.map(|a| micros("max_rate", a)).transpose()).transpose()?,
        daily_spend_limit_micros: body
            .daily_spend_limit
            .map(|a| a.map(|a| micros("daily_spend_limit", a)).transpose())
            .transpose()?,
        record_calls: body.record_calls,
        shaken_sign_policy: body.shaken_sign_policy,
    };
    if patch.name.is_none()
        && patch.channel_limit.is_none()
        && patch.calls_per_second.is_none()
        && patch.max_rate_micros.is_none()
        && patch.daily_spend_limit_micros.is_none()
        && patch.record_calls.is_none()
        && patch.shaken_sign_policy.is_none()
    {
        return Err(ApiError::invalid(
            "body",
            "nothing to change: send one or more of name, channel_limit, calls_per_second, max_rate, \
             daily_spend_limit, record_calls, shaken_sign_policy",
        ));
    }
    Ok(Payload(state.repo.update_ovp(auth.account, id, patch).await?.into()))
}

#[utoipa::path(
    delete,
    operation_id = "outbound_voice_remove",
    path = "/rest/profile/outbound_voice/{uuid}",
    tag = "outbound_voice_profile",
    summary = "Delete an outbound voice profile",
    params(("uuid" = uuid::Uuid, Path, description = "The profile's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<Deleted>), doc::ApiErrors)
)]
async fn remove(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<Deleted>, ApiError> {
    state.repo.delete_ovp(auth.account, id).await?;
    Ok(Payload(Deleted { uuid: id, deleted: true }))
}
