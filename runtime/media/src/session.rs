//! One call's RTP stream: a UDP socket, 20 ms paced sending, DTMF receiving, symmetric RTP.
//!
//! Sending never stops while the session lives: when nothing plays, silence goes out, so NAT
//! bindings stay open and the peer's jitter buffer stays primed. Received audio is decoded only
//! when someone listens (in-band DTMF detection or a recording tap).
//!
//! # On a hostile network
//!
//! Plain RTP is unauthenticated UDP, and a session's port is open to anyone who can send to the
//! platform. Read as an attacker off the signalling path would read it:
//!
//! - **Injection and hijack.** A packet from a third address could put digits into the call's
//!   gathers (an RFC 4733 event is four bytes) and audio into its recordings and bridges; and
//!   latching to whoever speaks first would turn the call's outgoing audio (prompts, the other
//!   leg of a bridge) towards the attacker. So the session knows whom it expects and **latches**
//!   (decides where RTP comes from and where ours goes) only to:
//!   1. the exact address:port the SDP gave ([`RtpPeer::address`]), at once; or
//!   2. as the one exception, *symmetric RTP for a peer behind NAT* (its packets come from its
//!      NAT's port, not the one its SDP names): a source with the SDP's IP or the SIP signalling
//!      source's IP ([`RtpSession::set_signalling_address`]) on another port — and only once
//!      nothing has come from the exact SDP address for [`RtpLimits::nat_latch_grace`] since
//!      the peer was set.
//!
//!   Before latching every other packet is dropped, and after it every packet not from the
//!   latched address: unparsed beyond the header, never decoded, counted
//!   ([`RtpStats::dropped_source`]) and logged once per session, not once per packet.
//!
//!   Why this rule: an attacker on another host never matches an IP, so never wins. One that
//!   shares the peer's IP (the same NAT; every party on loopback) loses to a peer that sends
//!   from where its SDP says — as every peer not behind NAT does, from the first packet, within
//!   milliseconds of the answer — because that latch is final. A NAT'd peer, which never sends
//!   from its SDP's port, is latched after the grace; the cost is its first second of audio
//!   (the platform's greeting usually plays over it). What remains, and is written down here
//!   rather than hidden: a host behind the same NAT as a NAT'd peer can race it once the grace
//!   has passed, and an attacker who forges the exact source address of the peer can only be
//!   stopped by SRTP (below). A re-offer that moves the peer starts latching over; one that keeps its
//!   address (a session refresh) keeps the latch, so a NAT'd call does not go deaf each time.
//! - **Guessing the port.** Each session binds a port drawn at random from the range (not the
//!   next one after the last call's), so a stranger cannot predict the next call's port from
//!   their own call's.
//! - **Floods.** At most [`RtpLimits::max_packets_per_second`] packets a second from the
//!   accepted source are handled; the excess is dropped before decoding
//!   ([`RtpStats::dropped_rate`]), so a flood costs a `recv` per packet, not a decode.
//! - **Recordings longer than the call.** Within that cap a peer can still send several times
//!   real time. A tap (recordings, bridges) therefore receives at most the audio that fits the
//!   wall-clock time since it opened, plus [`TAP_SLACK_SAMPLES`] for jitter; the rest is
//!   dropped ([`RtpStats::tap_samples_dropped`]). (Why this, and not the media clock, paces
//!   taps is written at the `Tap` type.)
//! - **A stalled listener.** A tap's queue holds at most [`TAP_QUEUE_PACKETS`] packets: when its
//!   reader (a recording's writer, a bridge's other leg) falls behind, further packets are
//!   dropped and counted ([`RtpStats::tap_packets_overflowed`]) instead of queued, so memory
//!   stays bounded however long the reader stalls.
//!
//! - **SRTP.** A session given SDES keys ([`RtpSession::set_srtp`], [`crate::srtp`]) sends only
//!   SRTP and accepts only packets that authenticate under the peer's key and are not replays;
//!   the rest are dropped and counted ([`RtpStats::dropped_auth`]). The source rule above still
//!   comes first (so a stranger costs a `recv`, not an HMAC), but a source is latched only by a
//!   packet that authenticated: a forged packet can neither speak nor steer our audio.
//!
//! The limits are [`RtpLimits`]: [`RtpSession::bind`] takes the process-wide defaults
//! ([`set_default_limits`], set once at start-up from the configuration), [`RtpSession::bind_with`]
//! takes its own.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::dtmf::{EventReceiver, TelephoneEvent, send_key};
use crate::goertzel::InbandDetector;
use crate::rtp::RtpPacket;
use crate::srtp::{SdesKey, SrtpContexts, SrtpError};
use crate::webrtc::{LinkOutput, Received, WebRtcLink};
use crate::{SAMPLE_RATE, SAMPLES_PER_FRAME, g711};
use parking_lot::{Mutex, RwLock};
use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

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

/// Ports tried at random before the remaining ones are scanned in order (a nearly full range).
const RANDOM_PORT_TRIES: u32 = 16;
/// Audio a tap may run ahead of wall-clock time, samples (500 ms): the first packet arrives at
/// once, a late burst after a network stall is real audio, and the peer's sample clock may run
/// a little fast (at 50 ppm, 500 ms is almost three hours of drift before a packet is lost).
pub const TAP_SLACK_SAMPLES: u64 = SAMPLE_RATE as u64 / 2;
/// Packets a tap's queue holds for its reader (2 s of 20 ms packets); more are dropped and
/// counted ([`RtpStats::tap_packets_overflowed`]). A fed bridge drains its queue every 20 ms and
/// a recording's writer continuously, so only a stalled reader ever reaches it.
pub const TAP_QUEUE_PACKETS: usize = 100;
/// A tap's audio as its reader receives it (8 kHz PCM, one Vec per packet), bounded by
/// [`TAP_QUEUE_PACKETS`].
pub type TapReceiver = mpsc::Receiver<Vec<i16>>;
/// Default of [`RtpLimits::max_packets_per_second`]: four times a 20 ms G.711 stream (50 a
/// second), which leaves room for 10 ms packets with RFC 4733 events on top and for bursts.
pub const DEFAULT_MAX_PACKETS_PER_SECOND: u32 = 200;
/// Default of [`RtpLimits::nat_latch_grace`].
pub const DEFAULT_NAT_LATCH_GRACE: Duration = Duration::from_secs(1);

/// How one session defends itself against the network (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpLimits {
    /// Packets a second handled from the peer; the excess is dropped before decoding.
    /// Default [`DEFAULT_MAX_PACKETS_PER_SECOND`].
    pub max_packets_per_second: u32,
    /// Symmetric RTP for peers behind NAT: latch to a source at the SDP's or the signalling's IP
    /// on another port than the SDP says. Off: only the exact SDP address is ever latched.
    /// Default on.
    pub symmetric_rtp: bool,
    /// How long nothing must have come from the exact SDP address before such a source is
    /// latched. Default [`DEFAULT_NAT_LATCH_GRACE`].
    pub nat_latch_grace: Duration,
}

impl Default for RtpLimits {
    fn default() -> Self {
        RtpLimits {
            max_packets_per_second: DEFAULT_MAX_PACKETS_PER_SECOND,
            symmetric_rtp: true,
            nat_latch_grace: DEFAULT_NAT_LATCH_GRACE,
        }
    }
}

/// The limits [`RtpSession::bind`] uses.
static DEFAULT_LIMITS: RwLock<RtpLimits> = parking_lot::const_rwlock(RtpLimits {
    max_packets_per_second: DEFAULT_MAX_PACKETS_PER_SECOND,
    symmetric_rtp: true,
    nat_latch_grace: DEFAULT_NAT_LATCH_GRACE,
});

/// Set the limits every later [`RtpSession::bind`] uses (the process's configuration, once at
/// start-up). Without it, [`RtpLimits::default`] applies.
pub fn set_default_limits(limits: RtpLimits) {
    *DEFAULT_LIMITS.write() = limits;
}

/// The limits [`RtpSession::bind`] uses now.
pub fn default_limits() -> RtpLimits {
    *DEFAULT_LIMITS.read()
}

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
    /// RTP packets read, whether handled or dropped.
    pub packets_received: AtomicU64,
    pub digits_received: AtomicU64,
    /// Packets dropped because of where they came from (module docs).
    pub dropped_source: AtomicU64,
    /// Packets dropped over [`RtpLimits::max_packets_per_second`].
    pub dropped_rate: AtomicU64,
    /// Samples a tap did not get because they ran ahead of real time.
    pub tap_samples_dropped: AtomicU64,
    /// Packets a tap did not get because its queue was full (its reader stalled).
    pub tap_packets_overflowed: AtomicU64,
    /// SRTP packets that failed authentication or were replays.
    pub dropped_auth: AtomicU64,
}

/// A snapshot of a session's counters and latch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtpStats {
    /// Packets sent.
    pub packets_sent: u64,
    /// RTP packets read, whether handled or dropped.
    pub packets_received: u64,
    /// DTMF keys received.
    pub digits_received: u64,
    /// Packets dropped because of where they came from.
    pub dropped_source: u64,
    /// Packets dropped over the packets-per-second cap.
    pub dropped_rate: u64,
    /// Samples taps did not get because they ran ahead of real time.
    pub tap_samples_dropped: u64,
    /// Packets taps did not get because their queue was full (a stalled reader).
    pub tap_packets_overflowed: u64,
    /// SRTP packets dropped: they failed authentication or were replays.
    pub dropped_auth: u64,
    /// The source the session latched to, if any yet.
    pub latched: Option<SocketAddr>,
}

/// Who may send to the session, and where we send (see the module docs).
struct PeerState {
    /// What we were told; `address` is where we send: the SDP's until a source is latched.
    peer: RtpPeer,
    /// The SDP's address.
    announced: SocketAddr,
    /// The SIP signalling source's IP, the other IP a NAT'd peer's media may come from.
    signalling: Option<IpAddr>,
    /// The only source accepted once set.
    latched: Option<SocketAddr>,
    /// When the peer was (last) set: the NAT grace runs from here.
    since: Instant,
}

/// Why a packet was dropped for its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// The peer's host on another port, within the NAT grace: likely the peer itself.
    NatCandidate,
    /// Anyone else: another host, or anything but the latched source.
    Stranger,
}

impl PeerState {
    fn new(peer: RtpPeer) -> Self {
        PeerState { peer, announced: peer.address, signalling: None, latched: None, since: Instant::now() }
    }

    /// Take a new SDP address; a changed one starts latching over.
    fn set(&mut self, peer: RtpPeer) {
        let moved = canonical(peer.address) != canonical(self.announced);
        self.announced = peer.address;
        self.peer = RtpPeer { address: self.latched.filter(|_| !moved).unwrap_or(peer.address), ..peer };
        if moved {
            self.latched = None;
            self.since = Instant::now();
        }
    }

    /// Whether `source` may speak now (module docs), without latching it.
    fn check(&self, source: SocketAddr, now: Instant, limits: &RtpLimits) -> Result<(), Refused> {
        let from = canonical(source);
        if let Some(latched) = self.latched {
            return if canonical(latched) == from { Ok(()) } else { Err(Refused::Stranger) };
        }
        let announced = canonical(self.announced);
        if from != announced {
            let peer_host = (!announced.ip().is_unspecified() && from.ip() == announced.ip())
                || self.signalling.is_some_and(|ip| ip.to_canonical() == from.ip());
            if !limits.symmetric_rtp || !peer_host {
                return Err(Refused::Stranger);
            }
            if now.saturating_duration_since(self.since) < limits.nat_latch_grace {
                return Err(Refused::NatCandidate);
            }
        }
        Ok(())
    }

    /// Whether `source` may speak now; latches it when it is the one (module docs).
    fn admit(&mut self, source: SocketAddr, now: Instant, limits: &RtpLimits) -> Result<RtpPeer, Refused> {
        self.check(source, now, limits)?;
        if self.latched.is_some() {
            return Ok(self.peer);
        }
        self.latched = Some(source);
        self.peer.address = source;
        Ok(self.peer)
    }
}

/// An address with an IPv4-mapped IPv6 address as plain IPv4 (a dual-stack socket reports
/// IPv4 peers that way, while their SDP names them plainly).
fn canonical(address: SocketAddr) -> SocketAddr {
    SocketAddr::new(address.ip().to_canonical(), address.port())
}

/// A listener of the peer's audio, paced by wall-clock time.
///
/// A flood must not make a recording longer than the call: a tap gets a packet's audio only if
/// everything it got stays within the time since it opened plus [`TAP_SLACK_SAMPLES`]. This is
/// checked where packets are read, with one clock read, instead of moving received audio
/// through the media clock's ticks: the clock's threads send every call's packets on a 20 ms
/// grid and must stay cheap, a check here needs no extra wake-up or buffer, and it bounds every
/// tap the same way (a recording, a mixed `<Dial record>`, a bridge's feed), memory included:
/// a tap never holds more than the audio of the time since it opened, plus the slack.
struct Tap {
    sender: mpsc::Sender<Vec<i16>>,
    opened: Instant,
    /// Samples sent so far.
    sent: u64,
}

impl Tap {
    /// Whether `samples` more fit the budget at `now`.
    fn fits(&self, now: Instant, samples: usize) -> bool {
        let elapsed = now.saturating_duration_since(self.opened);
        let budget = elapsed.as_micros() as u64 * u64::from(SAMPLE_RATE) / 1_000_000 + TAP_SLACK_SAMPLES;
        self.sent + samples as u64 <= budget
    }
}

/// The packets-per-second cap: a count per one-second window.
struct RateWindow {
    started: Instant,
    count: u32,
}

impl RateWindow {
    fn allow(&mut self, now: Instant, limit: u32) -> bool {
        if now.saturating_duration_since(self.started) >= Duration::from_secs(1) {
            self.started = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.count <= limit
    }
}

impl Shared {
    /// Send what a WebRTC link produced (non-blocking, like every send of the session).
    fn transmit(&self, out: &LinkOutput) {
        for (destination, datagram) in &out.transmits {
            let _ = self.send_socket.send_to(datagram, *destination);
        }
    }
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
    /// Where we send, and who may send to us. Once latched we send where packets come from
    /// (symmetric RTP, so callers behind NAT hear us).
    peer: Mutex<PeerState>,
    limits: RtpLimits,
    playing: Mutex<Option<Playing>>,
    digits: Mutex<VecDeque<char>>,
    digit_arrived: Notify,
    /// Listeners of the caller's audio (recordings, a bridge); a dropped receiver unsubscribes.
    taps: Mutex<Vec<Tap>>,
    /// Audio to send when nothing plays: the other leg of a bridge.
    feed: Mutex<Option<TapReceiver>>,
    /// RFC 4733 payloads waiting to go out, one per tick, instead of audio.
    events: Mutex<VecDeque<TelephoneEvent>>,
    /// Audio looped when nothing plays and nothing is fed (hold music), and the position in it.
    background: Mutex<Option<(Arc<[i16]>, usize)>>,
    /// SDES keys, when the call's media is SRTP.
    srtp: Mutex<Option<SrtpContexts>>,
    /// ICE, DTLS-SRTP and RTCP, when the peer is a browser ([`crate::webrtc`]): then every
    /// datagram goes through it, both ways, and the source rules above do not apply.
    webrtc: Mutex<Option<WebRtcLink>>,
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
    /// Bind a socket on `ip` at an even port of `ports` (RTP takes even ports, RFC 3550 §11),
    /// with the process's [`default_limits`].
    pub async fn bind(ip: IpAddr, ports: RangeInclusive<u16>, peer: RtpPeer) -> io::Result<RtpSession> {
        Self::bind_with(ip, ports, peer, default_limits()).await
    }

    /// [`RtpSession::bind`] with its own limits.
    ///
    /// The port is drawn at random among the range's even ports, so that one call's port says
    /// nothing about the next one's; a port in use is skipped (a few more random draws, then
    /// the rest of the range in order from a random point).
    pub async fn bind_with(
        ip: IpAddr,
        ports: RangeInclusive<u16>,
        peer: RtpPeer,
        limits: RtpLimits,
    ) -> io::Result<RtpSession> {
        let (low, high) = (*ports.start() & !1, *ports.end());
        if low == 0 || high < low {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad RTP port range {low}-{high}"),
            ));
        }
        let slots = u32::from((high - low) / 2 + 1);
        let start = rand_u32() % slots;
        let random = (0..RANDOM_PORT_TRIES.min(slots)).map(|_| rand_u32() % slots);
        let in_order = (0..slots).map(|attempt| (start + attempt) % slots);
        let mut last_error = None;
        for slot in random.chain(in_order) {
            let port = low + (slot * 2) as u16;
            match std::net::UdpSocket::bind(SocketAddr::new(ip, port)) {
                Ok(socket) => {
                    socket.set_nonblocking(true)?;
                    let local = socket.local_addr()?;
                    let send_socket = socket.try_clone()?;
                    return Ok(Self::new(UdpSocket::from_std(socket)?, send_socket, local, peer, limits));
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
        limits: RtpLimits,
    ) -> RtpSession {
        let shared = Arc::new(Shared {
            socket,
            send_socket,
            peer: Mutex::new(PeerState::new(peer)),
            limits,
            playing: Mutex::new(None),
            digits: Mutex::new(VecDeque::new()),
            digit_arrived: Notify::new(),
            taps: Mutex::new(Vec::new()),
            feed: Mutex::new(None),
            background: Mutex::new(None),
            events: Mutex::new(VecDeque::new()),
            srtp: Mutex::new(None),
            webrtc: Mutex::new(None),
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
        {
            // The NAT grace counts from when packets are first read.
            let mut state = self.shared.peer.lock();
            if state.latched.is_none() {
                state.since = Instant::now();
            }
        }
        tasks.push(tokio::spawn(receive_loop(self.shared.clone(), self.local)));
        crate::media_clock::add(Sender::new(self.shared.clone()));
    }

    /// A re-offer named the peer's address (moved, or the same: then the latch stays).
    pub fn update_peer(&self, address: SocketAddr) {
        let mut state = self.shared.peer.lock();
        let peer = RtpPeer { address, ..state.peer };
        state.set(peer);
    }

    /// The IP the peer's SIP signalling comes from: media from it on another port than the SDP
    /// says may be latched as a peer behind NAT (module docs).
    pub fn set_signalling_address(&self, ip: IpAddr) {
        self.shared.peer.lock().signalling = Some(ip);
    }

    /// Make the media SRTP: `local` protects what we send, `remote` (the peer's key) opens what
    /// it sends. From here on plain RTP is neither sent nor accepted.
    pub fn set_srtp(&self, local: &SdesKey, remote: &SdesKey) -> Result<(), SrtpError> {
        *self.shared.srtp.lock() = Some(SrtpContexts::new(local, remote)?);
        Ok(())
    }

    /// The peer changed its key (a re-offer with a new `a=crypto`); ours stays. Nothing to do
    /// for a session without SRTP.
    pub fn rekey_inbound(&self, remote: &SdesKey) -> Result<(), SrtpError> {
        match self.shared.srtp.lock().as_mut() {
            Some(contexts) => contexts.rekey_inbound(remote),
            None => Ok(()),
        }
    }

    /// Whether the media is SRTP (SDES keys, or DTLS-SRTP with a browser).
    pub fn is_srtp(&self) -> bool {
        self.shared.srtp.lock().is_some() || self.shared.webrtc.lock().is_some()
    }

    /// Make the media WebRTC ([`crate::webrtc`]): from here on every datagram goes through
    /// `link`, which answers ICE checks, runs DTLS and opens and protects SRTP.
    pub fn set_webrtc(&self, link: WebRtcLink) {
        *self.shared.webrtc.lock() = Some(link);
    }

    /// Whether the browser's WebRTC media is up (ICE and DTLS done); `None` when the session is
    /// not WebRTC.
    pub fn webrtc_connected(&self) -> Option<bool> {
        self.shared.webrtc.lock().as_ref().map(WebRtcLink::is_connected)
    }

    /// Where packets go now.
    pub fn remote(&self) -> SocketAddr {
        self.shared.peer.lock().peer.address
    }

    /// Counters.
    pub fn counters(&self) -> &RtpCounters {
        &self.shared.counters
    }

    /// The counters and the latch now.
    pub fn stats(&self) -> RtpStats {
        let counters = &self.shared.counters;
        RtpStats {
            packets_sent: counters.packets_sent.load(Ordering::Relaxed),
            packets_received: counters.packets_received.load(Ordering::Relaxed),
            digits_received: counters.digits_received.load(Ordering::Relaxed),
            dropped_source: counters.dropped_source.load(Ordering::Relaxed),
            dropped_rate: counters.dropped_rate.load(Ordering::Relaxed),
            tap_samples_dropped: counters.tap_samples_dropped.load(Ordering::Relaxed),
            tap_packets_overflowed: counters.tap_packets_overflowed.load(Ordering::Relaxed),
            dropped_auth: counters.dropped_auth.load(Ordering::Relaxed),
            latched: self.shared.peer.lock().latched,
        }
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

    /// Receive the peer's audio (8 kHz PCM, one Vec per packet) until the receiver is dropped;
    /// never more than real time since now (see [`Tap`]), and never more than
    /// [`TAP_QUEUE_PACKETS`] waiting for the reader.
    pub fn tap(&self) -> TapReceiver {
        let (sender, rx) = mpsc::channel(TAP_QUEUE_PACKETS);
        self.shared.taps.lock().push(Tap { sender, opened: Instant::now(), sent: 0 });
        rx
    }

    /// Send this audio whenever nothing plays (a bridge: the other leg's tap), until
    /// [`RtpSession::stop_feed`].
    pub fn feed(&self, audio: TapReceiver) {
        *self.shared.feed.lock() = Some(audio);
    }

    /// Stop sending the fed audio.
    pub fn stop_feed(&self) {
        self.shared.feed.lock().take();
    }

    /// Send a DTMF key: as RFC 4733 events when the peer negotiated them (200 ms, end packet
    /// sent three times), else as its two tones in the audio.
    pub fn send_digit(&self, key: char) -> bool {
        let telephone_event = self.shared.peer.lock().peer.telephone_event;
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
        self.shared.peer.lock().set(peer);
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
        if let Some(link) = self.shared.webrtc.lock().as_mut() {
            let mut out = LinkOutput::default();
            link.send_rtp(std::time::Instant::now(), &self.datagram, &mut out);
            self.shared.transmit(&out);
            if !out.transmits.is_empty() {
                self.shared.counters.packets_sent.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        if destination.port() == 0 || destination.ip().is_unspecified() {
            return;
        }
        let protected = match self.shared.srtp.lock().as_mut() {
            Some(contexts) => match contexts.protect(&self.datagram) {
                Ok(protected) => Some(protected),
                // Only after 2^48 packets under one key (RFC 3711 §9.2): nothing goes out.
                Err(_) => return,
            },
            None => None,
        };
        // Non-blocking: a full socket buffer or an unreachable peer loses this packet, never
        // the pacing of the others.
        let datagram = protected.as_deref().unwrap_or(&self.datagram);
        if self.shared.send_socket.send_to(datagram, destination).is_ok() {
            self.shared.counters.packets_sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Send this tick's packet.
    pub(crate) fn tick(&mut self) {
        let shared = self.shared.clone();
        if let Some(link) = shared.webrtc.lock().as_mut() {
            // str0m's timers (DTLS retransmits, RTCP reports, consent) ride on the media clock.
            let mut out = LinkOutput::default();
            link.tick(std::time::Instant::now(), &mut out);
            shared.transmit(&out);
        }
        let event = shared.events.lock().pop_front();
        if let Some(event) = event {
            let (destination, payload_type) = {
                let peer = shared.peer.lock().peer;
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
            let peer = shared.peer.lock().peer;
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

/// Reads packets: admits or drops them by source and rate (module docs), turns
/// telephone-events into digits, feeds the in-band detector and the taps.
async fn receive_loop(shared: Arc<Shared>, local: SocketAddr) {
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    let mut state = ReceiveState {
        receivers: DigitReceivers { events: EventReceiver::new(), inband: InbandDetector::new() },
        rate: RateWindow { started: Instant::now(), count: 0 },
        warned_source: false,
        warned_rate: false,
    };
    // An attack is logged once per session, not once per packet.
    let (mut noted_nat_candidate, mut warned_auth) = (false, false);
    loop {
        let (length, source) = match shared.socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            // ICMP port unreachable surfaces here on some systems; keep reading.
            Err(_) => continue,
        };
        if shared.webrtc.lock().is_some() {
            receive_webrtc(&shared, local, source, &buffer[..length], &mut state);
            continue;
        }
        if RtpPacket::parse(&buffer[..length]).is_err() {
            continue;
        }
        shared.counters.packets_received.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let checked = shared.peer.lock().check(source, now, &shared.limits);
        match checked {
            Ok(()) => {}
            Err(refused) => {
                shared.counters.dropped_source.fetch_add(1, Ordering::Relaxed);
                if refused == Refused::NatCandidate && !noted_nat_candidate {
                    noted_nat_candidate = true;
                    debug!(%local, %source, "RTP from the peer's host on another port: waiting out the NAT grace");
                } else if refused == Refused::Stranger && !state.warned_source {
                    state.warned_source = true;
                    let state = shared.peer.lock();
                    warn!(
                        %local, %source, expected = %state.announced, latched = ?state.latched,
                        "RTP from an unexpected address dropped (injection or a stray stream); \
                         further ones are dropped silently"
                    );
                }
                continue;
            }
        }
        if !state.rate.allow(now, shared.limits.max_packets_per_second) {
            shared.counters.dropped_rate.fetch_add(1, Ordering::Relaxed);
            if !state.warned_rate {
                state.warned_rate = true;
                warn!(
                    %local, %source, limit = shared.limits.max_packets_per_second,
                    "RTP over the packets-per-second cap dropped; further ones are dropped silently"
                );
            }
            continue;
        }
        // SRTP: only a packet that authenticates (and is no replay) goes on, and may latch.
        let opened = match shared.srtp.lock().as_mut() {
            Some(contexts) => match contexts.unprotect(&buffer[..length]) {
                Ok(plain) => Some(plain),
                Err(error) => {
                    shared.counters.dropped_auth.fetch_add(1, Ordering::Relaxed);
                    if !warned_auth {
                        warned_auth = true;
                        warn!(
                            %local, %source, %error,
                            "SRTP packet refused (forged, replayed, or plain RTP); further ones are dropped silently"
                        );
                    }
                    continue;
                }
            },
            None => None,
        };
        let Ok(peer) = shared.peer.lock().admit(source, now, &shared.limits) else { continue };
        let Ok(packet) = RtpPacket::parse(opened.as_deref().unwrap_or(&buffer[..length])) else { continue };
        deliver(&shared, peer, &packet, now, &mut state.receivers);
    }
}

/// The receive loop's state across packets.
struct ReceiveState {
    receivers: DigitReceivers,
    rate: RateWindow,
    /// A stranger's packets are logged once per session, not once per packet.
    warned_source: bool,
    /// So is a flood over the cap.
    warned_rate: bool,
}

/// What turns admitted packets into digits: RFC 4733 events and in-band tones.
struct DigitReceivers {
    events: EventReceiver,
    inband: InbandDetector,
}

/// Handle an admitted (and opened) packet: a telephone-event becomes a digit, audio feeds the
/// in-band detector and the taps.
fn deliver(
    shared: &Shared,
    peer: RtpPeer,
    packet: &RtpPacket<'_>,
    now: Instant,
    receivers: &mut DigitReceivers,
) {
    let DigitReceivers { events, inband } = receivers;
    let key = if Some(packet.payload_type) == peer.telephone_event {
        events.receive(packet.ssrc, packet.timestamp, packet.payload)
    } else if packet.payload_type == PT_PCMU || packet.payload_type == PT_PCMA {
        let tapped = {
            let mut taps = shared.taps.lock();
            taps.retain(|tap| !tap.sender.is_closed());
            let fits = taps.iter().filter(|tap| tap.fits(now, packet.payload.len())).count();
            let refused = (taps.len() - fits) as u64 * packet.payload.len() as u64;
            shared.counters.tap_samples_dropped.fetch_add(refused, Ordering::Relaxed);
            fits > 0
        };
        if !tapped && !peer.inband_dtmf {
            return;
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
            for tap in shared.taps.lock().iter_mut() {
                if tap.fits(now, samples.len()) {
                    match tap.sender.try_send(samples.clone()) {
                        Ok(()) => tap.sent += samples.len() as u64,
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            shared.counters.tap_packets_overflowed.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => {}
                    }
                }
            }
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

/// Reads a WebRTC session's datagrams: each goes through the link (ICE, DTLS, SRTP). The
/// packets-per-second cap counts the datagrams the link takes as its own, before it decrypts
/// them; a stranger's, which the link refuses with a cheap check, never count against it.
fn receive_webrtc(
    shared: &Shared,
    local: SocketAddr,
    source: SocketAddr,
    datagram: &[u8],
    state: &mut ReceiveState,
) {
    let now = Instant::now();
    let mut out = LinkOutput::default();
    let (rate, limit) = (&mut state.rate, shared.limits.max_packets_per_second);
    let received = match shared.webrtc.lock().as_mut() {
        Some(link) => link.receive(now.into_std(), source, datagram, &mut out, || rate.allow(now, limit)),
        None => return,
    };
    shared.transmit(&out);
    match received {
        Received::Taken => {}
        Received::NotOurs => {
            shared.counters.dropped_source.fetch_add(1, Ordering::Relaxed);
            if !state.warned_source {
                state.warned_source = true;
                warn!(%local, %source, "datagram for no ICE check or DTLS peer of this WebRTC call dropped; further ones are dropped silently");
            }
            return;
        }
        Received::OverCap => {
            shared.counters.dropped_rate.fetch_add(1, Ordering::Relaxed);
            if !state.warned_rate {
                state.warned_rate = true;
                warn!(%local, %source, %limit, "WebRTC datagrams over the packets-per-second cap dropped unopened; further ones are dropped silently");
            }
            return;
        }
    }
    let peer = shared.peer.lock().peer;
    for plain in &out.packets {
        shared.counters.packets_received.fetch_add(1, Ordering::Relaxed);
        if let Ok(packet) = RtpPacket::parse(plain) {
            deliver(shared, peer, &packet, now, &mut state.receivers);
        }
    }
}

/// A random 32-bit value for SSRC, initial sequence/timestamp (RFC 3550 §5.1) and ports.
///
/// Unpredictable to an outsider: std's `RandomState` keys SipHash with random keys drawn from
/// the operating system once per thread (and steps them on every use).
fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(Instant::now().elapsed().as_nanos() as u64);
    hasher.finish() as u32
}
