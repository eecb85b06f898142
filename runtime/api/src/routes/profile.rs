//! TN profiles and their caller-ID lists: `GET/POST /rest/profile/tn`,
//! `GET/PATCH/DELETE /rest/profile/tn/{uuid}`, `POST /rest/profile/tn/{uuid}/blacklist` and
//! `/whitelist` with `{add: […], remove: […]}`.
//!
//! List entries are numbers with their country code or prefixes of them, given as JSON
//! integers (`1202`) or digit strings (`"1202"`); a leading `+` is accepted and dropped.

use std::fmt;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use opentact_store::{CallerList, NewTnProfile, ObjectKind, TnProfile};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};

use crate::auth::AuthAccount;
use crate::envelope::{ApiJson, ApiQuery, Created, IdPath, Page, Paging, Payload};
use crate::error::ApiError;
use crate::openapi as doc;
use crate::state::ApiState;

/// Longest profile name, in characters.
pub const MAX_PROFILE_NAME: usize = 100;

/// Most entries one request may add or remove (per list).
pub const MAX_CALLER_ENTRIES: usize = 1000;

/// Longest entry: E.164 numbers have at most 15 digits.
pub const MAX_ENTRY_DIGITS: usize = 15;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/rest/profile/tn", get(list).post(create))
        .route("/rest/profile/tn/{uuid}", get(get_one).patch(rename).delete(remove))
        .route("/rest/profile/tn/{uuid}/blacklist", post(blacklist))
        .route("/rest/profile/tn/{uuid}/whitelist", post(whitelist))
}

/// A caller-list entry as sent: an integer or a string, checked later with its position.
#[derive(Debug, Clone)]
pub struct Entry(String);

impl utoipa::PartialSchema for Entry {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        doc::integer_or_string("A number or prefix with the country code: an integer or a string of digits")
    }
}

impl utoipa::ToSchema for Entry {}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Entry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or prefix, as an integer or a string of digits")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Entry, E> {
                Ok(Entry(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Entry, E> {
                Ok(Entry(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Entry, E> {
                Ok(Entry(v.trim().strip_prefix('+').unwrap_or(v.trim()).to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

fn check_entries(field: &str, entries: Vec<Entry>) -> Result<Vec<String>, ApiError> {
    if entries.len() > MAX_CALLER_ENTRIES {
        return Err(ApiError::invalid(field, format!("at most {MAX_CALLER_ENTRIES} entries per request")));
    }
    entries
        .into_iter()
        .enumerate()
        .map(|(i, Entry(e))| {
            if e.is_empty() || e.len() > MAX_ENTRY_DIGITS || !e.bytes().all(|b| b.is_ascii_digit()) {
                Err(ApiError::invalid(
                    format!("{field}[{i}]"),
                    format!("{e:?} is not a number or prefix: send 1 to {MAX_ENTRY_DIGITS} digits with the country code"),
                ))
            } else {
                Ok(e)
            }
        })
        .collect()
}

fn check_name(name: &str) -> Result<String, ApiError> {
    crate::envelope::check_name("name", name, MAX_PROFILE_NAME)
}

#[utoipa::path(
    get,
    operation_id = "profile_list",
    path = "/rest/profile/tn",
    tag = "tn_profile",
    summary = "The account's TN profiles",
    params(crate::envelope::Paging),
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<TnProfile>>), doc::ApiErrors)
)]
async fn list(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Payload<Page<TnProfile>>, ApiError> {
    Ok(Payload(state.repo.list_tn_profiles(auth.account, paging.params()?).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = NewTnProfile)]
#[serde(deny_unknown_fields)]
pub struct NewProfile {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[serde(default)]
    pub blacklist: Vec<Entry>,
    #[serde(default)]
    pub whitelist: Vec<Entry>,
}

#[utoipa::path(
    post,
    operation_id = "profile_create",
    path = "/rest/profile/tn",
    tag = "tn_profile",
    summary = "Create a TN profile",
    request_body = NewProfile,
    responses((status = 201, description = "Created", body = doc::Envelope<TnProfile>), doc::ApiErrors)
)]
async fn create(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiJson(new): ApiJson<NewProfile>,
) -> Result<Created<TnProfile>, ApiError> {
    let new = NewTnProfile {
        name: check_name(&new.name)?,
        blacklist: check_entries("blacklist", new.blacklist)?,
        whitelist: check_entries("whitelist", new.whitelist)?,
    };
    Ok(Created(state.repo.create_tn_profile(auth.account, new).await?))
}

#[utoipa::path(
    get,
    operation_id = "profile_get_one",
    path = "/rest/profile/tn/{uuid}",
    tag = "tn_profile",
    summary = "A TN profile",
    params(("uuid" = uuid::Uuid, Path, description = "The profile's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<TnProfile>), doc::ApiErrors)
)]
async fn get_one(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<TnProfile>, ApiError> {
    match state.repo.get_tn_profile(auth.account, id).await? {
        Some(p) => Ok(Payload(p)),
        None => Err(ApiError::not_found(ObjectKind::TnProfile, id)),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = TnProfileUpdate)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
}

#[utoipa::path(
    patch,
    operation_id = "profile_rename",
    path = "/rest/profile/tn/{uuid}",
    tag = "tn_profile",
    summary = "Rename a TN profile",
    params(("uuid" = uuid::Uuid, Path, description = "The profile's id")),
    request_body = ProfileUpdate,
    responses((status = 200, description = "OK", body = doc::Envelope<TnProfile>), doc::ApiErrors)
)]
async fn rename(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<ProfileUpdate>,
) -> Result<Payload<TnProfile>, ApiError> {
    let name = check_name(&body.name)?;
    Ok(Payload(state.repo.rename_tn_profile(auth.account, id, name).await?))
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DeletedProfile {
    pub uuid: uuid::Uuid,
    pub deleted: bool,
}

#[utoipa::path(
    delete,
    operation_id = "profile_remove",
    path = "/rest/profile/tn/{uuid}",
    tag = "tn_profile",
    summary = "Delete a TN profile",
    params(("uuid" = uuid::Uuid, Path, description = "The profile's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<DeletedProfile>), doc::ApiErrors)
)]
async fn remove(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<DeletedProfile>, ApiError> {
    state.repo.delete_tn_profile(auth.account, id).await?;
    Ok(Payload(DeletedProfile { uuid: id, deleted: true }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = CallerListUpdate)]
#[serde(deny_unknown_fields)]
pub struct ListUpdate {
    #[serde(default)]
    pub add: Vec<Entry>,
    #[serde(default)]
    pub remove: Vec<Entry>,
}

#[utoipa::path(
    post,
    operation_id = "profile_blacklist",
    path = "/rest/profile/tn/{uuid}/blacklist",
    tag = "tn_profile",
    summary = "Add to and remove from the blacklist (rejected callers)",
    params(("uuid" = uuid::Uuid, Path, description = "The profile's id")),
    request_body = ListUpdate,
    responses((status = 200, description = "OK", body = doc::Envelope<TnProfile>), doc::ApiErrors)
)]
async fn blacklist(
    state: State<ApiState>,
    auth: AuthAccount,
    id: IdPath,
    body: ApiJson<ListUpdate>,
) -> Result<Payload<TnProfile>, ApiError> {
    update_list(state, auth, id, body, CallerList::Black).await
}

#[utoipa::path(
    post,
    operation_id = "profile_whitelist",
    path = "/rest/profile/tn/{uuid}/whitelist",
    tag = "tn_profile",
    summary = "Add to and remove from the whitelist (when non-empty, only these callers get through)",
    params(("uuid" = uuid::Uuid, Path, description = "The profile's id")),
    request_body = ListUpdate,
    responses((status = 200, description = "OK", body = doc::Envelope<TnProfile>), doc::ApiErrors)
)]
async fn whitelist(
    state: State<ApiState>,
    auth: AuthAccount,
    id: IdPath,
    body: ApiJson<ListUpdate>,
) -> Result<Payload<TnProfile>, ApiError> {
    update_list(state, auth, id, body, CallerList::White).await
}

async fn update_list(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<ListUpdate>,
    list: CallerList,
) -> Result<Payload<TnProfile>, ApiError> {
    if body.add.is_empty() && body.remove.is_empty() {
        return Err(ApiError::invalid("body", "nothing to change: send add: […] and/or remove: […]"));
    }
    let add = check_entries("add", body.add)?;
    let remove = check_entries("remove", body.remove)?;
    Ok(Payload(state.repo.update_caller_list(auth.account, id, list, &add, &remove).await?))
}
