-- Numbers an account does not lease but has proven it answers: its verified caller IDs.
-- A number is pending (verified_on NULL) until the code sent to it is confirmed; the code is
-- kept as a SHA-256 hash, and failed attempts are counted.
CREATE TABLE verified_number (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES account (id),
    tn BIGINT NOT NULL,
    code_hash TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    expired_on BIGINT NOT NULL,
    verified_on BIGINT,
    created_on BIGINT NOT NULL,
    modified_on BIGINT NOT NULL
);
CREATE UNIQUE INDEX verified_number_account_tn ON verified_number (account_id, tn);
