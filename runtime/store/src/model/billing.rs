use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::Timestamp;

/// What changed a balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TransactionKind {
    /// Money the operator added (`opentact admin account credit`).
    Credit,
    /// A rated call.
    Call,
    /// A rated message.
    Sms,
    /// A month of a leased number (its reference is the lease).
    Number,
}

impl TransactionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionKind::Credit => "credit",
            TransactionKind::Call => "call",
            TransactionKind::Sms => "sms",
            TransactionKind::Number => "number",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "credit" => TransactionKind::Credit,
            "call" => TransactionKind::Call,
            "sms" => TransactionKind::Sms,
            "number" => TransactionKind::Number,
            _ => return None,
        })
    }
}

/// One change of an account's balance, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Transaction {
    pub uuid: Uuid,
    pub account: Uuid,
    pub kind: TransactionKind,
    /// Micro-units: a credit is positive, a charge negative.
    pub amount_micros: i64,
    /// The balance just after it, micro-units.
    pub balance_after_micros: i64,
    /// What was charged: the call's, the dialled leg's, the message's or the lease's id.
    pub reference: Option<Uuid>,
    /// A call's outbound voice profile.
    pub outbound_voice_profile: Option<Uuid>,
    /// In words: the destination and its rate, or the operator's note.
    pub description: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::model::millis")]
    pub created_on: Timestamp,
}

/// A rated call's price, kept on its CDR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CallPrice {
    /// Micro-units.
    pub price_micros: i64,
    /// Seconds billed, in the rate's increments.
    pub billed_secs: i64,
    /// The deck's prefix that rated the call.
    pub rate_prefix: String,
    /// Its per-minute price, micro-units.
    pub rate_per_minute_micros: i64,
}

/// What is charged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeTarget {
    /// A call of the account: its CDR gets the price.
    Call { call: Uuid, price: CallPrice, outbound_voice_profile: Option<Uuid> },
    /// A message of the account: its record gets the price.
    Sms { message: Uuid },
    /// A `<Dial>` leg `leg` (a new id) of the account's call `call`: charged as a call (the
    /// leg is the reference), the call's CDR is not priced. A SIP connection's call out is
    /// charged to its outbound voice profile (its daily spend).
    Leg { call: Uuid, leg: Uuid, outbound_voice_profile: Option<Uuid> },
}

/// A charge to settle: `amount_micros` (not negative) is taken off the balance, which may go
/// below zero: a call is charged what it talked, even when other charges came first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCharge {
    pub target: ChargeTarget,
    pub amount_micros: i64,
    pub description: String,
}

/// A month of a leased number to charge: the lease is paid until `paid_until` once the
/// balance pays `amount_micros`. `expected_paid_until` is what the caller read (`None` for a
/// lease not yet paid): a lease changed since (renewed by another node, released) is not charged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLeaseCharge {
    pub lease: Uuid,
    pub amount_micros: i64,
    pub expected_paid_until: Option<Timestamp>,
    pub paid_until: Timestamp,
    pub description: String,
}

/// How charging a lease went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseChargeOutcome {
    /// Charged: the ledger row; the lease is paid until the new date.
    Charged(Transaction),
    /// The balance (micro-units, as read) does not pay it: nothing changed.
    Unpaid { balance_micros: i64 },
    /// The lease is no longer as read (released, or renewed meanwhile): nothing changed.
    Stale,
}

/// `POST /rest/account/transactions/search`: every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionFilter {
    pub kind: Option<TransactionKind>,
    /// What was charged: a call, a dialled leg, a message or a lease.
    pub reference: Option<Uuid>,
    /// Made at or after.
    pub since: Option<Timestamp>,
    /// Made before.
    pub until: Option<Timestamp>,
}
