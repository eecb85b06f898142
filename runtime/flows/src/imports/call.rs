//! `opentact:flow/call`: call control, straight into the call's `CallSession`.

use opentact_call::CallError;
use opentact_call::model::{
    self as m, AudioSource, DialTarget, GatherRequest, Media, RecordRequest, SayRequest, SmsRequest,
};

use super::opentact::flow::call::Host;
use super::wit;
use crate::state::FlowCtxView;

fn error(e: CallError) -> wit::CallError {
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

pub(crate) fn state(s: m::CallState) -> wit::CallState {
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
    async fn info(&mut self) -> wit::CallInfo {
        let info = self.ctx.session.info();
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
            state: state(self.ctx.session.state()),
            time_zone: info.time_zone,
        }
    }

    async fn state(&mut self) -> wit::CallState {
        state(self.ctx.session.state())
    }

    async fn answer(&mut self, delay_ms: u32) -> Result<(), wit::CallError> {
        self.waits_on_call();
        self.ctx.session.answer(delay_ms).await.map_err(error)
    }

    async fn hangup(&mut self, reason: wit::HangupReason) -> Result<(), wit::CallError> {
        self.waits_on_call();
        let reason = match reason {
            wit::HangupReason::Normal => m::HangupReason::Normal,
            wit::HangupReason::Busy => m::HangupReason::Busy,
            wit::HangupReason::Rejected => m::HangupReason::Rejected,
        };
        self.ctx.session.hangup(reason).await.map_err(error)
    }

    async fn say(&mut self, request: wit::SayRequest) -> Result<(), wit::CallError> {
        self.waits_on_call();
        self.ctx.session.media(say(request)).await.map_err(error)
    }

    async fn play(&mut self, request: wit::PlayRequest) -> Result<(), wit::CallError> {
        self.waits_on_call();
        self.ctx.session.media(play(request)).await.map_err(error)
    }

    async fn tone(&mut self, request: wit::ToneRequest) -> Result<(), wit::CallError> {
        self.waits_on_call();
        self.ctx.session.media(tone(request)).await.map_err(error)
    }

    async fn pause(&mut self, length_ms: u32) -> Result<(), wit::CallError> {
        self.waits_on_call();
        self.ctx.session.media(Media::Silence(length_ms)).await.map_err(error)
    }

    async fn gather(&mut self, request: wit::GatherRequest) -> Result<wit::GatherResult, wit::CallError> {
        self.waits_on_call();
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
        let result = self.ctx.session.gather(request).await.map_err(error)?;
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
        self.waits_on_call();
        let request = RecordRequest {
            name: request.name,
            max_length_ms: request.max_length_ms,
            silence_timeout_ms: request.silence_timeout_ms,
            finish_key: key(request.finish_key)?,
            transcribe: request.transcribe,
        };
        self.ctx.session.record(request).await.map(recording).map_err(error)
    }

    async fn record_start(&mut self, name: String) -> Result<(), wit::CallError> {
        self.waits_on_call();
        self.ctx.session.record_start(name).await.map_err(error)
    }

    async fn record_stop(&mut self) -> Result<Option<wit::Recording>, wit::CallError> {
        self.waits_on_call();
        self.ctx.session.record_stop().await.map(|r| r.map(recording)).map_err(error)
    }

    async fn dial(&mut self, request: wit::DialRequest) -> Result<wit::DialResult, wit::CallError> {
        self.waits_on_call();
        let request = m::DialRequest {
            targets: request.targets.into_iter().map(target_in).collect(),
            timeout_ms: request.timeout_ms,
            caller_id: request.caller_id,
            record: request.record,
        };
        let result = self.ctx.session.dial(request).await.map_err(error)?;
        Ok(wit::DialResult {
            answered: target_out(result.answered),
            duration_ms: result.duration_ms,
            callee_hung_up: result.callee_hung_up,
            recording: result.recording.map(recording),
        })
    }

    async fn bridge(&mut self, call_id: String) -> Result<(), wit::CallError> {
        self.waits_on_call();
        self.ctx.session.bridge(call_id).await.map_err(error)
    }

    async fn hold(&mut self, timeout_ms: u32) -> Result<(), wit::CallError> {
        self.waits_on_call();
        self.ctx.session.hold(timeout_ms).await.map_err(error)
    }

    async fn unhold(&mut self) -> Result<(), wit::CallError> {
        self.waits_on_call();
        self.ctx.session.unhold().await.map_err(error)
    }

    async fn set_meta(&mut self, name: String, value: String) -> Result<(), wit::CallError> {
        self.ctx.session.set_meta(name, value).map_err(error)
    }

    async fn send_sms(&mut self, request: wit::SmsRequest) -> Result<String, wit::CallError> {
        self.waits_on_call();
        let request = SmsRequest { from: request.from, to: request.to, text: request.text };
        self.ctx.session.send_sms(request).await.map_err(error)
    }
}
