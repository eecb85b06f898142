-- Several nodes on one database: each node renews its row in `node` every few seconds; a node
-- whose row is older than the timeout is dead, and one survivor takes it over (marks the row
-- `taken_over_by`, closes its open CDRs, fails its batch items in progress and takes its
-- pending webhook deliveries). The lease on a delivery is its `claimed_by` node's liveness:
-- only that node sends it while it lives, so nothing is sent by two nodes at once, and one
-- call's deliveries (written by the node that carries the call) stay in order on one node.
-- Identical for SQLite and PostgreSQL.

CREATE TABLE node (
    id TEXT PRIMARY KEY,
    started_on BIGINT NOT NULL,
    -- Renewed by the node itself (its wall clock, ms); older than the timeout: dead.
    last_seen BIGINT NOT NULL,
    -- The survivor that took the dead node's work over; cleared when the node starts again.
    taken_over_by TEXT,
    taken_over_on BIGINT
);

-- The node that sends the delivery: its writer, or the survivor that took it over.
ALTER TABLE webhook_delivery ADD COLUMN claimed_by TEXT;
UPDATE webhook_delivery SET claimed_by = node_id WHERE state = 'pending';
-- A dispatcher's backlog read: its own pending rows in position order. Partial: delivered
-- rows, nearly all of the table, are not in it.
CREATE INDEX webhook_delivery_pending ON webhook_delivery (claimed_by, position) WHERE state = 'pending';
