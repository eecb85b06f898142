-- Money (issue 15): each account's balance, the ledger of what changed it, and the price of
-- each rated call and message. Amounts are BIGINT micro-units (1.000000 = 1 000 000) in the
-- platform's one currency. Identical for SQLite and PostgreSQL.

ALTER TABLE account ADD COLUMN balance_micros BIGINT NOT NULL DEFAULT 0;

-- One row per change of a balance: an operator's credit (positive), a call's or a message's
-- charge (negative). `reference_id` is what was charged (a call, a message); a charge is
-- written once per (kind, reference_id), so a retried settlement cannot charge twice.
-- `profile_id` is the outbound voice profile of a call, whose daily spend limit sums it.
CREATE TABLE account_transaction (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES account (id),
    kind TEXT NOT NULL,
    amount_micros BIGINT NOT NULL,
    balance_after_micros BIGINT NOT NULL,
    reference_id TEXT,
    profile_id TEXT,
    description TEXT NOT NULL,
    created_on BIGINT NOT NULL
);
CREATE INDEX account_transaction_account ON account_transaction (account_id, created_on);
CREATE INDEX account_transaction_profile ON account_transaction (profile_id, created_on);
CREATE UNIQUE INDEX account_transaction_once ON account_transaction (kind, reference_id);

-- A rated call's price: the seconds billed in the deck's increments, the rate's prefix and
-- per-minute price.
ALTER TABLE call_record ADD COLUMN price_micros BIGINT;
ALTER TABLE call_record ADD COLUMN billed_secs BIGINT;
ALTER TABLE call_record ADD COLUMN rate_prefix TEXT;
ALTER TABLE call_record ADD COLUMN rate_per_minute_micros BIGINT;

ALTER TABLE sms_message ADD COLUMN price_micros BIGINT;
