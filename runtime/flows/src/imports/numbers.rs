//! `opentact:flow/numbers`: the platform's number data.

use super::opentact::flow::numbers::{Host, Location};
use crate::state::FlowCtxView;

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
