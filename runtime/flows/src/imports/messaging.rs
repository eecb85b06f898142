//! `opentact:flow/messaging`: the messaging capability — `send-sms` from any flow, through the
//! platform's [`SmsSender`] (the one place that checks and queues an SMS, as for the REST API).
//!
//! In a call flow the SMS is a step of the call (`sms` started / finished events) and is sent
//! from the call's number by default; in an SMS flow from the number the message came in to.

use std::sync::Arc;

use opentact_call::model::SmsRequest;
use wasmtime::component::Linker;

use super::HasFlow;
use super::wit::{self, CallError};
use super::xml::opentact::flow::messaging::{self as interface, Host};
use crate::context::{OutboundSms, SmsSendError, SmsSender};
use crate::state::{FlowCtxView, FlowView};

/// Most SMS one flow may send (one call, one inbound SMS): a flow that sends in a loop gets
/// `limit-exceeded` past it, whatever the account's rate limits would still allow.
pub const MAX_SMS_PER_FLOW: u32 = 10;

/// The messaging capability's state in one flow.
pub(crate) struct MessagingCtx {
    /// The platform's messaging; `None` when it has none (`send-sms` then fails).
    pub(crate) sender: Option<Arc<dyn SmsSender>>,
    /// The account the flow runs for.
    pub(crate) account: String,
    /// The app running the flow.
    pub(crate) app: String,
    /// The call, in a call flow.
    pub(crate) call: Option<String>,
    /// The sender when the flow gives none: the call's number, the receiving number.
    pub(crate) default_from: Option<String>,
    /// SMS sent so far (accepted or refused by the platform).
    pub(crate) sent: u32,
}

/// Link `opentact:flow/messaging`.
pub(crate) fn add_to_linker<T: FlowView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    interface::add_to_linker::<T, HasFlow>(linker, T::flow)
}

fn error(e: SmsSendError) -> opentact_call::CallError {
    match e {
        SmsSendError::Invalid(message) => opentact_call::CallError::InvalidArgument(message),
        SmsSendError::Limited(message) => opentact_call::CallError::LimitExceeded(message),
        SmsSendError::Unavailable(message) => opentact_call::CallError::Failed(message),
    }
}

impl Host for FlowCtxView<'_> {
    async fn send_sms(&mut self, request: wit::SmsRequest) -> Result<String, CallError> {
        let request = SmsRequest { from: request.from, to: request.to, text: request.text };
        opentact_call::session::check_sms(&request).map_err(super::call::error)?;
        let messaging = &mut self.ctx.messaging;
        if messaging.sent >= MAX_SMS_PER_FLOW {
            return Err(CallError::LimitExceeded(format!(
                "send-sms: at most {MAX_SMS_PER_FLOW} SMS per flow"
            )));
        }
        let Some(from) = request.from.clone().or_else(|| messaging.default_from.clone()) else {
            return Err(CallError::InvalidArgument(
                "sms.from: the call has no number of the account to send from; give `from`, a number \
                 the account leases with SMS enabled"
                    .to_owned(),
            ));
        };
        let Some(sender) = messaging.sender.clone() else {
            return Err(CallError::Failed("SMS is not available on this platform".to_owned()));
        };
        messaging.sent += 1;
        let sms = OutboundSms {
            account: messaging.account.clone(),
            app: messaging.app.clone(),
            call: messaging.call.clone(),
            from,
            to: request.to.clone(),
            text: request.text.clone(),
        };
        self.waits_on_call();
        let send = async move { sender.send(sms).await.map_err(error) };
        let sent = match &self.ctx.call {
            Some(call) => call.session.send_sms_with(&request, send).await,
            None => send.await,
        };
        sent.map_err(super::call::error)
    }
}
