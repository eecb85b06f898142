//! The error every call-control request can return: a mirror of the WIT `call-error`.

use std::fmt;

use crate::bindings::opentact::flow::types::CallError;

/// Why a call-control request did not succeed. Each case is something a flow can handle.
///
/// Returned by every [`Call`](crate::Call) method. A flow usually propagates it with `?` (the
/// caller hung up: nothing more can be done) and matches the cases it can act on, such as
/// [`Error::NoAnswer`] and [`Error::Busy`] after a [`Dial`](crate::Dial).
///
/// ```no_run
/// use opentact_sdk::{Call, Dial, Error, Result};
///
/// fn connect(call: &Call) -> Result<()> {
///     match call.dial(Dial::new().number("12223334455")) {
///         Ok(_) => Ok(()),
///         Err(Error::NoAnswer | Error::Busy) => call.say("Nobody is available."),
///         Err(other) => Err(other),
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The caller (the call's own leg) hung up; nothing more can be done on this call, the flow
    /// should return.
    Hangup,
    /// Nobody answered the dialled targets before the dial timeout.
    NoAnswer,
    /// Every dialled target was busy (486/600) or declined (603).
    Busy,
    /// The request could not be carried out (a target unreachable, a media fetch failed…); the
    /// text says what happened.
    Failed(String),
    /// An argument was out of range or malformed; the text names the argument and the rule.
    InvalidArgument(String),
    /// The request does not fit the call's state (e.g. `unhold` on a call not on hold); the text
    /// names the state.
    InvalidState(String),
    /// A platform limit was reached (e.g. the outbound channel limit); the text names the limit.
    LimitExceeded(String),
}

impl Error {
    /// Whether the caller hung up (the flow can only return).
    pub fn is_hangup(&self) -> bool {
        matches!(self, Error::Hangup)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Hangup => f.write_str("the caller hung up"),
            Error::NoAnswer => f.write_str("no answer"),
            Error::Busy => f.write_str("busy"),
            Error::Failed(why) => write!(f, "failed: {why}"),
            Error::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
            Error::InvalidState(why) => write!(f, "invalid in the call's state: {why}"),
            Error::LimitExceeded(why) => write!(f, "limit exceeded: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<CallError> for Error {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Hangup => Error::Hangup,
            CallError::NoAnswer => Error::NoAnswer,
            CallError::Busy => Error::Busy,
            CallError::Failed(why) => Error::Failed(why),
            CallError::InvalidArgument(why) => Error::InvalidArgument(why),
            CallError::InvalidState(why) => Error::InvalidState(why),
            CallError::LimitExceeded(why) => Error::LimitExceeded(why),
        }
    }
}

impl From<Error> for CallError {
    fn from(error: Error) -> Self {
        match error {
            Error::Hangup => CallError::Hangup,
            Error::NoAnswer => CallError::NoAnswer,
            Error::Busy => CallError::Busy,
            Error::Failed(why) => CallError::Failed(why),
            Error::InvalidArgument(why) => CallError::InvalidArgument(why),
            Error::InvalidState(why) => CallError::InvalidState(why),
            Error::LimitExceeded(why) => CallError::LimitExceeded(why),
        }
    }
}

/// The result of a call-control request.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wit_case_maps_both_ways() {
        let cases = [
            (CallError::Hangup, Error::Hangup),
            (CallError::NoAnswer, Error::NoAnswer),
            (CallError::Busy, Error::Busy),
            (CallError::Failed("a".into()), Error::Failed("a".into())),
            (CallError::InvalidArgument("b".into()), Error::InvalidArgument("b".into())),
            (CallError::InvalidState("c".into()), Error::InvalidState("c".into())),
            (CallError::LimitExceeded("d".into()), Error::LimitExceeded("d".into())),
        ];
        for (wit, sdk) in cases {
            assert_eq!(Error::from(wit.clone()), sdk);
            assert_eq!(format!("{:?}", CallError::from(sdk)), format!("{wit:?}"));
        }
    }

    #[test]
    fn display_says_what_happened() {
        assert_eq!(Error::Hangup.to_string(), "the caller hung up");
        assert_eq!(Error::NoAnswer.to_string(), "no answer");
        assert_eq!(Error::Busy.to_string(), "busy");
        assert_eq!(Error::Failed("media fetch: 404".into()).to_string(), "failed: media fetch: 404");
        assert_eq!(
            Error::InvalidArgument("max-digits: 1–128".into()).to_string(),
            "invalid argument: max-digits: 1–128"
        );
        assert_eq!(
            Error::InvalidState("not on hold".into()).to_string(),
            "invalid in the call's state: not on hold"
        );
        assert_eq!(Error::LimitExceeded("channels".into()).to_string(), "limit exceeded: channels");
        assert!(Error::Hangup.is_hangup() && !Error::Busy.is_hangup());
    }

    #[test]
    fn it_is_a_std_error() {
        let boxed: Box<dyn std::error::Error> = Box::new(Error::Busy);
        assert_eq!(boxed.to_string(), "busy");
    }
}
