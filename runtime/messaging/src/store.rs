//! The durable outbox: [`Outbox`] over the store's [`MessageRepo`].
//!
//! Dependencies point inward: this crate depends on `opentact-store` (its repository traits and
//! row types), the store knows nothing of messaging. The store records the moves; the state
//! machine's rules for receipts ([`ReceiptStatus::final_state`]) are applied here before the
//! store sees them.
//!
//! Every move the outbox records (queued → sent or failed, sent → delivered or undelivered) is
//! handed to the [`OutboxObserver`], which is how the binary publishes `sms.*` events.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use opentact_store::{ExpiredClaim, MessageRepo, SmsAttempt, SmsMessage, SmsReceipt, SmsState, StoreError};
use parking_lot::Mutex;
use uuid::Uuid;

use crate::model::{MessageState, ReceiptStatus};
use crate::outbox::{Attempt, Outbox, OutboxError, QueuedMessage, UnknownPolicy};
use crate::smpp::DeliveryReceipt;

/// How long a claim holds a message, ms. Longer than any attempt should take (an attempt waits
/// for a bind and for each submit's response): a claim that runs out is taken for a sender that
/// died, and the message is handed out again (at-least-once) or failed (at-most-once).
pub const DEFAULT_CLAIM_LEASE_MS: i64 = 10 * 60 * 1000;

/// Told of every state a message moves to through the outbox.
pub trait OutboxObserver: Send + Sync + 'static {
    fn moved(&self, message: &SmsMessage);
}

/// [`Outbox`] backed by the store.
pub struct StoreOutbox {
    repo: Arc<dyn MessageRepo>,
    lease_ms: i64,
    expired: ExpiredClaim,
    observer: Option<Arc<dyn OutboxObserver>>,
    /// Messages this process holds: a claim that ran out while its attempt is still running
    /// here (a very slow SMSC) is not handed to a second attempt.
    held: Mutex<HashSet<Uuid>>,
}

impl std::fmt::Debug for StoreOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOutbox").field("lease_ms", &self.lease_ms).finish_non_exhaustive()
    }
}

fn storage(e: StoreError) -> OutboxError {
    OutboxError::Storage(Box::new(e))
}

impl StoreOutbox {
    /// `unknown` decides what a claim that ran out becomes (see [`UnknownPolicy`]).
    pub fn new(repo: Arc<dyn MessageRepo>, unknown: UnknownPolicy) -> Self {
        Self {
            repo,
            lease_ms: DEFAULT_CLAIM_LEASE_MS,
            expired: match unknown {
                UnknownPolicy::AtLeastOnce => ExpiredClaim::Requeue,
                UnknownPolicy::AtMostOnce => ExpiredClaim::Fail,
            },
            observer: None,
            held: Mutex::new(HashSet::new()),
        }
    }

    /// Overrides [`DEFAULT_CLAIM_LEASE_MS`].
    pub fn with_lease_ms(mut self, lease_ms: i64) -> Self {
        self.lease_ms = lease_ms;
        self
    }

    pub fn with_observer(mut self, observer: Arc<dyn OutboxObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    fn observe(&self, moved: Option<SmsMessage>) -> Option<SmsMessage> {
        if let (Some(m), Some(o)) = (&moved, &self.observer) {
            o.moved(m);
        }
        moved
    }

    /// Applies a delivery receipt and returns the message when it moved.
    pub async fn apply_receipt(
        &self,
        receipt: &DeliveryReceipt,
        at: DateTime<Utc>,
    ) -> Result<Option<SmsMessage>, OutboxError> {
        let part_final = receipt.status.final_state().map(store_state);
        let stored = SmsReceipt {
            carrier_id: receipt.message_id.clone(),
            status: status_name(receipt.status),
            part_final,
        };
        let moved = self.repo.record_sms_receipt(&stored, at).await.map_err(storage)?;
        Ok(self.observe(moved))
    }
}

/// The store's name of a state.
pub fn store_state(state: MessageState) -> SmsState {
    match state {
        MessageState::Created => SmsState::Created,
        MessageState::Queued => SmsState::Queued,
        MessageState::Sent => SmsState::Sent,
        MessageState::Delivered => SmsState::Delivered,
        MessageState::Undelivered => SmsState::Undelivered,
        MessageState::Failed => SmsState::Failed,
        MessageState::Received => SmsState::Received,
    }
}

/// The model's name of a stored state.
pub fn model_state(state: SmsState) -> MessageState {
    match state {
        SmsState::Created => MessageState::Created,
        SmsState::Queued => MessageState::Queued,
        SmsState::Sent => MessageState::Sent,
        SmsState::Delivered => MessageState::Delivered,
        SmsState::Undelivered => MessageState::Undelivered,
        SmsState::Failed => MessageState::Failed,
        SmsState::Received => MessageState::Received,
    }
}

/// A receipt status as it is stored and shown (`delivered`, `expired`…).
fn status_name(status: ReceiptStatus) -> String {
    serde_json::to_value(status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

#[async_trait]
impl Outbox for StoreOutbox {
    async fn claim(&self, limit: usize) -> Result<Vec<QueuedMessage>, OutboxError> {
        let claimed = self.repo.claim_sms(limit, self.lease_ms, self.expired).await.map_err(storage)?;
        let mut held = self.held.lock();
        Ok(claimed
            .into_iter()
            .filter(|c| held.insert(c.uuid))
            .map(|c| QueuedMessage {
                uuid: c.uuid,
                from: c.from,
                to: c.to,
                text: c.text,
                attempts: c.attempts,
                accepted: c.accepted,
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
        let attempt = match attempt {
            Attempt::Sent => SmsAttempt::Sent,
            Attempt::Failed { reason } => SmsAttempt::Failed { reason: reason.clone() },
            Attempt::Retry { not_before, reason } => {
                SmsAttempt::Retry { not_before: *not_before, reason: reason.clone() }
            }
        };
        let result = self.repo.record_sms_attempt(uuid, accepted, &attempt, at).await;
        self.held.lock().remove(&uuid);
        match result {
            Ok(moved) => {
                self.observe(moved);
                Ok(())
            }
            Err(StoreError::NotFound { .. }) => Err(OutboxError::NotFound(uuid)),
            Err(e) => Err(storage(e)),
        }
    }

    async fn record_receipt(
        &self,
        receipt: &DeliveryReceipt,
        at: DateTime<Utc>,
    ) -> Result<Option<(Uuid, MessageState)>, OutboxError> {
        Ok(self.apply_receipt(receipt, at).await?.map(|m| (m.uuid, model_state(m.state))))
    }
}
