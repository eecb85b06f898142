//! Errors a call-control request can end with. Each maps one to one onto the WIT `call-error`
//! variant, so a flow can handle every one of them.

use thiserror::Error;

/// Why a call-control request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CallError {
    /// The call's own leg hung up.
    #[error("the caller hung up")]
    Hangup,
    /// Nobody answered the dialled targets in time.
    #[error("no answer")]
    NoAnswer,
    /// Every dialled target was busy or declined.
    #[error("busy")]
    Busy,
    /// The request could not be carried out.
    #[error("failed: {0}")]
    Failed(String),
    /// An argument was out of range or malformed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The request does not fit the call's state.
    #[error("invalid in state {0}")]
    InvalidState(String),
    /// A platform limit was reached.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
}

impl CallError {
    /// A short stable name for events (`hangup`, `no_answer`, `busy`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Hangup => "hangup",
            CallError::NoAnswer => "no_answer",
            CallError::Busy => "busy",
            CallError::Failed(_) => "failed",
            CallError::InvalidArgument(_) => "invalid_argument",
            CallError::InvalidState(_) => "invalid_state",
            CallError::LimitExceeded(_) => "limit_exceeded",
        }
    }

    /// Shorthand for an [`CallError::InvalidArgument`] naming the argument and the rule.
    pub fn invalid(argument: &str, rule: impl std::fmt::Display) -> Self {
        CallError::InvalidArgument(format!("{argument}: {rule}"))
    }
}
