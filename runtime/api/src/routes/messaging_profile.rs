//! Messaging profiles: `GET/POST /rest/profile/messaging`,
//! `GET/PATCH/DELETE /rest/profile/messaging/{uuid}`. A number joins a profile with
//! `PATCH /rest/lease/tn/{uuid} {messaging_profile_uuid}`.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use opentact_store::{MessagingProfile, MessagingProfilePatch, NewMessagingProfile, ObjectKind};
use serde::Deserialize;

use crate::auth::AuthAccount;
use crate::envelope::{ApiJson, ApiQuery, Created, IdPath, Page, Paging, Payload, check_name};
use crate::error::ApiError;
use crate::openapi as doc;
use crate::routes::app::WEBHOOKS;
use crate::routes::lease::nullable;
use crate::routes::sip_connection::Deleted;
use crate::state::ApiState;

/// Longest profile name, in characters.
pub const MAX_NAME: usize = 100;
/// Largest pool weight.
pub const MAX_WEIGHT: i32 = 1000;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/rest/profile/messaging", get(list).post(create))
        .route("/rest/profile/messaging/{uuid}", get(get_one).patch(update).delete(remove))
}

fn weight(field: &str, w: i32) -> Result<i32, ApiError> {
    if (0..=MAX_WEIGHT).contains(&w) {
        Ok(w)
    } else {
        Err(ApiError::invalid(field, format!("must be 0 to {MAX_WEIGHT}")))
    }
}

#[utoipa::path(
    get,
    operation_id = "messaging_profile_list",
    path = "/rest/profile/messaging",
    tag = "messaging_profile",
    summary = "The account's messaging profiles",
    params(crate::envelope::Paging),
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<MessagingProfile>>), doc::ApiErrors)
)]
async fn list(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Payload<Page<MessagingProfile>>, ApiError> {
    Ok(Payload(state.repo.list_messaging_profiles(auth.account, paging.params()?).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = NewMessagingProfile)]
#[serde(deny_unknown_fields)]
pub struct NewProfile {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[serde(default)]
    #[schema(pattern = "^https?://[^ ]+$", max_length = 2048)]
    pub callback_url: Option<String>,
    #[serde(default)]
    #[schema(pattern = "^https?://[^ ]+$", max_length = 2048)]
    pub callback_url2: Option<String>,
    #[serde(default)]
    pub number_pool_enable: bool,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000)]
    pub long_code_weight: Option<i32>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000)]
    pub toll_free_weight: Option<i32>,
    #[serde(default)]
    pub skip_unhealthy_tns: bool,
    #[serde(default)]
    pub sticky_sender: bool,
}

#[utoipa::path(
    post,
    operation_id = "messaging_profile_create",
    path = "/rest/profile/messaging",
    tag = "messaging_profile",
    summary = "Create a messaging profile",
    request_body = NewProfile,
    responses((status = 201, description = "Created", body = doc::Envelope<MessagingProfile>), doc::ApiErrors)
)]
async fn create(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiJson(body): ApiJson<NewProfile>,
) -> Result<Created<MessagingProfile>, ApiError> {
    let url =
        |field: &str, u: Option<&str>| u.map(|u| state.webhook_urls.check(field, WEBHOOKS, u)).transpose();
    let new = NewMessagingProfile {
        name: check_name("name", &body.name, MAX_NAME)?,
        callback_url: url("callback_url", body.callback_url.as_deref())?,
        callback_url2: url("callback_url2", body.callback_url2.as_deref())?,
        number_pool_enable: body.number_pool_enable,
        long_code_weight: weight("long_code_weight", body.long_code_weight.unwrap_or(1))?,
        toll_free_weight: weight("toll_free_weight", body.toll_free_weight.unwrap_or(1))?,
        skip_unhealthy_tns: body.skip_unhealthy_tns,
        sticky_sender: body.sticky_sender,
    };
    Ok(Created(state.repo.create_messaging_profile(auth.account, new).await?))
}

#[utoipa::path(
    get,
    operation_id = "messaging_profile_get_one",
    path = "/rest/profile/messaging/{uuid}",
    tag = "messaging_profile",
    summary = "A messaging profile",
    params(("uuid" = uuid::Uuid, Path, description = "The profile's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<MessagingProfile>), doc::ApiErrors)
)]
async fn get_one(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<MessagingProfile>, ApiError> {
    match state.repo.get_messaging_profile(auth.account, id).await? {
        Some(p) => Ok(Payload(p)),
        None => Err(ApiError::not_found(ObjectKind::MessagingProfile, id)),
    }
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = MessagingProfileUpdate)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(pattern = "^https?://[^ ]+$", max_length = 2048)]
    pub callback_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(pattern = "^https?://[^ ]+$", max_length = 2048)]
    pub callback_url2: Option<Option<String>>,
    #[serde(default)]
    pub number_pool_enable: Option<bool>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000)]
    pub long_code_weight: Option<i32>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000)]
    pub toll_free_weight: Option<i32>,
    #[serde(default)]
    pub skip_unhealthy_tns: Option<bool>,
    #[serde(default)]
    pub sticky_sender: Option<bool>,
}

#[utoipa::path(
    patch,
    operation_id = "messaging_profile_update",
    path = "/rest/profile/messaging/{uuid}",
    tag = "messaging_profile",
    summary = "Change a messaging profile (null clears a callback URL)",
    params(("uuid" = uuid::Uuid, Path, description = "The profile's id")),
    request_body = ProfileUpdate,
    responses((status = 200, description = "OK", body = doc::Envelope<MessagingProfile>), doc::ApiErrors)
)]
async fn update(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<ProfileUpdate>,
) -> Result<Payload<MessagingProfile>, ApiError> {
    let url = |field: &str, u: Option<Option<String>>| -> Result<Option<Option<String>>, ApiError> {
        u.map(|u| u.map(|u| state.webhook_urls.check(field, WEBHOOKS, &u)).transpose()).transpose()
    };
    let patch = MessagingProfilePatch {
        name: body.name.as_deref().map(|n| check_name("name", n, MAX_NAME)).transpose()?,
        callback_url: url("callback_url", body.callback_url)?,
        callback_url2: url("callback_url2", body.callback_url2)?,
        number_pool_enable: body.number_pool_enable,
        long_code_weight: body.long_code_weight.map(|w| weight("long_code_weight", w)).transpose()?,
        toll_free_weight: body.toll_free_weight.map(|w| weight("toll_free_weight", w)).transpose()?,
        skip_unhealthy_tns: body.skip_unhealthy_tns,
        sticky_sender: body.sticky_sender,
    };
    if patch.name.is_none()
        && patch.callback_url.is_none()
        && patch.callback_url2.is_none()
        && patch.number_pool_enable.is_none()
        && patch.long_code_weight.is_none()
        && patch.toll_free_weight.is_none()
        && patch.skip_unhealthy_tns.is_none()
        && patch.sticky_sender.is_none()
    {
        return Err(ApiError::invalid("body", "nothing to change: send one or more of the profile's fields"));
    }
    Ok(Payload(state.repo.update_messaging_profile(auth.account, id, patch).await?))
}

#[utoipa::path(
    delete,
    operation_id = "messaging_profile_remove",
    path = "/rest/profile/messaging/{uuid}",
    tag = "messaging_profile",
    summary = "Delete a messaging profile",
    params(("uuid" = uuid::Uuid, Path, description = "The profile's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<Deleted>), doc::ApiErrors)
)]
async fn remove(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<Deleted>, ApiError> {
    state.repo.delete_messaging_profile(auth.account, id).await?;
    Ok(Payload(Deleted { uuid: id, deleted: true }))
}
