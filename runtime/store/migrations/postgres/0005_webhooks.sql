-- Event subscriptions, each account's webhook signing key, and the webhook outbox: every
-- delivery is a row until it is delivered or given up, so a restart or a crash loses none.
-- Identical for SQLite and PostgreSQL.

CREATE TABLE account_signing_key (
    account_id TEXT PRIMARY KEY REFERENCES account (id),
    -- Ed25519, base64: the public key (32 bytes) and the PKCS#8 document of the pair. The
    -- private half cannot be hashed (the platform signs with it); it never leaves the server.
    public_key TEXT NOT NULL,
    private_pkcs8 TEXT NOT NULL,
    created_on BIGINT NOT NULL
);

CREATE TABLE event_subscription (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES account (id),
    channel TEXT NOT NULL,
    event_type TEXT NOT NULL,
    url TEXT,
    url2 TEXT,
    created_on BIGINT NOT NULL,
    modified_on BIGINT NOT NULL,
    deleted_on BIGINT,
    UNIQUE (account_id, id)
);
CREATE INDEX event_subscription_account ON event_subscription (account_id, created_on);

CREATE TABLE webhook_delivery (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES account (id),
    -- Orders deliveries: assigned in event order by the one writer.
    position BIGINT NOT NULL,
    url TEXT NOT NULL,
    url2 TEXT,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    -- Deliveries of one call to one URL go strictly in order.
    call_id TEXT,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_on BIGINT NOT NULL,
    last_error TEXT,
    created_on BIGINT NOT NULL,
    delivered_on BIGINT
);
-- Positions are handed out after MAX(position), and the backlog is read in position order.
CREATE UNIQUE INDEX webhook_delivery_position ON webhook_delivery (position);
