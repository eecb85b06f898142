//! Call events: what happened on a call, in the order it happened.
//!
//! Every event carries the call id, a per-call sequence number `seq` (1, 2, 3…) and when it
//! happened (`occurred_at`, plus `elapsed_ms` since the call started on the call's clock, which
//! is virtual in the simulator), so a consumer can order and de-duplicate. The event types follow
//! the catalogue of `spec/events.md`: `call.initiated`, `call.ringing` (an outbound call's
//! callee rings), `call.answered`, `call.live`, `call.callflow` (a verb started / finished /
//! failed), `call.bridged`, `call.hangup`, `call.destroyed`.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::clock::Clock;

/// The phase of a verb in a `call.callflow` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The verb started.
    Started,
    /// The verb finished successfully.
    Finished,
    /// The verb failed (its `error` says why).
    Failed,
}

impl Phase {
    /// As events name it (`started`, `finished`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Started => "started",
            Phase::Finished => "finished",
            Phase::Failed => "failed",
        }
    }
}

/// Who ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Party {
    /// The caller (the remote end of this leg).
    Caller,
    /// The flow (a `<Hangup>`, the end of the document, a failure).
    Flow,
    /// The platform (a limit, a shutdown).
    Platform,
}

/// A Q.850 cause for `call.hangup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Q850 {
    /// The cause code.
    pub code: u16,
    /// Its name (`NORMAL_CLEARING`…).
    pub name: &'static str,
}

impl Q850 {
    /// 16: the usual end of a call.
    pub const NORMAL_CLEARING: Q850 = Q850 { code: 16, name: "NORMAL_CLEARING" };
    /// 17: the flow hung up with reason busy.
    pub const USER_BUSY: Q850 = Q850 { code: 17, name: "USER_BUSY" };
    /// 19: an outbound call rang out unanswered.
    pub const NO_ANSWER: Q850 = Q850 { code: 19, name: "NO_ANSWER" };
    /// 21: the flow rejected the call.
    pub const CALL_REJECTED: Q850 = Q850 { code: 21, name: "CALL_REJECTED" };
    /// 34: no channel free: an outbound voice profile's channel limit, or the platform's.
    pub const NO_CIRCUIT_AVAILABLE: Q850 = Q850 { code: 34, name: "NORMAL_CIRCUIT_CONGESTION" };
    /// 41: the flow failed (trap, limit, fetch failure without `<Error>`).
    pub const TEMPORARY_FAILURE: Q850 = Q850 { code: 41, name: "NORMAL_TEMPORARY_FAILURE" };
    /// 102: the call reached its maximum length.
    pub const RECOVERY_ON_TIMER_EXPIRE: Q850 = Q850 { code: 102, name: "RECOVERY_ON_TIMER_EXPIRE" };
}

/// What an event says; the `type` field of its JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum EventKind {
    /// The call exists.
    #[serde(rename = "call.initiated")]
    Initiated {
        /// Caller.
        from: String,
        /// Callee.
        to: String,
        /// `in` or `out`.
        direction: crate::model::Direction,
    },
    /// The callee rings (180 Ringing or 183 Session Progress): an outbound call's.
    #[serde(rename = "call.ringing")]
    Ringing,
    /// The call was answered.
    #[serde(rename = "call.answered")]
    Answered,
    /// The call is up: answered, its media connected and its flow running on it (right after
    /// `call.answered`).
    #[serde(rename = "call.live")]
    Live,
    /// A verb (or a reported flow step) started, finished or failed.
    #[serde(rename = "call.callflow")]
    Callflow {
        /// The verb's name (`say`, `gather`, `dial`, `callback`…).
        verb: String,
        /// Its phase.
        phase: Phase,
        /// Verb-specific details: digits, dial outcome, error…
        #[serde(skip_serializing_if = "Map::is_empty")]
        detail: Map<String, Value>,
    },
    /// The call was joined to another leg.
    #[serde(rename = "call.bridged")]
    Bridged {
        /// What it was joined to (a dial target or a call id).
        with: String,
    },
    /// The call ended.
    #[serde(rename = "call.hangup")]
    Hangup {
        /// Q.850 code.
        q850_cause: u16,
        /// Q.850 name.
        q850_cause_string: &'static str,
        /// Who ended it.
        by: Party,
        /// Why, in words, when it was not a plain hangup.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Final teardown.
    #[serde(rename = "call.destroyed")]
    Destroyed {
        /// The call's duration from start to end, ms.
        duration_ms: u64,
    },
}

/// One event of one call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallEvent {
    /// Per-call sequence number, from 1.
    pub seq: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
    /// The call's UUID.
    pub call: String,
    /// When it happened (wall clock at the call's start plus `elapsed_ms`).
    pub occurred_at: DateTime<Utc>,
    /// Time since the call started on the call's clock, ms.
    pub elapsed_ms: u64,
    /// The flow's current tag, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The call's meta values so far.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
}

/// Where a call's events go: the event bus of the server, stdout for the flow runner, a vector
/// in tests. Must not block: it is called from the flow's task.
pub trait EventSink: Send + Sync {
    /// Take one event.
    fn emit(&self, event: &CallEvent);
}

/// Writes each event as one JSON line (the flow runner's output).
#[derive(Debug)]
pub struct JsonLinesSink<W: Write + Send> {
    out: Mutex<W>,
}

impl<W: Write + Send> JsonLinesSink<W> {
    /// A sink writing to `out`.
    pub fn new(out: W) -> Self {
        Self { out: Mutex::new(out) }
    }
}

impl<W: Write + Send> EventSink for JsonLinesSink<W> {
    fn emit(&self, event: &CallEvent) {
        let mut out = self.out.lock();
        // An event that cannot be written (closed pipe) must not stop the call.
        if let Ok(line) = serde_json::to_string(event) {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

/// Keeps events in memory (tests, benchmarks).
#[derive(Debug, Default)]
pub struct CollectingSink {
    events: Mutex<Vec<CallEvent>>,
}

impl CollectingSink {
    /// The events so far.
    pub fn events(&self) -> Vec<CallEvent> {
        self.events.lock().clone()
    }
}

impl EventSink for CollectingSink {
    fn emit(&self, event: &CallEvent) {
        self.events.lock().push(event.clone());
    }
}

/// Drops every event (load programs).
#[derive(Debug, Default)]
pub struct NullSink;

impl EventSink for NullSink {
    fn emit(&self, _event: &CallEvent) {}
}

/// Stamps a call's events with the sequence number, times, tag and meta, and hands them to the
/// sink.
pub struct EventEmitter {
    call: String,
    started_at: DateTime<Utc>,
    clock: Arc<dyn Clock>,
    seq: AtomicU64,
    tag: Mutex<Option<String>>,
    meta: Mutex<BTreeMap<String, String>>,
    sink: Arc<dyn EventSink>,
    /// Whether the call was answered ([`EventEmitter::answered`]), for whoever times it.
    answered: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for EventEmitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventEmitter").field("call", &self.call).finish_non_exhaustive()
    }
}

impl EventEmitter {
    /// An emitter for call `call`, timed by `clock`.
    pub fn new(call: String, clock: Arc<dyn Clock>, sink: Arc<dyn EventSink>) -> Self {
        Self {
            call,
            started_at: Utc::now(),
            clock,
            seq: AtomicU64::new(0),
            tag: Mutex::new(None),
            meta: Mutex::new(BTreeMap::new()),
            sink,
            answered: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Hears when the call is answered (however it was: by its flow, on a bridge, placed).
    pub fn answer_watch(&self) -> tokio::sync::watch::Receiver<bool> {
        self.answered.subscribe()
    }

    /// Emit an event now.
    pub fn emit(&self, kind: EventKind) {
        let elapsed = self.clock.elapsed();
        let event = CallEvent {
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            kind,
            call: self.call.clone(),
            occurred_at: self.started_at
                + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::zero()),
            elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            tag: self.tag.lock().clone(),
            meta: self.meta.lock().clone(),
        };
        self.sink.emit(&event);
    }

    /// `call.answered`, then `call.live`.
    pub fn answered(&self) {
        self.emit(EventKind::Answered);
        self.emit(EventKind::Live);
        self.answered.send_replace(true);
    }

    /// Emit a `call.callflow` event.
    pub fn callflow(&self, verb: &str, phase: Phase, detail: Map<String, Value>) {
        self.emit(EventKind::Callflow { verb: verb.to_owned(), phase, detail });
    }

    /// Set (or clear) the tag carried by later events.
    pub fn set_tag(&self, tag: Option<String>) {
        *self.tag.lock() = tag;
    }

    /// Attach a meta value carried by later events.
    pub fn set_meta(&self, name: String, value: String) {
        self.meta.lock().insert(name, value);
    }

    /// Whether a meta value named `name` is attached.
    pub fn has_meta(&self, name: &str) -> bool {
        self.meta.lock().contains_key(name)
    }

    /// Bytes of all meta names and values if `name` were set to `value`.
    pub fn meta_bytes_with(&self, name: &str, value: &str) -> usize {
        let meta = self.meta.lock();
        let others: usize =
            meta.iter().filter(|(k, _)| k.as_str() != name).map(|(k, v)| k.len() + v.len()).sum();
        others + name.len() + value.len()
    }

    /// Number of meta values attached so far.
    pub fn meta_len(&self) -> usize {
        self.meta.lock().len()
    }

    /// The call's elapsed time on its clock.
    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Builds a `detail` map: `detail([("digits", json!("12"))])`.
pub fn detail<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
