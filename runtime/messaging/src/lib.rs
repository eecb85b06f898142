//! Messaging (SMS): the message model and its state machine ([`model`]), segmentation into
//! GSM-7 or UCS-2 parts ([`segment`]), and the carriers — an SMPP 3.4 client ([`smpp`]).
//!
//! This crate knows nothing of calls, HTTP or SQL: the store implements [`outbox::Outbox`]
//! (the durable queue), the binary wires carriers, outbox and events together.

pub mod model;
pub mod outbox;
pub mod segment;
pub mod smpp;
