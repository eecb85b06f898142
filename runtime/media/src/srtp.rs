//! SRTP with keys exchanged in the SDP (SDES, RFC 4568): the `a=crypto` attribute, choosing
//! among an offer's suites, keys drawn from the operating system, and a session's two
//! cryptographic contexts.
//!
//! The transform itself (RFC 3711 AES counter mode with HMAC-SHA1, RFC 7714 AES-GCM) is the
//! `webrtc-srtp` crate's; what is here is the key management around it. Each direction has its
//! own master key, as RFC 4568 requires: the peer's key (from its `a=crypto`) decrypts what it
//! sends, ours (in our `a=crypto`) encrypts what we send. Replayed packets are refused by a
//! 64-packet sliding window (RFC 3711 §3.3.2), and a packet that fails authentication changes
//! no state: an attacker who can reach the port can neither inject audio nor move the session.
//!
//! SDES keys travel in the SDP in clear text, so they are only as secret as the signalling:
//! the platform offers SRTP on legs it sends over TLS.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use thiserror::Error;
use webrtc_srtp::context::Context;
use webrtc_srtp::option::srtp_replay_protection;
use webrtc_srtp::protection_profile::ProtectionProfile;

/// Packets of the replay window (RFC 3711 §3.3.2 recommends at least 64).
const REPLAY_WINDOW: usize = 64;

/// Failed packets with a never-authenticated SSRC a session tries to open; after that only the
/// SSRCs that authenticated are tried. The SRTP library keeps state per SSRC from the first
/// packet it sees, so without this cap a flood of forged packets with random SSRCs would grow it
/// without bound.
const MAX_UNKNOWN_SSRC_FAILURES: u32 = 1024;

/// Longest `a=crypto` value considered (a line with every optional part is under 200 bytes).
const MAX_ATTRIBUTE_BYTES: usize = 512;

/// When a call's media is SRTP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SrtpPolicy {
    /// Never: an SRTP offer is refused (488).
    Off,
    /// As the peer offers: SRTP offers get SRTP, plain ones plain RTP; legs the platform places
    /// over TLS are offered SRTP (where the keys in the SDP stay secret), others plain RTP.
    #[default]
    Optional,
    /// Always: a plain RTP offer is refused (488), and every leg placed is offered SRTP.
    Required,
}

impl SrtpPolicy {
    /// Whether a leg placed over `transport` (`udp`, `tcp`, `tls`) is offered SRTP.
    pub fn offers_on(self, transport: &str) -> bool {
        match self {
            SrtpPolicy::Off => false,
            SrtpPolicy::Optional => transport.eq_ignore_ascii_case("tls"),
            SrtpPolicy::Required => true,
        }
    }
}

/// Why SRTP cannot be set up.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SrtpError {
    /// An `a=crypto` value that does not follow RFC 4568 §9.1.
    #[error("a=crypto:{attribute}: {why}")]
    Malformed {
        /// The attribute's value.
        attribute: String,
        /// What is wrong.
        why: String,
    },
    /// The offer's crypto lines name only suites (or options) the platform does not speak.
    #[error(
        "no supported SRTP crypto suite: the offer has {offered:?}; the platform speaks \
         AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32, AES_256_CM_HMAC_SHA1_80, \
         AES_256_CM_HMAC_SHA1_32, AEAD_AES_128_GCM and AEAD_AES_256_GCM, without MKI or \
         session parameters"
    )]
    NoSupportedSuite {
        /// The suites offered, in order.
        offered: Vec<String>,
    },
    /// RTP/SAVP without any `a=crypto` line (keys by another means, such as MIKEY, are not
    /// supported).
    #[error("the offer is RTP/SAVP but carries no a=crypto line (SDES keys)")]
    NoCryptoLine,
    /// The operating system's random source failed.
    #[error("no random key: {0}")]
    Random(String),
    /// The SRTP library refused the key.
    #[error("SRTP context: {0}")]
    Context(String),
}

/// An SDES crypto suite (RFC 4568 §6.2, RFC 6188, RFC 7714 §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoSuite {
    /// AES-128 counter mode, 80-bit HMAC-SHA1 tag: the suite every SDES peer speaks.
    AesCm128HmacSha1_80,
    /// AES-128 counter mode, 32-bit HMAC-SHA1 tag.
    AesCm128HmacSha1_32,
    /// AES-256 counter mode, 80-bit HMAC-SHA1 tag (RFC 6188).
    Aes256CmHmacSha1_80,
    /// AES-256 counter mode, 32-bit HMAC-SHA1 tag (RFC 6188).
    Aes256CmHmacSha1_32,
    /// AES-128-GCM (RFC 7714).
    AeadAes128Gcm,
    /// AES-256-GCM (RFC 7714).
    AeadAes256Gcm,
}

impl CryptoSuite {
    /// Every suite, in the order the platform prefers when it offers.
    pub const ALL: [CryptoSuite; 6] = [
        CryptoSuite::AesCm128HmacSha1_80,
        CryptoSuite::AesCm128HmacSha1_32,
        CryptoSuite::Aes256CmHmacSha1_80,
        CryptoSuite::Aes256CmHmacSha1_32,
        CryptoSuite::AeadAes128Gcm,
        CryptoSuite::AeadAes256Gcm,
    ];

    /// The suite's name in `a=crypto`.
    pub fn name(self) -> &'static str {
        match self {
            CryptoSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            CryptoSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            CryptoSuite::Aes256CmHmacSha1_80 => "AES_256_CM_HMAC_SHA1_80",
            CryptoSuite::Aes256CmHmacSha1_32 => "AES_256_CM_HMAC_SHA1_32",
            CryptoSuite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            CryptoSuite::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    /// The suite named `name` (names are case-sensitive, RFC 4568 §9.1).
    pub fn from_name(name: &str) -> Option<CryptoSuite> {
        CryptoSuite::ALL.into_iter().find(|suite| suite.name() == name)
    }

    fn profile(self) -> ProtectionProfile {
        match self {
            CryptoSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            CryptoSuite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
            CryptoSuite::Aes256CmHmacSha1_80 => ProtectionProfile::Aes256CmHmacSha1_80,
            CryptoSuite::Aes256CmHmacSha1_32 => ProtectionProfile::Aes256CmHmacSha1_32,
            CryptoSuite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
            CryptoSuite::AeadAes256Gcm => ProtectionProfile::AeadAes256Gcm,
        }
    }

    /// Master key length, bytes.
    fn key_len(self) -> usize {
        self.profile().key_len()
    }

    /// Master salt length, bytes.
    fn salt_len(self) -> usize {
        self.profile().salt_len()
    }
}

/// One `a=crypto` line: a tag, a suite and its master key and salt.
#[derive(Clone, PartialEq, Eq)]
pub struct SdesKey {
    /// The tag that pairs an answer's line with the offer's (RFC 4568 §5.1).
    pub tag: u32,
    /// The suite.
    pub suite: CryptoSuite,
    /// Master key followed by master salt.
    key_and_salt: Vec<u8>,
}

impl std::fmt::Debug for SdesKey {
    // Keys never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdesKey").field("tag", &self.tag).field("suite", &self.suite).finish_non_exhaustive()
    }
}

impl SdesKey {
    /// A fresh key for `suite` under `tag`, from the operating system's random source.
    pub fn generate(tag: u32, suite: CryptoSuite) -> Result<SdesKey, SrtpError> {
        let mut key_and_salt = vec![0u8; suite.key_len() + suite.salt_len()];
        getrandom::fill(&mut key_and_salt).map_err(|error| SrtpError::Random(error.to_string()))?;
        Ok(SdesKey { tag, suite, key_and_salt })
    }

    /// Parse an `a=crypto` value: `<tag> <suite> inline:<key||salt base64>[|lifetime][|MKI:len]
    /// [session params]`. `Ok(None)`: a well-formed line the platform cannot use (an unknown
    /// suite, an MKI, several keys, session parameters) — the offer may have another.
    pub fn parse(attribute: &str) -> Result<Option<SdesKey>, SrtpError> {
        let malformed =
            |why: &str| SrtpError::Malformed { attribute: attribute.to_owned(), why: why.to_owned() };
        if attribute.len() > MAX_ATTRIBUTE_BYTES {
            return Err(malformed("longer than any crypto line"));
        }
        let mut fields = attribute.split_whitespace();
        let tag = fields
            .next()
            .and_then(|tag| tag.parse::<u32>().ok())
            .filter(|tag| *tag <= 999_999_999)
            .ok_or_else(|| malformed("the tag must be a number of 1 to 9 digits"))?;
        let suite_name = fields.next().ok_or_else(|| malformed("no crypto suite"))?;
        let key_params = fields.next().ok_or_else(|| malformed("no key parameters"))?;
        let session_params = fields.next().is_some();
        let Some(suite) = CryptoSuite::from_name(suite_name) else { return Ok(None) };
        // Several keys (`;`-separated) come with MKIs, which the platform does not use.
        if session_params || key_params.contains(';') {
            return Ok(None);
        }
        let inline =
            key_params.strip_prefix("inline:").ok_or_else(|| malformed("the key method must be inline:"))?;
        let mut parts = inline.split('|');
        let encoded = parts.next().unwrap_or_default();
        // A lifetime may follow; an MKI (`n:len`) may not, as the platform sends none.
        if parts.any(|part| part.contains(':')) {
            return Ok(None);
        }
        let key_and_salt = STANDARD.decode(encoded).map_err(|_| malformed("the key is not base64"))?;
        if key_and_salt.len() != suite.key_len() + suite.salt_len() {
            return Err(malformed(&format!(
                "{} needs a {}-byte key and salt, the line has {}",
                suite.name(),
                suite.key_len() + suite.salt_len(),
                key_and_salt.len()
            )));
        }
        Ok(Some(SdesKey { tag, suite, key_and_salt }))
    }

    /// The same key under another tag (a re-offer's line for the suite we answered).
    pub fn with_tag(&self, tag: u32) -> SdesKey {
        SdesKey { tag, ..self.clone() }
    }

    /// The `a=crypto` value for this key.
    pub fn attribute(&self) -> String {
        format!("{} {} inline:{}", self.tag, self.suite.name(), STANDARD.encode(&self.key_and_salt))
    }

    fn context(&self) -> Result<Context, SrtpError> {
        let (key, salt) = self.key_and_salt.split_at(self.suite.key_len());
        Context::new(key, salt, self.suite.profile(), Some(srtp_replay_protection(REPLAY_WINDOW)), None)
            .map_err(|error| SrtpError::Context(error.to_string()))
    }
}

/// The first of an offer's `a=crypto` values the platform can use, in the offer's order (its
/// preference, RFC 4568 §7.1.1).
pub fn choose(attributes: &[String]) -> Result<SdesKey, SrtpError> {
    if attributes.is_empty() {
        return Err(SrtpError::NoCryptoLine);
    }
    let mut offered = Vec::new();
    for attribute in attributes {
        if let Some(key) = SdesKey::parse(attribute)? {
            return Ok(key);
        }
        offered.push(attribute.split_whitespace().nth(1).unwrap_or_default().to_owned());
    }
    Err(SrtpError::NoSupportedSuite { offered })
}

/// Our answer to a chosen offer line: the same tag and suite, our own key.
pub fn answer(offered: &SdesKey) -> Result<SdesKey, SrtpError> {
    SdesKey::generate(offered.tag, offered.suite)
}

/// Why a packet was not let through.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("SRTP: {0}")]
pub struct PacketError(String);

/// A session's two SRTP contexts: ours protects what we send, the peer's opens what it sends.
pub struct SrtpContexts {
    /// Protects outgoing packets (our key).
    outbound: Context,
    /// Authenticates and decrypts incoming packets (the peer's key).
    inbound: Context,
    /// The peer's key, to tell a re-offer that changes it from one that repeats it.
    remote: SdesKey,
    /// The SSRCs whose packets authenticated.
    authenticated: Vec<u32>,
    /// Packets with another SSRC that failed (see [`MAX_UNKNOWN_SSRC_FAILURES`]).
    unknown_failures: u32,
}

impl std::fmt::Debug for SrtpContexts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpContexts").finish_non_exhaustive()
    }
}

impl SrtpContexts {
    /// Contexts from our key and the peer's.
    pub fn new(local: &SdesKey, remote: &SdesKey) -> Result<SrtpContexts, SrtpError> {
        Ok(SrtpContexts {
            outbound: local.context()?,
            inbound: remote.context()?,
            remote: remote.clone(),
            authenticated: Vec::new(),
            unknown_failures: 0,
        })
    }

    /// The SRTP packet for an RTP packet.
    pub fn protect(&mut self, packet: &[u8]) -> Result<Vec<u8>, PacketError> {
        self.outbound.encrypt_rtp(packet).map(|bytes| bytes.to_vec()).map_err(|e| PacketError(e.to_string()))
    }

    /// The RTP packet inside an SRTP packet; an error for a packet that fails authentication,
    /// a replay, or one too short to be SRTP.
    pub fn unprotect(&mut self, packet: &[u8]) -> Result<Vec<u8>, PacketError> {
        let ssrc = packet.get(8..12).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let Some(ssrc) = ssrc else { return Err(PacketError("shorter than an RTP header".to_owned())) };
        let known = self.authenticated.contains(&ssrc);
        if !known && self.unknown_failures >= MAX_UNKNOWN_SSRC_FAILURES {
            return Err(PacketError(format!(
                "SSRC {ssrc} never authenticated, and {MAX_UNKNOWN_SSRC_FAILURES} packets of unknown SSRCs failed"
            )));
        }
        match self.inbound.decrypt_rtp(packet) {
            Ok(plain) => {
                if !known {
                    // A handful at most (a re-INVITE may bring a new stream): keep the newest.
                    if self.authenticated.len() == 8 {
                        self.authenticated.remove(0);
                    }
                    self.authenticated.push(ssrc);
                }
                Ok(plain.to_vec())
            }
            Err(error) => {
                if !known {
                    self.unknown_failures += 1;
                }
                Err(PacketError(error.to_string()))
            }
        }
    }

    /// Take a new key from the peer (a re-offer that changed it), keeping ours. The same key
    /// again (a session refresh) changes nothing: its replay window and rollover count stay.
    pub fn rekey_inbound(&mut self, remote: &SdesKey) -> Result<(), SrtpError> {
        if remote.key_and_salt == self.remote.key_and_salt && remote.suite == self.remote.suite {
            return Ok(());
        }
        self.inbound = remote.context()?;
        self.remote = remote.clone();
        self.authenticated.clear();
        self.unknown_failures = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RtpPacket;

    /// The key of RFC 4568 §9.1's example line.
    const RFC_LINE: &str =
        "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4";

    fn packet(sequence: u16, payload: &[u8]) -> Vec<u8> {
        let mut datagram = Vec::new();
        RtpPacket {
            marker: false,
            payload_type: 0,
            sequence,
            timestamp: 160 * u32::from(sequence),
            ssrc: 7,
            payload,
        }
        .write(&mut datagram);
        datagram
    }

    #[test]
    fn a_line_round_trips_and_never_shows_its_key_in_debug() {
        let key = SdesKey::generate(3, CryptoSuite::AesCm128HmacSha1_80).expect("random");
        let line = key.attribute();
        assert!(line.starts_with("3 AES_CM_128_HMAC_SHA1_80 inline:"), "{line}");
        assert_eq!(SdesKey::parse(&line), Ok(Some(key.clone())));
        let debug = format!("{key:?}");
        assert!(!debug.contains(line.rsplit(':').next().expect("key")), "{debug}");
        let lifetime = format!("{line}|2^31");
        assert_eq!(SdesKey::parse(&lifetime).expect("valid"), Some(key));
    }

    #[test]
    fn lines_the_platform_cannot_use_are_skipped_and_bad_ones_refused() {
        // An MKI (the RFC's own example), an unknown suite, session parameters: skipped.
        assert_eq!(SdesKey::parse(RFC_LINE), Ok(None));
        assert_eq!(
            SdesKey::parse("1 F8_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"),
            Ok(None)
        );
        assert_eq!(
            SdesKey::parse(
                "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR UNENCRYPTED_SRTP"
            ),
            Ok(None)
        );
        for (line, why) in [
            ("x AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR", "tag"),
            ("1", "no crypto suite"),
            ("1 AES_CM_128_HMAC_SHA1_80", "no key parameters"),
            ("1 AES_CM_128_HMAC_SHA1_80 uri:https://example.com/key", "inline:"),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:***", "base64"),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:AAAA", "30-byte"),
        ] {
            let error = SdesKey::parse(line).expect_err(line).to_string();
            assert!(error.contains(why), "{line}: {error}");
        }
    }

    #[test]
    fn the_first_usable_line_of_an_offer_is_chosen() {
        let usable = SdesKey::generate(2, CryptoSuite::AeadAes128Gcm).expect("random");
        let offer = vec![RFC_LINE.to_owned(), usable.attribute()];
        assert_eq!(choose(&offer), Ok(usable.clone()));
        let answer = answer(&usable).expect("random");
        assert_eq!((answer.tag, answer.suite), (2, CryptoSuite::AeadAes128Gcm));
        assert_ne!(answer, usable, "the answer has its own key");
        assert_eq!(choose(&[]), Err(SrtpError::NoCryptoLine));
        assert_eq!(
            choose(&[RFC_LINE.to_owned()]),
            Err(SrtpError::NoSupportedSuite { offered: vec!["AES_CM_128_HMAC_SHA1_80".to_owned()] })
        );
    }

    #[test]
    fn what_one_side_protects_the_other_opens_and_nothing_else() {
        for suite in CryptoSuite::ALL {
            let (ours, theirs) =
                (SdesKey::generate(1, suite).expect("random"), SdesKey::generate(1, suite).expect("random"));
            let mut platform = SrtpContexts::new(&ours, &theirs).expect("contexts");
            let mut phone = SrtpContexts::new(&theirs, &ours).expect("contexts");
            let plain = packet(1, &[0x55; 160]);
            let protected = platform.protect(&plain).expect("protect");
            assert_ne!(protected[12..172], plain[12..], "{suite:?}: the payload is encrypted");
            assert_eq!(phone.unprotect(&protected).expect("opens"), plain, "{suite:?}");
            // A replay, a flipped bit, plain RTP: all refused.
            assert!(phone.unprotect(&protected).is_err(), "{suite:?}: replay");
            let mut tampered = platform.protect(&packet(2, &[0x55; 160])).expect("protect");
            tampered[20] ^= 1;
            assert!(phone.unprotect(&tampered).is_err(), "{suite:?}: tampered");
            assert!(phone.unprotect(&packet(3, &[0x55; 160])).is_err(), "{suite:?}: plain RTP");
            // A refused packet changed nothing: the next genuine one opens.
            let next = platform.protect(&packet(4, &[1; 160])).expect("protect");
            assert_eq!(phone.unprotect(&next).expect("opens"), packet(4, &[1; 160]), "{suite:?}");
        }
    }

    #[test]
    fn forged_packets_with_ever_new_ssrcs_stop_being_tried_but_the_known_stream_goes_on() {
        let (ours, theirs) = (
            SdesKey::generate(1, CryptoSuite::AesCm128HmacSha1_80).expect("random"),
            SdesKey::generate(1, CryptoSuite::AesCm128HmacSha1_80).expect("random"),
        );
        let mut platform = SrtpContexts::new(&ours, &theirs).expect("contexts");
        let mut phone = SrtpContexts::new(&theirs, &ours).expect("contexts");
        let first = platform.protect(&packet(1, &[1; 160])).expect("protect");
        phone.unprotect(&first).expect("the stream authenticates");
        for ssrc in 0..MAX_UNKNOWN_SSRC_FAILURES + 10 {
            let mut forged = first.clone();
            forged[8..12].copy_from_slice(&(ssrc + 100).to_be_bytes());
            assert!(phone.unprotect(&forged).is_err());
        }
        let error = phone.unprotect(&[&first[..8], &9_999u32.to_be_bytes(), &first[12..]].concat());
        assert!(error.expect_err("not tried").to_string().contains("never authenticated"));
        let next = platform.protect(&packet(2, &[2; 160])).expect("protect");
        assert_eq!(phone.unprotect(&next).expect("the known stream still opens"), packet(2, &[2; 160]));
    }
}
