//! Outbound legs: the platform's INVITEs to carriers, SIP users and SIP URIs (the B legs of
//! `<Dial>`). Each leg can be cancelled while it rings, and hung up once answered.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invitation::{InviteAsyncResult, InviteOption};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{StatusCodeKind, Transport};
use rsipstack::transport::SipAddr;
use tokio::sync::watch;
use tracing::debug;

use crate::error::SipError;
use crate::inbound::{LegEvents, LegSignals, LegState, ReofferHandler, Role, watch_dialog};

/// An INVITE to place.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    /// The Request-URI (`sip:alice@10.0.0.2:5062`, `sip:12125550101@carrier.example`).
    pub uri: String,
    /// Where to send it (a registered contact's source address, the carrier proxy); `None`
    /// resolves the URI's host.
    pub destination: Option<SocketAddr>,
    /// `tcp` sends over TCP, `tls` over TLS (a phone's own connection when it registered over
    /// TLS), `ws` over a browser's WebSocket; anything else UDP.
    pub transport: &'static str,
    /// The From URI (the caller ID).
    pub from: String,
    /// The To URI.
    pub to: String,
    /// The SDP offer.
    pub sdp_offer: String,
    /// Further header fields, name and value (a STIR/SHAKEN `Identity`).
    pub headers: Vec<(String, String)>,
}

/// How an outbound INVITE ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundOutcome {
    /// 2xx: the callee's SDP answer.
    Answered { sdp: String },
    /// A final non-2xx status (486 busy, 480/408 no answer, 603 declined…).
    Rejected { status: u16 },
    /// No answer at all, or the stack failed.
    Failed(String),
}

/// A leg the platform placed; cheap to clone.
#[derive(Clone)]
pub struct OutboundCall {
    dialog: InviteDialog,
    state: watch::Receiver<LegState>,
    reoffer: Arc<parking_lot::Mutex<Option<ReofferHandler>>>,
    /// Turns true when the callee answers 180 or 183.
    ringing: watch::Receiver<bool>,
}

/// The final response an outbound INVITE is waiting for.
pub struct PendingOutcome {
    result: rsipstack::platform::JoinHandle<InviteAsyncResult>,
}

impl fmt::Debug for PendingOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingOutcome").finish_non_exhaustive()
    }
}

impl PendingOutcome {
    /// Wait for the final response.
    pub async fn wait(self) -> OutboundOutcome {
        match self.result.await {
            Ok(Ok((_, Some(response)))) => match response.status_code.kind() {
                StatusCodeKind::Successful => {
                    OutboundOutcome::Answered { sdp: String::from_utf8_lossy(response.body()).into_owned() }
                }
                _ => OutboundOutcome::Rejected { status: response.status_code.code() },
            },
            Ok(Ok((_, None))) => OutboundOutcome::Failed("no final response".to_owned()),
            Ok(Err(error)) => {
                debug!(%error, "outbound INVITE");
                OutboundOutcome::Failed(error.to_string())
            }
            Err(error) => OutboundOutcome::Failed(format!("INVITE task: {error}")),
        }
    }
}

/// The transport a binding's or request's `udp`, `tcp` or `tls` names (UDP for anything else).
pub(crate) fn transport_named(name: &str) -> Transport {
    match name {
        "tcp" => Transport::Tcp,
        "tls" => Transport::Tls,
        "ws" => Transport::Ws,
        _ => Transport::Udp,
    }
}

impl fmt::Debug for OutboundCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundCall").field("id", &self.dialog.id().to_string()).finish_non_exhaustive()
    }
}

impl OutboundCall {
    pub(crate) fn place(
        dialog_layer: &Arc<DialogLayer>,
        contact: &rsipstack::sip::Uri,
        request: OutboundRequest,
    ) -> Result<(OutboundCall, PendingOutcome), SipError> {
        let parse = |what: &str, text: &str| {
            rsipstack::sip::Uri::try_from(text).map_err(|e| SipError::Stack(format!("{what} {text:?}: {e}")))
        };
        // Which socket the INVITE leaves on is what an operator asks first when a phone does
        // not ring (a TLS phone is reachable only over its own connection).
        debug!(uri = %request.uri, destination = ?request.destination, transport = request.transport, "sending INVITE");
        let destination = request.destination.map(|address| {
            let mut sip_addr = SipAddr::from(address);
            sip_addr.r#type = Some(transport_named(request.transport));
            sip_addr
        });
        let headers = (!request.headers.is_empty()).then(|| {
            request
                .headers
                .into_iter()
                .map(|(name, value)| rsipstack::sip::Header::Other(name, value))
                .collect()
        });
        let option = InviteOption {
            caller: parse("From", &request.from)?,
            callee: parse("Request-URI", &request.uri)?,
            destination,
            content_type: Some("application/sdp".to_owned()),
            offer: Some(request.sdp_offer.into_bytes()),
            contact: contact.clone(),
            headers,
            ..InviteOption::default()
        };
        let (states_tx, states_rx) = dialog_layer.new_dialog_state_channel();
        let (dialog, result) = dialog_layer.do_invite_async(option, states_tx)?;
        let (state_tx, state) = watch::channel(LegState::Early);
        let reoffer: Arc<parking_lot::Mutex<Option<ReofferHandler>>> = Arc::default();
        let (ringing_tx, ringing) = watch::channel(false);
        tokio::spawn(watch_dialog(
            states_rx,
            state_tx,
            dialog_layer.clone(),
            dialog.id(),
            reoffer.clone(),
            Role::Client,
            LegSignals { refreshed: Arc::new(tokio::sync::Notify::new()), ringing: Some(ringing_tx) },
        ));
        Ok((OutboundCall { dialog, state, reoffer, ringing }, PendingOutcome { result }))
    }

    /// How the callee's own re-offers (its hold, a codec change) are answered once the leg is
    /// up; without a handler they get 488.
    pub fn on_reoffer(&self, handler: ReofferHandler) {
        *self.reoffer.lock() = Some(handler);
    }

    /// Send a re-INVITE with a new SDP offer (hold, unhold); returns the callee's SDP answer.
    pub async fn reoffer(&self, sdp: String) -> Result<String, SipError> {
        if !matches!(*self.state.borrow(), LegState::Confirmed) {
            return Err(SipError::DialogEnded);
        }
        let headers = vec![rsipstack::sip::Header::ContentType("application/sdp".into())];
        match self.dialog.reinvite(Some(headers), Some(sdp.into_bytes())).await? {
            Some(response) if response.status_code.kind() == StatusCodeKind::Successful => {
                Ok(String::from_utf8_lossy(response.body()).into_owned())
            }
            Some(response) => {
                Err(SipError::Stack(format!("re-INVITE answered {}", response.status_code.code())))
            }
            None => Err(SipError::Stack("re-INVITE outside a confirmed dialog".to_owned())),
        }
    }

    /// Whether the callee has answered 180 Ringing or 183 Session Progress.
    pub fn ringing(&self) -> watch::Receiver<bool> {
        self.ringing.clone()
    }

    /// The leg's state and end.
    pub fn events(&self) -> LegEvents {
        LegEvents::new(self.state.clone())
    }

    /// Stop ringing (CANCEL); harmless once answered or over.
    pub async fn cancel(&self) {
        if let Err(error) = self.dialog.cancel().await {
            debug!(%error, "cancel");
        }
    }

    /// Hang up an answered leg (BYE).
    pub async fn hangup(&self) {
        if matches!(*self.state.borrow(), LegState::Ended(_)) {
            return;
        }
        if let Err(error) = self.dialog.bye().await {
            debug!(%error, "bye");
        }
    }
}
