//! The account signed in: `GET /rest/account` and `PATCH /rest/account {name, time_zone}`.
//!
//! There is no id in the path: the account is the caller's own, so no other account's can be
//! named. The e-mail (the login) and the password are not changed here. A change is published
//! as `account.changed` (websocket and webhook subscribers of the account's events) with the
//! fields that changed and the account as it is now.

use std::str::FromStr;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use opentact_store::{Account, AccountPatch, ObjectKind};
use serde::Deserialize;

use crate::auth::AuthAccount;
use crate::envelope::{ApiJson, Payload};
use crate::error::ApiError;
use crate::openapi as doc;
use crate::state::ApiState;

/// Longest account name, characters.
const MAX_NAME: usize = 100;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/rest/account", get(show).patch(update))
}

/// `PATCH /rest/account`: what to change; absent keys stay.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountBody {
    /// 1–100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    /// An IANA time zone (`America/New_York`): the account's local time for flows
    /// (`<Schedule>`) and for the call's time zone when the number's area has none.
    pub time_zone: Option<String>,
}

fn check_name(name: &str) -> Result<String, ApiError> {
    let name = crate::envelope::check_name("name", name, MAX_NAME)?;
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid("name", "no control characters (line breaks, tabs)"));
    }
    Ok(name)
}

fn check_time_zone(zone: &str) -> Result<String, ApiError> {
    chrono_tz::Tz::from_str(zone).map(|tz| tz.name().to_owned()).map_err(|_| {
        ApiError::invalid(
            "time_zone",
            format!("{zone:?} is not an IANA time zone (like America/New_York or UTC)"),
        )
    })
}

#[utoipa::path(
    get,
    operation_id = "account_get",
    path = "/rest/account",
    tag = "account",
    summary = "The account signed in",
    responses((status = 200, description = "OK", body = doc::Envelope<Account>), doc::ApiErrors)
)]
pub(crate) async fn show(
    State(state): State<ApiState>,
    auth: AuthAccount,
) -> Result<Payload<Account>, ApiError> {
    match state.repo.get_account(auth.account).await? {
        Some(account) => Ok(Payload(account)),
        None => Err(ApiError::not_found(ObjectKind::Account, auth.account)),
    }
}

#[utoipa::path(
    patch,
    operation_id = "account_update",
    path = "/rest/account",
    tag = "account",
    summary = "Change the account's name or time zone",
    request_body = AccountBody,
    responses((status = 200, description = "OK", body = doc::Envelope<Account>), doc::ApiErrors)
)]
pub(crate) async fn update(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiJson(body): ApiJson<AccountBody>,
) -> Result<Payload<Account>, ApiError> {
    if body.name.is_none() && body.time_zone.is_none() {
        return Err(ApiError::invalid("body", "nothing to change: name or time_zone"));
    }
    let patch = AccountPatch {
        name: body.name.as_deref().map(check_name).transpose()?,
        email: None,
        time_zone: body.time_zone.as_deref().map(check_time_zone).transpose()?,
    };
    let before = state.repo.get_account(auth.account).await?;
    let after = state.repo.update_account(auth.account, patch).await?;
    let changed: Vec<&str> = match &before {
        Some(before) => {
            [("name", before.name != after.name), ("time_zone", before.time_zone != after.time_zone)]
                .into_iter()
                .filter_map(|(field, differs)| differs.then_some(field))
                .collect()
        }
        None => Vec::new(),
    };
    if !changed.is_empty() {
        // Which fields changed, and the account as it is now (no hash).
        let payload = serde_json::json!({"changed": changed, "account": &after});
        crate::publish::publish(&state, after.uuid, "account.changed", payload);
    }
    Ok(Payload(after))
}
