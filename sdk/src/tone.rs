//! Generated tones (dial tone, busy tone, beeps): the `<Tone>` verb.

use std::time::Duration;

use crate::bindings::opentact::flow::types::ToneRequest;
use crate::{Leg, ms};

/// Play tones: 1–4 frequencies played together, continuous or with an on/off cadence.
///
/// Defaults match the XML dialect's `<Tone>`: continuous (no cadence), one cycle, 0 dB (the
/// loudest), stopped after at most 30 s, to the caller (leg `aleg`).
///
/// ```no_run
/// use std::time::Duration;
/// use opentact_sdk::{Call, Result, Tone};
///
/// fn ringback(call: &Call) -> Result<()> {
///     call.tone(Tone::beep())?;
///     // A US ringback: 440+480 Hz, 2 s on, 4 s off, three times.
///     call.tone(
///         Tone::new([440, 480])
///             .cadence(Duration::from_secs(2), Duration::from_secs(4))
///             .loops(3)
///             .volume_db(-10),
///     )
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Tone(pub(crate) ToneRequest);

impl Tone {
    /// Frequencies in Hz played together (1–4 of them, each 20–3999 Hz), e.g. `[350, 440]` for a
    /// US dial tone.
    pub fn new(frequencies: impl Into<Vec<u32>>) -> Self {
        Tone(ToneRequest {
            frequencies: frequencies.into(),
            on_ms: 0,
            off_ms: 0,
            loop_count: 1,
            volume_db: 0,
            timeout_ms: 30_000,
            leg: Leg::Aleg,
        })
    }

    /// A half-second 1 kHz beep, the "leave a message after the tone" signal.
    pub fn beep() -> Self {
        Tone::new([1000]).cadence(Duration::from_millis(500), Duration::ZERO)
    }

    /// The cadence: tone `on`, then `off` silence, per cycle (`on` zero = continuous).
    pub fn cadence(mut self, on: Duration, off: Duration) -> Self {
        self.0.on_ms = ms(on);
        self.0.off_ms = ms(off);
        self
    }

    /// How many on/off cycles (1 or more; 1 by default).
    pub fn loops(mut self, count: u32) -> Self {
        self.0.loop_count = count;
        self
    }

    /// The level in dB relative to full scale: 0 (the default) is loudest, -60 quietest.
    pub fn volume_db(mut self, db: i32) -> Self {
        self.0.volume_db = db;
        self
    }

    /// An upper bound on the whole tone (30 s by default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.0.timeout_ms = ms(timeout);
        self
    }

    /// Which leg of a bridged call hears it (the caller's, `aleg`, by default).
    pub fn leg(mut self, leg: Leg) -> Self {
        self.0.leg = leg;
        self
    }

    /// The WIT request this builds.
    pub fn request(&self) -> &ToneRequest {
        &self.0
    }
}

impl From<Tone> for ToneRequest {
    fn from(tone: Tone) -> Self {
        tone.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_xml_dialect() {
        let tone = ToneRequest::from(Tone::new([350, 440]));
        assert_eq!(tone.frequencies, [350, 440]);
        assert_eq!((tone.on_ms, tone.off_ms, tone.loop_count, tone.volume_db), (0, 0, 1, 0));
        assert_eq!(tone.timeout_ms, 30_000);
        assert!(matches!(tone.leg, Leg::Aleg));
    }

    #[test]
    fn the_builder_fills_the_request() {
        let tone = ToneRequest::from(
            Tone::new(vec![440, 480])
                .cadence(Duration::from_secs(2), Duration::from_secs(4))
                .loops(3)
                .volume_db(-12)
                .timeout(Duration::from_secs(20))
                .leg(Leg::Bleg),
        );
        assert_eq!((tone.on_ms, tone.off_ms, tone.loop_count, tone.volume_db), (2000, 4000, 3, -12));
        assert_eq!(tone.timeout_ms, 20_000);
        assert!(matches!(tone.leg, Leg::Bleg));
        let beep = Tone::beep().0;
        assert_eq!((beep.frequencies.as_slice(), beep.on_ms, beep.loop_count), (&[1000][..], 500, 1));
    }
}
