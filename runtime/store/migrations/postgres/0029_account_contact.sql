-- An account's contact details (issue 15, account API): who the operator deals with, shown
-- and changed with `GET/PATCH /rest/account`. All optional. Identical for SQLite and PostgreSQL.
ALTER TABLE account ADD COLUMN company TEXT;
ALTER TABLE account ADD COLUMN contact_phone TEXT;
ALTER TABLE account ADD COLUMN address TEXT;
