-- A recording's transcript, once the speech-to-text provider returned it.
ALTER TABLE recording ADD COLUMN transcript TEXT;
