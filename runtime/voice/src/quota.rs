//! The per-account recording quota (`media.max_recordings_per_account`,
//! `media.max_recording_mib_per_account`): before a recording starts (`<Record>`, a background
//! recording, a recorded `<Dial>`) the account's stored recordings are counted from the store;
//! at its quota the verb fails with `limit-exceeded`, and a recording that grows past what is
//! left of the bytes is stopped there ([`opentact_media::recorder::WavRecorder::create_within`]).
//!
//! Each recording is checked at its start against what is stored then: recordings of one
//! account running at the same time may together pass the byte quota by what they record,
//! each bounded by its own allowance.

use std::sync::Arc;

use async_trait::async_trait;
use opentact_call::error::CallError;

/// Below this allowance (a second of audio: `file_bytes(1000)`) a recording is not started.
const MIN_ALLOWANCE_BYTES: u64 = 16_044;

/// What an account keeps of recordings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredUsage {
    /// Recordings stored.
    pub count: u64,
    /// Their files' sizes together, bytes.
    pub bytes: u64,
}

/// Where the quota reads an account's stored recordings (the server: the store).
#[async_trait]
pub trait StoredRecordings: Send + Sync {
    /// What `account` keeps now; `Err` says why it could not be read.
    async fn usage(&self, account: &str) -> Result<StoredUsage, String>;
}

/// The quota every recording of an account is checked against.
#[derive(Clone)]
pub struct RecordingQuota {
    /// Most recordings an account keeps.
    pub max_count: u64,
    /// Most bytes an account's recordings take together.
    pub max_bytes: u64,
    /// What accounts keep; `None`: no quota (tools and tests without a store).
    pub stored: Option<Arc<dyn StoredRecordings>>,
}

impl std::fmt::Debug for RecordingQuota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingQuota")
            .field("max_count", &self.max_count)
            .field("max_bytes", &self.max_bytes)
            .field("stored", &self.stored.is_some())
            .finish()
    }
}

impl RecordingQuota {
    /// No quota.
    pub fn unlimited() -> Self {
        Self { max_count: u64::MAX, max_bytes: u64::MAX, stored: None }
    }

    /// The bytes a new recording of `account` may take (header included), or `LimitExceeded`
    /// saying which quota is spent and how to free it.
    pub async fn allowance(&self, account: &str) -> Result<u64, CallError> {
        let Some(stored) = &self.stored else { return Ok(self.max_bytes) };
        let usage = stored.usage(account).await.map_err(|error| {
            CallError::Failed(format!("recording quota: reading the account's recordings: {error}"))
        })?;
        self.allowance_after(usage)
    }

    /// [`RecordingQuota::allowance`] for an account that keeps `usage`.
    pub fn allowance_after(&self, usage: StoredUsage) -> Result<u64, CallError> {
        let free = "delete recordings with DELETE /rest/record/{uuid}";
        if usage.count >= self.max_count {
            return Err(CallError::LimitExceeded(format!(
                "recording quota: the account keeps {} recordings, the most it may \
                 (media.max_recordings_per_account = {}); {free}",
                usage.count, self.max_count
            )));
        }
        let left = self.max_bytes.saturating_sub(usage.bytes);
        if left < MIN_ALLOWANCE_BYTES {
            return Err(CallError::LimitExceeded(format!(
                "recording quota: the account's recordings take {} of its {} bytes \
                 (media.max_recording_mib_per_account = {}); {free}",
                usage.bytes,
                self.max_bytes,
                self.max_bytes / (1024 * 1024)
            )));
        }
        Ok(left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota() -> RecordingQuota {
        RecordingQuota { max_count: 2, max_bytes: 1024 * 1024, stored: None }
    }

    #[test]
    fn the_allowance_is_what_is_left_of_the_bytes() {
        assert_eq!(MIN_ALLOWANCE_BYTES, opentact_media::recorder::file_bytes(1000));
        assert_eq!(quota().allowance_after(StoredUsage { count: 1, bytes: 24 * 1024 }), Ok(1000 * 1024));
    }

    #[test]
    fn a_full_count_or_too_few_bytes_left_refuse_the_recording_naming_the_key() {
        let at_count = quota().allowance_after(StoredUsage { count: 2, bytes: 0 }).unwrap_err();
        assert_eq!(at_count.kind(), "limit_exceeded");
        assert!(at_count.to_string().contains("media.max_recordings_per_account = 2"), "{at_count}");
        assert!(at_count.to_string().contains("DELETE /rest/record/"), "{at_count}");
        let at_bytes =
            quota().allowance_after(StoredUsage { count: 1, bytes: 1024 * 1024 - 100 }).unwrap_err();
        assert!(at_bytes.to_string().contains("media.max_recording_mib_per_account = 1"), "{at_bytes}");
    }
}
