//! A real inbound call: its SIP leg and RTP session behind the [`CallBackend`] primitives the
//! flow host drives.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use opentact_call::CallBackend;
use opentact_call::clock::{Clock, RealClock};
use opentact_call::error::CallError;
use opentact_call::model::DialTarget;
use opentact_call::model::{
    CallInfo, CallState, DialRequest, DialResult, HangupReason, Media, PlayOutcome, RecordRequest, Recording,
    SmsRequest,
};
use opentact_media::recorder::WavRecorder;
use opentact_media::sdp::{self, AudioStream, Direction, LocalMedia};
use opentact_media::srtp::{self, SdesKey, SrtpPolicy};
use opentact_sip::{IncomingCall, LegEnd, LegEvents, LegState, OutboundCall};
use parking_lot::Mutex;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::dial::{self, Dialer};
use crate::render::{MediaRenderer, Rendered};
use opentact_media::session::{PlayEnd, RtpPeer, RtpSession};
use opentact_media::webrtc::WebRtcLink;

/// Loudness under which a 20 ms frame counts as silence for a recording's silence timeout
/// (RMS of 16-bit samples; about -50 dBFS).
const SILENCE_RMS: f64 = 100.0;
/// A `loop="0"` prompt repeats at most this long without a digit or hangup.
const ENDLESS_LOOP_LIMIT: Duration = Duration::from_secs(600);

/// Media settings shared by every call.
#[derive(Debug, Clone)]
pub struct VoiceConfig {
    /// Address RTP sockets bind to.
    pub rtp_bind: IpAddr,
    /// Address put in SDP (the bind address unless it is a wildcard).
    pub rtp_advertised: IpAddr,
    /// Ports RTP sockets take.
    pub rtp_ports: RangeInclusive<u16>,
    /// Recordings are written under `<recordings_dir>/<account>/<call>/`.
    pub recordings_dir: PathBuf,
    /// Listen for DTMF tones in the audio too.
    pub inband_dtmf: bool,
    /// Let an SDP's connection address (where the platform sends RTP) be loopback, private,
    /// link-local or the platform's own: the policy `<Dial>` applies to signalling targets
    /// (`media.allow_private_rtp_peers`). Off: such a call is refused with 488 (an offer) or
    /// fails (a callee's answer), and no RTP is sent there.
    pub allow_private_media: bool,
    /// Each account's recordings: checked before every recording starts, and the bytes left
    /// bound the file.
    pub recordings: crate::RecordingQuota,
    /// When media is SRTP (SDES keys in the SDP): as offered, always, or never.
    pub srtp: SrtpPolicy,
}

/// A call's SRTP keys: ours (in our SDP) and the peer's (in its SDP).
#[derive(Debug, Clone)]
pub struct SrtpKeys {
    /// Protects what the platform sends.
    pub local: SdesKey,
    /// Opens what the peer sends.
    pub remote: SdesKey,
}

impl VoiceConfig {
    /// The SRTP keys of the answer to `offer` — `None` for plain RTP — or why the offer is
    /// refused (with 488): SRTP turned off, plain RTP where SRTP is required, or no crypto
    /// line the platform can use.
    pub fn answer_srtp(&self, offer: &AudioStream) -> Result<Option<SrtpKeys>, String> {
        match (offer.is_srtp(), self.srtp) {
            (true, SrtpPolicy::Off) => {
                Err("SRTP (RTP/SAVP) is turned off on this platform (media.srtp = \"off\")".to_owned())
            }
            (true, _) => {
                let remote = srtp::choose(&offer.crypto).map_err(|error| error.to_string())?;
                let local = srtp::answer(&remote).map_err(|error| error.to_string())?;
                Ok(Some(SrtpKeys { local, remote }))
            }
            (false, SrtpPolicy::Required) => {
                Err("plain RTP refused: this platform requires SRTP (RTP/SAVP with an a=crypto line, \
                 media.srtp = \"required\")"
                    .to_owned())
            }
            (false, _) => Ok(None),
        }
    }

    /// Why the platform may not send RTP to `ip`, an SDP's connection address, if it may not.
    /// The unspecified address (an old-style hold) is no destination and passes.
    pub fn media_address_refused(&self, ip: IpAddr) -> Option<String> {
        if self.allow_private_media || ip.is_unspecified() {
            return None;
        }
        let ip = ip.to_canonical();
        let own = [self.rtp_advertised, self.rtp_bind].iter().any(|own| own.to_canonical() == ip);
        (own || opentact_egress::is_non_public(ip)).then(|| {
            format!(
                "media address {ip} refused: RTP is not sent to loopback, private or the platform's own \
                 addresses (media.allow_private_rtp_peers)"
            )
        })
    }
}

struct BackgroundRecording {
    name: String,
    /// Taken when the recording is told to stop (a hangup stops it; `record_stop` keeps it).
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<(PathBuf, u64)>>,
}

struct State {
    call: CallState,
    /// What the platform put in its SDP answer: the base of its later offers (hold, unhold).
    local: Option<LocalMedia>,
    /// Ends a hold when its timeout passes.
    hold_timer: Option<tokio::task::JoinHandle<()>>,
    /// Recordings of this call by name: their WAV files.
    recordings: HashMap<String, PathBuf>,
    background: Option<BackgroundRecording>,
}

/// Where an outbound call rings.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The callee.
    pub target: DialTarget,
    /// The caller ID (the From user); the call's `from` when `None`.
    pub caller_id: Option<String>,
    /// How long it may ring.
    pub ring_timeout: Duration,
}

/// The call's own SIP leg: an INVITE that came in, or one the platform places.
enum Leg {
    Inbound(Box<IncomingCall>),
    Outbound {
        destination: Destination,
        /// The callee's leg once it answered.
        answered: Mutex<Option<OutboundCall>>,
        /// The state [`SipCall::events`] follow: `Early` while ringing, then the callee's.
        state: watch::Sender<LegState>,
        /// Turns true when the callee rings (180 or 183).
        ringing: watch::Sender<bool>,
    },
}

impl std::fmt::Debug for Leg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Leg::Inbound(call) => call.fmt(f),
            Leg::Outbound { destination, .. } => {
                f.debug_struct("Outbound").field("target", &destination.target).finish_non_exhaustive()
            }
        }
    }
}

impl Leg {
    fn outbound(&self) -> Option<OutboundCall> {
        match self {
            Leg::Inbound(_) => None,
            Leg::Outbound { answered, .. } => answered.lock().clone(),
        }
    }
}

/// A SIP call driven by a flow.
pub struct SipCall {
    info: CallInfo,
    leg: Leg,
    events: LegEvents,
    config: Arc<VoiceConfig>,
    renderer: MediaRenderer,
    dialer: Option<Arc<dyn Dialer>>,
    clock: Arc<RealClock>,
    rtp: Mutex<Option<Arc<RtpSession>>>,
    state: Mutex<State>,
    /// The SDP origin version of the platform's next offer or answer.
    sdp_version: Arc<AtomicU64>,
    me: std::sync::Weak<SipCall>,
    /// Set for a trunk's call ([`SipCall::answer_on_bridge`]): `<Dial>` answers the caller
    /// only once a leg answers, and tells this.
    on_bridge_answer: Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
}

impl std::fmt::Debug for SipCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipCall").field("id", &self.info.id).field("leg", &self.leg).finish_non_exhaustive()
    }
}

impl SipCall {
    /// A call for an inbound leg that routing accepted.
    pub fn new(
        info: CallInfo,
        leg: IncomingCall,
        config: Arc<VoiceConfig>,
        renderer: MediaRenderer,
        dialer: Option<Arc<dyn Dialer>>,
    ) -> Arc<Self> {
        let events = leg.events();
        Self::with_leg(info, Leg::Inbound(Box::new(leg)), events, config, renderer, dialer)
    }

    /// A call the platform places: it rings `destination` when answered (the flow's first step,
    /// or the originator's [`opentact_call::CallSession::connect`]).
    pub fn outbound(
        info: CallInfo,
        destination: Destination,
        config: Arc<VoiceConfig>,
        renderer: MediaRenderer,
        dialer: Arc<dyn Dialer>,
    ) -> Arc<Self> {
        let (state, receiver) = watch::channel(LegState::Early);
        let leg = Leg::Outbound {
            destination,
            answered: Mutex::new(None),
            state,
            ringing: watch::channel(false).0,
        };
        Self::with_leg(info, leg, LegEvents::new(receiver), config, renderer, Some(dialer))
    }

    fn with_leg(
        info: CallInfo,
        leg: Leg,
        events: LegEvents,
        config: Arc<VoiceConfig>,
        renderer: MediaRenderer,
        dialer: Option<Arc<dyn Dialer>>,
    ) -> Arc<Self> {
        let call = Arc::new_cyclic(|me| SipCall {
            info,
            leg,
            events,
            config,
            renderer,
            dialer,
            clock: Arc::new(RealClock::new()),
            rtp: Mutex::new(None),
            state: Mutex::new(State {
                call: CallState::Ringing,
                local: None,
                hold_timer: None,
                recordings: HashMap::new(),
                background: None,
            }),
            sdp_version: Arc::new(AtomicU64::new(1)),
            me: me.clone(),
            on_bridge_answer: Mutex::new(None),
        });
        // When the peer hangs up, media stops at once, whatever the flow is doing.
        let watcher = Arc::downgrade(&call);
        let mut events = call.events.clone();
        tokio::spawn(async move {
            let end = events.ended().await;
            if let Some(call) = watcher.upgrade() {
                debug!(call = %call.info.id, ?end, "leg over");
                call.finish();
            }
        });
        call
    }

    /// Dial without answering first: a ringing caller is answered only when a dialled leg
    /// answers (then `answered` is called), so a caller whose callee never answers is still
    /// unanswered and can be refused with a status ([`SipCall::reject`]). For SIP trunking,
    /// where the caller's carrier must not see an answer the PBX never gave.
    pub fn answer_on_bridge(&self, answered: Arc<dyn Fn() + Send + Sync>) {
        *self.on_bridge_answer.lock() = Some(answered);
    }

    /// Refuse a ringing inbound call with `status` and a `Reason` header (RFC 3326, e.g.
    /// `Q.850;cause=19;text="no answer"`). A call already answered is left alone.
    pub fn reject(&self, status: u16, reason: &str) -> Result<(), CallError> {
        match &self.leg {
            Leg::Inbound(leg) if self.rtp.lock().is_none() => {
                leg.reject(status, Some(reason)).map_err(|error| CallError::Failed(error.to_string()))
            }
            _ => Ok(()),
        }
    }

    /// The RTP session, once answered.
    pub fn rtp(&self) -> Option<Arc<RtpSession>> {
        self.rtp.lock().clone()
    }

    fn finish(&self) {
        {
            let mut state = self.state.lock();
            state.call = CallState::Ended;
            if let Some(timer) = state.hold_timer.take() {
                timer.abort();
            }
        }
        if let Some(rtp) = self.rtp.lock().take() {
            rtp.close();
        }
    }

    fn live(&self) -> Result<(), CallError> {
        if matches!(self.events.state(), LegState::Ended(_)) || self.state.lock().call == CallState::Ended {
            return Err(CallError::Hangup);
        }
        Ok(())
    }

    fn media(&self) -> Result<Arc<RtpSession>, CallError> {
        self.live()?;
        self.rtp
            .lock()
            .clone()
            .ok_or_else(|| CallError::InvalidState("ringing: answer the call first".to_owned()))
    }

    /// Resolves when the leg ends.
    async fn hung_up(&self) {
        let mut events = self.events.clone();
        events.ended().await;
    }

    fn recording_path(&self, id: &str) -> Result<PathBuf, CallError> {
        let path = opentact_call::model::recording_file(
            &self.config.recordings_dir,
            &self.info.account,
            &self.info.id,
            id,
        );
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|error| CallError::Failed(format!("creating {}: {error}", dir.display())))?;
        }
        Ok(path)
    }

    /// The bytes a new recording of this call may take, or `LimitExceeded` at the account's
    /// quota (logged: the flow's `failed` event says it too).
    async fn recording_allowance(&self) -> Result<u64, CallError> {
        self.config.recordings.allowance(&self.info.account).await.inspect_err(
            |error| warn!(call = %self.info.id, account = %self.info.account, %error, "recording refused"),
        )
    }

    fn keep_recording(&self, name: &str, path: PathBuf, duration_ms: u64) -> Recording {
        let id = path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
        let recording = Recording {
            id,
            name: name.to_owned(),
            duration_ms: u32::try_from(duration_ms).unwrap_or(u32::MAX),
        };
        self.state.lock().recordings.insert(name.to_owned(), path);
        recording
    }

    async fn play_rendered(
        &self,
        rtp: &RtpSession,
        rendered: Rendered,
        barge_in: bool,
    ) -> Result<bool, CallError> {
        match rendered {
            Rendered::Silence(ms) => {
                let wait = tokio::time::sleep(Duration::from_millis(u64::from(ms)));
                if barge_in {
                    tokio::select! {
                        () = wait => Ok(false),
                        digit = rtp.digit_buffered() => Ok(digit),
                        () = self.hung_up() => Err(CallError::Hangup),
                    }
                } else {
                    tokio::select! {
                        () = wait => Ok(false),
                        () = self.hung_up() => Err(CallError::Hangup),
                    }
                }
            }
            Rendered::Audio { samples, repeat } => {
                let started = tokio::time::Instant::now();
                let mut played = 0u32;
                while repeat == 0 || played < repeat {
                    if samples.is_empty() || (repeat == 0 && started.elapsed() > ENDLESS_LOOP_LIMIT) {
                        break;
                    }
                    match rtp.play(samples.clone(), barge_in).await {
                        PlayEnd::Finished => played += 1,
                        PlayEnd::Interrupted => return Ok(true),
                        PlayEnd::Closed => return Err(CallError::Hangup),
                    }
                }
                Ok(false)
            }
        }
    }
}

fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|s| f64::from(*s) * f64::from(*s)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// Writes the tap to a WAV file until stopped or the tap closes. The file grows at most as
/// fast as real time however fast packets come: the session's taps are paced by wall-clock
/// time (`opentact_media::session::TAP_SLACK_SAMPLES`), so a flood cannot lengthen a recording.
async fn record_to(
    path: &Path,
    allowance: u64,
    mut tap: opentact_media::session::TapReceiver,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> std::io::Result<u64> {
    let mut recorder = WavRecorder::create_within(path, allowance)?;
    loop {
        tokio::select! {
            frame = tap.recv() => match frame {
                Some(frame) => if !written(recorder.write(&frame), path)? { break },
                None => break,
            },
            _ = &mut stop => break,
        }
    }
    recorder.finish()
}

/// Whether a frame was written: `false` when the recording reached the account's quota (it
/// stops there, kept, and the log says so), an error for anything else.
fn written(result: std::io::Result<()>, path: &Path) -> std::io::Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::QuotaExceeded => {
            warn!(file = %path.display(), %error, "recording stopped at the account's recording quota");
            Ok(false)
        }
        Err(error) => Err(error),
    }
}

impl SipCall {
    /// The RTP session that answers `offer` with the `negotiated` codec and digits (in-band
    /// when the offer has no telephone-event, or when configured).
    async fn bind_answering_media(
        &self,
        offer: &AudioStream,
        negotiated: &sdp::Negotiated,
    ) -> Result<RtpSession, CallError> {
        let peer = RtpPeer {
            address: SocketAddr::new(offer.address, offer.port),
            codec: negotiated.codec,
            telephone_event: negotiated.telephone_event,
            inband_dtmf: self.config.inband_dtmf || negotiated.telephone_event.is_none(),
        };
        RtpSession::bind(self.config.rtp_bind, self.config.rtp_ports.clone(), peer)
            .await
            .map_err(|error| CallError::LimitExceeded(format!("no RTP port: {error}")))
    }

    /// Answer a browser's WebRTC offer (the web call): the media is ICE-lite and DTLS-SRTP on
    /// the call's RTP socket ([`opentact_media::webrtc`]), whatever `media.srtp` says — a browser
    /// only ever speaks encrypted media. Media goes only where the browser's ICE checks come
    /// from, so the SDP's address (0.0.0.0 port 9 from a browser) is not checked.
    async fn answer_webrtc(
        &self,
        leg: &IncomingCall,
        offer_text: &str,
        offer: &AudioStream,
        negotiated: sdp::Negotiated,
    ) -> Result<(), CallError> {
        let rtp = self.bind_answering_media(offer, &negotiated).await?;
        let advertised = SocketAddr::new(self.config.rtp_advertised, rtp.local_addr().port());
        let (link, answer) = match WebRtcLink::answer(
            offer_text,
            rtp.local_addr(),
            advertised,
            negotiated.codec,
            negotiated.telephone_event,
        ) {
            Ok(answered) => answered,
            Err(error) => {
                let _ = leg.reject_with_warning(488, &error.to_string());
                return Err(CallError::Failed(error.to_string()));
            }
        };
        rtp.set_webrtc(link);
        let rtp = Arc::new(rtp);
        let on_reoffer = self.reoffer_handler(
            &rtp,
            &LocalMedia {
                session_id: 0,
                version: 1,
                address: self.config.rtp_advertised,
                port: advertised.port(),
                codecs: vec![negotiated.codec],
                telephone_event: negotiated.telephone_event,
                direction: Direction::SendRecv,
                crypto: None,
            },
        );
        leg.answer(answer, on_reoffer).map_err(|error| match error {
            opentact_sip::SipError::DialogEnded => CallError::Hangup,
            other => CallError::Failed(format!("answering: {other}")),
        })?;
        info!(%advertised, "web call answered with WebRTC media (ICE-lite, DTLS-SRTP)");
        rtp.start();
        *self.rtp.lock() = Some(rtp);
        self.state.lock().call = CallState::Answered;
        Ok(())
    }

    /// Send the caller a new offer with `direction` (RFC 3264 §8.4 hold), and follow its answer.
    async fn reoffer(&self, direction: Direction) -> Result<(), CallError> {
        if self.rtp().is_some_and(|rtp| rtp.webrtc_connected().is_some()) {
            return Err(CallError::InvalidState(
                "a web call (WebRTC) cannot be put on hold by re-offer; its media stays up".to_owned(),
            ));
        }
        let local =
            self.state.lock().local.clone().ok_or_else(|| CallError::InvalidState("ringing".to_owned()))?;
        let offer =
            LocalMedia { direction, version: self.sdp_version.fetch_add(1, Ordering::Relaxed) + 1, ..local };
        let sent = match &self.leg {
            Leg::Inbound(call) => call.reoffer(offer.render(&[], 0)).await,
            Leg::Outbound { .. } => match self.leg.outbound() {
                Some(call) => call.reoffer(offer.render(&[], 0)).await,
                None => return Err(CallError::InvalidState("ringing".to_owned())),
            },
        };
        let answer = sent.map_err(|error| match error {
            opentact_sip::SipError::DialogEnded => CallError::Hangup,
            other => CallError::Failed(format!("re-INVITE: {other}")),
        })?;
        if let (Ok(answer), Some(rtp)) = (sdp::parse(&answer), self.rtp())
            && rtp.is_srtp()
            && let Ok(remote) = srtp::choose(&answer.audio.crypto)
            && let Err(error) = rtp.rekey_inbound(&remote)
        {
            warn!(%error, "the peer's new SRTP key in its answer to our re-offer is unusable");
        }
        if let (Ok(answer), Some(rtp)) = (sdp::parse(&answer), self.rtp())
            && !answer.audio.address.is_unspecified()
            && answer.audio.port != 0
            && self.config.media_address_refused(answer.audio.address).is_none()
        {
            rtp.update_peer(SocketAddr::new(answer.audio.address, answer.audio.port));
        }
        Ok(())
    }

    /// Answers the peer's re-offers (its hold, a new address) against the platform's `local`
    /// media.
    fn reoffer_handler(&self, rtp: &Arc<RtpSession>, local: &LocalMedia) -> opentact_sip::ReofferHandler {
        if rtp.webrtc_connected().is_some() {
            // A browser's re-offer would renegotiate ICE and DTLS: refused (488), the call goes on.
            return Arc::new(|_: &str| None);
        }
        let reoffer_rtp = Arc::downgrade(rtp);
        let reoffer_local = local.clone();
        let reoffer_version = self.sdp_version.clone();
        let config = self.config.clone();
        Arc::new(move |text: &str| {
            let offer = sdp::parse(text).ok()?;
            sdp::negotiate(&offer.audio).ok()?;
            // A re-offer may not move the media somewhere a first offer could not go.
            if config.media_address_refused(offer.audio.address).is_some() {
                return None;
            }
            // Nor switch between RTP and SRTP; an SRTP one may bring the peer's new key, and is
            // answered with ours under the tag of its line for our suite.
            let ours = reoffer_local.crypto.as_deref().and_then(|line| SdesKey::parse(line).ok().flatten());
            if offer.audio.is_srtp() != ours.is_some() {
                return None;
            }
            let crypto = match ours {
                Some(ours) => {
                    let remote = offer
                        .audio
                        .crypto
                        .iter()
                        .filter_map(|line| SdesKey::parse(line).ok().flatten())
                        .find(|key| key.suite == ours.suite)?;
                    if let Some(rtp) = reoffer_rtp.upgrade() {
                        rtp.rekey_inbound(&remote).ok()?;
                    }
                    Some(ours.with_tag(remote.tag).attribute())
                }
                None => None,
            };
            if let Some(rtp) = reoffer_rtp.upgrade()
                && !offer.audio.is_hold()
            {
                rtp.update_peer(SocketAddr::new(offer.audio.address, offer.audio.port));
            }
            let answer = LocalMedia {
                direction: if offer.audio.is_hold() {
                    Direction::RecvOnly
                } else {
                    offer.audio.direction.answer()
                },
                version: reoffer_version.fetch_add(1, Ordering::Relaxed) + 1,
                crypto,
                ..reoffer_local.clone()
            };
            Some(answer.render(&offer.media_kinds, offer.audio_index))
        })
    }

    fn dialer(&self) -> Result<Arc<dyn Dialer>, CallError> {
        self.dialer.clone().ok_or_else(|| CallError::Failed("outbound calling is not configured".to_owned()))
    }

    /// An outbound call's "answer": ring the destination until it answers, then take its leg
    /// and media as the call's own.
    async fn place(&self) -> Result<(), CallError> {
        let Leg::Outbound { destination, answered, state, ringing } = &self.leg else {
            return Err(CallError::InvalidState("not an outbound call".to_owned()));
        };
        let dialer = self.dialer()?;
        let rung = dial::ring(
            dialer.as_ref(),
            &self.config,
            &self.info,
            std::slice::from_ref(&destination.target),
            destination.caller_id.as_deref(),
            destination.ring_timeout,
            self.events.clone(),
            false,
            Some(ringing),
        )
        .await;
        let leg = match rung {
            Ok(leg) => leg,
            Err(error) => {
                state.send_if_modified(|current| {
                    let live = !matches!(current, LegState::Ended(_));
                    if live {
                        *current = LegState::Ended(LegEnd::Rejected);
                    }
                    live
                });
                return Err(error);
            }
        };
        leg.call.on_reoffer(self.reoffer_handler(&leg.rtp, &leg.local));
        // From now on the call's state is the callee's.
        let mut callee = leg.call.events();
        let follow = state.clone();
        tokio::spawn(async move {
            let end = callee.ended().await;
            follow.send_if_modified(|current| {
                let live = !matches!(current, LegState::Ended(_));
                if live {
                    *current = LegState::Ended(end);
                }
                live
            });
        });
        state.send_if_modified(|current| {
            let ringing = *current == LegState::Early;
            if ringing {
                *current = LegState::Confirmed;
            }
            ringing
        });
        *answered.lock() = Some(leg.call);
        *self.rtp.lock() = Some(leg.rtp);
        let mut call_state = self.state.lock();
        call_state.call = CallState::Answered;
        call_state.local = Some(leg.local);
        Ok(())
    }

    /// Take the caller off hold: music off, media both ways again.
    async fn resume(&self) -> Result<(), CallError> {
        if let Some(rtp) = self.rtp() {
            rtp.set_background(None);
        }
        let result = self.reoffer(Direction::SendRecv).await;
        let mut state = self.state.lock();
        if state.call == CallState::Held {
            state.call = CallState::Answered;
        }
        result
    }
}

/// The hold music: a slow four-note figure, generated once (8 kHz, about 3.2 s, looped).
fn hold_music() -> Arc<[i16]> {
    static MUSIC: std::sync::OnceLock<Arc<[i16]>> = std::sync::OnceLock::new();
    MUSIC
        .get_or_init(|| {
            let mut samples = Vec::new();
            for hz in [262u32, 330, 392, 330, 294, 349, 440, 349] {
                let mut note = opentact_media::tone::ToneGenerator::new(opentact_media::tone::ToneSpec {
                    frequencies: vec![hz],
                    on_ms: 350,
                    off_ms: 50,
                    loop_count: 1,
                    volume_db: -18,
                    timeout_ms: 400,
                });
                let mut buffer = vec![0i16; 3200];
                let written = note.fill(&mut buffer);
                samples.extend_from_slice(&buffer[..written]);
            }
            samples.into()
        })
        .clone()
}

/// Forwards every digit `from` receives to `to` until aborted.
fn relay_digits(from: Arc<RtpSession>, to: Arc<RtpSession>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(key) = from.next_digit(Duration::from_secs(3600)).await {
            to.send_digit(key);
        }
    })
}

/// Mixes two legs' audio into one WAV, 20 ms at a time, until stopped.
async fn record_mix(
    path: &Path,
    allowance: u64,
    mut first: opentact_media::session::TapReceiver,
    mut second: opentact_media::session::TapReceiver,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> std::io::Result<u64> {
    use std::collections::VecDeque;
    const FRAME: usize = opentact_media::SAMPLES_PER_FRAME;
    let mut recorder = WavRecorder::create_within(path, allowance)?;
    let (mut a, mut b) = (VecDeque::<i16>::new(), VecDeque::<i16>::new());
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let mut frame = [0i16; FRAME];
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticker.tick() => {
                while let Ok(chunk) = first.try_recv() { a.extend(chunk); }
                while let Ok(chunk) = second.try_recv() { b.extend(chunk); }
                // Whatever arrived in this tick is mixed; a silent side adds zeros.
                for slot in frame.iter_mut() {
                    let mixed = i32::from(a.pop_front().unwrap_or(0)) + i32::from(b.pop_front().unwrap_or(0));
                    *slot = mixed.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
                }
                if !written(recorder.write(&frame), path)? {
                    break;
                }
            }
        }
    }
    recorder.finish()
}

#[async_trait]
impl CallBackend for SipCall {
    fn info(&self) -> CallInfo {
        self.info.clone()
    }

    fn state(&self) -> CallState {
        if matches!(self.events.state(), LegState::Ended(_)) {
            return CallState::Ended;
        }
        self.state.lock().call
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    fn ringing(&self) -> Option<watch::Receiver<bool>> {
        match &self.leg {
            Leg::Inbound(_) => None,
            Leg::Outbound { ringing, .. } => Some(ringing.subscribe()),
        }
    }

    async fn answer(&self) -> Result<(), CallError> {
        self.live()?;
        if self.rtp.lock().is_some() {
            return Ok(());
        }
        let leg = match &self.leg {
            Leg::Inbound(leg) => leg,
            Leg::Outbound { .. } => return self.place().await,
        };
        let offer_text = leg.sdp_offer.as_deref().ok_or_else(|| {
            CallError::Failed("the INVITE carried no SDP offer (late offer is not supported)".to_owned())
        })?;
        let offer =
            sdp::parse(offer_text).map_err(|error| CallError::Failed(format!("SDP offer: {error}")))?;
        let negotiated =
            sdp::negotiate(&offer.audio).map_err(|error| CallError::Failed(format!("SDP offer: {error}")))?;
        if offer.audio.is_webrtc() {
            return self.answer_webrtc(leg, offer_text, &offer.audio, negotiated).await;
        }
        if let Some(refused) = self.config.media_address_refused(offer.audio.address) {
            // 488 Not Acceptable Here: no media to that address, so no call.
            let _ = leg.reject_with_warning(488, &refused);
            return Err(CallError::Failed(format!("SDP offer: {refused}")));
        }
        let keys = match self.config.answer_srtp(&offer.audio) {
            Ok(keys) => keys,
            Err(refused) => {
                let _ = leg.reject_with_warning(488, &refused);
                return Err(CallError::Failed(format!("SDP offer: {refused}")));
            }
        };
        let rtp = self.bind_answering_media(&offer.audio, &negotiated).await?;
        // A caller behind NAT sends its media from the IP its INVITE came from, not always the
        // one its SDP names: that IP may be latched too (the session's rule against injection).
        rtp.set_signalling_address(leg.source.ip());
        if let Some(keys) = &keys {
            rtp.set_srtp(&keys.local, &keys.remote)
                .map_err(|error| CallError::Failed(format!("SRTP: {error}")))?;
            info!(suite = keys.local.suite.name(), "the call's media is SRTP");
        }
        let local = LocalMedia {
            session_id: u64::from(rtp.local_addr().port()) << 16 | u64::from(std::process::id() & 0xffff),
            version: 1,
            address: self.config.rtp_advertised,
            port: rtp.local_addr().port(),
            codecs: vec![negotiated.codec],
            telephone_event: negotiated.telephone_event,
            direction: offer.audio.direction.answer(),
            crypto: keys.map(|keys| keys.local.attribute()),
        };
        let answer = local.render(&offer.media_kinds, offer.audio_index);
        let rtp = Arc::new(rtp);
        let on_reoffer = self.reoffer_handler(&rtp, &local);
        leg.answer(answer, on_reoffer).map_err(|error| match error {
            opentact_sip::SipError::DialogEnded => CallError::Hangup,
            other => CallError::Failed(format!("answering: {other}")),
        })?;
        rtp.start();
        *self.rtp.lock() = Some(rtp);
        let mut state = self.state.lock();
        state.call = CallState::Answered;
        state.local = Some(local);
        Ok(())
    }

    async fn hangup(&self, reason: HangupReason) -> Result<(), CallError> {
        let answered = self.rtp.lock().is_some();
        // The background recording stops with the call, and stays to be kept by `record_stop`
        // (the session does, as the call ends).
        if let Some(stop) =
            self.state.lock().background.as_mut().and_then(|background| background.stop.take())
        {
            let _ = stop.send(());
        }
        let result = match &self.leg {
            Leg::Inbound(leg) if answered => leg.hangup().await,
            Leg::Inbound(leg) => {
                let status = match reason {
                    HangupReason::Busy => 486,
                    HangupReason::Rejected => 603,
                    HangupReason::Normal => 480,
                    HangupReason::Unavailable => 503,
                };
                leg.reject(status, None)
            }
            Leg::Outbound { answered, state, .. } => {
                // Ringing: ending our state cancels the INVITE (ring watches it); answered: BYE.
                let callee = answered.lock().clone();
                if let Some(callee) = callee {
                    callee.hangup().await;
                }
                state.send_if_modified(|current| {
                    let live = !matches!(current, LegState::Ended(_));
                    if live {
                        *current = LegState::Ended(LegEnd::Local);
                    }
                    live
                });
                Ok(())
            }
        };
        self.finish();
        match result {
            Ok(()) | Err(opentact_sip::SipError::DialogEnded) => Ok(()),
            Err(error) => {
                warn!(call = %self.info.id, %error, "hangup");
                Ok(())
            }
        }
    }

    async fn play(&self, media: &Media, barge_in: bool) -> Result<PlayOutcome, CallError> {
        // A pause before the answer lets the call ring that long (the session does not answer
        // for silence).
        if let Media::Silence(ms) = media
            && self.rtp.lock().is_none()
        {
            self.live()?;
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(u64::from(*ms))) => {}
                () = self.hung_up() => return Err(CallError::Hangup),
            }
            return Ok(PlayOutcome { interrupted: false });
        }
        let rtp = self.media()?;
        let rendered = tokio::select! {
            rendered = self.renderer.render(media, |name| {
                self.state.lock().recordings.get(name).cloned()
            }) => rendered?,
            () = self.hung_up() => return Err(CallError::Hangup),
        };
        let interrupted = self.play_rendered(&rtp, rendered, barge_in).await?;
        Ok(PlayOutcome { interrupted })
    }

    async fn next_digit(&self, timeout: Duration) -> Result<Option<char>, CallError> {
        let rtp = self.media()?;
        tokio::select! {
            digit = rtp.next_digit(timeout) => {
                self.live()?;
                Ok(digit)
            }
            () = self.hung_up() => Err(CallError::Hangup),
        }
    }

    async fn record(&self, request: &RecordRequest) -> Result<Recording, CallError> {
        let rtp = self.media()?;
        let allowance = self.recording_allowance().await?;
        let id = uuid::Uuid::new_v4().to_string();
        let path = self.recording_path(&id)?;
        let mut recorder = WavRecorder::create_within(&path, allowance)
            .map_err(|error| CallError::Failed(format!("creating {}: {error}", path.display())))?;
        // Paced by wall-clock time at the session (see `record_to`): the silence count below
        // and the file's length follow real time even under a flood.
        let mut tap = rtp.tap();
        let deadline = tokio::time::sleep(Duration::from_millis(u64::from(request.max_length_ms)));
        tokio::pin!(deadline);
        let silence_limit = u64::from(request.silence_timeout_ms);
        let mut silent_ms = 0u64;
        let mut heard_sound = false;
        let mut hung_up = false;
        loop {
            tokio::select! {
                frame = tap.recv() => {
                    let Some(frame) = frame else { hung_up = true; break };
                    let more = written(recorder.write(&frame), &path)
                        .map_err(|error| CallError::Failed(format!("recording: {error}")))?;
                    if !more {
                        break;
                    }
                    if rms(&frame) < SILENCE_RMS {
                        silent_ms += 20;
                    } else {
                        silent_ms = 0;
                        heard_sound = true;
                    }
                    // The silence timeout counts from the last sound (or the start).
                    if silence_limit > 0 && silent_ms >= silence_limit {
                        let _ = heard_sound;
                        break;
                    }
                }
                () = &mut deadline => break,
                digit = rtp.digit_buffered(), if request.finish_key.is_some() => {
                    if digit && request.finish_key.is_some_and(|key| rtp.take_digit_if(key)) {
                        break;
                    }
                    if !digit { hung_up = true; break; }
                    // Another key: drop it, keep recording.
                    let _ = rtp.next_digit(Duration::ZERO).await;
                }
                () = self.hung_up() => { hung_up = true; break }
            }
        }
        drop(tap);
        let duration = recorder.finish().map_err(|error| CallError::Failed(format!("recording: {error}")))?;
        let recording = self.keep_recording(&request.name, path, duration);
        if hung_up {
            return Err(CallError::Hangup);
        }
        Ok(recording)
    }

    async fn record_start(&self, name: &str) -> Result<(), CallError> {
        let rtp = self.media()?;
        if self.state.lock().background.is_some() {
            return Err(CallError::InvalidState("a background recording is already running".to_owned()));
        }
        let allowance = self.recording_allowance().await?;
        let id = uuid::Uuid::new_v4().to_string();
        let path = self.recording_path(&id)?;
        let tap = rtp.tap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let done = tokio::spawn(async move {
            let duration = record_to(&path, allowance, tap, stop_rx).await?;
            Ok((path, duration))
        });
        self.state.lock().background =
            Some(BackgroundRecording { name: name.to_owned(), stop: Some(stop_tx), done });
        Ok(())
    }

    async fn record_stop(&self) -> Result<Option<Recording>, CallError> {
        let Some(mut background) = self.state.lock().background.take() else { return Ok(None) };
        if let Some(stop) = background.stop.take() {
            let _ = stop.send(());
        }
        match background.done.await {
            Ok(Ok((path, duration))) => Ok(Some(self.keep_recording(&background.name, path, duration))),
            Ok(Err(error)) => Err(CallError::Failed(format!("recording: {error}"))),
            Err(error) => Err(CallError::Failed(format!("recording task: {error}"))),
        }
    }

    fn has_recording(&self, name: &str) -> bool {
        self.state.lock().recordings.contains_key(name)
    }

    async fn dial(
        &self,
        request: &DialRequest,
        bridged: &(dyn for<'t> Fn(&'t opentact_call::model::DialTarget) + Send + Sync),
    ) -> Result<DialResult, CallError> {
        self.live()?;
        let on_bridge_answer = self.on_bridge_answer.lock().clone();
        if self.rtp.lock().is_none() && on_bridge_answer.is_none() {
            self.answer().await?;
        }
        let dialer = self.dialer()?;
        // A recorded dial at the account's recording quota rings nobody: the flow's error path
        // decides (dial unrecorded, or tell the caller).
        let allowance = if request.record { self.recording_allowance().await? } else { 0 };
        let leg = dial::ring(
            dialer.as_ref(),
            &self.config,
            &self.info,
            &request.targets,
            request.caller_id.as_deref(),
            Duration::from_millis(u64::from(request.timeout_ms)),
            self.events.clone(),
            true,
            None,
        )
        .await?;
        if let Some(answered) = on_bridge_answer
            && self.rtp.lock().is_none()
        {
            if let Err(error) = self.answer().await {
                leg.call.hangup().await;
                leg.rtp.close();
                return Err(error);
            }
            answered();
        }
        let a_leg = match self.media() {
            Ok(a_leg) => a_leg,
            Err(error) => {
                leg.call.hangup().await;
                leg.rtp.close();
                return Err(error);
            }
        };
        // The bridge: each side sends what the other receives.
        leg.rtp.feed(a_leg.tap());
        a_leg.feed(leg.rtp.tap());
        // `record`: both sides mixed into one WAV, like the simulator names it.
        let recorder = if request.record {
            let id = uuid::Uuid::new_v4().to_string();
            let path = self.recording_path(&id)?;
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
            let (caller, callee) = (a_leg.tap(), leg.rtp.tap());
            let writing = path.clone();
            let task =
                tokio::spawn(async move { record_mix(&writing, allowance, caller, callee, stop_rx).await });
            Some((path, stop_tx, task))
        } else {
            None
        };
        // Keys pressed on one side reach the other (an IVR behind the dialled number).
        let relays =
            [relay_digits(a_leg.clone(), leg.rtp.clone()), relay_digits(leg.rtp.clone(), a_leg.clone())];
        self.state.lock().call = CallState::Bridged;
        bridged(&leg.target);
        let started = tokio::time::Instant::now();
        let mut callee = leg.call.events();
        // A rated leg talks only as long as the account pays for (its guard's limit).
        let paid_time = leg.slot.as_ref().and_then(|guard| guard.paid_time());
        let used_up = async {
            match paid_time {
                Some(paid_time) => paid_time.await,
                None => std::future::pending().await,
            }
        };
        let (callee_hung_up, limit_reached) = tokio::select! {
            _ = callee.ended() => (true, None),
            () = self.hung_up() => (false, None),
            reason = used_up => (false, Some(reason)),
        };
        a_leg.stop_feed();
        leg.rtp.close();
        for relay in relays {
            relay.abort();
        }
        let recording = match recorder {
            Some((path, stop, task)) => {
                let _ = stop.send(());
                match task.await {
                    Ok(Ok(duration)) => {
                        Some(self.keep_recording(&format!("dial-{}", leg.target.as_str()), path, duration))
                    }
                    Ok(Err(error)) => return Err(CallError::Failed(format!("recording the dial: {error}"))),
                    Err(error) => return Err(CallError::Failed(format!("recording task: {error}"))),
                }
            }
            None => None,
        };
        if let Some(reason) = limit_reached {
            info!(target = leg.target.as_str(), %reason, "ending the dialled leg");
            leg.call.hangup().await;
            self.state.lock().call = CallState::Answered;
            return Err(CallError::LimitExceeded(format!("dial: {reason}")));
        }
        if !callee_hung_up {
            leg.call.hangup().await;
            return Err(CallError::Hangup);
        }
        self.state.lock().call = CallState::Answered;
        Ok(DialResult {
            answered: leg.target,
            duration_ms: u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX),
            callee_hung_up: true,
            recording,
        })
    }

    async fn bridge(&self, call_id: &str) -> Result<(), CallError> {
        let a_leg = self.media()?;
        if call_id == self.info.id {
            return Err(CallError::invalid("bridge.call", "a call cannot be bridged with itself"));
        }
        let peer = self
            .dialer
            .as_ref()
            .and_then(|dialer| dialer.bridge_peer(&self.info.account, call_id))
            .ok_or_else(|| CallError::Failed(format!("no live call {call_id} in this account")))?;
        let other = peer.call;
        let b_leg = other.media().map_err(|error| match error {
            CallError::Hangup => CallError::Failed(format!("call {call_id} has ended")),
            CallError::InvalidState(_) => CallError::InvalidState(format!("call {call_id} is not answered")),
            other => other,
        })?;
        for (call, who) in [(self, "this call"), (other.as_ref(), "the other call")] {
            let state = call.state.lock().call;
            if matches!(state, CallState::Bridged | CallState::Held) {
                return Err(CallError::InvalidState(format!("{who} is {state}")));
            }
        }
        self.state.lock().call = CallState::Bridged;
        other.state.lock().call = CallState::Bridged;
        // Each side hears the other, and keys pressed on one reach the other.
        b_leg.feed(a_leg.tap());
        a_leg.feed(b_leg.tap());
        let relays = [relay_digits(a_leg.clone(), b_leg.clone()), relay_digits(b_leg.clone(), a_leg.clone())];
        (peer.report)(&self.info.id);
        let other_hung_up = tokio::select! {
            () = other.hung_up() => true,
            () = self.hung_up() => false,
        };
        a_leg.stop_feed();
        b_leg.stop_feed();
        for relay in relays {
            relay.abort();
        }
        for call in [self, other.as_ref()] {
            let mut state = call.state.lock();
            if state.call == CallState::Bridged {
                state.call = CallState::Answered;
            }
        }
        if other_hung_up { Ok(()) } else { Err(CallError::Hangup) }
    }

    async fn hold(&self, timeout: Duration) -> Result<(), CallError> {
        let rtp = self.media()?;
        match self.state.lock().call {
            CallState::Held => return Ok(()),
            CallState::Bridged => return Err(CallError::InvalidState("bridged".to_owned())),
            _ => {}
        }
        // We keep sending (the music); the caller only listens.
        self.reoffer(Direction::SendOnly).await?;
        rtp.set_background(Some(hold_music()));
        let me = self.me.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            if let Some(call) = me.upgrade() {
                debug!(call = %call.info.id, "hold timed out");
                let _ = call.resume().await;
            }
        });
        let mut state = self.state.lock();
        state.call = CallState::Held;
        if let Some(previous) = state.hold_timer.replace(timer) {
            previous.abort();
        }
        Ok(())
    }

    async fn unhold(&self) -> Result<(), CallError> {
        self.live()?;
        if self.state.lock().call != CallState::Held {
            return Err(CallError::InvalidState(self.state.lock().call.to_string()));
        }
        if let Some(timer) = self.state.lock().hold_timer.take() {
            timer.abort();
        }
        self.resume().await
    }

    async fn send_sms(&self, _request: &SmsRequest) -> Result<String, CallError> {
        self.live()?;
        Err(CallError::Failed("SMS is not available yet".to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::VoiceConfig;

    fn config(allow_private_media: bool) -> VoiceConfig {
        VoiceConfig {
            rtp_bind: "0.0.0.0".parse().expect("ip"),
            rtp_advertised: "8.8.8.8".parse().expect("ip"),
            rtp_ports: 20_000..=20_010,
            recordings_dir: std::env::temp_dir(),
            inband_dtmf: false,
            allow_private_media,
            recordings: crate::RecordingQuota::unlimited(),
            srtp: opentact_media::srtp::SrtpPolicy::Optional,
        }
    }

    #[test]
    fn srtp_offers_are_answered_per_the_policy() {
        use opentact_media::sdp;
        use opentact_media::srtp::SrtpPolicy;
        let plain = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                     m=audio 6000 RTP/AVP 0\r\n";
        let plain = sdp::parse(plain).expect("offer").audio;
        let secure = sdp::parse(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio 6000 RTP/SAVP 0\r\na=crypto:4 AES_CM_128_HMAC_SHA1_32 \
             inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj\r\n",
        )
        .expect("offer")
        .audio;
        let mut keyless = secure.clone();
        keyless.crypto.clear();
        let with = |srtp| VoiceConfig { srtp, ..config(true) };
        let keys = with(SrtpPolicy::Optional).answer_srtp(&secure).expect("answered").expect("with SRTP");
        assert_eq!((keys.local.tag, keys.remote.tag), (4, 4), "the answer takes the offer's tag");
        assert_eq!(keys.local.suite, keys.remote.suite);
        assert_ne!(keys.local, keys.remote, "our own key");
        assert!(with(SrtpPolicy::Optional).answer_srtp(&plain).expect("answered").is_none());
        assert!(with(SrtpPolicy::Required).answer_srtp(&secure).expect("answered").is_some());
        let refused = |srtp, offer: &opentact_media::sdp::AudioStream| {
            with(srtp).answer_srtp(offer).expect_err("refused")
        };
        assert!(refused(SrtpPolicy::Required, &plain).contains("requires SRTP"));
        assert!(refused(SrtpPolicy::Off, &secure).contains("turned off"));
        assert!(refused(SrtpPolicy::Optional, &keyless).contains("no a=crypto line"));
    }

    #[test]
    fn media_addresses_are_judged_like_signalling_targets() {
        let strict = config(false);
        for refused in
            ["127.0.0.1", "10.0.0.5", "192.168.1.2", "169.254.0.1", "::1", "fd00::5", "::ffff:10.1.1.1"]
        {
            assert!(strict.media_address_refused(refused.parse().expect("ip")).is_some(), "{refused}");
        }
        assert!(strict.media_address_refused("8.8.8.8".parse().expect("ip")).is_some(), "the platform's own");
        assert!(strict.media_address_refused("0.0.0.0".parse().expect("ip")).is_none(), "an old-style hold");
        assert!(strict.media_address_refused("8.8.4.4".parse().expect("ip")).is_none(), "a public peer");
        let lab = config(true);
        assert!(lab.media_address_refused("127.0.0.1".parse().expect("ip")).is_none());
    }
}
