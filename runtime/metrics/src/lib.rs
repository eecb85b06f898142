//! The node's Prometheus metrics: one [`Metrics`] per process, made by the binary, which hands
//! each engine its handle ([`CallMetrics`] to the live-call registry, [`FlowMetrics`] to the
//! flow host, [`WebhookMetrics`] to the webhook dispatcher, …). A handle is a few `Arc`s:
//! cheap to clone, lock-free to update. An engine built without one (a unit test, a tool) gets
//! `Default`, a handle registered nowhere, so instrumented code has no `Option` to check.
//!
//! Counters and gauges the engines move as things happen live in memory. What only the
//! database knows — the webhook outbox's backlog, the SMS queue, the connection pool — is read
//! at scrape time by the [`Sampler`]s the binary adds ([`Metrics::add_sampler`]), within
//! [`SAMPLE_TIMEOUT`], so an idle node costs nothing between scrapes.
//!
//! Everything is exported under the `opentact_` prefix in the Prometheus text format 0.0.4
//! ([`Metrics::scrape`], [`CONTENT_TYPE`]). Labels have a fixed, small set of values (a
//! direction, a cause, a status class): never an account, a number or a URL, so the number of
//! series does not grow with traffic and the endpoint does not leak who is calling whom.
//!
//! | metric | type | what |
//! |---|---|---|
//! | `opentact_node_info{node,version}` | gauge | 1; the node's id and the build |
//! | `opentact_calls_up` | gauge | calls whose flow runs on this node now |
//! | `opentact_calls_total{direction}` | counter | calls started (`rate()` gives calls/s) |
//! | `opentact_calls_refused_total{reason}` | counter | calls refused before they rang, by [`CallRefusal`] |
//! | `opentact_flow_starts_total{trigger}` | counter | flows started, for a call or an SMS |
//! | `opentact_flow_failures_total{cause}` | counter | flows that did not complete, by [`FlowFailure`] |
//! | `opentact_flows_parked` | gauge | async-mode flows waiting for their next REST command |
//! | `opentact_webhook_backlog` | gauge | deliveries pending in the outbox (all nodes) |
//! | `opentact_webhook_oldest_pending_seconds` | gauge | age of the oldest pending delivery |
//! | `opentact_webhook_delivery_delay_seconds` | histogram | event stored → receiver's 2xx |
//! | `opentact_webhook_given_up_total` | counter | deliveries failed after their last attempt |
//! | `opentact_sms_queue_depth` | gauge | outbound messages queued, not yet taken by the carrier |
//! | `opentact_sms_submitted_total` | counter | messages whose every part the carrier accepted |
//! | `opentact_sms_failed_total` | counter | outbound messages that failed |
//! | `opentact_db_pool_connections{state}` | gauge | the pool's `idle` and `in_use` connections |
//! | `opentact_db_pool_max_connections` | gauge | the pool's size limit |
//! | `opentact_db_pool_acquire_seconds` | gauge | how long the scrape waited for a connection |
//! | `opentact_http_requests_total{class}` | counter | REST API answers by status class (`2xx`…) |

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::scrape`]'s text (the Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Longest the samplers may take at one scrape: a scrape while the database is slow answers
/// with the last sampled values instead of waiting past Prometheus' own scrape timeout
/// (10 s by default).
pub const SAMPLE_TIMEOUT: Duration = Duration::from_secs(2);

/// One label, `name="value"`, with values from a fixed set.
type Label = [(&'static str, &'static str); 1];

/// A gauge of seconds (or any fraction).
type SecondsGauge = Gauge<f64, AtomicU64>;

/// Which way a call goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallDirection {
    /// An INVITE the platform received.
    Inbound,
    /// A call the platform placed (`POST /rest/call`, a batch, `<Dial>`'s legs are not calls).
    Outbound,
}

impl CallDirection {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CallDirection::Inbound => "inbound",
            CallDirection::Outbound => "outbound",
        }
    }
}

/// What started a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowTrigger {
    /// `handle-call`.
    Call,
    /// `handle-sms`.
    Sms,
}

impl FlowTrigger {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowTrigger::Call => "call",
            FlowTrigger::Sms => "sms",
        }
    }
}

/// Why a flow did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowFailure {
    /// The guest's handler returned an error.
    GuestError,
    /// The guest trapped (`unreachable`, a panic, an out-of-bounds access, …).
    Trap,
    /// The guest overflowed its wasm stack.
    StackOverflow,
    /// The guest computed past its CPU budget (a segment's or the call's total).
    Cpu,
    /// The guest asked for more memory than its limit.
    Memory,
    /// The flow ran past its wall-clock limit (the call's maximum length, the SMS flow limit).
    Timeout,
    /// No flow could start: the instance pool or the kernel's mappings are full.
    Capacity,
    /// The host stopped the flow (it went on past a budget, e.g. reports).
    Stopped,
    /// The component could not be instantiated for another reason.
    Start,
    /// The host's own code for the flow panicked (a bug; the call ended cleanly).
    Panic,
}

impl FlowFailure {
    /// Every cause, in the order the metric lists them.
    pub const ALL: [FlowFailure; 10] = [
        FlowFailure::GuestError,
        FlowFailure::Trap,
        FlowFailure::StackOverflow,
        FlowFailure::Cpu,
        FlowFailure::Memory,
        FlowFailure::Timeout,
        FlowFailure::Capacity,
        FlowFailure::Stopped,
        FlowFailure::Start,
        FlowFailure::Panic,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowFailure::GuestError => "guest_error",
            FlowFailure::Trap => "trap",
            FlowFailure::StackOverflow => "stack_overflow",
            FlowFailure::Cpu => "cpu",
            FlowFailure::Memory => "memory",
            FlowFailure::Timeout => "timeout",
            FlowFailure::Capacity => "capacity",
            FlowFailure::Stopped => "stopped",
            FlowFailure::Start => "start",
            FlowFailure::Panic => "panic",
        }
    }
}

/// The live-call registry's metrics.
#[derive(Debug, Clone, Default)]
pub struct CallMetrics {
    up: Gauge,
    total: Family<Label, Counter>,
    refused: Family<Label, Counter>,
}

/// Why the platform refused a call before it rang, as `opentact_calls_refused_total` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallRefusal {
    /// The account had as many calls as `[calls] max_calls_per_account` lets it.
    AccountLimit,
    /// The node was stopping.
    Draining,
    /// The account could not pay for it (balance, daily spend limit, max_rate, no rate).
    Payment,
}

impl CallRefusal {
    pub const ALL: [CallRefusal; 3] =
        [CallRefusal::AccountLimit, CallRefusal::Draining, CallRefusal::Payment];

    pub fn as_str(self) -> &'static str {
        match self {
            CallRefusal::AccountLimit => "account_limit",
            CallRefusal::Draining => "draining",
            CallRefusal::Payment => "payment",
        }
    }
}

impl CallMetrics {
    /// A call's flow is about to run on this node.
    pub fn started(&self, direction: CallDirection) {
        self.total.get_or_create(&[("direction", direction.as_str())]).inc();
        self.up.inc();
    }

    /// A call [`CallMetrics::started`] has ended (call it once per started call).
    pub fn ended(&self) {
        self.up.dec();
    }

    /// Calls up now.
    pub fn up(&self) -> i64 {
        self.up.get()
    }

    /// Calls started so far in `direction`.
    pub fn total(&self, direction: CallDirection) -> u64 {
        self.total.get_or_create(&[("direction", direction.as_str())]).get()
    }

    /// A call was refused before it rang.
    pub fn refused(&self, reason: CallRefusal) {
        self.refused.get_or_create(&[("reason", reason.as_str())]).inc();
    }

    /// Calls refused so far for `reason`.
    pub fn refusals(&self, reason: CallRefusal) -> u64 {
        self.refused.get_or_create(&[("reason", reason.as_str())]).get()
    }
}

/// The flow host's metrics.
#[derive(Debug, Clone, Default)]
pub struct FlowMetrics {
    starts: Family<Label, Counter>,
    failures: Family<Label, Counter>,
    parked: Gauge,
}

impl FlowMetrics {
    /// A flow starts.
    pub fn started(&self, trigger: FlowTrigger) {
        self.starts.get_or_create(&[("trigger", trigger.as_str())]).inc();
    }

    /// A flow ended without completing.
    pub fn failed(&self, cause: FlowFailure) {
        self.failures.get_or_create(&[("cause", cause.as_str())]).inc();
    }

    /// A flow waits for its next command; it counts as parked until the guard is dropped
    /// (a command came, the wait timed out, or the flow was torn down while waiting).
    pub fn park(&self) -> Parked {
        self.parked.inc();
        Parked(self.parked.clone())
    }

    /// Flows started so far for `trigger`.
    pub fn starts(&self, trigger: FlowTrigger) -> u64 {
        self.starts.get_or_create(&[("trigger", trigger.as_str())]).get()
    }

    /// Flows failed so far of `cause`.
    pub fn failures(&self, cause: FlowFailure) -> u64 {
        self.failures.get_or_create(&[("cause", cause.as_str())]).get()
    }

    /// Flows parked now.
    pub fn parked(&self) -> i64 {
        self.parked.get()
    }
}

/// A parked flow (see [`FlowMetrics::park`]).
#[derive(Debug)]
pub struct Parked(Gauge);

impl Drop for Parked {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The webhook outbox's metrics.
#[derive(Debug, Clone)]
pub struct WebhookMetrics {
    backlog: Gauge,
    oldest_pending: SecondsGauge,
    delay: Histogram,
    given_up: Counter,
}

/// Buckets of the delivery delay, seconds: 10 ms to about 11 min (retries back off to
/// minutes), ×2 each.
fn delay_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.01, 2.0, 17)
}

impl Default for WebhookMetrics {
    fn default() -> Self {
        Self {
            backlog: Gauge::default(),
            oldest_pending: SecondsGauge::default(),
            delay: Histogram::new(delay_buckets()),
            given_up: Counter::default(),
        }
    }
}

impl WebhookMetrics {
    /// A receiver acknowledged a delivery `delay` after its event was stored.
    pub fn delivered(&self, delay: Duration) {
        self.delay.observe(delay.as_secs_f64());
    }

    /// A delivery failed its last attempt.
    pub fn given_up(&self) {
        self.given_up.inc();
    }

    /// What the outbox holds (sampled at scrape time): pending deliveries and the age of the
    /// oldest (zero when none).
    pub fn set_backlog(&self, pending: u64, oldest: Duration) {
        self.backlog.set(i64::try_from(pending).unwrap_or(i64::MAX));
        self.oldest_pending.set(oldest.as_secs_f64());
    }
}

/// Outbound SMS metrics.
#[derive(Debug, Clone, Default)]
pub struct SmsMetrics {
    queue_depth: Gauge,
    submitted: Counter,
    failed: Counter,
}

impl SmsMetrics {
    /// The carrier accepted every part of a message.
    pub fn submitted(&self) {
        self.submitted.inc();
    }

    /// An outbound message failed (refused, given up, undeliverable).
    pub fn failed(&self) {
        self.failed.inc();
    }

    /// Outbound messages queued (sampled at scrape time).
    pub fn set_queue_depth(&self, queued: u64) {
        self.queue_depth.set(i64::try_from(queued).unwrap_or(i64::MAX));
    }
}

/// The database connection pool, as sampled at scrape time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PoolSample {
    /// Connections open now.
    pub size: u32,
    /// Of which idle.
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
    /// How long taking a connection took: a pool whose connections are all busy makes every
    /// query wait about this long.
    pub acquire: Duration,
}

/// The database pool's metrics.
#[derive(Debug, Clone, Default)]
pub struct PoolMetrics {
    connections: Family<Label, Gauge>,
    max: Gauge,
    acquire: SecondsGauge,
}

impl PoolMetrics {
    /// Record a sample.
    pub fn set(&self, sample: PoolSample) {
        let idle = sample.idle.min(sample.size);
        self.connections.get_or_create(&[("state", "idle")]).set(i64::from(idle));
        self.connections.get_or_create(&[("state", "in_use")]).set(i64::from(sample.size - idle));
        self.max.set(i64::from(sample.max));
        self.acquire.set(sample.acquire.as_secs_f64());
    }
}

/// The REST API's metrics.
#[derive(Debug, Clone, Default)]
pub struct HttpMetrics {
    requests: Family<Label, Counter>,
}

impl HttpMetrics {
    /// The API answered with `status`.
    pub fn answered(&self, status: u16) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests.get_or_create(&[("class", class)]).inc();
    }
}

/// Reads what only the database (or another engine) knows into the metrics, at scrape time.
pub trait Sampler: Send + Sync {
    /// Set the gauges this sampler owns on `metrics`. Errors are the sampler's to log; the
    /// gauges then keep their last values.
    fn sample<'a>(&'a self, metrics: &'a Metrics) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// The node's metrics: the registry and every engine's handle.
pub struct Metrics {
    registry: Registry,
    /// Live calls.
    pub calls: CallMetrics,
    /// Flows.
    pub flows: FlowMetrics,
    /// The webhook outbox.
    pub webhooks: WebhookMetrics,
    /// Outbound SMS.
    pub sms: SmsMetrics,
    /// The database pool.
    pub pool: PoolMetrics,
    /// The REST API.
    pub http: HttpMetrics,
    samplers: Mutex<Vec<Arc<dyn Sampler>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("samplers", &self.samplers.lock().len()).finish_non_exhaustive()
    }
}

impl Metrics {
    /// Every metric, registered; `node` is this node's id (`opentact_node_info`).
    pub fn new(node: &str) -> Self {
        let mut registry = Registry::with_prefix("opentact");
        let info = Family::<Vec<(&'static str, String)>, Gauge>::default();
        info.get_or_create(&vec![
            ("node", node.to_owned()),
            ("version", env!("CARGO_PKG_VERSION").to_owned()),
        ])
        .set(1);
        registry.register("node_info", "This node's id and build (always 1)", info);

        let calls = CallMetrics::default();
        registry.register("calls_up", "Calls whose flow runs on this node now", calls.up.clone());
        registry.register("calls", "Calls started on this node, by direction", calls.total.clone());
        for direction in [CallDirection::Inbound, CallDirection::Outbound] {
            let _ = calls.total.get_or_create(&[("direction", direction.as_str())]);
        }
        registry.register(
            "calls_refused",
            "Calls refused before they rang, by reason",
            calls.refused.clone(),
        );
        for reason in CallRefusal::ALL {
            let _ = calls.refused.get_or_create(&[("reason", reason.as_str())]);
        }

        let flows = FlowMetrics::default();
        registry.register("flow_starts", "Flows started, by trigger", flows.starts.clone());
        registry.register("flow_failures", "Flows that did not complete, by cause", flows.failures.clone());
        registry.register(
            "flows_parked",
            "Async-mode flows waiting for their next REST command",
            flows.parked.clone(),
        );
        // Every label value from the first scrape on, so rate() and absent() behave.
        for trigger in [FlowTrigger::Call, FlowTrigger::Sms] {
            let _ = flows.starts.get_or_create(&[("trigger", trigger.as_str())]);
        }
        for cause in FlowFailure::ALL {
            let _ = flows.failures.get_or_create(&[("cause", cause.as_str())]);
        }

        let webhooks = WebhookMetrics::default();
        registry.register(
            "webhook_backlog",
            "Webhook deliveries pending in the outbox (every node's), sampled at scrape",
            webhooks.backlog.clone(),
        );
        registry.register(
            "webhook_oldest_pending_seconds",
            "Age of the oldest pending webhook delivery, sampled at scrape",
            webhooks.oldest_pending.clone(),
        );
        registry.register(
            "webhook_delivery_delay_seconds",
            "Time from an event stored in the outbox to its receiver's 2xx, retries included",
            webhooks.delay.clone(),
        );
        registry.register(
            "webhook_given_up",
            "Webhook deliveries failed after their last attempt",
            webhooks.given_up.clone(),
        );

        let sms = SmsMetrics::default();
        registry.register(
            "sms_queue_depth",
            "Outbound SMS queued, not yet accepted by the carrier, sampled at scrape",
            sms.queue_depth.clone(),
        );
        registry.register(
            "sms_submitted",
            "Outbound SMS whose every part the carrier accepted",
            sms.submitted.clone(),
        );
        registry.register("sms_failed", "Outbound SMS that failed", sms.failed.clone());

        let pool = PoolMetrics::default();
        registry.register(
            "db_pool_connections",
            "Database pool connections by state, sampled at scrape",
            pool.connections.clone(),
        );
        registry.register("db_pool_max_connections", "The database pool's size limit", pool.max.clone());
        registry.register(
            "db_pool_acquire_seconds",
            "How long the scrape waited for a database connection (pool waits)",
            pool.acquire.clone(),
        );

        let http = HttpMetrics::default();
        registry.register("http_requests", "REST API answers by status class", http.requests.clone());

        Self { registry, calls, flows, webhooks, sms, pool, http, samplers: Mutex::new(Vec::new()) }
    }

    /// Run `sampler` at every scrape.
    pub fn add_sampler(&self, sampler: Arc<dyn Sampler>) {
        self.samplers.lock().push(sampler);
    }

    /// Sample (within [`SAMPLE_TIMEOUT`]) and encode every metric as Prometheus text.
    pub async fn scrape(&self) -> String {
        let samplers = self.samplers.lock().clone();
        for sampler in samplers {
            if tokio::time::timeout(SAMPLE_TIMEOUT, sampler.sample(self)).await.is_err() {
                tracing::warn!(
                    timeout_ms = SAMPLE_TIMEOUT.as_millis() as u64,
                    "metrics: a sampler took too long; its gauges keep their last values"
                );
            }
        }
        self.encode()
    }

    /// Every metric as Prometheus text, without sampling.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry) {
            // Writing to a String cannot fail; a metric's encoder could, and says so here.
            let _ = writeln!(text, "# encoding failed: {error}");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line that starts with `series` (name and labels).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|rest| rest.trim().parse().ok())
    }

    #[test]
    fn a_fresh_registry_lists_every_metric_at_zero() {
        let text = Metrics::new("node-a").encode();
        assert!(text.contains("# TYPE opentact_calls_total counter"), "{text}");
        assert!(text.contains("# TYPE opentact_calls_up gauge"), "{text}");
        assert!(text.contains("# TYPE opentact_webhook_delivery_delay_seconds histogram"), "{text}");
        assert_eq!(value(&text, "opentact_calls_up"), Some(0.0), "{text}");
        assert_eq!(value(&text, r#"opentact_calls_total{direction="inbound"}"#), Some(0.0), "{text}");
        for reason in CallRefusal::ALL {
            let series = format!(r#"opentact_calls_refused_total{{reason="{}"}}"#, reason.as_str());
            assert_eq!(value(&text, &series), Some(0.0), "{series} in {text}");
        }
        for cause in FlowFailure::ALL {
            let series = format!(r#"opentact_flow_failures_total{{cause="{}"}}"#, cause.as_str());
            assert_eq!(value(&text, &series), Some(0.0), "{series} in {text}");
        }
        assert_eq!(value(&text, r#"opentact_node_info{node="node-a",version="0.1.0"}"#), Some(1.0), "{text}");
    }

    #[test]
    fn calls_flows_and_parks_show_in_the_text() {
        let metrics = Metrics::new("n");
        metrics.calls.started(CallDirection::Inbound);
        metrics.calls.started(CallDirection::Outbound);
        metrics.calls.started(CallDirection::Inbound);
        metrics.calls.ended();
        metrics.flows.started(FlowTrigger::Call);
        metrics.flows.failed(FlowFailure::Cpu);
        metrics.flows.failed(FlowFailure::Cpu);
        let parked = metrics.flows.park();
        let text = metrics.encode();
        assert_eq!(value(&text, "opentact_calls_up"), Some(2.0), "{text}");
        assert_eq!(value(&text, r#"opentact_calls_total{direction="inbound"}"#), Some(2.0), "{text}");
        assert_eq!(value(&text, r#"opentact_calls_total{direction="outbound"}"#), Some(1.0), "{text}");
        assert_eq!(value(&text, r#"opentact_flow_starts_total{trigger="call"}"#), Some(1.0), "{text}");
        assert_eq!(value(&text, r#"opentact_flow_failures_total{cause="cpu"}"#), Some(2.0), "{text}");
        assert_eq!(value(&text, "opentact_flows_parked"), Some(1.0), "{text}");
        drop(parked);
        assert_eq!(value(&metrics.encode(), "opentact_flows_parked"), Some(0.0));
    }

    #[test]
    fn webhook_delays_fill_the_histogram_and_http_answers_count_by_class() {
        let metrics = Metrics::new("n");
        metrics.webhooks.delivered(Duration::from_millis(30));
        metrics.webhooks.delivered(Duration::from_secs(5));
        metrics.webhooks.given_up();
        metrics.http.answered(200);
        metrics.http.answered(201);
        metrics.http.answered(404);
        metrics.http.answered(503);
        let text = metrics.encode();
        assert_eq!(value(&text, "opentact_webhook_delivery_delay_seconds_count"), Some(2.0), "{text}");
        assert_eq!(value(&text, "opentact_webhook_delivery_delay_seconds_sum"), Some(5.03), "{text}");
        assert_eq!(
            value(&text, r#"opentact_webhook_delivery_delay_seconds_bucket{le="0.04"}"#),
            Some(1.0),
            "30 ms falls in the 40 ms bucket: {text}"
        );
        assert_eq!(value(&text, r#"opentact_webhook_delivery_delay_seconds_bucket{le="+Inf"}"#), Some(2.0));
        assert_eq!(value(&text, "opentact_webhook_given_up_total"), Some(1.0), "{text}");
        assert_eq!(value(&text, r#"opentact_http_requests_total{class="2xx"}"#), Some(2.0), "{text}");
        assert_eq!(value(&text, r#"opentact_http_requests_total{class="4xx"}"#), Some(1.0), "{text}");
        assert_eq!(value(&text, r#"opentact_http_requests_total{class="5xx"}"#), Some(1.0), "{text}");
    }

    struct FixedStore;

    impl Sampler for FixedStore {
        fn sample<'a>(&'a self, metrics: &'a Metrics) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
            Box::pin(async move {
                metrics.webhooks.set_backlog(7, Duration::from_millis(1500));
                metrics.sms.set_queue_depth(3);
                metrics.pool.set(PoolSample { size: 5, idle: 2, max: 10, acquire: Duration::from_millis(4) });
            })
        }
    }

    #[tokio::test]
    async fn scrapes_run_the_samplers_first() {
        let metrics = Metrics::new("n");
        assert_eq!(value(&metrics.encode(), "opentact_webhook_backlog"), Some(0.0));
        metrics.add_sampler(Arc::new(FixedStore));
        let text = metrics.scrape().await;
        assert_eq!(value(&text, "opentact_webhook_backlog"), Some(7.0), "{text}");
        assert_eq!(value(&text, "opentact_webhook_oldest_pending_seconds"), Some(1.5), "{text}");
        assert_eq!(value(&text, "opentact_sms_queue_depth"), Some(3.0), "{text}");
        assert_eq!(value(&text, r#"opentact_db_pool_connections{state="idle"}"#), Some(2.0), "{text}");
        assert_eq!(value(&text, r#"opentact_db_pool_connections{state="in_use"}"#), Some(3.0), "{text}");
        assert_eq!(value(&text, "opentact_db_pool_max_connections"), Some(10.0), "{text}");
        assert_eq!(value(&text, "opentact_db_pool_acquire_seconds"), Some(0.004), "{text}");
    }

    #[test]
    fn unregistered_handles_count_on_their_own() {
        let calls = CallMetrics::default();
        calls.started(CallDirection::Outbound);
        assert_eq!(calls.up(), 1);
        assert_eq!(calls.total(CallDirection::Outbound), 1);
        calls.ended();
        assert_eq!(calls.up(), 0);
    }
}
