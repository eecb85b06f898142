//! SMS messages as the store keeps them: the record (`GET /rest/sms/{uuid}`), its history, and
//! what the outbound queue hands a sender. The state machine itself (which moves are legal)
//! belongs to the messaging crate; the store only records the moves it is asked to make, and
//! guards each one with the state it expects, so two writers cannot both move a message.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Timestamp;

/// Which way a message goes (`type` in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmsDirection {
    /// Outbound.
    Smso,
    /// Inbound.
    Smsr,
}

impl SmsDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            SmsDirection::Smso => "smso",
            SmsDirection::Smsr => "smsr",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "smso" => SmsDirection::Smso,
            "smsr" => SmsDirection::Smsr,
            _ => return None,
        })
    }
}

/// A message's state (see the messaging crate's model for the machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmsState {
    Created,
    Queued,
    Sent,
    Delivered,
    Undelivered,
    Failed,
    Received,
}

impl SmsState {
    pub fn as_str(self) -> &'static str {
        match self {
            SmsState::Created => "created",
            SmsState::Queued => "queued",
            SmsState::Sent => "sent",
            SmsState::Delivered => "delivered",
            SmsState::Undelivered => "undelivered",
            SmsState::Failed => "failed",
            SmsState::Received => "received",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "created" => SmsState::Created,
            "queued" => SmsState::Queued,
            "sent" => SmsState::Sent,
            "delivered" => SmsState::Delivered,
            "undelivered" => SmsState::Undelivered,
            "failed" => SmsState::Failed,
            "received" => SmsState::Received,
            _ => return None,
        })
    }
}

/// One step of a message's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SmsTransition {
    pub state: SmsState,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A stored SMS with its history (oldest step first; the last is `state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SmsMessage {
    pub uuid: Uuid,
    pub account: Uuid,
    #[serde(rename = "type")]
    pub direction: SmsDirection,
    /// The account's lease the message went from (smso) or came to (smsr).
    pub tn_lease: Option<Uuid>,
    pub from: String,
    pub to: String,
    pub text: String,
    /// `gsm7` or `ucs2`.
    pub encoding: String,
    /// Parts on the air.
    pub parts: i32,
    pub state: SmsState,
    pub custom_callback_url: Option<String>,
    /// Send attempts made.
    pub attempts: i32,
    pub history: Vec<SmsTransition>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub created_on: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub modified_on: Timestamp,
    /// What it cost, micro-units, when it was rated (`[rating] deck`); set once it is charged.
    pub price_micros: Option<i64>,
}

/// What storing an outbound message takes. The caller (the API) has checked the lease, the
/// text and the destination, and segmented the text.
#[derive(Debug, Clone)]
pub struct NewSms {
    pub direction: SmsDirection,
    pub tn_lease: Option<Uuid>,
    pub from: String,
    pub to: String,
    pub text: String,
    pub encoding: String,
    pub parts: i32,
    pub custom_callback_url: Option<String>,
    /// Put an outbound message straight in the queue (created → queued in one write), so the
    /// row a sender may claim exists before the API answers.
    pub queue: bool,
}

/// Filter for `search_sms`; every given field must match.
#[derive(Debug, Clone, Default)]
pub struct SmsFilter {
    pub direction: Option<SmsDirection>,
    pub state: Option<SmsState>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Created at or after this.
    pub since: Option<Timestamp>,
    /// Created before this.
    pub until: Option<Timestamp>,
}

/// A queued message a sender claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedSms {
    pub uuid: Uuid,
    pub from: String,
    pub to: String,
    pub text: String,
    /// Attempts recorded before this claim.
    pub attempts: u32,
    /// Parts the carrier already accepted: part index → carrier message id.
    pub accepted: BTreeMap<usize, String>,
    /// The parts to submit now (every part not accepted), each with the SMPP
    /// `user_message_reference` it is in doubt under until its attempt is recorded: unique
    /// among the parts in doubt, and what a delivery receipt may echo to settle it.
    pub references: BTreeMap<usize, u16>,
    /// The claim this message was handed out under (`MessageRepo::renew_sms_claims`).
    pub token: Uuid,
}

/// What a message with parts in doubt (claimed, and no outcome recorded: its sender died
/// mid-submit, or the submit's answer was lost) becomes when the reconciliation grace passed
/// without a delivery receipt settling them: submitted again (at-least-once: a duplicate if the
/// SMSC took the part and sent no receipt echoing its reference) or failed (at-most-once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiredClaim {
    Requeue,
    Fail,
}

/// The outcome of one send attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsAttempt {
    /// Every part accepted: queued → sent.
    Sent,
    /// Given up: queued → failed.
    Failed { reason: String },
    /// Stays queued until `not_before`.
    Retry { not_before: Timestamp, reason: String },
    /// Stays queued until `not_before`, with the parts `in_doubt` whose submit was written but
    /// not answered (connection lost, timeout): they keep their reference, so a receipt echoing
    /// it settles them before the retry.
    Unanswered { not_before: Timestamp, reason: String, in_doubt: BTreeSet<usize> },
}

/// What a delivery receipt says of one part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsReceipt {
    /// The carrier's message id of the part.
    pub carrier_id: String,
    /// The receipt's status as the carrier named it (`delivered`, `expired`…).
    pub status: String,
    /// The final state it means for the part (`Delivered` / `Undelivered`), `None` for an
    /// intermediate receipt (enroute, accepted).
    pub part_final: Option<SmsState>,
}
