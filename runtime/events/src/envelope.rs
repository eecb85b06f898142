//! The event envelope and the conversion from call events.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use opentact_call::{CallEvent, EventSink};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::bus::EventBus;

/// One event, as consumers receive it (JSON). Read back from that JSON when another node
/// relays it (`created_on` and `occurred_at` then to the millisecond).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The event's id; consumers resume after it.
    pub uuid: Uuid,
    /// What happened: `call.initiated`, `call.answered`, `call.callflow`, `call.hangup`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// When the platform published it (ISO-8601 UTC, ms).
    #[serde(serialize_with = "millis")]
    pub created_on: DateTime<Utc>,
    /// The account it belongs to.
    pub account: Uuid,
    /// The call it is about, when it is about one: `{"uuid": …}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<Value>,
    /// Per-call sequence number, from 1 (order and de-duplicate by it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// When it happened (ISO-8601 UTC, ms).
    #[serde(serialize_with = "millis")]
    pub occurred_at: DateTime<Utc>,
    /// The event's details (the verb and its result, the hangup cause, …).
    pub payload: Value,
}

fn millis<S: serde::Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

impl Event {
    /// The envelope of a call's event for `account`.
    pub fn from_call(account: Uuid, event: &CallEvent) -> Self {
        let mut payload = serde_json::to_value(event).unwrap_or(Value::Null);
        let kind = payload
            .get("type")
            .and_then(Value::as_str)
            .map_or_else(|| "call.event".to_owned(), str::to_owned);
        // The envelope carries these; the payload keeps what is particular to the event.
        if let Value::Object(fields) = &mut payload {
            for envelope_field in ["type", "seq", "call", "occurred_at"] {
                fields.remove(envelope_field);
            }
        }
        Event {
            // A UUIDv7, like the store's ids (`opentact_store::new_id`): it orders events as
            // they were made.
            uuid: Uuid::now_v7(),
            kind,
            created_on: Utc::now(),
            account,
            call: Some(serde_json::json!({ "uuid": event.call })),
            seq: Some(event.seq),
            occurred_at: event.occurred_at,
            payload,
        }
    }

    /// An event of `account` that happens now and is not one of a call's steps (no `seq`):
    /// `account.changed`, `tn.changed`, `record.available`, a SIP ban… `call` names the call it
    /// concerns, if one.
    pub fn now(account: Uuid, kind: &str, call: Option<Uuid>, payload: Value) -> Self {
        let now = Utc::now();
        Event {
            uuid: Uuid::now_v7(),
            kind: kind.to_owned(),
            created_on: now,
            account,
            call: call.map(|call| serde_json::json!({ "uuid": call })),
            seq: None,
            occurred_at: now,
            payload,
        }
    }

    /// The event as one JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// The event [`Self::to_json`] wrote.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }
}

/// A call's event sink: publishes each event for the call's account (and passes it on to
/// `next`, e.g. the event log).
pub struct AccountSink {
    account: Uuid,
    bus: Arc<EventBus>,
    next: Option<Arc<dyn EventSink>>,
    /// Added to every event's call object (an inbound call's STIR/SHAKEN verification).
    call_fields: serde_json::Map<String, Value>,
}

impl std::fmt::Debug for AccountSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountSink").field("account", &self.account).finish_non_exhaustive()
    }
}

impl AccountSink {
    pub fn new(account: Uuid, bus: Arc<EventBus>, next: Option<Arc<dyn EventSink>>) -> Self {
        AccountSink { account, bus, next, call_fields: serde_json::Map::new() }
    }

    /// Adds `fields` to the call object of every event published.
    pub fn with_call_fields(mut self, fields: serde_json::Map<String, Value>) -> Self {
        self.call_fields = fields;
        self
    }
}

impl EventSink for AccountSink {
    fn emit(&self, event: &CallEvent) {
        let mut envelope = Event::from_call(self.account, event);
        if let Some(Value::Object(call)) = &mut envelope.call {
            call.extend(self.call_fields.iter().map(|(name, value)| (name.clone(), value.clone())));
        }
        self.bus.publish(envelope);
        if let Some(next) = &self.next {
            next.emit(event);
        }
    }
}
