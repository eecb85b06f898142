//! The call log: each call's events become its CDR in the store (started, answered, ended
//! with its cause) and its recordings' metadata, which the REST API reads; recordings made
//! with `asr="true"` go on to the transcriber.
//!
//! Calls never wait for the database: their sinks hand events to one writer task through an
//! unbounded queue (a few entries per call), and the writer applies them in order, so a call's
//! row exists before it is updated.

use std::collections::HashMap;
use std::sync::Arc;

use opentact_call::events::{CallEvent, EventKind, EventSink, Phase, Q850};
use opentact_call::model::Direction;
use opentact_store::{CallDirection, CallEnd, NewCallRecord};
use tokio::sync::mpsc;
use tracing::warn;
use uuid::Uuid;

use crate::Repo;
use crate::transcribe::Transcriber;

struct Entry {
    account: Uuid,
    app: Option<Uuid>,
    event: CallEvent,
}

/// What the writer task is handed: an event, or a request to say when all before it are written.
enum Message {
    Event(Entry),
    Flushed(tokio::sync::oneshot::Sender<()>),
}

/// Hands call events to the writer task.
#[derive(Debug, Clone)]
pub struct CallLog {
    queue: mpsc::UnboundedSender<Message>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").field("call", &self.event.call).field("seq", &self.event.seq).finish()
    }
}

impl CallLog {
    /// Starts the writer on the current runtime.
    /// `node` names this node in each CDR it starts, so that after a crash it closes its own
    /// open CDRs and no other node's.
    pub fn start(store: Repo, transcriber: Option<Arc<Transcriber>>, node: Option<String>) -> Arc<Self> {
        let (queue, events) = mpsc::unbounded_channel();
        tokio::spawn(write(store, transcriber, node, events));
        Arc::new(CallLog { queue })
    }

    /// Returns once every event handed over before this call is in the store (the platform
    /// stops: CDRs must not stay open for events still queued).
    pub async fn flush(&self) {
        let (done, written) = tokio::sync::oneshot::channel();
        if self.queue.send(Message::Flushed(done)).is_ok() {
            let _ = written.await;
        }
    }

    /// The sink of one call of `account` run by `app`; events go on to `next`.
    pub fn sink(
        self: &Arc<Self>,
        account: Uuid,
        app: Option<Uuid>,
        next: Option<Arc<dyn EventSink>>,
    ) -> Arc<dyn EventSink> {
        Arc::new(CallLogSink { log: self.clone(), account, app, next })
    }
}

struct CallLogSink {
    log: Arc<CallLog>,
    account: Uuid,
    app: Option<Uuid>,
    next: Option<Arc<dyn EventSink>>,
}

impl EventSink for CallLogSink {
    fn emit(&self, event: &CallEvent) {
        // Sending fails only once the writer is gone (shutdown): the log then stops.
        let _ = self.log.queue.send(Message::Event(Entry {
            account: self.account,
            app: self.app,
            event: event.clone(),
        }));
        if let Some(next) = &self.next {
            next.emit(event);
        }
    }
}

/// What the writer remembers of a call until it ends.
#[derive(Default)]
struct Progress {
    answered: bool,
    q850: Option<u16>,
    cause: Option<&'static str>,
    by: Option<String>,
    reason: Option<String>,
}

async fn write(
    store: Repo,
    transcriber: Option<Arc<Transcriber>>,
    node: Option<String>,
    mut events: mpsc::UnboundedReceiver<Message>,
) {
    let mut calls: HashMap<Uuid, Progress> = HashMap::new();
    while let Some(message) = events.recv().await {
        let Entry { account, app, event } = match message {
            Message::Event(entry) => entry,
            Message::Flushed(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let Ok(call) = Uuid::parse_str(&event.call) else { continue };
        let outcome = match &event.kind {
            EventKind::Initiated { from, to, direction } => {
                calls.insert(call, Progress::default());
                let new = NewCallRecord {
                    uuid: call,
                    app,
                    direction: match direction {
                        Direction::Inbound => CallDirection::Inbound,
                        Direction::Outbound => CallDirection::Outbound,
                    },
                    from: from.clone(),
                    to: to.clone(),
                    started_on: event.occurred_at,
                    node: node.clone(),
                };
                store.record_call_start(account, new).await.map(|_| ())
            }
            EventKind::Answered => {
                calls.entry(call).or_default().answered = true;
                store.record_call_answer(account, call, event.occurred_at).await
            }
            EventKind::Callflow { verb, phase: Phase::Finished, detail } if verb.starts_with("record") => {
                match detail.get("recording").and_then(|v| v.as_str()).map(Uuid::parse_str) {
                    Some(Ok(recording)) => {
                        let name = detail.get("name").and_then(|v| v.as_str()).unwrap_or("background");
                        let duration = detail.get("duration_ms").and_then(|v| v.as_i64()).unwrap_or(0);
                        let logged = store.add_recording(account, call, recording, name, duration).await;
                        let wanted = detail.get("transcribe").and_then(|v| v.as_bool()).unwrap_or(false);
                        match (&transcriber, wanted, &logged) {
                            (Some(transcriber), true, Ok(_)) => transcriber.start(account, call, recording),
                            (None, true, _) => {
                                warn!(%call, "asr=\"true\" but no [speech] stt_url is configured")
                            }
                            _ => {}
                        }
                        logged.map(|_| ())
                    }
                    _ => Ok(()),
                }
            }
            EventKind::Hangup { q850_cause, q850_cause_string, by, reason } => {
                let progress = calls.entry(call).or_default();
                progress.q850 = Some(*q850_cause);
                progress.cause = Some(q850_cause_string);
                progress.by = serde_json::to_value(by).ok().and_then(|v| v.as_str().map(str::to_owned));
                progress.reason = reason.clone();
                Ok(())
            }
            EventKind::Destroyed { duration_ms } => {
                let progress = calls.remove(&call).unwrap_or_default();
                let end = CallEnd {
                    ended_on: event.occurred_at,
                    duration_ms: i64::try_from(*duration_ms).unwrap_or(i64::MAX),
                    answered: progress.answered,
                    // 41: the flow failed (a trap, a limit, a fetch without `<Error>`).
                    failed: progress.q850 == Some(Q850::TEMPORARY_FAILURE.code),
                    q850_cause: progress.q850.map(i32::from),
                    hangup_cause: progress.cause.map(str::to_owned),
                    hangup_by: progress.by,
                    hangup_reason: progress.reason,
                };
                store.record_call_end(account, call, end).await
            }
            _ => Ok(()),
        };
        if let Err(error) = outcome {
            warn!(%call, seq = event.seq, %error, "call log: could not record the event");
        }
    }
}
