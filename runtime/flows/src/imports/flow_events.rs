//! `opentact:flow/flow-events`: tags and reported steps become call events.

use opentact_call::Phase;

use super::opentact::flow::flow_events::{Host, Phase as WitPhase};
use crate::state::FlowCtxView;

impl Host for FlowCtxView<'_> {
    async fn set_tag(&mut self, tag: Option<String>) {
        // An over-long tag is cut rather than trapping: tags are for correlation only.
        let tag = tag.map(|mut t| {
            let mut end = t.len().min(opentact_call::session::MAX_TAG_BYTES);
            while !t.is_char_boundary(end) {
                end -= 1;
            }
            t.truncate(end);
            t
        });
        let _ = self.ctx.session.set_tag(tag.filter(|t| !t.is_empty()));
    }

    async fn report(&mut self, verb: String, phase: WitPhase, detail: Vec<(String, String)>) {
        let phase = match phase {
            WitPhase::Started => Phase::Started,
            WitPhase::Finished => Phase::Finished,
            WitPhase::Failed => Phase::Failed,
        };
        if let Err(error) = self.ctx.session.report(&verb, phase, detail) {
            tracing::debug!(%error, "flow report refused");
        }
    }
}
