//! In-band DTMF detection with the Goertzel algorithm, for carriers that send tones instead of
//! RFC 4733 events.
//!
//! Each block of [`BLOCK`] samples (25.6 ms at 8 kHz) is measured at the eight DTMF
//! frequencies. A block holds a key when one row and one column frequency clearly dominate
//! (each ≥ [`DOMINANCE`] × the other frequencies of its group), the pair carries most of the
//! block's energy, and the twist between them is within limits. A key is reported when it has
//! been present for two consecutive blocks (≥ 40 ms, the ITU Q.24 minimum), once until it stops.

/// Samples per analysis block: 205 at 8 kHz puts the DTMF frequencies near bin centres.
pub const BLOCK: usize = 205;
/// How much stronger the winning row/column frequency must be than the others of its group.
pub const DOMINANCE: f64 = 6.0;
/// Largest power ratio between the row and column tones (twist), about 8 dB.
pub const MAX_TWIST: f64 = 6.3;
/// Smallest block energy considered (mean square amplitude), below which it is silence.
pub const MIN_ENERGY: f64 = 1.0e4;

const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const COLUMNS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYPAD: [[char; 4]; 4] =
    [['1', '2', '3', 'A'], ['4', '5', '6', 'B'], ['7', '8', '9', 'C'], ['*', '0', '#', 'D']];

/// Power of `samples` at `frequency` Hz (8 kHz sampling).
pub fn power(samples: &[i16], frequency: f64) -> f64 {
    let coefficient = 2.0 * (2.0 * std::f64::consts::PI * frequency / f64::from(crate::SAMPLE_RATE)).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for sample in samples {
        let s0 = f64::from(*sample) + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coefficient * s1 * s2
}

fn strongest(powers: &[f64; 4]) -> Option<usize> {
    let (best, value) =
        powers.iter().enumerate().fold((0, 0.0), |acc, (i, p)| if *p > acc.1 { (i, *p) } else { acc });
    powers.iter().enumerate().all(|(i, p)| i == best || value >= DOMINANCE * p).then_some(best)
}

/// The key present in one block, if any.
pub fn detect_block(block: &[i16]) -> Option<char> {
    let energy: f64 = block.iter().map(|s| f64::from(*s) * f64::from(*s)).sum::<f64>();
    if block.is_empty() || energy / (block.len() as f64) < MIN_ENERGY {
        return None;
    }
    let rows = ROWS.map(|f| power(block, f));
    let columns = COLUMNS.map(|f| power(block, f));
    let (row, column) = (strongest(&rows)?, strongest(&columns)?);
    let (r, c) = (rows[row], columns[column]);
    if r / c > MAX_TWIST || c / r > MAX_TWIST {
        return None;
    }
    // A pure two-tone signal puts about N/2 × (energy) into the two bins; speech spreads it.
    let tone_share = (r + c) / (energy * block.len() as f64 / 2.0);
    (tone_share > 0.5).then_some(KEYPAD[row][column])
}

/// Streams audio in and reports each key once.
#[derive(Debug, Default)]
pub struct InbandDetector {
    pending: Vec<i16>,
    previous: Option<char>,
    reported: Option<char>,
}

impl InbandDetector {
    /// A detector that has heard nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed samples; returns the keys that started in them.
    pub fn feed(&mut self, samples: &[i16]) -> Vec<char> {
        self.pending.extend_from_slice(samples);
        let mut keys = Vec::new();
        let mut consumed = 0;
        while self.pending.len() - consumed >= BLOCK {
            let key = detect_block(&self.pending[consumed..consumed + BLOCK]);
            consumed += BLOCK;
            match key {
                Some(k) if self.previous == Some(k) && self.reported != Some(k) => {
                    keys.push(k);
                    self.reported = Some(k);
                }
                None => self.reported = None,
                _ => {}
            }
            self.previous = key;
        }
        self.pending.drain(..consumed);
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::{ToneGenerator, ToneSpec};

    fn key_audio(key: char, ms: u32) -> Vec<i16> {
        let (row, column) = KEYPAD
            .iter()
            .enumerate()
            .find_map(|(r, keys)| keys.iter().position(|k| *k == key).map(|c| (r, c)))
            .expect("a DTMF key");
        let spec = ToneSpec {
            frequencies: vec![ROWS[row] as u32, COLUMNS[column] as u32],
            on_ms: 0,
            off_ms: 0,
            loop_count: 1,
            volume_db: -6,
            timeout_ms: ms,
        };
        let mut generator = ToneGenerator::new(spec);
        let mut audio = vec![0i16; (ms * 8) as usize];
        generator.fill(&mut audio);
        audio
    }

    #[test]
    fn detects_every_key_once() {
        for key in KEYPAD.iter().flatten() {
            let mut detector = InbandDetector::new();
            let mut audio = key_audio(*key, 100);
            audio.extend(std::iter::repeat_n(0, 800));
            assert_eq!(detector.feed(&audio), [*key], "key {key}");
        }
    }

    #[test]
    fn a_sequence_in_small_frames() {
        let mut audio = Vec::new();
        for key in ['1', '2', '2', '#'] {
            audio.extend(key_audio(key, 80));
            audio.extend(std::iter::repeat_n(0, 480)); // 60 ms gap
        }
        let mut detector = InbandDetector::new();
        let keys: Vec<char> = audio.chunks(160).flat_map(|frame| detector.feed(frame)).collect();
        assert_eq!(keys, ['1', '2', '2', '#']);
    }

    #[test]
    fn silence_single_tones_and_short_blips_are_not_keys() {
        let mut detector = InbandDetector::new();
        assert!(detector.feed(&[0; 4000]).is_empty());
        let single = ToneSpec {
            frequencies: vec![697],
            on_ms: 0,
            off_ms: 0,
            loop_count: 1,
            volume_db: 0,
            timeout_ms: 200,
        };
        let mut audio = vec![0i16; 1600];
        ToneGenerator::new(single).fill(&mut audio);
        assert!(detector.feed(&audio).is_empty(), "one frequency is not a key");
        let mut blip = key_audio('5', 20);
        blip.extend(std::iter::repeat_n(0, 800));
        assert!(InbandDetector::new().feed(&blip).is_empty(), "20 ms is too short for a key");
    }
}
