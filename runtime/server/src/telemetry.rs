//! Optional OpenTelemetry export of the platform's tracing spans (issue 14, item 7): each call's
//! span (`call`, with the call's uuid) and what runs inside it — the flow (`flow`), the guest's
//! imports, dials — sent to an OTLP/HTTP collector.
//!
//! Off unless the standard OpenTelemetry variables name a collector:
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (the collector's base URL, `/v1/traces` appended) or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL). `OTEL_EXPORTER_OTLP_PROTOCOL` picks
//! `http/protobuf` (the default) or `http/json`; `OTEL_SERVICE_NAME` names the service
//! (`opentact` by default) and `OTEL_BSP_SCHEDULE_DELAY` how often batches go (ms). Which
//! spans are exported follows `OPENTACT_TRACE` (an `OPENTACT_LOG`-style filter; `info` by
//! default, with the SIP stack and SQL driver at `warn`).
//!
//! Spans are batched on the exporter's own thread and sent with a blocking HTTP client, so
//! exporting never runs on the platform's async runtime; a collector that is down costs the
//! dropped batches, logged, and nothing else.

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
const DEFAULT_FILTER: &str = "info,rsipstack=warn,sqlx=warn";

/// The span exporter while it runs; [`Telemetry::shutdown`] sends what is still batched.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// The exporter the environment asks for; `None` when no collector is named. Call before
    /// the async runtime starts: the blocking HTTP client must not be built inside it.
    pub fn from_env() -> anyhow::Result<Option<Telemetry>> {
        let named = |name: &str| std::env::var(name).ok().filter(|value| !value.trim().is_empty());
        if named(ENDPOINT).is_none() && named(TRACES_ENDPOINT).is_none() {
            return Ok(None);
        }
        let protocol = match named(PROTOCOL).as_deref() {
            None | Some("http/protobuf") => Protocol::HttpBinary,
            Some("http/json") => Protocol::HttpJson,
            Some(other) => {
                anyhow::bail!("{PROTOCOL}={other}: opentact exports over http/protobuf or http/json")
            }
        };
        // https collectors are checked against Mozilla's roots, like every other outbound
        // request of the platform (opentact-egress).
        let (tls, _) = opentact_egress::tls("localhost").context("the TLS configuration")?;
        let http = reqwest::blocking::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .no_proxy()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .context("the OTLP HTTP client")?;
        // The endpoint comes from the variables above (the exporter reads them itself).
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .with_http_client(http)
            .build()
            .context("the OTLP span exporter")?;
        let service = named(SERVICE_NAME).unwrap_or_else(|| "opentact".to_owned());
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service).build())
            .build();
        Ok(Some(Telemetry { provider }))
    }

    /// The tracing layer that turns spans into OpenTelemetry spans, filtered by
    /// `OPENTACT_TRACE`.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        let filter = tracing_subscriber::EnvFilter::try_from_env("OPENTACT_TRACE")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER));
        // The exporter's own logs (a failed export) go to the log, never into an export.
        let filter = ["opentelemetry", "opentelemetry_sdk", "opentelemetry_otlp", "opentelemetry_http"]
            .into_iter()
            .filter_map(|target| format!("{target}=off").parse().ok())
            .fold(filter, |filter, directive| filter.add_directive(directive));
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("opentact")).with_filter(filter)
    }

    /// Send the spans still batched and stop the exporter's thread.
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("warning: OpenTelemetry export: {error}");
        }
    }
}
