//! The account signed in: `GET /rest/account` and `PATCH /rest/account {name, time_zone,
//! contact: {company, phone, address}}`;
//! its money: `GET /rest/account/balance` and `POST /rest/account/transactions/search` (the
//! ledger: the operator's credits, each rated call's, dialled leg's and message's charge, each
//! month of a leased number).
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
    /// Contact details: each key given is changed, `null` clears it, absent keys stay.
    pub contact: Option<ContactBody>,
}

/// `PATCH /rest/account`'s `contact`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    /// 1–100 characters.
    #[serde(default, deserialize_with = "crate::routes::lease::nullable")]
    #[schema(max_length = 100)]
    pub company: Option<Option<String>>,
    /// With its country code: `+` and 8 to 15 digits.
    #[serde(default, deserialize_with = "crate::routes::lease::nullable")]
    #[schema(pattern = "^\\+[0-9]{8,15}$")]
    pub phone: Option<Option<String>>,
    /// A postal address, 1–300 characters (line breaks allowed).
    #[serde(default, deserialize_with = "crate::routes::lease::nullable")]
    #[schema(max_length = 300)]
    pub address: Option<Option<String>>,
}

/// Longest postal address, characters.
const MAX_ADDRESS: usize = 300;

fn check_company(company: &str) -> Result<String, ApiError> {
    one_line("contact.company", company)
}

fn check_phone(phone: &str) -> Result<String, ApiError> {
    let digits = phone.trim().strip_prefix('+').unwrap_or_default();
    if (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(format!("+{digits}"))
    } else {
        Err(ApiError::invalid(
            "contact.phone",
            "must be + and 8 to 15 digits with the country code (+12025550100)",
        ))
    }
}

fn check_address(address: &str) -> Result<String, ApiError> {
    let address = address.trim();
    if address.is_empty() || address.chars().count() > MAX_ADDRESS {
        return Err(ApiError::invalid("contact.address", format!("must be 1 to {MAX_ADDRESS} characters")));
    }
    if address.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::invalid("contact.address", "no control characters but line breaks"));
    }
    Ok(address.to_owned())
}

/// A field of `contact`: absent stays, `null` clears, a value is checked.
fn contact_field(
    value: Option<Option<String>>,
    check: fn(&str) -> Result<String, ApiError>,
) -> Result<Option<Option<String>>, ApiError> {
    value.map(|value| value.as_deref().map(check).transpose()).transpose()
}

pub(crate) fn check_name(name: &str) -> Result<String, ApiError> {
    one_line("name", name)
}

/// 1–100 characters on one line.
fn one_line(field: &str, text: &str) -> Result<String, ApiError> {
    let text = crate::envelope::check_name(field, text, MAX_NAME)?;
    if text.chars().any(char::is_control) {
        return Err(ApiError::invalid(field, "no control characters (line breaks, tabs)"));
    }
    Ok(text)
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
    summary = "Change the account's name, time zone or contact details",
    request_body = AccountBody,
    responses((status = 200, description = "OK", body = doc::Envelope<Account>), doc::ApiErrors)
)]
pub(crate) async fn update(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiJson(body): ApiJson<AccountBody>,
) -> Result<Payload<Account>, ApiError> {
    let contact = body.contact.unwrap_or_default();
    if body.name.is_none()
        && body.time_zone.is_none()
        && contact.company.is_none()
        && contact.phone.is_none()
        && contact.address.is_none()
    {
        return Err(ApiError::invalid(
            "body",
            "nothing to change: name, time_zone or contact (company, phone, address)",
        ));
    }
    let patch = AccountPatch {
        name: body.name.as_deref().map(check_name).transpose()?,
        email: None,
        time_zone: body.time_zone.as_deref().map(check_time_zone).transpose()?,
        company: contact_field(contact.company, check_company)?,
        phone: contact_field(contact.phone, check_phone)?,
        address: contact_field(contact.address, check_address)?,
    };
    let before = state.repo.get_account(auth.account).await?;
    let after = state.repo.update_account(auth.account, patch).await?;
    let changed: Vec<&str> = match &before {
        Some(before) => [
            ("name", before.name != after.name),
            ("time_zone", before.time_zone != after.time_zone),
            ("contact", before.contact != after.contact),
        ]
        .into_iter()
        .filter_map(|(field, differs)| differs.then_some(field))
        .collect(),
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
    /// Micro-units (1.000000 = 1 000 000). Below zero only after an operator's correction, or
    /// when charges the calls in progress had not yet heard of (a message, another node's
    /// calls) took what they were still spending.
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
    /// What was charged: a call, a dialled leg, a message or a lease.
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
    summary = "Search the account's ledger: credits, and the charges of calls, legs, messages and numbers",
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
