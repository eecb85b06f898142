//! What the host needs to run one call's flow.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use opentact_call::CallSession;
use tokio::sync::mpsc;

/// An HTTP method of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

/// How the app controls its calls (mirrors the WIT `control-mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMode {
    /// A hosted XML document.
    Xml(String),
    /// A webhook returning the document.
    Webhook {
        /// URL.
        url: String,
        /// Method.
        method: HttpMethod,
        /// Timeout, ms.
        timeout_ms: u32,
    },
    /// REST commands.
    AsyncCommands,
    /// The component is the flow.
    Component,
}

/// Where a number is (answers the WIT `numbers.lookup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// ISO country code.
    pub country: String,
    /// State or province code.
    pub state: Option<String>,
    /// County.
    pub county: Option<String>,
    /// IANA time zone.
    pub time_zone: Option<String>,
}

/// The platform's number data, as flows see it.
pub trait NumberDirectory: Send + Sync {
    /// Locate a number.
    fn lookup(&self, number: &str) -> Option<Location>;
}

/// Knows no number.
#[derive(Debug, Default)]
pub struct EmptyDirectory;

impl NumberDirectory for EmptyDirectory {
    fn lookup(&self, _number: &str) -> Option<Location> {
        None
    }
}

/// One call's flow: its session, its app's mode and what the imports read.
pub struct CallContext {
    pub(crate) session: Arc<CallSession>,
    pub(crate) mode: ControlMode,
    pub(crate) commands: Option<mpsc::Receiver<String>>,
    pub(crate) numbers: Arc<dyn NumberDirectory>,
    pub(crate) wall_clock: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for CallContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("session", &self.session)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl CallContext {
    /// A flow for `session`, in `mode`.
    pub fn new(session: Arc<CallSession>, mode: ControlMode) -> Self {
        Self { session, mode, commands: None, numbers: Arc::new(EmptyDirectory), wall_clock: None }
    }

    /// The number data `<Geo>` and `numbers.lookup` use.
    pub fn with_numbers(mut self, numbers: Arc<dyn NumberDirectory>) -> Self {
        self.numbers = numbers;
        self
    }

    /// Fix the flow's wall clock to start at `at` (the runner's `--at`); `None` = real time.
    pub fn with_wall_clock(mut self, at: Option<DateTime<Utc>>) -> Self {
        self.wall_clock = at;
        self
    }

    /// Asynchronous call-control commands (`<Response>` fragments) for `next-command`.
    pub fn with_commands(mut self, commands: mpsc::Receiver<String>) -> Self {
        self.commands = Some(commands);
        self
    }
}
