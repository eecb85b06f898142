//! Audio files and earlier recordings: the `<Play>` verb.

use crate::Leg;
use crate::bindings::opentact::flow::types::{AudioSource, PlayRequest};

/// Play a WAV or MP3 file, or a recording made earlier in the call.
///
/// Defaults match the XML dialect's `<Play>`: played once, to the caller (leg `aleg`).
///
/// ```no_run
/// use opentact_sdk::{Call, Play, Result};
///
/// fn music(call: &Call) -> Result<()> {
///     call.play(Play::url("https://example.com/welcome.wav"))?;
///     call.play(Play::recording("voicemail"))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Play(pub(crate) PlayRequest);

impl Play {
    fn from_source(source: AudioSource) -> Self {
        Play(PlayRequest { source, loop_count: 1, leg: Leg::Aleg })
    }

    /// A WAV or MP3 file at an http(s) URL.
    pub fn url(url: impl Into<String>) -> Self {
        Play::from_source(AudioSource::Url(url.into()))
    }

    /// A recording made earlier in this call, by the name it was recorded under (see
    /// [`Record::new`](crate::Record::new)).
    pub fn recording(name: impl Into<String>) -> Self {
        Play::from_source(AudioSource::Recording(name.into()))
    }

    /// How many times to play it (1 by default; 0 means until the next verb interrupts).
    pub fn loops(mut self, count: u32) -> Self {
        self.0.loop_count = count;
        self
    }

    /// Which leg of a bridged call hears it (the caller's, `aleg`, by default).
    pub fn leg(mut self, leg: Leg) -> Self {
        self.0.leg = leg;
        self
    }

    /// The WIT request this builds.
    pub fn request(&self) -> &PlayRequest {
        &self.0
    }
}

impl From<Play> for PlayRequest {
    fn from(play: Play) -> Self {
        play.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_defaults() {
        let url = PlayRequest::from(Play::url("https://example.com/a.wav"));
        assert!(matches!(&url.source, AudioSource::Url(u) if u == "https://example.com/a.wav"));
        assert_eq!(url.loop_count, 1);
        assert!(matches!(url.leg, Leg::Aleg));
        let recording = PlayRequest::from(Play::recording("voicemail").loops(2).leg(Leg::Bleg));
        assert!(matches!(&recording.source, AudioSource::Recording(n) if n == "voicemail"));
        assert_eq!(recording.loop_count, 2);
        assert!(matches!(recording.leg, Leg::Bleg));
    }
}
