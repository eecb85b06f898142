//! What the host needs to run one call's flow.

use std::sync::Arc;
use std::time::Duration;

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
///
/// Build it with [`CallContext::new`] and the `with_*` methods, or fill the fields directly.
pub struct CallContext {
    /// The call the flow controls: every call-control import runs on it, and
    /// [`crate::FlowHost::run_call`] finishes it when the flow ends.
    pub session: Arc<CallSession>,
    /// The app's control mode (`app-control.mode`).
    pub mode: ControlMode,
    /// Asynchronous call-control commands for `app-control.next-command`; `None` = the app
    /// sends none (a wait then times out empty).
    pub commands: Option<mpsc::Receiver<String>>,
    /// The number data `numbers.lookup` answers from.
    pub numbers: Arc<dyn NumberDirectory>,
    /// The flow's wall clock starts here (the runner's `--at`); `None` = real time.
    pub wall_clock: Option<DateTime<Utc>>,
    /// The app's own limit on the flow's length (its `max_call_length_min`); the host's
    /// [`crate::HostConfig::max_call_length_s`] applies when `None`, and caps it otherwise.
    pub max_call_length: Option<Duration>,
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
        Self {
            session,
            mode,
            commands: None,
            numbers: Arc::new(EmptyDirectory),
            wall_clock: None,
            max_call_length: None,
        }
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

    /// The app's limit on the flow's length (capped by the host's own).
    pub fn with_max_call_length(mut self, limit: Duration) -> Self {
        self.max_call_length = Some(limit);
        self
    }

    /// Asynchronous call-control commands (`<Response>` fragments) for `next-command`.
    pub fn with_commands(mut self, commands: mpsc::Receiver<String>) -> Self {
        self.commands = Some(commands);
        self
    }
}
