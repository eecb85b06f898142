-- The outbox's positions come from the database, safe with many writers: `position` becomes
-- the table's INTEGER PRIMARY KEY AUTOINCREMENT (the rowid), assigned by SQLite under its
-- write lock and never reused, even after the newest rows are purged. Before, the writer
-- took MAX(position) + 1 inside its transaction, which two writers could both take.
-- Each row also names the node that wrote it (`[server] node_id`; NULL for older rows).
-- SQLite cannot turn a column into the rowid in place: the table is rebuilt.

CREATE TABLE webhook_delivery_new (
    -- Orders deliveries: a writer's rows get increasing positions, in the order it wrote them.
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL REFERENCES account (id),
    node_id TEXT,
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

-- Explicit positions raise AUTOINCREMENT's high-water mark: new rows continue after them.
INSERT INTO webhook_delivery_new (
    position, id, account_id, url, url2, event_id, event_type, call_id, body, state, attempts,
    next_attempt_on, last_error, created_on, delivered_on
)
SELECT position, id, account_id, url, url2, event_id, event_type, call_id, body, state, attempts,
    next_attempt_on, last_error, created_on, delivered_on
FROM webhook_delivery;

DROP TABLE webhook_delivery;
ALTER TABLE webhook_delivery_new RENAME TO webhook_delivery;
