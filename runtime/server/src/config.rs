//! The typed configuration: one TOML file, a table per subsystem, unknown keys refused.
//! `opentact.sample.toml` at the repository root documents every key.

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
}

/// The server process.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Where the platform keeps its data (database, compiled components, recordings).
    pub data_dir: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self { data_dir: PathBuf::from("data") }
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
    fn unknown_keys_are_refused() {
        let error = toml::from_str::<Config>("[server]\ndata_dri = \"x\"\n").expect_err("a typo");
        assert!(error.to_string().contains("data_dri"), "{error}");
    }
}
