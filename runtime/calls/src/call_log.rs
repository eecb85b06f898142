//! The call log: each call's events become its CDR in the store (started, answered, ended
//! with its cause) and its recordings' metadata, which the REST API reads; recordings made
//! with `asr="true"` go on to the transcriber.
//!
//! Calls never wait for the database: their sinks hand the events a CDR needs (a few per call;
//! not the flow's steps) to one writer task through a queue of [`QUEUE_CAPACITY`], and the
//! writer applies them in order, so a call's row exists before it is updated. A call cannot
//! wait, so when the queue is full (the database far behind) the event is dropped, counted
//! ([`CallLog::dropped`]) and logged as an error — never silently.

use std::collections::HashMap;
use std::sync::Arc;

use opentact_call::events::{CallEvent, EventKind, EventSink, Phase, Q850};
use opentact_call::model::Direction;
use opentact_store::{CallDirection, CallEnd, CallShaken, NewCallRecord};
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

/// What the writer task is handed: an event, an inbound call's STIR/SHAKEN result, or a
/// request to say when all before it are written.
enum Message {
    Event(Entry),
    Shaken { account: Uuid, call: Uuid, shaken: CallShaken },
    Flushed(tokio::sync::oneshot::Sender<()>),
}

/// Events waiting for the writer, all calls together: at five or so per call, the CDRs of
/// tens of thousands of calls, which is minutes of a database outage at a busy node's call rate.
pub const QUEUE_CAPACITY: usize = 100_000;

/// Hands call events to the writer task.
#[derive(Debug)]
pub struct CallLog {
    queue: mpsc::Sender<Message>,
    dropped: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").field("call", &self.event.call).field("seq", &self.event.seq).finish()
    }
}

impl CallLog {
    /// Starts the writer on the current runtime.
    /// `node` names this node in each CDR it starts, so that after a crash it closes its own
    /// open CDRs and no other node's. With `bus`, each recording stored is announced as
    /// `record.available`.
    pub fn start(
        store: Repo,
        transcriber: Option<Arc<Transcriber>>,
        node: Option<String>,
        bus: Option<Arc<opentact_events::EventBus>>,
    ) -> Arc<Self> {
        let (log, events) = Self::with_queue(QUEUE_CAPACITY);
        tokio::spawn(write(store, transcriber, node, bus, events));
        Arc::new(log)
    }

    fn with_queue(capacity: usize) -> (Self, mpsc::Receiver<Message>) {
        let (queue, events) = mpsc::channel(capacity);
        (CallLog { queue, dropped: Default::default() }, events)
    }

    /// Events dropped because the writer's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn hand_over(&self, entry: Entry) {
        // Closed (the writer is gone at shutdown) is not an error: the log stops.
        if let Err(mpsc::error::TrySendError::Full(Message::Event(entry))) =
            self.queue.try_send(Message::Event(entry))
        {
            let dropped = self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            tracing::error!(
                call = %entry.event.call,
                seq = entry.event.seq,
                dropped,
                "call log queue full ({QUEUE_CAPACITY}): a CDR event is lost"
            );
        }
    }

    /// Keeps an inbound call's STIR/SHAKEN verification on its CDR. Handed over after the
    /// call's session started (its `call.initiated` is queued already), so the row exists when
    /// the writer gets to it; dropped like an event when the queue is full.
    pub fn record_shaken(&self, account: Uuid, call: Uuid, shaken: CallShaken) {
        if let Err(mpsc::error::TrySendError::Full(_)) =
            self.queue.try_send(Message::Shaken { account, call, shaken })
        {
            let dropped = self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            tracing::error!(%call, dropped, "call log queue full ({QUEUE_CAPACITY}): a STIR/SHAKEN result is lost");
        }
    }

    /// Returns once every event handed over before this call is in the store (the platform
    /// stops: CDRs must not stay open for events still queued).
    pub async fn flush(&self) {
        let (done, written) = tokio::sync::oneshot::channel();
        if self.queue.send(Message::Flushed(done)).await.is_ok() {
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
        if for_the_log(&event.kind) {
            self.log.hand_over(Entry { account: self.account, app: self.app, event: event.clone() });
        }
        if let Some(next) = &self.next {
            next.emit(event);
        }
    }
}

/// The recording quota's view of the store: what an account keeps of recordings.
pub struct StoreRecordings(pub Repo);

impl std::fmt::Debug for StoreRecordings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreRecordings")
    }
}

#[async_trait::async_trait]
impl opentact_voice::StoredRecordings for StoreRecordings {
    async fn usage(&self, account: &str) -> Result<opentact_voice::StoredUsage, String> {
        let account = Uuid::parse_str(account).map_err(|_| format!("account {account:?} is not a UUID"))?;
        let usage = self.0.recording_usage(account).await.map_err(|error| error.to_string())?;
        Ok(opentact_voice::StoredUsage { count: usage.count, bytes: usage.bytes })
    }
}

/// Whether the writer uses events of this kind (a flow's own steps do not reach the queue).
fn for_the_log(kind: &EventKind) -> bool {
    match kind {
        EventKind::Initiated { .. }
        | EventKind::Answered
        | EventKind::Hangup { .. }
        | EventKind::Destroyed { .. } => true,
        EventKind::Callflow { verb, phase: Phase::Finished, .. } => verb.starts_with("record"),
        _ => false,
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

/// `record.available`: a recording is stored and its audio can be fetched.
fn record_available(recording: &opentact_store::RecordingRecord) -> opentact_events::Event {
    let payload = serde_json::json!({
        "recording": recording,
        "audio_url": format!("/rest/record/{}/audio", recording.uuid),
    });
    opentact_events::Event::now(recording.account, "record.available", Some(recording.call), payload)
}

async fn write(
    store: Repo,
    transcriber: Option<Arc<Transcriber>>,
    node: Option<String>,
    bus: Option<Arc<opentact_events::EventBus>>,
    mut events: mpsc::Receiver<Message>,
) {
    let mut calls: HashMap<Uuid, Progress> = HashMap::new();
    while let Some(message) = events.recv().await {
        let Entry { account, app, event } = match message {
            Message::Event(entry) => entry,
            Message::Shaken { account, call, shaken } => {
                if let Err(error) = store.record_call_shaken(account, call, shaken).await {
                    warn!(%call, %error, "call log: could not record the STIR/SHAKEN result");
                }
                continue;
            }
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
                        // The recorder writes a fixed format: its size follows from its length.
                        let size =
                            i64::try_from(opentact_voice::recording_file_bytes(duration.unsigned_abs()))
                                .unwrap_or(i64::MAX);
                        let logged =
                            store.add_recording(account, call, recording, name, duration, size).await;
                        if let (Some(bus), Ok(stored)) = (&bus, &logged) {
                            bus.publish(record_available(stored));
                        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind) -> CallEvent {
        CallEvent {
            seq: 1,
            kind,
            call: Uuid::new_v4().to_string(),
            occurred_at: chrono::Utc::now(),
            elapsed_ms: 0,
            tag: None,
            meta: Default::default(),
        }
    }

    #[tokio::test]
    async fn the_queue_is_bounded_and_counts_what_it_drops() {
        let (log, mut events) = CallLog::with_queue(10);
        let log = Arc::new(log);
        let sink = log.sink(Uuid::new_v4(), None, None);
        // A flow's steps never reach the writer's queue.
        for _ in 0..1000 {
            sink.emit(&event(EventKind::Callflow {
                verb: "flood".into(),
                phase: Phase::Finished,
                detail: Default::default(),
            }));
        }
        assert_eq!(log.dropped(), 0);
        for _ in 0..15 {
            sink.emit(&event(EventKind::Answered));
        }
        assert_eq!(log.dropped(), 5, "what does not fit is counted");
        let mut kept = 0;
        while events.try_recv().is_ok() {
            kept += 1;
        }
        assert_eq!(kept, 10);
    }
}
