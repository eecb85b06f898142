//! The host side of the `opentact:flow` world: the one `bindgen!` of the workspace, and one
//! module per WIT interface implementing it on the call's [`FlowState`].
//!
//! Every import first ends the guest's CPU segment ([`FlowState::host_call`]): time the guest
//! spends waiting on its call is not computation.

mod app_control;
mod call;
mod flow_events;
mod numbers;

use crate::state::FlowState;

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "flow",
    imports: { default: async },
    exports: { default: async },
});

pub(crate) use call::state as call_state;
pub(crate) use opentact::flow::types as wit;

impl opentact::flow::types::Host for FlowState {}

/// Link the world's imports.
pub(crate) fn add_to_linker(linker: &mut wasmtime::component::Linker<FlowState>) -> wasmtime::Result<()> {
    Flow::add_to_linker::<FlowState, wasmtime::component::HasSelf<FlowState>>(linker, |state| state)
}
