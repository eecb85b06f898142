//! The SMPP 3.4 carrier: an ESME (client) that keeps `binds` transceiver sessions open to one
//! SMSC and spreads submits over them.
//!
//! ```text
//!  submit() ──► shared queue (bounded) ──► bind 0 ─┐  each bind: connect → bind_transceiver
//!                                      └─► bind 1 ─┤  → [submit_sm ≤ window outstanding,
//!            carrier-wide pacer (throughput) ──────┘     enquire_link every enquire_link_secs,
//!                                                        deliver_sm → events] → unbind
//!  events (bounded mpsc) ◄── inbound SMS, delivery receipts, bind up/down
//! ```
//!
//! A bind takes the next submit from the shared queue only when it is bound and has fewer than
//! `window` submits awaiting their response, so the queue is naturally spread over the binds
//! that are up; a bind that is reconnecting takes nothing. PDUs are PDUs of rusmpp; the session
//! logic (windowing, matching responses by sequence number, timers, reconnects) is here.
//!
//! # What a submit's outcome means (at-least-once vs at-most-once)
//!
//! [`SmppCarrier::submit`] answers exactly one [`SubmitOutcome`] per submission:
//! - `Accepted { message_id }`: the SMSC took it. Never submit it again.
//! - `Rejected { .. }`: the SMSC answered with an error; it did not take it. `transient`
//!   (throttled, queue full) means the same submission may succeed later.
//! - `Unknown { .. }`: the `submit_sm` was written to the connection but no response came —
//!   the connection dropped, or the response timed out. The SMSC may or may not have taken it,
//!   and no SMPP response can tell afterwards. **The caller decides**: submitting it again is
//!   at-least-once (no message lost; a duplicate when only the response was lost), marking it
//!   failed is at-most-once (never a duplicate; a loss when the SMSC had taken it) — unless the
//!   SMSC echoes the submission's `user_message_reference` in its delivery receipt, which shows
//!   it took it ([`crate::outbox`] waits for that before deciding).
//!
//! A submission taken from the queue but not fully written when its connection failed is *not*
//! reported: a partly written PDU cannot be decoded by the SMSC, so the bind keeps it and writes
//! it first on its next session. A submission still queued when the carrier shuts down answers
//! [`SmppError::Closed`] (never sent).
//!
//! Inbound `deliver_sm` are answered (`deliver_sm_resp`) only after their event was put in the
//! event channel, so a slow consumer slows the SMSC down rather than losing messages; the
//! consumer must read the channel independently of the tasks that await submits. A carrier
//! started with an [`InboundHandler`] ([`SmppCarrier::start_with_inbound`]) hands inbound
//! messages (not receipts) to it instead, and answers with the status it returns — so a
//! message is acknowledged only once it is stored, and one for a number nobody has is refused
//! (`ESME_RINVDSTADR`) rather than taken and lost.

mod receipt;
mod session;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use receipt::{
    DeliveryReceipt, ReceiptText, parse_text as parse_receipt_text, status_from_message_state,
    status_from_stat,
};

use crate::segment::{Concat, Segmented};

/// The `[messaging.smpp]` table: one SMSC and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmppConfig {
    /// The SMSC's address.
    pub host: String,
    pub port: u16,
    /// `bind_transceiver` credentials: system_id (at most 15 characters), password (at most 8)
    /// and system_type (at most 12, often empty).
    pub system_id: String,
    pub password: String,
    pub system_type: String,
    /// Sessions kept open to the SMSC at once; submits are spread over them.
    pub binds: usize,
    /// Submits a bind may have awaiting their `submit_sm_resp` at once.
    pub window: usize,
    /// The most `submit_sm` per second over all binds; 0: no cap. Carriers throttle (and
    /// answer ESME_RTHROTTLED) above what the contract allows.
    pub throughput_per_sec: u32,
    /// Seconds between `enquire_link`s on an idle-or-not session (the SMSC drops sessions it
    /// has not heard from).
    pub enquire_link_secs: u64,
    /// How long a request (bind, submit, enquire_link, unbind) waits for its response, ms.
    /// A submit past it is reported `Unknown`; an enquire_link past it ends the session.
    pub response_timeout_ms: u64,
    /// TCP connect timeout, ms.
    pub connect_timeout_ms: u64,
    /// First reconnect delay after a session ended, ms; doubled each failed attempt up to
    /// `reconnect_max_ms`, back to the first after a successful bind.
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    /// Ask the SMSC for a delivery receipt of every submit (registered_delivery 1).
    pub delivery_receipts: bool,
    /// Submissions waiting for a bind, over all binds; `submit` waits when it is full.
    pub queue_capacity: usize,
    /// Inbound messages, receipts and bind events waiting for the consumer.
    pub events_capacity: usize,
}

impl Default for SmppConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 2775,
            system_id: String::new(),
            password: String::new(),
            system_type: String::new(),
            binds: 1,
            window: 10,
            throughput_per_sec: 100,
            enquire_link_secs: 30,
            response_timeout_ms: 10_000,
            connect_timeout_ms: 5_000,
            reconnect_min_ms: 500,
            reconnect_max_ms: 30_000,
            delivery_receipts: true,
            queue_capacity: 1_000,
            events_capacity: 1_000,
        }
    }
}

/// Field lengths of SMPP 3.4 (C-octet strings, without their NUL).
const MAX_SYSTEM_ID: usize = 15;
const MAX_PASSWORD: usize = 8;
const MAX_SYSTEM_TYPE: usize = 12;
const MAX_ADDRESS: usize = 20;
/// `sm_length` is one octet, and SMPP 3.4 caps `short_message` at 254.
const MAX_SHORT_MESSAGE: usize = 254;

/// Errors of the SMPP carrier's API.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SmppError {
    #[error("the SMPP carrier is shut down")]
    Closed,
    #[error("invalid SMPP {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

fn check_field(field: &'static str, value: &str, max: usize) -> Result<(), SmppError> {
    if !value.is_ascii() || value.contains('\0') {
        return Err(SmppError::Invalid { field, reason: "must be ASCII without NUL".into() });
    }
    if value.len() > max {
        return Err(SmppError::Invalid {
            field,
            reason: format!("{} characters, at most {max}", value.len()),
        });
    }
    Ok(())
}

impl SmppConfig {
    /// Checks what the SMSC would refuse, before any connection.
    pub fn validate(&self) -> Result<(), SmppError> {
        check_field("system_id", &self.system_id, MAX_SYSTEM_ID)?;
        check_field("password", &self.password, MAX_PASSWORD)?;
        check_field("system_type", &self.system_type, MAX_SYSTEM_TYPE)?;
        for (field, v) in [
            ("binds", self.binds),
            ("window", self.window),
            ("queue_capacity", self.queue_capacity),
            ("events_capacity", self.events_capacity),
        ] {
            if v == 0 {
                return Err(SmppError::Invalid { field, reason: "must be at least 1".into() });
            }
        }
        if self.enquire_link_secs == 0 || self.response_timeout_ms == 0 {
            return Err(SmppError::Invalid {
                field: "enquire_link_secs/response_timeout_ms",
                reason: "must be positive".into(),
            });
        }
        Ok(())
    }
}

/// One `submit_sm`: a single part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// Sent as the `user_message_reference` TLV (0x0204): the outbox's reference of the part,
    /// which an SMSC may echo in the part's delivery receipt (SMPP 3.4 §4.6.1) — how a part
    /// whose `submit_sm_resp` was lost is recognised as taken ([`crate::outbox`]).
    pub user_message_reference: Option<u16>,
    /// The sender: digits (E.164 without '+', sent as international/ISDN) or an alphanumeric
    /// sender id (sent as TON 5).
    pub source: String,
    /// The handset, E.164 digits without '+'.
    pub destination: String,
    pub data_coding: u8,
    pub esm_class: u8,
    /// The UDH, if any, followed by the payload.
    pub short_message: Vec<u8>,
}

impl Submission {
    /// The submissions of a segmented text, in part order.
    pub fn parts(source: &str, destination: &str, segmented: &Segmented) -> Vec<Submission> {
        segmented
            .parts
            .iter()
            .map(|p| Submission {
                user_message_reference: None,
                source: source.to_string(),
                destination: destination.to_string(),
                data_coding: segmented.data_coding(),
                esm_class: p.esm_class,
                short_message: p.short_message.clone(),
            })
            .collect()
    }

    fn validate(&self) -> Result<(), SmppError> {
        check_field("source_addr", &self.source, MAX_ADDRESS)?;
        check_field("destination_addr", &self.destination, MAX_ADDRESS)?;
        if self.destination.is_empty() {
            return Err(SmppError::Invalid { field: "destination_addr", reason: "empty".into() });
        }
        if self.short_message.len() > MAX_SHORT_MESSAGE {
            return Err(SmppError::Invalid {
                field: "short_message",
                reason: format!("{} octets, at most {MAX_SHORT_MESSAGE}", self.short_message.len()),
            });
        }
        Ok(())
    }
}

/// Why a submit's fate is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownReason {
    /// The connection ended before the response.
    ConnectionLost,
    /// No response within `response_timeout_ms`.
    Timeout,
}

/// The fate of one submission; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SubmitOutcome {
    Accepted {
        message_id: String,
    },
    Rejected {
        /// The SMPP command_status of the response (or generic_nack).
        command_status: u32,
        /// Worth retrying later (throttled, queue full, temporary system error).
        transient: bool,
    },
    Unknown {
        reason: UnknownReason,
    },
}

/// SMPP command_status values after which the same submission may succeed later.
pub fn is_transient(command_status: u32) -> bool {
    const ESME_RSYSERR: u32 = 0x08;
    const ESME_RMSGQFUL: u32 = 0x14;
    const ESME_RTHROTTLED: u32 = 0x58;
    const ESME_RX_T_APPN: u32 = 0x64;
    matches!(command_status, ESME_RSYSERR | ESME_RMSGQFUL | ESME_RTHROTTLED | ESME_RX_T_APPN)
}

/// An inbound message (a `deliver_sm` that is not a receipt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboundSms {
    /// Which bind it came in on.
    pub bind: usize,
    pub source: String,
    pub destination: String,
    pub data_coding: u8,
    pub esm_class: u8,
    /// The decoded text (of this part, for a concatenated message).
    pub text: String,
    /// Set for a part of a concatenated message: reassemble by (source, reference).
    pub concat: Option<Concat>,
}

/// What the carrier tells its consumer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CarrierEvent {
    Inbound(InboundSms),
    Receipt(DeliveryReceipt),
    /// A bind is up (after `bind_transceiver_resp` OK).
    BindUp {
        bind: usize,
    },
    /// A bind's session ended (it reconnects after a back-off unless the carrier shuts down).
    BindDown {
        bind: usize,
        reason: String,
    },
}

/// Takes inbound messages as they arrive (see the module docs): the returned SMPP
/// command_status is the `deliver_sm_resp`'s (0: taken). It runs on the bind's task, so the
/// SMSC waits for it: it must not wait for a submit on this carrier.
pub trait InboundHandler: Send + Sync + std::fmt::Debug {
    fn inbound(
        &self,
        sms: InboundSms,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = u32> + Send + '_>>;
}

/// Takes delivery receipts as they arrive: the `deliver_sm_resp` (with the returned SMPP
/// command_status, 0: taken) is written only once it returns, so a receipt is acknowledged
/// only after it is stored — one cut short by a crash is delivered again by the SMSC. Receipts
/// are handled concurrently (at most [`MAX_RECEIPTS_IN_FLIGHT`] per session), off the bind's
/// task. Without one, receipts go out as [`CarrierEvent::Receipt`].
pub trait ReceiptHandler: Send + Sync + std::fmt::Debug {
    fn receipt(
        &self,
        receipt: DeliveryReceipt,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = u32> + Send + '_>>;
}

/// Receipts of one session being stored at once; past it the session reads no further PDU
/// until one is done (the SMSC waits).
pub const MAX_RECEIPTS_IN_FLIGHT: usize = 256;

/// `deliver_sm_resp` statuses an [`InboundHandler`] answers with.
pub mod inbound_status {
    /// Taken.
    pub const ESME_ROK: u32 = 0;
    /// Invalid destination address: no number of the platform (or SMS not enabled on it).
    pub const ESME_RINVDSTADR: u32 = 0x0B;
    /// Temporary application error: the SMSC should deliver it again later (the store failed).
    pub const ESME_RX_T_APPN: u32 = 0x64;
}

/// A submission waiting for a bind, with where its outcome goes.
#[derive(Debug)]
struct SubmitRequest {
    submission: Submission,
    reply: oneshot::Sender<SubmitOutcome>,
}

/// Paces `submit_sm` over all binds to `throughput_per_sec`: each submit takes the next slot,
/// `1 / throughput` after the previous one.
#[derive(Debug)]
struct Pacer {
    interval: Option<Duration>,
    next: Mutex<Instant>,
}

impl Pacer {
    fn new(per_sec: u32) -> Self {
        Self {
            interval: (per_sec > 0).then(|| Duration::from_secs(1) / per_sec),
            next: Mutex::new(Instant::now()),
        }
    }

    async fn acquire(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let at = {
            let mut next = self.next.lock();
            let at = (*next).max(Instant::now());
            *next = at + interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// What the binds share.
#[derive(Debug)]
struct Shared {
    config: SmppConfig,
    queue: tokio::sync::Mutex<mpsc::Receiver<SubmitRequest>>,
    pacer: Pacer,
    events: mpsc::Sender<CarrierEvent>,
    inbound: Option<Arc<dyn InboundHandler>>,
    receipts: std::sync::OnceLock<Arc<dyn ReceiptHandler>>,
}

/// An SMPP carrier: `binds` sessions to one SMSC. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct SmppCarrier {
    shared: Arc<Shared>,
    queue: mpsc::Sender<SubmitRequest>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl SmppCarrier {
    /// Starts the binds (they connect in the background and reconnect on their own) and returns
    /// the carrier with the receiving end of its events.
    pub fn start(config: SmppConfig) -> Result<(Self, mpsc::Receiver<CarrierEvent>), SmppError> {
        Self::start_with_inbound(config, None)
    }

    /// [`SmppCarrier::start`], with inbound messages handed to `inbound` (when set) rather than
    /// sent as [`CarrierEvent::Inbound`].
    pub fn start_with_inbound(
        config: SmppConfig,
        inbound: Option<Arc<dyn InboundHandler>>,
    ) -> Result<(Self, mpsc::Receiver<CarrierEvent>), SmppError> {
        config.validate()?;
        let (queue_tx, queue_rx) = mpsc::channel(config.queue_capacity);
        let (events_tx, events_rx) = mpsc::channel(config.events_capacity);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            pacer: Pacer::new(config.throughput_per_sec),
            queue: tokio::sync::Mutex::new(queue_rx),
            events: events_tx,
            inbound,
            receipts: std::sync::OnceLock::new(),
            config,
        });
        let tasks = (0..shared.config.binds)
            .map(|bind| tokio::spawn(session::run_bind(bind, shared.clone(), shutdown_rx.clone())))
            .collect();
        Ok((Self { shared, queue: queue_tx, shutdown: shutdown_tx, tasks: Mutex::new(tasks) }, events_rx))
    }

    /// Hands delivery receipts to `handler` from now on (see [`ReceiptHandler`]); the first
    /// handler set stays. Receipts that came before went out as events.
    pub fn set_receipt_handler(&self, handler: Arc<dyn ReceiptHandler>) {
        let _ = self.shared.receipts.set(handler);
    }

    /// Submits one part and waits for its outcome (see the module docs). Waits while the queue
    /// is full or no bind is up.
    pub async fn submit(&self, submission: Submission) -> Result<SubmitOutcome, SmppError> {
        submission.validate()?;
        let (reply, outcome) = oneshot::channel();
        self.queue.send(SubmitRequest { submission, reply }).await.map_err(|_| SmppError::Closed)?;
        outcome.await.map_err(|_| SmppError::Closed)
    }

    /// Submits every part of a message at once (they may travel over different binds) and
    /// returns their outcomes in part order.
    pub async fn submit_all(&self, parts: Vec<Submission>) -> Vec<Result<SubmitOutcome, SmppError>> {
        futures_util::future::join_all(parts.into_iter().map(|p| self.submit(p))).await
    }

    /// Unbinds every session (each waits up to `response_timeout_ms` for its `unbind_resp`)
    /// and stops. Submits in flight then are reported `Unknown`, queued ones `Closed`.
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock());
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl Drop for SmppCarrier {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
