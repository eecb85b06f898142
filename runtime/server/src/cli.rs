//! Command-line arguments.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

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
            Command::Flow { .. }
            | Command::Provision(_)
            | Command::Numbers { .. }
            | Command::Api(_)
            | Command::Admin { .. } => "warn",
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
    /// A client of a running platform's REST API: log in, find and order numbers, create and
    /// deploy apps, or send any request.
    ///
    /// Exit codes: 0 done, 1 the API refused the request or could not be reached (or an
    /// ordered number was not leased), 2 the arguments are invalid.
    Api(ApiArgs),
    /// Operator tools that work on the store directly (run them on the server's machine, with
    /// its configuration): reviews of what accounts registered.
    Admin {
        /// What to do.
        #[command(subcommand)]
        command: AdminCommand,
    },
}

/// The admin subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// 10DLC campaigns: list them for review, approve or reject them. A US long code sends SMS
    /// only in an approved campaign.
    #[command(name = "10dlc")]
    TenDlc {
        /// What to do.
        #[command(subcommand)]
        command: AdminTenDlcCommand,
    },
    /// Accounts: create one (sign-up by the operator), credit its balance.
    Account {
        /// What to do.
        #[command(subcommand)]
        command: AdminAccountCommand,
    },
    /// Telecom data: import the NPA-NXX data every node reads.
    Telecom {
        /// What to do.
        #[command(subcommand)]
        command: AdminTelecomCommand,
    },
}

/// `opentact admin telecom …`.
#[derive(Debug, Subcommand)]
pub enum AdminTelecomCommand {
    /// Put a CSV file's NPA-NXX rows (`npa,nxx,block,state,county,rate_center,time_zone,
    /// line_type,carrier,ocn`) in place of the stored ones; prints how many. Running nodes load
    /// them within `[telecom] refresh_secs`. A bad line is named and nothing changes.
    Import(AdminTelecomImportArgs),
}

/// `opentact admin telecom import`.
#[derive(Debug, Args)]
pub struct AdminTelecomImportArgs {
    /// The CSV file.
    pub file: PathBuf,
    /// Where the store is.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `opentact admin account …`.
#[derive(Debug, Subcommand)]
pub enum AdminAccountCommand {
    /// Create an account; prints its uuid and e-mail. Its owner signs in with the e-mail and
    /// password (`POST /rest/auth`) and makes API tokens.
    Create(AdminAccountCreateArgs),
    /// Add money to an account's balance (a negative amount corrects one); prints the new
    /// balance. Rated calls and messages are charged against it (`[rating] deck`).
    Credit(AdminAccountCreditArgs),
}

/// `opentact admin account create`.
#[derive(Debug, Args)]
pub struct AdminAccountCreateArgs {
    /// The login e-mail (unique).
    #[arg(long)]
    pub email: String,
    /// The account's name.
    #[arg(long)]
    pub name: String,
    /// The password (at least 8 characters), or set OPENTACT_NEW_PASSWORD.
    #[arg(long, env = "OPENTACT_NEW_PASSWORD", hide_env_values = true)]
    pub password: String,
    /// IANA time zone.
    #[arg(long, default_value = "UTC")]
    pub time_zone: String,
    /// Where the store is.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `opentact admin account credit`.
#[derive(Debug, Args)]
pub struct AdminAccountCreditArgs {
    /// The account's e-mail or uuid.
    pub account: String,
    /// The amount, in the platform's currency, such as 25 or 10.50 (at most six decimals; a
    /// leading `-` takes money off).
    #[arg(long, allow_hyphen_values = true)]
    pub amount: String,
    /// What the account reads in its ledger (a payment's reference).
    #[arg(long, default_value = "credit by the operator")]
    pub note: String,
    /// Where the store is.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Where the store is, for the admin commands.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The configuration file (its [store] and [server] sections apply).
    #[arg(long, short, env = "OPENTACT_CONFIG")]
    pub config: Option<PathBuf>,
    /// The data directory (overrides `server.data_dir`).
    #[arg(long, env = "OPENTACT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `opentact admin 10dlc …`.
#[derive(Debug, Subcommand)]
pub enum AdminTenDlcCommand {
    /// Campaigns of every account, oldest first; one per line: uuid, state, account, use case,
    /// numbers, description.
    List(AdminCampaignListArgs),
    /// Approve a campaign: its numbers may send application-to-person SMS.
    Approve(AdminCampaignArgs),
    /// Reject a campaign with the reason the account sees.
    Reject(AdminRejectArgs),
}

/// A campaign's review state, for `opentact admin 10dlc list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CampaignStateArg {
    Pending,
    Approved,
    Rejected,
}

/// `opentact admin 10dlc list`.
#[derive(Debug, Args)]
pub struct AdminCampaignListArgs {
    /// Only campaigns in this state.
    #[arg(long)]
    pub state: Option<CampaignStateArg>,
    /// Where the store is.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `opentact admin 10dlc approve`.
#[derive(Debug, Args)]
pub struct AdminCampaignArgs {
    /// The campaign's uuid.
    pub campaign: uuid::Uuid,
    /// Where the store is.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `opentact admin 10dlc reject`.
#[derive(Debug, Args)]
pub struct AdminRejectArgs {
    /// The campaign's uuid.
    pub campaign: uuid::Uuid,
    /// Why, as the account will read it (what to correct).
    #[arg(long)]
    pub reason: String,
    /// Where the store is.
    #[command(flatten)]
    pub store: StoreArgs,
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

/// `opentact api`: where the API is, who is asking, and what to do.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// Where the API is and how to authenticate.
    #[command(flatten)]
    pub connection: ApiConnection,
    /// The request.
    #[command(subcommand)]
    pub command: ApiCommand,
}

/// Where the subcommands' own flags end and these start in `--help`.
const CONNECTION_ARGS: usize = 100;

/// Where the API is and who is asking. The global flags may also follow the subcommand.
#[derive(Debug, Args)]
pub struct ApiConnection {
    /// The API's base URL: the server's `api.listen` (the scheme may be left out).
    #[arg(
        long = "api",
        env = "OPENTACT_API",
        default_value = "http://127.0.0.1:8080",
        global = true,
        display_order = CONNECTION_ARGS
    )]
    pub base_url: String,
    /// A JWT (from `opentact api login`) or an API token, sent as `Authorization: Bearer`.
    /// Takes precedence over --email and --password, except for `login`.
    #[arg(long, env = "OPENTACT_TOKEN", hide_env_values = true, global = true, display_order = CONNECTION_ARGS)]
    pub token: Option<String>,
    /// The account's email, sent with --password as `Authorization: Basic`. Given before the
    /// subcommand (`opentact api --email E --password P numbers search`), because
    /// `sip users create --password` is the SIP user's.
    #[arg(long, env = "OPENTACT_EMAIL", display_order = CONNECTION_ARGS)]
    pub email: Option<String>,
    /// The account's password.
    #[arg(long, env = "OPENTACT_PASSWORD", hide_env_values = true, display_order = CONNECTION_ARGS)]
    pub password: Option<String>,
    /// Print the response's payload as JSON instead of the summary (`get`, `post`, `patch`
    /// and `delete` always print the whole response).
    #[arg(long, global = true, display_order = CONNECTION_ARGS)]
    pub json: bool,
    /// How long one request may take (connection, request and response), seconds.
    #[arg(
        long,
        default_value_t = 30,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..),
        global = true,
        display_order = CONNECTION_ARGS
    )]
    pub timeout: u64,
}

/// The `opentact api` subcommands.
#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Exchange an email and password for a JWT and print it (export it as OPENTACT_TOKEN).
    Login(LoginArgs),
    /// Find and order phone numbers.
    Numbers {
        /// What to do.
        #[command(subcommand)]
        command: ApiNumbersCommand,
    },
    /// SIP Control Apps: what runs a call.
    Apps {
        /// What to do.
        #[command(subcommand)]
        command: ApiAppsCommand,
    },
    /// SIP domains and their users.
    Sip {
        /// What to do.
        #[command(subcommand)]
        command: ApiSipCommand,
    },
    /// Bulk calls: one flow called out to a list of numbers, and their progress.
    Batch {
        /// What to do.
        #[command(subcommand)]
        command: ApiBatchCommand,
    },
    /// Send SMS and search the SMS log.
    Sms {
        /// What to do.
        #[command(subcommand)]
        command: ApiSmsCommand,
    },
    /// 10DLC campaigns: list them, and assign numbers to them (register brands and campaigns
    /// with `opentact api post /rest/10dlc/brand @brand.json`).
    #[command(name = "10dlc")]
    TenDlc {
        /// What to do.
        #[command(subcommand)]
        command: ApiTenDlcCommand,
    },
    /// GET any path (`/rest/lease/tn?take=5`) and print the response.
    Get(RawArgs),
    /// DELETE any path and print the response.
    Delete(RawArgs),
    /// POST a JSON body to any path and print the response.
    Post(RawBodyArgs),
    /// PATCH any path with a JSON body and print the response.
    Patch(RawBodyArgs),
}

/// `opentact api login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The account's email (or `opentact api --email`, OPENTACT_EMAIL).
    #[arg(long)]
    pub email: Option<String>,
    /// The account's password (or `opentact api --password`, OPENTACT_PASSWORD).
    #[arg(long)]
    pub password: Option<String>,
}

/// `opentact api numbers …`.
#[derive(Debug, Subcommand)]
pub enum ApiNumbersCommand {
    /// Search the available numbers; prints one per line: number, state, features.
    Search(NumberSearchArgs),
    /// Order (lease) numbers; prints each number's outcome. Exits 1 if any was not leased.
    Order(NumberOrderArgs),
}

/// A number feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Feature {
    /// Calls.
    Voice,
    /// Text messages.
    Sms,
}

impl Feature {
    /// The API's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::Voice => "voice",
            Feature::Sms => "sms",
        }
    }
}

/// `opentact api numbers search`.
#[derive(Debug, Args)]
pub struct NumberSearchArgs {
    /// Ten characters, each a digit or `*`: `202*******`, `*******917`.
    #[arg(long)]
    pub pattern: Option<String>,
    /// Two-letter state or region code (DC, NY).
    #[arg(long)]
    pub state: Option<String>,
    /// Area code.
    #[arg(long)]
    pub npa: Option<i32>,
    /// Only numbers with all of these features (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub features: Vec<Feature>,
    /// How many numbers to show (the API's default when not given).
    #[arg(long)]
    pub take: Option<u32>,
    /// How many matches to skip first (paging).
    #[arg(long)]
    pub skip: Option<u32>,
}

/// `opentact api numbers order`.
#[derive(Debug, Args)]
pub struct NumberOrderArgs {
    /// The numbers, country code first (`12025550160`; a leading + is allowed).
    #[arg(required = true, value_name = "TN", value_parser = parse_tn)]
    pub tns: Vec<i64>,
    /// The features to enable on every number (comma-separated); all it has when not given.
    #[arg(long, value_delimiter = ',')]
    pub features: Vec<Feature>,
}

/// A telephone number as digits, country code first; the API checks its length.
fn parse_tn(text: &str) -> Result<i64, String> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a number: digits with the country code, e.g. 12025550160"));
    }
    digits.parse().map_err(|_| format!("{text:?} is too long for a telephone number"))
}

/// `opentact api apps …`.
#[derive(Debug, Subcommand)]
pub enum ApiAppsCommand {
    /// Create an app and print its uuid.
    Create(AppCreateArgs),
    /// Upload a Wasm component to an app (it runs the next call) and print its version.
    Deploy(AppDeployArgs),
}

/// `opentact api apps create`: a name and exactly one mode.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("mode").required(true).args(["xml_file", "webhook_url", "control_async", "component"])))]
pub struct AppCreateArgs {
    /// The app's name.
    #[arg(long)]
    pub name: String,
    /// Run this hosted XML document (validated by the server).
    #[arg(long)]
    pub xml_file: Option<PathBuf>,
    /// Fetch the XML from this webhook on every call.
    #[arg(long)]
    pub webhook_url: Option<String>,
    /// The webhook's method (GET or POST; the API's default is POST).
    #[arg(long, requires = "webhook_url")]
    pub webhook_method: Option<String>,
    /// Park calls and wait for commands (`POST /rest/call/{uuid}/command`).
    #[arg(long = "async")]
    pub control_async: bool,
    /// Run a Wasm component, uploaded afterwards with `opentact api apps deploy`.
    #[arg(long)]
    pub component: bool,
}

/// `opentact api apps deploy`.
#[derive(Debug, Args)]
pub struct AppDeployArgs {
    /// The app's uuid.
    pub app: uuid::Uuid,
    /// The component (.wasm, built for wasm32-wasip2).
    pub file: PathBuf,
}

/// `opentact api sip …`.
#[derive(Debug, Subcommand)]
pub enum ApiSipCommand {
    /// The users of a SIP domain.
    Users {
        /// What to do.
        #[command(subcommand)]
        command: ApiSipUsersCommand,
    },
}

/// `opentact api sip users …`.
#[derive(Debug, Subcommand)]
pub enum ApiSipUsersCommand {
    /// Create a SIP user (a phone that registers) and print its uuid.
    Create(SipUserCreateArgs),
}

/// `opentact api sip users create`.
#[derive(Debug, Args)]
pub struct SipUserCreateArgs {
    /// The domain: its uuid or its name.
    #[arg(long)]
    pub domain: String,
    /// The user's login (the user part of its SIP address).
    #[arg(long)]
    pub login: String,
    /// The user's SIP password (digest authentication), not the account's.
    #[arg(long)]
    pub password: String,
}

/// `opentact api batch …`.
#[derive(Debug, Subcommand)]
pub enum ApiBatchCommand {
    /// Call a list of numbers from a leased number, each answered call running one flow; prints
    /// the batch's uuid (with --watch, then its progress until it ends).
    Create(BatchCreateArgs),
    /// Show a batch's progress (on stderr) until it is completed or cancelled, then print its
    /// final counts.
    Watch(BatchWatchArgs),
}

/// `opentact api batch create`: a lease, exactly one flow and the numbers.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("flow").required(true).args(["xml_file", "app"])))]
#[command(group(ArgGroup::new("numbers").required(true).args(["phones_file", "phones"])))]
pub struct BatchCreateArgs {
    /// The lease (its uuid) whose number the calls come from; it must have voice.
    #[arg(long)]
    pub lease: uuid::Uuid,
    /// The outbound voice profile (its uuid) whose limits pace the calls.
    #[arg(long)]
    pub profile: Option<uuid::Uuid>,
    /// The XML document each answered call runs (validated by the server).
    #[arg(long)]
    pub xml_file: Option<PathBuf>,
    /// The app (its uuid) each answered call runs.
    #[arg(long)]
    pub app: Option<uuid::Uuid>,
    /// A file of numbers to call, one per line, country code first; blank lines and lines
    /// starting with # are skipped.
    #[arg(long)]
    pub phones_file: Option<PathBuf>,
    /// A number to call, country code first (repeatable).
    #[arg(long = "phone", value_name = "TN")]
    pub phones: Vec<String>,
    /// How long each call rings before it counts as not answered, seconds (5 to 120; the
    /// server's default is 30). Not --timeout: that one bounds each request to the API.
    #[arg(long, value_name = "SECONDS")]
    pub ring_timeout: Option<u32>,
    /// Then show the batch's progress until it ends, like `opentact api batch watch`.
    #[arg(long)]
    pub watch: bool,
}

/// `opentact api batch watch`.
#[derive(Debug, Args)]
pub struct BatchWatchArgs {
    /// The batch's uuid.
    pub batch: uuid::Uuid,
}

/// `opentact api sms …`.
#[derive(Debug, Subcommand)]
pub enum ApiSmsCommand {
    /// Send an SMS from one of the account's numbers; prints the message's uuid, state and parts.
    Send(SmsSendArgs),
    /// Search the SMS log; prints one message per line: uuid, created, type, state, from, to,
    /// text.
    Search(SmsSearchArgs),
}

/// `opentact api sms send`.
#[derive(Debug, Args)]
pub struct SmsSendArgs {
    /// The account's number it is sent from (SMS enabled on its lease), country code first.
    #[arg(long, value_parser = parse_tn)]
    pub tn: i64,
    /// The handset, country code first (a leading + is allowed).
    #[arg(long)]
    pub to: String,
    /// The text, 1 to 918 characters.
    #[arg(long)]
    pub message: String,
    /// Where this message's status events are also delivered.
    #[arg(long)]
    pub callback_url: Option<String>,
}

/// A message's direction, for `opentact api sms search`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SmsDirectionArg {
    /// Outbound.
    Smso,
    /// Inbound.
    Smsr,
}

/// A message's state, for `opentact api sms search`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SmsStateArg {
    Created,
    Queued,
    Sent,
    Delivered,
    Undelivered,
    Failed,
    Received,
}

/// `opentact api sms search`: every filter optional.
#[derive(Debug, Args)]
pub struct SmsSearchArgs {
    /// Only outbound (smso) or inbound (smsr) messages.
    #[arg(long = "type", value_name = "TYPE")]
    pub direction: Option<SmsDirectionArg>,
    /// Only messages in this state.
    #[arg(long)]
    pub state: Option<SmsStateArg>,
    /// The sender, exactly (digits, country code first).
    #[arg(long)]
    pub from: Option<String>,
    /// The recipient, exactly (digits, country code first).
    #[arg(long)]
    pub to: Option<String>,
    /// Messages created at or after this time (RFC 3339, e.g. 2026-12-01T00:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Messages created before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Newest first.
    #[arg(long)]
    pub newest_first: bool,
    /// How many messages to show (the API's default when not given).
    #[arg(long)]
    pub take: Option<u32>,
    /// How many matches to skip first (paging).
    #[arg(long)]
    pub skip: Option<u32>,
}

/// `opentact api 10dlc …`.
#[derive(Debug, Subcommand)]
pub enum ApiTenDlcCommand {
    /// The account's campaigns; one per line: uuid, state, use case, numbers (and the reason of
    /// a rejected one).
    Campaigns,
    /// Assign numbers (leased by the account) to a campaign; prints the campaign's numbers.
    Assign(TenDlcNumbersArgs),
    /// Take numbers out of a campaign; prints the campaign's numbers.
    Remove(TenDlcNumbersArgs),
}

/// `opentact api 10dlc assign|remove`.
#[derive(Debug, Args)]
pub struct TenDlcNumbersArgs {
    /// The campaign's uuid.
    pub campaign: uuid::Uuid,
    /// The numbers, country code first.
    #[arg(required = true, value_name = "TN", value_parser = parse_tn)]
    pub tns: Vec<i64>,
}

/// `opentact api get|delete <path>`.
#[derive(Debug, Args)]
pub struct RawArgs {
    /// The path under the base URL, with any query string: `/rest/lease/tn?take=5`.
    pub path: String,
}

/// `opentact api post|patch <path> <json>`.
#[derive(Debug, Args)]
pub struct RawBodyArgs {
    /// The path under the base URL, with any query string.
    pub path: String,
    /// The JSON body: the text itself, `@file` to read a file, or `-` to read standard input.
    pub body: String,
}
