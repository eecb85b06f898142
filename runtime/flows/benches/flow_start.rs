//! Starting a call flow: create a store, instantiate the component, run a trivial flow to its
//! end (`<Response><Hangup/></Response>` in the built-in XML guest; answer/say/hangup in the SDK
//! `hello` guest), next to the same logic as native Rust on the verb executor. Prints the ratio
//! of each to native. Target on the 2-core reference machine: under 20 µs per flow start.
//!
//! Run it with `RUST_LIB_BACKTRACE=0` (or without `RUST_BACKTRACE` set): wasmtime 48 builds an
//! error while disposing of a store's fiber, and with backtraces enabled that error captures
//! one — about 10 µs per flow that a production process (which does not set it) does not pay.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use opentact_call::events::NullSink;
use opentact_call::model::{CallInfo, Direction, HangupReason, Media, SayRequest};
use opentact_call::simulated::{SimulatedCall, SimulatedCallConfig};
use opentact_call::{CallSession, FlowOutcome, SessionConfig};
use opentact_flows::{CallContext, ControlMode, FlowComponent, FlowHost, HostConfig};

fn session() -> Arc<CallSession> {
    let call = SimulatedCall::new(SimulatedCallConfig {
        info: CallInfo {
            id: "bench".into(),
            account: "acct".into(),
            app: "app".into(),
            from: "12025550100".into(),
            to: "12025550111".into(),
            tn: Some(12025550111),
            direction: Direction::Inbound,
            time_zone: None,
        },
        digits: Vec::new(),
        dial: Default::default(),
        realtime: false,
    });
    Arc::new(CallSession::new(Arc::new(call), Arc::new(NullSink), SessionConfig::default()))
}

async fn native_hello() {
    let session = session();
    let say = SayRequest {
        text: "hello".into(),
        lang: "en-US".into(),
        gender: Default::default(),
        voice: None,
        loop_count: 1,
        leg: Default::default(),
    };
    let _ = session.answer(0).await;
    let _ = session.media(Media::Say(say)).await;
    let _ = session.hangup(HangupReason::Normal).await;
    session.finish(FlowOutcome::Completed).await;
}

async fn native_hangup() {
    let session = session();
    let _ = session.hangup(HangupReason::Normal).await;
    session.finish(FlowOutcome::Completed).await;
}

async fn guest(host: &FlowHost, component: &FlowComponent, mode: &ControlMode) {
    let outcome = host.run_call(component, CallContext::new(session(), mode.clone())).await;
    assert_eq!(outcome, FlowOutcome::Completed);
}

fn mean<'a>(
    runtime: &tokio::runtime::Runtime,
    iterations: u32,
    mut f: impl FnMut() -> std::pin::Pin<Box<dyn Future<Output = ()> + 'a>>,
) -> Duration {
    let start = Instant::now();
    for _ in 0..iterations {
        runtime.block_on(f());
    }
    start.elapsed() / iterations
}

fn flow_start(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let host = FlowHost::new(HostConfig { max_concurrent_calls: 64, ..HostConfig::default() }).expect("host");
    let xml = host.load_xml_guest(opentact_guest_artifacts::XML_GUEST).expect("xml guest");
    let hello = host.load_component(&opentact_guest_artifacts::bytes("hello")).expect("hello guest");
    let hangup_doc = ControlMode::Xml("<Response><Hangup/></Response>".to_owned());

    let mut group = c.benchmark_group("flow_start");
    group.bench_function("xml_guest_hangup", |b| {
        b.iter(|| runtime.block_on(guest(&host, &xml, black_box(&hangup_doc))))
    });
    group.bench_function("native_hangup", |b| b.iter(|| runtime.block_on(native_hangup())));
    group.bench_function("sdk_guest_hello", |b| {
        b.iter(|| runtime.block_on(guest(&host, &hello, &ControlMode::Component)))
    });
    group.bench_function("native_hello", |b| b.iter(|| runtime.block_on(native_hello())));
    group.finish();

    // A plain summary with the ratios, so the numbers can be read without criterion's report.
    let n = 2000;
    let xml_time = mean(&runtime, n, || Box::pin(guest(&host, &xml, &hangup_doc)));
    let native_hangup_time = mean(&runtime, n, || Box::pin(native_hangup()));
    let sdk_time = mean(&runtime, n, || Box::pin(guest(&host, &hello, &ControlMode::Component)));
    let native_hello_time = mean(&runtime, n, || Box::pin(native_hello()));
    println!();
    println!("flow start (mean of {n})        per start    vs native");
    println!(
        "XML guest  <Hangup/>            {:>9.1?}    {:>6.1}x",
        xml_time,
        xml_time.as_secs_f64() / native_hangup_time.as_secs_f64()
    );
    println!("native     hangup               {:>9.1?}", native_hangup_time);
    println!(
        "SDK guest  answer/say/hangup    {:>9.1?}    {:>6.1}x",
        sdk_time,
        sdk_time.as_secs_f64() / native_hello_time.as_secs_f64()
    );
    println!("native     answer/say/hangup    {:>9.1?}", native_hello_time);
}

criterion_group!(benches, flow_start);
criterion_main!(benches);
