//! The flow host: one engine per process, a cache of compiled components, a store per flow
//! (a call or an SMS: see [`Trigger`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentact_call::FlowOutcome;
use opentact_metrics::{FlowFailure, FlowMetrics, FlowTrigger};
use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use tracing::Instrument;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolConcurrencyLimitError, PoolingAllocationConfig,
    Store, Trap, UpdateDeadline,
};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpCtx;

use crate::cache::{CompileGate, Lru};
use crate::config::HostConfig;
use crate::context::{CallContext, SmsContext, SmsSender, Trigger};
use crate::error::HostError;
use crate::http::{CompiledPolicy, PolicyHooks};
use crate::imports::{self, CallCtx, FlowPre, MessagingCtx, XmlFlowPre};
use crate::state::{CpuExceeded, CpuMeter, FixedStartClock, FlowCtx, FlowState, Limiter, LogSink, LogStream};

/// Largest component accepted, bytes.
pub const MAX_COMPONENT_BYTES: usize = 32 * 1024 * 1024;
/// How often the epoch advances: the granularity of the CPU budget.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Core instances the pool provides per flow. A Rust `wasm32-wasip2` component has three (the
/// program and the two shims `wasm-component-ld` adds to lower imports; measured on the XML,
/// hello, gather-park and http-refused guests with an exactly sized pool); one more is headroom
/// for components from other toolchains. The pool's total is what is sized: a component may
/// use more (up to 4× this) as long as the process total holds.
pub const CORE_INSTANCES_PER_COMPONENT: u32 = 4;
/// Tables per flow the pool provides for (a Rust component defines two).
pub const TABLES_PER_COMPONENT: u32 = 4;
/// Memories per flow the pool provides for (a Rust component defines one; a second slot per
/// flow costs only address space, see [`MEMORY_GUARD`]).
pub const MEMORIES_PER_COMPONENT: u32 = 2;
/// The native stack guest code may use. Deep recursion past it traps as a stack overflow.
/// Rust guests keep their big frames on a shadow stack in linear memory (1 MiB by default), so
/// this mostly bounds the wasm operand/call frames; 512 KiB is far beyond what a flow needs.
pub const MAX_WASM_STACK: usize = 512 * 1024;
/// The fiber stack each flow runs on: [`MAX_WASM_STACK`] plus room for the host frames of the
/// imports (WASI, wasi:http, the call session) that run on it. Stacks come from the pool and
/// are touched lazily, so a parked flow costs only the pages it used, not this much.
pub const ASYNC_STACK: usize = 1024 * 1024;
/// Guard region after each linear memory. Each memory slot reserves `max_memory_mib` plus
/// this much address space (no more: `memory_reservation` equals the memory limit), so
/// 10 000 flows × 2 slots × 64 MiB ≈ 1.3 TB of the 128 TiB user address space; out-of-bounds
/// accesses are caught by explicit bounds checks rather than by a large guard.
pub const MEMORY_GUARD: u64 = 64 * 1024;
/// Dirty pages of a flow's linear memory kept mapped (and reset with `memset`) when its slot is
/// freed, instead of being returned to the kernel: the next flow in the slot then takes no page
/// faults and the process no `madvise` TLB shootdowns. Only used where the kernel has the
/// `PAGEMAP_SCAN` ioctl (Linux 6.7+), which finds the dirty pages; without it the whole prefix
/// would be `memset`, which costs more than it saves. Cost: after a peak of N concurrent calls
/// up to N × this much (in practice the ~40 KiB a small flow touches) stays resident.
pub const MEMORY_KEEP_RESIDENT: usize = 256 * 1024;
/// As [`MEMORY_KEEP_RESIDENT`], for tables.
pub const TABLE_KEEP_RESIDENT: usize = 64 * 1024;
/// Kernel memory mappings one live flow takes (measured): for the `vm.max_map_count` check.
pub const MAPPINGS_PER_FLOW: u64 = 6;
/// Longest an SMS flow (`handle-sms`) may run (capped by the host's `max_call_length_s`): it
/// answers a message, it does not hold a conversation.
pub const MAX_SMS_FLOW_LENGTH: Duration = Duration::from_secs(60);
/// The version of the `opentact:flow` package the host runs (`wit/flow.wit`).
pub const WIT_VERSION: &str = "0.2.0";
/// Published versions the host no longer runs: a component built against one is refused with
/// an error naming it.
const RETIRED_WIT_VERSIONS: &[&str] = &["0.1.0"];

/// How loads were served, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Compiled from the bytes.
    pub compiled: u64,
    /// Loaded from a precompiled file on disk.
    pub loaded_from_disk: u64,
    /// Served from memory.
    pub memory_hits: u64,
}

/// A component ready to run flows: pre-linked, cheap to clone.
#[derive(Clone)]
pub struct FlowComponent {
    pre: Pre,
    sha256: Arc<str>,
}

/// Which world a component was linked against.
#[derive(Clone)]
enum Pre {
    /// A customer component (`flow`).
    Flow(Arc<FlowPre<FlowState>>),
    /// The built-in XML guest (`xml-flow`).
    Xml(Arc<XmlFlowPre<FlowState>>),
}

impl std::fmt::Debug for FlowComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowComponent").field("sha256", &self.sha256).finish()
    }
}

impl FlowComponent {
    /// The SHA-256 of the component's bytes (hex).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

/// Runs flows. One per process.
pub struct FlowHost {
    engine: Engine,
    /// The customer world's imports.
    linker: Linker<FlowState>,
    /// The XML guest's world: the customer world's imports and `app-control`.
    xml_linker: Linker<FlowState>,
    config: HostConfig,
    /// The messaging capability `send-sms` uses ([`FlowHost::set_sms_sender`]).
    sms: RwLock<Option<Arc<dyn SmsSender>>>,
    /// Compiled components by content hash, least recently used dropped first
    /// (`max_cached_components`).
    components: Lru<FlowComponent>,
    compile_gate: CompileGate,
    compiled: AtomicU64,
    loaded_from_disk: AtomicU64,
    memory_hits: AtomicU64,
    http: Arc<CompiledPolicy>,
    stop_ticker: Arc<AtomicBool>,
    /// Flow starts, failures by cause, parked flows ([`FlowHost::with_metrics`]).
    metrics: FlowMetrics,
}

impl std::fmt::Debug for FlowHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowHost").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Drop for FlowHost {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

fn engine(config: &HostConfig) -> Result<Engine, HostError> {
    let calls = config.max_concurrent_calls.max(1);
    let memory = u64::from(config.max_memory_mib.max(1)) * 1024 * 1024;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(calls)
        .total_core_instances(calls.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
        .total_memories(calls.saturating_mul(MEMORIES_PER_COMPONENT))
        .total_tables(calls.saturating_mul(TABLES_PER_COMPONENT))
        .total_stacks(calls)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT * 4)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT * 4)
        .max_memory_size(usize::try_from(memory).unwrap_or(usize::MAX));
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
            .table_keep_resident(TABLE_KEEP_RESIDENT);
    }
    let mut wasm = Config::new();
    wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .epoch_interruption(true)
        .max_wasm_stack(MAX_WASM_STACK)
        .async_stack_size(ASYNC_STACK)
        // Reserve no more than a flow may use, so thousands of flows fit in the address space;
        // accesses are then bounds-checked explicitly.
        .memory_reservation(memory)
        .memory_guard_size(MEMORY_GUARD)
        .memory_reservation_for_growth(0);
    Engine::new(&wasm).map_err(HostError::Engine)
}

/// A budget in ms as epoch ticks (at least one).
fn ticks(budget_ms: u32) -> u32 {
    (budget_ms / u32::try_from(EPOCH_TICK.as_millis()).unwrap_or(10)).max(1)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl FlowHost {
    /// Start the engine (and its epoch ticker).
    pub fn new(config: HostConfig) -> Result<Self, HostError> {
        let http = Arc::new(CompiledPolicy::new(config.http.clone())?);
        let engine = engine(&config)?;
        let base = || -> Result<Linker<FlowState>, HostError> {
            let mut linker = Linker::new(&engine);
            wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(HostError::Engine)?;
            wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(HostError::Engine)?;
            Ok(linker)
        };
        let mut linker = base()?;
        imports::add_to_linker(&mut linker).map_err(HostError::Engine)?;
        let mut xml_linker = base()?;
        imports::add_to_xml_linker(&mut xml_linker).map_err(HostError::Engine)?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.weak();
        let stop = stop_ticker.clone();
        std::thread::Builder::new()
            .name("opentact-epoch".to_owned())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match ticker_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                }
            })
            .map_err(|e| {
                HostError::Engine(wasmtime::Error::msg(format!("cannot start the epoch ticker: {e}")))
            })?;
        let (max_cached, max_compiles) = (config.max_cached_components, config.max_concurrent_compiles);
        Ok(Self {
            engine,
            linker,
            xml_linker,
            config,
            sms: RwLock::new(None),
            components: Lru::new(usize::try_from(max_cached).unwrap_or(usize::MAX)),
            compile_gate: CompileGate::new(max_compiles),
            compiled: AtomicU64::new(0),
            loaded_from_disk: AtomicU64::new(0),
            memory_hits: AtomicU64::new(0),
            http,
            stop_ticker,
            metrics: FlowMetrics::default(),
        })
    }

    /// Count flows into the node's metrics (`/metrics`) instead of a handle of their own.
    pub fn with_metrics(mut self, metrics: FlowMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The flows' metrics.
    pub fn metrics(&self) -> &FlowMetrics {
        &self.metrics
    }

    /// The configuration in force.
    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// Plug in the platform's messaging: `send-sms` of every flow started from now on sends
    /// through `sender`. Without one, `send-sms` fails with "SMS is not available".
    pub fn set_sms_sender(&self, sender: Arc<dyn SmsSender>) {
        *self.sms.write() = Some(sender);
    }

    /// How loads were served so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            compiled: self.compiled.load(Ordering::Relaxed),
            loaded_from_disk: self.loaded_from_disk.load(Ordering::Relaxed),
            memory_hits: self.memory_hits.load(Ordering::Relaxed),
        }
    }

    fn cache_file(&self, sha256: &str) -> Option<PathBuf> {
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&self.engine.precompile_compatibility_hash(), &mut hasher);
        let compatibility = std::hash::Hasher::finish(&hasher);
        self.config.cache_dir.as_ref().map(|dir| dir.join(format!("{sha256}-{compatibility:016x}.cwasm")))
    }

    /// Check that `bytes` are a customer flow component (the `flow` world of
    /// `opentact:flow@0.2.0`), compile it (or take it from the caches), and link it.
    ///
    /// Ungated, on the calling thread: for one-shot tools (`opentact flow run`), benches and
    /// tests. A running server loads customer bytes with [`FlowHost::load_component_async`],
    /// which takes a compile permit and bounds the compile's time.
    pub fn load_component(&self, bytes: &[u8]) -> Result<FlowComponent, HostError> {
        self.load(bytes, false)
    }

    /// As [`FlowHost::load_component`], for the platform's built-in XML guest (the `xml-flow`
    /// world, which adds `app-control`). Never for customer bytes.
    pub fn load_xml_guest(&self, bytes: &[u8]) -> Result<FlowComponent, HostError> {
        self.load(bytes, true)
    }

    fn load(&self, bytes: &[u8], xml: bool) -> Result<FlowComponent, HostError> {
        if bytes.len() > MAX_COMPONENT_BYTES {
            return Err(HostError::TooLarge { size: bytes.len(), limit: MAX_COMPONENT_BYTES });
        }
        if !bytes.starts_with(b"\0asm") {
            return Err(HostError::NotWasm);
        }
        if bytes.get(4..8) == Some(&[1, 0, 0, 0]) {
            return Err(HostError::CoreModule);
        }
        let sha256 = sha256_hex(bytes);
        let key = if xml { format!("xml-{sha256}") } else { sha256.clone() };
        if let Some(found) = self.components.get(&key) {
            self.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(found.clone());
        }
        let component = self.compile(bytes, &sha256)?;
        let link = |error: wasmtime::Error| self.world_error(&component, error);
        let pre = if xml {
            let pre = self.xml_linker.instantiate_pre(&component).map_err(link)?;
            Pre::Xml(Arc::new(XmlFlowPre::new(pre).map_err(link)?))
        } else {
            let pre = self.linker.instantiate_pre(&component).map_err(link)?;
            Pre::Flow(Arc::new(FlowPre::new(pre).map_err(link)?))
        };
        let loaded = FlowComponent { pre, sha256: sha256.into() };
        self.components.insert(key, loaded.clone());
        Ok(loaded)
    }

    /// Why `component` does not link: a retired version of the WIT package, said plainly, or
    /// wasmtime's error.
    fn world_error(&self, component: &Component, error: wasmtime::Error) -> HostError {
        let ty = component.component_type();
        let names = ty
            .imports(&self.engine)
            .map(|(name, _)| name.to_owned())
            .chain(ty.exports(&self.engine).map(|(name, _)| name.to_owned()));
        for name in names {
            let Some((_, version)) =
                name.strip_prefix("opentact:flow/").and_then(|rest| rest.split_once('@'))
            else {
                continue;
            };
            if RETIRED_WIT_VERSIONS.contains(&version) {
                return HostError::RetiredVersion { version: version.to_owned(), current: WIT_VERSION };
            }
        }
        HostError::World(error)
    }

    fn compile(&self, bytes: &[u8], sha256: &str) -> Result<Component, HostError> {
        let Some(file) = self.cache_file(sha256) else {
            self.compiled.fetch_add(1, Ordering::Relaxed);
            return Component::new(&self.engine, bytes).map_err(HostError::Invalid);
        };
        if file.exists() {
            // SAFETY: the file was written by `precompile_component` of an engine with the same
            // compatibility hash (it is in the file name), into the platform's own cache
            // directory; it is not user input.
            #[allow(unsafe_code)]
            let loaded = unsafe { Component::deserialize_file(&self.engine, &file) };
            match loaded {
                Ok(component) => {
                    // A hit keeps the file from the size bound's eviction for longer.
                    opentact_media::disk_budget::touch(&file);
                    self.loaded_from_disk.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(component = %sha256, "component loaded from the disk cache");
                    return Ok(component);
                }
                Err(error) => {
                    tracing::warn!(file = %file.display(), %error, "ignoring an unusable cached component")
                }
            }
        }
        let started = Instant::now();
        let artifact = self.engine.precompile_component(bytes).map_err(HostError::Invalid)?;
        self.compiled.fetch_add(1, Ordering::Relaxed);
        tracing::info!(component = %sha256, ms = started.elapsed().as_millis() as u64, "component compiled");
        let dir = file.parent().map(PathBuf::from).unwrap_or_default();
        std::fs::create_dir_all(&dir).map_err(|source| HostError::Cache { path: dir.clone(), source })?;
        // Write then rename, so a crash never leaves a truncated artifact under the final name.
        let partial = file.with_extension("partial");
        std::fs::write(&partial, &artifact)
            .map_err(|source| HostError::Cache { path: partial.clone(), source })?;
        std::fs::rename(&partial, &file).map_err(|source| HostError::Cache { path: file.clone(), source })?;
        let budget = self.config.cache_dir_max_mib.saturating_mul(1024 * 1024);
        if let Err(error) = opentact_media::disk_budget::trim(&dir, budget) {
            tracing::warn!(dir = %dir.display(), %error, "could not trim the component cache");
        }
        // SAFETY: as above — the bytes were just produced by this engine.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(&self.engine, &artifact) };
        component.map_err(HostError::Invalid)
    }

    fn store(
        &self,
        flow: FlowCtx,
        log_id: String,
        wall_clock: Option<chrono::DateTime<chrono::Utc>>,
        signer: Option<Arc<dyn crate::context::RequestSigner>>,
    ) -> Store<FlowState> {
        let log = LogSink::new(log_id, usize::try_from(self.config.max_log_bytes).unwrap_or(usize::MAX));
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(LogStream(log.clone()))
            .stderr(LogStream(log.clone()))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if let Some(at) = wall_clock {
            let since_epoch = SystemTime::from(at).duration_since(UNIX_EPOCH).unwrap_or_default();
            wasi.wall_clock(FixedStartClock { since_epoch, started: Instant::now() });
        }
        let state = FlowState {
            flow,
            limiter: Limiter {
                max_memory_bytes: usize::try_from(u64::from(self.config.max_memory_mib) * 1024 * 1024)
                    .unwrap_or(usize::MAX),
                memory_refused: false,
            },
            cpu: CpuMeter {
                ticks: 0,
                budget_ticks: ticks(self.config.cpu_budget_ms),
                total_ticks: 0,
                total_budget_ticks: ticks(self.config.cpu_total_ms),
                exceeded: None,
            },
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: PolicyHooks::new(self.http.clone(), signer),
            table: ResourceTable::new(),
            log,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(1);
        // The callback runs each time the guest crosses an epoch tick while computing: a tick is
        // charged and the guest yields, so a busy guest shares its runtime thread with other
        // calls. The deadline is re-armed after the yield resumes (wasmtime 48 sets it after
        // the await), so time spent suspended is not charged; under contention a charged tick
        // may cover less than a full tick of computation, which makes the budget stricter,
        // never looser. The imports that wait on the call end the segment
        // ([`FlowCtxView::waits_on_call`]); queries and WASI calls (clocks, output, polls) do
        // not; the call's total is never reset (see [`CpuMeter`]).
        store.epoch_deadline_callback(|mut context| {
            // An import asked to stop the flow (imports cannot trap: see `imports`).
            if context.data().flow.stop.is_some() {
                return Ok(UpdateDeadline::Interrupt);
            }
            if context.data_mut().cpu.charge_tick().is_err() {
                return Ok(UpdateDeadline::Interrupt);
            }
            // Let other calls on this thread run between slices of a busy guest.
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }

    /// Run a flow for `trigger` to its end: `handle-call` for a call (then finish the call:
    /// hang up what is still up, emit the hangup and destroyed events), `handle-sms` for an
    /// SMS. Never panics on guest behaviour: every failure becomes [`FlowOutcome::Failed`] with
    /// a message that says what happened. The same limits hold for every trigger (memory, CPU,
    /// output, HTTP); the time limit is the call's maximum length, or
    /// [`MAX_SMS_FLOW_LENGTH`] for an SMS.
    pub async fn run(&self, component: &FlowComponent, trigger: Trigger) -> FlowOutcome {
        match trigger {
            Trigger::Call(context) => self.run_call(component, context).await,
            Trigger::Sms(context) => self.run_sms(component, context).await,
        }
    }

    /// [`FlowHost::run`] for a call.
    pub async fn run_call(&self, component: &FlowComponent, context: CallContext) -> FlowOutcome {
        let session = context.session.clone();
        let span = tracing::info_span!("flow", call = %session.info().id, component = %component.sha256);
        async move {
            self.metrics.started(FlowTrigger::Call);
            let host_limit = Duration::from_secs(u64::from(self.config.max_call_length_s));
            let limit = context.max_call_length.map_or(host_limit, |app| app.min(host_limit));
            let outcome = match tokio::time::timeout(limit, self.execute_call(component, context)).await {
                Ok(outcome) => outcome,
                Err(_) => self.timed_out(),
            };
            match &outcome {
                FlowOutcome::Failed(message) => tracing::info!(%message, "flow failed"),
                FlowOutcome::AtCapacity(message) => tracing::warn!(%message, "call refused"),
                FlowOutcome::Completed | FlowOutcome::TimedOut => {}
            }
            session.finish(outcome.clone()).await;
            outcome
        }
        .instrument(span)
        .await
    }

    /// [`FlowHost::run`] for an SMS.
    pub async fn run_sms(&self, component: &FlowComponent, context: SmsContext) -> FlowOutcome {
        let span = tracing::info_span!("flow", sms = %context.message.id, component = %component.sha256);
        async move {
            self.metrics.started(FlowTrigger::Sms);
            let limit =
                MAX_SMS_FLOW_LENGTH.min(Duration::from_secs(u64::from(self.config.max_call_length_s)));
            let outcome = match tokio::time::timeout(limit, self.execute_sms(component, context)).await {
                Ok(outcome) => outcome,
                Err(_) => self.timed_out(),
            };
            match &outcome {
                FlowOutcome::Failed(message) => tracing::info!(%message, "SMS flow failed"),
                FlowOutcome::AtCapacity(message) => tracing::warn!(%message, "SMS flow refused"),
                FlowOutcome::TimedOut => tracing::info!(?limit, "SMS flow timed out"),
                FlowOutcome::Completed => {}
            }
            outcome
        }
        .instrument(span)
        .await
    }

    fn messaging(
        &self,
        account: String,
        app: String,
        call: Option<String>,
        default_from: Option<String>,
    ) -> MessagingCtx {
        MessagingCtx { sender: self.sms.read().clone(), account, app, call, default_from, sent: 0 }
    }

    async fn execute_call(&self, component: &FlowComponent, context: CallContext) -> FlowOutcome {
        let info = imports::call_info(&context.session);
        let started = context.session.info();
        let flow = FlowCtx {
            messaging: self.messaging(
                started.account,
                started.app,
                Some(started.id.clone()),
                started.tn.map(|tn| tn.to_string()),
            ),
            call: Some(CallCtx {
                session: context.session,
                commands: context.commands,
                metrics: self.metrics.clone(),
            }),
            numbers: context.numbers,
            reports: 0,
            stop: None,
        };
        // Only the built-in XML guest's requests are the platform's, and signed.
        let signer = if matches!(component.pre, Pre::Xml(_)) { context.request_signer } else { None };
        let mut store = self.store(flow, started.id, context.wall_clock, signer);
        let result = match &component.pre {
            Pre::Flow(pre) => match pre.instantiate_async(&mut store).await {
                Ok(flow) => flow.opentact_flow_handler().call_handle_call(&mut store, &info).await,
                Err(error) => return self.start_failed(&store, &error),
            },
            Pre::Xml(pre) => {
                let mode = imports::control_mode(&context.mode);
                match pre.instantiate_async(&mut store).await {
                    Ok(flow) => {
                        flow.opentact_flow_xml_handler().call_handle_call(&mut store, &info, &mode).await
                    }
                    Err(error) => return self.start_failed(&store, &error),
                }
            }
        };
        self.outcome(&store, result)
    }

    async fn execute_sms(&self, component: &FlowComponent, context: SmsContext) -> FlowOutcome {
        let message = context.message;
        let flow = FlowCtx {
            messaging: self.messaging(
                message.account.clone(),
                message.app.clone(),
                None,
                Some(message.tn.to_string()),
            ),
            call: None,
            numbers: context.numbers,
            reports: 0,
            stop: None,
        };
        let Pre::Flow(pre) = &component.pre else {
            return FlowOutcome::Failed("the built-in XML guest does not handle SMS".to_owned());
        };
        let mut store = self.store(flow, message.id.clone(), context.wall_clock, None);
        let wit_message = imports::wit::SmsMessage {
            id: message.id,
            account: message.account,
            app: message.app,
            from: message.from,
            to: message.to,
            tn: message.tn,
            text: message.text,
        };
        let result = match pre.instantiate_async(&mut store).await {
            Ok(flow) => flow.opentact_flow_handler().call_handle_sms(&mut store, &wit_message).await,
            Err(error) => return self.start_failed(&store, &error),
        };
        self.outcome(&store, result)
    }

    /// A flow that ran past its wall-clock limit.
    fn timed_out(&self) -> FlowOutcome {
        self.metrics.failed(FlowFailure::Timeout);
        FlowOutcome::TimedOut
    }

    /// `message`, counted as a failure of `cause`.
    fn failed(&self, (cause, message): (FlowFailure, String)) -> FlowOutcome {
        self.metrics.failed(cause);
        match cause {
            FlowFailure::Capacity => FlowOutcome::AtCapacity(message),
            _ => FlowOutcome::Failed(message),
        }
    }

    /// The outcome of a flow that could not start.
    fn start_failed(&self, store: &Store<FlowState>, error: &wasmtime::Error) -> FlowOutcome {
        self.failed(self.start_failure(store, error))
    }

    fn start_failure(&self, store: &Store<FlowState>, error: &wasmtime::Error) -> (FlowFailure, String) {
        // A full pool is the admission control: say so, not "instantiation failed".
        if let Some(full) = error.downcast_ref::<PoolConcurrencyLimitError>() {
            return (
                FlowFailure::Capacity,
                format!(
                    "the platform is at capacity ({full}; max_concurrent_calls = {})",
                    self.config.max_concurrent_calls
                ),
            );
        }
        // Each live flow takes a few kernel memory mappings: past `vm.max_map_count` the kernel
        // refuses the next one with ENOMEM. Also capacity, not a flow bug.
        let refused_mapping = error.chain().any(|cause| {
            cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::OutOfMemory)
        });
        if refused_mapping {
            return (
                FlowFailure::Capacity,
                format!(
                    "the platform is at capacity (the kernel refused memory for another flow: {error}; \
                 is vm.max_map_count high enough for max_concurrent_calls = {}?)",
                    self.config.max_concurrent_calls
                ),
            );
        }
        self.describe(store, error, FlowFailure::Start)
    }

    /// The outcome of a flow whose handler returned (or trapped).
    fn outcome(&self, store: &Store<FlowState>, result: wasmtime::Result<Result<(), String>>) -> FlowOutcome {
        store.data().log.flush();
        let dropped = store.data().log.dropped();
        if dropped > 0 {
            tracing::info!(dropped, "flow output past the log limit was dropped");
        }
        match result {
            Ok(Ok(())) => FlowOutcome::Completed,
            Ok(Err(message)) => self.failed((FlowFailure::GuestError, message)),
            Err(error) => self.failed(self.describe(store, &error, FlowFailure::Trap)),
        }
    }

    /// What a trap means, in words a flow author can act on, and its cause for the metrics
    /// (`other` when it is no trap the host knows).
    fn describe(
        &self,
        store: &Store<FlowState>,
        error: &wasmtime::Error,
        other: FlowFailure,
    ) -> (FlowFailure, String) {
        let state = store.data();
        if let Some(reason) = &state.flow.stop {
            return (FlowFailure::Stopped, reason.clone());
        }
        match state.cpu.exceeded {
            Some(CpuExceeded::Segment) => {
                return (
                    FlowFailure::Cpu,
                    format!(
                        "the flow used more than its CPU budget of {} ms without waiting on the call",
                        self.config.cpu_budget_ms
                    ),
                );
            }
            Some(CpuExceeded::Total) => {
                return (
                    FlowFailure::Cpu,
                    format!(
                        "the flow used more than its total CPU budget of {} ms for the call",
                        self.config.cpu_total_ms
                    ),
                );
            }
            None => {}
        }
        if state.limiter.memory_refused {
            let limit = self.config.max_memory_mib;
            return (FlowFailure::Memory, format!("the flow ran out of memory (limit {limit} MiB)"));
        }
        let trapped = |text: &str| (FlowFailure::Trap, text.to_owned());
        match error.downcast_ref::<Trap>() {
            Some(Trap::StackOverflow) => {
                (FlowFailure::StackOverflow, "the flow overflowed its stack".to_owned())
            }
            // Rust and C guests keep their stack in linear memory, so running off its end is
            // an out-of-bounds access rather than a wasm stack overflow.
            Some(Trap::MemoryOutOfBounds) => trapped(
                "the flow trapped: out-of-bounds memory access (most often a stack overflow in the guest)",
            ),
            Some(Trap::UnreachableCodeReached) => trapped(
                "the flow trapped: wasm `unreachable` instruction executed (a panic or abort in the guest)",
            ),
            Some(trap) => (FlowFailure::Trap, format!("the flow trapped: {trap}")),
            None => (other, format!("the flow failed: {error:#}")),
        }
    }
}

/// Uploads: compiles a few at a time within a time limit.
impl FlowHost {
    /// As [`FlowHost::load_component`], for uploads and calls on a running server: a miss
    /// waits for one of `max_concurrent_compiles` permits (at most `compile_timeout_ms`, else
    /// [`HostError::CompileBusy`]) and then compiles on the blocking pool within
    /// `compile_timeout_ms` (else [`HostError::CompileTimeout`]; the compile, which cannot be
    /// interrupted, finishes in the background holding its permit, and its result is
    /// dropped). Memory hits take no permit.
    pub async fn load_component_async(self: &Arc<Self>, bytes: Vec<u8>) -> Result<FlowComponent, HostError> {
        let bytes: Arc<[u8]> = bytes.into();
        let (host, hashed) = (self.clone(), bytes.clone());
        // Hashing 10 MiB takes tens of ms: not on a runtime thread.
        let looked_up = tokio::task::spawn_blocking(move || {
            let sha256 = sha256_hex(&hashed);
            match host.components.get(&sha256) {
                Some(found) => {
                    host.memory_hits.fetch_add(1, Ordering::Relaxed);
                    Ok(found)
                }
                None => Err(sha256),
            }
        })
        .await
        .map_err(|error| {
            HostError::Engine(wasmtime::Error::msg(format!("hashing the component: {error}")))
        })?;
        let sha256 = match looked_up {
            Ok(found) => return Ok(found),
            Err(sha256) => sha256,
        };
        let limit = Duration::from_millis(u64::from(self.config.compile_timeout_ms));
        let permit = tokio::time::timeout(limit, self.compile_gate.permits.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(HostError::CompileBusy {
                running: self.config.max_concurrent_compiles,
                waited_ms: self.config.compile_timeout_ms,
            })?;
        let abandoned = Arc::new(AtomicBool::new(false));
        let (host, flag) = (self.clone(), abandoned.clone());
        let mut task = tokio::task::spawn_blocking(move || {
            let running = host.compile_gate.running();
            let loaded = host.load_component(&bytes);
            if flag.load(Ordering::SeqCst) {
                // Not kept: the same bytes uploaded again must be refused again, not served
                // from what the abandoned compile left behind.
                host.components.remove(&sha256);
                if let Some(file) = host.cache_file(&sha256) {
                    let _ = std::fs::remove_file(file);
                }
            }
            drop(running);
            drop(permit);
            loaded
        });
        match tokio::time::timeout(limit, &mut task).await {
            Ok(joined) => joined.map_err(|error| {
                HostError::Engine(wasmtime::Error::msg(format!("the compile task failed: {error}")))
            })?,
            Err(_) => {
                abandoned.store(true, Ordering::SeqCst);
                Err(HostError::CompileTimeout { limit_ms: self.config.compile_timeout_ms })
            }
        }
    }

    /// Compiles running now through [`FlowHost::load_component_async`] (abandoned ones too).
    pub fn compiles_running(&self) -> u64 {
        self.compile_gate.running_now()
    }

    /// Compiled components held in memory.
    pub fn cached_components(&self) -> usize {
        self.components.len()
    }

    /// The most compiles that ran at once through [`FlowHost::load_component_async`].
    pub fn peak_concurrent_compiles(&self) -> u64 {
        self.compile_gate.peak()
    }
}

/// A warning when `vm.max_map_count` is too low for `max_calls` live flows (each takes about
/// [`MAPPINGS_PER_FLOW`] kernel memory mappings), with the sysctl that fixes it.
pub fn check_map_count(max_calls: u32) -> Option<String> {
    let text = std::fs::read_to_string("/proc/sys/vm/max_map_count").ok()?;
    let limit: u64 = text.trim().parse().ok()?;
    let needed = u64::from(max_calls) * MAPPINGS_PER_FLOW + 1000;
    (needed > limit).then(|| {
        format!(
            "vm.max_map_count is {limit}; {max_calls} concurrent flows need about {needed}. \
             Raise it with: sysctl -w vm.max_map_count={}",
            needed.next_power_of_two().max(262_144)
        )
    })
}
