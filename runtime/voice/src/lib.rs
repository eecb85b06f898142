//! Real calls: an inbound SIP leg ([`opentact_sip::IncomingCall`]) and its RTP session
//! ([`opentact_media::session::RtpSession`]) behind the [`opentact_call::CallBackend`] primitives, so a flow
//! drives a phone call exactly as it drives the simulator.
//!
//! - [`SipCall`]: answer (SDP offer/answer, RTP on a port of the configured range), play (TTS,
//!   files, tones, silence; barge-in), DTMF (RFC 4733 and in-band), record (WAV under the data
//!   directory, within the account's [`RecordingQuota`]), hangup (BYE, or 480/486/603 before
//!   answer), dial (parallel forking), bridge with another live call, hold; and calls the
//!   platform places ([`SipCall::outbound`]).
//! - [`MediaRenderer`]: media verbs to samples, with the platform's caches.

mod call;
mod dial;
mod quota;
mod render;

pub use call::{Destination, SipCall, VoiceConfig};
pub use dial::{BridgePeer, Dialer, LegGuard, LegSlot, PaidTime};
pub use opentact_media::recorder::file_bytes as recording_file_bytes;
pub use quota::{RecordingQuota, StoredRecordings, StoredUsage};
pub use render::{MediaRenderer, Rendered};
