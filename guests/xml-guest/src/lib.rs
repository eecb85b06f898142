//! The built-in XML guest: executes Opentact Call Flow XML documents through the
//! `opentact:flow` imports, so hosted XML, webhooks and asynchronous REST commands all run on the
//! same verb executor as customer components.
//!
//! The platform calls `xml-handler.handle-call` (the SDK's `xml-flow` bindings) with the app's
//! mode, which decides where the document comes from: hosted (`xml`), fetched per call from
//! the app's webhook (`webhook`, the call object sent as the spec's synchronous webhook request),
//! or fed as `<Response>` fragments by REST commands (`async-commands`, with a 30 s park
//! timeout). The interpreter's decisions are documented in [`interpreter`].

// The only unsafe code is what the SDK's export macro generates for the component ABI.
#![allow(unsafe_code)]

pub mod interpreter;
pub mod params;
pub mod schedule;

#[cfg(target_arch = "wasm32")]
mod http;

/// The WIT bindings of the XML guest's world (`xml-flow`), owned by the SDK.
mod wit {
    pub use opentact_sdk::xml_bindings::*;

    pub use opentact_sdk::xml_bindings::opentact::flow::types;
}

use interpreter::{Host, Interpreter};
use opentact_xml::ast::Method;
use wit::opentact::flow::{app_control, call, flow_events, numbers};
use wit::types as t;

/// How long an asynchronous call waits for its next command, ms (the park timeout).
pub const PARK_TIMEOUT_MS: u32 = 30_000;

/// The imports, as the interpreter's host.
struct Imports {
    /// The call as `handle-call` received it: its fields do not change during the call, so
    /// the interpreter reads them from here instead of crossing into the host (`call::info`)
    /// at every flow start.
    call: t::CallInfo,
}

impl Host for Imports {
    fn info(&mut self) -> t::CallInfo {
        self.call.clone()
    }
    fn state(&mut self) -> t::CallState {
        call::state()
    }
    fn answer(&mut self, delay_ms: u32) -> Result<(), t::CallError> {
        call::answer(delay_ms)
    }
    fn hangup(&mut self, reason: t::HangupReason) -> Result<(), t::CallError> {
        call::hangup(reason)
    }
    fn say(&mut self, request: &t::SayRequest) -> Result<(), t::CallError> {
        call::say(request)
    }
    fn play(&mut self, request: &t::PlayRequest) -> Result<(), t::CallError> {
        call::play(request)
    }
    fn tone(&mut self, request: &t::ToneRequest) -> Result<(), t::CallError> {
        call::tone(request)
    }
    fn pause(&mut self, length_ms: u32) -> Result<(), t::CallError> {
        call::pause(length_ms)
    }
    fn gather(&mut self, request: &t::GatherRequest) -> Result<t::GatherResult, t::CallError> {
        call::gather(request)
    }
    fn record(&mut self, request: &t::RecordRequest) -> Result<t::Recording, t::CallError> {
        call::record(request)
    }
    fn record_start(&mut self, name: &str) -> Result<(), t::CallError> {
        call::record_start(name)
    }
    fn record_stop(&mut self) -> Result<Option<t::Recording>, t::CallError> {
        call::record_stop()
    }
    fn dial(&mut self, request: &t::DialRequest) -> Result<t::DialResult, t::CallError> {
        call::dial(request)
    }
    fn bridge(&mut self, call_id: &str) -> Result<(), t::CallError> {
        call::bridge(call_id)
    }
    fn hold(&mut self, timeout_ms: u32) -> Result<(), t::CallError> {
        call::hold(timeout_ms)
    }
    fn unhold(&mut self) -> Result<(), t::CallError> {
        call::unhold()
    }
    fn set_meta(&mut self, name: &str, value: &str) -> Result<(), t::CallError> {
        call::set_meta(name, value)
    }
    fn set_tag(&mut self, tag: Option<&str>) {
        flow_events::set_tag(tag);
    }
    fn report(&mut self, verb: &str, phase: &str, detail: &[(&str, &str)]) {
        let phase = match phase {
            "started" => flow_events::Phase::Started,
            "finished" => flow_events::Phase::Finished,
            _ => flow_events::Phase::Failed,
        };
        let detail: Vec<(String, String)> =
            detail.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        flow_events::report(verb, phase, &detail);
    }
    fn locate(&mut self, number: &str) -> Option<(Option<String>, Option<String>)> {
        numbers::lookup(number).map(|l| (l.state, l.county))
    }
    fn now(&mut self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
    #[cfg(target_arch = "wasm32")]
    fn http(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<&[u8]>,
        timeout_ms: u32,
    ) -> Result<(u16, Vec<u8>), String> {
        http::send(method, url, headers, body, timeout_ms).map(|r| (r.status, r.body))
    }
    #[cfg(not(target_arch = "wasm32"))]
    fn http(
        &mut self,
        _: &str,
        _: &str,
        _: &[(String, String)],
        _: Option<&[u8]>,
        _: u32,
    ) -> Result<(u16, Vec<u8>), String> {
        Err("HTTP is only available inside the wasm32-wasip2 guest".to_owned())
    }
}

fn method(m: app_control::HttpMethod) -> Method {
    match m {
        app_control::HttpMethod::Get => Method::Get,
        app_control::HttpMethod::Post => Method::Post,
        app_control::HttpMethod::Patch => Method::Patch,
        app_control::HttpMethod::Delete => Method::Delete,
    }
}

/// Run the call in whichever mode its app has.
fn handle_call<H: Host>(host: &mut H, mode: app_control::ControlMode) -> Result<(), String> {
    match mode {
        app_control::ControlMode::Xml(text) => {
            let document =
                opentact_xml::parse(&text).map_err(|e| format!("the app's document is invalid: {e}"))?;
            Interpreter::new(host).run(document)
        }
        app_control::ControlMode::Webhook(webhook) => {
            let mut interpreter = Interpreter::new(host);
            let object = interpreter::webhook_object(&mut interpreter);
            let method = method(webhook.method);
            let body = (method != Method::Get).then(|| object.json());
            match interpreter.fetch_document(method, &webhook.url, &object, body, webhook.timeout_ms) {
                Ok(document) => {
                    drop(interpreter);
                    host.report("webhook", "finished", &[("url", &webhook.url)]);
                    Interpreter::new(host).run(document)
                }
                Err(error) => {
                    drop(interpreter);
                    host.report("webhook", "failed", &[("url", &webhook.url), ("error", &error)]);
                    Err(error)
                }
            }
        }
        app_control::ControlMode::AsyncCommands => loop {
            let command = match app_control::next_command(PARK_TIMEOUT_MS) {
                Ok(Some(command)) => command,
                Ok(None) => {
                    let reason =
                        format!("no call-control command within {PARK_TIMEOUT_MS} ms (park timeout)");
                    host.report("park", "failed", &[("error", &reason)]);
                    return Err(reason);
                }
                Err(t::CallError::Hangup) => return Ok(()),
                Err(error) => return Err(format!("waiting for a command failed: {error:?}")),
            };
            let document = match opentact_xml::parse(&command) {
                Ok(document) => document,
                Err(errors) => {
                    host.report("command", "failed", &[("error", &errors.to_string())]);
                    continue;
                }
            };
            Interpreter::new(host).run(document)?;
            if matches!(host.state(), t::CallState::Ended) {
                return Ok(());
            }
        },
        app_control::ControlMode::Component => {
            Err("the app runs a component, not XML: the built-in XML guest has nothing to run".to_owned())
        }
    }
}

struct XmlGuest;

impl wit::exports::opentact::flow::xml_handler::Guest for XmlGuest {
    fn handle_call(call: t::CallInfo, mode: app_control::ControlMode) -> Result<(), String> {
        handle_call(&mut Imports { call }, mode)
    }
}

// Exported only in the component: a native build (tests, clippy) has no component ABI, and
// its linker rejects the ABI's symbol names.
#[cfg(target_arch = "wasm32")]
opentact_sdk::xml_bindings::export_xml_flow!(XmlGuest with_types_in opentact_sdk::xml_bindings);

// On the host, naming the entry point keeps the guest's code used (no dead-code warning).
#[cfg(not(target_arch = "wasm32"))]
const _: fn(t::CallInfo, app_control::ControlMode) -> Result<(), String> =
    <XmlGuest as wit::exports::opentact::flow::xml_handler::Guest>::handle_call;
