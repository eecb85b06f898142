//! An inbound INVITE: what routing reads, and the answers the platform gives.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use rsipstack::dialog::DialogId;
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TerminatedReason};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, HeadersExt, Request, StatusCode};
use tokio::sync::watch;
use tracing::debug;

use crate::error::SipError;

/// The shortest session interval accepted (RFC 4028 §4: Min-SE is at least 90 s).
pub const MIN_SESSION_EXPIRES: u32 = 90;

/// The session timer an INVITE asks for (RFC 4028), when the caller refreshes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionTimer {
    /// Seconds between refreshes.
    pub interval: u32,
}

/// `Session-Expires: 1800;refresher=uac` → the interval, when the caller will be the refresher:
/// it supports timers and did not ask the platform to refresh. Without that, no timer runs
/// (RFC 4028 lets the answerer leave it off when it will not refresh).
pub(crate) fn session_timer(session_expires: Option<&str>, supported: Option<&str>) -> Option<SessionTimer> {
    let value = session_expires?;
    let mut parts = value.split(';').map(str::trim);
    let interval = parts.next()?.parse::<u32>().ok()?;
    let refresher_uas = parts.any(|p| p.eq_ignore_ascii_case("refresher=uas"));
    let supports = supported.is_some_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case("timer")));
    (supports && !refresher_uas).then_some(SessionTimer { interval })
}

/// Longest wait for the ACK of an answer before a re-INVITE is given up (64 × T1).
const ACK_WAIT: std::time::Duration = std::time::Duration::from_secs(32);

/// A SIP URI as routing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// The user part (`12025550100`, `alice`), when there is one.
    pub user: Option<String>,
    /// The host: a domain or an address.
    pub host: String,
    /// The port, when given.
    pub port: Option<u16>,
}

impl SipUri {
    pub(crate) fn from_stack(uri: &rsipstack::sip::Uri) -> Self {
        SipUri {
            user: uri.user().map(str::to_owned),
            host: uri.host_with_port.host.to_string(),
            port: uri.host_with_port.port.as_ref().map(|port| port.value()),
        }
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sip:")?;
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// Who placed an inbound call, as signalling established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A trusted source: a carrier trunk or a customer's SIP connection (by address).
    Trunk,
    /// A customer's SIP connection (trunk) that proved its credentials by digest.
    Connection {
        /// The realm it authenticated in: `<subdomain>.<platform domain>`.
        realm: String,
        /// The connection's login.
        login: String,
    },
    /// A SIP user of the platform, digest-authenticated.
    User {
        /// The user's domain (`acme.sip.example.com`), lower case.
        domain: String,
        /// The user's login.
        login: String,
    },
}

/// How a leg ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegEnd {
    /// The peer sent BYE.
    RemoteBye,
    /// The peer cancelled before the call was answered.
    Cancelled,
    /// The platform hung up (BYE) or rejected the call.
    Local,
    /// The peer never acknowledged the answer, or a transaction timed out.
    Timeout,
    /// The callee of an outbound leg refused it.
    Rejected,
}

/// Where a leg stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegState {
    /// Not answered yet.
    Early,
    /// Answered and acknowledged.
    Confirmed,
    /// Over.
    Ended(LegEnd),
}

/// Watches a leg's state; cheap to clone.
#[derive(Debug, Clone)]
pub struct LegEvents {
    state: watch::Receiver<LegState>,
}

impl LegEvents {
    /// Events over a state the caller drives (a leg the platform has not placed yet).
    pub fn new(state: watch::Receiver<LegState>) -> Self {
        LegEvents { state }
    }

    /// The state now.
    pub fn state(&self) -> LegState {
        *self.state.borrow()
    }

    /// Resolves when the leg is over, with how it ended.
    pub async fn ended(&mut self) -> LegEnd {
        loop {
            if let LegState::Ended(end) = *self.state.borrow_and_update() {
                return end;
            }
            if self.state.changed().await.is_err() {
                // The watcher task is gone: the dialog no longer exists.
                return match *self.state.borrow() {
                    LegState::Ended(end) => end,
                    _ => LegEnd::Timeout,
                };
            }
        }
    }
}

/// Which side of the dialog the platform is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The platform answered (inbound leg).
    Server,
    /// The platform called (outbound leg).
    Client,
}

/// Answers an SDP re-offer (re-INVITE or UPDATE) of an answered leg: the SDP answer to send,
/// or `None` to refuse it with 488.
pub type ReofferHandler = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// A new inbound call, waiting for routing to reject, ring or answer it.
pub struct IncomingCall {
    /// The Call-ID.
    pub call_id: String,
    /// The From URI.
    pub from: SipUri,
    /// The From display name, when there is one.
    pub from_display: Option<String>,
    /// The To URI.
    pub to: SipUri,
    /// The Request-URI.
    pub request_uri: SipUri,
    /// The address the INVITE came from (the one to trust for trunk recognition and NAT).
    pub source: SocketAddr,
    /// `udp` or `tcp`.
    pub transport: &'static str,
    /// Who is calling.
    pub caller: Caller,
    /// The SDP offer, when the INVITE carried one.
    pub sdp_offer: Option<String>,
    request: Request,
    dialog: InviteDialog,
    dialog_layer: Arc<DialogLayer>,
    state: watch::Receiver<LegState>,
    reoffer: Arc<parking_lot::Mutex<Option<ReofferHandler>>>,
    /// Notified at every refresh (re-INVITE or UPDATE) of the session.
    refreshed: Arc<tokio::sync::Notify>,
    refusing: Refusing,
}

/// What [`IncomingCall::reject_with_warning`] needs: where its headers wait, and the platform's
/// name as the Warning's agent.
#[derive(Debug, Clone)]
pub(crate) struct Refusing {
    pub refusals: Arc<crate::refusal::Refusals>,
    pub agent: String,
}

impl fmt::Debug for IncomingCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingCall")
            .field("call_id", &self.call_id)
            .field("from", &self.from.to_string())
            .field("to", &self.to.to_string())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl IncomingCall {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        request: Request,
        source: SocketAddr,
        transport: &'static str,
        caller: Caller,
        dialog: InviteDialog,
        dialog_layer: Arc<DialogLayer>,
        states: DialogStateReceiver,
        refusing: Refusing,
    ) -> Result<Self, SipError> {
        let from = request.from_header().map_err(SipError::from_parse)?;
        let from = rsipstack::sip::typed::From::parse(from.value()).map_err(SipError::from_parse)?;
        let from_display = from.display_name.clone().filter(|name| !name.is_empty());
        let from = SipUri::from_stack(&from.uri);
        let to = SipUri::from_stack(
            &request.to_header().map_err(SipError::from_parse)?.uri().map_err(SipError::from_parse)?,
        );
        let call_id = request.call_id_header().map_err(SipError::from_parse)?.value().to_owned();
        let request_uri = SipUri::from_stack(&request.uri);
        let sdp_offer =
            (!request.body().is_empty()).then(|| String::from_utf8_lossy(request.body()).into_owned());
        let (state_tx, state) = watch::channel(LegState::Early);
        let reoffer: Arc<parking_lot::Mutex<Option<ReofferHandler>>> = Arc::default();
        let refreshed = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(watch_dialog(
            states,
            state_tx,
            dialog_layer.clone(),
            dialog.id(),
            reoffer.clone(),
            Role::Server,
            LegSignals { refreshed: refreshed.clone(), ringing: None },
        ));
        Ok(IncomingCall {
            call_id,
            from,
            from_display,
            to,
            request_uri,
            source,
            transport,
            caller,
            sdp_offer,
            request,
            dialog,
            dialog_layer,
            state,
            reoffer,
            refreshed,
            refusing,
        })
    }

    /// A header's value (the first, when repeated), by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<String> {
        self.request.header_value(name)
    }

    /// The leg's state and its end.
    pub fn events(&self) -> LegEvents {
        LegEvents { state: self.state.clone() }
    }

    /// Send 180 Ringing.
    pub fn ringing(&self) -> Result<(), SipError> {
        self.ensure_live()?;
        Ok(self.dialog.ringing(None, None)?)
    }

    /// Refuse the call with a final status (404, 486, 603…); `reason` goes into a Reason
    /// header.
    pub fn reject(&self, status: u16, reason: Option<&str>) -> Result<(), SipError> {
        self.ensure_live()?;
        self.dialog.reject(Some(StatusCode::from(status)), reason.map(str::to_owned))?;
        Ok(())
    }

    /// Refuse the call with a final status and `Warning: 399 <platform> "reason"` (RFC 3261
    /// §20.43; §21.4.26 for 488 Not Acceptable Here): the caller learns why, in the header
    /// meant for it.
    pub fn reject_with_warning(&self, status: u16, reason: &str) -> Result<(), SipError> {
        self.ensure_live()?;
        let warning = crate::message::warning(&self.refusing.agent, reason);
        self.refusing.refusals.expect(&self.call_id, status, vec![warning]);
        self.dialog.reject(Some(StatusCode::from(status)), None)?;
        Ok(())
    }

    /// Answer with 200 OK carrying the SDP answer. `on_reoffer` answers later re-offers
    /// (hold, unhold, address changes).
    pub fn answer(&self, sdp: String, on_reoffer: ReofferHandler) -> Result<(), SipError> {
        self.ensure_live()?;
        *self.reoffer.lock() = Some(on_reoffer);
        let mut headers = vec![Header::ContentType("application/sdp".into())];
        let timer = session_timer(
            // `x` is the compact form of Session-Expires.
            self.header("Session-Expires").or_else(|| self.header("x")).as_deref(),
            self.header("Supported").as_deref(),
        );
        if let Some(timer) = timer {
            headers
                .push(Header::Other("Session-Expires".into(), format!("{};refresher=uac", timer.interval)));
            headers.push(Header::Other("Require".into(), "timer".into()));
        }
        self.dialog.accept(Some(headers), Some(sdp.into_bytes()))?;
        if let Some(timer) = timer {
            tokio::spawn(expire_session(
                self.dialog.clone(),
                self.state.clone(),
                self.refreshed.clone(),
                timer,
            ));
        }
        Ok(())
    }

    /// Send a re-INVITE with a new SDP offer (hold, unhold); returns the peer's SDP answer.
    pub async fn reoffer(&self, sdp: String) -> Result<String, SipError> {
        self.ensure_live()?;
        // A new offer waits for the ACK of the answer (RFC 3261 §14.1): right after answering,
        // the dialog is not confirmed yet.
        match self.past_answer().await {
            LegState::Confirmed => {}
            LegState::Ended(_) => return Err(SipError::DialogEnded),
            LegState::Early => return Err(SipError::Stack("the answer was never acknowledged".to_owned())),
        }
        let headers = vec![Header::ContentType("application/sdp".into())];
        let response = self.dialog.reinvite(Some(headers), Some(sdp.into_bytes())).await?;
        match response {
            Some(response) if response.status_code.kind() == rsipstack::sip::StatusCodeKind::Successful => {
                Ok(String::from_utf8_lossy(response.body()).into_owned())
            }
            Some(response) => {
                Err(SipError::Stack(format!("re-INVITE answered {}", response.status_code.code())))
            }
            None => Err(SipError::Stack("re-INVITE outside a confirmed dialog".to_owned())),
        }
    }

    /// Wait (at most [`ACK_WAIT`]) until the leg leaves `Early`: the ACK of our answer arrived
    /// (`Confirmed`) or the leg ended; `Early` when neither happened in time.
    async fn past_answer(&self) -> LegState {
        let mut state = self.state.clone();
        let waited = tokio::time::timeout(ACK_WAIT, async {
            state.wait_for(|s| !matches!(s, LegState::Early)).await.map(|s| *s)
        })
        .await;
        match waited {
            Ok(Ok(reached)) => reached,
            // The watcher is gone: the dialog no longer exists.
            Ok(Err(_)) => LegState::Ended(LegEnd::Local),
            Err(_) => LegState::Early,
        }
    }

    /// End the leg: BYE once answered, 480 before (a flow that ends without answering).
    pub async fn hangup(&self) -> Result<(), SipError> {
        match *self.state.borrow() {
            LegState::Ended(_) => return Ok(()),
            LegState::Early
                if !matches!(self.dialog.state(), DialogState::WaitAck(..) | DialogState::Confirmed(..)) =>
            {
                self.dialog.reject(Some(StatusCode::TemporarilyUnavailable), None)?;
                return Ok(());
            }
            _ => {}
        }
        // RFC 3261 §15: no BYE before the ACK of our 2xx (or its transaction's timeout) — a
        // flow that answers and ends at once must not race the caller's ACK.
        if matches!(self.past_answer().await, LegState::Ended(_)) {
            return Ok(());
        }
        self.dialog.bye().await?;
        self.dialog_layer.remove_dialog(&self.dialog.id());
        Ok(())
    }

    fn ensure_live(&self) -> Result<(), SipError> {
        match *self.state.borrow() {
            LegState::Ended(_) => Err(SipError::DialogEnded),
            _ => Ok(()),
        }
    }
}

/// What a leg's watcher tells besides its state: a session refresh (re-INVITE or UPDATE), and
/// an outbound leg's ringing.
pub(crate) struct LegSignals {
    pub(crate) refreshed: Arc<tokio::sync::Notify>,
    pub(crate) ringing: Option<watch::Sender<bool>>,
}

/// Follows one dialog's state changes into the leg's watch, answers its mid-dialog requests,
/// and forgets the dialog when it ends.
pub(crate) async fn watch_dialog(
    mut states: DialogStateReceiver,
    state_tx: watch::Sender<LegState>,
    dialog_layer: Arc<DialogLayer>,
    id: DialogId,
    reoffer: Arc<parking_lot::Mutex<Option<ReofferHandler>>>,
    role: Role,
    signals: LegSignals,
) {
    let LegSignals { refreshed, ringing } = signals;
    while let Some(state) = states.recv().await {
        match state {
            // The callee rings (180), or plays its own ringback (183): an outbound leg's
            // `call.ringing`.
            DialogState::Early(_, response) if matches!(response.status_code.code(), 180 | 183) => {
                if let Some(ringing) = &ringing {
                    ringing.send_replace(true);
                }
            }
            DialogState::Confirmed(..) => {
                state_tx.send_if_modified(|current| {
                    let changed = *current == LegState::Early;
                    if changed {
                        *current = LegState::Confirmed;
                    }
                    changed
                });
            }
            DialogState::Updated(_, request, handle) => {
                refreshed.notify_waiters();
                let offer = String::from_utf8_lossy(request.body()).into_owned();
                let handler = reoffer.lock().clone();
                let answer = if offer.is_empty() { None } else { handler.and_then(|answer| answer(&offer)) };
                let reply = match answer {
                    Some(sdp) => {
                        handle
                            .respond(
                                StatusCode::OK,
                                Some(vec![Header::ContentType("application/sdp".into())]),
                                Some(sdp.into_bytes()),
                            )
                            .await
                    }
                    None => handle.reply(StatusCode::NotAcceptableHere).await,
                };
                if reply.is_err() {
                    debug!(%id, "re-offer transaction gone before the answer");
                }
            }
            DialogState::Options(_, _, handle) | DialogState::Info(_, _, handle) => {
                let _ = handle.reply(StatusCode::OK).await;
            }
            DialogState::Message(_, _, handle)
            | DialogState::Notify(_, _, handle)
            | DialogState::Refer(_, _, handle)
            | DialogState::Publish(_, _, handle) => {
                let _ = handle.reply(StatusCode::NotImplemented).await;
            }
            DialogState::Terminated(_, reason) => {
                // The stack names the BYE's sender by role: the peer is the UAC of an inbound
                // leg and the UAS of an outbound one.
                let end = match (reason, role) {
                    (TerminatedReason::UacBye, Role::Server) | (TerminatedReason::UasBye, Role::Client) => {
                        LegEnd::RemoteBye
                    }
                    (TerminatedReason::UacCancel, _) => LegEnd::Cancelled,
                    (TerminatedReason::Timeout, _) => LegEnd::Timeout,
                    (
                        TerminatedReason::UasBusy
                        | TerminatedReason::UasDecline
                        | TerminatedReason::UasOther(_),
                        Role::Client,
                    ) => LegEnd::Rejected,
                    _ => LegEnd::Local,
                };
                debug!(%id, ?end, "leg ended");
                state_tx.send_if_modified(|current| {
                    let changed = !matches!(current, LegState::Ended(_));
                    if changed {
                        *current = LegState::Ended(end);
                    }
                    changed
                });
                dialog_layer.remove_dialog(&id);
                break;
            }
            DialogState::Calling(_)
            | DialogState::Trying(_)
            | DialogState::Early(..)
            | DialogState::WaitAck(..) => {}
        }
    }
    // The stack dropped the dialog without a Terminated state (shutdown).
    state_tx.send_if_modified(|current| {
        let changed = !matches!(current, LegState::Ended(_));
        if changed {
            *current = LegState::Ended(LegEnd::Local);
        }
        changed
    });
}

/// Ends a session whose refresher stopped refreshing (RFC 4028 §10: BYE a little before the
/// interval lapses: at interval − min(32 s, interval / 3)).
async fn expire_session(
    dialog: InviteDialog,
    mut state: watch::Receiver<LegState>,
    refreshed: Arc<tokio::sync::Notify>,
    timer: SessionTimer,
) {
    let interval = u64::from(timer.interval);
    let deadline = std::time::Duration::from_secs(interval - (interval / 3).min(32));
    loop {
        tokio::select! {
            () = refreshed.notified() => continue,
            ended = async { state.wait_for(|s| matches!(s, LegState::Ended(_))).await.is_ok() } => {
                let _ = ended;
                return;
            }
            () = tokio::time::sleep(deadline) => {
                debug!(id = %dialog.id(), "session timer expired");
                let _ = dialog.bye_with_reason("SIP;cause=408;text=\"Session timer expired\"".to_owned()).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caller_refreshes_only_when_it_supports_timers_and_did_not_ask_us_to() {
        assert_eq!(
            session_timer(Some("1800;refresher=uac"), Some("timer, 100rel")),
            Some(SessionTimer { interval: 1800 })
        );
        assert_eq!(session_timer(Some("600"), Some("timer")), Some(SessionTimer { interval: 600 }));
        assert_eq!(session_timer(Some("1800;refresher=uas"), Some("timer")), None);
        assert_eq!(session_timer(Some("1800"), None), None, "no Supported: timer");
        assert_eq!(session_timer(None, Some("timer")), None);
        assert_eq!(session_timer(Some("soon"), Some("timer")), None);
    }
}
