//! The verb executor: one [`CallSession`] per call, driven by the call's flow (the Wasm host's
//! imports call straight into it, and so will REST commands). It checks every argument against
//! the documented limits, applies auto-answer, implements the gather timers once for every kind
//! of call, and emits the `call.callflow` events — so a verb behaves and reports the same way
//! whether XML, a webhook, a REST command or a customer component asked for it.
//!
//! ```text
//!   ringing ──answer──► answered ──dial/bridge──► bridged ──► answered
//!      │                   │  ▲ hold/unhold
//!      │                   ▼  │
//!      └──hangup──► ended ◄── held        (a caller hangup ends it from any state)
//! ```

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Map, Value, json};

use crate::backend::CallBackend;
use crate::error::CallError;
use crate::events::{EventEmitter, EventKind, EventSink, Party, Phase, Q850, detail};
use crate::model::{
    AudioSource, CallInfo, CallState, DialRequest, DialResult, GatherEnd, GatherRequest, GatherResult,
    HangupReason, Media, RecordRequest, Recording, SmsRequest, ms,
};

/// Longest text for one `say`, bytes.
pub const MAX_SAY_TEXT_BYTES: usize = 4096;
/// Most digits one gather collects.
pub const MAX_GATHER_DIGITS: u32 = 128;
/// Most prompt + wait repetitions of one gather.
pub const MAX_GATHER_ATTEMPTS: u32 = 10;
/// Most prompts in one gather.
pub const MAX_GATHER_PROMPTS: usize = 32;
/// Longest any single wait a flow can ask for (gather timeouts, pause, hold, tone, dial ring):
/// one day. The call's maximum length still bounds the call as a whole.
pub const MAX_WAIT_MS: u32 = 24 * 60 * 60 * 1000;
/// Most repetitions of a media verb (0 means "until interrupted").
pub const MAX_LOOP_COUNT: u32 = 1000;
/// Most targets rung by one dial.
pub const MAX_DIAL_TARGETS: usize = 10;
/// Longest tag, bytes.
pub const MAX_TAG_BYTES: usize = 256;
/// Most meta entries on a call.
pub const MAX_META_ENTRIES: usize = 64;
/// Longest meta name or value, bytes.
pub const MAX_META_BYTES: usize = 1024;
/// Most bytes of all a call's meta names and values together. Every later event of the call
/// carries the whole meta map, so this bounds each event as well as the call.
pub const MAX_META_TOTAL_BYTES: usize = 16 * 1024;
/// Most events a flow may emit on its own account in one call: `report` steps and `set-meta`
/// changes together (verbs that act on the call are paced by the call and not counted). Past
/// it, reports are dropped (counted) and `set-meta` answers `limit-exceeded`.
pub const MAX_FLOW_EVENTS: u32 = 1000;
/// Most bytes of those events' names and details together in one call (see
/// [`MAX_FLOW_EVENTS`]).
pub const MAX_FLOW_EVENT_BYTES: usize = 256 * 1024;
/// Longest SMS text, characters.
pub const MAX_SMS_CHARS: usize = 918;
/// Longest URL, recording name, call id or target, bytes.
pub const MAX_NAME_BYTES: usize = 2048;

/// How a flow ended, as the host tells the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowOutcome {
    /// The flow returned normally.
    Completed,
    /// The flow failed (trap, limit, returned an error); the string says why.
    Failed(String),
    /// The call reached its maximum length.
    TimedOut,
    /// The platform could not start the flow: it is at capacity (pool full, memory refused).
    /// An unanswered call is refused with 503.
    AtCapacity(String),
}

/// Session settings from the app.
#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    /// Answer implicitly before the first media verb.
    pub auto_answer: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self { auto_answer: true }
    }
}

#[derive(Debug, Clone)]
struct Ended {
    by: Party,
    cause: Q850,
    reason: Option<String>,
}

/// One call's verb executor. See the module docs.
pub struct CallSession {
    backend: Arc<dyn CallBackend>,
    events: EventEmitter,
    config: SessionConfig,
    ended: Mutex<Option<Ended>>,
    budget: Mutex<FlowEventBudget>,
    /// Run once, just before `call.destroyed` is emitted ([`CallSession::before_destroyed`]).
    before_destroyed: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

/// What the flow has spent of its per-call event budget ([`MAX_FLOW_EVENTS`],
/// [`MAX_FLOW_EVENT_BYTES`]).
#[derive(Debug, Default)]
struct FlowEventBudget {
    events: u32,
    bytes: usize,
    refused: u32,
}

impl FlowEventBudget {
    /// Charge one event of `bytes`; `Err` (and one more refusal counted) when it does not fit.
    fn charge(&mut self, bytes: usize) -> Result<(), CallError> {
        if self.events >= MAX_FLOW_EVENTS || self.bytes.saturating_add(bytes) > MAX_FLOW_EVENT_BYTES {
            self.refused = self.refused.saturating_add(1);
            if self.refused == 1 {
                tracing::warn!(
                    events = self.events,
                    bytes = self.bytes,
                    "flow event budget spent: later reports are dropped"
                );
            }
            return Err(CallError::LimitExceeded(format!(
                "event budget exceeded: at most {MAX_FLOW_EVENTS} reported events and {MAX_FLOW_EVENT_BYTES} bytes \
                 per call ({} refused so far)",
                self.refused
            )));
        }
        self.events += 1;
        self.bytes += bytes;
        Ok(())
    }
}

impl std::fmt::Debug for CallSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallSession").field("events", &self.events).finish_non_exhaustive()
    }
}

/// The checks every sender makes before an SMS leaves a flow: the text is 1 to
/// [`MAX_SMS_CHARS`] characters, the recipient at most 64 bytes.
pub fn check_sms(request: &SmsRequest) -> Result<(), CallError> {
    let chars = request.text.chars().count();
    if chars == 0 || chars > MAX_SMS_CHARS {
        return Err(CallError::invalid("sms.text", format!("1–{MAX_SMS_CHARS} characters, got {chars}")));
    }
    check_len("sms.to", &request.to, 64)
}

fn check_len(argument: &str, value: &str, max: usize) -> Result<(), CallError> {
    if value.len() > max {
        return Err(CallError::invalid(argument, format!("at most {max} bytes, got {}", value.len())));
    }
    Ok(())
}

fn check_range(argument: &str, value: u32, min: u32, max: u32) -> Result<(), CallError> {
    if !(min..=max).contains(&value) {
        return Err(CallError::invalid(argument, format!("must be {min}–{max}, got {value}")));
    }
    Ok(())
}

fn check_key(argument: &str, key: Option<char>) -> Result<(), CallError> {
    match key {
        Some(k) if !is_dtmf(k) => {
            Err(CallError::invalid(argument, format!("must be a DTMF key (0-9, *, #, A-D), got {k:?}")))
        }
        _ => Ok(()),
    }
}

/// Whether `c` is a DTMF key.
pub fn is_dtmf(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D')
}

fn check_media(media: &Media) -> Result<(), CallError> {
    match media {
        Media::Say(say) => {
            if say.text.trim().is_empty() {
                return Err(CallError::invalid("say.text", "must not be empty"));
            }
            check_len("say.text", &say.text, MAX_SAY_TEXT_BYTES)?;
            check_len("say.lang", &say.lang, 35)?;
            check_range("say.loop", say.loop_count, 0, MAX_LOOP_COUNT)
        }
        Media::Play(play) => {
            match &play.source {
                AudioSource::Url(url) => {
                    check_len("play.url", url, MAX_NAME_BYTES)?;
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(CallError::invalid(
                            "play.url",
                            format!("must be an http(s) URL, got {url:?}"),
                        ));
                    }
                }
                AudioSource::Recording(name) => check_len("play.recording", name, MAX_NAME_BYTES)?,
            }
            check_range("play.loop", play.loop_count, 0, MAX_LOOP_COUNT)
        }
        Media::Tone(tone) => {
            if tone.frequencies.is_empty() || tone.frequencies.len() > 4 {
                return Err(CallError::invalid(
                    "tone.frequencies",
                    format!("1–4 frequencies, got {}", tone.frequencies.len()),
                ));
            }
            for hz in &tone.frequencies {
                check_range("tone.frequency", *hz, 20, 3999)?;
            }
            if !(-60..=0).contains(&tone.volume_db) {
                return Err(CallError::invalid(
                    "tone.volume",
                    format!("must be -60–0 dB, got {}", tone.volume_db),
                ));
            }
            check_range("tone.on", tone.on_ms, 0, MAX_WAIT_MS)?;
            check_range("tone.off", tone.off_ms, 0, MAX_WAIT_MS)?;
            check_range("tone.loop", tone.loop_count, 1, MAX_LOOP_COUNT)?;
            check_range("tone.timeout", tone.timeout_ms, 1, MAX_WAIT_MS)
        }
        Media::Silence(length) => check_range("pause.length", *length, 0, MAX_WAIT_MS),
    }
}

fn media_detail(media: &Media) -> Map<String, Value> {
    match media {
        Media::Say(say) => detail([("text", json!(say.text)), ("lang", json!(say.lang))]),
        Media::Play(play) => match &play.source {
            AudioSource::Url(url) => detail([("url", json!(url))]),
            AudioSource::Recording(name) => detail([("record", json!(name))]),
        },
        Media::Tone(tone) => detail([("hz", json!(tone.frequencies))]),
        Media::Silence(length) => detail([("length_ms", json!(length))]),
    }
}

fn error_detail(error: &CallError) -> Map<String, Value> {
    detail([("error", json!(error.kind())), ("message", json!(error.to_string()))])
}

impl CallSession {
    /// A session for `backend`, sending events to `sink`. Emits `call.initiated`.
    pub fn new(backend: Arc<dyn CallBackend>, sink: Arc<dyn EventSink>, config: SessionConfig) -> Self {
        let session = Self::unannounced(backend, sink, config);
        session.announce();
        session
    }

    /// [`CallSession::new`] without `call.initiated` yet: whoever must be ready for the call
    /// before anyone hears of it (the live-call registry, which takes REST commands for it)
    /// gets ready, then calls [`CallSession::announce`].
    pub fn unannounced(
        backend: Arc<dyn CallBackend>,
        sink: Arc<dyn EventSink>,
        config: SessionConfig,
    ) -> Self {
        let info = backend.info();
        let events = EventEmitter::new(info.id, backend.clock(), sink);
        Self {
            backend,
            events,
            config,
            ended: Mutex::new(None),
            budget: Mutex::new(FlowEventBudget::default()),
            before_destroyed: Mutex::new(None),
        }
    }

    /// Emits `call.initiated` (once, first: [`CallSession::unannounced`]).
    pub fn announce(&self) {
        let info = self.backend.info();
        self.events.emit(EventKind::Initiated { from: info.from, to: info.to, direction: info.direction });
    }

    /// The call.
    pub fn info(&self) -> CallInfo {
        self.backend.info()
    }

    /// The call's state now.
    pub fn state(&self) -> CallState {
        self.backend.state()
    }

    /// The event emitter (for steps the host reports on the flow's behalf).
    pub fn events(&self) -> &EventEmitter {
        &self.events
    }

    /// Set (or clear) the tag of later events.
    pub fn set_tag(&self, tag: Option<String>) -> Result<(), CallError> {
        if let Some(tag) = &tag {
            check_len("tag", tag, MAX_TAG_BYTES)?;
        }
        self.events.set_tag(tag);
        Ok(())
    }

    /// Report a flow step that is not a call-control verb.
    pub fn report(&self, verb: &str, phase: Phase, pairs: Vec<(String, String)>) -> Result<(), CallError> {
        check_len("verb", verb, 64)?;
        if pairs.len() > 32 {
            return Err(CallError::invalid("detail", format!("at most 32 entries, got {}", pairs.len())));
        }
        let mut map = Map::new();
        for (k, v) in pairs {
            check_len("detail key", &k, 64)?;
            check_len("detail value", &v, MAX_NAME_BYTES)?;
            map.insert(k, Value::String(v));
        }
        let bytes =
            verb.len() + map.iter().map(|(k, v)| k.len() + v.as_str().map_or(0, str::len)).sum::<usize>();
        self.budget.lock().charge(bytes)?;
        self.events.callflow(verb, phase, map);
        Ok(())
    }

    /// Flow events ([`Self::report`], [`Self::set_meta`]) refused so far because the call's
    /// event budget ([`MAX_FLOW_EVENTS`], [`MAX_FLOW_EVENT_BYTES`]) was spent.
    pub fn flow_events_refused(&self) -> u32 {
        self.budget.lock().refused
    }

    /// Run one verb: `started` event, the body, then `finished` with its details or `failed`.
    async fn verb<T>(
        &self,
        verb: &str,
        started: Map<String, Value>,
        body: impl Future<Output = Result<(T, Map<String, Value>), CallError>>,
    ) -> Result<T, CallError> {
        self.events.callflow(verb, Phase::Started, started);
        match body.await {
            Ok((value, finished)) => {
                self.events.callflow(verb, Phase::Finished, finished);
                Ok(value)
            }
            Err(error) => {
                self.events.callflow(verb, Phase::Failed, error_detail(&error));
                if error == CallError::Hangup {
                    self.mark_ended(Party::Caller, Q850::NORMAL_CLEARING, None);
                }
                Err(error)
            }
        }
    }

    fn ensure_live(&self) -> Result<(), CallError> {
        if self.ended.lock().is_some() || self.backend.state() == CallState::Ended {
            return Err(CallError::Hangup);
        }
        Ok(())
    }

    async fn auto_answer(&self) -> Result<(), CallError> {
        if self.config.auto_answer && self.backend.state() == CallState::Ringing {
            self.verb("answer", Map::new(), async { self.backend.answer().await.map(|()| ((), Map::new())) })
                .await?;
            self.events.answered();
        }
        Ok(())
    }

    /// Answer the call after `delay_ms`.
    pub async fn answer(&self, delay_ms: u32) -> Result<(), CallError> {
        check_range("answer.delay", delay_ms, 0, MAX_WAIT_MS)?;
        self.ensure_live()?;
        let was_ringing = self.backend.state() == CallState::Ringing;
        self.verb("answer", detail([("delay_ms", json!(delay_ms))]), async {
            if was_ringing {
                self.backend.clock().sleep(ms(delay_ms)).await;
                self.backend.answer().await?;
            }
            Ok(((), Map::new()))
        })
        .await?;
        if was_ringing {
            self.events.answered();
        }
        Ok(())
    }

    /// An outbound call: ring the callee (the backend's answer places the leg; `call.ringing`
    /// when it rings) and emit `call.answered`; when nobody answers the call ends with the
    /// callee's cause (busy 17, no answer 19, a failure 41 with its reason) for
    /// [`CallSession::finish`] to report.
    pub async fn connect(&self) -> Result<(), CallError> {
        self.ensure_live()?;
        let placed = self.backend.answer();
        tokio::pin!(placed);
        let mut ringing = self.backend.ringing();
        let outcome = loop {
            let rings = async {
                match ringing.as_mut() {
                    Some(ringing) => ringing.wait_for(|rung| *rung).await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                outcome = &mut placed => break outcome,
                rang = rings => {
                    if rang {
                        self.events.emit(EventKind::Ringing);
                    }
                    // Once: it rang, or it never will.
                    ringing = None;
                }
            }
        };
        match outcome {
            Ok(()) => {
                self.events.answered();
                Ok(())
            }
            Err(error) => {
                let (by, cause, reason) = match &error {
                    CallError::Busy => (Party::Caller, Q850::USER_BUSY, None),
                    CallError::NoAnswer => (Party::Caller, Q850::NO_ANSWER, None),
                    CallError::Hangup => (Party::Flow, Q850::NORMAL_CLEARING, Some("cancelled".to_owned())),
                    CallError::LimitExceeded(reason) => {
                        (Party::Platform, Q850::NO_CIRCUIT_AVAILABLE, Some(reason.clone()))
                    }
                    other => (Party::Caller, Q850::TEMPORARY_FAILURE, Some(other.to_string())),
                };
                self.mark_ended(by, cause, reason);
                Err(error)
            }
        }
    }

    /// End a call the platform would not place or keep (a limit): `finish` then reports
    /// `cause` and `reason`.
    pub fn refuse(&self, cause: Q850, reason: String) {
        self.mark_ended(Party::Platform, cause, Some(reason));
    }

    /// Keep a background recording still running as the call ends (the flow's
    /// `record_start` without a `record_stop`, or the profile's `record_calls`): it is stored
    /// and reported as a finished `record_stop`, which the call log keeps.
    async fn keep_background_recording(&self) {
        match self.backend.record_stop().await {
            Ok(Some(recording)) => self.events.callflow(
                "record_stop",
                Phase::Finished,
                detail([
                    ("recording", json!(recording.id)),
                    ("name", json!(recording.name)),
                    ("duration_ms", json!(recording.duration_ms)),
                ]),
            ),
            Ok(None) => {}
            Err(error) => self.events.callflow(
                "record_stop",
                Phase::Failed,
                detail([("error", json!(error.to_string()))]),
            ),
        }
    }

    /// End the call.
    pub async fn hangup(&self, reason: HangupReason) -> Result<(), CallError> {
        self.ensure_live()?;
        self.verb("hangup", detail([("reason", json!(reason))]), async {
            self.backend.hangup(reason).await.map(|()| ((), Map::new()))
        })
        .await?;
        let cause = match reason {
            HangupReason::Normal => Q850::NORMAL_CLEARING,
            HangupReason::Busy => Q850::USER_BUSY,
            HangupReason::Rejected => Q850::CALL_REJECTED,
            HangupReason::Unavailable => Q850::TEMPORARY_FAILURE,
        };
        self.mark_ended(Party::Flow, cause, None);
        Ok(())
    }

    /// Play a media verb (say, play, tone, pause) to the end.
    pub async fn media(&self, media: Media) -> Result<(), CallError> {
        check_media(&media)?;
        self.ensure_live()?;
        if let Media::Play(play) = &media
            && let AudioSource::Recording(name) = &play.source
            && !self.backend.has_recording(name)
        {
            return Err(CallError::invalid(
                "play.recording",
                format!("no recording named {name:?} in this call"),
            ));
        }
        if !matches!(media, Media::Silence(_)) {
            self.auto_answer().await?;
        }
        self.verb(media.verb(), media_detail(&media), async {
            self.backend.play(&media, false).await.map(|_| ((), Map::new()))
        })
        .await
    }

    /// Collect DTMF digits. The timers, in order: prompts play (the first digit interrupts
    /// them and is kept); then up to the first-digit timeout for a first digit; after each digit
    /// up to the inter-digit timeout for the next. The finish key ends the gather and is not
    /// part of the digits. With no input, prompts + wait repeat up to `attempts` times.
    pub async fn gather(&self, request: GatherRequest) -> Result<GatherResult, CallError> {
        check_range("gather.max_digits", request.max_digits, 1, MAX_GATHER_DIGITS)?;
        check_range("gather.attempts", request.attempts, 1, MAX_GATHER_ATTEMPTS)?;
        check_range("gather.first_digit_timeout", request.first_digit_timeout_ms, 0, MAX_WAIT_MS)?;
        check_range("gather.inter_digit_timeout", request.inter_digit_timeout_ms, 0, MAX_WAIT_MS)?;
        check_key("gather.finish_key", request.finish_key)?;
        if request.prompts.len() > MAX_GATHER_PROMPTS {
            return Err(CallError::invalid(
                "gather.prompts",
                format!("at most {MAX_GATHER_PROMPTS}, got {}", request.prompts.len()),
            ));
        }
        request.prompts.iter().try_for_each(check_media)?;
        self.ensure_live()?;
        self.auto_answer().await?;
        let prompts: Vec<Value> = request
            .prompts
            .iter()
            .map(|prompt| {
                let mut entry = media_detail(prompt);
                entry.insert("verb".to_owned(), json!(prompt.verb()));
                Value::Object(entry)
            })
            .collect();
        let started = detail([
            ("prompts", Value::Array(prompts)),
            ("max_digits", json!(request.max_digits)),
            ("finish_key", json!(request.finish_key.map(String::from))),
            ("timeout_ms", json!(request.first_digit_timeout_ms)),
            ("inter_digit_timeout_ms", json!(request.inter_digit_timeout_ms)),
            ("attempts", json!(request.attempts)),
        ]);
        self.verb("gather", started, async {
            let result = self.collect_digits(&request).await?;
            let finished = detail([
                ("digits", json!(result.digits)),
                ("end", json!(result.end)),
                ("attempts", json!(result.attempts)),
            ]);
            Ok((result, finished))
        })
        .await
    }

    async fn collect_digits(&self, request: &GatherRequest) -> Result<GatherResult, CallError> {
        let max_digits = usize::try_from(request.max_digits).unwrap_or(usize::MAX);
        for attempt in 1..=request.attempts {
            for prompt in &request.prompts {
                if self.backend.play(prompt, true).await?.interrupted {
                    break;
                }
            }
            let mut digits = String::new();
            let mut wait = ms(request.first_digit_timeout_ms);
            while let Some(key) = self.backend.next_digit(wait).await? {
                if Some(key) == request.finish_key {
                    return Ok(GatherResult { digits, end: GatherEnd::FinishKey, attempts: attempt });
                }
                digits.push(key);
                if digits.len() >= max_digits {
                    return Ok(GatherResult { digits, end: GatherEnd::MaxDigits, attempts: attempt });
                }
                wait = ms(request.inter_digit_timeout_ms);
            }
            if !digits.is_empty() {
                return Ok(GatherResult { digits, end: GatherEnd::Timeout, attempts: attempt });
            }
        }
        Ok(GatherResult { digits: String::new(), end: GatherEnd::Timeout, attempts: request.attempts })
    }

    /// Record the caller.
    pub async fn record(&self, request: RecordRequest) -> Result<Recording, CallError> {
        check_len("record.name", &request.name, MAX_NAME_BYTES)?;
        check_range("record.max_length", request.max_length_ms, 1, MAX_WAIT_MS)?;
        check_range("record.silence_timeout", request.silence_timeout_ms, 0, MAX_WAIT_MS)?;
        check_key("record.finish_key", request.finish_key)?;
        self.ensure_live()?;
        self.auto_answer().await?;
        let started =
            detail([("name", json!(request.name)), ("max_length_ms", json!(request.max_length_ms))]);
        self.verb("record", started, async {
            let recording = self.backend.record(&request).await?;
            let mut finished = detail([
                ("recording", json!(recording.id)),
                ("name", json!(recording.name)),
                ("duration_ms", json!(recording.duration_ms)),
            ]);
            // The platform transcribes it after the call's flow moved on (see the server).
            if request.transcribe {
                finished.insert("transcribe".to_owned(), json!(true));
            }
            Ok((recording, finished))
        })
        .await
    }

    /// Start a background recording.
    pub async fn record_start(&self, name: String) -> Result<(), CallError> {
        check_len("record.name", &name, MAX_NAME_BYTES)?;
        self.ensure_live()?;
        self.auto_answer().await?;
        self.verb("record_start", detail([("name", json!(name))]), async {
            self.backend.record_start(&name).await.map(|()| ((), Map::new()))
        })
        .await
    }

    /// Stop the background recording.
    pub async fn record_stop(&self) -> Result<Option<Recording>, CallError> {
        self.ensure_live()?;
        self.verb("record_stop", Map::new(), async {
            let recording = self.backend.record_stop().await?;
            let finished = match &recording {
                Some(r) => detail([("recording", json!(r.id)), ("duration_ms", json!(r.duration_ms))]),
                None => Map::new(),
            };
            Ok((recording, finished))
        })
        .await
    }

    /// Ring targets and bridge the first to answer; returns when the bridge ends.
    pub async fn dial(&self, request: DialRequest) -> Result<DialResult, CallError> {
        if request.targets.is_empty() || request.targets.len() > MAX_DIAL_TARGETS {
            return Err(CallError::invalid(
                "dial.targets",
                format!("1–{MAX_DIAL_TARGETS} targets, got {}", request.targets.len()),
            ));
        }
        for target in &request.targets {
            check_len("dial.target", target.as_str(), MAX_NAME_BYTES)?;
            if target.as_str().is_empty() {
                return Err(CallError::invalid("dial.target", "must not be empty"));
            }
        }
        check_range("dial.timeout", request.timeout_ms, 1, MAX_WAIT_MS)?;
        self.ensure_live()?;
        let targets: Vec<&str> = request.targets.iter().map(|t| t.as_str()).collect();
        self.verb(
            "dial",
            detail([("targets", json!(targets)), ("timeout_ms", json!(request.timeout_ms))]),
            async {
                let bridged = |target: &crate::model::DialTarget| {
                    self.events.emit(EventKind::Bridged { with: target.as_str().to_owned() });
                };
                let result = self.backend.dial(&request, &bridged).await?;
                let finished = detail([
                    ("status", json!("answered")),
                    ("answered", json!(result.answered.as_str())),
                    ("duration_ms", json!(result.duration_ms)),
                    ("callee_hung_up", json!(result.callee_hung_up)),
                ]);
                Ok((result, finished))
            },
        )
        .await
    }

    /// Bridge with another call.
    pub async fn bridge(&self, call_id: String) -> Result<(), CallError> {
        check_len("bridge.call", &call_id, MAX_NAME_BYTES)?;
        self.ensure_live()?;
        self.verb("bridge", detail([("call", json!(call_id))]), async {
            self.backend.bridge(&call_id).await?;
            self.events.emit(EventKind::Bridged { with: call_id.clone() });
            Ok(((), Map::new()))
        })
        .await
    }

    /// Hold with music.
    pub async fn hold(&self, timeout_ms: u32) -> Result<(), CallError> {
        check_range("hold.timeout", timeout_ms, 1, MAX_WAIT_MS)?;
        self.ensure_live()?;
        self.verb("hold", detail([("timeout_ms", json!(timeout_ms))]), async {
            self.backend.hold(ms(timeout_ms)).await.map(|()| ((), Map::new()))
        })
        .await
    }

    /// Resume from hold.
    pub async fn unhold(&self) -> Result<(), CallError> {
        self.ensure_live()?;
        self.verb("unhold", Map::new(), async { self.backend.unhold().await.map(|()| ((), Map::new())) })
            .await
    }

    /// Attach a meta value to the call.
    pub fn set_meta(&self, name: String, value: String) -> Result<(), CallError> {
        if name.is_empty() {
            return Err(CallError::invalid("meta.name", "must not be empty"));
        }
        check_len("meta.name", &name, MAX_META_BYTES)?;
        check_len("meta.value", &value, MAX_META_BYTES)?;
        if self.events.meta_len() >= MAX_META_ENTRIES && !self.events.has_meta(&name) {
            return Err(CallError::LimitExceeded(format!(
                "at most {MAX_META_ENTRIES} meta entries per call"
            )));
        }
        let total = self.events.meta_bytes_with(&name, &value);
        if total > MAX_META_TOTAL_BYTES {
            return Err(CallError::LimitExceeded(format!(
                "at most {MAX_META_TOTAL_BYTES} bytes of meta names and values per call (this would make {total})"
            )));
        }
        self.budget.lock().charge(name.len() + value.len())?;
        self.events.set_meta(name.clone(), value.clone());
        self.events.callflow(
            "meta",
            Phase::Finished,
            detail([("name", json!(name)), ("value", json!(value))]),
        );
        Ok(())
    }

    /// Send an SMS through the call's backend.
    pub async fn send_sms(&self, request: SmsRequest) -> Result<String, CallError> {
        self.send_sms_with(&request, self.backend.send_sms(&request)).await
    }

    /// Send an SMS through `send` (the flow host's messaging capability), as a step of this
    /// call: the request is checked, then `send` runs between the `sms` step's started and
    /// finished (or failed) events. The call need not be up: an SMS does not use it.
    pub async fn send_sms_with(
        &self,
        request: &SmsRequest,
        send: impl Future<Output = Result<String, CallError>>,
    ) -> Result<String, CallError> {
        check_sms(request)?;
        self.verb("sms", detail([("to", json!(request.to))]), async {
            let id = send.await?;
            Ok((id.clone(), detail([("message", json!(id))])))
        })
        .await
    }

    fn mark_ended(&self, by: Party, cause: Q850, reason: Option<String>) {
        let mut ended = self.ended.lock();
        if ended.is_none() {
            *ended = Some(Ended { by, cause, reason });
        }
    }

    /// How the call ended (its Q.850 cause and reason), once it has.
    pub fn end_cause(&self) -> Option<(Q850, Option<String>)> {
        self.ended.lock().as_ref().map(|ended| (ended.cause, ended.reason.clone()))
    }

    /// Run `hook` just before `call.destroyed` is emitted: whatever a client does on that event
    /// (a command for the call: 404) finds the call gone. Replaces an earlier hook.
    pub fn before_destroyed(&self, hook: impl FnOnce() + Send + 'static) {
        *self.before_destroyed.lock() = Some(Box::new(hook));
    }

    /// Whether the call has ended.
    pub fn is_ended(&self) -> bool {
        self.ended.lock().is_some() || self.backend.state() == CallState::Ended
    }

    /// The flow is over: report a failure, hang up what is still up, and emit `call.hangup` and
    /// `call.destroyed`.
    pub async fn finish(&self, outcome: FlowOutcome) {
        self.keep_background_recording().await;
        if let FlowOutcome::Failed(message) | FlowOutcome::AtCapacity(message) = &outcome {
            self.events.callflow("flow", Phase::Failed, detail([("error", json!(message))]));
        }
        if !self.is_ended() {
            let (cause, reason) = match &outcome {
                FlowOutcome::Completed => (Q850::NORMAL_CLEARING, None),
                FlowOutcome::Failed(message) => {
                    (Q850::TEMPORARY_FAILURE, Some(format!("flow failed: {message}")))
                }
                FlowOutcome::TimedOut => {
                    (Q850::RECOVERY_ON_TIMER_EXPIRE, Some("the call reached its maximum length".to_owned()))
                }
                FlowOutcome::AtCapacity(message) => (Q850::TEMPORARY_FAILURE, Some(message.clone())),
            };
            let by = if matches!(outcome, FlowOutcome::TimedOut | FlowOutcome::AtCapacity(_)) {
                Party::Platform
            } else {
                Party::Flow
            };
            let reason_code = if matches!(outcome, FlowOutcome::AtCapacity(_)) {
                HangupReason::Unavailable
            } else {
                HangupReason::Normal
            };
            // The backend may already be gone (a trap during teardown); the call ends regardless.
            let _ = self.backend.hangup(reason_code).await;
            self.mark_ended(by, cause, reason);
        }
        let ended = self.ended.lock().clone();
        if let Some(ended) = ended {
            self.events.emit(EventKind::Hangup {
                q850_cause: ended.cause.code,
                q850_cause_string: ended.cause.name,
                by: ended.by,
                reason: ended.reason,
            });
        }
        let hook = self.before_destroyed.lock().take();
        if let Some(hook) = hook {
            hook();
        }
        self.events.emit(EventKind::Destroyed { duration_ms: self.events.elapsed_ms() });
    }
}

/// `Duration` helper for tests and backends: whole milliseconds.
pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
