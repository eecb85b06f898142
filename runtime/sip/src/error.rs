//! Errors of the signalling layer.

use thiserror::Error;

/// Why a signalling operation failed.
#[derive(Debug, Error)]
pub enum SipError {
    /// A listener could not be opened.
    #[error("cannot listen for SIP on {transport} {address}: {reason}")]
    Bind { transport: &'static str, address: std::net::SocketAddr, reason: String },
    /// The TLS listeners' certificate or key is missing or unusable.
    #[error("SIP over TLS certificate: {0}")]
    Certificate(String),
    /// The leg is over (the peer hung up or cancelled) or the dialog is gone.
    #[error("the SIP dialog has ended")]
    DialogEnded,
    /// The stack refused the operation.
    #[error("SIP stack: {0}")]
    Stack(String),
}

impl From<rsipstack::Error> for SipError {
    fn from(error: rsipstack::Error) -> Self {
        SipError::Stack(error.to_string())
    }
}

impl SipError {
    pub(crate) fn from_parse(error: rsipstack::sip::Error) -> Self {
        SipError::Stack(error.to_string())
    }
}
