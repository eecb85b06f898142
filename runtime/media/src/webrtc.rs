//! WebRTC media for a call from a browser (the web call): ICE-lite, DTLS-SRTP, RTCP and
//! rtcp-mux, by [str0m](https://docs.rs/str0m) — a sans-IO stack: it never touches a socket, so
//! it runs over the call's own RTP socket ([`crate::session::RtpSession::set_webrtc`]) and the
//! rest of the session (the 20 ms media clock, G.711, RFC 4733 digits, taps, the flood cap) is
//! the same as for a phone's call.
//!
//! str0m runs in RTP mode: what comes out of it is each authenticated, decrypted RTP packet,
//! which the session handles like a plain one; what the session sends is handed to it as a
//! plain packet and leaves encrypted. The platform is the ICE-lite side (RFC 8445 §2.5): it
//! only answers the browser's connectivity checks, and sends media to the address the browser
//! nominated — never to an address someone merely sent packets from, so the latching rules of
//! plain RTP have no place here. STUN without the ICE password, DTLS from anyone but the
//! nominated peer and SRTP that fails authentication are dropped inside str0m.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::{Codec, FormatParams};
use str0m::media::{Direction, Frequency, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use thiserror::Error;
use tracing::{debug, info, warn};

use crate::rtp::RtpPacket;
use crate::sdp::{PT_PCMA, PT_PCMU};

/// Why a browser's offer cannot be answered.
#[derive(Debug, Error)]
pub enum WebRtcError {
    /// str0m refused the offer or the candidate.
    #[error("WebRTC offer: {0}")]
    Offer(String),
    /// str0m refused the browser's answer to our offer.
    #[error("WebRTC answer: {0}")]
    Answer(String),
    /// The offer has no audio the platform can take.
    #[error("WebRTC offer: no audio stream with PCMU or PCMA")]
    NoAudio,
}

/// One browser call's WebRTC state. Driven by the session: [`WebRtcLink::receive`] for each
/// datagram, [`WebRtcLink::send_rtp`] for each packet the media clock sends, and
/// [`WebRtcLink::tick`] for str0m's timers (DTLS retransmits, RTCP, ICE consent).
pub struct WebRtcLink {
    rtc: Rtc,
    /// The audio m-line.
    mid: Mid,
    /// The socket's address, as str0m must be told where a datagram arrived.
    local: SocketAddr,
    /// When str0m next wants [`Input::Timeout`].
    next_timeout: Option<Instant>,
    /// DTLS is up: media may flow.
    connected: bool,
    /// The ICE agent gave up on the browser (it went away without a BYE).
    disconnected: bool,
    /// The extended sequence number of the last packet written (SRTP's rollover counter).
    last_sequence: Option<u64>,
}

impl std::fmt::Debug for WebRtcLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcLink")
            .field("local", &self.local)
            .field("connected", &self.connected)
            .finish_non_exhaustive()
    }
}

/// An ICE-lite str0m in RTP mode with `codecs` (PCMU, PCMA; others are skipped) in that order,
/// `telephone_event` (RFC 4733) and one host candidate at `advertised`.
fn ice_lite_rtc(
    codecs: &[u8],
    telephone_event: Option<u8>,
    advertised: SocketAddr,
) -> Result<Rtc, WebRtcError> {
    let mut config = Rtc::builder().set_ice_lite(true).set_rtp_mode(true).clear_codecs();
    for codec in codecs {
        config = match *codec {
            PT_PCMU => config.enable_pcmu(true, false),
            PT_PCMA => config.enable_pcma(true, false),
            _ => config,
        };
    }
    if let Some(pt) = telephone_event {
        config.codec_config().add_config(
            Pt::from(pt),
            None,
            Codec::Tele,
            Frequency::EIGHT_KHZ,
            None,
            FormatParams { telephone_event_max: Some(16), ..FormatParams::default() },
        );
    }
    let mut rtc = config.build(Instant::now());
    let candidate =
        Candidate::host(advertised, "udp").map_err(|error| WebRtcError::Offer(error.to_string()))?;
    rtc.add_local_candidate(candidate);
    Ok(rtc)
}

/// The `a=mid` of the first audio m-line that is not refused (port 0) in an SDP.
fn audio_mid(sdp: &str) -> Option<Mid> {
    let mut in_audio = false;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(media) = line.strip_prefix("m=") {
            in_audio = media.starts_with("audio ") && !media.starts_with("audio 0 ");
        } else if in_audio && let Some(mid) = line.strip_prefix("a=mid:") {
            return Some(Mid::from(mid));
        }
    }
    None
}

/// A link whose offer went to the browser; [`OfferedLink::accept`] takes its answer.
pub struct OfferedLink {
    link: WebRtcLink,
    pending: SdpPendingOffer,
}

impl std::fmt::Debug for OfferedLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfferedLink").field("link", &self.link).finish_non_exhaustive()
    }
}

impl OfferedLink {
    /// The browser's answer: ICE credentials, DTLS fingerprint, the codec it took.
    pub fn accept(mut self, answer: &str) -> Result<WebRtcLink, WebRtcError> {
        let answer =
            SdpAnswer::from_sdp_string(answer).map_err(|error| WebRtcError::Answer(error.to_string()))?;
        self.link
            .rtc
            .sdp_api()
            .accept_answer(self.pending, answer)
            .map_err(|error| WebRtcError::Answer(error.to_string()))?;
        let mut ignored = LinkOutput::default();
        self.link.drain(&mut ignored);
        Ok(self.link)
    }
}

/// What [`WebRtcLink::receive`] did with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Not for this link: dropped.
    NotOurs,
    /// For this link, but over the caller's cap: dropped before it was opened.
    OverCap,
    /// Handled (its output, if any, is in the [`LinkOutput`]).
    Taken,
}

/// What one call to the link produced: datagrams to send, decrypted RTP packets to handle.
#[derive(Debug, Default)]
pub struct LinkOutput {
    /// Datagrams for the network: STUN answers, DTLS, SRTP, SRTCP.
    pub transmits: Vec<(SocketAddr, Vec<u8>)>,
    /// Plain RTP packets (header and payload) the browser sent, authenticated and decrypted.
    pub packets: Vec<Vec<u8>>,
}

impl WebRtcLink {
    /// Answer a browser's offer (`UDP/TLS/RTP/SAVPF` with ICE credentials and a DTLS
    /// fingerprint). `local` is the socket the media uses, `advertised` the address the browser
    /// is told to reach it at (our one host candidate), `codec` PCMU or PCMA and
    /// `telephone_event` the offer's RFC 4733 payload type, if any: the answer names only these.
    /// Returns the link and the SDP answer.
    pub fn answer(
        offer: &str,
        local: SocketAddr,
        advertised: SocketAddr,
        codec: u8,
        telephone_event: Option<u8>,
    ) -> Result<(WebRtcLink, String), WebRtcError> {
        if ![PT_PCMU, PT_PCMA].contains(&codec) {
            return Err(WebRtcError::NoAudio);
        }
        let mut rtc = ice_lite_rtc(&[codec], telephone_event, advertised)?;
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|error| WebRtcError::Offer(error.to_string()))?;
        let answer =
            rtc.sdp_api().accept_offer(offer).map_err(|error| WebRtcError::Offer(error.to_string()))?;
        let answer = answer.to_sdp_string();
        // The audio line's mid, from the answer itself: str0m tells it by an event only once
        // the peer is connected.
        let mid = audio_mid(&answer).ok_or(WebRtcError::NoAudio)?;
        Ok((WebRtcLink::new(rtc, mid, local), answer))
    }

    /// Offer WebRTC media to a browser (a call to a SIP user signed in on the web call page):
    /// PCMU and PCMA (in `codecs`' order) with `telephone_event`, ICE-lite with one host
    /// candidate at `advertised`. The link is usable once [`OfferedLink::accept`] has the
    /// browser's answer.
    pub fn offer(
        local: SocketAddr,
        advertised: SocketAddr,
        codecs: &[u8],
        telephone_event: u8,
    ) -> Result<(OfferedLink, String), WebRtcError> {
        let mut rtc = ice_lite_rtc(codecs, Some(telephone_event), advertised)?;
        let mut api = rtc.sdp_api();
        let mid = api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = api.apply().ok_or(WebRtcError::NoAudio)?;
        Ok((OfferedLink { link: WebRtcLink::new(rtc, mid, local), pending }, offer.to_sdp_string()))
    }

    fn new(rtc: Rtc, mid: Mid, local: SocketAddr) -> WebRtcLink {
        WebRtcLink {
            rtc,
            mid,
            local,
            next_timeout: None,
            connected: false,
            disconnected: false,
            last_sequence: None,
        }
    }

    /// Whether DTLS is up and media flows.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Whether the browser is gone (ICE consent expired, or str0m closed).
    pub fn is_disconnected(&self) -> bool {
        self.disconnected || !self.rtc.is_alive()
    }

    /// A datagram from `source`. [`Received::NotOurs`] when it is not for this link (a
    /// stranger's packet: no STUN for our credentials, nothing from the nominated peer).
    /// `admit` is asked only for datagrams that are ours, before any is decrypted: refused,
    /// the datagram is dropped unopened ([`Received::OverCap`]), so a flood costs a cheap
    /// check per packet rather than an SRTP authentication.
    pub fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        datagram: &[u8],
        out: &mut LinkOutput,
        admit: impl FnOnce() -> bool,
    ) -> Received {
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.local, datagram) else {
            return Received::NotOurs;
        };
        let input = Input::Receive(now, receive);
        if !self.rtc.accepts(&input) {
            return Received::NotOurs;
        }
        if !admit() {
            return Received::OverCap;
        }
        if let Err(error) = self.rtc.handle_input(input) {
            debug!(%error, %source, "WebRTC input refused");
        }
        self.drain(out);
        Received::Taken
    }

    /// Send a plain RTP packet (the media clock's, header and payload) through SRTP. Dropped
    /// until DTLS is up: there is no key to send it under.
    pub fn send_rtp(&mut self, now: Instant, datagram: &[u8], out: &mut LinkOutput) {
        if !self.connected {
            return;
        }
        let mid = self.mid;
        let Ok(packet) = RtpPacket::parse(datagram) else { return };
        let sequence = self.extend_sequence(packet.sequence);
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(mid, None) else { return };
        let write = RtpWrite::new(
            Pt::from(packet.payload_type),
            SeqNo::from(sequence),
            packet.timestamp,
            now,
            packet.payload.to_vec(),
        )
        .marker(packet.marker);
        stream.write_rtp(write);
        // The packet leaves through str0m's pacer, which hands it out on a timeout.
        if let Err(error) = self.rtc.handle_input(Input::Timeout(now)) {
            debug!(%error, "WebRTC timeout");
        }
        self.drain(out);
    }

    /// Run str0m's timers when due.
    pub fn tick(&mut self, now: Instant, out: &mut LinkOutput) {
        if self.next_timeout.is_some_and(|due| due > now) {
            return;
        }
        if let Err(error) = self.rtc.handle_input(Input::Timeout(now)) {
            debug!(%error, "WebRTC timeout");
        }
        self.drain(out);
    }

    /// The 16-bit sequence number extended past its wraps (SRTP's index, RFC 3711 §3.3.1).
    fn extend_sequence(&mut self, sequence: u16) -> u64 {
        let extended = match self.last_sequence {
            None => u64::from(sequence),
            Some(last) => {
                let rollover = last >> 16;
                let candidate = rollover << 16 | u64::from(sequence);
                // The media clock only counts up: a smaller value has wrapped.
                if candidate < last && last - candidate > 0x8000 { candidate + 0x1_0000 } else { candidate }
            }
        };
        self.last_sequence = Some(extended);
        extended
    }

    /// Collect str0m's output until it only waits for time.
    fn drain(&mut self, out: &mut LinkOutput) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(due)) => {
                    self.next_timeout = Some(due);
                    return;
                }
                Ok(Output::Transmit(transmit)) => {
                    out.transmits.push((transmit.destination, transmit.contents.to_vec()));
                }
                Ok(Output::Event(event)) => self.on_event(event, out),
                Err(error) => {
                    warn!(%error, "WebRTC stack failed; the browser's media is over");
                    self.disconnected = true;
                    return;
                }
            }
        }
    }

    fn on_event(&mut self, event: Event, out: &mut LinkOutput) {
        match event {
            Event::Connected => {
                info!(local = %self.local, "WebRTC media connected (ICE and DTLS-SRTP up)");
                self.connected = true;
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                debug!(local = %self.local, "WebRTC peer disconnected");
                self.disconnected = true;
            }
            Event::RtpPacket(packet) => {
                let plain = RtpPacket {
                    marker: packet.header.marker,
                    payload_type: *packet.header.payload_type,
                    sequence: packet.header.sequence_number,
                    timestamp: packet.header.timestamp,
                    ssrc: *packet.header.ssrc,
                    payload: &packet.payload,
                };
                let mut bytes = Vec::with_capacity(12 + packet.payload.len());
                plain.write(&mut bytes);
                out.packets.push(bytes);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const CLIENT: &str = "127.0.0.1:50000";
    const SERVER: &str = "127.0.0.1:40000";

    /// A browser stand-in: a full-ICE str0m peer that offers PCMU and telephone-event, as
    /// Chrome does.
    struct Browser {
        rtc: Rtc,
        mid: Mid,
        received: Vec<(u8, Vec<u8>)>,
        connected: bool,
    }

    fn browser_and_link() -> (Browser, WebRtcLink) {
        let now = Instant::now();
        let mut config = Rtc::builder().set_rtp_mode(true).clear_codecs().enable_pcmu(true, false);
        config.codec_config().add_config(
            Pt::from(126),
            None,
            Codec::Tele,
            Frequency::EIGHT_KHZ,
            None,
            FormatParams { telephone_event_max: Some(16), ..FormatParams::default() },
        );
        let mut rtc = config.build(now);
        rtc.add_local_candidate(Candidate::host(CLIENT.parse().unwrap(), "udp").unwrap());
        let mut api = rtc.sdp_api();
        let mid = api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = api.apply().expect("an offer");
        let server: SocketAddr = SERVER.parse().unwrap();
        let (link, answer) =
            WebRtcLink::answer(&offer.to_sdp_string(), server, server, PT_PCMU, Some(126)).expect("answered");
        assert!(answer.contains("a=ice-lite"), "{answer}");
        assert!(answer.contains("a=fingerprint:sha-256"), "{answer}");
        assert!(answer.contains("PCMU/8000") && answer.contains("telephone-event/8000"), "{answer}");
        assert!(answer.contains("a=candidate:") && answer.contains("127.0.0.1 40000"), "{answer}");
        rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap()).expect("accepted");
        (Browser { rtc, mid, received: Vec::new(), connected: false }, link)
    }

    /// The other way round: the link offers (a call to a user signed in on the page), the
    /// browser answers.
    fn link_and_answering_browser() -> (Browser, WebRtcLink) {
        let server: SocketAddr = SERVER.parse().unwrap();
        let (offered, offer) = WebRtcLink::offer(server, server, &[PT_PCMA, PT_PCMU], 101).expect("an offer");
        assert!(offer.contains("a=ice-lite"), "{offer}");
        assert!(offer.contains("UDP/TLS/RTP/SAVPF 8 0 101"), "PCMA first, as asked: {offer}");
        assert!(offer.contains("a=rtpmap:101 telephone-event/8000"), "{offer}");
        let mut config = Rtc::builder().set_rtp_mode(true).clear_codecs().enable_pcmu(true, false);
        config = config.enable_pcma(true, false);
        let mut rtc = config.build(Instant::now());
        rtc.add_local_candidate(Candidate::host(CLIENT.parse().unwrap(), "udp").unwrap());
        let answer =
            rtc.sdp_api().accept_offer(SdpOffer::from_sdp_string(&offer).unwrap()).expect("answered");
        let mid = audio_mid(&offer).expect("the audio line");
        let link = offered.accept(&answer.to_sdp_string()).expect("the answer is taken");
        (Browser { rtc, mid, received: Vec::new(), connected: false }, link)
    }

    /// The browser and the link, on a simulated clock, with what the link opened so far.
    struct Pair {
        browser: Browser,
        link: WebRtcLink,
        now: Instant,
        from_browser: Vec<Vec<u8>>,
    }

    impl Pair {
        fn new() -> Pair {
            let (browser, link) = browser_and_link();
            Pair { browser, link, now: Instant::now(), from_browser: Vec::new() }
        }

        fn offered() -> Pair {
            let (browser, link) = link_and_answering_browser();
            Pair { browser, link, now: Instant::now(), from_browser: Vec::new() }
        }

        /// Move datagrams both ways, and time forward when none are left, until `until` holds
        /// (or a simulated ten seconds pass).
        fn pump(&mut self, until: impl Fn(&Pair) -> bool) {
            let (client, server): (SocketAddr, SocketAddr) =
                (CLIENT.parse().unwrap(), SERVER.parse().unwrap());
            let deadline = self.now + Duration::from_secs(10);
            while self.now < deadline {
                let mut to_server = Vec::new();
                loop {
                    match self.browser.rtc.poll_output().expect("browser output") {
                        Output::Timeout(_) => break,
                        Output::Transmit(t) => to_server.push(t.contents.to_vec()),
                        Output::Event(Event::Connected) => self.browser.connected = true,
                        Output::Event(Event::RtpPacket(p)) => {
                            self.browser.received.push((*p.header.payload_type, p.payload.to_vec()));
                        }
                        Output::Event(_) => {}
                    }
                }
                let mut out = LinkOutput::default();
                for datagram in &to_server {
                    let received = self.link.receive(self.now, client, datagram, &mut out, || true);
                    assert_eq!(received, Received::Taken, "the link took it");
                }
                self.link.tick(self.now, &mut out);
                for (destination, datagram) in &out.transmits {
                    assert_eq!(*destination, client, "media goes where the ICE checks came from");
                    let receive = Receive::new(Protocol::Udp, server, client, datagram).unwrap();
                    self.browser.rtc.handle_input(Input::Receive(self.now, receive)).expect("browser input");
                }
                self.from_browser.extend(out.packets);
                if to_server.is_empty() && out.transmits.is_empty() {
                    if until(self) {
                        return;
                    }
                    self.now += Duration::from_millis(20);
                    self.browser.rtc.handle_input(Input::Timeout(self.now)).expect("browser timeout");
                }
            }
            panic!("the browser and the link did not get there in time");
        }
    }

    #[test]
    fn a_browser_connects_with_ice_and_dtls_and_media_flows_both_ways_in_srtp() {
        let mut pair = Pair::new();
        pair.pump(|pair| pair.browser.connected && pair.link.is_connected());

        // Ours to the browser: a plain packet in, SRTP on the wire, the same payload out.
        let payload = [0x55u8; 160];
        let mut plain = Vec::new();
        RtpPacket {
            marker: true,
            payload_type: PT_PCMU,
            sequence: 7,
            timestamp: 1600,
            ssrc: 1,
            payload: &payload,
        }
        .write(&mut plain);
        let mut out = LinkOutput::default();
        pair.link.send_rtp(pair.now, &plain, &mut out);
        let sent: Vec<&Vec<u8>> = out.transmits.iter().map(|(_, datagram)| datagram).collect();
        assert!(!sent.is_empty(), "an SRTP datagram");
        assert!(!sent.iter().any(|d| d.windows(160).any(|w| w == payload)), "encrypted on the wire");
        let (client, server): (SocketAddr, SocketAddr) = (CLIENT.parse().unwrap(), SERVER.parse().unwrap());
        for datagram in sent {
            let receive = Receive::new(Protocol::Udp, server, client, datagram).unwrap();
            pair.browser.rtc.handle_input(Input::Receive(pair.now, receive)).unwrap();
        }
        pair.pump(|pair| !pair.browser.received.is_empty());
        assert_eq!(pair.browser.received[0], (PT_PCMU, payload.to_vec()));

        // The browser's to us: a telephone-event (the key 1) comes out decrypted.
        let event = [1u8, 0x0a, 0x00, 0xa0];
        let mid = pair.browser.mid;
        let now = pair.now;
        let mut api = pair.browser.rtc.direct_api();
        let tx = api.stream_tx_by_mid(mid, None).expect("the browser's stream");
        tx.write_rtp(RtpWrite::new(Pt::from(126), SeqNo::from(100), 8000, now, event.to_vec()).marker(true));
        pair.pump(|pair| !pair.from_browser.is_empty());
        let packet = RtpPacket::parse(&pair.from_browser[0]).expect("a plain RTP packet");
        assert_eq!((packet.payload_type, packet.payload), (126, &event[..]));
    }

    #[test]
    fn a_browser_answering_the_platform_s_offer_connects_and_its_media_comes_through() {
        let mut pair = Pair::offered();
        pair.pump(|pair| pair.browser.connected && pair.link.is_connected());
        let payload = [0xd5u8; 160];
        let mid = pair.browser.mid;
        let now = pair.now;
        let mut api = pair.browser.rtc.direct_api();
        let tx = api.stream_tx_by_mid(mid, None).expect("the browser's stream");
        tx.write_rtp(RtpWrite::new(Pt::from(PT_PCMA), SeqNo::from(5), 800, now, payload.to_vec()));
        pair.pump(|pair| !pair.from_browser.is_empty());
        let packet = RtpPacket::parse(&pair.from_browser[0]).expect("a plain RTP packet");
        assert_eq!((packet.payload_type, packet.payload), (PT_PCMA, &payload[..]));
    }

    #[test]
    fn a_garbled_answer_to_the_platform_s_offer_is_refused() {
        let server: SocketAddr = SERVER.parse().unwrap();
        let (offered, _) = WebRtcLink::offer(server, server, &[PT_PCMU], 101).expect("an offer");
        let error = offered.accept("v=0\r\nm=audio 9 RTP/AVP 0\r\n").expect_err("refused");
        assert!(matches!(error, WebRtcError::Answer(_)), "{error}");
    }

    #[test]
    fn a_stranger_s_datagram_is_not_taken() {
        let (_browser, mut link) = browser_and_link();
        let mut out = LinkOutput::default();
        let stranger: SocketAddr = "127.0.0.1:60000".parse().unwrap();
        // An RTP packet, and a STUN binding request without our credentials.
        let mut plain = Vec::new();
        RtpPacket { marker: false, payload_type: 0, sequence: 1, timestamp: 1, ssrc: 9, payload: &[0; 160] }
            .write(&mut plain);
        let mut asked = false;
        let received = link.receive(Instant::now(), stranger, &plain, &mut out, || {
            asked = true;
            true
        });
        assert_eq!(received, Received::NotOurs);
        assert!(!asked, "a stranger's datagram does not count against the peer's cap");
        assert!(out.transmits.is_empty() && out.packets.is_empty());
    }

    #[test]
    fn the_peer_s_datagrams_over_the_cap_are_dropped_unopened() {
        let mut pair = Pair::new();
        pair.pump(|pair| pair.browser.connected && pair.link.is_connected());
        let mid = pair.browser.mid;
        let now = pair.now;
        let mut api = pair.browser.rtc.direct_api();
        let tx = api.stream_tx_by_mid(mid, None).expect("the browser's stream");
        tx.write_rtp(RtpWrite::new(Pt::from(PT_PCMU), SeqNo::from(5), 800, now, vec![0xd5; 160]));
        // The browser's SRTP packet, handed to the link by hand: refused by the cap, then
        // admitted (the same datagram) once the cap allows it. str0m's pacer lets it out on
        // a timeout.
        let mut srtp = None;
        for step in 1..10 {
            loop {
                match pair.browser.rtc.poll_output().expect("output") {
                    Output::Timeout(_) => break,
                    // An RTP header in the clear: version 2, PCMU.
                    Output::Transmit(t) if t.contents[0] >> 6 == 2 && t.contents[1] & 0x7f == PT_PCMU => {
                        srtp = Some(t.contents.to_vec());
                    }
                    _ => {}
                }
            }
            if srtp.is_some() {
                break;
            }
            let later = pair.now + Duration::from_millis(step);
            pair.browser.rtc.handle_input(Input::Timeout(later)).expect("timeout");
        }
        let client: SocketAddr = CLIENT.parse().unwrap();
        let datagram = srtp.expect("the browser's SRTP datagram");
        let mut out = LinkOutput::default();
        assert_eq!(pair.link.receive(pair.now, client, &datagram, &mut out, || false), Received::OverCap);
        assert!(out.packets.is_empty(), "nothing opened over the cap");
        assert_eq!(pair.link.receive(pair.now, client, &datagram, &mut out, || true), Received::Taken);
        assert_eq!(out.packets.len(), 1, "the same datagram opens when admitted: {:?}", out.packets.len());
    }

    #[test]
    fn an_offer_without_audio_or_with_another_codec_is_refused() {
        let local: SocketAddr = SERVER.parse().unwrap();
        assert!(WebRtcLink::answer("v=0\r\n", local, local, PT_PCMU, None).is_err());
        let offer = include_str!("../tests/fixtures/chrome-offer.sdp");
        assert!(matches!(WebRtcLink::answer(offer, local, local, 9, None), Err(WebRtcError::NoAudio)));
    }

    #[test]
    fn sequence_numbers_extend_across_the_wrap() {
        let offer = include_str!("../tests/fixtures/chrome-offer.sdp");
        let local: SocketAddr = SERVER.parse().unwrap();
        let (mut link, answer) = WebRtcLink::answer(offer, local, local, PT_PCMU, Some(126)).expect("answer");
        assert!(answer.contains("a=rtpmap:126 telephone-event/8000"), "{answer}");
        assert!(!answer.contains("opus"), "only the chosen codec is answered: {answer}");
        assert_eq!(link.extend_sequence(65534), 65534);
        assert_eq!(link.extend_sequence(65535), 65535);
        assert_eq!(link.extend_sequence(0), 65536);
        assert_eq!(link.extend_sequence(1), 65537);
    }
}
