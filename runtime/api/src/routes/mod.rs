//! The routes, one module per REST resource. "Add an endpoint" touches the resource's module
//! and its `routes()` function; [`router`] only nests them.

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::error::ApiError;
use crate::state::ApiState;

pub mod account;
pub mod app;
pub mod auth;
pub mod batch;
pub mod call;
pub mod call_log;
pub mod docs;
pub mod event;
pub mod lease;
pub mod lookup;
pub mod messaging_profile;
pub mod numbers;
pub mod outbound_voice;
pub mod profile;
pub mod record;
pub mod signup;
pub mod sip_connection;
pub mod sip_domain;
pub mod sms;
pub mod tendlc;
pub mod token;
pub mod verified_number;
pub mod webcall;
pub mod ws;

/// The whole API. Every path is under `/rest`; anything else, or a known path with a method
/// it does not take, answers with the error envelope.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .merge(auth::routes())
        .merge(account::routes())
        .merge(signup::routes())
        .merge(app::routes())
        .merge(token::routes())
        .merge(numbers::routes())
        .merge(lease::routes())
        .merge(profile::routes())
        .merge(lookup::routes())
        .merge(ws::routes())
        .merge(call::routes())
        .merge(verified_number::routes())
        .merge(batch::routes())
        .merge(call_log::routes())
        .merge(record::routes())
        .merge(event::routes())
        .merge(sip_connection::routes())
        .merge(sip_domain::routes())
        .merge(outbound_voice::routes())
        .merge(messaging_profile::routes())
        .merge(sms::routes())
        .merge(tendlc::routes())
        .merge(docs::routes())
        .merge(webcall::routes())
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::extract::DefaultBodyLimit::max(crate::envelope::MAX_JSON_BODY))
        .layer(middleware::from_fn(request_span))
        .with_state(state)
}

async fn no_route(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::NoRoute { method: method.to_string(), path: uri.path().to_owned() }
}

async fn wrong_method(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed { method: method.to_string(), path: uri.path().to_owned() }
}

/// The root span of a request: method and route template (never the query string, which may
/// hold `?jwt=`); the account is recorded by [`crate::AuthAccount`].
async fn request_span(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let span = tracing::info_span!(
        "api.request",
        method = %req.method(),
        route = route.as_deref().unwrap_or("<unmatched>"),
        account = tracing::field::Empty,
    );
    let response = next.run(req).instrument(span.clone()).await;
    span.in_scope(|| tracing::debug!(status = response.status().as_u16(), "answered"));
    response.into_response()
}
