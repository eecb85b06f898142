//! `opentact`: the platform server (`serve`) and the flow author's tools (`flow run`,
//! `flow check`). Only this binary wires concrete types together.

mod admin;
mod cli;
mod client;
mod config;
mod flow_cmd;
mod messaging;
mod metrics;
mod numbers_import;
mod provision;
mod sample;
mod serve;
mod shaken;
mod sms_flows;
mod sms_inbound;
mod telecom;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::cli::{Cli, Command, FlowCommand, NumbersCommand};

fn main() -> ExitCode {
    // wasmtime builds an error value whenever a flow's store is disposed of; with library
    // backtraces on (RUST_BACKTRACE=1 turns them on unless RUST_LIB_BACKTRACE says otherwise)
    // each one captures a backtrace — about 10 µs per call. Panics keep their backtraces.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: no other thread exists yet (the runtime is built below), so nothing reads
        // the environment concurrently.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("RUST_LIB_BACKTRACE", "0");
        }
    }
    // Everything the platform writes (the database, keys, recordings, caches) is the operator's
    // alone: files 0600, directories 0700, whatever the umask of the shell that started it.
    restrict_new_files();
    let cli = Cli::parse();
    // Spans to an OpenTelemetry collector when the environment names one (telemetry.rs).
    let telemetry = match telemetry::Telemetry::from_env() {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("error: OpenTelemetry export: {error:#}");
            return ExitCode::from(1);
        }
    };
    // Logs go to stderr: stdout of `flow run` is the event stream, one JSON object per line.
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never in log files or journald.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_env("OPENTACT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(cli.default_log_filter())),
        );
    tracing_subscriber::registry()
        .with(logs)
        .with(telemetry.as_ref().map(|telemetry| telemetry.layer()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Flow { command: FlowCommand::Run(args) } => flow_cmd::run(args).await,
            Command::Flow { command: FlowCommand::Check(args) } => flow_cmd::check(args).await,
            Command::Provision(args) => provision::run(args).await,
            Command::Numbers { command: NumbersCommand::Import(args) } => numbers_import::run(args).await,
            Command::Api(args) => client::run(args).await,
            Command::Admin { command } => admin::run(command).await,
        }
    });
    // The runtime first (the exporter's blocking client must not be dropped inside it), then
    // the spans still batched.
    drop(runtime);
    if let Some(telemetry) = telemetry {
        telemetry.shutdown();
    }
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(flow_cmd::EXIT_INVALID_INPUT)
        }
    }
}

/// Sets the process umask to 077, before any thread exists.
fn restrict_new_files() {
    #[cfg(unix)]
    // SAFETY: umask has no memory-safety preconditions; it is called before the runtime starts
    // any thread, so no file is being created concurrently with a different mask.
    #[allow(unsafe_code)]
    unsafe {
        libc::umask(0o077);
    }
}
