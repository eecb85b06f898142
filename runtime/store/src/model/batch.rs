use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Timestamp, Tn};

/// Where a batch of calls is.
///
/// ```text
///  queued ──▶ running ──▶ completed
///     │          │
///     └──────────┴──────▶ cancelled
/// ```
///
/// `completed` and `cancelled` are final: nothing moves a batch out of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BatchState {
    /// Stored; no call placed yet.
    Queued,
    /// The runner is placing its calls.
    Running,
    /// Every number was called and every call ended.
    Completed,
    /// Cancelled by the account: no new call is placed; calls in progress finish.
    Cancelled,
}

impl BatchState {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Queued => "queued",
            BatchState::Running => "running",
            BatchState::Completed => "completed",
            BatchState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => BatchState::Queued,
            "running" => BatchState::Running,
            "completed" => BatchState::Completed,
            "cancelled" => BatchState::Cancelled,
            _ => return None,
        })
    }

    /// Whether the batch is done with (completed or cancelled).
    pub fn is_final(self) -> bool {
        matches!(self, BatchState::Completed | BatchState::Cancelled)
    }
}

/// Where one number of a batch is.
///
/// ```text
///  queued ──▶ calling ──▶ answered ──▶ completed
///     │          ├──────▶ busy
///     │          ├──────▶ no_answer
///     └──────────┴──────▶ failed
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchItemState {
    /// Not called yet.
    Queued,
    /// The call was placed and is ringing.
    Calling,
    /// The callee answered; the flow is running.
    Answered,
    /// The call was answered and has ended.
    Completed,
    /// The callee was busy.
    Busy,
    /// Nobody answered within the batch's ring timeout.
    NoAnswer,
    /// The call could not be placed or was refused (the item's `reason` and `q850_cause` say why).
    Failed,
}

impl BatchItemState {
    /// Every state, in the order counts are shown.
    pub const ALL: [BatchItemState; 7] = [
        BatchItemState::Queued,
        BatchItemState::Calling,
        BatchItemState::Answered,
        BatchItemState::Completed,
        BatchItemState::Busy,
        BatchItemState::NoAnswer,
        BatchItemState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BatchItemState::Queued => "queued",
            BatchItemState::Calling => "calling",
            BatchItemState::Answered => "answered",
            BatchItemState::Completed => "completed",
            BatchItemState::Busy => "busy",
            BatchItemState::NoAnswer => "no_answer",
            BatchItemState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        BatchItemState::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// Whether the number is done with (completed, busy, no answer or failed).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            BatchItemState::Completed
                | BatchItemState::Busy
                | BatchItemState::NoAnswer
                | BatchItemState::Failed
        )
    }
}

/// A bulk call: every number of a list called from one leased number, each answered call
/// running one flow (an XML document or a SIP Control App). The counts are aggregated from
/// the items when the batch is read, so they are always consistent with them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Batch {
    pub uuid: Uuid,
    pub account: Uuid,
    /// Limits applied to the batch's calls (channels, calls per second).
    pub outbound_voice_profile: Option<Uuid>,
    /// The lease whose number the calls come from.
    pub tn_lease: Uuid,
    /// That number, as it was when the batch was created.
    #[schema(value_type = i64, example = 12029822917_i64)]
    pub from_tn: Tn,
    /// The XML document an answered call runs (or `sip_control_app`).
    pub xml: Option<String>,
    /// The app an answered call runs (or `xml`).
    pub sip_control_app: Option<Uuid>,
    /// How long a call rings before it counts as not answered, seconds.
    pub ring_timeout_secs: i32,
    pub state: BatchState,
    /// Numbers in the batch.
    pub total: i64,
    pub queued: i64,
    pub calling: i64,
    pub answered: i64,
    pub completed: i64,
    pub busy: i64,
    pub no_answer: i64,
    pub failed: i64,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub created_on: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub modified_on: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis_opt")]
    pub deleted_on: Option<Timestamp>,
}

impl Batch {
    /// How many items are in `state`.
    pub fn count(&self, state: BatchItemState) -> i64 {
        match state {
            BatchItemState::Queued => self.queued,
            BatchItemState::Calling => self.calling,
            BatchItemState::Answered => self.answered,
            BatchItemState::Completed => self.completed,
            BatchItemState::Busy => self.busy,
            BatchItemState::NoAnswer => self.no_answer,
            BatchItemState::Failed => self.failed,
        }
    }

    pub(crate) fn count_mut(&mut self, state: BatchItemState) -> &mut i64 {
        match state {
            BatchItemState::Queued => &mut self.queued,
            BatchItemState::Calling => &mut self.calling,
            BatchItemState::Answered => &mut self.answered,
            BatchItemState::Completed => &mut self.completed,
            BatchItemState::Busy => &mut self.busy,
            BatchItemState::NoAnswer => &mut self.no_answer,
            BatchItemState::Failed => &mut self.failed,
        }
    }
}

/// What creating a batch takes. Exactly one of `xml` and `sip_control_app`; the references
/// must be live objects of the account (checked by the store).
#[derive(Debug, Clone)]
pub struct NewBatch {
    pub outbound_voice_profile: Option<Uuid>,
    pub tn_lease: Uuid,
    /// The lease's number (the caller looked the lease up to check it has voice).
    pub from_tn: Tn,
    pub xml: Option<String>,
    pub sip_control_app: Option<Uuid>,
    pub ring_timeout_secs: i32,
    /// The numbers to call, digits only with the country code; item `i` is `phones[i]`.
    pub phones: Vec<String>,
}

/// One number of a batch and what became of its call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BatchItem {
    /// The batch (the API shows items inside their batch, so not again per item).
    #[serde(skip_serializing)]
    #[schema(ignore)]
    pub batch: Uuid,
    /// 0-based place in the batch's list (the order calls are placed in).
    pub position: i32,
    /// The number called: digits with the country code.
    pub phone: String,
    pub state: BatchItemState,
    /// The call placed for it (its call log entry), once placed.
    pub call: Option<Uuid>,
    /// How the call ended (ITU-T Q.850), once ended.
    pub q850_cause: Option<i32>,
    /// Why it failed, in words, when it did.
    pub reason: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis_opt")]
    pub started_on: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis_opt")]
    pub ended_on: Option<Timestamp>,
}

/// A change to an item: `state` is set; every other field, when `None`, is left as it is.
#[derive(Debug, Clone)]
pub struct BatchItemUpdate {
    pub state: BatchItemState,
    pub call: Option<Uuid>,
    pub q850_cause: Option<i32>,
    pub reason: Option<String>,
    pub started_on: Option<Timestamp>,
    pub ended_on: Option<Timestamp>,
}

impl BatchItemUpdate {
    /// Sets the state only.
    pub fn state(state: BatchItemState) -> Self {
        BatchItemUpdate {
            state,
            call: None,
            q850_cause: None,
            reason: None,
            started_on: None,
            ended_on: None,
        }
    }
}
