//! RTP packets (RFC 3550 §5.1): parse and build. CSRCs and header extensions are skipped on
//! parse (the platform does not mix or use them); padding is removed.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! |                           timestamp                           |
//! |           synchronization source (SSRC) identifier            |
//! ```

use thiserror::Error;

/// Size of the fixed header, bytes.
pub const HEADER_LEN: usize = 12;

/// Why bytes are not an RTP packet.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtpError {
    /// Fewer bytes than the header needs.
    #[error("RTP packet too short: {len} bytes, the header needs {needed}")]
    TooShort {
        /// Bytes received.
        len: usize,
        /// Bytes the header (with CSRCs, extension, padding) needs.
        needed: usize,
    },
    /// Not RTP version 2.
    #[error("RTP version {0}, only version 2 exists")]
    Version(u8),
    /// The padding count is larger than the payload.
    #[error("RTP padding of {padding} bytes exceeds the {available} bytes after the header")]
    Padding {
        /// The padding count from the last byte.
        padding: usize,
        /// Bytes after the header.
        available: usize,
    },
}

/// A parsed RTP packet, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// Marker bit (start of a talkspurt; start of a DTMF event).
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp (8 kHz units for telephone audio).
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// The payload.
    pub payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    /// Parse a datagram.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, RtpError> {
        if bytes.len() < HEADER_LEN {
            return Err(RtpError::TooShort { len: bytes.len(), needed: HEADER_LEN });
        }
        let version = bytes[0] >> 6;
        if version != 2 {
            return Err(RtpError::Version(version));
        }
        let padded = bytes[0] & 0x20 != 0;
        let extended = bytes[0] & 0x10 != 0;
        let csrc_count = usize::from(bytes[0] & 0x0f);
        let mut offset = HEADER_LEN + 4 * csrc_count;
        if extended {
            let needed = offset + 4;
            if bytes.len() < needed {
                return Err(RtpError::TooShort { len: bytes.len(), needed });
            }
            let words = usize::from(u16::from_be_bytes([bytes[offset + 2], bytes[offset + 3]]));
            offset = needed + 4 * words;
        }
        if bytes.len() < offset {
            return Err(RtpError::TooShort { len: bytes.len(), needed: offset });
        }
        let mut end = bytes.len();
        if padded {
            let padding = usize::from(bytes[end - 1]);
            let available = end - offset;
            if padding == 0 || padding > available {
                return Err(RtpError::Padding { padding, available });
            }
            end -= padding;
        }
        Ok(Self {
            marker: bytes[1] & 0x80 != 0,
            payload_type: bytes[1] & 0x7f,
            sequence: u16::from_be_bytes([bytes[2], bytes[3]]),
            timestamp: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            ssrc: u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
            payload: &bytes[offset..end],
        })
    }

    /// Serialise into `out` (cleared first): fixed header and payload, no CSRCs or padding.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.clear();
        out.push(0x80);
        out.push((u8::from(self.marker) << 7) | (self.payload_type & 0x7f));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(self.payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let payload = [1u8, 2, 3, 4];
        let packet = RtpPacket {
            marker: true,
            payload_type: 101,
            sequence: 65535,
            timestamp: 0xdead_beef,
            ssrc: 7,
            payload: &payload,
        };
        let mut bytes = Vec::new();
        packet.write(&mut bytes);
        assert_eq!(bytes.len(), HEADER_LEN + 4);
        assert_eq!(RtpPacket::parse(&bytes), Ok(packet));
    }

    #[test]
    fn skips_csrcs_extension_and_padding() {
        let mut bytes = vec![0x80 | 0x20 | 0x10 | 0x01, 0x00, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9];
        bytes.extend_from_slice(&[0xaa; 4]); // one CSRC
        bytes.extend_from_slice(&[0xbe, 0xde, 0x00, 0x01, 0x11, 0x22, 0x33, 0x44]); // extension, 1 word
        bytes.extend_from_slice(&[0x55, 0x66]); // payload
        bytes.extend_from_slice(&[0x00, 0x00, 0x03]); // 3 bytes of padding
        let packet = RtpPacket::parse(&bytes).expect("valid");
        assert_eq!(packet.payload, &[0x55, 0x66]);
        assert_eq!((packet.timestamp, packet.ssrc), (160, 9));
    }

    #[test]
    fn refuses_malformed_packets() {
        assert_eq!(RtpPacket::parse(&[0x80; 5]), Err(RtpError::TooShort { len: 5, needed: 12 }));
        assert_eq!(RtpPacket::parse(&[0x40; 12]), Err(RtpError::Version(1)));
        let mut csrcs = vec![0x8f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        csrcs.extend_from_slice(&[0; 8]);
        assert_eq!(RtpPacket::parse(&csrcs), Err(RtpError::TooShort { len: 20, needed: 72 }));
        let padding = [0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x09];
        assert_eq!(RtpPacket::parse(&padding), Err(RtpError::Padding { padding: 9, available: 1 }));
    }
}
