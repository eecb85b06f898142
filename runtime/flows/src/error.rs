//! Errors of the flow host.

use thiserror::Error;

/// Why the host could not start, or a component cannot be used as a flow.
#[derive(Debug, Error)]
pub enum HostError {
    /// The engine could not be configured (e.g. the pool does not fit in the address space).
    #[error("the flow engine cannot start: {0}")]
    Engine(#[source] wasmtime::Error),
    /// Larger than the size limit.
    #[error("the component is {size} bytes; at most {limit} bytes are accepted")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not WebAssembly at all.
    #[error("not a WebAssembly component: the file does not start with the Wasm magic bytes")]
    NotWasm,
    /// A core module, not a component.
    #[error(
        "not a WebAssembly component but a core module: build it for the wasm32-wasip2 target, which emits components"
    )]
    CoreModule,
    /// Malformed or invalid Wasm.
    #[error("not a valid WebAssembly component: {0:#}")]
    Invalid(#[source] wasmtime::Error),
    /// Imports something the host does not provide, or does not export the flow handler.
    #[error("the component does not fit the opentact:flow world: {0:#}")]
    World(#[source] wasmtime::Error),
    /// Built against a version of the `opentact:flow` package the host no longer runs.
    #[error(
        "the component was built against opentact:flow@{version}, which this platform no longer runs; \
         rebuild it against opentact:flow@{current} (the current opentact-sdk) and upload it again"
    )]
    RetiredVersion {
        /// The component's version.
        version: String,
        /// The version the host runs.
        current: &'static str,
    },
    /// An entry of the HTTP allow-list (`[flows.http] allow`) cannot be understood.
    #[error("flows.http.allow entry {entry:?}: {reason}")]
    HttpAllow {
        /// The entry as written.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Every compile permit stayed taken for the whole wait: the host is busy compiling
    /// other uploads. Try again shortly.
    #[error(
        "{running} components are being compiled (flows.max_concurrent_compiles) and none finished \
         within {waited_ms} ms (flows.compile_timeout_ms); try again shortly"
    )]
    CompileBusy {
        /// The permits.
        running: u32,
        /// How long the upload waited for one, ms.
        waited_ms: u32,
    },
    /// Compiling took longer than the limit: the component is too large or too complex.
    #[error(
        "compiling the component took longer than {limit_ms} ms (flows.compile_timeout_ms); \
         make it smaller (fewer or smaller functions, an optimised release build)"
    )]
    CompileTimeout {
        /// The limit, ms.
        limit_ms: u32,
    },
    /// The component cache directory could not be used.
    #[error("component cache {path}: {source}")]
    Cache {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}
