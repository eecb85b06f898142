//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Opentact: phone numbers, SIP, voice and SMS, with call flows as WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "opentact", version, about)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Log filter when OPENTACT_LOG is not set: the server logs its work; the flow tools stay
    /// quiet so their output is the flow's.
    pub fn default_log_filter(&self) -> &'static str {
        match self.command {
            // rsipstack logs every datagram at info: keep it to warnings.
            Command::Serve(_) => "info,rsipstack=warn,sqlx=warn",
            Command::Flow { .. } | Command::Provision(_) | Command::Numbers { .. } => "warn",
        }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the platform.
    Serve(ServeArgs),
    /// Work on a call flow locally: run it against a simulated call, or validate it.
    Flow {
        /// What to do with the flow.
        #[command(subcommand)]
        command: FlowCommand,
    },
    /// Operator tools for the number inventory.
    Numbers {
        /// What to do.
        #[command(subcommand)]
        command: NumbersCommand,
    },
    /// Operator tool: point a number at a hosted XML flow directly in the store (for demos and
    /// load tests; users provision through the REST API). Run it while the server is stopped
    /// or against PostgreSQL.
    Provision(ProvisionArgs),
}

/// The numbers subcommands.
#[derive(Debug, Subcommand)]
pub enum NumbersCommand {
    /// Load numbers into the inventory from a CSV file with the header `tn,state,voice,sms`
    /// (state, voice and sms may be left empty: voice and sms default to true). Nothing is
    /// imported when a line is invalid; every invalid line is reported.
    Import(ImportArgs),
}

/// `opentact numbers import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The CSV file.
    pub file: PathBuf,
    /// The configuration file (its [store] and [server] sections apply).
    #[arg(long, short, env = "OPENTACT_CONFIG")]
    pub config: Option<PathBuf>,
    /// The data directory (overrides `server.data_dir`).
    #[arg(long, env = "OPENTACT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `opentact provision`.
#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// The configuration file (its [store] and [server] sections apply).
    #[arg(long, short, env = "OPENTACT_CONFIG")]
    pub config: Option<PathBuf>,
    /// The data directory (overrides `server.data_dir`).
    #[arg(long, env = "OPENTACT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The number, country code first (added to the inventory if missing).
    #[arg(long)]
    pub tn: i64,
    /// The XML flow the number runs (validated first).
    #[arg(long)]
    pub xml: PathBuf,
    /// The account (created with a random password when missing).
    #[arg(long, default_value = "demo@opentact.local")]
    pub email: String,
}

/// `opentact serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The configuration file (TOML; see opentact.sample.toml). Defaults apply without one.
    #[arg(long, short, env = "OPENTACT_CONFIG")]
    pub config: Option<PathBuf>,
    /// The data directory (overrides `server.data_dir`).
    #[arg(long, env = "OPENTACT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Start, check everything, and exit instead of serving (for scripts and CI).
    #[arg(long)]
    pub check: bool,
    /// SIP listen address (overrides `sip.listen`), e.g. 127.0.0.1:5080.
    #[arg(long)]
    pub sip_listen: Option<std::net::SocketAddr>,
    /// REST API listen address (overrides `api.listen`), e.g. 127.0.0.1:0.
    #[arg(long)]
    pub api_listen: Option<std::net::SocketAddr>,
    /// Write every call event as one JSON line to this file (besides the log).
    #[arg(long)]
    pub event_log: Option<PathBuf>,
}

/// The flow subcommands.
#[derive(Debug, Subcommand)]
pub enum FlowCommand {
    /// Run a flow against a simulated call and print one JSON event per line.
    ///
    /// Exit codes: 0 the flow completed, 1 the flow failed (trap, limit, failed fetch without
    /// <Error>), 2 the flow or the arguments are invalid.
    Run(RunArgs),
    /// Validate a flow without running it: an XML document against the dialect, a .wasm
    /// component against the flow world.
    Check(CheckArgs),
}

/// `opentact flow run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The flow: an XML document (.xml), a component (.wasm), or an http(s) URL of a webhook
    /// that returns the XML (synchronous call control).
    pub flow: String,
    /// The caller: a number (digits, country code first) or a SIP URI.
    #[arg(long, default_value = "12025550100")]
    pub from: String,
    /// The number called.
    #[arg(long, default_value = "12025550111")]
    pub to: String,
    /// Keys the caller presses, in order (0-9 * # A-D); `.` stays silent through one wait.
    #[arg(long, default_value = "")]
    pub digits: String,
    /// What a dialled target does: `<target>=answered|busy|no-answer|failed` (repeatable);
    /// targets not named answer.
    #[arg(long = "dial", value_name = "TARGET=OUTCOME")]
    pub dial: Vec<String>,
    /// The webhook's method when FLOW is a URL.
    #[arg(long, default_value = "POST")]
    pub method: String,
    /// The current time the flow sees (RFC 3339, e.g. 2026-11-24T10:00:00Z), for schedules.
    #[arg(long)]
    pub at: Option<String>,
    /// The account time zone (IANA name), used by schedules without `tz`.
    #[arg(long)]
    pub tz: Option<String>,
    /// Do not answer implicitly before the first media verb.
    #[arg(long)]
    pub no_auto_answer: bool,
    /// Allow the flow's HTTP requests to loopback and private addresses (local webhooks).
    #[arg(long)]
    pub allow_private_http: bool,
    /// Run on the wall clock (pauses and timeouts really wait) instead of virtual time.
    #[arg(long)]
    pub realtime: bool,
    /// The configuration file (its [flows] limits apply).
    #[arg(long, short, env = "OPENTACT_CONFIG")]
    pub config: Option<PathBuf>,
}

/// `opentact flow check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The flow: an XML document or a .wasm component.
    pub flow: PathBuf,
    /// The configuration file (its [flows] limits apply to components).
    #[arg(long, short, env = "OPENTACT_CONFIG")]
    pub config: Option<PathBuf>,
}
