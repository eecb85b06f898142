-- How calls reach a SIP connection's PBX: the transport to its IP addresses (UDP or TCP; a
-- credential PBX is reached over the connection it registered on, TLS included), and whether
-- its media must be SRTP (`SRTP`; NULL: as the platform's [media] srtp policy says).
-- Identical for SQLite and PostgreSQL.

ALTER TABLE sip_connection ADD COLUMN transport_protocol TEXT NOT NULL DEFAULT 'UDP';
ALTER TABLE sip_connection ADD COLUMN encrypted_media TEXT;
