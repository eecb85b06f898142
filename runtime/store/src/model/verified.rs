//! Verified caller IDs: numbers an account does not lease but has shown it answers, by a code
//! sent to the number (a call that says it) and typed back.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Timestamp, Tn};

/// A number an account may present as its caller ID once verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct VerifiedNumber {
    pub uuid: Uuid,
    #[serde(skip)]
    pub account: Uuid,
    /// The number, country code first, no `+`.
    #[schema(value_type = i64)]
    pub tn: Tn,
    /// `pending` until the code is confirmed, then `verified`.
    pub state: &'static str,
    /// Wrong codes tried so far.
    pub attempts: u32,
    /// When a pending code stops being accepted.
    #[serde(serialize_with = "super::millis")]
    #[schema(value_type = i64)]
    pub expired_on: Timestamp,
    #[serde(serialize_with = "super::millis_opt")]
    #[schema(value_type = Option<i64>)]
    pub verified_on: Option<Timestamp>,
    #[serde(serialize_with = "super::millis")]
    #[schema(value_type = i64)]
    pub created_on: Timestamp,
    /// SHA-256 (hex) of the code; never serialized.
    #[serde(skip)]
    pub code_hash: String,
}
