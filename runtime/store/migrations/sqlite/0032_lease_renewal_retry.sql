-- An unpaid renewal (issue 15, monthly number charges): when it is tried next (epoch ms). The
-- first failure of a month sets it — the account is told then, once — and each later one moves
-- it on, so leases waiting for money leave the sweeps' batches to the others. A paid renewal
-- clears it. NULL: the renewal has not failed. Identical for SQLite and PostgreSQL.
ALTER TABLE tn_lease ADD COLUMN renewal_retry_on BIGINT;
