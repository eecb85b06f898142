//! SIP signalling for the platform, behind the project's own types.
//!
//! The stack underneath is [rsipstack](https://docs.rs/rsipstack) (transports, RFC 3261
//! transactions and dialogs); nothing outside this crate names it, so it can be swapped.
//!
//! - [`SipEndpoint`]: listens on UDP and TCP (and TLS, WebSocket and secure WebSocket when
//!   configured; the stream listeners are this crate's own, with per-address limits), answers OPTIONS, hands every new INVITE to an
//!   [`InboundHandler`] as an [`IncomingCall`], and routes in-dialog requests (ACK, BYE,
//!   re-INVITE, CANCEL) to their dialogs.
//! - [`IncomingCall`]: what routing needs to know about an INVITE (caller, callee, source
//!   address, SDP offer, headers) and the answers it can give (reject, ring, answer).
//! - [`LegEvents`]: how a leg ends (the peer's BYE or CANCEL, a missing ACK).
//! - [`message`]: SIP MESSAGE (RFC 3428) — inbound ones authenticated like calls and handed to
//!   a [`MessageHandler`], outbound ones sent with [`SipEndpoint::send_message`].
//!
//! Malformed messages never reach the platform: the transport drops what does not parse, and
//! requests that parse but lack what a transaction needs are answered 400 here.

pub mod address;
pub mod digest;
mod endpoint;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod guard;
mod inbound;
mod listeners;
pub mod message;
mod outbound;
mod refusal;
pub mod registrar;
mod validate;

pub use endpoint::{InboundHandler, InviteCredential, SipConfig, SipEndpoint, TlsCertificate};
pub use error::SipError;
pub use guard::{AUTH_BANNED_EVENT, AuthBan, AuthLimits, BanScope};
pub use inbound::{Caller, IncomingCall, LegEnd, LegEvents, LegState, ReofferHandler, SipUri};
pub use listeners::{
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_STREAM_CONNECTIONS, DEFAULT_MAX_STREAM_CONNECTIONS_PER_SOURCE,
    StreamLimits,
};
pub use message::{IncomingMessage, MessageHandler, MessageReply, OutboundMessage};
pub use outbound::{OutboundCall, OutboundOutcome, OutboundRequest, PendingOutcome};
pub use registrar::{Binding, DEFAULT_MAX_CONTACTS_PER_USER, Registrar};
