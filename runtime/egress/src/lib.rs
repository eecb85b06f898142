//! Outbound connections to destinations that customers name — a flow's HTTP requests, `<Play>`
//! audio URLs, webhooks, SIP dial targets — made from inside the platform's network.
//!
//! That is a server-side request forgery boundary, kept in one place:
//!
//! - [`is_public`] decides which addresses are reachable by default (not loopback, private,
//!   link-local, CGNAT, documentation, NAT64/6to4 wrappers of those, …);
//! - [`Allowed`] is an operator's exception (a network, an address, or one `host:port`);
//! - [`Policy`] is one kind of destination's rule: public addresses except the platform's own
//!   ([`set_own_addresses`]), plus the operator's exceptions;
//! - [`http::Client`] is the platform's one outbound HTTP client (reqwest): the policy is its
//!   DNS resolver, address literals and redirect targets are checked before they are dialled,
//!   and every new connection's peer address is checked again before a byte is written; sizes
//!   and times are capped. Webhooks, flows' HTTP (wasi:http), prompt audio, speech-to-text,
//!   OpenID keys and `opentact api` all go through it;
//! - [`resolve`] and [`connect`] (resolve once, dial exactly the checked addresses) remain for
//!   what is not HTTP (SIP targets), and [`tls`] is the TLS client configuration (ring,
//!   Mozilla's roots from webpki-roots) the HTTP client uses too.
//!
//! wasi:http's outgoing handler is not a second client: wasmtime-wasi-http hands each guest
//! request to a hook (`WasiHttpHooks::send_request` in opentact-flows), which sends it with an
//! [`http::Client`] built from the flow policy, so flows' requests get the same resolver,
//! connection check and caps.

mod address;
mod allow;
mod connect;
pub mod http;
mod policy;

pub use address::{is_non_public, is_public};
pub use allow::{AllowEntryError, Allowed};
pub use connect::{ConnectError, connect, resolve, tls};
pub use http::Client;
pub use policy::{Policy, set_own_addresses};
