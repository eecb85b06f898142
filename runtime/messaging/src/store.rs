//! The durable outbox: [`Outbox`] over the store's [`MessageRepo`].
//!
//! Dependencies point inward: this crate depends on `opentact-store` (its repository traits and
//! row types), the store knows nothing of messaging. The store records the moves; the state
//! machine's rules for receipts ([`ReceiptStatus::final_state`]) are applied here before the
//! store sees them.
//!
//! Every move the outbox records (queued → sent or failed, sent → delivered or undelivered) is
//! handed to the [`OutboxObserver`], which is how the binary publishes `sms.*` events — each
//! step, in order, also when one write made two (a receipt that overtook its attempt's record:
//! sent, then delivered).
//!
//! Attempts and receipts recorded at the same time are written together, one transaction a
//! batch ([`crate::group`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use opentact_store::{
    ExpiredClaim, MessageRepo, SmsAttempt, SmsMessage, SmsMoved, SmsReceipt, SmsState, SmsWrite, StoreError,
};
use parking_lot::Mutex;
use uuid::Uuid;

use crate::group::GroupCommit;
use crate::model::{MessageState, ReceiptStatus};
use crate::outbox::{Attempt, Outbox, OutboxError, QueuedMessage, UnknownPolicy};
use crate::smpp::DeliveryReceipt;

/// How long a claim holds a message unless renewed, ms. The sender renews the claims it holds
/// every third of it ([`Outbox::renew`]), so a slow attempt keeps its messages; a sender that
/// died loses them one lease after its last renewal (then its parts in doubt wait the
/// reconciliation grace, see [`crate::outbox`]).
pub const DEFAULT_CLAIM_LEASE_MS: i64 = 60 * 1000;

/// Attempts and receipts written in one transaction at most.
pub const MAX_WRITE_BATCH: usize = 256;

type Writes = GroupCommit<(SmsWrite, DateTime<Utc>), Result<Option<SmsMoved>, OutboxError>>;

/// Writes the attempts and receipts recorded at the same time together.
fn writes(repo: Arc<dyn MessageRepo>) -> Writes {
    GroupCommit::new(MAX_WRITE_BATCH, move |batch: Vec<(SmsWrite, DateTime<Utc>)>| {
        let repo = repo.clone();
        async move {
            let n = batch.len();
            match repo.write_sms_batch(&batch).await {
                Ok(answers) => answers
                    .into_iter()
                    .zip(&batch)
                    .map(|(answer, (write, _))| {
                        answer.map_err(|e| match (e, write) {
                            (StoreError::NotFound { .. }, SmsWrite::Attempt { id, .. }) => {
                                OutboxError::NotFound(*id)
                            }
                            (e, _) => storage(e),
                        })
                    })
                    .collect(),
                Err(e) => (0..n).map(|_| Err(OutboxError::Storage(e.to_string().into()))).collect(),
            }
        }
    })
}

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
    /// Messages this process holds, with their claim's token (renewed by [`Outbox::renew`]):
    /// should a claim run out anyway while its attempt is still running here (a store
    /// unreachable for a whole lease), it is not handed to a second attempt here.
    held: Mutex<HashMap<Uuid, Uuid>>,
    writes: Writes,
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
    /// `unknown` decides what parts still in doubt after the grace become (see
    /// [`UnknownPolicy`]).
    pub fn new(repo: Arc<dyn MessageRepo>, unknown: UnknownPolicy) -> Self {
        Self {
            writes: writes(repo.clone()),
            repo,
            lease_ms: DEFAULT_CLAIM_LEASE_MS,
            expired: match unknown {
                UnknownPolicy::AtLeastOnce => ExpiredClaim::Requeue,
                UnknownPolicy::AtMostOnce => ExpiredClaim::Fail,
            },
            observer: None,
            held: Mutex::new(HashMap::new()),
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

    /// Tells the observer of each step the write made, in order; returns the message as it is.
    fn observe(&self, moved: Option<SmsMoved>) -> Option<SmsMessage> {
        let moved = moved?;
        if let Some(o) = &self.observer {
            for step in moved.each_step() {
                o.moved(&step);
            }
        }
        Some(moved.message)
    }

    async fn write(&self, write: SmsWrite, at: DateTime<Utc>) -> Result<Option<SmsMessage>, OutboxError> {
        let moved = self
            .writes
            .write((write, at))
            .await
            .unwrap_or_else(|| Err(OutboxError::Storage("the message writer stopped".into())))?;
        Ok(self.observe(moved))
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
        let echo = receipt.user_message_reference.map(|r| (r, receipt.handset.clone()));
        self.write(SmsWrite::Receipt { receipt: stored, echo }, at).await
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
    async fn claim(&self, limit: usize, grace: Duration) -> Result<Vec<QueuedMessage>, OutboxError> {
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        let claimed =
            self.repo.claim_sms_with(limit, self.lease_ms, self.expired, grace_ms).await.map_err(storage)?;
        let mut held = self.held.lock();
        Ok(claimed
            .into_iter()
            .filter(|c| {
                if held.contains_key(&c.uuid) {
                    return false;
                }
                held.insert(c.uuid, c.token);
                true
            })
            .map(|c| QueuedMessage {
                uuid: c.uuid,
                from: c.from,
                to: c.to,
                text: c.text,
                attempts: c.attempts,
                accepted: c.accepted,
                references: c.references,
            })
            .collect())
    }

    async fn renew(&self) -> Result<(), OutboxError> {
        let mut tokens: Vec<Uuid> = self.held.lock().values().copied().collect();
        tokens.sort();
        tokens.dedup();
        self.repo.renew_sms_claims(&tokens, self.lease_ms).await.map_err(storage)?;
        Ok(())
    }

    fn renew_every(&self) -> Option<Duration> {
        u64::try_from(self.lease_ms / 3).ok().filter(|ms| *ms > 0).map(Duration::from_millis)
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
            Attempt::Retry { not_before, reason, in_doubt } if in_doubt.is_empty() => {
                SmsAttempt::Retry { not_before: *not_before, reason: reason.clone() }
            }
            Attempt::Retry { not_before, reason, in_doubt } => SmsAttempt::Unanswered {
                not_before: *not_before,
                reason: reason.clone(),
                in_doubt: in_doubt.clone(),
            },
        };
        let result =
            self.write(SmsWrite::Attempt { id: uuid, accepted: accepted.clone(), attempt }, at).await;
        self.held.lock().remove(&uuid);
        result.map(|_| ())
    }

    async fn record_receipt(
        &self,
        receipt: &DeliveryReceipt,
        at: DateTime<Utc>,
    ) -> Result<Option<(Uuid, MessageState)>, OutboxError> {
        Ok(self.apply_receipt(receipt, at).await?.map(|m| (m.uuid, model_state(m.state))))
    }
}
