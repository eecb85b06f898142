//! Recording the caller: the `<Record>` verb.

use std::time::Duration;

use crate::bindings::opentact::flow::types::RecordRequest;
use crate::ms;

/// Record the caller until the finish key, a silence or the maximum length.
///
/// Defaults match the XML dialect's `<Record>`: at most one hour, stopped by `#` or by 5 s of
/// silence, no transcript. The recording is kept under its name for the rest of the call, so
/// [`Play::recording`](crate::Play::recording) can replay it.
///
/// ```no_run
/// use std::time::Duration;
/// use opentact_sdk::{Call, Play, Record, Result};
///
/// fn message(call: &Call) -> Result<()> {
///     let recording = call.record(
///         Record::new("message").max_length(Duration::from_secs(60)).finish_key('#').transcribe(true),
///     )?;
///     call.set_meta("recording", &recording.id)?;
///     call.play(Play::recording("message"))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Record(pub(crate) RecordRequest);

impl Record {
    /// A recording kept under `name` in this call.
    pub fn new(name: impl Into<String>) -> Self {
        Record(RecordRequest {
            name: name.into(),
            max_length_ms: 3_600_000,
            silence_timeout_ms: 5_000,
            finish_key: Some("#".to_owned()),
            transcribe: false,
        })
    }

    /// The longest recording (one hour by default).
    pub fn max_length(mut self, length: Duration) -> Self {
        self.0.max_length_ms = ms(length);
        self
    }

    /// Stop after this much silence (5 s by default; zero: never).
    pub fn silence_timeout(mut self, timeout: Duration) -> Self {
        self.0.silence_timeout_ms = ms(timeout);
        self
    }

    /// The key that stops the recording (`#` by default).
    pub fn finish_key(mut self, key: char) -> Self {
        self.0.finish_key = Some(key.to_string());
        self
    }

    /// No finish key: only silence or the maximum length stops the recording.
    pub fn no_finish_key(mut self) -> Self {
        self.0.finish_key = None;
        self
    }

    /// Ask for a transcript, delivered as a `transcript.available` event (off by default).
    pub fn transcribe(mut self, yes: bool) -> Self {
        self.0.transcribe = yes;
        self
    }

    /// The WIT request this builds.
    pub fn request(&self) -> &RecordRequest {
        &self.0
    }
}

impl From<Record> for RecordRequest {
    fn from(record: Record) -> Self {
        record.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_xml_dialect() {
        let record = RecordRequest::from(Record::new("voicemail"));
        assert_eq!(record.name, "voicemail");
        assert_eq!((record.max_length_ms, record.silence_timeout_ms), (3_600_000, 5_000));
        assert_eq!(record.finish_key.as_deref(), Some("#"));
        assert!(!record.transcribe);
    }

    #[test]
    fn the_builder_fills_the_request() {
        let record = RecordRequest::from(
            Record::new("m")
                .max_length(Duration::from_secs(60))
                .silence_timeout(Duration::ZERO)
                .finish_key('*')
                .transcribe(true),
        );
        assert_eq!((record.max_length_ms, record.silence_timeout_ms), (60_000, 0));
        assert_eq!(record.finish_key.as_deref(), Some("*"));
        assert!(record.transcribe);
        assert_eq!(Record::new("m").no_finish_key().request().finish_key, None);
    }
}
