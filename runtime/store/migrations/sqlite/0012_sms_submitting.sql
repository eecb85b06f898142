-- Exactly-once SMS across a crash. A part of an outbound message is "in doubt" from the
-- moment a sender claims it (before any submit_sm is written) until its attempt is recorded
-- (accepted: its carrier id goes to sms_part; refused: it is no longer in doubt) or a
-- delivery receipt settles it. Each part in doubt carries the SMPP user_message_reference
-- (0..65535) it is submitted with, unique among the parts in doubt, which an SMSC may echo in
-- its delivery receipt; after a crash, a part in doubt is not submitted again before the
-- reconciliation grace has passed without such a receipt. Identical for SQLite and PostgreSQL.

CREATE TABLE sms_submitting (
    message_id TEXT NOT NULL REFERENCES sms_message (id),
    -- 0-based part index.
    part INTEGER NOT NULL,
    -- The user_message_reference the part is submitted with.
    user_ref INTEGER NOT NULL,
    -- When it was put in doubt (claimed, or its submit's answer was lost); ms since the epoch.
    at BIGINT NOT NULL,
    PRIMARY KEY (message_id, part)
);
CREATE UNIQUE INDEX sms_submitting_ref ON sms_submitting (user_ref);

-- The next user_message_reference to hand out (one row; wraps at 65536).
CREATE TABLE sms_reference (
    id INTEGER PRIMARY KEY,
    next_ref INTEGER NOT NULL
);
INSERT INTO sms_reference (id, next_ref) VALUES (1, 0);

-- A sender reads its claim back, puts its parts in doubt and renews it by claim_token.
CREATE INDEX sms_message_claim ON sms_message (claim_token);
