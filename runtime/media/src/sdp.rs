//! SDP offer/answer (RFC 3264) for telephone audio: PCMU, PCMA and telephone-event, over RTP
//! (`RTP/AVP`) or SRTP with SDES keys (`RTP/SAVP` with `a=crypto`, RFC 4568).
//!
//! Only what a voice B2BUA needs: the audio stream's address, port, transport, payload types,
//! the telephone-event payload type, its crypto lines, and the direction (hold is
//! `sendonly`/`inactive`, or the RFC 2543 style `c=0.0.0.0`). Other media lines are answered
//! with port 0 (rejected).

use std::fmt::Write as _;
use std::net::IpAddr;

use thiserror::Error;

/// Static payload type of PCMU.
pub const PT_PCMU: u8 = 0;
/// Static payload type of PCMA.
pub const PT_PCMA: u8 = 8;
/// The dynamic payload type the platform offers for telephone-event.
pub const PT_TELEPHONE_EVENT: u8 = 101;
/// The dynamic payload types (RFC 3551 §3): telephone-event is always one of them.
pub const DYNAMIC_PAYLOAD_TYPES: std::ops::RangeInclusive<u8> = 96..=127;
/// Longest SDP body accepted, bytes.
pub const MAX_SDP_BYTES: usize = 16 * 1024;
/// `a=crypto` lines of one stream looked at; more are ignored (an offer lists a few suites).
const MAX_CRYPTO_LINES: usize = 16;

/// Why an SDP body cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    /// Larger than [`MAX_SDP_BYTES`].
    #[error("SDP body of {0} bytes is larger than the {MAX_SDP_BYTES} accepted")]
    TooLarge(usize),
    /// A line that is not `<type>=<value>`.
    #[error("SDP line {line}: expected <type>=<value>, got {text:?}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// A field that could not be parsed.
    #[error("SDP line {line}: {what}")]
    Invalid {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// No `m=audio` line.
    #[error("the SDP offers no audio stream")]
    NoAudio,
    /// No connection address for the audio stream.
    #[error("the SDP has no connection address (c=) for the audio stream")]
    NoConnection,
    /// None of PCMU/PCMA offered.
    #[error("no common codec: the offer has payload types {0:?}, the platform speaks PCMU (0) and PCMA (8)")]
    NoCommonCodec(Vec<u8>),
}

/// Media direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Both ways.
    SendRecv,
    /// The sender only sends (it puts the other side on hold).
    SendOnly,
    /// The sender only receives.
    RecvOnly,
    /// No media either way.
    Inactive,
}

impl Direction {
    fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction that answers this one (RFC 3264 §6.1).
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }
}

/// The audio stream of a session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioStream {
    /// Where to send RTP.
    pub address: IpAddr,
    /// The RTP port (0 = stream rejected).
    pub port: u16,
    /// Payload types in preference order.
    pub payload_types: Vec<u8>,
    /// The telephone-event payload type, when offered.
    pub telephone_event: Option<u8>,
    /// Direction.
    pub direction: Direction,
    /// Packetisation time, ms, when given.
    pub ptime: Option<u32>,
    /// The m= line's transport protocol (`RTP/AVP`, `RTP/SAVP`…).
    pub protocol: String,
    /// The values of the stream's `a=crypto` lines (SDES keys), in order.
    pub crypto: Vec<String>,
}

/// The transport of plain RTP.
pub const PROTOCOL_RTP: &str = "RTP/AVP";
/// The transport of SRTP keyed by SDES.
pub const PROTOCOL_SRTP: &str = "RTP/SAVP";
/// The transport of WebRTC media: SRTP keyed by DTLS, with RTCP feedback.
pub const PROTOCOL_WEBRTC: &str = "UDP/TLS/RTP/SAVPF";

impl AudioStream {
    /// Whether the stream asks for SRTP (`RTP/SAVP`, or the feedback profile `RTP/SAVPF`).
    pub fn is_srtp(&self) -> bool {
        self.protocol.eq_ignore_ascii_case(PROTOCOL_SRTP) || self.protocol.eq_ignore_ascii_case("RTP/SAVPF")
    }

    /// Whether the stream is a browser's WebRTC audio: DTLS-SRTP over ICE
    /// (`UDP/TLS/RTP/SAVPF`, RFC 5764 and JSEP), answered by [`crate::webrtc`].
    pub fn is_webrtc(&self) -> bool {
        self.protocol.eq_ignore_ascii_case(PROTOCOL_WEBRTC)
    }

    /// Whether this stream puts the other side on hold.
    pub fn is_hold(&self) -> bool {
        matches!(self.direction, Direction::SendOnly | Direction::Inactive) || self.address.is_unspecified()
    }
}

/// A parsed session description: the audio stream and how many media lines there were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// The first audio stream.
    pub audio: AudioStream,
    /// Kinds of every `m=` line in order (`audio`, `video`…), for answering them all.
    pub media_kinds: Vec<String>,
    /// The index of the audio stream among the media lines.
    pub audio_index: usize,
}

fn invalid(line: usize, what: impl Into<String>) -> SdpError {
    SdpError::Invalid { line, what: what.into() }
}

/// Parse an SDP body.
pub fn parse(body: &str) -> Result<SessionDescription, SdpError> {
    if body.len() > MAX_SDP_BYTES {
        return Err(SdpError::TooLarge(body.len()));
    }
    let mut session_address: Option<IpAddr> = None;
    let mut session_direction = Direction::SendRecv;
    let mut media_kinds = Vec::new();
    let mut audio: Option<(usize, AudioStream, Option<IpAddr>, Option<Direction>)> = None;
    let mut in_audio = false;
    for (index, raw) in body.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let (kind, value) = line
            .split_once('=')
            .filter(|(k, _)| k.len() == 1)
            .ok_or_else(|| SdpError::Malformed { line: number, text: line.to_owned() })?;
        match kind {
            "m" => {
                let mut fields = value.split_whitespace();
                let media = fields.next().unwrap_or_default().to_owned();
                in_audio = media == "audio" && audio.is_none();
                if in_audio {
                    let port = fields
                        .next()
                        .and_then(|p| p.split('/').next())
                        .and_then(|p| p.parse().ok())
                        .ok_or_else(|| invalid(number, "m=audio needs a port"))?;
                    let protocol =
                        fields.next().ok_or_else(|| invalid(number, "m=audio needs a protocol"))?.to_owned();
                    let payload_types = fields
                        .map(|f| f.parse::<u8>().ok().filter(|pt| *pt < 128))
                        .collect::<Option<Vec<u8>>>()
                        .ok_or_else(|| invalid(number, "payload types must be numbers 0–127"))?;
                    let stream = AudioStream {
                        address: IpAddr::from([0, 0, 0, 0]),
                        port,
                        payload_types,
                        telephone_event: None,
                        direction: Direction::SendRecv,
                        ptime: None,
                        protocol,
                        crypto: Vec::new(),
                    };
                    audio = Some((media_kinds.len(), stream, None, None));
                }
                media_kinds.push(media);
            }
            "c" => {
                let address = value
                    .split_whitespace()
                    .nth(2)
                    .and_then(|a| a.split('/').next())
                    .and_then(|a| a.parse::<IpAddr>().ok())
                    .ok_or_else(|| {
                        invalid(number, format!("c= needs `IN IP4|IP6 <address>`, got {value:?}"))
                    })?;
                match (&mut audio, in_audio, media_kinds.is_empty()) {
                    (_, _, true) => session_address = Some(address),
                    (Some((_, _, media_address, _)), true, _) => *media_address = Some(address),
                    _ => {}
                }
            }
            "a" => {
                let (name, argument) = value.split_once(':').unwrap_or((value, ""));
                let direction = match name {
                    "sendrecv" => Some(Direction::SendRecv),
                    "sendonly" => Some(Direction::SendOnly),
                    "recvonly" => Some(Direction::RecvOnly),
                    "inactive" => Some(Direction::Inactive),
                    _ => None,
                };
                if media_kinds.is_empty() {
                    if let Some(direction) = direction {
                        session_direction = direction;
                    }
                    continue;
                }
                let Some((_, stream, _, media_direction)) = audio.as_mut().filter(|_| in_audio) else {
                    continue;
                };
                if direction.is_some() {
                    *media_direction = direction;
                } else if name == "rtpmap" {
                    let mut parts = argument.split_whitespace();
                    let pt = parts.next().and_then(|p| p.parse::<u8>().ok());
                    let encoding = parts.next().unwrap_or_default();
                    // Only a dynamic payload type the m= line lists: another would be answered
                    // with a payload type the offer never offered (or one over 127, which is
                    // no payload type at all), and DTMF sent under it would be lost.
                    if let Some(pt) = pt
                        && DYNAMIC_PAYLOAD_TYPES.contains(&pt)
                        && stream.payload_types.contains(&pt)
                        && encoding.to_ascii_lowercase().starts_with("telephone-event/8000")
                    {
                        stream.telephone_event = Some(pt);
                    }
                } else if name == "ptime" {
                    stream.ptime = argument.trim().parse().ok();
                } else if name == "crypto" && stream.crypto.len() < MAX_CRYPTO_LINES {
                    stream.crypto.push(argument.trim().to_owned());
                }
            }
            _ => {}
        }
    }
    let (audio_index, mut stream, media_address, media_direction) = audio.ok_or(SdpError::NoAudio)?;
    stream.address = media_address.or(session_address).ok_or(SdpError::NoConnection)?;
    stream.direction = media_direction.unwrap_or(session_direction);
    Ok(SessionDescription { audio: stream, media_kinds, audio_index })
}

/// The codec chosen for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// PCMU (0) or PCMA (8).
    pub codec: u8,
    /// The peer's telephone-event payload type, when both sides speak RFC 4733.
    pub telephone_event: Option<u8>,
}

/// Choose the first of the offer's payload types the platform speaks.
pub fn negotiate(offer: &AudioStream) -> Result<Negotiated, SdpError> {
    let codec = offer
        .payload_types
        .iter()
        .copied()
        .find(|pt| *pt == PT_PCMU || *pt == PT_PCMA)
        .ok_or_else(|| SdpError::NoCommonCodec(offer.payload_types.clone()))?;
    Ok(Negotiated { codec, telephone_event: offer.telephone_event })
}

/// What the platform puts in an offer or answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// The origin's session id (constant for the session).
    pub session_id: u64,
    /// The origin's version: one more with every new offer or answer (RFC 3264 §8).
    pub version: u64,
    /// Our RTP address.
    pub address: IpAddr,
    /// Our RTP port.
    pub port: u16,
    /// Payload types, in preference order (codecs only).
    pub codecs: Vec<u8>,
    /// The telephone-event payload type, if offered/answered.
    pub telephone_event: Option<u8>,
    /// Direction.
    pub direction: Direction,
    /// Our `a=crypto` value when the stream is SRTP (the m= line then says `RTP/SAVP`).
    pub crypto: Option<String>,
}

impl LocalMedia {
    /// The SDP body; `media_kinds`/`audio_index` answer every media line of an offer (the
    /// non-audio ones with port 0).
    pub fn render(&self, media_kinds: &[String], audio_index: usize) -> String {
        let ip = match self.address {
            IpAddr::V4(_) => "IP4",
            IpAddr::V6(_) => "IP6",
        };
        let mut sdp = String::new();
        let _ = write!(
            sdp,
            "v=0\r\no=opentact {id} {version} IN {ip} {addr}\r\ns=opentact\r\nc=IN {ip} {addr}\r\nt=0 0\r\n",
            id = self.session_id,
            version = self.version,
            addr = self.address
        );
        let kinds: Vec<String> =
            if media_kinds.is_empty() { vec!["audio".to_owned()] } else { media_kinds.to_vec() };
        for (index, kind) in kinds.iter().enumerate() {
            if index != audio_index {
                let _ = write!(sdp, "m={kind} 0 RTP/AVP 0\r\n");
                continue;
            }
            let mut pts: Vec<String> = self.codecs.iter().map(u8::to_string).collect();
            if let Some(te) = self.telephone_event {
                pts.push(te.to_string());
            }
            let protocol = if self.crypto.is_some() { PROTOCOL_SRTP } else { PROTOCOL_RTP };
            let _ = write!(sdp, "m=audio {} {protocol} {}\r\n", self.port, pts.join(" "));
            if let Some(crypto) = &self.crypto {
                let _ = write!(sdp, "a=crypto:{crypto}\r\n");
            }
            for codec in &self.codecs {
                match *codec {
                    PT_PCMU => sdp.push_str("a=rtpmap:0 PCMU/8000\r\n"),
                    PT_PCMA => sdp.push_str("a=rtpmap:8 PCMA/8000\r\n"),
                    _ => {}
                }
            }
            if let Some(te) = self.telephone_event {
                let _ = write!(sdp, "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-15\r\n");
            }
            let _ = write!(sdp, "a=ptime:20\r\na={}\r\n", self.direction.attribute());
        }
        sdp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIPP_OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";

    #[test]
    fn parses_an_offer_and_negotiates() {
        let offer = parse(SIPP_OFFER).expect("valid offer");
        assert_eq!(offer.audio.address, "127.0.0.1".parse::<IpAddr>().expect("ip"));
        assert_eq!((offer.audio.port, offer.audio.telephone_event), (6000, Some(101)));
        assert!(!offer.audio.is_hold());
        assert_eq!(negotiate(&offer.audio), Ok(Negotiated { codec: PT_PCMA, telephone_event: Some(101) }));
    }

    #[test]
    fn answer_round_trips_through_the_parser() {
        let offer = parse(SIPP_OFFER).expect("valid offer");
        let answer = LocalMedia {
            session_id: 7,
            version: 1,
            address: "127.0.0.1".parse().expect("ip"),
            port: 20_000,
            codecs: vec![PT_PCMA],
            telephone_event: Some(101),
            direction: offer.audio.direction.answer(),
            crypto: None,
        }
        .render(&offer.media_kinds, offer.audio_index);
        let parsed = parse(&answer).expect("our answer parses");
        assert_eq!(parsed.audio.payload_types, [PT_PCMA, 101]);
        assert_eq!(parsed.audio.port, 20_000);
    }

    #[test]
    fn telephone_event_is_taken_only_from_a_listed_dynamic_payload_type() {
        // Found by the `sdp` fuzz target: an rtpmap for 201 made the platform answer
        // `m=audio … 0 201`, a payload type that does not exist and that its own parser refuses.
        for (rtpmap, why) in [
            ("a=rtpmap:201 telephone-event/8000", "over 127"),
            ("a=rtpmap:102 telephone-event/8000", "not on the m= line"),
            ("a=rtpmap:0 telephone-event/8000", "a static payload type"),
        ] {
            let offer = SIPP_OFFER.replace("a=rtpmap:101 telephone-event/8000", rtpmap);
            let offer = parse(&offer).expect("valid offer");
            assert_eq!(offer.audio.telephone_event, None, "{why}");
            let negotiated = negotiate(&offer.audio).expect("PCMA");
            let answer = LocalMedia {
                session_id: 1,
                version: 1,
                address: "127.0.0.1".parse().expect("ip"),
                port: 20_000,
                codecs: vec![negotiated.codec],
                telephone_event: negotiated.telephone_event,
                direction: Direction::SendRecv,
                crypto: None,
            }
            .render(&offer.media_kinds, offer.audio_index);
            assert!(parse(&answer).is_ok(), "{why}: our answer parses:\n{answer}");
        }
    }

    #[test]
    fn an_srtp_offer_keeps_its_crypto_lines_and_is_answered_in_kind() {
        let offer = SIPP_OFFER.replace("RTP/AVP", "RTP/SAVP").replace(
            "a=fmtp:101 0-15\r\n",
            "a=fmtp:101 0-15\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n\
             a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj\r\n",
        );
        let parsed = parse(&offer).expect("valid");
        assert!(parsed.audio.is_srtp());
        assert_eq!(parsed.audio.crypto.len(), 2);
        assert!(parsed.audio.crypto[1].starts_with("2 AES_CM_128_HMAC_SHA1_32 inline:"));
        assert!(!parse(SIPP_OFFER).expect("valid").audio.is_srtp());
        let answer = LocalMedia {
            session_id: 1,
            version: 1,
            address: "127.0.0.1".parse().expect("ip"),
            port: 20_002,
            codecs: vec![PT_PCMA],
            telephone_event: Some(101),
            direction: Direction::SendRecv,
            crypto: Some(
                "1 AES_CM_128_HMAC_SHA1_80 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj".to_owned(),
            ),
        }
        .render(&parsed.media_kinds, parsed.audio_index);
        assert!(answer.contains("m=audio 20002 RTP/SAVP 8 101\r\na=crypto:1 AES_CM_128"), "{answer}");
        let round = parse(&answer).expect("our answer parses");
        assert!(round.audio.is_srtp());
        assert_eq!(round.audio.crypto.len(), 1);
    }

    #[test]
    fn hold_is_detected_both_ways() {
        let sendonly = SIPP_OFFER.replace("a=fmtp:101 0-15\r\n", "a=fmtp:101 0-15\r\na=sendonly\r\n");
        assert!(parse(&sendonly).expect("valid").audio.is_hold());
        let zero = SIPP_OFFER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
        assert!(parse(&zero).expect("valid").audio.is_hold());
        assert_eq!(Direction::SendOnly.answer(), Direction::RecvOnly);
    }

    #[test]
    fn video_lines_are_answered_with_port_zero() {
        let offer = format!("{SIPP_OFFER}m=video 6002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n");
        let parsed = parse(&offer).expect("valid");
        assert_eq!(parsed.media_kinds, ["audio", "video"]);
        let answer = LocalMedia {
            session_id: 1,
            version: 1,
            address: "127.0.0.1".parse().expect("ip"),
            port: 20_002,
            codecs: vec![PT_PCMU],
            telephone_event: None,
            direction: Direction::SendRecv,
            crypto: None,
        }
        .render(&parsed.media_kinds, parsed.audio_index);
        assert!(answer.contains("m=video 0 RTP/AVP 0\r\n"), "{answer}");
    }

    #[test]
    fn bad_offers_get_precise_errors() {
        assert_eq!(parse("v=0\r\ngarbage\r\n"), Err(SdpError::Malformed { line: 2, text: "garbage".into() }));
        assert_eq!(parse("v=0\r\nc=IN IP4 127.0.0.1\r\nm=video 1 RTP/AVP 96\r\n"), Err(SdpError::NoAudio));
        assert_eq!(parse("v=0\r\nm=audio 6000 RTP/AVP 0\r\n"), Err(SdpError::NoConnection));
        let g729 = SIPP_OFFER.replace("m=audio 6000 RTP/AVP 8 0 101", "m=audio 6000 RTP/AVP 18");
        let offer = parse(&g729).expect("parses");
        assert_eq!(negotiate(&offer.audio), Err(SdpError::NoCommonCodec(vec![18])));
        assert!(matches!(parse("v=0\r\nc=IN IP4 nonsense\r\n"), Err(SdpError::Invalid { line: 2, .. })));
        assert_eq!(parse(&"a".repeat(MAX_SDP_BYTES + 1)), Err(SdpError::TooLarge(MAX_SDP_BYTES + 1)));
    }
}
