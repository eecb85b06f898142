//! Any SDP offer: parsing returns a description or an error, never panics; for an offer the
//! platform can negotiate, the answer it renders parses back to the stream it describes.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use opentact_media::sdp::{self, LocalMedia};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(offer) = sdp::parse(text) else { return };
    let _ = offer.audio.is_hold();
    let Ok(negotiated) = sdp::negotiate(&offer.audio) else { return };
    let local = LocalMedia {
        session_id: 1,
        version: 2,
        address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
        port: 20_000,
        codecs: vec![negotiated.codec],
        telephone_event: negotiated.telephone_event,
        direction: offer.audio.direction.answer(),
        // The crypto lines an attacker wrote are parsed too; an usable one is answered in kind.
        crypto: opentact_media::srtp::choose(&offer.audio.crypto)
            .ok()
            .and_then(|remote| opentact_media::srtp::answer(&remote).ok())
            .map(|key| key.attribute()),
    };
    let answer = local.render(&offer.media_kinds, offer.audio_index);
    let parsed = sdp::parse(&answer).expect("the platform's own answer parses");
    assert_eq!(parsed.audio.port, local.port, "answer:\n{answer}");
    assert_eq!(parsed.audio.address, local.address, "answer:\n{answer}");
    assert_eq!(parsed.audio.telephone_event, local.telephone_event, "answer:\n{answer}");
    assert_eq!(parsed.audio.direction, local.direction, "answer:\n{answer}");
});
