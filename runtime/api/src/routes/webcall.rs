//! The web call (issue 13, item 4): `GET /webcall`, a page where a SIP user signs in with their
//! SIP credentials, registers over SIP over WebSocket (RFC 7118) and places calls from the
//! browser with WebRTC audio; `GET /webcall/webcall.js`, its script. The page needs no API
//! credentials (it never touches the REST API): its user proves who they are to the SIP
//! registrar, by digest, like any phone.
//!
//! The script and page come from this crate, and the page's Content-Security-Policy lets it
//! load nothing else and connect only to its own host.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::state::{ApiState, WebcallPorts};

const PAGE: &str = include_str!("webcall.html");
const SCRIPT: &str = include_str!("webcall.js");

/// No script, style, frame or connection from anywhere but this host (the WebSocket to the
/// SIP port of the same host is `ws:`/`wss:`; a CSP cannot name another port of 'self').
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   connect-src 'self' ws: wss:; media-src 'self' blob:; frame-ancestors 'none'";

pub fn routes() -> Router<ApiState> {
    Router::new().route("/webcall", get(page)).route("/webcall/webcall.js", get(script))
}

/// The page, with the port of SIP over WebSocket; 404 with the setting to turn it on when the
/// web call is off.
#[utoipa::path(
    get,
    operation_id = "webcall_page",
    path = "/webcall",
    tag = "webcall",
    security(()),
    responses(
        (status = 200, description = "The web call page", content_type = "text/html", body = String),
        (status = 404, description = "The web call is off (neither `sip.ws_listen` nor `sip.wss_listen`)", content_type = "text/plain", body = String)
    )
)]
pub(crate) async fn page(State(state): State<ApiState>) -> impl IntoResponse {
    let WebcallPorts { ws, wss } = state.webcall;
    if ws.is_none() && wss.is_none() {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CONTENT_SECURITY_POLICY, CSP)],
            "The web call is off on this platform: set sip.wss_listen or sip.ws_listen (SIP over \
             WebSocket) to turn it on.\n"
                .to_owned(),
        );
    }
    let port = |port: Option<u16>| port.map(|port| port.to_string()).unwrap_or_default();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CONTENT_SECURITY_POLICY, CSP)],
        PAGE.replace("{{WS_PORT}}", &port(ws))
            .replace("{{WSS_PORT}}", &port(wss))
            .replace("{{SIP_DOMAIN}}", &state.sip_domain),
    )
}

/// The page's SIP user agent and WebRTC glue.
#[utoipa::path(
    get,
    operation_id = "webcall_script",
    path = "/webcall/webcall.js",
    tag = "webcall",
    security(()),
    responses((status = 200, description = "The web call's script", content_type = "text/javascript", body = String))
)]
pub(crate) async fn script() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT)
}
