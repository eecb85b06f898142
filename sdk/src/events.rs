//! Flow bookkeeping: the tag echoed into events, and reports of steps the host cannot see.

use crate::bindings::opentact::flow::flow_events;

pub use flow_events::Phase;

/// Set the tag echoed into every event caused from now on (a verb's `tag` attribute in the XML
/// dialect); `None` clears it. At most 256 bytes.
///
/// ```no_run
/// # fn flow(call: &opentact_sdk::Call) -> opentact_sdk::Result<()> {
/// opentact_sdk::set_tag(Some("main-menu"));
/// call.say("Press 1 for sales.")?;
/// opentact_sdk::set_tag(None);
/// # Ok(()) }
/// ```
pub fn set_tag(tag: Option<&str>) {
    flow_events::set_tag(tag);
}

/// Report a step of the flow that is not a call-control request (an HTTP side call, a branch
/// taken…): it becomes a `call.callflow` event. `verb` is a short name, `detail` key/value
/// pairs.
///
/// ```no_run
/// use opentact_sdk::Phase;
/// opentact_sdk::report("branch", Phase::Finished, &[("choice", "sales")]);
/// opentact_sdk::report("crm", Phase::Failed, &[("url", "https://crm.example/"), ("error", "timeout")]);
/// ```
pub fn report(verb: &str, phase: Phase, detail: &[(&str, &str)]) {
    let detail: Vec<(String, String)> =
        detail.iter().map(|&(key, value)| (key.to_owned(), value.to_owned())).collect();
    flow_events::report(verb, phase, &detail);
}
