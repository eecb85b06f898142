//! Bulk calls: `POST /rest/batch`, `GET /rest/batch`, `GET/DELETE /rest/batch/{uuid}`.
//!
//! A batch calls every number of a list from one of the account's leased numbers; each
//! answered call runs the batch's flow, an XML document of the dialect or a SIP Control App.
//! The body is checked whole before anything is stored: the lease (the account's, in force,
//! with voice), the profile and the app (the account's), every number (an integer with the
//! country code, or a string of digits with an optional `+`; a bad one is named by its index),
//! the document (the dialect's own parser, with line and column), the ring timeout. The stored
//! batch is then handed to the server's runner, which places the calls paced by the outbound
//! voice profile (`channel_limit`, `calls_per_second`) and records each number's outcome;
//! `GET /rest/batch/{uuid}` shows them. `DELETE` cancels: no new call is placed, calls in
//! progress finish.

use std::fmt;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use opentact_store::{Batch, BatchItem, NewBatch, ObjectKind, StoreError};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::auth::AuthAccount;
use crate::envelope::{ApiJson, ApiQuery, Created, IdPath, Page, Paging, Payload};
use crate::error::ApiError;
use crate::openapi as doc;
use crate::routes::app::MAX_XML_BYTES;
use crate::state::ApiState;

/// Most numbers one batch may call.
pub const MAX_BATCH_PHONES: usize = 10_000;
/// Fewest digits of a number to call (with its country code).
pub const MIN_PHONE_DIGITS: usize = 7;
/// Most digits of a number to call (E.164's limit).
pub const MAX_PHONE_DIGITS: usize = 15;
/// Shortest ring timeout, seconds.
pub const MIN_RING_TIMEOUT_SECS: i64 = 5;
/// Longest ring timeout, seconds.
pub const MAX_RING_TIMEOUT_SECS: i64 = 120;
/// Ring timeout when the body gives none, seconds.
pub const DEFAULT_RING_TIMEOUT_SECS: i64 = 30;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/rest/batch", get(list).post(create))
        .route("/rest/batch/{uuid}", get(get_one).delete(cancel))
}

/// A number to call as sent: a JSON integer or a string, checked later with its index.
#[derive(Debug, Clone)]
pub enum Phone {
    Integer(i128),
    Text(String),
}

impl utoipa::PartialSchema for Phone {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        doc::integer_or_string(
            "A number with its country code: an integer, or a string of 7 to 15 digits with an optional +",
        )
    }
}

impl utoipa::ToSchema for Phone {}

impl<'de> Deserialize<'de> for Phone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Phone;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a telephone number: an integer with the country code, or a string of digits")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Phone, E> {
                Ok(Phone::Integer(i128::from(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Phone, E> {
                Ok(Phone::Integer(i128::from(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Phone, E> {
                Ok(Phone::Text(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The number as digits only, or why it is not one.
pub(crate) fn normalize(phone: &Phone) -> Option<String> {
    let digits = match phone {
        Phone::Integer(n) if *n > 0 => n.to_string(),
        Phone::Integer(_) => return None,
        Phone::Text(s) => {
            let s = s.trim();
            s.strip_prefix('+').unwrap_or(s).to_owned()
        }
    };
    let ok = (MIN_PHONE_DIGITS..=MAX_PHONE_DIGITS).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(digits)
}

/// The numbers, digits only, in order; a 422 naming the first bad one by its index.
fn check_phones(phones: &[Phone]) -> Result<Vec<String>, ApiError> {
    if phones.is_empty() || phones.len() > MAX_BATCH_PHONES {
        return Err(ApiError::invalid(
            "phones",
            format!("give 1 to {MAX_BATCH_PHONES} numbers (got {})", phones.len()),
        ));
    }
    phones
        .iter()
        .enumerate()
        .map(|(i, phone)| {
            normalize(phone).ok_or_else(|| {
                let shown = match phone {
                    Phone::Integer(n) => n.to_string(),
                    Phone::Text(s) => format!("{s:?}"),
                };
                ApiError::invalid(
                    format!("phones[{i}]"),
                    format!(
                        "{shown} is not a telephone number: send {MIN_PHONE_DIGITS} to {MAX_PHONE_DIGITS} digits \
                         with the country code, as an integer or a string (an optional leading + is allowed)"
                    ),
                )
            })
        })
        .collect()
}

/// The body of `POST /rest/batch`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = NewBatch)]
#[serde(deny_unknown_fields)]
pub struct NewBatchBody {
    /// The profile whose limits pace the calls (`channel_limit`, `calls_per_second`).
    #[serde(default)]
    pub outbound_voice_profile: Option<Uuid>,
    /// The lease whose number the calls come from; it must have voice.
    pub tn_lease: Uuid,
    /// The numbers to call, in order.
    #[schema(min_items = 1, max_items = 10000)]
    pub phones: Vec<Phone>,
    /// The XML document an answered call runs (or `sip_control_app`).
    #[serde(default)]
    #[schema(max_length = 262144)]
    pub xml: Option<String>,
    /// The app an answered call runs (or `xml`).
    #[serde(default)]
    pub sip_control_app: Option<Uuid>,
    /// How long each call rings before it counts as not answered, seconds (default 30).
    #[serde(default)]
    #[schema(minimum = 5, maximum = 120)]
    pub timeout: Option<i64>,
}

/// What a 503 means here.
fn not_running() -> ApiError {
    ApiError::Unavailable("outbound calling is not running on this server, so no batch can be placed".into())
}

/// The store's `NotFound` for a reference of the body (one deleted while the batch was
/// being created) as a 422 on its field.
fn reference(e: StoreError) -> ApiError {
    let field = match &e {
        StoreError::NotFound { kind: ObjectKind::TnLease, .. } => "tn_lease",
        StoreError::NotFound { kind: ObjectKind::OutboundVoiceProfile, .. } => "outbound_voice_profile",
        StoreError::NotFound { kind: ObjectKind::SipControlApp, .. } => "sip_control_app",
        _ => return e.into(),
    };
    ApiError::reference(e, ObjectKind::Batch, field)
}

#[utoipa::path(
    post,
    operation_id = "batch_create",
    path = "/rest/batch",
    tag = "batch",
    summary = "Call a list of numbers from a leased number, each answered call running one flow",
    description = "Give exactly one of `xml` and `sip_control_app`. The batch is stored queued and its calls \
        are placed in the background, paced by the outbound voice profile; `GET /rest/batch/{uuid}` shows \
        each number's outcome.",
    request_body = NewBatchBody,
    responses(
        (status = 201, description = "Created", body = doc::Envelope<Batch>),
        doc::ApiErrors,
        (status = 503, description = "Outbound calling is not running on this server", body = doc::ErrorEnvelope),
    )
)]
async fn create(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiJson(body): ApiJson<NewBatchBody>,
) -> Result<Created<Batch>, ApiError> {
    let phones = check_phones(&body.phones)?;
    match (&body.xml, &body.sip_control_app) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("xml", "give either xml or sip_control_app, not both"));
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "xml",
                "give the flow: xml (a document) or sip_control_app (an app's uuid)",
            ));
        }
        _ => {}
    }
    let timeout = body.timeout.unwrap_or(DEFAULT_RING_TIMEOUT_SECS);
    if !(MIN_RING_TIMEOUT_SECS..=MAX_RING_TIMEOUT_SECS).contains(&timeout) {
        return Err(ApiError::invalid(
            "timeout",
            format!("must be {MIN_RING_TIMEOUT_SECS} to {MAX_RING_TIMEOUT_SECS} seconds (got {timeout})"),
        ));
    }
    if let Some(xml) = &body.xml {
        if xml.len() > MAX_XML_BYTES {
            return Err(ApiError::invalid("xml", format!("at most {MAX_XML_BYTES} bytes")));
        }
        // The parser the XML guest runs: what is accepted here runs on the calls.
        opentact_xml::parse(xml).map_err(|errors| ApiError::invalid("xml", errors.to_string()))?;
    }
    let account = auth.account;
    let lease = state
        .repo
        .get_lease(account, body.tn_lease)
        .await?
        .filter(|lease| lease.released_on.is_none())
        .ok_or_else(|| ApiError::invalid("tn_lease", format!("tn lease {} not found", body.tn_lease)))?;
    if !lease.voice {
        return Err(ApiError::invalid(
            "tn_lease",
            format!(
                "the number {} has no voice: enable it with PATCH /rest/lease/tn/{} {{\"voice\": true}}",
                lease.tn, lease.uuid
            ),
        ));
    }
    if let Some(profile) = body.outbound_voice_profile
        && state.repo.get_ovp(account, profile).await?.is_none()
    {
        return Err(ApiError::invalid(
            "outbound_voice_profile",
            format!("{} {profile} not found", ObjectKind::OutboundVoiceProfile),
        ));
    }
    if let Some(app) = body.sip_control_app
        && state.repo.get_app(account, app).await?.is_none()
    {
        return Err(ApiError::invalid(
            "sip_control_app",
            format!("{} {app} not found", ObjectKind::SipControlApp),
        ));
    }
    // Checked last, so a request with mistakes learns of them even from a server that does not
    // place calls; and before storing, so no batch waits for a runner that is not there.
    let Some(launcher) = state.batch_launcher.clone() else { return Err(not_running()) };
    let new = NewBatch {
        outbound_voice_profile: body.outbound_voice_profile,
        tn_lease: lease.uuid,
        from_tn: lease.tn,
        xml: body.xml,
        sip_control_app: body.sip_control_app,
        // In range (checked above).
        ring_timeout_secs: i32::try_from(timeout).unwrap_or(i32::MAX),
        phones,
    };
    let batch = state.repo.create_batch(account, new).await.map_err(reference)?;
    tracing::info!(batch = %batch.uuid, numbers = batch.total, "batch stored");
    launcher.launch(account, batch.uuid);
    Ok(Created(batch))
}

#[utoipa::path(
    get,
    operation_id = "batch_list",
    path = "/rest/batch",
    tag = "batch",
    summary = "The account's batches, oldest first, with their counts",
    params(crate::envelope::Paging),
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<Batch>>), doc::ApiErrors)
)]
async fn list(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Payload<Page<Batch>>, ApiError> {
    let params = paging.params()?;
    let page = state.repo.list_batches(auth.account, i64::from(params.take), i64::from(params.skip)).await?;
    Ok(Payload(page))
}

/// A batch with every number's outcome.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchDetail {
    #[serde(flatten)]
    pub batch: Batch,
    /// In list order; absent with `?items=false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<BatchItem>>,
}

/// `?items=` of `GET /rest/batch/{uuid}`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DetailQuery {
    /// `false` for the counts alone (a progress display polling a large batch); default `true`.
    pub items: Option<bool>,
}

#[utoipa::path(
    get,
    operation_id = "batch_get_one",
    path = "/rest/batch/{uuid}",
    tag = "batch",
    summary = "A batch: its counts and every number's outcome",
    params(("uuid" = uuid::Uuid, Path, description = "The batch's id"), DetailQuery),
    responses((status = 200, description = "OK", body = doc::Envelope<BatchDetail>), doc::ApiErrors)
)]
async fn get_one(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
    ApiQuery(query): ApiQuery<DetailQuery>,
) -> Result<Payload<BatchDetail>, ApiError> {
    let Some(batch) = state.repo.get_batch(auth.account, id).await? else {
        return Err(ApiError::not_found(ObjectKind::Batch, id));
    };
    let items = match query.items {
        Some(false) => None,
        _ => Some(state.repo.batch_items(id).await?),
    };
    Ok(Payload(BatchDetail { batch, items }))
}

#[utoipa::path(
    delete,
    operation_id = "batch_cancel",
    path = "/rest/batch/{uuid}",
    tag = "batch",
    summary = "Cancel a batch: no new call is placed, calls in progress finish",
    description = "Answers the batch, `cancelled`. Cancelling a cancelled batch answers it again; a completed \
        batch answers 409.",
    params(("uuid" = uuid::Uuid, Path, description = "The batch's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<Batch>), doc::ApiErrors)
)]
async fn cancel(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<Batch>, ApiError> {
    let batch = state.repo.cancel_batch(auth.account, id).await?;
    tracing::info!(batch = %id, "batch cancelled");
    Ok(Payload(batch))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phones(json: serde_json::Value) -> Result<Vec<String>, String> {
        let phones: Vec<Phone> = serde_json::from_value(json).map_err(|e| e.to_string())?;
        check_phones(&phones).map_err(|e| e.to_string())
    }

    #[test]
    fn phones_are_integers_or_digit_strings() {
        assert_eq!(
            phones(serde_json::json!([12025550100_i64, "+14155550100", " 4420718387500 ", "1234567"])),
            Ok(vec!["12025550100".into(), "14155550100".into(), "4420718387500".into(), "1234567".into()])
        );
        for (bad, index) in [
            (serde_json::json!([12025550100_i64, "202-555-0100"]), 1),
            (serde_json::json!(["123456"]), 0),
            (serde_json::json!(["1234567890123456"]), 0),
            (serde_json::json!([12025550100_i64, 12025550101_i64, -12025550100_i64]), 2),
            (serde_json::json!(["++12025550100"]), 0),
            (serde_json::json!([""]), 0),
        ] {
            let message = phones(bad.clone()).expect_err("a bad number");
            assert!(message.starts_with(&format!("phones[{index}]: ")), "{bad}: {message}");
            assert!(message.contains("7 to 15 digits"), "{message}");
        }
        assert!(phones(serde_json::json!([])).expect_err("none").contains("1 to 10000"));
        let many: Vec<u64> = (0..=MAX_BATCH_PHONES as u64).map(|i| 12_025_550_000 + i).collect();
        assert!(phones(serde_json::json!(many)).expect_err("too many").contains("got 10001"));
        // Neither an integer nor a string: refused while reading the body.
        assert!(phones(serde_json::json!([true])).is_err());
        assert!(phones(serde_json::json!([1.5])).is_err());
    }
}
