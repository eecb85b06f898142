-- Event webhooks per SIP domain and SIP user (issue 15, scopes): the events of the calls of a
-- domain's users, and of one user's calls, also go to these URLs, signed like the account's
-- webhooks. Identical for SQLite and PostgreSQL.
ALTER TABLE sip_domain ADD COLUMN event_url TEXT;
ALTER TABLE sip_user ADD COLUMN event_url TEXT;
