//! `opentact:flow/flow-events`: tags and reported steps become call events.
//!
//! Reported steps count against the call's event budget
//! ([`opentact_call::session::MAX_FLOW_EVENTS`], [`opentact_call::session::MAX_FLOW_EVENT_BYTES`]):
//! `report` returns nothing, so past the budget a step is dropped (and counted). A flow that
//! goes on reporting regardless — [`REFUSED_REPORTS_BEFORE_STOP`] drops — is stopped: the
//! next epoch tick interrupts it and the call fails with "event budget exceeded: …". The
//! call's other verbs work until then.
//!
//! A flow without a call (an SMS flow) has no call events to carry its steps: they go to the
//! log, within the same budget of [`opentact_call::session::MAX_FLOW_EVENTS`] steps (then they
//! are dropped, and after as many again the flow is stopped); its tag is ignored.

use opentact_call::Phase;
use wasmtime::component::Linker;

use super::HasFlow;
use super::xml::opentact::flow::flow_events::{self as interface, Host, Phase as WitPhase};
use crate::state::{FlowCtxView, FlowView};

/// Link `opentact:flow/flow-events`.
pub(crate) fn add_to_linker<T: FlowView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    interface::add_to_linker::<T, HasFlow>(linker, T::flow)
}

fn stop_reason(dropped: u32) -> String {
    format!(
        "event budget exceeded: the flow went on reporting after its budget of {} events and \
         {} bytes per call ({dropped} reports dropped)",
        opentact_call::session::MAX_FLOW_EVENTS,
        opentact_call::session::MAX_FLOW_EVENT_BYTES,
    )
}

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
        if let Some(call) = &self.ctx.call {
            let _ = call.session.set_tag(tag.filter(|t| !t.is_empty()));
        }
    }

    async fn report(&mut self, verb: String, phase: WitPhase, detail: Vec<(String, String)>) {
        let phase = match phase {
            WitPhase::Started => Phase::Started,
            WitPhase::Finished => Phase::Finished,
            WitPhase::Failed => Phase::Failed,
        };
        let Some(call) = &self.ctx.call else {
            self.ctx.reports = self.ctx.reports.saturating_add(1);
            let budget = opentact_call::session::MAX_FLOW_EVENTS;
            if self.ctx.reports <= budget {
                tracing::info!(target: "opentact::flow::report", %verb, ?phase, ?detail, "flow step");
            } else if self.ctx.stop.is_none() && self.ctx.reports - budget > REFUSED_REPORTS_BEFORE_STOP {
                self.ctx.stop = Some(stop_reason(self.ctx.reports - budget));
            }
            return;
        };
        if let Err(error) = call.session.report(&verb, phase, detail) {
            tracing::debug!(%error, "flow report refused");
            let refused = call.session.flow_events_refused();
            if self.ctx.stop.is_none() && refused > REFUSED_REPORTS_BEFORE_STOP {
                self.ctx.stop = Some(stop_reason(refused));
            }
        }
    }
}
