//! The outbound queue contract and the sender that drains it.
//!
//! The store implements [`Outbox`], durably: a message is a row in state `queued` before the
//! API answers 201, and the [`Sender`] claims rows, submits their parts through a [`Carrier`]
//! and records each attempt. [`MemoryOutbox`] is the same contract in memory, for tests.
//!
//! ```text
//!  API ─► outbox (queued) ─claim─► Sender ─parts─► Carrier (SMPP) ─► SMSC
//!            ▲   record_attempt ◄────┘                  │
//!            └── record_receipt ◄── CarrierEvent::Receipt ◄─┘
//! ```
//!
//! # Exactly once, and what it rests on
//!
//! SMPP has no idempotency key: a `submit_sm` whose `submit_sm_resp` was lost (connection
//! drop, timeout, or this process killed between the SMSC's answer and the store's record) may
//! or may not have been taken, and submitting it again may double it. So each part is *in
//! doubt* from its claim until its outcome is recorded: the store puts it in doubt, under a
//! `user_message_reference` unique among the parts in doubt, in the transaction that claims
//! the message — before anything is written to the SMSC — and the part is submitted with that
//! reference (SMPP 3.4 TLV 0x0204). An SMSC may echo the reference in the part's delivery
//! receipt; a receipt echoing a part in doubt settles it (the SMSC took it: accepted, with the
//! receipt's `receipted_message_id`), and receipts are acknowledged to the SMSC only once
//! stored ([`crate::smpp::ReceiptHandler`]), so the SMSC delivers again one a crash cut short.
//! A part in doubt is not submitted again before [`SenderConfig::reconcile_grace_ms`] has
//! passed without such a receipt (after a crash: since the dead sender's claim ran out).
//!
//! **Exactly-once therefore relies on the carrier echoing `user_message_reference` in its
//! receipts within the grace** (the test SMSC does, as SMPP 3.4 allows; many carriers do not,
//! or send receipts late). Without that evidence [`UnknownPolicy`] decides what a part still
//! in doubt after the grace becomes: `at_least_once` submits it again (never lost; doubled when
//! the SMSC had taken it), `at_most_once` fails the message (never doubled; lost when it had
//! not). Parts the carrier accepted are kept with the message and never submitted again, and a
//! retry reuses the same concatenation reference so the handset still joins the parts.
//!
//! A claim holds its messages for the store's lease; the [`Sender`] renews the leases of the
//! messages it holds while their attempts run ([`Outbox::renew`]), so a slow attempt is never
//! taken over by another sender or node, and a dead sender's claims run out one lease after
//! its last renewal.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Deserialize;
use thiserror::Error;
use tokio::sync::{Notify, Semaphore, watch};
use tracing::warn;
use uuid::Uuid;

use crate::model::{self, Message, MessageState, ReceiptStatus};
use crate::segment;
use crate::smpp::{DeliveryReceipt, ReceiptHandler, SmppCarrier, SmppError, Submission, SubmitOutcome};

/// A message the outbox hands to the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub uuid: Uuid,
    pub from: String,
    pub to: String,
    pub text: String,
    /// Attempts already made (0 for a fresh message).
    pub attempts: u32,
    /// Parts the carrier already accepted (part index → carrier message id).
    pub accepted: BTreeMap<usize, String>,
    /// The `user_message_reference` each part to submit is in doubt under (empty from an
    /// outbox that keeps none, like [`MemoryOutbox`]).
    pub references: BTreeMap<usize, u16>,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Every part accepted: queued → sent.
    Sent,
    /// Given up: queued → failed.
    Failed { reason: String },
    /// Stays queued; claim it again from `not_before`. `in_doubt`: the parts whose submit
    /// was written but not answered (see the module docs).
    Retry { not_before: DateTime<Utc>, reason: String, in_doubt: BTreeSet<usize> },
}

/// The store behind the outbox failed.
#[derive(Debug, Error)]
pub enum OutboxError {
    #[error("outbox storage: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("message {0} is not in the outbox")]
    NotFound(Uuid),
}

/// The durable outbound queue (the store implements it).
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Claims up to `limit` queued messages whose `not_before` has passed and that no sender
    /// holds, oldest first, and puts their parts in doubt. A claimed message is not returned
    /// again until its attempt is recorded or its claim runs out; one with parts in doubt from
    /// an earlier claim waits for `grace` (see the module docs), then [`UnknownPolicy`] decides.
    async fn claim(&self, limit: usize, grace: Duration) -> Result<Vec<QueuedMessage>, OutboxError>;

    /// Extends the claims of the messages this outbox handed out and that are not recorded yet.
    async fn renew(&self) -> Result<(), OutboxError> {
        Ok(())
    }

    /// How often the sender calls [`Outbox::renew`] (a fraction of the claim's lease); `None`
    /// when claims do not run out.
    fn renew_every(&self) -> Option<Duration> {
        None
    }

    /// Records an attempt: the parts accepted so far (their carrier ids, which receipts will
    /// name) and the outcome; releases the claim.
    async fn record_attempt(
        &self,
        uuid: Uuid,
        accepted: &BTreeMap<usize, String>,
        attempt: &Attempt,
        at: DateTime<Utc>,
    ) -> Result<(), OutboxError>;

    /// Applies a delivery receipt to the part with its carrier id; returns the message and its
    /// new state when the receipt moved it. A receipt may overtake its `record_attempt` (the
    /// SMSC can be faster than the store): keep it and apply it when the id is recorded.
    async fn record_receipt(
        &self,
        receipt: &DeliveryReceipt,
        at: DateTime<Utc>,
    ) -> Result<Option<(Uuid, MessageState)>, OutboxError>;
}

/// Something that takes SMS parts: the SMPP carrier (and later SIP MESSAGE).
#[async_trait]
pub trait Carrier: Send + Sync + 'static {
    async fn submit(&self, part: Submission) -> Result<SubmitOutcome, SmppError>;

    /// Hands the carrier's delivery receipts to `handler`, acknowledged once handled (a
    /// carrier without receipts ignores it).
    fn receipts_to(&self, handler: Arc<dyn ReceiptHandler>) {
        let _ = handler;
    }
}

#[async_trait]
impl Carrier for SmppCarrier {
    async fn submit(&self, part: Submission) -> Result<SubmitOutcome, SmppError> {
        SmppCarrier::submit(self, part).await
    }

    fn receipts_to(&self, handler: Arc<dyn ReceiptHandler>) {
        self.set_receipt_handler(handler);
    }
}

/// An outbox as the carrier's [`ReceiptHandler`]: a receipt is acknowledged to the SMSC once
/// [`Outbox::record_receipt`] stored it, and refused with "temporary application error"
/// (`ESME_RX_T_APPN`, so the SMSC delivers it again) when the store failed.
pub struct OutboxReceipts<O>(pub Arc<O>);

impl<O> std::fmt::Debug for OutboxReceipts<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutboxReceipts")
    }
}

impl<O: Outbox> ReceiptHandler for OutboxReceipts<O> {
    fn receipt(
        &self,
        receipt: DeliveryReceipt,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = u32> + Send + '_>> {
        Box::pin(async move {
            match self.0.record_receipt(&receipt, Utc::now()).await {
                Ok(_) => crate::smpp::inbound_status::ESME_ROK,
                Err(e) => {
                    warn!(error = %e, id = %receipt.message_id, "recording a delivery receipt failed");
                    crate::smpp::inbound_status::ESME_RX_T_APPN
                }
            }
        })
    }
}

/// What a submit of unknown fate makes of its message; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownPolicy {
    AtLeastOnce,
    AtMostOnce,
}

/// The sender's `[messaging.sender]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SenderConfig {
    /// Messages claimed at once.
    pub batch: usize,
    /// Messages being submitted at once (each holds its parts' submits).
    pub concurrency: usize,
    /// How often an idle sender looks at the outbox, ms (a [`Sender::waker`] call looks at once).
    pub poll_interval_ms: u64,
    /// The first retry delay, ms; doubled each attempt.
    pub retry_delay_ms: u64,
    /// Attempts before a message that keeps failing transiently is failed.
    pub max_attempts: u32,
    pub unknown: UnknownPolicy,
    /// The reconciliation grace, ms: how long a part in doubt (its submit's answer lost, or its
    /// sender killed mid-submit) waits for a delivery receipt echoing its reference before
    /// `unknown` decides. Longer than the SMSC takes to send a receipt; see the module docs.
    pub reconcile_grace_ms: u64,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            batch: 100,
            concurrency: 256,
            poll_interval_ms: 200,
            retry_delay_ms: 2_000,
            max_attempts: 5,
            unknown: UnknownPolicy::AtLeastOnce,
            reconcile_grace_ms: 120_000,
        }
    }
}

/// The task that drains an outbox into a carrier.
#[derive(Debug)]
pub struct Sender<O, C> {
    outbox: Arc<O>,
    carrier: Arc<C>,
    config: SenderConfig,
    wake: Arc<Notify>,
}

impl<O: Outbox, C: Carrier> Sender<O, C> {
    /// Also hands the carrier's delivery receipts to the outbox ([`OutboxReceipts`]).
    pub fn new(outbox: Arc<O>, carrier: Arc<C>, config: SenderConfig) -> Self {
        carrier.receipts_to(Arc::new(OutboxReceipts(outbox.clone())));
        Self { outbox, carrier, config, wake: Arc::new(Notify::new()) }
    }

    /// Call `notify_one` on it after queueing a message so it is claimed at once.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Claims and sends until `shutdown` turns true; attempts in progress then finish.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let poll = Duration::from_millis(self.config.poll_interval_ms);
        let grace = Duration::from_millis(self.config.reconcile_grace_ms);
        // The heartbeat: claims held while attempts run are renewed until this returns.
        let heartbeat = self.outbox.renew_every().map(|every| {
            let outbox = self.outbox.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if let Err(e) = outbox.renew().await {
                        warn!(error = %e, "renewing the outbox's claims failed");
                    }
                }
            })
        });
        while !*shutdown.borrow() {
            let available = permits.available_permits().min(self.config.batch.max(1));
            let batch = if available == 0 {
                Vec::new()
            } else {
                match self.outbox.claim(available, grace).await {
                    Ok(batch) => batch,
                    Err(e) => {
                        warn!(error = %e, "outbox claim failed");
                        Vec::new()
                    }
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            for message in batch {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let (outbox, carrier, config) =
                    (self.outbox.clone(), self.carrier.clone(), self.config.clone());
                tokio::spawn(async move {
                    let uuid = message.uuid;
                    let (accepted, attempt) = attempt(&*carrier, &config, message).await;
                    if let Err(e) = outbox.record_attempt(uuid, &accepted, &attempt, Utc::now()).await {
                        warn!(%uuid, error = %e, "recording an attempt failed");
                    }
                    drop(permit);
                });
            }
        }
        // Let attempts in progress record their outcome.
        let _ = permits.acquire_many(self.config.concurrency.max(1) as u32).await;
        if let Some(heartbeat) = heartbeat {
            heartbeat.abort();
        }
    }
}

/// The concatenation reference of a message: fixed by its id, so a retry's parts join the
/// parts accepted earlier.
pub fn concat_reference(uuid: Uuid) -> u8 {
    uuid.as_bytes()[15]
}

/// One attempt at a message: submits the parts not yet accepted and decides what it came to.
pub async fn attempt<C: Carrier + ?Sized>(
    carrier: &C,
    config: &SenderConfig,
    message: QueuedMessage,
) -> (BTreeMap<usize, String>, Attempt) {
    let mut accepted = message.accepted;
    let segmented = match segment::segment(&message.text, concat_reference(message.uuid)) {
        Ok(s) => s,
        Err(e) => {
            return (accepted, Attempt::Failed { reason: e.to_string() });
        }
    };
    let parts = Submission::parts(&message.from, &message.to, &segmented);
    let total = parts.len();
    let todo: Vec<(usize, Submission)> = parts
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !accepted.contains_key(i))
        .map(|(i, part)| {
            (i, Submission { user_message_reference: message.references.get(&i).copied(), ..part })
        })
        .collect();
    let outcomes = futures_util::future::join_all(
        todo.into_iter().map(|(i, part)| async move { (i, carrier.submit(part).await) }),
    )
    .await;
    let (mut refused, mut in_doubt, mut transient) = (None, BTreeSet::new(), None);
    for (i, outcome) in outcomes {
        match outcome {
            Ok(SubmitOutcome::Accepted { message_id }) => {
                accepted.insert(i, message_id);
            }
            Ok(SubmitOutcome::Rejected { command_status, transient: false }) => {
                refused = Some(command_status)
            }
            Ok(SubmitOutcome::Rejected { command_status, .. }) => {
                transient = Some(format!("command_status {command_status:#x}"))
            }
            Ok(SubmitOutcome::Unknown { reason }) => {
                in_doubt.insert(i);
                transient = Some(format!("unknown fate: {reason:?}"));
            }
            Err(e) => transient = Some(e.to_string()),
        }
    }
    let outcome = if accepted.len() == total {
        Attempt::Sent
    } else if let Some(status) = refused {
        Attempt::Failed { reason: format!("refused by the carrier: command_status {status:#x}") }
    } else if !in_doubt.is_empty() && config.unknown == UnknownPolicy::AtMostOnce {
        Attempt::Failed { reason: "the carrier's answer was lost (at-most-once)".into() }
    } else if message.attempts + 1 >= config.max_attempts {
        Attempt::Failed { reason: format!("gave up after {} attempts", message.attempts + 1) }
    } else {
        let mut delay =
            Duration::from_millis(config.retry_delay_ms).saturating_mul(1 << message.attempts.min(16));
        if !in_doubt.is_empty() {
            // Time for a receipt echoing a part's reference to settle it first.
            delay = delay.max(Duration::from_millis(config.reconcile_grace_ms));
        }
        Attempt::Retry { not_before: Utc::now() + delay, reason: transient.unwrap_or_default(), in_doubt }
    };
    (accepted, outcome)
}

/// Receipts [`MemoryOutbox`] keeps for carrier ids it does not know yet; past it the oldest go
/// (a receipt for a message from before a restart of the memory outbox never matches).
pub const MAX_EARLY_RECEIPTS: usize = 10_000;

/// One message in [`MemoryOutbox`].
#[derive(Debug)]
struct Entry {
    seq: u64,
    message: Message,
    attempts: u32,
    not_before: DateTime<Utc>,
    claimed: bool,
    accepted: BTreeMap<usize, String>,
    receipts: Vec<Option<ReceiptStatus>>,
}

#[derive(Debug, Default)]
struct Inner {
    next_seq: u64,
    entries: HashMap<Uuid, Entry>,
    /// Carrier message id → (message, part).
    by_carrier_id: HashMap<String, (Uuid, usize)>,
    /// Receipts that came before their carrier id was recorded.
    early: Vec<DeliveryReceipt>,
}

/// The outbox in memory: for tests, and the reference of what a store must do.
#[derive(Debug, Default)]
pub struct MemoryOutbox {
    inner: Mutex<Inner>,
}

impl MemoryOutbox {
    /// Puts a `created` message in the outbox (created → queued).
    pub fn enqueue(&self, mut message: Message) -> Result<Uuid, model::TransitionError> {
        message.transition(MessageState::Queued, Utc::now(), None)?;
        let mut inner = self.inner.lock();
        inner.next_seq += 1;
        let uuid = message.uuid;
        let entry = Entry {
            seq: inner.next_seq,
            receipts: vec![None; message.parts],
            message,
            attempts: 0,
            not_before: DateTime::<Utc>::MIN_UTC,
            claimed: false,
            accepted: BTreeMap::new(),
        };
        inner.entries.insert(uuid, entry);
        Ok(uuid)
    }

    /// The message as it is now.
    pub fn get(&self, uuid: Uuid) -> Option<Message> {
        self.inner.lock().entries.get(&uuid).map(|e| e.message.clone())
    }

    /// Every message, in queueing order.
    pub fn all(&self) -> Vec<Message> {
        let inner = self.inner.lock();
        let mut entries: Vec<&Entry> = inner.entries.values().collect();
        entries.sort_by_key(|e| e.seq);
        entries.iter().map(|e| e.message.clone()).collect()
    }

    fn apply_receipt(
        inner: &mut Inner,
        receipt: &DeliveryReceipt,
        at: DateTime<Utc>,
    ) -> Option<(Uuid, MessageState)> {
        let (uuid, part) = *inner.by_carrier_id.get(&receipt.message_id)?;
        let entry = inner.entries.get_mut(&uuid)?;
        if let Some(slot) = entry.receipts.get_mut(part) {
            *slot = Some(receipt.status);
        }
        let state = model::aggregate_receipts(&entry.receipts)?;
        // Refused (already final, or not yet sent) leaves it as it is.
        entry.message.transition(state, at, Some(format!("{:?}", receipt.status))).ok()?;
        Some((uuid, state))
    }
}

#[async_trait]
impl Outbox for MemoryOutbox {
    async fn claim(&self, limit: usize, _grace: Duration) -> Result<Vec<QueuedMessage>, OutboxError> {
        let now = Utc::now();
        let mut inner = self.inner.lock();
        let mut ready: Vec<&mut Entry> = inner
            .entries
            .values_mut()
            .filter(|e| e.message.state == MessageState::Queued && !e.claimed && e.not_before <= now)
            .collect();
        ready.sort_by_key(|e| e.seq);
        Ok(ready
            .into_iter()
            .take(limit)
            .map(|e| {
                e.claimed = true;
                QueuedMessage {
                    uuid: e.message.uuid,
                    from: e.message.from.clone(),
                    to: e.message.to.clone(),
                    text: e.message.text.clone(),
                    attempts: e.attempts,
                    accepted: e.accepted.clone(),
                    references: BTreeMap::new(),
                }
            })
            .collect())
    }

    async fn record_attempt(
        &self,
        uuid: Uuid,
        accepted: &BTreeMap<usize, String>,
        attempt: &Attempt,
        at: DateTime<Utc>,
    ) -> Result<(), OutboxError> {
        let mut inner = self.inner.lock();
        let entry = inner.entries.get_mut(&uuid).ok_or(OutboxError::NotFound(uuid))?;
        entry.claimed = false;
        entry.attempts += 1;
        entry.accepted = accepted.clone();
        let transition = match attempt {
            Attempt::Sent => Some((MessageState::Sent, None)),
            Attempt::Failed { reason } => Some((MessageState::Failed, Some(reason.clone()))),
            Attempt::Retry { not_before, .. } => {
                entry.not_before = *not_before;
                None
            }
        };
        if let Some((state, reason)) = transition {
            // A message the sender holds is queued; anything else is a bug upstream, logged.
            if let Err(e) = entry.message.transition(state, at, reason) {
                warn!(error = %e, "outbox transition refused");
            }
        }
        for (part, id) in accepted {
            inner.by_carrier_id.insert(id.clone(), (uuid, *part));
        }
        let early = std::mem::take(&mut inner.early);
        for receipt in early {
            if inner.by_carrier_id.contains_key(&receipt.message_id) {
                Self::apply_receipt(&mut inner, &receipt, at);
            } else {
                inner.early.push(receipt);
            }
        }
        Ok(())
    }

    async fn record_receipt(
        &self,
        receipt: &DeliveryReceipt,
        at: DateTime<Utc>,
    ) -> Result<Option<(Uuid, MessageState)>, OutboxError> {
        let mut inner = self.inner.lock();
        if !inner.by_carrier_id.contains_key(&receipt.message_id) {
            if inner.early.len() >= MAX_EARLY_RECEIPTS {
                inner.early.remove(0);
            }
            inner.early.push(receipt.clone());
            return Ok(None);
        }
        Ok(Self::apply_receipt(&mut inner, receipt, at))
    }
}
