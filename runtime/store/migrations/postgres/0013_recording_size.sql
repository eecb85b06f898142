-- A recording's size on disk, bytes: the per-account recording quota
-- (media.max_recording_mib_per_account) adds them up. Recordings made before this migration
-- are 8 kHz 16-bit mono WAV: a 44-byte header and 16 bytes a millisecond.
ALTER TABLE recording ADD COLUMN size_bytes BIGINT NOT NULL DEFAULT 0;
UPDATE recording SET size_bytes = 44 + duration_ms * 16;
CREATE INDEX recording_account ON recording (account_id);
