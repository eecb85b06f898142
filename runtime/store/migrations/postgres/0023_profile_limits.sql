-- The outbound voice profiles' limits, counted by all the nodes of a shared database together
-- (issue 14): a channel in use is a row of `limit_lease` (its scope names the profile), held
-- by the node that carries the call and deleted when the call ends — or when its node dies
-- (the survivor's take-over) or starts again; `rate_slot` holds when the scope's next call
-- may start under its calls per second. Identical for SQLite and PostgreSQL.

CREATE TABLE limit_lease (
    id TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    node_id TEXT NOT NULL,
    created_on BIGINT NOT NULL
);

CREATE INDEX limit_lease_scope ON limit_lease (scope);
CREATE INDEX limit_lease_node ON limit_lease (node_id);

CREATE TABLE rate_slot (
    scope TEXT PRIMARY KEY,
    -- Unix time, microseconds.
    next_start BIGINT NOT NULL
);
