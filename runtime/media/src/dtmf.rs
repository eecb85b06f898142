//! RFC 4733 telephone-events: DTMF sent as RTP events instead of tones.
//!
//! An event is sent as several packets with the same RTP timestamp (its start): updates while
//! the key is held, then the end packet repeated three times (RFC 4733 §2.5.1.4) in case one is
//! lost. The receiver therefore reports a key once per (SSRC, timestamp), at the first packet
//! that shows it, and ignores the repeats.

use thiserror::Error;

/// Events 0–15: 0–9, *, #, A–D (RFC 4733 §3.2).
const KEYS: [char; 16] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D'];

/// How many times the end packet of an event is sent.
pub const END_REPEATS: usize = 3;

/// The event code of a DTMF key.
pub fn event_code(key: char) -> Option<u8> {
    KEYS.iter().position(|k| *k == key.to_ascii_uppercase()).and_then(|p| u8::try_from(p).ok())
}

/// The DTMF key of an event code.
pub fn key(code: u8) -> Option<char> {
    KEYS.get(usize::from(code)).copied()
}

/// Why a payload is not a telephone-event.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EventError {
    /// Not 4 bytes (several events per packet are not used for DTMF).
    #[error("a telephone-event payload has 4 bytes, got {0}")]
    Length(usize),
}

/// One telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0–15 for DTMF).
    pub event: u8,
    /// Set on the end packets.
    pub end: bool,
    /// Volume, 0 to -63 dBm0 (as a positive number).
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parse a 4-byte payload.
    pub fn parse(payload: &[u8]) -> Result<Self, EventError> {
        let [event, flags, high, low] = payload else { return Err(EventError::Length(payload.len())) };
        Ok(Self {
            event: *event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([*high, *low]),
        })
    }

    /// The 4-byte payload.
    pub fn to_bytes(self) -> [u8; 4] {
        let [high, low] = self.duration.to_be_bytes();
        [self.event, (u8::from(self.end) << 7) | (self.volume & 0x3f), high, low]
    }
}

/// Turns a stream of telephone-event packets into keys, each reported once.
#[derive(Debug, Default)]
pub struct EventReceiver {
    last: Option<(u32, u32)>,
}

impl EventReceiver {
    /// A receiver that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed one packet (its SSRC, RTP timestamp and payload); returns the key when this packet
    /// is the first of a new event.
    pub fn receive(&mut self, ssrc: u32, timestamp: u32, payload: &[u8]) -> Option<char> {
        let event = TelephoneEvent::parse(payload).ok()?;
        let key = key(event.event)?;
        if self.last == Some((ssrc, timestamp)) {
            return None;
        }
        self.last = Some((ssrc, timestamp));
        Some(key)
    }
}

/// The payloads that send `key` for `duration` timestamp units, one per `step` units: updates,
/// then the end packet [`END_REPEATS`] times. All share the event's start timestamp.
pub fn send_key(key: char, duration: u16, step: u16, volume: u8) -> Option<Vec<TelephoneEvent>> {
    let event = event_code(key)?;
    let step = step.max(1);
    let mut packets = Vec::new();
    let mut elapsed = step;
    while elapsed < duration {
        packets.push(TelephoneEvent { event, end: false, volume, duration: elapsed });
        elapsed = elapsed.saturating_add(step);
    }
    packets.extend(std::iter::repeat_n(TelephoneEvent { event, end: true, volume, duration }, END_REPEATS));
    Some(packets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_keys_map_both_ways() {
        for (code, k) in KEYS.iter().enumerate() {
            assert_eq!(event_code(*k), Some(code as u8));
            assert_eq!(key(code as u8), Some(*k));
        }
        assert_eq!(event_code('a'), Some(12));
        assert_eq!(event_code('x'), None);
        assert_eq!(key(16), None);
    }

    #[test]
    fn payload_round_trips_and_bad_lengths_are_refused() {
        let event = TelephoneEvent { event: 11, end: true, volume: 10, duration: 1600 };
        assert_eq!(TelephoneEvent::parse(&event.to_bytes()), Ok(event));
        assert_eq!(TelephoneEvent::parse(&[1, 2, 3]), Err(EventError::Length(3)));
    }

    #[test]
    fn each_key_is_reported_once_despite_updates_and_repeated_ends() {
        let mut receiver = EventReceiver::new();
        let mut keys = Vec::new();
        for (timestamp, k) in [(1000u32, '1'), (2600, '1'), (4200, '#')] {
            for event in send_key(k, 800, 160, 10).expect("a DTMF key") {
                keys.extend(receiver.receive(42, timestamp, &event.to_bytes()));
            }
        }
        assert_eq!(keys, ['1', '1', '#'], "the same key pressed twice is two events");
    }

    #[test]
    fn sender_repeats_the_end_packet() {
        let packets = send_key('5', 800, 160, 10).expect("a DTMF key");
        let ends = packets.iter().filter(|p| p.end).count();
        assert_eq!(ends, END_REPEATS);
        assert_eq!(packets.len(), 4 + END_REPEATS, "updates at 160, 320, 480, 640 then the ends");
        assert!(packets.iter().all(|p| p.event == 5));
    }
}
