//! Per-flow store data: the capabilities' state, limits, WASI and HTTP contexts, and the log
//! sink.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::io::AsyncWrite;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{HostWallClock, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::context::NumberDirectory;
use crate::http::PolicyHooks;
use crate::imports::{CallCtx, MessagingCtx};

/// Most table elements a flow may grow a table to.
pub const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Memory and table limits of one flow; remembers whether it refused growth, so the outcome
/// can say the flow ran out of memory rather than "unreachable".
#[derive(Debug)]
pub(crate) struct Limiter {
    pub(crate) max_memory_bytes: usize,
    pub(crate) memory_refused: bool,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.max_memory_bytes;
        if !allowed {
            self.memory_refused = true;
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Which CPU budget a flow ran out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CpuExceeded {
    /// It computed longer than `cpu_budget_ms` without waiting on its call.
    Segment,
    /// It computed longer than `cpu_total_ms` over the whole call.
    Total,
}

/// The guest's computation, counted in epoch ticks (see [`crate::host::EPOCH_TICK`]) charged
/// by the epoch deadline callback while guest code runs.
///
/// Two budgets: a *segment* (computation since the flow last waited on its call — only imports
/// that wait on the call or its commands end a segment, not cheap queries such as `state()` or
/// `report()`, so polling the call while spinning does not escape the budget), and the *total*
/// of the call. The first tick of each segment is not charged to the total: when a wait
/// outlasts a tick, the callback fires once as soon as the guest runs again, although the
/// guest has hardly computed; counting those would charge a long call for its waiting.
#[derive(Debug, Default)]
pub(crate) struct CpuMeter {
    pub(crate) ticks: u32,
    pub(crate) budget_ticks: u32,
    pub(crate) total_ticks: u32,
    pub(crate) total_budget_ticks: u32,
    pub(crate) exceeded: Option<CpuExceeded>,
}

impl CpuMeter {
    /// Charge one tick; `Err` with the budget that ran out.
    pub(crate) fn charge_tick(&mut self) -> Result<(), CpuExceeded> {
        self.ticks += 1;
        if self.ticks > 1 {
            self.total_ticks += 1;
        }
        let exceeded = if self.ticks > self.budget_ticks {
            Some(CpuExceeded::Segment)
        } else if self.total_ticks > self.total_budget_ticks {
            Some(CpuExceeded::Total)
        } else {
            None
        };
        match exceeded {
            Some(which) => {
                self.exceeded = Some(which);
                Err(which)
            }
            None => Ok(()),
        }
    }
}

/// What the flow world's imports work on: each capability's per-instance state (the call, the
/// messaging) and the number data. They see nothing else of the store (not WASI, HTTP or the
/// limits) — see [`FlowView`].
pub(crate) struct FlowCtx {
    /// The calls capability: the call, in a call flow; `None` in an SMS flow.
    pub(crate) call: Option<CallCtx>,
    /// The messaging capability.
    pub(crate) messaging: MessagingCtx,
    pub(crate) numbers: Arc<dyn NumberDirectory>,
    /// Steps reported by a flow without a call (they go to the log), for its budget.
    pub(crate) reports: u32,
    /// Why the host stopped the flow (its event budget, a call import in an SMS flow): the
    /// next epoch tick interrupts it.
    pub(crate) stop: Option<String>,
}

/// The imports' view of a store: the call's [`FlowCtx`] and its CPU meter, whose segment the
/// imports that wait on the call end ([`FlowCtxView::waits_on_call`]).
pub(crate) struct FlowCtxView<'a> {
    pub(crate) ctx: &'a mut FlowCtx,
    pub(crate) cpu: &'a mut CpuMeter,
}

impl FlowCtxView<'_> {
    /// The import waits on the platform (media, gather, dial, the next command, sending an
    /// SMS…): the guest's CPU segment ends. Cheap queries do not call this.
    pub(crate) fn waits_on_call(&mut self) {
        self.cpu.ticks = 0;
    }
}

/// Store data that the flow world's imports can run on (as `WasiView` is for WASI).
pub(crate) trait FlowView: Send {
    /// The imports' view of this store.
    fn flow(&mut self) -> FlowCtxView<'_>;
}

/// The data of one call's store.
pub(crate) struct FlowState {
    pub(crate) flow: FlowCtx,
    pub(crate) limiter: Limiter,
    pub(crate) cpu: CpuMeter,
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) hooks: PolicyHooks,
    pub(crate) table: ResourceTable,
    pub(crate) log: Arc<LogSink>,
}

impl FlowView for FlowState {
    fn flow(&mut self) -> FlowCtxView<'_> {
        FlowCtxView { ctx: &mut self.flow, cpu: &mut self.cpu }
    }
}

impl WasiView for FlowState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for FlowState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// A flow's stdout/stderr: the first `limit` bytes go to the log line by line, attributed to
/// the call; the rest is counted and dropped. Writes never fail and never block — Rust's
/// `println!` panics when a write fails, which would turn a chatty guest into a crashed one.
#[derive(Debug)]
pub(crate) struct LogSink {
    call: String,
    limit: usize,
    state: Mutex<LogState>,
}

#[derive(Debug, Default)]
struct LogState {
    forwarded: usize,
    dropped: u64,
    line: Vec<u8>,
}

impl LogSink {
    pub(crate) fn new(call: String, limit: usize) -> Arc<Self> {
        Arc::new(Self { call, limit, state: Mutex::new(LogState::default()) })
    }

    fn write(&self, bytes: &[u8]) {
        let mut state = self.state.lock();
        let room = self.limit.saturating_sub(state.forwarded);
        let taken = bytes.len().min(room);
        state.forwarded += taken;
        state.dropped += (bytes.len() - taken) as u64;
        for byte in &bytes[..taken] {
            if *byte == b'\n' {
                let line = std::mem::take(&mut state.line);
                tracing::info!(target: "opentact::flow::log", call = %self.call, "{}", String::from_utf8_lossy(&line));
            } else {
                state.line.push(*byte);
            }
        }
    }

    /// Forward a last line that did not end with a newline.
    pub(crate) fn flush(&self) {
        let line = std::mem::take(&mut self.state.lock().line);
        if !line.is_empty() {
            tracing::info!(target: "opentact::flow::log", call = %self.call, "{}", String::from_utf8_lossy(&line));
        }
    }

    /// Bytes dropped past the limit.
    pub(crate) fn dropped(&self) -> u64 {
        self.state.lock().dropped
    }
}

/// One of the guest's output streams, writing into the call's [`LogSink`].
#[derive(Debug, Clone)]
pub(crate) struct LogStream(pub(crate) Arc<LogSink>);

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for LogStream {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.0.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A wall clock that starts at a fixed instant and advances with real time (the flow runner's
/// `--at`, so schedules can be tested).
#[derive(Debug)]
pub(crate) struct FixedStartClock {
    pub(crate) since_epoch: Duration,
    pub(crate) started: Instant,
}

impl HostWallClock for FixedStartClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        self.since_epoch + self.started.elapsed()
    }
}
