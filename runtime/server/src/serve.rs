//! `opentact serve`: the platform.
//!
//! Opens the store (SQLite under the data directory unless configured otherwise) and seeds the
//! sample account, number and app on first start; starts the flow host with the built-in XML
//! guest (compiled once into the data directory's component cache); starts SIP and routes
//! inbound calls to their apps' flows. The REST API plugs in here as it lands.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use opentact_api::UrlPolicy;
use opentact_call::events::JsonLinesSink;
use opentact_call::{CallEvent, EventSink};
use opentact_events::EventBus;
use opentact_media::fetch::{AudioFetcher, FetchPolicy};
use opentact_media::tts::EspeakTts;
use opentact_sip::{SipConfig, SipEndpoint};
use opentact_voice::{MediaRenderer, VoiceConfig};
use tracing::{info, warn};

use opentact_calls::{
    Admission, BatchRunner, CallLog, CallRouter, CallRunner, LiveCalls, Network, Originator, RestCalling,
    ServerDialer, Transcriber,
};

use crate::cli::ServeArgs;
use crate::config::Config;
use crate::sample;

/// Logs call events and writes them to the event log file (`--event-log`); the bus takes them
/// to websocket clients.
struct LogSink {
    file: Option<JsonLinesSink<std::fs::File>>,
}

impl EventSink for LogSink {
    fn emit(&self, event: &CallEvent) {
        if let Some(file) = &self.file {
            file.emit(event);
        }
        if let Ok(json) = serde_json::to_string(event) {
            tracing::debug!(target: "opentact::events", event = %json);
        }
    }
}

/// `opentact serve`.
pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(data_dir) = args.data_dir {
        config.server.data_dir = data_dir;
    }
    if let Some(listen) = args.sip_listen {
        config.sip.listen = listen;
    }
    if let Some(listen) = args.api_listen {
        config.api.listen = listen;
    }
    let data_dir = config.server.data_dir.clone();
    // Opening the store makes the data directory the key file lives in by default.
    let store = crate::provision::open_store(&config).await?;
    let secret_key_file = config.store.secret_key_file.clone().unwrap_or_else(|| data_dir.join("secret.key"));
    let sealer = opentact_store::seal::Sealer::new(&key_file(&secret_key_file)?)
        .with_context(|| format!("the secret key in {}", secret_key_file.display()))?;
    let store = store.with_sealer(sealer);
    let seed = config.store.seed_sample.unwrap_or(store.backend() == opentact_store::Backend::Sqlite);
    if seed && let Some(password) = sample::seed(&store).await? {
        sample::announce_password(&data_dir, &password)?;
    }

    let mut flows = config.flows.clone();
    if flows.cache_dir.is_none() {
        flows.cache_dir = Some(data_dir.join("components"));
    }
    if let Some(warning) = opentact_flows::check_map_count(flows.max_concurrent_calls) {
        warn!("{warning}");
    }
    let webhook_timeout_ms = flows.http.timeout_ms;
    // The node's metrics: each engine gets its handle; the store is read at scrape time.
    let metrics = Arc::new(opentact_metrics::Metrics::new(&node_id(&config.server)?));
    metrics.add_sampler(Arc::new(crate::metrics::StoreSampler(store.clone())));
    let host = Arc::new(
        opentact_flows::FlowHost::new(flows)
            .context("starting the flow host")?
            .with_metrics(metrics.flows.clone()),
    );
    let router_host = host.clone();
    let xml_guest =
        host.load_xml_guest(opentact_guest_artifacts::XML_GUEST).context("loading the built-in XML guest")?;
    info!(data_dir = %data_dir.display(), "flow host ready with the built-in XML guest");

    let carriers = config
        .sip
        .carriers
        .iter()
        .map(|text| text.parse::<Network>().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()
        .context("sip.carriers")?;
    anyhow::ensure!(
        config.media.rtp_port_min >= 1024 && config.media.rtp_port_min < config.media.rtp_port_max,
        "media: rtp_port_min ({}) must be at least 1024 and below rtp_port_max ({})",
        config.media.rtp_port_min,
        config.media.rtp_port_max
    );
    // Before any call binds an RTP socket.
    opentact_media::session::set_default_limits(config.media.rtp_limits());
    let listen_ip = config.sip.listen.ip();
    let advertised = match config.sip.advertised_address {
        Some(address) => address,
        None if listen_ip.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
        None => listen_ip,
    };
    // Outbound HTTP (webhooks, flows, audio) never calls the platform at its own public address.
    opentact_egress::set_own_addresses(
        [advertised, listen_ip].into_iter().filter(|ip| opentact_egress::is_public(*ip)).collect(),
    );
    // Calls record here; the REST API serves the files back.
    let recordings_dir = data_dir.join("recordings");
    let voice = Arc::new(VoiceConfig {
        rtp_bind: listen_ip,
        rtp_advertised: advertised,
        rtp_ports: config.media.rtp_port_min..=config.media.rtp_port_max,
        recordings_dir: recordings_dir.clone(),
        inband_dtmf: config.media.inband_dtmf,
        // Unset: a platform on a private network (its own address private) talks to private peers.
        allow_private_media: config
            .media
            .allow_private_rtp_peers
            .unwrap_or(!opentact_egress::is_public(advertised)),
        recordings: opentact_voice::RecordingQuota {
            max_count: config.media.max_recordings_per_account,
            max_bytes: config.media.max_recording_mib_per_account.saturating_mul(1024 * 1024),
            stored: Some(Arc::new(opentact_calls::call_log::StoreRecordings(Arc::new(store.clone())))),
        },
        srtp: config.media.srtp.policy(),
    });
    let tts = Arc::new(
        EspeakTts::new(Some(data_dir.join("tts-cache")))
            .with_disk_budget(config.media.tts_cache_max_mib.saturating_mul(1024 * 1024)),
    );
    let fetcher = Arc::new(AudioFetcher::new(FetchPolicy {
        allow_private: config.media.allow_private_audio_urls,
        ..FetchPolicy::default()
    }));
    let events_file = match &args.event_log {
        Some(path) => Some(JsonLinesSink::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening the event log {}", path.display()))?,
        )),
        None => None,
    };
    let (mut bus, tap) = EventBus::with_tap(config.events.bus_config());
    let node = node_id(&config.server)?;
    // Nodes sharing a PostgreSQL hear each other's events (for their websocket clients).
    let relayed_events = (store.backend() == opentact_store::Backend::Postgres).then(|| bus.relay_tap());
    let bus = Arc::new(bus);
    if let Some(own) = relayed_events
        && opentact_webhooks::event_relay::start(store.clone(), node.clone(), bus.clone(), own).await
    {
        info!(%node, "events relayed to and from the other nodes of the database");
    }
    // This node among others on the store: its heartbeat, and the take-over of dead nodes
    // (their CDRs, batch items and webhook deliveries).
    let timing = opentact_webhooks::NodeTiming {
        heartbeat_ms: config.server.heartbeat_ms,
        node_timeout_ms: config.server.node_timeout_ms,
    };
    let cluster_node = opentact_webhooks::Node::start(store.clone(), node.clone(), timing)
        .await
        .context("registering the node in the store")?;
    let webhooks =
        opentact_webhooks::Webhooks::start_on_node(store.clone(), config.webhooks.clone(), cluster_node, tap);
    webhooks.set_metrics(metrics.webhooks.clone());
    // The call engine and the API see the store through its repository traits.
    let repo: opentact_calls::Repo = Arc::new(store.clone());
    let live_calls = Arc::new(LiveCalls::with_metrics(metrics.calls.clone()));
    // An account's calls: counted in PostgreSQL when nodes share it, so the cap holds for all.
    let admission = Arc::new(
        match store.backend() {
            opentact_store::Backend::Postgres => {
                Admission::shared(config.calls.max_calls_per_account, Arc::new(store.clone()), node.clone())
            }
            opentact_store::Backend::Sqlite => Admission::new(config.calls.max_calls_per_account),
        }
        .with_metrics(metrics.calls.clone()),
    );
    // Calls this node carried when it died (a crash, a kill -9) would stay open in the log.
    let closed = opentact_store::CallLogRepo::close_abandoned_calls(
        &store,
        &node,
        chrono::Utc::now(),
        "the platform stopped while the call was in progress",
    )
    .await
    .context("closing the call log's abandoned calls")?;
    if closed > 0 {
        warn!(closed, %node, "closed the CDRs of calls that were up when this node last stopped");
    }
    // Their channels, too.
    opentact_store::LimitRepo::release_node_leases(&store, &node)
        .await
        .context("giving back the channels this node held when it last stopped")?;
    let call_log = CallLog::start(
        repo.clone(),
        Transcriber::new(&config.speech, recordings_dir.clone(), repo.clone(), bus.clone()),
        Some(node.clone()),
        Some(bus.clone()),
    );
    let deck = config.rating.load_deck()?;
    if let Some(deck) = &deck {
        info!(rows = deck.len(), currency = %config.rating.currency, "rating deck loaded: calls to numbers are rated");
    }
    let inbound_rate = config.rating.inbound_rate()?;
    let billing = Arc::new(
        opentact_calls::Billing::new(deck, repo.clone(), config.rating.currency.clone())
            .with_inbound(inbound_rate)
            .with_metrics(metrics.calls.clone())
            .with_events(bus.clone()),
    );
    // Calls in progress hear of credits and other charges: a top-up gives them more time.
    billing.keep_balances_fresh(config.rating.balance_refresh()?);
    let dialer = Arc::new(ServerDialer {
        endpoint: std::sync::OnceLock::new(),
        store: repo.clone(),
        outbound_proxy: config.sip.outbound_proxy,
        local: advertised,
        allow_private_targets: config.sip.allow_private_targets,
        sip_domain: config.sip.domain.clone(),
        live_calls: live_calls.clone(),
        admission: admission.clone(),
        shaken: Arc::new(config.stir_shaken.build()?),
        billing: billing.clone(),
        // The outbound voice profiles' channels and rates: counted in PostgreSQL when nodes
        // share it, so together they hold each profile's limits.
        trunk: match store.backend() {
            opentact_store::Backend::Postgres => opentact_calls::trunk::Trunking::with_limits(
                opentact_calls::originate::ProfileLimits::shared(Arc::new(store.clone()), node.clone()),
            ),
            opentact_store::Backend::Sqlite => Default::default(),
        },
    });
    let runner = Arc::new(CallRunner {
        store: repo.clone(),
        host,
        xml_guest,
        voice,
        renderer: MediaRenderer::new(tts, fetcher),
        events: Arc::new(LogSink { file: events_file }),
        bus: bus.clone(),
        live_calls: live_calls.clone(),
        webhook_timeout_ms,
        dialer: dialer.clone(),
        call_log: call_log.clone(),
        webhooks: webhooks.clone(),
        admission: admission.clone(),
    });
    if let Some(path) = &config.telecom.npanxx {
        crate::telecom::import_if_changed(&store, path).await?;
    }
    let telecom = crate::telecom::load(&store).await?;
    if let Some(import) = &telecom {
        info!(rows = import.rows, source = %import.source, "NPA-NXX data loaded: county, rate center, line type and carrier of numbers");
    }
    tokio::spawn(crate::telecom::keep_current(
        store.clone(),
        telecom,
        std::time::Duration::from_secs(config.telecom.refresh_secs.max(1)),
    ));
    let originator = Arc::new(Originator {
        runner: runner.clone(),
        limits: dialer.trunk.limits.clone(),
        billing: billing.clone(),
    });
    let batches = BatchRunner::new(originator.clone(), repo.clone());
    let router =
        Arc::new(CallRouter { store: repo.clone(), runner, carriers, sip_domain: config.sip.domain.clone() });
    let sip = SipEndpoint::start(
        SipConfig {
            listen: config.sip.listen,
            tcp: config.sip.tcp,
            advertised_address: Some(advertised),
            domain: config.sip.domain.clone(),
            auth: config.sip.auth_limits(),
            max_contacts_per_user: config.sip.max_contacts_per_user,
            tls_listen: config.sip.tls_listen,
            ws_listen: config.sip.ws_listen,
            wss_listen: config.sip.wss_listen,
            certificate: config.sip.certificate()?,
            stream_limits: config.sip.stream_limits(),
            ..SipConfig::default()
        },
        router,
    )
    .await
    .context("starting SIP")?;
    let sip = Arc::new(sip);
    let _ = dialer.endpoint.set(sip.clone());

    // --- messaging (issue 11): the SMPP carrier, the sender draining the store's outbox, and
    // receipts → stored states and sms.* events.
    // Inbound SMS: stored, sms.received (and the profile's webhooks), then the number's app.
    let sms_inbound = Arc::new(crate::sms_inbound::Inbound::new(
        repo.clone(),
        bus.clone(),
        Some(webhooks.clone()),
        config.flows.http.allow_private,
        config.rating.inbound_sms_price()?,
        billing.clone(),
    ));
    let messaging = crate::messaging::Messaging::start(
        &config.messaging,
        repo.clone(),
        bus.clone(),
        sms_inbound.clone(),
        metrics.sms.clone(),
        (billing.deck_arc(), &config.rating.currency),
        billing.clone(),
    )
    .context("starting messaging")?;
    sms_inbound.set_messaging(messaging.seam());
    // Flows' send-sms goes through the same seam as POST /rest/sms.
    router_host.set_sms_sender(Arc::new(crate::sms_flows::FlowSms(messaging.seam())));
    // A component app's handle-sms runs for its numbers' inbound SMS.
    sms_inbound.set_flows(Arc::new(crate::sms_flows::ComponentSmsFlows {
        host: router_host.clone(),
        store: repo.clone(),
    }));
    // --- end messaging
    // SIP MESSAGE (RFC 3428): between SIP users and connections, and to numbers as SMS
    // through the common submit path.
    let submit = opentact_messaging::sip::ControlSubmit(messaging.seam());
    let sip_messages = Arc::new(opentact_messaging::sip::SipMessages::new(
        repo.clone(),
        sip.clone(),
        &config.sip.domain,
        Some(Arc::new(submit)),
    ));
    // Inbound SMS to numbers of SIP users and SIP connections go to them as MESSAGEs.
    sms_inbound.set_sip(sip_messages.clone());
    sip.set_message_handler(sip_messages);

    // Nodes sharing a PostgreSQL relay commands for each other's calls (SQLite has one node).
    let relay = match store.backend() {
        opentact_store::Backend::Postgres => Some(
            opentact_calls::command_relay::CommandRelay::start(store.clone(), &node, live_calls.clone())
                .await,
        ),
        opentact_store::Backend::Sqlite => None,
    };
    let key_file = config.api.jwt_key_file.clone().unwrap_or_else(|| data_dir.join("jwt.key"));
    let number_price = config.rating.number_price()?;
    tokio::spawn(announce_credits(repo.clone(), bus.clone(), config.rating.currency.clone()));
    let api_state = opentact_api::ApiState::new(
        repo,
        jwt_secret(&key_file)?,
        opentact_api::ApiConfig {
            jwt_ttl_secs: config.api.jwt_ttl_secs,
            google: config.api.google.clone(),
            max_component_versions_per_app: config.api.max_component_versions_per_app,
            currency: config.rating.currency.clone(),
            self_signup: config.api.self_signup,
            number_price,
        },
    )
    .with_component_check(Arc::new(FlowHostCheck(router_host)))
    .with_events(bus)
    .with_call_control(live_calls.clone())
    .with_calling(Arc::new(RestCalling(originator.clone())))
    .with_batch_launcher(Arc::new(batches.clone()))
    .with_messaging(messaging.seam())
    .with_sip(&config.sip.domain, Some(Arc::new(RegistrarPresence(sip.clone()))))
    .with_recordings(recordings_dir)
    // URLs are checked when stored by the policy of whoever will fetch them later.
    .with_webhook_urls(UrlPolicy::new(config.webhooks.allow_private, &[]).context("webhooks")?)
    .with_flow_urls(
        UrlPolicy::new(config.flows.http.allow_private, &config.flows.http.allow)
            .context("flows.http.allow")?,
    )
    .with_node_id(&node)
    .with_webcall(opentact_api::WebcallPorts {
        ws: sip.ws_addr().map(|addr| addr.port()),
        wss: sip.wss_addr().map(|addr| addr.port()),
    })
    .with_connection_ips(opentact_api::routes::sip_connection::ConnectionIps {
        allow_private: config.sip.allow_private_connection_ips,
        platform: [advertised, listen_ip].into_iter().filter(|ip| !ip.is_unspecified()).collect(),
    });
    let api_state = match relay {
        Some(relay) => api_state.with_command_forwarder(relay),
        None => api_state,
    };
    if number_price.is_some() {
        let every = std::time::Duration::from_secs(config.rating.renewal_check_secs);
        tokio::spawn(renew_numbers(api_state.clone(), every));
    }
    let api_listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .with_context(|| format!("starting the REST API on {}", config.api.listen))?;
    let api_addr = api_listener.local_addr().context("the REST API's address")?;
    // With each client's address: failed logins are limited per address too.
    let api_service = opentact_api::router(api_state)
        .layer(axum::middleware::from_fn_with_state(metrics.http.clone(), crate::metrics::count_answers))
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let api = tokio::spawn(async move { axum::serve(api_listener, api_service).await });
    let metrics_endpoint = crate::metrics::start(&config.metrics, metrics.clone()).await?;
    let or_off = |addr: Option<std::net::SocketAddr>| {
        addr.map(|addr| addr.to_string()).unwrap_or_else(|| "off".to_owned())
    };
    let (sip_tls, sip_ws, sip_wss) = (or_off(sip.tls_addr()), or_off(sip.ws_addr()), or_off(sip.wss_addr()));
    let stop = stop_signal()?;
    info!(sip = %sip.local_addr(), %sip_tls, %sip_ws, %sip_wss, api = %api_addr, "platform ready");
    // Batches a previous run left unfinished go on.
    tokio::spawn(async move { batches.resume().await });
    if args.check {
        info!("start-up checks passed");
        sip.shutdown();
        api.abort();
        if let Some((_, endpoint)) = &metrics_endpoint {
            endpoint.abort();
        }
        return Ok(ExitCode::SUCCESS);
    }
    stop.await?;
    let drain = Duration::from_secs(config.server.drain_secs);
    info!(
        calls = live_calls.len(),
        drain_secs = drain.as_secs(),
        "stopping: no new calls; calls in progress may go on"
    );
    admission.start_draining();
    let deadline = tokio::time::Instant::now() + drain;
    while !live_calls.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !live_calls.is_empty() {
        info!(calls = live_calls.len(), "drain deadline reached: hanging up the calls in progress");
        live_calls.hang_up_all().await;
        // Their flows end and their last events come out (bounded: a BYE transaction that
        // gets no answer gives up after its own timer).
        let deadline = tokio::time::Instant::now() + HANGUP_GRACE;
        while !live_calls.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Every call's last events are in the CDRs before the store closes.
    call_log.flush().await;
    messaging.stop().await;
    sip.shutdown();
    api.abort();
    if let Some((_, endpoint)) = &metrics_endpoint {
        endpoint.abort();
    }
    // Let final responses leave before the process exits.
    tokio::time::sleep(Duration::from_millis(200)).await;
    store.close().await;
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The node's name in the call log: `server.node_id`, or the id kept in `<data_dir>/node-id`
/// (made on first start).
fn node_id(server: &crate::config::ServerConfig) -> anyhow::Result<String> {
    if let Some(node) = &server.node_id {
        return Ok(node.clone());
    }
    let path = server.data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_owned()),
        Ok(_) => anyhow::bail!("{} is empty: delete it or set server.node_id", path.display()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let node = uuid::Uuid::new_v4().to_string();
            std::fs::write(&path, format!("{node}\n"))
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(node)
        }
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// How long hung-up calls get to finish their flows and report their ends when the platform
/// stops.
const HANGUP_GRACE: Duration = Duration::from_secs(5);

/// How often this node looks for the operator's credits to announce.
const CREDITS_CHECK: Duration = Duration::from_secs(2);

/// Publishes the operator's credits (`opentact admin account credit`, made from outside the
/// running platform) as `account.changed` with the balance they left, within [`CREDITS_CHECK`].
/// Each is taken by one node of a cluster; the event relay carries it to the others.
async fn announce_credits(repo: Arc<dyn opentact_store::Repository>, bus: Arc<EventBus>, currency: String) {
    let mut ticks = tokio::time::interval(CREDITS_CHECK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match repo.take_credits_to_announce(100).await {
            Ok(credits) => {
                for credit in credits {
                    let payload = opentact_events::balance_changed_payload(
                        credit.balance_after_micros,
                        &currency,
                        &credit,
                    );
                    bus.publish(opentact_events::Event::now(
                        credit.account,
                        "account.changed",
                        None,
                        payload,
                    ));
                }
            }
            Err(error) => warn!(%error, "announcing credits: the store is unavailable"),
        }
    }
}

/// Every `every`, renews or releases the leases whose paid month is over
/// (opentact_api::rental).
async fn renew_numbers(state: opentact_api::ApiState, every: std::time::Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match opentact_api::rental::renew_due(&state, chrono::Utc::now()).await {
            Ok(sweep) if sweep != opentact_api::rental::Sweep::default() => info!(?sweep, "number renewals"),
            Ok(_) => {}
            Err(error) => warn!(%error, "number renewals: the store is unavailable"),
        }
    }
}

/// Listens for Ctrl-C and SIGTERM (what process supervisors send to stop a service) from now
/// on; the future ends at the first. Registered before the platform says it is ready: a
/// signal sent at once would otherwise end the process with the default action, no drain.
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            Ok(())
        })
    }
    #[cfg(not(unix))]
    Ok(async { tokio::signal::ctrl_c().await.context("waiting for Ctrl-C") })
}

/// The JWT signing key: read from `path`, or created there on first start, so tokens survive
/// restarts.
fn jwt_secret(path: &std::path::Path) -> anyhow::Result<opentact_api::JwtSecret> {
    let bytes = read_or_create_key(path)?;
    opentact_api::JwtSecret::new(bytes).with_context(|| format!("the JWT key in {}", path.display()))
}

/// A 32-byte key from the key file at `path` (created on first start): its SHA-256, so any
/// operator-made file of enough randomness works too.
fn key_file(path: &std::path::Path) -> anyhow::Result<[u8; 32]> {
    use sha2::Digest;
    Ok(sha2::Sha256::digest(read_or_create_key(path)?).into())
}

/// The bytes of the key file at `path`, or a new random key written there (mode 0600).
fn read_or_create_key(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let key = opentact_store::secret::new_token().context("generating a key")?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
            std::io::Write::write_all(&mut file, key.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(key.into_bytes())
        }
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// Uploaded components are compiled and linked against the flow world before they are stored
/// (and land in the component cache, so the first call does not compile).
struct FlowHostCheck(Arc<opentact_flows::FlowHost>);

impl opentact_api::ComponentCheck for FlowHostCheck {
    fn check(
        &self,
        bytes: Vec<u8>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), opentact_api::ComponentRefused>> + Send + '_>,
    > {
        // A few compiles at a time, on the blocking pool, within flows.compile_timeout_ms.
        Box::pin(async move {
            match self.0.load_component_async(bytes).await {
                Ok(_) => Ok(()),
                Err(busy @ opentact_flows::HostError::CompileBusy { .. }) => {
                    Err(opentact_api::ComponentRefused::Busy(busy.to_string()))
                }
                Err(error) => Err(opentact_api::ComponentRefused::Invalid(error.to_string())),
            }
        })
    }
}

/// SIP users' online state for the REST API: a user is online while the registrar holds a live
/// binding for it.
struct RegistrarPresence(Arc<SipEndpoint>);

impl opentact_api::SipPresence for RegistrarPresence {
    fn is_online(&self, domain: &str, login: &str) -> bool {
        !self.0.registrar().contacts(domain, login).is_empty()
    }
}
