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
    /// What happened, in a line a person reads (`Call in 13105550111 > 12025550100 -
    /// answered`); set on calls' events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The call it is about, when it is about one: on a call's own events the whole call as it
    /// is after the event (`uuid`, `direction`, `from`, `to`, `state`, `init_on`, `ring_on`, `answer_on`,
    /// `hangup_on`, `q850_cause`, `q850_cause_string`, `tag`, `meta`, `tn`,
    /// `sip_control_app`, …); on others `{"uuid": …}`.
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
            message: None,
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
            message: None,
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
    /// Added to every event's call object (an inbound call's STIR/SHAKEN verification, its
    /// number and app).
    call_fields: serde_json::Map<String, Value>,
    /// The call as its events so far describe it.
    call: parking_lot::Mutex<CallObject>,
}

/// A call as its events describe it: the envelope's call object.
#[derive(Debug, Default)]
struct CallObject {
    direction: Option<Value>,
    from: String,
    to: String,
    state: &'static str,
    init_on: Option<String>,
    ring_on: Option<String>,
    answer_on: Option<String>,
    hangup_on: Option<String>,
    q850_cause: Option<u16>,
    q850_cause_string: Option<&'static str>,
}

fn at(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl CallObject {
    /// Take in `event`; the line that says what it was.
    fn apply(&mut self, event: &CallEvent) -> String {
        use opentact_call::events::EventKind;
        let happened = match &event.kind {
            EventKind::Initiated { from, to, direction } => {
                self.direction = serde_json::to_value(direction).ok();
                self.from.clone_from(from);
                self.to.clone_from(to);
                self.state = "initiated";
                self.init_on = Some(at(&event.occurred_at));
                "initiated".to_owned()
            }
            EventKind::Ringing => {
                self.state = "ringing";
                self.ring_on = Some(at(&event.occurred_at));
                "ringing".to_owned()
            }
            EventKind::Answered => {
                self.state = "answered";
                self.answer_on = Some(at(&event.occurred_at));
                "answered".to_owned()
            }
            EventKind::Live => {
                self.state = "live";
                "live".to_owned()
            }
            EventKind::Callflow { verb, phase, .. } => format!("{verb} {}", phase.as_str()),
            EventKind::Bridged { with } => format!("bridged with {with}"),
            EventKind::Hangup { q850_cause, q850_cause_string, reason, .. } => {
                self.state = "hangup";
                self.hangup_on = Some(at(&event.occurred_at));
                self.q850_cause = Some(*q850_cause);
                self.q850_cause_string = Some(q850_cause_string);
                match reason {
                    Some(reason) => format!("hangup {q850_cause_string}: {reason}"),
                    None => format!("hangup {q850_cause_string}"),
                }
            }
            EventKind::Destroyed { duration_ms } => {
                self.state = "destroyed";
                format!("destroyed after {} ms", duration_ms)
            }
        };
        let direction = self.direction.as_ref().and_then(Value::as_str).unwrap_or("");
        format!("Call {direction} {} > {} - {happened}", self.from, self.to)
    }

    /// The envelope's call object for `event`, with `fields` added.
    fn to_json(&self, event: &CallEvent, fields: &serde_json::Map<String, Value>) -> Value {
        let mut call = serde_json::json!({
            "uuid": event.call,
            "direction": self.direction,
            "from": self.from,
            "to": self.to,
            "state": self.state,
            "init_on": self.init_on,
            "ring_on": self.ring_on,
            "answer_on": self.answer_on,
            "hangup_on": self.hangup_on,
            "q850_cause": self.q850_cause,
            "q850_cause_string": self.q850_cause_string,
            "tag": event.tag,
            "meta": event.meta,
            "parent": Value::Null,
        });
        if let Value::Object(call) = &mut call {
            call.extend(fields.iter().map(|(name, value)| (name.clone(), value.clone())));
        }
        call
    }
}

impl std::fmt::Debug for AccountSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountSink").field("account", &self.account).finish_non_exhaustive()
    }
}

impl AccountSink {
    pub fn new(account: Uuid, bus: Arc<EventBus>, next: Option<Arc<dyn EventSink>>) -> Self {
        AccountSink { account, bus, next, call_fields: serde_json::Map::new(), call: Default::default() }
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
        {
            let mut call = self.call.lock();
            envelope.message = Some(call.apply(event));
            envelope.call = Some(call.to_json(event, &self.call_fields));
        }
        self.bus.publish(envelope);
        if let Some(next) = &self.next {
            next.emit(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use opentact_call::events::{CallEvent, EventKind, Party, Phase};
    use opentact_call::model::Direction;

    use super::*;
    use crate::bus::{BusConfig, EventBus};

    fn event(seq: u64, kind: EventKind) -> CallEvent {
        CallEvent {
            seq,
            kind,
            call: "call-1".to_owned(),
            occurred_at: Utc::now(),
            elapsed_ms: seq * 100,
            tag: (seq > 1).then(|| "menu".to_owned()),
            meta: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn a_calls_events_carry_the_whole_call_and_say_what_happened() {
        let bus = Arc::new(EventBus::new(BusConfig::default()));
        let account = Uuid::new_v4();
        let mut events = bus.subscribe(account, vec![], None).expect("subscribe");
        let mut fields = serde_json::Map::new();
        fields.insert("tn".to_owned(), serde_json::json!(12025550100_i64));
        let sink = AccountSink::new(account, bus.clone(), None).with_call_fields(fields);
        sink.emit(&event(
            1,
            EventKind::Initiated {
                from: "13105550111".into(),
                to: "12025550100".into(),
                direction: Direction::Inbound,
            },
        ));
        sink.emit(&event(2, EventKind::Answered));
        sink.emit(&event(
            2,
            EventKind::Callflow { verb: "say".into(), phase: Phase::Started, detail: serde_json::Map::new() },
        ));
        sink.emit(&event(
            3,
            EventKind::Hangup {
                q850_cause: 16,
                q850_cause_string: "NORMAL_CLEARING",
                by: Party::Caller,
                reason: None,
            },
        ));
        let mut next = async || events.next().await.expect("open").expect("not lagged");
        let initiated = next().await;
        assert_eq!(initiated.message.as_deref(), Some("Call in 13105550111 > 12025550100 - initiated"));
        let call = initiated.call.clone().expect("call");
        assert_eq!((call["state"].as_str(), call["direction"].as_str()), (Some("initiated"), Some("in")));
        assert_eq!(call["tn"], 12025550100_i64, "the runner's fields are kept");
        assert!(call["init_on"].is_string() && call["answer_on"].is_null(), "{call}");
        let answered = next().await;
        assert_eq!(answered.message.as_deref(), Some("Call in 13105550111 > 12025550100 - answered"));
        let call = answered.call.clone().expect("call");
        assert_eq!((call["state"].as_str(), call["tag"].as_str()), (Some("answered"), Some("menu")));
        assert!(call["answer_on"].is_string(), "{call}");
        let say = next().await;
        assert_eq!(say.message.as_deref(), Some("Call in 13105550111 > 12025550100 - say started"));
        let hangup = next().await;
        assert_eq!(
            hangup.message.as_deref(),
            Some("Call in 13105550111 > 12025550100 - hangup NORMAL_CLEARING")
        );
        let call = hangup.call.clone().expect("call");
        assert_eq!((call["q850_cause"].as_u64(), call["state"].as_str()), (Some(16), Some("hangup")));
        assert!(call["hangup_on"].is_string() && call["answer_on"].is_string(), "{call}");
        // What relays and resumes read back is what was sent.
        assert_eq!(Event::from_json(&hangup.to_json()).expect("parses").message, hangup.message);
    }
}
