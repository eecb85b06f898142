-- An inbound SMS to a number goes to the SIP user whose number it is (sip_user_of_lease):
-- looked up by the number's lease, not by listing the account's users.
CREATE INDEX sip_user_tn_lease ON sip_user (account_id, tn_lease_id) WHERE deleted_on IS NULL;
