//! `opentact flow run` and `opentact flow check`: the flow author's inner loop.
//!
//! `run` puts the flow on a [`SimulatedCall`] — scripted digits and dial outcomes, virtual time —
//! through the same flow host and verb executor as a real call, and prints every call event as
//! one JSON object per line on stdout.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use opentact_call::events::JsonLinesSink;
use opentact_call::model::{CallInfo, Direction};
use opentact_call::simulated::{DialBehaviour, SimulatedCall, SimulatedCallConfig, parse_digits};
use opentact_call::{CallSession, FlowOutcome, SessionConfig};
use opentact_flows::{CallContext, ControlMode, FlowComponent, FlowHost, HttpMethod};

use crate::cli::{CheckArgs, RunArgs};
use crate::config::Config;
use opentact_calls::NumberData;

/// Exit code of a flow that failed (trap, limit, unhandled fetch failure).
pub const EXIT_FLOW_FAILED: u8 = 1;
/// Exit code of an invalid flow or invalid arguments.
pub const EXIT_INVALID_INPUT: u8 = 2;

/// What kind of flow a path or URL names.
enum FlowSource {
    Xml(String),
    Wasm(Vec<u8>),
    Webhook(String),
}

fn read_flow(flow: &str) -> anyhow::Result<FlowSource> {
    if flow.starts_with("http://") || flow.starts_with("https://") {
        return Ok(FlowSource::Webhook(flow.to_owned()));
    }
    let path = Path::new(flow);
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.starts_with(b"\0asm") {
        return Ok(FlowSource::Wasm(bytes));
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(FlowSource::Xml(text)),
        Err(_) => bail!("{} is neither a WebAssembly component nor a UTF-8 XML document", path.display()),
    }
}

/// Validate an XML document, printing `file:line:column: message` for each problem.
fn validate_xml(name: &str, text: &str) -> bool {
    match opentact_xml::parse(text) {
        Ok(_) => true,
        Err(errors) => {
            for error in errors.errors() {
                eprintln!("{name}:{}:{}: {}", error.line, error.column, error.message);
            }
            false
        }
    }
}

fn host(config: &Config, allow_private_http: bool) -> anyhow::Result<FlowHost> {
    let mut flows = config.flows.clone();
    if allow_private_http {
        flows.http.allow_private = true;
    }
    let host = FlowHost::new(flows).context("starting the flow host")?;
    host.set_sms_sender(Arc::new(SimulatedSms));
    Ok(host)
}

/// The runner's messaging: `send-sms` is accepted with a fresh message id and sends nothing
/// (the call's `sms` events show it).
struct SimulatedSms;

impl opentact_flows::SmsSender for SimulatedSms {
    fn send(
        &self,
        _sms: opentact_flows::OutboundSms,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<String, opentact_flows::SmsSendError>> + Send + '_>,
    > {
        Box::pin(async { Ok(uuid::Uuid::new_v4().to_string()) })
    }
}

fn load(host: &FlowHost, name: &str, bytes: &[u8]) -> anyhow::Result<FlowComponent> {
    host.load_component(bytes).with_context(|| format!("{name} cannot be used as a flow"))
}

fn parse_dial(specs: &[String]) -> anyhow::Result<HashMap<String, DialBehaviour>> {
    specs
        .iter()
        .map(|spec| {
            let (target, outcome) =
                spec.rsplit_once('=').with_context(|| format!("--dial {spec:?}: expected TARGET=OUTCOME"))?;
            let outcome = outcome.parse().map_err(|e: String| anyhow::anyhow!("--dial {spec:?}: {e}"))?;
            Ok((target.to_owned(), outcome))
        })
        .collect()
}

fn parse_method(method: &str) -> anyhow::Result<HttpMethod> {
    Ok(match method.to_ascii_uppercase().as_str() {
        "GET" => HttpMethod::Get,
        "POST" => HttpMethod::Post,
        "PATCH" => HttpMethod::Patch,
        "DELETE" => HttpMethod::Delete,
        other => bail!("--method {other:?}: use GET, POST, PATCH or DELETE"),
    })
}

/// `opentact flow run`.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    let digits = parse_digits(&args.digits).map_err(|e| anyhow::anyhow!("--digits: {e}"))?;
    let dial = parse_dial(&args.dial)?;
    let wall_clock = match &args.at {
        Some(at) => Some(
            chrono::DateTime::parse_from_rfc3339(at)
                .with_context(|| format!("--at {at:?}: expected RFC 3339, e.g. 2026-11-24T10:00:00Z"))?
                .to_utc(),
        ),
        None => None,
    };
    let source = read_flow(&args.flow)?;
    let host = host(&config, args.allow_private_http)?;
    let (component, mode) = match source {
        FlowSource::Xml(text) => {
            if !validate_xml(&args.flow, &text) {
                return Ok(ExitCode::from(EXIT_INVALID_INPUT));
            }
            (
                host.load_xml_guest(opentact_guest_artifacts::XML_GUEST)
                    .context("loading the built-in XML guest")?,
                ControlMode::Xml(text),
            )
        }
        FlowSource::Wasm(bytes) => (load(&host, &args.flow, &bytes)?, ControlMode::Component),
        FlowSource::Webhook(url) => {
            let method = parse_method(&args.method)?;
            let webhook = ControlMode::Webhook { url, method, timeout_ms: config.flows.http.timeout_ms };
            (
                host.load_xml_guest(opentact_guest_artifacts::XML_GUEST)
                    .context("loading the built-in XML guest")?,
                webhook,
            )
        }
    };

    let tn = args.to.parse::<u64>().ok();
    let call = SimulatedCall::new(SimulatedCallConfig {
        info: CallInfo {
            id: uuid::Uuid::new_v4().to_string(),
            account: "00000000-0000-0000-0000-000000000001".to_owned(),
            app: "00000000-0000-0000-0000-000000000002".to_owned(),
            from: args.from,
            to: args.to,
            tn,
            direction: Direction::Inbound,
            time_zone: args.tz,
        },
        digits,
        dial,
        realtime: args.realtime,
    });
    let sink = Arc::new(JsonLinesSink::new(std::io::stdout()));
    let session =
        Arc::new(CallSession::new(Arc::new(call), sink, SessionConfig { auto_answer: !args.no_auto_answer }));
    let context =
        CallContext::new(session, mode).with_numbers(Arc::new(NumberData)).with_wall_clock(wall_clock);
    match host.run_call(&component, context).await {
        FlowOutcome::Completed => Ok(ExitCode::SUCCESS),
        FlowOutcome::Failed(_) | FlowOutcome::TimedOut | FlowOutcome::AtCapacity(_) => {
            Ok(ExitCode::from(EXIT_FLOW_FAILED))
        }
    }
}

/// `opentact flow check`.
pub async fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref())?;
    let name = args.flow.display().to_string();
    match read_flow(&name)? {
        FlowSource::Xml(text) => {
            if !validate_xml(&name, &text) {
                return Ok(ExitCode::from(EXIT_INVALID_INPUT));
            }
            println!("{name}: valid Opentact XML");
        }
        FlowSource::Wasm(bytes) => {
            let host = host(&config, false)?;
            if let Err(error) = load(&host, &name, &bytes) {
                eprintln!("{name}: {error:#}");
                return Ok(ExitCode::from(EXIT_INVALID_INPUT));
            }
            println!("{name}: valid flow component");
        }
        FlowSource::Webhook(_) => bail!("flow check takes a file; to try a webhook, use flow run <url>"),
    }
    Ok(ExitCode::SUCCESS)
}
