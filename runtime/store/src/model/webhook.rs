use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Timestamp;

/// How subscribed events reach the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventChannel {
    /// Signed HTTP POSTs to `url` (falling back to `url2`).
    Webhook,
    /// The account's websocket clients.
    Wss,
}

impl EventChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            EventChannel::Webhook => "webhook",
            EventChannel::Wss => "wss",
        }
    }
}

/// A subscription to an account's events of one type (`call.hangup`), a family (`call.*`)
/// or all (`*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct EventSubscription {
    pub uuid: Uuid,
    pub account: Uuid,
    pub channel: EventChannel,
    #[serde(rename = "type")]
    pub event_type: String,
    pub url: Option<String>,
    pub url2: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub created_on: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub modified_on: Timestamp,
}

impl EventSubscription {
    /// Whether an event of `event_type` is covered.
    pub fn covers(&self, event_type: &str) -> bool {
        match self.event_type.strip_suffix('*') {
            Some(prefix) => event_type.starts_with(prefix),
            None => self.event_type == event_type,
        }
    }
}

/// What creating a subscription takes.
#[derive(Debug, Clone)]
pub struct NewEventSubscription {
    pub channel: EventChannel,
    pub event_type: String,
    pub url: Option<String>,
    pub url2: Option<String>,
}

/// An account's webhook signing key pair (Ed25519), base64.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub public_key: String,
    pub private_pkcs8: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("public_key", &self.public_key).finish_non_exhaustive()
    }
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// Given up after the last attempt.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }
}

/// One event for one webhook URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub uuid: Uuid,
    pub account: Uuid,
    /// Its place in the outbox, from the database (a sequence, safe with many writers): one
    /// writer's deliveries have increasing positions in the order it enqueued them.
    pub position: i64,
    /// The node that wrote it (`[server] node_id`).
    pub node: Option<String>,
    pub url: String,
    pub url2: Option<String>,
    pub event: Uuid,
    pub event_type: String,
    pub call: Option<String>,
    /// The JSON body, exactly as it is signed and sent.
    pub body: String,
    pub state: DeliveryState,
    pub attempts: i32,
    pub next_attempt_on: Timestamp,
    pub last_error: Option<String>,
    pub created_on: Timestamp,
}

/// A delivery to enqueue.
#[derive(Debug, Clone)]
pub struct NewWebhookDelivery {
    pub account: Uuid,
    /// The node that writes it (`[server] node_id`).
    pub node: Option<String>,
    pub url: String,
    pub url2: Option<String>,
    pub event: Uuid,
    pub event_type: String,
    pub call: Option<String>,
    pub body: String,
}

/// What a survivor did when it took a dead node over
/// ([`crate::NodeRepo::take_over_dead_node`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTakeover {
    /// The dead node (`[server] node_id`).
    pub node: String,
    /// Its open CDRs, closed (failed, Q.850 41).
    pub calls_closed: u64,
    /// Its batch items in progress (calling or answered), failed.
    pub batch_items_failed: u64,
    /// Its pending webhook deliveries, now the survivor's to send.
    pub deliveries_taken: u64,
}
