//! `GET /metrics` (Prometheus text format) on its own listener, `[metrics] listen`, and the
//! wiring of the node's [`Metrics`]: the store sampled at scrape time, the REST API's answers
//! counted by a layer around its router.
//!
//! Off unless `[metrics] listen` is set. The endpoint shows call, flow, webhook and SMS volumes
//! (never an account, a number or a URL), which is still the operator's business only: it has
//! its own address so it can stay on loopback or a management network, apart from the public
//! API, and off loopback it requires a bearer token (`bearer_token_file`). See SECURITY.md.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use opentact_metrics::{HttpMetrics, Metrics, PoolSample, Sampler};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tracing::{debug, info};

/// The `[metrics]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Address and port of `GET /metrics`; off when absent. Keep it on loopback or a
    /// management network: anything else requires `bearer_token_file`.
    pub listen: Option<SocketAddr>,
    /// A file holding the token scrapers must send (`Authorization: Bearer <token>`; the
    /// file's content, surrounding whitespace trimmed). Required unless `listen` is loopback.
    pub bearer_token_file: Option<PathBuf>,
}

/// Reads the store's pool and outboxes at each scrape.
#[derive(Debug)]
pub struct StoreSampler(pub opentact_store::Store);

impl Sampler for StoreSampler {
    fn sample<'a>(&'a self, metrics: &'a Metrics) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let pool = self.0.pool_stats();
            match self.0.probe_acquire().await {
                Ok(acquire) => {
                    metrics.pool.set(PoolSample { size: pool.size, idle: pool.idle, max: pool.max, acquire })
                }
                Err(error) => debug!(%error, "metrics: taking a database connection"),
            }
            match self.0.outbox_depths().await {
                Ok(depths) => {
                    let oldest = depths
                        .webhooks_oldest
                        .and_then(|at| opentact_store::now().signed_duration_since(at).to_std().ok())
                        .unwrap_or_default();
                    metrics.webhooks.set_backlog(depths.webhooks_pending, oldest);
                    metrics.sms.set_queue_depth(depths.sms_queued);
                }
                Err(error) => debug!(%error, "metrics: reading the outboxes' depths"),
            }
        })
    }
}

/// Counts the REST API's answers by status class (a layer around its router).
pub async fn count_answers(State(http): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    http.answered(response.status().as_u16());
    response
}

#[derive(Clone)]
struct Endpoint {
    metrics: Arc<Metrics>,
    /// The SHA-256 of the bearer token, when one is required (compared as digests, so the
    /// comparison's time says nothing about the token).
    token: Option<[u8; 32]>,
}

/// Starts `GET /metrics` on `[metrics] listen`; `None` when it is off. Refuses an address off
/// loopback without a token.
pub async fn start(
    section: &MetricsSection,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Option<(SocketAddr, tokio::task::JoinHandle<()>)>> {
    let Some(listen) = section.listen else { return Ok(None) };
    let token = match &section.bearer_token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("metrics.bearer_token_file {}", path.display()))?;
            let token = text.trim();
            anyhow::ensure!(!token.is_empty(), "metrics.bearer_token_file {} is empty", path.display());
            Some(Sha256::digest(token.as_bytes()).into())
        }
        None => None,
    };
    anyhow::ensure!(
        token.is_some() || listen.ip().is_loopback(),
        "metrics.listen {listen} is not a loopback address: set metrics.bearer_token_file too \
         (the endpoint shows the node's call and message volumes)"
    );
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("starting the metrics endpoint on {listen}"))?;
    let addr = listener.local_addr().context("the metrics endpoint's address")?;
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(Endpoint { metrics, token });
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(%error, "the metrics endpoint stopped");
        }
    });
    info!(metrics = %addr, authenticated = token.is_some(), "metrics endpoint ready");
    Ok(Some((addr, task)))
}

async fn scrape(State(endpoint): State<Endpoint>, headers: HeaderMap) -> Response {
    if let Some(expected) = endpoint.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(|token| <[u8; 32]>::from(Sha256::digest(token.trim().as_bytes())));
        if given != Some(expected) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a bearer token is required\n",
            )
                .into_response();
        }
    }
    let text = endpoint.metrics.scrape().await;
    ([(header::CONTENT_TYPE, opentact_metrics::CONTENT_TYPE)], text).into_response()
}
