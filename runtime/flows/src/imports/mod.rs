//! The host side of the `opentact:flow` worlds: the workspace's `bindgen!`s (this file wires
//! the linkers), and one module per WIT interface implementing it on [`FlowCtxView`], the
//! imports' view of a flow's store ([`FlowView`]).
//!
//! Capabilities own their imports, like Spin's factors: each module adds its interface to a
//! linker (`add_to_linker`) and holds its per-instance state ([`CallCtx`] for calls,
//! [`MessagingCtx`] for messaging; HTTP is `wasi:http` under the policy of `crate::http`). The
//! customer world `flow` links calls, messaging, flow events and numbers; the built-in XML
//! guest's world `xml-flow` adds `app-control` ([`add_to_xml_linker`]), which customer
//! components therefore cannot import.
//!
//! Every import that waits on the platform first ends the guest's CPU segment
//! ([`FlowCtxView::waits_on_call`]): time the guest spends waiting is not computation; cheap
//! queries (`state`, `info`, `report`, …) leave the segment running, so a guest cannot escape
//! its budget by polling. No import traps but `call.info` and `call.state` in a flow without a
//! call (they have no error to return): what a guest can get wrong is a `call-error` it can
//! handle (a host bug cannot surface as a guest-visible trap either — it would be a `failed`
//! error or a panic caught in tests). A flow the host must stop (one that goes on reporting
//! past its event budget) is interrupted at the next epoch tick instead ([`flow_events`]).

mod app_control;
mod call;
mod flow_events;
mod messaging;
mod numbers;

use wasmtime::component::{HasData, Linker};

use crate::state::{FlowCtxView, FlowView};

/// The built-in XML guest's world: it generates every interface, the customer world below
/// reuses them.
pub(crate) mod xml {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "xml-flow",
        imports: {
            "opentact:flow/call.info": async | trappable,
            "opentact:flow/call.state": async | trappable,
            default: async,
        },
        exports: { default: async },
    });
}

/// The customer world.
mod customer {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "flow",
        imports: { default: async },
        exports: { default: async },
        with: {
            "opentact:flow/types": super::xml::opentact::flow::types,
            "opentact:flow/call": super::xml::opentact::flow::call,
            "opentact:flow/messaging": super::xml::opentact::flow::messaging,
            "opentact:flow/flow-events": super::xml::opentact::flow::flow_events,
            "opentact:flow/numbers": super::xml::opentact::flow::numbers,
        },
    });
}

pub use app_control::MAX_COMMAND_WAIT_MS;
pub(crate) use app_control::control_mode;
pub(crate) use call::CallCtx;
pub(crate) use call::call_info;
pub(crate) use customer::FlowPre;
pub use flow_events::REFUSED_REPORTS_BEFORE_STOP;
pub use messaging::MAX_SMS_PER_FLOW;
pub(crate) use messaging::MessagingCtx;
pub(crate) use xml::XmlFlowPre;
pub(crate) use xml::opentact::flow::types as wit;

impl xml::opentact::flow::types::Host for FlowCtxView<'_> {}

/// Names the imports' view type for the linker.
pub(crate) struct HasFlow;

impl HasData for HasFlow {
    type Data<'a> = FlowCtxView<'a>;
}

/// Link the customer world's imports (calls, messaging, flow events, numbers) for any store
/// data that gives a [`FlowView`].
pub(crate) fn add_to_linker<T: FlowView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    xml::opentact::flow::types::add_to_linker::<T, HasFlow>(linker, T::flow)?;
    call::add_to_linker(linker)?;
    messaging::add_to_linker(linker)?;
    flow_events::add_to_linker(linker)?;
    numbers::add_to_linker(linker)
}

/// Link the XML guest's world: the customer world's imports plus `app-control`.
pub(crate) fn add_to_xml_linker<T: FlowView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    add_to_linker(linker)?;
    app_control::add_to_linker(linker)
}
