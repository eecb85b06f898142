//! Verified caller IDs: `GET/POST /rest/verified_number`, `GET/DELETE
//! /rest/verified_number/{uuid}`, `POST /rest/verified_number/{uuid}/verify {code}`.
//!
//! A flow's `<Dial callerId>` may present a number the account leases or one of these, once
//! verified: the account shows it answers the number. Creating one places a call from one of
//! the account's numbers (`from`) to it that says a six-digit code; typing the code back within
//! [`CODE_LIFETIME_MINUTES`] verifies it. At most [`MAX_ATTEMPTS`] wrong codes are accepted;
//! then (or after the code expires) the number is deleted and created again for a new code.

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use chrono::{Duration, Utc};
use opentact_control::{Originate, OriginateError};
use opentact_store::{AppMode, ObjectKind, VerifiedNumber};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::AuthAccount;
use crate::envelope::{ApiJson, ApiQuery, Created, IdPath, Page, Paging, Payload};
use crate::error::ApiError;
use crate::openapi as doc;
use crate::state::ApiState;

/// How long a code is accepted.
pub const CODE_LIFETIME_MINUTES: i64 = 10;
/// Wrong codes a pending number takes before it must be created again.
pub const MAX_ATTEMPTS: u32 = 5;
/// How long the verification call rings.
const RING_SECS: u32 = 45;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/rest/verified_number", get(list).post(create))
        .route("/rest/verified_number/{uuid}", get(get_one).delete(remove))
        .route("/rest/verified_number/{uuid}/verify", post(verify))
}

fn number_field(field: &str, value: &Value) -> Result<i64, ApiError> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.strip_prefix('+').unwrap_or(s).to_owned(),
        _ => String::new(),
    };
    if !(7..=15).contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid(field, "a number with country code, 7 to 15 digits (12025550100)"));
    }
    text.parse().map_err(|_| ApiError::invalid(field, "not a number"))
}

fn code_hash(number: i64, code: &str) -> String {
    let digest = Sha256::digest(format!("{number}:{code}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn new_code() -> Result<String, ApiError> {
    let mut bytes = [0u8; 4];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| ApiError::Unavailable("the random source failed".to_owned()))?;
    Ok(format!("{:06}", u32::from_le_bytes(bytes) % 1_000_000))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVerifiedNumber {
    /// The number to verify (country code first).
    #[schema(value_type = String)]
    number: Value,
    /// The account's number the verification call comes from.
    #[schema(value_type = String)]
    from: Value,
}

#[utoipa::path(
    post,
    operation_id = "verified_number_create",
    path = "/rest/verified_number",
    tag = "verified_number",
    summary = "Register a number the account does not lease as a caller ID: a call from `from` says a code to it",
    request_body = NewVerifiedNumber,
    responses((status = 201, description = "Created: pending until the code is confirmed", body = doc::Envelope<VerifiedNumber>), doc::ApiErrors)
)]
pub(crate) async fn create(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiJson(body): ApiJson<NewVerifiedNumber>,
) -> Result<Created<VerifiedNumber>, ApiError> {
    let account = auth.account;
    let number = number_field("number", &body.number)?;
    let from = number_field("from", &body.from)?;
    let lease = state.repo.lease_by_tn(from).await?.filter(|lease| lease.account == account);
    let from_lease = match lease {
        None => return Err(ApiError::invalid("from", format!("{from} is not a number of this account"))),
        Some(lease) if !lease.voice => {
            return Err(ApiError::invalid("from", format!("{from} has no voice service")));
        }
        Some(lease) => lease,
    };
    if state.repo.lease_by_tn(number).await?.is_some_and(|lease| lease.account == account) {
        return Err(ApiError::invalid(
            "number",
            format!("{number} is leased by this account: it needs no verifying"),
        ));
    }
    let Some(calling) = state.calling.clone() else {
        return Err(ApiError::Unavailable("verification calls are not placed by this server".to_owned()));
    };
    let code = new_code()?;
    let expires = Utc::now() + Duration::minutes(CODE_LIFETIME_MINUTES);
    let created =
        state.repo.create_verified_number(account, number, code_hash(number, &code), expires).await?;
    let spoken: Vec<String> = code.chars().map(String::from).collect();
    let spoken = spoken.join(", ");
    let document = format!(
        "<Response><Pause length=\"1000\"/><Say>Your verification code is {spoken}.</Say>\
         <Pause length=\"500\"/><Say>Again: {spoken}.</Say><Hangup/></Response>"
    );
    let request = Originate {
        from_tn: from,
        to: opentact_call::model::DialTarget::Number(number.to_string()),
        mode: AppMode::Xml { document },
        app: None,
        ring_timeout_secs: RING_SECS,
        profile: None,
        event_url: from_lease.event_url,
    };
    if let Err(error) = calling.originate(account, request).await {
        // No code went out: nothing to verify against.
        let _ = state.repo.delete_verified_number(account, created.uuid).await;
        return Err(match error {
            OriginateError::Limit { reason, .. } => ApiError::LimitReached(reason),
            OriginateError::Unavailable(reason) => ApiError::Unavailable(reason),
            OriginateError::PaymentRequired { reason, .. } => ApiError::PaymentRequired(reason),
        });
    }
    Ok(Created(created))
}

#[utoipa::path(
    get,
    operation_id = "verified_number_list",
    path = "/rest/verified_number",
    tag = "verified_number",
    summary = "The account's verified caller IDs",
    params(crate::envelope::Paging),
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<VerifiedNumber>>), doc::ApiErrors)
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Payload<Page<VerifiedNumber>>, ApiError> {
    Ok(Payload(state.repo.list_verified_numbers(auth.account, paging.params()?).await?))
}

#[utoipa::path(
    get,
    operation_id = "verified_number_get",
    path = "/rest/verified_number/{uuid}",
    tag = "verified_number",
    summary = "A verified caller ID",
    params(("uuid" = Uuid, Path)),
    responses((status = 200, description = "OK", body = doc::Envelope<VerifiedNumber>), doc::ApiErrors)
)]
pub(crate) async fn get_one(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<VerifiedNumber>, ApiError> {
    match state.repo.get_verified_number(auth.account, id).await? {
        Some(number) => Ok(Payload(number)),
        None => Err(ApiError::not_found(ObjectKind::VerifiedNumber, id)),
    }
}

#[utoipa::path(
    delete,
    operation_id = "verified_number_delete",
    path = "/rest/verified_number/{uuid}",
    tag = "verified_number",
    summary = "Delete a verified caller ID (to start over with a new code)",
    params(("uuid" = Uuid, Path)),
    responses((status = 200, description = "OK", body = doc::Envelope<serde_json::Value>), doc::ApiErrors)
)]
pub(crate) async fn remove(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<Value>, ApiError> {
    state.repo.delete_verified_number(auth.account, id).await?;
    Ok(Payload(serde_json::json!({ "uuid": id })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Code {
    code: String,
}

#[utoipa::path(
    post,
    operation_id = "verified_number_verify",
    path = "/rest/verified_number/{uuid}/verify",
    tag = "verified_number",
    summary = "Confirm the code the verification call said",
    params(("uuid" = Uuid, Path)),
    request_body = Code,
    responses((status = 200, description = "OK", body = doc::Envelope<VerifiedNumber>), doc::ApiErrors)
)]
pub(crate) async fn verify(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<Code>,
) -> Result<Payload<VerifiedNumber>, ApiError> {
    let number = state
        .repo
        .get_verified_number(auth.account, id)
        .await?
        .ok_or(ApiError::not_found(ObjectKind::VerifiedNumber, id))?;
    if number.verified_on.is_some() {
        return Ok(Payload(number));
    }
    if number.attempts >= MAX_ATTEMPTS {
        return Err(ApiError::invalid(
            "code",
            format!("{MAX_ATTEMPTS} wrong codes: delete the number and create it again for a new code"),
        ));
    }
    if number.expired_on <= Utc::now() {
        return Err(ApiError::invalid(
            "code",
            "the code expired: delete the number and create it again for a new code",
        ));
    }
    if code_hash(number.tn, body.code.trim()) != number.code_hash {
        state.repo.count_verification_attempt(auth.account, id).await?;
        let left = MAX_ATTEMPTS.saturating_sub(number.attempts + 1);
        return Err(ApiError::invalid("code", format!("the code does not match ({left} attempts left)")));
    }
    Ok(Payload(state.repo.mark_number_verified(auth.account, id).await?))
}
