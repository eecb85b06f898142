-- The call log (CDRs) and recordings' metadata (the audio stays a file under the data
-- directory). Identical for SQLite and PostgreSQL.

CREATE TABLE call_record (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES account (id),
    app_id TEXT,
    direction TEXT NOT NULL,
    from_party TEXT NOT NULL,
    to_party TEXT NOT NULL,
    state TEXT NOT NULL,
    started_on BIGINT NOT NULL,
    answered_on BIGINT,
    ended_on BIGINT,
    duration_ms BIGINT,
    q850_cause INTEGER,
    hangup_cause TEXT,
    hangup_by TEXT,
    hangup_reason TEXT,
    created_on BIGINT NOT NULL,
    modified_on BIGINT NOT NULL,
    UNIQUE (account_id, id)
);
CREATE INDEX call_record_account ON call_record (account_id, started_on);

CREATE TABLE recording (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES account (id),
    call_id TEXT NOT NULL,
    name TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    created_on BIGINT NOT NULL,
    modified_on BIGINT NOT NULL,
    FOREIGN KEY (account_id, call_id) REFERENCES call_record (account_id, id)
);
CREATE INDEX recording_call ON recording (call_id, created_on);
