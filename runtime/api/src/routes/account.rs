//! The account signed in: `GET /rest/account` and `PATCH /rest/account {name, time_zone}`;
//! its money: `GET /rest/account/balance` and `POST /rest/account/transactions/search` (the
//! ledger: the operator's credits, each rated call's and message's charge).
//!
//! There is no id in the path: the account is the caller's own, so no other account's can be
//! named. The e-mail (the login) and the password are not changed here. A change is published
//! as `account.changed` (websocket and webhook subscribers of the account's events) with the
//! fields that changed and the account as it is now.

use std::str::FromStr;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use opentact_store::{Account, AccountPatch, ObjectKind, Transaction, TransactionFilter, TransactionKind};
use serde::{Deserialize, Serialize};

use crate::auth::AuthAccount;
use crate::envelope::{ApiJson, ApiQuery, Page, Paging, Payload};
use crate::error::ApiError;
use crate::openapi as doc;
use crate::state::ApiState;

/// Longest account name, characters.
const MAX_NAME: usize = 100;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/rest/account", get(show).patch(update))
        .route("/rest/account/balance", get(balance))
        .route("/rest/account/transactions/search", post(search_transactions))
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

pub(crate) fn check_name(name: &str) -> Result<String, ApiError> {
    let name = crate::envelope::check_name("name", name, MAX_NAME)?;
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid("name", "no control characters (line breaks, tabs)"));
    }
    Ok(name)
}

pub(crate) fn check_time_zone(zone: &str) -> Result<String, ApiError> {
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

/// `GET /rest/account/balance`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Balance {
    /// Micro-units (1.000000 = 1 000 000); below zero when calls in progress together took
    /// more than was left.
    pub balance_micros: i64,
    /// The same, as a decimal with six places.
    #[schema(example = "12.500000")]
    pub balance: String,
    /// The platform's currency (`[rating] currency`).
    #[schema(example = "USD")]
    pub currency: String,
}

#[utoipa::path(
    get,
    operation_id = "account_balance",
    path = "/rest/account/balance",
    tag = "account",
    summary = "The account's balance",
    responses((status = 200, description = "OK", body = doc::Envelope<Balance>), doc::ApiErrors)
)]
pub(crate) async fn balance(
    State(state): State<ApiState>,
    auth: AuthAccount,
) -> Result<Payload<Balance>, ApiError> {
    let balance_micros = state.repo.balance(auth.account).await?;
    Ok(Payload(Balance {
        balance_micros,
        balance: opentact_rating::format_amount(balance_micros),
        currency: state.config.currency.clone(),
    }))
}

/// `POST /rest/account/transactions/search`: every field optional.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransactionSearch {
    /// `credit`, `call` or `sms`.
    #[serde(default)]
    pub kind: Option<TransactionKind>,
    /// The call or message charged.
    #[serde(default)]
    pub reference: Option<uuid::Uuid>,
    /// Made at or after this (ISO-8601).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub since: Option<DateTime<Utc>>,
    /// Made before this (ISO-8601).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub until: Option<DateTime<Utc>>,
    /// `{"created_on": "ASC" | "DESC"}`.
    #[serde(default)]
    pub order: Option<crate::routes::numbers::SortOrder>,
}

#[utoipa::path(
    post,
    operation_id = "account_transactions_search",
    path = "/rest/account/transactions/search",
    tag = "account",
    summary = "Search the account's ledger: credits and the charges of rated calls and messages",
    params(crate::envelope::Paging),
    request_body = TransactionSearch,
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<Transaction>>), doc::ApiErrors)
)]
pub(crate) async fn search_transactions(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiQuery(paging): ApiQuery<Paging>,
    ApiJson(body): ApiJson<TransactionSearch>,
) -> Result<Payload<Page<Transaction>>, ApiError> {
    let params = paging.search_params(body.order, body.since, body.until)?;
    let filter = TransactionFilter {
        kind: body.kind,
        reference: body.reference,
        since: body.since,
        until: body.until,
    };
    Ok(Payload(state.repo.search_transactions(auth.account, filter, params).await?))
}
