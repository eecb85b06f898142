//! Messaging (SMS): the message model and its state machine ([`model`]), segmentation into
//! GSM-7 or UCS-2 parts ([`segment`]), and the carriers — an SMPP 3.4 client ([`smpp`]).
//!
//! This crate knows nothing of calls, HTTP or SQL: [`store::StoreOutbox`] implements
//! [`outbox::Outbox`] (the durable queue) over the store's repository traits (this crate
//! depends on `opentact-store`, never the reverse); the binary wires carriers, outbox and
//! events together.

pub mod group;
pub mod inbound;
pub mod model;
pub mod outbox;
pub mod pool;
pub mod rate;
pub mod segment;
pub mod sip;
pub mod smpp;
pub mod store;
pub mod submit;
pub mod tendlc;
