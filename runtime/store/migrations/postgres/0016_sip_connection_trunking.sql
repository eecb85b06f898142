-- Inbound trunking: where a SIP connection's calls go besides its ip:port, which codecs its PBX
-- is offered, and how long each address may ring before the next is tried.
-- failover_addresses: comma-separated `ip` or `ip:port` (`[v6]:port`), tried in order.
-- codecs: comma-separated codec names in preference order.
ALTER TABLE sip_connection ADD COLUMN failover_addresses TEXT NOT NULL DEFAULT '';
ALTER TABLE sip_connection ADD COLUMN codecs TEXT NOT NULL DEFAULT 'PCMU,PCMA';
ALTER TABLE sip_connection ADD COLUMN ring_timeout_secs INTEGER;
