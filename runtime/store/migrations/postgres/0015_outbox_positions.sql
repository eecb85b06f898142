-- The outbox's positions come from the database, safe with many writers (several nodes on
-- one PostgreSQL): `position` becomes an identity column, its values drawn from a sequence,
-- which never hands out a value twice. Before, the writer took MAX(position) + 1 inside its
-- transaction, which two writers could both take. The sequence starts after the rows kept.
-- Each row also names the node that wrote it (`[server] node_id`; NULL for older rows).

ALTER TABLE webhook_delivery ALTER COLUMN position ADD GENERATED ALWAYS AS IDENTITY;
SELECT setval(
    pg_get_serial_sequence('webhook_delivery', 'position'),
    COALESCE((SELECT MAX(position) FROM webhook_delivery), 0) + 1,
    false
);
ALTER TABLE webhook_delivery ADD COLUMN node_id TEXT;
