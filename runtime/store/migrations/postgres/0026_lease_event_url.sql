-- A number's own event webhook (issue 15, scopes): the events of the calls to and from the
-- number also go to this URL, signed like the account's webhooks. Identical for SQLite and
-- PostgreSQL.
ALTER TABLE tn_lease ADD COLUMN event_url TEXT;
