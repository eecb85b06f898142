-- Credits waiting to be announced (issue 15): the operator's `opentact admin account credit`
-- writes the ledger from outside the running platform, so it leaves a row here in the same
-- transaction; a running node takes each row (one node, once) and publishes the credit as
-- `account.changed`. Identical for SQLite and PostgreSQL.
CREATE TABLE credit_announcement (
    transaction_id TEXT PRIMARY KEY REFERENCES account_transaction (id),
    created_on BIGINT NOT NULL
);
