-- Number orders (with each item's outcome), SIP connection invites, messaging profiles, and
-- the settings the REST API documents on SIP users and outbound voice profiles. Identical for
-- SQLite and PostgreSQL.

CREATE TABLE tn_order (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES account (id),
    state TEXT NOT NULL,
    total INTEGER NOT NULL,
    success INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    created_on BIGINT NOT NULL,
    modified_on BIGINT NOT NULL,
    UNIQUE (account_id, id)
);
CREATE INDEX tn_order_account ON tn_order (account_id, created_on);

CREATE TABLE tn_order_item (
    order_id TEXT NOT NULL REFERENCES tn_order (id),
    position INTEGER NOT NULL,
    tn BIGINT NOT NULL,
    state TEXT NOT NULL,
    lease_id TEXT,
    message TEXT,
    PRIMARY KEY (order_id, position)
);
CREATE INDEX tn_order_item_tn ON tn_order_item (tn);

-- A one-time token with which the holder sets a SIP connection's digest credentials. Only the
-- token's SHA-256 is kept.
CREATE TABLE sip_invite (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES account (id),
    connection_id TEXT NOT NULL,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    expired_on BIGINT NOT NULL,
    used_on BIGINT,
    created_on BIGINT NOT NULL,
    modified_on BIGINT NOT NULL,
    deleted_on BIGINT,
    FOREIGN KEY (account_id, connection_id) REFERENCES sip_connection (account_id, id)
);
CREATE INDEX sip_invite_connection ON sip_invite (connection_id, created_on);

CREATE TABLE messaging_profile (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES account (id),
    name TEXT NOT NULL,
    callback_url TEXT,
    callback_url2 TEXT,
    number_pool_enable BOOLEAN NOT NULL,
    long_code_weight INTEGER NOT NULL,
    toll_free_weight INTEGER NOT NULL,
    skip_unhealthy_tns BOOLEAN NOT NULL,
    sticky_sender BOOLEAN NOT NULL,
    created_on BIGINT NOT NULL,
    modified_on BIGINT NOT NULL,
    deleted_on BIGINT,
    UNIQUE (account_id, id)
);
CREATE INDEX messaging_profile_account ON messaging_profile (account_id, created_on);

-- Checked against the lease's account by the store before it is written (SQLite cannot add a
-- composite foreign key to an existing table).
ALTER TABLE tn_lease ADD COLUMN messaging_profile_id TEXT REFERENCES messaging_profile (id);

ALTER TABLE sip_user ADD COLUMN same_domain_calls_only BOOLEAN NOT NULL DEFAULT FALSE;

ALTER TABLE outbound_voice_profile ADD COLUMN shaken_sign_policy TEXT NOT NULL DEFAULT 'sign';
