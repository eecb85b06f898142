//! The typed configuration: one TOML file, a table per subsystem, unknown keys refused.
//! `opentact.sample.toml` at the repository root documents every key.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The server process.
    pub server: ServerConfig,
    /// The flow host: limits and HTTP policy of flows.
    pub flows: opentact_flows::HostConfig,
    /// The database.
    pub store: StoreConfig,
    /// SIP signalling.
    pub sip: SipSection,
    /// The call engine's limits.
    pub calls: CallsSection,
    /// The event bus: what it keeps for clients that resume, and how many may listen.
    pub events: EventsSection,
    /// RTP, audio files and speech.
    pub media: MediaSection,
    /// The REST API.
    pub api: ApiSection,
    /// Webhook delivery: timeouts, retries, address policy.
    pub webhooks: opentact_webhooks::WebhookConfig,
    /// Speech-to-text for `<Record asr="true">`.
    pub speech: opentact_calls::SpeechConfig,
    /// SMS: the SMPP carrier and the sender (issue 11).
    pub messaging: crate::messaging::MessagingSection,
    /// `GET /metrics` for Prometheus: its own address, off unless set.
    pub metrics: crate::metrics::MetricsSection,
    /// STIR/SHAKEN: the operator's certificate and key, the trust anchors, the policy.
    pub stir_shaken: crate::shaken::StirShakenSection,
    /// Money: the rating deck and the currency of balances and prices.
    pub rating: RatingSection,
    /// Telecom data: the operator's NPA-NXX data set.
    pub telecom: TelecomSection,
}

/// Telecom data beyond the built-in area codes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelecomSection {
    /// The operator's NPA-NXX data, a CSV file (`npa,nxx,block,state,county,rate_center,
    /// time_zone,line_type,carrier,ocn`; see opentact-numbers' `exchanges`): the county of
    /// `<Geo county>`, and the county, rate center, line type and carrier of
    /// `GET /rest/telecom/lookup/{tn}`. Imported into the database at start unless it was the
    /// last import; `opentact admin telecom import` does the same while the platform runs.
    pub npanxx: Option<PathBuf>,
    /// How often a node looks for a new import of the NPA-NXX data, seconds.
    pub refresh_secs: u64,
}

impl Default for TelecomSection {
    fn default() -> Self {
        Self { npanxx: None, refresh_secs: 60 }
    }
}

/// The REST API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    /// Address and port of the REST API (HTTP; put TLS in front of it).
    pub listen: SocketAddr,
    /// Lifetime of the JWTs `/rest/auth` issues, seconds.
    pub jwt_ttl_secs: u64,
    /// File holding the JWT signing key (created with a random key when missing, mode 0600);
    /// default `<data_dir>/jwt.key`. Every node of a cluster needs the same key.
    pub jwt_key_file: Option<std::path::PathBuf>,
    /// Sign-in with Google ID tokens (`X-Auth-Google-Token`): `[api.google]` with `issuer`,
    /// `client_id` and optionally `jwks_url`. Off when absent.
    pub google: Option<opentact_api::oidc::OidcConfig>,
    /// Component versions one app may keep; the next upload is refused (422) until old ones
    /// are deleted.
    pub max_component_versions_per_app: u32,
    /// Whether anyone may create an account with `POST /rest/signup` (off: the operator
    /// creates them with `opentact admin account create`).
    pub self_signup: bool,
}

impl Default for ApiSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            jwt_ttl_secs: opentact_api::ApiConfig::default().jwt_ttl_secs,
            jwt_key_file: None,
            google: None,
            max_component_versions_per_app: opentact_api::ApiConfig::default().max_component_versions_per_app,
            self_signup: false,
        }
    }
}

/// The database.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://…` or `postgres://…`; default: the SQLite file `<data_dir>/opentact.db`.
    pub url: Option<String>,
    /// Create the sample account, number and app when the store has no account yet.
    pub seed_sample: Option<bool>,
    /// The server's secret key file: the secrets the platform must read back (accounts'
    /// webhook signing keys) are sealed under it in the database. Created with a random key on
    /// first start (0600); default `<data_dir>/secret.key`. Every node of a cluster needs the
    /// same file, and a backup of the database is only usable with it.
    pub secret_key_file: Option<PathBuf>,
}

/// SIP signalling.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipSection {
    /// Address and port for UDP and TCP.
    pub listen: SocketAddr,
    /// Also listen on TCP.
    pub tcp: bool,
    /// The address put in Contact headers and SDP when `listen` is a wildcard address.
    pub advertised_address: Option<IpAddr>,
    /// Carrier trunks: source addresses (IPs or CIDR networks) whose INVITEs to the platform's
    /// numbers are accepted without a customer SIP connection.
    pub carriers: Vec<String>,
    /// The carrier trunk `<Dial>` sends calls to numbers to (address:port).
    pub outbound_proxy: Option<SocketAddr>,
    /// Let `<Dial>` reach SIP URIs at loopback and private addresses.
    pub allow_private_targets: bool,
    /// Let a SIP connection's `ip` name a loopback, private, link-local or CGNAT address
    /// (on-premises PBXs on a private network). Off: such a connection is refused with 422.
    /// The platform's own addresses are refused either way.
    pub allow_private_connection_ips: bool,
    /// The platform's SIP domain: an account's SIP domain `acme` is `acme.<domain>`, and its
    /// users register and are dialled as `alice@acme.<domain>`.
    pub domain: String,
    /// Failed digest attempts from one address within `auth_failure_window_secs` that ban it
    /// (its requests are dropped unanswered) for `auth_source_ban_secs`.
    pub auth_source_max_failures: u32,
    /// The window failures are counted in, seconds.
    pub auth_failure_window_secs: u64,
    /// How long a source is banned, seconds.
    pub auth_source_ban_secs: u64,
    /// Failed attempts on one user (from any addresses) that lock it, for `auth_user_lock_secs`,
    /// against addresses it has not authenticated from lately (its own phones keep working).
    pub auth_user_max_failures: u32,
    /// How long a user stays locked, seconds.
    pub auth_user_lock_secs: u64,
    /// Contacts one registered SIP user may have at once; more: 403 Too Many Contacts.
    pub max_contacts_per_user: usize,
    /// SIP over TLS: the address and port to listen on (5061 by convention). Unset: no TLS.
    pub tls_listen: Option<SocketAddr>,
    /// The TLS server certificate chain, PEM, leaf first (needed with `tls_listen` or
    /// `wss_listen`).
    pub tls_cert_file: Option<PathBuf>,
    /// The certificate's private key, PEM (needed with `tls_listen` or `wss_listen`).
    pub tls_key_file: Option<PathBuf>,
    /// SIP over WebSocket (RFC 7118) for the web call (`/webcall`): the address and port to
    /// listen on. Plain `ws`, which browsers allow from pages on localhost; on any other host
    /// use `wss_listen` (or put it and the API behind a TLS proxy). Unset: no plain ws.
    pub ws_listen: Option<SocketAddr>,
    /// SIP over secure WebSocket (`wss`) for the web call, with the `tls_cert_file`
    /// certificate: the address and port to listen on. Unset: no wss.
    pub wss_listen: Option<SocketAddr>,
    /// TCP, TLS and WebSocket connections one IP address may hold open at once; more are
    /// closed as soon as they are accepted.
    pub max_connections_per_source: usize,
    /// TCP, TLS and WebSocket connections everyone together may hold open at once.
    pub max_connections: usize,
    /// Milliseconds a TLS or WebSocket connection has to finish its handshake.
    pub handshake_timeout_ms: u64,
}

impl SipSection {
    /// The certificate and key of the TLS and wss listeners, read; `None` when neither is
    /// on. An error names what is missing or unreadable.
    pub fn certificate(&self) -> anyhow::Result<Option<opentact_sip::TlsCertificate>> {
        if self.tls_listen.is_none() && self.wss_listen.is_none() {
            return Ok(None);
        }
        let read = |key: &str, path: &Option<PathBuf>| -> anyhow::Result<Vec<u8>> {
            let path =
                path.as_ref().with_context(|| format!("sip.tls_listen and sip.wss_listen need sip.{key}"))?;
            std::fs::read(path).with_context(|| format!("reading sip.{key} {}", path.display()))
        };
        Ok(Some(opentact_sip::TlsCertificate {
            cert_pem: read("tls_cert_file", &self.tls_cert_file)?,
            key_pem: read("tls_key_file", &self.tls_key_file)?,
        }))
    }

    /// The bounds on stream connections, from this table.
    pub fn stream_limits(&self) -> opentact_sip::StreamLimits {
        opentact_sip::StreamLimits {
            max_per_source: self.max_connections_per_source,
            max_total: self.max_connections,
            handshake_timeout: std::time::Duration::from_millis(self.handshake_timeout_ms),
        }
    }

    /// The digest guard's limits, from this table (the rest keep the SIP layer's defaults).
    pub fn auth_limits(&self) -> opentact_sip::guard::AuthLimits {
        opentact_sip::guard::AuthLimits {
            source_max_failures: self.auth_source_max_failures,
            failure_window: std::time::Duration::from_secs(self.auth_failure_window_secs),
            source_ban: std::time::Duration::from_secs(self.auth_source_ban_secs),
            user_max_failures: self.auth_user_max_failures,
            user_lock: std::time::Duration::from_secs(self.auth_user_lock_secs),
            ..opentact_sip::guard::AuthLimits::default()
        }
    }
}

impl Default for SipSection {
    fn default() -> Self {
        let auth = opentact_sip::guard::AuthLimits::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5060)),
            tcp: true,
            advertised_address: None,
            carriers: vec!["127.0.0.1/32".to_owned()],
            outbound_proxy: None,
            allow_private_targets: false,
            allow_private_connection_ips: false,
            domain: "sip.opentact.local".to_owned(),
            auth_source_max_failures: auth.source_max_failures,
            auth_failure_window_secs: auth.failure_window.as_secs(),
            auth_source_ban_secs: auth.source_ban.as_secs(),
            auth_user_max_failures: auth.user_max_failures,
            auth_user_lock_secs: auth.user_lock.as_secs(),
            max_contacts_per_user: opentact_sip::DEFAULT_MAX_CONTACTS_PER_USER,
            tls_listen: None,
            tls_cert_file: None,
            tls_key_file: None,
            ws_listen: None,
            wss_listen: None,
            max_connections_per_source: opentact_sip::DEFAULT_MAX_STREAM_CONNECTIONS_PER_SOURCE,
            max_connections: opentact_sip::DEFAULT_MAX_STREAM_CONNECTIONS,
            handshake_timeout_ms: opentact_sip::DEFAULT_HANDSHAKE_TIMEOUT.as_millis() as u64,
        }
    }
}

/// RTP, audio files and speech.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaSection {
    /// Lowest RTP port.
    pub rtp_port_min: u16,
    /// Highest RTP port.
    pub rtp_port_max: u16,
    /// Also detect DTMF tones in the audio (always on for peers that offer no telephone-event).
    pub inband_dtmf: bool,
    /// Let `<Play>` fetch audio from loopback and private addresses.
    pub allow_private_audio_urls: bool,
    /// Let an SDP (a caller's offer, a callee's answer) name a loopback, private, link-local or
    /// the platform's own address as where its media goes. Off: such an offer is refused with
    /// 488 and such an answer fails the leg; no RTP is sent there. Unset: on when the
    /// platform's own address (`sip.advertised_address`, else the listen address) is not
    /// public — a platform on a private network talks to private peers — off otherwise.
    pub allow_private_rtp_peers: Option<bool>,
    /// RTP packets a second handled from a call's peer; the excess is dropped undecoded.
    pub rtp_max_packets_per_second: u32,
    /// Symmetric RTP for callers behind NAT: a peer that sends from another port than its SDP
    /// names (from the SDP's or the signalling's IP) is latched after the grace below.
    pub rtp_symmetric: bool,
    /// How long the exact SDP address has to send first before a NAT'd source is latched, ms.
    pub rtp_nat_latch_grace_ms: u64,
    /// Bound on the text-to-speech disk cache, MiB; the least recently used phrases go first.
    pub tts_cache_max_mib: u64,
    /// Most recordings an account keeps: at it, `<Record>` (and a background or `<Dial>`
    /// recording) fails with `limit-exceeded` until some are deleted (`DELETE /rest/record/{uuid}`).
    pub max_recordings_per_account: u64,
    /// Most MiB an account's recordings take together: at it a recording is refused the same
    /// way, and one that grows past what is left is stopped there.
    pub max_recording_mib_per_account: u64,
    /// SRTP with SDES keys (RFC 4568): `optional` answers SRTP offers with SRTP and plain ones
    /// with plain RTP, and offers SRTP on legs sent over TLS; `required` refuses plain RTP
    /// offers with 488 and offers SRTP on every leg; `off` refuses SRTP offers with 488.
    pub srtp: SrtpSetting,
}

/// `media.srtp`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SrtpSetting {
    /// Never SRTP.
    Off,
    /// SRTP when offered, and offered over TLS.
    #[default]
    Optional,
    /// Only SRTP.
    Required,
}

impl SrtpSetting {
    /// The media layer's policy.
    pub fn policy(self) -> opentact_media::srtp::SrtpPolicy {
        match self {
            SrtpSetting::Off => opentact_media::srtp::SrtpPolicy::Off,
            SrtpSetting::Optional => opentact_media::srtp::SrtpPolicy::Optional,
            SrtpSetting::Required => opentact_media::srtp::SrtpPolicy::Required,
        }
    }
}

/// `media.max_recordings_per_account` by default.
pub const DEFAULT_MAX_RECORDINGS_PER_ACCOUNT: u64 = 10_000;
/// `media.max_recording_mib_per_account` by default: 5 GiB, about 90 hours of 8 kHz audio.
pub const DEFAULT_MAX_RECORDING_MIB_PER_ACCOUNT: u64 = 5 * 1024;

impl MediaSection {
    /// The RTP sessions' defences, from this table.
    pub fn rtp_limits(&self) -> opentact_media::session::RtpLimits {
        opentact_media::session::RtpLimits {
            max_packets_per_second: self.rtp_max_packets_per_second,
            symmetric_rtp: self.rtp_symmetric,
            nat_latch_grace: std::time::Duration::from_millis(self.rtp_nat_latch_grace_ms),
        }
    }
}

impl Default for MediaSection {
    fn default() -> Self {
        Self {
            rtp_port_min: 20_000,
            rtp_port_max: 39_998,
            inband_dtmf: false,
            allow_private_audio_urls: false,
            allow_private_rtp_peers: None,
            rtp_max_packets_per_second: opentact_media::session::DEFAULT_MAX_PACKETS_PER_SECOND,
            rtp_symmetric: true,
            rtp_nat_latch_grace_ms: u64::try_from(
                opentact_media::session::DEFAULT_NAT_LATCH_GRACE.as_millis(),
            )
            .unwrap_or(1000),
            tts_cache_max_mib: opentact_media::tts::DEFAULT_DISK_CACHE_BYTES / (1024 * 1024),
            max_recordings_per_account: DEFAULT_MAX_RECORDINGS_PER_ACCOUNT,
            max_recording_mib_per_account: DEFAULT_MAX_RECORDING_MIB_PER_ACCOUNT,
            srtp: SrtpSetting::Optional,
        }
    }
}

/// The server process.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Where the platform keeps its data (database, compiled components, recordings).
    pub data_dir: PathBuf,
    /// On SIGTERM or Ctrl-C: how long calls in progress may go on (no new ones are taken)
    /// before the platform hangs them up, seconds.
    pub drain_secs: u64,
    /// This node's name in the call log: at start the node closes the CDRs it left open when
    /// it died, and only those. Default: a random id kept in `<data_dir>/node-id`. Every node
    /// sharing a PostgreSQL store needs its own.
    pub node_id: Option<String>,
    /// How often the node renews its heartbeat in the store, ms.
    pub heartbeat_ms: u64,
    /// A node whose heartbeat is older than this is dead, ms: a surviving node closes its
    /// open CDRs, fails its batch items in progress and sends its pending webhooks. Well above
    /// `heartbeat_ms` and `webhooks.timeout_ms` (a node sends only within half of it).
    pub node_timeout_ms: u64,
}

/// `server.drain_secs` when the config sets none: long enough for most short calls to end by
/// themselves, short enough for a process supervisor's stop timeout (systemd: 90 s).
pub const DEFAULT_DRAIN_SECS: u64 = 30;

impl Default for ServerConfig {
    fn default() -> Self {
        let nodes = opentact_webhooks::NodeTiming::default();
        Self {
            data_dir: PathBuf::from("data"),
            drain_secs: DEFAULT_DRAIN_SECS,
            node_id: None,
            heartbeat_ms: nodes.heartbeat_ms,
            node_timeout_ms: nodes.node_timeout_ms,
        }
    }
}

/// The event bus (websocket clients, the webhook outbox).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSection {
    /// How long published events are kept for clients that resume, seconds.
    pub retention_secs: u64,
    /// Most events kept, all accounts together; the oldest go first.
    pub max_retained: usize,
    /// Most bytes of kept events (their JSON), all accounts together.
    pub max_retained_bytes: usize,
    /// Events one websocket client may have waiting before it is cut off as too slow.
    pub subscriber_queue: usize,
    /// Live websocket subscribers per account.
    pub max_subscribers_per_account: usize,
    /// Events waiting for the webhook outbox writer; past it events are dropped and logged
    /// (each a lost webhook: the database is far behind).
    pub webhook_queue: usize,
}

impl Default for EventsSection {
    fn default() -> Self {
        let bus = opentact_events::BusConfig::default();
        Self {
            retention_secs: bus.retention.as_secs(),
            max_retained: bus.max_retained,
            max_retained_bytes: bus.max_retained_bytes,
            subscriber_queue: bus.queue_capacity,
            max_subscribers_per_account: bus.max_subscribers_per_account,
            webhook_queue: bus.tap_capacity,
        }
    }
}

impl EventsSection {
    /// The bus's configuration, from this table.
    pub fn bus_config(&self) -> opentact_events::BusConfig {
        opentact_events::BusConfig {
            retention: std::time::Duration::from_secs(self.retention_secs),
            max_retained: self.max_retained,
            queue_capacity: self.subscriber_queue,
            max_retained_bytes: self.max_retained_bytes,
            max_subscribers_per_account: self.max_subscribers_per_account,
            tap_capacity: self.webhook_queue,
        }
    }
}

/// The call engine's limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallsSection {
    /// Concurrent calls one account may have (inbound, SIP users', placed and batch calls) —
    /// on this node, or on all the nodes of a shared PostgreSQL together; over it an INVITE gets
    /// 503 and `POST /rest/call` 429.
    pub max_calls_per_account: usize,
}

impl Default for CallsSection {
    fn default() -> Self {
        Self { max_calls_per_account: opentact_calls::admission::DEFAULT_MAX_CALLS_PER_ACCOUNT }
    }
}

/// Money: what calls and messages cost.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RatingSection {
    /// The rating deck, a CSV file (`prefix,per_minute,per_sms,increment,description`; see
    /// opentact-rating). Without one nothing is rated and no call or message is refused for
    /// money. Every node of a cluster needs the same file. Read at start.
    pub deck: Option<PathBuf>,
    /// The currency of the deck's prices and of balances (shown with amounts; one per platform).
    pub currency: String,
    /// What a leased number costs a month (`"1.00"`); absent, numbers are free. A number
    /// ordered over REST is charged its first month at once (refused when the balance does not
    /// pay it), then renewed each month while `autorenew` is on, else released at its month's
    /// end (opentact_api::rental).
    pub number_monthly: Option<String>,
    /// What a minute of a call coming in to a number costs its account (`"0.0085"`); absent,
    /// calls in are free. Needs a deck (nothing is rated without one). A call in that the
    /// balance cannot pay the first block of is refused (402, Q.850 21); one in progress is
    /// ended when it has used the balance.
    pub inbound_per_minute: Option<String>,
    /// How calls in are billed: first block / next blocks, seconds.
    pub inbound_increment: String,
    /// What an SMS part coming in to a number costs its account (`"0.004"`); absent, messages
    /// in are free. Needs a deck, as `inbound_per_minute`. A message the balance does not pay
    /// is refused with "temporary error" (the SMSC delivers it again later).
    pub inbound_per_sms: Option<String>,
    /// Days an unpaid renewal is tried again before the number is released.
    pub number_grace_days: u32,
    /// How often this node re-reads the balance of accounts with calls in progress, in
    /// seconds (at least 1): a credit during a call then gives it more time, a message's
    /// charge less.
    pub balance_refresh_secs: u64,
    /// How often this node looks for leases whose month is over, in seconds.
    pub renewal_check_secs: u64,
}

impl Default for RatingSection {
    fn default() -> Self {
        Self {
            deck: None,
            currency: "USD".to_owned(),
            number_monthly: None,
            inbound_per_minute: None,
            inbound_increment: "60/60".to_owned(),
            inbound_per_sms: None,
            number_grace_days: 3,
            balance_refresh_secs: 10,
            renewal_check_secs: 300,
        }
    }
}

impl RatingSection {
    /// The number price, checked; `None` when numbers are free.
    pub fn number_price(&self) -> anyhow::Result<Option<opentact_api::rental::NumberPrice>> {
        let Some(text) = &self.number_monthly else { return Ok(None) };
        let monthly_micros = opentact_rating::parse_amount(text)
            .map_err(|reason| anyhow::anyhow!("[rating] number_monthly {text:?}: {reason}"))?;
        if monthly_micros <= 0 {
            anyhow::bail!(
                "[rating] number_monthly {text:?}: must be more than zero (leave it out for free numbers)"
            );
        }
        if self.renewal_check_secs == 0 {
            anyhow::bail!("[rating] renewal_check_secs must be at least 1");
        }
        let grace = std::time::Duration::from_secs(u64::from(self.number_grace_days) * 86_400);
        Ok(Some(opentact_api::rental::NumberPrice { monthly_micros, grace }))
    }

    /// How often the balances of calls in progress are re-read, checked.
    pub fn balance_refresh(&self) -> anyhow::Result<std::time::Duration> {
        if self.balance_refresh_secs == 0 {
            anyhow::bail!("[rating] balance_refresh_secs must be at least 1");
        }
        Ok(std::time::Duration::from_secs(self.balance_refresh_secs))
    }

    /// The rate of calls in to numbers, checked; `None` when they are free.
    pub fn inbound_rate(&self) -> anyhow::Result<Option<opentact_rating::Rate>> {
        let Some(text) = &self.inbound_per_minute else { return Ok(None) };
        let per_minute_micros = opentact_rating::parse_amount(text)
            .map_err(|reason| anyhow::anyhow!("[rating] inbound_per_minute {text:?}: {reason}"))?;
        let increment = opentact_rating::parse_increment(&self.inbound_increment)
            .map_err(|reason| anyhow::anyhow!("[rating] inbound_increment: {reason}"))?;
        if self.deck.is_none() {
            anyhow::bail!(
                "[rating] inbound_per_minute needs a rating deck ([rating] deck): nothing is rated without one"
            );
        }
        Ok(Some(opentact_rating::Rate {
            prefix: String::new(),
            per_minute_micros,
            per_sms_micros: None,
            increment,
            description: "calls in".to_owned(),
        }))
    }

    /// The price of messages in to numbers, checked; `None` when they are free.
    pub fn inbound_sms_price(&self) -> anyhow::Result<Option<opentact_messaging::inbound::InboundPrice>> {
        let Some(text) = &self.inbound_per_sms else { return Ok(None) };
        let per_part_micros = opentact_rating::parse_amount(text)
            .map_err(|reason| anyhow::anyhow!("[rating] inbound_per_sms {text:?}: {reason}"))?;
        if self.deck.is_none() {
            anyhow::bail!(
                "[rating] inbound_per_sms needs a rating deck ([rating] deck): nothing is rated without one"
            );
        }
        Ok(Some(opentact_messaging::inbound::InboundPrice {
            per_part_micros,
            currency: self.currency.clone(),
        }))
    }

    /// The deck, read and checked; `None` when none is configured.
    pub fn load_deck(&self) -> anyhow::Result<Option<std::sync::Arc<opentact_rating::Deck>>> {
        let Some(path) = &self.deck else { return Ok(None) };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the rating deck {}", path.display()))?;
        let deck = opentact_rating::Deck::from_csv(&text)
            .with_context(|| format!("the rating deck {} is invalid", path.display()))?;
        Ok(Some(std::sync::Arc::new(deck)))
    }
}

impl Config {
    /// Read `path`, or the defaults when there is none.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else { return Ok(Self::default()) };
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid configuration in {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn the_sample_configuration_is_valid() {
        let sample = include_str!("../../../opentact.sample.toml");
        let config: Config = toml::from_str(sample).expect("the committed sample parses");
        assert_eq!(config.server.data_dir, std::path::PathBuf::from("data"));
    }

    #[test]
    fn a_number_price_is_an_amount_above_zero() {
        let rating = |text: &str| toml::from_str::<Config>(text).expect("parses").rating;
        assert_eq!(rating("").number_price().expect("free"), None, "numbers are free by default");
        let price = rating("[rating]\nnumber_monthly = \"1.25\"\nnumber_grace_days = 2\n")
            .number_price()
            .expect("valid")
            .expect("priced");
        assert_eq!(price.monthly_micros, 1_250_000);
        assert_eq!(price.grace, std::time::Duration::from_secs(2 * 86_400));
        for (text, needle) in [
            ("[rating]\nnumber_monthly = \"0\"\n", "more than zero"),
            ("[rating]\nnumber_monthly = \"-1\"\n", "not an amount"),
            ("[rating]\nnumber_monthly = \"1.2.3\"\n", "not an amount"),
            ("[rating]\nnumber_monthly = \"1\"\nrenewal_check_secs = 0\n", "renewal_check_secs"),
        ] {
            let error = rating(text).number_price().expect_err(text).to_string();
            assert!(error.contains(needle), "{text}: {error}");
        }
    }

    #[test]
    fn an_inbound_rate_needs_an_amount_an_increment_and_a_deck() {
        let rating = |text: &str| toml::from_str::<Config>(text).expect("parses").rating;
        assert_eq!(rating("").inbound_rate().expect("free"), None, "calls in are free by default");
        let rate = rating("[rating]\ndeck = \"r.csv\"\ninbound_per_minute = \"0.0085\"\n")
            .inbound_rate()
            .expect("valid")
            .expect("rated");
        assert_eq!((rate.per_minute_micros, rate.increment.to_string()), (8_500, "60/60".to_owned()));
        for (text, needle) in [
            ("[rating]\ninbound_per_minute = \"0.01\"\n", "needs a rating deck"),
            ("[rating]\ndeck = \"r.csv\"\ninbound_per_minute = \"a\"\n", "not an amount"),
            (
                "[rating]\ndeck = \"r.csv\"\ninbound_per_minute = \"0.01\"\ninbound_increment = \"0/6\"\n",
                "1 to 3600",
            ),
        ] {
            let error = rating(text).inbound_rate().expect_err(text).to_string();
            assert!(error.contains(needle), "{text}: {error}");
        }
    }

    #[test]
    fn balances_are_re_read_at_least_every_second() {
        let rating = |text: &str| toml::from_str::<Config>(text).expect("parses").rating;
        assert_eq!(rating("").balance_refresh().expect("default"), std::time::Duration::from_secs(10));
        let error =
            rating("[rating]\nbalance_refresh_secs = 0\n").balance_refresh().expect_err("0").to_string();
        assert!(error.contains("balance_refresh_secs must be at least 1"), "{error}");
    }

    #[test]
    fn an_inbound_sms_price_needs_an_amount_and_a_deck() {
        let rating = |text: &str| toml::from_str::<Config>(text).expect("parses").rating;
        assert_eq!(rating("").inbound_sms_price().expect("free"), None, "messages in are free by default");
        let price = rating("[rating]\ndeck = \"r.csv\"\ninbound_per_sms = \"0.004\"\n")
            .inbound_sms_price()
            .expect("valid")
            .expect("priced");
        assert_eq!((price.per_part_micros, price.currency.as_str()), (4_000, "USD"));
        for (text, needle) in [
            ("[rating]\ninbound_per_sms = \"0.01\"\n", "needs a rating deck"),
            ("[rating]\ndeck = \"r.csv\"\ninbound_per_sms = \"free\"\n", "not an amount"),
        ] {
            let error = rating(text).inbound_sms_price().expect_err(text).to_string();
            assert!(error.contains(needle), "{text}: {error}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = toml::from_str::<Config>("[server]\ndata_dri = \"x\"\n").expect_err("a typo");
        assert!(error.to_string().contains("data_dri"), "{error}");
    }
}
