//! The host side of the `opentact:flow` world: the one `bindgen!` of the workspace (this file
//! wires the linker), and one module per WIT interface implementing it on [`FlowCtxView`], the
//! imports' view of a call's store ([`FlowView`]).
//!
//! Every import that waits on the call first ends the guest's CPU segment
//! ([`FlowCtxView::waits_on_call`]): time the guest spends waiting on its call is not
//! computation; cheap queries (`state`, `info`, `report`, …) leave the segment running, so a
//! guest cannot escape its budget by polling. No import traps: what a guest can get wrong
//! is a `call-error` it can handle (the bindings are not `trappable`, so a host bug cannot
//! surface as a guest-visible trap either — it would be a `failed` error or a panic caught in
//! tests). A flow the host must stop (one that goes on reporting past its event budget) is
//! interrupted at the next epoch tick instead ([`flow_events`]).

mod app_control;
mod call;
mod flow_events;
mod numbers;

use wasmtime::component::{HasData, Linker};

use crate::state::{FlowCtxView, FlowView};

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "flow",
    imports: { default: async },
    exports: { default: async },
});

pub use app_control::MAX_COMMAND_WAIT_MS;
pub(crate) use call::state as call_state;
pub use flow_events::REFUSED_REPORTS_BEFORE_STOP;
pub(crate) use opentact::flow::types as wit;

impl opentact::flow::types::Host for FlowCtxView<'_> {}

/// Names the imports' view type for the linker.
struct HasFlow;

impl HasData for HasFlow {
    type Data<'a> = FlowCtxView<'a>;
}

/// Link the world's imports for any store data that gives a [`FlowView`].
pub(crate) fn add_to_linker<T: FlowView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    Flow::add_to_linker::<T, HasFlow>(linker, T::flow)
}
