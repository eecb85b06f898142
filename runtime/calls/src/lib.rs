//! The call engine: everything between a SIP INVITE (or a REST "make call") and the flow that
//! decides what the call does.
//!
//! - [`routing`]: who is calling and where to; an inbound call's app.
//! - [`call_runner`]: runs one call, inbound or placed, from its first event to its last — the
//!   session, the flow host, events to the bus, the call log and the webhooks.
//! - [`dialer`]: where `<Dial>` targets ring.
//! - [`originate`]: calls the platform places (`POST /rest/call`), with the outbound voice
//!   profiles' channel and rate limits; [`batch`]: bulk calls paced by them.
//! - [`live_calls`]: this node's live calls, for bridging and asynchronous commands.
//! - [`admission`]: whether a new call may start (an account's share, draining for a stop).
//!   On a shared PostgreSQL both the profiles' limits and the accounts' shares are counted in
//!   the database for all the nodes (`shared_limits`).
//! - [`command_relay`]: REST commands for calls another node carries.
//! - [`spend`]: what calls in progress spend, so concurrent calls share one balance.
//! - [`shaken`]: STIR/SHAKEN — outbound legs signed, inbound calls verified.
//! - [`trunk`]: SIP trunking — numbers on SIP connections to the PBX, its calls out.
//! - [`call_log`]: CDRs and recordings' metadata; [`transcribe`]: speech-to-text of recordings.
//!
//! The engine reads and writes through the store's repository traits ([`Repo`]), implements
//! the REST API's seams (`opentact-control`) and knows nothing of HTTP routing or SQL; the
//! `opentact` binary builds it from the config and wires it to SIP and the API.

pub mod admission;
pub mod batch;
pub mod billing;
pub mod call_log;
pub mod call_runner;
pub mod command_relay;
pub mod dialer;
pub mod live_calls;
pub mod numbers;
pub mod originate;
pub mod routing;
pub mod shaken;
mod shared_limits;
pub mod spend;
pub mod transcribe;
pub mod trunk;

use std::sync::Arc;

pub use admission::{Admission, CallSlot, Refusal};
pub use batch::BatchRunner;
pub use billing::Billing;
pub use call_log::CallLog;
pub use call_runner::CallRunner;
pub use dialer::ServerDialer;
pub use live_calls::LiveCalls;
pub use numbers::NumberData;
pub use originate::{Originator, ProfileLimits, RestCalling};
pub use routing::{CallRouter, Network};
pub use transcribe::{SpeechConfig, Transcriber};

/// The store as the engine sees it: its repository traits, behind one shared handle.
pub type Repo = Arc<dyn opentact_store::Repository>;
