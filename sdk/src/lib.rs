//! Write Opentact call flows in Rust.
//!
//! A flow is a WebAssembly component: the platform runs one instance per call and the flow
//! drives the call through blocking calls — answer, say, gather, dial… — each returning a
//! [`Result`] whose [`Error`] the flow can handle (the caller hung up, nobody answered, …).
//!
//! ```no_run
//! use opentact_sdk::{Call, Flow, Gather, Say, Result};
//!
//! struct Menu;
//!
//! impl Flow for Menu {
//!     fn handle_call(call: Call) -> Result<()> {
//!         call.answer()?;
//!         let choice = call.gather(Gather::new().prompt(Say::new("Press 1 for sales.")).attempts(2))?;
//!         match choice.digits.as_str() {
//!             "1" => call.say(Say::new("Connecting you to sales."))?,
//!             "" => call.say(Say::new("Goodbye."))?,
//!             _ => call.say(Say::new("That is not an option."))?,
//!         }
//!         call.hangup()
//!     }
//! }
//!
//! opentact_sdk::export_flow!(Menu);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release` (the crate type must be `cdylib`)
//! and try the component locally with `opentact flow run target/wasm32-wasip2/release/<name>.wasm`.

// The only unsafe code is what wit-bindgen generates for the component ABI.
#![allow(unsafe_code)]

use std::fmt;
use std::time::Duration;

/// The raw WIT bindings of the `opentact:flow` world, for what the friendly API does not cover.
#[allow(missing_docs, missing_debug_implementations)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "flow",
        pub_export_macro: true,
        export_macro_name: "export_flow_bindings",
        default_bindings_module: "opentact_sdk::bindings",
    });
}

use bindings::opentact::flow::{call as host, flow_events, types as wit};
pub use wit::{
    CallInfo, CallState, DialTarget, Direction, GatherEnd, Gender, HangupReason, Leg, Recording, SmsMessage,
};

/// Why a call-control request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The caller hung up: return from the flow.
    Hangup,
    /// Nobody answered the dialled targets.
    NoAnswer,
    /// Every dialled target was busy.
    Busy,
    /// The request could not be carried out.
    Failed(String),
    /// An argument was out of range; the text names it.
    InvalidArgument(String),
    /// The request does not fit the call's state.
    InvalidState(String),
    /// A platform limit was reached.
    LimitExceeded(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Hangup => f.write_str("the caller hung up"),
            Error::NoAnswer => f.write_str("no answer"),
            Error::Busy => f.write_str("busy"),
            Error::Failed(why) => write!(f, "failed: {why}"),
            Error::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
            Error::InvalidState(why) => write!(f, "invalid in this call state: {why}"),
            Error::LimitExceeded(why) => write!(f, "limit exceeded: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<wit::CallError> for Error {
    fn from(error: wit::CallError) -> Self {
        match error {
            wit::CallError::Hangup => Error::Hangup,
            wit::CallError::NoAnswer => Error::NoAnswer,
            wit::CallError::Busy => Error::Busy,
            wit::CallError::Failed(s) => Error::Failed(s),
            wit::CallError::InvalidArgument(s) => Error::InvalidArgument(s),
            wit::CallError::InvalidState(s) => Error::InvalidState(s),
            wit::CallError::LimitExceeded(s) => Error::LimitExceeded(s),
        }
    }
}

/// The result of a call-control request.
pub type Result<T> = std::result::Result<T, Error>;

/// A call flow. Implement it and export it with [`export_flow!`].
pub trait Flow {
    /// Run the flow for a call. Returning ends the flow; the platform hangs up the call.
    fn handle_call(call: Call) -> Result<()>;

    /// Handle an SMS to one of the app's numbers. Does nothing by default.
    fn handle_sms(message: SmsMessage) -> Result<()> {
        let _ = message;
        Ok(())
    }
}

/// Export a [`Flow`] as the component's handler.
///
/// ```no_run
/// struct Hello;
/// impl opentact_sdk::Flow for Hello {
///     fn handle_call(call: opentact_sdk::Call) -> opentact_sdk::Result<()> {
///         call.say(opentact_sdk::Say::new("Hello!"))
///     }
/// }
/// opentact_sdk::export_flow!(Hello);
/// ```
#[macro_export]
macro_rules! export_flow {
    ($flow:ty) => {
        const _: () = {
            struct OpentactFlowExport;
            impl $crate::bindings::exports::opentact::flow::handler::Guest for OpentactFlowExport {
                fn handle_call(call: $crate::CallInfo) -> ::std::result::Result<(), ::std::string::String> {
                    <$flow as $crate::Flow>::handle_call($crate::Call::new(call)).map_err(|e| e.to_string())
                }
                fn handle_sms(
                    message: $crate::SmsMessage,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    <$flow as $crate::Flow>::handle_sms(message).map_err(|e| e.to_string())
                }
            }
            // Only a component has the ABI; native builds (tests, clippy) skip it.
            #[cfg(target_arch = "wasm32")]
    $crate::bindings::export_flow_bindings!(OpentactFlowExport with_types_in $crate::bindings);
        };
    };
}

fn ms(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}

/// Text to speech. Defaults: `en-US`, female, once, to the caller.
#[derive(Debug, Clone)]
pub struct Say(wit::SayRequest);

impl Say {
    /// Speak `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Say(wit::SayRequest {
            text: text.into(),
            lang: "en-US".to_owned(),
            gender: Gender::Female,
            voice: None,
            loop_count: 1,
            leg: Leg::Aleg,
        })
    }
    /// Language tag.
    pub fn lang(mut self, lang: impl Into<String>) -> Self {
        self.0.lang = lang.into();
        self
    }
    /// Voice gender.
    pub fn gender(mut self, gender: Gender) -> Self {
        self.0.gender = gender;
        self
    }
    /// A provider voice code.
    pub fn voice(mut self, voice: impl Into<String>) -> Self {
        self.0.voice = Some(voice.into());
        self
    }
    /// Repetitions.
    pub fn loops(mut self, count: u32) -> Self {
        self.0.loop_count = count;
        self
    }
    /// Which leg hears it.
    pub fn leg(mut self, leg: Leg) -> Self {
        self.0.leg = leg;
        self
    }
}

/// An audio file or an earlier recording. Defaults: once, to the caller.
#[derive(Debug, Clone)]
pub struct Play(wit::PlayRequest);

impl Play {
    /// A WAV or MP3 at an http(s) URL.
    pub fn url(url: impl Into<String>) -> Self {
        Play(wit::PlayRequest { source: wit::AudioSource::Url(url.into()), loop_count: 1, leg: Leg::Aleg })
    }
    /// A recording of this call, by name.
    pub fn recording(name: impl Into<String>) -> Self {
        Play(wit::PlayRequest {
            source: wit::AudioSource::Recording(name.into()),
            loop_count: 1,
            leg: Leg::Aleg,
        })
    }
    /// Repetitions.
    pub fn loops(mut self, count: u32) -> Self {
        self.0.loop_count = count;
        self
    }
}

/// Tones. Defaults: continuous, 0 dB, once, stopping after 30 s.
#[derive(Debug, Clone)]
pub struct Tone(wit::ToneRequest);

impl Tone {
    /// Frequencies played together, Hz.
    pub fn new(frequencies: impl Into<Vec<u32>>) -> Self {
        Tone(wit::ToneRequest {
            frequencies: frequencies.into(),
            on_ms: 0,
            off_ms: 0,
            loop_count: 1,
            volume_db: 0,
            timeout_ms: 30_000,
            leg: Leg::Aleg,
        })
    }
    /// On/off cadence.
    pub fn cadence(mut self, on: Duration, off: Duration) -> Self {
        self.0.on_ms = ms(on);
        self.0.off_ms = ms(off);
        self
    }
    /// Cycles.
    pub fn loops(mut self, count: u32) -> Self {
        self.0.loop_count = count;
        self
    }
    /// Level in dB (0 loudest, negative quieter).
    pub fn volume(mut self, db: i32) -> Self {
        self.0.volume_db = db;
        self
    }
    /// Upper bound on the whole tone.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.0.timeout_ms = ms(timeout);
        self
    }
}

/// Collect digits. Defaults: 1 digit, `#` ends, 10 s for the first digit, 5 s between digits,
/// one attempt.
#[derive(Debug, Clone)]
pub struct Gather(wit::GatherRequest);

impl Default for Gather {
    fn default() -> Self {
        Self::new()
    }
}

impl Gather {
    /// A gather with the defaults.
    pub fn new() -> Self {
        Gather(wit::GatherRequest {
            prompts: Vec::new(),
            max_digits: 1,
            finish_key: Some("#".to_owned()),
            first_digit_timeout_ms: 10_000,
            inter_digit_timeout_ms: 5_000,
            attempts: 1,
        })
    }
    /// Add a prompt (a [`Say`], [`Play`] or [`Tone`]); the first digit interrupts it.
    pub fn prompt(mut self, prompt: impl Into<Prompt>) -> Self {
        self.0.prompts.push(prompt.into().0);
        self
    }
    /// Digits to collect.
    pub fn max_digits(mut self, count: u32) -> Self {
        self.0.max_digits = count;
        self
    }
    /// The key that ends the gather early; `None` for none.
    pub fn finish_key(mut self, key: Option<char>) -> Self {
        self.0.finish_key = key.map(String::from);
        self
    }
    /// How long to wait for the first digit after the prompts.
    pub fn first_digit_timeout(mut self, timeout: Duration) -> Self {
        self.0.first_digit_timeout_ms = ms(timeout);
        self
    }
    /// How long to wait between digits.
    pub fn inter_digit_timeout(mut self, timeout: Duration) -> Self {
        self.0.inter_digit_timeout_ms = ms(timeout);
        self
    }
    /// Prompt + wait repetitions without input.
    pub fn attempts(mut self, count: u32) -> Self {
        self.0.attempts = count;
        self
    }
}

/// A gather prompt.
#[derive(Debug, Clone)]
pub struct Prompt(wit::Prompt);

impl From<Say> for Prompt {
    fn from(say: Say) -> Self {
        Prompt(wit::Prompt::Say(say.0))
    }
}
impl From<Play> for Prompt {
    fn from(play: Play) -> Self {
        Prompt(wit::Prompt::Play(play.0))
    }
}
impl From<Tone> for Prompt {
    fn from(tone: Tone) -> Self {
        Prompt(wit::Prompt::Tone(tone.0))
    }
}
impl From<Duration> for Prompt {
    fn from(pause: Duration) -> Self {
        Prompt(wit::Prompt::Pause(ms(pause)))
    }
}

/// Record the caller. Defaults: at most 1 h, ended by `#` or 5 s of silence.
#[derive(Debug, Clone)]
pub struct Record(wit::RecordRequest);

impl Record {
    /// A recording kept under `name` (replay it with [`Play::recording`]).
    pub fn new(name: impl Into<String>) -> Self {
        Record(wit::RecordRequest {
            name: name.into(),
            max_length_ms: 3_600_000,
            silence_timeout_ms: 5_000,
            finish_key: Some("#".to_owned()),
            transcribe: false,
        })
    }
    /// Longest recording.
    pub fn max_length(mut self, length: Duration) -> Self {
        self.0.max_length_ms = ms(length);
        self
    }
    /// Silence that ends it (zero: never).
    pub fn silence_timeout(mut self, timeout: Duration) -> Self {
        self.0.silence_timeout_ms = ms(timeout);
        self
    }
    /// The key that ends it.
    pub fn finish_key(mut self, key: Option<char>) -> Self {
        self.0.finish_key = key.map(String::from);
        self
    }
    /// Ask for a transcript.
    pub fn transcribe(mut self, yes: bool) -> Self {
        self.0.transcribe = yes;
        self
    }
}

/// Ring targets in parallel; the first to answer is bridged. Default timeout 30 s.
#[derive(Debug, Clone)]
pub struct Dial(wit::DialRequest);

impl Default for Dial {
    fn default() -> Self {
        Self::new()
    }
}

impl Dial {
    /// A dial with no targets yet.
    pub fn new() -> Self {
        Dial(wit::DialRequest { targets: Vec::new(), timeout_ms: 30_000, caller_id: None, record: false })
    }
    /// Ring a number (digits, country code first).
    pub fn number(mut self, number: impl Into<String>) -> Self {
        self.0.targets.push(DialTarget::Number(number.into()));
        self
    }
    /// Ring a SIP URI.
    pub fn sip_uri(mut self, uri: impl Into<String>) -> Self {
        self.0.targets.push(DialTarget::SipUri(uri.into()));
        self
    }
    /// Ring a registered SIP user `login@domain`.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.0.targets.push(DialTarget::User(user.into()));
        self
    }
    /// How long to ring.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.0.timeout_ms = ms(timeout);
        self
    }
    /// The caller id shown.
    pub fn caller_id(mut self, number: impl Into<String>) -> Self {
        self.0.caller_id = Some(number.into());
        self
    }
    /// Record the conversation.
    pub fn record(mut self, yes: bool) -> Self {
        self.0.record = yes;
        self
    }
}

/// What a gather collected.
pub type GatherResult = wit::GatherResult;
/// How an answered dial ended.
pub type DialResult = wit::DialResult;

/// The call this flow runs on.
#[derive(Debug, Clone)]
pub struct Call {
    info: CallInfo,
}

impl Call {
    /// The handle for `info` (used by [`export_flow!`]).
    pub fn new(info: CallInfo) -> Self {
        Self { info }
    }
    /// The call as it was when the flow started.
    pub fn info(&self) -> &CallInfo {
        &self.info
    }
    /// The call's state now.
    pub fn state(&self) -> CallState {
        host::state()
    }
    /// Answer the call.
    pub fn answer(&self) -> Result<()> {
        Ok(host::answer(0)?)
    }
    /// End the call normally.
    pub fn hangup(&self) -> Result<()> {
        self.hangup_with(HangupReason::Normal)
    }
    /// End the call; before answer, `reason` picks the SIP answer (busy 486, rejected 603).
    pub fn hangup_with(&self, reason: HangupReason) -> Result<()> {
        Ok(host::hangup(reason)?)
    }
    /// Speak.
    pub fn say(&self, say: Say) -> Result<()> {
        Ok(host::say(&say.0)?)
    }
    /// Play audio.
    pub fn play(&self, play: Play) -> Result<()> {
        Ok(host::play(&play.0)?)
    }
    /// Play tones.
    pub fn tone(&self, tone: Tone) -> Result<()> {
        Ok(host::tone(&tone.0)?)
    }
    /// Silence.
    pub fn pause(&self, length: Duration) -> Result<()> {
        Ok(host::pause(ms(length))?)
    }
    /// Collect digits; no input is `Ok` with empty digits.
    pub fn gather(&self, gather: Gather) -> Result<GatherResult> {
        Ok(host::gather(&gather.0)?)
    }
    /// Record the caller.
    pub fn record(&self, record: Record) -> Result<Recording> {
        Ok(host::record(&record.0)?)
    }
    /// Start recording the whole call in the background.
    pub fn record_start(&self, name: &str) -> Result<()> {
        Ok(host::record_start(name)?)
    }
    /// Stop the background recording.
    pub fn record_stop(&self) -> Result<Option<Recording>> {
        Ok(host::record_stop()?)
    }
    /// Ring and bridge; returns when the conversation ends. Busy, no answer and failure are
    /// errors.
    pub fn dial(&self, dial: Dial) -> Result<DialResult> {
        Ok(host::dial(&dial.0)?)
    }
    /// Bridge with another live call of the account.
    pub fn bridge(&self, call_id: &str) -> Result<()> {
        Ok(host::bridge(call_id)?)
    }
    /// Hold with music, at most `timeout`.
    pub fn hold(&self, timeout: Duration) -> Result<()> {
        Ok(host::hold(ms(timeout))?)
    }
    /// Take off hold.
    pub fn unhold(&self) -> Result<()> {
        Ok(host::unhold()?)
    }
    /// Attach a key/value to the call's later events.
    pub fn set_meta(&self, name: &str, value: &str) -> Result<()> {
        Ok(host::set_meta(name, value)?)
    }
    /// Send an SMS from the call's number; returns the message id.
    pub fn send_sms(&self, to: &str, text: &str) -> Result<String> {
        Ok(host::send_sms(&wit::SmsRequest { from: None, to: to.to_owned(), text: text.to_owned() })?)
    }
}

/// Set the tag carried by the events of the next requests (`None` clears it).
pub fn set_tag(tag: Option<&str>) {
    flow_events::set_tag(tag);
}

/// Report a step of the flow as an event (`verb` a short name, `detail` key/values).
pub fn report(verb: &str, failed: bool, detail: &[(&str, &str)]) {
    let detail: Vec<(String, String)> = detail.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let phase = if failed { flow_events::Phase::Failed } else { flow_events::Phase::Finished };
    flow_events::report(verb, phase, &detail);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_xml_dialect() {
        let gather = Gather::new().0;
        assert_eq!(
            (
                gather.max_digits,
                gather.finish_key.as_deref(),
                gather.first_digit_timeout_ms,
                gather.inter_digit_timeout_ms,
                gather.attempts
            ),
            (1, Some("#"), 10_000, 5_000, 1)
        );
        let say = Say::new("hi").0;
        assert_eq!((say.lang.as_str(), say.loop_count), ("en-US", 1));
        assert_eq!(Dial::new().0.timeout_ms, 30_000);
        assert_eq!(Tone::new([350, 440]).0.timeout_ms, 30_000);
    }

    #[test]
    fn builders_fill_the_requests() {
        let gather = Gather::new()
            .prompt(Say::new("Enter your PIN"))
            .prompt(Duration::from_millis(500))
            .max_digits(4)
            .finish_key(None)
            .inter_digit_timeout(Duration::from_secs(3))
            .0;
        assert_eq!(gather.prompts.len(), 2);
        assert_eq!((gather.max_digits, gather.finish_key, gather.inter_digit_timeout_ms), (4, None, 3000));
        let dial = Dial::new()
            .number("12125550100")
            .user("alice@acme.sip.example")
            .timeout(Duration::from_secs(20))
            .0;
        assert_eq!(dial.targets.len(), 2);
        assert_eq!(dial.timeout_ms, 20_000);
    }

    #[test]
    fn errors_map_and_display() {
        assert_eq!(Error::from(wit::CallError::Busy), Error::Busy);
        assert_eq!(Error::from(wit::CallError::Failed("x".into())).to_string(), "failed: x");
        assert_eq!(Error::Hangup.to_string(), "the caller hung up");
    }
}
