//! The call a flow runs on, and every call-control request it can make.

use std::time::Duration;

use crate::bindings::opentact::flow::call as host;
use crate::{
    CallInfo, CallState, Dial, DialResult, Direction, Gather, GatherResult, HangupReason, Play, Record,
    Recording, Result, Say, Sms, Tone, ms,
};

/// The call this flow runs on: the handle every call-control request goes through.
///
/// The platform hands one to [`Flow::handle_call`](crate::Flow::handle_call). Each method blocks
/// the flow until the platform has done what was asked (the host parks the instance meanwhile,
/// at almost no cost) and returns a result or an [`Error`](crate::Error).
#[derive(Debug, Clone)]
pub struct Call {
    started: CallInfo,
}

impl Call {
    #[doc(hidden)]
    /// The handle for the call described by `started` (used by [`export_flow!`](crate::export_flow)).
    pub fn __from_info(started: CallInfo) -> Self {
        Call { started }
    }

    /// The call's UUID (the id of the REST API and of events).
    pub fn id(&self) -> &str {
        &self.started.id
    }

    /// Who is calling: a number (digits, country code first, no `+`) or a SIP URI.
    pub fn from(&self) -> &str {
        &self.started.from
    }

    /// Who was called: a number or a SIP URI.
    pub fn to(&self) -> &str {
        &self.started.to
    }

    /// Which way the call travels.
    pub fn direction(&self) -> Direction {
        self.started.direction
    }

    /// The call as it was when the flow started (no host call).
    ///
    /// ```no_run
    /// # fn flow(call: &opentact_sdk::Call) -> opentact_sdk::Result<()> {
    /// if let Some(zone) = &call.started().time_zone {
    ///     call.set_meta("time-zone", zone)?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn started(&self) -> &CallInfo {
        &self.started
    }

    /// The call as it is now, asked of the platform.
    ///
    /// ```no_run
    /// # fn flow(call: &opentact_sdk::Call) {
    /// let info = call.info();
    /// println!("call {} from {} to {}", info.id, info.from, info.to);
    /// # }
    /// ```
    pub fn info(&self) -> CallInfo {
        host::info()
    }

    /// The call's state now.
    ///
    /// ```no_run
    /// # fn flow(call: &opentact_sdk::Call) -> opentact_sdk::Result<()> {
    /// use opentact_sdk::CallState;
    /// if call.state() == CallState::Ringing {
    ///     call.answer()?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn state(&self) -> CallState {
        host::state()
    }

    /// Answer the call (200 OK and media). Answering an answered call is a no-op.
    ///
    /// ```no_run
    /// # fn flow(call: &opentact_sdk::Call) -> opentact_sdk::Result<()> {
    /// call.answer()?;
    /// # Ok(()) }
    /// ```
    pub fn answer(&self) -> Result<()> {
        Ok(host::answer(0)?)
    }

    /// Answer the call after `delay` (the caller hears ringing meanwhile).
    ///
    /// ```no_run
    /// # fn flow(call: &opentact_sdk::Call) -> opentact_sdk::Result<()> {
    /// call.answer_after(std::time::Duration::from_secs(2))?;
    /// # Ok(()) }
    /// ```
    pub fn answer_after(&self, delay: Duration) -> Result<()> {
        Ok(host::answer(ms(delay))?)
    }

    /// End the call normally (BYE; 480 before answer).
    ///
    /// ```no_run
    /// # fn flow(call: &opentact_sdk::Call) -> opentact_sdk::Result<()> {
    /// call.say("Goodbye.")?;
    /// call.hangup()
    /// # }
    /// ```
    pub fn hangup(&self) -> Result<()> {
        self.hangup_with(HangupReason::Normal)
    }

    /// End the call; before answer, `reason` picks the SIP answer (busy: 486, rejected: 603).
    ///
    /// ```no_run
    /// # fn flow(call: &opentact_sdk::Call) -> opentact_sdk::Result<()> {
    /// use opentact_sdk::HangupReason;
    /// if call.from() == "12025550199" {
    ///     return call.hangup_with(HangupReason::Rejected);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn hangup_with(&self, reason: HangupReason) -> Result<()> {
        Ok(host::hangup(reason)?)
    }

    /// Speak text: a [`Say`], or a `&str` / `String` with the defaults.
    ///
    /// ```no_run
    /// # fn flow(call: &opentact_sdk::Call) -> opentact_sdk::Result<()> {
    /// use opentact_sdk::Say;
    /// call.say("Welcome to Acme.")?;
    /// call.say(Say::new("Bienvenue.").lang("fr-FR"))?;
    /// # Ok(()) }
    /// ```
    pub fn say(&self, say: impl Into<Say>) -> Result<()> {
        Ok(host::say(&say.into().0)?)
    }

    /// Play an audio file or an earlier recording.
    ///
    /// ```no_run
    /// # fn flow(call: &opentact_sdk::Call) -> opentact_sdk::Result<()> {
    /// use opentact_sdk::Play;
    /// call.play(Play::url("https://example.com/hold.mp3").loops(2))?;
    /// # Ok(()) }
    /// ```
    pub fn play(&self, play: Play) -> Result<()> {
        Ok(host::play(&play.0)?)
    }

    /// Play tones.
    ///
    /// ```no_run
    /// # fn flow(call: &opentact_sdk::Call) -> opentact_sdk::Result<()> {
    /// use opentact_sdk::Tone;
    /// call.tone(Tone::beep())?;
    /// # Ok(()) }
    /// ```
    pub fn tone(&self, tone: Tone) -> Result<()> {
        Ok(host::tone(&tone.0)?)
    }

    /// Silence for `length`.
    ///
    /// ```no_run
    /// # fn flow(call: &opentact_sdk::Call) -> opentact_sdk::Result<()> {
    /// call.pause(std::time::Duration::from_secs(1))?;
    /// # Ok(()) }
    /// ```
    pub fn pause(&self, length: Duration) -> Result<()> {
        Ok(host::pause(ms(length))?)
    }

    /// Collect DTMF digits, playing the gather's prompts. No input is not an error: it returns
    /// empty digits.
    ///
    /// ```no_run
    /// # fn flow(call: &opentact_sdk::Call) -> opentact_sdk::Result<()> {
    /// use opentact_sdk::Gather;
    /// let menu = call.gather(Gather::new().prompt("Press 1 for sales, 2 for support.").attempts(2))?;
    /// match menu.digits.as_str() {
    ///     "1" => call.say("Sales.")?,
    ///     "" => call.say("We did not hear you.")?,
    ///     _ => call.say("That is not an option.")?,
    /// }
    /// # Ok(()) }
    /// ```
    pub fn gather(&self, gather: Gather) -> Result<GatherResult> {
        Ok(host::gather(&gather.0)?)
    }

    /// Record the caller until the finish key, the silence timeout or the maximum length.
    ///
    /// ```no_run
    /// # fn flow(call: &opentact_sdk::Call) -> opentact_sdk::Result<()> {
    /// use opentact_sdk::Record;
    /// let recording = call.record(Record::new("greeting"))?;
    /// println!("recorded {} ms as {}", recording.duration_ms, recording.id);
    /// # Ok(()) }
    /// ```
    pub fn record(&self, record: Record) -> Result<Recording> {
        Ok(host::record(&record.0)?)
    }

    /// Start recording the whole call in the background, under `name`.
    ///
    /// ```no_run
    /// # fn flow(call: &opentact_sdk::Call) -> opentact_sdk::Result<()> {
    /// call.record_start("whole-call")?;
    /// call.say("This call is recorded.")?;
    /// let recording = call.record_stop()?;
    /// # Ok(()) }
    /// ```
    pub fn record_start(&self, name: &str) -> Result<()> {
        Ok(host::record_start(name)?)
    }

    /// Stop the background recording; returns it, or `None` if none was running.
    ///
    /// ```no_run
    /// # fn flow(call: &opentact_sdk::Call) -> opentact_sdk::Result<()> {
    /// if let Some(recording) = call.record_stop()? {
    ///     call.set_meta("recording", &recording.id)?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn record_stop(&self) -> Result<Option<Recording>> {
        Ok(host::record_stop()?)
    }

    /// Ring targets in parallel and bridge the first that answers; returns when the bridged
    /// conversation ends. No answer, busy and failure are errors.
    ///
    /// ```no_run
    /// # fn flow(call: &opentact_sdk::Call) -> opentact_sdk::Result<()> {
    /// use opentact_sdk::{Dial, Error};
    /// match call.dial(Dial::new().number("12223334455").user("alice@acme.sip.example")) {
    ///     Ok(result) => println!("talked for {} ms", result.duration_ms),
    ///     Err(Error::NoAnswer | Error::Busy) => call.say("Nobody is available.")?,
    ///     Err(other) => return Err(other),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn dial(&self, dial: Dial) -> Result<DialResult> {
        Ok(host::dial(&dial.0)?)
    }

    /// Bridge this call with another live call of the same account (by call UUID); returns when
    /// the bridge ends.
    ///
    /// ```no_run
    /// # fn flow(call: &opentact_sdk::Call) -> opentact_sdk::Result<()> {
    /// call.bridge("6f1c2c8e-5b7a-4d7e-9a51-0c1f4a1f2b3c")?;
    /// # Ok(()) }
    /// ```
    pub fn bridge(&self, call_id: &str) -> Result<()> {
        Ok(host::bridge(call_id)?)
    }

    /// Put the caller on hold with music, for at most `timeout` (the XML dialect's default is
    /// 5 minutes).
    ///
    /// ```no_run
    /// # fn flow(call: &opentact_sdk::Call) -> opentact_sdk::Result<()> {
    /// call.hold(std::time::Duration::from_secs(300))?;
    /// # Ok(()) }
    /// ```
    pub fn hold(&self, timeout: Duration) -> Result<()> {
        Ok(host::hold(ms(timeout))?)
    }

    /// Take the caller off hold.
    ///
    /// ```no_run
    /// # fn flow(call: &opentact_sdk::Call) -> opentact_sdk::Result<()> {
    /// call.unhold()?;
    /// # Ok(()) }
    /// ```
    pub fn unhold(&self) -> Result<()> {
        Ok(host::unhold()?)
    }

    /// Attach a key/value to the call: it appears in every later event and webhook of the call.
    ///
    /// ```no_run
    /// # fn flow(call: &opentact_sdk::Call) -> opentact_sdk::Result<()> {
    /// call.set_meta("department", "sales")?;
    /// # Ok(()) }
    /// ```
    pub fn set_meta(&self, name: &str, value: &str) -> Result<()> {
        Ok(host::set_meta(name, value)?)
    }

    /// Send an SMS; returns the message UUID.
    ///
    /// ```no_run
    /// # fn flow(call: &opentact_sdk::Call) -> opentact_sdk::Result<()> {
    /// use opentact_sdk::Sms;
    /// let id = call.send_sms(Sms::new(call.from(), "Thanks for calling."))?;
    /// # Ok(()) }
    /// ```
    pub fn send_sms(&self, sms: Sms) -> Result<String> {
        crate::send_sms(sms)
    }
}
