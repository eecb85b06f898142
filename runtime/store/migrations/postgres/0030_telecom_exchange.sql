-- The operator's NPA-NXX data (issue 15, telecom data): county, rate center, time zone, line
-- type and carrier of each North American exchange or thousands-block, imported with
-- `opentact admin telecom import` and read by every node. `block` is the digit after the NXX,
-- or -1 for the whole exchange. Identical for SQLite and PostgreSQL.
CREATE TABLE telecom_exchange (
    npa INTEGER NOT NULL,
    nxx INTEGER NOT NULL,
    block INTEGER NOT NULL CHECK (block BETWEEN -1 AND 9),
    state TEXT,
    county TEXT,
    rate_center TEXT,
    time_zone TEXT,
    line_type TEXT,
    carrier TEXT,
    ocn TEXT,
    PRIMARY KEY (npa, nxx, block)
);

-- The last import, one row: nodes reload the data when it changes.
CREATE TABLE telecom_import (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    row_count BIGINT NOT NULL,
    digest TEXT NOT NULL,
    source TEXT NOT NULL,
    imported_on BIGINT NOT NULL
);
