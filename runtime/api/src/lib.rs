//! The REST API: an axum [`Router`](axum::Router) over the store.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use opentact_api::{ApiConfig, ApiState, JwtSecret, router};
//! let store = opentact_store::Store::open("sqlite://data/opentact.db?mode=rwc").await?;
//! let state = ApiState::new(Arc::new(store), JwtSecret::new(vec![7u8; 32])?, ApiConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! // With the client's address, which the per-address login limits need.
//! let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! Layout: one module per REST resource under [`routes`]; authentication in [`auth`]; the
//! envelope, paging and the extractors that turn bad input into 400s in [`envelope`]; the one
//! error type in [`error`]; the OpenAPI document generated from the handlers in [`openapi`].
//! What protects password logins: [`login_limit`] (failures per e-mail and per address) and
//! [`password_gate`] (argon2 a few at a time); which URLs may be stored: [`url_policy`].

pub mod auth;
pub mod envelope;
pub mod error;
pub mod jwt;
pub mod login_limit;
pub mod oidc;
pub mod openapi;
pub mod password_gate;
mod publish;
pub mod rental;
pub mod routes;
pub mod state;
pub mod url_policy;
pub mod window_limit;

pub use auth::AuthAccount;
pub use error::ApiError;
pub use routes::router;
pub use url_policy::UrlPolicy;
// The engines' seams, re-exported: handlers and embedders name them from here.
pub use opentact_control::{
    BatchLauncher, CallCommand, CallControl, Calling, CommandOutcome, Originate, OriginateError,
};
pub use opentact_control::{Messaging, SentSms, SmsFrom, SmsOrigin, SmsRefusal, SmsSend};
pub use state::{
    ApiConfig, ApiState, ComponentCheck, ComponentRefused, DEFAULT_SIP_DOMAIN, JwtSecret, SipPresence,
    WebcallPorts,
};
