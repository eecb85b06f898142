//! `opentact serve`: the platform.
//!
//! Today it starts the flow host with the built-in XML guest (compiled once into the data
//! directory's component cache) and checks the machine's limits; SIP signalling, the REST API and
//! the sample account/number plug in here as they land.

use std::process::ExitCode;

use anyhow::Context;
use tracing::{info, warn};

use crate::cli::ServeArgs;
use crate::config::Config;

/// `opentact serve`.
pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(data_dir) = args.data_dir {
        config.server.data_dir = data_dir;
    }
    let data_dir = &config.server.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let mut flows = config.flows.clone();
    if flows.cache_dir.is_none() {
        flows.cache_dir = Some(data_dir.join("components"));
    }
    if let Some(warning) = opentact_flows::check_map_count(flows.max_concurrent_calls) {
        warn!("{warning}");
    }
    let host = opentact_flows::FlowHost::new(flows).context("starting the flow host")?;
    host.load_component(opentact_guest_artifacts::XML_GUEST).context("loading the built-in XML guest")?;
    info!(data_dir = %data_dir.display(), "flow host ready with the built-in XML guest");
    if args.check {
        info!("start-up checks passed");
        return Ok(ExitCode::SUCCESS);
    }
    info!("try a flow locally: opentact flow run examples/xml/ivr.xml --digits 1");
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    info!("shutting down");
    Ok(ExitCode::SUCCESS)
}
