//! One call's RTP stream: a UDP socket, 20 ms paced sending, DTMF receiving, symmetric RTP.
//!
//! Sending never stops while the session lives: when nothing plays, silence goes out, so NAT
//! bindings stay open and the peer's jitter buffer stays primed. Received audio is decoded only
//! when someone listens (in-band DTMF detection or a recording tap).

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use crate::dtmf::{EventReceiver, TelephoneEvent, send_key};
use crate::goertzel::InbandDetector;
use crate::rtp::RtpPacket;
use crate::{SAMPLES_PER_FRAME, g711};
use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// PCMU's payload type.
pub const PT_PCMU: u8 = 0;
/// PCMA's payload type.
pub const PT_PCMA: u8 = 8;

/// Largest RTP datagram read.
const MAX_DATAGRAM: usize = 1500;
/// A sent DTMF key lasts 200 ms (in 8 kHz timestamp units).
const DIGIT_DURATION: u16 = 1600;
/// Sent DTMF level: -10 dBm0.
const DIGIT_VOLUME: u8 = 10;
/// Most fed (bridged) audio held back, samples: 100 ms.
const FEED_MAX_SAMPLES: usize = 800;
/// Digits kept for a later gather before the oldest are dropped.
const MAX_BUFFERED_DIGITS: usize = 64;

/// The next port to try, shared by every session so consecutive calls don't probe the same
/// ports over and over.
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// How a [`RtpSession::play`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayEnd {
    /// All of it was sent.
    Finished,
    /// A digit arrived (barge-in); it stays buffered.
    Interrupted,
    /// The session closed.
    Closed,
}

/// What the session was told about the peer.
#[derive(Debug, Clone, Copy)]
pub struct RtpPeer {
    /// Where the SDP says to send.
    pub address: SocketAddr,
    /// PCMU or PCMA.
    pub codec: u8,
    /// The negotiated telephone-event payload type.
    pub telephone_event: Option<u8>,
    /// Also listen for DTMF tones in the audio (carriers that send tones, not events).
    pub inband_dtmf: bool,
}

/// Counters, for tests and stats.
#[derive(Debug, Default)]
pub struct RtpCounters {
    pub packets_sent: AtomicU64,
    pub packets_received: AtomicU64,
    pub digits_received: AtomicU64,
}

struct Playing {
    samples: Arc<[i16]>,
    position: usize,
    done: Option<oneshot::Sender<()>>,
}

struct Shared {
    /// Receives (registered with the runtime that bound it).
    socket: UdpSocket,
    /// Sends, from the media clock's threads: the same socket, non-blocking.
    send_socket: std::net::UdpSocket,
    peer: Mutex<RtpPeer>,
    /// Set once a packet came from the peer: from then on we send where it comes from
    /// (symmetric RTP, so callers behind NAT hear us).
    latched: AtomicBool,
    playing: Mutex<Option<Playing>>,
    digits: Mutex<VecDeque<char>>,
    digit_arrived: Notify,
    /// Listeners of the caller's audio (recordings, a bridge); a dropped receiver unsubscribes.
    taps: Mutex<Vec<mpsc::UnboundedSender<Vec<i16>>>>,
    /// Audio to send when nothing plays: the other leg of a bridge.
    feed: Mutex<Option<mpsc::UnboundedReceiver<Vec<i16>>>>,
    /// RFC 4733 payloads waiting to go out, one per tick, instead of audio.
    events: Mutex<VecDeque<TelephoneEvent>>,
    /// Audio looped when nothing plays and nothing is fed (hold music), and the position in it.
    background: Mutex<Option<(Arc<[i16]>, usize)>>,
    closed: AtomicBool,
    closed_notify: Notify,
    counters: RtpCounters,
}

/// A call's RTP stream.
pub struct RtpSession {
    shared: Arc<Shared>,
    local: SocketAddr,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for RtpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtpSession").field("local", &self.local).finish_non_exhaustive()
    }
}

impl RtpSession {
    /// Bind a socket on `ip` at an even port of `ports` (RTP takes even ports, RFC 3550 §11).
    pub async fn bind(ip: IpAddr, ports: RangeInclusive<u16>, peer: RtpPeer) -> io::Result<RtpSession> {
        let (low, high) = (*ports.start() & !1, *ports.end());
        if low == 0 || high < low {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad RTP port range {low}-{high}"),
            ));
        }
        let slots = u32::from((high - low) / 2 + 1);
        let start = u32::from(NEXT_PORT.fetch_add(1, Ordering::Relaxed)) % slots;
        let mut last_error = None;
        for attempt in 0..slots {
            let port = low + (((start + attempt) % slots) * 2) as u16;
            match std::net::UdpSocket::bind(SocketAddr::new(ip, port)) {
                Ok(socket) => {
                    NEXT_PORT.store(((start + attempt + 1) % slots) as u16, Ordering::Relaxed);
                    socket.set_nonblocking(true)?;
                    let local = socket.local_addr()?;
                    let send_socket = socket.try_clone()?;
                    return Ok(Self::new(UdpSocket::from_std(socket)?, send_socket, local, peer));
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no free RTP port")))
    }

    fn new(
        socket: UdpSocket,
        send_socket: std::net::UdpSocket,
        local: SocketAddr,
        peer: RtpPeer,
    ) -> RtpSession {
        let shared = Arc::new(Shared {
            socket,
            send_socket,
            peer: Mutex::new(peer),
            latched: AtomicBool::new(false),
            playing: Mutex::new(None),
            digits: Mutex::new(VecDeque::new()),
            digit_arrived: Notify::new(),
            taps: Mutex::new(Vec::new()),
            feed: Mutex::new(None),
            background: Mutex::new(None),
            events: Mutex::new(VecDeque::new()),
            closed: AtomicBool::new(false),
            closed_notify: Notify::new(),
            counters: RtpCounters::default(),
        });
        RtpSession { shared, local, tasks: Mutex::new(Vec::new()) }
    }

    /// The local address, for the SDP.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Start sending and receiving.
    pub fn start(&self) {
        let mut tasks = self.tasks.lock();
        if !tasks.is_empty() {
            return;
        }
        tasks.push(tokio::spawn(receive_loop(self.shared.clone())));
        crate::media_clock::add(Sender::new(self.shared.clone()));
    }

    /// A re-offer moved the peer.
    pub fn update_peer(&self, address: SocketAddr) {
        self.shared.peer.lock().address = address;
        self.shared.latched.store(false, Ordering::Relaxed);
    }

    /// Where packets go now.
    pub fn remote(&self) -> SocketAddr {
        self.shared.peer.lock().address
    }

    /// Counters.
    pub fn counters(&self) -> &RtpCounters {
        &self.shared.counters
    }

    /// Play samples to the end, or until a digit arrives when `barge_in` (a digit already
    /// buffered interrupts at once: the caller typed ahead).
    pub async fn play(&self, samples: Arc<[i16]>, barge_in: bool) -> PlayEnd {
        if barge_in && !self.shared.digits.lock().is_empty() {
            return PlayEnd::Interrupted;
        }
        let (done_tx, done_rx) = oneshot::channel();
        // Replacing a previous source ends its play() with Closed (its sender drops).
        *self.shared.playing.lock() = Some(Playing { samples, position: 0, done: Some(done_tx) });
        let digit = async {
            loop {
                let arrived = self.shared.digit_arrived.notified();
                if !self.shared.digits.lock().is_empty() {
                    return;
                }
                arrived.await;
            }
        };
        let closed = self.closed();
        let end = tokio::select! {
            result = done_rx => if result.is_ok() { PlayEnd::Finished } else { PlayEnd::Closed },
            () = digit, if barge_in => PlayEnd::Interrupted,
            () = closed => PlayEnd::Closed,
        };
        if end != PlayEnd::Finished {
            self.stop_playing();
        }
        end
    }

    /// Stop what is playing.
    pub fn stop_playing(&self) {
        self.shared.playing.lock().take();
    }

    /// The next digit: one already buffered, or the first to arrive within `timeout`.
    pub async fn next_digit(&self, timeout: Duration) -> Option<char> {
        let deadline = Instant::now() + timeout;
        loop {
            let arrived = self.shared.digit_arrived.notified();
            if let Some(digit) = self.shared.digits.lock().pop_front() {
                return Some(digit);
            }
            if self.shared.closed.load(Ordering::Acquire) {
                return None;
            }
            tokio::select! {
                () = arrived => {}
                () = tokio::time::sleep_until(deadline) => return self.shared.digits.lock().pop_front(),
                () = self.closed() => return None,
            }
        }
    }

    /// Resolves `true` once a digit is buffered (without taking it), `false` if the session
    /// closes first.
    pub async fn digit_buffered(&self) -> bool {
        loop {
            let arrived = self.shared.digit_arrived.notified();
            if !self.shared.digits.lock().is_empty() {
                return true;
            }
            if self.shared.closed.load(Ordering::Acquire) {
                return false;
            }
            tokio::select! {
                () = arrived => {}
                () = self.closed() => return false,
            }
        }
    }

    /// Take the buffered digit if it is `key`.
    pub fn take_digit_if(&self, key: char) -> bool {
        let mut digits = self.shared.digits.lock();
        if digits.front() == Some(&key) {
            digits.pop_front();
            true
        } else {
            false
        }
    }

    /// Receive the peer's audio (8 kHz PCM, one Vec per packet) until the receiver is dropped.
    pub fn tap(&self) -> mpsc::UnboundedReceiver<Vec<i16>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.shared.taps.lock().push(tx);
        rx
    }

    /// Send this audio whenever nothing plays (a bridge: the other leg's tap), until
    /// [`RtpSession::stop_feed`].
    pub fn feed(&self, audio: mpsc::UnboundedReceiver<Vec<i16>>) {
        *self.shared.feed.lock() = Some(audio);
    }

    /// Stop sending the fed audio.
    pub fn stop_feed(&self) {
        self.shared.feed.lock().take();
    }

    /// Send a DTMF key: as RFC 4733 events when the peer negotiated them (200 ms, end packet
    /// sent three times), else as its two tones in the audio.
    pub fn send_digit(&self, key: char) -> bool {
        let telephone_event = self.shared.peer.lock().telephone_event;
        if telephone_event.is_some() {
            match send_key(key, DIGIT_DURATION, SAMPLES_PER_FRAME as u16, DIGIT_VOLUME) {
                Some(packets) => {
                    self.shared.events.lock().extend(packets);
                    true
                }
                None => false,
            }
        } else {
            match crate::tone::dtmf_tone(key, 100) {
                Some(samples) => {
                    *self.shared.playing.lock() =
                        Some(Playing { samples: samples.into(), position: 0, done: None });
                    true
                }
                None => false,
            }
        }
    }

    /// Loop `audio` whenever nothing plays or is fed (hold music); `None` stops it.
    pub fn set_background(&self, audio: Option<Arc<[i16]>>) {
        *self.shared.background.lock() = audio.filter(|a| !a.is_empty()).map(|audio| (audio, 0));
    }

    /// Set the peer once its answer is known (an outbound leg binds before it has one).
    pub fn set_peer(&self, peer: RtpPeer) {
        *self.shared.peer.lock() = peer;
        self.shared.latched.store(false, Ordering::Relaxed);
    }

    /// Resolves when the session is closed.
    pub async fn closed(&self) {
        loop {
            let notified = self.shared.closed_notify.notified();
            if self.shared.closed.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// Stop sending and receiving; waiting plays and digit reads end.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.closed_notify.notify_waiters();
        self.shared.playing.lock().take();
        self.shared.taps.lock().clear();
        self.shared.feed.lock().take();
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
    }
}

impl Drop for RtpSession {
    fn drop(&mut self) {
        self.close();
    }
}

/// One session's sending state, ticked every 20 ms by the media clock: the playing source's
/// next frame, a DTMF event, bridged audio, hold music, or silence.
pub(crate) struct Sender {
    shared: Arc<Shared>,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    frame: [i16; SAMPLES_PER_FRAME],
    payload: [u8; SAMPLES_PER_FRAME],
    datagram: Vec<u8>,
    marker: bool,
    /// Fed audio arrives in the peer's packet sizes and timing: a small FIFO re-frames it into
    /// our 20 ms packets and bounds the delay (oldest samples are dropped past it).
    fifo: VecDeque<i16>,
    /// The RTP timestamp all packets of the event being sent carry (its start), RFC 4733 §2.5.1.
    event_timestamp: Option<u32>,
}

impl Sender {
    fn new(shared: Arc<Shared>) -> Self {
        Sender {
            shared,
            ssrc: rand_u32(),
            sequence: rand_u32() as u16,
            timestamp: rand_u32(),
            frame: [0; SAMPLES_PER_FRAME],
            payload: [0; SAMPLES_PER_FRAME],
            datagram: Vec::with_capacity(12 + SAMPLES_PER_FRAME),
            marker: true,
            fifo: VecDeque::with_capacity(FEED_MAX_SAMPLES),
            event_timestamp: None,
        }
    }

    /// Whether the session is over (the clock then forgets it).
    pub(crate) fn closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    fn send(&self, destination: SocketAddr) {
        if destination.port() == 0 || destination.ip().is_unspecified() {
            return;
        }
        // Non-blocking: a full socket buffer or an unreachable peer loses this packet, never
        // the pacing of the others.
        if self.shared.send_socket.send_to(&self.datagram, destination).is_ok() {
            self.shared.counters.packets_sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Send this tick's packet.
    pub(crate) fn tick(&mut self) {
        let shared = self.shared.clone();
        let event = shared.events.lock().pop_front();
        if let Some(event) = event {
            let (destination, payload_type) = {
                let peer = shared.peer.lock();
                (peer.address, peer.telephone_event)
            };
            if let Some(payload_type) = payload_type {
                let start = *self.event_timestamp.get_or_insert(self.timestamp);
                let bytes = event.to_bytes();
                let packet = RtpPacket {
                    marker: event.duration as usize <= SAMPLES_PER_FRAME && !event.end,
                    payload_type,
                    sequence: self.sequence,
                    timestamp: start,
                    ssrc: self.ssrc,
                    payload: &bytes,
                };
                self.datagram.clear();
                packet.write(&mut self.datagram);
                self.send(destination);
                self.sequence = self.sequence.wrapping_add(1);
                if event.end && shared.events.lock().front().is_none_or(|next| !next.end) {
                    self.event_timestamp = None;
                }
                // The media clock goes on while the event plays.
                self.timestamp = self.timestamp.wrapping_add(SAMPLES_PER_FRAME as u32);
                return;
            }
        }
        let finished = self.next_frame();
        let (destination, codec) = {
            let peer = shared.peer.lock();
            (peer.address, peer.codec)
        };
        for (byte, sample) in self.payload.iter_mut().zip(self.frame.iter()) {
            *byte = if codec == PT_PCMA { g711::alaw_encode(*sample) } else { g711::ulaw_encode(*sample) };
        }
        let packet = RtpPacket {
            marker: self.marker,
            payload_type: codec,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
            payload: &self.payload,
        };
        self.marker = false;
        self.datagram.clear();
        packet.write(&mut self.datagram);
        self.send(destination);
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(SAMPLES_PER_FRAME as u32);
        if let Some(done) = finished {
            // The last frame is on the wire: the play is over.
            let _ = done.send(());
        }
    }

    /// Fill `frame`; returns the play's completion when its last frame was taken.
    fn next_frame(&mut self) -> Option<oneshot::Sender<()>> {
        let shared = &self.shared;
        let mut playing = shared.playing.lock();
        if let Some(source) = playing.as_mut() {
            let available = source.samples.len() - source.position;
            let taken = available.min(SAMPLES_PER_FRAME);
            self.frame[..taken].copy_from_slice(&source.samples[source.position..source.position + taken]);
            self.frame[taken..].fill(0);
            source.position += taken;
            return if source.position >= source.samples.len() {
                playing.take().and_then(|mut source| source.done.take())
            } else {
                None
            };
        }
        drop(playing);
        let mut feed = shared.feed.lock();
        if let Some(audio) = feed.as_mut() {
            while let Ok(chunk) = audio.try_recv() {
                self.fifo.extend(chunk);
            }
            while self.fifo.len() > FEED_MAX_SAMPLES {
                self.fifo.pop_front();
            }
            for slot in self.frame.iter_mut() {
                *slot = self.fifo.pop_front().unwrap_or(0);
            }
            return None;
        }
        drop(feed);
        self.fifo.clear();
        let mut background = shared.background.lock();
        match background.as_mut() {
            Some((audio, position)) => {
                for slot in self.frame.iter_mut() {
                    *slot = audio[*position];
                    *position = (*position + 1) % audio.len();
                }
            }
            None => self.frame.fill(0),
        }
        None
    }
}

/// Reads packets: latches the peer's address, turns telephone-events into digits, feeds the
/// in-band detector and the recording tap.
async fn receive_loop(shared: Arc<Shared>) {
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    let mut events = EventReceiver::new();
    let mut inband = InbandDetector::new();
    loop {
        let (length, source) = match shared.socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            // ICMP port unreachable surfaces here on some systems; keep reading.
            Err(_) => continue,
        };
        let Ok(packet) = RtpPacket::parse(&buffer[..length]) else { continue };
        shared.counters.packets_received.fetch_add(1, Ordering::Relaxed);
        let peer = {
            let mut peer = shared.peer.lock();
            if !shared.latched.swap(true, Ordering::Relaxed) && peer.address != source {
                peer.address = source;
            }
            *peer
        };
        let key = if Some(packet.payload_type) == peer.telephone_event {
            events.receive(packet.ssrc, packet.timestamp, packet.payload)
        } else if packet.payload_type == PT_PCMU || packet.payload_type == PT_PCMA {
            let tapped = !shared.taps.lock().is_empty();
            if !tapped && !peer.inband_dtmf {
                continue;
            }
            let samples: Vec<i16> = packet
                .payload
                .iter()
                .map(|byte| {
                    if packet.payload_type == PT_PCMA {
                        g711::alaw_decode(*byte)
                    } else {
                        g711::ulaw_decode(*byte)
                    }
                })
                .collect();
            let key = if peer.inband_dtmf { inband.feed(&samples).into_iter().next() } else { None };
            if tapped {
                let mut taps = shared.taps.lock();
                if let Some((last, others)) = taps.split_last() {
                    for tap in others {
                        let _ = tap.send(samples.clone());
                    }
                    let _ = last.send(samples);
                }
                taps.retain(|tap| !tap.is_closed());
            }
            key
        } else {
            None
        };
        if let Some(key) = key {
            shared.counters.digits_received.fetch_add(1, Ordering::Relaxed);
            let mut digits = shared.digits.lock();
            if digits.len() == MAX_BUFFERED_DIGITS {
                digits.pop_front();
            }
            digits.push_back(key);
            drop(digits);
            shared.digit_arrived.notify_waiters();
        }
    }
}

/// A random 32-bit value for SSRC and initial sequence/timestamp (RFC 3550 §5.1).
fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(Instant::now().elapsed().as_nanos() as u64);
    hasher.finish() as u32
}
