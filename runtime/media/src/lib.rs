//! Media for calls: the small, hot, testable pieces a call's audio path is made of.
//!
//! - [`rtp`]: RTP packets (RFC 3550) — parse and build.
//! - [`g711`]: PCMU (µ-law) and PCMA (A-law) codecs (ITU-T G.711).
//! - [`dtmf`]: RFC 4733 telephone-events — payloads, a de-duplicating receiver, a sender.
//! - [`goertzel`]: in-band DTMF detection for carriers that send tones instead of events.
//! - [`sdp`]: SDP offer/answer for PCMU, PCMA and telephone-event, hold detection.
//! - [`tone`]: the tone generator of the `<Tone>` verb (frequencies, cadence, level).
//! - [`audio`]: WAV and MP3 prompts decoded to telephone audio, anti-aliased resampling, WAV out.
//! - [`tts`]: text-to-speech for `<Say>` — the [`tts::Tts`] trait and a cached espeak-ng engine.
//! - [`fetch`]: prompt audio fetched by URL for `<Play>`, with an SSRF policy, limits and a cache.
//! - [`recorder`]: recordings written to WAV incrementally, playable even if never finished.
//! - [`srtp`]: SRTP keys exchanged in the SDP (SDES, RFC 4568) and a session's SRTP contexts.
//! - [`session`]: a call's RTP stream — symmetric RTP, DTMF in and out, play/feed/hold music;
//!   its packets are paced by the media clock (a few threads on a 20 ms grid).
//!
//! Audio inside the platform is 8 kHz, 16-bit signed mono PCM in 20 ms frames of
//! [`SAMPLES_PER_FRAME`] samples. Nothing here knows about SIP or Wasm.

pub mod audio;
mod cache;
pub mod disk_budget;
pub mod dtmf;
pub mod fetch;
pub mod g711;
pub mod goertzel;
mod media_clock;
pub mod recorder;
pub mod rtp;
pub mod sdp;
pub mod session;
pub mod srtp;
pub mod tone;
pub mod tts;
pub mod webrtc;

/// The sample rate of telephone audio, Hz.
pub const SAMPLE_RATE: u32 = 8_000;
/// The packetisation interval, ms.
pub const FRAME_MS: u32 = 20;
/// Samples in one 20 ms frame at 8 kHz.
pub const SAMPLES_PER_FRAME: usize = 160;
