-- Events relayed to the other nodes of a shared database, for their websocket clients. Each is
-- sent inline as a PostgreSQL NOTIFY on `opentact_event`; one too large for a notification
-- (8000 bytes) is kept here and the notification names its id. Rows are deleted after a few
-- minutes: a node that was not listening then has missed the event anyway.
-- Identical for SQLite and PostgreSQL.

CREATE TABLE relayed_event (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    created_on BIGINT NOT NULL
);

CREATE INDEX relayed_event_created ON relayed_event (created_on);
