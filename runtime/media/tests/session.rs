//! The RTP session against a peer socket on loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use opentact_media::dtmf::send_key;
use opentact_media::g711;
use opentact_media::rtp::RtpPacket;
use opentact_media::session::{PT_PCMU, PlayEnd, RtpPeer, RtpSession};
use tokio::net::UdpSocket;

async fn session_and_peer() -> (RtpSession, UdpSocket) {
    let peer = UdpSocket::bind("127.0.0.1:0").await.expect("peer socket");
    let session = RtpSession::bind(
        "127.0.0.1".parse().expect("ip"),
        40_000..=40_998,
        RtpPeer {
            address: peer.local_addr().expect("addr"),
            codec: PT_PCMU,
            telephone_event: Some(101),
            inband_dtmf: false,
        },
    )
    .await
    .expect("bind");
    assert_eq!(session.local_addr().port() % 2, 0, "RTP takes even ports");
    session.start();
    (session, peer)
}

async fn send_event(peer: &UdpSocket, to: SocketAddr, key: char, timestamp: u32, first_sequence: u16) {
    let mut sequence = first_sequence;
    for event in send_key(key, 800, 160, 10).expect("a DTMF key") {
        let payload = event.to_bytes();
        let packet = RtpPacket {
            marker: sequence == first_sequence,
            payload_type: 101,
            sequence,
            timestamp,
            ssrc: 0x1234,
            payload: &payload,
        };
        let mut datagram = Vec::new();
        packet.write(&mut datagram);
        peer.send_to(&datagram, to).await.expect("send");
        sequence = sequence.wrapping_add(1);
    }
}

#[tokio::test]
async fn telephone_events_become_digits_once_each() {
    let (session, peer) = session_and_peer().await;
    send_event(&peer, session.local_addr(), '1', 8000, 10).await;
    send_event(&peer, session.local_addr(), '#', 16000, 30).await;
    assert_eq!(session.next_digit(Duration::from_secs(2)).await, Some('1'));
    assert_eq!(session.next_digit(Duration::from_secs(2)).await, Some('#'));
    // The repeated end packets did not produce more digits.
    assert_eq!(session.next_digit(Duration::from_millis(200)).await, None);
}

#[tokio::test]
async fn played_audio_arrives_paced_in_20_ms_packets_then_silence() {
    let (session, peer) = session_and_peer().await;
    // 100 ms of a loud square wave: five packets of audio, then silence.
    let samples: Arc<[i16]> = (0..800).map(|i| if (i / 4) % 2 == 0 { 8000 } else { -8000 }).collect();
    let started = tokio::time::Instant::now();
    assert_eq!(session.play(samples, false).await, PlayEnd::Finished);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(80), "paced, not burst: {elapsed:?}");
    let mut buffer = [0u8; 1500];
    let mut loud = 0;
    let mut sequences = Vec::new();
    for _ in 0..12 {
        let (length, _) = tokio::time::timeout(Duration::from_secs(1), peer.recv_from(&mut buffer))
            .await
            .expect("a packet every 20 ms")
            .expect("recv");
        let packet = RtpPacket::parse(&buffer[..length]).expect("RTP");
        assert_eq!(packet.payload_type, PT_PCMU);
        assert_eq!(packet.payload.len(), 160);
        sequences.push(packet.sequence);
        if packet.payload.iter().any(|b| g711::ulaw_decode(*b).abs() > 4000) {
            loud += 1;
        }
    }
    assert_eq!(loud, 5, "the 100 ms of audio, then silence");
    assert!(sequences.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "{sequences:?}");
}

#[tokio::test]
async fn a_digit_interrupts_a_barge_in_play_and_stays_buffered() {
    let (session, peer) = session_and_peer().await;
    let long: Arc<[i16]> = vec![1000i16; 8000 * 10].into();
    let to = session.local_addr();
    let sender = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        send_event(&peer, to, '5', 4000, 1).await;
        peer
    });
    let started = tokio::time::Instant::now();
    assert_eq!(session.play(long, true).await, PlayEnd::Interrupted);
    assert!(started.elapsed() < Duration::from_secs(3), "stopped at the digit");
    assert_eq!(session.next_digit(Duration::ZERO).await, Some('5'));
    let _peer = sender.await.expect("sender");
}

#[tokio::test]
async fn symmetric_rtp_latches_to_where_packets_come_from() {
    let (session, _announced) = session_and_peer().await;
    // The peer is behind NAT: it sends from another port than its SDP said, and keeps sending
    // (audio every 20 ms) past the NAT grace, after which it is latched.
    let natted = UdpSocket::bind("127.0.0.1:0").await.expect("socket");
    let grace = opentact_media::session::DEFAULT_NAT_LATCH_GRACE;
    let started = tokio::time::Instant::now();
    let mut sequence = 0u16;
    while started.elapsed() < grace + Duration::from_millis(200) {
        let packet = RtpPacket {
            marker: false,
            payload_type: PT_PCMU,
            sequence,
            timestamp: u32::from(sequence) * 160,
            ssrc: 0x5678,
            payload: &[0xff; 160],
        };
        let mut datagram = Vec::new();
        packet.write(&mut datagram);
        natted.send_to(&datagram, session.local_addr()).await.expect("send");
        sequence += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    send_event(&natted, session.local_addr(), '9', 100_000, sequence).await;
    assert_eq!(session.next_digit(Duration::from_secs(2)).await, Some('9'));
    assert_eq!(session.remote(), natted.local_addr().expect("addr"));
    let mut buffer = [0u8; 1500];
    let (length, _) = tokio::time::timeout(Duration::from_secs(1), natted.recv_from(&mut buffer))
        .await
        .expect("our packets follow the latch")
        .expect("recv");
    assert!(RtpPacket::parse(&buffer[..length]).is_ok());
}

#[tokio::test]
async fn closing_ends_waiting_plays_and_reads() {
    let (session, _peer) = session_and_peer().await;
    let session = Arc::new(session);
    let reader = {
        let session = session.clone();
        tokio::spawn(async move { session.next_digit(Duration::from_secs(30)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    session.close();
    assert_eq!(reader.await.expect("reader"), None);
    assert_eq!(session.play(vec![0i16; 160].into(), false).await, PlayEnd::Closed);
}

#[tokio::test]
async fn a_sent_digit_is_rfc_4733_events_sharing_one_timestamp_with_the_end_repeated() {
    let (session, peer) = session_and_peer().await;
    assert!(session.send_digit('7'));
    assert!(!session.send_digit('x'), "not a DTMF key");
    let mut buffer = [0u8; 1500];
    let mut events = Vec::new();
    while events.len() < 12 {
        let (length, _) = tokio::time::timeout(Duration::from_secs(1), peer.recv_from(&mut buffer))
            .await
            .expect("packets keep coming")
            .expect("recv");
        let packet = RtpPacket::parse(&buffer[..length]).expect("RTP");
        if packet.payload_type == 101 {
            let event = opentact_media::dtmf::TelephoneEvent::parse(packet.payload).expect("an event");
            events.push((packet.marker, packet.timestamp, event));
        }
    }
    assert!(events.iter().all(|(_, _, e)| e.event == 7));
    assert!(events[0].0, "the first packet of the event carries the marker");
    assert!(events.iter().skip(1).all(|(marker, _, _)| !marker));
    assert!(events.iter().all(|(_, ts, _)| *ts == events[0].1), "one timestamp for the whole event");
    let ends = events.iter().filter(|(_, _, e)| e.end).count();
    assert_eq!(ends, 3, "the end packet is sent three times");
    // Our own receiver hears the key once.
    let mut receiver = opentact_media::dtmf::EventReceiver::new();
    let heard: Vec<char> =
        events.iter().filter_map(|(_, ts, e)| receiver.receive(1, *ts, &e.to_bytes())).collect();
    assert_eq!(heard, vec!['7']);
}
