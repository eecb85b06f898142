//! Transcripts of recordings made with `<Record asr="true">`: the WAV goes to a speech-to-text
//! provider over HTTP, and what it heard is stored with the recording (`GET /rest/record/{uuid}`)
//! and announced as `transcript.available`.
//!
//! The provider is pluggable by URL: it receives `POST <stt_url>` with the recording as
//! `audio/wav` and answers `{"text": "…"}` — a thin adapter in front of any engine (Whisper,
//! Vosk, a cloud API) speaks it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use opentact_events::{Event, EventBus};
use serde::Deserialize;
use tracing::{info, warn};
use uuid::Uuid;

use crate::Repo;

/// The `[speech]` table of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpeechConfig {
    /// The speech-to-text provider; without it `asr="true"` records without a transcript.
    pub stt_url: Option<String>,
    /// One transcription request, ms.
    pub stt_timeout_ms: u64,
    /// Let `stt_url` be a loopback or private address (a provider on the same host).
    pub allow_private: bool,
}

impl Default for SpeechConfig {
    fn default() -> Self {
        SpeechConfig { stt_url: None, stt_timeout_ms: 30_000, allow_private: false }
    }
}

/// Largest provider answer read.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Sends recordings to the provider.
pub struct Transcriber {
    url: String,
    /// The platform's outbound HTTP client, with the provider's policy (`allow_private`).
    client: opentact_egress::Client,
    caps: opentact_egress::http::Caps,
    recordings_dir: PathBuf,
    store: Repo,
    bus: Arc<EventBus>,
}

impl std::fmt::Debug for Transcriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcriber").field("url", &self.url).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Answer {
    text: String,
}

impl Transcriber {
    /// `None` when no provider is configured.
    pub fn new(
        config: &SpeechConfig,
        recordings_dir: PathBuf,
        store: Repo,
        bus: Arc<EventBus>,
    ) -> Option<Arc<Self>> {
        let url = config.stt_url.clone()?;
        let caps = opentact_egress::http::Caps {
            timeout: Duration::from_millis(config.stt_timeout_ms),
            max_body_bytes: MAX_ANSWER_BYTES,
        };
        let policy = if config.allow_private {
            opentact_egress::Policy::any()
        } else {
            opentact_egress::Policy::public_only()
        };
        let client = opentact_egress::Client::new(policy, &opentact_egress::http::ClientOptions::default());
        Some(Arc::new(Transcriber { url, client, caps, recordings_dir, store, bus }))
    }

    /// Transcribes `recording` of `account`'s `call` in the background.
    pub fn start(self: &Arc<Self>, account: Uuid, call: Uuid, recording: Uuid) {
        let me = self.clone();
        tokio::spawn(async move {
            match me.transcribe(account, call, recording).await {
                Ok(text) => info!(%call, %recording, chars = text.len(), "transcript stored"),
                Err(error) => warn!(%call, %recording, %error, "transcription failed"),
            }
        });
    }

    async fn transcribe(&self, account: Uuid, call: Uuid, recording: Uuid) -> Result<String, String> {
        let path = opentact_call::model::recording_file(
            &self.recordings_dir,
            &account.to_string(),
            &call.to_string(),
            &recording.to_string(),
        );
        let audio =
            tokio::fs::read(&path).await.map_err(|error| format!("reading {}: {error}", path.display()))?;
        let answer = self
            .client
            .send("POST", &self.url, &[], Some(("audio/wav", audio)), &self.caps)
            .await
            .map_err(|error| error.to_string())?;
        if !(200..300).contains(&answer.status) {
            return Err(format!("the provider answered {}", answer.status));
        }
        let Answer { text } = serde_json::from_slice(&answer.body)
            .map_err(|error| format!("the provider's answer is not {{\"text\": …}}: {error}"))?;
        self.store.set_transcript(account, recording, &text).await.map_err(|error| error.to_string())?;
        let payload = serde_json::json!({ "recording": recording, "text": text });
        self.bus.publish(Event::now(account, "transcript.available", Some(call), payload));
        Ok(text)
    }
}
