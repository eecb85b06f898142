//! The call model the verb executor works with: what a flow may ask of a call and what it gets
//! back. These mirror the WIT types of `opentact:flow` without depending on Wasm, so the SIP
//! engine, the REST command path and the simulator can all speak them.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// Which way the call travels, seen from the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// `in` in events: the call came in to the platform.
    #[serde(rename = "in")]
    Inbound,
    /// `out` in events: the platform placed the call.
    #[serde(rename = "out")]
    Outbound,
}

/// A call's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallState {
    /// Not answered yet.
    Ringing,
    /// Answered, media flowing.
    Answered,
    /// Joined to another leg.
    Bridged,
    /// On hold.
    Held,
    /// Ended.
    Ended,
}

impl CallState {
    /// The lowercase name used in events and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Ringing => "ringing",
            CallState::Answered => "answered",
            CallState::Bridged => "bridged",
            CallState::Held => "held",
            CallState::Ended => "ended",
        }
    }
}

impl fmt::Display for CallState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a flow knows about its call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallInfo {
    /// The call's UUID.
    pub id: String,
    /// The owning account's UUID.
    pub account: String,
    /// The SIP Control App's UUID.
    pub app: String,
    /// The caller: digits (country code first) or a SIP URI.
    pub from: String,
    /// The callee: digits or a SIP URI.
    pub to: String,
    /// The account's number the call is on, when there is one.
    pub tn: Option<u64>,
    /// Which way the call travels.
    pub direction: Direction,
    /// The account's IANA time zone, when it has one.
    pub time_zone: Option<String>,
}

/// Why a flow ends a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HangupReason {
    /// Normal clearing.
    Normal,
    /// 486 Busy Here before answer.
    Busy,
    /// 603 Decline before answer.
    Rejected,
    /// 503 Service Unavailable before answer: the platform cannot take the call now (not
    /// offered to flows; the platform uses it when it is at capacity).
    Unavailable,
}

/// Which leg hears a media verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Leg {
    /// The call's own leg.
    #[default]
    Aleg,
    /// The other leg of a bridge.
    Bleg,
    /// Both legs.
    Both,
}

/// Voice gender for text to speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    /// The default voice.
    #[default]
    Female,
    /// A male voice.
    Male,
}

/// Text to speech.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SayRequest {
    /// The text.
    pub text: String,
    /// Language tag, e.g. `en-US`.
    pub lang: String,
    /// Voice gender.
    pub gender: Gender,
    /// A provider voice code.
    pub voice: Option<String>,
    /// Repetitions (0 = until interrupted).
    pub loop_count: u32,
    /// Which leg hears it.
    pub leg: Leg,
}

/// Where audio comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioSource {
    /// A WAV or MP3 file at an http(s) URL.
    Url(String),
    /// A recording of this call, by name.
    Recording(String),
}

/// Play an audio file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlayRequest {
    /// What to play.
    pub source: AudioSource,
    /// Repetitions (0 = until interrupted).
    pub loop_count: u32,
    /// Which leg hears it.
    pub leg: Leg,
}

/// Generate tones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToneRequest {
    /// Frequencies in Hz played together.
    pub frequencies: Vec<u32>,
    /// Tone on, ms (0 = continuous).
    pub on_ms: u32,
    /// Silence between tones, ms.
    pub off_ms: u32,
    /// On/off cycles.
    pub loop_count: u32,
    /// Level in dB (0 loudest, negative quieter).
    pub volume_db: i32,
    /// Upper bound on the whole tone, ms.
    pub timeout_ms: u32,
    /// Which leg hears it.
    pub leg: Leg,
}

/// Something played to the caller: the media verbs, and the prompts of a gather.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Media {
    /// Text to speech.
    Say(SayRequest),
    /// An audio file.
    Play(PlayRequest),
    /// Tones.
    Tone(ToneRequest),
    /// Silence, ms.
    Silence(u32),
}

impl Media {
    /// The verb name this media has in events.
    pub fn verb(&self) -> &'static str {
        match self {
            Media::Say(_) => "say",
            Media::Play(_) => "play",
            Media::Tone(_) => "tone",
            Media::Silence(_) => "pause",
        }
    }
}

/// What happened to played media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayOutcome {
    /// A DTMF digit interrupted it (barge-in); the digit stays buffered for the next gather.
    pub interrupted: bool,
}

/// Collect DTMF digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatherRequest {
    /// Prompts, interrupted by the first digit.
    pub prompts: Vec<Media>,
    /// Digits to collect.
    pub max_digits: u32,
    /// A key that ends the gather early.
    pub finish_key: Option<char>,
    /// Wait for the first digit after the prompts, ms.
    pub first_digit_timeout_ms: u32,
    /// Wait between digits, ms.
    pub inter_digit_timeout_ms: u32,
    /// Prompt + wait repetitions when nothing is pressed.
    pub attempts: u32,
}

/// How a gather ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GatherEnd {
    /// Enough digits.
    MaxDigits,
    /// The finish key.
    FinishKey,
    /// A timeout (inter-digit with digits; no input without).
    Timeout,
}

/// What a gather collected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatherResult {
    /// The digits, without the finish key.
    pub digits: String,
    /// How it ended.
    pub end: GatherEnd,
    /// Attempts used (1-based).
    pub attempts: u32,
}

/// Record the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordRequest {
    /// The name the recording is kept under in this call.
    pub name: String,
    /// Longest recording, ms.
    pub max_length_ms: u32,
    /// Stop after this much silence, ms (0 = never).
    pub silence_timeout_ms: u32,
    /// A key that stops it.
    pub finish_key: Option<char>,
    /// Ask for a transcript.
    pub transcribe: bool,
}

/// Where a recording's WAV file is kept: `<dir>/<account>/<call>/<recording>.wav`. The voice
/// layer writes it there; the REST API and the transcriber read it back.
pub fn recording_file(
    dir: &std::path::Path,
    account: &str,
    call: &str,
    recording: &str,
) -> std::path::PathBuf {
    dir.join(account).join(call).join(format!("{recording}.wav"))
}

/// A finished recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recording {
    /// UUID.
    pub id: String,
    /// Its name in the call.
    pub name: String,
    /// Length, ms.
    pub duration_ms: u32,
}

/// Something a dial can ring.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DialTarget {
    /// Digits, country code first.
    Number(String),
    /// A SIP URI.
    SipUri(String),
    /// A registered SIP user `login@domain`.
    User(String),
}

impl DialTarget {
    /// The target as written by the flow.
    pub fn as_str(&self) -> &str {
        match self {
            DialTarget::Number(s) | DialTarget::SipUri(s) | DialTarget::User(s) => s,
        }
    }
}

/// Ring targets in parallel and bridge the first that answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DialRequest {
    /// Rung in parallel.
    pub targets: Vec<DialTarget>,
    /// Ring timeout, ms.
    pub timeout_ms: u32,
    /// Caller id presented to the targets.
    pub caller_id: Option<String>,
    /// Record the conversation.
    pub record: bool,
}

/// How an answered dial ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DialResult {
    /// The target that answered.
    pub answered: DialTarget,
    /// The conversation's length, ms.
    pub duration_ms: u32,
    /// True when the dialled party hung up (the flow goes on).
    pub callee_hung_up: bool,
    /// The conversation's recording.
    pub recording: Option<Recording>,
}

/// An SMS to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmsRequest {
    /// Sending number; the call's number when absent.
    pub from: Option<String>,
    /// Recipient.
    pub to: String,
    /// Text.
    pub text: String,
}

/// Milliseconds as a [`Duration`].
pub fn ms(value: u32) -> Duration {
    Duration::from_millis(u64::from(value))
}
