//! SIP trunking: a customer's PBX behind a SIP connection, both ways.
//!
//! Inbound: a call to a number assigned to a connection goes to the PBX — an IP connection's
//! `ip:port`, then its `failover_addresses` in order, each ringing up to `ring_timeout_secs`,
//! then the contacts a credential connection registered (`<login>@<subdomain>.<platform
//! domain>` in the registrar). The next address is tried when one does not answer in time,
//! answers 408/480/487, a 5xx or any other failure; busy (486/600/603) ends the search. The
//! caller is answered only when the PBX answers, so a PBX that never does leaves a caller who
//! is refused with a status and a Q.850 `Reason` (RFC 3326) — 480 and cause 19 (no answer),
//! 20 (nothing registered), 27 (every address failed), 486 and 17 (busy) — and the call's
//! `call.hangup` event carries the same cause and why. The PBX is offered the connection's
//! `codecs` in its order; the platform bridges the two legs as `<Dial>` does.
//!
//! Outbound (termination): a connection's call to a number nobody on the platform leases goes
//! out through the carrier trunk. Its caller ID (the From user) must be a number the account
//! leases or has verified (else 403). It takes a channel of the connection's outbound voice
//! profile (`channel_limit`) and a start slot (`calls_per_second`, no waiting: an INVITE is
//! not held); over a limit it is refused with 503 and `Reason: Q.850;cause=34;text="…"`, and
//! its `call.hangup` event says which limit (shared with `POST /rest/call` on this node,
//! [`ProfileLimits`]). With a rating deck it is rated as `POST /rest/call` is, under the same
//! profile ([`crate::billing`]): refused with 402 and Q.850 21 when the balance, the profile's
//! daily spend limit or its max_rate does not allow it, ended with cause 21 when it has used
//! what the account can pay, and charged (to the profile's daily spend) when it ends.
//!
//! Both ways a trunk call is live ([`crate::live_calls`]) while it rings and talks: a REST
//! `hangup` command ends it. A PBX is recognised by its connection's `ip` or any of its
//! `failover_addresses` (the store's `connections_by_ip`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use opentact_call::error::CallError;
use opentact_call::events::{EventKind, Q850};
use opentact_call::model::{CallInfo, DialRequest, DialTarget, Direction};
use opentact_call::{CallBackend, CallSession, FlowOutcome};
use opentact_flows::ControlMode;
use opentact_sip::{Caller, IncomingCall, OutboundRequest};
use opentact_store::SipConnection;
use opentact_voice::SipCall;
use parking_lot::Mutex;
use tracing::{info, warn};

use crate::billing::{PAYMENT_CAUSE, end_when_used_up, is_unpaid};
use crate::call_runner::{Flow, new_call_info};
use crate::originate::ProfileLimits;
use crate::routing::{CallRouter, domain_label, tn_of};

/// How long each address of a connection rings when the connection names no
/// `ring_timeout_secs`.
pub const DEFAULT_RING_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection's call out through the carrier may ring.
pub const TERMINATION_RING_TIMEOUT: Duration = Duration::from_secs(120);
/// Q.850 27: the PBX's addresses all failed (unreachable, 5xx).
pub const DESTINATION_OUT_OF_ORDER: Q850 = Q850 { code: 27, name: "DESTINATION_OUT_OF_ORDER" };
/// Q.850 20: a credential connection has no registered contact.
pub const SUBSCRIBER_ABSENT: Q850 = Q850 { code: 20, name: "SUBSCRIBER_ABSENT" };

/// The trunking state the dialer and the router share: the leg each trunk call is ringing now
/// (so the dialer places exactly it, with the connection's codecs), and the outbound voice
/// profiles' channels and rates.
#[derive(Debug, Default)]
pub struct Trunking {
    armed: Mutex<HashMap<String, ArmedLeg>>,
    /// Calls out through a connection, rated under its outbound voice profile before they
    /// ring: their leg is charged as rated here ([`crate::dialer`] takes it).
    rated: Mutex<HashMap<String, crate::billing::RatedCall>>,
    /// Shared with the originator: a profile's channels count REST calls and trunk calls.
    pub limits: Arc<ProfileLimits>,
}

#[derive(Debug, Clone)]
struct ArmedLeg {
    request: OutboundRequest,
    codecs: Vec<u8>,
    /// The connection's media must be SRTP (`encrypted_media`).
    srtp: bool,
}

impl Trunking {
    /// Trunking whose profile limits are `limits` (counted by all the nodes of a shared
    /// database: [`ProfileLimits::shared`]).
    pub fn with_limits(limits: ProfileLimits) -> Self {
        Trunking { armed: Mutex::default(), rated: Mutex::default(), limits: Arc::new(limits) }
    }

    /// How `call`'s leg out is rated, once: the dialer takes it when the leg is admitted.
    pub(crate) fn take_rated(&self, call: &str) -> Option<crate::billing::RatedCall> {
        self.rated.lock().remove(call)
    }

    /// The leg `call` rings next; the dialer resolves its target to exactly this request.
    fn arm(&self, call: &str, request: OutboundRequest, codecs: Vec<u8>, srtp: bool) {
        self.armed.lock().insert(call.to_owned(), ArmedLeg { request, codecs, srtp });
    }

    fn disarm(&self, call: &str) {
        self.armed.lock().remove(call);
    }

    /// The armed request for `target` of `call`, if `call` is a trunk call ringing its PBX.
    pub(crate) fn resolve(&self, call: &CallInfo, target: &DialTarget) -> Option<OutboundRequest> {
        let armed = self.armed.lock();
        let leg = armed.get(&call.id)?;
        matches!(target, DialTarget::SipUri(uri) if *uri == leg.request.uri).then(|| leg.request.clone())
    }

    /// The connection's codecs for a leg of `call` to its PBX.
    pub(crate) fn codecs(&self, call: &CallInfo, request: &OutboundRequest) -> Option<Vec<u8>> {
        let armed = self.armed.lock();
        let leg = armed.get(&call.id)?;
        (leg.request.uri == request.uri && !leg.codecs.is_empty()).then(|| leg.codecs.clone())
    }

    /// Whether a leg of `call` to its PBX must be SRTP (the connection's `encrypted_media`).
    pub(crate) fn srtp(&self, call: &CallInfo, request: &OutboundRequest) -> bool {
        let armed = self.armed.lock();
        armed.get(&call.id).is_some_and(|leg| leg.request.uri == request.uri && leg.srtp)
    }
}

/// A codec name's static payload type (RFC 3551).
fn payload_type(codec: &str) -> Option<u8> {
    match codec.to_ascii_uppercase().as_str() {
        "PCMU" => Some(0),
        "PCMA" => Some(8),
        _ => None,
    }
}

/// An RFC 3326 `Reason` header value for a Q.850 cause.
pub(crate) fn reason_header(cause: Q850, text: &str) -> String {
    let text: String = text.chars().filter(|c| *c != '"' && *c != '\\' && !c.is_control()).collect();
    format!("Q.850;cause={};text=\"{text}\"", cause.code)
}

/// Why a trunk call ended without a conversation: its SIP status, cause and reason.
struct Refusal {
    status: u16,
    cause: Q850,
    reason: String,
}

/// Whether an INVITE's offer is SRTP with a key (`RTP/SAVP` and `a=crypto`).
fn offers_srtp(offer: Option<&str>) -> bool {
    offer
        .and_then(|sdp| opentact_media::sdp::parse(sdp).ok())
        .is_some_and(|sdp| sdp.audio.is_srtp() && !sdp.audio.crypto.is_empty())
}

/// Where a connection's PBX is reached, in order: `ip:port` and the failover addresses, then
/// the registered contacts of a credential connection.
fn pbx_legs(router: &CallRouter, connection: &SipConnection, tn: i64, from: &str) -> Vec<OutboundRequest> {
    let mut legs = Vec::new();
    let mut addresses: Vec<SocketAddr> = Vec::new();
    if let Some(ip) = connection.ip.as_deref().and_then(|ip| ip.parse().ok()) {
        let port = connection.port.and_then(|port| u16::try_from(port).ok()).unwrap_or(5060);
        addresses.push(SocketAddr::new(ip, port));
    }
    addresses.extend(
        connection.failover_addresses.iter().filter_map(|address| address.parse::<SocketAddr>().ok()),
    );
    for address in addresses {
        let uri = format!("sip:{tn}@{address}");
        legs.push(OutboundRequest {
            to: uri.clone(),
            uri,
            destination: Some(address),
            transport: connection.transport_protocol.sip_name(),
            from: from.to_owned(),
            sdp_offer: String::new(),
            headers: Vec::new(),
        });
    }
    if let (Some(login), Some(subdomain), Some(endpoint)) =
        (&connection.login, &connection.subdomain, router.runner.dialer.endpoint.get())
    {
        let realm = format!("{subdomain}.{}", router.sip_domain);
        for binding in endpoint.registrar().contacts(&realm, login) {
            legs.push(OutboundRequest {
                uri: binding.contact.clone(),
                destination: Some(binding.source),
                transport: binding.transport,
                from: from.to_owned(),
                to: format!("sip:{tn}@{realm}"),
                sdp_offer: String::new(),
                headers: Vec::new(),
            });
        }
    }
    legs
}

impl CallRouter {
    /// Trunking's part of routing: a call to a number on a SIP connection goes to its PBX, a
    /// connection's call to a number nobody here leases goes out through the carrier. The
    /// call comes back when trunking has nothing to do with it.
    pub(crate) async fn trunk(&self, call: IncomingCall) -> Option<IncomingCall> {
        if matches!(call.caller, Caller::User { .. }) {
            return Some(call);
        }
        let Some(tn) = call.request_uri.user.as_deref().and_then(tn_of) else { return Some(call) };
        let lease = match self.store.lease_by_tn(tn).await {
            Ok(lease) => lease,
            Err(error) => {
                warn!(%error, "trunking: looking up the number");
                return Some(call);
            }
        };
        match lease {
            Some(opentact_store::TnLease { voice: true, sip_connection: Some(id), account, .. }) => {
                let connection = match self.store.get_connection(account, id).await {
                    Ok(Some(connection)) if connection.is_active => connection,
                    _ => return Some(call),
                };
                // A customer's connection reaches only its own account's numbers.
                match self.caller_accounts(&call).await {
                    Some(allowed) if !allowed.contains(&account) => {
                        let reason = "a SIP connection reaches only its own account's numbers and users";
                        let _ = call.reject(403, Some(reason));
                        return None;
                    }
                    _ => {}
                }
                self.to_pbx(call, connection, tn).await;
                None
            }
            Some(_) => Some(call),
            None => match self.calling_connection(&call).await {
                Some(connection) => {
                    self.terminate(call, connection, tn).await;
                    None
                }
                None => Some(call),
            },
        }
    }

    /// The accounts a trunk-side caller may reach (`None`: a carrier, every account).
    async fn caller_accounts(&self, call: &IncomingCall) -> Option<Vec<uuid::Uuid>> {
        self.calling_connection(call).await.map(|connection| vec![connection.account])
    }

    /// The customer's SIP connection that placed `call` (by source address or digest), if a
    /// connection did (not a carrier).
    async fn calling_connection(&self, call: &IncomingCall) -> Option<SipConnection> {
        match &call.caller {
            Caller::Trunk => {
                let ip = call.source.ip();
                if self.carriers.iter().any(|network| network.contains(ip)) {
                    return None;
                }
                let connections = self.store.connections_by_ip(&ip.to_string()).await.ok()?;
                connections.into_iter().find(|connection| connection.is_active)
            }
            Caller::Connection { realm, login } => {
                let label = domain_label(&realm.to_ascii_lowercase(), &self.sip_domain)?.to_owned();
                let connection = self.store.connection_by_subdomain(&label).await.ok().flatten()?;
                (connection.login.as_deref() == Some(login.as_str())).then_some(connection)
            }
            Caller::User { .. } => None,
        }
    }

    /// The HA1 a credential connection's PBX registers with: its login in the realm
    /// `<subdomain>.<platform domain>`.
    pub(crate) async fn connection_ha1(&self, label: &str, login: &str) -> Option<String> {
        let connection = self.store.connection_by_subdomain(label).await.ok().flatten()?;
        if connection.login.as_deref() != Some(login) {
            return None;
        }
        connection.ha1
    }

    /// The call's SipCall and session, run by the platform itself (no app): events, CDR.
    async fn trunk_session(
        &self,
        call: IncomingCall,
        account: uuid::Uuid,
        to: String,
        tn: Option<i64>,
        shaken: Option<&crate::shaken::InboundCheck>,
    ) -> (Arc<SipCall>, Arc<CallSession>) {
        let runner = &self.runner;
        let time_zone = self.store.get_account(account).await.ok().flatten().map(|account| account.time_zone);
        let from = call.from.user.clone().unwrap_or_else(|| call.from.to_string());
        let info = new_call_info(account, None, from, to, tn, Direction::Inbound, time_zone);
        tracing::Span::current().record("call", info.id.as_str());
        let dialer: Arc<dyn opentact_voice::Dialer> = runner.dialer.clone();
        let sip_call = SipCall::new(info, call, runner.voice.clone(), runner.renderer.clone(), Some(dialer));
        let flow = Flow {
            account,
            app: None,
            component: runner.xml_guest.clone(),
            mode: ControlMode::Xml(String::new()),
        };
        let session = runner.session_with(&sip_call, &flow, shaken);
        // The caller is answered when the far end answers, and `call.answered` says so then.
        let answered = Arc::downgrade(&session);
        sip_call.answer_on_bridge(Arc::new(move || {
            if let Some(session) = answered.upgrade() {
                session.events().answered();
            }
        }));
        // Live like any call: listed, bridgeable, and a REST `hangup` ends it.
        if let Ok(id) = uuid::Uuid::parse_str(&session.info().id) {
            runner.live_calls.register_trunk(id, account, session.clone(), sip_call.clone());
        }
        (sip_call, session)
    }

    /// End a trunk call: a conversation that happened ends normally; otherwise the caller is
    /// refused with the status and cause, and `call.hangup` says why.
    async fn end_trunk_call(&self, sip_call: &SipCall, session: &CallSession, refusal: Option<Refusal>) {
        if let Ok(id) = uuid::Uuid::parse_str(&session.info().id) {
            self.runner.live_calls.remove(id);
        }
        if let Some(Refusal { status, cause, reason }) = refusal {
            info!(status, cause = cause.code, %reason, "trunk call refused");
            session.refuse(cause, reason.clone());
            let _ = sip_call.reject(status, &reason_header(cause, &reason));
        }
        session.finish(FlowOutcome::Completed).await;
        let _ = CallBackend::hangup(sip_call, opentact_call::model::HangupReason::Normal).await;
    }

    /// A call to a number on `connection`: ring its PBX's addresses one after another.
    async fn to_pbx(&self, call: IncomingCall, connection: SipConnection, tn: i64) {
        // Verified like a call to an app (`CallRouter::shaken_check`), under the platform's
        // policy: a number on a connection has no app to set its own.
        let shaken = match self.runner.dialer.shaken.verify_inbound(&call, None).await {
            Ok(check) => check,
            Err((status, reason)) => {
                info!(status, %reason, "trunk call rejected (STIR/SHAKEN)");
                let _ = call.reject(status, Some(&reason));
                return;
            }
        };
        let _slot = match self.runner.admission.admit(connection.account).await {
            Ok(slot) => slot,
            Err(refusal) => {
                let reason = refusal.to_string();
                let _ = call.reject(503, Some(&reason_header(Q850::NO_CIRCUIT_AVAILABLE, &reason)));
                return;
            }
        };
        let from = format!(
            "sip:{}@{}",
            call.from.user.clone().unwrap_or_else(|| "anonymous".to_owned()),
            self.runner.dialer.local
        );
        let legs = pbx_legs(self, &connection, tn, &from);
        // A call in costs the number's account, as one to an app does ([`crate::billing`]).
        let rated_in = self.runner.dialer.billing.authorize_inbound(connection.account).await;
        let rang = rated_in.is_ok() && call.ringing().is_ok();
        let (sip_call, session) =
            self.trunk_session(call, connection.account, tn.to_string(), Some(tn), Some(&shaken)).await;
        if rang {
            // The caller was sent 180 Ringing.
            session.events().emit(EventKind::Ringing);
        }
        let rated = match rated_in {
            Ok(rated) => rated,
            Err(refusal) => {
                let refusal = Refusal { status: 402, cause: PAYMENT_CAUSE, reason: refusal.to_string() };
                self.end_trunk_call(&sip_call, &session, Some(refusal)).await;
                return;
            }
        };
        let allowance = rated.as_ref().map(|rated| end_when_used_up(&session, &sip_call, rated));
        let id = session.info().id;
        let codecs: Vec<u8> = connection.codecs.iter().filter_map(|codec| payload_type(codec)).collect();
        let timeout = connection
            .ring_timeout_secs
            .and_then(|secs| u64::try_from(secs).ok())
            .map_or(DEFAULT_RING_TIMEOUT, Duration::from_secs);
        let trunking = &self.runner.dialer.trunk;
        let mut failures = Vec::new();
        let mut no_answer = false;
        let mut refusal = None;
        if legs.is_empty() {
            refusal = Some(Refusal {
                status: 480,
                cause: SUBSCRIBER_ABSENT,
                reason: format!(
                    "SIP connection {:?} has no address and its PBX is not registered",
                    connection.name
                ),
            });
        }
        for (index, request) in legs.iter().enumerate() {
            let uri = request.uri.clone();
            trunking.arm(&id, request.clone(), codecs.clone(), connection.encrypted_media.is_some());
            let dialled = session
                .dial(DialRequest {
                    targets: vec![DialTarget::SipUri(uri.clone())],
                    timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
                    caller_id: None,
                    record: false,
                })
                .await;
            trunking.disarm(&id);
            match dialled {
                Ok(_) | Err(CallError::Hangup) => {
                    refusal = None;
                    break;
                }
                Err(CallError::Busy) => {
                    refusal = Some(Refusal {
                        status: 486,
                        cause: Q850::USER_BUSY,
                        reason: format!("the PBX at {uri} is busy"),
                    });
                    break;
                }
                Err(CallError::NoAnswer) => {
                    info!(address = index, %uri, "the PBX did not answer: next address");
                    no_answer = true;
                }
                Err(error) => {
                    info!(address = index, %uri, %error, "the PBX failed: next address");
                    failures.push(format!("{uri}: {error}"));
                }
            }
            if index + 1 == legs.len() {
                let tried = legs.len();
                refusal = Some(if no_answer {
                    Refusal {
                        status: 480,
                        cause: Q850::NO_ANSWER,
                        reason: format!(
                            "no answer from SIP connection {:?} ({tried} address(es) tried)",
                            connection.name
                        ),
                    }
                } else {
                    Refusal {
                        status: 480,
                        cause: DESTINATION_OUT_OF_ORDER,
                        reason: format!(
                            "SIP connection {:?} failed at every address: {}",
                            connection.name,
                            failures.join("; ")
                        ),
                    }
                });
            }
        }
        self.end_trunk_call(&sip_call, &session, refusal).await;
        if let Some(allowance) = allowance {
            allowance.abort();
        }
        if let (Some(rated), Ok(call)) = (rated, uuid::Uuid::parse_str(&id)) {
            self.runner
                .dialer
                .billing
                .settle_logged(&self.runner.call_log, connection.account, call, &rated)
                .await;
        }
    }

    /// A connection's call to `tn`, a number off the platform: out through the carrier, under
    /// the caller-ID rule and the connection's outbound voice profile.
    async fn terminate(&self, call: IncomingCall, connection: SipConnection, tn: i64) {
        let account = connection.account;
        if connection.encrypted_media.is_some() && !offers_srtp(call.sdp_offer.as_deref()) {
            let reason = format!("plain RTP refused: SIP connection {:?} requires SRTP", connection.name);
            info!(%reason, "trunk call refused");
            let _ = call.reject_with_warning(488, &reason);
            return;
        }
        let caller = call.from.user.clone().unwrap_or_default();
        if !self.may_present(account, &caller).await {
            let reason = format!("caller ID {caller:?} is not a number this account leases or has verified");
            info!(%reason, "trunk call refused");
            let _ = call.reject(403, Some(&reason_header(Q850::CALL_REJECTED, &reason)));
            return;
        }
        let profile = match connection.outbound_voice_profile {
            Some(id) => self.store.get_ovp(account, id).await.ok().flatten(),
            None => None,
        };
        // Rated like `POST /rest/call`, under the connection's profile (its max_rate and daily
        // spend limit): refused with 402 and Q.850 21 when the account cannot pay.
        let target = DialTarget::Number(tn.to_string());
        let payment = self.runner.dialer.billing.authorize(account, profile.as_ref(), &target).await;
        let trunking = &self.runner.dialer.trunk;
        let limits = &trunking.limits;
        let channel = match &profile {
            Some(profile) => Some(limits.try_channel(profile).await),
            None => None,
        };
        let no_slot = match (&channel, &profile) {
            (Some(Ok(_)), Some(profile)) => limits.start_slot(profile, Some(Duration::ZERO)).await.is_none(),
            _ => false,
        };
        let over = match (&channel, &profile) {
            (Some(Err(reason)), _) => Some(reason.clone()),
            (_, Some(profile)) if no_slot => Some(format!(
                "call rate limit reached: outbound voice profile {:?} ({}) starts {} calls per second",
                profile.name,
                profile.uuid,
                profile.calls_per_second.unwrap_or_default()
            )),
            _ => None,
        };
        let slot = self.runner.admission.admit(account).await;
        let rang = call.ringing().is_ok();
        let (sip_call, session) = self.trunk_session(call, account, tn.to_string(), None, None).await;
        if rang {
            session.events().emit(EventKind::Ringing);
        }
        let refusal_of = |reason: String| Refusal { status: 503, cause: Q850::NO_CIRCUIT_AVAILABLE, reason };
        let unpaid = |reason: String| Refusal { status: 402, cause: PAYMENT_CAUSE, reason };
        let refusal = match (over, slot, payment) {
            (Some(reason), _, _) => Some(refusal_of(reason)),
            (None, Err(refusal), _) => Some(refusal_of(refusal.to_string())),
            (None, Ok(_), Err(refusal)) => Some(unpaid(refusal.to_string())),
            (None, Ok(_slot), Ok(rated)) => {
                let id = session.info().id.clone();
                if let Some(rated) = rated {
                    trunking.rated.lock().insert(id.clone(), rated);
                }
                let dialled = session
                    .dial(DialRequest {
                        targets: vec![target],
                        timeout_ms: u32::try_from(TERMINATION_RING_TIMEOUT.as_millis()).unwrap_or(u32::MAX),
                        caller_id: Some(caller.clone()),
                        record: false,
                    })
                    .await;
                // Not left behind by a dial that failed before its leg was admitted.
                trunking.take_rated(&id);
                match dialled {
                    Ok(_) | Err(CallError::Hangup) => None,
                    Err(CallError::Busy) => {
                        Some(Refusal { status: 486, cause: Q850::USER_BUSY, reason: format!("{tn} is busy") })
                    }
                    Err(CallError::NoAnswer) => Some(Refusal {
                        status: 480,
                        cause: Q850::NO_ANSWER,
                        reason: format!("{tn} did not answer"),
                    }),
                    // The leg talked what the balance paid for ([`crate::billing`]).
                    Err(CallError::LimitExceeded(reason)) if is_unpaid(&reason) => Some(unpaid(reason)),
                    Err(CallError::LimitExceeded(reason)) => Some(refusal_of(reason)),
                    Err(error) => Some(Refusal {
                        status: 503,
                        cause: Q850::TEMPORARY_FAILURE,
                        reason: format!("the carrier failed: {error}"),
                    }),
                }
            }
        };
        self.end_trunk_call(&sip_call, &session, refusal).await;
        drop(channel);
    }

    /// Whether the account may present `caller` (its number or a verified one).
    async fn may_present(&self, account: uuid::Uuid, caller: &str) -> bool {
        let Some(tn) = tn_of(caller) else { return false };
        match self.store.lease_by_tn(tn).await {
            Ok(Some(lease)) if lease.account == account => true,
            _ => self.store.is_verified_number(account, tn).await.unwrap_or(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_rfc_3326_q850() {
        assert_eq!(reason_header(Q850::NO_ANSWER, "no \"answer\""), "Q.850;cause=19;text=\"no answer\"");
        assert_eq!(payload_type("pcma"), Some(8));
        assert_eq!(payload_type("G729"), None);
    }
}
