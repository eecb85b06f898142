//! The call engine's flow-facing side.
//!
//! A flow — the built-in XML guest, a customer's component, or REST commands — drives a call
//! through a [`session::CallSession`]: the one verb executor of the platform. The session checks
//! arguments, runs the verb on a [`backend::CallBackend`] (a real SIP call, or the
//! [`simulated::SimulatedCall`] of the flow runner) and emits [`events::CallEvent`]s.
//! Nothing here knows about Wasm, HTTP or SQL.

pub mod backend;
pub mod clock;
pub mod error;
pub mod events;
pub mod model;
pub mod session;
pub mod simulated;

pub use backend::CallBackend;
pub use error::CallError;
pub use events::{CallEvent, EventKind, EventSink, Phase};
pub use session::{CallSession, FlowOutcome, SessionConfig};
