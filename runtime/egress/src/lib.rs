//! Outbound connections to destinations that customers name — a flow's HTTP requests, `<Play>`
//! audio URLs, webhooks, SIP dial targets — made from inside the platform's network.
//!
//! That is a server-side request forgery boundary, kept in one place:
//!
//! - [`is_public`] decides which addresses are reachable by default (not loopback, private,
//!   link-local, CGNAT, documentation, NAT64/6to4 wrappers of those, …);
//! - [`Allowed`] is an operator's exception (a network, an address, or one `host:port`);
//! - [`resolve`] resolves a host once, and [`connect`] dials exactly the addresses that were
//!   checked, so a DNS answer that changes between the check and the connection (DNS
//!   rebinding) cannot reach an address that was never checked. [`tls`] gives the TLS client
//!   configuration and server name for the original host, so certificates are still verified
//!   against the name. [`http::send`] is one bounded HTTP/1.1 exchange built on them.

mod address;
mod allow;
mod connect;
pub mod http;

pub use address::{is_non_public, is_public};
pub use allow::{AllowEntryError, Allowed};
pub use connect::{ConnectError, connect, resolve, tls};
