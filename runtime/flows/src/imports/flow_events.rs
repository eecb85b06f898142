//! `opentact:flow/flow-events`: tags and reported steps become call events.
//!
//! Reported steps count against the call's event budget
//! ([`opentact_call::session::MAX_FLOW_EVENTS`], [`opentact_call::session::MAX_FLOW_EVENT_BYTES`]):
//! `report` returns nothing, so past the budget a step is dropped (and counted). A flow that
//! goes on reporting regardless — [`REFUSED_REPORTS_BEFORE_STOP`] drops — is stopped: the
//! next epoch tick interrupts it and the call fails with "event budget exceeded: …". The
//! call's other verbs work until then.

use opentact_call::Phase;

use super::opentact::flow::flow_events::{Host, Phase as WitPhase};
use crate::state::FlowCtxView;

/// Reports dropped over the event budget before the flow is stopped: as many again as the
/// budget, so a flow that reports a little too much loses those reports but goes on, and one
/// that reports in a loop is ended.
pub const REFUSED_REPORTS_BEFORE_STOP: u32 = opentact_call::session::MAX_FLOW_EVENTS;

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
            if self.ctx.stop.is_none() && self.ctx.session.flow_events_refused() > REFUSED_REPORTS_BEFORE_STOP
            {
                self.ctx.stop = Some(format!(
                    "event budget exceeded: the flow went on reporting after its budget of {} events and \
                     {} bytes per call ({} reports dropped)",
                    opentact_call::session::MAX_FLOW_EVENTS,
                    opentact_call::session::MAX_FLOW_EVENT_BYTES,
                    self.ctx.session.flow_events_refused()
                ));
            }
        }
    }
}
