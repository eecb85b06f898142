//! `opentact:flow/app-control`: the app's control mode and the asynchronous command queue.

use std::time::Duration;

use super::opentact::flow::app_control::{ControlMode as WitMode, Host, HttpMethod as WitMethod, Webhook};
use super::wit::CallError;
use crate::context::{ControlMode, HttpMethod};
use crate::state::FlowCtxView;

/// Longest one `next-command` wait may be, ms (the park timeout's upper bound).
pub const MAX_COMMAND_WAIT_MS: u32 = 10 * 60 * 1000;

impl Host for FlowCtxView<'_> {
    async fn mode(&mut self) -> WitMode {
        match &self.ctx.mode {
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

    async fn next_command(&mut self, timeout_ms: u32) -> Result<Option<String>, CallError> {
        self.waits_on_call();
        let wait = Duration::from_millis(u64::from(timeout_ms.min(MAX_COMMAND_WAIT_MS)));
        let Some(commands) = self.ctx.commands.as_mut() else {
            tokio::time::sleep(wait).await;
            return Ok(None);
        };
        match tokio::time::timeout(wait, commands.recv()).await {
            Ok(Some(command)) => Ok(Some(command)),
            Ok(None) => Err(CallError::InvalidState("the command queue is closed".to_owned())),
            Err(_) => Ok(None),
        }
    }
}
