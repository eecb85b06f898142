//! The message model: an outbound (`smso`) or inbound (`smsr`) SMS and its state machine.
//!
//! ```text
//!  smso:  created ──► queued ──► sent ──► delivered
//!            │          │         ├────► undelivered
//!            │          │         └────► failed
//!            └──────────┴──────────────► failed
//!  smsr:  received ──► delivered   (handed to the app / webhook)
//!             └──────► failed      (no app took it)
//! ```
//!
//! Every transition is kept, with its time and an optional reason, in the message's history
//! (`GET /rest/sms/{uuid}` shows it). An illegal move — backwards, out of a final state, or one
//! that belongs to the other direction — is refused with [`TransitionError`], so a late or
//! duplicated delivery receipt cannot rewrite a message's outcome.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::segment::{self, Encoding, SegmentError};

/// Which way a message goes (the `type` of the REST API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Outbound: sent by the platform for an account.
    Smso,
    /// Inbound: received on one of an account's numbers.
    Smsr,
}

/// A message's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageState {
    /// Accepted by the API; not yet in the outbox.
    Created,
    /// In the outbox, waiting for a carrier.
    Queued,
    /// Every part accepted by the carrier (it answered with its message ids).
    Sent,
    /// The carrier's receipts say every part reached the handset (smso), or the app took the
    /// message (smsr).
    Delivered,
    /// A receipt says a part did not reach the handset (expired, rejected, deleted…).
    Undelivered,
    /// It never left: refused by the carrier, or no carrier could take it.
    Failed,
    /// The initial state of an inbound message.
    Received,
}

impl MessageState {
    /// No transition leaves a final state.
    pub fn is_final(self) -> bool {
        matches!(self, MessageState::Delivered | MessageState::Undelivered | MessageState::Failed)
    }

    /// The state machine of the module docs.
    pub fn can_move(direction: Direction, from: MessageState, to: MessageState) -> bool {
        use MessageState::*;
        match direction {
            Direction::Smso => matches!(
                (from, to),
                (Created, Queued)
                    | (Created, Failed)
                    | (Queued, Sent)
                    | (Queued, Failed)
                    | (Sent, Delivered)
                    | (Sent, Undelivered)
                    | (Sent, Failed)
            ),
            Direction::Smsr => matches!((from, to), (Received, Delivered) | (Received, Failed)),
        }
    }
}

/// One step of a message's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub state: MessageState,
    pub at: DateTime<Utc>,
    /// Why, when it is not obvious: the carrier's error, the receipt's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A refused state change.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TransitionError {
    #[error("message {id} ({direction:?}) cannot move from {from:?} to {to:?}")]
    Illegal { id: Uuid, direction: Direction, from: MessageState, to: MessageState },
}

/// An SMS with its history. Serializes as the API's view of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub uuid: Uuid,
    #[serde(rename = "type")]
    pub direction: Direction,
    pub from: String,
    pub to: String,
    pub text: String,
    pub encoding: Encoding,
    /// Parts on the air (1 for a single SMS).
    pub parts: usize,
    pub state: MessageState,
    /// Every state the message has been in, oldest first; the last is `state`.
    pub history: Vec<Transition>,
}

impl Message {
    /// A new outbound message in state `created`. Refuses an empty or too long text.
    pub fn outbound(
        from: impl Into<String>,
        to: impl Into<String>,
        text: impl Into<String>,
        at: DateTime<Utc>,
    ) -> Result<Self, SegmentError> {
        let text = text.into();
        segment::check_length(&text)?;
        Ok(Self::new(Direction::Smso, MessageState::Created, from.into(), to.into(), text, at))
    }

    /// A new inbound message in state `received`.
    pub fn inbound(
        from: impl Into<String>,
        to: impl Into<String>,
        text: impl Into<String>,
        at: DateTime<Utc>,
    ) -> Self {
        Self::new(Direction::Smsr, MessageState::Received, from.into(), to.into(), text.into(), at)
    }

    fn new(
        direction: Direction,
        state: MessageState,
        from: String,
        to: String,
        text: String,
        at: DateTime<Utc>,
    ) -> Self {
        let plan = segment::plan(&text);
        Self {
            uuid: Uuid::new_v4(),
            direction,
            from,
            to,
            text,
            encoding: plan.encoding,
            parts: plan.parts,
            state,
            history: vec![Transition { state, at, reason: None }],
        }
    }

    /// Moves the message to `to` and records the step, or refuses an illegal move and leaves
    /// the message as it was.
    pub fn transition(
        &mut self,
        to: MessageState,
        at: DateTime<Utc>,
        reason: Option<String>,
    ) -> Result<(), TransitionError> {
        if !MessageState::can_move(self.direction, self.state, to) {
            return Err(TransitionError::Illegal {
                id: self.uuid,
                direction: self.direction,
                from: self.state,
                to,
            });
        }
        self.state = to;
        self.history.push(Transition { state: to, at, reason });
        Ok(())
    }
}

/// What a carrier's delivery receipt says about one part (SMPP `stat:` / `message_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptStatus {
    Enroute,
    Delivered,
    Expired,
    Deleted,
    Undeliverable,
    Accepted,
    Unknown,
    Rejected,
    Skipped,
}

impl ReceiptStatus {
    /// The final state this receipt moves a part to, or `None` for an intermediate one.
    pub fn final_state(self) -> Option<MessageState> {
        match self {
            ReceiptStatus::Delivered => Some(MessageState::Delivered),
            ReceiptStatus::Expired
            | ReceiptStatus::Deleted
            | ReceiptStatus::Undeliverable
            | ReceiptStatus::Rejected
            | ReceiptStatus::Skipped => Some(MessageState::Undelivered),
            ReceiptStatus::Enroute | ReceiptStatus::Accepted | ReceiptStatus::Unknown => None,
        }
    }
}

/// A multi-part message's state from its parts' receipts (`None`: no receipt yet): undelivered
/// as soon as one part is (the text cannot be whole), delivered once every part is, else no
/// change.
pub fn aggregate_receipts(parts: &[Option<ReceiptStatus>]) -> Option<MessageState> {
    let finals: Vec<Option<MessageState>> =
        parts.iter().map(|p| p.and_then(ReceiptStatus::final_state)).collect();
    if finals.contains(&Some(MessageState::Undelivered)) {
        Some(MessageState::Undelivered)
    } else if !finals.is_empty() && finals.iter().all(|f| *f == Some(MessageState::Delivered)) {
        Some(MessageState::Delivered)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn outbound_happy_path_keeps_every_step() {
        let mut m = Message::outbound("12025550100", "12025550111", "hello", t(0)).unwrap();
        assert_eq!((m.direction, m.state, m.parts), (Direction::Smso, MessageState::Created, 1));
        m.transition(MessageState::Queued, t(1), None).unwrap();
        m.transition(MessageState::Sent, t(2), None).unwrap();
        m.transition(MessageState::Delivered, t(3), Some("DELIVRD".into())).unwrap();
        let states: Vec<_> = m.history.iter().map(|h| (h.state, h.at)).collect();
        assert_eq!(
            states,
            vec![
                (MessageState::Created, t(0)),
                (MessageState::Queued, t(1)),
                (MessageState::Sent, t(2)),
                (MessageState::Delivered, t(3)),
            ]
        );
    }

    #[test]
    fn illegal_moves_are_refused_and_change_nothing() {
        let mut m = Message::outbound("1", "2", "x", t(0)).unwrap();
        let err = m.transition(MessageState::Sent, t(1), None).unwrap_err();
        assert!(matches!(
            err,
            TransitionError::Illegal { from: MessageState::Created, to: MessageState::Sent, .. }
        ));
        assert_eq!((m.state, m.history.len()), (MessageState::Created, 1));
        m.transition(MessageState::Queued, t(1), None).unwrap();
        m.transition(MessageState::Sent, t(2), None).unwrap();
        m.transition(MessageState::Undelivered, t(3), None).unwrap();
        // A late receipt cannot rewrite the outcome; nothing goes backwards.
        assert!(m.transition(MessageState::Delivered, t(4), None).is_err());
        assert!(m.transition(MessageState::Queued, t(4), None).is_err());
        // An outbound message is never "received"; an inbound one never "queued".
        let mut r = Message::inbound("2", "1", "hi", t(0));
        assert!(r.transition(MessageState::Queued, t(1), None).is_err());
        r.transition(MessageState::Delivered, t(1), None).unwrap();
        assert!(r.state.is_final());
    }

    #[test]
    fn outbound_refuses_bad_text() {
        assert_eq!(Message::outbound("1", "2", "", t(0)).unwrap_err(), SegmentError::Empty);
        assert!(Message::outbound("1", "2", "a".repeat(919), t(0)).is_err());
        // 200 units, but a 67-unit part holds 33 whole emoji: 4 parts, not 3.
        let m = Message::outbound("1", "2", "😀".repeat(100), t(0)).unwrap();
        assert_eq!((m.encoding, m.parts), (Encoding::Ucs2, 4));
    }

    #[test]
    fn serializes_as_the_api_view() {
        let mut m = Message::outbound("12025550100", "12025550111", "hi", t(0)).unwrap();
        m.transition(MessageState::Failed, t(1), Some("no carrier".into())).unwrap();
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["type"], "smso");
        assert_eq!(v["state"], "failed");
        assert_eq!(v["encoding"], "gsm7");
        assert_eq!(v["history"][0]["state"], "created");
        assert!(v["history"][0].get("reason").is_none());
        assert_eq!(v["history"][1]["reason"], "no carrier");
        let back: Message = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn receipts_aggregate_over_parts() {
        use ReceiptStatus::*;
        assert_eq!(aggregate_receipts(&[Some(Delivered)]), Some(MessageState::Delivered));
        assert_eq!(aggregate_receipts(&[Some(Delivered), None]), None);
        assert_eq!(aggregate_receipts(&[Some(Delivered), Some(Enroute)]), None);
        assert_eq!(aggregate_receipts(&[None, Some(Expired)]), Some(MessageState::Undelivered));
        assert_eq!(aggregate_receipts(&[Some(Delivered), Some(Delivered)]), Some(MessageState::Delivered));
        assert_eq!(aggregate_receipts(&[]), None);
    }
}
