//! `GET /ws`: the account's events, live, over a websocket.
//!
//! 1. The first message authenticates, within 10 s:
//!    `{"action":"auth","token":"<API token or JWT>"}`, optionally with `"types":["call.hangup",
//!    "call."]` (event types, or a group with its trailing dot; default: the account's `wss`
//!    event subscriptions, or all when it has none) and
//!    `"after":"<event uuid>"` to resume after the last event seen, and `"session":"<uuid>"` to
//!    continue the session of an earlier connection. The answer is
//!    `{"success":true,"account":…,"subscriptions":[…],"session":…}`, or
//!    `{"success":false,"message":…}` and the socket is closed.
//!
//!    The `session` identifies a chain of reconnections: a client that reconnects with the
//!    `session` of its previous connection *replaces* it — the previous socket, if the server
//!    still holds it (a dropped network often leaves it half-open until the next ping fails),
//!    is told `"replaced by a newer connection of session …"` and closed — so a client that
//!    reconnects in a loop holds one subscriber, not one per attempt. A `session` the account
//!    does not have (it ended, or it is another account's) starts a new one under that id.
//!    An account has at most `BusConfig::max_subscribers_per_account` (default 50) live
//!    connections; the next is refused with a message saying so and closed.
//! 2. Then every matching event of the account arrives as one text message (the envelope of
//!    `opentact_events::Event`). `{"action":"ping"}` is answered `{"action":"pong"}`; the server
//!    pings every 20 s. `{"action":"resume","after":…}` replays from another point.
//! 3. A client that lets more than the bus's queue capacity pile up is told so — with the last
//!    event it was sent, to resume after — and disconnected; calls never wait for a client.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use opentact_events::{EventBus, Lagged};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

use crate::auth::token_account;
use crate::error::{ApiError, AuthMethod};
use crate::openapi as doc;
use crate::state::ApiState;

/// Time a client has to send its auth message.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the server pings.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// Largest client message read.
pub const MAX_CLIENT_MESSAGE: usize = 16 * 1024;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/ws", get(upgrade))
}

#[utoipa::path(
    get,
    operation_id = "ws_upgrade",
    path = "/ws",
    tag = "events",
    summary = "The account's events, live, over a websocket",
    description = "Upgrade to a websocket, then send `{\"action\":\"auth\",\"token\":\"<API token or JWT>\"}` \
        within 10 s (optionally `\"types\":[\"call.\"]` and `\"after\":\"<event uuid>\"`); every matching event \
        of the account follows as one JSON message. Credentials go in that first message, not in the request.",
    security(()),
    responses(
        (status = 101, description = "Switching to the websocket protocol"),
        (status = 404, description = "Events are not enabled on this server", body = doc::ErrorEnvelope),
        (status = 422, description = "Not a websocket upgrade request", body = doc::ErrorEnvelope),
    )
)]
async fn upgrade(
    State(state): State<ApiState>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Some(bus) = state.events.clone() else {
        return ApiError::NoRoute {
            method: "GET".into(),
            path: "/ws (events are not enabled on this server)".into(),
        }
        .into_response();
    };
    match ws {
        Ok(ws) => {
            ws.max_message_size(MAX_CLIENT_MESSAGE).on_upgrade(move |socket| session(socket, state, bus))
        }
        Err(rejection) => {
            ApiError::invalid("upgrade", format!("GET /ws takes a websocket upgrade: {rejection}"))
                .into_response()
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
enum ClientMessage {
    Auth {
        token: String,
        #[serde(default)]
        types: Vec<String>,
        #[serde(default)]
        after: Option<Uuid>,
        #[serde(default)]
        session: Option<Uuid>,
    },
    Resume {
        after: Uuid,
    },
    Ping,
}

fn parse(message: &str) -> Result<ClientMessage, String> {
    serde_json::from_str(message).map_err(|e| {
        format!("cannot read the message ({e}): send {{\"action\":\"auth\"|\"resume\"|\"ping\", …}}")
    })
}

async fn send_json(socket: &mut WebSocket, value: serde_json::Value) -> bool {
    socket.send(Message::Text(value.to_string().into())).await.is_ok()
}

/// Tell the client why, then close.
async fn refuse(mut socket: WebSocket, code: u16, message: String) {
    let _ = send_json(&mut socket, json!({"success": false, "message": message})).await;
    let reason = if message.len() > 120 { "see the previous message".into() } else { message.into() };
    let _ = socket.send(Message::Close(Some(CloseFrame { code, reason }))).await;
}

async fn session(mut socket: WebSocket, state: ApiState, bus: Arc<EventBus>) {
    let first = tokio::time::timeout(AUTH_TIMEOUT, socket.recv()).await;
    let text = match first {
        Ok(Some(Ok(Message::Text(text)))) => text,
        Ok(Some(Ok(_))) => {
            return refuse(
                socket,
                close_code::POLICY,
                "the first message must be the auth message (text)".into(),
            )
            .await;
        }
        Ok(_) => return,
        Err(_) => {
            return refuse(socket, close_code::POLICY, format!("no auth message within {AUTH_TIMEOUT:?}"))
                .await;
        }
    };
    let (token, mut types, after, session) = match parse(&text) {
        Ok(ClientMessage::Auth { token, types, after, session }) => (token, types, after, session),
        Ok(_) => {
            return refuse(
                socket,
                close_code::POLICY,
                "the first message must be {\"action\":\"auth\",\"token\":…}".into(),
            )
            .await;
        }
        Err(message) => return refuse(socket, close_code::POLICY, message).await,
    };
    let account = match token_account(&state, AuthMethod::Websocket, token.trim()).await {
        Ok(auth) => auth.account,
        Err(error) => return refuse(socket, close_code::POLICY, error.to_string()).await,
    };
    if types.is_empty() {
        types = match wss_types(&state, account).await {
            Ok(types) => types,
            Err(error) => return refuse(socket, close_code::ERROR, error.to_string()).await,
        };
    }
    let mut subscription = match bus.subscribe_session(account, types.clone(), after, session) {
        Ok(subscription) => subscription,
        Err(error) => return refuse(socket, close_code::POLICY, error.to_string()).await,
    };
    let subscriptions = if types.is_empty() { vec!["*".to_owned()] } else { types.clone() };
    if !send_json(&mut socket, json!({"success": true, "account": account, "subscriptions": subscriptions, "session": subscription.session()}))
        .await
    {
        return;
    }
    tracing::debug!(%account, "websocket subscribed");
    let mut last_sent: Option<Uuid> = after;
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.reset();
    loop {
        tokio::select! {
            event = subscription.next() => match event {
                Some(Ok(event)) => {
                    if socket.send(Message::Text(event.to_json().into())).await.is_err() {
                        return;
                    }
                    last_sent = Some(event.uuid);
                }
                Some(Err(Lagged)) => {
                    let resume = last_sent.map_or_else(|| "reconnect".to_owned(), |id| format!("reconnect and resume after {id}"));
                    let capacity = bus.config().queue_capacity;
                    return refuse(
                        socket,
                        close_code::POLICY,
                        format!("too slow: more than {capacity} events were waiting for this client; {resume}"),
                    )
                    .await;
                }
                None if subscription.replaced() => {
                    let session = subscription.session();
                    return refuse(
                        socket,
                        close_code::POLICY,
                        format!("replaced by a newer connection of session {session}"),
                    )
                    .await;
                }
                None => return,
            },
            message = socket.recv() => match message {
                Some(Ok(Message::Text(text))) => match parse(&text) {
                    Ok(ClientMessage::Ping) => {
                        if !send_json(&mut socket, json!({"action": "pong"})).await {
                            return;
                        }
                    }
                    // The same session: the bus ends the current subscriber as it adds the new one.
                    Ok(ClientMessage::Resume { after }) => match bus.subscribe_session(account, types.clone(), Some(after), Some(subscription.session())) {
                        Ok(resumed) => {
                            subscription = resumed;
                            last_sent = Some(after);
                        }
                        Err(error) => return refuse(socket, close_code::POLICY, error.to_string()).await,
                    },
                    Ok(ClientMessage::Auth { .. }) => {
                        if !send_json(&mut socket, json!({"success": false, "message": "already authenticated"})).await {
                            return;
                        }
                    }
                    Err(message) => {
                        if !send_json(&mut socket, json!({"success": false, "message": message})).await {
                            return;
                        }
                    }
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The account's `wss` event subscriptions as the bus's type filters (`call.*` is the group
/// `call.`); empty — every event — when it has none or one is `*`. A client that names its own
/// `types` uses those instead.
async fn wss_types(state: &ApiState, account: Uuid) -> Result<Vec<String>, ApiError> {
    let page = state
        .repo
        .list_subscriptions(account, opentact_store::ListParams::page(opentact_store::MAX_TAKE, 0))
        .await?;
    let mut types = Vec::new();
    for subscription in page.data.iter().filter(|s| s.channel == opentact_store::EventChannel::Wss) {
        match subscription.event_type.as_str() {
            "*" => return Ok(Vec::new()),
            family if family.ends_with(".*") => types.push(family.trim_end_matches('*').to_owned()),
            exact => types.push(exact.to_owned()),
        }
    }
    Ok(types)
}
