-- SMS: messages (outbound smso, inbound smsr), every state a message passed through, the
-- parts an outbound message went out as (with the carrier's id, which delivery receipts
-- name), and receipts that arrived before their part's carrier id was recorded. The outbound
-- queue is the messages in state 'queued': a sender claims rows with a lease
-- (claimed_until) and records each attempt. Identical for SQLite and PostgreSQL.

CREATE TABLE sms_message (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES account (id),
    -- 'smso' (outbound) or 'smsr' (inbound).
    direction TEXT NOT NULL,
    -- The lease of the account's number (from for smso, to for smsr); NULL when not a lease.
    tn_lease_id TEXT,
    from_addr TEXT NOT NULL,
    to_addr TEXT NOT NULL,
    body TEXT NOT NULL,
    -- 'gsm7' or 'ucs2', and the parts on the air.
    encoding TEXT NOT NULL,
    parts INTEGER NOT NULL,
    state TEXT NOT NULL,
    custom_callback_url TEXT,
    -- Attempts recorded by senders.
    attempts INTEGER NOT NULL,
    -- A queued message is not claimed before this (retry back-off); ms since the epoch.
    not_before BIGINT NOT NULL,
    -- Set while a sender holds the message; a claim whose lease ran out without a recorded
    -- attempt was cut short by a crash (the sender's unknown-fate policy decides).
    claim_token TEXT,
    claimed_until BIGINT,
    created_on BIGINT NOT NULL,
    modified_on BIGINT NOT NULL,
    UNIQUE (account_id, id),
    FOREIGN KEY (account_id, tn_lease_id) REFERENCES tn_lease (account_id, id)
);
CREATE INDEX sms_message_account ON sms_message (account_id, created_on);
-- The sender's claim: queued messages by readiness.
CREATE INDEX sms_message_queue ON sms_message (state, not_before);

CREATE TABLE sms_transition (
    message_id TEXT NOT NULL REFERENCES sms_message (id),
    -- 0-based order of the step.
    seq INTEGER NOT NULL,
    state TEXT NOT NULL,
    at BIGINT NOT NULL,
    reason TEXT,
    PRIMARY KEY (message_id, seq)
);

CREATE TABLE sms_part (
    message_id TEXT NOT NULL REFERENCES sms_message (id),
    -- 0-based part index.
    part INTEGER NOT NULL,
    carrier_id TEXT NOT NULL,
    -- The last receipt's status ('delivered', 'expired'…) and the final state it means for
    -- the part ('delivered' / 'undelivered'), NULL until a receipt says.
    receipt_status TEXT,
    receipt_final TEXT,
    PRIMARY KEY (message_id, part)
);
CREATE INDEX sms_part_carrier ON sms_part (carrier_id);

CREATE TABLE sms_early_receipt (
    carrier_id TEXT NOT NULL,
    receipt_status TEXT NOT NULL,
    receipt_final TEXT,
    at BIGINT NOT NULL
);
CREATE INDEX sms_early_receipt_carrier ON sms_early_receipt (carrier_id);
CREATE INDEX sms_early_receipt_at ON sms_early_receipt (at);
