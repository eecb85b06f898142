//! `<Dial>` on a real call: ring every target in parallel, bridge the first that answers,
//! cancel the others, and relay audio both ways until one side hangs up.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use opentact_call::error::CallError;
use opentact_call::model::{CallInfo, DialTarget};
use opentact_media::sdp::{self, AudioStream, Direction, LocalMedia};
use opentact_media::srtp::{self, CryptoSuite, SdesKey};
use opentact_media::webrtc::{OfferedLink, WebRtcLink};
use opentact_sip::{LegEvents, OutboundCall, OutboundOutcome, OutboundRequest, SipEndpoint};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info};

use crate::call::VoiceConfig;
use opentact_media::session::{PT_PCMA, PT_PCMU, RtpPeer, RtpSession};

/// The telephone-event payload type the platform offers.
const OFFER_TELEPHONE_EVENT: u8 = 101;

/// Resolves dial targets to SIP destinations; the server implements it from its configuration
/// (the carrier trunk), the store (SIP users) and the registrar (their contacts).
#[async_trait]
pub trait Dialer: Send + Sync {
    /// The SIP endpoint legs are placed from.
    fn endpoint(&self) -> Option<Arc<SipEndpoint>>;

    /// Where `target` rings: one request per destination (a user registered on two phones
    /// rings both). `sdp_offer` is left empty; the call fills it per leg. An empty list means
    /// the target cannot be reached now (an unregistered user).
    async fn resolve(
        &self,
        target: &DialTarget,
        call: &CallInfo,
        caller_id: Option<&str>,
    ) -> Result<Vec<OutboundRequest>, CallError>;

    /// `account`'s live call `id`, to bridge with; `None` when the account has no such call.
    fn bridge_peer(&self, _account: &str, _id: &str) -> Option<BridgePeer> {
        None
    }

    /// A place among the account's concurrent calls for one outbound leg of `call` to
    /// `target`, held for as long as the leg lives (dropped with it), or `LimitExceeded` when
    /// the account is at its cap (or another refusal: one the account cannot pay). A `<Dial>`
    /// leg is a call on the carrier trunk as much as the call it came from. The default takes
    /// none.
    async fn admit_leg(&self, _call: &CallInfo, _target: &DialTarget) -> Result<Option<LegSlot>, CallError> {
        Ok(None)
    }

    /// The payload types `request`'s leg is offered, in preference order (a SIP connection's
    /// codecs); `None`: PCMU and PCMA.
    fn offer_codecs(&self, _call: &CallInfo, _request: &OutboundRequest) -> Option<Vec<u8>> {
        None
    }

    /// Whether `request`'s leg must be SRTP whatever the platform's policy (a SIP connection's
    /// `encrypted_media`); the policy decides otherwise.
    fn offers_srtp(&self, _call: &CallInfo, _request: &OutboundRequest) -> bool {
        false
    }
}

/// Resolves, with the reason, when a leg has talked what its account can pay for.
pub type PaidTime = std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send>>;

/// A leg's place among its account's calls (see [`Dialer::admit_leg`]); given back when dropped.
pub type LegSlot = Box<dyn LegGuard>;

/// What a [`Dialer`] keeps for a leg while it lives: dropped when the leg ends.
pub trait LegGuard: Send + Sync {
    /// The leg answered (only the answering leg's guard hears it), now.
    fn answered(&mut self) {}

    /// Resolves, with the reason, when the answered leg has talked what its account can pay
    /// for (then it is hung up); `None`: it stays bridged as long as the call lasts.
    fn paid_time(&self) -> Option<PaidTime> {
        None
    }
}

/// Another live call to bridge with.
pub struct BridgePeer {
    /// The call.
    pub call: Arc<crate::SipCall>,
    /// Reports `call.bridged` on the peer's own events, with the id of the call it joined.
    pub report: Box<dyn Fn(&str) + Send + Sync>,
}

impl std::fmt::Debug for BridgePeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgePeer").field("call", &self.call).finish_non_exhaustive()
    }
}

/// A leg that answered.
pub(crate) struct AnsweredLeg {
    pub target: DialTarget,
    pub call: OutboundCall,
    pub rtp: Arc<RtpSession>,
    /// The platform's SDP offer that the callee answered (the base of later re-offers).
    pub local: LocalMedia,
    /// The leg's place among the account's calls, given back when the leg is dropped.
    pub slot: Option<LegSlot>,
}

/// A leg that rings: its target, call, media, offer, place among the account's calls and, for a
/// browser (a user signed in on the web call page), the WebRTC link waiting for its answer.
type RingingLeg =
    (DialTarget, OutboundCall, Arc<RtpSession>, LocalMedia, Option<LegSlot>, Option<OfferedLink>);

/// Why no leg answered.
#[derive(Debug, Default)]
struct Tally {
    busy: usize,
    failed: Vec<String>,
    no_answer: usize,
}

/// Ring `targets` in parallel; the first 2xx wins, the rest are cancelled. With `leg_slots`
/// each leg first takes a place among the account's calls ([`Dialer::admit_leg`]); when the
/// account has too few, nothing rings and the dial fails with `LimitExceeded`. (A placed
/// call's own leg is the call, which holds its place already.)
#[allow(clippy::too_many_arguments)]
pub(crate) async fn ring(
    dialer: &dyn Dialer,
    config: &VoiceConfig,
    info: &CallInfo,
    targets: &[DialTarget],
    caller_id: Option<&str>,
    timeout: Duration,
    mut caller: LegEvents,
    leg_slots: bool,
    ringing: Option<&watch::Sender<bool>>,
) -> Result<AnsweredLeg, CallError> {
    let endpoint = dialer
        .endpoint()
        .ok_or_else(|| CallError::Failed("SIP is not running: outbound legs cannot be placed".to_owned()))?;
    let mut tally = Tally::default();
    let mut legs: Vec<RingingLeg> = Vec::new();
    let mut pending = JoinSet::new();
    let mut resolved = Vec::new();
    for target in targets {
        let requests = match dialer.resolve(target, info, caller_id).await {
            Ok(requests) => requests,
            Err(error) => {
                tally.failed.push(format!("{}: {error}", target.as_str()));
                continue;
            }
        };
        if requests.is_empty() {
            tally.failed.push(format!("{}: not reachable now", target.as_str()));
        }
        resolved.push((target, requests));
    }
    // Every leg's place is taken before any rings: an account at its cap sends nothing out.
    let mut slots = Vec::new();
    if leg_slots {
        for (target, requests) in &resolved {
            for _ in requests {
                slots.push(dialer.admit_leg(info, target).await?);
            }
        }
    }
    let mut slots = slots.into_iter();
    for (target, requests) in resolved {
        for mut request in requests {
            let slot = slots.next().flatten();
            let unknown_peer = RtpPeer {
                address: SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 0),
                codec: PT_PCMU,
                telephone_event: Some(OFFER_TELEPHONE_EVENT),
                inband_dtmf: false,
            };
            let rtp = RtpSession::bind(config.rtp_bind, config.rtp_ports.clone(), unknown_peer)
                .await
                .map_err(|error| CallError::LimitExceeded(format!("no RTP port: {error}")))?;
            // SDES keys only where the SDP carrying them is protected, unless SRTP is required.
            let srtp_key = if dialer.offers_srtp(info, &request) || config.srtp.offers_on(request.transport) {
                Some(
                    SdesKey::generate(1, CryptoSuite::AesCm128HmacSha1_80)
                        .map_err(|error| CallError::Failed(format!("SRTP: {error}")))?,
                )
            } else {
                None
            };
            let mut offer = LocalMedia {
                session_id: u64::from(rtp.local_addr().port()),
                version: 1,
                address: config.rtp_advertised,
                port: rtp.local_addr().port(),
                codecs: dialer.offer_codecs(info, &request).unwrap_or_else(|| vec![PT_PCMU, PT_PCMA]),
                telephone_event: Some(OFFER_TELEPHONE_EVENT),
                direction: Direction::SendRecv,
                crypto: srtp_key.as_ref().map(SdesKey::attribute),
            };
            // A user registered over WebSocket is a browser: it takes only WebRTC media
            // (ICE, DTLS-SRTP), whatever `media.srtp` says.
            let webrtc = if request.transport == "ws" {
                let advertised = SocketAddr::new(config.rtp_advertised, rtp.local_addr().port());
                let (offered, sdp) =
                    WebRtcLink::offer(rtp.local_addr(), advertised, &offer.codecs, OFFER_TELEPHONE_EVENT)
                        .map_err(|error| CallError::Failed(error.to_string()))?;
                offer.crypto = None;
                request.sdp_offer = sdp;
                Some(offered)
            } else {
                request.sdp_offer = offer.render(&[], 0);
                None
            };
            // A callee behind NAT (a registered phone) sends its media from the address its
            // registration came from: that IP may be latched too, besides the SDP's.
            if let Some(destination) = request.destination {
                rtp.set_signalling_address(destination.ip());
            }
            match endpoint.invite(request) {
                Ok((call, outcome)) => {
                    // The first leg to ring makes the call ring.
                    if let Some(ringing) = ringing {
                        let (mut rung, ringing) = (call.ringing(), ringing.clone());
                        tokio::spawn(async move {
                            if rung.wait_for(|rung| *rung).await.is_ok() {
                                ringing.send_replace(true);
                            }
                        });
                    }
                    let index = legs.len();
                    legs.push((target.clone(), call, Arc::new(rtp), offer, slot, webrtc));
                    pending.spawn(async move { (index, outcome.wait().await) });
                }
                Err(error) => tally.failed.push(format!("{}: {error}", target.as_str())),
            }
        }
    }
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut winner = None;
    let mut caller_gone = false;
    while !pending.is_empty() {
        tokio::select! {
            _ = caller.ended() => {
                caller_gone = true;
                break;
            }
            joined = pending.join_next() => {
                let Some(Ok((index, outcome))) = joined else { continue };
                match outcome {
                    OutboundOutcome::Answered { sdp } => {
                        winner = Some((index, sdp));
                        break;
                    }
                    OutboundOutcome::Rejected { status: 486 | 600 | 603 } => tally.busy += 1,
                    OutboundOutcome::Rejected { status: 408 | 480 | 487 } => tally.no_answer += 1,
                    OutboundOutcome::Rejected { status } => tally.failed.push(format!("{}: {status}", legs[index].0.as_str())),
                    OutboundOutcome::Failed(reason) => tally.failed.push(format!("{}: {reason}", legs[index].0.as_str())),
                }
            }
            () = &mut deadline => {
                tally.no_answer += pending.len();
                break;
            }
        }
    }
    // Every leg but the winner stops ringing (or, if it answered at the same moment, ends).
    for (index, (_, call, rtp, _, _, _)) in legs.iter().enumerate() {
        if winner.as_ref().is_some_and(|(w, _)| *w == index) {
            continue;
        }
        rtp.close();
        let call = call.clone();
        tokio::spawn(async move {
            call.cancel().await;
            call.hangup().await;
        });
    }
    pending.detach_all();
    if caller_gone {
        if let Some((index, _)) = winner {
            legs[index].2.close();
            legs[index].1.hangup().await;
        }
        return Err(CallError::Hangup);
    }
    let Some((index, answer)) = winner else {
        debug!(?tally, "no leg answered");
        return Err(if tally.busy > 0 && tally.no_answer == 0 {
            CallError::Busy
        } else if tally.no_answer > 0 || tally.failed.is_empty() {
            CallError::NoAnswer
        } else {
            CallError::Failed(tally.failed.join("; "))
        });
    };
    let (target, call, rtp, local, mut slot, webrtc) = legs.swap_remove(index);
    let parsed = sdp::parse(&answer).map_err(|error| CallError::Failed(format!("the callee's SDP: {error}")));
    let negotiated = parsed.as_ref().ok().and_then(|p| sdp::negotiate(&p.audio).ok());
    let (Ok(parsed), Some(negotiated)) = (parsed.as_ref(), negotiated) else {
        call.hangup().await;
        rtp.close();
        return Err(CallError::Failed("the callee answered without a usable SDP answer".to_owned()));
    };
    if let Some(offered) = webrtc {
        // Media goes only where the browser's ICE checks come from: the SDP's address (0.0.0.0
        // from a browser) is not used, so not checked.
        match offered.accept(&answer) {
            Ok(link) => rtp.set_webrtc(link),
            Err(error) => {
                call.hangup().await;
                rtp.close();
                return Err(CallError::Failed(format!("{}: the browser's SDP: {error}", target.as_str())));
            }
        }
    } else if let Some(refused) = config.media_address_refused(parsed.audio.address) {
        // Not one packet goes there: the leg ends before its media starts.
        call.hangup().await;
        rtp.close();
        return Err(CallError::Failed(format!("{}: the callee's SDP: {refused}", target.as_str())));
    }
    if rtp.webrtc_connected().is_none()
        && let Err(refused) = answered_srtp(&rtp, &local, &parsed.audio)
    {
        call.hangup().await;
        rtp.close();
        return Err(CallError::Failed(format!("{}: the callee's SDP: {refused}", target.as_str())));
    }
    rtp.set_peer(RtpPeer {
        address: SocketAddr::new(parsed.audio.address, parsed.audio.port),
        codec: negotiated.codec,
        telephone_event: negotiated.telephone_event,
        inband_dtmf: false,
    });
    rtp.start();
    info!(target = target.as_str(), "dial answered");
    // From here the leg is up (a leg refused above never talked).
    if let Some(guard) = slot.as_mut() {
        guard.answered();
    }
    Ok(AnsweredLeg { target, call, rtp, local, slot })
}

/// Keys the leg's media with the callee's `a=crypto` when we offered SRTP; an answer in the
/// other transport than the offer's (RFC 3264 §6) or without a usable key fails the leg.
fn answered_srtp(rtp: &RtpSession, offer: &LocalMedia, answer: &AudioStream) -> Result<(), String> {
    let ours = offer.crypto.as_deref().and_then(|line| SdesKey::parse(line).ok().flatten());
    match (ours, answer.is_srtp()) {
        (None, false) => Ok(()),
        (None, true) => Err("it answered SRTP (RTP/SAVP) to a plain RTP offer".to_owned()),
        (Some(_), false) => Err(format!("it answered {} to an SRTP (RTP/SAVP) offer", answer.protocol)),
        (Some(ours), true) => {
            let remote = srtp::choose(&answer.crypto).map_err(|error| error.to_string())?;
            if (remote.tag, remote.suite) != (ours.tag, ours.suite) {
                return Err(format!(
                    "its a=crypto answers tag {} with {}, the offer had tag {} with {}",
                    remote.tag,
                    remote.suite.name(),
                    ours.tag,
                    ours.suite.name()
                ));
            }
            rtp.set_srtp(&ours, &remote).map_err(|error| error.to_string())?;
            info!(suite = ours.suite.name(), "the leg's media is SRTP");
            Ok(())
        }
    }
}
