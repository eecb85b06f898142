-- Commands for a call carried by another node (several nodes on one database). The node that
-- took the REST request writes the command here and notifies the carrying node (PostgreSQL
-- NOTIFY on `opentact_command`, the node's id as payload); that node claims it (`running`),
-- runs it, and writes the outcome (NOTIFY on `opentact_command_outcome`, the row's id). The row
-- is the durable copy: a node that missed a notification finds its pending rows on its next
-- sweep, and a command nobody claimed in time is `expired` by its sender, never run late.
-- Identical for SQLite and PostgreSQL.

CREATE TABLE call_command (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    call_id TEXT NOT NULL,
    -- The node that carries the call, which runs the command.
    node_id TEXT NOT NULL,
    name TEXT NOT NULL,
    xml TEXT NOT NULL,
    command_id TEXT,
    created_on BIGINT NOT NULL,
    -- NULL while pending; then running, and accepted, duplicate, not_found, wrong_state or expired.
    outcome TEXT,
    outcome_state TEXT,
    outcome_reason TEXT,
    answered_on BIGINT
);

-- A node's sweep: its pending commands in order. Partial: answered rows are not in it.
CREATE INDEX call_command_pending ON call_command (node_id, created_on, id) WHERE outcome IS NULL;
-- The purge of old rows.
CREATE INDEX call_command_created ON call_command (created_on);
