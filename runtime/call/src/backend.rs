//! What a call must provide to be driven by a flow: the primitives a real SIP call (the sip and
//! media crates), a REST-placed call or the simulator implement. Verb logic that is the same for
//! every call — gather timers, barge-in, auto-answer, argument checks, events — is built on
//! these primitives once, in [`crate::session::CallSession`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::error::CallError;
use crate::model::{
    CallInfo, CallState, DialRequest, DialResult, DialTarget, HangupReason, Media, PlayOutcome,
    RecordRequest, Recording, SmsRequest,
};

/// A call's primitives. Every method that waits returns [`CallError::Hangup`] as soon as the
/// caller hangs up.
#[async_trait]
pub trait CallBackend: Send + Sync {
    /// The call.
    fn info(&self) -> CallInfo;

    /// Its state now.
    fn state(&self) -> CallState;

    /// The call's clock (virtual in the simulator).
    fn clock(&self) -> Arc<dyn Clock>;

    /// Answer (200 OK + media).
    async fn answer(&self) -> Result<(), CallError>;

    /// An outbound call's ringing: turns true when the callee rings (180/183), for
    /// `call.ringing`. `None` for calls that do not report it.
    fn ringing(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        None
    }

    /// End the call; before answer, `reason` picks the SIP status.
    async fn hangup(&self, reason: HangupReason) -> Result<(), CallError>;

    /// Play media to the call. With `barge_in`, a DTMF digit stops it (and stays buffered).
    async fn play(&self, media: &Media, barge_in: bool) -> Result<PlayOutcome, CallError>;

    /// The next DTMF digit, buffered or arriving within `timeout`; `None` on timeout.
    async fn next_digit(&self, timeout: Duration) -> Result<Option<char>, CallError>;

    /// Record the caller.
    async fn record(&self, request: &RecordRequest) -> Result<Recording, CallError>;

    /// Start a background recording of the call.
    async fn record_start(&self, name: &str) -> Result<(), CallError>;

    /// Stop the background recording.
    async fn record_stop(&self) -> Result<Option<Recording>, CallError>;

    /// Whether a recording of this call has the name (for `play` of a recording).
    fn has_recording(&self, name: &str) -> bool;

    /// Ring targets in parallel, bridge the first that answers, return when the bridge ends.
    /// `bridged` is called once, when the bridge starts (for the `call.bridged` event).
    async fn dial(
        &self,
        request: &DialRequest,
        bridged: &(dyn for<'t> Fn(&'t DialTarget) + Send + Sync),
    ) -> Result<DialResult, CallError>;

    /// Bridge with another live call of the account.
    async fn bridge(&self, call_id: &str) -> Result<(), CallError>;

    /// Hold with music, at most `timeout`.
    async fn hold(&self, timeout: Duration) -> Result<(), CallError>;

    /// Resume from hold.
    async fn unhold(&self) -> Result<(), CallError>;

    /// Send an SMS; returns its UUID.
    async fn send_sms(&self, request: &SmsRequest) -> Result<String, CallError>;
}
