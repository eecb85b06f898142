//! The tone generator of the `<Tone>` verb: one to four frequencies summed, an on/off cadence,
//! a level in dB below full scale, bounded by a timeout. Produces 8 kHz PCM.

use crate::SAMPLE_RATE;

/// Peak amplitude at 0 dB: below full scale so that four summed tones cannot clip.
const FULL_SCALE: f64 = 32_000.0;

/// A tone to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct ToneSpec {
    /// Frequencies played together, Hz.
    pub frequencies: Vec<u32>,
    /// Tone on, ms (0 = continuous).
    pub on_ms: u32,
    /// Silence between tones, ms.
    pub off_ms: u32,
    /// On/off cycles.
    pub loop_count: u32,
    /// Level in dB, 0 loudest.
    pub volume_db: i32,
    /// Upper bound on the whole tone, ms.
    pub timeout_ms: u32,
}

impl ToneSpec {
    /// How long the whole tone lasts, ms.
    pub fn length_ms(&self) -> u32 {
        if self.on_ms == 0 {
            return self.timeout_ms;
        }
        self.on_ms.saturating_add(self.off_ms).saturating_mul(self.loop_count.max(1)).min(self.timeout_ms)
    }
}

/// Generates a tone's samples, frame by frame.
#[derive(Debug)]
pub struct ToneGenerator {
    spec: ToneSpec,
    amplitude: f64,
    position: u64,
    total: u64,
}

fn samples(ms: u32) -> u64 {
    u64::from(ms) * u64::from(SAMPLE_RATE) / 1000
}

impl ToneGenerator {
    /// A generator at the start of the tone.
    pub fn new(spec: ToneSpec) -> Self {
        let count = spec.frequencies.len().max(1) as f64;
        let amplitude = FULL_SCALE * 10f64.powf(f64::from(spec.volume_db.min(0)) / 20.0) / count;
        let total = samples(spec.length_ms());
        Self { spec, amplitude, position: 0, total }
    }

    /// Fill `frame` with the next samples; returns how many were written (0 once the tone is
    /// over).
    pub fn fill(&mut self, frame: &mut [i16]) -> usize {
        let cycle = samples(self.spec.on_ms) + samples(self.spec.off_ms);
        let on = samples(self.spec.on_ms);
        let mut written = 0;
        for slot in frame.iter_mut() {
            if self.position >= self.total {
                break;
            }
            let sounding = self.spec.on_ms == 0 || cycle == 0 || self.position % cycle < on;
            *slot = if sounding {
                let t = self.position as f64 / f64::from(SAMPLE_RATE);
                let value: f64 = self
                    .spec
                    .frequencies
                    .iter()
                    .map(|hz| (2.0 * std::f64::consts::PI * f64::from(*hz) * t).sin())
                    .sum();
                (value * self.amplitude).round() as i16
            } else {
                0
            };
            self.position += 1;
            written += 1;
        }
        written
    }
}

/// The two frequencies of a DTMF key (ITU-T Q.23): row, column.
pub fn dtmf_frequencies(key: char) -> Option<(u32, u32)> {
    const ROWS: [u32; 4] = [697, 770, 852, 941];
    const COLUMNS: [u32; 4] = [1209, 1336, 1477, 1633];
    const KEYS: [&str; 4] = ["123A", "456B", "789C", "*0#D"];
    let key = key.to_ascii_uppercase();
    KEYS.iter().enumerate().find_map(|(row, keys)| keys.find(key).map(|column| (ROWS[row], COLUMNS[column])))
}

/// `ms` of a DTMF key's tone pair at -10 dB, for peers that take DTMF in the audio.
pub fn dtmf_tone(key: char, ms: u32) -> Option<Vec<i16>> {
    let (row, column) = dtmf_frequencies(key)?;
    let mut generator = ToneGenerator::new(ToneSpec {
        frequencies: vec![row, column],
        on_ms: 0,
        off_ms: 0,
        loop_count: 1,
        volume_db: -10,
        timeout_ms: ms,
    });
    let mut samples = vec![0i16; samples(ms) as usize];
    let written = generator.fill(&mut samples);
    samples.truncate(written);
    Some(samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goertzel::power;

    fn render(spec: ToneSpec) -> Vec<i16> {
        let mut generator = ToneGenerator::new(spec);
        let mut out = Vec::new();
        let mut frame = [0i16; 160];
        loop {
            let n = generator.fill(&mut frame);
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&frame[..n]);
        }
    }

    #[test]
    fn cadence_and_length() {
        let busy = ToneSpec {
            frequencies: vec![480, 620],
            on_ms: 500,
            off_ms: 500,
            loop_count: 3,
            volume_db: 0,
            timeout_ms: 30_000,
        };
        let audio = render(busy);
        assert_eq!(audio.len(), 3 * 8000, "three one-second cycles");
        assert!(audio[..4000].iter().any(|s| s.abs() > 10_000), "on half sounds");
        assert!(audio[4000..8000].iter().all(|s| *s == 0), "off half is silent");
    }

    #[test]
    fn continuous_tone_stops_at_timeout() {
        let dial = ToneSpec {
            frequencies: vec![350, 440],
            on_ms: 0,
            off_ms: 0,
            loop_count: 1,
            volume_db: -10,
            timeout_ms: 250,
        };
        assert_eq!(render(dial).len(), 2000);
    }

    #[test]
    fn level_follows_volume_and_frequencies_are_right() {
        let loud = render(ToneSpec {
            frequencies: vec![1000],
            on_ms: 0,
            off_ms: 0,
            loop_count: 1,
            volume_db: 0,
            timeout_ms: 100,
        });
        let quiet = render(ToneSpec {
            frequencies: vec![1000],
            on_ms: 0,
            off_ms: 0,
            loop_count: 1,
            volume_db: -20,
            timeout_ms: 100,
        });
        let peak = |a: &[i16]| a.iter().map(|s| i32::from(*s).abs()).max().unwrap_or(0);
        let ratio = f64::from(peak(&loud)) / f64::from(peak(&quiet));
        assert!((ratio - 10.0).abs() < 0.2, "-20 dB is a tenth of the amplitude, got {ratio}");
        assert!(power(&loud[..205], 1000.0) > 100.0 * power(&loud[..205], 1400.0));
    }

    #[test]
    fn dtmf_tones_are_heard_as_their_keys() {
        assert_eq!(super::dtmf_frequencies('5'), Some((770, 1336)));
        assert_eq!(super::dtmf_frequencies('#'), Some((941, 1477)));
        assert_eq!(super::dtmf_frequencies('x'), None);
        for key in ['1', '9', '*', '0', '#', 'D'] {
            let tone = super::dtmf_tone(key, 100).expect("a key");
            assert_eq!(tone.len(), 800);
            let mut detector = crate::goertzel::InbandDetector::new();
            assert_eq!(detector.feed(&tone), vec![key], "{key}");
        }
    }
}
