//! An RTP session on a hostile network: injection from third addresses, floods, guessable
//! ports, recordings grown by a flood, and under SRTP forged, replayed and plain packets. Real sockets on loopback (127.0.0.0/8: 127.0.0.2 is
//! "another host").

use std::net::SocketAddr;
use std::time::Duration;

use opentact_media::dtmf::send_key;
use opentact_media::recorder::WavRecorder;
use opentact_media::rtp::RtpPacket;
use opentact_media::session::{
    PT_PCMU, RtpLimits, RtpPeer, RtpSession, TAP_QUEUE_PACKETS, TAP_SLACK_SAMPLES,
};
use opentact_media::srtp::{CryptoSuite, SdesKey, SrtpContexts};
use opentact_media::{SAMPLE_RATE, SAMPLES_PER_FRAME};
use tokio::net::UdpSocket;

const RANGE: std::ops::RangeInclusive<u16> = 42_000..=42_998;

fn peer(address: SocketAddr) -> RtpPeer {
    RtpPeer { address, codec: PT_PCMU, telephone_event: Some(101), inband_dtmf: false }
}

async fn session(announced: SocketAddr, limits: RtpLimits) -> RtpSession {
    let session = RtpSession::bind_with("127.0.0.1".parse().expect("ip"), RANGE, peer(announced), limits)
        .await
        .expect("bind");
    session.start();
    session
}

async fn socket(ip: &str) -> UdpSocket {
    UdpSocket::bind((ip, 0)).await.expect("socket")
}

fn datagram(payload_type: u8, sequence: u16, timestamp: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    RtpPacket { marker: false, payload_type, sequence, timestamp, ssrc, payload }.write(&mut bytes);
    bytes
}

/// One DTMF key as RFC 4733 events (updates, then the end three times).
async fn send_event(from: &UdpSocket, to: SocketAddr, key: char, timestamp: u32, ssrc: u32) {
    for (index, event) in send_key(key, 800, 160, 10).expect("a key").into_iter().enumerate() {
        let bytes = datagram(101, index as u16, timestamp, ssrc, &event.to_bytes());
        from.send_to(&bytes, to).await.expect("send");
    }
}

/// Packets one [`send_event`] sends.
fn packets_per_key() -> u64 {
    send_key('1', 800, 160, 10).expect("a key").len() as u64
}

/// 20 ms of PCMU silence.
async fn send_audio(from: &UdpSocket, to: SocketAddr, sequence: u16) {
    let bytes = datagram(PT_PCMU, sequence, u32::from(sequence) * 160, 0xa0d10, &[0xff; SAMPLES_PER_FRAME]);
    from.send_to(&bytes, to).await.expect("send");
}

/// Wait until the session has read `count` packets (they are handled in order as read).
async fn read_all(session: &RtpSession, count: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while session.stats().packets_received < count {
        assert!(tokio::time::Instant::now() < deadline, "read only {:?}", session.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_third_address_before_the_peer_speaks_injects_no_digit_and_does_not_take_the_stream() {
    let caller = socket("127.0.0.1").await;
    let session = session(caller.local_addr().expect("addr"), RtpLimits::default()).await;
    // The attacker sprays first, from the peer's own IP on another port (loopback: every
    // party shares the IP) and from another host.
    let same_host = socket("127.0.0.1").await;
    let other_host = socket("127.0.0.2").await;
    send_event(&same_host, session.local_addr(), '9', 1000, 0xbad).await;
    send_event(&other_host, session.local_addr(), '8', 2000, 0xbad).await;
    // Then the caller, from where its SDP says.
    send_audio(&caller, session.local_addr(), 1).await;
    send_event(&caller, session.local_addr(), '1', 3000, 0xca11).await;
    assert_eq!(session.next_digit(Duration::from_secs(2)).await, Some('1'));
    assert_eq!(session.next_digit(Duration::from_millis(200)).await, None, "only the caller's key");
    let stats = session.stats();
    assert_eq!(stats.latched, Some(caller.local_addr().expect("addr")), "{stats:?}");
    assert_eq!(session.remote(), caller.local_addr().expect("addr"), "our audio goes to the caller");
    assert_eq!(stats.dropped_source, 2 * packets_per_key(), "both sprays, counted: {stats:?}");
}

#[tokio::test]
async fn after_latching_only_the_latched_address_is_heard_even_past_the_nat_grace() {
    let caller = socket("127.0.0.1").await;
    let limits = RtpLimits { nat_latch_grace: Duration::from_millis(100), ..RtpLimits::default() };
    let session = session(caller.local_addr().expect("addr"), limits).await;
    send_audio(&caller, session.local_addr(), 1).await;
    read_all(&session, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let attacker = socket("127.0.0.1").await;
    send_event(&attacker, session.local_addr(), '9', 1000, 0xbad).await;
    send_event(&caller, session.local_addr(), '4', 2000, 0xca11).await;
    assert_eq!(session.next_digit(Duration::from_secs(2)).await, Some('4'));
    assert_eq!(session.next_digit(Duration::from_millis(200)).await, None, "no '9' from the attacker");
    assert_eq!(session.stats().dropped_source, packets_per_key(), "{:?}", session.stats());
    assert_eq!(session.remote(), caller.local_addr().expect("addr"));
}

#[tokio::test]
async fn another_host_is_never_latched_however_long_the_peer_is_silent() {
    let silent = socket("127.0.0.1").await;
    let limits = RtpLimits { nat_latch_grace: Duration::from_millis(50), ..RtpLimits::default() };
    let session = session(silent.local_addr().expect("addr"), limits).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let attacker = socket("127.0.0.2").await;
    for round in 0..5u32 {
        send_event(&attacker, session.local_addr(), '9', 1000 * round, 0xbad).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(session.next_digit(Duration::from_millis(300)).await, None);
    let stats = session.stats();
    assert_eq!((stats.latched, stats.dropped_source), (None, 5 * packets_per_key()), "{stats:?}");
    assert_eq!(session.remote(), silent.local_addr().expect("addr"), "still sending where the SDP says");
}

#[tokio::test]
async fn a_natted_peer_is_latched_from_its_signalling_ip_after_the_grace_and_not_before() {
    // The SDP names a private address nobody sends from; the INVITE came from 127.0.0.3.
    let limits = RtpLimits { nat_latch_grace: Duration::from_millis(300), ..RtpLimits::default() };
    let session = session("127.0.0.9:4000".parse().expect("addr"), limits).await;
    session.set_signalling_address("127.0.0.3".parse().expect("ip"));
    let natted = socket("127.0.0.3").await;
    let stranger = socket("127.0.0.2").await;
    // Within the grace the NAT'd peer's key is not taken (nor anyone's).
    send_event(&natted, session.local_addr(), '5', 1000, 0xca11).await;
    assert_eq!(session.next_digit(Duration::from_millis(100)).await, None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    send_event(&stranger, session.local_addr(), '9', 1000, 0xbad).await;
    send_event(&natted, session.local_addr(), '6', 2000, 0xca11).await;
    assert_eq!(session.next_digit(Duration::from_secs(2)).await, Some('6'));
    assert_eq!(session.next_digit(Duration::from_millis(200)).await, None);
    assert_eq!(session.stats().latched, Some(natted.local_addr().expect("addr")));
    assert_eq!(session.remote(), natted.local_addr().expect("addr"));
    let mut buffer = [0u8; 1500];
    tokio::time::timeout(Duration::from_secs(1), natted.recv_from(&mut buffer))
        .await
        .expect("our packets follow the latch")
        .expect("recv");
}

#[tokio::test]
async fn without_symmetric_rtp_only_the_exact_sdp_address_is_latched() {
    let limits = RtpLimits { symmetric_rtp: false, nat_latch_grace: Duration::ZERO, ..RtpLimits::default() };
    let announced = socket("127.0.0.1").await;
    let session = session(announced.local_addr().expect("addr"), limits).await;
    let other_port = socket("127.0.0.1").await;
    send_event(&other_port, session.local_addr(), '9', 1000, 0xbad).await;
    assert_eq!(session.next_digit(Duration::from_millis(300)).await, None);
    assert_eq!(session.stats().latched, None);
}

#[tokio::test]
async fn packets_over_the_per_second_cap_are_dropped_before_decoding() {
    let caller = socket("127.0.0.1").await;
    let limits = RtpLimits { max_packets_per_second: 50, ..RtpLimits::default() };
    let session = session(caller.local_addr().expect("addr"), limits).await;
    let to = session.local_addr();
    // 300 key presses at once, each a new event (its own timestamp): each would be a digit.
    for press in 0..300u32 {
        let event = send_key('7', 800, 800, 10).expect("a key")[0];
        let bytes = datagram(101, press as u16, press * 1000, 0xca11, &event.to_bytes());
        caller.send_to(&bytes, to).await.expect("send");
    }
    read_all(&session, 300).await;
    let stats = session.stats();
    // However the burst straddles the one-second windows, at most two windows' worth passed.
    assert!(stats.digits_received <= 100, "{stats:?}");
    assert_eq!(stats.dropped_rate + stats.digits_received, 300, "{stats:?}");
    // A second later the peer is heard again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    while session.next_digit(Duration::ZERO).await.is_some() {}
    send_event(&caller, to, '2', 1_000_000, 0xca11).await;
    assert_eq!(session.next_digit(Duration::from_secs(2)).await, Some('2'));
}

#[tokio::test]
async fn ports_are_drawn_at_random_even_and_within_the_range() {
    let announced: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let range = 44_000..=44_998;
    let mut sessions = Vec::new();
    for _ in 0..20 {
        let session = RtpSession::bind_with(
            "127.0.0.1".parse().expect("ip"),
            range.clone(),
            peer(announced),
            RtpLimits::default(),
        )
        .await
        .expect("bind");
        sessions.push(session);
    }
    let ports: Vec<u16> = sessions.iter().map(|s| s.local_addr().port()).collect();
    assert!(ports.iter().all(|p| p % 2 == 0 && range.contains(p)), "{ports:?}");
    let steps: Vec<i32> = ports.windows(2).map(|w| i32::from(w[1]) - i32::from(w[0])).collect();
    assert!(steps.windows(2).any(|w| w[0] != w[1]), "an arithmetic progression: {ports:?}");
    // A counter (even shared with other tests binding at the same time) steps by 2 nearly
    // always; 500 slots drawn at random almost never do.
    let by_two = steps.iter().filter(|step| **step == 2).count();
    assert!(by_two < 5, "predictable ports: {ports:?}");
}

#[tokio::test]
async fn a_flood_does_not_record_more_than_real_time() {
    let caller = socket("127.0.0.1").await;
    let session = session(caller.local_addr().expect("addr"), RtpLimits::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut recorder = WavRecorder::create(&dir.path().join("flood.wav")).expect("recorder");
    let mut tap = session.tap();
    let opened = tokio::time::Instant::now();
    // Ten seconds of audio in one: 500 packets, 50 every 100 ms.
    let to = session.local_addr();
    let flood = tokio::spawn(async move {
        for burst in 0..10u16 {
            for packet in 0..50u16 {
                send_audio(&caller, to, burst * 50 + packet).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        caller
    });
    let _caller = flood.await.expect("flood");
    read_all(&session, 500).await;
    let elapsed = opened.elapsed();
    while let Ok(samples) = tap.try_recv() {
        recorder.write(&samples).expect("write");
    }
    let recorded = recorder.duration_ms();
    let allowed = elapsed.as_millis() as u64 + TAP_SLACK_SAMPLES * 1000 / u64::from(SAMPLE_RATE);
    assert!(recorded <= allowed, "{recorded} ms recorded in {elapsed:?}");
    assert!(recorded >= 500, "the flood's first real-time worth is kept: {recorded} ms");
    let stats = session.stats();
    assert!(stats.tap_samples_dropped > 0 && stats.dropped_rate > 0, "{stats:?}");
    assert!(recorder.finish().expect("finish") <= allowed);
}

#[tokio::test]
async fn a_stalled_tap_holds_a_bounded_queue() {
    let caller = socket("127.0.0.1").await;
    // No rate cap in the way: the pacing's slack (500 ms = 4 000 samples) admits 500 packets of
    // 8 samples at once — far more than a tap's queue may hold.
    let limits = RtpLimits { max_packets_per_second: 100_000, ..RtpLimits::default() };
    let session = session(caller.local_addr().expect("addr"), limits).await;
    let tap = session.tap();
    let to = session.local_addr();
    for sequence in 0..600u16 {
        let bytes = datagram(PT_PCMU, sequence, u32::from(sequence) * 8, 0xa0d10, &[0xff; 8]);
        caller.send_to(&bytes, to).await.expect("send");
    }
    read_all(&session, 600).await;
    // Nobody reads the tap (a stalled recording writer): its queue stops at its bound.
    assert_eq!(tap.len(), TAP_QUEUE_PACKETS, "{:?}", session.stats());
    let stats = session.stats();
    assert!(stats.tap_packets_overflowed >= 300, "{stats:?}");
    assert_eq!(stats.dropped_rate, 0, "{stats:?}");
}

/// Keys for the platform's side and the phone's, and the phone's contexts (it protects with its
/// key and opens with the platform's).
fn srtp_pair() -> (SdesKey, SdesKey, SrtpContexts) {
    let platform = SdesKey::generate(1, CryptoSuite::AesCm128HmacSha1_80).expect("random");
    let phone = SdesKey::generate(1, CryptoSuite::AesCm128HmacSha1_80).expect("random");
    let contexts = SrtpContexts::new(&phone, &platform).expect("contexts");
    (platform, phone, contexts)
}

/// One DTMF key's RFC 4733 packets as SRTP under `contexts`.
fn protected_event(
    key: char,
    timestamp: u32,
    contexts: &mut SrtpContexts,
    first_sequence: u16,
) -> Vec<Vec<u8>> {
    send_key(key, 800, 160, 10)
        .expect("a key")
        .into_iter()
        .enumerate()
        .map(|(index, event)| {
            let plain = datagram(101, first_sequence + index as u16, timestamp, 0x5ec, &event.to_bytes());
            contexts.protect(&plain).expect("protect")
        })
        .collect()
}

async fn send_all(from: &UdpSocket, to: SocketAddr, packets: &[Vec<u8>]) {
    for packet in packets {
        from.send_to(packet, to).await.expect("send");
    }
}

#[tokio::test]
async fn srtp_takes_only_packets_under_the_peers_key_never_forged_replayed_or_plain_ones() {
    let phone = socket("127.0.0.1").await;
    let session = session(phone.local_addr().expect("addr"), RtpLimits::default()).await;
    let (platform_key, phone_key, mut phone_contexts) = srtp_pair();
    session.set_srtp(&platform_key, &phone_key).expect("srtp");
    assert!(session.is_srtp());
    // A forger who can send from the phone's exact address, in plain RTP, gets nothing in.
    send_event(&phone, session.local_addr(), '9', 1000, 0xbad).await;
    let genuine = protected_event('1', 2000, &mut phone_contexts, 1);
    send_all(&phone, session.local_addr(), &genuine).await;
    assert_eq!(session.next_digit(Duration::from_secs(2)).await, Some('1'));
    // A replay of the genuine key, and another key under the right SSRC with a flipped bit.
    send_all(&phone, session.local_addr(), &genuine).await;
    let mut tampered = protected_event('7', 3000, &mut phone_contexts, 100);
    for packet in &mut tampered {
        packet[14] ^= 0x40;
    }
    send_all(&phone, session.local_addr(), &tampered).await;
    read_all(&session, 4 * packets_per_key()).await;
    assert_eq!(session.next_digit(Duration::from_millis(300)).await, None, "only the genuine key");
    let stats = session.stats();
    assert_eq!(stats.dropped_auth, 3 * packets_per_key(), "plain, replayed and tampered: {stats:?}");
    // What the platform sends the phone is SRTP under the platform's key.
    let mut buffer = [0u8; 1500];
    let (length, _) = tokio::time::timeout(Duration::from_secs(1), phone.recv_from(&mut buffer))
        .await
        .expect("our packets arrive")
        .expect("recv");
    let opened = phone_contexts.unprotect(&buffer[..length]).expect("the phone opens the platform's packets");
    let packet = RtpPacket::parse(&opened).expect("RTP inside");
    assert_eq!(packet.payload_type, PT_PCMU);
    assert_ne!(&buffer[12..12 + SAMPLES_PER_FRAME], packet.payload, "the audio is not in clear on the wire");
}

#[tokio::test]
async fn under_srtp_only_an_authenticated_packet_latches_a_natted_source() {
    let limits = RtpLimits { nat_latch_grace: Duration::from_millis(50), ..RtpLimits::default() };
    let session = session("127.0.0.9:4000".parse().expect("addr"), limits).await;
    session.set_signalling_address("127.0.0.3".parse().expect("ip"));
    let (platform_key, phone_key, mut phone_contexts) = srtp_pair();
    session.set_srtp(&platform_key, &phone_key).expect("srtp");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Past the grace, a forger on the phone's host (its NAT) speaks first: it latches nothing.
    let forger = socket("127.0.0.3").await;
    send_event(&forger, session.local_addr(), '9', 1000, 0xbad).await;
    read_all(&session, packets_per_key()).await;
    assert_eq!(session.stats().latched, None, "{:?}", session.stats());
    let natted = socket("127.0.0.3").await;
    send_all(&natted, session.local_addr(), &protected_event('6', 2000, &mut phone_contexts, 1)).await;
    assert_eq!(session.next_digit(Duration::from_secs(2)).await, Some('6'));
    assert_eq!(session.stats().latched, Some(natted.local_addr().expect("addr")));
    assert_eq!(session.remote(), natted.local_addr().expect("addr"), "our audio follows the phone");
}
