//! The SIP endpoint: listeners, the transaction layer, and the dispatch of requests.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use rsipstack::EndpointBuilder;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::{Header, HeadersExt, Method, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::tcp_listener::TcpListenerConnection;
use rsipstack::transport::tls::{ReloadableCertResolver, TlsConfig, TlsListenerConnection};
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::websocket::WebSocketListenerConnection;
use rsipstack::transport::{SipAddr, SipConnection, TransportLayer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::digest::{DigestResponse, NonceCheck, NonceIssuer, NonceLedger, NonceUse};
use crate::error::SipError;
use crate::guard::{AuthBan, AuthGuard, AuthLimits};
use crate::inbound::{Caller, IncomingCall, MIN_SESSION_EXPIRES};
use crate::listeners::{ConnectionSlots, SourceFilter, StreamKind, StreamLimits, StreamListener};
use crate::message::{MessageHandler, OutboundMessage};
use crate::outbound::{OutboundCall, OutboundRequest, PendingOutcome};
use crate::registrar::{
    Contacts, DEFAULT_MAX_CONTACTS_PER_USER, MIN_EXPIRES, RegisterOutcome, Registrar, parse_contacts,
};

/// Where and how the endpoint listens.
#[derive(Debug, Clone)]
pub struct SipConfig {
    /// Address and port for UDP and TCP (port 0 picks a free port, for tests).
    pub listen: SocketAddr,
    /// Listen on TCP as well as UDP.
    pub tcp: bool,
    /// The address put in Contact headers when `listen` is a wildcard address.
    pub advertised_address: Option<IpAddr>,
    /// The User-Agent / Server header value.
    pub user_agent: String,
    /// The platform's SIP domain: INVITEs from `*.<domain>` are challenged in the From host's
    /// realm (SIP users), others in the Request-URI host's (a connection's `<subdomain>.<domain>`).
    pub domain: String,
    /// Failed-authentication bans and nonce bookkeeping (see [`AuthLimits`] for each default).
    pub auth: AuthLimits,
    /// Contacts one registered user may have at once
    /// ([`DEFAULT_MAX_CONTACTS_PER_USER`]); a REGISTER that would exceed it is refused with
    /// `403 Too Many Contacts` and changes nothing.
    pub max_contacts_per_user: usize,
    /// SIP over TLS (RFC 3261 §26, RFC 5630): address and port (5061 by convention; port 0
    /// picks a free port, for tests), off when `None`. Needs [`SipConfig::certificate`].
    pub tls_listen: Option<SocketAddr>,
    /// SIP over WebSocket (RFC 7118) for browsers (the web call), off when `None`. Plain `ws`:
    /// a browser allows it from `http://localhost` pages; anywhere else use `wss_listen` or put
    /// it behind a TLS proxy.
    pub ws_listen: Option<SocketAddr>,
    /// SIP over secure WebSocket (`wss`), off when `None`. Needs [`SipConfig::certificate`].
    pub wss_listen: Option<SocketAddr>,
    /// The server certificate the TLS and wss listeners present.
    pub certificate: Option<TlsCertificate>,
    /// Bounds on open TCP, TLS and WebSocket connections ([`StreamLimits`]).
    pub stream_limits: StreamLimits,
}

/// The server certificate of the TLS and secure WebSocket listeners.
#[derive(Clone)]
pub struct TlsCertificate {
    /// The certificate chain, PEM, leaf first.
    pub cert_pem: Vec<u8>,
    /// The certificate's private key, PEM (PKCS#8 or PKCS#1).
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("TlsCertificate").field("cert_pem_len", &self.cert_pem.len()).finish_non_exhaustive()
    }
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 5060)),
            tcp: true,
            advertised_address: None,
            user_agent: concat!("opentact/", env!("CARGO_PKG_VERSION")).to_owned(),
            domain: "sip.opentact.local".to_owned(),
            auth: AuthLimits::default(),
            max_contacts_per_user: DEFAULT_MAX_CONTACTS_PER_USER,
            tls_listen: None,
            ws_listen: None,
            wss_listen: None,
            certificate: None,
            stream_limits: StreamLimits::default(),
        }
    }
}

/// What the platform does with a new inbound call. Called on its own task per call.
#[async_trait]
pub trait InboundHandler: Send + Sync + 'static {
    /// Route the call: reject it, or answer it and run its flow. The dialog's requests (ACK,
    /// BYE, CANCEL…) are served meanwhile; `call.events()` reports the end.
    async fn on_invite(&self, call: IncomingCall);

    /// The digest HA1 (`MD5(user:domain:password)`) of an active SIP user of `domain`, for the
    /// registrar; `None` refuses the user.
    async fn user_ha1(&self, domain: &str, user: &str) -> Option<String>;

    /// The digest credential `username` has in `realm` for placing calls: a SIP user of the
    /// domain `realm`, or a SIP connection whose `<subdomain>.<platform domain>` is `realm`.
    async fn invite_credential(&self, realm: &str, username: &str) -> Option<InviteCredential>;

    /// Whether INVITEs from `source` are accepted without digest authentication: carrier
    /// trunks and customers' SIP connections recognised by address. Every other caller must
    /// prove to be a SIP user of the platform (407 challenge, then digest).
    async fn trusted_source(&self, source: SocketAddr) -> bool;

    /// A ban for repeated authentication failures just started (once per ban; already logged
    /// as a warning). The platform publishes it as
    /// [`AUTH_BANNED_EVENT`](crate::guard::AUTH_BANNED_EVENT). Called on the SIP
    /// dispatcher's path: return quickly (hand it to a channel or bus). Nothing by default.
    fn on_auth_ban(&self, ban: &AuthBan) {
        let _ = ban;
    }
}

/// What an INVITE's digest username turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteCredential {
    /// `MD5(username:realm:password)`.
    pub ha1: String,
    /// A SIP user or a SIP connection (trunk).
    pub connection: bool,
}

/// A running SIP endpoint. Dropping it does not stop it; call [`SipEndpoint::shutdown`].
pub struct SipEndpoint {
    local_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    ws_addr: Option<SocketAddr>,
    wss_addr: Option<SocketAddr>,
    cancel: CancellationToken,
    dialog_layer: Arc<DialogLayer>,
    registrar: Arc<Registrar>,
    contacts: OwnContacts,
    messages: Arc<OnceLock<Arc<dyn MessageHandler>>>,
}

impl std::fmt::Debug for SipEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipEndpoint").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}

impl SipEndpoint {
    /// Open the listeners and start serving.
    pub async fn start(config: SipConfig, handler: Arc<dyn InboundHandler>) -> Result<Self, SipError> {
        let cancel = CancellationToken::new();
        let transport_layer = TransportLayer::new(cancel.clone());
        let (udp, udp_addr, tcp) = bind_udp_and_tcp(config.listen, config.tcp, &cancel).await?;
        transport_layer.add_transport(udp.into());

        // The stream listeners are bound here, and served by this crate's accept loops
        // (listeners.rs), not the stack's.
        let acceptor = || tls_acceptor(config.certificate.as_ref());
        let mut streams = Vec::from_iter(tcp);
        if let Some(listen) = config.tls_listen {
            streams.push(bind_stream("TLS", listen, StreamKind::Tls(acceptor()?)).await?);
        }
        if let Some(listen) = config.ws_listen {
            streams.push(bind_stream("WS", listen, StreamKind::Ws).await?);
        }
        if let Some(listen) = config.wss_listen {
            streams.push(bind_stream("WSS", listen, StreamKind::Wss(acceptor()?)).await?);
        }

        // A listener on 0.0.0.0 is reached at the advertised address.
        let advertised_ip = config.advertised_address.unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let advertise = |mut address: SocketAddr| {
            if address.ip().is_unspecified() {
                address.set_ip(advertised_ip);
            }
            address
        };
        let local_addr = advertise(udp_addr);
        let bound = |wanted: fn(&StreamKind) -> bool| {
            streams.iter().find(|(_, kind, _)| wanted(kind)).map(|(_, _, address)| advertise(*address))
        };
        let tls_addr = bound(|kind| matches!(kind, StreamKind::Tls(_)));
        let ws_addr = bound(|kind| matches!(kind, StreamKind::Ws));
        let wss_addr = bound(|kind| matches!(kind, StreamKind::Wss(_)));

        let refusals = Arc::new(crate::refusal::Refusals::default());
        let endpoint = EndpointBuilder::new()
            .with_cancel_token(cancel.clone())
            // Refusals of INVITEs carry a Warning header the dialog layer cannot add (refusal.rs).
            .with_inspector(Box::new(crate::refusal::RefusalInspector(refusals.clone())))
            // Malformed requests are refused before they reach a transaction (validate.rs).
            .with_transport_inspector(Box::new(crate::validate::RequestValidator))
            .with_transport_layer(transport_layer)
            .with_user_agent(&config.user_agent)
            .build();
        let incoming = endpoint.incoming_transactions()?;
        let dialog_layer = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let websocket = ws_addr.map(|addr| (addr, false)).or(wss_addr.map(|addr| (addr, true)));
        let contacts = OwnContacts::new(local_addr, tls_addr, websocket)?;
        let auth = Arc::new(DigestAuth::new(config.auth));

        let endpoint_inner = endpoint.inner.clone();
        let serve_cancel = cancel.clone();
        let mut serve = Box::pin(async move {
            tokio::select! {
                _ = endpoint.serve() => {}
                _ = serve_cancel.cancelled() => {}
            }
        });
        // The stack's first step in serving is a snapshot of its listeners, which it then
        // serves itself. Let it take that snapshot (one poll), then add the stream listeners:
        // the stack names them in Via headers but leaves their serving to the accept loops.
        std::future::poll_fn(|cx| {
            let _ = serve.as_mut().poll(cx);
            std::task::Poll::Ready(())
        })
        .await;
        tokio::spawn(serve);
        let slots = ConnectionSlots::new(config.stream_limits);
        for (listener, kind, address) in streams {
            let address = advertise(address);
            endpoint_inner.transport_layer.add_transport(listed(&kind, address).await?);
            let local = SipAddr { r#type: Some(kind.transport()), addr: address.into() };
            let accept_loop = StreamListener {
                listener,
                local,
                kind,
                slots: slots.clone(),
                filter: auth.clone(),
                endpoint: endpoint_inner.clone(),
                cancel: cancel.child_token(),
            };
            tokio::spawn(accept_loop.run());
        }

        let registrar = Arc::new(Registrar::new().with_max_contacts(config.max_contacts_per_user));
        let messages = Arc::new(OnceLock::new());
        let dispatcher = Dispatcher {
            messages: messages.clone(),
            dialog_layer: dialog_layer.clone(),
            handler,
            contacts: contacts.clone(),
            platform_domain: config.domain.to_ascii_lowercase(),
            refusals,
            registrar: registrar.clone(),
            auth,
        };
        tokio::spawn(Arc::new(dispatcher).run(incoming, cancel.clone()));
        info!(%local_addr, tcp = config.tcp, tls = ?tls_addr, ws = ?ws_addr, wss = ?wss_addr, "SIP listening");
        Ok(SipEndpoint {
            local_addr,
            tls_addr,
            ws_addr,
            wss_addr,
            cancel,
            dialog_layer,
            registrar,
            contacts,
            messages,
        })
    }

    /// The address SIP is served on (with the port chosen when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address SIP over TLS is served on, when it is on.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The address SIP over WebSocket is served on, when it is on.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// The address SIP over secure WebSocket is served on, when it is on.
    pub fn wss_addr(&self) -> Option<SocketAddr> {
        self.wss_addr
    }

    /// Place an outbound leg.
    pub fn invite(&self, request: OutboundRequest) -> Result<(OutboundCall, PendingOutcome), SipError> {
        let contact = self.contacts.for_transport(request.transport).clone();
        OutboundCall::place(&self.dialog_layer, &contact, request)
    }

    /// Route inbound MESSAGE requests (RFC 3428) to `handler` from now on; until it is set they
    /// are answered 405. Set once: later calls change nothing and return `false`.
    pub fn set_message_handler(&self, handler: Arc<dyn MessageHandler>) -> bool {
        self.messages.set(handler).is_ok()
    }

    /// Send a MESSAGE; its final status (408 when none came back in time).
    pub async fn send_message(&self, message: OutboundMessage) -> Result<u16, SipError> {
        crate::message::send(&self.dialog_layer.endpoint, message).await
    }

    /// The registrar's location service.
    pub fn registrar(&self) -> &Arc<Registrar> {
        &self.registrar
    }

    /// Dialogs alive now.
    pub fn dialog_count(&self) -> usize {
        self.dialog_layer.len()
    }

    /// Stop listening and drop every transaction.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}

/// The platform's own Contact URIs: one for UDP and TCP, one for TLS (`transport=tls`, so
/// a phone that registered over TLS sends its in-dialog requests back over TLS), one for
/// WebSocket (`transport=ws`, or `wss` when only secure WebSocket is served).
#[derive(Clone)]
struct OwnContacts {
    plain: rsipstack::sip::Uri,
    tls: Option<rsipstack::sip::Uri>,
    ws: Option<rsipstack::sip::Uri>,
}

impl OwnContacts {
    fn new(
        local_addr: SocketAddr,
        tls_addr: Option<SocketAddr>,
        ws: Option<(SocketAddr, bool)>,
    ) -> Result<Self, SipError> {
        let uri = |text: String| {
            rsipstack::sip::Uri::try_from(text.as_str())
                .map_err(|e| SipError::Stack(format!("contact {text}: {e}")))
        };
        Ok(OwnContacts {
            plain: uri(format!("sip:{local_addr}"))?,
            tls: tls_addr.map(|addr| uri(format!("sip:{addr};transport=tls"))).transpose()?,
            ws: ws
                .map(|(addr, secure)| {
                    uri(format!("sip:{addr};transport={}", if secure { "wss" } else { "ws" }))
                })
                .transpose()?,
        })
    }

    /// The Contact for a dialog over `transport` (`udp`, `tcp`, `tls` or `ws`).
    fn for_transport(&self, transport: &str) -> &rsipstack::sip::Uri {
        match (transport, &self.tls, &self.ws) {
            ("tls", Some(tls), _) => tls,
            ("ws", _, Some(ws)) => ws,
            _ => &self.plain,
        }
    }
}

/// The TLS acceptor for the TLS and wss listeners. The certificate and key are checked here,
/// so a bad one fails the start with why.
fn tls_acceptor(certificate: Option<&TlsCertificate>) -> Result<TlsAcceptor, SipError> {
    let failed = |reason: String| SipError::Certificate(reason);
    let certificate =
        certificate.ok_or_else(|| failed("TLS and wss need a certificate and key".to_owned()))?;
    // The ring provider, as everywhere else in the platform; no process-wide default needed.
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let resolver = ReloadableCertResolver::new(&certificate.cert_pem, &certificate.key_pem, provider.clone())
        .map_err(|e| failed(format!("certificate or key: {e}")))?;
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| failed(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The UDP socket and, with `tcp`, the TCP listener on the same port (RFC 3261 §18: one
/// address serves both). When the port is 0, a port free for both is looked for: the system
/// picks a free UDP port, whose TCP twin may be taken.
async fn bind_udp_and_tcp(
    listen: SocketAddr,
    tcp: bool,
    cancel: &CancellationToken,
) -> Result<(UdpConnection, SocketAddr, Option<(TcpListener, StreamKind, SocketAddr)>), SipError> {
    let attempts = if listen.port() == 0 && tcp { 20 } else { 1 };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let udp_failed =
            |e: rsipstack::Error| SipError::Bind { transport: "UDP", address: listen, reason: e.to_string() };
        let udp = UdpConnection::create_connection(listen, None, Some(cancel.child_token()))
            .await
            .map_err(udp_failed)?;
        let udp_addr = udp.get_addr().get_socketaddr().map_err(udp_failed)?;
        if !tcp {
            return Ok((udp, udp_addr, None));
        }
        match bind_stream("TCP", udp_addr, StreamKind::Tcp).await {
            Ok(listener) => return Ok((udp, udp_addr, Some(listener))),
            Err(error) if attempt < attempts => {
                debug!(%error, "the picked UDP port's TCP twin is taken; picking again")
            }
            Err(error) => return Err(error),
        }
    }
}

/// Bind a stream listener; the address it got (the port picked when 0 was asked).
async fn bind_stream(
    transport: &'static str,
    listen: SocketAddr,
    kind: StreamKind,
) -> Result<(TcpListener, StreamKind, SocketAddr), SipError> {
    let failed = |e: std::io::Error| SipError::Bind { transport, address: listen, reason: e.to_string() };
    let listener = TcpListener::bind(listen).await.map_err(failed)?;
    let address = listener.local_addr().map_err(failed)?;
    Ok((listener, kind, address))
}

/// The stack's listener entry for a stream listener's address: named in Via headers of
/// requests sent over that transport, never served by the stack.
async fn listed(kind: &StreamKind, address: SocketAddr) -> Result<SipConnection, SipError> {
    let failed = |e: rsipstack::Error| SipError::Stack(format!("listener {address}: {e}"));
    Ok(match kind {
        StreamKind::Tcp => TcpListenerConnection::new(address, None).await.map_err(failed)?.into(),
        StreamKind::Tls(_) => {
            TlsListenerConnection::new(address, None, TlsConfig::default()).await.map_err(failed)?.into()
        }
        StreamKind::Ws => {
            WebSocketListenerConnection::new(address, None, false).await.map_err(failed)?.into()
        }
        StreamKind::Wss(_) => {
            WebSocketListenerConnection::new(address, None, true).await.map_err(failed)?.into()
        }
    })
}

struct Dispatcher {
    messages: Arc<OnceLock<Arc<dyn MessageHandler>>>,
    dialog_layer: Arc<DialogLayer>,
    handler: Arc<dyn InboundHandler>,
    contacts: OwnContacts,
    platform_domain: String,
    /// Headers for the responses that refuse INVITEs ([`crate::refusal`]).
    refusals: Arc<crate::refusal::Refusals>,
    registrar: Arc<Registrar>,
    auth: Arc<DigestAuth>,
}

/// Digest authentication's state: nonces bound to addresses, the ledger of their uses, and
/// the failure counts and bans.
struct DigestAuth {
    nonces: NonceIssuer,
    ledger: NonceLedger,
    guard: AuthGuard,
}

impl DigestAuth {
    fn new(limits: AuthLimits) -> Self {
        DigestAuth {
            nonces: NonceIssuer::new(random_secret()).with_lifetime(limits.nonce_lifetime),
            ledger: NonceLedger::new(limits.max_tracked_nonces, limits.nonce_lifetime),
            guard: AuthGuard::new(limits),
        }
    }
}

impl SourceFilter for DigestAuth {
    /// A source banned for failed authentication cannot open stream connections either.
    fn banned(&self, source: IpAddr, now: Instant) -> bool {
        self.guard.source_banned(source, now)
    }
}

/// A per-process secret for nonces.
fn random_secret() -> String {
    use std::hash::{BuildHasher, Hasher};
    (0..4)
        .map(|_| {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u32(std::process::id());
            format!("{:016x}", hasher.finish())
        })
        .collect()
}

/// The source address and transport (`udp`, `tcp`, `tls` or `ws`) of a request.
fn source_of(tx: &Transaction) -> Option<(SocketAddr, &'static str)> {
    let connection = tx.connection.as_ref()?;
    let address = connection.get_remote_addr()?.get_socketaddr().ok()?;
    let transport = match connection.transport() {
        rsipstack::sip::Transport::Tls => "tls",
        rsipstack::sip::Transport::Ws | rsipstack::sip::Transport::Wss => "ws",
        _ if connection.is_reliable() => "tcp",
        _ => "udp",
    };
    Some((address, transport))
}

impl Dispatcher {
    async fn run(
        self: Arc<Self>,
        mut incoming: rsipstack::transaction::TransactionReceiver,
        cancel: CancellationToken,
    ) {
        loop {
            let tx = tokio::select! {
                tx = incoming.recv() => match tx { Some(tx) => tx, None => break },
                _ = cancel.cancelled() => break,
            };
            self.dispatch(tx).await;
        }
        debug!("SIP dispatcher stopped");
    }

    async fn dispatch(self: &Arc<Self>, mut tx: Transaction) {
        let method = tx.original.method;
        // A datagram whose body is not as long as its Content-Length says was cut or padded
        // (RFC 4475 §3.1.2.2): answer 400 rather than act on a partial message.
        if let Some(declared) = tx.original.header_value("Content-Length")
            && declared.trim().parse::<usize>().ok() != Some(tx.original.body().len())
        {
            debug!(%declared, actual = tx.original.body().len(), "Content-Length mismatch");
            if method != Method::Ack {
                reply(&mut tx, StatusCode::BadRequest, vec![]).await;
            }
            return;
        }
        // A request inside a dialog we know: the dialog serves it.
        if let Some(mut dialog) = self.dialog_layer.match_dialog(&tx) {
            tokio::spawn(async move {
                if let Err(error) = dialog.handle(&mut tx).await {
                    debug!(%error, "in-dialog request");
                }
            });
            return;
        }
        // A source banned for authentication failures gets nothing outside its dialogs: the
        // request is dropped unanswered (see guard.rs for why not 403).
        if let Some((source, _)) = source_of(&tx)
            && self.auth.guard.source_banned(source.ip(), Instant::now())
        {
            debug!(%source, %method, "dropped: banned source");
            return;
        }
        let has_to_tag = tx.original.to_header().ok().and_then(|to| to.tag().ok().flatten()).is_some();
        match method {
            Method::Invite if !has_to_tag => {
                let this = self.clone();
                tokio::spawn(async move { this.new_call(tx).await });
            }
            Method::Register => {
                let handler = self.handler.clone();
                let registrar = self.registrar.clone();
                let auth = self.auth.clone();
                tokio::spawn(async move { register(tx, handler.as_ref(), &registrar, &auth).await });
            }
            Method::Message if !has_to_tag => {
                let this = self.clone();
                tokio::spawn(async move { this.message(tx).await });
            }
            Method::Options => {
                let allow = Header::Allow("INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, MESSAGE".into());
                reply(&mut tx, StatusCode::OK, vec![allow]).await;
            }
            // An ACK that matches nothing is absorbed (RFC 3261 §17.2.3), never answered.
            Method::Ack => {}
            Method::Invite
            | Method::Bye
            | Method::Cancel
            | Method::Info
            | Method::Update
            | Method::PRack
            | Method::Message => reply(&mut tx, StatusCode::CallTransactionDoesNotExist, vec![]).await,
            _ => reply(&mut tx, StatusCode::NotImplemented, vec![]).await,
        }
    }

    async fn new_call(&self, mut tx: Transaction) {
        let Some((source, transport)) = source_of(&tx) else {
            warn!("INVITE without a known source address");
            reply(&mut tx, StatusCode::BadRequest, vec![]).await;
            return;
        };
        // RFC 4028 §8.1: an interval under our minimum is refused with 422 and Min-SE.
        let session_expires =
            tx.original.header_value("Session-Expires").or_else(|| tx.original.header_value("x"));
        if let Some(interval) = session_expires.and_then(|v| v.split(';').next()?.trim().parse::<u32>().ok())
            && interval < MIN_SESSION_EXPIRES
        {
            let min_se = Header::Other("Min-SE".into(), MIN_SESSION_EXPIRES.to_string());
            reply(&mut tx, StatusCode::SessionIntervalTooSmall, vec![min_se]).await;
            return;
        }
        let Some(caller) = self.caller(&mut tx, source).await else { return };
        let (states_tx, states_rx) = self.dialog_layer.new_dialog_state_channel();
        let dialog = match self.dialog_layer.get_or_create_server_invite(
            &tx,
            states_tx,
            None,
            Some(self.contacts.for_transport(transport).clone()),
        ) {
            Ok(dialog) => dialog,
            Err(error) => {
                debug!(%error, %source, "INVITE refused");
                reply(&mut tx, StatusCode::BadRequest, vec![]).await;
                return;
            }
        };
        let call = match IncomingCall::new(
            tx.original.clone(),
            source,
            transport,
            caller,
            dialog.clone(),
            self.dialog_layer.clone(),
            states_rx,
            crate::inbound::Refusing { refusals: self.refusals.clone(), agent: self.platform_domain.clone() },
        ) {
            Ok(call) => call,
            Err(error) => {
                debug!(%error, %source, "malformed INVITE");
                self.dialog_layer.remove_dialog(&dialog.id());
                reply(&mut tx, StatusCode::BadRequest, vec![]).await;
                return;
            }
        };
        let mut serving = dialog;
        tokio::spawn(async move {
            if let Err(error) = serving.handle(&mut tx).await {
                debug!(%error, "INVITE transaction");
            }
        });
        let handler = self.handler.clone();
        tokio::spawn(async move { handler.on_invite(call).await });
    }
}

impl Dispatcher {
    /// Who sent a new INVITE or MESSAGE: a trusted source (carrier, SIP connection by address)
    /// is a trunk, anyone else proves to be a user or connection by digest. `None` when the
    /// request was answered here (challenged or refused).
    async fn caller(&self, tx: &mut Transaction, source: SocketAddr) -> Option<Caller> {
        if self.handler.trusted_source(source).await {
            return Some(Caller::Trunk);
        }
        self.authenticate(tx, source).await
    }

    /// Serve a MESSAGE outside a dialog (RFC 3428): authenticated like a new call, checked
    /// (text/plain, size), then routed by the message handler, whose reply is the answer.
    async fn message(&self, mut tx: Transaction) {
        let Some(handler) = self.messages.get().cloned() else {
            let allow = Header::Allow("INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE".into());
            reply(&mut tx, StatusCode::MethodNotAllowed, vec![allow]).await;
            return;
        };
        let Some((source, transport)) = source_of(&tx) else {
            reply(&mut tx, StatusCode::BadRequest, vec![]).await;
            return;
        };
        let Some(caller) = self.caller(&mut tx, source).await else { return };
        let message = match crate::message::read(&tx.original, source, transport, caller) {
            Ok(message) => message,
            Err((status, reason, mut headers)) => {
                info!(%source, status, %reason, "MESSAGE refused");
                headers.push(crate::message::warning(&self.platform_domain, &reason));
                reply(&mut tx, StatusCode::from(status), headers).await;
                return;
            }
        };
        let answer = handler.on_message(message).await;
        let headers = match &answer.reason {
            Some(reason) => vec![crate::message::warning(&self.platform_domain, reason)],
            None => Vec::new(),
        };
        reply(&mut tx, StatusCode::from(answer.status), headers).await;
    }

    /// Digest-authenticate an INVITE from an untrusted source as a SIP user (RFC 3261 §22.3:
    /// 407 with Proxy-Authenticate, as SIP phones expect from their provider): the From user of
    /// its own domain, whose HA1 the platform knows. `None` when the INVITE was answered here
    /// (challenged or refused).
    async fn authenticate(&self, tx: &mut Transaction, source: SocketAddr) -> Option<Caller> {
        let from = tx.original.from_header().ok().and_then(|from| from.uri().ok());
        let Some((from_host, from_user)) = from.and_then(|uri| {
            Some((uri.host_with_port.host.to_string().to_ascii_lowercase(), uri.user()?.to_owned()))
        }) else {
            reply(tx, StatusCode::Forbidden, vec![]).await;
            return None;
        };
        // SIP users prove themselves in their domain's realm; trunks (SIP connections) in the
        // realm of the address they call, their connection's `<subdomain>.<platform domain>`.
        let user_domain = from_host.ends_with(&format!(".{}", self.platform_domain));
        let realm = if user_domain {
            from_host.clone()
        } else {
            tx.original.uri.host_with_port.host.to_string().to_ascii_lowercase()
        };
        let credentials = digest_credentials(tx, &self.auth, &realm, source.ip(), Challenger::Proxy).await?;
        let credential = if credentials.realm.eq_ignore_ascii_case(&realm) {
            self.handler.invite_credential(&realm, &credentials.username).await
        } else {
            None
        };
        let identity = credential.as_ref().map(|_| format!("{}@{realm}", credentials.username));
        let (ha1, caller) = match credential {
            // A user calls only as itself.
            Some(found) if !found.connection && credentials.username == from_user => {
                (Some(found.ha1), Some(Caller::User { domain: realm.clone(), login: from_user }))
            }
            Some(found) if found.connection => (
                Some(found.ha1),
                Some(Caller::Connection { realm: realm.clone(), login: credentials.username.clone() }),
            ),
            _ => (None, None),
        };
        let accepted = conclude(
            tx,
            &self.auth,
            self.handler.as_ref(),
            source,
            &realm,
            identity.as_deref(),
            ha1.as_deref(),
            &credentials,
            Challenger::Proxy,
        )
        .await;
        if accepted { caller } else { None }
    }
}

/// Who asks for credentials: a proxy (407 with Proxy-Authenticate, for INVITEs; RFC 3261
/// §22.3) or the registrar (401 with WWW-Authenticate, for REGISTERs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Challenger {
    Proxy,
    Registrar,
}

/// The request's digest credentials, with a nonce this server issued for `realm` to `source`
/// and still valid; `None` after answering the request with a challenge (a fresh one, or
/// `stale=true` when the nonce has expired, so the client retries without asking its user). A
/// nonce issued to another address is answered like a missing one: a credential captured on the
/// wire is worth nothing elsewhere.
async fn digest_credentials(
    tx: &mut Transaction,
    auth: &DigestAuth,
    realm: &str,
    source: IpAddr,
    challenger: Challenger,
) -> Option<DigestResponse> {
    let header = match challenger {
        Challenger::Proxy => "Proxy-Authorization",
        Challenger::Registrar => "Authorization",
    };
    // Phones answering a 407 sometimes put their credentials in Authorization.
    let value = tx.original.header_value(header).or_else(|| match challenger {
        Challenger::Proxy => tx.original.header_value("Authorization"),
        Challenger::Registrar => None,
    });
    let Some(credentials) = value.and_then(|v| DigestResponse::parse(&v)) else {
        challenge(tx, auth, realm, source, challenger, false).await;
        return None;
    };
    match auth.nonces.check(realm, source, &credentials.nonce) {
        NonceCheck::Valid => Some(credentials),
        check => {
            if check == NonceCheck::Invalid {
                debug!(%source, %realm, "digest with a nonce not issued to this address");
            }
            challenge(tx, auth, realm, source, challenger, check == NonceCheck::Stale).await;
            None
        }
    }
}

/// Answer with a fresh challenge for `realm`, bound to `source`.
async fn challenge(
    tx: &mut Transaction,
    auth: &DigestAuth,
    realm: &str,
    source: IpAddr,
    challenger: Challenger,
    stale: bool,
) {
    let value = auth.nonces.challenge(realm, source, stale);
    let (status, header) = match challenger {
        Challenger::Proxy => {
            (StatusCode::ProxyAuthenticationRequired, Header::ProxyAuthenticate(value.into()))
        }
        Challenger::Registrar => (StatusCode::Unauthorized, Header::WwwAuthenticate(value.into())),
    };
    reply(tx, status, vec![header]).await;
}

/// The second half of a digest check, once the credentials' nonce is known good. `identity`
/// (`user@realm`) is set when the credentials name a user or connection that exists, `ha1`
/// when that identity may make this request. Checks, in this order: the identity is not locked
/// against `source`, the digest `uri` is the Request-URI, the response proves the password,
/// and the `(nonce, nc)` was never used. Refuses with 403 (counting a failure; a ban it
/// starts goes to `handler`) or challenges again (a reused nonce count); `true` when accepted.
/// A trusted source (carrier, SIP connection by address) is never banned — its calls skip
/// digest anyway, and a ban would only cut a carrier off — but its failures still count
/// toward the user's lock.
#[allow(clippy::too_many_arguments)]
async fn conclude(
    tx: &mut Transaction,
    auth: &DigestAuth,
    handler: &dyn InboundHandler,
    source: SocketAddr,
    realm: &str,
    identity: Option<&str>,
    ha1: Option<&str>,
    credentials: &DigestResponse,
    challenger: Challenger,
) -> bool {
    let now = Instant::now();
    let method = tx.original.method.to_string();
    let address = source;
    let source = address.ip();
    let username = &credentials.username;
    let refusal = if identity.is_some_and(|identity| !auth.guard.user_admits(identity, source, now)) {
        // No password check: a distributed guesser learns nothing while the lock lasts.
        Some(("locked after repeated failures, and this address is new to it", false))
    } else if !credentials.uri_matches(&tx.original.uri.to_string(), |uri| {
        rsipstack::sip::Uri::try_from(uri).ok().map(|uri| uri.to_string())
    }) {
        Some(("the digest uri is not the Request-URI", true))
    } else if !ha1.is_some_and(|ha1| credentials.verify(ha1, &method)) {
        Some(("wrong credentials or unknown user", true))
    } else {
        None
    };
    if let Some((reason, count_user)) = refusal {
        // `?`: the username is the client's text, quoted so it cannot forge log lines.
        info!(?username, %realm, %source, "{method} refused: {reason}");
        let count_source = !handler.trusted_source(address).await;
        for ban in auth.guard.failure(source, identity, (count_source, count_user), now) {
            handler.on_auth_ban(&ban);
        }
        reply(tx, StatusCode::Forbidden, vec![]).await;
        return false;
    }
    match credentials.nonce_count().map(|nc| auth.ledger.record(&credentials.nonce, nc)) {
        Some(NonceUse::Fresh) => {}
        used => {
            // A replay — or a client reusing a count — earns a fresh challenge: the replayer
            // cannot answer it, an honest client just does.
            debug!(%username, %source, ?used, "{method} with a used nonce count");
            challenge(tx, auth, realm, source, challenger, true).await;
            return false;
        }
    }
    if let Some(identity) = identity {
        auth.guard.success(source, identity, now);
    }
    true
}

async fn reply(tx: &mut Transaction, status: StatusCode, headers: Vec<Header>) {
    if let Err(error) = tx.reply_with(status, headers, None).await {
        debug!(%error, "reply");
    }
}

/// Serve a REGISTER: challenge, check the digest against the user's HA1, update the bindings.
async fn register(
    mut tx: Transaction,
    handler: &dyn InboundHandler,
    registrar: &Registrar,
    auth: &DigestAuth,
) {
    let Some((source, transport)) = source_of(&tx) else {
        reply(&mut tx, StatusCode::BadRequest, vec![]).await;
        return;
    };
    let Some(to) = tx.original.to_header().ok().and_then(|to| to.uri().ok()) else {
        reply(&mut tx, StatusCode::BadRequest, vec![]).await;
        return;
    };
    let domain = to.host_with_port.host.to_string();
    let Some(user) = to.user().map(str::to_owned) else {
        reply(&mut tx, StatusCode::BadRequest, vec![]).await;
        return;
    };
    let Some(credentials) =
        digest_credentials(&mut tx, auth, &domain, source.ip(), Challenger::Registrar).await
    else {
        return;
    };
    // A user registers only itself, in the realm of its own domain.
    let own = credentials.username == user && credentials.realm.eq_ignore_ascii_case(&domain);
    if !own {
        debug!(%user, %domain, %source, "REGISTER for another user or realm");
    }
    let ha1 = if own { handler.user_ha1(&domain, &user).await } else { None };
    let identity = ha1.as_ref().map(|_| format!("{user}@{}", domain.to_ascii_lowercase()));
    let accepted = conclude(
        &mut tx,
        auth,
        handler,
        source,
        &domain,
        identity.as_deref(),
        ha1.as_deref(),
        &credentials,
        Challenger::Registrar,
    )
    .await;
    if !accepted {
        return;
    }
    let contact_values = crate::registrar::contact_values(&tx.original);
    let header_expires = tx.original.header_value("Expires").and_then(|v| v.trim().parse::<u32>().ok());
    if contact_values.is_empty() {
        // A query: answer with the current bindings.
        let bindings = registrar.contacts(&domain, &user);
        let headers = binding_headers(&bindings);
        reply(&mut tx, StatusCode::OK, headers).await;
        return;
    }
    let contacts = match parse_contacts(&contact_values) {
        Ok(contacts) => contacts,
        Err(reason) => {
            debug!(%reason, "REGISTER with a bad Contact");
            reply(&mut tx, StatusCode::BadRequest, vec![]).await;
            return;
        }
    };
    if contacts == Contacts::Wildcard && header_expires != Some(0) {
        reply(&mut tx, StatusCode::BadRequest, vec![]).await;
        return;
    }
    match registrar.register(&domain, &user, contacts, header_expires, source, transport) {
        RegisterOutcome::Bound(bindings) => {
            info!(%user, %domain, %source, contacts = bindings.len(), %transport, "registered");
            reply(&mut tx, StatusCode::OK, binding_headers(&bindings)).await;
        }
        RegisterOutcome::TooManyContacts { limit } => {
            info!(%user, %domain, %source, limit, "REGISTER refused: too many contacts");
            reply(&mut tx, StatusCode::Other(403, "Too Many Contacts".to_owned()), vec![]).await;
        }
        RegisterOutcome::TooBrief => {
            reply(
                &mut tx,
                StatusCode::IntervalTooBrief,
                vec![Header::MinExpires(MIN_EXPIRES.to_string().into())],
            )
            .await;
        }
    }
}

fn binding_headers(bindings: &[crate::registrar::Binding]) -> Vec<Header> {
    let now = std::time::Instant::now();
    bindings
        .iter()
        .map(|binding| {
            Header::Contact(format!("<{}>;expires={}", binding.contact, binding.expires_in(now)).into())
        })
        .collect()
}
