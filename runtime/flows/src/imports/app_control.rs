//! `opentact:flow/app-control` (the XML guest's world only): the app's control mode, given to
//! the XML guest's handler, and the asynchronous command queue.

use std::time::Duration;

use wasmtime::component::Linker;

use super::HasFlow;
use super::wit::CallError;
use super::xml::opentact::flow::app_control::{
    self as interface, ControlMode as WitMode, Host, HttpMethod as WitMethod, Webhook,
};
use crate::context::{ControlMode, HttpMethod};
use crate::state::{FlowCtxView, FlowView};

/// Longest one `next-command` wait may be, ms (the park timeout's upper bound).
pub const MAX_COMMAND_WAIT_MS: u32 = 10 * 60 * 1000;

/// Link `opentact:flow/app-control`.
pub(crate) fn add_to_linker<T: FlowView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    interface::add_to_linker::<T, HasFlow>(linker, T::flow)
}

/// The WIT `control-mode` the XML guest's handler is given.
pub(crate) fn control_mode(mode: &ControlMode) -> WitMode {
    match mode {
        ControlMode::Xml(document) => WitMode::Xml(document.clone()),
        ControlMode::Webhook { url, method, timeout_ms } => WitMode::Webhook(Webhook {
            url: url.clone(),
            method: match method {
                HttpMethod::Get => WitMethod::Get,
                HttpMethod::Post => WitMethod::Post,
                HttpMethod::Patch => WitMethod::Patch,
                HttpMethod::Delete => WitMethod::Delete,
            },
            timeout_ms: *timeout_ms,
        }),
        ControlMode::AsyncCommands => WitMode::AsyncCommands,
        ControlMode::Component => WitMode::Component,
    }
}

impl Host for FlowCtxView<'_> {
    async fn next_command(&mut self, timeout_ms: u32) -> Result<Option<String>, CallError> {
        let Some(call) = self.ctx.call.as_mut() else {
            return Err(CallError::InvalidState(super::call::no_call("next-command")));
        };
        let wait = Duration::from_millis(u64::from(timeout_ms.min(MAX_COMMAND_WAIT_MS)));
        let commands = call.commands.as_mut();
        self.cpu.ticks = 0;
        let Some(commands) = commands else {
            tokio::time::sleep(wait).await;
            return Ok(None);
        };
        let _parked = call.metrics.park();
        match tokio::time::timeout(wait, commands.recv()).await {
            Ok(Some(command)) => Ok(Some(command)),
            Ok(None) => Err(CallError::InvalidState("the command queue is closed".to_owned())),
            Err(_) => Ok(None),
        }
    }
}
