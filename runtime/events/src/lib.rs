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
