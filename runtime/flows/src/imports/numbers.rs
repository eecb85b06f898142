//! `opentact:flow/numbers`: the platform's number data.

use wasmtime::component::Linker;

use super::HasFlow;
use super::xml::opentact::flow::numbers::{self as interface, Host, Location};
use crate::state::{FlowCtxView, FlowView};

/// Link `opentact:flow/numbers`.
pub(crate) fn add_to_linker<T: FlowView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    interface::add_to_linker::<T, HasFlow>(linker, T::flow)
}

impl Host for FlowCtxView<'_> {
    async fn lookup(&mut self, number: String) -> Option<Location> {
        self.ctx.numbers.lookup(&number).map(|l| Location {
            country: l.country,
            state: l.state,
            county: l.county,
            time_zone: l.time_zone,
        })
    }
}
