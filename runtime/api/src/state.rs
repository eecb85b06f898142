//! [`ApiState`]: what every handler shares (the store, the JWT key, the config).

use std::fmt;
use std::sync::Arc;

use opentact_control::{BatchLauncher, CallControl, Calling};
use opentact_store::Repository;
use serde::Deserialize;

use opentact_events::EventBus;

use crate::login_limit::LoginLimiter;
use crate::oidc::{OidcConfig, OidcVerifier};
use crate::password_gate::PasswordGate;
use crate::url_policy::UrlPolicy;

/// Shortest JWT signing key accepted: HS256 is as strong as its key, and RFC 7518 §3.2
/// requires at least the hash's size (256 bits).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// Default lifetime of a JWT issued by `/rest/auth` (the documented 24 hours).
pub const DEFAULT_JWT_TTL_SECS: u64 = 24 * 60 * 60;

/// The `[api]` table of the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Lifetime of the JWTs `/rest/auth` issues, in seconds.
    pub jwt_ttl_secs: u64,
    /// Sign-in with Google ID tokens (`X-Auth-Google-Token`); off when absent.
    pub google: Option<OidcConfig>,
    /// Component versions one app may keep (default 20): each is up to 10 MiB in the database
    /// and one compile, so an account cannot fill the disk by uploading in a loop. The next
    /// upload is refused (422) until old versions are deleted
    /// (`DELETE /rest/sip/app/{uuid}/component/{version}`).
    pub max_component_versions_per_app: u32,
    /// The currency balances and prices are in (`[rating] currency`), shown with amounts.
    pub currency: String,
    /// Whether anyone may create an account (`POST /rest/signup`); off by default.
    pub self_signup: bool,
    /// What a leased number costs a month (`[rating] number_monthly`); `None`: numbers are free.
    #[serde(skip)]
    pub number_price: Option<crate::rental::NumberPrice>,
}

/// Default of [`ApiConfig::max_component_versions_per_app`].
pub const DEFAULT_MAX_COMPONENT_VERSIONS_PER_APP: u32 = 20;

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            jwt_ttl_secs: DEFAULT_JWT_TTL_SECS,
            google: None,
            max_component_versions_per_app: DEFAULT_MAX_COMPONENT_VERSIONS_PER_APP,
            currency: "USD".to_owned(),
            self_signup: false,
            number_price: None,
        }
    }
}

/// The HS256 key JWTs are signed with. Never printed.
#[derive(Clone)]
pub struct JwtSecret(Arc<[u8]>);

/// Why a JWT secret was refused.
#[derive(Debug, thiserror::Error)]
#[error("the JWT secret must be at least {MIN_JWT_SECRET_BYTES} bytes (got {len})")]
pub struct WeakSecret {
    pub len: usize,
}

impl JwtSecret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, WeakSecret> {
        let bytes = bytes.into();
        if bytes.len() < MIN_JWT_SECRET_BYTES {
            return Err(WeakSecret { len: bytes.len() });
        }
        Ok(JwtSecret(bytes.into()))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtSecret(<redacted>)")
    }
}

/// Checks an uploaded component before it is stored: the server compiles and links it against
/// the flow world (this crate stays free of the Wasm engine).
pub trait ComponentCheck: Send + Sync {
    /// `Err` with why, for the uploader.
    fn check(
        &self,
        bytes: Vec<u8>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ComponentRefused>> + Send + '_>>;
}

/// Why an upload's component was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentRefused {
    /// It is not a usable flow (422): invalid, the wrong world, too slow to compile.
    Invalid(String),
    /// The host is busy compiling others (503): the same upload may pass shortly.
    Busy(String),
}

/// Whether SIP users are registered (the registrar's location service), for the `state`
/// of a SIP user.
pub trait SipPresence: Send + Sync {
    /// Whether `login@domain` (the full domain, `acme.sip.example.com`) has a live binding.
    fn is_online(&self, domain: &str, login: &str) -> bool;
}

/// The platform SIP domain when the server names none (`sip.domain` in the config).
pub const DEFAULT_SIP_DOMAIN: &str = "sip.opentact.local";

/// Shared by every request; cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    /// The store (in production `opentact_store::Store`; any [`Repository`] in tests).
    pub repo: Arc<dyn Repository>,
    pub jwt_secret: JwtSecret,
    pub config: Arc<ApiConfig>,
    /// Run on every component upload, when set.
    pub component_check: Option<Arc<dyn ComponentCheck>>,
    /// Verifies Google ID tokens, when `config.google` is set.
    pub google: Option<Arc<OidcVerifier>>,
    /// The event bus `GET /ws` streams from, when the server has one.
    pub events: Option<Arc<EventBus>>,
    /// Live calls taking commands (`POST /rest/call/{uuid}/command`), when the server has them.
    pub call_control: Option<Arc<dyn CallControl>>,
    /// Sends commands for calls carried by another node to that node, when nodes share a
    /// PostgreSQL; without it such a command answers 409.
    pub forwarder: Option<Arc<dyn opentact_control::CommandForwarder>>,
    /// Places outbound calls (`POST /rest/call`), when the server runs SIP.
    pub calling: Option<Arc<dyn Calling>>,
    /// Places bulk calls (`POST /rest/batch`), when the server does outbound calling; without
    /// it batches are refused (503) and none is stored.
    pub batch_launcher: Option<Arc<dyn BatchLauncher>>,
    /// Plans and queues SMS (`POST /rest/sms`); without it messages are refused (503) and none
    /// is stored.
    pub messaging: Option<Arc<dyn opentact_control::Messaging>>,
    /// The platform's SIP domain: an account's SIP domain `acme` is `acme.<sip_domain>`, and
    /// digest credentials are hashed in that realm.
    pub sip_domain: Arc<str>,
    /// Registrations, for SIP users' online/offline state; without it users read offline.
    pub presence: Option<Arc<dyn SipPresence>>,
    /// Where call recordings are kept (`<dir>/<account>/<call>/<recording>.wav`), when the
    /// server records.
    pub recordings_dir: Option<std::path::PathBuf>,
    /// Failed logins per e-mail and per client address.
    pub login_limit: Arc<LoginLimiter>,
    /// Test webhooks sent per account in the last minute (`POST /rest/event/test`).
    pub test_webhooks: Arc<crate::window_limit::WindowLimiter<uuid::Uuid>>,
    /// Sign-ups per client address in the last hour (`POST /rest/signup`).
    pub(crate) signups: Arc<crate::window_limit::WindowLimiter<Option<crate::login_limit::IpKey>>>,
    /// The permits password checks (argon2) run under.
    pub password_gate: Arc<PasswordGate>,
    /// Where webhooks may go: event subscriptions' `url`/`url2`, an app's `event_url`,
    /// messaging profiles' callbacks. Public addresses only unless set with
    /// [`ApiState::with_webhook_urls`].
    pub webhook_urls: Arc<UrlPolicy>,
    /// Where flow documents may be fetched from: the `webhook_url` of an app or a call. Public
    /// addresses only unless set with [`ApiState::with_flow_urls`].
    pub flow_urls: Arc<UrlPolicy>,
    /// Which addresses a SIP connection's `ip` may name: public ones, not the platform's own,
    /// unless set with [`ApiState::with_connection_ips`].
    pub connection_ips: Arc<crate::routes::sip_connection::ConnectionIps>,
    /// This node's name (`[server] node_id`): a call the call log shows live on another node
    /// is told apart from a call that is not live here (relayed, not 404).
    pub node_id: Option<Arc<str>>,
    /// The ports of SIP over WebSocket (`ws`, `wss`), which the `/webcall` page connects to;
    /// neither: the web call is off (the page says so).
    pub webcall: WebcallPorts,
    /// Held while a subscription is counted and created, so concurrent creations cannot pass
    /// the per-account cap together (on this node).
    pub(crate) subscriptions_lock: Arc<tokio::sync::Mutex<()>>,
}

/// Where the web call page finds SIP over WebSocket: the platform's plain and secure ports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebcallPorts {
    pub ws: Option<u16>,
    pub wss: Option<u16>,
}

impl ApiState {
    pub fn new(repo: Arc<dyn Repository>, jwt_secret: JwtSecret, config: ApiConfig) -> Self {
        let google = config.google.clone().map(|c| Arc::new(OidcVerifier::new(c)));
        ApiState {
            repo,
            jwt_secret,
            config: Arc::new(config),
            component_check: None,
            google,
            events: None,
            call_control: None,
            forwarder: None,
            calling: None,
            batch_launcher: None,
            messaging: None,
            sip_domain: Arc::from(DEFAULT_SIP_DOMAIN),
            presence: None,
            recordings_dir: None,
            login_limit: Arc::new(LoginLimiter::new()),
            test_webhooks: Arc::default(),
            signups: Arc::default(),
            password_gate: Arc::new(PasswordGate::new()),
            webhook_urls: Arc::new(UrlPolicy::default()),
            flow_urls: Arc::new(UrlPolicy::default()),
            connection_ips: Arc::default(),
            node_id: None,
            webcall: WebcallPorts::default(),
            subscriptions_lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Serve the web call (`/webcall`) against SIP over WebSocket on these ports.
    pub fn with_webcall(mut self, ports: WebcallPorts) -> Self {
        self.webcall = ports;
        self
    }

    /// Limit failed logins with `limits` instead of the defaults
    /// ([`crate::login_limit::LoginLimits::default`]).
    pub fn with_login_limits(mut self, limits: crate::login_limit::LoginLimits) -> Self {
        self.login_limit = Arc::new(LoginLimiter::with_limits(limits));
        self
    }

    /// The destinations webhook URLs may name when they are stored: the webhook sender's
    /// policy (`webhooks.allow_private`), so what is accepted here can be delivered.
    pub fn with_webhook_urls(mut self, policy: UrlPolicy) -> Self {
        self.webhook_urls = Arc::new(policy);
        self
    }

    /// The destinations an app's or a call's `webhook_url` may name when stored: the flows'
    /// HTTP policy (`flows.http.allow_private` and `flows.http.allow`), which fetches them.
    pub fn with_flow_urls(mut self, policy: UrlPolicy) -> Self {
        self.flow_urls = Arc::new(policy);
        self
    }

    /// This node's name (`[server] node_id`), as the call log names the node carrying a call.
    pub fn with_node_id(mut self, node: &str) -> Self {
        self.node_id = Some(Arc::from(node));
        self
    }

    /// Which addresses SIP connections' `ip` may name (`sip.allow_private_connection_ips`, the
    /// platform's own addresses).
    pub fn with_connection_ips(mut self, policy: crate::routes::sip_connection::ConnectionIps) -> Self {
        self.connection_ips = Arc::new(policy);
        self
    }

    /// The platform SIP domain and, when the server runs a registrar, its registrations.
    pub fn with_sip(mut self, domain: &str, presence: Option<Arc<dyn SipPresence>>) -> Self {
        self.sip_domain = Arc::from(domain.to_ascii_lowercase());
        self.presence = presence;
        self
    }

    /// Serve recordings' audio from `dir`.
    pub fn with_recordings(mut self, dir: std::path::PathBuf) -> Self {
        self.recordings_dir = Some(dir);
        self
    }

    /// Place outbound calls with `calling`.
    pub fn with_calling(mut self, calling: Arc<dyn Calling>) -> Self {
        self.calling = Some(calling);
        self
    }

    /// Send call commands to `control`.
    pub fn with_call_control(mut self, control: Arc<dyn CallControl>) -> Self {
        self.call_control = Some(control);
        self
    }

    /// Relay commands for calls carried by other nodes through `forwarder`.
    pub fn with_command_forwarder(mut self, forwarder: Arc<dyn opentact_control::CommandForwarder>) -> Self {
        self.forwarder = Some(forwarder);
        self
    }

    /// Hand stored batches to `launcher` to place their calls.
    pub fn with_batch_launcher(mut self, launcher: Arc<dyn BatchLauncher>) -> Self {
        self.batch_launcher = Some(launcher);
        self
    }

    /// Plan and queue SMS with `messaging`.
    pub fn with_messaging(mut self, messaging: Arc<dyn opentact_control::Messaging>) -> Self {
        self.messaging = Some(messaging);
        self
    }

    /// Stream the account's events from `bus` at `GET /ws`.
    pub fn with_events(mut self, bus: Arc<EventBus>) -> Self {
        self.events = Some(bus);
        self
    }

    /// Verify Google ID tokens with `verifier` (tests set its key refresh interval).
    pub fn with_google_verifier(mut self, verifier: Arc<OidcVerifier>) -> Self {
        self.google = Some(verifier);
        self
    }

    /// Check uploaded components with `check`.
    pub fn with_component_check(mut self, check: Arc<dyn ComponentCheck>) -> Self {
        self.component_check = Some(check);
        self
    }
}

impl fmt::Debug for ApiState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiState")
            .field("jwt_secret", &self.jwt_secret)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
