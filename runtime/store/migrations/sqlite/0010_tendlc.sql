-- 10DLC (US application-to-person SMS from local long codes): an account registers its brand
-- (the business) and campaigns (what it sends, to whom, how people opt in and out); the
-- operator approves or rejects each campaign; numbers (leases) are assigned to a campaign.
-- A US long code sends application-to-person SMS only while its lease is in an approved
-- campaign. Identical for SQLite and PostgreSQL.

CREATE TABLE tendlc_brand (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES account (id),
    legal_name TEXT NOT NULL,
    dba_name TEXT,
    -- 'private_profit', 'public_profit', 'non_profit', 'government' or 'sole_proprietor'.
    entity_type TEXT NOT NULL,
    -- The tax id (a US EIN is nine digits) and the country that issued it (ISO 3166 alpha-2).
    ein TEXT NOT NULL,
    country TEXT NOT NULL,
    -- The industry, as the campaign registry names it ('TECHNOLOGY', 'HEALTHCARE'…).
    vertical TEXT NOT NULL,
    website TEXT,
    street TEXT NOT NULL,
    city TEXT NOT NULL,
    state TEXT NOT NULL,
    postal_code TEXT NOT NULL,
    contact_name TEXT NOT NULL,
    contact_email TEXT NOT NULL,
    contact_phone TEXT NOT NULL,
    created_on BIGINT NOT NULL,
    modified_on BIGINT NOT NULL,
    UNIQUE (account_id, id)
);
CREATE INDEX tendlc_brand_account ON tendlc_brand (account_id, created_on);

CREATE TABLE tendlc_campaign (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES account (id),
    brand_id TEXT NOT NULL,
    -- The registry's use case ('2FA', 'CUSTOMER_CARE', 'MARKETING'…).
    use_case TEXT NOT NULL,
    description TEXT NOT NULL,
    -- How a handset's owner opts in (a web form, a keyword, at the counter…).
    message_flow TEXT NOT NULL,
    opt_in_message TEXT NOT NULL,
    opt_out_message TEXT NOT NULL,
    help_message TEXT NOT NULL,
    embedded_links BOOLEAN NOT NULL,
    embedded_phone BOOLEAN NOT NULL,
    -- 'pending', 'approved' or 'rejected'; only the operator moves it, with a reason when
    -- rejected.
    state TEXT NOT NULL,
    reason TEXT,
    decided_on BIGINT,
    created_on BIGINT NOT NULL,
    modified_on BIGINT NOT NULL,
    UNIQUE (account_id, id),
    FOREIGN KEY (account_id, brand_id) REFERENCES tendlc_brand (account_id, id)
);
CREATE INDEX tendlc_campaign_account ON tendlc_campaign (account_id, created_on);
CREATE INDEX tendlc_campaign_state ON tendlc_campaign (state, created_on);

CREATE TABLE tendlc_sample (
    campaign_id TEXT NOT NULL REFERENCES tendlc_campaign (id),
    -- 0-based order.
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (campaign_id, seq)
);

-- The numbers of a campaign: a lease is in at most one campaign.
CREATE TABLE tendlc_campaign_number (
    tn_lease_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    tn BIGINT NOT NULL,
    created_on BIGINT NOT NULL,
    FOREIGN KEY (account_id, campaign_id) REFERENCES tendlc_campaign (account_id, id),
    FOREIGN KEY (account_id, tn_lease_id) REFERENCES tn_lease (account_id, id)
);
CREATE INDEX tendlc_campaign_number_campaign ON tendlc_campaign_number (campaign_id, tn);
