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
    /// Bound on the disk cache, MiB (default 1024): past it the least recently used
    /// precompiled files are deleted.
    pub cache_dir_max_mib: u64,
    /// Compiled components kept in memory (default 64; each is a few MB of machine code); the
    /// least recently used is dropped (running calls keep theirs) and compiled or read from
    /// disk again when next needed.
    pub max_cached_components: u32,
    /// Uploads (and calls whose component is not cached) compiling at once (default 2): a
    /// compile takes a core and memory for seconds, so a flood of uploads must not take
    /// them all.
    pub max_concurrent_compiles: u32,
    /// Longest an upload waits for a compile permit, and longest the compile may then take,
    /// ms (default 30 000). A compile over it fails the upload (422), a wait over it answers
    /// 503 with Retry-After.
    pub compile_timeout_ms: u32,
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
            cache_dir_max_mib: 1024,
            max_cached_components: 64,
            max_concurrent_compiles: 2,
            compile_timeout_ms: 30_000,
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
