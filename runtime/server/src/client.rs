//! `opentact api …`: a client of a running platform's REST API — the requests a customer's code
//! makes, for operators, scripts and a first look — printing one fact per line (or the payload
//! with `--json`).
//!
//! Requests go through the workspace's bounded HTTP/1.1 client ([`opentact_egress::http::send`])
//! rather than a general-purpose one, so there is one HTTP stack to audit and every exchange is
//! capped in time and size. The operator names the URL, so loopback and private addresses are
//! allowed.
//!
//! Every answer is the API's envelope: `{"success": true, "payload": …}`, or
//! `{"success": false, "message": "…", "status": 4xx}`, printed as `error: <message> (HTTP
//! <status>)`.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use opentact_egress::http::{self, HttpError, Limits};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use url::Url;

use crate::cli::{
    ApiAppsCommand, ApiArgs, ApiBatchCommand, ApiCommand, ApiConnection, ApiNumbersCommand, ApiSipCommand,
    ApiSipUsersCommand, ApiSmsCommand, ApiTenDlcCommand, AppCreateArgs, AppDeployArgs, BatchCreateArgs,
    Feature, LoginArgs, NumberOrderArgs, NumberSearchArgs, RawBodyArgs, SipUserCreateArgs, SmsDirectionArg,
    SmsSearchArgs, SmsSendArgs, SmsStateArg, TenDlcNumbersArgs,
};

/// Largest response read, bytes. The API's answers are far smaller (a page holds at most a few
/// hundred objects); the cap only bounds memory when `--api` names something else.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// The exit code when the API refused a request or gave no answer, or an ordered number was
/// not leased. Invalid arguments exit with [`crate::flow_cmd::EXIT_INVALID_INPUT`].
pub const EXIT_REFUSED: u8 = 1;

/// Longest excerpt of an unexpected body quoted in an error, characters.
const EXCERPT_CHARS: usize = 200;

/// How often `batch watch` asks for a batch's progress.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Characters between the brackets of `batch watch`'s progress bar.
const BAR_WIDTH: i64 = 18;

/// Why a request did not end with a success envelope.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No HTTP answer: no connection, DNS, TLS, the time limit, a body over the size limit.
    #[error("no answer from the Opentact API at {base}")]
    NoAnswer {
        /// The base URL (`--api`).
        base: String,
        /// What happened, naming the request's URL.
        #[source]
        source: HttpError,
    },
    /// The API's error envelope.
    #[error("{message} (HTTP {status})")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The envelope's message.
        message: String,
    },
    /// Something answered, but not with the API's envelope (another server, a proxy's page).
    #[error("{url} answered HTTP {status} with {excerpt:?}, not the Opentact API's JSON envelope")]
    NotTheApi {
        /// The request's URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        excerpt: String,
    },
    /// A success envelope whose payload lacks what this client reads (a server of another
    /// version).
    #[error("unexpected {what} in the API's answer: {reason}")]
    UnexpectedPayload {
        /// What was read.
        what: &'static str,
        /// serde's reason, naming the field.
        reason: String,
    },
}

/// Runs one `opentact api` subcommand. Refusals and unreachable servers are reported here
/// (exit 1); invalid arguments are returned as errors (exit 2).
pub async fn run(args: ApiArgs) -> anyhow::Result<ExitCode> {
    let ApiArgs { connection, command } = args;
    let client = Client::new(&connection)?;
    let client = match &command {
        // Login exchanges a password for a token, whatever token the environment holds.
        ApiCommand::Login(login) => client.authorized(Some(login_credentials(login, &connection)?)),
        _ => client.authorized(credentials(&connection)?),
    };
    match execute(&client, command, connection.json).await {
        Ok(code) => Ok(code),
        Err(error) => {
            let Some(request) = error.downcast_ref::<RequestError>() else { return Err(error) };
            eprintln!("error: {error:#}");
            match request {
                RequestError::NoAnswer {
                    source: HttpError::Failed { .. } | HttpError::Connect { .. } | HttpError::Resolve { .. },
                    ..
                } => {
                    eprintln!("hint: is `opentact serve` running there? --api or OPENTACT_API sets the URL");
                }
                RequestError::Refused { status: 401, .. } if client.authorization.is_none() => {
                    eprintln!("hint: pass --token (or OPENTACT_TOKEN), or --email and --password");
                }
                _ => {}
            }
            Ok(ExitCode::from(EXIT_REFUSED))
        }
    }
}

async fn execute(client: &Client, command: ApiCommand, json: bool) -> anyhow::Result<ExitCode> {
    match command {
        ApiCommand::Login(_) => login(client, json).await,
        ApiCommand::Numbers { command: ApiNumbersCommand::Search(args) } => search(client, args, json).await,
        ApiCommand::Numbers { command: ApiNumbersCommand::Order(args) } => order(client, args, json).await,
        ApiCommand::Apps { command: ApiAppsCommand::Create(args) } => create_app(client, args, json).await,
        ApiCommand::Apps { command: ApiAppsCommand::Deploy(args) } => deploy(client, args, json).await,
        ApiCommand::Sip { command: ApiSipCommand::Users { command: ApiSipUsersCommand::Create(args) } } => {
            create_sip_user(client, args, json).await
        }
        ApiCommand::Batch { command: ApiBatchCommand::Create(args) } => {
            create_batch(client, args, json).await
        }
        ApiCommand::Batch { command: ApiBatchCommand::Watch(args) } => {
            watch_batch(client, args.batch, json).await
        }
        ApiCommand::Sms { command: ApiSmsCommand::Send(args) } => send_sms(client, args, json).await,
        ApiCommand::Sms { command: ApiSmsCommand::Search(args) } => search_sms(client, args, json).await,
        ApiCommand::TenDlc { command: ApiTenDlcCommand::Campaigns } => campaigns(client, json).await,
        ApiCommand::TenDlc { command: ApiTenDlcCommand::Assign(args) } => {
            campaign_numbers(client, args, "add", json).await
        }
        ApiCommand::TenDlc { command: ApiTenDlcCommand::Remove(args) } => {
            campaign_numbers(client, args, "remove", json).await
        }
        ApiCommand::Get(args) => raw(client, "GET", &args.path, None).await,
        ApiCommand::Delete(args) => raw(client, "DELETE", &args.path, None).await,
        ApiCommand::Post(args) => raw_with_body(client, "POST", args).await,
        ApiCommand::Patch(args) => raw_with_body(client, "PATCH", args).await,
    }
}

// ---------------------------------------------------------------------------------------------
// credentials

/// The `Authorization` of every command but `login`: the token, else email and password.
fn credentials(connection: &ApiConnection) -> anyhow::Result<Option<String>> {
    match (&connection.token, &connection.email, &connection.password) {
        (Some(token), _, _) => Ok(Some(format!("Bearer {}", token.trim()))),
        (None, Some(email), Some(password)) => Ok(Some(basic(email, password))),
        (None, None, None) => Ok(None),
        (None, _, _) => bail!("--email and --password go together (or OPENTACT_EMAIL and OPENTACT_PASSWORD)"),
    }
}

/// `login`'s Basic credentials: its own flags, else `opentact api --email/--password` or the
/// environment.
fn login_credentials(login: &LoginArgs, connection: &ApiConnection) -> anyhow::Result<String> {
    let email = login.email.as_ref().or(connection.email.as_ref());
    let password = login.password.as_ref().or(connection.password.as_ref());
    match (email, password) {
        (Some(email), Some(password)) => Ok(basic(email, password)),
        _ => bail!("login needs --email and --password (or OPENTACT_EMAIL and OPENTACT_PASSWORD)"),
    }
}

fn basic(email: &str, password: &str) -> String {
    use base64::Engine;
    let pair = format!("{}:{password}", email.trim());
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
}

// ---------------------------------------------------------------------------------------------
// the client

/// The base URL, the credentials and the limits of every request.
#[derive(Debug)]
struct Client {
    base: Url,
    authorization: Option<String>,
    limits: Limits,
}

impl Client {
    fn new(connection: &ApiConnection) -> anyhow::Result<Client> {
        let text = connection.base_url.trim();
        // `api.listen` is written `127.0.0.1:8080`: accept the address as the config shows it.
        let with_scheme = if text.contains("://") { text.to_owned() } else { format!("http://{text}") };
        let base = Url::parse(&with_scheme).with_context(|| format!("--api {text:?} is not a URL"))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            bail!("--api {text:?}: give an http(s) URL such as http://127.0.0.1:8080");
        }
        Ok(Client {
            base,
            authorization: None,
            limits: Limits {
                timeout: Duration::from_secs(connection.timeout),
                max_body_bytes: MAX_RESPONSE_BYTES,
                allow_private: true,
            },
        })
    }

    fn authorized(self, authorization: Option<String>) -> Client {
        Client { authorization, ..self }
    }

    /// An endpoint: the base URL's path followed by `segments`, each percent-encoded (a SIP
    /// domain name is a segment too).
    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        // Never an error: `new` refused URLs that cannot be a base.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// An endpoint of a list, with `?take=&skip=` when given.
    fn page(&self, segments: &[&str], take: Option<u32>, skip: Option<u32>) -> Url {
        let mut url = self.endpoint(segments);
        for (key, value) in [("take", take), ("skip", skip)] {
            if let Some(value) = value {
                url.query_pairs_mut().append_pair(key, &value.to_string());
            }
        }
        url
    }

    /// A path the user typed (`/rest/lease/tn?take=5`), under the base URL.
    fn raw(&self, path: &str) -> anyhow::Result<Url> {
        if path.contains("://") {
            bail!("{path:?}: give a path such as /rest/lease/tn; --api sets the server");
        }
        let mut base = self.base.clone();
        base.set_query(None);
        base.set_fragment(None);
        let joined = format!("{}/{}", base.as_str().trim_end_matches('/'), path.trim_start_matches('/'));
        Url::parse(&joined).with_context(|| format!("{path:?} does not make a URL"))
    }

    /// Sends a request and returns the success envelope.
    async fn send(
        &self,
        method: &str,
        url: Url,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Value, RequestError> {
        let mut headers = vec![("accept", "application/json")];
        if let Some(authorization) = &self.authorization {
            headers.push(("authorization", authorization));
        }
        let response = http::send(method, url.as_str(), &headers, body, &self.limits)
            .await
            .map_err(|source| RequestError::NoAnswer { base: self.base.to_string(), source })?;
        envelope(url.as_str(), &response)
    }

    async fn send_json(&self, method: &str, url: Url, body: &Value) -> Result<Value, RequestError> {
        self.send(method, url, Some(("application/json", body.to_string().into_bytes()))).await
    }
}

/// The success envelope of a response, or why there is none.
fn envelope(url: &str, response: &http::Response) -> Result<Value, RequestError> {
    let success = (200..300).contains(&response.status);
    match serde_json::from_slice::<Value>(&response.body) {
        Ok(envelope) if success && envelope["success"] == true => Ok(envelope),
        Ok(envelope) if !success && envelope["success"] == false => Err(RequestError::Refused {
            status: response.status,
            message: envelope["message"].as_str().unwrap_or("(no message)").to_owned(),
        }),
        _ => {
            let text = String::from_utf8_lossy(&response.body);
            Err(RequestError::NotTheApi {
                url: url.to_owned(),
                status: response.status,
                excerpt: text.trim().chars().take(EXCERPT_CHARS).collect(),
            })
        }
    }
}

/// The fields of the envelope's payload this client reads.
fn decode<T: DeserializeOwned>(envelope: &Value, what: &'static str) -> Result<T, RequestError> {
    T::deserialize(&envelope["payload"])
        .map_err(|e| RequestError::UnexpectedPayload { what, reason: e.to_string() })
}

/// Writes one line to standard output. A reader that went away (`… | head`) is not an error:
/// the rest of the output is simply not wanted.
fn print_line(line: impl std::fmt::Display) -> anyhow::Result<()> {
    match writeln!(std::io::stdout().lock(), "{line}") {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(error).context("writing to standard output")
        }
        _ => Ok(()),
    }
}

fn print_pretty(value: &Value) -> anyhow::Result<()> {
    print_line(serde_json::to_string_pretty(value)?)
}

/// What the client reads of the API's objects; other fields are ignored, so a newer server
/// that adds fields still works.
mod wire {
    use serde::Deserialize;
    use uuid::Uuid;

    #[derive(Debug, Deserialize)]
    pub struct Jwt {
        pub token: String,
    }

    #[derive(Debug, Deserialize)]
    pub struct Page<T> {
        pub total: i64,
        pub skip: u32,
        pub data: Vec<T>,
    }

    #[derive(Debug, Deserialize)]
    pub struct AvailableNumber {
        pub tn: i64,
        pub state: Option<String>,
        pub features: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Order {
        pub items: Vec<OrderItem>,
    }

    #[derive(Debug, Deserialize)]
    pub struct OrderItem {
        pub tn: i64,
        pub state: String,
        /// The lease's id, when leased.
        pub lease: Option<Uuid>,
        pub message: Option<String>,
    }

    /// Any created object: its uuid.
    #[derive(Debug, Deserialize)]
    pub struct Created {
        pub uuid: Uuid,
    }

    #[derive(Debug, Deserialize)]
    pub struct Deployed {
        pub version: ComponentVersion,
    }

    #[derive(Debug, Deserialize)]
    pub struct ComponentVersion {
        pub version: i32,
    }

    /// An SMS as the log shows it.
    #[derive(Debug, Deserialize)]
    pub struct Sms {
        pub uuid: Uuid,
        #[serde(rename = "type")]
        pub direction: String,
        pub state: String,
        pub from: String,
        pub to: String,
        pub text: String,
        pub parts: i64,
        pub created_on: String,
    }

    /// A 10DLC campaign.
    #[derive(Debug, Deserialize)]
    pub struct Campaign {
        pub uuid: Uuid,
        pub state: String,
        pub use_case: String,
        pub reason: Option<String>,
        pub numbers: Vec<CampaignNumber>,
    }

    #[derive(Debug, Deserialize)]
    pub struct CampaignNumber {
        pub tn: i64,
    }

    /// A batch's state and counts.
    #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
    pub struct BatchProgress {
        pub state: String,
        pub total: i64,
        pub queued: i64,
        pub calling: i64,
        pub answered: i64,
        pub completed: i64,
        pub busy: i64,
        pub no_answer: i64,
        pub failed: i64,
    }

    impl BatchProgress {
        /// Whether the batch is done with: nothing more will change (but calls in progress
        /// when it was cancelled).
        pub fn is_over(&self) -> bool {
            matches!(self.state.as_str(), "completed" | "cancelled")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// the commands

async fn login(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    // GET with Basic rather than POST with the password in a body: the documented form.
    let envelope = client.send("GET", client.endpoint(&["rest", "auth"]), None).await?;
    if json {
        print_pretty(&envelope["payload"])?;
    } else {
        let jwt: wire::Jwt = decode(&envelope, "token")?;
        print_line(jwt.token)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn features(features: &[Feature]) -> Vec<&'static str> {
    features.iter().map(|f| f.as_str()).collect()
}

async fn search(client: &Client, args: NumberSearchArgs, json: bool) -> anyhow::Result<ExitCode> {
    let mut body = serde_json::Map::new();
    if let Some(pattern) = args.pattern {
        body.insert("pattern".into(), pattern.into());
    }
    if let Some(state) = args.state {
        body.insert("state".into(), state.into());
    }
    if let Some(npa) = args.npa {
        body.insert("npa".into(), npa.into());
    }
    if !args.features.is_empty() {
        body.insert("features".into(), json!(features(&args.features)));
    }
    let url = client.page(&["rest", "tn", "search"], args.take, args.skip);
    let envelope = client.send_json("POST", url, &Value::Object(body)).await?;
    if json {
        print_pretty(&envelope["payload"])?;
        return Ok(ExitCode::SUCCESS);
    }
    let page: wire::Page<wire::AvailableNumber> = decode(&envelope, "search results")?;
    for number in &page.data {
        let state = number.state.as_deref().unwrap_or("-");
        print_line(format_args!("{}\t{state}\t{}", number.tn, number.features.join(",")))?;
    }
    page_note(&page, "available number", "numbers");
    Ok(ExitCode::SUCCESS)
}

/// On stderr, so stdout stays one object per line for scripts: which matches a page showed,
/// or that there are none.
fn page_note<T>(page: &wire::Page<T>, one: &str, many: &str) {
    let shown = i64::from(page.skip) + i64::try_from(page.data.len()).unwrap_or(i64::MAX);
    if page.total == 0 {
        eprintln!("no {one} matches");
    } else if page.data.is_empty() {
        eprintln!("no more: {} matches, and --skip {} is past them", page.total, page.skip);
    } else if page.total > shown || page.skip > 0 {
        eprintln!(
            "{many} {} to {} of {} matches (--take and --skip page through them)",
            i64::from(page.skip) + 1,
            shown,
            page.total
        );
    }
}

async fn order(client: &Client, args: NumberOrderArgs, json: bool) -> anyhow::Result<ExitCode> {
    let chosen = (!args.features.is_empty()).then(|| features(&args.features));
    let items: Vec<Value> = args
        .tns
        .iter()
        .map(|tn| match &chosen {
            Some(features) => json!({"tn": tn, "features": features}),
            None => json!({"tn": tn}),
        })
        .collect();
    let envelope =
        client.send_json("POST", client.endpoint(&["rest", "order"]), &json!({"items": items})).await?;
    let order: wire::Order = decode(&envelope, "order")?;
    if json {
        print_pretty(&envelope["payload"])?;
    } else {
        for item in &order.items {
            match (&item.lease, &item.message) {
                (Some(lease), _) if item.state == "success" => {
                    print_line(format_args!("{}\tleased\t{}", item.tn, lease))?;
                }
                (_, message) => {
                    let reason = message.as_deref().unwrap_or("no reason given");
                    print_line(format_args!("{}\t{}\t{reason}", item.tn, item.state))?;
                }
            }
        }
    }
    let all_leased = order.items.iter().all(|item| item.state == "success");
    Ok(if all_leased { ExitCode::SUCCESS } else { ExitCode::from(EXIT_REFUSED) })
}

async fn create_app(client: &Client, args: AppCreateArgs, json: bool) -> anyhow::Result<ExitCode> {
    let mut body = json!({"name": args.name});
    // clap's `mode` group lets exactly one of these through.
    if let Some(path) = &args.xml_file {
        let xml = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        body["xml"] = xml.into();
    } else if let Some(url) = args.webhook_url {
        body["webhook_url"] = url.into();
        if let Some(method) = args.webhook_method {
            body["webhook_method"] = method.into();
        }
    } else if args.control_async {
        body["control"] = "async".into();
    } else if args.component {
        body["component"] = true.into();
    }
    let envelope = client.send_json("POST", client.endpoint(&["rest", "sip", "app"]), &body).await?;
    print_created(&envelope, "app", json)
}

async fn deploy(client: &Client, args: AppDeployArgs, json: bool) -> anyhow::Result<ExitCode> {
    let wasm = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let app = args.app.to_string();
    let url = client.endpoint(&["rest", "sip", "app", &app, "component"]);
    let envelope = client.send("PUT", url, Some(("application/wasm", wasm))).await?;
    if json {
        print_pretty(&envelope["payload"])?;
    } else {
        let deployed: wire::Deployed = decode(&envelope, "component version")?;
        print_line(deployed.version.version)?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn create_sip_user(client: &Client, args: SipUserCreateArgs, json: bool) -> anyhow::Result<ExitCode> {
    let url = client.endpoint(&["rest", "sip", "domain", &args.domain, "user"]);
    let body = json!({"login": args.login, "password": args.password});
    let envelope = client.send_json("POST", url, &body).await?;
    print_created(&envelope, "SIP user", json)
}

async fn create_batch(client: &Client, args: BatchCreateArgs, json: bool) -> anyhow::Result<ExitCode> {
    let mut body = json!({"tn_lease": args.lease});
    if let Some(profile) = args.profile {
        body["outbound_voice_profile"] = json!(profile);
    }
    // clap's `flow` group lets exactly one of these through, and its `numbers` group one of
    // the phones file and --phone.
    if let Some(path) = &args.xml_file {
        let xml = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        body["xml"] = xml.into();
    } else if let Some(app) = args.app {
        body["sip_control_app"] = json!(app);
    }
    let lines = match &args.phones_file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let lines = phone_lines(&text);
            if lines.is_empty() {
                bail!("{}: no numbers in it (one per line, country code first)", path.display());
            }
            lines
        }
        None => args.phones.iter().enumerate().map(|(i, phone)| (i + 1, phone.clone())).collect(),
    };
    body["phones"] = json!(lines.iter().map(|(_, phone)| phone).collect::<Vec<_>>());
    if let Some(seconds) = args.ring_timeout {
        body["timeout"] = seconds.into();
    }
    let envelope = match client.send_json("POST", client.endpoint(&["rest", "batch"]), &body).await {
        Ok(envelope) => envelope,
        Err(error) => {
            let source = match &args.phones_file {
                Some(path) => format!("line {{}} of {}", path.display()),
                None => "--phone number {}".to_owned(),
            };
            return Err(where_the_phone_is(error, &lines, &source).into());
        }
    };
    if !args.watch {
        return print_created(&envelope, "batch", json);
    }
    let created: wire::Created = decode(&envelope, "batch")?;
    if !json {
        print_line(created.uuid)?;
    }
    watch_batch(client, created.uuid, json).await
}

/// The numbers of a phones file with their line numbers (1-based): blank lines and `#`
/// comments skipped, each number trimmed.
fn phone_lines(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(n, line)| (n, line.to_owned()))
        .collect()
}

/// The API names a bad number by its index (`phones[3]: …`); adds where the user wrote it
/// (`source` with `{}` for the line or argument number).
fn where_the_phone_is(error: RequestError, lines: &[(usize, String)], source: &str) -> RequestError {
    let RequestError::Refused { status, message } = error else { return error };
    let index = message
        .strip_prefix("phones[")
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(index, _)| index.parse::<usize>().ok());
    match index.and_then(|i| lines.get(i)) {
        Some((line, _)) => {
            let place = source.replacen("{}", &line.to_string(), 1);
            RequestError::Refused { status, message: format!("{message} ({place})") }
        }
        None => RequestError::Refused { status, message },
    }
}

/// Polls the batch every [`WATCH_INTERVAL`] and draws its progress on stderr — one line
/// redrawn in place on a terminal, a line per change otherwise — until it is completed or
/// cancelled; then prints the final counts (the batch, with `--json`).
async fn watch_batch(client: &Client, batch: uuid::Uuid, json: bool) -> anyhow::Result<ExitCode> {
    let id = batch.to_string();
    let detail = client.endpoint(&["rest", "batch", &id]);
    // The counts only: a batch's items may run to megabytes, twice a second.
    let mut counts = detail.clone();
    counts.query_pairs_mut().append_pair("items", "false");
    let terminal = std::io::stderr().is_terminal();
    let mut shown = String::new();
    let mut ticks = tokio::time::interval(WATCH_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let envelope = client.send("GET", counts.clone(), None).await?;
        let progress: wire::BatchProgress = decode(&envelope, "batch progress")?;
        let line = progress_line(&progress);
        if line != shown {
            if terminal {
                // Back to the start of the line, and clear what a longer line left behind.
                eprint!("\r{line}\x1b[K");
            } else {
                eprintln!("{line}");
            }
            shown = line;
        }
        if progress.is_over() {
            if terminal {
                eprintln!();
            }
            if json {
                let envelope = client.send("GET", detail, None).await?;
                print_pretty(&envelope["payload"])?;
            } else {
                print_line(format_args!("{}  {shown}", progress.state))?;
            }
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// `[########----------]  43/100  answered 3 · completed 38 · busy 1 · no answer 1 · failed 0`:
/// the numbers that reached an outcome (answered, or ended) of the batch's total.
fn progress_line(p: &wire::BatchProgress) -> String {
    let done = (p.answered + p.completed + p.busy + p.no_answer + p.failed).clamp(0, p.total.max(0));
    let filled = if p.total > 0 {
        // Rounded to the nearest character, but full only when every number is done.
        let nearest = (2 * done * BAR_WIDTH + p.total) / (2 * p.total);
        if done < p.total { nearest.min(BAR_WIDTH - 1) } else { nearest }
    } else {
        0
    };
    let bar = |n: i64, c: &str| c.repeat(usize::try_from(n).unwrap_or(0));
    format!(
        "[{}{}]  {done}/{}  answered {} · completed {} · busy {} · no answer {} · failed {}",
        bar(filled, "#"),
        bar(BAR_WIDTH - filled, "-"),
        p.total,
        p.answered,
        p.completed,
        p.busy,
        p.no_answer,
        p.failed
    )
}

/// Prints a created object's uuid (or the object, with `--json`).
async fn send_sms(client: &Client, args: SmsSendArgs, json: bool) -> anyhow::Result<ExitCode> {
    let mut body = json!({"tn": args.tn, "to": args.to, "message": args.message});
    if let Some(url) = args.callback_url {
        body["custom_callback_url"] = url.into();
    }
    let envelope = client.send_json("POST", client.endpoint(&["rest", "sms"]), &body).await?;
    if json {
        print_pretty(&envelope["payload"])?;
    } else {
        let sms: wire::Sms = decode(&envelope, "message")?;
        print_line(format_args!("{}\t{}\t{} part(s)", sms.uuid, sms.state, sms.parts))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Newlines and tabs of a text as one line of a column.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

async fn search_sms(client: &Client, args: SmsSearchArgs, json: bool) -> anyhow::Result<ExitCode> {
    let mut body = serde_json::Map::new();
    if let Some(direction) = args.direction {
        let name = match direction {
            SmsDirectionArg::Smso => "smso",
            SmsDirectionArg::Smsr => "smsr",
        };
        body.insert("type".into(), name.into());
    }
    if let Some(state) = args.state {
        let name = match state {
            SmsStateArg::Created => "created",
            SmsStateArg::Queued => "queued",
            SmsStateArg::Sent => "sent",
            SmsStateArg::Delivered => "delivered",
            SmsStateArg::Undelivered => "undelivered",
            SmsStateArg::Failed => "failed",
            SmsStateArg::Received => "received",
        };
        body.insert("state".into(), name.into());
    }
    for (key, value) in [("from", args.from), ("to", args.to), ("since", args.since), ("until", args.until)] {
        if let Some(value) = value {
            let value =
                if matches!(key, "from" | "to") { value.trim_start_matches('+').to_owned() } else { value };
            body.insert(key.into(), value.into());
        }
    }
    if args.newest_first {
        body.insert("order".into(), json!({"created_on": "DESC"}));
    }
    let url = client.page(&["rest", "sms", "search"], args.take, args.skip);
    let envelope = client.send_json("POST", url, &Value::Object(body)).await?;
    if json {
        print_pretty(&envelope["payload"])?;
        return Ok(ExitCode::SUCCESS);
    }
    let page: wire::Page<wire::Sms> = decode(&envelope, "SMS log")?;
    for m in &page.data {
        print_line(format_args!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            m.uuid,
            m.created_on,
            m.direction,
            m.state,
            m.from,
            m.to,
            one_line(&m.text)
        ))?;
    }
    page_note(&page, "message", "messages");
    Ok(ExitCode::SUCCESS)
}

fn campaign_line(c: &wire::Campaign) -> String {
    let numbers = if c.numbers.is_empty() {
        "-".to_owned()
    } else {
        c.numbers.iter().map(|n| n.tn.to_string()).collect::<Vec<_>>().join(",")
    };
    match &c.reason {
        Some(reason) if c.state == "rejected" => {
            format!("{}\t{}\t{}\t{numbers}\t{reason}", c.uuid, c.state, c.use_case)
        }
        _ => format!("{}\t{}\t{}\t{numbers}", c.uuid, c.state, c.use_case),
    }
}

async fn campaigns(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let mut url = client.endpoint(&["rest", "10dlc", "campaign"]);
    url.query_pairs_mut().append_pair("take", &opentact_store::MAX_TAKE.to_string());
    let envelope = client.send("GET", url, None).await?;
    if json {
        print_pretty(&envelope["payload"])?;
        return Ok(ExitCode::SUCCESS);
    }
    let page: wire::Page<wire::Campaign> = decode(&envelope, "campaigns")?;
    for c in &page.data {
        print_line(campaign_line(c))?;
    }
    if page.total == 0 {
        eprintln!(
            "no campaign: register a brand and a campaign (POST /rest/10dlc/brand, /rest/10dlc/campaign)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn campaign_numbers(
    client: &Client,
    args: TenDlcNumbersArgs,
    list: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let id = args.campaign.to_string();
    let url = client.endpoint(&["rest", "10dlc", "campaign", &id, "numbers"]);
    let envelope = client.send_json("POST", url, &json!({ list: args.tns })).await?;
    if json {
        print_pretty(&envelope["payload"])?;
    } else {
        let campaign: wire::Campaign = decode(&envelope, "campaign")?;
        print_line(campaign_line(&campaign))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_created(envelope: &Value, what: &'static str, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        print_pretty(&envelope["payload"])?;
    } else {
        let created: wire::Created = decode(envelope, what)?;
        print_line(created.uuid)?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn raw(client: &Client, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<ExitCode> {
    let url = client.raw(path)?;
    let envelope = match body {
        Some(body) => client.send_json(method, url, body).await?,
        None => client.send(method, url, None).await?,
    };
    print_pretty(&envelope)?;
    Ok(ExitCode::SUCCESS)
}

async fn raw_with_body(client: &Client, method: &str, args: RawBodyArgs) -> anyhow::Result<ExitCode> {
    let text = match args.body.as_str() {
        "-" => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("reading the body from standard input")?;
            text
        }
        body => match body.strip_prefix('@') {
            Some(path) => {
                std::fs::read_to_string(Path::new(path)).with_context(|| format!("reading {path}"))?
            }
            None => body.to_owned(),
        },
    };
    // Checked here so a typo is reported with its position before anything is sent.
    let body: Value = serde_json::from_str(&text).context("the body is not JSON")?;
    raw(client, method, &args.path, Some(&body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> anyhow::Result<Client> {
        Client::new(&ApiConnection {
            base_url: base.to_owned(),
            token: None,
            email: None,
            password: None,
            json: false,
            timeout: 30,
        })
    }

    #[test]
    fn urls_keep_the_base_path_and_encode_segments() {
        let c = client("127.0.0.1:8080").unwrap();
        assert_eq!(c.endpoint(&["rest", "auth"]).as_str(), "http://127.0.0.1:8080/rest/auth");
        let c = client("https://api.example.com/opentact/").unwrap();
        assert_eq!(
            c.endpoint(&["rest", "sip", "domain", "a b/c", "user"]).as_str(),
            "https://api.example.com/opentact/rest/sip/domain/a%20b%2Fc/user"
        );
        assert_eq!(
            c.raw("/rest/lease/tn?take=5").unwrap().as_str(),
            "https://api.example.com/opentact/rest/lease/tn?take=5"
        );
        assert!(c.raw("http://elsewhere/rest").is_err());
        assert!(client("ftp://example.com").is_err());
    }

    fn response(status: u16, body: &str) -> http::Response {
        http::Response { status, content_type: None, body: body.as_bytes().to_vec() }
    }

    #[test]
    fn envelopes() {
        let ok = envelope("u", &response(200, r#"{"success":true,"payload":{"token":"t"}}"#)).unwrap();
        assert_eq!(decode::<wire::Jwt>(&ok, "token").unwrap().token, "t");
        let refused =
            envelope("u", &response(401, r#"{"success":false,"message":"wrong","status":401}"#)).unwrap_err();
        assert_eq!(refused.to_string(), "wrong (HTTP 401)");
        let proxy = envelope("u", &response(502, "<html>Bad gateway</html>")).unwrap_err();
        assert!(
            proxy.to_string().contains("HTTP 502") && proxy.to_string().contains("Bad gateway"),
            "{proxy}"
        );
        let missing = decode::<wire::Created>(&ok, "app").unwrap_err();
        assert!(missing.to_string().contains("uuid"), "{missing}");
    }

    fn progress(state: &str, counts: [i64; 8]) -> wire::BatchProgress {
        let [total, queued, calling, answered, completed, busy, no_answer, failed] = counts;
        wire::BatchProgress {
            state: state.to_owned(),
            total,
            queued,
            calling,
            answered,
            completed,
            busy,
            no_answer,
            failed,
        }
    }

    #[test]
    fn the_progress_bar_counts_numbers_with_an_outcome() {
        assert_eq!(
            progress_line(&progress("running", [100, 55, 2, 3, 38, 1, 1, 0])),
            "[########----------]  43/100  answered 3 · completed 38 · busy 1 · no answer 1 · failed 0"
        );
        assert_eq!(
            progress_line(&progress("queued", [3, 3, 0, 0, 0, 0, 0, 0])),
            "[------------------]  0/3  answered 0 · completed 0 · busy 0 · no answer 0 · failed 0"
        );
        // Nearly done is not full; done is.
        let nearly = progress_line(&progress("running", [1000, 0, 1, 0, 999, 0, 0, 0]));
        assert!(nearly.starts_with("[#################-]  999/1000"), "{nearly}");
        let done = progress_line(&progress("completed", [4, 0, 0, 0, 2, 1, 0, 1]));
        assert!(done.starts_with("[##################]  4/4  "), "{done}");
        // An empty batch, and counts a newer server might make inconsistent, draw anyway.
        assert!(progress_line(&progress("completed", [0; 8])).starts_with("[------------------]  0/0"));
        assert!(progress_line(&progress("running", [2, 0, 0, 5, 0, 0, 0, 0])).starts_with("[###"));
        assert!(progress("cancelled", [0; 8]).is_over() && !progress("running", [0; 8]).is_over());
    }

    #[test]
    fn bad_numbers_are_traced_to_their_line() {
        let lines = phone_lines("# customers\n12025550100\n\n  +12025550101  \n202-555\n");
        assert_eq!(lines, vec![(2, "12025550100".into()), (4, "+12025550101".into()), (5, "202-555".into())]);
        let refused = |message: &str| RequestError::Refused { status: 422, message: message.into() };
        let traced = where_the_phone_is(
            refused("phones[2]: \"202-555\" is not a telephone number"),
            &lines,
            "line {} of f.txt",
        );
        assert_eq!(
            traced.to_string(),
            "phones[2]: \"202-555\" is not a telephone number (line 5 of f.txt) (HTTP 422)"
        );
        let other = where_the_phone_is(refused("tn_lease: tn lease x not found"), &lines, "line {} of f.txt");
        assert_eq!(other.to_string(), "tn_lease: tn lease x not found (HTTP 422)");
        let out_of_range = where_the_phone_is(refused("phones[9]: bad"), &lines, "line {} of f.txt");
        assert_eq!(out_of_range.to_string(), "phones[9]: bad (HTTP 422)");
    }

    #[test]
    fn credentials_prefer_the_token() {
        let mut connection = ApiConnection {
            base_url: String::new(),
            token: Some("jwt".into()),
            email: Some("a@b".into()),
            password: Some("p".into()),
            json: false,
            timeout: 30,
        };
        assert_eq!(credentials(&connection).unwrap().as_deref(), Some("Bearer jwt"));
        connection.token = None;
        assert_eq!(credentials(&connection).unwrap().as_deref(), Some("Basic YUBiOnA="));
        connection.password = None;
        assert!(credentials(&connection).is_err());
    }
}
