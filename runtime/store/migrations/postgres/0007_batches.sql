-- Bulk calls: a batch of numbers called from one lease, each answered call running one flow
-- (an XML document or an app), and what became of each number. A batch's counts are not
-- stored: they are aggregated from its items when it is read. Identical for SQLite and
-- PostgreSQL.

-- New calls an outbound voice profile starts per second; NULL for no limit.
ALTER TABLE outbound_voice_profile ADD COLUMN calls_per_second INTEGER;

CREATE TABLE batch (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES account (id),
    outbound_voice_profile_id TEXT,
    tn_lease_id TEXT NOT NULL,
    -- The lease's number when the batch was created.
    from_tn BIGINT NOT NULL,
    -- Exactly one of the two (checked by the store).
    xml_document TEXT,
    sip_control_app_id TEXT,
    ring_timeout_secs INTEGER NOT NULL,
    state TEXT NOT NULL,
    created_on BIGINT NOT NULL,
    modified_on BIGINT NOT NULL,
    deleted_on BIGINT,
    UNIQUE (account_id, id),
    FOREIGN KEY (account_id, outbound_voice_profile_id) REFERENCES outbound_voice_profile (account_id, id),
    FOREIGN KEY (account_id, tn_lease_id) REFERENCES tn_lease (account_id, id),
    FOREIGN KEY (account_id, sip_control_app_id) REFERENCES sip_control_app (account_id, id)
);
CREATE INDEX batch_account ON batch (account_id, created_on);
-- The runner's start-up read: the queued and running batches, oldest first.
CREATE INDEX batch_state ON batch (state, created_on);

CREATE TABLE batch_item (
    batch_id TEXT NOT NULL REFERENCES batch (id),
    -- 0-based place in the batch's list: the order the calls are placed in.
    position INTEGER NOT NULL,
    phone TEXT NOT NULL,
    state TEXT NOT NULL,
    call_id TEXT,
    q850_cause INTEGER,
    reason TEXT,
    started_on BIGINT,
    ended_on BIGINT,
    PRIMARY KEY (batch_id, position)
);
