-- SIP users authenticate REST requests with their HA1B digest hash (X-Auth-HA1B-Token): looked
-- up by it.
CREATE INDEX sip_user_ha1b ON sip_user (ha1b) WHERE deleted_on IS NULL;
