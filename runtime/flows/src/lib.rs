//! The flow host: runs flows — WebAssembly components of the `opentact:flow` world — with
//! wasmtime, one instance per trigger (a call, an inbound SMS: [`Trigger`]), each within limits.
//!
//! - One [`FlowHost`] per process: one engine with the pooling allocator (its size is the
//!   admission control), an epoch ticker for CPU limits, and a cache of compiled components
//!   keyed by content hash, in memory and on disk.
//! - One store per flow ([`FlowHost::run`]): memory capped by a resource limiter, CPU by
//!   epoch interruption (a guest that computes without waiting on its call is stopped), wall
//!   clock by the call's maximum length, stdout/stderr capped into the log, no filesystem,
//!   environment or sockets, and outbound HTTP policed ([`HttpPolicy`]).
//! - Capabilities own their imports and per-flow state (calls, messaging, HTTP; see
//!   `imports`). The call imports call into the call's [`opentact_call::CallSession`], the
//!   verb executor every flow shares; `send-sms` goes to the platform's [`SmsSender`].
//!   Whatever a guest does, the flow ends in its error path and the host goes on.

mod cache;
mod config;
mod context;
mod error;
mod host;
mod http;
mod imports;
mod state;

pub use config::{HostConfig, HttpPolicy};
pub use context::{
    CallContext, ControlMode, EmptyDirectory, HttpMethod, InboundMessage, Location, NumberDirectory,
    OutboundSms, RequestSigner, SmsContext, SmsSendError, SmsSender, Trigger,
};
pub use error::HostError;
pub use host::{
    ASYNC_STACK, CORE_INSTANCES_PER_COMPONENT, CacheStats, EPOCH_TICK, FlowComponent, FlowHost,
    MAPPINGS_PER_FLOW, MAX_COMPONENT_BYTES, MAX_SMS_FLOW_LENGTH, MAX_WASM_STACK, MEMORIES_PER_COMPONENT,
    MEMORY_GUARD, MEMORY_KEEP_RESIDENT, TABLE_KEEP_RESIDENT, TABLES_PER_COMPONENT, WIT_VERSION,
    check_map_count,
};
pub use http::MAX_SIGNED_BODY_BYTES;
pub use imports::{MAX_COMMAND_WAIT_MS, MAX_SMS_PER_FLOW, REFUSED_REPORTS_BEFORE_STOP};
pub use state::MAX_TABLE_ELEMENTS;
