-- Opentact store, first schema. Kept identical between SQLite and PostgreSQL except for the
-- blob type: ids are TEXT (hyphenated lower-case UUIDs), times are BIGINT milliseconds since
-- the Unix epoch (UTC), money is BIGINT micro-units. Uniqueness among live rows uses partial
-- unique indexes, which both databases support. Parents carry UNIQUE (account_id, id) so that
-- references are composite foreign keys: a row can only point at objects of its own account.

CREATE TABLE account (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    created_on BIGINT NOT NULL,
    modified_on BIGINT NOT NULL,
    deleted_on BIGINT
);
CREATE UNIQUE INDEX account_email_key ON account (email) WHERE deleted_on IS NULL;

CREATE TABLE api_token (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES account (id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    expires_on BIGINT,
    created_on BIGINT NOT NULL,
    modified_on BIGINT NOT NULL
);
CREATE INDEX api_token_account ON api_token (account_id, created_on);

CREATE TABLE number_inventory (
    tn BIGINT PRIMARY KEY,
    npa INTEGER NOT NULL,
    state TEXT,
    voice BOOLEAN NOT NULL,
    sms BOOLEAN NOT NULL,
    available BOOLEAN NOT NULL,
    created_on BIGINT NOT NULL,
    modified_on BIGINT NOT NULL
);
CREATE INDEX number_inventory_npa ON number_inventory (npa);
CREATE INDEX number_inventory_state ON number_inventory (state);

CREATE TABLE outbound_voice_profile (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES account (id),
    name TEXT NOT NULL,
    channel_limit INTEGER,
    max_rate_micros BIGINT,
    daily_spend_limit_micros BIGINT,
    record_calls BOOLEAN NOT NULL,
    created_on BIGINT NOT NULL,
    modified_on BIGINT NOT NULL,
    deleted_on BIGINT,
    UNIQUE (account_id, id)
);

CREATE TABLE sip_control_app (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES account (id),
    name TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('xml', 'webhook', 'async', 'component')),
    xml_document TEXT,
    webhook_url TEXT,
    webhook_method TEXT CHECK (webhook_method IN ('GET', 'POST')),
    webhook_timeout_ms BIGINT,
    auto_answer BOOLEAN NOT NULL,
    max_call_length_min INTEGER NOT NULL,
    event_url TEXT,
    current_component_id TEXT,
    created_on BIGINT NOT NULL,
    modified_on BIGINT NOT NULL,
    deleted_on BIGINT,
    UNIQUE (account_id, id)
);

CREATE TABLE component_version (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    bytes BYTEA NOT NULL,
    created_on BIGINT NOT NULL,
    UNIQUE (app_id, version),
    FOREIGN KEY (account_id, app_id) REFERENCES sip_control_app (account_id, id)
);

CREATE TABLE tn_profile (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES account (id),
    name TEXT NOT NULL,
    created_on BIGINT NOT NULL,
    modified_on BIGINT NOT NULL,
    deleted_on BIGINT,
    UNIQUE (account_id, id)
);

CREATE TABLE tn_profile_caller (
    profile_id TEXT NOT NULL REFERENCES tn_profile (id),
    list TEXT NOT NULL CHECK (list IN ('black', 'white')),
    entry TEXT NOT NULL,
    created_on BIGINT NOT NULL,
    PRIMARY KEY (profile_id, list, entry)
);

CREATE TABLE sip_connection (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES account (id),
    name TEXT NOT NULL,
    subdomain TEXT,
    ip TEXT,
    port INTEGER,
    is_active BOOLEAN NOT NULL,
    login TEXT,
    ha1 TEXT,
    ha1b TEXT,
    outbound_voice_profile_id TEXT,
    created_on BIGINT NOT NULL,
    modified_on BIGINT NOT NULL,
    deleted_on BIGINT,
    UNIQUE (account_id, id),
    FOREIGN KEY (account_id, outbound_voice_profile_id) REFERENCES outbound_voice_profile (account_id, id)
);
CREATE UNIQUE INDEX sip_connection_subdomain_key ON sip_connection (subdomain) WHERE deleted_on IS NULL;
CREATE INDEX sip_connection_ip ON sip_connection (ip);

CREATE TABLE tn_lease (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES account (id),
    tn BIGINT NOT NULL REFERENCES number_inventory (tn),
    voice BOOLEAN NOT NULL,
    sms BOOLEAN NOT NULL,
    autorenew BOOLEAN NOT NULL,
    tn_profile_id TEXT,
    sip_connection_id TEXT,
    sip_control_app_id TEXT,
    created_on BIGINT NOT NULL,
    modified_on BIGINT NOT NULL,
    released_on BIGINT,
    UNIQUE (account_id, id),
    FOREIGN KEY (account_id, tn_profile_id) REFERENCES tn_profile (account_id, id),
    FOREIGN KEY (account_id, sip_connection_id) REFERENCES sip_connection (account_id, id),
    FOREIGN KEY (account_id, sip_control_app_id) REFERENCES sip_control_app (account_id, id)
);
-- One lease in force per number.
CREATE UNIQUE INDEX tn_lease_tn_key ON tn_lease (tn) WHERE released_on IS NULL;
CREATE INDEX tn_lease_account ON tn_lease (account_id, created_on);

CREATE TABLE sip_domain (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES account (id),
    name TEXT NOT NULL,
    app_id TEXT,
    created_on BIGINT NOT NULL,
    modified_on BIGINT NOT NULL,
    deleted_on BIGINT,
    UNIQUE (account_id, id),
    FOREIGN KEY (account_id, app_id) REFERENCES sip_control_app (account_id, id)
);
CREATE UNIQUE INDEX sip_domain_name_key ON sip_domain (name) WHERE deleted_on IS NULL;

CREATE TABLE sip_user (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES account (id),
    domain_id TEXT NOT NULL,
    login TEXT NOT NULL,
    ha1 TEXT NOT NULL,
    ha1b TEXT NOT NULL,
    is_active BOOLEAN NOT NULL,
    tn_lease_id TEXT,
    created_on BIGINT NOT NULL,
    modified_on BIGINT NOT NULL,
    deleted_on BIGINT,
    FOREIGN KEY (account_id, domain_id) REFERENCES sip_domain (account_id, id),
    FOREIGN KEY (account_id, tn_lease_id) REFERENCES tn_lease (account_id, id)
);
CREATE UNIQUE INDEX sip_user_login_key ON sip_user (domain_id, login) WHERE deleted_on IS NULL;
