//! Runs a document through a [`Host`] — the WIT imports in the guest, a scripted fake in tests.
//!
//! Decisions (the spec's gaps):
//! - A verb that fails with a call error (busy, no answer, failed…) runs its `<Error>`; without
//!   one, the flow goes on with the next verb. A failed *fetch* (webhook, `<Callback>`, Gather
//!   `url`) without `<Error>` ends the flow with an error that says why: the caller must not be
//!   left in silence waiting for a document that will not come.
//! - The caller hanging up (`call-error::hangup`) ends the flow at once; so does `<Hangup>`.
//! - `<Bridge call>` returns when the bridge ends: the other call hanging up goes on with the
//!   next verb, as a `<Dial>` whose callee hung up does. A bridge that cannot be made (no such
//!   live call, …) is a call error like any other: `<Error>`, or the next verb.
//! - A fetched document replaces the rest of the current one (TwiML `Redirect` semantics).
//! - `<RecordWait>` waits while the background recording runs: a long pause that the caller's
//!   hangup ends.
//! - A Gather with no input runs `<Default>` (or continues); digits that match no branch run
//!   `<Error>` (or continue). With `url`, the digits are sent and the answer replaces the rest.

use opentact_xml::Document;
use opentact_xml::ast::{self, Block, Node, NodeKind, Prompt, Target};

use crate::params::CallObject;
use crate::wit::types as t;

/// Most documents one call may fetch (webhook, Callback, Gather url): a flow that redirects to
/// itself forever ends instead of looping.
pub const MAX_DOCUMENT_FETCHES: u32 = 50;
/// How long `<RecordWait>` waits at most, ms.
pub const RECORD_WAIT_MS: u32 = 4 * 60 * 60 * 1000;

/// What the interpreter needs from the platform.
pub trait Host {
    /// The call.
    fn info(&mut self) -> t::CallInfo;
    /// The call's state now.
    fn state(&mut self) -> t::CallState;
    /// Answer.
    fn answer(&mut self, delay_ms: u32) -> Result<(), t::CallError>;
    /// Hang up.
    fn hangup(&mut self, reason: t::HangupReason) -> Result<(), t::CallError>;
    /// Say.
    fn say(&mut self, request: &t::SayRequest) -> Result<(), t::CallError>;
    /// Play.
    fn play(&mut self, request: &t::PlayRequest) -> Result<(), t::CallError>;
    /// Tone.
    fn tone(&mut self, request: &t::ToneRequest) -> Result<(), t::CallError>;
    /// Pause.
    fn pause(&mut self, length_ms: u32) -> Result<(), t::CallError>;
    /// Gather.
    fn gather(&mut self, request: &t::GatherRequest) -> Result<t::GatherResult, t::CallError>;
    /// Record.
    fn record(&mut self, request: &t::RecordRequest) -> Result<t::Recording, t::CallError>;
    /// Start a background recording.
    fn record_start(&mut self, name: &str) -> Result<(), t::CallError>;
    /// Stop it.
    fn record_stop(&mut self) -> Result<Option<t::Recording>, t::CallError>;
    /// Dial.
    fn dial(&mut self, request: &t::DialRequest) -> Result<t::DialResult, t::CallError>;
    /// Bridge with another live call of the account, until the bridge ends.
    fn bridge(&mut self, call_id: &str) -> Result<(), t::CallError>;
    /// Hold.
    fn hold(&mut self, timeout_ms: u32) -> Result<(), t::CallError>;
    /// Unhold.
    fn unhold(&mut self) -> Result<(), t::CallError>;
    /// Meta.
    fn set_meta(&mut self, name: &str, value: &str) -> Result<(), t::CallError>;
    /// The tag of later events.
    fn set_tag(&mut self, tag: Option<&str>);
    /// Report a step (`phase`: "started" | "finished" | "failed").
    fn report(&mut self, verb: &str, phase: &str, detail: &[(&str, &str)]);
    /// Where a number is: its state and county.
    fn locate(&mut self, number: &str) -> Option<(Option<String>, Option<String>)>;
    /// Seconds since the Unix epoch.
    fn now(&mut self) -> i64;
    /// HTTP: (status, body) or why not.
    fn http(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<&[u8]>,
        timeout_ms: u32,
    ) -> Result<(u16, Vec<u8>), String>;
}

/// What running a block led to.
#[derive(Debug)]
pub enum Flow {
    /// Go on with the next node.
    Continue,
    /// A fetched document replaces the rest.
    Replace(Document),
    /// The call is over.
    Stop,
}

/// Why a verb did not succeed.
enum Failure {
    /// The caller hung up.
    Hangup,
    /// A call error other than hangup: `<Error>` or continue.
    Call,
    /// A document fetch failed: `<Error>` or end the flow with this reason.
    Fetch(String),
    /// Something inside a nested block ended the flow: no `<Error>` of this node applies.
    Fatal(String),
}

impl From<t::CallError> for Failure {
    fn from(error: t::CallError) -> Self {
        match error {
            t::CallError::Hangup => Failure::Hangup,
            _ => Failure::Call,
        }
    }
}

/// One call's interpreter.
pub struct Interpreter<'h, H: Host> {
    host: &'h mut H,
    info: t::CallInfo,
    meta: Vec<(String, String)>,
    fetches: u32,
    last_recording: Option<String>,
}

impl<H: Host> std::fmt::Debug for Interpreter<'_, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interpreter")
            .field("call", &self.info.id)
            .field("fetches", &self.fetches)
            .finish_non_exhaustive()
    }
}

fn leg(leg: ast::Leg) -> t::Leg {
    match leg {
        ast::Leg::Aleg => t::Leg::Aleg,
        ast::Leg::Bleg => t::Leg::Bleg,
        ast::Leg::Both => t::Leg::Both,
    }
}

fn say(say: &ast::Say) -> t::SayRequest {
    t::SayRequest {
        text: say.text.clone(),
        lang: say.lang.clone(),
        gender: match say.gender {
            ast::Gender::Female => t::Gender::Female,
            ast::Gender::Male => t::Gender::Male,
        },
        voice: say.code.clone(),
        loop_count: say.loop_count,
        leg: leg(say.leg),
    }
}

fn play(play: &ast::Play) -> t::PlayRequest {
    t::PlayRequest {
        source: match &play.source {
            ast::PlaySource::Url(url) => t::AudioSource::Url(url.clone()),
            ast::PlaySource::Recording(name) => t::AudioSource::Recording(name.clone()),
        },
        loop_count: play.loop_count,
        leg: leg(play.leg),
    }
}

fn tone(tone: &ast::Tone) -> t::ToneRequest {
    t::ToneRequest {
        frequencies: tone.frequencies.clone(),
        on_ms: tone.on_ms,
        off_ms: tone.off_ms,
        loop_count: tone.loop_count,
        volume_db: tone.volume_db,
        timeout_ms: tone.timeout_ms,
        leg: leg(tone.leg),
    }
}

fn state_name(state: t::CallState) -> &'static str {
    match state {
        t::CallState::Ringing => "ringing",
        t::CallState::Answered => "answered",
        t::CallState::Bridged => "bridged",
        t::CallState::Held => "held",
        t::CallState::Ended => "ended",
    }
}

impl<'h, H: Host> Interpreter<'h, H> {
    /// An interpreter for the call `host` drives.
    pub fn new(host: &'h mut H) -> Self {
        let info = host.info();
        Self { host, info, meta: Vec::new(), fetches: 0, last_recording: None }
    }

    /// Run a document, following the documents that replace it, to the end.
    pub fn run(&mut self, document: Document) -> Result<(), String> {
        let mut document = document;
        loop {
            match self.block(&document.body)? {
                Flow::Continue | Flow::Stop => return Ok(()),
                Flow::Replace(next) => document = next,
            }
        }
    }

    /// Run a block.
    pub fn block(&mut self, block: &Block) -> Result<Flow, String> {
        for node in block {
            match self.node(node)? {
                Flow::Continue => {}
                other => return Ok(other),
            }
        }
        Ok(Flow::Continue)
    }

    fn node(&mut self, node: &Node) -> Result<Flow, String> {
        match self.verb(node) {
            Ok(flow) => Ok(flow),
            Err(Failure::Hangup) => Ok(Flow::Stop),
            Err(Failure::Call) => match &node.on_error {
                Some(handler) => self.block(handler),
                None => Ok(Flow::Continue),
            },
            Err(Failure::Fetch(reason)) => match &node.on_error {
                Some(handler) => self.block(handler),
                None => Err(reason),
            },
            Err(Failure::Fatal(reason)) => Err(reason),
        }
    }

    /// Run the call import of a verb under its tag.
    fn tagged<T>(
        &mut self,
        node: &Node,
        call: impl FnOnce(&mut H) -> Result<T, t::CallError>,
    ) -> Result<T, Failure> {
        // The tag is cleared after every tagged verb, so an untagged verb needs no `set-tag`
        // (two host calls saved per verb).
        let Some(tag) = node.tag.as_deref() else {
            return call(self.host).map_err(Failure::from);
        };
        self.host.set_tag(Some(tag));
        let result = call(self.host);
        self.host.set_tag(None);
        result.map_err(Failure::from)
    }

    fn verb(&mut self, node: &Node) -> Result<Flow, Failure> {
        match &node.kind {
            NodeKind::Answer { delay_ms } => self.tagged(node, |h| h.answer(*delay_ms))?,
            NodeKind::Hangup { reason } => {
                let reason = match reason {
                    ast::HangupReason::Normal => t::HangupReason::Normal,
                    ast::HangupReason::Busy => t::HangupReason::Busy,
                    ast::HangupReason::Rejected => t::HangupReason::Rejected,
                };
                self.tagged(node, |h| h.hangup(reason))?;
                return Ok(Flow::Stop);
            }
            NodeKind::Pause { length_ms } => self.tagged(node, |h| h.pause(*length_ms))?,
            NodeKind::Say(s) => self.tagged(node, |h| h.say(&say(s)))?,
            NodeKind::Play(p) => self.tagged(node, |h| h.play(&play(p)))?,
            NodeKind::Tone(x) => self.tagged(node, |h| h.tone(&tone(x)))?,
            NodeKind::Gather(gather) => return self.gather(node, gather),
            NodeKind::Record(record) => return self.record(node, record),
            NodeKind::RecordStart => {
                let name = node.tag.clone().unwrap_or_else(|| "recording".to_owned());
                self.tagged(node, |h| h.record_start(&name))?;
            }
            NodeKind::RecordStop => {
                if let Some(recording) = self.tagged(node, |h| h.record_stop())? {
                    self.last_recording = Some(recording.id);
                }
            }
            NodeKind::RecordWait => self.tagged(node, |h| h.pause(RECORD_WAIT_MS))?,
            NodeKind::Dial(dial) => {
                let request = t::DialRequest {
                    targets: dial
                        .targets
                        .iter()
                        .map(|target| match target {
                            Target::Number(n) => t::DialTarget::Number(n.clone()),
                            Target::SipUri(u) => t::DialTarget::SipUri(u.clone()),
                            Target::User(u) => t::DialTarget::User(u.clone()),
                        })
                        .collect(),
                    timeout_ms: dial.timeout_ms,
                    caller_id: dial.caller_id.clone(),
                    record: dial.record,
                };
                let result = self.tagged(node, |h| h.dial(&request))?;
                if let Some(recording) = result.recording {
                    self.last_recording = Some(recording.id);
                }
            }
            NodeKind::Bridge { call } => self.tagged(node, |h| h.bridge(call))?,
            NodeKind::Hold { timeout_ms } => self.tagged(node, |h| h.hold(*timeout_ms))?,
            NodeKind::Unhold => self.tagged(node, |h| h.unhold())?,
            NodeKind::Meta { name, value } => {
                self.tagged(node, |h| h.set_meta(name, value))?;
                self.meta.retain(|(k, _)| k != name);
                self.meta.push((name.clone(), value.clone()));
            }
            NodeKind::Callback(callback) => {
                let object = self.call_object(node, None, None, false);
                let body = callback.body.then(|| object.json());
                let document = self.fetch(
                    node,
                    "callback",
                    callback.method,
                    &callback.url,
                    &object,
                    body,
                    callback.timeout_ms,
                )?;
                return Ok(Flow::Replace(document));
            }
            NodeKind::Curl(curl) => self.curl(node, curl)?,
            NodeKind::Call { field, value, body } => {
                let actual = match field {
                    ast::CallField::To => &self.info.to,
                    ast::CallField::From => &self.info.from,
                };
                if actual == value {
                    return self.block(body).map_err(Failure::Fatal);
                }
            }
            NodeKind::Geo { states, county, body } => {
                if self.geo_matches(states, county.as_deref()) {
                    return self.block(body).map_err(Failure::Fatal);
                }
            }
            NodeKind::Schedule { schedule, body } => {
                if self.schedule_matches(schedule) {
                    return self.block(body).map_err(Failure::Fatal);
                }
            }
        }
        Ok(Flow::Continue)
    }

    fn gather(&mut self, node: &Node, gather: &ast::Gather) -> Result<Flow, Failure> {
        let prompts = gather
            .prompts
            .iter()
            .map(|p| match p {
                Prompt::Say(s) => t::Prompt::Say(say(s)),
                Prompt::Play(p) => t::Prompt::Play(play(p)),
                Prompt::Tone(x) => t::Prompt::Tone(tone(x)),
                Prompt::Pause(ms) => t::Prompt::Pause(*ms),
            })
            .collect();
        let request = t::GatherRequest {
            prompts,
            max_digits: gather.max_digits,
            finish_key: gather.finish_key.map(String::from),
            first_digit_timeout_ms: gather.timeout_ms,
            inter_digit_timeout_ms: gather.inter_digit_timeout_ms,
            attempts: gather.attempts,
        };
        let result = self.tagged(node, |h| h.gather(&request))?;
        if let Some(fetch) = &gather.fetch {
            let legacy = gather.syntax == ast::GatherSyntax::Legacy;
            let object = self.call_object(node, Some(result.digits.clone()), Some(result.attempts), legacy);
            let body = (fetch.method != ast::Method::Get).then(|| object.json());
            let document = self.fetch(node, "gather", fetch.method, &fetch.url, &object, body, 10_000)?;
            return Ok(Flow::Replace(document));
        }
        if result.digits.is_empty() {
            return match &gather.default {
                Some(default) => self.block(default).map_err(Failure::Fatal),
                None => Ok(Flow::Continue),
            };
        }
        match gather.branches.iter().find(|b| b.digits == result.digits) {
            Some(branch) => self.block(&branch.body).map_err(Failure::Fatal),
            None if gather.branches.is_empty() => Ok(Flow::Continue),
            None => Err(Failure::Call),
        }
    }

    fn record(&mut self, node: &Node, record: &ast::Record) -> Result<Flow, Failure> {
        if record.body.is_empty() {
            let request = t::RecordRequest {
                name: record.name.clone(),
                max_length_ms: record.max_length_ms,
                silence_timeout_ms: record.silence_timeout_ms,
                finish_key: record.finish_key.map(String::from),
                transcribe: record.transcribe,
            };
            let recording = self.tagged(node, |h| h.record(&request))?;
            self.last_recording = Some(recording.id);
            return Ok(Flow::Continue);
        }
        self.tagged(node, |h| h.record_start(&record.name))?;
        let flow = self.block(&record.body).map_err(Failure::Fatal)?;
        if let Some(recording) = self.tagged(node, |h| h.record_stop())? {
            self.last_recording = Some(recording.id);
        }
        Ok(flow)
    }

    fn curl(&mut self, node: &Node, curl: &ast::Curl) -> Result<(), Failure> {
        self.host.set_tag(node.tag.as_deref());
        self.host.report("curl", "started", &[("url", &curl.url)]);
        let result = self.host.http(
            curl.method.as_str(),
            &curl.url,
            &curl.headers,
            curl.body.as_deref().map(str::as_bytes),
            curl.timeout_ms,
        );
        let outcome = match result {
            Ok((status, _)) if (200..300).contains(&status) => {
                self.host.report("curl", "finished", &[("url", &curl.url), ("status", &status.to_string())]);
                Ok(())
            }
            Ok((status, _)) => {
                self.host.report("curl", "failed", &[("url", &curl.url), ("status", &status.to_string())]);
                Err(Failure::Call)
            }
            Err(error) => {
                self.host.report("curl", "failed", &[("url", &curl.url), ("error", &error)]);
                Err(Failure::Call)
            }
        };
        self.host.set_tag(None);
        outcome
    }

    fn call_object(
        &mut self,
        node: &Node,
        dtmf: Option<String>,
        attempts: Option<u32>,
        legacy: bool,
    ) -> CallObject {
        let state = self.host.state();
        CallObject {
            call: self.info.id.clone(),
            from: self.info.from.clone(),
            to: self.info.to.clone(),
            tn: self.info.tn,
            direction: match self.info.direction {
                t::Direction::Inbound => "in",
                t::Direction::Outbound => "out",
            },
            state: state_name(state).to_owned(),
            sca: self.info.app.clone(),
            account: self.info.account.clone(),
            tag: node.tag.clone(),
            meta: self.meta.clone(),
            dtmf,
            attempts,
            recording: self.last_recording.clone(),
            legacy,
        }
    }

    /// Fetch a document: GET with the call object in the query, other methods with it as JSON.
    #[allow(clippy::too_many_arguments)]
    fn fetch(
        &mut self,
        node: &Node,
        verb: &str,
        method: ast::Method,
        url: &str,
        object: &CallObject,
        body: Option<String>,
        timeout_ms: u32,
    ) -> Result<Document, Failure> {
        self.host.set_tag(node.tag.as_deref());
        self.host.report(verb, "started", &[("url", url)]);
        let result = self.fetch_document(method, url, object, body, timeout_ms);
        match &result {
            Ok(_) => self.host.report(verb, "finished", &[("url", url)]),
            Err(error) => self.host.report(verb, "failed", &[("url", url), ("error", error)]),
        }
        self.host.set_tag(None);
        result.map_err(Failure::Fetch)
    }

    /// The document at `url`, or a sentence that says why not.
    pub fn fetch_document(
        &mut self,
        method: ast::Method,
        url: &str,
        object: &CallObject,
        body: Option<String>,
        timeout_ms: u32,
    ) -> Result<Document, String> {
        self.fetches += 1;
        if self.fetches > MAX_DOCUMENT_FETCHES {
            return Err(format!(
                "more than {MAX_DOCUMENT_FETCHES} documents fetched in one call; last was {url}"
            ));
        }
        let mut headers = vec![("accept".to_owned(), "application/xml, text/xml".to_owned())];
        let target = if method == ast::Method::Get { object.url_with_query(url) } else { url.to_owned() };
        if body.is_some() {
            headers.push(("content-type".to_owned(), "application/json".to_owned()));
        }
        let (status, bytes) = self
            .host
            .http(method.as_str(), &target, &headers, body.as_deref().map(str::as_bytes), timeout_ms)
            .map_err(|error| format!("fetching {url} failed: {error}"))?;
        if !(200..300).contains(&status) {
            return Err(format!("{url} answered {status}"));
        }
        let text =
            String::from_utf8(bytes).map_err(|_| format!("{url} returned a document that is not UTF-8"))?;
        opentact_xml::parse(&text).map_err(|errors| format!("{url} returned an invalid document: {errors}"))
    }

    fn geo_matches(&mut self, states: &[String], county: Option<&str>) -> bool {
        if states.is_empty() && county.is_none() {
            return true;
        }
        let from = self.info.from.clone();
        let Some((state, found_county)) = self.host.locate(&from) else { return false };
        let state_ok = states.is_empty()
            || state.as_deref().is_some_and(|s| states.iter().any(|x| x.eq_ignore_ascii_case(s)));
        let county_ok =
            county.is_none_or(|c| found_county.as_deref().is_some_and(|f| f.eq_ignore_ascii_case(c)));
        state_ok && county_ok
    }

    fn schedule_matches(&mut self, schedule: &ast::Schedule) -> bool {
        let zone = schedule.tz.clone().or_else(|| self.info.time_zone.clone());
        let now = self.host.now();
        match crate::schedule::local_time(now, zone.as_deref()) {
            Ok((day, seconds)) => schedule.contains(day, seconds),
            Err(error) => {
                self.host.report("schedule", "failed", &[("error", &error)]);
                false
            }
        }
    }
}

/// The call object of the app's webhook request (no verb results yet).
pub fn webhook_object<H: Host>(interpreter: &mut Interpreter<'_, H>) -> CallObject {
    let node = Node { span: ast::Span::default(), tag: None, kind: NodeKind::Unhold, on_error: None };
    interpreter.call_object(&node, None, None, false)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    const OTHER_CALL: &str = "5f0c1e3a-8d6b-4c2e-9a71-0b4f3d2e1c9a";

    /// A scripted call: records every call-control request (with the tag in force), and answers
    /// `bridge` with the next scripted outcome.
    #[derive(Default)]
    struct Scripted {
        log: Vec<String>,
        tag: Option<String>,
        bridges: VecDeque<Result<(), t::CallError>>,
    }

    impl Scripted {
        fn step(&mut self, what: String) -> Result<(), t::CallError> {
            let entry = match &self.tag {
                Some(tag) => format!("{what} [{tag}]"),
                None => what,
            };
            self.log.push(entry);
            Ok(())
        }
    }

    impl Host for Scripted {
        fn info(&mut self) -> t::CallInfo {
            t::CallInfo {
                id: "this-call".into(),
                account: "acct".into(),
                app: "app".into(),
                from: "12025550100".into(),
                to: "12025550111".into(),
                tn: None,
                direction: t::Direction::Inbound,
                state: t::CallState::Answered,
                time_zone: None,
            }
        }
        fn state(&mut self) -> t::CallState {
            t::CallState::Answered
        }
        fn answer(&mut self, _: u32) -> Result<(), t::CallError> {
            self.step("answer".into())
        }
        fn hangup(&mut self, _: t::HangupReason) -> Result<(), t::CallError> {
            self.step("hangup".into())
        }
        fn say(&mut self, request: &t::SayRequest) -> Result<(), t::CallError> {
            self.step(format!("say {}", request.text))
        }
        fn play(&mut self, _: &t::PlayRequest) -> Result<(), t::CallError> {
            self.step("play".into())
        }
        fn tone(&mut self, _: &t::ToneRequest) -> Result<(), t::CallError> {
            self.step("tone".into())
        }
        fn pause(&mut self, length_ms: u32) -> Result<(), t::CallError> {
            self.step(format!("pause {length_ms}"))
        }
        fn gather(&mut self, _: &t::GatherRequest) -> Result<t::GatherResult, t::CallError> {
            self.step("gather".into())?;
            Ok(t::GatherResult { digits: String::new(), end: t::GatherEnd::Timeout, attempts: 1 })
        }
        fn record(&mut self, _: &t::RecordRequest) -> Result<t::Recording, t::CallError> {
            Err(t::CallError::Failed("not scripted".into()))
        }
        fn record_start(&mut self, _: &str) -> Result<(), t::CallError> {
            self.step("record-start".into())
        }
        fn record_stop(&mut self) -> Result<Option<t::Recording>, t::CallError> {
            self.step("record-stop".into())?;
            Ok(None)
        }
        fn dial(&mut self, _: &t::DialRequest) -> Result<t::DialResult, t::CallError> {
            Err(t::CallError::Failed("not scripted".into()))
        }
        fn bridge(&mut self, call_id: &str) -> Result<(), t::CallError> {
            self.step(format!("bridge {call_id}"))?;
            self.bridges.pop_front().expect("a scripted bridge outcome")
        }
        fn hold(&mut self, _: u32) -> Result<(), t::CallError> {
            self.step("hold".into())
        }
        fn unhold(&mut self) -> Result<(), t::CallError> {
            self.step("unhold".into())
        }
        fn set_meta(&mut self, name: &str, value: &str) -> Result<(), t::CallError> {
            self.step(format!("meta {name}={value}"))
        }
        fn set_tag(&mut self, tag: Option<&str>) {
            self.tag = tag.map(str::to_owned);
        }
        fn report(&mut self, verb: &str, phase: &str, _: &[(&str, &str)]) {
            self.log.push(format!("report {verb}:{phase}"));
        }
        fn locate(&mut self, _: &str) -> Option<(Option<String>, Option<String>)> {
            None
        }
        fn now(&mut self) -> i64 {
            0
        }
        fn http(
            &mut self,
            _: &str,
            _: &str,
            _: &[(String, String)],
            _: Option<&[u8]>,
            _: u32,
        ) -> Result<(u16, Vec<u8>), String> {
            Err("no HTTP in this test".into())
        }
    }

    /// Run `xml` with the bridges answering `outcomes` in turn; the requests the call saw.
    fn run(xml: &str, outcomes: Vec<Result<(), t::CallError>>) -> Vec<String> {
        let document = opentact_xml::parse(xml).unwrap_or_else(|e| panic!("{xml}\n{e}"));
        let mut host = Scripted { bridges: outcomes.into(), ..Scripted::default() };
        Interpreter::new(&mut host).run(document).expect("the flow ends without a failure");
        assert!(host.bridges.is_empty(), "every scripted bridge ran");
        assert_eq!(host.tag, None, "the verb's tag is cleared after it");
        host.log
    }

    fn with_error_child() -> String {
        format!(
            r#"<Response>
                 <Bridge call="{OTHER_CALL}" tag="agent">
                   <Error><Say>The agent has left.</Say></Error>
                 </Bridge>
                 <Say>After.</Say>
               </Response>"#
        )
    }

    #[test]
    fn bridge_continues_after_the_other_call_hangs_up() {
        let log = run(&with_error_child(), vec![Ok(())]);
        assert_eq!(log, [format!("bridge {OTHER_CALL} [agent]"), "say After.".to_owned()]);
    }

    #[test]
    fn a_bridge_that_cannot_be_made_runs_its_error() {
        let failed = t::CallError::Failed(format!("no live call {OTHER_CALL}"));
        let log = run(&with_error_child(), vec![Err(failed)]);
        assert_eq!(
            log,
            [
                format!("bridge {OTHER_CALL} [agent]"),
                "say The agent has left.".to_owned(),
                "say After.".to_owned()
            ]
        );
        // A sibling <Error> is the same handler.
        let sibling = format!(
            r#"<Response><Bridge call="{OTHER_CALL}"/><Error><Say>Sibling.</Say></Error><Say>After.</Say></Response>"#
        );
        let log = run(&sibling, vec![Err(t::CallError::InvalidState("ringing".into()))]);
        assert_eq!(log, [format!("bridge {OTHER_CALL}"), "say Sibling.".to_owned(), "say After.".to_owned()]);
    }

    #[test]
    fn a_failed_bridge_without_error_goes_on_with_the_next_verb() {
        let xml = format!(r#"<Response><Bridge call="{OTHER_CALL}"/><Say>After.</Say></Response>"#);
        for error in [
            t::CallError::Failed("no live call".into()),
            t::CallError::InvalidArgument("bridge.call: not a call of this account".into()),
            t::CallError::LimitExceeded("channels".into()),
        ] {
            let log = run(&xml, vec![Err(error)]);
            assert_eq!(log, [format!("bridge {OTHER_CALL}"), "say After.".to_owned()]);
        }
    }

    #[test]
    fn the_caller_hanging_up_during_a_bridge_ends_the_flow() {
        let log = run(&with_error_child(), vec![Err(t::CallError::Hangup)]);
        assert_eq!(log, [format!("bridge {OTHER_CALL} [agent]")], "neither <Error> nor the next verb runs");
    }

    #[test]
    fn bridges_run_in_order_inside_conditionals() {
        let xml = format!(
            r#"<Response>
                 <Call field="to" value="12025550111"><Bridge call="first"/></Call>
                 <Bridge call="{OTHER_CALL}"><Error><Say>Second failed.</Say></Error></Bridge>
                 <Hangup/>
                 <Say>Never.</Say>
               </Response>"#
        );
        let log = run(&xml, vec![Ok(()), Err(t::CallError::Failed("gone".into()))]);
        assert_eq!(
            log,
            [
                "bridge first".to_owned(),
                format!("bridge {OTHER_CALL}"),
                "say Second failed.".into(),
                "hangup".into()
            ]
        );
    }
}
