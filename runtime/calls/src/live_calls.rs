//! The live calls of this node: every call registers here while its flow runs, so it can be
//! bridged with (`POST /rest/call/bridge`, `<Bridge>`); a call whose app is in async mode
//! also takes commands (`POST /rest/call/{uuid}/command`): the REST API queues them and the
//! built-in XML guest runs them in order. A trunk call (`crate::trunk`, no flow: the platform
//! connects a PBX and the far end itself) registers too and takes one command, `hangup`.
//!
//! The registry is per node. With several nodes sharing PostgreSQL, a command for a call this
//! node does not carry will have to be forwarded to the node that does (the multi-node issue);
//! the [`opentact_control::CallControl`] trait is the seam for that.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentact_call::CallBackend;
use opentact_call::CallSession;
use opentact_call::events::EventKind;
use opentact_call::model::{CallState, Direction, HangupReason};
use opentact_control::{CallCommand, CallControl, CommandOutcome};
use opentact_voice::{BridgePeer, SipCall};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use uuid::Uuid;

/// How long a `command_id` is remembered per call.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(60);
/// Commands that may wait for their turn on one call.
pub const MAX_QUEUED_COMMANDS: usize = 64;

struct LiveCall {
    account: Uuid,
    /// Where an async call's commands go; `None` for calls whose flow decides alone.
    commands: Option<mpsc::Sender<String>>,
    /// A trunk call: no flow runs commands, but `hangup` ends it.
    trunk: bool,
    session: Arc<CallSession>,
    call: Arc<SipCall>,
    seen: Mutex<HashMap<String, Instant>>,
    /// An async call's command receiver until its flow takes it ([`LiveCalls::take_commands`]):
    /// commands sent meanwhile wait in the channel.
    unclaimed: Mutex<Option<mpsc::Receiver<String>>>,
}

/// The registry.
#[derive(Default)]
pub struct LiveCalls {
    calls: Mutex<HashMap<Uuid, Arc<LiveCall>>>,
    /// Calls up and started (`/metrics`): moved here, where every call of this node passes.
    metrics: opentact_metrics::CallMetrics,
}

impl std::fmt::Debug for LiveCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCalls").field("calls", &self.calls.lock().len()).finish()
    }
}

fn state_name(state: CallState) -> &'static str {
    match state {
        CallState::Ringing => "ringing",
        CallState::Answered => "answered",
        CallState::Bridged => "bridged",
        CallState::Held => "held",
        CallState::Ended => "ended",
    }
}

impl LiveCalls {
    /// An empty registry that counts its calls into the node's metrics.
    pub fn with_metrics(metrics: opentact_metrics::CallMetrics) -> Self {
        Self { calls: Mutex::default(), metrics }
    }

    /// Register `account`'s live call (it can be bridged with); an async call's flow takes
    /// its command receiver with [`LiveCalls::take_commands`], and commands sent before that
    /// wait for it.
    pub fn register(
        &self,
        id: Uuid,
        account: Uuid,
        session: Arc<CallSession>,
        call: Arc<SipCall>,
        asynchronous: bool,
    ) {
        let (commands, receiver) = if asynchronous {
            let (sender, receiver) = mpsc::channel(MAX_QUEUED_COMMANDS);
            (Some(sender), Some(receiver))
        } else {
            (None, None)
        };
        self.insert(
            id,
            LiveCall {
                account,
                commands,
                trunk: false,
                session,
                call,
                seen: Mutex::default(),
                unclaimed: Mutex::new(receiver),
            },
        );
    }

    /// The command receiver of the async call `id`, for its flow (once).
    pub fn take_commands(&self, id: Uuid) -> Option<mpsc::Receiver<String>> {
        let live = self.calls.lock().get(&id).cloned()?;
        live.unclaimed.lock().take()
    }

    /// Register `account`'s trunk call (to or from a SIP connection's PBX): it can be bridged
    /// with and hung up by command; [`LiveCalls::remove`] when it ends.
    pub fn register_trunk(&self, id: Uuid, account: Uuid, session: Arc<CallSession>, call: Arc<SipCall>) {
        self.insert(
            id,
            LiveCall {
                account,
                commands: None,
                trunk: true,
                session,
                call,
                seen: Mutex::default(),
                unclaimed: Mutex::new(None),
            },
        );
    }

    fn insert(&self, id: Uuid, live: LiveCall) {
        let direction = match live.session.info().direction {
            Direction::Inbound => opentact_metrics::CallDirection::Inbound,
            Direction::Outbound => opentact_metrics::CallDirection::Outbound,
        };
        if self.calls.lock().insert(id, Arc::new(live)).is_none() {
            self.metrics.started(direction);
        }
    }

    /// `account`'s live call `id` as a bridge peer.
    pub fn bridge_peer(&self, account: &str, id: &str) -> Option<BridgePeer> {
        let id = Uuid::parse_str(id).ok()?;
        let live = self.calls.lock().get(&id).cloned()?;
        if live.account.to_string() != account {
            return None;
        }
        let session = live.session.clone();
        Some(BridgePeer {
            call: live.call.clone(),
            report: Box::new(move |with: &str| {
                session.events().emit(EventKind::Bridged { with: with.to_owned() });
            }),
        })
    }

    /// The call's flow has ended.
    pub fn remove(&self, call: Uuid) {
        if self.calls.lock().remove(&call).is_some() {
            self.metrics.ended();
        }
    }

    /// How many calls are live on this node.
    pub fn len(&self) -> usize {
        self.calls.lock().len()
    }

    /// Whether no call is live on this node.
    pub fn is_empty(&self) -> bool {
        self.calls.lock().is_empty()
    }

    /// Hang up every live call (BYE, or CANCEL while a placed call rings): the platform stops.
    /// Each call's flow then ends and its events, CDR and webhooks follow as on any hangup.
    pub async fn hang_up_all(&self) {
        let calls: Vec<Arc<SipCall>> = self.calls.lock().values().map(|live| live.call.clone()).collect();
        let mut hangups = tokio::task::JoinSet::new();
        for call in calls {
            hangups.spawn(async move {
                let _ = CallBackend::hangup(call.as_ref(), HangupReason::Normal).await;
            });
        }
        while hangups.join_next().await.is_some() {}
    }

    fn queue(&self, account: Uuid, call: Uuid, command: CallCommand) -> CommandOutcome {
        let Some(live) = self.calls.lock().get(&call).cloned() else { return CommandOutcome::NotFound };
        if live.account != account {
            return CommandOutcome::NotFound;
        }
        let state = live.session.state();
        // A call the platform places that still rings: hanging up cancels it at once (the
        // flow has not started to run commands yet). A trunk call has no flow: hanging up ends
        // it (the bridge to the far end follows), at any state.
        let ringing_outbound =
            state == CallState::Ringing && live.session.info().direction == Direction::Outbound;
        if command.name == "hangup" && state != CallState::Ended && (ringing_outbound || live.trunk) {
            let call = live.call.clone();
            tokio::spawn(async move {
                let _ = CallBackend::hangup(call.as_ref(), HangupReason::Normal).await;
            });
            return CommandOutcome::Accepted;
        }
        let Some(commands) = &live.commands else {
            if live.trunk {
                return CommandOutcome::WrongState {
                    state: state_name(state).to_owned(),
                    reason: "a trunk call takes only hangup (the platform connects it, no flow)".to_owned(),
                };
            }
            return CommandOutcome::WrongState {
                state: state_name(state).to_owned(),
                reason: "its flow takes no commands (its app is not in async mode)".to_owned(),
            };
        };
        let mut seen = live.seen.lock();
        seen.retain(|_, at| at.elapsed() < DEDUP_WINDOW);
        if let Some(id) = &command.command_id
            && seen.contains_key(id)
        {
            return CommandOutcome::Duplicate;
        }
        let wrong = |reason: &str| CommandOutcome::WrongState {
            state: state_name(state).to_owned(),
            reason: reason.to_owned(),
        };
        let outbound = live.session.info().direction == Direction::Outbound;
        match (command.name.as_str(), state) {
            (_, CallState::Ended) => return wrong("it takes no more commands"),
            ("answer", _) if outbound => return wrong("the platform placed it: the callee answers"),
            ("answer", s) if s != CallState::Ringing => return wrong("it was answered already"),
            ("hold", s) if !matches!(s, CallState::Answered | CallState::Bridged) => {
                return wrong("only an answered call can be put on hold");
            }
            ("unhold", s) if s != CallState::Held => return wrong("it is not on hold"),
            _ => {}
        }
        match commands.try_send(command.xml) {
            Ok(()) => {
                if let Some(id) = command.command_id {
                    seen.insert(id, Instant::now());
                }
                tracing::debug!(%call, command = %command.name, "call command queued");
                CommandOutcome::Accepted
            }
            Err(mpsc::error::TrySendError::Full(_)) => wrong(&format!(
                "{MAX_QUEUED_COMMANDS} commands are already waiting; send more once they have run"
            )),
            Err(mpsc::error::TrySendError::Closed(_)) => CommandOutcome::NotFound,
        }
    }
}

impl CallControl for LiveCalls {
    fn command(
        &self,
        account: Uuid,
        call: Uuid,
        command: CallCommand,
    ) -> Pin<Box<dyn Future<Output = CommandOutcome> + Send + '_>> {
        let outcome = self.queue(account, call, command);
        Box::pin(async move { outcome })
    }

    fn is_live(&self, account: Uuid, call: Uuid) -> bool {
        self.calls.lock().get(&call).is_some_and(|live| live.account == account)
    }
}
