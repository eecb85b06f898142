//! A simulated call for the flow runner (`opentact flow run`), tests and benchmarks: the caller
//! presses scripted digits, dialled targets answer, are busy or do not answer as scripted, and
//! time is virtual unless asked otherwise — a 10 s timeout passes at once, and shows as 10 000 ms
//! in the events.
//!
//! Digits script: each character is a key pressed (`0-9 * # A-D`); `.` means the caller stays
//! silent through the next wait (so it times out). A key at the head of the script interrupts a
//! prompt (barge-in) and is then collected. When the script is exhausted, the caller is silent.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::backend::CallBackend;
use crate::clock::{Clock, RealClock, VirtualClock};
use crate::error::CallError;
use crate::model::{
    CallInfo, CallState, DialRequest, DialResult, HangupReason, Media, PlayOutcome, RecordRequest, Recording,
    SmsRequest, ms,
};
use crate::session::is_dtmf;

/// How long a simulated bridged conversation lasts, ms.
pub const SIMULATED_CONVERSATION_MS: u32 = 10_000;
/// How long simulated text to speech takes per character, ms (about 150 words a minute).
pub const SIMULATED_SPEECH_MS_PER_CHAR: u32 = 60;
/// How long a simulated audio file plays, ms.
pub const SIMULATED_AUDIO_MS: u32 = 3_000;
/// How long a simulated recording lasts when nothing stops it earlier, ms.
pub const SIMULATED_RECORDING_MS: u32 = 5_000;

/// What a dialled target does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialBehaviour {
    /// Answers at once; hangs up after [`SIMULATED_CONVERSATION_MS`].
    Answered,
    /// Busy.
    Busy,
    /// Rings until the dial timeout.
    NoAnswer,
    /// Unreachable.
    Failed,
}

impl std::str::FromStr for DialBehaviour {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "answered" | "answer" => Ok(DialBehaviour::Answered),
            "busy" => Ok(DialBehaviour::Busy),
            "no-answer" | "no_answer" | "noanswer" => Ok(DialBehaviour::NoAnswer),
            "failed" | "fail" => Ok(DialBehaviour::Failed),
            other => Err(format!("unknown dial outcome {other:?}: use answered, busy, no-answer or failed")),
        }
    }
}

/// One scripted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Key(char),
    Silence,
}

/// Parse a digits script (see the module docs).
pub fn parse_digits(script: &str) -> Result<Vec<char>, String> {
    script
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| {
            if c == '.' || is_dtmf(c) {
                Ok(c)
            } else {
                Err(format!("{c:?} is not a DTMF key (0-9, *, #, A-D) or '.' (silence)"))
            }
        })
        .collect()
}

/// Settings of a simulated call.
#[derive(Debug, Clone)]
pub struct SimulatedCallConfig {
    /// The call as the flow sees it.
    pub info: CallInfo,
    /// Keys the caller presses, in order (`.` = stays silent through one wait).
    pub digits: Vec<char>,
    /// What each dialled target does (by the target as written); absent targets answer.
    pub dial: HashMap<String, DialBehaviour>,
    /// Run on the wall clock instead of virtual time (load programs park flows for real).
    pub realtime: bool,
}

#[derive(Debug)]
struct State {
    call: CallState,
    inputs: VecDeque<Input>,
    recordings: HashSet<String>,
    background: Option<(String, Duration)>,
}

/// A simulated call. See the module docs.
pub struct SimulatedCall {
    info: CallInfo,
    dial: HashMap<String, DialBehaviour>,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl std::fmt::Debug for SimulatedCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedCall").field("info", &self.info).finish_non_exhaustive()
    }
}

impl SimulatedCall {
    /// A ringing simulated call.
    pub fn new(config: SimulatedCallConfig) -> Self {
        let clock: Arc<dyn Clock> =
            if config.realtime { Arc::new(RealClock::new()) } else { Arc::new(VirtualClock::new()) };
        let inputs =
            config.digits.iter().map(|&c| if c == '.' { Input::Silence } else { Input::Key(c) }).collect();
        Self {
            info: config.info,
            dial: config.dial,
            clock,
            state: Mutex::new(State {
                call: CallState::Ringing,
                inputs,
                recordings: HashSet::new(),
                background: None,
            }),
        }
    }

    fn live(&self) -> Result<(), CallError> {
        if self.state.lock().call == CallState::Ended {
            return Err(CallError::Hangup);
        }
        Ok(())
    }

    fn media_length(media: &Media) -> Duration {
        let per_loop = |count: u32, each: u32| ms(count.max(1).saturating_mul(each));
        match media {
            Media::Say(say) => {
                let chars = u32::try_from(say.text.chars().count()).unwrap_or(u32::MAX);
                per_loop(say.loop_count, chars.saturating_mul(SIMULATED_SPEECH_MS_PER_CHAR))
            }
            Media::Play(play) => per_loop(play.loop_count, SIMULATED_AUDIO_MS),
            Media::Tone(tone) => {
                let cycle = tone.on_ms.saturating_add(tone.off_ms);
                let whole =
                    if tone.on_ms == 0 { tone.timeout_ms } else { tone.loop_count.saturating_mul(cycle) };
                ms(whole.min(tone.timeout_ms))
            }
            Media::Silence(length) => ms(*length),
        }
    }

    fn next_recording(name: &str, duration: Duration) -> Recording {
        Recording {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            duration_ms: u32::try_from(duration.as_millis()).unwrap_or(u32::MAX),
        }
    }
}

#[async_trait]
impl CallBackend for SimulatedCall {
    fn info(&self) -> CallInfo {
        self.info.clone()
    }

    fn state(&self) -> CallState {
        self.state.lock().call
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    async fn answer(&self) -> Result<(), CallError> {
        self.live()?;
        let mut state = self.state.lock();
        if state.call == CallState::Ringing {
            state.call = CallState::Answered;
        }
        Ok(())
    }

    async fn hangup(&self, _reason: HangupReason) -> Result<(), CallError> {
        self.state.lock().call = CallState::Ended;
        Ok(())
    }

    async fn play(&self, media: &Media, barge_in: bool) -> Result<PlayOutcome, CallError> {
        self.live()?;
        let key_waiting = matches!(self.state.lock().inputs.front(), Some(Input::Key(_)));
        if barge_in && key_waiting {
            return Ok(PlayOutcome { interrupted: true });
        }
        self.clock.sleep(Self::media_length(media)).await;
        Ok(PlayOutcome { interrupted: false })
    }

    async fn next_digit(&self, timeout: Duration) -> Result<Option<char>, CallError> {
        self.live()?;
        let input = self.state.lock().inputs.pop_front();
        match input {
            Some(Input::Key(key)) => Ok(Some(key)),
            Some(Input::Silence) | None => {
                self.clock.sleep(timeout).await;
                self.live()?;
                Ok(None)
            }
        }
    }

    async fn record(&self, request: &RecordRequest) -> Result<Recording, CallError> {
        self.live()?;
        let stopped_by_key = {
            let mut state = self.state.lock();
            match state.inputs.front() {
                Some(Input::Key(key)) if Some(*key) == request.finish_key => {
                    state.inputs.pop_front();
                    true
                }
                _ => false,
            }
        };
        let length = if stopped_by_key {
            ms(SIMULATED_RECORDING_MS / 2)
        } else {
            ms(SIMULATED_RECORDING_MS.min(request.max_length_ms))
        };
        self.clock.sleep(length).await;
        self.state.lock().recordings.insert(request.name.clone());
        Ok(Self::next_recording(&request.name, length))
    }

    async fn record_start(&self, name: &str) -> Result<(), CallError> {
        self.live()?;
        let mut state = self.state.lock();
        if state.background.is_some() {
            return Err(CallError::InvalidState("a background recording is already running".to_owned()));
        }
        state.background = Some((name.to_owned(), self.clock.elapsed()));
        Ok(())
    }

    async fn record_stop(&self) -> Result<Option<Recording>, CallError> {
        let mut state = self.state.lock();
        Ok(state.background.take().map(|(name, started)| {
            state.recordings.insert(name.clone());
            Self::next_recording(&name, self.clock.elapsed().saturating_sub(started))
        }))
    }

    fn has_recording(&self, name: &str) -> bool {
        self.state.lock().recordings.contains(name)
    }

    async fn dial(
        &self,
        request: &DialRequest,
        bridged: &(dyn for<'t> Fn(&'t crate::model::DialTarget) + Send + Sync),
    ) -> Result<DialResult, CallError> {
        self.live()?;
        let behaviour = |t: &crate::model::DialTarget| {
            self.dial.get(t.as_str()).copied().unwrap_or(DialBehaviour::Answered)
        };
        if let Some(answered) = request.targets.iter().find(|t| behaviour(t) == DialBehaviour::Answered) {
            self.state.lock().call = CallState::Bridged;
            bridged(answered);
            self.clock.sleep(ms(SIMULATED_CONVERSATION_MS)).await;
            self.state.lock().call = CallState::Answered;
            let recording = request.record.then(|| {
                let name = format!("dial-{}", answered.as_str());
                self.state.lock().recordings.insert(name.clone());
                Self::next_recording(&name, ms(SIMULATED_CONVERSATION_MS))
            });
            return Ok(DialResult {
                answered: answered.clone(),
                duration_ms: SIMULATED_CONVERSATION_MS,
                callee_hung_up: true,
                recording,
            });
        }
        if request.targets.iter().any(|t| behaviour(t) == DialBehaviour::NoAnswer) {
            self.clock.sleep(ms(request.timeout_ms)).await;
            return Err(CallError::NoAnswer);
        }
        if request.targets.iter().all(|t| behaviour(t) == DialBehaviour::Busy) {
            return Err(CallError::Busy);
        }
        Err(CallError::Failed("every target failed".to_owned()))
    }

    async fn bridge(&self, call_id: &str) -> Result<(), CallError> {
        self.live()?;
        Err(CallError::Failed(format!("no live call {call_id} to bridge with in a simulated call")))
    }

    async fn hold(&self, timeout: Duration) -> Result<(), CallError> {
        self.live()?;
        self.state.lock().call = CallState::Held;
        // The simulated caller is taken off hold by the flow's next verb; the timeout is an
        // upper bound the simulation does not need to wait out.
        let _ = timeout;
        Ok(())
    }

    async fn unhold(&self) -> Result<(), CallError> {
        self.live()?;
        let mut state = self.state.lock();
        if state.call != CallState::Held {
            return Err(CallError::InvalidState(state.call.to_string()));
        }
        state.call = CallState::Answered;
        Ok(())
    }

    async fn send_sms(&self, _request: &SmsRequest) -> Result<String, CallError> {
        Ok(uuid::Uuid::new_v4().to_string())
    }
}
