//! Events: what happened to an account's calls (and later its numbers and messages), in the
//! Opentact envelope, delivered to whoever listens — websocket clients today, webhooks next.
//!
//! - [`Event`] is the envelope: an id (`uuid`), `type`, `created_on`, the call it belongs to,
//!   the per-call `seq` and `occurred_at`, and the payload.
//! - [`EventBus`] fans events out to subscribers of the same account. Each subscriber has a
//!   bounded queue: a consumer that falls behind is cut off with [`Lagged`] instead of slowing
//!   the calls that publish. Recent events are kept for a window ([`BusConfig`]), so a consumer
//!   that reconnects can resume after the last event it saw and miss nothing.
//! - [`AccountSink`] is a call's [`opentact_call::EventSink`]: it wraps the call's events into
//!   envelopes for the call's account and publishes them.

mod bus;
mod envelope;
pub mod signing;

pub use bus::{BusConfig, EventBus, Lagged, ResumeError, Subscription};
pub use envelope::{AccountSink, Event};

/// `account.changed`'s payload after a charge or a credit: `changed: ["balance"]`, the new
/// balance in micro-units and as the API writes amounts (`"12.500000"`), the currency, and the
/// ledger's row that moved it — one shape whatever was charged (a call, a leg, a message, a
/// number's month).
pub fn balance_changed_payload(
    balance_after_micros: i64,
    currency: &str,
    transaction: &impl serde::Serialize,
) -> serde_json::Value {
    serde_json::json!({
        "changed": ["balance"],
        "balance_micros": balance_after_micros,
        "balance": opentact_rating::format_amount(balance_after_micros),
        "currency": currency,
        "transaction": transaction,
    })
}
