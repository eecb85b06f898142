//! The 10DLC rule: US carriers take application-to-person SMS from a local long code (a +1
//! number that is not toll-free) only when the number belongs to a campaign the registry
//! approved. A message from such a number without an approved campaign is refused before it is
//! stored, with what to do about it; toll-free numbers (verified separately) and numbers outside
//! +1 are not concerned.
//!
//! Whether the rule applies is the operator's choice (`[messaging] tendlc_enforce`, on by
//! default, as US carriers block unregistered traffic): a platform that sends no US traffic, or a
//! lab without a registry, turns it off.

use opentact_store::{CampaignState, StoreError, TenDlcRepo, Tn, TnLease};
/// Which numbers the rule concerns (kept with the store's 10DLC types, so the API can tell too).
pub use opentact_store::{SenderKind, TOLL_FREE_NPAS, sender_kind};
use uuid::Uuid;

/// Why a number may not send application-to-person SMS. The text is what the caller sees.
#[derive(Debug, thiserror::Error)]
pub enum TenDlcError {
    /// The number is in no campaign.
    #[error(
        "the number {tn} is a US long code and is in no approved 10DLC campaign, so carriers would block \
         its messages: register a brand and campaign with POST /rest/10dlc/brand and POST /rest/10dlc/campaign, \
         assign the number with POST /rest/10dlc/campaign/{{uuid}}/numbers {{\"add\": [{tn}]}}, and wait for \
         approval"
    )]
    NoCampaign { tn: Tn },
    /// The number's campaign waits for the operator.
    #[error(
        "the number {tn} is a US long code and its 10DLC campaign {campaign} is pending approval: wait for \
         approval (GET /rest/10dlc/campaign/{campaign} shows its state), or send from a toll-free number"
    )]
    Pending { tn: Tn, campaign: Uuid },
    /// The number's campaign was rejected.
    #[error(
        "the number {tn} is a US long code and its 10DLC campaign {campaign} was rejected ({reason}): register \
         a corrected campaign with POST /rest/10dlc/campaign, move the number to it, and wait for approval"
    )]
    Rejected { tn: Tn, campaign: Uuid, reason: String },
    /// The store could not say.
    #[error("reading the number's 10DLC campaign failed")]
    Store(#[from] StoreError),
}

/// Checks that `lease` (an active lease of `account`) may send application-to-person SMS.
pub async fn check(repo: &dyn TenDlcRepo, account: Uuid, lease: &TnLease) -> Result<(), TenDlcError> {
    if sender_kind(lease.tn) != SenderKind::UsLongCode {
        return Ok(());
    }
    let tn = lease.tn;
    match repo.campaign_of_lease(account, lease.uuid).await? {
        None => Err(TenDlcError::NoCampaign { tn }),
        Some(c) => match c.state {
            CampaignState::Approved => Ok(()),
            CampaignState::Pending => Err(TenDlcError::Pending { tn, campaign: c.uuid }),
            CampaignState::Rejected => Err(TenDlcError::Rejected {
                tn,
                campaign: c.uuid,
                reason: c.reason.unwrap_or_else(|| "no reason given".into()),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_codes_toll_free_and_others() {
        assert_eq!(sender_kind(12025550100), SenderKind::UsLongCode);
        assert_eq!(sender_kind(14155550100), SenderKind::UsLongCode);
        for npa in TOLL_FREE_NPAS {
            assert_eq!(
                sender_kind(10_000_000_000 + npa * 10_000_000 + 5550100),
                SenderKind::TollFree,
                "{npa}"
            );
        }
        assert_eq!(sender_kind(18995550100), SenderKind::UsLongCode, "899 is not toll-free");
        assert_eq!(sender_kind(447700900123), SenderKind::Other);
        assert_eq!(sender_kind(12345), SenderKind::Other, "a short code");
        assert_eq!(sender_kind(1202555010), SenderKind::Other, "ten digits is not a +1 number");
    }

    #[test]
    fn the_refusal_says_what_to_do() {
        let text = TenDlcError::NoCampaign { tn: 12025550100 }.to_string();
        for needle in
            ["POST /rest/10dlc/brand", "POST /rest/10dlc/campaign", "{\"add\": [12025550100]}", "approval"]
        {
            assert!(text.contains(needle), "{text} lacks {needle}");
        }
    }
}
