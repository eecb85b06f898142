-- STIR/SHAKEN per app and per call (issue 13). An app's verification of its inbound calls:
-- shaken_verify_policy 'off' | 'tag' | 'reject', shaken_minimum_accepted_attest_lvl 'A' | 'B' |
-- 'C'; NULL follows the platform's [stir_shaken] configuration.
ALTER TABLE sip_control_app ADD COLUMN shaken_verify_policy TEXT
    CHECK (shaken_verify_policy IN ('off', 'tag', 'reject'));
ALTER TABLE sip_control_app ADD COLUMN shaken_minimum_accepted_attest_lvl TEXT
    CHECK (shaken_minimum_accepted_attest_lvl IN ('A', 'B', 'C'));
-- What an inbound call's verification found; NULL on calls that were not checked.
ALTER TABLE call_record ADD COLUMN stir_shaken_attest_level TEXT;
ALTER TABLE call_record ADD COLUMN stir_shaken_identity TEXT;
ALTER TABLE call_record ADD COLUMN verstat TEXT;
