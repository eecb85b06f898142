//! The flow host's typed configuration (the `[flows]` table of the config file).

use std::path::PathBuf;

use serde::Deserialize;

/// Limits and policy of flows. Every field has a default; unknown keys are refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    /// Flows that can run at once (default 1000). Sizes the instance pool, whose exhaustion
    /// refuses new flows: the platform's admission control.
    pub max_concurrent_calls: u32,
    /// Linear memory one flow may use, MiB (default 64).
    pub max_memory_mib: u32,
    /// CPU a flow may use between two call-control requests, ms (default 200). A flow that
    /// computes longer without waiting on its call is stopped.
    pub cpu_budget_ms: u32,
    /// CPU a flow may use over its whole call, ms (default 30 000). Bounds a flow that
    /// alternates computation with waits that return at once.
    pub cpu_total_ms: u32,
    /// Longest a flow may run, seconds (default 4 h).
    pub max_call_length_s: u32,
    /// Bytes of a flow's stdout/stderr forwarded to the log (default 64 KiB); the rest is
    /// counted and dropped.
    pub max_log_bytes: u32,
    /// Where compiled components are cached on disk; none = memory only.
    pub cache_dir: Option<PathBuf>,
    /// Outbound HTTP (wasi:http) of flows.
    pub http: HttpPolicy,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            max_concurrent_calls: 1000,
            max_memory_mib: 64,
            cpu_budget_ms: 200,
            cpu_total_ms: 30_000,
            max_call_length_s: 4 * 3600,
            max_log_bytes: 64 * 1024,
            cache_dir: None,
            http: HttpPolicy::default(),
        }
    }
}

/// What outbound HTTP a flow may make.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpPolicy {
    /// Allow loopback, private, link-local and other non-public addresses (default false: a
    /// flow must not reach the platform's own network).
    pub allow_private: bool,
    /// Upper bound on connect, first-byte and between-bytes timeouts, ms (default 10 s).
    pub timeout_ms: u32,
    /// Largest response body, bytes (default 1 MiB).
    pub max_response_bytes: u32,
    /// Most requests one call's flow may make (default 100).
    pub max_requests_per_call: u32,
    /// Most requests one call's flow may have in flight at once, from sending the request to
    /// dropping the response body (default 4); more are refused with `connection-limit-reached`.
    pub max_concurrent_requests: u32,
    /// Destinations reachable even though they are not public (with `allow_private` false):
    /// networks in CIDR notation (`10.20.0.0/16`, `fd00:1::/64`, a bare address) or one
    /// `host:port` (`hooks.internal:8080`, `[::1]:9000`). Default: none.
    pub allow: Vec<String>,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        Self {
            allow_private: false,
            timeout_ms: 10_000,
            max_response_bytes: 1024 * 1024,
            max_requests_per_call: 100,
            max_concurrent_requests: 4,
            allow: Vec::new(),
        }
    }
}
