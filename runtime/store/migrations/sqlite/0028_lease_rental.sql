-- Monthly number charges (issue 15, money): a lease ordered while the operator prices numbers
-- (`[rating] number_monthly`) is paid until `paid_until` (epoch ms) and renewed a month at a
-- time; NULL is a lease that is not billed (leased while numbers were free, or by the
-- operator). Each renewal is a ledger row of kind 'number' whose reference is the lease, so a
-- lease has one row per month: the once-per-reference guard now covers calls and messages
-- only. Identical for SQLite and PostgreSQL.
ALTER TABLE tn_lease ADD COLUMN paid_until BIGINT;
CREATE INDEX tn_lease_paid_until ON tn_lease (paid_until) WHERE released_on IS NULL;
DROP INDEX account_transaction_once;
CREATE UNIQUE INDEX account_transaction_once ON account_transaction (kind, reference_id)
    WHERE kind IN ('call', 'sms');
