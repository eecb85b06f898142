-- Which node carries a call: at start a node closes the CDRs it left open when it died (a
-- crash, a kill -9), and never another node's. Identical for SQLite and PostgreSQL.

ALTER TABLE call_record ADD COLUMN node_id TEXT;
CREATE INDEX call_record_open ON call_record (node_id, ended_on);
