//! Event subscriptions: `GET/POST /rest/event/subscription`,
//! `DELETE /rest/event/subscription/{uuid}`; the account's webhook signing key:
//! `GET /rest/event/key`; what became of recent deliveries: `GET /rest/event/delivery`; and
//! `POST /rest/event/test`, which sends a sample event of a chosen type to a URL (or a
//! subscription's) now and answers with what the receiver said.
//!
//! A subscription names an event `type` (`call.hangup`), a family (`call.*`) or all (`*`),
//! and a channel: `webhook` (signed POSTs to `url`, falling back to `url2`) or `wss` (the
//! account's websocket clients). An account has at most [`MAX_SUBSCRIPTIONS_PER_ACCOUNT`];
//! a webhook's URLs must name destinations the platform may call ([`crate::url_policy`]).

use axum::Router;
use axum::extract::State;
use axum::routing::{delete, get, post};
use opentact_events::signing::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use opentact_store::{
    DeliveryState, EventChannel, EventSubscription, ListParams, NewEventSubscription, SigningKey,
    WebhookDelivery,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::AuthAccount;
use crate::envelope::{ApiJson, ApiQuery, Created, IdPath, Page, Paging, Payload};
use crate::error::ApiError;
use crate::openapi as doc;
use crate::routes::app::WEBHOOKS;
use crate::routes::sip_connection::Deleted;
use crate::state::ApiState;

/// Longest event type pattern.
pub const MAX_TYPE: usize = 64;

/// Most subscriptions (webhook and wss) an account may have: every event of the account is
/// matched against each, and each webhook one can add a delivery per event, so one account
/// cannot make every event cost the platform thousands of deliveries.
pub const MAX_SUBSCRIPTIONS_PER_ACCOUNT: i64 = 100;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/rest/event/subscription", get(list).post(create))
        .route("/rest/event/subscription/{uuid}", delete(remove))
        .route("/rest/event/key", get(key))
        .route("/rest/event/delivery", get(deliveries))
        .route("/rest/event/test", post(test_webhook))
}

fn check_type(t: &str) -> Result<String, ApiError> {
    let body = t.strip_suffix(".*").unwrap_or(t);
    let ok = t == "*"
        || (!body.is_empty()
            && t.len() <= MAX_TYPE
            && body.split('.').all(|part| {
                !part.is_empty()
                    && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            }));
    if ok {
        Ok(t.to_owned())
    } else {
        Err(ApiError::invalid(
            "type",
            format!("must be an event type (call.hangup), a family (call.*) or * for all, got {t:?}"),
        ))
    }
}

#[utoipa::path(
    get,
    operation_id = "event_list",
    path = "/rest/event/subscription",
    tag = "events",
    summary = "The account's event subscriptions",
    params(crate::envelope::Paging),
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<EventSubscription>>), doc::ApiErrors)
)]
async fn list(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Payload<Page<EventSubscription>>, ApiError> {
    Ok(Payload(state.repo.list_subscriptions(auth.account, paging.params()?).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    pub channel: EventChannel,
    /// An event type (`call.hangup`), a family (`call.*`) or `*` for all.
    #[serde(rename = "type")]
    #[schema(max_length = 64, example = "call.*")]
    pub event_type: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub url2: Option<String>,
}

#[utoipa::path(
    post,
    operation_id = "event_create",
    path = "/rest/event/subscription",
    tag = "events",
    summary = "Subscribe to events by webhook or over the websocket",
    request_body = NewSubscription,
    responses((status = 201, description = "Created", body = doc::Envelope<EventSubscription>), doc::ApiErrors)
)]
async fn create(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiJson(body): ApiJson<NewSubscription>,
) -> Result<Created<EventSubscription>, ApiError> {
    let event_type = check_type(&body.event_type)?;
    let (url, url2) = match body.channel {
        EventChannel::Webhook => {
            let Some(url) = body.url.as_deref() else {
                return Err(ApiError::invalid("url", "a webhook subscription needs the URL to POST to"));
            };
            let policy = &state.webhook_urls;
            let url2 = body.url2.as_deref().map(|u| policy.check("url2", WEBHOOKS, u)).transpose()?;
            (Some(policy.check("url", WEBHOOKS, url)?), url2)
        }
        EventChannel::Wss => {
            if body.url.is_some() || body.url2.is_some() {
                return Err(ApiError::invalid("url", "wss subscriptions go to the websocket: send no url"));
            }
            (None, None)
        }
    };
    let new = NewEventSubscription { channel: body.channel, event_type, url, url2 };
    // Counted and created under one lock, so a burst of creations cannot pass the cap
    // together (creations are rare: one lock for all accounts is enough).
    let _counting = state.subscriptions_lock.lock().await;
    let existing = state.repo.list_subscriptions(auth.account, ListParams::page(1, 0)).await?.total;
    if existing >= MAX_SUBSCRIPTIONS_PER_ACCOUNT {
        return Err(ApiError::invalid(
            "subscription",
            format!(
                "the account has {existing} event subscriptions, the most allowed is \
                 {MAX_SUBSCRIPTIONS_PER_ACCOUNT}: delete one, or subscribe to a family (call.*) or * instead"
            ),
        ));
    }
    Ok(Created(state.repo.create_subscription(auth.account, new).await?))
}

#[utoipa::path(
    delete,
    operation_id = "event_remove",
    path = "/rest/event/subscription/{uuid}",
    tag = "events",
    summary = "Delete an event subscription",
    params(("uuid" = uuid::Uuid, Path, description = "The subscription's id")),
    responses((status = 200, description = "OK", body = doc::Envelope<Deleted>), doc::ApiErrors)
)]
async fn remove(
    State(state): State<ApiState>,
    auth: AuthAccount,
    IdPath(id): IdPath,
) -> Result<Payload<Deleted>, ApiError> {
    state.repo.delete_subscription(auth.account, id).await?;
    Ok(Payload(Deleted { uuid: id, deleted: true }))
}

/// How to check the platform's webhook requests.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookKey {
    pub algorithm: &'static str,
    /// The account's Ed25519 public key, base64 (32 bytes).
    pub public_key: String,
    pub signature_header: &'static str,
    pub timestamp_header: &'static str,
    /// What is signed.
    pub signed_text: &'static str,
}

/// The account's signing key, made on first use.
async fn signing_key(state: &ApiState, account: Uuid) -> Result<SigningKey, ApiError> {
    Ok(match state.repo.signing_key(account).await? {
        Some(key) => key,
        None => {
            let (public_key, private_pkcs8) =
                signing::generate().map_err(|e| ApiError::Unavailable(e.to_string()))?;
            state.repo.insert_signing_key(account, SigningKey { public_key, private_pkcs8 }).await?
        }
    })
}

#[utoipa::path(
    get,
    operation_id = "event_key",
    path = "/rest/event/key",
    tag = "events",
    summary = "The public key that checks the platform's signed webhook requests",
    responses((status = 200, description = "OK", body = doc::Envelope<WebhookKey>), doc::ApiErrors)
)]
async fn key(State(state): State<ApiState>, auth: AuthAccount) -> Result<Payload<WebhookKey>, ApiError> {
    let key = signing_key(&state, auth.account).await?;
    Ok(Payload(WebhookKey {
        algorithm: "ed25519",
        public_key: key.public_key,
        signature_header: SIGNATURE_HEADER,
        timestamp_header: TIMESTAMP_HEADER,
        signed_text: "<timestamp>|<body>",
    }))
}

/// A delivery as the account sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    pub uuid: Uuid,
    pub event: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub url: String,
    pub state: DeliveryState,
    pub attempts: i32,
    pub last_error: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "opentact_store::model::millis")]
    pub created_on: opentact_store::Timestamp,
}

impl From<WebhookDelivery> for DeliveryView {
    fn from(d: WebhookDelivery) -> Self {
        DeliveryView {
            uuid: d.uuid,
            event: d.event,
            event_type: d.event_type,
            url: d.url,
            state: d.state,
            attempts: d.attempts,
            last_error: d.last_error,
            created_on: d.created_on,
        }
    }
}

#[utoipa::path(
    get,
    operation_id = "event_deliveries",
    path = "/rest/event/delivery",
    tag = "events",
    summary = "Recent webhook deliveries and what became of them",
    params(crate::envelope::Paging),
    responses((status = 200, description = "OK", body = doc::Envelope<doc::Page<DeliveryView>>), doc::ApiErrors)
)]
async fn deliveries(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Payload<Page<DeliveryView>>, ApiError> {
    let page = state.repo.list_deliveries(auth.account, paging.params()?).await?;
    Ok(Payload(page.map(Into::into)))
}

/// The event types a test webhook may send: the catalogue.
pub const TEST_EVENT_TYPES: [&str; 16] = [
    "call.initiated",
    "call.ringing",
    "call.answered",
    "call.live",
    "call.callflow",
    "call.bridged",
    "call.hangup",
    "call.destroyed",
    "sms.sent",
    "sms.received",
    "sms.status",
    "tn.order",
    "tn.changed",
    "record.available",
    "transcript.available",
    "account.changed",
];

/// Test webhooks one account may send a minute: each is a request the platform makes to a
/// URL the account chose.
pub const TEST_WEBHOOKS_PER_MINUTE: usize = 10;

/// How long a test webhook waits for the receiver.
pub const TEST_WEBHOOK_TIMEOUT_MS: u64 = 10_000;

/// The longest excerpt of the receiver's answer shown, bytes.
pub const TEST_WEBHOOK_EXCERPT: usize = 1024;

/// The largest answer read (its start is shown); a larger one is reported as an error.
const TEST_WEBHOOK_MAX_ANSWER: usize = 64 * 1024;

/// `POST /rest/event/test`: a sample event to `url`, or to a webhook subscription's URL.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestWebhookBody {
    /// One of the catalogue's event types (`call.hangup`, `sms.received`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// Where to send it (checked like a subscription's URL).
    #[serde(default)]
    pub url: Option<String>,
    /// Or: a webhook subscription of the account, whose `url` gets it.
    #[serde(default)]
    pub subscription: Option<Uuid>,
}

/// What the receiver said.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TestWebhookResult {
    pub url: String,
    /// The event sent (signed, as real ones are).
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
    /// Whether the receiver answered 2xx, as a delivery needs.
    pub delivered: bool,
    /// Its HTTP status, when it answered.
    pub status: Option<u16>,
    /// From sending to the whole answer, ms.
    pub time_ms: u64,
    pub content_type: Option<String>,
    /// The start of its answer (at most 1 KiB, as text).
    pub body: Option<String>,
    /// Why nothing was answered (refused, timed out, connection failed).
    pub error: Option<String>,
}

#[utoipa::path(
    post,
    operation_id = "event_test",
    path = "/rest/event/test",
    tag = "events",
    summary = "Send a sample event, signed, to a URL and see what the receiver answers",
    request_body = TestWebhookBody,
    responses(
        (status = 200, description = "Sent; what the receiver answered (or why it did not)", body = doc::Envelope<TestWebhookResult>),
        (status = 429, description = "Too many test webhooks this minute", body = doc::ErrorEnvelope),
        doc::ApiErrors
    )
)]
async fn test_webhook(
    State(state): State<ApiState>,
    auth: AuthAccount,
    ApiJson(body): ApiJson<TestWebhookBody>,
) -> Result<Payload<TestWebhookResult>, ApiError> {
    if !TEST_EVENT_TYPES.contains(&body.kind.as_str()) {
        return Err(ApiError::invalid(
            "type",
            format!("{:?} is not an event type; one of {}", body.kind, TEST_EVENT_TYPES.join(", ")),
        ));
    }
    let url = match (body.url, body.subscription) {
        (Some(url), None) => state.webhook_urls.check("url", WEBHOOKS, &url)?,
        (None, Some(id)) => {
            let subscription = state
                .repo
                .webhook_subscriptions(auth.account)
                .await?
                .into_iter()
                .find(|s| s.uuid == id)
                .ok_or_else(|| ApiError::not_found(opentact_store::ObjectKind::EventSubscription, id))?;
            subscription.url.ok_or_else(|| ApiError::invalid("subscription", "it has no URL"))?
        }
        _ => return Err(ApiError::invalid("url", "send either url or subscription")),
    };
    let minute = std::time::Duration::from_secs(60);
    state.test_webhooks.take(auth.account, TEST_WEBHOOKS_PER_MINUTE, minute).map_err(|retry_after_secs| {
        ApiError::RateLimited {
            message: format!("at most {TEST_WEBHOOKS_PER_MINUTE} test webhooks a minute"),
            retry_after_secs,
        }
    })?;
    let event = opentact_events::Event::now(
        auth.account,
        &body.kind,
        body.kind.starts_with("call.").then(Uuid::new_v4),
        serde_json::json!({"test": true, "note": "a sample event sent by POST /rest/event/test"}),
    );
    let json = event.to_json();
    let key = signing_key(&state, auth.account).await?;
    let signer = signing::Signer::from_pkcs8_base64(&key.private_pkcs8)
        .map_err(|e| ApiError::Unavailable(format!("the signing key: {e}")))?;
    let [timestamp, signature] = signer.headers(json.as_bytes());
    let headers = [(timestamp.0, timestamp.1.as_str()), (signature.0, signature.1.as_str())];
    let client = opentact_egress::http::Client::new(
        state.webhook_urls.egress(),
        &opentact_egress::http::ClientOptions { max_redirects: 0, ..Default::default() },
    );
    let caps = opentact_egress::http::Caps {
        timeout: std::time::Duration::from_millis(TEST_WEBHOOK_TIMEOUT_MS),
        max_body_bytes: TEST_WEBHOOK_MAX_ANSWER,
    };
    let started = std::time::Instant::now();
    let answer = client
        .send("POST", &url, &headers, Some(("application/json", json.clone().into_bytes())), &caps)
        .await;
    let time_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let event = serde_json::from_str(&json).unwrap_or_default();
    Ok(Payload(match answer {
        Ok(answer) => TestWebhookResult {
            url,
            event,
            delivered: (200..300).contains(&answer.status),
            status: Some(answer.status),
            time_ms,
            content_type: answer.content_type,
            body: Some(
                String::from_utf8_lossy(&answer.body[..answer.body.len().min(TEST_WEBHOOK_EXCERPT)])
                    .into_owned(),
            ),
            error: None,
        },
        Err(error) => TestWebhookResult {
            url,
            event,
            delivered: false,
            status: None,
            time_ms,
            content_type: None,
            body: None,
            error: Some(error.to_string()),
        },
    }))
}
