//! The stream listeners: SIP over TCP, TLS, WebSocket and secure WebSocket, accepted here and
//! handed to the stack as connections.
//!
//! The stack's own listeners accept every connection and give the TLS and WebSocket
//! handshakes all the time a client likes, so a host that opens connections and never
//! finishes them holds a task and a socket each, without limit. These accept loops bound
//! what one address (and everyone together) can hold open, refuse addresses banned for
//! failed authentication, and close a connection whose handshake has not finished within a
//! deadline. A connection counts against its address until the stack retires it (the peer
//! closed, the stream broke, or it was idle for the stack's idle timeout).
//!
//! Secure WebSocket is served here too, which the stack cannot do: its WebSocket connection
//! only runs over a plain TCP stream. A `wss` connection's TLS is ended here and its plaintext
//! carried over a loopback TCP pair to the WebSocket connection the stack serves, which is
//! told the client's real address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use parking_lot::Mutex;
use rsipstack::sip::Transport;
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transport::SipAddr;
use rsipstack::transport::SipConnection;
use rsipstack::transport::tcp::TcpConnection;
use rsipstack::transport::tls::TlsConnection;
use rsipstack::transport::websocket::{WebSocketConnection, WebSocketInner};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Bounds on the stream connections the platform holds open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Connections one IP address may hold open at once, over all stream transports. A new
    /// one beyond it is closed as soon as it is accepted.
    pub max_per_source: usize,
    /// Connections everyone together may hold open at once.
    pub max_total: usize,
    /// Time a connection has to finish its TLS handshake and WebSocket upgrade.
    pub handshake_timeout: Duration,
}

/// Default [`StreamLimits::max_per_source`]: room for an office of phones behind one NAT
/// address, far below what would exhaust the process's file descriptors.
pub const DEFAULT_MAX_STREAM_CONNECTIONS_PER_SOURCE: usize = 100;
/// Default [`StreamLimits::max_total`].
pub const DEFAULT_MAX_STREAM_CONNECTIONS: usize = 10_000;
/// Default [`StreamLimits::handshake_timeout`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_per_source: DEFAULT_MAX_STREAM_CONNECTIONS_PER_SOURCE,
            max_total: DEFAULT_MAX_STREAM_CONNECTIONS,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

/// The largest WebSocket message (and frame) accepted: a SIP message over a stream is capped
/// at 64 KiB by the stack's codec; the WebSocket library's own default is 64 MiB.
const MAX_WS_MESSAGE: usize = 64 * 1024;

/// How a listener's connections are upgraded before they carry SIP.
#[derive(Clone)]
pub(crate) enum StreamKind {
    Tcp,
    Tls(TlsAcceptor),
    Ws,
    Wss(TlsAcceptor),
}

impl StreamKind {
    pub(crate) fn transport(&self) -> Transport {
        match self {
            StreamKind::Tcp => Transport::Tcp,
            StreamKind::Tls(_) => Transport::Tls,
            StreamKind::Ws => Transport::Ws,
            StreamKind::Wss(_) => Transport::Wss,
        }
    }
}

/// The open connections per source address, shared by every stream listener.
pub(crate) struct ConnectionSlots {
    limits: StreamLimits,
    open: Mutex<OpenConnections>,
}

#[derive(Default)]
struct OpenConnections {
    total: usize,
    per_source: HashMap<IpAddr, usize>,
}

/// One open connection's place in [`ConnectionSlots`], given back when dropped.
pub(crate) struct Slot {
    slots: Arc<ConnectionSlots>,
    source: IpAddr,
}

impl ConnectionSlots {
    pub(crate) fn new(limits: StreamLimits) -> Arc<Self> {
        Arc::new(ConnectionSlots { limits, open: Mutex::new(OpenConnections::default()) })
    }

    /// A slot for a new connection from `source`, or why there is none.
    fn take(self: &Arc<Self>, source: IpAddr) -> Result<Slot, &'static str> {
        let mut open = self.open.lock();
        if open.total >= self.limits.max_total {
            return Err("the platform's stream connection limit");
        }
        let count = open.per_source.entry(source).or_default();
        if *count >= self.limits.max_per_source {
            return Err("the per-address stream connection limit");
        }
        *count += 1;
        open.total += 1;
        Ok(Slot { slots: self.clone(), source })
    }

    /// Connections open now from `source`.
    #[cfg(test)]
    fn open_from(&self, source: IpAddr) -> usize {
        self.open.lock().per_source.get(&source).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock();
        open.total -= 1;
        if let Some(count) = open.per_source.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                open.per_source.remove(&self.source);
            }
        }
    }
}

/// Whether an address is refused at accept (banned for failed authentication).
pub(crate) trait SourceFilter: Send + Sync + 'static {
    fn banned(&self, source: IpAddr, now: Instant) -> bool;
}

/// A running accept loop's inputs.
pub(crate) struct StreamListener {
    pub listener: TcpListener,
    /// The listener's address as the stack names it (its type is the transport).
    pub local: SipAddr,
    pub kind: StreamKind,
    pub slots: Arc<ConnectionSlots>,
    pub filter: Arc<dyn SourceFilter>,
    pub endpoint: EndpointInnerRef,
    pub cancel: CancellationToken,
}

impl StreamListener {
    /// Accept until cancelled; each connection is upgraded and served on its own task.
    pub(crate) async fn run(self) {
        let transport = self.kind.transport();
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = self.cancel.cancelled() => break,
            };
            let (stream, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, usually: wait instead of spinning on the error.
                    warn!(%transport, error = %e, "accepting a SIP connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // SIP messages are small and answered at once: Nagle's algorithm against the
            // peer's delayed ACKs held each TLS handshake step ~40 ms (scripts/bench-tls).
            if let Err(e) = stream.set_nodelay(true) {
                debug!(%transport, %remote, error = %e, "TCP_NODELAY");
            }
            if self.filter.banned(remote.ip(), Instant::now()) {
                debug!(%transport, %remote, "connection from a banned address closed");
                continue;
            }
            let slot = match self.slots.take(remote.ip()) {
                Ok(slot) => slot,
                Err(limit) => {
                    debug!(%transport, %remote, limit, "connection closed: over the limit");
                    continue;
                }
            };
            let connection = Accepted {
                stream,
                remote,
                local: self.local.clone(),
                kind: self.kind.clone(),
                endpoint: self.endpoint.clone(),
                token: self.cancel.child_token(),
                handshake_timeout: self.slots.limits.handshake_timeout,
            };
            tokio::spawn(connection.serve(slot));
        }
        debug!(%transport, "SIP stream listener stopped");
    }
}

/// A connection just accepted, before its handshake.
struct Accepted {
    stream: TcpStream,
    remote: SocketAddr,
    local: SipAddr,
    kind: StreamKind,
    endpoint: EndpointInnerRef,
    /// The connection's own token: the stack cancels it when it retires the connection.
    token: CancellationToken,
    handshake_timeout: Duration,
}

impl Accepted {
    /// Upgrade within the deadline, hand the connection to the stack, and hold `slot` until
    /// the stack retires it.
    async fn serve(self, slot: Slot) {
        let (remote, token, endpoint) = (self.remote, self.token.clone(), self.endpoint.clone());
        let transport = self.kind.transport();
        // Dropped when this task ends: stops a wss connection's splice.
        let _splice_guard = token.clone().drop_guard();
        let connection = match tokio::time::timeout(self.handshake_timeout, self.upgrade()).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(reason)) => {
                debug!(%transport, %remote, %reason, "SIP connection closed during its handshake");
                return;
            }
            Err(_) => {
                debug!(%transport, %remote, "SIP connection closed: handshake not finished in time");
                return;
            }
        };
        endpoint.transport_layer.add_connection(connection);
        token.cancelled().await;
        drop(slot);
    }

    async fn upgrade(self) -> Result<SipConnection, String> {
        let token = Some(self.token.clone());
        match &self.kind {
            StreamKind::Tcp => TcpConnection::from_stream(self.stream, self.local, token)
                .map(SipConnection::Tcp)
                .map_err(|e| e.to_string()),
            StreamKind::Tls(acceptor) => {
                let tls = acceptor.accept(self.stream).await.map_err(|e| format!("TLS: {e}"))?;
                let remote = SipAddr { r#type: Some(Transport::Tls), addr: self.remote.into() };
                TlsConnection::from_server_stream(tls, self.local, remote, token)
                    .await
                    .map(SipConnection::Tls)
                    .map_err(|e| e.to_string())
            }
            StreamKind::Ws => websocket(self.stream, self.local, self.remote, self.token).await,
            StreamKind::Wss(acceptor) => {
                let tls = acceptor.accept(self.stream).await.map_err(|e| format!("TLS: {e}"))?;
                let plain = splice_to_loopback(tls, self.token.clone()).await.map_err(|e| e.to_string())?;
                websocket(plain, self.local, self.remote, self.token).await
            }
        }
    }
}

/// The WebSocket upgrade (RFC 7118: the client must ask for the `sip` subprotocol) and the
/// stack's connection over it, addressed as the client.
// The upgrade callback's signature (a large error response) is the WebSocket library's.
#[allow(clippy::result_large_err)]
async fn websocket(
    stream: TcpStream,
    local: SipAddr,
    remote: SocketAddr,
    token: CancellationToken,
) -> Result<SipConnection, String> {
    let check_subprotocol = |request: &Request, mut response: Response| {
        let offers_sip = request
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|protocol| protocol.trim().eq_ignore_ascii_case("sip"));
        if !offers_sip {
            let mut refusal =
                ErrorResponse::new(Some("SIP over WebSocket needs Sec-WebSocket-Protocol: sip".into()));
            *refusal.status_mut() = StatusCode::BAD_REQUEST;
            return Err(refusal);
        }
        response.headers_mut().insert("sec-websocket-protocol", "sip".parse().expect("a valid header value"));
        Ok(response)
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_WS_MESSAGE))
        .max_frame_size(Some(MAX_WS_MESSAGE));
    let ws = tokio_tungstenite::accept_hdr_async_with_config(
        MaybeTlsStream::Plain(stream),
        check_subprotocol,
        Some(config),
    )
    .await
    .map_err(|e| format!("WebSocket upgrade: {e}"))?;
    let (sink, read) = ws.split();
    // Both ws and wss clients are addressed as `ws`: a registered binding's transport is
    // "ws" either way, and requests to it find this connection by that address.
    let remote = SipAddr { r#type: Some(Transport::Ws), addr: remote.into() };
    Ok(SipConnection::WebSocket(WebSocketConnection {
        inner: Arc::new(WebSocketInner {
            local_addr: local,
            remote_addr: remote,
            ws_sink: tokio::sync::Mutex::new(sink),
            ws_read: tokio::sync::Mutex::new(Some(read)),
        }),
        cancel_token: Some(token),
    }))
}

/// A loopback TCP stream carrying `tls`'s plaintext both ways until either side closes or
/// `token` is cancelled.
async fn splice_to_loopback(
    mut tls: tokio_rustls::server::TlsStream<TcpStream>,
    token: CancellationToken,
) -> std::io::Result<TcpStream> {
    let pair = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let (near, accepted) = tokio::try_join!(TcpStream::connect(pair.local_addr()?), pair.accept())?;
    let (mut far, far_peer) = accepted;
    // The ephemeral port was open to the whole host for a moment: make sure the far end is
    // our own near end.
    if far_peer != near.local_addr()? {
        return Err(std::io::Error::other("loopback splice: an unexpected peer connected"));
    }
    near.set_nodelay(true)?;
    far.set_nodelay(true)?;
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut tls, &mut far) => {}
            _ = token.cancelled() => {}
        }
    });
    Ok(near)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_bound_each_source_and_everyone_and_come_back_when_dropped() {
        let slots = ConnectionSlots::new(StreamLimits {
            max_per_source: 2,
            max_total: 3,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = slots.take(a).unwrap();
        let _second = slots.take(a).unwrap();
        assert_eq!(slots.take(a).err(), Some("the per-address stream connection limit"));
        let _third = slots.take(b).unwrap();
        assert_eq!(slots.take(b).err(), Some("the platform's stream connection limit"));
        drop(first);
        assert_eq!(slots.open_from(a), 1);
        assert!(slots.take(b).is_ok(), "a freed slot serves anyone");
    }
}
