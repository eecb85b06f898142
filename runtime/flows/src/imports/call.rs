//! `opentact:flow/call`: the calls capability — call control, straight into the call's
//! `CallSession`. A flow without a call (an SMS flow) gets `invalid-state` from every function
//! that returns a result, and is stopped by `info` and `state`, which cannot return an error.

use std::sync::Arc;

use opentact_call::model::{
    self as m, AudioSource, DialTarget, GatherRequest, Media, RecordRequest, SayRequest,
};
use opentact_call::{CallError, CallSession};
use tokio::sync::mpsc;
use wasmtime::component::Linker;

use super::xml::opentact::flow::call::{self as interface, Host};
use super::{HasFlow, wit};
use crate::state::{FlowCtxView, FlowView};

/// The calls capability's state in one flow: the call and its asynchronous commands.
pub(crate) struct CallCtx {
    /// The call every import runs on.
    pub(crate) session: Arc<CallSession>,
    /// Asynchronous call-control commands for `app-control.next-command`; `None` = the app
    /// sends none (a wait then times out empty).
    pub(crate) commands: Option<mpsc::Receiver<String>>,
    /// Counts the flow as parked while it waits for a command.
    pub(crate) metrics: opentact_metrics::FlowMetrics,
}

/// Link `opentact:flow/call`.
pub(crate) fn add_to_linker<T: FlowView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    interface::add_to_linker::<T, HasFlow>(linker, T::flow)
}

/// What a flow without a call is told when it uses `function`.
pub(crate) fn no_call(function: &str) -> String {
    format!("call.{function}: this flow runs for an SMS and has no call")
}

impl FlowCtxView<'_> {
    /// The call, or `invalid-state` in a flow without one.
    fn session(&self, function: &str) -> Result<Arc<CallSession>, wit::CallError> {
        match &self.ctx.call {
            Some(call) => Ok(call.session.clone()),
            None => Err(wit::CallError::InvalidState(no_call(function))),
        }
    }

    /// The call of an import that waits on it (ending the guest's CPU segment), or
    /// `invalid-state` in a flow without one (which ends nothing: refusals come at once).
    fn waiting_session(&mut self, function: &str) -> Result<Arc<CallSession>, wit::CallError> {
        let session = self.session(function)?;
        self.waits_on_call();
        Ok(session)
    }

    /// The call, or a trap that says there is none (for the functions without an error).
    fn session_or_trap(&self, function: &str) -> wasmtime::Result<Arc<CallSession>> {
        self.session(function).map_err(|_| wasmtime::Error::msg(no_call(function)))
    }
}

/// The WIT `call-info` of `session`'s call.
pub(crate) fn call_info(session: &CallSession) -> wit::CallInfo {
    let info = session.info();
    wit::CallInfo {
        id: info.id,
        account: info.account,
        app: info.app,
        from: info.from,
        to: info.to,
        tn: info.tn,
        direction: match info.direction {
            m::Direction::Inbound => wit::Direction::Inbound,
            m::Direction::Outbound => wit::Direction::Outbound,
        },
        state: state(session.state()),
        time_zone: info.time_zone,
    }
}

pub(crate) fn error(e: CallError) -> wit::CallError {
    match e {
        CallError::Hangup => wit::CallError::Hangup,
        CallError::NoAnswer => wit::CallError::NoAnswer,
        CallError::Busy => wit::CallError::Busy,
        CallError::Failed(s) => wit::CallError::Failed(s),
        CallError::InvalidArgument(s) => wit::CallError::InvalidArgument(s),
        CallError::InvalidState(s) => wit::CallError::InvalidState(s),
        CallError::LimitExceeded(s) => wit::CallError::LimitExceeded(s),
    }
}

fn state(s: m::CallState) -> wit::CallState {
    match s {
        m::CallState::Ringing => wit::CallState::Ringing,
        m::CallState::Answered => wit::CallState::Answered,
        m::CallState::Bridged => wit::CallState::Bridged,
        m::CallState::Held => wit::CallState::Held,
        m::CallState::Ended => wit::CallState::Ended,
    }
}

fn leg(l: wit::Leg) -> m::Leg {
    match l {
        wit::Leg::Aleg => m::Leg::Aleg,
        wit::Leg::Bleg => m::Leg::Bleg,
        wit::Leg::Both => m::Leg::Both,
    }
}

fn key(k: Option<String>) -> Result<Option<char>, wit::CallError> {
    match k.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => {
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(Some(c)),
                _ => Err(wit::CallError::InvalidArgument(format!("finish-key: one key, got {s:?}"))),
            }
        }
    }
}

fn say(r: wit::SayRequest) -> Media {
    Media::Say(SayRequest {
        text: r.text,
        lang: r.lang,
        gender: match r.gender {
            wit::Gender::Female => m::Gender::Female,
            wit::Gender::Male => m::Gender::Male,
        },
        voice: r.voice,
        loop_count: r.loop_count,
        leg: leg(r.leg),
    })
}

fn play(r: wit::PlayRequest) -> Media {
    Media::Play(m::PlayRequest {
        source: match r.source {
            wit::AudioSource::Url(u) => AudioSource::Url(u),
            wit::AudioSource::Recording(n) => AudioSource::Recording(n),
        },
        loop_count: r.loop_count,
        leg: leg(r.leg),
    })
}

fn tone(r: wit::ToneRequest) -> Media {
    Media::Tone(m::ToneRequest {
        frequencies: r.frequencies,
        on_ms: r.on_ms,
        off_ms: r.off_ms,
        loop_count: r.loop_count,
        volume_db: r.volume_db,
        timeout_ms: r.timeout_ms,
        leg: leg(r.leg),
    })
}

fn recording(r: m::Recording) -> wit::Recording {
    wit::Recording { id: r.id, name: r.name, duration_ms: r.duration_ms }
}

fn target_in(t: wit::DialTarget) -> DialTarget {
    match t {
        wit::DialTarget::Number(s) => DialTarget::Number(s),
        wit::DialTarget::SipUri(s) => DialTarget::SipUri(s),
        wit::DialTarget::User(s) => DialTarget::User(s),
    }
}

fn target_out(t: DialTarget) -> wit::DialTarget {
    match t {
        DialTarget::Number(s) => wit::DialTarget::Number(s),
        DialTarget::SipUri(s) => wit::DialTarget::SipUri(s),
        DialTarget::User(s) => wit::DialTarget::User(s),
    }
}

impl Host for FlowCtxView<'_> {
    async fn info(&mut self) -> wasmtime::Result<wit::CallInfo> {
        let session = self.session_or_trap("info")?;
        Ok(call_info(&session))
    }

    async fn state(&mut self) -> wasmtime::Result<wit::CallState> {
        Ok(state(self.session_or_trap("state")?.state()))
    }

    async fn answer(&mut self, delay_ms: u32) -> Result<(), wit::CallError> {
        self.waiting_session("answer")?.answer(delay_ms).await.map_err(error)
    }

    async fn hangup(&mut self, reason: wit::HangupReason) -> Result<(), wit::CallError> {
        let reason = match reason {
            wit::HangupReason::Normal => m::HangupReason::Normal,
            wit::HangupReason::Busy => m::HangupReason::Busy,
            wit::HangupReason::Rejected => m::HangupReason::Rejected,
        };
        self.waiting_session("hangup")?.hangup(reason).await.map_err(error)
    }

    async fn say(&mut self, request: wit::SayRequest) -> Result<(), wit::CallError> {
        self.waiting_session("say")?.media(say(request)).await.map_err(error)
    }

    async fn play(&mut self, request: wit::PlayRequest) -> Result<(), wit::CallError> {
        self.waiting_session("play")?.media(play(request)).await.map_err(error)
    }

    async fn tone(&mut self, request: wit::ToneRequest) -> Result<(), wit::CallError> {
        self.waiting_session("tone")?.media(tone(request)).await.map_err(error)
    }

    async fn pause(&mut self, length_ms: u32) -> Result<(), wit::CallError> {
        self.waiting_session("pause")?.media(Media::Silence(length_ms)).await.map_err(error)
    }

    async fn gather(&mut self, request: wit::GatherRequest) -> Result<wit::GatherResult, wit::CallError> {
        let prompts = request
            .prompts
            .into_iter()
            .map(|p| match p {
                wit::Prompt::Say(r) => say(r),
                wit::Prompt::Play(r) => play(r),
                wit::Prompt::Tone(r) => tone(r),
                wit::Prompt::Pause(ms) => Media::Silence(ms),
            })
            .collect();
        let request = GatherRequest {
            prompts,
            max_digits: request.max_digits,
            finish_key: key(request.finish_key)?,
            first_digit_timeout_ms: request.first_digit_timeout_ms,
            inter_digit_timeout_ms: request.inter_digit_timeout_ms,
            attempts: request.attempts,
        };
        let result = self.waiting_session("gather")?.gather(request).await.map_err(error)?;
        Ok(wit::GatherResult {
            digits: result.digits,
            end: match result.end {
                m::GatherEnd::MaxDigits => wit::GatherEnd::MaxDigits,
                m::GatherEnd::FinishKey => wit::GatherEnd::FinishKey,
                m::GatherEnd::Timeout => wit::GatherEnd::Timeout,
            },
            attempts: result.attempts,
        })
    }

    async fn record(&mut self, request: wit::RecordRequest) -> Result<wit::Recording, wit::CallError> {
        let request = RecordRequest {
            name: request.name,
            max_length_ms: request.max_length_ms,
            silence_timeout_ms: request.silence_timeout_ms,
            finish_key: key(request.finish_key)?,
            transcribe: request.transcribe,
        };
        self.waiting_session("record")?.record(request).await.map(recording).map_err(error)
    }

    async fn record_start(&mut self, name: String) -> Result<(), wit::CallError> {
        self.waiting_session("record-start")?.record_start(name).await.map_err(error)
    }

    async fn record_stop(&mut self) -> Result<Option<wit::Recording>, wit::CallError> {
        self.waiting_session("record-stop")?.record_stop().await.map(|r| r.map(recording)).map_err(error)
    }

    async fn dial(&mut self, request: wit::DialRequest) -> Result<wit::DialResult, wit::CallError> {
        let request = m::DialRequest {
            targets: request.targets.into_iter().map(target_in).collect(),
            timeout_ms: request.timeout_ms,
            caller_id: request.caller_id,
            record: request.record,
        };
        let result = self.waiting_session("dial")?.dial(request).await.map_err(error)?;
        Ok(wit::DialResult {
            answered: target_out(result.answered),
            duration_ms: result.duration_ms,
            callee_hung_up: result.callee_hung_up,
            recording: result.recording.map(recording),
        })
    }

    async fn bridge(&mut self, call_id: String) -> Result<(), wit::CallError> {
        self.waiting_session("bridge")?.bridge(call_id).await.map_err(error)
    }

    async fn hold(&mut self, timeout_ms: u32) -> Result<(), wit::CallError> {
        self.waiting_session("hold")?.hold(timeout_ms).await.map_err(error)
    }

    async fn unhold(&mut self) -> Result<(), wit::CallError> {
        self.waiting_session("unhold")?.unhold().await.map_err(error)
    }

    async fn set_meta(&mut self, name: String, value: String) -> Result<(), wit::CallError> {
        self.session("set-meta")?.set_meta(name, value).map_err(error)
    }
}
