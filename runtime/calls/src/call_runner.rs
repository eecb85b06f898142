//! Runs one call from its first event to its last, whichever way it started: an inbound INVITE
//! that routing accepted, or a call the platform places (`POST /rest/call`, a batch). Both get
//! the same session (events to the bus, the call log and the webhooks), the same flow host and
//! the same async-command registration, so a flow cannot tell how its call began.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use opentact_call::model::{CallInfo, HangupReason};
use opentact_call::{CallBackend, CallSession, EventSink, FlowOutcome, SessionConfig};
use opentact_events::{AccountSink, EventBus};
use opentact_flows::{CallContext, ControlMode, FlowComponent, FlowHost, HttpMethod};
use opentact_store::model::{AppMode, SipControlApp, WebhookMethod};
use opentact_voice::{MediaRenderer, SipCall, VoiceConfig};
use tracing::{error, info, warn};
use uuid::Uuid;

use crate::Repo;
use crate::dialer::ServerDialer;
use crate::live_calls::LiveCalls;
use crate::numbers::NumberData;

/// What a call runs: the account's app (when there is one) and its flow.
#[derive(Debug)]
pub struct Flow {
    pub account: Uuid,
    pub app: Option<SipControlApp>,
    pub component: FlowComponent,
    pub mode: ControlMode,
}

/// How a call ended, for those that wait on it (a batch's progress).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEnd {
    /// Whether the callee (or, inbound, the platform) answered.
    pub answered: bool,
    /// The Q.850 cause of `call.hangup`.
    pub q850_cause: u16,
    /// Why, when it was not a plain end.
    pub reason: Option<String>,
}

/// The parts every call uses.
pub struct CallRunner {
    pub store: Repo,
    pub host: Arc<FlowHost>,
    pub xml_guest: FlowComponent,
    pub voice: Arc<VoiceConfig>,
    pub renderer: MediaRenderer,
    /// Where every call's events go besides the bus (the event log).
    pub events: Arc<dyn EventSink>,
    /// The event bus: each call publishes its events for its account.
    pub bus: Arc<EventBus>,
    /// Live calls: async ones take REST commands, any can be bridged.
    pub live_calls: Arc<LiveCalls>,
    pub webhook_timeout_ms: u32,
    pub dialer: Arc<ServerDialer>,
    /// Writes every call's CDR and recordings to the store.
    pub call_log: Arc<crate::call_log::CallLog>,
    /// Delivers the account's events to its webhooks (and the app's `event_url`).
    pub webhooks: Arc<opentact_webhooks::Webhooks>,
    /// Whether a new call may start (accounts' shares, draining for a stop).
    pub admission: Arc<crate::admission::Admission>,
}

impl std::fmt::Debug for CallRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallRunner").finish_non_exhaustive()
    }
}

impl CallRunner {
    /// The component and control mode an app's calls run.
    pub async fn flow_for(&self, app: &SipControlApp) -> Result<(FlowComponent, ControlMode), String> {
        self.flow_for_mode(app.account, &app.mode, app.current_component).await
    }

    /// The component and control mode for `mode` (an app's, or one given with an outbound call).
    pub async fn flow_for_mode(
        &self,
        account: Uuid,
        mode: &AppMode,
        current_component: Option<Uuid>,
    ) -> Result<(FlowComponent, ControlMode), String> {
        match mode {
            AppMode::Xml { document } => Ok((self.xml_guest.clone(), ControlMode::Xml(document.clone()))),
            AppMode::Webhook { url, method, timeout_ms } => Ok((
                self.xml_guest.clone(),
                ControlMode::Webhook {
                    url: url.clone(),
                    method: match method {
                        WebhookMethod::Get => HttpMethod::Get,
                        WebhookMethod::Post => HttpMethod::Post,
                    },
                    timeout_ms: u32::try_from(*timeout_ms).unwrap_or(self.webhook_timeout_ms),
                },
            )),
            AppMode::Async => Ok((self.xml_guest.clone(), ControlMode::AsyncCommands)),
            AppMode::Component => {
                let version = current_component.ok_or("the app has no deployed component")?;
                let bytes = self
                    .store
                    .component_bytes(account, version)
                    .await
                    .map_err(|error| format!("reading the component: {error}"))?
                    .ok_or("the app's component version is gone")?;
                // Compiling (on a cache miss) is CPU work: off the SIP tasks, under the host's
                // compile permits and time limit.
                let component = self
                    .host
                    .load_component_async(bytes)
                    .await
                    .map_err(|error| format!("loading the component: {error}"))?;
                Ok((component, ControlMode::Component))
            }
        }
    }

    /// A session for `call`, registered as live (an async call takes REST commands from now on,
    /// queued until its flow runs) before `call.initiated` is emitted — to the bus, the call
    /// log, the event log and the webhooks (the app's `event_url` among them) — so a client
    /// that commands the call as soon as it hears of it finds it.
    pub fn session(&self, call: &Arc<SipCall>, flow: &Flow) -> Arc<CallSession> {
        self.session_with(call, flow, None)
    }

    /// [`CallRunner::session`] for an inbound call whose STIR/SHAKEN verification found
    /// `shaken`: its events' call objects carry the result, and so does its CDR.
    pub fn session_with(
        &self,
        call: &Arc<SipCall>,
        flow: &Flow,
        shaken: Option<&crate::shaken::InboundCheck>,
    ) -> Arc<CallSession> {
        let mut call_fields = shaken.map(|check| check.call_fields()).unwrap_or_default();
        let info = CallBackend::info(call.as_ref());
        // The call object of every event names the call's number and app.
        call_fields.insert("tn".to_owned(), serde_json::json!(info.tn));
        call_fields.insert(
            "sip_control_app".to_owned(),
            flow.app.as_ref().map_or(
                serde_json::Value::Null,
                |app| serde_json::json!({"uuid": app.uuid, "name": app.name}),
            ),
        );
        self.webhooks.call_started(&info.id, flow.app.as_ref().and_then(|app| app.event_url.as_deref()));
        let session = Arc::new(CallSession::unannounced(
            call.clone(),
            Arc::new(
                AccountSink::new(
                    flow.account,
                    self.bus.clone(),
                    Some(self.call_log.sink(
                        flow.account,
                        flow.app.as_ref().map(|app| app.uuid),
                        Some(self.events.clone()),
                    )),
                )
                .with_call_fields(call_fields),
            ),
            SessionConfig { auto_answer: flow.app.as_ref().is_none_or(|app| app.auto_answer) },
        ));
        if let Ok(id) = Uuid::parse_str(&info.id) {
            let asynchronous = matches!(flow.mode, ControlMode::AsyncCommands);
            self.live_calls.register(id, flow.account, session.clone(), call.clone(), asynchronous);
        }
        session.announce();
        // After `call.initiated` (queued by the announcement): the CDR row exists by then.
        if let (Some(check), Ok(id)) = (shaken, Uuid::parse_str(&info.id)) {
            self.call_log.record_shaken(flow.account, id, check.record());
        }
        session
    }

    /// The live call's id and, for an async call, the commands queued for its flow (registered
    /// by [`CallRunner::session_with`]).
    fn register(&self, session: &Arc<CallSession>) -> (Uuid, Option<tokio::sync::mpsc::Receiver<String>>) {
        let id = Uuid::parse_str(&session.info().id).unwrap_or_else(|_| Uuid::new_v4());
        // Gone from the live calls before `call.destroyed` goes out, so a command sent on that
        // event gets 404, not the 409 of a call still ending.
        let live_calls = self.live_calls.clone();
        session.before_destroyed(move || live_calls.remove(id));
        (id, self.live_calls.take_commands(id))
    }

    /// Run `flow` on the call until it ends, then hang up whatever is still up.
    pub async fn run(&self, call: Arc<SipCall>, session: Arc<CallSession>, flow: Flow) -> CallEnd {
        let (id, commands) = self.register(&session);
        self.run_registered(call, session, flow, id, commands).await
    }

    async fn run_registered(
        &self,
        call: Arc<SipCall>,
        session: Arc<CallSession>,
        flow: Flow,
        id: Uuid,
        commands: Option<tokio::sync::mpsc::Receiver<String>>,
    ) -> CallEnd {
        let max_length = Duration::from_secs(
            flow.app
                .as_ref()
                .map_or(0, |app| u64::try_from(app.max_call_length_min).unwrap_or(0))
                .saturating_mul(60),
        );
        let mut context = CallContext::new(session.clone(), flow.mode).with_numbers(Arc::new(NumberData));
        if !max_length.is_zero() {
            context = context.with_max_call_length(max_length);
        }
        if let Some(commands) = commands {
            context = context.with_commands(commands);
        }
        // The XML guest's requests (the app's webhook, <Callback>, a <Gather>'s action, <Curl>)
        // are signed like event webhooks; the host signs no customer component's requests.
        if !matches!(context.mode, ControlMode::Component) {
            match self.webhooks.signers.get(&*self.store, flow.account).await {
                Ok(signer) => context = context.with_request_signer(Arc::new(AccountRequestSigner(signer))),
                Err(error) => warn!(call = %id, %error, "the flow's requests go unsigned"),
            }
        }
        // A panic in the host's code for this call (an audio decoder, a verb's bug) ends this
        // call as a failed flow — its hangup event and CDR follow — and nothing else.
        let outcome =
            match AssertUnwindSafe(self.host.run_call(&flow.component, context)).catch_unwind().await {
                Ok(outcome) => outcome,
                Err(panic) => {
                    let message = panic_message(panic.as_ref());
                    error!(call = %id, panic = %message, "the call's flow panicked: ending the call");
                    self.host.metrics().failed(opentact_metrics::FlowFailure::Panic);
                    let outcome = FlowOutcome::Failed(format!("internal error: {message}"));
                    session.finish(outcome.clone()).await;
                    outcome
                }
            };
        self.live_calls.remove(id);
        info!(call = %id, ?outcome, "flow finished");
        // Whatever the flow did, the call ends with it.
        let _ = CallBackend::hangup(call.as_ref(), HangupReason::Normal).await;
        Self::end_of(&session, true)
    }

    /// A call the platform places: ring it (the session reports `call.answered`, or the
    /// callee's cause), then run its flow; `refusal` ends it before it rings with that cause
    /// and reason (a limit, the balance).
    /// While it rings it is live already: a `hangup` command cancels it, other commands of an
    /// async call wait for the answer. `answered` hears when the callee answers.
    pub async fn run_outbound(
        &self,
        call: Arc<SipCall>,
        session: Arc<CallSession>,
        flow: Flow,
        refusal: Option<(opentact_call::events::Q850, String)>,
        answered: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> CallEnd {
        if let Some((cause, reason)) = refusal {
            if let Ok(id) = Uuid::parse_str(&session.info().id) {
                self.live_calls.remove(id);
            }
            session.refuse(cause, reason);
            session.finish(FlowOutcome::Completed).await;
            let _ = CallBackend::hangup(call.as_ref(), HangupReason::Normal).await;
            return Self::end_of(&session, false);
        }
        let (id, commands) = self.register(&session);
        if session.connect().await.is_err() {
            self.live_calls.remove(id);
            session.finish(FlowOutcome::Completed).await;
            let _ = CallBackend::hangup(call.as_ref(), HangupReason::Normal).await;
            return Self::end_of(&session, false);
        }
        if let Some(answered) = answered {
            let _ = answered.send(());
        }
        self.run_registered(call, session, flow, id, commands).await
    }

    fn end_of(session: &CallSession, answered: bool) -> CallEnd {
        let (cause, reason) =
            session.end_cause().unwrap_or((opentact_call::events::Q850::NORMAL_CLEARING, None));
        CallEnd { answered, q850_cause: cause.code, reason }
    }
}

/// Signs a flow's request with the account's webhook key (`Opentact-Timestamp`,
/// `Opentact-Signature`).
struct AccountRequestSigner(Arc<opentact_events::signing::Signer>);

impl opentact_flows::RequestSigner for AccountRequestSigner {
    fn headers(&self, body: &[u8]) -> Vec<(&'static str, String)> {
        self.0.headers(body).into()
    }
}

/// What a panic said, when it said it with a string.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// A new call's info; `id` is a fresh UUIDv7, greater than every call id made before it on
/// this node.
pub fn new_call_info(
    account: Uuid,
    app: Option<&SipControlApp>,
    from: String,
    to: String,
    tn: Option<i64>,
    direction: opentact_call::model::Direction,
    time_zone: Option<String>,
) -> CallInfo {
    CallInfo {
        // UUIDv7, like every stored row's id: the call log lists calls of one millisecond in the
        // order they started (opentact_store::id).
        id: opentact_store::new_id().to_string(),
        account: account.to_string(),
        app: app.map(|app| app.uuid.to_string()).unwrap_or_default(),
        from,
        to,
        tn: tn.and_then(|tn| u64::try_from(tn).ok()),
        direction,
        time_zone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_are_v7_and_follow_the_order_calls_start_in() {
        let info = |n: u32| {
            new_call_info(
                Uuid::nil(),
                None,
                "a".into(),
                format!("b{n}"),
                None,
                opentact_call::model::Direction::Inbound,
                None,
            )
        };
        let ids: Vec<Uuid> = (0..1_000).map(|n| Uuid::parse_str(&info(n).id).expect("a uuid")).collect();
        assert!(ids.iter().all(|id| id.get_version_num() == 7), "{:?}", ids[0]);
        // Many in one millisecond: still strictly increasing, as text too (how lists sort them).
        assert!(ids.windows(2).all(|w| w[0] < w[1] && w[0].to_string() < w[1].to_string()));
    }
}
