//! Any datagram: RTP parsing (RFC 3550, CSRCs, extension, padding) and the RFC 4733
//! telephone-event payload and receiver return a value or an error, never panic; a parsed
//! packet written back out parses to the same fields. (The platform does not parse RTCP: the
//! media session ignores its port.)
#![no_main]

use opentact_media::dtmf::{EventReceiver, TelephoneEvent};
use opentact_media::rtp::RtpPacket;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(packet) = RtpPacket::parse(data) else { return };
    let mut written = Vec::new();
    packet.write(&mut written);
    assert_eq!(RtpPacket::parse(&written), Ok(packet), "a written packet parses back");
    if let Ok(event) = TelephoneEvent::parse(packet.payload) {
        assert_eq!(TelephoneEvent::parse(&event.to_bytes()).map(|e| e.event), Ok(event.event));
    }
    let _ = EventReceiver::new().receive(packet.ssrc, packet.timestamp, packet.payload);
});
